/*  xdc_harness.c - several clustered DCs on loopback for the cross-DC drills.

    See xdc_harness.h. Each DC is a set of it_broker_t nodes on its own
    etcd (the node flags of cluster_harness.c's it_cluster_node, started
    together because a node's join may wait for the others); the history
    is written as the drill goes and checked by bin/tern-check at the end.
*/
#include "xdc_harness.h"
#include "cluster_harness.h"
#include "tern_err.h"
#include "tern_partition.h"
#include "test_port.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_WAIT_MS 60000 //  startup and leadership waits

//  DCs in network namespaces (the section at the end): the namespaces
//  (it_xdc_netns_new's, or NULL: DCs on loopback); the address of DC D's
//  node I (I -1: its etcd), "127.0.0.1" without namespaces; entering its
//  host and back to host 0 (false if setns failed); B, node I of DC D,
//  spawned (or started, when READY) in its host.
static it_netns_t *s_net;
static const char *s_addr(int d, int i);
static bool s_enter(int d, int i);
static bool s_leave(void);
static bool s_spawn_in(int d, int i, it_broker_t *b, bool ready);

//  ---------------------------------------------------------------------------
//  Starting the DCs

//  The flags of node I of DC (ids, repl endpoint, every other DC as a peer)
//  plus EXTRA, as a new adopted it_broker_t (not started).
static it_broker_t *s_node_new(it_xdc_t *self, it_xdc_dc_t *dc, int i, const char *const *extra) {
    char listen[64], count[16], peers[IT_XDC_DCS_MAX][IT_XDC_NODES_MAX * 64 + 16];
    int d = (int)(dc - self->dc);
    snprintf(listen, sizeof listen, "tcp://%s:%d", s_addr(d, i), test_port());
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
    if (s_net) {
        args[n++] = "--insecure"; //  not loopback, but the test's own network
    }
    for (size_t k = 0; extra && extra[k] && n < IT_EXTRA_MAX - 1; k++) {
        args[n++] = extra[k];
    }
    args[n] = NULL;
    it_broker_t *b = it_adopt_broker(it_broker_new(dc->first_id + (uint32_t)i, args));
    cr_assert(b, "%s: node %d not created", dc->name, i);
    snprintf(b->dc, sizeof b->dc, "%s", dc->name);
    snprintf(b->endpoint, sizeof b->endpoint, "tcp://%s:%d", s_addr(d, i), b->port);
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
        //  d < IT_XDC_DCS_MAX: the names fit (built in locals, as the
        //  compiler cannot see that, nor that the fields do not overlap).
        char name[sizeof dc->name];
        snprintf(name, sizeof name, "dc%u", (unsigned)(d + 1) % 100u);
        memcpy(dc->name, name, sizeof name);
        snprintf(dc->cluster, sizeof dc->cluster, "xd%d%s", (int)getpid(), name);
        dc->count = nodes;
        dc->first_id = (uint32_t)d * 10 + 1;
        for (int i = 0; i < nodes; i++) {
            char ep[sizeof dc->repl[i]];
            snprintf(ep, sizeof ep, "tcp://%s:%d", s_addr(d, i), test_port());
            memcpy(dc->repl[i], ep, sizeof ep);
            size_t used = strlen(dc->repl_list);
            snprintf(dc->repl_list + used, sizeof dc->repl_list - used, "%s%s", i ? "," : "", ep);
        }
        cr_assert(s_enter(d, -1), "%s: cannot enter etcd's namespace", dc->name);
        dc->etcd = it_etcd_new_on(etcd_members, s_addr(d, -1));
        cr_assert(s_leave() && dc->etcd, "%s: etcd did not start", dc->name);
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
            cr_assert(s_spawn_in(d, i, dc->node[i], false), "%s: node %d did not spawn", dc->name,
                      i);
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
        snprintf(b->endpoint, sizeof b->endpoint, "tcp://%s:%d", s_addr(d, i), b->port);
        snprintf(listen, sizeof listen, "tcp://%s:%d", s_addr(d, i), test_port());
        s_set_extra(b, "--cluster-listen", listen);
        s_client_list(dc);
    }
    if (wipe) {
        cr_assert_eq(test_dir_remove(b->data_dir), 0, "cannot remove %s", b->data_dir);
    }
    //  A node with an empty data dir is refused while its predecessor's
    //  etcd lease lives ("node id N is already live"): try again past it.
    int64_t deadline = it_now_ms() + 20000;
    bool started;
    while (!(started = s_spawn_in(d, i, b, true)) && wipe && it_now_ms() < deadline) {
        it_sleep_ms(1000);
    }
    cr_assert(started, "%s: node %d did not start again", dc->name, i);
}

//  ---------------------------------------------------------------------------
//  Publishing, recorded

//  ternctl with every client endpoint of DC D and ARGV (NULL-terminated,
//  at most 16).
static int s_ctl(it_xdc_t *self, int d, it_result_t *r, int timeout_ms, const char *const *args) {
    return it_ctl_at(r, self->dc[d].client_list, timeout_ms, args);
}

//  An acknowledged publish into the history.
static void s_record_ok(it_xdc_t *self, int d, const char *topic, const char *producer,
                        uint64_t pseq, uint64_t msg_id, uint64_t seq, bool dup) {
    fprintf(self->hist,
            "{\"ev\":\"publish\",\"dc\":\"%s\",\"producer\":\"%s\",\"producer_seq\":%llu,"
            "\"topic\":\"%s\",\"outcome\":\"ok\",\"msg_id\":%llu,\"seq\":%llu,"
            "\"duplicate\":%s}\n",
            self->dc[d].name, producer, (unsigned long long)pseq, topic, (unsigned long long)msg_id,
            (unsigned long long)seq, dup ? "true" : "false");
}

//  A failed publish of PSEQ into the history: its fate is unknown unless
//  CODE says otherwise (the checker accepts it stored or not); the
//  caller's next call resends it.
static void s_record_err(it_xdc_t *self, int d, const char *topic, const char *producer,
                         uint64_t pseq, tern_err_t code) {
    fprintf(self->hist,
            "{\"ev\":\"publish\",\"dc\":\"%s\",\"producer\":\"%s\",\"producer_seq\":%llu,"
            "\"topic\":\"%s\",\"outcome\":\"err\",\"code\":%d}\n",
            self->dc[d].name, producer, (unsigned long long)pseq, topic, (int)code);
    self->failed++;
}

//  it_xdc_pub through one `ternctl pub --count` run: pipelined (libtern's
//  window), a fresh client per run.
static int s_pub_ternctl(it_xdc_t *self, int d, const char *topic, const char *producer,
                         uint64_t *seq, int count) {
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
    for (size_t k = 0; k < n; k++) {
        int64_t msg_id, s, pseq;
        if (!it_json_int(lines[k], "msg_id", &msg_id) || !it_json_int(lines[k], "seq", &s) ||
            !it_json_int(lines[k], "producer_seq", &pseq)) {
            continue;
        }
        bool dup = false;
        it_json_bool(lines[k], "duplicate", &dup);
        s_record_ok(self, d, topic, producer, (uint64_t)pseq, (uint64_t)msg_id, (uint64_t)s, dup);
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
        s_record_err(self, d, topic, producer, *seq, TERN_ETIMEOUT);
    }
    free(lines);
    it_result_free(&r);
    return acked;
}

//  The client of stream (D, PRODUCER), connected on first use to every
//  client endpoint of DC D; NULL if it cannot be made now.
static tern_client_t **s_stream(it_xdc_t *self, int d, const char *producer) {
    size_t free_at = IT_XDC_STREAMS_MAX;
    for (size_t k = 0; k < IT_XDC_STREAMS_MAX; k++) {
        it_xdc_stream_t *st = &self->streams[k];
        if (st->producer[0] && st->dc == d && strcmp(st->producer, producer) == 0) {
            return &st->client;
        }
        free_at = !st->producer[0] && free_at == IT_XDC_STREAMS_MAX ? k : free_at;
    }
    cr_assert(free_at < IT_XDC_STREAMS_MAX, "more than %d producers", IT_XDC_STREAMS_MAX);
    it_xdc_stream_t *st = &self->streams[free_at];
    st->dc = d;
    snprintf(st->producer, sizeof st->producer, "%s", producer);
    return &st->client;
}

//  it_xdc_pub through a long-lived libtern client per producer, one
//  message at a time (tern_publish): after a failure the client is
//  destroyed and the next call connects anew.
static int s_pub_client(it_xdc_t *self, int d, const char *topic, const char *producer,
                        uint64_t *seq, int count) {
    tern_client_t **client = s_stream(self, d, producer);
    if (!*client) {
        tern_client_options_t options;
        tern_client_options_init(&options);
        options.name = producer;
        options.producer_id = producer;
        options.connect_timeout_ms = 1000;
        options.backoff_min_ms = 50;
        options.backoff_max_ms = 300;
        *client = tern_client_new(self->dc[d].client_list, &options);
    }
    int acked = 0;
    tern_err_t rc = *client ? TERN_OK : TERN_ECLOSED;
    for (int k = 0; k < count && rc == TERN_OK; k++) {
        char data[96];
        snprintf(data, sizeof data, "%s-%llu", producer, (unsigned long long)*seq);
        tern_pub_options_t msg;
        tern_pub_options_init(&msg);
        msg.topic = topic;
        msg.payload = data;
        msg.size = strlen(data);
        msg.producer_seq = *seq;
        tern_pub_result_t res;
        memset(&res, 0, sizeof res);
        rc = tern_publish(*client, &msg, 5000, &res);
        if (rc == TERN_OK) {
            s_record_ok(self, d, topic, producer, *seq, res.msg_id, res.seq, res.duplicate);
            (*seq)++;
            acked++;
        }
    }
    if (rc != TERN_OK) {
        s_record_err(self, d, topic, producer, *seq, rc);
        tern_client_destroy(client);
    }
    return acked;
}

int it_xdc_pub(it_xdc_t *self, int d, const char *topic, const char *producer, uint64_t *seq,
               int count) {
    cr_assert(count > 0 && count <= IT_XDC_BATCH_MAX, "batch of %d", count);
    size_t before = self->failed;
    int acked = getenv("TERN_XDC_PIPELINED") ? s_pub_ternctl(self, d, topic, producer, seq, count)
                                             : s_pub_client(self, d, topic, producer, seq, count);
    fflush(self->hist);
    //  Attempts: what was acknowledged plus one per failure (the message
    //  that failed; the rest of the batch was not tried).
    self->attempts += (size_t)acked + (self->failed - before);
    self->acked += (size_t)acked;
    return acked;
}

//  ---------------------------------------------------------------------------
//  Convergence and the end of a drill

size_t it_xdc_read_ids(it_xdc_t *self, int d, const char *topic, int64_t **ids_p) {
    const char *args[] = {"sub",     topic,       "--from", "first", "--count",
                          "1000000", "--timeout", "1s",     NULL};
    it_result_t r;
    s_ctl(self, d, &r, 120000, args);
    size_t n = it_parse_msg_ids(r.out, ids_p);
    it_result_free(&r);
    return n;
}

//  True if every DC holds the same msg_ids of TOPIC (counts on stderr when
//  SAY).
static bool s_same_everywhere(it_xdc_t *self, const char *topic, bool say) {
    int64_t *ids[IT_XDC_DCS_MAX] = {NULL};
    size_t n[IT_XDC_DCS_MAX] = {0};
    bool same = true;
    for (int d = 0; d < self->count; d++) {
        n[d] = it_xdc_read_ids(self, d, topic, &ids[d]);
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

//  Group GROUP of DC D reads TOPIC (from the first message when it is new)
//  until IDLE_MS pass without one, acking each; the output in R.
static void s_group_sub(it_xdc_t *self, int d, const char *topic, const char *group, int idle_ms,
                        it_result_t *r) {
    char idle[24];
    snprintf(idle, sizeof idle, "%dms", idle_ms);
    const char *args[] = {"sub",     topic,     "--group",   group, "--from", "first",
                          "--count", "1000000", "--timeout", idle,  NULL};
    s_ctl(self, d, r, 120000, args);
}

size_t it_xdc_group_read(it_xdc_t *self, int d, const char *topic, const char *group, int idle_ms,
                         int64_t **ids_p) {
    it_result_t r;
    s_group_sub(self, d, topic, group, idle_ms, &r);
    size_t n = it_parse_msg_ids(r.out, ids_p);
    it_result_free(&r);
    return n;
}

//  Group g-<dc> of DC D reads TOPIC from the first message; every delivery
//  into the history, after the group's line.
static void s_consume(it_xdc_t *self, int d, const char *topic) {
    char group[16];
    snprintf(group, sizeof group, "g-%s", self->dc[d].name);
    it_result_t r;
    s_group_sub(self, d, topic, group, 3000, &r);
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

//  The history lines of TOPIC in the data dir of node I of DC D (not
//  running).
static void s_dump_node(it_xdc_t *self, int d, int i, const char *topic) {
    char name[16];
    snprintf(name, sizeof name, "n%u", self->dc[d].first_id + (uint32_t)i);
    it_cluster_dump_stored(self->hist, self->dc[d].node[i], self->dc[d].name, name, topic);
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

//  `ternctl audit TOPIC --json` in DC D: one `xdc: audit` line per group
//  on stderr (reachability = acked / (published - expired)).
static void s_audit(it_xdc_t *self, int d, const char *topic) {
    const char *args[] = {"audit", topic, NULL};
    it_result_t r;
    s_ctl(self, d, &r, 60000, args);
    char **lines = NULL;
    size_t n = it_split_lines(r.out, &lines);
    for (size_t k = 0; k < n; k++) {
        fprintf(stderr, "xdc: audit %s %s\n", self->dc[d].name, lines[k]);
    }
    if (n == 0) {
        fprintf(stderr, "xdc: audit %s %s: exit %d %s\n", self->dc[d].name, topic, r.status, r.err);
    }
    free(lines);
    it_result_free(&r);
}

int it_xdc_verify(it_xdc_t *self, int d, int timeout_ms) {
    int64_t deadline = it_now_ms() + timeout_ms;
    int rc;
    while ((rc = s_verify(self, d)) != 0 && it_now_ms() < deadline) {
        it_sleep_ms(1000);
    }
    return rc;
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
    //  Not asserted yet: the checker says which messages a DC misses.
    int64_t ms = it_xdc_converge(self, topics, count, 120000);
    fprintf(stderr, "xdc: converged %lld ms after the last publish\n", (long long)ms);
    unsigned isr[IT_XDC_DCS_MAX][16] = {{0}};
    int verify[IT_XDC_DCS_MAX] = {0};
    //  Before any group: a group's acks travel to the other DCs and into
    //  their followers asynchronously, and verify digests group state too.
    for (int d = 0; d < self->count; d++) {
        verify[d] = it_xdc_verify(self, d, 30000);
    }
    for (int d = 0; d < self->count; d++) {
        for (size_t t = 0; t < count; t++) {
            s_consume(self, d, topics[t]);
            s_audit(self, d, topics[t]);
        }
    }
    //  Again once the groups' acks reached every DC and its followers
    //  (asynchronously: up to 30 s of retries), asserted below like the
    //  first: verify digests group state too.
    for (int d = 0; d < self->count; d++) {
        int rc = verify[d] ? verify[d] : it_xdc_verify(self, d, 30000);
        fprintf(stderr, "xdc: %s: verify after the groups read: exit %d\n", self->dc[d].name, rc);
        verify[d] = rc;
        for (size_t t = 0; t < count; t++) {
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
    cr_assert_geq(ms, 0, "the DCs did not converge (history %s kept)", self->path);
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
    for (size_t k = 0; k < IT_XDC_STREAMS_MAX; k++) {
        tern_client_destroy(&self->streams[k].client);
    }
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

//  ---------------------------------------------------------------------------
//  DCs in network namespaces and DC cuts (branch dccut; see the .h)

#define S_WATCH_MS 50 //  between two rounds of `peers` of the link watcher

static const char *s_addr(int d, int i) {
    return s_net ? it_netns_addr(s_net, IT_XDC_HOST(d, i)) : "127.0.0.1";
}

static bool s_enter(int d, int i) {
    return !s_net || it_netns_enter(s_net, IT_XDC_HOST(d, i));
}

static bool s_leave(void) {
    return !s_net || it_netns_enter(s_net, 0);
}

//  A child is born in the namespace of the thread that forks it.
static bool s_spawn_in(int d, int i, it_broker_t *b, bool ready) {
    bool ok = s_enter(d, i) && (ready ? it_broker_start(b) : it_broker_spawn(b));
    return s_leave() && ok;
}

it_netns_t *it_xdc_netns_new(int dcs, char *why, size_t cap) {
    if (dcs < 1 || dcs > IT_XDC_DCS_MAX) {
        snprintf(why, cap, "%d DCs", dcs);
        return NULL;
    }
    it_netns_t *net = it_netns_new(IT_XDC_HOST(dcs, -1), why, cap);
    if (net && !it_netns_enter(net, 0)) {
        snprintf(why, cap, "cannot enter the test's namespace");
        it_netns_destroy(&net);
    }
    s_net = net;
    return net;
}

void it_xdc_netns_destroy(it_netns_t **net_p) {
    if (net_p && *net_p == s_net) {
        s_net = NULL;
    }
    it_netns_destroy(net_p);
}

//  The hosts of DC D (INSIDE) or of every other DC into HOSTS; how many.
static size_t s_hosts(it_xdc_t *self, int d, bool inside, int *hosts) {
    size_t n = 0;
    for (int o = 0; o < self->count; o++) {
        for (int i = -1; (o == d) == inside && i < self->dc[o].count; i++) {
            hosts[n++] = IT_XDC_HOST(o, i);
        }
    }
    return n;
}

bool it_xdc_cut(it_xdc_t *self, int d, bool on) {
    cr_assert(s_net, "it_xdc_cut: the DCs do not run in network namespaces");
    int mine[IT_NETNS_HOSTS_MAX], others[IT_NETNS_HOSTS_MAX];
    size_t nm = s_hosts(self, d, true, mine), no = s_hosts(self, d, false, others);
    //  DC D's side first: that alone stops every connection both ways.
    bool ok = true;
    for (size_t k = 0; k < nm; k++) {
        ok = it_netns_blackhole(s_net, mine[k], others, no, on) && ok;
    }
    for (size_t k = 0; k < no; k++) {
        ok = it_netns_blackhole(s_net, others[k], mine, nm, on) && ok;
    }
    return ok;
}

struct it_xdc_watch_t {
    it_xdc_t *xdc;                                              //  the DCs (borrowed)
    pthread_t thread;                                           //  the thread asking the nodes
    pthread_mutex_t lock;                                       //  guards LIVE and CHANGED
    atomic_bool stop;                                           //  set by destroy: the thread ends
    tern_client_t *client[IT_XDC_DCS_MAX][IT_XDC_NODES_MAX];    //  per node, the thread's
    int live[IT_XDC_DCS_MAX][IT_XDC_NODES_MAX][IT_XDC_DCS_MAX]; //  1 live, 0 not, -1 unknown
    int64_t changed[IT_XDC_DCS_MAX][IT_XDC_NODES_MAX][IT_XDC_DCS_MAX]; //  answer that changed it
};

//  Whether the link to DC NAME in the `peers` answer JSON is live: the
//  first "state" after its "dc" is the link's (its connections follow).
//  -1 if the answer has no such link.
static int s_link_live(const char *json, const char *name) {
    char key[32];
    snprintf(key, sizeof key, "\"dc\":\"%s\"", name);
    const char *at = strstr(json, key);
    at = at ? strstr(at, "\"state\":\"") : NULL;
    return at ? strncmp(at + 9, "live\"", 5) == 0 : -1;
}

//  Asks node I of DC D for `peers` and notes the state of its links.
static void s_watch_node(it_xdc_watch_t *self, int d, int i) {
    tern_client_t **client = &self->client[d][i];
    if (!*client) {
        tern_client_options_t options;
        tern_client_options_init(&options);
        options.name = "xdc-watch";
        options.connect_timeout_ms = 1000;
        *client = tern_client_new(self->xdc->dc[d].node[i]->endpoint, &options);
    }
    char *json = NULL;
    if (!*client || tern_admin(*client, "peers", NULL, 0, &json, 1000) != TERN_OK) {
        return;
    }
    int64_t now = it_now_ms();
    pthread_mutex_lock(&self->lock);
    for (int o = 0; o < self->xdc->count; o++) {
        int live = o == d ? -1 : s_link_live(json, self->xdc->dc[o].name);
        if (live != self->live[d][i][o]) {
            self->live[d][i][o] = live;
            self->changed[d][i][o] = now;
        }
    }
    pthread_mutex_unlock(&self->lock);
    free(json);
}

static void *s_watch_main(void *arg) {
    it_xdc_watch_t *self = arg;
    while (!atomic_load(&self->stop)) {
        for (int d = 0; d < self->xdc->count; d++) {
            for (int i = 0; i < self->xdc->dc[d].count; i++) {
                s_watch_node(self, d, i);
            }
        }
        it_sleep_ms(S_WATCH_MS);
    }
    for (int d = 0; d < IT_XDC_DCS_MAX; d++) {
        for (int i = 0; i < IT_XDC_NODES_MAX; i++) {
            tern_client_destroy(&self->client[d][i]);
        }
    }
    return NULL;
}

it_xdc_watch_t *it_xdc_watch_new(it_xdc_t *xdc) {
    it_xdc_watch_t *self = calloc(1, sizeof *self);
    self->xdc = xdc;
    memset(self->live, -1, sizeof self->live);
    pthread_mutex_init(&self->lock, NULL);
    cr_assert_eq(pthread_create(&self->thread, NULL, s_watch_main, self), 0);
    return self;
}

//  Counts link (D, I, O) into SEEN if it changed to LIVE at or after SINCE.
static void s_seen_add(it_xdc_watch_t *self, int d, int i, int o, bool live, int64_t since,
                       it_xdc_seen_t *seen) {
    seen->links++;
    if (self->live[d][i][o] != (int)live || self->changed[d][i][o] < since) {
        return;
    }
    int64_t ms = self->changed[d][i][o] - since;
    seen->first_ms = seen->seen == 0 || ms < seen->first_ms ? ms : seen->first_ms;
    seen->last_ms = ms > seen->last_ms ? ms : seen->last_ms;
    seen->seen++;
}

it_xdc_seen_t it_xdc_watch_wait(it_xdc_watch_t *self, int d, bool live, int64_t since,
                                int timeout_ms) {
    int64_t deadline = it_now_ms() + timeout_ms;
    it_xdc_seen_t seen;
    for (;;) {
        memset(&seen, 0, sizeof seen);
        seen.first_ms = seen.last_ms = -1;
        pthread_mutex_lock(&self->lock);
        for (int o = 0; o < self->xdc->count; o++) {
            for (int i = 0; o != d && i < self->xdc->dc[d].count; i++) {
                s_seen_add(self, d, i, o, live, since, &seen);
            }
            for (int j = 0; o != d && j < self->xdc->dc[o].count; j++) {
                s_seen_add(self, o, j, d, live, since, &seen);
            }
        }
        pthread_mutex_unlock(&self->lock);
        if (seen.seen == seen.links || it_now_ms() > deadline) {
            break;
        }
        it_sleep_ms(20);
    }
    seen.last_ms = seen.seen == seen.links ? seen.last_ms : -1;
    return seen;
}

void it_xdc_watch_destroy(it_xdc_watch_t **self_p) {
    if (!self_p || !*self_p) {
        return;
    }
    it_xdc_watch_t *self = *self_p;
    atomic_store(&self->stop, true);
    pthread_join(self->thread, NULL);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}
