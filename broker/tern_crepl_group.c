/*  tern_crepl_group.c - crepl: group state replication inside the DC.

    Part of the crepl actor (tern_crepl.c; state in tern_crepl_priv.h), plus
    two functions the storer calls on its own thread. Route persists group
    state as tern_op_t batches (deliver, ack, nack, dead, replay, seek,
    reset, drop, purge, open). In a cluster:

    - Live. After a commit the storer copies the committed ops, with their
      topic ids, into the commit's NOTICE (tern_crepl_group_collect). The
      NOTICE reaches crepl right behind the commit's COMMITTED, whose
      records crepl ships; c_group_ship then (with a deferred flush: at
      the commit's SYNCED, c_notices_synced, since the storer hands over
      before it commits) queues the ops of every topic
      this node leads as CREPL_GROUP frames (topic NAME, since ids are
      node-local; payload a msgpack list, tern_gops_encode), and
      they go to the partition's synced followers at their commit
      boundary: after the pending CREPL_RECORDS of the partition (records
      are batched per drain) and before its next record (c_ship_add flushes
      both first), or at the end of the drain (c_group_flush): on the same
      stream, after the records they refer to, before a later commit's
      (a topic deleted and re-created by later commits is not met by older
      ops). OPEN, SEEK and RESET also go as the seq the leader's commit
      resolved (tern_crepl_group_collect), so no op depends on the
      follower's log end. Nothing is queued outside the inbox handler,
      so a SYNC answer never overtakes a queued frame.
      Group frames take no stream position: a publish's acknowledgement
      never waits for group state, and group state waits for nothing. So
      group state replication is asynchronous: a failover may redeliver
      what was acked within the replication lag (at-least-once holds; a
      consumer's ACK is not confirmed to it by the broker anyway).
      Except a new group: a frame with an OPEN (the storer collects only
      those that created a group) takes the next position, and the
      commit's NOTICE waits for the ISR to confirm it (c_held_need), so
      route answers the SUBSCRIBE that created the group only once a
      failover keeps it (tern_route_group.c, r_handle_sub).
    - A peer DC's ack-state change (REPL_ACKSTATE, applied by msg_id on
      the partition leader) joins the commit's ops as an ack or dead op
      with aux TERN_GOP_AUX_PEER (tern_crepl_group_collect_ackstate): the
      follower runs it by seq the way the leader ran it, so a failover
      does not redeliver what another DC acked.
    - Catch-up. A follower's SYNC is answered with the records, then, for
      every topic of the partition, CREPL_GSTATE NAMES (the follower drops
      groups the leader lacks) and one GSTATE GROUP per group (lane
      cursors, counters, pending and DLQ entries: it REPLACES the
      follower's state of that group; GSTATE MORE frames carry the rest of
      a large group's entries), then CAUGHT (c_group_snapshot, from the
      same read snapshot as the records).
    - Ops committed around the snapshot (their NOTICE not yet here when the
      SYNC was answered) arrive again live after it, in order. Applying an
      op is idempotent or overwriting (storage/tern_store_gstate.c says
      why per op), so the re-applied suffix converges.
    - The follower applies both through the storer, in stream order, in the
      batch of the records before them (tern_crepl_group_queue), by topic
      name; an op on a topic, seq or group the follower lacks is skipped,
      counted (group_skipped) and logged, never asserted.

    A group frame the leader cannot send drops that follower out of the
    live stream like a record does; its next heartbeat tells it (a position
    past its own), and it syncs again, snapshot included.
*/
#include "tern_crepl_priv.h"
#include <inttypes.h>
#include <string.h>

_Static_assert(TERN_OP_OPEN == (int)TERN_GOP_OPEN && TERN_OP_DELIVER == (int)TERN_GOP_DELIVER &&
                   TERN_OP_ACK == (int)TERN_GOP_ACK && TERN_OP_NACK == (int)TERN_GOP_NACK &&
                   TERN_OP_DEAD == (int)TERN_GOP_DEAD && TERN_OP_REPLAY == (int)TERN_GOP_REPLAY &&
                   TERN_OP_SEEK == (int)TERN_GOP_SEEK && TERN_OP_RESET == (int)TERN_GOP_RESET &&
                   TERN_OP_DROP == (int)TERN_GOP_DROP && TERN_OP_PURGE == (int)TERN_GOP_PURGE,
               "tern_gop_type_t mirrors tern_op_type_t");

#define S_ENTRY_WIRE 300 //  bytes one snapshot entry takes at most on the wire
#define S_OP_WIRE    360 //  bytes one group op takes at most on the wire

// ---------------------------------------------------------------------------
//  The storer's side

//  A new, zeroed gop of TOPIC_ID at the end of NOTICE's gops.
static tern_gop_t *s_gop_add(tern_notice_t *notice, uint32_t topic_id) {
    size_t n = notice->gop_count;
    if (n == 0 || (n >= 16 && (n & (n - 1)) == 0)) { //  16, 32, 64...: doubled
        size_t cap = n ? n * 2 : 16;
        notice->gops = tern_realloc(notice->gops, cap * sizeof *notice->gops);
        notice->gop_topics = tern_realloc(notice->gop_topics, cap * sizeof(uint32_t));
    }
    notice->gop_topics[n] = topic_id;
    notice->gop_count = n + 1;
    tern_gop_t *g = &notice->gops[n];
    memset(g, 0, sizeof *g);
    return g;
}

void tern_crepl_group_collect(tern_notice_t *notice, const tern_ops_t *ops) {
    for (size_t i = 0; i < ops->count; i++) {
        const tern_op_t *op = &ops->items[i];
        bool at = op->type == TERN_OP_OPEN || op->type == TERN_OP_SEEK || op->type == TERN_OP_RESET;
        if (op->err != TERN_OK || (at && op->start_seq == 0)) {
            continue; //  it changed nothing here (an OPEN of an existing group)
        }
        tern_gop_t *g = s_gop_add(notice, op->topic_id);
        g->type = op->type;
        //  OPEN, SEEK and RESET go as the seq this commit resolved their
        //  start to, never as the rule (NEW, TIME, FIRST): a follower
        //  resolving NEW against its own log may already hold later records
        //  and would start past messages the leader's group still owes.
        g->aux = op->type == TERN_OP_DELIVER                           ? op->priority
                 : op->type == TERN_OP_ACK || op->type == TERN_OP_NACK ? op->cause
                 : at                                                  ? TERN_START_SEQ
                                                                       : op->start;
        g->count = op->delivery_count;
        g->seq = op->seq;
        g->value = at ? op->start_seq : op->due_ms;
        memcpy(g->group, op->group, sizeof g->group);
        //  A DELIVER's consumer, a DEAD's reason (tern_op_t keeps them apart).
        const char *reason = op->type == TERN_OP_DELIVER ? op->consumer
                             : op->reason                ? op->reason
                                                         : "";
        size_t rlen = strnlen(reason, sizeof g->reason - 1);
        memcpy(g->reason, reason, rlen);
        g->reason[rlen] = 0;
        //  Followers write the same ack-state outbox entry (cross-DC on).
        g->ob = op->type == TERN_OP_ACK || op->type == TERN_OP_DEAD ? op->ob : 0;
    }
}

//  The follower runs the same step by seq (st_ackstate_seq): the lane cursor
//  moved past a message not delivered here, a DLQ entry acked; a plain ack or
//  dead op would leave a follower's cursor behind and redeliver after a
//  failover. No `ob`: an inbound change is not shipped cross-DC again.
void tern_crepl_group_collect_ackstate(tern_notice_t *notice, const tern_repl_rec_t *rec) {
    const tern_frame_t *f = &rec->frame;
    if (rec->result.err != TERN_OK || rec->result.seq == 0 || rec->result.topic_id == 0) {
        return;
    }
    tern_gop_t *g = s_gop_add(notice, rec->result.topic_id);
    g->type = f->code == TERN_CMD_TERM ? TERN_GOP_DEAD : TERN_GOP_ACK;
    g->aux = TERN_GOP_AUX_PEER;
    g->seq = rec->result.seq;
    snprintf(g->group, sizeof g->group, "%s", f->group);
    tern_repl_ackstate_reason(f, g->reason, sizeof g->reason);
}

//  A follower: the leader's ack-state outbox entry of OP (a gop of TOPIC in
//  partition PT), at the leader's position.
static void s_queue_ackstate(const tern_gop_t *op, const char *topic, uint32_t pt,
                             tern_store_batch_t *batch) {
    tern_outbox_entry_t e;
    memset(&e, 0, sizeof e);
    e.partition = pt;
    e.position = op->ob;
    e.is_ackstate = true;
    e.seq = op->seq;
    e.op = op->type == TERN_GOP_DEAD ? TERN_CMD_TERM : TERN_CMD_ACK;
    memcpy(e.group, op->group, sizeof e.group);
    tern_store_batch_outbox_put(batch, topic, &e);
}

static void s_name_add(const char *name, void *arg) {
    zlistx_add_end((zlistx_t *)arg, (void *)name);
}

//  A GSTATE NAMES (or NAMES_PART) frame: the groups of the topic the leader
//  has, in the frame's range of names (after `g`, up to the last listed
//  for a NAMES_PART).
static void s_queue_names(tern_repl_rec_t *rec, tern_store_batch_t *batch) {
    const tern_frame_t *f = &rec->frame;
    zlistx_t *names = zlistx_new();
    zlistx_set_duplicator(names, (zlistx_duplicator_fn *)strdup);
    zlistx_set_destructor(names, (zlistx_destructor_fn *)zstr_free);
    rec->result.err = tern_gnames_decode(f->payload, f->payload_size, s_name_add, names);
    if (rec->result.err == TERN_OK) {
        size_t count = zlistx_size(names), i = 0;
        const char **list = tern_alloc((count ? count : 1) * sizeof *list);
        for (const char *name = zlistx_first(names); name; name = zlistx_next(names)) {
            list[i++] = name;
        }
        const char *after = (f->fields & TERN_F_GROUP) && f->group[0] ? f->group : NULL;
        bool part = f->code == TERN_CREPL_GSTATE_NAMES_PART;
        tern_store_batch_gstate_prune(batch, f->topic, list, count, after,
                                      part && count ? list[count - 1] : NULL, NULL);
        free(list);
    }
    zlistx_destroy(&names);
}

//  Where tern_gops_decode hands the ops of one CREPL_GROUP frame.
typedef struct {
    tern_store_batch_t *batch; //  the storer's batch
    const char *topic;         //  the frame's topic
    uint32_t pt;               //  its partition
    uint64_t *skipped;         //  the record's result seq
} c_gops_to_t;

static void s_gop_queue(const tern_gop_t *op, void *arg) {
    c_gops_to_t *to = arg;
    tern_store_batch_group_apply(to->batch, to->topic, op, to->skipped);
    if (op->ob && (op->type == TERN_GOP_ACK || op->type == TERN_GOP_DEAD)) {
        s_queue_ackstate(op, to->topic, to->pt, to->batch);
    }
}

void tern_crepl_group_queue(tern_repl_rec_t *rec, tern_store_batch_t *batch) {
    const tern_frame_t *f = &rec->frame;
    if (f->cmd == TERN_CMD_CREPL_GROUP) {
        c_gops_to_t to = {batch, f->topic, f->partition, &rec->result.seq};
        rec->result.err = tern_gops_decode(f->payload, f->payload_size, s_gop_queue, &to);
    } else if (f->code == TERN_CREPL_GSTATE_NAMES || f->code == TERN_CREPL_GSTATE_NAMES_PART) {
        s_queue_names(rec, batch);
    } else if (f->code == TERN_CREPL_GSTATE_GROUP || f->code == TERN_CREPL_GSTATE_MORE) {
        tern_gstate_t state;
        rec->result.err = tern_gstate_decode(f->payload, f->payload_size, &state);
        if (rec->result.err == TERN_OK) {
            tern_store_batch_gstate_put(batch, f->topic, &state, f->code == TERN_CREPL_GSTATE_GROUP,
                                        &rec->result.seq);
        }
        tern_gstate_clear(&state);
    } else {
        rec->result.err = TERN_EINVAL; //  a newer leader's kind: never guess
    }
}

// ---------------------------------------------------------------------------
//  The leader's side: live ops

//  Entries (or ops) that fit one frame under cluster peers' max_payload.
static size_t s_per_frame(c_repl_t *self, size_t wire, size_t most) {
    uint64_t room = self->config->max_payload > 4096 ? self->config->max_payload - 2048 : 2048;
    size_t n = (size_t)(room / wire);
    return n == 0 ? 1 : n < most ? n : most;
}

//  One queued CREPL_GROUP frame: sent at the end of the drain.
struct c_gframe_t {
    uint32_t pt;                    //  partition
    uint64_t epoch;                 //  our leadership it was made in
    char topic[TERN_TOPIC_MAX + 1]; //  the topic
    uint8_t *payload;               //  encoded ops (owned)
    size_t size;                    //  bytes
    uint64_t pos;                   //  its stream position (it opens a group), or 0
    struct c_gframe_t *next;        //  FIFO link
};

//  True when one of the COUNT OPS opens a group (the storer collects only
//  the OPENs that created one, tern_crepl_group_collect).
static bool s_opens(const tern_gop_t *ops, size_t count) {
    for (size_t i = 0; i < count; i++) {
        if (ops[i].type == TERN_GOP_OPEN) {
            return true;
        }
    }
    return false;
}

//  Queues COUNT ops of TOPIC as CREPL_GROUP frames, if we lead its
//  partition. Not sent at once: records of this and earlier commits may
//  still wait to be shipped in this drain, and a follower must apply them
//  first. They go before the partition's next record (c_ship_add), or at
//  the end of the drain after its records: at their commit boundary.
//  A frame that opens a group takes the next stream position, like a
//  record: the commit's NOTICE (with the OPEN's result, on which route
//  answers the SUBSCRIBE) then waits in HELD until the ISR confirmed it,
//  so a failover right after the answer keeps the group (and its start).
static void s_ship_run(c_repl_t *self, const char *topic, const tern_gop_t *ops, size_t count,
                       c_held_t *held) {
    uint32_t pt = c_partition_of(self, topic);
    c_lead_t *lead = &self->leads[pt];
    if (!lead->leading) {
        return;
    }
    size_t per = s_per_frame(self, S_OP_WIRE, 256);
    for (size_t at = 0; at < count; at += per) {
        size_t n = count - at < per ? count - at : per, cap = n * S_OP_WIRE + 64;
        c_gframe_t *gf = tern_alloc(sizeof *gf);
        if (s_opens(ops + at, n)) {
            gf->pos = c_next_pos(self, lead, tern_now_ms());
            c_need_t *need = c_held_need(self, held, pt);
            need->pos = gf->pos > need->pos ? gf->pos : need->pos;
        }
        gf->payload = tern_alloc_raw(cap);
        if (tern_gops_encode(ops + at, n, gf->payload, cap, &gf->size) != TERN_OK) {
            zsys_error("crepl: partition %u: cannot encode group ops of %s", pt, topic);
            free(gf->payload);
            free(gf);
            continue;
        }
        gf->pt = pt;
        gf->epoch = lead->epoch;
        lead->gqueued = true;
        snprintf(gf->topic, sizeof gf->topic, "%s", topic);
        if (self->gframes_tail) {
            self->gframes_tail->next = gf;
        } else {
            self->gframes = gf;
        }
        self->gframes_tail = gf;
    }
    atomic_fetch_add_explicit(&self->stats->group_ops, count, memory_order_relaxed);
}

//  Sends GF to its partition's synced followers (if we still lead it in
//  its epoch) and frees it.
static void s_gsend(c_repl_t *self, c_gframe_t *gf) {
    c_lead_t *lead = &self->leads[gf->pt];
    if (lead->leading && lead->epoch == gf->epoch) {
        tern_frame_t frame;
        tern_frame_init(&frame, TERN_CMD_CREPL_GROUP);
        C_PT(&frame) = gf->pt;
        C_EP(&frame) = gf->epoch;
        snprintf(frame.topic, sizeof frame.topic, "%s", gf->topic);
        frame.fields |= TERN_F_TOPIC | TERN_F_PAYLOAD;
        frame.payload = gf->payload;
        frame.payload_size = gf->size;
        frame.position = gf->pos;
        //  Encoded once for all followers, in its own buffer (self->buf may
        //  hold a record header c_ship_add is adding); the payload goes to
        //  ZeroMQ without a copy. A follower we cannot send to leaves the
        //  live stream; its next heartbeat names a position past ours, so it
        //  syncs again.
        c_ship_frame(self, lead, &frame, gf->payload, gf->size);
        gf->payload = NULL;
    }
    free(gf->payload);
    free(gf);
}

void c_group_flush(c_repl_t *self) {
    while (self->gframes) {
        c_gframe_t *gf = self->gframes;
        self->gframes = gf->next;
        self->leads[gf->pt].gqueued = false;
        s_gsend(self, gf);
    }
    self->gframes_tail = NULL;
}

void c_group_flush_pt(c_repl_t *self, uint32_t pt) {
    c_gframe_t **link = &self->gframes, *prev = NULL;
    while (*link) {
        c_gframe_t *gf = *link;
        if (gf->pt != pt) {
            prev = gf;
            link = &gf->next;
            continue;
        }
        *link = gf->next;
        if (self->gframes_tail == gf) {
            self->gframes_tail = prev;
        }
        s_gsend(self, gf);
    }
    self->leads[pt].gqueued = false;
}

void c_group_ship(c_repl_t *self, tern_notice_t *notice, c_held_t *held) {
    size_t count = notice->gop_count;
    if (count > 0 && tern_store_read_begin(self->reader) == TERN_OK) {
        //  Runs of ops on one topic, in commit order.
        for (size_t i = 0, j; i < count; i = j) {
            for (j = i + 1; j < count && notice->gop_topics[j] == notice->gop_topics[i]; j++) {
            }
            tern_topic_info_t info;
            if (tern_store_topic_get_id(self->reader, notice->gop_topics[i], &info) == TERN_OK) {
                s_ship_run(self, info.name, notice->gops + i, j - i, held);
            }
        }
        tern_store_read_end(self->reader);
    }
    free(notice->gops);
    free(notice->gop_topics);
    notice->gops = NULL;
    notice->gop_topics = NULL;
    notice->gop_count = 0;
}

// ---------------------------------------------------------------------------
//  The leader's side: the snapshot in a SYNC answer

typedef struct {
    c_repl_t *self;         //  the actor
    const uint8_t *rid;     //  the follower
    size_t rid_size;        //  its length
    tern_frame_t frame;     //  the GSTATE frame being sent (pt, ep, req_id, topic set)
    uint8_t *buf;           //  encode buffer (owned)
    size_t cap;             //  its size
    size_t per;             //  entries per frame
    tern_gentry_t *entries; //  the group's pending, then DLQ entries (owned)
    size_t count;           //  used
    size_t size;            //  allocated
    size_t npending;        //  pending entries among them
    zlistx_t *groups;       //  tern_group_info_t * of the topic (owned copies)
    uint32_t pt;            //  the partition
    zlistx_t *topics;       //  topic names of the partition (owned copies)
} s_snap_t;

static bool s_topic_each(const tern_topic_info_t *topic, void *arg) {
    s_snap_t *snap = arg;
    if (c_partition_of(snap->self, topic->name) == snap->pt) {
        zlistx_add_end(snap->topics, (void *)topic->name);
    }
    return true;
}

static bool s_group_each(const tern_group_info_t *group, void *arg) {
    s_snap_t *snap = arg;
    tern_group_info_t *copy = tern_alloc(sizeof *copy);
    *copy = *group;
    zlistx_add_end(snap->groups, copy);
    return true;
}

static bool s_entry_each(const tern_entry_t *entry, void *arg) {
    s_snap_t *snap = arg;
    if (snap->count == snap->size) {
        snap->size = snap->size ? snap->size * 2 : 64;
        snap->entries = tern_realloc(snap->entries, snap->size * sizeof *snap->entries);
    }
    tern_gentry_t *e = &snap->entries[snap->count++];
    e->seq = entry->seq;
    e->due_ms = entry->due_ms;
    e->count = entry->delivery_count;
    e->priority = entry->priority;
    memcpy(e->reason, entry->reason, sizeof e->reason);
    return true;
}

//  Encodes and sends one GSTATE frame of CODE with payload LEN bytes.
static int s_snap_send(s_snap_t *snap, uint32_t code, size_t len) {
    snap->frame.code = code;
    snap->frame.payload = snap->buf;
    snap->frame.payload_size = len;
    return c_send(snap->self, snap->self->router, snap->rid, snap->rid_size, &snap->frame);
}

//  GROUP's state as GSTATE GROUP, its further entries as GSTATE MORE.
static int s_snap_group(s_snap_t *snap, const tern_group_info_t *group) {
    uint32_t topic_id = group->topic_id;
    snap->count = 0;
    if (tern_store_pending_list(snap->self->reader, topic_id, group->name, s_entry_each, snap) ||
        (snap->npending = snap->count,
         tern_store_dlq_list(snap->self->reader, topic_id, group->name, s_entry_each, snap))) {
        return -1;
    }
    tern_gstate_t state = {.delivered = group->delivered,
                           .redelivered = group->redelivered,
                           .acked = group->acked,
                           .nacked = group->nacked,
                           .created_ns = group->created_ns};
    snprintf(state.group, sizeof state.group, "%s", group->name);
    memcpy(state.lane_next, group->lane_next, sizeof state.lane_next);
    size_t at = 0;
    do {
        size_t n = snap->count - at < snap->per ? snap->count - at : snap->per;
        //  This frame's slice: pending entries first, then DLQ entries.
        size_t end = at + n;
        size_t pend_end = end < snap->npending ? end : snap->npending;
        state.pending = snap->entries + at;
        state.npending = at < pend_end ? pend_end - at : 0;
        size_t dead_at = at > snap->npending ? at : snap->npending;
        state.dead = snap->entries + dead_at;
        state.ndead = end > dead_at ? end - dead_at : 0;
        size_t len = 0;
        if (tern_gstate_encode(&state, snap->buf, snap->cap, &len) != TERN_OK ||
            s_snap_send(snap, at == 0 ? TERN_CREPL_GSTATE_GROUP : TERN_CREPL_GSTATE_MORE, len)) {
            return -1;
        }
        at = end;
    } while (at < snap->count);
    return 0;
}

static int s_name_cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

//  The topic's group NAMES (COUNT) in name order, as many frames as they
//  need: NAMES_PART frames, each naming in `g` the last name of the one
//  before, then a final NAMES (the follower prunes per range).
static int s_snap_names(s_snap_t *snap, const char **names, size_t count) {
    qsort(names, count, sizeof *names, s_name_cmp);
    size_t per = s_per_frame(snap->self, TERN_NAME_MAX + 8, snap->cap / (TERN_NAME_MAX + 8));
    int rc = 0;
    size_t at = 0;
    do {
        size_t n = count - at < per ? count - at : per, len = 0;
        if (at > 0) {
            snprintf(snap->frame.group, sizeof snap->frame.group, "%s", names[at - 1]);
            snap->frame.fields |= TERN_F_GROUP;
        }
        bool last = at + n == count;
        rc = tern_gnames_encode(names + at, n, snap->buf, snap->cap, &len) == TERN_OK
                 ? s_snap_send(snap, last ? TERN_CREPL_GSTATE_NAMES : TERN_CREPL_GSTATE_NAMES_PART,
                               len)
                 : -1;
        at += n;
    } while (rc == 0 && at < count);
    snap->frame.fields &= ~(uint32_t)TERN_F_GROUP; //  GROUP frames carry none
    snap->frame.group[0] = 0;
    return rc;
}

//  One topic: NAMES, then each group.
static int s_snap_topic(s_snap_t *snap, const char *name) {
    tern_topic_info_t info;
    if (tern_store_topic_get(snap->self->reader, name, &info) != TERN_OK) {
        return 0; //  gone meanwhile: the catch-up deleted it there too
    }
    snprintf(snap->frame.topic, sizeof snap->frame.topic, "%s", name);
    zlistx_purge(snap->groups);
    if (tern_store_group_list(snap->self->reader, info.id, s_group_each, snap) != TERN_OK) {
        return -1;
    }
    size_t count = zlistx_size(snap->groups), i = 0;
    const char **names = tern_alloc((count ? count : 1) * sizeof *names);
    for (tern_group_info_t *g = zlistx_first(snap->groups); g; g = zlistx_next(snap->groups)) {
        names[i++] = g->name;
    }
    int rc = s_snap_names(snap, names, count);
    free(names);
    for (tern_group_info_t *g = zlistx_first(snap->groups); g && rc == 0;
         g = zlistx_next(snap->groups)) {
        rc = s_snap_group(snap, g);
    }
    return rc;
}

int c_group_snapshot(c_repl_t *self, const uint8_t *rid, size_t rid_size, uint32_t pt,
                     uint64_t epoch, uint64_t req_id) {
    s_snap_t snap = {.self = self, .rid = rid, .rid_size = rid_size, .pt = pt};
    snap.per = s_per_frame(self, S_ENTRY_WIRE, 512);
    //  Room for a full frame of entries, or for the names of many groups.
    snap.cap =
        snap.per * S_ENTRY_WIRE + 4096 > 128 * 1024 ? snap.per * S_ENTRY_WIRE + 4096 : 128 * 1024;
    snap.buf = tern_alloc(snap.cap);
    snap.topics = zlistx_new();
    snap.groups = zlistx_new();
    zlistx_set_duplicator(snap.topics, (zlistx_duplicator_fn *)strdup);
    zlistx_set_destructor(snap.topics, (zlistx_destructor_fn *)zstr_free);
    zlistx_set_destructor(snap.groups, (zlistx_destructor_fn *)zstr_free);
    tern_frame_init(&snap.frame, TERN_CMD_CREPL_GSTATE);
    snap.frame.req_id = req_id;
    C_PT(&snap.frame) = pt;
    C_EP(&snap.frame) = epoch;
    snap.frame.fields |= TERN_F_TOPIC | TERN_F_PAYLOAD;
    int rc = tern_store_topic_list(self->reader, s_topic_each, &snap) == TERN_OK ? 0 : -1;
    for (const char *name = zlistx_first(snap.topics); name && rc == 0;
         name = zlistx_next(snap.topics)) {
        rc = s_snap_topic(&snap, name);
    }
    zlistx_destroy(&snap.topics);
    zlistx_destroy(&snap.groups);
    free(snap.entries);
    free(snap.buf);
    return rc;
}

// ---------------------------------------------------------------------------
//  The follower's side, after the commit

bool c_group_done(c_repl_t *self, uint32_t pt, const tern_repl_rec_t *rec, tern_err_t err) {
    if (err != TERN_OK) {
        if (err != TERN_ESTATE) { //  TERN_ESTATE: the stream stopped already, and said why
            zsys_warning("crepl: partition %u: group state of %s not applied (%s); syncing again",
                         pt, rec->frame.topic, tern_errname(err));
        }
        return true; //  the next snapshot puts it right
    }
    if (rec->result.seq > 0) {
        atomic_fetch_add_explicit(&self->stats->group_skipped, rec->result.seq,
                                  memory_order_relaxed);
        zsys_warning("crepl: partition %u: %" PRIu64 " group ops or entries of %s skipped: "
                     "this replica lacks their topic, message or group",
                     pt, rec->result.seq, rec->frame.topic);
    }
    return false;
}
