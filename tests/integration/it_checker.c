/*  it_checker.c - a recorded history proved by tern-check (tools/checker):
    a producer with a producer id publishes through libtern while ternd is
    SIGKILLed twice (once the client is replaced and resumes from its first
    unacknowledged producer_seq, once libtern resends by itself), a group
    consumes across a third kill, and the final log and groups come from
    `ternctl view` and `ternctl groups`. tern-check must find nothing, and
    must find the loss once an acknowledged message is cut from the dump.

    The history format is docs/checker.md's; the fault tests of the cluster
    (issue 14) record theirs the same way.
*/
#include "harness.h"

#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_TOPIC    "it.chk"
#define S_PRODUCER "CHK-P"
#define S_GROUP    "chk-g"
#define S_COUNT    3000 //  messages, producer_seq 1..S_COUNT
#define S_KILL_1   600  //  phase 1 kills ternd after queueing this one
#define S_KILL_2   1800 //  phase 2 kills and restarts ternd after queueing this one
#define S_RESEND   32   //  acknowledged messages phase 2 sends again

//  What the test saw, as history lines, and the state of each producer_seq.
typedef struct {
    FILE *file;                     //  the history being written
    const char *client;             //  the publishing client's name (its "client" field)
    _Atomic int state[S_COUNT + 1]; //  per producer_seq: 0 in flight, 1 ok, 2 failed
    uint64_t msg_id[S_COUNT + 1];   //  per producer_seq: the acknowledged msg_id
    bool delivered[S_COUNT + 1];    //  per producer_seq: seen by the group
    size_t distinct;                //  producer_seqs delivered
    atomic_int duplicates;          //  acks flagged duplicate (dedup answered)
} s_hist_t;

//  Publish completion (on libtern's I/O thread): one "publish" line.
static void s_on_publish(const tern_pub_result_t *res, void *arg) {
    s_hist_t *h = arg;
    unsigned long long pseq = res->producer_seq;
    if (res->code == TERN_OK) {
        fprintf(h->file,
                "{\"ev\":\"publish\",\"client\":\"%s\",\"producer\":\"" S_PRODUCER
                "\",\"producer_seq\":%llu,\"topic\":\"" S_TOPIC "\",\"outcome\":\"ok\","
                "\"msg_id\":%llu,\"seq\":%llu,\"duplicate\":%s}\n",
                h->client, pseq, (unsigned long long)res->msg_id, (unsigned long long)res->seq,
                res->duplicate ? "true" : "false");
    } else {
        fprintf(h->file,
                "{\"ev\":\"publish\",\"client\":\"%s\",\"producer\":\"" S_PRODUCER
                "\",\"producer_seq\":%llu,\"topic\":\"" S_TOPIC "\",\"outcome\":\"err\","
                "\"code\":%d}\n",
                h->client, pseq, (int)res->code);
    }
    if (res->code == TERN_OK && res->duplicate) {
        atomic_fetch_add(&h->duplicates, 1);
    }
    if (pseq >= 1 && pseq <= S_COUNT) {
        h->msg_id[pseq] = res->code == TERN_OK ? res->msg_id : h->msg_id[pseq];
        atomic_store(&h->state[pseq], res->code == TERN_OK ? 1 : 2);
    }
}

static tern_client_t *s_client(it_broker_t *b, const char *name) {
    tern_client_options_t options;
    tern_client_options_init(&options);
    options.name = name;
    options.producer_id = S_PRODUCER;
    options.window = 64;
    options.backoff_min_ms = 50;
    options.backoff_max_ms = 300;
    return it_client(b, &options);
}

//  Queues producer_seq FIRST..LAST on CLIENT; after queueing KILL_AT (0 =
//  never), SIGKILLs ternd and, if RESTART, starts it again at once.
static void s_publish(s_hist_t *h, tern_client_t *client, it_broker_t *b, int first, int last,
                      int kill_at, bool restart) {
    for (int seq = first; seq <= last; seq++) {
        char data[32];
        snprintf(data, sizeof data, "chk-%d", seq);
        tern_pub_options_t msg;
        tern_pub_options_init(&msg);
        msg.topic = S_TOPIC;
        msg.payload = data;
        msg.size = strlen(data);
        msg.producer_seq = (uint64_t)seq;
        tern_err_t rc = tern_publish_async(client, &msg, s_on_publish, h);
        cr_assert_eq(rc, TERN_OK, "publish %d: %s", seq, tern_last_reason());
        if (seq == kill_at) {
            size_t inflight = tern_client_inflight(client);
            fprintf(stderr, "it_checker: SIGKILL with %zu publishes in flight\n", inflight);
            //  The restart is there for libtern to resend its window: an
            //  empty one (as a 2 ms pause here always gave) tests nothing.
            cr_assert(!restart || inflight > 0, "nothing in flight at the SIGKILL");
            it_broker_kill(b);
            if (!restart) {
                return;
            }
            cr_assert(it_broker_start(b), "restart after SIGKILL failed");
        }
    }
}

//  The first producer_seq not acknowledged yet (S_COUNT + 1 if none).
static int s_first_unacked(s_hist_t *h) {
    int seq = 1;
    while (seq <= S_COUNT && atomic_load(&h->state[seq]) == 1) {
        seq++;
    }
    return seq;
}

//  One delivery: a "deliver" line, the ack, an "ack" line when it was sent.
static void s_on_delivery(s_hist_t *h, tern_message_t *msg) {
    unsigned long long msg_id = tern_message_id(msg), pseq = tern_message_producer_seq(msg);
    fprintf(h->file,
            "{\"ev\":\"deliver\",\"group\":\"" S_GROUP "\",\"consumer\":\"chk-consumer\","
            "\"topic\":\"%s\",\"msg_id\":%llu,\"seq\":%llu,\"delivery_count\":%u,"
            "\"producer\":\"%s\",\"producer_seq\":%llu}\n",
            tern_message_topic(msg), msg_id, (unsigned long long)tern_message_seq(msg),
            tern_message_delivery_count(msg), tern_message_producer(msg), pseq);
    if (tern_message_ack(msg, false) == TERN_OK) {
        fprintf(h->file, "{\"ev\":\"ack\",\"group\":\"" S_GROUP "\",\"msg_id\":%llu}\n", msg_id);
    }
    if (pseq >= 1 && pseq <= S_COUNT && !h->delivered[pseq]) {
        h->delivered[pseq] = true;
        h->distinct++;
    }
}

//  Consumes the group until every producer_seq was delivered (or 90 s
//  passed: tern-check then names what was not), killing and restarting
//  ternd once half of them were.
static void s_consume(s_hist_t *h, it_broker_t *b) {
    tern_client_t *client = s_client(b, "chk-consumer");
    tern_sub_options_t options;
    tern_sub_options_init(&options);
    options.group = S_GROUP;
    options.start = TERN_FROM_FIRST;
    tern_subscription_t *sub = NULL;
    cr_assert_eq(tern_subscribe(client, S_TOPIC, &options, NULL, NULL, &sub), TERN_OK,
                 "subscribe: %s", tern_last_reason());
    bool killed = false;
    int64_t deadline = it_now_ms() + 90000;
    while (h->distinct < S_COUNT && it_now_ms() < deadline) {
        tern_message_t *msg = NULL;
        if (tern_subscription_next(sub, 500, &msg) == TERN_OK) {
            s_on_delivery(h, msg);
            tern_message_destroy(&msg);
        }
        if (!killed && h->distinct >= S_COUNT / 2) {
            killed = true;
            it_broker_kill(b);
            cr_assert(it_broker_start(b), "restart during consumption failed");
        }
    }
    fprintf(stderr, "it_checker: %zu of %d delivered\n", h->distinct, S_COUNT);
    tern_client_destroy(&client);
}

//  Appends ternctl --json ARG TOPIC's lines to the history as EV events,
//  with "node": NODE when not NULL.
static void s_dump(s_hist_t *h, it_broker_t *b, const char *arg, const char *ev, const char *node) {
    it_result_t r;
    if (strcmp(arg, "view") == 0) {
        it_ctl(&r, b, 60000, "view", S_TOPIC, "--count", "1000000", NULL);
    } else {
        it_ctl(&r, b, 60000, arg, S_TOPIC, NULL);
    }
    it_assert_ok(&r, arg);
    char **lines;
    size_t n = it_split_lines(r.out, &lines);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(lines[i][0], '{', "ternctl %s printed '%s'", arg, lines[i]);
        fprintf(h->file, "{\"ev\":\"%s\",%s%s%s%s\n", ev, node ? "\"node\":\"" : "",
                node ? node : "", node ? "\"," : "", lines[i] + 1);
    }
    free(lines);
    it_result_free(&r);
}

//  Runs tern-check on PATH; its output in *R (caller frees).
static int s_tern_check(it_result_t *r, const char *path) {
    char bin[512];
    snprintf(bin, sizeof bin, "%s/tern-check", TERN_BIN_DIR);
    char *argv[] = {bin, (char *)path, NULL};
    return it_run(r, 120000, NULL, argv);
}

//  Copies the history at FROM to TO without the stored line of
//  producer_seq PSEQ; returns false if there was none.
static bool s_cut_stored(const char *from, const char *to, int pseq) {
    char *text = it_read_file(from, NULL);
    cr_assert(text, "cannot read %s", from);
    char needle[64];
    snprintf(needle, sizeof needle, "\"producer_seq\":%d,", pseq);
    FILE *out = fopen(to, "w");
    cr_assert(out);
    char **lines;
    size_t n = it_split_lines(text, &lines);
    bool cut = false;
    for (size_t i = 0; i < n; i++) {
        if (!cut && strncmp(lines[i], "{\"ev\":\"stored\"", 14) == 0 && strstr(lines[i], needle)) {
            cut = true;
            continue;
        }
        fprintf(out, "%s\n", lines[i]);
    }
    fclose(out);
    free(lines);
    free(text);
    return cut;
}

Test(checker, kills_then_tern_check, .fini = it_teardown, .timeout = 300) {
    it_broker_t *b = it_start_broker("--heartbeat", "200ms", "--heartbeat-timeout", "5s", NULL);
    s_hist_t *h = calloc(1, sizeof *h);
    char path[400];
    snprintf(path, sizeof path, "%s/history.jsonl", b->root);
    h->file = fopen(path, "w");
    cr_assert(h->file, "cannot write %s", path);

    //  Phase 1: client A is mid-stream when ternd dies; it is closed (what
    //  was in flight fails with TERN_ECLOSED: stored or not, unknown).
    h->client = "A";
    tern_client_t *a = s_client(b, "chk-a");
    s_publish(h, a, b, 1, S_KILL_1, S_KILL_1, false);
    tern_client_destroy(&a);
    cr_assert(it_broker_start(b), "restart after the first SIGKILL failed");

    //  Phase 2: client B resumes at the first unacknowledged producer_seq,
    //  and from S_RESEND before it, as a client whose last PUBACKs were lost
    //  would: dedup must answer those with their original msg_ids. ternd
    //  dies again under it and libtern resends its window by itself.
    int unacked = s_first_unacked(h);
    cr_assert(unacked > S_RESEND && unacked <= S_KILL_1 + 1, "first unacknowledged: %d", unacked);
    int resume = unacked - S_RESEND;
    fprintf(stderr, "it_checker: client B resumes at producer_seq %d (first unacked %d)\n", resume,
            unacked);
    h->client = "B";
    tern_client_t *client = s_client(b, "chk-b");
    s_publish(h, client, b, resume, S_COUNT, S_KILL_2, true);
    cr_assert_eq(tern_flush(client, 120000), TERN_OK, "flush: %s", tern_last_reason());
    tern_client_destroy(&client);
    fprintf(stderr, "it_checker: %d acks were duplicates (dedup)\n", atomic_load(&h->duplicates));
    cr_assert_geq(atomic_load(&h->duplicates), S_RESEND, "dedup did not answer the resends");
    cr_assert_eq(s_first_unacked(h), S_COUNT + 1, "producer_seq %d never acknowledged",
                 s_first_unacked(h));

    //  Phase 3: the group consumes across a third kill; then the state.
    s_consume(h, b);
    fprintf(h->file, "{\"ev\":\"node\",\"node\":\"n1\",\"topic\":\"" S_TOPIC "\"}\n");
    s_dump(h, b, "view", "stored", "n1");
    s_dump(h, b, "groups", "group", NULL);
    cr_assert_eq(fclose(h->file), 0);

    it_result_t r;
    int rc = s_tern_check(&r, path);
    fprintf(stderr, "it_checker: %s", r.out);
    cr_assert_eq(rc, 0, "tern-check exit %d:\n%s%s", rc, r.out, r.err);
    char want[64];
    snprintf(want, sizeof want, "acked=%d ", S_COUNT);
    cr_assert(strstr(r.out, want) && strstr(r.out, " lost=0 "), "summary:\n%s", r.out);
    it_result_free(&r);

    //  The same history without the log's copy of producer_seq 700: the
    //  checker names that acknowledged message as lost.
    char cut[400];
    snprintf(cut, sizeof cut, "%s/history-cut.jsonl", b->root);
    cr_assert(s_cut_stored(path, cut, 700), "no stored line for producer_seq 700");
    rc = s_tern_check(&r, cut);
    cr_assert_eq(rc, 1, "tern-check exit %d on a history with a lost message:\n%s%s", rc, r.out,
                 r.err);
    snprintf(want, sizeof want, "(a) acknowledged msg_id %llu", (unsigned long long)h->msg_id[700]);
    cr_assert(strstr(r.out, want) && strstr(r.out, "is missing from node n1's log") &&
                  strstr(r.out, " lost=1 "),
              "want '%s':\n%s", want, r.out);
    it_result_free(&r);
    free(h);
}
