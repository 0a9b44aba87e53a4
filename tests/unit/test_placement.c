/*  test_placement.c - rendezvous placement (cluster/tern_placement.c):
    usage, determinism, and that a node joining or leaving moves only the
    partitions that must move (64 partitions, 5 nodes, R = 3). */
#include "tern_placement.h"
#include <criterion/criterion.h>
#include <string.h>

//  Usage: the controller computes where each partition lives.
Test(placement, usage) {
    uint32_t nodes[] = {1, 2, 3, 4, 5};
    tern_placement_t *plan = tern_placement_new(64, 3, nodes, 5);
    cr_assert_not_null(plan);
    cr_assert_eq(tern_placement_partitions(plan), 64u);
    size_t count;
    const uint32_t *replicas = tern_placement_get(plan, 7, &count);
    cr_assert_eq(count, 3u);
    //  The first replica is the preferred leader; all three differ.
    cr_assert_eq(tern_placement_leader(plan, 7), replicas[0]);
    cr_assert_neq(replicas[0], replicas[1]);
    cr_assert_neq(replicas[1], replicas[2]);
    cr_assert_neq(replicas[0], replicas[2]);
    //  The same answer for one partition without building a plan.
    uint32_t one[3];
    cr_assert_eq(tern_placement_replicas(7, nodes, 5, 3, one), 3u);
    cr_assert_arr_eq(one, replicas, sizeof one);
    cr_assert_null(tern_placement_get(plan, 64, &count));
    cr_assert_eq(count, 0u);
    cr_assert_eq(tern_placement_leader(plan, 64), TERN_NODE_NONE);
    tern_placement_destroy(&plan);
    cr_assert_null(plan);
    tern_placement_destroy(&plan);
}

//  The weight is the documented hash of (partition, node): fixed values.
Test(placement, weight_is_stable) {
    cr_assert_eq(tern_placement_weight(5, 3), 0x717929591b1762a1ULL);
    cr_assert_neq(tern_placement_weight(5, 3), tern_placement_weight(3, 5));
}

//  Replicas are ordered by weight, highest first, whatever the input order.
Test(placement, ordered_by_weight_and_deterministic) {
    uint32_t nodes[] = {10, 11, 12, 13, 14, 15, 16};
    uint32_t shuffled[] = {16, 12, 10, 15, 11, 14, 13};
    for (uint32_t p = 0; p < 64; p++) {
        uint32_t a[3], b[3];
        cr_assert_eq(tern_placement_replicas(p, nodes, 7, 3, a), 3u);
        cr_assert_eq(tern_placement_replicas(p, shuffled, 7, 3, b), 3u);
        cr_assert_arr_eq(a, b, sizeof a);
        cr_assert_gt(tern_placement_weight(p, a[0]), tern_placement_weight(p, a[1]));
        cr_assert_gt(tern_placement_weight(p, a[1]), tern_placement_weight(p, a[2]));
        //  No node outside the top 3 weighs more than the third.
        for (size_t i = 0; i < 7; i++) {
            if (nodes[i] != a[0] && nodes[i] != a[1] && nodes[i] != a[2]) {
                cr_assert_lt(tern_placement_weight(p, nodes[i]), tern_placement_weight(p, a[2]));
            }
        }
    }
}

//  Fewer nodes than R: every node, once. Duplicates and NONE are ignored.
Test(placement, few_nodes_duplicates_and_none) {
    uint32_t nodes[] = {4, 4, TERN_NODE_NONE, 9, 4};
    uint32_t out[3];
    cr_assert_eq(tern_placement_replicas(0, nodes, 5, 3, out), 2u);
    cr_assert(out[0] != out[1]);
    cr_assert(out[0] == 4 || out[0] == 9);
    cr_assert(out[1] == 4 || out[1] == 9);
    cr_assert_eq(tern_placement_replicas(0, nodes, 0, 3, out), 0u);
    cr_assert_eq(tern_placement_replicas(0, nodes, 5, 0, out), 0u);
    tern_placement_t *plan = tern_placement_new(8, 3, NULL, 0);
    cr_assert_eq(tern_placement_leader(plan, 0), TERN_NODE_NONE);
    tern_placement_destroy(&plan);
}

Test(placement, bad_arguments) {
    uint32_t nodes[] = {1, 2, 3};
    cr_assert_null(tern_placement_new(0, 3, nodes, 3));
    cr_assert_null(tern_placement_new(64, 0, nodes, 3));
    cr_assert_null(tern_placement_new(64, TERN_PLACEMENT_REPLICAS_MAX + 1, nodes, 3));
}

static bool s_holds(const tern_placement_t *plan, uint32_t p, uint32_t node) {
    size_t count;
    const uint32_t *row = tern_placement_get(plan, p, &count);
    for (size_t i = 0; i < count; i++) {
        if (row[i] == node) {
            return true;
        }
    }
    return false;
}

//  Removing node 3 of 5: exactly the partitions where 3 was a replica
//  change; there the others keep their order and the next node joins last.
Test(placement, removing_a_node_moves_only_its_partitions) {
    uint32_t five[] = {1, 2, 3, 4, 5};
    uint32_t four[] = {1, 2, 4, 5};
    tern_placement_t *before = tern_placement_new(64, 3, five, 5);
    tern_placement_t *after = tern_placement_new(64, 3, four, 4);
    uint32_t moved = 0;
    for (uint32_t p = 0; p < 64; p++) {
        cr_assert(!s_holds(after, p, 3));
        if (!s_holds(before, p, 3)) {
            cr_assert(tern_placement_same(before, after, p), "partition %u moved", p);
            continue;
        }
        moved++;
        cr_assert_not(tern_placement_same(before, after, p));
        size_t nb, na;
        const uint32_t *b = tern_placement_get(before, p, &nb);
        const uint32_t *a = tern_placement_get(after, p, &na);
        cr_assert_eq(na, 3u);
        size_t j = 0;
        for (size_t i = 0; i < nb; i++) {
            if (b[i] != 3) {
                cr_assert_eq(a[j++], b[i], "partition %u keeps its order", p);
            }
        }
        cr_assert_eq(j, 2u);
        cr_assert(!s_holds(before, p, a[2]), "the newcomer of partition %u is new", p);
    }
    //  3 of 5 nodes per partition: about 3/5 of 64 hold node 3.
    cr_assert(moved > 20 && moved < 60, "moved %u", moved);
    tern_placement_destroy(&before);
    tern_placement_destroy(&after);
}

//  Adding node 6 to 5: only partitions where 6 enters the top 3 change;
//  there 6 takes its rank and the former last replica drops out.
Test(placement, adding_a_node_moves_only_where_it_enters) {
    uint32_t five[] = {1, 2, 3, 4, 5};
    uint32_t six[] = {1, 2, 3, 4, 5, 6};
    tern_placement_t *before = tern_placement_new(64, 3, five, 5);
    tern_placement_t *after = tern_placement_new(64, 3, six, 6);
    uint32_t moved = 0;
    for (uint32_t p = 0; p < 64; p++) {
        if (!s_holds(after, p, 6)) {
            cr_assert(tern_placement_same(before, after, p), "partition %u moved", p);
            continue;
        }
        moved++;
        size_t nb, na;
        const uint32_t *b = tern_placement_get(before, p, &nb);
        const uint32_t *a = tern_placement_get(after, p, &na);
        //  Without 6, the new list is the old one minus its last entry.
        size_t j = 0;
        for (size_t i = 0; i < na; i++) {
            if (a[i] != 6) {
                cr_assert_eq(a[i], b[j++], "partition %u keeps its order", p);
            }
        }
        cr_assert_eq(j, 2u);
        cr_assert(!s_holds(after, p, b[2]));
    }
    //  About 3/6 of 64 partitions take the newcomer.
    cr_assert(moved > 16 && moved < 50, "moved %u", moved);
    tern_placement_destroy(&before);
    tern_placement_destroy(&after);
}

//  The load is even: with 5 nodes and R = 3 each node holds about 3/5 of
//  the 64 partitions and leads about 1/5.
Test(placement, spread) {
    uint32_t nodes[] = {1, 2, 3, 4, 5};
    tern_placement_t *plan = tern_placement_new(64, 3, nodes, 5);
    uint32_t held[6] = {0}, led[6] = {0};
    for (uint32_t p = 0; p < 64; p++) {
        size_t count;
        const uint32_t *row = tern_placement_get(plan, p, &count);
        for (size_t i = 0; i < count; i++) {
            held[row[i]]++;
        }
        led[row[0]]++;
    }
    for (int n = 1; n <= 5; n++) {
        cr_assert(held[n] >= 25 && held[n] <= 52, "node %d holds %u", n, held[n]);
        cr_assert(led[n] >= 5 && led[n] <= 22, "node %d leads %u", n, led[n]);
    }
    tern_placement_destroy(&plan);
}
