/*  it_groups.c - durable groups: fan-out across groups, competing consumers
    inside one group, durability of the group position across a broker
    restart and a consumer reconnect, and the start positions
    (--from new | seq:N | time:DUR).
*/
#include "harness.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Runs `sub TOPIC --group G --count COUNT --timeout TIMEOUT [FROM]` and
//  returns the parsed messages.
static size_t s_sub(it_broker_t *b, const char *topic, const char *group, int count,
                    const char *timeout, const char *from, it_msg_t **msgs) {
    char n[16];
    snprintf(n, sizeof n, "%d", count);
    it_result_t r;
    if (from) {
        it_ctl(&r, b, 30000, "sub", topic, "--group", group, "--count", n, "--timeout", timeout,
               "--from", from, NULL);
    } else {
        it_ctl(&r, b, 30000, "sub", topic, "--group", group, "--count", n, "--timeout", timeout,
               NULL);
    }
    it_assert_ok(&r, "ternctl sub");
    size_t m = it_parse_msgs(r.out, msgs);
    it_result_free(&r);
    return m;
}

Test(groups, fan_out_to_every_group, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker(NULL);
    it_pub(b, "it.fan", "m{n}", 20);
    const char *groups[] = {"g1", "g2"};
    for (int g = 0; g < 2; g++) {
        it_msg_t *msgs;
        size_t m = s_sub(b, "it.fan", groups[g], 20, "3s", NULL, &msgs);
        cr_assert_eq(m, 20, "group %s got %zu of 20", groups[g], m);
        for (size_t i = 0; i < m; i++) {
            cr_assert_eq(msgs[i].seq, (int64_t)i + 1, "group %s: order", groups[g]);
        }
        it_msgs_free(msgs, m);
    }
    //  Both groups are now fully acked: nothing more for either.
    it_msg_t *msgs;
    size_t m = s_sub(b, "it.fan", "g1", 5, "1s", NULL, &msgs);
    cr_assert_eq(m, 0, "g1 got %zu already acked messages again", m);
    it_msgs_free(msgs, m);
}

//  Polls `ternctl groups TOPIC` until GROUP has WANT consumers (best effort:
//  returns false after TIMEOUT_MS).
static bool s_wait_consumers(it_broker_t *b, const char *topic, const char *group, int want,
                             int timeout_ms) {
    int64_t deadline = it_now_ms() + timeout_ms;
    while (it_now_ms() < deadline) {
        it_result_t r;
        it_ctl(&r, b, 5000, "groups", topic, NULL);
        char **lines;
        size_t n = it_split_lines(r.out, &lines);
        bool ok = false;
        for (size_t i = 0; i < n; i++) {
            char g[80];
            int64_t c = 0;
            if (it_json_str(lines[i], "group", g, sizeof g) && strcmp(g, group) == 0 &&
                it_json_int(lines[i], "consumers", &c) && c >= want) {
                ok = true;
            }
        }
        free(lines);
        it_result_free(&r);
        if (ok) {
            return true;
        }
        it_sleep_ms(100);
    }
    return false;
}

Test(groups, competing_consumers_split, .fini = it_teardown, .timeout = 90) {
    it_broker_t *b = it_start_broker(NULL);
    //  One message first, so that the topic and the group exist when the
    //  consumers join (seq 1 goes to one of them).
    it_pub(b, "it.split", "job 0", 1);
    it_proc_t *c1 = it_ctl_spawn(b, "sub", "it.split", "--group", "work", "--count", "1000",
                                 "--timeout", "5s", NULL);
    it_proc_t *c2 = it_ctl_spawn(b, "sub", "it.split", "--group", "work", "--count", "1000",
                                 "--timeout", "5s", NULL);
    cr_assert(c1 && c2);
    if (!s_wait_consumers(b, "it.split", "work", 2, 3000)) {
        cr_log_warn("`groups` never showed 2 consumers in 3 s; publishing anyway");
    }
    it_pub(b, "it.split", "job {n}", 200);
    int rc1 = it_proc_wait(c1, 30000);
    int rc2 = it_proc_wait(c2, 30000);
    char *o1 = it_proc_out(c1), *o2 = it_proc_out(c2);
    cr_assert_eq(rc1, 0, "consumer 1 exit %d", rc1);
    cr_assert_eq(rc2, 0, "consumer 2 exit %d", rc2);
    it_msg_t *m1, *m2;
    size_t n1 = it_parse_msgs(o1, &m1), n2 = it_parse_msgs(o2, &m2);
    cr_assert_gt(n1, 0, "consumer 1 got nothing (consumer 2 got %zu)", n2);
    cr_assert_gt(n2, 0, "consumer 2 got nothing (consumer 1 got %zu)", n1);
    bool seen[202] = {false};
    for (size_t i = 0; i < n1 + n2; i++) {
        it_msg_t *m = i < n1 ? &m1[i] : &m2[i - n1];
        cr_assert(m->seq >= 1 && m->seq <= 201, "seq %lld out of range", (long long)m->seq);
        cr_assert_not(seen[m->seq], "seq %lld delivered twice while both consumers acked",
                      (long long)m->seq);
        seen[m->seq] = true;
    }
    cr_assert_eq(n1 + n2, 201, "union is %zu messages, want 201 (%zu + %zu)", n1 + n2, n1, n2);
    cr_log_info("split: %zu / %zu", n1, n2);
    it_msgs_free(m1, n1);
    it_msgs_free(m2, n2);
    free(o1);
    free(o2);
    it_proc_destroy(&c1);
    it_proc_destroy(&c2);
}

Test(groups, durable_across_restart_and_reconnect, .fini = it_teardown, .timeout = 90) {
    it_broker_t *b = it_start_broker(NULL);
    it_pub(b, "it.dur", "d{n}", 10);
    it_msg_t *msgs;
    size_t m = s_sub(b, "it.dur", "keep", 5, "3s", NULL, &msgs);
    cr_assert_eq(m, 5);
    for (size_t i = 0; i < m; i++) {
        cr_assert_eq(msgs[i].seq, (int64_t)i + 1);
    }
    it_msgs_free(msgs, m);

    //  Reconnect without a restart: the rest only.
    m = s_sub(b, "it.dur", "keep", 2, "3s", NULL, &msgs);
    cr_assert_eq(m, 2);
    cr_assert_eq(msgs[0].seq, 6, "reconnected consumer got seq %lld first, want 6",
                 (long long)msgs[0].seq);
    cr_assert_eq(msgs[1].seq, 7);
    it_msgs_free(msgs, m);

    int rc = it_broker_stop(b, 10000);
    cr_assert_eq(rc, 0, "ternd exit %d on SIGTERM", rc);
    cr_assert(it_broker_start(b), "restart failed");
    m = s_sub(b, "it.dur", "keep", 100, "1500ms", NULL, &msgs);
    cr_assert_eq(m, 3, "after restart got %zu messages, want 3 (seq 8..10)", m);
    for (size_t i = 0; i < m; i++) {
        cr_assert_eq(msgs[i].seq, (int64_t)i + 8);
        char want[16];
        snprintf(want, sizeof want, "d%zu", i + 8);
        cr_assert_str_eq(msgs[i].data, want);
    }
    it_msgs_free(msgs, m);
    //  A fresh group still sees everything.
    m = s_sub(b, "it.dur", "fresh", 100, "1500ms", NULL, &msgs);
    cr_assert_eq(m, 10);
    it_msgs_free(msgs, m);
}

Test(groups, from_new, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker(NULL);
    it_pub(b, "it.new", "old{n}", 3);
    it_msg_t *msgs;
    size_t m = s_sub(b, "it.new", "gnew", 10, "1s", "new", &msgs);
    cr_assert_eq(m, 0, "--from new delivered %zu old messages", m);
    it_msgs_free(msgs, m);
    it_pub(b, "it.new", "new{n}", 2);
    m = s_sub(b, "it.new", "gnew", 10, "1500ms", NULL, &msgs);
    cr_assert_eq(m, 2, "group created with --from new got %zu, want the 2 new", m);
    cr_assert_str_eq(msgs[0].data, "new1");
    cr_assert_eq(msgs[0].seq, 4);
    cr_assert_str_eq(msgs[1].data, "new2");
    it_msgs_free(msgs, m);
}

Test(groups, from_seq, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker(NULL);
    it_pub(b, "it.seq", "s{n}", 10);
    it_msg_t *msgs;
    size_t m = s_sub(b, "it.seq", "gseq", 100, "1500ms", "seq:7", &msgs);
    cr_assert_eq(m, 4, "--from seq:7 gave %zu messages, want 4", m);
    for (size_t i = 0; i < m; i++) {
        cr_assert_eq(msgs[i].seq, (int64_t)i + 7);
    }
    it_msgs_free(msgs, m);
    //  The start applies only when the group is created.
    it_pub(b, "it.seq", "t{n}", 1);
    m = s_sub(b, "it.seq", "gseq", 100, "1500ms", "seq:1", &msgs);
    cr_assert_eq(m, 1, "existing group restarted from the given seq (%zu messages)", m);
    cr_assert_eq(msgs[0].seq, 11);
    it_msgs_free(msgs, m);
}

Test(groups, from_time, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker(NULL);
    it_pub(b, "it.time", "early{n}", 3);
    it_sleep_ms(2500);
    it_pub(b, "it.time", "late{n}", 2);
    it_msg_t *msgs;
    size_t m = s_sub(b, "it.time", "gtime", 100, "1500ms", "time:1500ms", &msgs);
    cr_assert_eq(m, 2, "--from time:1500ms gave %zu messages, want the 2 late ones", m);
    cr_assert_str_eq(msgs[0].data, "late1");
    cr_assert_str_eq(msgs[1].data, "late2");
    it_msgs_free(msgs, m);
    m = s_sub(b, "it.time", "gall", 100, "1500ms", "time:1h", &msgs);
    cr_assert_eq(m, 5, "--from time:1h gave %zu messages, want 5", m);
    it_msgs_free(msgs, m);
}

Test(groups, wildcard_group_joins_later_topics, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker(NULL);
    it_pub(b, "it.wg.a", "a{n}", 2);
    it_msg_t *msgs;
    size_t m = s_sub(b, "it.wg.*", "wg", 100, "1500ms", NULL, &msgs);
    cr_assert_eq(m, 2);
    it_msgs_free(msgs, m);
    it_pub(b, "it.wg.b", "b{n}", 3);
    m = s_sub(b, "it.wg.*", "wg", 100, "1500ms", NULL, &msgs);
    cr_assert_eq(m, 3, "wildcard group got %zu from a topic created later, want 3", m);
    for (size_t i = 0; i < m; i++) {
        cr_assert_str_eq(msgs[i].topic, "it.wg.b");
    }
    it_msgs_free(msgs, m);
}

//  Issue 4: a topic made by `topic create` is known to route at once, so a
//  durable group subscribed to it before any publish is opened (and listed)
//  right away.
Test(groups, created_topic_opens_group_before_publish, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker(NULL);
    it_result_t r;
    it_ctl(&r, b, 10000, "topic", "create", "it.made", NULL);
    it_assert_ok(&r, "ternctl topic create");
    it_result_free(&r);
    it_proc_t *c = it_ctl_spawn(b, "sub", "it.made", "--group", "early", "--count", "5",
                                "--timeout", "10s", NULL);
    cr_assert(c);
    cr_assert(s_wait_consumers(b, "it.made", "early", 1, 5000),
              "`groups it.made` never listed group early with a consumer before any publish");
    it_pub(b, "it.made", "m{n}", 5);
    int rc = it_proc_wait(c, 30000);
    char *out = it_proc_out(c);
    cr_assert_eq(rc, 0, "consumer exit %d", rc);
    it_msg_t *msgs;
    size_t m = it_parse_msgs(out, &msgs);
    cr_assert_eq(m, 5, "group subscribed before the first publish got %zu of 5", m);
    for (size_t i = 0; i < m; i++) {
        cr_assert_eq(msgs[i].seq, (int64_t)i + 1);
    }
    it_msgs_free(msgs, m);
    free(out);
    it_proc_destroy(&c);
}

//  Issue 4: --from new on a topic that does not exist yet: every message of
//  the topic is published after the SUBSCRIBE, so the group gets all of
//  them, those of the commit that creates the topic included.
Test(groups, from_new_on_missing_topic_gets_first_commit, .fini = it_teardown, .timeout = 90) {
    it_broker_t *b = it_start_broker(NULL);
    enum { N = 3000 };
    char n[16];
    snprintf(n, sizeof n, "%d", N);
    it_proc_t *c = it_ctl_spawn(b, "sub", "it.later", "--wait", "--group", "gl", "--from", "new",
                                "--count", n, "--timeout", "5s", NULL);
    cr_assert(c);
    it_sleep_ms(1000); //  the SUBSCRIBE is answered long before (no topic to list it by)
    it_pub(b, "it.later", "x{n}", N);
    int rc = it_proc_wait(c, 60000);
    char *out = it_proc_out(c);
    cr_assert_eq(rc, 0, "consumer exit %d", rc);
    it_msg_t *msgs;
    size_t m = it_parse_msgs(out, &msgs);
    static bool seen[N + 1];
    memset(seen, 0, sizeof seen);
    size_t distinct = 0;
    for (size_t i = 0; i < m; i++) {
        cr_assert(msgs[i].seq >= 1 && msgs[i].seq <= N, "seq %lld out of range",
                  (long long)msgs[i].seq);
        if (!seen[msgs[i].seq]) {
            seen[msgs[i].seq] = true;
            distinct++;
        }
    }
    cr_assert_eq(distinct, (size_t)N,
                 "--from new on a missing topic got %zu of %d (first seq %lld)", distinct, N,
                 m ? (long long)msgs[0].seq : -1LL);
    it_msgs_free(msgs, m);
    free(out);
    it_proc_destroy(&c);
}

//  Issue 12 item 8: ack_floor is JetStream's (the highest seq such that
//  every seq <= it is acked), next_unacked the lowest seq not yet acked.
Test(groups, ack_floor_and_next_unacked, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker("--ack-wait", "60s", NULL);
    it_pub(b, "it.floor", "f{n}", 3);
    char line[1024];
    cr_assert(it_group_line(b, "it.floor", "all", line, sizeof line) == false);
    it_msg_t *msgs;
    size_t m = s_sub(b, "it.floor", "all", 3, "3s", NULL, &msgs);
    cr_assert_eq(m, 3);
    it_msgs_free(msgs, m);
    //  Acks are queued, not waited for: poll until the counter has them.
    cr_assert_eq(it_group_wait(b, "it.floor", "all", "acked", 3, 10000, line, sizeof line), 3,
                 "groups: %s", line);
    cr_assert_eq(it_json_field(line, "ack_floor"), 3, "all acked: %s", line);
    cr_assert_eq(it_json_field(line, "next_unacked"), 4, "all acked: %s", line);

    //  Acks of 1 and 3 but not 2: the floor stays at 1.
    tern_client_options_t options;
    tern_client_options_init(&options);
    options.name = "it-floor";
    tern_client_t *client = tern_client_new(b->endpoint, &options);
    cr_assert(client);
    tern_sub_options_t so;
    tern_sub_options_init(&so);
    so.group = "gap";
    tern_subscription_t *sub = NULL;
    cr_assert_eq(tern_subscribe(client, "it.floor", &so, NULL, NULL, &sub), TERN_OK);
    for (uint64_t seq = 1; seq <= 3; seq++) {
        tern_message_t *msg = NULL;
        cr_assert_eq(tern_subscription_next(sub, 10000, &msg), TERN_OK, "message %llu",
                     (unsigned long long)seq);
        cr_assert_eq(tern_message_seq(msg), seq);
        if (seq != 2) {
            cr_assert_eq(tern_message_ack(msg, false), TERN_OK);
        }
        tern_message_destroy(&msg);
    }
    cr_assert_eq(it_group_wait(b, "it.floor", "gap", "acked", 2, 10000, line, sizeof line), 2,
                 "groups: %s", line);
    cr_assert_eq(it_json_field(line, "ack_floor"), 1, "2 unacked: %s", line);
    cr_assert_eq(it_json_field(line, "next_unacked"), 2, "2 unacked: %s", line);
    cr_assert_eq(it_json_field(line, "pending"), 1, "2 unacked: %s", line);
    tern_client_destroy(&client);

    //  The text table has both columns.
    char *argv[] = {(char *)it_ternctl_path(), "-s", b->endpoint, "groups", "it.floor", NULL};
    it_result_t r;
    it_run(&r, 10000, NULL, argv);
    it_assert_ok(&r, "ternctl groups (text)");
    cr_assert(strstr(r.out, "ACK_FLOOR") || strstr(r.out, "ack_floor"), "%s", r.out);
    cr_assert(strstr(r.out, "NEXT_UNACKED") || strstr(r.out, "next_unacked"), "%s", r.out);
    it_result_free(&r);
    //  ... and its help defines them.
    char *hargv[] = {(char *)it_ternctl_path(), "groups", "--help", NULL};
    it_run(&r, 10000, NULL, hargv);
    it_assert_ok(&r, "ternctl groups --help");
    cr_assert(strstr(r.out, "    ack_floor ") && strstr(r.out, "    next_unacked "), "%s", r.out);
    it_result_free(&r);
}
