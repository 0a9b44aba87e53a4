/*  it_xdc.c - cross-DC replication between clustered DCs (issue 15): real
    ternd processes on loopback, each clustered DC with its own etcd and
    cluster name, DC names dc1 and dc2, node ids unique across DCs.

    Each test publishes with producer ids in every DC (through ternctl with
    every client endpoint of the DC: libtern follows the partition leaders),
    gathers every acknowledged msg_id, then reads every topic back from every
    DC and checks: every acked msg_id is there, none twice (by msg_id and by
    producer + producer_seq), the same set in every DC.
*/
#include "cluster_harness.h"
#include "etcd_harness.h"
#include "harness.h"
#include "tern_partition.h"
#include "test_port.h"
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_NODES_MAX   3
#define S_CONVERGE_MS 45000
#define S_WAIT_MS     30000
#define S_TOPICS      4

//  One DC: a single ternd, or a cluster of nodes on its own etcd.
typedef struct {
    char name[8];                       //  dc1, dc2
    int count;                          //  nodes
    uint32_t partitions;                //  0: a single node
    uint32_t first_id;                  //  node ids first_id .. first_id + count - 1
    it_etcd_t *etcd;                    //  owned (cluster only)
    it_broker_t *node[S_NODES_MAX];     //  adopted: it_teardown stops them
    char repl[S_NODES_MAX][64];         //  --repl-listen of each node
    char repl_list[S_NODES_MAX * 64];   //  every repl endpoint, comma-separated (for --peer)
    char client_list[S_NODES_MAX * 64]; //  every client endpoint, comma-separated
} s_dc_t;

static it_etcd_t *s_etcds[4]; //  every DC's etcd, destroyed after the nodes

static void s_teardown(void) {
    it_teardown();
    for (size_t i = 0; i < sizeof s_etcds / sizeof s_etcds[0]; i++) {
        it_etcd_destroy(&s_etcds[i]);
    }
}

TestSuite(xdc, .fini = s_teardown, .timeout = 300);

//  Describes DC NAME of COUNT nodes (PARTITIONS 0: one single node) with
//  ids from FIRST_ID: its repl endpoints are chosen here, before any
//  node starts, so that the other DC's --peer can name them.
static void s_dc_init(s_dc_t *dc, const char *name, int count, uint32_t partitions,
                      uint32_t first_id) {
    memset(dc, 0, sizeof *dc);
    snprintf(dc->name, sizeof dc->name, "%s", name);
    dc->count = count;
    dc->partitions = partitions;
    dc->first_id = first_id;
    for (int i = 0; i < count; i++) {
        snprintf(dc->repl[i], sizeof dc->repl[i], "tcp://127.0.0.1:%d", test_port());
        size_t used = strlen(dc->repl_list);
        snprintf(dc->repl_list + used, sizeof dc->repl_list - used, "%s%s", i ? "," : "",
                 dc->repl[i]);
    }
}

//  Starts DC with PEER as its one peer DC.
static void s_dc_start(s_dc_t *dc, const s_dc_t *peer) {
    char peer_arg[S_NODES_MAX * 64 + 16];
    snprintf(peer_arg, sizeof peer_arg, "%s=%s", peer->name, peer->repl_list);
    if (dc->partitions) {
        dc->etcd = it_etcd_new(1);
        cr_assert_not_null(dc->etcd, "%s: etcd did not start", dc->name);
        for (size_t i = 0; i < sizeof s_etcds / sizeof s_etcds[0]; i++) {
            if (!s_etcds[i]) {
                s_etcds[i] = dc->etcd; //  s_teardown destroys it
                break;
            }
        }
    }
    for (int i = 0; i < dc->count; i++) {
        const char *extra[] = {"--dc",   dc->name, "--repl-listen", dc->repl[i], "--peer",
                               peer_arg, NULL};
        it_broker_t *b;
        if (dc->partitions) {
            char cluster[32];
            snprintf(cluster, sizeof cluster, "x%s%d", dc->name, (int)getpid());
            b = it_cluster_node(dc->etcd, cluster, dc->first_id + (uint32_t)i, dc->partitions,
                                extra);
        } else {
            b = it_adopt_broker(it_broker_new(dc->first_id, extra));
            cr_assert(b);
            snprintf(b->dc, sizeof b->dc, "%s", dc->name);
            if (!it_broker_start(b)) {
                b = NULL;
            }
        }
        cr_assert(b, "%s: node %d did not start", dc->name, i);
        snprintf(b->dc, sizeof b->dc, "%s", dc->name);
        dc->node[i] = b;
        size_t used = strlen(dc->client_list);
        snprintf(dc->client_list + used, sizeof dc->client_list - used, "%s%s", i ? "," : "",
                 b->endpoint);
    }
}

//  Waits until every partition of DC has a leader (`ternctl cluster`).
static void s_dc_wait_led(s_dc_t *dc) {
    if (!dc->partitions) {
        return;
    }
    int64_t deadline = it_now_ms() + S_WAIT_MS;
    for (;;) {
        it_result_t r;
        int rc = it_ctl(&r, dc->node[0], 10000, "cluster", "partitions", NULL);
        char *copy = strdup(r.out);
        char **lines = NULL;
        size_t n = rc == 0 ? it_split_lines(copy, &lines) : 0;
        uint32_t led = 0;
        for (size_t i = 0; i < n; i++) {
            int64_t leader;
            if (it_json_int(lines[i], "leader", &leader)) {
                led++;
            }
        }
        free(lines);
        free(copy);
        it_result_free(&r);
        if (led == dc->partitions) {
            return;
        }
        cr_assert(it_now_ms() < deadline, "%s: partitions not all led", dc->name);
        it_sleep_ms(200);
    }
}

//  Starts A and B as each other's peer and waits until every partition of
//  each is led.
static void s_pair_start(s_dc_t *a, s_dc_t *b) {
    s_dc_start(a, b);
    s_dc_start(b, a);
    s_dc_wait_led(a);
    s_dc_wait_led(b);
}

//  ternctl against every client endpoint of DC (libtern follows leaders).
static int s_ctl(s_dc_t *dc, it_result_t *r, int timeout_ms, const char *a1, const char *a2,
                 const char *a3, const char *a4, const char *a5, const char *a6, const char *a7,
                 const char *a8, const char *a9, const char *a10) {
    const char *args[] = {a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, NULL};
    return it_ctl_at(r, dc->client_list, timeout_ms, args);
}

//  Publishes COUNT messages to TOPIC in DC as PRODUCER from SEQ; adds the
//  acked msg_ids to ACKED.
static void s_pub(s_dc_t *dc, it_acks_t *acked, const char *topic, const char *producer, int seq,
                  int count) {
    char count_s[16], seq_s[16];
    snprintf(count_s, sizeof count_s, "%d", count);
    snprintf(seq_s, sizeof seq_s, "%d", seq);
    it_result_t r;
    s_ctl(dc, &r, 60000, "pub", topic, "m{n}", "--count", count_s, "--producer", producer, "--seq",
          seq_s, NULL);
    it_assert_ok(&r, "ternctl pub");
    it_acks_add(acked, r.out);
    it_result_free(&r);
}

//  TOPIC's msg_ids in DC (sorted into *IDS, caller frees), reading up to
//  EXPECTED + 10 messages; returns how many.
static size_t s_read(s_dc_t *dc, const char *topic, size_t expected, int64_t **ids_p) {
    char count_s[32];
    snprintf(count_s, sizeof count_s, "%zu", expected + 10);
    it_result_t r;
    s_ctl(dc, &r, 60000, "sub", topic, "--from", "first", "--count", count_s, "--timeout", "2s",
          NULL, NULL);
    size_t n = it_parse_msg_ids(r.out, ids_p);
    it_result_free(&r);
    return n;
}

//  Waits until every DC holds EXPECTED messages of TOPIC, then checks them:
//  the acked ones (ACKED, sorted) all there, none twice, one set everywhere.
static void s_verify(s_dc_t **dcs, int ndc, const char *topic, size_t expected,
                     const it_acks_t *acked) {
    int64_t deadline = it_now_ms() + S_CONVERGE_MS;
    int64_t *ids[4] = {NULL};
    size_t n[4] = {0};
    for (int d = 0; d < ndc; d++) {
        for (;;) {
            free(ids[d]);
            n[d] = s_read(dcs[d], topic, expected, &ids[d]);
            if (n[d] >= expected || it_now_ms() > deadline) {
                break;
            }
            it_sleep_ms(300);
        }
        cr_assert_eq(n[d], expected, "%s holds %zu of %zu messages of %s", dcs[d]->name, n[d],
                     expected, topic);
        for (size_t i = 1; i < n[d]; i++) {
            cr_assert_neq(ids[d][i], ids[d][i - 1], "%s: msg_id %ld twice", dcs[d]->name,
                          (long)ids[d][i]);
        }
        size_t j = 0;
        for (size_t i = 0; i < acked->count; i++) {
            if (i > 0 && acked->ids[i] == acked->ids[i - 1]) {
                continue;
            }
            while (j < n[d] && ids[d][j] < acked->ids[i]) {
                j++;
            }
            cr_assert(j < n[d] && ids[d][j] == acked->ids[i], "%s: acked msg_id %ld missing",
                      dcs[d]->name, (long)acked->ids[i]);
        }
        if (d > 0) {
            cr_assert_eq(memcmp(ids[0], ids[d], n[d] * sizeof *ids[d]), 0,
                         "%s holds another set than %s", dcs[d]->name, dcs[0]->name);
        }
    }
    for (int d = 0; d < ndc; d++) {
        free(ids[d]);
    }
}

//  Publishes PER messages to each of S_TOPICS topics in both DCs (producers
//  named after the DC), and verifies every topic in both DCs.
static void s_exchange(s_dc_t *a, s_dc_t *b, int per) {
    s_dc_t *dcs[2] = {a, b};
    for (int t = 0; t < S_TOPICS; t++) {
        char topic[32];
        snprintf(topic, sizeof topic, "xdc.t%d", t);
        it_acks_t acked = {0};
        for (int d = 0; d < 2; d++) {
            char producer[32];
            snprintf(producer, sizeof producer, "%s-p%d", dcs[d]->name, t);
            s_pub(dcs[d], &acked, topic, producer, 1, per);
        }
        qsort(acked.ids, acked.count, sizeof *acked.ids, it_cmp_i64);
        cr_assert_eq(acked.count, (size_t)(2 * per), "acks of %s", topic);
        s_verify(dcs, 2, topic, (size_t)(2 * per), &acked);
        it_acks_free(&acked);
    }
}

//  The node (index in DC) that leads TOPIC's partition now, per `ternctl
//  cluster partitions` on a running node of DC; -1 if none.
static int s_leader_of(s_dc_t *dc, const char *topic) {
    uint32_t pt = tern_partition_of(topic, strlen(topic), dc->partitions);
    for (int i = 0; i < dc->count; i++) {
        if (!it_broker_alive(dc->node[i], NULL)) {
            continue;
        }
        it_result_t r;
        int rc = it_ctl(&r, dc->node[i], 10000, "cluster", "partitions", NULL);
        char *copy = strdup(r.out);
        it_result_free(&r);
        char **lines = NULL;
        size_t n = rc == 0 ? it_split_lines(copy, &lines) : 0;
        int64_t leader = -1;
        for (size_t k = 0; k < n; k++) {
            if (it_json_field(lines[k], "partition") == (int64_t)pt) {
                it_json_int(lines[k], "leader", &leader);
            }
        }
        free(lines);
        free(copy);
        if (leader >= (int64_t)dc->first_id && leader < (int64_t)dc->first_id + dc->count) {
            return (int)(leader - dc->first_id);
        }
    }
    return -1;
}

//  `ternctl peers --json` of DC's node I: the line of peer NAME (caller
//  frees), or NULL.
static char *s_peer_line(s_dc_t *dc, int i, const char *name) {
    it_result_t r;
    it_ctl(&r, dc->node[i], 10000, "peers", NULL);
    char **lines = NULL;
    size_t n = r.status == 0 ? it_split_lines(r.out, &lines) : 0;
    char *found = NULL;
    for (size_t k = 0; k < n && !found; k++) {
        char dcname[80];
        if (it_json_str(lines[k], "dc", dcname, sizeof dcname) && strcmp(dcname, name) == 0) {
            found = strdup(lines[k]);
        }
    }
    free(lines);
    it_result_free(&r);
    return found;
}

//  Occurrences of NEEDLE in TEXT.
static int s_count(const char *text, const char *needle) {
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle)) {
        n++;
    }
    return n;
}

//  (d) A single-node DC and a 3-node DC of 4 partitions: the single node
//  learns dc2's map and sends each record to its partition's leader; every
//  dc2 node ships what it originated to dc1.
Test(xdc, single_node_dc_and_clustered_dc) {
    s_dc_t dc1, dc2;
    s_dc_init(&dc1, "dc1", 1, 0, 10);
    s_dc_init(&dc2, "dc2", 3, 4, 1);
    s_pair_start(&dc1, &dc2);
    s_exchange(&dc1, &dc2, 200);
    //  dc1's link to dc2 learnt its map: rows per partition leader there.
    char *line = s_peer_line(&dc1, 0, "dc2");
    cr_assert(line, "no peers line for dc2");
    cr_assert(strstr(line, "\"clustered\":true"), "%s", line);
    cr_assert_geq(s_count(line, "\"local_node_id\":10"), 3, "links: %s", line);
    free(line);
    //  Each dc2 node announces its repl endpoint (node key, `ternctl cluster`).
    it_result_t c;
    it_ctl(&c, dc2.node[0], 10000, "cluster", NULL);
    it_assert_ok(&c, "ternctl cluster");
    for (int i = 0; i < dc2.count; i++) {
        char want[96];
        snprintf(want, sizeof want, "\"repl\":\"%s\"", dc2.repl[i]);
        cr_assert(strstr(c.out, want), "no %s in:\n%s", want, c.out);
    }
    it_result_free(&c);
    //  The table: a row per dc2 node shipped to, under dc2's own row.
    it_result_t r;
    it_ctl_text(&r, dc1.node[0], 10000, NULL, "peers", NULL);
    it_assert_ok(&r, "ternctl peers");
    cr_assert_geq(s_count(r.out, "\n  dc2 "), 2, "table:\n%s", r.out);
    it_result_free(&r);
}

//  `ternctl trace` in DC of a message published there says PEER confirmed
//  it, once PEER holds it. The topic is not in partition 0 and nothing was
//  published before: a check against another partition's confirmation
//  (partition 0's, nothing) would never see it.
static void s_trace_reaches(s_dc_t *dc, s_dc_t *peer) {
    const char *topic = "xdc.trace1";
    cr_assert_neq(tern_partition_of(topic, strlen(topic), dc->partitions), 0);
    it_acks_t acked = {0};
    s_pub(dc, &acked, topic, "tr", 1, 1);
    cr_assert_eq(acked.count, 1);
    s_dc_t *dcs[2] = {dc, peer};
    s_verify(dcs, 2, topic, 1, &acked);
    char id[32];
    snprintf(id, sizeof id, "%lld", (long long)acked.ids[0]);
    char want[80];
    snprintf(want, sizeof want, "\"peer\":\"%s\",\"confirmed\":true", peer->name);
    int64_t deadline = it_now_ms() + S_CONVERGE_MS;
    bool confirmed = false;
    while (!confirmed) {
        it_result_t r;
        s_ctl(dc, &r, 10000, "trace", id, "--json", NULL, NULL, NULL, NULL, NULL, NULL, NULL);
        confirmed = r.status == 0 && strstr(r.out, want);
        if (!confirmed && it_now_ms() > deadline) {
            cr_assert_fail("%s: trace of %s never says %s confirmed it: %s", dc->name, id,
                           peer->name, r.out);
        }
        it_result_free(&r);
        if (!confirmed) {
            it_sleep_ms(300);
        }
    }
    it_acks_free(&acked);
}

//  (a) Two 3-node DCs with different partition counts, producers in both.
Test(xdc, two_clustered_dcs) {
    s_dc_t dc1, dc2;
    s_dc_init(&dc1, "dc1", 3, 4, 1);
    s_dc_init(&dc2, "dc2", 3, 6, 4);
    s_pair_start(&dc1, &dc2);
    s_trace_reaches(&dc1, &dc2);
    s_exchange(&dc1, &dc2, 200);
}

//  `ternctl peers VERB NAME` on every running node of DC.
static void s_peers_ctl(s_dc_t *dc, const char *verb, const char *name) {
    for (int i = 0; i < dc->count; i++) {
        if (it_broker_alive(dc->node[i], NULL)) {
            it_result_t r;
            it_ctl(&r, dc->node[i], 10000, "peers", verb, name, NULL);
            it_assert_ok(&r, "ternctl peers pause/resume");
            it_result_free(&r);
        }
    }
}

//  Publishes 300 messages in PUB_DC to TOPIC, kills -9 the node of KILL_DC
//  that leads TOPIC's partition, publishes 300 more, and checks both DCs
//  hold every acked message once. HOLD: the other DC pauses its link to
//  PUB_DC until then, so that nothing is shipped before the kill.
static void s_kill_leader(s_dc_t *dc1, s_dc_t *dc2, s_dc_t *pub_dc, s_dc_t *kill_dc,
                          const char *topic, bool hold) {
    it_acks_t acked = {0};
    s_dc_t *other = pub_dc == dc1 ? dc2 : dc1;
    if (hold) {
        //  Nothing is shipped until the leader is gone: its successor must
        //  ship all of it from the outbox its DC replicated.
        s_peers_ctl(other, "pause", pub_dc->name);
    }
    s_pub(pub_dc, &acked, topic, "kp", 1, 300);
    int victim = s_leader_of(kill_dc, topic);
    cr_assert_geq(victim, 0, "%s: no leader of %s", kill_dc->name, topic);
    it_broker_kill(kill_dc->node[victim]);
    fprintf(stderr, "it_xdc: killed %s node %u (leader of %s) while shipping\n", kill_dc->name,
            kill_dc->first_id + (uint32_t)victim, topic);
    s_pub(pub_dc, &acked, topic, "kp", 301, 300);
    if (hold) {
        s_peers_ctl(other, "resume", pub_dc->name);
    }
    qsort(acked.ids, acked.count, sizeof *acked.ids, it_cmp_i64);
    s_dc_t *dcs[2] = {dc1, dc2};
    s_verify(dcs, 2, topic, acked.count, &acked);
    //  What the renewals resent (correct, dropped by msg_id): a measure, not
    //  a bound (docs/replication.md, "Clustered DCs").
    int64_t resent = 0;
    for (int i = 0; i < other->count; i++) {
        char *line =
            it_broker_alive(other->node[i], NULL) ? s_peer_line(other, i, pub_dc->name) : NULL;
        int64_t n = 0;
        if (line && it_json_int(line, "replays_dropped", &n)) {
            resent += n;
        }
        free(line);
    }
    fprintf(stderr, "it_xdc: %s received %lld of the %zu records again (replays_dropped)\n",
            other->name, (long long)resent, acked.count);
    it_acks_free(&acked);
}

//  (b) The sending DC's partition leader is killed while it ships: its
//  successor resumes from the replicated shipping position; nothing acked
//  is missing in the other DC, nothing is there twice.
Test(xdc, sending_leader_killed) {
    s_dc_t dc1, dc2;
    s_dc_init(&dc1, "dc1", 3, 2, 1);
    s_dc_init(&dc2, "dc2", 1, 0, 10);
    s_pair_start(&dc1, &dc2);
    s_kill_leader(&dc1, &dc2, &dc1, &dc1, "xdc.kill.send", true);
}

//  (c) The receiving DC's partition leader is killed while records arrive:
//  the sender learns the new leader and resends what was not confirmed
//  (confirmed only once the ISR had it).
Test(xdc, receiving_leader_killed) {
    s_dc_t dc1, dc2;
    s_dc_init(&dc1, "dc1", 1, 0, 10);
    s_dc_init(&dc2, "dc2", 3, 2, 1);
    s_pair_start(&dc1, &dc2);
    s_kill_leader(&dc1, &dc2, &dc1, &dc2, "xdc.kill.recv", false);
}

//  next_unacked of GROUP on TOPIC in DC (`ternctl groups`), or -1.
static int64_t s_ack_floor(s_dc_t *dc, const char *topic, const char *group) {
    it_result_t r;
    int64_t floor =
        s_ctl(dc, &r, 10000, "groups", topic, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL) == 0
            ? it_group_field(r.out, group, "next_unacked")
            : -1;
    it_result_free(&r);
    return floor;
}

//  Waits until GROUP on TOPIC in DC shows next_unacked WANT; false if it
//  never does.
static bool s_wait_floor(s_dc_t *dc, const char *topic, const char *group, int64_t want) {
    int64_t deadline = it_now_ms() + S_CONVERGE_MS;
    while (s_ack_floor(dc, topic, group) != want) {
        if (it_now_ms() >= deadline) {
            return false;
        }
        it_sleep_ms(200);
    }
    return true;
}

//  A group acks 120 of 200 messages published in DC1; once DC2 shows them
//  acked (they reach the leader of the topic's partition in dc2 by msg_id),
//  KILL: its leader of TOPIC is killed -9 and a new one takes over; then
//  the consumer that moves to DC2 gets exactly the other 80.
static void s_acks_move(s_dc_t *dc1, s_dc_t *dc2, const char *topic, bool kill) {
    it_acks_t acked = {0};
    s_pub(dc1, &acked, topic, "dc1-a", 1, 200);
    qsort(acked.ids, acked.count, sizeof *acked.ids, it_cmp_i64);
    s_dc_t *dcs[2] = {dc1, dc2};
    s_verify(dcs, 2, topic, 200, &acked);
    it_acks_free(&acked);
    it_result_t r;
    s_ctl(dc1, &r, 30000, "sub", topic, "--group", "g", "--count", "120", NULL, NULL, NULL, NULL);
    it_assert_ok(&r, "sub in dc1");
    it_result_free(&r);
    cr_assert(s_wait_floor(dc2, topic, "g", 121), "dc2 did not get dc1's acks");
    if (kill) {
        int victim = s_leader_of(dc2, topic);
        cr_assert_geq(victim, 0, "dc2: no leader of %s", topic);
        it_broker_kill(dc2->node[victim]);
        fprintf(stderr, "it_xdc: killed dc2 node %u (leader of %s) after it applied the acks\n",
                dc2->first_id + (uint32_t)victim, topic);
        int64_t deadline = it_now_ms() + S_CONVERGE_MS;
        int leader;
        while ((leader = s_leader_of(dc2, topic)) < 0 || leader == victim) {
            cr_assert(it_now_ms() < deadline, "dc2: no new leader of %s", topic);
            it_sleep_ms(200);
        }
        cr_assert(s_wait_floor(dc2, topic, "g", 121),
                  "dc2's new leader lacks dc1's acks: next_unacked %lld",
                  (long long)s_ack_floor(dc2, topic, "g"));
    }
    s_ctl(dc2, &r, 30000, "sub", topic, "--group", "g", "--count", "200", "--timeout", "3s", NULL,
          NULL);
    it_assert_ok(&r, "sub in dc2");
    it_msg_t *msgs = NULL;
    size_t n = it_parse_msgs(r.out, &msgs);
    it_result_free(&r);
    cr_assert_eq(n, 80u, "dc2 delivered %zu messages, expected the 80 not acked in dc1", n);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(msgs[i].producer_seq, (int64_t)(121 + i));
    }
    it_msgs_free(msgs, n);
}

//  Ack state between clustered DCs: the acks are ack-state entries of
//  dc1's partition outbox.
Test(xdc, ack_state_between_clustered_dcs) {
    s_dc_t dc1, dc2;
    s_dc_init(&dc1, "dc1", 3, 2, 1);
    s_dc_init(&dc2, "dc2", 3, 3, 4);
    s_pair_start(&dc1, &dc2);
    s_acks_move(&dc1, &dc2, "xdc.ack", false);
}

//  The receiving DC's partition leader applied dc1's acks and is killed -9:
//  its followers got them in-DC (a CREPL_GROUP ack op by seq with aux
//  TERN_GOP_AUX_PEER, run the way the leader ran it), so the new leader
//  does not deliver the 120 again.
Test(xdc, ack_state_survives_receiving_failover) {
    s_dc_t dc1, dc2;
    s_dc_init(&dc1, "dc1", 1, 0, 10);
    s_dc_init(&dc2, "dc2", 3, 2, 1);
    s_pair_start(&dc1, &dc2);
    s_acks_move(&dc1, &dc2, "xdc.ack.fail", true);
}

//  A leadership start on a node whose link to a single-node peer DC is
//  live renews that link's session in place (review15 m3): the link is not
//  refused, counts no failure and waits out no backoff; the successor
//  ships what it inherited, and the rest, exactly once.
Test(xdc, leadership_start_keeps_a_live_link) {
    s_dc_t dc1, dc2;
    s_dc_init(&dc1, "dc1", 3, 2, 1);
    s_dc_init(&dc2, "dc2", 1, 0, 10);
    s_pair_start(&dc1, &dc2);
    s_kill_leader(&dc1, &dc2, &dc1, &dc1, "xdc.lead.start", false);
    for (int i = 0; i < dc1.count; i++) {
        if (it_broker_alive(dc1.node[i], NULL)) {
            cr_assert(!it_broker_logged(dc1.node[i], "link to dc2 lost"),
                      "dc1 node %u dropped its live link to dc2 at a leadership start",
                      dc1.first_id + (uint32_t)i);
        }
    }
}
