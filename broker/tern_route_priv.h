/*  tern_route_priv.h - the route actor's private state, shared by its files.

    Only broker/tern_route*.c include this. tern_route.c runs the actor
    (inbox, notices, the loop); tern_route_group.c holds topics, groups and
    subscriptions; tern_route_deliver.c the DELIVER output, pending entries,
    dispatch and timers (the hot path, in one translation unit);
    tern_route_admin.c the group admin operations. Functions shared between
    them are prefixed r_; each file's own helpers stay static (s_).
*/
#ifndef TERN_ROUTE_PRIV_H_INCLUDED
#define TERN_ROUTE_PRIV_H_INCLUDED

#include "tern_route.h"
#include "tern_admin.h"
#include "tern_json.h"
#include "tern_proto.h"
#include "tern_series.h"
#include "tern_tagmap.h"
#include "tern_work.h"
#include <stdbool.h>
#include <stdint.h>

#define S_DRAIN_MAX   1024 //  inbox items per drain
#define S_SCAN_MAX    256  //  seqs per lane scan (fewer if the consumers' windows are smaller)
#define S_POOL_MAX    4096 //  freed pending entries kept for reuse
#define S_BATCH_MAX   128  //  DELIVERs per batch handed to conn
#define S_LANES       (TERN_PRIORITY_MAX + 1)
#define S_CACHE_SLOTS 1024 //  messages one snapshot keeps read, by seq (a power of two)

typedef struct r_sub_t r_sub_t;
typedef struct r_group_t r_group_t;
typedef struct r_topic_t r_topic_t;
typedef struct r_pend_t r_pend_t;

//  Freed pending entries kept for reuse: one calloc/free pair less per
//  delivered message. Bounded: beyond S_POOL_MAX entries they are freed.
typedef struct {
    r_pend_t *free;        //  singly linked through ->next
    size_t count;          //  entries on the list
    size_t inflight_bytes; //  every group's entries in flight: their DELIVERs' bytes
    size_t consumers;      //  consumer links over all groups: the fair share's divisor
} r_pool_t;

//  A message read in the current snapshot, kept for the other groups that
//  deliver it in the same dispatch round: under fan-out to N groups, one
//  read (B-tree lookup, CRC of the record, decode) and one payload copy
//  instead of N, and the N DELIVERs share one refcounted payload in conn's
//  pipes (zmq_msg_copy) instead of holding N copies.
typedef struct {
    bool valid;         //  filled in the current snapshot
    bool listed;        //  its index is in r_cache_t.used
    uint32_t topic_id;  //  the message's topic
    zmq_msg_t payload;  //  valid: the payload (each DELIVER holds a reference)
    tern_frame_t frame; //  valid: the record as read (regions borrowed from the snapshot)
} r_cached_t;

typedef struct {
    r_cached_t *slots; //  S_CACHE_SLOTS, slot seq % S_CACHE_SLOTS (owned; NULL until used)
    uint16_t *used;    //  indexes of the valid slots (owned)
    size_t nused;      //  entries in used
} r_cache_t;

//  The last scan of one lane in the current snapshot, for the other groups
//  of its topic (under fan-out they scan the same seqs in the same round).
typedef struct {
    uint64_t snapshot;         //  the read snapshot it was made in (0: none)
    uint32_t topic_id;         //  its topic
    uint64_t from;             //  it started at this seq
    size_t count;              //  seqs found
    bool to_end;               //  fewer than asked: the lane has no seq after the last
    uint64_t seqs[S_SCAN_MAX]; //  the lane's seqs from `from`, in order
} r_scan_t;

typedef struct {
    uint64_t id;               //  conn's session id
    uint8_t rid[TERN_RID_MAX]; //  routing id
    size_t rid_size;           //  its length
    uint64_t next_sub_id;      //  sub id counter
    zhashx_t *subs;            //  sub_id -> r_sub_t (owned via r_sub_remove)
} r_session_t;

struct r_pend_t {
    uint64_t seq;          //  message seq
    uint8_t priority;      //  its lane
    uint32_t count;        //  deliveries so far
    bool inflight;         //  delivered, waiting for ack
    uint32_t bytes;        //  inflight: its DELIVER's bytes (payload and header)
    bool stored;           //  s_group_reload: seen in the store's pending list
    uint64_t due_ms;       //  inflight: ack deadline; else: redelivery time
    uint64_t expire_ms;    //  the message's expiry (unix ms, rounded up), 0 = never
    r_sub_t *sub;          //  inflight: the holder
    uint64_t tag;          //  inflight: its tag in that sub
    r_group_t *group;      //  owner
    struct r_pend_t *prev; //  group list
    struct r_pend_t *next; //  group list
    char *trace;           //  verbose only: owned copy of the message's trace id
};

struct r_sub_t {
    uint64_t id;                      //  sub_id (per session)
    r_session_t *session;             //  borrowed
    char pattern[TERN_TOPIC_MAX + 1]; //  topic pattern
    char group[TERN_NAME_MAX + 1];    //  durable group, "" = ephemeral
    uint8_t start;                    //  tern_start_t
    uint64_t start_value;             //  its value
    uint32_t window;                  //  max in flight
    uint32_t inflight;                //  in flight now
    size_t inflight_bytes;            //  their DELIVERs' bytes
    uint64_t next_tag;                //  tag counter
    tern_tagmap_t tags;               //  tag -> r_pend_t in flight (borrowed)
    zlistx_t *groups;                 //  groups joined (borrowed)
    void *handle;                     //  in route's sub list
    uint32_t ok_waits;                //  what its OK still waits for: the joins, new groups' OPENs
    uint64_t ok_req;                  //  the SUBSCRIBE's req_id, for that OK
};

enum { G_LOADING = 0, G_READY = 1, G_FAILED = 2 };

struct r_group_t {
    r_topic_t *topic;             //  borrowed
    char name[TERN_NAME_MAX + 1]; //  group name, "" for ephemeral
    r_sub_t *owner;               //  ephemeral: the one subscription
    int state;                    //  G_*
    uint64_t lane_next[S_LANES];  //  next undelivered seq per lane
    uint64_t min_ts_ns;           //  ephemeral TIME start: skip older
    r_pend_t *head;               //  pending list
    r_pend_t *tail;
    size_t pending;         //  entries
    bool dirty;             //  lanes may hold undelivered messages
    bool rescan;            //  waiting entries may be due
    uint64_t next_check_ms; //  earliest deadline or due time
    r_sub_t **consumers;    //  borrowed
    size_t nconsumers;
    size_t capconsumers;
    size_t rr;                  //  round robin position
    void *handle;               //  in route's group list
    void *topic_handle;         //  in topic's group list
    tern_series_slot_t *series; //  durable: its metrics series (borrowed), NULL until used
    r_pool_t *pool;             //  route's pool of pending entries (borrowed)
    uint32_t admin_ops;         //  group.seek/reset not yet committed: stays G_LOADING
    r_sub_t *opener;            //  the SUBSCRIBE whose OK waits for its OPEN (borrowed)
};

struct r_topic_t {
    uint32_t id;                   //  storage id
    char name[TERN_TOPIC_MAX + 1]; //  name
    zlistx_t *groups;              //  r_group_t (borrowed; owned by route's list)
    bool led;                      //  this node leads its partition (always on a single node)
    uint32_t partition;            //  cluster: its partition (0 on a single node)
    uint64_t hw;                   //  high watermark: lane scans dispatch seqs <= hw (cluster:
                                   //  the ISR has them; UINT64_MAX on a single node)
    bool adopt;                    //  cluster: led anew; its groups take the stored state at the
                                   //  partition's inherited NOTICE (r_cluster_inherit)
    uint64_t epoch;                //  cluster: the partition's epoch when `led` was set
    uint64_t lane_snapshot;        //  the read snapshot lane_empty holds for (0: none)
    uint64_t lane_empty[S_LANES];  //  in that snapshot: lane p has no seq >= lane_empty[p]
};

typedef struct {
    tern_route_args_t *args;     //  borrowed
    const tern_config_t *config; //  borrowed
    tern_metrics_t *metrics;     //  borrowed
    zsock_t *inbox_sock;         //  czmq owners
    zsock_t *storer_sock;
    zsock_t *out_sock;
    void *inbox; //  raw
    void *to_storer;
    void *out;
    tern_store_reader_t *reader;  //  our reader
    bool reading;                 //  a read txn is open
    r_cache_t cache;              //  messages read in this read txn (emptied when it ends)
    uint64_t snapshot;            //  read txns begun so far: names the current one
    r_scan_t scans[S_LANES];      //  per lane: its last scan (s_lane_scan)
    zhashx_t *sessions;           //  id -> r_session_t (owned)
    zhashx_t *topics;             //  id -> r_topic_t (owned)
    zhashx_t *durable;            //  "id/name" -> r_group_t (borrowed)
    zlistx_t *groups;             //  every r_group_t (owned)
    zlistx_t *subs;               //  every r_sub_t (borrowed)
    tern_ops_t *ops;              //  ops to send (NULL if none)
    size_t ops_hint;              //  ops of the last round: the next array's first size
    bool ops_blocked;             //  r_dispatch waits for the storer to take our ops
    long ops_wait_ms;             //  while blocked: how long to sleep before looking again
    tern_delivers_t *batch;       //  DELIVERs not yet handed to conn (NULL if none)
    r_pool_t pool;                //  freed pending entries (owned)
    uint8_t buf[TERN_HEADER_MAX]; //  encode buffer
    tern_frame_t frame;           //  scratch frame
    tern_cluster_t *cluster;      //  borrowed; NULL on a single node
    bool lease_ok;                //  cluster: the lease at the last look (r_cluster_tick)
    uint64_t view_version;        //  cluster: tern_cluster_version topics' `led` were set at
    uint32_t *quiet_ids;          //  topics marked quiet (tern_quiet.h), to look at again
    size_t quiet_count;           //  used
    size_t quiet_cap;             //  allocated
    bool quiet_recheck;           //  a group may have joined a quiet topic since the last look
} r_route_t;

//  Whether route serves GROUP now: on a single node always; in a cluster
//  while this node leads its topic's partition and its lease is ok.
static inline bool r_group_live(const r_route_t *self, const r_group_t *group) {
    return !self->cluster || (self->lease_ok && group->topic->led);
}

#define S_KEY(v)          ((void *)(uintptr_t)(v))
#define S_DURABLE_KEY_MAX (32 + TERN_NAME_MAX) //  "topic id/group name"

//  Loading GROUP's stored pending entries (the reader's transaction open).
typedef struct {
    r_route_t *self;  //  borrowed
    r_group_t *group; //  borrowed
    bool stored_due;  //  entries due at their stored time (a takeover), else now (a restart)
} r_load_t;

// ---------------------------------------------------------------------------
//  tern_route_admin.c

//  The storer committed admin op OP (see s_admin_op): reload what route
//  holds of the group, then answer the client. Frees the request.
void r_admin_op_done(r_route_t *self, tern_op_t *op);

//  Takes ownership of ADMIN.
void r_handle_admin(r_route_t *self, tern_admin_t *admin);

// ---------------------------------------------------------------------------
//  tern_route_deliver.c

tern_op_t *r_op(r_route_t *self, tern_op_type_t type, const r_group_t *group, uint64_t seq);

//  Hands the queued DELIVERs to conn as one DELIVERS item; conn owns them then.
void r_flush_batch(r_route_t *self);
void r_send_error(r_route_t *self, r_session_t *session, uint64_t req_id, tern_err_t code,
                  const char *reason);
void r_send_ok(r_route_t *self, r_session_t *session, uint64_t req_id, uint64_t sub_id);
void r_send_reply(r_route_t *self, const uint8_t *rid, size_t rid_size, uint64_t req_id,
                  const tern_json_t *json);
void r_send_admin_error(r_route_t *self, const tern_admin_t *admin, tern_err_t code,
                        const char *reason);
tern_err_t r_read_begin(r_route_t *self);

//  Ends the read txn (if open) and empties the message cache, whose
//  records it borrowed.
void r_read_end(r_route_t *self);

//  Frees the message cache (route's teardown, after the last r_read_end).
void r_cache_destroy(r_route_t *self);
void r_check_at(r_group_t *group, uint64_t at_ms);
r_pend_t *r_pend_new(r_group_t *group, uint64_t seq, uint8_t priority);

//  Detaches PEND from its holder (if in flight).
void r_pend_release(r_pend_t *pend);

//  Removes PEND from its group and frees it.
void r_pend_destroy(r_pend_t *pend);
void r_count(r_route_t *self, r_group_t *group, tern_series_counter_t c);
void r_pend_ack(r_route_t *self, r_pend_t *pend);
void r_pend_dead(r_route_t *self, r_pend_t *pend, const char *reason);

//  Unix ms at or after expiry time EXPIRE_AT_NS (0 = never).
uint64_t r_expire_ms(uint64_t expire_at_ns);

//  Makes PEND wait for redelivery at DUE_MS (or die if it used its deliveries).
void r_pend_retry(r_route_t *self, r_pend_t *pend, uint64_t due_ms, bool persist);
void r_dispatch(r_route_t *self, r_group_t *group, uint64_t now);

//  When the group's next deadline has come: moves timed-out deliveries back
//  to waiting (or to the DLQ), drops waiting entries whose message expired,
//  dead-letters due ones that had every delivery max_deliver allows, and
//  flags the other due ones for r_dispatch. Runs with or without consumers:
//  only the redelivery itself needs one.
void r_timers(r_route_t *self, r_group_t *group, uint64_t now);
void r_flush_ops(r_route_t *self);
//  True while the ops sent to the storer and not yet taken are at their
//  bound: no group delivers.
bool r_ops_full(const r_route_t *self);

// ---------------------------------------------------------------------------
//  tern_route_group.c

//  Durable group NAME on TOPIC_ID, or NULL if route has not opened it.
r_group_t *r_durable_get(r_route_t *self, uint32_t topic_id, const char *name);

//  Destroys GROUP: its pending entries (released from their holders) and its
//  consumer links.
void r_group_destroy(r_route_t *self, r_group_t *group);
bool r_load_pending(const tern_entry_t *entry, void *arg);

//  The storer created (or found) durable GROUP: load its state.
void r_group_loaded(r_route_t *self, r_group_t *group, tern_err_t err);
r_topic_t *r_topic_get(r_route_t *self, uint32_t id);
r_topic_t *r_topic_by_name(r_route_t *self, const char *name);
r_topic_t *r_topic_add(r_route_t *self, uint32_t id, const char *name);

//  Every subscription whose pattern matches TOPIC joins it, unless it has
//  already (APPEARED: TOPIC is new, see s_join). Not while TOPIC is not led.
void r_topic_join(r_route_t *self, r_topic_t *topic, bool appeared);
void r_topic_destroy(r_route_t *self, r_topic_t *topic);
bool r_topic_each(const tern_topic_info_t *info, void *arg);

//  Opens every stored durable group with pending entries (the reader's
//  transaction open).
void r_open_pending(r_route_t *self);
void r_sub_remove(r_route_t *self, r_sub_t *sub);
void r_session_gone(r_route_t *self, uint64_t session_id);
void r_handle_sub(r_route_t *self, r_session_t *session, tern_event_t *ev);
void r_handle_ack(r_route_t *self, r_session_t *session, r_sub_t *sub, tern_event_t *ev);

// ---------------------------------------------------------------------------
//  tern_route_cluster.c

//  True when this node leads the partition of topic NAME (always on a
//  single node). The record's leader: the lease is checked apart. EPOCH_P
//  (may be NULL) gets the record's epoch (0 on a single node).
bool r_cluster_leads(r_route_t *self, const char *name, uint64_t *epoch_p);

//  What a topic's leadership did between two looks at the view.
typedef enum {
    R_LEAD_SAME = 0,   //  nothing: still led in the same epoch, or still not led
    R_LEAD_STOP = 1,   //  no longer led
    R_LEAD_START = 2,  //  led now, not before
    R_LEAD_RESTART = 3 //  led before and now, in another epoch: a stop and a start
} r_lead_change_t;

//  The change from (WAS_LED, WAS_EPOCH) to (LED, EPOCH). An epoch change
//  while led is a leadership lost and taken again between two looks
//  (A -> B -> A): the state of the first one is stale.
r_lead_change_t r_cluster_change(bool was_led, uint64_t was_epoch, bool led, uint64_t epoch);

//  The partition of topic NAME (0 on a single node).
uint32_t r_cluster_partition(r_route_t *self, const char *name);

//  Cluster only, every loop turn (at least every 100 ms): reads the lease,
//  then r_cluster_sync.
void r_cluster_tick(r_route_t *self, uint64_t now);

//  Cluster only: when the view's version moved, lists the store's topics
//  again and sets each topic's `led`, so groups of partitions this node now
//  leads deliver (and subscriptions with patterns join their topics).
void r_cluster_sync(r_route_t *self);

//  Cluster only: a NOTICE crepl forwarded says TOPIC's SEQ is on every
//  in-sync replica: raises its high watermark (INHERITED: sets it).
void r_cluster_raise(r_topic_t *topic, uint64_t seq, bool inherited);

//  Cluster only: crepl's inherited NOTICE of a partition this node started
//  leading arrived (the followers synced, so every group op of the old
//  leader is committed here): the partition's topics led anew adopt the
//  stored group state.
void r_cluster_inherit(r_route_t *self, const tern_notice_t *notice);

// ---------------------------------------------------------------------------
//  tern_route.c

void r_session_free(void **item_p);

// ---------------------------------------------------------------------------
//  Pure helpers of the route files (tests/unit/test_route.c checks them)

/*  Writes VALUE in decimal with a NUL into BUF (at least 21 bytes); returns
    the number of digits. The hot path's replacement for snprintf("%" PRIu64). */
size_t tern_route_u64_str(uint64_t value, char *buf);

/*  The redelivery delay after delivery number N (N >= 1) without ack:
    BASE_MS * 2^(N-1), capped by MAX_MS (and never overflowing). */
uint64_t tern_route_backoff_ms(uint64_t base_ms, uint64_t max_ms, uint32_t n);

/*  The window of a new subscription: REQUESTED, or MAX_INFLIGHT when 0,
    capped by MAX_INFLIGHT (at least 1). */
uint32_t tern_route_window(uint32_t requested, uint32_t max_inflight);

#endif
