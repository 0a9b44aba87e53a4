/*  it_xdc_outbox.c - the cross-DC outbox of a clustered DC is the same on
    every replica of a partition (issue 15, docs/replication.md "Outbox in
    a cluster"): real ternd processes, a 3-node cluster with a peer DC
    configured whose endpoint nobody listens on, so the outbox fills and
    nothing is confirmed or swept.

    The test publishes to a topic of partition 0 (with a durable group
    consuming and acking part of it: ack-state entries), kills the
    partition's leader with SIGKILL, publishes more through the new leader,
    restarts the old one (it catches up from the new leader: the outbox
    part of the SYNC answer), waits for the ISR to hold all three, stops
    every node and reads each data directory's outbox of the partition with
    the store API. Every replica must hold the same entries (position,
    kind, seq, msg_id, group, op), at positions 1..last without a gap, with
    one record entry for every acknowledged msg_id and none twice.
    outbox_catch_up_in_chunks runs the same with TERN_CREPL_CHUNK_OUTBOX=4
    (tern_crepl_outbox.c, "Chunks"): the old leader's catch-up must take
    several rounds (its log's "catch-up round" lines), with the same
    verdict.
*/
#include "cluster_harness.h"
#include "harness.h"
#include "tern_store.h"
#include "test_port.h"
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_NODES 3
#define S_PARTS 4
#define S_WAIT  30000

TestSuite(xdc_outbox, .fini = it_cluster_teardown, .timeout = 300);

//  ternctl against every client endpoint of C (libtern follows leaders).
static int s_ctl(it_cluster_t *c, it_result_t *r, const char *const *args) {
    return it_ctl_at(r, c->endpoints, 60000, args);
}

//  Publishes COUNT messages to TOPIC as producer P from SEQ; adds the acked
//  msg_ids to ACKED.
static void s_pub(it_cluster_t *c, it_acks_t *acked, const char *topic, int seq, int count) {
    char count_s[16], seq_s[16];
    snprintf(count_s, sizeof count_s, "%d", count);
    snprintf(seq_s, sizeof seq_s, "%d", seq);
    const char *args[] = {"pub",        topic,    "m{n}",  "--count", count_s,
                          "--producer", "obtest", "--seq", seq_s,     NULL};
    it_result_t r;
    s_ctl(c, &r, args);
    it_assert_ok(&r, "ternctl pub");
    cr_assert_eq(it_acks_add(acked, r.out), (size_t)count, "every publish acknowledged");
    it_result_free(&r);
}

//  Group G consumes and acks COUNT messages of TOPIC.
static void s_consume(it_cluster_t *c, const char *topic, int count) {
    char count_s[16];
    snprintf(count_s, sizeof count_s, "%d", count);
    const char *args[] = {"sub",   topic,       "--group", "g", "--count",
                          count_s, "--timeout", "10s",     NULL};
    it_result_t r;
    s_ctl(c, &r, args);
    it_assert_ok(&r, "ternctl sub");
    it_result_free(&r);
}

typedef struct {
    tern_outbox_entry_t e[256]; //  the entries, in position order
    size_t n;                   //  how many
} s_outbox_t;

static bool s_collect(const tern_outbox_entry_t *entry, void *arg) {
    s_outbox_t *ob = arg;
    cr_assert_lt(ob->n, 256, "more outbox entries than the test wrote");
    ob->e[ob->n++] = *entry;
    return true;
}

//  Partition PT's outbox in DIR (a stopped node's data dir) into OB.
static void s_read_outbox(const char *dir, uint32_t pt, s_outbox_t *ob) {
    tern_store_config_t config;
    tern_store_config_defaults(&config);
    config.dir = dir;
    config.partitions = S_PARTS;
    config.map_max = 1ull << 30;
    tern_err_t err;
    tern_store_t *store = tern_store_new(&config, &err);
    cr_assert_not_null(store, "cannot open %s: %s", dir, tern_strerror(err));
    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    memset(ob, 0, sizeof *ob);
    cr_assert_eq(tern_store_outbox_read_pt(reader, pt, 0, SIZE_MAX, s_collect, ob), TERN_OK);
    uint64_t last = 0;
    cr_assert_eq(tern_store_outbox_last_pt(reader, pt, &last), TERN_OK);
    cr_assert_eq(last, ob->n ? ob->e[ob->n - 1].position : 0, "%s: last %llu", dir,
                 (unsigned long long)last);
    tern_store_read_end(reader);
    tern_store_reader_destroy(&reader);
    tern_store_destroy(&store);
}

//  The same entry on two replicas (topic ids are per node: not compared).
static bool s_same(const tern_outbox_entry_t *a, const tern_outbox_entry_t *b) {
    return a->position == b->position && a->is_ackstate == b->is_ackstate && a->seq == b->seq &&
           a->msg_id == b->msg_id && a->op == b->op && !strcmp(a->group, b->group);
}

static void s_dump(const char *who, const s_outbox_t *ob) {
    for (size_t i = 0; i < ob->n; i++) {
        fprintf(stderr, "%s: pos %llu %s seq %llu msg %llu op %u group %s\n", who,
                (unsigned long long)ob->e[i].position, ob->e[i].is_ackstate ? "ack" : "rec",
                (unsigned long long)ob->e[i].seq, (unsigned long long)ob->e[i].msg_id, ob->e[i].op,
                ob->e[i].group);
    }
}

//  Lines of node B's current log naming NEEDLE.
static int s_log_count(it_broker_t *b, const char *needle) {
    size_t len = 0;
    char *log = it_read_file(b->log_path, &len);
    cr_assert_not_null(log, "cannot read %s", b->log_path);
    int n = 0;
    size_t from = (size_t)b->log_offset <= len ? (size_t)b->log_offset : len;
    for (const char *at = strstr(log + from, needle); at; at = strstr(at + 1, needle)) {
        n++;
    }
    free(log);
    return n;
}

//  The scenario of both tests; with CHUNK set, TERN_CREPL_CHUNK_OUTBOX on
//  every node, and the old leader's catch-up must take several rounds.
static void s_failover(const char *chunk) {
    if (chunk) {
        setenv("TERN_CREPL_CHUNK_OUTBOX", chunk, 1); //  Criterion forks per test: not leaked
    }
    char peer[64];
    snprintf(peer, sizeof peer, "dc9=tcp://127.0.0.1:%d", test_port()); //  nobody listens
    const char *extra[] = {"--dc", "dc1", "--peer", peer, "--lease", "2s", NULL};
    it_cluster_t *c = it_cluster_new(S_NODES, 1, S_PARTS, extra);
    cr_assert_not_null(c);
    for (int i = 0; i < S_NODES; i++) { //  each node its own repl endpoint
        it_broker_t *b = c->node[i];
        char repl[64];
        snprintf(repl, sizeof repl, "tcp://127.0.0.1:%d", test_port());
        b->extra[b->extra_count++] = strdup("--repl-listen");
        b->extra[b->extra_count++] = strdup(repl);
    }
    cr_assert(it_cluster_start(c, S_WAIT));
    char topic[64];
    it_cluster_topic_for(c, 0, "ob", topic, sizeof topic);
    it_acks_t acked = {0};
    tern_partmap_record_t rec;
    cr_assert(it_cluster_wait_isr_full(c, 0, S_WAIT, &rec));
    s_pub(c, &acked, topic, 1, 20);
    s_consume(c, topic, 8);

    int old = it_cluster_leader(c, 0);
    cr_assert_geq(old, 0);
    cr_assert(it_cluster_record(c, 0, &rec, false));
    it_cluster_kill_node(c, old);
    cr_assert(it_cluster_wait_leader(c, 0, old, rec.epoch, S_WAIT, &rec));
    s_pub(c, &acked, topic, 21, 20);
    s_consume(c, topic, 8);

    cr_assert(it_cluster_start_node(c, old));
    cr_assert(it_cluster_wait_isr_full(c, 0, S_WAIT, &rec), "the old leader rejoined the ISR");
    //  Its catch-up: records first (one round, far below their bound), then
    //  the outbox part, in rounds of CHUNK entries (x2 each, up to x4).
    int rounds = s_log_count(c->node[old], "partition 0: catch-up round ");
    cr_log_info("node %d caught up on partition 0 after %d short rounds", old, rounds);
    if (chunk) {
        cr_assert_geq(rounds, 3, "%d short rounds: the outbox part was not chunked", rounds);
    } else {
        cr_assert_eq(rounds, 0, "the outbox fits one round at the default bound");
    }
    s_pub(c, &acked, topic, 41, 5); //  live again on every replica
    cr_assert(it_cluster_wait_isr_full(c, 0, S_WAIT, &rec));
    it_sleep_ms(2000); //  group ops and confirmations take no position: let them land
    for (int i = 0; i < S_NODES; i++) {
        cr_assert_eq(it_cluster_stop_node(c, i, 10000), 0, "node %d stopped cleanly", i);
    }

    static s_outbox_t ob[S_NODES];
    for (int i = 0; i < S_NODES; i++) {
        s_read_outbox(c->node[i]->data_dir, 0, &ob[i]);
    }
    //  One record entry per acknowledged message, none twice; acks too.
    size_t records = 0, acks = 0;
    for (size_t k = 0; k < ob[0].n; k++) {
        cr_assert_eq(ob[0].e[k].position, k + 1, "positions 1..last without a gap");
        if (ob[0].e[k].is_ackstate) {
            acks++;
            continue;
        }
        records++;
        size_t found = 0;
        for (size_t a = 0; a < acked.count; a++) {
            found += (uint64_t)acked.ids[a] == ob[0].e[k].msg_id;
        }
        cr_assert_eq(found, 1, "entry msg %llu is an acknowledged message",
                     (unsigned long long)ob[0].e[k].msg_id);
    }
    cr_assert_eq(records, acked.count, "every acknowledged message has its outbox entry");
    cr_assert_geq(acks, 8, "the group's acks have ack-state entries");
    for (int i = 1; i < S_NODES; i++) {
        bool same = ob[i].n == ob[0].n;
        for (size_t k = 0; same && k < ob[0].n; k++) {
            same = s_same(&ob[i].e[k], &ob[0].e[k]);
        }
        if (!same) {
            s_dump("node 0", &ob[0]);
            char who[16];
            snprintf(who, sizeof who, "node %d", i);
            s_dump(who, &ob[i]);
        }
        cr_assert(same, "node %d holds node 0's outbox of partition 0", i);
    }
    it_acks_free(&acked);
}

Test(xdc_outbox, replicas_hold_the_same_outbox_across_a_failover) {
    s_failover(NULL);
}

//  The outbox part of the SYNC answer in chunks of 4 entries (about 60 to
//  send: 4 + 8 + 16 + 16 + 16 ...): several rounds, each resumed where the
//  last stopped, and the same outbox, exactly once, on every replica.
Test(xdc_outbox, outbox_catch_up_in_chunks) {
    s_failover("4");
}
