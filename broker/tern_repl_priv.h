/*  tern_repl_priv.h - the repl actor's private state, shared by its files.

    Only broker/tern_repl*.c include this. tern_repl.c runs the actor (its
    sockets, the inbox, batches for the storer, sending, timers, the loop);
    tern_repl_link.c the outbound direction (our DEALER per peer: handshake,
    the link state machine of cluster/tern_peer.c, streaming the outbox);
    tern_repl_apply.c the inbound direction (the ROUTER: handshake checks,
    records into storer batches, confirmations after the commit);
    tern_repl_admin.c `ternctl peers` and the figures for metrics. Functions
    shared between them are prefixed p_; each file's own helpers stay
    static (s_).
*/
#ifndef TERN_REPL_PRIV_H_INCLUDED
#define TERN_REPL_PRIV_H_INCLUDED

#include "tern_repl.h"
#include "tern_actor.h"
#include "tern_peer.h"
#include "tern_proto.h"
#include "tern_work.h"
#include <stdbool.h>
#include <stdint.h>

#define S_DRAIN_MAX             1024   //  ROUTER messages per drain (one storer batch)
#define S_SEND_MAX              1024   //  outbox entries read per pump
#define S_WINDOW                20000  //  positions sent but not confirmed, per peer
#define S_HWM                   100000 //  socket HWMs (above the window)
#define S_PUMP_MS               5      //  how often a live link looks for new outbox entries
#define S_HOUSE_MS              1000   //  confirmations to disk, retention check
#define S_CONFIRM_MS            100 //  a cluster's confirmations to disk (a successor resends from them)
#define S_MAP_NODES             64 //  nodes of a clustered DC in a `repl.map` answer
#define S_MAP_PARTITIONS        4096 //  most partitions a peer DC may have (cluster/partitions' limit)
#define S_SUBS_MAX              S_MAP_NODES //  nodes of a clustered peer DC we ship to at once
#define S_MAP_MS                5000 //  how often a link to a clustered DC asks for its map again
#define TERN_REPL_HELLO_CLUSTER 1u   //  REPL_HELLO code bit: the sender's DC is a cluster
#define TERN_REPL_MAP_OP        "repl.map" //  ADMIN on a repl endpoint: that DC's map (tern_repl_admin.c)
#define S_SESSIONS_MAX                                                                             \
    64 //  inbound sessions at once (a clustered peer DC ships from
       //  every partition leader, over one or two DEALERs each)

/*  One outbox stream we ship to a peer: a single node's outbox (pt 0,
    always on), or on a clustered node the outbox of partition PT, shipped
    only while this node leads PT (docs/replication.md, "Clustered DCs"):
    from what the peer confirmed of it (replicated partition state) up to
    what the ISR holds (OBSAFE). */
typedef struct {
    uint32_t pt;          //  the partition (0 on a single node)
    bool on;              //  shipping it now
    uint64_t next_pos;    //  next outbox position to send
    uint64_t confirmed;   //  highest position with everything up to it confirmed
    uint64_t stored_conf; //  last confirmation written to the store
} p_stream_t;

/*  One node of a clustered peer DC that leads partitions we ship to: our
    DEALER to its repl endpoint, with its own handshake and confirmations
    (tern_repl_route.c). */
typedef struct {
    uint32_t node;       //  the peer node's id
    char endpoint[256];  //  its repl endpoint (from its DC's map)
    zsock_t *dealer;     //  owned
    bool live;           //  its WELCOME came
    uint64_t *confirmed; //  per stream: highest position it confirmed on this DEALER (owned)
    uint64_t *sent_max;  //  per stream: highest position sent to it since the last rewind
                         //  (0: none; owned)
    uint64_t seen_ms;    //  last frame from it (or when its HELLO went)
    uint64_t hb_ms;      //  last heartbeat sent to it
    uint64_t sent;       //  records and ack-state changes sent to it (all time)
} p_sub_t;

/*  What we know of a clustered peer DC (tern_repl_route.c): its partition
    map, learnt with `repl.map` over the link's own DEALER, and one p_sub_t
    per node of it we send to. */
typedef struct {
    uint32_t partitions;             //  its partition count (0: map not learnt yet)
    uint32_t *leader;                //  leader node of each partition (owned)
    uint32_t node_ids[S_MAP_NODES];  //  its nodes with a repl endpoint
    char node_eps[S_MAP_NODES][256]; //  their repl endpoints
    size_t nnodes;                   //  used
    p_sub_t subs[S_SUBS_MAX];        //  nodes we ship to
    size_t nsubs;                    //  used
    uint64_t asked_ms;               //  last `repl.map` request
    uint64_t maps;                   //  maps received (all time)
} p_route_t;

typedef struct {
    const tern_peer_config_t *cfg; //  name (its DC) and endpoints, borrowed from config
    //  Outbound (our DEALER -> its ROUTER)
    tern_peer_t *fsm;    //  link state machine, owned
    zsock_t *dealer;     //  owned while connecting or live
    uint32_t node_id;    //  the node of it we ship to, from its WELCOME
    bool node_known;     //  node_id is valid
    p_stream_t *streams; //  what we ship to it: 1 on a single node, one per partition in a
                         //  cluster (owned)
    uint32_t nstreams;   //  entries
    uint64_t last_hb_ms; //  last heartbeat sent
    bool restart;        //  a partition's leadership started: resend every stream over fresh
                         //  sessions before the next pump (tern_repl_link.c s_restart)
    uint64_t sent;       //  records sent (all time)
    uint64_t lost;       //  outbox entries dropped by retention before it got them
    //  Inbound (its DEALERs -> our ROUTER: p_session_t; these are the latest's)
    uint32_t in_node_id;    //  the node of it that ships to us, from its HELLO
    bool in_node_known;     //  in_node_id is valid
    uint64_t in_seen_ms;    //  last frame from it on the ROUTER
    uint64_t applied;       //  inbound cursor of its latest session: durable
    uint64_t queued;        //  the same: handed to the storer
    uint64_t sender_last;   //  its outbox position, from its latest session's heartbeats
    uint64_t received;      //  records applied from it (not replays)
    uint64_t replays;       //  records dropped as already applied
    uint64_t acks_received; //  ack-state changes received
    uint64_t acks_sent;     //  ack-state changes sent
    bool paused;            //  operator isolated this peer (both directions)
    bool clustered;         //  its WELCOME said it is a clustered DC (keeps no cursor for us)
    p_route_t *route;       //  owned while live to a clustered DC, else NULL

    //  Which cursor applied/queued are: outbox positions are per data dir
    char in_cursor[TERN_REPL_CURSOR_MAX + 1]; //  "DC/IDENTITY" of its sender, or "DC"
    bool legacy_taken; //  an identity took over the old cursor "DC" (upgrade)
} p_link_t;

/*  One inbound session: a peer DC's DEALER on our ROUTER, after its
    REPL_HELLO. A single-node peer DC has one at a time (a new HELLO of the
    same sender replaces it); a clustered one has one per node that ships
    to us (docs/replication.md, "Clustered DCs"). Its cursor is the inbound
    cursor of its sender's data dir ("DC/IDENTITY"). */
typedef struct {
    p_link_t *link;                        //  its peer DC (NULL: slot free)
    uint8_t rid[TERN_RID_MAX];             //  routing id
    size_t rid_size;                       //  its length
    uint32_t node_id;                      //  the sending node, from its HELLO
    char cursor[TERN_REPL_CURSOR_MAX + 1]; //  its inbound cursor's name
    uint64_t applied;                      //  that cursor: durable
    uint64_t queued;                       //  that cursor: handed to the storer
    uint64_t seen_ms;                      //  last frame from it
    bool refused;                          //  cluster: got ENOTLEADER; its stream is dropped
                                           //  until its next HELLO
    uint64_t gen;                          //  this session's number (its records carry it as
                                           //  rec->stream)
    bool cursorless;                       //  we or its DC are clustered: no cursor, replays
                                           //  dropped by msg_id, confirmed per partition stream
    uint64_t *applied_pt;                  //  cursorless: highest position committed per
                                           //  sender partition (owned)
    uint32_t npt;                          //  entries
} p_session_t;

//  A (session, sender partition) that had records in an applied batch
//  (tern_repl_apply.c, s_sessions_done).
typedef struct {
    p_session_t *session; //  the session
    uint32_t pt;          //  the sender's partition stream
} p_touched_t;

typedef struct {
    tern_repl_args_t *args;                  //  borrowed
    const tern_config_t *config;             //  borrowed
    zsock_t *router_sock;                    //  replication ROUTER, owned
    void *router;                            //  its raw handle
    zsock_t *inbox_sock;                     //  PULL, owned
    zsock_t *storer_sock;                    //  PUSH, owned
    zsock_t *conn_sock;                      //  PUSH to conn's inbox (admin answers), owned
    tern_store_reader_t *reader;             //  our read handle on the store
    p_link_t links[TERN_PEERS_MAX];          //  one per configured peer
    p_session_t sessions[S_SESSIONS_MAX];    //  inbound sessions
    uint64_t session_gen;                    //  last p_session_t.gen given
    size_t link_count;                       //  used
    tern_repl_batch_t *batch;                //  the batch being filled (NULL until needed)
    uint64_t outbox_last;                    //  last local outbox position seen (single node)
    uint64_t *safe;                          //  cluster: per partition, the outbox position up
                                             //  to which the ISR holds it (OBSAFE; owned)
    uint64_t *safe_epoch;                    //  the leader epoch of each (owned)
    uint32_t partitions;                     //  cluster: P (0 on a single node)
    uint64_t view;                           //  cluster: tern_cluster_version last checked
    uint64_t next_house_ms;                  //  next housekeeping
    uint64_t next_confirm_ms;                //  next confirmations to disk (cluster)
    uint64_t dropped_seen;                   //  store outbox_dropped already reported
    uint64_t refused_version;                //  handshakes refused: protocol version
    uint64_t refused_node_id;                //  handshakes refused: duplicate node id
    uint64_t refused_unknown_dc;             //  handshakes refused: unknown DC
    uint64_t looped;                         //  records dropped: they originated here
    uint8_t buf[TERN_HEADER_MAX];            //  encode buffer
    tern_outbox_entry_t entries[S_SEND_MAX]; //  outbox entries of one pump
    p_touched_t *touched;                    //  s_sessions_done's list, kept across batches
    size_t touched_cap;                      //  its entries allocated
} p_repl_t;

//  Outbox entries gathered by p_collect_entry (a tern_store_outbox_read callback).
typedef struct {
    tern_outbox_entry_t *entries; //  collected entries
    size_t count;                 //  used
    size_t max;                   //  capacity
} p_collect_t;

bool p_collect_entry(const tern_outbox_entry_t *entry, void *arg);

//  tern_repl.c: batches for the storer and sending.
tern_repl_batch_t *p_batch(p_repl_t *self);
void p_batch_pos(tern_repl_pos_t *list, size_t *count, const char *name, uint64_t pos);
void p_flush_batch(p_repl_t *self);
p_link_t *p_link_by_name(p_repl_t *self, const char *name);
p_session_t *p_session_by_rid(p_repl_t *self, const uint8_t *rid, size_t size);
//  Ends every inbound session of LINK (NULL: SESSION only), sending each
//  ERROR CODE (TERN_OK: nothing) with REASON first.
void p_sessions_end(p_repl_t *self, p_link_t *link, p_session_t *session, tern_err_t code,
                    const char *reason);
//  True if LINK's peer has an inbound session now.
bool p_link_inbound(const p_repl_t *self, const p_link_t *link);
//  Sends FRAME (and its payload when the command has one) on a DEALER (RID
//  NULL) or to RID on the ROUTER. Returns 0, or -1 (errno EAGAIN when full).
int p_send(p_repl_t *self, void *sock, const uint8_t *rid, size_t rid_size,
           const tern_frame_t *frame);
void p_send_error(p_repl_t *self, const uint8_t *rid, size_t rid_size, uint64_t req_id,
                  tern_err_t code, const char *reason);
void p_send_pos(p_repl_t *self, void *sock, const uint8_t *rid, size_t rid_size, tern_cmd_t cmd,
                uint64_t pos);

//  tern_repl_link.c: the outbound direction.
//  The endpoint LINK's current (or, when idle, next) attempt goes to.
const char *p_link_endpoint(const p_link_t *link);
void p_close_dealer(p_link_t *link);
void p_link_event(p_repl_t *self, p_link_t *link, tern_peer_event_t event);
//  Streams each stream of LINK that is on, while the window allows.
void p_pump(p_repl_t *self, p_link_t *link);
//  The highest position of ST we may ship: the outbox end on a single
//  node, what the ISR holds in a cluster.
uint64_t p_stream_end(const p_repl_t *self, const p_stream_t *st);
//  Frames from the peer on LINK's DEALER.
void p_handle_dealer(p_repl_t *self, p_link_t *link);
//  Opens a DEALER to LINK's peer at ENDPOINT and sends our REPL_HELLO on it.
//  Caller owns the result; NULL if it cannot (logged).
zsock_t *p_dealer_open(p_repl_t *self, p_link_t *link, const char *endpoint);
//  Handles FRAME that came on a DEALER of LINK (ARG: the caller's). False
//  when that DEALER is gone (reading stops).
typedef bool p_frame_fn(p_repl_t *self, p_link_t *link, void *arg, const tern_frame_t *frame);
//  Reads up to S_DRAIN_MAX frames from *DEALER (a DEALER of LINK) to FN while
//  there is one and *DEALER stays open; a frame that does not decode is
//  logged and skipped.
void p_drain_dealer(p_repl_t *self, p_link_t *link, zsock_t *const *dealer, p_frame_fn *fn,
                    void *arg);

//  tern_repl_route.c: shipping to a clustered peer DC, each entry to the
//  node that leads its topic's partition there.
void p_route_start(p_repl_t *self, p_link_t *link);
//  Closes its DEALERs and forgets the map. Safe when there is none.
void p_route_free(p_link_t *link);
//  A `repl.map` REPLY on LINK's DEALER.
void p_route_map(p_repl_t *self, p_link_t *link, const tern_frame_t *frame);
//  The live node that leads TOPIC's partition, or NULL (not known, or its
//  DEALER not live yet: one is opened).
p_sub_t *p_route_sub(p_repl_t *self, p_link_t *link, const char *topic);
//  Closes every connection to the clustered peer DC and resends from the
//  confirmed positions (asking its map again); WHY is logged.
void p_route_rewind(p_repl_t *self, p_link_t *link, const char *why);
//  Heartbeats, silence and the map refresh; every turn of a live link.
void p_route_timers(p_repl_t *self, p_link_t *link, uint64_t now);
//  Adds the route's DEALERs to LOOP for this turn.
void p_route_readers(p_repl_t *self, p_link_t *link, tern_loop_t *loop);

//  tern_repl_apply.c: the inbound direction.
//  Drains the ROUTER (a tern_loop_t reader): records go into one storer batch.
void p_handle_router(void *actor, void *unused);
//  The storer committed BATCH (takes ownership): confirm to the origins.
void p_batch_done(p_repl_t *self, tern_repl_batch_t *batch);

//  tern_repl_admin.c: operations and figures.
//  ADMIN from ternctl on the replication endpoint itself.
void p_admin(p_repl_t *self, const uint8_t *rid, size_t rid_size, const tern_frame_t *frame);
//  ADMIN a client sent to the client endpoint, forwarded by conn (takes
//  ownership of ITEM): answer it and give it back to conn.
void p_admin_item(p_repl_t *self, tern_repl_admin_t *item);
//  Publishes the figures of `ternctl peers` for metrics (once a second).
void p_publish_stats(p_repl_t *self);

#endif
