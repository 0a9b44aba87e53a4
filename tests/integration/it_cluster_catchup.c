/*  it_cluster_catchup.c - a follower's catch-up in bounded rounds.

    Real etcd and three real ternd nodes (cluster_harness.h), started with
    TERN_CREPL_CHUNK_RECORDS=S_CHUNK (the test knob that lowers the leader's
    records per SYNC answer, C_CHUNK_RECORDS), so a few hundred records take
    several rounds. The rounds are counted from the follower's log (one
    "catch-up round N" line per answer that stopped short), their sizes
    from the leader's ("sync round sent N records"): the first is the
    bound, each consecutive one twice the last, up to four times the bound
    (so a partition that takes more than one bound per round still
    finishes; without the growth every round is the bound, and the test
    fails on the largest round).
    - restarted_follower_catches_up_in_rounds: a follower of S_PT is killed,
      the leader takes S_TOPICS x S_PER_TOPIC records (40 + 80 + 160 +
      160 and more, over several topics so that topics past one answer's budget
      come in a later one), the follower is restarted: it needs at least
      three rounds, the ISR is full again and `ternctl cluster verify` says
      the copies are identical.
    - reseeded_follower_catches_up_in_rounds: the same records acknowledged
      by every replica, then a follower is killed and its data dir emptied:
      restarted, it copies everything in rounds, rejoins the ISR, and verify
      is identical.
    Without the bound the whole catch-up goes in one answer: no round line.
*/
#include "cluster_harness.h"
#include "tern.h"

#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define S_NODES     3
#define S_PARTS     2
#define S_PT        1    //  the partition under test
#define S_CHUNK     "40" //  TERN_CREPL_CHUNK_RECORDS
#define S_TOPICS    3    //  topics of S_PT written
#define S_PER_TOPIC 160  //  records each: 480: short answers of 40, 80, 160, 160, then 40
#define S_WAIT_MS   60000

TestSuite(cluster_catchup, .fini = it_cluster_teardown, .timeout = 300);

static it_cluster_t *s_cluster(void) {
    setenv("TERN_CREPL_CHUNK_RECORDS", S_CHUNK, 1); //  inherited by every ternd
    it_cluster_t *cl = it_cluster_new(S_NODES, 1, S_PARTS, NULL);
    cr_assert_not_null(cl);
    cr_assert(it_cluster_start(cl, 60000), "the cluster did not start");
    return cl;
}

//  A follower of S_PT (the ISR full), its leader in *LEADER.
static int s_follower(it_cluster_t *cl, int *leader) {
    tern_partmap_record_t rec;
    cr_assert(it_cluster_wait_isr_full(cl, S_PT, S_WAIT_MS, &rec), "partition %d never in sync",
              S_PT);
    *leader = (int)rec.leader;
    return it_cluster_follower(cl, S_PT, *leader);
}

static void s_on_ack(const tern_pub_result_t *res, void *arg) {
    int *errors = arg;
    if (res->code != TERN_OK) {
        (*errors)++;
    }
}

//  S_PER_TOPIC records to each of S_TOPICS topics of S_PT, through LEADER;
//  every one acknowledged.
static void s_publish(it_cluster_t *cl, int leader) {
    tern_client_options_t options;
    tern_client_options_init(&options);
    options.window = 64;
    tern_client_t *client = it_cluster_client(cl, leader, &options);
    int errors = 0;
    for (int t = 0; t < S_TOPICS; t++) {
        char prefix[16], topic[64];
        snprintf(prefix, sizeof prefix, "catchup%d", t);
        it_cluster_topic_for(cl, S_PT, prefix, topic, sizeof topic);
        it_cluster_publish_until_acked(client, topic);
        snprintf(prefix, sizeof prefix, "record-%d-", t);
        it_pub_async(client, topic, prefix, S_PER_TOPIC, s_on_ack, &errors);
    }
    cr_assert_eq(tern_flush(client, 60000), TERN_OK);
    cr_assert_eq(errors, 0, "%d publishes failed", errors);
    tern_client_destroy(&client);
}

//  The lines of NODE's current run (its log from this run's start) about
//  S_PT that contain KEY. With BOUND > 0, the number after KEY must be in
//  1..BOUND on each. SIZES (may be NULL, CAP entries) gets those numbers.
static int s_log_lines(it_broker_t *node, const char *key, long bound, long *sizes, int cap) {
    size_t len = 0;
    char *log = it_read_file(node->log_path, &len);
    cr_assert_not_null(log);
    char pt[32];
    snprintf(pt, sizeof pt, "partition %d: ", S_PT);
    int lines = 0;
    char *line = log + ((size_t)node->log_offset <= len ? (size_t)node->log_offset : len);
    while (*line) {
        char *eol = strchr(line, '\n');
        if (eol) {
            *eol = 0;
        }
        const char *at = strstr(line, key);
        if (at && strstr(line, pt)) {
            long n = strtol(at + strlen(key), NULL, 10);
            cr_assert(bound == 0 || (n >= 1 && n <= bound), "%s", line);
            if (sizes && lines < cap) {
                sizes[lines] = n;
            }
            lines++;
        }
        line = eol ? eol + 1 : line + strlen(line);
    }
    free(log);
    return lines;
}

//  Restarts FOLLOWER and checks its catch-up: in rounds, ISR full, verify.
static void s_rejoin(it_cluster_t *cl, int leader, int follower) {
    cr_assert(it_cluster_start_node(cl, follower));
    tern_partmap_record_t rec;
    cr_assert(it_cluster_wait_isr_full(cl, S_PT, S_WAIT_MS, &rec), "node %d did not rejoin",
              follower);
    //  The follower logs each short answer, the leader how many records it
    //  held: at most the chunk.
    int rounds = s_log_lines(cl->node[follower], "catch-up round ", 0, NULL, 0);
    cr_log_info("node %d caught up on partition %d after %d short rounds", follower, S_PT, rounds);
    cr_assert_geq(rounds, 3, "%d short rounds: the catch-up was not bounded", rounds);
    //  Their sizes: the bound, then doubling up to 4 x the bound.
    long chunk = atol(S_CHUNK), sizes[64] = {0};
    int answers = s_log_lines(cl->node[leader], " sync round sent ", 4 * chunk, sizes, 64);
    cr_assert_geq(answers, rounds, "the leader logged fewer short answers");
    cr_assert_eq(sizes[0], chunk, "the first round carries the bound");
    long largest = 0;
    for (int i = 1; i < answers && i < 64; i++) {
        cr_assert_leq(sizes[i], 2 * sizes[i - 1], "round %d grew more than x2", i + 1);
        largest = sizes[i] > largest ? sizes[i] : largest;
    }
    cr_assert_eq(largest, 4 * chunk, "the rounds never grew to 4 x the bound (largest %ld)",
                 largest);
    cr_assert(it_cluster_verified(cl, leader, S_WAIT_MS), "the replicas differ");
}

Test(cluster_catchup, restarted_follower_catches_up_in_rounds) {
    it_cluster_t *cl = s_cluster();
    int leader = 0;
    int follower = s_follower(cl, &leader);
    it_cluster_kill_out(cl, follower, S_PT, S_WAIT_MS);
    s_publish(cl, leader);
    s_rejoin(cl, leader, follower);
    it_cluster_destroy(&cl);
}

Test(cluster_catchup, reseeded_follower_catches_up_in_rounds) {
    it_cluster_t *cl = s_cluster();
    int leader = 0;
    int follower = s_follower(cl, &leader);
    s_publish(cl, leader);
    cr_assert(it_cluster_verified(cl, leader, S_WAIT_MS), "the replicas differ");
    it_cluster_kill_out(cl, follower, S_PT, S_WAIT_MS);
    it_broker_t *node = cl->node[follower];
    cr_assert_eq(test_dir_remove(node->data_dir), 0);
    cr_assert_eq(mkdir(node->data_dir, 0700), 0);
    s_rejoin(cl, leader, follower);
    it_cluster_destroy(&cl);
}
