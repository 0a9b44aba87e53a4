/*  tern_store_dedup.c - the dedup window: (producer, producer_seq) ->
    the original message, bounded by time and by count per producer.

    An append with a producer id asks st_dedup first (tern_store_log.c): a
    pair seen within dedup_window_ms is a duplicate and reports the original;
    else the pair is recorded with one MDB_NOOVERWRITE put. Each producer's
    entry count lives in dedup_prod and is cached for the transaction below
    (read once, written once per commit, with the dedup_max bound applied
    then). The sweep (tern_store_expiry.c) calls st_sweep_dedup, which walks
    producers from where the last sweep stopped. Replicated records that
    collide with another msg_id resolve to the lowest one (st_supersede).
*/
#include "tern_store_int.h"

#include <stdlib.h>

/* ------------------------------------------------------------------------
    The per-transaction producer cache (dedup counts), same idea as the
    record cache above; hashed, since one batch may carry thousands of
    producers.
   ------------------------------------------------------------------------ */

void st_prod_reset(tern_store_batch_t *b) {
    b->prod_count = 0;
    if (b->slot_cap) {
        memset(b->prod_slots, 0, b->slot_cap * sizeof *b->prod_slots);
    }
}

static void s_prod_slot_add(tern_store_batch_t *b, size_t index) {
    size_t mask = b->slot_cap - 1;
    size_t i = b->prods[index].hash & mask;
    while (b->prod_slots[i]) {
        i = (i + 1) & mask;
    }
    b->prod_slots[i] = (uint32_t)index + 1;
}

//  Finds producer NAME (LEN bytes, 1..TERN_NAME_MAX) in the cache, loading
//  its count from dedup_prod on first use in this transaction. The pointer
//  is valid until the next s_prod_find. Returns an LMDB error code.
static int s_prod_find(st_txn_t *ctx, const char *name, size_t len, st_prod_t **out) {
    tern_store_batch_t *b = ctx->batch;
    if (ctx->prod_hit < b->prod_count) {
        st_prod_t *p = &b->prods[ctx->prod_hit];
        if (p->len == len && !memcmp(p->name, name, len)) {
            *out = p;
            return 0;
        }
    }
    uint32_t hash = st_fnv1a(ST_FNV_BASIS, name, len);
    if (b->slot_cap) {
        size_t mask = b->slot_cap - 1;
        for (size_t i = hash & mask; b->prod_slots[i]; i = (i + 1) & mask) {
            st_prod_t *p = &b->prods[b->prod_slots[i] - 1];
            if (p->hash == hash && p->len == len && !memcmp(p->name, name, len)) {
                ctx->prod_hit = b->prod_slots[i] - 1;
                *out = p;
                return 0;
            }
        }
    }
    if (b->prod_count == b->prod_cap) {
        size_t cap = b->prod_cap ? b->prod_cap * 2 : 16;
        st_prod_t *prods = tern_realloc(b->prods, cap * sizeof *prods);
        uint32_t *slots = tern_alloc(cap * 2 * sizeof *slots);
        free(b->prod_slots);
        b->prods = prods;
        b->prod_cap = cap;
        b->prod_slots = slots;
        b->slot_cap = cap * 2;
        for (size_t i = 0; i < b->prod_count; i++) {
            s_prod_slot_add(b, i);
        }
    }
    st_prod_t *p = &b->prods[b->prod_count];
    memcpy(p->name, name, len);
    p->name[len] = 0;
    p->len = len;
    p->hash = hash;
    p->count = 0;
    p->dirty = false;
    MDB_val k = {len, (void *)name}, v;
    int rc = mdb_get(ctx->txn, ctx->dbi[S_DEDUP_PROD], &k, &v);
    if (rc == 0 && v.mv_size == 8) {
        p->count = s_le64_get(v.mv_data);
    } else if (rc && rc != MDB_NOTFOUND) {
        return rc;
    }
    s_prod_slot_add(b, b->prod_count);
    ctx->prod_hit = b->prod_count++;
    *out = p;
    return 0;
}

//  Count bound: deletes P's lowest producer_seq entries while it has more
//  than dedup_max, with one cursor (the producer's entries are contiguous
//  and in producer_seq order).
static int s_dedup_evict(st_txn_t *ctx, st_prod_t *p, uint64_t max) {
    MDB_cursor *cur;
    int rc = mdb_cursor_open(ctx->txn, ctx->dbi[S_DEDUP], &cur);
    if (rc) {
        return rc;
    }
    uint8_t prefix[TERN_NAME_MAX + 1];
    memcpy(prefix, p->name, p->len + 1); //  name + NUL
    MDB_val k = {p->len + 1, prefix}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && p->count > max) {
        if (k.mv_size != p->len + 9 || memcmp(k.mv_data, prefix, p->len + 1)) {
            //  Fewer entries than counted: the count was off; now it is not.
            p->count = max;
            break;
        }
        if ((rc = mdb_cursor_del(cur, 0))) {
            break;
        }
        p->count--;
        ctx->d_dedup--;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT); //  after a delete: the next entry
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND) {
        p->count = p->count > max ? max : p->count;
        rc = 0;
    }
    return rc;
}

//  Applies the count bound and writes each touched producer's count once.
int st_prod_flush(st_txn_t *ctx) {
    tern_store_batch_t *b = ctx->batch;
    uint64_t max = ctx->store->config.dedup_max;
    for (size_t i = 0; i < b->prod_count; i++) {
        st_prod_t *p = &b->prods[i];
        if (!p->dirty) {
            continue;
        }
        int rc;
        if (max && p->count > max && (rc = s_dedup_evict(ctx, p, max))) {
            return rc;
        }
        if (p->count == 0) {
            rc = s_del(ctx->txn, ctx->dbi[S_DEDUP_PROD], p->name, p->len);
        } else {
            uint8_t cbuf[8];
            s_le64_put(cbuf, p->count);
            MDB_val k = {p->len, p->name}, v = {8, cbuf};
            rc = mdb_put(ctx->txn, ctx->dbi[S_DEDUP_PROD], &k, &v, 0);
        }
        if (rc) {
            return rc;
        }
        p->dirty = false;
    }
    return 0;
}

//  Counts one dedup entry more (DELTA 1) or less (-1) for producer NAME
//  (LEN bytes), in the transaction's producer cache.
static int s_prod_count(st_txn_t *ctx, const char *name, size_t len, int delta) {
    st_prod_t *p;
    int rc = s_prod_find(ctx, name, len, &p);
    if (rc) {
        return rc;
    }
    ctx->d_dedup += delta;
    p->count = delta > 0 ? p->count + 1 : p->count ? p->count - 1 : 0;
    p->dirty = true;
    return 0;
}

//  A dedup entry being written: its key and value.
typedef struct {
    uint8_t key[TERN_NAME_MAX + 9]; //  producer + NUL + producer_seq BE64
    size_t klen;                    //  its length
    uint8_t val[S_DEDUP_SIZE];      //  msg_id, seq, topic id, time
} s_dedup_kv_t;

//  Puts MSG's entry (stored at TOPIC_ID, SEQ) unless its key is there:
//  then *OLD is the stored value (borrowed until the next write) and
//  nothing is written. A new entry is counted.
static int s_dedup_insert(st_txn_t *ctx, const tern_frame_t *msg, size_t plen, uint32_t topic_id,
                          uint64_t seq, s_dedup_kv_t *kv, MDB_val *old, bool *exists) {
    kv->klen = s_dedup_key(kv->key, msg->producer, plen, msg->producer_seq);
    memset(kv->val, 0, sizeof kv->val);
    s_le64_put(kv->val, msg->msg_id);
    s_le64_put(kv->val + 8, seq);
    s_le32_put(kv->val + 16, topic_id);
    s_le64_put(kv->val + 24, ctx->now_ns);
    MDB_val k = {kv->klen, kv->key};
    *old = (MDB_val){S_DEDUP_SIZE, kv->val};
    *exists = false;
    int rc = mdb_put(ctx->txn, ctx->dbi[S_DEDUP], &k, old, MDB_NOOVERWRITE);
    if (rc == MDB_KEYEXIST) {
        *exists = true;
        return 0;
    }
    return rc ? rc : s_prod_count(ctx, msg->producer, plen, 1);
}

//  Overwrites the entry of KV (already counted).
static int s_dedup_overwrite(st_txn_t *ctx, s_dedup_kv_t *kv) {
    MDB_val k = {kv->klen, kv->key}, v = {S_DEDUP_SIZE, kv->val};
    return mdb_put(ctx->txn, ctx->dbi[S_DEDUP], &k, &v, 0);
}

//  True when the stored entry V was written within the dedup window; it
//  names its message in RES then (duplicate set).
static bool s_dedup_live(st_txn_t *ctx, const MDB_val *v, tern_append_result_t *res) {
    uint64_t window_ns = ctx->store->config.dedup_window_ms * 1000000ull;
    if (v->mv_size != S_DEDUP_SIZE) {
        return false;
    }
    const uint8_t *old = v->mv_data;
    uint64_t at = s_le64_get(old + 24);
    if (ctx->now_ns >= at && ctx->now_ns - at >= window_ns) {
        return false;
    }
    res->duplicate = true;
    res->msg_id = s_le64_get(old);
    res->seq = s_le64_get(old + 8);
    res->topic_id = s_le32_get(old + 16);
    return true;
}

//  Dedup: (producer, producer_seq) -> original. Sets *DUP and fills RES when
//  the pair is known within the window; otherwise records it: one put, plus
//  the producer's count in the transaction's cache (written, and the count
//  bound applied, once per commit by st_prod_flush).
int st_dedup(st_txn_t *ctx, const tern_frame_t *msg, size_t plen, uint32_t topic_id, uint64_t seq,
             tern_append_result_t *res, bool *dup) {
    s_dedup_kv_t kv;
    MDB_val v;
    bool exists;
    *dup = false;
    int rc = s_dedup_insert(ctx, msg, plen, topic_id, seq, &kv, &v, &exists);
    if (rc || !exists) {
        return rc;
    }
    if (s_dedup_live(ctx, &v, res)) {
        *dup = true;
        return 0;
    }
    //  Expired (or damaged) but not yet swept: replace it; still counted.
    return s_dedup_overwrite(ctx, &kv);
}

//  In-DC follower: MSG's entry, stored at (TOPIC_ID, SEQ), is written
//  whatever is there (the leader already decided it was no duplicate).
//  But the leader appends a message whose pair is stored under another,
//  higher msg_id within the window only when it wins a replication
//  conflict (s_append_dedup): it removed the other copy then
//  (st_supersede), so we remove ours the same way. The removal so travels
//  with the record that caused it, in the partition's stream, and the
//  replicas stay identical (drill dc_cut_off_twins). The window is judged
//  by our clock: a conflict within milliseconds of the window's end could
//  be judged otherwise here (windows are minutes long).
int st_dedup_set(st_txn_t *ctx, const tern_frame_t *msg, size_t plen, uint32_t topic_id,
                 uint64_t seq) {
    s_dedup_kv_t kv;
    MDB_val v;
    bool exists;
    int rc = s_dedup_insert(ctx, msg, plen, topic_id, seq, &kv, &v, &exists);
    if (rc || !exists) {
        return rc;
    }
    tern_append_result_t old = {0};
    if (msg->msg_id && s_dedup_live(ctx, &v, &old) && old.msg_id > msg->msg_id) {
        return st_supersede(ctx, msg, plen, &old, topic_id, seq);
    }
    return s_dedup_overwrite(ctx, &kv);
}

//  Removes the entry (PRODUCER, PSEQ) if it names MSG_ID (a record being
//  truncated away), so the pair is free again.
int st_dedup_drop(st_txn_t *ctx, const char *producer, size_t plen, uint64_t pseq,
                  uint64_t msg_id) {
    uint8_t key[TERN_NAME_MAX + 9];
    MDB_val k = {s_dedup_key(key, producer, plen, pseq), key}, v;
    int rc = mdb_get(ctx->txn, ctx->dbi[S_DEDUP], &k, &v);
    if (rc) {
        return rc == MDB_NOTFOUND ? 0 : rc;
    }
    if (v.mv_size != S_DEDUP_SIZE || s_le64_get(v.mv_data) != msg_id) {
        return 0; //  another message's entry
    }
    if ((rc = mdb_del(ctx->txn, ctx->dbi[S_DEDUP], &k, NULL))) {
        return rc;
    }
    return s_prod_count(ctx, producer, plen, -1);
}

//  Replication conflict: (producer, producer_seq) of MSG is stored as OLD
//  (another, higher msg_id). Removes OLD from the log and points the dedup
//  entry (its time kept) at MSG, which the caller stores at (TOPIC_ID, SEQ).
int st_supersede(st_txn_t *ctx, const tern_frame_t *msg, size_t plen,
                 const tern_append_result_t *old, uint32_t topic_id, uint64_t seq) {
    st_cached_t *ot = NULL;
    int rc = st_topic_by_id(ctx, old->topic_id, &ot);
    if (rc) {
        return rc;
    }
    if (ot) {
        bool gone = false;
        if ((rc = st_msg_remove(ctx, ot, old->seq, &gone))) {
            return rc;
        }
    }
    uint8_t key[TERN_NAME_MAX + 9];
    MDB_val k = {s_dedup_key(key, msg->producer, plen, msg->producer_seq), key}, v;
    if ((rc = mdb_get(ctx->txn, ctx->dbi[S_DEDUP], &k, &v))) {
        return rc;
    }
    if (v.mv_size != S_DEDUP_SIZE) {
        return MDB_CORRUPTED;
    }
    uint8_t val[S_DEDUP_SIZE];
    memcpy(val, v.mv_data, S_DEDUP_SIZE);
    s_le64_put(val, msg->msg_id);
    s_le64_put(val + 8, seq);
    s_le32_put(val + 16, topic_id);
    v = (MDB_val){S_DEDUP_SIZE, val};
    if ((rc = mdb_put(ctx->txn, ctx->dbi[S_DEDUP], &k, &v, 0))) {
        return rc;
    }
    ctx->superseded++;
    return 0;
}

//  Removes from one producer's entries (cursor DC) the oldest ones that are
//  past CUTOFF, from its lowest producer_seq up to the first one inside the
//  window (producer seqs grow with time; an entry out of that order is still
//  bounded by the count and is treated as expired by the lookup). Counts
//  removals in *REMOVED up to BUDGET; *DONE tells whether the producer's
//  walk ended (rather than the budget).
static int s_sweep_producer(st_txn_t *ctx, MDB_cursor *dc, const uint8_t *name, size_t len,
                            uint64_t cutoff, uint64_t budget, uint64_t *removed, bool *done) {
    st_prod_t *p;
    int rc = s_prod_find(ctx, (const char *)name, len, &p);
    if (rc) {
        return rc;
    }
    uint8_t prefix[TERN_NAME_MAX + 1];
    memcpy(prefix, name, len);
    prefix[len] = 0;
    MDB_val k = {len + 1, prefix}, v;
    rc = mdb_cursor_get(dc, &k, &v, MDB_SET_RANGE);
    bool empty = false;
    *done = false;
    while (rc == 0) {
        if (k.mv_size != len + 9 || memcmp(k.mv_data, prefix, len + 1)) {
            empty = true; //  past the producer's last entry
            break;
        }
        if (v.mv_size == S_DEDUP_SIZE && s_le64_get((uint8_t *)v.mv_data + 24) > cutoff) {
            break; //  the first entry inside the window: the rest are newer
        }
        if (*removed >= budget) {
            return 0;
        }
        if ((rc = mdb_cursor_del(dc, 0))) {
            return rc;
        }
        (*removed)++;
        ctx->d_dedup--;
        p->count -= p->count ? 1 : 0;
        p->dirty = true;
        rc = mdb_cursor_get(dc, &k, &v, MDB_NEXT); //  after a delete: the next entry
    }
    if (rc == MDB_NOTFOUND) {
        empty = true;
        rc = 0;
    }
    if (rc) {
        return rc;
    }
    *done = true;
    if (empty) {
        p->count = 0; //  no entries left: st_prod_flush deletes the producer
        p->dirty = true;
    } else if (p->count == 0) {
        p->count = 1; //  entries left under a zero count: keep it in dedup_prod
        p->dirty = true;
    }
    return 0;
}

//  Window sweep: walks dedup_prod from where the last sweep stopped and
//  removes each producer's entries older than the window, at most BUDGET
//  entries and BUDGET producers per sweep; the next sweep resumes after the
//  last producer finished (or at the one the budget interrupted), and
//  wraps around to the first producer.
int st_sweep_dedup(st_txn_t *ctx, uint64_t now_ns, uint64_t budget) {
    uint64_t window_ns = ctx->store->config.dedup_window_ms * 1000000ull;
    if (now_ns < window_ns || budget == 0) {
        return 0;
    }
    uint64_t cutoff = now_ns - window_ns;
    MDB_cursor *pc = NULL, *dc = NULL;
    int rc = mdb_cursor_open(ctx->txn, ctx->dbi[S_DEDUP_PROD], &pc);
    if (rc == 0) {
        rc = mdb_cursor_open(ctx->txn, ctx->dbi[S_DEDUP], &dc);
    }
    if (rc) {
        goto done;
    }
    uint8_t start[TERN_NAME_MAX + 2];
    size_t start_len = ctx->dedup_next_len;
    memcpy(start, ctx->dedup_next, start_len);
    bool wrapped = start_len == 0;
    uint64_t removed = 0, visited = 0;
    MDB_val k = {start_len, start}, v;
    rc = mdb_cursor_get(pc, &k, &v, wrapped ? MDB_FIRST : MDB_SET_RANGE);
    ctx->dedup_next_len = 0; //  unless stopped early: the next sweep starts over
    for (;;) {
        if (rc == MDB_NOTFOUND && !wrapped) {
            wrapped = true;
            rc = mdb_cursor_get(pc, &k, &v, MDB_FIRST);
        }
        if (rc) {
            break;
        }
        if (wrapped && start_len) {
            //  Full circle: stop at where this sweep began.
            size_t n = k.mv_size < start_len ? k.mv_size : start_len;
            int cmp = memcmp(k.mv_data, start, n);
            if (cmp > 0 || (cmp == 0 && k.mv_size >= start_len)) {
                break;
            }
        }
        if (visited >= budget || removed >= budget) {
            //  Resume here (a malformed, over-long key: at its prefix).
            size_t n = k.mv_size <= TERN_NAME_MAX ? k.mv_size : TERN_NAME_MAX;
            memcpy(ctx->dedup_next, k.mv_data, n);
            ctx->dedup_next_len = n;
            break;
        }
        visited++;
        if (k.mv_size == 0 || k.mv_size > TERN_NAME_MAX) {
            rc = mdb_cursor_get(pc, &k, &v, MDB_NEXT); //  not a producer name: skip
            continue;
        }
        uint8_t name[TERN_NAME_MAX];
        size_t len = k.mv_size;
        memcpy(name, k.mv_data, len);
        bool finished;
        if ((rc = s_sweep_producer(ctx, dc, name, len, cutoff, budget, &removed, &finished))) {
            break;
        }
        if (!finished) {
            memcpy(ctx->dedup_next, name, len); //  the budget ran out inside it
            ctx->dedup_next_len = len;
            break;
        }
        rc = mdb_cursor_get(pc, &k, &v, MDB_NEXT);
    }
    rc = rc == MDB_NOTFOUND ? 0 : rc;
done:
    if (dc) {
        mdb_cursor_close(dc);
    }
    if (pc) {
        mdb_cursor_close(pc);
    }
    return rc;
}
