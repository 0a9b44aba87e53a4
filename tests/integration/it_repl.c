/*  it_repl.c - active-active replication between three DCs, each one real
    ternd on loopback: writes in every DC reach every DC; a DC SIGKILLed and
    restarted; a DC SIGSTOPped for 20 s under load; links paused and resumed
    with `ternctl peers`; handshakes refused (duplicate node id, unknown DC);
    a producer failing over to another DC gets "duplicate".

    After each, every acknowledged message is in every DC's log exactly once
    (by msg_id and by producer + producer_seq), per-producer order holds in
    every DC, nothing travelled back to its origin (the repl counters of
    looped records stay 0 and each origin's records are counted once), and
    all DCs hold the same message set within 30 s of the heal.
*/
#include "harness.h"
#include "test_port.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define S_DCS         3
#define S_CONVERGE_MS 30000

typedef struct {
    it_broker_t *b[S_DCS]; //  dc1..dc3, node ids 1..3 (adopted: teardown stops them)
    it_acks_t acked;       //  msg_ids acknowledged to publishers (all DCs)
} s_cluster_t;

//  Creates and starts dc1..dc3 in a full mesh.
static void s_cluster_start(s_cluster_t *c) {
    memset(c, 0, sizeof *c);
    it_mesh_start(S_DCS, NULL, NULL, c->b);
}

static void s_cluster_free(s_cluster_t *c) {
    it_acks_free(&c->acked);
}

//  Publishes COUNT messages to DC (0-based) as PRODUCER from SEQ; records acks.
static void s_pub(s_cluster_t *c, int dc, const char *topic, const char *producer, int seq,
                  int count) {
    char count_s[32], seq_s[16];
    snprintf(count_s, sizeof count_s, "%d", count);
    snprintf(seq_s, sizeof seq_s, "%d", seq);
    it_result_t r;
    it_ctl(&r, c->b[dc], 60000, "pub", topic, "m{n}", "--count", count_s, "--producer", producer,
           "--seq", seq_s, NULL);
    it_assert_ok(&r, "ternctl pub");
    it_acks_add(&c->acked, r.out);
    it_result_free(&r);
}

//  Waits until every DC holds EXPECTED messages in TOPIC; returns the ms it
//  took, or asserts after S_CONVERGE_MS.
static int64_t s_converge(s_cluster_t *c, const char *topic, int64_t expected) {
    int64_t start = it_now_ms();
    int64_t have[S_DCS] = {0};
    while (it_now_ms() - start < S_CONVERGE_MS) {
        bool all = true;
        for (int i = 0; i < S_DCS; i++) {
            have[i] = it_topic_msgs(c->b[i], topic);
            all = all && have[i] == expected;
        }
        if (all) {
            return it_now_ms() - start;
        }
        it_sleep_ms(200);
    }
    for (int i = 0; i < S_DCS; i++) {
        it_broker_dump_log(c->b[i], false);
    }
    cr_assert_fail("no convergence within %d ms: dc1 %ld, dc2 %ld, dc3 %ld of %ld", S_CONVERGE_MS,
                   (long)have[0], (long)have[1], (long)have[2], (long)expected);
    return -1;
}

//  s_verify checks that a producer "dcN-..." only has records of origin dcN
//  (off for the conflict test, where one producer writes to two DCs).
static bool s_check_origin = true;

//  Reads TOPIC from every DC (EXPECTED messages) and checks: exactly once by
//  msg_id and by (producer, producer_seq), every acked msg_id present, the
//  same set everywhere, per-producer order, origin = the publishing DC.
static void s_verify(s_cluster_t *c, const char *topic, size_t expected) {
    int64_t *first = NULL;
    char count_s[32];
    snprintf(count_s, sizeof count_s, "%zu", expected);
    qsort(c->acked.ids, c->acked.count, sizeof *c->acked.ids, it_cmp_i64);
    for (int d = 0; d < S_DCS; d++) {
        it_result_t r;
        it_ctl(&r, c->b[d], 120000, "sub", topic, "--from", "first", "--wait", "--count", count_s,
               "--timeout", "5s", NULL);
        it_assert_ok(&r, "ternctl sub");
        it_msg_t *msgs;
        size_t n = it_parse_msgs(r.out, &msgs);
        it_result_free(&r);
        cr_assert_eq(n, expected, "dc%d delivered %zu of %zu", d + 1, n, expected);
        int64_t *ids = malloc(n * sizeof *ids);
        //  Per-producer order in log order, origin consistent with producer.
        char prod[16][80];
        int64_t last[16];
        size_t nprod = 0;
        for (size_t i = 0; i < n; i++) {
            ids[i] = msgs[i].msg_id;
            size_t p = 0;
            while (p < nprod && strcmp(prod[p], msgs[i].producer) != 0) {
                p++;
            }
            if (p == nprod) {
                cr_assert_lt(nprod, 16u);
                snprintf(prod[nprod], sizeof prod[nprod], "%s", msgs[i].producer);
                last[nprod++] = 0;
            }
            cr_assert_gt(msgs[i].producer_seq, last[p],
                         "dc%d: producer %s seq %ld after %ld (order or duplicate)", d + 1,
                         msgs[i].producer, (long)msgs[i].producer_seq, (long)last[p]);
            last[p] = msgs[i].producer_seq;
            //  Producers are named "<dc>-..." after the DC they published to.
            cr_assert(!s_check_origin ||
                          strncmp(msgs[i].producer, msgs[i].origin, strlen(msgs[i].origin)) == 0,
                      "dc%d: message of %s has origin %s", d + 1, msgs[i].producer, msgs[i].origin);
        }
        it_msgs_free(msgs, n);
        qsort(ids, n, sizeof *ids, it_cmp_i64);
        for (size_t i = 1; i < n; i++) {
            cr_assert_neq(ids[i], ids[i - 1], "dc%d: msg_id %ld twice", d + 1, (long)ids[i]);
        }
        //  Every acknowledged id is there.
        size_t j = 0;
        for (size_t i = 0; i < c->acked.count; i++) {
            if (i > 0 && c->acked.ids[i] == c->acked.ids[i - 1]) {
                continue; //  a duplicate ack names the original
            }
            while (j < n && ids[j] < c->acked.ids[i]) {
                j++;
            }
            cr_assert(j < n && ids[j] == c->acked.ids[i], "dc%d: acked msg_id %ld missing", d + 1,
                      (long)c->acked.ids[i]);
        }
        if (!first) {
            first = ids;
        } else {
            cr_assert_eq(memcmp(first, ids, n * sizeof *ids), 0, "dc%d holds another set than dc1",
                         d + 1);
            free(ids);
        }
    }
    free(first);
}

//  `ternctl peers --json` of DC, through its client endpoint: the line of
//  peer NAME (caller frees), or NULL.
static char *s_peer_line(s_cluster_t *c, int dc, const char *name) {
    char *argv[] = {(char *)it_ternctl_path(), "-s", c->b[dc]->endpoint, "--json", "peers", NULL};
    it_result_t r;
    it_run(&r, 10000, NULL, argv);
    char *found = NULL;
    if (r.status == 0) {
        char **lines;
        size_t n = it_split_lines(r.out, &lines);
        for (size_t i = 0; i < n && !found; i++) {
            char dcname[80];
            if (it_json_str(lines[i], "dc", dcname, sizeof dcname) && strcmp(dcname, name) == 0) {
                found = strdup(lines[i]);
            }
        }
        free(lines);
    }
    it_result_free(&r);
    return found;
}

//  `ternctl peers VERB NAME` on DC. VIA_REPL: through its replication
//  endpoint instead of its client endpoint (both answer).
static void s_peers_ctl(s_cluster_t *c, int dc, const char *verb, const char *name, bool via_repl) {
    char *argv[] = {(char *)it_ternctl_path(),
                    "-s",
                    via_repl ? c->b[dc]->repl_ep : c->b[dc]->endpoint,
                    "--json",
                    "peers",
                    (char *)verb,
                    (char *)name,
                    NULL};
    it_result_t r;
    it_run(&r, 10000, NULL, argv);
    it_assert_ok(&r, "ternctl peers pause/resume");
    it_result_free(&r);
}

//  Nothing travelled back: no DC dropped a record of its own, and each DC
//  received from each peer exactly what that peer originated.
static void s_no_loops(s_cluster_t *c) {
    for (int d = 0; d < S_DCS; d++) {
        for (int p = 0; p < S_DCS; p++) {
            if (p == d) {
                continue;
            }
            char name[8];
            snprintf(name, sizeof name, "dc%d", p + 1);
            char *line = s_peer_line(c, d, name);
            cr_assert_not_null(line, "dc%d: no peers line for %s", d + 1, name);
            int64_t looped = -1;
            cr_assert(it_json_int(line, "looped_dropped", &looped));
            cr_assert_eq(looped, 0, "dc%d dropped %ld looped records", d + 1, (long)looped);
            free(line);
        }
    }
}

Test(repl, writes_everywhere_reach_everywhere, .fini = it_teardown, .timeout = 180) {
    s_cluster_t c;
    s_cluster_start(&c);
    for (int round = 0; round < 2; round++) {
        for (int d = 0; d < S_DCS; d++) {
            char producer[32];
            snprintf(producer, sizeof producer, "dc%d-p", d + 1);
            s_pub(&c, d, "r.all", producer, 1 + round * 1000, 1000);
        }
    }
    int64_t ms = s_converge(&c, "r.all", 6000);
    fprintf(stderr, "it_repl: 3 x 2000 messages converged %ld ms after the last ack\n", (long)ms);
    s_verify(&c, "r.all", 6000);
    s_no_loops(&c);
    //  Each DC applied exactly what each peer originated (2000 each way per
    //  link): nothing relayed, nothing applied twice.
    for (int d = 0; d < S_DCS; d++) {
        for (int p = 0; p < S_DCS; p++) {
            if (p == d) {
                continue;
            }
            char name[8];
            snprintf(name, sizeof name, "dc%d", p + 1);
            char *peer = s_peer_line(&c, d, name);
            cr_assert_not_null(peer);
            int64_t received = -1, sent = -1;
            cr_assert(it_json_int(peer, "received", &received));
            cr_assert(it_json_int(peer, "sent", &sent));
            cr_assert_eq(received, 2000, "dc%d applied %ld records from %s", d + 1, (long)received,
                         name);
            cr_assert_geq(sent, 2000, "dc%d shipped %ld records to %s", d + 1, (long)sent, name);
            free(peer);
        }
    }
    //  The peers view: every link live, nothing lagging.
    char *line = s_peer_line(&c, 0, "dc2");
    cr_assert_not_null(line);
    char state[32];
    int64_t lag = -1, node = -1;
    cr_assert(it_json_str(line, "state", state, sizeof state));
    cr_assert_str_eq(state, "live");
    cr_assert(it_json_int(line, "node_id", &node));
    cr_assert_eq(node, 2);
    cr_assert(it_json_int(line, "lag_msgs", &lag));
    cr_assert_eq(lag, 0);
    int64_t seen = 0;
    cr_assert(it_json_int(line, "last_seen_ms", &seen));
    cr_assert_gt(seen, it_now_ms() - 10000);
    cr_assert(it_json_int(line, "lag_ms", &lag));
    char endpoint[80];
    cr_assert(it_json_str(line, "endpoint", endpoint, sizeof endpoint));
    cr_assert_str_eq(endpoint, c.b[1]->repl_ep);
    free(line);
    s_cluster_free(&c);
}

Test(repl, producer_failover_gets_duplicate, .fini = it_teardown, .timeout = 120) {
    s_cluster_t c;
    s_cluster_start(&c);
    s_pub(&c, 0, "r.fail", "dc1-f", 1, 100);
    s_converge(&c, "r.fail", 100);
    //  The producer fails over to dc2 and resends its last 10: duplicates,
    //  answered with dc1's msg_ids.
    it_result_t r;
    it_ctl(&r, c.b[1], 30000, "pub", "r.fail", "again", "--count", "10", "--producer", "dc1-f",
           "--seq", "91", NULL);
    it_assert_ok(&r, "pub on dc2");
    char **lines;
    char *copy = strdup(r.out);
    size_t n = it_split_lines(copy, &lines);
    cr_assert_eq(n, 10u, "%s", r.out);
    for (size_t i = 0; i < n; i++) {
        bool dup = false;
        int64_t id = 0;
        cr_assert(it_json_bool(lines[i], "duplicate", &dup) && dup, "not a duplicate: %s",
                  lines[i]);
        cr_assert(it_json_int(lines[i], "msg_id", &id));
        cr_assert_eq(id, c.acked.ids[90 + i], "duplicate names another msg_id");
    }
    free(lines);
    free(copy);
    it_result_free(&r);
    it_sleep_ms(1500);
    s_verify(&c, "r.fail", 100);
    s_cluster_free(&c);
}

Test(repl, sigkill_and_restart, .fini = it_teardown, .timeout = 240) {
    s_cluster_t c;
    s_cluster_start(&c);
    s_pub(&c, 0, "r.kill", "dc1-k", 1, 1000);
    s_pub(&c, 1, "r.kill", "dc2-k", 1, 1000);
    //  dc2 dies while a publisher writes to it and the others write too.
    it_proc_t *bg = it_ctl_spawn(c.b[1], "pub", "r.kill", "m{n}", "--count", "200000", "--producer",
                                 "dc2-bg", NULL);
    it_sleep_ms(700);
    it_broker_kill(c.b[1]);
    it_proc_wait(bg, 5000);
    char *out = it_proc_out(bg);
    it_acks_add(&c.acked, out);
    free(out);
    it_proc_destroy(&bg);
    s_pub(&c, 0, "r.kill", "dc1-k", 1001, 1000);
    s_pub(&c, 2, "r.kill", "dc3-k", 1, 1000);
    cr_assert(it_broker_start(c.b[1]), "dc2 did not restart");
    s_pub(&c, 1, "r.kill", "dc2-k", 1001, 500);
    //  What dc2 stored before the kill includes unacknowledged records: the
    //  target is whatever dc2 holds, provided all DCs agree and every ack is
    //  in it.
    int64_t start = it_now_ms();
    int64_t expected = 0;
    while (it_now_ms() - start < S_CONVERGE_MS) {
        int64_t a = it_topic_msgs(c.b[0], "r.kill"), b = it_topic_msgs(c.b[1], "r.kill"),
                d = it_topic_msgs(c.b[2], "r.kill");
        if (a == b && b == d && a >= (int64_t)4500) {
            expected = a;
            break;
        }
        it_sleep_ms(200);
    }
    cr_assert_gt(expected, 0, "no convergence after the restart");
    fprintf(stderr, "it_repl: converged %ld ms after dc2's restart (%ld messages)\n",
            (long)(it_now_ms() - start), (long)expected);
    s_verify(&c, "r.kill", (size_t)expected);
    s_no_loops(&c);
    s_cluster_free(&c);
}

Test(repl, sigstop_20s_under_load, .fini = it_teardown, .timeout = 240) {
    s_cluster_t c;
    s_cluster_start(&c);
    s_pub(&c, 1, "r.stop", "dc2-s", 1, 500);
    it_broker_pause(c.b[1]);
    int64_t stop_at = it_now_ms();
    int seq = 1;
    while (it_now_ms() - stop_at < 20000) {
        s_pub(&c, 0, "r.stop", "dc1-s", seq, 500);
        s_pub(&c, 2, "r.stop", "dc3-s", seq, 500);
        seq += 500;
        it_sleep_ms(500);
    }
    //  While dc2 sleeps, dc1 and dc3 keep replicating to each other.
    int64_t in_dc3 = it_topic_msgs(c.b[2], "r.stop");
    cr_assert_geq(in_dc3, 500 + 2 * (seq - 1) - 500, "dc1 -> dc3 stalled while dc2 was stopped");
    char *line = s_peer_line(&c, 0, "dc2");
    cr_assert_not_null(line);
    char state[32];
    it_json_str(line, "state", state, sizeof state);
    cr_assert_str_neq(state, "live", "a stopped peer still looks live");
    free(line);
    it_broker_resume(c.b[1]);
    int64_t expected = 500 + 2 * (seq - 1);
    int64_t ms = s_converge(&c, "r.stop", expected);
    fprintf(stderr, "it_repl: converged %ld ms after a 20 s SIGSTOP (%ld messages)\n", (long)ms,
            (long)expected);
    s_verify(&c, "r.stop", (size_t)expected);
    s_no_loops(&c);
    s_cluster_free(&c);
}

Test(repl, links_paused_and_resumed, .fini = it_teardown, .timeout = 180) {
    s_cluster_t c;
    s_cluster_start(&c);
    s_pub(&c, 0, "r.pause", "dc1-q", 1, 200);
    s_converge(&c, "r.pause", 200);
    //  Isolate dc1 <-> dc2 from both ends.
    s_peers_ctl(&c, 0, "pause", "dc2", false);
    s_peers_ctl(&c, 1, "pause", "dc1", true);
    char *line = s_peer_line(&c, 0, "dc2");
    cr_assert_not_null(line);
    char state[32];
    it_json_str(line, "state", state, sizeof state);
    cr_assert_str_eq(state, "paused");
    free(line);
    s_pub(&c, 0, "r.pause", "dc1-q", 201, 300);
    s_pub(&c, 1, "r.pause", "dc2-q", 1, 300);
    it_sleep_ms(2000);
    //  dc3 has everything; dc2 has not seen dc1's new records, nor dc1 dc2's
    //  (dc3 does not relay: only origins ship).
    cr_assert_eq(it_topic_msgs(c.b[2], "r.pause"), 800);
    cr_assert_eq(it_topic_msgs(c.b[1], "r.pause"), 500);
    cr_assert_eq(it_topic_msgs(c.b[0], "r.pause"), 500);
    line = s_peer_line(&c, 0, "dc2");
    int64_t lag = 0;
    cr_assert(it_json_int(line, "lag_msgs", &lag));
    cr_assert_eq(lag, 300);
    free(line);
    line = s_peer_line(&c, 1, "dc1");
    cr_assert_not_null(line);
    it_json_str(line, "state", state, sizeof state);
    cr_assert_str_eq(state, "paused");
    free(line);
    //  Unknown peer name: an error, on either endpoint.
    for (int via = 0; via < 2; via++) {
        char *argv[] = {(char *)it_ternctl_path(),
                        "-s",
                        via ? c.b[0]->repl_ep : c.b[0]->endpoint,
                        "peers",
                        "pause",
                        "nope",
                        NULL};
        it_result_t r;
        it_run(&r, 10000, NULL, argv);
        cr_assert_eq(r.status, 1, "peers pause nope: status %d: %s", r.status, r.err);
        cr_assert(strstr(r.err, "no such peer"), "%s", r.err);
        it_result_free(&r);
    }
    s_peers_ctl(&c, 0, "resume", "dc2", false);
    s_peers_ctl(&c, 1, "resume", "dc1", false);
    line = s_peer_line(&c, 0, "dc2");
    cr_assert_not_null(line);
    it_json_str(line, "state", state, sizeof state);
    cr_assert_str_neq(state, "paused");
    free(line);
    int64_t ms = s_converge(&c, "r.pause", 800);
    fprintf(stderr, "it_repl: converged %ld ms after resume\n", (long)ms);
    s_verify(&c, "r.pause", 800);
    s_no_loops(&c);
    s_cluster_free(&c);
}

//  Without replication, `ternctl peers` on the client endpoint lists nothing
//  and pause / resume fail with TERN_ENOTFOUND.
Test(repl, peers_without_replication, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_adopt_broker(it_broker_new(1, NULL));
    cr_assert(it_broker_start(b));
    char *list[] = {(char *)it_ternctl_path(), "-s", b->endpoint, "--json", "peers", NULL};
    it_result_t r;
    it_run(&r, 10000, NULL, list);
    it_assert_ok(&r, "peers");
    cr_assert_str_eq(r.out, "", "peers printed: %s", r.out);
    it_result_free(&r);
    const char *verbs[] = {"pause", "resume"};
    for (int i = 0; i < 2; i++) {
        char *argv[] = {(char *)it_ternctl_path(), "-s",  b->endpoint, "peers",
                        (char *)verbs[i],          "dc2", NULL};
        it_run(&r, 10000, NULL, argv);
        cr_assert_eq(r.status, 1, "peers %s: status %d", verbs[i], r.status);
        cr_assert(strstr(r.err, "no such peer"), "%s", r.err);
        it_result_free(&r);
    }
}

//  Two nodes with the same node id refuse each other, with a log line.
Test(repl, duplicate_node_id_and_unknown_dc_refused, .fini = it_teardown, .timeout = 60) {
    int pa = test_port(), pb = test_port(), pc = test_port();
    char ea[64], eb[64], ec[64], peer_a[96], peer_b[96];
    snprintf(ea, sizeof ea, "tcp://127.0.0.1:%d", pa);
    snprintf(eb, sizeof eb, "tcp://127.0.0.1:%d", pb);
    snprintf(ec, sizeof ec, "tcp://127.0.0.1:%d", pc);
    snprintf(peer_a, sizeof peer_a, "dca=%s", ea);
    snprintf(peer_b, sizeof peer_b, "dcb=%s", eb);
    const char *xa[] = {"--repl-listen", ea, "--peer", peer_b, NULL};
    const char *xb[] = {"--repl-listen", eb, "--peer", peer_a, NULL};
    const char *xc[] = {"--repl-listen", ec, "--peer", peer_a, NULL};
    it_broker_t *a = it_broker_new(7, xa), *b = it_broker_new(7, xb), *cc = it_broker_new(9, xc);
    snprintf(a->dc, sizeof a->dc, "dca");
    snprintf(b->dc, sizeof b->dc, "dcb");
    snprintf(cc->dc, sizeof cc->dc, "dcz"); //  dca does not know dcz
    it_adopt_broker(a);
    it_adopt_broker(b);
    it_adopt_broker(cc);
    cr_assert(it_broker_start(a));
    cr_assert(it_broker_start(b));
    cr_assert(it_broker_start(cc));
    int64_t start = it_now_ms();
    bool dup = false, unknown = false;
    while (it_now_ms() - start < 10000 && !(dup && unknown)) {
        char *log = it_read_file(a->log_path, NULL);
        dup = log && strstr(log, "duplicate node id 7");
        unknown = log && strstr(log, "unknown dc dcz");
        free(log);
        it_sleep_ms(200);
    }
    cr_assert(dup, "no 'duplicate node id' line in dca's log");
    cr_assert(unknown, "no 'unknown dc' line in dca's log");
    char *argv[] = {(char *)it_ternctl_path(), "-s", ea, "--json", "peers", NULL};
    it_result_t r;
    it_run(&r, 10000, NULL, argv);
    it_assert_ok(&r, "peers");
    int64_t refused = 0, refused_dc = 0;
    cr_assert(it_json_int(r.out, "refused_node_id", &refused));
    cr_assert(it_json_int(r.out, "refused_unknown_dc", &refused_dc));
    cr_assert_gt(refused, 0);
    cr_assert_gt(refused_dc, 0);
    char state[32];
    it_json_str(r.out, "state", state, sizeof state);
    cr_assert_str_neq(state, "live");
    it_result_free(&r);
}

//  The next_unacked seq of group G on TOPIC in DC, or -1.
static int64_t s_ack_floor(s_cluster_t *c, int dc, const char *topic, const char *group) {
    it_result_t r;
    int64_t floor = it_ctl(&r, c->b[dc], 5000, "groups", topic, NULL) == 0
                        ? it_group_field(r.out, group, "next_unacked")
                        : -1;
    it_result_free(&r);
    return floor;
}

//  A consumer acks part of the backlog in dc1, then moves to dc2: it gets
//  only the rest; every DC ends with the same group state.
Test(repl, ack_state_follows_the_consumer, .fini = it_teardown, .timeout = 120) {
    s_cluster_t c;
    s_cluster_start(&c);
    s_pub(&c, 0, "r.ack", "dc1-a", 1, 200);
    s_converge(&c, "r.ack", 200);
    it_result_t r;
    it_ctl(&r, c.b[0], 30000, "sub", "r.ack", "--group", "g", "--count", "120", NULL);
    it_assert_ok(&r, "sub in dc1");
    it_result_free(&r);
    //  The acks reach dc2 and dc3 by msg_id.
    int64_t start = it_now_ms();
    while (it_now_ms() - start < S_CONVERGE_MS &&
           (s_ack_floor(&c, 1, "r.ack", "g") != 121 || s_ack_floor(&c, 2, "r.ack", "g") != 121)) {
        it_sleep_ms(100);
    }
    cr_assert_eq(s_ack_floor(&c, 1, "r.ack", "g"), 121, "dc2 did not get dc1's acks");
    cr_assert_eq(s_ack_floor(&c, 2, "r.ack", "g"), 121, "dc3 did not get dc1's acks");
    fprintf(stderr, "it_repl: ack state of 120 acks replicated in %ld ms\n",
            (long)(it_now_ms() - start));
    //  The consumer fails over to dc2 and resumes at message 121.
    it_ctl(&r, c.b[1], 30000, "sub", "r.ack", "--group", "g", "--count", "200", "--timeout", "3s",
           NULL);
    it_assert_ok(&r, "sub in dc2");
    it_msg_t *msgs;
    size_t n = it_parse_msgs(r.out, &msgs);
    it_result_free(&r);
    cr_assert_eq(n, 80u, "dc2 delivered %zu messages, expected the 80 not acked in dc1", n);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(msgs[i].producer_seq, (int64_t)(121 + i));
    }
    it_msgs_free(msgs, n);
    //  And dc2's acks come back: the same state everywhere.
    start = it_now_ms();
    while (it_now_ms() - start < S_CONVERGE_MS &&
           (s_ack_floor(&c, 0, "r.ack", "g") != 201 || s_ack_floor(&c, 2, "r.ack", "g") != 201)) {
        it_sleep_ms(100);
    }
    for (int d = 0; d < S_DCS; d++) {
        cr_assert_eq(s_ack_floor(&c, d, "r.ack", "g"), 201, "dc%d group state differs", d + 1);
    }
    s_cluster_free(&c);
}

//  The group is already loaded in dc2 (a consumer used it there) when dc1's
//  acks arrive: dc2 adopts them instead of replaying what dc1 consumed.
Test(repl, ack_state_reaches_a_loaded_group, .fini = it_teardown, .timeout = 120) {
    s_cluster_t c;
    s_cluster_start(&c);
    s_pub(&c, 0, "r.ack2", "dc1-b", 1, 200);
    s_converge(&c, "r.ack2", 200);
    it_result_t r;
    it_ctl(&r, c.b[1], 30000, "sub", "r.ack2", "--group", "g", "--count", "1", NULL);
    it_assert_ok(&r, "sub in dc2");
    it_result_free(&r);
    int64_t start = it_now_ms();
    while (it_now_ms() - start < S_CONVERGE_MS && s_ack_floor(&c, 0, "r.ack2", "g") != 2) {
        it_sleep_ms(100);
    }
    cr_assert_eq(s_ack_floor(&c, 0, "r.ack2", "g"), 2);
    it_ctl(&r, c.b[0], 30000, "sub", "r.ack2", "--group", "g", "--count", "100", NULL);
    it_assert_ok(&r, "sub in dc1");
    it_result_free(&r);
    start = it_now_ms();
    while (it_now_ms() - start < S_CONVERGE_MS && s_ack_floor(&c, 1, "r.ack2", "g") != 102) {
        it_sleep_ms(100);
    }
    cr_assert_eq(s_ack_floor(&c, 1, "r.ack2", "g"), 102);
    it_ctl(&r, c.b[1], 30000, "sub", "r.ack2", "--group", "g", "--count", "200", "--timeout", "3s",
           NULL);
    it_assert_ok(&r, "sub in dc2 again");
    it_msg_t *msgs;
    size_t n = it_parse_msgs(r.out, &msgs);
    it_result_free(&r);
    cr_assert_eq(n, 99u, "dc2 delivered %zu messages, expected the 99 nobody acked", n);
    cr_assert_eq(msgs[0].producer_seq, 102);
    it_msgs_free(msgs, n);
    s_cluster_free(&c);
}

//  During a partition between dc1 and dc2, one producer writes the same
//  (producer_id, seq) 1..50 to both. After the heal every DC keeps, for each
//  seq, the copy with the lowest msg_id, and only that one.
Test(repl, partition_conflict_lowest_msg_id_wins, .fini = it_teardown, .timeout = 120) {
    s_cluster_t c;
    s_cluster_start(&c);
    s_check_origin = false;
    s_peers_ctl(&c, 0, "pause", "dc2", false);
    s_peers_ctl(&c, 1, "pause", "dc1", false);
    s_pub(&c, 0, "r.conflict", "both", 1, 50);
    s_pub(&c, 1, "r.conflict", "both", 1, 50);
    cr_assert_eq(c.acked.count, 100u);
    int64_t winners[50];
    for (int i = 0; i < 50; i++) {
        winners[i] = c.acked.ids[i] < c.acked.ids[50 + i] ? c.acked.ids[i] : c.acked.ids[50 + i];
    }
    s_peers_ctl(&c, 0, "resume", "dc2", false);
    s_peers_ctl(&c, 1, "resume", "dc1", false);
    int64_t ms = s_converge(&c, "r.conflict", 50);
    fprintf(stderr, "it_repl: conflicting copies resolved everywhere %ld ms after the heal\n",
            (long)ms);
    it_sleep_ms(1000); //  late copies must not come back
    memcpy(c.acked.ids, winners, sizeof winners);
    c.acked.count = 50;
    s_verify(&c, "r.conflict", 50);
    s_check_origin = true;
    s_cluster_free(&c);
}
