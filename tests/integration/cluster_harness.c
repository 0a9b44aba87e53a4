/*  cluster_harness.c - a clustered DC for the fault tests (see the .h).

    Nodes are harness.c brokers with the cluster flags added; etcd is
    etcd_harness.c's. The only state of its own is the table of live
    clusters that it_cluster_teardown destroys when a test ends early.
*/
#include "cluster_harness.h"
#include "test_dir.h"
#include "test_port.h"
#include "tern_partition.h"
#include "tern_placement.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_CLUSTERS_MAX 4
#define S_READY_MS     30000 //  a node's join waits for etcd and the view
#define S_POLL_MS      20    //  between two reads of the map

static it_cluster_t *s_clusters[S_CLUSTERS_MAX]; //  created and not destroyed yet
static it_netns_t *s_netns;                      //  it_cluster_set_netns's, or NULL

void it_cluster_set_netns(it_netns_t *net) {
    s_netns = net;
}

//  The address node I (or etcd, I -1) listens on.
static const char *s_host(const it_cluster_t *self, int i) {
    if (self->net == NULL) {
        return "127.0.0.1";
    }
    return it_netns_addr(self->net, i < 0 ? IT_NETNS_ETCD : IT_NETNS_NODE(i));
}

//  Spawns node I, inside its namespace if the cluster has them: a child
//  is born in the namespace of the thread that forks.
static bool s_spawn(it_cluster_t *self, int i) {
    if (self->net && !it_netns_enter(self->net, IT_NETNS_NODE(i))) {
        return false;
    }
    bool ok = it_broker_spawn(self->node[i]);
    if (self->net && !it_netns_enter(self->net, IT_NETNS_CLIENT)) {
        ok = false;
    }
    return ok;
}

static void s_remember(it_cluster_t *self, bool add) {
    for (int i = 0; i < S_CLUSTERS_MAX; i++) {
        if (add ? s_clusters[i] == NULL : s_clusters[i] == self) {
            s_clusters[i] = add ? self : NULL;
            return;
        }
    }
}

//  Node I's ternd arguments: the cluster flags, then the caller's EXTRA.
static it_broker_t *s_node_new(it_cluster_t *self, int i, const char *const *extra) {
    char partitions[16], replicas[16], insync[16];
    snprintf(partitions, sizeof partitions, "%u", self->partitions);
    snprintf(replicas, sizeof replicas, "%d", self->count < 3 ? self->count : 3);
    snprintf(insync, sizeof insync, "%d", self->count < 2 ? self->count : 2);
    const char *args[IT_EXTRA_MAX + 1];
    int k = 0;
    const char *mine[] = {"--etcd",           self->etcd->endpoints,
                          "--cluster",        self->name,
                          "--cluster-listen", self->listen[i],
                          "--partitions",     partitions,
                          "--replicas",       replicas,
                          "--min-insync",     insync};
    for (size_t j = 0; j < sizeof mine / sizeof mine[0]; j++) {
        args[k++] = mine[j];
    }
    if (self->net) {
        //  Not loopback: ternd refuses that without auth unless told the
        //  network is the test's own.
        args[k++] = "--insecure";
    }
    for (const char *const *a = extra; a && *a && k < IT_EXTRA_MAX; a++) {
        args[k++] = *a;
    }
    args[k] = NULL;
    return it_broker_new((uint32_t)i, args);
}

it_broker_t *it_cluster_node(const it_etcd_t *etcd, const char *name, uint32_t id,
                             uint32_t partitions, const char *const *extra) {
    char listen[64], count[16];
    snprintf(listen, sizeof listen, "tcp://127.0.0.1:%d", test_port());
    snprintf(count, sizeof count, "%u", partitions);
    const char *args[19] = {"--etcd", etcd->endpoints, "--cluster", name,      "--cluster-listen",
                            listen,   "--partitions",  count,       "--lease", "2s"};
    for (size_t i = 0, n = 10; extra && extra[i] && n < 18; i++) {
        args[n++] = extra[i];
    }
    it_broker_t *b = it_adopt_broker(it_broker_new(id, args));
    if (b && !it_broker_start(b)) {
        return NULL; //  adopted: it_teardown still stops it
    }
    return b;
}

it_etcd_t *it_suite_etcd;

void it_suite_etcd_start(void) {
    it_suite_etcd = it_etcd_new(1);
    cr_assert_not_null(it_suite_etcd, "etcd did not start");
}

void it_suite_etcd_stop(void) {
    it_teardown();
    it_etcd_destroy(&it_suite_etcd);
}

it_broker_t *it_suite_node(const char *name, uint32_t id, uint32_t partitions,
                           const char *const *extra) {
    it_broker_t *b = it_cluster_node(it_suite_etcd, name, id, partitions, extra);
    cr_assert(b, "node %u did not start", id);
    return b;
}

it_cluster_t *it_cluster_new(int count, int etcd_members, uint32_t partitions,
                             const char *const *extra) {
    if (count < 1 || count > IT_CLUSTER_NODES_MAX || partitions == 0) {
        return NULL;
    }
    it_cluster_t *self = calloc(1, sizeof *self);
    self->count = count;
    self->partitions = partitions;
    snprintf(self->name, sizeof self->name, "it%d", (int)getpid());
    self->net = s_netns;
    if (self->net && !it_netns_enter(self->net, IT_NETNS_ETCD)) {
        goto fail;
    }
    self->etcd = it_etcd_new_on(etcd_members, s_host(self, -1));
    if (self->net && !it_netns_enter(self->net, IT_NETNS_CLIENT)) {
        goto fail;
    }
    if (self->etcd == NULL) {
        goto fail;
    }
    //  Short calls: a test reading the map during an etcd outage must not
    //  hang on it.
    self->kv = tern_etcd_new(self->etcd->endpoints, 1000);
    if (self->kv == NULL) {
        goto fail;
    }
    for (int i = 0; i < count; i++) {
        snprintf(self->listen[i], sizeof self->listen[i], "tcp://%s:%d", s_host(self, i),
                 test_port());
        self->node[i] = s_node_new(self, i, extra);
        if (self->node[i] == NULL) {
            goto fail;
        }
        //  Its client endpoint (--listen) on its host's address too.
        snprintf(self->node[i]->endpoint, sizeof self->node[i]->endpoint, "tcp://%s:%d",
                 s_host(self, i), self->node[i]->port);
        size_t used = strlen(self->endpoints);
        snprintf(self->endpoints + used, sizeof self->endpoints - used, "%s%s", i ? "," : "",
                 self->node[i]->endpoint);
    }
    s_remember(self, true);
    return self;
fail:
    fprintf(stderr, "cluster_harness: cannot set up a cluster of %d nodes\n", count);
    s_remember(self, true);
    it_cluster_destroy(&self);
    return NULL;
}

bool it_cluster_start(it_cluster_t *self, int timeout_ms) {
    for (int i = 0; i < self->count; i++) {
        if (!s_spawn(self, i)) {
            fprintf(stderr, "cluster_harness: cannot spawn node %d\n", i);
            return false;
        }
    }
    for (int i = 0; i < self->count; i++) {
        if (!it_broker_wait_ready(self->node[i], S_READY_MS)) {
            fprintf(stderr, "cluster_harness: node %d did not become ready\n", i);
            return false;
        }
    }
    return it_cluster_wait_all_led(self, timeout_ms);
}

bool it_cluster_start_node(it_cluster_t *self, int i) {
    return s_spawn(self, i) && it_broker_wait_ready(self->node[i], S_READY_MS);
}

void it_cluster_kill_node(it_cluster_t *self, int i) {
    it_broker_kill(self->node[i]);
}

int it_cluster_stop_node(it_cluster_t *self, int i, int timeout_ms) {
    return it_broker_stop(self->node[i], timeout_ms);
}

void it_cluster_pause_node(it_cluster_t *self, int i) {
    it_broker_pause(self->node[i]);
}

void it_cluster_resume_node(it_cluster_t *self, int i) {
    it_broker_resume(self->node[i]);
}

bool it_cluster_node_running(it_cluster_t *self, int i) {
    return it_broker_alive(self->node[i], NULL);
}

bool it_etcd_record(tern_etcd_t *kv, const char *name, uint32_t partition,
                    tern_partmap_record_t *out, bool quiet) {
    char key[96];
    snprintf(key, sizeof key, "/tern/%s/partitions/%u", name, partition);
    tern_etcd_kvs_t *kvs = NULL;
    tern_err_t rc = tern_etcd_get(kv, key, false, &kvs);
    bool ok = false;
    const char *why = "absent";
    if (rc != TERN_OK) {
        why = tern_etcd_reason(kv);
    } else if (kvs->count == 1) {
        rc = tern_partmap_record_decode(kvs->kvs[0].value, kvs->kvs[0].value_size, out, &why);
        ok = rc == TERN_OK;
        if (ok && out->epoch == 0) {
            out->epoch = (uint64_t)kvs->kvs[0].mod_revision;
        }
    }
    if (!ok && !quiet) {
        fprintf(stderr, "cluster_harness: %s: %s\n", key, why);
    }
    tern_etcd_kvs_destroy(&kvs);
    return ok;
}

bool it_cluster_record(it_cluster_t *self, uint32_t partition, tern_partmap_record_t *out,
                       bool quiet) {
    return it_etcd_record(self->kv, self->name, partition, out, quiet);
}

int it_cluster_leader(it_cluster_t *self, uint32_t partition) {
    tern_partmap_record_t rec;
    if (!it_cluster_record(self, partition, &rec, true) || rec.leader == TERN_NODE_NONE) {
        return -1;
    }
    return (int)rec.leader;
}

int it_cluster_controller(it_cluster_t *self) {
    char key[96];
    snprintf(key, sizeof key, "/tern/%s/controller", self->name);
    tern_etcd_kvs_t *kvs = NULL;
    int id = -1;
    if (tern_etcd_get(self->kv, key, false, &kvs) == TERN_OK && kvs->count == 1) {
        char *end = NULL;
        long value = strtol(kvs->kvs[0].value, &end, 10);
        //  The value may be the bare id or a record starting with `id=N`.
        if (end == kvs->kvs[0].value && strncmp(kvs->kvs[0].value, "id=", 3) == 0) {
            value = strtol(kvs->kvs[0].value + 3, &end, 10);
        }
        id = end != kvs->kvs[0].value && value >= 0 ? (int)value : -1;
    }
    tern_etcd_kvs_destroy(&kvs);
    return id;
}

static void s_print_record(const char *what, uint32_t partition, const tern_partmap_record_t *rec,
                           bool have) {
    char text[TERN_PARTMAP_TEXT_MAX] = "(none read)";
    if (have) {
        tern_partmap_record_encode(rec, text, sizeof text);
    }
    fprintf(stderr, "cluster_harness: %s: partition %u: %s\n", what, partition, text);
}

bool it_cluster_wait_leader(it_cluster_t *self, uint32_t partition, int not_leader,
                            uint64_t old_epoch, int timeout_ms, tern_partmap_record_t *out) {
    int64_t deadline = it_now_ms() + timeout_ms;
    bool have = false;
    do {
        have = it_cluster_record(self, partition, out, true);
        if (have && out->leader != TERN_NODE_NONE && (int)out->leader != not_leader &&
            (old_epoch == 0 || out->epoch != old_epoch)) {
            return true;
        }
        it_sleep_ms(S_POLL_MS);
    } while (it_now_ms() < deadline);
    s_print_record("no new leader in time", partition, out, have);
    return false;
}

bool it_cluster_wait_all_led(it_cluster_t *self, int timeout_ms) {
    int64_t deadline = it_now_ms() + timeout_ms;
    for (uint32_t p = 0; p < self->partitions; p++) {
        tern_partmap_record_t rec;
        int64_t left = deadline - it_now_ms();
        if (!it_cluster_wait_leader(self, p, -1, 0, left > 0 ? (int)left : 1, &rec)) {
            return false;
        }
    }
    return true;
}

bool it_cluster_wait_isr_full(it_cluster_t *self, uint32_t partition, int timeout_ms,
                              tern_partmap_record_t *out) {
    int64_t deadline = it_now_ms() + timeout_ms;
    bool have = false;
    do {
        have = it_cluster_record(self, partition, out, true);
        if (have && out->nreplicas > 0 && out->nisr == out->nreplicas &&
            out->leader != TERN_NODE_NONE) {
            return true;
        }
        it_sleep_ms(S_POLL_MS * 5);
    } while (it_now_ms() < deadline);
    s_print_record("ISR not full in time", partition, out, have);
    return false;
}

const char *it_cluster_topic_for(const it_cluster_t *self, uint32_t partition, const char *prefix,
                                 char *buf, size_t cap) {
    for (int k = 0;; k++) {
        snprintf(buf, cap, "%s.%d", prefix, k);
        if (tern_partition_of(buf, strlen(buf), self->partitions) == partition) {
            return buf;
        }
    }
}

const char *it_cluster_endpoints_from(const it_cluster_t *self, int first, char *buf, size_t cap) {
    buf[0] = '\0';
    size_t used = 0;
    if (first >= 0 && first < self->count) {
        used = (size_t)snprintf(buf, cap, "%s", self->node[first]->endpoint);
    }
    for (int i = 0; i < self->count && used < cap; i++) {
        if (i != first) {
            used += (size_t)snprintf(buf + used, cap - used, "%s%s", used ? "," : "",
                                     self->node[i]->endpoint);
        }
    }
    return buf;
}

bool it_cluster_enable_cuts(it_cluster_t *self) {
    if (self->net) {
        return true; //  real cuts: blackhole routes between namespaces
    }
    if (self->cut_dir[0] == '\0' && test_dir_make(self->cut_dir, "cut") == NULL) {
        self->cut_dir[0] = '\0';
        return false;
    }
    //  Children inherit these; the test process itself loaded nothing.
    //  An ASan ternd would refuse a library preloaded before its runtime.
    setenv("TERN_CUT_DIR", self->cut_dir, 1);
    setenv("LD_PRELOAD", TERN_CUT_SHIM, 1);
    setenv("ASAN_OPTIONS", "verify_asan_link_order=0", 0);
    return true;
}

//  it_cluster_cut in namespaces: cuts node I from the host behind each of
//  PORTS (a node's cluster port, or etcd's client port) with blackhole
//  routes both ways; COUNT 0 heals every cut made.
static bool s_netns_cut(it_cluster_t *self, int i, const int *ports, size_t count) {
    bool ok = true;
    for (int h = 0; h < IT_NETNS_HOSTS_MAX && count == 0; h++) {
        if (self->cut_from[h]) {
            ok = it_netns_heal(self->net, IT_NETNS_NODE(self->cut_victim), h) && ok;
            self->cut_from[h] = false;
        }
    }
    for (size_t k = 0; k < count; k++) {
        int host = ports[k] == self->etcd->client_port[0] ? IT_NETNS_ETCD : -1;
        for (int n = 0; n < self->count && host < 0; n++) {
            host = it_cluster_listen_port(self, n) == ports[k] ? IT_NETNS_NODE(n) : -1;
        }
        if (host == IT_NETNS_NODE(i)) {
            continue; //  its own port
        }
        if (host < 0 || !it_netns_cut(self->net, IT_NETNS_NODE(i), host)) {
            fprintf(stderr, "cluster_harness: cannot cut node %d from port %d\n", i, ports[k]);
            return false;
        }
        self->cut_victim = i;
        self->cut_from[host] = true;
    }
    return ok;
}

bool it_cluster_cut(it_cluster_t *self, int i, const int *ports, size_t count) {
    if (self->net) {
        return s_netns_cut(self, i, ports, count);
    }
    if (self->cut_dir[0] == '\0' || self->node[i]->pid <= 0) {
        return false;
    }
    char path[TEST_DIR_MAX + 32], tmp[TEST_DIR_MAX + 40];
    snprintf(path, sizeof path, "%.*s/%d", TEST_DIR_MAX, self->cut_dir, (int)self->node[i]->pid);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *file = fopen(tmp, "w");
    if (file == NULL) {
        return false;
    }
    for (size_t k = 0; k < count; k++) {
        fprintf(file, "%d\n", ports[k]);
    }
    //  Renamed into place: the shim never reads half a list.
    bool ok = fclose(file) == 0 && rename(tmp, path) == 0;
    it_sleep_ms(50);
    return ok;
}

int it_cluster_listen_port(const it_cluster_t *self, int i) {
    const char *colon = strrchr(self->listen[i], ':');
    return colon ? atoi(colon + 1) : -1;
}

void it_cluster_dump_logs(it_cluster_t *self) {
    for (int i = 0; i < self->count; i++) {
        fprintf(stderr, "cluster_harness: node %d:\n", i);
        it_broker_dump_log(self->node[i], false);
    }
}

void it_cluster_keep_logs(it_cluster_t *self, const char *dir) {
    for (int i = 0; i < self->count; i++) {
        size_t len = 0;
        char *text = it_read_file(self->node[i]->log_path, &len);
        char path[512];
        snprintf(path, sizeof path, "%s/n%d.log", dir, i);
        FILE *file = text ? fopen(path, "w") : NULL;
        if (file) {
            fwrite(text, 1, len, file);
            fclose(file);
        }
        free(text);
    }
}

void it_cluster_publish_until_acked(tern_client_t *client, const char *topic) {
    for (int i = 0; i < 60; i++) {
        tern_pub_options_t msg;
        tern_pub_options_init(&msg);
        msg.topic = topic;
        msg.payload = "probe";
        msg.size = 5;
        tern_err_t rc = tern_publish(client, &msg, 15000, NULL);
        if (rc == TERN_OK) {
            return;
        }
        //  Refused while the leader's followers sync, or before the node
        //  saw itself become leader; not confirmed while the ISR changes.
        cr_assert(rc == TERN_EREPLICAS || rc == TERN_ENOTLEADER || rc == TERN_ETIMEOUT,
                  "probe publish to %s: %s", topic, tern_errname(rc));
        usleep(500 * 1000);
    }
    cr_assert_fail("publishes to %s were never acknowledged", topic);
}

tern_client_t *it_cluster_client(it_cluster_t *self, int first,
                                 const tern_client_options_t *options) {
    tern_client_options_t defaults;
    tern_client_options_init(&defaults);
    char endpoints[sizeof self->endpoints];
    tern_client_t *client =
        tern_client_new(it_cluster_endpoints_from(self, first, endpoints, sizeof endpoints),
                        options ? options : &defaults);
    cr_assert_not_null(client, "tern_client_new: %s", tern_last_reason());
    return client;
}

int it_cluster_follower(it_cluster_t *self, uint32_t partition, int other_than) {
    tern_partmap_record_t rec;
    cr_assert(it_cluster_record(self, partition, &rec, false));
    for (uint32_t i = 0; i < rec.nreplicas; i++) {
        if ((int)rec.replicas[i] != other_than) {
            return (int)rec.replicas[i];
        }
    }
    cr_assert_fail("partition %u has no replica other than node %d", partition, other_than);
    return -1;
}

void it_cluster_kill_out(it_cluster_t *self, int i, uint32_t partition, int timeout_ms) {
    it_cluster_kill_node(self, i);
    tern_partmap_record_t rec;
    int64_t deadline = it_now_ms() + timeout_ms;
    while (it_cluster_record(self, partition, &rec, true) &&
           tern_partmap_in_isr(&rec, (uint32_t)i)) {
        cr_assert(it_now_ms() < deadline, "node %d still in partition %u's ISR", i, partition);
        it_sleep_ms(200);
    }
}

void it_cluster_handover(it_cluster_t *self, uint32_t partition, int to, int timeout_ms) {
    tern_partmap_record_t rec;
    cr_assert(it_cluster_wait_isr_full(self, partition, timeout_ms, &rec),
              "partition %u: ISR not full", (unsigned)partition);
    char p[16], node[16];
    snprintf(p, sizeof p, "%u", (unsigned)partition);
    snprintf(node, sizeof node, "%d", to);
    it_result_t r;
    cr_assert_eq(it_ctl(&r, self->node[to], 10000, "cluster", "handover", p, "--to", node, NULL), 0,
                 "%s", r.err);
    it_result_free(&r);
    int64_t deadline = it_now_ms() + timeout_ms;
    while (it_cluster_leader(self, partition) != to) {
        cr_assert(it_now_ms() < deadline, "node %d did not take partition %u", to,
                  (unsigned)partition);
        it_sleep_ms(100);
    }
}

bool it_cluster_verified(it_cluster_t *self, int via, int timeout_ms) {
    int64_t deadline = it_now_ms() + timeout_ms;
    for (;;) {
        it_result_t r = {0};
        int rc = it_ctl(&r, self->node[via], 30000, "cluster", "verify", NULL);
        bool late = it_now_ms() > deadline;
        if (rc != 0 && late) {
            fprintf(stderr, "cluster verify: %s\n%s\n", r.out, r.err);
        }
        it_result_free(&r);
        if (rc == 0 || late) {
            return rc == 0;
        }
        it_sleep_ms(500);
    }
}

tern_store_t *it_cluster_store_open(const it_broker_t *node) {
    tern_store_config_t config;
    tern_store_config_defaults(&config);
    config.dir = node->data_dir;
    tern_err_t err = TERN_OK;
    tern_store_t *store = tern_store_new(&config, &err);
    cr_assert_not_null(store, "open %s: %s", node->data_dir, tern_errname(err));
    return store;
}

void it_cluster_dump_stored(FILE *out, const it_broker_t *node, const char *dc, const char *name,
                            const char *topic) {
    char tag[64] = "";
    if (dc) {
        snprintf(tag, sizeof tag, "\"dc\":\"%s\",", dc);
    }
    tern_store_t *store = it_cluster_store_open(node);
    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    fprintf(out, "{\"ev\":\"node\",%s\"node\":\"%s\",\"topic\":\"%s\"}\n", tag, name, topic);
    tern_topic_info_t info;
    if (tern_store_topic_get(reader, topic, &info) == TERN_OK) {
        tern_frame_t msg;
        uint64_t seq = 1;
        while (tern_store_read_next(reader, info.id, seq, &msg) == TERN_OK) {
            fprintf(out,
                    "{\"ev\":\"stored\",%s\"node\":\"%s\",\"topic\":\"%s\",\"seq\":%llu,"
                    "\"msg_id\":%llu,\"producer\":\"%s\",\"producer_seq\":%llu}\n",
                    tag, name, topic, (unsigned long long)msg.seq, (unsigned long long)msg.msg_id,
                    msg.producer, (unsigned long long)msg.producer_seq);
            seq = msg.seq + 1;
        }
    }
    tern_store_read_end(reader);
    tern_store_reader_destroy(&reader);
    tern_store_destroy(&store);
}

it_copy_t it_cluster_store_copy(tern_store_t *store, const char *topic, uint64_t upto) {
    it_copy_t copy = {0, 0};
    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    tern_topic_info_t info;
    if (tern_store_topic_get(reader, topic, &info) == TERN_OK) {
        copy.last_seq = info.last_seq;
        tern_err_t rc =
            tern_store_digest(reader, topic, upto ? upto : info.last_seq, 0, &copy.digest);
        cr_assert_eq(rc, TERN_OK, "digest %s: %s", topic, tern_errname(rc));
    }
    tern_store_read_end(reader);
    tern_store_reader_destroy(&reader);
    return copy;
}

void it_cluster_destroy(it_cluster_t **self_p) {
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    it_cluster_t *self = *self_p;
    s_remember(self, false);
    for (int i = 0; i < IT_CLUSTER_NODES_MAX; i++) {
        it_broker_destroy(&self->node[i]);
    }
    tern_etcd_destroy(&self->kv);
    it_etcd_destroy(&self->etcd);
    if (self->cut_dir[0]) {
        test_dir_remove(self->cut_dir);
    }
    free(self);
    *self_p = NULL;
}

void it_cluster_teardown(void) {
    for (int i = 0; i < S_CLUSTERS_MAX; i++) {
        if (s_clusters[i]) {
            it_cluster_destroy(&s_clusters[i]);
        }
    }
    it_teardown();
}
