/*  test_store_fixture: a fresh store directory per storage test.

        TestSuite(store, .init = test_store_setup, .fini = test_store_teardown);

        Test(store, example) {
            tern_store_config_t config = test_store_config();
            tern_store_t *store = test_store_open(&config);
            ...
            tern_store_destroy(&store);
        }

    Each test gets its own directory (test_store_dir), removed with all it
    holds after the test. The config has a small map so that "full" is
    reachable, and no fsync (the crash test sets its own durability).
*/
#ifndef TEST_STORE_FIXTURE_H_INCLUDED
#define TEST_STORE_FIXTURE_H_INCLUDED

#include "test_dir.h"
#include "tern_store.h"

//  The current test's directory (valid between setup and teardown).
extern char test_store_dir[TEST_DIR_MAX];

//  Criterion .init / .fini: makes test_store_dir, then removes it.
void test_store_setup(void);
void test_store_teardown(void);

//  The defaults on test_store_dir, with a 1 MiB map that grows to 64 MiB
//  and TERN_DURABILITY_NONE.
tern_store_config_t test_store_config(void);

//  Opens the store of CONFIG, asserting that it opened with TERN_OK.
//  Caller owns the result (tern_store_destroy).
tern_store_t *test_store_open(const tern_store_config_t *config);

//  Topic NAME of STORE, read in a read of its own (asserting TERN_OK).
tern_topic_info_t test_store_topic(tern_store_t *store, const char *name);

//  An in-DC follower's truncation of TOPIC to AFTER in a batch of its own,
//  committed (tern_store_batch_end_at when RAISE: also raised to AFTER),
//  asserting TERN_OK; returns the messages removed.
uint64_t test_store_truncate(tern_store_t *store, const char *topic, uint64_t after, bool raise);

//  The trace events of one scan, in order (the first TEST_STORE_EVENTS_MAX).
#define TEST_STORE_EVENTS_MAX 32
typedef struct {
    tern_trace_event_t events[TEST_STORE_EVENTS_MAX]; //  collected
    size_t count;                                     //  used
} test_store_events_t;

//  Scans the trace of TOPIC_ID, seqs FROM..TO, into OUT (reset first),
//  asserting TERN_OK (tern_store_trace_scan in a read of its own).
void test_store_trace_scan(tern_store_t *store, uint32_t topic_id, uint64_t from, uint64_t to,
                           test_store_events_t *out);

#endif
