/*  tern_etcd.h - a small synchronous etcd v3 client over the JSON gateway.

    Every decision a cluster of ternd nodes must agree on (who is alive, who
    is the controller, who leads a partition in which epoch) is a lease, a
    compare-and-swap transaction or a watch in etcd (docs/cluster.md). This
    is the one place that speaks to etcd: libcurl POSTs JSON to etcd 3.4's
    gRPC gateway (/v3/kv/range, /v3/kv/put, /v3/kv/deleterange, /v3/kv/txn,
    /v3/lease/grant, /v3/lease/keepalive, /v3/lease/revoke, /v3/watch) and
    jansson parses the replies. Keys and values are bytes (base64 on the
    wire); revisions and lease ids are int64.

    Endpoints and failover. The client holds a list of member URLs and uses
    one at a time; when it cannot reach it, or the member answers that it has
    no leader, the call moves on to the next member within the same call's
    deadline, and later calls start from the member that last worked. A
    write whose outcome is unknown (the request was sent, then the member
    went silent or timed out) is not resent to another member when resending
    could change the answer (txn, lease grant): the call returns
    TERN_ETIMEOUT and the caller re-reads. While members answer that they
    have no leader (an election), the call keeps trying them until its
    deadline, so it rides through a leader change. Every request carries etcd's
    "require leader" metadata, so a member cut off from its cluster answers
    at once instead of serving stale reads or stalling.

    Errors. Every call returns a tern_err_t and never asserts on a reply:
      TERN_OK        done
      TERN_ETIMEOUT  the deadline passed (a write's outcome may be unknown)
      TERN_ECLOSED   no member could be reached (connection refused, ...)
      TERN_EBUSY     members answered but none could serve (no leader,
                     too many requests, ...): retry later
      TERN_ESTATE    the lease is gone (expired or revoked)
      TERN_ERANGE    the revision asked for was compacted away
      TERN_ETOOBIG   the request is over etcd's size limit (1.5 MiB by default)
      TERN_EINVAL    etcd refused the request as invalid
      TERN_EDENIED   etcd's authentication refused us
      TERN_EMALFORMED the reply was not the JSON etcd sends
    tern_etcd_reason() then says what happened, naming the member(s).

    Threading: a tern_etcd_t is used by one thread at a time (libcurl easy
    handles are not shared); each actor creates its own. Calls block for at
    most the timeout given to tern_etcd_new (per call). Watches run on their
    own thread (tern_etcd_watch_t below) and never block their reader.
*/
#ifndef TERN_ETCD_H_INCLUDED
#define TERN_ETCD_H_INCLUDED

#include "tern_err.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tern_etcd_t tern_etcd_t;
typedef struct tern_etcd_watch_t tern_etcd_watch_t;

/*  One key-value pair as etcd stores it. KEY and VALUE are NUL-terminated
    copies (etcd's bytes may hold NULs: use the sizes). */
typedef struct {
    char *key;               //  key bytes + NUL, owned
    size_t key_size;         //  key length
    char *value;             //  value bytes + NUL, owned ("" for a delete event)
    size_t value_size;       //  value length
    int64_t create_revision; //  revision that created the key (0 in a delete event)
    int64_t mod_revision;    //  revision of its last change (of the delete, in an event)
    int64_t version;         //  number of changes since creation (0 after a delete)
    int64_t lease;           //  lease the key is bound to, 0 if none
} tern_etcd_kv_t;

/*  The answer to tern_etcd_get. */
typedef struct {
    tern_etcd_kv_t *kvs; //  count pairs in key order, owned
    size_t count;        //  number of pairs
    int64_t revision;    //  the store's revision when it was read (watch from revision + 1)
} tern_etcd_kvs_t;

/*  Frees KVS and nulls *KVS_P; safe on NULL. */
void tern_etcd_kvs_destroy(tern_etcd_kvs_t **kvs_p);

/*  Creates a client for the comma-separated member URLs ENDPOINTS (e.g.
    "http://10.0.0.1:2379,http://10.0.0.2:2379"; at most 16) whose calls each
    give up after TIMEOUT_MS (> 0). Contacts nobody yet. Returns NULL if
    ENDPOINTS is empty or holds something that is not an http:// or https://
    URL, or TIMEOUT_MS <= 0. Caller owns the result. */
tern_etcd_t *tern_etcd_new(const char *endpoints, int timeout_ms);

/*  Sets the deadline of the next calls to TIMEOUT_MS (> 0; others ignored). */
void tern_etcd_set_timeout(tern_etcd_t *self, int timeout_ms);

/*  Safe on NULL, idempotent; nulls *SELF_P. */
void tern_etcd_destroy(tern_etcd_t **self_p);

/*  The reason for the last failed call, e.g. "etcd http://127.0.0.1:2379:
    Couldn't connect to server"; "" after a success. Borrowed; valid until
    the next call on SELF. */
const char *tern_etcd_reason(tern_etcd_t *self);

/*  The endpoint calls start from (the one that last worked). Borrowed;
    valid until SELF is destroyed. */
const char *tern_etcd_endpoint(tern_etcd_t *self);

/*  Reads KEY, or every key that starts with KEY if PREFIX ("" with PREFIX is
    the whole keyspace), as of now (linearizable). *KVS_P gets the pairs (none
    if absent: still TERN_OK) and the revision; caller owns it. */
tern_err_t tern_etcd_get(tern_etcd_t *self, const char *key, bool prefix, tern_etcd_kvs_t **kvs_p);

/*  Writes KEY = VALUE (SIZE bytes), bound to LEASE unless it is 0 (the key
    then goes when the lease does). *REVISION_P (may be NULL) gets the
    revision of the write. TERN_ESTATE if LEASE is gone. */
tern_err_t tern_etcd_put(tern_etcd_t *self, const char *key, const void *value, size_t size,
                         int64_t lease, int64_t *revision_p);

/*  Deletes KEY, or every key starting with KEY if PREFIX. *DELETED_P and
    *REVISION_P (both may be NULL) get the number of keys deleted and the
    store's revision after it. Deleting nothing is TERN_OK with 0. */
tern_err_t tern_etcd_delete(tern_etcd_t *self, const char *key, bool prefix, int64_t *deleted_p,
                            int64_t *revision_p);

/*  What a compare of a transaction looks at; every compare is "equal". */
typedef enum {
    TERN_ETCD_MOD = 0,    //  the key's mod_revision equals REVISION (0: the key is absent)
    TERN_ETCD_CREATE = 1, //  the key's create_revision equals REVISION (0: absent)
    TERN_ETCD_VALUE = 2,  //  the key's value equals VALUE (an absent key never does)
    TERN_ETCD_LEASE = 3,  //  the key is bound to lease REVISION (0: to none or absent)
} tern_etcd_target_t;

typedef struct {
    const char *key;           //  the key compared
    tern_etcd_target_t target; //  what is compared
    int64_t revision;          //  MOD, CREATE: the revision; LEASE: the lease id
    const void *value;         //  VALUE: the bytes
    size_t value_size;         //  VALUE: their length
} tern_etcd_compare_t;

typedef struct {
    bool remove;       //  true: delete KEY (all of PREFIX if prefix); false: put
    const char *key;   //  the key written or deleted
    bool prefix;       //  delete: every key starting with KEY
    const void *value; //  put: the bytes
    size_t value_size; //  put: their length
    int64_t lease;     //  put: lease to bind the key to, 0 for none
} tern_etcd_op_t;

/*  Compare-and-swap: if every compare in CMP[0..NCMP-1] holds, applies
    OPS[0..NOPS-1] atomically, else changes nothing. *SUCCEEDED gets which;
    *REVISION_P (may be NULL) the revision of the write when it succeeded
    (the partition epochs of docs/cluster.md), else the current revision. A
    compare that fails is TERN_OK with *SUCCEEDED false; TERN_ETIMEOUT means
    the outcome is unknown: read the keys again. */
tern_err_t tern_etcd_txn(tern_etcd_t *self, const tern_etcd_compare_t *cmp, size_t ncmp,
                         const tern_etcd_op_t *ops, size_t nops, bool *succeeded,
                         int64_t *revision_p);

/*  Grants a lease of TTL_S seconds (etcd may raise it to its minimum, about
    1.5 x its election timeout). *LEASE_P gets its id, *TTL_P (may be NULL)
    the TTL granted. */
tern_err_t tern_etcd_lease_grant(tern_etcd_t *self, int64_t ttl_s, int64_t *lease_p,
                                 int64_t *ttl_p);

/*  Renews LEASE once (one request on the keepalive stream). *TTL_P (may be
    NULL) gets the TTL from now. TERN_ESTATE if the lease is gone: every key
    bound to it was deleted and it cannot come back. */
tern_err_t tern_etcd_lease_keepalive(tern_etcd_t *self, int64_t lease, int64_t *ttl_p);

/*  What etcd says of LEASE (LeaseTimeToLive): *TTL_P the whole seconds left,
    truncated toward zero (so 0 means "less than a second left, or expired
    and not revoked yet"), -1 when the lease is gone; *GRANTED_P (may be
    NULL) the TTL it was granted, 0 when gone. A read: it renews nothing. */
tern_err_t tern_etcd_lease_ttl(tern_etcd_t *self, int64_t lease, int64_t *ttl_p,
                               int64_t *granted_p);

/*  Revokes LEASE, deleting its keys at once. TERN_ESTATE if it was gone. */
tern_err_t tern_etcd_lease_revoke(tern_etcd_t *self, int64_t lease);

//  ---------------------------------------------------------------------------
//  Watches (tern_etcd_watch.c)
//
//  A watch streams every change of a key prefix from a revision on. It runs
//  on its own thread with its own connection, so the actor that reads it is
//  never blocked: it polls tern_etcd_watch_fd() (readable while an event is
//  waiting; zloop_poller and zmq_poll take it) and takes events with
//  tern_etcd_watch_next(). When the stream breaks, the thread reconnects
//  to the next member and resumes after the last revision it delivered, so
//  no event is lost or repeated across a failover; it says so with a DOWN
//  event (and UP once resumed).

typedef enum {
    TERN_ETCD_EV_PUT = 0,       //  KV was written (create or update)
    TERN_ETCD_EV_DELETE = 1,    //  KV.key was deleted at KV.mod_revision
    TERN_ETCD_EV_DOWN = 2,      //  the stream broke; retrying (REASON says why)
    TERN_ETCD_EV_UP = 3,        //  the stream is back (after DOWN); nothing was missed
    TERN_ETCD_EV_COMPACTED = 4, //  history from the start revision is gone (compacted at
                                //  KV.mod_revision): re-read with get, watch anew. Last event.
} tern_etcd_event_type_t;

typedef struct {
    tern_etcd_event_type_t type; //  what happened
    tern_etcd_kv_t kv;           //  PUT, DELETE: the pair; COMPACTED: mod_revision only
    char *reason;                //  DOWN: why, owned; else NULL
} tern_etcd_event_t;

/*  Frees EVENT and nulls *EVENT_P; safe on NULL. */
void tern_etcd_event_destroy(tern_etcd_event_t **event_p);

/*  Starts watching every key that starts with PREFIX from revision
    FROM_REVISION on (> 0; usually a get's revision + 1) over the members
    ENDPOINTS (as for tern_etcd_new). Connects in the background. Returns NULL
    on bad arguments. Caller owns the result. */
tern_etcd_watch_t *tern_etcd_watch_new(const char *endpoints, const char *prefix,
                                       int64_t from_revision);

/*  Stops the thread, drops undelivered events; safe on NULL; nulls *SELF_P. */
void tern_etcd_watch_destroy(tern_etcd_watch_t **self_p);

/*  A file descriptor that is readable while an event waits. Borrowed; valid
    until SELF is destroyed. Do not read it: call tern_etcd_watch_next. */
int tern_etcd_watch_fd(tern_etcd_watch_t *self);

/*  Takes the next event without blocking; NULL if none waits. Caller owns
    the result. Events come in revision order. */
tern_etcd_event_t *tern_etcd_watch_next(tern_etcd_watch_t *self);

/*  Waits up to TIMEOUT_MS (-1 forever) for the next event; NULL on timeout.
    For tests and tools; an actor polls the fd instead. */
tern_etcd_event_t *tern_etcd_watch_wait(tern_etcd_watch_t *self, int timeout_ms);

#endif
