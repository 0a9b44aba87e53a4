/*  tern_store_gstate.c - group state from an in-DC leader: its ops and its
    snapshots applied by topic NAME, and the group digest for verify.

    In a clustered DC the leader of a partition ships every committed group
    change (deliver, ack, nack, dead, replay, seek, reset, drop, purge, open)
    to its followers (CREPL_GROUP), and a syncing follower gets a snapshot of
    every group of the partition (CREPL_GSTATE) that replaces its own. Topic
    ids are node-local, so these name the topic and resolve it at commit
    time (a topic a catch-up record of the same batch creates is found). The
    group ops themselves are tern_store_group.c's and tern_store_dlq.c's:
    a follower's state changes exactly as the leader's did. A follower may
    hold records of later commits than an op's (records and group frames
    are not interleaved per commit), so an op never depends on the log's
    end here: the leader ships OPEN, SEEK and RESET with the seq its commit
    resolved (TERN_START_SEQ), not the rule (NEW, TIME).

    Idempotence (a follower may get ops again after a snapshot that already
    holds them, in the same order; see broker/tern_crepl_group.c): DELIVER
    overwrites the pending entry and only raises the lane cursor; ACK
    removes the entry if there; NACK sets the due time of an entry if there;
    DEAD overwrites the DLQ entry and removes the pending one; REPLAY moves
    what is still in the DLQ; SEEK, RESET, DROP and PURGE set the state
    outright; OPEN of an existing group does nothing. So once a suffix of
    the leader's ops is applied in order, every entry and cursor is what
    the last op on it made it: the replicas converge. Counters (delivered,
    acked...) may count a re-applied op twice: they are statistics, not
    state, and the digest leaves them out.
*/
#include "tern_store_int.h"
#include "tern_partition.h"

/* ------------------------------------------------------------------------
    Queueing
   ------------------------------------------------------------------------ */

void tern_store_batch_group_apply(tern_store_batch_t *self, const char *topic,
                                  const tern_gop_t *gop, uint64_t *skipped) {
    st_op_t *op = st_batch_push(self, OP_GROUP_APPLY);
    s_copy_name(op->name, sizeof op->name, topic);
    tern_gop_t *copy = tern_alloc(sizeof *copy);
    *copy = *gop;
    copy->group[TERN_NAME_MAX] = 0;
    copy->reason[TERN_REASON_MAX] = 0;
    op->data = copy;
    op->count_out = skipped;
}

void tern_store_batch_gstate_put(tern_store_batch_t *self, const char *topic,
                                 const tern_gstate_t *state, bool replace, uint64_t *skipped) {
    st_op_t *op = st_batch_push(self, OP_GSTATE_PUT);
    s_copy_name(op->name, sizeof op->name, topic);
    op->flag = replace;
    op->count_out = skipped;
    //  One block: the state, then its pending and DLQ entries.
    size_t entries = state->npending + state->ndead;
    tern_gstate_t *copy = tern_alloc(sizeof *copy + entries * sizeof(tern_gentry_t));
    *copy = *state;
    copy->group[TERN_NAME_MAX] = 0;
    copy->pending = (tern_gentry_t *)(copy + 1);
    copy->dead = copy->pending + state->npending;
    if (state->npending) {
        memcpy(copy->pending, state->pending, state->npending * sizeof(tern_gentry_t));
    }
    if (state->ndead) {
        memcpy(copy->dead, state->dead, state->ndead * sizeof(tern_gentry_t));
    }
    op->data = copy;
}

void tern_store_batch_gstate_prune(tern_store_batch_t *self, const char *topic,
                                   const char *const *names, size_t count, const char *after,
                                   const char *upto, uint64_t *removed) {
    st_op_t *op = st_batch_push(self, OP_GSTATE_PRUNE);
    s_copy_name(op->name, sizeof op->name, topic);
    op->count_out = removed;
    //  AFTER and UPTO ("" for none: a group name is never empty), then the
    //  names, NUL-separated, an empty one last.
    const char *bounds[2] = {after ? after : "", upto ? upto : ""};
    size_t size = 1;
    for (size_t i = 0; i < 2; i++) {
        size += strnlen(bounds[i], TERN_NAME_MAX) + 1;
    }
    for (size_t i = 0; i < count; i++) {
        size += strnlen(names[i], TERN_NAME_MAX) + 1;
    }
    char *list = tern_alloc(size), *p = list;
    for (size_t i = 0; i < count + 2; i++) {
        const char *name = i < 2 ? bounds[i] : names[i - 2];
        size_t len = strnlen(name, TERN_NAME_MAX);
        memcpy(p, name, len);
        p += len + 1;
    }
    op->data = list;
}

/* ------------------------------------------------------------------------
    Applying
   ------------------------------------------------------------------------ */

static void s_skip(st_op_t *op) {
    if (op->count_out) {
        (*op->count_out)++;
    }
}

//  Topic OP->name into *T (NULL when this replica lacks it: counted).
static int s_topic(st_txn_t *ctx, st_op_t *op, st_cached_t **t) {
    tern_err_t err;
    int rc = st_topic_find(ctx, op->name, strlen(op->name), false, t, &err);
    if (rc == 0 && !(*t)->exists) {
        *t = NULL;
        s_skip(op);
    }
    return rc;
}

//  Runs the store's own op of GOP's type on SUB (topic and group set).
static int s_gop_run(st_txn_t *ctx, const tern_gop_t *gop, st_op_t *sub) {
    switch (gop->type) {
        case TERN_GOP_OPEN:
            return st_op_group_open(ctx, sub);
        case TERN_GOP_DELIVER:
            return st_op_deliver(ctx, sub);
        case TERN_GOP_ACK:
            return st_op_ack(ctx, sub);
        case TERN_GOP_NACK:
            return st_op_nack(ctx, sub);
        case TERN_GOP_DEAD:
            return st_op_dead(ctx, sub);
        case TERN_GOP_REPLAY:
            return st_op_dlq_replay(ctx, sub);
        case TERN_GOP_SEEK:
            return st_op_group_seek(ctx, sub);
        case TERN_GOP_RESET: {
            int rc = st_op_group_delete(ctx, sub);
            return rc ? rc : st_op_group_open(ctx, sub);
        }
        case TERN_GOP_DROP:
            return st_op_group_delete(ctx, sub);
        case TERN_GOP_PURGE:
            return st_op_dlq_purge(ctx, sub);
        default:
            return 0; //  the decoder lets no other type through
    }
}

int st_op_group_apply(st_txn_t *ctx, st_op_t *op) {
    const tern_gop_t *gop = op->data;
    st_cached_t *t;
    int rc = s_topic(ctx, op, &t);
    if (rc || !t) {
        return rc;
    }
    bool peer =
        (gop->type == TERN_GOP_ACK || gop->type == TERN_GOP_DEAD) && gop->aux == TERN_GOP_AUX_PEER;
    bool on_seq = gop->type == TERN_GOP_DELIVER || gop->type == TERN_GOP_DEAD || peer;
    if (on_seq && (gop->seq == 0 || gop->seq > t->topic.last_seq)) {
        s_skip(op); //  a message this replica lacks
        return 0;
    }
    tern_err_t err = TERN_OK;
    uint64_t moved = 0;
    st_op_t sub;
    memset(&sub, 0, sizeof sub);
    sub.topic_id = (uint32_t)t->topic.id;
    s_copy_name(sub.name, TERN_NAME_MAX + 1, gop->group);
    sub.a = gop->seq;
    sub.b = gop->value;
    sub.err_out = &err;
    sub.count_out = &moved;
    sub.reason = gop->reason[0] ? (char *)gop->reason : NULL; //  borrowed, never freed
    switch (gop->type) {
        case TERN_GOP_DELIVER:
            sub.priority = gop->aux;
            sub.u32 = gop->count;
            break;
        case TERN_GOP_ACK: //  aux: the broker's cause (1 = the message expired)
            sub.u32 = gop->aux == 1 ? TERN_TRACE_EXPIRED : TERN_TRACE_ACKED;
            sub.reason = NULL;
            break;
        case TERN_GOP_NACK: //  aux 2: the ack wait ran out
            sub.u32 = gop->aux == 2 ? TERN_TRACE_TIMEOUT : TERN_TRACE_NACKED;
            break;
        case TERN_GOP_DEAD:
            sub.u32 = gop->count;
            break;
        case TERN_GOP_REPLAY:
            sub.flag = gop->seq != 0;
            break;
        case TERN_GOP_OPEN:
        case TERN_GOP_SEEK:
        case TERN_GOP_RESET:
            sub.u32 = gop->aux;
            sub.a = gop->value;
            break;
        default:
            break;
    }
    if (peer) {
        bool changed; //  the leader changed it; this replica may hold it already
        return st_ackstate_seq(ctx, sub.topic_id, sub.name, gop->seq, gop->type == TERN_GOP_DEAD,
                               gop->reason, &changed);
    }
    rc = s_gop_run(ctx, gop, &sub);
    if (rc == 0 && on_seq && err == TERN_ENOTFOUND) {
        s_skip(op); //  a group this replica lacks
    }
    return rc;
}

int st_op_gstate_put(st_txn_t *ctx, st_op_t *op) {
    const tern_gstate_t *s = op->data;
    st_cached_t *t, *g;
    int rc = s_topic(ctx, op, &t);
    if (rc || !t) {
        return rc;
    }
    uint32_t id = (uint32_t)t->topic.id;
    size_t glen = strlen(s->group);
    if (glen == 0 || (rc = st_group_find(ctx, id, s->group, &g))) {
        return rc;
    }
    if (op->flag) { //  the leader's state replaces ours
        uint8_t prefix[S_ENTRY_KEY_MAX];
        size_t plen = s_entry_key(prefix, id, s->group, glen, 0, false);
        if ((rc = st_del_prefix(ctx, ctx->dbi[S_PENDING], prefix, plen, NULL)) ||
            (rc = st_del_prefix(ctx, ctx->dbi[S_DLQ], prefix, plen, NULL))) {
            return rc;
        }
        st_group_rec_t *gr = &g->group;
        memset(gr, 0, sizeof *gr);
        gr->version = S_GROUP_VERSION;
        gr->created_ns = s->created_ns;
        memcpy(gr->lane_next, s->lane_next, sizeof gr->lane_next);
        gr->delivered = s->delivered;
        gr->redelivered = s->redelivered;
        gr->acked = s->acked;
        gr->nacked = s->nacked;
        g->exists = true;
        g->dirty = true;
    } else if (!g->exists) {
        s_skip(op);
        return 0;
    }
    for (size_t i = 0; i < s->npending + s->ndead && rc == 0; i++) {
        bool dead = i >= s->npending;
        const tern_gentry_t *e = dead ? &s->dead[i - s->npending] : &s->pending[i];
        if (e->seq == 0 || e->seq > t->topic.last_seq) {
            s_skip(op);
            continue;
        }
        uint8_t key[S_ENTRY_KEY_MAX], val[S_ENTRY_SIZE + TERN_REASON_MAX];
        size_t rlen = dead ? strnlen(e->reason, TERN_REASON_MAX) : 0;
        s_entry_put(val, e->count, e->priority, e->due_ms);
        memcpy(val + S_ENTRY_SIZE, e->reason, rlen);
        MDB_val k = {s_entry_key(key, id, s->group, glen, e->seq, true), key};
        MDB_val v = {S_ENTRY_SIZE + rlen, val};
        MDB_dbi dbi = ctx->dbi[dead ? S_DLQ : S_PENDING];
        rc = mdb_put(ctx->txn, dbi, &k, &v, MDB_NOOVERWRITE);
        if (rc == MDB_KEYEXIST) {
            v = (MDB_val){S_ENTRY_SIZE + rlen, val};
            rc = mdb_put(ctx->txn, dbi, &k, &v, 0);
        } else if (rc == 0 && dead) {
            g->group.dead++;
        } else if (rc == 0) {
            g->group.pending++;
        }
    }
    g->dirty = true;
    return rc;
}

//  True when LIST (see tern_store_batch_gstate_prune) keeps group NAME.
static bool s_named(const char *list, const char *name) {
    const char *after = list, *upto = after + strlen(after) + 1;
    if ((after[0] && strcmp(name, after) <= 0) || (upto[0] && strcmp(name, upto) > 0)) {
        return true; //  outside this op's range: another frame's names decide
    }
    for (const char *p = upto + strlen(upto) + 1; *p; p += strlen(p) + 1) {
        if (strcmp(p, name) == 0) {
            return true;
        }
    }
    return false;
}

//  Deletes group G (its pending and DLQ entries with it) unless LIST names
//  it or it is outside LIST's range.
static int s_prune_group(st_txn_t *ctx, st_op_t *op, uint32_t topic_id, st_cached_t *g) {
    char name[TERN_NAME_MAX + 1];
    size_t len = g->key_len - 4;
    memcpy(name, g->key + 4, len);
    name[len] = 0;
    if (!g->exists || s_named(op->data, name)) {
        return 0;
    }
    uint8_t prefix[S_ENTRY_KEY_MAX];
    size_t plen = s_entry_key(prefix, topic_id, name, len, 0, false);
    int rc = st_del_prefix(ctx, ctx->dbi[S_PENDING], prefix, plen, NULL);
    if (rc == 0) {
        rc = st_del_prefix(ctx, ctx->dbi[S_DLQ], prefix, plen, NULL);
    }
    g->exists = false;
    g->dirty = true;
    s_skip(op); //  counts the groups removed
    return rc;
}

int st_op_gstate_prune(st_txn_t *ctx, st_op_t *op) {
    st_cached_t *t;
    tern_err_t err;
    int rc = st_topic_find(ctx, op->name, strlen(op->name), false, &t, &err);
    if (rc || !t->exists) {
        return rc;
    }
    uint8_t prefix[4];
    uint32_t topic_id = (uint32_t)t->topic.id;
    s_be32_put(prefix, topic_id);
    //  Groups this batch made and has not written yet, then those on disk
    //  (a group handled twice is already gone the second time).
    tern_store_batch_t *b = ctx->batch;
    for (size_t i = 0; i < b->cache_count && rc == 0; i++) {
        st_cached_t *c = b->cache[i];
        if (c->is_group && c->key_len > 4 && !memcmp(c->key, prefix, 4)) {
            rc = s_prune_group(ctx, op, topic_id, c);
        }
    }
    st_iter_t it;
    for (s_iter_open(&it, ctx->txn, ctx->dbi[S_GROUPS], prefix, 4);
         rc == 0 && s_iter_in(&it, prefix, 4, 0); s_iter_next(&it)) {
        if (it.k.mv_size <= 4 || it.k.mv_size > 4 + TERN_NAME_MAX) {
            continue;
        }
        char name[TERN_NAME_MAX + 1];
        memcpy(name, (uint8_t *)it.k.mv_data + 4, it.k.mv_size - 4);
        name[it.k.mv_size - 4] = 0;
        st_cached_t *g;
        if ((rc = st_group_find(ctx, topic_id, name, &g)) == 0) {
            rc = s_prune_group(ctx, op, topic_id, g);
        }
    }
    return s_iter_end(&it, rc);
}

/* ------------------------------------------------------------------------
    Digest
   ------------------------------------------------------------------------ */

typedef struct {
    uint64_t upto;   //  entries with seq <= upto count
    uint64_t digest; //  the chain
    bool dead;       //  DLQ entries: their reason counts, not their count
} s_digest_t;

static bool s_digest_entry(const tern_entry_t *entry, void *arg) {
    s_digest_t *d = arg;
    if (entry->seq > d->upto) {
        return false; //  seq order: the rest is beyond too
    }
    uint8_t buf[12];
    s_be64_put(buf, entry->seq);
    s_be32_put(buf + 8, d->dead ? 0 : entry->delivery_count);
    d->digest = tern_partition_hash(buf, sizeof buf, d->digest);
    if (d->dead) {
        d->digest = tern_partition_hash(entry->reason, strlen(entry->reason), d->digest);
    }
    return true;
}

typedef struct {
    tern_store_reader_t *reader; //  the reader
    s_digest_t d;                //  the chain
    tern_err_t err;              //  first error
} s_groups_digest_t;

static bool s_digest_group(const tern_group_info_t *group, void *arg) {
    s_groups_digest_t *gd = arg;
    s_digest_t *d = &gd->d;
    d->digest = tern_partition_hash(group->name, strlen(group->name) + 1, d->digest);
    uint8_t lanes[8 * (TERN_PRIORITY_MAX + 1)];
    for (int i = 0; i <= TERN_PRIORITY_MAX; i++) {
        //  A cursor past UPTO means "delivered up to there": the same to
        //  replicas that compare up to UPTO.
        uint64_t next = group->lane_next[i] > d->upto + 1 ? d->upto + 1 : group->lane_next[i];
        s_be64_put(lanes + 8 * i, next);
    }
    d->digest = tern_partition_hash(lanes, sizeof lanes, d->digest);
    d->dead = false;
    gd->err = st_entry_list(gd->reader, S_PENDING, group->topic_id, group->name, s_digest_entry, d);
    if (gd->err == TERN_OK) {
        d->dead = true;
        gd->err = st_entry_list(gd->reader, S_DLQ, group->topic_id, group->name, s_digest_entry, d);
    }
    return gd->err == TERN_OK;
}

tern_err_t tern_store_group_digest(tern_store_reader_t *self, const char *topic, uint64_t upto,
                                   uint64_t *digest) {
    if (!digest) {
        return TERN_EINVAL;
    }
    *digest = 0;
    tern_topic_info_t info;
    tern_err_t err = tern_store_topic_get(self, topic, &info);
    if (err == TERN_ENOTFOUND) {
        return TERN_OK; //  no topic, no groups
    }
    if (err != TERN_OK) {
        return err;
    }
    s_groups_digest_t gd = {self, {upto, 0, false}, TERN_OK};
    err = tern_store_group_list(self, info.id, s_digest_group, &gd);
    if (err == TERN_OK) {
        err = gd.err;
    }
    if (err == TERN_OK) {
        *digest = gd.d.digest;
    }
    return err;
}
