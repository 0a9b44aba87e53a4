/*  test_store_replica_hole.c - the in-DC follower's hole guard: a record of
    the leader's live stream (tern_store_batch_append_replica_next) must
    follow the topic's last record, while a catch-up (a snapshot of the
    leader's log, tern_store_batch_append_replica) may start past it, and
    tern_store_batch_end_at moves the end of a copy to where the leader's
    log ends, so that its live stream follows on. Real LMDB stores in the
    test's directory. */
#include "test_store_fixture.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#define TOPIC "orders.eu"

static tern_store_t *s_open(void) {
    static char dir[TEST_DIR_MAX + 16];
    snprintf(dir, sizeof dir, "%s/f", test_store_dir);
    tern_store_config_t config = test_store_config();
    config.dir = dir;
    return test_store_open(&config);
}

//  The leader's record SEQ of TOPIC (msg_id from both: the topics of a test
//  start with distinct letters).
static void s_msg(tern_frame_t *msg, const char *topic, uint64_t seq) {
    tern_frame_init(msg, TERN_CMD_CREPL_RECORD);
    snprintf(msg->topic, sizeof msg->topic, "%s", topic);
    strcpy(msg->origin, "dc1");
    msg->seq = seq;
    msg->msg_id = seq * 1000 + (uint8_t)topic[0];
    msg->timestamp_ns = 1000 + seq;
    msg->payload = (const uint8_t *)"x";
    msg->payload_size = 1;
    msg->fields |= TERN_F_TOPIC | TERN_F_ORIGIN | TERN_F_PAYLOAD;
}

//  One append of record SEQ of TOPIC, live (the guard) or not, committed.
static tern_append_result_t s_append(tern_store_t *store, const char *topic, uint64_t seq,
                                     bool live) {
    tern_frame_t msg;
    s_msg(&msg, topic, seq);
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_append_result_t res;
    if (live) {
        tern_store_batch_append_replica_next(batch, &msg, &res);
    } else {
        tern_store_batch_append_replica(batch, &msg, &res);
    }
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    tern_store_batch_destroy(&batch);
    return res;
}

static uint64_t s_end_at(tern_store_t *store, const char *topic, uint64_t last) {
    return test_store_truncate(store, topic, last, true);
}

//  TOPIC's record; false if the store has no such topic.
static bool s_topic(tern_store_t *store, const char *topic, tern_topic_info_t *info) {
    tern_store_reader_t *r = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(r), TERN_OK);
    tern_err_t rc = tern_store_topic_get(r, topic, info);
    tern_store_reader_destroy(&r);
    return rc == TERN_OK;
}

//  Asserts TOPIC's last_seq and message count.
static void s_expect(tern_store_t *store, const char *topic, uint64_t last_seq, uint64_t msgs) {
    tern_topic_info_t info;
    cr_assert(s_topic(store, topic, &info), "%s missing", topic);
    cr_assert_eq(info.last_seq, last_seq, "%s: last_seq %lu, expected %lu", topic,
                 (unsigned long)info.last_seq, (unsigned long)last_seq);
    cr_assert_eq(info.msgs, msgs, "%s: %lu messages, expected %lu", topic, (unsigned long)info.msgs,
                 (unsigned long)msgs);
}

static bool s_has(tern_store_t *store, uint64_t seq) {
    tern_topic_info_t info;
    cr_assert(s_topic(store, TOPIC, &info));
    tern_store_reader_t *r = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(r), TERN_OK);
    tern_frame_t out;
    tern_err_t rc = tern_store_read(r, info.id, seq, &out);
    tern_store_reader_destroy(&r);
    return rc == TERN_OK;
}

TestSuite(store_replica_hole, .init = test_store_setup, .fini = test_store_teardown);

//  Usage: live records follow one another; one past a lost record is
//  refused and nothing of it is stored; the catch-up that follows (the
//  leader's snapshot) fills the hole, and the live stream goes on.
Test(store_replica_hole, usage) {
    tern_store_t *store = s_open();
    cr_assert_eq(s_append(store, TOPIC, 1, true).err, TERN_OK);
    cr_assert_eq(s_append(store, TOPIC, 2, true).err, TERN_OK);
    tern_append_result_t res = s_append(store, TOPIC, 4, true); //  3 was lost on the way
    cr_assert_eq(res.err, TERN_ESTATE, "%s", tern_errname(res.err));
    cr_assert_eq(res.seq, 4);
    cr_assert_not(res.duplicate);
    s_expect(store, TOPIC, 2, 2); //  the hole is not held
    cr_assert_not(s_has(store, 4));
    //  The re-sync's catch-up, then the live stream again.
    cr_assert_eq(s_append(store, TOPIC, 3, false).err, TERN_OK);
    cr_assert_eq(s_append(store, TOPIC, 4, false).err, TERN_OK);
    cr_assert_eq(s_append(store, TOPIC, 5, true).err, TERN_OK);
    s_expect(store, TOPIC, 5, 5);
    tern_store_destroy(&store);
}

//  What the guard leaves alone: a live record already held (duplicate, or
//  divergence), a live record starting a topic here at 1, and a topic not
//  here yet whose live stream starts past 1 (refused: its catch-up lacked
//  it), which is not created by the refusal's record.
Test(store_replica_hole, held_records_and_new_topics) {
    tern_store_t *store = s_open();
    cr_assert_eq(s_append(store, TOPIC, 1, true).err, TERN_OK);
    tern_append_result_t res = s_append(store, TOPIC, 1, true);
    cr_assert_eq(res.err, TERN_OK);
    cr_assert(res.duplicate);
    tern_frame_t other;
    s_msg(&other, TOPIC, 1);
    other.msg_id = 77;
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_store_batch_append_replica_next(batch, &other, &res);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    tern_store_batch_destroy(&batch);
    cr_assert_eq(res.err, TERN_ESTATE); //  diverged: truncated first, as before
    cr_assert_eq(s_append(store, "new.topic", 1, true).err, TERN_OK);
    cr_assert_eq(s_append(store, "late.topic", 3, true).err, TERN_ESTATE);
    tern_topic_info_t info;
    cr_assert_not(s_topic(store, "late.topic", &info), "a refused live record created its topic");
    tern_store_destroy(&store);
}

//  A catch-up (not live) keeps the leader's gaps: TTL or retention removed
//  records there, or its log start moved past our end.
Test(store_replica_hole, catch_up_starts_past_our_end) {
    tern_store_t *store = s_open();
    cr_assert_eq(s_append(store, TOPIC, 1, true).err, TERN_OK);
    cr_assert_eq(s_append(store, TOPIC, 7, false).err, TERN_OK);
    cr_assert_eq(s_append(store, TOPIC, 9, false).err, TERN_OK);
    cr_assert_eq(s_append(store, TOPIC, 10, true).err, TERN_OK);
    cr_assert_eq(s_append(store, "fresh.topic", 40, false).err, TERN_OK); //  unknown here
    cr_assert_eq(s_append(store, "fresh.topic", 41, true).err, TERN_OK);
    s_expect(store, TOPIC, 10, 4);
    s_expect(store, "fresh.topic", 41, 2);
    tern_store_destroy(&store);
}

//  end_at: the leader's last records are gone there (TTL at the tail, a
//  topic emptied by retention or purge), so the catch-up carries none of
//  them; the copy's end is raised to the leader's last seq and the live
//  stream follows. It lowers as tern_store_batch_truncate does, and leaves
//  a missing topic missing.
Test(store_replica_hole, end_at_raises_and_lowers) {
    tern_store_t *store = s_open();
    for (uint64_t seq = 1; seq <= 3; seq++) {
        cr_assert_eq(s_append(store, TOPIC, seq, true).err, TERN_OK);
    }
    cr_assert_eq(s_append(store, TOPIC, 6, true).err, TERN_ESTATE); //  the leader's 4, 5 expired
    cr_assert_eq(s_end_at(store, TOPIC, 5), 0);
    s_expect(store, TOPIC, 5, 3);
    tern_topic_info_t info;
    cr_assert_eq(s_append(store, TOPIC, 6, true).err, TERN_OK);
    //  Lowering: as a truncation.
    cr_assert_eq(s_end_at(store, TOPIC, 2), 2);
    s_expect(store, TOPIC, 2, 2);
    //  An empty copy: first_seq follows the end.
    cr_assert_eq(s_end_at(store, TOPIC, 0), 2);
    cr_assert_eq(s_end_at(store, TOPIC, 20), 0);
    cr_assert(s_topic(store, TOPIC, &info));
    cr_assert_eq(info.last_seq, 20);
    cr_assert_eq(info.first_seq, 21);
    cr_assert_eq(info.msgs, 0);
    cr_assert_eq(s_append(store, TOPIC, 21, true).err, TERN_OK);
    cr_assert(s_topic(store, TOPIC, &info));
    cr_assert_eq(info.first_seq, 21);
    cr_assert_eq(info.msgs, 1);
    //  Missing topic: nothing made up.
    cr_assert_eq(s_end_at(store, "no.such.topic", 9), 0);
    cr_assert_not(s_topic(store, "no.such.topic", &info));
    //  tern_store_batch_truncate itself never raises.
    cr_assert_eq(test_store_truncate(store, TOPIC, 50, false), 0);
    s_expect(store, TOPIC, 21, 1);
    tern_store_destroy(&store);
}

//  Survives a reopen: the raised end is in the topic record.
Test(store_replica_hole, raised_end_is_durable) {
    tern_store_t *store = s_open();
    cr_assert_eq(s_append(store, TOPIC, 1, true).err, TERN_OK);
    cr_assert_eq(s_end_at(store, TOPIC, 8), 0);
    tern_store_destroy(&store);
    store = s_open();
    cr_assert_eq(s_append(store, TOPIC, 10, true).err, TERN_ESTATE);
    cr_assert_eq(s_append(store, TOPIC, 9, true).err, TERN_OK);
    tern_store_destroy(&store);
}
