/*  tern_store.c - the broker's memory on LMDB: topics, log, dedup, groups,
    expiry, outbox.

    One LMDB environment per node with named databases (the layout, record
    format and durability trade-offs are in docs/storage.md). Only this file
    calls mdb_*. Writes go through tern_store_batch_t: operations are queued,
    then applied in one write transaction (group commit). Readers use short
    MDB_NOTLS read transactions, guarded by a process-wide rwlock so the single
    writer can grow the map (mdb_env_set_mapsize needs no live transaction).
*/
#include "tern_alloc.h"
#include "tern_store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "tern storage records are little-endian; port s_put*/s_get* first"
#endif

/*  Named databases. Keys marked BE are big-endian so LMDB's memcmp order is
    numeric order. */
enum {
    S_META,       //  name -> u64 (LE)
    S_TOPICS,     //  topic name -> s_topic_rec_t
    S_TOPIC_IDS,  //  topic id BE32 -> topic name
    S_LOG,        //  topic BE32 + seq BE64 -> record (MDB_APPEND for the newest topic)
    S_PRIO,       //  topic BE32 + priority u8 + seq BE64 -> empty
    S_MSGID,      //  msg_id BE64 -> msgid value (S_MSGID_SIZE), also history of removed ones
    S_DEDUP,      //  producer + NUL + producer_seq BE64 -> dedup value (S_DEDUP_SIZE)
    S_DEDUP_PROD, //  producer -> entry count (LE64), written once per commit
    S_EXPIRY,     //  expire_at_ns BE64 + topic BE32 + seq BE64 -> empty
    S_GROUPS,     //  topic BE32 + group name -> s_group_rec_t
    S_PENDING,    //  topic BE32 + group + NUL + seq BE64 -> entry
    S_DLQ,        //  topic BE32 + group + NUL + seq BE64 -> entry + reason
    S_OUTBOX,     //  position BE64 -> outbox entry (MDB_APPEND)
    S_PEERS,      //  peer name -> confirmed position (LE64)
    S_INBOUND,    //  origin name -> applied position (LE64)
    S_TRACE,      //  topic BE32 + seq BE64 + event stamp BE64 -> trace event
    S_TRACE_CONF, //  peer + NUL + confirmed BE64 -> recorded at_ns LE64 + previous LE64
    S_DBI_COUNT
};

static const char *s_dbi_names[S_DBI_COUNT] = {
    "meta",   "topics",  "topic_ids", "log",    "prio",  "msgid",   "dedup", "dedup_prod", "expiry",
    "groups", "pending", "dlq",       "outbox", "peers", "inbound", "trace", "trace_conf"};

#define S_META_OUTBOX_LAST "store.outbox_last"
#define S_META_TOPIC_NEXT  "store.topic_last_id"
#define S_META_FORMAT      "store.format"
#define S_META_TRACE_NEXT  "store.trace_next"

/*  msgid value (format 3): where the message is, when it was stored and its
    outbox position; kept after the message is removed for as long as its
    history (trace_retention_ms), so it also serves tern_store_trace_find and
    tern_store_trace_outbox. */
#define M_TOPIC      0  //  BE32 topic id
#define M_SEQ        4  //  BE64 seq
#define M_AT         12 //  LE64 commit time of the append (the STORED event's at_ns)
#define M_POSITION   20 //  LE64 outbox position (0: not local, never shipped)
#define M_FLAGS      28 //  u8 S_MSGID_* bits
#define S_MSGID_SIZE 29
//  the message left the log; the entry is history (its STORED event is written)
#define S_MSGID_REMOVED 1
#define S_MSGID_SWEPT   2 //  the message is still stored; its history was swept

/*  Log record layout (little-endian, version 1). The CRC32C covers every byte
    after the CRC field. Variable parts follow the fixed header in this order:
    producer, key, trace_id, origin, meta, payload. */
#define R_CRC          0  //  u32 CRC32C of bytes [4, size)
#define R_VERSION      4  //  u8 record format version
#define R_PRIORITY     5  //  u8 priority 0..9
#define R_RESERVED     6  //  u16 zero
#define R_TOPIC        8  //  u32 topic id
#define R_FIELDS       12 //  u32 TERN_F_* bits of the frame
#define R_MSG_ID       16 //  u64
#define R_SEQ          24 //  u64
#define R_PSEQ         32 //  u64 producer_seq
#define R_TS           40 //  u64 timestamp_ns
#define R_EXPIRE       48 //  u64 expire_at_ns
#define R_PRODUCER_LEN 56 //  u8
#define R_KEY_LEN      57 //  u8
#define R_TRACE_LEN    58 //  u8
#define R_ORIGIN_LEN   59 //  u8
#define R_META_COUNT   60 //  u32
#define R_META_SIZE    64 //  u32
#define R_PAYLOAD_SIZE 68 //  u32
#define R_HEADER       72 //  fixed header size
#define R_FORMAT       1  //  current record version

#define S_TOPIC_VERSION 1
#define S_GROUP_VERSION 1
#define S_ENTRY_SIZE    16 //  pending/dlq entry: u32 count, u8 prio, 3 pad, u64 due_ms
#define S_DEDUP_SIZE    32 //  u64 msg_id, u64 seq, u32 topic, u32 pad, u64 time_ns
#define S_OUTBOX_HDR                                                                               \
    40                               //  u8 kind, u8 group len, u16 pad, u32 topic, u64 seq, msg_id,
                                     //  u32 op, u32 pad, u64 at_ns; then the group name
#define S_RESERVE_MIN   (256u << 10) //  map reserve for non-append work when full
#define S_RESERVE_MAX   (64u << 20)
#define S_GROUP_KEY_MAX (4 + TERN_NAME_MAX)
#define S_ENTRY_KEY_MAX (4 + TERN_NAME_MAX + 1 + 8)

typedef struct {
    uint64_t version;    //  S_TOPIC_VERSION
    uint64_t id;         //  topic id
    uint64_t max_age_ms; //  retention by age, 0 = unlimited
    uint64_t max_msgs;   //  retention by count, 0 = unlimited
    uint64_t max_bytes;  //  retention by payload bytes, 0 = unlimited
    uint64_t first_seq;  //  first stored seq (last_seq + 1 when empty)
    uint64_t last_seq;   //  last assigned seq
    uint64_t msgs;       //  messages stored
    uint64_t bytes;      //  payload bytes stored
    uint64_t created_ns; //  creation time
} s_topic_rec_t;

typedef struct {
    uint64_t version;                          //  S_GROUP_VERSION
    uint64_t created_ns;                       //  creation time
    uint64_t lane_next[TERN_PRIORITY_MAX + 1]; //  next undelivered seq per lane
    uint64_t pending;                          //  pending entries
    uint64_t dead;                             //  DLQ entries
    uint64_t delivered;                        //  deliveries (redeliveries included)
    uint64_t redelivered;                      //  deliveries with a count above 1
    uint64_t acked;                            //  acks
    uint64_t nacked;                           //  nacks
} s_group_rec_t;

struct tern_store_t {
    MDB_env *env;                          //  the environment
    MDB_dbi dbi[S_DBI_COUNT];              //  named databases
    tern_store_config_t config;            //  copy of the config (dir points to dir below)
    char dir[PATH_MAX];                    //  data directory
    int lock_fd;                           //  TERN_STORE_LOCK_FILE, flock'd; -1 when not held
    pthread_rwlock_t lock;                 //  readers: shared; map resize: exclusive
    uint64_t page_size;                    //  OS page size
    uint64_t map_max;                      //  map ceiling, page-aligned
    uint64_t map_soft;                     //  appends stop here (map_max - reserve)
    uint64_t shrink_tried;                 //  map size at the last shrink attempt
    uint64_t outbox_last;                  //  writer: last outbox position
    uint64_t topic_next;                   //  writer: last topic id assigned
    uint64_t trace_stamp;                  //  writer: last trace event stamp (ns, unique)
    uint64_t trace_next;                   //  writer: msg_id where the next trace sweep starts
    uint8_t dedup_next[TERN_NAME_MAX + 2]; //  writer: where the next dedup sweep resumes
    size_t dedup_next_len;                 //  its length (0: from the first producer)
    _Atomic uint64_t map_size;             //  current map size
    _Atomic uint64_t commits;              //  stats
    _Atomic uint64_t map_grows;            //  stats
    _Atomic uint64_t full_errors;          //  stats
    _Atomic uint64_t corrupt_records;      //  stats
    _Atomic uint64_t expired;              //  stats
    _Atomic uint64_t retention_trimmed;    //  stats
    _Atomic uint64_t outbox_dropped;       //  stats
    _Atomic uint64_t dedup_entries;        //  stats
    _Atomic uint32_t topics;               //  stats
    _Atomic uint64_t superseded;           //  stats
};

/* ------------------------------------------------------------------------
    Small helpers
   ------------------------------------------------------------------------ */

static void s_be32_put(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void s_be64_put(uint8_t *p, uint64_t v) {
    s_be32_put(p, (uint32_t)(v >> 32));
    s_be32_put(p + 4, (uint32_t)v);
}

static uint32_t s_be32_get(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint64_t s_be64_get(const uint8_t *p) {
    return ((uint64_t)s_be32_get(p) << 32) | s_be32_get(p + 4);
}

static void s_le32_put(uint8_t *p, uint32_t v) {
    memcpy(p, &v, 4);
}

static void s_le64_put(uint8_t *p, uint64_t v) {
    memcpy(p, &v, 8);
}

static uint32_t s_le32_get(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t s_le64_get(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static uint64_t s_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static tern_err_t s_err(int rc) {
    switch (rc) {
        case MDB_SUCCESS:
            return TERN_OK;
        case MDB_NOTFOUND:
            return TERN_ENOTFOUND;
        case MDB_MAP_FULL:
            return TERN_EFULL;
        case MDB_CORRUPTED:
        case MDB_PAGE_NOTFOUND:
        case MDB_INVALID:
        case MDB_VERSION_MISMATCH:
            return TERN_ECORRUPT;
        case MDB_TXN_FULL:
            return TERN_ETOOBIG;
        case ENOMEM:
            return TERN_ENOMEM;
        default:
            return TERN_ESTORAGE;
    }
}

//  An LMDB "not found" on delete or get is an answer, not a failure.
static int s_del(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t key_len) {
    MDB_val k = {key_len, (void *)key};
    int rc = mdb_del(txn, dbi, &k, NULL);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

//  Puts with MDB_APPEND when KEY sorts after the last key of DBI (the common
//  case for ascending ids and the newest topic), else a normal put.
static int s_put_tail(MDB_txn *txn, MDB_dbi dbi, MDB_val *k, MDB_val *v, unsigned flags) {
    int rc = mdb_put(txn, dbi, k, v, flags | MDB_APPEND);
    return rc == MDB_KEYEXIST ? mdb_put(txn, dbi, k, v, flags) : rc;
}

static int s_put_u64(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t value) {
    uint8_t buf[8];
    s_le64_put(buf, value);
    MDB_val k = {strlen(name), (void *)name};
    MDB_val v = {8, buf};
    return mdb_put(txn, dbi, &k, &v, 0);
}

static int s_get_u64(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t *value) {
    MDB_val k = {strlen(name), (void *)name};
    MDB_val v;
    int rc = mdb_get(txn, dbi, &k, &v);
    if (rc == 0) {
        if (v.mv_size != 8) {
            return MDB_CORRUPTED;
        }
        *value = s_le64_get(v.mv_data);
    }
    return rc;
}

//  Builds topic BE32 + group name + NUL (+ seq BE64 if WITH_SEQ) into KEY.
static size_t s_entry_key(uint8_t *key, uint32_t topic_id, const char *group, size_t group_len,
                          uint64_t seq, bool with_seq) {
    s_be32_put(key, topic_id);
    memcpy(key + 4, group, group_len);
    key[4 + group_len] = 0;
    size_t len = 4 + group_len + 1;
    if (with_seq) {
        s_be64_put(key + len, seq);
        len += 8;
    }
    return len;
}

static size_t s_name_len(const char *name, size_t max) {
    return name ? strnlen(name, max + 1) : 0;
}

static void s_copy_name(char *dst, size_t cap, const char *src) {
    size_t len = src ? strnlen(src, cap - 1) : 0;
    if (len) {
        memcpy(dst, src, len);
    }
    dst[len] = 0;
}

/* ------------------------------------------------------------------------
    Log records
   ------------------------------------------------------------------------ */

typedef struct {
    const uint8_t *base;   //  the record
    size_t size;           //  its size
    uint32_t topic_id;     //  topic id
    uint8_t priority;      //  lane
    uint64_t msg_id;       //  snowflake
    uint64_t seq;          //  topic seq
    uint64_t expire_at_ns; //  0 = never
    uint64_t timestamp_ns; //  receive time
    uint32_t payload_size; //  payload bytes
} s_record_t;

//  Validates the header lengths of the record in V (and the CRC when
//  VERIFY), never reading outside V.
static tern_err_t s_record_parse(const MDB_val *v, bool verify, s_record_t *rec) {
    const uint8_t *p = v->mv_data;
    if (v->mv_size < R_HEADER || p[R_VERSION] != R_FORMAT) {
        return TERN_ECORRUPT;
    }
    uint64_t total = R_HEADER;
    total += p[R_PRODUCER_LEN];
    total += p[R_KEY_LEN];
    total += p[R_TRACE_LEN];
    total += p[R_ORIGIN_LEN];
    total += s_le32_get(p + R_META_SIZE);
    total += s_le32_get(p + R_PAYLOAD_SIZE);
    if (total != v->mv_size || p[R_PRODUCER_LEN] > TERN_NAME_MAX || p[R_KEY_LEN] > TERN_KEY_MAX ||
        p[R_TRACE_LEN] > TERN_TRACE_MAX || p[R_ORIGIN_LEN] > TERN_NAME_MAX ||
        p[R_PRIORITY] > TERN_PRIORITY_MAX) {
        return TERN_ECORRUPT;
    }
    if (verify && tern_crc32c(0, p + 4, v->mv_size - 4) != s_le32_get(p + R_CRC)) {
        return TERN_ECORRUPT;
    }
    rec->base = p;
    rec->size = v->mv_size;
    rec->topic_id = s_le32_get(p + R_TOPIC);
    rec->priority = p[R_PRIORITY];
    rec->msg_id = s_le64_get(p + R_MSG_ID);
    rec->seq = s_le64_get(p + R_SEQ);
    rec->expire_at_ns = s_le64_get(p + R_EXPIRE);
    rec->timestamp_ns = s_le64_get(p + R_TS);
    rec->payload_size = s_le32_get(p + R_PAYLOAD_SIZE);
    return TERN_OK;
}

//  Copies a length-prefixed string of the record into a NUL-terminated field.
static const uint8_t *s_record_str(const uint8_t *at, size_t len, char *dst) {
    memcpy(dst, at, len);
    dst[len] = 0;
    return at + len;
}

//  Fills OUT, a DELIVER-shaped frame, from a parsed record (everything but the
//  topic name); strings are copied, metadata and payload borrow the record.
static void s_record_frame(const s_record_t *rec, tern_frame_t *out) {
    const uint8_t *p = rec->base;
    memset(out, 0, sizeof *out);
    out->cmd = TERN_CMD_DELIVER;
    out->version = TERN_PROTO_VERSION;
    out->fields = s_le32_get(p + R_FIELDS);
    out->msg_id = rec->msg_id;
    out->seq = rec->seq;
    out->producer_seq = s_le64_get(p + R_PSEQ);
    out->timestamp_ns = rec->timestamp_ns;
    out->expire_at_ns = rec->expire_at_ns;
    out->priority = rec->priority;
    const uint8_t *at = p + R_HEADER;
    at = s_record_str(at, p[R_PRODUCER_LEN], out->producer);
    at = s_record_str(at, p[R_KEY_LEN], out->key);
    at = s_record_str(at, p[R_TRACE_LEN], out->trace_id);
    at = s_record_str(at, p[R_ORIGIN_LEN], out->origin);
    out->meta_count = s_le32_get(p + R_META_COUNT);
    out->meta_size = s_le32_get(p + R_META_SIZE);
    out->meta = out->meta_size ? at : NULL;
    at += out->meta_size;
    out->payload_size = rec->payload_size;
    out->payload = at;
}

/* ------------------------------------------------------------------------
    Batches
   ------------------------------------------------------------------------ */

typedef enum {
    OP_APPEND,
    OP_TOPIC_PUT,
    OP_TOPIC_DELETE,
    OP_GROUP_OPEN,
    OP_GROUP_DELETE,
    OP_DELIVER,
    OP_ACK,
    OP_NACK,
    OP_DEAD,
    OP_DLQ_REPLAY,
    OP_SWEEP,
    OP_SET_U64,
    OP_OUTBOX_CONFIRM,
    OP_INBOUND,
    OP_ACKSTATE,
    OP_TRACE,
    OP_ACKSTATE_APPLY,
    OP_GROUP_SEEK,
    OP_DLQ_PURGE
} s_op_kind_t;

typedef struct {
    s_op_kind_t kind;        //  what to do
    const tern_frame_t *msg; //  APPEND: borrowed until commit
    bool flag;               //  APPEND: local; TOPIC_DELETE: purge only; DLQ_REPLAY: seq a only
    tern_append_result_t *result;  //  APPEND: filled at commit
    char name[TERN_TOPIC_MAX + 1]; //  topic, group, peer, origin or meta name
    uint32_t topic_id;             //  group ops
    uint64_t a;                    //  seq, position, value, now_ns, limits...
    uint64_t b;                    //  due_ms, max_msgs, msg_id...
    uint64_t c;                    //  max_bytes
    uint32_t u32;                  //  delivery count, start mode, sweep max, op, topic put mode
    uint8_t priority;              //  DELIVER: lane
    char *reason;                  //  DEAD: reason, DELIVER: consumer (owned copy, or NULL)
    tern_err_t *err_out;           //  may be NULL
    uint32_t *id_out;              //  may be NULL
    uint64_t *count_out;           //  may be NULL
} s_op_t;

typedef struct {
    bool is_group;                   //  group record, else topic record
    uint8_t key[4 + TERN_TOPIC_MAX]; //  topic name, or topic BE32 + group name
    size_t key_len;                  //  its length
    bool exists;                     //  the record exists (after this txn's changes)
    bool dirty;                      //  must be written back (or deleted) at flush
    s_topic_rec_t topic;             //  topic record
    s_group_rec_t group;             //  group record
} s_cached_t;

//  A producer's dedup state, cached for one write transaction: its entry
//  count is read once and written back once per commit (with the count
//  bound applied then), not per message.
typedef struct {
    char name[TERN_NAME_MAX + 1]; //  the producer
    size_t len;                   //  its length
    uint32_t hash;                //  FNV-1a of the name
    uint64_t count;               //  its dedup entries, after this txn's changes
    bool dirty;                   //  write back (or delete, at 0) at flush
} s_prod_t;

struct tern_store_batch_t {
    tern_store_t *store;  //  our store
    s_op_t *ops;          //  queued operations
    size_t count;         //  how many
    size_t cap;           //  allocated
    bool has_appends;     //  any OP_APPEND queued
    s_cached_t **cache;   //  per-transaction record cache (pooled entries)
    size_t cache_count;   //  entries in use
    size_t cache_cap;     //  entries allocated
    s_prod_t *prods;      //  per-transaction dedup producer state
    size_t prod_count;    //  entries in use
    size_t prod_cap;      //  entries allocated
    uint32_t *prod_slots; //  open-addressing index into prods (index + 1; 0 = free)
    size_t slot_cap;      //  slots (a power of two, >= 2 x prod_cap)
};

typedef struct {
    tern_store_t *store;                   //  the store
    tern_store_batch_t *batch;             //  the batch (for its cache)
    MDB_txn *txn;                          //  the write transaction
    MDB_dbi *dbi;                          //  store->dbi
    uint64_t now_ns;                       //  commit time
    bool no_appends;                       //  retry without appends (storage full)
    size_t append_limit;                   //  appends this attempt may store (full: fewer)
    size_t appended;                       //  appends tried in this attempt
    uint64_t outbox_last;                  //  copies of the store's writer state
    uint64_t topic_next;                   //  ...
    uint64_t trace_next;                   //  ...
    int64_t d_topics;                      //  topic count delta
    int64_t d_dedup;                       //  dedup entry delta
    uint64_t expired;                      //  messages removed by TTL
    uint64_t trimmed;                      //  messages removed by retention
    uint64_t outbox_dropped;               //  unconfirmed outbox entries dropped
    uint64_t superseded;                   //  replication conflicts resolved by removal
    size_t last_hit;                       //  cache index of the last lookup
    size_t prod_hit;                       //  producer cache index of the last lookup
    uint8_t dedup_next[TERN_NAME_MAX + 2]; //  where the next dedup sweep resumes
    size_t dedup_next_len;                 //  its length
} s_txn_t;

static s_op_t *s_batch_push(tern_store_batch_t *self, s_op_kind_t kind) {
    if (self->count == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 64;
        s_op_t *ops = tern_realloc(self->ops, cap * sizeof *ops);
        self->ops = ops;
        self->cap = cap;
    }
    s_op_t *op = &self->ops[self->count++];
    op->kind = kind;
    op->msg = NULL;
    op->flag = false;
    op->result = NULL;
    op->name[0] = 0;
    op->topic_id = 0;
    op->a = op->b = op->c = 0;
    op->u32 = 0;
    op->priority = 0;
    op->reason = NULL;
    op->err_out = NULL;
    op->id_out = NULL;
    op->count_out = NULL;
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

static void s_batch_clear(tern_store_batch_t *self) {
    for (size_t i = 0; i < self->count; i++) {
        free(self->ops[i].reason);
    }
    self->count = 0;
    self->has_appends = false;
}

void tern_store_batch_destroy(tern_store_batch_t **self_p) {
    if (!self_p || !*self_p) {
        return;
    }
    tern_store_batch_t *self = *self_p;
    s_batch_clear(self);
    free(self->ops);
    for (size_t i = 0; i < self->cache_cap; i++) {
        free(self->cache[i]);
    }
    free(self->cache);
    free(self->prods);
    free(self->prod_slots);
    free(self);
    *self_p = NULL;
}

size_t tern_store_batch_size(tern_store_batch_t *self) {
    return self ? self->count : 0;
}

void tern_store_batch_append(tern_store_batch_t *self, const tern_frame_t *msg, bool local,
                             tern_append_result_t *result) {
    s_op_t *op = s_batch_push(self, OP_APPEND);
    op->msg = msg;
    op->flag = local;
    op->result = result;
    self->has_appends = true;
}

void tern_store_batch_topic_put(tern_store_batch_t *self, const char *name, uint64_t max_age_ms,
                                uint64_t max_msgs, uint64_t max_bytes, tern_err_t *result_err,
                                uint32_t *id_out) {
    s_op_t *op = s_batch_push(self, OP_TOPIC_PUT);
    op->flag = s_name_len(name, TERN_TOPIC_MAX) > TERN_TOPIC_MAX;
    s_copy_name(op->name, sizeof op->name, name);
    op->a = max_age_ms;
    op->b = max_msgs;
    op->c = max_bytes;
    op->err_out = result_err;
    op->id_out = id_out;
}

//  Topic put modes (op->u32 of OP_TOPIC_PUT).
enum { S_PUT_ANY = 0, S_PUT_CREATE = 1, S_PUT_EDIT = 2 };

void tern_store_batch_topic_create(tern_store_batch_t *self, const char *name, uint64_t max_age_ms,
                                   uint64_t max_msgs, uint64_t max_bytes, tern_err_t *result_err,
                                   uint32_t *id_out) {
    tern_store_batch_topic_put(self, name, max_age_ms, max_msgs, max_bytes, result_err, id_out);
    self->ops[self->count - 1].u32 = S_PUT_CREATE;
}

void tern_store_batch_topic_edit(tern_store_batch_t *self, const char *name, uint64_t max_age_ms,
                                 uint64_t max_msgs, uint64_t max_bytes, tern_err_t *result_err) {
    tern_store_batch_topic_put(self, name, max_age_ms, max_msgs, max_bytes, result_err, NULL);
    self->ops[self->count - 1].u32 = S_PUT_EDIT;
}

void tern_store_batch_topic_delete(tern_store_batch_t *self, const char *name, bool purge_only,
                                   tern_err_t *result_err, uint64_t *removed) {
    s_op_t *op = s_batch_push(self, OP_TOPIC_DELETE);
    s_copy_name(op->name, sizeof op->name, name);
    op->flag = purge_only;
    op->err_out = result_err;
    op->count_out = removed;
}

static s_op_t *s_group_op(tern_store_batch_t *self, s_op_kind_t kind, uint32_t topic_id,
                          const char *group, uint64_t seq) {
    s_op_t *op = s_batch_push(self, kind);
    op->topic_id = topic_id;
    s_copy_name(op->name, TERN_NAME_MAX + 1, group);
    op->a = seq;
    return op;
}

void tern_store_batch_group_open(tern_store_batch_t *self, uint32_t topic_id, const char *name,
                                 tern_start_t start, uint64_t start_value, tern_err_t *result_err) {
    s_op_t *op = s_group_op(self, OP_GROUP_OPEN, topic_id, name, start_value);
    op->u32 = (uint32_t)start;
    op->err_out = result_err;
}

void tern_store_batch_group_delete(tern_store_batch_t *self, uint32_t topic_id, const char *name,
                                   tern_err_t *result_err) {
    s_op_t *op = s_group_op(self, OP_GROUP_DELETE, topic_id, name, 0);
    op->err_out = result_err;
}

void tern_store_batch_deliver(tern_store_batch_t *self, uint32_t topic_id, const char *group,
                              uint64_t seq, uint8_t priority, uint32_t delivery_count,
                              uint64_t due_ms) {
    s_op_t *op = s_group_op(self, OP_DELIVER, topic_id, group, seq);
    op->priority = priority;
    op->u32 = delivery_count;
    op->b = due_ms;
}

void tern_store_batch_ack(tern_store_batch_t *self, uint32_t topic_id, const char *group,
                          uint64_t seq) {
    s_group_op(self, OP_ACK, topic_id, group, seq);
}

void tern_store_batch_nack(tern_store_batch_t *self, uint32_t topic_id, const char *group,
                           uint64_t seq, uint64_t due_ms) {
    s_op_t *op = s_group_op(self, OP_NACK, topic_id, group, seq);
    op->b = due_ms;
}

void tern_store_batch_dead(tern_store_batch_t *self, uint32_t topic_id, const char *group,
                           uint64_t seq, uint32_t delivery_count, const char *reason) {
    s_op_t *op = s_group_op(self, OP_DEAD, topic_id, group, seq);
    op->u32 = delivery_count;
    if (reason && *reason) {
        op->reason = tern_strndup(reason, TERN_REASON_MAX);
    }
}

void tern_store_batch_ackstate_apply(tern_store_batch_t *self, const char *group, uint64_t msg_id,
                                     uint32_t op, const char *reason) {
    s_op_t *o = s_group_op(self, OP_ACKSTATE_APPLY, 0, group, 0);
    o->b = msg_id;
    o->u32 = op;
    if (reason && *reason) {
        o->reason = tern_strndup(reason, TERN_REASON_MAX);
    }
}

void tern_store_batch_dlq_replay(tern_store_batch_t *self, uint32_t topic_id, const char *group,
                                 uint64_t due_ms, uint64_t *moved) {
    s_op_t *op = s_group_op(self, OP_DLQ_REPLAY, topic_id, group, 0);
    op->b = due_ms;
    op->count_out = moved;
}

void tern_store_batch_dlq_requeue(tern_store_batch_t *self, uint32_t topic_id, const char *group,
                                  uint64_t seq, uint64_t due_ms, tern_err_t *result_err) {
    s_op_t *op = s_group_op(self, OP_DLQ_REPLAY, topic_id, group, seq);
    op->flag = true;
    op->b = due_ms;
    op->err_out = result_err;
}

void tern_store_batch_dlq_purge(tern_store_batch_t *self, uint32_t topic_id, const char *group,
                                tern_err_t *result_err, uint64_t *removed) {
    s_op_t *op = s_group_op(self, OP_DLQ_PURGE, topic_id, group, 0);
    op->err_out = result_err;
    op->count_out = removed;
}

void tern_store_batch_group_seek(tern_store_batch_t *self, uint32_t topic_id, const char *name,
                                 tern_start_t start, uint64_t start_value, tern_err_t *result_err) {
    s_op_t *op = s_group_op(self, OP_GROUP_SEEK, topic_id, name, start_value);
    op->u32 = (uint32_t)start;
    op->err_out = result_err;
}

void tern_store_batch_sweep(tern_store_batch_t *self, uint64_t now_ns, uint32_t max,
                            uint64_t *removed) {
    s_op_t *op = s_batch_push(self, OP_SWEEP);
    op->a = now_ns;
    op->u32 = max;
    op->count_out = removed;
}

void tern_store_batch_set_u64(tern_store_batch_t *self, const char *name, uint64_t value) {
    s_op_t *op = s_batch_push(self, OP_SET_U64);
    s_copy_name(op->name, sizeof op->name, name);
    op->a = value;
}

void tern_store_batch_outbox_confirm(tern_store_batch_t *self, const char *peer,
                                     uint64_t position) {
    s_op_t *op = s_batch_push(self, OP_OUTBOX_CONFIRM);
    s_copy_name(op->name, TERN_NAME_MAX + 1, peer);
    op->a = position;
}

void tern_store_batch_inbound(tern_store_batch_t *self, const char *origin, uint64_t position) {
    s_op_t *op = s_batch_push(self, OP_INBOUND);
    s_copy_name(op->name, TERN_NAME_MAX + 1, origin);
    op->a = position;
}

void tern_store_batch_ackstate(tern_store_batch_t *self, uint32_t topic_id, const char *group,
                               uint64_t seq, uint64_t msg_id, uint32_t op_code) {
    s_op_t *op = s_group_op(self, OP_ACKSTATE, topic_id, group, seq);
    op->b = msg_id;
    op->u32 = op_code;
}

/* ------------------------------------------------------------------------
    The per-transaction record cache: topic and group records touched by a
    batch are read once and written back once at the end of the transaction,
    so 4096 appends to one topic rewrite its record once.
   ------------------------------------------------------------------------ */

static s_cached_t *s_cache_lookup(s_txn_t *ctx, bool is_group, const uint8_t *key, size_t key_len) {
    tern_store_batch_t *b = ctx->batch;
    if (ctx->last_hit < b->cache_count) {
        s_cached_t *c = b->cache[ctx->last_hit];
        if (c->is_group == is_group && c->key_len == key_len && !memcmp(c->key, key, key_len)) {
            return c;
        }
    }
    for (size_t i = b->cache_count; i-- > 0;) {
        s_cached_t *c = b->cache[i];
        if (c->is_group == is_group && c->key_len == key_len && !memcmp(c->key, key, key_len)) {
            ctx->last_hit = i;
            return c;
        }
    }
    return NULL;
}

static s_cached_t *s_cache_add(s_txn_t *ctx, bool is_group, const uint8_t *key, size_t key_len) {
    tern_store_batch_t *b = ctx->batch;
    if (b->cache_count == b->cache_cap) {
        size_t cap = b->cache_cap ? b->cache_cap * 2 : 16;
        s_cached_t **cache = tern_realloc(b->cache, cap * sizeof *cache);
        for (size_t i = b->cache_cap; i < cap; i++) {
            cache[i] = tern_alloc_raw(sizeof(s_cached_t));
        }
        b->cache = cache;
        b->cache_cap = cap;
    }
    ctx->last_hit = b->cache_count;
    s_cached_t *c = b->cache[b->cache_count++];
    c->is_group = is_group;
    memcpy(c->key, key, key_len);
    c->key_len = key_len;
    c->exists = false;
    c->dirty = false;
    return c;
}

//  Finds topic NAME (LEN bytes); creates it when CREATE and absent (setting
//  *ERR to TERN_ELIMIT when max_topics is reached). *OUT is the cache entry
//  (exists false when absent). Returns an LMDB error code.
static int s_topic_find(s_txn_t *ctx, const char *name, size_t len, bool create, s_cached_t **out,
                        tern_err_t *err) {
    *err = TERN_OK;
    s_cached_t *c = s_cache_lookup(ctx, false, (const uint8_t *)name, len);
    if (!c) {
        c = s_cache_add(ctx, false, (const uint8_t *)name, len);
        MDB_val k = {len, (void *)name}, v;
        int rc = mdb_get(ctx->txn, ctx->dbi[S_TOPICS], &k, &v);
        if (rc == 0) {
            if (v.mv_size != sizeof(s_topic_rec_t)) {
                ctx->batch->cache_count--;
                return MDB_CORRUPTED;
            }
            memcpy(&c->topic, v.mv_data, sizeof c->topic);
            c->exists = true;
        } else if (rc != MDB_NOTFOUND) {
            ctx->batch->cache_count--;
            return rc;
        }
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
        int rc = mdb_put(ctx->txn, ctx->dbi[S_TOPIC_IDS], &k, &v, 0);
        if (rc) {
            return rc;
        }
    }
    *out = c;
    return 0;
}

static int s_topic_by_id(s_txn_t *ctx, uint32_t topic_id, s_cached_t **out) {
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
    s_cached_t *c;
    rc = s_topic_find(ctx, name, len, false, &c, &err);
    if (rc == 0 && c->exists && c->topic.id == topic_id) {
        *out = c;
    }
    return rc;
}

static int s_group_find(s_txn_t *ctx, uint32_t topic_id, const char *name, s_cached_t **out) {
    uint8_t key[S_GROUP_KEY_MAX];
    size_t name_len = strlen(name);
    s_be32_put(key, topic_id);
    memcpy(key + 4, name, name_len);
    size_t key_len = 4 + name_len;
    s_cached_t *c = s_cache_lookup(ctx, true, key, key_len);
    if (!c) {
        c = s_cache_add(ctx, true, key, key_len);
        MDB_val k = {key_len, key}, v;
        int rc = mdb_get(ctx->txn, ctx->dbi[S_GROUPS], &k, &v);
        if (rc == 0) {
            if (v.mv_size != sizeof(s_group_rec_t)) {
                ctx->batch->cache_count--;
                return MDB_CORRUPTED;
            }
            memcpy(&c->group, v.mv_data, sizeof c->group);
            c->exists = true;
        } else if (rc != MDB_NOTFOUND) {
            ctx->batch->cache_count--;
            return rc;
        }
    }
    *out = c;
    return 0;
}

static int s_cache_flush(s_txn_t *ctx) {
    tern_store_batch_t *b = ctx->batch;
    for (size_t i = 0; i < b->cache_count; i++) {
        s_cached_t *c = b->cache[i];
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

/* ------------------------------------------------------------------------
    The per-transaction producer cache (dedup counts), same idea as the
    record cache above; hashed, since one batch may carry thousands of
    producers.
   ------------------------------------------------------------------------ */

static uint32_t s_fnv1a(const char *name, size_t len) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ (uint8_t)name[i]) * 16777619u;
    }
    return h;
}

static void s_prod_reset(tern_store_batch_t *b) {
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
static int s_prod_find(s_txn_t *ctx, const char *name, size_t len, s_prod_t **out) {
    tern_store_batch_t *b = ctx->batch;
    if (ctx->prod_hit < b->prod_count) {
        s_prod_t *p = &b->prods[ctx->prod_hit];
        if (p->len == len && !memcmp(p->name, name, len)) {
            *out = p;
            return 0;
        }
    }
    uint32_t hash = s_fnv1a(name, len);
    if (b->slot_cap) {
        size_t mask = b->slot_cap - 1;
        for (size_t i = hash & mask; b->prod_slots[i]; i = (i + 1) & mask) {
            s_prod_t *p = &b->prods[b->prod_slots[i] - 1];
            if (p->hash == hash && p->len == len && !memcmp(p->name, name, len)) {
                ctx->prod_hit = b->prod_slots[i] - 1;
                *out = p;
                return 0;
            }
        }
    }
    if (b->prod_count == b->prod_cap) {
        size_t cap = b->prod_cap ? b->prod_cap * 2 : 16;
        s_prod_t *prods = tern_realloc(b->prods, cap * sizeof *prods);
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
    s_prod_t *p = &b->prods[b->prod_count];
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
static int s_dedup_evict(s_txn_t *ctx, s_prod_t *p, uint64_t max) {
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
static int s_prod_flush(s_txn_t *ctx) {
    tern_store_batch_t *b = ctx->batch;
    uint64_t max = ctx->store->config.dedup_max;
    for (size_t i = 0; i < b->prod_count; i++) {
        s_prod_t *p = &b->prods[i];
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

/* ------------------------------------------------------------------------
    Messages
   ------------------------------------------------------------------------ */

//  The first stored seq of TOPIC_ID that is >= FROM, or LAST + 1 if none;
//  RECORD (if not NULL) gets its record (valid until the next write).
static int s_first_seq(s_txn_t *ctx, uint32_t topic_id, uint64_t from, uint64_t last,
                       uint64_t *first, MDB_val *record) {
    MDB_cursor *cur;
    int rc = mdb_cursor_open(ctx->txn, ctx->dbi[S_LOG], &cur);
    if (rc) {
        return rc;
    }
    uint8_t key[12];
    s_be32_put(key, topic_id);
    s_be64_put(key + 4, from);
    MDB_val k = {12, key}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    *first = last + 1;
    if (rc == 0 && k.mv_size == 12 && s_be32_get(k.mv_data) == topic_id) {
        *first = s_be64_get((uint8_t *)k.mv_data + 4);
        if (record) {
            *record = v;
        }
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int s_del_prefix(s_txn_t *ctx, MDB_dbi dbi, const uint8_t *prefix, size_t plen,
                        uint64_t *count);
static int s_trace_put_at(s_txn_t *ctx, uint32_t topic_id, uint64_t seq, uint64_t stamp,
                          uint64_t at_ns, uint8_t type, const char *group, size_t glen,
                          uint32_t count, const char *detail, size_t dlen, uint64_t msg_id,
                          uint64_t expire_at_ns);

//  The trace id and origin of a parsed record (borrowed, not terminated).
static void s_record_trace(const s_record_t *rec, const char **trace_id, size_t *trlen,
                           const char **origin, size_t *olen) {
    const uint8_t *p = rec->base;
    const uint8_t *at = p + R_HEADER + p[R_PRODUCER_LEN] + p[R_KEY_LEN];
    *trace_id = (const char *)at;
    *trlen = p[R_TRACE_LEN];
    *origin = (const char *)at + p[R_TRACE_LEN];
    *olen = p[R_ORIGIN_LEN];
}

//  The msgid entry of REC (stored at TOPIC_ID, SEQ), which is leaving the log:
//  deleted when no history is kept (trace off, or already swept), else kept
//  as history with the STORED event written now (stamp 0: first among the
//  message's events), with the at_ns a scan reported while it was stored.
//  History already past retention that the sweep did not reach yet goes now.
static int s_msgid_release(s_txn_t *ctx, const s_record_t *rec, uint32_t topic_id, uint64_t seq) {
    //  Copied first: the record may sit on a dirty page that writes below
    //  could spill.
    char trace_id[TERN_TRACE_MAX], origin[TERN_NAME_MAX];
    const char *tp, *op;
    size_t trlen, olen;
    s_record_trace(rec, &tp, &trlen, &op, &olen);
    memcpy(trace_id, tp, trlen);
    memcpy(origin, op, olen);
    uint64_t msg_id = rec->msg_id, expire_at_ns = rec->expire_at_ns;
    uint8_t key[8];
    s_be64_put(key, msg_id);
    MDB_val k = {8, key}, v;
    int rc = mdb_get(ctx->txn, ctx->dbi[S_MSGID], &k, &v);
    if (rc) {
        return rc == MDB_NOTFOUND ? 0 : rc;
    }
    const uint8_t *cur = v.mv_data;
    if (v.mv_size != S_MSGID_SIZE || s_be32_get(cur + M_TOPIC) != topic_id ||
        s_be64_get(cur + M_SEQ) != seq || (cur[M_FLAGS] & S_MSGID_REMOVED)) {
        return 0; //  not this message's entry (or damaged): leave it
    }
    uint8_t val[S_MSGID_SIZE];
    memcpy(val, cur, S_MSGID_SIZE);
    uint64_t retention_ns = ctx->store->config.trace_retention_ms * 1000000ull;
    uint64_t at = s_le64_get(val + M_AT);
    if (!retention_ns || (val[M_FLAGS] & S_MSGID_SWEPT)) {
        return s_del(ctx->txn, ctx->dbi[S_MSGID], key, 8);
    }
    uint64_t cutoff = ctx->now_ns > retention_ns ? ctx->now_ns - retention_ns : 0;
    if (at < cutoff) {
        if ((rc = s_del_prefix(ctx, ctx->dbi[S_TRACE], val, 12, NULL))) {
            return rc;
        }
        return s_del(ctx->txn, ctx->dbi[S_MSGID], key, 8);
    }
    val[M_FLAGS] |= S_MSGID_REMOVED;
    v = (MDB_val){S_MSGID_SIZE, val};
    if ((rc = mdb_put(ctx->txn, ctx->dbi[S_MSGID], &k, &v, 0))) {
        return rc;
    }
    return s_trace_put_at(ctx, topic_id, seq, 0, at, TERN_TRACE_STORED, origin, olen, 0, trace_id,
                          trlen, msg_id, expire_at_ns);
}

//  Removes message SEQ of topic T with its index entries. *GONE tells whether
//  it was there.
static int s_msg_remove(s_txn_t *ctx, s_cached_t *t, uint64_t seq, bool *gone) {
    uint32_t topic_id = (uint32_t)t->topic.id;
    uint8_t tkey[12];
    s_be32_put(tkey, topic_id);
    s_be64_put(tkey + 4, seq);
    MDB_val k = {12, tkey}, v;
    *gone = false;
    int rc = mdb_get(ctx->txn, ctx->dbi[S_LOG], &k, &v);
    if (rc == MDB_NOTFOUND) {
        return 0;
    }
    if (rc) {
        return rc;
    }
    s_record_t rec;
    //  A damaged record is still removed; its secondary entries are then
    //  unknown and left (the msgid/prio lookups find nothing to read).
    if (s_record_parse(&v, false, &rec) == TERN_OK) {
        uint8_t key[20];
        if (rec.msg_id && (rc = s_msgid_release(ctx, &rec, topic_id, seq))) {
            return rc;
        }
        s_be32_put(key, topic_id);
        key[4] = rec.priority;
        s_be64_put(key + 5, seq);
        if ((rc = s_del(ctx->txn, ctx->dbi[S_PRIO], key, 13))) {
            return rc;
        }
        if (rec.expire_at_ns) {
            s_be64_put(key, rec.expire_at_ns);
            s_be32_put(key + 8, topic_id);
            s_be64_put(key + 12, seq);
            if ((rc = s_del(ctx->txn, ctx->dbi[S_EXPIRY], key, 20))) {
                return rc;
            }
        }
        t->topic.bytes -= rec.payload_size <= t->topic.bytes ? rec.payload_size : t->topic.bytes;
    }
    if ((rc = s_del(ctx->txn, ctx->dbi[S_LOG], tkey, 12))) {
        return rc;
    }
    *gone = true;
    if (t->topic.msgs) {
        t->topic.msgs--;
    }
    if (t->topic.msgs == 0) {
        t->topic.bytes = 0;
    }
    if (seq == t->topic.first_seq) {
        rc = s_first_seq(ctx, topic_id, seq + 1, t->topic.last_seq, &t->topic.first_seq, NULL);
    }
    t->dirty = true;
    return rc;
}

static int s_remove_first(s_txn_t *ctx, s_cached_t *t, bool *gone) {
    uint64_t first;
    int rc = s_first_seq(ctx, (uint32_t)t->topic.id, t->topic.first_seq, t->topic.last_seq, &first,
                         NULL);
    if (rc) {
        return rc;
    }
    *gone = false;
    if (first > t->topic.last_seq) {
        t->topic.first_seq = first;
        t->topic.msgs = 0;
        t->topic.bytes = 0;
        t->dirty = true;
        return 0;
    }
    t->topic.first_seq = first;
    return s_msg_remove(ctx, t, first, gone);
}

static int s_outbox_add(s_txn_t *ctx, bool ackstate, uint32_t topic_id, uint64_t seq,
                        uint64_t msg_id, const char *group, uint32_t op) {
    uint8_t key[8];
    uint8_t val[S_OUTBOX_HDR + TERN_NAME_MAX];
    size_t glen = s_name_len(group, TERN_NAME_MAX);
    memset(val, 0, S_OUTBOX_HDR);
    val[0] = ackstate ? 1 : 0;
    val[1] = (uint8_t)glen;
    s_le32_put(val + 4, topic_id);
    s_le64_put(val + 8, seq);
    s_le64_put(val + 16, msg_id);
    s_le32_put(val + 24, op);
    s_le64_put(val + 32, ctx->now_ns);
    if (glen) {
        memcpy(val + S_OUTBOX_HDR, group, glen);
    }
    s_be64_put(key, ++ctx->outbox_last);
    MDB_val k = {8, key}, v = {S_OUTBOX_HDR + glen, val};
    return mdb_put(ctx->txn, ctx->dbi[S_OUTBOX], &k, &v, MDB_APPEND);
}

//  Dedup: (producer, producer_seq) -> original. Sets *DUP and fills RES when
//  the pair is known within the window; otherwise records it: one put, plus
//  the producer's count in the transaction's cache (written, and the count
//  bound applied, once per commit by s_prod_flush).
static int s_dedup(s_txn_t *ctx, const tern_frame_t *msg, size_t plen, uint32_t topic_id,
                   uint64_t seq, tern_append_result_t *res, bool *dup) {
    uint8_t key[TERN_NAME_MAX + 1 + 8];
    memcpy(key, msg->producer, plen);
    key[plen] = 0;
    s_be64_put(key + plen + 1, msg->producer_seq);
    size_t klen = plen + 9;
    uint8_t val[S_DEDUP_SIZE];
    memset(val, 0, sizeof val);
    s_le64_put(val, msg->msg_id);
    s_le64_put(val + 8, seq);
    s_le32_put(val + 16, topic_id);
    s_le64_put(val + 24, ctx->now_ns);
    MDB_val k = {klen, key}, v = {S_DEDUP_SIZE, val};
    *dup = false;
    int rc = mdb_put(ctx->txn, ctx->dbi[S_DEDUP], &k, &v, MDB_NOOVERWRITE);
    if (rc == MDB_KEYEXIST) {
        uint64_t window_ns = ctx->store->config.dedup_window_ms * 1000000ull;
        if (v.mv_size == S_DEDUP_SIZE) {
            const uint8_t *old = v.mv_data;
            uint64_t at = s_le64_get(old + 24);
            if (ctx->now_ns < at || ctx->now_ns - at < window_ns) {
                *dup = true;
                res->duplicate = true;
                res->msg_id = s_le64_get(old);
                res->seq = s_le64_get(old + 8);
                res->topic_id = s_le32_get(old + 16);
                return 0;
            }
        }
        //  Expired (or damaged) but not yet swept: replace it; still counted.
        v = (MDB_val){S_DEDUP_SIZE, val};
        return mdb_put(ctx->txn, ctx->dbi[S_DEDUP], &k, &v, 0);
    }
    if (rc) {
        return rc;
    }
    ctx->d_dedup++;
    s_prod_t *p;
    if ((rc = s_prod_find(ctx, msg->producer, plen, &p))) {
        return rc;
    }
    p->count++;
    p->dirty = true;
    return 0;
}

static int s_trace_put(s_txn_t *ctx, uint32_t topic_id, uint64_t seq, uint8_t type,
                       const char *group, uint32_t count, const char *detail, uint64_t msg_id,
                       uint64_t expire_at_ns);

//  Replication conflict: (producer, producer_seq) of MSG is stored as OLD
//  (another, higher msg_id). Removes OLD from the log and points the dedup
//  entry (its time kept) at MSG, which the caller stores at (TOPIC_ID, SEQ).
static int s_supersede(s_txn_t *ctx, const tern_frame_t *msg, size_t plen,
                       const tern_append_result_t *old, uint32_t topic_id, uint64_t seq) {
    s_cached_t *ot = NULL;
    int rc = s_topic_by_id(ctx, old->topic_id, &ot);
    if (rc) {
        return rc;
    }
    if (ot) {
        bool gone = false;
        if ((rc = s_msg_remove(ctx, ot, old->seq, &gone))) {
            return rc;
        }
    }
    uint8_t key[TERN_NAME_MAX + 1 + 8];
    memcpy(key, msg->producer, plen);
    key[plen] = 0;
    s_be64_put(key + plen + 1, msg->producer_seq);
    MDB_val k = {plen + 9, key}, v;
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

static int s_op_append(s_txn_t *ctx, s_op_t *op) {
    const tern_frame_t *msg = op->msg;
    tern_append_result_t dummy;
    tern_append_result_t *res = op->result ? op->result : &dummy;
    memset(res, 0, sizeof *res);
    if (ctx->no_appends || ctx->appended >= ctx->append_limit) {
        res->err = TERN_EFULL;
        return 0;
    }
    ctx->appended++;
    size_t tlen = s_name_len(msg->topic, TERN_TOPIC_MAX);
    size_t plen = s_name_len(msg->producer, TERN_NAME_MAX);
    size_t klen = s_name_len(msg->key, TERN_KEY_MAX);
    size_t trlen = s_name_len(msg->trace_id, TERN_TRACE_MAX);
    size_t olen = s_name_len(msg->origin, TERN_NAME_MAX);
    if (tlen == 0 || tlen > TERN_TOPIC_MAX) {
        res->err = TERN_ETOPIC;
        return 0;
    }
    if (plen > TERN_NAME_MAX || klen > TERN_KEY_MAX || trlen > TERN_TRACE_MAX ||
        olen > TERN_NAME_MAX || msg->meta_size > UINT32_MAX / 4 ||
        msg->payload_size > UINT32_MAX / 4) {
        res->err = TERN_ETOOBIG;
        return 0;
    }
    if (msg->priority > TERN_PRIORITY_MAX) {
        res->err = TERN_ERANGE;
        return 0;
    }
    if ((msg->payload_size && !msg->payload) || (msg->meta_size && !msg->meta)) {
        res->err = TERN_EINVAL;
        return 0;
    }
    s_cached_t *t;
    tern_err_t err;
    int rc = s_topic_find(ctx, msg->topic, tlen, true, &t, &err);
    if (rc) {
        return rc;
    }
    if (err) {
        res->err = err;
        return 0;
    }
    uint32_t topic_id = (uint32_t)t->topic.id;
    uint64_t seq = t->topic.last_seq + 1;
    res->topic_id = topic_id;

    //  Replicated and retried records are idempotent by msg_id. The entry
    //  also carries what the history needs (stored time, outbox position).
    bool shipped = op->flag && ctx->store->config.outbox;
    uint8_t idkey[8], idval[S_MSGID_SIZE], oldval[S_MSGID_SIZE];
    bool replaced = false; //  the msg_id's entry was history of a removed message
    if (msg->msg_id) {
        s_be64_put(idkey, msg->msg_id);
        s_be32_put(idval + M_TOPIC, topic_id);
        s_be64_put(idval + M_SEQ, seq);
        s_le64_put(idval + M_AT, ctx->now_ns);
        s_le64_put(idval + M_POSITION, shipped ? ctx->outbox_last + 1 : 0);
        idval[M_FLAGS] = 0;
        MDB_val k = {8, idkey}, v = {S_MSGID_SIZE, idval};
        rc = mdb_put(ctx->txn, ctx->dbi[S_MSGID], &k, &v, MDB_APPEND);
        if (rc == MDB_KEYEXIST) {
            //  Not above the last id: the checked put tells a replay apart.
            v = (MDB_val){S_MSGID_SIZE, idval};
            rc = mdb_put(ctx->txn, ctx->dbi[S_MSGID], &k, &v, MDB_NOOVERWRITE);
            if (rc == MDB_KEYEXIST && v.mv_size == S_MSGID_SIZE &&
                (((uint8_t *)v.mv_data)[M_FLAGS] & S_MSGID_REMOVED)) {
                //  Its message was removed here (only its history is left):
                //  stored again, as when the entry went with the message.
                memcpy(oldval, v.mv_data, S_MSGID_SIZE);
                replaced = true;
                v = (MDB_val){S_MSGID_SIZE, idval};
                rc = mdb_put(ctx->txn, ctx->dbi[S_MSGID], &k, &v, 0);
            }
            if (rc == 0 && msg->msg_id < ctx->trace_next) {
                ctx->trace_next = msg->msg_id; //  the trace sweep must come back for it
            }
        }
        if (rc == MDB_KEYEXIST) {
            res->duplicate = true;
            res->msg_id = msg->msg_id;
            if (v.mv_size == S_MSGID_SIZE) {
                res->topic_id = s_be32_get((uint8_t *)v.mv_data + M_TOPIC);
                res->seq = s_be64_get((uint8_t *)v.mv_data + M_SEQ);
            }
            return 0;
        }
        if (rc) {
            return rc;
        }
    }
    if (plen) {
        bool dup;
        if ((rc = s_dedup(ctx, msg, plen, topic_id, seq, res, &dup))) {
            return rc;
        }
        if (dup && !op->flag && msg->msg_id && res->msg_id > msg->msg_id) {
            //  A replication conflict the incoming record wins (lowest msg_id).
            if ((rc = s_supersede(ctx, msg, plen, res, topic_id, seq))) {
                return rc;
            }
            memset(res, 0, sizeof *res);
            res->topic_id = topic_id;
            dup = false;
        }
        if (dup) {
            if (replaced) {
                MDB_val k = {8, idkey}, v = {S_MSGID_SIZE, oldval};
                return mdb_put(ctx->txn, ctx->dbi[S_MSGID], &k, &v, 0);
            }
            return msg->msg_id ? s_del(ctx->txn, ctx->dbi[S_MSGID], idkey, 8) : 0;
        }
    }
    if (replaced && (rc = s_del_prefix(ctx, ctx->dbi[S_TRACE], oldval, 12, NULL))) {
        return rc; //  the replaced history can no longer be found or swept
    }

    //  The record: one reserved value, header + strings + meta + payload.
    size_t size = R_HEADER + plen + klen + trlen + olen + msg->meta_size + msg->payload_size;
    uint8_t key[20];
    s_be32_put(key, topic_id);
    s_be64_put(key + 4, seq);
    MDB_val k = {12, key}, v = {size, NULL};
    if ((rc = s_put_tail(ctx->txn, ctx->dbi[S_LOG], &k, &v, MDB_RESERVE))) {
        return rc;
    }
    uint8_t *p = v.mv_data;
    p[R_VERSION] = R_FORMAT;
    p[R_PRIORITY] = msg->priority;
    p[R_RESERVED] = p[R_RESERVED + 1] = 0;
    s_le32_put(p + R_TOPIC, topic_id);
    s_le32_put(p + R_FIELDS, msg->fields);
    s_le64_put(p + R_MSG_ID, msg->msg_id);
    s_le64_put(p + R_SEQ, seq);
    s_le64_put(p + R_PSEQ, msg->producer_seq);
    s_le64_put(p + R_TS, msg->timestamp_ns);
    s_le64_put(p + R_EXPIRE, msg->expire_at_ns);
    p[R_PRODUCER_LEN] = (uint8_t)plen;
    p[R_KEY_LEN] = (uint8_t)klen;
    p[R_TRACE_LEN] = (uint8_t)trlen;
    p[R_ORIGIN_LEN] = (uint8_t)olen;
    s_le32_put(p + R_META_COUNT, msg->meta_count);
    s_le32_put(p + R_META_SIZE, (uint32_t)msg->meta_size);
    s_le32_put(p + R_PAYLOAD_SIZE, (uint32_t)msg->payload_size);
    uint8_t *at = p + R_HEADER;
    memcpy(at, msg->producer, plen);
    at += plen;
    memcpy(at, msg->key, klen);
    at += klen;
    memcpy(at, msg->trace_id, trlen);
    at += trlen;
    memcpy(at, msg->origin, olen);
    at += olen;
    if (msg->meta_size) {
        memcpy(at, msg->meta, msg->meta_size);
        at += msg->meta_size;
    }
    if (msg->payload_size) {
        memcpy(at, msg->payload, msg->payload_size);
    }
    s_le32_put(p + R_CRC, tern_crc32c(0, p + 4, size - 4));

    //  Indexes (KEY still holds topic BE32 + seq BE64).
    key[4] = msg->priority;
    s_be64_put(key + 5, seq);
    k = (MDB_val){13, key};
    v = (MDB_val){0, NULL};
    if ((rc = s_put_tail(ctx->txn, ctx->dbi[S_PRIO], &k, &v, 0))) {
        return rc;
    }
    if (msg->expire_at_ns) {
        s_be64_put(key, msg->expire_at_ns);
        s_be32_put(key + 8, topic_id);
        s_be64_put(key + 12, seq);
        k = (MDB_val){20, key};
        v = (MDB_val){0, NULL};
        if ((rc = mdb_put(ctx->txn, ctx->dbi[S_EXPIRY], &k, &v, 0))) {
            return rc;
        }
    }
    //  No STORED event now: a scan makes it from the record while the
    //  message is stored, and s_msgid_release writes it when it leaves.
    if (shipped && (rc = s_outbox_add(ctx, false, topic_id, seq, msg->msg_id, NULL, 0))) {
        return rc;
    }

    //  The topic record and count/size retention (the newest message stays).
    if (t->topic.msgs == 0) {
        t->topic.first_seq = seq;
    }
    t->topic.last_seq = seq;
    t->topic.msgs++;
    t->topic.bytes += msg->payload_size;
    t->dirty = true;
    while (t->topic.msgs > 1 && ((t->topic.max_msgs && t->topic.msgs > t->topic.max_msgs) ||
                                 (t->topic.max_bytes && t->topic.bytes > t->topic.max_bytes))) {
        bool gone;
        if ((rc = s_remove_first(ctx, t, &gone))) {
            return rc;
        }
        if (!gone) {
            break;
        }
        ctx->trimmed++;
    }
    res->err = TERN_OK;
    res->seq = seq;
    res->msg_id = msg->msg_id;
    return 0;
}

/* ------------------------------------------------------------------------
    Topics and groups
   ------------------------------------------------------------------------ */

static tern_err_t *s_err_out(s_op_t *op) {
    static _Thread_local tern_err_t sink;
    return op->err_out ? op->err_out : &sink;
}

static int s_op_topic_put(s_txn_t *ctx, s_op_t *op) {
    size_t len = strlen(op->name);
    tern_err_t *err = s_err_out(op);
    if (len == 0 || op->flag) {
        *err = TERN_ETOPIC;
        return 0;
    }
    s_cached_t *t;
    int rc = s_topic_find(ctx, op->name, len, false, &t, err);
    if (rc) {
        return rc;
    }
    if (t->exists ? op->u32 == S_PUT_CREATE : op->u32 == S_PUT_EDIT) {
        *err = t->exists ? TERN_EEXIST : TERN_ENOTFOUND;
        return 0;
    }
    if ((rc = s_topic_find(ctx, op->name, len, true, &t, err)) || *err) {
        return rc;
    }
    t->topic.max_age_ms = op->a;
    t->topic.max_msgs = op->b;
    t->topic.max_bytes = op->c;
    t->dirty = true;
    if (op->id_out) {
        *op->id_out = (uint32_t)t->topic.id;
    }
    return 0;
}

//  Deletes every key starting with PREFIX in DBI; *COUNT (may be NULL) gets
//  how many.
static int s_del_prefix(s_txn_t *ctx, MDB_dbi dbi, const uint8_t *prefix, size_t plen,
                        uint64_t *count) {
    MDB_cursor *cur;
    int rc = mdb_cursor_open(ctx->txn, dbi, &cur);
    if (rc) {
        return rc;
    }
    MDB_val k = {plen, (void *)prefix}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size >= plen && !memcmp(k.mv_data, prefix, plen)) {
        if ((rc = mdb_cursor_del(cur, 0))) {
            break;
        }
        if (count) {
            (*count)++;
        }
        //  Re-seek rather than rely on the cursor position after a delete.
        k = (MDB_val){plen, (void *)prefix};
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int s_op_topic_delete(s_txn_t *ctx, s_op_t *op) {
    tern_err_t *err = s_err_out(op);
    s_cached_t *t;
    int rc = s_topic_find(ctx, op->name, strlen(op->name), false, &t, err);
    if (rc) {
        return rc;
    }
    if (!t->exists) {
        *err = TERN_ENOTFOUND;
        return 0;
    }
    uint32_t topic_id = (uint32_t)t->topic.id;
    uint64_t removed = 0;
    for (;;) {
        uint64_t first;
        if ((rc = s_first_seq(ctx, topic_id, 0, t->topic.last_seq, &first, NULL))) {
            return rc;
        }
        if (first > t->topic.last_seq) {
            break;
        }
        bool gone;
        if ((rc = s_msg_remove(ctx, t, first, &gone))) {
            return rc;
        }
        if (!gone) {
            return MDB_CORRUPTED;
        }
        removed++;
    }
    t->topic.first_seq = t->topic.last_seq + 1;
    t->topic.msgs = 0;
    t->topic.bytes = 0;
    t->dirty = true;
    if (!op->flag) {
        uint8_t prefix[4];
        s_be32_put(prefix, topic_id);
        if ((rc = s_del_prefix(ctx, ctx->dbi[S_GROUPS], prefix, 4, NULL)) ||
            (rc = s_del_prefix(ctx, ctx->dbi[S_PENDING], prefix, 4, NULL)) ||
            (rc = s_del_prefix(ctx, ctx->dbi[S_DLQ], prefix, 4, NULL)) ||
            (rc = s_del(ctx->txn, ctx->dbi[S_TOPIC_IDS], prefix, 4))) {
            return rc;
        }
        //  Cached groups of the topic are gone too.
        for (size_t i = 0; i < ctx->batch->cache_count; i++) {
            s_cached_t *c = ctx->batch->cache[i];
            if (c->is_group && !memcmp(c->key, prefix, 4)) {
                c->exists = false;
                c->dirty = false;
            }
        }
        t->exists = false;
        ctx->d_topics--;
    }
    if (op->count_out) {
        *op->count_out = removed;
    }
    *err = TERN_OK;
    return 0;
}

//  The first stored message at or after SEQ: its seq into *FOUND_SEQ
//  (last_seq + 1 when there is none) and its timestamp into *TS.
static int s_seq_time(s_txn_t *ctx, s_cached_t *t, uint64_t seq, uint64_t *found_seq,
                      uint64_t *ts) {
    MDB_val v;
    int rc = s_first_seq(ctx, (uint32_t)t->topic.id, seq, t->topic.last_seq, found_seq, &v);
    if (rc || *found_seq > t->topic.last_seq) {
        return rc;
    }
    s_record_t rec;
    if (s_record_parse(&v, false, &rec) != TERN_OK) {
        return MDB_CORRUPTED;
    }
    *ts = rec.timestamp_ns;
    return 0;
}

//  Where a group starting at START/VALUE begins on topic T (see
//  tern_store_batch_group_open) into *SEQ; *ERR TERN_ERANGE for a bad START.
static int s_start_seq(s_txn_t *ctx, s_cached_t *t, tern_start_t start, uint64_t value,
                       uint64_t *seq, tern_err_t *err) {
    int rc = 0;
    switch (start) {
        case TERN_START_FIRST:
            *seq = t->topic.first_seq;
            break;
        case TERN_START_NEW:
            *seq = t->topic.last_seq + 1;
            break;
        case TERN_START_SEQ:
            *seq = value ? value : 1;
            break;
        case TERN_START_TIME: {
            //  Binary search; timestamps grow with seq (receive time).
            uint64_t lo = t->topic.first_seq, hi = t->topic.last_seq + 1;
            while (lo < hi) {
                uint64_t mid = lo + (hi - lo) / 2, s, ts = 0;
                if ((rc = s_seq_time(ctx, t, mid, &s, &ts))) {
                    return rc;
                }
                if (s > t->topic.last_seq || ts >= value) {
                    hi = mid;
                } else {
                    lo = s + 1;
                }
            }
            *seq = lo;
            break;
        }
        default:
            *err = TERN_ERANGE;
            break;
    }
    return rc;
}

static int s_op_group_open(s_txn_t *ctx, s_op_t *op) {
    tern_err_t *err = s_err_out(op);
    *err = TERN_OK;
    if (!op->name[0]) {
        *err = TERN_ENAME;
        return 0;
    }
    s_cached_t *t;
    int rc = s_topic_by_id(ctx, op->topic_id, &t);
    if (rc) {
        return rc;
    }
    if (!t) {
        *err = TERN_ENOTFOUND;
        return 0;
    }
    s_cached_t *g;
    if ((rc = s_group_find(ctx, op->topic_id, op->name, &g))) {
        return rc;
    }
    if (g->exists) {
        return 0;
    }
    uint64_t start;
    if ((rc = s_start_seq(ctx, t, (tern_start_t)op->u32, op->a, &start, err)) || *err) {
        return rc;
    }
    memset(&g->group, 0, sizeof g->group);
    g->group.version = S_GROUP_VERSION;
    g->group.created_ns = ctx->now_ns;
    for (int i = 0; i <= TERN_PRIORITY_MAX; i++) {
        g->group.lane_next[i] = start;
    }
    g->exists = true;
    g->dirty = true;
    return 0;
}

static int s_op_group_delete(s_txn_t *ctx, s_op_t *op) {
    tern_err_t *err = s_err_out(op);
    s_cached_t *g;
    int rc = s_group_find(ctx, op->topic_id, op->name, &g);
    if (rc) {
        return rc;
    }
    if (!g->exists) {
        *err = TERN_ENOTFOUND;
        return 0;
    }
    uint8_t prefix[S_ENTRY_KEY_MAX];
    size_t plen = s_entry_key(prefix, op->topic_id, op->name, strlen(op->name), 0, false);
    if ((rc = s_del_prefix(ctx, ctx->dbi[S_PENDING], prefix, plen, NULL)) ||
        (rc = s_del_prefix(ctx, ctx->dbi[S_DLQ], prefix, plen, NULL))) {
        return rc;
    }
    g->exists = false;
    g->dirty = true;
    *err = TERN_OK;
    return 0;
}

//  Moves a group's lane cursors to START/VALUE and drops its pending entries
//  (the messages at or after the new position are delivered again from
//  the cursors). The DLQ and the counters are kept.
static int s_op_group_seek(s_txn_t *ctx, s_op_t *op) {
    tern_err_t *err = s_err_out(op);
    *err = TERN_OK;
    s_cached_t *t, *g;
    int rc = s_topic_by_id(ctx, op->topic_id, &t);
    if (rc || (t && (rc = s_group_find(ctx, op->topic_id, op->name, &g)))) {
        return rc;
    }
    if (!t || !g->exists) {
        *err = TERN_ENOTFOUND;
        return 0;
    }
    uint64_t start;
    if ((rc = s_start_seq(ctx, t, (tern_start_t)op->u32, op->a, &start, err)) || *err) {
        return rc;
    }
    uint8_t prefix[S_ENTRY_KEY_MAX];
    size_t plen = s_entry_key(prefix, op->topic_id, op->name, strlen(op->name), 0, false);
    if ((rc = s_del_prefix(ctx, ctx->dbi[S_PENDING], prefix, plen, NULL))) {
        return rc;
    }
    g->group.pending = 0;
    for (int i = 0; i <= TERN_PRIORITY_MAX; i++) {
        g->group.lane_next[i] = start;
    }
    g->dirty = true;
    return 0;
}

static void s_entry_put(uint8_t *val, uint32_t count, uint8_t priority, uint64_t due_ms) {
    memset(val, 0, S_ENTRY_SIZE);
    s_le32_put(val, count);
    val[4] = priority;
    s_le64_put(val + 8, due_ms);
}

//  Pending, ack, nack, dead, DLQ replay: the group's entries and counters.
static int s_op_group_entry(s_txn_t *ctx, s_op_t *op) {
    s_cached_t *g;
    int rc = s_group_find(ctx, op->topic_id, op->name, &g);
    if (rc || !g->exists) {
        if ((op->kind == OP_DLQ_REPLAY || op->kind == OP_DLQ_PURGE) && op->count_out) {
            *op->count_out = 0;
        }
        if (!rc && op->err_out) {
            *op->err_out = TERN_ENOTFOUND;
        }
        return rc;
    }
    s_group_rec_t *gr = &g->group;
    uint8_t key[S_ENTRY_KEY_MAX];
    size_t klen = s_entry_key(key, op->topic_id, op->name, strlen(op->name), op->a, true);
    MDB_val k = {klen, key}, v;
    uint8_t val[S_ENTRY_SIZE + TERN_REASON_MAX];
    MDB_dbi pending = ctx->dbi[S_PENDING];
    switch (op->kind) {
        case OP_DELIVER: {
            uint8_t prio = op->priority <= TERN_PRIORITY_MAX ? op->priority : TERN_PRIORITY_MAX;
            //  One B-tree search for a first delivery; a redelivery finds
            //  its entry and overwrites it.
            s_entry_put(val, op->u32, prio, op->b);
            v = (MDB_val){S_ENTRY_SIZE, val};
            rc = mdb_put(ctx->txn, pending, &k, &v, MDB_NOOVERWRITE);
            if (rc == MDB_KEYEXIST) {
                v = (MDB_val){S_ENTRY_SIZE, val};
                rc = mdb_put(ctx->txn, pending, &k, &v, 0);
            } else if (rc == 0) {
                gr->pending++;
            }
            if (rc) {
                return rc;
            }
            //  Every delivery counts; one with a count above 1 is also a
            //  redelivery (docs/operations.md, "Delivery counters").
            gr->delivered++;
            gr->redelivered += op->u32 > 1;
            if (gr->lane_next[prio] <= op->a) {
                gr->lane_next[prio] = op->a + 1;
            }
            rc = s_trace_put(ctx, op->topic_id, op->a, TERN_TRACE_DELIVERED, op->name, op->u32,
                             op->reason, 0, 0);
            break;
        }
        case OP_ACK:
            rc = mdb_del(ctx->txn, pending, &k, NULL);
            if (rc == MDB_NOTFOUND) {
                return 0;
            }
            if (rc) {
                return rc;
            }
            gr->pending--;
            gr->acked++;
            //  REASON: where a peer's ack came from (ack-state apply).
            rc =
                s_trace_put(ctx, op->topic_id, op->a, op->u32 ? (uint8_t)op->u32 : TERN_TRACE_ACKED,
                            op->name, 0, op->reason, 0, 0);
            break;
        case OP_NACK:
            rc = mdb_get(ctx->txn, pending, &k, &v);
            if (rc == MDB_NOTFOUND) {
                return 0;
            }
            if (rc) {
                return rc;
            }
            if (v.mv_size != S_ENTRY_SIZE) {
                return MDB_CORRUPTED;
            }
            memcpy(val, v.mv_data, S_ENTRY_SIZE);
            s_le64_put(val + 8, op->b);
            v = (MDB_val){S_ENTRY_SIZE, val};
            if ((rc = mdb_put(ctx->txn, pending, &k, &v, 0))) {
                return rc;
            }
            gr->nacked++;
            rc = s_trace_put(ctx, op->topic_id, op->a,
                             op->u32 ? (uint8_t)op->u32 : TERN_TRACE_NACKED, op->name,
                             s_le32_get(val), NULL, 0, 0);
            break;
        case OP_DEAD: {
            uint8_t prio = TERN_PRIORITY_DEFAULT;
            rc = mdb_get(ctx->txn, pending, &k, &v);
            if (rc == 0) {
                if (v.mv_size == S_ENTRY_SIZE) {
                    prio = ((uint8_t *)v.mv_data)[4];
                }
                if ((rc = mdb_del(ctx->txn, pending, &k, NULL))) {
                    return rc;
                }
                gr->pending--;
            } else if (rc != MDB_NOTFOUND) {
                return rc;
            }
            size_t rlen = op->reason ? strlen(op->reason) : 0;
            s_entry_put(val, op->u32, prio, ctx->now_ns / 1000000);
            memcpy(val + S_ENTRY_SIZE, op->reason, rlen);
            v = (MDB_val){S_ENTRY_SIZE + rlen, val};
            rc = mdb_put(ctx->txn, ctx->dbi[S_DLQ], &k, &v, 0);
            if (rc) {
                return rc;
            }
            //  Counted once even if the same seq dies twice.
            gr->dead++;
            rc = s_trace_put(ctx, op->topic_id, op->a, TERN_TRACE_DEAD, op->name, op->u32,
                             op->reason, 0, 0);
            break;
        }
        case OP_DLQ_REPLAY: {
            uint64_t moved = 0;
            MDB_cursor *cur;
            if ((rc = mdb_cursor_open(ctx->txn, ctx->dbi[S_DLQ], &cur))) {
                return rc;
            }
            size_t plen = klen - 8;
            //  One entry (flag): the range starts at its key and stops after it.
            k = (MDB_val){op->flag ? klen : plen, key};
            rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
            while (rc == 0 && k.mv_size == plen + 8 && !memcmp(k.mv_data, key, plen) &&
                   (!op->flag || (moved == 0 && !memcmp(k.mv_data, key, klen)))) {
                uint8_t pkey[S_ENTRY_KEY_MAX];
                memcpy(pkey, k.mv_data, k.mv_size);
                uint8_t prio = v.mv_size >= S_ENTRY_SIZE ? ((uint8_t *)v.mv_data)[4] : 0;
                MDB_val pk = {plen + 8, pkey}, pv;
                s_entry_put(val, 0, prio, op->b);
                pv = (MDB_val){S_ENTRY_SIZE, val};
                rc = mdb_put(ctx->txn, pending, &pk, &pv, MDB_NOOVERWRITE);
                if (rc == 0) {
                    gr->pending++;
                } else if (rc == MDB_KEYEXIST) {
                    pv = (MDB_val){S_ENTRY_SIZE, val};
                    rc = mdb_put(ctx->txn, pending, &pk, &pv, 0);
                }
                if (rc || (rc = mdb_cursor_del(cur, 0))) {
                    break;
                }
                moved++;
                if (gr->dead) {
                    gr->dead--;
                }
                if ((rc = s_trace_put(ctx, op->topic_id, s_be64_get(pkey + plen),
                                      TERN_TRACE_REPLAYED, op->name, 0, NULL, 0, 0))) {
                    break;
                }
                k = (MDB_val){plen + 8, pkey};
                rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
            }
            mdb_cursor_close(cur);
            if (rc && rc != MDB_NOTFOUND) {
                return rc;
            }
            if (op->count_out) {
                *op->count_out = moved;
            }
            if (op->err_out) {
                *op->err_out = moved ? TERN_OK : TERN_ENOTFOUND;
            }
            rc = 0;
            break;
        }
        case OP_DLQ_PURGE: {
            uint64_t removed = 0;
            if ((rc = s_del_prefix(ctx, ctx->dbi[S_DLQ], key, klen - 8, &removed))) {
                return rc;
            }
            gr->dead = gr->dead > removed ? gr->dead - removed : 0;
            if (op->count_out) {
                *op->count_out = removed;
            }
            if (op->err_out) {
                *op->err_out = TERN_OK;
            }
            break;
        }
        default:
            break;
    }
    g->dirty = true;
    return rc;
}

/* ------------------------------------------------------------------------
    Sweep: TTL, max_age, dedup window, outbox retention
   ------------------------------------------------------------------------ */

static int s_sweep_expiry(s_txn_t *ctx, uint64_t now_ns, uint64_t *budget, uint64_t *removed) {
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
        s_cached_t *t;
        bool gone = false;
        if ((rc = s_topic_by_id(ctx, topic_id, &t))) {
            break;
        }
        if (t && (rc = s_msg_remove(ctx, t, seq, &gone))) {
            break;
        }
        //  Removing the message removed this entry; an orphan goes anyway.
        if ((rc = s_del(ctx->txn, ctx->dbi[S_EXPIRY], key, 20))) {
            break;
        }
        if (gone) {
            ctx->expired++;
            (*removed)++;
            if ((rc = s_trace_put(ctx, topic_id, seq, TERN_TRACE_EXPIRED, NULL, 0, NULL, 0, 0))) {
                break;
            }
        }
        (*budget)--;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int s_sweep_age(s_txn_t *ctx, uint64_t now_ns, uint64_t *budget, uint64_t *removed) {
    //  Collect the names first: topic records are written back at flush.
    MDB_cursor *cur;
    int rc = mdb_cursor_open(ctx->txn, ctx->dbi[S_TOPICS], &cur);
    if (rc) {
        return rc;
    }
    char(*names)[TERN_TOPIC_MAX + 1] = NULL;
    size_t count = 0, cap = 0;
    MDB_val k, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0) {
        if (v.mv_size == sizeof(s_topic_rec_t) && k.mv_size <= TERN_TOPIC_MAX) {
            s_topic_rec_t rec;
            memcpy(&rec, v.mv_data, sizeof rec);
            if (rec.max_age_ms && rec.msgs) {
                if (count == cap) {
                    cap = cap ? cap * 2 : 16;
                    void *grown = tern_realloc(names, cap * sizeof *names);
                    names = grown;
                }
                memcpy(names[count], k.mv_data, k.mv_size);
                names[count][k.mv_size] = 0;
                count++;
            }
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    rc = rc == MDB_NOTFOUND ? 0 : rc;
    for (size_t i = 0; i < count && rc == 0 && *budget > 0; i++) {
        s_cached_t *t;
        tern_err_t err;
        if ((rc = s_topic_find(ctx, names[i], strlen(names[i]), false, &t, &err))) {
            break;
        }
        if (!t->exists || !t->topic.max_age_ms) {
            continue;
        }
        uint64_t age_ns = t->topic.max_age_ms * 1000000ull;
        uint64_t cutoff = now_ns > age_ns ? now_ns - age_ns : 0;
        while (*budget > 0 && t->topic.msgs > 0) {
            uint64_t s, ts = 0;
            if ((rc = s_seq_time(ctx, t, t->topic.first_seq, &s, &ts))) {
                break;
            }
            if (s > t->topic.last_seq || ts >= cutoff) {
                break;
            }
            bool gone;
            if ((rc = s_msg_remove(ctx, t, s, &gone))) {
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

//  Removes from one producer's entries (cursor DC) the oldest ones that are
//  past CUTOFF, from its lowest producer_seq up to the first one inside the
//  window (producer seqs grow with time; an entry out of that order is still
//  bounded by the count and is treated as expired by the lookup). Counts
//  removals in *REMOVED up to BUDGET; *DONE tells whether the producer's
//  walk ended (rather than the budget).
static int s_sweep_producer(s_txn_t *ctx, MDB_cursor *dc, const uint8_t *name, size_t len,
                            uint64_t cutoff, uint64_t budget, uint64_t *removed, bool *done) {
    s_prod_t *p;
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
        p->count = 0; //  no entries left: s_prod_flush deletes the producer
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
static int s_sweep_dedup(s_txn_t *ctx, uint64_t now_ns, uint64_t budget) {
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

static int s_sweep_outbox(s_txn_t *ctx, uint64_t now_ns, uint64_t budget) {
    //  The lowest position every known peer confirmed (0 if no peer yet).
    uint64_t confirmed = 0;
    bool any_peer = false;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(ctx->txn, ctx->dbi[S_PEERS], &cur);
    if (rc) {
        return rc;
    }
    MDB_val k, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0) {
        uint64_t pos = v.mv_size == 8 ? s_le64_get(v.mv_data) : 0;
        if (!any_peer || pos < confirmed) {
            confirmed = pos;
        }
        any_peer = true;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND) {
        return rc;
    }
    uint64_t retention_ns = ctx->store->config.outbox_retention_ms * 1000000ull;
    uint64_t cutoff = now_ns > retention_ns ? now_ns - retention_ns : 0;
    if ((rc = mdb_cursor_open(ctx->txn, ctx->dbi[S_OUTBOX], &cur))) {
        return rc;
    }
    while (budget-- > 0) {
        if ((rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST))) {
            break;
        }
        uint64_t pos = k.mv_size == 8 ? s_be64_get(k.mv_data) : 0;
        uint64_t at = v.mv_size >= S_OUTBOX_HDR ? s_le64_get((uint8_t *)v.mv_data + 32) : 0;
        bool all_confirmed = any_peer && pos <= confirmed;
        if (!all_confirmed && at >= cutoff) {
            break;
        }
        if (!all_confirmed) {
            ctx->outbox_dropped++;
        }
        if ((rc = mdb_cursor_del(cur, 0))) {
            break;
        }
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int s_sweep_trace(s_txn_t *ctx, uint64_t now_ns, uint64_t budget);
static int s_trace_confirm(s_txn_t *ctx, const char *peer, uint64_t position, uint64_t previous);

static int s_op_sweep(s_txn_t *ctx, s_op_t *op) {
    uint64_t budget = op->u32, removed = 0;
    int rc = s_sweep_expiry(ctx, op->a, &budget, &removed);
    if (rc == 0) {
        rc = s_sweep_age(ctx, op->a, &budget, &removed);
    }
    if (rc == 0) {
        rc = s_sweep_dedup(ctx, op->a, op->u32);
    }
    if (rc == 0) {
        rc = s_sweep_outbox(ctx, op->a, op->u32);
    }
    if (rc == 0) {
        rc = s_sweep_trace(ctx, op->a, op->u32);
    }
    if (op->count_out) {
        *op->count_out = removed;
    }
    return rc;
}

/* ------------------------------------------------------------------------
    Commit
   ------------------------------------------------------------------------ */

//  The message MSG_ID as the target of a peer's ack-state change: its topic,
//  seq and priority lane (from the record); *HERE false when it is not
//  stored here.
static int s_ackstate_msg(s_txn_t *ctx, uint64_t msg_id, bool *here, uint32_t *topic_id,
                          uint64_t *seq, uint8_t *prio) {
    *here = false;
    uint8_t key[12];
    s_be64_put(key, msg_id);
    MDB_val k = {8, key}, v;
    int rc = mdb_get(ctx->txn, ctx->dbi[S_MSGID], &k, &v);
    if (rc) {
        return rc == MDB_NOTFOUND ? 0 : rc; //  not here (yet, or any more)
    }
    if (v.mv_size != S_MSGID_SIZE) {
        return MDB_CORRUPTED;
    }
    if (((uint8_t *)v.mv_data)[M_FLAGS] & S_MSGID_REMOVED) {
        return 0; //  removed here; only its history is left
    }
    *here = true;
    *topic_id = s_be32_get((uint8_t *)v.mv_data + M_TOPIC);
    *seq = s_be64_get((uint8_t *)v.mv_data + M_SEQ);
    *prio = TERN_PRIORITY_DEFAULT;
    s_be32_put(key, *topic_id);
    s_be64_put(key + 4, *seq);
    k = (MDB_val){12, key};
    if ((rc = mdb_get(ctx->txn, ctx->dbi[S_LOG], &k, &v)) == 0) {
        s_record_t rec;
        if (s_record_parse(&v, false, &rec) == TERN_OK && rec.priority <= TERN_PRIORITY_MAX) {
            *prio = rec.priority;
        }
    }
    return rc == MDB_NOTFOUND ? 0 : rc;
}

//  Puts a pending entry (delivery count COUNT, due now) for SEQ of G unless
//  it has one. Not a delivery: no counter but `pending`, no history event.
static int s_ackstate_pend(s_txn_t *ctx, s_cached_t *g, uint32_t topic_id, const char *group,
                           uint64_t seq, uint8_t prio, uint32_t count) {
    uint8_t key[S_ENTRY_KEY_MAX], val[S_ENTRY_SIZE];
    size_t klen = s_entry_key(key, topic_id, group, strlen(group), seq, true);
    s_entry_put(val, count, prio, ctx->now_ns / 1000000);
    MDB_val k = {klen, key}, v = {S_ENTRY_SIZE, val};
    int rc = mdb_put(ctx->txn, ctx->dbi[S_PENDING], &k, &v, MDB_NOOVERWRITE);
    if (rc == 0) {
        g->group.pending++;
        g->dirty = true;
    }
    return rc == MDB_KEYEXIST ? 0 : rc;
}

//  SEQ was not delivered here yet: the lane's messages between its cursor
//  and SEQ become pending (still owed to the group: at-least-once), SEQ too
//  (so that the ack or TERM finds it), and the cursor moves past SEQ.
static int s_ackstate_skip(s_txn_t *ctx, s_cached_t *g, uint32_t topic_id, const char *group,
                           uint64_t seq, uint8_t prio) {
    uint8_t from[13];
    s_be32_put(from, topic_id);
    from[4] = prio;
    s_be64_put(from + 5, g->group.lane_next[prio]);
    MDB_cursor *cur;
    int rc = mdb_cursor_open(ctx->txn, ctx->dbi[S_PRIO], &cur);
    if (rc) {
        return rc;
    }
    MDB_val k = {13, from}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size == 13 && !memcmp(k.mv_data, from, 5)) {
        uint64_t hole = s_be64_get((uint8_t *)k.mv_data + 5);
        if (hole >= seq || (rc = s_ackstate_pend(ctx, g, topic_id, group, hole, prio, 0))) {
            break;
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (rc && rc != MDB_NOTFOUND) {
        return rc;
    }
    g->group.lane_next[prio] = seq + 1;
    g->dirty = true;
    return s_ackstate_pend(ctx, g, topic_id, group, seq, prio, 0);
}

//  A peer's ack-state change by msg_id (see tern_store_batch_ackstate_apply):
//  it goes through the same ACK / DEAD step as a local one, so the counters
//  and the history (ACKED, DEAD events) are those of a local ack or TERM.
static int s_op_ackstate_apply(s_txn_t *ctx, s_op_t *op) {
    bool here;
    uint32_t topic_id = 0;
    uint64_t seq = 0;
    uint8_t prio = TERN_PRIORITY_DEFAULT;
    int rc = s_ackstate_msg(ctx, op->b, &here, &topic_id, &seq, &prio);
    if (rc || !here) {
        return rc;
    }
    s_op_t sub;
    memset(&sub, 0, sizeof sub);
    memcpy(sub.name, op->name, sizeof sub.name);
    sub.topic_id = topic_id;
    sub.kind = OP_GROUP_OPEN;
    sub.u32 = TERN_START_FIRST;
    s_cached_t *g;
    if ((rc = s_op_group_open(ctx, &sub)) || (rc = s_group_find(ctx, topic_id, op->name, &g)) ||
        !g->exists) {
        return rc;
    }
    bool term = op->u32 == TERN_CMD_TERM;
    uint8_t key[S_ENTRY_KEY_MAX];
    size_t klen = s_entry_key(key, topic_id, op->name, strlen(op->name), seq, true);
    MDB_val k = {klen, key}, v;
    uint32_t count = 0;
    if ((rc = mdb_get(ctx->txn, ctx->dbi[S_PENDING], &k, &v)) == 0) {
        count = v.mv_size == S_ENTRY_SIZE ? s_le32_get(v.mv_data) : 0;
    } else if (rc != MDB_NOTFOUND) {
        return rc;
    } else if ((rc = mdb_get(ctx->txn, ctx->dbi[S_DLQ], &k, &v)) == 0) {
        if (term) {
            return 0; //  dead here too
        }
        //  Replayed from the DLQ and acked there: acked here as well.
        count = v.mv_size >= S_ENTRY_SIZE ? s_le32_get(v.mv_data) : 0;
        prio = v.mv_size >= S_ENTRY_SIZE ? ((uint8_t *)v.mv_data)[4] : prio;
        if ((rc = mdb_del(ctx->txn, ctx->dbi[S_DLQ], &k, NULL))) {
            return rc;
        }
        g->group.dead -= g->group.dead > 0;
        rc = s_ackstate_pend(ctx, g, topic_id, op->name, seq, prio, count);
    } else if (rc != MDB_NOTFOUND) {
        return rc;
    } else if (seq < g->group.lane_next[prio]) {
        return 0; //  acked here already
    } else {
        rc = s_ackstate_skip(ctx, g, topic_id, op->name, seq, prio);
    }
    if (rc) {
        return rc;
    }
    sub.a = seq;
    sub.kind = term ? OP_DEAD : OP_ACK;
    sub.u32 = term ? count : TERN_TRACE_ACKED;
    sub.reason =
        op->reason ? op->reason : (char *)(term ? "dead in a peer dc" : "acked in a peer dc");
    return s_op_group_entry(ctx, &sub);
}

static int s_apply(s_txn_t *ctx, s_op_t *op) {
    switch (op->kind) {
        case OP_APPEND:
            return s_op_append(ctx, op);
        case OP_TOPIC_PUT:
            return s_op_topic_put(ctx, op);
        case OP_TOPIC_DELETE:
            return s_op_topic_delete(ctx, op);
        case OP_GROUP_OPEN:
            return s_op_group_open(ctx, op);
        case OP_GROUP_DELETE:
            return s_op_group_delete(ctx, op);
        case OP_DELIVER:
        case OP_ACK:
        case OP_NACK:
        case OP_DEAD:
        case OP_DLQ_REPLAY:
        case OP_DLQ_PURGE:
            return s_op_group_entry(ctx, op);
        case OP_GROUP_SEEK:
            return s_op_group_seek(ctx, op);
        case OP_SWEEP:
            return s_op_sweep(ctx, op);
        case OP_SET_U64:
            return op->name[0] ? s_put_u64(ctx->txn, ctx->dbi[S_META], op->name, op->a) : 0;
        case OP_OUTBOX_CONFIRM: {
            uint64_t old = 0;
            int rc = s_get_u64(ctx->txn, ctx->dbi[S_PEERS], op->name, &old);
            if (rc && rc != MDB_NOTFOUND) {
                return rc;
            }
            if (!op->name[0] || (rc == 0 && old >= op->a)) {
                return 0;
            }
            if ((rc = s_trace_confirm(ctx, op->name, op->a, rc == 0 ? old : 0))) {
                return rc;
            }
            return s_put_u64(ctx->txn, ctx->dbi[S_PEERS], op->name, op->a);
        }
        case OP_INBOUND:
            return op->name[0] ? s_put_u64(ctx->txn, ctx->dbi[S_INBOUND], op->name, op->a) : 0;
        case OP_ACKSTATE:
            return s_outbox_add(ctx, true, op->topic_id, op->a, op->b, op->name, op->u32);
        case OP_TRACE:
            return s_trace_put(ctx, op->topic_id, op->a, (uint8_t)op->u32, op->name, 0, op->reason,
                               0, 0);
        case OP_ACKSTATE_APPLY:
            return s_op_ackstate_apply(ctx, op);
    }
    return 0;
}

static void s_fail_all(tern_store_batch_t *self, tern_err_t err) {
    for (size_t i = 0; i < self->count; i++) {
        s_op_t *op = &self->ops[i];
        if (op->result) {
            memset(op->result, 0, sizeof *op->result);
            op->result->err = err;
        }
        if (op->err_out) {
            *op->err_out = err;
        }
    }
}

//  Doubles the map (capped at map_max). Readers are locked out while LMDB
//  remaps: mdb_env_set_mapsize needs no live transaction in the process.
static bool s_resize(tern_store_t *self, uint64_t size) {
    pthread_rwlock_wrlock(&self->lock);
    int rc = mdb_env_set_mapsize(self->env, (size_t)size);
    pthread_rwlock_unlock(&self->lock);
    if (rc) {
        return false;
    }
    MDB_envinfo info;
    mdb_env_info(self->env, &info);
    atomic_store(&self->map_size, (uint64_t)info.me_mapsize);
    return true;
}

static bool s_grow(tern_store_t *self, uint64_t limit) {
    uint64_t size = atomic_load(&self->map_size);
    if (size >= limit) {
        return false;
    }
    uint64_t grown = size * 2 < limit ? size * 2 : limit;
    if (!s_resize(self, grown)) {
        return false;
    }
    atomic_fetch_add_explicit(&self->map_grows, 1, memory_order_relaxed);
    return true;
}

//  Commits a one-key transaction so the pages freed by the last commit
//  become reusable. Returns true if it committed.
static bool s_nudge(tern_store_t *self) {
    MDB_txn *txn;
    if (mdb_txn_begin(self->env, NULL, 0, &txn)) {
        return false;
    }
    if (s_put_u64(txn, self->dbi[S_META], "store.full_at", s_now_ns())) {
        mdb_txn_abort(txn);
        return false;
    }
    return mdb_txn_commit(txn) == 0;
}

tern_err_t tern_store_batch_commit(tern_store_batch_t *self) {
    if (!self) {
        return TERN_EINVAL;
    }
    if (self->count == 0) {
        return TERN_OK;
    }
    tern_store_t *store = self->store;
    s_txn_t ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.store = store;
    ctx.batch = self;
    ctx.dbi = store->dbi;
    ctx.now_ns = s_now_ns();
    ctx.append_limit = SIZE_MAX;
    tern_err_t err = TERN_OK;
    bool nudged = false;
    for (;;) {
        ctx.outbox_last = store->outbox_last;
        ctx.topic_next = store->topic_next;
        ctx.trace_next = store->trace_next;
        ctx.d_topics = ctx.d_dedup = 0;
        ctx.expired = ctx.trimmed = ctx.outbox_dropped = 0;
        ctx.superseded = 0;
        ctx.appended = 0;
        ctx.last_hit = 0;
        ctx.prod_hit = 0;
        memcpy(ctx.dedup_next, store->dedup_next, store->dedup_next_len);
        ctx.dedup_next_len = store->dedup_next_len;
        self->cache_count = 0;
        s_prod_reset(self);
        int rc = mdb_txn_begin(store->env, NULL, 0, &ctx.txn);
        if (rc == MDB_MAP_RESIZED) {
            //  Another process grew the map; adopt its size.
            pthread_rwlock_wrlock(&store->lock);
            rc = mdb_env_set_mapsize(store->env, 0);
            pthread_rwlock_unlock(&store->lock);
            if (rc == 0) {
                MDB_envinfo info;
                mdb_env_info(store->env, &info);
                atomic_store(&store->map_size, (uint64_t)info.me_mapsize);
                continue;
            }
        }
        if (rc) {
            err = s_err(rc);
            break;
        }
        for (size_t i = 0; i < self->count && rc == 0; i++) {
            rc = s_apply(&ctx, &self->ops[i]);
        }
        if (rc == 0) {
            rc = s_prod_flush(&ctx);
        }
        if (rc == 0) {
            rc = s_cache_flush(&ctx);
        }
        if (rc == 0 && ctx.outbox_last != store->outbox_last) {
            rc = s_put_u64(ctx.txn, store->dbi[S_META], S_META_OUTBOX_LAST, ctx.outbox_last);
        }
        if (rc == 0 && ctx.topic_next != store->topic_next) {
            rc = s_put_u64(ctx.txn, store->dbi[S_META], S_META_TOPIC_NEXT, ctx.topic_next);
        }
        if (rc == 0 && ctx.trace_next != store->trace_next) {
            rc = s_put_u64(ctx.txn, store->dbi[S_META], S_META_TRACE_NEXT, ctx.trace_next);
        }
        if (rc) {
            mdb_txn_abort(ctx.txn);
        } else {
            rc = mdb_txn_commit(ctx.txn);
        }
        ctx.txn = NULL;
        if (rc == 0) {
            store->outbox_last = ctx.outbox_last;
            store->topic_next = ctx.topic_next;
            store->trace_next = ctx.trace_next;
            memcpy(store->dedup_next, ctx.dedup_next, ctx.dedup_next_len);
            store->dedup_next_len = ctx.dedup_next_len;
            atomic_fetch_add(&store->topics, (uint32_t)ctx.d_topics);
            atomic_fetch_add(&store->dedup_entries, (uint64_t)ctx.d_dedup);
            atomic_fetch_add(&store->expired, ctx.expired);
            atomic_fetch_add(&store->retention_trimmed, ctx.trimmed);
            atomic_fetch_add(&store->outbox_dropped, ctx.outbox_dropped);
            atomic_fetch_add(&store->superseded, ctx.superseded);
            atomic_fetch_add(&store->commits, 1);
            uint64_t size = atomic_load(&store->map_size);
            if (size > store->map_soft && size != store->shrink_tried) {
                //  Give the reserve back (LMDB keeps what is in use); once
                //  per size, as a remap waits for every reader.
                s_resize(store, store->map_soft);
                store->shrink_tried = atomic_load(&store->map_size);
            }
            err = TERN_OK;
            break;
        }
        if (rc == MDB_MAP_FULL) {
            //  Appends stop at map_max minus the reserve; the reserve lets
            //  acks, deletes and sweeps commit when the map is full.
            bool appending = self->has_appends && !ctx.no_appends;
            if (s_grow(store, appending ? store->map_soft : store->map_max)) {
                continue;
            }
            if (!nudged) {
                //  LMDB reuses pages freed by a transaction only after one
                //  more commit (the previous snapshot must stay intact), so
                //  space just freed by a delete needs a small commit first.
                nudged = true;
                if (s_nudge(store)) {
                    continue;
                }
            }
            if (!ctx.no_appends && self->has_appends) {
                //  Cannot grow: store the earliest appends that fit (halving
                //  what this attempt tried; the rest get TERN_EFULL), at
                //  last none but everything else, so consumers keep
                //  draining and deletes free space.
                if (ctx.append_limit == SIZE_MAX) {
                    atomic_fetch_add(&store->full_errors, 1);
                }
                ctx.append_limit = ctx.appended / 2;
                ctx.no_appends = ctx.append_limit == 0;
                continue;
            }
            if (!ctx.no_appends) {
                atomic_fetch_add(&store->full_errors, 1);
            }
        }
        err = s_err(rc);
        break;
    }
    if (err != TERN_OK) {
        s_fail_all(self, err);
    }
    s_batch_clear(self);
    return err;
}

/* ------------------------------------------------------------------------
    The store
   ------------------------------------------------------------------------ */

void tern_store_config_defaults(tern_store_config_t *config) {
    memset(config, 0, sizeof *config);
    config->dir = "./tern-data";
    config->map_initial = 64ull << 20;
    config->map_max = 64ull << 30;
    config->durability = TERN_DURABILITY_FSYNC;
    config->dedup_window_ms = 120000;
    config->dedup_max = 1024;
    config->outbox_retention_ms = 72ull * 3600 * 1000;
    config->trace_retention_ms = 24ull * 3600 * 1000;
    config->max_topics = 100000;
    config->max_readers = 126;
    config->outbox = true;
}

static int s_mkdir_p(const char *dir) {
    char path[PATH_MAX];
    size_t len = strlen(dir);
    if (len == 0 || len >= sizeof path) {
        return ENAMETOOLONG;
    }
    memcpy(path, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (path[i] == '/' || path[i] == 0) {
            char c = path[i];
            path[i] = 0;
            if (mkdir(path, 0755) && errno != EEXIST) {
                return errno;
            }
            path[i] = c;
        }
    }
    struct stat st;
    if (stat(dir, &st)) {
        return errno;
    }
    return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
}

/*  The directory lock. LMDB lets several processes share an environment, but
    a store keeps writer state in memory (seqs, topic ids, outbox position),
    so two stores on one directory hand out the same seqs and lose
    acknowledged messages. An flock on a file of our own, taken before LMDB
    opens: the kernel drops it when its holder dies, so a killed node
    restarts without cleanup, and it leaves LMDB's lock.mdb to mdb_copy and
    mdb_stat. flock belongs to the open file description, so a second store
    in the same process is refused too. */

static void s_lock_path(const char *dir, char *path, size_t cap) {
    snprintf(path, cap, "%s/%s", dir, TERN_STORE_LOCK_FILE);
}

static bool s_same_file(int fd, const char *path) {
    struct stat held, named;
    return fstat(fd, &held) == 0 && stat(path, &named) == 0 && held.st_dev == named.st_dev &&
           held.st_ino == named.st_ino;
}

//  Takes the lock and writes our pid in it. Returns 0, EBUSY when a live
//  store holds it, or the errno of what failed.
static int s_lock_take(tern_store_t *self) {
    char path[PATH_MAX + sizeof TERN_STORE_LOCK_FILE + 1];
    s_lock_path(self->dir, path, sizeof path);
    //  A clean close unlinks the file while it still holds the lock: an open
    //  that raced with it has locked a file no longer in the directory, and
    //  tries again.
    for (int attempt = 0; attempt < 100; attempt++) {
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            return errno;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int rc = errno == EWOULDBLOCK ? EBUSY : errno;
            close(fd);
            return rc;
        }
        if (s_same_file(fd, path)) {
            char pid[32];
            int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
            //  Overwrite, then cut: a reader never sees an empty file.
            if (pwrite(fd, pid, (size_t)len, 0) != len || ftruncate(fd, len) != 0) {
                int rc = errno ? errno : EIO;
                close(fd);
                return rc;
            }
            self->lock_fd = fd;
            return 0;
        }
        close(fd);
    }
    return EBUSY;
}

//  Removes the lock file (if it is still ours), then releases the lock.
static void s_lock_release(tern_store_t *self) {
    if (self->lock_fd < 0) {
        return;
    }
    char path[PATH_MAX + sizeof TERN_STORE_LOCK_FILE + 1];
    s_lock_path(self->dir, path, sizeof path);
    if (s_same_file(self->lock_fd, path)) {
        unlink(path);
    }
    close(self->lock_fd);
    self->lock_fd = -1;
}

long tern_store_lock_holder(const char *dir) {
    char path[PATH_MAX + sizeof TERN_STORE_LOCK_FILE + 1];
    s_lock_path(dir, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    char text[32];
    ssize_t len = read(fd, text, sizeof text - 1);
    close(fd);
    text[len > 0 ? len : 0] = 0;
    long pid = strtol(text, NULL, 10);
    return pid > 0 ? pid : 0;
}

//  The on-disk layout: a data directory of another format is refused at open
//  rather than misread. Format 1 (no marker) had a global-seq log with a
//  topic index (`tindex`) and a time index of dedup entries (`dedup_time`).
//  Format 2 (marker 2) had `trace_msg` and 12-byte msgid values, and wrote
//  STORED events at append.
#define S_FORMAT_REFUSED (-30000) //  not an LMDB code (those are -30799..-30780)

//  Checks the format of the environment in TXN: *FORMAT gets the stored
//  marker (0 when there is none yet: a new store; set 1 for a format 1
//  store). Returns 0, S_FORMAT_REFUSED, or an LMDB error.
static int s_format_check(MDB_txn *txn, uint64_t *format) {
    MDB_dbi main_dbi, meta;
    *format = 0;
    int rc = mdb_dbi_open(txn, NULL, 0, &main_dbi);
    if (rc) {
        return rc;
    }
    //  Named databases are keys of the main database.
    MDB_val k = {6, (void *)"tindex"}, v;
    rc = mdb_get(txn, main_dbi, &k, &v);
    if (rc == 0) {
        *format = 1;
        return S_FORMAT_REFUSED;
    }
    if (rc != MDB_NOTFOUND) {
        return rc;
    }
    rc = mdb_dbi_open(txn, "meta", 0, &meta);
    if (rc == MDB_NOTFOUND) {
        return 0; //  a new store
    }
    if (rc == 0) {
        rc = s_get_u64(txn, meta, S_META_FORMAT, format);
        if (rc == MDB_NOTFOUND) {
            *format = 0;
            return 0; //  created but never committed with a marker
        }
        if (rc == 0 && *format != TERN_STORE_FORMAT) {
            return S_FORMAT_REFUSED;
        }
    }
    return rc;
}

static uint64_t s_round_pages(uint64_t size, uint64_t page) {
    return (size + page - 1) / page * page;
}

tern_store_t *tern_store_new(const tern_store_config_t *config, tern_err_t *err) {
    tern_err_t sink;
    err = err ? err : &sink;
    *err = TERN_ECONFIG;
    if (!config || !config->dir || !*config->dir ||
        strlen(config->dir) >= sizeof((tern_store_t *)0)->dir ||
        config->durability > TERN_DURABILITY_NONE ||
        (config->map_max && config->map_initial > config->map_max)) {
        return NULL;
    }
    tern_store_t *self = calloc(1, sizeof *self);
    if (!self) {
        *err = TERN_ENOMEM;
        return NULL;
    }
    self->lock_fd = -1;
    self->config = *config;
    strcpy(self->dir, config->dir);
    self->config.dir = self->dir;
    tern_store_config_t defaults;
    tern_store_config_defaults(&defaults);
    if (!self->config.map_initial) {
        self->config.map_initial = defaults.map_initial;
    }
    if (!self->config.map_max) {
        self->config.map_max = defaults.map_max > self->config.map_initial
                                   ? defaults.map_max
                                   : self->config.map_initial;
    }
    if (!self->config.max_topics) {
        self->config.max_topics = defaults.max_topics;
    }
    if (!self->config.max_readers) {
        self->config.max_readers = defaults.max_readers;
    }
    long page = sysconf(_SC_PAGESIZE);
    self->page_size = page > 0 ? (uint64_t)page : 4096;
    self->map_max = s_round_pages(self->config.map_max, self->page_size);
    uint64_t initial = s_round_pages(self->config.map_initial, self->page_size);
    uint64_t reserve = self->map_max / 16;
    reserve = reserve < S_RESERVE_MIN ? S_RESERVE_MIN : reserve;
    reserve = reserve > S_RESERVE_MAX ? S_RESERVE_MAX : reserve;
    reserve = s_round_pages(reserve, self->page_size);
    self->map_soft = self->map_max > 2 * reserve ? self->map_max - reserve : self->map_max / 2;
    self->map_soft = self->map_soft / self->page_size * self->page_size;
    initial = initial < self->map_soft ? initial : self->map_soft;

    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    //  A waiting resize must not starve behind a stream of readers.
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&self->lock, &attr);
    pthread_rwlockattr_destroy(&attr);

    *err = TERN_ESTORAGE;
    int sys_errno = s_mkdir_p(self->dir);
    if (sys_errno == 0) {
        sys_errno = s_lock_take(self);
        *err = sys_errno == EBUSY ? TERN_EBUSY : *err;
    }
    if (sys_errno) {
        goto fail;
    }
    int rc = mdb_env_create(&self->env);
    if (rc) {
        self->env = NULL;
        goto fail;
    }
    unsigned flags = MDB_NOTLS;
    if (self->config.durability == TERN_DURABILITY_BATCH) {
        flags |= MDB_NOMETASYNC;
    } else if (self->config.durability == TERN_DURABILITY_NONE) {
        flags |= MDB_NOSYNC;
    }
    if ((rc = mdb_env_set_maxdbs(self->env, S_DBI_COUNT + 2)) ||
        (rc = mdb_env_set_maxreaders(self->env, self->config.max_readers)) ||
        (rc = mdb_env_set_mapsize(self->env, (size_t)initial)) ||
        (rc = mdb_env_open(self->env, self->dir, flags, 0644))) {
        *err = s_err(rc);
        sys_errno = rc > 0 ? rc : 0; //  LMDB passes system errors through
        goto fail;
    }
    int dead = 0;
    mdb_reader_check(self->env, &dead);
    MDB_envinfo info;
    mdb_env_info(self->env, &info);
    atomic_store(&self->map_size, (uint64_t)info.me_mapsize);

    MDB_txn *txn;
    if ((rc = mdb_txn_begin(self->env, NULL, 0, &txn))) {
        *err = s_err(rc);
        goto fail;
    }
    uint64_t format = 0;
    if ((rc = s_format_check(txn, &format))) {
        mdb_txn_abort(txn);
        if (rc == S_FORMAT_REFUSED) {
            fprintf(stderr,
                    "tern_store: %s holds store format %llu, this build reads format %d "
                    "(the log is keyed by topic and seq since format 2; msgid carries the "
                    "trace history and STORED events are written at removal since format 3): "
                    "refusing to open it; drain it with the old version or start from an "
                    "empty data directory\n",
                    self->dir, (unsigned long long)format, TERN_STORE_FORMAT);
            *err = TERN_ECORRUPT;
        } else {
            *err = s_err(rc);
        }
        goto fail;
    }
    for (int i = 0; i < S_DBI_COUNT && rc == 0; i++) {
        rc = mdb_dbi_open(txn, s_dbi_names[i], MDB_CREATE, &self->dbi[i]);
    }
    if (rc == 0 && !format) {
        rc = s_put_u64(txn, self->dbi[S_META], S_META_FORMAT, TERN_STORE_FORMAT);
    }
    //  Writer state: the persisted counters.
    if (rc == 0) {
        rc = s_get_u64(txn, self->dbi[S_META], S_META_OUTBOX_LAST, &self->outbox_last);
        rc = rc == MDB_NOTFOUND ? 0 : rc;
    }
    if (rc == 0) {
        rc = s_get_u64(txn, self->dbi[S_META], S_META_TOPIC_NEXT, &self->topic_next);
        rc = rc == MDB_NOTFOUND ? 0 : rc;
    }
    if (rc == 0) {
        rc = s_get_u64(txn, self->dbi[S_META], S_META_TRACE_NEXT, &self->trace_next);
        rc = rc == MDB_NOTFOUND ? 0 : rc;
    }
    MDB_stat st;
    if (rc == 0 && (rc = mdb_stat(txn, self->dbi[S_TOPICS], &st)) == 0) {
        atomic_store(&self->topics, (uint32_t)st.ms_entries);
    }
    if (rc == 0 && (rc = mdb_stat(txn, self->dbi[S_DEDUP], &st)) == 0) {
        atomic_store(&self->dedup_entries, (uint64_t)st.ms_entries);
    }
    if (rc == 0) {
        rc = mdb_txn_commit(txn);
    } else {
        mdb_txn_abort(txn);
    }
    if (rc) {
        *err = s_err(rc);
        goto fail;
    }
    *err = TERN_OK;
    return self;

fail:
    if (self->env) {
        mdb_env_close(self->env);
    }
    s_lock_release(self);
    pthread_rwlock_destroy(&self->lock);
    free(self);
    errno = sys_errno;
    return NULL;
}

void tern_store_destroy(tern_store_t **self_p) {
    if (!self_p || !*self_p) {
        return;
    }
    tern_store_t *self = *self_p;
    mdb_env_sync(self->env, 1);
    mdb_env_close(self->env);
    s_lock_release(self); //  after LMDB: the lock covers the environment's whole life
    pthread_rwlock_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

void tern_store_stats(tern_store_t *self, tern_store_stats_t *out) {
    memset(out, 0, sizeof *out);
    if (!self) {
        return;
    }
    MDB_envinfo info;
    MDB_stat st;
    if (mdb_env_info(self->env, &info) == 0 && mdb_env_stat(self->env, &st) == 0) {
        out->map_used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    }
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/data.mdb", self->dir);
    struct stat fst;
    if (stat(path, &fst) == 0) {
        out->file_bytes = (uint64_t)fst.st_size;
    }
    out->map_size = atomic_load_explicit(&self->map_size, memory_order_relaxed);
    out->commits = atomic_load_explicit(&self->commits, memory_order_relaxed);
    out->map_grows = atomic_load_explicit(&self->map_grows, memory_order_relaxed);
    out->full_errors = atomic_load_explicit(&self->full_errors, memory_order_relaxed);
    out->corrupt_records = atomic_load_explicit(&self->corrupt_records, memory_order_relaxed);
    out->expired = atomic_load_explicit(&self->expired, memory_order_relaxed);
    out->retention_trimmed = atomic_load_explicit(&self->retention_trimmed, memory_order_relaxed);
    out->outbox_dropped = atomic_load_explicit(&self->outbox_dropped, memory_order_relaxed);
    out->dedup_entries = atomic_load_explicit(&self->dedup_entries, memory_order_relaxed);
    out->topics = atomic_load_explicit(&self->topics, memory_order_relaxed);
    out->superseded = atomic_load_explicit(&self->superseded, memory_order_relaxed);
}

int tern_store_reader_check(tern_store_t *self) {
    int dead = 0;
    if (self) {
        mdb_reader_check(self->env, &dead);
    }
    return dead;
}

/* ------------------------------------------------------------------------
    Readers
   ------------------------------------------------------------------------ */

struct tern_store_reader_t {
    tern_store_t *store;            //  our store
    MDB_txn *txn;                   //  read transaction, reset between uses
    bool active;                    //  between read_begin and read_end
    uint32_t topic_id;              //  last topic id resolved (ids are never reused)
    char topic[TERN_TOPIC_MAX + 1]; //  its name
};

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

#define S_READER_CHECK(self)                                                                       \
    do {                                                                                           \
        if (!(self) || !(self)->active) {                                                          \
            return TERN_ESTATE;                                                                    \
        }                                                                                          \
    } while (0)

tern_err_t tern_store_get_u64(tern_store_reader_t *self, const char *name, uint64_t *value) {
    S_READER_CHECK(self);
    if (!name || !*name) {
        return TERN_EINVAL;
    }
    return s_err(s_get_u64(self->txn, self->store->dbi[S_META], name, value));
}

static tern_err_t s_topic_info(const MDB_val *k, const MDB_val *v, tern_topic_info_t *out) {
    if (v->mv_size != sizeof(s_topic_rec_t) || k->mv_size == 0 || k->mv_size > TERN_TOPIC_MAX) {
        return TERN_ECORRUPT;
    }
    s_topic_rec_t rec;
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
    MDB_cursor *cur;
    int rc = mdb_cursor_open(self->txn, self->store->dbi[S_TOPICS], &cur);
    if (rc) {
        return s_err(rc);
    }
    tern_err_t err = TERN_OK;
    MDB_val k, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0) {
        tern_topic_info_t info;
        if ((err = s_topic_info(&k, &v, &info))) {
            break;
        }
        if (!fn(&info, arg)) {
            break;
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (err == TERN_OK && rc && rc != MDB_NOTFOUND) {
        err = s_err(rc);
    }
    return err;
}

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
    s_record_t rec;
    tern_err_t err = s_record_parse(&v, true, &rec);
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
    s_record_frame(&rec, out);
    strcpy(out->topic, topic);
    return TERN_OK;
}

tern_err_t tern_store_read_next(tern_store_reader_t *self, uint32_t topic_id, uint64_t from_seq,
                                tern_frame_t *out) {
    S_READER_CHECK(self);
    MDB_cursor *cur;
    int rc = mdb_cursor_open(self->txn, self->store->dbi[S_LOG], &cur);
    if (rc) {
        return s_err(rc);
    }
    uint8_t key[12];
    s_be32_put(key, topic_id);
    s_be64_put(key + 4, from_seq);
    MDB_val k = {12, key}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    uint64_t seq = 0;
    if (rc == 0 && k.mv_size == 12 && s_be32_get(k.mv_data) == topic_id) {
        seq = s_be64_get((uint8_t *)k.mv_data + 4);
    }
    mdb_cursor_close(cur);
    if (rc && rc != MDB_NOTFOUND) {
        return s_err(rc);
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
    //  Binary search; timestamps grow with seq (receive time).
    uint64_t lo = info.first_seq, hi = info.last_seq + 1;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        tern_frame_t msg;
        err = tern_store_read_next(self, topic_id, mid, &msg);
        if (err && err != TERN_ENOTFOUND) {
            return err;
        }
        if (err == TERN_ENOTFOUND || msg.seq > info.last_seq || msg.timestamp_ns >= at_ns) {
            hi = mid;
        } else {
            lo = msg.seq + 1;
        }
    }
    *seq = lo;
    return TERN_OK;
}

//  The msgid entry of MSG_ID into *VAL (borrowed until read_end).
static tern_err_t s_msgid_get(tern_store_reader_t *self, uint64_t msg_id, const uint8_t **val) {
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
    tern_err_t err = s_msgid_get(self, msg_id, &val);
    if (err) {
        return err;
    }
    if (val[M_FLAGS] & S_MSGID_REMOVED) {
        return TERN_ENOTFOUND; //  only its history is left
    }
    *topic_id = s_be32_get(val + M_TOPIC);
    *seq = s_be64_get(val + M_SEQ);
    return TERN_OK;
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
    MDB_cursor *cur;
    int rc = mdb_cursor_open(self->txn, self->store->dbi[S_PRIO], &cur);
    if (rc) {
        return s_err(rc);
    }
    uint8_t key[13];
    s_be32_put(key, topic_id);
    key[4] = priority;
    s_be64_put(key + 5, from_seq);
    MDB_val k = {13, key}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && *count < max && k.mv_size == 13 && !memcmp(k.mv_data, key, 5)) {
        seqs[(*count)++] = s_be64_get((uint8_t *)k.mv_data + 5);
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    return rc && rc != MDB_NOTFOUND ? s_err(rc) : TERN_OK;
}

//  Fills OUT from group record K/V, computing next_unacked: the lowest seq
//  still pending or not yet delivered (the first message at or after each
//  lane's cursor); last_seq + 1 when there is none. The ack floor is the seq
//  before it (JetStream's meaning: every seq up to it is settled).
static tern_err_t s_group_info(tern_store_reader_t *self, const MDB_val *k, const MDB_val *v,
                               tern_group_info_t *out) {
    if (v->mv_size != sizeof(s_group_rec_t) || k->mv_size <= 4 || k->mv_size > 4 + TERN_NAME_MAX) {
        return TERN_ECORRUPT;
    }
    s_group_rec_t rec;
    memcpy(&rec, v->mv_data, sizeof rec);
    memset(out, 0, sizeof *out);
    out->topic_id = s_be32_get(k->mv_data);
    memcpy(out->name, (uint8_t *)k->mv_data + 4, k->mv_size - 4);
    out->name[k->mv_size - 4] = 0;
    memcpy(out->lane_next, rec.lane_next, sizeof out->lane_next);
    out->pending = rec.pending;
    out->dead = rec.dead;
    out->delivered = rec.delivered;
    out->redelivered = rec.redelivered;
    out->acked = rec.acked;
    out->nacked = rec.nacked;
    out->created_ns = rec.created_ns;

    tern_topic_info_t topic;
    tern_err_t err = tern_store_topic_get_id(self, out->topic_id, &topic);
    uint64_t floor = err == TERN_OK ? topic.last_seq + 1 : UINT64_MAX;
    for (int lane = 0; lane <= TERN_PRIORITY_MAX; lane++) {
        uint64_t seq;
        size_t n = 0;
        err = tern_store_lane_scan(self, out->topic_id, (uint8_t)lane, rec.lane_next[lane], &seq, 1,
                                   &n);
        if (err) {
            return err;
        }
        if (n && seq < floor) {
            floor = seq;
        }
    }
    MDB_cursor *cur;
    int rc = mdb_cursor_open(self->txn, self->store->dbi[S_PENDING], &cur);
    if (rc) {
        return s_err(rc);
    }
    uint8_t key[S_ENTRY_KEY_MAX];
    size_t plen = s_entry_key(key, out->topic_id, out->name, k->mv_size - 4, 0, false);
    MDB_val pk = {plen, key}, pv;
    rc = mdb_cursor_get(cur, &pk, &pv, MDB_SET_RANGE);
    if (rc == 0 && pk.mv_size == plen + 8 && !memcmp(pk.mv_data, key, plen)) {
        uint64_t seq = s_be64_get((uint8_t *)pk.mv_data + plen);
        if (seq < floor) {
            floor = seq;
        }
    }
    mdb_cursor_close(cur);
    if (rc && rc != MDB_NOTFOUND) {
        return s_err(rc);
    }
    if (floor == UINT64_MAX) {
        //  Topic gone: fall back to the lowest lane cursor.
        for (int lane = 0; lane <= TERN_PRIORITY_MAX; lane++) {
            if (rec.lane_next[lane] < floor) {
                floor = rec.lane_next[lane];
            }
        }
    }
    out->next_unacked = floor;
    out->ack_floor = floor ? floor - 1 : 0;
    return TERN_OK;
}

tern_err_t tern_store_group_get(tern_store_reader_t *self, uint32_t topic_id, const char *name,
                                tern_group_info_t *out) {
    S_READER_CHECK(self);
    size_t len = s_name_len(name, TERN_NAME_MAX);
    if (len == 0 || len > TERN_NAME_MAX) {
        return TERN_ENAME;
    }
    uint8_t key[S_GROUP_KEY_MAX];
    s_be32_put(key, topic_id);
    memcpy(key + 4, name, len);
    MDB_val k = {4 + len, key}, v;
    int rc = mdb_get(self->txn, self->store->dbi[S_GROUPS], &k, &v);
    if (rc) {
        return s_err(rc);
    }
    return s_group_info(self, &k, &v, out);
}

tern_err_t tern_store_group_list(tern_store_reader_t *self, uint32_t topic_id, tern_group_fn *fn,
                                 void *arg) {
    S_READER_CHECK(self);
    MDB_cursor *cur;
    int rc = mdb_cursor_open(self->txn, self->store->dbi[S_GROUPS], &cur);
    if (rc) {
        return s_err(rc);
    }
    uint8_t prefix[4];
    s_be32_put(prefix, topic_id);
    MDB_val k = {4, prefix}, v;
    rc = mdb_cursor_get(cur, &k, &v, topic_id ? MDB_SET_RANGE : MDB_FIRST);
    tern_err_t err = TERN_OK;
    while (rc == 0 && (!topic_id || (k.mv_size > 4 && !memcmp(k.mv_data, prefix, 4)))) {
        tern_group_info_t info;
        if ((err = s_group_info(self, &k, &v, &info))) {
            break;
        }
        if (!fn(&info, arg)) {
            break;
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (err == TERN_OK && rc && rc != MDB_NOTFOUND) {
        err = s_err(rc);
    }
    return err;
}

//  A pending or DLQ entry (key K: topic, group, NUL, BE64 seq) into OUT.
static tern_err_t s_entry_parse(const MDB_val *k, const MDB_val *v, tern_entry_t *out) {
    if (v->mv_size < S_ENTRY_SIZE || v->mv_size > S_ENTRY_SIZE + TERN_REASON_MAX ||
        k->mv_size < 8) {
        return TERN_ECORRUPT;
    }
    const uint8_t *p = v->mv_data;
    out->seq = s_be64_get((const uint8_t *)k->mv_data + k->mv_size - 8);
    out->delivery_count = s_le32_get(p);
    out->priority = p[4];
    out->due_ms = s_le64_get(p + 8);
    memcpy(out->reason, p + S_ENTRY_SIZE, v->mv_size - S_ENTRY_SIZE);
    out->reason[v->mv_size - S_ENTRY_SIZE] = 0;
    return TERN_OK;
}

static tern_err_t s_entry_list(tern_store_reader_t *self, int dbi, uint32_t topic_id,
                               const char *group, tern_entry_fn *fn, void *arg) {
    S_READER_CHECK(self);
    size_t len = s_name_len(group, TERN_NAME_MAX);
    if (len == 0 || len > TERN_NAME_MAX) {
        return TERN_ENAME;
    }
    uint8_t key[S_ENTRY_KEY_MAX];
    size_t plen = s_entry_key(key, topic_id, group, len, 0, false);
    MDB_cursor *cur;
    int rc = mdb_cursor_open(self->txn, self->store->dbi[dbi], &cur);
    if (rc) {
        return s_err(rc);
    }
    tern_err_t err = TERN_OK;
    MDB_val k = {plen, key}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size == plen + 8 && !memcmp(k.mv_data, key, plen)) {
        tern_entry_t entry;
        if ((err = s_entry_parse(&k, &v, &entry))) {
            break;
        }
        if (!fn(&entry, arg)) {
            break;
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (err == TERN_OK && rc && rc != MDB_NOTFOUND) {
        err = s_err(rc);
    }
    return err;
}

tern_err_t tern_store_pending_list(tern_store_reader_t *self, uint32_t topic_id, const char *group,
                                   tern_entry_fn *fn, void *arg) {
    return s_entry_list(self, S_PENDING, topic_id, group, fn, arg);
}

tern_err_t tern_store_dlq_list(tern_store_reader_t *self, uint32_t topic_id, const char *group,
                               tern_entry_fn *fn, void *arg) {
    return s_entry_list(self, S_DLQ, topic_id, group, fn, arg);
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
    return rc ? s_err(rc) : s_entry_parse(&k, &v, out);
}

tern_err_t tern_store_outbox_read(tern_store_reader_t *self, uint64_t from, size_t max,
                                  tern_outbox_fn *fn, void *arg) {
    S_READER_CHECK(self);
    MDB_cursor *cur;
    int rc = mdb_cursor_open(self->txn, self->store->dbi[S_OUTBOX], &cur);
    if (rc) {
        return s_err(rc);
    }
    uint8_t key[8];
    s_be64_put(key, from);
    MDB_val k = {8, key}, v;
    tern_err_t err = TERN_OK;
    size_t seen = 0;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && seen < max) {
        const uint8_t *p = v.mv_data;
        if (k.mv_size != 8 || v.mv_size < S_OUTBOX_HDR || p[1] > TERN_NAME_MAX ||
            v.mv_size != (size_t)S_OUTBOX_HDR + p[1]) {
            err = TERN_ECORRUPT;
            break;
        }
        tern_outbox_entry_t entry;
        memset(&entry, 0, sizeof entry);
        entry.position = s_be64_get(k.mv_data);
        entry.is_ackstate = p[0] == 1;
        entry.topic_id = s_le32_get(p + 4);
        entry.seq = s_le64_get(p + 8);
        entry.msg_id = s_le64_get(p + 16);
        entry.op = s_le32_get(p + 24);
        entry.at_ns = s_le64_get(p + 32);
        memcpy(entry.group, p + S_OUTBOX_HDR, p[1]);
        entry.group[p[1]] = 0;
        seen++;
        if (!fn(&entry, arg)) {
            break;
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (err == TERN_OK && rc && rc != MDB_NOTFOUND) {
        err = s_err(rc);
    }
    return err;
}

tern_err_t tern_store_outbox_last(tern_store_reader_t *self, uint64_t *position) {
    S_READER_CHECK(self);
    *position = 0;
    int rc = s_get_u64(self->txn, self->store->dbi[S_META], S_META_OUTBOX_LAST, position);
    return rc == MDB_NOTFOUND ? TERN_OK : s_err(rc);
}

tern_err_t tern_store_outbox_confirmed(tern_store_reader_t *self, const char *peer,
                                       uint64_t *position) {
    S_READER_CHECK(self);
    *position = 0;
    if (!peer || !*peer) {
        return TERN_EINVAL;
    }
    int rc = s_get_u64(self->txn, self->store->dbi[S_PEERS], peer, position);
    return rc == MDB_NOTFOUND ? TERN_OK : s_err(rc);
}

tern_err_t tern_store_inbound_get(tern_store_reader_t *self, const char *origin,
                                  uint64_t *position) {
    S_READER_CHECK(self);
    *position = 0;
    if (!origin || !*origin) {
        return TERN_EINVAL;
    }
    int rc = s_get_u64(self->txn, self->store->dbi[S_INBOUND], origin, position);
    return rc == MDB_NOTFOUND ? TERN_OK : s_err(rc);
}

/* ------------------------------------------------------------------------
    Record decoding without a transaction (fuzzing, tools)
   ------------------------------------------------------------------------ */

tern_err_t tern_store_record_decode(const uint8_t *data, size_t size, bool verify,
                                    uint32_t *topic_id, tern_frame_t *out) {
    MDB_val v = {size, (void *)data};
    s_record_t rec;
    tern_err_t err = data ? s_record_parse(&v, verify, &rec) : TERN_ECORRUPT;
    if (err != TERN_OK) {
        return err;
    }
    s_record_frame(&rec, out);
    *topic_id = rec.topic_id;
    return TERN_OK;
}

/* ------------------------------------------------------------------------
    Trace events: each message's history (stored, delivered, acked, nacked,
    dead, replayed, replicated, expired), written in the same transaction as
    the change it records, so the history can never disagree with the state.
    Kept trace_retention after the message was stored (swept by msg_id order,
    which is time order), independent of the message itself: audit and trace
    still see a message that expired or was acked and purged.
   ------------------------------------------------------------------------ */

#define S_TRACE_HDR                                                                                \
    32 //  u8 type, u8 group len, u8 detail len, u8 pad, u32 count,
       //  u64 at_ns, u64 msg_id, u64 expire_at_ns; then group, detail

//  Writes one event with key stamp STAMP and value time AT_NS (GLEN, DLEN:
//  the lengths of GROUP and DETAIL, which need no NUL).
static int s_trace_put_at(s_txn_t *ctx, uint32_t topic_id, uint64_t seq, uint64_t stamp,
                          uint64_t at_ns, uint8_t type, const char *group, size_t glen,
                          uint32_t count, const char *detail, size_t dlen, uint64_t msg_id,
                          uint64_t expire_at_ns) {
    glen = glen > TERN_NAME_MAX ? TERN_NAME_MAX : glen;
    dlen = dlen > TERN_TRACE_DETAIL_MAX ? TERN_TRACE_DETAIL_MAX : dlen;
    uint8_t key[20], val[S_TRACE_HDR + TERN_NAME_MAX + TERN_TRACE_DETAIL_MAX];
    s_be32_put(key, topic_id);
    s_be64_put(key + 4, seq);
    s_be64_put(key + 12, stamp);
    val[0] = type;
    val[1] = (uint8_t)glen;
    val[2] = (uint8_t)dlen;
    val[3] = 0;
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
    MDB_val k = {20, key}, v = {S_TRACE_HDR + glen + dlen, val};
    //  A first delivery of the newest messages is usually the last key.
    return type == TERN_TRACE_DELIVERED && count == 1
               ? s_put_tail(ctx->txn, ctx->dbi[S_TRACE], &k, &v, 0)
               : mdb_put(ctx->txn, ctx->dbi[S_TRACE], &k, &v, 0);
}

static int s_trace_put(s_txn_t *ctx, uint32_t topic_id, uint64_t seq, uint8_t type,
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
    return s_trace_put_at(ctx, topic_id, seq, stamp, ctx->now_ns, type, group, glen, count, detail,
                          dlen, msg_id, expire_at_ns);
}

//  Confirmation times (when each peer's confirmed outbox position moved,
//  for REPLICATED in trace): the position only grows and is recorded with
//  the commit time, so each peer's entries are in time order. Written only
//  when trace is on (and not in the storage-full retry); swept
//  trace_retention after they were recorded. PREVIOUS, the position the
//  peer had confirmed before, tells a reader whether an entry is the one
//  that first covered a position or a gap went unrecorded.
static int s_trace_confirm(s_txn_t *ctx, const char *peer, uint64_t position, uint64_t previous) {
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
static int s_sweep_trace_conf(s_txn_t *ctx, uint64_t cutoff, uint64_t budget) {
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
static int s_sweep_trace(s_txn_t *ctx, uint64_t now_ns, uint64_t budget) {
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
                if ((rc = s_del_prefix(ctx, ctx->dbi[S_TRACE], val, 12, NULL))) {
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

void tern_store_batch_deliver_to(tern_store_batch_t *self, uint32_t topic_id, const char *group,
                                 uint64_t seq, uint8_t priority, uint32_t delivery_count,
                                 uint64_t due_ms, const char *consumer) {
    tern_store_batch_deliver(self, topic_id, group, seq, priority, delivery_count, due_ms);
    if (consumer && *consumer) {
        s_op_t *op = &self->ops[self->count - 1];
        op->reason = tern_strndup(consumer, TERN_TRACE_DETAIL_MAX);
    }
}

void tern_store_batch_ack_as(tern_store_batch_t *self, uint32_t topic_id, const char *group,
                             uint64_t seq, tern_trace_type_t type) {
    s_op_t *op = s_group_op(self, OP_ACK, topic_id, group, seq);
    op->u32 = (uint32_t)type;
}

void tern_store_batch_nack_as(tern_store_batch_t *self, uint32_t topic_id, const char *group,
                              uint64_t seq, uint64_t due_ms, tern_trace_type_t type) {
    s_op_t *op = s_group_op(self, OP_NACK, topic_id, group, seq);
    op->b = due_ms;
    op->u32 = (uint32_t)type;
}

void tern_store_batch_trace(tern_store_batch_t *self, uint32_t topic_id, uint64_t seq,
                            tern_trace_type_t type, const char *group, const char *detail) {
    s_op_t *op = s_group_op(self, OP_TRACE, topic_id, group ? group : "", seq);
    op->u32 = (uint32_t)type;
    if (detail && *detail) {
        op->reason = tern_strndup(detail, TERN_TRACE_DETAIL_MAX);
    }
}

//  The msgid entry of MSG_ID while history is kept for it: trace on, not
//  swept (the message may be stored or removed).
static tern_err_t s_msgid_history(tern_store_reader_t *self, uint64_t msg_id, const uint8_t **val) {
    if (!self->store->config.trace_retention_ms) {
        return TERN_ENOTFOUND;
    }
    tern_err_t err = s_msgid_get(self, msg_id, val);
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
    MDB_cursor *cur;
    int rc = mdb_cursor_open(self->txn, self->store->dbi[S_TRACE_CONF], &cur);
    if (rc) {
        return s_err(rc);
    }
    //  The first recorded confirmation of PEER at or past POSITION; it is
    //  the one that covered POSITION only if the peer's previous confirmed
    //  position was below it (else that one was not recorded).
    MDB_val k = {plen + 9, key}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    tern_err_t err = TERN_ENOTFOUND;
    if (rc == 0 && k.mv_size == plen + 9 && memcmp(k.mv_data, key, plen + 1) == 0) {
        if (v.mv_size != 16) {
            err = TERN_ECORRUPT;
        } else if (s_le64_get((uint8_t *)v.mv_data + 8) < position) {
            *at_ns = s_le64_get(v.mv_data);
            err = TERN_OK;
        }
    } else if (rc && rc != MDB_NOTFOUND) {
        err = s_err(rc);
    }
    mdb_cursor_close(cur);
    return err;
}

//  The STORED event of the stored record V (log key topic + seq), made from
//  the record and its msgid entry (at_ns: the append's commit time, which
//  s_msgid_release also writes when the message leaves). False when it has
//  none: no msg_id, damaged, or its history was swept.
static bool s_stored_event(tern_store_reader_t *self, uint32_t topic_id, uint64_t seq,
                           const MDB_val *v, tern_trace_event_t *ev) {
    s_record_t rec;
    const uint8_t *val;
    if (s_record_parse(v, false, &rec) != TERN_OK || !rec.msg_id ||
        s_msgid_get(self, rec.msg_id, &val) != TERN_OK || s_be32_get(val + M_TOPIC) != topic_id ||
        s_be64_get(val + M_SEQ) != seq || (val[M_FLAGS] & (S_MSGID_SWEPT | S_MSGID_REMOVED))) {
        return false;
    }
    const char *trace_id, *origin;
    size_t trlen, olen;
    s_record_trace(&rec, &trace_id, &trlen, &origin, &olen);
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
tern_err_t tern_store_trace_scan(tern_store_reader_t *self, uint32_t topic_id, uint64_t from_seq,
                                 uint64_t to_seq, tern_trace_fn *fn, void *arg) {
    S_READER_CHECK(self);
    bool synth = self->store->config.trace_retention_ms > 0; //  else no STORED is made
    uint8_t key[20], lkey[12];
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
    MDB_val k = {20, key}, v, lk = {12, lkey}, lv;
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
        const uint8_t *p = v.mv_data;
        ev.seq = tseq;
        if (ev.seq > to_seq) {
            break;
        }
        if (v.mv_size < S_TRACE_HDR || v.mv_size != S_TRACE_HDR + (size_t)p[1] + p[2] ||
            p[1] > TERN_NAME_MAX || p[2] > TERN_TRACE_DETAIL_MAX) {
            err = TERN_ECORRUPT;
            break;
        }
        ev.type = p[0];
        ev.topic_id = topic_id;
        ev.delivery_count = s_le32_get(p + 4);
        ev.at_ns = s_le64_get(p + 8);
        ev.msg_id = s_le64_get(p + 16);
        ev.expire_at_ns = s_le64_get(p + 24);
        memcpy(ev.group, p + S_TRACE_HDR, p[1]);
        ev.group[p[1]] = 0;
        memcpy(ev.detail, p + S_TRACE_HDR + p[1], p[2]);
        ev.detail[p[2]] = 0;
        if (!fn(&ev, arg)) {
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
