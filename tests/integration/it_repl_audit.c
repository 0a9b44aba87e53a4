/*  it_repl_audit.c - the history (audit, trace) agrees with the group state
    (groups, metrics) in every DC and on one node.

    - Three DCs on loopback: messages published in dc1 are acked in dc2,
      TERMed in dc3, NACKed then acked in dc1, and replayed from the DLQ and
      acked in dc2. Once the ack state has replicated, every DC's
      `ternctl audit` reports the same acked / dead / pending counts as its
      `ternctl groups`, no stuck message, and `ternctl trace` of every
      message shows origin dc1, its trace id and the state acked.
    - One node: after TERM and a DLQ replay, `groups`, `audit` and the
      metrics endpoint report the same delivered / redelivered numbers
      (docs/operations.md, "Delivery counters").
*/
#include "harness.h"
#include "test_port.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_DCS         3
#define S_TOPIC       "ra.t"
#define S_MSGS        12
#define S_CONVERGE_MS 30000

//  The JSON line of GROUP printed by `ternctl --json CMD TOPIC ARGS` (one
//  object per group), copied into BUF; false if absent.
static bool s_group_obj(it_broker_t *b, const char *cmd, const char *group, char *buf, size_t cap) {
    it_result_t r;
    bool found = false;
    if (it_ctl(&r, b, 10000, cmd, S_TOPIC, NULL) == 0) {
        char **lines;
        size_t n = it_split_lines(r.out, &lines);
        for (size_t i = 0; i < n && !found; i++) {
            char name[64];
            if (it_json_str(lines[i], "group", name, sizeof name) && strcmp(name, group) == 0) {
                snprintf(buf, cap, "%s", lines[i]);
                found = true;
            }
        }
        free(lines);
    }
    it_result_free(&r);
    return found;
}

//  Waits until GROUP in B has ACKED acks and DEAD dead letters (`groups`).
static void s_wait_group(it_broker_t *b, const char *group, int64_t acked, int64_t dead) {
    char line[2048] = "";
    int64_t start = it_now_ms();
    while (it_now_ms() - start < S_CONVERGE_MS) {
        if (s_group_obj(b, "groups", group, line, sizeof line) &&
            it_json_field(line, "acked") == acked && it_json_field(line, "dead") == dead) {
            return;
        }
        it_sleep_ms(100);
    }
    cr_assert_fail("%s: group %s never reached acked %ld dead %ld: %s", b->dc, group, (long)acked,
                   (long)dead, line);
}

//  `ternctl sub S_TOPIC --group g --count COUNT MODE` on B (MODE NULL, "--nack"
//  or "--term"); asserts COUNT messages; their ids and trace ids go to IDS
//  and TRACES from index *AT on.
static void s_consume(it_broker_t *b, const char *mode, int count, int64_t *ids, char (*traces)[80],
                      size_t *at) {
    char n[16];
    snprintf(n, sizeof n, "%d", count);
    it_result_t r;
    it_ctl(&r, b, 30000, "sub", S_TOPIC, "--group", "g", "--count", n, "--timeout", "5s", mode,
           NULL);
    it_assert_ok(&r, "ternctl sub");
    it_msg_t *msgs;
    size_t got = it_parse_msgs(r.out, &msgs);
    cr_assert_eq(got, (size_t)count, "%s: sub %s got %zu of %d:\n%s", b->dc, mode ? mode : "", got,
                 count, r.out);
    for (size_t i = 0; i < got && ids; i++) {
        ids[*at] = msgs[i].msg_id;
        snprintf(traces[*at], sizeof traces[*at], "%s", msgs[i].trace_id);
        (*at)++;
    }
    it_msgs_free(msgs, got);
    it_result_free(&r);
}

//  audit of group g in B agrees with its groups line (acked, dead; once
//  SETTLED, when every message was delivered, also pending and no stuck
//  message); returns the audit line in BUF.
static void s_check_audit(it_broker_t *b, bool settled, char *buf, size_t cap) {
    char groups[2048];
    cr_assert(s_group_obj(b, "groups", "g", groups, sizeof groups), "%s: no group g", b->dc);
    cr_assert(s_group_obj(b, "audit", "g", buf, cap), "%s: audit lists no group g", b->dc);
    static const char *keys[] = {"acked", "dead", "delivered", "redelivered", "pending"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0] - !settled; k++) {
        cr_expect_eq(it_json_field(buf, keys[k]), it_json_field(groups, keys[k]),
                     "%s: audit %s differs from groups:\naudit  %s\ngroups %s", b->dc, keys[k], buf,
                     groups);
    }
    const char *stuck;
    size_t len;
    cr_assert(it_json_raw(buf, "stuck", &stuck, &len), "%s", buf);
    cr_expect(!settled || (len == 2 && strncmp(stuck, "[]", 2) == 0), "%s: stuck messages: %s",
              b->dc, buf);
    cr_expect(!strstr(buf, "\"msg_id\":0,"), "%s: a stuck message without id: %s", b->dc, buf);
}

//  trace of MSG_ID in B: origin dc1, trace id TRACE, group g acked.
static void s_check_trace(it_broker_t *b, int64_t msg_id, const char *trace) {
    char id[32];
    snprintf(id, sizeof id, "%ld", (long)msg_id);
    it_result_t r;
    it_ctl(&r, b, 10000, "trace", id, NULL);
    it_assert_ok(&r, "ternctl trace");
    char s[128];
    cr_expect(it_json_field(r.out, "msg_id") == msg_id, "%s: %s", b->dc, r.out);
    cr_expect(it_json_str(r.out, "origin", s, sizeof s) && strcmp(s, "dc1") == 0,
              "%s: trace of %s: origin '%s'\n%s", b->dc, id, s, r.out);
    cr_expect(it_json_str(r.out, "trace_id", s, sizeof s) && strcmp(s, trace) == 0,
              "%s: trace of %s: trace id '%s', want '%s'\n%s", b->dc, id, s, trace, r.out);
    const char *groups;
    size_t len;
    cr_assert(it_json_raw(r.out, "groups", &groups, &len), "%s", r.out);
    const char *g = strstr(groups, "{\"group\":\"g\"");
    cr_assert(g && g < groups + len, "%s: trace of %s has no group g:\n%s", b->dc, id, r.out);
    cr_expect(it_json_str(g, "state", s, sizeof s) && strcmp(s, "acked") == 0,
              "%s: trace of %s: state '%s'\n%s", b->dc, id, s, r.out);
    it_result_free(&r);
}

Test(repl_audit, history_agrees_with_groups_in_every_dc, .fini = it_teardown, .timeout = 240) {
    it_broker_t *dc[S_DCS];
    it_mesh_start(S_DCS, NULL, NULL, dc);
    //  The group exists in every DC before the messages: all are owed to it.
    for (int d = 0; d < S_DCS; d++) {
        it_result_t r;
        it_ctl(&r, dc[d], 10000, "sub", S_TOPIC, "--group", "g", "--timeout", "100ms", NULL);
        it_result_free(&r);
    }
    it_pub(dc[0], S_TOPIC, "m{n}", S_MSGS);
    int64_t ids[S_MSGS];
    char traces[S_MSGS][80];
    size_t at = 0;
    //  Wait until every DC has the messages.
    for (int d = 1; d < S_DCS; d++) {
        int64_t start = it_now_ms(), msgs = -1;
        while (msgs != S_MSGS && it_now_ms() - start < S_CONVERGE_MS) {
            it_result_t r;
            if (it_ctl(&r, dc[d], 5000, "topic", "info", S_TOPIC, NULL) == 0) {
                it_json_int(r.out, "msgs", &msgs);
            }
            it_result_free(&r);
            it_sleep_ms(100);
        }
        cr_assert_eq(msgs, S_MSGS, "dc%d has %ld messages", d + 1, (long)msgs);
    }
    //  dc2 acks 4; dc3 TERMs the next 2.
    s_consume(dc[1], NULL, 4, ids, traces, &at);
    s_wait_group(dc[2], "g", 4, 0);
    s_consume(dc[2], "--term", 2, ids, traces, &at);
    //  dc1 NACKs 2, then acks the 6 left (the NACKed ones again).
    s_wait_group(dc[0], "g", 4, 2);
    //  The origin records dc2's acks and dc3's TERMs as such.
    char audit[4096];
    s_check_audit(dc[0], false, audit, sizeof audit);
    for (size_t i = 0; i < 4; i++) {
        s_check_trace(dc[0], ids[i], traces[i]);
    }
    s_consume(dc[0], "--nack", 2, NULL, NULL, NULL);
    s_consume(dc[0], NULL, 6, ids, traces, &at);
    //  dc2 replays its DLQ (dc3's TERMs) and acks the 2.
    s_wait_group(dc[1], "g", 10, 2);
    it_result_t r;
    it_ctl(&r, dc[1], 10000, "dlq", "replay", S_TOPIC, "--group", "g", NULL);
    it_assert_ok(&r, "ternctl dlq replay");
    cr_assert_eq(it_json_field(r.out, "replayed"), 2, "%s", r.out);
    it_result_free(&r);
    s_consume(dc[1], NULL, 2, NULL, NULL, NULL);
    cr_assert_eq(at, 12u);

    //  Every DC ends with all 12 acked, and its history says so.
    for (int d = 0; d < S_DCS; d++) {
        s_wait_group(dc[d], "g", S_MSGS, 0);
    }
    for (int d = 0; d < S_DCS; d++) {
        s_check_audit(dc[d], true, audit, sizeof audit);
        cr_expect_eq(it_json_field(audit, "acked"), S_MSGS, "dc%d: %s", d + 1, audit);
        cr_expect_eq(it_json_field(audit, "published"), S_MSGS, "dc%d: %s", d + 1, audit);
        for (size_t i = 0; i < at; i++) {
            s_check_trace(dc[d], ids[i], traces[i]);
        }
    }
}

//  delivered / redelivered of group g on S_TOPIC in B's metrics (PORT).
static void s_metrics_counts(int port, int64_t *delivered, int64_t *redelivered) {
    char *doc = NULL;
    cr_assert_eq(it_http_get(port, "/metrics", &doc), 200, "GET /metrics");
    *delivered = (int64_t)it_prom_sample(doc, "tern_group_delivered_total{topic=\"" S_TOPIC
                                              "\",group=\"g\"}");
    *redelivered = (int64_t)it_prom_sample(doc, "tern_group_redelivered_total{topic=\"" S_TOPIC
                                                "\",group=\"g\"}");
    cr_expect_eq((int64_t)it_prom_sample(doc, "tern_messages_delivered_total"), *delivered, "%s",
                 doc);
    cr_expect_eq((int64_t)it_prom_sample(doc, "tern_messages_redelivered_total"), *redelivered,
                 "%s", doc);
    free(doc);
}

Test(repl_audit, counters_agree_after_term_and_replay, .fini = it_teardown, .timeout = 60) {
    int port = test_port();
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    it_broker_t *b = it_start_broker("--metrics", addr, "--backoff", "10ms", NULL);
    it_result_t r;
    it_ctl(&r, b, 10000, "sub", S_TOPIC, "--group", "g", "--timeout", "100ms", NULL);
    it_result_free(&r);
    it_pub(b, S_TOPIC, "m{n}", 5);
    //  2 TERMed, 1 NACKed (redelivered with count 2), 3 acked, the DLQ
    //  replayed and its 2 delivered again (count 1 after a replay) and acked.
    s_consume(b, "--term", 2, NULL, NULL, NULL);
    s_consume(b, "--nack", 1, NULL, NULL, NULL);
    s_consume(b, NULL, 3, NULL, NULL, NULL);
    it_ctl(&r, b, 10000, "dlq", "replay", S_TOPIC, "--group", "g", NULL);
    it_assert_ok(&r, "ternctl dlq replay");
    cr_assert_eq(it_json_field(r.out, "replayed"), 2, "%s", r.out);
    it_result_free(&r);
    s_consume(b, NULL, 2, NULL, NULL, NULL);
    s_wait_group(b, "g", 5, 0);

    char audit[4096], groups[2048];
    s_check_audit(b, true, audit, sizeof audit);
    cr_assert(s_group_obj(b, "groups", "g", groups, sizeof groups));
    int64_t delivered = it_json_field(groups, "delivered"),
            redelivered = it_json_field(groups, "redelivered");
    //  At least the 8 deliveries above (a consumer's window may have held
    //  one more when it exited: that one is delivered again later).
    cr_expect_geq(delivered, 8, "%s", groups);
    cr_expect_geq(redelivered, 1, "%s", groups);
    int64_t m_delivered, m_redelivered;
    s_metrics_counts(port, &m_delivered, &m_redelivered);
    cr_expect_eq(m_delivered, delivered, "metrics delivered %ld, groups %s", (long)m_delivered,
                 groups);
    cr_expect_eq(m_redelivered, redelivered, "metrics redelivered %ld, groups %s",
                 (long)m_redelivered, groups);
}
