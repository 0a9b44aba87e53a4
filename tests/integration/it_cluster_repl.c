/*  it_cluster_repl.c - replication inside a clustered DC (broker/tern_crepl*.c).

    Real etcd (etcd_harness.h) and three real ternd nodes with --etcd,
    --cluster-listen and --node-id on loopback; libtern publishes with a
    producer id to a partition's leader, found by reading its record in
    etcd. After every node is stopped by PID, each data dir is opened with
    tern_store_new and the replicas are compared record by record
    (tern_store_digest, seqs and msg_ids of every acknowledged publish).
    - acked_everywhere: every acknowledged publish is on every replica at the
      same seq with the same msg_id; with both followers SIGKILLed, the
      publishes in flight before the ISR shrinks get TERN_ETIMEOUT (appended,
      not confirmed within cluster/ack_timeout 1 s: outcome unknown) and,
      once the record's ISR is below min_insync, every publish is refused
      with TERN_EREPLICAS before the storer; one follower restarted catches
      up and publishes are acknowledged again.
    - refused_not_kept (within acked_everywhere): the publishes refused with
      TERN_EREPLICAS go to a topic of their own; after the recovery it has
      nothing of them: the next publish to it is seq 1, the first message a
      subscriber from the first seq gets, and the only one in either
      replica's store.
    - divergent_tail_truncated: a SIGKILLed follower's store is given records
      past the leader's log (written into its data dir while it is down, as
      a leader killed before replicating them keeps them) while the leader
      acknowledges others at the same seqs; restarted, the follower's tail
      is truncated to the leader's log and it ends identical to it. (A real
      deposed leader cannot be made to keep such a tail reliably here: a
      SIGSTOPped follower still receives the records in its TCP buffers.)
*/
#include "cluster_harness.h"
#include "etcd_harness.h"
#include "harness.h"
#include "tern_etcd.h"
#include "tern_partition.h"
#include "tern_partmap.h"
#include "tern_store.h"
#include "test_port.h"

#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define S_NODES      3
#define S_PARTITIONS 4
#define S_TOPICS     3 //  topics of the partition under test
#define S_PT         1 //  the partition under test

static it_broker_t *s_node[S_NODES];
static char s_topics[S_TOPICS][32];
static char s_refused[32]; //  a topic of S_PT only publishes refused with TERN_EREPLICAS reach

static void s_setup(void) {
    it_suite_etcd_start();
    //  Topics of partition S_PT, as libtern and ternd compute it.
    int found = 0;
    for (int i = 0; found <= S_TOPICS && i < 1000; i++) {
        char name[32];
        snprintf(name, sizeof name, "crepl.t%d", i);
        if (tern_partition_of(name, strlen(name), S_PARTITIONS) == S_PT) {
            snprintf(found < S_TOPICS ? s_topics[found] : s_refused, sizeof s_refused, "%s", name);
            found++;
        }
    }
    cr_assert_eq(found, S_TOPICS + 1);
}

TestSuite(cluster_repl, .init = s_setup, .fini = it_suite_etcd_stop, .timeout = 300);

// ---------------------------------------------------------------------------
//  Helpers

//  Creates and starts the nodes with the cluster flags, cluster/isr_lag
//  ISR_LAG and cluster/lease LEASE.
static void s_start_nodes(const char *isr_lag, const char *lease) {
    for (int i = 0; i < S_NODES; i++) {
        char listen[64];
        snprintf(listen, sizeof listen, "tcp://127.0.0.1:%d", test_port());
        const char *extra[] = {"--etcd",
                               it_suite_etcd->endpoints,
                               "--cluster",
                               "itcr",
                               "--cluster-listen",
                               listen,
                               "--partitions",
                               "4",
                               "--ack-timeout",
                               "1s",
                               "--isr-lag",
                               isr_lag,
                               "--lease",
                               lease,
                               NULL};
        s_node[i] = it_adopt_broker(it_broker_new((uint32_t)i, extra));
        cr_assert(it_broker_start(s_node[i]), "node %d did not start", i);
    }
}

//  PT's record as etcd holds it now. False if there is none yet.
static bool s_record(uint32_t pt, tern_partmap_record_t *rec) {
    tern_etcd_t *etcd = tern_etcd_new(it_suite_etcd->endpoints, 3000);
    cr_assert_not_null(etcd);
    bool ok = it_etcd_record(etcd, "itcr", pt, rec, true);
    tern_etcd_destroy(&etcd);
    return ok;
}

//  True if KEY is in etcd now.
static bool s_key_exists(const char *key) {
    tern_etcd_t *etcd = tern_etcd_new(it_suite_etcd->endpoints, 3000);
    tern_etcd_kvs_t *kvs = NULL;
    bool exists = tern_etcd_get(etcd, key, false, &kvs) == TERN_OK && kvs->count > 0;
    tern_etcd_kvs_destroy(&kvs);
    tern_etcd_destroy(&etcd);
    return exists;
}

//  Waits (TIMEOUT_MS at most) until S_PT has a leader other than NOT_LEADER
//  and an ISR of exactly ISR nodes (every node in MUST, a bit set, among
//  them). Returns the record.
static tern_partmap_record_t s_wait_record(uint32_t nisr, unsigned must, uint32_t not_leader,
                                           int timeout_ms) {
    tern_partmap_record_t rec;
    memset(&rec, 0, sizeof rec);
    for (int waited = 0; waited < timeout_ms; waited += 200) {
        if (s_record(S_PT, &rec) && rec.leader != TERN_NODE_NONE && rec.leader != not_leader &&
            rec.nisr == nisr) {
            bool all = true;
            for (uint32_t n = 0; n < S_NODES; n++) {
                all = all && (!(must & (1u << n)) || tern_partmap_in_isr(&rec, n));
            }
            if (all) {
                return rec;
            }
        }
        usleep(200 * 1000);
    }
    cr_assert_fail("partition %u: no leader with an ISR of %u (last: leader %u, %u in sync)", S_PT,
                   nisr, rec.leader, rec.nisr);
    return rec;
}

//  Waits until node ID's lease-bound key is gone (its lease expired), so
//  that it may join again.
static void s_wait_node_gone(uint32_t id) {
    char key[64];
    snprintf(key, sizeof key, "/tern/itcr/nodes/%u", id);
    for (int i = 0; i < 100 && s_key_exists(key); i++) {
        usleep(200 * 1000);
    }
    cr_assert(!s_key_exists(key), "node %u's key is still in etcd", id);
}

static void s_dump_logs(void) {
    for (int i = 0; i < S_NODES; i++) {
        if (s_node[i]) {
            it_broker_dump_log(s_node[i], true);
        }
    }
}

static tern_client_t *s_client(it_broker_t *b, const char *producer) {
    tern_client_options_t options;
    tern_client_options_init(&options);
    options.producer_id = producer;
    tern_client_t *client = tern_client_new(b->endpoint, &options);
    cr_assert_not_null(client);
    return client;
}

//  One acknowledged publish: where it was stored.
typedef struct {
    int topic;       //  index in s_topics
    uint64_t seq;    //  its seq
    uint64_t msg_id; //  its msg_id
} s_acked_t;

//  Publishes COUNT messages round-robin over the topics and waits for each;
//  every one must get EXPECT. The acknowledged ones are appended to ACKED.
static void s_publish(tern_client_t *client, int count, tern_err_t expect, s_acked_t *acked,
                      size_t *nacked) {
    for (int i = 0; i < count; i++) {
        char payload[64];
        snprintf(payload, sizeof payload, "message %d", i);
        tern_pub_options_t msg;
        tern_pub_options_init(&msg);
        msg.topic = s_topics[i % S_TOPICS];
        msg.payload = payload;
        msg.size = strlen(payload);
        tern_pub_result_t res;
        tern_err_t rc = tern_publish(client, &msg, 15000, &res);
        if (rc != expect) {
            s_dump_logs();
        }
        cr_assert_eq(rc, expect, "publish %d to %s: %s (%s), expected %s", i, msg.topic,
                     tern_errname(rc), res.reason ? res.reason : "", tern_errname(expect));
        if (rc == TERN_OK && acked) {
            acked[(*nacked)++] = (s_acked_t){i % S_TOPICS, res.seq, res.msg_id};
        }
    }
}

//  Every publish in ACKED is in STORE at its seq with its msg_id.
static void s_check_acked(tern_store_t *store, int node, const s_acked_t *acked, size_t n) {
    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    for (size_t i = 0; i < n; i++) {
        tern_topic_info_t info;
        cr_assert_eq(tern_store_topic_get(reader, s_topics[acked[i].topic], &info), TERN_OK,
                     "node %d has no topic %s", node, s_topics[acked[i].topic]);
        tern_frame_t frame;
        tern_err_t rc = tern_store_read(reader, info.id, acked[i].seq, &frame);
        cr_assert_eq(rc, TERN_OK, "node %d lacks acknowledged %s seq %" PRIu64 ": %s", node,
                     s_topics[acked[i].topic], acked[i].seq, tern_errname(rc));
        cr_assert_eq(frame.msg_id, acked[i].msg_id,
                     "node %d: %s seq %" PRIu64 " is another message", node,
                     s_topics[acked[i].topic], acked[i].seq);
    }
    tern_store_read_end(reader);
    tern_store_reader_destroy(&reader);
}

//  SIGTERM to node I by its PID; it must exit 0 (under ASan: no leak).
static void s_stop_node(uint32_t i) {
    int rc = it_broker_stop(s_node[i], 15000);
    if (rc != 0) {
        it_broker_dump_log(s_node[i], false);
    }
    cr_assert_eq(rc, 0, "node %u exited with %d", i, rc);
}

//  Other nodes than LEADER, in id order.
static void s_followers(uint32_t leader, uint32_t out[2]) {
    int k = 0;
    for (uint32_t n = 0; n < S_NODES; n++) {
        if (n != leader) {
            out[k++] = n;
        }
    }
}

//  Both followers of LEADER are dead. Publishes to s_topics[0] until one is
//  refused with TERN_EREPLICAS: before that, only TERN_ETIMEOUT (appended,
//  the ISR did not confirm it). Then, with the record's ISR down to the
//  leader, every publish is TERN_EREPLICAS, with the numbers in the
//  reason; those go to s_refused, which nothing else is sent to.
static void s_publish_refused(tern_client_t *client, uint32_t leader) {
    tern_pub_options_t msg;
    tern_pub_options_init(&msg);
    msg.payload = "refused";
    msg.size = 7;
    tern_pub_result_t res;
    tern_err_t rc = TERN_OK;
    for (int i = 0; i < 60 && rc != TERN_EREPLICAS; i++) {
        msg.topic = s_topics[0];
        rc = tern_publish(client, &msg, 15000, &res);
        cr_assert(rc == TERN_ETIMEOUT || rc == TERN_EREPLICAS,
                  "publish with the followers dead: %s (%s)", tern_errname(rc),
                  res.reason ? res.reason : "");
    }
    cr_assert_eq(rc, TERN_EREPLICAS, "the ISR never shrank below min_insync");
    tern_partmap_record_t rec = s_wait_record(1, 1u << leader, TERN_NODE_NONE, 10000);
    cr_assert_eq(rec.leader, leader);
    char want[96];
    snprintf(want, sizeof want,
             "partition %u has 1 in-sync replica (node %u), cluster/min_insync is 2", S_PT, leader);
    for (int i = 0; i < 3; i++) {
        msg.topic = s_refused;
        rc = tern_publish(client, &msg, 15000, &res);
        cr_assert_eq(rc, TERN_EREPLICAS, "publish %d to %s: %s (%s)", i, s_refused,
                     tern_errname(rc), res.reason ? res.reason : "");
        cr_assert(res.reason && strstr(res.reason, want), "reason: %s, expected it to name %s",
                  res.reason ? res.reason : "(none)", want);
    }
}

//  After the recovery: nothing refused reached s_refused. The next publish
//  to it is its seq 1, and it is the first thing a subscriber from the
//  first seq gets.
static void s_check_refused_gone(tern_client_t *client) {
    tern_pub_options_t msg;
    tern_pub_options_init(&msg);
    msg.topic = s_refused;
    msg.payload = "after";
    msg.size = 5;
    tern_pub_result_t res;
    tern_err_t rc = tern_publish(client, &msg, 15000, &res);
    cr_assert_eq(rc, TERN_OK, "publish after the recovery: %s", tern_errname(rc));
    cr_assert_eq(res.seq, 1, "%s: the publish after the refusals is seq %" PRIu64 ", not 1",
                 s_refused, res.seq);
    cr_assert(!res.duplicate);
    tern_sub_options_t options;
    tern_sub_options_init(&options);
    options.start = TERN_FROM_FIRST;
    tern_subscription_t *sub = NULL;
    cr_assert_eq(tern_subscribe(client, s_refused, &options, NULL, NULL, &sub), TERN_OK);
    tern_message_t *m = NULL;
    cr_assert_eq(tern_subscription_next(sub, 15000, &m), TERN_OK, "nothing delivered");
    cr_assert_eq(tern_message_seq(m), 1);
    cr_assert(tern_message_size(m) == 5 && memcmp(tern_message_data(m), "after", 5) == 0,
              "a refused publish was delivered");
    tern_message_destroy(&m);
    tern_unsubscribe(&sub);
}

// ---------------------------------------------------------------------------
//  Tests

//  Starts the nodes, waits until S_PT has three in sync, and publishes COUNT
//  messages to its leader (*LEADER; F gets the others) with *CLIENT (the
//  caller destroys it): all acknowledged, appended to ACKED.
static void s_cluster_up(int count, uint32_t *leader, uint32_t f[2], tern_client_t **client,
                         s_acked_t *acked, size_t *nacked) {
    s_start_nodes("2s", "2s");
    tern_partmap_record_t rec = s_wait_record(3, 0, TERN_NODE_NONE, 60000);
    *leader = rec.leader;
    s_followers(*leader, f);
    *client = s_client(s_node[*leader], "it-crepl");
    it_cluster_publish_until_acked(*client, s_topics[0]);
    s_publish(*client, count, TERN_OK, acked, nacked);
}

Test(cluster_repl, acked_everywhere) {
    static s_acked_t acked[400];
    size_t nacked = 0;
    uint32_t leader, f[2];
    tern_client_t *client;
    //  1. Every publish acknowledged with three in sync.
    s_cluster_up(150, &leader, f, &client, acked, &nacked);

    //  2. Both followers gone: never acknowledged from one copy; refused
    //  (not stored) once the ISR is below min_insync.
    it_broker_kill(s_node[f[0]]);
    it_broker_kill(s_node[f[1]]);
    s_publish_refused(client, leader);

    //  3. One follower back: it catches up, rejoins the ISR, acks resume.
    s_wait_node_gone(f[0]);
    cr_assert(it_broker_start(s_node[f[0]]), "follower %u did not restart", f[0]);
    s_wait_record(2, (1u << leader) | (1u << f[0]), TERN_NODE_NONE, 30000);
    it_cluster_publish_until_acked(client, s_topics[0]);
    s_publish(client, 60, TERN_OK, acked, &nacked);
    s_check_refused_gone(client);
    tern_client_destroy(&client);

    //  4. Stop by PID; compare the copies.
    s_stop_node(f[0]);
    s_stop_node(leader);
    tern_store_t *lead = it_cluster_store_open(s_node[leader]);
    tern_store_t *back = it_cluster_store_open(s_node[f[0]]);
    tern_store_t *dead = it_cluster_store_open(s_node[f[1]]);
    cr_assert_eq(it_cluster_store_copy(lead, s_refused, 0).last_seq, 1,
                 "refused publishes in the leader's store");
    cr_assert_eq(it_cluster_store_copy(back, s_refused, 0).last_seq, 1,
                 "refused publishes in the follower's");
    s_check_acked(lead, (int)leader, acked, nacked);
    s_check_acked(back, (int)f[0], acked, nacked);
    s_check_acked(dead, (int)f[1], acked, 150); //  it had the first 150 when it died
    for (int t = 0; t < S_TOPICS; t++) {
        it_copy_t a = it_cluster_store_copy(lead, s_topics[t], 0);
        it_copy_t b = it_cluster_store_copy(back, s_topics[t], 0);
        cr_assert_gt(a.last_seq, 0);
        cr_assert_eq(a.last_seq, b.last_seq, "%s: leader has %" PRIu64 ", follower %" PRIu64,
                     s_topics[t], a.last_seq, b.last_seq);
        cr_assert_eq(a.digest, b.digest, "%s: the copies differ", s_topics[t]);
        it_copy_t c = it_cluster_store_copy(dead, s_topics[t], 0);
        it_copy_t a_upto = it_cluster_store_copy(lead, s_topics[t], c.last_seq);
        cr_assert_eq(a_upto.digest, c.digest, "%s: the killed follower's copy differs",
                     s_topics[t]);
    }
    tern_store_destroy(&lead);
    tern_store_destroy(&back);
    tern_store_destroy(&dead);
}

//  Gives node B's stopped store COUNT records of topic T after its last
//  seq, ones no leader ever had (msg_ids from FIRST_ID): what a leader
//  killed with publishes not yet replicated keeps.
static void s_add_own_tail(it_broker_t *b, const char *topic, int count, uint64_t first_id) {
    tern_store_t *store = it_cluster_store_open(b);
    tern_store_batch_t *batch = tern_store_batch_new(store);
    cr_assert_not_null(batch);
    static tern_frame_t msgs[8]; //  borrowed by the batch until the commit
    tern_append_result_t res[8];
    cr_assert_leq(count, 8);
    for (int i = 0; i < count; i++) {
        tern_frame_t msg;
        tern_frame_init(&msg, TERN_CMD_PUBLISH);
        snprintf(msg.topic, sizeof msg.topic, "%s", topic);
        snprintf(msg.origin, sizeof msg.origin, "dc1");
        snprintf(msg.producer, sizeof msg.producer, "own-tail");
        msg.producer_seq = (uint64_t)i + 1;
        msg.fields |= TERN_F_TOPIC | TERN_F_ORIGIN | TERN_F_PRODUCER;
        msg.msg_id = first_id + (uint64_t)i;
        msg.timestamp_ns = 1;
        msg.payload = (const uint8_t *)"unacknowledged";
        msg.payload_size = 14;
        msgs[i] = msg;
        tern_store_batch_append(batch, &msgs[i], true, &res[i]);
    }
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    for (int i = 0; i < count; i++) {
        cr_assert_eq(res[i].err, TERN_OK);
    }
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
}

Test(cluster_repl, divergent_tail_truncated) {
    static s_acked_t acked[400];
    size_t nacked = 0;
    uint32_t leader, f[2];
    tern_client_t *client;
    s_cluster_up(30, &leader, f, &client, acked, &nacked);

    //  A follower stops and its copy of the first topic grows 4 records
    //  past the leader's; meanwhile the leader stores 12 more, 4 of them in
    //  that topic at the same seqs.
    it_broker_kill(s_node[f[0]]);
    const uint64_t own_id = 0x7000000000000000ull;
    s_add_own_tail(s_node[f[0]], s_topics[0], 4, own_id);
    it_cluster_publish_until_acked(client, s_topics[0]); //  once the ISR is the other two
    s_publish(client, 12, TERN_OK, acked, &nacked);

    //  It returns: its tail is cut back to the leader's log, it catches up
    //  and rejoins the ISR.
    s_wait_node_gone(f[0]);
    cr_assert(it_broker_start(s_node[f[0]]), "follower %u did not restart", f[0]);
    s_wait_record(3, 7u, TERN_NODE_NONE, 30000);
    s_publish(client, 9, TERN_OK, acked, &nacked);
    tern_client_destroy(&client);
    char *log = it_read_file(s_node[leader]->log_path, NULL);
    bool truncated = log && strstr(log, "truncated");
    free(log);
    if (!truncated || getenv("IT_DUMP")) {
        s_dump_logs();
    }
    cr_assert(truncated, "the leader never truncated the follower");

    for (int i = 0; i < S_NODES; i++) {
        s_stop_node((uint32_t)i);
    }
    tern_store_t *stores[S_NODES];
    for (int i = 0; i < S_NODES; i++) {
        stores[i] = it_cluster_store_open(s_node[i]);
        s_check_acked(stores[i], i, acked, nacked);
    }
    for (int t = 0; t < S_TOPICS; t++) {
        it_copy_t ref = it_cluster_store_copy(stores[leader], s_topics[t], 0);
        for (int i = 0; i < S_NODES; i++) {
            it_copy_t c = it_cluster_store_copy(stores[i], s_topics[t], 0);
            cr_assert_eq(c.last_seq, ref.last_seq, "node %d %s: last seq %" PRIu64 " vs %" PRIu64,
                         i, s_topics[t], c.last_seq, ref.last_seq);
            cr_assert_eq(c.digest, ref.digest, "node %d: %s differs from the leader's", i,
                         s_topics[t]);
        }
    }
    tern_store_reader_t *reader = tern_store_reader_new(stores[f[0]]);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    for (uint64_t id = own_id; id < own_id + 4; id++) {
        uint32_t topic_id;
        uint64_t seq;
        cr_assert_eq(tern_store_find_msg(reader, id, &topic_id, &seq), TERN_ENOTFOUND,
                     "the follower still holds its own record %" PRIx64, id);
    }
    tern_store_read_end(reader);
    tern_store_reader_destroy(&reader);
    for (int i = 0; i < S_NODES; i++) {
        tern_store_destroy(&stores[i]);
    }
}

//  Runs admin OP on TOPIC at the leader (CLIENT's seed) with one more
//  argument KEY=VALUE (KEY may be NULL); it must succeed.
static void s_admin(tern_client_t *client, const char *op, const char *topic, const char *key,
                    const char *value) {
    tern_header_t args[4] = {{"topic", topic}, {key, value}};
    char *json = NULL;
    tern_err_t rc = tern_admin(client, op, args, key ? 2 : 1, &json, 15000);
    if (rc != TERN_OK) {
        s_dump_logs();
    }
    cr_assert_eq(rc, TERN_OK, "%s %s: %s (%s)", op, topic, tern_errname(rc), tern_last_reason());
    free(json);
}

//  Topic T as node I's stopped STORE has it (found false: no such topic).
static tern_topic_info_t s_info(tern_store_t *store, int i, const char *t, bool *found) {
    tern_topic_info_t info;
    memset(&info, 0, sizeof info);
    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    tern_err_t rc = tern_store_topic_get(reader, t, &info);
    cr_assert(rc == TERN_OK || rc == TERN_ENOTFOUND, "node %d topic %s: %s", i, t,
              tern_errname(rc));
    *found = rc == TERN_OK;
    tern_store_read_end(reader);
    tern_store_reader_destroy(&reader);
    return info;
}

//  Topic admin ops done on the leader reach the followers in the stream (a
//  purge with all three live; a create with limits, an edit and a delete
//  while one follower is down), and a returning follower learns the delete
//  (a topic the leader lacks) and the limits at its catch-up: after a
//  SIGTERM of every node, each store agrees with the leader's.
Test(cluster_repl, topic_ops_replicated) {
    static s_acked_t acked[64];
    size_t nacked = 0;
    uint32_t leader, f[2];
    tern_client_t *client;
    s_cluster_up(30, &leader, f, &client, acked, &nacked); //  10 per topic
    s_admin(client, "topic.purge", s_topics[1], NULL, NULL);

    it_broker_kill(s_node[f[0]]);
    it_cluster_publish_until_acked(client, s_topics[0]); //  once the ISR is the other two
    s_admin(client, "topic.create", s_refused, "max_msgs", "100");
    s_admin(client, "topic.edit", s_refused, "max_bytes", "1000000");
    s_admin(client, "topic.edit", s_topics[0], "max_age_ms", "3600000");
    s_publish(client, 3, TERN_OK, NULL, NULL);
    s_admin(client, "topic.delete", s_topics[2], NULL, NULL);
    s_admin(client, "topic.purge", s_topics[0], NULL, NULL); //  missed by f[0]

    s_wait_node_gone(f[0]);
    cr_assert(it_broker_start(s_node[f[0]]), "follower %u did not restart", f[0]);
    s_wait_record(3, 7u, TERN_NODE_NONE, 30000);
    it_cluster_publish_until_acked(client,
                                   s_topics[0]); //  a position after the catch-up, confirmed by all
    tern_client_destroy(&client);
    //  A follower refuses topic writes: only the leader ships them. (On the
    //  wire: libtern's tern_admin follows the leader by itself.)
    it_raw_t *raw = it_raw_new(s_node[f[1]]->endpoint);
    cr_assert_not_null(raw);
    cr_assert(it_raw_hello(raw, "it-crepl-f"), "no WELCOME");
    uint8_t meta[128];
    size_t meta_len = 0;
    tern_kv_t kv = {"topic", 5, s_topics[0], strlen(s_topics[0])};
    cr_assert_eq(tern_meta_encode(&kv, 1, meta, sizeof meta, &meta_len), TERN_OK);
    tern_frame_t req, reply;
    tern_frame_init(&req, TERN_CMD_ADMIN);
    req.req_id = 9;
    snprintf(req.name, sizeof req.name, "topic.delete");
    req.meta = meta;
    req.meta_size = meta_len;
    req.fields |= TERN_F_NAME | TERN_F_META;
    cr_assert_eq(it_raw_send_frame(raw, &req), TERN_OK);
    cr_assert_eq(it_raw_recv_reply(raw, &reply, 15000), TERN_OK);
    cr_assert_eq(reply.cmd, TERN_CMD_ERROR, "topic.delete on a follower: %s",
                 tern_cmd_name(reply.cmd));
    cr_assert_eq(reply.code, TERN_ENOTLEADER, "topic.delete on a follower: %s (%s)",
                 tern_errname((int)reply.code), reply.reason);
    it_raw_destroy(&raw);
    for (int i = 0; i < S_NODES; i++) {
        s_stop_node((uint32_t)i);
    }

    tern_store_t *stores[S_NODES];
    for (int i = 0; i < S_NODES; i++) {
        stores[i] = it_cluster_store_open(s_node[i]);
    }
    bool found;
    tern_topic_info_t ref_lim = s_info(stores[leader], (int)leader, s_refused, &found);
    cr_assert(found && ref_lim.max_msgs == 100 && ref_lim.max_bytes == 1000000);
    tern_topic_info_t ref_age = s_info(stores[leader], (int)leader, s_topics[0], &found);
    cr_assert(found && ref_age.max_age_ms == 3600000);
    tern_topic_info_t ref_purged = s_info(stores[leader], (int)leader, s_topics[1], &found);
    //  Purged at seq 10; one publish since.
    cr_assert(found && ref_purged.first_seq == 11 && ref_purged.msgs == 1,
              "%" PRIu64 " msgs from %" PRIu64, ref_purged.msgs, ref_purged.first_seq);
    for (int i = 0; i < S_NODES; i++) {
        s_info(stores[i], i, s_topics[2], &found);
        cr_assert(!found, "node %d still has deleted topic %s", i, s_topics[2]);
        tern_topic_info_t lim = s_info(stores[i], i, s_refused, &found);
        cr_assert(found && lim.max_msgs == 100 && lim.max_bytes == 1000000 && lim.max_age_ms == 0,
                  "node %d %s: limits %" PRIu64 "/%" PRIu64 "/%" PRIu64, i, s_refused, lim.max_msgs,
                  lim.max_bytes, lim.max_age_ms);
        tern_topic_info_t age = s_info(stores[i], i, s_topics[0], &found);
        cr_assert(found && age.max_age_ms == 3600000, "node %d %s: max_age_ms %" PRIu64, i,
                  s_topics[0], age.max_age_ms);
        tern_topic_info_t purged = s_info(stores[i], i, s_topics[1], &found);
        cr_assert(found && purged.msgs == ref_purged.msgs &&
                      purged.last_seq == ref_purged.last_seq &&
                      purged.first_seq == ref_purged.first_seq,
                  "node %d %s: %" PRIu64 " msgs, seqs %" PRIu64 "..%" PRIu64, i, s_topics[1],
                  purged.msgs, purged.first_seq, purged.last_seq);
        tern_topic_info_t t0 = s_info(stores[i], i, s_topics[0], &found);
        cr_assert(t0.msgs == ref_age.msgs && t0.first_seq == ref_age.first_seq,
                  "node %d %s: %" PRIu64 " msgs from %" PRIu64 ", the leader %" PRIu64
                  " from %" PRIu64,
                  i, s_topics[0], t0.msgs, t0.first_seq, ref_age.msgs, ref_age.first_seq);
        for (int t = 0; t < 2; t++) {
            it_copy_t ref = it_cluster_store_copy(stores[leader], s_topics[t], 0);
            it_copy_t c = it_cluster_store_copy(stores[i], s_topics[t], 0);
            cr_assert(c.last_seq == ref.last_seq && c.digest == ref.digest,
                      "node %d: %s differs from the leader's", i, s_topics[t]);
        }
    }
    for (int i = 0; i < S_NODES; i++) {
        tern_store_destroy(&stores[i]);
    }
}
