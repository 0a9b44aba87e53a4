/*  ternctl_topic.c - ternctl status, topics and topic (info, create, edit,
    delete, purge): each one admin call through ternctl_admin_print.
*/
#include "ternctl.h"

#include <stdio.h>
#include <string.h>

int ternctl_cmd_status(const ternctl_args_t *args) {
    if (args->positional_count) {
        return ternctl_usage("status takes no arguments ('%s')", args->positional[0]);
    }
    return ternctl_admin_print(args, "status", NULL, 0, NULL);
}

static const char *const s_topic_cols[] = {"topic",    "msgs",       "bytes",    "first_seq",
                                           "last_seq", "max_age_ms", "max_msgs", "max_bytes",
                                           "groups",   NULL};
int ternctl_cmd_topics(const ternctl_args_t *args) {
    if (args->positional_count) {
        return ternctl_usage("topics takes no arguments ('%s')", args->positional[0]);
    }
    //  In a cluster, libtern gathers them from every node.
    return ternctl_admin_list(args, "topics", NULL, 0, s_topic_cols, "no topics");
}

const ternctl_opt_t ternctl_topic_opts[] = {{"max-age", true},   {"max-msgs", true},
                                            {"max-bytes", true}, {"progress", false},
                                            {"force", false},    {NULL, false}};

//  The --max-age, --max-msgs, --max-bytes options as admin arguments
//  appended to KV at *COUNT (NUMBERS holds their text). Returns 0 or the
//  usage exit status.
static int s_topic_limits(const ternctl_args_t *args, tern_header_t *kv, size_t *count,
                          char numbers[3][24]) {
    static const char *const opts[3] = {"max-age", "max-msgs", "max-bytes"};
    static const char *const keys[3] = {"max_age_ms", "max_msgs", "max_bytes"};
    for (int i = 0; i < 3; i++) {
        const char *text = ternctl_value(args, ternctl_topic_opts, opts[i]);
        uint64_t v;
        if (!text) {
            continue;
        }
        bool ok = i == 0   ? tern_parse_duration(text, &v) == TERN_OK
                  : i == 1 ? ternctl_parse_u64(text, &v)
                           : tern_parse_size(text, &v) == TERN_OK;
        if (!ok) {
            char what[32];
            snprintf(what, sizeof what, "invalid --%s '%%s'", opts[i]);
            return ternctl_usage(what, text);
        }
        snprintf(numbers[i], sizeof numbers[i], "%llu", (unsigned long long)v);
        kv[(*count)++] = (tern_header_t){keys[i], numbers[i]};
    }
    return 0;
}

int ternctl_cmd_topic(const ternctl_args_t *args) {
    if (args->positional_count < 1) {
        return ternctl_usage("topic needs a subcommand: %s", "info, create, edit, delete or purge");
    }
    const char *sub = args->positional[0];
    if (args->positional_count != 2) {
        return ternctl_usage("topic %s needs exactly one TOPIC", sub);
    }
    const char *topic = args->positional[1];
    tern_header_t kv[4] = {{"topic", topic}};
    size_t count = 1;
    bool destroys = strcmp(sub, "delete") == 0 || strcmp(sub, "purge") == 0;
    if (ternctl_flag(args, ternctl_topic_opts, "progress") && strcmp(sub, "purge") != 0) {
        return ternctl_usage("--progress applies only to 'topic purge', not '%s'", sub);
    }
    if (ternctl_flag(args, ternctl_topic_opts, "force") && !destroys) {
        return ternctl_usage("--force applies only to 'topic delete' and 'topic purge', not '%s'",
                             sub);
    }
    bool limits = ternctl_flag(args, ternctl_topic_opts, "max-age") ||
                  ternctl_flag(args, ternctl_topic_opts, "max-msgs") ||
                  ternctl_flag(args, ternctl_topic_opts, "max-bytes");
    char numbers[3][24];
    if (strcmp(sub, "create") == 0 || strcmp(sub, "edit") == 0) {
        if (strcmp(sub, "edit") == 0 && !limits) {
            return ternctl_usage("topic edit needs a limit: %s",
                                 "--max-age, --max-msgs or --max-bytes");
        }
        int rc = s_topic_limits(args, kv, &count, numbers);
        return rc ? rc
                  : ternctl_admin_print(args,
                                        strcmp(sub, "create") == 0 ? "topic.create" : "topic.edit",
                                        kv, count, NULL);
    }
    if (limits) {
        return ternctl_usage("limits apply only to 'topic create' and 'topic edit', not '%s'", sub);
    }
    if (strcmp(sub, "info") == 0) {
        return ternctl_admin_print(args, "topic.info", kv, count, NULL);
    }
    if (!destroys) {
        return ternctl_usage("unknown topic subcommand '%s'", sub);
    }
    char question[400];
    snprintf(question, sizeof question, "%s topic '%s'%s?",
             strcmp(sub, "delete") == 0 ? "Delete" : "Purge", topic,
             strcmp(sub, "delete") == 0 ? ", its messages and its groups"
                                        : ": remove all its messages");
    if (!ternctl_confirm(args, ternctl_topic_opts, question)) {
        return 1;
    }
    if (strcmp(sub, "delete") == 0) {
        return ternctl_admin_print(args, "topic.delete", kv, count, NULL);
    }
    ternctl_progress_t progress = {.verb = "purging", .key = "purged"};
    return ternctl_admin_run(
        args, "topic.purge", kv, count, NULL,
        ternctl_progress_want(args, ternctl_flag(args, ternctl_topic_opts, "progress"), &progress));
}
