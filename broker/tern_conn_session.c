/*  tern_conn_session.c - conn: the session table of the client endpoint.

    A session opens with HELLO (answered WELCOME), takes the CURVE key and
    role of the connection that sent it, and ends with BYE, a repeated
    HELLO, a heartbeat timeout, an unreachable peer or a revoked key; each
    end is a GONE event for route, which returns the session's in-flight
    messages. Part of the conn actor (tern_conn.c): it runs on conn's thread,
    tern_conn.c calls in per frame (HELLO, BYE) and per tick, and replies go
    out through c_send_*.

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
#include "tern_conn_priv.h"
#include "tern_auth.h"
#include "tern_proto.h"
#include "tern_work.h"
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

// ---------------------------------------------------------------------------
//  Sessions

void c_session_destroy(void **item_p) {
    c_session_t *session = (c_session_t *)*item_p;
    if (session) {
        tern_acl_destroy(&session->acl);
        free(session->acks);
        free(session->stuck);
        free(session);
        *item_p = NULL;
    }
}

void c_session_end(c_conn_t *self, c_session_t *session) {
    c_event(self, TERN_EV_GONE, session->id);
    tern_metrics_add(self->metrics->connections, -1);
    if (session->ack_listed) {
        //  Unlink from the PUBACK list (rare: ended while answering).
        c_session_t **link = &self->ack_list;
        while (*link && *link != session) {
            link = &(*link)->ack_next;
        }
        if (*link) {
            *link = session->ack_next;
        }
    }
    zhashx_delete(self->sessions, session->key);
}

void c_handle_hello(c_conn_t *self, c_session_t *session, const uint8_t *rid, size_t rid_size,
                    const tern_frame_t *frame) {
    if (frame->proto_version < TERN_PROTO_MIN_VERSION) {
        c_send_error(self, rid, rid_size, frame->req_id, TERN_EVERSION,
                     "protocol version not supported");
        return;
    }
    if (session) {
        c_session_end(self, session);
    }
    if (zhashx_size(self->sessions) >= self->config->max_connections &&
        self->config->max_connections > 0) {
        char reason[TERN_REASON_MAX + 1];
        snprintf(reason, sizeof reason, "max_connections %u reached",
                 (unsigned)self->config->max_connections);
        c_send_error(self, rid, rid_size, frame->req_id, TERN_ELIMIT, reason);
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
    //  (Closed connections are noticed sooner anyway: see c_sessions_tick.)
    //  It marks its resends: its refused publishes stick (tern_conn_cluster.c).
    session->ordered = frame->resend;
    session->timeout_ms = self->config->heartbeat_timeout_ms;
    if ((uint64_t)frame->heartbeat_ms * 3 > session->timeout_ms) {
        session->timeout_ms = (uint64_t)frame->heartbeat_ms * 3;
    }
    zhashx_insert(self->sessions, session->key, session);
    tern_metrics_add(self->metrics->connections, 1);
    tern_metrics_add(self->metrics->sessions_total, 1);

    tern_event_t *ev = c_event(self, TERN_EV_OPEN, session->id);
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
    c_send_frame(self, rid, rid_size, reply, NULL, 0);
    if (self->config->verbose) {
        zsys_info("conn: session %" PRIu64 " open (%s, %s, timeout %" PRIu64 " ms)", session->id,
                  session->key, frame->name, session->timeout_ms);
    }
}

// ---------------------------------------------------------------------------
//  Identity: the CURVE key and its role (auth/roles; docs/security.md)

//  Re-reads the roles file when it changed, looking at most once a second.
static void s_acl_refresh(c_conn_t *self) {
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

void c_session_auth(c_conn_t *self, c_session_t *session, tern_pub_t *pub) {
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

// ---------------------------------------------------------------------------
//  Heartbeats and expiry

//  Ends the sessions whose key was removed from the allow-list since the
//  last look (the directory's mtime changed): each gets ERROR TERN_EDENIED
//  first, and its next connection is refused at the handshake.
static void s_drop_revoked(c_conn_t *self) {
    if (!self->keys || !tern_keys_rescan_if_changed(self->keys)) {
        return;
    }
    zlistx_t *revoked = NULL;
    for (c_session_t *session = (c_session_t *)zhashx_first(self->sessions); session;
         session = (c_session_t *)zhashx_next(self->sessions)) {
        if (session->user[0] && !tern_keys_has_name(self->keys, session->user)) {
            if (!revoked) {
                revoked = zlistx_new();
            }
            zlistx_add_end(revoked, session);
        }
    }
    for (c_session_t *session = revoked ? (c_session_t *)zlistx_first(revoked) : NULL; session;
         session = (c_session_t *)zlistx_next(revoked)) {
        zsys_warning("conn: key %s was revoked: ending its session %" PRIu64, session->user,
                     session->id);
        c_send_error(self, session->rid, session->rid_size, 0, TERN_EDENIED, "key revoked");
        c_session_end(self, session);
    }
    zlistx_destroy(&revoked);
}

void c_sessions_tick(c_conn_t *self) {
    s_drop_revoked(self);
    uint64_t now = tern_now_ms();
    zlistx_t *dead = NULL;
    for (c_session_t *session = (c_session_t *)zhashx_first(self->sessions); session;
         session = (c_session_t *)zhashx_next(self->sessions)) {
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
                c_send_raw(self, session->rid, session->rid_size, self->buf, len, NULL, 0, false) ==
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
        for (c_session_t *session = (c_session_t *)zlistx_first(dead); session;
             session = (c_session_t *)zlistx_next(dead)) {
            if (self->config->verbose) {
                zsys_info("conn: session %" PRIu64 " timed out or disconnected", session->id);
            }
            c_session_end(self, session);
        }
        zlistx_destroy(&dead);
    }
}
