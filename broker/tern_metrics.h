/*  tern_metrics.h - ternd's counters: plain atomics every actor bumps.

    One tern_metrics_t per broker, created before the actors and destroyed
    after them; actors hold a borrowed pointer. Counters only grow except
    `connections` and `ops_queued` (gauges). Readers (status, the future HTTP endpoint) load
    them with relaxed atomics from any thread.
*/
#ifndef TERN_METRICS_H_INCLUDED
#define TERN_METRICS_H_INCLUDED

#include "tern_series.h"
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define TERN_METRICS_CODES 8 //  decode error buckets (see tern_metrics_code_bucket)
#define TERN_METRICS_FOLLOWERS                                                                     \
    15 //  followers per partition with a lag figure (TERN_PLACEMENT_REPLICAS_MAX - 1)

/*  A leader's figure for one follower of one partition (in-DC replication). */
typedef struct {
    _Atomic uint32_t node;   //  the follower's node id + 1; 0 = slot unused
    _Atomic uint64_t lag_ms; //  how long it has not been caught up (0 = caught up)
} tern_metrics_lag_t;

typedef struct {
    _Atomic uint64_t published;                         //  messages stored (not duplicates)
    _Atomic uint64_t duplicates;                        //  publishes answered as duplicates
    _Atomic uint64_t publish_errors;                    //  publishes refused (full, clock...)
    _Atomic uint64_t commits;                           //  storer commits
    _Atomic uint64_t delivered;                         //  deliveries (redeliveries too)
    _Atomic uint64_t redelivered;                       //  deliveries with count > 1
    _Atomic uint64_t acked;                             //  acks (messages)
    _Atomic uint64_t nacked;                            //  nacks
    _Atomic uint64_t dead;                              //  messages moved to a DLQ
    _Atomic uint64_t expired;                           //  messages skipped or swept as expired
    _Atomic uint64_t send_dropped;                      //  frames dropped: peer gone or full
    _Atomic uint64_t decode_errors[TERN_METRICS_CODES]; //  by bucket
    _Atomic int64_t connections;                        //  live sessions (gauge)
    _Atomic int64_t ops_queued;      //  route's group-state ops the storer has not taken (gauge)
    _Atomic uint64_t sessions_total; //  sessions ever opened
    _Atomic uint64_t auth_refused;   //  CURVE handshakes refused by the ZAP handler
    _Atomic uint64_t auth_denied;    //  commands refused by a role (ERROR TERN_EDENIED)
    uint64_t started_ms;             //  start time, unix ms (set once)
    tern_series_t *series;           //  per topic / group counters (owned)
    tern_histo_t durable_latency;    //  publish -> durable commit
    tern_histo_t deliver_latency;    //  stored -> first delivery
    _Atomic int storage_full;        //  1 after an append hit TERN_EFULL
    _Atomic int serving;             //  1 while the actors run
    //  cluster inside the DC (docs/cluster.md); untouched on a single node
    _Atomic uint64_t cluster_stale_frames; //  in-DC frames refused as STALE (older epoch)
    tern_metrics_lag_t *follower_lag;      //  owned, partitions x TERN_METRICS_FOLLOWERS, or NULL
    uint32_t follower_lag_partitions;      //  rows of follower_lag (cluster/partitions)
} tern_metrics_t;

/*  Caller owns the result; zeroed, started_ms = now, a series table of the
    default size. */
tern_metrics_t *tern_metrics_new(void);

/*  Same with at most SERIES_MAX per-topic/group label sets (0 = default). */
tern_metrics_t *tern_metrics_new_with(size_t series_max);
void tern_metrics_destroy(tern_metrics_t **self_p);

/*  Allocates the follower-lag table for PARTITIONS partitions. The broker
    calls it once for a clustered node, before any actor starts (so readers
    never see the pointer change); without it the setters below do nothing. */
void tern_metrics_cluster_init(tern_metrics_t *self, uint32_t partitions);

/*  Hook for the in-DC replication actor (leader side; one writer thread):
    sets follower NODE's lag on PARTITION (claims a free slot the first
    time). Out of range or a full row: ignored. /metrics shows it as
    tern_partition_follower_lag_seconds{partition,node}. */
void tern_metrics_follower_lag(tern_metrics_t *self, uint32_t partition, uint32_t node,
                               uint64_t lag_ms);

/*  Forgets PARTITION's followers (this node no longer leads it). */
void tern_metrics_follower_lag_clear(tern_metrics_t *self, uint32_t partition);

/*  Adds N to counter C (relaxed). */
#define tern_metrics_add(c, n) atomic_fetch_add_explicit(&(c), (n), memory_order_relaxed)
#define tern_metrics_get(c)    atomic_load_explicit(&(c), memory_order_relaxed)

/*  Bucket index for a decode error code: EMALFORMED, EMAGIC, EVERSION,
    ECOMMAND, ETOOBIG, ETOPIC/ENAME, EMETA, other. */
int tern_metrics_code_bucket(int code);

/*  Name of bucket I, e.g. "malformed". */
const char *tern_metrics_code_name(int bucket);

#endif
