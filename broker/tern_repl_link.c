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
}

static void s_open_dealer(p_repl_t *self, p_link_t *link) {
    p_close_dealer(link);
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
            p_close_dealer(link);
            return;
        }
    }
    const char *endpoint = p_link_endpoint(link);
    if (zsock_connect(link->dealer, "%s", endpoint) != 0) {
        zsys_error("repl: cannot connect to peer %s at %s", link->cfg->name, endpoint);
        p_close_dealer(link);
        return;
    }
    tern_frame_t frame;
    tern_frame_init(&frame, TERN_CMD_REPL_HELLO);
    frame.proto_version = TERN_PROTO_VERSION;
    frame.node_id = self->config->node_id;
    snprintf(frame.dc, sizeof frame.dc, "%s", self->config->dc);
    frame.position = link->queued; //  what we applied from it (informational)
    //  Our outbox positions are numbered in our data dir: the peer keeps its
    //  cursor for us per store identity (docs/replication.md).
    const char *identity = tern_store_identity(self->args->store);
    if (identity) {
        snprintf(frame.name, sizeof frame.name, "%s", identity);
        frame.fields |= TERN_F_NAME;
    }
    //  Not ZMQ_IMMEDIATE: the HELLO waits in our socket until TCP is up.
    p_send(self, zsock_resolve(link->dealer), NULL, 0, &frame);
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

//  Sends an ack-state outbox entry as REPL_ACKSTATE (by msg_id: seqs differ
//  between DCs). Returns 0, 1 when there is nothing to send (the message or
//  topic is gone), -1 on a send error. Inside a read transaction.
static int s_send_ackstate(p_repl_t *self, void *sock, const tern_outbox_entry_t *e) {
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
    return p_send(self, sock, NULL, 0, &frame);
}

//  Sends outbox entry E to LINK's peer on SOCK (inside a read transaction).
//  Returns true if the socket is full: E is retried at the next pump.
static bool s_ship_entry(p_repl_t *self, p_link_t *link, void *sock, const tern_outbox_entry_t *e) {
    if (e->is_ackstate) {
        int rc = s_send_ackstate(self, sock, e);
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
        if (p_send(self, sock, NULL, 0, &frame) != 0) {
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

//  Streams outbox entries from link->next_pos while the window allows.
void p_pump(p_repl_t *self, p_link_t *link) {
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
        p_collect_t c = {entries, 0, max};
        if (tern_store_read_begin(self->reader) != TERN_OK) {
            return;
        }
        tern_store_outbox_read(self->reader, link->next_pos, max, p_collect_entry, &c);
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
            full = s_ship_entry(self, link, sock, &c.entries[i]);
            if (!full) {
                link->next_pos = c.entries[i].position + 1;
            }
        }
        tern_store_read_end(self->reader);
        if (full) {
            return;
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
    link->clustered = (frame->fields & TERN_F_NAME) && streq(frame->name, "cluster");
    if (!link->clustered || frame->position > link->confirmed) {
        link->confirmed = frame->position;
    }
    link->next_pos = link->confirmed + 1;
    unsigned actions = tern_peer_event(link->fsm, TERN_PEER_WELCOME, tern_now_ms());
    s_do_actions(self, link, actions);
    zsys_info("repl: link to %s (node %u at %s) live; streaming from position %" PRIu64,
              link->cfg->name, link->node_id, p_link_endpoint(link), link->next_pos);
    p_pump(self, link);
    return true;
}

//  A frame from the peer on our DEALER.
void p_handle_dealer(p_repl_t *self, p_link_t *link) {
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
            if (tern_peer_state(link->fsm) == TERN_PEER_HELLO &&
                !s_handle_welcome(self, link, &frame)) {
                return; //  refused: the DEALER is gone
            }
        } else if (frame.cmd == TERN_CMD_REPL_CONFIRM) {
            if (frame.position > link->confirmed) {
                link->confirmed = frame.position;
            }
            tern_peer_event(link->fsm, TERN_PEER_FRAME, tern_now_ms());
        } else if (frame.cmd == TERN_CMD_ERROR) {
            zsys_warning("repl: peer %s refused the link: %s (%u)", link->cfg->name, frame.reason,
                         frame.code);
            p_link_event(self, link, TERN_PEER_REFUSED);
            return;
        } else {
            tern_peer_event(link->fsm, TERN_PEER_FRAME, tern_now_ms());
        }
    }
}
