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
    cr_assert_not(c->relet_due);
    free(c);
}

//  A renewal etcd answered a lease or more after the previous one was sent
//  may have raced a revoke decided before it, which can still land: the
//  fence stays, that lease is never trusted again (not even by renewals
//  answered in time), and only a new lease's grant (tern_cluster_relet,
//  once our keys moved onto it) lifts it.
Test(detect, late_renewal_is_never_trusted_again) {
    tern_cluster_t *c = s_cluster(1000);
    tern_cluster_renewed(c, 0, 5, true);
    tern_cluster_renewed(c, 333, 340, false);
    cr_assert_eq(s_until(c), 1083);
    cr_assert_not(c->relet_due);
    //  etcd silent; the next answer comes 1200 ms after the last send.
    tern_cluster_renewed(c, 1500, 1533, false);
    cr_assert_eq(s_until(c), 1083, "a late renewal moved the fence");
    cr_assert(c->relet_due, "the keys must move to a new lease");
    //  Renewals of the same lease answered in time confirm nothing: a
    //  revoke decided before the late one may land after any of them.
    tern_cluster_renewed(c, 1900, 1910, false);
    tern_cluster_renewed(c, 2600, 2610, false);
    cr_assert_eq(s_until(c), 1083);
    cr_assert(c->relet_due);
    //  The new lease (its grant, once the keys are on it): trusted.
    tern_cluster_renewed(c, 2700, 2720, true);
    cr_assert_eq(s_until(c), 2700 + 750);
    cr_assert_not(c->relet_due);
    tern_cluster_renewed(c, 3033, 3040, false);
    cr_assert_eq(s_until(c), 3033 + 750);
    //  A late renewal of the new lease starts it over.
    tern_cluster_renewed(c, 4200, 4210, false);
    cr_assert_eq(s_until(c), 3033 + 750);
    cr_assert(c->relet_due);
    tern_cluster_stats_t stats;
    tern_cluster_stats(c, &stats);
    cr_assert_eq(stats.late_renewals, 2);
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
