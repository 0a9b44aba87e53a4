/*  it_cluster_fault.c - fault tests of a clustered DC (issue 14, "Proof").

    Each test starts etcd and three ternd nodes (cluster_harness.h), puts
    them under load from producers that use producer ids (libtern, one
    synchronous publish at a time, every attempt recorded), injects one
    fault, waits until the service returns by itself, lets a consumer group
    read every topic from its leader, runs `ternctl cluster verify`, then
    freezes the cluster (kill -9 of every node), reads each in-sync
    replica's data dir with tern_store_new and hands the whole history to
    tern-check (docs/checker.md): every acknowledged message must be on
    every ISR replica exactly once, at its seq, in producer order, delivered
    to the group; and (last, see s_check_refusals) nothing refused as
    TERN_EREPLICAS may have been kept (conn refuses with it before the
    storer; a publish appended and not confirmed gets TERN_ETIMEOUT).

    Faults (short form; tools/chaos/leader-kills.sh runs the long one):
    kill -9 of a partition leader in a loop, of a follower, of the
    controller; SIGSTOP of a leader past its lease then SIGCONT (a raw
    client queues publishes to it while it is stopped: it must acknowledge
    none of them); every node killed at once; a rolling restart; one of
    three etcd members killed; etcd stopped for 10 s; a leader cut off from
    its followers while it reaches etcd, and one cut off from etcd while it
    reaches its followers (here links are cut inside the processes by
    cut_shim.c; it_cluster_netns.c runs the same two tests with real
    blackhole routes between network namespaces it creates).

    TERN_FAULT_LOGS=1 prints every node's log (its last 8 KB) before the
    freeze. TERN_CHAOS_KILLS=N sets the leader kills of
    cluster_fault/leader_kills (default 20, as issue 14 asks); each kill prints one `failover:`
    line and the test a `failover-summary:` line with p50/p99 (no timing is
    asserted).
*/
#include "cluster_harness.h"
#include "tern_partition.h"
#include "tern_store.h"
#include "test_dir.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_NODES          3
#define S_PARTITIONS     4
#define S_PRODUCERS      2    //  producer I publishes to a topic of partition I
#define S_PUB_TIMEOUT_MS 5000 //  > cluster/ack_timeout: a refusal comes before it
#define S_RESUME_MS      45000
#define S_GROUP          "fault-g"
#define S_KILLS_MAX      1000

//  Fast failure detection, so a test spends seconds per fault; ack_timeout
//  above isr_lag so a dead follower leaves the ISR before publishes time out.
static const char *const s_flags[] = {
    "--lease", "1s", "--ack-timeout", "2s", "--isr-lag", "1s", "--dedup-window", "10m", NULL};

//  s_flags with the lease, ack_timeout and isr_lag the long runs may set
//  instead (TERN_CHAOS_LEASE, TERN_CHAOS_ACK_TIMEOUT, TERN_CHAOS_ISR_LAG;
//  tools/chaos/leader-kills.sh's profiles), so a failover can be timed
//  under the profile it documents.
static const char *const *s_run_flags(const char **flags) {
    const char *lease = getenv("TERN_CHAOS_LEASE");
    const char *ack = getenv("TERN_CHAOS_ACK_TIMEOUT");
    const char *lag = getenv("TERN_CHAOS_ISR_LAG");
    int k = 0;
    for (; s_flags[k]; k++) {
        flags[k] = s_flags[k];
    }
    flags[k] = NULL;
    flags[1] = lease && *lease ? lease : flags[1];
    flags[3] = ack && *ack ? ack : flags[3];
    flags[5] = lag && *lag ? lag : flags[5];
    return flags;
}

typedef struct s_run_t s_run_t;
static s_run_t *s_running; //  the test's run while its producers run

//  One producer thread and what it saw.
typedef struct {
    s_run_t *run;          //  the test it belongs to
    char producer[32];     //  producer id
    char topic[64];        //  its topic
    uint32_t partition;    //  the topic's partition
    int first;             //  node whose endpoint it tries first
    pthread_t thread;      //  the thread
    uint64_t next_seq;     //  first producer_seq not acknowledged yet (thread only)
    tern_err_t last_code;  //  outcome of its last attempt (thread only)
    atomic_ullong acked;   //  acknowledgements
    atomic_ullong errors;  //  failed attempts
    atomic_ullong clear;   //  failed with TERN_ENOTLEADER or TERN_EREPLICAS
    atomic_llong last_ack; //  it_now_ms() of the last acknowledgement
} s_producer_t;

//  One test's cluster, history file and producers.
struct s_run_t {
    it_cluster_t *cl;               //  the cluster
    char dir[TEST_DIR_MAX];         //  temp dir of the history
    char path[TEST_DIR_MAX + 32];   //  the history file
    FILE *hist;                     //  open on PATH, line-buffered writes
    atomic_bool stop;               //  producers stop at their next attempt
    s_producer_t prod[S_PRODUCERS]; //  the producers
};

//  A client for P, trying node P->first's endpoint first.
static tern_client_t *s_connect(s_producer_t *p, const char *name) {
    char eps[IT_CLUSTER_NODES_MAX * 64];
    it_cluster_endpoints_from(p->run->cl, p->first, eps, sizeof eps);
    tern_client_options_t options;
    tern_client_options_init(&options);
    options.name = name;
    options.producer_id = p->producer;
    options.window = 64;
    options.connect_timeout_ms = 1000;
    options.backoff_min_ms = 50;
    options.backoff_max_ms = 300;
    return tern_client_new(eps, &options);
}

//  After a failure: the node an ENOTLEADER reason names ("... led by node N
//  at ENDPOINT"), the same node after TERN_EREPLICAS (it leads, its
//  replicas lag), else the next node.
static void s_next_first(s_producer_t *p, tern_err_t rc, const char *reason) {
    if (rc == TERN_EREPLICAS) {
        return;
    }
    const char *at = rc == TERN_ENOTLEADER && reason ? strstr(reason, "led by node ") : NULL;
    if (at != NULL) {
        int node = atoi(at + 12);
        if (node >= 0 && node < p->run->cl->count) {
            p->first = node;
            return;
        }
    }
    p->first = (p->first + 1) % p->run->cl->count;
}

static void s_record_publish(s_producer_t *p, const char *client, uint64_t pseq, tern_err_t rc,
                             const tern_pub_result_t *res) {
    if (rc == TERN_OK) {
        fprintf(p->run->hist,
                "{\"ev\":\"publish\",\"client\":\"%s\",\"producer\":\"%s\",\"producer_seq\":%llu,"
                "\"topic\":\"%s\",\"outcome\":\"ok\",\"msg_id\":%llu,\"seq\":%llu,"
                "\"duplicate\":%s}\n",
                client, p->producer, (unsigned long long)pseq, p->topic,
                (unsigned long long)res->msg_id, (unsigned long long)res->seq,
                res->duplicate ? "true" : "false");
    } else {
        fprintf(p->run->hist,
                "{\"ev\":\"publish\",\"client\":\"%s\",\"producer\":\"%s\",\"producer_seq\":%llu,"
                "\"topic\":\"%s\",\"outcome\":\"err\",\"code\":%d}\n",
                client, p->producer, (unsigned long long)pseq, p->topic, (int)rc);
    }
}

//  Publishes producer_seq 1, 2, ... one at a time; a failed one is sent
//  again (same producer_seq) on a fresh client until it is acknowledged.
static void *s_producer_main(void *arg) {
    s_producer_t *p = arg;
    tern_client_t *client = NULL;
    p->next_seq = 1;
    while (!atomic_load(&p->run->stop)) {
        if (client == NULL && (client = s_connect(p, p->producer)) == NULL) {
            it_sleep_ms(100);
            continue;
        }
        char data[64];
        snprintf(data, sizeof data, "%s-%llu", p->producer, (unsigned long long)p->next_seq);
        tern_pub_options_t msg;
        tern_pub_options_init(&msg);
        msg.topic = p->topic;
        msg.payload = data;
        msg.size = strlen(data);
        msg.producer_seq = p->next_seq;
        tern_pub_result_t res;
        memset(&res, 0, sizeof res);
        tern_err_t rc = tern_publish(client, &msg, S_PUB_TIMEOUT_MS, &res);
        s_record_publish(p, p->producer, p->next_seq, rc, &res);
        if (rc == TERN_OK) {
            p->next_seq++;
            atomic_store(&p->last_ack, it_now_ms());
            p->last_code = TERN_OK;
            atomic_fetch_add(&p->acked, 1);
            continue;
        }
        atomic_fetch_add(&p->errors, 1);
        if (rc != p->last_code) {
            //  Each change of error is worth a line: it tells a failing
            //  run what the producer was told.
            fprintf(stderr, "it_cluster_fault: %s seq %llu: %s: %s\n", p->producer,
                    (unsigned long long)p->next_seq, tern_errname(rc),
                    res.reason && res.reason[0] ? res.reason : tern_last_reason());
            p->last_code = rc;
        }
        if (rc == TERN_ENOTLEADER || rc == TERN_EREPLICAS) {
            atomic_fetch_add(&p->clear, 1);
        }
        s_next_first(p, rc, res.reason);
        tern_client_destroy(&client);
        it_sleep_ms(50);
    }
    tern_client_destroy(&client);
    return NULL;
}

//  A cluster of S_NODES over ETCD_MEMBERS with every partition led (its
//  links cuttable when CUTS), a history file, and the producers running.
static s_run_t *s_run_start(int etcd_members, bool cuts) {
    //  Static, not on the test's stack: a failed assertion leaves the test
    //  function while the producers still use it (s_fini stops them).
    static s_run_t the_run;
    s_run_t *run = &the_run;
    memset(run, 0, sizeof *run);
    const char *flags[sizeof s_flags / sizeof s_flags[0]];
    run->cl = it_cluster_new(S_NODES, etcd_members, S_PARTITIONS, s_run_flags(flags));
    cr_assert(run->cl, "cannot set up the cluster");
    cr_assert(!cuts || it_cluster_enable_cuts(run->cl), "cannot enable link cuts");
    cr_assert(it_cluster_start(run->cl, 60000), "the cluster did not start");
    cr_assert(test_dir_make(run->dir, "fault"), "temp dir");
    snprintf(run->path, sizeof run->path, "%.*s/history.jsonl", TEST_DIR_MAX, run->dir);
    run->hist = fopen(run->path, "w");
    cr_assert(run->hist, "cannot write %s", run->path);
    setvbuf(run->hist, NULL, _IOLBF, 0);
    for (int i = 0; i < S_PRODUCERS; i++) {
        s_producer_t *p = &run->prod[i];
        p->run = run;
        p->partition = (uint32_t)i;
        snprintf(p->producer, sizeof p->producer, "FP%d-%d", i, (int)getpid());
        it_cluster_topic_for(run->cl, p->partition, "fault", p->topic, sizeof p->topic);
        p->first = it_cluster_leader(run->cl, p->partition);
        cr_assert_eq(pthread_create(&p->thread, NULL, s_producer_main, p), 0);
    }
    s_running = run;
    return run;
}

//  Waits until every producer got WANT more acknowledgements than it had
//  at the call, or TIMEOUT_MS; false (with the counts) if one did not.
static bool s_progress(s_run_t *run, unsigned long long want, int timeout_ms) {
    unsigned long long base[S_PRODUCERS];
    for (int i = 0; i < S_PRODUCERS; i++) {
        base[i] = atomic_load(&run->prod[i].acked);
    }
    int64_t deadline = it_now_ms() + timeout_ms;
    for (int i = 0; i < S_PRODUCERS; i++) {
        s_producer_t *p = &run->prod[i];
        while (atomic_load(&p->acked) < base[i] + want) {
            if (it_now_ms() >= deadline) {
                fprintf(stderr,
                        "it_cluster_fault: producer %s: %llu acks (%llu errors) since the wait "
                        "began, %llu wanted\n",
                        p->producer, atomic_load(&p->acked) - base[i], atomic_load(&p->errors),
                        want);
                return false;
            }
            it_sleep_ms(10);
        }
    }
    return true;
}

static void s_stop_producers(s_run_t *run) {
    atomic_store(&run->stop, true);
    s_running = NULL;
    for (int i = 0; i < S_PRODUCERS; i++) {
        pthread_join(run->prod[i].thread, NULL);
        fprintf(stderr, "it_cluster_fault: producer %s: %llu acked, %llu failed (%llu clear)\n",
                run->prod[i].producer, atomic_load(&run->prod[i].acked),
                atomic_load(&run->prod[i].errors), atomic_load(&run->prod[i].clear));
    }
}

//  One delivery: a deliver line, the ack, an ack line once it was sent.
static void s_on_delivery(s_run_t *run, tern_message_t *msg) {
    unsigned long long msg_id = tern_message_id(msg);
    fprintf(run->hist,
            "{\"ev\":\"deliver\",\"group\":\"" S_GROUP "\",\"consumer\":\"fault-c\","
            "\"topic\":\"%s\",\"msg_id\":%llu,\"seq\":%llu,\"delivery_count\":%u,"
            "\"producer\":\"%s\",\"producer_seq\":%llu}\n",
            tern_message_topic(msg), msg_id, (unsigned long long)tern_message_seq(msg),
            tern_message_delivery_count(msg), tern_message_producer(msg),
            (unsigned long long)tern_message_producer_seq(msg));
    if (tern_message_ack(msg, false) == TERN_OK) {
        fprintf(run->hist, "{\"ev\":\"ack\",\"group\":\"" S_GROUP "\",\"msg_id\":%llu}\n", msg_id);
    }
}

//  Consumes P's topic as group S_GROUP from its leader until every
//  acknowledged producer_seq was delivered (or 30 s: tern-check then names
//  what was not).
static void s_consume(s_run_t *run, s_producer_t *p) {
    tern_partmap_record_t rec;
    cr_assert(it_cluster_wait_leader(run->cl, p->partition, -1, 0, 30000, &rec),
              "partition %u has no leader to consume from", p->partition);
    fprintf(run->hist, "{\"ev\":\"group\",\"group\":\"" S_GROUP "\",\"topic\":\"%s\"}\n", p->topic);
    p->first = (int)rec.leader;
    tern_client_t *client = s_connect(p, "fault-c");
    cr_assert(client, "consumer client: %s", tern_last_reason());
    tern_sub_options_t options;
    tern_sub_options_init(&options);
    options.group = S_GROUP;
    options.start = TERN_FROM_FIRST;
    tern_subscription_t *sub = NULL;
    cr_assert_eq(tern_subscribe(client, p->topic, &options, NULL, NULL, &sub), TERN_OK,
                 "subscribe %s: %s", p->topic, tern_last_reason());
    size_t want = (size_t)(p->next_seq - 1), distinct = 0;
    bool *seen = calloc(want + 1, 1);
    int64_t deadline = it_now_ms() + 30000;
    while (distinct < want && it_now_ms() < deadline) {
        tern_message_t *msg = NULL;
        if (tern_subscription_next(sub, 500, &msg) != TERN_OK) {
            continue;
        }
        uint64_t pseq = tern_message_producer_seq(msg);
        if (strcmp(tern_message_producer(msg), p->producer) == 0 && pseq >= 1 && pseq <= want &&
            !seen[pseq]) {
            seen[pseq] = true;
            distinct++;
        }
        s_on_delivery(run, msg);
        tern_message_destroy(&msg);
    }
    fprintf(stderr, "it_cluster_fault: %s: %zu of %zu delivered\n", p->topic, distinct, want);
    free(seen);
    tern_client_destroy(&client);
}

//  Every stored message of TOPIC in node I's data dir as stored lines,
//  after a node line (an empty or missing log still counts).
static void s_dump_node(s_run_t *run, int i, const char *topic) {
    tern_store_t *store = it_cluster_store_open(run->cl->node[i]);
    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    fprintf(run->hist, "{\"ev\":\"node\",\"node\":\"n%d\",\"topic\":\"%s\"}\n", i, topic);
    tern_topic_info_t info;
    if (tern_store_topic_get(reader, topic, &info) == TERN_OK) {
        tern_frame_t msg;
        uint64_t seq = 1;
        while (tern_store_read_next(reader, info.id, seq, &msg) == TERN_OK) {
            fprintf(run->hist,
                    "{\"ev\":\"stored\",\"node\":\"n%d\",\"topic\":\"%s\",\"seq\":%llu,"
                    "\"msg_id\":%llu,\"producer\":\"%s\",\"producer_seq\":%llu}\n",
                    i, topic, (unsigned long long)msg.seq, (unsigned long long)msg.msg_id,
                    msg.producer, (unsigned long long)msg.producer_seq);
            seq = msg.seq + 1;
        }
    }
    tern_store_read_end(reader);
    tern_store_reader_destroy(&reader);
    tern_store_destroy(&store);
}

//  Runs tern-check on the history with --min-logs 2 (min_insync is 2: every
//  acknowledged message is on two ISR copies at least, and the test must
//  look at that many) and, when REFUSED, --refused-code TERN_EREPLICAS;
//  returns its exit status, its output on stderr.
static int s_tern_check(s_run_t *run, bool refused) {
    char bin[512];
    snprintf(bin, sizeof bin, "%s/tern-check", TERN_BIN_DIR);
    char *argv[10] = {bin, "--limit", "20", "--min-logs", "2"};
    int argc = 5;
    if (refused) {
        argv[argc++] = "--refused-code";
        argv[argc++] = "TERN_EREPLICAS";
    }
    argv[argc++] = run->path;
    argv[argc] = NULL;
    it_result_t r;
    int rc = it_run(&r, 120000, NULL, argv);
    fprintf(stderr, "%s%s", r.out, r.err);
    it_result_free(&r);
    return rc;
}

//  The checker on rules (a), (b), (c), (e): nothing acknowledged lost,
//  stored twice, reordered or undelivered.
static void s_check(s_run_t *run) {
    int rc = s_tern_check(run, false);
    cr_assert_eq(rc, 0,
                 "tern-check found violations of (a), (b), (c) or (e) (history %s kept, the "
                 "nodes' logs beside it)",
                 run->path);
}

//  The last step of every test, after its own assertions: the checker on
//  rule (d) for TERN_EREPLICAS, which the issue states as "nothing refused
//  as TERN_EREPLICAS was later acknowledged"; then the history goes.
//  TERN_EREPLICAS is answered by conn before the storer (the record's ISR
//  is below min_insync); what the leader appended and its ISR did not
//  confirm is TERN_ETIMEOUT (outcome unknown, not checked by rule d).
static void s_check_refusals(s_run_t *run) {
    int rc = s_tern_check(run, true);
    cr_assert_eq(rc, 0,
                 "a publish refused with TERN_EREPLICAS was kept: stored, delivered or later "
                 "acknowledged as a duplicate (rule d; history %s kept)",
                 run->path);
    test_dir_remove(run->dir);
}

//  `ternctl cluster verify` on a live node: the replicas of every
//  partition must hold identical copies (digests of records, msg_ids and
//  dedup entries) up to the seq all of them hold. Returns its exit code;
//  asserted after the checker ran, so that a difference comes with the
//  checker's account of the records.
static int s_verify(s_run_t *run) {
    int node = it_cluster_leader(run->cl, 0);
    it_result_t r;
    int rc = it_ctl(&r, run->cl->node[node >= 0 ? node : 0], 60000, "cluster", "verify", NULL);
    fprintf(stderr, "it_cluster_fault: ternctl cluster verify: exit %d\n%s%s", rc, r.out, r.err);
    it_result_free(&r);
    return rc;
}

//  The end of every test: service must have returned; the group reads
//  every topic; the ISR of each partition is read from etcd; `ternctl
//  cluster verify` compares the replicas; every node is killed at once
//  (the logs freeze); each ISR replica's log is dumped; the checker runs.
static void s_run_finish(s_run_t *run) {
    cr_assert(s_progress(run, 5, S_RESUME_MS), "publishing did not resume after the fault");
    s_stop_producers(run);
    for (int i = 0; i < S_PRODUCERS; i++) {
        s_consume(run, &run->prod[i]);
    }
    tern_partmap_record_t isr[S_PRODUCERS];
    for (int i = 0; i < S_PRODUCERS; i++) {
        //  Not asserted: a replica that never rejoins is still checked as
        //  far as the ISR goes, and the wait prints the record.
        it_cluster_wait_isr_full(run->cl, run->prod[i].partition, 15000, &isr[i]);
    }
    int verify = s_verify(run);
    //  Kept beside the history, which a failing test keeps.
    it_cluster_keep_logs(run->cl, run->dir);
    if (getenv("TERN_FAULT_LOGS")) {
        it_cluster_dump_logs(run->cl);
    }
    for (int i = 0; i < run->cl->count; i++) {
        it_cluster_kill_node(run->cl, i);
    }
    for (int i = 0; i < S_PRODUCERS; i++) {
        cr_assert(isr[i].nisr > 0, "partition %u: no ISR read", run->prod[i].partition);
        for (uint32_t k = 0; k < isr[i].nisr; k++) {
            s_dump_node(run, (int)isr[i].isr[k], run->prod[i].topic);
        }
    }
    fflush(run->hist);
    s_check(run);
    fclose(run->hist);
    cr_assert_eq(verify, 0,
                 "ternctl cluster verify: the replicas differ (its rows above; the nodes' logs "
                 "in %s; the checker found the records in agreement)",
                 run->dir);
    it_cluster_destroy(&run->cl);
}

//  No per-test timeout: ctest bounds the short form, and the long form
//  (TERN_CHAOS_KILLS) may run for hours.
//  A test that failed with its producers running stops them before the
//  cluster they use goes.
static void s_fini(void) {
    if (s_running) {
        s_stop_producers(s_running);
    }
    it_cluster_teardown();
}

TestSuite(cluster_fault, .fini = s_fini);

//  The harness itself, without ternd: the map is read from etcd as the
//  nodes write it (epoch from the value, else the key's mod_revision), and
//  topic_for finds topics of a given partition.
Test(cluster_fault, harness_reads_the_map) {
    it_cluster_t *cl = it_cluster_new(S_NODES, 1, S_PARTITIONS, NULL);
    cr_assert(cl, "cannot set up the cluster");
    char key[96];
    snprintf(key, sizeof key, "/tern/%s/partitions/1", cl->name);
    const char *leader_change = "partition=1 leader=2 replicas=2,0,1 isr=2,0";
    int64_t revision = 0;
    cr_assert_eq(tern_etcd_put(cl->kv, key, leader_change, strlen(leader_change), 0, &revision),
                 TERN_OK, "%s", tern_etcd_reason(cl->kv));
    tern_partmap_record_t rec;
    cr_assert(it_cluster_record(cl, 1, &rec, false));
    cr_assert_eq(rec.leader, 2);
    cr_assert_eq(rec.epoch, (uint64_t)revision, "epoch %llu, mod_revision %lld",
                 (unsigned long long)rec.epoch, (long long)revision);
    cr_assert_eq(rec.nisr, 2);
    cr_assert_eq(it_cluster_leader(cl, 1), 2);
    //  An ISR-only change keeps the epoch in the value.
    const char *isr_change = "partition=1 leader=2 epoch=7 replicas=2,0,1 isr=2,0,1";
    cr_assert_eq(tern_etcd_put(cl->kv, key, isr_change, strlen(isr_change), 0, NULL), TERN_OK);
    cr_assert(it_cluster_wait_isr_full(cl, 1, 1000, &rec));
    cr_assert_eq(rec.epoch, 7);
    //  A leader change is what wait_leader waits for.
    cr_assert_not(it_cluster_wait_leader(cl, 1, 2, 0, 100, &rec));
    cr_assert(it_cluster_wait_leader(cl, 1, 0, revision, 100, &rec));
    cr_assert_eq(it_cluster_leader(cl, 0), -1, "no record: no leader");
    cr_assert_not(it_cluster_record(cl, 0, &rec, true));
    const char *garbage = "leader=banana";
    cr_assert_eq(tern_etcd_put(cl->kv, key, garbage, strlen(garbage), 0, NULL), TERN_OK);
    cr_assert_not(it_cluster_record(cl, 1, &rec, true), "a malformed record is no record");
    char controller[96];
    snprintf(controller, sizeof controller, "/tern/%s/controller", cl->name);
    cr_assert_eq(it_cluster_controller(cl), -1);
    cr_assert_eq(tern_etcd_put(cl->kv, controller, "2", 1, 0, NULL), TERN_OK);
    cr_assert_eq(it_cluster_controller(cl), 2);
    for (uint32_t p = 0; p < S_PARTITIONS; p++) {
        char topic[64];
        it_cluster_topic_for(cl, p, "self", topic, sizeof topic);
        cr_assert_eq(tern_partition_of(topic, strlen(topic), S_PARTITIONS), p);
    }
    char eps[IT_CLUSTER_NODES_MAX * 64];
    it_cluster_endpoints_from(cl, 2, eps, sizeof eps);
    cr_assert(strncmp(eps, cl->node[2]->endpoint, strlen(cl->node[2]->endpoint)) == 0, "%s", eps);
    cr_assert_eq(strlen(eps), strlen(cl->endpoints));
    it_cluster_destroy(&cl);
}

//  The link cuts themselves: with its client port cut, a node answers no
//  ternctl; healed, it does again.
Test(cluster_fault, harness_cuts_links) {
    it_cluster_t *cl = it_cluster_new(1, 1, 1, s_flags);
    cr_assert(cl, "cannot set up the cluster");
    cr_assert(it_cluster_enable_cuts(cl));
    cr_assert(it_cluster_start(cl, 60000), "the node did not start");
    it_result_t r;
    it_ctl(&r, cl->node[0], 10000, "status", NULL);
    it_assert_ok(&r, "status before the cut");
    it_result_free(&r);
    int port = cl->node[0]->port;
    cr_assert(it_cluster_cut(cl, 0, &port, 1));
    int rc = it_ctl(&r, cl->node[0], 10000, "--timeout", "1s", "status", NULL);
    cr_assert_neq(rc, 0, "ternctl status answered through a cut link:\n%s", r.out);
    it_result_free(&r);
    cr_assert(it_cluster_cut(cl, 0, NULL, 0));
    it_ctl(&r, cl->node[0], 10000, "status", NULL);
    it_assert_ok(&r, "status after the heal");
    it_result_free(&r);
    it_cluster_destroy(&cl);
}

static double s_percentile(int64_t *v, int n, double q) {
    for (int i = 1; i < n; i++) {
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            int64_t t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    }
    int k = (int)(q * (n - 1) + 0.5);
    return n > 0 ? (double)v[k] : 0;
}

//  kill -9 of partition 0's leader; returns the failover times: until etcd
//  names a new leader, and until the producer's next acknowledgement after
//  that (both from the kill).
static void s_kill_leader_once(s_run_t *run, int k, int64_t *leader_ms, int64_t *ack_ms) {
    s_producer_t *p = &run->prod[0];
    tern_partmap_record_t rec;
    cr_assert(it_cluster_wait_leader(run->cl, p->partition, -1, 0, 30000, &rec));
    int victim = (int)rec.leader;
    int64_t t0 = it_now_ms();
    it_cluster_kill_node(run->cl, victim);
    cr_assert(it_cluster_wait_leader(run->cl, p->partition, victim, rec.epoch, 30000, &rec),
              "kill %d: no new leader after node %d", k, victim);
    *leader_ms = it_now_ms() - t0;
    unsigned long long acked = atomic_load(&p->acked);
    int64_t deadline = it_now_ms() + S_RESUME_MS;
    while (atomic_load(&p->acked) == acked && it_now_ms() < deadline) {
        it_sleep_ms(5);
    }
    cr_assert_gt(atomic_load(&p->acked), acked, "kill %d: no ack after the new leader", k);
    *ack_ms = atomic_load(&p->last_ack) - t0;
    fprintf(stderr,
            "failover: kill %d node %d -> leader %u epoch %llu leader_ms=%lld ack_ms=%lld\n", k,
            victim, rec.leader, (unsigned long long)rec.epoch, (long long)*leader_ms,
            (long long)*ack_ms);
    cr_assert(it_cluster_start_node(run->cl, victim), "node %d did not restart", victim);
    //  The next kill must find the restarted node back in sync, else it
    //  would take the last in-sync copy down with it.
    cr_assert(it_cluster_wait_isr_full(run->cl, p->partition, 30000, &rec),
              "kill %d: node %d did not rejoin the ISR", k, victim);
}

Test(cluster_fault, leader_kills) {
    const char *env = getenv("TERN_CHAOS_KILLS");
    int kills = env ? atoi(env) : 20;
    kills = kills < 1 ? 1 : kills > S_KILLS_MAX ? S_KILLS_MAX : kills;
    static int64_t leader_ms[S_KILLS_MAX], ack_ms[S_KILLS_MAX];
    s_run_t *run = s_run_start(1, false);
    cr_assert(s_progress(run, 20, S_RESUME_MS), "no load before the first kill");
    for (int k = 0; k < kills; k++) {
        s_kill_leader_once(run, k + 1, &leader_ms[k], &ack_ms[k]);
        cr_assert(s_progress(run, 10, S_RESUME_MS), "kill %d: publishing did not resume", k + 1);
    }
    fprintf(stderr,
            "failover-summary: kills=%d leader_p50_ms=%.0f leader_p99_ms=%.0f ack_p50_ms=%.0f "
            "ack_p99_ms=%.0f\n",
            kills, s_percentile(leader_ms, kills, 0.5), s_percentile(leader_ms, kills, 0.99),
            s_percentile(ack_ms, kills, 0.5), s_percentile(ack_ms, kills, 0.99));
    s_run_finish(run);
    s_check_refusals(run);
}

//  A follower of partition 0 (one that leads neither producer's partition
//  if there is one) dies; the leader goes on without it.
Test(cluster_fault, follower_kill) {
    s_run_t *run = s_run_start(1, false);
    cr_assert(s_progress(run, 20, S_RESUME_MS), "no load before the fault");
    tern_partmap_record_t rec;
    cr_assert(it_cluster_record(run->cl, 0, &rec, false));
    int victim = -1;
    for (uint32_t k = 0; k < rec.nreplicas && victim < 0; k++) {
        if (rec.replicas[k] != rec.leader) {
            victim = (int)rec.replicas[k];
        }
    }
    cr_assert_geq(victim, 0, "partition 0 has no follower");
    it_cluster_kill_node(run->cl, victim);
    cr_assert(s_progress(run, 20, S_RESUME_MS), "publishing stopped with a follower down");
    cr_assert(it_cluster_start_node(run->cl, victim), "node %d did not restart", victim);
    cr_assert(it_cluster_wait_isr_full(run->cl, 0, 30000, &rec), "node %d did not rejoin", victim);
    s_run_finish(run);
    s_check_refusals(run);
}

//  The controller dies: another node takes the role, the partitions it led
//  fail over.
Test(cluster_fault, controller_kill) {
    s_run_t *run = s_run_start(1, false);
    cr_assert(s_progress(run, 20, S_RESUME_MS), "no load before the fault");
    int victim = it_cluster_controller(run->cl);
    cr_assert_geq(victim, 0, "etcd names no controller");
    it_cluster_kill_node(run->cl, victim);
    int64_t deadline = it_now_ms() + 30000;
    int now = victim;
    while ((now < 0 || now == victim) && it_now_ms() < deadline) {
        it_sleep_ms(20);
        now = it_cluster_controller(run->cl);
    }
    cr_assert(now >= 0 && now != victim, "no new controller after node %d", victim);
    for (uint32_t p = 0; p < S_PARTITIONS; p++) {
        tern_partmap_record_t rec;
        cr_assert(it_cluster_wait_leader(run->cl, p, victim, 0, 30000, &rec),
                  "partition %u still led by the dead controller", p);
    }
    cr_assert(s_progress(run, 20, S_RESUME_MS), "publishing did not resume");
    cr_assert(it_cluster_start_node(run->cl, victim), "node %d did not restart", victim);
    s_run_finish(run);
    s_check_refusals(run);
}

#define S_STALE 50 //  publishes queued to the stopped leader

//  The producer STALE (partition 0's topic) and a raw session with node
//  VICTIM alone, for a leader about to be deposed.
static it_raw_t *s_stale_new(s_run_t *run, int victim, s_producer_t *stale) {
    memset(stale, 0, sizeof *stale);
    stale->run = run;
    snprintf(stale->producer, sizeof stale->producer, "STALE-%d", (int)getpid());
    snprintf(stale->topic, sizeof stale->topic, "%s", run->prod[0].topic);
    it_raw_t *raw = it_raw_new(run->cl->node[victim]->endpoint);
    cr_assert(raw && it_raw_hello(raw, "stale"), "no session with node %d", victim);
    return raw;
}

//  Sends S_STALE PUBLISHes (producer STALE, producer_seq = req_id = 1..)
//  on RAW, which is connected to the stopped leader alone.
static void s_stale_send(it_raw_t *raw, const s_producer_t *stale) {
    for (uint64_t seq = 1; seq <= S_STALE; seq++) {
        tern_frame_t f;
        tern_frame_init(&f, TERN_CMD_PUBLISH);
        f.req_id = seq;
        snprintf(f.topic, sizeof f.topic, "%s", stale->topic);
        snprintf(f.producer, sizeof f.producer, "%s", stale->producer);
        f.producer_seq = seq;
        f.fields |= TERN_F_TOPIC | TERN_F_PAYLOAD | TERN_F_PRODUCER;
        f.payload = (const uint8_t *)"stale";
        f.payload_size = 5;
        cr_assert_eq(it_raw_send_frame(raw, &f), TERN_OK);
    }
}

//  Reads the stopped-then-resumed leader's answers for up to TIMEOUT_MS,
//  recording each as a publish line; returns how many were PUBACKs with
//  TERN_OK. Only that node can have sent them (RAW talks to it alone).
static int s_stale_answers(it_raw_t *raw, s_producer_t *stale, int timeout_ms) {
    int ok = 0, answered = 0;
    int64_t deadline = it_now_ms() + timeout_ms;
    while (answered < S_STALE && it_now_ms() < deadline) {
        tern_frame_t reply;
        if (it_raw_recv_reply(raw, &reply, 500) != TERN_OK) {
            continue;
        }
        if (reply.cmd == TERN_CMD_ERROR && reply.req_id >= 1 && reply.req_id <= S_STALE) {
            s_record_publish(stale, "stale", reply.req_id, (tern_err_t)reply.code, NULL);
            fprintf(stderr, "it_cluster_fault: stale publish %llu: %s: %s\n",
                    (unsigned long long)reply.req_id, tern_errname((int)reply.code), reply.reason);
            answered++;
        }
        for (uint32_t k = 0; reply.cmd == TERN_CMD_PUBACK && k < reply.ack_count; k++) {
            tern_puback_t ack;
            if (tern_frame_puback(&reply, k, &ack) != TERN_OK) {
                continue;
            }
            tern_pub_result_t res = {.code = (tern_err_t)ack.code,
                                     .msg_id = ack.msg_id,
                                     .seq = ack.seq,
                                     .duplicate = ack.duplicate};
            s_record_publish(stale, "stale", ack.req_id, res.code, &res);
            ok += ack.code == TERN_OK;
            answered++;
        }
    }
    fprintf(stderr, "it_cluster_fault: the deposed leader answered %d of %d, %d acknowledged\n",
            answered, S_STALE, ok);
    return ok;
}

//  SIGSTOP of partition 0's leader past its lease, while a raw client
//  connected to it alone queues publishes to it; SIGCONT once etcd names a
//  new leader. Every answer the node gives them comes after the new epoch
//  began, so it must acknowledge none (checked here: the checker has no
//  clocks); and any it did acknowledge is a message the new leader never
//  got, which tern-check reports as lost or as a seq given twice.
Test(cluster_fault, paused_leader) {
    s_run_t *run = s_run_start(1, false);
    cr_assert(s_progress(run, 20, S_RESUME_MS), "no load before the fault");
    tern_partmap_record_t rec;
    cr_assert(it_cluster_wait_leader(run->cl, 0, -1, 0, 30000, &rec));
    int victim = (int)rec.leader;
    static s_producer_t stale;
    it_raw_t *raw = s_stale_new(run, victim, &stale);
    it_cluster_pause_node(run->cl, victim);
    s_stale_send(raw, &stale);
    cr_assert(it_cluster_wait_leader(run->cl, 0, victim, rec.epoch, 30000, &rec),
              "no new leader while node %d is stopped", victim);
    cr_assert(s_progress(run, 10, S_RESUME_MS), "publishing did not move to the new leader");
    it_cluster_resume_node(run->cl, victim);
    int deposed_acks = s_stale_answers(raw, &stale, 10000);
    it_raw_destroy(&raw);
    cr_assert(it_cluster_node_running(run->cl, victim), "node %d died after SIGCONT", victim);
    s_run_finish(run);
    cr_assert_eq(deposed_acks, 0,
                 "node %d acknowledged %d publishes after it lost partition 0 (epoch %llu began)",
                 victim, deposed_acks, (unsigned long long)rec.epoch);
    s_check_refusals(run);
}

//  Every node killed at once, then all started again.
Test(cluster_fault, all_killed) {
    s_run_t *run = s_run_start(1, false);
    cr_assert(s_progress(run, 20, S_RESUME_MS), "no load before the fault");
    for (int i = 0; i < run->cl->count; i++) {
        it_cluster_kill_node(run->cl, i);
    }
    it_sleep_ms(500);
    cr_assert(it_cluster_start(run->cl, 60000), "the cluster did not come back");
    s_run_finish(run);
    s_check_refusals(run);
}

//  Each node in turn: SIGTERM (a clean exit), start, every partition back
//  in sync before the next.
Test(cluster_fault, rolling_restart) {
    s_run_t *run = s_run_start(1, false);
    cr_assert(s_progress(run, 20, S_RESUME_MS), "no load before the restarts");
    for (int i = 0; i < run->cl->count; i++) {
        int rc = it_cluster_stop_node(run->cl, i, 15000);
        cr_assert_eq(rc, 0, "node %d: exit %d on SIGTERM", i, rc);
        cr_assert(s_progress(run, 5, S_RESUME_MS), "publishing stopped with node %d down", i);
        cr_assert(it_cluster_start_node(run->cl, i), "node %d did not restart", i);
        for (uint32_t p = 0; p < S_PARTITIONS; p++) {
            tern_partmap_record_t rec;
            cr_assert(it_cluster_wait_isr_full(run->cl, p, 30000, &rec),
                      "partition %u not back in sync after node %d", p, i);
        }
    }
    s_run_finish(run);
    s_check_refusals(run);
}

//  One PUBLISH (no producer id) of partition 0's topic, by a raw DEALER on
//  node I alone (libtern would follow the leader and retry), while etcd is
//  down: true if the node refused it clearly, ERROR TERN_ENOTLEADER or
//  TERN_EREPLICAS, within 4 s.
static bool s_probe(s_run_t *run, int i) {
    it_raw_t *raw = it_raw_new(run->cl->node[i]->endpoint);
    cr_assert(raw && it_raw_hello(raw, "probe"), "no session with node %d without etcd", i);
    tern_frame_t f;
    tern_frame_init(&f, TERN_CMD_PUBLISH);
    f.req_id = 7;
    snprintf(f.topic, sizeof f.topic, "%s", run->prod[0].topic);
    f.fields |= TERN_F_TOPIC | TERN_F_PAYLOAD;
    f.payload = (const uint8_t *)"probe";
    f.payload_size = 5;
    cr_assert_eq(it_raw_send_frame(raw, &f), TERN_OK);
    tern_frame_t reply;
    tern_err_t rc = it_raw_recv_reply(raw, &reply, 4000);
    uint32_t code = rc != TERN_OK                 ? (uint32_t)rc
                    : reply.cmd == TERN_CMD_ERROR ? reply.code
                                                  : TERN_OK;
    fprintf(stderr, "it_cluster_fault: probe of node %d without etcd: %s %s: %s\n", i,
            rc != TERN_OK ? "no answer" : tern_cmd_name(reply.cmd), tern_errname((int)code),
            rc == TERN_OK && reply.cmd == TERN_CMD_ERROR ? reply.reason : "");
    it_raw_destroy(&raw);
    return code == TERN_ENOTLEADER || code == TERN_EREPLICAS;
}

//  etcd entirely stopped for 10 s: publishes get a clear error
//  (TERN_ENOTLEADER or TERN_EREPLICAS, not a timeout), no node dies, and
//  service returns by itself once etcd is back.
Test(cluster_fault, etcd_outage) {
    s_run_t *run = s_run_start(1, false);
    cr_assert(s_progress(run, 20, S_RESUME_MS), "no load before the outage");
    unsigned long long clear = 0;
    for (int i = 0; i < S_PRODUCERS; i++) {
        clear += atomic_load(&run->prod[i].clear);
    }
    it_etcd_stop(run->cl->etcd);
    int64_t back_at = it_now_ms() + 10000;
    //  Past the lease: ask every node directly (the producers only see
    //  the node they are on).
    it_sleep_ms(3000);
    int answered = 0;
    for (int i = 0; i < run->cl->count; i++) {
        answered += s_probe(run, i);
    }
    it_sleep_ms((int)(back_at - it_now_ms() > 0 ? back_at - it_now_ms() : 0));
    unsigned long long during = 0;
    for (int i = 0; i < S_PRODUCERS; i++) {
        during += atomic_load(&run->prod[i].clear);
    }
    if (answered < run->cl->count) {
        it_cluster_dump_logs(run->cl);
    }
    cr_assert(it_etcd_start_member(run->cl->etcd, 0), "etcd did not restart");
    for (int i = 0; i < run->cl->count; i++) {
        cr_assert(it_cluster_node_running(run->cl, i), "node %d died without etcd", i);
    }
    cr_assert_eq(answered, run->cl->count,
                 "without etcd, %d of %d nodes refused a publish clearly (TERN_ENOTLEADER or "
                 "TERN_EREPLICAS within 4 s)",
                 answered, run->cl->count);
    s_run_finish(run);
    //  What the application sees: libtern (following leaders) must not turn
    //  every refusal into a timeout. Last, so that the checks above run
    //  whatever the client library does.
    cr_assert_gt(during, clear,
                 "the producers (libtern) saw no TERN_ENOTLEADER or TERN_EREPLICAS without "
                 "etcd, only timeouts: the nodes' refusals did not reach the application");
    s_check_refusals(run);
}

//  One of three etcd members (the leader) killed and restarted: the cluster
//  rides through the etcd election.
Test(cluster_fault, etcd_member_kill) {
    s_run_t *run = s_run_start(3, false);
    cr_assert(s_progress(run, 20, S_RESUME_MS), "no load before the fault");
    int member = it_etcd_leader(run->cl->etcd);
    cr_assert_geq(member, 0, "no etcd leader");
    it_etcd_kill_member(run->cl->etcd, member);
    cr_assert(s_progress(run, 20, S_RESUME_MS), "publishing stopped with etcd member %d down",
              member);
    for (int i = 0; i < run->cl->count; i++) {
        cr_assert(it_cluster_node_running(run->cl, i), "node %d died", i);
    }
    cr_assert(it_etcd_start_member(run->cl->etcd, member), "etcd member %d did not restart",
              member);
    s_run_finish(run);
    s_check_refusals(run);
}

//  Partition 0's leader cut off from every other node's cluster endpoint
//  (and they from its), while it still reaches etcd and its clients: it
//  keeps its lease and its leadership, so it must shrink its ISR and refuse
//  (TERN_EREPLICAS), never acknowledge with one copy; after the heal the
//  followers catch up and rejoin.
Test(cluster_fault, leader_cut_from_followers) {
    s_run_t *run = s_run_start(1, true);
    cr_assert(s_progress(run, 20, S_RESUME_MS), "no load before the cut");
    tern_partmap_record_t rec;
    cr_assert(it_cluster_wait_leader(run->cl, 0, -1, 0, 30000, &rec));
    int victim = (int)rec.leader;
    int ports[IT_CLUSTER_NODES_MAX];
    for (int i = 0; i < run->cl->count; i++) {
        ports[i] = it_cluster_listen_port(run->cl, i);
    }
    s_producer_t *p = &run->prod[0];
    cr_assert(it_cluster_cut(run->cl, victim, ports, (size_t)run->cl->count));
    //  Counted once the cut holds (it_cluster_cut returns then).
    unsigned long long before = atomic_load(&p->acked);
    //  Long enough for the ISR to shrink and for many refusals.
    it_sleep_ms(5000);
    unsigned long long during = atomic_load(&p->acked) - before;
    cr_assert(it_cluster_record(run->cl, 0, &rec, false));
    fprintf(stderr,
            "it_cluster_fault: during the cut: partition 0 led by %u, ISR of %u, %llu acks\n",
            rec.leader, rec.nisr, during);
    cr_assert(it_cluster_cut(run->cl, victim, NULL, 0), "cannot heal");
    cr_assert(it_cluster_wait_isr_full(run->cl, 0, 30000, &rec),
              "the followers did not rejoin partition 0 after the heal");
    s_run_finish(run);
    //  The publish in flight at the cut may have been confirmed before it.
    cr_assert_leq(during, 1,
                  "node %d acknowledged %llu publishes of partition 0 with no follower reachable",
                  victim, during);
    s_check_refusals(run);
}

//  Partition 0's leader cut off from etcd only: its lease lapses, another
//  node leads, and the deposed node, still running and still reaching its
//  followers, must acknowledge nothing (a raw client asks it directly).
Test(cluster_fault, leader_cut_from_etcd) {
    s_run_t *run = s_run_start(1, true);
    cr_assert(s_progress(run, 20, S_RESUME_MS), "no load before the cut");
    tern_partmap_record_t rec;
    cr_assert(it_cluster_wait_leader(run->cl, 0, -1, 0, 30000, &rec));
    int victim = (int)rec.leader;
    static s_producer_t stale;
    it_raw_t *raw = s_stale_new(run, victim, &stale);
    int etcd_port = run->cl->etcd->client_port[0];
    cr_assert(it_cluster_cut(run->cl, victim, &etcd_port, 1));
    cr_assert(it_cluster_wait_leader(run->cl, 0, victim, rec.epoch, 30000, &rec),
              "no new leader while node %d cannot reach etcd", victim);
    cr_assert(s_progress(run, 10, S_RESUME_MS), "publishing did not move to the new leader");
    s_stale_send(raw, &stale);
    int deposed_acks = s_stale_answers(raw, &stale, 10000);
    it_raw_destroy(&raw);
    cr_assert(it_cluster_cut(run->cl, victim, NULL, 0), "cannot heal");
    cr_assert(it_cluster_node_running(run->cl, victim), "node %d died without etcd", victim);
    cr_assert(it_cluster_wait_isr_full(run->cl, 0, 30000, &rec),
              "node %d did not rejoin partition 0 after the heal", victim);
    s_run_finish(run);
    cr_assert_eq(deposed_acks, 0,
                 "node %d acknowledged %d publishes after it lost partition 0 (epoch %llu began)",
                 victim, deposed_acks, (unsigned long long)rec.epoch);
    s_check_refusals(run);
}
