/*  tern_store.h - the broker's memory: topics, log, dedup, groups, DLQ,
    expiry, outbox and message history, on LMDB.

    storage/ is the only code that includes lmdb.h. One tern_store_t per node
    owns one LMDB environment (named databases inside; docs/storage.md has
    the layout and which file of storage/ holds what). This header is
    grouped by concern, in the order of docs/storage.md:

        The store         open, close, directory lock, identity, stats
        Batches, readers  the single writer and the snapshot readers
        Topics            create, edit, delete, purge, look up, list
        The log           append (with dedup), read, find, lane scans, records
        Groups            open, seek, delete; deliver, ack, nack, dead; look up
        Dead letters      replay, purge, list, get
        Expiry            the sweep: TTL, max_age, dedup window, retention
        Meta              named u64 values (e.g. the last snowflake time)
        Replication       outbox, ack state, peers' confirmations, inbound
        In-DC replicas    appends at the leader's seq, truncation, digest
        History           per-message trace events for audit and trace

    Writes. There is ONE writer: every change goes through a
    tern_store_batch_t, which queues operations and applies them all in one
    write transaction and one commit (group commit). Queueing never fails (out
    of memory aborts the process, in tern_oom, like every layer); each
    operation's result is filled in only when tern_store_batch_commit returns,
    and the broker must acknowledge producers only then. Every pointer given
    to a queue call is BORROWED until that commit returns, unless its
    documentation says it is copied; result pointers (RESULT, RESULT_ERR,
    ID_OUT, REMOVED, MOVED) must stay valid until then and may be NULL where
    said.

    Reads. tern_store_reader_t handles: one per thread, short read
    transactions (MDB_NOTLS) opened by tern_store_read_begin and closed by
    tern_store_read_end; a reader must never be held open across a wait.
    Every read returns TERN_ESTATE outside begin/end. Any pointer a read
    returns (payload, metadata) is BORROWED from the LMDB map and valid only
    until tern_store_read_end on that reader; structs filled by a read are
    copies, owned by the caller.

    Errors. Besides the codes each function lists, any call that touches
    LMDB may return TERN_ECORRUPT (a damaged page or record) or
    TERN_ESTORAGE (any other I/O error); a commit may also return TERN_EFULL
    and TERN_ETOOBIG (one transaction too large for LMDB).

    Threads: tern_store_new/destroy on one thread while no reader or batch is
    live. A batch is used by one thread at a time (the writer); each reader by
    one thread at a time. Readers on different threads run concurrently with
    the writer; tern_store_stats and tern_store_reader_check from any thread.
*/
#ifndef TERN_STORE_H_INCLUDED
#define TERN_STORE_H_INCLUDED

#include "tern_err.h"
#include "tern_proto.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tern_store_t tern_store_t;               //  one environment, one node
typedef struct tern_store_batch_t tern_store_batch_t;   //  the writer's queue of operations
typedef struct tern_store_reader_t tern_store_reader_t; //  one thread's read snapshots

/*  The kinds of events in a message's history (see History below). */
#define TERN_TRACE_DETAIL_MAX 200 /* detail text of one event, bytes */

typedef enum {
    TERN_TRACE_STORED = 1,     //  appended (group = origin dc, detail = trace_id), always first
    TERN_TRACE_DELIVERED = 2,  //  delivered (group, delivery_count, detail = consumer)
    TERN_TRACE_ACKED = 3,      //  acked by the group
    TERN_TRACE_NACKED = 4,     //  nacked (delivery_count so far)
    TERN_TRACE_DEAD = 5,       //  moved to the group's DLQ (detail = reason)
    TERN_TRACE_REPLAYED = 6,   //  moved back from the DLQ
    TERN_TRACE_REPLICATED = 7, //  shipped to a peer (detail = peer), by the repl actor
    TERN_TRACE_EXPIRED = 8,    //  removed by the TTL sweep (group ""), or skipped by a group
    TERN_TRACE_TIMEOUT = 9     //  ack_wait ran out; waits for redelivery (delivery_count)
} tern_trace_type_t;

/* ------------------------------------------------------------------------
    The store
   ------------------------------------------------------------------------ */

typedef enum {
    TERN_DURABILITY_FSYNC = 0, //  synced commit: durable before the ack (default)
    TERN_DURABILITY_BATCH = 1, //  MDB_NOMETASYNC: one flush; a crash may lose the last commit
    TERN_DURABILITY_NONE = 2   //  MDB_NOSYNC: the kernel decides; an OS crash loses data
} tern_durability_t;

typedef struct {
    const char *dir;              //  data directory (created if missing)
    uint64_t map_initial;         //  initial LMDB map size, bytes (default 64 MiB)
    uint64_t map_max;             //  the map never grows past this (default 64 GiB)
    tern_durability_t durability; //  default TERN_DURABILITY_FSYNC
    uint64_t dedup_window_ms;     //  dedup entries older than this expire (default 120000)
    uint32_t dedup_max;           //  entries kept per producer after each commit (default 1024)
    uint64_t outbox_retention_ms; //  unconfirmed outbox entries dropped after (default 72 h)
    uint32_t max_topics;          //  default 100000
    uint32_t max_readers;         //  LMDB reader slots (default 126)
    uint64_t trace_retention_ms;  //  per-message history kept this long; 0 = none (default 24 h)
    bool outbox;                  //  local appends get an outbox entry (default true); see below
    uint32_t partitions;          //  > 0: a cluster's replica, outbox per partition (default 0)
    bool writemap;                //  write through the map, disk reserved to the map (see below)
} tern_store_config_t;

/*  PARTITIONS > 0 (a node of a clustered DC, cluster/partitions): the
    outbox is kept per partition, the same on every replica of it
    (docs/storage.md "The outbox in a cluster"). A local append of a topic
    of partition PT (tern_partition_of(topic, PARTITIONS)) and an ack-state
    change of such a topic get the entry (PT, next position of PT); a
    follower writes the leader's entries at the leader's (PT, position)
    (tern_store_batch_append_replica with MSG->outbox_pos,
    tern_store_batch_outbox_put); each peer confirms per partition
    (tern_store_batch_outbox_confirm_pt). The functions without _pt mean
    partition 0. PARTITIONS 0 keeps the single-node outbox (one stream,
    its format unchanged). A store must always be opened with the same
    PARTITIONS: the outbox of the other mode is not read. */

/*  WRITEMAP true: LMDB writes pages straight into the map (MDB_WRITEMAP),
    with the data file's blocks reserved (fallocate) for the whole map at
    open and before every growth, so a full disk stops the map growing
    (appends get TERN_EFULL) instead of faulting SIGBUS. The disk then holds
    the map's size, not only the pages in use. When the file system cannot
    reserve at open (full, no fallocate, copy-on-write) the store opens
    without it and says so on stderr; tern_store_stats tells which. Same
    durability either way: a synced commit msyncs the data, then the meta
    page. */

/*  OUTBOX false: local appends (tern_store_batch_append with LOCAL true)
    write no outbox entry, and their recorded outbox position is 0, as for
    remote records; set it on a node with no replication peers (one B-tree
    put less per publish). Messages stored while it is false are never
    shipped, even if peers are configured later (they get what is appended
    after). Ack-state entries (tern_store_batch_ackstate) are queued
    explicitly and still written. A zeroed config (without
    tern_store_config_defaults) has it false. */

/*  Fills CONFIG with the defaults above (dir = "./tern-data", a static
    string). Cannot fail. */
void tern_store_config_defaults(tern_store_config_t *config);

/*  The on-disk layout version, stored as the meta u64 "store.format" when a
    store is created (docs/storage.md). Format 2: the log is keyed by (topic,
    seq) and dedup keeps one database plus per-producer counts. Format 3: the
    msgid index also carries the trace history (no trace_msg database) and
    the STORED event is written when a message is removed, not at append. */
#define TERN_STORE_FORMAT 3

/*  The lock file in every data directory: one store at a time writes a
    directory. The holder keeps an exclusive flock on it and has written its
    pid in it (decimal, one line); the kernel releases the lock when the
    holder dies, and a clean close removes the file. LMDB's own lock.mdb is
    untouched, so mdb_copy and mdb_stat work beside a live store. */
#define TERN_STORE_LOCK_FILE "tern.lock"

/*  Opens (creating if needed) the store in CONFIG->dir; CONFIG is copied
    (the caller may free it and its dir afterwards). Takes the directory lock
    (TERN_STORE_LOCK_FILE) before LMDB opens the environment, then clears
    stale reader slots (mdb_reader_check). A new store gets its replica
    identity in the transaction that creates it; a format 3 store made
    before identities existed gets one written at this open (see
    tern_store_identity). Caller owns the return value and
    destroys it with tern_store_destroy. On failure returns NULL and sets
    *ERR (ERR may be NULL):
    - TERN_EBUSY: another live store holds the directory, in this process
      or another (tern_store_lock_holder names its pid);
    - TERN_ESTORAGE: the directory cannot be created, is not a directory, or
      cannot be opened; errno is then the system error (ENOTDIR, EACCES,
      ENOSPC...), or 0 when LMDB itself failed;
    - TERN_ECONFIG: a config field is out of range (no dir, a dir longer
      than PATH_MAX, an unknown durability, map_initial above map_max);
    - TERN_ECORRUPT: a data directory of another store format (a format 1
      store, with its `tindex` database, or a "store.format" other than
      TERN_STORE_FORMAT, such as 2), or whose replica identity
      ("store.identity", see tern_store_identity) is not a UUID v4; refused
      with a one-line explanation on stderr, never modified or misread;
    - TERN_ENOMEM: the store object could not be allocated. */
tern_store_t *tern_store_new(const tern_store_config_t *config, tern_err_t *err);

/*  Closes the store (final sync), then releases the directory lock. Every
    batch and reader of the store must be destroyed first. Safe on NULL and
    idempotent; nulls *SELF_P. */
void tern_store_destroy(tern_store_t **self_p);

/*  Characters of a replica identity: a canonical UUID, without its NUL. */
#define TERN_STORE_IDENTITY_LEN 36

/*  The replica identity of the store's data directory: a random UUID v4
    (128 bits from getrandom(2), RFC 9562 text form in lower case, e.g.
    "3f1c2a9e-7b4d-4e0a-9c1f-5a6b7c8d9e0f", TERN_STORE_IDENTITY_LEN
    characters). It is made once, when tern_store_new creates the store on an
    empty directory (or first opens a format 3 store from before identities),
    stored in meta as "store.identity" and only read back at every later
    open, so it lives exactly as long as the directory's contents: a wiped
    directory gets a new one, a process crash or a restart keeps it. The
    cluster records it per replica and checks it at join, so that a node
    whose directory was wiped or swapped refuses to serve the partition
    instead of rejoining as a copy it is not (docs/cluster.md, "Replica
    identity").
    A copy of the directory (mdb_copy, or cp -a of a stopped node) carries
    the same identity: it is a backup, and must never be started as a second
    replica beside the original (the cluster could not tell them apart).
    Returns NULL for a NULL SELF; cannot fail otherwise (a malformed stored
    value is refused by tern_store_new with TERN_ECORRUPT). Borrowed; valid
    until tern_store_destroy. Any thread. */
const char *tern_store_identity(tern_store_t *self);

/*  The pid written in DIR's lock file by the store that holds (or last held)
    it, or 0 when there is none to read. For the message after TERN_EBUSY.
    DIR is borrowed for the call. */
long tern_store_lock_holder(const char *dir);

/*  Counters for metrics and status (read with relaxed atomics, any thread). */
typedef struct {
    uint64_t map_size;          //  current LMDB map size, bytes
    uint64_t map_used;          //  bytes in use (last page * page size)
    uint64_t file_bytes;        //  data.mdb size on disk
    uint64_t commits;           //  write transactions committed
    uint64_t map_grows;         //  times the map grew
    uint64_t reserve_refused;   //  map reservations the disk refused (WRITEMAP)
    bool writemap;              //  pages written through the map (MDB_WRITEMAP in effect)
    uint64_t full_errors;       //  batches that hit storage-full
    uint64_t corrupt_records;   //  CRC mismatches seen by readers
    uint64_t expired;           //  messages removed by TTL sweeps
    uint64_t retention_trimmed; //  messages removed by max_age/max_msgs/max_bytes
    uint64_t outbox_dropped;    //  outbox entries dropped unconfirmed (retention)
    uint64_t dedup_entries;     //  dedup entries on disk
    uint32_t topics;            //  number of topics
    uint64_t superseded;        //  replication conflicts: a copy removed for a lower msg_id
    uint64_t folded;            //  deliveries committed with their ack: no pending entry written
} tern_store_stats_t;

/*  Fills OUT (caller's struct) with the counters; all zero when SELF is
    NULL. Cannot fail; any thread. */
void tern_store_stats(tern_store_t *self, tern_store_stats_t *out);

/*  Clears stale reader slots (of dead threads or processes); call
    periodically. Returns the slots cleared (0 when SELF is NULL). */
int tern_store_reader_check(tern_store_t *self);

/*  True when the last committed sweep (tern_store_batch_sweep) stopped at its
    budget with work left: messages past their TTL or max_age, or the data of
    deleted topics, which goes in bounded steps (docs/storage.md, "Topic
    delete"). The writer then sweeps again soon. False for a NULL SELF. */
bool tern_store_sweep_more(tern_store_t *self);

/* ------------------------------------------------------------------------
    Batches (the single writer) and readers
   ------------------------------------------------------------------------ */

/*  A batch of STORE, which must outlive it. Caller owns the return value
    (NULL when STORE is NULL); reuse it across commits (a commit empties
    it). */
tern_store_batch_t *tern_store_batch_new(tern_store_t *store);

/*  Drops the queued operations (their results are never filled) and frees
    the batch. Safe on NULL and idempotent; nulls *SELF_P. */
void tern_store_batch_destroy(tern_store_batch_t **self_p);

/*  Number of queued operations (0 when SELF is NULL). */
size_t tern_store_batch_size(tern_store_batch_t *self);

/*  Bytes the queued operations hold and will write (0 when SELF is NULL):
    each operation's queue entry plus, for an append, its payload and record
    header. The write transaction's dirty pages, which LMDB mallocs and keeps
    for reuse, grow with it, so the storer closes a batch at a byte bound
    (storage/batch_bytes) as well as at a count. An estimate, not the exact
    page count. */
size_t tern_store_batch_bytes(tern_store_batch_t *self);

/*  Commits every queued operation in ONE write transaction. If the map is
    full it grows (up to map_max) and retries; when it cannot grow, appends
    fail with TERN_EFULL (the earliest ones that fit are still stored) while
    acks, deletes and sweeps still commit (so consumers keep draining).
    Returns TERN_OK when the transaction committed (individual results may
    still carry errors), or the error that made the whole batch fail, after
    which every result carries it: TERN_EINVAL (SELF is NULL), TERN_EFULL,
    TERN_ETOOBIG, TERN_ECORRUPT, TERN_ESTORAGE. The batch is empty
    afterwards either way, and every pointer it borrowed is released. */
tern_err_t tern_store_batch_commit(tern_store_batch_t *self);

/*  The first half of tern_store_batch_commit: applies every queued operation
    in ONE write transaction (growing the map or storing fewer appends as
    the commit does) and fills every result, but leaves the transaction
    open: nothing is visible to readers nor on disk until
    tern_store_batch_commit commits it. So a cluster leader can ship the
    records, with the seqs, msg_ids and dedup results assigned here, to its
    followers while its own commit runs (broker/tern_storer.c). Returns
    TERN_OK (an empty batch: nothing opened), or the error that made the
    whole batch fail (as tern_store_batch_commit, batch emptied). Then
    tern_store_batch_commit returns TERN_OK, or TERN_ESTORAGE / TERN_EFULL
    when the commit itself failed: nothing of the batch is kept, every
    result carries the error, and results read before it were wrong. (A
    full map met by the commit itself, LMDB's free list needing pages, is
    not such a failure while the map can grow: the same attempt runs again
    on a larger map, with the same results.) No
    other store write may run in between (there is one writer anyway);
    readers of other threads are not blocked. Destroying the batch instead
    aborts the transaction. */
tern_err_t tern_store_batch_apply(tern_store_batch_t *self);

/*  Cluster nodes (broker/tern_storer.c): with ON, the commits of a store
    with durability fsync flush their data pages but not their meta page
    (LMDB's MDB_NOMETASYNC), which the writer flushes with tern_store_sync
    after it handed the commit's results on, before it tells anyone the
    commit is durable. So a leader ships a commit to its followers while that
    second flush runs, instead of after it. Integrity holds (LMDB writes the
    meta page only after the data is on disk); an OS crash or power loss may
    undo the last commit, which nobody acknowledged yet; a process crash
    loses nothing. (MDB_NOSYNC, deferring both flushes, measured a little
    better, but flushes data and meta in one go, in any order: a power loss
    during it could leave a meta page that points at pages not on disk.)
    Call from the writer thread before it commits. Returns TERN_OK, or
    TERN_EINVAL (not durability fsync: nothing to defer). */
tern_err_t tern_store_defer_sync(tern_store_t *self, bool on);

/*  Flushes every commit made so far to disk (data and meta pages). Returns
    TERN_OK or TERN_ESTORAGE: then what the commits since the last successful
    flush wrote may not be on disk, and must not be acknowledged. */
tern_err_t tern_store_sync(tern_store_t *self);

/*  A reader of STORE, which must outlive it. Caller owns the return value
    (NULL when STORE is NULL). One per thread. */
tern_store_reader_t *tern_store_reader_new(tern_store_t *store);

/*  Ends an open snapshot and frees the reader. Safe on NULL and idempotent;
    nulls *SELF_P. */
void tern_store_reader_destroy(tern_store_reader_t **self_p);

/*  Opens (renews) the read transaction: a snapshot of the last commit.
    TERN_ESTATE if SELF is NULL or already open; TERN_EBUSY if another
    process grew the map (retry); TERN_ESTORAGE (e.g. no free reader slot,
    MDB_READERS_FULL). */
tern_err_t tern_store_read_begin(tern_store_reader_t *self);

/*  Closes (resets) it; every pointer obtained since begin becomes invalid.
    Safe on NULL or a closed reader. */
void tern_store_read_end(tern_store_reader_t *self);

/* ------------------------------------------------------------------------
    Topics
   ------------------------------------------------------------------------ */

typedef struct {
    uint32_t id;                   //  internal id, stable for the topic's life
    char name[TERN_TOPIC_MAX + 1]; //  the topic name
    uint64_t max_age_ms;           //  retention by age, 0 = unlimited
    uint64_t max_msgs;             //  retention by count, 0 = unlimited
    uint64_t max_bytes;            //  retention by payload bytes, 0 = unlimited
    uint64_t first_seq;            //  first stored seq (last_seq + 1 when empty)
    uint64_t last_seq;             //  last assigned seq (0 when none yet)
    uint64_t msgs;                 //  messages stored
    uint64_t bytes;                //  payload bytes stored
    uint64_t created_ns;           //  creation time
} tern_topic_info_t;

/*  A topic's retention limits (0 = unlimited). Retention applies from the
    next append or sweep. */
typedef struct {
    uint64_t max_age_ms; //  messages older than this go at the next sweep
    uint64_t max_msgs;   //  the oldest go once there are more (the newest stays)
    uint64_t max_bytes;  //  the oldest go once their payloads sum above it
} tern_topic_limits_t;

/*  What tern_store_batch_topic_put does when the topic exists or not. */
typedef enum {
    TERN_TOPIC_PUT = 0,    //  create it if missing, else replace its limits
    TERN_TOPIC_CREATE = 1, //  ternctl topic create: TERN_EEXIST if it exists (nothing changes)
    TERN_TOPIC_EDIT = 2    //  ternctl topic edit: TERN_ENOTFOUND if missing (nothing created)
} tern_topic_mode_t;

/*  Queues creating topic NAME and/or setting its LIMITS (copied; NULL = all
    unlimited), as MODE says. NAME is copied. At commit *RESULT_ERR (may be
    NULL) is TERN_OK, TERN_ETOPIC (empty or too long a name), TERN_EEXIST
    (CREATE), TERN_ENOTFOUND (EDIT) or TERN_ELIMIT (max_topics reached);
    *ID_OUT (may be NULL) gets the topic's id. */
void tern_store_batch_topic_put(tern_store_batch_t *self, const char *name, tern_topic_mode_t mode,
                                const tern_topic_limits_t *limits, tern_err_t *result_err,
                                uint32_t *id_out);

/*  Queues deleting topic NAME with its log, groups and indexes, or, when
    PURGE_ONLY, just its messages (seqs continue). NAME is copied. At commit
    *RESULT_ERR (may be NULL) is TERN_OK or TERN_ENOTFOUND; *REMOVED (may be
    NULL) the messages removed. */
void tern_store_batch_topic_delete(tern_store_batch_t *self, const char *name, bool purge_only,
                                   tern_err_t *result_err, uint64_t *removed);

/*  Topic NAME into OUT. TERN_ETOPIC (empty or too long a name),
    TERN_ENOTFOUND. */
tern_err_t tern_store_topic_get(tern_store_reader_t *self, const char *name,
                                tern_topic_info_t *out);

/*  The topic with id ID into OUT. TERN_ENOTFOUND. */
tern_err_t tern_store_topic_get_id(tern_store_reader_t *self, uint32_t id, tern_topic_info_t *out);

/*  Calls FN for each topic in name order (INFO borrowed for the call); FN
    returns false to stop. TERN_OK also when FN stopped. */
typedef bool(tern_topic_fn)(const tern_topic_info_t *topic, void *arg);
tern_err_t tern_store_topic_list(tern_store_reader_t *self, tern_topic_fn *fn, void *arg);

/* ------------------------------------------------------------------------
    The log: append, read, find
   ------------------------------------------------------------------------ */

/*  Result of one append. */
typedef struct {
    tern_err_t err;      //  TERN_OK, TERN_EFULL, TERN_ELIMIT (max topics), ...
    uint32_t topic_id;   //  the topic's id
    uint64_t seq;        //  the new seq, or the original's when duplicate
    uint64_t msg_id;     //  MSG->msg_id, or the original's when duplicate
    bool duplicate;      //  (producer, producer_seq) or msg_id seen before
    uint64_t outbox_pos; //  its outbox position (in its partition in a cluster), 0 = none
} tern_append_result_t;

/*  Queues the append of one message. MSG (borrowed until commit, payload and
    meta included) is a decoded PUBLISH (or REPL_RECORD) frame whose msg_id,
    timestamp_ns, expire_at_ns, origin and trace_id the broker has filled in;
    its topic is created on first use with no limits. A msg_id already
    stored is a duplicate (replays are idempotent). If MSG->producer is
    non-empty, (producer, producer_seq) is checked against the dedup window
    first: a duplicate stores nothing and reports the original. LOCAL is true
    for messages that originated on this node: they get an outbox entry for
    replication (see OUTBOX above, and "Replication conflicts" below for
    LOCAL false). At commit RESULT (may be NULL) gets err: TERN_OK,
    TERN_ETOPIC (no topic), TERN_ETOOBIG (a name or a size over its limit),
    TERN_ERANGE (priority), TERN_EINVAL (a size without its data),
    TERN_ELIMIT (a new topic past max_topics), TERN_EFULL (storage full). */
void tern_store_batch_append(tern_store_batch_t *self, const tern_frame_t *msg, bool local,
                             tern_append_result_t *result);

/*  Reads the message at (TOPIC_ID, SEQ) into OUT: a DELIVER-shaped frame
    (cmd TERN_CMD_DELIVER) with every message field, meta and payload borrowed
    from the map until read_end. Verifies the record's CRC32C: a mismatch
    returns TERN_ECORRUPT and counts it (stats corrupt_records).
    TERN_ENOTFOUND if absent. */
tern_err_t tern_store_read(tern_store_reader_t *self, uint32_t topic_id, uint64_t seq,
                           tern_frame_t *out);

/*  The first stored message of TOPIC_ID with seq >= FROM_SEQ into OUT, as
    tern_store_read (borrowed until read_end). TERN_ENOTFOUND if there is
    none. */
tern_err_t tern_store_read_next(tern_store_reader_t *self, uint32_t topic_id, uint64_t from_seq,
                                tern_frame_t *out);

/*  Where the stored messages of TOPIC_ID with timestamp >= AT_NS begin,
    into *SEQ: tern_store_read_next from *SEQ finds the first of them (*SEQ
    may be a removed seq just before it; last_seq + 1 when there is none).
    TERN_ENOTFOUND if there is no such topic. */
tern_err_t tern_store_seq_at_time(tern_store_reader_t *self, uint32_t topic_id, uint64_t at_ns,
                                  uint64_t *seq);

/*  The stored message with MSG_ID: its topic id and seq. TERN_ENOTFOUND once
    it was removed (its history may still be found with
    tern_store_trace_find). */
tern_err_t tern_store_find_msg(tern_store_reader_t *self, uint64_t msg_id, uint32_t *topic_id,
                               uint64_t *seq);

/*  Lists up to MAX seqs of priority lane PRIORITY of TOPIC_ID that are
    >= FROM_SEQ, in order, into SEQS (caller's array of MAX); *COUNT receives
    how many. TERN_ERANGE for a priority above TERN_PRIORITY_MAX. */
tern_err_t tern_store_lane_scan(tern_store_reader_t *self, uint32_t topic_id, uint8_t priority,
                                uint64_t from_seq, uint64_t *seqs, size_t max, size_t *count);

/*  Decodes one stored log record (a value of the log DBI) of SIZE bytes at
    DATA into OUT, a DELIVER-shaped frame (no topic name: *TOPIC_ID gets the
    topic id), never reading outside DATA. VERIFY also checks the CRC32C.
    OUT's meta and payload borrow DATA. Returns TERN_OK or TERN_ECORRUPT.
    Pure (no LMDB, thread-safe): tern_store_read uses the same parser; the
    fuzz target tests/fuzz/fuzz_record.c drives it. */
tern_err_t tern_store_record_decode(const uint8_t *data, size_t size, bool verify,
                                    uint32_t *topic_id, tern_frame_t *out);

/*  CRC32C (Castagnoli) of LEN bytes at BUF, continuing from CRC (0 to start).
    Uses SSE4.2 when the CPU has it; tern_crc32c_sw is the table version (both
    give the same result; exposed for tests). Pure and thread-safe. */
uint32_t tern_crc32c(uint32_t crc, const void *buf, size_t len);
uint32_t tern_crc32c_sw(uint32_t crc, const void *buf, size_t len);

/*  Copies LEN bytes from SRC to DST (not overlapping) and returns
    tern_crc32c(CRC, SRC, LEN): one pass over the bytes instead of a memcpy
    and a second read to sum them. Pure and thread-safe. */
uint32_t tern_crc32c_copy(uint32_t crc, void *dst, const void *src, size_t len);

/* ------------------------------------------------------------------------
    Groups and delivery state
   ------------------------------------------------------------------------ */

/*  A group is (topic id, name). Its durable state: one cursor per priority
    lane (the next seq not yet delivered in that lane), the pending set
    (delivered, unacked), the DLQ, and counters. A seq below its lane cursor
    that is neither pending nor in the DLQ is acked (or expired). Every
    GROUP / NAME argument below is copied when queued. */
typedef struct {
    uint32_t topic_id;                         //  the topic
    char name[TERN_NAME_MAX + 1];              //  the group name
    uint64_t lane_next[TERN_PRIORITY_MAX + 1]; //  next undelivered seq per priority lane
    uint64_t pending;                          //  entries in the pending set
    uint64_t dead;                             //  entries in the DLQ
    uint64_t delivered;                        //  deliveries, every one (redeliveries too)
    uint64_t redelivered;                      //  deliveries with delivery count > 1
    uint64_t acked;                            //  acks
    uint64_t nacked;                           //  nacks
    uint64_t ack_floor;    //  highest seq such that every seq <= it is acked, dead or expired
    uint64_t next_unacked; //  lowest seq still pending or not yet delivered (ack_floor + 1)
    uint64_t created_ns;   //  creation time
} tern_group_info_t;

/*  A pending or dead-lettered entry of a group. */
typedef struct {
    uint64_t seq;                     //  the message's seq
    uint32_t delivery_count;          //  deliveries so far
    uint64_t due_ms;                  //  pending: redelivery time; dead: time it died
    uint8_t priority;                 //  its lane
    char reason[TERN_REASON_MAX + 1]; //  dead: why
} tern_entry_t;

typedef bool(tern_entry_fn)(const tern_entry_t *entry, void *arg);

/*  Queues creating group NAME on TOPIC_ID if it does not exist, starting at
    START/START_VALUE (see tern_start_t): lanes start at the first stored seq,
    at last_seq + 1 (NEW), at START_VALUE (SEQ), or at the first seq whose
    timestamp is >= START_VALUE ns (TIME). An existing group is left as is.
    At commit *RESULT_ERR (may be NULL): TERN_OK, TERN_ENAME (empty name),
    TERN_ENOTFOUND (no such topic), TERN_ERANGE (unknown START), and
    *START_OUT (may be NULL) the seq the new group's lanes start at, 0 when
    nothing was created (a cluster leader ships that seq, not START: a
    follower resolving NEW or TIME against its own log could differ). */
void tern_store_batch_group_open(tern_store_batch_t *self, uint32_t topic_id, const char *name,
                                 tern_start_t start, uint64_t start_value, tern_err_t *result_err,
                                 uint64_t *start_out);

/*  Queues moving every lane cursor of group NAME to START/START_VALUE (as
    tern_store_batch_group_open computes it) and dropping all its pending
    entries: messages at or after the position are delivered again from
    the cursors, those before it are not. The DLQ and counters are kept.
    At commit *RESULT_ERR (may be NULL): TERN_OK, TERN_ENOTFOUND (no such
    topic or group), TERN_ERANGE (unknown START), and *START_OUT (may be
    NULL) the seq the lanes moved to, 0 when nothing moved. */
void tern_store_batch_group_seek(tern_store_batch_t *self, uint32_t topic_id, const char *name,
                                 tern_start_t start, uint64_t start_value, tern_err_t *result_err,
                                 uint64_t *start_out);

/*  Queues deleting a group and all its state (pending entries, DLQ). At
    commit *RESULT_ERR (may be NULL): TERN_OK or TERN_ENOTFOUND. */
void tern_store_batch_group_delete(tern_store_batch_t *self, uint32_t topic_id, const char *name,
                                   tern_err_t *result_err);

/*  One delivery, for tern_store_batch_deliver. */
typedef struct {
    uint8_t priority;        //  the message's lane (above TERN_PRIORITY_MAX: the last lane)
    uint32_t delivery_count; //  deliveries so far, this one included (1 = first)
    uint64_t due_ms;         //  unix ms at which it is redelivered if not acked
    const char *consumer;    //  named in the DELIVERED event; may be NULL; copied
} tern_delivery_t;

/*  Queues recording a delivery of SEQ to GROUP (DELIVERY copied): the
    pending entry is created or updated, the lane cursor moves past SEQ if it
    was not yet, and a DELIVERED event names the consumer. A group that does
    not exist is left alone (no result: the broker checks against its
    in-memory state). */
void tern_store_batch_deliver(tern_store_batch_t *self, uint32_t topic_id, const char *group,
                              uint64_t seq, const tern_delivery_t *delivery);

/*  Queues an ack of SEQ: its pending entry is removed and the history gets
    EVENT: TERN_TRACE_ACKED (0 means that too), or TERN_TRACE_EXPIRED when
    the broker drops a pending entry whose message expired before it was
    acked. An unknown seq or group is not an error here (the broker checks
    against its in-memory state). */
void tern_store_batch_ack(tern_store_batch_t *self, uint32_t topic_id, const char *group,
                          uint64_t seq, tern_trace_type_t event);

/*  Queues a nack: the pending entry's due time becomes DUE_MS, and the
    history gets EVENT: TERN_TRACE_NACKED (0 means that too), or
    TERN_TRACE_TIMEOUT when ack_wait ran out. An unknown seq is ignored. */
void tern_store_batch_nack(tern_store_batch_t *self, uint32_t topic_id, const char *group,
                           uint64_t seq, uint64_t due_ms, tern_trace_type_t event);

/*  Queues moving SEQ from pending to the group's DLQ with REASON (copied,
    at most TERN_REASON_MAX bytes; may be NULL) and DELIVERY_COUNT. Counted
    once even if the same seq dies twice. */
void tern_store_batch_dead(tern_store_batch_t *self, uint32_t topic_id, const char *group,
                           uint64_t seq, uint32_t delivery_count, const char *reason);

/*  Group NAME of TOPIC_ID into OUT (with its ack floor computed).
    TERN_ENAME (empty or too long a name), TERN_ENOTFOUND. */
tern_err_t tern_store_group_get(tern_store_reader_t *self, uint32_t topic_id, const char *name,
                                tern_group_info_t *out);

/*  Calls FN for each group of TOPIC_ID (every topic if TOPIC_ID is 0); GROUP
    is borrowed for the call; FN returns false to stop. */
typedef bool(tern_group_fn)(const tern_group_info_t *group, void *arg);
tern_err_t tern_store_group_list(tern_store_reader_t *self, uint32_t topic_id, tern_group_fn *fn,
                                 void *arg);

/*  Calls FN for each pending entry of GROUP in seq order (ENTRY borrowed for
    the call; FN returns false to stop). TERN_ENAME for a bad group name. */
tern_err_t tern_store_pending_list(tern_store_reader_t *self, uint32_t topic_id, const char *group,
                                   tern_entry_fn *fn, void *arg);

/* ------------------------------------------------------------------------
    Dead letters (ternctl dlq list|get|replay|purge)
   ------------------------------------------------------------------------ */

/*  Queues moving DLQ entries of GROUP back to pending with delivery count 0
    and due time DUE_MS (so they are redelivered): entry SEQ only, or every
    entry when SEQ is 0. At commit *RESULT_ERR (may be NULL): TERN_OK, or
    TERN_ENOTFOUND when no such group or nothing moved (SEQ not in the DLQ,
    or an empty DLQ); *MOVED (may be NULL): entries moved. */
void tern_store_batch_dlq_replay(tern_store_batch_t *self, uint32_t topic_id, const char *group,
                                 uint64_t seq, uint64_t due_ms, tern_err_t *result_err,
                                 uint64_t *moved);

/*  Queues removing every DLQ entry of GROUP (the messages stay in the log).
    At commit *RESULT_ERR (may be NULL): TERN_OK or TERN_ENOTFOUND (no such
    group); *REMOVED (may be NULL): entries removed. */
void tern_store_batch_dlq_purge(tern_store_batch_t *self, uint32_t topic_id, const char *group,
                                tern_err_t *result_err, uint64_t *removed);

/*  Calls FN for each DLQ entry of GROUP in seq order (ENTRY borrowed for the
    call; FN returns false to stop). TERN_ENAME for a bad group name. */
tern_err_t tern_store_dlq_list(tern_store_reader_t *self, uint32_t topic_id, const char *group,
                               tern_entry_fn *fn, void *arg);

/*  DLQ entry SEQ of GROUP into OUT. TERN_ENAME for a bad group name,
    TERN_ENOTFOUND if it is not in the DLQ. */
tern_err_t tern_store_dlq_get(tern_store_reader_t *self, uint32_t topic_id, const char *group,
                              uint64_t seq, tern_entry_t *out);

/* ------------------------------------------------------------------------
    Expiry and retention
   ------------------------------------------------------------------------ */

/*  Queues a sweep: removes up to MAX messages whose expire_at <= NOW_NS (and
    their index entries), applies max_age retention, and drops dedup entries
    older than the window, outbox entries past retention and history past
    trace_retention_ms. *REMOVED (may be NULL) receives the messages removed
    at commit. The dedup part removes at most MAX entries and visits at most
    MAX producers; the next sweep resumes where it stopped (docs/storage.md,
    Dedup). */
void tern_store_batch_sweep(tern_store_batch_t *self, uint64_t now_ns, uint32_t max,
                            uint64_t *removed);

/* ------------------------------------------------------------------------
    Meta: named u64 values
   ------------------------------------------------------------------------ */

/*  Queues setting the named u64 NAME (copied; an empty name is ignored) in
    the meta database (e.g. "id.last_ms", the last snowflake timestamp
    issued, persisted with every batch). Names starting with "store." are
    the store's own (format, counters, identity): overwriting one corrupts
    the store (e.g. "store.identity" makes the next open fail). */
void tern_store_batch_set_u64(tern_store_batch_t *self, const char *name, uint64_t value);

/*  The named u64 NAME into *VALUE. TERN_EINVAL (empty name),
    TERN_ENOTFOUND (never set). */
tern_err_t tern_store_get_u64(tern_store_reader_t *self, const char *name, uint64_t *value);

/* ------------------------------------------------------------------------
    Replication (docs/replication.md): the outbox is the local commit order
    of locally-originated messages and ack-state changes; peers confirm
    positions; records applied from a peer move its inbound cursor in the
    same batch.
   ------------------------------------------------------------------------ */

/*  Replication conflicts: when a replicated record (append with LOCAL
    false) carries a (producer, producer_seq) that is already stored here
    under ANOTHER msg_id within the dedup window, the copy with the lowest
    msg_id wins in every DC: if the incoming one is lower, the stored copy is
    removed from the log (and its indexes), the dedup entry then names the
    incoming record, which is stored; otherwise the incoming one is reported
    as a duplicate and not stored. Each removal counts in
    tern_store_stats_t.superseded. Local publishes are never affected: a
    producer's retry is a duplicate of what is stored, as before. */

/*  One outbox entry: a message (topic id, seq, msg_id) or an ack-state
    change (REPL_ACKSTATE fields). */
typedef struct {
    uint64_t position;             //  outbox position in its partition, from 1
    uint32_t partition;            //  its partition (0 on a single node)
    bool is_ackstate;              //  false: a message; true: an ack-state change
    uint32_t topic_id;             //  message: its topic
    uint64_t seq;                  //  message: its seq
    uint64_t msg_id;               //  message id (both kinds)
    char group[TERN_NAME_MAX + 1]; //  ack-state: the group
    uint32_t op;                   //  ack-state: TERN_CMD_ACK, TERN_CMD_TERM...
    uint64_t at_ns;                //  commit time
} tern_outbox_entry_t;

typedef bool(tern_outbox_fn)(const tern_outbox_entry_t *entry, void *arg);

/*  Queues an ack-state outbox entry (replication of ACK/TERM/dead state by
    msg_id): OP is TERN_CMD_ACK, TERN_CMD_TERM, ... GROUP is copied.
    Positions are shared with the message entries of the outbox (in a
    cluster: of the topic's partition, and MSG_ID 0 is read from the log).
    POS_OUT (may be NULL) gets the entry's position at commit (0 if none:
    the topic is gone). */
void tern_store_batch_ackstate(tern_store_batch_t *self, uint32_t topic_id, const char *group,
                               uint64_t seq, uint64_t msg_id, uint32_t op, uint64_t *pos_out);

/*  Queues applying a peer DC's ack-state change by MSG_ID (replication of
    acks and dead-lettering): OP is TERN_CMD_ACK (acked) or TERN_CMD_TERM (to
    the DLQ). REASON (copied; may be NULL) says where it happened: the detail
    of the ACKED event, or the DLQ reason. GROUP is created on the message's
    topic if missing (starting at the first stored seq). The change is
    applied like a local ack or dead-lettering (same counters, same ACKED /
    DEAD history event), and counts as no delivery here:
    - pending in the group: the entry is acked / dead-lettered;
    - not delivered here yet: the messages of its priority lane between the
      lane cursor and it become pending entries with delivery count 0, due
      now (so they are still delivered: at-least-once), the cursor moves
      past it, and it is acked / dead-lettered;
    - in the group's DLQ: an ack removes it from there (the peer replayed and
      acked it), a TERM leaves it;
    - already acked here, or unknown here (not replicated yet, or removed):
      left alone.
    Not written to the outbox. Nothing here can refuse it: RESULT (may be
    NULL; borrowed until the commit) gets, when it changed something, the
    message's topic_id, seq and msg_id (seq 0: nothing changed), so that a
    cluster's leader can ship the change to its followers (a CREPL_GROUP ack
    or dead op with aux TERN_GOP_AUX_PEER, applied there by seq the same way).
    A failed commit sets RESULT->err. */
void tern_store_batch_ackstate_apply(tern_store_batch_t *self, const char *group, uint64_t msg_id,
                                     uint32_t op, const char *reason, tern_append_result_t *result);

/*  Queues recording that PEER (copied; empty is ignored) confirmed the
    outbox up to POSITION (a lower position than recorded is ignored). With
    trace on, the time of each move is kept (tern_store_trace_confirmed_at). */
void tern_store_batch_outbox_confirm(tern_store_batch_t *self, const char *peer, uint64_t position);

/*  Queues setting the inbound cursor of ORIGIN (a name of up to
    TERN_TOPIC_MAX bytes, e.g. "DC" or "DC/IDENTITY", copied; empty is
    ignored) to POSITION; queue it in the same batch as the records
    it covers, so a crash can never apply twice or skip. */
void tern_store_batch_inbound(tern_store_batch_t *self, const char *origin, uint64_t position);

/*  Calls FN for outbox entries with position >= FROM, at most MAX of them
    (ENTRY borrowed for the call; FN returns false to stop). TERN_ECORRUPT on
    a malformed entry. */
tern_err_t tern_store_outbox_read(tern_store_reader_t *self, uint64_t from, size_t max,
                                  tern_outbox_fn *fn, void *arg);

/*  The last outbox position into *POSITION (0 when none yet). */
tern_err_t tern_store_outbox_last(tern_store_reader_t *self, uint64_t *position);

/*  The same per partition PT of a clustered store (PARTITIONS > 0; on a
    single node PT must be 0): entries of PT with position >= FROM, PT's
    last position (0 when none yet), what PEER confirmed of PT. TERN_EINVAL
    for PT >= PARTITIONS (or != 0 on a single node) or an empty peer name,
    TERN_ECORRUPT on a malformed entry. Positions of a partition may have
    gaps (a follower's tail given back after a failover, or a new leader's
    outbox continued from its own last); readers take them in key order. */
tern_err_t tern_store_outbox_read_pt(tern_store_reader_t *self, uint32_t pt, uint64_t from,
                                     size_t max, tern_outbox_fn *fn, void *arg);
tern_err_t tern_store_outbox_last_pt(tern_store_reader_t *self, uint32_t pt, uint64_t *pos);
tern_err_t tern_store_outbox_confirmed_pt(tern_store_reader_t *self, const char *peer, uint32_t pt,
                                          uint64_t *pos);

/*  Queues recording that PEER (copied; empty is ignored) confirmed
    partition PT's outbox up to POS (a lower position than recorded is
    ignored). On a single node PT 0 is tern_store_batch_outbox_confirm; in
    a cluster the leader queues it and its followers queue the same as it
    reaches them (replicated partition state); no confirmation history is
    kept per partition (tern_store_trace_confirmed_at is single-node). */
void tern_store_batch_outbox_confirm_pt(tern_store_batch_t *self, const char *peer, uint32_t pt,
                                        uint64_t pos);

/*  A clustered store's follower: queues writing ENTRY (copied) at exactly
    (ENTRY->partition, ENTRY->position), replacing what is there, for an
    ack-state entry or an entry of the leader's catch-up answer. TOPIC
    (copied) names the entry's topic (ENTRY->topic_id is ignored: ids are
    per node); a topic unknown here stores topic id 0. The partition's last
    position moves up to it. Ignored on a single node, for a partition out
    of range or position 0. */
void tern_store_batch_outbox_put(tern_store_batch_t *self, const char *topic,
                                 const tern_outbox_entry_t *entry);

/*  A clustered store's follower, at the start of the leader's catch-up of
    partition PT: queues removing PT's entries with position >= FROM and
    setting PT's last position to LAST (it may go down: a tail the leader
    does not have is given back). The leader's entries from FROM follow
    (tern_store_batch_outbox_put). Ignored on a single node. */
void tern_store_batch_outbox_reset_pt(tern_store_batch_t *self, uint32_t pt, uint64_t from,
                                      uint64_t last);

/*  What a commit wrote to the outbox of a clustered store: one mark per
    partition whose outbox it extended, with the highest position written
    (the repl actor ships up to it once the ISR holds the commit:
    TERN_WORK_OBSAFE). */
typedef struct {
    uint32_t partition; //  the partition
    uint64_t position;  //  the highest outbox position the commit wrote in it
} tern_outbox_mark_t;

/*  The marks of SELF's last successful commit into *COUNT and the returned
    array (borrowed until SELF's next commit or destroy; NULL with *COUNT 0
    when none, always on a single node). */
const tern_outbox_mark_t *tern_store_batch_outbox_marks(const tern_store_batch_t *self,
                                                        size_t *count);

/*  What PEER confirmed into *POSITION (0 when nothing yet). TERN_EINVAL for
    an empty name. */
tern_err_t tern_store_outbox_confirmed(tern_store_reader_t *self, const char *peer,
                                       uint64_t *position);

/*  What was applied from ORIGIN into *POSITION (0 when nothing yet).
    TERN_EINVAL for an empty name. */
tern_err_t tern_store_inbound_get(tern_store_reader_t *self, const char *origin,
                                  uint64_t *position);

/* ------------------------------------------------------------------------
    In-DC replicas (docs/cluster.md, docs/protocol.md section 14): in a
    clustered DC a follower holds its partition leader's log exactly, the
    same (topic, seq), msg_id and dedup entries, so a group cursor means the
    same on every replica. A follower appends only what the leader ships,
    at the leader's seq; before it catches up it gives back the tail the
    leader does not have (truncation); replicas compare logs by digest.
   ------------------------------------------------------------------------ */

/*  Queues the in-DC follower's append of MSG (borrowed until commit, payload
    and meta included; a decoded CREPL_RECORD) at exactly MSG->seq of topic
    MSG->topic (created on first use with no limits), with MSG->msg_id and
    every field as given: no new id, no outbox entry of its own, no dedup refusal.
    - MSG->outbox_pos > 0 (a clustered store): the leader's outbox entry of
      the record is written at (the topic's partition, MSG->outbox_pos).
    - MSG->seq > the topic's last_seq: stored (seqs skipped by the leader
      stay gaps), last_seq = MSG->seq; the msgid index, priority lane,
      expiry index and history as for tern_store_batch_append, and the
      dedup entry (producer, producer_seq) -> MSG->msg_id is written,
      replacing any entry of that pair (the leader decided it was new).
    - MSG->seq <= last_seq: nothing is written. When the record at that seq
      has MSG->msg_id (or had it, and was removed here by TTL or retention),
      RESULT->duplicate is set and err is TERN_OK: a record the follower got
      both in its catch-up and in the live stream is harmless. Any other
      record there (or none) is TERN_ESTATE: the follower's log diverged
      from the leader's and must be truncated first.
    At commit RESULT (may be NULL) gets err: TERN_OK, TERN_ESTATE (above,
    or MSG->msg_id stored at another place here), TERN_ERANGE (seq 0, or a
    priority over TERN_PRIORITY_MAX), TERN_ETOPIC, TERN_ETOOBIG, TERN_EINVAL,
    TERN_ELIMIT, TERN_EFULL as tern_store_batch_append; seq and msg_id are
    MSG's. */
void tern_store_batch_append_replica(tern_store_batch_t *self, const tern_frame_t *msg,
                                     tern_append_result_t *result);

/*  As tern_store_batch_append_replica, for a record of the leader's live
    stream, which follows the topic's last record: MSG->seq must be
    last_seq + 1 (a topic not here yet: 1). A higher seq is refused with
    TERN_ESTATE and nothing is written: a record was lost on the way, and
    storing this one would leave a hole in the copy that no later SYNC
    anchor shows (anchors are sampled). Seqs <= last_seq as there. A
    catch-up (a snapshot of the leader's log, whose own gaps are real: TTL,
    retention, purge) appends with tern_store_batch_append_replica. */
void tern_store_batch_append_replica_next(tern_store_batch_t *self, const tern_frame_t *msg,
                                          tern_append_result_t *result);

/*  Queues the in-DC follower's truncation of TOPIC (copied) to AFTER_SEQ:
    - every message with seq > AFTER_SEQ is removed with its msgid, lane and
      expiry entries and its dedup entry (when that names the message: a
      later publish of the same (producer, producer_seq) is new again);
    - the history of every seq past AFTER_SEQ goes too (events, and the
      msgid entries they anchor, also of messages TTL or retention removed
      before): those seqs will hold other messages, and history is keyed by
      seq;
    - every group of the topic drops its pending and DLQ entries of those
      seqs (counters follow) and has each lane cursor past AFTER_SEQ + 1
      moved back to it;
    - last_seq becomes AFTER_SEQ, so the next append, replica or local,
      gets seq AFTER_SEQ + 1.
    AFTER_SEQ >= last_seq changes nothing (a truncation never makes a gap).
    At commit *RESULT_ERR (may be NULL) is TERN_OK (also for a missing
    topic: nothing to remove) or TERN_ETOPIC (empty or too long a name);
    *REMOVED (may be NULL) the messages removed. */
void tern_store_batch_truncate(tern_store_batch_t *self, const char *topic, uint64_t after_seq,
                               tern_err_t *result_err, uint64_t *removed);

/*  As tern_store_batch_truncate, and when LAST_SEQ is beyond the topic's
    last_seq, last_seq is raised to it (first_seq too when no message is
    stored): the leader's log of TOPIC ends at LAST_SEQ and the seqs between
    are gone there (TTL, retention), so the live stream's next record,
    LAST_SEQ + 1, follows (tern_store_batch_append_replica_next). A missing
    topic is left missing (TERN_OK, 0 removed). */
void tern_store_batch_end_at(tern_store_batch_t *self, const char *topic, uint64_t last_seq,
                             tern_err_t *result_err, uint64_t *removed);

/*  Makes the operation queued last on SELF (a replica append or a
    truncation) conditional: at commit it runs only if *PRIOR (typically the
    result of an earlier operation of this batch; must stay valid until the
    commit) is TERN_OK by then, else it changes nothing and fails with
    TERN_ESTATE. An in-DC follower chains a stream's records this way: once
    one fails, none of the leader's later records lands above it (it would
    hide the divergence from the leader's SYNC anchors). */
void tern_store_batch_only_if(tern_store_batch_t *self, const tern_err_t *prior);

/*  A 64-bit digest of TOPIC's stored messages with seq <= UPTO, for
    `ternctl cluster verify`: xxHash64 (tern_partition_hash) chained over
    each message in seq order, of its seq, msg_id, the CRC32C of its record
    without the node-local parts (the topic id and the frame's flag bits)
    and, for a message stored (its timestamp, set by the leader that took
    the publish) at or after DEDUP_SINCE (unix ns; 0: every message), its
    dedup entry (the msg_id and seq it names, or its absence). Stores that
    hold the same messages at the same seqs with the same dedup entries
    give the same digest, whichever way they were written (local appends on
    a leader, replica appends on a follower); any difference in those
    changes it. A missing topic digests as an empty one (0).
    Why DEDUP_SINCE: each node stamps a dedup entry with its own commit
    time and expires it (window) and messages (TTL, retention) on its own
    clock, so older entries legitimately differ: a follower that copied the
    log minutes late (re-seeded from an empty data dir) keeps them up to a
    window longer, and near the window's end each node sweeps at its own
    moment. Pass a time every replica's entries are younger than (verify:
    its clock minus half the window), and compare up to a position both
    replicas hold. *DIGEST is 0 on error. Returns TERN_OK, TERN_EINVAL
    (DIGEST NULL), TERN_ETOPIC (empty or too long a name), TERN_ECORRUPT (a
    record's CRC does not match; counted in corrupt_records). */
tern_err_t tern_store_digest(tern_store_reader_t *self, const char *topic, uint64_t upto,
                             uint64_t dedup_since, uint64_t *digest);

/*  Group state from the in-DC leader (docs/cluster.md, "Group state"), by
    topic NAME (ids are node-local; resolved at commit, so a topic created
    earlier in the same batch is found). Every argument is copied. A topic
    this replica lacks changes nothing and adds 1 to *SKIPPED (may be NULL);
    so does a DELIVER or DEAD of a seq beyond its last_seq or of a group it
    lacks, and a snapshot entry beyond its last_seq. Re-applying ops the
    state already holds converges (tern_store_gstate.c says why per op).
    - group_apply: GOP as the leader's storer applied it (tern_gop_type_t:
      the same steps as tern_store_batch_deliver, _ack, ... above);
    - gstate_put: STATE's lane cursors, counters and entries; REPLACE: the
      group's state (created if missing) is replaced by exactly STATE, else
      STATE's entries are added to the existing group (a snapshot's
      continuation);
    - gstate_prune: every group of TOPIC not in NAMES (COUNT names) is
      deleted with its pending and DLQ entries; *SKIPPED counts them. Only
      groups in a range of names (strcmp order) are looked at: after AFTER
      (NULL: from the first) up to UPTO included (NULL: to the last), so a
      leader's names can come in several frames, each with its range. */
void tern_store_batch_group_apply(tern_store_batch_t *self, const char *topic,
                                  const tern_gop_t *gop, uint64_t *skipped);
void tern_store_batch_gstate_put(tern_store_batch_t *self, const char *topic,
                                 const tern_gstate_t *state, bool replace, uint64_t *skipped);
void tern_store_batch_gstate_prune(tern_store_batch_t *self, const char *topic,
                                   const char *const *names, size_t count, const char *after,
                                   const char *upto, uint64_t *skipped);

/*  A 64-bit digest of TOPIC's group state for `ternctl cluster verify`:
    xxHash64 chained over each group in name order: its name, its lane
    cursors (capped at UPTO + 1), its pending entries with seq <= UPTO
    (seq, delivery count) and its DLQ entries with seq <= UPTO (seq,
    reason). Counters, due times and creation times are left out: they
    legitimately differ between replicas. A missing topic digests as 0.
    Returns TERN_OK, TERN_EINVAL (DIGEST NULL), or a read error. */
tern_err_t tern_store_group_digest(tern_store_reader_t *self, const char *topic, uint64_t upto,
                                   uint64_t *digest);

/* ------------------------------------------------------------------------
    Message history for audit and trace (docs/storage.md, "Trace events").
    Every message has a STORED event: tern_store_trace_scan makes it from the
    log record while the message is stored and it is written when the
    message is removed (same fields and at_ns: the append's commit time);
    deliver, ack, nack, dead, DLQ replay and the TTL sweep write theirs in
    the same transaction as the change. Events are kept trace_retention_ms
    after the message was stored, also after the message itself is gone.
    Disabled when trace_retention_ms is 0.
   ------------------------------------------------------------------------ */

/*  Event types (tern_trace_type_t) and the detail limit are at the top:
    acks and nacks name their event too. */

typedef struct {
    uint8_t type;                           //  tern_trace_type_t
    uint32_t topic_id;                      //  the message's topic
    uint64_t seq;                           //  its seq
    uint64_t at_ns;                         //  commit time of the event
    uint32_t delivery_count;                //  DELIVERED / NACKED / DEAD
    uint64_t msg_id;                        //  STORED: the message id
    uint64_t expire_at_ns;                  //  STORED: expiry, 0 = never
    char group[TERN_NAME_MAX + 1];          //  the group ("" if none); STORED: origin
    char detail[TERN_TRACE_DETAIL_MAX + 1]; //  trace_id, consumer, reason or peer
} tern_trace_event_t;

/*  Queues an extra event (e.g. REPLICATED by the repl actor). GROUP and
    DETAIL may be NULL; both are copied. Nothing is written with trace off. */
void tern_store_batch_trace(tern_store_batch_t *self, uint32_t topic_id, uint64_t seq,
                            tern_trace_type_t type, const char *group, const char *detail);

/*  The topic id and seq of MSG_ID from its history (also after the message
    was removed). TERN_ENOTFOUND if no history is kept for it (trace off, or
    swept after trace_retention_ms). */
tern_err_t tern_store_trace_find(tern_store_reader_t *self, uint64_t msg_id, uint32_t *topic_id,
                                 uint64_t *seq);

/*  The outbox position of MSG_ID (0 when it did not originate here, so it
    is never shipped): the message reached peer P once P confirmed a
    position >= it (tern_store_outbox_confirmed). TERN_ENOTFOUND if no
    history is kept for it. */
tern_err_t tern_store_trace_outbox(tern_store_reader_t *self, uint64_t msg_id, uint64_t *position);

/*  When PEER's confirmation covering outbox POSITION was recorded: the
    commit time (unix ns) of the first stored confirmation of PEER at or past
    POSITION (tern_store_batch_outbox_confirm records one, with trace on,
    each time a peer's confirmed position moves; kept trace_retention_ms).
    TERN_ENOTFOUND when that time is not known: not confirmed yet, or the
    covering confirmation was not recorded (before an upgrade, trace
    disabled, storage-full retry) or was swept. */
tern_err_t tern_store_trace_confirmed_at(tern_store_reader_t *self, const char *peer,
                                         uint64_t position, uint64_t *at_ns);

/*  Calls FN for every event of TOPIC_ID's messages FROM_SEQ..TO_SEQ, in seq
    order and, within a message, in commit order (EVENT borrowed for the
    call); FN returns false to stop. TERN_ECORRUPT on a malformed event. */
typedef bool(tern_trace_fn)(const tern_trace_event_t *event, void *arg);
tern_err_t tern_store_trace_scan(tern_store_reader_t *self, uint32_t topic_id, uint64_t from_seq,
                                 uint64_t to_seq, tern_trace_fn *fn, void *arg);

#endif
