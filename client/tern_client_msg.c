/*  tern_client_msg.c - deliveries: DELIVER to a tern_message_t, its accessors, ack/nack/term.

    The I/O thread turns each DELIVER into a message (one allocation:
    struct, strings, headers and payload) for its subscription
    (tern_client_sub.c): a callback gets it at once on the I/O thread, a
    pull subscription queues it. Settling a message (ack, nack, term) may
    happen on any thread: it checks the message's session is still the
    current one and queues the frame to the I/O thread; an ACK header is
    filled into a per-thread template (protocol/tern_template.h). An ack
    issued from a callback is kept in cb_out and sent by the I/O thread at
    the end of its loop turn, with no op and no wake-up; the same queue
    carries CREDIT and UNSUBSCRIBE.
*/
#include "tern_client_int.h"

#include <stddef.h>

//  ---------------------------------------------------------------------------
//  Deliveries (I/O thread)

//  Copies the NUL-terminated S (LEN bytes) to *AT and advances it.
static const char *s_put_str(char **at, const char *s, size_t len) {
    char *dst = *at;
    memcpy(dst, s, len + 1);
    *at = dst + len + 1;
    return dst;
}

//  The length of the NUL-terminated S in its array of CAP bytes. The bound
//  (always true of a decoded frame) lets the compiler copy the string
//  inline instead of calling memcpy.
static inline size_t s_len(const char *s, size_t cap) {
    size_t len = strlen(s);
    return len < cap ? len : cap - 1;
}

static tern_message_t *s_message_new(const tern_frame_t *frame) {
    //  One block: the struct, the header pointer array, the payload, then
    //  the strings and the header texts, each NUL-terminated.
    size_t topic_len = s_len(frame->topic, sizeof frame->topic);
    size_t producer_len = s_len(frame->producer, sizeof frame->producer);
    size_t key_len = s_len(frame->key, sizeof frame->key);
    size_t trace_len = s_len(frame->trace_id, sizeof frame->trace_id);
    size_t origin_len = s_len(frame->origin, sizeof frame->origin);
    size_t meta_bytes = 0, count = 0, pos = 0;
    tern_kv_t kv;
    if (frame->meta && frame->meta_count) {
        while (tern_meta_next(frame->meta, frame->meta_size, &pos, &kv)) {
            meta_bytes += kv.key_len + kv.value_len + 2;
            count++;
        }
    }
    size_t bytes = sizeof(tern_message_t) + 2 * count * sizeof(char *) + frame->payload_size + 1 +
                   topic_len + producer_len + key_len + trace_len + origin_len + 5 + meta_bytes;
    tern_message_t *msg = tern_alloc_raw(bytes);
    memset(msg, 0, sizeof *msg);
    char **block = (char **)(msg + 1);
    char *text = (char *)(block + 2 * count);
    msg->data = (uint8_t *)text;
    if (frame->payload_size) {
        memcpy(text, frame->payload, frame->payload_size);
    }
    text[frame->payload_size] = '\0';
    msg->size = frame->payload_size;
    text += frame->payload_size + 1;
    msg->topic = s_put_str(&text, frame->topic, topic_len);
    msg->producer = s_put_str(&text, frame->producer, producer_len);
    msg->key = s_put_str(&text, frame->key, key_len);
    msg->trace_id = s_put_str(&text, frame->trace_id, trace_len);
    msg->origin = s_put_str(&text, frame->origin, origin_len);
    msg->sub_id = frame->sub_id;
    msg->tag = frame->tag;
    msg->msg_id = frame->msg_id;
    msg->seq = frame->seq;
    msg->producer_seq = frame->producer_seq;
    msg->timestamp_ns = frame->timestamp_ns;
    msg->expire_at_ns = frame->expire_at_ns;
    msg->delivery_count = frame->delivery_count;
    msg->priority = frame->priority;
    if (count) {
        pos = 0;
        size_t i = 0;
        for (; i < count && tern_meta_next(frame->meta, frame->meta_size, &pos, &kv); i++) {
            block[2 * i] = text;
            memcpy(text, kv.key, kv.key_len);
            text[kv.key_len] = '\0';
            text += kv.key_len + 1;
            block[2 * i + 1] = text;
            memcpy(text, kv.value, kv.value_len);
            text[kv.value_len] = '\0';
            text += kv.value_len + 1;
        }
        msg->headers = block;
        msg->header_count = i;
    }
    return msg;
}

void cl_handle_deliver(tern_client_t *self, const tern_frame_t *frame) {
    pthread_mutex_lock(&self->mutex);
    tern_subscription_t *sub = self->subs;
    while (sub && !(sub->gen == self->gen && sub->sub_id == frame->sub_id)) {
        sub = sub->next;
    }
    if (!sub || sub->closed) {
        //  Unsubscribed meanwhile: the UNSUBSCRIBE gives it back to the group.
        pthread_mutex_unlock(&self->mutex);
        return;
    }
    tern_message_t *msg = s_message_new(frame);
    msg->sub = sub;
    msg->gen = self->gen;
    cl_sub_hand(self, sub, msg);
}

void cl_sub_hand(tern_client_t *self, tern_subscription_t *sub, tern_message_t *msg) {
    if (msg->seq > sub->last_seq) {
        sub->last_seq = msg->seq; //  (in a cluster, every replica has the same seqs)
    }
    if (sub->fn) {
        pthread_mutex_unlock(&self->mutex);
        sub->fn(msg, sub->arg);
        return;
    }
    msg->next = NULL;
    if (sub->tail) {
        sub->tail->next = msg;
    } else {
        sub->head = msg;
    }
    sub->tail = msg;
    sub->queued++;
    pthread_cond_signal(&sub->cond);
    pthread_mutex_unlock(&self->mutex);
}

//  ---------------------------------------------------------------------------
//  Queueing frames to the I/O thread

void cl_queue_frame(tern_client_t *self, size_t len, uint64_t gen) {
    if (s_on_io_thread(self)) {
        //  A callback: no op, no wake-up. The frame waits in cb_out until
        //  the I/O loop's turn ends, so that a drain's acks go out in one
        //  burst (one send after each receive wakes libzmq's I/O thread far
        //  more often). Frames queued by other threads may go out after it;
        //  none depends on an ack.
        size_t need = self->cb_out_len + sizeof gen + sizeof len + len;
        if (need > self->cb_out_cap) {
            size_t cap = self->cb_out_cap ? self->cb_out_cap : 4096;
            while (cap < need) {
                cap *= 2;
            }
            uint8_t *grown = tern_realloc(self->cb_out, cap);
            self->cb_out = grown;
            self->cb_out_cap = cap;
        }
        uint8_t *at = self->cb_out + self->cb_out_len;
        memcpy(at, &gen, sizeof gen);
        memcpy(at + sizeof gen, &len, sizeof len);
        memcpy(at + sizeof gen + sizeof len, tl_header, len);
        self->cb_out_len = need;
        return;
    }
    cl_frame_op_t *op = tern_alloc_raw(sizeof *op + len);
    op->op.type = OP_FRAME;
    op->gen = gen;
    op->hdr_len = len;
    memcpy(op->hdr, tl_header, len);
    s_push_op(self, &op->op);
}

void cl_flush_cb_out(tern_client_t *self) {
    for (size_t pos = 0; pos < self->cb_out_len;) {
        uint64_t gen;
        size_t len;
        memcpy(&gen, self->cb_out + pos, sizeof gen);
        memcpy(&len, self->cb_out + pos + sizeof gen, sizeof len);
        pos += sizeof gen + sizeof len;
        if (self->state == S_READY && gen == self->gen) {
            s_send(self, self->cb_out + pos, len, NULL, 0, false);
        }
        pos += len;
    }
    self->cb_out_len = 0;
}

//  ---------------------------------------------------------------------------
//  Messages

uint64_t tern_message_id(const tern_message_t *msg) {
    return msg->msg_id;
}
uint64_t tern_message_seq(const tern_message_t *msg) {
    return msg->seq;
}
const char *tern_message_topic(const tern_message_t *msg) {
    return msg->topic;
}
int tern_message_priority(const tern_message_t *msg) {
    return msg->priority;
}
uint32_t tern_message_delivery_count(const tern_message_t *msg) {
    return msg->delivery_count;
}
const char *tern_message_trace_id(const tern_message_t *msg) {
    return msg->trace_id;
}
const char *tern_message_producer(const tern_message_t *msg) {
    return msg->producer;
}
uint64_t tern_message_producer_seq(const tern_message_t *msg) {
    return msg->producer_seq;
}
uint64_t tern_message_timestamp_ns(const tern_message_t *msg) {
    return msg->timestamp_ns;
}
uint64_t tern_message_expire_at_ns(const tern_message_t *msg) {
    return msg->expire_at_ns;
}
const char *tern_message_key(const tern_message_t *msg) {
    return msg->key;
}
const char *tern_message_origin(const tern_message_t *msg) {
    return msg->origin;
}
const void *tern_message_data(const tern_message_t *msg) {
    return msg->data;
}
size_t tern_message_size(const tern_message_t *msg) {
    return msg->size;
}
uint64_t tern_message_tag(const tern_message_t *msg) {
    return msg->tag;
}
size_t tern_message_header_count(const tern_message_t *msg) {
    return msg->header_count;
}

tern_err_t tern_message_header(const tern_message_t *msg, size_t index, const char **key,
                               const char **value) {
    if (index >= msg->header_count) {
        return TERN_ENOTFOUND;
    }
    if (key) {
        *key = msg->headers[2 * index];
    }
    if (value) {
        *value = msg->headers[2 * index + 1];
    }
    return TERN_OK;
}

const char *tern_message_header_get(const tern_message_t *msg, const char *key) {
    for (size_t i = 0; key && i < msg->header_count; i++) {
        if (strcmp(msg->headers[2 * i], key) == 0) {
            return msg->headers[2 * i + 1];
        }
    }
    return NULL;
}

void tern_message_destroy(tern_message_t **msg_p) {
    if (!msg_p || !*msg_p) {
        return;
    }
    tern_message_t *msg = *msg_p;
    *msg_p = NULL;
    free(msg); //  one block: strings, headers and payload included
}

//  ---------------------------------------------------------------------------
//  Settling

//  This thread's ACK templates (plain, cumulative): req_id, sub_id and tag
//  open, in the order of s_settle's values.
typedef struct {
    bool failed;               //  making it failed: encode instead
    tern_frame_template_t tpl; //  len 0 = not made
} s_ack_tpl_t;

static _Thread_local s_ack_tpl_t tl_ack_tpl[2];

static const size_t s_ack_open[] = {offsetof(tern_frame_t, req_id), offsetof(tern_frame_t, sub_id),
                                    offsetof(tern_frame_t, tag)};

static void s_ack_frame(tern_frame_t *frame, bool cumulative) {
    tern_frame_init(frame, TERN_CMD_ACK);
    if (cumulative) {
        frame->cumulative = true;
        frame->fields |= TERN_F_CUMULATIVE;
    }
}

//  Settles MSG with FRAME (ACK, NACK or TERM), or with the ACK template TPL
//  when FRAME is NULL: checks that its session and subscription are still
//  current, then queues the frame.
static tern_err_t s_settle(tern_message_t *msg, tern_frame_t *frame,
                           const tern_frame_template_t *tpl) {
    if (!msg || !msg->sub) {
        return TERN_EINVAL;
    }
    tern_client_t *self = msg->sub->client;
    uint64_t values[3] = {atomic_fetch_add(&self->next_req, 1), msg->sub_id, msg->tag};
    //  Encoded before the lock: nothing in it depends on the session.
    size_t len = 0;
    tern_err_t rc = TERN_OK;
    if (frame) {
        frame->req_id = values[0];
        frame->sub_id = values[1];
        frame->tag = values[2];
        rc = tern_frame_encode(frame, tl_header, sizeof tl_header, &len);
    } else {
        len = tern_frame_template_fill(tpl, values, tl_header);
    }
    pthread_mutex_lock(&self->mutex);
    if (msg->settled) {
        rc = TERN_ESTATE;
    } else if (msg->sub->closed || self->closing || msg->gen != self->gen ||
               msg->sub->gen != msg->gen) {
        rc = TERN_ECLOSED;
    } else if (rc == TERN_OK) {
        cl_queue_frame(self, len, msg->gen);
        msg->settled = true;
    }
    pthread_mutex_unlock(&self->mutex);
    return rc;
}

tern_err_t tern_message_ack(tern_message_t *msg, bool cumulative) {
    s_ack_tpl_t *t = &tl_ack_tpl[cumulative ? 1 : 0];
    if (t->tpl.len) {
        return s_settle(msg, NULL, &t->tpl);
    }
    tern_frame_t frame;
    s_ack_frame(&frame, cumulative);
    if (!t->failed) {
        //  This thread's first ACK of its kind: make the template (once).
        t->failed = tern_frame_template_make(&t->tpl, &frame, s_ack_open, 3) != TERN_OK;
    }
    return s_settle(msg, &frame, NULL);
}

tern_err_t tern_message_nack(tern_message_t *msg, int64_t delay_ms) {
    tern_frame_t frame;
    tern_frame_init(&frame, TERN_CMD_NACK);
    if (delay_ms >= 0) {
        frame.delay_ms = delay_ms > UINT32_MAX ? UINT32_MAX : (uint32_t)delay_ms;
        frame.fields |= TERN_F_DELAY;
    }
    return s_settle(msg, &frame, NULL);
}

tern_err_t tern_message_term(tern_message_t *msg, const char *reason) {
    tern_frame_t frame;
    tern_frame_init(&frame, TERN_CMD_TERM);
    if (reason && reason[0]) {
        if (strlen(reason) > TERN_REASON_MAX) {
            return TERN_ETOOBIG;
        }
        snprintf(frame.reason, sizeof frame.reason, "%s", reason);
        frame.fields |= TERN_F_REASON;
    }
    return s_settle(msg, &frame, NULL);
}
