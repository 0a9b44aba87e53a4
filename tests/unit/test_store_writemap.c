/*  test_store_writemap: storage/writemap, LMDB writing through its map with
    the disk reserved for the whole map (storage/tern_store_writemap.c).

    Real files, real fallocate: the map's blocks are counted with stat,
    growth is refused by a real file size limit (RLIMIT_FSIZE, which makes
    fallocate fail with EFBIG as a full disk makes it fail with ENOSPC),
    and, when run as root, a small tmpfs the map cannot be reserved on. */
#include "test_store_fixture.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <time.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

TestSuite(store_writemap, .init = test_store_setup, .fini = test_store_teardown, .timeout = 60);

static uint8_t s_payload[10240];

//  Appends COUNT records of 10 KiB to TOPIC in one batch; returns how many
//  were stored (the rest must have failed with TERN_EFULL).
static int s_fill(tern_store_t *store, const char *topic, int count) {
    enum { MAX = 64 };
    cr_assert_leq(count, MAX);
    memset(s_payload, 'w', sizeof s_payload);
    tern_frame_t msgs[MAX];
    tern_append_result_t res[MAX];
    tern_store_batch_t *batch = tern_store_batch_new(store);
    for (int i = 0; i < count; i++) {
        memset(&msgs[i], 0, sizeof msgs[i]);
        strcpy(msgs[i].topic, topic);
        msgs[i].payload = s_payload;
        msgs[i].payload_size = sizeof s_payload;
        tern_store_batch_append(batch, &msgs[i], false, &res[i]);
    }
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    tern_store_batch_destroy(&batch);
    int stored = 0;
    while (stored < count && res[stored].err == TERN_OK) {
        stored++;
    }
    for (int i = stored; i < count; i++) {
        cr_assert_eq(res[i].err, TERN_EFULL, "append %d: %s", i, tern_strerror(res[i].err));
    }
    return stored;
}

//  Bytes of disk data.mdb in DIR holds (allocated blocks, not its size).
static uint64_t s_disk_bytes(const char *dir) {
    char path[256];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "stat %s", path);
    return (uint64_t)st.st_blocks * 512;
}

//  Usage: the map is reserved on disk at open and at each growth, and what
//  was written through the map is there after a reopen.
Test(store_writemap, reserves_the_map_at_open_and_growth) {
    tern_store_config_t config = test_store_config();
    config.writemap = true;
    tern_store_t *store = test_store_open(&config);
    tern_store_stats_t stats;
    tern_store_stats(store, &stats);
    cr_assert(stats.writemap, "/tmp can reserve: WRITEMAP expected");
    cr_assert_geq(s_disk_bytes(test_store_dir), stats.map_size, "map not reserved at open");

    for (int round = 0; round < 8; round++) { //  8 x 64 x 10 KiB = 5 MiB through a 1 MiB map
        cr_assert_eq(s_fill(store, "wm", 64), 64);
    }
    tern_store_stats(store, &stats);
    cr_assert_geq(stats.map_grows, 2);
    cr_assert_geq(s_disk_bytes(test_store_dir), stats.map_size, "growth not reserved");
    cr_assert_eq(stats.reserve_refused, 0);
    tern_store_destroy(&store);

    store = test_store_open(&config);
    cr_assert_eq(test_store_topic(store, "wm").msgs, 8 * 64);
    tern_store_destroy(&store);

    //  Off: the same directory opens without it (the file keeps its blocks).
    config.writemap = false;
    store = test_store_open(&config);
    tern_store_stats(store, &stats);
    cr_assert_not(stats.writemap);
    cr_assert_eq(test_store_topic(store, "wm").msgs, 8 * 64);
    tern_store_destroy(&store);
}

//  A growth the file system refuses (here the file size limit: fallocate
//  fails with EFBIG, as with ENOSPC on a full disk) leaves the map as it
//  was: appends get TERN_EFULL, the process lives (no SIGBUS), reads and
//  acks go on, and freed space takes appends again.
Test(store_writemap, refused_growth_is_a_full_store) {
    signal(SIGXFSZ, SIG_IGN); //  the limit's signal; the errno is what the store sees
    struct rlimit limit = {3 << 20, 3 << 20};
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &limit), 0);
    tern_store_config_t config = test_store_config();
    config.writemap = true;
    tern_store_t *store = test_store_open(&config);
    tern_store_stats_t stats;
    tern_store_stats(store, &stats);
    cr_assert(stats.writemap);

    uint32_t keep = 0;
    {
        tern_frame_t msg;
        memset(&msg, 0, sizeof msg);
        strcpy(msg.topic, "keep");
        msg.payload = (const uint8_t *)"k";
        msg.payload_size = 1;
        tern_append_result_t res;
        tern_store_batch_t *batch = tern_store_batch_new(store);
        tern_store_batch_append(batch, &msg, false, &res);
        cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
        keep = res.topic_id;
        tern_store_batch_group_open(batch, keep, "g", TERN_START_FIRST, 0, NULL, NULL);
        tern_store_batch_deliver(batch, keep, "g", 1, &(tern_delivery_t){4, 1, 0, NULL});
        cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
        tern_store_batch_destroy(&batch);
    }
    int stored = 0, got = 64;
    for (int round = 0; round < 20 && got == 64; round++) { //  up to 12.5 MiB against 3 MiB
        got = s_fill(store, "filler", 64);
        stored += got;
    }
    cr_assert_lt(got, 64, "20 x 640 KiB fit under a 3 MiB file limit");
    cr_assert_gt(stored, 64);
    tern_store_stats(store, &stats);
    cr_assert_geq(stats.reserve_refused, 1);
    cr_assert_geq(stats.full_errors, 1);
    cr_assert_leq(stats.map_size, 3 << 20, "the map grew past what the disk reserved");
    cr_assert_eq(test_store_topic(store, "filler").msgs, (uint64_t)stored,
                 "stored != acknowledged");

    //  Acks commit in a full map.
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_store_batch_ack(batch, keep, "g", 1, TERN_TRACE_ACKED);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    //  Deleting the topic frees its pages: appends fit again.
    tern_err_t err = TERN_EINTERNAL;
    tern_store_batch_topic_delete(batch, "filler", false, &err, NULL);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(err, TERN_OK);
    do { //  its data goes in steps, at the sweeps that follow
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        tern_store_batch_sweep(batch, (uint64_t)now.tv_sec * 1000000000ull, 10000, NULL);
        cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    } while (tern_store_sweep_more(store));
    tern_store_batch_destroy(&batch);
    cr_assert_eq(s_fill(store, "again", 32), 32);
    tern_store_destroy(&store);
}

//  A file system that cannot hold the map at open (a tmpfs smaller than
//  the initial map): the store opens without WRITEMAP and works.
Test(store_writemap, open_without_room_falls_back) {
    if (geteuid() != 0) {
        cr_skip_test("needs root to mount a tmpfs");
    }
    char mnt[300];
    snprintf(mnt, sizeof mnt, "%s/small", test_store_dir);
    cr_assert_eq(mkdir(mnt, 0755), 0);
    cr_assert_eq(mount("tmpfs", mnt, "tmpfs", 0, "size=2m"), 0, "mount tmpfs: %s", strerror(errno));
    tern_store_config_t config = test_store_config();
    config.dir = mnt;
    config.map_initial = 4 << 20;
    config.writemap = true;
    tern_err_t err = TERN_EINTERNAL;
    tern_store_t *store = tern_store_new(&config, &err);
    tern_store_stats_t stats = {0};
    if (store) {
        tern_store_stats(store, &stats);
        tern_store_destroy(&store);
    }
    int unmounted = umount(mnt);
    cr_assert_eq(err, TERN_OK, "open on a 2 MiB tmpfs: %s", tern_strerror(err));
    cr_assert_eq(unmounted, 0, "umount: %s", strerror(errno));
    cr_assert_not(stats.writemap, "a 4 MiB map cannot be reserved on 2 MiB");
    cr_assert_geq(stats.reserve_refused, 1);
}
