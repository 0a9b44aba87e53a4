/*  test_route_cluster.c - route's view of a topic's leadership in a cluster
    (broker/tern_route_cluster.c, r_cluster_change): which changes between
    two looks at the view make route drop its in-memory group state and
    adopt the stored (replicated) one. */
#include "tern_route_priv.h"
#include <criterion/criterion.h>

Test(route_cluster, usage_leadership_changes) {
    cr_assert_eq(r_cluster_change(false, 0, true, 7), R_LEAD_START);
    cr_assert_eq(r_cluster_change(true, 7, true, 7), R_LEAD_SAME);
    cr_assert_eq(r_cluster_change(true, 7, false, 9), R_LEAD_STOP);
    cr_assert_eq(r_cluster_change(false, 9, false, 12), R_LEAD_SAME, "another node's epochs");
}

//  A -> B -> A between two looks: route only sees that it still leads, in
//  a later epoch. What it holds from the first leadership is stale (B
//  delivered and acked meanwhile): a stop and a start, never "same".
Test(route_cluster, new_epoch_while_led_is_a_restart) {
    cr_assert_eq(r_cluster_change(true, 7, true, 12), R_LEAD_RESTART);
    cr_assert_eq(r_cluster_change(true, 12, true, 7), R_LEAD_RESTART, "any change, not a rise");
}
