/*  it_pubsub.c - publish/subscribe round trips through real ternd and ternctl.

    Byte-exact payloads (text through stdin, binary through a raw client),
    headers, key, priority, trace ids (given and generated), wildcards.
*/
#include "harness.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IT_TRACE "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

//  Publishes one payload through a raw client (optionally with a trace id)
//  and asserts a successful PUBACK.
static void s_raw_publish(it_broker_t *b, const char *topic, const void *payload, size_t size,
                          const char *trace) {
    it_raw_t *raw = it_raw_new(b->endpoint);
    cr_assert(raw);
    cr_assert(it_raw_hello(raw, "it-raw"), "no WELCOME to HELLO");
    tern_frame_t f;
    tern_frame_init(&f, TERN_CMD_PUBLISH);
    f.req_id = 42;
    snprintf(f.topic, sizeof f.topic, "%s", topic);
    f.fields |= TERN_F_TOPIC | TERN_F_PAYLOAD;
    if (trace) {
        snprintf(f.trace_id, sizeof f.trace_id, "%s", trace);
        f.fields |= TERN_F_TRACE;
    }
    f.payload = payload;
    f.payload_size = size;
    cr_assert_eq(it_raw_send_frame(raw, &f), TERN_OK);
    tern_frame_t reply;
    tern_err_t rc = it_raw_recv_reply(raw, &reply, 5000);
    cr_assert_eq(rc, TERN_OK, "no PUBACK (%s)", tern_errname(rc));
    cr_assert_eq(reply.cmd, TERN_CMD_PUBACK, "got %s (code %u: %s) instead of PUBACK",
                 tern_cmd_name(reply.cmd), reply.code, reply.reason);
    cr_assert_geq(reply.ack_count, 1);
    tern_puback_t ack;
    cr_assert_eq(tern_frame_puback(&reply, 0, &ack), TERN_OK);
    cr_assert_eq(ack.req_id, 42);
    cr_assert_eq(ack.code, 0, "PUBACK code %u (%s)", ack.code, tern_errname((int)ack.code));
    cr_assert_gt(ack.msg_id, 0);
    it_raw_destroy(&raw);
}

Test(pubsub, round_trip, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker(NULL);
    it_result_t r;
    it_ctl(&r, b, 15000, "pub", "it.rt", "hello {n}", "--count", "3", NULL);
    it_assert_ok(&r, "ternctl pub");
    char **lines;
    size_t n = it_split_lines(r.out, &lines);
    cr_assert_eq(n, 3, "expected 3 ack lines, got %zu:\n%s", n, r.out);
    int64_t ids[3];
    for (size_t i = 0; i < n; i++) {
        int64_t seq = 0;
        bool dup = true;
        char topic[64] = "";
        cr_assert(it_json_int(lines[i], "seq", &seq), "no seq in %s", lines[i]);
        cr_assert(it_json_int(lines[i], "msg_id", &ids[i]), "no msg_id in %s", lines[i]);
        cr_assert(it_json_bool(lines[i], "duplicate", &dup), "no duplicate in %s", lines[i]);
        cr_assert(it_json_str(lines[i], "topic", topic, sizeof topic), "no topic: %s", lines[i]);
        cr_assert_eq(seq, (int64_t)i + 1);
        cr_assert_gt(ids[i], 0);
        cr_assert_not(dup);
        cr_assert_str_eq(topic, "it.rt");
        for (size_t j = 0; j < i; j++) {
            cr_assert_neq(ids[i], ids[j], "msg_id reused");
        }
    }
    free(lines);
    it_result_free(&r);

    it_ctl(&r, b, 15000, "sub", "it.rt", "--from", "first", "--count", "3", "--timeout", "3s",
           NULL);
    it_assert_ok(&r, "ternctl sub");
    it_msg_t *msgs;
    size_t m = it_parse_msgs(r.out, &msgs);
    cr_assert_eq(m, 3, "expected 3 messages, got %zu:\n%s\n%s", m, r.out, r.err);
    for (size_t i = 0; i < m; i++) {
        char want[32];
        snprintf(want, sizeof want, "hello %zu", i + 1);
        cr_assert_str_eq(msgs[i].topic, "it.rt");
        cr_assert_eq(msgs[i].seq, (int64_t)i + 1);
        cr_assert_eq(msgs[i].msg_id, ids[i], "msg_id differs between PUBACK and DELIVER");
        cr_assert(msgs[i].data, "no data in message %zu", i);
        cr_assert_str_eq(msgs[i].data, want);
        cr_assert_eq(msgs[i].delivery_count, 1);
        cr_assert_eq(msgs[i].priority, TERN_PRIORITY_DEFAULT);
        cr_assert_str_eq(msgs[i].origin, "dc1");
        cr_assert_gt(msgs[i].timestamp_ns, 0);
    }
    it_msgs_free(msgs, m);
    it_result_free(&r);
}

Test(pubsub, stdin_lines_byte_exact, .fini = it_teardown, .timeout = 60) {
    static const char *texts[] = {
        "plain",
        "with \"quotes\", \\backslashes\\ and {braces}",
        "utf-8: \xc3\xa9t\xc3\xa9 \xe2\x9c\x93 \xf0\x9d\x84\x9e",
        "tab\there and  spaces  ",
        "{\"json\":\"inside\",\"seq\":99}",
    };
    size_t count = sizeof texts / sizeof texts[0];
    char input[1024] = "";
    for (size_t i = 0; i < count; i++) {
        strcat(input, texts[i]);
        strcat(input, "\n");
    }
    it_broker_t *b = it_start_broker(NULL);
    it_result_t r;
    it_ctl_in(&r, b, 15000, input, "pub", "it.stdin", NULL);
    it_assert_ok(&r, "ternctl pub from stdin");
    char **lines;
    size_t n = it_split_lines(r.out, &lines);
    cr_assert_eq(n, count, "expected %zu ack lines, got %zu", count, n);
    free(lines);
    it_result_free(&r);

    it_ctl(&r, b, 15000, "sub", "it.stdin", "--from", "first", "--count", "5", "--timeout", "3s",
           NULL);
    it_assert_ok(&r, "ternctl sub");
    it_msg_t *msgs;
    size_t m = it_parse_msgs(r.out, &msgs);
    cr_assert_eq(m, count, "expected %zu messages, got %zu:\n%s", count, m, r.out);
    for (size_t i = 0; i < m; i++) {
        cr_assert(msgs[i].data);
        cr_assert_eq(msgs[i].data_len, strlen(texts[i]), "length of message %zu", i);
        cr_assert(memcmp(msgs[i].data, texts[i], msgs[i].data_len) == 0,
                  "message %zu differs: got '%s' want '%s'", i, msgs[i].data, texts[i]);
    }
    it_msgs_free(msgs, m);
    it_result_free(&r);
}

//  Binary payloads come back byte-exact, from empty to the 1 MiB maximum:
//  each is copied and summed in one pass into its log record
//  (tern_crc32c_copy) and every delivery verifies that CRC, so a wrong sum
//  or a wrong byte fails here (64 KB and 90 KB cover the CRC's lane blocks).
Test(pubsub, binary_payload_byte_exact, .fini = it_teardown, .timeout = 120) {
    it_broker_t *b = it_start_broker(NULL);
    size_t sizes[] = {4096, 0, 65536, 65536 + 24576 + 13, 1048576};
    size_t count = sizeof sizes / sizeof sizes[0];
    uint8_t *bytes = malloc(1048576 + count);
    cr_assert(bytes);
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < 1048576 + count; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        bytes[i] = (uint8_t)x;
    }
    for (size_t i = 0; i < count; i++) {
        s_raw_publish(b, "it.bin", bytes + i, sizes[i], NULL);
    }
    it_result_t r;
    it_ctl(&r, b, 30000, "sub", "it.bin", "--from", "first", "--count", "5", "--timeout", "5s",
           NULL);
    it_assert_ok(&r, "ternctl sub");
    it_msg_t *msgs;
    size_t m = it_parse_msgs(r.out, &msgs);
    cr_assert_eq(m, count, "expected %zu messages, got %zu", count, m);
    for (size_t i = 0; i < count; i++) {
        cr_assert(msgs[i].data, "no data / data_b64 for message %zu", i);
        cr_assert_eq(msgs[i].data_len, sizes[i], "message %zu: %zu bytes", i, msgs[i].data_len);
        cr_assert(memcmp(msgs[i].data, bytes + i, sizes[i]) == 0, "payload %zu altered", i);
    }
    it_msgs_free(msgs, m);
    it_result_free(&r);
    free(bytes);
}

Test(pubsub, size_padding, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker(NULL);
    it_result_t r;
    it_ctl(&r, b, 15000, "pub", "it.size", "x", "--size", "1000", "--count", "2", NULL);
    it_assert_ok(&r, "ternctl pub --size 1000");
    it_result_free(&r);
    //  The default max payload is 1 MiB: exactly that is accepted.
    it_ctl(&r, b, 15000, "pub", "it.size.max", "x", "--size", "1048576", NULL);
    it_assert_ok(&r, "ternctl pub --size");
    it_result_free(&r);
    it_ctl(&r, b, 15000, "sub", "it.size", "--from", "first", "--count", "2", "--timeout", "3s",
           NULL);
    it_assert_ok(&r, "ternctl sub");
    it_msg_t *msgs;
    size_t m = it_parse_msgs(r.out, &msgs);
    cr_assert_eq(m, 2);
    for (size_t i = 0; i < m; i++) {
        cr_assert(msgs[i].data);
        cr_assert_eq(msgs[i].data_len, 1000, "--size 1000 gave %zu bytes", msgs[i].data_len);
    }
    it_msgs_free(msgs, m);
    it_result_free(&r);
    it_ctl(&r, b, 30000, "sub", "it.size.max", "--from", "first", "--count", "1", "--timeout", "3s",
           NULL);
    it_assert_ok(&r, "ternctl sub of a 1 MiB message");
    m = it_parse_msgs(r.out, &msgs);
    cr_assert_eq(m, 1);
    cr_assert_eq(msgs[0].data_len, 1048576, "1 MiB message came back with %zu bytes",
                 msgs[0].data_len);
    it_msgs_free(msgs, m);
    it_result_free(&r);
    it_ctl(&r, b, 15000, "pub", "it.size.max", "x", "--size", "1048577", NULL);
    cr_assert_neq(r.status, 0, "a payload over --max-payload was acknowledged:\n%s", r.out);
    it_result_free(&r);
}

Test(pubsub, headers_key_priority, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker(NULL);
    it_result_t r;
    it_ctl(&r, b, 15000, "pub", "it.hdr", "with headers", "--header", "a=1", "--header",
           "b=two words", "--header", "empty=", "--key", "order-7", "--priority", "7", NULL);
    it_assert_ok(&r, "ternctl pub with headers");
    it_result_free(&r);
    it_ctl(&r, b, 15000, "sub", "it.hdr", "--from", "first", "--count", "1", "--timeout", "3s",
           NULL);
    it_assert_ok(&r, "ternctl sub");
    it_msg_t *msgs;
    size_t m = it_parse_msgs(r.out, &msgs);
    cr_assert_eq(m, 1, "got:\n%s", r.out);
    cr_assert_str_eq(msgs[0].data, "with headers");
    cr_assert_str_eq(msgs[0].key, "order-7");
    cr_assert_eq(msgs[0].priority, 7);
    cr_assert(msgs[0].headers, "no headers object in %s", r.out);
    char v[64];
    cr_assert(it_json_str(msgs[0].headers, "a", v, sizeof v), "no header a: %s", msgs[0].headers);
    cr_assert_str_eq(v, "1");
    cr_assert(it_json_str(msgs[0].headers, "b", v, sizeof v), "no header b");
    cr_assert_str_eq(v, "two words");
    cr_assert(it_json_str(msgs[0].headers, "empty", v, sizeof v), "no header empty");
    cr_assert_str_eq(v, "");
    it_msgs_free(msgs, m);
    it_result_free(&r);
}

Test(pubsub, trace_id_given_is_kept, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker(NULL);
    s_raw_publish(b, "it.trace", "traced", 6, IT_TRACE);
    it_result_t r;
    it_ctl(&r, b, 15000, "sub", "it.trace", "--from", "first", "--count", "1", "--timeout", "3s",
           NULL);
    it_assert_ok(&r, "ternctl sub");
    it_msg_t *msgs;
    size_t m = it_parse_msgs(r.out, &msgs);
    cr_assert_eq(m, 1, "got:\n%s", r.out);
    cr_assert_str_eq(msgs[0].trace_id, IT_TRACE);
    cr_assert_str_eq(msgs[0].data, "traced");
    it_msgs_free(msgs, m);
    it_result_free(&r);
}

Test(pubsub, trace_id_generated_when_absent, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker(NULL);
    it_result_t r;
    it_ctl(&r, b, 15000, "pub", "it.trace2", "m{n}", "--count", "2", NULL);
    it_assert_ok(&r, "ternctl pub");
    it_result_free(&r);
    it_ctl(&r, b, 15000, "sub", "it.trace2", "--from", "first", "--count", "2", "--timeout", "3s",
           NULL);
    it_assert_ok(&r, "ternctl sub");
    it_msg_t *msgs;
    size_t m = it_parse_msgs(r.out, &msgs);
    cr_assert_eq(m, 2, "got:\n%s", r.out);
    for (size_t i = 0; i < m; i++) {
        const char *t = msgs[i].trace_id;
        cr_assert(tern_trace_valid(t, strlen(t)), "generated trace id '%s' is not valid", t);
        cr_assert_neq(strncmp(t + 3, "00000000000000000000000000000000", 32), 0,
                      "all-zero trace id");
    }
    cr_assert_str_neq(msgs[0].trace_id, msgs[1].trace_id, "two messages share a trace id");
    it_msgs_free(msgs, m);
    it_result_free(&r);
}

Test(pubsub, wildcards, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker(NULL);
    const char *topics[] = {"it.w.one.x", "it.w.two.x", "it.w.two.y", "it.other.one.x"};
    for (size_t i = 0; i < 4; i++) {
        it_result_t r;
        it_ctl(&r, b, 15000, "pub", topics[i], topics[i], NULL);
        it_assert_ok(&r, "ternctl pub");
        it_result_free(&r);
    }
    struct {
        const char *pattern;
        size_t want;
    } cases[] = {{"it.w.*.x", 2}, {"it.w.>", 3}, {"it.*.one.x", 2}, {"it.>", 4}};
    for (size_t c = 0; c < 4; c++) {
        it_result_t r;
        it_ctl(&r, b, 15000, "sub", cases[c].pattern, "--from", "first", "--count", "10",
               "--timeout", "1500ms", NULL);
        it_assert_ok(&r, "ternctl sub with a pattern");
        it_msg_t *msgs;
        size_t m = it_parse_msgs(r.out, &msgs);
        cr_assert_eq(m, cases[c].want, "pattern %s: %zu messages, want %zu:\n%s", cases[c].pattern,
                     m, cases[c].want, r.out);
        for (size_t i = 0; i < m; i++) {
            cr_assert(tern_pattern_match(cases[c].pattern, msgs[i].topic), "%s delivered to %s",
                      msgs[i].topic, cases[c].pattern);
            cr_assert_str_eq(msgs[i].data, msgs[i].topic);
        }
        it_msgs_free(msgs, m);
        it_result_free(&r);
    }
}

//  The session's heartbeat interval is the broker's (WELCOME.heartbeat_ms):
//  a quiet client must not be timed out by a broker with a short
//  --heartbeat-timeout, and a subscriber must not see a message twice.
Test(pubsub, idle_client_survives_short_broker_heartbeat, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker("--heartbeat", "200ms", "--heartbeat-timeout", "1s", NULL);
    it_result_t r;
    it_ctl(&r, b, 15000, "pub", "it.hb", "hb {n}", "--count", "20", NULL);
    it_assert_ok(&r, "ternctl pub");
    it_result_free(&r);
    //  Idle for 3 s after the backlog: three broker timeouts' worth.
    it_ctl(&r, b, 10000, "sub", "it.hb", "--from", "first", "--count", "1000", "--timeout", "3s",
           NULL);
    cr_assert_not(r.timed_out,
                  "ternctl sub --timeout 3s still running after 10 s; printed %zu "
                  "bytes (the session keeps timing out and re-subscribing?)",
                  r.out_len);
    it_assert_ok(&r, "ternctl sub");
    it_msg_t *msgs;
    size_t m = it_parse_msgs(r.out, &msgs);
    cr_assert_eq(m, 20,
                 "an idle ephemeral subscriber printed %zu messages for 20 published (the "
                 "session was timed out and re-subscribed from the start?)",
                 m);
    it_msgs_free(msgs, m);
    it_result_free(&r);
}
