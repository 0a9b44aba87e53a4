/*  test_store_fixture: a fresh store directory per storage test. */
#include "test_store_fixture.h"

#include <criterion/criterion.h>
#include <string.h>

char test_store_dir[TEST_DIR_MAX];

void test_store_setup(void) {
    cr_assert_not_null(test_dir_make(test_store_dir, "store"));
}

void test_store_teardown(void) {
    cr_assert_eq(test_dir_remove(test_store_dir), 0);
    test_store_dir[0] = 0;
}

tern_store_config_t test_store_config(void) {
    tern_store_config_t config;
    tern_store_config_defaults(&config);
    config.dir = test_store_dir;
    config.map_initial = 1 << 20;
    config.map_max = 64 << 20;
    config.durability = TERN_DURABILITY_NONE; //  tests need no fsync; the crash test does
    return config;
}

tern_store_t *test_store_open(const tern_store_config_t *config) {
    tern_err_t err = TERN_EINTERNAL;
    tern_store_t *store = tern_store_new(config, &err);
    cr_assert_not_null(store, "tern_store_new: %s", tern_strerror(err));
    cr_assert_eq(err, TERN_OK);
    return store;
}

tern_topic_info_t test_store_topic(tern_store_t *store, const char *name) {
    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    tern_topic_info_t info;
    cr_assert_eq(tern_store_topic_get(reader, name, &info), TERN_OK);
    tern_store_read_end(reader);
    tern_store_reader_destroy(&reader);
    return info;
}

uint64_t test_store_truncate(tern_store_t *store, const char *topic, uint64_t after, bool raise) {
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_err_t err = TERN_EINTERNAL;
    uint64_t removed = 99;
    if (raise) {
        tern_store_batch_end_at(batch, topic, after, &err, &removed);
    } else {
        tern_store_batch_truncate(batch, topic, after, &err, &removed);
    }
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    tern_store_batch_destroy(&batch);
    cr_assert_eq(err, TERN_OK, "%s", tern_errname(err));
    return removed;
}

static bool s_collect(const tern_trace_event_t *event, void *arg) {
    test_store_events_t *list = (test_store_events_t *)arg;
    if (list->count < TEST_STORE_EVENTS_MAX) {
        list->events[list->count++] = *event;
    }
    return true;
}

void test_store_trace_scan(tern_store_t *store, uint32_t topic_id, uint64_t from, uint64_t to,
                           test_store_events_t *out) {
    memset(out, 0, sizeof *out);
    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    cr_assert_eq(tern_store_trace_scan(reader, topic_id, from, to, s_collect, out), TERN_OK);
    tern_store_read_end(reader);
    tern_store_reader_destroy(&reader);
}
