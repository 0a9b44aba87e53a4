/*  it_ternctl_pubsub.c - what a person sees from ternctl pub/sub and the
    admin printers, against a real ternd: human units in text output (raw
    numbers with --json), ISO 8601 log times, pub's summary, --quiet, the
    resume hint after a failure and the stdin hint on a terminal; sub's
    --follow and Ctrl-C, --timeout 0, the --from warning for an existing
    group, "no such topic" unless --wait, and the ephemeral default of
    --from new. Exit codes throughout (0 ok, 1 failure, 2 usage).
*/
#include "harness.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

//  The value of KEY in ternctl's "key  value" text lines, into BUF.
static bool s_text_value(const char *out, const char *key, char *buf, size_t cap) {
    size_t klen = strlen(key);
    for (const char *line = out; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ' ') {
            const char *v = line + klen;
            while (*v == ' ') {
                v++;
            }
            size_t len = strcspn(v, "\n");
            snprintf(buf, cap, "%.*s", (int)len, v);
            return true;
        }
    }
    return false;
}

//  True if TEXT holds an ISO 8601 UTC time like 2026-12-07T12:33:54.123Z.
static bool s_has_iso_time(const char *text) {
    static const char shape[] = "0000-00-00T00:00:00.000Z";
    size_t n = sizeof shape - 1;
    for (const char *p = text; *p && strlen(p) >= n; p++) {
        bool ok = true;
        for (size_t i = 0; i < n && ok; i++) {
            ok = shape[i] == '0' ? p[i] >= '0' && p[i] <= '9' : p[i] == shape[i];
        }
        if (ok) {
            return true;
        }
    }
    return false;
}

static int64_t s_int(const char *obj, const char *key) {
    int64_t v = -1;
    cr_assert(it_json_int(obj, key, &v), "no integer '%s' in %s", key, obj);
    return v;
}

Test(ternctl_pubsub, human_units_in_text_raw_in_json, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker(NULL);
    it_result_t r;
    it_ctl_text(&r, b, 20000, NULL, "topic", "create", "it.u", "--max-age", "1m30s", "--max-bytes",
                "10GiB", NULL);
    it_assert_ok(&r, "topic create with 1m30s and 10GiB");
    char v[128];
    cr_assert(s_text_value(r.out, "max_age", v, sizeof v), "%s", r.out);
    cr_assert_str_eq(v, "1m30s", "%s", r.out);
    cr_assert(s_text_value(r.out, "max_bytes", v, sizeof v));
    cr_assert_str_eq(v, "10 GiB", "%s", r.out);
    cr_assert(s_text_value(r.out, "max_msgs", v, sizeof v));
    cr_assert_str_eq(v, "unlimited", "a 0 limit: %s", r.out);
    it_result_free(&r);

    //  --json: the broker's numbers as they are.
    it_ctl(&r, b, 10000, "topic", "info", "it.u", NULL);
    it_assert_ok(&r, "topic info --json");
    cr_assert_eq(s_int(r.out, "max_age_ms"), 90000, "%s", r.out);
    cr_assert_eq(s_int(r.out, "max_bytes"), 10737418240LL, "%s", r.out);
    cr_assert_eq(s_int(r.out, "max_msgs"), 0, "%s", r.out);
    it_result_free(&r);

    //  The topics table, and status's uptime and storage size.
    it_ctl_text(&r, b, 20000, NULL, "topics", NULL);
    it_assert_ok(&r, "topics");
    cr_assert(strstr(r.out, "MAX_AGE ") && !strstr(r.out, "MAX_AGE_MS"), "%s", r.out);
    cr_assert(strstr(r.out, "1m30s") && strstr(r.out, "10 GiB") && strstr(r.out, "unlimited"), "%s",
              r.out);
    it_result_free(&r);
    it_ctl_text(&r, b, 20000, NULL, "status", NULL);
    it_assert_ok(&r, "status");
    cr_assert(s_text_value(r.out, "storage_bytes", v, sizeof v), "%s", r.out);
    cr_assert(strstr(v, "B") && strchr(v, ' '), "storage_bytes '%s' is not a size", v);
    cr_assert(s_text_value(r.out, "uptime", v, sizeof v), "%s", r.out);
    cr_assert(v[strlen(v) - 1] == 's' || v[strlen(v) - 1] == 'm' || v[strlen(v) - 1] == 'h',
              "uptime '%s' is not a duration", v);
    it_result_free(&r);

    //  A dead letter's time is an ISO 8601 date; the JSON keeps unix ms.
    it_pub(b, "it.u", "doomed", 1);
    it_ctl(&r, b, 15000, "sub", "it.u", "--group", "g", "--term", "--count", "1", "--timeout", "5s",
           NULL);
    it_assert_ok(&r, "sub --term");
    it_result_free(&r);
    it_ctl_text(&r, b, 20000, NULL, "dlq", "list", "it.u", "--group", "g", NULL);
    for (int64_t deadline = it_now_ms() + 5000; !s_has_iso_time(r.out) && it_now_ms() < deadline;) {
        it_result_free(&r);
        it_sleep_ms(100);
        it_ctl_text(&r, b, 20000, NULL, "dlq", "list", "it.u", "--group", "g", NULL);
    }
    it_assert_ok(&r, "dlq list");
    cr_assert(s_has_iso_time(r.out), "dead_at_ms is not an ISO 8601 time:\n%s", r.out);
    it_result_free(&r);
    it_ctl(&r, b, 10000, "dlq", "list", "it.u", "--group", "g", NULL);
    it_assert_ok(&r, "dlq list --json");
    cr_assert_gt(s_int(r.out, "dead_at_ms"), 1700000000000LL, "%s", r.out);
    cr_assert_not(s_has_iso_time(r.out), "--json printed a date:\n%s", r.out);
    it_result_free(&r);

    //  ternd's own log lines carry ISO 8601 UTC times.
    char *log = it_read_file(b->log_path, NULL);
    cr_assert(log);
    const char *ready = strstr(log, "ready on");
    cr_assert(ready, "%s", log);
    const char *line = ready;
    while (line > log && line[-1] != '\n') {
        line--;
    }
    char first[256];
    snprintf(first, sizeof first, "%.*s", (int)(ready - line), line);
    cr_assert(s_has_iso_time(first), "log line without an ISO 8601 time: %s", first);
    free(log);
}

Test(ternctl_pubsub, pub_summary_and_quiet, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker(NULL);
    it_result_t r;
    it_ctl_text(&r, b, 20000, NULL, "pub", "it.sum", "m{n}", "--count", "5", NULL);
    it_assert_ok(&r, "pub --count 5");
    char **lines;
    cr_assert_eq(it_split_lines(r.out, &lines), 5, "one line per ack: %s", r.out);
    free(lines);
    cr_assert(strstr(r.err, "published 5 in ") && strstr(r.err, " msg/s)"), "summary: %s", r.err);
    it_result_free(&r);

    //  --json: the same JSON lines on stdout, the summary on stderr.
    it_ctl(&r, b, 10000, "pub", "it.sum", "m{n}", "--count", "3", NULL);
    it_assert_ok(&r, "pub --json");
    cr_assert_eq(it_split_lines(r.out, &lines), 3, "%s", r.out);
    cr_assert_eq(s_int(lines[0], "seq"), 6);
    free(lines);
    cr_assert(strstr(r.err, "published 3 in "), "%s", r.err);
    it_result_free(&r);

    //  --quiet: nothing at all, exit 0, the messages stored.
    it_ctl_text(&r, b, 20000, NULL, "pub", "it.sum", "q{n}", "--count", "4", "--quiet", NULL);
    it_assert_ok(&r, "pub --quiet");
    cr_assert_eq(r.out_len, 0, "%s", r.out);
    cr_assert_eq(r.err_len, 0, "%s", r.err);
    it_result_free(&r);
    it_ctl(&r, b, 10000, "topic", "info", "it.sum", NULL);
    cr_assert_eq(s_int(r.out, "msgs"), 12, "%s", r.out);
    it_result_free(&r);

    //  The help says what the dedup window holds.
    it_ctl_text(&r, b, 20000, NULL, "pub", "--help", NULL);
    it_assert_ok(&r, "pub --help");
    cr_assert(strstr(r.out, "1024") && strstr(r.out, "2 min") && strstr(r.out, "--quiet"), "%s",
              r.out);
    it_result_free(&r);
}

Test(ternctl_pubsub, pub_failure_says_how_to_resume, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker("--max-payload", "1K", NULL);
    char input[2200];
    char big[2001];
    memset(big, 'x', 2000);
    big[2000] = 0;
    snprintf(input, sizeof input, "a\nb\nc\n%s\ne\n", big);
    it_result_t r;
    it_ctl_in(&r, b, 20000, input, "pub", "it.res", "--producer", "it-p", NULL);
    //  libtern refuses the 4th line before sending it (over max_payload), so
    //  pub stops there, after the acks of a, b and c.
    cr_assert_eq(r.status, 1, "a refused message: exit %d\n%s", r.status, r.err);
    char **lines;
    size_t n = it_split_lines(r.out, &lines);
    free(lines);
    cr_assert_eq(n, 3, "acks of a, b, c: %zu lines", n);
    cr_assert(strstr(r.err, "3 of 3 sent message(s) acknowledged, all before message 4"), "%s",
              r.err);
    cr_assert(strstr(r.err, "resume from message 4 with: --producer it-p --seq 4"), "%s", r.err);
    cr_assert(strstr(r.err, "1024"), "no word on the dedup window: %s", r.err);
    it_result_free(&r);

    //  Resuming as told stores the rest once; re-sending c is a duplicate.
    it_ctl_in(&r, b, 20000, "d\ne\n", "pub", "it.res", "--producer", "it-p", "--seq", "4", NULL);
    it_assert_ok(&r, "resumed pub");
    it_result_free(&r);
    it_ctl_in(&r, b, 20000, "c\n", "pub", "it.res", "--producer", "it-p", "--seq", "3", NULL);
    it_assert_ok(&r, "c again");
    cr_assert(strstr(r.err, "1 duplicate(s) already stored"), "%s", r.err);
    it_result_free(&r);
    it_ctl(&r, b, 10000, "topic", "info", "it.res", NULL);
    cr_assert_eq(s_int(r.out, "msgs"), 5, "a b c d e, none twice: %s", r.out);
    it_result_free(&r);

    //  The same in text mode, with a random producer id named in the hint.
    it_ctl_text(&r, b, 20000, input, "pub", "it.res2", NULL);
    cr_assert_eq(r.status, 1, "%s", r.err);
    cr_assert(strstr(r.out, "seq=1 msg_id="), "%s", r.out);
    cr_assert(strstr(r.err, "resume from message 4 with: --producer ") &&
                  strstr(r.err, " --seq 4\n"),
              "%s", r.err);
    it_result_free(&r);
}

//  Runs `ternctl -s EP pub TOPIC` with its stdin on a pseudo-terminal: types
//  one line and Ctrl-D. Returns the exit status; *ERR_P gets its stderr.
static int s_pub_on_tty(it_broker_t *b, const char *topic, char **err_p) {
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    cr_assert_geq(master, 0);
    cr_assert_eq(grantpt(master), 0);
    cr_assert_eq(unlockpt(master), 0);
    char slave_name[128];
    cr_assert_eq(ptsname_r(master, slave_name, sizeof slave_name), 0);
    char err_path[400];
    snprintf(err_path, sizeof err_path, "%s/tty-pub.err", b->root);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        setsid();
        int in = open(slave_name, O_RDWR);
        int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int out = open("/dev/null", O_WRONLY);
        if (in < 0 || err < 0 || out < 0) {
            _exit(127);
        }
        dup2(in, 0);
        dup2(out, 1);
        dup2(err, 2);
        execl(it_ternctl_path(), it_ternctl_path(), "-s", b->endpoint, "pub", topic, (char *)NULL);
        _exit(127);
    }
    it_sleep_ms(300); //  typing before pub reads is fine too: the line discipline buffers it
    cr_assert_eq(write(master, "typed\n", 6), 6);
    cr_assert_eq(write(master, "\x04", 1), 1); //  Ctrl-D: end of input
    int status = -1;
    int64_t deadline = it_now_ms() + 15000;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (it_now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            break;
        }
        it_sleep_ms(50);
    }
    close(master);
    *err_p = it_read_file(err_path, NULL);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Test(ternctl_pubsub, pub_on_a_terminal_says_it_reads_stdin, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker(NULL);
    char *err = NULL;
    int rc = s_pub_on_tty(b, "it.tty", &err);
    cr_assert_eq(rc, 0, "pub on a terminal: exit %d\n%s", rc, err ? err : "");
    cr_assert(err && strstr(err, "reading messages from stdin, one per line; Ctrl-D to end"), "%s",
              err ? err : "(no stderr)");
    free(err);
    it_result_t r;
    it_ctl(&r, b, 10000, "topic", "info", "it.tty", NULL);
    cr_assert_eq(s_int(r.out, "msgs"), 1, "%s", r.out);
    it_result_free(&r);
    //  From a pipe, no such line.
    it_ctl_in(&r, b, 10000, "piped\n", "pub", "it.tty", NULL);
    it_assert_ok(&r, "piped pub");
    cr_assert_null(strstr(r.err, "reading messages"), "%s", r.err);
    it_result_free(&r);
}

Test(ternctl_pubsub, sub_follow_until_ctrl_c, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker(NULL);
    it_pub(b, "it.follow", "one", 1);
    //  --timeout 300ms would end a plain sub; --follow keeps it running.
    it_proc_t *p =
        it_ctl_spawn(b, "sub", "it.follow", "--group", "g", "--follow", "--timeout", "300ms", NULL);
    cr_assert(p);
    cr_assert(it_proc_wait_lines(p, 1, 10000), "printed %zu of 1 lines", it_proc_lines(p));
    it_sleep_ms(1000);
    cr_assert(it_proc_running(p), "sub --follow exited after 1 s of silence");
    it_pub(b, "it.follow", "two", 1);
    cr_assert(it_proc_wait_lines(p, 2, 10000), "printed %zu of 2 lines", it_proc_lines(p));
    it_proc_signal(p, SIGINT);
    int rc = it_proc_wait(p, 10000);
    cr_assert_eq(rc, 0, "sub --follow after Ctrl-C: exit %d", rc);
    char *out = it_proc_out(p);
    it_msg_t *msgs;
    cr_assert_eq(it_parse_msgs(out, &msgs), 2, "%s", out);
    it_msgs_free(msgs, 2);
    free(out);
    it_proc_destroy(&p);
    //  Both were acknowledged on the way out.
    it_result_t r;
    int64_t acked = -1, deadline = it_now_ms() + 5000;
    while (acked != 2 && it_now_ms() < deadline) {
        it_ctl(&r, b, 10000, "groups", "it.follow", NULL);
        acked = s_int(r.out, "acked");
        it_result_free(&r);
        it_sleep_ms(acked == 2 ? 0 : 100);
    }
    cr_assert_eq(acked, 2, "group acked %lld of 2 after Ctrl-C", (long long)acked);
}

Test(ternctl_pubsub, sub_timeout_zero_waits_forever, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker(NULL);
    it_pub(b, "it.t0", "x", 1);
    it_proc_t *p = it_ctl_spawn(b, "sub", "it.t0", "--from", "first", "--timeout", "0", NULL);
    cr_assert(p);
    cr_assert(it_proc_wait_lines(p, 1, 10000), "printed %zu of 1 lines", it_proc_lines(p));
    it_sleep_ms(1500);
    cr_assert(it_proc_running(p), "sub --timeout 0 exited");
    it_proc_signal(p, SIGTERM);
    int rc = it_proc_wait(p, 10000);
    cr_assert_eq(rc, 0, "sub --timeout 0 after SIGTERM: exit %d", rc);
    it_proc_destroy(&p);
}

Test(ternctl_pubsub, sub_from_on_existing_group_warns, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker(NULL);
    it_pub(b, "it.from", "m{n}", 3);
    it_result_t r;
    //  A new group: --from places it, no warning.
    it_ctl(&r, b, 15000, "sub", "it.from", "--group", "g", "--from", "seq:2", "--count", "1",
           "--timeout", "5s", NULL);
    it_assert_ok(&r, "sub --from seq:2 on a new group");
    cr_assert_eq(s_int(r.out, "seq"), 2, "%s", r.out);
    cr_assert_null(strstr(r.err, "warning"), "%s", r.err);
    it_result_free(&r);
    //  The group exists: --from first is ignored and said to be.
    it_ctl(&r, b, 15000, "sub", "it.from", "--group", "g", "--from", "first", "--count", "1",
           "--timeout", "5s", NULL);
    it_assert_ok(&r, "sub --from first on an existing group");
    cr_assert_eq(s_int(r.out, "seq"), 3, "the group resumed elsewhere: %s", r.out);
    cr_assert(strstr(r.err, "warning: group 'g' already exists on 'it.from'; --from is ignored"),
              "%s", r.err);
    it_result_free(&r);
    it_ctl_text(&r, b, 20000, NULL, "sub", "it.from", "--group", "g", "--from", "new", "--timeout",
                "300ms", NULL);
    it_assert_ok(&r, "text sub --from new on an existing group");
    cr_assert(strstr(r.err, "--from is ignored"), "%s", r.err);
    it_result_free(&r);
}

Test(ternctl_pubsub, sub_missing_topic, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker(NULL);
    it_result_t r;
    it_ctl(&r, b, 15000, "sub", "it.nope", "--timeout", "300ms", NULL);
    cr_assert_eq(r.status, 1, "sub of a missing topic: exit %d\n%s", r.status, r.err);
    cr_assert(strstr(r.err, "no such topic 'it.nope'"), "%s", r.err);
    it_result_free(&r);
    it_ctl_text(&r, b, 20000, NULL, "sub", "it.nope", "--group", "g", "--timeout", "300ms", NULL);
    cr_assert_eq(r.status, 1, "%s", r.err);
    cr_assert(strstr(r.err, "no such topic 'it.nope'"), "%s", r.err);
    it_result_free(&r);
    //  --wait subscribes anyway; a pattern has no one topic to check.
    it_ctl(&r, b, 15000, "sub", "it.nope", "--wait", "--timeout", "300ms", NULL);
    it_assert_ok(&r, "sub --wait of a missing topic");
    it_result_free(&r);
    it_ctl(&r, b, 15000, "sub", "it.nope.*", "--timeout", "300ms", NULL);
    it_assert_ok(&r, "sub of a pattern");
    it_result_free(&r);
}

Test(ternctl_pubsub, ephemeral_sub_starts_at_new, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker(NULL);
    it_pub(b, "it.eph", "old{n}", 3);
    it_result_t r;
    it_ctl(&r, b, 15000, "sub", "it.eph", "--timeout", "500ms", NULL);
    it_assert_ok(&r, "ephemeral sub");
    cr_assert_eq(r.out_len, 0, "an ephemeral sub printed old messages:\n%s", r.out);
    it_result_free(&r);
    it_ctl(&r, b, 15000, "sub", "it.eph", "--from", "first", "--count", "3", "--timeout", "5s",
           NULL);
    it_assert_ok(&r, "ephemeral sub --from first");
    cr_assert(strstr(r.out, "old1"), "%s", r.out);
    it_result_free(&r);
    //  What is published while it runs arrives: publish until it has one.
    it_proc_t *p = it_ctl_spawn(b, "sub", "it.eph", "--count", "1", "--timeout", "20s", NULL);
    cr_assert(p);
    int64_t deadline = it_now_ms() + 15000;
    while (it_proc_running(p) && it_now_ms() < deadline) {
        it_pub(b, "it.eph", "fresh", 1);
        it_sleep_ms(200);
    }
    cr_assert_eq(it_proc_wait(p, 10000), 0);
    char *out = it_proc_out(p);
    cr_assert(strstr(out, "fresh") && !strstr(out, "old"), "%s", out);
    free(out);
    it_proc_destroy(&p);
}
