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

//  ternctl against every client endpoint of DC (libtern follows leaders).
static int s_ctl(s_dc_t *dc, it_result_t *r, int timeout_ms, const char *a1, const char *a2,
                 const char *a3, const char *a4, const char *a5, const char *a6, const char *a7,
                 const char *a8, const char *a9, const char *a10) {
    char *argv[] = {(char *)it_ternctl_path(),
                    "-s",
                    dc->client_list,
                    "--json",
                    (char *)a1,
                    (char *)a2,
                    (char *)a3,
                    (char *)a4,
                    (char *)a5,
                    (char *)a6,
                    (char *)a7,
                    (char *)a8,
                    (char *)a9,
                    (char *)a10,
                    NULL};
    return it_run(r, timeout_ms, NULL, argv);
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

static int s_cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

//  TOPIC's msg_ids in DC (sorted into *IDS, caller frees), reading up to
//  EXPECTED + 10 messages; returns how many.
static size_t s_read(s_dc_t *dc, const char *topic, size_t expected, int64_t **ids_p) {
    char count_s[32];
    snprintf(count_s, sizeof count_s, "%zu", expected + 10);
    it_result_t r;
    s_ctl(dc, &r, 60000, "sub", topic, "--from", "first", "--count", count_s, "--timeout", "2s",
          NULL, NULL);
    it_msg_t *msgs = NULL;
    size_t n = it_parse_msgs(r.out, &msgs);
    it_result_free(&r);
    int64_t *ids = malloc((n + 1) * sizeof *ids);
    for (size_t i = 0; i < n; i++) {
        ids[i] = msgs[i].msg_id;
    }
    it_msgs_free(msgs, n);
    qsort(ids, n, sizeof *ids, s_cmp_i64);
    *ids_p = ids;
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
        qsort(acked.ids, acked.count, sizeof *acked.ids, s_cmp_i64);
        cr_assert_eq(acked.count, (size_t)(2 * per), "acks of %s", topic);
        s_verify(dcs, 2, topic, (size_t)(2 * per), &acked);
        it_acks_free(&acked);
    }
}

Test(xdc, single_node_dc_and_clustered_dc) {
    s_dc_t dc1, dc2;
    s_dc_init(&dc1, "dc1", 1, 0, 10);
    s_dc_init(&dc2, "dc2", 3, 1, 1);
    s_dc_start(&dc1, &dc2);
    s_dc_start(&dc2, &dc1);
    s_dc_wait_led(&dc2);
    s_exchange(&dc1, &dc2, 200);
}
