/*  it_repl_failover.c - a peer DC given as several endpoints
    (--peer NAME=EP1,EP2): the outbound link fails over between them.

    dc1 is one node whose peer dc2 is "DEAD,LIVE": nothing listens on DEAD,
    dc2's node on LIVE. Replication works (the link moves on from DEAD after
    its handshake timeout). Then dc2's node is stopped and started again as
    a "moved" node: same node id, DC name and data dir, its replication
    endpoint now on DEAD (and another client port). dc1's link fails over to
    it and everything acknowledged in either DC is in both logs exactly once
    (by msg_id and by producer + producer_seq, per-producer order kept),
    nothing looped back, and `ternctl peers` names the endpoint in use and
    counts the failovers. Two more tests put a node of another DC first in
    the list: whether it refuses dc1 ("unknown dc") or answers as the wrong
    DC (refused by dc1), the link moves on at once; then dc2 ships from
    another node id (3), which dc1 accepts.
*/
#include "harness.h"
#include "test_port.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define S_CONVERGE_MS 30000
#define S_PRODUCERS   4

typedef struct {
    it_broker_t *dc1; //  node 1, peer dc2 = DEAD,LIVE
    it_broker_t *dc2; //  node 2, peer dc1; moved to DEAD later
    char dead[64];    //  dc2's first endpoint: nothing listens there at first
    char live[64];    //  dc2's second endpoint: its replication endpoint at first
    it_acks_t acked;  //  msg_ids acknowledged to publishers (both DCs)
} s_run_t;

static void s_ep(char *buf, size_t cap) {
    snprintf(buf, cap, "tcp://127.0.0.1:%d", test_port());
}

//  Creates dc1 and dc2 with dc2 reachable from dc1 at FIRST, then
//  run->live; starts both.
static void s_start(s_run_t *run, const char *first) {
    memset(run, 0, sizeof *run);
    char dc1_repl[64], peer_dc1[96], peer_dc2[160];
    s_ep(dc1_repl, sizeof dc1_repl);
    s_ep(run->dead, sizeof run->dead);
    s_ep(run->live, sizeof run->live);
    snprintf(peer_dc1, sizeof peer_dc1, "dc1=%s", dc1_repl);
    snprintf(peer_dc2, sizeof peer_dc2, "dc2=%s,%s", first ? first : run->dead, run->live);
    const char *x1[] = {"--repl-listen", dc1_repl, "--peer", peer_dc2, NULL};
    const char *x2[] = {"--repl-listen", run->live, "--peer", peer_dc1, NULL};
    run->dc1 = it_adopt_broker(it_broker_new(1, x1));
    run->dc2 = it_adopt_broker(it_broker_new(2, x2));
    snprintf(run->dc1->dc, sizeof run->dc1->dc, "dc1");
    snprintf(run->dc2->dc, sizeof run->dc2->dc, "dc2");
    snprintf(run->dc1->repl_ep, sizeof run->dc1->repl_ep, "%s", dc1_repl);
    snprintf(run->dc2->repl_ep, sizeof run->dc2->repl_ep, "%s", run->live);
    cr_assert(it_broker_start(run->dc1), "dc1 did not start");
    cr_assert(it_broker_start(run->dc2), "dc2 did not start");
}

//  Publishes COUNT messages to B as PRODUCER from SEQ; records the acks.
static void s_pub(s_run_t *run, it_broker_t *b, const char *topic, const char *producer, int seq,
                  int count) {
    char count_s[16], seq_s[16];
    snprintf(count_s, sizeof count_s, "%d", count);
    snprintf(seq_s, sizeof seq_s, "%d", seq);
    it_result_t r;
    it_ctl(&r, b, 60000, "pub", topic, "m{n}", "--count", count_s, "--producer", producer, "--seq",
           seq_s, NULL);
    it_assert_ok(&r, "ternctl pub");
    cr_assert_eq(it_acks_add(&run->acked, r.out), (size_t)count, "too few acks");
    it_result_free(&r);
}

//  Waits until both DCs hold EXPECTED messages of TOPIC.
static void s_converge(s_run_t *run, const char *topic, int64_t expected) {
    int64_t start = it_now_ms(), a = -1, b = -1;
    while (it_now_ms() - start < S_CONVERGE_MS) {
        a = it_topic_msgs(run->dc1, topic);
        b = it_topic_msgs(run->dc2, topic);
        if (a == expected && b == expected) {
            fprintf(stderr, "it_repl_failover: %ld messages in both DCs after %ld ms\n",
                    (long)expected, (long)(it_now_ms() - start));
            return;
        }
        it_sleep_ms(200);
    }
    it_broker_dump_log(run->dc1, false);
    it_broker_dump_log(run->dc2, false);
    cr_assert_fail("no convergence within %d ms: dc1 %ld, dc2 %ld of %ld", S_CONVERGE_MS, (long)a,
                   (long)b, (long)expected);
}

//  The msg_ids of B's log of TOPIC (EXPECTED messages), sorted, after
//  checking per-producer order (so no (producer, producer_seq) twice).
static int64_t *s_log_ids(it_broker_t *b, const char *topic, size_t expected) {
    char count_s[32];
    snprintf(count_s, sizeof count_s, "%zu", expected);
    it_result_t r;
    it_ctl(&r, b, 120000, "sub", topic, "--from", "first", "--wait", "--count", count_s,
           "--timeout", "5s", NULL);
    it_assert_ok(&r, "ternctl sub");
    it_msg_t *msgs;
    size_t n = it_parse_msgs(r.out, &msgs);
    it_result_free(&r);
    cr_assert_eq(n, expected, "%s delivered %zu of %zu", b->dc, n, expected);
    char producers[S_PRODUCERS][80] = {{0}};
    int64_t last[S_PRODUCERS] = {0};
    int64_t *ids = malloc(n * sizeof *ids);
    for (size_t i = 0; i < n; i++) {
        size_t p = 0;
        while (p < S_PRODUCERS && *producers[p] && strcmp(producers[p], msgs[i].producer) != 0) {
            p++;
        }
        cr_assert_lt(p, (size_t)S_PRODUCERS, "%s: too many producers", b->dc);
        snprintf(producers[p], sizeof producers[p], "%s", msgs[i].producer);
        cr_assert_gt(msgs[i].producer_seq, last[p], "%s: producer %s seq %ld after %ld", b->dc,
                     msgs[i].producer, (long)msgs[i].producer_seq, (long)last[p]);
        last[p] = msgs[i].producer_seq;
        ids[i] = msgs[i].msg_id;
    }
    it_msgs_free(msgs, n);
    qsort(ids, n, sizeof *ids, it_cmp_i64);
    return ids;
}

//  Both logs of TOPIC hold EXPECTED messages, each once, the same set, and
//  every acknowledged msg_id.
static void s_exactly_once(s_run_t *run, const char *topic, size_t expected) {
    int64_t *one = s_log_ids(run->dc1, topic, expected);
    int64_t *two = s_log_ids(run->dc2, topic, expected);
    for (size_t i = 1; i < expected; i++) {
        cr_assert_neq(one[i], one[i - 1], "dc1: msg_id %ld twice", (long)one[i]);
    }
    cr_assert_eq(memcmp(one, two, expected * sizeof *one), 0, "dc1 and dc2 hold other sets");
    for (size_t i = 0; i < run->acked.count; i++) {
        cr_assert(bsearch(&run->acked.ids[i], one, expected, sizeof *one, it_cmp_i64),
                  "acked msg_id %ld missing", (long)run->acked.ids[i]);
    }
    free(one);
    free(two);
}

//  `ternctl --json peers` of B: the line of peer NAME (caller frees).
static char *s_peer(it_broker_t *b, const char *name) {
    it_result_t r;
    it_ctl(&r, b, 10000, "peers", NULL);
    it_assert_ok(&r, "ternctl peers");
    char **lines;
    size_t n = it_split_lines(r.out, &lines);
    char *found = NULL;
    for (size_t i = 0; i < n && !found; i++) {
        char dc[80];
        if (it_json_str(lines[i], "dc", dc, sizeof dc) && strcmp(dc, name) == 0) {
            found = strdup(lines[i]);
        }
    }
    free(lines);
    it_result_free(&r);
    cr_assert_not_null(found, "%s: no peers line for %s", b->dc, name);
    return found;
}

//  dc1's link to dc2: live on ENDPOINT, after at least FAILOVERS failovers;
//  neither DC dropped a looped record.
static void s_check_link(s_run_t *run, const char *endpoint, int64_t failovers) {
    char *line = s_peer(run->dc1, "dc2");
    char state[32] = "", in_use[64] = "";
    int64_t moved = -1, local = -1, remote = -1, looped = -1;
    cr_assert(it_json_str(line, "state", state, sizeof state), "%s", line);
    cr_assert(it_json_str(line, "endpoint_in_use", in_use, sizeof in_use), "%s", line);
    cr_assert(it_json_int(line, "failovers", &moved), "%s", line);
    cr_assert(it_json_int(line, "local_node_id", &local), "%s", line);
    cr_assert(it_json_int(line, "node_id", &remote), "%s", line);
    cr_assert(it_json_int(line, "looped_dropped", &looped), "%s", line);
    cr_assert_str_eq(state, "live", "%s", line);
    cr_assert_str_eq(in_use, endpoint, "%s", line);
    cr_assert_geq(moved, failovers, "%s", line);
    cr_assert_eq(local, 1, "%s", line);
    cr_assert_eq(remote, 2, "%s", line);
    cr_assert_eq(looped, 0, "%s", line);
    //  Both endpoints listed, in the configured order.
    const char *list;
    size_t len;
    cr_assert(it_json_raw(line, "endpoints", &list, &len), "%s", line);
    const char *live = strstr(list, run->live);
    cr_assert(live && live < list + len, "%s", line);
    free(line);
    line = s_peer(run->dc2, "dc1");
    cr_assert(it_json_int(line, "looped_dropped", &looped), "%s", line);
    cr_assert_eq(looped, 0, "%s", line);
    free(line);
}

//  Waits until dc1's link to dc2 is live on ENDPOINT.
static void s_wait_live_on(s_run_t *run, const char *endpoint) {
    int64_t start = it_now_ms();
    while (it_now_ms() - start < S_CONVERGE_MS) {
        char *line = s_peer(run->dc1, "dc2");
        char state[32] = "", in_use[64] = "";
        it_json_str(line, "state", state, sizeof state);
        it_json_str(line, "endpoint_in_use", in_use, sizeof in_use);
        free(line);
        if (strcmp(state, "live") == 0 && strcmp(in_use, endpoint) == 0) {
            fprintf(stderr, "it_repl_failover: live on %s after %ld ms\n", endpoint,
                    (long)(it_now_ms() - start));
            return;
        }
        it_sleep_ms(200);
    }
    it_broker_dump_log(run->dc1, false);
    cr_assert_fail("dc1's link to dc2 not live on %s within %d ms", endpoint, S_CONVERGE_MS);
}

Test(repl_failover, dead_first_endpoint_then_moved_node, .fini = it_teardown, .timeout = 240) {
    s_run_t run;
    s_start(&run, NULL);
    s_pub(&run, run.dc1, "f.move", "dc1-a", 1, 500);
    s_pub(&run, run.dc2, "f.move", "dc2-a", 1, 300);
    s_converge(&run, "f.move", 800);
    //  The first endpoint never answered: the link moved on to the second.
    s_check_link(&run, run.live, 1);

    //  dc2's node stops; dc1 takes writes meanwhile.
    cr_assert_eq(it_broker_stop(run.dc2, 10000), 0, "dc2 did not stop cleanly");
    s_pub(&run, run.dc1, "f.move", "dc1-a", 501, 500);
    //  It comes back "moved": same node id, DC and data dir; its replication
    //  endpoint is dc1's first endpoint for dc2, its client port a new one.
    it_broker_t *b = run.dc2;
    cr_assert_lt(b->extra_count + 2, IT_EXTRA_MAX);
    b->extra[b->extra_count++] = strdup("--repl-listen");
    b->extra[b->extra_count++] = strdup(run.dead);
    b->port = test_port();
    snprintf(b->endpoint, sizeof b->endpoint, "tcp://127.0.0.1:%d", b->port);
    snprintf(b->repl_ep, sizeof b->repl_ep, "%s", run.dead);
    cr_assert(it_broker_start(b), "the moved dc2 did not start");
    s_wait_live_on(&run, run.dead);
    s_pub(&run, run.dc1, "f.move", "dc1-a", 1001, 500);
    s_pub(&run, run.dc2, "f.move", "dc2-a", 301, 300);
    s_converge(&run, "f.move", 2100);
    s_check_link(&run, run.dead, 2);
    //  The table shows the endpoint in use (not the configured list).
    it_result_t r;
    it_ctl_text(&r, run.dc1, 10000, NULL, "peers", NULL);
    it_assert_ok(&r, "ternctl peers");
    cr_assert(strstr(r.out, "FAILOVERS") && strstr(r.out, "LOCAL_NODE_ID"), "%s", r.out);
    cr_assert(strstr(r.out, run.dead) && !strstr(r.out, run.live), "%s", r.out);
    it_result_free(&r);
    s_exactly_once(&run, "f.move", 2100);
    it_acks_free(&run.acked);
}

//  Puts a node of another DC (dcx, node 9) first in dc1's list for dc2, then
//  dc2's real node: 200 messages each way converge, dc1's link is live on
//  dc2's node after one failover, and it moved on because dcx was refused
//  (not after a handshake timeout). KNOWS_DC1: dcx has dc1 as a peer, so it
//  answers WELCOME as dcx and dc1 refuses that; else dcx refuses dc1 as an
//  unknown DC.
static void s_other_dc_first(s_run_t *run, bool knows_dc1, const char *topic) {
    char dcx_repl[64], dcx_peer[96];
    s_ep(dcx_repl, sizeof dcx_repl);
    snprintf(dcx_peer, sizeof dcx_peer, "%s=tcp://127.0.0.1:%d", knows_dc1 ? "dc1" : "dcy",
             test_port());
    const char *xx[] = {"--repl-listen", dcx_repl, "--peer", dcx_peer, NULL};
    it_broker_t *x = it_adopt_broker(it_broker_new(9, xx));
    snprintf(x->dc, sizeof x->dc, "dcx");
    cr_assert(it_broker_start(x), "dcx did not start");
    s_start(run, dcx_repl);
    s_pub(run, run->dc1, topic, "dc1-r", 1, 200);
    s_pub(run, run->dc2, topic, "dc2-r", 1, 200);
    s_converge(run, topic, 400);
    s_check_link(run, run->live, 1);
    char *log = it_read_file(knows_dc1 ? run->dc1->log_path : x->log_path, NULL);
    const char *refusal = knows_dc1 ? "answered as dc dcx node 9" : "unknown dc dc1";
    cr_assert(log && strstr(log, refusal), "no \"%s\" in the log", refusal);
    free(log);
    char want[256];
    snprintf(want, sizeof want, "link to dc2 at %s failed (refused); fails over to %s", dcx_repl,
             run->live);
    log = it_read_file(run->dc1->log_path, NULL);
    cr_assert(log && strstr(log, want), "no \"%s\" in dc1's log", want);
    free(log);
}

//  dcx answers as itself: dc1 refuses the WELCOME and moves on.
Test(repl_failover, other_dc_answers_then_next_endpoint, .fini = it_teardown, .timeout = 120) {
    s_run_t run;
    s_other_dc_first(&run, true, "f.answered");
    char *line = s_peer(run.dc1, "dc2");
    int64_t refused = -1;
    cr_assert(it_json_int(line, "refused_unknown_dc", &refused), "%s", line);
    cr_assert_geq(refused, 1, "%s", line);
    free(line);
    s_exactly_once(&run, "f.answered", 400);
    it_acks_free(&run.acked);
}

//  dcx refuses dc1 (unknown DC): dc1 moves on; then dc2 ships from another
//  node id.
Test(repl_failover, other_dc_refuses_then_next_endpoint, .fini = it_teardown, .timeout = 120) {
    s_run_t run;
    s_other_dc_first(&run, false, "f.refused");
    //  Another node of dc2 (node id 3, on dc2's data dir) takes over: a peer
    //  DC may ship from several node ids; dc1 accepts it and says so.
    cr_assert_eq(it_broker_stop(run.dc2, 10000), 0, "dc2 did not stop cleanly");
    run.dc2->node_id = 3;
    cr_assert(it_broker_start(run.dc2), "dc2's node 3 did not start");
    s_pub(&run, run.dc2, "f.refused", "dc2-r", 201, 200);
    s_pub(&run, run.dc1, "f.refused", "dc1-r", 201, 200);
    s_converge(&run, "f.refused", 800);
    char *line = s_peer(run.dc1, "dc2");
    int64_t out_node = -1, in_node = -1, refused = -1;
    cr_assert(it_json_int(line, "node_id", &out_node), "%s", line);
    cr_assert(it_json_int(line, "inbound_node_id", &in_node), "%s", line);
    cr_assert(it_json_int(line, "refused_node_id", &refused), "%s", line);
    cr_assert_eq(out_node, 3, "%s", line);
    cr_assert_eq(in_node, 3, "%s", line);
    cr_assert_eq(refused, 0, "%s", line);
    free(line);
    s_exactly_once(&run, "f.refused", 800);
    it_acks_free(&run.acked);
}

//  Waits until B holds EXPECTED messages of TOPIC (fails past the time).
static void s_wait_msgs(it_broker_t *b, const char *topic, int64_t expected) {
    int64_t start = it_now_ms(), n = -1;
    while (it_now_ms() - start < S_CONVERGE_MS) {
        n = it_topic_msgs(b, topic);
        if (n == expected) {
            return;
        }
        it_sleep_ms(200);
    }
    it_broker_dump_log(b, false);
    cr_assert_fail("%s holds %ld of %ld messages of %s", b->dc, (long)n, (long)expected, topic);
}

//  B's log of TOPIC holds exactly EXPECTED messages, each msg_id once, and
//  every acknowledged msg_id.
static void s_once_in(s_run_t *run, it_broker_t *b, const char *topic, size_t expected) {
    cr_assert_eq(it_topic_msgs(b, topic), (int64_t)expected, "%s: message count", b->dc);
    int64_t *ids = s_log_ids(b, topic, expected);
    for (size_t i = 1; i < expected; i++) {
        cr_assert_neq(ids[i], ids[i - 1], "%s: msg_id %ld twice", b->dc, (long)ids[i]);
    }
    for (size_t i = 0; i < run->acked.count; i++) {
        cr_assert(bsearch(&run->acked.ids[i], ids, expected, sizeof *ids, it_cmp_i64),
                  "%s: acked msg_id %ld missing", b->dc, (long)run->acked.ids[i]);
    }
    free(ids);
}

//  Restarts B as node NODE_ID on its data dir DIR (under its root).
static void s_restart_on(it_broker_t *b, uint32_t node_id, const char *dir) {
    cr_assert_eq(it_broker_stop(b, 10000), 0, "%s did not stop cleanly", b->dc);
    b->node_id = node_id;
    snprintf(b->data_dir, sizeof b->data_dir, "%s/%s", b->root, dir);
    mkdir(b->data_dir, 0700);
    cr_assert(it_broker_start(b), "%s node %u on %s did not start", b->dc, node_id, dir);
}

//  dc1's inbound cursor for dc2 in `ternctl peers` (caller's buffer).
static void s_in_cursor(s_run_t *run, char *cursor, size_t cap) {
    char *line = s_peer(run->dc1, "dc2");
    cr_assert(it_json_str(line, "inbound_cursor", cursor, cap), "%s", line);
    free(line);
}

//  Outbox positions are numbered per data dir: dc1 keeps its cursor for dc2
//  per sender store identity. dc2's node 2 ships 50; a standby node 3 of
//  dc2 on ANOTHER (fresh) data dir at the same address ships 80, numbered
//  from 1 again: dc1 must hold all 130, each once (before the fix it took
//  node 3 from position 50 and lost 50 of them). Then node 2 comes back on
//  its own data dir: it resumes after its position 50, and its 20 new
//  messages arrive too.
Test(repl_failover, standby_with_other_data_dir, .fini = it_teardown, .timeout = 240) {
    s_run_t run;
    s_start(&run, NULL);
    s_pub(&run, run.dc2, "f.standby", "dc2-a", 1, 50);
    s_wait_msgs(run.dc1, "f.standby", 50);
    char first[128], second[128], third[128];
    s_in_cursor(&run, first, sizeof first);
    cr_assert(strncmp(first, "dc2/", 4) == 0 && strlen(first) == 4 + 36, "cursor %s", first);

    s_restart_on(run.dc2, 3, "data-standby");
    s_pub(&run, run.dc2, "f.standby", "dc2-b", 1, 80);
    s_wait_msgs(run.dc1, "f.standby", 130);
    s_in_cursor(&run, second, sizeof second);
    cr_assert(strncmp(second, "dc2/", 4) == 0 && strcmp(first, second) != 0, "cursor %s after %s",
              second, first);

    s_restart_on(run.dc2, 2, "data");
    s_pub(&run, run.dc2, "f.standby", "dc2-a", 51, 20);
    s_wait_msgs(run.dc1, "f.standby", 150);
    s_in_cursor(&run, third, sizeof third);
    cr_assert_str_eq(third, first, "node 2's data dir has its own cursor again");
    char *log = it_read_file(run.dc1->log_path, NULL);
    cr_assert(log && strstr(log, "inbound from dc2 (node 2) accepted; resuming after position 50"),
              "node 2 did not resume after its position 50");
    cr_assert(strstr(log, "inbound from dc2 (node 3) accepted; resuming after position 0"),
              "node 3 did not start from position 0");
    free(log);
    s_once_in(&run, run.dc1, "f.standby", 150);
    it_acks_free(&run.acked);
}

#define S_ID_X "11111111-1111-4111-8111-111111111111"
#define S_ID_Y "22222222-2222-4222-8222-222222222222"

//  A raw "dc2 node 2" session on B's replication endpoint: REPL_HELLO with
//  store identity IDENTITY (NULL: none, as an older ternd sends). Returns
//  the session and the position B's REPL_WELCOME answered in *POS.
static it_raw_t *s_raw_peer(it_broker_t *b, const char *identity, uint64_t *pos) {
    it_raw_t *raw = it_raw_new(b->repl_ep);
    cr_assert_not_null(raw);
    tern_frame_t f;
    tern_frame_init(&f, TERN_CMD_REPL_HELLO);
    f.req_id = 1;
    f.proto_version = TERN_PROTO_VERSION;
    f.node_id = 2;
    snprintf(f.dc, sizeof f.dc, "dc2");
    if (identity) {
        snprintf(f.name, sizeof f.name, "%s", identity);
        f.fields |= TERN_F_NAME;
    }
    cr_assert_eq(it_raw_send_frame(raw, &f), TERN_OK);
    tern_frame_t reply;
    cr_assert_eq(it_raw_recv_reply(raw, &reply, 10000), TERN_OK, "no answer to REPL_HELLO");
    cr_assert_eq(reply.cmd, TERN_CMD_REPL_WELCOME, "REPL_HELLO answered %d (%s)", reply.cmd,
                 reply.reason);
    *pos = reply.position;
    return raw;
}

//  Ships records FROM..TO (outbox positions; msg_id BASE + position) on RAW
//  and waits for B's confirmation of TO.
static void s_raw_ship(it_raw_t *raw, uint64_t from, uint64_t to, uint64_t base) {
    for (uint64_t p = from; p <= to; p++) {
        tern_frame_t f;
        it_repl_record(&f, p, base + p, "f.upgrade", "dc2");
        cr_assert_eq(it_raw_send_frame(raw, &f), TERN_OK);
    }
    int64_t start = it_now_ms();
    while (it_now_ms() - start < S_CONVERGE_MS) {
        tern_frame_t reply;
        if (it_raw_recv(raw, &reply, 1000) == TERN_OK && reply.cmd == TERN_CMD_REPL_CONFIRM &&
            reply.position >= to) {
            return;
        }
    }
    cr_assert_fail("position %lu not confirmed", (unsigned long)to);
}

//  The position B welcomes a dc2 sender with IDENTITY (NULL: none).
static uint64_t s_welcome_pos(it_broker_t *b, const char *identity) {
    uint64_t pos = UINT64_MAX;
    it_raw_t *raw = s_raw_peer(b, identity, &pos);
    it_raw_destroy(&raw);
    return pos;
}

//  Upgrade: a sender without a store identity (older ternd) uses the DC's
//  cursor "dc2", as before; the first identity seen takes it over (and it
//  is zeroed, so a second identity starts from 0); the cursors per identity
//  survive a restart.
Test(repl_failover, cursor_per_identity_and_upgrade, .fini = it_teardown, .timeout = 120) {
    char repl[64], peer[96];
    s_ep(repl, sizeof repl);
    snprintf(peer, sizeof peer, "dc2=tcp://127.0.0.1:%d", test_port());
    const char *x1[] = {"--repl-listen", repl, "--peer", peer, NULL};
    it_broker_t *b = it_adopt_broker(it_broker_new(1, x1));
    snprintf(b->repl_ep, sizeof b->repl_ep, "%s", repl);
    cr_assert(it_broker_start(b), "dc1 did not start");
    uint64_t pos = UINT64_MAX;
    it_raw_t *raw = s_raw_peer(b, NULL, &pos);
    cr_assert_eq(pos, 0);
    s_raw_ship(raw, 1, 5, 1000);
    it_raw_destroy(&raw);
    cr_assert_eq(s_welcome_pos(b, S_ID_X), 5, "the first identity takes over \"dc2\"");
    raw = s_raw_peer(b, S_ID_Y, &pos);
    cr_assert_eq(pos, 0, "a second identity starts from 0");
    s_raw_ship(raw, 1, 1, 2000);
    it_raw_destroy(&raw);
    cr_assert_eq(s_welcome_pos(b, S_ID_X), 5);
    cr_assert_eq(s_welcome_pos(b, NULL), 0, "\"dc2\" was taken over");

    cr_assert_eq(it_broker_stop(b, 10000), 0, "dc1 did not stop cleanly");
    cr_assert(it_broker_start(b), "dc1 did not restart");
    cr_assert_eq(s_welcome_pos(b, S_ID_Y), 1);
    cr_assert_eq(s_welcome_pos(b, S_ID_X), 5);
    cr_assert_eq(s_welcome_pos(b, NULL), 0);
    cr_assert_eq(it_topic_msgs(b, "f.upgrade"), 6);
}
