/*  tern_store_expiry.c - the sweep: TTL expiry, max_age retention, and the
    sweeps of the other concerns (dedup window, outbox retention, history).

    The storer queues one sweep a second (tern_store_batch_sweep); it runs
    inside that batch's transaction with a budget, so one sweep never holds
    the writer long: expired messages are found through the expiry index
    (expire_at BE64 first, so the oldest come first), max_age by each
    limited topic's oldest message. Removal itself is the log's
    (st_msg_remove, tern_store_log.c). Count and size retention run at
    append time instead (tern_store_log.c). The data of deleted topics goes
    here too, in steps (tern_store_reap.c); a sweep is bounded by the pages
    it dirties (S_SWEEP_PAGES).
*/
#include "tern_store_int.h"

#include <stdlib.h>

void tern_store_batch_sweep(tern_store_batch_t *self, uint64_t now_ns, uint32_t max,
                            uint64_t *removed) {
    st_op_t *op = st_batch_push(self, OP_SWEEP);
    op->a = now_ns;
    op->u32 = max;
    op->count_out = removed;
}

static int s_sweep_expiry(st_txn_t *ctx, uint64_t now_ns, uint64_t *budget, uint64_t *removed) {
    MDB_cursor *cur;
    int rc = mdb_cursor_open(ctx->txn, ctx->dbi[S_EXPIRY], &cur);
    if (rc) {
        return rc;
    }
    while (*budget > 0) {
        MDB_val k, v;
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        if (rc) {
            break;
        }
        if (k.mv_size != 20) {
            rc = mdb_cursor_del(cur, 0);
            if (rc) {
                break;
            }
            continue;
        }
        uint8_t key[20];
        memcpy(key, k.mv_data, 20);
        if (s_be64_get(key) > now_ns) {
            break;
        }
        uint32_t topic_id = s_be32_get(key + 8);
        uint64_t seq = s_be64_get(key + 12);
        st_cached_t *t;
        bool gone = false;
        if ((rc = st_topic_by_id(ctx, topic_id, &t))) {
            break;
        }
        if (t && (rc = st_msg_remove(ctx, t, seq, &gone))) {
            break;
        }
        //  Removing the message removed this entry; an orphan goes anyway.
        if ((rc = s_del(ctx->txn, ctx->dbi[S_EXPIRY], key, 20))) {
            break;
        }
        if (gone) {
            ctx->expired++;
            (*removed)++;
            if ((rc = st_trace_put(ctx, topic_id, seq, TERN_TRACE_EXPIRED, NULL, 0, NULL, 0, 0))) {
                break;
            }
        }
        (*budget)--;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int s_sweep_age(st_txn_t *ctx, uint64_t now_ns, uint64_t *budget, uint64_t *removed) {
    //  Collect the names first: topic records are written back at flush.
    char(*names)[TERN_TOPIC_MAX + 1] = NULL;
    size_t count = 0, cap = 0;
    st_iter_t it;
    for (s_iter_open(&it, ctx->txn, ctx->dbi[S_TOPICS], NULL, 0); s_iter_in(&it, NULL, 0, 0);
         s_iter_next(&it)) {
        if (it.v.mv_size == sizeof(st_topic_rec_t) && it.k.mv_size <= TERN_TOPIC_MAX) {
            st_topic_rec_t rec;
            memcpy(&rec, it.v.mv_data, sizeof rec);
            if (rec.max_age_ms && rec.msgs) {
                if (count == cap) {
                    cap = cap ? cap * 2 : 16;
                    void *grown = tern_realloc(names, cap * sizeof *names);
                    names = grown;
                }
                memcpy(names[count], it.k.mv_data, it.k.mv_size);
                names[count][it.k.mv_size] = 0;
                count++;
            }
        }
    }
    int rc = s_iter_end(&it, 0);
    for (size_t i = 0; i < count && rc == 0 && *budget > 0; i++) {
        st_cached_t *t;
        tern_err_t err;
        if ((rc = st_topic_find(ctx, names[i], strlen(names[i]), false, &t, &err))) {
            break;
        }
        if (!t->exists || !t->topic.max_age_ms) {
            continue;
        }
        uint64_t age_ns = t->topic.max_age_ms * 1000000ull;
        uint64_t cutoff = now_ns > age_ns ? now_ns - age_ns : 0;
        while (*budget > 0 && t->topic.msgs > 0) {
            uint64_t s, ts = 0;
            if ((rc = st_seq_time(ctx, t, t->topic.first_seq, &s, &ts))) {
                break;
            }
            if (s > t->topic.last_seq || ts >= cutoff) {
                break;
            }
            bool gone;
            if ((rc = st_msg_remove(ctx, t, s, &gone))) {
                break;
            }
            if (!gone) {
                break;
            }
            ctx->trimmed++;
            (*removed)++;
            (*budget)--;
        }
    }
    free(names);
    return rc;
}

//  What one sweep may dirty, in pages (8 MB of 4 KB pages): LMDB keeps the
//  dirty pages of its largest transaction for good (tern_store_reap.c), so
//  the message removals of a sweep are bounded by pages, not only by the
//  caller's count. A sweep that used it all says so (tern_store_sweep_more)
//  and the storer sweeps again soon instead of a second later.
#define S_SWEEP_PAGES 2048
//  An expired message dirties about two pages: its STORED and EXPIRED
//  history events land beside its other events, one leaf per message when
//  groups made many; its log, index and msgid leaves are shared with its
//  neighbours.
#define S_SWEEP_MSG_PAGES 2

int st_op_sweep(st_txn_t *ctx, st_op_t *op) {
    uint64_t max = S_SWEEP_PAGES / S_SWEEP_MSG_PAGES;
    uint64_t budget = op->u32 < max ? op->u32 : max, removed = 0;
    uint64_t given = budget;
    int rc = s_sweep_expiry(ctx, op->a, &budget, &removed);
    if (rc == 0) {
        rc = s_sweep_age(ctx, op->a, &budget, &removed);
    }
    ctx->swept = true;
    ctx->sweep_more = budget == 0;
    //  Deleted topics get what the expiry left of the pages.
    uint64_t pages = S_SWEEP_PAGES - (given - budget) * S_SWEEP_MSG_PAGES;
    bool more = false;
    if (rc == 0) {
        rc = st_reap(ctx, &pages, &more);
        ctx->sweep_more = ctx->sweep_more || more;
    }
    if (rc == 0) {
        rc = st_sweep_dedup(ctx, op->a, op->u32);
    }
    if (rc == 0) {
        rc = st_sweep_outbox(ctx, op->a, op->u32);
    }
    if (rc == 0) {
        rc = st_sweep_trace(ctx, op->a, op->u32);
    }
    if (op->count_out) {
        *op->count_out = removed;
    }
    return rc;
}
