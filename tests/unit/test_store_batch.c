/*  test_store_batch.c - unit tests of a write batch's byte count
    (tern_store_batch_bytes), which the storer bounds a transaction by.

    A transaction's dirty pages are malloc'd by LMDB and kept for reuse, so
    the storer closes a batch at storage/batch_bytes as well as at a count of
    records: these tests pin what the count measures and that a batch of
    large records closed at the bound commits and reads back whole.
*/
#include "test_store_fixture.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

TestSuite(store_batch, .init = test_store_setup, .fini = test_store_teardown, .timeout = 60);

#define S_BIG (64 * 1024) //  payload of the large records

static void s_msg(tern_frame_t *msg, uint64_t id, const uint8_t *payload, size_t size) {
    memset(msg, 0, sizeof *msg);
    msg->cmd = TERN_CMD_PUBLISH;
    msg->priority = TERN_PRIORITY_DEFAULT;
    strcpy(msg->topic, "big");
    msg->msg_id = id;
    msg->payload = payload;
    msg->payload_size = size;
}

//  A fresh store (*STORE_P) and a batch on it.
static tern_store_batch_t *s_open(tern_store_t **store_p) {
    tern_store_config_t config = test_store_config();
    *store_p = test_store_open(&config);
    return tern_store_batch_new(*store_p);
}

static void s_close(tern_store_batch_t **batch_p, tern_store_t **store_p) {
    tern_store_batch_destroy(batch_p);
    tern_store_destroy(store_p);
}

Test(store_batch, usage_example) {
    //  Queue while the batch is under the byte bound, then commit: the way
    //  the storer closes a transaction.
    tern_store_t *store;
    tern_store_batch_t *batch = s_open(&store);
    cr_assert_eq(tern_store_batch_bytes(batch), 0);
    cr_assert_eq(tern_store_batch_bytes(NULL), 0);

    static uint8_t payload[S_BIG];
    memset(payload, 'x', sizeof payload);
    tern_frame_t msgs[64];
    tern_append_result_t results[64];
    size_t bound = 1 << 20, count = 0;
    while (tern_store_batch_bytes(batch) < bound) {
        s_msg(&msgs[count], 100 + count, payload, sizeof payload);
        tern_store_batch_append(batch, &msgs[count], true, &results[count]);
        count++;
    }
    //  Each append counts at least its payload, and not much more: the
    //  batch closes at the 16th 64 KB record of a 1 MB bound.
    cr_assert_eq(count, 16, "closed after %zu appends", count);
    cr_assert_geq(tern_store_batch_bytes(batch), count * S_BIG);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(tern_store_batch_bytes(batch), 0, "a commit empties the batch");
    for (size_t i = 0; i < count; i++) {
        cr_assert_eq(results[i].err, TERN_OK);
        cr_assert_eq(results[i].seq, i + 1);
    }

    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    for (size_t i = 0; i < count; i++) {
        tern_frame_t out;
        cr_assert_eq(tern_store_read(reader, results[i].topic_id, results[i].seq, &out), TERN_OK);
        cr_assert_eq(out.payload_size, S_BIG);
        cr_assert_eq(memcmp(out.payload, payload, S_BIG), 0);
    }
    tern_store_read_end(reader);
    tern_store_reader_destroy(&reader);
    s_close(&batch, &store);
}

Test(store_batch, every_operation_counts) {
    //  Group state (route's deliveries and acks under fan-out) fills a
    //  transaction as records do: each queued operation counts.
    tern_store_t *store;
    tern_store_batch_t *batch = s_open(&store);
    tern_store_batch_ack(batch, 1, "g", 1, TERN_TRACE_ACKED);
    size_t one = tern_store_batch_bytes(batch);
    cr_assert_gt(one, 0);
    for (uint64_t seq = 2; seq <= 1000; seq++) {
        tern_store_batch_ack(batch, 1, "g", seq, TERN_TRACE_ACKED);
    }
    cr_assert_eq(tern_store_batch_bytes(batch), 1000 * one);

    //  A record counts its payload on top of what every record costs.
    static uint8_t payload[1000];
    tern_frame_t msg, small;
    s_msg(&msg, 7, payload, sizeof payload);
    s_msg(&small, 8, payload, 10);
    tern_append_result_t result, small_result;
    size_t before = tern_store_batch_bytes(batch);
    tern_store_batch_append(batch, &small, true, &small_result);
    size_t record = tern_store_batch_bytes(batch) - before;
    cr_assert_gt(record, 10);
    tern_store_batch_append(batch, &msg, true, &result);
    cr_assert_eq(tern_store_batch_bytes(batch), before + 2 * record + 990);

    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(result.err, TERN_OK);
    cr_assert_eq(small_result.err, TERN_OK);
    cr_assert_eq(tern_store_batch_bytes(batch), 0);
    cr_assert_eq(tern_store_batch_size(batch), 0);
    s_close(&batch, &store);
}

Test(store_batch, shrinks_after_a_burst) {
    //  A burst of 100,000 operations grows the queue; the batches after it
    //  (which reuse the queue) still work, and a second burst regrows it.
    tern_store_t *store;
    tern_store_batch_t *batch = s_open(&store);
    for (int round = 0; round < 3; round++) {
        size_t n = round == 1 ? 10 : 100000;
        for (uint64_t seq = 1; seq <= n; seq++) {
            tern_store_batch_ack(batch, 1, "gone", seq, TERN_TRACE_ACKED);
        }
        cr_assert_eq(tern_store_batch_size(batch), n);
        cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
        cr_assert_eq(tern_store_batch_size(batch), 0);
    }
    s_close(&batch, &store);
}
