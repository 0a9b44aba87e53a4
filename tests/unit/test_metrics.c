/*  test_metrics.c - unit tests of ternd's metrics: the bounded label table
    (tern_series), histograms, the Prometheus rendering and the health
    verdict (tern_http), and the HTTP endpoint itself on a loopback port.
*/
#include "tern_audit.h"
#include "tern_http.h"
#include "tern_json.h"
#include "tern_store.h"
#include "tern_metrics.h"
#include "tern_series.h"
#include "test_dir.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

//  Usage: count per topic and per group, read back through the table.
Test(series, usage) {
    tern_series_t *series = tern_series_new(100);
    tern_series_add(series, "orders", NULL, TERN_SC_PUBLISHED, 3);
    tern_series_add(series, "orders", "billing", TERN_SC_ACKED, 2);
    tern_series_add(series, "orders", "billing", TERN_SC_ACKED, 1);
    tern_series_slot_t *topic = tern_series_get(series, "orders", "");
    tern_series_slot_t *group = tern_series_get(series, "orders", "billing");
    cr_assert_neq(topic, group);
    cr_expect_eq(atomic_load(&topic->counters[TERN_SC_PUBLISHED]), 3);
    cr_expect_eq(atomic_load(&group->counters[TERN_SC_ACKED]), 3);
    cr_expect_eq(tern_series_count(series), 2);
    cr_expect_str_eq(tern_series_counter_name(TERN_SC_DEAD), "tern_group_dead_lettered_total");
    tern_series_destroy(&series);
    cr_expect_null(series);
    tern_series_destroy(&series); //  idempotent
}

//  Past the cap, new label sets land in "other"; known ones keep theirs.
Test(series, cap_then_other) {
    tern_series_t *series = tern_series_new(10);
    char topic[32];
    for (int i = 0; i < 50; i++) {
        snprintf(topic, sizeof topic, "t%d", i);
        tern_series_add(series, topic, NULL, TERN_SC_PUBLISHED, 1);
        tern_series_add(series, topic, "g", TERN_SC_DELIVERED, 1);
    }
    cr_expect_eq(tern_series_count(series), 12, "10 + two other series");
    tern_series_slot_t *other = tern_series_get(series, "t49", NULL);
    cr_expect_str_eq(other->topic, "other");
    cr_expect_str_eq(other->group, "");
    cr_expect_eq(atomic_load(&other->counters[TERN_SC_PUBLISHED]), 45);
    tern_series_slot_t *other_g = tern_series_get(series, "t48", "g");
    cr_expect_str_eq(other_g->group, "other");
    cr_expect_eq(atomic_load(&other_g->counters[TERN_SC_DELIVERED]), 45);
    tern_series_slot_t *first = tern_series_get(series, "t0", NULL);
    cr_expect_str_eq(first->topic, "t0");
    cr_expect_eq(atomic_load(&first->counters[TERN_SC_PUBLISHED]), 1);
    tern_series_destroy(&series);
}

typedef struct {
    tern_series_t *series; //  shared
    int id;                //  thread number
} s_worker_t;

static void *s_worker(void *arg) {
    s_worker_t *w = (s_worker_t *)arg;
    char topic[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(topic, sizeof topic, "topic.%d", i % 16);
        tern_series_add(w->series, topic, ((i / 16) & 1) ? "g" : NULL, TERN_SC_ACKED, 1);
    }
    return NULL;
}

//  Threads claiming and bumping the same series concurrently lose nothing.
Test(series, concurrent_adds_are_exact) {
    tern_series_t *series = tern_series_new(0);
    pthread_t threads[4];
    s_worker_t workers[4];
    for (int i = 0; i < 4; i++) {
        workers[i] = (s_worker_t){series, i};
        cr_assert_eq(pthread_create(&threads[i], NULL, s_worker, &workers[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
    }
    cr_expect_eq(tern_series_count(series), 32, "count %zu", tern_series_count(series));
    uint64_t total = 0;
    char topic[32];
    for (int i = 0; i < 16; i++) {
        snprintf(topic, sizeof topic, "topic.%d", i);
        total += atomic_load(&tern_series_get(series, topic, NULL)->counters[TERN_SC_ACKED]);
        total += atomic_load(&tern_series_get(series, topic, "g")->counters[TERN_SC_ACKED]);
    }
    cr_expect_eq(total, 4 * 20000);
    tern_series_destroy(&series);
}

Test(histo, buckets) {
    tern_histo_t h;
    memset(&h, 0, sizeof h);
    tern_histo_observe(&h, 50000);           //  50 us: first bucket (<= 100 us)
    tern_histo_observe(&h, 1000000);         //  1 ms: bucket le=0.001 exactly
    tern_histo_observe(&h, 120000000000ull); //  120 s: +Inf
    cr_expect_eq(atomic_load(&h.buckets[0]), 1);
    cr_expect_eq(tern_histo_bound(3), 0.001);
    cr_expect_eq(atomic_load(&h.buckets[3]), 1);
    cr_expect_eq(atomic_load(&h.buckets[TERN_HISTO_BUCKETS]), 1);
    cr_expect_eq(atomic_load(&h.count), 3);
    cr_expect_eq(atomic_load(&h.sum_ns), 50000 + 1000000 + 120000000000ull);
}

static tern_config_t s_config(const char *dir) {
    tern_config_t config;
    tern_config_defaults(&config);
    snprintf(config.data_dir, sizeof config.data_dir, "%s", dir);
    snprintf(config.dc, sizeof config.dc, "eu1");
    config.map_max = 1 << 20;
    return config;
}

Test(http, render_and_health) {
    char dir[TEST_DIR_MAX];
    cr_assert_not_null(test_dir_make(dir, "metrics"));
    tern_config_t config = s_config(dir);
    tern_metrics_t *m = tern_metrics_new_with(10);
    tern_metrics_add(m->published, 7);
    tern_series_add(m->series, "a.b", NULL, TERN_SC_PUBLISHED, 7);
    tern_series_add(m->series, "a.b", "g1", TERN_SC_DEAD, 2);
    tern_histo_observe(&m->durable_latency, 2000000);
    tern_metrics_add(m->auth_refused, 3);
    tern_metrics_add(m->auth_denied, 5);
    char reason[256];
    cr_expect_not(tern_http_health(&config, m, reason, sizeof reason));
    cr_expect_str_eq(reason, "not serving");
    atomic_store(&m->serving, 1);
    cr_expect(tern_http_health(&config, m, reason, sizeof reason), "%s", reason);
    atomic_store(&m->storage_full, 1);
    cr_expect_not(tern_http_health(&config, m, reason, sizeof reason));
    cr_expect(strstr(reason, "storage full"), "%s", reason);
    atomic_store(&m->storage_full, 0);

    char *text = tern_http_render_metrics(&config, m, NULL, NULL, NULL);
    cr_assert_not_null(text);
    cr_expect(strstr(text, "\ntern_messages_published_total 7\n"), "%s", text);
    cr_expect(strstr(text, "\ntern_topic_published_total{topic=\"a.b\"} 7\n"), "%s", text);
    cr_expect(strstr(text, "\ntern_group_dead_lettered_total{topic=\"a.b\",group=\"g1\"} 2\n"),
              "%s", text);
    cr_expect(strstr(text, "\ntern_publish_durable_seconds_bucket{le=\"0.001\"} 0\n"), "%s", text);
    cr_expect(strstr(text, "\ntern_publish_durable_seconds_bucket{le=\"0.0025\"} 1\n"), "%s", text);
    cr_expect(strstr(text, "\ntern_publish_durable_seconds_count 1\n"), "%s", text);
    cr_expect(strstr(text, "tern_build_info{version=\"0.1.0\",node_id=\"0\",dc=\"eu1\"} 1\n"), "%s",
              text);
    cr_expect(strstr(text, "\ntern_up 1\n"), "%s", text);
    cr_expect(strstr(text, "\ntern_storage_map_max_bytes 1048576\n"), "%s", text);
    cr_expect(strstr(text, "# TYPE tern_group_inflight gauge\n"), "%s", text);
    cr_expect(strstr(text, "# TYPE tern_auth_refused_total counter\n"), "%s", text);
    cr_expect(strstr(text, "\ntern_auth_refused_total 3\n"), "%s", text);
    cr_expect(strstr(text, "# TYPE tern_auth_denied_total counter\n"), "%s", text);
    cr_expect(strstr(text, "\ntern_auth_denied_total 5\n"), "%s", text);
    //  Every line is a comment or `name[{labels}] value`.
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cr_expect(line[0] == '#' || strchr(line, ' '), "bad line: %s", line);
    }
    free(text);
    tern_metrics_destroy(&m);
    cr_assert_eq(test_dir_remove(dir), 0);
}

//  A partition's role for this node: leader, follower (a replica), none.
Test(cluster_metrics, role) {
    const char *text = "partition=3 leader=2 epoch=9 replicas=2,0,1 isr=2,0";
    tern_partmap_record_t rec;
    cr_assert_eq(tern_partmap_record_decode(text, strlen(text), &rec, NULL), TERN_OK);
    cr_expect_eq(tern_http_partition_role(&rec, 2), TERN_HTTP_ROLE_LEADER);
    cr_expect_eq(tern_http_partition_role(&rec, 1), TERN_HTTP_ROLE_FOLLOWER, "out of ISR too");
    cr_expect_eq(tern_http_partition_role(&rec, 0), TERN_HTTP_ROLE_FOLLOWER);
    cr_expect_eq(tern_http_partition_role(&rec, 5), TERN_HTTP_ROLE_NONE);
    rec.leader = TERN_NODE_NONE;
    cr_expect_eq(tern_http_partition_role(&rec, 2), TERN_HTTP_ROLE_FOLLOWER, "no leader");
}

//  The follower-lag hook: a slot per follower, updated in place, cleared
//  when leadership goes, ignored out of range or before init.
Test(cluster_metrics, follower_lag_hook) {
    tern_metrics_t *m = tern_metrics_new_with(10);
    tern_metrics_follower_lag(m, 0, 1, 50); //  no table yet: nothing
    cr_expect_null(m->follower_lag);
    tern_metrics_cluster_init(m, 4);
    cr_assert_not_null(m->follower_lag);
    tern_metrics_follower_lag(m, 2, 0, 10);
    tern_metrics_follower_lag(m, 2, 7, 20);
    tern_metrics_follower_lag(m, 2, 0, 30); //  same follower: same slot
    tern_metrics_follower_lag(m, 4, 0, 99); //  out of range
    tern_metrics_lag_t *row = &m->follower_lag[2 * TERN_METRICS_FOLLOWERS];
    cr_expect_eq(atomic_load(&row[0].node), 1);
    cr_expect_eq(atomic_load(&row[0].lag_ms), 30);
    cr_expect_eq(atomic_load(&row[1].node), 8);
    cr_expect_eq(atomic_load(&row[1].lag_ms), 20);
    cr_expect_eq(atomic_load(&row[2].node), 0);
    for (uint32_t node = 100; node < 100 + 2 * TERN_METRICS_FOLLOWERS; node++) {
        tern_metrics_follower_lag(m, 3, node, 1); //  a full row drops the rest
    }
    cr_expect_eq(atomic_load(&m->follower_lag[4 * TERN_METRICS_FOLLOWERS - 1].node),
                 100 + TERN_METRICS_FOLLOWERS);
    tern_metrics_follower_lag_clear(m, 2);
    cr_expect_eq(atomic_load(&row[0].node), 0);
    cr_expect_eq(atomic_load(&row[1].node), 0);
    tern_metrics_follower_lag(m, 2, 7, 5); //  reclaims the first free slot
    cr_expect_eq(atomic_load(&row[0].node), 8);
    tern_metrics_destroy(&m);
}

//  The cluster figures as /metrics writes them, from a view copy.
Test(cluster_metrics, render) {
    tern_metrics_t *m = tern_metrics_new_with(10);
    tern_metrics_cluster_init(m, 3);
    tern_metrics_add(m->cluster_stale_frames, 4);
    tern_metrics_follower_lag(m, 0, 1, 1500);
    tern_metrics_follower_lag(m, 0, 2, 0);
    tern_http_partition_t parts[3] = {
        {TERN_HTTP_ROLE_LEADER, 117, 3, 42, true},
        {TERN_HTTP_ROLE_FOLLOWER, 120, 2, 0, true},
        {TERN_HTTP_ROLE_NONE, 0, 0, 0, false},
    };
    tern_http_cluster_t view = {
        .stats = {.renewals = 11, .renew_failures = 2, .failovers = 5, .isr_changes = 3},
        .controller = true,
        .lease_ok = false,
        .min_insync = 2,
        .partitions = 3,
        .parts = parts};
    char *text = tern_http_render_cluster(&view, m);
    cr_assert_not_null(text);
    static const char *lines[] = {
        "# TYPE tern_cluster_lease_renewals_total counter\ntern_cluster_lease_renewals_total 11\n",
        "\ntern_cluster_lease_failures_total 2\n",
        "\ntern_cluster_failovers_total 5\n",
        "\ntern_cluster_isr_changes_total 3\n",
        "# TYPE tern_cluster_controller gauge\ntern_cluster_controller 1\n",
        "# TYPE tern_cluster_lease_ok gauge\ntern_cluster_lease_ok 0\n",
        "\ntern_cluster_stale_frames_total 4\n",
        "# TYPE tern_cluster_min_insync gauge\ntern_cluster_min_insync 2\n",
        "\ntern_partition_has_leader{partition=\"1\"} 1\n"
        "tern_partition_has_leader{partition=\"2\"} 0\n",
        "# TYPE tern_partition_role gauge\ntern_partition_role{partition=\"0\"} 2\n"
        "tern_partition_role{partition=\"1\"} 1\ntern_partition_role{partition=\"2\"} 0\n",
        "\ntern_partition_epoch{partition=\"0\"} 117\ntern_partition_epoch{partition=\"1\"} 120\n",
        "\ntern_partition_isr_size{partition=\"0\"} 3\ntern_partition_isr_size{partition=\"1\"} "
        "2\n",
        "\ntern_partition_position{partition=\"0\"} 42\n",
        "# TYPE tern_partition_follower_lag_seconds gauge\n"
        "tern_partition_follower_lag_seconds{partition=\"0\",node=\"1\"} 1.500\n"
        "tern_partition_follower_lag_seconds{partition=\"0\",node=\"2\"} 0.000\n",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        cr_expect(strstr(text, lines[i]), "missing:\n%s\nin:\n%s", lines[i], text);
    }
    free(text);
    tern_metrics_destroy(&m);
}

//  A single node shows no cluster figure.
Test(cluster_metrics, none_on_a_single_node) {
    char dir[TEST_DIR_MAX];
    cr_assert_not_null(test_dir_make(dir, "metrics"));
    tern_config_t config = s_config(dir);
    tern_metrics_t *m = tern_metrics_new_with(10);
    char *text = tern_http_render_metrics(&config, m, NULL, NULL, NULL);
    cr_assert_not_null(text);
    cr_expect_null(strstr(text, "tern_cluster_"), "%s", text);
    cr_expect_null(strstr(text, "tern_partition_"), "%s", text);
    free(text);
    tern_metrics_destroy(&m);
    cr_assert_eq(test_dir_remove(dir), 0);
}

Test(http, parse_address) {
    char host[64];
    int port = -1;
    cr_expect(tern_http_parse_address("127.0.0.1:7609", host, sizeof host, &port));
    cr_expect_str_eq(host, "127.0.0.1");
    cr_expect_eq(port, 7609);
    cr_expect(tern_http_parse_address("*:0", host, sizeof host, &port));
    cr_expect_eq(port, 0);
    cr_expect_not(tern_http_parse_address("127.0.0.1", host, sizeof host, &port));
    cr_expect_not(tern_http_parse_address(":80", host, sizeof host, &port));
    cr_expect_not(tern_http_parse_address("h:99999", host, sizeof host, &port));
    cr_expect_not(tern_http_parse_address("h:80x", host, sizeof host, &port));
}

//  The real server on an ephemeral loopback port answers GETs.
Test(http, serves_on_loopback) {
    char dir[TEST_DIR_MAX];
    cr_assert_not_null(test_dir_make(dir, "metrics"));
    tern_config_t config = s_config(dir);
    snprintf(config.metrics, sizeof config.metrics, "127.0.0.1:0");
    tern_metrics_t *m = tern_metrics_new();
    atomic_store(&m->serving, 1);
    char err[256] = "";
    tern_http_t *http = tern_http_new(&config, m, NULL, NULL, NULL, err, sizeof err);
    cr_assert_not_null(http, "%s", err);
    int port = tern_http_port(http);
    cr_assert_gt(port, 0);

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    const char *req = "GET /healthz HTTP/1.0\r\n\r\n";
    cr_assert_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    char buf[4096];
    size_t len = 0;
    ssize_t n;
    while ((n = read(fd, buf + len, sizeof buf - 1 - len)) > 0) {
        len += (size_t)n;
    }
    buf[len] = 0;
    close(fd);
    cr_expect(strncmp(buf, "HTTP/1.0 200", 12) == 0 || strncmp(buf, "HTTP/1.1 200", 12) == 0, "%s",
              buf);
    cr_expect(strstr(buf, "\r\n\r\nok\n"), "%s", buf);

    //  A second server on the same port fails with a reason.
    snprintf(config.metrics, sizeof config.metrics, "127.0.0.1:%d", port);
    tern_http_t *again = tern_http_new(&config, m, NULL, NULL, NULL, err, sizeof err);
    cr_expect_null(again);
    cr_expect(strstr(err, "cannot listen"), "%s", err);
    tern_http_destroy(&http);
    cr_expect_null(http);
    tern_metrics_destroy(&m);
    cr_assert_eq(test_dir_remove(dir), 0);
}

//  With replication on, per-peer figures carry a peer label.
Test(http, repl_peers) {
    char dir[TEST_DIR_MAX];
    cr_assert_not_null(test_dir_make(dir, "metrics"));
    tern_config_t config = s_config(dir);
    config.peer_count = 2;
    snprintf(config.peers[0].name, sizeof config.peers[0].name, "us1");
    snprintf(config.peers[1].name, sizeof config.peers[1].name, "ap1");
    tern_repl_stats_t *repl = calloc(1, sizeof *repl);
    cr_assert_not_null(repl);
    atomic_store(&repl->peers[0].state, 2);
    atomic_store(&repl->peers[0].lag_msgs, 42);
    atomic_store(&repl->peers[1].lag_ms, 1500);
    atomic_store(&repl->peers[1].sent, 7);
    tern_metrics_t *m = tern_metrics_new();
    char *text = tern_http_render_metrics(&config, m, NULL, repl, NULL);
    cr_expect(strstr(text, "\ntern_repl_peer_state{peer=\"us1\",state=\"live\"} 1\n"), "%s", text);
    cr_expect(strstr(text, "\ntern_repl_peer_state{peer=\"us1\",state=\"idle\"} 0\n"), "%s", text);
    cr_expect(strstr(text, "\ntern_repl_peer_lag_messages{peer=\"us1\"} 42\n"), "%s", text);
    cr_expect(strstr(text, "\ntern_repl_peer_lag_seconds{peer=\"ap1\"} 1.500\n"), "%s", text);
    cr_expect(strstr(text, "\ntern_repl_records_shipped_total{peer=\"ap1\"} 7\n"), "%s", text);
    free(text);
    text = tern_http_render_metrics(&config, m, NULL, NULL, NULL);
    cr_expect_null(strstr(text, "tern_repl_peer_state"), "no peers without replication");
    free(text);
    tern_metrics_destroy(&m);
    free(repl);
    cr_assert_eq(test_dir_remove(dir), 0);
}

//  `ternctl trace` says when each peer DC confirmed a message: the store
//  records the time each confirmed outbox position was committed, and the
//  trace reports, per peer, the time of the first confirmation at or past
//  the message's outbox position. Exercised through tern_trace_json (what
//  the broker answers to the trace admin op) on a real store.

static uint64_t s_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

//  Value of "replicated_at_ms" in PEER's replica object of trace JSON TEXT;
//  CONFIRMED gets its "confirmed" flag. Fails the test if absent.
static uint64_t s_replicated_at(const char *text, const char *peer, bool *confirmed) {
    char needle[96];
    snprintf(needle, sizeof needle, "\"peer\":\"%s\"", peer);
    const char *obj = strstr(text, needle);
    cr_assert_not_null(obj, "no replica %s in %s", peer, text);
    const char *end = strchr(obj, '}');
    cr_assert_not_null(end);
    const char *c = strstr(obj, "\"confirmed\":");
    cr_assert(c && c < end, "%s", text);
    *confirmed = strncmp(c + 12, "true", 4) == 0;
    const char *at = strstr(obj, "\"replicated_at_ms\":");
    cr_assert(at && at < end, "%s", text);
    return strtoull(at + 19, NULL, 10);
}

static char *s_trace_text(tern_store_t *store, uint64_t msg_id, const tern_config_t *config) {
    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    tern_json_t out;
    tern_json_init(&out);
    tern_err_t rc =
        tern_trace_json(reader, msg_id, (uint64_t)s_wall_ms() * 1000000ull, config, &out);
    cr_assert_eq(rc, TERN_OK, "trace %llu: %s", (unsigned long long)msg_id, tern_errname(rc));
    tern_store_read_end(reader);
    tern_store_reader_destroy(&reader);
    char *text = strdup(out.data);
    tern_json_free(&out);
    return text;
}

Test(trace, replicated_at) {
    char dir[TEST_DIR_MAX];
    cr_assert_not_null(test_dir_make(dir, "metrics"));
    tern_store_config_t sc;
    tern_store_config_defaults(&sc);
    sc.dir = dir;
    sc.map_initial = 1 << 20;
    sc.map_max = 64 << 20;
    sc.durability = TERN_DURABILITY_NONE;
    sc.trace_retention_ms = 3600 * 1000;
    tern_err_t err = TERN_EINTERNAL;
    tern_store_t *store = tern_store_new(&sc, &err);
    cr_assert_not_null(store);
    tern_config_t config = s_config(dir);
    config.peer_count = 2;
    snprintf(config.peers[0].name, sizeof config.peers[0].name, "us1");
    snprintf(config.peers[1].name, sizeof config.peers[1].name, "ap1");

    //  Two local messages: outbox positions 1 and 2.
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_frame_t msg;
    memset(&msg, 0, sizeof msg);
    snprintf(msg.topic, sizeof msg.topic, "orders");
    snprintf(msg.origin, sizeof msg.origin, "eu1");
    msg.payload = (const uint8_t *)"x";
    msg.payload_size = 1;
    tern_append_result_t res;
    msg.msg_id = 501;
    tern_store_batch_append(batch, &msg, true, &res);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(res.err, TERN_OK, "%s", tern_errname(res.err));
    msg.msg_id = 502;
    tern_store_batch_append(batch, &msg, true, &res);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(res.err, TERN_OK, "%s", tern_errname(res.err));

    //  Not confirmed yet: confirmed false, time 0.
    bool confirmed = true;
    char *text = s_trace_text(store, 501, &config);
    cr_expect_eq(s_replicated_at(text, "us1", &confirmed), 0, "%s", text);
    cr_expect_not(confirmed, "%s", text);
    free(text);

    //  us1 confirms position 1, later position 2; ap1 never.
    uint64_t t0 = s_wall_ms();
    tern_store_batch_outbox_confirm(batch, "us1", 1);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    uint64_t t1 = s_wall_ms();
    usleep(30 * 1000);
    uint64_t t2 = s_wall_ms();
    tern_store_batch_outbox_confirm(batch, "us1", 2);
    //  A confirmation that does not move the position records nothing new.
    tern_store_batch_outbox_confirm(batch, "us1", 1);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    uint64_t t3 = s_wall_ms();

    text = s_trace_text(store, 501, &config);
    uint64_t at = s_replicated_at(text, "us1", &confirmed);
    cr_expect(confirmed, "%s", text);
    cr_expect(at >= t0 && at <= t1, "501 at %llu not in [%llu, %llu]: %s", (unsigned long long)at,
              (unsigned long long)t0, (unsigned long long)t1, text);
    cr_expect_eq(s_replicated_at(text, "ap1", &confirmed), 0, "%s", text);
    cr_expect_not(confirmed, "%s", text);
    free(text);
    text = s_trace_text(store, 502, &config);
    at = s_replicated_at(text, "us1", &confirmed);
    cr_expect(confirmed, "%s", text);
    cr_expect(at >= t2 && at <= t3, "502 at %llu not in [%llu, %llu]: %s", (unsigned long long)at,
              (unsigned long long)t2, (unsigned long long)t3, text);
    free(text);

    //  Nothing past the last confirmation; swept after trace_retention.
    tern_store_reader_t *reader = tern_store_reader_new(store);
    uint64_t at_ns = 0;
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    cr_expect_eq(tern_store_trace_confirmed_at(reader, "us1", 3, &at_ns), TERN_ENOTFOUND);
    cr_expect_eq(tern_store_trace_confirmed_at(reader, "ap1", 1, &at_ns), TERN_ENOTFOUND);
    cr_expect_eq(tern_store_trace_confirmed_at(reader, "us1", 2, &at_ns), TERN_OK);
    tern_store_read_end(reader);
    tern_store_batch_sweep(batch, (t3 + 2 * 3600 * 1000) * 1000000ull, 100, NULL);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    cr_expect_eq(tern_store_trace_confirmed_at(reader, "us1", 1, &at_ns), TERN_ENOTFOUND);
    cr_expect_eq(tern_store_trace_confirmed_at(reader, "us1", 2, &at_ns), TERN_ENOTFOUND);
    tern_store_read_end(reader);
    tern_store_reader_destroy(&reader);

    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
    cr_assert_eq(test_dir_remove(dir), 0);
}

//  A confirmation recorded while trace was off leaves a gap: the next
//  recorded one does not claim the positions it did not first cover.
Test(trace, replicated_gap_not_claimed) {
    char dir[TEST_DIR_MAX];
    cr_assert_not_null(test_dir_make(dir, "metrics"));
    tern_store_config_t sc;
    tern_store_config_defaults(&sc);
    sc.dir = dir;
    sc.map_initial = 1 << 20;
    sc.map_max = 64 << 20;
    sc.durability = TERN_DURABILITY_NONE;
    for (int round = 0; round < 2; round++) {
        sc.trace_retention_ms = round ? 3600 * 1000 : 0;
        tern_err_t err = TERN_EINTERNAL;
        tern_store_t *store = tern_store_new(&sc, &err);
        cr_assert_not_null(store);
        tern_store_batch_t *batch = tern_store_batch_new(store);
        tern_store_batch_outbox_confirm(batch, "us1", round ? 7 : 3);
        cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
        tern_store_batch_destroy(&batch);
        tern_store_destroy(&store);
    }
    tern_err_t err = TERN_EINTERNAL;
    tern_store_t *store = tern_store_new(&sc, &err);
    cr_assert_not_null(store);
    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    uint64_t at_ns = 0;
    cr_expect_eq(tern_store_trace_confirmed_at(reader, "us1", 1, &at_ns), TERN_ENOTFOUND);
    cr_expect_eq(tern_store_trace_confirmed_at(reader, "us1", 3, &at_ns), TERN_ENOTFOUND);
    cr_expect_eq(tern_store_trace_confirmed_at(reader, "us1", 4, &at_ns), TERN_OK);
    cr_expect_eq(tern_store_trace_confirmed_at(reader, "us1", 7, &at_ns), TERN_OK);
    cr_expect_eq(tern_store_trace_confirmed_at(reader, "us1", 8, &at_ns), TERN_ENOTFOUND);
    tern_store_read_end(reader);
    tern_store_reader_destroy(&reader);
    tern_store_destroy(&store);
    cr_assert_eq(test_dir_remove(dir), 0);
}
