/*  ternctl_group.c - ternctl groups, group (delete, reset, seek) and dlq
    (list, get, replay, purge): admin calls on one consumer group.
*/
#include "ternctl.h"

#include <stdio.h>
#include <string.h>

static const char *const s_group_cols[] = {"topic",        "group",     "pending",   "ack_floor",
                                           "next_unacked", "dead",      "delivered", "redelivered",
                                           "acked",        "consumers", NULL};
static const char *const s_dlq_cols[] = {"topic",          "group",  "seq",        "msg_id",
                                         "delivery_count", "reason", "dead_at_ms", NULL};

int ternctl_cmd_groups(const ternctl_args_t *args) {
    if (args->positional_count != 1) {
        return ternctl_usage("groups needs exactly one TOPIC%s", "");
    }
    tern_header_t kv[1] = {{"topic", args->positional[0]}};
    char empty[320];
    snprintf(empty, sizeof empty, "no consumer groups on %s", args->positional[0]);
    return ternctl_admin_list(args, "groups", kv, 1, s_group_cols, empty);
}

//  The SUB of COMMAND (`group`, `dlq`) must be one of SUBS (NULL-terminated)
//  with one TOPIC and --group G: fills KV[0..2). Returns 0 or the usage
//  exit status.
static int s_group_args(const ternctl_args_t *args, const ternctl_opt_t *opts, const char *command,
                        const char *const *subs, tern_header_t *kv) {
    if (args->positional_count < 1) {
        return ternctl_usage("%s needs a subcommand", command);
    }
    const char *sub = args->positional[0];
    bool known = false;
    for (size_t i = 0; subs[i]; i++) {
        known |= strcmp(subs[i], sub) == 0;
    }
    if (!known) {
        return ternctl_usage("unknown subcommand '%s'", sub);
    }
    if (args->positional_count != 2) {
        return ternctl_usage("%s needs exactly one TOPIC", sub);
    }
    const char *group = ternctl_value(args, opts, "group");
    if (!group || !group[0]) {
        return ternctl_usage("%s needs --group G", sub);
    }
    kv[0] = (tern_header_t){"topic", args->positional[1]};
    kv[1] = (tern_header_t){"group", group};
    return 0;
}

const ternctl_opt_t ternctl_group_opts[] = {
    {"group", true}, {"to", true}, {"force", false}, {NULL, false}};

int ternctl_cmd_group(const ternctl_args_t *args) {
    static const char *const subs[] = {"delete", "reset", "seek", NULL};
    tern_header_t kv[3];
    int rc = s_group_args(args, ternctl_group_opts, "group", subs, kv);
    if (rc) {
        return rc;
    }
    const char *sub = args->positional[0], *to = ternctl_value(args, ternctl_group_opts, "to");
    size_t count = 2;
    if (to) {
        if (strcmp(sub, "delete") == 0) {
            return ternctl_usage("--to applies only to 'group reset' and 'group seek'%s", "");
        }
        if (!ternctl_position_valid(to, true)) {
            return ternctl_usage("invalid --to '%s' (first, new, seq:N or time:DUR)", to);
        }
        kv[count++] = (tern_header_t){"to", to};
    } else if (strcmp(sub, "seek") == 0) {
        return ternctl_usage("group seek needs --to %s", "first|new|seq:N|time:DUR");
    }
    if (ternctl_flag(args, ternctl_group_opts, "force") && strcmp(sub, "seek") == 0) {
        return ternctl_usage("--force applies only to 'group delete' and 'group reset'%s", "");
    }
    char question[400];
    snprintf(question, sizeof question, "%s group '%s' of topic '%s'%s?",
             strcmp(sub, "delete") == 0 ? "Delete" : "Reset", kv[1].value, kv[0].value,
             strcmp(sub, "delete") == 0 ? " and all its state"
                                        : ": forget its pending, acks and DLQ");
    if (strcmp(sub, "seek") != 0 && !ternctl_confirm(args, ternctl_group_opts, question)) {
        return 1;
    }
    char op[32];
    snprintf(op, sizeof op, "group.%s", sub);
    return ternctl_admin_print(args, op, kv, count, NULL);
}

const ternctl_opt_t ternctl_dlq_opts[] = {
    {"group", true}, {"progress", false}, {"seq", true}, {"force", false}, {NULL, false}};

int ternctl_cmd_dlq(const ternctl_args_t *args) {
    static const char *const subs[] = {"list", "get", "replay", "purge", NULL};
    tern_header_t kv[3];
    int rc = s_group_args(args, ternctl_dlq_opts, "dlq", subs, kv);
    if (rc) {
        return rc;
    }
    const char *sub = args->positional[0], *seq = ternctl_value(args, ternctl_dlq_opts, "seq");
    uint64_t n;
    if (seq && !ternctl_parse_u64(seq, &n)) {
        return ternctl_usage("invalid --seq '%s'", seq);
    }
    if (seq && strcmp(sub, "get") != 0 && strcmp(sub, "replay") != 0) {
        return ternctl_usage("--seq applies only to 'dlq get' and 'dlq replay', not '%s'", sub);
    }
    if (ternctl_flag(args, ternctl_dlq_opts, "progress") && strcmp(sub, "replay") != 0) {
        return ternctl_usage("--progress applies only to 'dlq replay'%s", "");
    }
    if (ternctl_flag(args, ternctl_dlq_opts, "force") && strcmp(sub, "purge") != 0) {
        return ternctl_usage("--force applies only to 'dlq purge'%s", "");
    }
    size_t count = 2;
    if (seq) {
        kv[count++] = (tern_header_t){"seq", seq};
    }
    if (strcmp(sub, "list") == 0) {
        char empty[640];
        snprintf(empty, sizeof empty, "no messages in the DLQ of group %s on %s", kv[1].value,
                 kv[0].value);
        return ternctl_admin_list(args, "dlq.list", kv, count, s_dlq_cols, empty);
    }
    if (strcmp(sub, "get") == 0) {
        tern_json_value_t *doc = NULL;
        if (!seq) {
            return ternctl_usage("dlq get needs --seq N%s", "");
        }
        rc = ternctl_admin_call(args, "dlq.get", kv, count, NULL, &doc);
        return rc ? rc : ternctl_print_messages(args, doc);
    }
    if (strcmp(sub, "purge") == 0) {
        char question[400];
        snprintf(question, sizeof question, "Remove every dead letter of group '%s' of topic '%s'?",
                 kv[1].value, kv[0].value);
        return ternctl_confirm(args, ternctl_dlq_opts, question)
                   ? ternctl_admin_print(args, "dlq.purge", kv, count, NULL)
                   : 1;
    }
    ternctl_progress_t progress = {.verb = "replaying", .key = "replayed"};
    return ternctl_admin_run(
        args, "dlq.replay", kv, count, NULL,
        ternctl_progress_want(args, ternctl_flag(args, ternctl_dlq_opts, "progress"), &progress));
}
