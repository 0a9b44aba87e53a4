/*  it_disk_full.c - a node whose disk fills, with storage/writemap on.

    ternd's data directory is a small tmpfs this test mounts (root only; CI
    runs as root; skipped with a message otherwise) and unmounts at the end.
    With MDB_WRITEMAP an unreserved page is SIGBUS when the disk is full;
    the store reserves the map on disk at open and before every growth, so
    a full disk is a map that cannot grow: publishes get TERN_EFULL, what was
    acknowledged is stored (and nothing else), reads go on, and space freed
    by a delete, or a restart on a larger disk, takes publishes again. When
    the disk cannot hold even the initial map, ternd runs without WRITEMAP
    and a full disk is still TERN_EFULL, never a crash.
*/
#include "harness.h"
#include "test_port.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

static it_broker_t *s_broker; //  the node under test
static bool s_mounted;        //  its data dir is our tmpfs
static int s_metrics_port;    //  its /metrics

//  Stops ternd by PID, unmounts its data dir, removes the rest.
static void s_fini(void) {
    if (s_broker) {
        it_broker_stop(s_broker, 10000);
        if (s_mounted && umount(s_broker->data_dir) != 0) {
            umount2(s_broker->data_dir, MNT_DETACH);
        }
        it_broker_destroy(&s_broker);
    }
    s_mounted = false;
}

TestSuite(disk_full, .fini = s_fini, .timeout = 120);

//  A node (not started) with its data dir on a tmpfs of SIZE ("24m") and
//  EXTRA ternd arguments (NULL-terminated list, metrics added here).
static it_broker_t *s_node_on_tmpfs(const char *size, const char *const *extra) {
    if (geteuid() != 0) {
        cr_skip_test("needs root to mount a tmpfs for the data directory (CI runs as root)");
    }
    static char addr[32];
    s_metrics_port = test_port();
    snprintf(addr, sizeof addr, "127.0.0.1:%d", s_metrics_port);
    const char *args[IT_EXTRA_MAX];
    int n = 0;
    args[n++] = "--metrics";
    args[n++] = addr;
    for (int i = 0; extra[i]; i++) {
        args[n++] = extra[i];
    }
    args[n] = NULL;
    s_broker = it_broker_new(1, args);
    cr_assert_not_null(s_broker);
    char opts[32];
    snprintf(opts, sizeof opts, "size=%s", size);
    cr_assert_eq(mount("tmpfs", s_broker->data_dir, "tmpfs", 0, opts), 0, "mount tmpfs: %s",
                 strerror(errno));
    s_mounted = true;
    return s_broker;
}

//  Sample NAME of the node's /metrics.
static double s_metric(const char *name) {
    char *body = NULL;
    cr_assert_eq(it_http_get(s_metrics_port, "/metrics", &body), 200);
    double v = it_prom_sample(body, name);
    free(body);
    return v;
}

//  `ternctl pub TOPIC --size 60000 --count COUNT`; returns the messages
//  acknowledged, after checking that TOPIC holds exactly those more than
//  before; *FULL is set when it failed with the storage-full error.
static size_t s_pub(it_broker_t *b, const char *topic, int count, bool *full) {
    int64_t before = it_topic_msgs(b, topic);
    before = before < 0 ? 0 : before; //  a new topic
    char n[16];
    snprintf(n, sizeof n, "%d", count);
    it_result_t r;
    it_ctl(&r, b, 60000, "pub", topic, "--size", "60000", "--count", n, NULL);
    *full = r.status != 0;
    if (*full) {
        cr_assert(strstr(r.err, "EFULL") || strstr(r.err, "full"), "pub failed, not full:\n%s",
                  r.err);
    }
    it_acks_t acks = {0};
    size_t acked = it_acks_add(&acks, r.out);
    it_acks_free(&acks);
    it_result_free(&r);
    int64_t stored = it_topic_msgs(b, topic);
    stored = stored < 0 ? 0 : stored; //  not created: the disk had no room for it
    cr_assert_eq(stored - before, (int64_t)acked, "%s: %lld stored, %zu acknowledged", topic,
                 (long long)(stored - before), acked);
    return acked;
}

//  The first COUNT messages of TOPIC are still served.
static void s_assert_reads(it_broker_t *b, const char *topic, int count) {
    char n[16];
    snprintf(n, sizeof n, "%d", count);
    it_result_t r;
    it_ctl(&r, b, 30000, "sub", topic, "--from", "first", "--count", n, "--timeout", "5s", NULL);
    it_assert_ok(&r, "sub on a full disk");
    it_msg_t *msgs;
    size_t got = it_parse_msgs(r.out, &msgs);
    it_msgs_free(msgs, got);
    it_result_free(&r);
    cr_assert_eq(got, (size_t)count, "%zu of %d messages read back", got, count);
}

Test(disk_full, writemap_growth_refused_then_room_again) {
    const char *extra[] = {"--writemap", "--map-initial", "4M", "--map-max", "1G", NULL};
    it_broker_t *b = s_node_on_tmpfs("24m", extra);
    cr_assert(it_broker_start(b), "ternd did not start");
    cr_assert_eq(s_metric("tern_storage_writemap"), 1, "WRITEMAP not in effect on a tmpfs");

    //  60 MB at a 24 MB disk: the map grows 4 -> 8 -> 16 MB, then 32 MB
    //  cannot be reserved.
    bool full = false;
    size_t stored = s_pub(b, "it.fill", 1000, &full);
    int status = 0;
    cr_assert(it_broker_alive(b, &status), "ternd died on a full disk (status %d)", status);
    cr_assert(full, "1000 x 60 KB fit on a 24 MB disk");
    cr_assert(stored > 50 && stored < 1000, "%zu stored", stored);
    cr_assert_geq(s_metric("tern_storage_reserve_refused_total"), 1);
    cr_assert_leq(s_metric("tern_storage_map_size_bytes"), 24 << 20);
    cr_assert(it_broker_logged(b, "cannot reserve"), "no log line for the refused growth");
    s_assert_reads(b, "it.fill", 20);

    //  A small publish is refused too, and nothing of it is stored.
    size_t again = s_pub(b, "it.fill", 5, &full);
    cr_assert(full, "a publish into the full store was acknowledged");
    cr_assert_eq(again, 0, "%zu acknowledged into a full store", again);

    //  Deleting the topic frees its pages for new messages.
    it_result_t r;
    it_ctl(&r, b, 30000, "topic", "delete", "it.fill", "--force", NULL);
    it_assert_ok(&r, "topic delete");
    it_result_free(&r);
    size_t after = 0;
    for (int tries = 0; tries < 50; tries++) { //  the delete's data goes at the next sweeps
        after += s_pub(b, "it.after", 20, &full);
        if (!full) {
            break;
        }
        it_sleep_ms(200);
    }
    cr_assert_not(full, "publishes still refused after the delete");
    cr_assert_geq(after, 20);

    //  Restart on a larger disk: the map grows past the old limit.
    cr_assert_eq(it_broker_stop(b, 10000), 0);
    cr_assert_eq(mount("tmpfs", b->data_dir, "tmpfs", MS_REMOUNT, "size=112m"), 0, "remount: %s",
                 strerror(errno));
    cr_assert(it_broker_start(b), "ternd did not restart");
    size_t more = s_pub(b, "it.more", 600, &full); //  36 MB
    cr_assert_not(full, "publishes refused with room on the disk");
    cr_assert_eq(more, 600);
    cr_assert_gt(s_metric("tern_storage_map_size_bytes"), 32 << 20);
    cr_assert_eq(it_topic_msgs(b, "it.after"), (int64_t)after, "messages lost over the restart");
}

Test(disk_full, no_room_for_the_map_at_open_runs_without_writemap) {
    const char *extra[] = {"--writemap", "--map-initial", "8M", "--map-max", "1G", NULL};
    it_broker_t *b = s_node_on_tmpfs("6m", extra);
    cr_assert(it_broker_start(b), "ternd did not start on a disk smaller than its map");
    cr_assert_eq(s_metric("tern_storage_writemap"), 0);
    cr_assert(it_broker_logged(b, "writing without MDB_WRITEMAP"), "no log line for the fallback");

    bool full = false;
    size_t stored = s_pub(b, "it.fill", 200, &full); //  12 MB at a 6 MB disk
    int status = 0;
    cr_assert(it_broker_alive(b, &status), "ternd died on a full disk (status %d)", status);
    cr_assert(full, "200 x 60 KB fit on a 6 MB disk");
    cr_assert(stored > 10 && stored < 200, "%zu stored", stored);
    s_assert_reads(b, "it.fill", 10);
}
