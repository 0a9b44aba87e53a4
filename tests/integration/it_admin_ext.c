/*  it_admin_ext.c - the admin commands a NATS or RabbitMQ user expects
    (issue 12): topic create refusing an existing topic, topic edit, the
    confirmation of topic delete/purge; dlq get, replay --seq and purge;
    group delete, reset and seek with a consumer connected; get and view
    reading stored messages without consuming them. Real ternd, real
    ternctl, text and --json output, exit codes.
*/
#include "harness.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

//  The seqs a spawned `sub --json` printed, in order, into SEQS; returns the count.
static size_t s_seqs(it_proc_t *p, int64_t *seqs, size_t max) {
    char *out = it_proc_out(p);
    it_msg_t *msgs;
    size_t m = it_parse_msgs(out, &msgs);
    for (size_t i = 0; i < m && i < max; i++) {
        seqs[i] = msgs[i].seq;
    }
    it_msgs_free(msgs, m);
    free(out);
    return m < max ? m : max;
}

// ---------------------------------------------------------------------------
//  Topics

Test(admin_ext, topic_create_refuses_existing, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker(NULL);
    it_result_t r;
    it_ctl(&r, b, 10000, "topic", "create", "it.x.new", "--max-msgs", "7", NULL);
    it_assert_ok(&r, "topic create");
    cr_assert_eq(it_json_field(r.out, "max_msgs"), 7, "%s", r.out);
    it_result_free(&r);

    //  Again: exit 1, the reason names the topic, the limits are unchanged.
    it_ctl(&r, b, 10000, "topic", "create", "it.x.new", "--max-msgs", "9", NULL);
    cr_assert_eq(r.status, 1, "second create: exit %d\n%s%s", r.status, r.out, r.err);
    cr_assert(strstr(r.err, "topic 'it.x.new' exists"), "stderr: %s", r.err);
    cr_assert(strstr(r.err, "TERN_EEXIST"), "stderr: %s", r.err);
    it_result_free(&r);
    it_ctl(&r, b, 10000, "topic", "info", "it.x.new", NULL);
    it_assert_ok(&r, "topic info");
    cr_assert_eq(it_json_field(r.out, "max_msgs"), 7, "create of an existing topic changed it: %s",
                 r.out);
    it_result_free(&r);

    //  A topic made by a publish exists too.
    it_pub(b, "it.x.pub", "m{n}", 1);
    it_ctl(&r, b, 10000, "topic", "create", "it.x.pub", NULL);
    cr_assert_eq(r.status, 1, "create of a published-to topic: exit %d\n%s", r.status, r.err);
    it_result_free(&r);
}

Test(admin_ext, topic_edit_changes_limits, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_start_broker(NULL);
    it_result_t r;
    it_ctl(&r, b, 10000, "topic", "create", "it.x.edit", "--max-age", "1h", NULL);
    it_assert_ok(&r, "topic create");
    it_result_free(&r);

    it_ctl(&r, b, 10000, "topic", "edit", "it.x.edit", "--max-msgs", "3", "--max-bytes", "1M",
           NULL);
    it_assert_ok(&r, "topic edit");
    cr_assert_eq(it_json_field(r.out, "max_msgs"), 3, "%s", r.out);
    cr_assert_eq(it_json_field(r.out, "max_bytes"), 1048576, "%s", r.out);
    cr_assert_eq(it_json_field(r.out, "max_age_ms"), 3600000, "a limit not given changed: %s",
                 r.out);
    it_result_free(&r);
    it_ctl(&r, b, 10000, "topic", "info", "it.x.edit", NULL);
    it_assert_ok(&r, "topic info");
    cr_assert_eq(it_json_field(r.out, "max_msgs"), 3, "info after edit: %s", r.out);
    it_result_free(&r);

    //  The new limit is enforced (maybe by the sweep: poll).
    it_pub(b, "it.x.edit", "m{n}", 8);
    int64_t msgs = -1, first = -1, deadline = it_now_ms() + 5000;
    do {
        it_ctl(&r, b, 10000, "topic", "info", "it.x.edit", NULL);
        it_assert_ok(&r, "topic info");
        msgs = it_json_field(r.out, "msgs");
        first = it_json_field(r.out, "first_seq");
        it_result_free(&r);
        if (msgs <= 3) {
            break;
        }
        it_sleep_ms(200);
    } while (it_now_ms() < deadline);
    cr_assert_leq(msgs, 3, "edited max_msgs 3 but %lld kept", (long long)msgs);
    cr_assert_eq(first, 6, "first_seq %lld after trimming 8 to 3", (long long)first);

    //  Missing topic: exit 1, nothing created. No limit: usage error.
    it_ctl(&r, b, 10000, "topic", "edit", "it.x.none", "--max-msgs", "3", NULL);
    cr_assert_eq(r.status, 1, "edit of a missing topic: exit %d", r.status);
    cr_assert(strstr(r.err, "TERN_ENOTFOUND"), "stderr: %s", r.err);
    it_result_free(&r);
    it_ctl(&r, b, 10000, "topic", "info", "it.x.none", NULL);
    cr_assert_eq(r.status, 1, "edit created the topic:\n%s", r.out);
    it_result_free(&r);
    it_ctl(&r, b, 10000, "topic", "edit", "it.x.edit", NULL);
    cr_assert_eq(r.status, 2, "edit without a limit: exit %d", r.status);
    it_result_free(&r);
}

//  Runs `ternctl -s EP topic VERB TOPIC [FLAG]` with a pseudo-terminal as
//  stdin (answered with ANSWER) and stderr captured into ERR; returns its
//  exit status (-1000 if it had to be killed).
static int s_ctl_on_tty(it_broker_t *b, const char *verb, const char *topic, const char *flag,
                        const char *answer, char *err, size_t cap) {
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    cr_assert(master >= 0 && grantpt(master) == 0 && unlockpt(master) == 0);
    const char *slave = ptsname(master);
    cr_assert(slave);
    int errpipe[2];
    cr_assert(pipe(errpipe) == 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        setsid();
        int fd = open(slave, O_RDWR);
        int null = open("/dev/null", O_WRONLY);
        if (fd < 0 || null < 0) {
            _exit(127);
        }
        dup2(fd, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        dup2(errpipe[1], STDERR_FILENO);
        close(errpipe[0]);
        close(master);
        execl(it_ternctl_path(), it_ternctl_path(), "-s", b->endpoint, "topic", verb, topic, flag,
              (char *)NULL);
        _exit(127);
    }
    close(errpipe[1]);
    //  The line discipline keeps the answer until ternctl reads it.
    cr_assert(write(master, answer, strlen(answer)) == (ssize_t)strlen(answer));
    int status = 0, waited = 0;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (waited > 15000) {
            kill(pid, SIGKILL); //  by its PID only
            waitpid(pid, &status, 0);
            close(master);
            close(errpipe[0]);
            return -1000;
        }
        it_sleep_ms(50);
        waited += 50;
        char drain[256];
        fcntl(master, F_SETFL, O_NONBLOCK);
        while (read(master, drain, sizeof drain) > 0) {
        }
    }
    ssize_t n = read(errpipe[0], err, cap - 1);
    err[n > 0 ? n : 0] = 0;
    close(errpipe[0]);
    close(master);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

Test(admin_ext, topic_delete_purge_confirm, .fini = it_teardown, .timeout = 90) {
    it_broker_t *b = it_start_broker(NULL);
    it_pub(b, "it.x.del", "m{n}", 3);
    it_result_t r;
    char err[2048];

    //  On a terminal: "n" refuses (exit 1, nothing removed), "y" proceeds.
    int rc = s_ctl_on_tty(b, "delete", "it.x.del", NULL, "n\n", err, sizeof err);
    cr_assert_eq(rc, 1, "delete answered n: exit %d, stderr %s", rc, err);
    cr_assert(strstr(err, "[y/N]"), "no question asked: %s", err);
    cr_assert(strstr(err, "not confirmed"), "stderr: %s", err);
    it_ctl(&r, b, 10000, "topic", "info", "it.x.del", NULL);
    it_assert_ok(&r, "topic info after a refused delete");
    cr_assert_eq(it_json_field(r.out, "msgs"), 3, "%s", r.out);
    it_result_free(&r);
    rc = s_ctl_on_tty(b, "purge", "it.x.del", NULL, "y\n", err, sizeof err);
    cr_assert_eq(rc, 0, "purge answered y: exit %d, stderr %s", rc, err);
    it_ctl(&r, b, 10000, "topic", "info", "it.x.del", NULL);
    cr_assert_eq(it_json_field(r.out, "msgs"), 0, "%s", r.out);
    it_result_free(&r);

    //  --force: no question, even on a terminal (its stdin says nothing).
    it_pub(b, "it.x.del", "m{n}", 2);
    rc = s_ctl_on_tty(b, "purge", "it.x.del", "--force", "", err, sizeof err);
    cr_assert_eq(rc, 0, "purge --force on a terminal: exit %d, stderr %s", rc, err);
    cr_assert_null(strstr(err, "[y/N]"), "asked despite --force: %s", err);
    it_pub(b, "it.x.del", "m{n}", 2);
    it_ctl(&r, b, 10000, "topic", "purge", "it.x.del", "--force", NULL);
    it_assert_ok(&r, "topic purge --force");
    cr_assert_eq(it_json_field(r.out, "purged"), 2, "%s", r.out);
    it_result_free(&r);
    it_ctl(&r, b, 10000, "topic", "delete", "it.x.del", "--force", NULL);
    it_assert_ok(&r, "topic delete --force");
    it_result_free(&r);
    it_ctl(&r, b, 10000, "topic", "info", "it.x.del", NULL);
    cr_assert_eq(r.status, 1, "topic still there after delete --force");
    it_result_free(&r);

    //  Not a terminal (a script): proceeds without --force, as before.
    it_pub(b, "it.x.del2", "m{n}", 2);
    it_ctl(&r, b, 10000, "topic", "delete", "it.x.del2", NULL);
    it_assert_ok(&r, "topic delete from a script");
    it_result_free(&r);
    it_ctl(&r, b, 10000, "topic", "info", "it.x.del", "--force", NULL);
    cr_assert_eq(r.status, 2, "--force on info: exit %d", r.status);
    it_result_free(&r);
}

// ---------------------------------------------------------------------------
//  DLQ

Test(admin_ext, dlq_get_replay_seq_purge, .fini = it_teardown, .timeout = 90) {
    it_broker_t *b = it_start_broker(NULL);
    it_pub(b, "it.x.dlq", "m{n}", 4);
    it_result_t r;
    it_ctl(&r, b, 15000, "sub", "it.x.dlq", "--group", "g", "--count", "3", "--term", NULL);
    it_assert_ok(&r, "sub --term");
    it_result_free(&r);

    //  get: one dead letter with its message.
    it_ctl(&r, b, 10000, "dlq", "get", "it.x.dlq", "--group", "g", "--seq", "2", NULL);
    it_assert_ok(&r, "dlq get");
    char s[64];
    cr_assert_eq(it_json_field(r.out, "seq"), 2, "%s", r.out);
    cr_assert_gt(it_json_field(r.out, "msg_id"), 0, "%s", r.out);
    cr_assert_eq(it_json_field(r.out, "delivery_count"), 1, "%s", r.out);
    cr_assert(it_json_str(r.out, "data", s, sizeof s) && strcmp(s, "m2") == 0, "%s", r.out);
    cr_assert(it_json_str(r.out, "reason", s, sizeof s) && strcmp(s, "term") == 0, "%s", r.out);
    it_result_free(&r);
    it_ctl_text(&r, b, 10000, NULL, "dlq", "get", "it.x.dlq", "--group=g", "--seq=2", NULL);
    it_assert_ok(&r, "dlq get (text)");
    cr_assert(strstr(r.out, "seq       2\n") && strstr(r.out, "\nm2\n") &&
                  strstr(r.out, "dead      term after 1 deliveries"),
              "text:\n%s", r.out);
    it_result_free(&r);
    it_ctl(&r, b, 10000, "dlq", "get", "it.x.dlq", "--group", "g", "--seq", "4", NULL);
    cr_assert_eq(r.status, 1, "dlq get of a seq not in the DLQ: exit %d", r.status);
    it_result_free(&r);
    it_ctl(&r, b, 10000, "dlq", "get", "it.x.dlq", "--group", "g", NULL);
    cr_assert_eq(r.status, 2, "dlq get without --seq: exit %d", r.status);
    it_result_free(&r);

    //  replay --seq: only that one comes back.
    it_ctl(&r, b, 10000, "dlq", "replay", "it.x.dlq", "--group", "g", "--seq", "2", NULL);
    it_assert_ok(&r, "dlq replay --seq");
    cr_assert_eq(it_json_field(r.out, "replayed"), 1, "%s", r.out);
    it_result_free(&r);
    it_ctl(&r, b, 10000, "dlq", "replay", "it.x.dlq", "--group", "g", "--seq", "2", NULL);
    cr_assert_eq(r.status, 1, "replay of a seq no longer in the DLQ: exit %d", r.status);
    cr_assert(strstr(r.err, "TERN_ENOTFOUND"), "stderr: %s", r.err);
    it_result_free(&r);
    it_ctl(&r, b, 10000, "dlq", "list", "it.x.dlq", "--group", "g", NULL);
    it_assert_ok(&r, "dlq list");
    char **lines;
    size_t n = it_split_lines(r.out, &lines);
    cr_assert_eq(n, 2, "DLQ after replaying one of 3:\n%s", r.out);
    cr_assert_eq(it_json_field(lines[0], "seq"), 1);
    cr_assert_eq(it_json_field(lines[1], "seq"), 3);
    free(lines);
    it_result_free(&r);
    it_ctl(&r, b, 15000, "sub", "it.x.dlq", "--group", "g", "--count", "2", "--timeout", "5s",
           NULL);
    it_assert_ok(&r, "sub after replay --seq");
    it_msg_t *msgs;
    size_t m = it_parse_msgs(r.out, &msgs);
    cr_assert_eq(m, 2, "%s", r.out);
    cr_assert_eq(msgs[0].seq + msgs[1].seq, 6, "expected seqs 2 and 4:\n%s", r.out);
    cr_assert(msgs[0].seq == 2 || msgs[1].seq == 2, "replayed seq 2 not delivered:\n%s", r.out);
    it_msgs_free(msgs, m);
    it_result_free(&r);

    //  purge: the DLQ is empty, the messages stay in the topic.
    it_ctl(&r, b, 10000, "dlq", "purge", "it.x.dlq", "--group", "g", "--force", NULL);
    it_assert_ok(&r, "dlq purge");
    cr_assert_eq(it_json_field(r.out, "purged"), 2, "%s", r.out);
    it_result_free(&r);
    it_ctl(&r, b, 10000, "dlq", "list", "it.x.dlq", "--group", "g", NULL);
    it_assert_ok(&r, "dlq list after purge");
    cr_assert_eq(r.out_len, 0, "DLQ after purge:\n%s", r.out);
    it_result_free(&r);
    char line[1024];
    cr_assert(it_group_line(b, "it.x.dlq", "g", line, sizeof line));
    cr_assert_eq(it_json_field(line, "dead"), 0, "%s", line);
    it_ctl(&r, b, 10000, "topic", "info", "it.x.dlq", NULL);
    cr_assert_eq(it_json_field(r.out, "msgs"), 4, "%s", r.out);
    it_result_free(&r);
    it_ctl(&r, b, 10000, "dlq", "purge", "it.x.dlq", "--group", "nope", "--force", NULL);
    cr_assert_eq(r.status, 1, "purge of a missing group: exit %d", r.status);
    it_result_free(&r);
}

// ---------------------------------------------------------------------------
//  Groups, with a consumer connected

//  seek back while a consumer holds unacked messages: its pending entries
//  are dropped and it receives again from the new position.
Test(admin_ext, group_seek_live_consumer, .fini = it_teardown, .timeout = 90) {
    it_broker_t *b = it_start_broker(NULL);
    it_pub(b, "it.x.seek", "m{n}", 5);
    it_proc_t *c = it_ctl_spawn(b, "sub", "it.x.seek", "--group", "g", "--no-ack", "--count",
                                "1000", "--timeout", "30s", NULL);
    cr_assert(c);
    cr_assert(it_proc_wait_lines(c, 5, 15000), "consumer got %zu of 5", it_proc_lines(c));
    char line[1024];
    cr_assert(it_group_line(b, "it.x.seek", "g", line, sizeof line));
    cr_assert_eq(it_json_field(line, "pending"), 5, "%s", line);

    it_result_t r;
    it_ctl(&r, b, 10000, "group", "seek", "it.x.seek", "--group", "g", "--to", "seq:4", NULL);
    it_assert_ok(&r, "group seek");
    cr_assert_eq(it_json_field(r.out, "next_seq"), 4, "%s", r.out);
    it_result_free(&r);
    cr_assert(it_proc_wait_lines(c, 7, 15000), "after seek to 4 the consumer has %zu lines",
              it_proc_lines(c));
    int64_t seqs[16];
    size_t n = s_seqs(c, seqs, 16);
    cr_assert_eq(n, 7, "lines after the seek: %zu", n);
    cr_assert(seqs[5] == 4 && seqs[6] == 5, "after seek: %lld %lld", (long long)seqs[5],
              (long long)seqs[6]);
    //  The entries before the position are gone: only 4 and 5 are pending.
    cr_assert(it_group_line(b, "it.x.seek", "g", line, sizeof line));
    cr_assert_eq(it_json_field(line, "pending"), 2, "%s", line);

    //  Forward past everything: new messages only.
    it_ctl(&r, b, 10000, "group", "seek", "it.x.seek", "--group", "g", "--to", "new", NULL);
    it_assert_ok(&r, "group seek new");
    cr_assert_eq(it_json_field(r.out, "next_seq"), 6, "%s", r.out);
    it_result_free(&r);
    it_pub(b, "it.x.seek", "n{n}", 1);
    cr_assert(it_proc_wait_lines(c, 8, 15000), "after seek to new + 1 publish: %zu lines",
              it_proc_lines(c));
    n = s_seqs(c, seqs, 16);
    cr_assert_eq(seqs[7], 6, "after seek to new got seq %lld", (long long)seqs[7]);
    it_sleep_ms(300);
    cr_assert_eq(it_proc_lines(c), 8, "more than the new message was delivered");
    it_proc_destroy(&c);

    //  time:DUR: the first message stored DUR ago or later (all of them here).
    it_ctl(&r, b, 10000, "group", "seek", "it.x.seek", "--group", "g", "--to", "time:1h", NULL);
    it_assert_ok(&r, "group seek time:1h");
    cr_assert_eq(it_json_field(r.out, "next_seq"), 1, "%s", r.out);
    it_result_free(&r);

    //  Bad positions are usage errors; an unknown group fails.
    it_ctl(&r, b, 10000, "group", "seek", "it.x.seek", "--group", "g", NULL);
    cr_assert_eq(r.status, 2, "seek without --to: exit %d", r.status);
    it_result_free(&r);
    it_ctl(&r, b, 10000, "group", "seek", "it.x.seek", "--group", "g", "--to", "bogus", NULL);
    cr_assert_eq(r.status, 2, "seek --to bogus: exit %d", r.status);
    it_result_free(&r);
    it_ctl(&r, b, 10000, "group", "seek", "it.x.seek", "--group", "none", "--to", "first", NULL);
    cr_assert_eq(r.status, 1, "seek of a missing group: exit %d", r.status);
    cr_assert(strstr(r.err, "TERN_ENOTFOUND"), "stderr: %s", r.err);
    it_result_free(&r);
}

//  reset while a consumer is connected (acking): every message comes again,
//  the counters start over; the DLQ is emptied.
Test(admin_ext, group_reset_live_consumer, .fini = it_teardown, .timeout = 90) {
    it_broker_t *b = it_start_broker(NULL);
    it_pub(b, "it.x.reset", "m{n}", 4);
    it_result_t r;
    it_ctl(&r, b, 15000, "sub", "it.x.reset", "--group", "g", "--count", "1", "--term", NULL);
    it_assert_ok(&r, "sub --term");
    it_result_free(&r);
    it_proc_t *c = it_ctl_spawn(b, "sub", "it.x.reset", "--group", "g", "--count", "1000",
                                "--timeout", "30s", NULL);
    cr_assert(c);
    cr_assert(it_proc_wait_lines(c, 3, 15000), "consumer got %zu of 3", it_proc_lines(c));

    it_ctl(&r, b, 10000, "group", "reset", "it.x.reset", "--group", "g", NULL);
    it_assert_ok(&r, "group reset (stdin not a terminal: no question)");
    cr_assert_eq(it_json_field(r.out, "next_seq"), 1, "%s", r.out);
    cr_assert_eq(it_json_field(r.out, "dead"), 0, "%s", r.out);
    it_result_free(&r);
    cr_assert(it_proc_wait_lines(c, 7, 15000), "after reset the consumer has %zu lines",
              it_proc_lines(c));
    int64_t seqs[16];
    size_t n = s_seqs(c, seqs, 16);
    for (size_t i = 3; i < n && i < 7; i++) {
        cr_assert_eq(seqs[i], (int64_t)i - 2, "line %zu after reset: seq %lld", i,
                     (long long)seqs[i]);
    }
    char line[1024];
    int64_t deadline = it_now_ms() + 5000;
    do { //  the acks are committed shortly after the consumer printed them
        cr_assert(it_group_line(b, "it.x.reset", "g", line, sizeof line));
    } while (it_json_field(line, "acked") < 4 && it_now_ms() < deadline &&
             (it_sleep_ms(100), true));
    cr_assert_eq(it_json_field(line, "acked"), 4, "counters after reset + 4 acks: %s", line);
    cr_assert_eq(it_json_field(line, "dead"), 0, "%s", line);
    cr_assert_eq(it_json_field(line, "consumers"), 1, "%s", line);

    //  --to: reset to a position.
    it_ctl(&r, b, 10000, "group", "reset", "it.x.reset", "--group", "g", "--to", "seq:4", "--force",
           NULL);
    it_assert_ok(&r, "group reset --to seq:4");
    cr_assert_eq(it_json_field(r.out, "next_seq"), 4, "%s", r.out);
    it_result_free(&r);
    cr_assert(it_proc_wait_lines(c, 8, 15000), "after reset to 4: %zu lines", it_proc_lines(c));
    n = s_seqs(c, seqs, 16);
    cr_assert_eq(seqs[7], 4, "after reset to 4: seq %lld", (long long)seqs[7]);
    it_proc_destroy(&c);
}

Test(admin_ext, group_delete, .fini = it_teardown, .timeout = 90) {
    it_broker_t *b = it_start_broker(NULL);
    it_pub(b, "it.x.gdel", "m{n}", 3);
    //  It waits for a 4th message for 3 s, then leaves (with BYE).
    it_proc_t *c = it_ctl_spawn(b, "sub", "it.x.gdel", "--group", "g", "--count", "4", "--timeout",
                                "3s", NULL);
    cr_assert(c);
    cr_assert(it_proc_wait_lines(c, 3, 15000), "consumer got %zu of 3", it_proc_lines(c));
    it_result_t r;
    it_ctl(&r, b, 10000, "group", "delete", "it.x.gdel", "--group", "g", "--force", NULL);
    cr_assert_eq(r.status, 1, "delete with a consumer connected: exit %d", r.status);
    cr_assert(strstr(r.err, "consumers connected") && strstr(r.err, "TERN_EBUSY"), "stderr: %s",
              r.err);
    it_result_free(&r);
    cr_assert_eq(it_proc_wait(c, 15000), 0, "consumer did not leave");
    it_proc_destroy(&c);

    //  The consumer's BYE may still be on its way: retry briefly.
    int64_t deadline = it_now_ms() + 5000;
    do {
        it_result_free(&r);
        it_ctl(&r, b, 10000, "group", "delete", "it.x.gdel", "--group", "g", "--force", NULL);
    } while (r.status != 0 && it_now_ms() < deadline && (it_sleep_ms(100), true));
    it_assert_ok(&r, "group delete");
    bool deleted = false;
    cr_assert(it_json_bool(r.out, "deleted", &deleted) && deleted, "%s", r.out);
    it_result_free(&r);
    char line[1024];
    cr_assert_not(it_group_line(b, "it.x.gdel", "g", line, sizeof line), "still listed: %s", line);
    it_ctl(&r, b, 10000, "group", "delete", "it.x.gdel", "--group", "g", "--force", NULL);
    cr_assert_eq(r.status, 1, "second delete: exit %d", r.status);
    it_result_free(&r);

    //  A new group of that name starts afresh.
    it_ctl(&r, b, 15000, "sub", "it.x.gdel", "--group", "g", "--count", "1", NULL);
    it_assert_ok(&r, "sub after delete");
    cr_assert_eq(it_json_field(r.out, "seq"), 1, "%s", r.out);
    it_result_free(&r);
}

// ---------------------------------------------------------------------------
//  get, view

Test(admin_ext, get_and_view, .fini = it_teardown, .timeout = 90) {
    it_broker_t *b = it_start_broker(NULL);
    it_pub(b, "it.x.view", "m{n}", 3);
    it_result_t r;
    it_ctl(&r, b, 10000, "pub", "it.x.view", "with header", "--header", "color=blue", "--ttl", "1h",
           "--priority", "7", "--key", "k1", NULL);
    it_assert_ok(&r, "pub with header");
    it_result_free(&r);
    it_ctl(&r, b, 10000, "pub", "it.x.view", "\xff\xfe", NULL);
    it_assert_ok(&r, "pub binary");
    it_result_free(&r);

    //  get --json: payload, headers and metadata.
    it_ctl(&r, b, 10000, "get", "it.x.view", "4", NULL);
    it_assert_ok(&r, "get");
    char s[128];
    cr_assert_eq(it_json_field(r.out, "seq"), 4, "%s", r.out);
    cr_assert_gt(it_json_field(r.out, "msg_id"), 0, "%s", r.out);
    cr_assert_eq(it_json_field(r.out, "priority"), 7, "%s", r.out);
    cr_assert_gt(it_json_field(r.out, "expire_at_ns"), it_json_field(r.out, "timestamp_ns"), "%s",
                 r.out);
    cr_assert(it_json_str(r.out, "data", s, sizeof s) && strcmp(s, "with header") == 0, "%s",
              r.out);
    cr_assert(it_json_str(r.out, "key", s, sizeof s) && strcmp(s, "k1") == 0, "%s", r.out);
    cr_assert(it_json_str(r.out, "trace_id", s, sizeof s) && strncmp(s, "00-", 3) == 0, "%s",
              r.out);
    cr_assert(strstr(r.out, "\"headers\":{\"color\":\"blue\"}"), "%s", r.out);
    it_result_free(&r);

    //  get (text): key value lines, the payload last.
    it_ctl_text(&r, b, 10000, NULL, "get", "it.x.view", "4", NULL);
    it_assert_ok(&r, "get (text)");
    cr_assert(strstr(r.out, "seq       4\n") && strstr(r.out, "priority  7\n") &&
                  strstr(r.out, "header    color: blue\n") && strstr(r.out, "key       k1\n") &&
                  strstr(r.out, "\nwith header\n") && strstr(r.out, "time      20") &&
                  strstr(r.out, "expires   20") && strstr(r.out, "trace_id  00-"),
              "text:\n%s", r.out);
    cr_assert_null(strstr(r.out, "{\""), "text looks like JSON:\n%s", r.out);
    it_result_free(&r);

    //  A payload that is not UTF-8: base64.
    it_ctl(&r, b, 10000, "get", "it.x.view", "5", NULL);
    it_assert_ok(&r, "get binary");
    cr_assert(it_json_str(r.out, "data_b64", s, sizeof s) && strcmp(s, "//4=") == 0, "%s", r.out);
    it_result_free(&r);
    it_ctl_text(&r, b, 10000, NULL, "get", "it.x.view", "5", NULL);
    cr_assert(strstr(r.out, "\nbase64://4=\n"), "text:\n%s", r.out);
    it_result_free(&r);

    //  Missing seq: exit 1; bad seq: usage error.
    it_ctl(&r, b, 10000, "get", "it.x.view", "99", NULL);
    cr_assert_eq(r.status, 1, "get of a missing seq: exit %d", r.status);
    cr_assert(strstr(r.err, "TERN_ENOTFOUND"), "stderr: %s", r.err);
    it_result_free(&r);
    it_ctl(&r, b, 10000, "get", "it.x.view", "x", NULL);
    cr_assert_eq(r.status, 2, "get with a bad seq: exit %d", r.status);
    it_result_free(&r);

    //  view: from a seq, a count; one JSON object per line, in seq order.
    it_ctl(&r, b, 10000, "view", "it.x.view", "--from", "seq:2", "--count", "2", NULL);
    it_assert_ok(&r, "view");
    char **lines;
    size_t n = it_split_lines(r.out, &lines);
    cr_assert_eq(n, 2, "view --count 2:\n%s", r.out);
    cr_assert_eq(it_json_field(lines[0], "seq"), 2);
    cr_assert_eq(it_json_field(lines[1], "seq"), 3);
    free(lines);
    it_result_free(&r);
    it_ctl(&r, b, 10000, "view", "it.x.view", "--from", "time:1h", "--count", "100", NULL);
    it_assert_ok(&r, "view --from time:1h");
    n = it_split_lines(r.out, &lines);
    cr_assert_eq(n, 5, "view of everything:\n%s", r.out);
    free(lines);
    it_result_free(&r);
    it_ctl_text(&r, b, 10000, NULL, "view", "it.x.view", NULL);
    it_assert_ok(&r, "view (text)");
    cr_assert(strstr(r.out, "\nm1\n") && strstr(r.out, "\nm3\n") &&
                  strstr(r.out, "\nwith header\n"),
              "text:\n%s", r.out);
    it_result_free(&r);
    it_ctl(&r, b, 10000, "view", "it.x.view", "--from", "later", NULL);
    cr_assert_eq(r.status, 2, "view --from later: exit %d", r.status);
    it_result_free(&r);

    //  A payload too big for one REPLY in JSON: its start, marked truncated.
    it_ctl(&r, b, 20000, "pub", "it.x.big", "--size", "1048576", NULL);
    it_assert_ok(&r, "pub 1 MiB");
    it_result_free(&r);
    it_ctl(&r, b, 10000, "get", "it.x.big", "1", NULL);
    it_assert_ok(&r, "get 1 MiB");
    bool truncated = false;
    cr_assert(it_json_bool(r.out, "truncated", &truncated) && truncated, "%.300s", r.out);
    cr_assert_eq(it_json_field(r.out, "size"), 1048576);
    it_result_free(&r);

    //  Nothing was consumed: a new group still gets every message, no group
    //  was made by reading.
    char line[1024];
    cr_assert_not(it_group_line(b, "it.x.view", "g", line, sizeof line));
    it_ctl(&r, b, 15000, "sub", "it.x.view", "--group", "g", "--count", "5", NULL);
    it_assert_ok(&r, "sub after view");
    it_msg_t *msgs;
    size_t m = it_parse_msgs(r.out, &msgs);
    cr_assert_eq(m, 5, "%s", r.out);
    it_msgs_free(msgs, m);
    it_result_free(&r);
}
