/*  it_cluster_commit_fail.c - a leader whose commit fails after it shipped
    the commit's records (broker/tern_storer.c, s_commit_shipped).

    With durability fsync a cluster leader hands a batch's records to crepl,
    which ships them to the followers, before its own commit. If that commit
    then fails, the followers may hold records the leader lacks and its next
    commit would reuse their seqs: the leader must not go on leading. It
    exits; an in-sync follower takes over; nothing acknowledged is lost; back
    with room on its disk, the old leader rejoins and the replicas are
    identical (`ternctl cluster verify`).

    The failing commit is a real one: the leader's data dir is a small tmpfs
    (the test mounts it; skipped where it cannot), so LMDB's page writes at
    commit run out of space (ENOSPC) while the transaction itself, built in
    memory, applied fine. etcd and three nodes (cluster_harness.h).
*/
#include "cluster_harness.h"
#include "tern.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_PT       0            //  the partition the test publishes to
#define S_MSGS     2000         //  publishes at most (the tmpfs fills long before)
#define S_SIZE     8192         //  bytes each
#define S_WAIT_MS  30000        //  waits for leaders, ISR, exits
#define S_PRODUCER "commitfail" //  one producer id, so acked messages can be resent

static const char *const s_flags[] = {"--lease", "1s", "--ack-timeout", "10s", NULL};

static char
    s_mnt[sizeof(((it_broker_t *)0)->data_dir)]; //  the tmpfs mounted by the test ("" when none)

static void s_fini(void) {
    it_cluster_teardown(); //  kills the nodes first: nothing keeps the tmpfs busy
    if (s_mnt[0]) {
        umount2(s_mnt, MNT_DETACH);
        s_mnt[0] = '\0';
    }
}

TestSuite(cluster_commit_fail, .fini = s_fini, .timeout = 300);

//  Moves node I's data dir (it is stopped) onto a tmpfs of SIZE ("2m").
//  False if it cannot (not root, no tmpfs).
static bool s_to_tmpfs(it_cluster_t *c, int i, const char *size) {
    const char *dir = c->node[i]->data_dir;
    char old[sizeof s_mnt + 8], cmd[4 * sizeof s_mnt];
    snprintf(old, sizeof old, "%s.old", dir);
    if (rename(dir, old) != 0 || mkdir(dir, 0700) != 0) {
        return false;
    }
    char opts[32];
    snprintf(opts, sizeof opts, "size=%s", size);
    if (mount("tmpfs", dir, "tmpfs", 0, opts) != 0) {
        fprintf(stderr, "it_cluster_commit_fail: mount tmpfs: %s\n", strerror(errno));
        rmdir(dir);
        rename(old, dir);
        return false;
    }
    snprintf(s_mnt, sizeof s_mnt, "%s", dir);
    snprintf(cmd, sizeof cmd, "cp -a '%s'/. '%s'/ && rm -rf '%s'", old, dir, old);
    return system(cmd) == 0;
}

static tern_client_t *s_client(it_cluster_t *c) {
    tern_client_options_t options;
    tern_client_options_init(&options);
    options.producer_id = S_PRODUCER;
    return it_cluster_client(c, -1, &options);
}

//  Publishes producer_seq PSEQ of TOPIC (S_SIZE bytes) within TIMEOUT_MS.
static tern_err_t s_publish(tern_client_t *client, const char *topic, uint64_t pseq, int timeout_ms,
                            tern_pub_result_t *res) {
    static char payload[S_SIZE];
    memset(payload, 'a' + (int)(pseq % 26), sizeof payload);
    tern_pub_options_t msg;
    tern_pub_options_init(&msg);
    msg.topic = topic;
    msg.payload = payload;
    msg.size = sizeof payload;
    msg.producer_seq = pseq;
    return tern_publish(client, &msg, timeout_ms, res);
}

//  Waits until node I's process is gone (it exited by itself).
static bool s_wait_exit(it_cluster_t *c, int i) {
    for (int waited = 0; waited < S_WAIT_MS; waited += 50) {
        if (!it_cluster_node_running(c, i)) {
            return true;
        }
        it_sleep_ms(50);
    }
    return false;
}

Test(cluster_commit_fail, leader_exits_and_nothing_acked_is_lost) {
    it_cluster_t *c = it_cluster_new(3, 1, 4, s_flags);
    cr_assert_not_null(c);
    cr_assert(it_cluster_start(c, S_WAIT_MS), "the cluster did not start");
    tern_partmap_record_t rec;
    cr_assert(it_cluster_wait_isr_full(c, S_PT, S_WAIT_MS, &rec), "ISR not full");
    int leader = it_cluster_leader(c, S_PT);
    cr_assert_geq(leader, 0);

    //  The leader's store onto a small disk, then its leadership back.
    it_cluster_kill_node(c, leader);
    if (!s_to_tmpfs(c, leader, "3m")) {
        cr_skip_test("cannot mount a tmpfs here (needs root)");
    }
    cr_assert(it_cluster_start_node(c, leader), "node %d did not restart", leader);
    cr_assert(it_cluster_wait_isr_full(c, S_PT, S_WAIT_MS, &rec), "ISR not full after restart");
    if (it_cluster_leader(c, S_PT) != leader) {
        char pt[16], to[16];
        snprintf(pt, sizeof pt, "%d", S_PT);
        snprintf(to, sizeof to, "%d", leader);
        it_result_t r;
        int other = (leader + 1) % 3;
        cr_assert_eq(it_ctl(&r, c->node[other], 10000, "cluster", "handover", pt, "--to", to, NULL),
                     0, "%s", r.err);
        cr_assert(it_cluster_wait_leader(c, S_PT, -1, 0, S_WAIT_MS, &rec));
        for (int waited = 0; it_cluster_leader(c, S_PT) != leader && waited < S_WAIT_MS;
             waited += 50) {
            it_sleep_ms(50);
        }
    }
    cr_assert_eq(it_cluster_leader(c, S_PT), leader, "node %d does not lead again", leader);

    //  Publish until the leader's disk is full: its commit fails after the
    //  records went to the followers, and it exits.
    char topic[64];
    it_cluster_topic_for(c, S_PT, "full", topic, sizeof topic);
    tern_client_t *client = s_client(c);
    uint64_t *seq = calloc(S_MSGS + 1, sizeof *seq); //  acked seq per producer_seq
    uint64_t *id = calloc(S_MSGS + 1, sizeof *id);   //  acked msg_id per producer_seq
    uint64_t pseq = 1;
    for (; pseq <= S_MSGS && it_cluster_node_running(c, leader); pseq++) {
        tern_pub_result_t res;
        if (s_publish(client, topic, pseq, 5000, &res) == TERN_OK) {
            seq[pseq] = res.seq;
            id[pseq] = res.msg_id;
        }
    }
    cr_assert_lt(pseq, S_MSGS, "node %d's disk never filled", leader);
    cr_assert(s_wait_exit(c, leader), "node %d went on after its commit failed", leader);
    cr_assert(it_cluster_wait_leader(c, S_PT, leader, 0, S_WAIT_MS, &rec), "no new leader");

    //  Every acknowledged message is on the new leader: a resend with its
    //  producer_seq is a duplicate of it (same seq and msg_id).
    uint64_t acked = 0;
    for (uint64_t k = 1; k < pseq; k++) {
        if (!seq[k]) {
            continue;
        }
        tern_pub_result_t res;
        cr_assert_eq(s_publish(client, topic, k, 20000, &res), TERN_OK, "resend %lu: %s",
                     (unsigned long)k, tern_last_reason());
        cr_assert(res.duplicate, "acked producer_seq %lu was lost", (unsigned long)k);
        cr_assert_eq(res.seq, seq[k], "producer_seq %lu moved", (unsigned long)k);
        cr_assert_eq(res.msg_id, id[k], "producer_seq %lu changed its msg_id", (unsigned long)k);
        acked++;
    }
    cr_assert_gt(acked, 0, "nothing was acknowledged before the disk filled");
    tern_client_destroy(&client);

    //  With room again, the old leader rejoins as a follower of the new
    //  log, and every replica holds the same.
    char cmd[2 * sizeof s_mnt];
    snprintf(cmd, sizeof cmd, "mount -o remount,size=256m '%s'", s_mnt);
    cr_assert_eq(system(cmd), 0);
    cr_assert(it_cluster_start_node(c, leader), "node %d did not restart", leader);
    cr_assert(it_cluster_wait_isr_full(c, S_PT, S_WAIT_MS, &rec), "node %d did not rejoin", leader);
    //  The last positions may still be on their way.
    cr_assert(it_cluster_verified(c, (int)rec.leader, 10000), "replicas differ");
    free(seq);
    free(id);
    it_cluster_kill_node(c, leader);
}
