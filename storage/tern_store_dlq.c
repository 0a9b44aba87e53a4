/*  tern_store_dlq.c - dead letters: replay to pending, purge, list, get.

    A group's DLQ holds the entries tern_store_group.c dead-lettered (after
    max_deliver, a TERM, or a peer's TERM), keyed like pending entries
    (topic, group, NUL, seq) with the reason after the entry value. Replay
    moves entries back to pending with delivery count 0 (the route actor
    redelivers them); purge drops them and leaves the messages in the log.
*/
#include "tern_store_int.h"

/* ------------------------------------------------------------------------
    Queueing
   ------------------------------------------------------------------------ */

void tern_store_batch_dlq_replay(tern_store_batch_t *self, uint32_t topic_id, const char *group,
                                 uint64_t seq, uint64_t due_ms, tern_err_t *result_err,
                                 uint64_t *moved) {
    st_op_t *op = st_group_op(self, OP_DLQ_REPLAY, topic_id, group, seq);
    op->flag = seq != 0; //  one entry, else the whole DLQ
    op->b = due_ms;
    op->err_out = result_err;
    op->count_out = moved;
}

void tern_store_batch_dlq_purge(tern_store_batch_t *self, uint32_t topic_id, const char *group,
                                tern_err_t *result_err, uint64_t *removed) {
    st_op_t *op = st_group_op(self, OP_DLQ_PURGE, topic_id, group, 0);
    op->err_out = result_err;
    op->count_out = removed;
}

/* ------------------------------------------------------------------------
    Replay and purge
   ------------------------------------------------------------------------ */

//  Moves the DLQ entry at CUR (key K, value V; the group's key prefix is
//  PLEN bytes) to G's pending set, due at DUE_MS, with its REPLAYED event.
static int s_replay_entry(st_txn_t *ctx, st_op_t *op, st_cached_t *g, MDB_cursor *cur,
                          const MDB_val *k, const MDB_val *v, size_t plen) {
    uint8_t pkey[S_ENTRY_KEY_MAX], val[S_ENTRY_SIZE];
    memcpy(pkey, k->mv_data, k->mv_size);
    uint8_t prio = v->mv_size >= S_ENTRY_SIZE ? ((uint8_t *)v->mv_data)[4] : 0;
    MDB_val pk = {plen + 8, pkey}, pv;
    s_entry_put(val, 0, prio, op->b);
    pv = (MDB_val){S_ENTRY_SIZE, val};
    int rc = mdb_put(ctx->txn, ctx->dbi[S_PENDING], &pk, &pv, MDB_NOOVERWRITE);
    if (rc == 0) {
        g->group.pending++;
    } else if (rc == MDB_KEYEXIST) {
        pv = (MDB_val){S_ENTRY_SIZE, val};
        rc = mdb_put(ctx->txn, ctx->dbi[S_PENDING], &pk, &pv, 0);
    }
    if (rc || (rc = mdb_cursor_del(cur, 0))) {
        return rc;
    }
    if (g->group.dead) {
        g->group.dead--;
    }
    return st_trace_put(ctx, op->topic_id, s_be64_get(pkey + plen), TERN_TRACE_REPLAYED, op->name,
                        0, NULL, 0, 0);
}

int st_op_dlq_replay(st_txn_t *ctx, st_op_t *op) {
    st_cached_t *g;
    int rc = st_group_of(ctx, op, &g);
    if (rc || !g) {
        return rc;
    }
    uint8_t key[S_ENTRY_KEY_MAX];
    size_t klen = s_op_entry_key(op, key), plen = klen - 8;
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(ctx->txn, ctx->dbi[S_DLQ], &cur))) {
        return rc;
    }
    uint64_t moved = 0;
    //  One entry (flag): the range starts at its key and stops after it.
    MDB_val k = {op->flag ? klen : plen, key}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size == plen + 8 && !memcmp(k.mv_data, key, plen) &&
           (!op->flag || (moved == 0 && !memcmp(k.mv_data, key, klen)))) {
        uint8_t next[S_ENTRY_KEY_MAX];
        memcpy(next, k.mv_data, k.mv_size);
        if ((rc = s_replay_entry(ctx, op, g, cur, &k, &v, plen))) {
            break;
        }
        moved++;
        k = (MDB_val){plen + 8, next};
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    }
    mdb_cursor_close(cur);
    if (rc && rc != MDB_NOTFOUND) {
        return rc;
    }
    g->dirty = true;
    if (op->count_out) {
        *op->count_out = moved;
    }
    if (op->err_out) {
        *op->err_out = moved ? TERN_OK : TERN_ENOTFOUND;
    }
    return 0;
}

int st_op_dlq_purge(st_txn_t *ctx, st_op_t *op) {
    st_cached_t *g;
    int rc = st_group_of(ctx, op, &g);
    if (rc || !g) {
        return rc;
    }
    uint8_t key[S_ENTRY_KEY_MAX];
    size_t plen = s_op_entry_key(op, key) - 8;
    uint64_t removed = 0;
    if ((rc = st_del_prefix(ctx, ctx->dbi[S_DLQ], key, plen, &removed))) {
        return rc;
    }
    g->group.dead = g->group.dead > removed ? g->group.dead - removed : 0;
    g->dirty = true;
    if (op->count_out) {
        *op->count_out = removed;
    }
    if (op->err_out) {
        *op->err_out = TERN_OK;
    }
    return 0;
}

/* ------------------------------------------------------------------------
    Reads
   ------------------------------------------------------------------------ */

tern_err_t tern_store_dlq_list(tern_store_reader_t *self, uint32_t topic_id, const char *group,
                               tern_entry_fn *fn, void *arg) {
    return st_entry_list(self, S_DLQ, topic_id, group, fn, arg);
}

tern_err_t tern_store_dlq_get(tern_store_reader_t *self, uint32_t topic_id, const char *group,
                              uint64_t seq, tern_entry_t *out) {
    S_READER_CHECK(self);
    size_t len = s_name_len(group, TERN_NAME_MAX);
    if (len == 0 || len > TERN_NAME_MAX) {
        return TERN_ENAME;
    }
    uint8_t key[S_ENTRY_KEY_MAX];
    MDB_val k = {s_entry_key(key, topic_id, group, len, seq, true), key}, v;
    int rc = mdb_get(self->txn, self->store->dbi[S_DLQ], &k, &v);
    return rc ? s_err(rc) : st_entry_parse(&k, &v, out);
}
