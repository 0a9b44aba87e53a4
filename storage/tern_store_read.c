/*  tern_store_read.c - readers: snapshot transactions, and the reads of
    topics, the log and meta values.

    A tern_store_reader_t wraps one MDB_NOTLS read transaction, renewed per
    use (tern_store_read_begin) and reset after (tern_store_read_end), under
    the store's rwlock as a reader, so the writer can resize the map between
    two snapshots (tern_store.c). The route actor reads messages here for
    delivery; admin reads (ternctl) use their own reader. The reads of the
    other concerns (groups, DLQ, outbox, history) are in their files and
    open with the same S_READER_CHECK.
*/
#include "tern_store_int.h"
#include "tern_partition.h"

#include <stdlib.h>

/* ------------------------------------------------------------------------
    Reader lifecycle
   ------------------------------------------------------------------------ */

tern_store_reader_t *tern_store_reader_new(tern_store_t *store) {
    if (!store) {
        return NULL;
    }
    tern_store_reader_t *self = calloc(1, sizeof *self);
    if (self) {
        self->store = store;
    }
    return self;
}

void tern_store_reader_destroy(tern_store_reader_t **self_p) {
    if (!self_p || !*self_p) {
        return;
    }
    tern_store_reader_t *self = *self_p;
    if (self->active) {
        tern_store_read_end(self);
    }
    if (self->txn) {
        mdb_txn_abort(self->txn);
    }
    free(self);
    *self_p = NULL;
}

tern_err_t tern_store_read_begin(tern_store_reader_t *self) {
    if (!self || self->active) {
        return TERN_ESTATE;
    }
    pthread_rwlock_rdlock(&self->store->lock);
    int rc;
    if (self->txn) {
        rc = mdb_txn_renew(self->txn);
    } else {
        rc = mdb_txn_begin(self->store->env, NULL, MDB_RDONLY, &self->txn);
        if (rc) {
            self->txn = NULL;
        }
    }
    if (rc == MDB_MAP_RESIZED) {
        //  Writer grew the map in another process; renew after adopting it.
        if (self->txn) {
            mdb_txn_abort(self->txn);
            self->txn = NULL;
        }
        pthread_rwlock_unlock(&self->store->lock);
        return TERN_EBUSY;
    }
    if (rc) {
        pthread_rwlock_unlock(&self->store->lock);
        return s_err(rc);
    }
    self->active = true;
    //  A deleted topic's messages stay in the log until the reaper removes
    //  them (tern_store_reap.c): its cached name must not outlive the delete.
    uint64_t dooms = atomic_load(&self->store->dooms);
    if (dooms != self->dooms) {
        self->dooms = dooms;
        self->topic_id = 0;
    }
    return TERN_OK;
}

void tern_store_read_end(tern_store_reader_t *self) {
    if (!self || !self->active) {
        return;
    }
    mdb_txn_reset(self->txn);
    self->active = false;
    pthread_rwlock_unlock(&self->store->lock);
}

tern_err_t tern_store_get_u64(tern_store_reader_t *self, const char *name, uint64_t *value) {
    S_READER_CHECK(self);
    if (!name || !*name) {
        return TERN_EINVAL;
    }
    return s_err(s_get_u64(self->txn, self->store->dbi[S_META], name, value));
}

/* ------------------------------------------------------------------------
    Topics
   ------------------------------------------------------------------------ */

static tern_err_t s_topic_info(const MDB_val *k, const MDB_val *v, tern_topic_info_t *out) {
    if (v->mv_size != sizeof(st_topic_rec_t) || k->mv_size == 0 || k->mv_size > TERN_TOPIC_MAX) {
        return TERN_ECORRUPT;
    }
    st_topic_rec_t rec;
    memcpy(&rec, v->mv_data, sizeof rec);
    memset(out, 0, sizeof *out);
    out->id = (uint32_t)rec.id;
    memcpy(out->name, k->mv_data, k->mv_size);
    out->name[k->mv_size] = 0;
    out->max_age_ms = rec.max_age_ms;
    out->max_msgs = rec.max_msgs;
    out->max_bytes = rec.max_bytes;
    out->first_seq = rec.first_seq;
    out->last_seq = rec.last_seq;
    out->msgs = rec.msgs;
    out->bytes = rec.bytes;
    out->created_ns = rec.created_ns;
    return TERN_OK;
}

tern_err_t tern_store_topic_get(tern_store_reader_t *self, const char *name,
                                tern_topic_info_t *out) {
    S_READER_CHECK(self);
    size_t len = s_name_len(name, TERN_TOPIC_MAX);
    if (len == 0 || len > TERN_TOPIC_MAX) {
        return TERN_ETOPIC;
    }
    MDB_val k = {len, (void *)name}, v;
    int rc = mdb_get(self->txn, self->store->dbi[S_TOPICS], &k, &v);
    if (rc) {
        return s_err(rc);
    }
    return s_topic_info(&k, &v, out);
}

//  Resolves a topic id to its name (cached: ids are never reused).
static tern_err_t s_topic_name(tern_store_reader_t *self, uint32_t id, const char **name) {
    if (id && id == self->topic_id) {
        *name = self->topic;
        return TERN_OK;
    }
    uint8_t key[4];
    s_be32_put(key, id);
    MDB_val k = {4, key}, v;
    int rc = mdb_get(self->txn, self->store->dbi[S_TOPIC_IDS], &k, &v);
    if (rc) {
        return s_err(rc);
    }
    if (v.mv_size == 0 || v.mv_size > TERN_TOPIC_MAX) {
        return TERN_ECORRUPT;
    }
    memcpy(self->topic, v.mv_data, v.mv_size);
    self->topic[v.mv_size] = 0;
    self->topic_id = id;
    *name = self->topic;
    return TERN_OK;
}

tern_err_t tern_store_topic_get_id(tern_store_reader_t *self, uint32_t id, tern_topic_info_t *out) {
    S_READER_CHECK(self);
    const char *name;
    tern_err_t err = s_topic_name(self, id, &name);
    if (err) {
        return err;
    }
    err = tern_store_topic_get(self, name, out);
    return err == TERN_OK && out->id != id ? TERN_ENOTFOUND : err;
}

tern_err_t tern_store_topic_list(tern_store_reader_t *self, tern_topic_fn *fn, void *arg) {
    S_READER_CHECK(self);
    tern_err_t err = TERN_OK;
    st_iter_t it;
    for (s_iter_open(&it, self->txn, self->store->dbi[S_TOPICS], NULL, 0);
         s_iter_in(&it, NULL, 0, 0); s_iter_next(&it)) {
        tern_topic_info_t info;
        if ((err = s_topic_info(&it.k, &it.v, &info)) || !fn(&info, arg)) {
            break;
        }
    }
    return s_iter_close(&it, err);
}

/* ------------------------------------------------------------------------
    The log
   ------------------------------------------------------------------------ */

tern_err_t tern_store_read(tern_store_reader_t *self, uint32_t topic_id, uint64_t seq,
                           tern_frame_t *out) {
    S_READER_CHECK(self);
    uint8_t tkey[12];
    s_be32_put(tkey, topic_id);
    s_be64_put(tkey + 4, seq);
    MDB_val k = {12, tkey}, v;
    int rc = mdb_get(self->txn, self->store->dbi[S_LOG], &k, &v);
    if (rc) {
        return s_err(rc);
    }
    st_record_t rec;
    tern_err_t err = st_record_parse(&v, true, &rec);
    if (err == TERN_OK && (rec.topic_id != topic_id || rec.seq != seq)) {
        err = TERN_ECORRUPT;
    }
    if (err) {
        atomic_fetch_add(&self->store->corrupt_records, 1);
        return err;
    }
    const char *topic;
    if ((err = s_topic_name(self, topic_id, &topic))) {
        return err;
    }
    st_record_frame(&rec, out);
    strcpy(out->topic, topic);
    return TERN_OK;
}

tern_err_t tern_store_read_next(tern_store_reader_t *self, uint32_t topic_id, uint64_t from_seq,
                                tern_frame_t *out) {
    S_READER_CHECK(self);
    uint8_t key[12];
    s_be32_put(key, topic_id);
    s_be64_put(key + 4, from_seq);
    st_iter_t it;
    s_iter_open(&it, self->txn, self->store->dbi[S_LOG], key, 12);
    uint64_t seq = s_iter_in(&it, key, 4, 12) ? s_be64_get((uint8_t *)it.k.mv_data + 4) : 0;
    tern_err_t err = s_iter_close(&it, TERN_OK);
    if (err) {
        return err;
    }
    return seq ? tern_store_read(self, topic_id, seq, out) : TERN_ENOTFOUND;
}

tern_err_t tern_store_seq_at_time(tern_store_reader_t *self, uint32_t topic_id, uint64_t at_ns,
                                  uint64_t *seq) {
    tern_topic_info_t info;
    tern_err_t err = tern_store_topic_get_id(self, topic_id, &info);
    if (err) {
        return err;
    }
    return s_err(st_seq_at_time(self->txn, self->store->dbi[S_LOG], topic_id, info.first_seq,
                                info.last_seq, at_ns, seq));
}

//  The msgid entry of MSG_ID into *VAL (borrowed until read_end).
tern_err_t st_msgid_get(tern_store_reader_t *self, uint64_t msg_id, const uint8_t **val) {
    uint8_t key[8];
    s_be64_put(key, msg_id);
    MDB_val k = {8, key}, v;
    int rc = mdb_get(self->txn, self->store->dbi[S_MSGID], &k, &v);
    if (rc) {
        return s_err(rc);
    }
    if (v.mv_size != S_MSGID_SIZE) {
        return TERN_ECORRUPT;
    }
    *val = v.mv_data;
    return TERN_OK;
}

tern_err_t tern_store_find_msg(tern_store_reader_t *self, uint64_t msg_id, uint32_t *topic_id,
                               uint64_t *seq) {
    S_READER_CHECK(self);
    const uint8_t *val;
    tern_err_t err = st_msgid_get(self, msg_id, &val);
    if (err) {
        return err;
    }
    if (val[M_FLAGS] & S_MSGID_REMOVED) {
        return TERN_ENOTFOUND; //  only its history is left
    }
    *topic_id = s_be32_get(val + M_TOPIC);
    *seq = s_be64_get(val + M_SEQ);
    //  A message of a deleted topic the reaper has not reached: gone too.
    const char *name;
    return s_topic_name(self, *topic_id, &name) == TERN_OK ? TERN_OK : TERN_ENOTFOUND;
}

tern_err_t tern_store_lane_scan(tern_store_reader_t *self, uint32_t topic_id, uint8_t priority,
                                uint64_t from_seq, uint64_t *seqs, size_t max, size_t *count) {
    S_READER_CHECK(self);
    *count = 0;
    if (priority > TERN_PRIORITY_MAX) {
        return TERN_ERANGE;
    }
    if (max == 0) {
        return TERN_OK;
    }
    uint8_t key[13];
    s_be32_put(key, topic_id);
    key[4] = priority;
    s_be64_put(key + 5, from_seq);
    st_iter_t it;
    for (s_iter_open(&it, self->txn, self->store->dbi[S_PRIO], key, 13);
         *count < max && s_iter_in(&it, key, 5, 13); s_iter_next(&it)) {
        seqs[(*count)++] = s_be64_get((uint8_t *)it.k.mv_data + 5);
    }
    return s_iter_close(&it, TERN_OK);
}

/* ------------------------------------------------------------------------
    Digest (in-DC replicas compare their logs)
   ------------------------------------------------------------------------ */

//  CRC32C of a record's content: every byte but the CRC itself, the topic id
//  and the frame's flag bits, which are this node's (ids are given in
//  creation order per node; the flags are those of the frame it came in,
//  a PUBLISH on the leader, a CREPL_RECORD on a follower).
static uint32_t s_content_crc(const st_record_t *rec) {
    const uint8_t *p = rec->base;
    uint32_t crc = tern_crc32c(0, p + R_VERSION, R_TOPIC - R_VERSION);
    return tern_crc32c(crc, p + R_MSG_ID, rec->size - R_MSG_ID);
}

//  Folds record REC and its dedup entry (the msg_id and seq it names, or
//  none) into *DIGEST; the entry only when REC was stored at or after
//  DEDUP_SINCE (unix ns), else a mark that it was not compared.
static tern_err_t s_digest_record(tern_store_reader_t *self, const st_record_t *rec,
                                  uint64_t dedup_since, uint64_t *digest) {
    const uint8_t *p = rec->base;
    uint8_t entry[37] = {0};
    s_le64_put(entry, rec->seq);
    s_le64_put(entry + 8, rec->msg_id);
    s_le32_put(entry + 16, s_content_crc(rec));
    size_t plen = p[R_PRODUCER_LEN];
    if (plen && s_le64_get(p + R_TS) < dedup_since) {
        entry[20] = 2; //  old enough that a replica may have expired it
    } else if (plen) {
        uint8_t key[TERN_NAME_MAX + 9];
        size_t klen = s_dedup_key(key, (const char *)p + R_HEADER, plen, s_le64_get(p + R_PSEQ));
        MDB_val k = {klen, key}, v;
        int rc = mdb_get(self->txn, self->store->dbi[S_DEDUP], &k, &v);
        if (rc == 0 && v.mv_size == S_DEDUP_SIZE) {
            entry[20] = 1;
            memcpy(entry + 21, v.mv_data, 16); //  msg_id, seq (LE64)
        } else if (rc && rc != MDB_NOTFOUND) {
            return s_err(rc);
        }
    }
    *digest = tern_partition_hash(entry, sizeof entry, *digest);
    return TERN_OK;
}

tern_err_t tern_store_digest(tern_store_reader_t *self, const char *topic, uint64_t upto,
                             uint64_t dedup_since, uint64_t *digest) {
    S_READER_CHECK(self);
    if (!digest) {
        return TERN_EINVAL;
    }
    *digest = 0;
    tern_topic_info_t info;
    tern_err_t err = tern_store_topic_get(self, topic, &info);
    if (err) {
        return err == TERN_ENOTFOUND ? TERN_OK : err; //  no topic: as an empty one
    }
    uint8_t key[12];
    s_be32_put(key, info.id);
    s_be64_put(key + 4, 0);
    uint64_t d = 0;
    st_iter_t it;
    for (s_iter_open(&it, self->txn, self->store->dbi[S_LOG], key, 12);
         s_iter_in(&it, key, 4, 12) && s_be64_get((uint8_t *)it.k.mv_data + 4) <= upto;
         s_iter_next(&it)) {
        st_record_t rec;
        if ((err = st_record_parse(&it.v, true, &rec)) != TERN_OK) {
            atomic_fetch_add(&self->store->corrupt_records, 1);
            break;
        }
        if ((err = s_digest_record(self, &rec, dedup_since, &d))) {
            break;
        }
    }
    err = s_iter_close(&it, err);
    *digest = err ? 0 : d;
    return err;
}
