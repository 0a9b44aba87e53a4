/*  ternctl_sub.c - ternctl sub: a pull subscription that prints (and acks,
    nacks or terms) messages until --count, the end of the topic or a signal.
*/
#include "tern_units.h"
#include "ternctl.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const ternctl_opt_t ternctl_sub_opts[] = {{"group", true},   {"from", true},  {"count", true},
                                          {"no-ack", false}, {"nack", false}, {"term", false},
                                          {"follow", false}, {"wait", false}, {NULL, false}};

//  Set by SIGINT / SIGTERM: sub stops, acks what it printed, exits 0.
static volatile sig_atomic_t s_interrupted;

static void s_on_signal(int sig) {
    (void)sig;
    s_interrupted = 1;
}

static void s_print_message(const tern_message_t *msg, bool json, tern_json_t *b) {
    const uint8_t *data = tern_message_data(msg);
    size_t size = tern_message_size(msg);
    bool text = tern_json_utf8_valid(data, size);
    tern_json_reset(b);
    if (json) {
        tern_json_raw(b, "{");
        tern_json_key_str(b, "topic", tern_message_topic(msg));
        tern_json_key_u64(b, "seq", tern_message_seq(msg));
        tern_json_key_u64(b, "msg_id", tern_message_id(msg));
        tern_json_key_str(b, "producer", tern_message_producer(msg));
        tern_json_key_u64(b, "producer_seq", tern_message_producer_seq(msg));
        tern_json_key_u64(b, "priority", (uint64_t)tern_message_priority(msg));
        tern_json_key_u64(b, "delivery_count", tern_message_delivery_count(msg));
        tern_json_key_str(b, "origin", tern_message_origin(msg));
        tern_json_key_u64(b, "timestamp_ns", tern_message_timestamp_ns(msg));
        tern_json_key_str(b, "key", tern_message_key(msg));
        tern_json_key_str(b, "trace_id", tern_message_trace_id(msg));
        tern_json_key(b, "headers");
        tern_json_raw(b, "{");
        for (size_t i = 0; i < tern_message_header_count(msg); i++) {
            const char *key, *value;
            tern_message_header(msg, i, &key, &value);
            tern_json_key_str(b, key, value);
        }
        tern_json_raw(b, "}");
        tern_json_key_bytes(b, "data", data, size);
        tern_json_raw(b, "}");
    } else {
        char prefix[320];
        int n = snprintf(prefix, sizeof prefix, "[%s seq=%llu] ", tern_message_topic(msg),
                         (unsigned long long)tern_message_seq(msg));
        tern_json_rawn(b, prefix, (size_t)n);
        if (text) {
            tern_json_rawn(b, (const char *)data, size);
        } else {
            tern_json_raw(b, "base64:");
            tern_json_base64(b, data, size);
        }
    }
    ternctl_print_line(b);
}

//  Reads --from into OPTIONS. Returns 0 or EXIT_USAGE (printed).
static int s_sub_from(const char *text, tern_sub_options_t *options) {
    uint64_t v;
    const char *why = NULL;
    if (strcmp(text, "first") == 0) {
        options->start = TERN_FROM_FIRST;
    } else if (strcmp(text, "new") == 0) {
        options->start = TERN_FROM_NEW;
    } else if (strncmp(text, "seq:", 4) == 0 && ternctl_parse_u64(text + 4, &v)) {
        options->start = TERN_FROM_SEQ;
        options->start_value = v;
    } else if (strncmp(text, "time:", 5) == 0 &&
               tern_units_parse_duration(text + 5, &v, &why) == TERN_OK) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t now_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        uint64_t ago_ns = v > UINT64_MAX / 1000000ull ? UINT64_MAX : v * 1000000ull;
        options->start = TERN_FROM_TIME;
        options->start_value = ago_ns < now_ns ? now_ns - ago_ns : 1;
    } else {
        return ternctl_bad_value("from", text, why ? why : "first, new, seq:N or time:DUR");
    }
    return 0;
}

//  Before subscribing to a plain topic: asks the broker for its groups, to
//  refuse a missing topic (unless --wait) and to warn that --from does not
//  move a group that exists. Returns 0 or 1 (printed). Not with a CURVE
//  certificate: the key's role may not allow admin queries, and each refused
//  one would count as an auth denial; a broker that refuses anyway skips both.
static int s_sub_check(const ternctl_args_t *args, tern_client_t *client, const char *topic,
                       const tern_sub_options_t *options, int timeout_ms) {
    const ternctl_opt_t *o = ternctl_sub_opts;
    bool from = ternctl_value(args, o, "from") != NULL;
    bool wait = ternctl_flag(args, o, "wait");
    const char *cert = getenv("TERN_CERT");
    if (strpbrk(topic, "*>") || (wait && !(from && options->group)) || (cert && *cert)) {
        return 0; //  a pattern has no one topic to look at
    }
    char *reply = NULL;
    tern_header_t kv[1] = {{"topic", topic}};
    int rc = tern_admin(client, "groups", kv, 1, &reply, timeout_ms);
    if (rc == TERN_ETIMEOUT && !tern_client_connected(client)) {
        char what[320]; //  no second wait in tern_subscribe
        snprintf(what, sizeof what, "sub: cannot reach %s", ternctl_server(args));
        return ternctl_fail(what, rc);
    }
    if (rc == TERN_ENOTFOUND && !wait) {
        fprintf(stderr,
                "ternctl: sub: no such topic '%s' (--wait subscribes anyway and waits for it)\n",
                topic);
        return 1;
    }
    tern_json_value_t *doc = rc == TERN_OK ? tern_json_parse(reply, strlen(reply)) : NULL;
    for (size_t i = 0;
         from && options->group && doc && doc->kind == TERN_JSON_ARRAY && i < doc->count; i++) {
        const tern_json_value_t *name = tern_json_get(doc->items[i], "group");
        if (name && name->kind == TERN_JSON_STRING && strcmp(name->text, options->group) == 0) {
            fprintf(stderr,
                    "ternctl: sub: warning: group '%s' already exists on '%s'; --from is "
                    "ignored (it only places a new group)\n",
                    options->group, topic);
        }
    }
    tern_json_value_destroy(&doc);
    free(reply);
    return 0;
}

//  Prints and settles messages until --count, the idle --timeout (never
//  with --follow or --timeout 0) or SIGINT / SIGTERM. Returns the exit code.
static int s_sub_loop(const ternctl_args_t *args, tern_subscription_t *sub, uint64_t count,
                      int64_t timeout) {
    const ternctl_opt_t *o = ternctl_sub_opts;
    bool forever = timeout == 0 || ternctl_flag(args, o, "follow");
    tern_json_t b;
    tern_json_init(&b);
    uint64_t received = 0;
    int64_t last_ms = ternctl_now_ms();
    int rc = 0;
    while ((!count || received < count) && !s_interrupted) {
        //  Short waits, so that a signal is noticed within 200 ms.
        int64_t left = forever ? 200 : timeout - (ternctl_now_ms() - last_ms);
        if (left <= 0) {
            break;
        }
        tern_message_t *msg = NULL;
        int nrc = tern_subscription_next(sub, (int)(left < 200 ? left : 200), &msg);
        if (nrc == TERN_ETIMEOUT) {
            continue;
        }
        if (nrc != TERN_OK) {
            rc = ternctl_fail("sub", nrc);
            break;
        }
        s_print_message(msg, args->json, &b);
        if (ternctl_flag(args, o, "nack")) {
            tern_message_nack(msg, -1);
        } else if (ternctl_flag(args, o, "term")) {
            tern_message_term(msg, NULL);
        } else if (!ternctl_flag(args, o, "no-ack")) {
            tern_message_ack(msg, false);
        }
        tern_message_destroy(&msg);
        received++;
        last_ms = ternctl_now_ms();
    }
    tern_json_free(&b);
    return rc;
}

int ternctl_cmd_sub(const ternctl_args_t *args) {
    const ternctl_opt_t *o = ternctl_sub_opts;
    if (args->positional_count != 1) {
        return ternctl_usage("sub needs exactly one TOPIC%s", "");
    }
    const char *pattern = args->positional[0];
    tern_sub_options_t options;
    tern_sub_options_init(&options);
    options.group = ternctl_value(args, o, "group");
    //  Like `nats sub`, a subscription without a group shows what comes next.
    options.start = options.group ? TERN_FROM_FIRST : TERN_FROM_NEW;
    uint64_t count = 0;
    const char *text;
    if ((text = ternctl_value(args, o, "count")) &&
        (!ternctl_parse_u64(text, &count) || count == 0)) {
        return ternctl_usage("invalid --count '%s'", text);
    }
    if ((text = ternctl_value(args, o, "from")) && s_sub_from(text, &options) != 0) {
        return EXIT_USAGE;
    }
    int modes = ternctl_flag(args, o, "no-ack") + ternctl_flag(args, o, "nack") +
                ternctl_flag(args, o, "term");
    if (modes > 1) {
        return ternctl_usage("--no-ack, --nack and --term exclude each other%s", "");
    }
    if (count && count <= 1000) {
        options.credit = (uint32_t)count;
    }
    int64_t timeout = ternctl_timeout_ms(args, 5000);
    if (timeout < 0) {
        return ternctl_bad_timeout(args);
    }
    struct sigaction action = {.sa_handler = s_on_signal};
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    //  Connecting and subscribing get at least 5 s even with a short --timeout.
    int connect_ms = timeout > 5000 ? (int)timeout : 5000;
    tern_client_t *client = ternctl_client(args, connect_ms, NULL, 0);
    if (!client) {
        return ternctl_client_usage();
    }
    tern_subscription_t *sub = NULL;
    int rc = s_sub_check(args, client, pattern, &options, connect_ms);
    int src = rc ? TERN_OK : tern_subscribe(client, pattern, &options, NULL, NULL, &sub);
    if (src != TERN_OK) {
        char what[320];
        if (src == TERN_ETIMEOUT && !tern_client_connected(client)) {
            snprintf(what, sizeof what, "sub: cannot reach %s", ternctl_server(args));
        } else {
            snprintf(what, sizeof what, "sub %s", pattern);
        }
        rc = ternctl_fail(what, src);
    } else if (rc == 0) {
        rc = s_sub_loop(args, sub, count, timeout);
    }
    //  Destroy sends the queued acks, then BYE (the rest returns to the group).
    tern_client_destroy(&client);
    return rc;
}
