/*  test_store_fold.c - unit tests of a delivery folded with its ack: a
    DELIVER and the ACK of the same (group, seq) committed in one batch
    write no pending entry, yet count and record both steps exactly as two
    commits would.

    Fresh temporary directory per test, small map.
*/
#include "test_store_fixture.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

TestSuite(store_fold, .init = test_store_setup, .fini = test_store_teardown, .timeout = 60);

typedef struct {
    tern_store_t *store;       //  the store under test
    tern_store_batch_t *batch; //  its writer
    uint32_t topic_id;         //  topic "t"
    uint64_t seqs[4];          //  its messages
} s_fix_t;

//  Opens the store of the test's directory, with history kept.
static void s_reopen(s_fix_t *fix) {
    tern_store_config_t config = test_store_config();
    config.trace_retention_ms = 24ull * 3600 * 1000;
    fix->store = test_store_open(&config);
    fix->batch = tern_store_batch_new(fix->store);
}

static void s_open(s_fix_t *fix) {
    s_reopen(fix);
    static tern_frame_t msgs[4]; //  borrowed by the batch until its commit
    tern_append_result_t res[4];
    for (int i = 0; i < 4; i++) {
        memset(&msgs[i], 0, sizeof msgs[i]);
        snprintf(msgs[i].topic, sizeof msgs[i].topic, "t");
        msgs[i].payload = (const uint8_t *)"x";
        msgs[i].payload_size = 1;
        msgs[i].msg_id = 100 + (uint64_t)i;
        msgs[i].priority = 4; //  the lane the deliveries below name
        tern_store_batch_append(fix->batch, &msgs[i], true, &res[i]);
    }
    cr_assert_eq(tern_store_batch_commit(fix->batch), TERN_OK);
    fix->topic_id = res[0].topic_id;
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(res[i].err, TERN_OK);
        fix->seqs[i] = res[i].seq;
    }
    tern_err_t err = TERN_EINTERNAL;
    tern_store_batch_group_open(fix->batch, fix->topic_id, "g", TERN_START_FIRST, 0, &err, NULL);
    cr_assert_eq(tern_store_batch_commit(fix->batch), TERN_OK);
    cr_assert_eq(err, TERN_OK);
}

static void s_close(s_fix_t *fix) {
    tern_store_batch_destroy(&fix->batch);
    tern_store_destroy(&fix->store);
}

static void s_deliver(s_fix_t *fix, uint64_t seq, uint32_t count) {
    tern_store_batch_deliver(fix->batch, fix->topic_id, "g", seq,
                             &(tern_delivery_t){4, count, 0, "worker-1"});
}

static void s_ack(s_fix_t *fix, uint64_t seq) {
    tern_store_batch_ack(fix->batch, fix->topic_id, "g", seq, TERN_TRACE_ACKED);
}

static uint64_t s_folded(s_fix_t *fix) {
    tern_store_stats_t stats;
    tern_store_stats(fix->store, &stats);
    return stats.folded;
}

static bool s_count_entry(const tern_entry_t *entry, void *arg) {
    (void)entry;
    (*(size_t *)arg)++;
    return true;
}

//  Group "g" into *INFO; returns how many pending entries it has on disk.
static size_t s_group(s_fix_t *fix, tern_group_info_t *info) {
    tern_store_reader_t *reader = tern_store_reader_new(fix->store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    cr_assert_eq(tern_store_group_get(reader, fix->topic_id, "g", info), TERN_OK);
    size_t entries = 0;
    cr_assert_eq(tern_store_pending_list(reader, fix->topic_id, "g", s_count_entry, &entries),
                 TERN_OK);
    tern_store_read_end(reader);
    tern_store_reader_destroy(&reader);
    return entries;
}

//  Group "g" has ENTRIES pending entries on disk and these counters.
static void s_expect(s_fix_t *fix, size_t entries, uint64_t delivered, uint64_t redelivered,
                     uint64_t acked) {
    tern_group_info_t info;
    cr_expect_eq(s_group(fix, &info), entries);
    cr_expect_eq(info.pending, entries);
    cr_expect_eq(info.delivered, delivered);
    cr_expect_eq(info.redelivered, redelivered);
    cr_expect_eq(info.acked, acked);
}

static void s_history(s_fix_t *fix, uint64_t seq, test_store_events_t *out) {
    test_store_trace_scan(fix->store, fix->topic_id, seq, seq, out);
}

//  Usage: a delivery acked before its commit folds: counted delivered and
//  acked, nothing pending, both history events kept in order.
Test(store_fold, deliver_and_ack_in_one_batch) {
    s_fix_t fix;
    s_open(&fix);
    s_deliver(&fix, fix.seqs[0], 1);
    s_ack(&fix, fix.seqs[0]);
    cr_assert_eq(tern_store_batch_commit(fix.batch), TERN_OK);
    cr_expect_eq(s_folded(&fix), 1);

    tern_group_info_t info;
    cr_expect_eq(s_group(&fix, &info), 0);
    cr_expect_eq(info.pending, 0);
    cr_expect_eq(info.delivered, 1);
    cr_expect_eq(info.acked, 1);
    cr_expect_eq(info.redelivered, 0);
    cr_expect_eq(info.lane_next[4], fix.seqs[0] + 1);
    cr_expect_eq(info.next_unacked, fix.seqs[1]);

    test_store_events_t list;
    s_history(&fix, fix.seqs[0], &list);
    cr_assert_eq(list.count, 3);
    cr_expect_eq(list.events[0].type, TERN_TRACE_STORED);
    cr_expect_eq(list.events[1].type, TERN_TRACE_DELIVERED);
    cr_expect_str_eq(list.events[1].group, "g");
    cr_expect_str_eq(list.events[1].detail, "worker-1");
    cr_expect_eq(list.events[1].delivery_count, 1);
    cr_expect_eq(list.events[2].type, TERN_TRACE_ACKED);
    cr_expect_str_eq(list.events[2].group, "g");
    cr_expect_eq(list.events[2].delivery_count, 0);
    cr_expect_str_eq(list.events[2].detail, "");
    cr_expect_eq(list.events[2].at_ns, list.events[1].at_ns); //  one commit

    //  An ack for an expired message keeps its event too.
    s_deliver(&fix, fix.seqs[1], 1);
    tern_store_batch_ack(fix.batch, fix.topic_id, "g", fix.seqs[1], TERN_TRACE_EXPIRED);
    cr_assert_eq(tern_store_batch_commit(fix.batch), TERN_OK);
    s_history(&fix, fix.seqs[1], &list);
    cr_assert_eq(list.count, 3);
    cr_expect_eq(list.events[1].type, TERN_TRACE_DELIVERED);
    cr_expect_eq(list.events[2].type, TERN_TRACE_EXPIRED);
    s_close(&fix);
}

//  A redelivery of an entry an earlier commit left pending, acked in the
//  same batch: the entry goes, the counters are those of two commits.
Test(store_fold, redelivery_removes_the_earlier_entry) {
    s_fix_t fix;
    s_open(&fix);
    s_deliver(&fix, fix.seqs[1], 1);
    cr_assert_eq(tern_store_batch_commit(fix.batch), TERN_OK);
    tern_group_info_t info;
    cr_assert_eq(s_group(&fix, &info), 1);
    cr_assert_eq(info.pending, 1);

    s_deliver(&fix, fix.seqs[1], 2);
    s_ack(&fix, fix.seqs[1]);
    cr_assert_eq(tern_store_batch_commit(fix.batch), TERN_OK);
    cr_expect_eq(s_folded(&fix), 1);
    s_expect(&fix, 0, 2, 1, 1);
    s_close(&fix);
}

//  Ops that touch the entry between the two keep them apart: a nack (the
//  ack then settles the nacked entry), a seek (the ack finds nothing, as
//  it would in its own commit), two deliveries (the later one folds).
Test(store_fold, only_adjacent_steps_fold) {
    s_fix_t fix;
    s_open(&fix);
    s_deliver(&fix, fix.seqs[0], 1);
    tern_store_batch_nack(fix.batch, fix.topic_id, "g", fix.seqs[0], 0, TERN_TRACE_NACKED);
    s_ack(&fix, fix.seqs[0]);
    s_deliver(&fix, fix.seqs[1], 1);
    s_deliver(&fix, fix.seqs[1], 2);
    s_ack(&fix, fix.seqs[1]);
    s_ack(&fix, fix.seqs[1]); //  a second ack finds nothing
    cr_assert_eq(tern_store_batch_commit(fix.batch), TERN_OK);
    cr_expect_eq(s_folded(&fix), 1);
    s_expect(&fix, 0, 3, 1, 2);

    s_deliver(&fix, fix.seqs[2], 1);
    tern_err_t err = TERN_EINTERNAL;
    tern_store_batch_group_seek(fix.batch, fix.topic_id, "g", TERN_START_SEQ, fix.seqs[2], &err,
                                NULL);
    s_ack(&fix, fix.seqs[2]);
    cr_assert_eq(tern_store_batch_commit(fix.batch), TERN_OK);
    cr_expect_eq(err, TERN_OK);
    cr_expect_eq(s_folded(&fix), 1);
    s_expect(&fix, 0, 4, 1, 2); //  the seek dropped the entry: the ack found none
    tern_group_info_t info;
    s_group(&fix, &info);
    cr_expect_eq(info.nacked, 1);
    cr_expect_eq(info.lane_next[4], fix.seqs[2]);
    s_close(&fix);
}

//  A crash between batches: a batch never committed (a deliver and its
//  ack) leaves nothing; the committed delivery before it stays pending, so
//  the message is delivered again (at least once).
Test(store_fold, crash_loses_the_batch_whole) {
    s_fix_t fix;
    s_open(&fix);
    s_deliver(&fix, fix.seqs[0], 1);
    cr_assert_eq(tern_store_batch_commit(fix.batch), TERN_OK);
    s_ack(&fix, fix.seqs[0]);
    s_deliver(&fix, fix.seqs[3], 1);
    s_ack(&fix, fix.seqs[3]);
    s_close(&fix); //  the second batch is dropped unapplied, as by a crash

    s_reopen(&fix);
    s_expect(&fix, 1, 1, 0, 0);
    tern_group_info_t info;
    s_group(&fix, &info);
    cr_expect_eq(info.next_unacked, fix.seqs[0]);
    test_store_events_t list;
    s_history(&fix, fix.seqs[3], &list);
    cr_expect_eq(list.count, 1); //  STORED only
    s_close(&fix);
}
