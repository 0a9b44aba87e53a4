/*  tern_store_outbox.c - the per-partition outbox of a clustered store.

    A store opened with partitions P > 0 is a replica in a clustered DC
    (docs/cluster.md): what it ships cross-DC is the outbox of each
    partition, and that outbox must be the same on every replica of the
    partition, so that a new leader ships on from where the old one was
    confirmed (docs/replication.md "Outbox in a cluster"). Entries are keyed
    (partition BE32, position BE64) in S_OUTBOX_PT (same value format as the
    single node's S_OUTBOX, tern_store_repl.c); the leader writes them at
    the partition's next position, its followers at the leader's position
    (append_replica's MSG->outbox_pos, tern_store_batch_outbox_put). Each
    partition's last position is writer state (meta
    "store.outbox_last.PT"), kept here in ob_last and moved in ob_work by an
    attempt; the partitions an attempt moved (ob_dirty) become the batch's
    marks at commit, which the storer turns into OBSAFE. Peers confirm per
    (peer, partition) in S_PEERS_PT; the sweep drops, per partition, what
    every known peer confirmed and what is past retention.

    A single node (P = 0) never comes here: its outbox is tern_store_repl.c's,
    bytes and behaviour unchanged.
*/
#include "tern_store_int.h"

#include <stdio.h>
#include <stdlib.h>

/* ------------------------------------------------------------------------
    Writer state: each partition's last position
   ------------------------------------------------------------------------ */

static void s_last_name(char *name, size_t cap, uint32_t pt) {
    snprintf(name, cap, "%s%u", S_META_OUTBOX_LAST_PT, pt);
}

int st_ob_load(tern_store_t *store, MDB_txn *txn) {
    uint32_t parts = store->config.partitions;
    if (parts == 0) {
        return 0;
    }
    store->ob_last = tern_alloc(parts * sizeof *store->ob_last);
    store->ob_work = tern_alloc(parts * sizeof *store->ob_work);
    store->ob_dirty = tern_alloc(parts * sizeof *store->ob_dirty);
    store->ob_dirty_count = 0;
    for (uint32_t pt = 0; pt < parts; pt++) {
        char name[48];
        s_last_name(name, sizeof name, pt);
        uint64_t last = 0;
        int rc = s_get_u64(txn, store->dbi[S_META], name, &last);
        if (rc && rc != MDB_NOTFOUND) {
            return rc;
        }
        store->ob_last[pt] = store->ob_work[pt] = rc ? 0 : last;
    }
    return 0;
}

void st_ob_free(tern_store_t *store) {
    free(store->ob_last);
    free(store->ob_work);
    free(store->ob_dirty);
    store->ob_last = store->ob_work = NULL;
    store->ob_dirty = NULL;
}

//  An attempt starts from the committed state (a failed one left its moves).
void st_ob_reset(st_txn_t *ctx) {
    tern_store_t *store = ctx->store;
    for (size_t i = 0; i < store->ob_dirty_count; i++) {
        uint32_t pt = store->ob_dirty[i];
        store->ob_work[pt] = store->ob_last[pt];
    }
    store->ob_dirty_count = 0;
}

//  PT's last position becomes POS (up or, for a reset, down).
static void s_ob_set(tern_store_t *store, uint32_t pt, uint64_t pos) {
    if (store->ob_work[pt] == store->ob_last[pt] && pos != store->ob_last[pt]) {
        bool listed = false; //  moved back to its committed value earlier in the attempt
        for (size_t i = 0; i < store->ob_dirty_count && !listed; i++) {
            listed = store->ob_dirty[i] == pt;
        }
        if (!listed) {
            store->ob_dirty[store->ob_dirty_count++] = pt;
        }
    }
    store->ob_work[pt] = pos;
}

void st_ob_move(st_txn_t *ctx, uint32_t pt, uint64_t pos) {
    if (pos > ctx->store->ob_work[pt]) {
        s_ob_set(ctx->store, pt, pos);
    }
}

int st_ob_flush(st_txn_t *ctx) {
    tern_store_t *store = ctx->store;
    int rc = 0;
    for (size_t i = 0; i < store->ob_dirty_count && rc == 0; i++) {
        uint32_t pt = store->ob_dirty[i];
        char name[48];
        s_last_name(name, sizeof name, pt);
        rc = s_put_u64(ctx->txn, ctx->dbi[S_META], name, store->ob_work[pt]);
    }
    return rc;
}

//  The partitions that went up in the attempt are the batch's marks (a
//  reset that lowered one ships nothing). Also after tern_store_batch_apply,
//  before the commit, for a leader that ships ahead of it.
void st_ob_marks(st_txn_t *ctx) {
    tern_store_t *store = ctx->store;
    tern_store_batch_t *batch = ctx->batch;
    batch->mark_count = 0;
    for (size_t i = 0; i < store->ob_dirty_count; i++) {
        uint32_t pt = store->ob_dirty[i];
        if (store->ob_work[pt] > store->ob_last[pt]) {
            if (batch->mark_count == batch->mark_cap) {
                batch->mark_cap = batch->mark_cap ? batch->mark_cap * 2 : 16;
                batch->marks = tern_realloc(batch->marks, batch->mark_cap * sizeof *batch->marks);
            }
            batch->marks[batch->mark_count++] = (tern_outbox_mark_t){pt, store->ob_work[pt]};
        }
    }
}

//  After the commit: the moves are committed, and are the batch's marks.
void st_ob_publish(st_txn_t *ctx) {
    tern_store_t *store = ctx->store;
    st_ob_marks(ctx);
    for (size_t i = 0; i < store->ob_dirty_count; i++) {
        uint32_t pt = store->ob_dirty[i];
        store->ob_last[pt] = store->ob_work[pt];
    }
    store->ob_dirty_count = 0;
}

const tern_outbox_mark_t *tern_store_batch_outbox_marks(const tern_store_batch_t *self,
                                                        size_t *count) {
    *count = self && self->mark_count ? self->mark_count : 0;
    return *count ? self->marks : NULL;
}

/* ------------------------------------------------------------------------
    Queueing and applying
   ------------------------------------------------------------------------ */

void tern_store_batch_outbox_confirm_pt(tern_store_batch_t *self, const char *peer, uint32_t pt,
                                        uint64_t pos) {
    if (!self->store->ob_work) {
        if (pt == 0) { //  a single node has one stream
            tern_store_batch_outbox_confirm(self, peer, pos);
        }
        return;
    }
    st_op_t *op = st_batch_push(self, OP_OUTBOX_CONFIRM_PT);
    s_copy_name(op->name, TERN_NAME_MAX + 1, peer);
    op->a = pos;
    op->u32 = pt;
}

void tern_store_batch_outbox_put(tern_store_batch_t *self, const char *topic,
                                 const tern_outbox_entry_t *entry) {
    st_op_t *op = st_batch_push(self, OP_OUTBOX_PUT);
    s_copy_name(op->name, sizeof op->name, topic);
    tern_outbox_entry_t *copy = tern_alloc(sizeof *copy);
    *copy = *entry;
    copy->group[TERN_NAME_MAX] = 0;
    op->data = copy;
    self->bytes += sizeof *copy;
}

void tern_store_batch_outbox_reset_pt(tern_store_batch_t *self, uint32_t pt, uint64_t from,
                                      uint64_t last) {
    st_op_t *op = st_batch_push(self, OP_OUTBOX_RESET);
    op->u32 = pt;
    op->a = from;
    op->b = last;
}

//  The key of PEER's confirmation of PT: peer + NUL + PT BE32 into KEY
//  (TERN_NAME_MAX + 5); returns its length.
static size_t s_peer_key(uint8_t *key, const char *peer, uint32_t pt) {
    size_t len = s_name_len(peer, TERN_NAME_MAX);
    memcpy(key, peer, len);
    key[len] = 0;
    s_be32_put(key + len + 1, pt);
    return len + 5;
}

int st_op_outbox_confirm_pt(st_txn_t *ctx, st_op_t *op) {
    if (!ctx->store->ob_work || op->u32 >= ctx->store->config.partitions || !op->name[0]) {
        return 0;
    }
    uint8_t key[TERN_NAME_MAX + 5];
    MDB_val k = {s_peer_key(key, op->name, op->u32), key}, v;
    int rc = mdb_get(ctx->txn, ctx->dbi[S_PEERS_PT], &k, &v);
    if (rc == 0 && v.mv_size == 8 && s_le64_get(v.mv_data) >= op->a) {
        return 0;
    }
    if (rc && rc != MDB_NOTFOUND) {
        return rc;
    }
    uint8_t buf[8];
    s_le64_put(buf, op->a);
    v = (MDB_val){8, buf};
    return mdb_put(ctx->txn, ctx->dbi[S_PEERS_PT], &k, &v, 0);
}

int st_op_outbox_put(st_txn_t *ctx, st_op_t *op) {
    tern_outbox_entry_t *e = op->data;
    if (!ctx->store->ob_work || e->partition >= ctx->store->config.partitions || !e->position) {
        return 0;
    }
    e->topic_id = 0;
    st_cached_t *t;
    tern_err_t err;
    size_t len = s_name_len(op->name, TERN_TOPIC_MAX);
    int rc = len ? st_topic_find(ctx, op->name, len, false, &t, &err) : 0;
    if (rc) {
        return rc;
    }
    if (len && t && t->exists) {
        e->topic_id = (uint32_t)t->topic.id;
    }
    if (e->is_ackstate && (rc = st_outbox_msg_id(ctx, e))) {
        return rc;
    }
    return st_outbox_put(ctx, e->partition, e->position, e);
}

int st_op_outbox_reset(st_txn_t *ctx, st_op_t *op) {
    tern_store_t *store = ctx->store;
    uint32_t pt = op->u32;
    if (!store->ob_work || pt >= store->config.partitions) {
        return 0;
    }
    uint8_t start[12];
    s_be32_put(start, pt);
    s_be64_put(start + 4, op->a);
    int rc = st_del_range(ctx, ctx->dbi[S_OUTBOX_PT], start, 12, 4, NULL);
    if (rc == 0 && store->ob_work[pt] != op->b) {
        s_ob_set(store, pt, op->b);
    }
    return rc;
}

/* ------------------------------------------------------------------------
    Retention, per partition
   ------------------------------------------------------------------------ */

//  The lowest position of each partition every known peer confirmed into
//  MIN (P entries; 0 where some peer confirmed nothing, or no peer is
//  known: nothing is confirmed then). A peer is known once it confirmed
//  any partition.
static int s_confirmed_min(st_txn_t *ctx, uint64_t *min) {
    uint32_t parts = ctx->store->config.partitions;
    uint32_t *seen = tern_alloc(parts * sizeof *seen);
    memset(seen, 0, parts * sizeof *seen);
    for (uint32_t pt = 0; pt < parts; pt++) {
        min[pt] = UINT64_MAX;
    }
    uint32_t peers = 0;
    uint8_t last[TERN_NAME_MAX + 1];
    size_t last_len = SIZE_MAX;
    st_iter_t it;
    for (s_iter_open(&it, ctx->txn, ctx->dbi[S_PEERS_PT], NULL, 0); s_iter_in(&it, NULL, 0, 0);
         s_iter_next(&it)) {
        if (it.k.mv_size < 5 || it.k.mv_size > TERN_NAME_MAX + 5 || it.v.mv_size != 8) {
            continue; //  not ours to judge here; it confirms nothing
        }
        size_t nlen = it.k.mv_size - 5;
        if (nlen != last_len || memcmp(last, it.k.mv_data, nlen)) {
            peers++; //  keys sort by peer: a new name starts a new peer
            memcpy(last, it.k.mv_data, nlen);
            last_len = nlen;
        }
        uint32_t pt = s_be32_get((uint8_t *)it.k.mv_data + nlen + 1);
        uint64_t pos = s_le64_get(it.v.mv_data);
        if (pt < parts) {
            seen[pt]++;
            min[pt] = pos < min[pt] ? pos : min[pt];
        }
    }
    int rc = s_iter_end(&it, 0);
    for (uint32_t pt = 0; pt < parts; pt++) {
        if (peers == 0 || seen[pt] < peers) {
            min[pt] = 0;
        }
    }
    free(seen);
    return rc;
}

//  Drops, per partition and oldest first, the entries every known peer
//  confirmed and, past outbox_retention_ms, unconfirmed ones (counted in
//  outbox_dropped); at most BUDGET entries looked at.
int st_sweep_outbox_pt(st_txn_t *ctx, uint64_t now_ns, uint64_t budget) {
    uint32_t parts = ctx->store->config.partitions;
    uint64_t *min = tern_alloc(parts * sizeof *min);
    int rc = s_confirmed_min(ctx, min);
    uint64_t retention_ns = ctx->store->config.outbox_retention_ms * 1000000ull;
    uint64_t cutoff = now_ns > retention_ns ? now_ns - retention_ns : 0;
    MDB_cursor *cur = NULL;
    if (rc == 0) {
        rc = mdb_cursor_open(ctx->txn, ctx->dbi[S_OUTBOX_PT], &cur);
    }
    MDB_val k, v;
    MDB_cursor_op step = MDB_FIRST;
    uint8_t next[12];
    while (rc == 0 && budget-- > 0) {
        if ((rc = mdb_cursor_get(cur, &k, &v, step))) {
            break;
        }
        if (k.mv_size != 12) {
            rc = MDB_CORRUPTED;
            break;
        }
        uint32_t pt = s_be32_get(k.mv_data);
        uint64_t pos = s_be64_get((uint8_t *)k.mv_data + 4);
        uint64_t at = v.mv_size >= S_OUTBOX_HDR ? s_le64_get((uint8_t *)v.mv_data + 32) : 0;
        bool confirmed = pt < parts && pos <= min[pt];
        if (confirmed || at < cutoff) {
            ctx->outbox_dropped += !confirmed;
            memcpy(next, k.mv_data, 12); //  re-seek after the delete, as st_del_range
            rc = mdb_cursor_del(cur, 0);
        } else if (pt == UINT32_MAX) {
            break;
        } else {
            s_be32_put(next, pt + 1); //  the rest of PT is newer: on to the next partition
            s_be64_put(next + 4, 0);
        }
        k = (MDB_val){12, next};
        step = MDB_SET_RANGE;
    }
    if (cur) {
        mdb_cursor_close(cur);
    }
    free(min);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* ------------------------------------------------------------------------
    Reads
   ------------------------------------------------------------------------ */

//  TERN_OK when PT names a stream of SELF's store.
static tern_err_t s_pt_check(tern_store_reader_t *self, uint32_t pt) {
    S_READER_CHECK(self);
    uint32_t parts = self->store->config.partitions;
    return (parts == 0 && pt == 0) || pt < parts ? TERN_OK : TERN_EINVAL;
}

tern_err_t tern_store_outbox_read_pt(tern_store_reader_t *self, uint32_t pt, uint64_t from,
                                     size_t max, tern_outbox_fn *fn, void *arg) {
    tern_err_t err = s_pt_check(self, pt);
    if (err != TERN_OK) {
        return err;
    }
    if (self->store->config.partitions == 0) {
        uint8_t key[8];
        s_be64_put(key, from);
        return st_outbox_walk(self, S_OUTBOX, key, 8, 0, max, fn, arg);
    }
    uint8_t key[12];
    s_be32_put(key, pt);
    s_be64_put(key + 4, from);
    return st_outbox_walk(self, S_OUTBOX_PT, key, 12, pt, max, fn, arg);
}

tern_err_t tern_store_outbox_last_pt(tern_store_reader_t *self, uint32_t pt, uint64_t *pos) {
    tern_err_t err = s_pt_check(self, pt);
    *pos = 0;
    if (err != TERN_OK || self->store->config.partitions == 0) {
        return err != TERN_OK ? err : st_outbox_last_one(self, pos);
    }
    char name[48];
    s_last_name(name, sizeof name, pt);
    int rc = s_get_u64(self->txn, self->store->dbi[S_META], name, pos);
    return rc == MDB_NOTFOUND ? TERN_OK : s_err(rc);
}

tern_err_t tern_store_outbox_confirmed_pt(tern_store_reader_t *self, const char *peer, uint32_t pt,
                                          uint64_t *pos) {
    tern_err_t err = s_pt_check(self, pt);
    *pos = 0;
    if (err != TERN_OK || self->store->config.partitions == 0) {
        return err != TERN_OK ? err : st_outbox_confirmed_one(self, peer, pos);
    }
    if (!peer || !*peer || strlen(peer) > TERN_NAME_MAX) {
        return TERN_EINVAL;
    }
    uint8_t key[TERN_NAME_MAX + 5];
    MDB_val k = {s_peer_key(key, peer, pt), key}, v;
    int rc = mdb_get(self->txn, self->store->dbi[S_PEERS_PT], &k, &v);
    if (rc == 0) {
        if (v.mv_size != 8) {
            return TERN_ECORRUPT;
        }
        *pos = s_le64_get(v.mv_data);
    }
    return rc == MDB_NOTFOUND ? TERN_OK : s_err(rc);
}
