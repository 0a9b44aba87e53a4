/*  test_tagmap.c - the delivery tag map (broker/tern_tagmap.c): insert, get,
    delete, list, growth and reuse of deleted slots.
*/
#include "tern_tagmap.h"
#include <criterion/criterion.h>
#include <stdlib.h>

//  Usage: route keeps one map per subscription, tag -> entry in flight.
Test(tagmap, usage_insert_get_delete) {
    tern_tagmap_t map;
    tern_tagmap_init(&map);
    int first = 1, second = 2;
    tern_tagmap_insert(&map, 1, &first);
    tern_tagmap_insert(&map, 2, &second);
    cr_assert_eq(tern_tagmap_get(&map, 1), &first);
    cr_assert_eq(tern_tagmap_get(&map, 2), &second);
    cr_assert_eq(tern_tagmap_count(&map), 2);

    tern_tagmap_delete(&map, 1); //  ACK of tag 1
    cr_assert_null(tern_tagmap_get(&map, 1));
    cr_assert_eq(tern_tagmap_count(&map), 1);
    tern_tagmap_fini(&map);
    cr_assert_eq(tern_tagmap_count(&map), 0);
}

Test(tagmap, empty_and_invalid_tags) {
    tern_tagmap_t map = {0};
    cr_assert_null(tern_tagmap_get(&map, 1));
    cr_assert_null(tern_tagmap_get(&map, 0));
    cr_assert_null(tern_tagmap_get(&map, TERN_TAGMAP_TOMB));
    tern_tagmap_delete(&map, 7); //  absent: nothing
    size_t n = 99;
    void **list = tern_tagmap_list(&map, UINT64_MAX, &n);
    cr_assert_eq(n, 0);
    free(list);
    tern_tagmap_fini(&map);
}

//  A window of sequential tags sliding forward: the table neither grows
//  without bound nor loses an entry while deleted slots are reused.
Test(tagmap, sliding_window_keeps_every_live_tag) {
    tern_tagmap_t map = {0};
    static int values[100000];
    const uint64_t window = 1000;
    for (uint64_t tag = 1; tag <= 100000; tag++) {
        tern_tagmap_insert(&map, tag, &values[tag - 1]);
        if (tag > window) {
            tern_tagmap_delete(&map, tag - window);
        }
    }
    cr_assert_eq(tern_tagmap_count(&map), window);
    cr_assert_leq(map.cap, 4 * window);
    for (uint64_t tag = 100000 - window + 1; tag <= 100000; tag++) {
        cr_assert_eq(tern_tagmap_get(&map, tag), &values[tag - 1]);
    }
    cr_assert_null(tern_tagmap_get(&map, 100000 - window));
    tern_tagmap_fini(&map);
}

//  A cumulative ACK of tag N takes every entry up to N.
Test(tagmap, list_up_to_a_tag) {
    tern_tagmap_t map = {0};
    int values[10];
    for (uint64_t tag = 1; tag <= 10; tag++) {
        tern_tagmap_insert(&map, tag, &values[tag - 1]);
    }
    size_t n = 0;
    void **list = tern_tagmap_list(&map, 4, &n);
    cr_assert_eq(n, 4);
    for (size_t i = 0; i < n; i++) {
        cr_assert_lt((int *)list[i] - values, 4);
    }
    free(list);
    list = tern_tagmap_list(&map, UINT64_MAX, &n);
    cr_assert_eq(n, 10);
    free(list);
    tern_tagmap_fini(&map);
}

//  Many live entries force rehashes; all survive them.
Test(tagmap, growth_keeps_entries) {
    tern_tagmap_t map = {0};
    static int values[5000];
    for (uint64_t tag = 1; tag <= 5000; tag++) {
        tern_tagmap_insert(&map, tag * 64, &values[tag - 1]); //  colliding low bits
    }
    cr_assert_eq(tern_tagmap_count(&map), 5000);
    for (uint64_t tag = 1; tag <= 5000; tag++) {
        cr_assert_eq(tern_tagmap_get(&map, tag * 64), &values[tag - 1]);
    }
    cr_assert_null(tern_tagmap_get(&map, 65));
    tern_tagmap_fini(&map);
}
