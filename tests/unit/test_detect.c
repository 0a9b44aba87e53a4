/*  test_detect.c - the lease timing rules of broker/tern_cluster_detect.c:
    which renewals a node trusts, what it asks etcd for, what it announces. */
#include "tern_alloc.h"
#include "tern_cluster_priv.h"
#include <criterion/criterion.h>
#include <stdlib.h>

//  A cluster object with only what the rules read: cluster/lease LEASE_MS.
static tern_cluster_t *s_cluster(int64_t lease_ms) {
    tern_cluster_t *self = tern_alloc(sizeof *self);
    self->lease_ms = lease_ms;
    return self;
}

static int64_t s_until(tern_cluster_t *self) {
    return atomic_load(&self->lease_until);
}

Test(detect, usage_renewals_in_time_move_the_fence) {
    tern_cluster_t *c = s_cluster(1000);
    tern_cluster_renewed(c, 100, 105, true); //  the grant
    cr_assert_eq(s_until(c), 100 + 750, "fence: send time + 3/4 of cluster/lease");
    tern_cluster_renewed(c, 433, 440, false);
    cr_assert_eq(s_until(c), 433 + 750);
    //  etcd answered 990 ms after the previous send: still in time.
    tern_cluster_renewed(c, 1400, 1423, false);
    cr_assert_eq(s_until(c), 1400 + 750);
    cr_assert_eq(c->confirm_at_ms, 0);
    free(c);
}

//  A renewal etcd answered a lease or more after the previous one was sent
//  may have raced a revoke: the fence stays, and only a renewal sent 3/4
//  lease after it, answered in time, lifts it.
Test(detect, late_renewal_needs_a_confirming_one) {
    tern_cluster_t *c = s_cluster(1000);
    tern_cluster_renewed(c, 0, 5, true);
    tern_cluster_renewed(c, 333, 340, false);
    cr_assert_eq(s_until(c), 1083);
    //  etcd silent; the next answer comes 1200 ms after the last send.
    tern_cluster_renewed(c, 1500, 1533, false);
    cr_assert_eq(s_until(c), 1083, "a late renewal moved the fence");
    cr_assert_eq(c->confirm_at_ms, 1533 + 750);
    cr_assert_eq(c->next_keepalive_ms, 1533 + 750, "the confirming renewal is scheduled");
    //  One sent sooner (another caller ticked the keepalive) confirms nothing.
    tern_cluster_renewed(c, 1900, 1910, false);
    cr_assert_eq(s_until(c), 1083);
    //  The confirming renewal, answered in time: trusted.
    tern_cluster_renewed(c, 2283, 2290, false);
    cr_assert_eq(s_until(c), 2283 + 750);
    cr_assert_eq(c->confirm_at_ms, 0);
    //  A confirming renewal that is itself late (answered a lease after
    //  the late one was sent) waits again.
    tern_cluster_renewed(c, 4000, 4010, false);
    cr_assert_eq(s_until(c), 2283 + 750);
    tern_cluster_renewed(c, 4760, 5100, false);
    cr_assert_eq(s_until(c), 2283 + 750);
    cr_assert_eq(c->confirm_at_ms, 5100 + 750);
    //  Its successor, sent 3/4 lease after that slow answer, is answered
    //  1095 ms after the slow one was sent: late too. Two quick round trips
    //  in a row (under a quarter lease together) end it.
    tern_cluster_renewed(c, 5850, 5855, false);
    cr_assert_eq(s_until(c), 2283 + 750);
    tern_cluster_renewed(c, 6605, 6610, false);
    cr_assert_eq(s_until(c), 6605 + 750);
    tern_cluster_stats_t stats;
    tern_cluster_stats(c, &stats);
    cr_assert_eq(stats.late_renewals, 4);
    free(c);
}

Test(detect, grant_ttl_and_announced_lease) {
    tern_cluster_t *c = s_cluster(1000);
    cr_assert_eq(tern_cluster_grant_ttl_s(c), 2);
    c->lease_ms = 1500;
    cr_assert_eq(tern_cluster_grant_ttl_s(c), 3);
    c->lease_ms = 2000;
    cr_assert_eq(tern_cluster_grant_ttl_s(c), 3);
    free(c);
    cr_assert_eq(tern_cluster_record_lease_ms("id=1 endpoint=tcp://a:1 lease=1000"), 1000);
    cr_assert_eq(tern_cluster_record_lease_ms("lease=2500 id=1"), 2500);
    cr_assert_eq(tern_cluster_record_lease_ms("id=1 endpoint=tcp://a:1 dc=dc1"), 0, "older node");
    cr_assert_eq(tern_cluster_record_lease_ms("id=1 mylease=1000"), 0);
    cr_assert_eq(tern_cluster_record_lease_ms("id=1 lease=-5"), 0);
    cr_assert_eq(tern_cluster_record_lease_ms("id=1 lease=x"), 0);
    cr_assert_eq(tern_cluster_record_lease_ms(""), 0);
}
