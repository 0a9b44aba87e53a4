/*  tern_admin.c - the admin operations table and argument parsing.

    One row per operation (docs/client.md "Admin operations"): conn walks
    it to accept or refuse an ADMIN frame and to route it; the answering
    actors switch on the enum. The argument parsers live here too, so the
    repl endpoint and conn read arguments the same way.
*/
#include "tern_admin.h"
#include "tern_units.h"
#include <stdlib.h>
#include <string.h>

#define S_T   TERN_ADMIN_ARG_TOPIC
#define S_G   TERN_ADMIN_ARG_GROUP
#define S_POS (TERN_ADMIN_ARG_TO | TERN_ADMIN_ARG_SEQ)
#define S_ADM TERN_ADMIN_RIGHT_ADMIN

//  Indexed by tern_admin_op_t (checked by the unit test).
static const tern_admin_desc_t s_ops[TERN_ADMIN_OP_COUNT] = {
    {"status", TERN_ADMIN_STATUS, 0, S_ADM, TERN_ADMIN_BY_CONN},
    {"topics", TERN_ADMIN_TOPICS, 0, S_ADM, TERN_ADMIN_BY_CONN},
    {"topic.info", TERN_ADMIN_TOPIC_INFO, S_T, S_ADM, TERN_ADMIN_BY_CONN},
    {"topic.create", TERN_ADMIN_TOPIC_CREATE, S_T | TERN_ADMIN_ARG_LIMITS, S_ADM,
     TERN_ADMIN_BY_STORER},
    {"topic.edit", TERN_ADMIN_TOPIC_EDIT, S_T | TERN_ADMIN_ARG_LIMITS | TERN_ADMIN_ARG_EDIT, S_ADM,
     TERN_ADMIN_BY_STORER},
    {"topic.delete", TERN_ADMIN_TOPIC_DELETE, S_T, S_ADM, TERN_ADMIN_BY_STORER},
    {"topic.purge", TERN_ADMIN_TOPIC_PURGE, S_T, S_ADM, TERN_ADMIN_BY_STORER},
    {"groups", TERN_ADMIN_GROUPS, S_T | S_POS, S_ADM, TERN_ADMIN_BY_ROUTE},
    {"group.delete", TERN_ADMIN_GROUP_DELETE, S_T | S_G | S_POS, S_ADM, TERN_ADMIN_BY_ROUTE},
    {"group.reset", TERN_ADMIN_GROUP_RESET, S_T | S_G | S_POS, S_ADM, TERN_ADMIN_BY_ROUTE},
    {"group.seek", TERN_ADMIN_GROUP_SEEK, S_T | S_G | S_POS | TERN_ADMIN_ARG_TO_REQ, S_ADM,
     TERN_ADMIN_BY_ROUTE},
    {"dlq.list", TERN_ADMIN_DLQ_LIST, S_T | S_G | S_POS, S_ADM, TERN_ADMIN_BY_ROUTE},
    {"dlq.replay", TERN_ADMIN_DLQ_REPLAY, S_T | S_G | S_POS, S_ADM, TERN_ADMIN_BY_ROUTE},
    {"dlq.purge", TERN_ADMIN_DLQ_PURGE, S_T | S_G | S_POS, S_ADM, TERN_ADMIN_BY_ROUTE},
    //  dlq.get checks its group itself (tern_conn.c, s_handle_read).
    {"dlq.get", TERN_ADMIN_DLQ_GET, S_T, S_ADM, TERN_ADMIN_BY_CONN},
    {"msg.get", TERN_ADMIN_MSG_GET, S_T, S_ADM, TERN_ADMIN_BY_CONN},
    {"msg.view", TERN_ADMIN_MSG_VIEW, S_T, S_ADM, TERN_ADMIN_BY_CONN},
    {"audit", TERN_ADMIN_AUDIT, S_T, S_ADM, TERN_ADMIN_BY_CONN},
    {"trace", TERN_ADMIN_TRACE, 0, S_ADM, TERN_ADMIN_BY_CONN},
    {"peers", TERN_ADMIN_PEERS, 0, S_ADM, TERN_ADMIN_BY_REPL},
    {"peers.pause", TERN_ADMIN_PEERS_PAUSE, 0, S_ADM, TERN_ADMIN_BY_REPL},
    {"peers.resume", TERN_ADMIN_PEERS_RESUME, 0, S_ADM, TERN_ADMIN_BY_REPL},
    //  cluster*: answered by conn from the cluster view (tern_conn_cluster.c).
    {"cluster", TERN_ADMIN_CLUSTER, 0, S_ADM, TERN_ADMIN_BY_CONN},
    {"cluster.handover", TERN_ADMIN_CLUSTER_HANDOVER, 0, S_ADM, TERN_ADMIN_BY_CONN},
    {"cluster.verify", TERN_ADMIN_CLUSTER_VERIFY, 0, S_ADM, TERN_ADMIN_BY_CONN},
};

const tern_admin_desc_t *tern_admin_lookup(const char *name) {
    for (size_t i = 0; i < TERN_ADMIN_OP_COUNT; i++) {
        if (streq(s_ops[i].name, name)) {
            return &s_ops[i];
        }
    }
    return NULL;
}

const tern_admin_desc_t *tern_admin_desc(tern_admin_op_t op) {
    return op < TERN_ADMIN_OP_COUNT ? &s_ops[op] : NULL;
}

const char *tern_admin_name(unsigned op) {
    return op < TERN_ADMIN_OP_COUNT ? s_ops[op].name : "?";
}

bool tern_admin_arg(const tern_frame_t *frame, const char *key, char *out, size_t cap) {
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

bool tern_admin_parse_seq(const char *text, uint64_t *seq) {
    char *end = NULL;
    if (text[0] < '0' || text[0] > '9') {
        return false;
    }
    *seq = strtoull(text, &end, 10);
    return end && *end == 0 && *seq > 0;
}

bool tern_admin_parse_position(const char *text, uint8_t *start, uint64_t *value) {
    uint64_t ms = 0;
    *value = 0;
    if (streq(text, "first")) {
        *start = TERN_START_FIRST;
    } else if (streq(text, "new")) {
        *start = TERN_START_NEW;
    } else if (strncmp(text, "seq:", 4) == 0 && tern_admin_parse_seq(text + 4, value)) {
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

//  max_age_ms, max_msgs and max_bytes, each optional.
static bool s_parse_limits(const tern_frame_t *frame, tern_admin_t *admin) {
    char value[64];
    bool ok = true;
    if (tern_admin_arg(frame, "max_age_ms", value, sizeof value)) {
        ok &= tern_units_parse_duration(value, &admin->max_age_ms, NULL) == TERN_OK;
    }
    if (tern_admin_arg(frame, "max_msgs", value, sizeof value)) {
        char *end = NULL;
        admin->max_msgs = strtoull(value, &end, 10);
        ok &= end && end != value && *end == 0;
    }
    if (tern_admin_arg(frame, "max_bytes", value, sizeof value)) {
        ok &= tern_units_parse_size(value, &admin->max_bytes, NULL) == TERN_OK;
    }
    return ok;
}

tern_err_t tern_admin_parse(const tern_admin_desc_t *desc, const tern_frame_t *frame,
                            tern_admin_t *admin, char *reason, size_t cap) {
    char value[64];
    if ((desc->args & TERN_ADMIN_ARG_LIMITS) && !s_parse_limits(frame, admin)) {
        snprintf(reason, cap, "bad max_age_ms, max_msgs or max_bytes");
        return TERN_EINVAL;
    }
    if (desc->args & TERN_ADMIN_ARG_TO) {
        //  group.reset starts again at the first message unless told otherwise.
        bool has_to = tern_admin_arg(frame, "to", value, sizeof value);
        if ((!has_to && (desc->args & TERN_ADMIN_ARG_TO_REQ)) ||
            (has_to && !tern_admin_parse_position(value, &admin->start, &admin->start_value))) {
            snprintf(reason, cap, "missing or invalid to argument (first, new, seq:N or time:DUR)");
            return TERN_EINVAL;
        }
    }
    if ((desc->args & TERN_ADMIN_ARG_SEQ) && tern_admin_arg(frame, "seq", value, sizeof value) &&
        !tern_admin_parse_seq(value, &admin->seq)) {
        snprintf(reason, cap, "invalid seq argument");
        return TERN_EINVAL;
    }
    return TERN_OK;
}
