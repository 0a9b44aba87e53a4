/*  tern_repl_link.c - repl: the outbound direction, our DEALER to each peer.

    Part of the repl actor (tern_repl.c; state in tern_repl_priv.h). For
    every configured peer we open a DEALER to its ROUTER, send REPL_HELLO,
    take its REPL_WELCOME (the last position of our outbox it applied) and
    stream the outbox from there within a window, reading entries through
    our store reader. Connect, backoff, silence and the choice among the
    peer DC's endpoints (failover to the next) are cluster/tern_peer.c's
    state machine; this file carries out its actions, connecting to the
    endpoint it names.
*/
#include "tern_repl_priv.h"
#include "tern_auth.h"
#include <inttypes.h>
#include <string.h>

const char *p_link_endpoint(const p_link_t *link) {
    uint32_t index = tern_peer_endpoint(link->fsm);
    return index < link->cfg->endpoint_count ? link->cfg->endpoints[index] : link->cfg->endpoint;
}

void p_close_dealer(p_link_t *link) {
    zsock_destroy(&link->dealer);
    p_route_free(link); //  the map and its DEALERs go with the link
}

zsock_t *p_dealer_open(p_repl_t *self, p_link_t *link, const char *endpoint) {
    zsock_t *dealer = zsock_new(ZMQ_DEALER);
    if (!dealer) {
        return NULL;
    }
    zsock_set_sndhwm(dealer, S_HWM);
    zsock_set_rcvhwm(dealer, S_HWM);
    zsock_set_linger(dealer, 0);
    zsock_set_reconnect_ivl(dealer, 200);
    if (self->config->auth_mode == TERN_AUTH_CURVE) {
        //  Our certificate; the peer's public key from the allow-list.
        char key_path[1200], why[256];
        snprintf(key_path, sizeof key_path, "%s/%s.key", self->config->auth_clients,
                 link->cfg->name);
        if (tern_auth_curve_client(zsock_resolve(dealer), self->config->auth_server_key, key_path,
                                   why, sizeof why) != TERN_OK) {
            zsys_error("repl: link to %s: %s", link->cfg->name, why);
            zsock_destroy(&dealer);
            return NULL;
        }
    }
    if (zsock_connect(dealer, "%s", endpoint) != 0) {
        zsys_error("repl: cannot connect to peer %s at %s", link->cfg->name, endpoint);
        zsock_destroy(&dealer);
        return NULL;
    }
    tern_frame_t frame;
    tern_frame_init(&frame, TERN_CMD_REPL_HELLO);
    frame.proto_version = TERN_PROTO_VERSION;
    frame.node_id = self->config->node_id;
    snprintf(frame.dc, sizeof frame.dc, "%s", self->config->dc);
    frame.position = link->queued; //  what we applied from it (informational)
    //  A clustered DC ships one stream per partition, each from its own
    //  replicated position: the peer keeps no cursor for us (rule 4).
    frame.code = self->partitions ? TERN_REPL_HELLO_CLUSTER : 0;
    //  Our outbox positions are numbered in our data dir: the peer keeps its
    //  cursor for us per store identity (docs/replication.md).
    const char *identity = tern_store_identity(self->args->store);
    if (identity) {
        snprintf(frame.name, sizeof frame.name, "%s", identity);
        frame.fields |= TERN_F_NAME;
    }
    //  Not ZMQ_IMMEDIATE: the HELLO waits in our socket until TCP is up.
    p_send(self, zsock_resolve(dealer), NULL, 0, &frame);
    return dealer;
}

static void s_open_dealer(p_repl_t *self, p_link_t *link) {
    p_close_dealer(link);
    link->dealer = p_dealer_open(self, link, p_link_endpoint(link));
    link->last_hb_ms = tern_now_ms();
}

static void s_do_actions(p_repl_t *self, p_link_t *link, unsigned actions) {
    if (actions & TERN_PEER_A_CLOSE) {
        p_close_dealer(link);
    }
    if (actions & TERN_PEER_A_CONNECT) {
        s_open_dealer(self, link);
    }
}

void p_link_event(p_repl_t *self, p_link_t *link, tern_peer_event_t event) {
    tern_peer_state_t before = tern_peer_state(link->fsm);
    uint64_t failovers = tern_peer_failovers(link->fsm);
    const char *from = p_link_endpoint(link);
    unsigned actions = tern_peer_event(link->fsm, event, tern_now_ms());
    tern_peer_state_t after = tern_peer_state(link->fsm);
    const char *why = event == TERN_PEER_TICK ? "silent" : "refused";
    if (before == TERN_PEER_LIVE && after == TERN_PEER_IDLE) {
        zsys_warning("repl: link to %s lost (%s); retry in %" PRIu64 " ms", link->cfg->name, why,
                     tern_peer_deadline(link->fsm) - tern_now_ms());
    }
    if (tern_peer_failovers(link->fsm) != failovers) {
        zsys_warning("repl: link to %s at %s %s (%s); %s %s", link->cfg->name, from,
                     before == TERN_PEER_LIVE ? "lost" : "failed", why,
                     after == TERN_PEER_IDLE ? "after the backoff tries" : "fails over to",
                     p_link_endpoint(link));
    }
    s_do_actions(self, link, actions);
}

bool p_collect_entry(const tern_outbox_entry_t *entry, void *arg) {
    p_collect_t *c = arg;
    c->entries[c->count++] = *entry;
    return c->count < c->max;
}

//  Sends FRAME (of outbox entry E of stream ST) to LINK's peer: on its
//  DEALER, or to the peer node that leads FRAME's topic when the peer DC is
//  a cluster (tern_repl_route.c). Returns 0, or -1 with errno EAGAIN when it
//  must wait (the socket is full, or that node's DEALER is not live yet).
static int s_send_entry(p_repl_t *self, p_link_t *link, const p_stream_t *st,
                        const tern_outbox_entry_t *e, tern_frame_t *frame) {
    frame->partition = st->pt;
    if (!link->route) {
        return p_send(self, zsock_resolve(link->dealer), NULL, 0, frame);
    }
    p_sub_t *sub = p_route_sub(self, link, frame->topic);
    if (!sub) {
        errno = EAGAIN;
        return -1;
    }
    int rc = p_send(self, zsock_resolve(sub->dealer), NULL, 0, frame);
    if (rc == 0) {
        sub->sent_max[st - link->streams] = e->position;
        sub->sent++;
    }
    return rc;
}

//  Sends an ack-state outbox entry as REPL_ACKSTATE (by msg_id: seqs differ
//  between DCs). Returns 0, 1 when there is nothing to send (the message or
//  topic is gone), -1 on a send error. Inside a read transaction.
static int s_send_ackstate(p_repl_t *self, p_link_t *link, const p_stream_t *st,
                           const tern_outbox_entry_t *e) {
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
    return s_send_entry(self, link, st, e, &frame);
}

//  Sends outbox entry E to LINK's peer (inside a read transaction).
//  Returns true if it must wait (a full socket, a cluster node not live
//  yet): E is retried at the next pump.
static bool s_ship_entry(p_repl_t *self, p_link_t *link, const p_stream_t *st,
                         const tern_outbox_entry_t *e) {
    if (e->is_ackstate) {
        int rc = s_send_ackstate(self, link, st, e);
        if (rc < 0 && errno == EAGAIN) {
            return true;
        }
        if (rc == 0) {
            link->acks_sent++;
        }
        return false;
    }
    tern_frame_t frame;
    tern_err_t rc = tern_store_read(self->reader, e->topic_id, e->seq, &frame);
    if (rc == TERN_OK) {
        frame.cmd = TERN_CMD_REPL_RECORD;
        frame.position = e->position;
        frame.sub_id = 0;
        frame.tag = 0;
        frame.delivery_count = 0;
        if (s_send_entry(self, link, st, e, &frame) != 0) {
            if (errno == EAGAIN) {
                return true;
            }
        } else {
            link->sent++;
        }
    } else if (rc != TERN_ENOTFOUND) {
        zsys_error("repl: cannot read outbox entry %" PRIu64 " for %s: %s", e->position,
                   link->cfg->name, tern_strerror(rc));
    }
    //  ENOTFOUND: expired or trimmed here before it was shipped.
    return false;
}

uint64_t p_stream_end(const p_repl_t *self, const p_stream_t *st) {
    return self->partitions ? self->safe[st->pt] : self->outbox_last;
}

//  Retention dropped positions FROM..TO of ST before LINK's peer got them
//  (a single node's outbox has no other gaps; a partition's may).
static void s_lost(p_repl_t *self, p_link_t *link, uint64_t from, uint64_t to) {
    if (self->partitions) {
        return;
    }
    link->lost += to + 1 - from;
    zsys_warning("repl: peer %s lost outbox positions %" PRIu64 "..%" PRIu64
                 " (retention ran out before it confirmed them)",
                 link->cfg->name, from, to);
}

//  Streams ST from st->next_pos while the window allows. False if it
//  must wait (a full socket, a node not live yet).
static bool s_pump_stream(p_repl_t *self, p_link_t *link, p_stream_t *st) {
    uint64_t end = p_stream_end(self, st);
    while (st->next_pos <= end) {
        uint64_t inflight = st->next_pos - 1 > st->confirmed ? st->next_pos - 1 - st->confirmed : 0;
        if (inflight >= S_WINDOW) {
            return true;
        }
        size_t max = S_WINDOW - inflight < S_SEND_MAX ? (size_t)(S_WINDOW - inflight) : S_SEND_MAX;
        p_collect_t c = {self->entries, 0, max};
        if (tern_store_read_begin(self->reader) != TERN_OK) {
            return true;
        }
        tern_store_outbox_read_pt(self->reader, st->pt, st->next_pos, max, p_collect_entry, &c);
        if (c.count == 0 || c.entries[0].position > end) {
            s_lost(self, link, st->next_pos, end);
            st->next_pos = end + 1;
            tern_store_read_end(self->reader);
            return true;
        }
        if (c.entries[0].position > st->next_pos) {
            s_lost(self, link, st->next_pos, c.entries[0].position - 1);
        }
        bool full = false;
        for (size_t i = 0; i < c.count && !full && c.entries[i].position <= end; i++) {
            full = s_ship_entry(self, link, st, &c.entries[i]);
            if (!full) {
                st->next_pos = c.entries[i].position + 1;
            }
        }
        if (!full && c.entries[c.count - 1].position > end) {
            st->next_pos = end + 1; //  the rest waits for the ISR
        }
        tern_store_read_end(self->reader);
        if (full) {
            return false;
        }
    }
    return true;
}

//  A partition's leadership started (tern_repl.c s_streams_set). A peer
//  confirms per session the highest position of each stream it committed
//  from that session, and a position of the partition may now name another
//  entry than one sent before on it (an outbox tail given back after a
//  failover), so every stream resends from its confirmed position over
//  fresh sessions. The link stays live: a new DEALER to the same endpoint
//  (its HELLO goes first on it), no failure counted, no failover, no
//  backoff.
static void s_restart(p_repl_t *self, p_link_t *link) {
    link->restart = false;
    if (link->route) {
        p_route_rewind(self, link, "a partition's leadership started");
        return;
    }
    zsock_destroy(&link->dealer);
    link->dealer = p_dealer_open(self, link, p_link_endpoint(link));
    if (!link->dealer) {
        p_link_event(self, link, TERN_PEER_REFUSED);
        return;
    }
    link->last_hb_ms = tern_now_ms();
    for (uint32_t s = 0; s < link->nstreams; s++) {
        link->streams[s].next_pos = link->streams[s].confirmed + 1;
    }
}

void p_pump(p_repl_t *self, p_link_t *link) {
    if (tern_peer_state(link->fsm) != TERN_PEER_LIVE || !link->dealer) {
        return;
    }
    if (link->restart) {
        s_restart(self, link);
    }
    if (!link->dealer || (link->route && !link->route->partitions)) {
        return; //  refused, or a clustered peer DC's map not learnt yet
    }
    //  A stream that must wait (its peer node not live, a full socket)
    //  does not hold up the others: each is a partition of its own.
    for (uint32_t s = 0; s < link->nstreams; s++) {
        if (link->streams[s].on) {
            s_pump_stream(self, link, &link->streams[s]);
        }
    }
}

//  REPL_WELCOME from LINK's peer, in answer to our HELLO: check who it is,
//  then stream from the position it confirmed. False if the link was
//  refused (its DEALER is closed).
static bool s_handle_welcome(p_repl_t *self, p_link_t *link, const tern_frame_t *frame) {
    if (!streq(frame->dc, link->cfg->name) || frame->node_id == self->config->node_id) {
        zsys_error("repl: peer at %s answered as dc %s node %u (expected dc %s and a node "
                   "id other than ours, %u): link refused",
                   p_link_endpoint(link), frame->dc, frame->node_id, link->cfg->name,
                   self->config->node_id);
        if (frame->node_id == self->config->node_id) {
            self->refused_node_id++;
        } else {
            self->refused_unknown_dc++;
        }
        p_link_event(self, link, TERN_PEER_REFUSED);
        return false;
    }
    link->node_id = frame->node_id;
    link->node_known = true;
    //  A clustered peer DC keeps no inbound cursor that counts (its leaders
    //  change): we resume from what it confirmed to us, which it confirmed
    //  only once its in-sync replicas had it, and it drops replays by msg_id
    //  (docs/replication.md, "Clustered DCs").
    //  A clustered node (self->partitions) ships each partition from what
    //  the peer confirmed of it, replicated in our DC, whoever the peer is.
    link->clustered = (frame->fields & TERN_F_NAME) && streq(frame->name, "cluster");
    p_stream_t *one = &link->streams[0];
    if (!self->partitions && (!link->clustered || frame->position > one->confirmed)) {
        one->confirmed = frame->position;
    }
    for (uint32_t s = 0; s < link->nstreams; s++) {
        link->streams[s].next_pos = link->streams[s].confirmed + 1;
    }
    link->restart = false; //  a fresh session already
    unsigned actions = tern_peer_event(link->fsm, TERN_PEER_WELCOME, tern_now_ms());
    s_do_actions(self, link, actions);
    if (link->clustered) {
        p_route_start(self, link); //  learn its map first (tern_repl_route.c)
    }
    zsys_info("repl: link to %s (node %u at %s) live; streaming from position %" PRIu64 "%s",
              link->cfg->name, link->node_id, p_link_endpoint(link), one->next_pos,
              self->partitions ? " of each partition" : "");
    p_pump(self, link);
    return true;
}

//  Receives one message from SOCK into FRAME, its payload (if any) into
//  BODY (the caller closes BODY in every case). Returns 1, 0 for a frame
//  that did not decode (logged, PEER named), -1 when there is none.
static int s_recv_frame(void *sock, tern_frame_t *frame, zmq_msg_t *body, const char *peer) {
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    zmq_msg_init(body);
    if (zmq_msg_recv(&msg, sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&msg);
        return -1;
    }
    //  A header and at most a payload (REPLY); drop any further frames.
    bool has_body = zmq_msg_more(&msg) && zmq_msg_recv(body, sock, 0) >= 0;
    while (has_body && zmq_msg_more(body)) {
        zmq_msg_t extra;
        zmq_msg_init(&extra);
        zmq_msg_recv(&extra, sock, 0);
        bool more = zmq_msg_more(&extra);
        zmq_msg_close(&extra);
        if (!more) {
            break;
        }
    }
    tern_err_t rc = tern_frame_decode(frame, zmq_msg_data(&msg), zmq_msg_size(&msg),
                                      has_body ? zmq_msg_data(body) : NULL,
                                      has_body ? zmq_msg_size(body) : 0, NULL);
    zmq_msg_close(&msg);
    if (rc != TERN_OK) {
        zsys_warning("repl: bad frame from peer %s: %s", peer, tern_strerror(rc));
        zmq_msg_close(body);
        zmq_msg_init(body); //  the caller closes it
        return 0;
    }
    return 1;
}

void p_drain_dealer(p_repl_t *self, p_link_t *link, zsock_t *const *dealer, p_frame_fn *fn,
                    void *arg) {
    for (int n = 0; n < S_DRAIN_MAX && *dealer; n++) {
        tern_frame_t frame;
        zmq_msg_t body;
        int got = s_recv_frame(zsock_resolve(*dealer), &frame, &body, link->cfg->name);
        if (got < 0) {
            return;
        }
        bool more = got == 0 || fn(self, link, arg, &frame);
        zmq_msg_close(&body);
        if (!more) {
            return;
        }
    }
}

//  FRAME from the peer on LINK's DEALER. False if the DEALER is gone.
static bool s_dealer_frame(p_repl_t *self, p_link_t *link, void *arg, const tern_frame_t *frame) {
    (void)arg;
    if (frame->cmd == TERN_CMD_REPL_WELCOME) {
        if (tern_peer_state(link->fsm) == TERN_PEER_HELLO && !s_handle_welcome(self, link, frame)) {
            return false; //  refused: the DEALER is gone
        }
    } else if (frame->cmd == TERN_CMD_REPL_CONFIRM) {
        //  A clustered peer DC confirms per node (tern_repl_route.c).
        p_stream_t *st =
            frame->partition < link->nstreams ? &link->streams[frame->partition] : NULL;
        //  Pending a restart, the old session's confirmations may be of
        //  entries a position no longer names (s_restart).
        if (!link->route && !link->restart && st && frame->position > st->confirmed) {
            st->confirmed = frame->position;
        }
        tern_peer_event(link->fsm, TERN_PEER_FRAME, tern_now_ms());
    } else if (frame->cmd == TERN_CMD_REPLY && link->route) {
        p_route_map(self, link, frame);
        tern_peer_event(link->fsm, TERN_PEER_FRAME, tern_now_ms());
    } else if (frame->cmd == TERN_CMD_ERROR) {
        zsys_warning("repl: peer %s refused the link: %s (%u)", link->cfg->name, frame->reason,
                     frame->code);
        p_link_event(self, link, TERN_PEER_REFUSED);
        return false;
    } else {
        tern_peer_event(link->fsm, TERN_PEER_FRAME, tern_now_ms());
    }
    return true;
}

//  Frames from the peer on our DEALER.
void p_handle_dealer(p_repl_t *self, p_link_t *link) {
    p_drain_dealer(self, link, &link->dealer, s_dealer_frame, NULL);
}
