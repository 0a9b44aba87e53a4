/*  tern_client.c - libtern: sessions, publish, subscribe and admin over one DEALER.

    The client is one background I/O thread that owns the ZeroMQ context and
    the DEALER socket, plus the public functions that any application thread
    calls. Those functions validate and encode their frame in the calling
    thread, then hand an owned op to the I/O thread through a mutex-protected
    queue and an eventfd that the I/O thread polls next to the socket. Replies
    come back through waiters (a flag + result under the client mutex, signalled
    on the client condition variable) or through callbacks run on the I/O
    thread. The publish window, the pending admin requests and the socket are
    touched only by the I/O thread; subscriptions are shared and guarded by the
    mutex.

    Session state machine of the I/O thread:

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
*/
#include "tern.h"
#include "tern_backoff.h"
#include "tern_proto.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define TERN_MAX_ENDPOINTS 32
#define TERN_DRAIN_MAX     1024

//  ---------------------------------------------------------------------------
//  Small helpers

//  The one place where running out of memory ends the process.
static void *s_alloc(size_t size) {
    void *p = calloc(1, size ? size : 1);
    if (!p) {
        fprintf(stderr, "libtern: out of memory (%zu bytes)\n", size);
        abort();
    }
    return p;
}

static void *s_dup(const void *src, size_t size) {
    void *p = s_alloc(size + 1);
    if (size) {
        memcpy(p, src, size);
    }
    return p;
}

static int64_t s_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static _Thread_local char tl_reason[TERN_REASON_MAX + 1];
static _Thread_local uint8_t tl_header[TERN_HEADER_MAX];
static _Thread_local uint8_t tl_meta[TERN_HEADER_MAX];

const char *tern_last_reason(void) {
    return tl_reason;
}

static void s_set_reason(const char *reason) {
    snprintf(tl_reason, sizeof tl_reason, "%s", reason ? reason : "");
}

//  Encodes FRAME into a fresh heap buffer; caller owns *HDR.
static tern_err_t s_encode(const tern_frame_t *frame, uint8_t **hdr, size_t *len) {
    tern_err_t rc = tern_frame_encode(frame, tl_header, sizeof tl_header, len);
    if (rc == TERN_OK) {
        *hdr = s_dup(tl_header, *len);
    }
    return rc;
}

//  ---------------------------------------------------------------------------
//  Objects

//  A synchronous caller waiting for the I/O thread. Guarded by client->mutex.
//  Whoever finishes last frees it: the I/O thread if the caller abandoned it.
typedef struct {
    bool done;                        //  the result is in
    bool abandoned;                   //  the caller gave up (timeout); I/O thread frees
    tern_err_t code;                  //  outcome
    char reason[TERN_REASON_MAX + 1]; //  broker's reason on error
    tern_pub_result_t pub;            //  publish outcome
    char *json;                       //  admin reply, owned until taken
    tern_client_t *client;            //  for publish completions
} s_waiter_t;

//  One publish in the window. Owned by the I/O thread once queued.
typedef struct _s_pub_t {
    struct _s_pub_t *next; //  window list, send order
    struct _s_pub_t *prev; //  window list
    uint64_t req_id;       //  request id (kept across sessions)
    uint64_t producer_seq; //  dedup sequence it carries
    uint8_t *hdr;          //  encoded header, owned
    size_t hdr_len;        //  its size
    uint8_t *payload;      //  payload copy, owned
    size_t size;           //  its size
    uint64_t sent_gen;     //  session generation it was last sent in; 0 never
    tern_pub_fn *fn;       //  completion callback or NULL
    void *arg;             //  its argument
} s_pub_t;

//  One pending admin request. Owned by the I/O thread once queued.
typedef struct _s_admin_t {
    struct _s_admin_t *next; //  pending list
    uint64_t req_id;         //  request id
    uint8_t *hdr;            //  encoded ADMIN header, owned
    size_t hdr_len;          //  its size
    uint64_t sent_gen;       //  session it was sent in; 0 never
    int64_t deadline;        //  monotonic ms after which it is dropped
    s_waiter_t *waiter;      //  the caller
} s_admin_t;

typedef enum { OP_PUB, OP_FRAME, OP_SUB, OP_ADMIN, OP_CLOSE } s_op_type_t;

//  A request from an application thread to the I/O thread.
typedef struct _s_op_t {
    struct _s_op_t *next;     //  queue link
    s_op_type_t type;         //  what to do
    uint64_t gen;             //  OP_FRAME: send only in this session
    uint8_t *hdr;             //  OP_FRAME: encoded header, owned
    size_t hdr_len;           //  its size
    s_pub_t *pub;             //  OP_PUB: owned
    s_admin_t *admin;         //  OP_ADMIN: owned
    tern_subscription_t *sub; //  OP_SUB: borrowed (client owns subs)
} s_op_t;

struct _tern_message_t {
    tern_message_t *next;              //  pull queue link
    tern_subscription_t *sub;          //  borrowed; lives until the client dies
    uint64_t gen;                      //  session that delivered it
    uint64_t sub_id;                   //  subscription id in that session
    uint64_t tag;                      //  delivery tag
    bool settled;                      //  acked, nacked or termed
    uint64_t msg_id;                   //  snowflake id
    uint64_t seq;                      //  per-topic seq
    uint64_t producer_seq;             //  dedup seq
    uint64_t timestamp_ns;             //  broker receive time
    uint64_t expire_at_ns;             //  expiry or 0
    uint32_t delivery_count;           //  1 on first delivery
    int priority;                      //  0..9
    char topic[TERN_TOPIC_MAX + 1];    //  topic
    char producer[TERN_NAME_MAX + 1];  //  producer id
    char key[TERN_KEY_MAX + 1];        //  ordering key
    char trace_id[TERN_TRACE_MAX + 1]; //  traceparent
    char origin[TERN_NAME_MAX + 1];    //  origin dc
    size_t header_count;               //  metadata pairs
    char **headers;                    //  2 * header_count strings in one block, owned
    uint8_t *data;                     //  payload copy (NUL-terminated), owned
    size_t size;                       //  payload size
};

struct _tern_subscription_t {
    tern_subscription_t *next;        //  client's list
    tern_client_t *client;            //  owner
    char pattern[TERN_TOPIC_MAX + 1]; //  topic pattern
    char group[TERN_NAME_MAX + 1];    //  group or ""
    tern_sub_options_t options;       //  start, start_value, credit
    bool wildcard;                    //  pattern has '*' or '>'
    uint64_t last_seq;                //  highest seq delivered (ephemeral resume)
    tern_msg_fn *fn;                  //  callback or NULL for pull
    void *arg;                        //  its argument
    //  Guarded by client->mutex:
    uint64_t req_id;      //  request id of the last SUBSCRIBE sent
    uint64_t sent_gen;    //  session that SUBSCRIBE went to
    uint64_t sub_id;      //  broker id in session gen
    uint64_t gen;         //  session in which sub_id is valid; 0 none
    bool closed;          //  unsubscribed or failed
    s_waiter_t *waiter;   //  tern_subscribe waiting for the first OK
    tern_message_t *head; //  pull queue
    tern_message_t *tail; //  pull queue
    size_t queued;        //  pull queue length
    pthread_cond_t cond;  //  signalled on push and close
};

typedef enum { S_IDLE, S_CONNECTING, S_READY } s_state_t;

struct _tern_client_t {
    tern_client_options_t options;             //  copy of the options
    char *endpoints[TERN_MAX_ENDPOINTS];       //  owned strings
    size_t endpoint_count;                     //  how many
    char producer[TERN_NAME_MAX + 1];          //  producer id
    char curve_server[TERN_CURVE_KEY_LEN + 1]; //  broker's CURVE public key, "" = no CURVE
    char curve_public[TERN_CURVE_KEY_LEN + 1]; //  our CURVE public key
    char curve_secret[TERN_CURVE_KEY_LEN + 1]; //  our CURVE secret key
    pthread_t thread;                          //  the I/O thread
    int wake_fd;                               //  eventfd the I/O thread polls
    atomic_uint_fast64_t next_req;             //  request id counter

    pthread_mutex_t mutex;      //  guards everything below
    pthread_cond_t cond;        //  waiters, window, connection changes
    s_op_t *ops_head;           //  queue to the I/O thread
    s_op_t *ops_tail;           //  queue tail
    bool wake_pending;          //  an eventfd write is outstanding
    bool closing;               //  tern_client_destroy started
    bool stopped;               //  the I/O thread has finished
    uint64_t gen;               //  current session generation; 0 before first
    bool ready;                 //  a session is up
    tern_err_t hello_error;     //  last ERROR answering HELLO
    uint32_t node_id;           //  from WELCOME
    char dc[TERN_NAME_MAX + 1]; //  from WELCOME
    size_t endpoint_index;      //  endpoint of the current/next attempt
    uint32_t max_payload;       //  from WELCOME (or the default)
    size_t inflight;            //  publishes accepted, not completed
    uint64_t next_seq;          //  next producer_seq
    tern_subscription_t *subs;  //  all subscriptions, freed at destroy

    //  I/O thread only:
    void *ctx;              //  ZeroMQ context
    void *dealer;           //  current socket or NULL
    void *monitor;          //  PAIR receiving the dealer's events
    s_state_t state;        //  session state
    uint32_t attempt;       //  failed attempts since the last session
    int64_t next_attempt;   //  when IDLE: time of the next connect
    int64_t hello_deadline; //  when CONNECTING: give up after
    bool hello_sent;        //  HELLO went out on this socket
    uint64_t hello_req;     //  req_id of HELLO
    uint32_t broker_hb;     //  broker heartbeat interval
    uint32_t send_hb;       //  ours in this session: min(option, broker's)
    int64_t last_send;      //  last frame sent
    int64_t last_recv;      //  last frame received
    bool resend_needed;     //  a send hit EAGAIN; walk the window again
    uint64_t rng;           //  jitter source
    uint64_t monitor_seq;   //  makes each monitor endpoint name unique
    s_pub_t *win_head;      //  publish window, send order
    s_pub_t *win_tail;      //  window tail
    s_admin_t *admins;      //  pending admin requests
};

//  ---------------------------------------------------------------------------
//  Options

//  What a synchronous call that ran out of time reports: the broker's
//  refusal of our HELLO or of our CURVE key (TERN_EDENIED) while no session
//  is up, else TERN_ETIMEOUT. Call with the mutex held.
static tern_err_t s_timeout_code(tern_client_t *self) {
    return !self->ready && self->hello_error ? self->hello_error : TERN_ETIMEOUT;
}

static bool s_curve_key_ok(const char *key) {
    //  Z85 decodes only valid text; 40 characters make 32 bytes.
    uint8_t bin[32];
    return key && strlen(key) == TERN_CURVE_KEY_LEN && zmq_z85_decode(bin, key) != NULL;
}

void tern_client_options_init(tern_client_options_t *options) {
    memset(options, 0, sizeof *options);
    options->producer_seq_start = 1;
    options->idempotent = true;
    options->window = TERN_DEFAULT_WINDOW;
    options->publish_block_ms = -1;
    options->heartbeat_ms = TERN_DEFAULT_HEARTBEAT_MS;
    options->connect_timeout_ms = 3000;
    options->backoff_min_ms = 100;
    options->backoff_max_ms = 5000;
    options->timeout_ms = TERN_DEFAULT_TIMEOUT_MS;
}

void tern_pub_options_init(tern_pub_options_t *options) {
    memset(options, 0, sizeof *options);
    options->priority = TERN_PRIORITY_DEFAULT;
}

void tern_sub_options_init(tern_sub_options_t *options) {
    memset(options, 0, sizeof *options);
    options->start = TERN_FROM_FIRST;
}

//  ---------------------------------------------------------------------------
//  Waiting

static struct timespec s_abs_deadline(int timeout_ms) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

//  Waits on COND (mutex held) until the deadline; returns false on timeout.
static bool s_wait(pthread_cond_t *cond, pthread_mutex_t *mutex, int timeout_ms,
                   const struct timespec *deadline) {
    if (timeout_ms < 0) {
        pthread_cond_wait(cond, mutex);
        return true;
    }
    return pthread_cond_timedwait(cond, mutex, deadline) != ETIMEDOUT;
}

static bool s_on_io_thread(tern_client_t *self) {
    return pthread_equal(pthread_self(), self->thread);
}

static int s_timeout(tern_client_t *self, int timeout_ms) {
    return timeout_ms == 0 ? (int)self->options.timeout_ms : timeout_ms;
}

//  Queues OP for the I/O thread. Mutex held.
static void s_push_op(tern_client_t *self, s_op_t *op) {
    if (self->ops_tail) {
        self->ops_tail->next = op;
    } else {
        self->ops_head = op;
    }
    self->ops_tail = op;
    if (!self->wake_pending) {
        self->wake_pending = true;
        uint64_t one = 1;
        ssize_t n = write(self->wake_fd, &one, sizeof one);
        (void)n; //  the eventfd cannot overflow with one pending write
    }
}

//  Completes a waiter from the I/O thread. Mutex held; frees abandoned ones.
static void s_waiter_finish(tern_client_t *self, s_waiter_t *waiter, tern_err_t code,
                            const char *reason) {
    if (waiter->abandoned) {
        free(waiter->json);
        free(waiter);
        return;
    }
    waiter->done = true;
    waiter->code = code;
    snprintf(waiter->reason, sizeof waiter->reason, "%s", reason ? reason : "");
    pthread_cond_broadcast(&self->cond);
}

//  ---------------------------------------------------------------------------
//  I/O thread: sending

static bool s_send(tern_client_t *self, const uint8_t *hdr, size_t hdr_len, const void *payload,
                   size_t size, bool has_payload) {
    if (!self->dealer) {
        return false;
    }
    int flags = ZMQ_DONTWAIT | (has_payload ? ZMQ_SNDMORE : 0);
    if (zmq_send(self->dealer, hdr, hdr_len, flags) < 0) {
        return false;
    }
    if (has_payload) {
        //  The first frame is queued, so the second cannot hit the HWM.
        zmq_send(self->dealer, payload, size, ZMQ_DONTWAIT);
    }
    self->last_send = s_now_ms();
    return true;
}

static void s_send_simple(tern_client_t *self, tern_cmd_t cmd) {
    tern_frame_t frame;
    tern_frame_init(&frame, cmd);
    size_t len;
    if (tern_frame_encode(&frame, tl_header, sizeof tl_header, &len) == TERN_OK) {
        s_send(self, tl_header, len, NULL, 0, false);
    }
}

static void s_send_pub(tern_client_t *self, s_pub_t *pub) {
    if (self->state != S_READY || pub->sent_gen == self->gen) {
        return;
    }
    if (s_send(self, pub->hdr, pub->hdr_len, pub->payload, pub->size, true)) {
        pub->sent_gen = self->gen;
    } else {
        self->resend_needed = true;
    }
}

//  Sends SUBSCRIBE for SUB in the current session. Mutex held.
static void s_send_subscribe(tern_client_t *self, tern_subscription_t *sub) {
    if (self->state != S_READY || sub->closed || sub->sent_gen == self->gen) {
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

static void s_send_admin(tern_client_t *self, s_admin_t *admin) {
    if (self->state != S_READY || admin->sent_gen == self->gen) {
        return;
    }
    if (s_send(self, admin->hdr, admin->hdr_len, NULL, 0, false)) {
        admin->sent_gen = self->gen;
    } else {
        self->resend_needed = true;
    }
}

//  Sends everything that has not gone out in this session, in order.
static void s_resend_all(tern_client_t *self) {
    self->resend_needed = false;
    pthread_mutex_lock(&self->mutex);
    for (tern_subscription_t *sub = self->subs; sub; sub = sub->next) {
        s_send_subscribe(self, sub);
    }
    pthread_mutex_unlock(&self->mutex);
    for (s_admin_t *admin = self->admins; admin; admin = admin->next) {
        s_send_admin(self, admin);
    }
    for (s_pub_t *pub = self->win_head; pub; pub = pub->next) {
        s_send_pub(self, pub);
    }
}

//  ---------------------------------------------------------------------------
//  I/O thread: connection management

static void s_close_socket(tern_client_t *self) {
    if (self->dealer) {
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

static void s_session_lost(tern_client_t *self) {
    s_close_socket(self);
    pthread_mutex_lock(&self->mutex);
    self->ready = false;
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

static void s_connect(tern_client_t *self) {
    pthread_mutex_lock(&self->mutex);
    const char *endpoint = self->endpoints[self->endpoint_index];
    pthread_mutex_unlock(&self->mutex);

    self->dealer = zmq_socket(self->ctx, ZMQ_DEALER);
    int one = 1, hwm = 1000000, linger = 200, ivl = 100, ivl_max = 1000;
    zmq_setsockopt(self->dealer, ZMQ_IMMEDIATE, &one, sizeof one);
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

    //  The monitor tells us at once when the TCP connection drops, so a lost
    //  broker is noticed before three heartbeats go by.
    char monitor_ep[96];
    snprintf(monitor_ep, sizeof monitor_ep, "inproc://tern-monitor-%p-%llu", (void *)self,
             (unsigned long long)++self->monitor_seq);
    if (zmq_socket_monitor(self->dealer, monitor_ep,
                           ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_CONNECT_RETRIED |
                               ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) == 0) {
        self->monitor = zmq_socket(self->ctx, ZMQ_PAIR);
        if (zmq_connect(self->monitor, monitor_ep) != 0) {
            zmq_close(self->monitor);
            self->monitor = NULL;
        }
    }
    if (zmq_connect(self->dealer, endpoint) != 0) {
        s_session_lost(self);
        return;
    }
    self->state = S_CONNECTING;
    self->hello_sent = false;
    self->hello_deadline = s_now_ms() + self->options.connect_timeout_ms;
}

static void s_try_hello(tern_client_t *self) {
    tern_frame_t frame;
    tern_frame_init(&frame, TERN_CMD_HELLO);
    frame.req_id = atomic_fetch_add(&self->next_req, 1);
    frame.proto_version = TERN_PROTO_VERSION;
    frame.heartbeat_ms = self->options.heartbeat_ms;
    snprintf(frame.name, sizeof frame.name, "%s", self->options.name);
    frame.fields |= TERN_F_NAME;
    size_t len;
    if (tern_frame_encode(&frame, tl_header, sizeof tl_header, &len) != TERN_OK) {
        return;
    }
    if (s_send(self, tl_header, len, NULL, 0, false)) {
        self->hello_sent = true;
        self->hello_req = frame.req_id;
    }
}

//  ---------------------------------------------------------------------------
//  I/O thread: completions

static void s_win_unlink(tern_client_t *self, s_pub_t *pub) {
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

static s_pub_t *s_win_find(tern_client_t *self, uint64_t req_id) {
    for (s_pub_t *pub = self->win_head; pub; pub = pub->next) {
        if (pub->req_id == req_id) {
            return pub;
        }
    }
    return NULL;
}

//  Completes PUB: runs its callback and frees it. Caller updates inflight.
static void s_pub_complete(tern_client_t *self, s_pub_t *pub, const tern_puback_t *ack,
                           tern_err_t code) {
    s_win_unlink(self, pub);
    tern_pub_result_t result = {.code = code, .producer_seq = pub->producer_seq};
    if (ack) {
        result.msg_id = ack->msg_id;
        result.seq = ack->seq;
        result.duplicate = ack->duplicate;
    }
    if (pub->fn) {
        pub->fn(&result, pub->arg);
    }
    free(pub->hdr);
    free(pub->payload);
    free(pub);
}

static void s_inflight_done(tern_client_t *self, size_t count) {
    if (count == 0) {
        return;
    }
    pthread_mutex_lock(&self->mutex);
    self->inflight -= count;
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->mutex);
}

static tern_subscription_t *s_sub_by_req(tern_client_t *self, uint64_t req_id) {
    for (tern_subscription_t *sub = self->subs; sub; sub = sub->next) {
        if (sub->req_id == req_id && sub->sent_gen == self->gen) {
            return sub;
        }
    }
    return NULL;
}

static s_admin_t *s_admin_take(tern_client_t *self, uint64_t req_id) {
    for (s_admin_t **p = &self->admins; *p; p = &(*p)->next) {
        if ((*p)->req_id == req_id) {
            s_admin_t *admin = *p;
            *p = admin->next;
            return admin;
        }
    }
    return NULL;
}

static void s_admin_free(s_admin_t *admin) {
    free(admin->hdr);
    free(admin);
}

static void s_handle_ok(tern_client_t *self, const tern_frame_t *frame) {
    pthread_mutex_lock(&self->mutex);
    tern_subscription_t *sub = s_sub_by_req(self, frame->req_id);
    if (sub) {
        if (sub->closed) {
            //  Given up on (timeout) or unsubscribed meanwhile: undo.
            tern_frame_t unsub;
            tern_frame_init(&unsub, TERN_CMD_UNSUBSCRIBE);
            unsub.req_id = atomic_fetch_add(&self->next_req, 1);
            unsub.sub_id = frame->sub_id;
            size_t len;
            if (tern_frame_encode(&unsub, tl_header, sizeof tl_header, &len) == TERN_OK) {
                s_send(self, tl_header, len, NULL, 0, false);
            }
        } else {
            sub->sub_id = frame->sub_id;
            sub->gen = self->gen;
            if (sub->waiter) {
                s_waiter_finish(self, sub->waiter, TERN_OK, NULL);
                sub->waiter = NULL;
            }
        }
    }
    pthread_mutex_unlock(&self->mutex);
}

static void s_handle_error(tern_client_t *self, const tern_frame_t *frame) {
    if (frame->code == TERN_ESTATE) {
        //  The broker does not know this session (it restarted): start over.
        s_session_lost(self);
        return;
    }
    if (frame->req_id == 0 && frame->code == TERN_EDENIED) {
        //  The broker ended the session: our key was revoked. Reconnecting
        //  will be refused at the handshake; waiters see TERN_EDENIED.
        pthread_mutex_lock(&self->mutex);
        self->hello_error = TERN_EDENIED;
        pthread_cond_broadcast(&self->cond);
        pthread_mutex_unlock(&self->mutex);
        s_session_lost(self);
        return;
    }
    if (frame->req_id == 0) {
        return;
    }
    s_pub_t *pub = s_win_find(self, frame->req_id);
    if (pub) {
        s_pub_complete(self, pub, NULL, (tern_err_t)frame->code);
        s_inflight_done(self, 1);
        return;
    }
    s_admin_t *admin = s_admin_take(self, frame->req_id);
    if (admin) {
        pthread_mutex_lock(&self->mutex);
        s_waiter_finish(self, admin->waiter, (tern_err_t)frame->code, frame->reason);
        pthread_mutex_unlock(&self->mutex);
        s_admin_free(admin);
        return;
    }
    pthread_mutex_lock(&self->mutex);
    tern_subscription_t *sub = s_sub_by_req(self, frame->req_id);
    if (sub) {
        sub->closed = true;
        pthread_cond_broadcast(&sub->cond);
        if (sub->waiter) {
            s_waiter_finish(self, sub->waiter, (tern_err_t)frame->code, frame->reason);
            sub->waiter = NULL;
        }
    }
    pthread_mutex_unlock(&self->mutex);
}

static void s_handle_reply(tern_client_t *self, const tern_frame_t *frame) {
    s_admin_t *admin = s_admin_take(self, frame->req_id);
    if (!admin) {
        return;
    }
    pthread_mutex_lock(&self->mutex);
    if (!admin->waiter->abandoned) {
        admin->waiter->json = s_dup(frame->payload, frame->payload_size);
    }
    s_waiter_finish(self, admin->waiter, TERN_OK, NULL);
    pthread_mutex_unlock(&self->mutex);
    s_admin_free(admin);
}

static tern_message_t *s_message_new(const tern_frame_t *frame) {
    tern_message_t *msg = s_alloc(sizeof *msg);
    msg->sub_id = frame->sub_id;
    msg->tag = frame->tag;
    msg->msg_id = frame->msg_id;
    msg->seq = frame->seq;
    msg->producer_seq = frame->producer_seq;
    msg->timestamp_ns = frame->timestamp_ns;
    msg->expire_at_ns = frame->expire_at_ns;
    msg->delivery_count = frame->delivery_count;
    msg->priority = frame->priority;
    memcpy(msg->topic, frame->topic, sizeof msg->topic);
    memcpy(msg->producer, frame->producer, sizeof msg->producer);
    memcpy(msg->key, frame->key, sizeof msg->key);
    memcpy(msg->trace_id, frame->trace_id, sizeof msg->trace_id);
    memcpy(msg->origin, frame->origin, sizeof msg->origin);
    msg->data = s_dup(frame->payload, frame->payload_size);
    msg->size = frame->payload_size;
    if (frame->meta && frame->meta_count) {
        //  One block: the pointer array, then each string NUL-terminated.
        size_t bytes = 0, count = 0, pos = 0;
        tern_kv_t kv;
        while (tern_meta_next(frame->meta, frame->meta_size, &pos, &kv)) {
            bytes += kv.key_len + kv.value_len + 2;
            count++;
        }
        char **block = s_alloc(2 * count * sizeof(char *) + bytes);
        char *text = (char *)(block + 2 * count);
        pos = 0;
        for (size_t i = 0; i < count && tern_meta_next(frame->meta, frame->meta_size, &pos, &kv);
             i++) {
            block[2 * i] = text;
            memcpy(text, kv.key, kv.key_len);
            text += kv.key_len + 1;
            block[2 * i + 1] = text;
            memcpy(text, kv.value, kv.value_len);
            text += kv.value_len + 1;
        }
        msg->headers = block;
        msg->header_count = count;
    }
    return msg;
}

static void s_handle_deliver(tern_client_t *self, const tern_frame_t *frame) {
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
    if (frame->seq > sub->last_seq) {
        sub->last_seq = frame->seq;
    }
    if (sub->fn) {
        pthread_mutex_unlock(&self->mutex);
        sub->fn(msg, sub->arg);
        return;
    }
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

static void s_handle_welcome(tern_client_t *self, const tern_frame_t *frame) {
    if (self->state != S_CONNECTING) {
        return;
    }
    self->state = S_READY;
    self->attempt = 0;
    self->broker_hb = frame->heartbeat_ms ? frame->heartbeat_ms : self->options.heartbeat_ms;
    //  The broker times sessions out on its own interval: never be slower.
    self->send_hb =
        self->options.heartbeat_ms < self->broker_hb ? self->options.heartbeat_ms : self->broker_hb;
    pthread_mutex_lock(&self->mutex);
    self->gen++;
    self->ready = true;
    self->hello_error = TERN_OK;
    self->node_id = frame->node_id;
    snprintf(self->dc, sizeof self->dc, "%s", frame->dc);
    self->max_payload = frame->max_payload ? frame->max_payload : TERN_PAYLOAD_MAX;
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->mutex);
    s_resend_all(self);
}

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
    switch (frame.cmd) {
        case TERN_CMD_WELCOME:
            s_handle_welcome(self, &frame);
            break;
        case TERN_CMD_ERROR:
            if (self->state == S_CONNECTING) {
                pthread_mutex_lock(&self->mutex);
                self->hello_error = (tern_err_t)frame.code;
                pthread_cond_broadcast(&self->cond);
                pthread_mutex_unlock(&self->mutex);
                s_session_lost(self);
            } else {
                s_handle_error(self, &frame);
            }
            break;
        case TERN_CMD_PUBACK: {
            size_t done = 0;
            for (uint32_t i = 0; i < frame.ack_count; i++) {
                tern_puback_t ack;
                if (tern_frame_puback(&frame, i, &ack) != TERN_OK) {
                    break;
                }
                s_pub_t *pub = s_win_find(self, ack.req_id);
                if (pub) {
                    s_pub_complete(self, pub, &ack, (tern_err_t)ack.code);
                    done++;
                }
            }
            s_inflight_done(self, done);
            break;
        }
        case TERN_CMD_OK:
            s_handle_ok(self, &frame);
            break;
        case TERN_CMD_DELIVER:
            s_handle_deliver(self, &frame);
            break;
        case TERN_CMD_REPLY:
            s_handle_reply(self, &frame);
            break;
        case TERN_CMD_BYE:
            s_session_lost(self);
            break;
        default:
            break; //  HEARTBEAT: last_recv is already updated
    }
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
        bool has_payload = false;
        zmq_msg_init(&payload);
        if (zmq_msg_more(&hdr)) {
            has_payload = zmq_msg_recv(&payload, self->dealer, 0) >= 0;
            //  Drop any extra frames: frame count errors are not ours to fix.
            while (has_payload && zmq_msg_more(&payload)) {
                zmq_msg_t extra;
                zmq_msg_init(&extra);
                zmq_msg_recv(&extra, self->dealer, 0);
                bool more = zmq_msg_more(&extra);
                zmq_msg_close(&extra);
                if (!more) {
                    break;
                }
            }
        }
        self->last_recv = s_now_ms();
        s_handle_frame(self, &hdr, &payload, has_payload);
        zmq_msg_close(&hdr);
        zmq_msg_close(&payload);
    }
}

static void s_handle_monitor(tern_client_t *self) {
    while (self->monitor) {
        zmq_msg_t event;
        zmq_msg_init(&event);
        if (zmq_msg_recv(&event, self->monitor, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&event);
            return;
        }
        uint16_t id = 0;
        if (zmq_msg_size(&event) >= 2) {
            memcpy(&id, zmq_msg_data(&event), 2);
        }
        bool more = zmq_msg_more(&event);
        zmq_msg_close(&event);
        while (more) {
            zmq_msg_init(&event);
            zmq_msg_recv(&event, self->monitor, 0);
            more = zmq_msg_more(&event);
            zmq_msg_close(&event);
        }
        //  A refused connect while connecting means this endpoint is down
        //  now: move on to the next one with our own backoff.
        if (id == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
            //  The broker's ZAP handler refused our key: say so to waiters.
            pthread_mutex_lock(&self->mutex);
            self->hello_error = TERN_EDENIED;
            pthread_cond_broadcast(&self->cond);
            pthread_mutex_unlock(&self->mutex);
        }
        bool lost = id == ZMQ_EVENT_DISCONNECTED || id == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ||
                    (id == ZMQ_EVENT_CONNECT_RETRIED && self->state == S_CONNECTING);
        if (lost && self->state != S_IDLE) {
            s_session_lost(self);
            return;
        }
    }
}

//  Runs ops queued by application threads. Returns false on OP_CLOSE.
static bool s_handle_ops(tern_client_t *self) {
    uint64_t count;
    ssize_t n = read(self->wake_fd, &count, sizeof count);
    (void)n;
    pthread_mutex_lock(&self->mutex);
    s_op_t *op = self->ops_head;
    self->ops_head = self->ops_tail = NULL;
    self->wake_pending = false;
    pthread_mutex_unlock(&self->mutex);

    bool running = true;
    while (op) {
        s_op_t *next = op->next;
        switch (op->type) {
            case OP_PUB:
                op->pub->prev = self->win_tail;
                if (self->win_tail) {
                    self->win_tail->next = op->pub;
                } else {
                    self->win_head = op->pub;
                }
                self->win_tail = op->pub;
                s_send_pub(self, op->pub);
                break;
            case OP_FRAME:
                if (self->state == S_READY && op->gen == self->gen) {
                    s_send(self, op->hdr, op->hdr_len, NULL, 0, false);
                }
                free(op->hdr);
                break;
            case OP_SUB:
                pthread_mutex_lock(&self->mutex);
                s_send_subscribe(self, op->sub);
                pthread_mutex_unlock(&self->mutex);
                break;
            case OP_ADMIN:
                op->admin->next = self->admins;
                self->admins = op->admin;
                s_send_admin(self, op->admin);
                break;
            case OP_CLOSE:
                running = false;
                break;
        }
        free(op);
        op = next;
    }
    return running;
}

static void s_handle_timers(tern_client_t *self, int64_t now) {
    switch (self->state) {
        case S_IDLE:
            if (now >= self->next_attempt) {
                s_connect(self);
            }
            break;
        case S_CONNECTING:
            if (now >= self->hello_deadline) {
                s_session_lost(self);
            }
            break;
        case S_READY:
            if (now - self->last_recv > 3 * (int64_t)self->broker_hb) {
                s_session_lost(self);
                break;
            }
            if (now - self->last_send >= self->send_hb) {
                s_send_simple(self, TERN_CMD_HEARTBEAT);
            }
            if (self->resend_needed) {
                s_resend_all(self);
            }
            break;
    }
    //  Admin requests whose caller gave up are dropped once past their deadline.
    for (s_admin_t **p = &self->admins; *p;) {
        s_admin_t *admin = *p;
        if (now > admin->deadline) {
            *p = admin->next;
            pthread_mutex_lock(&self->mutex);
            s_waiter_finish(self, admin->waiter, s_timeout_code(self), NULL);
            pthread_mutex_unlock(&self->mutex);
            s_admin_free(admin);
        } else {
            p = &admin->next;
        }
    }
}

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

static void s_shutdown(tern_client_t *self) {
    if (self->state == S_READY) {
        s_send_simple(self, TERN_CMD_BYE);
    }
    s_close_socket(self);
    size_t count = 0;
    while (self->win_head) {
        s_pub_complete(self, self->win_head, NULL, TERN_ECLOSED);
        count++;
    }
    //  Ops queued after the close request: fail them the same way.
    pthread_mutex_lock(&self->mutex);
    s_op_t *op = self->ops_head;
    self->ops_head = self->ops_tail = NULL;
    pthread_mutex_unlock(&self->mutex);
    while (op) {
        s_op_t *next = op->next;
        if (op->type == OP_PUB) {
            self->win_head = self->win_tail = op->pub;
            s_pub_complete(self, op->pub, NULL, TERN_ECLOSED);
            count++;
        } else if (op->type == OP_ADMIN) {
            op->admin->next = self->admins;
            self->admins = op->admin;
        }
        free(op->hdr);
        free(op);
        op = next;
    }
    s_inflight_done(self, count);
    pthread_mutex_lock(&self->mutex);
    while (self->admins) {
        s_admin_t *admin = self->admins;
        self->admins = admin->next;
        s_waiter_finish(self, admin->waiter, TERN_ECLOSED, NULL);
        s_admin_free(admin);
    }
    for (tern_subscription_t *sub = self->subs; sub; sub = sub->next) {
        sub->closed = true;
        if (sub->waiter) {
            s_waiter_finish(self, sub->waiter, TERN_ECLOSED, NULL);
            sub->waiter = NULL;
        }
        pthread_cond_broadcast(&sub->cond);
    }
    self->ready = false;
    self->stopped = true;
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->mutex);
}

static void *s_io_thread(void *arg) {
    tern_client_t *self = arg;
    self->state = S_IDLE;
    self->next_attempt = s_now_ms();
    bool running = true;
    while (running) {
        int64_t now = s_now_ms();
        zmq_pollitem_t items[3] = {{NULL, self->wake_fd, ZMQ_POLLIN, 0}};
        int count = 1, dealer_at = -1, monitor_at = -1;
        if (self->dealer) {
            short events = ZMQ_POLLIN;
            if (self->state == S_CONNECTING && !self->hello_sent) {
                events |= ZMQ_POLLOUT;
            }
            items[count] = (zmq_pollitem_t){self->dealer, 0, events, 0};
            dealer_at = count++;
        }
        if (self->monitor) {
            items[count] = (zmq_pollitem_t){self->monitor, 0, ZMQ_POLLIN, 0};
            monitor_at = count++;
        }
        if (zmq_poll(items, count, s_poll_timeout(self, now)) < 0 && zmq_errno() != EINTR) {
            break; //  the context is gone: nothing left to serve
        }
        if (items[0].revents & ZMQ_POLLIN) {
            running = s_handle_ops(self);
        }
        if (dealer_at > 0 && self->dealer) {
            if (items[dealer_at].revents & ZMQ_POLLOUT && !self->hello_sent) {
                s_try_hello(self);
            }
            if (items[dealer_at].revents & ZMQ_POLLIN) {
                s_handle_socket(self);
            }
        }
        if (monitor_at > 0 && self->monitor && (items[monitor_at].revents & ZMQ_POLLIN)) {
            s_handle_monitor(self);
        }
        if (running) {
            s_handle_timers(self, s_now_ms());
        }
    }
    s_shutdown(self);
    return NULL;
}

//  ---------------------------------------------------------------------------
//  Client lifecycle

tern_client_t *tern_client_new_array(const char *const *endpoints, size_t count,
                                     const tern_client_options_t *options) {
    tern_client_options_t defaults;
    if (!options) {
        tern_client_options_init(&defaults);
        options = &defaults;
    }
    if (!endpoints || count == 0 || count > TERN_MAX_ENDPOINTS || options->window == 0 ||
        options->window > 65536) {
        return NULL;
    }
    if (options->producer_id &&
        !tern_name_valid(options->producer_id, strlen(options->producer_id))) {
        return NULL;
    }
    if ((options->curve_server_key || options->curve_public_key || options->curve_secret_key) &&
        !(s_curve_key_ok(options->curve_server_key) && s_curve_key_ok(options->curve_public_key) &&
          s_curve_key_ok(options->curve_secret_key))) {
        return NULL; //  CURVE needs all three keys
    }
    if (options->name && !tern_name_valid(options->name, strlen(options->name))) {
        return NULL; //  HELLO could never be encoded
    }
    tern_client_t *self = s_alloc(sizeof *self);
    self->options = *options;
    self->options.name = NULL;
    self->options.producer_id = NULL;
    self->options.curve_server_key = NULL;
    self->options.curve_public_key = NULL;
    self->options.curve_secret_key = NULL;
    if (options->curve_server_key) {
        memcpy(self->curve_server, options->curve_server_key, TERN_CURVE_KEY_LEN);
        memcpy(self->curve_public, options->curve_public_key, TERN_CURVE_KEY_LEN);
        memcpy(self->curve_secret, options->curve_secret_key, TERN_CURVE_KEY_LEN);
    }
    if (self->options.heartbeat_ms == 0) {
        self->options.heartbeat_ms = TERN_DEFAULT_HEARTBEAT_MS;
    }
    if (self->options.connect_timeout_ms == 0) {
        self->options.connect_timeout_ms = 3000;
    }
    if (self->options.timeout_ms == 0) {
        self->options.timeout_ms = TERN_DEFAULT_TIMEOUT_MS;
    }
    self->wake_fd = -1;
    for (size_t i = 0; i < count; i++) {
        if (!endpoints[i] || !endpoints[i][0]) {
            goto fail;
        }
        self->endpoints[i] = strdup(endpoints[i]);
        if (!self->endpoints[i]) {
            goto fail;
        }
        self->endpoint_count++;
    }
    self->rng = tern_rand_seed();
    if (options->producer_id) {
        snprintf(self->producer, sizeof self->producer, "%s", options->producer_id);
    } else {
        snprintf(self->producer, sizeof self->producer, "p-%016llx",
                 (unsigned long long)tern_rand_next(&self->rng));
    }
    //  Keep our own copy: the option string is only borrowed.
    self->options.name = strdup(options->name ? options->name : "libtern");
    if (!self->options.name) {
        goto fail;
    }
    self->next_seq = options->producer_seq_start ? options->producer_seq_start : 1;
    self->max_payload = TERN_PAYLOAD_MAX;
    atomic_init(&self->next_req, 1);
    self->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (self->wake_fd < 0) {
        goto fail;
    }
    self->ctx = zmq_ctx_new();
    if (!self->ctx) {
        goto fail;
    }
    pthread_mutex_init(&self->mutex, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&self->cond, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&self->thread, NULL, s_io_thread, self) != 0) {
        pthread_cond_destroy(&self->cond);
        pthread_mutex_destroy(&self->mutex);
        goto fail;
    }
    return self;
fail:
    if (self->ctx) {
        zmq_ctx_term(self->ctx);
    }
    if (self->wake_fd >= 0) {
        close(self->wake_fd);
    }
    for (size_t i = 0; i < self->endpoint_count; i++) {
        free(self->endpoints[i]);
    }
    free((char *)self->options.name);
    free(self);
    return NULL;
}

tern_client_t *tern_client_new(const char *endpoints, const tern_client_options_t *options) {
    if (!endpoints) {
        endpoints = TERN_DEFAULT_ENDPOINT;
    }
    char *copy = strdup(endpoints);
    if (!copy) {
        return NULL;
    }
    const char *list[TERN_MAX_ENDPOINTS];
    size_t count = 0;
    char *save = NULL;
    for (char *token = strtok_r(copy, ", \t", &save); token;
         token = strtok_r(NULL, ", \t", &save)) {
        if (count == TERN_MAX_ENDPOINTS) {
            free(copy);
            return NULL;
        }
        list[count++] = token;
    }
    tern_client_t *self = count ? tern_client_new_array(list, count, options) : NULL;
    free(copy);
    return self;
}

void tern_client_destroy(tern_client_t **self_p) {
    if (!self_p || !*self_p) {
        return;
    }
    tern_client_t *self = *self_p;
    *self_p = NULL;
    pthread_mutex_lock(&self->mutex);
    self->closing = true;
    s_op_t *op = s_alloc(sizeof *op);
    op->type = OP_CLOSE;
    s_push_op(self, op);
    pthread_mutex_unlock(&self->mutex);
    pthread_join(self->thread, NULL);
    zmq_ctx_term(self->ctx);
    close(self->wake_fd);
    while (self->subs) {
        tern_subscription_t *sub = self->subs;
        self->subs = sub->next;
        while (sub->head) {
            tern_message_t *msg = sub->head;
            sub->head = msg->next;
            tern_message_destroy(&msg);
        }
        if (sub->waiter) {
            free(sub->waiter);
        }
        pthread_cond_destroy(&sub->cond);
        free(sub);
    }
    for (size_t i = 0; i < self->endpoint_count; i++) {
        free(self->endpoints[i]);
    }
    pthread_cond_destroy(&self->cond);
    pthread_mutex_destroy(&self->mutex);
    free((char *)self->options.name);
    free(self);
}

tern_err_t tern_client_wait_connected(tern_client_t *self, int timeout_ms) {
    if (!self) {
        return TERN_EINVAL;
    }
    if (s_on_io_thread(self)) {
        return TERN_ESTATE;
    }
    struct timespec deadline = s_abs_deadline(timeout_ms < 0 ? 0 : timeout_ms);
    tern_err_t rc = TERN_OK;
    pthread_mutex_lock(&self->mutex);
    while (!self->ready) {
        if (self->stopped || self->closing) {
            rc = TERN_ECLOSED;
            break;
        }
        if (!s_wait(&self->cond, &self->mutex, timeout_ms, &deadline)) {
            rc = self->hello_error ? self->hello_error : TERN_ETIMEOUT;
            break;
        }
    }
    pthread_mutex_unlock(&self->mutex);
    return rc;
}

bool tern_client_connected(tern_client_t *self) {
    pthread_mutex_lock(&self->mutex);
    bool ready = self->ready;
    pthread_mutex_unlock(&self->mutex);
    return ready;
}

tern_err_t tern_client_session(tern_client_t *self, uint32_t *node_id, char *dc, size_t dc_size,
                               char *endpoint, size_t endpoint_size) {
    pthread_mutex_lock(&self->mutex);
    tern_err_t rc = self->gen ? TERN_OK : TERN_ESTATE;
    if (node_id) {
        *node_id = self->node_id;
    }
    if (dc && dc_size) {
        snprintf(dc, dc_size, "%s", self->dc);
    }
    if (endpoint && endpoint_size) {
        snprintf(endpoint, endpoint_size, "%s", self->endpoints[self->endpoint_index]);
    }
    pthread_mutex_unlock(&self->mutex);
    return rc;
}

const char *tern_client_producer(tern_client_t *self) {
    return self->producer;
}

size_t tern_client_inflight(tern_client_t *self) {
    pthread_mutex_lock(&self->mutex);
    size_t inflight = self->inflight;
    pthread_mutex_unlock(&self->mutex);
    return inflight;
}

//  ---------------------------------------------------------------------------
//  Publishing

static tern_err_t s_build_publish(tern_client_t *self, const tern_pub_options_t *msg,
                                  uint64_t producer_seq, s_pub_t *pub) {
    tern_frame_t frame;
    tern_frame_init(&frame, TERN_CMD_PUBLISH);
    frame.req_id = pub->req_id;
    size_t topic_len = strlen(msg->topic);
    if (!tern_topic_valid(msg->topic, topic_len)) {
        return TERN_ETOPIC;
    }
    memcpy(frame.topic, msg->topic, topic_len + 1);
    frame.fields |= TERN_F_TOPIC;
    if (self->options.idempotent || msg->producer_seq) {
        memcpy(frame.producer, self->producer, sizeof frame.producer);
        frame.producer_seq = producer_seq;
        frame.fields |= TERN_F_PRODUCER;
    }
    frame.priority = (uint8_t)msg->priority;
    frame.fields |= TERN_F_PRIORITY;
    if (msg->ttl_ms) {
        frame.ttl_ms = msg->ttl_ms;
        frame.fields |= TERN_F_TTL;
    } else if (msg->ttl_class) {
        frame.ttl_class = (uint8_t)msg->ttl_class;
    }
    if (msg->key && msg->key[0]) {
        if (strlen(msg->key) > TERN_KEY_MAX) {
            return TERN_ETOOBIG;
        }
        snprintf(frame.key, sizeof frame.key, "%s", msg->key);
        frame.fields |= TERN_F_KEY;
    }
    if (msg->trace_id && msg->trace_id[0]) {
        if (!tern_trace_valid(msg->trace_id, strlen(msg->trace_id))) {
            return TERN_ETRACE;
        }
        snprintf(frame.trace_id, sizeof frame.trace_id, "%s", msg->trace_id);
        frame.fields |= TERN_F_TRACE;
    }
    if (msg->header_count) {
        tern_kv_t kv[TERN_META_MAX_ENTRIES];
        for (size_t i = 0; i < msg->header_count; i++) {
            if (!msg->headers[i].key || !msg->headers[i].value) {
                return TERN_EINVAL;
            }
            kv[i] = (tern_kv_t){msg->headers[i].key, strlen(msg->headers[i].key),
                                msg->headers[i].value, strlen(msg->headers[i].value)};
        }
        size_t meta_len;
        tern_err_t rc = tern_meta_encode(kv, msg->header_count, tl_meta, sizeof tl_meta, &meta_len);
        if (rc != TERN_OK) {
            return rc;
        }
        frame.meta = tl_meta;
        frame.meta_size = meta_len;
        frame.meta_count = (uint32_t)msg->header_count;
        frame.fields |= TERN_F_META;
    }
    //  The payload travels as its own frame, checked against the broker's
    //  max_payload by the caller, so the codec does not see it.
    return s_encode(&frame, &pub->hdr, &pub->hdr_len);
}

tern_err_t tern_publish_async(tern_client_t *self, const tern_pub_options_t *msg, tern_pub_fn *fn,
                              void *arg) {
    if (!self || !msg || !msg->topic || (!msg->payload && msg->size) || msg->priority < 0 ||
        msg->priority > TERN_PRIORITY_MAX || msg->ttl_class < 0 ||
        msg->ttl_class > TERN_CLASS_SYNC || msg->header_count > TERN_META_MAX_ENTRIES ||
        (msg->header_count && !msg->headers)) {
        return TERN_EINVAL;
    }
    pthread_mutex_lock(&self->mutex);
    uint32_t max_payload = self->max_payload;
    pthread_mutex_unlock(&self->mutex);
    if (msg->size > max_payload) {
        return TERN_ETOOBIG;
    }
    s_pub_t *pub = s_alloc(sizeof *pub);
    pub->req_id = atomic_fetch_add(&self->next_req, 1);
    pub->fn = fn;
    pub->arg = arg;

    //  Reserve a window slot and a producer_seq, in call order.
    int block_ms = self->options.publish_block_ms;
    if (block_ms != 0 && s_on_io_thread(self)) {
        block_ms = 0;
    }
    struct timespec deadline = s_abs_deadline(block_ms < 0 ? 0 : block_ms);
    tern_err_t rc = TERN_OK;
    pthread_mutex_lock(&self->mutex);
    while (!self->closing && self->inflight >= self->options.window) {
        if (block_ms == 0 || !s_wait(&self->cond, &self->mutex, block_ms, &deadline)) {
            rc = TERN_EBUSY;
            break;
        }
    }
    if (self->closing) {
        rc = TERN_ECLOSED;
    }
    if (rc == TERN_OK) {
        pub->producer_seq = msg->producer_seq ? msg->producer_seq : self->next_seq++;
        rc = s_build_publish(self, msg, pub->producer_seq, pub);
    }
    if (rc == TERN_OK) {
        pub->payload = s_dup(msg->payload, msg->size);
        pub->size = msg->size;
        self->inflight++;
        s_op_t *op = s_alloc(sizeof *op);
        op->type = OP_PUB;
        op->pub = pub;
        s_push_op(self, op);
    }
    pthread_mutex_unlock(&self->mutex);
    if (rc != TERN_OK) {
        free(pub->hdr);
        free(pub);
    }
    return rc;
}

static void s_sync_done(const tern_pub_result_t *result, void *arg) {
    s_waiter_t *waiter = arg;
    tern_client_t *self = waiter->client;
    pthread_mutex_lock(&self->mutex);
    waiter->pub = *result;
    s_waiter_finish(self, waiter, result->code, NULL);
    pthread_mutex_unlock(&self->mutex);
}

tern_err_t tern_publish(tern_client_t *self, const tern_pub_options_t *msg, int timeout_ms,
                        tern_pub_result_t *result) {
    if (!self) {
        return TERN_EINVAL;
    }
    if (s_on_io_thread(self)) {
        return TERN_ESTATE;
    }
    timeout_ms = s_timeout(self, timeout_ms);
    s_waiter_t *waiter = s_alloc(sizeof *waiter);
    waiter->client = self;
    tern_err_t rc = tern_publish_async(self, msg, s_sync_done, waiter);
    if (rc != TERN_OK) {
        free(waiter);
        return rc;
    }
    struct timespec deadline = s_abs_deadline(timeout_ms < 0 ? 0 : timeout_ms);
    pthread_mutex_lock(&self->mutex);
    while (!waiter->done) {
        if (!s_wait(&self->cond, &self->mutex, timeout_ms, &deadline)) {
            break;
        }
    }
    if (waiter->done) {
        rc = waiter->code;
        if (result) {
            *result = waiter->pub;
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
    if (!self) {
        return TERN_EINVAL;
    }
    if (s_on_io_thread(self)) {
        return TERN_ESTATE;
    }
    struct timespec deadline = s_abs_deadline(timeout_ms < 0 ? 0 : timeout_ms);
    tern_err_t rc = TERN_OK;
    pthread_mutex_lock(&self->mutex);
    while (self->inflight > 0) {
        if (self->stopped) {
            rc = TERN_ECLOSED;
            break;
        }
        if (!s_wait(&self->cond, &self->mutex, timeout_ms, &deadline)) {
            rc = TERN_ETIMEOUT;
            break;
        }
    }
    pthread_mutex_unlock(&self->mutex);
    return rc;
}

//  ---------------------------------------------------------------------------
//  Subscribing

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
    if (!tern_pattern_valid(pattern, strlen(pattern))) {
        return TERN_ETOPIC;
    }
    const char *group = options->group ? options->group : "";
    if (group[0] && !tern_name_valid(group, strlen(group))) {
        return TERN_ENAME;
    }
    tern_subscription_t *sub = s_alloc(sizeof *sub);
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
    s_waiter_t *waiter = s_alloc(sizeof *waiter);
    sub->waiter = waiter;

    int timeout_ms = (int)self->options.timeout_ms;
    struct timespec deadline = s_abs_deadline(timeout_ms);
    tern_err_t rc;
    pthread_mutex_lock(&self->mutex);
    if (self->closing) {
        pthread_mutex_unlock(&self->mutex);
        pthread_cond_destroy(&sub->cond);
        free(waiter);
        free(sub);
        return TERN_ECLOSED;
    }
    sub->next = self->subs;
    self->subs = sub;
    s_op_t *op = s_alloc(sizeof *op);
    op->type = OP_SUB;
    op->sub = sub;
    s_push_op(self, op);
    while (!waiter->done) {
        if (!s_wait(&self->cond, &self->mutex, timeout_ms, &deadline)) {
            break;
        }
    }
    if (waiter->done) {
        rc = waiter->code;
        s_set_reason(waiter->reason);
        free(waiter);
    } else {
        //  Not done, so the I/O thread still reaches it only through
        //  sub->waiter, under the mutex we hold: unhook and free it.
        sub->waiter = NULL;
        free(waiter);
        rc = s_timeout_code(self);
    }
    if (rc != TERN_OK) {
        sub->closed = true; //  stays in the list; freed with the client
    } else {
        *sub_p = sub;
    }
    pthread_mutex_unlock(&self->mutex);
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
    struct timespec deadline = s_abs_deadline(timeout_ms < 0 ? 0 : timeout_ms);
    tern_err_t rc = TERN_OK;
    pthread_mutex_lock(&self->mutex);
    while (!sub->head) {
        if (sub->closed || self->stopped) {
            rc = TERN_ECLOSED;
            break;
        }
        if (timeout_ms == 0 || !s_wait(&sub->cond, &self->mutex, timeout_ms, &deadline)) {
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

//  Encodes and queues a frame addressed to SUB's current session. Mutex held.
static tern_err_t s_queue_sub_frame(tern_client_t *self, tern_frame_t *frame, uint64_t gen) {
    s_op_t *op = s_alloc(sizeof *op);
    tern_err_t rc = s_encode(frame, &op->hdr, &op->hdr_len);
    if (rc != TERN_OK) {
        free(op);
        return rc;
    }
    op->type = OP_FRAME;
    op->gen = gen;
    s_push_op(self, op);
    return TERN_OK;
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
    uint64_t id = sub->gen == sub->client->gen ? sub->sub_id : 0;
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
    sub->closed = true;
    while (sub->head) {
        tern_message_t *msg = sub->head;
        sub->head = msg->next;
        free(msg->headers);
        free(msg->data);
        free(msg);
    }
    sub->tail = NULL;
    sub->queued = 0;
    pthread_cond_broadcast(&sub->cond);
    pthread_mutex_unlock(&self->mutex);
    return TERN_OK;
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

//  Settles MSG with FRAME (ACK, NACK or TERM): checks that its session and
//  subscription are still current, then queues the frame.
static tern_err_t s_settle(tern_message_t *msg, tern_frame_t *frame) {
    if (!msg || !msg->sub) {
        return TERN_EINVAL;
    }
    tern_client_t *self = msg->sub->client;
    frame->req_id = atomic_fetch_add(&self->next_req, 1);
    frame->sub_id = msg->sub_id;
    frame->tag = msg->tag;
    pthread_mutex_lock(&self->mutex);
    tern_err_t rc;
    if (msg->settled) {
        rc = TERN_ESTATE;
    } else if (msg->sub->closed || self->closing || msg->gen != self->gen ||
               msg->sub->gen != msg->gen) {
        rc = TERN_ECLOSED;
    } else {
        rc = s_queue_sub_frame(self, frame, msg->gen);
        if (rc == TERN_OK) {
            msg->settled = true;
        }
    }
    pthread_mutex_unlock(&self->mutex);
    return rc;
}

tern_err_t tern_message_ack(tern_message_t *msg, bool cumulative) {
    tern_frame_t frame;
    tern_frame_init(&frame, TERN_CMD_ACK);
    if (cumulative) {
        frame.cumulative = true;
        frame.fields |= TERN_F_CUMULATIVE;
    }
    return s_settle(msg, &frame);
}

tern_err_t tern_message_nack(tern_message_t *msg, int64_t delay_ms) {
    tern_frame_t frame;
    tern_frame_init(&frame, TERN_CMD_NACK);
    if (delay_ms >= 0) {
        frame.delay_ms = delay_ms > UINT32_MAX ? UINT32_MAX : (uint32_t)delay_ms;
        frame.fields |= TERN_F_DELAY;
    }
    return s_settle(msg, &frame);
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
    return s_settle(msg, &frame);
}

void tern_message_destroy(tern_message_t **msg_p) {
    if (!msg_p || !*msg_p) {
        return;
    }
    tern_message_t *msg = *msg_p;
    *msg_p = NULL;
    free(msg->headers);
    free(msg->data);
    free(msg);
}

//  ---------------------------------------------------------------------------
//  Administration

tern_err_t tern_admin(tern_client_t *self, const char *op_name, const tern_header_t *args,
                      size_t count, char **json_out, int timeout_ms) {
    if (json_out) {
        *json_out = NULL;
    }
    s_set_reason(NULL);
    if (!self || !op_name || !json_out || (count && !args) || count > TERN_META_MAX_ENTRIES) {
        return TERN_EINVAL;
    }
    if (s_on_io_thread(self)) {
        return TERN_ESTATE;
    }
    if (!tern_name_valid(op_name, strlen(op_name))) {
        return TERN_ENAME;
    }
    timeout_ms = s_timeout(self, timeout_ms);
    tern_frame_t frame;
    tern_frame_init(&frame, TERN_CMD_ADMIN);
    frame.req_id = atomic_fetch_add(&self->next_req, 1);
    snprintf(frame.name, sizeof frame.name, "%s", op_name);
    frame.fields |= TERN_F_NAME;
    if (count) {
        tern_kv_t kv[TERN_META_MAX_ENTRIES];
        for (size_t i = 0; i < count; i++) {
            if (!args[i].key || !args[i].value) {
                return TERN_EINVAL;
            }
            kv[i] =
                (tern_kv_t){args[i].key, strlen(args[i].key), args[i].value, strlen(args[i].value)};
        }
        size_t meta_len;
        tern_err_t rc = tern_meta_encode(kv, count, tl_meta, sizeof tl_meta, &meta_len);
        if (rc != TERN_OK) {
            return rc;
        }
        frame.meta = tl_meta;
        frame.meta_size = meta_len;
        frame.meta_count = (uint32_t)count;
        frame.fields |= TERN_F_META;
    }
    s_admin_t *admin = s_alloc(sizeof *admin);
    admin->req_id = frame.req_id;
    tern_err_t rc = s_encode(&frame, &admin->hdr, &admin->hdr_len);
    if (rc != TERN_OK) {
        free(admin);
        return rc;
    }
    s_waiter_t *waiter = s_alloc(sizeof *waiter);
    admin->waiter = waiter;
    admin->deadline = timeout_ms < 0 ? INT64_MAX : s_now_ms() + timeout_ms;
    struct timespec deadline = s_abs_deadline(timeout_ms < 0 ? 0 : timeout_ms);

    pthread_mutex_lock(&self->mutex);
    if (self->closing) {
        pthread_mutex_unlock(&self->mutex);
        s_admin_free(admin);
        free(waiter);
        return TERN_ECLOSED;
    }
    s_op_t *op = s_alloc(sizeof *op);
    op->type = OP_ADMIN;
    op->admin = admin;
    s_push_op(self, op);
    while (!waiter->done) {
        if (!s_wait(&self->cond, &self->mutex, timeout_ms, &deadline)) {
            break;
        }
    }
    if (waiter->done) {
        rc = waiter->code;
        s_set_reason(waiter->reason);
        *json_out = waiter->json;
        free(waiter);
    } else {
        waiter->abandoned = true;
        rc = s_timeout_code(self);
    }
    pthread_mutex_unlock(&self->mutex);
    return rc;
}
