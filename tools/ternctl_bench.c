/*  ternctl_bench.c - `ternctl bench`: load generator and latency meter for a tern broker.

    Modes (docs/performance.md has the measured figures):
      pub     async publish with an in-flight window (P producers, one client each);
              latency = tern_publish_async call -> its completion callback (PUBACK).
      sync    one publish in flight per producer (tern_publish); latency = round trip.
      sub     consume + ack a stored backlog: first publishes --msgs (untimed, unless
              --no-fill), then C consumers of one durable group consume and ack it;
              throughput of the consume phase only.
      pubsub  C consumers in each of G groups subscribe (from new), then P producers
              publish --msgs; latency = publish -> delivery (a CLOCK_MONOTONIC stamp in
              the first 8 payload bytes; producers and consumers are on this host).
    Every mode prints progress on stderr, then on stdout one RESULT line in the
    format of ../shared/bench/common.h (so tern's figures sit in the same summary
    table as the NATS and ceiling anchors) and a final line (or a JSON object with
    --json) with msgs, secs, msgs_per_s, MB_per_s, p50_us, p99_us, p999_us.

    Only libtern's public API (tern.h) is used. One client per producer and per
    consumer, each with its own I/O thread; callbacks run on those threads and
    touch only their own producer's / consumer's arrays plus atomic counters.
*/
#include "tern_alloc.h"
#include "tern.h"
#include "ternctl.h"
#include "tern_json_read.h"
#include "bench/bench_pct.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

int ternctl_bench_main(int argc, char **argv);

#define S_EXIT_USAGE  2
#define S_MAX_CLIENTS 20000   /* producers or consumers */
#define S_LAT_CAP     2000000 /* latency samples kept per consumer */

//  ---------------------------------------------------------------------------
//  Options and shared state

typedef enum { S_PUB, S_SYNC, S_SUB, S_PUBSUB } s_mode_t;

typedef struct {
    s_mode_t mode;          //  what to run
    const char *mode_name;  //  its name
    const char *server;     //  endpoints
    bool json;              //  --json
    bool quiet;             //  --quiet: no progress
    uint64_t msgs;          //  --msgs
    size_t size;            //  --size
    uint32_t window;        //  --window
    uint32_t producers;     //  --producers
    uint32_t consumers;     //  --consumers (per group)
    uint32_t topics;        //  --topics
    uint32_t groups;        //  --groups (pubsub)
    uint32_t credit;        //  --credit
    double rate;            //  --rate, total msgs/s, 0 = as fast as possible
    bool dedup;             //  idempotent publishing (--no-dedup clears)
    bool fill;              //  sub: publish the backlog first (--no-fill clears)
    bool keep;              //  --keep: leave the topics the run created
    int64_t timeout_ms;     //  give up after this long without progress
    char prefix[160];       //  topic prefix
    const char *name;       //  RESULT name, NULL = tern_<mode>
    const char *durability; //  label recorded in the output
} s_opts_t;

typedef struct {
    uint32_t index;          //  producer number
    uint64_t first;          //  global index of its first message
    uint64_t count;          //  messages it publishes
    tern_client_t *client;   //  its connection, owned
    uint64_t *sent_ns;       //  per message: send time (pub), owned
    uint64_t *lat;           //  per message latency in ns, owned
    _Atomic uint64_t nlat;   //  latency samples written
    _Atomic uint64_t done;   //  completions (pub) or publishes (sync)
    _Atomic uint64_t failed; //  completions with an error
    _Atomic int first_error; //  the first error code
    int rc;                  //  thread result
    pthread_t thread;        //  its thread
} s_prod_t;

typedef struct {
    tern_client_t *client;     //  its connection, owned
    tern_subscription_t *sub;  //  its subscription, owned by the client
    uint64_t *lat;             //  publish -> delivery latency in ns, owned
    uint64_t lat_cap;          //  capacity of lat
    _Atomic uint64_t nlat;     //  samples written
    _Atomic uint64_t got;      //  deliveries
    _Atomic uint64_t ack_fail; //  acks refused
} s_cons_t;

typedef struct {
    s_opts_t *o;                //  options
    s_prod_t *prods;            //  producers
    s_cons_t *cons;             //  consumers (groups x consumers)
    uint32_t ncons;             //  how many
    _Atomic uint64_t delivered; //  total deliveries
    _Atomic bool go;            //  start flag for producer threads
    uint64_t start_ns;          //  start of the timed phase
    const char *phase;          //  progress label
    bool *existed;              //  per bench topic: there before the run (kept), owned
} s_bench_t;

static s_bench_t *s_bench; //  the running bench (callbacks reach it through this)

static uint64_t s_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void s_sleep_ns(uint64_t ns) {
    struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
    nanosleep(&ts, NULL);
}

static const char *s_help =
    "NAME\n"
    "    ternctl bench - measure a tern broker (throughput and latency)\n"
    "\n"
    "SYNOPSIS\n"
    "    ternctl [-s ENDPOINT] bench pub|sub|pubsub|sync [options]\n"
    "\n"
    "MODES\n"
    "    pub      async publish with an in-flight window (latency: publish -> PUBACK)\n"
    "    sync     one publish in flight per producer (latency: round trip)\n"
    "    sub      publish a backlog (untimed), then consume + ack it with a durable group\n"
    "    pubsub   publish and consume at once (latency: publish -> delivery)\n"
    "\n"
    "OPTIONS\n"
    "    --msgs N         messages to publish (default 100000; k/m suffixes)\n"
    "    --size BYTES     payload size (default 1024; pubsub needs >= 8)\n"
    "    --window W       publishes in flight per producer (default 256)\n"
    "    --producers P    publishing clients, one thread each (default 1)\n"
    "    --consumers C    consuming clients per group (default 1)\n"
    "    --groups G       pubsub: durable groups, each gets every message (default 1)\n"
    "    --topics T       topics the messages are spread over, round robin (default 1)\n"
    "    --credit N       unacked deliveries per consumer (default 1000)\n"
    "    --rate R         offered load in msgs/s over all producers (default: max)\n"
    "    --no-dedup       publish without producer id / seq (no broker dedup)\n"
    "    --prefix P       topic prefix (default bench.<random>); topics are P.0 .. P.T-1\n"
    "    --no-fill        sub: consume what is already stored under --prefix\n"
    "    --keep           keep the topics afterwards (default: the topics the run\n"
    "                     created are deleted, with their messages and groups;\n"
    "                     topics that existed before are never deleted)\n"
    "    --name NAME      RESULT name (default tern_<mode>)\n"
    "    --durability M   the broker's durability mode, recorded in the output\n"
    "                     (set on ternd with --durability; default label fsync)\n"
    "    --quiet          no progress on stderr\n"
    "    --json           the result as one JSON object (instead of RESULT and lines)\n"
    "    --timeout DUR    give up after this long without progress (default 30s)\n"
    "\n"
    "OUTPUT\n"
    "    stderr: progress once a second, then what was deleted. stdout: a RESULT\n"
    "    line (format of the shared bench/common.h), then `key  value` lines: msgs,\n"
    "    secs, msgs_per_s, MB_per_s, p50_us, p99_us, p999_us (and delivered for\n"
    "    pubsub/sub). With --json only one object with the same keys and name,\n"
    "    mode, lat, size, window, producers, consumers, groups, topics.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 success, 1 failure (publish error, lost messages, timeout), 2 usage error.\n";

static int s_usage(const char *fmt, const char *arg) {
    fprintf(stderr, "ternctl: bench: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'ternctl bench --help'.\n");
    return S_EXIT_USAGE;
}

static bool s_parse_count(const char *text, uint64_t *out) {
    uint64_t v;
    if (tern_parse_size(text, &v) != TERN_OK) {
        return false;
    }
    //  "1m" as a count means a million, not 2^20
    const char *end = text + strlen(text);
    char last = end > text ? end[-1] : 0;
    if (last == 'k' || last == 'K') {
        v = v / 1024 * 1000;
    } else if (last == 'm' || last == 'M') {
        v = v / (1024 * 1024) * 1000000;
    } else if (last == 'g' || last == 'G') {
        v = v / (1024ull * 1024 * 1024) * 1000000000ull;
    }
    *out = v;
    return true;
}

static bool s_parse_u32(const char *text, uint32_t lo, uint32_t hi, uint32_t *out) {
    uint64_t v;
    if (!s_parse_count(text, &v) || v < lo || v > hi) {
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

//  Applies option NAME (as written, WORD with its value V or NULL) to O.
//  Returns 0, S_EXIT_USAGE, or -1 for --help (printed).
static int s_parse_option(s_opts_t *o, const char *name, const char *v, const char *w) {
    if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0) {
        fputs(s_help, stdout);
        return -1;
    } else if (strcmp(name, "--json") == 0) {
        o->json = true;
    } else if (strcmp(name, "--quiet") == 0) {
        o->quiet = true;
    } else if (strcmp(name, "--no-dedup") == 0) {
        o->dedup = false;
    } else if (strcmp(name, "--no-fill") == 0) {
        o->fill = false;
    } else if (strcmp(name, "--keep") == 0) {
        o->keep = true;
    } else if (strcmp(name, "-s") == 0 || strcmp(name, "--server") == 0) {
        o->server = v;
    } else if (strcmp(name, "--timeout") == 0) {
        uint64_t ms;
        if (tern_parse_duration(v, &ms) != TERN_OK || ms == 0 || ms > INT32_MAX) {
            return s_usage("invalid --timeout '%s'", v);
        }
        o->timeout_ms = (int64_t)ms;
    } else if (strcmp(name, "--msgs") == 0) {
        if (!s_parse_count(v, &o->msgs) || o->msgs == 0) {
            return s_usage("invalid --msgs '%s'", v);
        }
    } else if (strcmp(name, "--size") == 0) {
        uint64_t size;
        if (tern_parse_size(v, &size) != TERN_OK || size > 256u * 1024 * 1024) {
            return s_usage("invalid --size '%s'", v);
        }
        o->size = (size_t)size;
    } else if (strcmp(name, "--window") == 0) {
        if (!s_parse_u32(v, 1, 65536, &o->window)) {
            return s_usage("invalid --window '%s' (1..65536)", v);
        }
    } else if (strcmp(name, "--producers") == 0) {
        if (!s_parse_u32(v, 1, S_MAX_CLIENTS, &o->producers)) {
            return s_usage("invalid --producers '%s'", v);
        }
    } else if (strcmp(name, "--consumers") == 0) {
        if (!s_parse_u32(v, 1, S_MAX_CLIENTS, &o->consumers)) {
            return s_usage("invalid --consumers '%s'", v);
        }
    } else if (strcmp(name, "--groups") == 0) {
        if (!s_parse_u32(v, 1, S_MAX_CLIENTS, &o->groups)) {
            return s_usage("invalid --groups '%s'", v);
        }
    } else if (strcmp(name, "--topics") == 0) {
        if (!s_parse_u32(v, 1, 100000, &o->topics)) {
            return s_usage("invalid --topics '%s'", v);
        }
    } else if (strcmp(name, "--credit") == 0) {
        if (!s_parse_u32(v, 1, 1000000, &o->credit)) {
            return s_usage("invalid --credit '%s'", v);
        }
    } else if (strcmp(name, "--rate") == 0) {
        char *end;
        o->rate = strtod(v, &end);
        if (*end || !(o->rate > 0)) {
            return s_usage("invalid --rate '%s'", v);
        }
    } else if (strcmp(name, "--prefix") == 0) {
        if (strlen(v) == 0 || strlen(v) >= 120) {
            return s_usage("invalid --prefix '%s'", v);
        }
        snprintf(o->prefix, sizeof o->prefix, "%s", v);
    } else if (strcmp(name, "--name") == 0) {
        o->name = v;
    } else if (strcmp(name, "--durability") == 0) {
        o->durability = v;
    } else {
        return s_usage("unknown option '%s'", w);
    }
    return 0;
}

//  Checks MODE and the options that depend on it. Returns 0 or
//  S_EXIT_USAGE.
static int s_parse_mode(s_opts_t *o, const char *mode) {
    if (!mode) {
        return s_usage("bench needs a mode: %s", "pub, sub, pubsub or sync");
    }
    o->mode_name = mode;
    if (strcmp(mode, "pub") == 0) {
        o->mode = S_PUB;
    } else if (strcmp(mode, "sync") == 0) {
        o->mode = S_SYNC;
    } else if (strcmp(mode, "sub") == 0) {
        o->mode = S_SUB;
    } else if (strcmp(mode, "pubsub") == 0) {
        o->mode = S_PUBSUB;
    } else {
        return s_usage("unknown bench mode '%s' (pub, sub, pubsub or sync)", mode);
    }
    if (o->mode == S_PUBSUB && o->size < 8) {
        return s_usage("pubsub needs --size of at least 8 (a timestamp), not '%s'", "less");
    }
    if ((uint64_t)o->producers > o->msgs) {
        o->producers = (uint32_t)o->msgs;
    }
    if ((uint64_t)o->groups * o->consumers > S_MAX_CLIENTS) {
        return s_usage("too many consumers (groups x consumers > %s)", "20000");
    }
    return 0;
}

//  Parses the whole command line (ARGV[0] is the program, the word "bench"
//  is skipped). Returns 0, S_EXIT_USAGE, or -1 for --help (printed).
static int s_parse(int argc, char **argv, s_opts_t *o) {
    const char *mode = NULL;
    bool seen_bench = false;
    for (int i = 1; i < argc; i++) {
        const char *w = argv[i];
        const char *v = NULL;
        if (w[0] != '-') {
            if (!seen_bench && strcmp(w, "bench") == 0) {
                seen_bench = true;
            } else if (!mode) {
                mode = w;
            } else {
                return s_usage("too many arguments at '%s'", w);
            }
            continue;
        }
        static const char *const with_value[] = {
            "-s",       "--server",    "--timeout",   "--msgs",   "--size",
            "--window", "--producers", "--consumers", "--groups", "--topics",
            "--credit", "--rate",      "--prefix",    "--name",   "--durability"};
        char name[32];
        const char *eq = strchr(w, '=');
        size_t len = eq ? (size_t)(eq - w) : strlen(w);
        if (len >= sizeof name) {
            return s_usage("unknown option '%s'", w);
        }
        memcpy(name, w, len);
        name[len] = 0;
        bool needs = false;
        for (size_t k = 0; k < sizeof with_value / sizeof *with_value; k++) {
            if (strcmp(name, with_value[k]) == 0) {
                needs = true;
            }
        }
        if (needs) {
            if (eq) {
                v = eq + 1;
            } else if (i + 1 < argc) {
                v = argv[++i];
            } else {
                return s_usage("option '%s' needs a value", w);
            }
        } else if (eq) {
            return s_usage("option '%s' takes no value", w);
        }
        int rc = s_parse_option(o, name, v, w);
        if (rc) {
            return rc;
        }
    }
    return s_parse_mode(o, mode);
}

//  ---------------------------------------------------------------------------
//  Clients

static tern_client_t *s_connect(const s_opts_t *o, const char *role, uint32_t window, bool dedup) {
    tern_client_options_t options;
    tern_client_options_init(&options);
    options.name = role;
    options.window = window;
    options.idempotent = dedup;
    options.timeout_ms = (uint32_t)o->timeout_ms;
    tern_client_t *client = tern_client_new(o->server, &options);
    if (!client) {
        fprintf(stderr, "ternctl: bench: invalid server endpoint '%s'\n",
                o->server ? o->server : TERN_DEFAULT_ENDPOINT);
        return NULL;
    }
    tern_err_t rc = tern_client_wait_connected(client, (int)o->timeout_ms);
    if (rc != TERN_OK) {
        fprintf(stderr, "ternctl: bench: cannot connect: %s (%s)\n", tern_strerror(rc),
                tern_errname(rc));
        tern_client_destroy(&client);
    }
    return client;
}

//  ---------------------------------------------------------------------------
//  The bench topics: P.0 .. P.T-1

//  Index of bench topic NAME (P.<index>), or -1 for any other topic.
static long s_topic_index(const s_opts_t *o, const char *name) {
    size_t n = strlen(o->prefix);
    if (strncmp(name, o->prefix, n) != 0 || name[n] != '.' || name[n + 1] < '0' ||
        name[n + 1] > '9') {
        return -1;
    }
    char *end;
    unsigned long index = strtoul(name + n + 1, &end, 10);
    return *end || index >= o->topics ? -1 : (long)index;
}

//  Fills B->existed: which bench topics are there before the run (those
//  the cleanup leaves alone). Returns 0 or 1.
static int s_topics_before(s_bench_t *b) {
    const s_opts_t *o = b->o;
    b->existed = tern_alloc(o->topics * sizeof(bool));
    tern_client_t *client = s_connect(o, "ternctl-bench", TERN_DEFAULT_WINDOW, false);
    if (!client) {
        return 1;
    }
    char *reply = NULL;
    tern_err_t rc = tern_admin(client, "topics", NULL, 0, &reply, (int)o->timeout_ms);
    tern_client_destroy(&client);
    tern_json_value_t *doc = rc == TERN_OK ? tern_json_parse(reply, strlen(reply)) : NULL;
    free(reply);
    if (!doc || doc->kind != TERN_JSON_ARRAY) {
        fprintf(stderr, "ternctl: bench: cannot list the topics: %s (%s)\n", tern_strerror(rc),
                tern_errname(rc));
        tern_json_value_destroy(&doc);
        return 1;
    }
    for (size_t i = 0; i < doc->count; i++) {
        const tern_json_value_t *name = tern_json_get(doc->items[i], "topic");
        long index = name && name->kind == TERN_JSON_STRING ? s_topic_index(o, name->text) : -1;
        if (index >= 0) {
            b->existed[index] = true;
        }
    }
    tern_json_value_destroy(&doc);
    return 0;
}

//  Deletes TOPIC through CLIENT (in a cluster, libtern asks the leader of
//  its partition).
static tern_err_t s_delete(const s_opts_t *o, tern_client_t *client, const char *topic) {
    tern_header_t kv[1] = {{"topic", topic}};
    char *reply = NULL;
    tern_err_t rc = tern_admin(client, "topic.delete", kv, 1, &reply, (int)o->timeout_ms);
    free(reply);
    return rc;
}

//  Deletes the bench topics the run created (with their messages and
//  groups), unless --keep. Returns 0 or 1.
static int s_topics_cleanup(s_bench_t *b) {
    const s_opts_t *o = b->o;
    if (o->keep || !b->existed) {
        return 0;
    }
    tern_client_t *client = s_connect(o, "ternctl-bench", TERN_DEFAULT_WINDOW, false);
    if (!client) {
        return 1;
    }
    uint32_t removed = 0;
    int rc = 0;
    for (uint32_t t = 0; t < o->topics; t++) {
        char topic[200];
        snprintf(topic, sizeof topic, "%s.%u", o->prefix, (unsigned)t);
        tern_err_t drc = b->existed[t] ? TERN_ENOTFOUND : s_delete(o, client, topic);
        removed += drc == TERN_OK;
        if (drc != TERN_OK && drc != TERN_ENOTFOUND) {
            fprintf(stderr, "ternctl: bench: cannot delete %s: %s (%s)\n", topic,
                    tern_strerror(drc), tern_errname(drc));
            rc = 1;
        }
    }
    tern_client_destroy(&client);
    if (!o->quiet && removed) {
        fprintf(stderr, "bench: deleted the %u topic(s) it created under %s (--keep keeps them)\n",
                (unsigned)removed, o->prefix);
    }
    return rc;
}

//  ---------------------------------------------------------------------------
//  Producers

//  Completion of one async publish; ARG = producer << 40 | message index.
static void s_on_puback(const tern_pub_result_t *result, void *arg) {
    uintptr_t tag = (uintptr_t)arg;
    s_prod_t *p = &s_bench->prods[tag >> 40];
    uint64_t i = tag & ((1ull << 40) - 1);
    if (result->code != TERN_OK) {
        int zero = 0;
        atomic_compare_exchange_strong(&p->first_error, &zero, (int)result->code);
        atomic_fetch_add(&p->failed, 1);
    } else if (p->sent_ns) {
        uint64_t n = atomic_load_explicit(&p->nlat, memory_order_relaxed);
        p->lat[n] = s_now_ns() - p->sent_ns[i];
        atomic_store_explicit(&p->nlat, n + 1, memory_order_relaxed);
    }
    atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
}

static void *s_producer(void *arg) {
    s_prod_t *p = arg;
    const s_opts_t *o = s_bench->o;
    unsigned char *payload = tern_alloc(o->size);
    uint32_t x = 2463534242u ^ p->index; //  xorshift32, as common.h fill_payload
    for (size_t k = 0; k < o->size; k++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        payload[k] = (unsigned char)x;
    }
    char topic[200];
    tern_pub_options_t msg;
    tern_pub_options_init(&msg);
    msg.topic = topic;
    msg.payload = payload;
    msg.size = o->size;
    while (!atomic_load(&s_bench->go)) {
        s_sleep_ns(100000);
    }
    uint64_t interval = o->rate > 0 ? (uint64_t)(1e9 * o->producers / o->rate) : 0;
    uint64_t t0 = s_now_ns();
    p->rc = TERN_OK;
    for (uint64_t i = 0; i < p->count; i++) {
        uint64_t g = p->first + i;
        snprintf(topic, sizeof topic, "%s.%u", o->prefix, (unsigned)(g % o->topics));
        if (interval) {
            uint64_t due = t0 + i * interval, now = s_now_ns();
            if (due > now) {
                s_sleep_ns(due - now);
            }
        }
        uint64_t now = s_now_ns();
        if (o->size >= 8) {
            memcpy(payload, &now, 8);
        }
        if (o->mode == S_SYNC) {
            tern_pub_result_t result;
            tern_err_t rc = tern_publish(p->client, &msg, (int)o->timeout_ms, &result);
            if (rc != TERN_OK) {
                p->rc = rc;
                atomic_store(&p->first_error, (int)rc);
                atomic_fetch_add(&p->failed, 1);
                break;
            }
            p->lat[i] = s_now_ns() - now;
            atomic_store_explicit(&p->nlat, i + 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
        } else {
            if (p->sent_ns) {
                p->sent_ns[i] = now;
            }
            uintptr_t tag = ((uintptr_t)p->index << 40) | (uintptr_t)i;
            tern_err_t rc = tern_publish_async(p->client, &msg, s_on_puback, (void *)tag);
            if (rc != TERN_OK) {
                p->rc = rc;
                atomic_store(&p->first_error, (int)rc);
                break;
            }
        }
    }
    if (o->mode != S_SYNC && p->rc == TERN_OK) {
        p->rc = tern_flush(p->client, -1);
    }
    free(payload);
    return NULL;
}

//  ---------------------------------------------------------------------------
//  Consumers

static void s_on_msg(tern_message_t *msg, void *arg) {
    s_cons_t *c = arg;
    if (c->lat && tern_message_size(msg) >= 8) {
        uint64_t sent;
        memcpy(&sent, tern_message_data(msg), 8);
        uint64_t n = atomic_load_explicit(&c->nlat, memory_order_relaxed);
        if (n < c->lat_cap) {
            c->lat[n] = s_now_ns() - sent;
            atomic_store_explicit(&c->nlat, n + 1, memory_order_relaxed);
        }
    }
    if (tern_message_ack(msg, false) != TERN_OK) {
        atomic_fetch_add(&c->ack_fail, 1);
    }
    tern_message_destroy(&msg);
    atomic_fetch_add_explicit(&c->got, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s_bench->delivered, 1, memory_order_relaxed);
}

//  Connects consumer C of group GROUP and subscribes. Returns 0 or 1.
static int s_consumer_start(s_bench_t *b, s_cons_t *c, uint32_t group, int start, bool lat) {
    const s_opts_t *o = b->o;
    c->client = s_connect(o, "ternctl-bench-sub", TERN_DEFAULT_WINDOW, true);
    if (!c->client) {
        return 1;
    }
    if (lat) {
        c->lat_cap = o->msgs < S_LAT_CAP ? o->msgs : S_LAT_CAP;
        c->lat = tern_alloc(c->lat_cap * sizeof(uint64_t));
    }
    char pattern[200], gname[64];
    if (o->topics == 1) {
        snprintf(pattern, sizeof pattern, "%s.0", o->prefix);
    } else {
        snprintf(pattern, sizeof pattern, "%s.*", o->prefix);
    }
    snprintf(gname, sizeof gname, "bench-g%u", (unsigned)group);
    tern_sub_options_t so;
    tern_sub_options_init(&so);
    so.group = gname;
    so.start = start;
    so.credit = o->credit;
    tern_err_t rc = tern_subscribe(c->client, pattern, &so, s_on_msg, c, &c->sub);
    if (rc != TERN_OK) {
        fprintf(stderr, "ternctl: bench: subscribe %s: %s (%s)\n", pattern, tern_strerror(rc),
                tern_last_reason());
        return 1;
    }
    return 0;
}

//  ---------------------------------------------------------------------------
//  Running

static uint64_t s_published(const s_bench_t *b) {
    uint64_t n = 0;
    for (uint32_t i = 0; i < b->o->producers; i++) {
        n += atomic_load(&b->prods[i].done);
    }
    return n;
}

//  Starts producers (they connect first, then wait for GO), runs them, joins.
//  With LAT, keeps latency samples. Returns 0 or 1.
static int s_publish_phase(s_bench_t *b, bool lat, uint32_t window) {
    const s_opts_t *o = b->o;
    b->prods = tern_alloc(o->producers * sizeof(s_prod_t));
    uint64_t per = o->msgs / o->producers, extra = o->msgs % o->producers, first = 0;
    int rc = 0;
    for (uint32_t i = 0; i < o->producers; i++) {
        s_prod_t *p = &b->prods[i];
        p->index = i;
        p->first = first;
        p->count = per + (i < extra ? 1 : 0);
        first += p->count;
        p->client = s_connect(o, "ternctl-bench-pub", window, o->dedup);
        if (!p->client) {
            return 1;
        }
        if (lat) {
            p->lat = tern_alloc(p->count * sizeof(uint64_t));
            if (o->mode != S_SYNC) {
                p->sent_ns = tern_alloc(p->count * sizeof(uint64_t));
            }
        }
    }
    atomic_store(&b->go, false);
    for (uint32_t i = 0; i < o->producers; i++) {
        if (pthread_create(&b->prods[i].thread, NULL, s_producer, &b->prods[i]) != 0) {
            fprintf(stderr, "ternctl: bench: cannot start a thread\n");
            abort();
        }
    }
    return rc;
}

//  Waits until the producers are done and (pubsub/sub) WANT deliveries
//  arrived; prints progress. Returns 0, or 1 on timeout.
static int s_wait(s_bench_t *b, bool producers, uint64_t want) {
    const s_opts_t *o = b->o;
    uint64_t last_progress = s_now_ns(), last_print = last_progress, last_count = 0;
    uint64_t prev_pub = 0, prev_del = 0;
    for (;;) {
        uint64_t pub = producers ? s_published(b) : 0;
        uint64_t del = atomic_load(&b->delivered);
        bool pub_done = !producers || pub >= o->msgs;
        for (uint32_t i = 0; producers && i < o->producers; i++) {
            if (b->prods[i].rc != TERN_OK || atomic_load(&b->prods[i].failed)) {
                pub_done = true; //  an error: stop waiting
            }
        }
        if (pub_done && del >= want) {
            return 0;
        }
        uint64_t now = s_now_ns();
        if (pub + del != last_count) {
            last_count = pub + del;
            last_progress = now;
        } else if (now - last_progress > (uint64_t)o->timeout_ms * 1000000ull) {
            fprintf(stderr,
                    "ternctl: bench: no progress for %lld ms (published %llu/%llu, "
                    "delivered %llu/%llu)\n",
                    (long long)o->timeout_ms, (unsigned long long)pub, (unsigned long long)o->msgs,
                    (unsigned long long)del, (unsigned long long)want);
            return 1;
        }
        if (!o->quiet && now - last_print >= 1000000000ull) {
            double dt = (double)(now - last_print) / 1e9;
            fprintf(stderr, "bench %s %s: %.1fs published %llu (%.0f/s) delivered %llu (%.0f/s)\n",
                    o->mode_name, b->phase, (double)(now - b->start_ns) / 1e9,
                    (unsigned long long)pub, (double)(pub - prev_pub) / dt, (unsigned long long)del,
                    (double)(del - prev_del) / dt);
            prev_pub = pub;
            prev_del = del;
            last_print = now;
        }
        s_sleep_ns(2000000);
    }
}

//  Joins producers, checks their errors. Returns 0 or 1.
static int s_join(s_bench_t *b) {
    int rc = 0;
    for (uint32_t i = 0; i < b->o->producers; i++) {
        s_prod_t *p = &b->prods[i];
        pthread_join(p->thread, NULL);
        int err = atomic_load(&p->first_error);
        if (p->rc != TERN_OK || err) {
            int code = err ? err : p->rc;
            fprintf(stderr, "ternctl: bench: producer %u: %llu failed: %s (%s) %s\n", (unsigned)i,
                    (unsigned long long)atomic_load(&p->failed), tern_strerror(code),
                    tern_errname(code), tern_last_reason());
            rc = 1;
        }
    }
    return rc;
}

static void s_free(s_bench_t *b) {
    for (uint32_t i = 0; b->cons && i < b->ncons; i++) {
        tern_client_destroy(&b->cons[i].client);
        free(b->cons[i].lat);
    }
    free(b->cons);
    for (uint32_t i = 0; b->prods && i < b->o->producers; i++) {
        tern_client_destroy(&b->prods[i].client);
        free(b->prods[i].lat);
        free(b->prods[i].sent_ns);
    }
    free(b->prods);
}

//  Collects every latency sample into one sorted array; returns it (owned) and *N.
static uint64_t *s_collect(s_bench_t *b, size_t *n_p) {
    size_t n = 0;
    for (uint32_t i = 0; b->prods && i < b->o->producers; i++) {
        n += atomic_load(&b->prods[i].nlat);
    }
    for (uint32_t i = 0; b->cons && i < b->ncons; i++) {
        n += atomic_load(&b->cons[i].nlat);
    }
    uint64_t *all = tern_alloc(n * sizeof(uint64_t));
    size_t k = 0;
    for (uint32_t i = 0; b->prods && i < b->o->producers; i++) {
        if (b->prods[i].lat) {
            size_t m = atomic_load(&b->prods[i].nlat);
            memcpy(all + k, b->prods[i].lat, m * sizeof(uint64_t));
            k += m;
        }
    }
    for (uint32_t i = 0; b->cons && i < b->ncons; i++) {
        if (b->cons[i].lat) {
            size_t m = atomic_load(&b->cons[i].nlat);
            memcpy(all + k, b->cons[i].lat, m * sizeof(uint64_t));
            k += m;
        }
    }
    bench_sort_u64(all, k);
    *n_p = k;
    return all;
}

//  The result as one JSON object; P50..P999 are numbers or null.
static void s_report_json(const s_opts_t *o, const char *name, const char *lat_what, double secs,
                          uint64_t delivered, const char *p50, const char *p99, const char *p999) {
    double rate = secs > 0 ? (double)o->msgs / secs : 0;
    char numbers[512];
    snprintf(numbers, sizeof numbers,
             ",\"msgs\":%llu,\"secs\":%.4f,\"msgs_per_s\":%.0f,\"MB_per_s\":%.1f,\"p50_us\":%s,"
             "\"p99_us\":%s,\"p999_us\":%s,\"delivered\":%llu,\"size\":%zu,\"window\":%u,"
             "\"producers\":%u,\"consumers\":%u,\"groups\":%u,\"topics\":%u}",
             (unsigned long long)o->msgs, secs, rate, rate * (double)o->size / 1e6, p50, p99, p999,
             (unsigned long long)delivered, o->size, (unsigned)o->window, (unsigned)o->producers,
             (unsigned)o->consumers, (unsigned)o->groups, (unsigned)o->topics);
    tern_json_t b;
    tern_json_init(&b);
    tern_json_raw(&b, "{");
    tern_json_key_str(&b, "name", name);
    tern_json_key_str(&b, "mode", o->mode_name);
    tern_json_key_str(&b, "lat", lat_what);
    tern_json_raw(&b, numbers);
    printf("%s\n", b.data);
    fflush(stdout);
    tern_json_free(&b);
}

static void s_report(s_bench_t *b, double secs, uint64_t delivered, const char *lat_what) {
    const s_opts_t *o = b->o;
    size_t nlat;
    uint64_t *lat = s_collect(b, &nlat);
    double rate = secs > 0 ? (double)o->msgs / secs : 0;
    double mbps = rate * (double)o->size / 1e6;
    char name[128];
    snprintf(name, sizeof name, "%s", o->name ? o->name : "");
    if (!o->name) {
        snprintf(name, sizeof name, "tern_%s", o->mode_name);
    }
    char p50[32] = "NA", p99[32] = "NA", p999[32] = "NA";
    if (nlat > 0) {
        snprintf(p50, sizeof p50, "%.1f", bench_pct_us(lat, nlat, 50));
        snprintf(p99, sizeof p99, "%.1f", bench_pct_us(lat, nlat, 99));
        snprintf(p999, sizeof p999, "%.1f", bench_pct_us(lat, nlat, 99.9));
    } else {
        lat_what = "none";
    }
    bool consumed = o->mode == S_SUB || o->mode == S_PUBSUB;
    if (o->json) {
        s_report_json(o, name, lat_what, secs, delivered, nlat ? p50 : "null", nlat ? p99 : "null",
                      nlat ? p999 : "null");
        free(lat);
        return;
    }
    //  The shared RESULT line (../shared/bench/common.h print_result).
    printf("RESULT name=%s msgs=%llu secs=%.4f msgs_per_s=%.0f p50_us=%s p99_us=%s lat=%s", name,
           (unsigned long long)o->msgs, secs, rate, p50, p99, lat_what);
    printf(" size=%zu window=%u producers=%u consumers=%u groups=%u topics=%u dedup=%d "
           "durability=%s storage=tern p999_us=%s MB_per_s=%.1f",
           o->size, (unsigned)o->window, (unsigned)o->producers, (unsigned)o->consumers,
           (unsigned)o->groups, (unsigned)o->topics, o->dedup ? 1 : 0, o->durability, p999, mbps);
    if (o->rate > 0) {
        printf(" rate=%.0f", o->rate);
    }
    if (consumed) {
        printf(" delivered=%llu delivered_per_s=%.0f", (unsigned long long)delivered,
               secs > 0 ? (double)delivered / secs : 0.0);
    }
    printf("\nmsgs        %llu\nsecs        %.4f\nmsgs_per_s  %.0f\nMB_per_s    %.1f\n"
           "p50_us      %s\np99_us      %s\np999_us     %s\n",
           (unsigned long long)o->msgs, secs, rate, mbps, p50, p99, p999);
    if (consumed) {
        printf("delivered   %llu\n", (unsigned long long)delivered);
    }
    fflush(stdout);
    free(lat);
}

//  Runs the mode: *SECS_P the timed phase, *WANT_P the deliveries expected,
//  *LAT_P what the latency samples measure. Returns 0 or 1.
static int s_run(s_bench_t *b, double *secs_p, uint64_t *want_p, const char **lat_p) {
    const s_opts_t *o = b->o;
    int rc = 0;
    if (o->mode == S_PUB || o->mode == S_SYNC) {
        *lat_p = o->mode == S_PUB ? "publish_to_ack" : "publish_round_trip";
        rc = s_publish_phase(b, true, o->window);
        if (rc == 0) {
            b->start_ns = s_now_ns();
            atomic_store(&b->go, true);
            rc = s_wait(b, true, 0);
            *secs_p = (double)(s_now_ns() - b->start_ns) / 1e9;
            rc |= s_join(b);
        }
    } else if (o->mode == S_PUBSUB) {
        *lat_p = "publish_to_delivery";
        b->ncons = o->groups * o->consumers;
        b->cons = tern_alloc(b->ncons * sizeof(s_cons_t));
        for (uint32_t i = 0; rc == 0 && i < b->ncons; i++) {
            rc = s_consumer_start(b, &b->cons[i], i / o->consumers, TERN_FROM_FIRST, true);
        }
        if (rc == 0) {
            rc = s_publish_phase(b, false, o->window);
        }
        if (rc == 0) {
            *want_p = o->msgs * o->groups;
            b->start_ns = s_now_ns();
            atomic_store(&b->go, true);
            rc = s_wait(b, true, *want_p);
            *secs_p = (double)(s_now_ns() - b->start_ns) / 1e9;
            rc |= s_join(b);
        }
    } else { //  S_SUB
        if (o->fill) {
            b->phase = "fill";
            rc = s_publish_phase(b, false, o->window > 1024 ? o->window : 1024);
            if (rc == 0) {
                b->start_ns = s_now_ns();
                atomic_store(&b->go, true);
                rc = s_wait(b, true, 0);
                rc |= s_join(b);
            }
            if (rc == 0 && !o->quiet) {
                fprintf(stderr, "bench sub: backlog of %llu stored in %.1fs\n",
                        (unsigned long long)o->msgs, (double)(s_now_ns() - b->start_ns) / 1e9);
            }
        }
        if (rc == 0) {
            b->phase = "consume";
            *want_p = o->msgs;
            b->ncons = o->consumers;
            b->cons = tern_alloc(b->ncons * sizeof(s_cons_t));
            b->start_ns = s_now_ns();
            for (uint32_t i = 0; rc == 0 && i < b->ncons; i++) {
                rc = s_consumer_start(b, &b->cons[i], 0, TERN_FROM_FIRST, false);
            }
            if (rc == 0) {
                rc = s_wait(b, false, *want_p);
            }
            *secs_p = (double)(s_now_ns() - b->start_ns) / 1e9;
        }
    }
    return rc;
}

int ternctl_bench_main(int argc, char **argv) {
    s_opts_t o = {.msgs = 100000,
                  .size = 1024,
                  .window = TERN_DEFAULT_WINDOW,
                  .producers = 1,
                  .consumers = 1,
                  .topics = 1,
                  .groups = 1,
                  .credit = 1000,
                  .dedup = true,
                  .fill = true,
                  .timeout_ms = 30000,
                  .durability = "fsync"};
    o.server = getenv("TERN_SERVER");
    int prc = s_parse(argc, argv, &o);
    if (prc) {
        return prc < 0 ? 0 : prc;
    }
    if (!o.prefix[0]) {
        uint32_t r = 0;
        if (getrandom(&r, sizeof r, 0) != sizeof r) {
            r = (uint32_t)s_now_ns() ^ (uint32_t)getpid();
        }
        snprintf(o.prefix, sizeof o.prefix, "bench.%08x", (unsigned)r);
    }
    s_bench_t b = {.o = &o, .phase = "run"};
    s_bench = &b;
    int rc = s_topics_before(&b);
    double secs = 0;
    uint64_t want = 0;
    const char *lat_what = "none";
    if (rc == 0) {
        rc = s_run(&b, &secs, &want, &lat_what);
    }
    uint64_t delivered = atomic_load(&b.delivered);
    if (rc == 0 && want && delivered != want) {
        //  more than asked: redeliveries (at-least-once); say so, still a result
        fprintf(stderr, "ternctl: bench: delivered %llu, expected %llu\n",
                (unsigned long long)delivered, (unsigned long long)want);
    }
    uint64_t ack_fail = 0;
    for (uint32_t i = 0; i < b.ncons; i++) {
        ack_fail += atomic_load(&b.cons[i].ack_fail);
    }
    if (ack_fail) {
        fprintf(stderr, "ternctl: bench: %llu acks refused\n", (unsigned long long)ack_fail);
    }
    if (rc == 0) {
        s_report(&b, secs, delivered, lat_what);
    }
    s_free(&b);
    rc |= s_topics_cleanup(&b);
    free(b.existed);
    s_bench = NULL;
    return rc;
}
