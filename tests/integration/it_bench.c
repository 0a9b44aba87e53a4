/*  it_bench.c - smoke test of `ternctl bench`: every mode, tiny counts, real ternd.

    Benchmarks are not timed tests: this only proves each mode runs to the end
    against a real broker and prints a RESULT line (the shared bench format)
    whose msgs is what was asked, plus the summary as `key  value` lines (the
    --json form and the cleanup of topics are in it_ternctl_cli.c).
*/
#include "harness.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
