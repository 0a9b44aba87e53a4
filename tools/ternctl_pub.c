/*  ternctl_pub.c - ternctl pub: publishes DATA, stdin's lines or generated
    payloads through the publish window, reporting each acknowledgement.
*/
#include "tern_units.h"
#include "ternctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

const ternctl_opt_t ternctl_pub_opts[] = {{"count", true},  {"producer", true}, {"seq", true},
                                          {"ttl", true},    {"class", true},    {"priority", true},
                                          {"key", true},    {"size", true},     {"header", true},
                                          {"quiet", false}, {NULL, false}};

#define S_PUB_RING 65536 //  acks tracked past the floor: the largest window

typedef struct {
    const char *topic;            //  for the JSON lines
    bool json;                    //  --json
    bool quiet;                   //  --quiet: no line per message, no summary
    atomic_long acked;            //  completions with TERN_OK
    atomic_long failed;           //  completions with an error
    atomic_long duplicates;       //  acknowledged as already stored
    atomic_llong progress_ms;     //  time of the last completion
    atomic_bool closing;          //  giving up: do not report each unsent message
    uint64_t floor;               //  lowest producer_seq not acknowledged (I/O thread)
    uint8_t ring[S_PUB_RING / 8]; //  acked producer_seqs past FLOOR, bit seq % S_PUB_RING
} s_pub_state_t;

//  Records the ack of SEQ and moves the floor past every acked seq. The
//  window keeps every seq in flight within S_PUB_RING of the floor.
static void s_pub_mark(s_pub_state_t *state, uint64_t seq) {
    if (seq < state->floor || seq - state->floor >= S_PUB_RING) {
        return;
    }
    state->ring[(seq % S_PUB_RING) / 8] |= (uint8_t)(1u << (seq % 8));
    for (uint64_t f = state->floor; state->ring[(f % S_PUB_RING) / 8] & (1u << (f % 8));
         f = ++state->floor) {
        state->ring[(f % S_PUB_RING) / 8] &= (uint8_t) ~(1u << (f % 8));
    }
}

static void s_pub_done(const tern_pub_result_t *result, void *arg) {
    s_pub_state_t *state = arg;
    atomic_store(&state->progress_ms, ternctl_now_ms());
    if (result->code != TERN_OK) {
        atomic_fetch_add(&state->failed, 1);
        if (atomic_load(&state->closing)) {
            return;
        }
        fprintf(stderr, "ternctl: pub: message with producer_seq %llu refused: %s (%s)\n",
                (unsigned long long)result->producer_seq,
                result->reason[0] ? result->reason : tern_strerror(result->code),
                tern_errname(result->code));
        return;
    }
    atomic_fetch_add(&state->acked, 1);
    atomic_fetch_add(&state->duplicates, result->duplicate ? 1 : 0);
    s_pub_mark(state, result->producer_seq);
    if (state->quiet) {
        return;
    }
    if (state->json) {
        tern_json_t b;
        tern_json_init(&b);
        tern_json_raw(&b, "{");
        tern_json_key_str(&b, "topic", state->topic);
        tern_json_key_u64(&b, "msg_id", result->msg_id);
        tern_json_key_u64(&b, "seq", result->seq);
        tern_json_key_bool(&b, "duplicate", result->duplicate);
        //  Acks arrive in the order the broker answers, which is not always
        //  producer_seq order (a history needs the pair: docs/checker.md).
        tern_json_key_u64(&b, "producer_seq", result->producer_seq);
        tern_json_raw(&b, "}");
        ternctl_print_line(&b);
        tern_json_free(&b);
    } else {
        printf("seq=%llu msg_id=%llu%s\n", (unsigned long long)result->seq,
               (unsigned long long)result->msg_id, result->duplicate ? " duplicate" : "");
        fflush(stdout);
    }
}

//  Builds message number N: DATA with {n} replaced, padded to SIZE.
static void s_pub_payload(tern_json_t *b, const char *data, uint64_t n, uint64_t size) {
    tern_json_reset(b);
    char number[24];
    int nlen = snprintf(number, sizeof number, "%llu", (unsigned long long)n);
    for (const char *p = data; p && *p;) {
        const char *hit = strstr(p, "{n}");
        if (!hit) {
            tern_json_raw(b, p);
            break;
        }
        tern_json_rawn(b, p, (size_t)(hit - p));
        tern_json_rawn(b, number, (size_t)nlen);
        p = hit + 3;
    }
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    char chunk[256];
    while (b->len < size) {
        uint8_t random[sizeof chunk];
        size_t want = size - b->len < sizeof chunk ? size - b->len : sizeof chunk;
        if (getrandom(random, want, 0) != (ssize_t)want) {
            memset(random, 0, want);
        }
        for (size_t i = 0; i < want; i++) {
            chunk[i] = alphabet[random[i] % (sizeof alphabet - 1)];
        }
        tern_json_rawn(b, chunk, want);
    }
}

//  What `pub` was asked to do, from its command line.
typedef struct {
    const char *topic;                  //  TOPIC
    const char *data;                   //  DATA, or NULL (stdin or --size)
    uint64_t count;                     //  --count (default 1)
    bool count_given;                   //  --count was given
    uint64_t seq;                       //  --seq, 0 = from 1
    uint64_t size;                      //  --size, 0 = none
    int64_t timeout;                    //  --timeout without progress, ms
    const char *producer;               //  --producer or NULL
    const char *server;                 //  the endpoint(s), for messages
    bool quiet;                         //  --quiet
    tern_pub_options_t msg;             //  the message options
    tern_header_t headers[MAX_HEADERS]; //  --header pairs
    char *keys[MAX_HEADERS];            //  their keys, owned
    size_t header_count;                //  how many
} s_pub_args_t;

static void s_pub_args_free(s_pub_args_t *p) {
    for (size_t i = 0; i < p->header_count; i++) {
        free(p->keys[i]);
    }
    p->header_count = 0;
}

//  The options of one message: --ttl, --class, --priority, --key, --header.
static int s_pub_parse_msg(const ternctl_args_t *args, s_pub_args_t *p) {
    const ternctl_opt_t *o = ternctl_pub_opts;
    const char *text;
    const char *why = NULL;
    uint64_t v;
    if ((text = ternctl_value(args, o, "ttl"))) {
        if (tern_units_parse_duration(text, &v, &why) != TERN_OK || v == 0 || v > UINT32_MAX) {
            return ternctl_bad_value("ttl", text, why ? why : "from 1ms to 49d");
        }
        p->msg.ttl_ms = (uint32_t)v;
    }
    if ((text = ternctl_value(args, o, "class"))) {
        static const char *const classes[] = {"instant", "business", "sync"};
        static const int values[] = {TERN_CLASS_INSTANT, TERN_CLASS_BUSINESS, TERN_CLASS_SYNC};
        if (p->msg.ttl_ms) {
            return ternctl_usage("--ttl and --class exclude each other%s", "");
        }
        int found = -1;
        for (int i = 0; i < 3; i++) {
            found = strcmp(text, classes[i]) == 0 ? i : found;
        }
        if (found < 0) {
            return ternctl_usage("invalid --class '%s' (instant, business or sync)", text);
        }
        p->msg.ttl_class = values[found];
    }
    if ((text = ternctl_value(args, o, "priority"))) {
        if (!ternctl_parse_u64(text, &v) || v > 9) {
            return ternctl_usage("invalid --priority '%s' (0..9)", text);
        }
        p->msg.priority = (int)v;
    }
    p->msg.key = ternctl_value(args, o, "key");
    for (size_t i = 0; i < args->header_count; i++) {
        const char *eq = strchr(args->headers[i], '=');
        if (!eq || eq == args->headers[i]) {
            return ternctl_usage("invalid --header '%s' (K=V)", args->headers[i]);
        }
        p->keys[i] = strndup(args->headers[i], (size_t)(eq - args->headers[i]));
        p->headers[i] = (tern_header_t){p->keys[i], eq + 1};
        p->header_count++;
    }
    p->msg.headers = p->headers;
    p->msg.header_count = p->header_count;
    return 0;
}

//  Reads pub's command line into P. Returns 0 or EXIT_USAGE (printed).
static int s_pub_parse(const ternctl_args_t *args, s_pub_args_t *p) {
    const ternctl_opt_t *o = ternctl_pub_opts;
    if (args->positional_count < 1 || args->positional_count > 2) {
        return ternctl_usage("pub needs TOPIC and at most one DATA%s", "");
    }
    p->topic = args->positional[0];
    p->data = args->positional_count == 2 ? args->positional[1] : NULL;
    p->count = 1;
    const char *text;
    if ((text = ternctl_value(args, o, "count")) &&
        (!ternctl_parse_u64(text, &p->count) || p->count == 0)) {
        return ternctl_usage("invalid --count '%s'", text);
    }
    p->count_given = text != NULL;
    if ((text = ternctl_value(args, o, "seq")) &&
        (!ternctl_parse_u64(text, &p->seq) || p->seq == 0)) {
        return ternctl_usage("invalid --seq '%s' (1 or more)", text);
    }
    const char *why = NULL;
    if ((text = ternctl_value(args, o, "size")) &&
        tern_units_parse_size(text, &p->size, &why) != TERN_OK) {
        return ternctl_bad_value("size", text, why);
    }
    if (p->size > 64ull * 1024 * 1024) {
        return ternctl_usage("--size '%s' is too large (64 MiB at most)", text);
    }
    p->timeout = ternctl_timeout_ms(args, 30000);
    if (p->timeout < 0) {
        return ternctl_bad_timeout(args);
    }
    p->producer = ternctl_value(args, o, "producer");
    p->server = ternctl_server(args);
    p->quiet = ternctl_flag(args, o, "quiet");
    tern_pub_options_init(&p->msg);
    p->msg.topic = p->topic;
    return s_pub_parse_msg(args, p);
}

//  The run's outcome, filled by s_pub_send and s_pub_wait.
typedef struct {
    uint64_t sent;      //  messages handed to the client
    bool stopped;       //  sending stopped early (refused, or the timeout ran out)
    int rc;             //  exit status so far
    int64_t start_ms;   //  when the first message went out
    int64_t end_ms;     //  when the last acknowledgement came
    char producer[256]; //  the producer id used
} s_pub_run_t;

//  Publishes every message (DATA --count times, or stdin's lines).
static void s_pub_send(tern_client_t *client, s_pub_args_t *p, s_pub_state_t *state,
                       s_pub_run_t *run) {
    bool from_stdin = !p->data && p->size == 0;
    tern_json_t payload;
    tern_json_init(&payload);
    char *line = NULL;
    size_t line_cap = 0;
    for (uint64_t n = 1; !run->stopped; n++) {
        if (from_stdin) {
            ssize_t len = p->count_given && n > p->count ? -1 : getline(&line, &line_cap, stdin);
            if (len < 0) {
                break;
            }
            while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
                line[--len] = 0;
            }
            tern_json_reset(&payload);
            tern_json_rawn(&payload, line, (size_t)len);
        } else if (n > p->count) {
            break;
        } else {
            s_pub_payload(&payload, p->data, n, p->size);
        }
        p->msg.payload = payload.data;
        p->msg.size = payload.len;
        while (true) {
            int prc = tern_publish_async(client, &p->msg, s_pub_done, state);
            if (prc == TERN_OK) {
                run->sent++;
                break;
            }
            if (prc != TERN_EBUSY) {
                char what[64];
                snprintf(what, sizeof what, "pub: message %llu", (unsigned long long)n);
                run->rc = ternctl_fail(what, prc);
                run->stopped = true;
                break;
            }
            if (p->timeout > 0 &&
                ternctl_now_ms() - atomic_load(&state->progress_ms) > p->timeout) {
                fprintf(stderr, "ternctl: pub: no acknowledgement from %s for %lld ms\n", p->server,
                        (long long)p->timeout);
                run->rc = 1;
                run->stopped = true;
                break;
            }
        }
    }
    free(line);
    tern_json_free(&payload);
}

//  Waits for the acknowledgements still due, restarting the clock on each.
static void s_pub_wait(tern_client_t *client, const s_pub_args_t *p, s_pub_state_t *state,
                       s_pub_run_t *run) {
    while (tern_client_inflight(client) > 0) {
        if (tern_flush(client, 100) == TERN_OK) {
            break;
        }
        if (p->timeout > 0 && ternctl_now_ms() - atomic_load(&state->progress_ms) > p->timeout) {
            fprintf(stderr, "ternctl: pub: %zu message(s) not acknowledged by %s within %lld ms\n",
                    tern_client_inflight(client), p->server, (long long)p->timeout);
            run->rc = 1;
            break;
        }
    }
    run->end_ms = ternctl_now_ms();
}

//  "110k" for 110123.4 messages a second.
static void s_pub_rate(double rate, char *buf, size_t len) {
    if (rate >= 1e6) {
        snprintf(buf, len, "%.1fM", rate / 1e6);
    } else if (rate >= 1e4) {
        snprintf(buf, len, "%.0fk", rate / 1e3);
    } else if (rate >= 1e3) {
        snprintf(buf, len, "%.1fk", rate / 1e3);
    } else {
        snprintf(buf, len, "%.0f", rate);
    }
}

//  The summary on stderr; on failure, what was acknowledged and how to go on.
static void s_pub_report(const s_pub_args_t *p, const s_pub_state_t *state,
                         const s_pub_run_t *run) {
    long acked = atomic_load(&state->acked);
    long dups = atomic_load(&state->duplicates);
    if (run->rc == 0) {
        if (!p->quiet) {
            double secs = (double)(run->end_ms - run->start_ms) / 1000.0;
            char rate[32];
            s_pub_rate(secs > 0 ? (double)acked / secs : (double)acked * 1000.0, rate, sizeof rate);
            fprintf(stderr,
                    secs < 0.1 ? "published %ld in %.3f s (%s msg/s)"
                               : "published %ld in %.2f s (%s msg/s)",
                    acked, secs, rate);
            fprintf(stderr, dups ? ", %ld duplicate(s) already stored\n" : "\n", dups);
        }
        return;
    }
    uint64_t first = p->seq ? p->seq : 1;
    unsigned long long next = (unsigned long long)(state->floor - first + 1);
    fprintf(stderr, "ternctl: pub: %ld of %llu sent message(s) acknowledged", acked,
            (unsigned long long)run->sent);
    fprintf(stderr, next > 1 ? ", all before message %llu\n" : "\n", next);
    fprintf(stderr,
            "ternctl: pub: resume from message %llu with: --producer %s --seq %llu\n"
            "ternctl: pub: (the broker drops a repeated seq only among a producer's last 1024\n"
            "ternctl: pub: and for 2 min: re-running from the start stores duplicates)\n",
            next, run->producer, (unsigned long long)state->floor);
}

int ternctl_cmd_pub(const ternctl_args_t *args) {
    s_pub_args_t p = {0};
    int rc = s_pub_parse(args, &p);
    if (rc) {
        s_pub_args_free(&p);
        return rc;
    }
    tern_client_options_t options;
    tern_client_options_init(&options);
    options.name = "ternctl";
    options.heartbeat_ms = 2000;
    options.connect_timeout_ms = 2000;
    options.backoff_max_ms = 1000;
    options.producer_id = p.producer;
    options.producer_seq_start = p.seq ? p.seq : 1;
    options.publish_block_ms = 100;
    ternctl_curve_options(&options);
    tern_client_t *client = tern_client_new(ternctl_server(args), &options);
    int crc =
        client ? tern_client_wait_connected(client, p.timeout > 0 ? (int)p.timeout : -1) : TERN_OK;
    if (!client || crc != TERN_OK) {
        s_pub_args_free(&p);
        tern_client_destroy(&client);
        char what[300];
        snprintf(what, sizeof what, "pub: cannot reach %s", ternctl_server(args));
        return crc ? ternctl_fail(what, crc) : ternctl_client_usage();
    }
    static s_pub_state_t state; //  8 KiB of ack bits: not on the stack
    memset(&state, 0, sizeof state);
    state.topic = p.topic;
    state.json = args->json;
    state.quiet = p.quiet;
    state.floor = options.producer_seq_start;
    atomic_store(&state.progress_ms, ternctl_now_ms());
    s_pub_run_t run = {.start_ms = ternctl_now_ms()};
    snprintf(run.producer, sizeof run.producer, "%s", tern_client_producer(client));
    if (!p.data && p.size == 0 && isatty(STDIN_FILENO)) {
        fprintf(stderr, "reading messages from stdin, one per line; Ctrl-D to end\n");
    }
    s_pub_send(client, &p, &state, &run);
    s_pub_wait(client, &p, &state, &run);
    atomic_store(&state.closing, true);
    tern_client_destroy(&client); //  joins the I/O thread: STATE is final
    if (run.rc == 0 && atomic_load(&state.failed) > 0) {
        run.rc = 1;
    }
    s_pub_report(&p, &state, &run);
    s_pub_args_free(&p);
    return run.rc;
}
