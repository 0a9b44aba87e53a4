/*  tern_client_sub.c - subscriptions: SUBSCRIBE and its answer, the pull queue, credit,
   unsubscribe.

    A subscription belongs to the client for the client's whole life (a
    message borrows it) and is shared between the application threads and
    the I/O thread under the client mutex. The I/O thread sends its
    SUBSCRIBE in every new session, resuming an ephemeral one after the last
    seq it saw, and records the broker's sub_id from the OK; deliveries are
    turned into messages in tern_client_msg.c and either handed to the
    callback or queued for tern_subscription_next here.
*/
#include "tern_client_int.h"

//  ---------------------------------------------------------------------------
//  Subscribing

//  Checks PATTERN and GROUP (the reason in tl_reason).
static tern_err_t s_sub_names_ok(const char *pattern, const char *group) {
    if (!tern_pattern_valid(pattern, strlen(pattern))) {
        tern_reason_topic(tl_reason, sizeof tl_reason, pattern, true);
        return TERN_ETOPIC;
    }
    if (group[0] && !tern_name_valid(group, strlen(group))) {
        tern_reason_name(tl_reason, sizeof tl_reason, "group", group);
        return TERN_ENAME;
    }
    return TERN_OK;
}

//  A new subscription of SELF (not yet linked), with a waiter for its OK.
static tern_subscription_t *s_sub_new(tern_client_t *self, const char *pattern, const char *group,
                                      const tern_sub_options_t *options, tern_msg_fn *fn,
                                      void *arg) {
    tern_subscription_t *sub = tern_alloc(sizeof *sub);
    sub->client = self;
    snprintf(sub->pattern, sizeof sub->pattern, "%s", pattern);
    sub->wildcard = strpbrk(pattern, "*>") != NULL;
    snprintf(sub->group, sizeof sub->group, "%s", group);
    sub->options = *options;
    sub->options.group = NULL;
    sub->fn = fn;
    sub->arg = arg;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&sub->cond, &attr);
    pthread_condattr_destroy(&attr);
    sub->waiter = tern_alloc(sizeof *sub->waiter);
    return sub;
}

//  Links SUB to SELF's list and queues its SUBSCRIBE. Mutex held.
static void s_sub_link(tern_client_t *self, tern_subscription_t *sub) {
    sub->next = self->subs;
    self->subs = sub;
    cl_sub_op_t *op = tern_alloc(sizeof *op);
    op->op.type = OP_SUB;
    op->sub = sub;
    s_push_op(self, &op->op);
}

tern_subscription_t *cl_sub_attach(tern_client_t *client, const tern_subscription_t *like,
                                   tern_msg_fn *fn, void *arg) {
    tern_sub_options_t options = like->options;
    options.group = like->group;
    tern_subscription_t *sub = s_sub_new(client, like->pattern, like->group, &options, fn, arg);
    free(sub->waiter);
    sub->waiter = NULL;
    sub->last_seq = like->last_seq; //  an ephemeral one resumes after it
    pthread_mutex_lock(&client->mutex);
    s_sub_link(client, sub);
    pthread_mutex_unlock(&client->mutex);
    return sub;
}

void cl_sub_free(tern_subscription_t *sub) {
    while (sub->head) {
        tern_message_t *msg = sub->head;
        sub->head = msg->next;
        tern_message_destroy(&msg);
    }
    free(sub->waiter);
    pthread_cond_destroy(&sub->cond);
    free(sub);
}

//  Links SUB, queues its SUBSCRIBE and waits for the broker's answer.
//  Mutex held.
static tern_err_t s_sub_start(tern_client_t *self, tern_subscription_t *sub) {
    s_sub_link(self, sub);
    int timeout_ms = (int)self->options.timeout_ms;
    struct timespec deadline = cl_abs_deadline(timeout_ms);
    cl_waiter_t *waiter = sub->waiter;
    tern_err_t rc;
    if (cl_wait_done(self, waiter, timeout_ms, &deadline)) {
        rc = waiter->code;
        s_set_reason(waiter->reason);
    } else {
        //  Not done, so the I/O thread still reaches it only through
        //  sub->waiter, under the mutex we hold: unhook and free it.
        rc = cl_timeout_code(self);
    }
    sub->waiter = NULL;
    free(waiter);
    if (rc != TERN_OK) {
        sub->closed = true; //  stays in the list; freed with the client
    }
    return rc;
}

tern_err_t tern_subscribe(tern_client_t *self, const char *pattern,
                          const tern_sub_options_t *options, tern_msg_fn *fn, void *arg,
                          tern_subscription_t **sub_p) {
    tern_sub_options_t defaults;
    if (!options) {
        tern_sub_options_init(&defaults);
        options = &defaults;
    }
    if (!self || !pattern || !sub_p || options->start < TERN_FROM_FIRST ||
        options->start > TERN_FROM_TIME) {
        return TERN_EINVAL;
    }
    if (s_on_io_thread(self)) {
        return TERN_ESTATE;
    }
    s_set_reason(NULL);
    const char *group = options->group ? options->group : "";
    tern_err_t rc = s_sub_names_ok(pattern, group);
    if (rc != TERN_OK) {
        return rc;
    }
    tern_subscription_t *sub = s_sub_new(self, pattern, group, options, fn, arg);
    pthread_mutex_lock(&self->mutex);
    rc = cl_unavailable(self);
    if (rc != TERN_OK) {
        pthread_mutex_unlock(&self->mutex);
        cl_sub_free(sub);
        return rc;
    }
    rc = cl_mode_wait(self, (int)self->options.timeout_ms);
    bool linked = rc == TERN_OK; //  s_sub_start and cl_cluster_subscribe link it
    if (rc == TERN_OK) {
        rc = self->cluster ? cl_cluster_subscribe(self, sub) : s_sub_start(self, sub);
    }
    if (rc == TERN_OK) {
        *sub_p = sub;
    }
    pthread_mutex_unlock(&self->mutex);
    if (!linked) {
        cl_sub_free(sub);
    }
    return rc;
}

tern_err_t tern_subscription_next(tern_subscription_t *sub, int timeout_ms,
                                  tern_message_t **msg_p) {
    if (!sub || !msg_p || sub->fn) {
        return TERN_EINVAL;
    }
    tern_client_t *self = sub->client;
    if (timeout_ms != 0 && s_on_io_thread(self)) {
        return TERN_ESTATE;
    }
    struct timespec deadline = cl_abs_deadline(timeout_ms < 0 ? 0 : timeout_ms);
    tern_err_t rc = TERN_OK;
    pthread_mutex_lock(&self->mutex);
    while (!sub->head) {
        if (sub->closed || self->stopped) {
            rc = TERN_ECLOSED;
            break;
        }
        if (timeout_ms == 0 || !cl_wait(&sub->cond, &self->mutex, timeout_ms, &deadline)) {
            rc = TERN_ETIMEOUT;
            break;
        }
    }
    if (sub->head) {
        tern_message_t *msg = sub->head;
        sub->head = msg->next;
        if (!sub->head) {
            sub->tail = NULL;
        }
        sub->queued--;
        msg->next = NULL;
        *msg_p = msg;
        rc = TERN_OK;
    }
    pthread_mutex_unlock(&self->mutex);
    return rc;
}

//  Encodes and queues a frame addressed to SUB's current session GEN (see
//  cl_queue_frame). Mutex held.
static tern_err_t s_queue_sub_frame(tern_client_t *self, tern_frame_t *frame, uint64_t gen) {
    size_t len;
    tern_err_t rc = tern_frame_encode(frame, tl_header, sizeof tl_header, &len);
    if (rc == TERN_OK) {
        cl_queue_frame(self, len, gen);
    }
    return rc;
}

tern_err_t tern_subscription_credit(tern_subscription_t *sub, uint32_t n) {
    if (!sub || n == 0) {
        return TERN_EINVAL;
    }
    tern_client_t *self = sub->client;
    tern_frame_t frame;
    tern_frame_init(&frame, TERN_CMD_CREDIT);
    frame.req_id = atomic_fetch_add(&self->next_req, 1);
    frame.credit = n;
    pthread_mutex_lock(&self->mutex);
    tern_err_t rc = TERN_OK;
    if (sub->closed || self->closing) {
        rc = TERN_ECLOSED;
    } else if (sub->routed) {
        rc = cl_cluster_credit(sub, n);
    } else if (sub->gen == 0 || sub->gen != self->gen) {
        rc = TERN_ESTATE;
    } else {
        frame.sub_id = sub->sub_id;
        rc = s_queue_sub_frame(self, &frame, sub->gen);
    }
    pthread_mutex_unlock(&self->mutex);
    return rc;
}

uint64_t tern_subscription_id(tern_subscription_t *sub) {
    pthread_mutex_lock(&sub->client->mutex);
    uint64_t id = sub->routed                    ? cl_cluster_sub_id(sub)
                  : sub->gen == sub->client->gen ? sub->sub_id
                                                 : 0;
    pthread_mutex_unlock(&sub->client->mutex);
    return id;
}

tern_err_t tern_unsubscribe(tern_subscription_t **sub_p) {
    if (!sub_p || !*sub_p) {
        return TERN_EINVAL;
    }
    tern_subscription_t *sub = *sub_p;
    *sub_p = NULL;
    tern_client_t *self = sub->client;
    pthread_mutex_lock(&self->mutex);
    if (!sub->closed && sub->gen && sub->gen == self->gen && !self->closing) {
        tern_frame_t frame;
        tern_frame_init(&frame, TERN_CMD_UNSUBSCRIBE);
        frame.req_id = atomic_fetch_add(&self->next_req, 1);
        frame.sub_id = sub->sub_id;
        s_queue_sub_frame(self, &frame, sub->gen);
    }
    if (sub->routed) {
        cl_cluster_unsubscribe(sub);
    }
    sub->closed = true;
    while (sub->head) {
        tern_message_t *msg = sub->head;
        sub->head = msg->next;
        free(msg); //  one block
    }
    sub->tail = NULL;
    sub->queued = 0;
    pthread_cond_broadcast(&sub->cond);
    pthread_mutex_unlock(&self->mutex);
    return TERN_OK;
}

//  ---------------------------------------------------------------------------
//  I/O thread

void cl_send_subscribe(tern_client_t *self, tern_subscription_t *sub) {
    if (self->state != S_READY || sub->closed || sub->routed || sub->sent_gen == self->gen) {
        return;
    }
    tern_frame_t frame;
    tern_frame_init(&frame, TERN_CMD_SUBSCRIBE);
    frame.req_id = atomic_fetch_add(&self->next_req, 1);
    snprintf(frame.topic, sizeof frame.topic, "%s", sub->pattern);
    frame.fields |= TERN_F_TOPIC | TERN_F_START;
    if (sub->group[0]) {
        snprintf(frame.group, sizeof frame.group, "%s", sub->group);
        frame.fields |= TERN_F_GROUP;
    }
    frame.start = (uint8_t)sub->options.start;
    frame.start_value = sub->options.start_value;
    if (!sub->group[0] && sub->last_seq) {
        //  An ephemeral subscription has no state at the broker: resume after
        //  what it has seen instead of replaying from its original start
        //  (exact for one topic on the same node; a pattern resumes at new).
        frame.start = sub->wildcard ? TERN_START_NEW : TERN_START_SEQ;
        frame.start_value = sub->wildcard ? 0 : sub->last_seq + 1;
    }
    frame.credit = sub->options.credit;
    size_t len;
    if (tern_frame_encode(&frame, tl_header, sizeof tl_header, &len) != TERN_OK) {
        return;
    }
    if (s_send(self, tl_header, len, NULL, 0, false)) {
        sub->req_id = frame.req_id;
        sub->sent_gen = self->gen;
    } else {
        self->resend_needed = true;
    }
}

static tern_subscription_t *s_sub_by_req(tern_client_t *self, uint64_t req_id) {
    for (tern_subscription_t *sub = self->subs; sub; sub = sub->next) {
        if (sub->req_id == req_id && sub->sent_gen == self->gen) {
            return sub;
        }
    }
    return NULL;
}

void cl_handle_ok(tern_client_t *self, const tern_frame_t *frame) {
    pthread_mutex_lock(&self->mutex);
    tern_subscription_t *sub = s_sub_by_req(self, frame->req_id);
    if (sub && sub->closed) {
        //  Given up on (timeout) or unsubscribed meanwhile: undo.
        tern_frame_t unsub;
        tern_frame_init(&unsub, TERN_CMD_UNSUBSCRIBE);
        unsub.req_id = atomic_fetch_add(&self->next_req, 1);
        unsub.sub_id = frame->sub_id;
        size_t len;
        if (tern_frame_encode(&unsub, tl_header, sizeof tl_header, &len) == TERN_OK) {
            s_send(self, tl_header, len, NULL, 0, false);
        }
    } else if (sub) {
        sub->sub_id = frame->sub_id;
        sub->gen = self->gen;
        if (sub->waiter) {
            cl_waiter_finish(self, sub->waiter, TERN_OK, NULL);
            sub->waiter = NULL;
        }
    }
    pthread_mutex_unlock(&self->mutex);
}

void cl_handle_sub_error(tern_client_t *self, const tern_frame_t *frame) {
    pthread_mutex_lock(&self->mutex);
    tern_subscription_t *sub = s_sub_by_req(self, frame->req_id);
    if (sub) {
        sub->closed = true;
        sub->error = (tern_err_t)frame->code;
        pthread_cond_broadcast(&sub->cond);
        if (sub->waiter) {
            cl_waiter_finish(self, sub->waiter, (tern_err_t)frame->code, frame->reason);
            sub->waiter = NULL;
        }
    }
    pthread_mutex_unlock(&self->mutex);
}

void cl_subs_fail(tern_client_t *self, tern_err_t code, const char *reason, bool close) {
    for (tern_subscription_t *sub = self->subs; sub; sub = sub->next) {
        if (close) {
            sub->closed = true;
        }
        if (sub->waiter) {
            cl_waiter_finish(self, sub->waiter, code, reason);
            sub->waiter = NULL;
        }
        if (close) {
            pthread_cond_broadcast(&sub->cond);
        }
    }
}
