/*  it_redelivery.c - acks, ack wait, NACK with backoff, max_deliver, TERM,
    the dead-letter queue and its replay, group counters, and a consumer
    that crashes with unacked messages.

    ternd runs with short timers (--ack-wait 300ms --backoff 50ms
    --max-deliver 3) so that every redelivery happens within a second.
*/
#include "harness.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static it_broker_t *s_broker(void) {
    return it_start_broker("--ack-wait", "300ms", "--backoff", "50ms", "--max-deliver", "3", NULL);
}

//  The first JSON line of `ternctl --json ARGS` whose "group" is GROUP, copied
//  into LINE; false if none.
static bool s_group_line(it_broker_t *b, const char *topic, const char *group, char *line,
                         size_t cap) {
    it_result_t r;
    it_ctl(&r, b, 10000, "groups", topic, NULL);
    it_assert_ok(&r, "ternctl groups");
    char **lines;
    size_t n = it_split_lines(r.out, &lines);
    bool found = false;
    for (size_t i = 0; i < n && !found; i++) {
        char g[80];
        if (it_json_str(lines[i], "group", g, sizeof g) && strcmp(g, group) == 0) {
            snprintf(line, cap, "%s", lines[i]);
            found = true;
        }
    }
    free(lines);
    it_result_free(&r);
    return found;
}

static int64_t s_field(const char *line, const char *key) {
    int64_t v = -1;
    cr_assert(it_json_int(line, key, &v), "no %s in %s", key, line);
    return v;
}

Test(redelivery, no_ack_is_redelivered_after_ack_wait, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = s_broker();
    it_pub(b, "it.noack", "once", 1);
    it_result_t r;
    int64_t t0 = it_now_ms();
    it_ctl(&r, b, 15000, "sub", "it.noack", "--group", "g", "--no-ack", "--count", "2", "--timeout",
           "3s", NULL);
    int64_t took = it_now_ms() - t0;
    it_assert_ok(&r, "ternctl sub --no-ack");
    it_msg_t *msgs;
    size_t m = it_parse_msgs(r.out, &msgs);
    cr_assert_eq(m, 2, "expected the message twice, got %zu:\n%s", m, r.out);
    cr_assert_eq(msgs[0].seq, msgs[1].seq);
    cr_assert_eq(msgs[0].msg_id, msgs[1].msg_id);
    cr_assert_eq(msgs[0].delivery_count, 1);
    cr_assert_eq(msgs[1].delivery_count, 2);
    cr_assert_lt(took, 2900, "redelivery took %lld ms with --ack-wait 300ms", (long long)took);
    it_msgs_free(msgs, m);
    it_result_free(&r);
}

Test(redelivery, nack_redelivers_then_max_deliver_dlq, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = s_broker();
    it_pub(b, "it.nack", "poison", 1);
    it_pub(b, "it.nack", "fine", 1);
    it_result_t r;
    it_ctl(&r, b, 15000, "sub", "it.nack", "--group", "g", "--nack", "--count", "20", "--timeout",
           "2s", NULL);
    it_assert_ok(&r, "ternctl sub --nack");
    it_msg_t *msgs;
    size_t m = it_parse_msgs(r.out, &msgs);
    //  Each of the 2 messages: delivered 3 times (max_deliver), then dead.
    cr_assert_eq(m, 6, "expected 2 x 3 deliveries, got %zu:\n%s", m, r.out);
    int counts[3] = {0};
    for (size_t i = 0; i < m; i++) {
        cr_assert(msgs[i].seq == 1 || msgs[i].seq == 2);
        counts[msgs[i].seq]++;
        cr_assert_eq(msgs[i].delivery_count, counts[msgs[i].seq],
                     "seq %lld delivery_count %lld, want %d", (long long)msgs[i].seq,
                     (long long)msgs[i].delivery_count, counts[msgs[i].seq]);
    }
    it_msgs_free(msgs, m);
    it_result_free(&r);

    it_ctl(&r, b, 10000, "dlq", "list", "it.nack", "--group", "g", NULL);
    it_assert_ok(&r, "ternctl dlq list");
    char **lines;
    size_t n = it_split_lines(r.out, &lines);
    cr_assert_eq(n, 2, "dlq has %zu entries, want 2:\n%s", n, r.out);
    for (size_t i = 0; i < n; i++) {
        char reason[64] = "", topic[64] = "", group[64] = "";
        cr_assert(it_json_str(lines[i], "reason", reason, sizeof reason));
        cr_assert(it_json_str(lines[i], "topic", topic, sizeof topic));
        cr_assert(it_json_str(lines[i], "group", group, sizeof group));
        cr_assert_str_eq(reason, "max_deliver");
        cr_assert_str_eq(topic, "it.nack");
        cr_assert_str_eq(group, "g");
        cr_assert_eq(s_field(lines[i], "delivery_count"), 3);
        int64_t seq = s_field(lines[i], "seq");
        cr_assert(seq == 1 || seq == 2);
        cr_assert_gt(s_field(lines[i], "msg_id"), 0);
        cr_assert_gt(s_field(lines[i], "dead_at_ms"), 1700000000000LL);
    }
    free(lines);
    it_result_free(&r);

    char line[1024];
    cr_assert(s_group_line(b, "it.nack", "g", line, sizeof line), "group g not listed");
    cr_assert_eq(s_field(line, "dead"), 2, "groups: %s", line);
    cr_assert_eq(s_field(line, "pending"), 0, "groups: %s", line);
    cr_assert_geq(s_field(line, "redelivered"), 4, "groups: %s", line);
}

Test(redelivery, term_goes_to_dlq_and_replay_redelivers, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = s_broker();
    it_pub(b, "it.term", "bad {n}", 2);
    it_result_t r;
    it_ctl(&r, b, 15000, "sub", "it.term", "--group", "g", "--term", "--count", "10", "--timeout",
           "1500ms", NULL);
    it_assert_ok(&r, "ternctl sub --term");
    it_msg_t *msgs;
    size_t m = it_parse_msgs(r.out, &msgs);
    cr_assert_eq(m, 2, "TERMed messages delivered %zu times, want once each:\n%s", m, r.out);
    it_msgs_free(msgs, m);
    it_result_free(&r);

    it_ctl(&r, b, 10000, "dlq", "list", "it.term", "--group", "g", NULL);
    it_assert_ok(&r, "ternctl dlq list");
    char **lines;
    size_t n = it_split_lines(r.out, &lines);
    cr_assert_eq(n, 2, "dlq has %zu entries:\n%s", n, r.out);
    for (size_t i = 0; i < n; i++) {
        char reason[64] = "";
        cr_assert(it_json_str(lines[i], "reason", reason, sizeof reason));
        cr_assert_str_eq(reason, "term");
        cr_assert_eq(s_field(lines[i], "delivery_count"), 1);
    }
    free(lines);
    it_result_free(&r);

    it_ctl(&r, b, 10000, "dlq", "replay", "it.term", "--group", "g", NULL);
    it_assert_ok(&r, "ternctl dlq replay");
    cr_assert_eq(s_field(r.out, "replayed"), 2, "replay: %s", r.out);
    it_result_free(&r);

    it_ctl(&r, b, 15000, "sub", "it.term", "--group", "g", "--count", "10", "--timeout", "1500ms",
           NULL);
    it_assert_ok(&r, "ternctl sub after replay");
    m = it_parse_msgs(r.out, &msgs);
    cr_assert_eq(m, 2, "replayed messages delivered %zu times, want 2:\n%s", m, r.out);
    cr_assert_str_eq(msgs[0].data, "bad 1");
    cr_assert_str_eq(msgs[1].data, "bad 2");
    it_msgs_free(msgs, m);
    it_result_free(&r);

    it_ctl(&r, b, 10000, "dlq", "list", "it.term", "--group", "g", NULL);
    it_assert_ok(&r, "ternctl dlq list after replay");
    n = it_split_lines(r.out, &lines);
    cr_assert_eq(n, 0, "dlq not empty after replay + ack:\n%s", r.out);
    free(lines);
    it_result_free(&r);

    char line[1024];
    cr_assert(s_group_line(b, "it.term", "g", line, sizeof line));
    cr_assert_eq(s_field(line, "dead"), 0, "groups: %s", line);
    cr_assert_eq(s_field(line, "pending"), 0, "groups: %s", line);
    //  acked_floor = the lowest seq not yet acked (docs/storage.md).
    cr_assert_eq(s_field(line, "acked_floor"), 3, "groups: %s", line);
}

Test(redelivery, groups_json_counters, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker("--ack-wait", "60s", NULL);
    it_pub(b, "it.cnt", "c{n}", 10);
    it_result_t r;
    it_ctl(&r, b, 15000, "sub", "it.cnt", "--group", "g", "--count", "4", "--timeout", "3s", NULL);
    it_assert_ok(&r, "ternctl sub");
    it_result_free(&r);
    char line[1024];
    cr_assert(s_group_line(b, "it.cnt", "g", line, sizeof line), "group g not listed");
    cr_assert_eq(s_field(line, "acked_floor"), 5, "groups: %s", line);
    cr_assert_eq(s_field(line, "dead"), 0, "groups: %s", line);
    cr_assert_eq(s_field(line, "acked"), 4, "groups: %s", line);

    //  A consumer that does not ack, kept alive: its messages are pending.
    it_proc_t *p = it_ctl_spawn(b, "sub", "it.cnt", "--group", "g", "--no-ack", "--count", "100",
                                "--timeout", "10s", NULL);
    cr_assert(p);
    int64_t deadline = it_now_ms() + 5000;
    while (it_proc_lines(p) < 3 && it_now_ms() < deadline) {
        it_sleep_ms(20);
    }
    cr_assert_geq(it_proc_lines(p), 3, "the --no-ack consumer got nothing");
    cr_assert(s_group_line(b, "it.cnt", "g", line, sizeof line));
    cr_assert_geq(s_field(line, "pending"), 3, "groups while unacked: %s", line);
    cr_assert_eq(s_field(line, "acked_floor"), 5, "groups: %s", line);
    cr_assert_eq(s_field(line, "consumers"), 1, "groups: %s", line);
    it_proc_signal(p, SIGTERM);
    it_proc_wait(p, 5000);
    it_proc_destroy(&p);

    char *topic_out = NULL;
    it_ctl(&r, b, 10000, "topics", NULL);
    it_assert_ok(&r, "ternctl topics");
    topic_out = strstr(r.out, "\"it.cnt\"");
    cr_assert(topic_out, "topics does not list it.cnt:\n%s", r.out);
    it_result_free(&r);
}

Test(redelivery, crashed_consumer_messages_go_to_another, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker("--ack-wait", "60s", "--heartbeat", "200ms",
                                     "--heartbeat-timeout", "600ms", NULL);
    it_pub(b, "it.crash", "job {n}", 50);
    it_proc_t *victim = it_ctl_spawn(b, "sub", "it.crash", "--group", "w", "--no-ack", "--count",
                                     "1000", "--timeout", "30s", NULL);
    cr_assert(victim);
    int64_t deadline = it_now_ms() + 5000;
    while (it_proc_lines(victim) < 10 && it_now_ms() < deadline) {
        it_sleep_ms(10);
    }
    size_t got = it_proc_lines(victim);
    cr_assert_geq(got, 10, "the first consumer received only %zu messages", got);
    it_proc_signal(victim, SIGKILL);
    it_proc_wait(victim, 5000);
    char *vout = it_proc_out(victim);
    it_msg_t *vm;
    size_t vn = it_parse_msgs(vout, &vm);

    //  --ack-wait is 60 s: only the session's death can bring them back.
    int64_t t0 = it_now_ms();
    it_result_t r;
    it_ctl(&r, b, 20000, "sub", "it.crash", "--group", "w", "--count", "50", "--timeout", "4s",
           NULL);
    int64_t took = it_now_ms() - t0;
    it_assert_ok(&r, "ternctl sub (second consumer)");
    it_msg_t *msgs;
    size_t m = it_parse_msgs(r.out, &msgs);
    cr_assert_eq(m, 50, "second consumer got %zu of 50 (first had %zu unacked) after %lld ms", m,
                 vn, (long long)took);
    bool seen[51] = {false};
    for (size_t i = 0; i < m; i++) {
        cr_assert(msgs[i].seq >= 1 && msgs[i].seq <= 50);
        cr_assert_not(seen[msgs[i].seq], "duplicate seq %lld", (long long)msgs[i].seq);
        seen[msgs[i].seq] = true;
    }
    //  Those the dead consumer had received come back with a higher count.
    for (size_t i = 0; i < vn; i++) {
        for (size_t j = 0; j < m; j++) {
            if (msgs[j].seq == vm[i].seq) {
                cr_assert_geq(msgs[j].delivery_count, 2,
                              "seq %lld: delivery_count %lld after a crashed delivery",
                              (long long)msgs[j].seq, (long long)msgs[j].delivery_count);
            }
        }
    }
    cr_assert_lt(took, 10000);
    it_msgs_free(msgs, m);
    it_msgs_free(vm, vn);
    free(vout);
    it_result_free(&r);
    it_proc_destroy(&victim);
}

Test(redelivery, ephemeral_subscription_needs_acks, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = s_broker();
    it_pub(b, "it.eph", "e", 1);
    it_result_t r;
    it_ctl(&r, b, 15000, "sub", "it.eph", "--from", "first", "--no-ack", "--count", "2",
           "--timeout", "3s", NULL);
    it_assert_ok(&r, "ternctl sub --no-ack (ephemeral)");
    it_msg_t *msgs;
    size_t m = it_parse_msgs(r.out, &msgs);
    cr_assert_eq(m, 2, "an unacked ephemeral delivery was not redelivered:\n%s", r.out);
    cr_assert_eq(msgs[0].seq, msgs[1].seq);
    cr_assert_eq(msgs[1].delivery_count, 2);
    it_msgs_free(msgs, m);
    it_result_free(&r);
}
