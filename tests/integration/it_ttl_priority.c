/*  it_ttl_priority.c - message expiry (explicit ttl and named classes) and
    backlog order (highest priority first, FIFO within a priority).
*/
#include "harness.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Test(ttl, expired_message_is_not_delivered, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker(NULL);
    it_result_t r;
    it_ctl(&r, b, 15000, "pub", "it.ttl", "short-lived", "--ttl", "300ms", NULL);
    it_assert_ok(&r, "ternctl pub --ttl 300ms");
    it_result_free(&r);
    it_ctl(&r, b, 15000, "pub", "it.ttl", "long-lived", "--ttl", "1h", NULL);
    it_assert_ok(&r, "ternctl pub --ttl 1h");
    it_result_free(&r);
    it_ctl(&r, b, 15000, "pub", "it.ttl", "forever", NULL);
    it_assert_ok(&r, "ternctl pub");
    it_result_free(&r);
    it_sleep_ms(1100);

    it_ctl(&r, b, 15000, "sub", "it.ttl", "--group", "late", "--count", "10", "--timeout", "1500ms",
           NULL);
    it_assert_ok(&r, "ternctl sub");
    it_msg_t *msgs;
    size_t m = it_parse_msgs(r.out, &msgs);
    cr_assert_eq(m, 2, "expected the 2 unexpired messages, got %zu:\n%s", m, r.out);
    for (size_t i = 0; i < m; i++) {
        cr_assert_str_neq(msgs[i].data, "short-lived", "an expired message was delivered");
    }
    cr_assert_str_eq(msgs[0].data, "long-lived");
    cr_assert_str_eq(msgs[1].data, "forever");
    it_msgs_free(msgs, m);
    it_result_free(&r);

    //  An ephemeral subscriber does not see it either.
    it_ctl(&r, b, 15000, "sub", "it.ttl", "--from", "first", "--count", "10", "--timeout", "1s",
           NULL);
    it_assert_ok(&r, "ternctl sub (ephemeral)");
    cr_assert_null(strstr(r.out, "short-lived"), "expired message delivered:\n%s", r.out);
    it_result_free(&r);
}

Test(ttl, class_instant_is_accepted, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker(NULL);
    it_result_t r;
    it_ctl(&r, b, 15000, "pub", "it.cls", "instant msg", "--class", "instant", NULL);
    it_assert_ok(&r, "ternctl pub --class instant");
    it_result_free(&r);
    it_ctl(&r, b, 15000, "pub", "it.cls", "business msg", "--class", "business", NULL);
    it_assert_ok(&r, "ternctl pub --class business");
    it_result_free(&r);
    it_ctl(&r, b, 15000, "sub", "it.cls", "--from", "first", "--count", "2", "--timeout", "3s",
           NULL);
    it_assert_ok(&r, "ternctl sub");
    it_msg_t *msgs;
    size_t m = it_parse_msgs(r.out, &msgs);
    cr_assert_eq(m, 2, "got:\n%s", r.out);
    cr_assert_str_eq(msgs[0].data, "instant msg");
    it_msgs_free(msgs, m);
    it_result_free(&r);

    it_ctl(&r, b, 15000, "pub", "it.cls", "x", "--class", "no-such-class", NULL);
    cr_assert_neq(r.status, 0, "an unknown ttl class was accepted:\n%s", r.out);
    it_result_free(&r);
}

Test(ttl, class_duration_comes_from_config, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker("--ttl-instant", "1s", "--sweep-interval", "200ms", NULL);
    it_result_t r;
    it_ctl(&r, b, 15000, "pub", "it.cls2", "instant", "--class", "instant", NULL);
    it_assert_ok(&r, "ternctl pub --class instant");
    it_result_free(&r);
    it_ctl(&r, b, 15000, "pub", "it.cls2", "sync", "--class", "sync", NULL);
    it_assert_ok(&r, "ternctl pub --class sync");
    it_result_free(&r);
    it_sleep_ms(1600);
    it_ctl(&r, b, 15000, "sub", "it.cls2", "--from", "first", "--count", "10", "--timeout",
           "1500ms", NULL);
    it_assert_ok(&r, "ternctl sub");
    it_msg_t *msgs;
    size_t m = it_parse_msgs(r.out, &msgs);
    cr_assert_eq(m, 1, "with --ttl-instant 1s, after 1.6 s: %zu messages:\n%s", m, r.out);
    cr_assert_str_eq(msgs[0].data, "sync");
    it_msgs_free(msgs, m);
    it_result_free(&r);
}

Test(ttl, expired_while_pending_is_not_redelivered, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker("--backoff", "1500ms", "--ack-wait", "60s", NULL);
    it_result_t r;
    it_ctl(&r, b, 15000, "pub", "it.ttl3", "fleeting", "--ttl", "1s", NULL);
    it_assert_ok(&r, "pub --ttl 1s");
    it_result_free(&r);
    //  NACKed at once; the redelivery (1.5 s later) would be after the expiry.
    it_ctl(&r, b, 15000, "sub", "it.ttl3", "--group", "g", "--nack", "--count", "10", "--timeout",
           "2500ms", NULL);
    it_assert_ok(&r, "sub --nack");
    it_msg_t *msgs;
    size_t m = it_parse_msgs(r.out, &msgs);
    cr_assert_eq(m, 1, "a message expired while pending was redelivered:\n%s", r.out);
    it_msgs_free(msgs, m);
    it_result_free(&r);
}

Test(priority, backlog_highest_first_fifo_within, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker(NULL);
    struct {
        const char *prio;
        const char *data;
    } sent[] = {{"1", "p1-a"}, {"4", "p4-a"}, {"9", "p9-a"}, {"1", "p1-b"},
                {"9", "p9-b"}, {"0", "p0-a"}, {"4", "p4-b"}, {"9", "p9-c"}};
    const char *want[] = {"p9-a", "p9-b", "p9-c", "p4-a", "p4-b", "p1-a", "p1-b", "p0-a"};
    size_t count = sizeof sent / sizeof sent[0];
    for (size_t i = 0; i < count; i++) {
        it_result_t r;
        it_ctl(&r, b, 15000, "pub", "it.prio", sent[i].data, "--priority", sent[i].prio, NULL);
        it_assert_ok(&r, "ternctl pub --priority");
        it_result_free(&r);
    }
    it_result_t r;
    it_ctl(&r, b, 15000, "sub", "it.prio", "--group", "g", "--count", "8", "--timeout", "3s", NULL);
    it_assert_ok(&r, "ternctl sub");
    it_msg_t *msgs;
    size_t m = it_parse_msgs(r.out, &msgs);
    cr_assert_eq(m, count, "got:\n%s", r.out);
    for (size_t i = 0; i < m; i++) {
        cr_assert_str_eq(msgs[i].data, want[i], "position %zu: got %s, want %s\nfull output:\n%s",
                         i, msgs[i].data, want[i], r.out);
        char p[4] = {msgs[i].data[1], 0};
        cr_assert_eq(msgs[i].priority, atoi(p));
    }
    it_msgs_free(msgs, m);
    it_result_free(&r);

    it_ctl(&r, b, 15000, "pub", "it.prio", "bad", "--priority", "10", NULL);
    cr_assert_neq(r.status, 0, "priority 10 was accepted");
    it_result_free(&r);
}
