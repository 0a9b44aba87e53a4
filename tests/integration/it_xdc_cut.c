/*  it_xdc_cut.c - a DC cut off from the others by the network (issue 15:
    "a DC cut off from the others for 10 s, 30 s and 300 s (network
    namespaces ...) while every DC takes writes, including the same
    (producer, seq) on both sides").

    Two DCs of three nodes (4 partitions each, lease 2 s), every etcd and
    node in a network namespace of its own (xdc_harness.h, "DCs in network
    namespaces"), the test process in another. Producers of each DC publish
    to two topics the whole time. The cut blackholes every route between
    dc1's namespaces and dc2's, both ways, so the kernel drops what the DCs
    send each other while each DC keeps its etcd, its in-DC replication and
    its clients; a producer "twin" publishes the same (producer, seq) 1-10 in
    both DCs during the cut. After the heal the drills' end
    (it_xdc_finish): converged, `ternctl cluster verify` in every DC, a
    group per DC reads every topic, tern-check --dcs 2 (every acknowledged
    message exactly once in every DC, twins resolved the same way).

    Detection: a watcher thread asks every node for `ternctl peers` every
    50 ms and notes when its link to the other DC stops being live and when
    it is live again. Asserted only that every link saw the cut and came
    back (with deadlines); the figures go into one `cut:` line: detection
    (first and last link), the time until every producer published again
    without a failure, until every link was live again after the heal, and
    until every DC held the same messages. Nothing about time is asserted.

    Deliveries (issue 15: "reads and deliveries of what is durable
    continue"): a durable group per DC (live-dcN) reads xc.b (no twins there:
    a twin's losing copy is replaced by the winner, a second delivery by
    design) before the cut, in the middle of it and after the heal. Each
    time, what the group received so far must be exactly what its DC holds
    of xc.b, each msg_id once: during the cut that includes every message its
    own DC acknowledged since the cut began (they are durable there, the
    other DC unreachable), after the heal every message the other DC took
    during the cut, delivered then and only then.

    Long form: with TERN_XDC_CUT_S set (tools/chaos/dc-cut.sh), `long_cut`
    cuts for that many seconds, producers paced at TERN_XDC_CUT_RATE
    (default 20) messages/s per DC and topic. TERN_XDC_EXTRA adds ternd
    flags to every node of both tests (e.g. "--repl-heartbeat 300ms", the
    fast detection of docs/cluster.md "Drills across DCs"). Without root or
    iproute2 (no namespace can be made) the tests skip.
*/
#include "xdc_harness.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_TOPICS    2
#define S_BATCH     10    //  messages per producer and round
#define S_DETECT_MS 30000 //  deadline for every link to report the cut
//  Deadline for every link to be live again after the heal: a link that
//  failed round after round during the cut waits up to 30 s before its next
//  round of the peer's 3 endpoints (3 s handshake each), unless the peer
//  connects to its node first (cluster/tern_peer.c: backoff 1 s, 5 s, 30 s;
//  WAKE).
#define S_HEAL_MS 90000

static const char *const s_topics[S_TOPICS] = {"xc.a", "xc.b"};
#define S_LIVE_TOPIC 1 //  the topic the live groups read: s_topics[1], no twins

static it_netns_t *s_net;       //  the namespaces
static it_xdc_t *s_x;           //  the DCs
static it_xdc_watch_t *s_watch; //  the links' watcher

//  Everything by PID and in order: the watcher's clients, the nodes and
//  etcds, then the namespaces they ran in.
static void s_fini(void) {
    it_xdc_watch_destroy(&s_watch);
    it_xdc_destroy(&s_x);
    it_teardown();
    it_xdc_netns_destroy(&s_net);
}

TestSuite(xdc_cut, .fini = s_fini, .timeout = 1200);

//  What the producers saw since the cut.
typedef struct {
    uint64_t seq[2][S_TOPICS]; //  next producer_seq per stream
    int64_t cut_at;            //  it_now_ms() when the cut began
    int64_t first_fail;        //  first failed round after it, or 0
    int64_t all_ok;            //  first all-ok round after the last failure, or 0
    size_t failed;             //  failed rounds since the cut
    int rate;                  //  messages/s per DC and topic at most, 0: unpaced
    int64_t *got[2];           //  msg_ids delivered to DC d's live group, sorted (owned)
    size_t got_n[2];           //  how many
} s_run_t;

//  One round: every DC publishes a batch to every topic (a failed batch is
//  resent from its first unacknowledged seq next round), paced to RUN's
//  rate. True if no batch failed.
static bool s_round(s_run_t *run) {
    int64_t next = run->rate ? it_now_ms() + (int64_t)S_BATCH * 1000 / run->rate : 0;
    bool ok = true;
    for (int d = 0; d < 2; d++) {
        for (int t = 0; t < S_TOPICS; t++) {
            char producer[32];
            snprintf(producer, sizeof producer, "%s-c%d", s_x->dc[d].name, t);
            ok = it_xdc_pub(s_x, d, s_topics[t], producer, &run->seq[d][t], S_BATCH) == S_BATCH &&
                 ok;
        }
    }
    if (run->cut_at && !ok) {
        run->failed++;
        run->first_fail = run->first_fail ? run->first_fail : it_now_ms();
        run->all_ok = 0;
    } else if (run->cut_at && !run->all_ok) {
        run->all_ok = it_now_ms();
    }
    while (it_now_ms() < next) {
        it_sleep_ms(20);
    }
    return ok;
}

static void s_rounds_for(s_run_t *run, int64_t ms) {
    int64_t until = it_now_ms() + ms;
    while (it_now_ms() < until) {
        s_round(run);
    }
}

//  TERN_XDC_EXTRA's ternd flags (space-separated, e.g. "--repl-heartbeat
//  300ms"), NULL-terminated in ARGS (at most 8), kept in BUF.
static const char *const *s_extra(const char **args, char *buf, size_t cap) {
    const char *env = getenv("TERN_XDC_EXTRA");
    snprintf(buf, cap, "%s", env ? env : "");
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, " ", &save); tok && n < 8;
         tok = strtok_r(NULL, " ", &save)) {
        args[n++] = tok;
    }
    args[n] = NULL;
    return args;
}

//  Appends N msg_ids IDS (freed) to what DC D's live group got, sorted.
static void s_live_add(s_run_t *run, int d, int64_t *ids, size_t n) {
    run->got[d] = realloc(run->got[d], (run->got_n[d] + n + 1) * sizeof *run->got[d]);
    memcpy(run->got[d] + run->got_n[d], ids, n * sizeof *ids);
    run->got_n[d] += n;
    qsort(run->got[d], run->got_n[d], sizeof *run->got[d], it_cmp_i64);
    free(ids);
}

//  DC d's live group reads what came since its last read (in reads of 1 s
//  idle until it got as many as the DC holds, 30 s at most), asserted: more
//  than AT_LEAST[d], and all it got so far exactly what the DC holds of the
//  topic, each msg_id once. WHEN names the moment.
static void s_live_read(s_run_t *run, const uint64_t *at_least, const char *when) {
    const char *topic = s_topics[S_LIVE_TOPIC];
    for (int d = 0; d < 2; d++) {
        char group[16];
        snprintf(group, sizeof group, "live-%s", s_x->dc[d].name);
        int64_t *held = NULL, deadline = it_now_ms() + 30000;
        size_t n = 0, held_n = 0;
        do {
            free(held);
            int64_t *ids = NULL;
            size_t got = it_xdc_group_read(s_x, d, topic, group, 1000, &ids);
            s_live_add(run, d, ids, got);
            n += got;
            held_n = it_xdc_read_ids(s_x, d, topic, &held);
        } while (run->got_n[d] < held_n && it_now_ms() < deadline);
        fprintf(stderr, "cut: %s %s: group %s got %zu (%zu in all), %s holds %zu of %s\n", when,
                s_x->dc[d].name, group, n, run->got_n[d], s_x->dc[d].name, held_n, topic);
        cr_assert_geq(n, at_least[d], "%s: %s's group got %zu, fewer than the %llu expected", when,
                      s_x->dc[d].name, n, (unsigned long long)at_least[d]);
        for (size_t k = 1; k < run->got_n[d]; k++) {
            cr_assert_neq(run->got[d][k], run->got[d][k - 1], "%s: %s's group got msg %lld twice",
                          when, s_x->dc[d].name, (long long)run->got[d][k]);
        }
        cr_assert(run->got_n[d] == held_n && memcmp(run->got[d], held, held_n * sizeof *held) == 0,
                  "%s: %s's group got %zu messages, the DC holds %zu other ones", when,
                  s_x->dc[d].name, run->got_n[d], held_n);
        free(held);
    }
}

//  The namespaces, the DCs in them (with TERN_XDC_EXTRA's flags), started,
//  their links live, load for 2 s.
static void s_setup(s_run_t *run, int rate) {
    memset(run, 0, sizeof *run);
    run->rate = rate;
    char why[1024] = "";
    s_net = it_xdc_netns_new(2, why, sizeof why);
    if (!s_net) {
        cr_skip_test("cannot create network namespaces (needs root and iproute2): %s", why);
    }
    const char *args[9];
    char buf[256];
    s_x = it_xdc_new(2, 3, 4, 1, s_extra(args, buf, sizeof buf));
    cr_assert(strstr(s_x->dc[1].node[2]->endpoint, it_netns_addr(s_net, IT_XDC_HOST(1, 2))),
              "dc2's node 2 listens at %s", s_x->dc[1].node[2]->endpoint);
    it_xdc_start(s_x);
    s_watch = it_xdc_watch_new(s_x);
    it_xdc_seen_t up = it_xdc_watch_wait(s_watch, 0, true, 0, S_DETECT_MS);
    cr_assert_eq(up.seen, up.links, "only %d of %d links between the DCs came up", up.seen,
                 up.links);
    for (int d = 0; d < 2; d++) {
        for (int t = 0; t < S_TOPICS; t++) {
            run->seq[d][t] = 1;
        }
    }
    s_rounds_for(run, 2000);
    uint64_t none[2] = {0, 0};
    s_live_read(run, none, "before the cut");
}

//  dc1 cut off from dc2 for CUT_MS under load, twins published on both
//  sides meanwhile; healed; the report line and the drills' end.
static void s_cut_drill(const char *name, int64_t cut_ms, int rate) {
    s_run_t run;
    s_setup(&run, rate);
    run.cut_at = it_now_ms();
    cr_assert(it_xdc_cut(s_x, 0, true), "the cut failed");
    int64_t cut_made = it_now_ms() - run.cut_at;
    uint64_t twin[2] = {1, 1};
    for (int d = 0; d < 2; d++) {
        cr_assert_eq(it_xdc_pub(s_x, d, s_topics[0], "twin", &twin[d], S_BATCH), S_BATCH,
                     "twin publishes in %s during the cut", s_x->dc[d].name);
    }
    //  Halfway: each DC's group gets every message its own DC acknowledged
    //  since the cut (and nothing of the other's: it holds none of them).
    uint64_t seq_cut[2] = {run.seq[0][S_LIVE_TOPIC], run.seq[1][S_LIVE_TOPIC]};
    s_rounds_for(&run, cut_ms / 2 - (it_now_ms() - run.cut_at));
    uint64_t own[2] = {run.seq[0][S_LIVE_TOPIC] - seq_cut[0],
                       run.seq[1][S_LIVE_TOPIC] - seq_cut[1]};
    s_live_read(&run, own, "during the cut");
    s_rounds_for(&run, cut_ms - (it_now_ms() - run.cut_at));
    uint64_t other[2] = {run.seq[1][S_LIVE_TOPIC] - seq_cut[1],
                         run.seq[0][S_LIVE_TOPIC] - seq_cut[0]};
    it_xdc_seen_t down = it_xdc_watch_wait(s_watch, 0, false, run.cut_at, S_DETECT_MS);
    int64_t heal_at = it_now_ms();
    cr_assert(it_xdc_cut(s_x, 0, false), "the heal failed");
    int64_t deadline = it_now_ms() + 60000;
    while (!s_round(&run)) {
        cr_assert(it_now_ms() < deadline, "publishing did not resume within 60 s of the heal");
    }
    it_xdc_seen_t up = it_xdc_watch_wait(s_watch, 0, true, heal_at, S_HEAL_MS);
    int64_t last_pub = it_now_ms();
    int64_t converge = it_xdc_converge(s_x, s_topics, S_TOPICS, 300000);
    //  After the heal: the other DC's messages of the cut, once.
    s_live_read(&run, other, "after the heal");
    free(run.got[0]);
    free(run.got[1]);
    fprintf(stderr,
            "cut: %s cut_ms=%lld routes_ms=%lld detected_first_ms=%lld detected_all_ms=%lld "
            "(%d of %d links) first_fail_ms=%lld failed_rounds=%zu publish_again_ms=%lld "
            "links_live_after_heal_ms=%lld converged_after_heal_ms=%lld acked=%zu\n",
            name, (long long)(heal_at - run.cut_at), (long long)cut_made, (long long)down.first_ms,
            (long long)down.last_ms, down.seen, down.links,
            run.first_fail ? (long long)(run.first_fail - run.cut_at) : -1LL, run.failed,
            (long long)(run.failed ? run.all_ok - run.cut_at : 0), (long long)up.last_ms,
            converge < 0 ? -1LL : (long long)(last_pub + converge - heal_at), s_x->acked);
    cr_assert_eq(down.seen, down.links, "only %d of %d links reported the cut", down.seen,
                 down.links);
    cr_assert_eq(up.seen, up.links, "only %d of %d links were live again after the heal", up.seen,
                 up.links);
    it_xdc_watch_destroy(&s_watch);
    it_xdc_finish(s_x, s_topics, S_TOPICS);
}

//  The short form (in `make test`): 10 s, unpaced.
Test(xdc_cut, cut_10s) {
    s_cut_drill("cut_10s", 10000, 0);
}

//  The long form: TERN_XDC_CUT_S seconds (tools/chaos/dc-cut.sh runs 30 and
//  300), paced.
Test(xdc_cut, long_cut) {
    const char *secs = getenv("TERN_XDC_CUT_S"), *rate = getenv("TERN_XDC_CUT_RATE");
    if (!secs) {
        cr_skip_test("the long form: tools/chaos/dc-cut.sh");
    }
    char name[32];
    snprintf(name, sizeof name, "cut_%ss", secs);
    s_cut_drill(name, (int64_t)atoi(secs) * 1000, rate ? atoi(rate) : 20);
}
