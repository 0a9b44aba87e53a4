/*  cluster_harness.h - a clustered DC for the fault tests: etcd (one member
    or three) and N ternd nodes joined to it, driven and observed from outside.

    Built on harness.h and etcd_harness.h: every node is an it_broker_t whose
    process is registered by PID (killed by PID at exit, PR_SET_PDEATHSIG if
    the test dies), every etcd member is stopped by its PID. Node I has node
    id I, a client endpoint, a cluster endpoint (--cluster-listen) and a data
    dir that survives kill -9 and restarts.

    The partition map is read straight from etcd (PREFIX/partitions/<p>,
    tern_partmap_record_decode), not from a node: after a fault the tests ask
    the arbiter, never the nodes under test, who leads. A record's epoch is
    the `epoch=` of its value when present, else the key's mod_revision
    (tern_cluster.h, "Epochs").

    Waits poll with a deadline and say what they saw when it passes; nothing
    here asserts a duration.
*/
#ifndef TERN_IT_CLUSTER_HARNESS_H_INCLUDED
#define TERN_IT_CLUSTER_HARNESS_H_INCLUDED

#include "etcd_harness.h"
#include "harness.h"
#include "netns_harness.h"
#include "tern_etcd.h"
#include "tern_partmap.h"
#include "tern_store.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define IT_CLUSTER_NODES_MAX 5

typedef struct {
    it_etcd_t *etcd;                           //  the etcd members, owned
    tern_etcd_t *kv;                           //  client reading the map, owned
    int count;                                 //  nodes
    uint32_t partitions;                       //  cluster/partitions
    char name[32];                             //  cluster/name: keys under /tern/NAME/
    it_broker_t *node[IT_CLUSTER_NODES_MAX];   //  node I (node id I), owned
    char listen[IT_CLUSTER_NODES_MAX][64];     //  its --cluster-listen endpoint
    char endpoints[IT_CLUSTER_NODES_MAX * 64]; //  every client endpoint, comma-separated
    char cut_dir[TEST_DIR_MAX];                //  it_cluster_enable_cuts's dir, or ""
    it_netns_t *net;                           //  namespaces it runs in (not owned), or NULL
    int cut_victim;                            //  net: the node whose links are cut, or -1
    bool cut_from[IT_NETNS_HOSTS_MAX];         //  net: the hosts it is cut from
} it_cluster_t;

/*  Clusters created from now on run in NET's namespaces (NULL: on
    loopback, the default): etcd in host IT_NETNS_ETCD, node I in
    IT_NETNS_NODE(I), each listening on its host's address; the calling
    thread must be in IT_NETNS_CLIENT (it_netns_enter), and is left there.
    NET must outlive those clusters. */
void it_cluster_set_netns(it_netns_t *net);

//  One node (ID) of cluster NAME on ETCD, outside an it_cluster_t: a free
//  cluster endpoint, PARTITIONS partitions, a 2 s lease, and the
//  NULL-terminated extra ternd flags EXTRA (may be NULL; at most 8);
//  started, and adopted (it_teardown stops it by PID). NULL if it did not
//  start.
it_broker_t *it_cluster_node(const it_etcd_t *etcd, const char *name, uint32_t id,
                             uint32_t partitions, const char *const *extra);

/*  A suite's etcd of one member, for suites that start their nodes one by
    one (it_cluster_node) instead of as an it_cluster_t: as the suite's
    .init, it_suite_etcd_start starts it into it_suite_etcd (asserting that
    it came up); as its .fini, it_suite_etcd_stop stops every node by PID
    (it_teardown), then etcd. */
extern it_etcd_t *it_suite_etcd;
void it_suite_etcd_start(void);
void it_suite_etcd_stop(void);

/*  it_cluster_node on it_suite_etcd; asserts that it started. */
it_broker_t *it_suite_node(const char *name, uint32_t id, uint32_t partitions,
                           const char *const *extra);

/*  PARTITION's record of cluster NAME as etcd (through KV) holds it now
    into *OUT, with its epoch set as above. False if etcd could not be
    read or has no valid record (reason on stderr unless QUIET). */
bool it_etcd_record(tern_etcd_t *kv, const char *name, uint32_t partition,
                    tern_partmap_record_t *out, bool quiet);

/*  Describes a cluster of COUNT (1..IT_CLUSTER_NODES_MAX) nodes with
    PARTITIONS partitions over a fresh etcd of ETCD_MEMBERS (1 or 3) members
    (started here), each node with `--replicas min(3, COUNT) --min-insync
    min(2, COUNT)` and the NULL-terminated extra ternd flags EXTRA (may be
    NULL; e.g. "--lease", "1s"). Does not start the nodes. NULL (reason on
    stderr) if etcd did not come up. Caller owns the result; the cluster is
    also remembered for it_cluster_teardown. */
it_cluster_t *it_cluster_new(int count, int etcd_members, uint32_t partitions,
                             const char *const *extra);

/*  Starts every node that is not running (all spawned first, then each
    awaited: a node's join may wait for the others) and waits until every
    partition has a leader. False, with logs on stderr, if one did not. */
bool it_cluster_start(it_cluster_t *self, int timeout_ms);

/*  Starts node I again on its data dir; waits until it is ready. */
bool it_cluster_start_node(it_cluster_t *self, int i);

/*  kill -9 of node I (by PID), reaped. */
void it_cluster_kill_node(it_cluster_t *self, int i);

/*  SIGTERM, exit awaited (SIGKILL past TIMEOUT_MS); the exit code as
    it_broker_stop returns it. */
int it_cluster_stop_node(it_cluster_t *self, int i, int timeout_ms);

/*  SIGSTOP / SIGCONT of node I. */
void it_cluster_pause_node(it_cluster_t *self, int i);
void it_cluster_resume_node(it_cluster_t *self, int i);

/*  True while node I runs (not counting a SIGSTOPped node as dead). */
bool it_cluster_node_running(it_cluster_t *self, int i);

/*  PARTITION's record as etcd holds it now into *OUT, with its epoch set as
    above. False if etcd could not be read or has no valid record (reason on
    stderr unless QUIET). */
bool it_cluster_record(it_cluster_t *self, uint32_t partition, tern_partmap_record_t *out,
                       bool quiet);

/*  The node that leads PARTITION now (per etcd), or -1. */
int it_cluster_leader(it_cluster_t *self, uint32_t partition);

/*  The controller's node id per etcd (PREFIX/controller), or -1. */
int it_cluster_controller(it_cluster_t *self);

/*  Polls etcd until PARTITION has a leader other than NOT_LEADER (-1: any)
    in an epoch other than OLD_EPOCH (0: any); the record into *OUT. False
    after TIMEOUT_MS (the last record seen on stderr). */
bool it_cluster_wait_leader(it_cluster_t *self, uint32_t partition, int not_leader,
                            uint64_t old_epoch, int timeout_ms, tern_partmap_record_t *out);

/*  Polls until every partition has a leader; false after TIMEOUT_MS. */
bool it_cluster_wait_all_led(it_cluster_t *self, int timeout_ms);

/*  Polls until PARTITION's ISR holds every one of its replicas (or
    TIMEOUT_MS passes); the last record read into *OUT either way. True if
    it does. */
bool it_cluster_wait_isr_full(it_cluster_t *self, uint32_t partition, int timeout_ms,
                              tern_partmap_record_t *out);

/*  Writes into BUF (CAP bytes) the first topic PREFIX.K (K = 0, 1, ...)
    that hashes to PARTITION (tern_partition_of); returns BUF. */
const char *it_cluster_topic_for(const it_cluster_t *self, uint32_t partition, const char *prefix,
                                 char *buf, size_t cap);

/*  Client endpoints for libtern with node FIRST's first, then the others
    (FIRST -1: in node order), comma-separated, into BUF; returns BUF. */
const char *it_cluster_endpoints_from(const it_cluster_t *self, int first, char *buf, size_t cap);

/*  Network partitions without iptables: makes every node started from now
    on preload tests/integration/cut_shim.c (LD_PRELOAD, with TERN_CUT_DIR
    a fresh dir of the cluster), so that it_cluster_cut can cut its links.
    Call before it_cluster_start. False if the dir cannot be made. */
bool it_cluster_enable_cuts(it_cluster_t *self);

/*  Cuts, in node I's process, every TCP link whose local or peer port is
    one of PORTS[0..COUNT-1] (sent bytes dropped, received ones discarded;
    the connections stay up and silent); COUNT 0 heals. Takes effect within
    20 ms. False if the cluster has no cuts enabled or node I is not
    running. */
bool it_cluster_cut(it_cluster_t *self, int i, const int *ports, size_t count);

/*  Publishes a 5-byte probe to TOPIC with CLIENT until one is acknowledged
    (the topic's leader leads and its ISR confirms), every 500 ms, at most
    60 tries; asserts that every refusal is one a changing cluster gives
    (TERN_EREPLICAS, TERN_ENOTLEADER, TERN_ETIMEOUT). */
void it_cluster_publish_until_acked(tern_client_t *client, const char *topic);

/*  A client whose seeds are the cluster's client endpoints, node FIRST's
    first (-1: in node order), with OPTIONS (NULL: the defaults); asserts
    that it was made. Caller owns the result. */
tern_client_t *it_cluster_client(it_cluster_t *self, int first,
                                 const tern_client_options_t *options);

/*  The first of PARTITION's replicas (per etcd now) other than OTHER_THAN; asserts
    that there is one. */
int it_cluster_follower(it_cluster_t *self, uint32_t partition, int other_than);

/*  kill -9 of node I, then polls etcd until PARTITION's ISR no longer holds
    it (its lease lapsed: it may join again); asserts that it leaves within
    TIMEOUT_MS. */
void it_cluster_kill_out(it_cluster_t *self, int i, uint32_t partition, int timeout_ms);

/*  `ternctl cluster handover PARTITION --to TO` through node TO (asserted
    to succeed), once PARTITION's ISR is full; then polls etcd until TO
    leads it, asserting that it does within TIMEOUT_MS. */
void it_cluster_handover(it_cluster_t *self, uint32_t partition, int to, int timeout_ms);

/*  Runs `ternctl cluster verify` through node VIA until it says every
    partition's replicas are identical (the live stream may still be on its
    way). False, with its last output on stderr, after TIMEOUT_MS. */
bool it_cluster_verified(it_cluster_t *self, int via, int timeout_ms);

/*  Opens the store in stopped node NODE's data dir (the defaults);
    asserts that it opened. Caller owns the result. */
tern_store_t *it_cluster_store_open(const it_broker_t *node);

/*  The checker's history lines of stopped node NODE for TOPIC (docs/
    checker.md), written to OUT: a node line for node NAME (with the "dc"
    field DC unless NULL), then a stored line per message of TOPIC in its
    data dir (an empty or missing log still gets its node line). */
void it_cluster_dump_stored(FILE *out, const it_broker_t *node, const char *dc, const char *name,
                            const char *topic);

/*  What a store holds of one topic: its last seq (0: no such topic) and
    tern_store_digest of its records up to UPTO (0: the last seq). */
typedef struct {
    uint64_t last_seq; //  the topic's last seq (0: no topic)
    uint64_t digest;   //  tern_store_digest up to the seq asked for
} it_copy_t;
it_copy_t it_cluster_store_copy(tern_store_t *store, const char *topic, uint64_t upto);
/*  The TCP port of node I's --cluster-listen endpoint. */
int it_cluster_listen_port(const it_cluster_t *self, int i);

/*  Writes the current run's log of every node to stderr (for a failing
    test: what each node said). */
void it_cluster_dump_logs(it_cluster_t *self);

/*  Copies every node's whole log to DIR/nI.log (to keep them past
    it_cluster_destroy for a failing test). */
void it_cluster_keep_logs(it_cluster_t *self, const char *dir);

/*  Kills every node and etcd member by PID, removes their dirs, frees,
    nulls *SELF_P. Safe on NULL. */
void it_cluster_destroy(it_cluster_t **self_p);

/*  Criterion .fini hook: destroys every cluster not destroyed yet, then
    it_teardown(). */
void it_cluster_teardown(void);

#endif
