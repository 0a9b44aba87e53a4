/*  tern_client_io.c - the I/O thread: its poll loop, the ops queue, frame dispatch, shutdown.

    One thread per client owns the DEALER, its monitor and everything marked
    "I/O thread only" in tern_client_int.h. Each turn of its loop polls the
    eventfd (ops from application threads), the socket and the monitor, runs
    what is ready, sends what callbacks queued, then the session's timers
    (tern_client_session.c). A received frame is decoded here and handed to
    the file that owns its concern: WELCOME and session errors to the
    session, PUBACK to publish, OK to subscriptions, DELIVER to messages,
    REPLY to admin. Clock reads are one per loop turn, not one per frame.
*/
#include "tern_client_int.h"

#include <errno.h>

//  Records NOW as the time of the last send if anything went out since the
//  last call: one clock read per turn of the I/O loop, not one per frame.
static void s_stamp_send(tern_client_t *self, int64_t now) {
    if (self->sent) {
        self->sent = false;
        self->last_send = now;
    }
}

//  Takes the queued ops (mutex held by nobody); the caller owns them.
static cl_op_t *s_take_ops(tern_client_t *self) {
    pthread_mutex_lock(&self->mutex);
    cl_op_t *op = self->ops_head;
    self->ops_head = self->ops_tail = NULL;
    self->wake_pending = false;
    pthread_mutex_unlock(&self->mutex);
    return op;
}

static void s_admin_append(tern_client_t *self, cl_admin_t *admin) {
    admin->next = self->admins;
    self->admins = admin;
}

//  Runs ops queued by application threads. Returns false on OP_CLOSE.
static bool s_handle_ops(tern_client_t *self) {
    uint64_t count;
    ssize_t n = read(self->wake_fd, &count, sizeof count);
    (void)n;
    cl_op_t *op = s_take_ops(self);
    bool running = true;
    while (op) {
        cl_op_t *next = op->next;
        switch (op->type) {
            case OP_PUB:
                s_win_append(self, (cl_pub_t *)op);
                s_pub_send(self, (cl_pub_t *)op);
                break;
            case OP_FRAME: {
                cl_frame_op_t *fop = (cl_frame_op_t *)op;
                if (self->state == S_READY && fop->gen == self->gen) {
                    s_send(self, fop->hdr, fop->hdr_len, NULL, 0, false);
                }
                free(fop);
                break;
            }
            case OP_SUB:
                pthread_mutex_lock(&self->mutex);
                cl_send_subscribe(self, ((cl_sub_op_t *)op)->sub);
                pthread_mutex_unlock(&self->mutex);
                free(op);
                break;
            case OP_ADMIN:
                s_admin_append(self, (cl_admin_t *)op);
                if (self->abandoned && self->state != S_READY) {
                    //  Its node was given up: tern_admin routes it again.
                    pthread_mutex_lock(&self->mutex);
                    cl_admins_abandon(self);
                    pthread_mutex_unlock(&self->mutex);
                } else {
                    cl_send_admin(self, (cl_admin_t *)op);
                }
                break;
            case OP_CLOSE:
                running = false;
                free(op);
                break;
            case OP_MODE:
                self->io_mode = ((cl_mode_op_t *)op)->mode;
                free(op);
                if (self->io_mode == CL_MODE_CLUSTER) {
                    cl_cluster_take_window(self);
                } else {
                    cl_resend_all(self);
                }
                break;
            case OP_ABANDON:
                //  A node session whose node is gone: its root routes the
                //  window again (same producer and producer_seq).
                free(op);
                tl_session_lost = true;
                cl_win_fail(self, TERN_ENOTLEADER, CL_LOST_REASON);
                tl_session_lost = false;
                pthread_mutex_lock(&self->mutex);
                cl_admins_abandon(self); //  its callers route reads again
                pthread_mutex_unlock(&self->mutex);
                break;
        }
        op = next;
    }
    if (self->refusal) {
        cl_fail_pending(self); //  what was queued before the caller saw a refusal
    }
    return running;
}

//  ---------------------------------------------------------------------------
//  Receiving

//  An ERROR frame: the session's, or the answer to one request.
static void s_handle_error(tern_client_t *self, const tern_frame_t *frame) {
    if (self->state == S_CONNECTING) {
        cl_handle_hello_error(self, frame);
        return;
    }
    //  TERN_ESTATE ends the session when the broker does not know it
    //  ("send HELLO first"); answering an admin request on a live session it
    //  is that request's answer (ADMIN `cluster`: "not a cluster").
    if (frame->code == TERN_ESTATE && strcmp(frame->reason, "send HELLO first") != 0 &&
        frame->req_id && cl_handle_admin_error(self, frame)) {
        return;
    }
    if (cl_handle_session_error(self, frame) || frame->req_id == 0) {
        return;
    }
    if (cl_handle_pub_error(self, frame) || cl_handle_admin_error(self, frame)) {
        return;
    }
    cl_handle_sub_error(self, frame);
}

static void s_handle_bye(tern_client_t *self, const tern_frame_t *frame) {
    (void)frame;
    cl_session_lost(self);
}

//  Who handles each command a broker sends; HEARTBEAT has nothing to do
//  (last_recv is already updated), and the rest are not for a client.
typedef void(s_handler_fn)(tern_client_t *self, const tern_frame_t *frame);
static s_handler_fn *const s_handlers[TERN_CMD_MAX_] = {
    [TERN_CMD_WELCOME] = cl_handle_welcome, [TERN_CMD_ERROR] = s_handle_error,
    [TERN_CMD_PUBACK] = cl_handle_puback,   [TERN_CMD_OK] = cl_handle_ok,
    [TERN_CMD_DELIVER] = cl_handle_deliver, [TERN_CMD_REPLY] = cl_handle_reply,
    [TERN_CMD_BYE] = s_handle_bye,
};

static void s_handle_frame(tern_client_t *self, zmq_msg_t *hdr, zmq_msg_t *payload,
                           bool has_payload) {
    tern_frame_t frame;
    tern_limits_t limits = {.max_payload = (size_t)1 << 31};
    tern_err_t rc = tern_frame_decode(&frame, zmq_msg_data(hdr), zmq_msg_size(hdr),
                                      has_payload ? zmq_msg_data(payload) : NULL,
                                      has_payload ? zmq_msg_size(payload) : 0, &limits);
    if (rc != TERN_OK) {
        return; //  a broker bug or a foreign peer: nothing we can act on
    }
    if ((unsigned)frame.cmd < TERN_CMD_MAX_ && s_handlers[frame.cmd]) {
        s_handlers[frame.cmd](self, &frame);
    }
}

//  Receives the rest of a message whose header frame had MORE set into
//  PAYLOAD (initialized); drops any frames past it. Returns true if there
//  was a payload.
static bool s_recv_payload(tern_client_t *self, zmq_msg_t *payload) {
    bool has_payload = zmq_msg_recv(payload, self->dealer, 0) >= 0;
    //  Drop any extra frames: frame count errors are not ours to fix.
    while (has_payload && zmq_msg_more(payload)) {
        zmq_msg_t extra;
        zmq_msg_init(&extra);
        zmq_msg_recv(&extra, self->dealer, 0);
        bool more = zmq_msg_more(&extra);
        zmq_msg_close(&extra);
        if (!more) {
            break;
        }
    }
    return has_payload;
}

//  Drains up to TERN_DRAIN_MAX messages (the session may be lost meanwhile).
static void s_handle_socket(tern_client_t *self) {
    for (int i = 0; i < TERN_DRAIN_MAX && self->dealer; i++) {
        zmq_msg_t hdr, payload;
        zmq_msg_init(&hdr);
        if (zmq_msg_recv(&hdr, self->dealer, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&hdr);
            return;
        }
        if (i == 0) {
            //  One clock read per drain: its frames arrived together.
            self->last_recv = s_now_ms();
        }
        zmq_msg_init(&payload);
        bool has_payload = zmq_msg_more(&hdr) && s_recv_payload(self, &payload);
        s_handle_frame(self, &hdr, &payload, has_payload);
        zmq_msg_close(&hdr);
        zmq_msg_close(&payload);
    }
}

//  ---------------------------------------------------------------------------
//  The loop

static long s_poll_timeout(tern_client_t *self, int64_t now) {
    int64_t due;
    switch (self->state) {
        case S_IDLE:
            due = self->next_attempt;
            break;
        case S_CONNECTING:
            due = self->hello_sent ? self->hello_deadline : now + 10;
            break;
        default: {
            due = self->last_send + self->send_hb;
            int64_t dead = self->last_recv + 3 * (int64_t)self->broker_hb + 1;
            if (dead < due) {
                due = dead;
            }
            if (self->resend_needed && now + 10 < due) {
                due = now + 10;
            }
        }
    }
    if (self->admins && now + 100 < due) {
        due = now + 100;
    }
    return due > now ? (long)(due - now) : 0;
}

//  The client is closing: says BYE, then completes everything still
//  waiting, the ops queued after the close request included, with
//  TERN_ECLOSED, and marks the client stopped.
static void s_shutdown(tern_client_t *self) {
    cl_flush_cb_out(self);
    if (self->state == S_READY) {
        cl_send_simple(self, TERN_CMD_BYE);
    }
    //  Not connected: a HELLO waiting in the socket must not reach a broker
    //  that comes up during the linger.
    cl_close_socket(self, self->state == S_READY);
    for (cl_op_t *op = s_take_ops(self), *next; op; op = next) {
        next = op->next;
        if (op->type == OP_PUB) {
            s_win_append(self, (cl_pub_t *)op); //  after the window: completed in order
        } else if (op->type == OP_ADMIN) {
            s_admin_append(self, (cl_admin_t *)op);
        } else {
            free(op);
        }
    }
    cl_win_fail(self, TERN_ECLOSED, NULL);
    pthread_mutex_lock(&self->mutex);
    cl_admins_fail(self, TERN_ECLOSED, NULL);
    cl_subs_fail(self, TERN_ECLOSED, NULL, true);
    self->ready = false;
    self->stopped = true;
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->mutex);
}

//  Parks (PARKED true) or unparks the I/O thread around its poll. While
//  parked it touches neither the dealer nor the window, so a publishing
//  caller may send on the socket itself (tern_client_pub.c, s_pub_direct);
//  the mutex hands the socket over with the full memory barrier libzmq
//  asks for when a socket changes threads.
static void s_park(tern_client_t *self, bool parked) {
    pthread_mutex_lock(&self->mutex);
    self->io_parked = parked;
    pthread_mutex_unlock(&self->mutex);
}

//  Runs what the dealer has ready (HELLO to send, frames to read).
static void s_handle_dealer(tern_client_t *self) {
    int events = s_dealer_events(self);
    if ((events & ZMQ_POLLOUT) && self->state == S_CONNECTING && !self->hello_sent) {
        cl_try_hello(self);
    }
    if (events & ZMQ_POLLIN) {
        s_handle_socket(self);
    }
}

//  Polls the eventfd, the dealer and the monitor until the next timer is
//  due; runs what is ready. Returns false on OP_CLOSE. The dealer is polled
//  by its ZMQ_FD, not as a socket item: zmq_poll would read the socket's
//  state after the poll returned, before this thread took it back from a
//  caller that sends on it meanwhile.
static bool s_poll_once(tern_client_t *self, int64_t now, bool *ctx_gone) {
    zmq_pollitem_t items[3] = {{NULL, self->wake_fd, ZMQ_POLLIN, 0}};
    int count = 1, monitor_at = -1;
    long timeout = s_poll_timeout(self, now);
    if (self->dealer) {
        int wanted = ZMQ_POLLIN;
        if (self->state == S_CONNECTING && !self->hello_sent) {
            wanted |= ZMQ_POLLOUT;
        }
        if (s_dealer_events(self) & wanted) {
            timeout = 0; //  ready already: its fd may not fire again
        }
        zmq_fd_t fd;
        size_t fd_len = sizeof fd;
        if (zmq_getsockopt(self->dealer, ZMQ_FD, &fd, &fd_len) == 0) {
            items[count++] = (zmq_pollitem_t){NULL, fd, ZMQ_POLLIN, 0};
        }
    }
    if (self->monitor) {
        items[count] = (zmq_pollitem_t){self->monitor, 0, ZMQ_POLLIN, 0};
        monitor_at = count++;
    }
    s_park(self, true);
    int rc = zmq_poll(items, count, timeout);
    s_park(self, false);
    if (rc < 0 && zmq_errno() != EINTR) {
        *ctx_gone = true; //  the context is gone: nothing left to serve
        return false;
    }
    bool running = true;
    if (items[0].revents & ZMQ_POLLIN) {
        running = s_handle_ops(self);
    }
    if (self->dealer) {
        s_handle_dealer(self); //  fd or not: a caller's send may have taken its signal
    }
    if (monitor_at > 0 && self->monitor && (items[monitor_at].revents & ZMQ_POLLIN)) {
        cl_handle_monitor(self);
    }
    return running;
}

void *cl_io_thread(void *arg) {
    tern_client_t *self = arg;
    //  Named like libzmq's threads, so per-thread counts (tools/bench/cpu.sh,
    //  /proc/PID/task) can tell it from the application's.
    pthread_setname_np(pthread_self(), "tern-io");
    tl_io_root = self->root; //  callbacks of a node session are its root's
    self->state = S_IDLE;
    self->next_attempt = s_now_ms();
    bool running = true;
    while (running) {
        bool ctx_gone = false;
        running = s_poll_once(self, s_now_ms(), &ctx_gone);
        if (ctx_gone) {
            break;
        }
        cl_flush_cb_out(self);
        int64_t after = s_now_ms();
        s_stamp_send(self, after);
        if (running) {
            cl_session_timers(self, after);
            cl_admins_expire(self, after);
            s_stamp_send(self, after);
        }
    }
    s_shutdown(self);
    return NULL;
}
