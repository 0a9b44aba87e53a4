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
#include "tern_peer.h"
#include "tern_proto.h"
#include "tern_work.h"
#include <stdbool.h>
#include <stdint.h>

#define S_DRAIN_MAX    1024   //  ROUTER messages per drain (one storer batch)
#define S_SEND_MAX     1024   //  outbox entries read per pump
#define S_WINDOW       20000  //  positions sent but not confirmed, per peer
#define S_HWM          100000 //  socket HWMs (above the window)
#define S_HEARTBEAT_MS 1000   //  heartbeat interval, both directions
#define S_PUMP_MS      5      //  how often a live link looks for new outbox entries
#define S_HOUSE_MS     1000   //  confirmations to disk, retention check

typedef struct {
    const tern_peer_config_t *cfg; //  name (its DC) and endpoints, borrowed from config
    //  Outbound (our DEALER -> its ROUTER)
    tern_peer_t *fsm;     //  link state machine, owned
    zsock_t *dealer;      //  owned while connecting or live
    uint32_t node_id;     //  the node of it we ship to, from its WELCOME
    bool node_known;      //  node_id is valid
    uint64_t next_pos;    //  next outbox position to send
    uint64_t confirmed;   //  last position the peer confirmed durable
    uint64_t stored_conf; //  last confirmation written to the store
    uint64_t last_hb_ms;  //  last heartbeat sent
    uint64_t sent;        //  records sent (all time)
    uint64_t lost;        //  outbox entries dropped by retention before it got them
    //  Inbound (its DEALER -> our ROUTER)
    uint8_t rid[TERN_RID_MAX]; //  routing id of its current session
    size_t rid_size;           //  0: no session
    uint32_t in_node_id;       //  the node of it that ships to us, from its HELLO
    bool in_node_known;        //  in_node_id is valid
    uint64_t in_seen_ms;       //  last frame from it on the ROUTER
    uint64_t applied;          //  inbound cursor: durable
    uint64_t queued;           //  inbound cursor: handed to the storer
    uint64_t sender_last;      //  its outbox position, from its heartbeats
    uint64_t received;         //  records applied from it (not replays)
    uint64_t replays;          //  records dropped as already applied
    uint64_t acks_received;    //  ack-state changes received
    uint64_t acks_sent;        //  ack-state changes sent
    bool paused;               //  operator isolated this peer (both directions)
    bool in_refused;           //  cluster: its session got ENOTLEADER; drop its stream until
                               //  its next HELLO
    bool clustered;            //  its WELCOME said it is a clustered DC (keeps no cursor for us)
    uint64_t not_leader;       //  frames refused with TERN_ENOTLEADER (cluster)

    //  Which cursor applied/queued are: outbox positions are per data dir
    char in_cursor[TERN_REPL_CURSOR_MAX + 1]; //  "DC/IDENTITY" of its sender, or "DC"
    bool legacy_taken; //  an identity took over the old cursor "DC" (upgrade)
} p_link_t;

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
    size_t link_count;                       //  used
    tern_repl_batch_t *batch;                //  the batch being filled (NULL until needed)
    uint64_t outbox_last;                    //  last local outbox position seen
    uint64_t next_house_ms;                  //  next housekeeping
    uint64_t dropped_seen;                   //  store outbox_dropped already reported
    uint64_t refused_version;                //  handshakes refused: protocol version
    uint64_t refused_node_id;                //  handshakes refused: duplicate node id
    uint64_t refused_unknown_dc;             //  handshakes refused: unknown DC
    uint64_t looped;                         //  records dropped: they originated here
    uint8_t buf[TERN_HEADER_MAX];            //  encode buffer
    tern_outbox_entry_t entries[S_SEND_MAX]; //  outbox entries of one pump
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
p_link_t *p_link_by_rid(p_repl_t *self, const uint8_t *rid, size_t size);
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
//  Streams outbox entries from link->next_pos while the window allows.
void p_pump(p_repl_t *self, p_link_t *link);
//  Frames from the peer on LINK's DEALER.
void p_handle_dealer(p_repl_t *self, p_link_t *link);

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
