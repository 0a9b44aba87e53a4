/*  tern_route.c - the route actor: who gets which message, and when again.

    route owns every subscription, every group's in-memory delivery state and
    every delivery timer. It reads messages through its own storage reader
    (one short read transaction per dispatch round, never held across a
    wait), encodes DELIVER frames into batches of up to S_BATCH_MAX (header
    encoded in a reused buffer, header and payload each copied once into the
    zmq_msg_t conn will send) and puts each batch on conn's `out` socket;
    conn only forwards them. Durable group state changes (deliver, ack,
    nack, dead, replay, open) go to the storer as one tern_ops_t per loop
    iteration; ephemeral subscriptions live only here.

    Pipe commands (zactor pipe, from tern_broker):
        $TERM      -> exits (no reply); in-flight state is already persisted
    Inbox (PULL, bound at args->inbox; route owns what it receives):
        EVENTS  tern_events_t *  from conn: open/gone/sub/unsub/ack/nack/term/
                                 credit/admin (groups, dlq.list|replay|purge,
                                 group.delete|reset|seek)
        NOTICE  tern_notice_t *  from storer: appended messages, route's ops
                                 with their results (OPEN, admin ops), topics gone
                                 or created (topic.create)
    Sends:
        OPS     tern_ops_t *     -> storer inbox (storer hands it back)
        frames  [rid][hdr][payload?] -> conn out: OK, ERROR, REPLY
        DELIVERS tern_delivers_t * -> conn out: up to S_BATCH_MAX DELIVERs
                (conn owns it); sent when full, at the end of each loop
                iteration, and before any other frame

    Model: a group is (topic, name) for durable groups, or (topic, one
    subscription) for an ephemeral one. It keeps one cursor per priority lane
    (next seq not yet delivered) and a list of pending entries (delivered or
    waiting for redelivery). A subscription with a pattern joins the group of
    its name on every matching topic, including topics created later. Within
    a group, consumers are served round robin among those with free window.
    Choices where the contract is silent: a late ACK for a message whose
    ack_wait ran out gets ENOTFOUND (it is redelivered); CREDIT is capped by
    max_inflight; pending entries loaded from storage at start are due at
    once (their sessions died with the old process).

    Timers run whether or not a group has consumers (s_timers, every loop
    iteration): an ack wait that runs out, a waiting entry that has used its
    max_deliver deliveries (moved to the DLQ) and a waiting entry whose
    message expired (dropped as expired) all happen on time; only the
    redelivery itself waits for a consumer with free window. So that this
    holds after a restart too, every durable group with pending entries is
    opened at start, before any subscription joins it.
*/
#include "tern_route.h"
#include "tern_admin.h"
#include "tern_json.h"
#include "tern_proto.h"
#include "tern_tagmap.h"
#include "tern_work.h"
#include <inttypes.h>
#include <string.h>

#define S_DRAIN_MAX 1024 //  inbox items per drain
#define S_SCAN_MAX  256  //  seqs per lane scan (fewer if the consumers' windows are smaller)
#define S_POOL_MAX  4096 //  freed pending entries kept for reuse
#define S_BATCH_MAX 128  //  DELIVERs per batch handed to conn
#define S_LANES     (TERN_PRIORITY_MAX + 1)

typedef struct r_sub_t r_sub_t;
typedef struct r_group_t r_group_t;
typedef struct r_topic_t r_topic_t;
typedef struct r_pend_t r_pend_t;

//  Freed pending entries kept for reuse: one calloc/free pair less per
//  delivered message. Bounded: beyond S_POOL_MAX entries they are freed.
typedef struct {
    r_pend_t *free; //  singly linked through ->next
    size_t count;   //  entries on the list
} r_pool_t;

typedef struct {
    uint64_t id;               //  conn's session id
    uint8_t rid[TERN_RID_MAX]; //  routing id
    size_t rid_size;           //  its length
    uint64_t next_sub_id;      //  sub id counter
    zhashx_t *subs;            //  sub_id -> r_sub_t (owned via s_sub_remove)
} r_session_t;

struct r_pend_t {
    uint64_t seq;          //  message seq
    uint8_t priority;      //  its lane
    uint32_t count;        //  deliveries so far
    bool inflight;         //  delivered, waiting for ack
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
    uint64_t next_tag;                //  tag counter
    tern_tagmap_t tags;               //  tag -> r_pend_t in flight (borrowed)
    zlistx_t *groups;                 //  groups joined (borrowed)
    void *handle;                     //  in route's sub list
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
};

struct r_topic_t {
    uint32_t id;                   //  storage id
    char name[TERN_TOPIC_MAX + 1]; //  name
    zlistx_t *groups;              //  r_group_t (borrowed; owned by route's list)
};

typedef struct {
    tern_route_args_t *args;     //  borrowed
    const tern_config_t *config; //  borrowed
    tern_metrics_t *metrics;     //  borrowed
    void *pipe;                  //  raw pipe
    zsock_t *inbox_sock;         //  czmq owners
    zsock_t *storer_sock;
    zsock_t *out_sock;
    void *inbox; //  raw
    void *to_storer;
    void *out;
    tern_store_reader_t *reader;  //  our reader
    bool reading;                 //  a read txn is open
    zhashx_t *sessions;           //  id -> r_session_t (owned)
    zhashx_t *topics;             //  id -> r_topic_t (owned)
    zhashx_t *durable;            //  "id/name" -> r_group_t (borrowed)
    zlistx_t *groups;             //  every r_group_t (owned)
    zlistx_t *subs;               //  every r_sub_t (borrowed)
    tern_ops_t *ops;              //  ops to send (NULL if none)
    size_t ops_hint;              //  ops of the last round: the next array's first size
    tern_delivers_t *batch;       //  DELIVERs not yet handed to conn (NULL if none)
    r_pool_t pool;                //  freed pending entries (owned)
    uint8_t buf[TERN_HEADER_MAX]; //  encode buffer
    tern_frame_t frame;           //  scratch frame
} s_route_t;

// ---------------------------------------------------------------------------
//  Pure helpers

uint64_t tern_route_backoff_ms(uint64_t base_ms, uint64_t max_ms, uint32_t n) {
    if (n < 1) {
        n = 1;
    }
    uint64_t delay = base_ms;
    for (uint32_t i = 1; i < n; i++) {
        if (delay >= max_ms || delay > UINT64_MAX / 2) {
            delay = max_ms;
            break;
        }
        delay *= 2;
    }
    return delay > max_ms ? max_ms : delay;
}

uint32_t tern_route_window(uint32_t requested, uint32_t max_inflight) {
    if (max_inflight == 0) {
        max_inflight = 1;
    }
    if (requested == 0 || requested > max_inflight) {
        return max_inflight;
    }
    return requested;
}

static size_t s_u64_hash(const void *key) {
    uint64_t x = (uint64_t)(uintptr_t)key;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (size_t)x;
}

static int s_u64_cmp(const void *a, const void *b) {
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

static zhashx_t *s_u64_hash_new(void) {
    zhashx_t *hash = zhashx_new();
    if (!hash) {
        tern_oom(0);
    }
    zhashx_set_key_hasher(hash, s_u64_hash);
    zhashx_set_key_comparator(hash, s_u64_cmp);
    zhashx_set_key_duplicator(hash, NULL);
    zhashx_set_key_destructor(hash, NULL);
    return hash;
}

#define S_KEY(v) ((void *)(uintptr_t)(v))

size_t tern_route_u64_str(uint64_t value, char *buf) {
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    for (size_t i = 0; i < n; i++) {
        buf[i] = tmp[n - 1 - i];
    }
    buf[n] = 0;
    return n;
}

// ---------------------------------------------------------------------------
//  Output

static tern_op_t *s_op(s_route_t *self, tern_op_type_t type, const r_group_t *group, uint64_t seq) {
    if (!self->ops) {
        self->ops = tern_alloc(sizeof(tern_ops_t));
        //  Sized like the last round's: growing by doubling from 64 copied
        //  each ~400-byte op several times per round.
        if (self->ops_hint > 64) {
            self->ops->cap = self->ops_hint < 8192 ? self->ops_hint : 8192;
            self->ops->items = tern_realloc(NULL, self->ops->cap * sizeof(tern_op_t));
        }
    }
    tern_op_t *op = tern_ops_push(self->ops);
    op->type = (uint8_t)type;
    op->topic_id = group->topic->id;
    //  Two ops per delivered message (DELIVER, ACK): a plain copy, not snprintf.
    size_t glen = strnlen(group->name, sizeof op->group - 1);
    memcpy(op->group, group->name, glen);
    op->group[glen] = 0;
    op->seq = seq;
    return op;
}

//  Hands the queued DELIVERs to conn as one DELIVERS item; conn owns them then.
static void s_flush_batch(s_route_t *self) {
    tern_delivers_t *batch = self->batch;
    if (!batch) {
        return;
    }
    self->batch = NULL;
    //  The socket has no HWM, so this fails only when conn is gone.
    if (tern_work_send(self->out, TERN_WORK_DELIVERS, batch) != 0) {
        tern_delivers_destroy(&batch);
    }
}

static void s_msg_init(zmq_msg_t *msg, const void *data, size_t size) {
    if (zmq_msg_init_size(msg, size) != 0) {
        tern_oom(0);
    }
    if (size) {
        memcpy(zmq_msg_data(msg), data, size);
    }
}

//  Queues DELIVER FRAME to RID in the current batch: the header encoded in
//  the reused buffer, then header and payload each copied once into the
//  zmq_msg_t conn sends. Returns false if the frame cannot be encoded.
static bool s_send_deliver(s_route_t *self, const uint8_t *rid, size_t rid_size,
                           const tern_frame_t *frame) {
    size_t len = 0;
    tern_err_t rc = tern_frame_encode(frame, self->buf, sizeof self->buf, &len);
    if (rc != TERN_OK) {
        zsys_error("route: cannot encode %s: %s", tern_cmd_name(frame->cmd), tern_strerror(rc));
        return false;
    }
    tern_delivers_t *batch = self->batch;
    if (!batch) {
        batch = self->batch = tern_alloc(sizeof *batch);
        batch->cap = S_BATCH_MAX;
        batch->items = tern_realloc(NULL, batch->cap * sizeof(tern_deliver_t));
    }
    tern_deliver_t *item = &batch->items[batch->count++];
    s_msg_init(&item->parts[0], rid, rid_size);
    s_msg_init(&item->parts[1], self->buf, len);
    s_msg_init(&item->parts[2], frame->payload, frame->payload_size);
    if (batch->count == batch->cap) {
        s_flush_batch(self); //  conn sends these while route reads the next ones
    }
    return true;
}

static void s_send(s_route_t *self, const uint8_t *rid, size_t rid_size, const tern_frame_t *frame,
                   const void *payload, size_t payload_size) {
    //  After the DELIVERs queued before it, never ahead of them.
    s_flush_batch(self);
    size_t len = 0;
    tern_err_t rc = tern_frame_encode(frame, self->buf, sizeof self->buf, &len);
    if (rc != TERN_OK) {
        zsys_error("route: cannot encode %s: %s", tern_cmd_name(frame->cmd), tern_strerror(rc));
        return;
    }
    bool has_payload = tern_cmd_has_payload(frame->cmd);
    //  DONTWAIT: the socket has no HWM, so this fails only when conn is gone
    //  (shutdown); blocking there would hang the actor.
    if (zmq_send(self->out, rid, rid_size, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        return;
    }
    zmq_send(self->out, self->buf, len, has_payload ? ZMQ_SNDMORE : 0);
    if (has_payload) {
        zmq_send(self->out, payload, payload_size, 0);
    }
}

static void s_send_error(s_route_t *self, r_session_t *session, uint64_t req_id, tern_err_t code,
                         const char *reason) {
    tern_frame_t *frame = &self->frame;
    tern_frame_init(frame, TERN_CMD_ERROR);
    frame->req_id = req_id;
    frame->code = (uint32_t)code;
    snprintf(frame->reason, sizeof frame->reason, "%s", reason);
    frame->fields |= TERN_F_REASON;
    s_send(self, session->rid, session->rid_size, frame, NULL, 0);
}

static void s_send_ok(s_route_t *self, r_session_t *session, uint64_t req_id, uint64_t sub_id) {
    tern_frame_t *frame = &self->frame;
    tern_frame_init(frame, TERN_CMD_OK);
    frame->req_id = req_id;
    frame->sub_id = sub_id;
    s_send(self, session->rid, session->rid_size, frame, NULL, 0);
}

static void s_send_reply(s_route_t *self, const uint8_t *rid, size_t rid_size, uint64_t req_id,
                         const tern_json_t *json) {
    tern_frame_t *frame = &self->frame;
    tern_frame_init(frame, TERN_CMD_REPLY);
    frame->req_id = req_id;
    frame->payload = (const uint8_t *)json->data;
    frame->payload_size = json->len;
    s_send(self, rid, rid_size, frame, json->data, json->len);
}

static void s_send_admin_error(s_route_t *self, const tern_admin_t *admin, tern_err_t code,
                               const char *reason) {
    tern_frame_t *frame = &self->frame;
    tern_frame_init(frame, TERN_CMD_ERROR);
    frame->req_id = admin->req_id;
    frame->code = (uint32_t)code;
    snprintf(frame->reason, sizeof frame->reason, "%s", reason);
    frame->fields |= TERN_F_REASON;
    s_send(self, admin->rid, admin->rid_size, frame, NULL, 0);
}

static tern_err_t s_read_begin(s_route_t *self) {
    if (self->reading) {
        return TERN_OK;
    }
    tern_err_t rc = tern_store_read_begin(self->reader);
    self->reading = rc == TERN_OK;
    return rc;
}

static void s_read_end(s_route_t *self) {
    if (self->reading) {
        tern_store_read_end(self->reader);
        self->reading = false;
    }
}

// ---------------------------------------------------------------------------
//  Pending entries

static void s_check_at(r_group_t *group, uint64_t at_ms) {
    if (group->next_check_ms == 0 || at_ms < group->next_check_ms) {
        group->next_check_ms = at_ms;
    }
}

static r_pend_t *s_pend_new(r_group_t *group, uint64_t seq, uint8_t priority) {
    r_pool_t *pool = group->pool;
    r_pend_t *pend = pool->free;
    if (pend) {
        pool->free = pend->next;
        pool->count--;
        memset(pend, 0, sizeof *pend);
    } else {
        pend = tern_alloc(sizeof *pend);
    }
    pend->seq = seq;
    pend->priority = priority;
    pend->group = group;
    pend->prev = group->tail;
    if (group->tail) {
        group->tail->next = pend;
    } else {
        group->head = pend;
    }
    group->tail = pend;
    group->pending++;
    return pend;
}

//  Detaches PEND from its holder (if in flight).
static void s_pend_release(r_pend_t *pend) {
    if (pend->inflight && pend->group->series) {
        atomic_fetch_sub_explicit(&pend->group->series->inflight, 1, memory_order_relaxed);
    }
    if (pend->inflight && pend->sub) {
        tern_tagmap_delete(&pend->sub->tags, pend->tag);
        if (pend->sub->inflight > 0) {
            pend->sub->inflight--;
        }
    }
    pend->inflight = false;
    pend->sub = NULL;
    pend->tag = 0;
}

//  Removes PEND from its group and frees it.
static void s_pend_destroy(r_pend_t *pend) {
    r_group_t *group = pend->group;
    s_pend_release(pend);
    if (pend->prev) {
        pend->prev->next = pend->next;
    } else {
        group->head = pend->next;
    }
    if (pend->next) {
        pend->next->prev = pend->prev;
    } else {
        group->tail = pend->prev;
    }
    group->pending--;
    free(pend->trace);
    r_pool_t *pool = group->pool;
    if (pool->count < S_POOL_MAX) {
        pend->next = pool->free;
        pool->free = pend;
        pool->count++;
    } else {
        free(pend);
    }
}

//  The metrics series of a durable group (NULL for ephemeral ones: one
//  series per subscription would make the label set unbounded).
static tern_series_slot_t *s_series(s_route_t *self, r_group_t *group) {
    if (!group->series && group->name[0]) {
        group->series = tern_series_get(self->metrics->series, group->topic->name, group->name);
    }
    return group->series;
}

static void s_count(s_route_t *self, r_group_t *group, tern_series_counter_t c) {
    tern_series_slot_t *series = s_series(self, group);
    if (series) {
        atomic_fetch_add_explicit(&series->counters[c], 1, memory_order_relaxed);
    }
}

static void s_pend_ack(s_route_t *self, r_pend_t *pend) {
    r_group_t *group = pend->group;
    if (group->name[0]) {
        s_op(self, TERN_OP_ACK, group, pend->seq);
    }
    tern_metrics_add(self->metrics->acked, 1);
    s_count(self, group, TERN_SC_ACKED);
    if (self->config->verbose) {
        zsys_info("route: acked %s/%s seq %" PRIu64 " trace %s", group->topic->name,
                  group->name[0] ? group->name : "(ephemeral)", pend->seq,
                  pend->trace ? pend->trace : "-");
    }
    s_pend_destroy(pend);
}

static void s_pend_dead(s_route_t *self, r_pend_t *pend, const char *reason) {
    r_group_t *group = pend->group;
    if (group->name[0]) {
        tern_op_t *op = s_op(self, TERN_OP_DEAD, group, pend->seq);
        op->delivery_count = pend->count;
        snprintf(op->reason, sizeof op->reason, "%s", reason);
    }
    tern_metrics_add(self->metrics->dead, 1);
    s_count(self, group, TERN_SC_DEAD);
    if (self->config->verbose) {
        zsys_info("route: dead %s/%s seq %" PRIu64 " to DLQ (%s) trace %s", group->topic->name,
                  group->name, pend->seq, reason, pend->trace ? pend->trace : "-");
    }
    s_pend_destroy(pend);
}

//  True if PEND has had every delivery max_deliver allows.
static bool s_pend_spent(const s_route_t *self, const r_pend_t *pend) {
    return self->config->max_deliver > 0 && pend->count >= self->config->max_deliver;
}

//  PEND's message is gone from the log or EXPIRED: it can never be delivered
//  again. An expired one is counted, and its history says "expired", not
//  "acked".
static void s_pend_gone(s_route_t *self, r_pend_t *pend, bool expired) {
    r_group_t *group = pend->group;
    if (expired) {
        tern_metrics_add(self->metrics->expired, 1);
        s_count(self, group, TERN_SC_EXPIRED);
    }
    if (group->name[0]) {
        tern_op_t *op = s_op(self, TERN_OP_ACK, group, pend->seq);
        op->cause = expired ? TERN_CAUSE_EXPIRED : TERN_CAUSE_CONSUMER;
    }
    if (self->config->verbose) {
        zsys_info("route: dropped %s/%s seq %" PRIu64 " (%s)", group->topic->name,
                  group->name[0] ? group->name : "(ephemeral)", pend->seq,
                  expired ? "expired" : "gone");
    }
    s_pend_destroy(pend);
}

//  Unix ms at or after expiry time EXPIRE_AT_NS (0 = never).
static uint64_t s_expire_ms(uint64_t expire_at_ns) {
    return expire_at_ns ? (expire_at_ns + 999999) / 1000000 : 0;
}

//  Makes PEND wait for redelivery at DUE_MS (or die if it used its deliveries).
static void s_pend_retry(s_route_t *self, r_pend_t *pend, uint64_t due_ms, bool persist) {
    r_group_t *group = pend->group;
    s_pend_release(pend);
    if (s_pend_spent(self, pend)) {
        s_pend_dead(self, pend, "max_deliver");
        return;
    }
    pend->due_ms = due_ms;
    if (pend->expire_ms) {
        s_check_at(group, pend->expire_ms); //  it may expire before it is due
    }
    if (persist && group->name[0]) {
        //  Only the ack-wait timer persists here (an explicit NACK persists
        //  its own op): its history event says "timeout", not "nacked".
        tern_op_t *op = s_op(self, TERN_OP_NACK, group, pend->seq);
        op->due_ms = due_ms;
        op->cause = TERN_CAUSE_ACK_WAIT;
    }
    s_check_at(group, due_ms);
    group->rescan = true;
}

// ---------------------------------------------------------------------------
//  Groups

#define S_DURABLE_KEY_MAX (32 + TERN_NAME_MAX) //  "topic id/group name"

//  The key of durable group NAME on TOPIC_ID in route's durable table.
static void s_durable_key(char *key, uint32_t topic_id, const char *name) {
    snprintf(key, S_DURABLE_KEY_MAX, "%u/%s", topic_id, name);
}

//  Durable group NAME on TOPIC_ID, or NULL if route has not opened it.
static r_group_t *s_durable_get(s_route_t *self, uint32_t topic_id, const char *name) {
    char key[S_DURABLE_KEY_MAX];
    s_durable_key(key, topic_id, name);
    return (r_group_t *)zhashx_lookup(self->durable, key);
}

static void s_group_add_consumer(r_group_t *group, r_sub_t *sub) {
    for (size_t i = 0; i < group->nconsumers; i++) {
        if (group->consumers[i] == sub) {
            return;
        }
    }
    if (group->nconsumers == group->capconsumers) {
        group->capconsumers = group->capconsumers ? group->capconsumers * 2 : 4;
        group->consumers = tern_realloc(group->consumers, group->capconsumers * sizeof(r_sub_t *));
    }
    group->consumers[group->nconsumers++] = sub;
    zlistx_add_end(sub->groups, group);
}

static void s_group_remove_consumer(r_group_t *group, r_sub_t *sub) {
    for (size_t i = 0; i < group->nconsumers; i++) {
        if (group->consumers[i] == sub) {
            memmove(&group->consumers[i], &group->consumers[i + 1],
                    (group->nconsumers - i - 1) * sizeof(r_sub_t *));
            group->nconsumers--;
            if (group->rr >= group->nconsumers) {
                group->rr = 0;
            }
            return;
        }
    }
}

//  Destroys GROUP: its pending entries (released from their holders) and its
//  consumer links.
static void s_group_destroy(s_route_t *self, r_group_t *group) {
    while (group->head) {
        s_pend_destroy(group->head);
    }
    for (size_t i = 0; i < group->nconsumers; i++) {
        r_sub_t *sub = group->consumers[i];
        void *handle = zlistx_find(sub->groups, group);
        if (handle) {
            zlistx_delete(sub->groups, handle);
        }
    }
    if (group->name[0]) {
        char key[S_DURABLE_KEY_MAX];
        s_durable_key(key, group->topic->id, group->name);
        zhashx_delete(self->durable, key);
    }
    zlistx_delete(group->topic->groups, group->topic_handle);
    free(group->consumers);
    zlistx_delete(self->groups, group->handle);
    free(group);
}

static r_group_t *s_group_new(s_route_t *self, r_topic_t *topic, const char *name) {
    r_group_t *group = tern_alloc(sizeof *group);
    group->topic = topic;
    snprintf(group->name, sizeof group->name, "%s", name);
    group->pool = &self->pool;
    group->handle = zlistx_add_end(self->groups, group);
    group->topic_handle = zlistx_add_end(topic->groups, group);
    return group;
}

//  Loading GROUP's stored pending entries (the reader's transaction open).
typedef struct {
    s_route_t *self;  //  borrowed
    r_group_t *group; //  borrowed
} s_load_t;

//  The expiry (unix ms) of the message of a pending entry loaded for GROUP:
//  s_timers drops the entry then even if no consumer comes. A message gone
//  from the log (swept after its TTL, or removed by retention) expires now.
static uint64_t s_stored_expiry(s_route_t *self, const r_group_t *group, uint64_t seq) {
    tern_err_t rc = tern_store_read(self->reader, group->topic->id, seq, &self->frame);
    if (rc == TERN_ENOTFOUND) {
        return tern_now_ms();
    }
    return rc == TERN_OK ? s_expire_ms(self->frame.expire_at_ns) : 0;
}

static bool s_load_pending(const tern_entry_t *entry, void *arg) {
    s_load_t *load = (s_load_t *)arg;
    r_group_t *group = load->group;
    for (r_pend_t *pend = group->head; pend; pend = pend->next) {
        if (pend->seq == entry->seq) {
            pend->stored = true;
            return true;
        }
    }
    r_pend_t *pend = s_pend_new(group, entry->seq, entry->priority);
    pend->stored = true;
    pend->count = entry->delivery_count;
    pend->due_ms = tern_now_ms();
    pend->expire_ms = s_stored_expiry(load->self, group, entry->seq);
    group->rescan = true;
    s_check_at(group, pend->due_ms);
    return true;
}

//  The storer created (or found) durable GROUP: load its state.
static void s_group_loaded(s_route_t *self, r_group_t *group, tern_err_t err) {
    tern_group_info_t info;
    if (err == TERN_OK) {
        err = s_read_begin(self);
    }
    if (err == TERN_OK) {
        err = tern_store_group_get(self->reader, group->topic->id, group->name, &info);
    }
    if (err == TERN_OK) {
        memcpy(group->lane_next, info.lane_next, sizeof group->lane_next);
        s_load_t load = {self, group};
        err = tern_store_pending_list(self->reader, group->topic->id, group->name, s_load_pending,
                                      &load);
    }
    if (err != TERN_OK) {
        zsys_error("route: cannot open group %s on %s: %s", group->name, group->topic->name,
                   tern_strerror(err));
        group->state = G_FAILED;
        return;
    }
    group->state = G_READY;
    group->dirty = true;
}

static r_topic_t *s_topic_get(s_route_t *self, uint32_t id) {
    return (r_topic_t *)zhashx_lookup(self->topics, S_KEY(id));
}

static r_topic_t *s_topic_by_name(s_route_t *self, const char *name) {
    for (r_topic_t *topic = (r_topic_t *)zhashx_first(self->topics); topic;
         topic = (r_topic_t *)zhashx_next(self->topics)) {
        if (streq(topic->name, name)) {
            return topic;
        }
    }
    return NULL;
}

//  SUB joins its group on TOPIC (creating or opening it). APPEARED: TOPIC
//  was created after SUB was made, so every one of its messages is new for
//  SUB: start NEW then means the topic's first seq, not last_seq + 1 (which
//  would skip the messages of the commit that created the topic).
static void s_join(s_route_t *self, r_sub_t *sub, r_topic_t *topic, bool appeared) {
    uint8_t start = appeared && sub->start == TERN_START_NEW ? TERN_START_FIRST : sub->start;
    r_group_t *group = NULL;
    if (sub->group[0]) {
        char key[S_DURABLE_KEY_MAX];
        s_durable_key(key, topic->id, sub->group);
        group = (r_group_t *)zhashx_lookup(self->durable, key);
        if (!group) {
            group = s_group_new(self, topic, sub->group);
            zhashx_insert(self->durable, key, group);
            tern_op_t *op = s_op(self, TERN_OP_OPEN, group, 0);
            op->start = start;
            op->start_value = sub->start_value;
        }
    } else {
        tern_topic_info_t info;
        tern_err_t rc = s_read_begin(self);
        if (rc == TERN_OK) {
            rc = tern_store_topic_get_id(self->reader, topic->id, &info);
        }
        if (rc != TERN_OK) {
            return;
        }
        group = s_group_new(self, topic, "");
        group->owner = sub;
        uint64_t from = info.first_seq ? info.first_seq : 1;
        if (start == TERN_START_NEW) {
            from = info.last_seq + 1;
        } else if (start == TERN_START_SEQ && sub->start_value > from) {
            from = sub->start_value;
        } else if (start == TERN_START_TIME) {
            group->min_ts_ns = sub->start_value;
        }
        for (int p = 0; p < S_LANES; p++) {
            group->lane_next[p] = from;
        }
        group->state = G_READY;
        group->dirty = true;
    }
    s_group_add_consumer(group, sub);
}

static r_topic_t *s_topic_add(s_route_t *self, uint32_t id, const char *name) {
    r_topic_t *topic = tern_alloc(sizeof *topic);
    topic->id = id;
    snprintf(topic->name, sizeof topic->name, "%s", name);
    topic->groups = zlistx_new();
    zhashx_insert(self->topics, S_KEY(id), topic);
    //  Every subscription whose pattern matches joins it.
    for (r_sub_t *sub = (r_sub_t *)zlistx_first(self->subs); sub;
         sub = (r_sub_t *)zlistx_next(self->subs)) {
        if (tern_pattern_match(sub->pattern, topic->name)) {
            s_join(self, sub, topic, true);
        }
    }
    return topic;
}

static void s_topic_destroy(s_route_t *self, r_topic_t *topic) {
    r_group_t *group;
    while ((group = (r_group_t *)zlistx_first(topic->groups))) {
        s_group_destroy(self, group);
    }
    zlistx_destroy(&topic->groups);
    zhashx_delete(self->topics, S_KEY(topic->id));
    free(topic);
}

static bool s_topic_each(const tern_topic_info_t *info, void *arg) {
    s_route_t *self = (s_route_t *)arg;
    if (!s_topic_get(self, info->id)) {
        s_topic_add(self, info->id, info->name);
    }
    return true;
}

//  At start: a durable group with pending entries is opened now, not when a
//  subscription joins it, so that their timers (max_deliver, expiry) run
//  even if no consumer ever comes back. Loaded by s_open_pending.
static bool s_group_each_pending(const tern_group_info_t *info, void *arg) {
    s_route_t *self = (s_route_t *)arg;
    r_topic_t *topic = s_topic_get(self, info->topic_id);
    if (info->pending && topic && !s_durable_get(self, info->topic_id, info->name)) {
        char key[S_DURABLE_KEY_MAX];
        s_durable_key(key, info->topic_id, info->name);
        zhashx_insert(self->durable, key, s_group_new(self, topic, info->name));
    }
    return true;
}

//  Opens every stored durable group with pending entries (the reader's
//  transaction open).
static void s_open_pending(s_route_t *self) {
    if (tern_store_group_list(self->reader, 0, s_group_each_pending, self) != TERN_OK) {
        zsys_error("route: cannot list groups: their timers wait for a consumer");
    }
    for (r_group_t *group = (r_group_t *)zlistx_first(self->groups); group;
         group = (r_group_t *)zlistx_next(self->groups)) {
        if (group->state == G_LOADING) {
            s_group_loaded(self, group, TERN_OK);
        }
    }
}

// ---------------------------------------------------------------------------
//  Subscriptions

static void s_sub_remove(s_route_t *self, r_sub_t *sub) {
    uint64_t now = tern_now_ms();
    //  In-flight messages go back to their groups at once.
    size_t nheld = 0;
    r_pend_t **held = (r_pend_t **)tern_tagmap_list(&sub->tags, UINT64_MAX, &nheld);
    for (size_t i = 0; i < nheld; i++) {
        r_pend_t *pend = held[i];
        s_pend_release(pend);
        pend->due_ms = now;
        pend->group->rescan = true;
        s_check_at(pend->group, now);
    }
    free(held);
    r_group_t *group;
    while ((group = (r_group_t *)zlistx_first(sub->groups))) {
        zlistx_delete(sub->groups, zlistx_cursor(sub->groups));
        s_group_remove_consumer(group, sub);
        if (group->owner == sub) {
            s_group_destroy(self, group);
        }
    }
    zlistx_delete(self->subs, sub->handle);
    zhashx_delete(sub->session->subs, S_KEY(sub->id));
    tern_tagmap_fini(&sub->tags);
    zlistx_destroy(&sub->groups);
    free(sub);
}

static void s_session_gone(s_route_t *self, uint64_t session_id) {
    r_session_t *session = (r_session_t *)zhashx_lookup(self->sessions, S_KEY(session_id));
    if (!session) {
        return;
    }
    r_sub_t *sub;
    while ((sub = (r_sub_t *)zhashx_first(session->subs))) {
        s_sub_remove(self, sub);
    }
    zhashx_delete(self->sessions, S_KEY(session_id)); //  frees it (s_session_free)
}

static void s_handle_sub(s_route_t *self, r_session_t *session, tern_event_t *ev) {
    if (!ev->text || !tern_pattern_valid(ev->text, strlen(ev->text))) {
        s_send_error(self, session, ev->req_id, TERN_ETOPIC, "bad topic pattern");
        return;
    }
    if (ev->group[0] && !tern_name_valid(ev->group, strlen(ev->group))) {
        s_send_error(self, session, ev->req_id, TERN_ENAME, "bad group name");
        return;
    }
    if (ev->start > TERN_START_TIME) {
        s_send_error(self, session, ev->req_id, TERN_ERANGE, "bad start");
        return;
    }
    if (zhashx_size(session->subs) >= self->config->max_subscriptions) {
        s_send_error(self, session, ev->req_id, TERN_ELIMIT,
                     "too many subscriptions on this connection (server/max_subscriptions)");
        return;
    }
    r_sub_t *sub = tern_alloc(sizeof *sub);
    sub->id = ++session->next_sub_id;
    sub->session = session;
    snprintf(sub->pattern, sizeof sub->pattern, "%s", ev->text);
    snprintf(sub->group, sizeof sub->group, "%s", ev->group);
    sub->start = ev->start;
    sub->start_value = ev->start_value;
    sub->window = tern_route_window(ev->credit, self->config->max_inflight);
    sub->groups = zlistx_new();
    sub->handle = zlistx_add_end(self->subs, sub);
    zhashx_insert(session->subs, S_KEY(sub->id), sub);
    s_send_ok(self, session, ev->req_id, sub->id);
    for (r_topic_t *topic = (r_topic_t *)zhashx_first(self->topics); topic;
         topic = (r_topic_t *)zhashx_next(self->topics)) {
        if (tern_pattern_match(sub->pattern, topic->name)) {
            s_join(self, sub, topic, false);
        }
    }
    if (self->config->verbose) {
        zsys_info("route: session %" PRIu64 " sub %" PRIu64 " on %s group '%s' window %u",
                  session->id, sub->id, sub->pattern, sub->group, sub->window);
    }
}

static void s_handle_ack(s_route_t *self, r_session_t *session, r_sub_t *sub, tern_event_t *ev) {
    r_pend_t *pend = (r_pend_t *)tern_tagmap_get(&sub->tags, ev->tag);
    if (ev->type == TERN_EV_ACK && ev->cumulative) {
        size_t n = 0;
        r_pend_t **list = (r_pend_t **)tern_tagmap_list(&sub->tags, ev->tag, &n);
        for (size_t i = 0; i < n; i++) {
            s_pend_ack(self, list[i]);
        }
        free(list);
        if (n == 0 && (ev->tag == 0 || ev->tag > sub->next_tag)) {
            s_send_error(self, session, ev->req_id, TERN_ENOTFOUND, "unknown tag");
        }
        return;
    }
    if (!pend) {
        s_send_error(self, session, ev->req_id, TERN_ENOTFOUND, "unknown or expired tag");
        return;
    }
    uint64_t now = tern_now_ms();
    if (ev->type == TERN_EV_ACK) {
        s_pend_ack(self, pend);
    } else if (ev->type == TERN_EV_NACK) {
        tern_metrics_add(self->metrics->nacked, 1);
        s_count(self, pend->group, TERN_SC_NACKED);
        if (self->config->verbose) {
            zsys_info("route: nacked %s/%s seq %" PRIu64 " trace %s", pend->group->topic->name,
                      pend->group->name, pend->seq, pend->trace ? pend->trace : "-");
        }
        uint64_t delay = ev->has_delay
                             ? ev->delay_ms
                             : tern_route_backoff_ms(self->config->backoff_ms,
                                                     self->config->backoff_max_ms, pend->count);
        //  Persist the NACK itself (its history event) even when this was the
        //  last delivery and s_pend_retry dead-letters the message at once.
        if (pend->group->name[0]) {
            s_op(self, TERN_OP_NACK, pend->group, pend->seq)->due_ms = now + delay;
        }
        s_pend_retry(self, pend, now + delay, false);
    } else {
        s_pend_release(pend);
        s_pend_dead(self, pend, ev->text && ev->text[0] ? ev->text : "term");
    }
}

// ---------------------------------------------------------------------------
//  Admin (groups, dlq.list|replay|purge, group.delete|reset|seek)

typedef struct {
    s_route_t *self;
    tern_json_t *json;
    const char *topic;
} s_list_arg_t;

static bool s_group_each(const tern_group_info_t *info, void *arg) {
    s_list_arg_t *list = (s_list_arg_t *)arg;
    r_group_t *group = s_durable_get(list->self, info->topic_id, info->name);
    tern_json_t *json = list->json;
    tern_json_sep(json);
    tern_json_raw(json, "{");
    tern_json_key_str(json, "topic", list->topic);
    tern_json_key_str(json, "group", info->name);
    tern_json_key_u64(json, "pending",
                      group && group->state == G_READY ? group->pending : info->pending);
    tern_json_key_u64(json, "ack_floor", info->ack_floor);
    tern_json_key_u64(json, "next_unacked", info->next_unacked);
    tern_json_key_u64(json, "dead", info->dead);
    tern_json_key_u64(json, "delivered", info->delivered);
    tern_json_key_u64(json, "redelivered", info->redelivered);
    tern_json_key_u64(json, "acked", info->acked);
    tern_json_key_u64(json, "consumers", group ? group->nconsumers : 0);
    tern_json_raw(json, "}");
    return true;
}

typedef struct {
    s_route_t *self;
    tern_json_t *json;
    const tern_admin_t *admin;
    uint32_t topic_id;
} s_dlq_arg_t;

static bool s_dlq_each(const tern_entry_t *entry, void *arg) {
    s_dlq_arg_t *list = (s_dlq_arg_t *)arg;
    tern_frame_t *msg = &list->self->frame;
    uint64_t msg_id = 0;
    if (tern_store_read(list->self->reader, list->topic_id, entry->seq, msg) == TERN_OK) {
        msg_id = msg->msg_id;
    }
    tern_json_t *json = list->json;
    tern_json_sep(json);
    tern_json_raw(json, "{");
    tern_json_key_str(json, "topic", list->admin->topic);
    tern_json_key_str(json, "group", list->admin->group);
    tern_json_key_u64(json, "seq", entry->seq);
    tern_json_key_u64(json, "msg_id", msg_id);
    tern_json_key_u64(json, "delivery_count", entry->delivery_count);
    tern_json_key_str(json, "reason", entry->reason);
    tern_json_key_u64(json, "dead_at_ms", entry->due_ms);
    tern_json_raw(json, "}");
    return true;
}

//  Queues the storage op of ADMIN (dlq.replay, dlq.purge, group.delete,
//  group.reset, group.seek) on TOPIC_ID; the op carries ADMIN (ctx) and is
//  answered after the commit (s_admin_op_done). Seek and reset drop the
//  group's pending entries here (a consumer's later ack of one gets
//  ENOTFOUND) and hold its delivery until the commit, after which it goes
//  on from the stored position: no delivery from the old position can slip
//  in between. A group with consumers is not deleted (TERN_EBUSY): they
//  would recreate it at once. Takes ownership of ADMIN on TERN_OK.
static tern_err_t s_admin_op(s_route_t *self, tern_admin_t *admin, uint32_t topic_id) {
    tern_op_type_t type = admin->op == TERN_ADMIN_DLQ_REPLAY    ? TERN_OP_REPLAY
                          : admin->op == TERN_ADMIN_DLQ_PURGE   ? TERN_OP_PURGE
                          : admin->op == TERN_ADMIN_GROUP_SEEK  ? TERN_OP_SEEK
                          : admin->op == TERN_ADMIN_GROUP_RESET ? TERN_OP_RESET
                                                                : TERN_OP_DROP;
    r_group_t *group = s_durable_get(self, topic_id, admin->group);
    if (type == TERN_OP_DROP && group && group->nconsumers > 0) {
        return TERN_EBUSY;
    }
    if (type == TERN_OP_DROP && group) {
        s_group_destroy(self, group);
    } else if (group && (type == TERN_OP_SEEK || type == TERN_OP_RESET)) {
        while (group->head) {
            s_pend_destroy(group->head);
        }
        group->state = G_LOADING;
        group->admin_ops++;
    }
    r_topic_t stub_topic = {.id = topic_id};
    r_group_t stub = {.topic = &stub_topic};
    snprintf(stub.name, sizeof stub.name, "%s", admin->group);
    tern_op_t *op = s_op(self, type, &stub, type == TERN_OP_REPLAY ? admin->seq : 0);
    op->start = admin->start;
    op->start_value = admin->start_value;
    op->due_ms = tern_now_ms();
    op->ctx = admin;
    return TERN_OK;
}

//  Takes ownership of ADMIN.
static void s_handle_admin(s_route_t *self, tern_admin_t *admin) {
    tern_topic_info_t topic;
    tern_err_t rc = s_read_begin(self);
    if (rc == TERN_OK) {
        rc = tern_store_topic_get(self->reader, admin->topic, &topic);
    }
    char reason[TERN_REASON_MAX + 1];
    if (rc != TERN_OK) {
        snprintf(reason, sizeof reason,
                 rc == TERN_ENOTFOUND ? "no such topic '%.200s'" : "cannot read topic '%.200s'",
                 admin->topic);
        s_send_admin_error(self, admin, rc, reason);
        free(admin);
        return;
    }
    tern_json_t json;
    tern_json_init(&json);
    if (admin->op == TERN_ADMIN_GROUPS) {
        tern_json_raw(&json, "[");
        s_list_arg_t arg = {self, &json, admin->topic};
        rc = tern_store_group_list(self->reader, topic.id, s_group_each, &arg);
        tern_json_raw(&json, "]");
    } else {
        tern_group_info_t info;
        rc = tern_store_group_get(self->reader, topic.id, admin->group, &info);
        if (rc == TERN_OK && admin->op == TERN_ADMIN_DLQ_LIST) {
            tern_json_raw(&json, "[");
            s_dlq_arg_t arg = {self, &json, admin, topic.id};
            rc = tern_store_dlq_list(self->reader, topic.id, admin->group, s_dlq_each, &arg);
            tern_json_raw(&json, "]");
        } else if (rc == TERN_OK) {
            //  Answered when the storer has committed it (s_admin_op_done).
            rc = s_admin_op(self, admin, topic.id);
            if (rc == TERN_OK) {
                tern_json_free(&json);
                return;
            }
        }
    }
    if (rc == TERN_OK) {
        s_send_reply(self, admin->rid, admin->rid_size, admin->req_id, &json);
    } else if (rc == TERN_EBUSY) {
        s_send_admin_error(self, admin, rc,
                           "the group has consumers connected: stop them first (or use "
                           "group reset or group seek)");
    } else {
        snprintf(reason, sizeof reason,
                 rc == TERN_ENOTFOUND ? "no such group '%s' on topic '%.180s'"
                                      : "cannot read group '%s' of topic '%.180s'",
                 admin->group, admin->topic);
        s_send_admin_error(self, admin, rc, reason);
    }
    tern_json_free(&json);
    free(admin);
}

//  The storer committed admin op OP (see s_admin_op): reload what route
//  holds of the group, then answer the client. Frees the request.
static void s_admin_op_done(s_route_t *self, tern_op_t *op) {
    tern_admin_t *admin = (tern_admin_t *)op->ctx;
    r_group_t *group = s_durable_get(self, op->topic_id, op->group);
    bool moved = op->type == TERN_OP_SEEK || op->type == TERN_OP_RESET;
    if (moved && group && group->admin_ops > 0 && --group->admin_ops == 0 &&
        group->state == G_LOADING) {
        s_group_loaded(self, group, TERN_OK);
    }
    if (op->type == TERN_OP_REPLAY && op->err == TERN_OK && group && group->state == G_READY &&
        s_read_begin(self) == TERN_OK) {
        s_load_t load = {self, group};
        tern_store_pending_list(self->reader, op->topic_id, op->group, s_load_pending, &load);
    }
    tern_group_info_t info;
    if (op->err == TERN_OK && moved &&
        (s_read_begin(self) != TERN_OK ||
         tern_store_group_get(self->reader, op->topic_id, op->group, &info) != TERN_OK)) {
        op->err = TERN_ENOTFOUND;
    }
    if (op->err != TERN_OK) {
        s_send_admin_error(self, admin, op->err,
                           op->type == TERN_OP_REPLAY && op->seq
                               ? "that seq is not in the group's DLQ"
                           : op->err == TERN_ENOTFOUND ? "no such group"
                                                       : "the group operation failed");
    } else {
        tern_json_t json;
        tern_json_init(&json);
        tern_json_raw(&json, "{");
        tern_json_key_str(&json, "topic", admin->topic);
        tern_json_key_str(&json, "group", admin->group);
        if (moved) {
            uint64_t next = UINT64_MAX;
            for (int lane = 0; lane < S_LANES; lane++) {
                next = info.lane_next[lane] < next ? info.lane_next[lane] : next;
            }
            tern_json_key_u64(&json, "next_seq", next);
            tern_json_key_u64(&json, "dead", info.dead);
        } else if (op->type == TERN_OP_DROP) {
            tern_json_key_bool(&json, "deleted", 1);
        } else {
            tern_json_key_u64(&json, op->type == TERN_OP_PURGE ? "purged" : "replayed", op->count);
        }
        tern_json_raw(&json, "}");
        s_send_reply(self, admin->rid, admin->rid_size, admin->req_id, &json);
        tern_json_free(&json);
    }
    free(admin);
    op->ctx = NULL;
}

// ---------------------------------------------------------------------------
//  Inbox

static void s_handle_events(s_route_t *self, tern_events_t *events) {
    for (size_t i = 0; i < events->count; i++) {
        tern_event_t *ev = &events->items[i];
        if (ev->type == TERN_EV_OPEN) {
            s_session_gone(self, ev->session_id); //  a stale one, if any
            r_session_t *session = tern_alloc(sizeof *session);
            session->id = ev->session_id;
            memcpy(session->rid, ev->rid, ev->rid_size);
            session->rid_size = ev->rid_size;
            session->subs = s_u64_hash_new();
            zhashx_insert(self->sessions, S_KEY(session->id), session);
            continue;
        }
        if (ev->type == TERN_EV_GONE) {
            s_session_gone(self, ev->session_id);
            continue;
        }
        if (ev->type == TERN_EV_ADMIN) {
            tern_admin_t *admin = ev->admin;
            ev->admin = NULL;
            s_handle_admin(self, admin);
            continue;
        }
        r_session_t *session = (r_session_t *)zhashx_lookup(self->sessions, S_KEY(ev->session_id));
        if (!session) {
            continue; //  ended meanwhile
        }
        if (ev->type == TERN_EV_SUB) {
            s_handle_sub(self, session, ev);
            continue;
        }
        r_sub_t *sub = (r_sub_t *)zhashx_lookup(session->subs, S_KEY(ev->sub_id));
        if (!sub) {
            s_send_error(self, session, ev->req_id, TERN_ENOTFOUND, "unknown subscription");
            continue;
        }
        switch (ev->type) {
            case TERN_EV_UNSUB:
                s_sub_remove(self, sub);
                s_send_ok(self, session, ev->req_id, ev->sub_id);
                break;
            case TERN_EV_CREDIT: {
                uint64_t window = (uint64_t)sub->window + ev->credit;
                sub->window = window > self->config->max_inflight
                                  ? (self->config->max_inflight ? self->config->max_inflight : 1)
                                  : (uint32_t)window;
                break;
            }
            default:
                s_handle_ack(self, session, sub, ev);
                break;
        }
    }
    tern_events_destroy(&events);
}

//  A peer DC changed GROUP's stored state (replicated acks): adopt lane
//  cursors that moved forward and stored pending entries we do not have (a
//  remote ack of a message not delivered here leaves the lane's earlier
//  messages pending, due now). A waiting entry the store no longer holds
//  although its lane cursor there passed it was acked or dead-lettered by
//  the peer: drop it. Entries whose DELIVER op may still be queued (store
//  cursor not past them) and entries in flight here are kept: those may be
//  delivered once more (at-least-once).
typedef struct {
    s_load_t load;               //  the group being reloaded
    uint64_t lane_next[S_LANES]; //  route's cursors before the reload
} s_reload_t;

//  A stored entry below route's own cursor that route does not hold was
//  acked or dead-lettered here, its op still queued: not loaded again.
static bool s_reload_pending(const tern_entry_t *entry, void *arg) {
    s_reload_t *reload = (s_reload_t *)arg;
    for (r_pend_t *pend = reload->load.group->head; pend; pend = pend->next) {
        if (pend->seq == entry->seq) {
            pend->stored = true;
            return true;
        }
    }
    if (entry->priority < S_LANES && entry->seq < reload->lane_next[entry->priority]) {
        return true;
    }
    return s_load_pending(entry, &reload->load);
}

static void s_group_reload(s_route_t *self, r_group_t *group) {
    tern_group_info_t info;
    if (group->state != G_READY || s_read_begin(self) != TERN_OK ||
        tern_store_group_get(self->reader, group->topic->id, group->name, &info) != TERN_OK) {
        return;
    }
    s_reload_t reload = {{self, group}, {0}};
    memcpy(reload.lane_next, group->lane_next, sizeof reload.lane_next);
    for (int lane = 0; lane < S_LANES; lane++) {
        if (info.lane_next[lane] > group->lane_next[lane]) {
            group->lane_next[lane] = info.lane_next[lane];
        }
    }
    for (r_pend_t *pend = group->head; pend; pend = pend->next) {
        pend->stored = false;
    }
    if (tern_store_pending_list(self->reader, group->topic->id, group->name, s_reload_pending,
                                &reload) == TERN_OK) {
        r_pend_t *pend = group->head;
        while (pend) {
            r_pend_t *next = pend->next;
            if (!pend->inflight && !pend->stored && pend->priority < S_LANES &&
                pend->seq < info.lane_next[pend->priority]) {
                s_pend_destroy(pend);
            }
            pend = next;
        }
    }
    group->dirty = true;
}

static void s_handle_notice(s_route_t *self, tern_notice_t *notice) {
    //  Everything below reads what this notice's commit wrote (reloaded and
    //  opened groups, created topics, appended messages): a read transaction
    //  opened earlier in this drain may predate the commit. (An opened group
    //  read through such a snapshot was not found and failed for good.)
    s_read_end(self);
    for (size_t i = 0; i < notice->reload_count; i++) {
        r_topic_t *topic = s_topic_by_name(self, notice->reload[i].topic);
        if (topic) {
            r_group_t *group = s_durable_get(self, topic->id, notice->reload[i].group);
            if (group) {
                s_group_reload(self, group);
            }
        }
    }
    for (size_t i = 0; i < notice->gone_count; i++) {
        r_topic_t *topic = s_topic_by_name(self, notice->gone[i].name);
        if (topic && !notice->gone[i].purge) {
            s_topic_destroy(self, topic);
        } else if (topic) {
            //  Purged: drop pending entries whose messages are gone at the
            //  next delivery attempt; the cursors continue.
            for (r_group_t *group = (r_group_t *)zlistx_first(topic->groups); group;
                 group = (r_group_t *)zlistx_next(topic->groups)) {
                group->dirty = true;
            }
        }
    }
    for (tern_ops_t *ops = notice->ops; ops; ops = ops->next) {
        for (size_t i = 0; i < ops->count; i++) {
            tern_op_t *op = &ops->items[i];
            if (op->type == TERN_OP_OPEN) {
                r_group_t *group = s_durable_get(self, op->topic_id, op->group);
                if (group && group->state == G_LOADING && group->admin_ops == 0) {
                    s_group_loaded(self, group, op->err);
                }
            } else if (op->ctx) {
                s_admin_op_done(self, op);
            }
        }
    }
    //  Topics made by topic.create: subscriptions join them now (a durable
    //  group is listed at once), not at their first publish.
    for (size_t i = 0; i < notice->created_count; i++) {
        tern_topic_info_t info;
        if (!s_topic_get(self, notice->created[i]) && s_read_begin(self) == TERN_OK &&
            tern_store_topic_get_id(self->reader, notice->created[i], &info) == TERN_OK) {
            s_topic_add(self, info.id, info.name);
        }
    }
    uint32_t last_id = 0;
    r_topic_t *topic = NULL;
    for (size_t i = 0; i < notice->appended_count; i++) {
        tern_appended_t *ap = &notice->appended[i];
        if (!topic || ap->topic_id != last_id) {
            last_id = ap->topic_id;
            topic = s_topic_get(self, ap->topic_id);
            if (!topic) {
                tern_topic_info_t info;
                if (s_read_begin(self) == TERN_OK &&
                    tern_store_topic_get_id(self->reader, ap->topic_id, &info) == TERN_OK) {
                    topic = s_topic_add(self, info.id, info.name);
                }
            }
            if (topic) {
                for (r_group_t *group = (r_group_t *)zlistx_first(topic->groups); group;
                     group = (r_group_t *)zlistx_next(topic->groups)) {
                    group->dirty = true;
                }
            }
        }
    }
    tern_notice_destroy(&notice);
}

// ---------------------------------------------------------------------------
//  Delivery

static r_sub_t *s_next_consumer(r_group_t *group) {
    for (size_t i = 0; i < group->nconsumers; i++) {
        size_t index = (group->rr + i) % group->nconsumers;
        r_sub_t *sub = group->consumers[index];
        if (sub->inflight < sub->window) {
            group->rr = (index + 1) % group->nconsumers;
            return sub;
        }
    }
    return NULL;
}

//  Free window of GROUP's consumers, between 1 and MAX.
static size_t s_free_window(const r_group_t *group, size_t max) {
    size_t free_window = 0;
    for (size_t i = 0; i < group->nconsumers && free_window < max; i++) {
        const r_sub_t *sub = group->consumers[i];
        if (sub->inflight < sub->window) {
            free_window += sub->window - sub->inflight;
        }
    }
    return free_window < 1 ? 1 : free_window > max ? max : free_window;
}

//  Delivers SEQ of GROUP to SUB (PEND is its pending entry for a
//  redelivery, or NULL for a first delivery). Returns false if the message
//  is gone or expired (nothing was sent; PEND, if any, is dropped).
static bool s_deliver(s_route_t *self, r_group_t *group, r_sub_t *sub, uint64_t seq,
                      uint8_t priority, r_pend_t *pend) {
    tern_frame_t *msg = &self->frame;
    tern_err_t rc = tern_store_read(self->reader, group->topic->id, seq, msg);
    uint64_t now_ns = tern_now_ns();
    uint64_t now = tern_now_ms();
    //  A message the TTL sweep removed already is expired too, not "gone".
    bool expired = rc == TERN_OK ? msg->expire_at_ns && msg->expire_at_ns <= now_ns
                                 : pend && pend->expire_ms && pend->expire_ms <= now;
    bool early = rc == TERN_OK && group->min_ts_ns && msg->timestamp_ns < group->min_ts_ns;
    if (rc != TERN_OK || expired || early) {
        if (rc == TERN_ECORRUPT) {
            zsys_error("route: %s seq %" PRIu64 " is corrupt: skipped", group->topic->name, seq);
        }
        if (pend) {
            s_pend_gone(self, pend, expired);
        } else if (expired) {
            tern_metrics_add(self->metrics->expired, 1);
            s_count(self, group, TERN_SC_EXPIRED);
        }
        return false;
    }
    bool first = pend == NULL;
    if (!pend) {
        pend = s_pend_new(group, seq, priority);
        pend->expire_ms = s_expire_ms(msg->expire_at_ns);
    }
    pend->count++;
    pend->inflight = true;
    if (s_series(self, group)) {
        atomic_fetch_add_explicit(&group->series->inflight, 1, memory_order_relaxed);
    }
    pend->sub = sub;
    pend->tag = ++sub->next_tag;
    pend->due_ms = now + self->config->ack_wait_ms;
    sub->inflight++;
    tern_tagmap_insert(&sub->tags, pend->tag, pend);
    s_check_at(group, pend->due_ms);

    msg->cmd = TERN_CMD_DELIVER;
    msg->req_id = 0;
    msg->sub_id = sub->id;
    msg->tag = pend->tag;
    msg->delivery_count = pend->count;
    s_send_deliver(self, sub->session->rid, sub->session->rid_size, msg);
    if (group->name[0]) {
        tern_op_t *op = s_op(self, TERN_OP_DELIVER, group, seq);
        op->priority = priority;
        op->delivery_count = pend->count;
        op->due_ms = pend->due_ms;
        //  "session <id> sub <id>": the consumer, for the history. Without
        //  snprintf: it was ~1k instructions per delivered message.
        char *at = op->reason;
        memcpy(at, "session ", 8);
        at += 8;
        at += tern_route_u64_str(sub->session->id, at);
        memcpy(at, " sub ", 5);
        at += 5;
        tern_route_u64_str(sub->id, at);
    }
    //  Every delivery counts; one with a count above 1 is also a redelivery
    //  (the store's group counters and the audit count alike).
    tern_metrics_add(self->metrics->delivered, 1);
    s_count(self, group, TERN_SC_DELIVERED);
    if (pend->count > 1) {
        tern_metrics_add(self->metrics->redelivered, 1);
        s_count(self, group, TERN_SC_REDELIVERED);
    }
    if (first && now_ns > msg->timestamp_ns) {
        tern_histo_observe(&self->metrics->deliver_latency, now_ns - msg->timestamp_ns);
    }
    if (self->config->verbose) {
        if (!pend->trace) {
            pend->trace = strdup(msg->trace_id);
        }
        zsys_info("route: delivered %s/%s seq %" PRIu64 " msg %" PRIu64 " #%u to session %" PRIu64
                  " sub %" PRIu64 " trace %s",
                  group->topic->name, group->name[0] ? group->name : "(ephemeral)", seq,
                  msg->msg_id, pend->count, sub->session->id, sub->id, msg->trace_id);
    }
    return true;
}

static void s_dispatch(s_route_t *self, r_group_t *group, uint64_t now) {
    if (group->state != G_READY || group->nconsumers == 0) {
        return;
    }
    if (group->rescan) {
        bool blocked = false;
        r_pend_t *next;
        for (r_pend_t *pend = group->head; pend; pend = next) {
            next = pend->next;
            if (pend->inflight || pend->due_ms > now) {
                continue;
            }
            if (s_pend_spent(self, pend)) {
                s_pend_dead(self, pend, "max_deliver");
                continue;
            }
            r_sub_t *sub = s_next_consumer(group);
            if (!sub) {
                blocked = true;
                break;
            }
            s_deliver(self, group, sub, pend->seq, pend->priority, pend);
        }
        if (!blocked) {
            group->rescan = false;
        }
    }
    if (!group->dirty) {
        return;
    }
    uint64_t seqs[S_SCAN_MAX];
    for (int p = TERN_PRIORITY_MAX; p >= 0; p--) {
        while (true) {
            //  No more seqs than the consumers can take now (at least one, to
            //  see whether the lane is empty): what is not delivered is
            //  scanned again later.
            size_t want = s_free_window(group, S_SCAN_MAX);
            size_t count = 0;
            if (tern_store_lane_scan(self->reader, group->topic->id, (uint8_t)p,
                                     group->lane_next[p], seqs, want, &count) != TERN_OK) {
                break;
            }
            for (size_t i = 0; i < count; i++) {
                r_sub_t *sub = s_next_consumer(group);
                if (!sub) {
                    return; //  still dirty: more when credit frees up
                }
                group->lane_next[p] = seqs[i] + 1;
                if (!s_deliver(self, group, sub, seqs[i], (uint8_t)p, NULL)) {
                    //  Skipped: undo the round robin step for fairness.
                    group->rr = group->rr ? group->rr - 1 : group->nconsumers - 1;
                }
            }
            if (count < want) {
                break;
            }
        }
    }
    group->dirty = false;
}

//  When the group's next deadline has come: moves timed-out deliveries back
//  to waiting (or to the DLQ), drops waiting entries whose message expired,
//  dead-letters due ones that had every delivery max_deliver allows, and
//  flags the other due ones for s_dispatch. Runs with or without consumers:
//  only the redelivery itself needs one.
static void s_timers(s_route_t *self, r_group_t *group, uint64_t now) {
    if (group->next_check_ms == 0 || group->next_check_ms > now) {
        return;
    }
    group->next_check_ms = 0;
    r_pend_t *next;
    for (r_pend_t *pend = group->head; pend; pend = next) {
        next = pend->next;
        if (pend->inflight && pend->due_ms <= now) {
            uint64_t due = now + tern_route_backoff_ms(self->config->backoff_ms,
                                                       self->config->backoff_max_ms, pend->count);
            s_pend_retry(self, pend, due, true); //  may free pend
        } else if (pend->inflight) {
            s_check_at(group, pend->due_ms); //  its holder may still ack it, expired or not
        } else if (pend->expire_ms && pend->expire_ms <= now) {
            s_pend_gone(self, pend, true);
        } else if (pend->due_ms <= now && s_pend_spent(self, pend)) {
            s_pend_dead(self, pend, "max_deliver");
        } else {
            if (pend->due_ms <= now) {
                group->rescan = true;
            } else {
                s_check_at(group, pend->due_ms);
            }
            if (pend->expire_ms) {
                s_check_at(group, pend->expire_ms);
            }
        }
    }
}

static void s_flush_ops(s_route_t *self) {
    if (self->ops) {
        self->ops_hint = self->ops->count;
        if (tern_work_send(self->to_storer, TERN_WORK_OPS, self->ops) != 0) {
            tern_ops_destroy(&self->ops);
        }
        self->ops = NULL;
    }
}

// ---------------------------------------------------------------------------
//  The actor

static void s_session_free(void **item_p) {
    r_session_t *session = (r_session_t *)*item_p;
    if (session) {
        zhashx_destroy(&session->subs);
        free(session);
        *item_p = NULL;
    }
}

//  Frees NOTICE and the admin requests its ops still carry.
static void s_notice_free(tern_notice_t *notice) {
    for (tern_ops_t *ops = notice->ops; ops; ops = ops->next) {
        for (size_t i = 0; i < ops->count; i++) {
            free(ops->items[i].ctx);
        }
    }
    tern_notice_destroy(&notice);
}

static void s_cleanup(s_route_t *self) {
    //  Items still in the inbox (shutdown): nobody will handle them.
    tern_work_type_t type;
    void *ptr;
    while (self->inbox && tern_work_recv(self->inbox, ZMQ_DONTWAIT, &type, &ptr) == 0) {
        if (type == TERN_WORK_EVENTS) {
            tern_events_t *events = (tern_events_t *)ptr;
            tern_events_destroy(&events);
        } else if (type == TERN_WORK_NOTICE) {
            s_notice_free((tern_notice_t *)ptr);
        }
    }
    if (self->ops) {
        for (size_t i = 0; i < self->ops->count; i++) {
            free(self->ops->items[i].ctx);
        }
    }
    //  Subscriptions first (they reference groups), then groups and topics.
    if (self->sessions) {
        for (r_session_t *session = (r_session_t *)zhashx_first(self->sessions); session;
             session = (r_session_t *)zhashx_next(self->sessions)) {
            r_sub_t *sub;
            while ((sub = (r_sub_t *)zhashx_first(session->subs))) {
                s_sub_remove(self, sub);
            }
        }
        zhashx_destroy(&self->sessions);
    }
    if (self->topics) {
        r_topic_t *topic;
        while ((topic = (r_topic_t *)zhashx_first(self->topics))) {
            s_topic_destroy(self, topic);
        }
        zhashx_destroy(&self->topics);
    }
    zhashx_destroy(&self->durable);
    zlistx_destroy(&self->groups);
    zlistx_destroy(&self->subs);
    tern_ops_destroy(&self->ops);
    tern_delivers_destroy(&self->batch);
    while (self->pool.free) {
        r_pend_t *next = self->pool.free->next;
        free(self->pool.free);
        self->pool.free = next;
    }
    s_read_end(self);
    tern_store_reader_destroy(&self->reader);
    zsock_destroy(&self->inbox_sock);
    zsock_destroy(&self->storer_sock);
    zsock_destroy(&self->out_sock);
}

void tern_route_actor(zsock_t *pipe, void *arg) {
    tern_thread_name("ternd-route");
    s_route_t *self = tern_alloc(sizeof(s_route_t));
    self->args = (tern_route_args_t *)arg;
    self->config = self->args->config;
    self->metrics = self->args->metrics;
    self->pipe = zsock_resolve(pipe);
    self->sessions = s_u64_hash_new();
    zhashx_set_destructor(self->sessions, s_session_free);
    self->topics = s_u64_hash_new();
    self->durable = zhashx_new();
    self->groups = zlistx_new();
    self->subs = zlistx_new();
    self->reader = tern_store_reader_new(self->args->store);
    self->inbox = tern_work_pull_bind(&self->inbox_sock, self->args->inbox);
    self->to_storer = tern_work_push_connect(&self->storer_sock, self->args->storer_inbox);
    self->out = tern_work_push_connect(&self->out_sock, self->args->conn_out);
    if (!self->reader || !self->inbox || !self->to_storer || !self->out) {
        goto fail;
    }
    //  Known topics, and the groups whose pending entries have timers; the
    //  other groups are opened when subscriptions join them.
    if (s_read_begin(self) == TERN_OK) {
        tern_store_topic_list(self->reader, s_topic_each, self);
        s_open_pending(self);
    }
    s_read_end(self);
    zsock_signal(pipe, 0);

    bool running = true;
    while (running) {
        zmq_pollitem_t items[] = {{self->pipe, 0, ZMQ_POLLIN, 0}, {self->inbox, 0, ZMQ_POLLIN, 0}};
        uint64_t now = tern_now_ms();
        long timeout = 1000;
        for (r_group_t *group = (r_group_t *)zlistx_first(self->groups); group;
             group = (r_group_t *)zlistx_next(self->groups)) {
            if (group->next_check_ms) {
                long wait = group->next_check_ms > now ? (long)(group->next_check_ms - now) : 0;
                if (wait < timeout) {
                    timeout = wait;
                }
            }
        }
        int rc = zmq_poll(items, 2, timeout);
        if (rc < 0 && errno != EINTR) {
            break;
        }
        if (rc > 0 && (items[0].revents & ZMQ_POLLIN)) {
            char *command = zstr_recv(pipe);
            if (!command || streq(command, "$TERM")) {
                running = false;
            }
            zstr_free(&command);
        }
        if (rc > 0 && (items[1].revents & ZMQ_POLLIN)) {
            for (int n = 0; n < S_DRAIN_MAX; n++) {
                tern_work_type_t type;
                void *ptr;
                if (tern_work_recv(self->inbox, ZMQ_DONTWAIT, &type, &ptr) != 0) {
                    break;
                }
                if (type == TERN_WORK_EVENTS) {
                    s_handle_events(self, (tern_events_t *)ptr);
                } else if (type == TERN_WORK_NOTICE) {
                    s_handle_notice(self, (tern_notice_t *)ptr);
                } else {
                    zsys_error("route: unexpected work item type %d", (int)type);
                }
            }
        }
        now = tern_now_ms();
        for (r_group_t *group = (r_group_t *)zlistx_first(self->groups); group;
             group = (r_group_t *)zlistx_next(self->groups)) {
            s_timers(self, group, now);
        }
        if (s_read_begin(self) == TERN_OK) {
            for (r_group_t *group = (r_group_t *)zlistx_first(self->groups); group;
                 group = (r_group_t *)zlistx_next(self->groups)) {
                s_dispatch(self, group, now);
            }
        }
        s_read_end(self);
        s_flush_batch(self);
        s_flush_ops(self);
    }
    s_cleanup(self);
    free(self);
    return;

fail:
    zsys_error("route: cannot start");
    s_cleanup(self);
    free(self);
    zsock_signal(pipe, 1);
    char *command = zstr_recv(pipe);
    zstr_free(&command);
}
