/*  bench_storage.c - durable append throughput of the storage engine.

    Appends 1 KiB records through tern_store_batch_append + commit (fsync
    durability unless --mode says otherwise) at batch sizes 1, 16, 256 and
    4096, and prints one RESULT line per batch size in the format of
    shared/bench/common.h, so it can run next to lmdb_bench (raw LMDB with
    MDB_APPEND) on the same disk:

      RESULT name=tern_store_sync_b256 msgs=... secs=... msgs_per_s=...
             p50_us=... p99_us=... lat=commit_txn size=1024 batch=256

    Options: --dir DIR (required; a fresh store is made in DIR/bN per batch
    size and removed after), --secs S (per batch size, default 3), --size N
    (record bytes, default 1024), --batch N (only this batch size),
    --mode sync|nometasync|nosync, --producer (each record carries producer
    "bench-producer" and a growing producer_seq, so dedup is exercised; past
    dedup_max = 1024 records every append also evicts one entry, as a
    long-lived producer does in ternd), --local (appends are local: an
    outbox entry each, as ternd's publishes), --no-outbox (config.outbox =
    false, if the store has it), --msgs N (stop after N records, for
    callgrind; default 4,000,000 or --secs, whichever comes first), --read
    (then read every record back with tern_store_read, one RESULT line).

    For A/B runs against an older store, compile this file with
    -DBENCH_OLD_STORE (no config.outbox) and link it with that store
    (docs/performance.md, "Storage layout v2").
*/
#include "tern_store.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static uint64_t s_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int s_cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static double s_pct_us(uint64_t *v, size_t n, double p) {
    size_t idx = (size_t)(p / 100.0 * (double)n);
    return (double)v[idx < n ? idx : n - 1] / 1000.0;
}

static void s_rm_store(const char *dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/lock.mdb", dir);
    unlink(path);
    rmdir(dir);
}

//  Reads seqs 1..COUNT of TOPIC_ID back through tern_store_read (CRC
//  checked), 1024 per read transaction, and prints one RESULT line.
static int s_read_all(tern_store_t *store, uint32_t topic_id, uint64_t count, size_t size) {
    tern_store_reader_t *reader = tern_store_reader_new(store);
    if (!reader) {
        return 1;
    }
    uint64_t start = s_now_ns(), bytes = 0;
    for (uint64_t seq = 1; seq <= count;) {
        if (tern_store_read_begin(reader) != TERN_OK) {
            return 1;
        }
        for (int i = 0; i < 1024 && seq <= count; i++, seq++) {
            tern_frame_t out;
            if (tern_store_read(reader, topic_id, seq, &out) != TERN_OK) {
                fprintf(stderr, "bench_storage: read of seq %llu failed\n",
                        (unsigned long long)seq);
                return 1;
            }
            bytes += out.payload_size;
        }
        tern_store_read_end(reader);
    }
    double secs = (double)(s_now_ns() - start) / 1e9;
    printf("RESULT name=tern_store_read msgs=%llu secs=%.4f msgs_per_s=%.0f size=%zu bytes=%llu\n",
           (unsigned long long)count, secs, (double)count / secs, size, (unsigned long long)bytes);
    fflush(stdout);
    tern_store_reader_destroy(&reader);
    return 0;
}

typedef struct {
    bool read;         //  read everything back afterwards
    bool producer;     //  records carry a producer id + seq
    bool local;        //  local appends (outbox entries)
    bool no_outbox;    //  config.outbox = false
    uint64_t max_msgs; //  stop after this many records
} s_opts_t;

static int s_run(const char *base, size_t batch_size, double secs, size_t size,
                 tern_durability_t mode, const char *mode_name, const s_opts_t *opts) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/b%zu", base, batch_size);
    s_rm_store(dir);
    tern_store_config_t config;
    tern_store_config_defaults(&config);
    config.dir = dir;
    config.map_initial = 1ull << 30; //  like lmdb_bench's large sparse map: no growth
    config.durability = mode;
#ifndef BENCH_OLD_STORE //  defined only to build against a v1 store for A/B runs
    config.outbox = !opts->no_outbox;
#else
    if (opts->no_outbox) {
        fprintf(stderr, "bench_storage: this store has no outbox flag\n");
        return 1;
    }
#endif
    tern_err_t err;
    tern_store_t *store = tern_store_new(&config, &err);
    if (!store) {
        fprintf(stderr, "bench_storage: open %s failed: %d\n", dir, err);
        return 1;
    }
    tern_store_batch_t *batch = tern_store_batch_new(store);
    uint8_t *payload = malloc(size);
    tern_frame_t *msgs = calloc(batch_size, sizeof *msgs);
    tern_append_result_t *results = calloc(batch_size, sizeof *results);
    size_t lat_cap = 1 << 20, lat_n = 0;
    uint64_t *lat = malloc(lat_cap * sizeof *lat);
    if (!payload || !msgs || !results || !lat) {
        return 1;
    }
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < size; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        payload[i] = (uint8_t)x;
    }
    for (size_t i = 0; i < batch_size; i++) {
        strcpy(msgs[i].topic, "bench");
        msgs[i].priority = TERN_PRIORITY_DEFAULT;
        msgs[i].payload = payload;
        msgs[i].payload_size = size;
        if (opts->producer) {
            strcpy(msgs[i].producer, "bench-producer");
        }
    }
    uint64_t msgs_done = 0, next_id = 1, next_pseq = 1;
    uint64_t start = s_now_ns(), deadline = start + (uint64_t)(secs * 1e9);
    uint64_t end = start;
    while (end < deadline && msgs_done < opts->max_msgs) {
        uint64_t t0 = s_now_ns();
        for (size_t i = 0; i < batch_size; i++) {
            msgs[i].msg_id = next_id++;
            msgs[i].timestamp_ns = t0;
            if (opts->producer) {
                msgs[i].producer_seq = next_pseq++;
            }
            tern_store_batch_append(batch, &msgs[i], opts->local, &results[i]);
        }
        if (tern_store_batch_commit(batch) != TERN_OK || results[0].err != TERN_OK ||
            results[batch_size - 1].duplicate) {
            fprintf(stderr, "bench_storage: commit failed\n");
            return 1;
        }
        end = s_now_ns();
        if (lat_n < lat_cap) {
            lat[lat_n++] = end - t0;
        }
        msgs_done += batch_size;
    }
    double elapsed = (double)(end - start) / 1e9;
    qsort(lat, lat_n, sizeof *lat, s_cmp);
    printf("RESULT name=tern_store_%s%s_b%zu msgs=%llu secs=%.4f msgs_per_s=%.0f p50_us=%.1f "
           "p99_us=%.1f lat=commit_txn size=%zu batch=%zu\n",
           mode_name, opts->producer ? "_dedup" : "", batch_size, (unsigned long long)msgs_done,
           elapsed, (double)msgs_done / elapsed, s_pct_us(lat, lat_n, 50), s_pct_us(lat, lat_n, 99),
           size, batch_size);
    fflush(stdout);
    if (opts->read && s_read_all(store, results[0].topic_id, msgs_done, size) != 0) {
        return 1;
    }
    free(lat);
    free(results);
    free(msgs);
    free(payload);
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
    s_rm_store(dir);
    return 0;
}

int main(int argc, char **argv) {
    const char *dir = NULL, *mode_name = "sync";
    double secs = 3.0;
    size_t size = 1024, only = 0;
    s_opts_t opts = {false, false, false, false, 4000000};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc) {
            dir = argv[++i];
        } else if (!strcmp(argv[i], "--secs") && i + 1 < argc) {
            secs = atof(argv[++i]);
        } else if (!strcmp(argv[i], "--size") && i + 1 < argc) {
            size = (size_t)atol(argv[++i]);
        } else if (!strcmp(argv[i], "--batch") && i + 1 < argc) {
            only = (size_t)atol(argv[++i]);
        } else if (!strcmp(argv[i], "--mode") && i + 1 < argc) {
            mode_name = argv[++i];
        } else if (!strcmp(argv[i], "--msgs") && i + 1 < argc) {
            opts.max_msgs = (uint64_t)atoll(argv[++i]);
        } else if (!strcmp(argv[i], "--read")) {
            opts.read = true;
        } else if (!strcmp(argv[i], "--producer")) {
            opts.producer = true;
        } else if (!strcmp(argv[i], "--local")) {
            opts.local = true;
        } else if (!strcmp(argv[i], "--no-outbox")) {
            opts.no_outbox = true;
        } else {
            fprintf(stderr,
                    "usage: %s --dir DIR [--secs S] [--size N] [--batch N] "
                    "[--mode sync|nometasync|nosync] [--producer] [--local] [--no-outbox] "
                    "[--msgs N] [--read]\n",
                    argv[0]);
            return 2;
        }
    }
    tern_durability_t mode = TERN_DURABILITY_FSYNC;
    if (!strcmp(mode_name, "nometasync")) {
        mode = TERN_DURABILITY_BATCH;
    } else if (!strcmp(mode_name, "nosync")) {
        mode = TERN_DURABILITY_NONE;
    } else if (strcmp(mode_name, "sync")) {
        fprintf(stderr, "unknown mode %s\n", mode_name);
        return 2;
    }
    if (!dir || size == 0) {
        fprintf(stderr, "need --dir DIR\n");
        return 2;
    }
    mkdir(dir, 0755);
    const size_t sizes[] = {1, 16, 256, 4096};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        if (only && sizes[i] != only) {
            continue;
        }
        if (s_run(dir, sizes[i], secs, size, mode, mode_name, &opts)) {
            return 1;
        }
    }
    return 0;
}
