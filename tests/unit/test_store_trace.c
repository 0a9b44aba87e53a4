/*  test_store_trace.c - unit tests of the per-message history (trace events)
    the store keeps for `ternctl audit` and `ternctl trace`.

    Fresh temporary directory per test, small map.
*/
#include "tern_store.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char s_dir[64];

static void s_setup(void) {
    strcpy(s_dir, "/tmp/tern-trace-XXXXXX");
    cr_assert_not_null(mkdtemp(s_dir));
}

static void s_teardown(void) {
    char path[128];
    snprintf(path, sizeof path, "%s/data.mdb", s_dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/lock.mdb", s_dir);
    unlink(path);
    rmdir(s_dir);
}

TestSuite(store_trace, .init = s_setup, .fini = s_teardown, .timeout = 60);

static tern_store_t *s_open(uint64_t retention_ms) {
    tern_store_config_t config;
    tern_store_config_defaults(&config);
    config.dir = s_dir;
    config.map_initial = 1 << 20;
    config.map_max = 64 << 20;
    config.durability = TERN_DURABILITY_NONE;
    config.trace_retention_ms = retention_ms;
    tern_err_t err = TERN_EINTERNAL;
    tern_store_t *store = tern_store_new(&config, &err);
    cr_assert_not_null(store);
    cr_assert_eq(err, TERN_OK);
    return store;
}

static uint64_t s_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

typedef struct {
    tern_trace_event_t events[32]; //  collected
    size_t count;                  //  used
} s_events_t;

static bool s_collect(const tern_trace_event_t *event, void *arg) {
    s_events_t *list = (s_events_t *)arg;
    if (list->count < 32) {
        list->events[list->count++] = *event;
    }
    return true;
}

static void s_scan(tern_store_t *store, uint32_t topic_id, uint64_t from, uint64_t to,
                   s_events_t *out) {
    memset(out, 0, sizeof *out);
    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    cr_assert_eq(tern_store_trace_scan(reader, topic_id, from, to, s_collect, out), TERN_OK);
    tern_store_read_end(reader);
    tern_store_reader_destroy(&reader);
}

//  Usage: append, deliver to a named consumer, nack, dead-letter; the
//  history lists each step in order, and trace_find maps the id back.
Test(store_trace, life_of_a_message) {
    tern_store_t *store = s_open(24ull * 3600 * 1000);
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_frame_t msg;
    memset(&msg, 0, sizeof msg);
    snprintf(msg.topic, sizeof msg.topic, "orders");
    snprintf(msg.trace_id, sizeof msg.trace_id,
             "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01");
    snprintf(msg.origin, sizeof msg.origin, "eu1");
    msg.msg_id = 77;
    msg.payload = (const uint8_t *)"x";
    msg.payload_size = 1;
    tern_append_result_t res;
    tern_store_batch_append(batch, &msg, true, &res);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(res.err, TERN_OK);
    tern_err_t err = TERN_EINTERNAL;
    tern_store_batch_group_open(batch, res.topic_id, "billing", TERN_START_FIRST, 0, &err);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(err, TERN_OK);
    tern_store_batch_deliver_to(batch, res.topic_id, "billing", res.seq, 4, 1, 0, "worker-1");
    tern_store_batch_nack(batch, res.topic_id, "billing", res.seq, 0);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    tern_store_batch_dead(batch, res.topic_id, "billing", res.seq, 1, "max_deliver");
    tern_store_batch_trace(batch, res.topic_id, res.seq, TERN_TRACE_REPLICATED, NULL, "us1");
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    //  An ack of an entry that is not pending records nothing.
    tern_store_batch_ack(batch, res.topic_id, "billing", res.seq);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);

    s_events_t list;
    s_scan(store, res.topic_id, res.seq, res.seq, &list);
    cr_assert_eq(list.count, 5);
    cr_expect_eq(list.events[0].type, TERN_TRACE_STORED);
    cr_expect_eq(list.events[0].msg_id, 77);
    cr_expect_str_eq(list.events[0].group, "eu1");
    cr_expect_str_eq(list.events[0].detail, msg.trace_id);
    cr_expect_eq(list.events[1].type, TERN_TRACE_DELIVERED);
    cr_expect_str_eq(list.events[1].group, "billing");
    cr_expect_str_eq(list.events[1].detail, "worker-1");
    cr_expect_eq(list.events[1].delivery_count, 1);
    cr_expect_eq(list.events[2].type, TERN_TRACE_NACKED);
    cr_expect_eq(list.events[3].type, TERN_TRACE_DEAD);
    cr_expect_str_eq(list.events[3].detail, "max_deliver");
    cr_expect_eq(list.events[4].type, TERN_TRACE_REPLICATED);
    cr_expect_str_eq(list.events[4].detail, "us1");
    for (size_t i = 1; i < list.count; i++) {
        cr_expect_geq(list.events[i].at_ns, list.events[i - 1].at_ns);
    }

    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    uint32_t topic_id = 0;
    uint64_t seq = 0;
    cr_expect_eq(tern_store_trace_find(reader, 77, &topic_id, &seq), TERN_OK);
    cr_expect_eq(topic_id, res.topic_id);
    cr_expect_eq(seq, res.seq);
    cr_expect_eq(tern_store_trace_find(reader, 78, &topic_id, &seq), TERN_ENOTFOUND);
    tern_store_read_end(reader);
    tern_store_reader_destroy(&reader);
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
}

//  The TTL sweep records EXPIRED, and the history outlives the message.
Test(store_trace, expiry_is_recorded) {
    tern_store_t *store = s_open(24ull * 3600 * 1000);
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_frame_t msg;
    memset(&msg, 0, sizeof msg);
    snprintf(msg.topic, sizeof msg.topic, "t");
    msg.msg_id = 5;
    msg.expire_at_ns = s_now_ns() - 1;
    tern_append_result_t res;
    tern_store_batch_append(batch, &msg, true, &res);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    uint64_t removed = 0;
    tern_store_batch_sweep(batch, s_now_ns(), 100, &removed);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(removed, 1);
    s_events_t list;
    s_scan(store, res.topic_id, 1, UINT64_MAX, &list);
    cr_assert_eq(list.count, 2);
    cr_expect_eq(list.events[0].type, TERN_TRACE_STORED);
    cr_expect_eq(list.events[0].expire_at_ns, msg.expire_at_ns);
    cr_expect_eq(list.events[1].type, TERN_TRACE_EXPIRED);
    cr_expect_str_eq(list.events[1].group, "");
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
}

//  The history is swept after trace_retention; with retention 0 none is kept.
Test(store_trace, retention) {
    tern_store_t *store = s_open(1000);
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_frame_t msg;
    memset(&msg, 0, sizeof msg);
    snprintf(msg.topic, sizeof msg.topic, "t");
    msg.msg_id = 9;
    tern_append_result_t res;
    tern_store_batch_append(batch, &msg, true, &res);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    s_events_t list;
    s_scan(store, res.topic_id, 1, UINT64_MAX, &list);
    cr_assert_eq(list.count, 1);
    tern_store_batch_sweep(batch, s_now_ns() + 2000000000ull, 100, NULL);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    s_scan(store, res.topic_id, 1, UINT64_MAX, &list);
    cr_expect_eq(list.count, 0);
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
    s_teardown();
    s_setup();

    store = s_open(0);
    batch = tern_store_batch_new(store);
    msg.msg_id = 10;
    tern_store_batch_append(batch, &msg, true, &res);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    s_scan(store, res.topic_id, 1, UINT64_MAX, &list);
    cr_expect_eq(list.count, 0);
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
}
