/*  test_store_group_run.c - the history events of a run of delivery-state
    ops (tern_store_group_run.c): held until the run ends, then written in
    key order; the history reads as if each had been written at once.

    Fresh temporary directory per test, small map, history kept.
*/
#include "test_store_fixture.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

TestSuite(store_group_run, .init = test_store_setup, .fini = test_store_teardown, .timeout = 60);

#define S_MSGS   6
#define S_GROUPS 5

typedef struct {
    tern_store_t *store;       //  the store under test
    tern_store_batch_t *batch; //  its writer
    uint32_t topic_id;         //  topic "t"
    uint64_t seqs[S_MSGS];     //  its messages
} s_fix_t;

static tern_frame_t s_msgs[S_MSGS + 1]; //  borrowed by the batch until its commit

//  Queues message I (msg_id 100 + I) on topic "t"; RES filled at commit.
static void s_append(s_fix_t *fix, int i, tern_append_result_t *res) {
    memset(&s_msgs[i], 0, sizeof s_msgs[i]);
    snprintf(s_msgs[i].topic, sizeof s_msgs[i].topic, "t");
    s_msgs[i].payload = (const uint8_t *)"x";
    s_msgs[i].payload_size = 1;
    s_msgs[i].msg_id = 100 + (uint64_t)i;
    tern_store_batch_append(fix->batch, &s_msgs[i], true, res);
}

//  Topic "t" with S_MSGS messages and groups g0..g4 from its first.
static void s_open(s_fix_t *fix) {
    tern_store_config_t config = test_store_config();
    config.trace_retention_ms = 24ull * 3600 * 1000;
    fix->store = test_store_open(&config);
    fix->batch = tern_store_batch_new(fix->store);
    tern_append_result_t res[S_MSGS];
    for (int i = 0; i < S_MSGS; i++) {
        s_append(fix, i, &res[i]);
    }
    cr_assert_eq(tern_store_batch_commit(fix->batch), TERN_OK);
    fix->topic_id = res[0].topic_id;
    for (int i = 0; i < S_MSGS; i++) {
        cr_assert_eq(res[i].err, TERN_OK);
        fix->seqs[i] = res[i].seq;
    }
    tern_err_t errs[S_GROUPS];
    for (int g = 0; g < S_GROUPS; g++) {
        char name[8];
        snprintf(name, sizeof name, "g%d", g);
        tern_store_batch_group_open(fix->batch, fix->topic_id, name, TERN_START_FIRST, 0, &errs[g],
                                    NULL);
    }
    cr_assert_eq(tern_store_batch_commit(fix->batch), TERN_OK);
    for (int g = 0; g < S_GROUPS; g++) {
        cr_assert_eq(errs[g], TERN_OK);
    }
}

static void s_close(s_fix_t *fix) {
    tern_store_batch_destroy(&fix->batch);
    tern_store_destroy(&fix->store);
}

//  Route's order: group by group, each group's seqs ascending.
static void s_deliver_all(s_fix_t *fix) {
    for (int g = 0; g < S_GROUPS; g++) {
        char name[8];
        snprintf(name, sizeof name, "g%d", g);
        for (int i = 0; i < S_MSGS; i++) {
            tern_store_batch_deliver(fix->batch, fix->topic_id, name, fix->seqs[i],
                                     &(tern_delivery_t){4, 1, 0, "worker"});
        }
    }
}

//  Usage: 5 groups get 6 messages in route's order in one commit and ack
//  them in another, last group first; each message's history lists its
//  STORED, then the deliveries in the order they were made, then the acks.
Test(store_group_run, fanout_history_in_order) {
    s_fix_t fix;
    s_open(&fix);
    s_deliver_all(&fix);
    cr_assert_eq(tern_store_batch_commit(fix.batch), TERN_OK);
    tern_append_result_t res;
    for (int g = S_GROUPS - 1; g >= 0; g--) {
        char name[8];
        snprintf(name, sizeof name, "g%d", g);
        for (int i = 0; i < S_MSGS; i++) {
            tern_store_batch_ack(fix.batch, fix.topic_id, name, fix.seqs[i], TERN_TRACE_ACKED);
        }
        if (g == 2) { //  another kind of op in the middle ends the run
            s_append(&fix, S_MSGS, &res);
        }
    }
    cr_assert_eq(tern_store_batch_commit(fix.batch), TERN_OK);
    cr_assert_eq(res.err, TERN_OK);
    for (int i = 0; i < S_MSGS; i++) {
        test_store_events_t list;
        test_store_trace_scan(fix.store, fix.topic_id, fix.seqs[i], fix.seqs[i], &list);
        cr_assert_eq(list.count, 1 + 2 * S_GROUPS, "seq %llu: %zu events",
                     (unsigned long long)fix.seqs[i], list.count);
        cr_expect_eq(list.events[0].type, TERN_TRACE_STORED);
        for (int g = 0; g < S_GROUPS; g++) {
            const tern_trace_event_t *d = &list.events[1 + g];
            const tern_trace_event_t *a = &list.events[1 + S_GROUPS + g];
            char name[8];
            snprintf(name, sizeof name, "g%d", g);
            cr_expect_eq(d->type, TERN_TRACE_DELIVERED);
            cr_expect_str_eq(d->group, name);
            cr_expect_str_eq(d->detail, "worker");
            snprintf(name, sizeof name, "g%d", S_GROUPS - 1 - g);
            cr_expect_eq(a->type, TERN_TRACE_ACKED);
            cr_expect_str_eq(a->group, name);
        }
        for (size_t e = 1; e < list.count; e++) {
            cr_expect_geq(list.events[e].at_ns, list.events[e - 1].at_ns);
        }
    }
    s_close(&fix);
}

//  A truncation queued after deliveries in the same batch removes their
//  events too, as when each event was written at once: the run's events
//  are put before the truncation reads the history.
Test(store_group_run, run_ends_before_a_truncation) {
    s_fix_t fix;
    s_open(&fix);
    s_deliver_all(&fix);
    tern_err_t err = TERN_EINTERNAL;
    uint64_t removed = 0;
    tern_store_batch_truncate(fix.batch, "t", fix.seqs[2], &err, &removed);
    cr_assert_eq(tern_store_batch_commit(fix.batch), TERN_OK);
    cr_assert_eq(err, TERN_OK);
    cr_assert_eq(removed, S_MSGS - 3);
    test_store_events_t list;
    test_store_trace_scan(fix.store, fix.topic_id, fix.seqs[3], fix.seqs[S_MSGS - 1], &list);
    cr_expect_eq(list.count, 0);
    test_store_trace_scan(fix.store, fix.topic_id, fix.seqs[2], fix.seqs[2], &list);
    cr_expect_eq(list.count, 1 + S_GROUPS);
    s_close(&fix);
}

static uint64_t s_map_size(tern_store_t *store) {
    tern_store_stats_t stats;
    tern_store_stats(store, &stats);
    return stats.map_size;
}

//  A batch larger than the map fails with MDB_MAP_FULL part-way through a
//  run, grows the map and runs again: each event is written once. (Not a
//  proof that st_run_reset drops what the failed attempt held: here the
//  attempt carrying such duplicates also fails, at its commit, and the next
//  one starts clean.)
Test(store_group_run, retried_attempt_holds_afresh) {
    enum { MSGS = 1000, GROUPS = 25 };
    s_fix_t fix;
    tern_store_config_t config = test_store_config();
    config.trace_retention_ms = 24ull * 3600 * 1000;
    fix.store = test_store_open(&config);
    fix.batch = tern_store_batch_new(fix.store);
    static tern_frame_t msgs[MSGS];
    static tern_append_result_t res[MSGS];
    for (int i = 0; i < MSGS; i++) {
        memset(&msgs[i], 0, sizeof msgs[i]);
        snprintf(msgs[i].topic, sizeof msgs[i].topic, "t");
        msgs[i].payload = (const uint8_t *)"x";
        msgs[i].payload_size = 1;
        msgs[i].msg_id = 1000 + (uint64_t)i;
        tern_store_batch_append(fix.batch, &msgs[i], true, &res[i]);
    }
    cr_assert_eq(tern_store_batch_commit(fix.batch), TERN_OK);
    uint64_t map_before = s_map_size(fix.store);
    tern_err_t errs[GROUPS];
    char names[GROUPS][8];
    for (int g = 0; g < GROUPS; g++) {
        snprintf(names[g], sizeof names[g], "g%d", g);
        tern_store_batch_group_open(fix.batch, res[0].topic_id, names[g], TERN_START_FIRST, 0,
                                    &errs[g], NULL);
    }
    cr_assert_eq(tern_store_batch_commit(fix.batch), TERN_OK);
    for (int g = 0; g < GROUPS; g++) {
        cr_assert_eq(errs[g], TERN_OK);
        for (int i = 0; i < MSGS; i++) {
            tern_store_batch_deliver(fix.batch, res[0].topic_id, names[g], res[i].seq,
                                     &(tern_delivery_t){4, 1, 0, "worker"});
        }
    }
    cr_assert_eq(tern_store_batch_commit(fix.batch), TERN_OK);
    cr_assert_gt(s_map_size(fix.store), map_before, "the batch did not fill the map");
    for (int i = 0; i < MSGS; i += 111) {
        test_store_events_t list;
        test_store_trace_scan(fix.store, res[0].topic_id, res[i].seq, res[i].seq, &list);
        cr_assert_eq(list.count, 1 + GROUPS, "seq %llu: %zu events", (unsigned long long)res[i].seq,
                     list.count);
    }
    s_close(&fix);
}
