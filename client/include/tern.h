/*  tern.h - the public API of libtern, the tern message broker's client library.

    tern is a durable message broker: apps publish to topics and consume through
    durable groups with acknowledgements, retries and a dead-letter queue. This
    header is the one an application includes; it includes tern_err.h (the
    error codes, shared with the broker and carried by ERROR frames, so their
    numbers never change once released) and tern_version.h, both installed
    beside it.
*/
#ifndef TERN_H_INCLUDED
#define TERN_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*  The version of this header (TERN_VERSION_MAJOR, _MINOR, _PATCH, in
    tern_version.h); tern_version() gives the library's. The error codes
    (tern_err_t, tern_strerror, tern_errname) and TERN_EXPORT are in
    tern_err.h. Both are installed beside this header and shared with every
    layer of the broker; include tern.h only. */
#include "tern_err.h"
#include "tern_version.h"

#ifdef __cplusplus
extern "C" {
#endif

/*  ------------------------------------------------------------------------
    The client API.

    Threading model. A tern_client_t runs one background I/O thread that owns
    the ZeroMQ DEALER socket: it connects, says HELLO, sends heartbeats,
    reconnects with backoff and failover, resends unacknowledged publishes and
    re-subscribes after a reconnect. Every public function below may be called
    from any thread at the same time unless its note says otherwise; calls
    reach the I/O thread through a mutex-protected queue and a wake-up fd.
    Callbacks (publish completions, subscription deliveries) run ON THE I/O
    THREAD: they must return quickly and must not call the blocking functions
    of the same client (tern_publish, tern_flush, tern_subscribe, tern_admin,
    tern_subscription_next, tern_client_wait_connected, tern_unsubscribe,
    tern_client_destroy): those wait for the I/O thread and would deadlock
    (they return TERN_ESTATE when called from it). Non-blocking calls
    (tern_publish_async with publish_block_ms = 0, tern_message_ack/nack/term,
    tern_subscription_credit) are fine in callbacks.

    Errors. Functions that can fail return a tern_err_t. When a failure comes
    from the broker (an ERROR frame), its reason text is kept per thread and
    returned by tern_last_reason(); so are libtern's own reasons (a refused
    endpoint, an argument outside its grammar or limit), which name the
    problem and the limit the same way. Out of memory aborts the process (one
    place for every layer: tern_oom); no function returns TERN_ENOMEM.

    First contact. Until the first session (WELCOME), a failure that retrying
    will not soon fix ends every waiting call at once instead of letting it
    time out: TERN_ECONNREFUSED when every endpoint refused the TCP connect
    and none ever accepted one (nothing listens; a broker that accepted us
    once is restarting and is retried; reason "cannot connect to HOST:PORT:
    connection refused"), TERN_EDENIED when the broker's security does not match ours
    (reason "ternd at HOST:PORT requires CURVE", "... does not use CURVE",
    or "... refused our CURVE key"). Queued publishes complete with that
    code, and new calls return it at once while it stands; the client keeps
    trying in the background and the first WELCOME clears it (to wait for a
    broker that is still starting, retry on TERN_ECONNREFUSED). Once a
    session was established, a lost broker is only retried, as described
    above: calls wait for the next session or their timeout.

    Clusters. The endpoints may be seeds of a clustered DC (docs/client.md,
    "Clusters"). When the first session is up the client asks it for the
    cluster's map (ADMIN `cluster`; a single node answers "not a cluster" and
    the client works as described above, at the cost of that one request,
    during which publishes wait and tern_subscribe waits). In a cluster it
    sends each publish to the leader of its topic's partition and each
    subscription to one topic to that leader (a pattern to every node),
    opening a session per node as needed, each with its own I/O thread;
    callbacks may run on any of them, under the rules above. A leader change
    or a lost node is followed without the application's help: unacknowledged
    publishes are resent to the new leader with the same producer and
    producer_seq (deduplicated), subscriptions move (a durable group
    continues; redeliveries are expected, as group state is not replicated in
    this release). tern_admin sends an operation about one topic to that
    topic's leader and gathers `topics` and `trace` from every node (see
    tern_admin); the other admin operations and the session queries use the
    seed session.
    ------------------------------------------------------------------------ */

typedef struct _tern_client_t tern_client_t;             //  a connection to the brokers
typedef struct _tern_subscription_t tern_subscription_t; //  one subscription of a client
typedef struct _tern_message_t tern_message_t;           //  one delivered message

/*  Default values of tern_client_options_t. */
#define TERN_DEFAULT_ENDPOINT     "tcp://127.0.0.1:7600"
#define TERN_DEFAULT_WINDOW       256   /* publishes in flight */
#define TERN_DEFAULT_HEARTBEAT_MS 15000 /* client heartbeat interval */
#define TERN_DEFAULT_TIMEOUT_MS   10000 /* synchronous requests */

/*  Options of a client. Initialize with tern_client_options_init, then change
    what you need. Strings are borrowed for the duration of tern_client_new. */
typedef struct {
    const char *name;            //  client name sent in HELLO; NULL = "libtern"
    const char *producer_id;     //  producer id for dedup; NULL = random per client
    uint64_t producer_seq_start; //  first producer_seq used (default 1)
    bool idempotent;             //  send producer + producer_seq (default true)
    uint32_t window;             //  max publishes in flight (default 256, 1..65536)
    int publish_block_ms;        //  when the window is full: -1 block (default),
                                 //  0 return TERN_EBUSY at once, >0 wait then EBUSY
    uint32_t heartbeat_ms;       //  our heartbeat interval (default 15000)
    uint32_t connect_timeout_ms; //  give up on an endpoint without WELCOME (default 3000)
    uint32_t backoff_min_ms;     //  first reconnect delay (default 100)
    uint32_t backoff_max_ms;     //  reconnect delay cap (default 5000)
    uint32_t timeout_ms;         //  default timeout of synchronous calls (default 10000)
    //  CURVE (brokers running auth mode curve, docs/security.md). All three
    //  are Z85 text of 40 characters (see tern_cert_load); NULL = plain TCP.
    const char *curve_server_key; //  the broker's public key
    const char *curve_public_key; //  this client's public key (in the broker's allow-list)
    const char *curve_secret_key; //  this client's secret key
} tern_client_options_t;

#define TERN_CURVE_KEY_LEN 40 /* a CURVE key as Z85 text, without the NUL */

/*  Reads a CURVE certificate file as `ternctl keys gen` (or czmq's zcert)
    writes it: PATH is the public file NAME.key or the secret file
    NAME.key_secret; for a public file, PATH_secret is read too when it
    exists. Copies the public key into PUBLIC_KEY and, when the file holds
    one, the secret key into SECRET_KEY (both TERN_CURVE_KEY_LEN + 1 bytes;
    SECRET_KEY may be NULL; it is "" when there is none). Returns TERN_OK,
    TERN_ENOTFOUND if PATH cannot be read, or TERN_EINVAL if it is not a
    certificate. Thread-safe. */
TERN_EXPORT tern_err_t tern_cert_load(const char *path, char *public_key, char *secret_key);

/*  Sets every field of OPTIONS to its default. Thread-safe. */
TERN_EXPORT void tern_client_options_init(tern_client_options_t *options);

/*  Creates a client for ENDPOINTS, a comma-separated list of ZeroMQ endpoints
    ("tcp://10.0.0.1:7600,tcp://10.0.0.2:7600"; NULL = TERN_DEFAULT_ENDPOINT),
    and starts its I/O thread, which connects in the background: the first
    endpoint first, then the next one on every failed attempt, with backoff
    from backoff_min_ms doubling up to backoff_max_ms, each delay jittered to
    a random value in [d/2, d]. OPTIONS may be NULL for the defaults.
    Each endpoint is tcp://HOST:PORT (port 1..65535), ipc://PATH or
    inproc://NAME. Returns the client, or NULL when ENDPOINTS is empty, has
    more than 32 endpoints or a malformed one ("bogus", no port, another
    transport), an option is out of range (window 0 or > 65536, invalid name
    or producer_id, an incomplete set of CURVE keys) or the thread cannot be
    started; then errno is EINVAL (or the system's error) and
    tern_last_reason() says why, e.g. "invalid endpoint 'bogus': expected
    tcp://HOST:PORT". Does not wait for a connection: see
    tern_client_wait_connected. Caller owns the return value; destroy it with
    tern_client_destroy. */
TERN_EXPORT tern_client_t *tern_client_new(const char *endpoints,
                                           const tern_client_options_t *options);

/*  Same as tern_client_new with an array of COUNT endpoint strings. */
TERN_EXPORT tern_client_t *tern_client_new_array(const char *const *endpoints, size_t count,
                                                 const tern_client_options_t *options);

/*  Closes the client: sends BYE when connected (pending acks and other frames
    queued before this call are sent first), completes every publish still in
    flight with TERN_ECLOSED (their callbacks run, on the I/O thread, before
    this returns), wakes every waiter with TERN_ECLOSED, joins the I/O thread
    and frees everything, including every subscription. Messages obtained from
    the client must be destroyed before. Safe on NULL and on *SELF_P == NULL;
    nulls *SELF_P. Call it from one thread, not from a callback. */
TERN_EXPORT void tern_client_destroy(tern_client_t **self_p);

/*  Waits until a session with some broker is established (WELCOME received),
    at most TIMEOUT_MS (-1 = forever). Returns TERN_OK, TERN_ETIMEOUT, the code
    of an ERROR the broker sent to our HELLO (e.g. TERN_EVERSION) if one came
    and no session is up, TERN_ECONNREFUSED or TERN_EDENIED at once when first
    contact failed (see "First contact"; reason in tern_last_reason()), or
    TERN_ECLOSED. Thread-safe; not from a callback. */
TERN_EXPORT tern_err_t tern_client_wait_connected(tern_client_t *self, int timeout_ms);

/*  True while a session is established. Thread-safe; a snapshot. */
TERN_EXPORT bool tern_client_connected(tern_client_t *self);

/*  Session facts from the last WELCOME (zero/empty before the first one):
    the broker's node id, its datacenter (copied into DC, DC_SIZE bytes, may
    be NULL), and the endpoint in use (copied into ENDPOINT, may be NULL).
    Returns TERN_OK, or TERN_ESTATE before the first session. Thread-safe. */
TERN_EXPORT tern_err_t tern_client_session(tern_client_t *self, uint32_t *node_id, char *dc,
                                           size_t dc_size, char *endpoint, size_t endpoint_size);

/*  The producer id this client publishes with (random unless given).
    Borrowed; valid until the client is destroyed. Thread-safe. */
TERN_EXPORT const char *tern_client_producer(tern_client_t *self);

/*  The reason text for the last failure of a call made by the calling
    thread: the broker's (from its ERROR frame) or libtern's own (e.g. from
    tern_client_new returning NULL, a refused first contact, a topic outside
    the grammar), or "" if none. It names the problem and the limit, e.g.
    "no such topic 'x'", "max_topics 3 reached: topic 'y' not created",
    "payload 2097152 B > max_payload 1 MiB". Borrowed; valid until the
    thread's next call into libtern. */
TERN_EXPORT const char *tern_last_reason(void);

/*  ---- Publishing ---------------------------------------------------- */

/*  A metadata (header) pair. Both strings are borrowed. */
typedef struct {
    const char *key;   //  1..64 bytes
    const char *value; //  0..1024 bytes
} tern_header_t;

/*  Named TTL classes (durations are broker configuration). */
#define TERN_CLASS_NONE     0
#define TERN_CLASS_INSTANT  1 /* default 30 s */
#define TERN_CLASS_BUSINESS 2 /* default 2 h */
#define TERN_CLASS_SYNC     3 /* default 7 d */

/*  One message to publish. Initialize with tern_pub_options_init. Every
    pointer is borrowed for the duration of the publish call (libtern copies
    what it keeps). */
typedef struct {
    const char *topic;            //  required: [A-Za-z0-9_-] tokens joined by '.'
    const void *payload;          //  payload bytes (may be NULL when size is 0)
    size_t size;                  //  payload size, <= the broker's max_payload
    int priority;                 //  0..9 (default 4)
    uint32_t ttl_ms;              //  explicit time to live, 0 = none
    int ttl_class;                //  TERN_CLASS_*; ignored when ttl_ms != 0
    const char *key;              //  ordering key, NULL = none
    const char *trace_id;         //  W3C traceparent, NULL = broker generates one
    const tern_header_t *headers; //  metadata pairs, NULL if none
    size_t header_count;          //  number of pairs (<= 32)
    uint64_t producer_seq;        //  0 = next of the client's counter; else this one
} tern_pub_options_t;

/*  Sets OPTIONS to an empty message with default priority. */
TERN_EXPORT void tern_pub_options_init(tern_pub_options_t *options);

/*  The outcome of one publish. */
typedef struct {
    tern_err_t code;       //  TERN_OK when stored durably, else why not
    uint64_t msg_id;       //  the stored message's id (the original one if duplicate)
    uint64_t seq;          //  its sequence in the topic on that node
    bool duplicate;        //  the broker had already stored this producer_seq
    uint64_t producer_seq; //  the producer_seq it was sent with
    const char *reason;    //  why not, when code != TERN_OK (the broker's reason, naming
                           //  the limit, e.g. "payload 2097152 B > max_payload 1 MiB");
                           //  "" if none. Borrowed for the callback only
} tern_pub_result_t;

/*  Completion callback of tern_publish_async. Runs on the I/O thread, exactly
    once per accepted publish, in the order the broker acknowledges them.
    RESULT is borrowed for the duration of the call. */
typedef void(tern_pub_fn)(const tern_pub_result_t *result, void *arg);

/*  Publishes one message without waiting for it to be stored. The message is
    validated and encoded in the calling thread, then queued; it counts
    against the in-flight window until the broker acknowledges it. Idempotent
    by default: the message carries the client's producer id and the next
    producer_seq (or MSG->producer_seq), and keeps both when it is resent
    after a reconnect, so a failover never stores it twice within the broker's
    dedup window. That window is bounded: per producer the broker remembers
    only the newest storage/dedup_max (default 1024) producer_seqs, each for
    storage/dedup_window (default 2 min). To resume a failed run, reuse the
    producer id and start at the first unacknowledged producer_seq
    (producer_seq_start); re-sending older messages, or re-running from the
    start later, stores them again as duplicates. Async publishes never time
    out: they complete on PUBACK, on an ERROR naming them (RESULT->reason says
    why), with TERN_ECONNREFUSED or TERN_EDENIED when first contact fails (see
    "First contact"), or with TERN_ECLOSED when the client is destroyed.
    In a cluster (see "Clusters") a publish that meets TERN_ENOTLEADER or a
    lost node is resent to its partition's leader instead of completing;
    after 3 x timeout_ms (at least 30 s) without a reachable leader it
    completes with TERN_ENOTLEADER, and so it does at once when its leader
    refuses it three times without naming another (its etcd lease lapsed: the
    DC cannot take writes now). TERN_EREPLICAS completes it: the partition
    has fewer in-sync replicas than cluster/min_insync (RESULT->reason names
    them), the leader refused it before storing, and nothing was stored:
    retry later (e.g. after a follower is back). TERN_ETIMEOUT from the
    broker completes it too: the leader stored it but its in-sync replicas
    did not confirm it within cluster/ack_timeout, so the outcome is unknown
    (it may be replicated and delivered later); resend with the same
    producer_seq (MSG->producer_seq), which is deduplicated. Publishes to
    one topic are stored in call order across leader changes and lease
    lapses too (a partition's publishes go to one node at a time, the first
    one to a node alone; a node that refused one without storing it refuses
    the ones pipelined behind it until libtern resends the refused one,
    marked as a resend: docs/client.md), except a publish that completed
    with an error and is published again by the application after newer
    ones were stored (the broker stores it where it arrives). After an
    error (e.g. TERN_EREPLICAS) the publishes of that topic already in
    flight behind it fail too, with the same code and a reason naming the
    earlier refusal; the next one is sent alone.
    FN (may be NULL) is called with ARG on completion, on the I/O thread.
    Returns TERN_OK when queued; TERN_EINVAL (NULL topic, priority or ttl
    class out of range, too many headers), TERN_ETOPIC, TERN_ENAME,
    TERN_ETRACE, TERN_EMETA, TERN_ETOOBIG (payload over the broker's
    max_payload or header over limits); TERN_EBUSY when the window is full
    and publish_block_ms did not allow waiting long enough; TERN_ECLOSED when
    the client is closing; TERN_ESTATE if it would block on the I/O thread;
    TERN_ECONNREFUSED or TERN_EDENIED while a first-contact failure stands.
    Validation errors set tern_last_reason() (the topic and its grammar, the
    payload size and max_payload).
    FN is not called when the return value is not TERN_OK. Thread-safe;
    messages published from one thread are sent in call order. */
TERN_EXPORT tern_err_t tern_publish_async(tern_client_t *self, const tern_pub_options_t *msg,
                                          tern_pub_fn *fn, void *arg);

/*  Publishes one message and waits until it is stored (PUBACK) or fails, at
    most TIMEOUT_MS (-1 = forever, 0 = the client's timeout_ms). RESULT (may
    be NULL) receives the outcome. Returns RESULT->code: TERN_OK or the
    broker's code (e.g. TERN_EFULL; RESULT->reason and tern_last_reason() say
    why, valid until the thread's next call), any error of tern_publish_async, or
    TERN_ETIMEOUT — then the message stays in flight and may still be stored
    (a retry with the same producer_seq is deduplicated). Thread-safe; not
    from a callback. */
TERN_EXPORT tern_err_t tern_publish(tern_client_t *self, const tern_pub_options_t *msg,
                                    int timeout_ms, tern_pub_result_t *result);

/*  Waits until no publish is in flight (every publish accepted so far, also
    from other threads, has completed and its callback has returned), at most
    TIMEOUT_MS (-1 = forever). Returns TERN_OK, TERN_ETIMEOUT, TERN_ECLOSED, or
    TERN_ESTATE from a callback. Thread-safe. */
TERN_EXPORT tern_err_t tern_flush(tern_client_t *self, int timeout_ms);

/*  Number of publishes in flight (queued, sent, not yet completed). */
TERN_EXPORT size_t tern_client_inflight(tern_client_t *self);

/*  ---- Subscribing ---------------------------------------------------- */

/*  Where a new group (or an ephemeral subscription) starts. */
#define TERN_FROM_FIRST 0 /* the oldest message still stored (default) */
#define TERN_FROM_NEW   1 /* only messages published after the subscribe */
#define TERN_FROM_SEQ   2 /* start_value = first seq */
#define TERN_FROM_TIME  3 /* start_value = unix time in ns */

/*  Options of a subscription. Initialize with tern_sub_options_init. */
typedef struct {
    const char *group;    //  durable group name; NULL or "" = ephemeral subscription
    int start;            //  TERN_FROM_*; used only when the group is created
    uint64_t start_value; //  seq or unix ns for TERN_FROM_SEQ / TERN_FROM_TIME
    uint32_t credit;      //  max unacked messages in flight; 0 = broker default
} tern_sub_options_t;

TERN_EXPORT void tern_sub_options_init(tern_sub_options_t *options);

/*  Delivery callback. Runs on the I/O thread. Takes ownership of MSG: the
    callback (or whoever it hands MSG to) must ack/nack/term it as needed and
    destroy it with tern_message_destroy. */
typedef void(tern_msg_fn)(tern_message_t *msg, void *arg);

/*  Subscribes to PATTERN (a topic, or a pattern with '*' for one token and a
    final '>' for the rest) and waits for the broker's answer, at most the
    client's timeout_ms (including the time to get connected). With FN, each
    delivered message is passed to FN(msg, ARG) on the I/O thread; with FN ==
    NULL the messages queue inside the subscription for
    tern_subscription_next (the queue holds at most the credit window, since
    the broker sends no more than that unacked). After a reconnect the client
    subscribes again: a durable group resumes where its acks left it and the
    broker redelivers what was in flight; an ephemeral subscription (no state
    at the broker) resumes after the highest seq it received (a wildcard
    pattern at "new"), so what was delivered but not acked is not redelivered.
    Messages from the old session can no longer be acked (TERN_ECLOSED).
    In a cluster, a subscription to one topic follows its partition's leader
    and a pattern is subscribed on every node; acks go to the node that
    delivered the message; after a leader change a durable group resumes on
    the new leader, which may redeliver what the old one had delivered.
    Returns TERN_OK and sets *SUB_P; or TERN_EINVAL (NULL argument, bad
    start), TERN_ETOPIC, TERN_ENAME (bad group), the code of the broker's
    ERROR, TERN_ETIMEOUT, TERN_ECONNREFUSED or TERN_EDENIED (first contact
    failed), TERN_ECLOSED, TERN_ESTATE (called from a callback); the reason
    is in tern_last_reason().
    The subscription belongs to the client: it stays valid until
    tern_unsubscribe or tern_client_destroy. Thread-safe. */
TERN_EXPORT tern_err_t tern_subscribe(tern_client_t *self, const char *pattern,
                                      const tern_sub_options_t *options, tern_msg_fn *fn, void *arg,
                                      tern_subscription_t **sub_p);

/*  Waits up to TIMEOUT_MS (-1 = forever, 0 = poll) for the next message of a
    pull subscription (FN was NULL). Returns TERN_OK and sets *MSG_P (caller
    owns it; destroy with tern_message_destroy), TERN_ETIMEOUT, TERN_EINVAL
    for a callback subscription, or TERN_ECLOSED when the subscription or the
    client is closed and its queue is empty. Thread-safe; usually one thread
    per subscription. */
TERN_EXPORT tern_err_t tern_subscription_next(tern_subscription_t *sub, int timeout_ms,
                                              tern_message_t **msg_p);

/*  Adds N to the subscription's credit at the broker (CREDIT). Needed only
    when the application wants more than the subscription's credit in flight:
    each ack frees one slot by itself. Returns TERN_OK (queued), TERN_EINVAL
    (N == 0), TERN_ESTATE (not subscribed in the current session, e.g. while
    reconnecting) or TERN_ECLOSED. Thread-safe. */
TERN_EXPORT tern_err_t tern_subscription_credit(tern_subscription_t *sub, uint32_t n);

/*  The broker-assigned id of the subscription in the current session (0 while
    not subscribed). Thread-safe snapshot. */
TERN_EXPORT uint64_t tern_subscription_id(tern_subscription_t *sub);

/*  Unsubscribes: sends UNSUBSCRIBE (messages in flight return to the group),
    stops deliveries, and nulls *SUB_P. Messages still queued for
    tern_subscription_next are dropped unacked (the broker redelivers them).
    The memory is reclaimed when the client is destroyed, so messages of the
    subscription stay safe to destroy. Returns TERN_OK or TERN_EINVAL (NULL).
    Thread-safe; not from a callback of the same subscription. */
TERN_EXPORT tern_err_t tern_unsubscribe(tern_subscription_t **sub_p);

/*  ---- Messages ------------------------------------------------------- */

/*  Accessors. MSG must be non-NULL. String results are NUL-terminated and
    borrowed: valid until the message is destroyed. Empty strings mean "not
    set". Thread-safe for concurrent reads. */
TERN_EXPORT uint64_t tern_message_id(const tern_message_t *msg);  //  snowflake msg_id
TERN_EXPORT uint64_t tern_message_seq(const tern_message_t *msg); //  per-topic seq on the node
TERN_EXPORT const char *tern_message_topic(const tern_message_t *msg);
TERN_EXPORT int tern_message_priority(const tern_message_t *msg);            //  0..9
TERN_EXPORT uint32_t tern_message_delivery_count(const tern_message_t *msg); //  1 on first delivery
TERN_EXPORT const char *tern_message_trace_id(const tern_message_t *msg);    //  W3C traceparent
TERN_EXPORT const char *tern_message_producer(const tern_message_t *msg);    //  "" if none
TERN_EXPORT uint64_t tern_message_producer_seq(const tern_message_t *msg);
TERN_EXPORT uint64_t tern_message_timestamp_ns(const tern_message_t *msg); //  broker receive time
TERN_EXPORT uint64_t tern_message_expire_at_ns(const tern_message_t *msg); //  0 = never
TERN_EXPORT const char *tern_message_key(const tern_message_t *msg);
TERN_EXPORT const char *tern_message_origin(const tern_message_t *msg); //  origin datacenter
TERN_EXPORT const void *tern_message_data(const tern_message_t *msg);   //  payload (never NULL)
TERN_EXPORT size_t tern_message_size(const tern_message_t *msg);        //  payload size
TERN_EXPORT uint64_t tern_message_tag(const tern_message_t *msg);       //  delivery tag

/*  Number of metadata (header) pairs. */
TERN_EXPORT size_t tern_message_header_count(const tern_message_t *msg);

/*  Header pair INDEX (< count): sets *KEY and *VALUE (NUL-terminated,
    borrowed until the message is destroyed). Returns TERN_OK or
    TERN_ENOTFOUND if INDEX is out of range. */
TERN_EXPORT tern_err_t tern_message_header(const tern_message_t *msg, size_t index,
                                           const char **key, const char **value);

/*  Value of header KEY (the first one), or NULL. Borrowed as above. */
TERN_EXPORT const char *tern_message_header_get(const tern_message_t *msg, const char *key);

/*  Acknowledges MSG (the broker will not redeliver it); with CUMULATIVE, also
    every earlier delivery of the same subscription. Queued, not waited for.
    Returns TERN_OK, TERN_ECLOSED when the session that delivered it is gone
    (the broker redelivers it; nothing to do) or the subscription is closed,
    or TERN_ESTATE if MSG was already settled. Thread-safe; MSG stays owned
    by the caller (destroy it after). */
TERN_EXPORT tern_err_t tern_message_ack(tern_message_t *msg, bool cumulative);

/*  Negative acknowledgement: redeliver MSG after DELAY_MS, or after the
    broker's backoff when DELAY_MS < 0. Errors as tern_message_ack. */
TERN_EXPORT tern_err_t tern_message_nack(tern_message_t *msg, int64_t delay_ms);

/*  Moves MSG to its group's dead-letter queue now, with REASON (NULL = the
    broker's "term"; at most 256 bytes). Errors as tern_message_ack, and
    TERN_ETOOBIG for a long reason. */
TERN_EXPORT tern_err_t tern_message_term(tern_message_t *msg, const char *reason);

/*  Destroys a message (without acking it). Safe on NULL; nulls *MSG_P. */
TERN_EXPORT void tern_message_destroy(tern_message_t **msg_p);

/*  ---- Administration ------------------------------------------------ */

/*  Runs admin operation OP (e.g. "status", "topics", "topic.info",
    "topic.create", "groups", "dlq.list", "dlq.replay": see docs/client.md)
    with ARGS[0..COUNT) as string arguments, and waits up to TIMEOUT_MS (-1 =
    forever, 0 = the client's timeout_ms, including the time to connect and,
    in a cluster, to follow a leader). On TERN_OK, *JSON_OUT is the reply,
    one NUL-terminated JSON document; caller owns it and frees it with
    free(). On error *JSON_OUT is NULL and the result is TERN_EINVAL (bad
    arguments), TERN_ENAME (OP is not a valid name, or not an operation the
    broker knows: "unknown admin operation 'x'"), TERN_ETOPIC (missing or
    invalid topic argument), the broker's code (e.g. TERN_ENOTFOUND, "no such
    topic 'x'"), TERN_ETIMEOUT, TERN_ECONNREFUSED or TERN_EDENIED (first
    contact failed) or TERN_ECLOSED; the reason is in tern_last_reason().

    A write (an operation that changes something: topic.create/edit/delete/
    purge, group.*, dlq.replay, dlq.purge, peers.pause/resume,
    cluster.handover, and any name libtern does not know) is never sent
    twice: when its session is lost after it was sent, or the leader ran it
    but its in-sync replicas did not confirm it, the result is TERN_ETIMEOUT
    with a reason saying the outcome is unknown; read the state (topic.info,
    groups, ...) before trying again. A read (status, topics, topic.info,
    groups, dlq.list, dlq.get, msg.*, audit, trace, peers, cluster,
    cluster.verify) is sent again in the next session.

    In a cluster (docs/client.md, "Administration in a cluster") the
    application sees one broker: an operation with a "topic" argument
    (topic.*, groups, group.*, dlq.*, msg.*, audit) runs at the leader of the
    topic's partition, following a leader change (a TERN_ENOTLEADER naming
    the new leader at once; otherwise after a map refresh, backing off
    100 ms .. 1 s, at most 20 tries within TIMEOUT_MS; then TERN_ENOTLEADER,
    reason e.g. "partition 5 has no reachable leader", or TERN_ECONNREFUSED
    when the leader's node refused the connection). Only refusals made before
    anything ran are retried: TERN_ENOTLEADER from a node that does not lead,
    a leader whose session does not come up. A leader lost while it holds
    the request fails it at once: a read is asked again at the new leader, a
    write returns TERN_ETIMEOUT, outcome unknown. Any other refusal of a
    node's session (TERN_EDENIED from its CURVE allow list, ...) is returned
    as it is. "topics" and "trace" ask every up node and merge the answers
    (each topic, or the message, as the leader of its partition holds it;
    TERN_ENOTFOUND when no node knows the message); a node whose session is
    down is waited for at most 2 x connect_timeout_ms, and one lost while it
    is asked is left out; every other operation (status, peers*, cluster*) runs on
    the seed session, i.e. on the node the client reached first. On a single
    node the first topic operation waits for the client's probe (one round
    trip after connecting).
    Thread-safe; not from a callback. */
TERN_EXPORT tern_err_t tern_admin(tern_client_t *self, const char *op, const tern_header_t *args,
                                  size_t count, char **json_out, int timeout_ms);

/*  ---- Utilities ----------------------------------------------------- */

/*  The version of the libtern the program runs with: the TERN_VERSION_* of
    the header it was built from, which differ from those the program was
    compiled with when libtern.so was upgraded underneath it (an incompatible
    release changes the SONAME, libtern.so.MAJOR). Stores the components in
    *MAJOR, *MINOR and *PATCH (each may be NULL) and returns them as text,
    "MAJOR.MINOR.PATCH": static, never NULL. Thread-safe. Like zmq_version
    and mdb_version. */
TERN_EXPORT const char *tern_version(int *major, int *minor, int *patch);

/*  Parses a duration into *MS, as ternd's config and ternctl do: a bare
    number of milliseconds, or NUMBER UNIT parts from the largest unit to the
    smallest, each once: "500ms", "30s", "1m30s", "2h30m", "7d", "1w",
    "1.5s". Units (case matters): ms, s (sec), m (min), h, d, w. A part may
    have up to 6 decimals; the total must be whole milliseconds. Returns
    TERN_OK, or TERN_EINVAL (NULL argument, empty, unknown unit, units out
    of order, spaces or signs, finer than 1 ms, over 2^64-1 ms) with *MS
    unchanged. Thread-safe. */
TERN_EXPORT tern_err_t tern_parse_duration(const char *text, uint64_t *ms);

/*  Parses a size into *BYTES: NUMBER, an optional space, an optional unit
    (case ignored): B; K, M, G, T or KiB, MiB, GiB, TiB (powers of 1024);
    KB, MB, GB, TB (powers of 1000): "512", "64K", "64KiB", "1.5MB",
    "10 GiB". A fraction (up to 6 decimals) is rounded down to whole bytes.
    Returns TERN_OK, or TERN_EINVAL (NULL argument, empty, unknown unit, a
    fraction of a byte, over 2^64-1) with *BYTES unchanged. Thread-safe. */
TERN_EXPORT tern_err_t tern_parse_size(const char *text, uint64_t *bytes);

#ifdef __cplusplus
}
#endif
#endif
