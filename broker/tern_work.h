/*  tern_work.h - the catalogue of work items ternd's actors hand each other.

    Actors exchange these over inproc PUSH/PULL sockets as single-frame
    messages carrying { type, pointer } (tern_work_send/recv). Whoever
    receives a pointer owns it from then on; on a failed send the sender
    still owns it and frees it with the item's destructor. Every item any
    actor sends another is listed here, and nowhere else; the actor headers
    (tern_conn.h, tern_storer.h, tern_route.h, tern_repl.h) expose only the
    actor's constructor and its pipe commands. See docs/architecture.md for
    the whole flow.

    item        from -> to            created by  freed by
    PUBS        conn -> storer        conn        conn, when COMMITTED brings it back
    ADMIN       conn -> storer        conn        conn, when COMMITTED brings it back
                conn -> route (event) conn        route, after answering
    OPS         route -> storer       route       the storer after the commit, or route
                                                  when NOTICE brings it back (OPEN, admin)
    COMMITTED   storer -> conn        storer      conn
    NOTICE      storer -> route       storer      route
    EVENTS      conn -> route         conn        route
    DELIVERS    route -> conn (out)   route       conn, after sending the parts
    REPL        repl -> storer        repl        repl when REPL_DONE brings it back
                crepl -> storer       crepl       crepl when REPL_DONE brings it back
    REPL_DONE   storer -> repl        (the REPL item, committed)
                storer -> crepl       (an in-DC REPL item: in_dc set)
    COMMITTED   storer -> crepl       storer      in a cluster: crepl holds it until the
                crepl -> conn                     ISR has it, then forwards it (conn frees)
    NOTICE      storer -> crepl       storer      in a cluster: crepl holds it (FIFO) until
                crepl -> route        crepl       the ISR has its messages, then forwards it;
                                                  crepl makes one `inherited` NOTICE per
                                                  leadership (route frees both)
    REPL_ADMIN  conn -> repl -> conn  conn        conn, after relaying the answer
    OBSAFE      crepl -> repl         crepl       repl (tern_obsafe_destroy)
    Borrowing: a tern_pub_t's and tern_repl_rec_t's frame points into their
    own zmq_msg_t (they travel together); nothing borrows across items. An
    item whose receiver is gone (shutdown) is freed by whoever holds it.
*/
#ifndef TERN_WORK_H_INCLUDED
#define TERN_WORK_H_INCLUDED

#include "tern_err.h"
#include "tern_alloc.h"
#include "tern_config.h"
#include "tern_proto.h"
#include "tern_store.h"
#include <stdbool.h>
#include <stdint.h>
#include <czmq.h>
#include <zmq.h>

#define TERN_RID_MAX 256 //  ZeroMQ routing ids are at most 255 bytes

typedef enum {
    TERN_WORK_PUBS = 1,        //  conn -> storer: tern_pubs_t * (a drain's publishes)
    TERN_WORK_ADMIN = 2,       //  conn -> storer or route: tern_admin_t *
    TERN_WORK_OPS = 3,         //  route -> storer: tern_ops_t * (group state changes)
    TERN_WORK_COMMITTED = 4,   //  storer -> conn: tern_committed_t * (results of one commit)
    TERN_WORK_NOTICE = 5,      //  storer -> route: tern_notice_t * (results of one commit)
    TERN_WORK_EVENTS = 6,      //  conn -> route: tern_events_t * (a drain's session events)
    TERN_WORK_DELIVERS = 7,    //  route -> conn's out: tern_delivers_t * (DELIVER frames)
    TERN_WORK_REPL = 8,        //  repl -> storer: tern_repl_batch_t * (records to apply)
    TERN_WORK_REPL_DONE = 9,   //  storer -> repl: the same batch, committed
    TERN_WORK_REPL_ADMIN = 10, //  conn -> repl -> conn: tern_repl_admin_t * (peers ops)
    TERN_WORK_SYNCED = 11,     //  storer -> crepl: NULL; the commit whose results came last
                               //  is flushed to disk (cluster, durability fsync)
    TERN_WORK_OBSAFE = 12      //  crepl -> repl: tern_obsafe_t * (outbox the ISR holds)
} tern_work_type_t;

/*  One PUBLISH, decoded once by conn. FRAME.meta borrows HDR's data and
    FRAME.payload borrows BODY's data: the zmq_msg_t travel with the struct,
    so the payload is never copied before the LMDB write. Created by conn
    (pooled), filled by the storer, returned to conn in a tern_committed_t. */
typedef struct tern_pub_t {
    tern_frame_t frame;          //  decoded PUBLISH (storer fills msg_id, times...)
    zmq_msg_t hdr;               //  header frame; owns what frame.meta points into
    zmq_msg_t body;              //  payload frame; owns frame.payload
    uint64_t session_id;         //  the publishing session
    uint8_t rid[TERN_RID_MAX];   //  its routing id
    size_t rid_size;             //  routing id length
    tern_append_result_t result; //  filled by tern_store_batch_commit
    struct tern_pub_t *next;     //  conn's free list link
} tern_pub_t;

/*  An array of publishes: one per ROUTER drain. */
typedef struct tern_pubs_t {
    tern_pub_t **items;       //  owned pointers
    size_t count;             //  items used
    size_t cap;               //  items allocated
    struct tern_pubs_t *next; //  link in a commit's list / conn's free list
} tern_pubs_t;

/*  An admin request (tern_admin.h names the actor of each op). conn creates
    it; the storer (topic writes) or route (groups, group.*, dlq.*) executes
    it; storer returns it to conn in a commit, route answers the client
    itself and frees it. */
typedef struct tern_admin_t {
    uint64_t session_id;            //  requesting session
    uint8_t rid[TERN_RID_MAX];      //  its routing id
    size_t rid_size;                //  routing id length
    uint64_t req_id;                //  the ADMIN's request id
    uint8_t op;                     //  tern_admin_op_t (tern_admin.h)
    char topic[TERN_TOPIC_MAX + 1]; //  "topic" argument
    char group[TERN_NAME_MAX + 1];  //  "group" argument
    uint64_t max_age_ms;            //  topic.create limits
    uint64_t max_msgs;              //  topic.create limits
    uint64_t max_bytes;             //  topic.create limits
    uint8_t start;                  //  group.seek / group.reset: tern_start_t
    uint64_t start_value;           //  its seq or time (ns)
    uint64_t seq;                   //  dlq.replay (0 = all), dlq.get, get: the message
    tern_err_t err;                 //  result
    uint64_t count;                 //  removed / purged / replayed
    uint32_t topic_id;              //  topic id (create)
    size_t pubs_before;             //  storer: publishes of its commit queued before it
    struct tern_admin_t *next;      //  link in a commit's list
} tern_admin_t;

/*  Group state operations route asks the storer to persist. */
typedef enum {
    TERN_OP_OPEN = 1,    //  create the group if missing (start, start_value)
    TERN_OP_DELIVER = 2, //  seq delivered (priority, delivery_count, due_ms)
    TERN_OP_ACK = 3,     //  seq acked
    TERN_OP_NACK = 4,    //  seq due again at due_ms
    TERN_OP_DEAD = 5,    //  seq to the DLQ (delivery_count, reason)
    TERN_OP_REPLAY = 6,  //  DLQ back to pending (due_ms; seq, or 0 = all); moved -> count
    TERN_OP_SEEK = 7,    //  admin group.seek: cursors to (start, start_value), pending dropped
    TERN_OP_RESET = 8,   //  admin group.reset: state deleted, opened at (start, start_value)
    TERN_OP_DROP = 9,    //  admin group.delete: the group and all its state
    TERN_OP_PURGE = 10   //  admin dlq.purge: the DLQ emptied; removed -> count
} tern_op_type_t;

/*  Why route persists an ACK or a NACK it did not get from a consumer: the
    message's history then says "expired" or "timeout", not "acked" or
    "nacked" (tern_store trace events). */
typedef enum {
    TERN_CAUSE_CONSUMER = 0, //  the consumer's own ACK / NACK
    TERN_CAUSE_EXPIRED = 1,  //  ACK: route dropped an entry whose message expired
    TERN_CAUSE_ACK_WAIT = 2  //  NACK: the ack wait ran out (not a nack)
} tern_op_cause_t;

//  "session <id> sub <id>" of two 20-digit ids, with its NUL.
#define TERN_CONSUMER_MAX 53

/*  One group state operation. Two per delivered message (DELIVER, ACK), so
    it stays small (~200 bytes; the op queue and the storer's transaction
    hold thousands under fan-out): a DEAD op's reason, rare and up to
    TERN_REASON_MAX, is a heap string rather than a 257-byte field in every
    op. */
typedef struct {
    uint8_t type;                         //  tern_op_type_t
    uint8_t cause;                        //  ACK / NACK: tern_op_cause_t
    uint8_t priority;                     //  DELIVER: lane
    uint8_t start;                        //  OPEN: tern_start_t
    uint32_t topic_id;                    //  the topic
    uint32_t partition;                   //  cluster: the topic's (the storer drops ops of a
                                          //  partition this node no longer leads)
    uint32_t delivery_count;              //  DELIVER / DEAD
    uint64_t seq;                         //  the message
    uint64_t due_ms;                      //  DELIVER / NACK / REPLAY
    uint64_t start_value;                 //  OPEN
    uint64_t start_seq;                   //  OPEN / SEEK / RESET: where the lanes start (the
                                          //  storer, at commit; 0 = nothing changed)
    tern_err_t err;                       //  OPEN / admin op result
    uint64_t count;                       //  REPLAY: entries moved; PURGE: removed
    uint64_t ob;                          //  ACK / DEAD: its ack-state outbox position (the
                                          //  storer, at commit, with cross-DC on; 0 = none)
    void *ctx;                            //  admin ops: the tern_admin_t (owned), else NULL
    char *reason;                         //  DEAD: why (owned, freed by tern_ops_destroy),
                                          //  NULL = none
    char group[TERN_NAME_MAX + 1];        //  group name
    char consumer[TERN_CONSUMER_MAX + 1]; //  DELIVER: the consumer, for the history
} tern_op_t;

/*  A batch of ops. Route creates it, the storer persists it in its next commit
    and hands it back to route in a tern_notice_t if it holds an OPEN or an
    admin op (non-NULL ctx: route reads their results and answers, then frees
    it); otherwise the storer frees it after the commit. */
typedef struct tern_ops_t {
    tern_op_t *items;        //  owned array
    size_t count;            //  used
    size_t cap;              //  allocated
    struct tern_ops_t *next; //  link in a notice's list
} tern_ops_t;

/*  What one commit means to conn: publish batches (with results) and admin
    requests to answer. Storer creates it, conn frees it. */
typedef struct {
    tern_pubs_t *pubs;    //  list of batches (owned)
    tern_admin_t *admins; //  list of admin requests (owned)
} tern_committed_t;

/*  One appended message, for route's dispatch. */
typedef struct {
    uint32_t topic_id; //  its topic
    uint8_t priority;  //  its lane
    uint64_t seq;      //  its seq
} tern_appended_t;

/*  A topic deleted or purged by admin: route drops or rewinds its state. */
typedef struct {
    char name[TERN_TOPIC_MAX + 1]; //  the topic
    bool purge;                    //  true: purged (seqs continue); false: deleted
} tern_topic_gone_t;

/*  A durable group whose stored state a peer DC changed (replicated ack
    state): route adopts it (tern_repl.c, docs/replication.md). */
typedef struct {
    char topic[TERN_TOPIC_MAX + 1]; //  the topic
    char group[TERN_NAME_MAX + 1];  //  the group
} tern_group_ref_t;

/*  What one commit means to route. Storer creates it, route frees it. */
typedef struct {
    tern_appended_t *appended;   //  owned array of new messages
    size_t appended_count;       //  entries
    tern_ops_t *ops;             //  route's op batches, with results (owned)
    tern_topic_gone_t *gone;     //  owned array of deleted / purged topics
    size_t gone_count;           //  entries
    tern_group_ref_t *reload;    //  owned array of groups changed by peer DCs
    size_t reload_count;         //  entries
    uint32_t *created;           //  owned array of topic ids made by topic.create
    size_t created_count;        //  entries
    tern_gop_t *gops;            //  cluster: this commit's group ops, in order, for crepl to ship
                                 //  to the followers (tern_crepl_group.c; owned, crepl frees)
    uint32_t *gop_topics;        //  the topic id of each (owned)
    size_t gop_count;            //  entries
    bool inherited;              //  cluster: crepl's, at a leadership start: APPENDED holds each
                                 //  topic of the partition at its last_seq then, which the ISR
                                 //  now has (route sets its high watermarks to exactly that,
                                 //  and adopts the stored group state of PARTITION's topics)
    uint32_t partition;          //  inherited: the partition whose leadership started
    tern_outbox_mark_t *obmarks; //  cluster: per partition, the highest outbox position the
                                 //  commit wrote (owned; crepl turns it into OBSAFE)
    size_t obmark_count;         //  entries
} tern_notice_t;

/*  OBSAFE: outbox positions a clustered node may ship cross-DC now. For
    each mark, the entries of its partition up to its position are in
    every in-sync replica's store: crepl released the NOTICE of the commit
    that wrote them (the ack rule held for that partition's records in it),
    or, at a leadership start, the inherited NOTICE (the mark is then the
    partition's outbox last as found when the leadership started, read with
    its topic list; its followers' catch-up holds at least that). Rule 2 of docs/replication.md
   "Outbox in a cluster": a record shipped before the ISR has it could be truncated from this DC
    after a failover while another DC keeps it. Only for partitions this
    node leads (the epoch it leads them in is EPOCH of each mark's entry in
    EPOCHS), in commit order, so a partition's marks only go up within one
    leadership. Sent only when the repl actor runs (peers configured).
    crepl creates it, repl frees it. */
typedef struct {
    tern_outbox_mark_t *marks; //  owned array
    uint64_t *epochs;          //  owned array [count]: the leader epoch of each mark's partition
    size_t count;              //  entries
} tern_obsafe_t;

/*  Session events conn forwards to route. */
typedef enum {
    TERN_EV_OPEN = 1,   //  HELLO accepted: rid known
    TERN_EV_GONE = 2,   //  BYE, timeout or unreachable: drop subs, return in-flight
    TERN_EV_SUB = 3,    //  SUBSCRIBE
    TERN_EV_UNSUB = 4,  //  UNSUBSCRIBE
    TERN_EV_ACK = 5,    //  ACK
    TERN_EV_NACK = 6,   //  NACK
    TERN_EV_TERM = 7,   //  TERM
    TERN_EV_CREDIT = 8, //  CREDIT
    TERN_EV_ADMIN = 9   //  admin op route answers (groups, group.*, dlq.*): admin set
} tern_ev_type_t;

typedef struct {
    uint8_t type;                  //  tern_ev_type_t
    bool cumulative;               //  ACK
    bool has_delay;                //  NACK: delay_ms given
    uint8_t start;                 //  SUB
    uint32_t credit;               //  SUB / CREDIT
    uint32_t delay_ms;             //  NACK
    uint64_t session_id;           //  the session
    uint64_t req_id;               //  request id (for OK / ERROR)
    uint64_t sub_id;               //  UNSUB / ACK / NACK / TERM / CREDIT
    uint64_t tag;                  //  ACK / NACK / TERM
    uint64_t start_value;          //  SUB
    uint8_t *rid;                  //  OPEN: owned copy of the routing id
    size_t rid_size;               //  OPEN
    char *text;                    //  SUB: pattern; TERM: reason (owned, may be NULL)
    char group[TERN_NAME_MAX + 1]; //  SUB
    tern_admin_t *admin;           //  ADMIN (owned)
} tern_event_t;

typedef struct {
    tern_event_t *items; //  owned array
    size_t count;        //  used
    size_t cap;          //  allocated
} tern_events_t;

/*  DELIVER frames route hands to conn as ONE work item per batch (up to
    128) instead of three frames per message. Each item holds the three
    parts conn sends on its ROUTER: routing id, encoded header, payload
    (copied once from the LMDB page, and shared by reference among the
    DELIVERs of the same message: zmq_msg_copy). Items go to the wire in order; route
    sends a pending batch before any other frame on conn's out socket, so
    OK/ERROR/REPLY never overtake earlier DELIVERs. Route creates it, conn
    sends the parts without a copy and frees it. */
typedef struct {
    zmq_msg_t parts[3]; //  routing id, DELIVER header, payload
} tern_deliver_t;

typedef struct {
    tern_deliver_t *items; //  owned array; each item's parts owned
    size_t count;          //  items in use
    size_t cap;            //  items allocated
} tern_delivers_t;

/*  An admin request a client sent to the client endpoint (`peers`,
    `peers.pause`, `peers.resume`): conn creates it and sends it to the repl
    actor's admin endpoint (tern_repl_admin_endpoint); repl answers it (ERR,
    REPLY) and sends it back to REPLY_TO as TERN_WORK_REPL_ADMIN; conn relays
    the answer to the session and frees it (tern_repl_admin_destroy). Whoever
    cannot pass it on frees it. */
typedef struct {
    uint8_t rid[TERN_RID_MAX];    //  the client's routing id
    size_t rid_size;              //  its length
    uint64_t req_id;              //  the ADMIN's request id
    uint8_t op;                   //  tern_admin_op_t: TERN_ADMIN_PEERS*
    char name[TERN_NAME_MAX + 1]; //  peer DC name (pause / resume)
    char reply_to[128];           //  conn's inbox (repl connects PUSH once)
    tern_err_t err;               //  out: TERN_OK or the ERROR code
    char reason[128];             //  out: ERROR reason
    char *reply;                  //  out: JSON document (malloc'd), NULL on error
} tern_repl_admin_t;

/*  One received REPL_RECORD. FRAME borrows HDR and BODY (like tern_pub_t),
    so the payload is copied once, into the LMDB page. */
typedef struct {
    tern_frame_t frame;          //  decoded REPL_RECORD (msg_id, origin... as sent)
    zmq_msg_t hdr;               //  header frame; owns what frame.meta points into
    zmq_msg_t body;              //  payload frame; owns frame.payload
    tern_append_result_t result; //  filled by the commit (duplicate = already here)
    uint64_t stream;             //  in_dc: crepl's stream generation of frame.partition (>= 1)
} tern_repl_rec_t;

/*  The longest inbound cursor name: "DC/IDENTITY" (the origin DC and the
    store identity of the node that ships, docs/replication.md). */
#define TERN_REPL_CURSOR_MAX (TERN_NAME_MAX + 1 + TERN_STORE_IDENTITY_LEN)

/*  A named position: an inbound cursor (origin "DC" or "DC/IDENTITY" ->
    last applied outbox position) or a peer's confirmation of our outbox. */
typedef struct {
    char name[TERN_REPL_CURSOR_MAX + 1]; //  inbound cursor name / peer DC name
    uint64_t position;                   //  outbox position
    uint32_t partition;                  //  confirmation: the outbox partition (0 on a single
                                         //  node; a clustered node's partition stream)
} tern_repl_pos_t;

/*  After an in-DC batch commits, crepl confirms POS of partition PT in
    epoch EP to its leader (if its stream STREAM is still the current one). */
typedef struct {
    uint32_t pt;     //  partition
    uint64_t ep;     //  epoch of the stream
    uint64_t pos;    //  position durable once the batch is
    uint64_t stream; //  crepl's stream generation of that partition
} tern_repl_mark_t;

/*  What the repl actor asks the storer to write in ONE commit: the records of
    one ROUTER drain, the inbound cursors that cover them, and outbox
    confirmations. Created by repl; the storer queues it
    (tern_repl_batch_queue), commits, sets ERR and sends it back as
    TERN_WORK_REPL_DONE; repl frees it. If repl is gone the storer frees it.
    In a cluster the crepl actor (in-DC replication) sends the same item with
    IN_DC set: its records (CREPL_RECORD) are appended at the leader's seq
    with tern_store_batch_append_replica, its CREPL_TRUNCATE entries (in
    RECS, in arrival order: frame.topic, frame.seq = keep up to) cut a
    topic's tail, nothing of it is announced to route (a follower never
    delivers), and REPL_DONE goes back to crepl, which confirms MARKS. */
typedef struct tern_repl_batch_t {
    tern_repl_rec_t **recs;                   //  owned records
    size_t count;                             //  used
    size_t cap;                               //  allocated
    tern_repl_pos_t inbound[TERN_PEERS_MAX];  //  cursors to store with the records
    size_t inbound_count;                     //  used
    tern_repl_pos_t confirms[TERN_PEERS_MAX]; //  outbox confirmations to store
    size_t confirm_count;                     //  used
    tern_err_t err;                           //  commit result (TERN_OK: all durable)
    bool in_dc;                               //  crepl's follower batch (see above)
    tern_repl_mark_t *marks;                  //  in_dc: positions to confirm (owned)
    size_t mark_count;                        //  used
    size_t mark_cap;                          //  allocated
    struct tern_repl_batch_t *next;           //  storer's list link
} tern_repl_batch_t;

/*  Sends { TYPE, PTR } on inproc socket SOCK (raw libzmq, never blocks: the
    inproc sockets have no HWM; memory is bounded by client windows and
    credit). Takes ownership of PTR for the receiver on success (returns 0);
    on failure (the peer actor is gone) the caller still owns it (-1). */
int tern_work_send(void *sock, tern_work_type_t type, void *ptr);

/*  The inproc sockets items travel on: a PULL bound at ENDPOINT (an actor's
    inbox) or a PUSH connected to one; no HWM, and a PUSH lingers 1 s so the
    peer reads what was sent last. *OWNER gets the czmq socket (destroy it
    with zsock_destroy even on failure); returns the raw socket, or NULL. */
void *tern_work_pull_bind(zsock_t **owner, const char *endpoint);
void *tern_work_push_connect(zsock_t **owner, const char *endpoint);

/*  Encodes FRAME into BUF (CAP bytes; TERN_HEADER_MAX suffices) and sends
    it on node-to-node socket SOCK without blocking: RID first when it is not
    NULL (a ROUTER), then the header, then FRAME->payload when the command
    carries one. WHO names the caller in the log line of a frame that does
    not encode. Returns 0, or -1 with errno (EINVAL: it does not encode,
    EAGAIN: the peer's queue is full, EHOSTUNREACH: no such RID). */
int tern_frame_send(void *sock, const uint8_t *rid, size_t rid_size, const tern_frame_t *frame,
                    uint8_t *buf, size_t cap, const char *who);

/*  Sets the options every node-to-node socket (repl, crepl) has: HWM both
    ways, no linger, messages up to a payload of MAX_PAYLOAD plus a header;
    a ROUTER also refuses to drop a frame for an unknown routing id
    (ZMQ_ROUTER_MANDATORY: the sender learns the peer is gone). */
void tern_node_sock_options(zsock_t *sock, int hwm, uint64_t max_payload);

/*  Receives one item (non-blocking if DONTWAIT). Returns 0 and fills *TYPE and
 *PTR (caller owns it), or -1 (errno EAGAIN...). */
int tern_work_recv(void *sock, int flags, tern_work_type_t *type, void **ptr);

/*  Growable arrays; out of memory ends the process (tern_alloc.h). */
tern_event_t *tern_events_push(tern_events_t *self);
void tern_events_destroy(tern_events_t **self_p);
tern_op_t *tern_ops_push(tern_ops_t *self);
void tern_ops_destroy(tern_ops_t **self_p);
void tern_notice_destroy(tern_notice_t **self_p);

/*  Destructors for items that end their trip where they were not created
    (e.g. a peer actor is already gone). Safe on NULL; null the pointer.
    tern_delivers_destroy closes every item's parts (a part zmq_msg_send
    moved out is empty: closing it is a no-op). */
void tern_pub_destroy(tern_pub_t **self_p);
void tern_pubs_destroy(tern_pubs_t **self_p);
void tern_committed_destroy(tern_committed_t **self_p);
void tern_delivers_destroy(tern_delivers_t **self_p);
void tern_repl_admin_destroy(tern_repl_admin_t **self_p);
void tern_repl_batch_destroy(tern_repl_batch_t **self_p);
void tern_repl_rec_destroy(tern_repl_rec_t **self_p);
void tern_obsafe_destroy(tern_obsafe_t **self_p);

/*  The storer's view of the in-DC streams (crepl's follower streams, one
    per followed partition). Why: a follower's copy must stay a prefix of its
    leader's log plus at most its own unacknowledged tail (a deposed leader's
    stale publishes, which can commit after its SYNC), because the leader's
    SYNC anchors take the highest matching record for "everything below
    matches". When a record of a stream fails (our own stale commit holds its
    seq), the stream's later records at higher seqs would land above the
    divergent ones and hide them (acknowledged messages lost on an in-sync
    replica). So a stream stops at its first failure: its later records, in
    the same commit (chained with tern_store_batch_only_if) and in batches
    already on their way (FAILED), fail with TERN_ESTATE; crepl syncs again
    with a new stream, whose anchors find the divergence at our tail. */
typedef struct {
    uint64_t failed;        //  the stream one of whose records failed here (0: none)
    uint64_t last_stream;   //  stream of the record queued last in this commit
    const tern_err_t *last; //  that record's result (NULL: none in this commit)
} tern_repl_stream_t;

typedef struct {
    tern_repl_stream_t *pts; //  [count] by partition (owned by the storer)
    uint32_t count;          //  partitions
} tern_repl_streams_t;

/*  After the commit of BATCH (in_dc): notes the streams that failed in
    STREAMS and forgets BATCH's results (it goes back to crepl). */
void tern_repl_streams_done(tern_repl_streams_t *streams, const tern_repl_batch_t *batch);

/*  The history detail of a peer DC's REPL_ACKSTATE FRAME into BUF: its
    reason, else "acked in DC" / "dead in DC" (DC = its origin, where it
    happened). Returns BUF. */
const char *tern_repl_ackstate_reason(const tern_frame_t *frame, char *buf, size_t size);

/*  Queues the batch's appends (local = false: never shipped again; in_dc:
    replica appends and truncates, in order, each stream stopping at its
    first failure as STREAMS (may be NULL) says), inbound
    cursors and confirmations on the store batch BATCH. SELF stays owned by the
    caller and borrowed by BATCH until its commit. */
void tern_repl_batch_queue(tern_repl_batch_t *self, tern_store_batch_t *batch,
                           tern_repl_streams_t *streams);

/*  Reads a work item out of a frame already received (DATA, SIZE), as
    tern_work_recv does: 0 and *TYPE, *PTR (caller owns it), or -1 if the
    frame is not a work item. */
int tern_work_parse(const void *data, size_t size, tern_work_type_t *type, void **ptr);

/*  Wall clock helpers. */
uint64_t tern_now_ms(void);
uint64_t tern_now_ns(void);

/*  Names the calling thread NAME (at most 15 characters), as top -H,
    ps -L and /proc/PID/task/TID/comm show it: each actor names itself. */
void tern_thread_name(const char *name);

/*  Hex of a routing id, for hash keys: OUT needs 2 * size + 1 bytes. */
void tern_rid_hex(const uint8_t *rid, size_t size, char *out);

#endif
