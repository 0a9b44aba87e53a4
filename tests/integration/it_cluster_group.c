/*  it_cluster_group.c - group state replicated inside a clustered DC
    (broker/tern_crepl_group.c, storage/tern_store_gstate.c).

    Real etcd and three real ternd nodes (cluster_harness.h), libtern
    consumers of a durable group, ternctl `cluster verify` (which digests
    the log and the group state of every topic on every replica) and
    `dlq list`.
    - failover_keeps_group_state: a consumer acks K of N messages, nacks two
      and TERMs one; once verify says the replicas are identical, the leader
      is killed with -9. A consumer of the same group on the new leader gets
      exactly the unacked ones (never an acked one, nor the dead one), the
      DLQ entry is on the new leader, and once the old leader is back (it
      syncs as a follower, snapshot included) verify is identical again.
    - handover_round_trip_adopts_state: leadership moves A -> B -> A by
      handover while the group acks on each; back on A, the group goes on
      from the replicated state (route drops a topic's in-memory pending
      entries when it stops leading it and adopts the stored state when it
      leads it again): exactly the messages unacked on B come, none acked.
    - open_new_while_publishing_survives_failover: a group is opened from
      NEW while a producer publishes; its consumer takes (unacked) what the
      leader delivers, the lowest seq being where the leader started the
      group. After verify and kill -9 of the leader, the new leader
      delivers every message the producer had acknowledged from that seq
      on. A follower that resolved NEW against its own log (which may hold
      later records when the OPEN reaches it) started the group later:
      verify differs, and those messages never came.
    - new_group_survives_kill_after_subscribe: a consumer subscribes to a
      new group from NEW while both followers are SIGSTOPped: no answer
      comes (it waits for the ISR to have the group's OPEN, as a publish's
      ack waits for its record). After SIGCONT it is answered, and the
      leader is killed with -9 at once. Messages published on the new
      leader afterwards must all reach a consumer of the group there.
      Before, the answer came before the OPEN was even committed, and a
      new leader that lacked the group opened it again from NEW after
      those messages: none came.
    - follower_catches_up_group_state: a follower killed while the group
      acks and TERMs gets the state at its catch-up (the snapshot path), and
      so does a replica re-seeded on an empty data dir.
    Without group state replication the followers have no groups: verify
    never says identical, and the new leader redelivers everything.
*/
#include "cluster_harness.h"
#include "tern.h"

#include <criterion/criterion.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define S_PARTITIONS 4
#define S_PT         0  //  the partition under test
#define S_N          20 //  messages published
#define S_K          10 //  acked: seqs 1..S_K
#define S_DEAD       13 //  TERMed
#define S_WAIT_MS    30000

TestSuite(cluster_group, .fini = it_cluster_teardown, .timeout = 400);

//  A started 3-node cluster with a short ack wait (pending entries a
//  failover finds are due at their stored times).
static it_cluster_t *s_cluster(void) {
    const char *extra[] = {"--ack-wait", "2s", NULL};
    it_cluster_t *c = it_cluster_new(3, 1, S_PARTITIONS, extra);
    cr_assert_not_null(c, "etcd did not start");
    cr_assert(it_cluster_start(c, 60000), "the cluster did not start");
    return c;
}

//  A consumer client whose first seed is node FIRST.
static tern_client_t *s_client(it_cluster_t *c, int first) {
    return it_cluster_client(c, first, NULL);
}

//  A consumer of durable group GROUP of TOPIC, created at START if new.
static tern_subscription_t *s_subscribe_at(tern_client_t *client, const char *topic,
                                           const char *group, int start) {
    tern_sub_options_t so;
    tern_sub_options_init(&so);
    so.group = group;
    so.start = start;
    so.credit = 100;
    tern_subscription_t *sub = NULL;
    cr_assert_eq(tern_subscribe(client, topic, &so, NULL, NULL, &sub), TERN_OK, "%s",
                 tern_last_reason());
    return sub;
}

static tern_subscription_t *s_subscribe(tern_client_t *client, const char *topic) {
    return s_subscribe_at(client, topic, "g", TERN_FROM_FIRST);
}

//  Receives the first delivery of seqs 1..COUNT into HELD[seq] (the caller
//  settles and destroys them).
static void s_receive(tern_subscription_t *sub, tern_message_t **held, int count) {
    for (int got = 0; got < count;) {
        tern_message_t *msg = NULL;
        cr_assert_eq(tern_subscription_next(sub, 15000, &msg), TERN_OK, "%d of %d received", got,
                     count);
        uint64_t seq = tern_message_seq(msg);
        cr_assert(seq >= 1 && seq <= (uint64_t)count, "seq %" PRIu64, seq);
        if (held[seq]) {
            tern_message_destroy(&msg); //  a redelivery: the first one is held
            continue;
        }
        held[seq] = msg;
        got++;
    }
}

//  Acks (TERN_CMD_ACK), nacks or TERMs HELD[seq] and destroys it.
static void s_settle(tern_message_t **held, uint64_t seq, int how) {
    cr_assert_not_null(held[seq]);
    tern_err_t rc = how == TERN_CMD_ACK    ? tern_message_ack(held[seq], false)
                    : how == TERN_CMD_NACK ? tern_message_nack(held[seq], 3000)
                                           : tern_message_term(held[seq], "poison");
    cr_assert_eq(rc, TERN_OK);
    tern_message_destroy(&held[seq]);
}

static void s_drop_held(tern_message_t **held, int count) {
    for (int seq = 1; seq <= count; seq++) {
        tern_message_destroy(&held[seq]);
    }
}

//  The partition's leader and TOPIC, a topic of it, with S_N messages.
static int s_topic(it_cluster_t *c, char *topic, size_t cap) {
    it_cluster_topic_for(c, S_PT, "grp", topic, cap);
    tern_partmap_record_t rec;
    cr_assert(it_cluster_wait_isr_full(c, S_PT, S_WAIT_MS, &rec), "ISR not full");
    int leader = (int)rec.leader;
    it_pub(c->node[leader], topic, "m{n}", S_N);
    return leader;
}

Test(cluster_group, failover_keeps_group_state) {
    it_cluster_t *c = s_cluster();
    char topic[64];
    int leader = s_topic(c, topic, sizeof topic);

    tern_client_t *client = s_client(c, leader);
    tern_subscription_t *sub = s_subscribe(client, topic);
    tern_message_t *held[S_N + 1] = {0};
    s_receive(sub, held, S_N);
    for (uint64_t seq = 1; seq <= S_K; seq++) {
        s_settle(held, seq, TERN_CMD_ACK);
    }
    s_settle(held, S_K + 1, TERN_CMD_NACK);
    s_settle(held, S_K + 2, TERN_CMD_NACK);
    s_settle(held, S_DEAD, TERN_CMD_TERM);
    cr_assert(it_cluster_verified(c, leader, S_WAIT_MS), "replicas differ before the failover");
    s_drop_held(held, S_N);
    tern_client_destroy(&client);

    it_cluster_kill_node(c, leader);
    tern_partmap_record_t rec;
    cr_assert(it_cluster_wait_leader(c, S_PT, leader, 0, S_WAIT_MS, &rec), "no new leader");
    int next = (int)rec.leader;

    //  The same group on the new leader: exactly the unacked ones.
    client = s_client(c, next);
    sub = s_subscribe(client, topic);
    bool seen[S_N + 1] = {false};
    int missing = S_N - S_K - 1;
    while (missing > 0) {
        tern_message_t *msg = NULL;
        cr_assert_eq(tern_subscription_next(sub, 20000, &msg), TERN_OK,
                     "%d unacked not redelivered", missing);
        uint64_t seq = tern_message_seq(msg);
        cr_assert(seq > S_K && seq <= S_N && seq != S_DEAD,
                  "seq %" PRIu64 " delivered again after the failover (acked or dead)", seq);
        missing -= !seen[seq];
        seen[seq] = true;
        cr_assert_eq(tern_message_ack(msg, false), TERN_OK);
        tern_message_destroy(&msg);
    }
    tern_message_t *extra = NULL;
    cr_assert_eq(tern_subscription_next(sub, 3000, &extra), TERN_ETIMEOUT,
                 "seq %" PRIu64 " delivered once more", extra ? tern_message_seq(extra) : 0);

    //  The DLQ entry is on the new leader.
    it_result_t r;
    cr_assert_eq(it_ctl(&r, c->node[next], 10000, "dlq", "list", topic, "--group", "g", NULL), 0,
                 "%s", r.err);
    cr_assert(strstr(r.out, "\"seq\":13") && strstr(r.out, "poison"), "%s", r.out);
    it_result_free(&r);
    tern_client_destroy(&client);

    //  The old leader, back as a follower, gets the state with its sync.
    cr_assert(it_cluster_start_node(c, leader));
    cr_assert(it_cluster_wait_isr_full(c, S_PT, S_WAIT_MS, &rec), "ISR not full again");
    cr_assert(it_cluster_verified(c, next, S_WAIT_MS),
              "replicas differ after the old leader's return");
    it_cluster_destroy(&c);
}

Test(cluster_group, follower_catches_up_group_state) {
    it_cluster_t *c = s_cluster();
    char topic[64];
    int leader = s_topic(c, topic, sizeof topic);
    int follower = it_cluster_follower(c, S_PT, leader);

    tern_client_t *client = s_client(c, leader);
    tern_subscription_t *sub = s_subscribe(client, topic);
    tern_message_t *held[S_N + 1] = {0};
    s_receive(sub, held, S_N);
    for (uint64_t seq = 1; seq <= 5; seq++) {
        s_settle(held, seq, TERN_CMD_ACK);
    }
    cr_assert(it_cluster_verified(c, leader, S_WAIT_MS),
              "replicas differ before the follower's loss");

    //  Group activity while the follower is down: only its catch-up can
    //  bring it (the snapshot).
    it_cluster_kill_out(c, follower, S_PT, S_WAIT_MS);
    for (uint64_t seq = 6; seq <= S_K; seq++) {
        s_settle(held, seq, TERN_CMD_ACK);
    }
    s_settle(held, S_DEAD, TERN_CMD_TERM);
    cr_assert(it_cluster_start_node(c, follower));
    tern_partmap_record_t rec;
    cr_assert(it_cluster_wait_isr_full(c, S_PT, S_WAIT_MS, &rec), "follower did not rejoin");
    cr_assert(it_cluster_verified(c, leader, S_WAIT_MS),
              "the returned follower's group state differs");

    //  Re-seeded on an empty data dir: a new replica identity, copied from
    //  the leader, groups included.
    it_cluster_kill_out(c, follower, S_PT, S_WAIT_MS);
    s_settle(held, S_K + 1, TERN_CMD_ACK);
    it_broker_t *node = c->node[follower];
    cr_assert_eq(test_dir_remove(node->data_dir), 0);
    cr_assert_eq(mkdir(node->data_dir, 0700), 0);
    cr_assert(it_cluster_start_node(c, follower));
    cr_assert(it_cluster_wait_isr_full(c, S_PT, 60000, &rec), "re-seeded follower did not rejoin");
    cr_assert(it_cluster_verified(c, leader, S_WAIT_MS),
              "the re-seeded follower's group state differs");
    s_drop_held(held, S_N);
    tern_client_destroy(&client);
    it_cluster_destroy(&c);
}

//  Subscribes to TOPIC's group through node FIRST, receives seqs FROM..TO
//  (first deliveries) and acks those up to ACK_TO; every delivery must be
//  in FROM..TO. The rest stay unacked (released with the client).
static void s_consume(it_cluster_t *c, int first, const char *topic, uint64_t from, uint64_t to,
                      uint64_t ack_to) {
    tern_client_t *client = s_client(c, first);
    tern_subscription_t *sub = s_subscribe(client, topic);
    bool seen[S_N + 1] = {false};
    for (uint64_t missing = to - from + 1; missing > 0;) {
        tern_message_t *msg = NULL;
        cr_assert_eq(tern_subscription_next(sub, 20000, &msg), TERN_OK,
                     "%" PRIu64 " of %" PRIu64 "..%" PRIu64 " not delivered", missing, from, to);
        uint64_t seq = tern_message_seq(msg);
        cr_assert(seq >= from && seq <= to,
                  "seq %" PRIu64 " delivered, expected %" PRIu64 "..%" PRIu64, seq, from, to);
        missing -= !seen[seq];
        seen[seq] = true;
        if (seq <= ack_to) {
            cr_assert_eq(tern_message_ack(msg, false), TERN_OK);
        }
        tern_message_destroy(&msg);
    }
    tern_client_destroy(&client);
}

Test(cluster_group, handover_round_trip_adopts_state) {
    it_cluster_t *c = s_cluster();
    char topic[64];
    int a = s_topic(c, topic, sizeof topic);
    int b = it_cluster_follower(c, S_PT, a);
    s_consume(c, a, topic, 1, S_N, 5);
    cr_assert(it_cluster_verified(c, a, S_WAIT_MS), "replicas differ on A");
    it_cluster_handover(c, S_PT, b, S_WAIT_MS);
    s_consume(c, b, topic, 6, S_N, 15);
    cr_assert(it_cluster_verified(c, b, S_WAIT_MS), "replicas differ on B");
    it_cluster_handover(c, S_PT, a, S_WAIT_MS);
    s_consume(c, a, topic, 16, S_N, S_N);
    it_cluster_destroy(&c);
}

#define S_PUBS 300 //  published while the group opens

typedef struct {
    it_cluster_t *c;      //  the cluster
    int node;             //  the producer's first seed
    const char *topic;    //  where
    uint64_t seq[S_PUBS]; //  seq of each acknowledged publish (0: not acknowledged)
    atomic_int count;     //  publishes done
    atomic_bool opened;   //  the group's SUBSCRIBE was answered
} s_producer_t;

static void *s_produce(void *arg) {
    s_producer_t *p = arg;
    char endpoints[IT_CLUSTER_NODES_MAX * 64];
    tern_client_options_t options;
    tern_client_options_init(&options);
    tern_client_t *client = tern_client_new(
        it_cluster_endpoints_from(p->c, p->node, endpoints, sizeof endpoints), &options);
    for (int i = 0; client && i < S_PUBS; i++) {
        //  The last quarter goes after the group's OK (which waits for the
        //  ISR), so the group from NEW has messages to get.
        for (int w = 0; i == S_PUBS * 3 / 4 && !atomic_load(&p->opened) && w < 3000; w++) {
            it_sleep_ms(10);
        }
        tern_pub_options_t msg;
        tern_pub_options_init(&msg);
        msg.topic = p->topic;
        msg.payload = "n";
        msg.size = 1;
        tern_pub_result_t res;
        if (tern_publish(client, &msg, 10000, &res) == TERN_OK && !res.duplicate) {
            p->seq[i] = res.seq;
        }
        atomic_store(&p->count, i + 1);
    }
    tern_client_destroy(&client);
    return NULL;
}

Test(cluster_group, open_new_while_publishing_survives_failover) {
    it_cluster_t *c = s_cluster();
    char topic[64];
    int leader = s_topic(c, topic, sizeof topic);
    s_producer_t *p = calloc(1, sizeof *p);
    *p = (s_producer_t){.c = c, .node = leader, .topic = topic};
    pthread_t thread;
    cr_assert_eq(pthread_create(&thread, NULL, s_produce, p), 0);
    while (atomic_load(&p->count) < S_PUBS / 4) {
        it_sleep_ms(5);
    }
    tern_client_t *client = s_client(c, leader);
    tern_subscription_t *sub = s_subscribe_at(client, topic, "n", TERN_FROM_NEW);
    atomic_store(&p->opened, true);
    uint64_t start = UINT64_MAX; //  the lowest seq the leader delivered to the group
    for (;;) {
        tern_message_t *msg = NULL;
        bool done = atomic_load(&p->count) == S_PUBS;
        if (tern_subscription_next(sub, done ? 1000 : 200, &msg) != TERN_OK) {
            if (done) {
                break;
            }
            continue;
        }
        start = tern_message_seq(msg) < start ? tern_message_seq(msg) : start;
        tern_message_destroy(&msg); //  not acked
    }
    pthread_join(thread, NULL);
    cr_assert_neq(start, UINT64_MAX, "nothing delivered to the group opened from NEW");
    cr_assert_gt(start, S_N, "a group from NEW got an older message");
    tern_client_destroy(&client);
    cr_assert(it_cluster_verified(c, leader, S_WAIT_MS), "replicas differ (the group's start?)");

    it_cluster_kill_node(c, leader);
    tern_partmap_record_t rec;
    cr_assert(it_cluster_wait_leader(c, S_PT, leader, 0, S_WAIT_MS, &rec), "no new leader");
    client = s_client(c, (int)rec.leader);
    sub = s_subscribe_at(client, topic, "n", TERN_FROM_NEW); //  exists: NEW is not used
    uint64_t last = 0;
    for (int i = 0; i < S_PUBS; i++) {
        last = p->seq[i] > last ? p->seq[i] : last;
    }
    bool *seen = calloc(last + 1, sizeof *seen);
    for (uint64_t missing = 1; missing > 0;) {
        missing = 0;
        for (int i = 0; i < S_PUBS; i++) {
            missing += p->seq[i] >= start && !seen[p->seq[i]];
        }
        if (missing == 0) {
            break;
        }
        tern_message_t *msg = NULL;
        cr_assert_eq(tern_subscription_next(sub, 20000, &msg), TERN_OK,
                     "%" PRIu64 " acknowledged messages from seq %" PRIu64 " never delivered",
                     missing, start);
        uint64_t seq = tern_message_seq(msg);
        if (seq <= last) {
            seen[seq] = true;
        }
        cr_assert_eq(tern_message_ack(msg, false), TERN_OK);
        tern_message_destroy(&msg);
    }
    free(seen);
    free(p);
    tern_client_destroy(&client);
    it_cluster_destroy(&c);
}

typedef struct {
    tern_client_t *client; //  borrowed
    const char *topic;     //  where
    tern_err_t rc;         //  tern_subscribe's answer
    atomic_bool done;      //  answered
} s_opener_t;

static void *s_open_group(void *arg) {
    s_opener_t *o = arg;
    tern_sub_options_t so;
    tern_sub_options_init(&so);
    so.group = "late";
    so.start = TERN_FROM_NEW;
    so.credit = 100;
    tern_subscription_t *sub = NULL;
    o->rc = tern_subscribe(o->client, o->topic, &so, NULL, NULL, &sub);
    atomic_store(&o->done, true);
    return NULL;
}

Test(cluster_group, new_group_survives_kill_after_subscribe) {
    it_cluster_t *c = s_cluster();
    char topic[64];
    int leader = s_topic(c, topic, sizeof topic);
    tern_partmap_record_t rec;
    cr_assert(it_cluster_record(c, S_PT, &rec, false));
    tern_client_t *client = s_client(c, leader);
    for (uint32_t i = 0; i < rec.nreplicas; i++) {
        if ((int)rec.replicas[i] != leader) {
            it_cluster_pause_node(c, (int)rec.replicas[i]);
        }
    }
    s_opener_t opener = {.client = client, .topic = topic};
    pthread_t thread;
    cr_assert_eq(pthread_create(&thread, NULL, s_open_group, &opener), 0);
    it_sleep_ms(500); //  far below cluster/isr_lag and cluster/ack_timeout
    bool early = atomic_load(&opener.done);
    for (uint32_t i = 0; i < rec.nreplicas; i++) {
        if ((int)rec.replicas[i] != leader) {
            it_cluster_resume_node(c, (int)rec.replicas[i]);
        }
    }
    pthread_join(thread, NULL);
    it_cluster_kill_node(c, leader); //  at once
    tern_client_destroy(&client);    //  before it could open the group again anywhere
    cr_assert_not(early, "the subscription was answered before any follower could have its group");
    cr_assert_eq(opener.rc, TERN_OK, "%s", tern_last_reason());

    cr_assert(it_cluster_wait_leader(c, S_PT, leader, 0, S_WAIT_MS, &rec), "no new leader");
    int next = (int)rec.leader;
    it_pub(c->node[next], topic, "after{n}", S_N); //  seqs S_N + 1 .. 2 * S_N
    client = s_client(c, next);
    tern_subscription_t *sub = s_subscribe_at(client, topic, "late", TERN_FROM_NEW);
    bool seen[2 * S_N + 1] = {false};
    for (int missing = S_N; missing > 0;) {
        tern_message_t *msg = NULL;
        cr_assert_eq(tern_subscription_next(sub, 20000, &msg), TERN_OK,
                     "%d messages published after the subscription was answered never came "
                     "(the group was lost with the leader)",
                     missing);
        uint64_t seq = tern_message_seq(msg);
        cr_assert(seq > S_N && seq <= 2 * S_N, "seq %" PRIu64 " is older than the group", seq);
        missing -= !seen[seq];
        seen[seq] = true;
        cr_assert_eq(tern_message_ack(msg, false), TERN_OK);
        tern_message_destroy(&msg);
    }
    tern_client_destroy(&client);
    it_cluster_destroy(&c);
}
