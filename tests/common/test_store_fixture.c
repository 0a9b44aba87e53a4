/*  test_store_fixture: a fresh store directory per storage test. */
#include "test_store_fixture.h"

#include <criterion/criterion.h>

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
