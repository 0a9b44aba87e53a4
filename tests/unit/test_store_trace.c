/*  test_store_trace.c - unit tests of the per-message history (trace events)
    the store keeps for `ternctl audit` and `ternctl trace`.

    Fresh temporary directory per test, small map.
*/
#include "test_store_fixture.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

TestSuite(store_trace, .init = test_store_setup, .fini = test_store_teardown, .timeout = 60);

static tern_store_t *s_open(uint64_t retention_ms) {
    tern_store_config_t config = test_store_config();
    config.trace_retention_ms = retention_ms;
    return test_store_open(&config);
}

static uint64_t s_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
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
    tern_store_batch_group_open(batch, res.topic_id, "billing", TERN_START_FIRST, 0, &err, NULL);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(err, TERN_OK);
    tern_store_batch_deliver(batch, res.topic_id, "billing", res.seq,
                             &(tern_delivery_t){4, 1, 0, "worker-1"});
    tern_store_batch_nack(batch, res.topic_id, "billing", res.seq, 0, TERN_TRACE_NACKED);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    tern_store_batch_dead(batch, res.topic_id, "billing", res.seq, 1, "max_deliver");
    tern_store_batch_trace(batch, res.topic_id, res.seq, TERN_TRACE_REPLICATED, NULL, "us1");
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    //  An ack of an entry that is not pending records nothing.
    tern_store_batch_ack(batch, res.topic_id, "billing", res.seq, TERN_TRACE_ACKED);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);

    test_store_events_t list;
    test_store_trace_scan(store, res.topic_id, res.seq, res.seq, &list);
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
    test_store_events_t list;
    test_store_trace_scan(store, res.topic_id, 1, UINT64_MAX, &list);
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
    test_store_events_t list;
    test_store_trace_scan(store, res.topic_id, 1, UINT64_MAX, &list);
    cr_assert_eq(list.count, 1);
    tern_store_batch_sweep(batch, s_now_ns() + 2000000000ull, 100, NULL);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    test_store_trace_scan(store, res.topic_id, 1, UINT64_MAX, &list);
    cr_expect_eq(list.count, 0);
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
    test_store_teardown();
    test_store_setup();

    store = s_open(0);
    batch = tern_store_batch_new(store);
    msg.msg_id = 10;
    tern_store_batch_append(batch, &msg, true, &res);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    test_store_trace_scan(store, res.topic_id, 1, UINT64_MAX, &list);
    cr_expect_eq(list.count, 0);
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
}

/* ------------------------------------------------------------------------
    Format 3: no STORED event is written at append. A scan makes it from the
    log record while the message is stored; it is written when the message
    leaves the log (every removal path), with the same fields and at_ns.
   ------------------------------------------------------------------------ */

static void s_fill(tern_frame_t *msg, const char *topic, uint64_t msg_id) {
    memset(msg, 0, sizeof *msg);
    snprintf(msg->topic, sizeof msg->topic, "%s", topic);
    snprintf(msg->trace_id, sizeof msg->trace_id, "00-0123456789abcdef0123456789abcdef-%016llx-01",
             (unsigned long long)msg_id);
    snprintf(msg->origin, sizeof msg->origin, "eu1");
    msg->msg_id = msg_id;
    msg->timestamp_ns = s_now_ns();
    msg->payload = (const uint8_t *)"payload";
    msg->payload_size = 7;
}

static tern_append_result_t s_put(tern_store_t *store, tern_frame_t *msg, bool local) {
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_append_result_t res;
    tern_store_batch_append(batch, msg, local, &res);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(res.err, TERN_OK);
    tern_store_batch_destroy(&batch);
    return res;
}

//  The events of one message; the first must be STORED, as EXPECT (or the
//  message's fields when EXPECT is NULL). Returns that STORED event.
static tern_trace_event_t s_stored(tern_store_t *store, const tern_frame_t *msg,
                                   const tern_append_result_t *res,
                                   const tern_trace_event_t *expect, test_store_events_t *list) {
    test_store_trace_scan(store, res->topic_id, res->seq, res->seq, list);
    cr_assert_geq(list->count, 1);
    tern_trace_event_t *ev = &list->events[0];
    cr_assert_eq(ev->type, TERN_TRACE_STORED);
    cr_assert_eq(ev->topic_id, res->topic_id);
    cr_assert_eq(ev->seq, res->seq);
    cr_assert_eq(ev->msg_id, msg->msg_id);
    cr_assert_eq(ev->expire_at_ns, msg->expire_at_ns);
    cr_assert_str_eq(ev->group, msg->origin);
    cr_assert_str_eq(ev->detail, msg->trace_id);
    cr_assert_eq(ev->delivery_count, 0);
    if (expect) {
        cr_assert_eq(ev->at_ns, expect->at_ns, "STORED at_ns changed at removal");
    }
    for (size_t i = 1; i < list->count; i++) {
        cr_assert_neq(list->events[i].type, TERN_TRACE_STORED);
    }
    return *ev;
}

static tern_err_t s_find(tern_store_t *store, uint64_t msg_id, uint32_t *topic_id, uint64_t *seq,
                         tern_err_t *trace_err, uint64_t *position) {
    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    uint32_t t2 = 0;
    uint64_t s2 = 0;
    tern_err_t err = tern_store_find_msg(reader, msg_id, topic_id, seq);
    *trace_err = tern_store_trace_find(reader, msg_id, &t2, &s2);
    if (*trace_err == TERN_OK) {
        *topic_id = t2;
        *seq = s2;
        cr_assert_eq(tern_store_trace_outbox(reader, msg_id, position), TERN_OK);
    } else {
        cr_assert_eq(tern_store_trace_outbox(reader, msg_id, position), *trace_err);
    }
    tern_store_read_end(reader);
    tern_store_reader_destroy(&reader);
    return err;
}

//  Each removal path writes the STORED event the scan showed before, first
//  among the message's events; the message is no longer found by id, its
//  history still is.
Test(store_trace, stored_written_at_every_removal) {
    tern_store_t *store = s_open(24ull * 3600 * 1000);
    tern_store_batch_t *batch = tern_store_batch_new(store);
    enum { TTL, AGE, COUNT, BYTES, PURGE, DELETE, PATHS };
    const char *topics[PATHS] = {"ttl", "age", "count", "bytes", "purge", "delete"};
    for (int path = 0; path < PATHS; path++) {
        tern_err_t err = TERN_EINTERNAL;
        uint64_t age = path == AGE ? 1 : 0, count = path == COUNT ? 1 : 0;
        uint64_t bytes = path == BYTES ? 8 : 0;
        tern_store_batch_topic_put(batch, topics[path], TERN_TOPIC_PUT,
                                   &(tern_topic_limits_t){age, count, bytes}, &err, NULL);
        cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
        cr_assert_eq(err, TERN_OK);
        tern_frame_t msg;
        s_fill(&msg, topics[path], 1000 + (uint64_t)path);
        msg.expire_at_ns = path == TTL ? s_now_ns() + 50 * 1000000ull : 0;
        //  The delivery in the same batch as the append still comes after it.
        tern_append_result_t res;
        tern_store_batch_append(batch, &msg, true, &res);
        cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
        cr_assert_eq(res.err, TERN_OK);
        tern_store_batch_group_open(batch, res.topic_id, "g", TERN_START_FIRST, 0, &err, NULL);
        tern_store_batch_deliver(batch, res.topic_id, "g", res.seq,
                                 &(tern_delivery_t){4, 1, 0, "c1"});
        cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
        test_store_events_t list;
        tern_trace_event_t before = s_stored(store, &msg, &res, NULL, &list);
        cr_assert_eq(list.count, 2);
        cr_assert_eq(list.events[1].type, TERN_TRACE_DELIVERED);
        cr_assert_geq(before.at_ns, msg.timestamp_ns);
        cr_assert_leq(before.at_ns, s_now_ns());
        uint32_t topic_id = 0;
        uint64_t seq = 0, position = 0;
        tern_err_t trace_err;
        cr_assert_eq(s_find(store, msg.msg_id, &topic_id, &seq, &trace_err, &position), TERN_OK);
        cr_assert_eq(trace_err, TERN_OK);
        cr_assert_eq(position, (uint64_t)path + 1); //  one local append per path

        uint64_t removed = 0;
        tern_frame_t next;
        switch (path) {
            case TTL:
            case AGE:
                usleep(60 * 1000);
                tern_store_batch_sweep(batch, s_now_ns(), 100, &removed);
                cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
                cr_assert_eq(removed, 1);
                break;
            case COUNT:
            case BYTES:
                s_fill(&next, topics[path], 2000 + (uint64_t)path);
                s_put(store, &next, false);
                break;
            case PURGE:
            case DELETE:
                tern_store_batch_topic_delete(batch, topics[path], path == PURGE, &err, &removed);
                cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
                cr_assert_eq(err, TERN_OK);
                cr_assert_eq(removed, 1);
                break;
        }
        cr_assert_eq(s_find(store, msg.msg_id, &topic_id, &seq, &trace_err, &position),
                     TERN_ENOTFOUND, "path %s: found by id after removal", topics[path]);
        cr_assert_eq(trace_err, TERN_OK, "path %s: history lost", topics[path]);
        cr_assert_eq(topic_id, res.topic_id);
        cr_assert_eq(seq, res.seq);
        cr_assert_eq(position, (uint64_t)path + 1);
        s_stored(store, &msg, &res, &before, &list);
        cr_assert_geq(list.count, 2, "path %s", topics[path]);
        cr_assert_eq(list.events[1].type, TERN_TRACE_DELIVERED);
        if (path == TTL) {
            cr_assert_eq(list.count, 3);
            cr_assert_eq(list.events[2].type, TERN_TRACE_EXPIRED);
        }
    }
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
}

//  A scan over stored and removed messages returns each one's STORED first,
//  in seq order: written ones (removed) and made ones (stored) alike.
Test(store_trace, scan_merges_log_and_history) {
    tern_store_t *store = s_open(24ull * 3600 * 1000);
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_err_t err;
    tern_store_batch_topic_put(batch, "t", TERN_TOPIC_PUT, &(tern_topic_limits_t){0, 3, 0}, &err,
                               NULL);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    tern_frame_t msgs[6];
    tern_append_result_t res[6];
    for (int i = 0; i < 6; i++) {
        s_fill(&msgs[i], "t", 500 + (uint64_t)i);
        res[i] = s_put(store, &msgs[i], i % 2 == 0);
        cr_assert_eq(res[i].seq, (uint64_t)i + 1);
        tern_store_batch_trace(batch, res[i].topic_id, res[i].seq, TERN_TRACE_REPLICATED, NULL,
                               "us1");
        cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    }
    //  max_msgs 3: seqs 1-3 were removed, 4-6 are stored.
    test_store_events_t list;
    test_store_trace_scan(store, res[0].topic_id, 1, UINT64_MAX, &list);
    cr_assert_eq(list.count, 12);
    for (int i = 0; i < 6; i++) {
        tern_trace_event_t *st = &list.events[2 * i], *rep = &list.events[2 * i + 1];
        cr_assert_eq(st->type, TERN_TRACE_STORED, "seq %d", i + 1);
        cr_assert_eq(st->seq, (uint64_t)i + 1);
        cr_assert_eq(st->msg_id, msgs[i].msg_id);
        cr_assert_str_eq(st->detail, msgs[i].trace_id);
        cr_assert_eq(rep->type, TERN_TRACE_REPLICATED);
        cr_assert_eq(rep->seq, (uint64_t)i + 1);
    }
    //  A sub-range, and the stop callback.
    test_store_trace_scan(store, res[0].topic_id, 3, 4, &list);
    cr_assert_eq(list.count, 4);
    cr_assert_eq(list.events[0].seq, 3);
    cr_assert_eq(list.events[3].seq, 4);
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
}

//  Lookups by id around retention: a stored message stays findable after its
//  history was swept (trace lookups then say ENOTFOUND); a removed one keeps
//  only its history, until the sweep ends it; a message removed after its
//  history ran out (the sweep not there yet) leaves nothing.
Test(store_trace, msg_id_lookups_within_and_after_retention) {
    tern_store_t *store = s_open(1000);
    tern_frame_t a, b, c;
    s_fill(&a, "t", 100);
    s_fill(&b, "t", 200);
    tern_append_result_t ra = s_put(store, &a, true);
    tern_append_result_t rb = s_put(store, &b, true);
    uint32_t topic_id;
    uint64_t seq, position;
    tern_err_t trace_err;
    tern_store_batch_t *batch = tern_store_batch_new(store);
    //  Past retention, both stored: history swept, messages still found.
    tern_store_batch_sweep(batch, s_now_ns() + 2000000000ull, 100, NULL);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    test_store_events_t list;
    test_store_trace_scan(store, ra.topic_id, 1, UINT64_MAX, &list);
    cr_assert_eq(list.count, 0);
    cr_assert_eq(s_find(store, 100, &topic_id, &seq, &trace_err, &position), TERN_OK);
    cr_assert_eq(seq, ra.seq);
    cr_assert_eq(trace_err, TERN_ENOTFOUND);
    cr_assert_eq(s_find(store, 200, &topic_id, &seq, &trace_err, &position), TERN_OK);
    cr_assert_eq(seq, rb.seq);
    //  A replicated record with a lower id than the sweep reached: the sweep
    //  comes back for it, also after a restart.
    s_fill(&c, "t", 50);
    tern_append_result_t rc = s_put(store, &c, false);
    cr_assert_eq(rc.seq, 3);
    //  Duplicate by id while stored.
    tern_store_batch_append(batch, &c, false, &rc);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert(rc.duplicate);
    cr_assert_eq(rc.seq, 3);
    //  Purge: 100 and 200 (history swept) leave nothing; 50 keeps its history.
    uint64_t removed = 0;
    tern_err_t err;
    tern_store_batch_topic_delete(batch, "t", true, &err, &removed);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(removed, 3);
    cr_assert_eq(s_find(store, 100, &topic_id, &seq, &trace_err, &position), TERN_ENOTFOUND);
    cr_assert_eq(trace_err, TERN_ENOTFOUND);
    cr_assert_eq(s_find(store, 50, &topic_id, &seq, &trace_err, &position), TERN_ENOTFOUND);
    cr_assert_eq(trace_err, TERN_OK);
    cr_assert_eq(seq, 3);
    cr_assert_eq(position, 0); //  remote: never shipped
    test_store_trace_scan(store, ra.topic_id, 1, UINT64_MAX, &list);
    cr_assert_eq(list.count, 1);
    cr_assert_eq(list.events[0].type, TERN_TRACE_STORED);
    cr_assert_eq(list.events[0].seq, 3);
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);

    store = s_open(1000);
    batch = tern_store_batch_new(store);
    tern_store_batch_sweep(batch, s_now_ns() + 2000000000ull, 100, NULL);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(s_find(store, 50, &topic_id, &seq, &trace_err, &position), TERN_ENOTFOUND);
    cr_assert_eq(trace_err, TERN_ENOTFOUND);
    test_store_trace_scan(store, ra.topic_id, 1, UINT64_MAX, &list);
    cr_assert_eq(list.count, 0);

    //  Removed after its history ran out, before a sweep: nothing is left.
    tern_frame_t d;
    s_fill(&d, "t", 300);
    tern_append_result_t rd = s_put(store, &d, true);
    tern_store_batch_deliver(batch, rd.topic_id, "g", rd.seq, &(tern_delivery_t){4, 1, 0, NULL});
    tern_store_batch_group_open(batch, rd.topic_id, "g", TERN_START_FIRST, 0, &err, NULL);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    usleep(1100 * 1000);
    tern_store_batch_topic_delete(batch, "t", true, &err, &removed);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(removed, 1);
    cr_assert_eq(s_find(store, 300, &topic_id, &seq, &trace_err, &position), TERN_ENOTFOUND);
    cr_assert_eq(trace_err, TERN_ENOTFOUND);
    test_store_trace_scan(store, rd.topic_id, 1, UINT64_MAX, &list);
    cr_assert_eq(list.count, 0);

    //  The id of a removed message can be stored again (as before format 3).
    s_fill(&c, "t", 50);
    rc = s_put(store, &c, false);
    cr_assert_not(rc.duplicate);
    cr_assert_eq(s_find(store, 50, &topic_id, &seq, &trace_err, &position), TERN_OK);
    cr_assert_eq(seq, rc.seq);
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
}

//  Retention 0: no history, and a removed message's id entry goes with it.
Test(store_trace, no_history_without_retention) {
    tern_store_t *store = s_open(0);
    tern_frame_t a;
    s_fill(&a, "t", 42);
    tern_append_result_t ra = s_put(store, &a, true);
    uint32_t topic_id;
    uint64_t seq, position;
    tern_err_t trace_err;
    cr_assert_eq(s_find(store, 42, &topic_id, &seq, &trace_err, &position), TERN_OK);
    cr_assert_eq(seq, ra.seq);
    cr_assert_eq(trace_err, TERN_ENOTFOUND);
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_err_t err;
    uint64_t removed = 0;
    tern_store_batch_topic_delete(batch, "t", true, &err, &removed);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(removed, 1);
    cr_assert_eq(s_find(store, 42, &topic_id, &seq, &trace_err, &position), TERN_ENOTFOUND);
    test_store_events_t list;
    test_store_trace_scan(store, ra.topic_id, 1, UINT64_MAX, &list);
    cr_assert_eq(list.count, 0);
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
    //  Turned on later: the entry is gone, nothing is found.
    store = s_open(24ull * 3600 * 1000);
    cr_assert_eq(s_find(store, 42, &topic_id, &seq, &trace_err, &position), TERN_ENOTFOUND);
    cr_assert_eq(trace_err, TERN_ENOTFOUND);
    tern_store_destroy(&store);
}

//  A replication conflict removes the superseded copy from the log: its
//  STORED event is written like on any other removal.
Test(store_trace, stored_written_when_superseded) {
    tern_store_t *store = s_open(24ull * 3600 * 1000);
    tern_frame_t mine, theirs;
    s_fill(&mine, "t", 900);
    snprintf(mine.producer, sizeof mine.producer, "p");
    mine.producer_seq = 1;
    tern_append_result_t rm = s_put(store, &mine, true);
    test_store_events_t list;
    tern_trace_event_t before = s_stored(store, &mine, &rm, NULL, &list);
    cr_assert_eq(list.count, 1);
    s_fill(&theirs, "t", 800);
    snprintf(theirs.producer, sizeof theirs.producer, "p");
    theirs.producer_seq = 1;
    snprintf(theirs.origin, sizeof theirs.origin, "us1");
    tern_append_result_t rt = s_put(store, &theirs, false);
    cr_assert_not(rt.duplicate);
    tern_store_stats_t stats;
    tern_store_stats(store, &stats);
    cr_assert_eq(stats.superseded, 1);
    uint32_t topic_id;
    uint64_t seq, position;
    tern_err_t trace_err;
    cr_assert_eq(s_find(store, 900, &topic_id, &seq, &trace_err, &position), TERN_ENOTFOUND);
    cr_assert_eq(trace_err, TERN_OK);
    cr_assert_eq(seq, rm.seq);
    cr_assert_eq(position, 1);
    s_stored(store, &mine, &rm, &before, &list);
    cr_assert_eq(list.count, 1);
    s_stored(store, &theirs, &rt, NULL, &list);
    cr_assert_eq(s_find(store, 800, &topic_id, &seq, &trace_err, &position), TERN_OK);
    cr_assert_eq(seq, rt.seq);
    cr_assert_eq(position, 0);
    tern_store_destroy(&store);
}
