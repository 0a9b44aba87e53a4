/*  test_store_repl.c - what replication needs from storage: remote appends
    idempotent by msg_id, the inbound cursor in the same commit, no outbox
    entry for remote records (loop prevention), dedup entries travelling with
    records, and the conflict rule (lowest msg_id wins, the other copy is
    superseded). */
#include "test_store_fixture.h"
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tern_store_t *s_open(void) {
    tern_store_config_t config = test_store_config();
    return test_store_open(&config);
}

static void s_msg(tern_frame_t *msg, uint64_t msg_id, const char *origin, const char *producer,
                  uint64_t pseq) {
    tern_frame_init(msg, TERN_CMD_REPL_RECORD);
    snprintf(msg->topic, sizeof msg->topic, "orders");
    snprintf(msg->origin, sizeof msg->origin, "%s", origin);
    snprintf(msg->producer, sizeof msg->producer, "%s", producer);
    msg->producer_seq = pseq;
    msg->msg_id = msg_id;
    msg->timestamp_ns = 1;
    msg->payload = (const uint8_t *)"data";
    msg->payload_size = 4;
    msg->fields |= TERN_F_PAYLOAD | TERN_F_ORIGIN | TERN_F_PRODUCER;
}

//  Appends one message; returns its result.
static tern_append_result_t s_append(tern_store_t *store, uint64_t msg_id, const char *origin,
                                     const char *producer, uint64_t pseq, bool local,
                                     const char *cursor_origin, uint64_t cursor) {
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_frame_t msg;
    s_msg(&msg, msg_id, origin, producer, pseq);
    tern_append_result_t res;
    tern_store_batch_append(batch, &msg, local, &res);
    if (cursor_origin) {
        tern_store_batch_inbound(batch, cursor_origin, cursor);
    }
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    tern_store_batch_destroy(&batch);
    return res;
}

static uint64_t s_u64(tern_store_t *store, int what, const char *name, uint64_t msg_id) {
    tern_store_reader_t *r = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(r), TERN_OK);
    uint64_t v = 0;
    uint32_t topic_id;
    tern_err_t rc = TERN_OK;
    if (what == 0) {
        rc = tern_store_inbound_get(r, name, &v);
    } else if (what == 1) {
        rc = tern_store_outbox_last(r, &v);
    } else if (what == 2) {
        rc = tern_store_find_msg(r, msg_id, &topic_id, &v);
        v = rc == TERN_OK ? v : 0;
        rc = TERN_OK;
    } else {
        tern_topic_info_t info;
        rc = tern_store_topic_get(r, name, &info);
        v = info.msgs;
    }
    cr_assert(rc == TERN_OK || rc == TERN_ENOTFOUND);
    tern_store_read_end(r);
    tern_store_reader_destroy(&r);
    return v;
}

TestSuite(store_repl, .init = test_store_setup, .fini = test_store_teardown);

//  Usage: a remote record and its origin's cursor commit together; a replay
//  is a duplicate; remote records never enter the outbox.
Test(store_repl, usage) {
    tern_store_t *store = s_open();
    tern_append_result_t res = s_append(store, 1000, "dc2", "p", 1, false, "dc2", 7);
    cr_assert_eq(res.err, TERN_OK);
    cr_assert_not(res.duplicate);
    cr_assert_eq(s_u64(store, 0, "dc2", 0), 7u);
    cr_assert_eq(s_u64(store, 1, NULL, 0), 0u, "a remote record entered the outbox");
    res = s_append(store, 1000, "dc2", "p", 1, false, "dc2", 7);
    cr_assert(res.duplicate);
    cr_assert_eq(res.msg_id, 1000u);
    cr_assert_eq(s_u64(store, 3, "orders", 0), 1u);
    //  A producer failing over and resending (p, 1) here: duplicate of dc2's.
    res = s_append(store, 2000, "dc1", "p", 1, true, NULL, 0);
    cr_assert(res.duplicate);
    cr_assert_eq(res.msg_id, 1000u);
    cr_assert_eq(s_u64(store, 1, NULL, 0), 0u);
    tern_store_stats_t stats;
    tern_store_stats(store, &stats);
    cr_assert_eq(stats.superseded, 0u);
    tern_store_destroy(&store);
}

//  Both DCs accepted (p, 5) during a partition: the lower msg_id wins.
Test(store_repl, conflict_lowest_msg_id_wins) {
    tern_store_t *store = s_open();
    //  Here (dc1) the local copy has id 500.
    tern_append_result_t res = s_append(store, 500, "dc1", "p", 5, true, NULL, 0);
    cr_assert_eq(res.err, TERN_OK);
    //  dc2's copy with a higher id loses: reported duplicate, not stored.
    res = s_append(store, 900, "dc2", "p", 5, false, "dc2", 1);
    cr_assert(res.duplicate);
    cr_assert_eq(res.msg_id, 500u);
    cr_assert_eq(s_u64(store, 2, NULL, 900), 0u);
    cr_assert_eq(s_u64(store, 0, "dc2", 0), 1u);
    //  dc3's copy with a lower id wins: stored, ours is superseded.
    res = s_append(store, 300, "dc3", "p", 5, false, "dc3", 4);
    cr_assert_eq(res.err, TERN_OK);
    cr_assert_not(res.duplicate);
    cr_assert_eq(s_u64(store, 2, NULL, 500), 0u, "the superseded copy is still readable");
    cr_assert_neq(s_u64(store, 2, NULL, 300), 0u);
    cr_assert_eq(s_u64(store, 3, "orders", 0), 1u);
    tern_store_stats_t stats;
    tern_store_stats(store, &stats);
    cr_assert_eq(stats.superseded, 1u);
    //  From now on (p, 5) names 300, for local retries and for replays.
    res = s_append(store, 0, "dc1", "p", 5, true, NULL, 0);
    cr_assert(res.duplicate);
    cr_assert_eq(res.msg_id, 300u);
    res = s_append(store, 500, "dc1", "p", 5, false, NULL, 0);
    cr_assert(res.duplicate);
    cr_assert_eq(res.msg_id, 300u);
    cr_assert_eq(s_u64(store, 3, "orders", 0), 1u);
    tern_store_destroy(&store);
}

static tern_group_info_t s_group(tern_store_t *store, const char *group) {
    tern_store_reader_t *r = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(r), TERN_OK);
    tern_topic_info_t topic;
    cr_assert_eq(tern_store_topic_get(r, "orders", &topic), TERN_OK);
    tern_group_info_t info;
    memset(&info, 0, sizeof info);
    cr_assert_eq(tern_store_group_get(r, topic.id, group, &info), TERN_OK);
    tern_store_read_end(r);
    tern_store_reader_destroy(&r);
    return info;
}

static void s_ackstate(tern_store_t *store, uint64_t msg_id, uint32_t op) {
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_store_batch_ackstate_apply(batch, "g", msg_id, op, op == TERN_CMD_TERM ? "bad" : NULL,
                                    NULL);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    tern_store_batch_destroy(&batch);
}

//  Ack state by msg_id: a consumer that moves here resumes where it left.
Test(store_repl, ackstate_by_msg_id) {
    tern_store_t *store = s_open();
    for (uint64_t i = 0; i < 5; i++) {
        s_append(store, 10 + i, "dc2", "p", 1 + i, false, "dc2", 1 + i); //  seqs 1..5
    }
    //  Acked in dc2 out of order: 12 first. The group appears here; 10 and 11
    //  stay deliverable (pending, due now); 12 is done.
    s_ackstate(store, 12, TERN_CMD_ACK);
    tern_group_info_t g = s_group(store, "g");
    cr_assert_eq(g.pending, 2u);
    cr_assert_eq(g.lane_next[TERN_PRIORITY_DEFAULT], 4u);
    cr_assert_eq(g.next_unacked, 1u);
    s_ackstate(store, 10, TERN_CMD_ACK);
    s_ackstate(store, 11, TERN_CMD_ACK);
    s_ackstate(store, 11, TERN_CMD_ACK); //  replayed: no change
    g = s_group(store, "g");
    cr_assert_eq(g.pending, 0u);
    cr_assert_eq(g.next_unacked, 4u);
    s_ackstate(store, 13, TERN_CMD_TERM);
    g = s_group(store, "g");
    cr_assert_eq(g.dead, 1u);
    cr_assert_eq(g.next_unacked, 5u);
    s_ackstate(store, 99, TERN_CMD_ACK); //  unknown here: ignored
    g = s_group(store, "g");
    cr_assert_eq(g.next_unacked, 5u);
    cr_assert_eq(s_u64(store, 1, NULL, 0), 0u, "applied ack state entered the outbox");
    tern_store_destroy(&store);
}

//  The in-DC copy of a peer's ack-state change: the leader's result names
//  the seq it changed; a follower running the CREPL_GROUP op of it (ack /
//  dead, aux TERN_GOP_AUX_PEER) by seq ends in the leader's state. Group "f"
//  plays the follower's copy of the leader's "g" in the same store.
Test(store_repl, ackstate_result_and_in_dc_copy) {
    tern_store_t *store = s_open();
    for (uint64_t i = 0; i < 5; i++) {
        s_append(store, 10 + i, "dc2", "p", 1 + i, false, "dc2", 1 + i); //  seqs 1..5
    }
    const uint64_t ids[] = {12, 10, 12, 14, 99};
    const uint32_t ops[] = {TERN_CMD_ACK, TERN_CMD_ACK, TERN_CMD_ACK, TERN_CMD_TERM, TERN_CMD_ACK};
    const uint64_t changed[] = {3, 1, 0, 5, 0}; //  a replay and an unknown msg_id change nothing
    for (size_t i = 0; i < 5; i++) {
        tern_append_result_t res;
        memset(&res, 0xff, sizeof res);
        tern_store_batch_t *batch = tern_store_batch_new(store);
        tern_store_batch_ackstate_apply(batch, "g", ids[i], ops[i], "from dc2", &res);
        cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
        tern_store_batch_destroy(&batch);
        cr_assert_eq(res.err, TERN_OK);
        cr_assert_eq(res.seq, changed[i], "msg_id %" PRIu64, ids[i]);
        if (res.seq == 0) {
            continue;
        }
        cr_assert_eq(res.msg_id, ids[i]);
        tern_gop_t gop;
        memset(&gop, 0, sizeof gop);
        gop.type = ops[i] == TERN_CMD_TERM ? TERN_GOP_DEAD : TERN_GOP_ACK;
        gop.aux = TERN_GOP_AUX_PEER;
        gop.seq = res.seq;
        snprintf(gop.group, sizeof gop.group, "f");
        snprintf(gop.reason, sizeof gop.reason, "from dc2");
        uint64_t skipped = 0;
        batch = tern_store_batch_new(store);
        tern_store_batch_group_apply(batch, "orders", &gop, &skipped);
        cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
        tern_store_batch_destroy(&batch);
        cr_assert_eq(skipped, 0u);
    }
    tern_group_info_t g = s_group(store, "g"), f = s_group(store, "f");
    cr_assert_eq(g.next_unacked, 2u);
    cr_assert_eq(g.pending, 2u, "seqs 2 and 4 stay deliverable");
    cr_assert_eq(f.next_unacked, g.next_unacked);
    cr_assert_eq(f.pending, g.pending);
    cr_assert_eq(f.acked, g.acked);
    cr_assert_eq(f.dead, g.dead);
    cr_assert_eq(f.lane_next[TERN_PRIORITY_DEFAULT], g.lane_next[TERN_PRIORITY_DEFAULT]);
    tern_store_destroy(&store);
}

typedef struct {
    tern_trace_event_t ev[32]; //  events in scan order
    size_t count;              //  used
} s_events_t;

static bool s_event_each(const tern_trace_event_t *ev, void *arg) {
    s_events_t *e = arg;
    cr_assert_lt(e->count, 32u);
    e->ev[e->count++] = *ev;
    return true;
}

//  The history of seq SEQ of "orders".
static s_events_t s_history(tern_store_t *store, uint64_t seq) {
    s_events_t e = {.count = 0};
    tern_store_reader_t *r = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(r), TERN_OK);
    tern_topic_info_t topic;
    cr_assert_eq(tern_store_topic_get(r, "orders", &topic), TERN_OK);
    cr_assert_eq(tern_store_trace_scan(r, topic.id, seq, seq, s_event_each, &e), TERN_OK);
    tern_store_read_end(r);
    tern_store_reader_destroy(&r);
    return e;
}

//  A peer's ack is an ACKED event (detail: where), its TERM a DEAD event, and
//  neither is a delivery here; an ack of a message dead here (replayed and
//  acked in the peer) takes it out of the DLQ.
Test(store_repl, ackstate_history_and_counters) {
    tern_store_t *store = s_open();
    for (uint64_t i = 0; i < 3; i++) {
        s_append(store, 10 + i, "dc2", "p", 1 + i, false, "dc2", 1 + i); //  seqs 1..3
    }
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_store_batch_ackstate_apply(batch, "g", 11, TERN_CMD_ACK, "acked in dc3", NULL);
    tern_store_batch_ackstate_apply(batch, "g", 12, TERN_CMD_TERM, "dead in dc3", NULL);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    tern_group_info_t g = s_group(store, "g");
    cr_assert_eq(g.acked, 1u);
    cr_assert_eq(g.dead, 1u);
    cr_assert_eq(g.pending, 1u, "seq 1 stays deliverable");
    cr_assert_eq(g.delivered, 0u, "a peer's ack is no delivery here");
    cr_assert_eq(g.redelivered, 0u);

    s_events_t e = s_history(store, 2);
    cr_assert_eq(e.count, 2u);
    cr_assert_eq(e.ev[0].type, TERN_TRACE_STORED);
    cr_assert_eq(e.ev[0].msg_id, 11u);
    cr_assert_str_eq(e.ev[0].group, "dc2", "STORED names the origin");
    cr_assert_eq(e.ev[1].type, TERN_TRACE_ACKED);
    cr_assert_str_eq(e.ev[1].group, "g");
    cr_assert_str_eq(e.ev[1].detail, "acked in dc3");
    e = s_history(store, 3);
    cr_assert_eq(e.count, 2u);
    cr_assert_eq(e.ev[1].type, TERN_TRACE_DEAD);
    cr_assert_str_eq(e.ev[1].detail, "dead in dc3");
    e = s_history(store, 1);
    cr_assert_eq(e.count, 1u, "seq 1 was not delivered: only STORED");

    //  dc3 replayed seq 3 and acked it: the ack takes it out of the DLQ here.
    s_ackstate(store, 12, TERN_CMD_TERM); //  dead already: no change
    g = s_group(store, "g");
    cr_assert_eq(g.dead, 1u);
    s_ackstate(store, 12, TERN_CMD_ACK);
    g = s_group(store, "g");
    cr_assert_eq(g.dead, 0u);
    cr_assert_eq(g.acked, 2u);
    cr_assert_eq(g.pending, 1u);
    e = s_history(store, 3);
    cr_assert_eq(e.count, 3u);
    cr_assert_eq(e.ev[2].type, TERN_TRACE_ACKED);
    s_ackstate(store, 12, TERN_CMD_ACK); //  replayed: no change
    g = s_group(store, "g");
    cr_assert_eq(g.acked, 2u);
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
}
