/*  tern_repl_admin.c - repl: `ternctl peers`, pause / resume, and metrics.

    Part of the repl actor (tern_repl.c; state in tern_repl_priv.h). The
    peer operations (tern_admin.c's table, by TERN_ADMIN_BY_REPL) arrive
    either as ADMIN frames on the replication endpoint or as
    tern_repl_admin_t items conn forwards from the client endpoint; both
    are answered by s_admin_run. Once a second the same figures are
    published to tern_repl_stats_t for /metrics.
*/
#include "tern_repl_priv.h"
#include "tern_admin.h"
#include "tern_json.h"
#include <inttypes.h>
#include <string.h>

//  KEY: ID, or null when not KNOWN.
static void s_node_json(tern_json_t *json, const char *key, bool known, uint32_t id) {
    if (known) {
        tern_json_key_u64(json, key, id);
    } else {
        tern_json_key(json, key);
        tern_json_raw(json, "null");
    }
}

//  The age in ms of stream ST's outbox entry at FROM or after (0 if none;
//  inside a read transaction).
static uint64_t s_entry_age(p_repl_t *self, const p_stream_t *st, uint64_t from, uint64_t now_ns) {
    tern_outbox_entry_t entry;
    p_collect_t c = {&entry, 0, 1};
    tern_store_outbox_read_pt(self->reader, st->pt, from, 1, p_collect_entry, &c);
    return c.count == 1 && now_ns > entry.at_ns ? (now_ns - entry.at_ns) / 1000000 : 0;
}

//  LINK's lag behind our outbox (on a single node its last position is
//  LAST; in a cluster each led partition's, as far as the ISR holds it):
//  in messages, and in ms since the oldest one it lacks was stored (0
//  unless READING, a read transaction is open).
static void s_link_lag(p_repl_t *self, const p_link_t *link, uint64_t last, bool reading,
                       uint64_t now_ns, uint64_t *lag_msgs, uint64_t *lag_ms) {
    *lag_msgs = *lag_ms = 0;
    for (uint32_t s = 0; s < link->nstreams; s++) {
        const p_stream_t *st = &link->streams[s];
        uint64_t end = self->partitions ? p_stream_end(self, st) : last;
        if (!st->on || end <= st->confirmed) {
            continue;
        }
        *lag_msgs += end - st->confirmed;
        uint64_t age = reading ? s_entry_age(self, st, st->confirmed + 1, now_ns) : 0;
        *lag_ms = age > *lag_ms ? age : *lag_ms;
    }
}

//  What LINK's streams confirmed, in all.
static uint64_t s_link_confirmed(const p_link_t *link) {
    uint64_t sum = 0;
    for (uint32_t s = 0; s < link->nstreams; s++) {
        sum += link->streams[s].confirmed;
    }
    return sum;
}

//  One row per connection we ship over: local node -> remote node, its
//  state, and its lag (the positions it owes confirmations for, and the age
//  of the oldest of them; inside a read transaction when READING).
static void s_row_json(tern_json_t *json, uint32_t local, bool known, uint32_t node,
                       const char *endpoint, const char *state, uint64_t sent, uint64_t lag_msgs,
                       uint64_t lag_ms) {
    tern_json_sep(json);
    tern_json_raw(json, "{");
    tern_json_key_u64(json, "local_node_id", local);
    s_node_json(json, "node_id", known, node);
    tern_json_key_str(json, "endpoint", endpoint);
    tern_json_key_str(json, "state", state);
    tern_json_key_u64(json, "sent", sent);
    tern_json_key_u64(json, "lag_msgs", lag_msgs);
    tern_json_key_u64(json, "lag_ms", lag_ms);
    tern_json_raw(json, "}");
}

//  `links`: the link's DEALER (to the node that answered its HELLO) and,
//  to a clustered DC, one per partition leader there (tern_repl_route.c).
static void s_links_json(p_repl_t *self, const p_link_t *link, bool reading, uint64_t now_ns,
                         uint64_t lag_msgs, uint64_t lag_ms, tern_json_t *json) {
    tern_json_key(json, "links");
    tern_json_raw(json, "[");
    const char *state = tern_peer_state_name(tern_peer_state(link->fsm));
    s_row_json(json, self->config->node_id, link->node_known, link->node_id, p_link_endpoint(link),
               state, link->route ? 0 : link->sent, link->route ? 0 : lag_msgs,
               link->route ? 0 : lag_ms);
    for (size_t i = 0; link->route && i < link->route->nsubs; i++) {
        const p_sub_t *sub = &link->route->subs[i];
        uint64_t owed = 0, age = 0;
        for (uint32_t s = 0; s < link->nstreams; s++) {
            if (sub->sent_max[s] > sub->confirmed[s]) {
                owed += sub->sent_max[s] - sub->confirmed[s];
                uint64_t a =
                    reading ? s_entry_age(self, &link->streams[s], sub->confirmed[s] + 1, now_ns)
                            : 0;
                age = a > age ? a : age;
            }
        }
        s_row_json(json, self->config->node_id, true, sub->node, sub->endpoint,
                   sub->live     ? "live"
                   : sub->dealer ? "connecting"
                                 : "idle",
                   sub->sent, owed, age);
    }
    tern_json_raw(json, "]");
}

//  When LINK's peer was last heard from, on either of its two sessions.
static uint64_t s_link_seen(const p_link_t *link) {
    uint64_t seen = tern_peer_last_seen(link->fsm);
    return link->in_seen_ms > seen ? link->in_seen_ms : seen;
}

//  Which endpoints LINK may use and which one it uses now (or tries next):
//  local_node_id ships to node_id at endpoint_in_use; inbound_node_id ships
//  to us.
static void s_endpoints_json(const p_link_t *link, tern_json_t *json) {
    tern_json_key(json, "endpoints");
    tern_json_raw(json, "[");
    for (uint32_t e = 0; e < link->cfg->endpoint_count; e++) {
        tern_json_sep(json);
        tern_json_str(json, link->cfg->endpoints[e]);
    }
    tern_json_raw(json, "]");
    tern_json_key_str(json, "endpoint_in_use", p_link_endpoint(link));
}

static void s_peers_json(p_repl_t *self, tern_json_t *json) {
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
        p_link_t *link = &self->links[i];
        uint64_t lag_msgs, lag_ms;
        s_link_lag(self, link, last, reading, now_ns, &lag_msgs, &lag_ms);
        uint64_t seen = s_link_seen(link);
        tern_json_sep(json);
        tern_json_raw(json, "{");
        tern_json_key_str(json, "dc", link->cfg->name);
        tern_json_key_u64(json, "local_node_id", self->config->node_id);
        s_node_json(json, "node_id", link->node_known || link->in_node_known,
                    link->node_known ? link->node_id : link->in_node_id);
        s_node_json(json, "inbound_node_id", link->in_node_known, link->in_node_id);
        tern_json_key_str(json, "endpoint", link->cfg->endpoint);
        s_endpoints_json(link, json);
        tern_json_key_str(json, "state", tern_peer_state_name(tern_peer_state(link->fsm)));
        tern_json_key_u64(json, "lag_msgs", lag_msgs);
        tern_json_key_u64(json, "lag_ms", lag_ms);
        tern_json_key_u64(json, "last_seen_ms", seen);
        tern_json_key_u64(json, "last_seen_age_ms", seen ? now - seen : 0);
        tern_json_key_bool(json, "paused", link->paused);
        tern_json_key_bool(json, "inbound_live", p_link_inbound(self, link));
        tern_json_key_u64(json, "confirmed", s_link_confirmed(link));
        tern_json_key_bool(json, "clustered", link->clustered);
        s_links_json(self, link, reading, now_ns, lag_msgs, lag_ms, json);
        tern_json_key_u64(json, "sent", link->sent);
        tern_json_key_u64(json, "applied_position", link->applied);
        tern_json_key_str(json, "inbound_cursor", link->in_cursor);
        tern_json_key_u64(json, "inbound_lag_msgs",
                          link->sender_last > link->applied ? link->sender_last - link->applied
                                                            : 0);
        tern_json_key_u64(json, "received", link->received);
        tern_json_key_u64(json, "replays_dropped", link->replays);
        tern_json_key_u64(json, "acks_sent", link->acks_sent);
        tern_json_key_u64(json, "acks_received", link->acks_received);
        tern_json_key_u64(json, "lost", link->lost);
        tern_json_key_u64(json, "failures", tern_peer_failures(link->fsm));
        tern_json_key_u64(json, "failovers", tern_peer_failovers(link->fsm));
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
static tern_err_t s_admin_run(p_repl_t *self, unsigned op, const char *name, tern_json_t *json,
                              const char **reason) {
    if (op == TERN_ADMIN_PEERS) {
        s_peers_json(self, json);
        return TERN_OK;
    }
    if (op != TERN_ADMIN_PEERS_PAUSE && op != TERN_ADMIN_PEERS_RESUME) {
        *reason = "unknown admin operation on the replication endpoint";
        return TERN_EINVAL;
    }
    p_link_t *link = p_link_by_name(self, name);
    if (!link) {
        *reason = "no such peer";
        return TERN_ENOTFOUND;
    }
    bool pause = op == TERN_ADMIN_PEERS_PAUSE;
    link->paused = pause;
    p_link_event(self, link, pause ? TERN_PEER_PAUSE : TERN_PEER_RESUME);
    if (pause) {
        //  Isolate the inbound direction too: the peer backs off.
        p_sessions_end(self, link, NULL, TERN_EBUSY, "link paused");
    }
    zsys_info("repl: link to %s %s by the operator", name, pause ? "paused" : "resumed");
    tern_json_raw(json, "{");
    tern_json_key_str(json, "dc", name);
    tern_json_key_str(json, "state", tern_peer_state_name(tern_peer_state(link->fsm)));
    tern_json_key_bool(json, "paused", pause);
    tern_json_raw(json, "}");
    return TERN_OK;
}

//  The answer to `repl.map`, which a peer DC's repl actor asks of any node of
//  ours (tern_repl_route.c): lines `partitions P`, then `node ID ENDPOINT`
//  for each live node with a repl endpoint and `leader PT ID` for each led
//  partition. A single node answers `partitions 0`: it leads everything.
static void s_map_text(p_repl_t *self, tern_json_t *out) {
    tern_cluster_t *cluster = self->args->cluster;
    char line[320];
    uint32_t partitions = cluster ? tern_cluster_partitions(cluster) : 0;
    snprintf(line, sizeof line, "partitions %u\n", partitions);
    tern_json_raw(out, line);
    if (!cluster) {
        return;
    }
    tern_cluster_node_t *nodes = tern_alloc(S_MAP_NODES * sizeof *nodes);
    size_t count = tern_cluster_nodes(cluster, nodes, S_MAP_NODES);
    for (size_t i = 0; i < count && i < S_MAP_NODES; i++) {
        if (nodes[i].up && nodes[i].repl_endpoint[0]) {
            snprintf(line, sizeof line, "node %u %.255s\n", nodes[i].id, nodes[i].repl_endpoint);
            tern_json_raw(out, line);
        }
    }
    free(nodes);
    for (uint32_t pt = 0; pt < partitions; pt++) {
        tern_partmap_record_t rec;
        if (tern_cluster_record(cluster, pt, &rec) && rec.leader != TERN_NODE_NONE) {
            snprintf(line, sizeof line, "leader %u %u\n", pt, rec.leader);
            tern_json_raw(out, line);
        }
    }
}

//  ADMIN from ternctl on the replication endpoint itself, or `repl.map`
//  from a peer DC's repl actor.
void p_admin(p_repl_t *self, const uint8_t *rid, size_t rid_size, const tern_frame_t *frame) {
    char name[TERN_NAME_MAX + 1] = "";
    tern_admin_arg(frame, "name", name, sizeof name);
    const tern_admin_desc_t *desc = tern_admin_lookup(frame->name);
    unsigned op = desc && desc->actor == TERN_ADMIN_BY_REPL ? desc->op : TERN_ADMIN_OP_COUNT;
    tern_json_t json;
    tern_json_init(&json);
    const char *reason = "";
    tern_err_t rc = TERN_OK;
    if (streq(frame->name, TERN_REPL_MAP_OP)) {
        s_map_text(self, &json);
    } else {
        rc = s_admin_run(self, op, name, &json, &reason);
    }
    if (rc != TERN_OK) {
        p_send_error(self, rid, rid_size, frame->req_id, rc, reason);
        tern_json_free(&json);
        return;
    }
    tern_frame_t reply;
    tern_frame_init(&reply, TERN_CMD_REPLY);
    reply.req_id = frame->req_id;
    reply.payload = (const uint8_t *)json.data;
    reply.payload_size = json.len;
    p_send(self, self->router, rid, rid_size, &reply);
    tern_json_free(&json);
}

//  ADMIN a client sent to the client endpoint, forwarded by conn: answer it
//  and give it back to conn (which relays the answer and frees it).
void p_admin_item(p_repl_t *self, tern_repl_admin_t *item) {
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

//  Publishes the figures of `ternctl peers` for metrics (once a second).
void p_publish_stats(p_repl_t *self) {
    tern_repl_stats_t *stats = self->args->stats;
    if (!stats || tern_store_read_begin(self->reader) != TERN_OK) {
        return;
    }
    uint64_t last = self->outbox_last;
    tern_store_outbox_last(self->reader, &last);
    uint64_t now_ns = tern_now_ns();
    for (size_t i = 0; i < self->link_count; i++) {
        p_link_t *link = &self->links[i];
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
        atomic_store_explicit(&ps->failovers, tern_peer_failovers(link->fsm), memory_order_relaxed);
    }
    tern_store_read_end(self->reader);
    atomic_store_explicit(&stats->refused_version, self->refused_version, memory_order_relaxed);
    atomic_store_explicit(&stats->refused_node_id, self->refused_node_id, memory_order_relaxed);
    atomic_store_explicit(&stats->refused_unknown_dc, self->refused_unknown_dc,
                          memory_order_relaxed);
    atomic_store_explicit(&stats->looped, self->looped, memory_order_relaxed);
}
