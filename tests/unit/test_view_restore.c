/*  test_view_restore.c - what a node's view does when etcd goes back
    (restored from a backup): broker/tern_cluster_restore.c and the order
    rules of tern_cluster.c's records (docs/cluster.md, "etcd backup and
    restore"). No etcd: records are applied as the watch or a read would. */
#include "tern_alloc.h"
#include "tern_cluster_priv.h"
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

//  A cluster object of two partitions with only what the view needs.
static tern_cluster_t *s_cluster(void) {
    tern_cluster_t *self = tern_alloc(sizeof *self);
    self->wake[0] = self->wake[1] = -1;
    pthread_mutex_init(&self->lock, NULL);
    self->lease_ms = 1000;
    snprintf(self->prefix, sizeof self->prefix, "/tern/t");
    tern_cluster_size(self, 2);
    return self;
}

//  Partition 0's record TEXT as etcd gives it at MOD_REVISION.
static void s_put(tern_cluster_t *self, const char *text, int64_t mod_revision) {
    tern_etcd_kv_t kv = {.key = "/tern/t/partitions/0",
                         .value = (char *)text,
                         .value_size = strlen(text),
                         .mod_revision = mod_revision};
    tern_cluster_apply_kv(self, &kv, false);
}

//  A read answered at REVISION (etcd's header).
static void s_read_at(tern_cluster_t *self, int64_t revision) {
    pthread_mutex_lock(&self->lock);
    tern_cluster_check_revision(self, revision);
    pthread_mutex_unlock(&self->lock);
}

Test(view_restore, usage_a_restored_record_never_replaces_a_newer_one) {
    tern_cluster_t *c = s_cluster();
    s_put(c, "partition=0 leader=1 epoch=10 ver=10 replicas=1,2,0 isr=1,2,0", 10);
    //  After the snapshot: node 1 fails, node 2 leads without it.
    s_put(c, "partition=0 leader=2 epoch=12 ver=12 replicas=1,2,0 isr=2,0", 12);
    tern_partmap_record_t rec;
    cr_assert(tern_cluster_record(c, 0, &rec));
    cr_assert_eq(rec.leader, 2u);
    //  etcd restored from the snapshot: its revision went back.
    s_read_at(c, 11);
    cr_assert(c->went_back);
    cr_assert(tern_cluster_holding(c), "no decision right after etcd went back");
    cr_assert_eq(c->mod_revision[0], 0, "the record's revision bookkeeping starts again");
    uint64_t version = tern_cluster_version(c);
    s_put(c, "partition=0 leader=1 epoch=10 ver=10 replicas=1,2,0 isr=1,2,0", 10);
    cr_assert(tern_cluster_record(c, 0, &rec));
    cr_assert_eq(rec.leader, 2u, "the view took the restored record");
    cr_assert_eq(rec.epoch, 12u);
    cr_assert_eq(rec.nisr, 2u);
    cr_assert_eq(tern_cluster_version(c), version, "the view changed");
    cr_assert(c->republish_due, "the newer record is not written back");
    cr_assert_eq(c->etcd_ver[0], 10u);
    cr_assert_eq(c->mod_revision[0], 10, "the CAS must compare with etcd's revision");
    //  Any write from now on is above both, epochs too.
    cr_assert_gt(tern_cluster_next_ver(c, &rec), 12u);
    //  Written back as it was: the same record, nothing changes.
    s_put(c, "partition=0 leader=2 epoch=12 ver=12 replicas=1,2,0 isr=2,0", 12);
    cr_assert_eq(tern_cluster_version(c), version);
    cr_assert_eq(c->etcd_ver[0], 12u);
    tern_cluster_destroy(&c);
}

//  A record of an older node (no ver) is ordered by its mod_revision; one
//  written back in a higher epoch (someone decided on the restored record)
//  replaces the same ver.
Test(view_restore, ver_defaults_and_higher_epoch_of_a_write_back) {
    tern_cluster_t *c = s_cluster();
    s_put(c, "partition=0 leader=1 replicas=1,2,0 isr=1,2,0", 40);
    tern_partmap_record_t rec;
    cr_assert(tern_cluster_record(c, 0, &rec));
    cr_assert_eq(rec.ver, 40u);
    cr_assert_eq(rec.epoch, 40u);
    s_put(c, "partition=0 leader=1 epoch=45 ver=40 replicas=1,2,0 isr=1,2,0", 46);
    cr_assert(tern_cluster_record(c, 0, &rec));
    cr_assert_eq(rec.epoch, 45u);
    //  A lower ver at a higher revision (etcd went back, unseen): kept out.
    s_put(c, "partition=0 leader=2 epoch=39 ver=39 replicas=1,2,0 isr=2", 50);
    cr_assert(tern_cluster_record(c, 0, &rec));
    cr_assert_eq(rec.leader, 1u);
    cr_assert(c->republish_due);
    //  next_ver is above the epoch even when the epoch is above the ver.
    cr_assert_gt(tern_cluster_next_ver(c, &rec), 45u);
    tern_cluster_destroy(&c);
}

//  Reads at or above the highest revision seen are no restore.
Test(view_restore, revisions_that_grow_are_no_restore) {
    tern_cluster_t *c = s_cluster();
    s_read_at(c, 5);
    s_put(c, "partition=0 leader=1 ver=7 epoch=7 replicas=1 isr=1", 7);
    s_read_at(c, 7);
    s_read_at(c, 9);
    cr_assert_not(c->went_back);
    cr_assert_not(tern_cluster_holding(c));
    cr_assert_eq(c->max_revision, 9);
    s_read_at(c, 8);
    cr_assert(c->went_back);
    tern_cluster_destroy(&c);
}
