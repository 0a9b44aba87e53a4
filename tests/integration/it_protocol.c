/*  it_protocol.c - the session protocol on the wire, through a raw ZeroMQ
    DEALER: WELCOME fields, SUBSCRIBE/OK, DELIVER tags, cumulative ACK,
    credit flow control, NACK delay and backoff timing, ack wait, TERM with a
    reason, UNSUBSCRIBE returning in-flight messages to the group, and
    batched PUBACKs.
*/
#include "harness.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_QUEUE_MAX 4096

//  One received DELIVER, copied out of the frame.
typedef struct {
    uint64_t sub_id;         //  subscription
    uint64_t tag;            //  delivery tag
    uint64_t seq;            //  topic seq
    uint64_t msg_id;         //  message id
    uint32_t delivery_count; //  1 on first delivery
    int64_t at_ms;           //  when it arrived (monotonic)
    char data[64];           //  payload (short test payloads)
} s_deliver_t;

//  A raw session plus the DELIVERs that arrived while waiting for replies.
typedef struct {
    it_raw_t *raw;                  //  the socket
    s_deliver_t queue[S_QUEUE_MAX]; //  DELIVERs not yet consumed
    size_t head, tail;              //  queue bounds
    uint64_t next_req;              //  request ids
    size_t pubacks;                 //  PUBACK frames seen
} s_sess_t;

static s_sess_t *s_sess_new(it_broker_t *b, const char *name) {
    s_sess_t *self = calloc(1, sizeof *self);
    cr_assert(self);
    self->raw = it_raw_new(b->endpoint);
    cr_assert(self->raw);
    cr_assert(it_raw_hello(self->raw, name), "no WELCOME");
    self->next_req = 100;
    return self;
}

static void s_sess_destroy(s_sess_t **self_p) {
    if (*self_p) {
        tern_frame_t f;
        tern_frame_init(&f, TERN_CMD_BYE);
        it_raw_send_frame((*self_p)->raw, &f);
        it_sleep_ms(20);
        it_raw_destroy(&(*self_p)->raw);
        free(*self_p);
        *self_p = NULL;
    }
}

static void s_queue(s_sess_t *self, const tern_frame_t *f) {
    cr_assert_lt(self->tail, S_QUEUE_MAX);
    s_deliver_t *d = &self->queue[self->tail++];
    d->sub_id = f->sub_id;
    d->tag = f->tag;
    d->seq = f->seq;
    d->msg_id = f->msg_id;
    d->delivery_count = f->delivery_count;
    d->at_ms = it_now_ms();
    size_t n = f->payload_size < sizeof d->data - 1 ? f->payload_size : sizeof d->data - 1;
    if (f->payload) {
        memcpy(d->data, f->payload, n);
    }
    d->data[n] = 0;
}

//  Receives one non-heartbeat frame; DELIVERs are queued and reported as
//  TERN_CMD_DELIVER in *CMD. Returns false on timeout.
static bool s_pump(s_sess_t *self, tern_frame_t *out, int timeout_ms) {
    tern_err_t rc = it_raw_recv_reply(self->raw, out, timeout_ms);
    if (rc == TERN_ETIMEOUT) {
        return false;
    }
    cr_assert_eq(rc, TERN_OK, "undecodable frame from the broker (%s)", tern_errname(rc));
    if (out->cmd == TERN_CMD_DELIVER) {
        s_queue(self, out);
    }
    if (out->cmd == TERN_CMD_PUBACK) {
        self->pubacks++;
    }
    return true;
}

//  Waits for the reply (OK or ERROR) naming REQ; returns it in *OUT.
static void s_wait_reply(s_sess_t *self, uint64_t req, tern_frame_t *out, const char *what) {
    int64_t deadline = it_now_ms() + 5000;
    while (it_now_ms() < deadline) {
        if (!s_pump(self, out, (int)(deadline - it_now_ms()))) {
            break;
        }
        if ((out->cmd == TERN_CMD_OK || out->cmd == TERN_CMD_ERROR) && out->req_id == req) {
            return;
        }
    }
    cr_assert(false, "%s: no reply for req %llu", what, (unsigned long long)req);
}

//  Next DELIVER (queued or arriving within TIMEOUT_MS); false if none.
static bool s_next(s_sess_t *self, s_deliver_t *d, int timeout_ms) {
    int64_t deadline = it_now_ms() + timeout_ms;
    while (self->head == self->tail) {
        int64_t left = deadline - it_now_ms();
        tern_frame_t f;
        if (left <= 0 || !s_pump(self, &f, (int)left)) {
            return false;
        }
    }
    *d = self->queue[self->head++];
    return true;
}

static uint64_t s_subscribe(s_sess_t *self, const char *topic, const char *group, uint32_t credit) {
    tern_frame_t f;
    tern_frame_init(&f, TERN_CMD_SUBSCRIBE);
    f.req_id = self->next_req++;
    snprintf(f.topic, sizeof f.topic, "%s", topic);
    f.fields |= TERN_F_TOPIC;
    if (group) {
        snprintf(f.group, sizeof f.group, "%s", group);
        f.fields |= TERN_F_GROUP;
    }
    f.start = TERN_START_FIRST;
    f.credit = credit;
    cr_assert_eq(it_raw_send_frame(self->raw, &f), TERN_OK);
    tern_frame_t reply;
    s_wait_reply(self, f.req_id, &reply, "SUBSCRIBE");
    cr_assert_eq(reply.cmd, TERN_CMD_OK, "SUBSCRIBE refused: %u %s", reply.code, reply.reason);
    cr_assert_gt(reply.sub_id, 0, "OK to SUBSCRIBE without a sub_id");
    return reply.sub_id;
}

static void s_send(s_sess_t *self, tern_cmd_t cmd, uint64_t sub_id, uint64_t tag,
                   void (*tweak)(tern_frame_t *), uint64_t *req_p) {
    tern_frame_t f;
    tern_frame_init(&f, cmd);
    f.req_id = self->next_req++;
    f.sub_id = sub_id;
    f.tag = tag;
    if (tweak) {
        tweak(&f);
    }
    cr_assert_eq(it_raw_send_frame(self->raw, &f), TERN_OK);
    if (req_p) {
        *req_p = f.req_id;
    }
}

//  Reads one group field through `ternctl groups`.
static int64_t s_group_field(it_broker_t *b, const char *topic, const char *group,
                             const char *key) {
    it_result_t r;
    it_ctl(&r, b, 10000, "groups", topic, NULL);
    it_assert_ok(&r, "ternctl groups");
    char **lines;
    size_t n = it_split_lines(r.out, &lines);
    int64_t v = -1;
    for (size_t i = 0; i < n; i++) {
        char g[80];
        if (it_json_str(lines[i], "group", g, sizeof g) && strcmp(g, group) == 0) {
            it_json_int(lines[i], key, &v);
        }
    }
    free(lines);
    it_result_free(&r);
    return v;
}

Test(protocol, welcome_fields, .fini = it_teardown, .timeout = 30) {
    it_broker_t *b = it_broker_new(
        5, (const char *const[]){"--heartbeat", "700ms", "--max-payload", "2K", NULL});
    cr_assert(b);
    snprintf(b->dc, sizeof b->dc, "east");
    it_adopt_broker(b);
    cr_assert(it_broker_start(b));
    it_raw_t *raw = it_raw_new(b->endpoint);
    tern_frame_t f;
    tern_frame_init(&f, TERN_CMD_HELLO);
    f.req_id = 1;
    f.proto_version = TERN_PROTO_VERSION + 5; //  newer client: the broker picks the min
    f.heartbeat_ms = 10000;
    cr_assert_eq(it_raw_send_frame(raw, &f), TERN_OK);
    tern_frame_t w;
    cr_assert_eq(it_raw_recv_reply(raw, &w, 5000), TERN_OK);
    cr_assert_eq(w.cmd, TERN_CMD_WELCOME, "got %s (%u %s)", tern_cmd_name(w.cmd), w.code, w.reason);
    cr_assert_eq(w.proto_version, TERN_PROTO_VERSION);
    cr_assert_eq(w.node_id, 5);
    cr_assert_str_eq(w.dc, "east");
    cr_assert_eq(w.heartbeat_ms, 700);
    cr_assert_eq(w.max_payload, 2048);
    //  The broker heartbeats an idle session at its interval.
    tern_frame_t hb;
    int64_t t0 = it_now_ms();
    cr_assert_eq(it_raw_recv(raw, &hb, 3000), TERN_OK, "no HEARTBEAT from the broker in 3 s");
    cr_assert_eq(hb.cmd, TERN_CMD_HEARTBEAT, "got %s", tern_cmd_name(hb.cmd));
    cr_assert_lt(it_now_ms() - t0, 2000);
    it_raw_destroy(&raw);
}

static void s_cumulative(tern_frame_t *f) {
    f->cumulative = true;
    f->fields |= TERN_F_CUMULATIVE;
}

Test(protocol, tags_and_cumulative_ack, .fini = it_teardown, .timeout = 30) {
    it_broker_t *b = it_start_broker("--ack-wait", "60s", NULL);
    it_pub(b, "it.p.tags", "t{n}", 10);
    s_sess_t *s = s_sess_new(b, "tags");
    uint64_t sub = s_subscribe(s, "it.p.tags", "g", 0);
    s_deliver_t d[10];
    for (int i = 0; i < 10; i++) {
        cr_assert(s_next(s, &d[i], 3000), "only %d of 10 DELIVERs", i);
        cr_assert_eq(d[i].sub_id, sub);
        cr_assert_eq(d[i].tag, (uint64_t)i + 1, "tag %llu at position %d",
                     (unsigned long long)d[i].tag, i);
        cr_assert_eq(d[i].seq, (uint64_t)i + 1);
        cr_assert_eq(d[i].delivery_count, 1);
    }
    //  Cumulative ACK of tag 6 acks 1..6.
    s_send(s, TERN_CMD_ACK, sub, 6, s_cumulative, NULL);
    s_send(s, TERN_CMD_ACK, sub, 8, NULL, NULL); //  single
    it_sleep_ms(300);
    cr_assert_eq(s_group_field(b, "it.p.tags", "g", "acked"), 7);
    cr_assert_eq(s_group_field(b, "it.p.tags", "g", "ack_floor"), 6); //  7 is not acked
    cr_assert_eq(s_group_field(b, "it.p.tags", "g", "next_unacked"), 7);
    cr_assert_eq(s_group_field(b, "it.p.tags", "g", "pending"), 3);
    s_sess_destroy(&s);
    //  The unacked 7, 9, 10 come back to the next consumer.
    it_result_t r;
    it_ctl(&r, b, 15000, "sub", "it.p.tags", "--group", "g", "--count", "10", "--timeout", "1500ms",
           NULL);
    it_msg_t *msgs;
    size_t m = it_parse_msgs(r.out, &msgs);
    cr_assert_eq(m, 3, "got %zu:\n%s", m, r.out);
    cr_assert_eq(msgs[0].seq, 7);
    cr_assert_eq(msgs[1].seq, 9);
    cr_assert_eq(msgs[2].seq, 10);
    it_msgs_free(msgs, m);
    it_result_free(&r);
}

static void s_credit2(tern_frame_t *f) {
    f->credit = 2;
}

Test(protocol, credit_flow_control, .fini = it_teardown, .timeout = 30) {
    it_broker_t *b = it_start_broker("--ack-wait", "60s", "--max-inflight", "4", NULL);
    it_pub(b, "it.p.credit", "c{n}", 20);
    s_sess_t *s = s_sess_new(b, "credit");
    uint64_t sub = s_subscribe(s, "it.p.credit", "g", 3);
    s_deliver_t d;
    int got = 0;
    while (s_next(s, &d, 500)) {
        got++;
    }
    cr_assert_eq(got, 3, "credit 3 but %d delivered", got);
    s_send(s, TERN_CMD_CREDIT, sub, 0, s_credit2, NULL);
    got = 0;
    while (s_next(s, &d, 500)) {
        got++;
    }
    //  3 + 2 = 5 > max_inflight 4: capped.
    cr_assert_eq(got, 1, "after CREDIT 2 with max_inflight 4: %d more delivered", got);
    //  An ack frees a slot.
    s_send(s, TERN_CMD_ACK, sub, 1, NULL, NULL);
    got = 0;
    while (s_next(s, &d, 500)) {
        got++;
    }
    cr_assert_geq(got, 1, "an ACK freed no credit");
    cr_assert_leq(got, 1, "an ACK freed %d slots", got);
    s_sess_destroy(&s);

    //  credit 0 means max_inflight.
    s = s_sess_new(b, "credit0");
    s_subscribe(s, "it.p.credit", "g2", 0);
    got = 0;
    while (s_next(s, &d, 500)) {
        got++;
    }
    cr_assert_eq(got, 4, "credit 0 with --max-inflight 4: %d delivered", got);
    s_sess_destroy(&s);
}

static void s_delay600(tern_frame_t *f) {
    f->delay_ms = 600;
    f->fields |= TERN_F_DELAY;
}

Test(protocol, nack_delay_and_backoff_timing, .fini = it_teardown, .timeout = 30) {
    it_broker_t *b =
        it_start_broker("--ack-wait", "60s", "--backoff", "200ms", "--max-deliver", "10", NULL);
    it_pub(b, "it.p.nack", "n", 1);
    s_sess_t *s = s_sess_new(b, "nack");
    uint64_t sub = s_subscribe(s, "it.p.nack", "g", 0);
    s_deliver_t d1, d2, d3, d4;
    cr_assert(s_next(s, &d1, 3000));
    //  NACK with an explicit delay.
    int64_t t = it_now_ms();
    s_send(s, TERN_CMD_NACK, sub, d1.tag, s_delay600, NULL);
    cr_assert(s_next(s, &d2, 4000), "not redelivered after NACK delay 600ms");
    int64_t waited = d2.at_ms - t;
    cr_assert_eq(d2.delivery_count, 2);
    cr_assert_neq(d2.tag, d1.tag, "a redelivery needs a new tag");
    cr_assert_geq(waited, 550, "NACK delay 600 ms honoured after %lld ms", (long long)waited);
    cr_assert_lt(waited, 3000, "NACK delay 600 ms took %lld ms", (long long)waited);
    //  Without a delay: backoff 200 ms x 2^(n-1), n = delivery count (2 -> 400 ms).
    t = it_now_ms();
    s_send(s, TERN_CMD_NACK, sub, d2.tag, NULL, NULL);
    cr_assert(s_next(s, &d3, 4000));
    waited = d3.at_ms - t;
    cr_assert_eq(d3.delivery_count, 3);
    cr_assert_geq(waited, 350, "backoff after delivery 2: %lld ms, want ~400", (long long)waited);
    cr_assert_lt(waited, 3000, "backoff after delivery 2: %lld ms, want ~400", (long long)waited);
    //  n = 3 -> 800 ms.
    t = it_now_ms();
    s_send(s, TERN_CMD_NACK, sub, d3.tag, NULL, NULL);
    cr_assert(s_next(s, &d4, 4000));
    waited = d4.at_ms - t;
    cr_assert_eq(d4.delivery_count, 4);
    cr_assert_geq(waited, 750, "backoff after delivery 3: %lld ms, want ~800", (long long)waited);
    cr_assert_lt(waited, 3000, "backoff after delivery 3: %lld ms, want ~800", (long long)waited);
    s_send(s, TERN_CMD_ACK, sub, d4.tag, NULL, NULL);
    s_deliver_t extra;
    cr_assert_not(s_next(s, &extra, 1000), "delivered again after ACK (tag %llu)",
                  (unsigned long long)extra.tag);
    s_sess_destroy(&s);
}

Test(protocol, ack_wait_timing, .fini = it_teardown, .timeout = 30) {
    it_broker_t *b = it_start_broker("--ack-wait", "500ms", "--backoff", "1ms", NULL);
    it_pub(b, "it.p.wait", "w", 1);
    s_sess_t *s = s_sess_new(b, "wait");
    uint64_t sub = s_subscribe(s, "it.p.wait", "g", 0);
    s_deliver_t d1, d2;
    cr_assert(s_next(s, &d1, 3000));
    cr_assert(s_next(s, &d2, 4000), "not redelivered after ack wait 500 ms");
    int64_t waited = d2.at_ms - d1.at_ms;
    cr_assert_geq(waited, 450, "redelivered after %lld ms with --ack-wait 500ms",
                  (long long)waited);
    cr_assert_lt(waited, 3000, "redelivered after %lld ms with --ack-wait 500ms",
                 (long long)waited);
    cr_assert_eq(d2.delivery_count, 2);
    cr_assert_eq(d2.seq, d1.seq);
    s_send(s, TERN_CMD_ACK, sub, d2.tag, NULL, NULL);
    s_sess_destroy(&s);
}

static void s_reason(tern_frame_t *f) {
    snprintf(f->reason, sizeof f->reason, "bad-data: field x");
    f->fields |= TERN_F_REASON;
}

Test(protocol, term_with_reason, .fini = it_teardown, .timeout = 30) {
    it_broker_t *b = it_start_broker(NULL);
    it_pub(b, "it.p.term", "x", 1);
    s_sess_t *s = s_sess_new(b, "term");
    uint64_t sub = s_subscribe(s, "it.p.term", "g", 0);
    s_deliver_t d;
    cr_assert(s_next(s, &d, 3000));
    s_send(s, TERN_CMD_TERM, sub, d.tag, s_reason, NULL);
    it_sleep_ms(300);
    it_result_t r;
    it_ctl(&r, b, 10000, "dlq", "list", "it.p.term", "--group", "g", NULL);
    it_assert_ok(&r, "dlq list");
    char reason[300] = "";
    cr_assert(it_json_str(r.out, "reason", reason, sizeof reason), "dlq list:\n%s", r.out);
    cr_assert_str_eq(reason, "bad-data: field x");
    int64_t msg_id = 0;
    cr_assert(it_json_int(r.out, "msg_id", &msg_id));
    cr_assert_eq((uint64_t)msg_id, d.msg_id);
    it_result_free(&r);
    s_sess_destroy(&s);
}

Test(protocol, unsubscribe_returns_inflight_to_group, .fini = it_teardown, .timeout = 30) {
    it_broker_t *b = it_start_broker("--ack-wait", "60s", NULL);
    it_pub(b, "it.p.unsub", "u{n}", 5);
    s_sess_t *a = s_sess_new(b, "a");
    uint64_t sub = s_subscribe(a, "it.p.unsub", "g", 0);
    s_deliver_t d;
    int got = 0;
    while (got < 5 && s_next(a, &d, 2000)) {
        got++;
    }
    cr_assert_eq(got, 5);
    s_sess_t *c = s_sess_new(b, "c");
    s_subscribe(c, "it.p.unsub", "g", 0);
    cr_assert_not(s_next(c, &d, 300), "second consumer got seq %llu held by the first",
                  (unsigned long long)d.seq);
    tern_frame_t f;
    tern_frame_init(&f, TERN_CMD_UNSUBSCRIBE);
    f.req_id = 777;
    f.sub_id = sub;
    cr_assert_eq(it_raw_send_frame(a->raw, &f), TERN_OK);
    tern_frame_t reply;
    s_wait_reply(a, 777, &reply, "UNSUBSCRIBE");
    cr_assert_eq(reply.cmd, TERN_CMD_OK, "UNSUBSCRIBE: %s %u %s", tern_cmd_name(reply.cmd),
                 reply.code, reply.reason);
    got = 0;
    bool seen[6] = {false};
    while (got < 5 && s_next(c, &d, 2000)) {
        cr_assert(d.seq >= 1 && d.seq <= 5);
        cr_assert_not(seen[d.seq]);
        seen[d.seq] = true;
        cr_assert_eq(d.delivery_count, 2, "seq %llu delivery_count %u", (unsigned long long)d.seq,
                     d.delivery_count);
        got++;
    }
    cr_assert_eq(got, 5, "after UNSUBSCRIBE the other consumer got %d of 5", got);
    //  Nothing more reaches the unsubscribed one.
    it_pub(b, "it.p.unsub", "later", 1);
    cr_assert_not(s_next(a, &d, 500), "DELIVER after UNSUBSCRIBE");
    s_sess_destroy(&a);
    s_sess_destroy(&c);
}

Test(protocol, pubacks_are_batched, .fini = it_teardown, .timeout = 30) {
    it_broker_t *b = it_start_broker(NULL);
    s_sess_t *s = s_sess_new(b, "batch");
    enum { N = 200 };
    for (int i = 0; i < N; i++) {
        tern_frame_t f;
        tern_frame_init(&f, TERN_CMD_PUBLISH);
        f.req_id = 1000 + (uint64_t)i;
        snprintf(f.topic, sizeof f.topic, "it.p.batch");
        f.fields |= TERN_F_TOPIC | TERN_F_PAYLOAD;
        f.payload = (const uint8_t *)"x";
        f.payload_size = 1;
        cr_assert_eq(it_raw_send_frame(s->raw, &f), TERN_OK);
    }
    bool seen[N] = {false};
    int acked = 0;
    size_t frames = 0;
    uint64_t last_seq = 0;
    int64_t deadline = it_now_ms() + 10000;
    while (acked < N && it_now_ms() < deadline) {
        tern_frame_t f;
        if (it_raw_recv_reply(s->raw, &f, 2000) != TERN_OK) {
            break;
        }
        cr_assert_eq(f.cmd, TERN_CMD_PUBACK, "got %s (%u %s)", tern_cmd_name(f.cmd), f.code,
                     f.reason);
        frames++;
        for (uint32_t i = 0; i < f.ack_count; i++) {
            tern_puback_t a;
            cr_assert_eq(tern_frame_puback(&f, i, &a), TERN_OK);
            cr_assert(a.req_id >= 1000 && a.req_id < 1000 + N, "req_id %llu",
                      (unsigned long long)a.req_id);
            cr_assert_not(seen[a.req_id - 1000], "req %llu acked twice",
                          (unsigned long long)a.req_id);
            seen[a.req_id - 1000] = true;
            cr_assert_eq(a.code, 0);
            cr_assert_gt(a.seq, last_seq, "seqs not increasing in PUBACK order");
            last_seq = a.seq;
            acked++;
        }
    }
    cr_assert_eq(acked, N, "%d of %d PUBACK entries", acked, N);
    cr_log_info("%d publishes acknowledged in %zu PUBACK frames", N, frames);
    fprintf(stderr, "pubacks_are_batched: %d publishes acknowledged in %zu PUBACK frames\n", N,
            frames);
    cr_assert_lt(frames, (size_t)N, "no batching: one PUBACK frame per publish");
    s_sess_destroy(&s);
}
