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

//  Review findings 1-3 (review18): two nodes deciding on one restored
//  record, a restore whose revisions were bumped past ours, and a record
//  the restore lost.

//  Two writers (nodes 1 and 0) decide on the same restored record: their
//  vers differ, so no node can take the other's record for its own.
Test(view_restore, ver_collision_two_leaders_same_epoch) {
    tern_cluster_t *a = s_cluster();
    a->self_id = 1; //  two writers: the review's test had both at node 0
    s_put(a, "partition=0 leader=1 epoch=10 ver=10 replicas=1,2,0 isr=1,2,0", 10);
    tern_partmap_record_t rec;
    cr_assert(tern_cluster_record(a, 0, &rec));
    rec.leader = 0;
    uint64_t va = tern_cluster_next_ver(a, &rec);
    tern_cluster_t *y = s_cluster();
    s_put(y, "partition=0 leader=1 epoch=10 ver=10 replicas=1,2,0 isr=1,2,0", 10);
    tern_partmap_record_t ry;
    cr_assert(tern_cluster_record(y, 0, &ry));
    ry.leader = 2;
    uint64_t vy = tern_cluster_next_ver(y, &ry);
    cr_expect_neq(va, vy, "same ver for two different leader changes");
    char t[200];
    snprintf(t, sizeof t, "partition=0 leader=2 epoch=%lu ver=%lu replicas=1,2,0 isr=2,0",
             (unsigned long)vy, (unsigned long)vy);
    s_put(y, t, 20);
    s_read_at(y, 12);
    snprintf(t, sizeof t, "partition=0 leader=0 epoch=%lu ver=%lu replicas=1,2,0 isr=0",
             (unsigned long)va, (unsigned long)va);
    s_put(y, t, 12);
    cr_assert(tern_cluster_record(y, 0, &ry));
    cr_expect_eq(ry.leader, 0u, "Y keeps leader %u epoch %lu while etcd says leader 0 epoch %lu",
                 ry.leader, (unsigned long)ry.epoch, (unsigned long)va);
    cr_expect(y->republish_due, "and does not even write it back");
    tern_cluster_destroy(&a);
    tern_cluster_destroy(&y);
}

//  One ver, two records (the same node id deciding again with a new
//  identity, or an older node's ver = mod_revision): a conflict. Both
//  nodes pick the same winner and write it in a new ver and epoch.
Test(view_restore, same_ver_different_records_is_a_conflict) {
    const char *two = "partition=0 leader=2 epoch=1024 ver=1024 replicas=1,2,0 isr=2,0";
    const char *zero = "partition=0 leader=0 epoch=1024 ver=1024 replicas=1,2,0 isr=0";
    tern_cluster_t *y = s_cluster();
    s_put(y, two, 20);
    s_read_at(y, 12);
    s_put(y, zero, 12);
    tern_cluster_t *z = s_cluster();
    s_put(z, zero, 12);
    s_put(z, two, 20);
    tern_partmap_record_t ry, rz;
    cr_assert(tern_cluster_record(y, 0, &ry));
    cr_assert(tern_cluster_record(z, 0, &rz));
    cr_assert(tern_partmap_record_same(&ry, &rz), "the two nodes picked different winners");
    cr_assert_eq(ry.leader, 0u);
    cr_assert(y->conflict[0] && y->republish_due);
    cr_assert(z->conflict[0] && z->republish_due);
    //  The write-back fences both leaders of epoch 1024.
    cr_assert_gt(tern_cluster_next_ver(y, &ry), 1024u);
    //  Someone's write of a newer ver settles it.
    s_put(y, "partition=0 leader=0 epoch=2048 ver=2048 replicas=1,2,0 isr=0", 13);
    cr_assert_not(y->conflict[0]);
    //  The same record written back in a higher epoch is no conflict.
    s_put(z, "partition=0 leader=0 epoch=1030 ver=1024 replicas=1,2,0 isr=0", 21);
    cr_assert(tern_cluster_record(z, 0, &rz));
    cr_assert_eq(rz.epoch, 1030u);
    tern_cluster_destroy(&y);
    tern_cluster_destroy(&z);
}

//  Writers' vers: unique per node id, above every ver, epoch and revision.
Test(view_restore, vers_name_their_writer) {
    cr_assert_eq(tern_cluster_ver_after(3, 10), 1024u + 3);
    cr_assert_eq(tern_cluster_ver_after(3, 1024 + 3), 2048u + 3);
    cr_assert_eq(tern_cluster_ver_after(1023, 5000), 5120u + 1023);
    cr_assert_neq(tern_cluster_ver_after(0, 77), tern_cluster_ver_after(1, 77));
    //  Above whichever of ver, epoch and revision is highest.
    cr_assert_eq(tern_cluster_ver_above(3, 2000, 10, 5), tern_cluster_ver_after(3, 2000));
    cr_assert_eq(tern_cluster_ver_above(3, 10, 2000, 5), tern_cluster_ver_after(3, 2000));
    cr_assert_eq(tern_cluster_ver_above(3, 10, 5, 2000), tern_cluster_ver_after(3, 2000));
    cr_assert_eq(tern_cluster_ver_above(3, 0, 0, 0), tern_cluster_ver_after(3, 0));
}

//  etcd restored with --bump-revision: its revision never goes back, but
//  the restored key's mod_revision is below what we hold.
Test(view_restore, bump_revision_key_goes_back) {
    tern_cluster_t *c = s_cluster();
    s_put(c, "partition=0 leader=1 epoch=10 ver=10 replicas=1,2,0 isr=1,2,0", 10);
    s_put(c, "partition=0 leader=2 epoch=12 ver=12 replicas=1,2,0 isr=2,0", 12);
    s_read_at(c, 1000000012);
    cr_expect(!c->went_back);
    s_put(c, "partition=0 leader=1 epoch=10 ver=10 replicas=1,2,0 isr=1,2,0", 10);
    cr_expect(c->republish_due, "restored older record not noticed");
    cr_expect_eq(c->mod_revision[0], 10, "CAS compares with %ld, etcd's key is at 10",
                 (long)c->mod_revision[0]);
    cr_expect(c->went_back && tern_cluster_holding(c), "no hold after the restore");
    tern_partmap_record_t rec;
    cr_assert(tern_cluster_record(c, 0, &rec));
    cr_expect_eq(rec.leader, 2u);
    tern_cluster_destroy(&c);
}

//  A record the restored etcd lacks is written back.
Test(view_restore, record_absent_after_restore) {
    tern_cluster_t *c = s_cluster();
    s_put(c, "partition=0 leader=2 epoch=12 ver=12 replicas=1,2,0 isr=2,0", 12);
    s_read_at(c, 5);
    cr_assert(c->went_back);
    cr_expect(c->republish_due, "absent record never due for write-back");
    cr_expect_eq(c->etcd_ver[0], 0u, "etcd_ver stale at %lu: republish would skip it",
                 (unsigned long)c->etcd_ver[0]);
    //  The view file takes the lower revision (finding 6), or every
    //  restart would see etcd go back again and hold.
    cr_expect(c->view_dirty);
    tern_cluster_destroy(&c);
}
