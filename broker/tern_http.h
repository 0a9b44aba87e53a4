/*  tern_http.h - ternd's HTTP endpoint: Prometheus /metrics and /healthz.

    libmicrohttpd serves it from its own thread (MHD_USE_INTERNAL_POLLING_THREAD).
    That thread never touches an actor's state: it reads the atomics of
    tern_metrics_t (and its series table and histograms), the store's atomic
    stats, and /proc for the process gauges. So it needs no lock and cannot
    stall the data path; a slow scraper only costs its own thread.

    /metrics   200, text/plain; version=0.0.4 (Prometheus text exposition);
               on a clustered node also the tern_cluster_* and
               tern_partition_* figures, copied out of the cluster view
               (tern_cluster.h: any thread, it copies under its own lock)
    /healthz   200 "ok" when the node serves and its storage is writable,
               503 "unavailable: REASON" otherwise (not serving, storage full,
               data directory not writable, disk full)
    other      404
*/
#ifndef TERN_HTTP_H_INCLUDED
#define TERN_HTTP_H_INCLUDED

#include "tern_cluster.h"
#include "tern_config.h"
#include "tern_metrics.h"
#include "tern_repl.h"
#include "tern_store.h"
#include <stddef.h>

typedef struct tern_http_t tern_http_t;

/*  Splits "HOST:PORT" (HOST an IPv4 address, a name that resolves to one,
    or "*" for every interface; PORT 0 = any free port). Returns false on
    bad input. */
bool tern_http_parse_address(const char *address, char *host, size_t host_cap, int *port);

/*  Starts serving on CONFIG->metrics. METRICS, STORE, CONFIG, REPL (the
    replication actor's per-peer figures; NULL when replication is off) and
    CLUSTER (the cluster view; NULL on a single node) are borrowed and must
    outlive the result. Returns NULL with one line in ERRBUF when the
    address is malformed or cannot be bound. Caller owns the result. */
tern_http_t *tern_http_new(const tern_config_t *config, tern_metrics_t *metrics,
                           tern_store_t *store, tern_repl_stats_t *repl, tern_cluster_t *cluster,
                           char *errbuf, size_t errlen);

/*  Stops the server thread. Safe on NULL; nulls *SELF_P. */
void tern_http_destroy(tern_http_t **self_p);

/*  The TCP port actually bound. */
int tern_http_port(tern_http_t *self);

/*  Renders the /metrics document into a new string (caller frees) and the
    /healthz verdict: returns true when healthy, else false with REASON. */
char *tern_http_render_metrics(const tern_config_t *config, tern_metrics_t *metrics,
                               tern_store_t *store, tern_repl_stats_t *repl,
                               tern_cluster_t *cluster);

/*  This node's part in one partition, as tern_partition_role shows it. */
typedef enum {
    TERN_HTTP_ROLE_NONE = 0,     //  not a replica of it
    TERN_HTTP_ROLE_FOLLOWER = 1, //  a replica, not the leader
    TERN_HTTP_ROLE_LEADER = 2    //  its leader
} tern_http_role_t;

/*  SELF's role in the partition of record REC. */
tern_http_role_t tern_http_partition_role(const tern_partmap_record_t *rec, uint32_t self);

/*  One partition as /metrics shows it. */
typedef struct {
    tern_http_role_t role; //  this node's part
    uint64_t epoch;        //  the record's epoch
    uint32_t isr_size;     //  members of its ISR
    uint64_t position;     //  the leader's log position (0 where not leader)
    bool has_leader;       //  the record names a leader
} tern_http_partition_t;

/*  A copy of what /metrics shows of the cluster view, taken once per scrape. */
typedef struct {
    tern_cluster_stats_t stats;   //  lease renewals and failures, failovers, ISR changes
    bool controller;              //  this node is the controller
    bool lease_ok;                //  tern_cluster_lease_ok
    uint32_t min_insync;          //  cluster/min_insync, for the ISR alert
    uint32_t partitions;          //  entries in parts
    tern_http_partition_t *parts; //  borrowed, one per partition
} tern_http_cluster_t;

/*  Renders the cluster figures of VIEW, and METRICS' cluster counters and
    follower lags, into a new string (caller frees). */
char *tern_http_render_cluster(const tern_http_cluster_t *view, tern_metrics_t *metrics);
bool tern_http_health(const tern_config_t *config, tern_metrics_t *metrics, char *reason,
                      size_t reason_cap);

#endif
