/*  tern_store_repl.c - replication state: the outbox, ack-state changes
    (ours and our peers'), peers' confirmed positions, inbound cursors.

    The outbox is the local commit order of what this node ships: messages
    appended with LOCAL true (tern_store_log.c adds their entry in the same
    transaction) and ack-state changes queued by the storer. The repl actor
    reads it (tern_store_outbox_read), records what each peer confirmed and
    what it applied from each origin in the same batch as the records. The
    sweep (tern_store_expiry.c) drops entries every peer confirmed and, past
    outbox_retention_ms, unconfirmed ones (counted as lost). A peer's ack or
    TERM by msg_id is applied here through the group's own ack and dead
    steps (tern_store_group.c). docs/replication.md has the protocol.
*/
#include "tern_partition.h"
#include "tern_store_int.h"

/* ------------------------------------------------------------------------
    Queueing
   ------------------------------------------------------------------------ */

void tern_store_batch_outbox_confirm(tern_store_batch_t *self, const char *peer,
                                     uint64_t position) {
    st_op_t *op = st_batch_push(self, OP_OUTBOX_CONFIRM);
    s_copy_name(op->name, TERN_NAME_MAX + 1, peer);
    op->a = position;
}

void tern_store_batch_inbound(tern_store_batch_t *self, const char *origin, uint64_t position) {
    st_op_t *op = st_batch_push(self, OP_INBOUND);
    //  The whole name: an origin may be "DC/IDENTITY" (longer than a DC name).
    s_copy_name(op->name, sizeof op->name, origin);
    op->a = position;
}

void tern_store_batch_ackstate(tern_store_batch_t *self, uint32_t topic_id, const char *group,
                               uint64_t seq, uint64_t msg_id, uint32_t op_code, uint64_t *pos_out) {
    st_op_t *op = st_group_op(self, OP_ACKSTATE, topic_id, group, seq);
    op->b = msg_id;
    op->u32 = op_code;
    op->count_out = pos_out;
}

void tern_store_batch_ackstate_apply(tern_store_batch_t *self, const char *group, uint64_t msg_id,
                                     uint32_t op, const char *reason,
                                     tern_append_result_t *result) {
    st_op_t *o = st_group_op(self, OP_ACKSTATE_APPLY, 0, group, 0);
    o->b = msg_id;
    o->result = result;
    o->u32 = op;
    if (reason && *reason) {
        o->reason = tern_strndup(reason, TERN_REASON_MAX);
    }
}

/* ------------------------------------------------------------------------
    The outbox and the cursors
   ------------------------------------------------------------------------ */

uint32_t st_outbox_pt_of(const tern_store_t *store, const char *topic, size_t len) {
    return store->config.partitions ? tern_partition_of(topic, len, store->config.partitions) : 0;
}

uint64_t st_outbox_next(st_txn_t *ctx, uint32_t pt) {
    return (ctx->store->ob_work ? ctx->store->ob_work[pt] : ctx->outbox_last) + 1;
}

//  Writes entry E at (PT, POS): on a single node PT is 0 and POS the next
//  position (MDB_APPEND, the format of before partitions); in a cluster at
//  exactly (PT, POS), replacing what is there (a follower's replay of the
//  leader's entry is harmless), and PT's last moves up to POS.
int st_outbox_put(st_txn_t *ctx, uint32_t pt, uint64_t pos, const tern_outbox_entry_t *e) {
    uint8_t key[12];
    uint8_t val[S_OUTBOX_HDR + TERN_NAME_MAX];
    size_t glen = s_name_len(e->group, TERN_NAME_MAX);
    memset(val, 0, S_OUTBOX_HDR);
    val[0] = e->is_ackstate ? 1 : 0;
    val[1] = (uint8_t)glen;
    s_le32_put(val + 4, e->topic_id);
    s_le64_put(val + 8, e->seq);
    s_le64_put(val + 16, e->msg_id);
    s_le32_put(val + 24, e->op);
    s_le64_put(val + 32, e->at_ns ? e->at_ns : ctx->now_ns);
    if (glen) {
        memcpy(val + S_OUTBOX_HDR, e->group, glen);
    }
    MDB_val v = {S_OUTBOX_HDR + glen, val};
    if (!ctx->store->ob_work) {
        s_be64_put(key, pos);
        ctx->outbox_last = pos;
        MDB_val k = {8, key};
        return mdb_put(ctx->txn, ctx->dbi[S_OUTBOX], &k, &v, MDB_APPEND);
    }
    s_be32_put(key, pt);
    s_be64_put(key + 4, pos);
    st_ob_move(ctx, pt, pos);
    MDB_val k = {12, key};
    return s_put_tail(ctx->txn, ctx->dbi[S_OUTBOX_PT], &k, &v, 0);
}

//  A local ack-state change gets the next position of its topic's
//  partition. In a cluster the entry carries the message's msg_id, read
//  here from the log (the entry must mean the same on every replica and
//  after the message is gone); a single node keeps 0 (the repl actor
//  looks it up when it ships, as before partitions).
int st_op_ackstate(st_txn_t *ctx, st_op_t *op) {
    tern_outbox_entry_t e;
    memset(&e, 0, sizeof e);
    e.is_ackstate = true;
    e.topic_id = op->topic_id;
    e.seq = op->a;
    e.msg_id = op->b;
    e.op = op->u32;
    memcpy(e.group, op->name, sizeof e.group - 1);
    uint32_t pt = 0;
    if (ctx->store->ob_work) {
        st_cached_t *t;
        int rc = st_topic_by_id(ctx, op->topic_id, &t);
        if (rc || !t) {
            return rc; //  the topic is gone: nothing left to ship
        }
        pt = st_outbox_pt_of(ctx->store, (const char *)t->key, t->key_len);
        if ((rc = st_outbox_msg_id(ctx, &e))) {
            return rc;
        }
    }
    uint64_t pos = st_outbox_next(ctx, pt);
    if (op->count_out) {
        *op->count_out = pos;
    }
    return st_outbox_put(ctx, pt, pos, &e);
}

//  The log record SEQ of TOPIC_ID parsed into REC; *FOUND false when the log
//  lacks it or it does not parse (not an error here: the callers fall back).
static int s_log_record(st_txn_t *ctx, uint32_t topic_id, uint64_t seq, st_record_t *rec,
                        bool *found) {
    uint8_t key[12];
    s_be32_put(key, topic_id);
    s_be64_put(key + 4, seq);
    MDB_val k = {12, key}, v;
    int rc = mdb_get(ctx->txn, ctx->dbi[S_LOG], &k, &v);
    *found = rc == 0 && st_record_parse(&v, false, rec) == TERN_OK;
    return rc == MDB_NOTFOUND ? 0 : rc;
}

//  An ack-state entry E of a cluster without its msg_id gets it from the
//  log at (E->topic_id, E->seq) (left 0 if that is gone).
int st_outbox_msg_id(st_txn_t *ctx, tern_outbox_entry_t *e) {
    if (e->msg_id || !e->topic_id) {
        return 0;
    }
    st_record_t rec;
    bool found = false;
    int rc = s_log_record(ctx, e->topic_id, e->seq, &rec, &found);
    if (found) {
        e->msg_id = rec.msg_id;
    }
    return rc;
}

//  Records a peer's confirmed position when it moved forward (with its time,
//  for the history: st_trace_confirm).
int st_op_outbox_confirm(st_txn_t *ctx, st_op_t *op) {
    if (ctx->store->ob_work) {
        return st_op_outbox_confirm_pt(ctx, op); //  a cluster's PT 0 (u32 is 0)
    }
    uint64_t old = 0;
    int rc = s_get_u64(ctx->txn, ctx->dbi[S_PEERS], op->name, &old);
    if (rc && rc != MDB_NOTFOUND) {
        return rc;
    }
    if (!op->name[0] || (rc == 0 && old >= op->a)) {
        return 0;
    }
    if ((rc = st_trace_confirm(ctx, op->name, op->a, rc == 0 ? old : 0))) {
        return rc;
    }
    return s_put_u64(ctx->txn, ctx->dbi[S_PEERS], op->name, op->a);
}

int st_op_inbound(st_txn_t *ctx, st_op_t *op) {
    return op->name[0] ? s_put_u64(ctx->txn, ctx->dbi[S_INBOUND], op->name, op->a) : 0;
}

//  Retention: drops the entries every known peer confirmed, and those past
//  outbox_retention_ms unconfirmed (counted in outbox_dropped), oldest
//  first, at most BUDGET.
int st_sweep_outbox(st_txn_t *ctx, uint64_t now_ns, uint64_t budget) {
    if (ctx->store->ob_work) {
        return st_sweep_outbox_pt(ctx, now_ns, budget);
    }
    //  The lowest position every known peer confirmed (0 if no peer yet).
    uint64_t confirmed = 0;
    bool any_peer = false;
    st_iter_t it;
    for (s_iter_open(&it, ctx->txn, ctx->dbi[S_PEERS], NULL, 0); s_iter_in(&it, NULL, 0, 0);
         s_iter_next(&it)) {
        uint64_t pos = it.v.mv_size == 8 ? s_le64_get(it.v.mv_data) : 0;
        if (!any_peer || pos < confirmed) {
            confirmed = pos;
        }
        any_peer = true;
    }
    int rc = s_iter_end(&it, 0);
    if (rc) {
        return rc;
    }
    uint64_t retention_ns = ctx->store->config.outbox_retention_ms * 1000000ull;
    uint64_t cutoff = now_ns > retention_ns ? now_ns - retention_ns : 0;
    MDB_cursor *cur;
    MDB_val k, v;
    if ((rc = mdb_cursor_open(ctx->txn, ctx->dbi[S_OUTBOX], &cur))) {
        return rc;
    }
    while (budget-- > 0) {
        if ((rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST))) {
            break;
        }
        uint64_t pos = k.mv_size == 8 ? s_be64_get(k.mv_data) : 0;
        uint64_t at = v.mv_size >= S_OUTBOX_HDR ? s_le64_get((uint8_t *)v.mv_data + 32) : 0;
        bool all_confirmed = any_peer && pos <= confirmed;
        if (!all_confirmed && at >= cutoff) {
            break;
        }
        if (!all_confirmed) {
            ctx->outbox_dropped++;
        }
        if ((rc = mdb_cursor_del(cur, 0))) {
            break;
        }
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

//  The message MSG_ID as the target of a peer's ack-state change: its topic,
//  seq and priority lane (from the record); *HERE false when it is not
//  stored here.
/* ------------------------------------------------------------------------
    A peer's ack state, applied by msg_id
   ------------------------------------------------------------------------ */

//  The priority lane of the record SEQ of TOPIC_ID into *PRIO (the default
//  lane when the log lacks it).
static int s_ackstate_prio(st_txn_t *ctx, uint32_t topic_id, uint64_t seq, uint8_t *prio) {
    st_record_t rec;
    bool found = false;
    int rc = s_log_record(ctx, topic_id, seq, &rec, &found);
    *prio = found && rec.priority <= TERN_PRIORITY_MAX ? rec.priority : TERN_PRIORITY_DEFAULT;
    return rc;
}

static int s_ackstate_msg(st_txn_t *ctx, uint64_t msg_id, bool *here, uint32_t *topic_id,
                          uint64_t *seq, uint8_t *prio) {
    *here = false;
    uint8_t key[12];
    s_be64_put(key, msg_id);
    MDB_val k = {8, key}, v;
    int rc = mdb_get(ctx->txn, ctx->dbi[S_MSGID], &k, &v);
    if (rc) {
        return rc == MDB_NOTFOUND ? 0 : rc; //  not here (yet, or any more)
    }
    if (v.mv_size != S_MSGID_SIZE) {
        return MDB_CORRUPTED;
    }
    if (((uint8_t *)v.mv_data)[M_FLAGS] & S_MSGID_REMOVED) {
        return 0; //  removed here; only its history is left
    }
    *here = true;
    *topic_id = s_be32_get((uint8_t *)v.mv_data + M_TOPIC);
    *seq = s_be64_get((uint8_t *)v.mv_data + M_SEQ);
    return s_ackstate_prio(ctx, *topic_id, *seq, prio);
}

//  Puts a pending entry (delivery count COUNT, due now) for SEQ of G unless
//  it has one. Not a delivery: no counter but `pending`, no history event.
static int s_ackstate_pend(st_txn_t *ctx, st_cached_t *g, uint32_t topic_id, const char *group,
                           uint64_t seq, uint8_t prio, uint32_t count) {
    uint8_t key[S_ENTRY_KEY_MAX], val[S_ENTRY_SIZE];
    size_t klen = s_entry_key(key, topic_id, group, strlen(group), seq, true);
    s_entry_put(val, count, prio, ctx->now_ns / 1000000);
    MDB_val k = {klen, key}, v = {S_ENTRY_SIZE, val};
    int rc = mdb_put(ctx->txn, ctx->dbi[S_PENDING], &k, &v, MDB_NOOVERWRITE);
    if (rc == 0) {
        g->group.pending++;
        g->dirty = true;
    }
    return rc == MDB_KEYEXIST ? 0 : rc;
}

//  SEQ was not delivered here yet: the lane's messages between its cursor
//  and SEQ become pending (still owed to the group: at-least-once), SEQ too
//  (so that the ack or TERM finds it), and the cursor moves past SEQ.
static int s_ackstate_skip(st_txn_t *ctx, st_cached_t *g, uint32_t topic_id, const char *group,
                           uint64_t seq, uint8_t prio) {
    uint8_t from[13];
    s_be32_put(from, topic_id);
    from[4] = prio;
    s_be64_put(from + 5, g->group.lane_next[prio]);
    int rc = 0;
    st_iter_t it;
    for (s_iter_open(&it, ctx->txn, ctx->dbi[S_PRIO], from, 13); s_iter_in(&it, from, 5, 13);
         s_iter_next(&it)) {
        uint64_t hole = s_be64_get((uint8_t *)it.k.mv_data + 5);
        if (hole >= seq || (rc = s_ackstate_pend(ctx, g, topic_id, group, hole, prio, 0))) {
            break;
        }
    }
    if ((rc = s_iter_end(&it, rc))) {
        return rc;
    }
    g->group.lane_next[prio] = seq + 1;
    g->dirty = true;
    return s_ackstate_pend(ctx, g, topic_id, group, seq, prio, 0);
}

//  A peer's ack-state change by msg_id (see tern_store_batch_ackstate_apply):
//  the message's topic and seq here, then st_ackstate_seq. OP->result, when
//  set, gets the seq changed (0 = nothing changed) for in-DC replication.
int st_op_ackstate_apply(st_txn_t *ctx, st_op_t *op) {
    bool here;
    uint32_t topic_id = 0;
    uint64_t seq = 0;
    uint8_t prio = TERN_PRIORITY_DEFAULT;
    if (op->result) {
        memset(op->result, 0, sizeof *op->result);
    }
    int rc = s_ackstate_msg(ctx, op->b, &here, &topic_id, &seq, &prio);
    if (rc || !here) {
        return rc;
    }
    bool changed = false;
    const char *reason = op->reason                 ? op->reason
                         : op->u32 == TERN_CMD_TERM ? "dead in a peer dc"
                                                    : "acked in a peer dc";
    rc = st_ackstate_seq(ctx, topic_id, op->name, seq, op->u32 == TERN_CMD_TERM, reason, &changed);
    if (rc == 0 && changed && op->result) {
        op->result->topic_id = topic_id;
        op->result->seq = seq;
        op->result->msg_id = op->b;
    }
    return rc;
}

//  The ack-state change of SEQ of TOPIC_ID for GROUP: it goes through the
//  same ACK / DEAD step as a local one, so the counters and the history
//  (ACKED, DEAD events) are those of a local ack or TERM. A peer DC's change
//  on the partition leader (by msg_id, above) and its in-DC copy on a
//  follower (a CREPL_GROUP ack or dead op with aux TERN_GOP_AUX_PEER, by
//  seq) both run it, so the follower's group ends where the leader's did.
int st_ackstate_seq(st_txn_t *ctx, uint32_t topic_id, const char *group, uint64_t seq, bool term,
                    const char *reason, bool *changed) {
    *changed = false;
    uint8_t prio;
    int rc = s_ackstate_prio(ctx, topic_id, seq, &prio);
    if (rc) {
        return rc;
    }
    st_op_t sub;
    memset(&sub, 0, sizeof sub);
    s_copy_name(sub.name, sizeof sub.name, group);
    sub.topic_id = topic_id;
    sub.kind = OP_GROUP_OPEN;
    sub.u32 = TERN_START_FIRST;
    st_cached_t *g;
    if ((rc = st_op_group_open(ctx, &sub)) || (rc = st_group_find(ctx, topic_id, group, &g)) ||
        !g->exists) {
        return rc;
    }
    uint8_t key[S_ENTRY_KEY_MAX];
    size_t klen = s_entry_key(key, topic_id, group, strlen(group), seq, true);
    MDB_val k = {klen, key}, v;
    uint32_t count = 0;
    if ((rc = mdb_get(ctx->txn, ctx->dbi[S_PENDING], &k, &v)) == 0) {
        count = v.mv_size == S_ENTRY_SIZE ? s_le32_get(v.mv_data) : 0;
    } else if (rc != MDB_NOTFOUND) {
        return rc;
    } else if ((rc = mdb_get(ctx->txn, ctx->dbi[S_DLQ], &k, &v)) == 0) {
        if (term) {
            return 0; //  dead here too
        }
        //  Replayed from the DLQ and acked there: acked here as well.
        count = v.mv_size >= S_ENTRY_SIZE ? s_le32_get(v.mv_data) : 0;
        prio = v.mv_size >= S_ENTRY_SIZE ? ((uint8_t *)v.mv_data)[4] : prio;
        if ((rc = mdb_del(ctx->txn, ctx->dbi[S_DLQ], &k, NULL))) {
            return rc;
        }
        g->group.dead -= g->group.dead > 0;
        rc = s_ackstate_pend(ctx, g, topic_id, group, seq, prio, count);
    } else if (rc != MDB_NOTFOUND) {
        return rc;
    } else if (seq < g->group.lane_next[prio]) {
        return 0; //  acked here already
    } else {
        rc = s_ackstate_skip(ctx, g, topic_id, group, seq, prio);
    }
    if (rc) {
        return rc;
    }
    *changed = true;
    sub.a = seq;
    sub.kind = term ? OP_DEAD : OP_ACK;
    sub.u32 = term ? count : TERN_TRACE_ACKED;
    sub.reason = (char *)reason; //  borrowed for the call
    return term ? st_op_dead(ctx, &sub) : st_op_ack(ctx, &sub);
}

/* ------------------------------------------------------------------------
    Reads
   ------------------------------------------------------------------------ */

//  Parses an outbox value into E (all but position and partition); false
//  when it is malformed.
static bool s_outbox_parse(const MDB_val *v, tern_outbox_entry_t *e) {
    const uint8_t *p = v->mv_data;
    if (v->mv_size < S_OUTBOX_HDR || p[1] > TERN_NAME_MAX ||
        v->mv_size != (size_t)S_OUTBOX_HDR + p[1]) {
        return false;
    }
    memset(e, 0, sizeof *e);
    e->is_ackstate = p[0] == 1;
    e->topic_id = s_le32_get(p + 4);
    e->seq = s_le64_get(p + 8);
    e->msg_id = s_le64_get(p + 16);
    e->op = s_le32_get(p + 24);
    e->at_ns = s_le64_get(p + 32);
    memcpy(e->group, p + S_OUTBOX_HDR, p[1]);
    e->group[p[1]] = 0;
    return true;
}

tern_err_t tern_store_outbox_read(tern_store_reader_t *self, uint64_t from, size_t max,
                                  tern_outbox_fn *fn, void *arg) {
    return tern_store_outbox_read_pt(self, 0, from, max, fn, arg);
}

//  The entries of outbox DBI from KEY on (KLEN bytes: a prefix that every
//  entry of the stream shares, then the position BE64) to FN, at most MAX;
//  each gets partition PT. The single node's S_OUTBOX (KLEN 8, no prefix)
//  and a cluster's S_OUTBOX_PT (KLEN 12, the partition BE32 first).
tern_err_t st_outbox_walk(tern_store_reader_t *self, int dbi, const uint8_t *key, size_t klen,
                          uint32_t pt, size_t max, tern_outbox_fn *fn, void *arg) {
    size_t plen = klen - 8;
    tern_err_t err = TERN_OK;
    size_t seen = 0;
    st_iter_t it;
    //  Every key of the stream, not only KLEN-byte ones: a damaged key is
    //  reported, not skipped.
    for (s_iter_open(&it, self->txn, self->store->dbi[dbi], key, klen);
         seen < max && s_iter_in(&it, key, plen, 0); s_iter_next(&it)) {
        tern_outbox_entry_t entry;
        if (it.k.mv_size != klen || !s_outbox_parse(&it.v, &entry)) {
            err = TERN_ECORRUPT;
            break;
        }
        entry.partition = pt;
        entry.position = s_be64_get((uint8_t *)it.k.mv_data + plen);
        seen++;
        if (!fn(&entry, arg)) {
            break;
        }
    }
    return s_iter_close(&it, err);
}

//  The position stored under NAME in DBI into *POSITION; 0 when none is yet.
static tern_err_t s_position_get(tern_store_reader_t *self, int dbi, const char *name,
                                 uint64_t *position) {
    S_READER_CHECK(self);
    *position = 0;
    if (!name || !*name) {
        return TERN_EINVAL;
    }
    int rc = s_get_u64(self->txn, self->store->dbi[dbi], name, position);
    return rc == MDB_NOTFOUND ? TERN_OK : s_err(rc);
}

tern_err_t tern_store_outbox_last(tern_store_reader_t *self, uint64_t *position) {
    return tern_store_outbox_last_pt(self, 0, position);
}

tern_err_t tern_store_outbox_confirmed(tern_store_reader_t *self, const char *peer,
                                       uint64_t *position) {
    return tern_store_outbox_confirmed_pt(self, peer, 0, position);
}

tern_err_t st_outbox_last_one(tern_store_reader_t *self, uint64_t *position) {
    return s_position_get(self, S_META, S_META_OUTBOX_LAST, position);
}

tern_err_t st_outbox_confirmed_one(tern_store_reader_t *self, const char *peer,
                                   uint64_t *position) {
    return s_position_get(self, S_PEERS, peer, position);
}

tern_err_t tern_store_inbound_get(tern_store_reader_t *self, const char *origin,
                                  uint64_t *position) {
    return s_position_get(self, S_INBOUND, origin, position);
}

/* ------------------------------------------------------------------------
    Deferred flush (in-DC leader; tern_store.h)
   ------------------------------------------------------------------------ */

tern_err_t tern_store_defer_sync(tern_store_t *self, bool on) {
    if (!self || self->config.durability != TERN_DURABILITY_FSYNC) {
        return TERN_EINVAL;
    }
    return mdb_env_set_flags(self->env, MDB_NOMETASYNC, on ? 1 : 0) ? TERN_ESTORAGE : TERN_OK;
}

tern_err_t tern_store_sync(tern_store_t *self) {
    if (!self) {
        return TERN_EINVAL;
    }
    return mdb_env_sync(self->env, 1) ? TERN_ESTORAGE : TERN_OK;
}
