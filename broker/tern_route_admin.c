/*  tern_route_admin.c - route: the group admin operations.

    groups, dlq.list|replay|purge and group.delete|reset|seek (tern_admin.c
    names route as their actor): read-only ones answered at once, writes
    answered after the storer committed them (r_admin_op_done).
*/
#include "tern_route_priv.h"
#include "tern_admin.h"
#include "tern_json.h"
#include <inttypes.h>
#include <string.h>

// ---------------------------------------------------------------------------
//  Admin (groups, dlq.list|replay|purge, group.delete|reset|seek)

typedef struct {
    r_route_t *self;
    tern_json_t *json;
    const char *topic;
} s_list_arg_t;

static bool s_group_each(const tern_group_info_t *info, void *arg) {
    s_list_arg_t *list = (s_list_arg_t *)arg;
    r_group_t *group = r_durable_get(list->self, info->topic_id, info->name);
    tern_json_t *json = list->json;
    tern_json_sep(json);
    tern_json_raw(json, "{");
    tern_json_key_str(json, "topic", list->topic);
    tern_json_key_str(json, "group", info->name);
    tern_json_key_u64(json, "pending",
                      group && group->state == G_READY ? group->pending : info->pending);
    tern_json_key_u64(json, "ack_floor", info->ack_floor);
    tern_json_key_u64(json, "next_unacked", info->next_unacked);
    tern_json_key_u64(json, "dead", info->dead);
    tern_json_key_u64(json, "delivered", info->delivered);
    tern_json_key_u64(json, "redelivered", info->redelivered);
    tern_json_key_u64(json, "acked", info->acked);
    tern_json_key_u64(json, "consumers", group ? group->nconsumers : 0);
    tern_json_raw(json, "}");
    return true;
}

typedef struct {
    r_route_t *self;
    tern_json_t *json;
    const tern_admin_t *admin;
    uint32_t topic_id;
} s_dlq_arg_t;

static bool s_dlq_each(const tern_entry_t *entry, void *arg) {
    s_dlq_arg_t *list = (s_dlq_arg_t *)arg;
    tern_frame_t *msg = &list->self->frame;
    uint64_t msg_id = 0;
    if (tern_store_read(list->self->reader, list->topic_id, entry->seq, msg) == TERN_OK) {
        msg_id = msg->msg_id;
    }
    tern_json_t *json = list->json;
    tern_json_sep(json);
    tern_json_raw(json, "{");
    tern_json_key_str(json, "topic", list->admin->topic);
    tern_json_key_str(json, "group", list->admin->group);
    tern_json_key_u64(json, "seq", entry->seq);
    tern_json_key_u64(json, "msg_id", msg_id);
    tern_json_key_u64(json, "delivery_count", entry->delivery_count);
    tern_json_key_str(json, "reason", entry->reason);
    tern_json_key_u64(json, "dead_at_ms", entry->due_ms);
    tern_json_raw(json, "}");
    return true;
}

//  Queues the storage op of ADMIN (dlq.replay, dlq.purge, group.delete,
//  group.reset, group.seek) on TOPIC_ID; the op carries ADMIN (ctx) and is
//  answered after the commit (r_admin_op_done). Seek and reset drop the
//  group's pending entries here (a consumer's later ack of one gets
//  ENOTFOUND) and hold its delivery until the commit, after which it goes
//  on from the stored position: no delivery from the old position can slip
//  in between. A group with consumers is not deleted (TERN_EBUSY): they
//  would recreate it at once. Takes ownership of ADMIN on TERN_OK.
static tern_err_t s_admin_op(r_route_t *self, tern_admin_t *admin, uint32_t topic_id) {
    tern_op_type_t type = admin->op == TERN_ADMIN_DLQ_REPLAY    ? TERN_OP_REPLAY
                          : admin->op == TERN_ADMIN_DLQ_PURGE   ? TERN_OP_PURGE
                          : admin->op == TERN_ADMIN_GROUP_SEEK  ? TERN_OP_SEEK
                          : admin->op == TERN_ADMIN_GROUP_RESET ? TERN_OP_RESET
                                                                : TERN_OP_DROP;
    r_group_t *group = r_durable_get(self, topic_id, admin->group);
    if (type == TERN_OP_DROP && group && group->nconsumers > 0) {
        return TERN_EBUSY;
    }
    if (type == TERN_OP_DROP && group) {
        r_group_destroy(self, group);
    } else if (group && (type == TERN_OP_SEEK || type == TERN_OP_RESET)) {
        while (group->head) {
            r_pend_destroy(group->head);
        }
        group->state = G_LOADING;
        group->admin_ops++;
    }
    r_topic_t stub_topic = {.id = topic_id, .partition = r_cluster_partition(self, admin->topic)};
    r_group_t stub = {.topic = &stub_topic};
    snprintf(stub.name, sizeof stub.name, "%s", admin->group);
    tern_op_t *op = r_op(self, type, &stub, type == TERN_OP_REPLAY ? admin->seq : 0);
    op->start = admin->start;
    op->start_value = admin->start_value;
    op->due_ms = tern_now_ms();
    op->ctx = admin;
    return TERN_OK;
}

//  Takes ownership of ADMIN.
void r_handle_admin(r_route_t *self, tern_admin_t *admin) {
    tern_topic_info_t topic;
    tern_err_t rc = r_read_begin(self);
    if (rc == TERN_OK) {
        rc = tern_store_topic_get(self->reader, admin->topic, &topic);
    }
    char reason[TERN_REASON_MAX + 1];
    if (rc != TERN_OK) {
        snprintf(reason, sizeof reason,
                 rc == TERN_ENOTFOUND ? "no such topic '%.200s'" : "cannot read topic '%.200s'",
                 admin->topic);
        r_send_admin_error(self, admin, rc, reason);
        free(admin);
        return;
    }
    tern_json_t json;
    tern_json_init(&json);
    if (admin->op == TERN_ADMIN_GROUPS) {
        tern_json_raw(&json, "[");
        s_list_arg_t arg = {self, &json, admin->topic};
        rc = tern_store_group_list(self->reader, topic.id, s_group_each, &arg);
        tern_json_raw(&json, "]");
    } else {
        tern_group_info_t info;
        rc = tern_store_group_get(self->reader, topic.id, admin->group, &info);
        if (rc == TERN_OK && admin->op == TERN_ADMIN_DLQ_LIST) {
            tern_json_raw(&json, "[");
            s_dlq_arg_t arg = {self, &json, admin, topic.id};
            rc = tern_store_dlq_list(self->reader, topic.id, admin->group, s_dlq_each, &arg);
            tern_json_raw(&json, "]");
        } else if (rc == TERN_OK) {
            //  Answered when the storer has committed it (r_admin_op_done).
            rc = s_admin_op(self, admin, topic.id);
            if (rc == TERN_OK) {
                tern_json_free(&json);
                return;
            }
        }
    }
    if (rc == TERN_OK) {
        r_send_reply(self, admin->rid, admin->rid_size, admin->req_id, &json);
    } else if (rc == TERN_EBUSY) {
        r_send_admin_error(self, admin, rc,
                           "the group has consumers connected: stop them first (or use "
                           "group reset or group seek)");
    } else {
        snprintf(reason, sizeof reason,
                 rc == TERN_ENOTFOUND ? "no such group '%s' on topic '%.180s'"
                                      : "cannot read group '%s' of topic '%.180s'",
                 admin->group, admin->topic);
        r_send_admin_error(self, admin, rc, reason);
    }
    tern_json_free(&json);
    free(admin);
}

//  The storer committed admin op OP (see s_admin_op): reload what route
//  holds of the group, then answer the client. Frees the request.
void r_admin_op_done(r_route_t *self, tern_op_t *op) {
    tern_admin_t *admin = (tern_admin_t *)op->ctx;
    r_group_t *group = r_durable_get(self, op->topic_id, op->group);
    bool moved = op->type == TERN_OP_SEEK || op->type == TERN_OP_RESET;
    if (moved && group && group->admin_ops > 0 && --group->admin_ops == 0 &&
        group->state == G_LOADING) {
        r_group_loaded(self, group, TERN_OK);
    }
    if (op->type == TERN_OP_REPLAY && op->err == TERN_OK && group && group->state == G_READY &&
        r_read_begin(self) == TERN_OK) {
        r_load_t load = {self, group, false};
        tern_store_pending_list(self->reader, op->topic_id, op->group, r_load_pending, &load);
    }
    tern_group_info_t info;
    if (op->err == TERN_OK && moved &&
        (r_read_begin(self) != TERN_OK ||
         tern_store_group_get(self->reader, op->topic_id, op->group, &info) != TERN_OK)) {
        op->err = TERN_ENOTFOUND;
    }
    if (op->err != TERN_OK) {
        r_send_admin_error(self, admin, op->err,
                           op->type == TERN_OP_REPLAY && op->seq
                               ? "that seq is not in the group's DLQ"
                           : op->err == TERN_ENOTFOUND ? "no such group"
                                                       : "the group operation failed");
    } else {
        tern_json_t json;
        tern_json_init(&json);
        tern_json_raw(&json, "{");
        tern_json_key_str(&json, "topic", admin->topic);
        tern_json_key_str(&json, "group", admin->group);
        if (moved) {
            uint64_t next = UINT64_MAX;
            for (int lane = 0; lane < S_LANES; lane++) {
                next = info.lane_next[lane] < next ? info.lane_next[lane] : next;
            }
            tern_json_key_u64(&json, "next_seq", next);
            tern_json_key_u64(&json, "dead", info.dead);
        } else if (op->type == TERN_OP_DROP) {
            tern_json_key_bool(&json, "deleted", 1);
        } else {
            tern_json_key_u64(&json, op->type == TERN_OP_PURGE ? "purged" : "replayed", op->count);
        }
        tern_json_raw(&json, "}");
        r_send_reply(self, admin->rid, admin->rid_size, admin->req_id, &json);
        tern_json_free(&json);
    }
    free(admin);
    op->ctx = NULL;
}
