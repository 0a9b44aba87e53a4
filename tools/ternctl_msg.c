/*  ternctl_msg.c - ternctl get and view: stored messages read through the
    admin API (msg.get, msg.view), not consumed; also prints dlq get's reply.
*/
#include "tern_units.h"
#include "ternctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Unix ns NS as an ISO 8601 UTC time with milliseconds into BUF.
static const char *s_iso_time(uint64_t ns, char *buf, size_t cap) {
    return tern_units_format_time(ns / 1000000ull, buf, cap);
}

static const char *s_json_text(const tern_json_value_t *obj, const char *key) {
    const tern_json_value_t *v = tern_json_get(obj, key);
    return v && v->kind == TERN_JSON_STRING && v->text[0] ? v->text : "-";
}

//  One message object of msg.get / msg.view / dlq.get as a text block.
static void s_print_message_text(const tern_json_value_t *m) {
    char when[48];
    printf("topic     %s\nseq       %llu\nmsg_id    %llu\n", s_json_text(m, "topic"),
           (unsigned long long)tern_json_get_u64(m, "seq"),
           (unsigned long long)tern_json_get_u64(m, "msg_id"));
    printf("time      %s\n", s_iso_time(tern_json_get_u64(m, "timestamp_ns"), when, sizeof when));
    uint64_t expire = tern_json_get_u64(m, "expire_at_ns");
    printf("expires   %s\n", expire ? s_iso_time(expire, when, sizeof when) : "never");
    printf("priority  %llu\ntrace_id  %s\norigin    %s\n",
           (unsigned long long)tern_json_get_u64(m, "priority"), s_json_text(m, "trace_id"),
           s_json_text(m, "origin"));
    printf("producer  %s", s_json_text(m, "producer"));
    if (tern_json_get_u64(m, "producer_seq")) {
        printf(" (seq %llu)", (unsigned long long)tern_json_get_u64(m, "producer_seq"));
    }
    printf("\nkey       %s\n", s_json_text(m, "key"));
    if (tern_json_get(m, "reason")) {
        printf("dead      %s after %llu deliveries, at %s\n", s_json_text(m, "reason"),
               (unsigned long long)tern_json_get_u64(m, "delivery_count"),
               s_iso_time(tern_json_get_u64(m, "dead_at_ms") * 1000000ull, when, sizeof when));
    }
    const tern_json_value_t *headers = tern_json_get(m, "headers");
    for (size_t i = 0; headers && headers->kind == TERN_JSON_OBJECT && i < headers->count; i++) {
        char *cell = ternctl_cell(NULL, headers->items[i]);
        printf("header    %s: %s\n", headers->keys[i], cell);
        free(cell);
    }
    const tern_json_value_t *data = tern_json_get(m, "data");
    const tern_json_value_t *b64 = tern_json_get(m, "data_b64");
    printf("size      %llu B%s\n\n", (unsigned long long)tern_json_get_u64(m, "size"),
           tern_json_get(m, "truncated") ? " (only the start fits one reply: shown truncated)"
                                         : "");
    if (data && data->kind == TERN_JSON_STRING) {
        fwrite(data->text, 1, data->text_len, stdout);
    } else if (b64 && b64->kind == TERN_JSON_STRING) {
        printf("base64:%s", b64->text);
    }
    printf("\n");
}

//  Prints DOC (a message object or an array of them) and destroys it.
int ternctl_print_messages(const ternctl_args_t *args, const tern_json_value_t *doc) {
    if (args->json) {
        ternctl_print_json(doc);
    } else {
        size_t count = doc->kind == TERN_JSON_ARRAY ? doc->count : 1;
        for (size_t i = 0; i < count; i++) {
            printf("%s", i ? "\n" : "");
            s_print_message_text(doc->kind == TERN_JSON_ARRAY ? doc->items[i] : doc);
        }
        fflush(stdout);
    }
    tern_json_value_t *owned = (tern_json_value_t *)doc;
    tern_json_value_destroy(&owned);
    return 0;
}

int ternctl_cmd_get(const ternctl_args_t *args) {
    uint64_t seq;
    if (args->positional_count != 2) {
        return ternctl_usage("get needs TOPIC and SEQ%s", "");
    }
    if (!ternctl_parse_u64(args->positional[1], &seq) || seq == 0) {
        return ternctl_usage("invalid SEQ '%s' (1 or more)", args->positional[1]);
    }
    tern_header_t kv[2] = {{"topic", args->positional[0]}, {"seq", args->positional[1]}};
    tern_json_value_t *doc = NULL;
    int rc = ternctl_admin_call(args, "msg.get", kv, 2, NULL, &doc);
    return rc ? rc : ternctl_print_messages(args, doc);
}

const ternctl_opt_t ternctl_view_opts[] = {{"from", true}, {"count", true}, {NULL, false}};

int ternctl_cmd_view(const ternctl_args_t *args) {
    if (args->positional_count != 1) {
        return ternctl_usage("view needs exactly one TOPIC%s", "");
    }
    const char *from = ternctl_value(args, ternctl_view_opts, "from");
    const char *text = ternctl_value(args, ternctl_view_opts, "count");
    uint64_t count = 10;
    if (text && (!ternctl_parse_u64(text, &count) || count == 0)) {
        return ternctl_usage("invalid --count '%s'", text);
    }
    if (from && !ternctl_position_valid(from, false)) {
        return ternctl_usage("invalid --from '%s' (first, seq:N or time:DUR)", from);
    }
    //  The broker answers at most 1000 messages (or ~4 MiB) per request: ask
    //  again from after the last one until COUNT are printed or none is left.
    char where[48], number[24];
    for (uint64_t printed = 0; printed < count;) {
        tern_header_t kv[3] = {{"topic", args->positional[0]}, {"count", number}, {"from", from}};
        snprintf(number, sizeof number, "%llu",
                 (unsigned long long)(count - printed < 1000 ? count - printed : 1000));
        tern_json_value_t *doc = NULL;
        int rc = ternctl_admin_call(args, "msg.view", kv, from ? 3 : 2, NULL, &doc);
        if (rc) {
            return rc;
        }
        size_t got = doc->kind == TERN_JSON_ARRAY ? doc->count : 0;
        if (got && printed && !args->json) {
            printf("\n");
        }
        uint64_t last = got ? tern_json_get_u64(doc->items[got - 1], "seq") : 0;
        ternctl_print_messages(args, doc);
        if (got == 0) {
            if (printed == 0 && !args->json) {
                printf("no messages on %s%s%s\n", args->positional[0], from ? " from " : "",
                       from ? from : "");
            }
            break;
        }
        printed += got;
        snprintf(where, sizeof where, "seq:%llu", (unsigned long long)last + 1);
        from = where;
    }
    return 0;
}
