/*  test_proto.c - the wire codec: round trips, the docs' hex examples, every
    validation error, truncation, the grammar helpers, and the header
    templates (tern_template.h), whose bytes must be the encoder's own.

    The hex strings below are the byte-level examples of docs/protocol.md; the
    "hex" test checks the encoder produces exactly them, so the spec and the
    code cannot drift apart. With TERN_PROTO_CORPUS=<dir> set, the "corpus"
    test also writes every example as a seed for tests/fuzz/corpus_proto/.
*/
#include "tern_proto.h"
#include "tern_template.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRACE "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

static uint8_t s_buf[TERN_HEADER_MAX];
static uint8_t s_meta_buf[256];
static const uint8_t s_payload[] = "hello";

// ---------------------------------------------------------------------------
//  Example frames: one per command with every field it can carry.

static void s_example(tern_cmd_t cmd, tern_frame_t *f) {
    tern_frame_init(f, cmd);
    f->req_id = 7;
    size_t meta_len = 0;
    tern_kv_t kv[] = {{"ct", 2, "json", 4}};
    cr_assert_eq(tern_meta_encode(kv, 1, s_meta_buf, sizeof s_meta_buf, &meta_len), TERN_OK);
    switch (cmd) {
        case TERN_CMD_HELLO:
            f->proto_version = 1;
            f->heartbeat_ms = 15000;
            strcpy(f->name, "app-1");
            f->fields |= TERN_F_NAME;
            break;
        case TERN_CMD_WELCOME:
            f->proto_version = 1;
            f->node_id = 3;
            strcpy(f->dc, "eu1");
            f->heartbeat_ms = 15000;
            f->max_payload = 1048576;
            break;
        case TERN_CMD_CREPL_RECORD:
            f->partition = 35;
            f->epoch = 123;
            /* fall through */
        case TERN_CMD_REPL_RECORD:
            f->position = 42;
            f->seq = 9;
            /* fall through */
        case TERN_CMD_PUBLISH:
        case TERN_CMD_DELIVER:
            strcpy(f->topic, "orders.eu");
            strcpy(f->producer, "p1");
            f->producer_seq = 5;
            strcpy(f->key, "cust-9");
            strcpy(f->trace_id, TRACE);
            f->meta = s_meta_buf;
            f->meta_size = meta_len;
            f->meta_count = 1;
            f->priority = 7;
            f->fields |= TERN_F_TOPIC | TERN_F_PRODUCER | TERN_F_KEY | TERN_F_TRACE | TERN_F_META |
                         TERN_F_PRIORITY | TERN_F_PAYLOAD;
            f->payload = s_payload;
            f->payload_size = 5;
            if (cmd == TERN_CMD_PUBLISH) {
                f->ttl_ms = 60000;
                f->ttl_class = TERN_TTL_BUSINESS;
                f->fields |= TERN_F_TTL;
            } else {
                f->msg_id = 0x0123456789abcdefull;
                f->timestamp_ns = 1767225600000000000ull;
                f->expire_at_ns = 1767232800000000000ull;
                strcpy(f->origin, "eu1");
                f->fields |= TERN_F_EXPIRE | TERN_F_ORIGIN;
            }
            if (cmd == TERN_CMD_DELIVER) {
                f->sub_id = 2;
                f->tag = 11;
                f->seq = 9;
                f->delivery_count = 1;
            }
            break;
        case TERN_CMD_PUBACK:
            break; //  see s_puback_example
        case TERN_CMD_SUBSCRIBE:
            strcpy(f->topic, "orders.*.>");
            strcpy(f->group, "billing");
            f->start = TERN_START_SEQ;
            f->start_value = 100;
            f->credit = 256;
            f->fields |= TERN_F_TOPIC | TERN_F_GROUP | TERN_F_START;
            break;
        case TERN_CMD_UNSUBSCRIBE:
            f->sub_id = 2;
            break;
        case TERN_CMD_ACK:
            f->sub_id = 2;
            f->tag = 11;
            f->cumulative = true;
            f->fields |= TERN_F_CUMULATIVE;
            break;
        case TERN_CMD_NACK:
            f->sub_id = 2;
            f->tag = 11;
            f->delay_ms = 500;
            f->fields |= TERN_F_DELAY;
            break;
        case TERN_CMD_TERM:
            f->sub_id = 2;
            f->tag = 11;
            strcpy(f->reason, "bad input");
            f->fields |= TERN_F_REASON;
            break;
        case TERN_CMD_CREDIT:
            f->sub_id = 2;
            f->credit = 64;
            break;
        case TERN_CMD_HEARTBEAT:
            f->req_id = 0;
            break;
        case TERN_CMD_ERROR:
            f->code = TERN_ETOPIC;
            strcpy(f->reason, "bad topic");
            f->fields |= TERN_F_REASON;
            break;
        case TERN_CMD_BYE:
            strcpy(f->reason, "shutdown");
            f->fields |= TERN_F_REASON;
            break;
        case TERN_CMD_OK:
            f->sub_id = 2;
            break;
        case TERN_CMD_ADMIN: {
            strcpy(f->name, "topic.list");
            tern_kv_t args[] = {{"prefix", 6, "orders", 6}};
            cr_assert_eq(tern_meta_encode(args, 1, s_meta_buf, sizeof s_meta_buf, &meta_len),
                         TERN_OK);
            f->meta = s_meta_buf;
            f->meta_size = meta_len;
            f->meta_count = 1;
            f->fields |= TERN_F_NAME | TERN_F_META;
            break;
        }
        case TERN_CMD_REPLY:
            f->payload = (const uint8_t *)"{\"ok\":true}";
            f->payload_size = 11;
            f->fields |= TERN_F_PAYLOAD;
            break;
        case TERN_CMD_REPL_HELLO:
        case TERN_CMD_REPL_WELCOME:
            f->proto_version = 1;
            f->node_id = 3;
            strcpy(f->dc, "eu1");
            f->position = 41;
            break;
        case TERN_CMD_REPL_ACKSTATE:
            f->position = 43;
            strcpy(f->topic, "orders.eu");
            strcpy(f->group, "billing");
            f->msg_id = 0x0123456789abcdefull;
            f->code = 1;
            f->fields |= TERN_F_TOPIC | TERN_F_GROUP;
            break;
        case TERN_CMD_REPL_CONFIRM:
        case TERN_CMD_REPL_HEARTBEAT:
            f->position = 44;
            break;
        case TERN_CMD_CREPL_SYNC:
            f->partition = 35;
            f->epoch = 123;
            f->node_id = 2;
            f->payload = (const uint8_t *)"9 orders.eu 9:1001 8:1000\n";
            f->payload_size = 26;
            f->fields |= TERN_F_PAYLOAD;
            break;
        case TERN_CMD_CREPL_TRUNCATE:
            f->partition = 35;
            f->epoch = 123;
            strcpy(f->topic, "orders.eu");
            f->seq = 7;
            f->fields |= TERN_F_TOPIC;
            break;
        case TERN_CMD_CREPL_TOPIC:
            f->partition = 35;
            f->epoch = 123;
            f->position = 44;
            strcpy(f->topic, "orders.eu");
            f->fields |= TERN_F_TOPIC;
            f->code = TERN_CREPL_TOPIC_PUT;
            f->payload = (const uint8_t *)"3600000 100 0";
            f->payload_size = 13;
            f->fields |= TERN_F_PAYLOAD;
            break;
        case TERN_CMD_CREPL_RECORDS:
            f->partition = 35;
            f->epoch = 123;
            f->position = 44;
            f->payload = s_payload; //  not entries: the codec does not look inside
            f->payload_size = 5;
            f->fields |= TERN_F_PAYLOAD;
            break;
        case TERN_CMD_CREPL_CONFIRM:
            f->node_id = 2;
            /* fall through */
        case TERN_CMD_CREPL_CAUGHT:
        case TERN_CMD_CREPL_HEARTBEAT:
            f->partition = 35;
            f->epoch = 123;
            f->position = 44;
            break;
        default:
            cr_assert_fail("no example for %d", cmd);
    }
}

static const tern_puback_t s_acks[] = {{7, 0x0123456789abcdefull, 9, TERN_OK, false},
                                       {8, 0x0123456789abcdeeull, 3, TERN_OK, true}};

static const tern_cmd_t s_all_cmds[] = {TERN_CMD_HELLO,
                                        TERN_CMD_WELCOME,
                                        TERN_CMD_PUBLISH,
                                        TERN_CMD_PUBACK,
                                        TERN_CMD_SUBSCRIBE,
                                        TERN_CMD_UNSUBSCRIBE,
                                        TERN_CMD_DELIVER,
                                        TERN_CMD_ACK,
                                        TERN_CMD_NACK,
                                        TERN_CMD_TERM,
                                        TERN_CMD_CREDIT,
                                        TERN_CMD_HEARTBEAT,
                                        TERN_CMD_ERROR,
                                        TERN_CMD_BYE,
                                        TERN_CMD_OK,
                                        TERN_CMD_ADMIN,
                                        TERN_CMD_REPLY,
                                        TERN_CMD_REPL_HELLO,
                                        TERN_CMD_REPL_WELCOME,
                                        TERN_CMD_REPL_RECORD,
                                        TERN_CMD_REPL_ACKSTATE,
                                        TERN_CMD_REPL_CONFIRM,
                                        TERN_CMD_REPL_HEARTBEAT,
                                        TERN_CMD_CREPL_SYNC,
                                        TERN_CMD_CREPL_TRUNCATE,
                                        TERN_CMD_CREPL_RECORD,
                                        TERN_CMD_CREPL_CAUGHT,
                                        TERN_CMD_CREPL_CONFIRM,
                                        TERN_CMD_CREPL_HEARTBEAT,
                                        TERN_CMD_CREPL_TOPIC,
                                        TERN_CMD_CREPL_RECORDS};
#define N_CMDS (sizeof s_all_cmds / sizeof s_all_cmds[0])

//  Encodes the example of CMD into s_buf.
static size_t s_encode_example(tern_cmd_t cmd, tern_frame_t *f) {
    size_t len = 0;
    if (cmd == TERN_CMD_PUBACK) {
        tern_frame_init(f, cmd);
        cr_assert_eq(tern_frame_encode_puback(s_acks, 2, s_buf, sizeof s_buf, &len), TERN_OK);
    } else {
        s_example(cmd, f);
        cr_assert_eq(tern_frame_encode(f, s_buf, sizeof s_buf, &len), TERN_OK, "encode %s",
                     tern_cmd_name(cmd));
    }
    return len;
}

static void s_to_hex(const uint8_t *b, size_t n, char *out) {
    for (size_t i = 0; i < n; i++) {
        sprintf(out + 2 * i, "%02x", b[i]);
    }
    out[2 * n] = '\0';
}

//  Compares the fields both frames carry, and borrowed regions by content.
static void s_assert_same(const tern_frame_t *a, const tern_frame_t *b) {
    cr_assert_eq(a->cmd, b->cmd);
    cr_assert_eq(a->req_id, b->req_id);
    cr_assert_eq(a->proto_version, b->proto_version);
    cr_assert_eq(a->node_id, b->node_id);
    cr_assert_eq(a->heartbeat_ms, b->heartbeat_ms);
    cr_assert_eq(a->max_payload, b->max_payload);
    cr_assert_str_eq(a->name, b->name);
    cr_assert_str_eq(a->dc, b->dc);
    cr_assert_str_eq(a->topic, b->topic);
    cr_assert_str_eq(a->group, b->group);
    cr_assert_str_eq(a->producer, b->producer);
    cr_assert_str_eq(a->key, b->key);
    cr_assert_str_eq(a->trace_id, b->trace_id);
    cr_assert_str_eq(a->origin, b->origin);
    cr_assert_eq(a->producer_seq, b->producer_seq);
    cr_assert_eq(a->msg_id, b->msg_id);
    cr_assert_eq(a->seq, b->seq);
    cr_assert_eq(a->timestamp_ns, b->timestamp_ns);
    cr_assert_eq(a->expire_at_ns, b->expire_at_ns);
    cr_assert_eq(a->ttl_ms, b->ttl_ms);
    cr_assert_eq(a->ttl_class, b->ttl_class);
    cr_assert_eq(a->priority, b->priority);
    cr_assert_eq(a->delivery_count, b->delivery_count);
    cr_assert_eq(a->sub_id, b->sub_id);
    cr_assert_eq(a->tag, b->tag);
    cr_assert_eq(a->credit, b->credit);
    cr_assert_eq(a->start, b->start);
    cr_assert_eq(a->start_value, b->start_value);
    cr_assert_eq(a->cumulative, b->cumulative);
    cr_assert_eq(a->delay_ms, b->delay_ms);
    cr_assert_eq(a->code, b->code);
    cr_assert_str_eq(a->reason, b->reason);
    cr_assert_eq(a->position, b->position);
    cr_assert_eq(a->partition, b->partition);
    cr_assert_eq(a->epoch, b->epoch);
    cr_assert_eq(a->meta_size, b->meta_size);
    cr_assert_eq(a->meta_count, b->meta_count);
    if (a->meta_size) {
        cr_assert_eq(memcmp(a->meta, b->meta, a->meta_size), 0);
    }
    cr_assert_eq(a->payload_size, b->payload_size);
    if (a->payload_size) {
        cr_assert_eq(memcmp(a->payload, b->payload, a->payload_size), 0);
    }
}

// ---------------------------------------------------------------------------
//  A tiny msgpack writer for crafting invalid frames by hand.

typedef struct {
    uint8_t b[4096]; //  bytes
    size_t n;        //  length
} raw_t;

static void raw_byte(raw_t *r, uint8_t v) {
    r->b[r->n++] = v;
}

static void raw_be(raw_t *r, uint64_t v, int n) {
    for (int i = n - 1; i >= 0; i--) {
        raw_byte(r, (uint8_t)(v >> (8 * i)));
    }
}

static void raw_uint(raw_t *r, uint64_t v) {
    if (v < 128) {
        raw_byte(r, (uint8_t)v);
    } else if (v < 256) {
        raw_byte(r, 0xcc);
        raw_be(r, v, 1);
    } else if (v < 65536) {
        raw_byte(r, 0xcd);
        raw_be(r, v, 2);
    } else if (v <= UINT32_MAX) {
        raw_byte(r, 0xce);
        raw_be(r, v, 4);
    } else {
        raw_byte(r, 0xcf);
        raw_be(r, v, 8);
    }
}

static void raw_strn(raw_t *r, const char *s, size_t len) {
    if (len < 32) {
        raw_byte(r, (uint8_t)(0xa0 | len));
    } else if (len < 256) {
        raw_byte(r, 0xd9);
        raw_be(r, len, 1);
    } else {
        raw_byte(r, 0xda);
        raw_be(r, len, 2);
    }
    memcpy(r->b + r->n, s, len);
    r->n += len;
}

static void raw_str(raw_t *r, const char *s) {
    raw_strn(r, s, strlen(s));
}

static void raw_map(raw_t *r, uint32_t n) {
    if (n < 16) {
        raw_byte(r, (uint8_t)(0x80 | n));
    } else {
        raw_byte(r, 0xde);
        raw_be(r, n, 2);
    }
}

//  Header [magic, version, cmd, req_id, {NFIELDS...}]
static void raw_hdr(raw_t *r, uint32_t cmd, uint32_t nfields) {
    r->n = 0;
    raw_byte(r, 0x95);
    raw_uint(r, TERN_PROTO_MAGIC);
    raw_uint(r, TERN_PROTO_VERSION);
    raw_uint(r, cmd);
    raw_uint(r, 77);
    raw_map(r, nfields);
}

static tern_err_t raw_decode(const raw_t *r, bool with_payload, tern_frame_t *f) {
    return tern_frame_decode(f, r->b, r->n, with_payload ? s_payload : NULL, with_payload ? 5 : 0,
                             NULL);
}

//  A PUBLISH with topic T and one extra field (KEY with a string VALUE).
static tern_err_t s_publish_with(const char *topic, const char *key, const char *value,
                                 tern_frame_t *f) {
    raw_t r;
    raw_hdr(&r, TERN_CMD_PUBLISH, key ? 2 : 1);
    raw_str(&r, "t");
    raw_str(&r, topic);
    if (key) {
        raw_str(&r, key);
        raw_str(&r, value);
    }
    return raw_decode(&r, true, f);
}

// ---------------------------------------------------------------------------

Test(proto, usage_example) {
    //  A producer fills a frame, encodes the header, and sends header + payload
    //  as two ZeroMQ frames; the broker decodes them back.
    tern_frame_t pub;
    tern_frame_init(&pub, TERN_CMD_PUBLISH);
    pub.req_id = 1;
    strcpy(pub.topic, "orders.created");
    pub.payload = (const uint8_t *)"{}";
    pub.payload_size = 2;
    uint8_t hdr[TERN_HEADER_MAX];
    size_t hdr_len;
    cr_assert_eq(tern_frame_encode(&pub, hdr, sizeof hdr, &hdr_len), TERN_OK);

    tern_frame_t in;
    tern_err_t rc = tern_frame_decode(&in, hdr, hdr_len, pub.payload, pub.payload_size, NULL);
    cr_assert_eq(rc, TERN_OK, "%s", tern_strerror(rc));
    cr_assert_eq(in.cmd, TERN_CMD_PUBLISH);
    cr_assert_eq(in.req_id, 1);
    cr_assert_str_eq(in.topic, "orders.created");
    cr_assert_eq(in.priority, TERN_PRIORITY_DEFAULT);
    cr_assert_eq(in.payload_size, 2);
    cr_assert(in.fields & TERN_F_PAYLOAD);
}

Test(proto, round_trip_every_command) {
    for (size_t i = 0; i < N_CMDS; i++) {
        tern_frame_t f, g;
        size_t len = s_encode_example(s_all_cmds[i], &f);
        tern_err_t rc = tern_frame_decode(&g, s_buf, len, f.payload, f.payload_size, NULL);
        cr_assert_eq(rc, TERN_OK, "%s: %s", tern_cmd_name(s_all_cmds[i]), tern_errname(rc));
        if (s_all_cmds[i] == TERN_CMD_PUBACK) {
            cr_assert_eq(g.ack_count, 2);
            for (uint32_t j = 0; j < 2; j++) {
                tern_puback_t a;
                cr_assert_eq(tern_frame_puback(&g, j, &a), TERN_OK);
                cr_assert_eq(a.req_id, s_acks[j].req_id);
                cr_assert_eq(a.msg_id, s_acks[j].msg_id);
                cr_assert_eq(a.seq, s_acks[j].seq);
                cr_assert_eq(a.code, s_acks[j].code);
                cr_assert_eq(a.duplicate, s_acks[j].duplicate);
            }
            tern_puback_t a;
            cr_assert_eq(tern_frame_puback(&g, 2, &a), TERN_ERANGE);
            continue;
        }
        s_assert_same(&f, &g);
        //  Optional fields come back flagged.
        cr_assert_eq(g.fields & f.fields, f.fields, "%s fields %x vs %x",
                     tern_cmd_name(s_all_cmds[i]), g.fields, f.fields);
        //  Re-encoding the decoded frame gives the same bytes.
        uint8_t again[TERN_HEADER_MAX];
        size_t len2;
        cr_assert_eq(tern_frame_encode(&g, again, sizeof again, &len2), TERN_OK);
        cr_assert_eq(len2, len);
        cr_assert_eq(memcmp(again, s_buf, len), 0);
    }
}

//  The byte-level examples of docs/protocol.md, in s_all_cmds order.
static const char *s_hex[] = {
    /* HELLO */ "95cd544e01010783a17601a26862cd3a98a26e6da56170702d31",
    /* WELCOME */ "95cd544e01020785a17601a16e03a26463a3657531a26862cd3a98a26d70ce00100000",
    /* PUBLISH */
    "95cd544e01030789a174a96f72646572732e6575a170a27031a2707305a16ba6637573742d39a27472d93730302d34"
    "626639326633353737623334646136613363653932396430653065343733362d303066303637616130626139303262"
    "372d3031a374746ccdea60a2746302a2707207a16d81a26374a46a736f6e",
    /* PUBACK */
    "95cd544e01040081a161c43a00000000000000070123456789abcdef00000000000000090000000000000000000000"
    "00080123456789abcdee00000000000000030000000001",
    /* SUBSCRIBE */
    "95cd544e01050785a174aa6f72646572732e2a2e3ea167a762696c6c696e67a26372cd0100a2737402a2737664",
    /* UNSUBSCRIBE */ "95cd544e01060781a17302",
    /* DELIVER */
    "95cd544e0107078fa174a96f72646572732e6575a170a27031a2707305a16ba6637573742d39a27472d93730302d34"
    "626639326633353737623334646136613363653932396430653065343733362d303066303637616130626139303262"
    "372d3031a16fa3657531a26964cf0123456789abcdefa2737109a27473cf18867251edfa0000a26578cf188678de4f"
    "6b4000a2707207a2646e01a17302a274670ba16d81a26374a46a736f6e",
    /* ACK */ "95cd544e01080783a17302a274670ba26375c3",
    /* NACK */ "95cd544e01090783a17302a274670ba2646ccd01f4",
    /* TERM */ "95cd544e010a0783a17302a274670ba172a962616420696e707574",
    /* CREDIT */ "95cd544e010b0782a17302a2637240",
    /* HEARTBEAT */ "95cd544e010c0080",
    /* ERROR */ "95cd544e010d0782a1636ba172a962616420746f706963",
    /* BYE */ "95cd544e010e0781a172a873687574646f776e",
    /* OK */ "95cd544e010f0781a17302",
    /* ADMIN */ "95cd544e01100782a26e6daa746f7069632e6c697374a16d81a6707265666978a66f7264657273",
    /* REPLY */ "95cd544e01110780",
    /* REPL_HELLO */ "95cd544e01200784a17601a16e03a26463a3657531a3706f7329",
    /* REPL_WELCOME */ "95cd544e01210784a17601a16e03a26463a3657531a3706f7329",
    /* REPL_RECORD */
    "95cd544e0122078da174a96f72646572732e6575a170a27031a2707305a16ba6637573742d39a27472d93730302d34"
    "626639326633353737623334646136613363653932396430653065343733362d303066303637616130626139303262"
    "372d3031a16fa3657531a26964cf0123456789abcdefa2737109a27473cf18867251edfa0000a26578cf188678de4f"
    "6b4000a2707207a3706f732aa16d81a26374a46a736f6e",
    /* REPL_ACKSTATE */
    "95cd544e01230785a174a96f72646572732e6575a167a762696c6c696e67a26964cf0123456789abcdefa16301a370"
    "6f732b",
    /* REPL_CONFIRM */ "95cd544e01240781a3706f732c",
    /* REPL_HEARTBEAT */ "95cd544e01250781a3706f732c",
    /* CREPL_SYNC */ "95cd544e01300783a16e02a2707423a265707b",
    /* CREPL_TRUNCATE */
    "95cd544e01310784a174a96f72646572732e6575a2737107a2707423a265707b",
    /* CREPL_RECORD */
    "95cd544e0132078fa174a96f72646572732e6575a170a27031a2707305a16ba6637573742d39a27472d93730302d34"
    "626639326633353737623334646136613363653932396430653065343733362d303066303637616130626139303262"
    "372d3031a16fa3657531a26964cf0123456789abcdefa2737109a27473cf18867251edfa0000a26578cf188678de4f"
    "6b4000a2707207a3706f732aa2707423a265707ba16d81a26374a46a736f6e",
    /* CREPL_CAUGHT */ "95cd544e01330783a3706f732ca2707423a265707b",
    /* CREPL_CONFIRM */ "95cd544e01340784a16e02a3706f732ca2707423a265707b",
    /* CREPL_HEARTBEAT */ "95cd544e01350783a3706f732ca2707423a265707b",
    /* CREPL_TOPIC */ "95cd544e01360785a174a96f72646572732e6575a16301a3706f732ca2707423a265707b",
    /* CREPL_RECORDS */ "95cd544e01390783a3706f732ca2707423a265707b",
};

//  TERN_PROTO_PRINT_HEX=1 prints the current encodings, to update the table
//  and docs/protocol.md together after a deliberate wire change.
Test(proto, docs_hex_examples) {
    static char hex[2 * TERN_HEADER_MAX + 1];
    for (size_t i = 0; i < N_CMDS && getenv("TERN_PROTO_PRINT_HEX"); i++) {
        tern_frame_t f;
        size_t len = s_encode_example(s_all_cmds[i], &f);
        s_to_hex(s_buf, len, hex);
        printf("%s %s\n", tern_cmd_name(s_all_cmds[i]), hex);
    }
    cr_assert_eq(sizeof s_hex / sizeof s_hex[0], N_CMDS);
    for (size_t i = 0; i < N_CMDS; i++) {
        tern_frame_t f;
        size_t len = s_encode_example(s_all_cmds[i], &f);
        s_to_hex(s_buf, len, hex);
        cr_expect_str_eq(hex, s_hex[i], "%s", tern_cmd_name(s_all_cmds[i]));
    }
#ifdef TERN_SOURCE_DIR
    //  ...and docs/protocol.md shows the same bytes.
    FILE *file = fopen(TERN_SOURCE_DIR "/docs/protocol.md", "rb");
    cr_assert_not_null(file, "docs/protocol.md not found");
    static char doc[1 << 17];
    size_t n = fread(doc, 1, sizeof doc - 1, file);
    fclose(file);
    doc[n] = '\0';
    for (size_t i = 0; i < N_CMDS; i++) {
        cr_expect_not_null(strstr(doc, s_hex[i]), "docs/protocol.md lacks the %s example",
                           tern_cmd_name(s_all_cmds[i]));
    }
#endif
}

Test(proto, truncated_never_decodes) {
    for (size_t i = 0; i < N_CMDS; i++) {
        tern_frame_t f, g;
        size_t len = s_encode_example(s_all_cmds[i], &f);
        for (size_t cut = 0; cut < len; cut++) {
            //  A fresh copy of exactly CUT bytes, so a sanitizer build catches
            //  any read past the end.
            uint8_t *copy = malloc(cut ? cut : 1);
            memcpy(copy, s_buf, cut);
            tern_err_t rc = tern_frame_decode(&g, copy, cut, f.payload, f.payload_size, NULL);
            free(copy);
            cr_assert_neq(rc, TERN_OK, "%s cut at %zu", tern_cmd_name(s_all_cmds[i]), cut);
            cr_assert_eq(rc, TERN_EMALFORMED, "%s cut at %zu: %s", tern_cmd_name(s_all_cmds[i]),
                         cut, tern_errname(rc));
        }
    }
}

Test(proto, header_errors) {
    tern_frame_t f;
    raw_t r;
    //  Not an array at all / empty.
    cr_assert_eq(tern_frame_decode(&f, (const uint8_t *)"\xa1x", 2, NULL, 0, NULL), TERN_EMAGIC);
    cr_assert_eq(tern_frame_decode(&f, (const uint8_t *)"", 0, NULL, 0, NULL), TERN_EMALFORMED);
    //  Wrong magic.
    r.n = 0;
    raw_byte(&r, 0x95);
    raw_uint(&r, 0x544F);
    raw_uint(&r, 1);
    raw_uint(&r, TERN_CMD_HEARTBEAT);
    raw_uint(&r, 0);
    raw_map(&r, 0);
    cr_assert_eq(raw_decode(&r, false, &f), TERN_EMAGIC);
    //  Array of 4: malformed.
    raw_hdr(&r, TERN_CMD_HEARTBEAT, 0);
    r.b[0] = 0x94;
    r.n--;
    cr_assert_eq(raw_decode(&r, false, &f), TERN_EMALFORMED);
    //  Version 2 and 0: EVERSION, but command and request id are known.
    raw_hdr(&r, TERN_CMD_PUBLISH, 0);
    r.b[4] = 2;
    cr_assert_eq(raw_decode(&r, true, &f), TERN_EVERSION);
    cr_assert_eq(f.cmd, TERN_CMD_PUBLISH);
    cr_assert_eq(f.req_id, 77);
    r.b[4] = 0;
    cr_assert_eq(raw_decode(&r, true, &f), TERN_EVERSION);
    //  Unknown commands.
    raw_hdr(&r, 99, 0);
    cr_assert_eq(raw_decode(&r, false, &f), TERN_ECOMMAND);
    cr_assert_eq(f.req_id, 77);
    raw_hdr(&r, 0, 0);
    cr_assert_eq(raw_decode(&r, false, &f), TERN_ECOMMAND);
    raw_hdr(&r, 18, 0);
    cr_assert_eq(raw_decode(&r, false, &f), TERN_ECOMMAND);
    //  Trailing bytes.
    raw_hdr(&r, TERN_CMD_HEARTBEAT, 0);
    cr_assert_eq(raw_decode(&r, false, &f), TERN_OK);
    raw_byte(&r, 0xc0);
    cr_assert_eq(raw_decode(&r, false, &f), TERN_EMALFORMED);
    //  The never-used byte 0xc1 where the header array should start.
    static const uint8_t c1[] = {0xc1, 0x95};
    cr_assert_eq(tern_frame_decode(&f, c1, sizeof c1, NULL, 0, NULL), TERN_EMALFORMED);
    //  The never-used byte 0xc1 inside an ignored field.
    raw_hdr(&r, TERN_CMD_HEARTBEAT, 1);
    raw_str(&r, "zz");
    raw_byte(&r, 0xc1);
    cr_assert_eq(raw_decode(&r, false, &f), TERN_EMALFORMED);
    //  Header over TERN_HEADER_MAX.
    static uint8_t big[TERN_HEADER_MAX + 1];
    cr_assert_eq(tern_frame_decode(&f, big, sizeof big, NULL, 0, NULL), TERN_ETOOBIG);
}

//  `rs`: a PUBLISH marked as a resend, and a HELLO announcing that its
//  session marks them (docs/protocol.md, "Producer order"); a bool or
//  nothing, and absent unless set.
Test(proto, resend_flag) {
    tern_frame_t f, g;
    size_t len;
    tern_cmd_t cmds[] = {TERN_CMD_PUBLISH, TERN_CMD_HELLO};
    for (size_t i = 0; i < 2; i++) {
        s_example(cmds[i], &f);
        cr_assert_eq(tern_frame_encode(&f, s_buf, sizeof s_buf, &len), TERN_OK);
        cr_assert_eq(tern_frame_decode(&g, s_buf, len, f.payload, f.payload_size, NULL), TERN_OK);
        cr_assert_not(g.resend);
        cr_assert_not(g.fields & TERN_F_RESEND, "not sent unless set");
        f.resend = true;
        cr_assert_eq(tern_frame_encode(&f, s_buf, sizeof s_buf, &len), TERN_OK);
        cr_assert_eq(tern_frame_decode(&g, s_buf, len, f.payload, f.payload_size, NULL), TERN_OK);
        cr_assert(g.resend);
        cr_assert(g.fields & TERN_F_RESEND);
    }
    //  Only a bool: anything else is ETYPE, and the request id is kept for
    //  the ERROR.
    raw_t r;
    raw_hdr(&r, TERN_CMD_PUBLISH, 2);
    raw_str(&r, "t");
    raw_str(&r, "a");
    raw_str(&r, "rs");
    raw_uint(&r, 1);
    cr_assert_eq(raw_decode(&r, true, &f), TERN_ETYPE);
    cr_assert_eq(f.req_id, 77);
    //  Commands without it ignore it (forward compatibility).
    raw_hdr(&r, TERN_CMD_HEARTBEAT, 1);
    raw_str(&r, "rs");
    raw_str(&r, "yes");
    cr_assert_eq(raw_decode(&r, false, &f), TERN_OK);
}

Test(proto, field_errors) {
    tern_frame_t f;
    raw_t r;
    //  ETYPE: topic as an integer; ETYPE: string with a NUL byte.
    raw_hdr(&r, TERN_CMD_PUBLISH, 1);
    raw_str(&r, "t");
    raw_uint(&r, 5);
    cr_assert_eq(raw_decode(&r, true, &f), TERN_ETYPE);
    cr_assert_eq(f.cmd, TERN_CMD_PUBLISH);
    cr_assert_eq(f.req_id, 77);
    raw_hdr(&r, TERN_CMD_PUBLISH, 1);
    raw_str(&r, "t");
    raw_strn(&r, "a\0b", 3);
    cr_assert_eq(raw_decode(&r, true, &f), TERN_ETYPE);
    //  ETYPE: a non-string key; a bool that is not a bool.
    raw_hdr(&r, TERN_CMD_HEARTBEAT, 1);
    raw_uint(&r, 1);
    raw_uint(&r, 1);
    cr_assert_eq(raw_decode(&r, false, &f), TERN_ETYPE);
    raw_hdr(&r, TERN_CMD_ACK, 3);
    raw_str(&r, "s");
    raw_uint(&r, 1);
    raw_str(&r, "tg");
    raw_uint(&r, 1);
    raw_str(&r, "cu");
    raw_uint(&r, 1);
    cr_assert_eq(raw_decode(&r, false, &f), TERN_ETYPE);
    //  EMISSING: no topic; producer without producer_seq; start=SEQ without value.
    raw_hdr(&r, TERN_CMD_PUBLISH, 0);
    cr_assert_eq(raw_decode(&r, true, &f), TERN_EMISSING);
    cr_assert_eq(s_publish_with("a", "p", "prod", &f), TERN_EMISSING);
    raw_hdr(&r, TERN_CMD_SUBSCRIBE, 3);
    raw_str(&r, "t");
    raw_str(&r, "a.>");
    raw_str(&r, "cr");
    raw_uint(&r, 1);
    raw_str(&r, "st");
    raw_uint(&r, TERN_START_SEQ);
    cr_assert_eq(raw_decode(&r, false, &f), TERN_EMISSING);
    //  Duplicate key.
    raw_hdr(&r, TERN_CMD_PUBLISH, 2);
    raw_str(&r, "t");
    raw_str(&r, "a");
    raw_str(&r, "t");
    raw_str(&r, "b");
    cr_assert_eq(raw_decode(&r, true, &f), TERN_EMALFORMED);
    //  ETOOBIG: 201-byte topic, 129-byte key, 257-byte reason.
    char long_s[300];
    memset(long_s, 'a', sizeof long_s);
    long_s[201] = '\0';
    cr_assert_eq(s_publish_with(long_s, NULL, NULL, &f), TERN_ETOOBIG);
    long_s[200] = '\0';
    cr_assert_eq(s_publish_with(long_s, NULL, NULL, &f), TERN_OK);
    long_s[129] = '\0';
    cr_assert_eq(s_publish_with("a", "k", long_s, &f), TERN_ETOOBIG);
    long_s[128] = '\0';
    cr_assert_eq(s_publish_with("a", "k", long_s, &f), TERN_OK);
    cr_assert_eq(strlen(f.key), 128);
    memset(long_s, 'a', sizeof long_s);
    long_s[257] = '\0';
    raw_hdr(&r, TERN_CMD_BYE, 1);
    raw_str(&r, "r");
    raw_str(&r, long_s);
    cr_assert_eq(raw_decode(&r, false, &f), TERN_ETOOBIG);
    //  ETOPIC, ENAME, ETRACE.
    cr_assert_eq(s_publish_with("a..b", NULL, NULL, &f), TERN_ETOPIC);
    cr_assert_eq(s_publish_with("a.*", NULL, NULL, &f), TERN_ETOPIC); //  no wildcard in PUBLISH
    cr_assert_eq(s_publish_with("a", "p", "a b", &f), TERN_ENAME);
    cr_assert_eq(s_publish_with("a", "k", "", &f), TERN_ENAME);
    cr_assert_eq(
        s_publish_with("a", "tr", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", &f),
        TERN_ETRACE);
    //  ERANGE: priority 10, ttl_class 4, node id 1024, negative, too wide for u32.
    raw_hdr(&r, TERN_CMD_PUBLISH, 2);
    raw_str(&r, "t");
    raw_str(&r, "a");
    raw_str(&r, "pr");
    raw_uint(&r, 10);
    cr_assert_eq(raw_decode(&r, true, &f), TERN_ERANGE);
    r.b[r.n - 1] = 9;
    cr_assert_eq(raw_decode(&r, true, &f), TERN_OK);
    cr_assert_eq(f.priority, 9);
    r.b[r.n - 1] = 0xff; //  -1 as a negative fixint
    cr_assert_eq(raw_decode(&r, true, &f), TERN_ERANGE);
    raw_hdr(&r, TERN_CMD_PUBLISH, 2);
    raw_str(&r, "t");
    raw_str(&r, "a");
    raw_str(&r, "tc");
    raw_uint(&r, 4);
    cr_assert_eq(raw_decode(&r, true, &f), TERN_ERANGE);
    raw_hdr(&r, TERN_CMD_REPL_CONFIRM, 1);
    raw_str(&r, "pos");
    raw_byte(&r, 0xd0); //  int8 -5
    raw_byte(&r, 0xfb);
    cr_assert_eq(raw_decode(&r, false, &f), TERN_ERANGE);
    raw_hdr(&r, TERN_CMD_CREDIT, 2);
    raw_str(&r, "s");
    raw_uint(&r, 1);
    raw_str(&r, "cr");
    raw_uint(&r, 1ull << 32);
    cr_assert_eq(raw_decode(&r, false, &f), TERN_ERANGE);
    raw_hdr(&r, TERN_CMD_REPL_HEARTBEAT, 1);
    raw_str(&r, "pos");
    raw_byte(&r, 0xd0); //  int8 +5 is accepted
    raw_byte(&r, 0x05);
    cr_assert_eq(raw_decode(&r, false, &f), TERN_OK);
    cr_assert_eq(f.position, 5);
    tern_frame_t w;
    s_example(TERN_CMD_WELCOME, &w);
    w.node_id = 1024;
    size_t len;
    cr_assert_eq(tern_frame_encode(&w, s_buf, sizeof s_buf, &len), TERN_ERANGE);
    w.node_id = 1023;
    cr_assert_eq(tern_frame_encode(&w, s_buf, sizeof s_buf, &len), TERN_OK);
    raw_hdr(&r, TERN_CMD_ERROR, 2);
    raw_str(&r, "c");
    raw_uint(&r, 0);
    raw_str(&r, "r");
    raw_str(&r, "");
    cr_assert_eq(raw_decode(&r, false, &f), TERN_ERANGE); //  ERROR with code 0
}

Test(proto, meta_errors) {
    tern_frame_t f;
    raw_t r;
    //  33 entries.
    raw_hdr(&r, TERN_CMD_PUBLISH, 2);
    raw_str(&r, "t");
    raw_str(&r, "a");
    raw_str(&r, "m");
    raw_map(&r, 33);
    for (int i = 0; i < 33; i++) {
        char k[8];
        snprintf(k, sizeof k, "k%d", i);
        raw_str(&r, k);
        raw_str(&r, "v");
    }
    cr_assert_eq(raw_decode(&r, true, &f), TERN_EMETA);
    //  Not a map; a non-string value; an empty key; a duplicate key; a long value.
    const char *cases[] = {"list", "int", "emptykey", "dup", "long"};
    static char long_v[1026];
    memset(long_v, 'v', 1025);
    for (size_t c = 0; c < 5; c++) {
        raw_hdr(&r, TERN_CMD_PUBLISH, 2);
        raw_str(&r, "t");
        raw_str(&r, "a");
        raw_str(&r, "m");
        if (c == 0) {
            raw_byte(&r, 0x90);
        } else {
            raw_map(&r, 2);
            raw_str(&r, "a");
            raw_str(&r, "x");
            raw_str(&r, c == 2 ? "" : c == 3 ? "a" : "b");
            if (c == 1) {
                raw_uint(&r, 1);
            } else {
                raw_str(&r, c == 4 ? long_v : "y");
            }
        }
        cr_assert_eq(raw_decode(&r, true, &f), TERN_EMETA, "%s", cases[c]);
    }
    //  A 1024-byte value and 32 entries are fine.
    long_v[1024] = '\0';
    tern_kv_t kv[32];
    char keys[32][4];
    for (int i = 0; i < 32; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        kv[i] = (tern_kv_t){keys[i], strlen(keys[i]), long_v, i == 0 ? 1024 : 1};
    }
    static uint8_t meta[8192];
    size_t mlen;
    cr_assert_eq(tern_meta_encode(kv, 32, meta, sizeof meta, &mlen), TERN_OK);
    cr_assert_eq(tern_meta_encode(kv, 32, meta, 100, &mlen), TERN_ETOOBIG);
    kv[1].key = "k0";
    kv[1].key_len = 2;
    cr_assert_eq(tern_meta_encode(kv, 32, meta, sizeof meta, &mlen), TERN_EMETA);
    kv[1].key = "k1";
    kv[0].value_len = 1025;
    cr_assert_eq(tern_meta_encode(kv, 32, meta, sizeof meta, &mlen), TERN_EMETA);
    kv[0].value_len = 1024;
    cr_assert_eq(tern_meta_encode(kv, 33, meta, sizeof meta, &mlen), TERN_EMETA);
    cr_assert_eq(tern_meta_encode(kv, 32, meta, sizeof meta, &mlen), TERN_OK);
    uint32_t count = 0;
    cr_assert_eq(tern_meta_validate(meta, mlen, &count), TERN_OK);
    cr_assert_eq(count, 32);
    cr_assert_eq(tern_meta_validate(meta, mlen - 1, &count), TERN_EMALFORMED);
    //  Iterate it.
    size_t pos = 0;
    tern_kv_t e;
    int seen = 0;
    while (tern_meta_next(meta, mlen, &pos, &e)) {
        cr_assert_eq(e.key_len, strlen(keys[seen]));
        cr_assert_eq(memcmp(e.key, keys[seen], e.key_len), 0);
        cr_assert_eq(e.value_len, seen == 0 ? 1024u : 1u);
        seen++;
    }
    cr_assert_eq(seen, 32);
}

Test(proto, payload_rules) {
    tern_frame_t f;
    raw_t r;
    //  PUBLISH needs the payload frame (it may be empty).
    raw_hdr(&r, TERN_CMD_PUBLISH, 1);
    raw_str(&r, "t");
    raw_str(&r, "a");
    cr_assert_eq(raw_decode(&r, false, &f), TERN_EFRAMES);
    cr_assert_eq(tern_frame_decode(&f, r.b, r.n, (const uint8_t *)"", 0, NULL), TERN_OK);
    cr_assert(f.fields & TERN_F_PAYLOAD);
    cr_assert_eq(f.payload_size, 0);
    //  Over the limit.
    tern_limits_t lim = {4};
    cr_assert_eq(tern_frame_decode(&f, r.b, r.n, s_payload, 5, &lim), TERN_ETOOBIG);
    lim.max_payload = 5;
    cr_assert_eq(tern_frame_decode(&f, r.b, r.n, s_payload, 5, &lim), TERN_OK);
    //  HEARTBEAT must not have one; REPLY may or may not.
    raw_hdr(&r, TERN_CMD_HEARTBEAT, 0);
    cr_assert_eq(raw_decode(&r, true, &f), TERN_EFRAMES);
    cr_assert_eq(f.cmd, TERN_CMD_HEARTBEAT);
    raw_hdr(&r, TERN_CMD_REPLY, 0);
    cr_assert_eq(raw_decode(&r, true, &f), TERN_OK);
    cr_assert_eq(raw_decode(&r, false, &f), TERN_OK);
    cr_assert_not(f.fields & TERN_F_PAYLOAD);
    //  Encoder: a payload on a command without one.
    tern_frame_t h;
    tern_frame_init(&h, TERN_CMD_HEARTBEAT);
    h.payload = s_payload;
    h.payload_size = 5;
    size_t len;
    cr_assert_eq(tern_frame_encode(&h, s_buf, sizeof s_buf, &len), TERN_EFRAMES);
    cr_assert(tern_cmd_has_payload(TERN_CMD_PUBLISH));
    cr_assert(tern_cmd_has_payload(TERN_CMD_REPLY));
    cr_assert_not(tern_cmd_has_payload(TERN_CMD_ACK));
}

//  The required fields of each in-DC command, in the docs' table order; "t"
//  and "o" get a string value, the others 1.
static const struct {
    tern_cmd_t cmd;      //  the command
    const char *keys[9]; //  its required keys, NULL-terminated
} s_crepl_req[] = {
    {TERN_CMD_CREPL_SYNC, {"pt", "ep", "n", NULL}},
    {TERN_CMD_CREPL_TRUNCATE, {"pt", "ep", "t", "sq", NULL}},
    {TERN_CMD_CREPL_RECORD, {"pt", "ep", "pos", "sq", "id", "t", "ts", "o", NULL}},
    {TERN_CMD_CREPL_CAUGHT, {"pt", "ep", "pos", NULL}},
    {TERN_CMD_CREPL_CONFIRM, {"pt", "ep", "n", "pos", NULL}},
    {TERN_CMD_CREPL_HEARTBEAT, {"pt", "ep", "pos", NULL}},
    {TERN_CMD_CREPL_TOPIC, {"pt", "ep", "pos", "t", "c", NULL}},
    {TERN_CMD_CREPL_RECORDS, {"pt", "ep", "pos", NULL}},
};

//  A raw in-DC frame of entry E with every required key but SKIP (or all).
static void s_crepl_raw(raw_t *r, size_t e, const char *skip) {
    const char *const *keys = s_crepl_req[e].keys;
    uint32_t n = 0;
    while (keys[n] != NULL) {
        n++;
    }
    raw_hdr(r, s_crepl_req[e].cmd, skip ? n - 1 : n);
    for (uint32_t i = 0; i < n; i++) {
        if (skip && strcmp(keys[i], skip) == 0) {
            continue;
        }
        raw_str(r, keys[i]);
        if (strcmp(keys[i], "t") == 0) {
            raw_str(r, "orders.eu");
        } else if (strcmp(keys[i], "o") == 0) {
            raw_str(r, "eu1");
        } else {
            raw_uint(r, 1);
        }
    }
}

Test(proto, crepl_required_fields_and_payload) {
    size_t count = sizeof s_crepl_req / sizeof s_crepl_req[0];
    for (size_t e = 0; e < count; e++) {
        tern_cmd_t cmd = s_crepl_req[e].cmd;
        bool payload = cmd == TERN_CMD_CREPL_SYNC || cmd == TERN_CMD_CREPL_RECORD ||
                       cmd == TERN_CMD_CREPL_TOPIC || cmd == TERN_CMD_CREPL_RECORDS;
        cr_assert_eq(tern_cmd_has_payload(cmd), payload, "%s", tern_cmd_name(cmd));
        tern_frame_t f;
        raw_t r;
        s_crepl_raw(&r, e, NULL);
        cr_assert_eq(raw_decode(&r, payload, &f), TERN_OK, "%s", tern_cmd_name(cmd));
        cr_assert_eq(f.partition, 1);
        cr_assert_eq(f.epoch, 1);
        //  The payload rule, both ways.
        cr_assert_eq(raw_decode(&r, !payload, &f), TERN_EFRAMES, "%s", tern_cmd_name(cmd));
        for (const char *const *k = s_crepl_req[e].keys; *k != NULL; k++) {
            s_crepl_raw(&r, e, *k);
            tern_err_t rc = raw_decode(&r, payload, &f);
            cr_assert_eq(rc, TERN_EMISSING, "%s without %s: %s", tern_cmd_name(cmd), *k,
                         tern_errname(rc));
            cr_assert_eq(f.cmd, cmd);
            cr_assert_eq(f.req_id, 77);
        }
    }
    //  A SYNC from a follower that holds nothing of the partition: empty payload.
    tern_frame_t f;
    raw_t r;
    s_crepl_raw(&r, 0, NULL);
    cr_assert_eq(tern_frame_decode(&f, r.b, r.n, (const uint8_t *)"", 0, NULL), TERN_OK);
    cr_assert(f.fields & TERN_F_PAYLOAD);
    cr_assert_eq(f.payload_size, 0);
    //  pt is a u32, ep a u64; a TRUNCATE names a topic, not a pattern.
    raw_hdr(&r, TERN_CMD_CREPL_HEARTBEAT, 3);
    raw_str(&r, "pt");
    raw_uint(&r, 1ull << 32);
    raw_str(&r, "ep");
    raw_uint(&r, UINT64_MAX);
    raw_str(&r, "pos");
    raw_uint(&r, 0);
    cr_assert_eq(raw_decode(&r, false, &f), TERN_ERANGE);
    raw_hdr(&r, TERN_CMD_CREPL_HEARTBEAT, 3);
    raw_str(&r, "pt");
    raw_uint(&r, UINT32_MAX);
    raw_str(&r, "ep");
    raw_uint(&r, UINT64_MAX);
    raw_str(&r, "pos");
    raw_uint(&r, 0);
    cr_assert_eq(raw_decode(&r, false, &f), TERN_OK);
    cr_assert_eq(f.partition, UINT32_MAX);
    cr_assert_eq(f.epoch, UINT64_MAX);
    tern_frame_t t;
    s_example(TERN_CMD_CREPL_TRUNCATE, &t);
    strcpy(t.topic, "orders.>");
    size_t len;
    cr_assert_eq(tern_frame_encode(&t, s_buf, sizeof s_buf, &len), TERN_ETOPIC);
    //  The encoder keeps the payload rule too.
    s_example(TERN_CMD_CREPL_CAUGHT, &t);
    t.payload = s_payload;
    t.payload_size = 5;
    cr_assert_eq(tern_frame_encode(&t, s_buf, sizeof s_buf, &len), TERN_EFRAMES);
    //  ep is ignored on the cross-DC commands (forward compatibility); pt is
    //  the sender's outbox partition on REPL_CONFIRM (clustered DCs).
    raw_hdr(&r, TERN_CMD_REPL_CONFIRM, 3);
    raw_str(&r, "pos");
    raw_uint(&r, 3);
    raw_str(&r, "pt");
    raw_uint(&r, 9);
    raw_str(&r, "ep");
    raw_uint(&r, 4);
    cr_assert_eq(raw_decode(&r, false, &f), TERN_OK);
    cr_assert_eq(f.partition, 9);
    cr_assert_eq(f.epoch, 0);
    raw_hdr(&r, TERN_CMD_REPL_HEARTBEAT, 2);
    raw_str(&r, "pos");
    raw_uint(&r, 3);
    raw_str(&r, "pt");
    raw_uint(&r, 9);
    cr_assert_eq(raw_decode(&r, false, &f), TERN_OK);
    cr_assert_eq(f.partition, 0);
    //  Around the range: 38..47 are no commands; 55 (CREPL_GROUP) and 56
    //  (CREPL_GSTATE) need pt, ep, t and a payload.
    raw_hdr(&r, 47, 0);
    cr_assert_eq(raw_decode(&r, false, &f), TERN_ECOMMAND);
    raw_hdr(&r, TERN_CMD_CREPL_GROUP, 0);
    cr_assert_eq(raw_decode(&r, false, &f), TERN_EMISSING);
    raw_hdr(&r, TERN_CMD_CREPL_GSTATE, 3);
    raw_str(&r, "pt");
    raw_uint(&r, 1);
    raw_str(&r, "ep");
    raw_uint(&r, 2);
    raw_str(&r, "t");
    raw_str(&r, "orders");
    cr_assert_eq(raw_decode(&r, false, &f), TERN_EMISSING); //  no code
}

//  Appends the example of CMD as a CREPL_RECORDS entry at OUT + *LEN.
static void s_put_entry(tern_cmd_t cmd, uint8_t *out, size_t *len) {
    tern_frame_t f;
    size_t hlen = s_encode_example(cmd, &f);
    *len += tern_records_put(out + *len, s_buf, hlen, f.payload, f.payload_size);
}

Test(proto, crepl_records_entries) {
    //  A leader packs a record and a topic op; the follower reads them back.
    static uint8_t out[4 * TERN_HEADER_MAX];
    size_t len = 0;
    s_put_entry(TERN_CMD_CREPL_RECORD, out, &len);
    size_t first = len;
    s_put_entry(TERN_CMD_CREPL_TOPIC, out, &len);
    size_t pos = 0;
    tern_frame_t g;
    cr_assert_eq(tern_records_next(out, len, &pos, NULL, &g), TERN_OK);
    cr_assert_eq(g.cmd, TERN_CMD_CREPL_RECORD);
    cr_assert_eq(g.position, 42);
    cr_assert_eq(g.partition, 35);
    cr_assert_eq(g.payload_size, 5);
    cr_assert_eq(memcmp(g.payload, "hello", 5), 0);
    cr_assert(g.payload >= out && g.payload < out + len, "borrows from the payload");
    cr_assert_eq(tern_records_next(out, len, &pos, NULL, &g), TERN_OK);
    cr_assert_eq(g.cmd, TERN_CMD_CREPL_TOPIC);
    cr_assert_eq(g.code, TERN_CREPL_TOPIC_PUT);
    cr_assert_eq(pos, len);
    cr_assert_eq(tern_records_next(out, len, &pos, NULL, &g), TERN_ENOTFOUND);
    //  Cut anywhere inside an entry: malformed or a decode error, never a
    //  read past the end, and the position stays where it was.
    for (size_t cut = 1; cut < len; cut++) {
        if (cut == first) {
            continue; //  a whole first entry: fine
        }
        uint8_t *copy = malloc(cut); //  exact size: ASan sees any overread
        memcpy(copy, out, cut);
        size_t at = 0, n = 0;
        tern_err_t rc;
        while ((rc = tern_records_next(copy, cut, &at, NULL, &g)) == TERN_OK) {
            n++;
        }
        cr_assert_neq(rc, TERN_ENOTFOUND, "cut at %zu read as whole", cut);
        cr_assert_lt(n, 2);
        free(copy);
    }
    //  Sizes that run past the end, and entries that are not records.
    uint8_t bad[16] = {0, 0, 0, 200, 1, 2, 3};
    pos = 0;
    cr_assert_eq(tern_records_next(bad, 7, &pos, NULL, &g), TERN_EMALFORMED);
    cr_assert_eq(pos, 0);
    cr_assert_eq(tern_records_next(bad, 3, &pos, NULL, &g), TERN_EMALFORMED);
    uint8_t huge[12] = {0xff, 0xff, 0xff, 0xff};
    cr_assert_eq(tern_records_next(huge, sizeof huge, &pos, NULL, &g), TERN_EMALFORMED);
    len = 0;
    s_put_entry(TERN_CMD_CREPL_HEARTBEAT, out, &len);
    cr_assert_eq(tern_records_next(out, len, &pos, NULL, &g), TERN_ECOMMAND);
    cr_assert_eq(pos, 0);
    len = 0;
    s_put_entry(TERN_CMD_CREPL_RECORDS, out, &len); //  no nesting
    cr_assert_eq(tern_records_next(out, len, &pos, NULL, &g), TERN_ECOMMAND);
    //  An entry's own payload limit holds.
    len = 0;
    s_put_entry(TERN_CMD_CREPL_RECORD, out, &len);
    tern_limits_t small = {.max_payload = 4};
    cr_assert_eq(tern_records_next(out, len, &pos, &small, &g), TERN_ETOOBIG);
    //  Garbage instead of a header.
    uint8_t junk[] = {0, 0, 0, 2, 0xc1, 0xc1, 0, 0, 0, 0};
    cr_assert_eq(tern_records_next(junk, sizeof junk, &pos, NULL, &g), TERN_EMALFORMED);
}

Test(proto, unknown_keys_are_ignored) {
    tern_frame_t f;
    raw_t r;
    raw_hdr(&r, TERN_CMD_ACK, 5);
    raw_str(&r, "s");
    raw_uint(&r, 3);
    raw_str(&r, "future");
    raw_byte(&r, 0x92); //  [ {"x": 1.5}, bin "ab" ]
    raw_byte(&r, 0x81);
    raw_str(&r, "x");
    raw_byte(&r, 0xcb);
    raw_be(&r, 0x3ff8000000000000ull, 8);
    raw_byte(&r, 0xc4);
    raw_byte(&r, 2);
    raw_byte(&r, 'a');
    raw_byte(&r, 'b');
    raw_str(&r, "tg");
    raw_uint(&r, 4);
    raw_str(&r, "t"); //  known key, but ACK has no topic: ignored too
    raw_uint(&r, 1);
    raw_str(&r, "zz");
    raw_byte(&r, 0xd7); //  fixext8
    raw_byte(&r, 1);    //  ext type
    raw_be(&r, 0, 8);
    cr_assert_eq(raw_decode(&r, false, &f), TERN_OK);
    cr_assert_eq(f.sub_id, 3);
    cr_assert_eq(f.tag, 4);
    cr_assert_str_eq(f.topic, "");
}

//  Our encoder writes the fields in table order and the decoder looks for
//  each key after the previous one; a frame in any other order (another
//  encoder) decodes the same, and a key seen twice is still refused.
Test(proto, fields_in_any_order) {
    static const char *keys[] = {"t", "p", "ps", "o", "id", "sq", "ts", "pos", "pt", "ep", "ob"};
    const size_t n = sizeof keys / sizeof keys[0];
    for (int order = 0; order < 3; order++) {
        raw_t r;
        raw_hdr(&r, TERN_CMD_CREPL_RECORD, (uint32_t)n);
        for (size_t i = 0; i < n; i++) {
            //  0: table order, 1: reversed, 2: rotated
            size_t k = order == 0 ? i : order == 1 ? n - 1 - i : (i + 5) % n;
            raw_str(&r, keys[k]);
            if (!strcmp(keys[k], "t") || !strcmp(keys[k], "p") || !strcmp(keys[k], "o")) {
                raw_str(&r, keys[k][0] == 't' ? "orders.eu" : keys[k][0] == 'p' ? "prod" : "eu1");
            } else {
                raw_uint(&r, 10 + k);
            }
        }
        tern_frame_t f;
        cr_assert_eq(raw_decode(&r, true, &f), TERN_OK, "order %d", order);
        cr_assert_str_eq(f.topic, "orders.eu");
        cr_assert_str_eq(f.producer, "prod");
        cr_assert_str_eq(f.origin, "eu1");
        cr_assert_eq(f.producer_seq, 12);
        cr_assert_eq(f.msg_id, 14);
        cr_assert_eq(f.seq, 15);
        cr_assert_eq(f.timestamp_ns, 16);
        cr_assert_eq(f.position, 17);
        cr_assert_eq(f.partition, 18);
        cr_assert_eq(f.epoch, 19);
        cr_assert_eq(f.outbox_pos, 20);
    }
    raw_t r;
    raw_hdr(&r, TERN_CMD_ACK, 3);
    raw_str(&r, "tg");
    raw_uint(&r, 1);
    raw_str(&r, "s");
    raw_uint(&r, 2);
    raw_str(&r, "tg");
    raw_uint(&r, 3);
    tern_frame_t f;
    cr_assert_eq(raw_decode(&r, false, &f), TERN_EMALFORMED);
}

//  REPL_HELLO may carry the sender's store identity ("nm"); without it
//  (an older sender) it decodes as before, with TERN_F_NAME clear.
Test(proto, repl_hello_identity) {
    tern_frame_t f, out;
    tern_frame_init(&f, TERN_CMD_REPL_HELLO);
    f.proto_version = TERN_PROTO_VERSION;
    f.node_id = 3;
    strcpy(f.dc, "eu1");
    f.position = 41;
    size_t len = 0;
    cr_assert_eq(tern_frame_encode(&f, s_buf, sizeof s_buf, &len), TERN_OK);
    cr_assert_eq(tern_frame_decode(&out, s_buf, len, NULL, 0, NULL), TERN_OK);
    cr_assert_eq(out.fields & TERN_F_NAME, 0u);
    cr_assert_str_eq(out.name, "");
    strcpy(f.name, "3f1c2a9e-7b4d-4e0a-9c1f-5a6b7c8d9e0f");
    f.fields |= TERN_F_NAME;
    cr_assert_eq(tern_frame_encode(&f, s_buf, sizeof s_buf, &len), TERN_OK);
    cr_assert_eq(tern_frame_decode(&out, s_buf, len, NULL, 0, NULL), TERN_OK);
    cr_assert_neq(out.fields & TERN_F_NAME, 0u);
    cr_assert_str_eq(out.name, "3f1c2a9e-7b4d-4e0a-9c1f-5a6b7c8d9e0f");
    cr_assert_eq(out.position, 41);
    //  It is a name: the grammar applies.
    strcpy(f.name, "no spaces");
    cr_assert_neq(tern_frame_encode(&f, s_buf, sizeof s_buf, &len), TERN_OK);
}

Test(proto, encode_errors) {
    tern_frame_t f;
    size_t len;
    s_example(TERN_CMD_PUBLISH, &f);
    cr_assert_eq(tern_frame_encode(&f, s_buf, 10, &len), TERN_ETOOBIG);
    strcpy(f.topic, "bad topic");
    cr_assert_eq(tern_frame_encode(&f, s_buf, sizeof s_buf, &len), TERN_ETOPIC);
    s_example(TERN_CMD_PUBLISH, &f);
    f.priority = 10;
    cr_assert_eq(tern_frame_encode(&f, s_buf, sizeof s_buf, &len), TERN_ERANGE);
    s_example(TERN_CMD_PUBLISH, &f);
    f.trace_id[5] = 'X';
    cr_assert_eq(tern_frame_encode(&f, s_buf, sizeof s_buf, &len), TERN_ETRACE);
    s_example(TERN_CMD_PUBLISH, &f);
    memset(f.producer, 'a', sizeof f.producer); //  not NUL-terminated
    cr_assert_eq(tern_frame_encode(&f, s_buf, sizeof s_buf, &len), TERN_ETOOBIG);
    s_example(TERN_CMD_PUBLISH, &f);
    f.meta_size = 2; //  cut the map short
    cr_assert_eq(tern_frame_encode(&f, s_buf, sizeof s_buf, &len), TERN_EMALFORMED);
    f.cmd = (tern_cmd_t)99;
    cr_assert_eq(tern_frame_encode(&f, s_buf, sizeof s_buf, &len), TERN_ECOMMAND);
    s_example(TERN_CMD_PUBLISH, &f);
    f.version = 2;
    cr_assert_eq(tern_frame_encode(&f, s_buf, sizeof s_buf, &len), TERN_EVERSION);
    //  A priority set without its bit is still sent.
    tern_frame_init(&f, TERN_CMD_PUBLISH);
    strcpy(f.topic, "a");
    f.priority = 0;
    cr_assert_eq(tern_frame_encode(&f, s_buf, sizeof s_buf, &len), TERN_OK);
    tern_frame_t g;
    cr_assert_eq(tern_frame_decode(&g, s_buf, len, s_payload, 0, NULL), TERN_OK);
    cr_assert_eq(g.priority, 0);
    //  So is any optional number or flag with a non-zero value.
    tern_frame_init(&f, TERN_CMD_NACK);
    f.sub_id = 1;
    f.tag = 2;
    f.delay_ms = 500;
    cr_assert_eq(tern_frame_encode(&f, s_buf, sizeof s_buf, &len), TERN_OK);
    cr_assert_eq(tern_frame_decode(&g, s_buf, len, NULL, 0, NULL), TERN_OK);
    cr_assert_eq(g.delay_ms, 500);
    cr_assert(g.fields & TERN_F_DELAY);
}

Test(proto, puback_limits) {
    static tern_puback_t acks[TERN_PUBACK_MAX + 1];
    for (uint32_t i = 0; i <= TERN_PUBACK_MAX; i++) {
        acks[i] =
            (tern_puback_t){i + 1, UINT64_MAX - i, i, i % 2 ? TERN_EFULL : TERN_OK, i % 3 == 0};
    }
    static uint8_t buf[TERN_HEADER_MAX];
    size_t len;
    cr_assert_eq(tern_frame_encode_puback(acks, TERN_PUBACK_MAX + 1, buf, sizeof buf, &len),
                 TERN_ETOOBIG);
    cr_assert_eq(tern_frame_encode_puback(acks, TERN_PUBACK_MAX, buf, 1000, &len), TERN_ETOOBIG);
    cr_assert_eq(tern_frame_encode_puback(acks, TERN_PUBACK_MAX, buf, sizeof buf, &len), TERN_OK);
    tern_frame_t f;
    cr_assert_eq(tern_frame_decode(&f, buf, len, NULL, 0, NULL), TERN_OK);
    cr_assert_eq(f.ack_count, TERN_PUBACK_MAX);
    tern_puback_t a;
    cr_assert_eq(tern_frame_puback(&f, TERN_PUBACK_MAX - 1, &a), TERN_OK);
    cr_assert_eq(a.req_id, TERN_PUBACK_MAX);
    cr_assert_eq(a.msg_id, UINT64_MAX - (TERN_PUBACK_MAX - 1));
    cr_assert_eq(a.code, TERN_EFULL);
    //  Re-encoding the decoded frame is byte-identical.
    static uint8_t buf2[TERN_HEADER_MAX];
    size_t len2;
    cr_assert_eq(tern_frame_encode(&f, buf2, sizeof buf2, &len2), TERN_OK);
    cr_assert_eq(len2, len);
    cr_assert_eq(memcmp(buf, buf2, len), 0);
    //  A flags byte other than 0/1, and a blob that is not whole entries.
    buf[len - 1] = 2;
    cr_assert_eq(tern_frame_decode(&f, buf, len, NULL, 0, NULL), TERN_ERANGE);
    cr_assert_eq(tern_frame_encode_puback(acks, 1, buf, sizeof buf, &len), TERN_OK);
    buf[len - 30] = 28; //  bin8 length byte: 29 -> 28
    cr_assert_eq(tern_frame_decode(&f, buf, len - 1, NULL, 0, NULL), TERN_EMALFORMED);
}

Test(proto, topic_grammar) {
#define T(s) tern_topic_valid(s, strlen(s))
#define P(s) tern_pattern_valid(s, strlen(s))
    cr_assert(T("a"));
    cr_assert(T("orders.eu-1.created_v2"));
    cr_assert_not(T(""));
    cr_assert_not(T("."));
    cr_assert_not(T("a."));
    cr_assert_not(T(".a"));
    cr_assert_not(T("a..b"));
    cr_assert_not(T("a b"));
    cr_assert_not(T("a.*"));
    cr_assert_not(T("a.>"));
    cr_assert_not(T("caf\xc3\xa9"));
    char long_t[202];
    memset(long_t, 'x', sizeof long_t);
    cr_assert(tern_topic_valid(long_t, 200));
    cr_assert_not(tern_topic_valid(long_t, 201));
    cr_assert_not(tern_topic_valid("a\0b", 3));
    cr_assert(P("a.*.c"));
    cr_assert(P("*"));
    cr_assert(P(">"));
    cr_assert(P("a.>"));
    cr_assert(P("*.*.>"));
    cr_assert_not(P("a.>.b"));
    cr_assert_not(P("a*"));
    cr_assert_not(P("a.b>"));
    cr_assert_not(P("**"));
    cr_assert_not(P("a..*"));
    cr_assert_not(P(""));
}

Test(proto, pattern_match) {
    cr_assert(tern_pattern_match("a.b", "a.b"));
    cr_assert_not(tern_pattern_match("a.b", "a.bc"));
    cr_assert_not(tern_pattern_match("a.b", "a.b.c"));
    cr_assert_not(tern_pattern_match("a.b.c", "a.b"));
    cr_assert(tern_pattern_match("a.*", "a.b"));
    cr_assert_not(tern_pattern_match("a.*", "a"));
    cr_assert_not(tern_pattern_match("a.*", "a.b.c"));
    cr_assert(tern_pattern_match("*.b.*", "x.b.y"));
    cr_assert_not(tern_pattern_match("*.b.*", "x.c.y"));
    cr_assert(tern_pattern_match("a.>", "a.b"));
    cr_assert(tern_pattern_match("a.>", "a.b.c.d"));
    cr_assert_not(tern_pattern_match("a.>", "a"));
    cr_assert_not(tern_pattern_match("a.>", "b.c"));
    cr_assert(tern_pattern_match(">", "a"));
    cr_assert(tern_pattern_match(">", "a.b"));
    cr_assert(tern_pattern_match("*", "a"));
    cr_assert_not(tern_pattern_match("*", "a.b"));
    cr_assert(tern_pattern_match("*.>", "a.b"));
    cr_assert_not(tern_pattern_match("*.>", "a"));
    cr_assert_not(tern_pattern_match("ab", "a"));
    cr_assert_not(tern_pattern_match("a", "ab"));
}

Test(proto, names_and_traces) {
#define N(s)  tern_name_valid(s, strlen(s))
#define TR(s) tern_trace_valid(s, strlen(s))
    cr_assert(N("billing"));
    cr_assert(N("svc:orders.v2_a-b"));
    cr_assert_not(N(""));
    cr_assert_not(N("a b"));
    cr_assert_not(N("a/b"));
    cr_assert_not(N("a*"));
    char long_n[66];
    memset(long_n, 'n', sizeof long_n);
    cr_assert(tern_name_valid(long_n, 64));
    cr_assert_not(tern_name_valid(long_n, 65));
    cr_assert(TR(TRACE));
    cr_assert(TR("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"));
    cr_assert_not(TR("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    cr_assert_not(TR("00-00000000000000000000000000000000-00f067aa0ba902b7-01"));
    cr_assert_not(TR("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"));
    cr_assert_not(TR("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g"));
    cr_assert_not(TR("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902B7-01"));
    cr_assert_not(TR("00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01"));
    cr_assert_not(TR("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-"));
    cr_assert_not(TR("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01"));
    cr_assert_not(TR(""));
}

Test(proto, error_names) {
    const int codes[] = {
        TERN_OK,       TERN_EMALFORMED, TERN_EMAGIC, TERN_EVERSION,  TERN_ECOMMAND, TERN_ETYPE,
        TERN_EMISSING, TERN_ETOOBIG,    TERN_ETOPIC, TERN_ENAME,     TERN_ETRACE,   TERN_EMETA,
        TERN_ERANGE,   TERN_EFRAMES,    TERN_EINVAL, TERN_ENOTFOUND, TERN_EEXIST,   TERN_ESTATE,
        TERN_EDENIED,  TERN_ELIMIT,     TERN_EFULL,  TERN_ECORRUPT,  TERN_ESTORAGE, TERN_ETIMEOUT,
        TERN_ECLOSED,  TERN_ECLOCK,     TERN_ENOMEM, TERN_EBUSY,     TERN_ECONFIG,  TERN_EINTERNAL};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        cr_assert_str_neq(tern_strerror(codes[i]), "unknown error");
        cr_assert_eq(strncmp(tern_errname(codes[i]), "TERN_", 5), 0);
    }
    cr_assert_str_eq(tern_errname(TERN_EFULL), "TERN_EFULL");
    cr_assert_str_eq(tern_strerror(12345), "unknown error");
    cr_assert_str_eq(tern_cmd_name(TERN_CMD_REPL_ACKSTATE), "REPL_ACKSTATE");
    cr_assert_str_eq(tern_cmd_name(TERN_CMD_CREPL_HEARTBEAT), "CREPL_HEARTBEAT");
    cr_assert_str_eq(tern_cmd_name((tern_cmd_t)200), "UNKNOWN");
}

//  The codec keeps no shared state: threads encoding and decoding different
//  frames at once each get their own results back.
static void *s_thread_worker(void *arg) {
    uintptr_t id = (uintptr_t)arg;
    uint8_t buf[1024];
    for (uint64_t i = 0; i < 20000; i++) {
        tern_frame_t f, g;
        tern_frame_init(&f, TERN_CMD_ACK);
        f.sub_id = id;
        f.tag = i;
        snprintf(f.reason, sizeof f.reason, "t%lu", (unsigned long)id); //  not sent by ACK
        size_t len;
        if (tern_frame_encode(&f, buf, sizeof buf, &len) != TERN_OK ||
            tern_frame_decode(&g, buf, len, NULL, 0, NULL) != TERN_OK || g.sub_id != id ||
            g.tag != i || g.reason[0] != '\0') {
            return (void *)1;
        }
    }
    return NULL;
}

Test(proto, threads) {
    pthread_t threads[4];
    for (uintptr_t i = 0; i < 4; i++) {
        cr_assert_eq(pthread_create(&threads[i], NULL, s_thread_worker, (void *)(i + 1)), 0);
    }
    for (int i = 0; i < 4; i++) {
        void *result;
        cr_assert_eq(pthread_join(threads[i], &result), 0);
        cr_assert_null(result);
    }
}

//  Writes fuzz seeds (2-byte header length, header, payload) when asked to.
Test(proto, corpus) {
    const char *dir = getenv("TERN_PROTO_CORPUS");
    if (dir == NULL) {
        return;
    }
    for (size_t i = 0; i < N_CMDS; i++) {
        tern_frame_t f;
        size_t len = s_encode_example(s_all_cmds[i], &f);
        char path[512];
        snprintf(path, sizeof path, "%s/seed-%s", dir, tern_cmd_name(s_all_cmds[i]));
        FILE *file = fopen(path, "wb");
        cr_assert_not_null(file);
        uint16_t n = (uint16_t)len | (f.payload ? 0 : 0x8000);
        uint8_t lenb[2] = {(uint8_t)(n >> 8), (uint8_t)n};
        fwrite(lenb, 1, 2, file);
        fwrite(s_buf, 1, len, file);
        if (f.payload_size) {
            fwrite(f.payload, 1, f.payload_size, file);
        }
        fclose(file);
    }
}

// ---------------------------------------------------------------------------
//  Header templates

#define OFF(m) offsetof(tern_frame_t, m)

Test(template, usage_example) {
    //  A consumer acks many deliveries: make the ACK header once with
    //  req_id, sub_id and tag open, then fill in each ack's numbers.
    tern_frame_t ack;
    tern_frame_init(&ack, TERN_CMD_ACK);
    size_t open[] = {OFF(req_id), OFF(sub_id), OFF(tag)};
    tern_frame_template_t tpl;
    cr_assert_eq(tern_frame_template_make(&tpl, &ack, open, 3), TERN_OK);
    uint64_t values[] = {41, 2, 300};
    uint8_t out[TERN_TEMPLATE_OUT_MAX];
    size_t len = tern_frame_template_fill(&tpl, values, out);

    //  The same bytes as encoding the frame with those numbers.
    ack.req_id = 41;
    ack.sub_id = 2;
    ack.tag = 300;
    size_t want;
    cr_assert_eq(tern_frame_encode(&ack, s_buf, sizeof s_buf, &want), TERN_OK);
    cr_assert_eq(len, want);
    cr_assert_eq(memcmp(out, s_buf, len), 0);
}

//  The frames libtern templates, and a few more of the same kind.
typedef struct {
    const char *name;     //  for failure messages
    tern_cmd_t cmd;       //  command
    const char *topic;    //  PUBLISH topic or NULL
    const char *producer; //  producer id or NULL
    bool has_priority;    //  priority flagged
    uint8_t priority;     //  its value
    uint32_t ttl_ms;      //  0 = none
    uint8_t ttl_class;    //  0 = none
    bool cumulative;      //  ACK
    bool has_delay;       //  NACK delay flagged
    uint32_t delay_ms;    //  its value
    const char *reason;   //  TERM or NULL
    uint32_t credit;      //  CREDIT
    size_t open[3];       //  members left open
    size_t count;         //  how many
} s_tpl_case_t;

static const char s_long_topic[] =
    "a.bcdefghij.klmnopqrst.uvwxyz0123.456789ABCD.EFGHIJKLMN.OPQRSTUVWX.YZ-_abcdef.ghijklmnop."
    "qrstuvwxyz.0123456789.ABCDEFGHIJ.KLMNOPQRST.UVWXYZ-_ab.cdefghijkl.mnopqrstuv.wxyz012345."
    "6789ABCDEFGHIJKLMNOPQRS";
static const char s_long_name[] =
    "p-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd";

#define PUB_OPEN {OFF(req_id), OFF(producer_seq)}, 2
#define ACK_OPEN {OFF(req_id), OFF(sub_id), OFF(tag)}, 3

static const s_tpl_case_t s_tpl_cases[] = {
    {"publish", TERN_CMD_PUBLISH, "orders", .has_priority = true, .priority = 4,
     .open = {OFF(req_id)}, .count = 1},
    {"publish producer", TERN_CMD_PUBLISH, "orders.eu", "p-1", true, 4, .open = PUB_OPEN},
    {"publish ttl", TERN_CMD_PUBLISH, "a", "p", true, 9, .ttl_ms = 60000, .open = PUB_OPEN},
    {"publish class, reversed", TERN_CMD_PUBLISH, "x.y.z", "prod", true, 0,
     .ttl_class = TERN_TTL_BUSINESS, .open = {OFF(producer_seq), OFF(req_id)}, .count = 2},
    {"publish longest", TERN_CMD_PUBLISH, s_long_topic, s_long_name, true, 7, .ttl_ms = UINT32_MAX,
     .open = PUB_OPEN},
    {"ack", TERN_CMD_ACK, .open = ACK_OPEN},
    {"ack cumulative", TERN_CMD_ACK, .cumulative = true, .open = ACK_OPEN},
    {"ack, tag first", TERN_CMD_ACK, .open = {OFF(tag), OFF(req_id), OFF(sub_id)}, .count = 3},
    {"nack delay", TERN_CMD_NACK, .has_delay = true, .delay_ms = 5000, .open = ACK_OPEN},
    {"term reason", TERN_CMD_TERM, .reason = "bad input", .open = ACK_OPEN},
    {"credit", TERN_CMD_CREDIT, .credit = 1000, .open = {OFF(req_id), OFF(sub_id)}, .count = 2},
    {"unsubscribe", TERN_CMD_UNSUBSCRIBE, .open = {OFF(sub_id), OFF(req_id)}, .count = 2},
};

static void s_tpl_frame(const s_tpl_case_t *c, tern_frame_t *f) {
    tern_frame_init(f, c->cmd);
    if (c->topic) {
        snprintf(f->topic, sizeof f->topic, "%s", c->topic);
        f->fields |= TERN_F_TOPIC;
    }
    if (c->producer) {
        snprintf(f->producer, sizeof f->producer, "%s", c->producer);
        f->fields |= TERN_F_PRODUCER;
    }
    if (c->has_priority) {
        f->priority = c->priority;
        f->fields |= TERN_F_PRIORITY;
    }
    if (c->ttl_ms) {
        f->ttl_ms = c->ttl_ms;
        f->fields |= TERN_F_TTL;
    }
    f->ttl_class = c->ttl_class;
    if (c->cumulative) {
        f->cumulative = true;
        f->fields |= TERN_F_CUMULATIVE;
    }
    if (c->has_delay) {
        f->delay_ms = c->delay_ms;
        f->fields |= TERN_F_DELAY;
    }
    if (c->reason) {
        snprintf(f->reason, sizeof f->reason, "%s", c->reason);
        f->fields |= TERN_F_REASON;
    }
    f->credit = c->credit;
}

//  Every msgpack width, and its edges.
static const uint64_t s_tpl_values[] = {0,
                                        1,
                                        2,
                                        127,
                                        128,
                                        255,
                                        256,
                                        65535,
                                        65536,
                                        UINT32_MAX,
                                        UINT32_MAX + 1ull,
                                        0x0123456789abcdefull,
                                        UINT64_MAX - 1,
                                        UINT64_MAX};
#define N_TPL_VALUES (sizeof s_tpl_values / sizeof s_tpl_values[0])

Test(template, equals_the_codec) {
    for (size_t c = 0; c < sizeof s_tpl_cases / sizeof s_tpl_cases[0]; c++) {
        const s_tpl_case_t *tc = &s_tpl_cases[c];
        tern_frame_t f;
        s_tpl_frame(tc, &f);
        tern_frame_template_t tpl;
        tern_err_t rc = tern_frame_template_make(&tpl, &f, tc->open, tc->count);
        cr_assert_eq(rc, TERN_OK, "%s: %s", tc->name, tern_strerror(rc));
        //  Each value in every open member, and mixed ones.
        for (size_t v = 0; v < N_TPL_VALUES * 3; v++) {
            uint64_t values[3];
            for (size_t i = 0; i < tc->count; i++) {
                size_t k = v < N_TPL_VALUES ? v : (v + 5 * i + 3 * (v / N_TPL_VALUES));
                values[i] = s_tpl_values[k % N_TPL_VALUES];
                memcpy((uint8_t *)&f + tc->open[i], &values[i], sizeof values[i]);
            }
            uint8_t out[TERN_TEMPLATE_OUT_MAX];
            size_t len = tern_frame_template_fill(&tpl, values, out);
            size_t want;
            cr_assert_eq(tern_frame_encode(&f, s_buf, sizeof s_buf, &want), TERN_OK);
            cr_assert_eq(len, want, "%s, values %zu: %zu bytes, the codec %zu", tc->name, v, len,
                         want);
            cr_assert_eq(memcmp(out, s_buf, len), 0, "%s, values %zu", tc->name, v);
        }
    }
}

Test(template, refuses_other_shapes) {
    tern_frame_t ack;
    tern_frame_init(&ack, TERN_CMD_ACK);
    tern_frame_template_t tpl;
    size_t open[] = {OFF(req_id), OFF(sub_id), OFF(tag), OFF(req_id)};
    cr_assert_eq(tern_frame_template_make(&tpl, &ack, open, 0), TERN_EINVAL);
    cr_assert_eq(tern_frame_template_make(&tpl, &ack, open, 4), TERN_EINVAL);
    cr_assert_eq(tpl.len, 0);
    cr_assert_eq(tern_frame_template_make(NULL, &ack, open, 1), TERN_EINVAL);
    cr_assert_eq(tern_frame_template_make(&tpl, NULL, open, 1), TERN_EINVAL);

    //  The same member twice, a member that is not a uint64_t.
    size_t twice[] = {OFF(tag), OFF(tag)};
    cr_assert_eq(tern_frame_template_make(&tpl, &ack, twice, 2), TERN_EINVAL);
    size_t narrow[] = {OFF(credit)};
    cr_assert_eq(tern_frame_template_make(&tpl, &ack, narrow, 1), TERN_EINVAL);
    size_t odd[] = {OFF(req_id) + 1};
    cr_assert_eq(tern_frame_template_make(&tpl, &ack, odd, 1), TERN_EINVAL);

    //  A member the codec writes only when it is not 0: OK's sub_id, a
    //  REPL_RECORD's seq (its position is always written).
    tern_frame_t ok;
    tern_frame_init(&ok, TERN_CMD_OK);
    size_t sub[] = {OFF(sub_id)};
    cr_assert_eq(tern_frame_template_make(&tpl, &ok, sub, 1), TERN_EINVAL);
    tern_frame_t rec;
    s_example(TERN_CMD_REPL_RECORD, &rec);
    rec.meta = NULL;
    rec.fields &= ~TERN_F_META;
    rec.key[0] = rec.trace_id[0] = '\0';
    rec.fields &= ~(TERN_F_KEY | TERN_F_TRACE);
    size_t seq[] = {OFF(seq)};
    cr_assert_eq(tern_frame_template_make(&tpl, &rec, seq, 1), TERN_EINVAL);
    size_t pos[] = {OFF(position)};
    cr_assert_eq(tern_frame_template_make(&tpl, &rec, pos, 1), TERN_OK);

    //  The encoder's own errors, and a header over TERN_TEMPLATE_MAX.
    tern_frame_t pub;
    tern_frame_init(&pub, TERN_CMD_PUBLISH);
    strcpy(pub.topic, "a..b");
    pub.fields |= TERN_F_TOPIC;
    size_t req[] = {OFF(req_id)};
    cr_assert_eq(tern_frame_template_make(&tpl, &pub, req, 1), TERN_ETOPIC);
    strcpy(pub.topic, s_long_topic);
    strcpy(pub.producer, s_long_name);
    memset(pub.key, 'k', TERN_KEY_MAX);
    pub.key[TERN_KEY_MAX] = '\0';
    pub.fields |= TERN_F_PRODUCER | TERN_F_KEY;
    cr_assert_eq(tern_frame_template_make(&tpl, &pub, req, 1), TERN_ETOOBIG);
    cr_assert_eq(tpl.len, 0);
}
