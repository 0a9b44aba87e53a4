/*  tern_store_log.c - the log and its topics, writer side: append, remove,
    retention by count and size, topic create/edit/delete/purge.

    The log is keyed by (topic id BE32, seq BE64), so one topic's messages
    are contiguous and an append to the newest topic is an MDB_APPEND; each
    message also has a priority-lane entry (prio), an expiry entry when it
    has a TTL (expiry) and a msgid entry (idempotent replays, and the
    history's anchor: tern_store_trace.c). An append runs the dedup check
    (tern_store_dedup.c) and queues the outbox entry (tern_store_repl.c);
    every removal path (retention, TTL sweep, purge, replication conflict)
    goes through st_msg_remove, which writes the message's STORED event.
    An in-DC follower appends at the leader's seq through the same steps and
    truncates a tail the leader does not have (docs/storage.md, "In-DC
    replicas"). Reads of the log are in tern_store_read.c.
*/
#include "tern_store_int.h"

/* ------------------------------------------------------------------------
    Queueing
   ------------------------------------------------------------------------ */

void tern_store_batch_append(tern_store_batch_t *self, const tern_frame_t *msg, bool local,
                             tern_append_result_t *result) {
    st_op_t *op = st_batch_push(self, OP_APPEND);
    op->msg = msg;
    op->flag = local;
    op->result = result;
    self->has_appends = true;
    self->bytes += R_HEADER + msg->payload_size;
}

void tern_store_batch_append_replica(tern_store_batch_t *self, const tern_frame_t *msg,
                                     tern_append_result_t *result) {
    st_op_t *op = st_batch_push(self, OP_APPEND_REPLICA);
    op->msg = msg;
    op->result = result;
    self->has_appends = true;
    self->bytes += R_HEADER + msg->payload_size;
}

void tern_store_batch_append_replica_next(tern_store_batch_t *self, const tern_frame_t *msg,
                                          tern_append_result_t *result) {
    tern_store_batch_append_replica(self, msg, result);
    self->ops[self->count - 1].flag = true;
}

void tern_store_batch_truncate(tern_store_batch_t *self, const char *topic, uint64_t after_seq,
                               tern_err_t *result_err, uint64_t *removed) {
    st_op_t *op = st_batch_push(self, OP_TRUNCATE);
    op->flag = s_name_len(topic, TERN_TOPIC_MAX) > TERN_TOPIC_MAX;
    s_copy_name(op->name, sizeof op->name, topic);
    op->a = after_seq;
    op->err_out = result_err;
    op->count_out = removed;
}

void tern_store_batch_end_at(tern_store_batch_t *self, const char *topic, uint64_t last_seq,
                             tern_err_t *result_err, uint64_t *removed) {
    tern_store_batch_truncate(self, topic, last_seq, result_err, removed);
    self->ops[self->count - 1].u32 = 1; //  raise too
}

void tern_store_batch_topic_put(tern_store_batch_t *self, const char *name, tern_topic_mode_t mode,
                                const tern_topic_limits_t *limits, tern_err_t *result_err,
                                uint32_t *id_out) {
    st_op_t *op = st_batch_push(self, OP_TOPIC_PUT);
    op->flag = s_name_len(name, TERN_TOPIC_MAX) > TERN_TOPIC_MAX;
    s_copy_name(op->name, sizeof op->name, name);
    if (limits) {
        op->a = limits->max_age_ms;
        op->b = limits->max_msgs;
        op->c = limits->max_bytes;
    }
    op->u32 = (uint32_t)mode;
    op->err_out = result_err;
    op->id_out = id_out;
}

void tern_store_batch_topic_delete(tern_store_batch_t *self, const char *name, bool purge_only,
                                   tern_err_t *result_err, uint64_t *removed) {
    st_op_t *op = st_batch_push(self, OP_TOPIC_DELETE);
    s_copy_name(op->name, sizeof op->name, name);
    op->flag = purge_only;
    op->err_out = result_err;
    op->count_out = removed;
}

/* ------------------------------------------------------------------------
    Removal: every path that takes a message out of the log
   ------------------------------------------------------------------------ */

//  The first stored seq of TOPIC_ID that is >= FROM, or LAST + 1 if none;
//  RECORD (if not NULL) gets its record (valid until the next write).
int st_first_seq(st_txn_t *ctx, uint32_t topic_id, uint64_t from, uint64_t last, uint64_t *first,
                 MDB_val *record) {
    uint8_t key[12];
    s_be32_put(key, topic_id);
    s_be64_put(key + 4, from);
    st_iter_t it;
    s_iter_open(&it, ctx->txn, ctx->dbi[S_LOG], key, 12);
    *first = last + 1;
    if (s_iter_in(&it, key, 4, 12)) {
        *first = s_be64_get((uint8_t *)it.k.mv_data + 4);
        if (record) {
            *record = it.v;
        }
    }
    return s_iter_end(&it, 0);
}

//  The msgid entry of REC (stored at TOPIC_ID, SEQ), which is leaving the log:
//  deleted when no history is kept (trace off, or already swept), else kept
//  as history with the STORED event written now (stamp 0: first among the
//  message's events), with the at_ns a scan reported while it was stored.
//  History already past retention that the sweep did not reach yet goes now.
static int s_msgid_release(st_txn_t *ctx, const st_record_t *rec, uint32_t topic_id, uint64_t seq) {
    //  Copied first: the record may sit on a dirty page that writes below
    //  could spill.
    char trace_id[TERN_TRACE_MAX], origin[TERN_NAME_MAX];
    const char *tp, *op;
    size_t trlen, olen;
    st_record_trace(rec, &tp, &trlen, &op, &olen);
    memcpy(trace_id, tp, trlen);
    memcpy(origin, op, olen);
    uint64_t msg_id = rec->msg_id, expire_at_ns = rec->expire_at_ns;
    uint8_t key[8];
    s_be64_put(key, msg_id);
    MDB_val k = {8, key}, v;
    int rc = mdb_get(ctx->txn, ctx->dbi[S_MSGID], &k, &v);
    if (rc) {
        return rc == MDB_NOTFOUND ? 0 : rc;
    }
    const uint8_t *cur = v.mv_data;
    if (v.mv_size != S_MSGID_SIZE || s_be32_get(cur + M_TOPIC) != topic_id ||
        s_be64_get(cur + M_SEQ) != seq || (cur[M_FLAGS] & S_MSGID_REMOVED)) {
        return 0; //  not this message's entry (or damaged): leave it
    }
    uint8_t val[S_MSGID_SIZE];
    memcpy(val, cur, S_MSGID_SIZE);
    uint64_t retention_ns = ctx->store->config.trace_retention_ms * 1000000ull;
    uint64_t at = s_le64_get(val + M_AT);
    if (!retention_ns || (val[M_FLAGS] & S_MSGID_SWEPT)) {
        return s_del(ctx->txn, ctx->dbi[S_MSGID], key, 8);
    }
    uint64_t cutoff = ctx->now_ns > retention_ns ? ctx->now_ns - retention_ns : 0;
    if (at < cutoff) {
        if ((rc = st_del_prefix(ctx, ctx->dbi[S_TRACE], val, 12, NULL))) {
            return rc;
        }
        return s_del(ctx->txn, ctx->dbi[S_MSGID], key, 8);
    }
    val[M_FLAGS] |= S_MSGID_REMOVED;
    v = (MDB_val){S_MSGID_SIZE, val};
    if ((rc = mdb_put(ctx->txn, ctx->dbi[S_MSGID], &k, &v, 0))) {
        return rc;
    }
    return st_trace_put_at(ctx, topic_id, seq, 0, at, TERN_TRACE_STORED, origin, olen, 0, trace_id,
                           trlen, msg_id, expire_at_ns);
}

//  Removes message SEQ of topic T with its index entries. *GONE tells whether
//  it was there.
int st_msg_remove(st_txn_t *ctx, st_cached_t *t, uint64_t seq, bool *gone) {
    uint32_t topic_id = (uint32_t)t->topic.id;
    uint8_t tkey[12];
    s_be32_put(tkey, topic_id);
    s_be64_put(tkey + 4, seq);
    MDB_val k = {12, tkey}, v;
    *gone = false;
    int rc = mdb_get(ctx->txn, ctx->dbi[S_LOG], &k, &v);
    if (rc == MDB_NOTFOUND) {
        return 0;
    }
    if (rc) {
        return rc;
    }
    st_record_t rec;
    //  A damaged record is still removed; its secondary entries are then
    //  unknown and left (the msgid/prio lookups find nothing to read).
    if (st_record_parse(&v, false, &rec) == TERN_OK) {
        uint8_t key[20];
        if (rec.msg_id && (rc = s_msgid_release(ctx, &rec, topic_id, seq))) {
            return rc;
        }
        s_be32_put(key, topic_id);
        key[4] = rec.priority;
        s_be64_put(key + 5, seq);
        if ((rc = s_del(ctx->txn, ctx->dbi[S_PRIO], key, 13))) {
            return rc;
        }
        if (rec.expire_at_ns) {
            s_be64_put(key, rec.expire_at_ns);
            s_be32_put(key + 8, topic_id);
            s_be64_put(key + 12, seq);
            if ((rc = s_del(ctx->txn, ctx->dbi[S_EXPIRY], key, 20))) {
                return rc;
            }
        }
        t->topic.bytes -= rec.payload_size <= t->topic.bytes ? rec.payload_size : t->topic.bytes;
    }
    if ((rc = s_del(ctx->txn, ctx->dbi[S_LOG], tkey, 12))) {
        return rc;
    }
    *gone = true;
    if (t->topic.msgs) {
        t->topic.msgs--;
    }
    if (t->topic.msgs == 0) {
        t->topic.bytes = 0;
    }
    if (seq == t->topic.first_seq) {
        rc = st_first_seq(ctx, topic_id, seq + 1, t->topic.last_seq, &t->topic.first_seq, NULL);
    }
    t->dirty = true;
    return rc;
}

static int s_remove_first(st_txn_t *ctx, st_cached_t *t, bool *gone) {
    uint64_t first;
    int rc = st_first_seq(ctx, (uint32_t)t->topic.id, t->topic.first_seq, t->topic.last_seq, &first,
                          NULL);
    if (rc) {
        return rc;
    }
    *gone = false;
    if (first > t->topic.last_seq) {
        t->topic.first_seq = first;
        t->topic.msgs = 0;
        t->topic.bytes = 0;
        t->dirty = true;
        return 0;
    }
    t->topic.first_seq = first;
    return st_msg_remove(ctx, t, first, gone);
}

/* ------------------------------------------------------------------------
    Append, in steps: check, msgid, dedup, record, outbox, retention
   ------------------------------------------------------------------------ */

//  The string lengths of MSG into LENS, and whether it can be stored:
//  TERN_OK or the append's error.
static tern_err_t s_append_check(const tern_frame_t *msg, st_lens_t *lens) {
    lens->topic = s_name_len(msg->topic, TERN_TOPIC_MAX);
    lens->producer = s_name_len(msg->producer, TERN_NAME_MAX);
    lens->key = s_name_len(msg->key, TERN_KEY_MAX);
    lens->trace = s_name_len(msg->trace_id, TERN_TRACE_MAX);
    lens->origin = s_name_len(msg->origin, TERN_NAME_MAX);
    if (lens->topic == 0 || lens->topic > TERN_TOPIC_MAX) {
        return TERN_ETOPIC;
    }
    if (lens->producer > TERN_NAME_MAX || lens->key > TERN_KEY_MAX ||
        lens->trace > TERN_TRACE_MAX || lens->origin > TERN_NAME_MAX ||
        msg->meta_size > UINT32_MAX / 4 || msg->payload_size > UINT32_MAX / 4) {
        return TERN_ETOOBIG;
    }
    if (msg->priority > TERN_PRIORITY_MAX) {
        return TERN_ERANGE;
    }
    if ((msg->payload_size && !msg->payload) || (msg->meta_size && !msg->meta)) {
        return TERN_EINVAL;
    }
    return TERN_OK;
}

//  The msgid entry an append puts: its key, and the entry it replaced when
//  the msg_id's message was removed here before (only its history was left).
typedef struct {
    uint8_t key[8];            //  msg_id BE64
    uint8_t old[S_MSGID_SIZE]; //  the replaced history entry
    bool replaced;             //  OLD is set
} s_msgid_slot_t;

//  Puts the msgid entry of MSG, stored at (TOPIC_ID, SEQ) with outbox
//  POSITION (0: not shipped). Replicated and retried records are idempotent
//  by msg_id: *DUP when it is stored already, RES then names the copy. The
//  entry also carries what the history needs (stored time, position).
static int s_msgid_put(st_txn_t *ctx, const tern_frame_t *msg, uint32_t topic_id, uint64_t seq,
                       uint64_t position, s_msgid_slot_t *slot, tern_append_result_t *res,
                       bool *dup) {
    uint8_t idval[S_MSGID_SIZE];
    s_be64_put(slot->key, msg->msg_id);
    s_be32_put(idval + M_TOPIC, topic_id);
    s_be64_put(idval + M_SEQ, seq);
    s_le64_put(idval + M_AT, ctx->now_ns);
    s_le64_put(idval + M_POSITION, position);
    idval[M_FLAGS] = 0;
    MDB_val k = {8, slot->key}, v = {S_MSGID_SIZE, idval};
    int rc = mdb_put(ctx->txn, ctx->dbi[S_MSGID], &k, &v, MDB_APPEND);
    if (rc == MDB_KEYEXIST) {
        //  Not above the last id: the checked put tells a replay apart.
        v = (MDB_val){S_MSGID_SIZE, idval};
        rc = mdb_put(ctx->txn, ctx->dbi[S_MSGID], &k, &v, MDB_NOOVERWRITE);
        if (rc == MDB_KEYEXIST && v.mv_size == S_MSGID_SIZE &&
            (((uint8_t *)v.mv_data)[M_FLAGS] & S_MSGID_REMOVED)) {
            //  Its message was removed here (only its history is left):
            //  stored again, as when the entry went with the message.
            memcpy(slot->old, v.mv_data, S_MSGID_SIZE);
            slot->replaced = true;
            v = (MDB_val){S_MSGID_SIZE, idval};
            rc = mdb_put(ctx->txn, ctx->dbi[S_MSGID], &k, &v, 0);
        }
        if (rc == 0 && msg->msg_id < ctx->trace_next) {
            ctx->trace_next = msg->msg_id; //  the trace sweep must come back for it
        }
    }
    if (rc == MDB_KEYEXIST) {
        *dup = true;
        res->duplicate = true;
        res->msg_id = msg->msg_id;
        if (v.mv_size == S_MSGID_SIZE) {
            res->topic_id = s_be32_get((uint8_t *)v.mv_data + M_TOPIC);
            res->seq = s_be64_get((uint8_t *)v.mv_data + M_SEQ);
        }
        return 0;
    }
    return rc;
}

//  The dedup check of OP's message (producer PLEN bytes), to be stored at
//  (TOPIC_ID, SEQ). *DUP when it is a duplicate: RES names the original and
//  the msgid entry in SLOT is undone. A replication conflict the incoming
//  record wins (lowest msg_id) removes the stored copy instead.
static int s_append_dedup(st_txn_t *ctx, const st_op_t *op, size_t plen, uint32_t topic_id,
                          uint64_t seq, const s_msgid_slot_t *slot, tern_append_result_t *res,
                          bool *dup) {
    const tern_frame_t *msg = op->msg;
    int rc = st_dedup(ctx, msg, plen, topic_id, seq, res, dup);
    if (rc) {
        return rc;
    }
    if (*dup && !op->flag && msg->msg_id && res->msg_id > msg->msg_id) {
        if ((rc = st_supersede(ctx, msg, plen, res, topic_id, seq))) {
            return rc;
        }
        memset(res, 0, sizeof *res);
        res->topic_id = topic_id;
        *dup = false;
    }
    if (*dup) {
        if (slot->replaced) {
            MDB_val k = {8, (void *)slot->key}, v = {S_MSGID_SIZE, (void *)slot->old};
            return mdb_put(ctx->txn, ctx->dbi[S_MSGID], &k, &v, 0);
        }
        return msg->msg_id ? s_del(ctx->txn, ctx->dbi[S_MSGID], slot->key, 8) : 0;
    }
    return 0;
}

//  Writes MSG's record at (TOPIC_ID, SEQ), one reserved value, and its
//  priority-lane and expiry index entries.
static int s_append_record(st_txn_t *ctx, const tern_frame_t *msg, uint32_t topic_id, uint64_t seq,
                           const st_lens_t *lens) {
    size_t size = st_record_size(msg, lens);
    uint8_t key[20];
    s_be32_put(key, topic_id);
    s_be64_put(key + 4, seq);
    MDB_val k = {12, key}, v = {size, NULL};
    int rc = s_put_tail(ctx->txn, ctx->dbi[S_LOG], &k, &v, MDB_RESERVE);
    if (rc) {
        return rc;
    }
    st_record_write(v.mv_data, msg, topic_id, seq, lens);

    //  Indexes (KEY still holds topic BE32 + seq BE64).
    key[4] = msg->priority;
    s_be64_put(key + 5, seq);
    k = (MDB_val){13, key};
    v = (MDB_val){0, NULL};
    if ((rc = s_put_tail(ctx->txn, ctx->dbi[S_PRIO], &k, &v, 0))) {
        return rc;
    }
    if (msg->expire_at_ns) {
        s_be64_put(key, msg->expire_at_ns);
        s_be32_put(key + 8, topic_id);
        s_be64_put(key + 12, seq);
        k = (MDB_val){20, key};
        v = (MDB_val){0, NULL};
        rc = mdb_put(ctx->txn, ctx->dbi[S_EXPIRY], &k, &v, 0);
    }
    return rc;
}

//  Counts message SEQ (PAYLOAD_SIZE bytes) in topic T, then applies count
//  and size retention (the newest message stays).
static int s_append_retain(st_txn_t *ctx, st_cached_t *t, uint64_t seq, size_t payload_size) {
    if (t->topic.msgs == 0) {
        t->topic.first_seq = seq;
    }
    t->topic.last_seq = seq;
    t->topic.msgs++;
    t->topic.bytes += payload_size;
    t->dirty = true;
    while (t->topic.msgs > 1 && ((t->topic.max_msgs && t->topic.msgs > t->topic.max_msgs) ||
                                 (t->topic.max_bytes && t->topic.bytes > t->topic.max_bytes))) {
        bool gone;
        int rc = s_remove_first(ctx, t, &gone);
        if (rc) {
            return rc;
        }
        if (!gone) {
            break;
        }
        ctx->trimmed++;
    }
    return 0;
}

//  The common start of both appends: the storage-full gate, the checks, and
//  MSG's topic (created on first use when CREATE; a topic that does not
//  exist is TERN_ESTATE otherwise) into *T; *T is NULL when RES->err says
//  why the message cannot be stored.
static int s_append_open(st_txn_t *ctx, const tern_frame_t *msg, bool create,
                         tern_append_result_t *res, st_lens_t *lens, st_cached_t **t) {
    *t = NULL;
    if (ctx->no_appends || ctx->appended >= ctx->append_limit) {
        res->err = TERN_EFULL;
        return 0;
    }
    ctx->appended++;
    if ((res->err = s_append_check(msg, lens)) != TERN_OK) {
        return 0;
    }
    st_cached_t *found;
    tern_err_t err;
    int rc = st_topic_find(ctx, msg->topic, lens->topic, create, &found, &err);
    if (rc || (res->err = err) != TERN_OK) {
        return rc;
    }
    if (!found->exists) {
        res->err = TERN_ESTATE;
        return 0;
    }
    *t = found;
    res->topic_id = (uint32_t)found->topic.id;
    return 0;
}

//  The common end, once MSG is known to be new at SEQ of topic T (its
//  msgid entry in SLOT, its dedup entry written): the record, the outbox
//  entry at (PT, POSITION) unless POSITION is 0, the counters and
//  retention, and RES.
static int s_append_finish(st_txn_t *ctx, const tern_frame_t *msg, st_cached_t *t, uint64_t seq,
                           const st_lens_t *lens, const s_msgid_slot_t *slot, uint32_t pt,
                           uint64_t position, tern_append_result_t *res) {
    uint32_t topic_id = (uint32_t)t->topic.id;
    int rc;
    if (slot->replaced && (rc = st_del_prefix(ctx, ctx->dbi[S_TRACE], slot->old, 12, NULL))) {
        return rc; //  the replaced history can no longer be found or swept
    }
    if ((rc = s_append_record(ctx, msg, topic_id, seq, lens))) {
        return rc;
    }
    //  No STORED event now: a scan makes it from the record while the
    //  message is stored, and s_msgid_release writes it when it leaves.
    if (position) {
        tern_outbox_entry_t e;
        memset(&e, 0, sizeof e);
        e.topic_id = topic_id;
        e.seq = seq;
        e.msg_id = msg->msg_id;
        if ((rc = st_outbox_put(ctx, pt, position, &e))) {
            return rc;
        }
    }
    if ((rc = s_append_retain(ctx, t, seq, msg->payload_size))) {
        return rc;
    }
    res->err = TERN_OK;
    res->seq = seq;
    res->msg_id = msg->msg_id;
    res->outbox_pos = position;
    return 0;
}

int st_op_append(st_txn_t *ctx, st_op_t *op) {
    const tern_frame_t *msg = op->msg;
    tern_append_result_t dummy;
    tern_append_result_t *res = op->result ? op->result : &dummy;
    memset(res, 0, sizeof *res);
    st_lens_t lens;
    st_cached_t *t;
    int rc = s_append_open(ctx, msg, true, res, &lens, &t);
    if (rc || !t) {
        return rc;
    }
    uint64_t seq = t->topic.last_seq + 1;
    bool shipped = op->flag && ctx->store->config.outbox;
    uint32_t pt = shipped ? st_outbox_pt_of(ctx->store, msg->topic, lens.topic) : 0;
    uint64_t position = shipped ? st_outbox_next(ctx, pt) : 0;
    s_msgid_slot_t slot;
    slot.replaced = false;
    bool dup = false;
    if (msg->msg_id) {
        if ((rc = s_msgid_put(ctx, msg, res->topic_id, seq, position, &slot, res, &dup)) || dup) {
            return rc;
        }
    }
    if (lens.producer) {
        if ((rc = s_append_dedup(ctx, op, lens.producer, res->topic_id, seq, &slot, res, &dup)) ||
            dup) {
            return rc;
        }
    }
    return s_append_finish(ctx, msg, t, seq, &lens, &slot, pt, position, res);
}

/* ------------------------------------------------------------------------
    The in-DC follower's log: appends at the leader's seq, truncation
   ------------------------------------------------------------------------ */

//  MSG comes for SEQ <= last_seq of topic T: a duplicate when SEQ holds MSG
//  (or held it: its msgid entry still points there after a TTL or retention
//  removal), else TERN_ESTATE in RES (the follower's log diverged there).
static int s_replica_held(st_txn_t *ctx, const tern_frame_t *msg, st_cached_t *t, uint64_t seq,
                          tern_append_result_t *res) {
    uint32_t topic_id = (uint32_t)t->topic.id;
    uint8_t key[12];
    s_be32_put(key, topic_id);
    s_be64_put(key + 4, seq);
    MDB_val k = {12, key}, v;
    int rc = mdb_get(ctx->txn, ctx->dbi[S_LOG], &k, &v);
    bool same = false;
    if (rc == 0) {
        st_record_t rec;
        same = st_record_parse(&v, false, &rec) == TERN_OK && rec.msg_id == msg->msg_id;
    } else if (rc == MDB_NOTFOUND && msg->msg_id) {
        uint8_t idkey[8];
        s_be64_put(idkey, msg->msg_id);
        k = (MDB_val){8, idkey};
        rc = mdb_get(ctx->txn, ctx->dbi[S_MSGID], &k, &v);
        same = rc == 0 && v.mv_size == S_MSGID_SIZE && !memcmp(v.mv_data, key, 12);
    }
    if (rc && rc != MDB_NOTFOUND) {
        return rc;
    }
    res->err = same ? TERN_OK : TERN_ESTATE;
    res->duplicate = same;
    res->seq = seq;
    res->msg_id = msg->msg_id;
    return 0;
}

int st_op_append_replica(st_txn_t *ctx, st_op_t *op) {
    const tern_frame_t *msg = op->msg;
    tern_append_result_t dummy;
    tern_append_result_t *res = op->result ? op->result : &dummy;
    memset(res, 0, sizeof *res);
    if (msg->seq == 0) {
        res->err = TERN_ERANGE; //  seqs start at 1
        return 0;
    }
    st_lens_t lens;
    st_cached_t *t;
    //  A live record of a topic this copy lacks must be its seq 1 (the hole
    //  guard below): any other is refused before the topic is created.
    bool create = !op->flag || msg->seq == 1;
    int rc = s_append_open(ctx, msg, create, res, &lens, &t);
    if (rc || !t) {
        if (res->err == TERN_ESTATE) {
            res->seq = msg->seq;
            res->msg_id = msg->msg_id;
        }
        return rc;
    }
    uint64_t seq = msg->seq;
    if (seq <= t->topic.last_seq) {
        return s_replica_held(ctx, msg, t, seq, res);
    }
    if (op->flag && seq != t->topic.last_seq + 1) {
        //  The live stream skipped a record: storing this one would leave
        //  a hole no later SYNC anchor shows. The follower syncs again.
        res->err = TERN_ESTATE;
        res->seq = seq;
        res->msg_id = msg->msg_id;
        return 0;
    }
    //  The leader's outbox entry of the record, at the leader's position
    //  (a single node's store has no partitions: never shipped from here).
    uint64_t position = ctx->store->ob_work ? msg->outbox_pos : 0;
    uint32_t pt = position ? st_outbox_pt_of(ctx->store, msg->topic, lens.topic) : 0;
    s_msgid_slot_t slot;
    slot.replaced = false;
    bool dup = false;
    if (msg->msg_id &&
        ((rc = s_msgid_put(ctx, msg, res->topic_id, seq, position, &slot, res, &dup)) || dup)) {
        if (dup) {
            res->err = TERN_ESTATE; //  stored at another seq: not the leader's log
            res->duplicate = false;
        }
        return rc;
    }
    if (lens.producer && (rc = st_dedup_set(ctx, msg, lens.producer, res->topic_id, seq))) {
        return rc;
    }
    return s_append_finish(ctx, msg, t, seq, &lens, &slot, pt, position, res);
}

//  Removes message SEQ of topic T (RECORD) for a truncation: its dedup
//  entry, then the message with its indexes (st_msg_remove; the history it
//  keeps goes in s_truncate_rest). A damaged record is still removed; its
//  dedup entry is then unknown and left. *GONE as st_msg_remove.
static int s_truncate_one(st_txn_t *ctx, st_cached_t *t, uint64_t seq, const MDB_val *record,
                          bool *gone) {
    st_record_t rec;
    int rc = 0;
    if (st_record_parse(record, false, &rec) == TERN_OK && rec.base[R_PRODUCER_LEN]) {
        const uint8_t *p = rec.base;
        char producer[TERN_NAME_MAX];
        size_t plen = p[R_PRODUCER_LEN];
        memcpy(producer, p + R_HEADER, plen); //  copied: the writes below may move it
        rc = st_dedup_drop(ctx, producer, plen, s_le64_get(p + R_PSEQ), rec.msg_id);
    }
    return rc ? rc : st_msg_remove(ctx, t, seq, gone);
}

//  After the messages: the groups, the history of every seq past AFTER (of
//  those just removed and of those TTL or retention removed before: the
//  seqs will hold other messages, and history is keyed by seq), and the
//  counters.
static int s_truncate_rest(st_txn_t *ctx, st_cached_t *t, uint64_t after) {
    uint32_t topic_id = (uint32_t)t->topic.id;
    int rc = st_groups_truncate(ctx, topic_id, after);
    if (rc == 0) {
        rc = st_trace_truncate(ctx, topic_id, after);
    }
    t->topic.last_seq = after;
    if (t->topic.msgs == 0) {
        t->topic.first_seq = after + 1;
        t->topic.bytes = 0;
    }
    t->dirty = true;
    return rc;
}

int st_op_truncate(st_txn_t *ctx, st_op_t *op) {
    tern_err_t *err = s_err_out(op);
    size_t len = strlen(op->name);
    if (len == 0 || op->flag) {
        *err = TERN_ETOPIC;
        return 0;
    }
    st_cached_t *t;
    int rc = st_topic_find(ctx, op->name, len, false, &t, err);
    uint64_t removed = 0, after = op->a;
    bool raise = op->u32 != 0 && rc == 0 && t->exists && after > t->topic.last_seq;
    while (rc == 0 && t->exists && after < t->topic.last_seq) {
        uint64_t first;
        MDB_val record;
        rc =
            st_first_seq(ctx, (uint32_t)t->topic.id, after + 1, t->topic.last_seq, &first, &record);
        if (rc || first > t->topic.last_seq) {
            break;
        }
        bool gone;
        if ((rc = s_truncate_one(ctx, t, first, &record, &gone)) == 0 && !gone) {
            rc = MDB_CORRUPTED;
        }
        removed++;
    }
    if (rc == 0 && t->exists && (after < t->topic.last_seq || raise)) {
        rc = s_truncate_rest(ctx, t, after);
    }
    if (op->count_out) {
        *op->count_out = removed;
    }
    *err = rc ? *err : TERN_OK;
    return rc;
}

/* ------------------------------------------------------------------------
    Topics
   ------------------------------------------------------------------------ */

int st_op_topic_put(st_txn_t *ctx, st_op_t *op) {
    size_t len = strlen(op->name);
    tern_err_t *err = s_err_out(op);
    if (len == 0 || op->flag) {
        *err = TERN_ETOPIC;
        return 0;
    }
    st_cached_t *t;
    int rc = st_topic_find(ctx, op->name, len, false, &t, err);
    if (rc) {
        return rc;
    }
    if (t->exists ? op->u32 == TERN_TOPIC_CREATE : op->u32 == TERN_TOPIC_EDIT) {
        *err = t->exists ? TERN_EEXIST : TERN_ENOTFOUND;
        return 0;
    }
    if ((rc = st_topic_find(ctx, op->name, len, true, &t, err)) || *err) {
        return rc;
    }
    t->topic.max_age_ms = op->a;
    t->topic.max_msgs = op->b;
    t->topic.max_bytes = op->c;
    t->dirty = true;
    if (op->id_out) {
        *op->id_out = (uint32_t)t->topic.id;
    }
    return 0;
}

//  Purge: every stored message of topic T goes, in this transaction; the
//  topic and its groups stay. *REMOVED gets how many.
static int s_topic_purge(st_txn_t *ctx, st_cached_t *t, uint64_t *removed) {
    uint32_t topic_id = (uint32_t)t->topic.id;
    for (;;) {
        uint64_t first;
        int rc = st_first_seq(ctx, topic_id, 0, t->topic.last_seq, &first, NULL);
        if (rc || first > t->topic.last_seq) {
            t->topic.first_seq = t->topic.last_seq + 1;
            t->topic.msgs = 0;
            t->topic.bytes = 0;
            t->dirty = true;
            return rc;
        }
        bool gone;
        if ((rc = st_msg_remove(ctx, t, first, &gone))) {
            return rc;
        }
        if (!gone) {
            return MDB_CORRUPTED;
        }
        (*removed)++;
    }
}

//  Delete: the topic's name, id and group records go now, with a tombstone
//  for the rest (messages, pending and DLQ entries): the reaper removes
//  those in bounded steps (tern_store_reap.c), so the largest transaction,
//  and the dirty pages LMDB keeps after it, do not grow with the topic.
//  *REMOVED gets the messages it held.
static int s_topic_doom(st_txn_t *ctx, st_cached_t *t, uint64_t *removed) {
    uint8_t prefix[4];
    s_be32_put(prefix, (uint32_t)t->topic.id);
    int rc;
    if ((rc = st_del_prefix(ctx, ctx->dbi[S_GROUPS], prefix, 4, NULL)) ||
        (rc = s_del(ctx->txn, ctx->dbi[S_TOPIC_IDS], prefix, 4)) ||
        (rc = st_doom(ctx, (uint32_t)t->topic.id, t->topic.last_seq))) {
        return rc;
    }
    //  Cached groups of the topic are gone too.
    for (size_t i = 0; i < ctx->batch->cache_count; i++) {
        st_cached_t *c = ctx->batch->cache[i];
        if (c->is_group && !memcmp(c->key, prefix, 4)) {
            c->exists = false;
            c->dirty = false;
        }
    }
    *removed = t->topic.msgs;
    t->exists = false;
    t->dirty = true;
    ctx->d_topics--;
    return 0;
}

int st_op_topic_delete(st_txn_t *ctx, st_op_t *op) {
    tern_err_t *err = s_err_out(op);
    st_cached_t *t;
    int rc = st_topic_find(ctx, op->name, strlen(op->name), false, &t, err);
    if (rc) {
        return rc;
    }
    if (!t->exists) {
        *err = TERN_ENOTFOUND;
        return 0;
    }
    uint64_t removed = 0;
    rc = op->flag ? s_topic_purge(ctx, t, &removed) : s_topic_doom(ctx, t, &removed);
    if (rc) {
        return rc;
    }
    if (op->count_out) {
        *op->count_out = removed;
    }
    *err = TERN_OK;
    return 0;
}

//  Where the stored messages of TOPIC_ID (seqs FIRST..LAST in LOG) with
//  timestamp >= AT_NS begin, into *SEQ (LAST + 1 when there is none); the
//  writer's group start and the reader's tern_store_seq_at_time. A binary
//  search: timestamps grow with seq (receive time).
int st_seq_at_time(MDB_txn *txn, MDB_dbi log, uint32_t topic_id, uint64_t first, uint64_t last,
                   uint64_t at_ns, uint64_t *seq) {
    uint64_t lo = first, hi = last + 1;
    int rc = 0;
    while (lo < hi && rc == 0) {
        uint64_t mid = lo + (hi - lo) / 2, found = last + 1, ts = 0;
        uint8_t key[12];
        s_be32_put(key, topic_id);
        s_be64_put(key + 4, mid);
        st_iter_t it;
        s_iter_open(&it, txn, log, key, 12);
        if (s_iter_in(&it, key, 4, 12)) {
            found = s_be64_get((uint8_t *)it.k.mv_data + 4);
            st_record_t rec;
            if (st_record_parse(&it.v, false, &rec) == TERN_OK) {
                ts = rec.timestamp_ns;
            } else {
                rc = MDB_CORRUPTED;
            }
        }
        rc = s_iter_end(&it, rc);
        if (found > last || ts >= at_ns) {
            hi = mid;
        } else {
            lo = found + 1;
        }
    }
    *seq = lo;
    return rc;
}

//  The first stored message at or after SEQ: its seq into *FOUND_SEQ
//  (last_seq + 1 when there is none) and its timestamp into *TS.
int st_seq_time(st_txn_t *ctx, st_cached_t *t, uint64_t seq, uint64_t *found_seq, uint64_t *ts) {
    MDB_val v;
    int rc = st_first_seq(ctx, (uint32_t)t->topic.id, seq, t->topic.last_seq, found_seq, &v);
    if (rc || *found_seq > t->topic.last_seq) {
        return rc;
    }
    st_record_t rec;
    if (st_record_parse(&v, false, &rec) != TERN_OK) {
        return MDB_CORRUPTED;
    }
    *ts = rec.timestamp_ns;
    return 0;
}
