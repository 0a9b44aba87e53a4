/*  tern_repl_apply.c - repl: the inbound direction, peers on our ROUTER.

    Part of the repl actor (tern_repl.c; state in tern_repl_priv.h). A
    peer's DEALER connects to our ROUTER: we check its REPL_HELLO (version,
    known DC, unique node id), answer REPL_WELCOME with our inbound cursor,
    and put each drain's records and ack-state changes into one storer batch
    with the new cursor (one LMDB transaction). When the storer hands the
    batch back committed, the cursors move and the origins get REPL_CONFIRM.
    ternctl's HELLO and ADMIN on this endpoint are answered here too.
*/
#include "tern_repl_priv.h"
#include "tern_auth.h"
#include "tern_partition.h"
#include <inttypes.h>
#include <string.h>

//  Sets inbound cursor NAME to exactly POSITION in the batch being filled
//  (p_batch_pos only moves a cursor forward).
static void s_batch_cursor_set(p_repl_t *self, const char *name, uint64_t position) {
    tern_repl_batch_t *batch = p_batch(self);
    if (batch->inbound_count == TERN_PEERS_MAX) {
        //  No room for another name: it goes into a batch of its own.
        p_flush_batch(self);
        batch = p_batch(self);
    }
    for (size_t i = 0; i < batch->inbound_count; i++) {
        if (streq(batch->inbound[i].name, name)) {
            batch->inbound[i].position = position;
            return;
        }
    }
    p_batch_pos(batch->inbound, &batch->inbound_count, name, position);
}

//  Chooses LINK's inbound cursor for the sender of HELLO. Outbox positions
//  are numbered in the sender's own data dir, so the cursor is kept per
//  (DC, store identity), stored as "DC/IDENTITY": a node moved with its
//  data dir resumes where it was; another data dir (a standby, a wiped
//  node) starts from 0, and what it resends that we hold already is dropped
//  by msg_id. A sender without an identity (older ternd) keeps the DC's
//  cursor "DC", as before. The first identity seen takes over a non-zero
//  "DC" (the upgrade: it is most likely the node that was shipping), which
//  is zeroed in the same batch so that no second identity takes it too.
//  SESSION gets it; the link shows it as its latest.
static void s_in_cursor(p_repl_t *self, p_link_t *link, p_session_t *session,
                        const tern_frame_t *hello) {
    char name[TERN_REPL_CURSOR_MAX + 1];
    bool identified = (hello->fields & TERN_F_NAME) && hello->name[0];
    if (identified) {
        snprintf(name, sizeof name, "%s/%.*s", link->cfg->name, TERN_STORE_IDENTITY_LEN,
                 hello->name);
    } else {
        snprintf(name, sizeof name, "%s", link->cfg->name);
    }
    snprintf(session->cursor, sizeof session->cursor, "%s", name);
    //  The same sender again (or over another DEALER): our cursors in memory
    //  are the newest.
    for (size_t i = 0; i < S_SESSIONS_MAX; i++) {
        p_session_t *other = &self->sessions[i];
        if (other != session && other->link == link && streq(other->cursor, name)) {
            session->applied = link->applied = other->applied;
            session->queued = link->queued = other->queued;
            snprintf(link->in_cursor, sizeof link->in_cursor, "%s", name);
            return;
        }
    }
    if (streq(name, link->in_cursor)) {
        session->applied = link->applied;
        session->queued = link->queued;
        return;
    }
    uint64_t pos = 0, legacy = 0;
    if (tern_store_read_begin(self->reader) == TERN_OK) {
        //  A batch of this cursor may still be on its way to the disk: then
        //  the sender resends a little, dropped by msg_id.
        tern_store_inbound_get(self->reader, name, &pos);
        tern_store_inbound_get(self->reader, link->cfg->name, &legacy);
        tern_store_read_end(self->reader);
    }
    if (streq(link->in_cursor, link->cfg->name)) {
        legacy = link->queued; //  "DC" is in use: memory is ahead of the disk
    }
    if (identified && !link->legacy_taken) {
        link->legacy_taken = true;
        if (pos == 0 && legacy > 0) {
            pos = legacy;
            s_batch_cursor_set(self, name, pos);
            s_batch_cursor_set(self, link->cfg->name, 0);
            zsys_info("repl: dc %s store %s takes over the cursor of dc %s (%" PRIu64 ")",
                      link->cfg->name, hello->name, link->cfg->name, pos);
        }
    }
    zsys_info("repl: inbound from %s now from cursor %s (was %s)", link->cfg->name, name,
              link->in_cursor);
    snprintf(link->in_cursor, sizeof link->in_cursor, "%s", name);
    link->applied = link->queued = link->sender_last = pos;
    session->applied = session->queued = pos;
}

//  A slot for a new session from RID: its old one (a reconnect from the same
//  socket identity), a free one, or the one silent longest.
static p_session_t *s_session_new(p_repl_t *self, const uint8_t *rid, size_t rid_size) {
    p_session_t *slot = p_session_by_rid(self, rid, rid_size);
    for (size_t i = 0; i < S_SESSIONS_MAX && !slot; i++) {
        if (!self->sessions[i].link) {
            slot = &self->sessions[i];
        }
    }
    for (size_t i = 0; i < S_SESSIONS_MAX && !slot; i++) {
        p_session_t *s = &self->sessions[i];
        if (!slot || s->seen_ms < slot->seen_ms) {
            slot = s;
        }
    }
    free(slot->applied_pt);
    memset(slot, 0, sizeof *slot);
    memcpy(slot->rid, rid, rid_size);
    slot->rid_size = rid_size;
    return slot;
}

static void s_handle_hello(p_repl_t *self, const uint8_t *rid, size_t rid_size,
                           const tern_frame_t *frame) {
    char why[200];
    if (frame->proto_version < TERN_PROTO_MIN_VERSION) {
        self->refused_version++;
        snprintf(why, sizeof why, "replication protocol version %u not supported (%u..%u)",
                 frame->proto_version, TERN_PROTO_MIN_VERSION, TERN_PROTO_VERSION);
        zsys_error("repl: refused dc %s node %u: %s", frame->dc, frame->node_id, why);
        p_send_error(self, rid, rid_size, frame->req_id, TERN_EVERSION, why);
        return;
    }
    p_link_t *link = p_link_by_name(self, frame->dc);
    if (!link || streq(frame->dc, self->config->dc)) {
        self->refused_unknown_dc++;
        snprintf(why, sizeof why, "unknown dc %s (not a configured peer of dc %s)", frame->dc,
                 self->config->dc);
        zsys_error("repl: refused node %u: %s", frame->node_id, why);
        p_send_error(self, rid, rid_size, frame->req_id, TERN_EDENIED, why);
        return;
    }
    //  Node ids are unique across every node of every DC. A peer DC may
    //  ship from several of its nodes over time (failover, a moved node),
    //  so only ours and the ids seen from *other* DCs are refused.
    bool dup = frame->node_id == self->config->node_id;
    for (size_t i = 0; i < self->link_count && !dup; i++) {
        p_link_t *other = &self->links[i];
        dup = other != link && ((other->node_known && other->node_id == frame->node_id) ||
                                (other->in_node_known && other->in_node_id == frame->node_id));
    }
    if (dup) {
        self->refused_node_id++;
        snprintf(why, sizeof why, "duplicate node id %u (dc %s)", frame->node_id, frame->dc);
        zsys_error("repl: refused dc %s: %s", frame->dc, why);
        p_send_error(self, rid, rid_size, frame->req_id, TERN_EEXIST, why);
        return;
    }
    if (link->paused) {
        p_send_error(self, rid, rid_size, frame->req_id, TERN_EBUSY, "link paused");
        return;
    }
    p_session_t *session = s_session_new(self, rid, rid_size);
    session->link = link;
    session->node_id = frame->node_id;
    session->seen_ms = tern_now_ms();
    session->gen = ++self->session_gen;
    //  Rule 4 of docs/replication.md "Clustered DCs": when either DC is a
    //  cluster there is no cursor; a session confirms what it committed
    //  itself, per stream of the sender (its partitions), and replays are
    //  dropped by msg_id.
    session->cursorless =
        self->args->cluster || (frame->code & TERN_REPL_HELLO_CLUSTER) == TERN_REPL_HELLO_CLUSTER;
    if (session->cursorless) {
        snprintf(session->cursor, sizeof session->cursor, "%s", link->cfg->name);
    } else {
        s_in_cursor(self, link, session, frame);
    }
    link->in_node_id = frame->node_id;
    link->in_node_known = true;
    link->in_seen_ms = tern_now_ms();
    tern_frame_t reply;
    tern_frame_init(&reply, TERN_CMD_REPL_WELCOME);
    reply.req_id = frame->req_id;
    reply.proto_version =
        frame->proto_version < TERN_PROTO_VERSION ? frame->proto_version : TERN_PROTO_VERSION;
    reply.node_id = self->config->node_id;
    snprintf(reply.dc, sizeof reply.dc, "%s", self->config->dc);
    reply.position = session->queued;
    if (self->args->cluster) {
        //  We keep no cursor that counts: resume from your shipping position.
        snprintf(reply.name, sizeof reply.name, "cluster");
        reply.fields |= TERN_F_NAME;
    }
    p_send(self, self->router, rid, rid_size, &reply);
    zsys_info("repl: inbound from %s (node %u) accepted; resuming after position %" PRIu64,
              frame->dc, frame->node_id, session->queued);
    //  It is back: our link to it need not wait out its backoff.
    p_link_event(self, link, TERN_PEER_WAKE);
}

static tern_repl_rec_t *s_rec_new(void) {
    tern_repl_rec_t *rec = tern_alloc(sizeof *rec);
    zmq_msg_init(&rec->hdr);
    zmq_msg_init(&rec->body);
    return rec;
}

//  Adds REC (a record or an ack-state change at its position) from SESSION
//  to the batch.
static void s_batch_add(p_repl_t *self, p_session_t *session, tern_repl_rec_t *rec) {
    p_link_t *link = session->link;
    tern_repl_batch_t *batch = p_batch(self);
    if (batch->count == batch->cap) {
        batch->cap = batch->cap ? batch->cap * 2 : 256;
        batch->recs = tern_realloc(batch->recs, batch->cap * sizeof *batch->recs);
    }
    batch->recs[batch->count++] = rec;
    rec->stream = session->gen;
    if (session->cursorless) {
        return; //  p_batch_done confirms by session and stream
    }
    p_batch_pos(batch->inbound, &batch->inbound_count, session->cursor, rec->frame.position);
    if (rec->frame.position > session->queued) {
        session->queued = rec->frame.position;
    }
    if (streq(session->cursor, link->in_cursor) && session->queued > link->queued) {
        link->queued = session->queued;
    }
}

//  Receives the rest of a message whose routing id was read: the header
//  into rec->hdr and the payload, if any, into rec->body (further frames
//  are dropped). False if there is no header.
static bool s_recv_rec(p_repl_t *self, tern_repl_rec_t *rec, bool *has_body) {
    *has_body = false;
    int more = 0;
    size_t more_size = sizeof more;
    zmq_getsockopt(self->router, ZMQ_RCVMORE, &more, &more_size);
    if (!more || zmq_msg_recv(&rec->hdr, self->router, 0) < 0) {
        return false;
    }
    if (zmq_msg_more(&rec->hdr)) {
        zmq_msg_recv(&rec->body, self->router, 0);
        *has_body = true;
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
    return true;
}

//  In a clustered DC a record or ack-state change is applied only by the
//  leader of its topic's partition here (docs/replication.md, "Clustered
//  DCs"): the sender learns our map and sends it there. True if this node
//  leads it now; else answers ERROR TERN_ENOTLEADER naming the leader's repl
//  endpoint when known, and drops the rest of this session's stream (the
//  sender reconnects, to the leader, and resends from what it has confirmed).
static bool s_leads_topic(p_repl_t *self, p_session_t *session, const tern_frame_t *frame) {
    p_link_t *link = session->link;
    tern_cluster_t *cluster = self->args->cluster;
    uint32_t pt =
        tern_partition_of(frame->topic, strlen(frame->topic), tern_cluster_partitions(cluster));
    if (tern_cluster_leads(cluster, pt, NULL)) {
        return true;
    }
    char why[TERN_REASON_MAX + 1];
    tern_partmap_record_t rec;
    tern_cluster_node_t node;
    if (tern_cluster_record(cluster, pt, &rec) && rec.leader != TERN_NODE_NONE &&
        rec.leader != self->config->node_id && tern_cluster_node(cluster, rec.leader, &node) &&
        node.repl_endpoint[0]) {
        snprintf(why, sizeof why, "partition %u is led by node %u at %.180s", pt, rec.leader,
                 node.repl_endpoint);
    } else {
        tern_cluster_not_leader(cluster, pt, why, sizeof why);
    }
    //  Once per session: the caller skips a refused one's records unread.
    zsys_info("repl: %s from %s node %u refused: %s", frame->topic, link->cfg->name,
              session->node_id, why);
    p_send_error(self, session->rid, session->rid_size, frame->req_id, TERN_ENOTLEADER, why);
    session->refused = true;
    return false;
}

//  REPL_CONFIRM of SESSION's stream PT: the highest position of it the
//  session committed.
static void s_confirm(p_repl_t *self, p_session_t *session, uint32_t pt) {
    tern_frame_t frame;
    tern_frame_init(&frame, TERN_CMD_REPL_CONFIRM);
    frame.position = pt < session->npt ? session->applied_pt[pt] : 0;
    frame.partition = pt;
    p_send(self, self->router, session->rid, session->rid_size, &frame);
}

//  Raises SESSION's committed position of stream PT (< S_MAP_PARTITIONS,
//  checked by s_handle_stream) to POS. The array has room for every stream
//  a peer DC may have: its size never comes from the wire.
static void s_applied_pt(p_session_t *session, uint32_t pt, uint64_t pos) {
    if (!session->applied_pt) {
        session->applied_pt = tern_alloc(S_MAP_PARTITIONS * sizeof *session->applied_pt);
    }
    if (pt >= session->npt) {
        session->npt = pt + 1;
    }
    if (pos > session->applied_pt[pt]) {
        session->applied_pt[pt] = pos;
    }
    if (pos > session->applied) {
        session->applied = pos;
    }
}

//  REPL_RECORD, REPL_HEARTBEAT or REPL_ACKSTATE from LINK's peer (after its
//  handshake). Returns true if REC went into the batch (the batch owns it).
static bool s_handle_stream(p_repl_t *self, p_session_t *session, tern_repl_rec_t *rec) {
    tern_frame_t *frame = &rec->frame;
    p_link_t *link = session->link;
    if (frame->cmd == TERN_CMD_REPL_HEARTBEAT) {
        link->sender_last = frame->position;
        if (session->cursorless) {
            for (uint32_t pt = 0; pt < session->npt || pt == 0; pt++) {
                if (pt == 0 || session->applied_pt[pt]) {
                    s_confirm(self, session, pt);
                }
            }
        } else {
            p_send_pos(self, self->router, session->rid, session->rid_size, TERN_CMD_REPL_CONFIRM,
                       session->applied);
        }
        return false;
    }
    if (frame->partition >= S_MAP_PARTITIONS) {
        //  No DC has that many partitions: a broken or hostile sender.
        char why[TERN_REASON_MAX + 1];
        snprintf(why, sizeof why, "partition %u out of range (a DC has at most %u)",
                 frame->partition, S_MAP_PARTITIONS);
        zsys_warning("repl: %s node %u: %s; session ended", link->cfg->name, session->node_id, why);
        p_sessions_end(self, NULL, session, TERN_EINVAL, why);
        return false;
    }
    //  A clustered DC keeps no cursor that could skip (rule 4 of
    //  docs/replication.md "Clustered DCs"): a sender resends from its own
    //  replicated shipping position, and what we hold is dropped by msg_id.
    bool skip = !session->cursorless;
    if (session->refused || (self->args->cluster && !s_leads_topic(self, session, frame))) {
        return false;
    }
    if (frame->cmd == TERN_CMD_REPL_ACKSTATE) {
        if (skip && frame->position <= session->queued) {
            link->replays++;
            return false;
        }
        //  Ack state is shipped only by the DC where it changed.
        snprintf(frame->origin, sizeof frame->origin, "%s", link->cfg->name);
        s_batch_add(self, session, rec);
        link->acks_received++;
        return true;
    }
    if (streq(frame->origin, self->config->dc)) {
        self->looped++; //  never apply our own records back
    } else if (!streq(frame->origin, link->cfg->name)) {
        self->looped++; //  only the origin ships its records
    } else if (skip && frame->position <= session->queued) {
        link->replays++;
    } else {
        frame->fields |= TERN_F_ORIGIN;
        s_batch_add(self, session, rec);
        return true;
    }
    return false;
}

//  HELLO from ternctl on the replication endpoint (peers, peers pause/resume).
static void s_welcome_ctl(p_repl_t *self, const uint8_t *rid, size_t rid_size,
                          const tern_frame_t *frame) {
    tern_frame_t reply;
    tern_frame_init(&reply, TERN_CMD_WELCOME);
    reply.req_id = frame->req_id;
    reply.proto_version = TERN_PROTO_VERSION;
    reply.node_id = self->config->node_id;
    snprintf(reply.dc, sizeof reply.dc, "%s", self->config->dc);
    reply.heartbeat_ms = frame->heartbeat_ms ? frame->heartbeat_ms : 15000;
    reply.max_payload = (uint32_t)self->config->max_payload;
    p_send(self, self->router, rid, rid_size, &reply);
}

//  One decoded message REC from RID (RC: how it decoded). Returns true if
//  REC went into the batch (the batch owns it).
static bool s_handle_frame(p_repl_t *self, const uint8_t *rid, size_t rid_size,
                           tern_repl_rec_t *rec, tern_err_t rc) {
    tern_frame_t *frame = &rec->frame;
    p_session_t *session = p_session_by_rid(self, rid, rid_size);
    if (session) {
        session->seen_ms = session->link->in_seen_ms = tern_now_ms();
    }
    if (rc != TERN_OK) {
        p_send_error(self, rid, rid_size, frame->req_id, rc, "bad frame");
    } else if (frame->cmd == TERN_CMD_REPL_HELLO) {
        if (tern_auth_peer_ok(self->config, &rec->hdr, frame->dc)) {
            s_handle_hello(self, rid, rid_size, frame);
        } else {
            //  With CURVE a key may only speak for its own name.
            p_send_error(self, rid, rid_size, frame->req_id, TERN_EDENIED,
                         "this key is not the peer it claims to be");
        }
    } else if (frame->cmd == TERN_CMD_REPL_RECORD || frame->cmd == TERN_CMD_REPL_HEARTBEAT ||
               frame->cmd == TERN_CMD_REPL_ACKSTATE) {
        if (session) {
            return s_handle_stream(self, session, rec);
        }
        p_send_error(self, rid, rid_size, frame->req_id, TERN_ESTATE,
                     "no replication handshake on this connection");
    } else if (frame->cmd == TERN_CMD_HELLO) {
        s_welcome_ctl(self, rid, rid_size, frame);
    } else if (frame->cmd == TERN_CMD_ADMIN) {
        p_admin(self, rid, rid_size, frame);
    } else if (frame->cmd != TERN_CMD_HEARTBEAT && frame->cmd != TERN_CMD_BYE) {
        p_send_error(self, rid, rid_size, frame->req_id, TERN_ECOMMAND,
                     "command not accepted on the replication endpoint");
    }
    return false;
}

void p_handle_router(void *actor, void *unused) {
    (void)unused;
    p_repl_t *self = (p_repl_t *)actor;
    tern_repl_rec_t *rec = NULL;
    tern_limits_t limits = {.max_payload = self->config->max_payload};
    for (int n = 0; n < S_DRAIN_MAX; n++) {
        uint8_t rid[TERN_RID_MAX];
        int rid_size = zmq_recv(self->router, rid, sizeof rid, ZMQ_DONTWAIT);
        if (rid_size < 0) {
            break;
        }
        if (!rec) {
            rec = s_rec_new();
        }
        bool has_body;
        if (!s_recv_rec(self, rec, &has_body)) {
            continue;
        }
        tern_err_t rc =
            tern_frame_decode(&rec->frame, zmq_msg_data(&rec->hdr), zmq_msg_size(&rec->hdr),
                              has_body ? zmq_msg_data(&rec->body) : NULL,
                              has_body ? zmq_msg_size(&rec->body) : 0, &limits);
        if (s_handle_frame(self, rid, (size_t)rid_size, rec, rc)) {
            rec = NULL; //  the batch owns it
        } else {
            zmq_msg_close(&rec->hdr);
            zmq_msg_close(&rec->body);
            zmq_msg_init(&rec->hdr);
            zmq_msg_init(&rec->body);
        }
    }
    tern_repl_rec_destroy(&rec);
    p_flush_batch(self);
}

//  Cursor NAME committed up to POS (ERR TERN_OK) or not at all: moves it in
//  the link that shows it and in every session on it, and confirms to them
//  or, after a failed commit, ends them (the senders resend from what they
//  have confirmed).
static void s_cursor_done(p_repl_t *self, const char *name, uint64_t pos, tern_err_t err) {
    for (size_t i = 0; i < self->link_count; i++) {
        p_link_t *link = &self->links[i];
        if (streq(link->in_cursor, name)) {
            if (err != TERN_OK) {
                link->queued = link->applied;
            } else if (pos > link->applied) {
                link->applied = pos;
            }
        }
    }
    for (size_t i = 0; i < S_SESSIONS_MAX; i++) {
        p_session_t *session = &self->sessions[i];
        if (!session->link || !streq(session->cursor, name)) {
            continue;
        }
        if (err != TERN_OK) {
            //  Nothing of it is durable (or, in a cluster, not in the ISR).
            zsys_error("repl: applying records from %s failed: %s; the link restarts",
                       session->link->cfg->name, tern_strerror(err));
            p_sessions_end(self, NULL, session, err, "apply failed");
            continue;
        }
        if (pos > session->applied) {
            session->applied = pos;
        }
        p_send_pos(self, self->router, session->rid, session->rid_size, TERN_CMD_REPL_CONFIRM,
                   session->applied);
    }
}

//  The cursorless session whose records carry GEN (rec->stream), or NULL
//  (it ended since).
static p_session_t *s_session_of(p_repl_t *self, uint64_t gen) {
    for (size_t k = 0; k < S_SESSIONS_MAX; k++) {
        p_session_t *session = &self->sessions[k];
        if (session->link && session->cursorless && session->gen == gen) {
            return session;
        }
    }
    return NULL;
}

//  Cursorless sessions (see s_handle_hello) confirm the highest position
//  each committed itself, per sender stream (positions on one session and
//  stream only grow: a sender never resends on the same session); a failed
//  batch (not durable, or not in the ISR here: tern_crepl_inbound.c) ends
//  EVERY session it had records from, so that none of them confirms a later
//  position past the failed ones; their senders resend.
static void s_sessions_done(p_repl_t *self, tern_repl_batch_t *batch) {
    //  At most one entry per record: the list is kept in SELF and grown, not
    //  allocated per batch.
    if (self->touched_cap < batch->count + 1) {
        self->touched_cap = batch->count + 1;
        self->touched = tern_realloc(self->touched, self->touched_cap * sizeof *self->touched);
    }
    p_touched_t *touched = self->touched;
    size_t ntouched = 0;
    p_session_t *owner = NULL; //  of the records of generation GEN (a session's come together)
    uint64_t gen = 0;
    for (size_t i = 0; i < batch->count; i++) {
        tern_repl_rec_t *rec = batch->recs[i];
        if (i == 0 || rec->stream != gen) {
            gen = rec->stream;
            owner = s_session_of(self, gen);
        }
        if (!owner) {
            continue;
        }
        uint32_t pt = rec->frame.partition;
        if (batch->err == TERN_OK) {
            s_applied_pt(owner, pt, rec->frame.position);
        }
        size_t t = ntouched; //  from the newest: a stream's records come together
        while (t > 0 && (touched[t - 1].session != owner || touched[t - 1].pt != pt)) {
            t--;
        }
        if (t == 0) {
            touched[ntouched++] = (p_touched_t){owner, pt};
        }
    }
    for (size_t t = 0; t < ntouched; t++) {
        p_session_t *session = touched[t].session;
        if (!session->link) {
            continue; //  ended above
        }
        if (batch->err != TERN_OK) {
            zsys_warning("repl: records from %s node %u not confirmed here: %s; it resends",
                         session->link->cfg->name, session->node_id, tern_strerror(batch->err));
            p_sessions_end(self, NULL, session, batch->err, "not confirmed");
            continue;
        }
        if (session->applied > session->link->applied) {
            session->link->applied = session->applied;
        }
        s_confirm(self, session, touched[t].pt);
    }
}

//  Committed (or failed) as one transaction: move the cursors, confirm.
void p_batch_done(p_repl_t *self, tern_repl_batch_t *batch) {
    s_sessions_done(self, batch);
    for (size_t i = 0; i < batch->inbound_count; i++) {
        s_cursor_done(self, batch->inbound[i].name, batch->inbound[i].position, batch->err);
    }
    if (batch->err == TERN_OK) {
        for (size_t i = 0; i < batch->count; i++) {
            tern_repl_rec_t *rec = batch->recs[i];
            p_link_t *link = p_link_by_name(self, rec->frame.origin);
            if (link && rec->frame.cmd == TERN_CMD_REPL_RECORD && rec->result.err == TERN_OK) {
                //  A cursorless session's replay is dropped here, by msg_id.
                link->received += !rec->result.duplicate;
                link->replays += rec->result.duplicate;
            }
        }
    }
    tern_repl_batch_destroy(&batch);
}
