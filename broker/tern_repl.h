/*  tern_repl.h - the repl actor: active-active replication between DCs.

    See the top of tern_repl.c for its pipe commands, sockets and items, and
    docs/replication.md for the guarantees. The repl actor owns every
    replication socket (the ROUTER peers connect to, one DEALER per peer);
    records it receives are applied through the storer (the single LMDB
    writer) as a tern_repl_batch_t, together with the inbound cursors that
    cover them, in one transaction.
*/
#ifndef TERN_REPL_H_INCLUDED
#define TERN_REPL_H_INCLUDED

#include "tern_config.h"
#include "tern_metrics.h"
#include "tern_store.h"
#include "tern_work.h"
#include <czmq.h>
#include <stdatomic.h>

//  Work item types on the storer's inbox and the repl inbox (tern_work.h
//  numbers its own types from 1; these stay clear of them).
#define TERN_WORK_REPL       ((tern_work_type_t)20) //  repl -> storer: tern_repl_batch_t *
#define TERN_WORK_REPL_DONE  ((tern_work_type_t)21) //  storer -> repl: the same, committed
#define TERN_WORK_REPL_ADMIN ((tern_work_type_t)22) //  conn -> repl -> conn: tern_repl_admin_t *

/*  An admin request a client sent to the client endpoint (`peers`,
    `peers.pause`, `peers.resume`): conn creates it and sends it to the repl
    actor's admin endpoint (tern_repl_admin_endpoint); repl answers it (ERR,
    REPLY) and sends it back to REPLY_TO as TERN_WORK_REPL_ADMIN; conn relays
    the answer to the session and frees it (REPLY too). Whoever cannot pass it
    on frees it. */
typedef struct {
    uint8_t rid[TERN_RID_MAX];    //  the client's routing id
    size_t rid_size;              //  its length
    uint64_t req_id;              //  the ADMIN's request id
    char op[TERN_NAME_MAX + 1];   //  "peers", "peers.pause" or "peers.resume"
    char name[TERN_NAME_MAX + 1]; //  peer DC name (pause / resume)
    char reply_to[128];           //  conn's inbox (repl connects PUSH once)
    tern_err_t err;               //  out: TERN_OK or the ERROR code
    char reason[128];             //  out: ERROR reason
    char *reply;                  //  out: JSON document (malloc'd), NULL on error
} tern_repl_admin_t;

/*  One received REPL_RECORD. FRAME borrows HDR and BODY (like tern_pub_t),
    so the payload is copied once, into the LMDB page. */
typedef struct {
    tern_frame_t frame;          //  decoded REPL_RECORD (msg_id, origin... as sent)
    zmq_msg_t hdr;               //  header frame; owns what frame.meta points into
    zmq_msg_t body;              //  payload frame; owns frame.payload
    tern_append_result_t result; //  filled by the commit (duplicate = already here)
} tern_repl_rec_t;

/*  A named position: an inbound cursor (origin DC -> last applied outbox
    position) or a peer's confirmation of our outbox. */
typedef struct {
    char name[TERN_NAME_MAX + 1]; //  peer / origin DC name
    uint64_t position;            //  outbox position
} tern_repl_pos_t;

/*  What the repl actor asks the storer to write in ONE commit: the records of
    one ROUTER drain, the inbound cursors that cover them, and outbox
    confirmations. Created by repl; the storer queues it
    (tern_repl_batch_queue), commits, sets ERR and sends it back as
    TERN_WORK_REPL_DONE; repl frees it. If repl is gone the storer frees it. */
typedef struct tern_repl_batch_t {
    tern_repl_rec_t **recs;                   //  owned records
    size_t count;                             //  used
    size_t cap;                               //  allocated
    tern_repl_pos_t inbound[TERN_PEERS_MAX];  //  cursors to store with the records
    size_t inbound_count;                     //  used
    tern_repl_pos_t confirms[TERN_PEERS_MAX]; //  outbox confirmations to store
    size_t confirm_count;                     //  used
    tern_err_t err;                           //  commit result (TERN_OK: all durable)
    struct tern_repl_batch_t *next;           //  storer's list link
} tern_repl_batch_t;

/*  Queues the batch's appends (local = false: never shipped again), inbound
    cursors and confirmations on the store batch BATCH. SELF stays owned by the
    caller and borrowed by BATCH until its commit. */
void tern_repl_batch_queue(tern_repl_batch_t *self, tern_store_batch_t *batch);

/*  Frees the batch and its records. Safe on NULL; nulls *SELF_P. */
void tern_repl_batch_destroy(tern_repl_batch_t **self_p);

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
    _Atomic uint64_t failures;      //  failed connection attempts since it was last live
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
