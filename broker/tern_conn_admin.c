/*  tern_conn_admin.c - conn: the admin plane of the client endpoint.

    An ADMIN frame is looked up in tern_admin.c's table and checked here
    (topic and group arguments); conn answers the read-only operations itself
    through its own store reader (status, topics, topic.info, msg.get,
    msg.view, dlq.get, audit, trace; cluster* from the view in
    tern_conn_cluster.c), parses and forwards the writes to the
    storer (topic.*) or route (groups, group.*, dlq.*) and the `peers*`
    operations to repl, and relays their answers. Part of the conn actor
    (tern_conn.c): it runs on conn's thread and touches conn's ROUTER only
    through c_send_*.
*/
#include "tern_conn_priv.h"
#include "tern_admin.h"
#include "tern_audit.h"
#include "tern_json.h"
#include "tern_repl.h"
#include "tern_version.h"
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------
//  Admin

static bool s_count_group(const tern_group_info_t *group, void *arg) {
    (void)group;
    (*(uint64_t *)arg)++;
    return true;
}

static void s_json_topic(c_conn_t *self, tern_json_t *json, const tern_topic_info_t *topic) {
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
    c_conn_t *self;
    tern_json_t *json;
} s_topic_list_arg_t;

static bool s_topic_each(const tern_topic_info_t *topic, void *arg) {
    s_topic_list_arg_t *list = (s_topic_list_arg_t *)arg;
    s_json_topic(list->self, list->json, topic);
    return true;
}

//  Reads topic NAME and replies its JSON object (or ERROR).
static void s_reply_topic(c_conn_t *self, const uint8_t *rid, size_t rid_size, uint64_t req_id,
                          const char *name) {
    tern_topic_info_t topic;
    tern_err_t rc = tern_store_read_begin(self->reader);
    if (rc == TERN_OK) {
        rc = tern_store_topic_get(self->reader, name, &topic);
    }
    if (rc != TERN_OK) {
        tern_store_read_end(self->reader);
        c_send_topic_error(self, rid, rid_size, req_id, rc, name, "cannot read topic");
        return;
    }
    tern_json_t json;
    tern_json_init(&json);
    s_json_topic(self, &json, &topic);
    tern_store_read_end(self->reader);
    c_send_reply(self, rid, rid_size, req_id, &json);
    tern_json_free(&json);
}

//  audit (topic, group?, since_ms?) and trace (msg_id): read-only replays of
//  the stored history, answered here through conn's reader (tern_audit.c).
static void s_handle_audit(c_conn_t *self, const uint8_t *rid, size_t rid_size,
                           const tern_frame_t *frame, tern_admin_op_t op, const char *topic,
                           const char *group) {
    char value[64];
    uint64_t since_ms = 0, msg_id = 0;
    bool is_trace = op == TERN_ADMIN_TRACE;
    if (is_trace) {
        if (!tern_admin_arg(frame, "msg_id", value, sizeof value) ||
            !tern_admin_parse_seq(value, &msg_id)) {
            c_send_error(self, rid, rid_size, frame->req_id, TERN_EINVAL,
                         "missing or invalid msg_id argument");
            return;
        }
    } else if (tern_admin_arg(frame, "since_ms", value, sizeof value) &&
               tern_units_parse_duration(value, &since_ms, NULL) != TERN_OK) {
        c_send_error(self, rid, rid_size, frame->req_id, TERN_EINVAL, "bad since_ms");
        return;
    }
    if (!is_trace && group[0] && !tern_name_valid(group, strlen(group))) {
        char reason[TERN_REASON_MAX + 1];
        c_send_error(self, rid, rid_size, frame->req_id, TERN_ENAME,
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
        c_send_reply(self, rid, rid_size, frame->req_id, &json);
    } else if (rc == TERN_ENOTFOUND) {
        c_send_error(self, rid, rid_size, frame->req_id, rc,
                     is_trace ? "no history for this msg_id (unknown, or past "
                                "storage/trace_retention)"
                              : "no such topic or group");
    } else {
        c_send_error(self, rid, rid_size, frame->req_id, rc, "cannot read the history");
    }
    tern_json_free(&json);
}

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
static tern_err_t s_view(c_conn_t *self, const tern_frame_t *frame, uint32_t topic_id,
                         tern_json_t *json) {
    char value[64];
    uint8_t start = TERN_START_FIRST;
    uint64_t from = 1, count = 10;
    if ((tern_admin_arg(frame, "from", value, sizeof value) &&
         (!tern_admin_parse_position(value, &start, &from) || start == TERN_START_NEW)) ||
        (tern_admin_arg(frame, "count", value, sizeof value) &&
         (!tern_admin_parse_seq(value, &count) || count > S_VIEW_MAX))) {
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
static void s_handle_read(c_conn_t *self, const uint8_t *rid, size_t rid_size,
                          const tern_frame_t *frame, tern_admin_op_t op, const char *topic,
                          const char *group) {
    char value[64];
    uint64_t seq = 0;
    bool is_view = op == TERN_ADMIN_MSG_VIEW, is_dlq = op == TERN_ADMIN_DLQ_GET;
    const char *bad = NULL;
    if (is_dlq && !tern_name_valid(group, strlen(group))) {
        bad = "missing or invalid group argument";
    } else if (!is_view && (!tern_admin_arg(frame, "seq", value, sizeof value) ||
                            !tern_admin_parse_seq(value, &seq))) {
        bad = "missing or invalid seq argument";
    }
    if (bad) {
        c_send_error(self, rid, rid_size, frame->req_id, is_dlq ? TERN_ENAME : TERN_EINVAL, bad);
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
        c_send_reply(self, rid, rid_size, frame->req_id, &json);
    } else {
        c_send_error(self, rid, rid_size, frame->req_id, rc,
                     rc == TERN_ENOTFOUND || rc == TERN_EINVAL ? what : "cannot read the message");
    }
    tern_json_free(&json);
}

//  `peers`, `peers.pause`, `peers.resume`: answered by the repl actor, which
//  owns the links; the answer comes back on the inbox (c_repl_admin_done).
static void s_handle_peers(c_conn_t *self, c_session_t *session, const tern_frame_t *frame,
                           const tern_admin_desc_t *desc) {
    if (!tern_repl_enabled(self->config)) {
        if (desc->op == TERN_ADMIN_PEERS) {
            tern_json_t json;
            tern_json_init(&json);
            tern_json_raw(&json, "[]");
            c_send_reply(self, session->rid, session->rid_size, frame->req_id, &json);
            tern_json_free(&json);
        } else {
            c_send_error(self, session->rid, session->rid_size, frame->req_id, TERN_ENOTFOUND,
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
    item->op = (uint8_t)desc->op;
    tern_admin_arg(frame, "name", item->name, sizeof item->name);
    snprintf(item->reply_to, sizeof item->reply_to, "%s", self->args->inbox);
    if (!self->to_repl || tern_work_send(self->to_repl, TERN_WORK_REPL_ADMIN, item) != 0) {
        tern_repl_admin_destroy(&item);
        c_send_error(self, session->rid, session->rid_size, frame->req_id, TERN_EINTERNAL,
                     "the replication actor is unreachable");
    }
}

//  The repl actor answered a `peers*` request: relay it to the client.
void c_repl_admin_done(c_conn_t *self, tern_repl_admin_t *item) {
    if (c_session_lookup(self, item->rid, item->rid_size)) {
        if (item->err != TERN_OK) {
            c_send_error(self, item->rid, item->rid_size, item->req_id, item->err, item->reason);
        } else {
            tern_json_t json;
            tern_json_init(&json);
            tern_json_raw(&json, item->reply ? item->reply : "null");
            c_send_reply(self, item->rid, item->rid_size, item->req_id, &json);
            tern_json_free(&json);
        }
    }
    tern_repl_admin_destroy(&item);
}

//  An admin request of SESSION, answered later by the storer or route.
static tern_admin_t *s_admin_new(const c_session_t *session, const tern_frame_t *frame,
                                 tern_admin_op_t op, const char *topic, const char *group) {
    tern_admin_t *admin = tern_alloc(sizeof *admin);
    admin->session_id = session->id;
    memcpy(admin->rid, session->rid, session->rid_size);
    admin->rid_size = session->rid_size;
    admin->req_id = frame->req_id;
    admin->op = (uint8_t)op;
    snprintf(admin->topic, sizeof admin->topic, "%s", topic);
    snprintf(admin->group, sizeof admin->group, "%s", group);
    return admin;
}

//  Checks ADMIN's op and its topic argument TOPIC (HAS_TOPIC: given at all)
//  and group argument GROUP against the table; answers ERROR and returns
//  NULL when they are wrong, else the op's row.
static const tern_admin_desc_t *s_admin_check(c_conn_t *self, c_session_t *session,
                                              const tern_frame_t *frame, const char *topic,
                                              bool has_topic, const char *group) {
    char reason[TERN_REASON_MAX + 1];
    const tern_admin_desc_t *desc = tern_admin_lookup(frame->name);
    unsigned args = desc ? desc->args : 0;
    tern_err_t code = TERN_OK;
    if (!desc) {
        code = TERN_ENAME;
        snprintf(reason, sizeof reason, "unknown admin operation '%s'", frame->name);
    } else if ((args & TERN_ADMIN_ARG_TOPIC) && !has_topic) {
        code = TERN_ETOPIC;
        snprintf(reason, sizeof reason, "%s needs a topic argument", desc->name);
    } else if ((args & TERN_ADMIN_ARG_TOPIC) && !tern_topic_valid(topic, strlen(topic))) {
        code = TERN_ETOPIC;
        tern_reason_topic(reason, sizeof reason, topic, false);
    } else if ((args & TERN_ADMIN_ARG_GROUP) && !tern_name_valid(group, strlen(group))) {
        code = TERN_ENAME;
        if (group[0]) {
            tern_reason_name(reason, sizeof reason, "group", group);
        } else {
            snprintf(reason, sizeof reason, "missing group argument");
        }
    }
    if (code != TERN_OK) {
        c_send_error(self, session->rid, session->rid_size, frame->req_id, code, reason);
    }
    return code == TERN_OK ? desc : NULL;
}

//  The current limits of ADMIN's topic, which topic.edit keeps unless given.
//  False: ERROR sent.
static bool s_admin_current(c_conn_t *self, tern_admin_t *admin) {
    tern_topic_info_t current;
    tern_err_t rc = tern_store_read_begin(self->reader);
    if (rc == TERN_OK) {
        rc = tern_store_topic_get(self->reader, admin->topic, &current);
    }
    tern_store_read_end(self->reader);
    if (rc != TERN_OK) {
        c_send_topic_error(self, admin->rid, admin->rid_size, admin->req_id, rc, admin->topic,
                           "cannot read topic");
        return false;
    }
    admin->max_age_ms = current.max_age_ms;
    admin->max_msgs = current.max_msgs;
    admin->max_bytes = current.max_bytes;
    return true;
}

//  Parses the arguments of a request for the storer or route and hands it
//  on: TERN_WORK_ADMIN to the storer, a TERN_EV_ADMIN event to route.
static void s_admin_forward(c_conn_t *self, c_session_t *session, const tern_frame_t *frame,
                            const tern_admin_desc_t *desc, const char *topic, const char *group) {
    const uint8_t *rid = session->rid;
    size_t rid_size = session->rid_size;
    bool to_route = desc->actor == TERN_ADMIN_BY_ROUTE;
    tern_admin_t *admin = s_admin_new(session, frame, desc->op, topic, to_route ? group : "");
    char reason[TERN_REASON_MAX + 1];
    if ((desc->args & TERN_ADMIN_ARG_EDIT) && !s_admin_current(self, admin)) {
        free(admin);
        return;
    }
    tern_err_t rc = tern_admin_parse(desc, frame, admin, reason, sizeof reason);
    if (rc != TERN_OK) {
        free(admin);
        c_send_error(self, rid, rid_size, frame->req_id, rc, reason);
        return;
    }
    if (to_route) {
        tern_event_t *ev = c_event(self, TERN_EV_ADMIN, session->id);
        ev->admin = admin;
        ev->req_id = frame->req_id;
    } else if (tern_work_send(self->to_storer, TERN_WORK_ADMIN, admin) != 0) {
        free(admin);
        c_send_error(self, rid, rid_size, frame->req_id, TERN_EINTERNAL, "storer is gone");
    }
}

//  Answers the `status` op: who this node is and how it is set up.
static void s_reply_status(c_conn_t *self, const c_session_t *session, uint64_t req_id) {
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
    c_send_reply(self, session->rid, session->rid_size, req_id, &json);
    tern_json_free(&json);
}

//  `topics`: every topic as a JSON array.
static void s_reply_topics(c_conn_t *self, const c_session_t *session, uint64_t req_id) {
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
        c_send_reply(self, session->rid, session->rid_size, req_id, &json);
    } else {
        c_send_error(self, session->rid, session->rid_size, req_id, rc, "cannot list topics");
    }
    tern_json_free(&json);
}

//  The operations conn answers itself, through its own store reader.
static void s_admin_local(c_conn_t *self, c_session_t *session, const tern_frame_t *frame,
                          tern_admin_op_t op, const char *topic, const char *group) {
    const uint8_t *rid = session->rid;
    size_t rid_size = session->rid_size;
    switch (op) {
        case TERN_ADMIN_STATUS:
            s_reply_status(self, session, frame->req_id);
            break;
        case TERN_ADMIN_TOPICS:
            s_reply_topics(self, session, frame->req_id);
            break;
        case TERN_ADMIN_TOPIC_INFO:
            s_reply_topic(self, rid, rid_size, frame->req_id, topic);
            break;
        case TERN_ADMIN_AUDIT:
        case TERN_ADMIN_TRACE:
            s_handle_audit(self, rid, rid_size, frame, op, topic, group);
            break;
        case TERN_ADMIN_DLQ_GET:
        case TERN_ADMIN_MSG_GET:
        case TERN_ADMIN_MSG_VIEW:
            s_handle_read(self, rid, rid_size, frame, op, topic, group);
            break;
        case TERN_ADMIN_CLUSTER:
        case TERN_ADMIN_CLUSTER_HANDOVER:
        case TERN_ADMIN_CLUSTER_VERIFY:
            c_cluster_admin(self, session, frame, op);
            break;
        default:
            c_send_error(self, rid, rid_size, frame->req_id, TERN_EINTERNAL,
                         "admin operation listed for conn in tern_admin.c but not handled");
            break;
    }
}

void c_handle_admin(c_conn_t *self, c_session_t *session, const tern_frame_t *frame) {
    char topic[TERN_TOPIC_MAX + 1] = "";
    char group[TERN_NAME_MAX + 1] = "";
    bool has_topic = tern_admin_arg(frame, "topic", topic, sizeof topic);
    tern_admin_arg(frame, "group", group, sizeof group);
    const tern_admin_desc_t *desc = s_admin_check(self, session, frame, topic, has_topic, group);
    if (!desc) {
        return;
    }
    switch (desc->actor) {
        case TERN_ADMIN_BY_CONN:
            s_admin_local(self, session, frame, desc->op, topic, group);
            break;
        case TERN_ADMIN_BY_REPL:
            s_handle_peers(self, session, frame, desc);
            break;
        case TERN_ADMIN_BY_STORER:
            if (self->args->cluster) {
                //  Topic writes only on the partition's leader: it ships them
                //  to the followers (tern_crepl_lead.c); elsewhere nothing.
                tern_frame_t probe = *frame;
                snprintf(probe.topic, sizeof probe.topic, "%s", topic);
                if (!c_cluster_admit(self, session, &probe)) {
                    return;
                }
            }
            s_admin_forward(self, session, frame, desc, topic, group);
            break;
        case TERN_ADMIN_BY_ROUTE:
            s_admin_forward(self, session, frame, desc, topic, group);
            break;
    }
}

//  The storer finished an admin write: answer the client.
void c_admin_done(c_conn_t *self, tern_admin_t *admin) {
    if (!c_session_lookup(self, admin->rid, admin->rid_size)) {
        return;
    }
    if (admin->err == TERN_EEXIST) {
        char reason[TERN_TOPIC_MAX + 32];
        snprintf(reason, sizeof reason, "topic '%s' exists", admin->topic);
        c_send_error(self, admin->rid, admin->rid_size, admin->req_id, admin->err, reason);
        return;
    }
    if (admin->err == TERN_ELIMIT) {
        char reason[TERN_REASON_MAX + 1];
        c_send_error(self, admin->rid, admin->rid_size, admin->req_id, admin->err,
                     c_reason_max_topics(self, reason, sizeof reason, admin->topic));
        return;
    }
    if (admin->err == TERN_ETIMEOUT) { //  committed, not confirmed (tern_crepl_lead.c)
        char reason[TERN_REASON_MAX + 1];
        snprintf(reason, sizeof reason,
                 "topic '%.100s': the operation ran on this node but the in-sync replicas did "
                 "not confirm it; the outcome is unknown: check before retrying",
                 admin->topic);
        c_send_error(self, admin->rid, admin->rid_size, admin->req_id, admin->err, reason);
        return;
    }
    if (admin->err != TERN_OK) {
        c_send_topic_error(self, admin->rid, admin->rid_size, admin->req_id, admin->err,
                           admin->topic, "topic operation failed");
        return;
    }
    if (admin->op == TERN_ADMIN_TOPIC_CREATE || admin->op == TERN_ADMIN_TOPIC_EDIT) {
        s_reply_topic(self, admin->rid, admin->rid_size, admin->req_id, admin->topic);
        return;
    }
    tern_json_t json;
    tern_json_init(&json);
    tern_json_raw(&json, "{");
    tern_json_key_str(&json, "topic", admin->topic);
    if (admin->op == TERN_ADMIN_TOPIC_DELETE) {
        tern_json_key_bool(&json, "deleted", 1);
        tern_json_key_u64(&json, "removed", admin->count);
    } else {
        tern_json_key_u64(&json, "purged", admin->count);
    }
    tern_json_raw(&json, "}");
    c_send_reply(self, admin->rid, admin->rid_size, admin->req_id, &json);
    tern_json_free(&json);
}
