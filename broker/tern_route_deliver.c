/*  tern_route_deliver.c - route: DELIVER output, pending entries, dispatch and timers.

    The hot path of the route actor (tern_route.c): encoding DELIVER frames into
    batches for conn, the pending entries of each group (in flight or waiting
    for redelivery), credit and round robin among a group's consumers, the
    ack-wait / redelivery / max_deliver / expiry timers and the ops for the
    storer. One file so the per-message path stays in one translation unit.
*/
#include "tern_route_priv.h"
#include "tern_memory.h"
#include <inttypes.h>
#include <string.h>

//  What fan-out may hold in memory. Credit counts messages, so 100
//  consumers x 1000 credit held 100,000 DELIVERs (payload copies waiting in
//  conn's pipes for slow readers): 140 MB of 1 KB messages, 6.4 GB of 64 KB
//  ones. Deliveries in flight are therefore bounded by bytes as well, per
//  consumer (so one slow reader cannot take the whole budget) and over all
//  groups. Both are checked before a delivery: one message always goes.
//  Bytes come back only on ack (or ack_wait), so the global bound alone let
//  16 consumers that never ack (1 MB each) stop every other group on every
//  topic. Past it, a consumer therefore still takes deliveries while it holds
//  less than its fair share (S_ROUTE_BYTES_MAX / consumer links) and always
//  one message: at most S_ROUTE_BYTES_MAX plus about one message per consumer.
#define S_SUB_BYTES_MAX   (1u << 20)  //  unacked DELIVER bytes per consumer
#define S_ROUTE_BYTES_MAX (16u << 20) //  unacked DELIVER bytes over all groups
//  Ops per item handed to the storer: it closes a transaction only between
//  items (storage/batch_bytes), and one round of fan-out to 100 groups made
//  items of 100,000+ ops (40 MB here, 55 MB more in the storer's batch).
//  And the item's array stays below malloc's mmap threshold: at 4096 ops
//  (1.6 MB of 392-byte ops) every array was a fresh mapping, and route spent a tenth of its
//  time under fan-out zeroing its pages on first touch (perf: clear_page
//  under tern_ops_push); below it, freed arrays are reused from the heap.
#define S_OPS_ITEM_MAX 1024
_Static_assert(S_OPS_ITEM_MAX * sizeof(tern_op_t) < TERN_MEMORY_MMAP_THRESHOLD,
               "an op batch's array stays in the heap");
//  Ops sent to the storer and not yet taken into a transaction: past this,
//  groups deliver no more until it catches up. Every delivery costs two ops
//  (DELIVER, ACK; ~400 bytes each), and under fan-out route made them faster
//  than the storer committed them: 170 MB queued in its inbox. 8192, not
//  16384: the ops queued, the ACKs of what is in flight and the storer's
//  open transaction made most of the peak under fan-out (heaptrack: 41 MB of
//  op arrays); RssAnon peak of 20,000 x 100 groups 116-118 -> 90-94 MB at
//  the same storer CPU per delivery (4096: 74 MB, but 15 % more storer CPU,
//  its transactions too small).
#define S_OPS_QUEUED_MAX 8192

// ---------------------------------------------------------------------------
//  Output

tern_op_t *r_op(r_route_t *self, tern_op_type_t type, const r_group_t *group, uint64_t seq) {
    if (self->ops && self->ops->count >= S_OPS_ITEM_MAX) {
        r_flush_ops(self);
    }
    if (!self->ops) {
        self->ops = tern_alloc(sizeof(tern_ops_t));
        //  Sized like the last round's: growing by doubling from 64 copied
        //  each ~400-byte op several times per round. At most S_OPS_ITEM_MAX.
        if (self->ops_hint > 64) {
            //  (Doubling from at most half of it ends at S_OPS_ITEM_MAX.)
            self->ops->cap = self->ops_hint <= S_OPS_ITEM_MAX / 2 ? self->ops_hint : S_OPS_ITEM_MAX;
            self->ops->items = tern_realloc(NULL, self->ops->cap * sizeof(tern_op_t));
        }
    }
    tern_op_t *op = tern_ops_push(self->ops);
    op->type = (uint8_t)type;
    op->topic_id = group->topic->id;
    op->partition = group->topic->partition;
    //  Two ops per delivered message (DELIVER, ACK): a plain copy, not snprintf.
    size_t glen = strnlen(group->name, sizeof op->group - 1);
    memcpy(op->group, group->name, glen);
    op->group[glen] = 0;
    op->seq = seq;
    return op;
}

//  Hands the queued DELIVERs to conn as one DELIVERS item; conn owns them then.
void r_flush_batch(r_route_t *self) {
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

//  Queues DELIVER FRAME with PAYLOAD to RID in the current batch: the header
//  encoded in the reused buffer and copied once into the zmq_msg_t conn
//  sends, the payload shared (a reference to the cached message, no copy).
//  Returns the bytes queued, 0 if the frame cannot be encoded.
static size_t s_send_deliver(r_route_t *self, const uint8_t *rid, size_t rid_size,
                             const tern_frame_t *frame, zmq_msg_t *payload) {
    size_t len = 0;
    tern_err_t rc = tern_frame_encode(frame, self->buf, sizeof self->buf, &len);
    if (rc != TERN_OK) {
        zsys_error("route: cannot encode %s: %s", tern_cmd_name(frame->cmd), tern_strerror(rc));
        return 0;
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
    zmq_msg_init(&item->parts[2]);
    if (zmq_msg_copy(&item->parts[2], payload) != 0) {
        tern_oom(0); //  only fails on an invalid message: ours are valid
    }
    if (batch->count == batch->cap) {
        r_flush_batch(self); //  conn sends these while route reads the next ones
    }
    return rid_size + len + frame->payload_size;
}

static void s_send(r_route_t *self, const uint8_t *rid, size_t rid_size, const tern_frame_t *frame,
                   const void *payload, size_t payload_size) {
    //  After the DELIVERs queued before it, never ahead of them.
    r_flush_batch(self);
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

void r_send_error(r_route_t *self, r_session_t *session, uint64_t req_id, tern_err_t code,
                  const char *reason) {
    tern_frame_t *frame = &self->frame;
    tern_frame_init(frame, TERN_CMD_ERROR);
    frame->req_id = req_id;
    frame->code = (uint32_t)code;
    snprintf(frame->reason, sizeof frame->reason, "%s", reason);
    frame->fields |= TERN_F_REASON;
    s_send(self, session->rid, session->rid_size, frame, NULL, 0);
}

void r_send_ok(r_route_t *self, r_session_t *session, uint64_t req_id, uint64_t sub_id) {
    tern_frame_t *frame = &self->frame;
    tern_frame_init(frame, TERN_CMD_OK);
    frame->req_id = req_id;
    frame->sub_id = sub_id;
    s_send(self, session->rid, session->rid_size, frame, NULL, 0);
}

void r_send_reply(r_route_t *self, const uint8_t *rid, size_t rid_size, uint64_t req_id,
                  const tern_json_t *json) {
    tern_frame_t *frame = &self->frame;
    tern_frame_init(frame, TERN_CMD_REPLY);
    frame->req_id = req_id;
    frame->payload = (const uint8_t *)json->data;
    frame->payload_size = json->len;
    s_send(self, rid, rid_size, frame, json->data, json->len);
}

void r_send_admin_error(r_route_t *self, const tern_admin_t *admin, tern_err_t code,
                        const char *reason) {
    tern_frame_t *frame = &self->frame;
    tern_frame_init(frame, TERN_CMD_ERROR);
    frame->req_id = admin->req_id;
    frame->code = (uint32_t)code;
    snprintf(frame->reason, sizeof frame->reason, "%s", reason);
    frame->fields |= TERN_F_REASON;
    s_send(self, admin->rid, admin->rid_size, frame, NULL, 0);
}

tern_err_t r_read_begin(r_route_t *self) {
    if (self->reading) {
        return TERN_OK;
    }
    tern_err_t rc = tern_store_read_begin(self->reader);
    self->reading = rc == TERN_OK;
    self->snapshot++;
    return rc;
}

//  Drops every cached message: their records are the snapshot's.
static void s_cache_clear(r_cache_t *cache) {
    for (size_t i = 0; i < cache->nused; i++) {
        r_cached_t *slot = &cache->slots[cache->used[i]];
        if (slot->valid) {
            zmq_msg_close(&slot->payload); //  DELIVERs still queued keep their reference
        }
        slot->valid = false;
        slot->listed = false;
    }
    cache->nused = 0;
}

void r_read_end(r_route_t *self) {
    s_cache_clear(&self->cache);
    if (self->reading) {
        tern_store_read_end(self->reader);
        self->reading = false;
    }
}

void r_cache_destroy(r_route_t *self) {
    s_cache_clear(&self->cache);
    free(self->cache.slots);
    free(self->cache.used);
    self->cache.slots = NULL;
    self->cache.used = NULL;
}

//  Message SEQ of TOPIC_ID as read in the open snapshot, into *RC (TERN_OK
//  or the read's error); NULL if it could not be read. Read once per
//  snapshot: the other groups delivering it in the same round find it here.
//  Borrowed until r_read_end.
static r_cached_t *s_cache_read(r_route_t *self, uint32_t topic_id, uint64_t seq, tern_err_t *rc) {
    r_cache_t *cache = &self->cache;
    if (!cache->slots) {
        cache->slots = tern_alloc(S_CACHE_SLOTS * sizeof(r_cached_t));
        cache->used = tern_alloc(S_CACHE_SLOTS * sizeof(uint16_t));
    }
    size_t index = seq & (S_CACHE_SLOTS - 1);
    r_cached_t *slot = &cache->slots[index];
    if (slot->valid && slot->topic_id == topic_id && slot->frame.seq == seq) {
        *rc = TERN_OK;
        return slot;
    }
    if (slot->valid) {
        zmq_msg_close(&slot->payload); //  another message: this one is read again if needed
        slot->valid = false;
    }
    if (!slot->listed) {
        cache->used[cache->nused++] = (uint16_t)index;
        slot->listed = true;
    }
    *rc = tern_store_read(self->reader, topic_id, seq, &slot->frame);
    if (*rc != TERN_OK) {
        return NULL;
    }
    s_msg_init(&slot->payload, slot->frame.payload, slot->frame.payload_size);
    slot->topic_id = topic_id;
    slot->valid = true;
    return slot;
}

// ---------------------------------------------------------------------------
//  Pending entries

void r_check_at(r_group_t *group, uint64_t at_ms) {
    if (group->next_check_ms == 0 || at_ms < group->next_check_ms) {
        group->next_check_ms = at_ms;
    }
}

r_pend_t *r_pend_new(r_group_t *group, uint64_t seq, uint8_t priority) {
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
void r_pend_release(r_pend_t *pend) {
    if (pend->inflight && pend->group->series) {
        atomic_fetch_sub_explicit(&pend->group->series->inflight, 1, memory_order_relaxed);
    }
    if (pend->inflight) {
        pend->group->pool->inflight_bytes -= pend->bytes;
    }
    if (pend->inflight && pend->sub) {
        tern_tagmap_delete(&pend->sub->tags, pend->tag);
        if (pend->sub->inflight > 0) {
            pend->sub->inflight--;
        }
        pend->sub->inflight_bytes -= pend->bytes;
    }
    pend->bytes = 0;
    pend->inflight = false;
    pend->sub = NULL;
    pend->tag = 0;
}

//  Removes PEND from its group and frees it.
void r_pend_destroy(r_pend_t *pend) {
    r_group_t *group = pend->group;
    r_pend_release(pend);
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
static tern_series_slot_t *s_series(r_route_t *self, r_group_t *group) {
    if (!group->series && group->name[0]) {
        group->series = tern_series_get(self->metrics->series, group->topic->name, group->name);
    }
    return group->series;
}

void r_count(r_route_t *self, r_group_t *group, tern_series_counter_t c) {
    tern_series_slot_t *series = s_series(self, group);
    if (series) {
        atomic_fetch_add_explicit(&series->counters[c], 1, memory_order_relaxed);
    }
}

void r_pend_ack(r_route_t *self, r_pend_t *pend) {
    r_group_t *group = pend->group;
    if (group->name[0]) {
        r_op(self, TERN_OP_ACK, group, pend->seq);
    }
    tern_metrics_add(self->metrics->acked, 1);
    r_count(self, group, TERN_SC_ACKED);
    if (self->config->verbose) {
        zsys_info("route: acked %s/%s seq %" PRIu64 " trace %s", group->topic->name,
                  group->name[0] ? group->name : "(ephemeral)", pend->seq,
                  pend->trace ? pend->trace : "-");
    }
    r_pend_destroy(pend);
}

void r_pend_dead(r_route_t *self, r_pend_t *pend, const char *reason) {
    r_group_t *group = pend->group;
    if (group->name[0]) {
        tern_op_t *op = r_op(self, TERN_OP_DEAD, group, pend->seq);
        op->delivery_count = pend->count;
        op->reason = tern_strndup(reason, TERN_REASON_MAX);
    }
    tern_metrics_add(self->metrics->dead, 1);
    r_count(self, group, TERN_SC_DEAD);
    if (self->config->verbose) {
        zsys_info("route: dead %s/%s seq %" PRIu64 " to DLQ (%s) trace %s", group->topic->name,
                  group->name, pend->seq, reason, pend->trace ? pend->trace : "-");
    }
    r_pend_destroy(pend);
}

//  True if PEND has had every delivery max_deliver allows.
static bool s_pend_spent(const r_route_t *self, const r_pend_t *pend) {
    return self->config->max_deliver > 0 && pend->count >= self->config->max_deliver;
}

//  PEND's message is gone from the log or EXPIRED: it can never be delivered
//  again. An expired one is counted, and its history says "expired", not
//  "acked".
static void s_pend_gone(r_route_t *self, r_pend_t *pend, bool expired) {
    r_group_t *group = pend->group;
    if (expired) {
        tern_metrics_add(self->metrics->expired, 1);
        r_count(self, group, TERN_SC_EXPIRED);
    }
    if (group->name[0]) {
        tern_op_t *op = r_op(self, TERN_OP_ACK, group, pend->seq);
        op->cause = expired ? TERN_CAUSE_EXPIRED : TERN_CAUSE_CONSUMER;
    }
    if (self->config->verbose) {
        zsys_info("route: dropped %s/%s seq %" PRIu64 " (%s)", group->topic->name,
                  group->name[0] ? group->name : "(ephemeral)", pend->seq,
                  expired ? "expired" : "gone");
    }
    r_pend_destroy(pend);
}

//  Unix ms at or after expiry time EXPIRE_AT_NS (0 = never).
uint64_t r_expire_ms(uint64_t expire_at_ns) {
    return expire_at_ns ? (expire_at_ns + 999999) / 1000000 : 0;
}

//  Makes PEND wait for redelivery at DUE_MS (or die if it used its deliveries).
void r_pend_retry(r_route_t *self, r_pend_t *pend, uint64_t due_ms, bool persist) {
    r_group_t *group = pend->group;
    r_pend_release(pend);
    if (s_pend_spent(self, pend)) {
        r_pend_dead(self, pend, "max_deliver");
        return;
    }
    pend->due_ms = due_ms;
    if (pend->expire_ms) {
        r_check_at(group, pend->expire_ms); //  it may expire before it is due
    }
    if (persist && group->name[0]) {
        //  Only the ack-wait timer persists here (an explicit NACK persists
        //  its own op): its history event says "timeout", not "nacked".
        tern_op_t *op = r_op(self, TERN_OP_NACK, group, pend->seq);
        op->due_ms = due_ms;
        op->cause = TERN_CAUSE_ACK_WAIT;
    }
    r_check_at(group, due_ms);
    group->rescan = true;
}

// ---------------------------------------------------------------------------
//  Delivery

//  True if SUB may take another delivery: credit and bytes left.
static inline bool s_sub_open(const r_sub_t *sub) {
    return sub->inflight < sub->window && sub->inflight_bytes < S_SUB_BYTES_MAX;
}

//  True if SUB may take another delivery under the global bound: while
//  route's deliveries in flight are under S_ROUTE_BYTES_MAX, or SUB holds
//  less than its fair share of it (nothing at all: one message always goes).
static inline bool s_route_open(const r_group_t *group, const r_sub_t *sub) {
    const r_pool_t *pool = group->pool;
    if (pool->inflight_bytes < S_ROUTE_BYTES_MAX || sub->inflight_bytes == 0) {
        return true;
    }
    size_t consumers = pool->consumers ? pool->consumers : 1;
    return sub->inflight_bytes < S_ROUTE_BYTES_MAX / consumers;
}

static r_sub_t *s_next_consumer(r_group_t *group) {
    for (size_t i = 0; i < group->nconsumers; i++) {
        size_t index = (group->rr + i) % group->nconsumers;
        r_sub_t *sub = group->consumers[index];
        if (s_sub_open(sub) && s_route_open(group, sub)) {
            group->rr = (index + 1) % group->nconsumers;
            return sub;
        }
    }
    return NULL;
}

//  Free window of GROUP's consumers, between 1 and MAX. Consumers the byte
//  bounds hold back count for nothing: a group over its fair share would
//  otherwise scan S_SCAN_MAX seqs every round to deliver none.
static size_t s_free_window(const r_group_t *group, size_t max) {
    size_t free_window = 0;
    for (size_t i = 0; i < group->nconsumers && free_window < max; i++) {
        const r_sub_t *sub = group->consumers[i];
        if (s_sub_open(sub) && s_route_open(group, sub)) {
            free_window += sub->window - sub->inflight;
        }
    }
    return free_window < 1 ? 1 : free_window > max ? max : free_window;
}

//  True if SEQ (read into MSG with RC) can be delivered now. If not, drops
//  PEND (a redelivery) or counts an expired first delivery.
static inline bool s_deliverable(r_route_t *self, r_group_t *group, uint64_t seq,
                                 const tern_frame_t *msg, tern_err_t rc, r_pend_t *pend,
                                 uint64_t now_ns, uint64_t now) {
    //  A message the TTL sweep removed already is expired too, not "gone".
    bool expired = rc == TERN_OK ? msg->expire_at_ns && msg->expire_at_ns <= now_ns
                                 : pend && pend->expire_ms && pend->expire_ms <= now;
    bool early = rc == TERN_OK && group->min_ts_ns && msg->timestamp_ns < group->min_ts_ns;
    if (rc == TERN_OK && !expired && !early) {
        return true;
    }
    if (rc == TERN_ECORRUPT) {
        zsys_error("route: %s seq %" PRIu64 " is corrupt: skipped", group->topic->name, seq);
    }
    if (pend) {
        s_pend_gone(self, pend, expired);
    } else if (expired) {
        tern_metrics_add(self->metrics->expired, 1);
        r_count(self, group, TERN_SC_EXPIRED);
    }
    return false;
}

//  Puts PEND (created now for a first delivery) in flight to SUB under a new
//  tag, due back by NOW + ack_wait. Returns PEND.
static inline r_pend_t *s_pend_inflight(r_route_t *self, r_group_t *group, r_sub_t *sub,
                                        uint64_t seq, uint8_t priority, r_pend_t *pend,
                                        const tern_frame_t *msg, uint64_t now) {
    if (!pend) {
        pend = r_pend_new(group, seq, priority);
        pend->expire_ms = r_expire_ms(msg->expire_at_ns);
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
    r_check_at(group, pend->due_ms);
    return pend;
}

//  Persists the DELIVER op of a durable group (the message history).
static inline void s_deliver_op(r_route_t *self, r_group_t *group, r_sub_t *sub, uint64_t seq,
                                uint8_t priority, const r_pend_t *pend) {
    tern_op_t *op = r_op(self, TERN_OP_DELIVER, group, seq);
    op->priority = priority;
    op->delivery_count = pend->count;
    op->due_ms = pend->due_ms;
    //  "session <id> sub <id>": the consumer, for the history. Without
    //  snprintf: it was ~1k instructions per delivered message.
    char *at = op->consumer;
    memcpy(at, "session ", 8);
    at += 8;
    at += tern_route_u64_str(sub->session->id, at);
    memcpy(at, " sub ", 5);
    at += 5;
    tern_route_u64_str(sub->id, at);
}

//  Counts a delivery of MSG (FIRST: not a redelivery) and, if verbose, logs it.
static inline void s_deliver_count(r_route_t *self, r_group_t *group, r_sub_t *sub, uint64_t seq,
                                   r_pend_t *pend, const tern_frame_t *msg, bool first,
                                   uint64_t now_ns) {
    //  Every delivery counts; one with a count above 1 is also a redelivery
    //  (the store's group counters and the audit count alike).
    tern_metrics_add(self->metrics->delivered, 1);
    r_count(self, group, TERN_SC_DELIVERED);
    if (pend->count > 1) {
        tern_metrics_add(self->metrics->redelivered, 1);
        r_count(self, group, TERN_SC_REDELIVERED);
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
}

//  Delivers SEQ of GROUP to SUB (PEND is its pending entry for a
//  redelivery, or NULL for a first delivery). Returns false if the message
//  is gone or expired (nothing was sent; PEND, if any, is dropped).
static bool s_deliver(r_route_t *self, r_group_t *group, r_sub_t *sub, uint64_t seq,
                      uint8_t priority, r_pend_t *pend) {
    tern_err_t rc;
    r_cached_t *cached = s_cache_read(self, group->topic->id, seq, &rc);
    tern_frame_t *msg = cached ? &cached->frame : &self->frame;
    uint64_t now_ns = tern_now_ns();
    uint64_t now = tern_now_ms();
    if (!s_deliverable(self, group, seq, msg, rc, pend, now_ns, now)) {
        return false;
    }
    bool first = pend == NULL;
    pend = s_pend_inflight(self, group, sub, seq, priority, pend, msg, now);

    msg->cmd = TERN_CMD_DELIVER;
    msg->req_id = 0;
    msg->sub_id = sub->id;
    msg->tag = pend->tag;
    msg->delivery_count = pend->count;
    //  Counted until the ack (r_pend_release): conn's pipes hold at most that.
    size_t bytes =
        s_send_deliver(self, sub->session->rid, sub->session->rid_size, msg, &cached->payload);
    pend->bytes = (uint32_t)bytes;
    sub->inflight_bytes += bytes;
    group->pool->inflight_bytes += bytes;
    if (group->name[0]) {
        s_deliver_op(self, group, sub, seq, priority, pend);
    }
    s_deliver_count(self, group, sub, seq, pend, msg, first, now_ns);
    return true;
}

bool r_ops_full(const r_route_t *self) {
    return atomic_load_explicit(&self->metrics->ops_queued, memory_order_relaxed) >=
           S_OPS_QUEUED_MAX;
}

//  True if lane P of TOPIC has no seq at or above FROM in the open snapshot,
//  as another group's scan in it found: under fan-out to N groups, each of
//  the lanes a round finds empty is searched once, not N times (most lanes
//  are: messages go to one or two of the ten; each search is a cursor and a
//  B-tree descent).
static inline bool s_lane_known_empty(const r_route_t *self, const r_topic_t *topic, int p,
                                      uint64_t from) {
    return topic->lane_snapshot == self->snapshot && from >= topic->lane_empty[p];
}

//  Answers a scan of lane P of TOPIC from FROM for at most MAX seqs from
//  the lane's last scan in this snapshot, when that covers it: the seqs it
//  found from FROM on are all of the lane's up to its last one. Returns
//  false if it does not cover it.
static bool s_scan_memo(const r_route_t *self, const r_topic_t *topic, int p, uint64_t from,
                        uint64_t *seqs, size_t max, size_t *count) {
    const r_scan_t *memo = &self->scans[p];
    if (memo->snapshot != self->snapshot || memo->topic_id != topic->id || memo->from > from) {
        return false;
    }
    size_t lo = 0, hi = memo->count; //  first seq >= from
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (memo->seqs[mid] < from) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    size_t avail = memo->count - lo;
    if (avail < max && !memo->to_end) {
        return false; //  the lane may go on past what it found
    }
    *count = avail < max ? avail : max;
    memcpy(seqs, memo->seqs + lo, *count * sizeof *seqs);
    return true;
}

//  tern_store_lane_scan, once per snapshot for the groups of a topic that
//  scan the same part of a lane (s_scan_memo), noting in TOPIC where the
//  lane ends when it found fewer than MAX seqs (s_lane_known_empty).
static tern_err_t s_lane_scan(r_route_t *self, r_topic_t *topic, int p, uint64_t from,
                              uint64_t *seqs, size_t max, size_t *count) {
    if (!s_scan_memo(self, topic, p, from, seqs, max, count)) {
        tern_err_t rc =
            tern_store_lane_scan(self->reader, topic->id, (uint8_t)p, from, seqs, max, count);
        if (rc != TERN_OK) {
            return rc;
        }
        r_scan_t *memo = &self->scans[p];
        memo->snapshot = self->snapshot;
        memo->topic_id = topic->id;
        memo->from = from;
        memo->count = *count;
        memo->to_end = *count < max;
        memcpy(memo->seqs, seqs, *count * sizeof *seqs);
    }
    if (*count == max) {
        return TERN_OK;
    }
    if (topic->lane_snapshot != self->snapshot) {
        topic->lane_snapshot = self->snapshot;
        for (int lane = 0; lane < S_LANES; lane++) {
            topic->lane_empty[lane] = UINT64_MAX;
        }
    }
    uint64_t end = *count ? seqs[*count - 1] + 1 : from;
    if (end < topic->lane_empty[p]) {
        topic->lane_empty[p] = end;
    }
    return TERN_OK;
}

void r_dispatch(r_route_t *self, r_group_t *group, uint64_t now) {
    if (group->state != G_READY || group->nconsumers == 0) {
        return;
    }
    if (r_ops_full(self)) {
        self->ops_blocked = true; //  dirty and rescan stay set: we come back
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
                r_pend_dead(self, pend, "max_deliver");
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
            if (s_lane_known_empty(self, group->topic, p, group->lane_next[p]) ||
                s_lane_scan(self, group->topic, p, group->lane_next[p], seqs, want, &count) !=
                    TERN_OK) {
                break;
            }
            while (count > 0 && seqs[count - 1] > group->topic->hw) {
                count--; //  not on every in-sync replica yet: its NOTICE marks us dirty
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
//  flags the other due ones for r_dispatch. Runs with or without consumers:
//  only the redelivery itself needs one.
void r_timers(r_route_t *self, r_group_t *group, uint64_t now) {
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
            r_pend_retry(self, pend, due, true); //  may free pend
        } else if (pend->inflight) {
            r_check_at(group, pend->due_ms); //  its holder may still ack it, expired or not
        } else if (pend->expire_ms && pend->expire_ms <= now) {
            s_pend_gone(self, pend, true);
        } else if (pend->due_ms <= now && s_pend_spent(self, pend)) {
            r_pend_dead(self, pend, "max_deliver");
        } else {
            if (pend->due_ms <= now) {
                group->rescan = true;
            } else {
                r_check_at(group, pend->due_ms);
            }
            if (pend->expire_ms) {
                r_check_at(group, pend->expire_ms);
            }
        }
    }
}

void r_flush_ops(r_route_t *self) {
    if (self->ops) {
        size_t count = self->ops->count;
        self->ops_hint = count;
        if (tern_work_send(self->to_storer, TERN_WORK_OPS, self->ops) != 0) {
            tern_ops_destroy(&self->ops);
        } else {
            atomic_fetch_add_explicit(&self->metrics->ops_queued, (int64_t)count,
                                      memory_order_relaxed);
        }
        self->ops = NULL;
    }
}
