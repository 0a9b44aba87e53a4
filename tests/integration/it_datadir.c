/*  it_datadir.c - what ternd does with its data directory and the files it
    reads: one node per directory (a second ternd exits 1 at once naming the
    holder's pid, a SIGKILLed holder leaves nothing that blocks a restart,
    mdb_copy keeps working beside a live node), a data directory that is a
    file or unwritable is reported with the system's reason, and a config
    file with NUL bytes is refused.
*/
#include "harness.h"
#include "tern_store.h"
#include "test_port.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

//  Runs ternd with --data DIR on a port of its own, plus EXTRA (may be
//  NULL); it must exit by itself within 10 s (a node that starts does not).
static void s_ternd(it_result_t *r, const char *dir, const char *extra) {
    char listen[64];
    snprintf(listen, sizeof listen, "tcp://127.0.0.1:%d", test_port());
    char *argv[] = {
        (char *)it_ternd_path(), "--data",      (char *)dir, "--listen", listen, "--metrics", "off",
        extra ? "-c" : NULL,     (char *)extra, NULL};
    it_run(r, 10000, NULL, argv);
    cr_assert_not(r->timed_out, "ternd on %s did not exit: it is serving\n%s", dir, r->err);
}

//  Asserts that R is an exit 1 with WANT on stderr; frees R.
static void s_expect_refused(it_result_t *r, const char *want) {
    cr_assert_eq(r->status, 1, "exit %d\n%s", r->status, r->err);
    cr_assert(strstr(r->err, want), "expected \"%s\" in:\n%s", want, r->err);
    it_result_free(r);
}

//  Writes LEN bytes of DATA to B's ROOT/NAME, whose path goes to PATH.
static void s_write(it_broker_t *b, const char *name, const void *data, size_t len, char *path,
                    size_t cap) {
    snprintf(path, cap, "%s/%s", b->root, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    fclose(f);
}

//  `sub TOPIC --from first` of COUNT messages; checks they are seqs 1..COUNT,
//  published by runs of `pub --count 100` ("m 1".."m 100", "m 1"...).
static void s_expect_all(it_broker_t *b, const char *topic, int count) {
    char count_arg[16];
    snprintf(count_arg, sizeof count_arg, "%d", count);
    it_result_t r;
    it_ctl(&r, b, 30000, "sub", topic, "--from", "first", "--count", count_arg, "--timeout", "3s",
           NULL);
    it_assert_ok(&r, "ternctl sub");
    it_msg_t *msgs;
    size_t n = it_parse_msgs(r.out, &msgs);
    cr_assert_eq(n, (size_t)count, "%zu of %d acknowledged messages", n, count);
    for (size_t i = 0; i < n; i++) {
        char want[32];
        snprintf(want, sizeof want, "m %zu", i % 100 + 1);
        cr_assert_str_eq(msgs[i].data, want);
        cr_assert_eq(msgs[i].seq, (int64_t)i + 1);
    }
    it_msgs_free(msgs, n);
    it_result_free(&r);
}

Test(datadir, one_node_per_directory, .fini = it_teardown, .timeout = 120) {
    it_broker_t *b = it_start_broker(NULL);
    it_pub(b, "it.lock", "m {n}", 100);

    //  A second node on the live directory: exit 1 at once, naming the
    //  holder, before it touches LMDB.
    it_result_t r;
    s_ternd(&r, b->data_dir, NULL);
    char want[512];
    snprintf(want, sizeof want, "data directory %s is in use by pid %d", b->data_dir, (int)b->pid);
    s_expect_refused(&r, want);
    cr_assert(it_broker_alive(b, NULL), "the first node died");

    //  The first still serves, and an online backup works beside it.
    it_pub(b, "it.lock", "m {n}", 100);
    char backup[320];
    snprintf(backup, sizeof backup, "%s/backup", b->root);
    cr_assert_eq(mkdir(backup, 0700), 0);
    char *copy[] = {"/usr/bin/mdb_copy", b->data_dir, backup, NULL};
    it_run(&r, 30000, NULL, copy);
    it_assert_ok(&r, "mdb_copy of a live node");
    it_result_free(&r);
    char path[400];
    snprintf(path, sizeof path, "%s/data.mdb", backup);
    cr_assert_eq(access(path, F_OK), 0, "mdb_copy wrote no data.mdb");

    //  SIGKILL leaves the lock file with a dead pid: the kernel has dropped
    //  the lock, and the node starts with every acknowledged message.
    it_broker_kill(b);
    snprintf(path, sizeof path, "%s/%s", b->data_dir, TERN_STORE_LOCK_FILE);
    cr_assert_eq(access(path, F_OK), 0, "no lock file after SIGKILL");
    cr_assert(it_broker_start(b), "restart after SIGKILL failed");
    cr_assert_eq(tern_store_lock_holder(b->data_dir), (long)b->pid);
    s_expect_all(b, "it.lock", 200);
    it_pub(b, "it.lock", "m {n}", 1);

    //  A clean stop removes the file; the directory opens again.
    cr_assert_eq(it_broker_stop(b, 10000), 0);
    cr_assert_neq(access(path, F_OK), 0, "lock file left after a clean stop");
    cr_assert(it_broker_start(b));
}

Test(datadir, data_dir_not_a_directory, .fini = it_teardown, .timeout = 60) {
    it_broker_t *b = it_adopt_broker(it_broker_new(1, NULL));
    char file[320];
    s_write(b, "file", "", 0, file, sizeof file);
    it_result_t r;
    s_ternd(&r, file, NULL);
    char want[512];
    snprintf(want, sizeof want, "data directory %s: Not a directory", file);
    s_expect_refused(&r, want);
    //  Below a file: the same reason, for the path given.
    char below[400];
    snprintf(below, sizeof below, "%s/data", file);
    s_ternd(&r, below, NULL);
    snprintf(want, sizeof want, "data directory %s: Not a directory", below);
    s_expect_refused(&r, want);
}

Test(datadir, data_dir_permission_denied, .fini = it_teardown, .timeout = 60) {
    //  root may write anywhere: as root, ternd runs as nobody (setpriv).
    bool root = geteuid() == 0;
    if (root && access("/usr/bin/setpriv", X_OK) != 0) {
        cr_skip_test("running as root without setpriv: cannot drop privileges");
    }
    it_broker_t *b = it_adopt_broker(it_broker_new(1, NULL));
    cr_assert_eq(chmod(b->root, 0755), 0);
    char dir[320];
    snprintf(dir, sizeof dir, "%s/readonly", b->root);
    cr_assert_eq(mkdir(dir, 0555), 0);
    char listen[64];
    snprintf(listen, sizeof listen, "tcp://127.0.0.1:%d", test_port());
    char *as_nobody[] = {"/usr/bin/setpriv",
                         "--reuid=65534",
                         "--regid=65534",
                         "--clear-groups",
                         (char *)it_ternd_path(),
                         "--data",
                         dir,
                         "--listen",
                         listen,
                         "--metrics",
                         "off",
                         NULL};
    char **argv = root ? as_nobody : as_nobody + 4;
    it_result_t r;
    it_run(&r, 10000, NULL, argv);
    char want[512];
    snprintf(want, sizeof want, "data directory %s: Permission denied", dir);
    s_expect_refused(&r, want);
    chmod(dir, 0755); //  so that the teardown can remove it
}

Test(datadir, config_of_zeros_refused, .fini = it_teardown, .timeout = 60) {
    //  What a power cut can leave: it used to start a node on all defaults.
    it_broker_t *b = it_adopt_broker(it_broker_new(1, NULL));
    char path[320];
    static const char zeros[4096];
    s_write(b, "zeros.cfg", zeros, sizeof zeros, path, sizeof path);
    it_result_t r;
    s_ternd(&r, b->data_dir, path);
    char want[512];
    snprintf(want, sizeof want, "config: cannot read \"%s\": NUL byte at offset 0", path);
    s_expect_refused(&r, want);
}
