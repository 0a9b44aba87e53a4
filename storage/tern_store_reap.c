/*  tern_store_reap.c - deleted topics, removed in steps: the tombstone and
    the reaper.

    LMDB (0.9, without MDB_WRITEMAP) mallocs every page a write transaction
    dirties and, at commit, keeps the single pages on the environment's free
    list (me_dpages, mdb_page_free) until the environment closes: the peak
    dirty set of the largest transaction stays in the process for good
    (bounded only by MDB_IDL_UM_MAX, 128 K pages = 512 MB, where LMDB starts
    spilling). Deleting a topic of 20,000 messages with 100 groups' history
    in one transaction dirtied ~100 MB that way. So a topic delete only
    writes a tombstone, and the messages go later, a bounded step per sweep:

    - The delete's transaction removes the topic's name record, its id ->
      name entry and its group records, and writes meta
      "store.doomed.<id, 8 hex digits>" (value: its last seq). From that
      commit on nothing reaches the topic's data: every reader resolves a
      topic by name, or its id to a name (tern_store_read), and ids are
      never reused, so a new topic of the same name starts empty.
    - Each sweep (tern_store_expiry.c) calls st_reap with a budget of
      dirty pages: the messages of the doomed topics go through
      st_msg_remove (indexes, msgid history, STORED events, as any other
      removal), then their pending, DLQ and stray priority entries; the
      meta key goes in the transaction that removes the last of them. A
      crash between steps leaves the tombstone, so the reaper finishes
      after the restart.
*/
#include "tern_store_int.h"

#include <stdio.h>
#include <stdlib.h>

//  "store.doomed." + 8 hex digits
#define S_DOOMED_KEY_LEN (sizeof S_META_DOOMED - 1 + 8)

//  Dirty pages per entry of the pending, DLQ and priority databases: they
//  go in key order, so a leaf is dirtied once for its ~50 entries and,
//  emptied, reused by LMDB for the next (a "loose" page).
#define S_REAP_ENTRIES_PER_PAGE 32

static void s_doomed_key(char key[S_DOOMED_KEY_LEN + 1], uint32_t topic_id) {
    snprintf(key, S_DOOMED_KEY_LEN + 1, "%s%08x", S_META_DOOMED, topic_id);
}

int st_doom(st_txn_t *ctx, uint32_t topic_id, uint64_t last_seq) {
    char key[S_DOOMED_KEY_LEN + 1];
    s_doomed_key(key, topic_id);
    ctx->doomed = true;
    return s_put_u64(ctx->txn, ctx->dbi[S_META], key, last_seq);
}

//  Removes up to *BUDGET messages of doomed TOPIC_ID (stored seqs up to
//  LAST), taking one page each from *BUDGET; *DONE when none is left.
static int s_reap_msgs(st_txn_t *ctx, uint32_t topic_id, uint64_t last, uint64_t *budget,
                       bool *done) {
    //  A stand-in for the topic record st_msg_remove updates: the record is
    //  gone, and this one is never cached, so never written back.
    st_cached_t t;
    memset(&t, 0, sizeof t);
    t.topic.id = topic_id;
    t.topic.last_seq = last;
    t.topic.msgs = UINT64_MAX;
    t.topic.first_seq = 0; //  no seq is 0: st_msg_remove never looks for a next first
    uint64_t from = 0;
    int rc = 0;
    *done = false;
    while (rc == 0 && *budget > 0) {
        uint64_t seq;
        if ((rc = st_first_seq(ctx, topic_id, from, last, &seq, NULL)) || seq > last) {
            *done = rc == 0;
            break;
        }
        bool gone;
        rc = st_msg_remove(ctx, &t, seq, &gone);
        from = seq + 1;
        (*budget)--;
    }
    return rc;
}

//  Deletes up to *BUDGET pages' worth of the keys of DBI that start with
//  TOPIC_ID; *DONE when none is left.
static int s_reap_entries(st_txn_t *ctx, int dbi, uint32_t topic_id, uint64_t *budget, bool *done) {
    uint8_t prefix[4];
    s_be32_put(prefix, topic_id);
    uint64_t max = *budget * S_REAP_ENTRIES_PER_PAGE, count = 0;
    int rc = st_del_range_max(ctx, ctx->dbi[dbi], prefix, 4, 4, max, &count);
    *done = rc == 0 && count < max;
    uint64_t pages = (count + S_REAP_ENTRIES_PER_PAGE - 1) / S_REAP_ENTRIES_PER_PAGE;
    *budget -= pages < *budget ? pages : *budget;
    return rc;
}

//  One doomed topic, as far as *BUDGET goes: *DONE when all of it is gone.
static int s_reap_topic(st_txn_t *ctx, uint32_t topic_id, uint64_t last, uint64_t *budget,
                        bool *done) {
    static const int dbis[] = {S_PENDING, S_DLQ, S_PRIO};
    int rc = s_reap_msgs(ctx, topic_id, last, budget, done);
    for (size_t i = 0; rc == 0 && *done && i < sizeof dbis / sizeof dbis[0]; i++) {
        *done = false;
        if (*budget > 0) {
            rc = s_reap_entries(ctx, dbis[i], topic_id, budget, done);
        }
    }
    return rc;
}

//  The first doomed topic in meta: its key into KEY (S_DOOMED_KEY_LEN + 1
//  bytes), its id into *TOPIC_ID (0 for a key st_doom did not write: damage,
//  dropped by the caller rather than stopping every sweep) and *LAST; *FOUND
//  false when there is none.
static int s_doomed_first(st_txn_t *ctx, char *key, uint32_t *topic_id, uint64_t *last,
                          bool *found) {
    const size_t plen = sizeof S_META_DOOMED - 1;
    st_iter_t it;
    int rc = 0;
    s_iter_open(&it, ctx->txn, ctx->dbi[S_META], S_META_DOOMED, plen);
    //  A key of another length cannot even be named back: it goes here.
    while (s_iter_in(&it, S_META_DOOMED, plen, 0) && it.k.mv_size != S_DOOMED_KEY_LEN &&
           (rc = mdb_cursor_del(it.cur, 0)) == 0) {
        s_iter_next(&it);
    }
    *found = rc == 0 && s_iter_in(&it, S_META_DOOMED, plen, S_DOOMED_KEY_LEN);
    *topic_id = 0;
    if (*found) {
        memcpy(key, it.k.mv_data, S_DOOMED_KEY_LEN);
        key[S_DOOMED_KEY_LEN] = 0;
        char *end = NULL;
        unsigned long id = strtoul(key + plen, &end, 16);
        if (end == key + S_DOOMED_KEY_LEN && it.v.mv_size == 8) {
            *topic_id = (uint32_t)id;
            *last = s_le64_get(it.v.mv_data);
        }
    }
    return s_iter_end(&it, rc);
}

int st_reap(st_txn_t *ctx, uint64_t *budget, bool *more) {
    int rc = 0;
    *more = false;
    while (rc == 0) {
        char key[S_DOOMED_KEY_LEN + 1];
        uint32_t topic_id;
        uint64_t last = 0;
        bool found, done = true;
        if ((rc = s_doomed_first(ctx, key, &topic_id, &last, &found)) || !found) {
            break;
        }
        if (*budget == 0) {
            *more = true;
            break;
        }
        if (topic_id && (rc = s_reap_topic(ctx, topic_id, last, budget, &done))) {
            break;
        }
        if (!done) {
            *more = true;
            break;
        }
        rc = s_del(ctx->txn, ctx->dbi[S_META], key, S_DOOMED_KEY_LEN);
    }
    return rc;
}
