/*  tern_repl.c - the repl actor: ships this node's outbox to every peer DC and
    applies the peers' records through the storer.

    Links. For every configured peer (name = the peer's DC) there are two
    directions, each on its own connection:
    - outbound: our DEALER to the peer's ROUTER. We send REPL_HELLO, the peer
      answers REPL_WELCOME with `pos` = the last position of OUR outbox it
      durably applied; we stream the outbox from pos + 1 as REPL_RECORDs (only
      locally originated records are in the outbox: loop prevention), send
      REPL_HEARTBEAT every second, and the peer answers with REPL_CONFIRM
      (after each commit and to each heartbeat). Its state machine (connect,
      backoff 1 s/5 s/30 s, dead after 3 s of silence, pause) is
      cluster/tern_peer.c.
    - inbound: the peer's DEALER to our ROUTER. We check its REPL_HELLO
      (version, known DC, node id unique), answer REPL_WELCOME with our
      inbound cursor for it, then hand every drain's records to the storer
      as one tern_repl_batch_t carrying the new inbound cursor: records and
      cursor commit in one LMDB transaction, and apply is idempotent by
      msg_id, so a crash never applies twice or skips. Records at or below
      the cursor are dropped before they reach the storer.

    Pipe commands (zactor pipe, from tern_broker):
        $TERM             -> closes every socket and exits (no reply)
    Inbox (PULL at args->inbox; repl owns what it receives):
        REPL_DONE tern_repl_batch_t *  from the storer after the commit:
                                       confirm to the origin, then free
    Sends:
        REPL tern_repl_batch_t *       -> storer inbox
    ROUTER (args->config->repl_listen), frames [rid][header][payload?]:
        REPL_HELLO, REPL_RECORD, REPL_HEARTBEAT from peers (REPL_WELCOME,
        REPL_CONFIRM, ERROR back); also HELLO and ADMIN from ternctl
        (WELCOME, REPLY): `peers`, `peers.pause` / `peers.resume` (m: name).
        The same operations reach the client endpoint: conn sends them as
        REPL_ADMIN items to the inbox, bound also at
        tern_repl_admin_endpoint(config); repl answers and pushes the item
        back to its reply_to (conn's inbox).
    DEALER per peer, frames [header][payload?]: the outbound direction above.
*/
#include "tern_repl.h"
#include "tern_actor.h"
#include "tern_admin.h"
#include "tern_auth.h"
#include "tern_json.h"
#include "tern_peer.h"
#include <inttypes.h>
#include <string.h>

#define S_DRAIN_MAX    1024   //  ROUTER messages per drain (one storer batch)
#define S_SEND_MAX     1024   //  outbox entries read per pump
#define S_WINDOW       20000  //  positions sent but not confirmed, per peer
#define S_HWM          100000 //  socket HWMs (above the window)
#define S_HEARTBEAT_MS 1000   //  heartbeat interval, both directions
#define S_PUMP_MS      5      //  how often a live link looks for new outbox entries
#define S_HOUSE_MS     1000   //  confirmations to disk, retention check

typedef struct {
    const tern_peer_config_t *cfg; //  name (its DC) and endpoint, borrowed from config
    //  Outbound (our DEALER -> its ROUTER)
    tern_peer_t *fsm;     //  link state machine, owned
    zsock_t *dealer;      //  owned while connecting or live
    uint32_t node_id;     //  its node id, from WELCOME (or HELLO)
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
    uint64_t in_seen_ms;       //  last frame from it on the ROUTER
    uint64_t applied;          //  inbound cursor: durable
    uint64_t queued;           //  inbound cursor: handed to the storer
    uint64_t sender_last;      //  its outbox position, from its heartbeats
    uint64_t received;         //  records applied from it (not replays)
    uint64_t replays;          //  records dropped as already applied
    uint64_t acks_received;    //  ack-state changes received
    uint64_t acks_sent;        //  ack-state changes sent
    bool paused;               //  operator isolated this peer (both directions)
} s_link_t;

typedef struct {
    tern_repl_args_t *args;                  //  borrowed
    const tern_config_t *config;             //  borrowed
    zsock_t *router_sock;                    //  replication ROUTER, owned
    void *router;                            //  its raw handle
    zsock_t *inbox_sock;                     //  PULL, owned
    zsock_t *storer_sock;                    //  PUSH, owned
    zsock_t *conn_sock;                      //  PUSH to conn's inbox (admin answers), owned
    tern_store_reader_t *reader;             //  our read handle on the store
    s_link_t links[TERN_PEERS_MAX];          //  one per configured peer
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
} s_repl_t;

bool tern_repl_enabled(const tern_config_t *config) {
    return config->repl_listen[0] && !streq(config->repl_listen, "off");
}

// ---------------------------------------------------------------------------
//  Batches (tern_repl_batch_t, tern_work.h)

static tern_repl_batch_t *s_batch(s_repl_t *self) {
    if (!self->batch) {
        self->batch = tern_alloc(sizeof(tern_repl_batch_t));
    }
    return self->batch;
}

static void s_batch_pos(tern_repl_pos_t *list, size_t *count, const char *name, uint64_t pos) {
    for (size_t i = 0; i < *count; i++) {
        if (streq(list[i].name, name)) {
            if (pos > list[i].position) {
                list[i].position = pos;
            }
            return;
        }
    }
    if (*count < TERN_PEERS_MAX) {
        snprintf(list[*count].name, sizeof list[*count].name, "%s", name);
        list[*count].position = pos;
        (*count)++;
    }
}

static void s_flush_batch(s_repl_t *self) {
    if (!self->batch) {
        return;
    }
    if (tern_work_send(zsock_resolve(self->storer_sock), TERN_WORK_REPL, self->batch) != 0) {
        zsys_error("repl: cannot reach the storer; %zu records dropped", self->batch->count);
        //  The cursors did not move: the peers resend after a reconnect.
        for (size_t i = 0; i < self->link_count; i++) {
            self->links[i].queued = self->links[i].applied;
        }
        tern_repl_batch_destroy(&self->batch);
    }
    self->batch = NULL;
}

// ---------------------------------------------------------------------------
//  Sending

static s_link_t *s_link_by_name(s_repl_t *self, const char *name) {
    for (size_t i = 0; i < self->link_count; i++) {
        if (streq(self->links[i].cfg->name, name)) {
            return &self->links[i];
        }
    }
    return NULL;
}

static s_link_t *s_link_by_rid(s_repl_t *self, const uint8_t *rid, size_t size) {
    for (size_t i = 0; i < self->link_count; i++) {
        s_link_t *link = &self->links[i];
        if (link->rid_size == size && memcmp(link->rid, rid, size) == 0) {
            return link;
        }
    }
    return NULL;
}

//  Sends FRAME (and its payload when the command has one) on a DEALER (RID
//  NULL) or to RID on the ROUTER. Returns 0, or -1 (errno EAGAIN when full).
static int s_send(s_repl_t *self, void *sock, const uint8_t *rid, size_t rid_size,
                  const tern_frame_t *frame) {
    size_t len = 0;
    tern_err_t rc = tern_frame_encode(frame, self->buf, sizeof self->buf, &len);
    if (rc != TERN_OK) {
        zsys_error("repl: cannot encode %s: %s", tern_cmd_name(frame->cmd), tern_strerror(rc));
        errno = EINVAL;
        return -1;
    }
    bool payload = tern_cmd_has_payload(frame->cmd);
    if (rid && zmq_send(sock, rid, rid_size, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        return -1;
    }
    if (zmq_send(sock, self->buf, len, (payload ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT) < 0) {
        return -1;
    }
    if (payload && zmq_send(sock, frame->payload ? frame->payload : (const uint8_t *)"",
                            frame->payload_size, ZMQ_DONTWAIT) < 0) {
        return -1;
    }
    return 0;
}

static void s_send_error(s_repl_t *self, const uint8_t *rid, size_t rid_size, uint64_t req_id,
                         tern_err_t code, const char *reason) {
    tern_frame_t frame;
    tern_frame_init(&frame, TERN_CMD_ERROR);
    frame.req_id = req_id;
    frame.code = (uint32_t)code;
    snprintf(frame.reason, sizeof frame.reason, "%s", reason);
    frame.fields |= TERN_F_REASON;
    s_send(self, self->router, rid, rid_size, &frame);
}

static void s_send_pos(s_repl_t *self, void *sock, const uint8_t *rid, size_t rid_size,
                       tern_cmd_t cmd, uint64_t pos) {
    tern_frame_t frame;
    tern_frame_init(&frame, cmd);
    frame.position = pos;
    if (s_send(self, sock, rid, rid_size, &frame) != 0 && rid && errno == EHOSTUNREACH) {
        s_link_t *link = s_link_by_rid(self, rid, rid_size);
        if (link) {
            link->rid_size = 0; //  its connection is gone; it will HELLO again
        }
    }
}

// ---------------------------------------------------------------------------
//  Outbound: link actions and outbox streaming

static void s_close_dealer(s_link_t *link) {
    zsock_destroy(&link->dealer);
}

static void s_open_dealer(s_repl_t *self, s_link_t *link) {
    s_close_dealer(link);
    link->dealer = zsock_new(ZMQ_DEALER);
    if (!link->dealer) {
        return;
    }
    zsock_set_sndhwm(link->dealer, S_HWM);
    zsock_set_rcvhwm(link->dealer, S_HWM);
    zsock_set_linger(link->dealer, 0);
    zsock_set_reconnect_ivl(link->dealer, 200);
    if (self->config->auth_mode == TERN_AUTH_CURVE) {
        //  Our certificate; the peer's public key from the allow-list.
        char key_path[1200], why[256];
        snprintf(key_path, sizeof key_path, "%s/%s.key", self->config->auth_clients,
                 link->cfg->name);
        if (tern_auth_curve_client(zsock_resolve(link->dealer), self->config->auth_server_key,
                                   key_path, why, sizeof why) != TERN_OK) {
            zsys_error("repl: link to %s: %s", link->cfg->name, why);
            s_close_dealer(link);
            return;
        }
    }
    if (zsock_connect(link->dealer, "%s", link->cfg->endpoint) != 0) {
        zsys_error("repl: cannot connect to peer %s at %s", link->cfg->name, link->cfg->endpoint);
        s_close_dealer(link);
        return;
    }
    tern_frame_t frame;
    tern_frame_init(&frame, TERN_CMD_REPL_HELLO);
    frame.proto_version = TERN_PROTO_VERSION;
    frame.node_id = self->config->node_id;
    snprintf(frame.dc, sizeof frame.dc, "%s", self->config->dc);
    frame.position = link->queued; //  what we applied from it (informational)
    //  Not ZMQ_IMMEDIATE: the HELLO waits in our socket until TCP is up.
    s_send(self, zsock_resolve(link->dealer), NULL, 0, &frame);
    link->last_hb_ms = tern_now_ms();
}

static void s_do_actions(s_repl_t *self, s_link_t *link, unsigned actions) {
    if (actions & TERN_PEER_A_CLOSE) {
        s_close_dealer(link);
    }
    if (actions & TERN_PEER_A_CONNECT) {
        s_open_dealer(self, link);
    }
}

static void s_link_event(s_repl_t *self, s_link_t *link, tern_peer_event_t event) {
    tern_peer_state_t before = tern_peer_state(link->fsm);
    unsigned actions = tern_peer_event(link->fsm, event, tern_now_ms());
    s_do_actions(self, link, actions);
    tern_peer_state_t after = tern_peer_state(link->fsm);
    if (before == TERN_PEER_LIVE && after != TERN_PEER_LIVE) {
        zsys_warning("repl: link to %s lost (%s); retry in %" PRIu64 " ms", link->cfg->name,
                     event == TERN_PEER_TICK ? "silent" : "refused",
                     after == TERN_PEER_IDLE ? tern_peer_deadline(link->fsm) - tern_now_ms() : 0);
    }
}

typedef struct {
    tern_outbox_entry_t *entries; //  collected entries
    size_t count;                 //  used
    size_t max;                   //  capacity
} s_collect_t;

static bool s_collect_entry(const tern_outbox_entry_t *entry, void *arg) {
    s_collect_t *c = arg;
    c->entries[c->count++] = *entry;
    return c->count < c->max;
}

//  Sends an ack-state outbox entry as REPL_ACKSTATE (by msg_id: seqs differ
//  between DCs). Returns 0, 1 when there is nothing to send (the message or
//  topic is gone), -1 on a send error. Inside a read transaction.
static int s_send_ackstate(s_repl_t *self, void *sock, const tern_outbox_entry_t *e) {
    tern_topic_info_t topic;
    if (tern_store_topic_get_id(self->reader, e->topic_id, &topic) != TERN_OK) {
        return 1;
    }
    tern_frame_t frame;
    uint64_t msg_id = e->msg_id;
    if (!msg_id) {
        if (tern_store_read(self->reader, e->topic_id, e->seq, &frame) != TERN_OK) {
            return 1;
        }
        msg_id = frame.msg_id;
    }
    tern_frame_init(&frame, TERN_CMD_REPL_ACKSTATE);
    frame.position = e->position;
    snprintf(frame.topic, sizeof frame.topic, "%s", topic.name);
    snprintf(frame.group, sizeof frame.group, "%s", e->group);
    frame.fields |= TERN_F_TOPIC | TERN_F_GROUP;
    frame.msg_id = msg_id;
    frame.code = e->op;
    return s_send(self, sock, NULL, 0, &frame);
}

//  Streams outbox entries from link->next_pos while the window allows.
static void s_pump(s_repl_t *self, s_link_t *link) {
    if (tern_peer_state(link->fsm) != TERN_PEER_LIVE || !link->dealer) {
        return;
    }
    void *sock = zsock_resolve(link->dealer);
    tern_outbox_entry_t *entries = self->entries;
    while (link->next_pos <= self->outbox_last) {
        uint64_t inflight = link->next_pos - 1 - link->confirmed;
        if (link->next_pos - 1 < link->confirmed) {
            inflight = 0;
        }
        if (inflight >= S_WINDOW) {
            return;
        }
        size_t max = S_WINDOW - inflight < S_SEND_MAX ? (size_t)(S_WINDOW - inflight) : S_SEND_MAX;
        s_collect_t c = {entries, 0, max};
        if (tern_store_read_begin(self->reader) != TERN_OK) {
            return;
        }
        tern_store_outbox_read(self->reader, link->next_pos, max, s_collect_entry, &c);
        if (c.count == 0) {
            //  Everything up to outbox_last was dropped by retention.
            link->lost += self->outbox_last + 1 - link->next_pos;
            zsys_warning("repl: peer %s lost outbox positions %" PRIu64 "..%" PRIu64
                         " (retention ran out before it confirmed them)",
                         link->cfg->name, link->next_pos, self->outbox_last);
            link->next_pos = self->outbox_last + 1;
            tern_store_read_end(self->reader);
            return;
        }
        if (c.entries[0].position > link->next_pos) {
            uint64_t gap = c.entries[0].position - link->next_pos;
            link->lost += gap;
            zsys_warning("repl: peer %s lost %" PRIu64 " outbox entries from position %" PRIu64
                         " (retention ran out before it confirmed them)",
                         link->cfg->name, gap, link->next_pos);
        }
        bool full = false;
        for (size_t i = 0; i < c.count && !full; i++) {
            tern_outbox_entry_t *e = &c.entries[i];
            if (e->is_ackstate) {
                int rc = s_send_ackstate(self, sock, e);
                if (rc < 0 && errno == EAGAIN) {
                    full = true;
                    break;
                }
                if (rc == 0) {
                    link->acks_sent++;
                }
            } else {
                tern_frame_t frame;
                tern_err_t rc = tern_store_read(self->reader, e->topic_id, e->seq, &frame);
                if (rc == TERN_OK) {
                    frame.cmd = TERN_CMD_REPL_RECORD;
                    frame.position = e->position;
                    frame.sub_id = 0;
                    frame.tag = 0;
                    frame.delivery_count = 0;
                    if (s_send(self, sock, NULL, 0, &frame) != 0) {
                        if (errno == EAGAIN) {
                            full = true; //  retry this entry at the next pump
                            break;
                        }
                    } else {
                        link->sent++;
                    }
                } else if (rc != TERN_ENOTFOUND) {
                    zsys_error("repl: cannot read outbox entry %" PRIu64 " for %s: %s", e->position,
                               link->cfg->name, tern_strerror(rc));
                }
                //  ENOTFOUND: expired or trimmed here before it was shipped.
            }
            link->next_pos = e->position + 1;
        }
        tern_store_read_end(self->reader);
        if (full) {
            return;
        }
    }
}

//  A frame from the peer on our DEALER.
static void s_handle_dealer(s_repl_t *self, s_link_t *link) {
    void *sock = zsock_resolve(link->dealer);
    for (int n = 0; n < S_DRAIN_MAX && link->dealer; n++) {
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&msg);
            return;
        }
        //  Only single-frame replies come this way; drop any extra frames.
        while (zmq_msg_more(&msg)) {
            zmq_msg_t extra;
            zmq_msg_init(&extra);
            zmq_msg_recv(&extra, sock, 0);
            bool more = zmq_msg_more(&extra);
            zmq_msg_close(&extra);
            if (!more) {
                break;
            }
        }
        tern_frame_t frame;
        tern_err_t rc =
            tern_frame_decode(&frame, zmq_msg_data(&msg), zmq_msg_size(&msg), NULL, 0, NULL);
        zmq_msg_close(&msg);
        if (rc != TERN_OK) {
            zsys_warning("repl: bad frame from peer %s: %s", link->cfg->name, tern_strerror(rc));
            continue;
        }
        if (frame.cmd == TERN_CMD_REPL_WELCOME) {
            if (tern_peer_state(link->fsm) != TERN_PEER_HELLO) {
                continue;
            }
            if (!streq(frame.dc, link->cfg->name) || frame.node_id == self->config->node_id) {
                zsys_error("repl: peer at %s answered as dc %s node %u (expected dc %s and a node "
                           "id other than ours, %u): link refused",
                           link->cfg->endpoint, frame.dc, frame.node_id, link->cfg->name,
                           self->config->node_id);
                if (frame.node_id == self->config->node_id) {
                    self->refused_node_id++;
                } else {
                    self->refused_unknown_dc++;
                }
                s_link_event(self, link, TERN_PEER_REFUSED);
                return;
            }
            link->node_id = frame.node_id;
            link->node_known = true;
            link->confirmed = frame.position;
            link->next_pos = frame.position + 1;
            unsigned actions = tern_peer_event(link->fsm, TERN_PEER_WELCOME, tern_now_ms());
            s_do_actions(self, link, actions);
            zsys_info("repl: link to %s (node %u) live; streaming from position %" PRIu64,
                      link->cfg->name, link->node_id, link->next_pos);
            s_pump(self, link);
        } else if (frame.cmd == TERN_CMD_REPL_CONFIRM) {
            if (frame.position > link->confirmed) {
                link->confirmed = frame.position;
            }
            tern_peer_event(link->fsm, TERN_PEER_FRAME, tern_now_ms());
        } else if (frame.cmd == TERN_CMD_ERROR) {
            zsys_warning("repl: peer %s refused the link: %s (%u)", link->cfg->name, frame.reason,
                         frame.code);
            s_link_event(self, link, TERN_PEER_REFUSED);
            return;
        } else {
            tern_peer_event(link->fsm, TERN_PEER_FRAME, tern_now_ms());
        }
    }
}

// ---------------------------------------------------------------------------
//  Inbound: the ROUTER

//  LINK's lag behind our outbox, whose last position is LAST: in messages,
//  and in ms since the oldest one it lacks was stored (0 unless READING, a
//  read transaction is open).
static void s_link_lag(s_repl_t *self, const s_link_t *link, uint64_t last, bool reading,
                       uint64_t now_ns, uint64_t *lag_msgs, uint64_t *lag_ms) {
    *lag_msgs = last > link->confirmed ? last - link->confirmed : 0;
    *lag_ms = 0;
    if (*lag_msgs && reading) {
        tern_outbox_entry_t entry;
        s_collect_t c = {&entry, 0, 1};
        tern_store_outbox_read(self->reader, link->confirmed + 1, 1, s_collect_entry, &c);
        if (c.count == 1 && now_ns > entry.at_ns) {
            *lag_ms = (now_ns - entry.at_ns) / 1000000;
        }
    }
}

//  When LINK's peer was last heard from, on either of its two sessions.
static uint64_t s_link_seen(const s_link_t *link) {
    uint64_t seen = tern_peer_last_seen(link->fsm);
    return link->in_seen_ms > seen ? link->in_seen_ms : seen;
}

static void s_peers_json(s_repl_t *self, tern_json_t *json) {
    uint64_t now = tern_now_ms();
    uint64_t now_ns = tern_now_ns();
    bool reading = tern_store_read_begin(self->reader) == TERN_OK;
    uint64_t last = self->outbox_last;
    if (reading) {
        tern_store_outbox_last(self->reader, &last);
    }
    tern_store_stats_t stats;
    tern_store_stats(self->args->store, &stats);
    tern_json_raw(json, "[");
    for (size_t i = 0; i < self->link_count; i++) {
        s_link_t *link = &self->links[i];
        uint64_t lag_msgs, lag_ms;
        s_link_lag(self, link, last, reading, now_ns, &lag_msgs, &lag_ms);
        uint64_t seen = s_link_seen(link);
        tern_json_sep(json);
        tern_json_raw(json, "{");
        tern_json_key_str(json, "dc", link->cfg->name);
        if (link->node_known) {
            tern_json_key_u64(json, "node_id", link->node_id);
        } else {
            tern_json_raw(json, ",\"node_id\":null");
        }
        tern_json_key_str(json, "endpoint", link->cfg->endpoint);
        tern_json_key_str(json, "state", tern_peer_state_name(tern_peer_state(link->fsm)));
        tern_json_key_u64(json, "lag_msgs", lag_msgs);
        tern_json_key_u64(json, "lag_ms", lag_ms);
        tern_json_key_u64(json, "last_seen_ms", seen);
        tern_json_key_u64(json, "last_seen_age_ms", seen ? now - seen : 0);
        tern_json_key_bool(json, "paused", link->paused);
        tern_json_key_bool(json, "inbound_live", link->rid_size > 0);
        tern_json_key_u64(json, "confirmed", link->confirmed);
        tern_json_key_u64(json, "sent", link->sent);
        tern_json_key_u64(json, "applied_position", link->applied);
        tern_json_key_u64(json, "inbound_lag_msgs",
                          link->sender_last > link->applied ? link->sender_last - link->applied
                                                            : 0);
        tern_json_key_u64(json, "received", link->received);
        tern_json_key_u64(json, "replays_dropped", link->replays);
        tern_json_key_u64(json, "acks_sent", link->acks_sent);
        tern_json_key_u64(json, "acks_received", link->acks_received);
        tern_json_key_u64(json, "lost", link->lost);
        tern_json_key_u64(json, "failures", tern_peer_failures(link->fsm));
        tern_json_key_u64(json, "outbox_last", last);
        tern_json_key_u64(json, "outbox_dropped", stats.outbox_dropped);
        tern_json_key_u64(json, "refused_version", self->refused_version);
        tern_json_key_u64(json, "refused_node_id", self->refused_node_id);
        tern_json_key_u64(json, "refused_unknown_dc", self->refused_unknown_dc);
        tern_json_key_u64(json, "looped_dropped", self->looped);
        tern_json_raw(json, "}");
    }
    tern_json_raw(json, "]");
    if (reading) {
        tern_store_read_end(self->reader);
    }
}

//  Answers admin operation OP (tern_admin_op_t; NAME: the peer of pause /
//  resume) into JSON. Returns TERN_OK, or an error code with *REASON set
//  (JSON left empty).
static tern_err_t s_admin_run(s_repl_t *self, unsigned op, const char *name, tern_json_t *json,
                              const char **reason) {
    if (op == TERN_ADMIN_PEERS) {
        s_peers_json(self, json);
        return TERN_OK;
    }
    if (op != TERN_ADMIN_PEERS_PAUSE && op != TERN_ADMIN_PEERS_RESUME) {
        *reason = "unknown admin operation on the replication endpoint";
        return TERN_EINVAL;
    }
    s_link_t *link = s_link_by_name(self, name);
    if (!link) {
        *reason = "no such peer";
        return TERN_ENOTFOUND;
    }
    bool pause = op == TERN_ADMIN_PEERS_PAUSE;
    link->paused = pause;
    s_link_event(self, link, pause ? TERN_PEER_PAUSE : TERN_PEER_RESUME);
    if (pause && link->rid_size) {
        //  Isolate the inbound direction too: the peer backs off.
        s_send_error(self, link->rid, link->rid_size, 0, TERN_EBUSY, "link paused");
        link->rid_size = 0;
    }
    zsys_info("repl: link to %s %s by the operator", name, pause ? "paused" : "resumed");
    tern_json_raw(json, "{");
    tern_json_key_str(json, "dc", name);
    tern_json_key_str(json, "state", tern_peer_state_name(tern_peer_state(link->fsm)));
    tern_json_key_bool(json, "paused", pause);
    tern_json_raw(json, "}");
    return TERN_OK;
}

//  ADMIN from ternctl on the replication endpoint itself.
static void s_admin(s_repl_t *self, const uint8_t *rid, size_t rid_size,
                    const tern_frame_t *frame) {
    char name[TERN_NAME_MAX + 1] = "";
    tern_admin_arg(frame, "name", name, sizeof name);
    const tern_admin_desc_t *desc = tern_admin_lookup(frame->name);
    unsigned op = desc && desc->actor == TERN_ADMIN_BY_REPL ? desc->op : TERN_ADMIN_OP_COUNT;
    tern_json_t json;
    tern_json_init(&json);
    const char *reason = "";
    tern_err_t rc = s_admin_run(self, op, name, &json, &reason);
    if (rc != TERN_OK) {
        s_send_error(self, rid, rid_size, frame->req_id, rc, reason);
        tern_json_free(&json);
        return;
    }
    tern_frame_t reply;
    tern_frame_init(&reply, TERN_CMD_REPLY);
    reply.req_id = frame->req_id;
    reply.payload = (const uint8_t *)json.data;
    reply.payload_size = json.len;
    s_send(self, self->router, rid, rid_size, &reply);
    tern_json_free(&json);
}

//  ADMIN a client sent to the client endpoint, forwarded by conn: answer it
//  and give it back to conn (which relays the answer and frees it).
static void s_admin_item(s_repl_t *self, tern_repl_admin_t *item) {
    tern_json_t json;
    tern_json_init(&json);
    const char *reason = "";
    item->err = s_admin_run(self, item->op, item->name, &json, &reason);
    if (item->err == TERN_OK) {
        item->reply = tern_alloc(json.len + 1);
        memcpy(item->reply, json.data, json.len);
        item->reply[json.len] = 0;
    } else {
        snprintf(item->reason, sizeof item->reason, "%s", reason);
    }
    tern_json_free(&json);
    if (!self->conn_sock) {
        self->conn_sock = zsock_new(ZMQ_PUSH);
        if (self->conn_sock) {
            zsock_set_sndhwm(self->conn_sock, 0);
            zsock_set_linger(self->conn_sock, 0);
            if (zsock_connect(self->conn_sock, "%s", item->reply_to) != 0) {
                zsock_destroy(&self->conn_sock);
            }
        }
    }
    if (!self->conn_sock ||
        tern_work_send(zsock_resolve(self->conn_sock), TERN_WORK_REPL_ADMIN, item) != 0) {
        tern_repl_admin_destroy(&item);
    }
}

void tern_repl_admin_endpoint(const tern_config_t *config, char *buf, size_t cap) {
    snprintf(buf, cap, "inproc://tern-repl-admin-%p", (const void *)config);
}

static void s_handle_hello(s_repl_t *self, const uint8_t *rid, size_t rid_size,
                           const tern_frame_t *frame) {
    char why[200];
    if (frame->proto_version < TERN_PROTO_MIN_VERSION) {
        self->refused_version++;
        snprintf(why, sizeof why, "replication protocol version %u not supported (%u..%u)",
                 frame->proto_version, TERN_PROTO_MIN_VERSION, TERN_PROTO_VERSION);
        zsys_error("repl: refused dc %s node %u: %s", frame->dc, frame->node_id, why);
        s_send_error(self, rid, rid_size, frame->req_id, TERN_EVERSION, why);
        return;
    }
    s_link_t *link = s_link_by_name(self, frame->dc);
    if (!link || streq(frame->dc, self->config->dc)) {
        self->refused_unknown_dc++;
        snprintf(why, sizeof why, "unknown dc %s (not a configured peer of dc %s)", frame->dc,
                 self->config->dc);
        zsys_error("repl: refused node %u: %s", frame->node_id, why);
        s_send_error(self, rid, rid_size, frame->req_id, TERN_EDENIED, why);
        return;
    }
    bool dup = frame->node_id == self->config->node_id;
    for (size_t i = 0; i < self->link_count && !dup; i++) {
        s_link_t *other = &self->links[i];
        dup = other != link && other->node_known && other->node_id == frame->node_id;
    }
    if (dup) {
        self->refused_node_id++;
        snprintf(why, sizeof why, "duplicate node id %u (dc %s)", frame->node_id, frame->dc);
        zsys_error("repl: refused dc %s: %s", frame->dc, why);
        s_send_error(self, rid, rid_size, frame->req_id, TERN_EEXIST, why);
        return;
    }
    if (link->paused) {
        s_send_error(self, rid, rid_size, frame->req_id, TERN_EBUSY, "link paused");
        return;
    }
    memcpy(link->rid, rid, rid_size);
    link->rid_size = rid_size;
    link->node_id = frame->node_id;
    link->node_known = true;
    link->in_seen_ms = tern_now_ms();
    tern_frame_t reply;
    tern_frame_init(&reply, TERN_CMD_REPL_WELCOME);
    reply.req_id = frame->req_id;
    reply.proto_version =
        frame->proto_version < TERN_PROTO_VERSION ? frame->proto_version : TERN_PROTO_VERSION;
    reply.node_id = self->config->node_id;
    snprintf(reply.dc, sizeof reply.dc, "%s", self->config->dc);
    reply.position = link->queued;
    s_send(self, self->router, rid, rid_size, &reply);
    zsys_info("repl: inbound from %s (node %u) accepted; resuming after position %" PRIu64,
              frame->dc, frame->node_id, link->queued);
    //  It is back: our link to it need not wait out its backoff.
    s_link_event(self, link, TERN_PEER_WAKE);
}

static tern_repl_rec_t *s_rec_new(void) {
    tern_repl_rec_t *rec = tern_alloc(sizeof *rec);
    zmq_msg_init(&rec->hdr);
    zmq_msg_init(&rec->body);
    return rec;
}

//  Adds REC (a record or an ack-state change at its position) to the batch.
static void s_batch_add(s_repl_t *self, s_link_t *link, tern_repl_rec_t *rec) {
    tern_repl_batch_t *batch = s_batch(self);
    if (batch->count == batch->cap) {
        batch->cap = batch->cap ? batch->cap * 2 : 256;
        batch->recs = tern_realloc(batch->recs, batch->cap * sizeof *batch->recs);
    }
    batch->recs[batch->count++] = rec;
    s_batch_pos(batch->inbound, &batch->inbound_count, link->cfg->name, rec->frame.position);
    link->queued = rec->frame.position;
}

//  Drains the ROUTER: records go into one storer batch.
static void s_handle_router(void *actor, void *unused) {
    (void)unused;
    s_repl_t *self = (s_repl_t *)actor;
    tern_repl_rec_t *rec = NULL;
    for (int n = 0; n < S_DRAIN_MAX; n++) {
        uint8_t rid[TERN_RID_MAX];
        int rid_size = zmq_recv(self->router, rid, sizeof rid, ZMQ_DONTWAIT);
        if (rid_size < 0) {
            break;
        }
        if (!rec) {
            rec = s_rec_new();
        }
        bool has_body = false;
        int more = 0;
        size_t more_size = sizeof more;
        zmq_getsockopt(self->router, ZMQ_RCVMORE, &more, &more_size);
        if (!more || zmq_msg_recv(&rec->hdr, self->router, 0) < 0) {
            continue;
        }
        if (zmq_msg_more(&rec->hdr)) {
            zmq_msg_recv(&rec->body, self->router, 0);
            has_body = true;
            while (zmq_msg_more(&rec->body)) { //  extra frames: drop
                zmq_msg_t extra;
                zmq_msg_init(&extra);
                zmq_msg_recv(&extra, self->router, 0);
                bool again = zmq_msg_more(&extra);
                zmq_msg_close(&extra);
                if (!again) {
                    break;
                }
            }
        }
        tern_limits_t limits = {.max_payload = self->config->max_payload};
        tern_frame_t *frame = &rec->frame;
        tern_err_t rc = tern_frame_decode(frame, zmq_msg_data(&rec->hdr), zmq_msg_size(&rec->hdr),
                                          has_body ? zmq_msg_data(&rec->body) : NULL,
                                          has_body ? zmq_msg_size(&rec->body) : 0, &limits);
        s_link_t *link = s_link_by_rid(self, rid, (size_t)rid_size);
        if (link) {
            link->in_seen_ms = tern_now_ms();
        }
        bool kept = false;
        if (rc != TERN_OK) {
            s_send_error(self, rid, (size_t)rid_size, frame->req_id, rc, "bad frame");
        } else if (frame->cmd == TERN_CMD_REPL_HELLO) {
            if (tern_auth_peer_ok(self->config, &rec->hdr, frame->dc)) {
                s_handle_hello(self, rid, (size_t)rid_size, frame);
            } else {
                //  With CURVE a key may only speak for its own name.
                s_send_error(self, rid, (size_t)rid_size, frame->req_id, TERN_EDENIED,
                             "this key is not the peer it claims to be");
            }
        } else if (frame->cmd == TERN_CMD_REPL_RECORD || frame->cmd == TERN_CMD_REPL_HEARTBEAT ||
                   frame->cmd == TERN_CMD_REPL_ACKSTATE) {
            if (!link) {
                s_send_error(self, rid, (size_t)rid_size, frame->req_id, TERN_ESTATE,
                             "no replication handshake on this connection");
            } else if (frame->cmd == TERN_CMD_REPL_HEARTBEAT) {
                link->sender_last = frame->position;
                s_send_pos(self, self->router, rid, (size_t)rid_size, TERN_CMD_REPL_CONFIRM,
                           link->applied);
            } else if (frame->cmd == TERN_CMD_REPL_ACKSTATE) {
                if (frame->position <= link->queued) {
                    link->replays++;
                } else {
                    //  Ack state is shipped only by the DC where it changed.
                    snprintf(frame->origin, sizeof frame->origin, "%s", link->cfg->name);
                    s_batch_add(self, link, rec);
                    link->acks_received++;
                    kept = true;
                }
            } else if (streq(frame->origin, self->config->dc)) {
                self->looped++; //  never apply our own records back
            } else if (!streq(frame->origin, link->cfg->name)) {
                self->looped++; //  only the origin ships its records
            } else if (frame->position <= link->queued) {
                link->replays++;
            } else {
                frame->fields |= TERN_F_ORIGIN;
                s_batch_add(self, link, rec);
                kept = true;
            }
        } else if (frame->cmd == TERN_CMD_HELLO) {
            //  ternctl on the replication endpoint (peers, peers pause/resume).
            tern_frame_t reply;
            tern_frame_init(&reply, TERN_CMD_WELCOME);
            reply.req_id = frame->req_id;
            reply.proto_version = TERN_PROTO_VERSION;
            reply.node_id = self->config->node_id;
            snprintf(reply.dc, sizeof reply.dc, "%s", self->config->dc);
            reply.heartbeat_ms = frame->heartbeat_ms ? frame->heartbeat_ms : 15000;
            reply.max_payload = (uint32_t)self->config->max_payload;
            s_send(self, self->router, rid, (size_t)rid_size, &reply);
        } else if (frame->cmd == TERN_CMD_ADMIN) {
            s_admin(self, rid, (size_t)rid_size, frame);
        } else if (frame->cmd == TERN_CMD_HEARTBEAT || frame->cmd == TERN_CMD_BYE) {
            //  nothing to do
        } else {
            s_send_error(self, rid, (size_t)rid_size, frame->req_id, TERN_ECOMMAND,
                         "command not accepted on the replication endpoint");
        }
        if (kept) {
            rec = NULL;
        } else {
            zmq_msg_close(&rec->hdr);
            zmq_msg_close(&rec->body);
            zmq_msg_init(&rec->hdr);
            zmq_msg_init(&rec->body);
        }
    }
    tern_repl_rec_destroy(&rec);
    s_flush_batch(self);
}

//  Results of a commit from the storer: confirm to the origins.
static void s_handle_inbox(void *actor, void *unused) {
    (void)unused;
    s_repl_t *self = (s_repl_t *)actor;
    for (int n = 0; n < S_DRAIN_MAX; n++) {
        tern_work_type_t type;
        void *ptr;
        if (tern_work_recv(zsock_resolve(self->inbox_sock), ZMQ_DONTWAIT, &type, &ptr) != 0) {
            return;
        }
        if (type == TERN_WORK_REPL_ADMIN) {
            s_admin_item(self, (tern_repl_admin_t *)ptr);
            continue;
        }
        if (type != TERN_WORK_REPL_DONE) {
            zsys_error("repl: unexpected work item type %d", (int)type);
            continue;
        }
        tern_repl_batch_t *batch = ptr;
        for (size_t i = 0; i < batch->inbound_count; i++) {
            s_link_t *link = s_link_by_name(self, batch->inbound[i].name);
            if (!link) {
                continue;
            }
            if (batch->err != TERN_OK) {
                //  Nothing of it is durable: rewind and make the peer resend.
                zsys_error("repl: applying records from %s failed: %s; the link restarts",
                           link->cfg->name, tern_strerror(batch->err));
                link->queued = link->applied;
                if (link->rid_size) {
                    s_send_error(self, link->rid, link->rid_size, 0, batch->err, "apply failed");
                    link->rid_size = 0;
                }
                continue;
            }
            if (batch->inbound[i].position > link->applied) {
                link->applied = batch->inbound[i].position;
            }
            if (link->rid_size) {
                s_send_pos(self, self->router, link->rid, link->rid_size, TERN_CMD_REPL_CONFIRM,
                           link->applied);
            }
        }
        if (batch->err == TERN_OK) {
            for (size_t i = 0; i < batch->count; i++) {
                tern_repl_rec_t *rec = batch->recs[i];
                s_link_t *link = s_link_by_name(self, rec->frame.origin);
                if (link && rec->frame.cmd == TERN_CMD_REPL_RECORD && rec->result.err == TERN_OK &&
                    !rec->result.duplicate) {
                    link->received++;
                }
            }
        }
        tern_repl_batch_destroy(&batch);
    }
}

// ---------------------------------------------------------------------------
//  Timers

//  Publishes the figures of `ternctl peers` for metrics (once a second).
static void s_publish_stats(s_repl_t *self) {
    tern_repl_stats_t *stats = self->args->stats;
    if (!stats || tern_store_read_begin(self->reader) != TERN_OK) {
        return;
    }
    uint64_t last = self->outbox_last;
    tern_store_outbox_last(self->reader, &last);
    uint64_t now_ns = tern_now_ns();
    for (size_t i = 0; i < self->link_count; i++) {
        s_link_t *link = &self->links[i];
        tern_repl_peer_stats_t *ps = &stats->peers[i];
        uint64_t lag_msgs, lag_ms;
        s_link_lag(self, link, last, true, now_ns, &lag_msgs, &lag_ms);
        uint64_t seen = s_link_seen(link);
        atomic_store_explicit(&ps->state, (uint32_t)tern_peer_state(link->fsm),
                              memory_order_relaxed);
        atomic_store_explicit(&ps->lag_msgs, lag_msgs, memory_order_relaxed);
        atomic_store_explicit(&ps->lag_ms, lag_ms, memory_order_relaxed);
        atomic_store_explicit(&ps->last_seen_ms, seen, memory_order_relaxed);
        atomic_store_explicit(&ps->sent, link->sent, memory_order_relaxed);
        atomic_store_explicit(&ps->received, link->received, memory_order_relaxed);
        atomic_store_explicit(&ps->acks_sent, link->acks_sent, memory_order_relaxed);
        atomic_store_explicit(&ps->acks_received, link->acks_received, memory_order_relaxed);
        atomic_store_explicit(&ps->lost, link->lost, memory_order_relaxed);
        atomic_store_explicit(&ps->failures, tern_peer_failures(link->fsm), memory_order_relaxed);
    }
    tern_store_read_end(self->reader);
    atomic_store_explicit(&stats->refused_version, self->refused_version, memory_order_relaxed);
    atomic_store_explicit(&stats->refused_node_id, self->refused_node_id, memory_order_relaxed);
    atomic_store_explicit(&stats->refused_unknown_dc, self->refused_unknown_dc,
                          memory_order_relaxed);
    atomic_store_explicit(&stats->looped, self->looped, memory_order_relaxed);
}

static void s_housekeeping(s_repl_t *self, uint64_t now) {
    s_publish_stats(self);
    //  Confirmations to disk (they drive outbox cleanup) once a second.
    for (size_t i = 0; i < self->link_count; i++) {
        s_link_t *link = &self->links[i];
        if (link->confirmed > link->stored_conf) {
            tern_repl_batch_t *batch = s_batch(self);
            s_batch_pos(batch->confirms, &batch->confirm_count, link->cfg->name, link->confirmed);
            link->stored_conf = link->confirmed;
        }
        if (link->rid_size && now - link->in_seen_ms > 3 * S_HEARTBEAT_MS) {
            link->rid_size = 0; //  inbound session silent: it will HELLO again
        }
    }
    s_flush_batch(self);
    tern_store_stats_t stats;
    tern_store_stats(self->args->store, &stats);
    if (stats.outbox_dropped > self->dropped_seen) {
        zsys_warning("repl: outbox retention dropped %" PRIu64 " records that a peer had not "
                     "confirmed (%" PRIu64 " in total): that peer will never receive them",
                     stats.outbox_dropped - self->dropped_seen, stats.outbox_dropped);
        self->dropped_seen = stats.outbox_dropped;
    }
}

static void s_refresh_outbox_last(s_repl_t *self) {
    if (tern_store_read_begin(self->reader) == TERN_OK) {
        tern_store_outbox_last(self->reader, &self->outbox_last);
        tern_store_read_end(self->reader);
    }
}

static void s_timers(s_repl_t *self) {
    uint64_t now = tern_now_ms();
    bool any_live = false;
    for (size_t i = 0; i < self->link_count; i++) {
        s_link_t *link = &self->links[i];
        s_link_event(self, link, TERN_PEER_TICK);
        if (tern_peer_state(link->fsm) == TERN_PEER_LIVE) {
            any_live = true;
            if (now - link->last_hb_ms >= S_HEARTBEAT_MS && link->dealer) {
                s_send_pos(self, zsock_resolve(link->dealer), NULL, 0, TERN_CMD_REPL_HEARTBEAT,
                           self->outbox_last);
                link->last_hb_ms = now;
            }
        }
    }
    if (any_live) {
        s_refresh_outbox_last(self);
        for (size_t i = 0; i < self->link_count; i++) {
            s_pump(self, &self->links[i]);
        }
    }
    if (now >= self->next_house_ms) {
        s_housekeeping(self, now);
        self->next_house_ms = now + S_HOUSE_MS;
    }
}

// ---------------------------------------------------------------------------
//  The actor

static int s_start(s_repl_t *self) {
    tern_repl_args_t *args = self->args;
    self->router_sock = zsock_new(ZMQ_ROUTER);
    self->reader = tern_store_reader_new(args->store);
    if (!self->router_sock || !self->reader) {
        snprintf(args->error, sizeof args->error, "repl: cannot create sockets");
        return -1;
    }
    zsock_set_router_mandatory(self->router_sock, 1);
    zsock_set_sndhwm(self->router_sock, S_HWM);
    zsock_set_rcvhwm(self->router_sock, S_HWM);
    zsock_set_linger(self->router_sock, 0);
    zsock_set_maxmsgsize(self->router_sock,
                         (int64_t)(2 * self->config->max_payload + TERN_HEADER_MAX + 4096));
    if (self->config->auth_mode == TERN_AUTH_CURVE) {
        char why[200];
        if (tern_auth_curve_server(zsock_resolve(self->router_sock), self->config->auth_server_key,
                                   why, sizeof why) != TERN_OK) {
            snprintf(args->error, sizeof args->error, "repl: %s", why);
            return -1;
        }
    }
    if (zsock_bind(self->router_sock, "%s", self->config->repl_listen) < 0) {
        snprintf(args->error, sizeof args->error, "repl: cannot bind %.160s: %.60s",
                 self->config->repl_listen, zmq_strerror(zmq_errno()));
        return -1;
    }
    self->router = zsock_resolve(self->router_sock);
    char admin[128];
    tern_repl_admin_endpoint(self->config, admin, sizeof admin);
    if (!tern_work_pull_bind(&self->inbox_sock, args->inbox) ||
        zsock_bind(self->inbox_sock, "%s", admin) != 0 ||
        !tern_work_push_connect(&self->storer_sock, args->storer_inbox)) {
        snprintf(args->error, sizeof args->error, "repl: cannot reach the storer");
        return -1;
    }
    //  Inbound cursors and confirmations as stored.
    uint64_t now = tern_now_ms();
    tern_store_read_begin(self->reader);
    tern_store_outbox_last(self->reader, &self->outbox_last);
    for (uint32_t i = 0; i < self->config->peer_count && i < TERN_PEERS_MAX; i++) {
        s_link_t *link = &self->links[self->link_count++];
        link->cfg = &self->config->peers[i];
        link->fsm = tern_peer_new(NULL, now);
        if (!link->fsm) {
            tern_oom(0);
        }
        uint64_t pos = 0;
        if (tern_store_inbound_get(self->reader, link->cfg->name, &pos) == TERN_OK) {
            link->applied = link->queued = pos;
        }
        pos = 0;
        if (tern_store_outbox_confirmed(self->reader, link->cfg->name, &pos) == TERN_OK) {
            link->confirmed = link->stored_conf = pos;
        }
    }
    tern_store_read_end(self->reader);
    //  Register every peer (position 0 never moves a confirmation back), so
    //  the outbox keeps entries for a peer that has not connected yet.
    tern_repl_batch_t *batch = s_batch(self);
    for (size_t i = 0; i < self->link_count; i++) {
        s_batch_pos(batch->confirms, &batch->confirm_count, self->links[i].cfg->name,
                    self->links[i].confirmed);
    }
    s_flush_batch(self);
    tern_store_stats_t stats;
    tern_store_stats(args->store, &stats);
    self->dropped_seen = stats.outbox_dropped;
    if (stats.outbox_dropped) {
        zsys_warning("repl: %" PRIu64 " outbox records were dropped by retention before every "
                     "peer confirmed them",
                     stats.outbox_dropped);
    }
    return 0;
}

static void s_stop(s_repl_t *self) {
    //  Results the storer already sent us: free them (nobody else will).
    if (self->inbox_sock) {
        tern_work_type_t type;
        void *ptr;
        while (tern_work_recv(zsock_resolve(self->inbox_sock), ZMQ_DONTWAIT, &type, &ptr) == 0) {
            if (type == TERN_WORK_REPL_DONE) {
                tern_repl_batch_t *batch = ptr;
                tern_repl_batch_destroy(&batch);
            } else if (type == TERN_WORK_REPL_ADMIN) {
                tern_repl_admin_t *item = ptr;
                tern_repl_admin_destroy(&item); //  its client times out
            }
        }
    }
    for (size_t i = 0; i < self->link_count; i++) {
        s_close_dealer(&self->links[i]);
        tern_peer_destroy(&self->links[i].fsm);
    }
    tern_repl_batch_destroy(&self->batch);
    tern_store_reader_destroy(&self->reader);
    zsock_destroy(&self->router_sock);
    zsock_destroy(&self->inbox_sock);
    zsock_destroy(&self->storer_sock);
    zsock_destroy(&self->conn_sock);
}

//  Loop hooks (tern_actor.h): the inbox, the ROUTER, then each live
//  link's DEALER (readers for this turn only: links connect and drop);
//  timers after every turn. $TERM ends the loop at once.
static void s_on_dealer(void *self, void *arg) {
    s_link_t *link = (s_link_t *)arg;
    if (link->dealer) { //  an earlier handler of this turn may have dropped it
        s_handle_dealer((s_repl_t *)self, link);
    }
}

//  Adds the DEALERs of this turn; waits until the next link deadline (a
//  live link pumps its outbox every S_PUMP_MS), at most 100 ms.
static long s_prepare(tern_loop_t *loop, void *arg) {
    s_repl_t *self = (s_repl_t *)arg;
    uint64_t now = tern_now_ms();
    uint64_t deadline = now + 100;
    for (size_t i = 0; i < self->link_count; i++) {
        s_link_t *link = &self->links[i];
        if (link->dealer) {
            tern_loop_reader(loop, zsock_resolve(link->dealer), s_on_dealer, link);
        }
        uint64_t d = tern_peer_deadline(link->fsm);
        if (tern_peer_state(link->fsm) == TERN_PEER_LIVE) {
            d = now + S_PUMP_MS;
        }
        if (d < deadline) {
            deadline = d;
        }
    }
    return tern_loop_wait_until(deadline);
}

static void s_after(void *self) {
    s_timers((s_repl_t *)self);
}

void tern_repl_actor(zsock_t *pipe, void *arg) {
    tern_thread_name("ternd-repl");
    s_repl_t *self = tern_alloc(sizeof *self);
    self->args = (tern_repl_args_t *)arg;
    self->config = self->args->config;
    self->args->bind_rc = -1;
    if (s_start(self) != 0) {
        zsys_error("%s", self->args->error);
        s_stop(self);
        free(self);
        tern_actor_fail(pipe);
        return;
    }
    self->args->bind_rc = 0;
    zsys_info("repl: dc %s node %u replicating on %s with %zu peer(s)", self->config->dc,
              self->config->node_id, self->config->repl_listen, self->link_count);
    zsock_signal(pipe, 0);

    tern_loop_t loop;
    tern_loop_init(&loop, pipe, self, s_prepare, s_after);
    tern_loop_reader(&loop, zsock_resolve(self->inbox_sock), s_handle_inbox, NULL);
    tern_loop_reader(&loop, self->router, s_handle_router, NULL);
    loop.stop_at_once = true;
    tern_loop_run(&loop);
    s_stop(self);
    free(self);
}
