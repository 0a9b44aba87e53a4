/*  tern_client_int.h - what the files of libtern share: its objects, the ops queue, inline sends.

    Private to client/: nothing outside this folder includes it (the public
    API is include/tern.h). libtern is one background I/O thread that owns
    the ZeroMQ context and the DEALER socket, plus the public functions that
    any application thread calls. Those functions validate and encode their
    frame in the calling thread, then hand an owned op to the I/O thread
    through a mutex-protected queue and an eventfd that the I/O thread polls
    next to the socket; a lone publish (nothing queued or in flight) is sent
    by its caller itself, under the mutex, while the I/O thread is parked in
    its poll (io_parked: no wake-up of the I/O thread on the way out).
    Replies come back through waiters (a flag + result under the client
    mutex, signalled on the client condition variable) or through callbacks
    run on the I/O thread. The publish window, the pending admin requests
    and the socket are touched only by the I/O thread (or by a publishing
    caller holding the mutex while it is parked); subscriptions are shared
    and guarded by the mutex.

    Files (docs/client.md, "Inside libtern"):
        tern_client.c           options, create/destroy, waiting, session queries
        tern_client_endpoint.c  endpoint syntax, the "nothing listens" probe
        tern_client_io.c        the I/O thread: its loop, ops, frame dispatch, shutdown
        tern_client_session.c   the session state machine: connect, HELLO/WELCOME,
                                heartbeats, reconnect and backoff, first-contact errors
        tern_client_pub.c       publish: header templates, the window, PUBACK, resend
        tern_client_sub.c       subscriptions: SUBSCRIBE, pull queue, credit, unsubscribe
        tern_client_msg.c       deliveries: DELIVER -> tern_message_t, ack/nack/term
        tern_client_admin.c     admin requests and their replies
        tern_client_map.c       a cluster's partition map (ADMIN `cluster`), routes
        tern_client_cluster.c   cluster mode: one node session per leader, routing,
                                rerouting, subscriptions that follow leaders

    Cluster mode (docs/client.md, "Clusters"): the client the application
    holds (the root) keeps its session to a seed endpoint for admin and
    the map; each node it publishes to or subscribes on gets a node session,
    itself a tern_client_t (root set, no cluster thread) with its own I/O
    thread and DEALER in the root's ZeroMQ context. Lock order: a root's mutex before a node
   session's, never the other way round.

    Naming: cl_<verb> functions are shared between the files of client/ and
    declared here; each file's own helpers stay static s_<verb>; the inline
    helpers below keep s_ names (each file gets its own static copy) and are
    inline because they sit on the per-message path, where a call across
    files would cost what the split is not meant to. Everything declared
    here is hidden: libtern.so exports tern.h's functions only.
*/
#ifndef TERN_CLIENT_INT_H_INCLUDED
#define TERN_CLIENT_INT_H_INCLUDED

#include "tern.h"
#include "tern_alloc.h"
#include "tern_backoff.h"
#include "tern_client_map.h"
#include "tern_proto.h"
#include "tern_template.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#pragma GCC visibility push(hidden)

#define TERN_MAX_ENDPOINTS 32
#define TERN_DRAIN_MAX     1024
#define CL_LOST_REASON     "node session lost" /* OP_ABANDON's: route again, not a refusal */
/* An admin request sent in a session that was lost before its answer. */
#define CL_ADMIN_UNKNOWN                                                                           \
    "the session was lost after the request was sent: the outcome is unknown; check before "       \
    "retrying"

//  Per-thread scratch (tern_client.c): the reason tern_last_reason returns,
//  a header being encoded, a metadata map being encoded.
extern _Thread_local char tl_reason[TERN_REASON_MAX + 1];
extern _Thread_local uint8_t tl_header[TERN_HEADER_MAX];
extern _Thread_local uint8_t tl_meta[TERN_HEADER_MAX];

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
} cl_waiter_t;

typedef enum { OP_PUB, OP_FRAME, OP_SUB, OP_ADMIN, OP_CLOSE, OP_MODE, OP_ABANDON } cl_op_type_t;

//  What the first session's ADMIN `cluster` said (tern_client_cluster.c).
typedef enum { CL_MODE_UNKNOWN, CL_MODE_SINGLE, CL_MODE_CLUSTER } cl_mode_t;

typedef struct _cl_cluster_t cl_cluster_t; //  cluster mode state (tern_client_cluster.c)
typedef struct _cl_att_t cl_att_t;         //  a subscription's attachment to one node

//  A request from an application thread to the I/O thread: the first member
//  of the struct it heads, which TYPE names (cl_pub_t, cl_frame_op_t,
//  cl_sub_op_t, cl_admin_t; a bare cl_op_t for OP_CLOSE), so queueing a
//  request allocates nothing more.
typedef struct _cl_op_t {
    struct _cl_op_t *next; //  queue link
    cl_op_type_t type;     //  what to do
} cl_op_t;

//  One publish in the window. Owned by the I/O thread once queued; recycled
//  through the client's free list once completed.
typedef struct _cl_pub_t {
    cl_op_t op;             //  queue link to the I/O thread (first member)
    struct _cl_pub_t *next; //  window list, send order; free list link
    struct _cl_pub_t *prev; //  window list
    uint64_t req_id;        //  request id (kept across sessions)
    uint64_t producer_seq;  //  dedup sequence it carries
    zmq_msg_t hdr;          //  encoded header, owned; every send shares it
    zmq_msg_t payload;      //  payload copy, owned; every send shares it
    uint64_t sent_gen;      //  session generation it was last sent in; 0 never
    tern_pub_fn *fn;        //  completion callback or NULL
    void *arg;              //  its argument
} cl_pub_t;

//  OP_FRAME: one encoded frame (ACK, NACK, TERM, CREDIT, UNSUBSCRIBE) for
//  the session it was made in, in one allocation.
typedef struct {
    cl_op_t op;     //  queue link (first member)
    uint64_t gen;   //  send only in this session
    size_t hdr_len; //  size of hdr
    uint8_t hdr[];  //  encoded header
} cl_frame_op_t;

//  OP_MODE: the client's mode is known (a bare cl_op_t for OP_ABANDON).
typedef struct {
    cl_op_t op;     //  queue link (first member)
    cl_mode_t mode; //  single node or cluster
} cl_mode_op_t;

//  OP_SUB: send SUBSCRIBE for a subscription.
typedef struct {
    cl_op_t op;               //  queue link (first member)
    tern_subscription_t *sub; //  borrowed (client owns subs)
} cl_sub_op_t;

//  One pending admin request. Owned by the I/O thread once queued.
typedef struct _cl_admin_t {
    cl_op_t op;               //  queue link to the I/O thread (first member)
    struct _cl_admin_t *next; //  pending list
    uint64_t req_id;          //  request id
    uint8_t *hdr;             //  encoded ADMIN header, owned
    size_t hdr_len;           //  its size
    uint64_t sent_gen;        //  session it was sent in; 0 never
    bool once;                //  not idempotent: never sent in a second session
    int64_t deadline;         //  monotonic ms after which it is dropped
    cl_waiter_t *waiter;      //  the caller
} cl_admin_t;

struct _tern_message_t {
    tern_message_t *next;     //  pull queue link
    tern_subscription_t *sub; //  borrowed; lives until the client dies
    uint64_t gen;             //  session that delivered it
    uint64_t sub_id;          //  subscription id in that session
    uint64_t tag;             //  delivery tag
    bool settled;             //  acked, nacked or termed
    uint64_t msg_id;          //  snowflake id
    uint64_t seq;             //  per-topic seq
    uint64_t producer_seq;    //  dedup seq
    uint64_t timestamp_ns;    //  broker receive time
    uint64_t expire_at_ns;    //  expiry or 0
    uint32_t delivery_count;  //  1 on first delivery
    int priority;             //  0..9
    //  The message is one allocation: this struct, then the header pointer
    //  array, the payload and the strings, all NUL-terminated.
    const char *topic;    //  topic, in the block
    const char *producer; //  producer id, in the block
    const char *key;      //  ordering key, in the block
    const char *trace_id; //  traceparent, in the block
    const char *origin;   //  origin dc, in the block
    size_t header_count;  //  metadata pairs
    char **headers;       //  2 * header_count strings, in the block
    uint8_t *data;        //  payload copy (NUL-terminated), in the block
    size_t size;          //  payload size
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
    cl_waiter_t *waiter;  //  tern_subscribe waiting for the first OK
    tern_err_t error;     //  the ERROR that closed it, TERN_OK if none
    bool routed;          //  cluster mode: lives on node sessions (atts), not here
    cl_att_t *atts;       //  routed: its subscriptions on node sessions
    int64_t next_follow;  //  routed: earliest time to attach again
    tern_message_t *head; //  pull queue
    tern_message_t *tail; //  pull queue
    size_t queued;        //  pull queue length
    pthread_cond_t cond;  //  signalled on push and close
};

//  Session states (the table is at the top of tern_client_session.c).
typedef enum { S_IDLE, S_CONNECTING, S_READY } cl_state_t;

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

    pthread_mutex_t mutex;  //  guards everything below
    pthread_cond_t cond;    //  waiters, window, connection changes
    pthread_cond_t tick;    //  wakes the cluster thread (closing, a reroute)
    cl_op_t *ops_head;      //  queue to the I/O thread
    cl_op_t *ops_tail;      //  queue tail
    cl_pub_t *pub_free;     //  completed publishes for reuse (at most window)
    bool wake_pending;      //  an eventfd write is outstanding
    bool io_parked;         //  the I/O thread sleeps in its poll: a caller may use the dealer
    bool closing;           //  tern_client_destroy started
    bool stopped;           //  the I/O thread has finished
    uint64_t gen;           //  current session generation; 0 before first
    bool ready;             //  a session is up
    tern_err_t hello_error; //  last ERROR answering HELLO
    tern_err_t refusal;     //  first contact failed for good: calls fail with it; 0 = none
    char refusal_reason[TERN_REASON_MAX + 1]; //  why, naming the endpoint (written by I/O thread)
    uint32_t node_id;                         //  from WELCOME
    char dc[TERN_NAME_MAX + 1];               //  from WELCOME
    size_t endpoint_index;                    //  endpoint of the current/next attempt
    _Atomic uint32_t max_payload; //  from WELCOME (or the default); read without the lock
    size_t inflight;              //  publishes accepted, not completed
    uint64_t next_seq;            //  next producer_seq
    tern_subscription_t *subs;    //  all subscriptions, freed at destroy
    bool mode_known;              //  the probe answered (or this is a node session)
    cl_cluster_t *cluster;        //  cluster mode state once known, else NULL; owned
    tern_client_t *root;          //  a node session: the client it serves; else NULL
    pthread_t cluster_thread;     //  a root's probe and cluster thread
    bool cluster_started;         //  cluster_thread runs (root only)

    //  I/O thread only:
    void *ctx;              //  ZeroMQ context: a root's own, a node session's its root's
    void *dealer;           //  current socket or NULL
    void *monitor;          //  PAIR receiving the dealer's events
    cl_state_t state;       //  session state
    uint32_t attempt;       //  failed attempts since the last session
    int64_t next_attempt;   //  when IDLE: time of the next connect
    int64_t hello_deadline; //  when CONNECTING: give up after
    bool hello_sent;        //  HELLO went out on this socket
    uint64_t hello_req;     //  req_id of HELLO
    uint32_t broker_hb;     //  broker heartbeat interval
    uint32_t send_hb;       //  ours in this session: min(option, broker's)
    int64_t last_send;      //  last frame sent
    int64_t last_recv;      //  last frame received
    bool sent;              //  a frame went out since last_send was set
    uint8_t *cb_out;        //  frames made by callbacks this turn: (gen, len, bytes)...
    size_t cb_out_len;      //  bytes used
    size_t cb_out_cap;      //  bytes allocated, owned
    cl_pub_t *pub_done;     //  completed publishes, for pub_free at cl_inflight_done
    bool resend_needed;     //  a send hit EAGAIN; walk the window again
    bool abandoned;         //  I/O: OP_ABANDON and no WELCOME since; admins fail
    uint64_t rng;           //  jitter source
    uint64_t monitor_seq;   //  makes each monitor endpoint name unique
    size_t refused_in_row;  //  endpoints in a row that refused TCP before the first session
    bool tcp_contact;       //  some endpoint accepted a TCP connection (ever)
    cl_pub_t *win_head;     //  publish window, send order
    cl_pub_t *win_tail;     //  window tail
    cl_admin_t *admins;     //  pending admin requests
    cl_mode_t io_mode;      //  publishes wait in the window while UNKNOWN
};

//  ---------------------------------------------------------------------------
//  Inline helpers (the per-message path)

static inline int64_t s_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

//  Copies SRC (NULL: "") into DST of CAP bytes, cut to fit, NUL-terminated;
//  SRC may be DST. Not snprintf: a sync publish copied its (empty) reason
//  twice, ~500 instructions each of the client's ~19 k per publish.
static inline void s_copy_str(char *dst, size_t cap, const char *src) {
    size_t len = src ? strnlen(src, cap - 1) : 0;
    if (len) {
        memmove(dst, src, len);
    }
    dst[len] = 0;
}

static inline void s_set_reason(const char *reason) {
    s_copy_str(tl_reason, sizeof tl_reason, reason);
}

//  Initializes MSG with a copy of SIZE bytes of DATA (a message that a send
//  can share with zmq_msg_copy instead of copying it again).
static inline void s_msg_init(zmq_msg_t *msg, const void *data, size_t size) {
    if (zmq_msg_init_size(msg, size) != 0) {
        tern_oom(size);
    }
    if (size) {
        memcpy(zmq_msg_data(msg), data, size);
    }
}

//  The client whose I/O thread this is (a node session's root), or NULL.
extern _Thread_local tern_client_t *tl_io_root;
//  True while a node session's I/O thread fails its window back to its root
//  (OP_ABANDON, reason CL_LOST_REASON): those completions are no node's answer.
extern _Thread_local bool tl_session_lost;

//  True on SELF's I/O thread, or, for a root client, on one of its node
//  sessions' (where its callbacks run too).
static inline bool s_on_io_thread(tern_client_t *self) {
    return tl_io_root == self || pthread_equal(pthread_self(), self->thread);
}

//  Whether a synchronous call may wait: TERN_EINVAL without a client,
//  TERN_ESTATE on the client's own I/O thread (it would wait for itself).
static inline tern_err_t s_may_wait(tern_client_t *self) {
    if (!self) {
        return TERN_EINVAL;
    }
    return s_on_io_thread(self) ? TERN_ESTATE : TERN_OK;
}

//  Wakes the I/O thread (its eventfd), once until it takes the ops. Mutex held.
static inline void s_wake_io(tern_client_t *self) {
    if (!self->wake_pending) {
        self->wake_pending = true;
        uint64_t one = 1;
        ssize_t n = write(self->wake_fd, &one, sizeof one);
        (void)n; //  the eventfd cannot overflow with one pending write
    }
}

//  Queues OP for the I/O thread. Mutex held.
static inline void s_push_op(tern_client_t *self, cl_op_t *op) {
    op->next = NULL;
    if (self->ops_tail) {
        self->ops_tail->next = op;
    } else {
        self->ops_head = op;
    }
    self->ops_tail = op;
    s_wake_io(self);
}

//  Appends PUB to the publish window (send order). I/O thread, or a caller
//  while it is parked (s_pub_direct in tern_client_pub.c).
static inline void s_win_append(tern_client_t *self, cl_pub_t *pub) {
    pub->next = NULL;
    pub->prev = self->win_tail;
    if (self->win_tail) {
        self->win_tail->next = pub;
    } else {
        self->win_head = pub;
    }
    self->win_tail = pub;
}

//  The dealer's ZMQ_EVENTS (0 on error). Whoever holds the socket calls it
//  after using it: a send or receive may take the socket's signal (ZMQ_FD)
//  of a frame that arrived meanwhile, so the fd alone does not tell.
static inline int s_dealer_events(tern_client_t *self) {
    int events = 0;
    size_t len = sizeof events;
    if (zmq_getsockopt(self->dealer, ZMQ_EVENTS, &events, &len) != 0) {
        return 0;
    }
    return events;
}

//  Sends a header (and a payload) on the I/O thread; false if the socket
//  is gone or full.
static inline bool s_send(tern_client_t *self, const uint8_t *hdr, size_t hdr_len,
                          const void *payload, size_t size, bool has_payload) {
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
    self->sent = true; //  the I/O loop stamps last_send once per turn
    return true;
}

//  Sends a copy of MSG (which shares its buffer) with FLAGS.
static inline bool s_send_shared(tern_client_t *self, zmq_msg_t *msg, int flags) {
    zmq_msg_t copy;
    zmq_msg_init(&copy);
    zmq_msg_copy(&copy, msg);
    if (zmq_msg_send(&copy, self->dealer, flags) < 0) {
        zmq_msg_close(&copy);
        return false;
    }
    return true;
}

//  Sends PUB in the current session unless it went out in it already; a
//  full socket leaves it for the next resend. I/O thread.
static inline void s_pub_send(tern_client_t *self, cl_pub_t *pub) {
    if (self->state != S_READY || pub->sent_gen == self->gen || self->io_mode == CL_MODE_UNKNOWN) {
        return; //  (until the probe says single node: tern_client_cluster.c)
    }
    //  The pub keeps its messages for a resend: the socket gets copies
    //  that share the buffers, so nothing is copied or allocated here.
    if (self->dealer && s_send_shared(self, &pub->hdr, ZMQ_DONTWAIT | ZMQ_SNDMORE)) {
        //  The first frame is queued, so the second cannot hit the HWM.
        s_send_shared(self, &pub->payload, ZMQ_DONTWAIT);
        self->sent = true;
        pub->sent_gen = self->gen;
    } else {
        self->resend_needed = true;
    }
}

//  ---------------------------------------------------------------------------
//  tern_client.c: waiting and waiters

//  CLOCK_MONOTONIC TIMEOUT_MS (>= 0) from now, for cl_wait.
struct timespec cl_abs_deadline(int timeout_ms);
//  Waits on COND (mutex held) until DEADLINE, or for good if TIMEOUT_MS < 0;
//  returns false on timeout.
bool cl_wait(pthread_cond_t *cond, pthread_mutex_t *mutex, int timeout_ms,
             const struct timespec *deadline);
//  Waits (mutex held) until the I/O thread finishes WAITER or the deadline
//  passes; returns waiter->done.
bool cl_wait_done(tern_client_t *self, cl_waiter_t *waiter, int timeout_ms,
                  const struct timespec *deadline);
//  TIMEOUT_MS, or the client's default timeout for 0.
int cl_timeout(tern_client_t *self, int timeout_ms);
//  What a synchronous call that ran out of time reports. Mutex held.
tern_err_t cl_timeout_code(tern_client_t *self);
//  TERN_ECLOSED while the client closes, the standing first-contact
//  refusal (with its reason set), else TERN_OK. Mutex held.
tern_err_t cl_unavailable(tern_client_t *self);
//  Completes WAITER from the I/O thread. Mutex held; frees abandoned ones.
void cl_waiter_finish(tern_client_t *self, cl_waiter_t *waiter, tern_err_t code,
                      const char *reason);

//  Creates a client as tern_client_new_array does, without starting its
//  cluster thread when ROOT is set: a node session of ROOT, whose request
//  ids start at REQ_BASE. Caller owns the result.
tern_client_t *cl_client_new(const char *const *endpoints, size_t count,
                             const tern_client_options_t *options, tern_client_t *root,
                             uint64_t req_base);

//  The mode is known: wakes subscribers waiting for it and tells the I/O
//  thread (OP_MODE). Mutex held.
void cl_mode_known(tern_client_t *self, cl_mode_t mode);

//  tern_client_endpoint.c
//  The "HOST:PORT" part of a tcp:// ENDPOINT, or NULL for another transport.
const char *cl_tcp_address(const char *endpoint);
//  Checks ENDPOINT's syntax as zmq_connect would; false with the reason in WHY.
bool cl_endpoint_valid(const char *endpoint, char *why, size_t why_size);
//  True if a plain TCP connect to ENDPOINT is refused (waits up to 500 ms).
bool cl_tcp_refused(const char *endpoint);

//  tern_client_io.c
//  The I/O thread (pthread start routine; ARG is the client).
void *cl_io_thread(void *arg);

//  tern_client_session.c (I/O thread)
//  Closes the DEALER and its monitor; with FLUSH, what the socket holds
//  still goes out for up to its linger (a BYE), else it is dropped.
void cl_close_socket(tern_client_t *self, bool flush);
//  The session ended: close the socket, back off, try the next endpoint.
void cl_session_lost(tern_client_t *self);
//  Sends a frame of command CMD with no fields (HEARTBEAT, BYE).
void cl_send_simple(tern_client_t *self, tern_cmd_t cmd);
void cl_try_hello(tern_client_t *self);
void cl_handle_welcome(tern_client_t *self, const tern_frame_t *frame);
//  An ERROR while connecting: the broker refused our HELLO.
void cl_handle_hello_error(tern_client_t *self, const tern_frame_t *frame);
//  An ERROR that ends the session (ESTATE, or EDENIED with no request):
//  handles it and returns true; false for anything else.
bool cl_handle_session_error(tern_client_t *self, const tern_frame_t *frame);
void cl_handle_monitor(tern_client_t *self);
//  While a refusal stands, fails everything waiting for a session with it.
void cl_fail_pending(tern_client_t *self);
//  Connects, times out HELLO, sends heartbeats, notices a silent broker.
void cl_session_timers(tern_client_t *self, int64_t now);
//  Sends everything that has not gone out in this session, in order.
void cl_resend_all(tern_client_t *self);

//  tern_client_pub.c (I/O thread)
void cl_handle_puback(tern_client_t *self, const tern_frame_t *frame);
//  An ERROR answering a publish: completes it and returns true.
bool cl_handle_pub_error(tern_client_t *self, const tern_frame_t *frame);
//  Completes every publish in the window with CODE and REASON.
void cl_win_fail(tern_client_t *self, tern_err_t code, const char *reason);
//  Replaces *HDR, an encoded PUBLISH header, by the same with `rs` true (a
//  resend: docs/protocol.md, "Producer order"). False, *HDR unchanged, if it
//  cannot be read (it was encoded here: never). Any thread.
bool cl_pub_mark_resend(zmq_msg_t *hdr);

//  tern_client_sub.c (I/O thread unless noted)
//  Sends SUBSCRIBE for SUB in the current session. Mutex held.
void cl_send_subscribe(tern_client_t *self, tern_subscription_t *sub);
void cl_handle_ok(tern_client_t *self, const tern_frame_t *frame);
//  An ERROR answering a SUBSCRIBE: the subscription fails.
void cl_handle_sub_error(tern_client_t *self, const tern_frame_t *frame);
//  Completes every subscription's first-OK waiter with CODE and REASON;
//  with CLOSE also closes them all. Mutex held.
void cl_subs_fail(tern_client_t *self, tern_err_t code, const char *reason, bool close);
//  Frees SUB, its queued messages and its waiter (tern_client_destroy).
void cl_sub_free(tern_subscription_t *sub);
//  A subscription of node session CLIENT like LIKE (pattern, group,
//  options, last_seq) delivering to FN(ARG), linked and its SUBSCRIBE
//  queued; nobody waits for its OK. Borrowed; CLIENT owns it.
tern_subscription_t *cl_sub_attach(tern_client_t *client, const tern_subscription_t *like,
                                   tern_msg_fn *fn, void *arg);

//  tern_client_msg.c
void cl_handle_deliver(tern_client_t *self, const tern_frame_t *frame);
//  Hands MSG to SUB: its callback, or its pull queue (waking the reader).
//  Mutex of SELF, SUB's client, held; released.
void cl_sub_hand(tern_client_t *self, tern_subscription_t *sub, tern_message_t *msg);
//  Queues the frame encoded in tl_header (LEN bytes) for session GEN; from a
//  callback, keeps it for the end of the I/O loop's turn. Mutex held.
void cl_queue_frame(tern_client_t *self, size_t len, uint64_t gen);
//  Sends what callbacks queued this turn (I/O thread).
void cl_flush_cb_out(tern_client_t *self);

//  tern_client_admin.c (I/O thread)
void cl_send_admin(tern_client_t *self, cl_admin_t *admin);
void cl_handle_reply(tern_client_t *self, const tern_frame_t *frame);
//  An ERROR answering an admin request: completes it and returns true.
bool cl_handle_admin_error(tern_client_t *self, const tern_frame_t *frame);
//  Completes every pending admin request with CODE and REASON. Mutex held.
void cl_admins_fail(tern_client_t *self, tern_err_t code, const char *reason);
//  Drops the requests whose caller gave up, once past their deadline.
void cl_admins_expire(tern_client_t *self, int64_t now);
//  The session was lost: a sent request that must not run twice (on a
//  node session, every sent one: tern_admin routes reads again) fails with
//  TERN_ETIMEOUT, CL_ADMIN_UNKNOWN; the rest wait to be sent again.
//  Mutex held.
void cl_admins_lost(tern_client_t *self);
//  A node session was abandoned (OP_ABANDON): every request fails, a sent
//  one with TERN_ETIMEOUT, CL_ADMIN_UNKNOWN, one never sent with
//  TERN_ENOTLEADER, CL_LOST_REASON (the caller routes it again).
void cl_admins_abandon(tern_client_t *self);

//  tern_client_cluster.c
//  The probe, then in cluster mode the map refreshes and the following
//  (pthread start routine of a root client; ARG is the client).
void *cl_cluster_thread(void *arg);
//  Routes PUB (just made, for TOPIC) to its partition's leader; PUB goes
//  back to the free list. Mutex held.
void cl_cluster_publish(tern_client_t *self, const char *topic, cl_pub_t *pub);
//  OP_MODE cluster: hands the publishes waiting in the window to routing.
void cl_cluster_take_window(tern_client_t *self);
//  Subscribes SUB (new, routed) on the nodes it needs and waits for the
//  first OK, as tern_subscribe does. Mutex held.
tern_err_t cl_cluster_subscribe(tern_client_t *self, tern_subscription_t *sub);
//  Ends SUB's subscriptions on node sessions. Mutex held.
void cl_cluster_unsubscribe(tern_subscription_t *sub);
//  CREDIT N on every node SUB is on. Mutex held.
tern_err_t cl_cluster_credit(tern_subscription_t *sub, uint32_t n);
//  The sub_id of SUB on its first node, 0 if none. Mutex held.
uint64_t cl_cluster_sub_id(tern_subscription_t *sub);
//  Waits until the first session said whether this is a cluster, at most
//  TIMEOUT_MS (< 0: no limit). TERN_OK, a standing refusal, TERN_ECLOSED
//  or the timeout's code. Mutex held.
tern_err_t cl_mode_wait(tern_client_t *self, int timeout_ms);
//  Cluster mode: the current map, or NULL on a single node. Borrowed;
//  valid while the mutex is held. Mutex held.
cl_map_t *cl_cluster_map(tern_client_t *self);
//  Cluster mode: node NODE_ID's session (opened now if needed), or NULL
//  when the map does not know the node or its session is lost. Borrowed;
//  valid until the client is destroyed. Mutex held.
tern_client_t *cl_cluster_session(tern_client_t *self, uint32_t node_id);
//  Cluster mode: asks the cluster thread for a map refresh (within its
//  backoff). Mutex held.
void cl_cluster_refresh_soon(tern_client_t *self);
//  After the I/O and cluster threads stopped: closes the node sessions
//  (their publishes complete with TERN_ECLOSED) and frees the state.
void cl_cluster_destroy(tern_client_t *self);

#pragma GCC visibility pop

#endif
