/*  test_checker.c - tern-check (tools/checker) on synthetic histories: a
    clean one passes; each rule's violation is found and cites its lines;
    malformed input exits 2 naming the line.

    Runs the real bin/tern-check as a process (the fault tests run it so),
    its history in a temp file, its stdout and stderr captured.
*/
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

//  What one run of tern-check printed and returned.
typedef struct {
    int status; //  exit code, or -1 if it did not exit normally
    char *out;  //  stdout, owned
    char *err;  //  stderr, owned
} s_run_t;

static char *s_slurp(const char *path) {
    FILE *f = fopen(path, "r");
    cr_assert(f, "cannot read %s", path);
    char *text = NULL;
    size_t cap = 0;
    ssize_t n = getdelim(&text, &cap, '\0', f);
    fclose(f);
    if (n < 0) {
        free(text);
        return strdup("");
    }
    return text;
}

//  Writes TEXT to a new temp file; returns its path (caller frees and unlinks).
static char *s_file(const char *text) {
    char *path = strdup("/tmp/test_checker.XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    size_t len = strlen(text);
    cr_assert_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

//  Runs tern-check with ARGS (NULL-terminated, may be NULL) and, unless
//  HISTORY is NULL, a temp file holding HISTORY as the last argument.
static s_run_t s_check_args(const char *history, const char *const *args) {
    char bin[512], *argv[16];
    snprintf(bin, sizeof bin, "%s/tern-check", TERN_BIN_DIR);
    cr_assert(access(bin, X_OK) == 0, "no %s (build target tern-check)", bin);
    char *file = history ? s_file(history) : NULL;
    char *out = s_file(""), *err = s_file("");
    int argc = 0;
    argv[argc++] = bin;
    for (size_t i = 0; args && args[i] && argc < 14; i++) {
        argv[argc++] = (char *)args[i];
    }
    if (file) {
        argv[argc++] = file;
    }
    argv[argc] = NULL;
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int o = open(out, O_WRONLY | O_TRUNC), e = open(err, O_WRONLY | O_TRUNC);
        int in = open("/dev/null", O_RDONLY);
        if (o < 0 || e < 0 || in < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0 || dup2(in, 0) < 0) {
            _exit(127);
        }
        execv(bin, argv);
        _exit(127);
    }
    int raw = 0;
    cr_assert_eq(waitpid(pid, &raw, 0), pid);
    s_run_t run = {WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, s_slurp(out), s_slurp(err)};
    unlink(out);
    unlink(err);
    free(out);
    free(err);
    if (file) {
        unlink(file);
        free(file);
    }
    return run;
}

static s_run_t s_check(const char *history) {
    return s_check_args(history, NULL);
}

static void s_run_free(s_run_t *run) {
    free(run->out);
    free(run->err);
}

//  Asserts that RUN found violations and printed NEEDLE.
#define s_assert_found(run, needle)                                                                \
    do {                                                                                           \
        cr_assert_eq((run)->status, 1, "exit %d, want 1\nstdout:\n%s\nstderr:\n%s", (run)->status, \
                     (run)->out, (run)->err);                                                      \
        cr_assert(strstr((run)->out, (needle)), "no '%s' in:\n%s", (needle), (run)->out);          \
    } while (0)

//  Asserts that RUN printed NEEDLE.
#define s_assert_out(run, needle)                                                                  \
    cr_assert(strstr((run)->out, (needle)), "no '%s' in:\n%s", (needle), (run)->out)

//  Asserts that RUN passed.
#define s_assert_clean(run)                                                                        \
    cr_assert_eq((run)->status, 0, "exit %d, want 0\nstdout:\n%s\nstderr:\n%s", (run)->status,     \
                 (run)->out, (run)->err)

//  A clean history, line by line: producer P publishes 1, 2 (the first
//  attempt of 2 times out, the resend is a duplicate) and 3 to topic t on
//  node n1; group g gets all three (2 twice) and acks them.
#define PUB1                                                                                       \
    "{\"ev\":\"publish\",\"client\":\"c1\",\"producer\":\"P\",\"producer_seq\":1,\"topic\":\"t\"," \
    "\"outcome\":\"ok\",\"msg_id\":101,\"seq\":1}\n"
#define PUB2T                                                                                      \
    "{\"ev\":\"publish\",\"client\":\"c1\",\"producer\":\"P\",\"producer_seq\":2,\"topic\":\"t\"," \
    "\"outcome\":\"err\",\"code\":400}\n"
#define PUB2                                                                                       \
    "{\"ev\":\"publish\",\"client\":\"c1\",\"producer\":\"P\",\"producer_seq\":2,\"topic\":\"t\"," \
    "\"outcome\":\"ok\",\"msg_id\":102,\"seq\":2,\"duplicate\":true}\n"
#define PUB3                                                                                       \
    "{\"ev\":\"publish\",\"client\":\"c1\",\"producer\":\"P\",\"producer_seq\":3,\"topic\":\"t\"," \
    "\"outcome\":\"ok\",\"msg_id\":103,\"seq\":3}\n"
#define NODE1 "{\"ev\":\"node\",\"node\":\"n1\",\"topic\":\"t\"}\n"
#define ST1(n)                                                                                     \
    "{\"ev\":\"stored\",\"node\":\"" n                                                             \
    "\",\"topic\":\"t\",\"seq\":1,\"msg_id\":101,\"producer\":\"P\",\"producer_seq\":1,"           \
    "\"priority\":4,\"headers\":{\"h\":\"v\"},\"data\":\"one\"}\n"
#define STORED(node, seq, id, producer, pseq)                                                      \
    "{\"ev\":\"stored\",\"node\":\"" node "\",\"topic\":\"t\",\"seq\":" #seq ",\"msg_id\":" #id    \
    ",\"producer\":\"" producer "\",\"producer_seq\":" #pseq "}\n"
#define ST2(n) STORED(n, 2, 102, "P", 2)
#define ST3(n) STORED(n, 3, 103, "P", 3)
#define GROUP  "{\"ev\":\"group\",\"topic\":\"t\",\"group\":\"g\",\"pending\":0,\"acked\":3}\n"
#define DEL(id, seq, count)                                                                        \
    "{\"ev\":\"deliver\",\"group\":\"g\",\"consumer\":\"k1\",\"topic\":\"t\",\"msg_id\":" #id      \
    ",\"seq\":" #seq ",\"delivery_count\":" #count "}\n"
#define ACK(id) "{\"ev\":\"ack\",\"group\":\"g\",\"msg_id\":" #id "}\n"
#define DELIVERIES                                                                                 \
    DEL(101, 1, 1) ACK(101) DEL(102, 2, 1) DEL(102, 2, 2) ACK(102) DEL(103, 3, 1) ACK(103)
#define CLEAN PUB1 PUB2T PUB2 PUB3 NODE1 ST1("n1") ST2("n1") ST3("n1") GROUP DELIVERIES

Test(checker, usage) {
    //  A clean history passes with exit 0 and a summary of what it saw.
    s_run_t run = s_check("# comments and blank lines are skipped\n\n" CLEAN);
    s_assert_clean(&run);
    cr_assert(strstr(run.out, "tern-check: attempts=4 acked=3 refused=0 stored=3 deliveries=4 "
                              "delivered=3 duplicates_delivered=1 consumer_acks=3 lost=0 "
                              "undelivered=0 violations=0"),
              "summary:\n%s", run.out);
    s_run_free(&run);
}

Test(checker, three_replicas_clean) {
    s_run_t run = s_check(PUB1 PUB2T PUB2 PUB3 ST1("n1") ST2("n1") ST3("n1") ST1("n2") ST2("n2")
                              ST3("n2") ST1("n3") ST2("n3") ST3("n3") GROUP DELIVERIES);
    s_assert_clean(&run);
    s_run_free(&run);
}

Test(checker, lost_ack) {
    //  Message 102 was acknowledged (line 3) but node n1 does not hold it.
    s_run_t run = s_check(PUB1 PUB2T PUB2 PUB3 NODE1 ST1("n1") ST3("n1") GROUP DELIVERIES);
    s_assert_found(&run, "(a) acknowledged msg_id 102 (topic t seq 2, producer P seq 2) at ");
    s_assert_out(&run, ":3 is missing from node n1's log");
    s_assert_out(&run, "lost=1 ");
    s_run_free(&run);
}

Test(checker, lost_on_one_replica) {
    s_run_t run = s_check(PUB1 ST1("n1") ST1("n2") "{\"ev\":\"node\",\"node\":\"n3\"}\n");
    s_assert_found(&run, "(a) acknowledged msg_id 101");
    s_assert_out(&run, "missing from node n3's log");
    cr_assert_null(strstr(run.out, "node n1's"), "%s", run.out);
    s_run_free(&run);
}

Test(checker, stored_twice_in_one_log) {
    s_run_t run = s_check(PUB1 ST1("n1") ST1("n1"));
    s_assert_found(&run, "(a) msg_id 101 is twice in node n1's log of t");
    s_run_free(&run);
}

Test(checker, acked_seq_differs_from_stored) {
    s_run_t run = s_check(PUB1 STORED("n1", 7, 101, "P", 1));
    s_assert_found(&run, "(a) acknowledged msg_id 101 (topic t seq 1, producer P seq 1)");
    s_assert_out(&run, "is msg_id 101 (topic t seq 7, producer P seq 1) on node n1");
    s_run_free(&run);
}

Test(checker, duplicate_dedup_key) {
    //  Two msg_ids for (P, 1) on one node: the second copy at seq 2.
    s_run_t run = s_check(PUB1 ST1("n1") STORED("n1", 2, 555, "P", 1));
    s_assert_found(&run, "(b) node n1 stores producer P seq 1 twice: msg_id 101");
    s_assert_out(&run, "msg_id 555 (topic t seq 2, producer P seq 1)");
    s_run_free(&run);
    //  A resend of (P, 1) acknowledged under another msg_id.
    run = s_check(PUB1 "{\"ev\":\"publish\",\"producer\":\"P\",\"producer_seq\":1,\"topic\":\"t\","
                       "\"outcome\":\"ok\",\"msg_id\":556,\"seq\":2}\n");
    s_assert_found(&run, "(b) producer P seq 1 re-sent: acknowledged as msg_id 101 at ");
    s_run_free(&run);
    //  Replicas that store one key under two msg_ids.
    run = s_check(PUB1 ST1("n1") STORED("n2", 1, 557, "P", 1));
    s_assert_found(&run, "(b) producer P seq 1 is msg_id 101");
    s_assert_out(&run, "but msg_id 557 (topic t seq 1, producer P seq 1) on node n2");
    s_run_free(&run);
}

Test(checker, one_msg_id_two_publishes) {
    s_run_t run = s_check(PUB1 "{\"ev\":\"publish\",\"producer\":\"Q\",\"producer_seq\":9,"
                               "\"topic\":\"t\",\"outcome\":\"ok\",\"msg_id\":101,\"seq\":4}\n");
    s_assert_found(&run, "(b) one msg_id acknowledged for two publishes");
    s_run_free(&run);
}

Test(checker, reordered_seqs) {
    s_run_t run = s_check(PUB1 PUB2 PUB3 ST1("n1") ST3("n1") ST2("n1"));
    s_assert_found(&run, "(c) node n1, topic t: seq 2 at ");
    s_assert_out(&run, "follows seq 3 at ");
    s_assert_out(&run, "(c) node n1, topic t: producer P seq 2 (seq 2, at ");
    s_run_free(&run);
}

Test(checker, producer_order) {
    //  Seqs increase, but P's seq 3 is stored before its seq 2.
    s_run_t run =
        s_check(STORED("n1", 1, 1, "P", 3) STORED("n1", 2, 2, "Q", 1) STORED("n1", 3, 3, "P", 2));
    s_assert_found(&run, "(c) node n1, topic t: producer P seq 2 (seq 3, at ");
    s_assert_out(&run, "is stored after its seq 3 (seq 1, at ");
    s_assert_out(&run, "violations=1 ");
    s_run_free(&run);
}

Test(checker, replicas_diverge) {
    s_run_t run =
        s_check(PUB1 ST1("n1") "{\"ev\":\"stored\",\"node\":\"n2\",\"topic\":\"t\",\"seq\":1,"
                               "\"msg_id\":900}\n" ST1("n2"));
    s_assert_found(&run, "(c) topic t seq 1 is msg_id 101 on node n1 (");
    s_assert_out(&run, "but msg_id 900 on node n2 (");
    s_run_free(&run);
}

#define REFUSED                                                                                    \
    "{\"ev\":\"publish\",\"producer\":\"P\",\"producer_seq\":4,\"topic\":\"t\",\"outcome\":"       \
    "\"err\",\"code\":300}\n"
#define ST4 STORED("n1", 4, 104, "P", 4)

Test(checker, refused_then_present) {
    //  Refused with 300 (TERN_EFULL here; TERN_EREPLICAS in the cluster
    //  tests), yet stored: a violation only when 300 means "not stored".
    const char *args[] = {"--refused-code", "300", NULL};
    s_run_t run = s_check_args(PUB1 REFUSED ST1("n1") ST4, args);
    s_assert_found(&run, "(d) producer P seq 4 refused with code 300 at ");
    s_assert_out(&run, "(its last attempt) is stored on node n1: msg_id 104");
    s_assert_out(&run, "refused=1 ");
    s_run_free(&run);
    const char *by_name[] = {"--refused-code", "TERN_EFULL", NULL};
    run = s_check_args(PUB1 REFUSED ST1("n1") ST4, by_name);
    s_assert_found(&run, "(d) producer P seq 4 refused with code 300");
    s_run_free(&run);
    run = s_check(PUB1 REFUSED ST1("n1") ST4);
    s_assert_clean(&run);
    s_run_free(&run);
}

Test(checker, refused_then_acknowledged) {
    const char *args[] = {"--refused-code", "300", NULL};
    //  The resend found the refused publish stored: it was kept.
    s_run_t run = s_check_args(
        REFUSED "{\"ev\":\"publish\",\"producer\":\"P\",\"producer_seq\":4,\"topic\":\"t\","
                "\"outcome\":\"ok\",\"msg_id\":104,\"seq\":4,\"duplicate\":true}\n",
        args);
    s_assert_found(&run, "then acknowledged as a duplicate (msg_id 104) at ");
    s_run_free(&run);
    //  A resend that stored it anew is fine.
    run = s_check_args(REFUSED "{\"ev\":\"publish\",\"producer\":\"P\",\"producer_seq\":4,"
                               "\"topic\":\"t\",\"outcome\":\"ok\",\"msg_id\":104,\"seq\":4}\n" ST4,
                       args);
    s_assert_clean(&run);
    s_run_free(&run);
    //  A refused message delivered to a group.
    run = s_check_args(REFUSED "{\"ev\":\"deliver\",\"group\":\"g\",\"topic\":\"t\",\"msg_id\":104,"
                               "\"producer\":\"P\",\"producer_seq\":4}\n",
                       args);
    s_assert_found(&run, "(its last attempt) was delivered to group g as msg_id 104");
    s_run_free(&run);
}

#define UNKNOWN                                                                                    \
    "{\"ev\":\"publish\",\"producer\":\"P\",\"producer_seq\":4,\"topic\":\"t\",\"outcome\":"       \
    "\"err\",\"code\":400}\n"

Test(checker, refused_after_unknown) {
    //  A first attempt with an unknown outcome (TERN_ETIMEOUT: appended, not
    //  confirmed) may be the copy that was kept, not the refusal after it.
    const char *args[] = {"--refused-code", "300", NULL};
    s_run_t run =
        s_check_args(UNKNOWN REFUSED
                     "{\"ev\":\"publish\",\"producer\":\"P\",\"producer_seq\":4,\"topic\":"
                     "\"t\",\"outcome\":\"ok\",\"msg_id\":104,\"seq\":4,\"duplicate\":true}\n" ST4,
                     args);
    s_assert_clean(&run);
    s_run_free(&run);
    run = s_check_args(UNKNOWN REFUSED ST4, args);
    s_assert_clean(&run);
    s_run_free(&run);
    //  A refusal before the unknown attempt proves nothing either.
    run = s_check_args(REFUSED UNKNOWN ST4, args);
    s_assert_clean(&run);
    s_run_free(&run);
}

Test(checker, min_logs) {
    //  Two replicas promised, one listed: the check would be vacuous.
    const char *two[] = {"--min-logs", "2", NULL};
    s_run_t run = s_check_args(PUB1 ST1("n1"), two);
    s_assert_found(&run, "(a) topic t has 1 node log listed, --min-logs is 2");
    s_run_free(&run);
    run = s_check_args(PUB1 ST1("n1") ST1("n2"), two);
    s_assert_clean(&run);
    s_run_free(&run);
    const char *bad[] = {"--min-logs", "x", NULL};
    run = s_check_args(PUB1, bad);
    cr_assert_eq(run.status, 2, "exit %d", run.status);
    cr_assert(strstr(run.err, "--min-logs needs a number"), "%s", run.err);
    s_run_free(&run);
}

Test(checker, undelivered) {
    //  Group g never got 103.
    s_run_t run = s_check(PUB1 PUB2 PUB3 NODE1 ST1("n1") ST2("n1") ST3("n1") GROUP DEL(101, 1, 1)
                              DEL(102, 2, 1));
    s_assert_found(&run, "(e) acknowledged msg_id 103 (topic t seq 3, producer P seq 3) at ");
    s_assert_out(&run, "was never delivered to group g");
    s_assert_out(&run, "undelivered=1 ");
    s_run_free(&run);
    //  Unless it is in g's DLQ, or expired (which also excuses its absence).
    run = s_check(PUB1 PUB2 PUB3 NODE1 ST1("n1") ST2("n1") ST3("n1") GROUP DEL(101, 1, 1)
                      DEL(102, 2, 1) "{\"ev\":\"dlq\",\"topic\":\"t\",\"group\":\"g\",\"seq\":3,"
                                     "\"msg_id\":103,\"reason\":\"term\"}\n");
    s_assert_clean(&run);
    s_run_free(&run);
    run = s_check(PUB1 PUB2 PUB3 NODE1 ST1("n1") ST2("n1") GROUP DEL(101, 1, 1)
                      DEL(102, 2, 1) "{\"ev\":\"expired\",\"topic\":\"t\",\"msg_id\":103}\n");
    s_assert_clean(&run);
    s_run_free(&run);
}

Test(checker, phantom_delivery_and_stray_ack) {
    s_run_t run = s_check(PUB1 NODE1 ST1("n1") DEL(101, 1, 1) DEL(777, 9, 1) ACK(101) ACK(778));
    s_assert_found(&run, "(e) msg_id 777 delivered to group g at ");
    s_assert_out(&run, "is in no node's log of t and was never acknowledged");
    s_assert_out(&run, "(e) group g acked msg_id 778 at ");
    s_assert_out(&run, "violations=2 ");
    s_run_free(&run);
    run = s_check(PUB1 NODE1 ST1("n1") ACK(101) DEL(101, 1, 1));
    s_assert_found(&run, "(e) group g acked msg_id 101 at ");
    s_assert_out(&run, "before its first delivery at ");
    s_run_free(&run);
}

Test(checker, limit_prints_fewer_counts_all) {
    const char *args[] = {"--limit", "1", NULL};
    s_run_t run = s_check_args(PUB1 PUB2 PUB3 NODE1, args);
    s_assert_found(&run, "lost=3 ");
    s_assert_out(&run, "violations=3 (a=3 ");
    size_t lines = 0;
    for (const char *p = strstr(run.out, "(a) "); p; p = strstr(p + 1, "(a) ")) {
        lines++;
    }
    cr_assert_eq(lines, 1, "%zu lines for rule (a) with --limit 1:\n%s", lines, run.out);
    s_run_free(&run);
}

Test(checker, malformed_input_exits_2_with_line) {
    struct {
        const char *history; //  the input
        const char *want;    //  in stderr after "FILE:"
    } cases[] = {
        {PUB1 "not json\n", ":2: not a JSON object"},
        {PUB1 PUB2 "[1,2]\n", ":3: not a JSON object"},
        {"{\"topic\":\"t\"}\n", ":1: no \"ev\" string"},
        {"\n# c\n{\"ev\":\"publsh\"}\n", ":3: unknown event \"publsh\""},
        {"{\"ev\":\"publish\",\"outcome\":\"ok\"}\n", ":1: publish: \"topic\" is missing"},
        {"{\"ev\":\"publish\",\"topic\":\"t\",\"outcome\":\"maybe\"}\n",
         ":1: publish: \"outcome\" must be \"ok\" or \"err\""},
        {"{\"ev\":\"publish\",\"topic\":\"t\",\"outcome\":\"ok\",\"msg_id\":1}\n",
         ":1: publish: outcome \"ok\" needs \"msg_id\" and \"seq\""},
        {"{\"ev\":\"publish\",\"topic\":\"t\",\"outcome\":\"err\"}\n",
         ":1: publish: outcome \"err\" needs a non-zero \"code\""},
        {"{\"ev\":\"stored\",\"node\":\"n\",\"topic\":\"t\",\"seq\":-1,\"msg_id\":1}\n",
         ":1: stored: \"seq\" must be an unsigned 64-bit integer"},
        {"{\"ev\":\"stored\",\"node\":\"n\",\"topic\":\"t\",\"seq\":1.5,\"msg_id\":1}\n",
         ":1: stored: \"seq\" must be"},
        {"{\"ev\":\"stored\",\"node\":\"n\",\"topic\":\"t\",\"seq\":1,\"msg_id\":"
         "18446744073709551616}\n",
         ":1: stored: \"msg_id\" must be an unsigned 64-bit integer"},
        {"{\"ev\":\"stored\",\"node\":\"\",\"topic\":\"t\",\"seq\":1,\"msg_id\":1}\n",
         ":1: stored: \"node\" is empty"},
        {"{\"ev\":\"stored\",\"node\":\"n\",\"topic\":\"t\",\"seq\":1,\"msg_id\":1,"
         "\"producer\":\"P\"}\n",
         ":1: stored: \"producer\" without \"producer_seq\""},
        {"{\"ev\":\"deliver\",\"group\":7,\"topic\":\"t\",\"msg_id\":1}\n",
         ":1: deliver: \"group\" must be a string"},
        {"{\"ev\":\"publish\",\"topic\":\"t\",\"outcome\":\"ok\",\"msg_id\":1,\"seq\":1,"
         "\"duplicate\":\"yes\"}\n",
         ":1: publish: \"duplicate\" must be true or false"},
        {"{\"ev\":\"ack\",\"group\":\"g\",\"msg_id\":1", ":1: not a JSON object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s_run_t run = s_check(cases[i].history);
        cr_assert_eq(run.status, 2, "case %zu: exit %d, want 2\n%s%s", i, run.status, run.out,
                     run.err);
        cr_assert(strstr(run.err, cases[i].want), "case %zu: no '%s' in:\n%s", i, cases[i].want,
                  run.err);
        s_run_free(&run);
    }
}

Test(checker, bad_usage_exits_2) {
    const char *cases[][3] = {
        {"--refused-code", NULL, NULL}, {"--refused-code", "TERN_ENOPE", NULL},
        {"--refused-code", "0", NULL},  {"--limit", "x", NULL},
        {"--bogus", NULL, NULL},        {"/nonexistent/history", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s_run_t run = s_check_args(NULL, cases[i]);
        cr_assert_eq(run.status, 2, "case %zu (%s): exit %d", i, cases[i][0], run.status);
        cr_assert(strstr(run.err, "tern-check: "), "case %zu: %s", i, run.err);
        s_run_free(&run);
    }
}

Test(checker, several_files_in_order) {
    //  Clients and nodes may write their own files; lines cite the file.
    char *client = s_file(PUB1 PUB2), *node = s_file(NODE1 ST1("n1"));
    const char *args[] = {client, node, NULL};
    s_run_t run = s_check_args(NULL, args);
    s_assert_found(&run, "(a) acknowledged msg_id 102");
    char want[64];
    snprintf(want, sizeof want, "at %s:2 is missing", client);
    cr_assert(strstr(run.out, want), "no '%s' in:\n%s", want, run.out);
    s_run_free(&run);
    unlink(client);
    unlink(node);
    free(client);
    free(node);
}

//  A cross-DC history: producer A publishes in dc1 (msg 201), producer B in
//  dc2 (msg 202); each DC's node logs both under its own seqs.
#define XPUB(dc, producer, pseq, id, seq)                                                          \
    "{\"ev\":\"publish\",\"dc\":\"" dc "\",\"producer\":\"" producer "\",\"producer_seq\":" #pseq  \
    ",\"topic\":\"t\",\"outcome\":\"ok\",\"msg_id\":" #id ",\"seq\":" #seq "}\n"
#define XNODE(dc, node)                                                                            \
    "{\"ev\":\"node\",\"dc\":\"" dc "\",\"node\":\"" node "\",\"topic\":\"t\"}\n"
#define XST(dc, node, seq, id, producer, pseq)                                                     \
    "{\"ev\":\"stored\",\"dc\":\"" dc "\",\"node\":\"" node "\",\"topic\":\"t\",\"seq\":" #seq     \
    ",\"msg_id\":" #id ",\"producer\":\"" producer "\",\"producer_seq\":" #pseq "}\n"
#define XPUBS XPUB("dc1", "A", 1, 201, 1) XPUB("dc2", "B", 1, 202, 1)
#define XDC1  XNODE("dc1", "n1") XST("dc1", "n1", 1, 201, "A", 1) XST("dc1", "n1", 2, 202, "B", 1)
#define XDC2  XNODE("dc2", "n1") XST("dc2", "n1", 1, 202, "B", 1) XST("dc2", "n1", 2, 201, "A", 1)

Test(checker, dcs_each_dc_its_own_seqs) {
    //  Node names may repeat across DCs; seqs are compared within a DC.
    const char *two[] = {"--dcs", "2", NULL};
    s_run_t run = s_check_args(XPUBS XDC1 XDC2, two);
    s_assert_clean(&run);
    s_assert_out(&run, "tern-check: dcs=2 twins=0\ntern-check: attempts=2 acked=2 ");
    s_run_free(&run);
    //  Untagged, the same logs are one DC's replicas that disagree.
    run = s_check("{\"ev\":\"publish\",\"topic\":\"t\",\"outcome\":\"ok\",\"msg_id\":201,"
                  "\"seq\":1}\n"
                  "{\"ev\":\"stored\",\"node\":\"n1\",\"topic\":\"t\",\"seq\":1,\"msg_id\":201}\n"
                  "{\"ev\":\"stored\",\"node\":\"n2\",\"topic\":\"t\",\"seq\":2,\"msg_id\":201}\n");
    s_assert_found(&run, "(a) acknowledged msg_id 201 (topic t seq 1) at ");
    s_run_free(&run);
}

Test(checker, dcs_lost_in_one_dc) {
    const char *two[] = {"--dcs", "2", NULL};
    s_run_t run = s_check_args(XPUBS XDC1 XNODE("dc2", "n4") XST("dc2", "n4", 1, 202, "B", 1), two);
    s_assert_found(&run, "(a) acknowledged msg_id 201 (topic t seq 1, producer A seq 1) at ");
    s_assert_out(&run, "is missing from node n4's log");
    s_assert_out(&run, "lost=1 ");
    s_run_free(&run);
    //  One DC's logs listed: the cross-DC check would be vacuous.
    run = s_check_args(XPUBS XDC1, two);
    s_assert_found(&run, "(a) topic t has logs of 1 DC listed, --dcs is 2");
    s_run_free(&run);
    const char *bad[] = {"--dcs", "two", NULL};
    run = s_check_args(XPUBS, bad);
    cr_assert_eq(run.status, 2, "exit %d", run.status);
    cr_assert(strstr(run.err, "--dcs needs a number"), "%s", run.err);
    s_run_free(&run);
}

//  Producer P seq 1 acknowledged in both DCs while they were cut apart:
//  301 in dc1, 302 in dc2. Every DC must keep 301 only.
#define TWINS XPUB("dc1", "P", 1, 301, 1) XPUB("dc2", "P", 1, 302, 1)

Test(checker, dcs_twins_resolved_to_the_lowest) {
    const char *two[] = {"--dcs", "2", NULL};
    const char *history = TWINS XNODE("dc1", "n1") XST("dc1", "n1", 1, 301, "P", 1)
        XNODE("dc2", "n4") XST("dc2", "n4", 2, 301, "P", 1);
    s_run_t run = s_check_args(history, two);
    s_assert_clean(&run);
    s_assert_out(&run, "dcs=2 twins=1\n");
    s_run_free(&run);
    //  Without --dcs, two msg_ids for one key break rule (b).
    run = s_check(history);
    s_assert_found(&run, "(b) producer P seq 1 re-sent: acknowledged as msg_id 301 at ");
    s_run_free(&run);
    //  The twin that lost (302) must be gone from every log, and the
    //  winner present in every log.
    run = s_check_args(TWINS XNODE("dc1", "n1") XST("dc1", "n1", 1, 301, "P", 1) XNODE("dc2", "n4")
                           XST("dc2", "n4", 1, 302, "P", 1),
                       two);
    s_assert_found(&run, "(b) acknowledged msg_id 302 (topic t seq 1, producer P seq 1) at ");
    s_assert_out(&run, "lost to a lower msg_id of its key in another DC but is still in node n4");
    s_assert_out(&run, "(a) acknowledged msg_id 301 (topic t seq 1, producer P seq 1) at ");
    s_run_free(&run);
    //  Within one DC, two msg_ids for one key stay a violation.
    run = s_check_args(TWINS XPUB("dc1", "P", 1, 303, 2) XNODE("dc1", "n1")
                           XST("dc1", "n1", 1, 301, "P", 1) XNODE("dc2", "n4")
                               XST("dc2", "n4", 2, 301, "P", 1),
                       two);
    s_assert_found(&run, "(b) producer P seq 1 re-sent: acknowledged as msg_id 301 at ");
    s_assert_out(&run, "then as msg_id 303 at ");
    s_run_free(&run);
}

Test(checker, dcs_producer_order_per_origin) {
    //  P publishes 1 in dc1 and 2 in dc2 (it failed over); dc2 applies
    //  dc1's record after its own: records of different origins interleave.
    const char *two[] = {"--dcs", "2", NULL};
    s_run_t run = s_check_args(
        XPUB("dc1", "P", 1, 401, 1) XPUB("dc2", "P", 2, 402, 1) XNODE("dc1", "n1")
            XST("dc1", "n1", 1, 401, "P", 1) XST("dc1", "n1", 2, 402, "P", 2) XNODE("dc2", "n4")
                XST("dc2", "n4", 1, 402, "P", 2) XST("dc2", "n4", 2, 401, "P", 1),
        two);
    s_assert_clean(&run);
    s_run_free(&run);
    //  From one origin, order still holds.
    run = s_check_args(XPUB("dc1", "P", 1, 401, 1) XPUB("dc1", "P", 2, 402, 2) XNODE("dc1", "n1")
                           XST("dc1", "n1", 1, 401, "P", 1) XST("dc1", "n1", 2, 402, "P", 2)
                               XNODE("dc2", "n4") XST("dc2", "n4", 1, 402, "P", 2)
                                   XST("dc2", "n4", 2, 401, "P", 1),
                       two);
    s_assert_found(&run, "(c) node n4, topic t: producer P seq 1 (seq 2, at ");
    s_run_free(&run);
}
