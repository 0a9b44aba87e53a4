/*  test_store_crash.c - the storage engine survives SIGKILL at any moment.

    Runs store_crash_writer (tests/unit/store_crash_writer.c) on one store
    directory, kills it with SIGKILL after a random 10-200 ms, 50 times,
    restarting it each time on the same directory. After each kill the store
    must hold every record the writer listed in its side file (written only
    after a commit returned): present, CRC intact, payload checksum equal,
    side-file seqs strictly increasing, and the topic contiguous from 1 with
    every record readable.
*/
#include "test_store_fixture.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define S_ROUNDS 50

static char s_store_dir[96]; //  the writer's store, inside test_store_dir
static char s_side[96];      //  the writer's list of committed records

static void s_setup(void) {
    test_store_setup();
    snprintf(s_store_dir, sizeof s_store_dir, "%s/store", test_store_dir);
    snprintf(s_side, sizeof s_side, "%s/side.txt", test_store_dir);
}

//  Checks the store (opened with WRITEMAP or not) against the side file;
//  returns the records verified.
static uint64_t s_verify(bool writemap) {
    tern_store_config_t config;
    tern_store_config_defaults(&config);
    config.dir = s_store_dir;
    config.map_initial = 1 << 20;
    config.writemap = writemap;
    tern_err_t err;
    tern_store_t *store = tern_store_new(&config, &err);
    cr_assert_not_null(store, "reopen failed: %d", err);
    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);

    FILE *side = fopen(s_side, "r");
    uint64_t expect = 1, verified = 0;
    tern_topic_info_t topic;
    memset(&topic, 0, sizeof topic);
    bool have_topic = tern_store_topic_get(reader, "crash", &topic) == TERN_OK;
    if (side) {
        char line[128];
        while (fgets(line, sizeof line, side)) {
            if (!strchr(line, '\n')) {
                break; //  a line cut by the kill (the write was not finished)
            }
            unsigned long long seq;
            unsigned crc;
            size_t size;
            cr_assert_eq(sscanf(line, "%llu %u %zu", &seq, &crc, &size), 3);
            //  Records committed just before a kill have no line: the side
            //  file may skip seqs, but never repeats or goes back.
            cr_assert_geq(seq, expect, "side file seq %llu after %llu", seq,
                          (unsigned long long)expect - 1);
            cr_assert(have_topic, "topic missing but %llu records acknowledged", seq);
            tern_frame_t out;
            cr_assert_eq(tern_store_read(reader, topic.id, seq, &out), TERN_OK,
                         "acknowledged record %llu unreadable", seq);
            cr_assert_eq(out.seq, seq);
            cr_assert_eq(out.payload_size, size);
            cr_assert_eq(tern_crc32c(0, out.payload, out.payload_size), crc);
            expect = seq + 1;
            verified++;
        }
        fclose(side);
    }
    if (have_topic) {
        //  Every seq from 1 to last is there and intact: contiguous.
        cr_assert_geq(topic.last_seq + 1, expect);
        cr_assert_eq(topic.first_seq, 1);
        cr_assert_eq(topic.msgs, topic.last_seq);
        for (uint64_t seq = 1; seq <= topic.last_seq; seq++) {
            tern_frame_t out;
            cr_assert_eq(tern_store_read(reader, topic.id, seq, &out), TERN_OK);
        }
        size_t n = 0;
        uint64_t next;
        cr_assert_eq(tern_store_lane_scan(reader, topic.id, TERN_PRIORITY_DEFAULT,
                                          topic.last_seq + 1, &next, 1, &n),
                     TERN_OK);
        cr_assert_eq(n, 0);
    }
    tern_store_read_end(reader);
    tern_store_stats_t stats;
    tern_store_stats(store, &stats);
    cr_assert_eq(stats.corrupt_records, 0);
    cr_assert_eq(stats.writemap, writemap, "WRITEMAP %s", stats.writemap ? "on" : "off");
    tern_store_reader_destroy(&reader);
    tern_store_destroy(&store);
    return verified;
}

//  S_ROUNDS times: starts the writer (through the map when WRITEMAP), kills
//  it at a random moment, checks the store, reopened through the map or not
//  in turn. Returns the records verified at the end.
static uint64_t s_kill_rounds(bool writemap) {
    char writer[512];
    snprintf(writer, sizeof writer, "%s/store_crash_writer", TERN_BIN_DIR);
    cr_assert_eq(access(writer, X_OK), 0, "missing %s", writer);
    srand((unsigned)time(NULL));
    uint64_t verified = 0;
    for (int round = 0; round < S_ROUNDS; round++) {
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            execl(writer, writer, s_store_dir, s_side, writemap ? "writemap" : (char *)NULL,
                  (char *)NULL);
            _exit(127);
        }
        usleep((useconds_t)(10 + rand() % 191) * 1000);
        cr_assert_eq(kill(pid, SIGKILL), 0);
        int status = 0;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                  "writer exited by itself (status %d)", status);
        verified = s_verify(writemap && round % 2 == 0);
    }
    cr_assert_gt(verified, 0, "the writer never committed anything");
    cr_log_info("crash test: %llu acknowledged records verified after %d kills%s",
                (unsigned long long)verified, S_ROUNDS, writemap ? " (writemap)" : "");
    return verified;
}

Test(store_crash, sigkill_never_loses_acknowledged_records, .init = s_setup,
     .fini = test_store_teardown, .timeout = 120) {
    s_kill_rounds(false);
}

//  The same through a writable map (storage/writemap): the writer's pages go
//  straight into the file's pages, so a kill mid-transaction leaves them
//  there, unreferenced by any committed meta page.
Test(store_crash, sigkill_with_writemap_never_loses_acknowledged_records, .init = s_setup,
     .fini = test_store_teardown, .timeout = 120) {
    s_kill_rounds(true);
}
