/*  xdc_harness.c - several clustered DCs on loopback for the cross-DC drills.

    See xdc_harness.h. Each DC is a set of it_broker_t nodes on its own
    etcd (the node flags of cluster_harness.c's it_cluster_node, started
    together because a node's join may wait for the others); the history
    is written as the drill goes and checked by bin/tern-check at the end.
*/
#include "xdc_harness.h"
#include "tern_err.h"
#include "tern_partition.h"
#include "tern_store.h"
#include "test_port.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_WAIT_MS 60000 //  startup and leadership waits

//  ---------------------------------------------------------------------------
//  Starting the DCs

//  The flags of node I of DC (ids, repl endpoint, every other DC as a peer)
//  plus EXTRA, as a new adopted it_broker_t (not started).
static it_broker_t *s_node_new(it_xdc_t *self, it_xdc_dc_t *dc, int i, const char *const *extra) {
    char listen[64], count[16], peers[IT_XDC_DCS_MAX][IT_XDC_NODES_MAX * 64 + 16];
    snprintf(listen, sizeof listen, "tcp://127.0.0.1:%d", test_port());
    snprintf(count, sizeof count, "%u", self->partitions);
    const char *args[IT_EXTRA_MAX] = {"--etcd",
                                      dc->etcd->endpoints,
                                      "--cluster",
                                      dc->cluster,
                                      "--cluster-listen",
                                      listen,
                                      "--partitions",
                                      count,
                                      "--lease",
                                      "2s",
                                      "--dc",
                                      dc->name,
                                      "--repl-listen",
                                      dc->repl[i]};
    int n = 14;
    for (int p = 0; p < self->count; p++) {
        if (&self->dc[p] != dc) {
            snprintf(peers[p], sizeof peers[p], "%s=%s", self->dc[p].name, self->dc[p].repl_list);
            args[n++] = "--peer";
            args[n++] = peers[p];
        }
    }
    for (size_t k = 0; extra && extra[k] && n < IT_EXTRA_MAX - 1; k++) {
        args[n++] = extra[k];
    }
    args[n] = NULL;
    it_broker_t *b = it_adopt_broker(it_broker_new(dc->first_id + (uint32_t)i, args));
    cr_assert(b, "%s: node %d not created", dc->name, i);
    snprintf(b->dc, sizeof b->dc, "%s", dc->name);
    return b;
}

it_xdc_t *it_xdc_new(int dcs, int nodes, uint32_t partitions, int etcd_members,
                     const char *const *extra) {
    cr_assert(dcs >= 1 && dcs <= IT_XDC_DCS_MAX && nodes >= 1 && nodes <= IT_XDC_NODES_MAX);
    it_xdc_t *self = calloc(1, sizeof *self);
    self->count = dcs;
    self->partitions = partitions;
    cr_assert(test_dir_make(self->dir, "xdc"), "no temp dir");
    snprintf(self->path, sizeof self->path, "%s/history.jsonl", self->dir);
    self->hist = fopen(self->path, "w");
    cr_assert(self->hist, "cannot write %s", self->path);
    for (int d = 0; d < dcs; d++) {
        it_xdc_dc_t *dc = &self->dc[d];
        snprintf(dc->name, sizeof dc->name, "dc%d", d + 1);
        snprintf(dc->cluster, sizeof dc->cluster, "xd%d%s", (int)getpid(), dc->name);
        dc->count = nodes;
        dc->first_id = (uint32_t)d * 10 + 1;
        for (int i = 0; i < nodes; i++) {
            snprintf(dc->repl[i], sizeof dc->repl[i], "tcp://127.0.0.1:%d", test_port());
            size_t used = strlen(dc->repl_list);
            snprintf(dc->repl_list + used, sizeof dc->repl_list - used, "%s%s", i ? "," : "",
                     dc->repl[i]);
        }
        dc->etcd = it_etcd_new(etcd_members);
        cr_assert(dc->etcd, "%s: etcd did not start", dc->name);
    }
    for (int d = 0; d < dcs; d++) {
        it_xdc_dc_t *dc = &self->dc[d];
        for (int i = 0; i < nodes; i++) {
            dc->node[i] = s_node_new(self, dc, i, extra);
        }
    }
    return self;
}

//  Rewrites DC's client endpoint list from its nodes.
static void s_client_list(it_xdc_dc_t *dc) {
    dc->client_list[0] = '\0';
    for (int i = 0; i < dc->count; i++) {
        size_t used = strlen(dc->client_list);
        snprintf(dc->client_list + used, sizeof dc->client_list - used, "%s%s", i ? "," : "",
                 dc->node[i]->endpoint);
    }
}

void it_xdc_start(it_xdc_t *self) {
    for (int d = 0; d < self->count; d++) {
        it_xdc_dc_t *dc = &self->dc[d];
        for (int i = 0; i < dc->count; i++) {
            cr_assert(it_broker_spawn(dc->node[i]), "%s: node %d did not spawn", dc->name, i);
        }
        s_client_list(dc);
    }
    for (int d = 0; d < self->count; d++) {
        for (int i = 0; i < self->dc[d].count; i++) {
            cr_assert(it_broker_wait_ready(self->dc[d].node[i], S_WAIT_MS), "%s: node %d not ready",
                      self->dc[d].name, i);
        }
    }
    for (int d = 0; d < self->count; d++) {
        cr_assert(it_xdc_wait_led(self, d, S_WAIT_MS), "%s: partitions not all led",
                  self->dc[d].name);
    }
}

//  `ternctl cluster partitions --json` of a running node of DC D: the
//  lines (caller frees *COPY_P and *LINES_P); how many.
static size_t s_partitions(it_xdc_t *self, int d, char **copy_p, char ***lines_p) {
    *copy_p = NULL;
    *lines_p = NULL;
    for (int i = 0; i < self->dc[d].count; i++) {
        it_broker_t *b = self->dc[d].node[i];
        if (!it_broker_alive(b, NULL) || b->paused) {
            continue;
        }
        it_result_t r;
        int rc = it_ctl(&r, b, 10000, "cluster", "partitions", NULL);
        if (rc == 0) {
            *copy_p = strdup(r.out);
            it_result_free(&r);
            return it_split_lines(*copy_p, lines_p);
        }
        it_result_free(&r);
    }
    return 0;
}

bool it_xdc_wait_led(it_xdc_t *self, int d, int timeout_ms) {
    int64_t deadline = it_now_ms() + timeout_ms;
    for (;;) {
        char *copy, **lines;
        size_t n = s_partitions(self, d, &copy, &lines);
        uint32_t led = 0;
        for (size_t k = 0; k < n; k++) {
            int64_t leader;
            led += it_json_int(lines[k], "leader", &leader) && leader > 0;
        }
        free(lines);
        free(copy);
        if (led == self->partitions) {
            return true;
        }
        if (it_now_ms() > deadline) {
            return false;
        }
        it_sleep_ms(200);
    }
}

int it_xdc_leader_of(it_xdc_t *self, int d, const char *topic) {
    it_xdc_dc_t *dc = &self->dc[d];
    uint32_t pt = tern_partition_of(topic, strlen(topic), self->partitions);
    char *copy, **lines;
    size_t n = s_partitions(self, d, &copy, &lines);
    int64_t leader = -1;
    for (size_t k = 0; k < n; k++) {
        int64_t p;
        if (it_json_int(lines[k], "partition", &p) && p == (int64_t)pt) {
            it_json_int(lines[k], "leader", &leader);
        }
    }
    free(lines);
    free(copy);
    bool ours = leader >= (int64_t)dc->first_id && leader < (int64_t)dc->first_id + dc->count;
    return ours ? (int)(leader - dc->first_id) : -1;
}

void it_xdc_peers(it_xdc_t *self, int d, const char *verb, const char *name) {
    it_xdc_dc_t *dc = &self->dc[d];
    for (int i = 0; i < dc->count; i++) {
        if (it_broker_alive(dc->node[i], NULL) && !dc->node[i]->paused) {
            it_result_t r;
            it_ctl(&r, dc->node[i], 10000, "peers", verb, name, NULL);
            it_assert_ok(&r, "ternctl peers pause/resume");
            it_result_free(&r);
        }
    }
}

//  Replaces the value of flag FLAG in B's extra arguments with VALUE.
static void s_set_extra(it_broker_t *b, const char *flag, const char *value) {
    for (int k = 0; k + 1 < b->extra_count; k++) {
        if (strcmp(b->extra[k], flag) == 0) {
            free(b->extra[k + 1]);
            b->extra[k + 1] = strdup(value);
        }
    }
}

void it_xdc_restart_node(it_xdc_t *self, int d, int i, bool kill, bool move, bool wipe) {
    it_xdc_dc_t *dc = &self->dc[d];
    it_broker_t *b = dc->node[i];
    if (kill) {
        it_broker_kill(b);
    } else {
        it_broker_stop(b, 20000);
    }
    if (move) {
        char listen[64];
        b->port = test_port();
        snprintf(b->endpoint, sizeof b->endpoint, "tcp://127.0.0.1:%d", b->port);
        snprintf(listen, sizeof listen, "tcp://127.0.0.1:%d", test_port());
        s_set_extra(b, "--cluster-listen", listen);
        s_client_list(dc);
    }
    if (wipe) {
        cr_assert_eq(test_dir_remove(b->data_dir), 0, "cannot remove %s", b->data_dir);
    }
    cr_assert(it_broker_start(b), "%s: node %d did not start again", dc->name, i);
}

//  ---------------------------------------------------------------------------
//  Publishing, recorded

//  ternctl with every client endpoint of DC D and ARGV (NULL-terminated,
//  at most 16).
static int s_ctl(it_xdc_t *self, int d, it_result_t *r, int timeout_ms, const char *const *args) {
    char *argv[24] = {(char *)it_ternctl_path(), "-s", self->dc[d].client_list, "--json"};
    int n = 4;
    for (size_t k = 0; args[k] && n < 23; k++) {
        argv[n++] = (char *)args[k];
    }
    argv[n] = NULL;
    return it_run(r, timeout_ms, NULL, argv);
}

int it_xdc_pub(it_xdc_t *self, int d, const char *topic, const char *producer, uint64_t *seq,
               int count) {
    char count_s[16], seq_s[24];
    snprintf(count_s, sizeof count_s, "%d", count);
    snprintf(seq_s, sizeof seq_s, "%llu", (unsigned long long)*seq);
    const char *args[] = {"pub",    topic,   "m{n}", "--count",   count_s, "--producer",
                          producer, "--seq", seq_s,  "--timeout", "5s",    NULL};
    it_result_t r;
    int rc = s_ctl(self, d, &r, 60000, args);
    char **lines = NULL;
    size_t n = it_split_lines(r.out, &lines);
    int acked = 0;
    bool got[IT_XDC_BATCH_MAX] = {false}; //  got[k]: *SEQ + k acknowledged
    cr_assert(count > 0 && count <= IT_XDC_BATCH_MAX, "batch of %d", count);
    for (size_t k = 0; k < n; k++) {
        int64_t msg_id, s, pseq;
        if (!it_json_int(lines[k], "msg_id", &msg_id) || !it_json_int(lines[k], "seq", &s) ||
            !it_json_int(lines[k], "producer_seq", &pseq)) {
            continue;
        }
        bool dup = false;
        it_json_bool(lines[k], "duplicate", &dup);
        fprintf(self->hist,
                "{\"ev\":\"publish\",\"dc\":\"%s\",\"producer\":\"%s\",\"producer_seq\":%llu,"
                "\"topic\":\"%s\",\"outcome\":\"ok\",\"msg_id\":%lld,\"seq\":%lld,"
                "\"duplicate\":%s}\n",
                self->dc[d].name, producer, (unsigned long long)pseq, topic, (long long)msg_id,
                (long long)s, dup ? "true" : "false");
        if ((uint64_t)pseq >= *seq && (uint64_t)pseq < *seq + (uint64_t)count) {
            got[(uint64_t)pseq - *seq] = true;
        }
        acked++;
    }
    //  Acks arrive in any order and ternctl pub stops at the first refusal
    //  or timeout: the next run resends from the first one not acknowledged
    //  (those after it that were are answered as duplicates).
    int first_missing = 0;
    while (first_missing < count && got[first_missing]) {
        first_missing++;
    }
    *seq += (uint64_t)first_missing;
    if (rc != 0) {
        //  The first unacknowledged one: its fate is unknown (the checker
        //  accepts it stored or not); the caller's next call resends it.
        fprintf(self->hist,
                "{\"ev\":\"publish\",\"dc\":\"%s\",\"producer\":\"%s\",\"producer_seq\":%llu,"
                "\"topic\":\"%s\",\"outcome\":\"err\",\"code\":%d}\n",
                self->dc[d].name, producer, (unsigned long long)*seq, topic, TERN_ETIMEOUT);
        self->failed++;
    }
    fflush(self->hist);
    self->attempts += (size_t)count;
    self->acked += (size_t)acked;
    free(lines);
    it_result_free(&r);
    return acked;
}

//  ---------------------------------------------------------------------------
//  Convergence and the end of a drill

static int s_cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

//  TOPIC's msg_ids in DC D, sorted into *IDS_P (caller frees); how many.
static size_t s_read_ids(it_xdc_t *self, int d, const char *topic, int64_t **ids_p) {
    const char *args[] = {"sub",     topic,       "--from", "first", "--count",
                          "1000000", "--timeout", "2s",     NULL};
    it_result_t r;
    s_ctl(self, d, &r, 120000, args);
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

//  True if every DC holds the same msg_ids of TOPIC (counts on stderr when
//  SAY).
static bool s_same_everywhere(it_xdc_t *self, const char *topic, bool say) {
    int64_t *ids[IT_XDC_DCS_MAX] = {NULL};
    size_t n[IT_XDC_DCS_MAX] = {0};
    bool same = true;
    for (int d = 0; d < self->count; d++) {
        n[d] = s_read_ids(self, d, topic, &ids[d]);
        same = same && n[d] > 0 &&
               (d == 0 || (n[d] == n[0] && memcmp(ids[d], ids[0], n[0] * sizeof *ids[0]) == 0));
        if (say) {
            fprintf(stderr, "xdc: %s holds %zu messages of %s\n", self->dc[d].name, n[d], topic);
        }
    }
    for (int d = 0; d < self->count; d++) {
        free(ids[d]);
    }
    return same;
}

int64_t it_xdc_converge(it_xdc_t *self, const char *const *topics, size_t count, int timeout_ms) {
    int64_t start = it_now_ms(), deadline = start + timeout_ms;
    for (size_t t = 0; t < count;) {
        if (s_same_everywhere(self, topics[t], false)) {
            t++;
            continue;
        }
        if (it_now_ms() > deadline) {
            s_same_everywhere(self, topics[t], true);
            return -1;
        }
        it_sleep_ms(500);
    }
    return it_now_ms() - start;
}

//  Group g-<dc> of DC D reads TOPIC from the first message; every delivery
//  into the history, after the group's line.
static void s_consume(it_xdc_t *self, int d, const char *topic) {
    char group[16];
    snprintf(group, sizeof group, "g-%s", self->dc[d].name);
    const char *args[] = {"sub",     topic,     "--group",   group, "--from", "first",
                          "--count", "1000000", "--timeout", "3s",  NULL};
    it_result_t r;
    s_ctl(self, d, &r, 120000, args);
    fprintf(self->hist, "{\"ev\":\"group\",\"dc\":\"%s\",\"group\":\"%s\",\"topic\":\"%s\"}\n",
            self->dc[d].name, group, topic);
    char **lines = NULL;
    size_t n = it_split_lines(r.out, &lines);
    for (size_t k = 0; k < n; k++) {
        if (lines[k][0] == '{') {
            fprintf(self->hist, "{\"ev\":\"deliver\",\"dc\":\"%s\",\"group\":\"%s\",%s\n",
                    self->dc[d].name, group, lines[k] + 1);
        }
    }
    free(lines);
    it_result_free(&r);
}

//  Every stored message of TOPIC in the data dir of node I of DC D (not
//  running) as stored lines after its node line.
static void s_dump_node(it_xdc_t *self, int d, int i, const char *topic) {
    it_xdc_dc_t *dc = &self->dc[d];
    tern_store_config_t config;
    tern_store_config_defaults(&config);
    config.dir = dc->node[i]->data_dir;
    tern_err_t err = TERN_OK;
    tern_store_t *store = tern_store_new(&config, &err);
    cr_assert(store, "%s node %d: cannot open %s: %s", dc->name, i, config.dir, tern_strerror(err));
    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    fprintf(self->hist, "{\"ev\":\"node\",\"dc\":\"%s\",\"node\":\"n%u\",\"topic\":\"%s\"}\n",
            dc->name, dc->first_id + (uint32_t)i, topic);
    tern_topic_info_t info;
    if (tern_store_topic_get(reader, topic, &info) == TERN_OK) {
        tern_frame_t msg;
        uint64_t seq = 1;
        while (tern_store_read_next(reader, info.id, seq, &msg) == TERN_OK) {
            fprintf(self->hist,
                    "{\"ev\":\"stored\",\"dc\":\"%s\",\"node\":\"n%u\",\"topic\":\"%s\","
                    "\"seq\":%llu,\"msg_id\":%llu,\"producer\":\"%s\",\"producer_seq\":%llu}\n",
                    dc->name, dc->first_id + (uint32_t)i, topic, (unsigned long long)msg.seq,
                    (unsigned long long)msg.msg_id, msg.producer,
                    (unsigned long long)msg.producer_seq);
            seq = msg.seq + 1;
        }
    }
    tern_store_read_end(reader);
    tern_store_reader_destroy(&reader);
    tern_store_destroy(&store);
}

//  Which nodes of DC D are in the ISR of TOPIC's partition (bit i for node
//  i), per `ternctl cluster partitions`.
static unsigned s_isr(it_xdc_t *self, int d, const char *topic) {
    uint32_t pt = tern_partition_of(topic, strlen(topic), self->partitions);
    char *copy, **lines;
    size_t n = s_partitions(self, d, &copy, &lines);
    unsigned isr = 0;
    for (size_t k = 0; k < n; k++) {
        int64_t p;
        const char *val;
        size_t len;
        if (!it_json_int(lines[k], "partition", &p) || p != (int64_t)pt ||
            !it_json_raw(lines[k], "isr", &val, &len)) {
            continue;
        }
        for (const char *c = val; c < val + len; c++) {
            if (*c >= '0' && *c <= '9') {
                char *end;
                long id = strtol(c, &end, 10) - (long)self->dc[d].first_id;
                isr |= id >= 0 && id < self->dc[d].count ? 1u << id : 0;
                c = end - 1;
            }
        }
    }
    free(lines);
    free(copy);
    return isr;
}

//  `ternctl cluster verify` in DC D; its exit code (output on stderr).
static int s_verify(it_xdc_t *self, int d) {
    const char *args[] = {"cluster", "verify", NULL};
    it_result_t r;
    int rc = s_ctl(self, d, &r, 60000, args);
    fprintf(stderr, "xdc: %s: ternctl cluster verify: exit %d\n%s%s", self->dc[d].name, rc, r.out,
            r.err);
    it_result_free(&r);
    return rc;
}

//  Copies the log of node I of DC D beside the history (kept with it when
//  a drill fails).
static void s_keep_log(it_xdc_t *self, int d, int i) {
    size_t len = 0;
    char *text = it_read_file(self->dc[d].node[i]->log_path, &len);
    char path[TEST_DIR_MAX + 64];
    snprintf(path, sizeof path, "%s/%s-n%u.log", self->dir, self->dc[d].name,
             self->dc[d].first_id + (uint32_t)i);
    FILE *f = text ? fopen(path, "w") : NULL;
    if (f) {
        fwrite(text, 1, len, f);
        fclose(f);
    }
    free(text);
}

//  Runs tern-check --dcs N --min-logs 2N on the history; its exit code.
static int s_tern_check(it_xdc_t *self) {
    char bin[512], dcs[8], min_logs[8];
    snprintf(bin, sizeof bin, "%s/tern-check", TERN_BIN_DIR);
    snprintf(dcs, sizeof dcs, "%d", self->count);
    snprintf(min_logs, sizeof min_logs, "%d", 2 * self->count);
    char *argv[] = {bin, "--limit", "20", "--dcs", dcs, "--min-logs", min_logs, self->path, NULL};
    it_result_t r;
    int rc = it_run(&r, 120000, NULL, argv);
    fprintf(stderr, "%s%s", r.out, r.err);
    it_result_free(&r);
    return rc;
}

void it_xdc_finish(it_xdc_t *self, const char *const *topics, size_t count) {
    int64_t ms = it_xdc_converge(self, topics, count, 120000);
    cr_assert_geq(ms, 0, "the DCs did not converge (history %s kept)", self->path);
    fprintf(stderr, "xdc: converged %lld ms after the last publish\n", (long long)ms);
    unsigned isr[IT_XDC_DCS_MAX][16] = {{0}};
    int verify[IT_XDC_DCS_MAX] = {0};
    for (int d = 0; d < self->count; d++) {
        verify[d] = s_verify(self, d);
        for (size_t t = 0; t < count; t++) {
            s_consume(self, d, topics[t]);
            isr[d][t] = s_isr(self, d, topics[t]);
        }
    }
    for (int d = 0; d < self->count; d++) {
        for (int i = 0; i < self->dc[d].count; i++) {
            it_broker_kill(self->dc[d].node[i]);
            s_keep_log(self, d, i);
        }
    }
    for (int d = 0; d < self->count; d++) {
        for (size_t t = 0; t < count; t++) {
            for (int i = 0; i < self->dc[d].count; i++) {
                if (isr[d][t] & (1u << i)) {
                    s_dump_node(self, d, i, topics[t]);
                }
            }
        }
    }
    fflush(self->hist);
    fprintf(stderr, "xdc: publish attempts %zu, acknowledged %zu, failed runs %zu\n",
            self->attempts, self->acked, self->failed);
    cr_assert_eq(s_tern_check(self), 0, "tern-check found violations (history %s kept)",
                 self->path);
    //  Asserted after the checker, so that a difference between replicas
    //  comes with the checker's account of the records.
    for (int d = 0; d < self->count; d++) {
        cr_assert_eq(verify[d], 0, "%s: ternctl cluster verify: replicas differ (history %s kept)",
                     self->dc[d].name, self->path);
    }
    test_dir_remove(self->dir);
    self->dir[0] = '\0';
}

void it_xdc_destroy(it_xdc_t **self_p) {
    if (!self_p || !*self_p) {
        return;
    }
    it_xdc_t *self = *self_p;
    for (int d = 0; d < self->count; d++) {
        for (int i = 0; i < self->dc[d].count; i++) {
            if (self->dc[d].node[i]) {
                it_broker_kill(self->dc[d].node[i]);
            }
        }
        it_etcd_destroy(&self->dc[d].etcd);
    }
    if (self->hist) {
        fclose(self->hist);
    }
    free(self);
    *self_p = NULL;
}
