/*  test_repl_in_dc.c - how the storer applies an in-DC follower batch
    (tern_repl_batch_queue with in_dc set) on a real LMDB store: a stream
    stops at its first failed record, so the leader's later records never
    land above a divergent one.

    The scenario is the one `cluster_fault::paused_leader` once lost
    acknowledged messages with: the paused leader n1 of a partition was
    deposed; on waking it sent its SYNC (last seq 25) while its own stale
    publishes (unacknowledged, seqs 26-29) were still at its storer; the new
    leader's catch-up (its acknowledged 26-32) came behind them: 26-29 failed
    (TERN_ESTATE) but 30-32 were appended, so n1 held 25 matching, 26-29
    divergent, 30-32 matching. Its next SYNC's anchors (32, 31, 30, 28, ...)
    matched at 32, nothing was truncated, and n1 rejoined the ISR with the
    wrong 26-29. */
#include "test_store_fixture.h"
#include "tern_work.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#define TOPIC "fault.4"
#define PT    2 //  the topic's partition, as crepl would decode it

TestSuite(repl_in_dc, .init = test_store_setup, .fini = test_store_teardown);

//  A record of the leader's stream STREAM: MSG_ID at SEQ (or, TRUNCATE,
//  keep up to SEQ).
static tern_repl_rec_t *s_rec(bool truncate, uint64_t seq, uint64_t msg_id, uint64_t stream) {
    tern_repl_rec_t *rec = tern_alloc(sizeof *rec);
    zmq_msg_init(&rec->hdr);
    zmq_msg_init(&rec->body);
    tern_frame_t *f = &rec->frame;
    tern_frame_init(f, truncate ? TERN_CMD_CREPL_TRUNCATE : TERN_CMD_CREPL_RECORD);
    strcpy(f->topic, TOPIC);
    strcpy(f->origin, "dc1");
    f->partition = PT;
    f->seq = seq;
    f->msg_id = msg_id;
    f->timestamp_ns = 1000 + seq;
    f->payload = (const uint8_t *)"x";
    f->payload_size = truncate ? 0 : 1;
    f->fields |= TERN_F_TOPIC | TERN_F_ORIGIN | (truncate ? 0 : TERN_F_PAYLOAD);
    rec->stream = stream;
    return rec;
}

static void s_add(tern_repl_batch_t *batch, tern_repl_rec_t *rec) {
    batch->recs = tern_realloc(batch->recs, (batch->count + 1) * sizeof *batch->recs);
    batch->recs[batch->count++] = rec;
}

//  Queues BATCH and MORE (NULL: none) in one commit, as the storer does
//  with one drain, commits, and tells STREAMS.
static void s_apply2(tern_store_t *store, tern_repl_batch_t *batch, tern_repl_batch_t *more,
                     tern_repl_streams_t *streams) {
    tern_store_batch_t *sb = tern_store_batch_new(store);
    tern_repl_batch_queue(batch, sb, streams);
    if (more) {
        tern_repl_batch_queue(more, sb, streams);
    }
    cr_assert_eq(tern_store_batch_commit(sb), TERN_OK);
    tern_store_batch_destroy(&sb);
    tern_repl_streams_done(streams, batch);
    if (more) {
        tern_repl_streams_done(streams, more);
    }
}

static void s_apply(tern_store_t *store, tern_repl_batch_t *batch, tern_repl_streams_t *streams) {
    s_apply2(store, batch, NULL, streams);
}

//  An empty in-DC batch, as crepl's follower side makes them.
static tern_repl_batch_t *s_batch(void) {
    tern_repl_batch_t *batch = tern_alloc(sizeof *batch);
    batch->in_dc = true;
    return batch;
}

//  The follower's own local publish (a deposed leader's stale commit).
static void s_local(tern_store_t *store, uint64_t msg_id) {
    tern_frame_t msg;
    tern_frame_init(&msg, TERN_CMD_PUBLISH);
    strcpy(msg.topic, TOPIC);
    msg.msg_id = msg_id;
    msg.payload = (const uint8_t *)"stale";
    msg.payload_size = 5;
    msg.fields |= TERN_F_TOPIC | TERN_F_PAYLOAD;
    tern_store_batch_t *sb = tern_store_batch_new(store);
    tern_append_result_t res;
    tern_store_batch_append(sb, &msg, true, &res);
    cr_assert_eq(tern_store_batch_commit(sb), TERN_OK);
    cr_assert_eq(res.err, TERN_OK);
    tern_store_batch_destroy(&sb);
}

//  msg_id at SEQ (0: none) and the topic's last seq.
static uint64_t s_id_at(tern_store_t *store, uint64_t seq, uint64_t *last_seq) {
    tern_store_reader_t *r = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(r), TERN_OK);
    tern_topic_info_t info;
    cr_assert_eq(tern_store_topic_get(r, TOPIC, &info), TERN_OK);
    *last_seq = info.last_seq;
    tern_frame_t msg;
    uint64_t id = tern_store_read(r, info.id, seq, &msg) == TERN_OK ? msg.msg_id : 0;
    tern_store_read_end(r);
    tern_store_reader_destroy(&r);
    return id;
}

//  A follower's store: the leader's 1..KEPT (msg_ids 101.., stream 1),
//  then its own stale publishes at the next STALE seqs (msg_ids 901..).
static tern_store_t *s_follower(tern_repl_streams_t *streams, uint64_t kept, uint64_t stale) {
    tern_store_config_t config = test_store_config();
    tern_store_t *store = test_store_open(&config);
    tern_repl_batch_t *batch = s_batch();
    for (uint64_t seq = 1; seq <= kept; seq++) {
        s_add(batch, s_rec(false, seq, 100 + seq, 1));
    }
    s_apply(store, batch, streams);
    for (size_t i = 0; i < batch->count; i++) {
        cr_assert_eq(batch->recs[i]->result.err, TERN_OK);
    }
    tern_repl_batch_destroy(&batch);
    for (uint64_t seq = kept + 1; seq <= kept + stale; seq++) {
        s_local(store, 900 + seq);
    }
    return store;
}

Test(repl_in_dc, a_stream_stops_at_its_first_failed_record) {
    tern_repl_stream_t pts[4] = {{0}};
    tern_repl_streams_t streams = {pts, 4};
    tern_store_t *store = s_follower(&streams, 2, 1); //  stale 3

    //  Stream 2's catch-up (its SYNC said last seq 2): 3 fails, 4 and 5
    //  must not land above our divergent 3, in this batch or the next one.
    tern_repl_batch_t *batch = s_batch();
    s_add(batch, s_rec(false, 3, 103, 2));
    s_add(batch, s_rec(false, 4, 104, 2));
    s_add(batch, s_rec(false, 5, 105, 2));
    s_apply(store, batch, &streams);
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(batch->recs[i]->result.err, TERN_ESTATE, "record %zu: %s", i,
                     tern_errname(batch->recs[i]->result.err));
    }
    tern_repl_batch_destroy(&batch);
    batch = s_batch();
    s_add(batch, s_rec(false, 6, 106, 2));
    s_apply(store, batch, &streams);
    cr_assert_eq(batch->recs[0]->result.err, TERN_ESTATE);
    tern_repl_batch_destroy(&batch);
    uint64_t last = 0;
    cr_assert_eq(s_id_at(store, 3, &last), 903);
    cr_assert_eq(last, 3, "the leader's records landed above the divergent seq 3 (last %lu)",
                 (unsigned long)last);

    //  Stream 3 (the next SYNC's anchors found 3 divergent): truncate to 2,
    //  then the catch-up applies.
    batch = s_batch();
    s_add(batch, s_rec(true, 2, 0, 3));
    for (uint64_t seq = 3; seq <= 6; seq++) {
        s_add(batch, s_rec(false, seq, 100 + seq, 3));
    }
    s_apply(store, batch, &streams);
    for (size_t i = 0; i < batch->count; i++) {
        cr_assert_eq(batch->recs[i]->result.err, TERN_OK, "record %zu: %s", i,
                     tern_errname(batch->recs[i]->result.err));
    }
    tern_repl_batch_destroy(&batch);
    cr_assert_eq(s_id_at(store, 3, &last), 103);
    cr_assert_eq(last, 6);
    tern_store_destroy(&store);
}

//  The same within one commit: the failing record and the stream's later
//  ones come in two batches of the storer's drain.
Test(repl_in_dc, a_stream_stops_within_one_commit) {
    tern_repl_stream_t pts[4] = {{0}};
    tern_repl_streams_t streams = {pts, 4};
    tern_store_t *store = s_follower(&streams, 1, 2); //  stale 2, 3
    tern_repl_batch_t *batch = s_batch();
    s_add(batch, s_rec(false, 2, 102, 2));
    tern_repl_batch_t *more = s_batch();
    s_add(more, s_rec(false, 3, 103, 2));
    s_add(more, s_rec(false, 4, 104, 2));
    s_apply2(store, batch, more, &streams);
    cr_assert_eq(batch->recs[0]->result.err, TERN_ESTATE);
    cr_assert_eq(more->recs[0]->result.err, TERN_ESTATE);
    cr_assert_eq(more->recs[1]->result.err, TERN_ESTATE, "seq 4 landed above the divergent 2-3");
    tern_repl_batch_destroy(&batch);
    tern_repl_batch_destroy(&more);
    uint64_t last = 0;
    cr_assert_eq(s_id_at(store, 2, &last), 902);
    cr_assert_eq(last, 3);
    tern_store_destroy(&store);
}

//  A CREPL_OUTBOX frame CODE of PT with PAYLOAD (a literal), RESET's SQ
//  (from) and POS (last).
static tern_repl_rec_t *s_outbox(uint32_t code, const char *payload, uint64_t sq, uint64_t pos) {
    tern_repl_rec_t *rec = s_rec(false, sq, 0, 1);
    tern_frame_t *f = &rec->frame;
    f->cmd = TERN_CMD_CREPL_OUTBOX;
    f->code = code;
    f->position = pos;
    f->payload = (const uint8_t *)payload;
    f->payload_size = strlen(payload);
    return rec;
}

static bool s_entry(const tern_outbox_entry_t *e, void *arg) {
    tern_outbox_entry_t *out = arg;
    out[out[0].partition++ + 1] = *e; //  out[0].partition counts
    return true;
}

//  The follower's side of the cross-DC outbox: a SYNC answer's RESET drops
//  a tail the leader lacks and writes the leader's entries; CONFIRMS
//  record what each peer confirmed; a malformed line fails the frame.
Test(repl_in_dc, outbox_reset_entries_and_confirms) {
    tern_store_config_t config = test_store_config();
    config.partitions = 8;
    tern_store_t *store = test_store_open(&config);
    tern_repl_batch_t *batch = s_batch();
    s_add(batch, s_rec(false, 1, 101, 1));
    batch->recs[0]->frame.outbox_pos = 7; //  our own entry at 7 (a tail to give back)
    s_add(batch, s_outbox(TERN_CREPL_OUTBOX_RESET, "5 0 1 101 0 9 g t" TOPIC "\n", 5, 6));
    s_add(batch, s_outbox(TERN_CREPL_OUTBOX_MORE, "6 1 1 0 19 9 gbilling t" TOPIC "\n", 0, 0));
    s_add(batch, s_outbox(TERN_CREPL_OUTBOX_CONFIRMS, "5 dc2\n4 dc3\n", 0, 0));
    s_add(batch, s_outbox(TERN_CREPL_OUTBOX_MORE, "6 1 x\n", 0, 0));
    s_apply(store, batch, NULL);
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(batch->recs[i]->result.err, TERN_OK, "rec %zu", i);
    }
    cr_assert_eq(batch->recs[4]->result.err, TERN_EMALFORMED);
    tern_repl_batch_destroy(&batch);

    tern_store_reader_t *r = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(r), TERN_OK);
    tern_outbox_entry_t got[8];
    memset(got, 0, sizeof got);
    cr_assert_eq(tern_store_outbox_read_pt(r, PT, 0, 10, s_entry, got), TERN_OK);
    cr_assert_eq(got[0].partition, 2, "entries 5 and 6; our 7 is gone");
    cr_assert_eq(got[1].position, 5);
    cr_assert_eq(got[1].msg_id, 101);
    cr_assert_neq(got[1].topic_id, 0);
    cr_assert_eq(got[2].position, 6);
    cr_assert(got[2].is_ackstate);
    cr_assert_eq(got[2].msg_id, 101, "read from the log at seq 1");
    cr_assert_str_eq(got[2].group, "billing");
    uint64_t pos = 0;
    cr_assert_eq(tern_store_outbox_last_pt(r, PT, &pos), TERN_OK);
    cr_assert_eq(pos, 6);
    cr_assert_eq(tern_store_outbox_confirmed_pt(r, "dc2", PT, &pos), TERN_OK);
    cr_assert_eq(pos, 5);
    cr_assert_eq(tern_store_outbox_confirmed_pt(r, "dc3", PT, &pos), TERN_OK);
    cr_assert_eq(pos, 4);
    tern_store_read_end(r);
    tern_store_reader_destroy(&r);
    tern_store_destroy(&store);
}
