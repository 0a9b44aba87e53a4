/*  tern_client_pub.c - publish: PUBLISH headers, the async window, completions, PUBACK.

    The application side (tern_publish_async, tern_publish, tern_flush)
    checks and encodes a PUBLISH in the calling thread and queues it to the
    I/O thread within the window of options.window publishes in flight; the
    I/O thread side keeps the window in send order (tern_client_io.c appends
    and sends, tern_client_session.c resends it in a new session) and
    completes its entries on PUBACK, ERROR, a first-contact refusal or
    shutdown.

    Cost per message (the client shares the machine's cores with brokers):
    a publish copies its payload once, into a zmq_msg_t that every send
    shares through zmq_msg_copy (so it stays for a resend); its header comes
    from a per-thread template when the topic and options repeat
    (protocol/tern_template.h); the cl_pub_t is itself the queued op and is
    recycled through a free list; one lock per publish.
*/
#include "tern_client_int.h"

#include <assert.h>
#include <stddef.h>

//  ---------------------------------------------------------------------------
//  PUBLISH headers

//  The PUBLISH templates of this thread, by topic, producer and options.
//  A key gets its template the second time it is seen, so that publishes
//  that never repeat cost no template making.
#define S_PUB_TPLS 4 /* per thread */

typedef struct {
    size_t topic_len;                 //  topic length
    char topic[TERN_TOPIC_MAX + 1];   //  topic ("" = free slot)
    char producer[TERN_NAME_MAX + 1]; //  producer id, "" = published without one
    int priority;                     //  priority
    uint32_t ttl_ms;                  //  ttl_ms
    int ttl_class;                    //  ttl_class (0 when ttl_ms is set)
    bool failed;                      //  making the template failed: encode instead
    tern_frame_template_t tpl;        //  len 0 = key seen once
} s_pub_tpl_t;

static _Thread_local s_pub_tpl_t tl_pub_tpl[S_PUB_TPLS];
static _Thread_local unsigned tl_pub_tpl_next; //  slot to replace next

//  The members a PUBLISH template leaves open, in the order of its values.
static const size_t s_pub_open[] = {offsetof(tern_frame_t, req_id),
                                    offsetof(tern_frame_t, producer_seq)};

static s_pub_tpl_t *s_pub_tpl_find(const tern_pub_options_t *msg, size_t topic_len,
                                   const char *producer) {
    for (int i = 0; i < S_PUB_TPLS; i++) {
        s_pub_tpl_t *t = &tl_pub_tpl[i];
        if (t->topic_len == topic_len && t->topic[0] && t->priority == msg->priority &&
            t->ttl_ms == msg->ttl_ms && t->ttl_class == (msg->ttl_ms ? 0 : msg->ttl_class) &&
            memcmp(t->topic, msg->topic, topic_len) == 0 && strcmp(t->producer, producer) == 0) {
            return t;
        }
    }
    return NULL;
}

//  A PUBLISH of MSG's key was encoded as FRAME: the first time, remember
//  the key in a slot (TPL is NULL); the second, make its template (once).
static void s_pub_tpl_note(s_pub_tpl_t *tpl, const tern_pub_options_t *msg, size_t topic_len,
                           const char *producer, const tern_frame_t *frame) {
    if (tpl) {
        if (!tpl->failed) {
            size_t open = frame->fields & TERN_F_PRODUCER ? 2 : 1;
            tpl->failed = tern_frame_template_make(&tpl->tpl, frame, s_pub_open, open) != TERN_OK;
        }
        return;
    }
    tpl = &tl_pub_tpl[tl_pub_tpl_next++ % S_PUB_TPLS];
    tpl->tpl.len = 0;
    tpl->failed = false;
    tpl->topic_len = topic_len;
    memcpy(tpl->topic, msg->topic, topic_len + 1);
    snprintf(tpl->producer, sizeof tpl->producer, "%s", producer);
    tpl->priority = msg->priority;
    tpl->ttl_ms = msg->ttl_ms;
    tpl->ttl_class = msg->ttl_ms ? 0 : msg->ttl_class;
}

//  Encodes MSG's headers into tl_meta as FRAME's metadata.
static tern_err_t s_publish_meta(const tern_pub_options_t *msg, tern_frame_t *frame) {
    tern_kv_t kv[TERN_META_MAX_ENTRIES];
    for (size_t i = 0; i < msg->header_count; i++) {
        if (!msg->headers[i].key || !msg->headers[i].value) {
            return TERN_EINVAL;
        }
        kv[i] = (tern_kv_t){msg->headers[i].key, strlen(msg->headers[i].key), msg->headers[i].value,
                            strlen(msg->headers[i].value)};
    }
    size_t meta_len;
    tern_err_t rc = tern_meta_encode(kv, msg->header_count, tl_meta, sizeof tl_meta, &meta_len);
    if (rc == TERN_OK) {
        frame->meta = tl_meta;
        frame->meta_size = meta_len;
        frame->meta_count = (uint32_t)msg->header_count;
        frame->fields |= TERN_F_META;
    }
    return rc;
}

//  Validates MSG (its topic TOPIC_LEN bytes) and fills FRAME with its
//  PUBLISH; metadata goes to tl_meta. The payload travels as its own frame,
//  checked against the broker's max_payload by the caller, so the codec
//  does not see it.
static tern_err_t s_publish_frame(tern_client_t *self, const tern_pub_options_t *msg,
                                  size_t topic_len, uint64_t producer_seq, uint64_t req_id,
                                  tern_frame_t *frame) {
    tern_frame_init(frame, TERN_CMD_PUBLISH);
    frame->req_id = req_id;
    if (!tern_topic_valid(msg->topic, topic_len)) {
        return TERN_ETOPIC;
    }
    memcpy(frame->topic, msg->topic, topic_len + 1);
    frame->fields |= TERN_F_TOPIC;
    if (self->options.idempotent || msg->producer_seq) {
        memcpy(frame->producer, self->producer, sizeof frame->producer);
        frame->producer_seq = producer_seq;
        frame->fields |= TERN_F_PRODUCER;
    }
    frame->priority = (uint8_t)msg->priority;
    frame->fields |= TERN_F_PRIORITY;
    if (msg->ttl_ms) {
        frame->ttl_ms = msg->ttl_ms;
        frame->fields |= TERN_F_TTL;
    } else if (msg->ttl_class) {
        frame->ttl_class = (uint8_t)msg->ttl_class;
    }
    if (msg->key && msg->key[0]) {
        if (strlen(msg->key) > TERN_KEY_MAX) {
            return TERN_ETOOBIG;
        }
        snprintf(frame->key, sizeof frame->key, "%s", msg->key);
        frame->fields |= TERN_F_KEY;
    }
    if (msg->trace_id && msg->trace_id[0]) {
        if (!tern_trace_valid(msg->trace_id, strlen(msg->trace_id))) {
            return TERN_ETRACE;
        }
        snprintf(frame->trace_id, sizeof frame->trace_id, "%s", msg->trace_id);
        frame->fields |= TERN_F_TRACE;
    }
    return msg->header_count ? s_publish_meta(msg, frame) : TERN_OK;
}

//  Encodes MSG's PUBLISH header into tl_header (*LEN bytes): from this
//  thread's template for its topic and options when there is one, else
//  with the codec (noting the key for a template).
static tern_err_t s_publish_header(tern_client_t *self, const tern_pub_options_t *msg,
                                   uint64_t producer_seq, uint64_t req_id, size_t *len) {
    size_t topic_len = strlen(msg->topic);
    bool with_producer = self->options.idempotent || msg->producer_seq;
    const char *producer = with_producer ? self->producer : "";
    bool simple = !(msg->key && msg->key[0]) && !(msg->trace_id && msg->trace_id[0]) &&
                  msg->header_count == 0 && topic_len <= TERN_TOPIC_MAX;
    s_pub_tpl_t *tpl = simple ? s_pub_tpl_find(msg, topic_len, producer) : NULL;
    tern_frame_t frame;
    if (tpl && tpl->tpl.len) {
        uint64_t values[2] = {req_id, producer_seq};
        *len = tern_frame_template_fill(&tpl->tpl, values, tl_header);
#ifndef NDEBUG
        //  Checked builds compare with the codec's own encoding: the key
        //  of the template must cover every field the header has.
        uint8_t check[TERN_TEMPLATE_OUT_MAX];
        size_t check_len;
        assert(s_publish_frame(self, msg, topic_len, producer_seq, req_id, &frame) == TERN_OK);
        assert(tern_frame_encode(&frame, check, sizeof check, &check_len) == TERN_OK);
        assert(check_len == *len && memcmp(check, tl_header, check_len) == 0);
#endif
        return TERN_OK;
    }
    tern_err_t rc = s_publish_frame(self, msg, topic_len, producer_seq, req_id, &frame);
    if (rc == TERN_OK) {
        rc = tern_frame_encode(&frame, tl_header, sizeof tl_header, len);
    }
    if (rc == TERN_OK && simple) {
        s_pub_tpl_note(tpl, msg, topic_len, producer, &frame);
    }
    return rc;
}

bool cl_pub_mark_resend(zmq_msg_t *hdr) {
    //  Rare (a partition's probe): decoded and encoded again by the codec,
    //  so the marked header is one the broker reads. The payload does not
    //  change; a PUBLISH header only needs one to decode.
    static const uint8_t none = 0;
    tern_frame_t frame;
    tern_limits_t limits = {.max_payload = (size_t)1 << 31};
    if (tern_frame_decode(&frame, zmq_msg_data(hdr), zmq_msg_size(hdr), &none, 0, &limits) !=
            TERN_OK ||
        frame.cmd != TERN_CMD_PUBLISH) {
        return false;
    }
    frame.resend = true;
    frame.fields |= TERN_F_RESEND;
    size_t cap = zmq_msg_size(hdr) + 16, len = 0; //  "rs": true is 4 bytes, a map header 3 more
    uint8_t *buf = tern_alloc(cap);
    bool ok = tern_frame_encode(&frame, buf, cap, &len) == TERN_OK;
    if (ok) {
        zmq_msg_close(hdr);
        s_msg_init(hdr, buf, len);
    }
    free(buf);
    return ok;
}

//  ---------------------------------------------------------------------------
//  Publishing

//  Checks MSG's arguments and its payload's size against the broker's
//  max_payload (the reason in tl_reason).
static tern_err_t s_pub_args(tern_client_t *self, const tern_pub_options_t *msg) {
    if (!self || !msg || !msg->topic || (!msg->payload && msg->size) || msg->priority < 0 ||
        msg->priority > TERN_PRIORITY_MAX || msg->ttl_class < 0 ||
        msg->ttl_class > TERN_CLASS_SYNC || msg->header_count > TERN_META_MAX_ENTRIES ||
        (msg->header_count && !msg->headers)) {
        return TERN_EINVAL;
    }
    uint32_t max_payload = atomic_load_explicit(&self->max_payload, memory_order_relaxed);
    if (msg->size > max_payload) {
        tern_reason_payload(tl_reason, sizeof tl_reason, msg->size, max_payload);
        return TERN_ETOOBIG;
    }
    return TERN_OK;
}

//  Waits for a free window slot up to BLOCK_MS (< 0: for good; 0: not at
//  all). Mutex held. TERN_EBUSY when none came, TERN_ECLOSED when closing.
static tern_err_t s_window_slot(tern_client_t *self, int block_ms) {
    struct timespec deadline;
    bool have_deadline = false;
    while (!self->closing && self->inflight >= self->options.window) {
        if (block_ms != 0 && !have_deadline) {
            deadline = cl_abs_deadline(block_ms < 0 ? 0 : block_ms);
            have_deadline = true;
        }
        if (block_ms == 0 || !cl_wait(&self->cond, &self->mutex, block_ms, &deadline)) {
            return self->closing ? TERN_ECLOSED : TERN_EBUSY;
        }
    }
    return self->closing ? TERN_ECLOSED : TERN_OK;
}

//  Whether the caller may send a publish itself (mutex held): a lone
//  publish, with the window empty and nothing queued, while the I/O thread
//  is parked in its poll, a session is up in single-node mode and no resend
//  is pending. The window must be empty: a stream of publishes is sent
//  better by the I/O thread, which takes each drain of the queue in one
//  turn along with the PUBACKs that came meanwhile (callgrind, async window
//  256: +4 % client instructions when callers sent whenever it was parked).
static bool s_may_send_direct(tern_client_t *self) {
    return self->io_parked && !self->ops_head && !self->win_head && self->state == S_READY &&
           self->io_mode == CL_MODE_SINGLE && self->dealer && !self->resend_needed;
}

//  Sends PUB from the calling thread (s_may_send_direct held, mutex held):
//  it joins the window and goes out on the dealer here, so a lone publish
//  does not wait for the I/O thread to wake, take the op and send it (one
//  thread wake-up and an eventfd write and read fewer per publish:
//  docs/performance.md, "Hops of a lone message"). The I/O thread still
//  receives the PUBACK. It is woken only when the send did not go out (it
//  resends) or when the send took the socket's signal of a frame that
//  arrived meanwhile (it must read it).
static void s_pub_direct(tern_client_t *self, cl_pub_t *pub) {
    s_win_append(self, pub);
    s_pub_send(self, pub);
    if (pub->sent_gen != self->gen || (s_dealer_events(self) & ZMQ_POLLIN)) {
        s_wake_io(self);
    }
}

//  Queues the publish whose header is in tl_header (HDR_LEN bytes) to the
//  I/O thread (in cluster mode, to TOPIC's leader), in a recycled cl_pub_t
//  when there is one, or sends it at once when the I/O thread is parked.
//  Takes the content of *PAYLOAD (left empty). Mutex held.
static void s_pub_queue(tern_client_t *self, const char *topic, uint64_t req_id,
                        uint64_t producer_seq, tern_pub_fn *fn, void *arg, size_t hdr_len,
                        zmq_msg_t *payload) {
    cl_pub_t *pub = self->pub_free;
    if (pub) {
        self->pub_free = pub->next;
        memset(pub, 0, sizeof *pub);
    } else {
        pub = tern_alloc(sizeof *pub);
    }
    pub->op.type = OP_PUB;
    pub->req_id = req_id;
    pub->producer_seq = producer_seq;
    pub->fn = fn;
    pub->arg = arg;
    s_msg_init(&pub->hdr, tl_header, hdr_len);
    zmq_msg_init(&pub->payload);
    zmq_msg_move(&pub->payload, payload);
    self->inflight++;
    if (self->cluster) {
        cl_cluster_publish(self, topic, pub); //  straight to its leader's session
    } else if (s_may_send_direct(self)) {
        s_pub_direct(self, pub);
    } else {
        s_push_op(self, &pub->op);
    }
}

tern_err_t tern_publish_async(tern_client_t *self, const tern_pub_options_t *msg, tern_pub_fn *fn,
                              void *arg) {
    tern_err_t rc = s_pub_args(self, msg);
    if (rc != TERN_OK) {
        return rc;
    }
    //  The payload is copied once, outside the lock, into the message that
    //  every send of this publish shares.
    zmq_msg_t payload;
    s_msg_init(&payload, msg->payload, msg->size);
    uint64_t req_id = atomic_fetch_add(&self->next_req, 1);
    int block_ms = self->options.publish_block_ms;
    if (block_ms != 0 && s_on_io_thread(self)) {
        block_ms = 0;
    }
    //  Reserve a window slot and a producer_seq, encode and queue, in call
    //  order, under one lock.
    pthread_mutex_lock(&self->mutex);
    rc = s_window_slot(self, block_ms);
    size_t hdr_len = 0;
    uint64_t producer_seq = 0;
    if (rc == TERN_OK) {
        producer_seq = msg->producer_seq ? msg->producer_seq : self->next_seq++;
        rc = s_publish_header(self, msg, producer_seq, req_id, &hdr_len);
        if (rc == TERN_ETOPIC) {
            tern_reason_topic(tl_reason, sizeof tl_reason, msg->topic, false);
        }
    }
    if (rc == TERN_OK && self->refusal) {
        //  Valid, but no broker to take it: give the producer_seq back.
        rc = self->refusal;
        s_set_reason(self->refusal_reason);
        self->next_seq -= msg->producer_seq ? 0 : 1;
    }
    if (rc == TERN_OK) {
        s_pub_queue(self, msg->topic, req_id, producer_seq, fn, arg, hdr_len, &payload);
    }
    pthread_mutex_unlock(&self->mutex);
    zmq_msg_close(&payload); //  empty when moved
    return rc;
}

//  Stores RESULT in WAITER (a tern_publish caller's), to be finished under
//  the mutex. Without the mutex: until done is set, the caller reads none
//  of these fields, and an abandoned waiter lives until it is finished.
static void s_sync_result(cl_waiter_t *waiter, const tern_pub_result_t *result) {
    waiter->pub = *result;
    waiter->pub.reason = ""; //  borrowed for the callback only: the text is copied
    waiter->code = result->code;
    s_copy_str(waiter->reason, sizeof waiter->reason, result->reason);
}

//  Finishes WAITER whose result is stored: the caller sees it done, or it is
//  freed if the caller gave up. Mutex held; the caller broadcasts the cond.
static void s_sync_finish(cl_waiter_t *waiter) {
    if (waiter->abandoned) {
        free(waiter->json);
        free(waiter);
    } else {
        waiter->done = true;
    }
}

//  A tern_publish's completion when it does not come through s_pub_complete
//  (cluster mode: a node session's completion is routed back to the root).
static void s_sync_done(const tern_pub_result_t *result, void *arg) {
    cl_waiter_t *waiter = arg;
    tern_client_t *self = waiter->client;
    pthread_mutex_lock(&self->mutex);
    waiter->pub = *result;
    waiter->pub.reason = ""; //  borrowed for the callback only: the text is copied below
    cl_waiter_finish(self, waiter, result->code, result->reason);
    pthread_mutex_unlock(&self->mutex);
}

tern_err_t tern_publish(tern_client_t *self, const tern_pub_options_t *msg, int timeout_ms,
                        tern_pub_result_t *result) {
    tern_err_t rc = s_may_wait(self);
    if (rc != TERN_OK) {
        return rc;
    }
    timeout_ms = cl_timeout(self, timeout_ms);
    cl_waiter_t *waiter = tern_alloc(sizeof *waiter);
    waiter->client = self;
    rc = tern_publish_async(self, msg, s_sync_done, waiter);
    if (rc != TERN_OK) {
        free(waiter);
        return rc;
    }
    struct timespec deadline = cl_abs_deadline(timeout_ms < 0 ? 0 : timeout_ms);
    pthread_mutex_lock(&self->mutex);
    if (cl_wait_done(self, waiter, timeout_ms, &deadline)) {
        rc = waiter->code;
        s_set_reason(waiter->reason);
        if (result) {
            *result = waiter->pub;
            result->reason = tern_last_reason();
        }
        free(waiter);
    } else {
        waiter->abandoned = true;
        rc = TERN_ETIMEOUT;
    }
    pthread_mutex_unlock(&self->mutex);
    return rc;
}

tern_err_t tern_flush(tern_client_t *self, int timeout_ms) {
    tern_err_t rc = s_may_wait(self);
    if (rc != TERN_OK) {
        return rc;
    }
    struct timespec deadline = cl_abs_deadline(timeout_ms < 0 ? 0 : timeout_ms);
    pthread_mutex_lock(&self->mutex);
    while (self->inflight > 0) {
        if (self->stopped) {
            rc = TERN_ECLOSED;
            break;
        }
        if (!cl_wait(&self->cond, &self->mutex, timeout_ms, &deadline)) {
            rc = TERN_ETIMEOUT;
            break;
        }
    }
    pthread_mutex_unlock(&self->mutex);
    return rc;
}

//  ---------------------------------------------------------------------------
//  The window (I/O thread)

static void s_win_unlink(tern_client_t *self, cl_pub_t *pub) {
    if (pub->prev) {
        pub->prev->next = pub->next;
    } else {
        self->win_head = pub->next;
    }
    if (pub->next) {
        pub->next->prev = pub->prev;
    } else {
        self->win_tail = pub->prev;
    }
}

//  PUBACKs come in send order, so the head matches at once in the usual case.
static cl_pub_t *s_win_find(tern_client_t *self, uint64_t req_id) {
    for (cl_pub_t *pub = self->win_head; pub; pub = pub->next) {
        if (pub->req_id == req_id) {
            return pub;
        }
    }
    return NULL;
}

//  Completes PUB: runs its callback, frees its messages and keeps it on
//  pub_done for reuse. Caller updates inflight with s_inflight_done.
static void s_pub_complete(tern_client_t *self, cl_pub_t *pub, const tern_puback_t *ack,
                           tern_err_t code, const char *reason) {
    s_win_unlink(self, pub);
    tern_pub_result_t result = {
        .code = code, .producer_seq = pub->producer_seq, .reason = reason ? reason : ""};
    if (ack) {
        result.msg_id = ack->msg_id;
        result.seq = ack->seq;
        result.duplicate = ack->duplicate;
    }
    if (pub->fn == s_sync_done) {
        s_sync_result(pub->arg, &result); //  its caller is woken by s_inflight_done
    } else if (pub->fn) {
        pub->fn(&result, pub->arg);
    }
    zmq_msg_close(&pub->hdr);
    zmq_msg_close(&pub->payload);
    pub->next = self->pub_done;
    self->pub_done = pub;
}

//  COUNT publishes completed: frees their window slots and hands the structs
//  of pub_done back to the publishers, under one lock.
static void s_inflight_done(tern_client_t *self, size_t count) {
    if (count == 0) {
        return;
    }
    cl_pub_t *done = self->pub_done;
    self->pub_done = NULL;
    cl_pub_t *last = done;
    while (last && last->next) {
        last = last->next;
    }
    pthread_mutex_lock(&self->mutex);
    for (cl_pub_t *pub = done; pub; pub = pub->next) {
        if (pub->fn == s_sync_done) {
            s_sync_finish(pub->arg);
        }
    }
    if (last) {
        last->next = self->pub_free;
        self->pub_free = done;
    }
    self->inflight -= count;
    pthread_mutex_unlock(&self->mutex);
    //  After the unlock: a waiter woken under the lock would sleep again at
    //  once on the mutex (two wake-ups of a sync caller instead of one).
    pthread_cond_broadcast(&self->cond);
}

void cl_handle_puback(tern_client_t *self, const tern_frame_t *frame) {
    size_t done = 0;
    for (uint32_t i = 0; i < frame->ack_count; i++) {
        tern_puback_t ack;
        if (tern_frame_puback(frame, i, &ack) != TERN_OK) {
            break;
        }
        cl_pub_t *pub = s_win_find(self, ack.req_id);
        if (pub) {
            s_pub_complete(self, pub, &ack, (tern_err_t)ack.code, NULL);
            done++;
        }
    }
    s_inflight_done(self, done);
}

bool cl_handle_pub_error(tern_client_t *self, const tern_frame_t *frame) {
    cl_pub_t *pub = s_win_find(self, frame->req_id);
    if (!pub) {
        return false;
    }
    s_pub_complete(self, pub, NULL, (tern_err_t)frame->code, frame->reason);
    s_inflight_done(self, 1);
    return true;
}

void cl_win_fail(tern_client_t *self, tern_err_t code, const char *reason) {
    size_t count = 0;
    while (self->win_head) {
        s_pub_complete(self, self->win_head, NULL, code, reason);
        count++;
    }
    s_inflight_done(self, count);
}
