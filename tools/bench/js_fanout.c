/*  js_fanout.c - the NATS JetStream side of vs-nats.sh's fan-out workload.

    tern's fan-out is `ternctl bench pubsub --groups 100`: one producer (async,
    window 256, deduplicated), 100 durable groups with one consumer each, every
    group gets every message and acks it. This is the same thing on JetStream
    2.9: one publisher connection publishes -n messages of -s bytes with
    js_PublishAsync (window -w, a unique Nats-Msg-Id each unless -D) into a
    fresh stream FANOUT (subject fanout.data, one replica); -c durable push
    consumers (explicit ack, MaxAckPending -A, deliver-new), each with one
    subscriber on its own connection (as ternctl gives each consumer its own
    client), receive every message and ack it from their callback.

    Each payload carries its send time (CLOCK_MONOTONIC ns) in bytes 0..7 and
    its index in bytes 8..15, so the latency is publish -> delivery callback,
    as in `js_bench -m pubsub` and `ternctl bench pubsub`. Time runs from the
    first publish to the last delivery; msgs_per_s = n / secs and
    delivered_per_s = distinct deliveries / secs (the row vs-nats.sh compares).
    One RESULT line in the shared bench format (../shared/bench/common.h).

    Not part of tern: a benchmark peer built only when libnats-dev is there
    (`scripts/bootstrap bench`). The stream and its consumers are deleted at
    the end. Exit status 0 on success, 1 on any failure, 2 on bad usage.
*/
#include <errno.h>
#include <nats/nats.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_pct.h"

#define S_STREAM     "FANOUT"
#define S_SUBJECT    "fanout.data"
#define S_STALL_SECS 30   /* give up after this long without a delivery */
#define S_MAX_CONS   1000 /* consumers */

typedef struct {
    const char *url;     //  -u server URL
    const char *name;    //  -N RESULT name (NULL = js_fanout_c<C>)
    uint64_t msgs;       //  -n messages published
    int size;            //  -s payload bytes (>= 16)
    int window;          //  -w PublishAsync.MaxPending
    int consumers;       //  -c durable consumers, one subscriber each
    int max_ack_pending; //  -A per consumer
    bool dedup;          //  a Nats-Msg-Id on every publish (-D clears)
    bool asap;           //  -F natsOptions_SetSendAsap on every connection
    bool memory;         //  -S memory: memory storage instead of file
} s_opts_t;

//  One consumer. Its callback runs on its subscription's own delivery thread,
//  so only that thread writes here; the main thread reads GOT and LAST_NS.
typedef struct {
    uint64_t n;                //  messages expected
    uint64_t *lat;             //  publish -> delivery in ns, arrival order, owned
    unsigned char *seen;       //  per message index: delivered already, owned
    _Atomic uint64_t got;      //  distinct messages received
    _Atomic uint64_t last_ns;  //  time of the latest distinct delivery
    _Atomic uint64_t dups;     //  redeliveries
    _Atomic uint64_t bad;      //  payloads that are not ours
    _Atomic uint64_t ack_fail; //  natsMsg_Ack errors
    natsConnection *nc;        //  its connection, owned
    jsCtx *js;                 //  its JetStream context, owned
    natsSubscription *sub;     //  its subscription, owned
} s_cons_t;

static _Atomic uint64_t s_pub_errors; //  negative PubAcks

static uint64_t s_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void s_sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

//  True if S is NATS_OK; otherwise says what failed.
static bool s_ok(natsStatus s, const char *what) {
    if (s != NATS_OK) {
        fprintf(stderr, "js_fanout: %s: %s (%s)\n", what, natsStatus_GetText(s),
                nats_GetLastError(NULL));
    }
    return s == NATS_OK;
}

static void s_on_puback(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *arg) {
    (void)js;
    (void)arg;
    if (pa == NULL) {
        if (atomic_fetch_add(&s_pub_errors, 1) == 0 && pae) {
            fprintf(stderr, "js_fanout: publish error %d %s\n", pae->ErrCode,
                    pae->ErrText ? pae->ErrText : "");
        }
    }
    natsMsg_Destroy(msg);
}

static void s_on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *arg) {
    (void)nc;
    (void)sub;
    s_cons_t *c = arg;
    uint64_t t = s_now_ns(), sent = 0, idx = UINT64_MAX;
    const char *data = natsMsg_GetData(msg);
    if (data && natsMsg_GetDataLength(msg) >= 16) {
        memcpy(&sent, data, 8);
        memcpy(&idx, data + 8, 8);
    }
    if (natsMsg_Ack(msg, NULL) != NATS_OK) {
        atomic_fetch_add(&c->ack_fail, 1);
    }
    if (idx >= c->n) {
        atomic_fetch_add(&c->bad, 1);
    } else if (c->seen[idx]) {
        atomic_fetch_add(&c->dups, 1);
    } else {
        c->seen[idx] = 1;
        uint64_t k = atomic_load_explicit(&c->got, memory_order_relaxed);
        c->lat[k] = t - sent;
        atomic_store_explicit(&c->last_ns, t, memory_order_relaxed);
        atomic_store_explicit(&c->got, k + 1, memory_order_release);
    }
    natsMsg_Destroy(msg);
}

static int s_usage(const char *why) {
    fprintf(stderr,
            "js_fanout: %s\n"
            "usage: js_fanout [-u URL] [-n MSGS] [-s BYTES] [-w WINDOW] [-c CONSUMERS]\n"
            "                 [-A MAX_ACK_PENDING] [-D] [-F] [-S file|memory] [-N NAME]\n",
            why);
    return 2;
}

static int s_parse(int argc, char **argv, s_opts_t *o) {
    int opt;
    while ((opt = getopt(argc, argv, "u:n:s:w:c:A:DFS:N:")) != -1) {
        switch (opt) {
            case 'u':
                o->url = optarg;
                break;
            case 'n':
                o->msgs = strtoull(optarg, NULL, 10);
                break;
            case 's':
                o->size = atoi(optarg);
                break;
            case 'w':
                o->window = atoi(optarg);
                break;
            case 'c':
                o->consumers = atoi(optarg);
                break;
            case 'A':
                o->max_ack_pending = atoi(optarg);
                break;
            case 'D':
                o->dedup = false;
                break;
            case 'F':
                o->asap = true;
                break;
            case 'S':
                o->memory = strcmp(optarg, "memory") == 0;
                break;
            case 'N':
                o->name = optarg;
                break;
            default:
                return s_usage("unknown option");
        }
    }
    if (optind < argc) {
        return s_usage("unexpected argument");
    }
    if (o->msgs == 0 || o->size < 16 || o->window < 1 || o->max_ack_pending < 1) {
        return s_usage("need -n >= 1, -s >= 16 (send time and index), -w and -A >= 1");
    }
    if (o->consumers < 1 || o->consumers > S_MAX_CONS) {
        return s_usage("-c must be 1..1000");
    }
    return 0;
}

//  Deletes the stream if present and creates it empty.
static bool s_stream(jsCtx *js, const s_opts_t *o) {
    jsErrCode jerr = 0;
    js_DeleteStream(js, S_STREAM, NULL, &jerr); //  "not found" is fine
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    const char *subjects[] = {S_SUBJECT};
    cfg.Name = S_STREAM;
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = o->memory ? js_MemoryStorage : js_FileStorage;
    cfg.Replicas = 1;
    jsStreamInfo *si = NULL;
    bool ok = s_ok(js_AddStream(&si, js, &cfg, NULL, &jerr), "js_AddStream");
    jsStreamInfo_Destroy(si);
    return ok;
}

//  Consumer I: its own connection, a durable push consumer, one subscriber.
static bool s_cons_start(s_cons_t *c, int i, natsOptions *nopts, const s_opts_t *o) {
    c->n = o->msgs;
    c->lat = calloc(o->msgs, sizeof *c->lat);
    c->seen = calloc(o->msgs, 1);
    if (!c->lat || !c->seen) {
        fprintf(stderr, "js_fanout: out of memory\n");
        return false;
    }
    if (!s_ok(natsConnection_Connect(&c->nc, nopts), "connect (consumer)") ||
        !s_ok(natsConnection_JetStream(&c->js, c->nc, NULL), "JetStream context")) {
        return false;
    }
    char durable[32];
    snprintf(durable, sizeof durable, "fan-%d", i);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = S_STREAM;
    so.ManualAck = true;
    so.Config.Durable = durable;
    so.Config.AckPolicy = js_AckExplicit;
    so.Config.DeliverPolicy = js_DeliverNew;
    so.Config.MaxAckPending = o->max_ack_pending;
    jsErrCode jerr = 0;
    if (!s_ok(js_Subscribe(&c->sub, c->js, S_SUBJECT, s_on_msg, c, NULL, &so, &jerr),
              "js_Subscribe")) {
        return false;
    }
    //  No client-side drop: MaxAckPending bounds what is queued.
    return s_ok(natsSubscription_SetPendingLimits(c->sub, -1, -1), "SetPendingLimits");
}

static void s_cons_stop(s_cons_t *c) {
    if (c->sub) {
        natsSubscription_Unsubscribe(c->sub); //  deletes the consumer js_Subscribe made
        natsSubscription_Destroy(c->sub);
    }
    jsCtx_Destroy(c->js);
    natsConnection_Destroy(c->nc);
    free(c->lat);
    free(c->seen);
    memset(c, 0, sizeof *c);
}

//  Publishes every message; true once all were acknowledged without error.
static bool s_publish(jsCtx *js, const s_opts_t *o, uint64_t *t0_p, uint64_t *t_pub_p) {
    unsigned char *payload = calloc(1, (size_t)o->size);
    if (!payload) {
        return false;
    }
    for (int i = 16; i < o->size; i++) {
        payload[i] = (unsigned char)(i * 131 + 7); //  not all zeroes
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 30000;
    char msgid[48];
    bool ok = true;
    uint64_t t0 = s_now_ns();
    for (uint64_t i = 0; i < o->msgs && ok; i++) {
        uint64_t t = s_now_ns();
        memcpy(payload, &t, 8);
        memcpy(payload + 8, &i, 8);
        if (o->dedup) {
            snprintf(msgid, sizeof msgid, "f-%llx-%llu", (unsigned long long)t0,
                     (unsigned long long)i);
            po.MsgId = msgid;
        }
        ok = s_ok(js_PublishAsync(js, S_SUBJECT, payload, o->size, &po), "js_PublishAsync");
    }
    *t_pub_p = s_now_ns();
    ok = ok && s_ok(js_PublishAsyncComplete(js, &po), "js_PublishAsyncComplete");
    free(payload);
    *t0_p = t0;
    return ok && atomic_load(&s_pub_errors) == 0;
}

//  Waits until every consumer has every message, or S_STALL_SECS without one.
static bool s_wait_all(s_cons_t *cons, const s_opts_t *o) {
    uint64_t want = o->msgs * (uint64_t)o->consumers, last = 0, since = s_now_ns();
    for (;;) {
        uint64_t got = 0;
        for (int i = 0; i < o->consumers; i++) {
            got += atomic_load_explicit(&cons[i].got, memory_order_acquire);
        }
        if (got >= want) {
            return true;
        }
        uint64_t t = s_now_ns();
        if (got != last) {
            last = got;
            since = t;
        } else if (t - since > S_STALL_SECS * 1000000000ull) {
            fprintf(stderr, "js_fanout: no delivery for %d s: %llu of %llu delivered\n",
                    S_STALL_SECS, (unsigned long long)got, (unsigned long long)want);
            return false;
        }
        s_sleep_ms(1);
    }
}

//  Prints the RESULT line from every consumer's samples.
static bool s_report(s_cons_t *cons, const s_opts_t *o, uint64_t t0, uint64_t t_pub) {
    uint64_t total = 0, end = t0, dups = 0, bad = 0, ack_fail = 0;
    for (int i = 0; i < o->consumers; i++) {
        total += atomic_load(&cons[i].got);
        uint64_t last = atomic_load(&cons[i].last_ns);
        end = last > end ? last : end;
        dups += atomic_load(&cons[i].dups);
        bad += atomic_load(&cons[i].bad);
        ack_fail += atomic_load(&cons[i].ack_fail);
    }
    uint64_t *lat = malloc(total * sizeof *lat + 1);
    if (!lat) {
        return false;
    }
    size_t n = 0;
    for (int i = 0; i < o->consumers; i++) {
        uint64_t got = atomic_load(&cons[i].got);
        memcpy(lat + n, cons[i].lat, got * sizeof *lat);
        n += got;
    }
    bench_sort_u64(lat, n);
    double secs = (double)(end - t0) / 1e9, pub_secs = (double)(t_pub - t0) / 1e9;
    char defname[32];
    snprintf(defname, sizeof defname, "js_fanout_c%d", o->consumers);
    printf("RESULT name=%s msgs=%llu secs=%.4f msgs_per_s=%.0f p50_us=%.1f p99_us=%.1f "
           "lat=publish_to_delivery size=%d window=%d consumers=%d max_ack_pending=%d dedup=%d "
           "send_asap=%d storage=%s p999_us=%.1f delivered=%llu delivered_per_s=%.0f dups=%llu "
           "pub_per_s=%.0f\n",
           o->name ? o->name : defname, (unsigned long long)o->msgs, secs,
           secs > 0 ? (double)o->msgs / secs : 0.0, bench_pct_us(lat, n, 50),
           bench_pct_us(lat, n, 99), o->size, o->window, o->consumers, o->max_ack_pending,
           o->dedup ? 1 : 0, o->asap ? 1 : 0, o->memory ? "memory" : "file",
           bench_pct_us(lat, n, 99.9), (unsigned long long)total,
           secs > 0 ? (double)total / secs : 0.0, (unsigned long long)dups,
           pub_secs > 0 ? (double)o->msgs / pub_secs : 0.0);
    fflush(stdout);
    free(lat);
    if (bad || ack_fail) {
        fprintf(stderr, "js_fanout: %llu foreign payloads, %llu ack errors\n",
                (unsigned long long)bad, (unsigned long long)ack_fail);
    }
    return bad == 0 && ack_fail == 0;
}

int main(int argc, char **argv) {
    s_opts_t o = {.url = "nats://127.0.0.1:4222",
                  .msgs = 20000,
                  .size = 1024,
                  .window = 256,
                  .consumers = 100,
                  .max_ack_pending = 1000,
                  .dedup = true};
    int rc = s_parse(argc, argv, &o);
    if (rc) {
        return rc;
    }
    rc = 1;
    natsOptions *nopts = NULL;
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    s_cons_t *cons = calloc((size_t)o.consumers, sizeof *cons);
    if (!cons || !s_ok(natsOptions_Create(&nopts), "natsOptions_Create") ||
        !s_ok(natsOptions_SetURL(nopts, o.url), "SetURL") ||
        (o.asap && !s_ok(natsOptions_SetSendAsap(nopts, true), "SetSendAsap")) ||
        !s_ok(natsConnection_Connect(&nc, nopts), "connect")) {
        goto done;
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 30000;
    jo.PublishAsync.MaxPending = o.window;
    jo.PublishAsync.StallWait = 60000; //  block (not fail) while the window is full
    jo.PublishAsync.AckHandler = s_on_puback;
    if (!s_ok(natsConnection_JetStream(&js, nc, &jo), "JetStream context") || !s_stream(js, &o)) {
        goto done;
    }
    for (int i = 0; i < o.consumers; i++) {
        if (!s_cons_start(&cons[i], i, nopts, &o)) {
            goto done;
        }
    }
    uint64_t t0 = 0, t_pub = 0;
    if (s_publish(js, &o, &t0, &t_pub) && s_wait_all(cons, &o) && s_report(cons, &o, t0, t_pub)) {
        rc = 0;
    }
    for (int i = 0; i < o.consumers; i++) {
        natsConnection_Flush(cons[i].nc); //  the acks reach the server before we go
    }
done:
    for (int i = 0; cons && i < o.consumers; i++) {
        s_cons_stop(&cons[i]);
    }
    free(cons);
    if (js) {
        jsErrCode jerr = 0;
        js_DeleteStream(js, S_STREAM, NULL, &jerr);
        jsCtx_Destroy(js);
    }
    natsConnection_Destroy(nc);
    natsOptions_Destroy(nopts);
    nats_Close();
    return rc;
}
