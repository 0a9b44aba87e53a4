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

//  A consumer of TOPIC in GROUP that acks nothing, left running until the
//  test stops it; returned once it has printed WANT messages.
static it_proc_t *s_hold(it_broker_t *b, const char *topic, const char *group, size_t want) {
    it_proc_t *p = it_ctl_spawn(b, "sub", topic, "--group", group, "--no-ack", "--count", "1000",
                                "--timeout", "60s", NULL);
    cr_assert(p);
    cr_assert(it_proc_wait_lines(p, want, 10000), "the --no-ack consumer got %zu of %zu messages",
              it_proc_lines(p), want);
    return p;
}

//  Kills P (SIGKILL: no BYE) and parses what it printed into *MSGS; returns
//  the count (free with it_msgs_free).
static size_t s_kill_held(it_proc_t *p, it_msg_t **msgs) {
    it_proc_signal(p, SIGKILL);
    it_proc_wait(p, 5000);
    char *out = it_proc_out(p);
    size_t m = it_parse_msgs(out, msgs);
    free(out);
    return m;
}

//  `ternctl pub TOPIC DATA --ttl TTL`.
static void s_pub_ttl(it_broker_t *b, const char *topic, const char *data, const char *ttl) {
    it_result_t r;
    it_ctl(&r, b, 15000, "pub", topic, data, "--ttl", ttl, NULL);
    it_assert_ok(&r, "ternctl pub --ttl");
    it_result_free(&r);
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
        cr_assert_eq(it_json_field(lines[i], "delivery_count"), 3);
        int64_t seq = it_json_field(lines[i], "seq");
        cr_assert(seq == 1 || seq == 2);
        cr_assert_gt(it_json_field(lines[i], "msg_id"), 0);
        cr_assert_gt(it_json_field(lines[i], "dead_at_ms"), 1700000000000LL);
    }
    free(lines);
    it_result_free(&r);

    char line[1024];
    cr_assert(it_group_line(b, "it.nack", "g", line, sizeof line), "group g not listed");
    cr_assert_eq(it_json_field(line, "dead"), 2, "groups: %s", line);
    cr_assert_eq(it_json_field(line, "pending"), 0, "groups: %s", line);
    cr_assert_geq(it_json_field(line, "redelivered"), 4, "groups: %s", line);
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
        cr_assert_eq(it_json_field(lines[i], "delivery_count"), 1);
    }
    free(lines);
    it_result_free(&r);

    it_ctl(&r, b, 10000, "dlq", "replay", "it.term", "--group", "g", NULL);
    it_assert_ok(&r, "ternctl dlq replay");
    cr_assert_eq(it_json_field(r.out, "replayed"), 2, "replay: %s", r.out);
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
    cr_assert(it_group_line(b, "it.term", "g", line, sizeof line));
    cr_assert_eq(it_json_field(line, "dead"), 0, "groups: %s", line);
    cr_assert_eq(it_json_field(line, "pending"), 0, "groups: %s", line);
    //  Both acked after the replay: everything up to 2 is settled.
    cr_assert_eq(it_json_field(line, "ack_floor"), 2, "groups: %s", line);
    cr_assert_eq(it_json_field(line, "next_unacked"), 3, "groups: %s", line);
}

Test(redelivery, groups_json_counters, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker("--ack-wait", "60s", NULL);
    it_pub(b, "it.cnt", "c{n}", 10);
    it_result_t r;
    it_ctl(&r, b, 15000, "sub", "it.cnt", "--group", "g", "--count", "4", "--timeout", "3s", NULL);
    it_assert_ok(&r, "ternctl sub");
    it_result_free(&r);
    //  sub sends its acks and exits without waiting for them to be
    //  applied: wait until the broker has taken all four.
    char line[1024];
    int64_t settle = it_now_ms() + 5000;
    for (;;) {
        cr_assert(it_group_line(b, "it.cnt", "g", line, sizeof line), "group g not listed");
        if (it_json_field(line, "acked") >= 4 || it_now_ms() > settle) {
            break;
        }
        it_sleep_ms(50);
    }
    cr_assert_eq(it_json_field(line, "ack_floor"), 4, "groups: %s", line);
    cr_assert_eq(it_json_field(line, "next_unacked"), 5, "groups: %s", line);
    cr_assert_eq(it_json_field(line, "dead"), 0, "groups: %s", line);
    cr_assert_eq(it_json_field(line, "acked"), 4, "groups: %s", line);

    //  A consumer that does not ack, kept alive: its messages are pending.
    it_proc_t *p = s_hold(b, "it.cnt", "g", 3);
    cr_assert(it_group_line(b, "it.cnt", "g", line, sizeof line));
    cr_assert_geq(it_json_field(line, "pending"), 3, "groups while unacked: %s", line);
    cr_assert_eq(it_json_field(line, "next_unacked"), 5, "groups: %s", line);
    cr_assert_eq(it_json_field(line, "consumers"), 1, "groups: %s", line);
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
    it_proc_t *victim = s_hold(b, "it.crash", "w", 10);
    it_msg_t *vm;
    size_t vn = s_kill_held(victim, &vm);

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

//  Number of DLQ entries of GROUP on TOPIC; the first one's JSON copied into
//  LINE (if any).
static size_t s_dlq(it_broker_t *b, const char *topic, const char *group, char *line, size_t cap) {
    it_result_t r;
    it_ctl(&r, b, 10000, "dlq", "list", topic, "--group", group, NULL);
    it_assert_ok(&r, "ternctl dlq list");
    char **lines;
    size_t n = it_split_lines(r.out, &lines);
    if (n) {
        snprintf(line, cap, "%s", lines[0]);
    }
    free(lines);
    it_result_free(&r);
    return n;
}

//  `ternctl audit TOPIC --group G`: the group's line must show DEAD dead,
//  nothing pending and no stuck entries.
static void s_assert_not_stuck(it_broker_t *b, const char *topic, const char *group, int64_t dead) {
    it_result_t r;
    it_ctl(&r, b, 10000, "audit", topic, "--group", group, NULL);
    it_assert_ok(&r, "ternctl audit");
    cr_assert_eq(it_json_field(r.out, "pending"), 0, "audit: %s", r.out);
    cr_assert_eq(it_json_field(r.out, "dead"), dead, "audit: %s", r.out);
    const char *stuck = NULL;
    size_t len = 0;
    cr_assert(it_json_raw(r.out, "stuck", &stuck, &len), "audit: %s", r.out);
    cr_assert(len == 2 && !strncmp(stuck, "[]", 2), "audit lists stuck entries: %s", r.out);
    it_result_free(&r);
}

//  Receives one message of TOPIC in GROUP without acking it, from a consumer
//  that then leaves (BYE); returns its delivery count.
static int64_t s_take_one(it_broker_t *b, const char *topic, const char *group) {
    it_result_t r;
    it_ctl(&r, b, 15000, "sub", topic, "--group", group, "--no-ack", "--count", "1", "--timeout",
           "5s", NULL);
    it_assert_ok(&r, "ternctl sub --no-ack --count 1");
    it_msg_t *msgs;
    size_t m = it_parse_msgs(r.out, &msgs);
    cr_assert_eq(m, 1, "expected one message, got %zu:\n%s", m, r.out);
    int64_t count = msgs[0].delivery_count;
    it_msgs_free(msgs, m);
    it_result_free(&r);
    return count;
}

//  Issue 12 item 2: the last delivery's consumer dies and none is left. The
//  ack wait (60 s) cannot help: the session's end must dead-letter it.
Test(redelivery, max_deliver_dead_letters_without_consumer, .fini = it_teardown, .timeout = 90) {
    it_broker_t *b = it_start_broker("--ack-wait", "60s", "--max-deliver", "2", "--heartbeat",
                                     "200ms", "--heartbeat-timeout", "600ms", NULL);
    it_pub(b, "it.lonely", "poison", 1);
    cr_assert_eq(s_take_one(b, "it.lonely", "g"), 1);
    //  The last delivery goes to a consumer that is killed (no BYE).
    it_proc_t *p = s_hold(b, "it.lonely", "g", 1);
    it_msg_t *msgs;
    size_t m = s_kill_held(p, &msgs);
    cr_assert_eq(m, 1, "the last consumer got %zu messages", m);
    cr_assert_eq(msgs[0].delivery_count, 2);
    it_msgs_free(msgs, m);
    it_proc_destroy(&p);

    //  No consumer now: the group still dead-letters it.
    char line[1024];
    int64_t pending = it_group_wait(b, "it.lonely", "g", "pending", 0, 15000, line, sizeof line);
    cr_assert_eq(pending, 0, "still pending with no consumer: %s", line);
    cr_assert_eq(it_json_field(line, "dead"), 1, "groups: %s", line);
    cr_assert_eq(it_json_field(line, "consumers"), 0, "groups: %s", line);
    cr_assert_eq(s_dlq(b, "it.lonely", "g", line, sizeof line), 1, "not in the DLQ");
    char reason[64] = "";
    cr_assert(it_json_str(line, "reason", reason, sizeof reason));
    cr_assert_str_eq(reason, "max_deliver");
    cr_assert_eq(it_json_field(line, "delivery_count"), 2, "dlq: %s", line);
    s_assert_not_stuck(b, "it.lonely", "g", 1);
}

//  Issue 12 item 2: a delivered, unacked message whose TTL runs out while no
//  consumer is attached leaves the pending set on time (as expired).
Test(redelivery, expired_pending_dropped_without_consumer, .fini = it_teardown, .timeout = 90) {
    it_broker_t *b = it_start_broker("--ack-wait", "60s", NULL);
    s_pub_ttl(b, "it.ttlpend", "brief", "2s");
    cr_assert_eq(s_take_one(b, "it.ttlpend", "g"), 1);
    char line[1024];
    int64_t pending = it_group_wait(b, "it.ttlpend", "g", "pending", 0, 15000, line, sizeof line);
    cr_assert_eq(pending, 0, "expired message still pending: %s", line);
    cr_assert_eq(it_json_field(line, "dead"), 0, "groups: %s", line);
    s_assert_not_stuck(b, "it.ttlpend", "g", 0);
}

//  After a restart nobody subscribes: the groups' timers run anyway, for a
//  message whose last delivery died with the old process and for one whose
//  TTL runs out.
Test(redelivery, timers_run_after_restart_without_consumer, .fini = it_teardown, .timeout = 120) {
    it_broker_t *b = it_start_broker("--ack-wait", "60s", "--max-deliver", "2", NULL);
    it_pub(b, "it.rs.dlq", "poison", 1);
    s_pub_ttl(b, "it.rs.ttl", "brief", "4s");
    cr_assert_eq(s_take_one(b, "it.rs.dlq", "g"), 1);
    it_proc_t *held[2] = {s_hold(b, "it.rs.dlq", "g", 1), s_hold(b, "it.rs.ttl", "g", 1)};
    //  Wait until both deliveries are stored (the counters commit with them).
    char line[1024];
    int64_t deadline = it_now_ms() + 10000;
    while (true) {
        cr_assert(it_group_line(b, "it.rs.dlq", "g", line, sizeof line));
        int64_t redelivered = it_json_field(line, "redelivered");
        cr_assert(it_group_line(b, "it.rs.ttl", "g", line, sizeof line));
        if ((redelivered >= 1 && it_json_field(line, "delivered") >= 1) || it_now_ms() > deadline) {
            cr_assert_geq(redelivered, 1, "the second delivery was not stored");
            cr_assert_geq(it_json_field(line, "delivered"), 1, "the delivery was not stored: %s",
                          line);
            break;
        }
        it_sleep_ms(50);
    }
    it_broker_kill(b);
    for (int i = 0; i < 2; i++) {
        it_proc_signal(held[i], SIGKILL);
        it_proc_wait(held[i], 5000);
        it_proc_destroy(&held[i]);
    }
    cr_assert(it_broker_start(b), "restart failed");

    int64_t pending = it_group_wait(b, "it.rs.dlq", "g", "pending", 0, 15000, line, sizeof line);
    cr_assert_eq(pending, 0, "spent message still pending after restart: %s", line);
    cr_assert_eq(s_dlq(b, "it.rs.dlq", "g", line, sizeof line), 1, "not in the DLQ");
    pending = it_group_wait(b, "it.rs.ttl", "g", "pending", 0, 15000, line, sizeof line);
    cr_assert_eq(pending, 0, "expired message still pending after restart: %s", line);
    cr_assert_eq(s_dlq(b, "it.rs.ttl", "g", line, sizeof line), 0, "expired message dead-lettered");
    s_assert_not_stuck(b, "it.rs.dlq", "g", 1);
    s_assert_not_stuck(b, "it.rs.ttl", "g", 0);
}
