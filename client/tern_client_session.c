/*  tern_client_session.c - the session: connect, HELLO/WELCOME, heartbeats, reconnect,
   first-contact errors.

    Runs on the I/O thread only (tern_client_io.c calls in on socket,
    monitor and timer events). One DEALER per connection attempt, with a
    monitor PAIR that reports TCP and handshake events at once; endpoints are
    tried in turn with jittered exponential backoff (tern_backoff.c). A new
    session resends everything that has not gone out in it, in order:
    subscriptions, admin requests, then the publish window.

    Session state machine:

        state \ event   WELCOME     ERROR(hello) / BYE /   timer
                                    ESTATE / disconnect
        IDLE            -           -                      backoff due: new DEALER,
                                                           connect -> CONNECTING
        CONNECTING      -> READY,   -> IDLE (backoff,      no WELCOME in time ->
                        resend all  next endpoint)         IDLE (next endpoint)
        READY           ignored     -> IDLE (backoff 0,    heartbeat due: send;
                                    next endpoint)         3 intervals silent -> IDLE

    Idempotence: each publish keeps its encoded header (producer id,
    producer_seq, req_id) until its PUBACK, and a new session resends those
    exact bytes, so the broker's dedup window turns a resend of an already
    stored message into a "duplicate" ack carrying the original msg_id.

    First contact: before the first session, a failure that retrying will
    not soon fix (nothing listens at any endpoint; the broker's security
    does not match ours) fails waiting and new calls at once with a reason
    naming the endpoint (client->refusal), while the client keeps trying.
*/
#include "tern_client_int.h"

//  ---------------------------------------------------------------------------
//  Connecting

void cl_close_socket(tern_client_t *self, bool flush) {
    if (self->dealer) {
        if (!flush) {
            //  What waits in the socket was meant for a session that is gone
            //  (or never came): not for whoever listens there next.
            int linger = 0;
            zmq_setsockopt(self->dealer, ZMQ_LINGER, &linger, sizeof linger);
        }
        //  Stop the monitor first: an event the closing dealer emits towards a
        //  PAIR that is already gone blocks libzmq's I/O thread for good, and
        //  with it every later connect of this client (libzmq issue 3575).
        zmq_socket_monitor(self->dealer, NULL, 0);
        zmq_close(self->dealer);
        self->dealer = NULL;
    }
    if (self->monitor) {
        zmq_close(self->monitor);
        self->monitor = NULL;
    }
}

void cl_session_lost(tern_client_t *self) {
    cl_close_socket(self, false); //  the next session sends again what it needs
    pthread_mutex_lock(&self->mutex);
    self->ready = false;
    cl_admins_lost(self);
    self->endpoint_index = (self->endpoint_index + 1) % self->endpoint_count;
    //  Subscriptions are no longer valid; their messages can't be acked.
    for (tern_subscription_t *sub = self->subs; sub; sub = sub->next) {
        sub->gen = 0;
        sub->sub_id = 0;
    }
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->mutex);
    self->state = S_IDLE;
    uint32_t delay = tern_backoff_delay(self->attempt, self->options.backoff_min_ms,
                                        self->options.backoff_max_ms, &self->rng);
    self->attempt++;
    self->next_attempt = s_now_ms() + delay;
}

//  A new DEALER with our options and CURVE keys, in self->dealer.
//
//  Not ZMQ_IMMEDIATE: with it, libzmq 4.3 answers a dropped connection by
//  ending the socket's pipe at once (socket_base_t::hiccuped), at whatever
//  frame the reader is. When that happens between the header and the
//  payload of a DELIVER (the receive that processes it is the payload's),
//  libzmq aborts the process: `Assertion failed: !_more (src/fq.cpp:112)`
//  (tests/integration/it_client_kill.c, broker_killed_mid_multipart).
//  Without it the pipe lives until its last whole message is read. What
//  that changes for sends is harmless here: HELLO waits in the socket until
//  TCP is up, and frames sent after the drop, before we notice it, are
//  dropped at the close (cl_session_lost) or, if libzmq reconnected to a
//  new broker meanwhile, refused by it ("send HELLO first").
static void s_dealer_new(tern_client_t *self) {
    self->dealer = zmq_socket(self->ctx, ZMQ_DEALER);
    int hwm = 1000000, linger = 200, ivl = 100, ivl_max = 1000;
    zmq_setsockopt(self->dealer, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(self->dealer, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(self->dealer, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(self->dealer, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(self->dealer, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max);
    if (self->curve_server[0]) {
        zmq_setsockopt(self->dealer, ZMQ_CURVE_SERVERKEY, self->curve_server,
                       sizeof self->curve_server);
        zmq_setsockopt(self->dealer, ZMQ_CURVE_PUBLICKEY, self->curve_public,
                       sizeof self->curve_public);
        zmq_setsockopt(self->dealer, ZMQ_CURVE_SECRETKEY, self->curve_secret,
                       sizeof self->curve_secret);
    }
}

//  The monitor tells us at once when the TCP connection drops, so a lost
//  broker is noticed before three heartbeats go by. Without one (it could
//  not be made) the heartbeats still notice.
static void s_monitor_start(tern_client_t *self) {
    char monitor_ep[96];
    snprintf(monitor_ep, sizeof monitor_ep, "inproc://tern-monitor-%p-%llu", (void *)self,
             (unsigned long long)++self->monitor_seq);
    if (zmq_socket_monitor(self->dealer, monitor_ep,
                           ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED |
                               ZMQ_EVENT_CONNECT_RETRIED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) == 0) {
        self->monitor = zmq_socket(self->ctx, ZMQ_PAIR);
        if (zmq_connect(self->monitor, monitor_ep) != 0) {
            zmq_close(self->monitor);
            self->monitor = NULL;
        }
    }
}

static void s_connect(tern_client_t *self) {
    pthread_mutex_lock(&self->mutex);
    const char *endpoint = self->endpoints[self->endpoint_index];
    pthread_mutex_unlock(&self->mutex);
    s_dealer_new(self);
    s_monitor_start(self);
    if (zmq_connect(self->dealer, endpoint) != 0) {
        cl_session_lost(self);
        return;
    }
    self->state = S_CONNECTING;
    self->hello_sent = false;
    self->hello_deadline = s_now_ms() + self->options.connect_timeout_ms;
}

void cl_send_simple(tern_client_t *self, tern_cmd_t cmd) {
    tern_frame_t frame;
    tern_frame_init(&frame, cmd);
    size_t len;
    if (tern_frame_encode(&frame, tl_header, sizeof tl_header, &len) == TERN_OK) {
        s_send(self, tl_header, len, NULL, 0, false);
    }
}

void cl_try_hello(tern_client_t *self) {
    tern_frame_t frame;
    tern_frame_init(&frame, TERN_CMD_HELLO);
    frame.req_id = atomic_fetch_add(&self->next_req, 1);
    frame.proto_version = TERN_PROTO_VERSION;
    frame.heartbeat_ms = self->options.heartbeat_ms;
    snprintf(frame.name, sizeof frame.name, "%s", self->options.name);
    frame.fields |= TERN_F_NAME;
    //  A node session marks the resends of its publishes (tern_client_cluster.c,
    //  s_pump), so a cluster node may refuse sticky (docs/protocol.md, "Producer order").
    frame.resend = self->root != NULL;
    size_t len;
    if (tern_frame_encode(&frame, tl_header, sizeof tl_header, &len) != TERN_OK) {
        return;
    }
    if (s_send(self, tl_header, len, NULL, 0, false)) {
        self->hello_sent = true;
        self->hello_req = frame.req_id;
    }
}

void cl_resend_all(tern_client_t *self) {
    self->resend_needed = false;
    pthread_mutex_lock(&self->mutex);
    for (tern_subscription_t *sub = self->subs; sub; sub = sub->next) {
        cl_send_subscribe(self, sub);
    }
    pthread_mutex_unlock(&self->mutex);
    for (cl_admin_t *admin = self->admins; admin; admin = admin->next) {
        cl_send_admin(self, admin);
    }
    for (cl_pub_t *pub = self->win_head; pub; pub = pub->next) {
        s_pub_send(self, pub);
    }
}

void cl_handle_welcome(tern_client_t *self, const tern_frame_t *frame) {
    if (self->state != S_CONNECTING) {
        return;
    }
    self->state = S_READY;
    self->attempt = 0;
    self->abandoned = false;
    self->broker_hb = frame->heartbeat_ms ? frame->heartbeat_ms : self->options.heartbeat_ms;
    //  The broker times sessions out on its own interval: never be slower.
    self->send_hb =
        self->options.heartbeat_ms < self->broker_hb ? self->options.heartbeat_ms : self->broker_hb;
    pthread_mutex_lock(&self->mutex);
    self->gen++;
    self->ready = true;
    self->hello_error = TERN_OK;
    self->refusal = TERN_OK;
    self->refused_in_row = 0;
    self->node_id = frame->node_id;
    snprintf(self->dc, sizeof self->dc, "%s", frame->dc);
    atomic_store(&self->max_payload, frame->max_payload ? frame->max_payload : TERN_PAYLOAD_MAX);
    pthread_cond_broadcast(&self->cond);
    pthread_cond_signal(&self->tick); //  the probe asks this session at once
    pthread_mutex_unlock(&self->mutex);
    cl_resend_all(self);
}

//  Records CODE as the broker's answer to our HELLO or key, for waiters.
static void s_hello_error(tern_client_t *self, tern_err_t code) {
    pthread_mutex_lock(&self->mutex);
    self->hello_error = code;
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->mutex);
}

void cl_handle_hello_error(tern_client_t *self, const tern_frame_t *frame) {
    s_hello_error(self, (tern_err_t)frame->code);
    cl_session_lost(self);
}

bool cl_handle_session_error(tern_client_t *self, const tern_frame_t *frame) {
    if (frame->code == TERN_ESTATE) {
        //  The broker does not know this session (it restarted): start over.
        cl_session_lost(self);
        return true;
    }
    if (frame->req_id == 0 && frame->code == TERN_EDENIED) {
        //  The broker ended the session: our key was revoked. Reconnecting
        //  will be refused at the handshake; waiters see TERN_EDENIED.
        s_hello_error(self, TERN_EDENIED);
        cl_session_lost(self);
        return true;
    }
    return false;
}

//  ---------------------------------------------------------------------------
//  First contact

void cl_fail_pending(tern_client_t *self) {
    if (!self->refusal) {
        return;
    }
    pthread_mutex_lock(&self->mutex);
    cl_admins_fail(self, self->refusal, self->refusal_reason);
    cl_subs_fail(self, self->refusal, self->refusal_reason, false);
    pthread_mutex_unlock(&self->mutex);
    //  Nothing was ever sent (no session yet): completing is safe.
    cl_win_fail(self, self->refusal, self->refusal_reason);
}

//  First contact failed in a way that retrying will not soon fix: no broker
//  listens at any endpoint, or the broker's security does not match ours.
//  Waiting calls fail now with CODE and REASON (FMT, naming the endpoint
//  ENDPOINT without its tcp://), and so do new ones, until a WELCOME; the
//  client keeps trying in the background.
static void s_refuse(tern_client_t *self, tern_err_t code, const char *fmt, const char *endpoint) {
    const char *address = cl_tcp_address(endpoint);
    pthread_mutex_lock(&self->mutex);
    self->refusal = code;
    snprintf(self->refusal_reason, sizeof self->refusal_reason, fmt, address ? address : endpoint);
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->mutex);
    cl_fail_pending(self);
}

//  A connect to the current endpoint failed before the first session: if
//  nothing listens there, and nothing did at the other endpoints either, say
//  so at once instead of letting callers time out. A broker that once
//  accepted our TCP connection is only restarting: that is retried. Once
//  the refusal is told, it stands until a WELCOME, so the retries that
//  follow do not probe again (each probe is a connect of its own and may
//  hold the I/O thread up to 500 ms).
static void s_connect_failed(tern_client_t *self) {
    const char *endpoint = self->endpoints[self->endpoint_index];
    if (self->refusal == TERN_ECONNREFUSED) {
        return;
    }
    if (self->tcp_contact || !cl_tcp_refused(endpoint)) {
        self->refused_in_row = 0;
        return;
    }
    if (++self->refused_in_row < self->endpoint_count) {
        return;
    }
    if (self->endpoint_count == 1) {
        s_refuse(self, TERN_ECONNREFUSED, "cannot connect to %s: connection refused", endpoint);
        return;
    }
    char list[TERN_REASON_MAX + 1] = "";
    size_t used = 0;
    for (size_t i = 0; i < self->endpoint_count && used < sizeof list; i++) {
        const char *address = cl_tcp_address(self->endpoints[i]);
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                                 address ? address : self->endpoints[i]);
    }
    s_refuse(self, TERN_ECONNREFUSED, "cannot connect to %s: connection refused", list);
}

//  The handshake failed at the security layer before the first session.
static void s_handshake_failed(tern_client_t *self, uint16_t id, uint32_t value) {
    const char *endpoint = self->endpoints[self->endpoint_index];
    if (id == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
        s_refuse(self, TERN_EDENIED,
                 "ternd at %s refused our CURVE key (not in its auth/clients directory)", endpoint);
    } else if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH) {
        s_refuse(self, TERN_EDENIED,
                 self->curve_server[0] ? "ternd at %s does not use CURVE: connect without keys"
                                       : "ternd at %s requires CURVE",
                 endpoint);
    }
}

//  ---------------------------------------------------------------------------
//  Monitor events and timers

//  Reads one monitor event into *ID and *VALUE; false when none is waiting.
static bool s_monitor_event(tern_client_t *self, uint16_t *id, uint32_t *value) {
    zmq_msg_t event;
    zmq_msg_init(&event);
    if (zmq_msg_recv(&event, self->monitor, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&event);
        return false;
    }
    *id = 0;
    *value = 0;
    if (zmq_msg_size(&event) >= 6) {
        memcpy(id, zmq_msg_data(&event), 2);
        memcpy(value, (uint8_t *)zmq_msg_data(&event) + 2, 4);
    }
    bool more = zmq_msg_more(&event);
    zmq_msg_close(&event);
    while (more) {
        zmq_msg_init(&event);
        zmq_msg_recv(&event, self->monitor, 0);
        more = zmq_msg_more(&event);
        zmq_msg_close(&event);
    }
    return true;
}

void cl_handle_monitor(tern_client_t *self) {
    uint16_t id;
    uint32_t value;
    while (self->monitor && s_monitor_event(self, &id, &value)) {
        //  A refused connect while connecting means this endpoint is down
        //  now: move on to the next one with our own backoff. Before the
        //  first session, a refusal that retrying will not fix fails the
        //  callers at once (s_refuse); after it, we only retry.
        bool first = self->gen == 0;
        if (id == ZMQ_EVENT_CONNECTED) {
            self->tcp_contact = true;
        }
        if (first && id == ZMQ_EVENT_CONNECT_RETRIED && self->state == S_CONNECTING) {
            s_connect_failed(self);
        }
        if (first &&
            (id == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH || id == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)) {
            s_handshake_failed(self, id, value);
        }
        if (id == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
            //  The broker's ZAP handler refused our key: say so to waiters.
            s_hello_error(self, TERN_EDENIED);
        }
        bool lost = id == ZMQ_EVENT_DISCONNECTED || id == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ||
                    (id == ZMQ_EVENT_CONNECT_RETRIED && self->state == S_CONNECTING);
        if (lost && self->state != S_IDLE) {
            cl_session_lost(self);
            return;
        }
    }
}

void cl_session_timers(tern_client_t *self, int64_t now) {
    switch (self->state) {
        case S_IDLE:
            if (now >= self->next_attempt) {
                s_connect(self);
            }
            break;
        case S_CONNECTING:
            if (now >= self->hello_deadline) {
                self->refused_in_row = 0; //  something answered, or nothing at all
                cl_session_lost(self);
            }
            break;
        case S_READY:
            if (now - self->last_recv > 3 * (int64_t)self->broker_hb) {
                cl_session_lost(self);
                break;
            }
            if (now - self->last_send >= self->send_hb) {
                cl_send_simple(self, TERN_CMD_HEARTBEAT);
            }
            if (self->resend_needed) {
                cl_resend_all(self);
            }
            break;
    }
}
