/*  it_cluster_client.c - libtern in cluster mode against three ternd on a real etcd.

    The client is given ONE seed endpoint; it learns the partition map with
    ADMIN `cluster` and sends each publish to its partition's leader (a
    session per node), follows a leader change (TERN_ENOTLEADER, a lost
    session, a map refresh) and resends what was not acknowledged with the
    same (producer, producer_seq), and moves a subscription to the new
    leader. Leaders are SIGKILLed while publishing and SIGSTOPped (only the
    map says they are gone); without etcd a publish fails clearly
    (TERN_ENOTLEADER) instead of timing out. tern_admin given the seed runs
    each op about a topic (topic.*, group.*, dlq.*) at the topic's leader,
    follows a leader change, and gathers `topics` and `trace` from every
    node; requests waiting at a node that dies return (a read at the new
    leader, a write as TERN_ETIMEOUT, outcome unknown), a topic op the ISR
    never confirmed is not retried, and a node that denies our CURVE key
    says so (TERN_EDENIED). Every process is stopped by its PID (it_teardown,
    it_etcd_destroy).
*/
#include "cluster_harness.h"
#include "etcd_harness.h"
#include "harness.h"
#include "tern.h"
#include "tern_partition.h"
#include "test_port.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define S_PARTITIONS 8
#define S_NODES      3
#define S_TOPICS     20
#define S_WAIT_MS    30000

TestSuite(cluster_client, .init = it_suite_etcd_start, .fini = it_suite_etcd_stop, .timeout = 300);

//  Node ID of cluster NAME, started (cluster_harness.h).
static it_broker_t *s_node(const char *name, uint32_t id) {
    return it_suite_node(name, id, S_PARTITIONS, NULL);
}

//  The leader of every partition as client C sees it (ADMIN `cluster`),
//  into LEADERS; true once every partition has one, none of them EXCLUDED
//  (-1: any).
static bool s_leaders(tern_client_t *c, int64_t *leaders, int64_t excluded) {
    char *json = NULL;
    if (tern_admin(c, "cluster", NULL, 0, &json, 5000) != TERN_OK) {
        return false;
    }
    const char *map = strstr(json, "\"map\":[");
    bool all = map != NULL;
    for (int p = 0; all && p < S_PARTITIONS; p++) {
        char key[64];
        snprintf(key, sizeof key, "{\"partition\":%d,", p);
        const char *at = strstr(map, key);
        int64_t leader = -1;
        all = at && it_json_int(at, "leader", &leader) && leader != excluded;
        leaders[p] = leader;
    }
    free(json);
    return all;
}

//  Waits until every partition has a leader other than EXCLUDED.
static void s_wait_leaders(tern_client_t *c, int64_t *leaders, int64_t excluded) {
    int64_t deadline = it_now_ms() + S_WAIT_MS;
    while (!s_leaders(c, leaders, excluded)) {
        cr_assert(it_now_ms() < deadline, "partitions without a leader (%s)", tern_last_reason());
        it_sleep_ms(200);
    }
}

//  A client of the cluster given only SEED, publishing as PRODUCER.
static tern_client_t *s_client(it_broker_t *seed, const char *producer) {
    tern_client_options_t o;
    tern_client_options_init(&o);
    o.producer_id = producer;
    o.backoff_max_ms = 500;
    o.heartbeat_ms = 1000;
    return it_client(seed, &o);
}

//  Starts the S_NODES nodes of cluster NAME into NODES and a client given
//  only node SEED (producer NAME); returns it once every partition has a
//  leader, in LEADERS.
static tern_client_t *s_start(const char *name, it_broker_t **nodes, int seed, int64_t *leaders) {
    for (uint32_t i = 0; i < S_NODES; i++) {
        nodes[i] = s_node(name, i);
    }
    tern_client_t *c = s_client(nodes[seed], name);
    s_wait_leaders(c, leaders, -1);
    return c;
}

//  Threads of this process (/proc/self/status), -1 if unknown.
static int s_threads(void) {
    char *status = it_read_file("/proc/self/status", NULL);
    const char *at = status ? strstr(status, "\nThreads:") : NULL;
    int n = at ? atoi(at + strlen("\nThreads:")) : -1;
    free(status);
    return n;
}

static void s_topic(char *buf, size_t size, int i) {
    snprintf(buf, size, "cc.t%d", i);
}

//  ---------------------------------------------------------------------------
//  Publishing: every result, by producer_seq

typedef struct {
    pthread_mutex_t mutex; //  guards the rest
    size_t count;          //  results so far
    size_t size;           //  slots (by producer_seq - 1)
    tern_err_t *code;      //  per producer_seq
    uint64_t *msg_id;      //  per producer_seq
    uint64_t *seq;         //  per producer_seq
    int *completions;      //  per producer_seq: how often its callback ran
} s_results_t;

static void s_results_init(s_results_t *r, size_t size) {
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mutex, NULL);
    r->size = size;
    r->code = calloc(size, sizeof *r->code);
    r->msg_id = calloc(size, sizeof *r->msg_id);
    r->seq = calloc(size, sizeof *r->seq);
    r->completions = calloc(size, sizeof *r->completions);
}

static void s_results_free(s_results_t *r) {
    free(r->code);
    free(r->msg_id);
    free(r->seq);
    free(r->completions);
    pthread_mutex_destroy(&r->mutex);
}

static void s_on_result(const tern_pub_result_t *result, void *arg) {
    s_results_t *r = arg;
    pthread_mutex_lock(&r->mutex);
    size_t i = result->producer_seq - 1;
    if (i < r->size) {
        r->code[i] = result->code;
        r->msg_id[i] = result->msg_id;
        r->seq[i] = result->seq;
        r->completions[i]++;
    }
    r->count++;
    pthread_mutex_unlock(&r->mutex);
}

//  Publishes message I (producer_seq I + 1) of topic I % S_TOPICS.
static void s_publish(tern_client_t *c, size_t i, s_results_t *r) {
    char topic[32], body[32];
    s_topic(topic, sizeof topic, (int)(i % S_TOPICS));
    snprintf(body, sizeof body, "m%zu", i);
    tern_pub_options_t m;
    tern_pub_options_init(&m);
    m.topic = topic;
    m.payload = body;
    m.size = strlen(body);
    m.producer_seq = i + 1;
    tern_err_t rc = tern_publish_async(c, &m, s_on_result, r);
    cr_assert_eq(rc, TERN_OK, "publish %zu: %s (%s)", i, tern_strerror(rc), tern_last_reason());
}

//  ---------------------------------------------------------------------------

Test(cluster_client, one_seed_routes_to_every_leader) {
    it_broker_t *nodes[S_NODES];
    int64_t leaders[S_PARTITIONS];
    int threads_before = s_threads();
    tern_client_t *c = s_start("ccroute", nodes, 0, leaders);
    //  The 20 topics spread over partitions led by more than one node.
    bool led_by[S_NODES] = {false};
    for (int t = 0; t < S_TOPICS; t++) {
        char topic[32];
        s_topic(topic, sizeof topic, t);
        int64_t leader = leaders[tern_partition_of(topic, strlen(topic), S_PARTITIONS)];
        cr_assert(leader >= 0 && leader < S_NODES);
        led_by[leader] = true;
    }
    cr_assert(led_by[0] + led_by[1] + led_by[2] >= 2, "all 20 topics on one leader");

    size_t n = 500;
    s_results_t r;
    s_results_init(&r, n);
    for (size_t i = 0; i < n; i++) {
        s_publish(c, i, &r);
    }
    cr_assert_eq(tern_flush(c, 60000), TERN_OK);
    //  The client's threads: the root's I/O thread, its cluster thread, its
    //  ZeroMQ context's I/O thread and reaper, and one I/O thread per node
    //  session (at least 2 here): node sessions share the root's context
    //  rather than bring 2 threads each.
    int threads = s_threads() - threads_before;
    cr_assert(threads_before > 0);
    cr_assert(threads <= 4 + S_NODES, "the client runs %d threads for %d nodes", threads, S_NODES);
    //  Every one acknowledged once, stored at its topic's leader: seqs
    //  1..25 per topic, each once (one node's log, nothing stored twice).
    //  (Their order may differ from the publish order only where the map
    //  changed under them, e.g. placement still moving leaders.)
    int seen[S_TOPICS][n / S_TOPICS + 1];
    memset(seen, 0, sizeof seen);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(r.completions[i], 1);
        cr_assert_eq(r.code[i], TERN_OK, "publish %zu: %s", i, tern_strerror(r.code[i]));
        cr_assert(r.seq[i] >= 1 && r.seq[i] <= n / S_TOPICS, "publish %zu: seq %llu", i,
                  (unsigned long long)r.seq[i]);
        cr_assert_eq(seen[i % S_TOPICS][r.seq[i]]++, 0, "publish %zu: seq %llu twice", i,
                     (unsigned long long)r.seq[i]);
    }
    //  At each topic's leader: its 25 messages, the first with our producer.
    for (int t = 0; t < S_TOPICS; t++) {
        char topic[32];
        s_topic(topic, sizeof topic, t);
        int64_t leader = leaders[tern_partition_of(topic, strlen(topic), S_PARTITIONS)];
        it_result_t res;
        cr_assert_eq(it_ctl(&res, nodes[leader], 10000, "topics", NULL), 0, "%s", res.err);
        char want[64];
        snprintf(want, sizeof want, "\"topic\":\"%s\"", topic);
        const char *at = strstr(res.out, want);
        cr_assert(at, "%s not at its leader %lld:\n%s", topic, (long long)leader, res.out);
        cr_assert(strstr(at, "\"last_seq\":25"), "%s", res.out);
        it_result_free(&res);
    }
    //  A single-node broker costs one request: the same client code works.
    tern_client_destroy(&c);
    s_results_free(&r);
}

//  Publishes BODY to TOPIC through C; returns its msg_id.
static uint64_t s_publish_body(tern_client_t *c, const char *topic, const char *body) {
    tern_pub_options_t m;
    tern_pub_options_init(&m);
    m.topic = topic;
    m.payload = body;
    m.size = strlen(body);
    tern_pub_result_t res;
    tern_err_t rc = tern_publish(c, &m, 60000, &res);
    cr_assert_eq(rc, TERN_OK, "%s: %s (%s)", topic, tern_strerror(rc), tern_last_reason());
    return res.msg_id;
}

//  Whether in-DC replication runs (the leader's position of a partition
//  counts the records it shipped; ternd without it says 0): publishes a few
//  messages to a topic SEED leads and asks SEED through C. With it, a
//  moved partition's new leader holds every acknowledged publish too.
static bool s_replicating(tern_client_t *c, const int64_t *leaders, int64_t seed) {
    char topic[32] = "";
    for (int t = 0; t < 1000; t++) {
        snprintf(topic, sizeof topic, "cc.w%d", t);
        if (leaders[tern_partition_of(topic, strlen(topic), S_PARTITIONS)] == seed) {
            break;
        }
    }
    for (int i = 0; i < 3; i++) {
        s_publish_body(c, topic, "warm");
    }
    char *json = NULL;
    cr_assert_eq(tern_admin(c, "cluster", NULL, 0, &json, 5000), TERN_OK);
    bool moved = false;
    for (const char *at = json; (at = strstr(at, "\"position\":")); at += 11) {
        moved |= at[11] >= '1' && at[11] <= '9';
    }
    free(json);
    return moved;
}

//  ---------------------------------------------------------------------------

Test(cluster_client, leader_killed_while_publishing) {
    it_broker_t *nodes[S_NODES];
    int64_t leaders[S_PARTITIONS];
    tern_client_t *c = s_start("cckill", nodes, 1, leaders);
    //  Kill the leader of the first topic's partition. It may be the seed:
    //  the client then refreshes its map through another node's session.
    int64_t victim = leaders[tern_partition_of("cc.t0", 5, S_PARTITIONS)];
    bool replicated = s_replicating(c, leaders, 1);

    size_t n = 600;
    s_results_t r;
    s_results_init(&r, n);
    for (size_t i = 0; i < n; i++) {
        s_publish(c, i, &r);
        if (i == n / 3) {
            it_broker_kill(nodes[victim]);
        }
        if (i % 50 == 0) {
            it_sleep_ms(20); //  spread the publishes over the failover
        }
    }
    cr_assert_eq(tern_flush(c, 120000), TERN_OK, "still in flight: %zu", tern_client_inflight(c));
    //  Every publish completed exactly once: acknowledged, refused for want
    //  of replicas (not stored), or stored and not confirmed in time (outcome
    //  unknown); the caller may retry either with the same producer_seq.
    //  Never TERN_ENOTLEADER: the client follows leaders.
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(r.completions[i], 1, "publish %zu completed %d times", i, r.completions[i]);
        cr_assert(r.code[i] == TERN_OK || r.code[i] == TERN_EREPLICAS || r.code[i] == TERN_ETIMEOUT,
                  "publish %zu: %s", i, tern_strerror(r.code[i]));
        ok += r.code[i] == TERN_OK;
    }
    cr_assert_gt(ok, n / 2, "only %zu of %zu acknowledged", ok, n);

    //  No (topic, seq) was given to two producer_seqs, and no msg_id twice.
    for (size_t i = 0; i < n; i++) {
        for (size_t j = i + S_TOPICS; j < n && r.code[i] == TERN_OK; j += S_TOPICS) {
            if (r.code[j] == TERN_OK) {
                cr_assert_neq(r.msg_id[i], r.msg_id[j], "%zu and %zu: one msg_id", i, j);
            }
        }
    }
    //  Publishing every acknowledged (producer, seq) again is deduplicated
    //  to its original msg_id: on the partitions that kept their leader,
    //  and, with in-DC replication, on those that moved.
    int64_t before[S_PARTITIONS];
    memcpy(before, leaders, sizeof before);
    //  (The map as a surviving node sees it: tern_admin uses the seed.)
    tern_client_t *watch = s_client(nodes[(victim + 1) % S_NODES], "cc-watch");
    s_wait_leaders(watch, leaders, victim);
    tern_client_destroy(&watch);
    s_results_t again;
    s_results_init(&again, n);
    size_t checked = 0;
    for (size_t i = 0; i < n; i++) {
        if (r.code[i] == TERN_OK) {
            s_publish(c, i, &again);
            checked++;
        }
    }
    cr_assert_eq(tern_flush(c, 60000), TERN_OK);
    for (size_t i = 0; i < n; i++) {
        if (r.code[i] != TERN_OK) {
            continue;
        }
        cr_assert_eq(again.code[i], TERN_OK, "again %zu: %s", i, tern_strerror(again.code[i]));
        char topic[32];
        s_topic(topic, sizeof topic, (int)(i % S_TOPICS));
        uint32_t p = tern_partition_of(topic, strlen(topic), S_PARTITIONS);
        if (replicated || before[p] == leaders[p]) {
            cr_assert_eq(again.msg_id[i], r.msg_id[i], "publish %zu stored twice", i);
        }
    }
    cr_assert_gt(checked, 0);
    tern_client_destroy(&c);
    s_results_free(&r);
    s_results_free(&again);
}

//  ---------------------------------------------------------------------------

typedef struct {
    atomic_int received; //  messages delivered
    atomic_int after;    //  of them, published after the kill ("late")
} s_consumer_t;

static void s_on_message(tern_message_t *msg, void *arg) {
    s_consumer_t *s = arg;
    atomic_fetch_add(&s->received, 1);
    if (tern_message_size(msg) >= 4 && memcmp(tern_message_data(msg), "late", 4) == 0) {
        atomic_fetch_add(&s->after, 1);
    }
    tern_message_ack(msg, false);
    tern_message_destroy(&msg);
}

//  A topic (into TOPIC) whose leader is not the seed (node 0), which then
//  keeps answering the map while that leader goes; returns the leader.
static int64_t s_topic_off_seed(const int64_t *leaders, char *topic, size_t size) {
    for (int t = 0; t < 100; t++) {
        s_topic(topic, size, t);
        int64_t leader = leaders[tern_partition_of(topic, strlen(topic), S_PARTITIONS)];
        if (leader > 0) {
            return leader;
        }
    }
    cr_assert_fail("every topic is led by the seed");
    return -1;
}

Test(cluster_client, consumer_follows_its_leader) {
    it_broker_t *nodes[S_NODES];
    int64_t leaders[S_PARTITIONS];
    tern_client_t *c = s_start("ccsub", nodes, 0, leaders);
    //  A topic whose leader is not the seed, so the consumer's client keeps
    //  its seed session while its subscription moves.
    char topic[32];
    int64_t victim = s_topic_off_seed(leaders, topic, sizeof topic);

    s_consumer_t s = {0};
    tern_sub_options_t so;
    tern_sub_options_init(&so);
    so.group = "ccg";
    tern_subscription_t *sub = NULL;
    tern_err_t rc = tern_subscribe(c, topic, &so, s_on_message, &s, &sub);
    cr_assert_eq(rc, TERN_OK, "%s (%s)", tern_strerror(rc), tern_last_reason());
    //  And a pattern: on every node, each topic delivered by its leader.
    s_consumer_t w = {0};
    so.group = "ccw";
    tern_subscription_t *wild = NULL;
    rc = tern_subscribe(c, "cc.>", &so, s_on_message, &w, &wild);
    cr_assert_eq(rc, TERN_OK, "%s (%s)", tern_strerror(rc), tern_last_reason());
    for (int i = 0; i < 10; i++) {
        s_publish_body(c, topic, "early");
    }
    int64_t deadline = it_now_ms() + S_WAIT_MS;
    while (atomic_load(&s.received) < 10 || atomic_load(&w.received) < 10) {
        cr_assert(it_now_ms() < deadline, "received %d and %d of 10", atomic_load(&s.received),
                  atomic_load(&w.received));
        it_sleep_ms(50);
    }

    it_broker_kill(nodes[victim]);
    s_wait_leaders(c, leaders, victim); //  the seed (node 0) survives
    for (int i = 0; i < 10; i++) {
        s_publish_body(c, topic, "late");
    }
    //  All ten published after the failover arrive through the new leader
    //  (redeliveries of earlier ones may come too: group state is not
    //  replicated in the first cut).
    deadline = it_now_ms() + S_WAIT_MS;
    while (atomic_load(&s.after) < 10 || atomic_load(&w.after) < 10) {
        cr_assert(it_now_ms() < deadline, "received %d and %d of 10 after the failover",
                  atomic_load(&s.after), atomic_load(&w.after));
        it_sleep_ms(50);
    }
    tern_unsubscribe(&wild);
    tern_unsubscribe(&sub);
    tern_client_destroy(&c);
}

//  ---------------------------------------------------------------------------
//  Administration given one seed: libtern sends each op about a topic to
//  its partition's leader and gathers `topics` and `trace` from every node.

//  tern_admin OP on C with the (KEY, VALUE) pairs of KV (COUNT of them);
//  asserts WANT and returns the reply (caller frees; NULL on error).
static char *s_admin(tern_client_t *c, const char *op, const tern_header_t *kv, size_t count,
                     tern_err_t want) {
    char *json = NULL;
    tern_err_t rc = tern_admin(c, op, kv, count, &json, 20000);
    cr_assert_eq(rc, want, "%s: %s (%s) %s", op, tern_errname(rc), tern_strerror(rc),
                 tern_last_reason());
    return json;
}

//  A topic (into TOPIC, as PREFIX.N) whose partition node LEADER leads
//  (WANT true) or does not lead (WANT false).
static void s_topic_led(const int64_t *leaders, const char *prefix, int64_t leader, bool want,
                        char *topic, size_t size) {
    for (int t = 0; t < 1000; t++) {
        snprintf(topic, size, "%s.%d", prefix, t);
        if ((leaders[tern_partition_of(topic, strlen(topic), S_PARTITIONS)] == leader) == want) {
            return;
        }
    }
    cr_assert_fail("no topic for node %lld", (long long)leader);
}

static int s_occurs(const char *text, const char *needle) {
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle)) {
        n++;
    }
    return n;
}

Test(cluster_client, admin_at_the_leader_given_any_node) {
    it_broker_t *nodes[S_NODES];
    int64_t leaders[S_PARTITIONS];
    tern_client_t *c = s_start("ccadm", nodes, 0, leaders);
    char away[32], home[32], quoted[48];
    s_topic_led(leaders, "adm.away", 0, false, away, sizeof away); //  another node leads it
    s_topic_led(leaders, "adm.home", 0, true, home, sizeof home);  //  the seed leads it
    tern_header_t kv[3] = {{"topic", away}, {"group", "adm"}, {"to", "first"}};

    //  Topic writes: only the leader takes them (a follower answers
    //  TERN_ENOTLEADER); the seed is not it.
    free(s_admin(c, "topic.create", kv, 1, TERN_OK));
    free(s_admin(c, "topic.create", kv, 1, TERN_EEXIST));
    tern_header_t kv_home[1] = {{"topic", home}};
    free(s_admin(c, "topic.create", kv_home, 1, TERN_OK));
    uint64_t msg_id = 0;
    for (int i = 0; i < 3; i++) {
        msg_id = s_publish_body(c, away, "adm");
    }
    char *json = s_admin(c, "topic.info", kv, 1, TERN_OK);
    cr_assert_eq(it_json_field(json, "last_seq"), 3, "%s", json);
    free(json);

    //  topics: every topic once, each as its leader lists it.
    json = s_admin(c, "topics", NULL, 0, TERN_OK);
    snprintf(quoted, sizeof quoted, "\"topic\":\"%s\"", away);
    cr_assert_eq(s_occurs(json, quoted), 1, "%s", json);
    snprintf(quoted, sizeof quoted, "\"topic\":\"%s\"", home);
    cr_assert_eq(s_occurs(json, quoted), 1, "%s", json);
    free(json);
    //  trace: the message as its leader saw it.
    char id[24];
    snprintf(id, sizeof id, "%llu", (unsigned long long)msg_id);
    tern_header_t kv_trace[1] = {{"msg_id", id}};
    json = s_admin(c, "trace", kv_trace, 1, TERN_OK);
    snprintf(quoted, sizeof quoted, "\"topic\":\"%s\"", away);
    cr_assert(strstr(json, quoted), "%s", json);
    free(json);

    //  Group ops: the group lives at the leader, which delivered.
    s_consumer_t s = {0};
    tern_sub_options_t so;
    tern_sub_options_init(&so);
    so.group = "adm";
    tern_subscription_t *sub = NULL;
    cr_assert_eq(tern_subscribe(c, away, &so, s_on_message, &s, &sub), TERN_OK, "%s",
                 tern_last_reason());
    int64_t deadline = it_now_ms() + S_WAIT_MS;
    while (atomic_load(&s.received) < 3) {
        cr_assert(it_now_ms() < deadline, "received %d of 3", atomic_load(&s.received));
        it_sleep_ms(50);
    }
    tern_unsubscribe(&sub);
    json = s_admin(c, "groups", kv, 1, TERN_OK);
    cr_assert(strstr(json, "\"group\":\"adm\""), "%s", json);
    free(json);
    free(s_admin(c, "group.seek", kv, 3, TERN_OK));
    free(s_admin(c, "group.reset", kv, 2, TERN_OK));
    free(s_admin(c, "dlq.list", kv, 2, TERN_OK));
    //  The consumer's session may still be closing at the leader: EBUSY.
    deadline = it_now_ms() + S_WAIT_MS;
    char *reply = NULL;
    tern_err_t rc;
    while ((rc = tern_admin(c, "group.delete", kv, 2, &reply, 20000)) == TERN_EBUSY) {
        cr_assert(it_now_ms() < deadline, "group.delete: %s", tern_last_reason());
        it_sleep_ms(100);
    }
    cr_assert_eq(rc, TERN_OK, "group.delete: %s (%s)", tern_errname(rc), tern_last_reason());
    free(reply);
    free(s_admin(c, "group.seek", kv, 3, TERN_ENOTFOUND));

    //  purge, then delete: at the leader; gone from `topics` at once.
    free(s_admin(c, "topic.purge", kv, 1, TERN_OK));
    json = s_admin(c, "topic.info", kv, 1, TERN_OK);
    cr_assert_eq(it_json_field(json, "msgs"), 0, "%s", json);
    free(json);
    free(s_admin(c, "topic.delete", kv, 1, TERN_OK));
    free(s_admin(c, "topic.info", kv, 1, TERN_ENOTFOUND));
    json = s_admin(c, "topics", NULL, 0, TERN_OK);
    cr_assert_eq(s_occurs(json, quoted), 0, "%s", json);
    free(json);
    //  A leader change the client has not seen yet: the old leader answers
    //  TERN_ENOTLEADER naming the new one, and the op follows it.
    uint32_t p = tern_partition_of(away, strlen(away), S_PARTITIONS);
    int64_t from = leaders[p], to = from == 1 ? 2 : 1; //  never the seed
    char moved[32], part[16], node[16];
    for (int t = 0;; t++) {
        snprintf(moved, sizeof moved, "adm.moved.%d", t);
        if (tern_partition_of(moved, strlen(moved), S_PARTITIONS) == p) {
            break;
        }
    }
    snprintf(part, sizeof part, "%u", (unsigned)p);
    snprintf(node, sizeof node, "%lld", (long long)to);
    tern_header_t kv_move[2] = {{"partition", part}, {"to", node}};
    free(s_admin(c, "cluster.handover", kv_move, 2, TERN_OK));
    deadline = it_now_ms() + S_WAIT_MS;
    while (s_wait_leaders(c, leaders, -1), leaders[p] != to) {
        cr_assert(it_now_ms() < deadline, "partition %u still led by %lld", (unsigned)p,
                  (long long)leaders[p]);
        it_sleep_ms(100);
    }
    tern_header_t kv_moved[1] = {{"topic", moved}};
    free(s_admin(c, "topic.create", kv_moved, 1, TERN_OK));
    free(s_admin(c, "topic.delete", kv_moved, 1, TERN_OK));

    //  Ops about the node itself still go to the seed.
    json = s_admin(c, "cluster", NULL, 0, TERN_OK);
    cr_assert_eq(it_json_field(json, "node_id"), 0, "%s", json);
    free(json);

    //  A leader that dies: `topics` still lists its topics, from a
    //  follower's copy, before the map knows it is gone.
    s_wait_leaders(c, leaders, -1);
    char kept[32];
    s_topic_led(leaders, "adm.kept", 0, false, kept, sizeof kept);
    tern_header_t kv_kept[1] = {{"topic", kept}};
    free(s_admin(c, "topic.create", kv_kept, 1, TERN_OK));
    s_publish_body(c, kept, "kept");
    it_broker_kill(nodes[leaders[tern_partition_of(kept, strlen(kept), S_PARTITIONS)]]);
    json = s_admin(c, "topics", NULL, 0, TERN_OK);
    snprintf(quoted, sizeof quoted, "\"topic\":\"%s\"", kept);
    cr_assert_eq(s_occurs(json, quoted), 1, "%s", json);
    free(json);
    tern_client_destroy(&c);
}

//  ---------------------------------------------------------------------------

Test(cluster_client, etcd_lost_publish_fails_clearly) {
    //  Without etcd no node may take writes (its lease lapses): the leader
    //  refuses with TERN_ENOTLEADER and no other leader is named; the client
    //  gives that answer to the application after a few refusals instead of
    //  retrying until its deadline.
    it_broker_t *nodes[S_NODES];
    int64_t leaders[S_PARTITIONS];
    tern_client_t *c = s_start("ccetcd", nodes, 0, leaders);
    s_publish_body(c, "cc.t1", "before");
    it_etcd_kill_member(it_suite_etcd, 0);
    int64_t deadline = it_now_ms() + S_WAIT_MS;
    tern_err_t rc = TERN_OK;
    while (rc == TERN_OK) {
        cr_assert(it_now_ms() < deadline, "publishes still acknowledged without etcd");
        tern_pub_options_t m;
        tern_pub_options_init(&m);
        m.topic = "cc.t1";
        m.payload = "x";
        m.size = 1;
        rc = tern_publish(c, &m, 20000, NULL);
        if (rc == TERN_OK) {
            it_sleep_ms(200); //  the lease has not lapsed yet
        }
    }
    cr_assert_eq(rc, TERN_ENOTLEADER, "%s (%s)", tern_strerror(rc), tern_last_reason());
    tern_client_destroy(&c);
}

//  ---------------------------------------------------------------------------

Test(cluster_client, leader_paused_publishes_move) {
    //  A SIGSTOPped leader keeps its TCP sessions, so only the map says it
    //  is gone (its etcd lease expires, the controller moves its
    //  partitions): publishes waiting there are sent to the new leader.
    it_broker_t *nodes[S_NODES];
    int64_t leaders[S_PARTITIONS];
    tern_client_t *c = s_start("ccpause", nodes, 0, leaders);
    char topic[32];
    int64_t victim = s_topic_off_seed(leaders, topic, sizeof topic);
    s_publish_body(c, topic, "before");
    it_broker_pause(nodes[victim]);
    s_results_t r;
    s_results_init(&r, 21);
    for (size_t i = 0; i < 20; i++) {
        tern_pub_options_t m;
        tern_pub_options_init(&m);
        m.topic = topic;
        m.payload = "during";
        m.size = 6;
        m.producer_seq = i + 2; //  after "before", the client's seq 1
        cr_assert_eq(tern_publish_async(c, &m, s_on_result, &r), TERN_OK);
    }
    //  Sooner than the sessions' own verdict (3 x the broker's heartbeat,
    //  45 s by default): the map tells.
    cr_assert_eq(tern_flush(c, 25000), TERN_OK, "still in flight: %zu", tern_client_inflight(c));
    it_broker_resume(nodes[victim]);
    //  Acknowledged by the new leader.
    for (size_t i = 1; i < 21; i++) {
        cr_assert_eq(r.completions[i], 1);
        cr_assert_eq(r.code[i], TERN_OK, "publish %zu: %s", i, tern_strerror(r.code[i]));
    }
    tern_client_destroy(&c);
    s_results_free(&r);
}

//  ---------------------------------------------------------------------------
//  Admin requests waiting at a node that dies

typedef struct {
    tern_client_t *c;                 //  the client
    const char *op;                   //  operation
    const tern_header_t *kv;          //  its arguments
    size_t count;                     //  how many
    tern_err_t rc;                    //  its result
    char *json;                       //  its reply
    char reason[TERN_REASON_MAX + 1]; //  tern_last_reason of the call
    atomic_bool done;                 //  returned
} s_asker_t;

static void *s_ask(void *arg) {
    s_asker_t *a = arg;
    a->rc = tern_admin(a->c, a->op, a->kv, a->count, &a->json, -1); //  no timeout
    snprintf(a->reason, sizeof a->reason, "%s", tern_last_reason());
    atomic_store(&a->done, true);
    return NULL;
}

Test(cluster_client, admin_at_a_dying_node_returns) {
    //  Requests sent to a leader that then stops answering and dies, each
    //  without a timeout: none waits forever. The `topics` gather takes
    //  the other nodes' answers; a read asks the new leader; a write, which
    //  may have run there, is not run twice: TERN_ETIMEOUT, outcome unknown.
    it_broker_t *nodes[S_NODES];
    int64_t leaders[S_PARTITIONS];
    tern_client_t *c = s_start("ccdie", nodes, 0, leaders);
    char topic[32], quoted[48];
    int64_t victim = s_topic_off_seed(leaders, topic, sizeof topic);
    tern_header_t kv[1] = {{"topic", topic}};
    free(s_admin(c, "topic.create", kv, 1, TERN_OK));
    s_publish_body(c, topic, "kept");
    free(s_admin(c, "topics", NULL, 0, TERN_OK)); //  every node session is up
    it_broker_pause(nodes[victim]);
    s_asker_t asks[3] = {{.c = c, .op = "topics"},
                         {.c = c, .op = "topic.info", .kv = kv, .count = 1},
                         {.c = c, .op = "topic.purge", .kv = kv, .count = 1}};
    pthread_t threads[3];
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(pthread_create(&threads[i], NULL, s_ask, &asks[i]), 0);
    }
    it_sleep_ms(300); //  sent to the stopped node (its lease lasts 2 s)
    it_broker_kill(nodes[victim]);
    int64_t deadline = it_now_ms() + 60000; //  a bound on a hang, not a timing check
    for (int i = 0; i < 3; i++) {
        while (!atomic_load(&asks[i].done)) {
            cr_assert(it_now_ms() < deadline, "%s still waits at the dead node", asks[i].op);
            it_sleep_ms(50);
        }
        pthread_join(threads[i], NULL);
    }
    cr_assert_eq(asks[0].rc, TERN_OK, "topics: %s (%s)", tern_errname(asks[0].rc), asks[0].reason);
    snprintf(quoted, sizeof quoted, "\"topic\":\"%s\"", topic);
    cr_assert_eq(s_occurs(asks[0].json, quoted), 1, "%s", asks[0].json);
    cr_assert_eq(asks[1].rc, TERN_OK, "topic.info: %s (%s)", tern_errname(asks[1].rc),
                 asks[1].reason);
    cr_assert_eq(asks[2].rc, TERN_ETIMEOUT, "topic.purge: %s (%s)", tern_errname(asks[2].rc),
                 asks[2].reason);
    cr_assert(strstr(asks[2].reason, "outcome is unknown"), "%s", asks[2].reason);
    for (int i = 0; i < 3; i++) {
        free(asks[i].json);
    }
    tern_client_destroy(&c);
}

Test(cluster_client, admin_unconfirmed_write_is_not_retried) {
    //  A topic.purge the leader ran but its in-sync replicas never confirm
    //  (both followers stopped) while its lease lapses (etcd gone): the
    //  answer is TERN_ETIMEOUT, outcome unknown, not TERN_ENOTLEADER, which
    //  libtern would retry (purging twice at a new leader).
    it_broker_t *nodes[S_NODES];
    int64_t leaders[S_PARTITIONS];
    tern_client_t *c = s_start("ccunconf", nodes, 0, leaders);
    char topic[32];
    int64_t leader = s_topic_off_seed(leaders, topic, sizeof topic);
    tern_header_t kv[1] = {{"topic", topic}};
    free(s_admin(c, "topic.create", kv, 1, TERN_OK));
    s_publish_body(c, topic, "one");
    for (int64_t i = 0; i < S_NODES; i++) {
        if (i != leader) {
            it_broker_pause(nodes[i]);
        }
    }
    it_etcd_kill_member(it_suite_etcd, 0);
    char *json = NULL;
    tern_err_t rc = tern_admin(c, "topic.purge", kv, 1, &json, 60000);
    cr_assert_eq(rc, TERN_ETIMEOUT, "%s (%s)", tern_errname(rc), tern_last_reason());
    cr_assert(strstr(tern_last_reason(), "outcome is unknown"), "%s", tern_last_reason());
    free(json);
    for (int64_t i = 0; i < S_NODES; i++) {
        it_broker_resume(nodes[i]);
    }
    tern_client_destroy(&c);
}

//  Node ID of cluster NAME with CURVE: the server key in DIR, the client
//  allow-list CLIENTS.
static it_broker_t *s_curve_node(const char *name, uint32_t id, const char *dir,
                                 const char *clients) {
    char key[200], allow[200];
    snprintf(key, sizeof key, "--auth-key=%s/server.key", dir);
    snprintf(allow, sizeof allow, "--auth-clients=%s", clients);
    const char *extra[] = {"--auth=curve", key, allow, NULL};
    return it_suite_node(name, id, S_PARTITIONS, extra);
}

Test(cluster_client, admin_denied_by_a_node_says_so) {
    //  Node 2 does not allow our CURVE key: an op about a topic it leads
    //  fails at once with TERN_EDENIED and its reason, not "no reachable
    //  leader" after 20 tries.
    char dir[64] = "/tmp/it_ccdeny.XXXXXX", allow[96], deny[96], path[128], cmd[400];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(allow, sizeof allow, "%s/allow", dir);
    snprintf(deny, sizeof deny, "%s/deny", dir);
    cr_assert_eq(mkdir(allow, 0700), 0);
    cr_assert_eq(mkdir(deny, 0700), 0);
    it_keys_gen(dir, "server", NULL, NULL);
    it_keys_gen(dir, "app", NULL, NULL);
    snprintf(cmd, sizeof cmd, "cp '%s/app.key' '%s/'", dir, allow);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    it_broker_t *nodes[S_NODES];
    for (uint32_t i = 0; i < S_NODES; i++) {
        nodes[i] = s_curve_node("ccdeny", i, dir, i == 2 ? deny : allow);
    }
    char server[TERN_CURVE_KEY_LEN + 1], pub[TERN_CURVE_KEY_LEN + 1], sec[TERN_CURVE_KEY_LEN + 1];
    snprintf(path, sizeof path, "%s/server.key", dir);
    cr_assert_eq(tern_cert_load(path, server, NULL), TERN_OK);
    snprintf(path, sizeof path, "%s/app.key_secret", dir);
    cr_assert_eq(tern_cert_load(path, pub, sec), TERN_OK);
    tern_client_options_t o;
    tern_client_options_init(&o);
    o.curve_server_key = server;
    o.curve_public_key = pub;
    o.curve_secret_key = sec;
    tern_client_t *c = tern_client_new(nodes[0]->endpoint, &o);
    cr_assert_not_null(c, "%s", tern_last_reason());
    cr_assert_eq(tern_client_wait_connected(c, 10000), TERN_OK, "%s", tern_last_reason());
    int64_t leaders[S_PARTITIONS];
    s_wait_leaders(c, leaders, -1);
    char topic[32];
    s_topic_led(leaders, "deny", 2, true, topic, sizeof topic);
    tern_header_t kv[1] = {{"topic", topic}};
    char *json = NULL;
    tern_err_t rc = tern_admin(c, "topic.info", kv, 1, &json, 60000);
    cr_assert_eq(rc, TERN_EDENIED, "%s (%s)", tern_errname(rc), tern_last_reason());
    cr_assert(strstr(tern_last_reason(), "CURVE"), "%s", tern_last_reason());
    tern_client_destroy(&c);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}
