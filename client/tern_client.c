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

    Cost per message (the client shares the machine's cores with brokers):
    a publish copies its payload once, into a zmq_msg_t that every send
    shares through zmq_msg_copy (so it stays for a resend); its header comes
    from a per-thread template when the topic and options repeat (see "Header
    templates"); the s_pub_t is itself the queued op and is recycled through
    a free list; one lock per publish. A delivered message is one allocation
    (struct, strings, headers, payload); an ack from a callback is encoded
    from a template and sent at once by the I/O thread, with no op and no
    wake-up. Clock reads are one per I/O loop turn, not one per frame.
*/
#include "tern_alloc.h"
#include "tern.h"
#include "tern_backoff.h"
#include "tern_proto.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define TERN_MAX_ENDPOINTS 32
#define TERN_DRAIN_MAX     1024

//  ---------------------------------------------------------------------------
//  Small helpers

//  Initializes MSG with a copy of SIZE bytes of DATA (a message that a send
//  can share with zmq_msg_copy instead of copying it again).
static void s_msg_init(zmq_msg_t *msg, const void *data, size_t size) {
    if (zmq_msg_init_size(msg, size) != 0) {
        tern_oom(size);
    }
    if (size) {
        memcpy(zmq_msg_data(msg), data, size);
    }
}

static void *s_dup(const void *src, size_t size) {
    void *p = tern_alloc(size + 1);
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

//  Two steps, so that the macros expand before # turns them into text.
#define S_TEXT(x)    #x
#define S_VERSION(x) S_TEXT(x)

const char *tern_version(int *major, int *minor, int *patch) {
    if (major) {
        *major = TERN_VERSION_MAJOR;
    }
    if (minor) {
        *minor = TERN_VERSION_MINOR;
    }
    if (patch) {
        *patch = TERN_VERSION_PATCH;
    }
    return S_VERSION(TERN_VERSION_MAJOR) "." S_VERSION(TERN_VERSION_MINOR) "." S_VERSION(
        TERN_VERSION_PATCH);
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

typedef enum { OP_PUB, OP_FRAME, OP_SUB, OP_ADMIN, OP_CLOSE } s_op_type_t;

//  A request from an application thread to the I/O thread: the first member
//  of the struct it heads, which TYPE names (s_pub_t, s_frame_op_t,
//  s_sub_op_t, s_admin_t; a bare s_op_t for OP_CLOSE), so queueing a request
//  allocates nothing more.
typedef struct _s_op_t {
    struct _s_op_t *next; //  queue link
    s_op_type_t type;     //  what to do
} s_op_t;

//  One publish in the window. Owned by the I/O thread once queued; recycled
//  through the client's free list once completed.
typedef struct _s_pub_t {
    s_op_t op;             //  queue link to the I/O thread (first member)
    struct _s_pub_t *next; //  window list, send order; free list link
    struct _s_pub_t *prev; //  window list
    uint64_t req_id;       //  request id (kept across sessions)
    uint64_t producer_seq; //  dedup sequence it carries
    zmq_msg_t hdr;         //  encoded header, owned; every send shares it
    zmq_msg_t payload;     //  payload copy, owned; every send shares it
    uint64_t sent_gen;     //  session generation it was last sent in; 0 never
    tern_pub_fn *fn;       //  completion callback or NULL
    void *arg;             //  its argument
} s_pub_t;

//  OP_FRAME: one encoded frame (ACK, NACK, TERM, CREDIT, UNSUBSCRIBE) for
//  the session it was made in, in one allocation.
typedef struct {
    s_op_t op;      //  queue link (first member)
    uint64_t gen;   //  send only in this session
    size_t hdr_len; //  size of hdr
    uint8_t hdr[];  //  encoded header
} s_frame_op_t;

//  OP_SUB: send SUBSCRIBE for a subscription.
typedef struct {
    s_op_t op;                //  queue link (first member)
    tern_subscription_t *sub; //  borrowed (client owns subs)
} s_sub_op_t;

//  One pending admin request. Owned by the I/O thread once queued.
typedef struct _s_admin_t {
    s_op_t op;               //  queue link to the I/O thread (first member)
    struct _s_admin_t *next; //  pending list
    uint64_t req_id;         //  request id
    uint8_t *hdr;            //  encoded ADMIN header, owned
    size_t hdr_len;          //  its size
    uint64_t sent_gen;       //  session it was sent in; 0 never
    int64_t deadline;        //  monotonic ms after which it is dropped
    s_waiter_t *waiter;      //  the caller
} s_admin_t;

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

    pthread_mutex_t mutex;  //  guards everything below
    pthread_cond_t cond;    //  waiters, window, connection changes
    s_op_t *ops_head;       //  queue to the I/O thread
    s_op_t *ops_tail;       //  queue tail
    s_pub_t *pub_free;      //  completed publishes for reuse (at most window)
    bool wake_pending;      //  an eventfd write is outstanding
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
    bool sent;              //  a frame went out since last_send was set
    uint8_t *cb_out;        //  frames made by callbacks this turn: (gen, len, bytes)...
    size_t cb_out_len;      //  bytes used
    size_t cb_out_cap;      //  bytes allocated, owned
    s_pub_t *pub_done;      //  completed publishes, for pub_free at s_inflight_done
    bool resend_needed;     //  a send hit EAGAIN; walk the window again
    uint64_t rng;           //  jitter source
    uint64_t monitor_seq;   //  makes each monitor endpoint name unique
    size_t refused_in_row;  //  endpoints in a row that refused TCP before the first session
    bool tcp_contact;       //  some endpoint accepted a TCP connection (ever)
    s_pub_t *win_head;      //  publish window, send order
    s_pub_t *win_tail;      //  window tail
    s_admin_t *admins;      //  pending admin requests
};

//  ---------------------------------------------------------------------------
//  Endpoints

//  The "HOST:PORT" part of a tcp:// ENDPOINT (after a "SOURCE;" prefix), or
//  NULL for another transport.
static const char *s_tcp_address(const char *endpoint) {
    if (strncmp(endpoint, "tcp://", 6) != 0) {
        return NULL;
    }
    const char *semi = strchr(endpoint + 6, ';');
    return semi ? semi + 1 : endpoint + 6;
}

//  Splits a tcp "HOST:PORT" (HOST may be "[v6]") into HOST and PORT.
static bool s_host_port(const char *address, char *host, size_t host_size, char *port,
                        size_t port_size) {
    const char *colon = strrchr(address, ':');
    if (!colon || colon == address || !colon[1]) {
        return false;
    }
    const char *start = address;
    size_t len = (size_t)(colon - address);
    if (start[0] == '[' && len >= 2 && start[len - 1] == ']') {
        start++;
        len -= 2;
    }
    if (len == 0 || len >= host_size || strlen(colon + 1) >= port_size) {
        return false;
    }
    memcpy(host, start, len);
    host[len] = 0;
    snprintf(port, port_size, "%s", colon + 1);
    return true;
}

//  Checks the syntax of ENDPOINT as zmq_connect would, before any thread
//  runs, so a typo is reported by tern_client_new rather than retried
//  forever. Returns true, or false with the reason in WHY.
static bool s_endpoint_valid(const char *endpoint, char *why, size_t why_size) {
    static const char *const hint = "expected tcp://HOST:PORT";
    const char *address = s_tcp_address(endpoint);
    if (!address) {
        const char *sep = strstr(endpoint, "://");
        bool other =
            sep && sep[3] &&
            (strncmp(endpoint, "ipc://", 6) == 0 || strncmp(endpoint, "inproc://", 9) == 0);
        if (!other) {
            snprintf(why, why_size, "invalid endpoint '%.100s': %s%s", endpoint,
                     sep ? "unknown transport, " : "", hint);
        }
        return other;
    }
    char host[256], port[16];
    if (!s_host_port(address, host, sizeof host, port, sizeof port)) {
        snprintf(why, why_size, "invalid endpoint '%.100s': no port, %s", endpoint, hint);
        return false;
    }
    char *end = NULL;
    unsigned long number = strtoul(port, &end, 10);
    if (port[0] < '0' || port[0] > '9' || *end || number == 0 || number > 65535) {
        snprintf(why, why_size, "invalid endpoint '%.100s': port '%s' is not 1..65535", endpoint,
                 port);
        return false;
    }
    for (const char *c = host; *c; c++) {
        if (!(isalnum((unsigned char)*c) || strchr(".-_:%*", *c))) {
            snprintf(why, why_size, "invalid endpoint '%.100s': bad host '%.80s', %s", endpoint,
                     host, hint);
            return false;
        }
    }
    return true;
}

//  True if a plain TCP connect to ENDPOINT is refused (every address of its
//  host answers with a reset). libzmq's monitor says only that a connect
//  failed, not why, and "nothing listens" is the one failure worth telling
//  at once; this asks the kernel. Runs on the I/O thread, after a failed
//  connect before the first session; waits at most 500 ms.
static bool s_tcp_refused(const char *endpoint) {
    const char *address = s_tcp_address(endpoint);
    char host[256], port[16];
    if (!address || !s_host_port(address, host, sizeof host, port, sizeof port)) {
        return false;
    }
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *list = NULL;
    if (getaddrinfo(host, port, &hints, &list) != 0) {
        return false;
    }
    bool refused = list != NULL;
    for (struct addrinfo *ai = list; ai && refused; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            refused = false;
            break;
        }
        int err = connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ? 0 : errno;
        if (err == EINPROGRESS) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            socklen_t len = sizeof err;
            if (poll(&pfd, 1, 500) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
                err = ETIMEDOUT;
            }
        }
        close(fd);
        refused = err == ECONNREFUSED;
    }
    freeaddrinfo(list);
    return refused;
}

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
    op->next = NULL;
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
    self->sent = true; //  the I/O loop stamps last_send once per turn
    return true;
}

//  Sends a copy of MSG (which shares its buffer) with FLAGS.
static bool s_send_shared(tern_client_t *self, zmq_msg_t *msg, int flags) {
    zmq_msg_t copy;
    zmq_msg_init(&copy);
    zmq_msg_copy(&copy, msg);
    if (zmq_msg_send(&copy, self->dealer, flags) < 0) {
        zmq_msg_close(&copy);
        return false;
    }
    return true;
}

//  Records NOW as the time of the last send if anything went out since the
//  last call: one clock read per turn of the I/O loop, not one per frame.
static void s_stamp_send(tern_client_t *self, int64_t now) {
    if (self->sent) {
        self->sent = false;
        self->last_send = now;
    }
}

//  Sends the frames callbacks made (see s_queue_encoded) that are still for
//  the current session, in order.
static void s_flush_cb_out(tern_client_t *self) {
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
                           ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED |
                               ZMQ_EVENT_CONNECT_RETRIED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) == 0) {
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

//  PUBACKs come in send order, so the head matches at once in the usual case.
static s_pub_t *s_win_find(tern_client_t *self, uint64_t req_id) {
    for (s_pub_t *pub = self->win_head; pub; pub = pub->next) {
        if (pub->req_id == req_id) {
            return pub;
        }
    }
    return NULL;
}

//  Completes PUB: runs its callback, frees its messages and keeps it on
//  pub_done for reuse. Caller updates inflight with s_inflight_done.
static void s_pub_complete(tern_client_t *self, s_pub_t *pub, const tern_puback_t *ack,
                           tern_err_t code, const char *reason) {
    s_win_unlink(self, pub);
    tern_pub_result_t result = {
        .code = code, .producer_seq = pub->producer_seq, .reason = reason ? reason : ""};
    if (ack) {
        result.msg_id = ack->msg_id;
        result.seq = ack->seq;
        result.duplicate = ack->duplicate;
    }
    if (pub->fn) {
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
    s_pub_t *done = self->pub_done;
    self->pub_done = NULL;
    s_pub_t *last = done;
    while (last && last->next) {
        last = last->next;
    }
    pthread_mutex_lock(&self->mutex);
    if (last) {
        last->next = self->pub_free;
        self->pub_free = done;
    }
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
        s_pub_complete(self, pub, NULL, (tern_err_t)frame->code, frame->reason);
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

//  Copies the NUL-terminated S (LEN bytes) to *AT and advances it.
static const char *s_put_str(char **at, const char *s, size_t len) {
    char *dst = *at;
    memcpy(dst, s, len + 1);
    *at = dst + len + 1;
    return dst;
}

static tern_message_t *s_message_new(const tern_frame_t *frame) {
    //  One block: the struct, the header pointer array, the payload, then
    //  the strings and the header texts, each NUL-terminated.
    size_t topic_len = strlen(frame->topic), producer_len = strlen(frame->producer);
    size_t key_len = strlen(frame->key), trace_len = strlen(frame->trace_id);
    size_t origin_len = strlen(frame->origin);
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
    self->refusal = TERN_OK;
    self->refused_in_row = 0;
    self->node_id = frame->node_id;
    snprintf(self->dc, sizeof self->dc, "%s", frame->dc);
    atomic_store(&self->max_payload, frame->max_payload ? frame->max_payload : TERN_PAYLOAD_MAX);
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
                    s_pub_complete(self, pub, &ack, (tern_err_t)ack.code, NULL);
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
        if (i == 0) {
            //  One clock read per drain: its frames arrived together.
            self->last_recv = s_now_ms();
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
        s_handle_frame(self, &hdr, &payload, has_payload);
        zmq_msg_close(&hdr);
        zmq_msg_close(&payload);
    }
}

//  While a refusal stands, completes everything waiting for a session with
//  it: admin requests, first SUBSCRIBE answers and the publish window.
static void s_fail_pending(tern_client_t *self) {
    if (!self->refusal) {
        return;
    }
    pthread_mutex_lock(&self->mutex);
    while (self->admins) {
        s_admin_t *admin = self->admins;
        self->admins = admin->next;
        s_waiter_finish(self, admin->waiter, self->refusal, self->refusal_reason);
        s_admin_free(admin);
    }
    for (tern_subscription_t *sub = self->subs; sub; sub = sub->next) {
        if (sub->waiter) {
            s_waiter_finish(self, sub->waiter, self->refusal, self->refusal_reason);
            sub->waiter = NULL;
        }
    }
    pthread_mutex_unlock(&self->mutex);
    size_t count = 0;
    while (self->win_head) {
        //  Nothing was ever sent (no session yet): completing is safe.
        s_pub_complete(self, self->win_head, NULL, self->refusal, self->refusal_reason);
        count++;
    }
    s_inflight_done(self, count);
}

//  First contact failed in a way that retrying will not soon fix: no broker
//  listens at any endpoint, or the broker's security does not match ours.
//  Waiting calls fail now with CODE and REASON (FMT, naming the endpoint
//  ENDPOINT without its tcp://), and so do new ones, until a WELCOME; the
//  client keeps trying in the background.
static void s_refuse(tern_client_t *self, tern_err_t code, const char *fmt, const char *endpoint) {
    const char *address = s_tcp_address(endpoint);
    pthread_mutex_lock(&self->mutex);
    self->refusal = code;
    snprintf(self->refusal_reason, sizeof self->refusal_reason, fmt, address ? address : endpoint);
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->mutex);
    s_fail_pending(self);
}

//  A connect to the current endpoint failed before the first session: if
//  nothing listens there, and nothing did at the other endpoints either, say
//  so at once instead of letting callers time out. A broker that once
//  accepted our TCP connection is only restarting: that is retried.
static void s_connect_failed(tern_client_t *self) {
    const char *endpoint = self->endpoints[self->endpoint_index];
    if (self->tcp_contact || !s_tcp_refused(endpoint)) {
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
        const char *address = s_tcp_address(self->endpoints[i]);
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

static void s_handle_monitor(tern_client_t *self) {
    while (self->monitor) {
        zmq_msg_t event;
        zmq_msg_init(&event);
        if (zmq_msg_recv(&event, self->monitor, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&event);
            return;
        }
        uint16_t id = 0;
        uint32_t value = 0;
        if (zmq_msg_size(&event) >= 6) {
            memcpy(&id, zmq_msg_data(&event), 2);
            memcpy(&value, (uint8_t *)zmq_msg_data(&event) + 2, 4);
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
            case OP_PUB: {
                s_pub_t *pub = (s_pub_t *)op;
                pub->prev = self->win_tail;
                if (self->win_tail) {
                    self->win_tail->next = pub;
                } else {
                    self->win_head = pub;
                }
                self->win_tail = pub;
                s_send_pub(self, pub);
                break;
            }
            case OP_FRAME: {
                s_frame_op_t *fop = (s_frame_op_t *)op;
                if (self->state == S_READY && fop->gen == self->gen) {
                    s_send(self, fop->hdr, fop->hdr_len, NULL, 0, false);
                }
                free(fop);
                break;
            }
            case OP_SUB:
                pthread_mutex_lock(&self->mutex);
                s_send_subscribe(self, ((s_sub_op_t *)op)->sub);
                pthread_mutex_unlock(&self->mutex);
                free(op);
                break;
            case OP_ADMIN: {
                s_admin_t *admin = (s_admin_t *)op;
                admin->next = self->admins;
                self->admins = admin;
                s_send_admin(self, admin);
                break;
            }
            case OP_CLOSE:
                running = false;
                free(op);
                break;
        }
        op = next;
    }
    s_fail_pending(self); //  what was queued before the caller saw a refusal
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
                self->refused_in_row = 0; //  something answered, or nothing at all
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
    s_flush_cb_out(self);
    if (self->state == S_READY) {
        s_send_simple(self, TERN_CMD_BYE);
    }
    s_close_socket(self);
    size_t count = 0;
    while (self->win_head) {
        s_pub_complete(self, self->win_head, NULL, TERN_ECLOSED, NULL);
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
            s_pub_t *pub = (s_pub_t *)op;
            pub->next = pub->prev = NULL;
            self->win_head = self->win_tail = pub;
            s_pub_complete(self, pub, NULL, TERN_ECLOSED, NULL);
            count++;
        } else if (op->type == OP_ADMIN) {
            s_admin_t *admin = (s_admin_t *)op;
            admin->next = self->admins;
            self->admins = admin;
        } else {
            free(op);
        }
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
        s_flush_cb_out(self);
        int64_t after = s_now_ms();
        s_stamp_send(self, after);
        if (running) {
            s_handle_timers(self, after);
            s_stamp_send(self, after);
        }
    }
    s_shutdown(self);
    return NULL;
}

//  ---------------------------------------------------------------------------
//  Client lifecycle

//  Checks the arguments of tern_client_new_array; on failure, the reason is
//  in tl_reason.
static bool s_new_args_ok(const char *const *endpoints, size_t count,
                          const tern_client_options_t *options) {
    if (!endpoints || count == 0) {
        s_set_reason("no endpoint given");
        return false;
    }
    if (count > TERN_MAX_ENDPOINTS) {
        snprintf(tl_reason, sizeof tl_reason, "more than %d endpoints", TERN_MAX_ENDPOINTS);
        return false;
    }
    for (size_t i = 0; i < count; i++) {
        if (!endpoints[i] || !endpoints[i][0]) {
            s_set_reason("empty endpoint");
            return false;
        }
        if (!s_endpoint_valid(endpoints[i], tl_reason, sizeof tl_reason)) {
            return false;
        }
    }
    if (options->window == 0 || options->window > 65536) {
        snprintf(tl_reason, sizeof tl_reason, "window %u is not 1..65536", options->window);
        return false;
    }
    if (options->producer_id &&
        !tern_name_valid(options->producer_id, strlen(options->producer_id))) {
        tern_reason_name(tl_reason, sizeof tl_reason, "producer_id", options->producer_id);
        return false;
    }
    if ((options->curve_server_key || options->curve_public_key || options->curve_secret_key) &&
        !(s_curve_key_ok(options->curve_server_key) && s_curve_key_ok(options->curve_public_key) &&
          s_curve_key_ok(options->curve_secret_key))) {
        s_set_reason("CURVE needs all three keys (server, public, secret), each 40 Z85 "
                     "characters");
        return false;
    }
    if (options->name && !tern_name_valid(options->name, strlen(options->name))) {
        tern_reason_name(tl_reason, sizeof tl_reason, "client name", options->name);
        return false; //  HELLO could never be encoded
    }
    return true;
}

tern_client_t *tern_client_new_array(const char *const *endpoints, size_t count,
                                     const tern_client_options_t *options) {
    tern_client_options_t defaults;
    if (!options) {
        tern_client_options_init(&defaults);
        options = &defaults;
    }
    s_set_reason(NULL);
    if (!s_new_args_ok(endpoints, count, options)) {
        errno = EINVAL;
        return NULL;
    }
    tern_client_t *self = tern_alloc(sizeof *self);
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
    atomic_init(&self->max_payload, TERN_PAYLOAD_MAX);
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
    snprintf(tl_reason, sizeof tl_reason, "cannot start the client: %s", strerror(errno));
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
        tern_oom(strlen(endpoints));
    }
    const char *list[TERN_MAX_ENDPOINTS + 1];
    size_t count = 0;
    char *save = NULL;
    for (char *token = strtok_r(copy, ", \t", &save); token && count <= TERN_MAX_ENDPOINTS;
         token = strtok_r(NULL, ", \t", &save)) {
        list[count++] = token; //  one too many makes new_array say so
    }
    tern_client_t *self = tern_client_new_array(list, count, options);
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
    s_op_t *op = tern_alloc(sizeof *op);
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
    free(self->cb_out);
    while (self->pub_free) {
        s_pub_t *pub = self->pub_free;
        self->pub_free = pub->next;
        free(pub);
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
    s_set_reason(NULL);
    pthread_mutex_lock(&self->mutex);
    while (!self->ready) {
        if (self->stopped || self->closing) {
            rc = TERN_ECLOSED;
            break;
        }
        if (self->refusal) {
            rc = self->refusal;
            s_set_reason(self->refusal_reason);
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

//  Header templates. Most frames a client sends in bulk repeat the one
//  before but for a few integers: a publisher repeats a few topics with the
//  same options, so two PUBLISH headers differ only in req_id and
//  producer_seq; ACKs differ in req_id, sub_id and tag. A template is such a
//  header encoded by the codec with each of those integers set to 1, plus the
//  offset of each one's byte, found by encoding again with that one set to 2.
//  A header is then the template with the integers written in (msgpack's
//  shortest form, as the codec writes them) instead of a full encode.
#define S_TPL_INTS 3   /* integers a template leaves open */
#define S_TPL_MAX  384 /* bytes; a PUBLISH without key, trace or headers fits */

typedef struct {
    size_t len;               //  template size; 0 = none
    bool failed;              //  making it failed: the header has another shape
    size_t ints;              //  integers it leaves open
    size_t at[S_TPL_INTS];    //  offset of each one's byte, increasing
    uint8_t bytes[S_TPL_MAX]; //  the header with every open integer = 1
} s_tpl_t;

//  Writes V in msgpack's shortest unsigned form to OUT; returns its size.
static size_t s_pack_uint(uint8_t *out, uint64_t v) {
    if (v < 128) {
        out[0] = (uint8_t)v;
        return 1;
    }
    size_t n;
    if (v <= UINT8_MAX) {
        out[0] = 0xcc;
        n = 1;
    } else if (v <= UINT16_MAX) {
        out[0] = 0xcd;
        n = 2;
    } else if (v <= UINT32_MAX) {
        out[0] = 0xce;
        n = 4;
    } else {
        out[0] = 0xcf;
        n = 8;
    }
    for (size_t i = 0; i < n; i++) {
        out[n - i] = (uint8_t)(v >> (8 * i)); //  big-endian
    }
    return n + 1;
}

//  Writes T with the open integers set to VALUES into OUT; returns the size.
static size_t s_tpl_fill(const s_tpl_t *t, const uint64_t *values, uint8_t *out) {
    size_t n = 0, from = 0;
    for (size_t i = 0; i < t->ints; i++) {
        memcpy(out + n, t->bytes + from, t->at[i] - from);
        n += t->at[i] - from;
        n += s_pack_uint(out + n, values[i]);
        from = t->at[i] + 1;
    }
    memcpy(out + n, t->bytes + from, t->len - from);
    return n + t->len - from;
}

//  Makes T the template of FRAME (a copy the caller lets us change) with
//  the COUNT integers FIELDS (pointers into FRAME, in wire order) left
//  open. FRAME must be valid whatever those integers are. Leaves T->len 0
//  if the header does not have the expected shape.
static void s_tpl_make(s_tpl_t *t, tern_frame_t *frame, uint64_t *const *fields, size_t count) {
    uint8_t *other = tl_meta; //  scratch: templates are for frames without metadata
    size_t len, len2;
    t->len = 0;
    t->failed = true; //  until it is made
    for (size_t i = 0; i < count; i++) {
        *fields[i] = 1;
    }
    if (count > S_TPL_INTS ||
        tern_frame_encode(frame, t->bytes, sizeof t->bytes, &len) != TERN_OK) {
        return;
    }
    for (size_t i = 0; i < count; i++) {
        *fields[i] = 2;
        tern_err_t rc = tern_frame_encode(frame, other, sizeof tl_meta, &len2);
        *fields[i] = 1;
        if (rc != TERN_OK || len2 != len) {
            return;
        }
        size_t at = 0, diffs = 0;
        for (size_t k = 0; k < len; k++) {
            if (t->bytes[k] != other[k]) {
                at = k;
                diffs++;
            }
        }
        if (diffs != 1 || t->bytes[at] != 1 || (i > 0 && at <= t->at[i - 1])) {
            return;
        }
        t->at[i] = at;
    }
    t->ints = count;
    t->len = len;
    t->failed = false;
}

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
    s_tpl_t tpl;                      //  len 0 = key seen once
} s_pub_tpl_t;

static _Thread_local s_pub_tpl_t tl_pub_tpl[S_PUB_TPLS];
static _Thread_local unsigned tl_pub_tpl_next; //  slot to replace next
static _Thread_local s_tpl_t tl_ack_tpl[2];    //  ACK, ACK cumulative

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

//  Validates MSG and encodes its PUBLISH header into tl_header (*LEN bytes).
static tern_err_t s_build_publish(tern_client_t *self, const tern_pub_options_t *msg,
                                  uint64_t producer_seq, uint64_t req_id, size_t *len) {
    size_t topic_len = strlen(msg->topic);
    bool with_producer = self->options.idempotent || msg->producer_seq;
    const char *producer = with_producer ? self->producer : "";
    bool simple = !(msg->key && msg->key[0]) && !(msg->trace_id && msg->trace_id[0]) &&
                  msg->header_count == 0 && topic_len <= TERN_TOPIC_MAX;
    s_pub_tpl_t *tpl = simple ? s_pub_tpl_find(msg, topic_len, producer) : NULL;
    if (tpl && tpl->tpl.len) {
        uint64_t values[2] = {req_id, producer_seq};
        *len = s_tpl_fill(&tpl->tpl, values, tl_header);
#ifndef NDEBUG
        //  Checked builds compare with the codec's own encoding.
        tern_frame_t check;
        tern_frame_init(&check, TERN_CMD_PUBLISH);
        check.req_id = req_id;
        memcpy(check.topic, msg->topic, topic_len + 1);
        check.fields |= TERN_F_TOPIC | TERN_F_PRIORITY;
        if (with_producer) {
            memcpy(check.producer, self->producer, sizeof check.producer);
            check.producer_seq = producer_seq;
            check.fields |= TERN_F_PRODUCER;
        }
        check.priority = (uint8_t)msg->priority;
        if (msg->ttl_ms) {
            check.ttl_ms = msg->ttl_ms;
            check.fields |= TERN_F_TTL;
        } else {
            check.ttl_class = (uint8_t)msg->ttl_class;
        }
        size_t check_len;
        assert(tern_frame_encode(&check, tl_meta, sizeof tl_meta, &check_len) == TERN_OK);
        assert(check_len == *len && memcmp(tl_meta, tl_header, check_len) == 0);
#endif
        return TERN_OK;
    }
    tern_frame_t frame;
    tern_frame_init(&frame, TERN_CMD_PUBLISH);
    frame.req_id = req_id;
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
    tern_err_t rc = tern_frame_encode(&frame, tl_header, sizeof tl_header, len);
    if (rc == TERN_OK && simple) {
        if (tpl) {
            if (!tpl->tpl.failed) {
                //  Seen twice: worth a template (tried once).
                uint64_t *fields[2] = {&frame.req_id, &frame.producer_seq};
                s_tpl_make(&tpl->tpl, &frame, fields, with_producer ? 2 : 1);
            }
        } else {
            //  Seen once: remember the key only.
            tpl = &tl_pub_tpl[tl_pub_tpl_next++ % S_PUB_TPLS];
            tpl->tpl.len = 0;
            tpl->tpl.failed = false;
            tpl->topic_len = topic_len;
            memcpy(tpl->topic, msg->topic, topic_len + 1);
            snprintf(tpl->producer, sizeof tpl->producer, "%s", producer);
            tpl->priority = msg->priority;
            tpl->ttl_ms = msg->ttl_ms;
            tpl->ttl_class = msg->ttl_ms ? 0 : msg->ttl_class;
        }
    }
    return rc;
}

tern_err_t tern_publish_async(tern_client_t *self, const tern_pub_options_t *msg, tern_pub_fn *fn,
                              void *arg) {
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
    //  The payload is copied once, outside the lock, into the message that
    //  every send of this publish shares.
    zmq_msg_t payload;
    s_msg_init(&payload, msg->payload, msg->size);
    uint64_t req_id = atomic_fetch_add(&self->next_req, 1);
    int block_ms = self->options.publish_block_ms;
    if (block_ms != 0 && s_on_io_thread(self)) {
        block_ms = 0;
    }
    struct timespec deadline;
    bool have_deadline = false;

    //  Reserve a window slot and a producer_seq, encode and queue, in call
    //  order, under one lock.
    tern_err_t rc = TERN_OK;
    pthread_mutex_lock(&self->mutex);
    while (!self->closing && self->inflight >= self->options.window) {
        if (block_ms != 0 && !have_deadline) {
            deadline = s_abs_deadline(block_ms < 0 ? 0 : block_ms);
            have_deadline = true;
        }
        if (block_ms == 0 || !s_wait(&self->cond, &self->mutex, block_ms, &deadline)) {
            rc = TERN_EBUSY;
            break;
        }
    }
    if (self->closing) {
        rc = TERN_ECLOSED;
    }
    size_t hdr_len = 0;
    uint64_t producer_seq = 0;
    if (rc == TERN_OK) {
        producer_seq = msg->producer_seq ? msg->producer_seq : self->next_seq++;
        rc = s_build_publish(self, msg, producer_seq, req_id, &hdr_len);
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
        s_pub_t *pub = self->pub_free;
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
        zmq_msg_move(&pub->payload, &payload);
        self->inflight++;
        s_push_op(self, &pub->op);
    }
    pthread_mutex_unlock(&self->mutex);
    zmq_msg_close(&payload); //  empty when moved
    return rc;
}

static void s_sync_done(const tern_pub_result_t *result, void *arg) {
    s_waiter_t *waiter = arg;
    tern_client_t *self = waiter->client;
    pthread_mutex_lock(&self->mutex);
    waiter->pub = *result;
    waiter->pub.reason = ""; //  borrowed for the callback only: the text is copied below
    s_waiter_finish(self, waiter, result->code, result->reason);
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
    s_waiter_t *waiter = tern_alloc(sizeof *waiter);
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
    s_set_reason(NULL);
    if (!tern_pattern_valid(pattern, strlen(pattern))) {
        tern_reason_topic(tl_reason, sizeof tl_reason, pattern, true);
        return TERN_ETOPIC;
    }
    const char *group = options->group ? options->group : "";
    if (group[0] && !tern_name_valid(group, strlen(group))) {
        tern_reason_name(tl_reason, sizeof tl_reason, "group", group);
        return TERN_ENAME;
    }
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
    s_waiter_t *waiter = tern_alloc(sizeof *waiter);
    sub->waiter = waiter;

    int timeout_ms = (int)self->options.timeout_ms;
    struct timespec deadline = s_abs_deadline(timeout_ms);
    tern_err_t rc;
    pthread_mutex_lock(&self->mutex);
    if (self->closing || self->refusal) {
        rc = self->closing ? TERN_ECLOSED : self->refusal;
        s_set_reason(self->closing ? NULL : self->refusal_reason);
        pthread_mutex_unlock(&self->mutex);
        pthread_cond_destroy(&sub->cond);
        free(waiter);
        free(sub);
        return rc;
    }
    sub->next = self->subs;
    self->subs = sub;
    s_sub_op_t *op = tern_alloc(sizeof *op);
    op->op.type = OP_SUB;
    op->sub = sub;
    s_push_op(self, &op->op);
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

//  Queues the frame encoded in tl_header (LEN bytes) for session GEN; on
//  the I/O thread (a callback) sends it at once instead. Mutex held.
static void s_queue_encoded(tern_client_t *self, size_t len, uint64_t gen) {
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
    s_frame_op_t *op = tern_alloc_raw(sizeof *op + len);
    op->op.type = OP_FRAME;
    op->gen = gen;
    op->hdr_len = len;
    memcpy(op->hdr, tl_header, len);
    s_push_op(self, &op->op);
}

//  Encodes and queues a frame addressed to SUB's current session GEN (see
//  s_queue_encoded). Mutex held.
static tern_err_t s_queue_sub_frame(tern_client_t *self, tern_frame_t *frame, uint64_t gen) {
    size_t len;
    tern_err_t rc = tern_frame_encode(frame, tl_header, sizeof tl_header, &len);
    if (rc == TERN_OK) {
        s_queue_encoded(self, len, gen);
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
        free(msg); //  one block
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

static void s_ack_frame(tern_frame_t *frame, bool cumulative) {
    tern_frame_init(frame, TERN_CMD_ACK);
    if (cumulative) {
        frame->cumulative = true;
        frame->fields |= TERN_F_CUMULATIVE;
    }
}

//  Settles MSG with FRAME (ACK, NACK or TERM), or with the ACK template TPL
//  when FRAME is NULL: checks that its session and subscription are still
//  current, then queues the frame. With both, FRAME is an ACK that TPL is
//  to be made from.
static tern_err_t s_settle(tern_message_t *msg, tern_frame_t *frame, s_tpl_t *tpl) {
    if (!msg || !msg->sub) {
        return TERN_EINVAL;
    }
    tern_client_t *self = msg->sub->client;
    uint64_t values[3] = {atomic_fetch_add(&self->next_req, 1), msg->sub_id, msg->tag};
    //  Encoded before the lock: nothing in it depends on the session.
    size_t len = 0;
    tern_err_t rc = TERN_OK;
    if (frame) {
        if (tpl) {
            tern_frame_t f = *frame;
            uint64_t *fields[3] = {&f.req_id, &f.sub_id, &f.tag};
            s_tpl_make(tpl, &f, fields, 3);
        }
        frame->req_id = values[0];
        frame->sub_id = values[1];
        frame->tag = values[2];
        rc = tern_frame_encode(frame, tl_header, sizeof tl_header, &len);
    } else {
        len = s_tpl_fill(tpl, values, tl_header);
#ifndef NDEBUG
        //  Checked builds compare with the codec's own encoding.
        tern_frame_t check;
        s_ack_frame(&check, tpl == &tl_ack_tpl[1]);
        check.req_id = values[0];
        check.sub_id = values[1];
        check.tag = values[2];
        size_t check_len;
        assert(tern_frame_encode(&check, tl_meta, sizeof tl_meta, &check_len) == TERN_OK);
        assert(check_len == len && memcmp(tl_meta, tl_header, len) == 0);
#endif
    }
    pthread_mutex_lock(&self->mutex);
    if (msg->settled) {
        rc = TERN_ESTATE;
    } else if (msg->sub->closed || self->closing || msg->gen != self->gen ||
               msg->sub->gen != msg->gen) {
        rc = TERN_ECLOSED;
    } else if (rc == TERN_OK) {
        s_queue_encoded(self, len, msg->gen);
        msg->settled = true;
    }
    pthread_mutex_unlock(&self->mutex);
    return rc;
}

tern_err_t tern_message_ack(tern_message_t *msg, bool cumulative) {
    s_tpl_t *tpl = &tl_ack_tpl[cumulative ? 1 : 0];
    if (tpl->len) {
        return s_settle(msg, NULL, tpl);
    }
    tern_frame_t frame;
    s_ack_frame(&frame, cumulative);
    return s_settle(msg, &frame, tpl->failed ? NULL : tpl);
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

void tern_message_destroy(tern_message_t **msg_p) {
    if (!msg_p || !*msg_p) {
        return;
    }
    tern_message_t *msg = *msg_p;
    *msg_p = NULL;
    free(msg); //  one block: strings, headers and payload included
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
        s_set_reason(tern_reason_name(tl_reason, sizeof tl_reason, "admin operation", op_name));
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
    s_admin_t *admin = tern_alloc(sizeof *admin);
    admin->req_id = frame.req_id;
    tern_err_t rc = s_encode(&frame, &admin->hdr, &admin->hdr_len);
    if (rc != TERN_OK) {
        free(admin);
        return rc;
    }
    s_waiter_t *waiter = tern_alloc(sizeof *waiter);
    admin->waiter = waiter;
    admin->deadline = timeout_ms < 0 ? INT64_MAX : s_now_ms() + timeout_ms;
    struct timespec deadline = s_abs_deadline(timeout_ms < 0 ? 0 : timeout_ms);

    pthread_mutex_lock(&self->mutex);
    if (self->closing || self->refusal) {
        rc = self->closing ? TERN_ECLOSED : self->refusal;
        s_set_reason(self->closing ? NULL : self->refusal_reason);
        pthread_mutex_unlock(&self->mutex);
        s_admin_free(admin);
        free(waiter);
        return rc;
    }
    admin->op.type = OP_ADMIN;
    s_push_op(self, &admin->op);
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
