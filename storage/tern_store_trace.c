/*  tern_store_trace.c - each message's history (stored, delivered, acked,
    nacked, dead, replayed, replicated, expired), for audit and trace.

    Events are written in the same transaction as the change they record
    (by tern_store_group.c, tern_store_dlq.c, the sweep, the log's removals),
    so the history can never disagree with the state. They are kept
    trace_retention after the message was stored (swept by msg_id order,
    which is time order), independent of the message itself: audit and
    trace still see a message that expired or was acked and purged. The
    msgid entry (tern_store_log.c) anchors each message's history; a stored
    message's STORED event is made from its record when read. Peers'
    confirmation times (trace_conf) date the REPLICATED step.
*/
#include "tern_store_int.h"

#define S_TRACE_HDR                                                                                \
    32 //  u8 type, u8 group len, u8 detail len, u8 then, u32 count,
       //  u64 at_ns, u64 msg_id, u64 expire_at_ns; then group, detail.
       //  THEN (0: none): a second event of the same group at the same
       //  time, with no count, detail, msg_id or expiry: a delivery's ack
       //  in the same commit (st_trace_put_pair), read as two events.

/* ------------------------------------------------------------------------
    Writing events
   ------------------------------------------------------------------------ */

void tern_store_batch_trace(tern_store_batch_t *self, uint32_t topic_id, uint64_t seq,
                            tern_trace_type_t type, const char *group, const char *detail) {
    st_op_t *op = st_group_op(self, OP_TRACE, topic_id, group ? group : "", seq);
    op->u32 = (uint32_t)type;
    if (detail && *detail) {
        op->reason = tern_strndup(detail, TERN_TRACE_DETAIL_MAX);
    }
}

int st_op_trace(st_txn_t *ctx, st_op_t *op) {
    return st_trace_put(ctx, op->topic_id, op->a, (uint8_t)op->u32, op->name, 0, op->reason, 0, 0);
}

//  Writes one event with key stamp STAMP and value time AT_NS (GLEN, DLEN:
//  the lengths of GROUP and DETAIL, which need no NUL).
int st_trace_put_at(st_txn_t *ctx, uint32_t topic_id, uint64_t seq, uint64_t stamp, uint64_t at_ns,
                    uint16_t type, const char *group, size_t glen, uint32_t count,
                    const char *detail, size_t dlen, uint64_t msg_id, uint64_t expire_at_ns) {
    glen = glen > TERN_NAME_MAX ? TERN_NAME_MAX : glen;
    dlen = dlen > TERN_TRACE_DETAIL_MAX ? TERN_TRACE_DETAIL_MAX : dlen;
    uint8_t key[ST_TRACE_KEY], val[S_TRACE_HDR + TERN_NAME_MAX + TERN_TRACE_DETAIL_MAX];
    s_be32_put(key, topic_id);
    s_be64_put(key + 4, seq);
    s_be64_put(key + 12, stamp);
    val[0] = (uint8_t)type;
    val[1] = (uint8_t)glen;
    val[2] = (uint8_t)dlen;
    val[3] = (uint8_t)(type >> 8);
    s_le32_put(val + 4, count);
    s_le64_put(val + 8, at_ns);
    s_le64_put(val + 16, msg_id);
    s_le64_put(val + 24, expire_at_ns);
    if (glen) { //  memcpy from NULL is undefined even for 0 bytes (UBSan)
        memcpy(val + S_TRACE_HDR, group, glen);
    }
    if (dlen) {
        memcpy(val + S_TRACE_HDR + glen, detail, dlen);
    }
    if (ctx->hist_hold) { //  a delivery-state op's: put sorted at the end of its run
        st_hist_hold(ctx, key, val, S_TRACE_HDR + glen + dlen);
        return 0;
    }
    MDB_val k = {ST_TRACE_KEY, key}, v = {S_TRACE_HDR + glen + dlen, val};
    //  A first delivery of the newest messages is usually the last key.
    return (uint8_t)type == TERN_TRACE_DELIVERED && count == 1
               ? s_put_tail(ctx->txn, ctx->dbi[S_TRACE], &k, &v, 0)
               : mdb_put(ctx->txn, ctx->dbi[S_TRACE], &k, &v, 0);
}

//  In-DC truncation of TOPIC_ID after AFTER: every event of those seqs goes,
//  and with each STORED event the msgid entry it anchors (when it points at
//  that seq), since the seqs will hold other messages.
int st_trace_truncate(st_txn_t *ctx, uint32_t topic_id, uint64_t after) {
    uint8_t start[12];
    s_be32_put(start, topic_id);
    s_be64_put(start + 4, after + 1);
    int rc = 0;
    st_iter_t it;
    for (s_iter_open(&it, ctx->txn, ctx->dbi[S_TRACE], start, 12);
         rc == 0 && s_iter_in(&it, start, 4, 20); s_iter_next(&it)) {
        const uint8_t *v = it.v.mv_data;
        if (it.v.mv_size >= S_TRACE_HDR && v[0] == TERN_TRACE_STORED) {
            uint8_t idkey[8], at[12];
            memcpy(idkey, v + 16, 8); //  LE64 msg_id -> BE64 key
            s_be64_put(idkey, s_le64_get(idkey));
            memcpy(at, it.k.mv_data, 12);
            MDB_val k = {8, idkey}, m;
            rc = mdb_get(ctx->txn, ctx->dbi[S_MSGID], &k, &m);
            if (rc == 0 && m.mv_size == S_MSGID_SIZE && !memcmp(m.mv_data, at, 12)) {
                rc = mdb_del(ctx->txn, ctx->dbi[S_MSGID], &k, NULL);
            }
            rc = rc == MDB_NOTFOUND ? 0 : rc;
        }
        if (rc == 0) {
            rc = mdb_cursor_del(it.cur, 0);
        }
    }
    return s_iter_end(&it, rc);
}

//  TYPE: the event in the low byte, the one after it in the high byte.
static int s_trace_put(st_txn_t *ctx, uint32_t topic_id, uint64_t seq, uint16_t type,
                       const char *group, uint32_t count, const char *detail, uint64_t msg_id,
                       uint64_t expire_at_ns) {
    tern_store_t *store = ctx->store;
    //  No history when disabled, and none in the storage-full retry: the
    //  reserve is for acks and deletes, not for their history.
    if (!store->config.trace_retention_ms || ctx->no_appends) {
        return 0;
    }
    uint64_t stamp = ctx->now_ns > store->trace_stamp ? ctx->now_ns : store->trace_stamp + 1;
    store->trace_stamp = stamp;
    size_t glen = group ? s_name_len(group, TERN_NAME_MAX) : 0;
    size_t dlen = detail ? s_name_len(detail, TERN_TRACE_DETAIL_MAX) : 0;
    return st_trace_put_at(ctx, topic_id, seq, stamp, ctx->now_ns, type, group, glen, count, detail,
                           dlen, msg_id, expire_at_ns);
}

int st_trace_put(st_txn_t *ctx, uint32_t topic_id, uint64_t seq, uint8_t type, const char *group,
                 uint32_t count, const char *detail, uint64_t msg_id, uint64_t expire_at_ns) {
    return s_trace_put(ctx, topic_id, seq, type, group, count, detail, msg_id, expire_at_ns);
}

//  Event TYPE and, when THEN is not 0, event THEN of the same group right
//  after it, in one record (half the writes for a delivery acked in the
//  commit that records it).
int st_trace_put_pair(st_txn_t *ctx, uint32_t topic_id, uint64_t seq, uint8_t type, uint8_t then,
                      const char *group, uint32_t count, const char *detail) {
    return s_trace_put(ctx, topic_id, seq, (uint16_t)(type | then << 8), group, count, detail, 0,
                       0);
}

//  Confirmation times (when each peer's confirmed outbox position moved,
//  for REPLICATED in trace): the position only grows and is recorded with
//  the commit time, so each peer's entries are in time order. Written only
//  when trace is on (and not in the storage-full retry); swept
//  trace_retention after they were recorded. PREVIOUS, the position the
//  peer had confirmed before, tells a reader whether an entry is the one
//  that first covered a position or a gap went unrecorded.
int st_trace_confirm(st_txn_t *ctx, const char *peer, uint64_t position, uint64_t previous) {
    if (!ctx->store->config.trace_retention_ms || ctx->no_appends || !position) {
        return 0;
    }
    size_t plen = s_name_len(peer, TERN_NAME_MAX);
    plen = plen > TERN_NAME_MAX ? TERN_NAME_MAX : plen;
    uint8_t key[TERN_NAME_MAX + 9], val[16];
    memcpy(key, peer, plen);
    key[plen] = 0;
    s_be64_put(key + plen + 1, position);
    s_le64_put(val, ctx->now_ns);
    s_le64_put(val + 8, previous);
    MDB_val k = {plen + 9, key}, v = {16, val};
    return mdb_put(ctx->txn, ctx->dbi[S_TRACE_CONF], &k, &v, 0);
}

//  Deletes up to BUDGET confirmation times recorded before CUTOFF (ns); the
//  oldest of each peer come first in key order.
/* ------------------------------------------------------------------------
    The history sweep
   ------------------------------------------------------------------------ */

static int s_sweep_trace_conf(st_txn_t *ctx, uint64_t cutoff, uint64_t budget) {
    MDB_cursor *cur;
    int rc = mdb_cursor_open(ctx->txn, ctx->dbi[S_TRACE_CONF], &cur);
    if (rc) {
        return rc;
    }
    MDB_val k, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0 && budget > 0) {
        size_t plen = k.mv_size > 9 ? k.mv_size - 9 : 0;
        if (v.mv_size == 16 && plen && plen <= TERN_NAME_MAX && s_le64_get(v.mv_data) >= cutoff) {
            //  This peer's remaining entries are newer: go to the next peer.
            uint8_t next[TERN_NAME_MAX + 9];
            memcpy(next, k.mv_data, plen + 1);
            memset(next + plen + 1, 0xff, 8);
            MDB_val nk = {plen + 9, next};
            rc = mdb_cursor_get(cur, &nk, &v, MDB_SET_RANGE);
            if (rc == 0 && nk.mv_size == plen + 9 && memcmp(nk.mv_data, next, plen + 9) == 0) {
                rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            } else {
                k = nk;
            }
            continue;
        }
        budget--;
        if ((rc = mdb_cursor_del(cur, 0))) {
            break;
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT); //  after a delete: the next entry
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

//  Walks msgid from ctx->trace_next (msg_id order, i.e. time order) and ends
//  the history of every message stored before the cutoff: its events go;
//  the entry too if the message is gone, else it is marked SWEPT and stays
//  for lookups by id. Stops at the first entry inside the retention; the
//  next sweep resumes there (an append below the position moves it back).
int st_sweep_trace(st_txn_t *ctx, uint64_t now_ns, uint64_t budget) {
    uint64_t retention_ns = ctx->store->config.trace_retention_ms * 1000000ull;
    if (!retention_ns) {
        return 0;
    }
    uint64_t cutoff = now_ns > retention_ns ? now_ns - retention_ns : 0;
    uint64_t conf_budget = budget;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(ctx->txn, ctx->dbi[S_MSGID], &cur);
    if (rc) {
        return rc;
    }
    uint64_t next = ctx->trace_next;
    uint8_t key[8];
    s_be64_put(key, next);
    MDB_val k = {8, key}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0) {
        uint64_t id = k.mv_size == 8 ? s_be64_get(k.mv_data) : next;
        next = id;
        if (budget == 0) {
            break;
        }
        if (k.mv_size == 8 && v.mv_size == S_MSGID_SIZE) {
            uint8_t val[S_MSGID_SIZE];
            memcpy(val, v.mv_data, S_MSGID_SIZE);
            if (!(val[M_FLAGS] & S_MSGID_SWEPT)) {
                if (s_le64_get(val + M_AT) >= cutoff) {
                    break;
                }
                if ((rc = st_del_prefix(ctx, ctx->dbi[S_TRACE], val, 12, NULL))) {
                    break;
                }
                if (val[M_FLAGS] & S_MSGID_REMOVED) {
                    if ((rc = mdb_cursor_del(cur, 0))) {
                        break;
                    }
                    budget--;
                    next = id + 1;
                    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT); //  after a delete: the next
                    continue;
                }
                val[M_FLAGS] |= S_MSGID_SWEPT;
                uint8_t ck[8];
                s_be64_put(ck, id);
                MDB_val nk = {8, ck}, nv = {S_MSGID_SIZE, val};
                if ((rc = mdb_cursor_put(cur, &nk, &nv, MDB_CURRENT))) {
                    break;
                }
            }
        }
        budget--;
        next = id + 1;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    rc = rc == MDB_NOTFOUND ? 0 : rc;
    if (rc == 0) {
        ctx->trace_next = next;
    }
    return rc ? rc : s_sweep_trace_conf(ctx, cutoff, conf_budget);
}

/* ------------------------------------------------------------------------
    Reads
   ------------------------------------------------------------------------ */

static tern_err_t s_msgid_history(tern_store_reader_t *self, uint64_t msg_id, const uint8_t **val) {
    if (!self->store->config.trace_retention_ms) {
        return TERN_ENOTFOUND;
    }
    tern_err_t err = st_msgid_get(self, msg_id, val);
    if (err == TERN_OK && ((*val)[M_FLAGS] & S_MSGID_SWEPT)) {
        err = TERN_ENOTFOUND;
    }
    return err;
}

tern_err_t tern_store_trace_find(tern_store_reader_t *self, uint64_t msg_id, uint32_t *topic_id,
                                 uint64_t *seq) {
    S_READER_CHECK(self);
    const uint8_t *val;
    tern_err_t err = s_msgid_history(self, msg_id, &val);
    if (err) {
        return err;
    }
    *topic_id = s_be32_get(val + M_TOPIC);
    *seq = s_be64_get(val + M_SEQ);
    return TERN_OK;
}

tern_err_t tern_store_trace_outbox(tern_store_reader_t *self, uint64_t msg_id, uint64_t *position) {
    S_READER_CHECK(self);
    const uint8_t *val;
    tern_err_t err = s_msgid_history(self, msg_id, &val);
    if (err) {
        return err;
    }
    *position = s_le64_get(val + M_POSITION);
    return TERN_OK;
}

tern_err_t tern_store_trace_confirmed_at(tern_store_reader_t *self, const char *peer,
                                         uint64_t position, uint64_t *at_ns) {
    S_READER_CHECK(self);
    size_t plen = s_name_len(peer, TERN_NAME_MAX);
    if (!plen || plen > TERN_NAME_MAX || !position) {
        return TERN_ENOTFOUND;
    }
    uint8_t key[TERN_NAME_MAX + 9];
    memcpy(key, peer, plen);
    key[plen] = 0;
    s_be64_put(key + plen + 1, position);
    //  The first recorded confirmation of PEER at or past POSITION; it is
    //  the one that covered POSITION only if the peer's previous confirmed
    //  position was below it (else that one was not recorded).
    st_iter_t it;
    s_iter_open(&it, self->txn, self->store->dbi[S_TRACE_CONF], key, plen + 9);
    tern_err_t err = TERN_ENOTFOUND;
    if (s_iter_in(&it, key, plen + 1, plen + 9)) {
        if (it.v.mv_size != 16) {
            err = TERN_ECORRUPT;
        } else if (s_le64_get((uint8_t *)it.v.mv_data + 8) < position) {
            *at_ns = s_le64_get(it.v.mv_data);
            err = TERN_OK;
        }
    }
    tern_err_t walk = s_iter_close(&it, TERN_OK);
    return walk ? walk : err;
}

//  The STORED event of the stored record V (log key topic + seq), made from
//  the record and its msgid entry (at_ns: the append's commit time, which
//  s_msgid_release also writes when the message leaves). False when it has
//  none: no msg_id, damaged, or its history was swept.
static bool s_stored_event(tern_store_reader_t *self, uint32_t topic_id, uint64_t seq,
                           const MDB_val *v, tern_trace_event_t *ev) {
    st_record_t rec;
    const uint8_t *val;
    if (st_record_parse(v, false, &rec) != TERN_OK || !rec.msg_id ||
        st_msgid_get(self, rec.msg_id, &val) != TERN_OK || s_be32_get(val + M_TOPIC) != topic_id ||
        s_be64_get(val + M_SEQ) != seq || (val[M_FLAGS] & (S_MSGID_SWEPT | S_MSGID_REMOVED))) {
        return false;
    }
    const char *trace_id, *origin;
    size_t trlen, olen;
    st_record_trace(&rec, &trace_id, &trlen, &origin, &olen);
    memset(ev, 0, offsetof(tern_trace_event_t, group));
    ev->type = TERN_TRACE_STORED;
    ev->topic_id = topic_id;
    ev->seq = seq;
    ev->at_ns = s_le64_get(val + M_AT);
    ev->msg_id = rec.msg_id;
    ev->expire_at_ns = rec.expire_at_ns;
    memcpy(ev->group, origin, olen);
    ev->group[olen] = 0;
    memcpy(ev->detail, trace_id, trlen);
    ev->detail[trlen] = 0;
    return true;
}

//  Merges two walks in seq order: the trace events and, for messages still
//  stored, the log (a STORED event made from each record, first for its seq).
//  The trace event V (key seq SEQ) of TOPIC_ID into EV. TERN_ECORRUPT when
//  malformed.
static tern_err_t s_event_parse(const MDB_val *v, uint32_t topic_id, uint64_t seq,
                                tern_trace_event_t *ev) {
    const uint8_t *p = v->mv_data;
    if (v->mv_size < S_TRACE_HDR || v->mv_size != S_TRACE_HDR + (size_t)p[1] + p[2] ||
        p[1] > TERN_NAME_MAX || p[2] > TERN_TRACE_DETAIL_MAX || p[3] > TERN_TRACE_TIMEOUT) {
        return TERN_ECORRUPT;
    }
    ev->seq = seq;
    ev->type = p[0];
    ev->topic_id = topic_id;
    ev->delivery_count = s_le32_get(p + 4);
    ev->at_ns = s_le64_get(p + 8);
    ev->msg_id = s_le64_get(p + 16);
    ev->expire_at_ns = s_le64_get(p + 24);
    memcpy(ev->group, p + S_TRACE_HDR, p[1]);
    ev->group[p[1]] = 0;
    memcpy(ev->detail, p + S_TRACE_HDR + p[1], p[2]);
    ev->detail[p[2]] = 0;
    return TERN_OK;
}

//  The second event of record V (its THEN byte), just parsed into EV, if
//  it has one, to FN. False when FN says stop.
static bool s_event_then(const MDB_val *v, tern_trace_event_t *ev, tern_trace_fn *fn, void *arg) {
    uint8_t then = ((const uint8_t *)v->mv_data)[3];
    if (!then) {
        return true;
    }
    ev->type = then;
    ev->delivery_count = 0;
    ev->msg_id = 0;
    ev->expire_at_ns = 0;
    ev->detail[0] = 0;
    return fn(ev, arg);
}

tern_err_t tern_store_trace_scan(tern_store_reader_t *self, uint32_t topic_id, uint64_t from_seq,
                                 uint64_t to_seq, tern_trace_fn *fn, void *arg) {
    S_READER_CHECK(self);
    bool synth = self->store->config.trace_retention_ms > 0; //  else no STORED is made
    uint8_t key[ST_TRACE_KEY], lkey[12];
    s_be32_put(key, topic_id);
    s_be64_put(key + 4, from_seq);
    memset(key + 12, 0, 8);
    memcpy(lkey, key, 12);
    MDB_cursor *cur, *lcur;
    int rc = mdb_cursor_open(self->txn, self->store->dbi[S_TRACE], &cur);
    if (rc) {
        return s_err(rc);
    }
    if ((rc = mdb_cursor_open(self->txn, self->store->dbi[S_LOG], &lcur))) {
        mdb_cursor_close(cur);
        return s_err(rc);
    }
    tern_err_t err = TERN_OK;
    MDB_val k = {ST_TRACE_KEY, key}, v, lk = {12, lkey}, lv;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    int lrc = synth ? mdb_cursor_get(lcur, &lk, &lv, MDB_SET_RANGE) : MDB_NOTFOUND;
    for (;;) {
        uint64_t tseq = UINT64_MAX, lseq = UINT64_MAX;
        bool tok = rc == 0 && k.mv_size == 20 && s_be32_get(k.mv_data) == topic_id;
        bool lok = lrc == 0 && lk.mv_size == 12 && s_be32_get(lk.mv_data) == topic_id;
        if (tok) {
            tseq = s_be64_get((uint8_t *)k.mv_data + 4);
        }
        if (lok) {
            lseq = s_be64_get((uint8_t *)lk.mv_data + 4);
        }
        if (!tok && !lok) {
            break;
        }
        tern_trace_event_t ev;
        if (lok && lseq <= tseq) {
            if (lseq > to_seq) {
                break;
            }
            bool have = s_stored_event(self, topic_id, lseq, &lv, &ev);
            if (have && !fn(&ev, arg)) {
                break;
            }
            lrc = mdb_cursor_get(lcur, &lk, &lv, MDB_NEXT);
            continue;
        }
        if (tseq > to_seq || (err = s_event_parse(&v, topic_id, tseq, &ev)) != TERN_OK) {
            break;
        }
        if (!fn(&ev, arg) || !s_event_then(&v, &ev, fn, arg)) {
            break;
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(lcur);
    mdb_cursor_close(cur);
    if (err == TERN_OK && rc && rc != MDB_NOTFOUND) {
        err = s_err(rc);
    } else if (err == TERN_OK && lrc && lrc != MDB_NOTFOUND) {
        err = s_err(lrc);
    }
    return err;
}
