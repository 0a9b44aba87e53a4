/*  it_cluster_verify.c - `ternctl cluster verify` after a re-seeded replica
    took over, with dedup entries past their window.

    Real etcd and three real ternd nodes (cluster_harness.h) with a short
    dedup window (S_WINDOW). The soak of 2026-12-08 03:45 (docs/cluster.md,
    "But `ternctl cluster verify` failed in dc1") found a DC's replicas
    different for 30 s though every record agreed: each node stamps a dedup
    entry with its own commit time and sweeps it on its own clock, so a node
    that copied the log late keeps entries the others expired, and near the
    window's end every node sweeps at its own moment. Verify digested every
    record's dedup entry; it now compares those of the messages stored in
    the half window before ternctl's clock (tern_store_digest).
    - reseeded_leader_verifies_identical: records acknowledged by every
      replica; the window passes (the leader's entries swept); a follower is
      killed, its data dir emptied, started again: it copies the log and
      writes every entry anew. Verify must say identical (before the fix it
      differed until the copy's entries expired, a window later). Then the
      partition is handed over to that node, more records are published
      through it, and verify must again say identical: the entries of
      those young records are compared, and agree.
    - restarted_follower_at_the_window_edge: what the soak met. A follower
      restarted (data dir kept) sweeps at another moment of each second
      than the others; records published steadily for longer than a
      window reach its end while verify runs, so on every try one node has
      swept entries another still holds. Verify must say identical there
      (before the fix it differed on each of 9 tries in 9 s; how far the
      two sweeps are apart is down to when the restart happened, so a
      restart within a few ms of the others' phase would not show it).
*/
#include "cluster_harness.h"
#include "tern.h"
#include "tern_partition.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define S_NODES     3
#define S_PARTS     2
#define S_PT        0     //  the partition under test
#define S_WINDOW_MS 30000 //  --dedup-window
#define S_RECORDS   200   //  per round of publishes
#define S_WAIT_MS   60000
#define S_VERIFY_MS 5000  //  well inside the re-seeded copy's window
#define S_EDGE_MS   10000 //  the window of the edge test
#define S_STEADY_MS 15000 //  its steady publishing, longer than the window

TestSuite(cluster_verify, .fini = it_cluster_teardown, .timeout = 300);

//  A cluster of S_NODES with --dedup-window WINDOW_MS, started, S_PT's ISR
//  full; its leader in *LEADER.
static it_cluster_t *s_cluster(int window_ms, int *leader) {
    char window[16];
    snprintf(window, sizeof window, "%dms", window_ms);
    const char *extra[] = {"--dedup-window", window, NULL};
    it_cluster_t *cl = it_cluster_new(S_NODES, 1, S_PARTS, extra);
    cr_assert_not_null(cl);
    cr_assert(it_cluster_start(cl, 60000), "the cluster did not start");
    tern_partmap_record_t rec;
    cr_assert(it_cluster_wait_isr_full(cl, S_PT, S_WAIT_MS, &rec), "partition %d never in sync",
              S_PT);
    *leader = (int)rec.leader;
    return cl;
}

static void s_on_ack(const tern_pub_result_t *res, void *arg) {
    int *errors = arg;
    if (res->code != TERN_OK) {
        (*errors)++;
    }
}

//  S_RECORDS records to TOPIC through the cluster (node FIRST asked
//  first); every one acknowledged.
static void s_publish(it_cluster_t *cl, int first, const char *topic, const char *prefix) {
    tern_client_options_t options;
    tern_client_options_init(&options);
    options.window = 64;
    tern_client_t *client = it_cluster_client(cl, first, &options);
    it_cluster_publish_until_acked(client, topic);
    int errors = 0;
    it_pub_async(client, topic, prefix, S_RECORDS, s_on_ack, &errors);
    cr_assert_eq(tern_flush(client, 60000), TERN_OK);
    cr_assert_eq(errors, 0, "%d publishes failed", errors);
    tern_client_destroy(&client);
}

Test(cluster_verify, reseeded_leader_verifies_identical) {
    int leader = 0;
    it_cluster_t *cl = s_cluster(S_WINDOW_MS, &leader);
    tern_partmap_record_t rec;
    int reseeded = it_cluster_follower(cl, S_PT, leader);
    char topic[64];
    it_cluster_topic_for(cl, S_PT, "verify", topic, sizeof topic);
    s_publish(cl, leader, topic, "before-");
    cr_assert(it_cluster_verified(cl, leader, S_WAIT_MS), "the replicas differ");

    //  The window passes: every node sweeps (each second) its entries of
    //  those records.
    it_sleep_ms(S_WINDOW_MS + 3000);
    it_cluster_kill_out(cl, reseeded, S_PT, S_WAIT_MS);
    it_broker_t *node = cl->node[reseeded];
    cr_assert_eq(test_dir_remove(node->data_dir), 0);
    cr_assert_eq(mkdir(node->data_dir, 0700), 0);
    cr_assert(it_cluster_start_node(cl, reseeded));
    cr_assert(it_cluster_wait_isr_full(cl, S_PT, S_WAIT_MS, &rec), "node %d did not rejoin",
              reseeded);
    cr_assert(it_cluster_verified(cl, leader, S_VERIFY_MS),
              "the re-seeded copy differs (its dedup entries are younger)");

    it_cluster_handover(cl, S_PT, reseeded, S_WAIT_MS);
    cr_assert(it_cluster_wait_isr_full(cl, S_PT, S_WAIT_MS, &rec), "partition %d not in sync",
              S_PT);
    s_publish(cl, reseeded, topic, "after-");
    cr_assert(it_cluster_verified(cl, reseeded, S_VERIFY_MS),
              "the replicas differ after the move to the re-seeded node");
    it_cluster_destroy(&cl);
}

Test(cluster_verify, restarted_follower_at_the_window_edge) {
    int leader = 0;
    it_cluster_t *cl = s_cluster(S_EDGE_MS, &leader);
    int follower = it_cluster_follower(cl, S_PT, leader);
    it_cluster_kill_out(cl, follower, S_PT, S_WAIT_MS);
    it_sleep_ms(1500);
    cr_assert(it_cluster_start_node(cl, follower));
    tern_partmap_record_t rec;
    cr_assert(it_cluster_wait_isr_full(cl, S_PT, S_WAIT_MS, &rec), "node %d did not rejoin",
              follower);
    char topic[64];
    it_cluster_topic_for(cl, S_PT, "edge", topic, sizeof topic);
    tern_client_t *client = it_cluster_client(cl, leader, NULL);
    it_cluster_publish_until_acked(client, topic);
    //  Two records every 100 ms, each pair acknowledged, for S_STEADY_MS.
    int errors = 0;
    int64_t start = it_now_ms();
    while (it_now_ms() - start < S_STEADY_MS) {
        it_pub_async(client, topic, "steady-", 2, s_on_ack, &errors);
        cr_assert_eq(tern_flush(client, 10000), TERN_OK);
        it_sleep_ms(100);
    }
    cr_assert_eq(errors, 0, "%d publishes failed", errors);
    tern_client_destroy(&client);
    //  The first records' entries are past the window now, the last ones
    //  not yet: the edge runs through them for the next few seconds.
    cr_assert(it_cluster_verified(cl, leader, 1000), "the replicas differ at the window's edge");
    it_cluster_destroy(&cl);
}
