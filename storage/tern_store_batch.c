/*  tern_store_batch.c - the single writer: queued operations, the
    per-transaction record cache, and the commit (group commit).

    Every change to the store is an operation queued on a tern_store_batch_t
    (the queue calls live beside their concern: tern_store_log.c queues
    appends, tern_store_group.c deliveries and acks, ...). The commit applies
    them all in one LMDB write transaction through s_apply, a table from
    operation kind to the function of its concern, writes back the topic,
    group and producer records the batch touched once each, then commits
    once: one fsync acknowledges every publish of the batch. When the map is
    full the commit grows it (tern_store.c) and retries; when it cannot, it
    stores the appends that fit and still commits acks, deletes and sweeps.
*/
#include "tern_store_int.h"

#include <stdlib.h>

//  Queue entries a batch keeps between commits (about 1.2 MB): enough for
//  the default 4096 appends with their group ops, without reallocating.
#define S_OPS_KEEP 4096

//  What a group operation (deliver, ack...) counts for its dirty pages, on
//  top of its queue entry. Under fan-out one really dirties 2.1-2.2 KB (its
//  history event goes into the middle of the trace index: heaptrack, 36 MB
//  of pages for ~16,400 ops per commit), so a 16 MB batch_bytes holds ~36 MB
//  of pages there. Counting 2048 took the fan-out peak from ~88 to 72-77 MB
//  for 15-30 % more storer CPU per delivery (the bottleneck thread), still
//  over the bound: kept at 768, --batch-bytes 6M is the knob
//  (docs/performance.md, "Fan-out: history written in key order").
#define S_GROUP_OP_PAGES 768

/* ------------------------------------------------------------------------
    Queueing
   ------------------------------------------------------------------------ */

//  A new operation of KIND at the end of the queue, every field cleared.
st_op_t *st_batch_push(tern_store_batch_t *self, st_op_kind_t kind) {
    if (self->count == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 64;
        st_op_t *ops = tern_realloc(self->ops, cap * sizeof *ops);
        self->ops = ops;
        self->cap = cap;
    }
    st_op_t *op = &self->ops[self->count++];
    self->bytes += sizeof *op;
    op->kind = kind;
    op->msg = NULL;
    op->flag = false;
    op->result = NULL;
    op->name[0] = 0;
    op->topic_id = 0;
    op->a = op->b = op->c = 0;
    op->u32 = 0;
    op->priority = 0;
    op->acked_as = 0;
    op->reason = NULL;
    op->err_out = NULL;
    op->id_out = NULL;
    op->count_out = NULL;
    op->prior = NULL;
    op->data = NULL;
    return op;
}

tern_store_batch_t *tern_store_batch_new(tern_store_t *store) {
    if (!store) {
        return NULL;
    }
    tern_store_batch_t *self = calloc(1, sizeof *self);
    if (self) {
        self->store = store;
    }
    return self;
}

//  Empties the batch. A burst (a drain of route's ops under fan-out) can
//  grow the queue to tens of MB; a queue far larger than this batch needed
//  shrinks back, so the memory returns once the burst is over.
static void s_batch_clear(tern_store_batch_t *self) {
    for (size_t i = 0; i < self->count; i++) {
        free(self->ops[i].reason);
        free(self->ops[i].data);
    }
    if (self->cap > S_OPS_KEEP && self->count < self->cap / 4) {
        size_t cap = self->count > S_OPS_KEEP ? self->count : S_OPS_KEEP;
        self->ops = tern_realloc(self->ops, cap * sizeof *self->ops);
        self->cap = cap;
    }
    self->count = 0;
    self->bytes = 0;
    self->has_appends = false;
}

void tern_store_batch_destroy(tern_store_batch_t **self_p) {
    if (!self_p || !*self_p) {
        return;
    }
    tern_store_batch_t *self = *self_p;
    if (self->applied) { //  applied, never committed: nothing of it is kept
        mdb_txn_abort(self->applied->txn);
        free(self->applied);
    }
    s_batch_clear(self);
    free(self->ops);
    for (size_t i = 0; i < self->cache_cap; i++) {
        free(self->cache[i]);
    }
    free(self->cache);
    free(self->prods);
    free(self->prod_slots);
    free(self->marks);
    free(self->fold_slots);
    st_hist_free(self);
    free(self);
    *self_p = NULL;
}

size_t tern_store_batch_size(tern_store_batch_t *self) {
    return self ? self->count : 0;
}

size_t tern_store_batch_bytes(tern_store_batch_t *self) {
    return self ? self->bytes : 0;
}

//  A new group operation (topic, group name copied, seq in A).
st_op_t *st_group_op(tern_store_batch_t *self, st_op_kind_t kind, uint32_t topic_id,
                     const char *group, uint64_t seq) {
    st_op_t *op = st_batch_push(self, kind);
    self->bytes += S_GROUP_OP_PAGES;
    op->topic_id = topic_id;
    s_copy_name(op->name, TERN_NAME_MAX + 1, group);
    op->a = seq;
    return op;
}

void tern_store_batch_set_u64(tern_store_batch_t *self, const char *name, uint64_t value) {
    st_op_t *op = st_batch_push(self, OP_SET_U64);
    s_copy_name(op->name, sizeof op->name, name);
    op->a = value;
}

/* ------------------------------------------------------------------------
    The per-transaction record cache: topic and group records touched by a
    batch are read once and written back once at the end of the transaction,
    so 4096 appends to one topic rewrite its record once.
   ------------------------------------------------------------------------ */

static st_cached_t *s_cache_lookup(st_txn_t *ctx, bool is_group, const uint8_t *key,
                                   size_t key_len) {
    tern_store_batch_t *b = ctx->batch;
    if (ctx->last_hit < b->cache_count) {
        st_cached_t *c = b->cache[ctx->last_hit];
        if (c->is_group == is_group && c->key_len == key_len && !memcmp(c->key, key, key_len)) {
            return c;
        }
    }
    for (size_t i = b->cache_count; i-- > 0;) {
        st_cached_t *c = b->cache[i];
        if (c->is_group == is_group && c->key_len == key_len && !memcmp(c->key, key, key_len)) {
            ctx->last_hit = i;
            return c;
        }
    }
    return NULL;
}

static st_cached_t *s_cache_add(st_txn_t *ctx, bool is_group, const uint8_t *key, size_t key_len) {
    tern_store_batch_t *b = ctx->batch;
    if (b->cache_count == b->cache_cap) {
        size_t cap = b->cache_cap ? b->cache_cap * 2 : 16;
        st_cached_t **cache = tern_realloc(b->cache, cap * sizeof *cache);
        for (size_t i = b->cache_cap; i < cap; i++) {
            cache[i] = tern_alloc_raw(sizeof(st_cached_t));
        }
        b->cache = cache;
        b->cache_cap = cap;
    }
    ctx->last_hit = b->cache_count;
    st_cached_t *c = b->cache[b->cache_count++];
    c->is_group = is_group;
    memcpy(c->key, key, key_len);
    c->key_len = key_len;
    c->exists = false;
    c->dirty = false;
    return c;
}

//  Adds the cache entry for KEY (not cached yet) into *OUT, filled from its
//  database (exists false when the record is absent). On an LMDB error or a
//  damaged record the entry is dropped again. The cache hit stays with the
//  callers, inline: it is on every append.
static int s_cache_load(st_txn_t *ctx, bool is_group, const uint8_t *key, size_t key_len,
                        st_cached_t **out) {
    st_cached_t *c = s_cache_add(ctx, is_group, key, key_len);
    void *rec = is_group ? (void *)&c->group : (void *)&c->topic;
    size_t size = is_group ? sizeof c->group : sizeof c->topic;
    MDB_val k = {key_len, (void *)key}, v;
    int rc = mdb_get(ctx->txn, ctx->dbi[is_group ? S_GROUPS : S_TOPICS], &k, &v);
    if (rc == 0 && v.mv_size != size) {
        rc = MDB_CORRUPTED;
    }
    if (rc == 0) {
        memcpy(rec, v.mv_data, size);
        c->exists = true;
    } else if (rc != MDB_NOTFOUND) {
        ctx->batch->cache_count--;
        return rc;
    }
    *out = c;
    return 0;
}

//  Finds topic NAME (LEN bytes); creates it when CREATE and absent (setting
//  *ERR to TERN_ELIMIT when max_topics is reached). *OUT is the cache entry
//  (exists false when absent). Returns an LMDB error code.
int st_topic_find(st_txn_t *ctx, const char *name, size_t len, bool create, st_cached_t **out,
                  tern_err_t *err) {
    *err = TERN_OK;
    int rc;
    st_cached_t *c = s_cache_lookup(ctx, false, (const uint8_t *)name, len);
    if (!c && (rc = s_cache_load(ctx, false, (const uint8_t *)name, len, &c))) {
        return rc;
    }
    if (!c->exists && create) {
        uint64_t topics = atomic_load_explicit(&ctx->store->topics, memory_order_relaxed);
        if ((int64_t)topics + ctx->d_topics >= (int64_t)ctx->store->config.max_topics ||
            ctx->topic_next >= UINT32_MAX) {
            *err = TERN_ELIMIT;
            *out = c;
            return 0;
        }
        memset(&c->topic, 0, sizeof c->topic);
        c->topic.version = S_TOPIC_VERSION;
        c->topic.id = ++ctx->topic_next;
        c->topic.first_seq = 1;
        c->topic.created_ns = ctx->now_ns;
        c->exists = true;
        c->dirty = true;
        ctx->d_topics++;
        uint8_t idkey[4];
        s_be32_put(idkey, (uint32_t)c->topic.id);
        MDB_val k = {4, idkey}, v = {len, (void *)name};
        if ((rc = mdb_put(ctx->txn, ctx->dbi[S_TOPIC_IDS], &k, &v, 0))) {
            return rc;
        }
    }
    *out = c;
    return 0;
}

int st_topic_by_id(st_txn_t *ctx, uint32_t topic_id, st_cached_t **out) {
    *out = NULL;
    uint8_t idkey[4];
    s_be32_put(idkey, topic_id);
    MDB_val k = {4, idkey}, v;
    int rc = mdb_get(ctx->txn, ctx->dbi[S_TOPIC_IDS], &k, &v);
    if (rc == MDB_NOTFOUND) {
        return 0;
    }
    if (rc) {
        return rc;
    }
    if (v.mv_size == 0 || v.mv_size > TERN_TOPIC_MAX) {
        return MDB_CORRUPTED;
    }
    char name[TERN_TOPIC_MAX];
    size_t len = v.mv_size;
    memcpy(name, v.mv_data, len);
    tern_err_t err;
    st_cached_t *c;
    rc = st_topic_find(ctx, name, len, false, &c, &err);
    if (rc == 0 && c->exists && c->topic.id == topic_id) {
        *out = c;
    }
    return rc;
}

int st_group_find(st_txn_t *ctx, uint32_t topic_id, const char *name, st_cached_t **out) {
    uint8_t key[S_GROUP_KEY_MAX];
    size_t name_len = strlen(name);
    s_be32_put(key, topic_id);
    memcpy(key + 4, name, name_len);
    size_t key_len = 4 + name_len;
    st_cached_t *c = s_cache_lookup(ctx, true, key, key_len);
    int rc = c ? 0 : s_cache_load(ctx, true, key, key_len, &c);
    if (rc == 0) {
        *out = c;
    }
    return rc;
}

static int s_cache_flush(st_txn_t *ctx) {
    tern_store_batch_t *b = ctx->batch;
    for (size_t i = 0; i < b->cache_count; i++) {
        st_cached_t *c = b->cache[i];
        if (!c->dirty) {
            continue;
        }
        MDB_dbi dbi = ctx->dbi[c->is_group ? S_GROUPS : S_TOPICS];
        int rc;
        if (c->exists) {
            MDB_val k = {c->key_len, c->key};
            MDB_val v = c->is_group ? (MDB_val){sizeof c->group, &c->group}
                                    : (MDB_val){sizeof c->topic, &c->topic};
            rc = mdb_put(ctx->txn, dbi, &k, &v, 0);
        } else {
            rc = s_del(ctx->txn, dbi, c->key, c->key_len);
        }
        if (rc) {
            return rc;
        }
        c->dirty = false;
    }
    return 0;
}

//  Deletes every key starting with PREFIX in DBI; *COUNT (may be NULL) gets
//  how many.
int st_del_prefix(st_txn_t *ctx, MDB_dbi dbi, const uint8_t *prefix, size_t plen, uint64_t *count) {
    return st_del_range(ctx, dbi, prefix, plen, plen, count);
}

//  Deletes the keys of DBI from START (START_LEN bytes) on that begin with
//  its first PLEN bytes; *COUNT (may be NULL) is incremented for each.
int st_del_range(st_txn_t *ctx, MDB_dbi dbi, const uint8_t *start, size_t start_len, size_t plen,
                 uint64_t *count) {
    return st_del_range_max(ctx, dbi, start, start_len, plen, UINT64_MAX, count);
}

//  st_del_range, deleting at most MAX keys.
int st_del_range_max(st_txn_t *ctx, MDB_dbi dbi, const uint8_t *start, size_t start_len,
                     size_t plen, uint64_t max, uint64_t *count) {
    uint64_t deleted = 0;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(ctx->txn, dbi, &cur);
    if (rc) {
        return rc;
    }
    MDB_val k = {start_len, (void *)start}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && deleted < max && k.mv_size >= plen && !memcmp(k.mv_data, start, plen)) {
        if ((rc = mdb_cursor_del(cur, 0))) {
            break;
        }
        deleted++;
        if (count) {
            (*count)++;
        }
        //  Re-seek rather than rely on the cursor position after a delete.
        k = (MDB_val){start_len, (void *)start};
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* ------------------------------------------------------------------------
    Commit
   ------------------------------------------------------------------------ */

static int s_op_set_u64(st_txn_t *ctx, st_op_t *op) {
    return op->name[0] ? s_put_u64(ctx->txn, ctx->dbi[S_META], op->name, op->a) : 0;
}

//  Each operation kind and the function of its concern that applies it.
typedef int(st_apply_fn)(st_txn_t *ctx, st_op_t *op);
static st_apply_fn *const s_apply[OP_COUNT] = {
    [OP_APPEND] = st_op_append,
    [OP_TOPIC_PUT] = st_op_topic_put,
    [OP_TOPIC_DELETE] = st_op_topic_delete,
    [OP_GROUP_OPEN] = st_op_group_open,
    [OP_GROUP_DELETE] = st_op_group_delete,
    [OP_GROUP_SEEK] = st_op_group_seek,
    [OP_DELIVER] = st_op_deliver,
    [OP_ACK] = st_op_ack,
    [OP_NACK] = st_op_nack,
    [OP_DEAD] = st_op_dead,
    [OP_DLQ_REPLAY] = st_op_dlq_replay,
    [OP_DLQ_PURGE] = st_op_dlq_purge,
    [OP_SWEEP] = st_op_sweep,
    [OP_SET_U64] = s_op_set_u64,
    [OP_OUTBOX_CONFIRM] = st_op_outbox_confirm,
    [OP_INBOUND] = st_op_inbound,
    [OP_ACKSTATE] = st_op_ackstate,
    [OP_TRACE] = st_op_trace,
    [OP_ACKSTATE_APPLY] = st_op_ackstate_apply,
    [OP_APPEND_REPLICA] = st_op_append_replica,
    [OP_TRUNCATE] = st_op_truncate,
    [OP_GROUP_APPLY] = st_op_group_apply,
    [OP_GSTATE_PUT] = st_op_gstate_put,
    [OP_GSTATE_PRUNE] = st_op_gstate_prune,
    [OP_OUTBOX_CONFIRM_PT] = st_op_outbox_confirm_pt,
    [OP_OUTBOX_PUT] = st_op_outbox_put,
    [OP_OUTBOX_RESET] = st_op_outbox_reset,
};

static void s_fail_all(tern_store_batch_t *self, tern_err_t err) {
    for (size_t i = 0; i < self->count; i++) {
        st_op_t *op = &self->ops[i];
        if (op->result) {
            memset(op->result, 0, sizeof *op->result);
            op->result->err = err;
        }
        if (op->err_out) {
            *op->err_out = err;
        }
    }
}

//  Starts an attempt: the writer state from the store, empty caches.
static void s_attempt_reset(st_txn_t *ctx) {
    tern_store_t *store = ctx->store;
    ctx->outbox_last = store->outbox_last;
    ctx->topic_next = store->topic_next;
    ctx->trace_next = store->trace_next;
    ctx->d_topics = ctx->d_dedup = 0;
    ctx->expired = ctx->trimmed = ctx->outbox_dropped = 0;
    ctx->superseded = 0;
    ctx->swept = ctx->sweep_more = ctx->doomed = false;
    ctx->appended = 0;
    ctx->last_hit = 0;
    ctx->prod_hit = 0;
    memcpy(ctx->dedup_next, store->dedup_next, store->dedup_next_len);
    ctx->dedup_next_len = store->dedup_next_len;
    ctx->batch->cache_count = 0;
    st_prod_reset(ctx->batch);
    st_ob_reset(ctx);
}

//  An operation made conditional (tern_store_batch_only_if) whose prior
//  failed: it fails with TERN_ESTATE, changing nothing. True if so.
static bool s_skipped(st_op_t *op) {
    if (!op->prior || *op->prior == TERN_OK) {
        return false;
    }
    if (op->result) {
        memset(op->result, 0, sizeof *op->result);
        op->result->err = TERN_ESTATE;
    }
    if (op->err_out) {
        *op->err_out = TERN_ESTATE;
    }
    if (op->count_out) {
        *op->count_out = 0;
    }
    return true;
}

void tern_store_batch_only_if(tern_store_batch_t *self, const tern_err_t *prior) {
    if (self && self->count > 0) {
        self->ops[self->count - 1].prior = prior;
    }
}

//  In ctx->txn: every queued operation, then the records the batch touched
//  and the writer state that moved. Returns an LMDB error code.
static int s_attempt_apply(st_txn_t *ctx) {
    tern_store_batch_t *self = ctx->batch;
    tern_store_t *store = ctx->store;
    int rc = 0;
    st_run_reset(ctx);
    for (size_t i = 0; i < self->count && rc == 0; i++) {
        st_op_t *op = &self->ops[i];
        rc = st_run_before(ctx, op->kind);
        if (rc == 0 && !s_skipped(op)) {
            rc = s_apply[op->kind](ctx, op);
        }
    }
    if (rc == 0) {
        rc = st_run_end(ctx);
    }
    if (rc == 0) {
        rc = st_prod_flush(ctx);
    }
    if (rc == 0) {
        rc = s_cache_flush(ctx);
    }
    if (rc == 0) {
        rc = st_ob_flush(ctx);
    }
    if (rc == 0 && ctx->outbox_last != store->outbox_last) {
        rc = s_put_u64(ctx->txn, store->dbi[S_META], S_META_OUTBOX_LAST, ctx->outbox_last);
    }
    if (rc == 0 && ctx->topic_next != store->topic_next) {
        rc = s_put_u64(ctx->txn, store->dbi[S_META], S_META_TOPIC_NEXT, ctx->topic_next);
    }
    if (rc == 0 && ctx->trace_next != store->trace_next) {
        rc = s_put_u64(ctx->txn, store->dbi[S_META], S_META_TRACE_NEXT, ctx->trace_next);
    }
    return rc;
}

//  After a commit: the writer state and the counters move to the store.
static void s_attempt_publish(st_txn_t *ctx) {
    tern_store_t *store = ctx->store;
    store->outbox_last = ctx->outbox_last;
    st_ob_publish(ctx);
    store->topic_next = ctx->topic_next;
    store->trace_next = ctx->trace_next;
    memcpy(store->dedup_next, ctx->dedup_next, ctx->dedup_next_len);
    store->dedup_next_len = ctx->dedup_next_len;
    atomic_fetch_add(&store->topics, (uint32_t)ctx->d_topics);
    atomic_fetch_add(&store->dedup_entries, (uint64_t)ctx->d_dedup);
    atomic_fetch_add(&store->expired, ctx->expired);
    atomic_fetch_add(&store->retention_trimmed, ctx->trimmed);
    atomic_fetch_add(&store->outbox_dropped, ctx->outbox_dropped);
    atomic_fetch_add(&store->superseded, ctx->superseded);
    atomic_fetch_add(&store->folded, (uint64_t)ctx->batch->folded);
    atomic_fetch_add(&store->commits, 1);
    if (ctx->swept) {
        atomic_store(&store->sweep_more, ctx->sweep_more);
    }
    uint64_t size = atomic_load(&store->map_size);
    if (size > store->map_soft && size != store->shrink_tried) {
        //  Give the reserve back (LMDB keeps what is in use); once per
        //  size, as a remap waits for every reader.
        st_map_resize(store, store->map_soft);
        store->shrink_tried = atomic_load(&store->map_size);
    }
}

//  Grows the map for CTX's next attempt; false if it cannot. Appends stop
//  at map_max minus the reserve; the reserve lets acks, deletes and sweeps
//  commit when the map is full.
static bool s_grow(st_txn_t *ctx) {
    bool appending = ctx->batch->has_appends && !ctx->no_appends;
    return st_map_grow(ctx->store, appending ? ctx->store->map_soft : ctx->store->map_max);
}

//  The attempt hit MDB_MAP_FULL: true to try again after growing the map,
//  nudging freed pages into use (once), or storing fewer appends.
static bool s_full_retry(st_txn_t *ctx, bool *nudged) {
    tern_store_batch_t *self = ctx->batch;
    tern_store_t *store = ctx->store;
    if (s_grow(ctx)) {
        return true;
    }
    if (!*nudged) {
        //  LMDB reuses pages freed by a transaction only after one more
        //  commit (the previous snapshot must stay intact), so space just
        //  freed by a delete needs a small commit first.
        *nudged = true;
        if (st_map_nudge(store)) {
            return true;
        }
    }
    if (!ctx->no_appends && self->has_appends) {
        //  Cannot grow: store the earliest appends that fit (halving what
        //  this attempt tried; the rest get TERN_EFULL), at last none but
        //  everything else, so consumers keep draining and deletes free
        //  space.
        if (ctx->append_limit == SIZE_MAX) {
            atomic_fetch_add(&store->full_errors, 1);
        }
        ctx->append_limit = ctx->appended / 2;
        ctx->no_appends = ctx->append_limit == 0;
        return true;
    }
    if (!ctx->no_appends) {
        atomic_fetch_add(&store->full_errors, 1);
    }
    return false;
}

//  Commits CTX's transaction. Returns an LMDB error code.
static int s_txn_commit(st_txn_t *ctx) {
    if (ctx->doomed) {
        //  Before the commit: a snapshot that no longer has the topic also
        //  sees the count moved (tern_store_read_begin).
        atomic_fetch_add(&ctx->store->dooms, 1);
    }
    return mdb_txn_commit(ctx->txn);
}

//  Runs attempts until one applied every operation, growing the map or
//  storing fewer appends when it is full. KEEP_OPEN: the transaction of the
//  attempt that applied stays open in CTX->txn (tern_store_batch_apply),
//  else it is committed. Returns an LMDB error code.
static int s_attempts(st_txn_t *ctx, bool keep_open) {
    tern_store_t *store = ctx->store;
    bool nudged = false;
    int rc;
    for (;;) {
        s_attempt_reset(ctx);
        rc = mdb_txn_begin(store->env, NULL, 0, &ctx->txn);
        if (rc == MDB_MAP_RESIZED && (rc = st_map_adopt(store)) == 0) {
            continue;
        }
        if (rc) {
            ctx->txn = NULL;
            break;
        }
        rc = s_attempt_apply(ctx);
        if (rc == 0 && keep_open) {
            return 0;
        }
        if (rc) {
            mdb_txn_abort(ctx->txn);
        } else {
            rc = s_txn_commit(ctx);
        }
        ctx->txn = NULL;
        if (rc == 0) {
            s_attempt_publish(ctx);
            break;
        }
        if (rc != MDB_MAP_FULL || !s_full_retry(ctx, &nudged)) {
            break;
        }
    }
    return rc;
}

static void s_ctx_init(st_txn_t *ctx, tern_store_batch_t *self) {
    memset(ctx, 0, sizeof *ctx);
    ctx->store = self->store;
    ctx->batch = self;
    ctx->dbi = self->store->dbi;
    ctx->now_ns = s_now_ns();
    ctx->append_limit = SIZE_MAX;
    self->mark_count = 0; //  the outbox marks of this commit only
    st_group_fold(self);
}

//  The batch is done: on failure every result carries the error.
static tern_err_t s_batch_done(tern_store_batch_t *self, int rc) {
    tern_err_t err = s_err(rc);
    if (err == TERN_ESTORAGE && st_disk_full(self->store)) {
        err = TERN_EFULL; //  a commit's write ran out of disk (without WRITEMAP)
        atomic_fetch_add(&self->store->full_errors, 1);
    }
    if (err != TERN_OK) {
        s_fail_all(self, err);
    }
    s_batch_clear(self);
    return err;
}

tern_err_t tern_store_batch_apply(tern_store_batch_t *self) {
    if (!self) {
        return TERN_EINVAL;
    }
    if (self->count == 0 || self->applied) {
        return TERN_OK; //  nothing to apply, or applied already
    }
    st_txn_t *ctx = tern_alloc(sizeof *ctx);
    s_ctx_init(ctx, self);
    int rc = s_attempts(ctx, true);
    if (rc == 0) {
        self->applied = ctx; //  tern_store_batch_commit commits it
        st_ob_marks(ctx);    //  what the commit will mark, readable now
        return TERN_OK;
    }
    free(ctx);
    return s_batch_done(self, rc);
}

tern_err_t tern_store_batch_commit(tern_store_batch_t *self) {
    if (!self) {
        return TERN_EINVAL;
    }
    if (self->applied) {
        st_txn_t *ctx = self->applied;
        self->applied = NULL;
        int rc = s_txn_commit(ctx);
        ctx->txn = NULL;
        //  LMDB may need pages at commit (its free list): on a full map the
        //  same attempt runs again on a larger one. Same store state (the
        //  failed commit changed nothing), same operations in the same
        //  order, same time and append limit: the same results, which the
        //  caller may have shipped already. What cannot grow fails.
        for (int tries = 0; rc == MDB_MAP_FULL && tries < 8 && s_grow(ctx); tries++) {
            s_attempt_reset(ctx);
            rc = mdb_txn_begin(self->store->env, NULL, 0, &ctx->txn);
            if (rc == 0 && (rc = s_attempt_apply(ctx)) != 0) {
                mdb_txn_abort(ctx->txn);
            } else if (rc == 0) {
                rc = s_txn_commit(ctx);
            }
            ctx->txn = NULL;
        }
        if (rc == 0) {
            s_attempt_publish(ctx);
        }
        free(ctx);
        return s_batch_done(self, rc);
    }
    if (self->count == 0) {
        return TERN_OK;
    }
    st_txn_t ctx;
    s_ctx_init(&ctx, self);
    return s_batch_done(self, s_attempts(&ctx, false));
}
