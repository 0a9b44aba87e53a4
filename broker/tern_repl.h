/*  tern_repl.h - the repl actor: active-active replication between DCs.

    See the top of tern_repl.c for its pipe commands, sockets and items, and
    docs/replication.md for the guarantees. The repl actor owns every
    replication socket (the ROUTER peers connect to, one DEALER per peer);
    records it receives are applied through the storer (the single LMDB
    writer) as a tern_repl_batch_t (tern_work.h), together with the inbound
    cursors that cover them, in one transaction.
*/
#ifndef TERN_REPL_H_INCLUDED
#define TERN_REPL_H_INCLUDED

#include "tern_cluster.h"
#include "tern_config.h"
#include "tern_metrics.h"
#include "tern_store.h"
#include "tern_work.h"
#include <czmq.h>
#include <stdatomic.h>

/*  Replication figures for metrics, one entry per configured peer (same
    index as config->peers). Written by the repl actor once a second, read
    with relaxed atomics from any thread (e.g. the /metrics endpoint, as
    tern_repl_peer_*{peer="NAME"}). */
typedef struct {
    _Atomic uint32_t state;         //  tern_peer_state_t of the outbound link (0 idle .. 3 paused)
    _Atomic uint64_t lag_msgs;      //  our outbox positions it has not confirmed
    _Atomic uint64_t lag_ms;        //  age of the oldest of them
    _Atomic uint64_t last_seen_ms;  //  unix ms of its last frame (0: never)
    _Atomic uint64_t sent;          //  records shipped to it
    _Atomic uint64_t received;      //  records applied from it (not replays)
    _Atomic uint64_t acks_sent;     //  ack-state changes shipped to it
    _Atomic uint64_t acks_received; //  ack-state changes received from it
    _Atomic uint64_t lost;          //  outbox entries retention dropped before it got them
    _Atomic uint64_t failures;      //  failed rounds of its endpoints since it was last live
    _Atomic uint64_t failovers;     //  moves of the link from one endpoint to another
} tern_repl_peer_stats_t;

typedef struct {
    tern_repl_peer_stats_t peers[TERN_PEERS_MAX]; //  by config peer index
    _Atomic uint64_t refused_version;             //  handshakes refused: protocol version
    _Atomic uint64_t refused_node_id;             //  handshakes refused: duplicate node id
    _Atomic uint64_t refused_unknown_dc;          //  handshakes refused: unknown DC
    _Atomic uint64_t looped;                      //  records dropped: not from their origin
} tern_repl_stats_t;

typedef struct {
    tern_store_t *store;         //  borrowed; outlives the actor (read only)
    const tern_config_t *config; //  borrowed; outlives the actor
    tern_metrics_t *metrics;     //  borrowed; outlives the actor
    tern_repl_stats_t *stats;    //  borrowed, may be NULL; outlives the actor
    tern_cluster_t *cluster;     //  borrowed, NULL on a single node; outlives the actor
    char inbox[128];             //  endpoint repl binds (PULL: storer results)
    char storer_inbox[128];      //  the storer's inbox (repl connects PUSH)
    int bind_rc;                 //  out: 0 when the replication endpoint is bound
    char error[256];             //  out: why it could not start
} tern_repl_args_t;

/*  zactor_fn: ARGS is a tern_repl_args_t, borrowed for the actor's life. */
void tern_repl_actor(zsock_t *pipe, void *args);

/*  Writes into BUF the inproc endpoint where the repl actor of the node whose
    (borrowed) config is CONFIG takes tern_repl_admin_t items. conn and repl
    borrow the same config, so both derive the same name. */
void tern_repl_admin_endpoint(const tern_config_t *config, char *buf, size_t cap);

/*  True if CONFIG asks for replication (a repl endpoint other than "off"). */
bool tern_repl_enabled(const tern_config_t *config);

#endif
