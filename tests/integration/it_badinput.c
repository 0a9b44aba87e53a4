/*  it_badinput.c - garbage on the wire. A raw ZeroMQ DEALER sends random
    bytes, truncated msgpack, a wrong magic, an unknown command, an oversized
    payload, a bad topic name, a resend mark that is not a bool, ACK/NACK/TERM
    of unknown tags and commands before HELLO; each gets the expected ERROR, the session continues,
   ternd stays alive and ordinary clients keep working during and after.
*/
#include "harness.h"
#include "test_port.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Waits for the reply to a bad request: an ERROR (or a PUBACK entry with a
//  non-zero code, which the contract allows for a failed PUBLISH). Returns
//  its code, 0 for success, -1 on timeout; *REQ_ID_P gets the req_id.
static int s_reply_code(it_raw_t *raw, uint64_t *req_id_p, char *reason, size_t cap) {
    tern_frame_t f;
    tern_err_t rc = it_raw_recv_reply(raw, &f, 3000);
    if (rc == TERN_ETIMEOUT) {
        return -1;
    }
    cr_assert_eq(rc, TERN_OK, "the broker sent a frame we cannot decode (%s)", tern_errname(rc));
    if (f.cmd == TERN_CMD_ERROR) {
        if (req_id_p) {
            *req_id_p = f.req_id;
        }
        if (reason) {
            snprintf(reason, cap, "%s", f.reason);
        }
        return (int)f.code;
    }
    if (f.cmd == TERN_CMD_PUBACK && f.ack_count > 0) {
        tern_puback_t ack;
        cr_assert_eq(tern_frame_puback(&f, 0, &ack), TERN_OK);
        if (req_id_p) {
            *req_id_p = ack.req_id;
        }
        if (reason) {
            snprintf(reason, cap, "(PUBACK entry)");
        }
        return (int)ack.code;
    }
    cr_assert(false, "unexpected %s in reply to a bad request", tern_cmd_name(f.cmd));
    return -2;
}

static void s_expect_code(it_raw_t *raw, const char *what, int want, uint64_t want_req) {
    uint64_t req = 0;
    char reason[300] = "";
    int code = s_reply_code(raw, &req, reason, sizeof reason);
    cr_assert_neq(code, -1, "%s: no reply within 3 s", what);
    cr_assert_eq(code, want, "%s: code %d (%s) '%s', want %d (%s)", what, code, tern_errname(code),
                 reason, want, tern_errname(want));
    if (want_req) {
        cr_assert_eq(req, want_req, "%s: ERROR names req_id %llu, want %llu", what,
                     (unsigned long long)req, (unsigned long long)want_req);
    }
}

//  Any 1xx (decode) error is acceptable for random bytes: which check fails
//  first depends on the bytes.
static void s_expect_decode_error(it_raw_t *raw, const char *what) {
    char reason[300] = "";
    int code = s_reply_code(raw, NULL, reason, sizeof reason);
    cr_assert_neq(code, -1, "%s: no ERROR within 3 s", what);
    cr_assert(code >= 100 && code < 200, "%s: code %d (%s) '%s', want a 1xx decode error", what,
              code, tern_errname(code), reason);
}

static size_t s_encode(const tern_frame_t *f, uint8_t *buf, size_t cap) {
    size_t len = 0;
    tern_err_t rc = tern_frame_encode(f, buf, cap, &len);
    cr_assert_eq(rc, TERN_OK, "encoding %s: %s", tern_cmd_name(f->cmd), tern_errname(rc));
    return len;
}

static void s_publish_frame(tern_frame_t *f, uint64_t req, const char *topic, const void *payload,
                            size_t size) {
    tern_frame_init(f, TERN_CMD_PUBLISH);
    f->req_id = req;
    snprintf(f->topic, sizeof f->topic, "%s", topic);
    f->fields |= TERN_F_TOPIC | TERN_F_PAYLOAD;
    f->payload = payload;
    f->payload_size = size;
}

static void s_assert_alive(it_broker_t *b, const char *after) {
    int status = 0;
    if (!it_broker_alive(b, &status)) {
        it_broker_dump_log(b, false);
        cr_assert(false, "ternd died after %s (wait status %d)", after, status);
    }
}

static void s_valid_publish(it_raw_t *raw, uint64_t req) {
    tern_frame_t f;
    s_publish_frame(&f, req, "it.bad.ok", "still here", 10);
    cr_assert_eq(it_raw_send_frame(raw, &f), TERN_OK);
    tern_frame_t reply;
    tern_err_t rc = it_raw_recv_reply(raw, &reply, 5000);
    cr_assert_eq(rc, TERN_OK, "no reply to a valid PUBLISH after garbage (%s)", tern_errname(rc));
    cr_assert_eq(reply.cmd, TERN_CMD_PUBACK, "got %s (%u %s) to a valid PUBLISH",
                 tern_cmd_name(reply.cmd), reply.code, reply.reason);
    tern_puback_t ack;
    cr_assert_eq(tern_frame_puback(&reply, 0, &ack), TERN_OK);
    cr_assert_eq(ack.req_id, req);
    cr_assert_eq(ack.code, 0, "valid PUBLISH after garbage: code %u", ack.code);
}

//  Finds NEEDLE in HAY; returns its offset or -1.
static long s_find(const uint8_t *hay, size_t hay_len, const void *needle, size_t len) {
    for (size_t i = 0; i + len <= hay_len; i++) {
        if (memcmp(hay + i, needle, len) == 0) {
            return (long)i;
        }
    }
    return -1;
}

Test(badinput, garbage_frames_get_errors, .fini = it_teardown, .timeout = 120) {
    it_broker_t *b = it_start_broker("--max-payload", "1K", NULL);
    //  An ordinary consumer runs through all of it.
    it_proc_t *sub = it_ctl_spawn(b, "sub", "it.bad.ok", "--from", "first", "--wait", "--count",
                                  "2", "--timeout", "30s", NULL);
    cr_assert(sub);

    it_raw_t *raw = it_raw_new(b->endpoint);
    cr_assert(raw);

    //  Before HELLO: any other command is refused with ESTATE.
    tern_frame_t f;
    tern_frame_init(&f, TERN_CMD_ADMIN);
    f.req_id = 5;
    snprintf(f.name, sizeof f.name, "status");
    f.fields |= TERN_F_NAME;
    cr_assert_eq(it_raw_send_frame(raw, &f), TERN_OK);
    s_expect_code(raw, "ADMIN before HELLO", TERN_ESTATE, 5);

    //  HEARTBEAT and BYE before HELLO are ignored (no reply).
    tern_frame_init(&f, TERN_CMD_HEARTBEAT);
    cr_assert_eq(it_raw_send_frame(raw, &f), TERN_OK);
    tern_frame_t none;
    tern_err_t quiet = it_raw_recv_reply(raw, &none, 300);
    cr_assert_eq(quiet, TERN_ETIMEOUT, "HEARTBEAT before HELLO got %s (%u %s)",
                 tern_cmd_name(none.cmd), none.code, none.reason);

    cr_assert(it_raw_hello(raw, "it-garbage"), "no WELCOME after a refused request");
    uint8_t hdr[TERN_HEADER_MAX];
    size_t len;

    //  1. Bytes that are not msgpack at all (0xc1 is never used by msgpack).
    uint8_t junk[64];
    unsigned seed = 42;
    junk[0] = 0xc1;
    for (size_t i = 1; i < sizeof junk; i++) {
        junk[i] = (uint8_t)rand_r(&seed);
    }
    cr_assert(it_raw_send(raw, junk, sizeof junk, NULL, 0));
    s_expect_code(raw, "0xc1 garbage", TERN_EMALFORMED, 0);
    s_assert_alive(b, "0xc1 garbage");

    //  2. Random bytes.
    for (size_t i = 0; i < sizeof junk; i++) {
        junk[i] = (uint8_t)rand_r(&seed);
    }
    cr_assert(it_raw_send(raw, junk, sizeof junk, NULL, 0));
    s_expect_decode_error(raw, "random bytes");
    s_assert_alive(b, "random bytes");

    //  3. An empty header frame.
    cr_assert(it_raw_send(raw, "", 0, NULL, 0));
    s_expect_code(raw, "empty frame", TERN_EMALFORMED, 0);

    //  4. Truncated msgpack: a valid PUBLISH header cut in half.
    s_publish_frame(&f, 11, "it.bad.trunc", "abc", 3);
    len = s_encode(&f, hdr, sizeof hdr);
    cr_assert(it_raw_send(raw, hdr, len / 2, "abc", 3));
    s_expect_code(raw, "truncated header", TERN_EMALFORMED, 0);
    s_assert_alive(b, "truncated header");

    //  5. Wrong magic: the encoded uint16 0x544E replaced.
    tern_frame_init(&f, TERN_CMD_HEARTBEAT);
    f.req_id = 12;
    len = s_encode(&f, hdr, sizeof hdr);
    const uint8_t magic[3] = {0xcd, 0x54, 0x4e};
    long at = s_find(hdr, len, magic, 3);
    cr_assert_geq(at, 0, "magic 0x544E not found as a msgpack uint16 in the header");
    hdr[at + 1] = 0x12;
    hdr[at + 2] = 0x34;
    cr_assert(it_raw_send(raw, hdr, len, NULL, 0));
    s_expect_code(raw, "wrong magic", TERN_EMAGIC, 0);

    //  6. Unknown command: HEARTBEAT and BYE headers differ only in the
    //  command byte; put 99 there.
    tern_frame_init(&f, TERN_CMD_HEARTBEAT);
    f.req_id = 13;
    len = s_encode(&f, hdr, sizeof hdr);
    uint8_t hdr2[TERN_HEADER_MAX];
    tern_frame_init(&f, TERN_CMD_BYE);
    f.req_id = 13;
    size_t len2 = s_encode(&f, hdr2, sizeof hdr2);
    cr_assert_eq(len, len2);
    long diff = -1;
    int ndiff = 0;
    for (size_t i = 0; i < len; i++) {
        if (hdr[i] != hdr2[i]) {
            diff = (long)i;
            ndiff++;
        }
    }
    cr_assert_eq(ndiff, 1, "HEARTBEAT and BYE headers differ in %d bytes", ndiff);
    cr_assert_eq(hdr[diff], TERN_CMD_HEARTBEAT, "command not a positive fixint");
    hdr[diff] = 99;
    cr_assert(it_raw_send(raw, hdr, len, NULL, 0));
    s_expect_code(raw, "unknown command 99", TERN_ECOMMAND, 13);
    s_assert_alive(b, "unknown command");

    //  7. A payload over --max-payload 1K.
    static uint8_t big[2048];
    memset(big, 'B', sizeof big);
    s_publish_frame(&f, 14, "it.bad.big", big, sizeof big);
    cr_assert_eq(it_raw_send_frame(raw, &f), TERN_OK);
    s_expect_code(raw, "2 KB payload over --max-payload 1K", TERN_ETOOBIG, 14);

    //  Exactly at the limit is fine.
    s_publish_frame(&f, 15, "it.bad.big", big, 1024);
    cr_assert_eq(it_raw_send_frame(raw, &f), TERN_OK);
    s_expect_code(raw, "1024-byte payload with --max-payload 1K", TERN_OK, 15);

    //  8. A bad topic name (the encoder refuses one, so patch the bytes).
    s_publish_frame(&f, 16, "badtopic.xxxx", "x", 1);
    len = s_encode(&f, hdr, sizeof hdr);
    at = s_find(hdr, len, "badtopic.xxxx", 13);
    cr_assert_geq(at, 0);
    memcpy(hdr + at, "bad topic!xxx", 13);
    cr_assert(it_raw_send(raw, hdr, len, "x", 1));
    s_expect_code(raw, "topic 'bad topic!xxx'", TERN_ETOPIC, 16);
    memcpy(hdr + at, "bad..topicxxx", 13);
    cr_assert(it_raw_send(raw, hdr, len, "x", 1));
    s_expect_code(raw, "topic 'bad..topicxxx'", TERN_ETOPIC, 16);

    //  9. ACK / NACK / TERM of a subscription and tag that do not exist.
    tern_cmd_t acks[3] = {TERN_CMD_ACK, TERN_CMD_NACK, TERN_CMD_TERM};
    for (int i = 0; i < 3; i++) {
        tern_frame_init(&f, acks[i]);
        f.req_id = 20 + (uint64_t)i;
        f.sub_id = 9999;
        f.tag = 7;
        cr_assert_eq(it_raw_send_frame(raw, &f), TERN_OK);
        char what[64];
        snprintf(what, sizeof what, "%s of an unknown sub/tag", tern_cmd_name(acks[i]));
        s_expect_code(raw, what, TERN_ENOTFOUND, 20 + (uint64_t)i);
    }

    //  10. PUBLISH without its payload frame, and with three frames.
    s_publish_frame(&f, 30, "it.bad.frames", "x", 1);
    len = s_encode(&f, hdr, sizeof hdr);
    cr_assert(it_raw_send(raw, hdr, len, NULL, 0));
    s_expect_code(raw, "PUBLISH without a payload frame", TERN_EFRAMES, 0);
    const void *parts[3] = {hdr, "x", "y"};
    size_t sizes[3] = {len, 1, 1};
    cr_assert(it_raw_send_parts(raw, parts, sizes, 3));
    s_expect_code(raw, "three frames", TERN_EFRAMES, 0);

    //  11. The resend mark `rs` (docs/protocol.md, "Producer order") as a
    //  number instead of a bool: ETYPE naming the request. A well-formed
    //  one is stored like any publish (a single node has no sticky refusals).
    s_publish_frame(&f, 31, "it.bad.rs", "x", 1);
    f.resend = true;
    len = s_encode(&f, hdr, sizeof hdr);
    const uint8_t mark[4] = {0xa2, 'r', 's', 0xc3};
    at = s_find(hdr, len, mark, sizeof mark);
    cr_assert_geq(at, 0, "rs true not found in the header");
    cr_assert(it_raw_send(raw, hdr, len, "x", 1));
    s_expect_code(raw, "PUBLISH rs true", TERN_OK, 31);
    hdr[at + 3] = 0x01;
    cr_assert(it_raw_send(raw, hdr, len, "x", 1));
    s_expect_code(raw, "PUBLISH rs 1 (not a bool)", TERN_ETYPE, 31);

    //  A normal client works in the middle of it.
    it_result_t r;
    it_ctl(&r, b, 15000, "pub", "it.bad.ok", "during", NULL);
    it_assert_ok(&r, "ternctl pub during garbage");
    it_result_free(&r);

    //  The garbage session itself continues.
    s_valid_publish(raw, 40);
    s_assert_alive(b, "all garbage");

    //  HELLO with an unsupported version.
    it_raw_t *raw2 = it_raw_new(b->endpoint);
    tern_frame_init(&f, TERN_CMD_HELLO);
    f.req_id = 1;
    f.proto_version = 0;
    f.heartbeat_ms = 1000;
    snprintf(f.name, sizeof f.name, "old");
    f.fields |= TERN_F_NAME;
    if (tern_frame_encode(&f, hdr, sizeof hdr, &len) == TERN_OK) {
        cr_assert(it_raw_send(raw2, hdr, len, NULL, 0));
        s_expect_code(raw2, "HELLO version 0", TERN_EVERSION, 0);
    }
    it_raw_destroy(&raw2);

    //  And after: a normal client publishes, the consumer got both.
    it_ctl(&r, b, 15000, "pub", "it.bad.ok", "after", NULL);
    it_assert_ok(&r, "ternctl pub after garbage");
    it_result_free(&r);
    int rc = it_proc_wait(sub, 20000);
    char *out = it_proc_out(sub);
    cr_assert_eq(rc, 0, "consumer exit %d", rc);
    it_msg_t *msgs;
    size_t m = it_parse_msgs(out, &msgs);
    //  The raw session's "still here" and the two ternctl messages share the
    //  topic; the consumer stops at 2.
    cr_assert_eq(m, 2, "consumer got %zu messages:\n%s", m, out);
    it_msgs_free(msgs, m);
    free(out);
    it_proc_destroy(&sub);
    it_raw_destroy(&raw);
    s_assert_alive(b, "the whole test");
}

//  Drains whatever replies are waiting, without blocking.
static void s_drain(it_raw_t *raw) {
    tern_frame_t f;
    while (it_raw_recv(raw, &f, 0) != TERN_ETIMEOUT) {
    }
}

Test(badinput, random_flood_and_bit_flips, .fini = it_teardown, .timeout = 120) {
    it_broker_t *b = it_start_broker("--max-payload", "4K", NULL);
    it_raw_t *raws[3];
    for (int i = 0; i < 3; i++) {
        raws[i] = it_raw_new(b->endpoint);
        cr_assert(raws[i]);
    }
    cr_assert(it_raw_hello(raws[1], "flood-1"));
    cr_assert(it_raw_hello(raws[2], "flood-2"));
    unsigned seed = 7;
    tern_frame_t f;
    uint8_t valid[TERN_HEADER_MAX];
    s_publish_frame(&f, 1, "it.flood.a", "payload", 7);
    f.priority = 6;
    f.fields |= TERN_F_PRIORITY;
    snprintf(f.key, sizeof f.key, "k");
    f.fields |= TERN_F_KEY;
    size_t valid_len = s_encode(&f, valid, sizeof valid);
    uint8_t buf[TERN_HEADER_MAX];
    int64_t t0 = it_now_ms();
    for (int i = 0; i < 3000; i++) {
        it_raw_t *raw = raws[i % 3];
        size_t len;
        if (i % 2 == 0) {
            //  Random bytes, random length, 1 to 3 frames.
            len = (size_t)(rand_r(&seed) % 300);
            for (size_t k = 0; k < len; k++) {
                buf[k] = (uint8_t)rand_r(&seed);
            }
        } else {
            //  A valid PUBLISH header with 1 to 4 bytes changed.
            memcpy(buf, valid, valid_len);
            len = valid_len;
            int flips = 1 + rand_r(&seed) % 4;
            for (int k = 0; k < flips; k++) {
                buf[rand_r(&seed) % len] = (uint8_t)rand_r(&seed);
            }
        }
        int frames = 1 + rand_r(&seed) % 3;
        const void *parts[3] = {buf, "payload", buf};
        size_t sizes[3] = {len, 7, len / 2};
        cr_assert(it_raw_send_parts(raws[i % 3], parts, sizes, (size_t)frames));
        if (i % 100 == 99) {
            for (int k = 0; k < 3; k++) {
                s_drain(raws[k]);
            }
            s_assert_alive(b, "a burst of garbage");
        }
        (void)raw;
    }
    it_sleep_ms(200);
    for (int k = 0; k < 3; k++) {
        s_drain(raws[k]);
    }
    cr_log_info("3000 garbage frames in %lld ms", (long long)(it_now_ms() - t0));
    s_assert_alive(b, "3000 garbage frames");

    //  The node still serves everyone.
    it_result_t r;
    it_ctl(&r, b, 15000, "status", NULL);
    it_assert_ok(&r, "ternctl status after the flood");
    it_result_free(&r);
    it_ctl(&r, b, 15000, "pub", "it.flood.ok", "fine {n}", "--count", "10", NULL);
    it_assert_ok(&r, "ternctl pub after the flood");
    it_result_free(&r);
    it_ctl(&r, b, 15000, "sub", "it.flood.ok", "--from", "first", "--count", "10", "--timeout",
           "3s", NULL);
    it_assert_ok(&r, "ternctl sub after the flood");
    it_msg_t *msgs;
    size_t m = it_parse_msgs(r.out, &msgs);
    cr_assert_eq(m, 10);
    it_msgs_free(msgs, m);
    it_result_free(&r);
    //  (Flipped bytes may have turned a frame into BYE, so the flooded
    //  sessions are not reused: a fresh raw session must work.)
    for (int i = 0; i < 3; i++) {
        it_raw_destroy(&raws[i]);
    }
    it_raw_t *fresh = it_raw_new(b->endpoint);
    cr_assert(it_raw_hello(fresh, "after-flood"));
    s_valid_publish(fresh, 100000);
    it_raw_destroy(&fresh);
}

//  REPL_HELLO of "dc2 node 2" saying its DC is a cluster (`c` = 1: the
//  session keeps a position per sender stream); asserts the WELCOME.
static void s_cluster_peer_hello(it_raw_t *raw, uint64_t req) {
    tern_frame_t f;
    tern_frame_init(&f, TERN_CMD_REPL_HELLO);
    f.req_id = req;
    f.proto_version = TERN_PROTO_VERSION;
    f.node_id = 2;
    f.code = 1;
    snprintf(f.dc, sizeof f.dc, "dc2");
    cr_assert_eq(it_raw_send_frame(raw, &f), TERN_OK);
    tern_frame_t reply;
    cr_assert_eq(it_raw_recv_reply(raw, &reply, 10000), TERN_OK, "no answer to REPL_HELLO");
    cr_assert_eq(reply.cmd, TERN_CMD_REPL_WELCOME, "got %s (%u %s)", tern_cmd_name(reply.cmd),
                 reply.code, reply.reason);
}

//  A peer DC's REPL_RECORD whose `pt` no DC can have (review15 M1): on a
//  session of a clustered sender a `pt` of UINT32_MAX once sized the
//  session's per-stream array (and killed ternd). It gets ERROR
//  TERN_EINVAL, the session ends (a record after it needs a new
//  handshake), and ternd stays up.
Test(badinput, repl_record_with_a_bad_partition, .fini = it_teardown, .timeout = 60) {
    char repl[64], peer[96];
    snprintf(repl, sizeof repl, "tcp://127.0.0.1:%d", test_port());
    snprintf(peer, sizeof peer, "dc2=tcp://127.0.0.1:%d", test_port());
    const char *extra[] = {"--repl-listen", repl, "--peer", peer, NULL};
    it_broker_t *b = it_adopt_broker(it_broker_new(1, extra));
    snprintf(b->repl_ep, sizeof b->repl_ep, "%s", repl);
    cr_assert(it_broker_start(b), "ternd did not start");

    it_raw_t *raw = it_raw_new(b->repl_ep);
    cr_assert_not_null(raw);
    s_cluster_peer_hello(raw, 1);
    uint32_t bad[] = {UINT32_MAX, 1u << 29};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tern_frame_t f;
        it_repl_record(&f, 1, 77001 + i, "it.bad.pt", "dc2");
        f.partition = bad[i];
        cr_assert_eq(it_raw_send_frame(raw, &f), TERN_OK);
        s_expect_code(raw, "REPL_RECORD with a bad pt", TERN_EINVAL, 0);
        s_assert_alive(b, "a REPL_RECORD with a bad pt");
        //  The session is gone: the next record needs a handshake first.
        f.partition = 0;
        cr_assert_eq(it_raw_send_frame(raw, &f), TERN_OK);
        s_expect_code(raw, "REPL_RECORD after the session ended", TERN_ESTATE, 0);
        s_cluster_peer_hello(raw, 2 + i);
    }
    it_raw_destroy(&raw);
    s_assert_alive(b, "bad partitions on the replication endpoint");
}
