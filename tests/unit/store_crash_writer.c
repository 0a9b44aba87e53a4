/*  store_crash_writer.c - helper of test_store_crash: appends batches forever.

    Usage: store_crash_writer DIR SIDEFILE [writemap]

    Opens the store in DIR (fsync durability; storage/writemap with the
    third argument) and appends batches of 1..32
    records of random size and content to topic "crash", forever. After each
    commit returns it appends one line "SEQ CRC32C SIZE\n" per committed record
    to SIDEFILE with one unbuffered write(): every line in the side file names
    a record the store acknowledged as durable. The test kills this process
    with SIGKILL at random moments and checks the store against the file.
*/
#include "tern_store.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define S_BATCH_MAX 32
#define S_SIZE_MAX  4096

static uint32_t s_rand(uint32_t *state) {
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

int main(int argc, char **argv) {
    if (argc != 3 && !(argc == 4 && strcmp(argv[3], "writemap") == 0)) {
        fprintf(stderr, "usage: %s DIR SIDEFILE [writemap]\n", argv[0]);
        return 2;
    }
    int side = open(argv[2], O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (side < 0) {
        perror("open side file");
        return 1;
    }
    tern_store_config_t config;
    tern_store_config_defaults(&config);
    config.dir = argv[1];
    config.map_initial = 1 << 20;
    config.durability = TERN_DURABILITY_FSYNC;
    config.writemap = argc == 4;
    tern_err_t err;
    tern_store_t *store = tern_store_new(&config, &err);
    if (!store) {
        fprintf(stderr, "store_crash_writer: open failed: %d\n", err);
        return 1;
    }
    tern_store_batch_t *batch = tern_store_batch_new(store);
    static uint8_t payloads[S_BATCH_MAX][S_SIZE_MAX];
    tern_frame_t msgs[S_BATCH_MAX];
    tern_append_result_t results[S_BATCH_MAX];
    uint32_t state = (uint32_t)time(NULL) ^ ((uint32_t)getpid() << 16) ^ 0x9e3779b9u;
    if (!state) {
        state = 1;
    }
    for (;;) {
        int count = 1 + (int)(s_rand(&state) % S_BATCH_MAX);
        for (int i = 0; i < count; i++) {
            size_t size = 1 + s_rand(&state) % S_SIZE_MAX;
            for (size_t b = 0; b < size; b++) {
                payloads[i][b] = (uint8_t)s_rand(&state);
            }
            memset(&msgs[i], 0, sizeof msgs[i]);
            strcpy(msgs[i].topic, "crash");
            msgs[i].priority = TERN_PRIORITY_DEFAULT;
            msgs[i].payload = payloads[i];
            msgs[i].payload_size = size;
            tern_store_batch_append(batch, &msgs[i], false, &results[i]);
        }
        if (tern_store_batch_commit(batch) != TERN_OK) {
            fprintf(stderr, "store_crash_writer: commit failed\n");
            return 1;
        }
        char lines[S_BATCH_MAX * 48];
        size_t len = 0;
        for (int i = 0; i < count; i++) {
            if (results[i].err != TERN_OK) {
                fprintf(stderr, "store_crash_writer: append failed: %d\n", results[i].err);
                return 1;
            }
            len += (size_t)snprintf(lines + len, sizeof lines - len, "%llu %u %zu\n",
                                    (unsigned long long)results[i].seq,
                                    tern_crc32c(0, msgs[i].payload, msgs[i].payload_size),
                                    msgs[i].payload_size);
        }
        if (write(side, lines, len) != (ssize_t)len) {
            perror("write side file");
            return 1;
        }
    }
}
