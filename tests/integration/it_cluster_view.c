/*  it_cluster_view.c - the cluster actor (broker/tern_cluster*.c) with real
    ternd processes on a real etcd: membership, the controller's records,
    failover, and the refusals at join.

    Each test starts its own ternd nodes in a cluster of its own name on the
    suite's etcd (etcd_harness.h), and reads etcd directly (tern_etcd_get +
    tern_partmap_record_decode) to see what the nodes wrote. Every process
    is stopped by its PID (the harnesses' teardown).
*/
#include "etcd_harness.h"
#include "harness.h"
#include "tern_etcd.h"
#include "tern_partmap.h"
#include "test_dir.h"
#include "test_port.h"

#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_PARTITIONS 16
#define S_NODES      3
#define S_WAIT_MS    30000

static it_etcd_t *s_etcd;
static tern_etcd_t *s_client;

static void s_setup(void) {
    s_etcd = it_etcd_new(1);
    cr_assert_not_null(s_etcd, "etcd did not start");
    s_client = tern_etcd_new(s_etcd->endpoints, 5000);
    cr_assert_not_null(s_client);
}

static void s_teardown(void) {
    it_teardown();
    tern_etcd_destroy(&s_client);
    it_etcd_destroy(&s_etcd);
}

TestSuite(cluster_view, .init = s_setup, .fini = s_teardown, .timeout = 240);

//  What etcd holds for one cluster.
typedef struct {
    tern_partmap_record_t rec[S_PARTITIONS]; //  records, by partition
    bool has[S_PARTITIONS];                  //  the record exists
    size_t records;                          //  how many exist
    bool node_up[8];                         //  PREFIX/nodes/<id> exists
    int controllers;                         //  PREFIX/controller keys (0 or 1)
    uint32_t controller;                     //  its value
    int64_t revision;                        //  the read's revision
} s_state_t;

//  A broker of cluster NAME: node ID, its own cluster endpoint, plus EXTRA
//  (NULL-terminated, may be NULL). Adopted: it_teardown stops it.
static it_broker_t *s_node(const char *name, uint32_t id, const char *partitions) {
    char listen[64];
    snprintf(listen, sizeof listen, "tcp://127.0.0.1:%d", test_port());
    const char *args[] = {"--etcd", s_etcd->endpoints, "--cluster", name,      "--cluster-listen",
                          listen,   "--partitions",    partitions,  "--lease", "2s",
                          NULL};
    it_broker_t *b = it_broker_new(id, args);
    cr_assert_not_null(b);
    return it_adopt_broker(b);
}

//  Reads cluster NAME's keys from etcd into *S.
static void s_read(const char *name, s_state_t *s) {
    memset(s, 0, sizeof *s);
    char prefix[128];
    snprintf(prefix, sizeof prefix, "/tern/%s/", name);
    tern_etcd_kvs_t *kvs = NULL;
    tern_err_t err = tern_etcd_get(s_client, prefix, true, &kvs);
    cr_assert_eq(err, TERN_OK, "get %s: %s", prefix, tern_etcd_reason(s_client));
    s->revision = kvs->revision;
    for (size_t i = 0; i < kvs->count; i++) {
        const tern_etcd_kv_t *kv = &kvs->kvs[i];
        const char *rest = kv->key + strlen(prefix);
        if (strncmp(rest, "partitions/", 11) == 0) {
            tern_partmap_record_t rec;
            const char *why = "";
            cr_assert_eq(tern_partmap_record_decode(kv->value, kv->value_size, &rec, &why), TERN_OK,
                         "%s = %s: %s", kv->key, kv->value, why);
            cr_assert_lt(rec.partition, S_PARTITIONS);
            if (rec.epoch == 0) {
                rec.epoch = (uint64_t)kv->mod_revision; //  a leader change's own revision
            }
            s->rec[rec.partition] = rec;
            s->has[rec.partition] = true;
            s->records++;
        } else if (strncmp(rest, "nodes/", 6) == 0) {
            unsigned long id = strtoul(rest + 6, NULL, 10);
            cr_assert_lt(id, 8, "%s", kv->key);
            s->node_up[id] = true;
        } else if (strcmp(rest, "controller") == 0) {
            s->controllers++;
            s->controller = (uint32_t)strtoul(kv->value, NULL, 10);
        }
    }
    tern_etcd_kvs_destroy(&kvs);
}

//  Every partition has a record with 3 replicas (distinct: the decoder
//  checks), a leader and a full ISR.
static bool s_complete(const s_state_t *s) {
    if (s->records != S_PARTITIONS) {
        return false;
    }
    for (int p = 0; p < S_PARTITIONS; p++) {
        if (s->rec[p].nreplicas != S_NODES || s->rec[p].nisr != S_NODES ||
            s->rec[p].leader == TERN_NODE_NONE) {
            return false;
        }
    }
    return true;
}

//  Starts S_NODES nodes (ids 0..2) of cluster NAME into OUT and waits until
//  etcd holds every record, complete; *S gets that state.
static void s_start_cluster(const char *name, it_broker_t **out, s_state_t *s) {
    for (uint32_t i = 0; i < S_NODES; i++) {
        out[i] = s_node(name, i, "16");
        cr_assert(it_broker_start(out[i]), "node %u did not start", i);
    }
    int64_t deadline = it_now_ms() + S_WAIT_MS;
    do {
        s_read(name, s);
        if (s_complete(s)) {
            return;
        }
        it_sleep_ms(100);
    } while (it_now_ms() < deadline);
    cr_assert_fail("cluster %s: %zu records, not all with 3 replicas, a leader and a full ISR",
                   name, s->records);
}

Test(cluster_view, records_controller_and_failover) {
    it_broker_t *n[S_NODES];
    s_state_t s;
    s_start_cluster("view", n, &s);
    cr_assert_eq(s.controllers, 1);
    cr_assert_lt(s.controller, S_NODES);
    for (int i = 0; i < S_NODES; i++) {
        cr_assert(s.node_up[i], "node %d is not registered", i);
    }

    //  SIGKILL the leader of partition 0: no goodbye, its lease must lapse.
    uint32_t dead = s.rec[0].leader;
    s_state_t before = s;
    it_broker_kill(n[dead]);
    int64_t deadline = it_now_ms() + S_WAIT_MS;
    bool done = false;
    while (!done && it_now_ms() < deadline) {
        it_sleep_ms(100);
        s_read("view", &s);
        done = !s.node_up[dead] && s.controllers == 1;
        for (int p = 0; p < S_PARTITIONS && done; p++) {
            done = !tern_partmap_in_isr(&s.rec[p], dead) && s.rec[p].leader != dead;
        }
    }
    cr_assert(done, "node %u is still registered, a leader, or in an ISR", dead);
    for (int p = 0; p < S_PARTITIONS; p++) {
        uint32_t leader = s.rec[p].leader;
        cr_assert_neq(leader, TERN_NODE_NONE, "partition %d has no leader", p);
        cr_assert(tern_partmap_in_isr(&before.rec[p], leader),
                  "partition %d: new leader %u was not in its ISR", p, leader);
        if (before.rec[p].leader == dead) {
            cr_assert_gt(s.rec[p].epoch, before.rec[p].epoch, "partition %d: epoch not new", p);
        }
        //  The dead node stays a replica (cluster/replace_after is 5 m).
        cr_assert(tern_partmap_in_replicas(&s.rec[p], dead), "partition %d", p);
    }

    //  It comes back: registered again (the ISR is the replication's job).
    cr_assert(it_broker_start(n[dead]));
    deadline = it_now_ms() + S_WAIT_MS;
    do {
        it_sleep_ms(100);
        s_read("view", &s);
    } while (!s.node_up[dead] && it_now_ms() < deadline);
    cr_assert(s.node_up[dead], "node %u did not register again", dead);
}

//  Runs ternd for cluster NAME as node ID with PARTITIONS on a fresh data
//  dir, expecting it to exit 1 with WANT in its stderr.
static void s_refused(const char *name, uint32_t id, const char *partitions, const char *want) {
    char dir[TEST_DIR_MAX];
    cr_assert_not_null(test_dir_make(dir, "cluster-refused"));
    char node[16], listen[64], cluster_listen[64];
    snprintf(node, sizeof node, "%u", id);
    snprintf(listen, sizeof listen, "tcp://127.0.0.1:%d", test_port());
    snprintf(cluster_listen, sizeof cluster_listen, "tcp://127.0.0.1:%d", test_port());
    char *argv[] = {(char *)it_ternd_path(),
                    "--data",
                    dir,
                    "--listen",
                    listen,
                    "--metrics",
                    "off",
                    "--node-id",
                    node,
                    "--etcd",
                    s_etcd->endpoints,
                    "--cluster",
                    (char *)name,
                    "--cluster-listen",
                    cluster_listen,
                    "--partitions",
                    (char *)partitions,
                    NULL};
    it_result_t r;
    int status = it_run(&r, 20000, NULL, argv);
    cr_assert_eq(status, 1, "ternd exited %d; stderr: %s", status, r.err);
    cr_assert_not_null(strstr(r.err, want), "stderr lacks \"%s\": %s", want, r.err);
    it_result_free(&r);
    test_dir_remove(dir);
}

Test(cluster_view, refuses_a_second_node_id_and_other_partitions) {
    it_broker_t *b = s_node("refuse", 0, "16");
    cr_assert(it_broker_start(b));
    s_refused("refuse", 0, "16", "node id 0 is already live in cluster refuse (another ternd?)");
    s_refused("refuse", 1, "8", "cluster/partitions is 8 but cluster refuse was created with 16");
    //  The first one is untouched.
    cr_assert(it_broker_alive(b, NULL));
    s_state_t s;
    s_read("refuse", &s);
    cr_assert(s.node_up[0]);
    cr_assert_not(s.node_up[1]);
}

//  Applies one watch event of cluster NAME's keys to *S (records and nodes).
static void s_apply(const char *name, s_state_t *s, const tern_etcd_event_t *ev) {
    char prefix[128];
    snprintf(prefix, sizeof prefix, "/tern/%s/", name);
    const char *rest = ev->kv.key + strlen(prefix);
    bool put = ev->type == TERN_ETCD_EV_PUT;
    if (strncmp(rest, "partitions/", 11) == 0 && put) {
        tern_partmap_record_t rec;
        cr_assert_eq(tern_partmap_record_decode(ev->kv.value, ev->kv.value_size, &rec, NULL),
                     TERN_OK);
        s->rec[rec.partition] = rec;
    } else if (strncmp(rest, "nodes/", 6) == 0) {
        s->node_up[strtoul(rest + 6, NULL, 10) % 8] = put;
    }
}

Test(cluster_view, wiped_node_leaves_every_isr_before_it_registers) {
    it_broker_t *n[S_NODES];
    s_state_t s;
    s_start_cluster("wiped", n, &s);
    //  All at once, so that nobody fails anyone over: every ISR stays whole.
    for (int i = 0; i < S_NODES; i++) {
        it_broker_kill(n[i]);
    }
    int64_t deadline = it_now_ms() + S_WAIT_MS;
    do {
        it_sleep_ms(200);
        s_read("wiped", &s);
    } while ((s.node_up[0] || s.node_up[1] || s.node_up[2]) && it_now_ms() < deadline);
    cr_assert(!s.node_up[0] && !s.node_up[1] && !s.node_up[2], "leases did not lapse");
    size_t in_isr = 0;
    for (int p = 0; p < S_PARTITIONS; p++) {
        in_isr += tern_partmap_in_isr(&s.rec[p], 0);
    }
    cr_assert_eq(in_isr, S_PARTITIONS, "node 0 should be in every ISR before the wipe");

    //  A new, empty data dir: a new replica identity.
    cr_assert_eq(test_dir_remove(n[0]->data_dir), 0);
    cr_assert_eq(mkdir(n[0]->data_dir, 0700), 0);
    tern_etcd_watch_t *watch =
        tern_etcd_watch_new(s_etcd->endpoints, "/tern/wiped/", s.revision + 1);
    cr_assert_not_null(watch);
    cr_assert(it_broker_start(n[0]));
    //  Replay every write in order: when node 0's key appears, it must be
    //  in no ISR already.
    bool registered = false;
    while (!registered) {
        tern_etcd_event_t *ev = tern_etcd_watch_wait(watch, 10000);
        cr_assert_not_null(ev, "node 0 never registered");
        s_apply("wiped", &s, ev);
        registered = s.node_up[0];
        tern_etcd_event_destroy(&ev);
    }
    for (int p = 0; p < S_PARTITIONS; p++) {
        cr_assert_not(tern_partmap_in_isr(&s.rec[p], 0),
                      "partition %d: node 0 still in the ISR when it registered", p);
        cr_assert_neq(s.rec[p].leader, 0, "partition %d", p);
    }
    tern_etcd_watch_destroy(&watch);
    size_t len = 0;
    char *log = it_read_file(n[0]->log_path, &len);
    cr_assert(log && strstr(log, "the data dir was wiped or swapped"), "no log line");
    free(log);
}
