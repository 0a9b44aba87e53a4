/*  tern_crepl_follow.c - crepl: the follower side.

    Part of the crepl actor (tern_crepl.c; state in tern_crepl_priv.h; the
    stream's state table is at the top of tern_crepl.c). For every partition
    where this node is a replica and another node leads, we send CREPL_SYNC
    to the leader (our topics of the partition with their last seq), apply
    its answer and then its live stream through the storer as in_dc
    tern_repl_batch_t items (records at the leader's seqs, truncations), and
    after each commit confirm the highest position durable here
    (CREPL_CONFIRM). The answer to a SYNC carries the SYNC's request id (our
    stream generation): a late answer to an older SYNC is dropped. Every
    frame is fenced by (pt, ep) against the view.
*/
#include "tern_crepl_priv.h"
#include <inttypes.h>
#include <string.h>

// ---------------------------------------------------------------------------
//  Links to leaders

static void s_link_open(c_repl_t *self, c_link_t *link, const char *endpoint) {
    zsock_destroy(&link->dealer);
    snprintf(link->endpoint, sizeof link->endpoint, "%s", endpoint);
    link->dealer = zsock_new(ZMQ_DEALER);
    if (!link->dealer) {
        return;
    }
    tern_node_sock_options(link->dealer, C_HWM, self->config->max_payload);
    //  Not ZMQ_IMMEDIATE: with it, libzmq 4.3 ends the pipe as soon as the
    //  TCP connection drops, also under a half-read RECORDS frame (header
    //  read, body not), and then aborts in fq.cpp (!_more) or blocks for
    //  good in the body's read (tools/chaos/zmq_immediate.c). So a SYNC or
    //  CONFIRM may queue for a leader that is gone: frames carry (pt, ep)
    //  and a stale one is refused there, and s_send_sync reopens a link
    //  that stayed silent, so that what queued does not pile up.
    link->seen_ms = tern_now_ms();
    zsock_set_reconnect_ivl(link->dealer, 100);
    if (zsock_connect(link->dealer, "%s", endpoint) != 0) {
        zsys_error("crepl: cannot connect to %s", endpoint);
        zsock_destroy(&link->dealer);
    }
}

//  Our DEALER to node NODE (opened on first use, reopened when its cluster
//  endpoint changed), or NULL.
static c_link_t *s_link(c_repl_t *self, uint32_t node) {
    tern_cluster_node_t info;
    if (!tern_cluster_node(self->cluster, node, &info) || !info.cluster_endpoint[0]) {
        return NULL;
    }
    c_link_t *link = NULL;
    for (size_t i = 0; i < self->link_count && !link; i++) {
        link = self->links[i].node == node ? &self->links[i] : NULL;
    }
    if (!link && self->link_count < C_LINKS_MAX) {
        link = &self->links[self->link_count++];
        memset(link, 0, sizeof *link);
        link->node = node;
    }
    if (link && (!link->dealer || !streq(link->endpoint, info.cluster_endpoint))) {
        s_link_open(self, link, info.cluster_endpoint);
    }
    return link && link->dealer ? link : NULL;
}

void c_links_close(c_repl_t *self) {
    for (size_t i = 0; i < self->link_count; i++) {
        zsock_destroy(&self->links[i].dealer);
    }
    self->link_count = 0;
}

// ---------------------------------------------------------------------------
//  Stream state

static void s_resync(c_repl_t *self, c_follow_t *f) {
    if (f->phase != C_F_IDLE) {
        atomic_fetch_add_explicit(&self->stats->resyncs, 1, memory_order_relaxed);
    }
    f->phase = C_F_IDLE;
    f->stream++;
    f->recv = 0;
    f->durable = 0;
    f->to_confirm = false; //  nothing of the old stream is confirmed
    f->sync_ms = 0;        //  the next timer turn sends SYNC
    f->ob_next = 0;        //  the leader sends the outbox part from its start
}

void c_follow_start(c_repl_t *self, uint32_t pt, const tern_partmap_record_t *rec) {
    c_follow_t *f = &self->follows[pt];
    s_resync(self, f);
    f->following = true;
    f->leader = rec->leader;
    f->epoch = rec->epoch;
    s_link(self, rec->leader);
}

void c_follow_stop(c_repl_t *self, uint32_t pt) {
    c_follow_t *f = &self->follows[pt];
    s_resync(self, f);
    f->following = false;
}

// ---------------------------------------------------------------------------
//  SYNC

typedef struct {
    c_repl_t *self; //  the actor
    uint32_t pt;    //  the partition
    char *text;     //  the payload being built (owned)
    size_t len;     //  used
    size_t cap;     //  allocated
} s_lines_t;

//  Appends `LAST_SEQ TOPIC` and the anchors `SEQ:MSG_ID` of our records at
//  LAST_SEQ, LAST_SEQ - 1, - 2, - 4, ... (those we still hold), so that the
//  leader finds where our copy stops matching its log in one round.
static bool s_add_line(const tern_topic_info_t *topic, void *arg) {
    s_lines_t *lines = arg;
    if (c_partition_of(lines->self, topic->name) != lines->pt) {
        return true;
    }
    if (lines->cap - lines->len < C_LINE_MAX) {
        lines->cap = lines->cap * 2 + C_LINE_MAX;
        lines->text = tern_realloc(lines->text, lines->cap);
    }
    char *out = lines->text + lines->len;
    size_t room = C_LINE_MAX, at = 0;
    at += (size_t)snprintf(out, room, "%" PRIu64 " %s", topic->last_seq, topic->name);
    for (uint64_t d = 0; d < topic->last_seq && at + 48 < room; d = d ? d * 2 : 1) {
        uint64_t seq = topic->last_seq - d;
        tern_frame_t rec;
        if (seq < topic->first_seq) {
            break; //  older records are gone here
        }
        if (tern_store_read(lines->self->reader, topic->id, seq, &rec) == TERN_OK) {
            at += (size_t)snprintf(out + at, room - at, " %" PRIu64 ":%" PRIu64, seq, rec.msg_id);
        }
    }
    out[at++] = '\n';
    lines->len += at;
    return true;
}

//  How long a leader may stay silent: C_SILENCE_MS and 4 heartbeats.
static uint64_t s_silence_ms(const c_repl_t *self) {
    return C_SILENCE_MS > 4 * self->hb_ms ? C_SILENCE_MS : 4 * self->hb_ms;
}

//  Sends CREPL_SYNC for PT to its leader. True when it went (queued for a
//  connection under way included). A link silent that long is opened
//  afresh first (linger 0: what queued for that leader is dropped).
static bool s_send_sync(c_repl_t *self, uint32_t pt, c_follow_t *f, uint64_t now) {
    c_link_t *link = s_link(self, f->leader);
    //  seen_ms may be after NOW (the link opened later in this turn): added,
    //  not subtracted, so that reads as "not silent", never as a wrap-around.
    if (link && link->seen_ms + s_silence_ms(self) < now) {
        char endpoint[sizeof link->endpoint];
        memcpy(endpoint, link->endpoint, sizeof endpoint);
        s_link_open(self, link, endpoint);
        link = link->dealer ? link : NULL;
    }
    if (!link || tern_store_read_begin(self->reader) != TERN_OK) {
        return false;
    }
    s_lines_t lines = {self, pt, NULL, 0, 0};
    tern_err_t rc = tern_store_topic_list(self->reader, s_add_line, &lines);
    tern_store_read_end(self->reader);
    int sent = -1;
    if (rc == TERN_OK) {
        tern_frame_t frame;
        tern_frame_init(&frame, TERN_CMD_CREPL_SYNC);
        frame.req_id = f->stream; //  its answer carries it back
        C_PT(&frame) = pt;
        C_EP(&frame) = f->epoch;
        frame.node_id = self->self_id;
        frame.seq = f->ob_next; //  the outbox part resumes there (tern_crepl_outbox.c)
        frame.payload = (const uint8_t *)lines.text;
        frame.payload_size = lines.len;
        sent = c_send(self, zsock_resolve(link->dealer), NULL, 0, &frame);
    }
    free(lines.text);
    return sent == 0;
}

void c_follow_timers(c_repl_t *self, uint64_t now) {
    uint64_t silence = s_silence_ms(self);
    for (uint32_t pt = 0; pt < self->partitions; pt++) {
        c_follow_t *f = &self->follows[pt];
        if (!f->following) {
            continue;
        }
        if (f->phase == C_F_SYNCING && f->sync_ms + C_SYNC_WAIT_MS < now) {
            s_resync(self, f); //  unanswered: ask again
        } else if (f->phase == C_F_LIVE && f->seen_ms + silence < now) {
            zsys_warning("crepl: partition %u: leader %u silent; syncing again", pt, f->leader);
            s_resync(self, f);
        }
        //  Not while records of this partition are at the storer (our last
        //  seqs would not count them), nor more often than every
        //  C_SYNC_RETRY_MS while the leader cannot be reached.
        if (f->phase != C_F_IDLE || f->inflight > 0 || now - f->sync_ms < C_SYNC_RETRY_MS) {
            continue;
        }
        f->sync_ms = now;
        if (s_send_sync(self, pt, f, now)) {
            f->phase = C_F_SYNCING;
            f->seen_ms = now;
        }
    }
}

// ---------------------------------------------------------------------------
//  Applying the stream

static tern_repl_batch_t *s_batch(c_repl_t *self) {
    if (!self->batch) {
        self->batch = tern_alloc(sizeof(tern_repl_batch_t));
        self->batch->in_dc = true;
    }
    return self->batch;
}

static void s_add_rec(c_repl_t *self, c_follow_t *f, tern_repl_rec_t *rec) {
    tern_repl_batch_t *batch = s_batch(self);
    if (batch->count == batch->cap) {
        batch->cap = batch->cap ? batch->cap * 2 : 256;
        batch->recs = tern_realloc(batch->recs, batch->cap * sizeof *batch->recs);
    }
    rec->stream = f->stream; //  the storer stops this stream at its first failure
    batch->recs[batch->count++] = rec;
    f->inflight++;
}

static void s_add_mark(c_repl_t *self, uint32_t pt, c_follow_t *f, uint64_t pos) {
    tern_repl_batch_t *batch = s_batch(self);
    if (batch->mark_count == batch->mark_cap) {
        batch->mark_cap = batch->mark_cap ? batch->mark_cap * 2 : 16;
        batch->marks = tern_realloc(batch->marks, batch->mark_cap * sizeof *batch->marks);
    }
    batch->marks[batch->mark_count++] = (tern_repl_mark_t){pt, f->epoch, pos, f->stream};
}

void c_flush_batch(c_repl_t *self) {
    if (!self->batch) {
        return;
    }
    tern_repl_batch_t *batch = self->batch;
    self->batch = NULL;
    self->batches_out++;
    if (tern_work_send(zsock_resolve(self->storer_sock), TERN_WORK_REPL, batch) != 0) {
        zsys_error("crepl: cannot reach the storer; %zu records dropped", batch->count);
        batch->err = TERN_ECLOSED; //  every stream in it syncs again
        c_batch_done(self, batch);
    }
}

static void s_confirm(c_repl_t *self, uint32_t pt, c_follow_t *f) {
    c_link_t *link = s_link(self, f->leader);
    if (!link) {
        return;
    }
    tern_frame_t frame;
    tern_frame_init(&frame, TERN_CMD_CREPL_CONFIRM);
    C_PT(&frame) = pt;
    C_EP(&frame) = f->epoch;
    frame.node_id = self->self_id;
    frame.position = f->durable;
    c_send(self, zsock_resolve(link->dealer), NULL, 0, &frame);
}

//  The answer to our SYNC stopped at the leader's budget (CAUGHT pos 0):
//  what came is applied in this stream's order, and once none of it is at
//  the storer any more (inflight 0), the next timer turn sends SYNC again
//  from our new last seqs, echoing OB_NEXT (CAUGHT's sq: where the outbox
//  part resumes). A new stream: frames of this answer that come late are
//  dropped. Not a resync (nothing was lost).
static void s_next_round(uint32_t pt, c_follow_t *f, uint64_t ob_next) {
    f->phase = C_F_IDLE;
    f->ob_next = ob_next;
    f->stream++;
    f->sync_ms = 0;
    f->rounds++;
    zsys_info("crepl: partition %u: catch-up round %" PRIu64 " from leader %u applied; "
              "syncing again for the rest",
              pt, f->rounds, f->leader);
}

//  One decoded frame REC of PT's stream F. True if the batch took REC.
static bool s_stream_frame(c_repl_t *self, uint32_t pt, c_follow_t *f, tern_repl_rec_t *rec) {
    tern_frame_t *frame = &rec->frame;
    bool answer = f->phase == C_F_SYNCING && frame->req_id == f->stream;
    if (answer) {
        //  The wait for an answer is a wait for silence: a leader that just
        //  took over drops a SYNC it cannot answer yet (its view is behind,
        //  or its own follower records are at its storer), so an unanswered
        //  SYNC goes again after C_SYNC_WAIT_MS, while a long catch-up that
        //  keeps arriving is never asked for twice.
        f->sync_ms = tern_now_ms();
    }
    switch (frame->cmd) {
        case TERN_CMD_CREPL_TRUNCATE:
            if (answer) {
                s_add_rec(self, f, rec);
                return true;
            }
            return false;
        case TERN_CMD_CREPL_CAUGHT:
            if (answer && frame->position == 0) {
                s_next_round(pt, f, frame->seq);
            } else if (answer) {
                f->phase = C_F_LIVE;
                f->rounds = 0;
                f->ob_next = 0;
                f->recv = frame->position;
                s_add_mark(self, pt, f, frame->position);
            }
            return false;
        case TERN_CMD_CREPL_GROUP: //  live group ops: a new group's OPEN takes a position
            if (frame->position == 0) {
                if (f->phase != C_F_LIVE) {
                    return false;
                }
                s_add_rec(self, f, rec);
                return true;
            }
            /* fall through */
        case TERN_CMD_CREPL_RECORD:
        case TERN_CMD_CREPL_TOPIC: //  a topic admin op: in the same order
            if (frame->position == 0 && answer) {
                s_add_rec(self, f, rec);
                return true;
            }
            if (frame->position == 0 || f->phase != C_F_LIVE || frame->position <= f->recv) {
                return false;
            }
            if (frame->position > f->recv + 1) {
                zsys_warning("crepl: partition %u: gap in the stream (%" PRIu64 " after %" PRIu64
                             "); syncing again",
                             pt, frame->position, f->recv);
                s_resync(self, f);
                return false;
            }
            f->recv = frame->position;
            s_add_rec(self, f, rec);
            s_add_mark(self, pt, f, frame->position);
            return true;
        case TERN_CMD_CREPL_OUTBOX: //  cross-DC outbox: no position (tern_crepl_outbox.c)
            if (answer || (f->phase == C_F_LIVE && frame->code == TERN_CREPL_OUTBOX_CONFIRMS)) {
                s_add_rec(self, f, rec);
                return true;
            }
            return false;
        case TERN_CMD_CREPL_GSTATE: //  group snapshot: part of the answer
            if (answer) {
                s_add_rec(self, f, rec);
                return true;
            }
            return false;
        case TERN_CMD_CREPL_HEARTBEAT:
            if (f->phase == C_F_LIVE && frame->position > f->recv) {
                s_resync(self, f); //  records were lost on the way
            } else if (f->phase == C_F_LIVE) {
                s_confirm(self, pt, f);
            }
            return false;
        default:
            return false;
    }
}

//  The stream FRAME (from LINK) belongs to, fenced against the view and our
//  stream of its partition, or NULL (dropped).
static c_follow_t *s_fence(c_repl_t *self, c_link_t *link, const tern_frame_t *frame) {
    uint32_t pt = C_PT(frame);
    tern_partmap_record_t view;
    if (pt >= self->partitions || !tern_cluster_record(self->cluster, pt, &view)) {
        return NULL;
    }
    tern_partmap_epoch_t fence = tern_partmap_fence(view.epoch, C_EP(frame));
    if (fence == TERN_PARTMAP_EPOCH_STALE) {
        c_count_stale(self);
        return NULL;
    }
    c_follow_t *f = &self->follows[pt];
    if (fence == TERN_PARTMAP_EPOCH_AHEAD || !f->following || f->leader != link->node ||
        f->epoch != C_EP(frame)) {
        return NULL; //  ahead: the view catches up, then we sync
    }
    f->seen_ms = tern_now_ms();
    return f;
}

//  A record to decode a frame into: a spent one when there is one. Each
//  replicated record was a calloc and a free of ~1.5 KB (its frame), ~700
//  of the follower crepl's ~5,600 instructions per record (callgrind,
//  docs/performance.md "Cluster"); the frame is initialised by the decode.
static tern_repl_rec_t *s_rec_new(c_repl_t *self) {
    tern_repl_rec_t *rec;
    if (self->rec_pool_count) {
        rec = self->rec_pool[--self->rec_pool_count];
        memset(&rec->result, 0, sizeof rec->result);
        rec->stream = 0;
    } else {
        rec = tern_alloc(sizeof *rec);
    }
    zmq_msg_init(&rec->hdr);
    zmq_msg_init(&rec->body);
    return rec;
}

//  Takes *REC_P (nulled) back: its messages closed, kept for s_rec_new.
static void s_rec_put(c_repl_t *self, tern_repl_rec_t **rec_p) {
    tern_repl_rec_t *rec = *rec_p;
    if (!rec) {
        return;
    }
    *rec_p = NULL;
    zmq_msg_close(&rec->hdr);
    zmq_msg_close(&rec->body);
    if (!self->rec_pool) {
        self->rec_pool = tern_alloc(C_REC_POOL * sizeof *self->rec_pool);
    }
    if (self->rec_pool_count < C_REC_POOL) {
        self->rec_pool[self->rec_pool_count++] = rec;
    } else {
        free(rec);
    }
}

void c_rec_pool_free(c_repl_t *self) {
    while (self->rec_pool_count) {
        free(self->rec_pool[--self->rec_pool_count]);
    }
    free(self->rec_pool);
    self->rec_pool = NULL;
}

//  A CREPL_RECORDS frame OUTER of stream F: each entry goes through the
//  stream as if it came alone, holding a reference to OUTER's payload (no
//  copy). A malformed entry, or one of another partition or epoch, ends the
//  frame there: the next record or heartbeat shows the gap and we sync again.
static void s_records(c_repl_t *self, c_follow_t *f, tern_repl_rec_t *outer,
                      const tern_limits_t *limits) {
    const uint8_t *data = zmq_msg_data(&outer->body);
    size_t size = zmq_msg_size(&outer->body), at = 0;
    uint32_t pt = C_PT(&outer->frame);
    for (;;) {
        tern_repl_rec_t *rec = s_rec_new(self);
        zmq_msg_copy(&rec->body, &outer->body);
        tern_err_t rc = tern_records_next(data, size, &at, limits, &rec->frame);
        if (rc == TERN_OK &&
            (C_PT(&rec->frame) != pt || C_EP(&rec->frame) != C_EP(&outer->frame))) {
            rc = TERN_ESTATE;
        }
        if (rc != TERN_OK) {
            if (rc != TERN_ENOTFOUND) {
                zsys_warning("crepl: partition %u: bad CREPL_RECORDS entry at byte %zu: %s", pt, at,
                             tern_strerror(rc));
            }
            s_rec_put(self, &rec);
            return;
        }
        if (!s_stream_frame(self, pt, f, rec)) {
            s_rec_put(self, &rec);
        }
    }
}

//  Fences REC (from LINK) and applies it to its stream. True if the batch
//  took REC.
static bool s_handle_frame(c_repl_t *self, c_link_t *link, tern_repl_rec_t *rec,
                           const tern_limits_t *limits) {
    c_follow_t *f = s_fence(self, link, &rec->frame);
    if (f && rec->frame.cmd == TERN_CMD_CREPL_RECORDS) {
        s_records(self, f, rec, limits);
        return false;
    }
    return f && s_stream_frame(self, C_PT(&rec->frame), f, rec);
}

void c_handle_dealer(c_repl_t *self, c_link_t *link) {
    void *sock = zsock_resolve(link->dealer);
    tern_limits_t limits = {.max_payload = self->config->max_payload};
    tern_repl_rec_t *rec = NULL;
    for (int n = 0; n < C_DRAIN_MAX; n++) {
        if (!rec) {
            rec = s_rec_new(self);
        }
        if (zmq_msg_recv(&rec->hdr, sock, ZMQ_DONTWAIT) < 0) {
            break;
        }
        link->seen_ms = tern_now_ms();
        bool has_body = false;
        if (zmq_msg_more(&rec->hdr)) {
            has_body = zmq_msg_recv(&rec->body, sock, 0) >= 0;
            while (zmq_msg_more(&rec->body)) { //  extra frames: drop the message
                zmq_msg_close(&rec->body);
                zmq_msg_init(&rec->body);
                zmq_msg_recv(&rec->body, sock, 0);
            }
        }
        tern_err_t rc =
            tern_frame_decode(&rec->frame, zmq_msg_data(&rec->hdr), zmq_msg_size(&rec->hdr),
                              has_body ? zmq_msg_data(&rec->body) : NULL,
                              has_body ? zmq_msg_size(&rec->body) : 0, &limits);
        if (rc == TERN_OK && s_handle_frame(self, link, rec, &limits)) {
            rec = NULL; //  the batch owns it
            continue;
        }
        if (rc != TERN_OK) {
            zsys_warning("crepl: bad frame from node %u: %s", link->node, tern_strerror(rc));
        }
        s_rec_put(self, &rec);
    }
    s_rec_put(self, &rec);
    c_flush_batch(self);
}

// ---------------------------------------------------------------------------
//  After the commit

//  The records of BATCH: in-flight counts, figures, and the partitions
//  whose apply failed (their streams sync again).
static void s_batch_records(c_repl_t *self, tern_repl_batch_t *batch) {
    for (size_t i = 0; i < batch->count; i++) {
        tern_repl_rec_t *rec = batch->recs[i];
        uint32_t pt = C_PT(&rec->frame);
        c_follow_t *f = pt < self->partitions ? &self->follows[pt] : NULL;
        if (!f) {
            continue;
        }
        f->inflight--;
        tern_err_t err = batch->err != TERN_OK ? batch->err : rec->result.err;
        bool truncate = rec->frame.cmd == TERN_CMD_CREPL_TRUNCATE;
        if (rec->frame.cmd == TERN_CMD_CREPL_GROUP || rec->frame.cmd == TERN_CMD_CREPL_GSTATE) {
            if (c_group_done(self, pt, rec, err)) {
                s_resync(self, f);
            }
            continue;
        }
        if (rec->frame.cmd == TERN_CMD_CREPL_TOPIC || rec->frame.cmd == TERN_CMD_CREPL_OUTBOX) {
            if (err != TERN_OK) {
                zsys_warning("crepl: partition %u: %s op %u on %s failed (%s); syncing again", pt,
                             rec->frame.cmd == TERN_CMD_CREPL_TOPIC ? "topic" : "outbox",
                             rec->frame.code, rec->frame.topic, tern_errname(err));
                s_resync(self, f);
            }
            continue;
        }
        if (err != TERN_OK) {
            if (f->phase != C_F_IDLE) {
                zsys_warning("crepl: partition %u: applying %s %s seq %" PRIu64
                             " failed (%s); syncing again",
                             pt, truncate ? "truncate of" : "record of", rec->frame.topic,
                             rec->frame.seq, tern_errname(err));
            }
            s_resync(self, f);
        } else if (truncate) {
            atomic_fetch_add_explicit(&self->stats->truncated, rec->result.seq,
                                      memory_order_relaxed);
        } else if (!rec->result.duplicate) {
            atomic_fetch_add_explicit(&self->stats->applied, 1, memory_order_relaxed);
        }
    }
}

void c_batch_done(c_repl_t *self, tern_repl_batch_t *batch) {
    self->batches_out--;
    s_batch_records(self, batch);
    //  Marks in order: a partition's durable position moves to its last
    //  mark of a stream that is still current. Confirmed once per drain of
    //  the inbox (c_confirm_flush), not per batch: the storer folds the
    //  batches queued while it commits into one commit and returns them
    //  together, and the last position covers the earlier ones (one CONFIRM,
    //  one wake-up of the leader, per partition and commit).
    for (size_t i = 0; i < batch->mark_count; i++) {
        tern_repl_mark_t *m = &batch->marks[i];
        c_follow_t *f = &self->follows[m->pt];
        if (batch->err != TERN_OK && f->stream == m->stream) {
            s_resync(self, f);
        } else if (f->following && f->stream == m->stream && f->epoch == m->ep &&
                   m->pos > f->durable) {
            f->durable = m->pos;
            f->to_confirm = true;
            self->confirms_pending = true;
        }
    }
    for (size_t i = 0; i < batch->count; i++) {
        s_rec_put(self, &batch->recs[i]);
    }
    tern_repl_batch_destroy(&batch);
}

void c_confirm_flush(c_repl_t *self) {
    if (!self->confirms_pending) {
        return;
    }
    self->confirms_pending = false;
    for (uint32_t pt = 0; pt < self->partitions; pt++) {
        c_follow_t *f = &self->follows[pt];
        if (f->to_confirm && f->following) {
            s_confirm(self, pt, f);
        }
        f->to_confirm = false;
    }
}
