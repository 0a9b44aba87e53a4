/*  tern_conn.c - the conn actor: decoding, PUBACKs and the client ROUTER.

    conn is the only code that touches the client socket. It decodes each
    frame once (tern_frame_decode) into a pooled tern_pub_t that keeps the
    header and payload zmq_msg_t (no copy), batches the PUBLISHes of one drain
    (up to S_DRAIN_MAX frames) into one tern_pubs_t for the storer, and the
    subscription traffic of one drain into one tern_events_t for route. It
    answers PUBACKs when the storer's COMMITTED arrives: one PUBACK frame per
    session per commit. It forwards the frames route (and nobody else) puts on
    its `out` socket: [routing id][header][payload?], or a single-frame
    DELIVERS work item (tern_delivers_t, one per route round) whose zmq_msg_t
    parts it sends on the ROUTER without a copy.

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
                DELIVERS items (tern_delivers_t *, conn owns them)
        storer  PUSH: PUBS, ADMIN (topic writes)
        route   PUSH: EVENTS (open/gone/sub/unsub/ack/nack/term/credit/admin)

    Sessions (the table, HELLO, identity, heartbeats, expiry) live in
    tern_conn_session.c, the admin plane in tern_conn_admin.c, what a
    clustered node accepts (TERN_ENOTLEADER) and the cluster* admin ops in
    tern_conn_cluster.c.
*/
#include "tern_conn_priv.h"
#include "tern_actor.h"
#include "tern_admin.h"
#include "tern_audit.h"
#include "tern_auth.h"
#include "tern_json.h"
#include "tern_proto.h"
#include "tern_repl.h"
#include "tern_route.h"
#include "tern_work.h"
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

// ---------------------------------------------------------------------------
//  Sending

//  Sends [RID][HDR][PAYLOAD?] on the ROUTER without blocking. Returns 0; -2
//  when the peer is gone (EHOSTUNREACH: callers mark its session
//  unreachable, ended at the next tick); -1 when it is full (EAGAIN). A
//  frame not sent is dropped and counted.
int c_send_raw(c_conn_t *self, const uint8_t *rid, size_t rid_size, const void *hdr,
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

int c_send_frame(c_conn_t *self, const uint8_t *rid, size_t rid_size, const tern_frame_t *frame,
                 const void *payload, size_t payload_size) {
    size_t len = 0;
    tern_err_t rc = tern_frame_encode(frame, self->buf, sizeof self->buf, &len);
    if (rc != TERN_OK) {
        zsys_error("conn: cannot encode %s: %s", tern_cmd_name(frame->cmd), tern_strerror(rc));
        return -1;
    }
    bool has_payload = tern_cmd_has_payload(frame->cmd);
    int res = c_send_raw(self, rid, rid_size, self->buf, len, payload, payload_size, has_payload);
    c_session_t *session = c_session_lookup(self, rid, rid_size);
    if (session) {
        session->last_send_ms = tern_now_ms();
    }
    return res;
}

void c_send_error(c_conn_t *self, const uint8_t *rid, size_t rid_size, uint64_t req_id,
                  tern_err_t code, const char *reason) {
    tern_frame_t *frame = &self->scratch;
    tern_frame_init(frame, TERN_CMD_ERROR);
    frame->req_id = req_id;
    frame->code = (uint32_t)code;
    if (reason && *reason) {
        snprintf(frame->reason, sizeof frame->reason, "%s", reason);
        frame->fields |= TERN_F_REASON;
    }
    c_send_frame(self, rid, rid_size, frame, NULL, 0);
}

//  ERROR about topic NAME: "no such topic 'NAME'" for TERN_ENOTFOUND, else
//  OTHER with the code's description.
void c_send_topic_error(c_conn_t *self, const uint8_t *rid, size_t rid_size, uint64_t req_id,
                        tern_err_t code, const char *name, const char *other) {
    char reason[TERN_REASON_MAX + 1];
    if (code == TERN_ENOTFOUND) {
        snprintf(reason, sizeof reason, "no such topic '%.200s'", name);
    } else {
        snprintf(reason, sizeof reason, "%s '%.200s': %s", other, name, tern_strerror(code));
    }
    c_send_error(self, rid, rid_size, req_id, code, reason);
}

//  The reason of a TERN_ELIMIT from the store: max_topics was reached.
const char *c_reason_max_topics(c_conn_t *self, char *out, size_t cap, const char *topic) {
    snprintf(out, cap, "max_topics %u reached: topic '%.200s' not created",
             (unsigned)self->config->max_topics, topic);
    return out;
}

void c_send_reply(c_conn_t *self, const uint8_t *rid, size_t rid_size, uint64_t req_id,
                  const tern_json_t *json) {
    tern_frame_t *frame = &self->scratch;
    tern_frame_init(frame, TERN_CMD_REPLY);
    frame->req_id = req_id;
    frame->payload = (const uint8_t *)json->data;
    frame->payload_size = json->len;
    c_send_frame(self, rid, rid_size, frame, json->data, json->len);
}

// ---------------------------------------------------------------------------
//  Pools and batches

static tern_pub_t *s_pub_get(c_conn_t *self) {
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
static void s_pub_put(c_conn_t *self, tern_pub_t *pub) {
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

tern_event_t *c_event(c_conn_t *self, tern_ev_type_t type, uint64_t session_id) {
    if (!self->events) {
        self->events = tern_alloc(sizeof(tern_events_t));
    }
    tern_event_t *ev = tern_events_push(self->events);
    ev->type = (uint8_t)type;
    ev->session_id = session_id;
    return ev;
}

static void s_flush(c_conn_t *self) {
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
//  Authorization (auth/roles; docs/security.md)

//  Roles: unrestricted without an ACL; with one, only what the role allows.
#define S_MAY(session, check) (!(session)->acl || ((session)->role && (check)))

//  Returns ALLOWED; when false, answers ERROR TERN_EDENIED, logs, counts.
static bool s_permit(c_conn_t *self, c_session_t *session, uint64_t req_id, const char *what,
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
    c_send_error(self, session->rid, session->rid_size, req_id, TERN_EDENIED, reason);
    return false;
}

// ---------------------------------------------------------------------------
//  Incoming frames

//  The actions of a live session's frames, by command (like malamute's named
//  actions): each returns true when it kept PUB (a PUBLISH queued for the
//  storer), false when the caller recycles it.
typedef bool(s_action_fn)(c_conn_t *self, c_session_t *session, tern_pub_t *pub);

static bool s_on_publish(c_conn_t *self, c_session_t *session, tern_pub_t *pub) {
    const tern_frame_t *frame = &pub->frame;
    if (!s_permit(self, session, frame->req_id, "publish to", frame->topic,
                  S_MAY(session, tern_role_may_publish(session->role, frame->topic)))) {
        return false;
    }
    if (frame->meta_size > self->config->max_meta) {
        char reason[TERN_REASON_MAX + 1];
        snprintf(reason, sizeof reason, "metadata %zu B > max_meta %llu B", frame->meta_size,
                 (unsigned long long)self->config->max_meta);
        c_send_error(self, session->rid, session->rid_size, frame->req_id, TERN_EMETA, reason);
        return false;
    }
    if (self->args->cluster && !c_cluster_admit(self, session, frame)) {
        return false; //  another node leads the topic's partition: nothing stored
    }
    pub->session_id = session->id;
    memcpy(pub->rid, session->rid, session->rid_size);
    pub->rid_size = session->rid_size;
    if (!self->pubs) {
        self->pubs = tern_alloc(sizeof(tern_pubs_t));
    }
    if (self->pubs->count == self->pubs->cap) {
        self->pubs->cap = self->pubs->cap ? self->pubs->cap * 2 : 256;
        self->pubs->items = tern_realloc(self->pubs->items, self->pubs->cap * sizeof(tern_pub_t *));
    }
    self->pubs->items[self->pubs->count++] = pub;
    return true; //  owned by the batch now
}

static bool s_on_heartbeat(c_conn_t *self, c_session_t *session, tern_pub_t *pub) {
    (void)self;
    (void)session;
    (void)pub;
    return false; //  receiving it refreshed last_recv_ms already
}

static bool s_on_bye(c_conn_t *self, c_session_t *session, tern_pub_t *pub) {
    (void)pub;
    c_session_end(self, session);
    return false;
}

static bool s_on_subscribe(c_conn_t *self, c_session_t *session, tern_pub_t *pub) {
    const tern_frame_t *frame = &pub->frame;
    if (!tern_pattern_valid(frame->topic, strlen(frame->topic))) {
        char reason[TERN_REASON_MAX + 1];
        c_send_error(self, session->rid, session->rid_size, frame->req_id, TERN_ETOPIC,
                     tern_reason_topic(reason, sizeof reason, frame->topic, true));
        return false;
    }
    if (!s_permit(self, session, frame->req_id, "subscribe to", frame->topic,
                  S_MAY(session, tern_role_may_subscribe(session->role, frame->topic)))) {
        return false;
    }
    //  An exact topic belongs to one partition: its leader serves it. A
    //  pattern spans partitions: route gives it the topics this node leads.
    if (self->args->cluster && !strpbrk(frame->topic, "*>") &&
        !c_cluster_admit(self, session, frame)) {
        return false;
    }
    tern_event_t *ev = c_event(self, TERN_EV_SUB, session->id);
    ev->req_id = frame->req_id;
    ev->text = tern_strdup(frame->topic);
    snprintf(ev->group, sizeof ev->group, "%s", frame->group);
    ev->start = frame->start;
    ev->start_value = frame->start_value;
    ev->credit = frame->credit;
    return false;
}

//  UNSUBSCRIBE, ACK, NACK, TERM and CREDIT: events for route as they are.
static bool s_on_consumer(c_conn_t *self, c_session_t *session, tern_pub_t *pub) {
    const tern_frame_t *frame = &pub->frame;
    tern_ev_type_t type = frame->cmd == TERN_CMD_UNSUBSCRIBE ? TERN_EV_UNSUB
                          : frame->cmd == TERN_CMD_ACK       ? TERN_EV_ACK
                          : frame->cmd == TERN_CMD_NACK      ? TERN_EV_NACK
                          : frame->cmd == TERN_CMD_TERM      ? TERN_EV_TERM
                                                             : TERN_EV_CREDIT;
    tern_event_t *ev = c_event(self, type, session->id);
    ev->req_id = frame->req_id;
    ev->sub_id = frame->sub_id;
    ev->tag = frame->tag;
    ev->cumulative = frame->cumulative;
    ev->credit = frame->credit;
    ev->has_delay = (frame->fields & TERN_F_DELAY) != 0;
    ev->delay_ms = frame->delay_ms;
    if (frame->cmd == TERN_CMD_TERM && (frame->fields & TERN_F_REASON) && frame->reason[0]) {
        ev->text = tern_strdup(frame->reason);
    }
    return false;
}

//  True if SESSION's role grants RIGHT (tern_admin.c's table names the
//  right of each operation; an unknown one needs the admin right too, so a
//  role without it learns nothing about which operations exist).
static bool s_has_right(const c_session_t *session, tern_admin_right_t right) {
    switch (right) {
        case TERN_ADMIN_RIGHT_ADMIN:
            return S_MAY(session, tern_role_is_admin(session->role));
    }
    return false;
}

static bool s_on_admin(c_conn_t *self, c_session_t *session, tern_pub_t *pub) {
    const tern_frame_t *frame = &pub->frame;
    const tern_admin_desc_t *desc = tern_admin_lookup(frame->name);
    if (s_permit(self, session, frame->req_id, "run admin command", frame->name,
                 s_has_right(session, desc ? desc->right : TERN_ADMIN_RIGHT_ADMIN))) {
        c_handle_admin(self, session, frame);
    }
    return false;
}

//  Commands a client may send once its session is live; the others get
//  ERROR TERN_ECOMMAND. HELLO is handled before (it opens the session).
static s_action_fn *const s_actions[TERN_CMD_MAX_] = {
    [TERN_CMD_PUBLISH] = s_on_publish,
    [TERN_CMD_HEARTBEAT] = s_on_heartbeat,
    [TERN_CMD_BYE] = s_on_bye,
    [TERN_CMD_SUBSCRIBE] = s_on_subscribe,
    [TERN_CMD_UNSUBSCRIBE] = s_on_consumer,
    [TERN_CMD_ACK] = s_on_consumer,
    [TERN_CMD_NACK] = s_on_consumer,
    [TERN_CMD_TERM] = s_on_consumer,
    [TERN_CMD_CREDIT] = s_on_consumer,
    [TERN_CMD_ADMIN] = s_on_admin,
};

//  A frame that could not be decoded (RC): ERROR with a reason.
static void s_on_bad_frame(c_conn_t *self, const uint8_t *rid, size_t rid_size,
                           const tern_pub_t *pub, tern_err_t rc) {
    tern_metrics_add(self->metrics->decode_errors[tern_metrics_code_bucket(rc)], 1);
    char reason[TERN_REASON_MAX + 1];
    size_t body = zmq_msg_size(&pub->body);
    if (rc == TERN_ETOOBIG && body > self->config->max_payload) {
        tern_reason_payload(reason, sizeof reason, body, self->config->max_payload);
    } else {
        snprintf(reason, sizeof reason, "cannot decode frame: %s", tern_strerror(rc));
    }
    c_send_error(self, rid, rid_size, pub->frame.req_id, rc, reason);
}

//  Handles one decoded frame. Takes ownership of PUB (queued or recycled).
static void s_handle_frame(c_conn_t *self, c_session_t *session, const uint8_t *rid,
                           size_t rid_size, tern_pub_t *pub, tern_err_t rc) {
    tern_frame_t *frame = &pub->frame;
    if (rc != TERN_OK) {
        s_on_bad_frame(self, rid, rid_size, pub, rc);
        s_pub_put(self, pub);
        return;
    }
    if (frame->cmd == TERN_CMD_HELLO) {
        c_handle_hello(self, session, rid, rid_size, frame);
        c_session_auth(self, c_session_lookup(self, rid, rid_size), pub);
        s_pub_put(self, pub);
        return;
    }
    if (session && self->curve) {
        //  Another key reusing this routing id (ROUTER handover) does not
        //  inherit the session: it must HELLO as itself.
        const char *user = zmq_msg_gets(&pub->hdr, "User-Id");
        if (!user || strcmp(user, session->user) != 0) {
            c_session_end(self, session);
            session = NULL;
        }
    }
    s_action_fn *action = frame->cmd < TERN_CMD_MAX_ ? s_actions[frame->cmd] : NULL;
    bool kept = false;
    if (!session) {
        if (frame->cmd != TERN_CMD_HEARTBEAT && frame->cmd != TERN_CMD_BYE) {
            c_send_error(self, rid, rid_size, frame->req_id, TERN_ESTATE, "send HELLO first");
        }
    } else if (action) {
        kept = action(self, session, pub);
    } else {
        c_send_error(self, rid, rid_size, frame->req_id, TERN_ECOMMAND,
                     "command not accepted from a client");
    }
    if (!kept) {
        s_pub_put(self, pub);
    }
}

static void s_handle_router(void *actor, void *unused) {
    (void)unused;
    c_conn_t *self = (c_conn_t *)actor;
    if (self->args->cluster) {
        c_cluster_refresh(self); //  once per drain, not per message
    }
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
        c_session_t *session = c_session_lookup(self, rid, (size_t)rid_size);
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

static void s_flush_pubacks(c_conn_t *self) {
    while (self->ack_list) {
        c_session_t *session = self->ack_list;
        self->ack_list = session->ack_next;
        session->ack_listed = false;
        session->ack_next = NULL;
        size_t len = 0;
        uint32_t count = session->ack_count;
        session->ack_count = 0;
        session->last_send_ms = tern_now_ms();
        if (count > 0 && tern_frame_encode_puback(session->acks, count, self->buf, sizeof self->buf,
                                                  &len) == TERN_OK) {
            if (c_send_raw(self, session->rid, session->rid_size, self->buf, len, NULL, 0, false) ==
                -2) {
                session->unreachable = true; //  the peer is gone: ended at the next tick
            }
        }
    }
}

//  Sends the PUBACK entries SESSION has collected so far.
static void s_send_acks(c_conn_t *self, c_session_t *session) {
    size_t len = 0;
    if (session->ack_count > 0 &&
        tern_frame_encode_puback(session->acks, session->ack_count, self->buf, sizeof self->buf,
                                 &len) == TERN_OK) {
        c_send_raw(self, session->rid, session->rid_size, self->buf, len, NULL, 0, false);
    }
    session->ack_count = 0;
}

//  Answers a publish the store refused with ERROR: the code, and a reason
//  that names the limit reached.
static void s_send_pub_error(c_conn_t *self, c_session_t *session, const tern_pub_t *pub) {
    char reason[TERN_REASON_MAX + 1], size[32];
    tern_err_t code = pub->result.err;
    if (code == TERN_ELIMIT) {
        c_reason_max_topics(self, reason, sizeof reason, pub->frame.topic);
    } else if (code == TERN_EFULL) {
        snprintf(
            reason, sizeof reason, "storage full: map_max %s reached, or the disk is full",
            tern_units_format_size(self->config->map_max, TERN_UNITS_EXACT_IEC, size, sizeof size));
    } else if (code == TERN_ETIMEOUT) {
        //  Only crepl answers a publish so (cluster): it is in the leader's
        //  log, but the ISR did not confirm it; a resend is deduplicated.
        snprintf(reason, sizeof reason,
                 "publish to '%.100s' not confirmed by the in-sync replicas within "
                 "cluster/ack_timeout; the outcome is unknown: resend with the same producer seq",
                 pub->frame.topic);
    } else {
        snprintf(reason, sizeof reason, "publish to '%.200s' refused: %s", pub->frame.topic,
                 tern_strerror(code));
    }
    c_send_error(self, session->rid, session->rid_size, pub->frame.req_id, code, reason);
}

static void s_handle_committed(c_conn_t *self, tern_committed_t *committed) {
    c_session_t *session = NULL;
    uint64_t session_id = 0;
    for (tern_pubs_t *pubs = committed->pubs; pubs; pubs = pubs->next) {
        for (size_t i = 0; i < pubs->count; i++) {
            tern_pub_t *pub = pubs->items[i];
            if (pub->session_id != session_id) {
                session_id = pub->session_id;
                session = c_session_lookup(self, pub->rid, pub->rid_size);
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
        c_admin_done(self, admin);
    }
    tern_committed_destroy(&committed);
}

static void s_handle_inbox(void *actor, void *unused) {
    (void)unused;
    c_conn_t *self = (c_conn_t *)actor;
    for (int n = 0; n < S_DRAIN_MAX; n++) {
        tern_work_type_t type;
        void *ptr;
        if (tern_work_recv(self->inbox, ZMQ_DONTWAIT, &type, &ptr) != 0) {
            break;
        }
        if (type == TERN_WORK_COMMITTED) {
            s_handle_committed(self, (tern_committed_t *)ptr);
        } else if (type == TERN_WORK_REPL_ADMIN) {
            c_repl_admin_done(self, (tern_repl_admin_t *)ptr);
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
static void s_mark_unreachable(c_conn_t *self, const uint8_t *rid, size_t rid_size) {
    c_session_t *session = c_session_lookup(self, rid, rid_size);
    if (session) {
        session->unreachable = true;
    }
}

//  Sends route's batch of DELIVERs (see tern_delivers_t): each item's
//  three parts move to the ROUTER without a copy. Takes ownership of BATCH.
static void s_forward_batch(c_conn_t *self, tern_delivers_t *batch) {
    const uint8_t *last_gone = NULL; //  rid of the last unreachable peer
    size_t last_gone_size = 0;
    for (size_t i = 0; i < batch->count; i++) {
        tern_deliver_t *item = &batch->items[i];
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
    tern_delivers_destroy(&batch); //  sent parts are empty now: closing them is a no-op
}

//  Forwards [rid][hdr][payload?] from route to the client, without copying;
//  a single frame (a routing id always has more after it) is a work item:
//  a batch of DELIVERs (s_forward_batch).
static void s_handle_out(void *actor, void *unused) {
    (void)unused;
    c_conn_t *self = (c_conn_t *)actor;
    for (int n = 0; n < S_DRAIN_MAX; n++) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, self->out, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&part);
            break;
        }
        bool more = zmq_msg_more(&part);
        if (!more) {
            tern_work_type_t type;
            void *ptr = NULL;
            if (tern_work_parse(zmq_msg_data(&part), zmq_msg_size(&part), &type, &ptr) == 0 &&
                type == TERN_WORK_DELIVERS) {
                s_forward_batch(self, (tern_delivers_t *)ptr);
            } else {
                zsys_error("conn: unexpected frame on the out socket");
            }
            zmq_msg_close(&part);
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

// ---------------------------------------------------------------------------
//  The actor

//  Loop hooks (tern_actor.h): inbox, out and the ROUTER in that order, then
//  the tick when due and the flush of the turn's batches.
static long s_prepare(tern_loop_t *loop, void *arg) {
    (void)loop;
    c_conn_t *self = (c_conn_t *)arg;
    return tern_loop_wait_until(self->next_tick);
}

static void s_after(void *arg) {
    c_conn_t *self = (c_conn_t *)arg;
    uint64_t now = tern_now_ms();
    if (now >= self->next_tick) {
        c_sessions_tick(self);
        self->next_tick = now + self->tick_ms;
    }
    s_flush(self);
}

static void s_cleanup(c_conn_t *self) {
    //  Items still queued for us (shutdown): nobody will handle them.
    tern_work_type_t type;
    void *ptr;
    while (self->inbox && tern_work_recv(self->inbox, ZMQ_DONTWAIT, &type, &ptr) == 0) {
        if (type == TERN_WORK_COMMITTED) {
            tern_committed_t *committed = (tern_committed_t *)ptr;
            tern_committed_destroy(&committed);
        } else if (type == TERN_WORK_REPL_ADMIN) {
            tern_repl_admin_t *item = (tern_repl_admin_t *)ptr;
            tern_repl_admin_destroy(&item);
        }
    }
    zmq_msg_t part;
    zmq_msg_init(&part);
    bool first = true; //  a first part without more is a DELIVERS item
    while (self->out && zmq_msg_recv(&part, self->out, ZMQ_DONTWAIT) >= 0) {
        bool more = zmq_msg_more(&part);
        ptr = NULL;
        if (first && !more &&
            tern_work_parse(zmq_msg_data(&part), zmq_msg_size(&part), &type, &ptr) == 0 &&
            type == TERN_WORK_DELIVERS) {
            tern_delivers_t *batch = ptr;
            tern_delivers_destroy(&batch);
        }
        first = !more;
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
    c_cluster_destroy(self);
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

//  The client ROUTER with its options, CURVE and the roles when configured
//  (not bound yet). Returns 0, or -1 with args->error set.
static int s_router_new(c_conn_t *self) {
    self->router_sock = zsock_new(ZMQ_ROUTER);
    if (!self->router_sock) {
        snprintf(self->args->error, sizeof self->args->error, "cannot create socket");
        return -1;
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
        return -1;
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
            return -1;
        }
    }
    return 0;
}

void tern_conn_actor(zsock_t *pipe, void *arg) {
    tern_thread_name("ternd-conn");
    c_conn_t *self = tern_alloc(sizeof(c_conn_t));
    self->args = (tern_conn_args_t *)arg;
    self->config = self->args->config;
    self->metrics = self->args->metrics;
    self->limits.max_payload = self->config->max_payload;
    self->sessions = zhashx_new();
    zhashx_set_destructor(self->sessions, c_session_destroy);
    self->reader = tern_store_reader_new(self->args->store);
    self->inbox = tern_work_pull_bind(&self->inbox_sock, self->args->inbox);
    self->out = tern_work_pull_bind(&self->out_sock, self->args->out);
    self->to_storer = tern_work_push_connect(&self->storer_sock, self->args->storer_inbox);
    self->to_route = tern_work_push_connect(&self->route_sock, self->args->route_inbox);
    if (!self->reader || !self->inbox || !self->out || !self->to_storer || !self->to_route) {
        snprintf(self->args->error, sizeof self->args->error, "cannot set up inproc sockets");
        goto fail;
    }
    if (s_router_new(self) != 0) {
        goto fail;
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
    self->tick_ms = hb / 4;
    self->tick_ms = self->tick_ms < 10 ? 10 : self->tick_ms > 1000 ? 1000 : self->tick_ms;
    self->next_tick = tern_now_ms() + self->tick_ms;
    tern_loop_t loop;
    tern_loop_init(&loop, pipe, self, s_prepare, s_after);
    tern_loop_reader(&loop, self->inbox, s_handle_inbox, NULL);
    tern_loop_reader(&loop, self->out, s_handle_out, NULL);
    tern_loop_reader(&loop, self->router, s_handle_router, NULL);
    tern_loop_run(&loop);
    s_cleanup(self);
    free(self);
    return;

fail:
    self->args->bind_rc = -1;
    s_cleanup(self);
    free(self);
    tern_actor_fail(pipe);
}
