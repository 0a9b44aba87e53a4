/*  tern_store_int.h - what the files of storage/ share: the databases, the
    on-disk layouts, the batch and transaction structs, small inline codecs.

    Private to storage/: nothing outside this folder includes it (the public
    API is tern_store.h). docs/storage.md has the file map and the formats.
    Naming: st_<verb> functions are shared between the files of storage/ and
    declared here; each file's own helpers stay static s_<verb>; the inline
    helpers below keep s_ names, as each file gets its own static copy.
    Every st_ function that takes an st_txn_t returns an LMDB error code (0
    on success; the caller aborts the transaction on any other value).
*/
#ifndef TERN_STORE_INT_H_INCLUDED
#define TERN_STORE_INT_H_INCLUDED

#include "tern_alloc.h"
#include "tern_store.h"

#include <errno.h>
#include <limits.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "tern storage records are little-endian; port s_put*/s_get* first"
#endif

/*  Named databases. Keys marked BE are big-endian so LMDB's memcmp order is
    numeric order. Their names (in this order) are in tern_store.c. */
enum {
    S_META,       //  name -> u64 (LE)
    S_TOPICS,     //  topic name -> st_topic_rec_t
    S_TOPIC_IDS,  //  topic id BE32 -> topic name
    S_LOG,        //  topic BE32 + seq BE64 -> record (MDB_APPEND for the newest topic)
    S_PRIO,       //  topic BE32 + priority u8 + seq BE64 -> empty
    S_MSGID,      //  msg_id BE64 -> msgid value (S_MSGID_SIZE), also history of removed ones
    S_DEDUP,      //  producer + NUL + producer_seq BE64 -> dedup value (S_DEDUP_SIZE)
    S_DEDUP_PROD, //  producer -> entry count (LE64), written once per commit
    S_EXPIRY,     //  expire_at_ns BE64 + topic BE32 + seq BE64 -> empty
    S_GROUPS,     //  topic BE32 + group name -> st_group_rec_t
    S_PENDING,    //  topic BE32 + group + NUL + seq BE64 -> entry
    S_DLQ,        //  topic BE32 + group + NUL + seq BE64 -> entry + reason
    S_OUTBOX,     //  position BE64 -> outbox entry (MDB_APPEND)
    S_PEERS,      //  peer name -> confirmed position (LE64)
    S_INBOUND,    //  origin name -> applied position (LE64)
    S_TRACE,      //  topic BE32 + seq BE64 + event stamp BE64 -> trace event
    S_TRACE_CONF, //  peer + NUL + confirmed BE64 -> recorded at_ns LE64 + previous LE64
    S_OUTBOX_PT,  //  cluster: partition BE32 + position BE64 -> outbox entry
    S_PEERS_PT,   //  cluster: peer + NUL + partition BE32 -> confirmed position (LE64)
    S_DBI_COUNT
};

//  Bytes of an S_TRACE key: topic BE32, seq BE64, event stamp BE64.
#define ST_TRACE_KEY 20

//  The writer state persisted in meta (besides "store.format").
#define S_META_OUTBOX_LAST "store.outbox_last"
//  Cluster: the last outbox position of partition PT is meta "store.outbox_last.PT".
#define S_META_OUTBOX_LAST_PT "store.outbox_last."
#define S_META_TOPIC_NEXT     "store.topic_last_id"
#define S_META_FORMAT         "store.format"
#define S_META_TRACE_NEXT     "store.trace_next"
//  A deleted topic whose data the reaper has not removed yet (LE64: its last
//  seq) is meta "store.doomed.<topic id, 8 lower-case hex digits>"
//  (tern_store_reap.c).
#define S_META_DOOMED "store.doomed."
//  The replica identity: a canonical UUID v4 string (36 bytes, no NUL), not
//  a u64 (tern_store.c, "The replica identity"); held with its NUL.
#define S_META_IDENTITY "store.identity"
#define S_IDENTITY_SIZE (TERN_STORE_IDENTITY_LEN + 1)

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

//  A topics value (host order, fixed size: its version says how to read it).
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
} st_topic_rec_t;

//  A groups value (same convention).
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
} st_group_rec_t;

//  The store: the environment and the writer state that outlives a commit.
struct tern_store_t {
    MDB_env *env;                          //  the environment
    MDB_dbi dbi[S_DBI_COUNT];              //  named databases
    tern_store_config_t config;            //  copy of the config (dir points to dir below)
    char dir[PATH_MAX];                    //  data directory
    int lock_fd;                           //  TERN_STORE_LOCK_FILE, flock'd; -1 when not held
    char identity[S_IDENTITY_SIZE];        //  the data directory's UUID (tern_store_identity)
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
    bool writemap;                         //  MDB_WRITEMAP in effect: the map's blocks reserved
    bool reserve_failing;                  //  the last reservation failed (logged once)
    _Atomic uint64_t map_size;             //  current map size
    _Atomic uint64_t commits;              //  stats
    _Atomic uint64_t map_grows;            //  stats
    _Atomic uint64_t reserve_refused;      //  stats: map reservations the disk refused
    _Atomic uint64_t full_errors;          //  stats
    _Atomic uint64_t corrupt_records;      //  stats
    _Atomic uint64_t expired;              //  stats
    _Atomic uint64_t retention_trimmed;    //  stats
    _Atomic uint64_t outbox_dropped;       //  stats
    _Atomic uint64_t dedup_entries;        //  stats
    _Atomic uint32_t topics;               //  stats
    _Atomic uint64_t superseded;           //  stats
    _Atomic bool sweep_more;               //  the last sweep left work its budget did not cover
    _Atomic uint64_t dooms;                //  topic deletes committed (readers drop cached names)
    _Atomic uint64_t folded;               //  stats: deliveries folded with their ack
    uint64_t *ob_last;                     //  cluster writer: last outbox pos per partition
    uint64_t *ob_work;                     //  ... the same as the current attempt moved it
    uint32_t *ob_dirty;                    //  ... the partitions the attempt moved
    size_t ob_dirty_count;                 //  ... how many
};

/*  A parsed log record: the fixed fields, BASE borrowed from the map (or
    the caller's buffer) for the rest. */
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
} st_record_t;

//  The string lengths of a message being appended (checked by the log).
typedef struct {
    size_t topic;    //  topic name
    size_t producer; //  producer id (0: no dedup)
    size_t key;      //  ordering key
    size_t trace;    //  trace id
    size_t origin;   //  origin dc
} st_lens_t;

/* ------------------------------------------------------------------------
    Small inline helpers: byte order, LMDB puts and deletes, names
   ------------------------------------------------------------------------ */

//  FNV-1a: folds the LEN bytes at P into hash H (begin with ST_FNV_BASIS).
#define ST_FNV_BASIS 2166136261u
static inline uint32_t st_fnv1a(uint32_t h, const void *p, size_t len) {
    const uint8_t *b = p;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ b[i]) * 16777619u;
    }
    return h;
}

static inline void s_be32_put(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void s_be64_put(uint8_t *p, uint64_t v) {
    s_be32_put(p, (uint32_t)(v >> 32));
    s_be32_put(p + 4, (uint32_t)v);
}

static inline uint32_t s_be32_get(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline uint64_t s_be64_get(const uint8_t *p) {
    return ((uint64_t)s_be32_get(p) << 32) | s_be32_get(p + 4);
}

static inline void s_le32_put(uint8_t *p, uint32_t v) {
    memcpy(p, &v, 4);
}

static inline void s_le64_put(uint8_t *p, uint64_t v) {
    memcpy(p, &v, 8);
}

static inline uint32_t s_le32_get(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline uint64_t s_le64_get(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint64_t s_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline tern_err_t s_err(int rc) {
    switch (rc) {
        case MDB_SUCCESS:
            return TERN_OK;
        case MDB_NOTFOUND:
            return TERN_ENOTFOUND;
        case MDB_MAP_FULL:
        case ENOSPC: //  the disk is full (a pwrite at commit): the store is full
        case EDQUOT:
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
static inline int s_del(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t key_len) {
    MDB_val k = {key_len, (void *)key};
    int rc = mdb_del(txn, dbi, &k, NULL);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

//  Puts with MDB_APPEND when KEY sorts after the last key of DBI (the common
//  case for ascending ids and the newest topic), else a normal put.
static inline int s_put_tail(MDB_txn *txn, MDB_dbi dbi, MDB_val *k, MDB_val *v, unsigned flags) {
    int rc = mdb_put(txn, dbi, k, v, flags | MDB_APPEND);
    return rc == MDB_KEYEXIST ? mdb_put(txn, dbi, k, v, flags) : rc;
}

static inline int s_put_u64(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t value) {
    uint8_t buf[8];
    s_le64_put(buf, value);
    MDB_val k = {strlen(name), (void *)name};
    MDB_val v = {8, buf};
    return mdb_put(txn, dbi, &k, &v, 0);
}

static inline int s_get_u64(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t *value) {
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
static inline size_t s_entry_key(uint8_t *key, uint32_t topic_id, const char *group,
                                 size_t group_len, uint64_t seq, bool with_seq) {
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

//  Builds a dedup key, producer (PLEN bytes) + NUL + producer_seq BE64, into
//  KEY (TERN_NAME_MAX + 9 bytes); returns its length.
static inline size_t s_dedup_key(uint8_t *key, const char *producer, size_t plen, uint64_t pseq) {
    memcpy(key, producer, plen);
    key[plen] = 0;
    s_be64_put(key + plen + 1, pseq);
    return plen + 9;
}

static inline size_t s_name_len(const char *name, size_t max) {
    return name ? strnlen(name, max + 1) : 0;
}

static inline void s_copy_name(char *dst, size_t cap, const char *src) {
    size_t len = src ? strnlen(src, cap - 1) : 0;
    if (len) {
        memcpy(dst, src, len);
    }
    dst[len] = 0;
}

/* ------------------------------------------------------------------------
    Cursor walks: the forward walks over a key range that do not re-seek
   ------------------------------------------------------------------------ */

/*  A forward walk over the keys of one database, in key order. Inline, and
    the range is given to s_iter_in as constants at each call site, so a walk
    on the delivery path (lane scans, the next stored seq) compiles to what
    the open-coded cursor loop did. Use:

        st_iter_t it;
        for (s_iter_open(&it, txn, dbi, key, len); s_iter_in(&it, key, plen, klen);
             s_iter_next(&it)) {
            ... it.k, it.v; break to stop early ...
        }
        err = s_iter_close(&it, err);   //  or rc = s_iter_end(&it, rc)

    A writer may delete the current entry with mdb_cursor_del(it.cur, 0):
    the next s_iter_next then gives the entry after it. */
typedef struct {
    MDB_cursor *cur; //  the cursor (NULL when it could not open)
    MDB_val k;       //  current key, borrowed until the next step or write
    MDB_val v;       //  current value, the same
    int rc;          //  LMDB code of the last step (MDB_NOTFOUND: past the end)
} st_iter_t;

//  Opens a walk of DBI at the first key >= START (START_LEN bytes; NULL: at
//  the first key). A failure to open shows as an empty walk that s_iter_end
//  reports.
static inline void s_iter_open(st_iter_t *it, MDB_txn *txn, MDB_dbi dbi, const void *start,
                               size_t start_len) {
    it->k = (MDB_val){start_len, (void *)start};
    it->rc = mdb_cursor_open(txn, dbi, &it->cur);
    if (it->rc) {
        it->cur = NULL;
        return;
    }
    it->rc = mdb_cursor_get(it->cur, &it->k, &it->v, start ? MDB_SET_RANGE : MDB_FIRST);
}

//  True while the walk stands on a key that begins with the PLEN bytes of
//  PREFIX and is KLEN bytes long (KLEN 0: any length past PLEN; PLEN 0: any
//  key).
static inline bool s_iter_in(const st_iter_t *it, const void *prefix, size_t plen, size_t klen) {
    return it->rc == 0 && (klen ? it->k.mv_size == klen : it->k.mv_size > plen) &&
           (plen == 0 || !memcmp(it->k.mv_data, prefix, plen));
}

static inline void s_iter_next(st_iter_t *it) {
    it->rc = mdb_cursor_get(it->cur, &it->k, &it->v, MDB_NEXT);
}

//  Closes the walk; returns RC if set, else the LMDB error that ended the
//  walk (0 when it ran out of keys, left the range or was stopped).
static inline int s_iter_end(st_iter_t *it, int rc) {
    if (it->cur) {
        mdb_cursor_close(it->cur);
        it->cur = NULL;
    }
    return rc ? rc : it->rc == MDB_NOTFOUND ? 0 : it->rc;
}

//  s_iter_end for the reads: ERR if set, else the walk's error as tern_err_t.
static inline tern_err_t s_iter_close(st_iter_t *it, tern_err_t err) {
    int rc = s_iter_end(it, 0);
    return err ? err : s_err(rc);
}

/* ------------------------------------------------------------------------
    Batches and their write transaction
   ------------------------------------------------------------------------ */

//  The operations a batch queues; tern_store_batch.c's apply table maps each
//  to the function of its concern.
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
    OP_DLQ_PURGE,
    OP_APPEND_REPLICA,
    OP_TRUNCATE,
    OP_GROUP_APPLY,
    OP_GSTATE_PUT,
    OP_GSTATE_PRUNE,
    OP_OUTBOX_CONFIRM_PT,
    OP_OUTBOX_PUT,
    OP_OUTBOX_RESET,
    OP_COUNT
} st_op_kind_t;

//  One queued operation; the fields each kind uses are named beside them.
typedef struct {
    st_op_kind_t kind;       //  what to do
    const tern_frame_t *msg; //  APPEND, APPEND_REPLICA: borrowed until commit
    bool flag; //  APPEND: local; APPEND_REPLICA: live (seq = last + 1); TOPIC_DELETE: purge
               //  only; DLQ_REPLAY: seq a only; DELIVER, ACK: folded with its ack / delivery
               //  in this batch (st_group_fold)
    tern_append_result_t *result;  //  APPEND, APPEND_REPLICA, ACKSTATE_APPLY: filled at commit
    char name[TERN_TOPIC_MAX + 1]; //  topic, group, peer, origin or meta name
    uint32_t topic_id;             //  group ops
    uint64_t a;                    //  seq, position, value, now_ns, limits...
    uint64_t b;                    //  due_ms, max_msgs, msg_id...
    uint64_t c;                    //  max_bytes
    uint32_t u32;                  //  delivery count, start mode, sweep max, op, topic put mode,
                                   //  TRUNCATE: 1 = also raise last_seq (end_at)
    uint8_t priority;              //  DELIVER: lane
    uint8_t acked_as;    //  folded DELIVER, ACK: the ack's history event, in the delivery's record
    char *reason;        //  DEAD: reason, DELIVER: consumer (owned copy, or NULL)
    tern_err_t *err_out; //  may be NULL
    uint32_t *id_out;    //  may be NULL
    uint64_t *count_out; //  may be NULL
    const tern_err_t *prior; //  APPEND_REPLICA, TRUNCATE: runs only if *prior is OK (or NULL)
    void *data;              //  GROUP_APPLY, GSTATE_*, OUTBOX_PUT: owned copy of the input
} st_op_t;

//  A topic or group record, read once per transaction and written back once.
typedef struct {
    bool is_group;                   //  group record, else topic record
    uint8_t key[4 + TERN_TOPIC_MAX]; //  topic name, or topic BE32 + group name
    size_t key_len;                  //  its length
    bool exists;                     //  the record exists (after this txn's changes)
    bool dirty;                      //  must be written back (or deleted) at flush
    st_topic_rec_t topic;            //  topic record
    st_group_rec_t group;            //  group record
} st_cached_t;

//  A producer's dedup state, cached for one write transaction: its entry
//  count is read once and written back once per commit (with the count
//  bound applied then), not per message.
typedef struct {
    char name[TERN_NAME_MAX + 1]; //  the producer
    size_t len;                   //  its length
    uint32_t hash;                //  FNV-1a of the name
    uint64_t count;               //  its dedup entries, after this txn's changes
    bool dirty;                   //  write back (or delete, at 0) at flush
} st_prod_t;

//  History events of delivery-state ops held for one sorted put
//  (tern_store_group_run.c).
typedef struct {
    uint8_t *bytes; //  each event: key (20 bytes), value length (LE16), value
    size_t len;     //  bytes used
    size_t cap;     //  allocated
    uint32_t *at;   //  offset of each event in bytes, sorted by key at the flush
    size_t count;   //  events held
    size_t at_cap;  //  offsets allocated
} st_hist_t;

//  A batch: the queue and the pools its transactions reuse.
struct tern_store_batch_t {
    tern_store_t *store;       //  our store
    st_op_t *ops;              //  queued operations
    size_t count;              //  how many
    size_t cap;                //  allocated
    bool has_appends;          //  any OP_APPEND or OP_APPEND_REPLICA queued
    size_t bytes;              //  what the queued operations hold and write (estimate)
    st_cached_t **cache;       //  per-transaction record cache (pooled entries)
    size_t cache_count;        //  entries in use
    size_t cache_cap;          //  entries allocated
    st_prod_t *prods;          //  per-transaction dedup producer state
    size_t prod_count;         //  entries in use
    size_t prod_cap;           //  entries allocated
    uint32_t *prod_slots;      //  open-addressing index into prods (index + 1; 0 = free)
    size_t slot_cap;           //  slots (a power of two, >= 2 x prod_cap)
    tern_outbox_mark_t *marks; //  cluster: the outbox marks of the last commit
    size_t mark_count;         //  how many
    size_t mark_cap;           //  allocated
    uint32_t *fold_slots;      //  st_group_fold's index: op index by (group, seq), or UINT32_MAX
    size_t fold_cap;           //  slots (a power of two)
    size_t folded;             //  deliveries folded in the batch being committed
    struct st_txn_t *applied;  //  the open transaction of tern_store_batch_apply (owned), or NULL
    st_hist_t hist;            //  history events held for one sorted put (st_hist_hold)
};

//  Slots of st_group_of's memo (a power of two; more than the groups a
//  fan-out commit usually touches).
#define S_GROUP_MEMO 256

//  One commit attempt: the write transaction and what it changes, moved to
//  the store only once it committed.
typedef struct st_txn_t {
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
    bool swept;                            //  a sweep ran in this attempt
    bool sweep_more;                       //  ... and left work for the next one
    bool doomed;                           //  a topic was deleted (st_doom)
    bool hist_hold;                        //  in a run of delivery-state ops (st_run_before)
    uint16_t group_memo[S_GROUP_MEMO];     //  st_group_of: cache index + 1 by name hash, 0 none
} st_txn_t;

/* ------------------------------------------------------------------------
    Readers
   ------------------------------------------------------------------------ */

//  A reader: one thread's snapshots (tern_store_read.c).
struct tern_store_reader_t {
    tern_store_t *store;            //  our store
    MDB_txn *txn;                   //  read transaction, reset between uses
    bool active;                    //  between read_begin and read_end
    uint32_t topic_id;              //  last topic id resolved (ids are never reused)
    char topic[TERN_TOPIC_MAX + 1]; //  its name
    uint64_t dooms;                 //  store->dooms when it was resolved
};

//  Every read opens with it: TERN_ESTATE outside begin/end.
#define S_READER_CHECK(self)                                                                       \
    do {                                                                                           \
        if (!(self) || !(self)->active) {                                                          \
            return TERN_ESTATE;                                                                    \
        }                                                                                          \
    } while (0)

//  The result slot of an operation with an optional *ERR_OUT.
static inline tern_err_t *s_err_out(st_op_t *op) {
    static _Thread_local tern_err_t sink;
    return op->err_out ? op->err_out : &sink;
}

//  A pending or DLQ entry value: delivery count, lane, due (or death) time.
static inline void s_entry_put(uint8_t *val, uint32_t count, uint8_t priority, uint64_t due_ms) {
    memset(val, 0, S_ENTRY_SIZE);
    s_le32_put(val, count);
    val[4] = priority;
    s_le64_put(val + 8, due_ms);
}

//  The pending / DLQ key of a group operation (topic, group, NUL, seq A)
//  into KEY (S_ENTRY_KEY_MAX); returns its length.
static inline size_t s_op_entry_key(const st_op_t *op, uint8_t *key) {
    return s_entry_key(key, op->topic_id, op->name, strlen(op->name), op->a, true);
}

/* ------------------------------------------------------------------------
    Shared functions, by file (docs/storage.md has the file map)
   ------------------------------------------------------------------------ */

//  tern_store.c: the environment and its growth. Each returns true when the
//  map changed (or the nudge committed); st_map_adopt an LMDB error code.
bool st_map_resize(tern_store_t *self, uint64_t size);
bool st_map_grow(tern_store_t *self, uint64_t limit);
bool st_map_nudge(tern_store_t *self);
int st_map_adopt(tern_store_t *self);

//  tern_store_writemap.c: the map's blocks reserved for MDB_WRITEMAP.
//  st_wm_open_reserve reserves the data file for a map of INITIAL bytes
//  (or the file's size, if larger) before LMDB opens it: 0, or the errno
//  that rules WRITEMAP out for this run (logged). st_wm_grow_reserve
//  reserves bytes FROM..TO before the map grows to TO: false when the disk
//  cannot (logged once, counted), true when done or not writing through
//  the map.
int st_wm_open_reserve(tern_store_t *self, uint64_t initial);
bool st_wm_grow_reserve(tern_store_t *self, uint64_t from, uint64_t to);
//  True when the data file's file system has (almost) no space left: LMDB
//  turns a short pwrite at commit into EIO, which this tells from a failing
//  disk.
bool st_disk_full(tern_store_t *self);

//  tern_store_record.c: the log record codec (pure, no transaction).
tern_err_t st_record_parse(const MDB_val *v, bool verify, st_record_t *rec);
void st_record_frame(const st_record_t *rec, tern_frame_t *out);
size_t st_record_size(const tern_frame_t *msg, const st_lens_t *lens);
void st_record_write(uint8_t *p, const tern_frame_t *msg, uint32_t topic_id, uint64_t seq,
                     const st_lens_t *lens);
void st_record_trace(const st_record_t *rec, const char **trace_id, size_t *trlen,
                     const char **origin, size_t *olen);

//  tern_store_batch.c: queueing, the per-transaction record cache, commit.
st_op_t *st_batch_push(tern_store_batch_t *self, st_op_kind_t kind);
st_op_t *st_group_op(tern_store_batch_t *self, st_op_kind_t kind, uint32_t topic_id,
                     const char *group, uint64_t seq);
int st_topic_find(st_txn_t *ctx, const char *name, size_t len, bool create, st_cached_t **out,
                  tern_err_t *err);
int st_topic_by_id(st_txn_t *ctx, uint32_t topic_id, st_cached_t **out);
int st_group_find(st_txn_t *ctx, uint32_t topic_id, const char *name, st_cached_t **out);
int st_del_prefix(st_txn_t *ctx, MDB_dbi dbi, const uint8_t *prefix, size_t plen, uint64_t *count);
int st_del_range(st_txn_t *ctx, MDB_dbi dbi, const uint8_t *start, size_t start_len, size_t plen,
                 uint64_t *count);
int st_del_range_max(st_txn_t *ctx, MDB_dbi dbi, const uint8_t *start, size_t start_len,
                     size_t plen, uint64_t max, uint64_t *count);

//  tern_store_log.c: messages and topics (writer side).
int st_op_append(st_txn_t *ctx, st_op_t *op);
int st_op_append_replica(st_txn_t *ctx, st_op_t *op);
int st_op_truncate(st_txn_t *ctx, st_op_t *op);
int st_op_topic_put(st_txn_t *ctx, st_op_t *op);
int st_op_topic_delete(st_txn_t *ctx, st_op_t *op);
int st_first_seq(st_txn_t *ctx, uint32_t topic_id, uint64_t from, uint64_t last, uint64_t *first,
                 MDB_val *record);
int st_seq_time(st_txn_t *ctx, st_cached_t *t, uint64_t seq, uint64_t *found_seq, uint64_t *ts);
int st_seq_at_time(MDB_txn *txn, MDB_dbi log, uint32_t topic_id, uint64_t first, uint64_t last,
                   uint64_t at_ns, uint64_t *seq);
int st_msg_remove(st_txn_t *ctx, st_cached_t *t, uint64_t seq, bool *gone);

//  tern_store_dedup.c: the dedup window and the producer cache.
void st_prod_reset(tern_store_batch_t *b);
int st_prod_flush(st_txn_t *ctx);
int st_dedup(st_txn_t *ctx, const tern_frame_t *msg, size_t plen, uint32_t topic_id, uint64_t seq,
             tern_append_result_t *res, bool *dup);
int st_dedup_set(st_txn_t *ctx, const tern_frame_t *msg, size_t plen, uint32_t topic_id,
                 uint64_t seq);
int st_dedup_drop(st_txn_t *ctx, const char *producer, size_t plen, uint64_t pseq, uint64_t msg_id);
int st_supersede(st_txn_t *ctx, const tern_frame_t *msg, size_t plen,
                 const tern_append_result_t *old, uint32_t topic_id, uint64_t seq);
int st_sweep_dedup(st_txn_t *ctx, uint64_t now_ns, uint64_t budget);

//  tern_store_group.c: groups and delivery state.
int st_op_group_open(st_txn_t *ctx, st_op_t *op);
int st_op_group_delete(st_txn_t *ctx, st_op_t *op);
int st_op_group_seek(st_txn_t *ctx, st_op_t *op);
int st_op_deliver(st_txn_t *ctx, st_op_t *op);
int st_op_ack(st_txn_t *ctx, st_op_t *op);
int st_op_nack(st_txn_t *ctx, st_op_t *op);
int st_op_dead(st_txn_t *ctx, st_op_t *op);
int st_group_of(st_txn_t *ctx, st_op_t *op, st_cached_t **g);
void st_group_fold(tern_store_batch_t *b);
int st_groups_truncate(st_txn_t *ctx, uint32_t topic_id, uint64_t after_seq);
tern_err_t st_entry_parse(const MDB_val *k, const MDB_val *v, tern_entry_t *out);
tern_err_t st_entry_list(tern_store_reader_t *self, int dbi, uint32_t topic_id, const char *group,
                         tern_entry_fn *fn, void *arg);

//  tern_store_group_run.c: a run of delivery-state ops. st_run_before
//  starts applying an op of KIND (ending the run unless KIND is one of
//  them); st_run_end puts the history events held in the run;
//  st_run_reset forgets them at the start of an attempt; st_hist_hold
//  holds one event (key and value copied).
int st_run_before(st_txn_t *ctx, st_op_kind_t kind);
int st_run_end(st_txn_t *ctx);
void st_run_reset(st_txn_t *ctx);
void st_hist_hold(st_txn_t *ctx, const uint8_t *key, const uint8_t *val, size_t vlen);
void st_hist_free(tern_store_batch_t *b);

//  tern_store_gstate.c: group state an in-DC leader ships (by topic name).
int st_op_group_apply(st_txn_t *ctx, st_op_t *op);
int st_op_gstate_put(st_txn_t *ctx, st_op_t *op);
int st_op_gstate_prune(st_txn_t *ctx, st_op_t *op);

//  tern_store_dlq.c: dead letters.
int st_op_dlq_replay(st_txn_t *ctx, st_op_t *op);
int st_op_dlq_purge(st_txn_t *ctx, st_op_t *op);

//  tern_store_expiry.c: the sweep.
int st_op_sweep(st_txn_t *ctx, st_op_t *op);

//  tern_store_reap.c: deleted topics removed in steps. st_doom writes the
//  tombstone of TOPIC_ID; st_reap removes doomed data for at most *BUDGET
//  dirty pages (decremented), *MORE when some is left.
int st_doom(st_txn_t *ctx, uint32_t topic_id, uint64_t last_seq);
int st_reap(st_txn_t *ctx, uint64_t *budget, bool *more);

//  tern_store_repl.c: the outbox, ack state, peers and inbound cursors.
//  st_outbox_put writes an entry at (PT, POS) (single node: PT 0 and POS
//  the next position); st_outbox_next is PT's next position.
int st_outbox_put(st_txn_t *ctx, uint32_t pt, uint64_t pos, const tern_outbox_entry_t *e);
uint64_t st_outbox_next(st_txn_t *ctx, uint32_t pt);
int st_outbox_msg_id(st_txn_t *ctx, tern_outbox_entry_t *e);
uint32_t st_outbox_pt_of(const tern_store_t *store, const char *topic, size_t len);
tern_err_t st_outbox_walk(tern_store_reader_t *self, int dbi, const uint8_t *key, size_t klen,
                          uint32_t pt, size_t max, tern_outbox_fn *fn, void *arg);
tern_err_t st_outbox_last_one(tern_store_reader_t *self, uint64_t *position);
tern_err_t st_outbox_confirmed_one(tern_store_reader_t *self, const char *peer, uint64_t *position);
int st_op_ackstate(st_txn_t *ctx, st_op_t *op);
int st_op_ackstate_apply(st_txn_t *ctx, st_op_t *op);
//  A peer DC's ack-state change of SEQ of TOPIC_ID for GROUP (a TERM when
//  TERM); *CHANGED says whether it changed anything here. REASON borrowed.
int st_ackstate_seq(st_txn_t *ctx, uint32_t topic_id, const char *group, uint64_t seq, bool term,
                    const char *reason, bool *changed);
int st_op_outbox_confirm(st_txn_t *ctx, st_op_t *op);
int st_op_inbound(st_txn_t *ctx, st_op_t *op);
int st_sweep_outbox(st_txn_t *ctx, uint64_t now_ns, uint64_t budget);

//  tern_store_outbox.c: the per-partition outbox of a clustered store.
int st_ob_load(tern_store_t *store, MDB_txn *txn);
void st_ob_free(tern_store_t *store);
void st_ob_reset(st_txn_t *ctx);
int st_ob_flush(st_txn_t *ctx);
void st_ob_marks(st_txn_t *ctx);
void st_ob_publish(st_txn_t *ctx);
void st_ob_move(st_txn_t *ctx, uint32_t pt, uint64_t pos);
int st_op_outbox_confirm_pt(st_txn_t *ctx, st_op_t *op);
int st_op_outbox_put(st_txn_t *ctx, st_op_t *op);
int st_op_outbox_reset(st_txn_t *ctx, st_op_t *op);
int st_sweep_outbox_pt(st_txn_t *ctx, uint64_t now_ns, uint64_t budget);

//  tern_store_read.c: readers.
tern_err_t st_msgid_get(tern_store_reader_t *self, uint64_t msg_id, const uint8_t **val);

//  tern_store_trace.c: the message history.
int st_trace_put(st_txn_t *ctx, uint32_t topic_id, uint64_t seq, uint8_t type, const char *group,
                 uint32_t count, const char *detail, uint64_t msg_id, uint64_t expire_at_ns);
int st_trace_put_pair(st_txn_t *ctx, uint32_t topic_id, uint64_t seq, uint8_t type, uint8_t then,
                      const char *group, uint32_t count, const char *detail);
int st_trace_put_at(st_txn_t *ctx, uint32_t topic_id, uint64_t seq, uint64_t stamp, uint64_t at_ns,
                    uint16_t type, const char *group, size_t glen, uint32_t count,
                    const char *detail, size_t dlen, uint64_t msg_id, uint64_t expire_at_ns);
int st_trace_truncate(st_txn_t *ctx, uint32_t topic_id, uint64_t after);
int st_trace_confirm(st_txn_t *ctx, const char *peer, uint64_t position, uint64_t previous);
int st_op_trace(st_txn_t *ctx, st_op_t *op);
int st_sweep_trace(st_txn_t *ctx, uint64_t now_ns, uint64_t budget);

#endif
