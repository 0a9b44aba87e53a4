/*  tern_repl_route.c - repl: shipping to a clustered peer DC.

    Part of the repl actor (tern_repl.c; state in tern_repl_priv.h). A peer
    DC whose WELCOME says "cluster" applies a record only at the leader of
    its topic's partition there (tern_repl_apply.c) and keeps no inbound
    cursor for us (docs/replication.md, "Clustered DCs", rule 4). So the
    link, once live on any of its nodes, asks that node for the DC's map
    (ADMIN `repl.map` on the same DEALER: partition count, each partition's
    leader, each node's repl endpoint), opens one more DEALER per node that
    leads a partition we have something for (a p_sub_t: its own REPL_HELLO
    and WELCOME), and sends each outbox entry, in outbox order, to the
    leader of its topic's partition (tern_partition_of with the PEER's
    partition count). An entry whose leader's DEALER is not live yet waits
    (and everything after it in its stream: per-producer order holds; the
    other streams go on).

    Confirmations. A node confirms on its DEALER the highest position it
    committed from that session (and, being a cluster, only once its ISR
    has it). Positions on one DEALER only grow, so the link's confirmed
    position is the highest P such that every entry <= P was confirmed by
    the node it went to: the lowest confirmation among nodes that still
    owe one, else the last position sent. It drives outbox cleanup as on a
    single node (written once a second).

    Changes. The map is asked again every S_MAP_MS, and at once after a
    node refuses an entry (TERN_ENOTLEADER: leadership moved), after a
    live node's DEALER falls silent for 3 s (one that never answered its
    HELLO got nothing: it is only closed, and reopened when next needed),
    or after any ERROR. Each of these,
    and any change of a leader in a new map, rewinds: every DEALER is
    closed (a fresh session confirms only what it committed itself) and
    shipping resumes from the confirmed position. What the new leaders hold
    already is dropped there by msg_id, so nothing is stored twice.

    Sub-link states: opened (HELLO sent) -> live (WELCOME) -> closed (rewind,
    silence, ERROR, link lost). No backoff of its own: the link's DEALER
    (cluster/tern_peer.c) carries the backoff for the DC as a whole.
*/
#include "tern_repl_priv.h"
#include "tern_partition.h"
#include <inttypes.h>
#include <string.h>

static void s_ask_map(p_repl_t *self, p_link_t *link, uint64_t now) {
    tern_frame_t frame;
    tern_frame_init(&frame, TERN_CMD_ADMIN);
    snprintf(frame.name, sizeof frame.name, "%s", TERN_REPL_MAP_OP);
    frame.fields |= TERN_F_NAME;
    if (link->dealer) {
        p_send(self, zsock_resolve(link->dealer), NULL, 0, &frame);
    }
    link->route->asked_ms = now;
}

void p_route_start(p_repl_t *self, p_link_t *link) {
    p_route_free(link);
    link->route = tern_alloc(sizeof *link->route);
    s_ask_map(self, link, tern_now_ms());
}

static void s_sub_close(p_link_t *link, p_sub_t *sub) {
    zsock_destroy(&sub->dealer);
    sub->live = false;
    memset(sub->sent_max, 0, link->nstreams * sizeof *sub->sent_max);
}

void p_route_free(p_link_t *link) {
    if (!link->route) {
        return;
    }
    for (size_t i = 0; i < link->route->nsubs; i++) {
        s_sub_close(link, &link->route->subs[i]);
        free(link->route->subs[i].sent_max);
        free(link->route->subs[i].confirmed);
    }
    free(link->route->leader);
    free(link->route);
    link->route = NULL;
}

//  Resends from the confirmed position over fresh DEALERs (see the top),
//  and asks for the map again.
void p_route_rewind(p_repl_t *self, p_link_t *link, const char *why) {
    p_route_t *route = link->route;
    for (size_t i = 0; i < route->nsubs; i++) {
        s_sub_close(link, &route->subs[i]);
    }
    zsys_info("repl: link to %s resends from its confirmed positions (%s)", link->cfg->name, why);
    for (uint32_t s = 0; s < link->nstreams; s++) {
        link->streams[s].next_pos = link->streams[s].confirmed + 1;
    }
    s_ask_map(self, link, tern_now_ms());
}

//  Parses one `repl.map` line into ROUTE (LEADERS: its partition count).
static void s_map_line(p_route_t *route, const char *line, uint32_t *leaders, uint32_t count) {
    unsigned a = 0, b = 0;
    char ep[256];
    if (sscanf(line, "node %u %255s", &a, ep) == 2 && route->nnodes < S_MAP_NODES) {
        route->node_ids[route->nnodes] = a;
        snprintf(route->node_eps[route->nnodes], sizeof route->node_eps[0], "%s", ep);
        route->nnodes++;
    } else if (sscanf(line, "leader %u %u", &a, &b) == 2 && a < count) {
        leaders[a] = b;
    }
}

void p_route_map(p_repl_t *self, p_link_t *link, const tern_frame_t *frame) {
    p_route_t *route = link->route;
    char *text = tern_alloc(frame->payload_size + 1); //  zeroed: NUL-terminated
    if (frame->payload_size) {
        memcpy(text, frame->payload, frame->payload_size);
    }
    unsigned count = 0;
    if (sscanf(text, "partitions %u", &count) != 1 || count == 0 || count > S_MAP_PARTITIONS) {
        zsys_warning("repl: peer %s sent no usable map; asks again", link->cfg->name);
        free(text);
        return;
    }
    uint32_t *leaders = tern_alloc(count * sizeof *leaders);
    for (uint32_t pt = 0; pt < count; pt++) {
        leaders[pt] = TERN_NODE_NONE;
    }
    route->nnodes = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        s_map_line(route, line, leaders, count);
    }
    free(text);
    bool changed =
        route->partitions != count || memcmp(route->leader, leaders, count * sizeof *leaders) != 0;
    free(route->leader);
    route->leader = leaders;
    route->partitions = count;
    route->maps++;
    if (changed && route->maps > 1) {
        p_route_rewind(self, link, "its partition leaders changed");
    }
}

//  The sub-link to NODE, opened (HELLO sent) if there is none: NULL when
//  the map names no repl endpoint for it or no slot is left.
static p_sub_t *s_sub(p_repl_t *self, p_link_t *link, uint32_t node) {
    p_route_t *route = link->route;
    p_sub_t *sub = NULL;
    for (size_t i = 0; i < route->nsubs && !sub; i++) {
        sub = route->subs[i].node == node ? &route->subs[i] : NULL;
    }
    if (sub && sub->dealer) {
        return sub; //  open already (each shipped entry comes here): no endpoint needed
    }
    const char *endpoint = NULL;
    for (size_t i = 0; i < route->nnodes && !endpoint; i++) {
        endpoint = route->node_ids[i] == node ? route->node_eps[i] : NULL;
    }
    if (!sub && endpoint && route->nsubs < S_SUBS_MAX) {
        sub = &route->subs[route->nsubs++];
        memset(sub, 0, sizeof *sub);
        sub->node = node;
        sub->sent_max = tern_alloc(link->nstreams * sizeof *sub->sent_max);
        sub->confirmed = tern_alloc(link->nstreams * sizeof *sub->confirmed);
    }
    if (sub && !sub->dealer && endpoint) {
        snprintf(sub->endpoint, sizeof sub->endpoint, "%s", endpoint);
        sub->dealer = p_dealer_open(self, link, endpoint);
        //  Not live, nothing sent: a new slot is zeroed, s_sub_close cleared a closed one.
        sub->seen_ms = sub->hb_ms = tern_now_ms();
    }
    return sub;
}

p_sub_t *p_route_sub(p_repl_t *self, p_link_t *link, const char *topic) {
    p_route_t *route = link->route;
    uint32_t pt = tern_partition_of(topic, strlen(topic), route->partitions);
    uint32_t node = route->leader[pt];
    if (node == TERN_NODE_NONE) {
        return NULL; //  no leader there now: the next map may have one
    }
    p_sub_t *sub = s_sub(self, link, node);
    return sub && sub->live && sub->dealer ? sub : NULL;
}

//  SUB's node confirmed POS of stream number S: the stream's confirmed
//  position may move.
static void s_confirm(p_link_t *link, p_sub_t *sub, uint32_t s, uint64_t pos) {
    if (s >= link->nstreams) {
        return;
    }
    if (pos > sub->confirmed[s]) {
        sub->confirmed[s] = pos;
    }
    //  The stream's confirmed position from its nodes' (see the top).
    p_route_t *route = link->route;
    p_stream_t *st = &link->streams[s];
    uint64_t low = st->next_pos - 1;
    for (size_t i = 0; i < route->nsubs; i++) {
        p_sub_t *other = &route->subs[i];
        if (other->sent_max[s] > other->confirmed[s] && other->confirmed[s] < low) {
            low = other->confirmed[s];
        }
    }
    if (low > st->confirmed) {
        st->confirmed = low;
    }
}

//  FRAME from SUB's node. False if it was closed (the caller stops reading).
static bool s_sub_frame(p_repl_t *self, p_link_t *link, void *arg, const tern_frame_t *frame) {
    p_sub_t *sub = arg;
    sub->seen_ms = tern_now_ms();
    if (frame->cmd == TERN_CMD_REPL_WELCOME) {
        sub->live = true;
        //  A clustered node confirms per session, from 0.
        memset(sub->confirmed, 0, link->nstreams * sizeof *sub->confirmed);
        zsys_info("repl: link to %s node %u at %s live", link->cfg->name, sub->node, sub->endpoint);
    } else if (frame->cmd == TERN_CMD_REPL_CONFIRM && !link->restart) {
        //  (pending a restart, see tern_repl_link.c s_restart, confirmations
        //  of the sessions about to close are void)
        s_confirm(link, sub, frame->partition, frame->position);
    } else if (frame->cmd == TERN_CMD_ERROR) {
        zsys_warning("repl: %s node %u refused: %s (%u)", link->cfg->name, sub->node, frame->reason,
                     frame->code);
        p_route_rewind(self, link, frame->code == TERN_ENOTLEADER ? "not the leader" : "refused");
        return false;
    }
    return true;
}

//  Frames from SUB's DEALER (a tern_loop_t reader; ARG is the sub).
static void s_on_sub(void *actor, void *arg) {
    p_repl_t *self = (p_repl_t *)actor;
    p_sub_t *sub = (p_sub_t *)arg;
    for (size_t l = 0; l < self->link_count; l++) {
        p_link_t *link = &self->links[l];
        if (!link->route || sub < link->route->subs || sub >= link->route->subs + S_SUBS_MAX) {
            continue;
        }
        p_drain_dealer(self, link, &sub->dealer, s_sub_frame, sub);
        return;
    }
}

void p_route_readers(p_repl_t *self, p_link_t *link, tern_loop_t *loop) {
    (void)self;
    for (size_t i = 0; link->route && i < link->route->nsubs; i++) {
        p_sub_t *sub = &link->route->subs[i];
        if (sub->dealer) {
            tern_loop_reader(loop, zsock_resolve(sub->dealer), s_on_sub, sub);
        }
    }
}

void p_route_timers(p_repl_t *self, p_link_t *link, uint64_t now) {
    p_route_t *route = link->route;
    if (!route) {
        return;
    }
    for (size_t i = 0; i < route->nsubs; i++) {
        p_sub_t *sub = &route->subs[i];
        if (!sub->dealer) {
            continue;
        }
        if (now - sub->seen_ms > 3 * self->config->repl_heartbeat_ms && !sub->live) {
            //  Never live: nothing was sent to it (p_route_sub), so no
            //  other session need resend; it reopens when next needed.
            zsys_warning("repl: link to %s node %u at %s does not answer", link->cfg->name,
                         sub->node, sub->endpoint);
            s_sub_close(link, sub);
            s_ask_map(self, link, now);
            continue;
        }
        if (now - sub->seen_ms > 3 * self->config->repl_heartbeat_ms) {
            zsys_warning("repl: link to %s node %u at %s silent", link->cfg->name, sub->node,
                         sub->endpoint);
            p_route_rewind(self, link, "a node fell silent");
            return;
        }
        if (sub->live && now - sub->hb_ms >= self->config->repl_heartbeat_ms) {
            p_send_pos(self, zsock_resolve(sub->dealer), NULL, 0, TERN_CMD_REPL_HEARTBEAT,
                       self->outbox_last);
            sub->hb_ms = now;
        }
    }
    if (now - route->asked_ms >= (route->partitions ? S_MAP_MS : self->config->repl_heartbeat_ms)) {
        s_ask_map(self, link, now);
    }
}
