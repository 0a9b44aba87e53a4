/*  tern_store_group.c - groups and their delivery state: open, seek,
    delete; deliver, ack, nack, dead; group and pending reads.

    A group's durable state is its record (one lane cursor per priority,
    counters; cached per transaction by tern_store_batch.c), its pending
    entries (delivered, unacked: delivery count, lane, due time) and its
    DLQ (tern_store_dlq.c). The route actor keeps the live view in memory and
    queues each change here through the storer's batch; every change writes
    its history event (tern_store_trace.c) in the same transaction. A peer's
    ack or TERM (tern_store_repl.c) goes through the same ack and dead steps.
*/
#include "tern_store_int.h"

/* ------------------------------------------------------------------------
    Queueing
   ------------------------------------------------------------------------ */

void tern_store_batch_group_open(tern_store_batch_t *self, uint32_t topic_id, const char *name,
                                 tern_start_t start, uint64_t start_value, tern_err_t *result_err,
                                 uint64_t *start_out) {
    st_op_t *op = st_group_op(self, OP_GROUP_OPEN, topic_id, name, start_value);
    op->u32 = (uint32_t)start;
    op->err_out = result_err;
    op->count_out = start_out;
}

void tern_store_batch_group_delete(tern_store_batch_t *self, uint32_t topic_id, const char *name,
                                   tern_err_t *result_err) {
    st_op_t *op = st_group_op(self, OP_GROUP_DELETE, topic_id, name, 0);
    op->err_out = result_err;
}

void tern_store_batch_group_seek(tern_store_batch_t *self, uint32_t topic_id, const char *name,
                                 tern_start_t start, uint64_t start_value, tern_err_t *result_err,
                                 uint64_t *start_out) {
    st_op_t *op = st_group_op(self, OP_GROUP_SEEK, topic_id, name, start_value);
    op->u32 = (uint32_t)start;
    op->err_out = result_err;
    op->count_out = start_out;
}

void tern_store_batch_deliver(tern_store_batch_t *self, uint32_t topic_id, const char *group,
                              uint64_t seq, const tern_delivery_t *delivery) {
    st_op_t *op = st_group_op(self, OP_DELIVER, topic_id, group, seq);
    op->priority = delivery->priority;
    op->u32 = delivery->delivery_count;
    op->b = delivery->due_ms;
    if (delivery->consumer && *delivery->consumer) {
        op->reason = tern_strndup(delivery->consumer, TERN_TRACE_DETAIL_MAX);
    }
}

void tern_store_batch_ack(tern_store_batch_t *self, uint32_t topic_id, const char *group,
                          uint64_t seq, tern_trace_type_t event) {
    st_op_t *op = st_group_op(self, OP_ACK, topic_id, group, seq);
    op->u32 = (uint32_t)event;
}

void tern_store_batch_nack(tern_store_batch_t *self, uint32_t topic_id, const char *group,
                           uint64_t seq, uint64_t due_ms, tern_trace_type_t event) {
    st_op_t *op = st_group_op(self, OP_NACK, topic_id, group, seq);
    op->b = due_ms;
    op->u32 = (uint32_t)event;
}

void tern_store_batch_dead(tern_store_batch_t *self, uint32_t topic_id, const char *group,
                           uint64_t seq, uint32_t delivery_count, const char *reason) {
    st_op_t *op = st_group_op(self, OP_DEAD, topic_id, group, seq);
    op->u32 = delivery_count;
    if (reason && *reason) {
        op->reason = tern_strndup(reason, TERN_REASON_MAX);
    }
}

/* ------------------------------------------------------------------------
    Open, seek, delete
   ------------------------------------------------------------------------ */

//  Where a group starting at START/VALUE begins on topic T (see
//  tern_store_batch_group_open) into *SEQ; *ERR TERN_ERANGE for a bad START.
static int s_start_seq(st_txn_t *ctx, st_cached_t *t, tern_start_t start, uint64_t value,
                       uint64_t *seq, tern_err_t *err) {
    int rc = 0;
    switch (start) {
        case TERN_START_FIRST:
            *seq = t->topic.first_seq;
            break;
        case TERN_START_NEW:
            *seq = t->topic.last_seq + 1;
            break;
        case TERN_START_SEQ:
            *seq = value ? value : 1;
            break;
        case TERN_START_TIME:
            rc = st_seq_at_time(ctx->txn, ctx->dbi[S_LOG], (uint32_t)t->topic.id,
                                t->topic.first_seq, t->topic.last_seq, value, seq);
            break;
        default:
            *err = TERN_ERANGE;
            break;
    }
    return rc;
}

int st_op_group_open(st_txn_t *ctx, st_op_t *op) {
    tern_err_t *err = s_err_out(op);
    *err = TERN_OK;
    if (op->count_out) {
        *op->count_out = 0; //  the start seq, set below when a group is created
    }
    if (!op->name[0]) {
        *err = TERN_ENAME;
        return 0;
    }
    st_cached_t *t;
    int rc = st_topic_by_id(ctx, op->topic_id, &t);
    if (rc) {
        return rc;
    }
    if (!t) {
        *err = TERN_ENOTFOUND;
        return 0;
    }
    st_cached_t *g;
    if ((rc = st_group_find(ctx, op->topic_id, op->name, &g))) {
        return rc;
    }
    if (g->exists) {
        return 0;
    }
    uint64_t start;
    if ((rc = s_start_seq(ctx, t, (tern_start_t)op->u32, op->a, &start, err)) || *err) {
        return rc;
    }
    memset(&g->group, 0, sizeof g->group);
    g->group.version = S_GROUP_VERSION;
    g->group.created_ns = ctx->now_ns;
    for (int i = 0; i <= TERN_PRIORITY_MAX; i++) {
        g->group.lane_next[i] = start;
    }
    if (op->count_out) {
        *op->count_out = start;
    }
    g->exists = true;
    g->dirty = true;
    return 0;
}

int st_op_group_delete(st_txn_t *ctx, st_op_t *op) {
    tern_err_t *err = s_err_out(op);
    st_cached_t *g;
    int rc = st_group_find(ctx, op->topic_id, op->name, &g);
    if (rc) {
        return rc;
    }
    if (!g->exists) {
        *err = TERN_ENOTFOUND;
        return 0;
    }
    uint8_t prefix[S_ENTRY_KEY_MAX];
    size_t plen = s_entry_key(prefix, op->topic_id, op->name, strlen(op->name), 0, false);
    if ((rc = st_del_prefix(ctx, ctx->dbi[S_PENDING], prefix, plen, NULL)) ||
        (rc = st_del_prefix(ctx, ctx->dbi[S_DLQ], prefix, plen, NULL))) {
        return rc;
    }
    g->exists = false;
    g->dirty = true;
    *err = TERN_OK;
    return 0;
}

//  Moves a group's lane cursors to START/VALUE and drops its pending entries
//  (the messages at or after the new position are delivered again from
//  the cursors). The DLQ and the counters are kept.
int st_op_group_seek(st_txn_t *ctx, st_op_t *op) {
    tern_err_t *err = s_err_out(op);
    *err = TERN_OK;
    if (op->count_out) {
        *op->count_out = 0; //  the start seq, set below when the lanes move
    }
    st_cached_t *t, *g;
    int rc = st_topic_by_id(ctx, op->topic_id, &t);
    if (rc || (t && (rc = st_group_find(ctx, op->topic_id, op->name, &g)))) {
        return rc;
    }
    if (!t || !g->exists) {
        *err = TERN_ENOTFOUND;
        return 0;
    }
    uint64_t start;
    if ((rc = s_start_seq(ctx, t, (tern_start_t)op->u32, op->a, &start, err)) || *err) {
        return rc;
    }
    uint8_t prefix[S_ENTRY_KEY_MAX];
    size_t plen = s_entry_key(prefix, op->topic_id, op->name, strlen(op->name), 0, false);
    if ((rc = st_del_prefix(ctx, ctx->dbi[S_PENDING], prefix, plen, NULL))) {
        return rc;
    }
    g->group.pending = 0;
    for (int i = 0; i <= TERN_PRIORITY_MAX; i++) {
        g->group.lane_next[i] = start;
    }
    if (op->count_out) {
        *op->count_out = start;
    }
    g->dirty = true;
    return 0;
}

/* ------------------------------------------------------------------------
    Delivery state: deliver, ack, nack, dead
   ------------------------------------------------------------------------ */

//  The record of group OP names, from the transaction's cache: first the
//  entry the memo slot of its name points at (under fan-out the ops of one
//  commit name ~100 groups in no order, and the cache's own lookup walked
//  half of them per op: ~0.5k instructions), else st_group_find.
static int s_group_memo(st_txn_t *ctx, st_op_t *op, st_cached_t **g) {
    size_t len = strlen(op->name);
    uint32_t h = st_fnv1a(ST_FNV_BASIS, op->name, len) ^ op->topic_id;
    uint16_t *slot = &ctx->group_memo[h & (S_GROUP_MEMO - 1)];
    tern_store_batch_t *b = ctx->batch;
    if (*slot && *slot <= b->cache_count) {
        st_cached_t *c = b->cache[*slot - 1];
        if (c->is_group && c->key_len == 4 + len && s_be32_get(c->key) == op->topic_id &&
            !memcmp(c->key + 4, op->name, len)) {
            *g = c;
            return 0;
        }
    }
    int rc = st_group_find(ctx, op->topic_id, op->name, g);
    if (rc == 0 && ctx->last_hit < UINT16_MAX) {
        *slot = (uint16_t)(ctx->last_hit + 1); //  st_group_find's entry
    }
    return rc;
}

//  The group OP names into *G, or NULL when it does not exist; OP's
//  results then say so (TERN_ENOTFOUND, nothing moved, a count of 0).
int st_group_of(st_txn_t *ctx, st_op_t *op, st_cached_t **g) {
    int rc = s_group_memo(ctx, op, g);
    if (rc || !(*g)->exists) {
        if (op->count_out) {
            *op->count_out = 0;
        }
        if (!rc && op->err_out) {
            *op->err_out = TERN_ENOTFOUND;
        }
        *g = NULL;
    }
    return rc;
}

//  Deletes OP's pending entry of group G. Returns an LMDB error code
//  (MDB_NOTFOUND when there is none).
static int s_pending_del(st_txn_t *ctx, st_cached_t *g, st_op_t *op) {
    uint8_t key[S_ENTRY_KEY_MAX];
    MDB_val k = {s_op_entry_key(op, key), key};
    int rc = mdb_del(ctx->txn, ctx->dbi[S_PENDING], &k, NULL);
    if (rc == 0) {
        g->group.pending--;
    }
    return rc;
}

//  A delivery folded with its ack (st_group_fold): no pending entry is
//  written; one left by an earlier commit (a redelivery) goes.
static int s_deliver_acked(st_txn_t *ctx, st_cached_t *g, st_op_t *op) {
    int rc = s_pending_del(ctx, g, op);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

//  The pending entry of a delivery: one B-tree search for a first delivery;
//  a redelivery finds its entry and overwrites it.
static int s_deliver_pending(st_txn_t *ctx, st_cached_t *g, st_op_t *op, uint8_t prio) {
    uint8_t key[S_ENTRY_KEY_MAX], val[S_ENTRY_SIZE];
    MDB_val k = {s_op_entry_key(op, key), key}, v;
    MDB_dbi pending = ctx->dbi[S_PENDING];
    s_entry_put(val, op->u32, prio, op->b);
    v = (MDB_val){S_ENTRY_SIZE, val};
    int rc = mdb_put(ctx->txn, pending, &k, &v, MDB_NOOVERWRITE);
    if (rc == MDB_KEYEXIST) {
        v = (MDB_val){S_ENTRY_SIZE, val};
        rc = mdb_put(ctx->txn, pending, &k, &v, 0);
    } else if (rc == 0) {
        g->group.pending++;
    }
    return rc;
}

int st_op_deliver(st_txn_t *ctx, st_op_t *op) {
    st_cached_t *g;
    int rc = st_group_of(ctx, op, &g);
    if (rc || !g) {
        return rc;
    }
    st_group_rec_t *gr = &g->group;
    uint8_t prio = op->priority <= TERN_PRIORITY_MAX ? op->priority : TERN_PRIORITY_MAX;
    rc = op->flag ? s_deliver_acked(ctx, g, op) : s_deliver_pending(ctx, g, op, prio);
    if (rc) {
        return rc;
    }
    //  Every delivery counts; one with a count above 1 is also a redelivery
    //  (docs/operations.md, "Delivery counters").
    gr->delivered++;
    gr->redelivered += op->u32 > 1;
    if (gr->lane_next[prio] <= op->a) {
        gr->lane_next[prio] = op->a + 1;
    }
    g->dirty = true;
    return st_trace_put_pair(ctx, op->topic_id, op->a, TERN_TRACE_DELIVERED, op->acked_as, op->name,
                             op->u32, op->reason);
}

//  OP->u32: the history event (0: ACKED); OP->reason: its detail (where a
//  peer's ack came from, for an ack-state apply). A folded ack settles the
//  delivery of this batch, whose pending entry was never written.
int st_op_ack(st_txn_t *ctx, st_op_t *op) {
    st_cached_t *g;
    int rc = st_group_of(ctx, op, &g);
    if (rc || !g) {
        return rc;
    }
    if (!op->flag && (rc = s_pending_del(ctx, g, op)) != 0) {
        return rc == MDB_NOTFOUND ? 0 : rc;
    }
    g->group.acked++;
    g->dirty = true;
    if (op->acked_as) {
        return 0; //  its event is in the delivery's record
    }
    return st_trace_put(ctx, op->topic_id, op->a, op->u32 ? (uint8_t)op->u32 : TERN_TRACE_ACKED,
                        op->name, 0, op->reason, 0, 0);
}

//  OP->u32: the history event (0: NACKED).
int st_op_nack(st_txn_t *ctx, st_op_t *op) {
    st_cached_t *g;
    int rc = st_group_of(ctx, op, &g);
    if (rc || !g) {
        return rc;
    }
    uint8_t key[S_ENTRY_KEY_MAX], val[S_ENTRY_SIZE];
    MDB_val k = {s_op_entry_key(op, key), key}, v;
    MDB_dbi pending = ctx->dbi[S_PENDING];
    rc = mdb_get(ctx->txn, pending, &k, &v);
    if (rc) {
        return rc == MDB_NOTFOUND ? 0 : rc;
    }
    if (v.mv_size != S_ENTRY_SIZE) {
        return MDB_CORRUPTED;
    }
    memcpy(val, v.mv_data, S_ENTRY_SIZE);
    s_le64_put(val + 8, op->b);
    v = (MDB_val){S_ENTRY_SIZE, val};
    if ((rc = mdb_put(ctx->txn, pending, &k, &v, 0))) {
        return rc;
    }
    g->group.nacked++;
    g->dirty = true;
    return st_trace_put(ctx, op->topic_id, op->a, op->u32 ? (uint8_t)op->u32 : TERN_TRACE_NACKED,
                        op->name, s_le32_get(val), NULL, 0, 0);
}

//  Moves the entry from pending (when there) to the DLQ, keeping its lane.
int st_op_dead(st_txn_t *ctx, st_op_t *op) {
    st_cached_t *g;
    int rc = st_group_of(ctx, op, &g);
    if (rc || !g) {
        return rc;
    }
    uint8_t key[S_ENTRY_KEY_MAX], val[S_ENTRY_SIZE + TERN_REASON_MAX];
    MDB_val k = {s_op_entry_key(op, key), key}, v;
    MDB_dbi pending = ctx->dbi[S_PENDING];
    uint8_t prio = TERN_PRIORITY_DEFAULT;
    rc = mdb_get(ctx->txn, pending, &k, &v);
    if (rc == 0) {
        if (v.mv_size == S_ENTRY_SIZE) {
            prio = ((uint8_t *)v.mv_data)[4];
        }
        if ((rc = mdb_del(ctx->txn, pending, &k, NULL))) {
            return rc;
        }
        g->group.pending--;
    } else if (rc != MDB_NOTFOUND) {
        return rc;
    }
    size_t rlen = op->reason ? strlen(op->reason) : 0;
    s_entry_put(val, op->u32, prio, ctx->now_ns / 1000000);
    memcpy(val + S_ENTRY_SIZE, op->reason, rlen);
    v = (MDB_val){S_ENTRY_SIZE + rlen, val};
    if ((rc = mdb_put(ctx->txn, ctx->dbi[S_DLQ], &k, &v, 0))) {
        return rc;
    }
    //  Counted once even if the same seq dies twice.
    g->group.dead++;
    g->dirty = true;
    return st_trace_put(ctx, op->topic_id, op->a, TERN_TRACE_DEAD, op->name, op->u32, op->reason, 0,
                        0);
}

/* ------------------------------------------------------------------------
    Folding a delivery with its ack (before the commit applies the batch)
   ------------------------------------------------------------------------ */

//  Kinds that never touch a pending entry, nor a group: a delivery and its
//  ack fold across them. Any other kind between the two (open, seek,
//  delete, replay, sweep, a peer's ack, a replica's ops...) keeps both as
//  they are.
static bool s_fold_transparent(st_op_kind_t kind) {
    switch (kind) {
        case OP_APPEND:
        case OP_SET_U64:
        case OP_TRACE:
        case OP_ACKSTATE:
        case OP_OUTBOX_CONFIRM:
        case OP_OUTBOX_CONFIRM_PT:
        case OP_INBOUND:
            return true;
        default:
            return false;
    }
}

static uint32_t s_fold_hash(const st_op_t *op) {
    //  Over group name, then topic and seq mixed, low byte first.
    uint64_t mix = ((uint64_t)op->topic_id << 40) ^ op->a;
    uint8_t bytes[8];
    for (int i = 0; i < 8; i++, mix >>= 8) {
        bytes[i] = (uint8_t)mix;
    }
    return st_fnv1a(st_fnv1a(ST_FNV_BASIS, op->name, strlen(op->name)), bytes, sizeof bytes);
}

//  The slot of OP's (topic, group, seq) in the fold index: the one holding
//  the last such op seen, or the free one where it goes.
static uint32_t *s_fold_slot(tern_store_batch_t *b, const st_op_t *op) {
    size_t mask = b->fold_cap - 1;
    for (size_t i = s_fold_hash(op) & mask;; i = (i + 1) & mask) {
        uint32_t *slot = &b->fold_slots[i];
        const st_op_t *o = *slot == UINT32_MAX ? NULL : &b->ops[*slot];
        if (!o || (o->a == op->a && o->topic_id == op->topic_id && !strcmp(o->name, op->name))) {
            return slot;
        }
    }
}

//  Sizes and empties the fold index for the batch; false when it has no
//  delivery to fold.
static bool s_fold_reset(tern_store_batch_t *b) {
    size_t delivers = 0;
    for (size_t i = 0; i < b->count; i++) {
        delivers += b->ops[i].kind == OP_DELIVER;
    }
    if (!delivers || b->count >= UINT32_MAX) {
        return false;
    }
    size_t cap = 64;
    while (cap < b->count * 2) {
        cap *= 2;
    }
    if (cap > b->fold_cap || cap * 4 < b->fold_cap) {
        b->fold_slots = tern_realloc(b->fold_slots, cap * sizeof *b->fold_slots);
        b->fold_cap = cap;
    }
    memset(b->fold_slots, 0xff, b->fold_cap * sizeof *b->fold_slots);
    return true;
}

//  Marks (op->flag) each DELIVER whose ACK of the same (group, seq) follows
//  in this batch with nothing between that could touch its pending entry,
//  and that ACK: the delivery then writes no pending entry and the ack
//  deletes none (st_op_deliver, st_op_ack). Under fan-out most deliveries
//  are acked before the commit that records them, and the entry written
//  and deleted in one transaction was a third of the storer's work per
//  delivery (docs/performance.md). Both still count and write their
//  history events; a crash loses the batch whole, as before.
void st_group_fold(tern_store_batch_t *b) {
    b->folded = 0;
    if (!s_fold_reset(b)) {
        return;
    }
    size_t barrier = 0; //  ops before it do not fold with ops after it
    for (size_t i = 0; i < b->count; i++) {
        st_op_t *op = &b->ops[i];
        op->flag &= op->kind != OP_DELIVER && op->kind != OP_ACK;
        op->acked_as = 0;
        bool keyed = op->kind == OP_DELIVER || op->kind == OP_ACK || op->kind == OP_NACK ||
                     op->kind == OP_DEAD;
        if (!keyed || op->prior) {
            //  A keyed op that may not run could still have touched the entry.
            barrier = !keyed && s_fold_transparent(op->kind) ? barrier : i + 1;
            continue;
        }
        uint32_t *slot = s_fold_slot(b, op);
        st_op_t *last = *slot == UINT32_MAX ? NULL : &b->ops[*slot];
        if (op->kind == OP_ACK && last && *slot >= barrier && last->kind == OP_DELIVER &&
            !last->flag) {
            last->flag = true;
            op->flag = true;
            //  One history record for both when the ack has no detail.
            uint8_t event = op->u32 ? (uint8_t)op->u32 : TERN_TRACE_ACKED;
            last->acked_as = op->reason ? 0 : event;
            op->acked_as = last->acked_as;
            b->folded++;
        }
        *slot = (uint32_t)i;
    }
}

/* ------------------------------------------------------------------------
    Truncation (in-DC follower): the seqs after a point are given back
   ------------------------------------------------------------------------ */

//  Drops group G's pending and DLQ entries of seqs > AFTER_SEQ and moves its
//  lane cursors back to AFTER_SEQ + 1 where they are past it: those seqs
//  will hold other messages.
static int s_group_truncate(st_txn_t *ctx, st_cached_t *g, uint64_t after_seq) {
    uint8_t start[S_ENTRY_KEY_MAX];
    size_t plen = g->key_len + 1; //  topic BE32 + group name + NUL
    memcpy(start, g->key, g->key_len);
    start[g->key_len] = 0;
    s_be64_put(start + plen, after_seq + 1);
    uint64_t pending = 0, dead = 0;
    int rc = st_del_range(ctx, ctx->dbi[S_PENDING], start, plen + 8, plen, &pending);
    if (rc == 0) {
        rc = st_del_range(ctx, ctx->dbi[S_DLQ], start, plen + 8, plen, &dead);
    }
    if (rc) {
        return rc;
    }
    st_group_rec_t *gr = &g->group;
    gr->pending = gr->pending > pending ? gr->pending - pending : 0;
    gr->dead = gr->dead > dead ? gr->dead - dead : 0;
    bool moved = pending || dead;
    for (int i = 0; i <= TERN_PRIORITY_MAX; i++) {
        if (gr->lane_next[i] > after_seq + 1) {
            gr->lane_next[i] = after_seq + 1;
            moved = true;
        }
    }
    g->dirty |= moved;
    return 0;
}

//  Truncates every group of TOPIC_ID after AFTER_SEQ: those on disk, and
//  those this batch created and has not written yet.
int st_groups_truncate(st_txn_t *ctx, uint32_t topic_id, uint64_t after_seq) {
    if (after_seq == UINT64_MAX) {
        return 0;
    }
    uint8_t prefix[4];
    s_be32_put(prefix, topic_id);
    int rc = 0;
    tern_store_batch_t *b = ctx->batch;
    for (size_t i = 0; i < b->cache_count && rc == 0; i++) {
        st_cached_t *c = b->cache[i];
        if (c->is_group && c->exists && !memcmp(c->key, prefix, 4)) {
            rc = s_group_truncate(ctx, c, after_seq);
        }
    }
    st_iter_t it;
    for (s_iter_open(&it, ctx->txn, ctx->dbi[S_GROUPS], prefix, 4);
         rc == 0 && s_iter_in(&it, prefix, 4, 0); s_iter_next(&it)) {
        if (it.k.mv_size > 4 + TERN_NAME_MAX) {
            continue; //  not a group key
        }
        char name[TERN_NAME_MAX + 1];
        memcpy(name, (uint8_t *)it.k.mv_data + 4, it.k.mv_size - 4);
        name[it.k.mv_size - 4] = 0;
        st_cached_t *g;
        //  Once more for a group handled above: nothing is left to do there.
        if ((rc = st_group_find(ctx, topic_id, name, &g)) == 0 && g->exists) {
            rc = s_group_truncate(ctx, g, after_seq);
        }
    }
    return s_iter_end(&it, rc);
}

/* ------------------------------------------------------------------------
    Reads: groups and their pending entries
   ------------------------------------------------------------------------ */

//  Fills OUT from group record K/V, computing next_unacked: the lowest seq
//  still pending or not yet delivered (the first message at or after each
//  lane's cursor); last_seq + 1 when there is none. The ack floor is the seq
//  before it (JetStream's meaning: every seq up to it is settled).
static tern_err_t s_group_info(tern_store_reader_t *self, const MDB_val *k, const MDB_val *v,
                               tern_group_info_t *out) {
    if (v->mv_size != sizeof(st_group_rec_t) || k->mv_size <= 4 || k->mv_size > 4 + TERN_NAME_MAX) {
        return TERN_ECORRUPT;
    }
    st_group_rec_t rec;
    memcpy(&rec, v->mv_data, sizeof rec);
    memset(out, 0, sizeof *out);
    out->topic_id = s_be32_get(k->mv_data);
    memcpy(out->name, (uint8_t *)k->mv_data + 4, k->mv_size - 4);
    out->name[k->mv_size - 4] = 0;
    memcpy(out->lane_next, rec.lane_next, sizeof out->lane_next);
    out->pending = rec.pending;
    out->dead = rec.dead;
    out->delivered = rec.delivered;
    out->redelivered = rec.redelivered;
    out->acked = rec.acked;
    out->nacked = rec.nacked;
    out->created_ns = rec.created_ns;

    tern_topic_info_t topic;
    tern_err_t err = tern_store_topic_get_id(self, out->topic_id, &topic);
    uint64_t floor = err == TERN_OK ? topic.last_seq + 1 : UINT64_MAX;
    for (int lane = 0; lane <= TERN_PRIORITY_MAX; lane++) {
        uint64_t seq;
        size_t n = 0;
        err = tern_store_lane_scan(self, out->topic_id, (uint8_t)lane, rec.lane_next[lane], &seq, 1,
                                   &n);
        if (err) {
            return err;
        }
        if (n && seq < floor) {
            floor = seq;
        }
    }
    uint8_t key[S_ENTRY_KEY_MAX];
    size_t plen = s_entry_key(key, out->topic_id, out->name, k->mv_size - 4, 0, false);
    st_iter_t it;
    s_iter_open(&it, self->txn, self->store->dbi[S_PENDING], key, plen);
    if (s_iter_in(&it, key, plen, plen + 8)) {
        uint64_t seq = s_be64_get((uint8_t *)it.k.mv_data + plen);
        if (seq < floor) {
            floor = seq;
        }
    }
    if ((err = s_iter_close(&it, TERN_OK))) {
        return err;
    }
    if (floor == UINT64_MAX) {
        //  Topic gone: fall back to the lowest lane cursor.
        for (int lane = 0; lane <= TERN_PRIORITY_MAX; lane++) {
            if (rec.lane_next[lane] < floor) {
                floor = rec.lane_next[lane];
            }
        }
    }
    out->next_unacked = floor;
    out->ack_floor = floor ? floor - 1 : 0;
    return TERN_OK;
}

tern_err_t tern_store_group_get(tern_store_reader_t *self, uint32_t topic_id, const char *name,
                                tern_group_info_t *out) {
    S_READER_CHECK(self);
    size_t len = s_name_len(name, TERN_NAME_MAX);
    if (len == 0 || len > TERN_NAME_MAX) {
        return TERN_ENAME;
    }
    uint8_t key[S_GROUP_KEY_MAX];
    s_be32_put(key, topic_id);
    memcpy(key + 4, name, len);
    MDB_val k = {4 + len, key}, v;
    int rc = mdb_get(self->txn, self->store->dbi[S_GROUPS], &k, &v);
    if (rc) {
        return s_err(rc);
    }
    return s_group_info(self, &k, &v, out);
}

tern_err_t tern_store_group_list(tern_store_reader_t *self, uint32_t topic_id, tern_group_fn *fn,
                                 void *arg) {
    S_READER_CHECK(self);
    uint8_t prefix[4];
    s_be32_put(prefix, topic_id);
    tern_err_t err = TERN_OK;
    st_iter_t it;
    //  Topic 0: every group of every topic.
    for (s_iter_open(&it, self->txn, self->store->dbi[S_GROUPS], topic_id ? prefix : NULL, 4);
         s_iter_in(&it, prefix, topic_id ? 4 : 0, 0); s_iter_next(&it)) {
        tern_group_info_t info;
        if ((err = s_group_info(self, &it.k, &it.v, &info)) || !fn(&info, arg)) {
            break;
        }
    }
    return s_iter_close(&it, err);
}

//  A pending or DLQ entry (key K: topic, group, NUL, BE64 seq) into OUT.
tern_err_t st_entry_parse(const MDB_val *k, const MDB_val *v, tern_entry_t *out) {
    if (v->mv_size < S_ENTRY_SIZE || v->mv_size > S_ENTRY_SIZE + TERN_REASON_MAX ||
        k->mv_size < 8) {
        return TERN_ECORRUPT;
    }
    const uint8_t *p = v->mv_data;
    out->seq = s_be64_get((const uint8_t *)k->mv_data + k->mv_size - 8);
    out->delivery_count = s_le32_get(p);
    out->priority = p[4];
    out->due_ms = s_le64_get(p + 8);
    memcpy(out->reason, p + S_ENTRY_SIZE, v->mv_size - S_ENTRY_SIZE);
    out->reason[v->mv_size - S_ENTRY_SIZE] = 0;
    return TERN_OK;
}

tern_err_t st_entry_list(tern_store_reader_t *self, int dbi, uint32_t topic_id, const char *group,
                         tern_entry_fn *fn, void *arg) {
    S_READER_CHECK(self);
    size_t len = s_name_len(group, TERN_NAME_MAX);
    if (len == 0 || len > TERN_NAME_MAX) {
        return TERN_ENAME;
    }
    uint8_t key[S_ENTRY_KEY_MAX];
    size_t plen = s_entry_key(key, topic_id, group, len, 0, false);
    tern_err_t err = TERN_OK;
    st_iter_t it;
    for (s_iter_open(&it, self->txn, self->store->dbi[dbi], key, plen);
         s_iter_in(&it, key, plen, plen + 8); s_iter_next(&it)) {
        tern_entry_t entry;
        if ((err = st_entry_parse(&it.k, &it.v, &entry)) || !fn(&entry, arg)) {
            break;
        }
    }
    return s_iter_close(&it, err);
}

tern_err_t tern_store_pending_list(tern_store_reader_t *self, uint32_t topic_id, const char *group,
                                   tern_entry_fn *fn, void *arg) {
    return st_entry_list(self, S_PENDING, topic_id, group, fn, arg);
}
