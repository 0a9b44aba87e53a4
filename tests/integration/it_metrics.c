/*  it_metrics.c - operability end to end: /metrics and /healthz scraped with
    a real HTTP client (a raw HTTP/1.0 GET over a loopback TCP socket), a
    scripted workload whose counters must move exactly (N published and
    acked, M nacked into the DLQ, K expired), `ternctl audit` and `ternctl
    trace` reporting the same workload, one trace id followed through the
    verbose log, and /healthz flipping to 503 when storage fills and back
    to 200 when it is freed.
*/
#include "harness.h"
#include "test_port.h"

#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_TOPIC "it.metrics"
#define S_N     10 //  published, delivered and acked
#define S_M     4  //  published, delivered, nacked, dead-lettered
#define S_K     3  //  published with a 1 s ttl, never consumed: expired

static char *s_scrape(int port) {
    char *body = NULL;
    int status = it_http_get(port, "/metrics", &body);
    cr_assert_eq(status, 200, "GET /metrics: %d", status);
    return body;
}

//  Publishes COUNT messages; stores their msg_ids in IDS (may be NULL).
static void s_pub(it_broker_t *b, int count, const char *ttl, int64_t *ids) {
    char n[16];
    snprintf(n, sizeof n, "%d", count);
    it_result_t r;
    if (ttl) {
        it_ctl(&r, b, 30000, "pub", S_TOPIC, "m{n}", "--count", n, "--ttl", ttl, NULL);
    } else {
        it_ctl(&r, b, 30000, "pub", S_TOPIC, "m{n}", "--count", n, NULL);
    }
    it_assert_ok(&r, "ternctl pub");
    char **lines;
    size_t got = it_split_lines(r.out, &lines);
    cr_assert_eq(got, (size_t)count, "pub printed %zu lines:\n%s", got, r.out);
    for (size_t i = 0; ids && i < got; i++) {
        ids[i] = it_json_field(lines[i], "msg_id");
    }
    free(lines);
    it_result_free(&r);
}

static char *s_base; //  the scrape the deltas are taken from

//  Expects sample NAME to have moved by exactly WANT since s_base.
static void s_expect(const char *doc, const char *name, double want) {
    double base = s_base ? it_prom_sample(s_base, name) : 0;
    double got = it_prom_sample(doc, name) - (base < 0 ? 0 : base);
    cr_expect_eq(got, want, "%s moved by %g, expected %g", name, got, want);
}

static char *s_trace(it_broker_t *b, int64_t msg_id) {
    char id[32];
    snprintf(id, sizeof id, "%" PRId64, msg_id);
    it_result_t r;
    it_ctl(&r, b, 10000, "trace", id, NULL);
    it_assert_ok(&r, "ternctl trace");
    char *out = strdup(r.out);
    it_result_free(&r);
    return out;
}

//  Number of events named EVENT in a trace reply.
static int s_events(const char *trace, const char *event) {
    char needle[64];
    snprintf(needle, sizeof needle, "\"event\":\"%s\"", event);
    int n = 0;
    for (const char *p = strstr(trace, needle); p; p = strstr(p + 1, needle)) {
        n++;
    }
    return n;
}

Test(metrics, workload_counters_audit_trace, .fini = it_teardown, .timeout = 120) {
    int port = test_port();
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    it_broker_t *b = it_start_broker("--metrics", addr, "--max-deliver", "1", "--backoff", "10ms",
                                     "--sweep-interval", "100ms", "-v", NULL);

    char *body = NULL;
    cr_assert_eq(it_http_get(port, "/healthz", &body), 200, "healthz: %s", body ? body : "");
    free(body);
    cr_assert_eq(it_http_get(port, "/nope", &body), 404);
    free(body);
    char *doc = s_scrape(port);
    s_expect(doc, "tern_messages_published_total", 0);
    s_expect(doc, "tern_up", 1);
    s_expect(doc, "tern_storage_full", 0);
    cr_expect_gt(it_prom_sample(doc, "process_resident_memory_bytes"), 0);
    cr_expect_gt(it_prom_sample(doc, "process_open_fds"), 0);
    cr_expect(strstr(doc, "# TYPE tern_publish_durable_seconds histogram"), "%s", doc);
    free(doc);

    //  Warm-up: one message, consumed by group g, so that the group exists
    //  before the workload and is owed all of it. The counters below are
    //  deltas from here; the audit covers the whole history (+1).
    s_pub(b, 1, NULL, NULL);
    it_result_t r;
    it_ctl(&r, b, 10000, "sub", S_TOPIC, "--group", "g", "--count", "1", "--timeout", "5s", NULL);
    it_assert_ok(&r, "ternctl sub (create the group)");
    it_result_free(&r);
    s_base = s_scrape(port);

    //  K messages expire unconsumed and are swept.
    int64_t expired_ids[S_K];
    s_pub(b, S_K, "1s", expired_ids);
    it_sleep_ms(2000);
    //  N are consumed and acked.
    int64_t acked_ids[S_N];
    s_pub(b, S_N, NULL, acked_ids);
    char count[16];
    snprintf(count, sizeof count, "%d", S_N);
    it_ctl(&r, b, 20000, "sub", S_TOPIC, "--group", "g", "--count", count, "--timeout", "5s", NULL);
    it_assert_ok(&r, "ternctl sub (ack)");
    it_msg_t *msgs = NULL;
    size_t got = it_parse_msgs(r.out, &msgs);
    cr_assert_eq(got, (size_t)S_N, "sub got %zu:\n%s", got, r.out);
    char trace_id[80];
    snprintf(trace_id, sizeof trace_id, "%s", msgs[0].trace_id);
    int64_t traced_id = msgs[0].msg_id;
    it_msgs_free(msgs, got);
    it_result_free(&r);
    //  M are nacked once; with max_deliver 1 they go to the DLQ.
    int64_t dead_ids[S_M];
    s_pub(b, S_M, NULL, dead_ids);
    snprintf(count, sizeof count, "%d", S_M + 1);
    it_ctl(&r, b, 20000, "sub", S_TOPIC, "--group", "g", "--nack", "--count", count, "--timeout",
           "1500ms", NULL);
    it_assert_ok(&r, "ternctl sub (nack)");
    got = it_parse_msgs(r.out, &msgs);
    cr_assert_eq(got, (size_t)S_M, "nack sub got %zu:\n%s", got, r.out);
    it_msgs_free(msgs, got);
    it_result_free(&r);
    it_sleep_ms(300);

    doc = s_scrape(port);
    s_expect(doc, "tern_messages_published_total", S_N + S_M + S_K);
    s_expect(doc, "tern_messages_expired_total", S_K);
    s_expect(doc, "tern_messages_delivered_total", S_N + S_M);
    s_expect(doc, "tern_messages_redelivered_total", 0);
    s_expect(doc, "tern_messages_acked_total", S_N);
    s_expect(doc, "tern_messages_nacked_total", S_M);
    s_expect(doc, "tern_messages_dead_lettered_total", S_M);
    s_expect(doc, "tern_topic_published_total{topic=\"" S_TOPIC "\"}", S_N + S_M + S_K);
    s_expect(doc, "tern_group_delivered_total{topic=\"" S_TOPIC "\",group=\"g\"}", S_N + S_M);
    s_expect(doc, "tern_group_acked_total{topic=\"" S_TOPIC "\",group=\"g\"}", S_N);
    s_expect(doc, "tern_group_nacked_total{topic=\"" S_TOPIC "\",group=\"g\"}", S_M);
    s_expect(doc, "tern_group_dead_lettered_total{topic=\"" S_TOPIC "\",group=\"g\"}", S_M);
    s_expect(doc, "tern_group_inflight{topic=\"" S_TOPIC "\",group=\"g\"}", 0);
    cr_expect_eq(it_prom_sample(doc, "tern_group_inflight{topic=\"" S_TOPIC "\",group=\"g\"}"), 0);
    s_expect(doc, "tern_publish_durable_seconds_count", S_N + S_M + S_K);
    s_expect(doc, "tern_publish_deliver_seconds_count", S_N + S_M);
    s_expect(doc, "tern_publish_durable_seconds_bucket{le=\"+Inf\"}", S_N + S_M + S_K);
    double decode_before = 0;
    static const char *codes[] = {"malformed", "magic", "version", "command",
                                  "too_big",   "name",  "meta",    "other"};
    for (size_t i = 0; i < 8; i++) {
        char name[96];
        snprintf(name, sizeof name, "tern_decode_errors_total{code=\"%s\"}", codes[i]);
        decode_before += it_prom_sample(doc, name);
    }
    free(doc);

    //  One garbage frame: exactly one decode error.
    it_raw_t *raw = it_raw_new(b->endpoint);
    cr_assert(raw);
    cr_assert(it_raw_send(raw, "garbage!", 8, NULL, 0));
    tern_frame_t reply;
    cr_expect_eq(it_raw_recv_reply(raw, &reply, 5000), TERN_OK);
    it_raw_destroy(&raw);
    doc = s_scrape(port);
    double decode_after = 0;
    for (size_t i = 0; i < 8; i++) {
        char name[96];
        snprintf(name, sizeof name, "tern_decode_errors_total{code=\"%s\"}", codes[i]);
        decode_after += it_prom_sample(doc, name);
    }
    cr_expect_eq(decode_after, decode_before + 1, "decode errors %g -> %g", decode_before,
                 decode_after);
    free(doc);

    //  audit reports the same workload.
    it_ctl(&r, b, 10000, "audit", S_TOPIC, "--group", "g", NULL);
    it_assert_ok(&r, "ternctl audit");
    char **lines;
    size_t n = it_split_lines(r.out, &lines);
    cr_assert_eq(n, 1, "audit printed %zu lines:\n%s", n, r.out);
    const char *a = lines[0];
    cr_expect_eq(it_json_field(a, "published"), 1 + S_N + S_M + S_K, "%s", a);
    cr_expect_eq(it_json_field(a, "delivered"), 1 + S_N + S_M, "%s", a);
    cr_expect_eq(it_json_field(a, "acked"), 1 + S_N, "%s", a);
    cr_expect_eq(it_json_field(a, "pending"), 0, "%s", a);
    cr_expect_eq(it_json_field(a, "redelivered"), 0, "%s", a);
    cr_expect_eq(it_json_field(a, "dead"), S_M, "%s", a);
    cr_expect_eq(it_json_field(a, "expired"), S_K, "%s", a);
    cr_expect_eq(it_json_field(a, "oldest_unacked_ms"), 0, "%s", a);
    const char *val;
    size_t vlen;
    cr_assert(it_json_raw(a, "reachability", &val, &vlen), "%s", a);
    double reach = strtod(val, NULL);
    double want = (1.0 + S_N) / (1.0 + S_N + S_M);
    cr_expect(reach > want - 1e-6 && reach < want + 1e-6, "reachability %g: %s", reach, a);
    char s[64];
    cr_expect(it_json_str(a, "topic", s, sizeof s) && strcmp(s, S_TOPIC) == 0, "%s", a);
    cr_expect(it_json_str(a, "group", s, sizeof s) && strcmp(s, "g") == 0, "%s", a);
    free(lines);
    it_result_free(&r);

    //  Human output: aligned table with the group row.
    char *argv[] = {(char *)it_ternctl_path(), "-s", b->endpoint, "audit", S_TOPIC, NULL};
    it_run(&r, 10000, NULL, argv);
    it_assert_ok(&r, "ternctl audit (text)");
    cr_expect(strstr(r.out, "REACHABILITY") && strstr(r.out, "73.33%"), "%s", r.out);
    it_result_free(&r);

    //  trace: one message of each fate.
    char *t = s_trace(b, dead_ids[0]);
    cr_expect_eq(s_events(t, "stored"), 1, "%s", t);
    cr_expect_eq(s_events(t, "delivered"), 1, "%s", t);
    cr_expect_eq(s_events(t, "nacked"), 1, "%s", t);
    cr_expect_eq(s_events(t, "dead"), 1, "%s", t);
    cr_expect(strstr(t, "\"state\":\"dead\""), "%s", t);
    cr_expect(strstr(t, "max_deliver"), "%s", t);
    free(t);
    t = s_trace(b, expired_ids[1]);
    cr_expect_eq(s_events(t, "stored"), 1, "%s", t);
    cr_expect_eq(s_events(t, "expired"), 1, "%s", t);
    cr_expect_eq(s_events(t, "delivered"), 0, "%s", t);
    cr_expect(strstr(t, "\"expired\":true"), "%s", t);
    free(t);
    t = s_trace(b, traced_id);
    cr_expect_eq(s_events(t, "stored"), 1, "%s", t);
    cr_expect_eq(s_events(t, "delivered"), 1, "%s", t);
    cr_expect_eq(s_events(t, "acked"), 1, "%s", t);
    cr_expect(strstr(t, trace_id), "trace id %s not in %s", trace_id, t);
    cr_expect(strstr(t, "\"state\":\"acked\""), "%s", t);
    free(t);
    char id[32];
    snprintf(id, sizeof id, "%" PRId64, dead_ids[0]);
    char *targv[] = {(char *)it_ternctl_path(), "-s", b->endpoint, "trace", id, NULL};
    it_run(&r, 10000, NULL, targv);
    it_assert_ok(&r, "ternctl trace (text)");
    cr_expect(strstr(r.out, "EVENT") && strstr(r.out, "max_deliver") && strstr(r.out, "dead"), "%s",
              r.out);
    it_result_free(&r);
    char *hargv[] = {(char *)it_ternctl_path(), "audit", "--help", NULL};
    it_run(&r, 10000, NULL, hargv);
    it_assert_ok(&r, "ternctl audit --help");
    cr_expect(strstr(r.out, "reachability = acked / (published - expired)"), "%s", r.out);
    it_result_free(&r);
    char *bargv[] = {(char *)it_ternctl_path(), "-s", b->endpoint, "trace", "abc", NULL};
    cr_expect_eq(it_run(&r, 10000, NULL, bargv), 2, "trace abc: %s", r.err);
    it_result_free(&r);
    it_result_t miss;
    it_ctl(&miss, b, 10000, "trace", "12345", NULL);
    cr_expect_eq(miss.status, 1, "trace of an unknown id: %d", miss.status);
    it_result_free(&miss);

    //  One grep follows the message through the verbose log: accepted and
    //  stored, delivered, acked.
    char *log = it_read_file(b->log_path, NULL);
    cr_assert(log);
    int hops = 0;
    for (const char *p = strstr(log, trace_id); p; p = strstr(p + 1, trace_id)) {
        hops++;
    }
    cr_expect_geq(hops, 3, "trace id %s in %d log lines:\n%s", trace_id, hops, log);
    free(log);
    free(s_base);
    s_base = NULL;
}

Test(metrics, healthz_flips_when_storage_is_full, .fini = it_teardown, .timeout = 120) {
    int port = test_port();
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    it_broker_t *b =
        it_start_broker("--metrics", addr, "--map-initial", "1M", "--map-max", "1M", NULL);
    char *body = NULL;
    int status = it_http_get(port, "/healthz", &body);
    cr_assert_eq(status, 200, "healthz before: %d %s", status, body ? body : "");
    cr_expect(strstr(body, "ok"), "%s", body);
    free(body);

    //  Fill the map: the publish run fails once storage is full.
    it_result_t r;
    it_ctl(&r, b, 60000, "pub", "it.full", "x", "--size", "8192", "--count", "400", NULL);
    cr_assert_eq(r.status, 1, "pub into a 1 MiB map should fail: %d\n%s\n%s", r.status, r.out,
                 r.err);
    it_result_free(&r);
    //  Near the limit a later publish may still fit (LMDB reuses freed pages
    //  once no reader needs them), and a stored publish clears "full": make
    //  the last publish before the check a refused one.
    int refused = 0;
    for (int i = 0; i < 100 && !refused; i++) {
        it_ctl(&r, b, 10000, "pub", "it.full", "x", "--size", "8192", NULL);
        refused = r.status == 1;
        it_result_free(&r);
    }
    cr_assert(refused, "100 more 8 KiB publishes fit into a full 1 MiB map");

    status = it_http_get(port, "/healthz", &body);
    cr_assert_eq(status, 503, "healthz when full: %d %s", status, body ? body : "");
    cr_expect(strstr(body, "storage full"), "%s", body);
    free(body);
    char *doc = s_scrape(port);
    s_expect(doc, "tern_storage_full", 1);
    s_expect(doc, "tern_up", 0);
    cr_expect_gt(it_prom_sample(doc, "tern_publish_errors_total"), 0);
    cr_expect_eq(it_prom_sample(doc, "tern_storage_map_max_bytes"), 1048576);
    free(doc);

    //  Purging the topic frees the space: healthy again.
    it_ctl(&r, b, 10000, "topic", "purge", "it.full", NULL);
    it_assert_ok(&r, "ternctl topic purge");
    it_result_free(&r);
    status = it_http_get(port, "/healthz", &body);
    cr_expect_eq(status, 200, "healthz after purge: %d %s", status, body ? body : "");
    free(body);
    it_ctl(&r, b, 10000, "pub", "it.full", "again", NULL);
    it_assert_ok(&r, "ternctl pub after purge");
    it_result_free(&r);
}

//  Two DCs: per-peer metrics on /metrics, and `trace` shows the message
//  stored at its origin, confirmed by the peer, and applied at the peer
//  under the same trace id.
Test(metrics, replication_peers_and_trace, .fini = it_teardown, .timeout = 120) {
    int http_a = test_port();
    char addr_a[64];
    snprintf(addr_a, sizeof addr_a, "127.0.0.1:%d", http_a);
    const char *const xa[] = {"--metrics", addr_a, NULL}, *const xb[] = {"--metrics", "off", NULL};
    const char *const *each[] = {xa, xb};
    it_broker_t *dcs[2];
    it_mesh_start(2, NULL, each, dcs);
    it_broker_t *a = dcs[0], *b = dcs[1];

    int64_t id = 0;
    s_pub(a, 1, NULL, &id);
    char idtext[32];
    snprintf(idtext, sizeof idtext, "%" PRId64, id);
    //  Wait until the peer confirmed it (trace on dc1) and applied it (dc2).
    char *ta = NULL, *tb = NULL;
    for (int64_t until = it_now_ms() + 30000; it_now_ms() < until; it_sleep_ms(200)) {
        free(ta);
        ta = s_trace(a, id);
        if (strstr(ta, "\"peer\":\"dc2\",\"confirmed\":true")) {
            break;
        }
    }
    cr_assert(ta && strstr(ta, "\"peer\":\"dc2\",\"confirmed\":true"), "dc1 trace: %s", ta);
    for (int64_t until = it_now_ms() + 30000; it_now_ms() < until; it_sleep_ms(200)) {
        it_result_t r;
        it_ctl(&r, b, 10000, "trace", idtext, NULL);
        if (r.status == 0) {
            tb = strdup(r.out);
            it_result_free(&r);
            break;
        }
        it_result_free(&r);
    }
    cr_assert(tb, "dc2 never stored message %s", idtext);
    char trace_a[80], trace_b[80], origin[32];
    cr_assert(it_json_str(ta, "trace_id", trace_a, sizeof trace_a), "%s", ta);
    cr_assert(it_json_str(tb, "trace_id", trace_b, sizeof trace_b), "%s", tb);
    cr_expect_str_eq(trace_a, trace_b);
    cr_expect(it_json_str(tb, "origin", origin, sizeof origin) && strcmp(origin, "dc1") == 0, "%s",
              tb);
    cr_expect(strstr(tb, "\"replicas\":[]"), "an applied message is not shipped again: %s", tb);
    free(ta);
    free(tb);

    //  The repl actor refreshes its figures once a second.
    char *doc = NULL;
    for (int64_t until = it_now_ms() + 5000; it_now_ms() < until; it_sleep_ms(200)) {
        free(doc);
        doc = s_scrape(http_a);
        if (it_prom_sample(doc, "tern_repl_records_shipped_total{peer=\"dc2\"}") >= 1 &&
            it_prom_sample(doc, "tern_repl_peer_lag_messages{peer=\"dc2\"}") == 0) {
            break;
        }
    }
    cr_expect_eq(it_prom_sample(doc, "tern_repl_peer_state{peer=\"dc2\",state=\"live\"}"), 1, "%s",
                 doc);
    //  The other labels are the state names `ternctl peers` shows (tern_peer.c).
    cr_expect_eq(it_prom_sample(doc, "tern_repl_peer_state{peer=\"dc2\",state=\"connecting\"}"), 0,
                 "%s", doc);
    cr_expect_geq(it_prom_sample(doc, "tern_repl_records_shipped_total{peer=\"dc2\"}"), 1, "%s",
                  doc);
    cr_expect_eq(it_prom_sample(doc, "tern_repl_peer_lag_messages{peer=\"dc2\"}"), 0, "%s", doc);
    free(doc);
}
