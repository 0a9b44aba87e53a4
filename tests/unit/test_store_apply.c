/*  test_store_apply.c - the two halves of a commit (tern_store_batch_apply,
    then tern_store_batch_commit) that let a cluster leader ship a batch's
    records before its own commit (broker/tern_storer.c): the results are
    final after apply, nothing is visible to a reader before the commit, and
    a batch destroyed after apply keeps nothing. Real LMDB stores in the
    test's directory. */
#include "test_store_fixture.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#define TOPIC "orders.eu"

static tern_store_t *s_open(void) {
    tern_store_config_t config = test_store_config();
    return test_store_open(&config);
}

//  A publish as the storer fills it: MSG_ID, producer "p" at PSEQ.
static void s_msg(tern_frame_t *msg, uint64_t msg_id, uint64_t pseq) {
    tern_frame_init(msg, TERN_CMD_PUBLISH);
    strcpy(msg->topic, TOPIC);
    strcpy(msg->origin, "dc1");
    strcpy(msg->producer, "p");
    msg->producer_seq = pseq;
    msg->msg_id = msg_id;
    msg->timestamp_ns = 1000 + msg_id;
    msg->payload = (const uint8_t *)"hello";
    msg->payload_size = 5;
    msg->fields |= TERN_F_TOPIC | TERN_F_ORIGIN | TERN_F_PAYLOAD | TERN_F_PRODUCER;
}

//  TOPIC's last_seq as a reader on its own transaction sees it (0: no topic).
static uint64_t s_last_seq(tern_store_t *store) {
    tern_store_reader_t *r = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(r), TERN_OK);
    tern_topic_info_t info;
    uint64_t last = tern_store_topic_get(r, TOPIC, &info) == TERN_OK ? info.last_seq : 0;
    tern_store_read_end(r);
    tern_store_reader_destroy(&r);
    return last;
}

TestSuite(store_apply, .init = test_store_setup, .fini = test_store_teardown);

//  Usage: apply assigns seqs and dedup results, the records show only after
//  the commit.
Test(store_apply, usage) {
    tern_store_t *store = s_open();
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_frame_t msg[3];
    tern_append_result_t res[3];
    for (int i = 0; i < 3; i++) {
        s_msg(&msg[i], 100 + (uint64_t)i, 1 + (uint64_t)i);
        tern_store_batch_append(batch, &msg[i], true, &res[i]);
    }
    cr_assert_eq(tern_store_batch_apply(batch), TERN_OK);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(res[i].err, TERN_OK);
        cr_assert_eq(res[i].seq, 1 + (uint64_t)i);
        cr_assert_eq(res[i].msg_id, 100 + (uint64_t)i);
        cr_assert(!res[i].duplicate);
    }
    cr_assert_eq(s_last_seq(store), 0, "visible before the commit");
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(s_last_seq(store), 3);
    //  The same results as a plain commit of the next batch would give.
    tern_frame_t next;
    tern_append_result_t next_res;
    s_msg(&next, 200, 4);
    tern_store_batch_append(batch, &next, true, &next_res);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(next_res.seq, 4);
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
}

//  A duplicate within the batch is known at apply, with its original.
Test(store_apply, dedup_hit_known_at_apply) {
    tern_store_t *store = s_open();
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_frame_t a, b;
    tern_append_result_t ra, rb;
    s_msg(&a, 100, 7);
    s_msg(&b, 101, 7); //  same producer seq: a resend
    tern_store_batch_append(batch, &a, true, &ra);
    tern_store_batch_append(batch, &b, true, &rb);
    cr_assert_eq(tern_store_batch_apply(batch), TERN_OK);
    cr_assert(!ra.duplicate);
    cr_assert(rb.duplicate);
    cr_assert_eq(rb.msg_id, 100);
    cr_assert_eq(rb.seq, ra.seq);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(s_last_seq(store), 1);
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
}

//  Destroyed between the halves: nothing is kept, and the store takes the
//  next batch at the same seqs.
Test(store_apply, destroy_after_apply_keeps_nothing) {
    tern_store_t *store = s_open();
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_frame_t msg;
    tern_append_result_t res;
    s_msg(&msg, 100, 1);
    tern_store_batch_append(batch, &msg, true, &res);
    cr_assert_eq(tern_store_batch_apply(batch), TERN_OK);
    cr_assert_eq(res.seq, 1);
    tern_store_batch_destroy(&batch);
    cr_assert_null(batch);
    cr_assert_eq(s_last_seq(store), 0);
    batch = tern_store_batch_new(store);
    s_msg(&msg, 300, 1);
    tern_store_batch_append(batch, &msg, true, &res);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(res.err, TERN_OK);
    cr_assert_eq(res.seq, 1);
    cr_assert(!res.duplicate, "the dedup entry of the aborted batch was kept");
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
}

//  Edge cases: NULL, an empty batch, apply twice.
Test(store_apply, empty_null_and_twice) {
    cr_assert_eq(tern_store_batch_apply(NULL), TERN_EINVAL);
    tern_store_t *store = s_open();
    tern_store_batch_t *batch = tern_store_batch_new(store);
    cr_assert_eq(tern_store_batch_apply(batch), TERN_OK);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    tern_frame_t msg;
    tern_append_result_t res;
    s_msg(&msg, 100, 1);
    tern_store_batch_append(batch, &msg, true, &res);
    cr_assert_eq(tern_store_batch_apply(batch), TERN_OK);
    cr_assert_eq(tern_store_batch_apply(batch), TERN_OK); //  applied already: no-op
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(res.seq, 1);
    cr_assert_eq(s_last_seq(store), 1);
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
}

//  The map grows under batches applied then committed (the fixture's map
//  starts at 1 MiB): a full map found at the commit (LMDB's free list needs
//  pages there) runs the same attempt again on a larger map, so the results
//  read after apply, which a leader has shipped, are what was stored.
Test(store_apply, results_hold_across_map_growth) {
    tern_store_t *store = s_open();
    tern_store_batch_t *batch = tern_store_batch_new(store);
    static char payload[3000];
    memset(payload, 'x', sizeof payload);
    uint64_t next_id = 1000, expect_seq = 1;
    for (int round = 0; round < 3000; round++) {
        int n = 1 + round % 3;
        tern_frame_t msg[16];
        tern_append_result_t res[16], seen[16];
        for (int i = 0; i < n; i++) {
            s_msg(&msg[i], next_id, next_id - 999);
            next_id++;
            msg[i].payload = (const uint8_t *)payload;
            msg[i].payload_size = 200 + (size_t)(round * 131 + i * 17) % (sizeof payload - 200);
            tern_store_batch_append(batch, &msg[i], true, &res[i]);
        }
        cr_assert_eq(tern_store_batch_apply(batch), TERN_OK, "round %d", round);
        memcpy(seen, res, sizeof res);
        cr_assert_eq(tern_store_batch_commit(batch), TERN_OK, "round %d", round);
        for (int i = 0; i < n; i++) {
            cr_assert_eq(seen[i].err, TERN_OK);
            cr_assert_eq(res[i].seq, seen[i].seq, "round %d: seq moved at commit", round);
            cr_assert_eq(res[i].msg_id, seen[i].msg_id);
            cr_assert_eq(seen[i].seq, expect_seq++);
        }
    }
    cr_assert_eq(s_last_seq(store), expect_seq - 1);
    //  Every record at the seq its result named.
    tern_store_reader_t *r = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(r), TERN_OK);
    tern_topic_info_t info;
    cr_assert_eq(tern_store_topic_get(r, TOPIC, &info), TERN_OK);
    tern_frame_t got;
    for (uint64_t seq = 1; seq < expect_seq; seq += 97) {
        cr_assert_eq(tern_store_read_next(r, info.id, seq, &got), TERN_OK);
        cr_assert_eq(got.seq, seq);
        cr_assert_eq(got.msg_id, 1000 + seq - 1);
    }
    tern_store_read_end(r);
    tern_store_reader_destroy(&r);
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
}
