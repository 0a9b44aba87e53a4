/*  ternctl_audit.c - `ternctl audit` and `ternctl trace`: delivery accounting
    per group and the life of one message, for operators.

    Both are one admin call ("audit", "trace": docs/protocol.md) whose JSON
    reply is printed as one JSON object per line (--json) or as aligned text.
    ternctl.c dispatches here before its own option parsing (like bench), so
    this file parses its own command line: the global options -s/--server,
    --json, --timeout and -h/--help are accepted before or after the command.
*/
#include "tern_alloc.h"
#include "tern.h"
#include "tern_units.h"
#include "ternctl.h"
#include "tern_json_read.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *s_help_audit =
    "NAME\n"
    "    ternctl audit - delivery accounting of a topic, per consumer group\n"
    "\n"
    "SYNOPSIS\n"
    "    ternctl audit TOPIC [--group G] [--since DUR] [--json]\n"
    "\n"
    "DESCRIPTION\n"
    "    Replays the broker's per-message history (kept storage/trace_retention,\n"
    "    default 24h) and counts, for every group of TOPIC (or only G), the\n"
    "    messages it was owed and how each one ended: acked, dead (in the DLQ),\n"
    "    expired (TTL ran out before an ack) or still pending. So\n"
    "        published = acked + dead + expired + pending\n"
    "        reachability = acked / (published - expired)\n"
    "    delivered counts deliveries, every one (redeliveries and deliveries\n"
    "    after a DLQ replay too), redelivered the deliveries whose delivery\n"
    "    count was above 1 (a replay resets the count): the same numbers as\n"
    "    `ternctl groups` and the metrics. Acks and dead-letterings made in a\n"
    "    peer DC count here like local ones. The oldest pending messages are\n"
    "    listed as stuck, with their age; gaps counts seqs that have no\n"
    "    history.\n"
    "\n"
    "OPTIONS\n"
    "    --group G      only group G\n"
    "    --since DUR    only messages stored in the last DUR (e.g. 1h)\n"
    "\n"
    "OUTPUT\n"
    "    A table with one row per group, then the stuck messages. With --json,\n"
    "    one object per group: topic, group, published, delivered, acked,\n"
    "    pending, redelivered, dead, expired, reachability, oldest_unacked_ms,\n"
    "    gaps, truncated, stuck [{msg_id, seq, age_ms, deliveries}].\n"
    "\n"
    "EXIT STATUS\n"
    "    0 success, 1 failure (no such topic or group, broker unreachable),\n"
    "    2 usage error.\n";

static const char *s_help_trace =
    "NAME\n"
    "    ternctl trace - the life of one message\n"
    "\n"
    "SYNOPSIS\n"
    "    ternctl trace MSG_ID [--json]\n"
    "\n"
    "DESCRIPTION\n"
    "    Prints where and when the message was stored (topic, seq, origin DC,\n"
    "    trace id), every event since in commit order (each delivery attempt\n"
    "    with the consumer it went to, acks, nacks, dead-lettering with the\n"
    "    reason, DLQ replays, expiry, ack-wait timeouts), the final state per\n"
    "    group, and which peer DCs have confirmed it and when (replication: the\n"
    "    time this broker recorded the peer's first confirmation covering the\n"
    "    message, at most about a second after the peer confirmed). The history\n"
    "    is kept storage/trace_retention (default 24h).\n"
    "\n"
    "OUTPUT\n"
    "    With --json one object: msg_id, topic, seq, trace_id, origin,\n"
    "    stored_at_ms, expire_at_ms, expired, events [{event, at_ms, group,\n"
    "    delivery_count, detail}], groups [{group, state, deliveries,\n"
    "    redelivered}] (as in `ternctl audit --help`),\n"
    "    outbox_position, replicas [{peer, confirmed, replicated_at_ms}] (one\n"
    "    per peer DC: has it confirmed this locally published message, and\n"
    "    when, 0 if not known; empty when the message came from a peer).\n"
    "\n"
    "EXIT STATUS\n"
    "    0 success, 1 failure (no history for MSG_ID, broker unreachable),\n"
    "    2 usage error.\n";

const char *ternctl_audit_help(const char *command) {
    if (strcmp(command, "audit") == 0) {
        return s_help_audit;
    }
    return strcmp(command, "trace") == 0 ? s_help_trace : NULL;
}

typedef struct {
    const char *server;     //  -s
    bool json;              //  --json
    bool help;              //  --help
    const char *timeout;    //  --timeout
    const char *group;      //  --group
    const char *since;      //  --since
    const char *positional; //  TOPIC or MSG_ID
    int positional_count;   //  words seen
} s_args_t;

//  Parses everything after argv[0] except the command word itself.
static int s_parse(int argc, char **argv, const char *command, bool with_filters, s_args_t *args) {
    memset(args, 0, sizeof *args);
    bool seen_command = false;
    for (int i = 1; i < argc; i++) {
        const char *w = argv[i];
        char name[64] = "";
        const char *value = NULL;
        if (w[0] == '-' && w[1] == '-' && w[2]) {
            const char *eq = strchr(w, '=');
            size_t n = eq ? (size_t)(eq - w - 2) : strlen(w + 2);
            if (n >= sizeof name) {
                return ternctl_usage("unknown option '%s'", w);
            }
            memcpy(name, w + 2, n);
            name[n] = 0;
            value = eq ? eq + 1 : NULL;
        } else if (strcmp(w, "-s") == 0) {
            snprintf(name, sizeof name, "server");
        } else if (strcmp(w, "-h") == 0) {
            snprintf(name, sizeof name, "help");
        } else {
            if (!seen_command && strcmp(w, command) == 0) {
                seen_command = true;
                continue;
            }
            if (args->positional_count++ == 0) {
                args->positional = w;
            }
            continue;
        }
        bool takes = strcmp(name, "server") == 0 || strcmp(name, "timeout") == 0 ||
                     (with_filters && (strcmp(name, "group") == 0 || strcmp(name, "since") == 0));
        if (!takes) {
            if (value) {
                return ternctl_usage("option '%s' takes no value", w);
            }
            if (strcmp(name, "json") == 0) {
                args->json = true;
            } else if (strcmp(name, "help") == 0) {
                args->help = true;
            } else {
                return ternctl_usage("unknown option '%s'", w);
            }
            continue;
        }
        if (!value) {
            if (i + 1 >= argc) {
                return ternctl_usage("option '%s' needs a value", w);
            }
            value = argv[++i];
        }
        if (strcmp(name, "server") == 0) {
            args->server = value;
        } else if (strcmp(name, "timeout") == 0) {
            args->timeout = value;
        } else if (strcmp(name, "group") == 0) {
            args->group = value;
        } else {
            args->since = value;
        }
    }
    return 0;
}

//  Runs OP and parses the reply into *DOC (ternctl_admin_call, the one admin
//  runner). Returns 0, 1 or EXIT_USAGE.
static int s_call(const s_args_t *args, const char *op, const tern_header_t *kv, size_t count,
                  tern_json_value_t **doc) {
    uint64_t timeout;
    if (args->timeout &&
        (tern_parse_duration(args->timeout, &timeout) != TERN_OK || timeout > 600000)) {
        return ternctl_usage("invalid --timeout '%s'", args->timeout);
    }
    ternctl_args_t call = {.server = args->server, .timeout = args->timeout};
    return ternctl_admin_call(&call, op, kv, count, NULL, doc);
}

static const char *s_str(const tern_json_value_t *obj, const char *key) {
    const tern_json_value_t *v = tern_json_get(obj, key);
    return v && (v->kind == TERN_JSON_STRING || v->kind == TERN_JSON_NUMBER) ? v->text : "-";
}

//  "2026-11-25T17:22:01.123Z" for a unix ms (protocol/tern_units.c).
static void s_time(uint64_t ms, char *out, size_t cap) {
    tern_units_format_time(ms, out, cap);
}

//  Human duration: "850ms", "12.345s", "4m5s", "3h2m", "2d4h".
static void s_age(uint64_t ms, char *out, size_t cap) {
    tern_units_format_duration(ms, TERN_UNITS_HUMAN, out, cap);
}

//  Prints ROWS x COLS cells (row 0 = headings) aligned, two spaces apart.
static void s_table(char ***cells, size_t rows, size_t cols) {
    size_t width[16] = {0};
    for (size_t r = 0; r < rows; r++) {
        for (size_t c = 0; c < cols && c < 16; c++) {
            size_t n = strlen(cells[r][c]);
            width[c] = n > width[c] ? n : width[c];
        }
    }
    for (size_t r = 0; r < rows; r++) {
        for (size_t c = 0; c < cols && c < 16; c++) {
            if (c + 1 == cols) {
                printf("%s\n", cells[r][c]);
            } else {
                printf("%-*s  ", (int)width[c], cells[r][c]);
            }
        }
    }
}

static char *s_fmt_u64(uint64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    return tern_strdup(buf);
}

static void s_table_free(char ***cells, size_t rows, size_t cols) {
    for (size_t r = 0; r < rows; r++) {
        for (size_t c = 0; c < cols; c++) {
            free(cells[r][c]);
        }
        free(cells[r]);
    }
    free(cells);
}

static char ***s_table_new(size_t rows, size_t cols) {
    char ***cells = calloc(rows, sizeof *cells);
    for (size_t r = 0; cells && r < rows; r++) {
        cells[r] = calloc(cols, sizeof **cells);
        if (!cells[r]) {
            cells = NULL;
        }
    }
    if (!cells) {
        fprintf(stderr, "ternctl: out of memory\n");
        exit(1);
    }
    return cells;
}

static void s_print_audit(const tern_json_value_t *doc) {
    static const char *heads[] = {"GROUP",        "PUBLISHED",     "DELIVERED", "ACKED",
                                  "PENDING",      "REDELIVERED",   "DEAD",      "EXPIRED",
                                  "REACHABILITY", "OLDEST_UNACKED"};
    static const char *keys[] = {"group",   "published",   "delivered", "acked",
                                 "pending", "redelivered", "dead",      "expired"};
    const size_t cols = 10;
    size_t rows = doc->count + 1;
    char ***cells = s_table_new(rows, cols);
    for (size_t c = 0; c < cols; c++) {
        cells[0][c] = tern_strdup(heads[c]);
    }
    for (size_t r = 1; r < rows; r++) {
        const tern_json_value_t *g = doc->items[r - 1];
        for (size_t c = 0; c < 8; c++) {
            cells[r][c] = tern_strdup(s_str(g, keys[c]));
        }
        const tern_json_value_t *reach = tern_json_get(g, "reachability");
        char buf[32];
        snprintf(buf, sizeof buf, "%.2f%%",
                 reach && reach->kind == TERN_JSON_NUMBER ? strtod(reach->text, NULL) * 100.0
                                                          : 0.0);
        cells[r][8] = tern_strdup(buf);
        uint64_t oldest = tern_json_get_u64(g, "oldest_unacked_ms");
        if (oldest) {
            s_age(oldest, buf, sizeof buf);
        } else {
            snprintf(buf, sizeof buf, "-");
        }
        cells[r][9] = tern_strdup(buf);
    }
    s_table(cells, rows, cols);
    s_table_free(cells, rows, cols);
    for (size_t i = 0; i < doc->count; i++) {
        const tern_json_value_t *g = doc->items[i];
        const tern_json_value_t *stuck = tern_json_get(g, "stuck");
        if (tern_json_get_u64(g, "gaps")) {
            printf("\n%s: %" PRIu64 " seqs without history (trace retention or tracing off)\n",
                   s_str(g, "group"), tern_json_get_u64(g, "gaps"));
        }
        const tern_json_value_t *truncated = tern_json_get(g, "truncated");
        if (truncated && truncated->kind == TERN_JSON_BOOL && truncated->boolean) {
            printf("\n%s: history too long, counts are partial (use --since)\n", s_str(g, "group"));
        }
        if (!stuck || stuck->kind != TERN_JSON_ARRAY || stuck->count == 0) {
            continue;
        }
        printf("\nstuck in %s (oldest first, %" PRIu64 " pending):\n", s_str(g, "group"),
               tern_json_get_u64(g, "pending"));
        char ***st = s_table_new(stuck->count + 1, 4);
        st[0][0] = tern_strdup("MSG_ID");
        st[0][1] = tern_strdup("SEQ");
        st[0][2] = tern_strdup("AGE");
        st[0][3] = tern_strdup("DELIVERIES");
        for (size_t j = 0; j < stuck->count; j++) {
            char buf[32];
            st[j + 1][0] = tern_strdup(s_str(stuck->items[j], "msg_id"));
            st[j + 1][1] = tern_strdup(s_str(stuck->items[j], "seq"));
            s_age(tern_json_get_u64(stuck->items[j], "age_ms"), buf, sizeof buf);
            st[j + 1][2] = tern_strdup(buf);
            st[j + 1][3] = s_fmt_u64(tern_json_get_u64(stuck->items[j], "deliveries"));
        }
        s_table(st, stuck->count + 1, 4);
        s_table_free(st, stuck->count + 1, 4);
    }
    fflush(stdout);
}

int ternctl_audit_main(int argc, char **argv) {
    s_args_t args;
    int rc = s_parse(argc, argv, "audit", true, &args);
    if (rc) {
        return rc;
    }
    if (args.help) {
        fputs(s_help_audit, stdout);
        return 0;
    }
    if (args.positional_count != 1) {
        return ternctl_usage("audit needs exactly one TOPIC%s", "");
    }
    tern_header_t kv[3] = {{"topic", args.positional}};
    size_t count = 1;
    if (args.group) {
        kv[count++] = (tern_header_t){"group", args.group};
    }
    char since_ms[32];
    if (args.since) {
        uint64_t ms = 0;
        if (tern_parse_duration(args.since, &ms) != TERN_OK || ms == 0) {
            return ternctl_usage("invalid --since '%s'", args.since);
        }
        snprintf(since_ms, sizeof since_ms, "%" PRIu64, ms);
        kv[count++] = (tern_header_t){"since_ms", since_ms};
    }
    tern_json_value_t *doc = NULL;
    if ((rc = s_call(&args, "audit", kv, count, &doc))) {
        return rc;
    }
    if (doc->kind != TERN_JSON_ARRAY) {
        fprintf(stderr, "ternctl: audit: unexpected reply\n");
        tern_json_value_destroy(&doc);
        return 1;
    }
    if (args.json) {
        ternctl_print_json(doc);
    } else {
        s_print_audit(doc);
    }
    tern_json_value_destroy(&doc);
    return 0;
}

static void s_print_trace(const tern_json_value_t *doc) {
    char when[64], buf[64];
    printf("msg_id    %s\n", s_str(doc, "msg_id"));
    printf("topic     %s\n", s_str(doc, "topic"));
    printf("seq       %s\n", s_str(doc, "seq"));
    printf("trace_id  %s\n", s_str(doc, "trace_id"));
    printf("origin    %s\n", s_str(doc, "origin"));
    s_time(tern_json_get_u64(doc, "stored_at_ms"), when, sizeof when);
    printf("stored    %s\n", when);
    uint64_t expire = tern_json_get_u64(doc, "expire_at_ms");
    if (expire) {
        s_time(expire, when, sizeof when);
        const tern_json_value_t *expired = tern_json_get(doc, "expired");
        printf("expires   %s%s\n", when,
               expired && expired->kind == TERN_JSON_BOOL && expired->boolean ? " (expired)" : "");
    }
    const tern_json_value_t *events = tern_json_get(doc, "events");
    if (events && events->kind == TERN_JSON_ARRAY) {
        printf("\n");
        char ***cells = s_table_new(events->count + 1, 6);
        static const char *heads[] = {"TIME", "+MS", "EVENT", "GROUP", "DELIVERY", "DETAIL"};
        for (size_t c = 0; c < 6; c++) {
            cells[0][c] = tern_strdup(heads[c]);
        }
        uint64_t first = events->count ? tern_json_get_u64(events->items[0], "at_ms") : 0;
        for (size_t i = 0; i < events->count; i++) {
            const tern_json_value_t *ev = events->items[i];
            uint64_t at = tern_json_get_u64(ev, "at_ms");
            s_time(at, when, sizeof when);
            cells[i + 1][0] = tern_strdup(when);
            snprintf(buf, sizeof buf, "%" PRIu64, at >= first ? at - first : 0);
            cells[i + 1][1] = tern_strdup(buf);
            cells[i + 1][2] = tern_strdup(s_str(ev, "event"));
            const char *group = s_str(ev, "group");
            cells[i + 1][3] = tern_strdup(*group ? group : "-");
            uint64_t n = tern_json_get_u64(ev, "delivery_count");
            cells[i + 1][4] = n ? s_fmt_u64(n) : tern_strdup("-");
            const char *detail = s_str(ev, "detail");
            cells[i + 1][5] = tern_strdup(*detail ? detail : "-");
        }
        s_table(cells, events->count + 1, 6);
        s_table_free(cells, events->count + 1, 6);
    }
    const tern_json_value_t *groups = tern_json_get(doc, "groups");
    if (groups && groups->kind == TERN_JSON_ARRAY && groups->count) {
        printf("\n");
        char ***cells = s_table_new(groups->count + 1, 4);
        cells[0][0] = tern_strdup("GROUP");
        cells[0][1] = tern_strdup("STATE");
        cells[0][2] = tern_strdup("DELIVERIES");
        cells[0][3] = tern_strdup("REDELIVERED");
        for (size_t i = 0; i < groups->count; i++) {
            cells[i + 1][0] = tern_strdup(s_str(groups->items[i], "group"));
            cells[i + 1][1] = tern_strdup(s_str(groups->items[i], "state"));
            cells[i + 1][2] = tern_strdup(s_str(groups->items[i], "deliveries"));
            cells[i + 1][3] = s_fmt_u64(tern_json_get_u64(groups->items[i], "redelivered"));
        }
        s_table(cells, groups->count + 1, 4);
        s_table_free(cells, groups->count + 1, 4);
    }
    const tern_json_value_t *replicas = tern_json_get(doc, "replicas");
    if (replicas && replicas->kind == TERN_JSON_ARRAY && replicas->count) {
        printf("\nreplicated to:\n");
        uint64_t stored = tern_json_get_u64(doc, "stored_at_ms");
        for (size_t i = 0; i < replicas->count; i++) {
            const tern_json_value_t *ok = tern_json_get(replicas->items[i], "confirmed");
            uint64_t at = tern_json_get_u64(replicas->items[i], "replicated_at_ms");
            const char *peer = s_str(replicas->items[i], "peer");
            if (!(ok && ok->kind == TERN_JSON_BOOL && ok->boolean)) {
                printf("  %s  not yet\n", peer);
            } else if (at) {
                s_time(at, when, sizeof when);
                printf("  %s  confirmed %s (+%" PRIu64 " ms after stored)\n", peer, when,
                       at >= stored ? at - stored : 0);
            } else {
                printf("  %s  confirmed (time not recorded)\n", peer);
            }
        }
    }
    fflush(stdout);
}

int ternctl_trace_main(int argc, char **argv) {
    s_args_t args;
    int rc = s_parse(argc, argv, "trace", false, &args);
    if (rc) {
        return rc;
    }
    if (args.help) {
        fputs(s_help_trace, stdout);
        return 0;
    }
    if (args.positional_count != 1) {
        return ternctl_usage("trace needs exactly one MSG_ID%s", "");
    }
    char *end = NULL;
    unsigned long long id = strtoull(args.positional, &end, 10);
    if (!end || *end || end == args.positional || id == 0 || args.positional[0] == '-') {
        return ternctl_usage("invalid MSG_ID '%s' (a decimal message id)", args.positional);
    }
    tern_header_t kv[1] = {{"msg_id", args.positional}};
    tern_json_value_t *doc = NULL;
    //  In a cluster, libtern asks every node and keeps the leader's answer.
    if ((rc = s_call(&args, "trace", kv, 1, &doc))) {
        return rc;
    }
    if (args.json) {
        ternctl_print_json(doc);
    } else if (doc->kind == TERN_JSON_OBJECT) {
        s_print_trace(doc);
    }
    tern_json_value_destroy(&doc);
    return 0;
}
