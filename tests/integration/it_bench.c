/*  it_bench.c - smoke test of `ternctl bench`: every mode, tiny counts, real ternd.

    Benchmarks are not timed tests: this only proves each mode runs to the end
    against a real broker and prints a RESULT line (the shared bench format)
    whose msgs is what was asked, plus the summary as `key  value` lines (the
    --json form and the cleanup of topics are in it_ternctl_cli.c).

    vs_nats_quick runs tools/bench/vs-nats.sh itself in its QUICK form on the
    workloads issue 16 added (lat: publish -> delivery at fixed rates against
    JetStream and core NATS; fanout: tern against the js_fanout peer; size: the
    64 KB LMDB ceiling) and checks that every row and the memory samples are
    there. It needs nats-server, the js_fanout peer (libnats-dev) and the
    shared bench programs (../shared/bench): without them it is skipped
    (`scripts/bootstrap bench` installs what it needs). Nothing is timed.
*/
#include "harness.h"

#include "test_dir.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  Returns the value of KEY= in LINE (copied into BUF), or false.
static bool s_field(const char *line, const char *key, char *buf, size_t cap) {
    size_t klen = strlen(key);
    for (const char *p = line; (p = strstr(p, key)) != NULL; p++) {
        if ((p == line || p[-1] == ' ') && p[klen] == '=') {
            const char *v = p + klen + 1;
            size_t n = strcspn(v, " \n");
            if (n >= cap) {
                return false;
            }
            memcpy(buf, v, n);
            buf[n] = 0;
            return true;
        }
    }
    return false;
}

//  Runs `ternctl bench MODE --msgs MSGS EXTRA...` against B and checks its output.
static void s_bench(it_broker_t *b, const char *mode, const char *msgs, const char *name,
                    const char *lat, const char *extra1, const char *extra2) {
    it_result_t r;
    char *argv[] = {(char *)it_ternctl_path(),
                    "-s",
                    b->endpoint,
                    "bench",
                    (char *)mode,
                    "--msgs",
                    (char *)msgs,
                    "--name",
                    (char *)name,
                    "--timeout",
                    "20s",
                    (char *)extra1,
                    (char *)extra2,
                    NULL};
    it_run(&r, 120000, NULL, argv);
    it_assert_ok(&r, mode);
    char **lines;
    size_t n = it_split_lines(r.out, &lines);
    const char *result = NULL, *summary = NULL;
    bool mb = false, p999 = false;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(lines[i], "RESULT ", 7) == 0) {
            cr_assert_null(result, "two RESULT lines:\n%s", r.out);
            result = lines[i];
        } else if (strncmp(lines[i], "msgs ", 5) == 0) {
            summary = lines[i];
        }
        mb |= strncmp(lines[i], "MB_per_s ", 9) == 0;
        p999 |= strncmp(lines[i], "p999_us ", 8) == 0;
    }
    cr_assert_not_null(result, "no RESULT line from bench %s:\n%s\n%s", mode, r.out, r.err);
    char v[64];
    cr_assert(s_field(result, "name", v, sizeof v));
    cr_assert_str_eq(v, name);
    cr_assert(s_field(result, "msgs", v, sizeof v));
    cr_assert_str_eq(v, msgs, "bench %s: msgs=%s, asked %s:\n%s", mode, v, msgs, result);
    cr_assert(s_field(result, "msgs_per_s", v, sizeof v));
    cr_assert_gt(atof(v), 0.0, "bench %s: msgs_per_s=%s", mode, v);
    cr_assert(s_field(result, "secs", v, sizeof v));
    cr_assert_gt(atof(v), 0.0);
    cr_assert(s_field(result, "lat", v, sizeof v));
    cr_assert_str_eq(v, lat, "bench %s: lat=%s", mode, v);
    if (strcmp(lat, "none") != 0) {
        cr_assert(s_field(result, "p50_us", v, sizeof v));
        cr_assert_gt(atof(v), 0.0, "bench %s: p50_us=%s", mode, v);
        cr_assert(s_field(result, "p99_us", v, sizeof v));
        cr_assert_gt(atof(v), 0.0);
    }
    //  The summary, one `key  value` line each.
    cr_assert_not_null(summary, "no 'msgs  N' line:\n%s", r.out);
    cr_assert_eq(atoll(summary + 5), atoll(msgs), "%s", summary);
    cr_assert(mb && p999, "no MB_per_s or p999_us line:\n%s", r.out);
    free(lines);
    it_result_free(&r);
}

Test(bench, every_mode, .fini = it_teardown, .timeout = 300) {
    it_broker_t *b = it_start_broker(NULL);
    s_bench(b, "pub", "500", "it_pub", "publish_to_ack", "--window", "64");
    s_bench(b, "pub", "400", "it_pub_p4", "publish_to_ack", "--producers", "4");
    s_bench(b, "sync", "50", "it_sync", "publish_round_trip", "--topics", "3");
    s_bench(b, "sub", "500", "it_sub", "none", "--consumers", "2");
    s_bench(b, "pubsub", "300", "it_pubsub", "publish_to_delivery", "--groups", "3");
    s_bench(b, "pubsub", "200", "it_pubsub_rate", "publish_to_delivery", "--rate", "2000");
    //  The broker counted every message published (bench deleted its topics since).
    it_result_t r;
    it_ctl(&r, b, 15000, "status", NULL);
    it_assert_ok(&r, "status");
    int64_t published = 0;
    cr_assert(it_json_int(r.out, "published", &published), "%s", r.out);
    cr_assert_eq(published, 500 + 400 + 50 + 500 + 300 + 200);
    it_result_free(&r);
}

Test(bench, bad_usage, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker(NULL);
    it_result_t r;
    it_ctl(&r, b, 15000, "bench", "nosuchmode", NULL);
    cr_assert_eq(r.status, 2, "exit %d\n%s", r.status, r.err);
    it_result_free(&r);
    it_ctl(&r, b, 15000, "bench", "pubsub", "--size", "4", NULL);
    cr_assert_eq(r.status, 2, "exit %d\n%s", r.status, r.err);
    it_result_free(&r);
    it_ctl(&r, b, 15000, "bench", "pub", "--msgs", "0", NULL);
    cr_assert_eq(r.status, 2, "exit %d\n%s", r.status, r.err);
    it_result_free(&r);
}

//  The line of RAW that starts with PREFIX and has name=NAME (copied into
//  BUF), or NULL.
static const char *s_line(const char *raw, const char *prefix, const char *name, char *buf,
                          size_t cap) {
    size_t plen = strlen(prefix);
    for (const char *l = raw; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        size_t n = strcspn(l, "\n");
        char v[128];
        if (n < cap && strncmp(l, prefix, plen) == 0) {
            memcpy(buf, l, n);
            buf[n] = 0;
            if (s_field(buf, "name", v, sizeof v) && strcmp(v, name) == 0) {
                return buf;
            }
        }
    }
    return NULL;
}

//  KEY= of the line of RAW starting with PREFIX for NAME, as a number; fails
//  the test if the line or the key is missing.
static double s_value(const char *raw, const char *prefix, const char *name, const char *key) {
    char line[2048], v[128];
    cr_assert_not_null(s_line(raw, prefix, name, line, sizeof line), "no %s line for %s in:\n%s",
                       prefix, name, raw);
    cr_assert(s_field(line, key, v, sizeof v), "no %s= in: %s", key, line);
    return atof(v);
}

//  True if PROG is an executable on PATH.
static bool s_on_path(const char *prog) {
    const char *path = getenv("PATH");
    char buf[1024];
    while (path && *path) {
        size_t n = strcspn(path, ":");
        snprintf(buf, sizeof buf, "%.*s/%s", (int)n, path, prog);
        if (access(buf, X_OK) == 0) {
            return true;
        }
        path += n + (path[n] == ':');
    }
    return false;
}

Test(bench, vs_nats_quick, .timeout = 600) {
    char script[512], shared[512], build[512], fanout[512];
    snprintf(script, sizeof script, "%s/tools/bench/vs-nats.sh", TERN_SOURCE_DIR);
    snprintf(shared, sizeof shared, "%s/../shared/bench/js_bench.c", TERN_SOURCE_DIR);
    snprintf(fanout, sizeof fanout, "%s/js_fanout", TERN_BIN_DIR);
    snprintf(build, sizeof build, "%s/..", TERN_BIN_DIR);
    if (!s_on_path("nats-server") || access(fanout, X_OK) != 0 ||
        (access(shared, R_OK) != 0 && access("/tmp/tern-bench/build/js_bench", X_OK) != 0)) {
        cr_skip_test("needs nats-server, %s and the shared bench programs "
                     "(scripts/bootstrap bench)",
                     fanout);
    }
    char out[TEST_DIR_MAX];
    cr_assert_not_null(test_dir_make(out, "vsnats"));
    //  Two rates keep it short; the script's own children (ternd, nats-server)
    //  are stopped by PID in its EXIT trap.
    setenv("QUICK", "1", 1);
    setenv("REPS", "1", 1);
    setenv("NOBUILD", "1", 1);
    setenv("BUILD", build, 1);
    setenv("OUT", out, 1);
    setenv("RATES", "1000 5000", 1);
    setenv("LAT_MS", "250", 1); //  (what QUICK takes; set, so the caller's cannot change it)
    setenv("BIG_BATCH", "auto", 1);
    char *argv[] = {"/bin/bash", script, "lat", "fanout", "size", NULL};
    it_result_t r;
    it_run(&r, 500000, NULL, argv);
    cr_assert_eq(r.status, 0, "vs-nats.sh exit %d\n%s\n%s", r.status, r.out, r.err);

    char path[TEST_DIR_MAX + 32];
    snprintf(path, sizeof path, "%s/raw.txt", out);
    char *raw = it_read_file(path, NULL);
    cr_assert_not_null(raw);
    //  lat: every side at every rate, with its p999 (QUICK: 250 ms of each rate).
    const char *lat[] = {"tern_pubsub_fsync_r", "tern_pubsub_none_r", "js_pubsub_asap_r",
                         "nats_core_pubsub_asap_r"};
    const int rates[] = {1000, 5000};
    for (size_t i = 0; i < sizeof lat / sizeof lat[0]; i++) {
        for (size_t k = 0; k < 2; k++) {
            char name[64];
            snprintf(name, sizeof name, "%s%d", lat[i], rates[k]);
            cr_assert_eq(s_value(raw, "RESULT ", name, "msgs"), rates[k] / 4, "%s", name);
            cr_assert_gt(s_value(raw, "RESULT ", name, "p999_us"), 0, "%s", name);
            cr_assert_eq(s_value(raw, "RESULT ", name, "rate"), rates[k], "%s", name);
        }
    }
    //  fanout: both sides deliver every message to each of the 100 groups.
    cr_assert_eq(s_value(raw, "RESULT ", "tern_fanout_g100", "delivered"), 500 * 100);
    cr_assert_eq(s_value(raw, "RESULT ", "js_fanout_c100", "delivered"), 500 * 100);
    cr_assert_gt(s_value(raw, "RESULT ", "js_fanout_c100", "delivered_per_s"), 0);
    //  size: the 64 KB ceiling commits as many records per commit as tern did.
    cr_assert_eq(s_value(raw, "RESULT ", "lmdb_sync_64KB", "size"), 65536);
    double commits = s_value(raw, "MEM ", "tern_pub_fsync_64KB", "commits");
    cr_assert_gt(commits, 0);
    cr_assert_eq(s_value(raw, "RESULT ", "lmdb_sync_64KB", "batch"),
                 (int)((200 + commits / 2) / commits));
    //  Memory: a sample of each server under each workload, ternd's with the bound.
    cr_assert_gt(s_value(raw, "MEM ", "tern_fanout_g100", "rss_anon_peak_kb"), 0);
    cr_assert_eq(s_value(raw, "MEM ", "tern_fanout_g100", "bound_kb"),
                 65536 + 64 * s_value(raw, "MEM ", "tern_fanout_g100", "conns_peak"));
    cr_assert_gt(s_value(raw, "MEM ", "tern_pubsub_none_r1000", "rss_anon_after_kb"), 0);
    cr_assert_gt(s_value(raw, "MEM ", "js_fanout_c100", "vmhwm_kb"), 0);
    //  The tables.
    cr_assert_not_null(strstr(r.out, "| 5000 | "), "%s", r.out);
    cr_assert_not_null(strstr(r.out, "## Memory per workload"), "%s", r.out);
    cr_assert_not_null(strstr(r.out, "| fan-out 100 groups x 1 consumer, deliveries/s | "), "%s",
                       r.out);
    free(raw);
    it_result_free(&r);
    test_dir_remove(out);
}
