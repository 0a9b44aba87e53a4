/*  tern_cluster.h - this node's membership of a clustered DC, and its view
    of the partition map (docs/cluster.md).

    One tern_cluster_t per ternd started with cluster/etcd. It runs its own
    thread (the "cluster" actor), the only one that talks to etcd:
    - membership: a lease of cluster/lease, kept alive every lease/3, and the
      key PREFIX/nodes/<node id> bound to it (value: the node's record, see
      docs/cluster.md "etcd keys"); a second live node with the same id is
      refused at join;
    - the controller: the lease-bound key PREFIX/controller, won by a
      transaction (create_revision == 0). The controller creates missing
      partition records (tern_placement over live nodes), and on every
      membership change applies tern_partmap_failover by compare-and-swap on
      each record's mod_revision;
    - the view: a watch on PREFIX keeps a local copy of every node and every
      partition record, which the other actors read through the calls below
      (any thread; a mutex guards the copy, calls copy out).

    Epochs. Every record write carries `ver=V`, above every ver of the key
    the writer or etcd held and at most the write's revision; a leader
    change takes epoch = V, a write that changes only the ISR keeps the
    epoch (a value without them, an older node's, gets its mod_revision).
    So epochs grow with every leader change and never go back, not even
    when etcd is restored from a backup (tern_cluster_restore.c). Every
    in-DC frame carries (partition, epoch) and is fenced against the record
    with tern_partmap_fence.

    Fencing by lease. tern_cluster_lease_ok is false from the moment the
    lease may have lapsed: from the send time of the last keepalive that
    etcd answered in time plus cluster/lease, minus a margin of a quarter of
    it (etcd grants a second more: the other nodes revoke the lease when
    etcd reports it unrenewed for cluster/lease, tern_cluster_detect.c). A
    node whose lease is not ok neither acknowledges a publish nor delivers:
    the controller may already have promoted another leader.

    etcd keys (PREFIX = "/tern/<cluster/name>"):
        PREFIX/config/partitions   P, written once by the first node (txn)
        PREFIX/nodes/<id>          node record (lease-bound), text:
                                   `id=2 endpoint=tcp://... cluster=tcp://... identity=UUID dc=dc1
   lease=1000` PREFIX/identity/<id>       the node's data-dir UUID (not leased) PREFIX/controller
   the controller's node id (lease-bound) PREFIX/partitions/<p>      the partition record
   (tern_partmap text)
*/
#ifndef TERN_CLUSTER_H_INCLUDED
#define TERN_CLUSTER_H_INCLUDED

#include "tern_config.h"
#include "tern_err.h"
#include "tern_partmap.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tern_cluster_t tern_cluster_t;

/*  One node as the view knows it. */
typedef struct {
    uint32_t id;                //  node id (node/id)
    bool up;                    //  its lease-bound key exists
    char endpoint[256];         //  client endpoint (server/advertise)
    char cluster_endpoint[256]; //  in-DC replication endpoint (cluster/listen)
    char identity[40];          //  its data dir's replica identity (UUID)
    char dc[65];                //  its DC name
    char repl_endpoint[256];    //  its cross-DC replication endpoint (repl/listen; "": none)
} tern_cluster_node_t;

/*  Joins the cluster described by CONFIG (cluster/etcd set) as node
    CONFIG->node_id, announcing ENDPOINT (clients) and CLUSTER_ENDPOINT
    (in-DC replication), with IDENTITY the store's replica identity
    (tern_store_identity). Blocks until the node is registered and the view
    holds every record etcd has (a new cluster's records come a little
    later, from the controller: watch tern_cluster_version), then returns;
    the actor thread runs until destroy. A node key left by this data dir's
    previous run (same identity, killed less than a lease ago) is waited
    out (two granted TTLs and a second at most). On failure returns NULL and writes one
    line into ERRBUF: etcd unreachable, cluster/partitions differs from the
    cluster's, node id already live, ... (the caller exits 1 with it). */
tern_cluster_t *tern_cluster_new(const tern_config_t *config, const char *endpoint,
                                 const char *cluster_endpoint, const char *identity, char *errbuf,
                                 size_t errlen);

/*  Announces ENDPOINT as this node's client endpoint from now on (ternd
    calls it once the client socket is bound, when server/advertise is not
    set and the bound endpoint differs from server/listen, e.g. port 0).
    Asynchronous: the node key is rewritten by the actor. Any thread. */
void tern_cluster_set_endpoint(tern_cluster_t *self, const char *endpoint);

/*  Leaves: stops the thread and revokes the lease (the node's keys go at
    once, the controller fails its partitions over). Safe on NULL; nulls
    *SELF_P. */
void tern_cluster_destroy(tern_cluster_t **self_p);

/*  This node's id, and the cluster's partition count. */
uint32_t tern_cluster_self(tern_cluster_t *self);
uint32_t tern_cluster_partitions(tern_cluster_t *self);

/*  Grows by one on every change of the view (a record, a node, the
    controller): a reader that remembers it knows when to look again. */
uint64_t tern_cluster_version(tern_cluster_t *self);

/*  Copies PARTITION's record into *OUT. False when PARTITION is out of range
    (OUT untouched). */
bool tern_cluster_record(tern_cluster_t *self, uint32_t partition, tern_partmap_record_t *out);

/*  Copies node ID into *OUT; false when the view has never seen it. */
bool tern_cluster_node(tern_cluster_t *self, uint32_t id, tern_cluster_node_t *out);

/*  Copies up to MAX nodes (up or down, by id) into OUT; returns how many the
    view holds (may exceed MAX). */
size_t tern_cluster_nodes(tern_cluster_t *self, tern_cluster_node_t *out, size_t max);

/*  The controller's node id, TERN_NODE_NONE when there is none. */
uint32_t tern_cluster_controller(tern_cluster_t *self);

/*  False once the lease may have lapsed (see "Fencing by lease"). */
bool tern_cluster_lease_ok(tern_cluster_t *self);

/*  True when this node leads PARTITION and its lease is ok; *EPOCH_P (may be
    NULL) gets the record's epoch. */
bool tern_cluster_leads(tern_cluster_t *self, uint32_t partition, uint64_t *epoch_p);

/*  The ERROR reason for a request on a partition this node does not lead:
    "partition P is led by node N at ENDPOINT" or "partition P has no
    leader", into BUF (LEN bytes). Returns BUF. */
const char *tern_cluster_not_leader(tern_cluster_t *self, uint32_t partition, char *buf,
                                    size_t len);

/*  Asks the actor to write PARTITION's ISR as NEXT->isr (a leader's ISR
    shrink or expand, tern_partmap_isr_next), by CAS on the record this node
    leads in EPOCH; asynchronous, at most one pending per partition (a newer
    request replaces an older one). The outcome shows in the view. */
void tern_cluster_isr_request(tern_cluster_t *self, uint32_t partition, uint64_t epoch,
                              const tern_partmap_record_t *next);

/*  Asks the controller path to hand PARTITION over to node TO (a live ISR
    member), by CAS. Used by ternctl cluster handover and by a SIGTERM'd
    leader. Asynchronous; the outcome shows in the view. Returns TERN_OK
    when queued, TERN_EINVAL when TO cannot lead it. */
tern_err_t tern_cluster_handover(tern_cluster_t *self, uint32_t partition, uint32_t to);

/*  A leader's graceful exit (SIGTERM): hands every partition this node
    leads over to another live ISR member (the first in replica order) and
    waits up to TIMEOUT_MS until the view shows each handover. Returns how
    many partitions it still leads then (those with no other live ISR
    member, or not moved in time, or all of them at once when the lease is
    not ok: etcd is then likely out of reach). Any thread but the actor's. */
size_t tern_cluster_handover_all(tern_cluster_t *self, int timeout_ms);

/*  The leader's log position of PARTITION (the in-DC replication actor sets
    it for the partitions this node leads; 0 elsewhere), for `ternctl cluster
    partitions`. Any thread (relaxed atomics). */
void tern_cluster_set_position(tern_cluster_t *self, uint32_t partition, uint64_t position);
uint64_t tern_cluster_position(tern_cluster_t *self, uint32_t partition);

/*  Lease renewals and failures, failovers written by this node as
    controller, lapsed leases it revoked: counters for /metrics. */
typedef struct {
    uint64_t renewals;       //  keepalives etcd answered
    uint64_t renew_failures; //  keepalives that failed
    uint64_t failovers;      //  leader changes this node wrote as controller
    uint64_t isr_changes;    //  ISR writes that succeeded
    uint64_t lease_revokes;  //  other nodes' leases revoked as etcd reported them lapsed
    uint64_t late_renewals;  //  own renewals answered too late to be trusted
} tern_cluster_stats_t;
void tern_cluster_stats(tern_cluster_t *self, tern_cluster_stats_t *out);

#endif
