/*  tern_conn_priv.h - the conn actor's private state, shared by its files.

    Only broker/tern_conn*.c include this. tern_conn.c runs the actor
    (frames, PUBACKs, forwarding, the loop); tern_conn_session.c the
    session table (HELLO, identity, heartbeats, expiry); tern_conn_admin.c
    the admin plane. Functions shared between them are prefixed c_; each
    file's own helpers stay static (s_).
*/
#ifndef TERN_CONN_PRIV_H_INCLUDED
#define TERN_CONN_PRIV_H_INCLUDED

#include "tern_conn.h"
#include "tern_admin.h"
#include "tern_auth.h"
#include "tern_json.h"
#include "tern_proto.h"
#include "tern_work.h"
#include <stdbool.h>
#include <stdint.h>

#define S_DRAIN_MAX 1024  //  frames read from the ROUTER per drain
#define S_POOL_MAX  16384 //  pub structs kept for reuse
#define S_HWM       100000

typedef struct c_session_t {
    uint64_t id;                    //  unique per conn actor, from 1
    uint8_t rid[TERN_RID_MAX];      //  routing id
    size_t rid_size;                //  its length
    char key[2 * TERN_RID_MAX + 1]; //  hex of rid: hash key
    uint64_t last_recv_ms;          //  last frame from the client
    uint64_t last_send_ms;          //  last frame conn sent it
    uint64_t timeout_ms;            //  silence after which the session is dead
    tern_puback_t *acks;            //  PUBACK entries of the current commit
    uint32_t ack_count;             //  entries used
    uint32_t ack_cap;               //  entries allocated
    struct c_session_t *ack_next;   //  list of sessions with entries to flush
    bool ack_listed;                //  on that list
    bool unreachable;               //  a send found the peer gone: end at the next tick
    char user[TERN_NAME_MAX + 1];   //  CURVE key name from ZAP ("" with auth none)
    tern_acl_t *acl;                //  roles at HELLO (a reference); NULL = unrestricted
    const tern_role_t *role;        //  the key's role in ACL; NULL with an ACL = nothing
    bool ordered;                   //  its HELLO had `rs` true: refusals stick (cluster)
    uint16_t *stuck;                //  cluster, ordered: per partition, the code that refused
                                    //  one of its publishes there, refusing the later ones
                                    //  until a resend (`rs` true); owned, NULL until needed
    uint32_t stuck_count;           //  partitions with a non-zero entry in stuck
} c_session_t;

typedef struct {
    tern_conn_args_t *args;      //  borrowed
    const tern_config_t *config; //  borrowed
    tern_metrics_t *metrics;     //  borrowed
    zsock_t *router_sock;        //  czmq owners
    zsock_t *inbox_sock;
    zsock_t *out_sock;
    zsock_t *storer_sock;
    zsock_t *route_sock;
    zsock_t *repl_sock; //  PUSH to the repl actor (peers admin), once needed
    void *router;       //  raw sockets of the above
    void *inbox;
    void *out;
    void *to_storer;
    void *to_route;
    void *to_repl;                //  repl_sock resolved, NULL until the first `peers*`
    zhashx_t *sessions;           //  key -> c_session_t (owned)
    uint64_t next_session_id;     //  counter
    tern_store_reader_t *reader;  //  admin reads
    tern_limits_t limits;         //  decode limits
    tern_pub_t *pool;             //  free pub structs
    size_t pool_size;             //  their number
    tern_pubs_t *pubs;            //  current drain's publishes (NULL if none)
    tern_events_t *events;        //  current drain's events (NULL if none)
    c_session_t *ack_list;        //  sessions with PUBACK entries pending
    uint8_t buf[TERN_HEADER_MAX]; //  encode buffer
    tern_frame_t scratch;         //  frame for encoding replies
    bool curve;                   //  auth/mode = curve
    tern_acl_t *acl;              //  current roles (auth/roles), NULL = none
    struct timespec acl_mtime;    //  roles file mtime when read
    uint64_t acl_checked_ms;      //  last look at the roles file
    tern_keys_t *keys;            //  the allow-list (curve): revoked keys lose their sessions
    uint64_t log_second;          //  denial log budget: current second
    int log_count;                //  denials logged in it
    uint64_t tick_ms;             //  c_sessions_tick interval (a quarter heartbeat, 10 ms .. 1 s)
    uint64_t next_tick;           //  when c_sessions_tick runs next
    bool *leads;                  //  cluster: per partition, this node leads it (owned)
    bool *isr_short;              //  cluster: per partition, it leads it with an ISR below
                                  //  cluster/min_insync: publishes get TERN_EREPLICAS (owned)
    uint32_t partitions;          //  cluster: entries in leads
    uint64_t view_version;        //  cluster: tern_cluster_version leads was read at
    bool lease_ok;                //  cluster: the lease, read once per ROUTER drain
} c_conn_t;

//  The session of routing id RID, or NULL. Borrowed from conn's table.
//  Inline: conn looks up the session of every frame it reads.
static inline c_session_t *c_session_lookup(c_conn_t *self, const uint8_t *rid, size_t size) {
    char key[2 * TERN_RID_MAX + 1];
    tern_rid_hex(rid, size, key);
    return (c_session_t *)zhashx_lookup(self->sessions, key);
}

// ---------------------------------------------------------------------------
//  tern_conn_session.c

//  zhashx destructor of conn's session table.
void c_session_destroy(void **item_p);

//  Ends SESSION: GONE for route, off the PUBACK list, out of the table.
void c_session_end(c_conn_t *self, c_session_t *session);

//  HELLO from RID: ends SESSION if any, opens a new one and answers WELCOME
//  (or ERROR: version, max_connections).
void c_handle_hello(c_conn_t *self, c_session_t *session, const uint8_t *rid, size_t rid_size,
                    const tern_frame_t *frame);

//  Binds SESSION (just opened by a HELLO) to the key that sent PUB.
void c_session_auth(c_conn_t *self, c_session_t *session, tern_pub_t *pub);

//  Every tick: ends revoked, silent and unreachable sessions, heartbeats
//  the idle ones.
void c_sessions_tick(c_conn_t *self);

// ---------------------------------------------------------------------------
//  tern_conn_admin.c

//  The repl actor answered a `peers*` request: relay it to the client.
void c_repl_admin_done(c_conn_t *self, tern_repl_admin_t *item);
void c_handle_admin(c_conn_t *self, c_session_t *session, const tern_frame_t *frame);

//  The storer finished an admin write: answer the client.
void c_admin_done(c_conn_t *self, tern_admin_t *admin);

// ---------------------------------------------------------------------------
//  tern_conn_cluster.c (only with args->cluster set, except c_cluster_admin)

//  Reads the lease, and what this node leads when the view changed.
void c_cluster_refresh(c_conn_t *self);

//  True when this node leads the partition of FRAME's topic with its lease
//  ok; else answers ERROR TERN_ENOTLEADER (the leader's endpoint in the
//  reason) and returns false. For a PUBLISH, also false with ERROR
//  TERN_EREPLICAS when the partition's record has fewer in-sync replicas
//  than cluster/min_insync: refused before the storer, so nothing is stored.
//  A PUBLISH of an ordered SESSION is also refused while an earlier one of
//  it to the same partition was (sticky refusal: docs/protocol.md,
//  "Producer order").
bool c_cluster_admit(c_conn_t *self, c_session_t *session, const tern_frame_t *frame);

//  Frees what c_cluster_refresh allocated.
void c_cluster_destroy(c_conn_t *self);

//  The cluster* admin operations (TERN_ESTATE on a single node).
void c_cluster_admin(c_conn_t *self, c_session_t *session, const tern_frame_t *frame,
                     tern_admin_op_t op);

// ---------------------------------------------------------------------------
//  tern_conn.c

//  Sends [RID][HDR][PAYLOAD?] on the ROUTER without blocking. Returns 0; -2
//  when the peer is gone (EHOSTUNREACH); -1 when it is full (EAGAIN).
int c_send_raw(c_conn_t *self, const uint8_t *rid, size_t rid_size, const void *hdr,
               size_t hdr_size, const void *payload, size_t payload_size, bool has_payload);

//  Encodes FRAME and sends it to RID, as c_send_raw.
int c_send_frame(c_conn_t *self, const uint8_t *rid, size_t rid_size, const tern_frame_t *frame,
                 const void *payload, size_t payload_size);
void c_send_error(c_conn_t *self, const uint8_t *rid, size_t rid_size, uint64_t req_id,
                  tern_err_t code, const char *reason);

//  ERROR about topic NAME: "no such topic 'NAME'" for TERN_ENOTFOUND, else
//  OTHER with the code's description.
void c_send_topic_error(c_conn_t *self, const uint8_t *rid, size_t rid_size, uint64_t req_id,
                        tern_err_t code, const char *name, const char *other);

//  The reason of a TERN_ELIMIT from the store: max_topics was reached.
const char *c_reason_max_topics(c_conn_t *self, char *out, size_t cap, const char *topic);
void c_send_reply(c_conn_t *self, const uint8_t *rid, size_t rid_size, uint64_t req_id,
                  const tern_json_t *json);
tern_event_t *c_event(c_conn_t *self, tern_ev_type_t type, uint64_t session_id);

#endif
