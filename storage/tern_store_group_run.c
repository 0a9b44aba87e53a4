/*  tern_store_group_run.c - a run of delivery-state ops (deliver, ack,
    nack, dead): their history events held, then written in key order
    through one cursor when the run ends.

    Under fan-out one commit records events of a few hundred messages for
    each of many groups, in route's order (group by group), and every
    event's key (topic, seq, stamp) lands in the middle of the trace index:
    one B-tree descent per event was ~7k of the storer's ~16k instructions
    per delivery (docs/performance.md, "Fan-out"). Held until the run of
    delivery-state ops ends, sorted and put through one cursor, most events
    land on the leaf page the previous one left the cursor on (LMDB's
    cursor put searches the cursor's own page first and descends only when
    the key is outside it). Same keys, values and transaction as before:
    readers see the same history. The run ends (st_run_end) before any
    other op applies, since some of them read or delete events (removals,
    truncation), and before the records are written back. A peer's ack or
    TERM that calls the same ack step runs as its own kind: its events are
    put at once.
*/
#include "tern_store_int.h"

#include <stdlib.h>

//  Bytes of held events kept between runs: a 16 MB batch of fan-out ops
//  holds ~2 MB of events; more than this is freed after its flush.
#define S_HIST_KEEP (4u << 20)

//  Delivery-state ops only write events (never read or delete them), so
//  their events may wait for the end of the run.
static bool s_holds(st_op_kind_t kind) {
    return kind == OP_DELIVER || kind == OP_ACK || kind == OP_NACK || kind == OP_DEAD;
}

int st_run_before(st_txn_t *ctx, st_op_kind_t kind) {
    if (!s_holds(kind)) {
        return st_run_end(ctx);
    }
    ctx->hist_hold = true;
    return 0;
}

void st_run_reset(st_txn_t *ctx) {
    //  What an aborted attempt held goes.
    ctx->hist_hold = false;
    ctx->batch->hist.len = 0;
    ctx->batch->hist.count = 0;
}

void st_hist_hold(st_txn_t *ctx, const uint8_t *key, const uint8_t *val, size_t vlen) {
    st_hist_t *h = &ctx->batch->hist;
    size_t need = ST_TRACE_KEY + 2 + vlen;
    if (h->len + need > h->cap) {
        h->cap = (h->len + need) * 2;
        h->bytes = tern_realloc(h->bytes, h->cap);
    }
    if (h->count == h->at_cap) {
        h->at_cap = h->at_cap ? h->at_cap * 2 : 1024;
        h->at = tern_realloc(h->at, h->at_cap * sizeof *h->at);
    }
    uint8_t *p = h->bytes + h->len;
    memcpy(p, key, ST_TRACE_KEY);
    p[ST_TRACE_KEY] = (uint8_t)vlen;
    p[ST_TRACE_KEY + 1] = (uint8_t)(vlen >> 8);
    memcpy(p + ST_TRACE_KEY + 2, val, vlen);
    h->at[h->count++] = (uint32_t)h->len;
    h->len += need;
}

//  qsort's argument: the held buffer (qsort passes no context).
static _Thread_local const uint8_t *s_sort_bytes;

static int s_by_key(const void *a, const void *b) {
    return memcmp(s_sort_bytes + *(const uint32_t *)a, s_sort_bytes + *(const uint32_t *)b,
                  ST_TRACE_KEY);
}

int st_run_end(st_txn_t *ctx) {
    st_hist_t *h = &ctx->batch->hist;
    ctx->hist_hold = false; //  events from here on are put at once
    if (!h->count) {
        return 0;
    }
    s_sort_bytes = h->bytes;
    qsort(h->at, h->count, sizeof *h->at, s_by_key);
    MDB_cursor *cur = NULL;
    int rc = mdb_cursor_open(ctx->txn, ctx->dbi[S_TRACE], &cur);
    for (size_t i = 0; rc == 0 && i < h->count; i++) {
        uint8_t *p = h->bytes + h->at[i];
        MDB_val k = {ST_TRACE_KEY, p};
        MDB_val v = {(size_t)p[ST_TRACE_KEY] | (size_t)p[ST_TRACE_KEY + 1] << 8,
                     p + ST_TRACE_KEY + 2};
        rc = mdb_cursor_put(cur, &k, &v, 0);
    }
    if (cur) {
        mdb_cursor_close(cur);
    }
    h->len = 0;
    h->count = 0;
    if (h->cap > S_HIST_KEEP) { //  a burst's buffer goes back (the memory bound)
        st_hist_free(ctx->batch);
    }
    return rc;
}

void st_hist_free(tern_store_batch_t *b) {
    free(b->hist.bytes);
    free(b->hist.at);
    memset(&b->hist, 0, sizeof b->hist);
}
