/*  it_admin.c - the admin surface through ternctl: status, topics, topic
    create/info/purge/delete, exit codes (0 ok, 1 failure, 2 usage), and
    ternd's own exit codes (0 on SIGTERM, 1 on a bad config or busy port).
*/
#include "harness.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

Test(admin, status_json, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_broker_new(7, NULL);
    cr_assert(b);
    snprintf(b->dc, sizeof b->dc, "dc-it");
    it_adopt_broker(b);
    cr_assert(it_broker_start(b));
    it_pub(b, "it.st.a", "data {n}", 3);
    it_pub(b, "it.st.b", "data {n}", 1);
    it_result_t r;
    it_ctl(&r, b, 10000, "status", NULL);
    it_assert_ok(&r, "ternctl status");
    char **lines;
    size_t n = it_split_lines(r.out, &lines);
    cr_assert_eq(n, 1, "status --json printed %zu lines:\n%s", n, r.out);
    const char *l = lines[0];
    char s[64];
    cr_assert_eq(it_json_field(l, "node_id"), 7);
    cr_assert(it_json_str(l, "dc", s, sizeof s), "no dc: %s", l);
    cr_assert_str_eq(s, "dc-it");
    cr_assert(it_json_str(l, "version", s, sizeof s), "no version: %s", l);
    cr_assert_str_eq(s, "0.1.0");
    cr_assert_geq(it_json_field(l, "uptime_s"), 0);
    cr_assert_eq(it_json_field(l, "topics"), 2, "status: %s", l);
    cr_assert_geq(it_json_field(l, "connections"), 1, "status: %s", l);
    cr_assert_gt(it_json_field(l, "storage_bytes"), 0, "status: %s", l);
    free(lines);
    it_result_free(&r);

    //  Without --json: human-readable, still exit 0.
    char *argv[] = {(char *)it_ternctl_path(), "-s", b->endpoint, "status", NULL};
    it_run(&r, 10000, NULL, argv);
    it_assert_ok(&r, "ternctl status (text)");
    cr_assert_gt(r.out_len, 0);
    cr_assert_null(strstr(r.out, "{\""), "text output looks like JSON:\n%s", r.out);
    it_result_free(&r);

    //  $TERN_SERVER is the default endpoint (the harness clears it in its
    //  children, so set it through env).
    char envbuf[128];
    snprintf(envbuf, sizeof envbuf, "TERN_SERVER=%s", b->endpoint);
    char *argv3[] = {"/usr/bin/env", envbuf, (char *)it_ternctl_path(), "--json", "status", NULL};
    it_run(&r, 10000, NULL, argv3);
    it_assert_ok(&r, "ternctl status with $TERN_SERVER");
    cr_assert_eq(it_json_field(r.out, "node_id"), 7);
    it_result_free(&r);
}

Test(admin, topics_and_topic_lifecycle, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker(NULL);
    it_pub(b, "it.adm.one", "data {n}", 10);
    it_pub(b, "it.adm.two", "data {n}", 3);
    it_result_t r;
    it_ctl(&r, b, 10000, "topics", NULL);
    it_assert_ok(&r, "ternctl topics");
    char **lines;
    size_t n = it_split_lines(r.out, &lines);
    cr_assert_eq(n, 2, "topics printed %zu lines:\n%s", n, r.out);
    for (size_t i = 0; i < n; i++) {
        char topic[64];
        cr_assert(it_json_str(lines[i], "topic", topic, sizeof topic));
        int64_t want = strcmp(topic, "it.adm.one") == 0 ? 10 : 3;
        cr_assert_eq(it_json_field(lines[i], "msgs"), want, "%s", lines[i]);
        cr_assert_eq(it_json_field(lines[i], "first_seq"), 1, "%s", lines[i]);
        cr_assert_eq(it_json_field(lines[i], "last_seq"), want, "%s", lines[i]);
        cr_assert_gt(it_json_field(lines[i], "bytes"), 0, "%s", lines[i]);
        cr_assert_eq(it_json_field(lines[i], "groups"), 0, "%s", lines[i]);
        it_json_field(lines[i], "max_age_ms");
        it_json_field(lines[i], "max_msgs");
        it_json_field(lines[i], "max_bytes");
    }
    free(lines);
    it_result_free(&r);

    //  create with limits, then info
    it_ctl(&r, b, 10000, "topic", "create", "it.adm.lim", "--max-msgs", "5", "--max-age", "1h",
           "--max-bytes", "1M", NULL);
    it_assert_ok(&r, "topic create");
    char topic[64];
    cr_assert(it_json_str(r.out, "topic", topic, sizeof topic), "create printed:\n%s", r.out);
    cr_assert_str_eq(topic, "it.adm.lim");
    it_result_free(&r);
    it_ctl(&r, b, 10000, "topic", "info", "it.adm.lim", NULL);
    it_assert_ok(&r, "topic info");
    cr_assert_eq(it_json_field(r.out, "max_msgs"), 5, "%s", r.out);
    cr_assert_eq(it_json_field(r.out, "max_age_ms"), 3600000, "%s", r.out);
    cr_assert_eq(it_json_field(r.out, "max_bytes"), 1048576, "%s", r.out);
    cr_assert_eq(it_json_field(r.out, "msgs"), 0, "%s", r.out);
    it_result_free(&r);

    //  max_msgs is enforced (possibly by the sweep: poll).
    it_pub(b, "it.adm.lim", "data {n}", 8);
    int64_t msgs = -1, first = -1;
    int64_t deadline = it_now_ms() + 3000;
    do {
        it_ctl(&r, b, 10000, "topic", "info", "it.adm.lim", NULL);
        it_assert_ok(&r, "topic info");
        msgs = it_json_field(r.out, "msgs");
        first = it_json_field(r.out, "first_seq");
        it_result_free(&r);
        if (msgs <= 5) {
            break;
        }
        it_sleep_ms(200);
    } while (it_now_ms() < deadline);
    cr_assert_leq(msgs, 5, "max_msgs 5 but %lld messages kept", (long long)msgs);
    cr_assert_geq(first, 4, "first_seq %lld after trimming to 5 of 8", (long long)first);

    //  purge
    it_ctl(&r, b, 10000, "topic", "purge", "it.adm.one", NULL);
    it_assert_ok(&r, "topic purge");
    cr_assert_eq(it_json_field(r.out, "purged"), 10, "%s", r.out);
    it_result_free(&r);
    it_ctl(&r, b, 10000, "topic", "info", "it.adm.one", NULL);
    it_assert_ok(&r, "topic info after purge");
    cr_assert_eq(it_json_field(r.out, "msgs"), 0, "%s", r.out);
    it_result_free(&r);
    it_ctl(&r, b, 10000, "sub", "it.adm.one", "--from", "first", "--count", "10", "--timeout", "1s",
           NULL);
    it_assert_ok(&r, "sub after purge");
    cr_assert_eq(r.out_len, 0, "purged messages delivered:\n%s", r.out);
    it_result_free(&r);

    //  delete
    it_ctl(&r, b, 10000, "topic", "delete", "it.adm.two", NULL);
    it_assert_ok(&r, "topic delete");
    bool deleted = false;
    cr_assert(it_json_bool(r.out, "deleted", &deleted), "%s", r.out);
    cr_assert(deleted);
    cr_assert_eq(it_json_field(r.out, "removed"), 3, "%s", r.out);
    it_result_free(&r);
    it_ctl(&r, b, 10000, "topic", "info", "it.adm.two", NULL);
    cr_assert_eq(r.status, 1, "info of a deleted topic: exit %d\n%s", r.status, r.out);
    cr_assert_gt(r.err_len, 0, "no reason on stderr");
    it_result_free(&r);
    it_ctl(&r, b, 10000, "topics", NULL);
    cr_assert_null(strstr(r.out, "\"it.adm.two\""), "deleted topic still listed:\n%s", r.out);
    it_result_free(&r);
}

Test(admin, exit_codes, .fini = it_teardown, .timeout = 90) {
    it_broker_t *b = it_start_broker(NULL);
    it_result_t r;
    it_ctl(&r, b, 10000, "topic", "info", "it.no.such.topic", NULL);
    cr_assert_eq(r.status, 1, "topic info of a missing topic: exit %d", r.status);
    cr_assert_gt(r.err_len, 0, "no reason on stderr");
    it_result_free(&r);

    it_ctl(&r, b, 10000, "groups", "it.no.such.topic", NULL);
    cr_assert(r.status == 0 || r.status == 1, "groups of a missing topic: exit %d", r.status);
    it_result_free(&r);

    //  Usage errors exit 2.
    const char *usage[][6] = {
        {"frobnicate", NULL},
        {"pub", NULL},
        {"sub", NULL},
        {"sub", "it.x", "--from", "sideways", NULL},
        {"pub", "it.x", "d", "--count", "many", NULL},
        {"topic", "explode", "it.x", NULL},
        {"dlq", "list", NULL},
    };
    for (size_t i = 0; i < sizeof usage / sizeof usage[0]; i++) {
        char *argv[12];
        int argc = 0;
        argv[argc++] = (char *)it_ternctl_path();
        argv[argc++] = "-s";
        argv[argc++] = b->endpoint;
        for (int k = 0; usage[i][k]; k++) {
            argv[argc++] = (char *)usage[i][k];
        }
        argv[argc] = NULL;
        it_run(&r, 10000, NULL, argv);
        cr_assert_eq(r.status, 2, "ternctl %s %s %s %s: exit %d, want 2 (usage)\n%s", usage[i][0],
                     usage[i][1] ? usage[i][1] : "", usage[i][1] && usage[i][2] ? usage[i][2] : "",
                     usage[i][1] && usage[i][2] && usage[i][3] ? usage[i][3] : "", r.status, r.err);
        it_result_free(&r);
    }
    char *none[] = {(char *)it_ternctl_path(), NULL};
    it_run(&r, 10000, NULL, none);
    cr_assert_eq(r.status, 2, "ternctl without a command: exit %d", r.status);
    it_result_free(&r);

    //  No broker there: failure, exit 1 (bounded time).
    char dead[64];
    snprintf(dead, sizeof dead, "tcp://127.0.0.1:%d", b->port);
    it_broker_stop(b, 10000);
    int64_t t0 = it_now_ms();
    char *argv[] = {(char *)it_ternctl_path(), "-s", dead, "status", NULL};
    it_run(&r, 40000, NULL, argv);
    cr_assert_eq(r.status, 1, "status with no broker: exit %d after %lld ms", r.status,
                 (long long)(it_now_ms() - t0));
    it_result_free(&r);
    cr_assert(it_broker_start(b));
}

Test(admin, sigterm_exit_0_and_data_kept, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker(NULL);
    it_pub(b, "it.term.keep", "data {n}", 5);
    int rc = it_broker_stop(b, 10000);
    cr_assert_eq(rc, 0, "ternd exit %d on SIGTERM", rc);
    cr_assert(it_broker_start(b));
    it_result_t r;
    it_ctl(&r, b, 10000, "topic", "info", "it.term.keep", NULL);
    it_assert_ok(&r, "topic info after restart");
    cr_assert_eq(it_json_field(r.out, "msgs"), 5);
    it_result_free(&r);
    //  SIGINT too.
    kill(b->pid, SIGINT);
    int status = 0;
    waitpid(b->pid, &status, 0);
    b->pid = 0;
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "ternd status %d on SIGINT", status);
    cr_assert(it_broker_start(b));
}

Test(admin, bad_config_and_busy_port_exit_1, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker(NULL);
    it_result_t r;
    //  Same port, another dir.
    char dir[] = "/tmp/tern-it-busy-XXXXXX";
    cr_assert(mkdtemp(dir));
    char *busy[] = {
        (char *)it_ternd_path(), "--data", dir, "--listen", b->endpoint, "--metrics", "off", NULL};
    it_run(&r, 10000, NULL, busy);
    cr_assert_eq(r.status, 1, "ternd on a busy port: exit %d%s\n%s", r.status,
                 r.timed_out ? " (still running after 10 s)" : "", r.err);
    cr_assert_gt(r.err_len, 0, "no message on stderr");
    it_result_free(&r);

    char *bad_dur[] = {(char *)it_ternd_path(),
                       "--data",
                       dir,
                       "--listen",
                       "tcp://127.0.0.1:1",
                       "--metrics",
                       "off",
                       "--ack-wait",
                       "banana",
                       NULL};
    it_run(&r, 10000, NULL, bad_dur);
    cr_assert_eq(r.status, 1, "ternd --ack-wait banana: exit %d", r.status);
    cr_assert_gt(r.err_len, 0, "no message on stderr");
    it_result_free(&r);

    char *bad_flag[] = {(char *)it_ternd_path(), "--data", dir, "--no-such-flag", NULL};
    it_run(&r, 10000, NULL, bad_flag);
    cr_assert_eq(r.status, 1, "ternd --no-such-flag: exit %d", r.status);
    it_result_free(&r);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "%s", dir);
    //  The busy-port dir is ours: remove what ternd may have written.
    char *rm[] = {"/bin/rm", "-rf", cmd, NULL};
    it_run(&r, 10000, NULL, rm);
    it_result_free(&r);

    //  The first broker is unaffected.
    it_ctl(&r, b, 10000, "status", NULL);
    it_assert_ok(&r, "status of the first broker");
    it_result_free(&r);
}

Test(admin, max_age_retention, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker("--sweep-interval", "200ms", NULL);
    it_result_t r;
    it_ctl(&r, b, 10000, "topic", "create", "it.age", "--max-age", "1s", NULL);
    it_assert_ok(&r, "topic create --max-age 1s");
    it_result_free(&r);
    it_pub(b, "it.age", "data {n}", 3);
    it_sleep_ms(2000);
    it_pub(b, "it.age", "data {n}", 1);
    it_ctl(&r, b, 10000, "topic", "info", "it.age", NULL);
    it_assert_ok(&r, "topic info");
    cr_assert_eq(it_json_field(r.out, "msgs"), 1, "max_age 1s: after 2 s: %s", r.out);
    cr_assert_eq(it_json_field(r.out, "first_seq"), 4, "%s", r.out);
    it_result_free(&r);
    it_ctl(&r, b, 10000, "sub", "it.age", "--from", "first", "--count", "10", "--timeout", "1s",
           NULL);
    it_msg_t *msgs;
    size_t m = it_parse_msgs(r.out, &msgs);
    cr_assert_eq(m, 1, "got:\n%s", r.out);
    cr_assert_eq(msgs[0].seq, 4);
    it_msgs_free(msgs, m);
    it_result_free(&r);
}
