/*  tern_store.h - the broker's memory: topics, log, dedup, groups, expiry,
    outbox, on LMDB.

    storage/ is the only code that includes lmdb.h. One tern_store_t per node
    owns one LMDB environment (named databases inside). There is ONE writer:
    every change goes through a tern_store_batch_t, which queues operations and
    applies them all in one write transaction and one commit (group commit);
    the caller learns each operation's result only after tern_store_batch_commit
    returns, and must acknowledge producers only then.

    Readers use tern_store_reader_t handles: one per thread, short read
    transactions (MDB_NOTLS) opened by tern_store_read_begin and closed by
    tern_store_read_end; a reader must never be held open across a wait. Any
    pointer a read returns (payload, metadata) is BORROWED from the LMDB map and
    valid only until tern_store_read_end on that reader.

    Threads: tern_store_new/destroy on one thread while no reader or batch is
    live. A batch is used by one thread at a time (the writer); each reader by
    one thread at a time. Readers on different threads run concurrently with the
    writer.
*/
#ifndef TERN_STORE_H_INCLUDED
#define TERN_STORE_H_INCLUDED

#include "tern_err.h"
#include "tern_proto.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tern_store_t tern_store_t;
typedef struct tern_store_batch_t tern_store_batch_t;
typedef struct tern_store_reader_t tern_store_reader_t;

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
} tern_store_config_t;

/*  OUTBOX false: local appends (tern_store_batch_append with LOCAL true)
    write no outbox entry, and their recorded outbox position is 0, as for
    remote records; set it on a node with no replication peers (one B-tree
    put less per publish). Messages stored while it is false are never
    shipped, even if peers are configured later (they get what is appended
    after). Ack-state entries (tern_store_batch_ackstate) are queued
    explicitly and still written. A zeroed config (without
    tern_store_config_defaults) has it false. */

/*  Fills CONFIG with the defaults above (dir = "./tern-data"). */
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

/*  Opens (creating if needed) the store in CONFIG->dir. Takes the directory
    lock (TERN_STORE_LOCK_FILE) before LMDB opens the environment, then clears
    stale reader slots (mdb_reader_check). Caller owns the result. On failure
    returns NULL and sets *ERR:
    - TERN_EBUSY: another live store holds the directory, in this process
      or another (tern_store_lock_holder names its pid);
    - TERN_ESTORAGE: the directory cannot be created, is not a directory, or
      cannot be opened; errno is then the system error (ENOTDIR, EACCES,
      ENOSPC...), or 0 when LMDB itself failed;
    - TERN_ECONFIG: a config field is out of range;
    - TERN_ECORRUPT: a data directory of another store format (a format 1
      store, with its `tindex` database, or a "store.format" other than
      TERN_STORE_FORMAT, such as 2); refused with a one-line explanation on
      stderr, never modified or misread. */
tern_store_t *tern_store_new(const tern_store_config_t *config, tern_err_t *err);

/*  Closes the store (final sync), then releases the directory lock. Safe on
    NULL; nulls *SELF_P. */
void tern_store_destroy(tern_store_t **self_p);

/*  The pid written in DIR's lock file by the store that holds (or last held)
    it, or 0 when there is none to read. For the message after TERN_EBUSY. */
long tern_store_lock_holder(const char *dir);

/*  Counters for metrics and status (read with relaxed atomics, any thread). */
typedef struct {
    uint64_t map_size;          //  current LMDB map size, bytes
    uint64_t map_used;          //  bytes in use (last page * page size)
    uint64_t file_bytes;        //  data.mdb size on disk
    uint64_t commits;           //  write transactions committed
    uint64_t map_grows;         //  times the map grew
    uint64_t full_errors;       //  batches that hit storage-full
    uint64_t corrupt_records;   //  CRC mismatches seen by readers
    uint64_t expired;           //  messages removed by TTL sweeps
    uint64_t retention_trimmed; //  messages removed by max_age/max_msgs/max_bytes
    uint64_t outbox_dropped;    //  outbox entries dropped unconfirmed (retention)
    uint64_t dedup_entries;     //  dedup entries on disk
    uint32_t topics;            //  number of topics
    uint64_t superseded;        //  replication conflicts: a copy removed for a lower msg_id
} tern_store_stats_t;

void tern_store_stats(tern_store_t *self, tern_store_stats_t *out);

/*  Clears stale reader slots; call periodically. Returns slots cleared. */
int tern_store_reader_check(tern_store_t *self);

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

/* ------------------------------------------------------------------------
    Write batches (the single writer). Queue operations, then commit once.
    Every pointer given to a queue call is BORROWED until commit returns.
    Result pointers are filled by commit.
   ------------------------------------------------------------------------ */

/*  Caller owns the result; reuse it across commits (reset happens at commit). */
tern_store_batch_t *tern_store_batch_new(tern_store_t *store);
void tern_store_batch_destroy(tern_store_batch_t **self_p);

/*  Number of queued operations. */
size_t tern_store_batch_size(tern_store_batch_t *self);

/*  Result of one append. */
typedef struct {
    tern_err_t err;    //  TERN_OK, TERN_EFULL, TERN_ELIMIT (max topics), ...
    uint32_t topic_id; //  the topic's id
    uint64_t seq;      //  the new seq, or the original's when duplicate
    uint64_t msg_id;   //  MSG->msg_id, or the original's when duplicate
    bool duplicate;    //  (producer, producer_seq) seen within the window
} tern_append_result_t;

/*  Queues the append of one message. MSG is a decoded PUBLISH (or REPL_RECORD)
    frame whose msg_id, timestamp_ns, expire_at_ns, origin and trace_id the
    broker has filled in; its topic is created on first use with default
    limits. If MSG->producer is non-empty, (producer, producer_seq) is checked
    against the dedup window first: a duplicate stores nothing and reports the
    original. LOCAL is true for messages that originated on this node: they get
    an outbox entry for replication. */
void tern_store_batch_append(tern_store_batch_t *self, const tern_frame_t *msg, bool local,
                             tern_append_result_t *result);

/*  Queues a topic creation or limit change (CREATE if missing, else updates
    limits). *RESULT_ERR and *ID_OUT (may be NULL) are filled at commit. */
void tern_store_batch_topic_put(tern_store_batch_t *self, const char *name, uint64_t max_age_ms,
                                uint64_t max_msgs, uint64_t max_bytes, tern_err_t *result_err,
                                uint32_t *id_out);

/*  Queues deleting a topic with its log, groups and indexes (DELETE), or just
    its messages (PURGE; seqs continue). *RESULT_ERR: TERN_ENOTFOUND if absent.
    *REMOVED (may be NULL): messages removed. */
void tern_store_batch_topic_delete(tern_store_batch_t *self, const char *name, bool purge_only,
                                   tern_err_t *result_err, uint64_t *removed);

/*  Groups. A group is (topic id, name). Its durable state: one cursor per
    priority lane (the next seq not yet delivered in that lane), the pending
    set (delivered, unacked), the DLQ, and counters. A seq below its lane cursor
    that is neither pending nor in the DLQ is acked (or expired). */
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

/*  Queues creating group NAME on TOPIC_ID if it does not exist, starting at
    START/START_VALUE (see tern_start_t): lanes start at the first stored seq,
    at last_seq + 1 (NEW), at START_VALUE (SEQ), or at the first seq whose
    timestamp is >= START_VALUE ns (TIME). An existing group is left as is.
    *RESULT_ERR filled at commit. */
void tern_store_batch_group_open(tern_store_batch_t *self, uint32_t topic_id, const char *name,
                                 tern_start_t start, uint64_t start_value, tern_err_t *result_err);

/*  Queues deleting a group and all its state. */
void tern_store_batch_group_delete(tern_store_batch_t *self, uint32_t topic_id, const char *name,
                                   tern_err_t *result_err);

/*  Queues recording a delivery of SEQ (priority lane PRIORITY) to the group:
    the pending entry is created or updated with DELIVERY_COUNT and
    DUE_MS (unix ms at which it is redelivered if not acked), and the lane
    cursor moves past SEQ if it was not yet. */
void tern_store_batch_deliver(tern_store_batch_t *self, uint32_t topic_id, const char *group,
                              uint64_t seq, uint8_t priority, uint32_t delivery_count,
                              uint64_t due_ms);

/*  Queues an ack of SEQ: its pending entry is removed. An unknown seq is not
    an error here (the broker checks against its in-memory state). */
void tern_store_batch_ack(tern_store_batch_t *self, uint32_t topic_id, const char *group,
                          uint64_t seq);

/*  Queues a nack: the pending entry's due time becomes DUE_MS. */
void tern_store_batch_nack(tern_store_batch_t *self, uint32_t topic_id, const char *group,
                           uint64_t seq, uint64_t due_ms);

/*  Queues moving SEQ from pending to the group's DLQ with REASON and
    DELIVERY_COUNT. */
void tern_store_batch_dead(tern_store_batch_t *self, uint32_t topic_id, const char *group,
                           uint64_t seq, uint32_t delivery_count, const char *reason);

/*  Queues moving every DLQ entry of the group back to pending with delivery
    count 0 and due time DUE_MS (so they are redelivered). *MOVED (may be NULL)
    receives the count. */
void tern_store_batch_dlq_replay(tern_store_batch_t *self, uint32_t topic_id, const char *group,
                                 uint64_t due_ms, uint64_t *moved);

/*  Queues a sweep: removes up to MAX messages whose expire_at <= NOW_NS (and
    their index entries), applies max_age retention, and drops dedup entries
    older than the window and outbox entries past retention. *REMOVED (may be
    NULL) receives the messages removed. The dedup part removes at most MAX
    entries and visits at most MAX producers; the next sweep resumes where
    it stopped (docs/storage.md, Dedup). */
void tern_store_batch_sweep(tern_store_batch_t *self, uint64_t now_ns, uint32_t max,
                            uint64_t *removed);

/*  Queues setting a named u64 in the meta database (e.g. "id.last_ms", the
    last snowflake timestamp issued, persisted with every batch). */
void tern_store_batch_set_u64(tern_store_batch_t *self, const char *name, uint64_t value);

/*  Replication (see docs/replication.md): */

/*  Queues recording that PEER confirmed the outbox up to POSITION. */
void tern_store_batch_outbox_confirm(tern_store_batch_t *self, const char *peer, uint64_t position);

/*  Queues setting the inbound cursor of ORIGIN (a dc/node name) to POSITION;
    queue it in the same batch as the records it covers. */
void tern_store_batch_inbound(tern_store_batch_t *self, const char *origin, uint64_t position);

/*  Commits every queued operation in ONE write transaction. If the map is full
    it grows (up to map_max) and retries; when it cannot grow, appends fail
    with TERN_EFULL while acks, deletes and sweeps still commit (so consumers
    keep draining). Returns TERN_OK when the transaction committed (individual
    results may still carry errors), or the error that made the whole batch
    fail (every result then carries it). The batch is empty afterwards. */
tern_err_t tern_store_batch_commit(tern_store_batch_t *self);

/* ------------------------------------------------------------------------
    Readers
   ------------------------------------------------------------------------ */

/*  Caller owns the result. One per thread. */
tern_store_reader_t *tern_store_reader_new(tern_store_t *store);
void tern_store_reader_destroy(tern_store_reader_t **self_p);

/*  Opens (renews) the read transaction: a snapshot of the last commit. */
tern_err_t tern_store_read_begin(tern_store_reader_t *self);

/*  Closes (resets) it; every pointer obtained since begin becomes invalid. */
void tern_store_read_end(tern_store_reader_t *self);

/*  Inside begin/end: */

tern_err_t tern_store_get_u64(tern_store_reader_t *self, const char *name, uint64_t *value);

tern_err_t tern_store_topic_get(tern_store_reader_t *self, const char *name,
                                tern_topic_info_t *out);
tern_err_t tern_store_topic_get_id(tern_store_reader_t *self, uint32_t id, tern_topic_info_t *out);

/*  Calls FN for each topic in name order; FN returns false to stop. */
typedef bool(tern_topic_fn)(const tern_topic_info_t *topic, void *arg);
tern_err_t tern_store_topic_list(tern_store_reader_t *self, tern_topic_fn *fn, void *arg);

/*  Reads the message at (TOPIC_ID, SEQ) into OUT: a DELIVER-shaped frame
    (cmd TERN_CMD_DELIVER) with every message field, meta and payload borrowed
    from the map until read_end. Verifies the record's CRC32C: a mismatch
    returns TERN_ECORRUPT and counts it. TERN_ENOTFOUND if absent. */
tern_err_t tern_store_read(tern_store_reader_t *self, uint32_t topic_id, uint64_t seq,
                           tern_frame_t *out);

/*  Finds the stored message with MSG_ID: its topic id and seq.
    TERN_ENOTFOUND once it was removed (its history may still be found with
    tern_store_trace_find). */
tern_err_t tern_store_find_msg(tern_store_reader_t *self, uint64_t msg_id, uint32_t *topic_id,
                               uint64_t *seq);

/*  Lists up to MAX seqs of priority lane PRIORITY of TOPIC_ID that are
    >= FROM_SEQ, in order, into SEQS; *COUNT receives how many. */
tern_err_t tern_store_lane_scan(tern_store_reader_t *self, uint32_t topic_id, uint8_t priority,
                                uint64_t from_seq, uint64_t *seqs, size_t max, size_t *count);

tern_err_t tern_store_group_get(tern_store_reader_t *self, uint32_t topic_id, const char *name,
                                tern_group_info_t *out);

/*  Calls FN for each group of TOPIC_ID (every topic if TOPIC_ID is 0). */
typedef bool(tern_group_fn)(const tern_group_info_t *group, void *arg);
tern_err_t tern_store_group_list(tern_store_reader_t *self, uint32_t topic_id, tern_group_fn *fn,
                                 void *arg);

/*  A pending or dead-lettered entry of a group. */
typedef struct {
    uint64_t seq;                     //  the message's seq
    uint32_t delivery_count;          //  deliveries so far
    uint64_t due_ms;                  //  pending: redelivery time; dead: time it died
    uint8_t priority;                 //  its lane
    char reason[TERN_REASON_MAX + 1]; //  dead: why
} tern_entry_t;

typedef bool(tern_entry_fn)(const tern_entry_t *entry, void *arg);

/*  Calls FN for each pending entry of the group in seq order. */
tern_err_t tern_store_pending_list(tern_store_reader_t *self, uint32_t topic_id, const char *group,
                                   tern_entry_fn *fn, void *arg);

/*  Calls FN for each DLQ entry of the group in seq order. */
tern_err_t tern_store_dlq_list(tern_store_reader_t *self, uint32_t topic_id, const char *group,
                               tern_entry_fn *fn, void *arg);

/*  Outbox: the local commit order. Each entry is a message (topic id, seq,
    msg_id) or an ack-state change (REPL_ACKSTATE fields). */
typedef struct {
    uint64_t position;             //  outbox position, from 1
    bool is_ackstate;              //  false: a message; true: an ack-state change
    uint32_t topic_id;             //  message: its topic
    uint64_t seq;                  //  message: its seq
    uint64_t msg_id;               //  message id (both kinds)
    char group[TERN_NAME_MAX + 1]; //  ack-state: the group
    uint32_t op;                   //  ack-state: TERN_CMD_ACK, TERN_CMD_TERM...
    uint64_t at_ns;                //  commit time
} tern_outbox_entry_t;

typedef bool(tern_outbox_fn)(const tern_outbox_entry_t *entry, void *arg);

/*  Calls FN for outbox entries with position >= FROM, at most MAX of them. */
tern_err_t tern_store_outbox_read(tern_store_reader_t *self, uint64_t from, size_t max,
                                  tern_outbox_fn *fn, void *arg);

/*  The last outbox position, and what PEER confirmed / what was applied from
    ORIGIN. */
tern_err_t tern_store_outbox_last(tern_store_reader_t *self, uint64_t *position);
tern_err_t tern_store_outbox_confirmed(tern_store_reader_t *self, const char *peer,
                                       uint64_t *position);
tern_err_t tern_store_inbound_get(tern_store_reader_t *self, const char *origin,
                                  uint64_t *position);

/* ------------------------------------------------------------------------
    Additions by the storage implementation (see docs/storage.md)
   ------------------------------------------------------------------------ */

/*  Queues an ack-state outbox entry (replication of ACK/TERM/dead state by
    msg_id): OP is TERN_CMD_ACK, TERN_CMD_TERM, ... Positions are shared with
    the message entries of the outbox. */
void tern_store_batch_ackstate(tern_store_batch_t *self, uint32_t topic_id, const char *group,
                               uint64_t seq, uint64_t msg_id, uint32_t op);

/*  Replication conflicts (docs/replication.md): when a replicated record
    (append with local = false) carries a (producer, producer_seq) that is
    already stored here under ANOTHER msg_id within the dedup window, the copy
    with the lowest msg_id wins in every DC: if the incoming one is lower, the
    stored copy is removed from the log (and its indexes), the dedup entry
    then names the incoming record, which is stored; otherwise the incoming
    one is reported as a duplicate and not stored. Each removal counts in
    tern_store_stats_t.superseded. Local publishes are never affected: a
    producer's retry is a duplicate of what is stored, as before. */

/*  Queues applying a peer DC's ack-state change by MSG_ID (replication of
    acks and dead-lettering): OP is TERN_CMD_ACK (acked) or TERN_CMD_TERM (to
    the DLQ). REASON (may be NULL) says where it happened: the detail of the
    ACKED event, or the DLQ reason. GROUP is created on the message's topic
    if missing (starting at the first stored seq). The change is applied like
    a local ack or dead-lettering (same counters, same ACKED / DEAD history
    event), and counts as no delivery here:
    - pending in the group: the entry is acked / dead-lettered;
    - not delivered here yet: the messages of its priority lane between the
      lane cursor and it become pending entries with delivery count 0, due
      now (so they are still delivered: at-least-once), the cursor moves
      past it, and it is acked / dead-lettered;
    - in the group's DLQ: an ack removes it from there (the peer replayed and
      acked it), a TERM leaves it;
    - already acked here, or unknown here (not replicated yet, or removed):
      left alone.
    Not written to the outbox. */
void tern_store_batch_ackstate_apply(tern_store_batch_t *self, const char *group, uint64_t msg_id,
                                     uint32_t op, const char *reason);

/*  CRC32C (Castagnoli) of LEN bytes at BUF, continuing from CRC (0 to start).
    Uses SSE4.2 when the CPU has it; tern_crc32c_sw is the table version (both
    give the same result; exposed for tests). Thread-safe. */
uint32_t tern_crc32c(uint32_t crc, const void *buf, size_t len);
uint32_t tern_crc32c_sw(uint32_t crc, const void *buf, size_t len);

/*  Decodes one stored log record (a value of the log DBI) of SIZE bytes at
    DATA into OUT, a DELIVER-shaped frame (no topic name: *TOPIC_ID gets the
    topic id), never reading outside DATA. VERIFY also checks the CRC32C.
    OUT's meta and payload borrow DATA. Returns TERN_OK or TERN_ECORRUPT.
    Pure (no LMDB, thread-safe): tern_store_read uses the same parser; the
    fuzz target tests/fuzz/fuzz_record.c drives it. */
tern_err_t tern_store_record_decode(const uint8_t *data, size_t size, bool verify,
                                    uint32_t *topic_id, tern_frame_t *out);

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

/*  tern_store_batch_deliver that also names the consumer in the DELIVERED
    event (CONSUMER borrowed until the call returns; may be NULL). */
void tern_store_batch_deliver_to(tern_store_batch_t *self, uint32_t topic_id, const char *group,
                                 uint64_t seq, uint8_t priority, uint32_t delivery_count,
                                 uint64_t due_ms, const char *consumer);

/*  tern_store_batch_ack whose history event is TYPE instead of ACKED (the
    broker removes with TERN_TRACE_EXPIRED a pending entry whose message
    expired before it was acked). */
void tern_store_batch_ack_as(tern_store_batch_t *self, uint32_t topic_id, const char *group,
                             uint64_t seq, tern_trace_type_t type);

/*  tern_store_batch_nack whose history event is TYPE instead of NACKED
    (TERN_TRACE_TIMEOUT when ack_wait ran out). */
void tern_store_batch_nack_as(tern_store_batch_t *self, uint32_t topic_id, const char *group,
                              uint64_t seq, uint64_t due_ms, tern_trace_type_t type);

/*  Queues an extra event (e.g. REPLICATED by the repl actor). GROUP and
    DETAIL may be NULL; both are copied. */
void tern_store_batch_trace(tern_store_batch_t *self, uint32_t topic_id, uint64_t seq,
                            tern_trace_type_t type, const char *group, const char *detail);

/*  Finds the topic id and seq of MSG_ID from its history (also after the
    message was removed). TERN_ENOTFOUND if no history is kept for it (trace
    off, or swept after trace_retention_ms). */
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
    order and, within a message, in commit order; FN returns false to stop.
    TERN_ECORRUPT on a malformed event. */
typedef bool(tern_trace_fn)(const tern_trace_event_t *event, void *arg);
tern_err_t tern_store_trace_scan(tern_store_reader_t *self, uint32_t topic_id, uint64_t from_seq,
                                 uint64_t to_seq, tern_trace_fn *fn, void *arg);

/* ------------------------------------------------------------------------
    Admin operations (ternctl topic create|edit, group seek|reset, dlq
    purge|replay --seq|get, get, view)
   ------------------------------------------------------------------------ */

/*  Queues creating topic NAME with these limits (0 = unlimited). At commit
    *RESULT_ERR is TERN_EEXIST if it exists (nothing changes), TERN_ELIMIT at
    max_topics, TERN_ETOPIC for a bad name; *ID_OUT (may be NULL) its id. */
void tern_store_batch_topic_create(tern_store_batch_t *self, const char *name, uint64_t max_age_ms,
                                   uint64_t max_msgs, uint64_t max_bytes, tern_err_t *result_err,
                                   uint32_t *id_out);

/*  Queues setting the limits of existing topic NAME (every limit is
    replaced; retention applies from the next append or sweep). *RESULT_ERR:
    TERN_ENOTFOUND if it does not exist (nothing is created). */
void tern_store_batch_topic_edit(tern_store_batch_t *self, const char *name, uint64_t max_age_ms,
                                 uint64_t max_msgs, uint64_t max_bytes, tern_err_t *result_err);

/*  Queues moving every lane cursor of group NAME to START/START_VALUE (as
    tern_store_batch_group_open computes it) and dropping all its pending
    entries: messages at or after the position are delivered again from
    the cursors, those before it are not. The DLQ and counters are kept.
    *RESULT_ERR: TERN_ENOTFOUND (no such topic or group), TERN_ERANGE. */
void tern_store_batch_group_seek(tern_store_batch_t *self, uint32_t topic_id, const char *name,
                                 tern_start_t start, uint64_t start_value, tern_err_t *result_err);

/*  Queues moving DLQ entry SEQ of GROUP back to pending with delivery count
    0, due at DUE_MS. *RESULT_ERR: TERN_ENOTFOUND if SEQ is not in the DLQ
    (or no such group). */
void tern_store_batch_dlq_requeue(tern_store_batch_t *self, uint32_t topic_id, const char *group,
                                  uint64_t seq, uint64_t due_ms, tern_err_t *result_err);

/*  Queues removing every DLQ entry of GROUP (the messages stay in the log).
    *RESULT_ERR: TERN_ENOTFOUND (no such group); *REMOVED (may be NULL):
    entries removed. */
void tern_store_batch_dlq_purge(tern_store_batch_t *self, uint32_t topic_id, const char *group,
                                tern_err_t *result_err, uint64_t *removed);

/*  Inside begin/end: DLQ entry SEQ of GROUP into OUT. TERN_ENOTFOUND if it
    is not in the DLQ. */
tern_err_t tern_store_dlq_get(tern_store_reader_t *self, uint32_t topic_id, const char *group,
                              uint64_t seq, tern_entry_t *out);

/*  Inside begin/end: the first stored message of TOPIC_ID with seq >=
    FROM_SEQ into OUT, as tern_store_read (borrowed until read_end).
    TERN_ENOTFOUND if there is none. */
tern_err_t tern_store_read_next(tern_store_reader_t *self, uint32_t topic_id, uint64_t from_seq,
                                tern_frame_t *out);

/*  Inside begin/end: where the stored messages of TOPIC_ID with timestamp
    >= AT_NS begin, into *SEQ: tern_store_read_next from *SEQ finds the
    first of them (*SEQ may be a removed seq just before it; last_seq + 1
    when there is none). TERN_ENOTFOUND if there is no such topic. */
tern_err_t tern_store_seq_at_time(tern_store_reader_t *self, uint32_t topic_id, uint64_t at_ns,
                                  uint64_t *seq);

#endif
