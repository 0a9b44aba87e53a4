/*  tern_conn.c - the conn actor: sessions, decoding and the client ROUTER.

    conn is the only code that touches the client socket. It decodes each
    frame once (tern_frame_decode) into a pooled tern_pub_t that keeps the
    header and payload zmq_msg_t (no copy), batches the PUBLISHes of one drain
    (up to S_DRAIN_MAX frames) into one tern_pubs_t for the storer, and the
    subscription traffic of one drain into one tern_events_t for route. It
    answers PUBACKs when the storer's COMMITTED arrives: one PUBACK frame per
    session per commit. It forwards the frames route (and nobody else) puts on
    its `out` socket: [routing id][header][payload?], or [empty][pointer]
    for a batch of DELIVERs (tern_route_batch_t, one per route round) whose
    zmq_msg_t parts it sends on the ROUTER without a copy.

    Pipe commands (zactor pipe, from tern_broker):
        $TERM      -> stops accepting, closes the ROUTER, exits (no reply)
    Sockets:
        ROUTER  client endpoint (config listen); ZMQ_ROUTER_MANDATORY, HWM
                100000, ZMQ_MAXMSGSIZE = 2 * max_payload + TERN_HEADER_MAX + 4K:
                a frame above that is dropped by libzmq, which also closes
                that connection: the client gets no ERROR (documented); a
                payload between max_payload and that bound gets ERROR
                TERN_ETOOBIG and the session continues.
        inbox   PULL (bound): COMMITTED items from the storer, REPL_ADMIN
                answers from repl
        repl    PUSH (connected at the first `peers*` ADMIN): REPL_ADMIN
        out     PULL (bound): [rid][hdr][payload?] frames from route, and
                [empty][tern_route_batch_t *] DELIVER batches (conn owns them)
        storer  PUSH: PUBS, ADMIN (topic writes)
        route   PUSH: EVENTS (open/gone/sub/unsub/ack/nack/term/credit/admin)

    Session state machine (key = routing id):
        state \ event  HELLO             other cmd         HEARTBEAT/BYE   timeout/unreachable
        none           WELCOME -> live   ERROR ESTATE      ignored         -
        live           GONE, WELCOME     handled           beat / GONE     GONE -> none
    A live session whose HELLO is repeated is ended (route returns its
    in-flight messages) and started afresh. "timeout" is heartbeat_timeout_ms
    without any frame, or 3 x the client's HELLO heartbeat_ms if that is
    longer; "unreachable" is a send failing with EHOSTUNREACH (the connection
    closed without BYE), noticed at the next heartbeat at the latest and acted
    on at the next tick (<= 1 s), after the frames the client sent before it
    closed have been read.
*/
#include "tern_conn.h"
#include "tern_audit.h"
#include "tern_auth.h"
#include "tern_json.h"
#include "tern_proto.h"
#include "tern_repl.h"
#include "tern_route.h"
#include "tern_version.h"
#include "tern_work.h"
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define S_DRAIN_MAX 1024  //  frames read from the ROUTER per drain
#define S_POOL_MAX  16384 //  pub structs kept for reuse
#define S_HWM       100000

typedef struct s_session_t {
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
    struct s_session_t *ack_next;   //  list of sessions with entries to flush
    bool ack_listed;                //  on that list
    bool unreachable;               //  a send found the peer gone: end at the next tick
    char user[TERN_NAME_MAX + 1];   //  CURVE key name from ZAP ("" with auth none)
    tern_acl_t *acl;                //  roles at HELLO (a reference); NULL = unrestricted
    const tern_role_t *role;        //  the key's role in ACL; NULL with an ACL = nothing
} s_session_t;

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
    void *pipe;         //  raw sockets
    void *router;
    void *inbox;
    void *out;
    void *to_storer;
    void *to_route;
    void *to_repl;                //  repl_sock resolved, NULL until the first `peers*`
    zhashx_t *sessions;           //  key -> s_session_t (owned)
    uint64_t next_session_id;     //  counter
    tern_store_reader_t *reader;  //  admin reads
    tern_limits_t limits;         //  decode limits
    tern_pub_t *pool;             //  free pub structs
    size_t pool_size;             //  their number
    tern_pubs_t *pubs;            //  current drain's publishes (NULL if none)
    tern_events_t *events;        //  current drain's events (NULL if none)
    s_session_t *ack_list;        //  sessions with PUBACK entries pending
    uint8_t buf[TERN_HEADER_MAX]; //  encode buffer
    tern_frame_t scratch;         //  frame for encoding replies
    bool curve;                   //  auth/mode = curve
    tern_acl_t *acl;              //  current roles (auth/roles), NULL = none
    struct timespec acl_mtime;    //  roles file mtime when read
    uint64_t acl_checked_ms;      //  last look at the roles file
    tern_keys_t *keys;            //  the allow-list (curve): revoked keys lose their sessions
    uint64_t log_second;          //  denial log budget: current second
    int log_count;                //  denials logged in it
} s_conn_t;

static void s_session_destroy(void **item_p) {
    s_session_t *session = (s_session_t *)*item_p;
    if (session) {
        tern_acl_destroy(&session->acl);
        free(session->acks);
        free(session);
        *item_p = NULL;
    }
}

static s_session_t *s_session_lookup(s_conn_t *self, const uint8_t *rid, size_t size) {
    char key[2 * TERN_RID_MAX + 1];
    tern_rid_hex(rid, size, key);
    return (s_session_t *)zhashx_lookup(self->sessions, key);
}

// ---------------------------------------------------------------------------
//  Sending

//  Sends [RID][HDR][PAYLOAD?] on the ROUTER without blocking. Returns 0, or
//  -1 when the peer is gone (EHOSTUNREACH) or full (EAGAIN): the frame is
//  dropped and counted; a gone peer's session ends at its next timeout.
static int s_send_raw(s_conn_t *self, const uint8_t *rid, size_t rid_size, const void *hdr,
                      size_t hdr_size, const void *payload, size_t payload_size, bool has_payload) {
    if (zmq_send(self->router, rid, rid_size, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        tern_metrics_add(self->metrics->send_dropped, 1);
        return errno == EHOSTUNREACH ? -2 : -1;
    }
    zmq_send(self->router, hdr, hdr_size, has_payload ? ZMQ_SNDMORE : 0);
    if (has_payload) {
        zmq_send(self->router, payload, payload_size, 0);
    }
    return 0;
}

static int s_send_frame(s_conn_t *self, const uint8_t *rid, size_t rid_size,
                        const tern_frame_t *frame, const void *payload, size_t payload_size) {
    size_t len = 0;
    tern_err_t rc = tern_frame_encode(frame, self->buf, sizeof self->buf, &len);
    if (rc != TERN_OK) {
        zsys_error("conn: cannot encode %s: %d", tern_cmd_name(frame->cmd), (int)rc);
        return -1;
    }
    bool has_payload = tern_cmd_has_payload(frame->cmd);
    int res = s_send_raw(self, rid, rid_size, self->buf, len, payload, payload_size, has_payload);
    s_session_t *session = s_session_lookup(self, rid, rid_size);
    if (session) {
        session->last_send_ms = tern_now_ms();
    }
    return res;
}

static void s_send_error(s_conn_t *self, const uint8_t *rid, size_t rid_size, uint64_t req_id,
                         tern_err_t code, const char *reason) {
    tern_frame_t *frame = &self->scratch;
    tern_frame_init(frame, TERN_CMD_ERROR);
    frame->req_id = req_id;
    frame->code = (uint32_t)code;
    if (reason && *reason) {
        snprintf(frame->reason, sizeof frame->reason, "%s", reason);
        frame->fields |= TERN_F_REASON;
    }
    s_send_frame(self, rid, rid_size, frame, NULL, 0);
}

//  ERROR about topic NAME: "no such topic 'NAME'" for TERN_ENOTFOUND, else
//  OTHER with the code's description.
static void s_send_topic_error(s_conn_t *self, const uint8_t *rid, size_t rid_size, uint64_t req_id,
                               tern_err_t code, const char *name, const char *other) {
    char reason[TERN_REASON_MAX + 1];
    if (code == TERN_ENOTFOUND) {
        snprintf(reason, sizeof reason, "no such topic '%.200s'", name);
    } else {
        snprintf(reason, sizeof reason, "%s '%.200s': %s", other, name, tern_strerror(code));
    }
    s_send_error(self, rid, rid_size, req_id, code, reason);
}

//  The reason of a TERN_ELIMIT from the store: max_topics was reached.
static const char *s_reason_max_topics(s_conn_t *self, char *out, size_t cap, const char *topic) {
    snprintf(out, cap, "max_topics %u reached: topic '%.200s' not created",
             (unsigned)self->config->max_topics, topic);
    return out;
}

static void s_send_reply(s_conn_t *self, const uint8_t *rid, size_t rid_size, uint64_t req_id,
                         const tern_json_t *json) {
    tern_frame_t *frame = &self->scratch;
    tern_frame_init(frame, TERN_CMD_REPLY);
    frame->req_id = req_id;
    frame->payload = (const uint8_t *)json->data;
    frame->payload_size = json->len;
    s_send_frame(self, rid, rid_size, frame, json->data, json->len);
}

// ---------------------------------------------------------------------------
//  Pools and batches

static tern_pub_t *s_pub_get(s_conn_t *self) {
    tern_pub_t *pub = self->pool;
    if (pub) {
        self->pool = pub->next;
        self->pool_size--;
    } else {
        pub = tern_alloc(sizeof *pub);
    }
    zmq_msg_init(&pub->hdr);
    zmq_msg_init(&pub->body);
    pub->next = NULL;
    return pub;
}

//  Takes ownership of PUB: closes its messages and keeps it for reuse.
static void s_pub_put(s_conn_t *self, tern_pub_t *pub) {
    zmq_msg_close(&pub->hdr);
    zmq_msg_close(&pub->body);
    if (self->pool_size < S_POOL_MAX) {
        pub->next = self->pool;
        self->pool = pub;
        self->pool_size++;
    } else {
        free(pub);
    }
}

static tern_event_t *s_event(s_conn_t *self, tern_ev_type_t type, uint64_t session_id) {
    if (!self->events) {
        self->events = tern_alloc(sizeof(tern_events_t));
    }
    tern_event_t *ev = tern_events_push(self->events);
    ev->type = (uint8_t)type;
    ev->session_id = session_id;
    return ev;
}

static void s_flush(s_conn_t *self) {
    if (self->pubs) {
        if (tern_work_send(self->to_storer, TERN_WORK_PUBS, self->pubs) != 0) {
            tern_pubs_destroy(&self->pubs);
        }
        self->pubs = NULL;
    }
    if (self->events) {
        if (tern_work_send(self->to_route, TERN_WORK_EVENTS, self->events) != 0) {
            tern_events_destroy(&self->events);
        }
        self->events = NULL;
    }
}

// ---------------------------------------------------------------------------
//  Sessions

static void s_session_end(s_conn_t *self, s_session_t *session) {
    s_event(self, TERN_EV_GONE, session->id);
    tern_metrics_add(self->metrics->connections, -1);
    if (session->ack_listed) {
        //  Unlink from the PUBACK list (rare: ended while answering).
        s_session_t **link = &self->ack_list;
        while (*link && *link != session) {
            link = &(*link)->ack_next;
        }
        if (*link) {
            *link = session->ack_next;
        }
    }
    zhashx_delete(self->sessions, session->key);
}

static void s_handle_hello(s_conn_t *self, s_session_t *session, const uint8_t *rid,
                           size_t rid_size, const tern_frame_t *frame) {
    if (frame->proto_version < TERN_PROTO_MIN_VERSION) {
        s_send_error(self, rid, rid_size, frame->req_id, TERN_EVERSION,
                     "protocol version not supported");
        return;
    }
    if (session) {
        s_session_end(self, session);
    }
    if (zhashx_size(self->sessions) >= self->config->max_connections &&
        self->config->max_connections > 0) {
        char reason[TERN_REASON_MAX + 1];
        snprintf(reason, sizeof reason, "max_connections %u reached",
                 (unsigned)self->config->max_connections);
        s_send_error(self, rid, rid_size, frame->req_id, TERN_ELIMIT, reason);
        return;
    }
    session = tern_alloc(sizeof *session);
    session->id = ++self->next_session_id;
    memcpy(session->rid, rid, rid_size);
    session->rid_size = rid_size;
    tern_rid_hex(rid, rid_size, session->key);
    session->last_recv_ms = session->last_send_ms = tern_now_ms();
    //  A client that announced a longer heartbeat than the broker's timeout
    //  allows is not declared dead between two of its own heartbeats: the
    //  timeout is the broker's, or three of the client's intervals if longer.
    //  (Closed connections are noticed sooner anyway: see s_tick.)
    session->timeout_ms = self->config->heartbeat_timeout_ms;
    if ((uint64_t)frame->heartbeat_ms * 3 > session->timeout_ms) {
        session->timeout_ms = (uint64_t)frame->heartbeat_ms * 3;
    }
    zhashx_insert(self->sessions, session->key, session);
    tern_metrics_add(self->metrics->connections, 1);
    tern_metrics_add(self->metrics->sessions_total, 1);

    tern_event_t *ev = s_event(self, TERN_EV_OPEN, session->id);
    ev->rid = tern_alloc(rid_size);
    memcpy(ev->rid, rid, rid_size);
    ev->rid_size = rid_size;

    tern_frame_t *reply = &self->scratch;
    tern_frame_init(reply, TERN_CMD_WELCOME);
    reply->req_id = frame->req_id;
    reply->proto_version =
        frame->proto_version < TERN_PROTO_VERSION ? frame->proto_version : TERN_PROTO_VERSION;
    reply->node_id = self->config->node_id;
    snprintf(reply->dc, sizeof reply->dc, "%s", self->config->dc);
    reply->heartbeat_ms = (uint32_t)self->config->heartbeat_ms;
    reply->max_payload = (uint32_t)self->config->max_payload;
    s_send_frame(self, rid, rid_size, reply, NULL, 0);
    if (self->config->verbose) {
        zsys_info("conn: session %" PRIu64 " open (%s, %s, timeout %" PRIu64 " ms)", session->id,
                  session->key, frame->name, session->timeout_ms);
    }
}

// ---------------------------------------------------------------------------
//  Admin

static bool s_meta_get(const tern_frame_t *frame, const char *key, char *out, size_t cap) {
    if (!frame->meta || !frame->meta_size) {
        return false;
    }
    size_t pos = 0;
    tern_kv_t kv;
    size_t key_len = strlen(key);
    while (tern_meta_next(frame->meta, frame->meta_size, &pos, &kv)) {
        if (kv.key_len == key_len && memcmp(kv.key, key, key_len) == 0) {
            size_t n = kv.value_len < cap - 1 ? kv.value_len : cap - 1;
            memcpy(out, kv.value, n);
            out[n] = 0;
            return kv.value_len < cap;
        }
    }
    return false;
}

static bool s_count_group(const tern_group_info_t *group, void *arg) {
    (void)group;
    (*(uint64_t *)arg)++;
    return true;
}

static void s_json_topic(s_conn_t *self, tern_json_t *json, const tern_topic_info_t *topic) {
    uint64_t groups = 0;
    tern_store_group_list(self->reader, topic->id, s_count_group, &groups);
    tern_json_sep(json);
    tern_json_raw(json, "{");
    tern_json_key_str(json, "topic", topic->name);
    tern_json_key_u64(json, "msgs", topic->msgs);
    tern_json_key_u64(json, "bytes", topic->bytes);
    tern_json_key_u64(json, "first_seq", topic->first_seq);
    tern_json_key_u64(json, "last_seq", topic->last_seq);
    tern_json_key_u64(json, "max_age_ms", topic->max_age_ms);
    tern_json_key_u64(json, "max_msgs", topic->max_msgs);
    tern_json_key_u64(json, "max_bytes", topic->max_bytes);
    tern_json_key_u64(json, "groups", groups);
    tern_json_raw(json, "}");
}

typedef struct {
    s_conn_t *self;
    tern_json_t *json;
} s_topic_list_arg_t;

static bool s_topic_each(const tern_topic_info_t *topic, void *arg) {
    s_topic_list_arg_t *list = (s_topic_list_arg_t *)arg;
    s_json_topic(list->self, list->json, topic);
    return true;
}

//  Reads topic NAME and replies its JSON object (or ERROR).
static void s_reply_topic(s_conn_t *self, const uint8_t *rid, size_t rid_size, uint64_t req_id,
                          const char *name) {
    tern_topic_info_t topic;
    tern_err_t rc = tern_store_read_begin(self->reader);
    if (rc == TERN_OK) {
        rc = tern_store_topic_get(self->reader, name, &topic);
    }
    if (rc != TERN_OK) {
        tern_store_read_end(self->reader);
        s_send_topic_error(self, rid, rid_size, req_id, rc, name, "cannot read topic");
        return;
    }
    tern_json_t json;
    tern_json_init(&json);
    s_json_topic(self, &json, &topic);
    tern_store_read_end(self->reader);
    s_send_reply(self, rid, rid_size, req_id, &json);
    tern_json_free(&json);
}

//  audit (topic, group?, since_ms?) and trace (msg_id): read-only replays of
//  the stored history, answered here through conn's reader (tern_audit.c).
static void s_handle_audit(s_conn_t *self, const uint8_t *rid, size_t rid_size,
                           const tern_frame_t *frame, const char *topic, const char *group) {
    char value[64];
    uint64_t since_ms = 0, msg_id = 0;
    bool is_trace = streq(frame->name, "trace");
    if (is_trace) {
        char *end = NULL;
        if (!s_meta_get(frame, "msg_id", value, sizeof value) ||
            (msg_id = strtoull(value, &end, 10)) == 0 || !end || *end) {
            s_send_error(self, rid, rid_size, frame->req_id, TERN_EINVAL,
                         "missing or invalid msg_id argument");
            return;
        }
    } else if (s_meta_get(frame, "since_ms", value, sizeof value) &&
               tern_units_parse_duration(value, &since_ms, NULL) != TERN_OK) {
        s_send_error(self, rid, rid_size, frame->req_id, TERN_EINVAL, "bad since_ms");
        return;
    }
    if (!is_trace && group[0] && !tern_name_valid(group, strlen(group))) {
        char reason[TERN_REASON_MAX + 1];
        s_send_error(self, rid, rid_size, frame->req_id, TERN_ENAME,
                     tern_reason_name(reason, sizeof reason, "group", group));
        return;
    }
    tern_json_t json;
    tern_json_init(&json);
    tern_err_t rc = tern_store_read_begin(self->reader);
    if (rc == TERN_OK) {
        rc = is_trace ? tern_trace_json(self->reader, msg_id, tern_now_ns(), self->config, &json)
                      : tern_audit_json(self->reader, topic, group, since_ms, tern_now_ns(), &json);
    }
    tern_store_read_end(self->reader);
    if (rc == TERN_OK) {
        s_send_reply(self, rid, rid_size, frame->req_id, &json);
    } else if (rc == TERN_ENOTFOUND) {
        s_send_error(self, rid, rid_size, frame->req_id, rc,
                     is_trace ? "no history for this msg_id (unknown, or past "
                                "storage/trace_retention)"
                              : "no such topic or group");
    } else {
        s_send_error(self, rid, rid_size, frame->req_id, rc, "cannot read the history");
    }
    tern_json_free(&json);
}

static bool s_parse_seq(const char *text, uint64_t *seq);
static bool s_parse_position(const char *text, uint8_t *start, uint64_t *value);

#define S_VIEW_MAX  1000                      //  msg.view: messages per reply
#define S_REPLY_MAX (TERN_PAYLOAD_MAX - 4096) //  a REPLY payload is at most TERN_PAYLOAD_MAX

//  Message MSG (read from the store) as a JSON object with the first SHOWN
//  bytes of its payload; with ENTRY (a DLQ entry) also its dead-letter fields.
static void s_json_message_part(tern_json_t *json, const tern_frame_t *msg,
                                const tern_entry_t *entry, size_t shown) {
    tern_json_sep(json);
    tern_json_raw(json, "{");
    tern_json_key_str(json, "topic", msg->topic);
    tern_json_key_u64(json, "seq", msg->seq);
    tern_json_key_u64(json, "msg_id", msg->msg_id);
    tern_json_key_u64(json, "timestamp_ns", msg->timestamp_ns);
    tern_json_key_u64(json, "expire_at_ns", msg->expire_at_ns);
    tern_json_key_u64(json, "priority", msg->priority);
    tern_json_key_str(json, "trace_id", msg->trace_id);
    tern_json_key_str(json, "origin", msg->origin);
    tern_json_key_str(json, "producer", msg->producer);
    tern_json_key_u64(json, "producer_seq", msg->producer_seq);
    tern_json_key_str(json, "key", msg->key);
    if (entry) {
        tern_json_key_u64(json, "delivery_count", entry->delivery_count);
        tern_json_key_str(json, "reason", entry->reason);
        tern_json_key_u64(json, "dead_at_ms", entry->due_ms);
    }
    tern_json_key_u64(json, "size", msg->payload_size);
    if (shown < msg->payload_size) {
        tern_json_key_bool(json, "truncated", 1);
    }
    tern_json_sep(json);
    tern_json_raw(json, "\"headers\":{");
    size_t pos = 0;
    tern_kv_t kv;
    while (msg->meta && tern_meta_next(msg->meta, msg->meta_size, &pos, &kv)) {
        char key[TERN_META_KEY_MAX + 1];
        size_t n = kv.key_len < TERN_META_KEY_MAX ? kv.key_len : TERN_META_KEY_MAX;
        memcpy(key, kv.key, n);
        key[n] = 0;
        tern_json_key_bytes(json, key, (const uint8_t *)kv.value, kv.value_len);
    }
    tern_json_raw(json, "}");
    tern_json_key_bytes(json, "data", msg->payload, shown);
    tern_json_raw(json, "}");
}

//  Appends MSG as a JSON object of at most ROOM bytes: when its whole
//  payload does not fit (a REPLY is at most TERN_PAYLOAD_MAX, and the
//  payload grows in JSON), a prefix of it does, with "truncated": true
//  ("size" stays the whole size). Returns false if it truncated.
static bool s_json_message(tern_json_t *json, const tern_frame_t *msg, const tern_entry_t *entry,
                           size_t room) {
    size_t start = json->len, shown = msg->payload_size;
    for (;;) {
        s_json_message_part(json, msg, entry, shown);
        size_t used = json->len - start;
        if (used <= room || shown == 0) {
            return shown == msg->payload_size;
        }
        //  Each payload byte takes at least one byte of JSON: dropping the
        //  excess shrinks the object by at least as much, or the loop goes on.
        shown = shown > used - room ? shown - (used - room) : 0;
        json->len = start;
        json->data[start] = 0;
    }
}

//  msg.view: up to `count` (default 10) messages from `from` (first,
//  seq:N or time:DUR; default first) as a JSON array, as many as fit in one
//  REPLY (at least one, truncated if need be).
static tern_err_t s_view(s_conn_t *self, const tern_frame_t *frame, uint32_t topic_id,
                         tern_json_t *json) {
    char value[64];
    uint8_t start = TERN_START_FIRST;
    uint64_t from = 1, count = 10;
    if ((s_meta_get(frame, "from", value, sizeof value) &&
         (!s_parse_position(value, &start, &from) || start == TERN_START_NEW)) ||
        (s_meta_get(frame, "count", value, sizeof value) &&
         (!s_parse_seq(value, &count) || count > S_VIEW_MAX))) {
        return TERN_EINVAL;
    }
    tern_err_t rc = TERN_OK;
    if (start == TERN_START_TIME) {
        rc = tern_store_seq_at_time(self->reader, topic_id, from, &from);
    }
    tern_json_raw(json, "[");
    tern_frame_t msg;
    for (uint64_t n = 0; rc == TERN_OK && n < count; n++) {
        if ((rc = tern_store_read_next(self->reader, topic_id, from, &msg)) != TERN_OK) {
            break;
        }
        size_t mark = json->len, used = json->len + 1; //  + "]"
        if (!s_json_message(json, &msg, NULL, S_REPLY_MAX > used ? S_REPLY_MAX - used : 0) &&
            n > 0) {
            json->len = mark; //  the next request starts with it
            json->data[mark] = 0;
            break;
        }
        from = msg.seq + 1;
    }
    tern_json_raw(json, "]");
    return rc == TERN_ENOTFOUND ? TERN_OK : rc;
}

//  Reads without consuming: msg.get (topic, seq), msg.view (topic, from,
//  count) and dlq.get (topic, group, seq), answered through conn's reader.
static void s_handle_read(s_conn_t *self, const uint8_t *rid, size_t rid_size,
                          const tern_frame_t *frame, const char *topic, const char *group) {
    char value[64];
    uint64_t seq = 0;
    bool is_view = streq(frame->name, "msg.view"), is_dlq = streq(frame->name, "dlq.get");
    const char *bad = NULL;
    if (is_dlq && !tern_name_valid(group, strlen(group))) {
        bad = "missing or invalid group argument";
    } else if (!is_view &&
               (!s_meta_get(frame, "seq", value, sizeof value) || !s_parse_seq(value, &seq))) {
        bad = "missing or invalid seq argument";
    }
    if (bad) {
        s_send_error(self, rid, rid_size, frame->req_id, is_dlq ? TERN_ENAME : TERN_EINVAL, bad);
        return;
    }
    tern_json_t json;
    tern_json_init(&json);
    tern_topic_info_t info;
    tern_frame_t msg;
    tern_entry_t entry;
    char no_topic[TERN_REASON_MAX + 1];
    snprintf(no_topic, sizeof no_topic, "no such topic '%.200s'", topic);
    const char *what = no_topic;
    tern_err_t rc = tern_store_read_begin(self->reader);
    if (rc == TERN_OK) {
        rc = tern_store_topic_get(self->reader, topic, &info);
    }
    if (rc == TERN_OK && is_view) {
        what = "invalid from or count argument (from: first, seq:N or time:DUR; count: 1..1000)";
        rc = s_view(self, frame, info.id, &json);
    } else if (rc == TERN_OK) {
        what = "no message with that seq (never stored, expired or removed)";
        if (is_dlq) {
            what = "no such group, or that seq is not in its DLQ";
            rc = tern_store_dlq_get(self->reader, info.id, group, seq, &entry);
            if (rc == TERN_OK) {
                what = "the dead letter's message is no longer stored";
            }
        }
        if (rc == TERN_OK) {
            rc = tern_store_read(self->reader, info.id, seq, &msg);
        }
        if (rc == TERN_OK) {
            s_json_message(&json, &msg, is_dlq ? &entry : NULL, S_REPLY_MAX);
        }
    }
    tern_store_read_end(self->reader);
    if (rc == TERN_OK) {
        s_send_reply(self, rid, rid_size, frame->req_id, &json);
    } else {
        s_send_error(self, rid, rid_size, frame->req_id, rc,
                     rc == TERN_ENOTFOUND || rc == TERN_EINVAL ? what : "cannot read the message");
    }
    tern_json_free(&json);
}

//  `peers`, `peers.pause`, `peers.resume`: answered by the repl actor, which
//  owns the links; the answer comes back on the inbox (s_repl_admin_done).
static void s_handle_peers(s_conn_t *self, s_session_t *session, const tern_frame_t *frame) {
    const char *op = frame->name;
    if (!tern_repl_enabled(self->config)) {
        if (streq(op, "peers")) {
            tern_json_t json;
            tern_json_init(&json);
            tern_json_raw(&json, "[]");
            s_send_reply(self, session->rid, session->rid_size, frame->req_id, &json);
            tern_json_free(&json);
        } else {
            s_send_error(self, session->rid, session->rid_size, frame->req_id, TERN_ENOTFOUND,
                         "no such peer: replication is off");
        }
        return;
    }
    if (!self->to_repl) {
        char endpoint[128];
        tern_repl_admin_endpoint(self->config, endpoint, sizeof endpoint);
        self->repl_sock = zsock_new(ZMQ_PUSH);
        if (self->repl_sock) {
            zsock_set_sndhwm(self->repl_sock, 0);
            zsock_set_linger(self->repl_sock, 0);
            if (zsock_connect(self->repl_sock, "%s", endpoint) == 0) {
                self->to_repl = zsock_resolve(self->repl_sock);
            } else {
                zsock_destroy(&self->repl_sock);
            }
        }
    }
    tern_repl_admin_t *item = tern_alloc(sizeof *item);
    memcpy(item->rid, session->rid, session->rid_size);
    item->rid_size = session->rid_size;
    item->req_id = frame->req_id;
    snprintf(item->op, sizeof item->op, "%s", op);
    s_meta_get(frame, "name", item->name, sizeof item->name);
    snprintf(item->reply_to, sizeof item->reply_to, "%s", self->args->inbox);
    if (!self->to_repl || tern_work_send(self->to_repl, TERN_WORK_REPL_ADMIN, item) != 0) {
        free(item);
        s_send_error(self, session->rid, session->rid_size, frame->req_id, TERN_EINTERNAL,
                     "the replication actor is unreachable");
    }
}

//  The repl actor answered a `peers*` request: relay it to the client.
static void s_repl_admin_done(s_conn_t *self, tern_repl_admin_t *item) {
    if (s_session_lookup(self, item->rid, item->rid_size)) {
        if (item->err != TERN_OK) {
            s_send_error(self, item->rid, item->rid_size, item->req_id, item->err, item->reason);
        } else {
            tern_json_t json;
            tern_json_init(&json);
            tern_json_raw(&json, item->reply ? item->reply : "null");
            s_send_reply(self, item->rid, item->rid_size, item->req_id, &json);
            tern_json_free(&json);
        }
    }
    free(item->reply);
    free(item);
}

//  An admin request of SESSION, answered later by the storer or route.
static tern_admin_t *s_admin_new(const s_session_t *session, const tern_frame_t *frame,
                                 const char *op, const char *topic, const char *group) {
    tern_admin_t *admin = tern_alloc(sizeof *admin);
    admin->session_id = session->id;
    memcpy(admin->rid, session->rid, session->rid_size);
    admin->rid_size = session->rid_size;
    admin->req_id = frame->req_id;
    snprintf(admin->op, sizeof admin->op, "%s", op);
    snprintf(admin->topic, sizeof admin->topic, "%s", topic);
    snprintf(admin->group, sizeof admin->group, "%s", group);
    return admin;
}

//  A decimal seq >= 1 into *SEQ.
static bool s_parse_seq(const char *text, uint64_t *seq) {
    char *end = NULL;
    if (text[0] < '0' || text[0] > '9') {
        return false;
    }
    *seq = strtoull(text, &end, 10);
    return end && *end == 0 && *seq > 0;
}

//  A position "first", "new", "seq:N" or "time:DUR" (DUR ago on this node's
//  clock) into *START (tern_start_t) and *VALUE.
static bool s_parse_position(const char *text, uint8_t *start, uint64_t *value) {
    uint64_t ms = 0;
    *value = 0;
    if (streq(text, "first")) {
        *start = TERN_START_FIRST;
    } else if (streq(text, "new")) {
        *start = TERN_START_NEW;
    } else if (strncmp(text, "seq:", 4) == 0 && s_parse_seq(text + 4, value)) {
        *start = TERN_START_SEQ;
    } else if (strncmp(text, "time:", 5) == 0 &&
               tern_units_parse_duration(text + 5, &ms, NULL) == TERN_OK) {
        uint64_t now = tern_now_ns(), ago = ms * 1000000ull;
        *start = TERN_START_TIME;
        *value = ago < now ? now - ago : 1;
    } else {
        return false;
    }
    return true;
}

//  The limits of topic.create / topic.edit into ADMIN; topic.edit keeps
//  the current value of a limit not given. False: ERROR sent.
static bool s_admin_limits(s_conn_t *self, const tern_frame_t *frame, tern_admin_t *admin) {
    char value[64];
    if (streq(admin->op, "topic.edit")) {
        tern_topic_info_t current;
        tern_err_t rc = tern_store_read_begin(self->reader);
        if (rc == TERN_OK) {
            rc = tern_store_topic_get(self->reader, admin->topic, &current);
        }
        tern_store_read_end(self->reader);
        if (rc != TERN_OK) {
            s_send_topic_error(self, admin->rid, admin->rid_size, admin->req_id, rc, admin->topic,
                               "cannot read topic");
            return false;
        }
        admin->max_age_ms = current.max_age_ms;
        admin->max_msgs = current.max_msgs;
        admin->max_bytes = current.max_bytes;
    }
    bool ok = true;
    if (s_meta_get(frame, "max_age_ms", value, sizeof value)) {
        ok &= tern_units_parse_duration(value, &admin->max_age_ms, NULL) == TERN_OK;
    }
    if (s_meta_get(frame, "max_msgs", value, sizeof value)) {
        char *end = NULL;
        admin->max_msgs = strtoull(value, &end, 10);
        ok &= end && end != value && *end == 0;
    }
    if (s_meta_get(frame, "max_bytes", value, sizeof value)) {
        ok &= tern_units_parse_size(value, &admin->max_bytes, NULL) == TERN_OK;
    }
    if (!ok) {
        s_send_error(self, admin->rid, admin->rid_size, admin->req_id, TERN_EINVAL,
                     "bad max_age_ms, max_msgs or max_bytes");
    }
    return ok;
}

//  The admin operations (docs/client.md) and whether each needs a valid
//  `topic` argument; an op not listed is answered with TERN_ENAME.
typedef struct {
    const char *name; //  the ADMIN frame's `nm`
    bool topic;       //  requires the `topic` argument
} s_admin_op_t;

static const s_admin_op_t s_admin_ops[] = {
    {"status", false},      {"topics", false},       {"topic.info", true},  {"topic.create", true},
    {"topic.edit", true},   {"topic.delete", true},  {"topic.purge", true}, {"groups", true},
    {"group.delete", true}, {"group.reset", true},   {"group.seek", true},  {"dlq.list", true},
    {"dlq.replay", true},   {"dlq.purge", true},     {"dlq.get", true},     {"msg.get", true},
    {"msg.view", true},     {"audit", true},         {"trace", false},      {"peers", false},
    {"peers.pause", false}, {"peers.resume", false},
};

static const s_admin_op_t *s_admin_op(const char *name) {
    for (size_t i = 0; i < sizeof s_admin_ops / sizeof s_admin_ops[0]; i++) {
        if (streq(s_admin_ops[i].name, name)) {
            return &s_admin_ops[i];
        }
    }
    return NULL;
}

//  Checks OP and its topic argument TOPIC (HAS_TOPIC: given at all);
//  answers ERROR and returns false when they are wrong.
static bool s_admin_check(s_conn_t *self, s_session_t *session, const tern_frame_t *frame,
                          const char *topic, bool has_topic) {
    char reason[TERN_REASON_MAX + 1];
    const s_admin_op_t *op = s_admin_op(frame->name);
    tern_err_t code = TERN_OK;
    if (!op) {
        code = TERN_ENAME;
        snprintf(reason, sizeof reason, "unknown admin operation '%s'", frame->name);
    } else if (op->topic && !has_topic) {
        code = TERN_ETOPIC;
        snprintf(reason, sizeof reason, "%s needs a topic argument", op->name);
    } else if (op->topic && !tern_topic_valid(topic, strlen(topic))) {
        code = TERN_ETOPIC;
        tern_reason_topic(reason, sizeof reason, topic, false);
    }
    if (code != TERN_OK) {
        s_send_error(self, session->rid, session->rid_size, frame->req_id, code, reason);
    }
    return code == TERN_OK;
}

//  Answers the `status` op: who this node is and how it is set up.
static void s_reply_status(s_conn_t *self, const s_session_t *session, uint64_t req_id) {
    static const char *const durability[] = {"fsync", "batch", "none"}; //  tern_durability_t
    tern_store_stats_t stats;
    tern_store_stats(self->args->store, &stats);
    char version[32], data_dir[PATH_MAX];
    snprintf(version, sizeof version, "%d.%d.%d", TERN_VERSION_MAJOR, TERN_VERSION_MINOR,
             TERN_VERSION_PATCH);
    if (!realpath(self->config->data_dir, data_dir)) {
        snprintf(data_dir, sizeof data_dir, "%s", self->config->data_dir);
    }
    unsigned mode = (unsigned)self->config->durability;
    bool replicated = tern_repl_enabled(self->config) && self->config->peer_count > 0;
    tern_json_t json;
    tern_json_init(&json);
    tern_json_raw(&json, "{");
    tern_json_key_u64(&json, "node_id", self->config->node_id);
    tern_json_key_str(&json, "dc", self->config->dc);
    tern_json_key_str(&json, "version", version);
    tern_json_key_str(&json, "endpoint", self->config->listen);
    tern_json_key_str(&json, "data_dir", data_dir);
    tern_json_key_str(&json, "durability", mode < 3 ? durability[mode] : "?");
    //  "standalone", or "dc": one datacenter of a replicated set (its peers).
    tern_json_key_str(&json, "role", replicated ? "dc" : "standalone");
    tern_json_key_u64(&json, "peers", replicated ? self->config->peer_count : 0);
    tern_json_key_u64(&json, "uptime_s", (tern_now_ms() - self->metrics->started_ms) / 1000u);
    tern_json_key_u64(&json, "topics", stats.topics);
    tern_json_key_u64(&json, "connections", zhashx_size(self->sessions));
    tern_json_key_u64(&json, "storage_bytes", stats.file_bytes);
    tern_json_key_u64(&json, "published", tern_metrics_get(self->metrics->published));
    tern_json_key_u64(&json, "delivered", tern_metrics_get(self->metrics->delivered));
    tern_json_key_u64(&json, "acked", tern_metrics_get(self->metrics->acked));
    tern_json_key_str(&json, "auth", self->curve ? "curve" : "none");
    tern_json_key_u64(&json, "auth_refused", tern_metrics_get(self->metrics->auth_refused));
    tern_json_key_u64(&json, "auth_denied", tern_metrics_get(self->metrics->auth_denied));
    tern_json_raw(&json, "}");
    s_send_reply(self, session->rid, session->rid_size, req_id, &json);
    tern_json_free(&json);
}

static void s_handle_admin(s_conn_t *self, s_session_t *session, const tern_frame_t *frame) {
    const uint8_t *rid = session->rid;
    size_t rid_size = session->rid_size;
    const char *op = frame->name;
    char topic[TERN_TOPIC_MAX + 1] = "";
    char group[TERN_NAME_MAX + 1] = "";
    char value[64];
    bool has_topic = s_meta_get(frame, "topic", topic, sizeof topic);
    s_meta_get(frame, "group", group, sizeof group);
    if (!s_admin_check(self, session, frame, topic, has_topic)) {
        return;
    }
    if (streq(op, "peers") || streq(op, "peers.pause") || streq(op, "peers.resume")) {
        s_handle_peers(self, session, frame);
    } else if (streq(op, "status")) {
        s_reply_status(self, session, frame->req_id);
    } else if (streq(op, "topics")) {
        tern_json_t json;
        tern_json_init(&json);
        tern_json_raw(&json, "[");
        s_topic_list_arg_t arg = {self, &json};
        tern_err_t rc = tern_store_read_begin(self->reader);
        if (rc == TERN_OK) {
            rc = tern_store_topic_list(self->reader, s_topic_each, &arg);
        }
        tern_store_read_end(self->reader);
        tern_json_raw(&json, "]");
        if (rc == TERN_OK) {
            s_send_reply(self, rid, rid_size, frame->req_id, &json);
        } else {
            s_send_error(self, rid, rid_size, frame->req_id, rc, "cannot list topics");
        }
        tern_json_free(&json);
    } else if (streq(op, "topic.info")) {
        s_reply_topic(self, rid, rid_size, frame->req_id, topic);
    } else if (streq(op, "audit") || streq(op, "trace")) {
        s_handle_audit(self, rid, rid_size, frame, topic, group);
    } else if (streq(op, "topic.create") || streq(op, "topic.edit") || streq(op, "topic.delete") ||
               streq(op, "topic.purge")) {
        tern_admin_t *admin = s_admin_new(session, frame, op, topic, "");
        if ((streq(op, "topic.create") || streq(op, "topic.edit")) &&
            !s_admin_limits(self, frame, admin)) {
            free(admin);
            return;
        }
        if (tern_work_send(self->to_storer, TERN_WORK_ADMIN, admin) != 0) {
            free(admin);
            s_send_error(self, rid, rid_size, frame->req_id, TERN_EINTERNAL, "storer is gone");
        }
    } else if (streq(op, "dlq.get") || streq(op, "msg.get") || streq(op, "msg.view")) {
        s_handle_read(self, rid, rid_size, frame, topic, group);
    } else if (streq(op, "groups") || streq(op, "dlq.list") || streq(op, "dlq.replay") ||
               streq(op, "dlq.purge") || streq(op, "group.delete") || streq(op, "group.reset") ||
               streq(op, "group.seek")) {
        if (!streq(op, "groups") && !tern_name_valid(group, strlen(group))) {
            char reason[TERN_REASON_MAX + 1];
            s_send_error(self, rid, rid_size, frame->req_id, TERN_ENAME,
                         group[0] ? tern_reason_name(reason, sizeof reason, "group", group)
                                  : "missing group argument");
            return;
        }
        tern_admin_t *admin = s_admin_new(session, frame, op, topic, group);
        //  group.reset starts again at the first message unless told otherwise.
        bool has_to = s_meta_get(frame, "to", value, sizeof value);
        if ((streq(op, "group.seek") && !has_to) ||
            (has_to && !s_parse_position(value, &admin->start, &admin->start_value))) {
            free(admin);
            s_send_error(self, rid, rid_size, frame->req_id, TERN_EINVAL,
                         "missing or invalid to argument (first, new, seq:N or time:DUR)");
            return;
        }
        if (s_meta_get(frame, "seq", value, sizeof value) && !s_parse_seq(value, &admin->seq)) {
            free(admin);
            s_send_error(self, rid, rid_size, frame->req_id, TERN_EINVAL, "invalid seq argument");
            return;
        }
        tern_event_t *ev = s_event(self, TERN_EV_ADMIN, session->id);
        ev->admin = admin;
        ev->req_id = frame->req_id;
    } else {
        s_send_error(self, rid, rid_size, frame->req_id, TERN_EINTERNAL,
                     "admin operation listed in s_admin_ops but not handled");
    }
}

//  The storer finished an admin write: answer the client.
static void s_admin_done(s_conn_t *self, tern_admin_t *admin) {
    if (!s_session_lookup(self, admin->rid, admin->rid_size)) {
        return;
    }
    if (admin->err == TERN_EEXIST) {
        char reason[TERN_TOPIC_MAX + 32];
        snprintf(reason, sizeof reason, "topic '%s' exists", admin->topic);
        s_send_error(self, admin->rid, admin->rid_size, admin->req_id, admin->err, reason);
        return;
    }
    if (admin->err == TERN_ELIMIT) {
        char reason[TERN_REASON_MAX + 1];
        s_send_error(self, admin->rid, admin->rid_size, admin->req_id, admin->err,
                     s_reason_max_topics(self, reason, sizeof reason, admin->topic));
        return;
    }
    if (admin->err != TERN_OK) {
        s_send_topic_error(self, admin->rid, admin->rid_size, admin->req_id, admin->err,
                           admin->topic, "topic operation failed");
        return;
    }
    if (streq(admin->op, "topic.create") || streq(admin->op, "topic.edit")) {
        s_reply_topic(self, admin->rid, admin->rid_size, admin->req_id, admin->topic);
        return;
    }
    tern_json_t json;
    tern_json_init(&json);
    tern_json_raw(&json, "{");
    tern_json_key_str(&json, "topic", admin->topic);
    if (streq(admin->op, "topic.delete")) {
        tern_json_key_bool(&json, "deleted", 1);
        tern_json_key_u64(&json, "removed", admin->count);
    } else {
        tern_json_key_u64(&json, "purged", admin->count);
    }
    tern_json_raw(&json, "}");
    s_send_reply(self, admin->rid, admin->rid_size, admin->req_id, &json);
    tern_json_free(&json);
}

// ---------------------------------------------------------------------------
//  Authorization (auth/roles; docs/security.md)

//  Re-reads the roles file when it changed, looking at most once a second.
static void s_acl_refresh(s_conn_t *self) {
    uint64_t now = tern_now_ms();
    if (!self->acl || now - self->acl_checked_ms < 1000) {
        return;
    }
    self->acl_checked_ms = now;
    struct stat st;
    if (stat(self->config->auth_roles, &st) != 0 ||
        (st.st_mtim.tv_sec == self->acl_mtime.tv_sec &&
         st.st_mtim.tv_nsec == self->acl_mtime.tv_nsec)) {
        return; //  unchanged, or gone: keep the roles we have
    }
    self->acl_mtime = st.st_mtim;
    char err[512];
    tern_acl_t *acl = tern_acl_load(self->config->auth_roles, err, sizeof err);
    if (!acl) {
        zsys_error("conn: %s (keeping the previous roles)", err);
        return;
    }
    tern_acl_destroy(&self->acl); //  sessions keep their references
    self->acl = acl;
    zsys_info("conn: %zu roles reloaded from %s", tern_acl_size(acl), self->config->auth_roles);
}

//  Binds SESSION (just opened by a HELLO) to the key that sent PUB.
static void s_session_auth(s_conn_t *self, s_session_t *session, tern_pub_t *pub) {
    if (!self->curve || !session) {
        return;
    }
    const char *user = zmq_msg_gets(&pub->hdr, "User-Id");
    const char *role = zmq_msg_gets(&pub->hdr, TERN_AUTH_ROLE_PROP);
    snprintf(session->user, sizeof session->user, "%s", user ? user : "");
    s_acl_refresh(self);
    tern_acl_destroy(&session->acl);
    session->acl = tern_acl_ref(self->acl);
    session->role = session->acl ? tern_acl_role(session->acl, role ? role : "") : NULL;
    if (self->config->verbose) {
        zsys_info("conn: session %" PRIu64 " is key %s, role %s%s", session->id, session->user,
                  role ? role : "-",
                  session->acl && !session->role ? " (undefined: no rights)" : "");
    }
}

//  Roles: unrestricted without an ACL; with one, only what the role allows.
#define S_MAY(session, check) (!(session)->acl || ((session)->role && (check)))

//  Returns ALLOWED; when false, answers ERROR TERN_EDENIED, logs, counts.
static bool s_permit(s_conn_t *self, s_session_t *session, uint64_t req_id, const char *what,
                     const char *object, bool allowed) {
    if (allowed) {
        return true;
    }
    char reason[TERN_REASON_MAX + 1];
    snprintf(reason, sizeof reason, "not allowed to %s %.200s (role %s)", what, object,
             session->role ? tern_role_name(session->role) : "undefined");
    tern_metrics_add(self->metrics->auth_denied, 1);
    uint64_t second = tern_now_ms() / 1000;
    if (second != self->log_second) {
        self->log_second = second;
        self->log_count = 0;
    }
    if (self->log_count++ < 10) {
        zsys_warning("conn: denied key %s: %s", session->user, reason);
    }
    s_send_error(self, session->rid, session->rid_size, req_id, TERN_EDENIED, reason);
    return false;
}

// ---------------------------------------------------------------------------
//  Incoming frames

//  Handles one decoded frame. Takes ownership of PUB (queued or recycled).
static void s_handle_frame(s_conn_t *self, s_session_t *session, const uint8_t *rid,
                           size_t rid_size, tern_pub_t *pub, tern_err_t rc) {
    tern_frame_t *frame = &pub->frame;
    if (rc != TERN_OK) {
        tern_metrics_add(self->metrics->decode_errors[tern_metrics_code_bucket(rc)], 1);
        char reason[TERN_REASON_MAX + 1];
        size_t body = zmq_msg_size(&pub->body);
        if (rc == TERN_ETOOBIG && body > self->config->max_payload) {
            tern_reason_payload(reason, sizeof reason, body, self->config->max_payload);
        } else {
            snprintf(reason, sizeof reason, "cannot decode frame: %s", tern_strerror(rc));
        }
        s_send_error(self, rid, rid_size, frame->req_id, rc, reason);
        s_pub_put(self, pub);
        return;
    }
    if (frame->cmd == TERN_CMD_HELLO) {
        s_handle_hello(self, session, rid, rid_size, frame);
        s_session_auth(self, s_session_lookup(self, rid, rid_size), pub);
        s_pub_put(self, pub);
        return;
    }
    if (session && self->curve) {
        //  Another key reusing this routing id (ROUTER handover) does not
        //  inherit the session: it must HELLO as itself.
        const char *user = zmq_msg_gets(&pub->hdr, "User-Id");
        if (!user || strcmp(user, session->user) != 0) {
            s_session_end(self, session);
            session = NULL;
        }
    }
    if (!session) {
        if (frame->cmd != TERN_CMD_HEARTBEAT && frame->cmd != TERN_CMD_BYE) {
            s_send_error(self, rid, rid_size, frame->req_id, TERN_ESTATE, "send HELLO first");
        }
        s_pub_put(self, pub);
        return;
    }
    tern_event_t *ev;
    switch (frame->cmd) {
        case TERN_CMD_PUBLISH:
            if (!s_permit(self, session, frame->req_id, "publish to", frame->topic,
                          S_MAY(session, tern_role_may_publish(session->role, frame->topic)))) {
                break;
            }
            if (frame->meta_size > self->config->max_meta) {
                char reason[TERN_REASON_MAX + 1];
                snprintf(reason, sizeof reason, "metadata %zu B > max_meta %llu B",
                         frame->meta_size, (unsigned long long)self->config->max_meta);
                s_send_error(self, rid, rid_size, frame->req_id, TERN_EMETA, reason);
                break;
            }
            pub->session_id = session->id;
            memcpy(pub->rid, rid, rid_size);
            pub->rid_size = rid_size;
            if (!self->pubs) {
                self->pubs = tern_alloc(sizeof(tern_pubs_t));
            }
            if (self->pubs->count == self->pubs->cap) {
                self->pubs->cap = self->pubs->cap ? self->pubs->cap * 2 : 256;
                self->pubs->items =
                    tern_realloc(self->pubs->items, self->pubs->cap * sizeof(tern_pub_t *));
            }
            self->pubs->items[self->pubs->count++] = pub;
            return; //  owned by the batch now
        case TERN_CMD_HEARTBEAT:
            break;
        case TERN_CMD_BYE:
            s_session_end(self, session);
            break;
        case TERN_CMD_SUBSCRIBE:
            if (!tern_pattern_valid(frame->topic, strlen(frame->topic))) {
                char reason[TERN_REASON_MAX + 1];
                s_send_error(self, rid, rid_size, frame->req_id, TERN_ETOPIC,
                             tern_reason_topic(reason, sizeof reason, frame->topic, true));
                break;
            }
            if (!s_permit(self, session, frame->req_id, "subscribe to", frame->topic,
                          S_MAY(session, tern_role_may_subscribe(session->role, frame->topic)))) {
                break;
            }
            ev = s_event(self, TERN_EV_SUB, session->id);
            ev->req_id = frame->req_id;
            ev->text = tern_strdup(frame->topic);
            snprintf(ev->group, sizeof ev->group, "%s", frame->group);
            ev->start = frame->start;
            ev->start_value = frame->start_value;
            ev->credit = frame->credit;
            break;
        case TERN_CMD_UNSUBSCRIBE:
        case TERN_CMD_ACK:
        case TERN_CMD_NACK:
        case TERN_CMD_TERM:
        case TERN_CMD_CREDIT:
            ev = s_event(self,
                         frame->cmd == TERN_CMD_UNSUBSCRIBE ? TERN_EV_UNSUB
                         : frame->cmd == TERN_CMD_ACK       ? TERN_EV_ACK
                         : frame->cmd == TERN_CMD_NACK      ? TERN_EV_NACK
                         : frame->cmd == TERN_CMD_TERM      ? TERN_EV_TERM
                                                            : TERN_EV_CREDIT,
                         session->id);
            ev->req_id = frame->req_id;
            ev->sub_id = frame->sub_id;
            ev->tag = frame->tag;
            ev->cumulative = frame->cumulative;
            ev->credit = frame->credit;
            ev->has_delay = (frame->fields & TERN_F_DELAY) != 0;
            ev->delay_ms = frame->delay_ms;
            if (frame->cmd == TERN_CMD_TERM && (frame->fields & TERN_F_REASON) &&
                frame->reason[0]) {
                ev->text = tern_strdup(frame->reason);
            }
            break;
        case TERN_CMD_ADMIN:
            if (s_permit(self, session, frame->req_id, "run admin command", frame->name,
                         S_MAY(session, tern_role_is_admin(session->role)))) {
                s_handle_admin(self, session, frame);
            }
            break;
        default:
            s_send_error(self, rid, rid_size, frame->req_id, TERN_ECOMMAND,
                         "command not accepted from a client");
            break;
    }
    s_pub_put(self, pub);
}

static void s_handle_router(s_conn_t *self) {
    for (int n = 0; n < S_DRAIN_MAX; n++) {
        uint8_t rid[TERN_RID_MAX];
        int rid_size = zmq_recv(self->router, rid, sizeof rid, ZMQ_DONTWAIT);
        if (rid_size < 0) {
            break;
        }
        if (rid_size > (int)sizeof rid) {
            rid_size = (int)sizeof rid; //  cannot happen: ids are <= 255 bytes
        }
        tern_pub_t *pub = s_pub_get(self);
        int frames = 1;
        bool more = true;
        if (zmq_msg_recv(&pub->hdr, self->router, 0) < 0) {
            s_pub_put(self, pub);
            continue;
        }
        more = zmq_msg_more(&pub->hdr);
        if (more) {
            zmq_msg_recv(&pub->body, self->router, 0);
            frames = 2;
            more = zmq_msg_more(&pub->body);
            while (more) {
                zmq_msg_t extra;
                zmq_msg_init(&extra);
                zmq_msg_recv(&extra, self->router, 0);
                more = zmq_msg_more(&extra);
                zmq_msg_close(&extra);
                frames++;
            }
        }
        s_session_t *session = s_session_lookup(self, rid, (size_t)rid_size);
        if (session) {
            session->last_recv_ms = tern_now_ms();
        }
        tern_err_t rc;
        if (frames > 2) {
            tern_frame_init(&pub->frame, TERN_CMD_ERROR);
            pub->frame.req_id = 0;
            rc = TERN_EFRAMES;
        } else {
            rc = tern_frame_decode(&pub->frame, (const uint8_t *)zmq_msg_data(&pub->hdr),
                                   zmq_msg_size(&pub->hdr),
                                   frames == 2 ? (const uint8_t *)zmq_msg_data(&pub->body) : NULL,
                                   frames == 2 ? zmq_msg_size(&pub->body) : 0, &self->limits);
        }
        s_handle_frame(self, session, rid, (size_t)rid_size, pub, rc);
    }
}

// ---------------------------------------------------------------------------
//  Results and forwarding

static void s_flush_pubacks(s_conn_t *self) {
    while (self->ack_list) {
        s_session_t *session = self->ack_list;
        self->ack_list = session->ack_next;
        session->ack_listed = false;
        session->ack_next = NULL;
        size_t len = 0;
        uint32_t count = session->ack_count;
        session->ack_count = 0;
        session->last_send_ms = tern_now_ms();
        if (count > 0 && tern_frame_encode_puback(session->acks, count, self->buf, sizeof self->buf,
                                                  &len) == TERN_OK) {
            if (s_send_raw(self, session->rid, session->rid_size, self->buf, len, NULL, 0, false) ==
                -2) {
                session->unreachable = true; //  the peer is gone: ended at the next tick
            }
        }
    }
}

//  Sends the PUBACK entries SESSION has collected so far.
static void s_send_acks(s_conn_t *self, s_session_t *session) {
    size_t len = 0;
    if (session->ack_count > 0 &&
        tern_frame_encode_puback(session->acks, session->ack_count, self->buf, sizeof self->buf,
                                 &len) == TERN_OK) {
        s_send_raw(self, session->rid, session->rid_size, self->buf, len, NULL, 0, false);
    }
    session->ack_count = 0;
}

//  Answers a publish the store refused with ERROR: the code, and a reason
//  that names the limit reached.
static void s_send_pub_error(s_conn_t *self, s_session_t *session, const tern_pub_t *pub) {
    char reason[TERN_REASON_MAX + 1], size[32];
    tern_err_t code = pub->result.err;
    if (code == TERN_ELIMIT) {
        s_reason_max_topics(self, reason, sizeof reason, pub->frame.topic);
    } else if (code == TERN_EFULL) {
        snprintf(
            reason, sizeof reason, "storage full: map_max %s reached, or the disk is full",
            tern_units_format_size(self->config->map_max, TERN_UNITS_EXACT_IEC, size, sizeof size));
    } else {
        snprintf(reason, sizeof reason, "publish to '%.200s' refused: %s", pub->frame.topic,
                 tern_strerror(code));
    }
    s_send_error(self, session->rid, session->rid_size, pub->frame.req_id, code, reason);
}

static void s_handle_committed(s_conn_t *self, tern_committed_t *committed) {
    s_session_t *session = NULL;
    uint64_t session_id = 0;
    for (tern_pubs_t *pubs = committed->pubs; pubs; pubs = pubs->next) {
        for (size_t i = 0; i < pubs->count; i++) {
            tern_pub_t *pub = pubs->items[i];
            if (pub->session_id != session_id) {
                session_id = pub->session_id;
                session = s_session_lookup(self, pub->rid, pub->rid_size);
                if (session && session->id != session_id) {
                    session = NULL; //  same routing id, newer session
                }
            }
            if (session && pub->result.err != TERN_OK) {
                //  Refused: an ERROR whose reason names the limit, after the
                //  acks before it so the client sees them in order.
                s_send_acks(self, session);
                s_send_pub_error(self, session, pub);
            } else if (session) {
                if (session->ack_count == TERN_PUBACK_MAX) {
                    //  Full frame: send it now; the rest follows in another.
                    s_send_acks(self, session);
                }
                if (session->ack_count == session->ack_cap) {
                    session->ack_cap = session->ack_cap ? session->ack_cap * 2 : 64;
                    session->acks =
                        tern_realloc(session->acks, session->ack_cap * sizeof(tern_puback_t));
                }
                tern_puback_t *ack = &session->acks[session->ack_count++];
                ack->req_id = pub->frame.req_id;
                ack->msg_id = pub->result.msg_id;
                ack->seq = pub->result.seq;
                ack->code = (uint32_t)pub->result.err;
                ack->duplicate = pub->result.duplicate;
                if (!session->ack_listed) {
                    session->ack_listed = true;
                    session->ack_next = self->ack_list;
                    self->ack_list = session;
                }
            }
            s_pub_put(self, pub);
        }
        pubs->count = 0;
    }
    s_flush_pubacks(self);
    for (tern_admin_t *admin = committed->admins; admin; admin = admin->next) {
        s_admin_done(self, admin);
    }
    tern_committed_destroy(&committed);
}

static void s_handle_inbox(s_conn_t *self) {
    for (int n = 0; n < S_DRAIN_MAX; n++) {
        tern_work_type_t type;
        void *ptr;
        if (tern_work_recv(self->inbox, ZMQ_DONTWAIT, &type, &ptr) != 0) {
            break;
        }
        if (type == TERN_WORK_COMMITTED) {
            s_handle_committed(self, (tern_committed_t *)ptr);
        } else if (type == TERN_WORK_REPL_ADMIN) {
            s_repl_admin_done(self, (tern_repl_admin_t *)ptr);
        } else {
            zsys_error("conn: unexpected work item type %d", (int)type);
        }
    }
}

//  The client at RID is gone: end its session at the next tick, so route
//  returns its in-flight messages without waiting for the heartbeat timeout.
//  Not now: ACKs and BYE it sent before closing may still wait in the
//  ROUTER's inbound queue, and must be handled first or acknowledged
//  messages would be redelivered.
static void s_mark_unreachable(s_conn_t *self, const uint8_t *rid, size_t rid_size) {
    s_session_t *session = s_session_lookup(self, rid, rid_size);
    if (session) {
        session->unreachable = true;
    }
}

//  Sends route's batch of DELIVERs (see tern_route_batch_t): each item's
//  three parts move to the ROUTER without a copy. Takes ownership of BATCH.
static void s_forward_batch(s_conn_t *self, tern_route_batch_t *batch) {
    const uint8_t *last_gone = NULL; //  rid of the last unreachable peer
    size_t last_gone_size = 0;
    for (size_t i = 0; i < batch->count; i++) {
        tern_route_frame_t *item = &batch->items[i];
        const uint8_t *rid = (const uint8_t *)zmq_msg_data(&item->parts[0]);
        size_t rid_size = zmq_msg_size(&item->parts[0]);
        if (zmq_msg_send(&item->parts[0], self->router, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
            bool gone = errno == EHOSTUNREACH;
            tern_metrics_add(self->metrics->send_dropped, 1);
            if (gone && (rid_size != last_gone_size || memcmp(rid, last_gone, rid_size) != 0)) {
                s_mark_unreachable(self, rid, rid_size);
                last_gone = rid;
                last_gone_size = rid_size;
            }
            continue; //  the dropped item's parts are closed with the batch
        }
        zmq_msg_send(&item->parts[1], self->router, ZMQ_SNDMORE);
        zmq_msg_send(&item->parts[2], self->router, 0);
    }
    tern_route_batch_destroy(&batch); //  sent parts are empty now: closing them is a no-op
}

//  Forwards [rid][hdr][payload?] from route to the client, without copying;
//  [empty][batch pointer] is a batch of DELIVERs (s_forward_batch).
static void s_handle_out(s_conn_t *self) {
    for (int n = 0; n < S_DRAIN_MAX; n++) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, self->out, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&part);
            break;
        }
        bool more = zmq_msg_more(&part);
        if (zmq_msg_size(&part) == 0 && more) {
            tern_route_batch_t *batch = NULL;
            zmq_msg_recv(&part, self->out, 0);
            if (zmq_msg_size(&part) == sizeof batch) {
                memcpy(&batch, zmq_msg_data(&part), sizeof batch);
            }
            zmq_msg_close(&part);
            if (batch) {
                s_forward_batch(self, batch);
            }
            continue;
        }
        uint8_t rid[TERN_RID_MAX];
        size_t rid_size = zmq_msg_size(&part) < sizeof rid ? zmq_msg_size(&part) : sizeof rid;
        memcpy(rid, zmq_msg_data(&part), rid_size);
        bool ok = zmq_msg_send(&part, self->router, (more ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT) >= 0;
        bool gone = !ok && errno == EHOSTUNREACH;
        if (!ok) {
            zmq_msg_close(&part);
            tern_metrics_add(self->metrics->send_dropped, 1);
        }
        while (more) {
            zmq_msg_init(&part);
            zmq_msg_recv(&part, self->out, 0);
            more = zmq_msg_more(&part);
            if (ok) {
                zmq_msg_send(&part, self->router, more ? ZMQ_SNDMORE : 0);
            } else {
                zmq_msg_close(&part);
            }
        }
        if (gone) {
            s_mark_unreachable(self, rid, rid_size); //  the client disconnected
        }
    }
}

//  Ends the sessions whose key was removed from the allow-list since the
//  last look (the directory's mtime changed): each gets ERROR TERN_EDENIED
//  first, and its next connection is refused at the handshake.
static void s_drop_revoked(s_conn_t *self) {
    if (!self->keys || !tern_keys_rescan_if_changed(self->keys)) {
        return;
    }
    zlistx_t *revoked = NULL;
    for (s_session_t *session = (s_session_t *)zhashx_first(self->sessions); session;
         session = (s_session_t *)zhashx_next(self->sessions)) {
        if (session->user[0] && !tern_keys_has_name(self->keys, session->user)) {
            if (!revoked) {
                revoked = zlistx_new();
            }
            zlistx_add_end(revoked, session);
        }
    }
    for (s_session_t *session = revoked ? (s_session_t *)zlistx_first(revoked) : NULL; session;
         session = (s_session_t *)zlistx_next(revoked)) {
        zsys_warning("conn: key %s was revoked: ending its session %" PRIu64, session->user,
                     session->id);
        s_send_error(self, session->rid, session->rid_size, 0, TERN_EDENIED, "key revoked");
        s_session_end(self, session);
    }
    zlistx_destroy(&revoked);
}

static void s_tick(s_conn_t *self) {
    s_drop_revoked(self);
    uint64_t now = tern_now_ms();
    zlistx_t *dead = NULL;
    for (s_session_t *session = (s_session_t *)zhashx_first(self->sessions); session;
         session = (s_session_t *)zhashx_next(self->sessions)) {
        if (session->unreachable || now - session->last_recv_ms > session->timeout_ms) {
            if (!dead) {
                dead = zlistx_new();
            }
            zlistx_add_end(dead, session);
            if (self->config->verbose) {
                zsys_info("conn: session %" PRIu64 " silent for %" PRIu64 " ms", session->id,
                          now - session->last_recv_ms);
            }
        } else if (now - session->last_send_ms >= self->config->heartbeat_ms) {
            tern_frame_t *frame = &self->scratch;
            tern_frame_init(frame, TERN_CMD_HEARTBEAT);
            size_t len = 0;
            if (tern_frame_encode(frame, self->buf, sizeof self->buf, &len) == TERN_OK &&
                s_send_raw(self, session->rid, session->rid_size, self->buf, len, NULL, 0, false) ==
                    -2) {
                //  Disconnected without BYE: no need to wait for the timeout.
                if (!dead) {
                    dead = zlistx_new();
                }
                zlistx_add_end(dead, session);
                if (self->config->verbose) {
                    zsys_info("conn: session %" PRIu64 " unreachable", session->id);
                }
            }
            session->last_send_ms = now;
        }
    }
    if (dead) {
        for (s_session_t *session = (s_session_t *)zlistx_first(dead); session;
             session = (s_session_t *)zlistx_next(dead)) {
            if (self->config->verbose) {
                zsys_info("conn: session %" PRIu64 " timed out or disconnected", session->id);
            }
            s_session_end(self, session);
        }
        zlistx_destroy(&dead);
    }
}

// ---------------------------------------------------------------------------
//  The actor

static void s_cleanup(s_conn_t *self) {
    //  Items still queued for us (shutdown): nobody will handle them.
    tern_work_type_t type;
    void *ptr;
    while (self->inbox && tern_work_recv(self->inbox, ZMQ_DONTWAIT, &type, &ptr) == 0) {
        if (type == TERN_WORK_COMMITTED) {
            tern_committed_t *committed = (tern_committed_t *)ptr;
            tern_committed_destroy(&committed);
        } else if (type == TERN_WORK_REPL_ADMIN) {
            tern_repl_admin_t *item = (tern_repl_admin_t *)ptr;
            free(item->reply);
            free(item);
        }
    }
    zmq_msg_t part;
    zmq_msg_init(&part);
    bool batch_next = false; //  the part after an empty first part is a batch
    while (self->out && zmq_msg_recv(&part, self->out, ZMQ_DONTWAIT) >= 0) {
        if (batch_next && zmq_msg_size(&part) == sizeof(tern_route_batch_t *)) {
            tern_route_batch_t *batch;
            memcpy(&batch, zmq_msg_data(&part), sizeof batch);
            tern_route_batch_destroy(&batch);
        }
        batch_next = zmq_msg_size(&part) == 0 && zmq_msg_more(&part);
        zmq_msg_close(&part);
        zmq_msg_init(&part);
    }
    zmq_msg_close(&part);
    if (self->pubs) {
        tern_pubs_destroy(&self->pubs);
    }
    if (self->events) {
        tern_events_destroy(&self->events);
    }
    while (self->pool) {
        tern_pub_t *next = self->pool->next;
        free(self->pool);
        self->pool = next;
    }
    zhashx_destroy(&self->sessions);
    tern_acl_destroy(&self->acl);
    tern_keys_destroy(&self->keys);
    tern_store_reader_destroy(&self->reader);
    zsock_destroy(&self->router_sock);
    zsock_destroy(&self->inbox_sock);
    zsock_destroy(&self->out_sock);
    zsock_destroy(&self->storer_sock);
    zsock_destroy(&self->route_sock);
    zsock_destroy(&self->repl_sock);
}

void tern_conn_actor(zsock_t *pipe, void *arg) {
    tern_thread_name("ternd-conn");
    s_conn_t *self = tern_alloc(sizeof(s_conn_t));
    self->args = (tern_conn_args_t *)arg;
    self->config = self->args->config;
    self->metrics = self->args->metrics;
    self->pipe = zsock_resolve(pipe);
    self->limits.max_payload = self->config->max_payload;
    self->sessions = zhashx_new();
    zhashx_set_destructor(self->sessions, s_session_destroy);
    self->reader = tern_store_reader_new(self->args->store);
    self->inbox = tern_work_pull_bind(&self->inbox_sock, self->args->inbox);
    self->out = tern_work_pull_bind(&self->out_sock, self->args->out);
    self->to_storer = tern_work_push_connect(&self->storer_sock, self->args->storer_inbox);
    self->to_route = tern_work_push_connect(&self->route_sock, self->args->route_inbox);
    if (!self->reader || !self->inbox || !self->out || !self->to_storer || !self->to_route) {
        snprintf(self->args->error, sizeof self->args->error, "cannot set up inproc sockets");
        goto fail;
    }
    self->router_sock = zsock_new(ZMQ_ROUTER);
    if (!self->router_sock) {
        snprintf(self->args->error, sizeof self->args->error, "cannot create socket");
        goto fail;
    }
    zsock_set_router_mandatory(self->router_sock, 1);
    zsock_set_router_handover(self->router_sock, 1);
    zsock_set_sndhwm(self->router_sock, S_HWM);
    zsock_set_rcvhwm(self->router_sock, S_HWM);
    zsock_set_linger(self->router_sock, 500);
    int64_t maxmsg = (int64_t)(2 * self->config->max_payload + TERN_HEADER_MAX + 4096);
    zmq_setsockopt(zsock_resolve(self->router_sock), ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    //  A connection that does not finish the ZeroMQ (and CURVE) handshake in
    //  10 s is closed: half-open connections cannot pile up.
    int handshake_ms = 10000;
    zmq_setsockopt(zsock_resolve(self->router_sock), ZMQ_HANDSHAKE_IVL, &handshake_ms,
                   sizeof handshake_ms);
    self->curve = self->config->auth_mode == TERN_AUTH_CURVE;
    if (self->curve &&
        tern_auth_curve_server(zsock_resolve(self->router_sock), self->config->auth_server_key,
                               self->args->error, sizeof self->args->error) != TERN_OK) {
        goto fail;
    }
    if (self->curve && *self->config->auth_clients) {
        self->keys = tern_keys_new(self->config->auth_clients);
        if (self->keys) {
            tern_keys_rescan_if_changed(self->keys);
        }
    }
    if (self->curve && *self->config->auth_roles) {
        struct stat st;
        if (stat(self->config->auth_roles, &st) == 0) {
            self->acl_mtime = st.st_mtim;
        }
        self->acl_checked_ms = tern_now_ms();
        self->acl =
            tern_acl_load(self->config->auth_roles, self->args->error, sizeof self->args->error);
        if (!self->acl) {
            goto fail;
        }
    }
    if (zsock_bind(self->router_sock, "%s", self->config->listen) < 0) {
        snprintf(self->args->error, sizeof self->args->error, "cannot listen on %s: %s",
                 self->config->listen, zmq_strerror(zmq_errno()));
        goto fail;
    }
    self->router = zsock_resolve(self->router_sock);
    char *endpoint = zsock_last_endpoint(self->router_sock);
    snprintf(self->args->bound, sizeof self->args->bound, "%s",
             endpoint ? endpoint : self->config->listen);
    zstr_free(&endpoint);
    self->args->bind_rc = 0;
    zsock_signal(pipe, 0);

    uint64_t hb = self->config->heartbeat_ms < self->config->heartbeat_timeout_ms
                      ? self->config->heartbeat_ms
                      : self->config->heartbeat_timeout_ms;
    uint64_t tick_ms = hb / 4;
    tick_ms = tick_ms < 10 ? 10 : tick_ms > 1000 ? 1000 : tick_ms;
    uint64_t next_tick = tern_now_ms() + tick_ms;
    bool running = true;
    while (running) {
        zmq_pollitem_t items[] = {{self->pipe, 0, ZMQ_POLLIN, 0},
                                  {self->router, 0, ZMQ_POLLIN, 0},
                                  {self->inbox, 0, ZMQ_POLLIN, 0},
                                  {self->out, 0, ZMQ_POLLIN, 0}};
        uint64_t now = tern_now_ms();
        long timeout = next_tick > now ? (long)(next_tick - now) : 0;
        int rc = zmq_poll(items, 4, timeout);
        if (rc < 0 && errno != EINTR) {
            break;
        }
        if (rc > 0) {
            if (items[0].revents & ZMQ_POLLIN) {
                char *command = zstr_recv(pipe);
                if (!command || streq(command, "$TERM")) {
                    running = false;
                }
                zstr_free(&command);
            }
            if (items[2].revents & ZMQ_POLLIN) {
                s_handle_inbox(self);
            }
            if (items[3].revents & ZMQ_POLLIN) {
                s_handle_out(self);
            }
            if (items[1].revents & ZMQ_POLLIN) {
                s_handle_router(self);
            }
        }
        now = tern_now_ms();
        if (now >= next_tick) {
            s_tick(self);
            next_tick = now + tick_ms;
        }
        s_flush(self);
    }
    s_cleanup(self);
    free(self);
    return;

fail:
    self->args->bind_rc = -1;
    s_cleanup(self);
    free(self);
    zsock_signal(pipe, 1);
    char *command = zstr_recv(pipe);
    zstr_free(&command);
}
