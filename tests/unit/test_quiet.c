/*  test_quiet.c - the quiet-topic flags route shares with the storer
    (broker/tern_quiet.c): set, clear, and ids past the table never quiet.
    The skip itself (the storer leaving appends out of NOTICEs, route
    clearing a flag when a group joins) runs in tests/integration/it_hops.c.
*/
#include "tern_quiet.h"
#include <criterion/criterion.h>
#include <stdlib.h>

//  Usage: route marks a topic with no group quiet; the storer, after its
//  commit and the fence, leaves that topic's appends out of the NOTICE;
//  route clears the flag when a subscription joins the topic.
Test(quiet, usage_mark_read_clear) {
    tern_quiet_t *quiet = calloc(1, sizeof *quiet); //  zeroed: nothing is quiet
    cr_assert_not_null(quiet);
    cr_assert_not(tern_quiet_get(quiet, 7));
    tern_quiet_set(quiet, 7, true); //  route: appends to topic 7, no group
    tern_quiet_fence();             //  storer: after its commit
    cr_assert(tern_quiet_get(quiet, 7));
    cr_assert_not(tern_quiet_get(quiet, 8));
    tern_quiet_set(quiet, 7, false); //  route: a subscription joined topic 7
    cr_assert_not(tern_quiet_get(quiet, 7));
    free(quiet);
}

Test(quiet, ids_past_the_table_are_never_quiet) {
    tern_quiet_t *quiet = calloc(1, sizeof *quiet);
    cr_assert_not_null(quiet);
    tern_quiet_set(quiet, TERN_QUIET_MAX - 1, true);
    cr_assert(tern_quiet_get(quiet, TERN_QUIET_MAX - 1));
    tern_quiet_set(quiet, TERN_QUIET_MAX, true);
    tern_quiet_set(quiet, UINT32_MAX, true);
    cr_assert_not(tern_quiet_get(quiet, TERN_QUIET_MAX));
    cr_assert_not(tern_quiet_get(quiet, UINT32_MAX));
    free(quiet);
}
