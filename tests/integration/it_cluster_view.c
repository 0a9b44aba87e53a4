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
#include "tern_cluster.h"
#include "tern_config.h"
#include "tern_etcd.h"
#include "tern_partmap.h"
#include "test_dir.h"
#include "test_port.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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

//  A broker of cluster NAME: node ID, its own cluster endpoint, PARTITIONS,
//  a lease of 2 s and REPLACE_AFTER. Adopted: it_teardown stops it.
static it_broker_t *s_node_with(const char *name, uint32_t id, const char *partitions,
                                const char *replace_after) {
    char listen[64];
    snprintf(listen, sizeof listen, "tcp://127.0.0.1:%d", test_port());
    const char *args[] = {"--etcd",
                          s_etcd->endpoints,
                          "--cluster",
                          name,
                          "--cluster-listen",
                          listen,
                          "--partitions",
                          partitions,
                          "--lease",
                          "2s",
                          "--replace-after",
                          replace_after,
                          NULL};
    it_broker_t *b = it_broker_new(id, args);
    cr_assert_not_null(b);
    return it_adopt_broker(b);
}

static it_broker_t *s_node(const char *name, uint32_t id, const char *partitions) {
    return s_node_with(name, id, partitions, "5m");
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
static void s_refused_at(const char *etcd, const char *name, uint32_t id, const char *partitions,
                         const char *want) {
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
                    (char *)etcd,
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

static void s_refused(const char *name, uint32_t id, const char *partitions, const char *want) {
    s_refused_at(s_etcd->endpoints, name, id, partitions, want);
}

Test(cluster_view, refuses_a_second_node_id_and_other_partitions) {
    it_broker_t *b = s_node("refuse", 0, "16");
    cr_assert(it_broker_start(b));
    s_refused("refuse", 0, "16", "node id 0 is already live in cluster refuse (another ternd?)");
    s_refused("refuse", 1, "8", "cluster/partitions is 8 but cluster refuse was created with 16");
    char nobody[64];
    snprintf(nobody, sizeof nobody, "http://127.0.0.1:%d", test_port());
    s_refused_at(nobody, "refuse", 1, "16", "cannot join cluster refuse: etcd");
    //  The first one is untouched.
    cr_assert(it_broker_alive(b, NULL));
    s_state_t s;
    s_read("refuse", &s);
    cr_assert(s.node_up[0]);
    cr_assert_not(s.node_up[1]);
    //  Killed and restarted at once, on its own data dir: its previous key
    //  (same identity) is waited out, not refused.
    it_broker_kill(b);
    cr_assert(it_broker_start(b), "a restart right after SIGKILL was refused");
    s_read("refuse", &s);
    cr_assert(s.node_up[0]);
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

//  --- The view's API, in this process -------------------------------------
//
//  Three tern_cluster_t of cluster "api" in the test process itself (real
//  etcd, real threads): what the other actors of a node read and ask.

#define S_API_PARTITIONS 8

//  API member ID of cluster "api" on etcd at ENDPOINTS.
static tern_cluster_t *s_member_at(uint32_t id, const char *endpoints) {
    tern_config_t config;
    tern_config_defaults(&config);
    config.node_id = id;
    snprintf(config.etcd, sizeof config.etcd, "%s", endpoints);
    snprintf(config.cluster_name, sizeof config.cluster_name, "api");
    config.partitions = S_API_PARTITIONS;
    config.lease_ms = 2000;
    char endpoint[64], cluster[64], identity[40], errbuf[256] = "";
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%u", 10000 + id);
    snprintf(cluster, sizeof cluster, "tcp://127.0.0.1:%u", 20000 + id);
    snprintf(identity, sizeof identity, "00000000-0000-4000-8000-00000000000%u", id);
    tern_cluster_t *c =
        tern_cluster_new(&config, endpoint, cluster, identity, errbuf, sizeof errbuf);
    cr_assert_not_null(c, "node %u: %s", id, errbuf);
    return c;
}

static tern_cluster_t *s_member_new(uint32_t id) {
    return s_member_at(id, s_etcd->endpoints);
}

//  Waits until C's view of PARTITION satisfies WANT(rec, arg).
static bool s_view_wait(tern_cluster_t *c, uint32_t partition,
                        bool (*want)(const tern_partmap_record_t *, uint32_t), uint32_t arg) {
    int64_t deadline = it_now_ms() + S_WAIT_MS;
    tern_partmap_record_t rec;
    do {
        cr_assert(tern_cluster_record(c, partition, &rec));
        if (want(&rec, arg)) {
            return true;
        }
        it_sleep_ms(20);
    } while (it_now_ms() < deadline);
    return false;
}

static bool s_full(const tern_partmap_record_t *rec, uint32_t replicas) {
    return rec->leader != TERN_NODE_NONE && rec->nisr == replicas;
}

static bool s_isr_size(const tern_partmap_record_t *rec, uint32_t size) {
    return rec->nisr == size;
}

static bool s_led_by(const tern_partmap_record_t *rec, uint32_t node) {
    return rec->leader == node;
}

static bool s_not_in_isr(const tern_partmap_record_t *rec, uint32_t node) {
    return !tern_partmap_in_isr(rec, node) && rec->leader != TERN_NODE_NONE;
}

//  Three members of cluster "api" in this process, into C, once each one's
//  view holds every record complete.
static void s_members_up(tern_cluster_t **c) {
    for (uint32_t i = 0; i < S_NODES; i++) {
        c[i] = s_member_new(i);
    }
    for (uint32_t i = 0; i < S_NODES; i++) {
        for (uint32_t p = 0; p < S_API_PARTITIONS; p++) {
            cr_assert(s_view_wait(c[i], p, s_full, S_NODES), "node %u: partition %u", i, p);
        }
    }
}

Test(cluster_view, api_view) {
    tern_cluster_t *c[S_NODES];
    s_members_up(c);
    tern_partmap_record_t rec;
    cr_assert_not(tern_cluster_record(c[0], S_API_PARTITIONS, &rec));
    cr_assert_eq(tern_cluster_self(c[1]), 1);
    cr_assert_eq(tern_cluster_partitions(c[1]), S_API_PARTITIONS);
    tern_cluster_node_t nodes[4];
    cr_assert_eq(tern_cluster_nodes(c[2], nodes, 4), S_NODES);
    for (uint32_t i = 0; i < S_NODES; i++) {
        cr_assert_eq(nodes[i].id, i);
        cr_assert(nodes[i].up);
        char want[64];
        snprintf(want, sizeof want, "tcp://127.0.0.1:%u", 10000 + i);
        cr_assert_str_eq(nodes[i].endpoint, want);
        snprintf(want, sizeof want, "tcp://127.0.0.1:%u", 20000 + i);
        cr_assert_str_eq(nodes[i].cluster_endpoint, want);
        cr_assert_str_eq(nodes[i].dc, "dc1");
    }
    uint32_t controller = tern_cluster_controller(c[0]);
    cr_assert_lt(controller, S_NODES);
    cr_assert(tern_cluster_lease_ok(c[0]));

    //  Partition 0: its leader leads it (and only it, of the three).
    cr_assert(tern_cluster_record(c[0], 0, &rec));
    uint32_t leader = rec.leader;
    uint64_t epoch = 0;
    for (uint32_t i = 0; i < S_NODES; i++) {
        cr_assert_eq(tern_cluster_leads(c[i], 0, i == leader ? &epoch : NULL), i == leader);
    }
    cr_assert_eq(epoch, rec.epoch);
    char why[128], want[128];
    snprintf(want, sizeof want, "partition 0 is led by node %u at tcp://127.0.0.1:%u", leader,
             10000 + leader);
    cr_assert_str_eq(tern_cluster_not_leader(c[(leader + 1) % S_NODES], 0, why, sizeof why), want);
    snprintf(want, sizeof want, "partition %u has no leader", S_API_PARTITIONS);
    cr_assert_str_eq(tern_cluster_not_leader(c[0], S_API_PARTITIONS, why, sizeof why), want);
    tern_cluster_node_t unknown;
    cr_assert_not(tern_cluster_node(c[0], 7, &unknown));
    tern_cluster_set_position(c[leader], 0, 17);
    cr_assert_eq(tern_cluster_position(c[leader], 0), 17);
    cr_assert_eq(tern_cluster_position(c[leader], S_API_PARTITIONS), 0);

    //  A node announces another client endpoint (ternd: the one it bound).
    tern_cluster_set_endpoint(c[1], "tcp://127.0.0.1:30001");
    int64_t deadline = it_now_ms() + S_WAIT_MS;
    tern_cluster_node_t one_node;
    do {
        it_sleep_ms(20);
        cr_assert(tern_cluster_node(c[0], 1, &one_node));
    } while (strcmp(one_node.endpoint, "tcp://127.0.0.1:30001") != 0 && it_now_ms() < deadline);
    cr_assert_str_eq(one_node.endpoint, "tcp://127.0.0.1:30001");
    cr_assert_str_eq(one_node.cluster_endpoint, "tcp://127.0.0.1:20001");
    cr_assert(one_node.up);

    for (uint32_t i = 0; i < S_NODES; i++) {
        tern_cluster_destroy(&c[i]);
    }
}

Test(cluster_view, api_isr_handover_and_leaving) {
    tern_cluster_t *c[S_NODES];
    s_members_up(c);
    tern_partmap_record_t rec;
    cr_assert(tern_cluster_record(c[0], 0, &rec));
    uint32_t leader = rec.leader;
    //  An ISR shrink by the leader keeps the epoch; one for a stale epoch
    //  (partition 1) changes nothing.
    tern_partmap_record_t one;
    cr_assert(tern_cluster_record(c[0], 1, &one));
    tern_partmap_record_t stale = one;
    stale.nisr = 1;
    stale.isr[0] = one.leader;
    tern_cluster_isr_request(c[one.leader], 1, one.epoch - 1, &stale);
    uint32_t dropped = rec.isr[rec.nisr - 1] == leader ? rec.isr[0] : rec.isr[rec.nisr - 1];
    tern_partmap_record_t next = rec;
    next.nisr = 0;
    for (uint32_t i = 0; i < rec.nisr; i++) {
        if (rec.isr[i] != dropped) {
            next.isr[next.nisr++] = rec.isr[i];
        }
    }
    tern_cluster_isr_request(c[leader], 0, rec.epoch, &next);
    for (uint32_t i = 0; i < S_NODES; i++) {
        cr_assert(s_view_wait(c[i], 0, s_isr_size, S_NODES - 1), "node %u", i);
    }
    tern_partmap_record_t shrunk;
    cr_assert(tern_cluster_record(c[2], 0, &shrunk));
    cr_assert_eq(shrunk.epoch, rec.epoch, "an ISR change keeps the epoch");
    cr_assert_eq(shrunk.leader, leader);
    cr_assert_not(tern_partmap_in_isr(&shrunk, dropped));
    tern_cluster_stats_t stats;
    tern_cluster_stats(c[leader], &stats);
    cr_assert_eq(stats.isr_changes, 1);

    //  Handover: not to a replica outside the ISR; to an ISR member it is a
    //  new epoch. Queued after the stale request, so that one was served.
    cr_assert_eq(tern_cluster_handover(c[0], 0, dropped), TERN_EINVAL);
    cr_assert_eq(tern_cluster_handover(c[0], 0, 99), TERN_EINVAL);
    cr_assert_eq(tern_cluster_handover(c[0], S_API_PARTITIONS, leader), TERN_EINVAL);
    uint32_t to = next.isr[0] == leader ? next.isr[1] : next.isr[0];
    cr_assert_eq(tern_cluster_handover(c[0], 0, to), TERN_OK);
    for (uint32_t i = 0; i < S_NODES; i++) {
        cr_assert(s_view_wait(c[i], 0, s_led_by, to), "node %u", i);
    }
    cr_assert(tern_cluster_record(c[1], 0, &rec));
    cr_assert_gt(rec.epoch, shrunk.epoch, "a leader change is a new epoch");
    tern_partmap_record_t after;
    cr_assert(tern_cluster_record(c[one.leader], 1, &after));
    cr_assert(tern_partmap_record_same(&after, &one), "the stale ISR request was written");

    //  A graceful exit: node 2 hands over everything it leads, then leaves.
    uint64_t version = tern_cluster_version(c[0]);
    cr_assert_eq(tern_cluster_handover_all(c[2], S_WAIT_MS), 0);
    for (uint32_t p = 0; p < S_API_PARTITIONS; p++) {
        cr_assert(tern_cluster_record(c[2], p, &rec));
        cr_assert_neq(rec.leader, 2, "partition %u", p);
    }
    tern_cluster_destroy(&c[2]);
    cr_assert_null(c[2]);
    for (uint32_t p = 0; p < S_API_PARTITIONS; p++) {
        cr_assert(s_view_wait(c[0], p, s_not_in_isr, 2), "partition %u", p);
    }
    cr_assert_gt(tern_cluster_version(c[0]), version);
    tern_cluster_node_t gone;
    cr_assert(tern_cluster_node(c[0], 2, &gone));
    cr_assert_not(gone.up);
    tern_cluster_destroy(&c[0]);
    tern_cluster_destroy(&c[1]);
    tern_cluster_destroy(&c[1]);
}

//  Waits until C's lease_ok is WANT.
static bool s_lease_wait(tern_cluster_t *c, bool want) {
    int64_t deadline = it_now_ms() + S_WAIT_MS;
    while (tern_cluster_lease_ok(c) != want && it_now_ms() < deadline) {
        it_sleep_ms(20);
    }
    return tern_cluster_lease_ok(c) == want;
}

//  After WAIT_MS, C wrote no failover and its view of every partition is
//  BEFORE.
static void s_unmoved(tern_cluster_t *c, const tern_partmap_record_t *before, int wait_ms) {
    it_sleep_ms(wait_ms);
    tern_cluster_stats_t stats;
    tern_cluster_stats(c, &stats);
    cr_assert_eq(stats.failovers, 0);
    for (uint32_t p = 0; p < S_API_PARTITIONS; p++) {
        tern_partmap_record_t now;
        cr_assert(tern_cluster_record(c, p, &now));
        cr_assert(tern_partmap_record_same(&now, &before[p]), "partition %u was rewritten", p);
    }
}

Test(cluster_view, lease_fencing_and_rejoin) {
    tern_cluster_t *c = s_member_new(0);
    cr_assert(tern_cluster_lease_ok(c));
    //  Alone: its records come after 3 leases, on itself.
    tern_partmap_record_t before[S_API_PARTITIONS];
    for (uint32_t p = 0; p < S_API_PARTITIONS; p++) {
        cr_assert(s_view_wait(c, p, s_full, 1), "partition %u", p);
        cr_assert(tern_cluster_record(c, p, &before[p]));
    }
    //  etcd frozen past the TTL: the node stops trusting its lease...
    it_etcd_pause_member(s_etcd, 0);
    cr_assert(s_lease_wait(c, false), "lease_ok stayed true with etcd frozen");
    cr_assert_not(tern_cluster_leads(c, 0, NULL));
    it_sleep_ms(3000); //  past the TTL, so that etcd may expire it when it wakes
    it_etcd_resume_member(s_etcd, 0);
    //  ...and trusts it again once etcd answers (the same lease renewed, or
    //  a new one after re-joining), registered either way.
    cr_assert(s_lease_wait(c, true), "lease_ok did not come back");
    tern_cluster_stats_t stats;
    tern_cluster_stats(c, &stats);
    cr_assert_gt(stats.renew_failures, 0);
    int64_t deadline = it_now_ms() + S_WAIT_MS;
    s_state_t s;
    do {
        it_sleep_ms(50);
        s_read("api", &s);
    } while ((!s.node_up[0] || s.controllers != 1) && it_now_ms() < deadline);
    cr_assert(s.node_up[0] && s.controllers == 1, "not registered again");
    //  Back as itself, it wrote no failover of its own partitions (the
    //  watch's late news of its old key's expiry changes nothing).
    s_unmoved(c, before, 2000);
    tern_cluster_destroy(&c);
    s_read("api", &s);
    cr_assert_not(s.node_up[0], "destroy revokes the lease: the key goes at once");
}

//  The lease KEY is bound to in etcd (0: absent or none).
static int64_t s_key_lease(const char *key) {
    tern_etcd_kvs_t *kvs = NULL;
    cr_assert_eq(tern_etcd_get(s_client, key, false, &kvs), TERN_OK, "%s",
                 tern_etcd_reason(s_client));
    int64_t lease = kvs->count == 1 ? kvs->kvs[0].lease : 0;
    tern_etcd_kvs_destroy(&kvs);
    return lease;
}

//  etcd frozen for a little over cluster/lease (2 s) but under the TTL
//  etcd holds the lease for (3 s): the next renewal is answered late. A
//  revoke decided before it could still land, so the node never trusts
//  that lease again: it moves its node key and the controller key onto a
//  new lease (which such a revoke cannot hit), trusts that one, and
//  nothing fails over. Before, it renewed the same lease and trusted it
//  once a renewal 3/4 lease later was answered in time: the lease stayed.
Test(cluster_view, late_renewal_moves_to_a_new_lease) {
    tern_cluster_t *c = s_member_new(0);
    tern_partmap_record_t before[S_API_PARTITIONS];
    for (uint32_t p = 0; p < S_API_PARTITIONS; p++) {
        cr_assert(s_view_wait(c, p, s_full, 1), "partition %u", p);
        cr_assert(tern_cluster_record(c, p, &before[p]));
    }
    int64_t old = s_key_lease("/tern/api/nodes/0");
    cr_assert_neq(old, 0);
    cr_assert_eq(s_key_lease("/tern/api/controller"), old);
    //  Under the TTL even counted from the renewal before the pause
    //  (lease/3 earlier at most): etcd does not expire the lease itself.
    it_etcd_pause_member(s_etcd, 0);
    it_sleep_ms(2050);
    it_etcd_resume_member(s_etcd, 0);
    int64_t deadline = it_now_ms() + S_WAIT_MS;
    int64_t now_lease = old;
    while ((now_lease == old || !tern_cluster_lease_ok(c)) && it_now_ms() < deadline) {
        it_sleep_ms(50);
        now_lease = s_key_lease("/tern/api/nodes/0");
    }
    tern_cluster_stats_t stats;
    tern_cluster_stats(c, &stats);
    cr_assert_geq(stats.late_renewals, 1, "the renewal after the pause was not late");
    cr_assert_neq(now_lease, old, "the node trusts the lease it renewed late again");
    cr_assert_neq(now_lease, 0, "the node key is gone");
    cr_assert(tern_cluster_lease_ok(c));
    cr_assert_eq(s_key_lease("/tern/api/controller"), now_lease, "the controller key stayed");
    //  Nothing failed over: the same records, still its own.
    s_unmoved(c, before, 1000);
    tern_cluster_destroy(&c);
}

//  A TCP proxy to etcd that holds every client chunk asking for a lease's
//  TTL (LeaseTimeToLive, the lease polls) S_SLOW_MS before passing it on:
//  an etcd slow to answer the polls only. Its threads end with their
//  connections (the members' clients close them when destroyed).
#define S_SLOW_MS 900

static atomic_int s_polls_held; //  TTL requests the proxy held (a static: pumps may outlive a test)

typedef struct {
    int fd;          //  listening socket
    int port;        //  its port
    int etcd_port;   //  where it forwards
    atomic_bool end; //  stop accepting
    pthread_t thread;
} s_proxy_t;

typedef struct {
    int from;  //  read here
    int to;    //  write there
    bool slow; //  the client's direction: hold TTL requests (counted in s_polls_held)
} s_pump_t;

static void *s_pump(void *arg) {
    s_pump_t pump = *(s_pump_t *)arg;
    free(arg);
    char buf[16384];
    ssize_t n;
    while ((n = read(pump.from, buf, sizeof buf)) > 0) {
        if (pump.slow && memmem(buf, (size_t)n, "timetolive", 10)) {
            atomic_fetch_add(&s_polls_held, 1);
            it_sleep_ms(S_SLOW_MS);
        }
        for (ssize_t off = 0, w; off < n; off += w) {
            if ((w = write(pump.to, buf + off, (size_t)(n - off))) <= 0) {
                n = -1;
                break;
            }
        }
        if (n < 0) {
            break;
        }
    }
    shutdown(pump.to, SHUT_WR);
    shutdown(pump.from, SHUT_RD);
    return NULL;
}

static void s_pump_start(int from, int to, bool slow) {
    s_pump_t *pump = malloc(sizeof *pump);
    *pump = (s_pump_t){from, to, slow};
    pthread_t thread;
    cr_assert_eq(pthread_create(&thread, NULL, s_pump, pump), 0);
    pthread_detach(thread);
}

static void *s_proxy_run(void *arg) {
    s_proxy_t *proxy = arg;
    while (!atomic_load(&proxy->end)) {
        struct pollfd pfd = {.fd = proxy->fd, .events = POLLIN};
        if (poll(&pfd, 1, 100) <= 0) {
            continue;
        }
        int client = accept(proxy->fd, NULL, NULL);
        int server = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in to = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)proxy->etcd_port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        if (client < 0 || server < 0 || connect(server, (struct sockaddr *)&to, sizeof to) != 0) {
            close(client);
            close(server);
            continue;
        }
        s_pump_start(client, server, true); //  fds stay open: the test process ends soon
        s_pump_start(server, client, false);
    }
    return NULL;
}

static void s_proxy_start(s_proxy_t *proxy) {
    const char *colon = strrchr(s_etcd->endpoints, ':');
    cr_assert_not_null(colon);
    proxy->etcd_port = atoi(colon + 1);
    proxy->port = test_port();
    proxy->fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(proxy->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in at = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)proxy->port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(proxy->fd, (struct sockaddr *)&at, sizeof at), 0);
    cr_assert_eq(listen(proxy->fd, 16), 0);
    atomic_init(&proxy->end, false);
    cr_assert_eq(pthread_create(&proxy->thread, NULL, s_proxy_run, proxy), 0);
}

static void s_proxy_stop(s_proxy_t *proxy) {
    atomic_store(&proxy->end, true);
    pthread_join(proxy->thread, NULL);
    close(proxy->fd);
}

//  The controller polls the other nodes' leases through an etcd that takes
//  S_SLOW_MS to answer each poll (two nodes: nearly 2 s a pass, more than
//  the 1.5 s its lease is trusted after a renewal). Its own renewals must
//  not wait behind them: the polls run on their own thread and client, so
//  its lease stays ok throughout. When they ran on the cluster thread, a
//  pass delayed the keepalive past the fence: lease_ok went false.
Test(cluster_view, slow_lease_polls_never_delay_the_renewal) {
    s_proxy_t proxy = {0};
    atomic_store(&s_polls_held, 0);
    s_proxy_start(&proxy);
    char slow[64];
    snprintf(slow, sizeof slow, "http://127.0.0.1:%d", proxy.port);
    tern_cluster_t *c[S_NODES];
    c[0] = s_member_at(0, slow);
    cr_assert(s_view_wait(c[0], 0, s_full, 1), "no records");
    for (uint32_t i = 1; i < S_NODES; i++) {
        c[i] = s_member_at(i, s_etcd->endpoints);
    }
    s_state_t s;
    s_read("api", &s);
    cr_assert_eq(s.controller, 0);
    for (int i = 0; i < 300; i++) { //  about 3 s: several passes of polls
        cr_assert(tern_cluster_lease_ok(c[0]), "the controller's lease lapsed behind its polls");
        it_sleep_ms(10);
    }
    //  Else the proxy slowed nothing and the loop above could not fail.
    int held = atomic_load(&s_polls_held);
    cr_assert_geq(held, 2, "the proxy held %d lease polls in 3 s", held);
    for (uint32_t i = 0; i < S_NODES; i++) {
        tern_cluster_destroy(&c[i]);
    }
    s_proxy_stop(&proxy);
}

//  Waits until every record of cluster NAME satisfies OK(rec, arg); *S
//  gets the last state read.
static bool s_wait_all(const char *name, s_state_t *s,
                       bool (*ok)(const tern_partmap_record_t *, uint32_t), uint32_t arg) {
    int64_t deadline = it_now_ms() + S_WAIT_MS;
    while (true) {
        s_read(name, s);
        bool all = s->records == S_PARTITIONS;
        for (int p = 0; p < S_PARTITIONS && all; p++) {
            all = ok(&s->rec[p], arg);
        }
        if (all || it_now_ms() >= deadline) {
            return all;
        }
        it_sleep_ms(100);
    }
}

//  The ISR is not checked beyond the leader: with in-DC replication running
//  (crepl), a leader adds its new replicas to the ISR once they caught up,
//  within a fraction of a second.
static bool s_only_node0(const tern_partmap_record_t *rec, uint32_t replicas) {
    return rec->nreplicas == replicas && rec->leader == 0 && tern_partmap_in_isr(rec, 0);
}

static bool s_without(const tern_partmap_record_t *rec, uint32_t node) {
    return rec->nreplicas == S_NODES && !tern_partmap_in_replicas(rec, node) && rec->leader == 0;
}

Test(cluster_view, controller_adds_and_replaces_replicas) {
    //  Alone, node 0 waits 3 leases for others, then places every partition
    //  on itself.
    it_broker_t *n[4];
    n[0] = s_node_with("grow", 0, "16", "1s");
    cr_assert(it_broker_start(n[0]));
    s_state_t s;
    cr_assert(s_wait_all("grow", &s, s_only_node0, 1), "no records on node 0 alone");
    uint64_t epoch[S_PARTITIONS];
    for (int p = 0; p < S_PARTITIONS; p++) {
        epoch[p] = s.rec[p].epoch;
    }
    //  Two more nodes: every record gets 3 replicas, the new ones outside
    //  the ISR (their leader adds them once they caught up), same epoch.
    for (uint32_t i = 1; i < 4; i++) {
        n[i] = s_node_with("grow", i, "16", "1s");
    }
    cr_assert(it_broker_start(n[1]));
    cr_assert(it_broker_start(n[2]));
    cr_assert(s_wait_all("grow", &s, s_only_node0, S_NODES), "replicas were not added");
    for (int p = 0; p < S_PARTITIONS; p++) {
        cr_assert_eq(s.rec[p].epoch, epoch[p], "partition %d: a replica change kept the epoch", p);
    }
    //  A fourth node, then node 1 dies: after cluster/replace_after (1 s)
    //  each of its replicas (outside every ISR) moves to a live node.
    cr_assert(it_broker_start(n[3]));
    it_broker_kill(n[1]);
    cr_assert(s_wait_all("grow", &s, s_without, 1), "node 1's replicas were not replaced");
}

//  --- etcd's own failover ---------------------------------------------------

static void s_setup3(void) {
    s_etcd = it_etcd_new(3);
    cr_assert_not_null(s_etcd, "a 3-member etcd did not start");
    s_client = tern_etcd_new(s_etcd->endpoints, 5000);
    cr_assert_not_null(s_client);
}

TestSuite(cluster_view3, .init = s_setup3, .fini = s_teardown, .timeout = 240);

Test(cluster_view3, etcd_leader_loss_moves_nothing) {
    tern_cluster_t *c[S_NODES];
    s_members_up(c);
    tern_partmap_record_t before[S_API_PARTITIONS];
    for (uint32_t p = 0; p < S_API_PARTITIONS; p++) {
        cr_assert(tern_cluster_record(c[0], p, &before[p]));
    }
    //  etcd elects another leader; leases survive that (the new leader
    //  renews them all), so no node is dead and nothing fails over.
    int leader = it_etcd_leader(s_etcd);
    cr_assert_geq(leader, 0);
    it_etcd_kill_member(s_etcd, leader);
    for (uint32_t i = 0; i < S_NODES; i++) {
        cr_assert(s_lease_wait(c[i], true), "node %u", i);
    }
    it_sleep_ms(4000); //  two leases: long enough for a lapse to show
    s_state_t s;
    s_read("api", &s);
    for (uint32_t i = 0; i < S_NODES; i++) {
        cr_assert(s.node_up[i], "node %u lost its key", i);
        cr_assert(s_lease_wait(c[i], true), "node %u", i);
        tern_cluster_stats_t stats;
        tern_cluster_stats(c[i], &stats);
        cr_assert_eq(stats.failovers, 0, "node %u", i);
    }
    for (uint32_t p = 0; p < S_API_PARTITIONS; p++) {
        tern_partmap_record_t now;
        cr_assert(tern_cluster_record(c[1], p, &now));
        cr_assert(tern_partmap_record_same(&now, &before[p]), "partition %u was rewritten", p);
    }
    for (uint32_t i = 0; i < S_NODES; i++) {
        tern_cluster_destroy(&c[i]);
    }
}

Test(cluster_view3, frozen_member_watch_moves) {
    //  Every client and watch starts at member 0 (the first listed).
    tern_cluster_t *c[S_NODES];
    s_members_up(c);
    //  Frozen, member 0 still holds TCP connections open: the watches on
    //  it go silent, not DOWN. The keepalives time out there and move on.
    it_etcd_pause_member(s_etcd, 0);
    tern_cluster_destroy(&c[2]); //  leaves: its lease revoked on another member
    for (uint32_t i = 0; i < 2; i++) {
        for (uint32_t p = 0; p < S_API_PARTITIONS; p++) {
            cr_assert(s_view_wait(c[i], p, s_not_in_isr, 2), "node %u: partition %u", i, p);
        }
        tern_cluster_node_t gone;
        cr_assert(tern_cluster_node(c[i], 2, &gone));
        cr_assert_not(gone.up, "node %u still sees node 2 up", i);
    }
    it_etcd_resume_member(s_etcd, 0);
    tern_cluster_destroy(&c[0]);
    tern_cluster_destroy(&c[1]);
}

//  --- Fast failure detection (broker/tern_cluster_detect.c) -----------------

//  A node record of fake node ID in cluster "detect" bound to a new lease
//  of TTL_S (the test's, renewed only when it says so), announcing a
//  cluster/lease of 1 s when ANNOUNCE. Returns the lease.
static int64_t s_fake_node(uint32_t id, int64_t ttl_s, bool announce) {
    int64_t lease = 0;
    cr_assert_eq(tern_etcd_lease_grant(s_client, ttl_s, &lease, NULL), TERN_OK, "%s",
                 tern_etcd_reason(s_client));
    char key[64], value[256];
    snprintf(key, sizeof key, "/tern/detect/nodes/%u", id);
    snprintf(value, sizeof value,
             "id=%u endpoint=tcp://127.0.0.1:1 cluster=tcp://127.0.0.1:2 "
             "identity=00000000-0000-4000-8000-0000000000%02u dc=dc1%s",
             id, id, announce ? " lease=1000" : "");
    cr_assert_eq(tern_etcd_put(s_client, key, value, strlen(value), lease, NULL), TERN_OK);
    return lease;
}

//  The controller revokes the lease of a node that announces its lease once
//  etcd reports it unrenewed for that long; it leaves alone a lease that is
//  renewed, and one of a node that announces nothing (an older node: etcd
//  expires it itself).
Test(cluster_view, controller_revokes_a_lapsed_lease) {
    tern_config_t config;
    tern_config_defaults(&config);
    snprintf(config.etcd, sizeof config.etcd, "%s", s_etcd->endpoints);
    snprintf(config.cluster_name, sizeof config.cluster_name, "detect");
    config.partitions = S_API_PARTITIONS;
    config.lease_ms = 1000;
    char errbuf[256] = "";
    tern_cluster_t *c =
        tern_cluster_new(&config, "tcp://127.0.0.1:10100", "tcp://127.0.0.1:20100",
                         "00000000-0000-4000-8000-000000000100", errbuf, sizeof errbuf);
    cr_assert_not_null(c, "%s", errbuf);
    int64_t deadline = it_now_ms() + S_WAIT_MS;
    while (tern_cluster_controller(c) != 0 && it_now_ms() < deadline) {
        it_sleep_ms(20);
    }
    cr_assert_eq(tern_cluster_controller(c), 0, "node 0 did not become the controller");
    //  etcd grants the lease a second more than cluster/lease.
    char key[64] = "/tern/detect/nodes/0";
    tern_etcd_kvs_t *kvs = NULL;
    cr_assert_eq(tern_etcd_get(s_client, key, false, &kvs), TERN_OK);
    cr_assert_eq(kvs->count, 1);
    cr_assert(strstr(kvs->kvs[0].value, " lease=1000"), "%s", kvs->kvs[0].value);
    int64_t ttl = 0, granted = 0;
    cr_assert_eq(tern_etcd_lease_ttl(s_client, kvs->kvs[0].lease, &ttl, &granted), TERN_OK);
    cr_assert_geq(granted, 2);
    tern_etcd_kvs_destroy(&kvs);

    int64_t lapsing = s_fake_node(5, 3, true);
    int64_t renewed = s_fake_node(6, 3, true);
    int64_t older = s_fake_node(7, 3, false);
    deadline = it_now_ms() + S_WAIT_MS;
    s_state_t s;
    do {
        cr_assert_eq(tern_etcd_lease_keepalive(s_client, renewed, NULL), TERN_OK);
        it_sleep_ms(200);
        s_read("detect", &s);
    } while ((s.node_up[5] || s.node_up[7]) && it_now_ms() < deadline);
    cr_assert_not(s.node_up[5] || s.node_up[7], "the unrenewed fake nodes stayed up");
    cr_assert(s.node_up[6], "a renewed lease was revoked");
    tern_cluster_stats_t stats;
    tern_cluster_stats(c, &stats);
    cr_assert_eq(stats.lease_revokes, 1, "node 5's lease alone is revoked, not node 7's");
    cr_assert_eq(tern_etcd_lease_ttl(s_client, lapsing, &ttl, NULL), TERN_OK);
    cr_assert_eq(ttl, -1);
    cr_assert_eq(tern_etcd_lease_ttl(s_client, older, &ttl, NULL), TERN_OK);
    cr_assert_eq(ttl, -1);
    cr_assert_eq(tern_etcd_lease_ttl(s_client, renewed, &ttl, NULL), TERN_OK);
    cr_assert_geq(ttl, 1);
    cr_assert_eq(tern_etcd_lease_revoke(s_client, renewed), TERN_OK);
    tern_cluster_destroy(&c);
}
