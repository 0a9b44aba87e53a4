/*  test_store.c - unit tests of the LMDB storage engine (tern_store).

    Every test runs on a fresh temporary directory with a small map, so that
    "full" is reachable and nothing leaks between tests.
*/
#include "test_store_fixture.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

TestSuite(store, .init = test_store_setup, .fini = test_store_teardown, .timeout = 60);

static void s_msg(tern_frame_t *msg, const char *topic, const char *payload) {
    memset(msg, 0, sizeof *msg);
    msg->cmd = TERN_CMD_PUBLISH;
    msg->priority = TERN_PRIORITY_DEFAULT;
    snprintf(msg->topic, sizeof msg->topic, "%s", topic);
    msg->payload = (const uint8_t *)payload;
    msg->payload_size = strlen(payload);
}

static uint64_t s_next_id = 1000;

//  Appends one message and commits; returns its result.
static tern_append_result_t s_append(tern_store_t *store, tern_frame_t *msg) {
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_append_result_t res;
    if (!msg->msg_id) {
        msg->msg_id = s_next_id++;
    }
    tern_store_batch_append(batch, msg, true, &res);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    tern_store_batch_destroy(&batch);
    return res;
}

static tern_append_result_t s_append_text(tern_store_t *store, const char *topic,
                                          const char *payload, uint8_t priority,
                                          uint64_t expire_at_ns) {
    tern_frame_t msg;
    s_msg(&msg, topic, payload);
    msg.priority = priority;
    msg.expire_at_ns = expire_at_ns;
    msg.timestamp_ns = (uint64_t)time(NULL) * 1000000000ull;
    return s_append(store, &msg);
}

static uint64_t s_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static tern_topic_info_t s_topic(tern_store_t *store, const char *name) {
    return test_store_topic(store, name);
}

static tern_err_t s_read_status(tern_store_t *store, uint32_t topic_id, uint64_t seq) {
    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    tern_frame_t out;
    tern_err_t err = tern_store_read(reader, topic_id, seq, &out);
    tern_store_read_end(reader);
    tern_store_reader_destroy(&reader);
    return err;
}

Test(store, usage_example) {
    //  Open a store, append a message in a batch, commit, read it back.
    tern_store_config_t config;
    tern_store_config_defaults(&config);
    config.dir = test_store_dir;
    config.map_initial = 1 << 20;
    tern_err_t err;
    tern_store_t *store = tern_store_new(&config, &err);
    cr_assert_not_null(store);

    tern_frame_t msg;
    memset(&msg, 0, sizeof msg);
    strcpy(msg.topic, "orders.eu");
    msg.msg_id = 42;
    msg.priority = TERN_PRIORITY_DEFAULT;
    msg.payload = (const uint8_t *)"hello";
    msg.payload_size = 5;

    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_append_result_t result;
    tern_store_batch_append(batch, &msg, true, &result);
    cr_assert_eq(tern_store_batch_size(batch), 1);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK); //  durable now: ack the producer
    cr_assert_eq(result.err, TERN_OK);
    cr_assert_eq(result.seq, 1);
    cr_assert_eq(result.msg_id, 42);
    cr_assert_not(result.duplicate);
    cr_assert_eq(tern_store_batch_size(batch), 0);

    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    tern_frame_t out;
    cr_assert_eq(tern_store_read(reader, result.topic_id, result.seq, &out), TERN_OK);
    cr_assert_eq(out.cmd, TERN_CMD_DELIVER);
    cr_assert_str_eq(out.topic, "orders.eu");
    cr_assert_eq(out.payload_size, 5);
    cr_assert_eq(memcmp(out.payload, "hello", 5), 0); //  borrowed until read_end
    tern_store_read_end(reader);

    tern_store_reader_destroy(&reader);
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
    cr_assert_null(store);
    tern_store_destroy(&store); //  safe on NULL
}

Test(store, one_store_per_directory) {
    //  A second store on a live directory would hand out the same seqs as the
    //  first: it is refused, in this process as in another.
    tern_store_config_t config = test_store_config();
    tern_store_t *store = test_store_open(&config);
    char lock_path[128];
    snprintf(lock_path, sizeof lock_path, "%s/%s", test_store_dir, TERN_STORE_LOCK_FILE);
    cr_assert_eq(access(lock_path, F_OK), 0);
    cr_assert_eq(tern_store_lock_holder(test_store_dir), (long)getpid());
    tern_err_t err = TERN_OK;
    cr_assert_null(tern_store_new(&config, &err));
    cr_assert_eq(err, TERN_EBUSY);
    cr_assert_eq(tern_store_lock_holder(test_store_dir), (long)getpid(),
                 "the refused open kept the file");
    //  The first store still works.
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_frame_t msg;
    s_msg(&msg, "t", "x");
    tern_append_result_t result;
    tern_store_batch_append(batch, &msg, true, &result);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    tern_store_batch_destroy(&batch);
    //  A clean close releases the lock and removes the file; reopen works.
    tern_store_destroy(&store);
    cr_assert_neq(access(lock_path, F_OK), 0);
    cr_assert_eq(tern_store_lock_holder(test_store_dir), 0);
    store = test_store_open(&config);
    tern_store_destroy(&store);
    //  A lock file left by a dead holder (no flock on it) does not block.
    FILE *stale = fopen(lock_path, "w");
    cr_assert_not_null(stale);
    fputs("999999999\n", stale);
    fclose(stale);
    store = test_store_open(&config);
    cr_assert_eq(tern_store_lock_holder(test_store_dir), (long)getpid());
    tern_store_destroy(&store);
}

Test(store, config_errors) {
    tern_store_config_t config = test_store_config();
    config.dir = NULL;
    tern_err_t err = TERN_OK;
    cr_assert_null(tern_store_new(&config, &err));
    cr_assert_eq(err, TERN_ECONFIG);
    config = test_store_config();
    config.map_initial = 8 << 20;
    config.map_max = 1 << 20;
    cr_assert_null(tern_store_new(&config, &err));
    cr_assert_eq(err, TERN_ECONFIG);
    config = test_store_config();
    config.dir = "/proc/no-such/place";
    cr_assert_null(tern_store_new(&config, &err));
    cr_assert_eq(err, TERN_ESTORAGE);
    //  The system's reason comes back in errno, for the operator's message.
    char file[128];
    snprintf(file, sizeof file, "%s/file", test_store_dir);
    FILE *f = fopen(file, "w");
    cr_assert_not_null(f);
    fclose(f);
    config.dir = file;
    errno = 0;
    cr_assert_null(tern_store_new(&config, &err));
    cr_assert_eq(err, TERN_ESTORAGE);
    cr_assert_eq(errno, ENOTDIR);
    char below[160];
    snprintf(below, sizeof below, "%s/data", file);
    config.dir = below;
    errno = 0;
    cr_assert_null(tern_store_new(&config, &err));
    cr_assert_eq(errno, ENOTDIR);
    unlink(file);
}

Test(store, crc32c_known_vectors) {
    cr_assert_eq(tern_crc32c(0, "123456789", 9), 0xE3069283u);
    cr_assert_eq(tern_crc32c_sw(0, "123456789", 9), 0xE3069283u);
    uint8_t buf[1000];
    for (size_t i = 0; i < sizeof buf; i++) {
        buf[i] = (uint8_t)(i * 7 + 3);
    }
    for (size_t off = 0; off < 9; off++) {
        cr_assert_eq(tern_crc32c(0, buf + off, sizeof buf - off),
                     tern_crc32c_sw(0, buf + off, sizeof buf - off));
    }
    uint32_t whole = tern_crc32c(0, buf, sizeof buf);
    cr_assert_eq(tern_crc32c(tern_crc32c(0, buf, 300), buf + 300, 700), whole);
}

//  The three-lane sums and the copying sum against the table version, at the
//  lengths around each lane block (3 x 256, 3 x 8192) and 64 KB, from every
//  alignment.
Test(store, crc32c_lanes_and_copy) {
    size_t cap = (1u << 20) + 64;
    uint8_t *buf = malloc(cap);
    uint8_t *dst = malloc(cap);
    cr_assert(buf && dst);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < cap; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        buf[i] = (uint8_t)x;
    }
    size_t lens[] = {0,     1,     7,     8,     767,   768,   769,   775,   1536,    24575,
                     24576, 24577, 24584, 25343, 49152, 65535, 65536, 65537, 1u << 20};
    for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
        for (size_t off = 0; off < 9; off++) {
            size_t len = lens[l];
            uint32_t want = tern_crc32c_sw(0x1234, buf + off, len);
            cr_assert_eq(tern_crc32c(0x1234, buf + off, len), want, "len %zu off %zu", len, off);
            memset(dst, 0, cap);
            cr_assert_eq(tern_crc32c_copy(0x1234, dst + (8 - off), buf + off, len), want,
                         "copy len %zu off %zu", len, off);
            cr_assert_eq(memcmp(dst + (8 - off), buf + off, len), 0, "copy len %zu", len);
            cr_assert_eq(dst[8 - off + len], 0, "copy wrote past len %zu", len);
        }
    }
    free(buf);
    free(dst);
}

Test(store, round_trip_every_field) {
    tern_store_config_t config = test_store_config();
    tern_store_t *store = test_store_open(&config);
    uint8_t payload[3000];
    for (size_t i = 0; i < sizeof payload; i++) {
        payload[i] = (uint8_t)(i * 31 + 7); //  includes zero bytes
    }
    const uint8_t meta[] = {0x81, 0xa1, 'k', 0xa2, 'v', 0};
    tern_frame_t msg;
    memset(&msg, 0, sizeof msg);
    msg.cmd = TERN_CMD_PUBLISH;
    msg.fields = TERN_F_PRODUCER | TERN_F_KEY | TERN_F_TRACE | TERN_F_META;
    strcpy(msg.topic, "a.b-c_d");
    strcpy(msg.producer, "producer-1");
    strcpy(msg.key, "customer:17");
    strcpy(msg.trace_id, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    strcpy(msg.origin, "dc-west");
    msg.producer_seq = 77;
    msg.msg_id = 0x1234567890abcdefull;
    msg.timestamp_ns = 1767225600123456789ull;
    msg.expire_at_ns = 1867225600000000000ull;
    msg.priority = 9;
    msg.meta = meta;
    msg.meta_size = sizeof meta;
    msg.meta_count = 1;
    msg.payload = payload;
    msg.payload_size = sizeof payload;
    tern_append_result_t res = s_append(store, &msg);
    cr_assert_eq(res.err, TERN_OK);

    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    cr_assert_eq(tern_store_read_begin(reader), TERN_ESTATE);
    tern_frame_t out;
    cr_assert_eq(tern_store_read(reader, res.topic_id, 1, &out), TERN_OK);
    cr_assert_eq(out.cmd, TERN_CMD_DELIVER);
    cr_assert_eq(out.fields, msg.fields);
    cr_assert_str_eq(out.topic, msg.topic);
    cr_assert_str_eq(out.producer, msg.producer);
    cr_assert_str_eq(out.key, msg.key);
    cr_assert_str_eq(out.trace_id, msg.trace_id);
    cr_assert_str_eq(out.origin, msg.origin);
    cr_assert_eq(out.producer_seq, 77);
    cr_assert_eq(out.msg_id, msg.msg_id);
    cr_assert_eq(out.seq, 1);
    cr_assert_eq(out.timestamp_ns, msg.timestamp_ns);
    cr_assert_eq(out.expire_at_ns, msg.expire_at_ns);
    cr_assert_eq(out.priority, 9);
    cr_assert_eq(out.meta_size, sizeof meta);
    cr_assert_eq(out.meta_count, 1);
    cr_assert_eq(memcmp(out.meta, meta, sizeof meta), 0);
    cr_assert_eq(out.payload_size, sizeof payload);
    cr_assert_eq(memcmp(out.payload, payload, sizeof payload), 0);
    cr_assert_eq(tern_store_read(reader, res.topic_id, 2, &out), TERN_ENOTFOUND);
    cr_assert_eq(tern_store_read(reader, res.topic_id + 1, 1, &out), TERN_ENOTFOUND);

    uint32_t topic_id;
    uint64_t seq;
    cr_assert_eq(tern_store_find_msg(reader, msg.msg_id, &topic_id, &seq), TERN_OK);
    cr_assert_eq(topic_id, res.topic_id);
    cr_assert_eq(seq, 1);
    cr_assert_eq(tern_store_find_msg(reader, 5, &topic_id, &seq), TERN_ENOTFOUND);
    tern_topic_info_t info;
    cr_assert_eq(tern_store_topic_get_id(reader, res.topic_id, &info), TERN_OK);
    cr_assert_str_eq(info.name, "a.b-c_d");
    cr_assert_eq(info.msgs, 1);
    cr_assert_eq(info.bytes, sizeof payload);
    cr_assert_eq(info.first_seq, 1);
    cr_assert_eq(info.last_seq, 1);
    tern_store_read_end(reader);
    cr_assert_eq(tern_store_read(reader, res.topic_id, 1, &out), TERN_ESTATE);
    tern_store_reader_destroy(&reader);

    //  Survives a restart, and an empty payload round-trips too.
    tern_store_destroy(&store);
    store = test_store_open(&config);
    tern_frame_t empty;
    s_msg(&empty, "a.b-c_d", "");
    res = s_append(store, &empty);
    cr_assert_eq(res.err, TERN_OK);
    cr_assert_eq(res.seq, 2);
    reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    cr_assert_eq(tern_store_read(reader, res.topic_id, 1, &out), TERN_OK);
    cr_assert_eq(memcmp(out.payload, payload, sizeof payload), 0);
    cr_assert_eq(tern_store_read(reader, res.topic_id, 2, &out), TERN_OK);
    cr_assert_eq(out.payload_size, 0);
    tern_store_read_end(reader);
    tern_store_reader_destroy(&reader);
    tern_store_destroy(&store);
}

Test(store, append_rejects_bad_input) {
    tern_store_config_t config = test_store_config();
    config.max_topics = 2;
    tern_store_t *store = test_store_open(&config);
    tern_frame_t msg;
    s_msg(&msg, "", "x");
    cr_assert_eq(s_append(store, &msg).err, TERN_ETOPIC);
    s_msg(&msg, "t", "x");
    msg.priority = 10;
    cr_assert_eq(s_append(store, &msg).err, TERN_ERANGE);
    s_msg(&msg, "t", "x");
    msg.payload = NULL;
    cr_assert_eq(s_append(store, &msg).err, TERN_EINVAL);
    cr_assert_eq(s_append_text(store, "t1", "x", 4, 0).err, TERN_OK);
    cr_assert_eq(s_append_text(store, "t2", "x", 4, 0).err, TERN_OK);
    cr_assert_eq(s_append_text(store, "t3", "x", 4, 0).err, TERN_ELIMIT);
    tern_store_stats_t stats;
    tern_store_stats(store, &stats);
    cr_assert_eq(stats.topics, 2);
    tern_store_destroy(&store);
}

Test(store, dedup_by_time) {
    tern_store_config_t config = test_store_config();
    config.dedup_window_ms = 50;
    tern_store_t *store = test_store_open(&config);
    tern_frame_t msg;
    s_msg(&msg, "t", "one");
    strcpy(msg.producer, "p1");
    msg.producer_seq = 1;
    tern_append_result_t first = s_append(store, &msg);
    cr_assert_eq(first.err, TERN_OK);
    cr_assert_not(first.duplicate);

    s_msg(&msg, "t", "one again");
    strcpy(msg.producer, "p1");
    msg.producer_seq = 1;
    tern_append_result_t dup = s_append(store, &msg);
    cr_assert_eq(dup.err, TERN_OK);
    cr_assert(dup.duplicate);
    cr_assert_eq(dup.seq, first.seq);
    cr_assert_eq(dup.msg_id, first.msg_id);
    cr_assert_eq(s_topic(store, "t").msgs, 1);

    //  Another producer with the same seq is not a duplicate.
    s_msg(&msg, "t", "other");
    strcpy(msg.producer, "p2");
    msg.producer_seq = 1;
    cr_assert_not(s_append(store, &msg).duplicate);

    usleep(80 * 1000);
    s_msg(&msg, "t", "one, later");
    strcpy(msg.producer, "p1");
    msg.producer_seq = 1;
    tern_append_result_t later = s_append(store, &msg);
    cr_assert_eq(later.err, TERN_OK);
    cr_assert_not(later.duplicate);
    cr_assert_eq(later.seq, 3);

    //  The sweep drops expired entries from disk.
    usleep(80 * 1000);
    tern_store_stats_t stats;
    tern_store_stats(store, &stats);
    cr_assert_eq(stats.dedup_entries, 2);
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_store_batch_sweep(batch, s_now_ns(), 1000, NULL);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    tern_store_stats(store, &stats);
    cr_assert_eq(stats.dedup_entries, 0);
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
}

Test(store, dedup_by_count_and_in_one_batch) {
    tern_store_config_t config = test_store_config();
    config.dedup_max = 3;
    tern_store_t *store = test_store_open(&config);
    tern_frame_t msgs[6];
    tern_append_result_t res[6];
    tern_store_batch_t *batch = tern_store_batch_new(store);
    for (int i = 0; i < 5; i++) {
        s_msg(&msgs[i], "t", "m");
        strcpy(msgs[i].producer, "p");
        msgs[i].producer_seq = (uint64_t)i + 1;
        msgs[i].msg_id = 100 + (uint64_t)i;
        tern_store_batch_append(batch, &msgs[i], false, &res[i]);
    }
    //  A duplicate inside the same batch reports the first.
    s_msg(&msgs[5], "t", "m");
    strcpy(msgs[5].producer, "p");
    msgs[5].producer_seq = 5;
    msgs[5].msg_id = 200;
    tern_store_batch_append(batch, &msgs[5], false, &res[5]);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert(res[5].duplicate);
    cr_assert_eq(res[5].msg_id, 104);
    cr_assert_eq(res[5].seq, 5);
    tern_store_stats_t stats;
    tern_store_stats(store, &stats);
    cr_assert_eq(stats.dedup_entries, 3);

    //  Seqs 1 and 2 were evicted (only the last 3 are kept): not duplicates.
    tern_frame_t msg;
    s_msg(&msg, "t", "m");
    strcpy(msg.producer, "p");
    msg.producer_seq = 3;
    cr_assert(s_append(store, &msg).duplicate);
    s_msg(&msg, "t", "m");
    strcpy(msg.producer, "p");
    msg.producer_seq = 1;
    cr_assert_not(s_append(store, &msg).duplicate);
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
}

Test(store, dedup_survives_restart_and_msg_id_is_idempotent) {
    tern_store_config_t config = test_store_config();
    tern_store_t *store = test_store_open(&config);
    tern_frame_t msg;
    s_msg(&msg, "t", "m");
    strcpy(msg.producer, "p");
    msg.producer_seq = 9;
    tern_append_result_t first = s_append(store, &msg);
    tern_store_destroy(&store);

    store = test_store_open(&config);
    s_msg(&msg, "t", "m");
    strcpy(msg.producer, "p");
    msg.producer_seq = 9;
    tern_append_result_t dup = s_append(store, &msg);
    cr_assert(dup.duplicate);
    cr_assert_eq(dup.msg_id, first.msg_id);
    cr_assert_eq(dup.seq, first.seq);

    //  A replicated record applied twice (same msg_id, no producer).
    s_msg(&msg, "t", "replicated");
    msg.msg_id = 777;
    cr_assert_not(s_append(store, &msg).duplicate);
    s_msg(&msg, "t", "replicated");
    msg.msg_id = 777;
    tern_append_result_t again = s_append(store, &msg);
    cr_assert(again.duplicate);
    cr_assert_eq(again.seq, 2);
    cr_assert_eq(s_topic(store, "t").msgs, 2);
    tern_store_destroy(&store);
}

Test(store, retention_by_count_and_bytes) {
    tern_store_t *store =
        test_store_open(&(tern_store_config_t){.dir = test_store_dir, .map_initial = 1 << 20});
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_err_t err = TERN_EINTERNAL;
    uint32_t id = 0;
    tern_store_batch_topic_put(batch, "count", TERN_TOPIC_PUT, &(tern_topic_limits_t){0, 3, 0},
                               &err, &id);
    tern_store_batch_topic_put(batch, "bytes", TERN_TOPIC_PUT, &(tern_topic_limits_t){0, 0, 10},
                               NULL, NULL);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(err, TERN_OK);
    cr_assert_gt(id, 0);
    for (int i = 0; i < 5; i++) {
        s_append_text(store, "count", "abcd", 4, 0);
        s_append_text(store, "bytes", "abcd", 4, 0);
    }
    tern_topic_info_t info = s_topic(store, "count");
    cr_assert_eq(info.id, id);
    cr_assert_eq(info.msgs, 3);
    cr_assert_eq(info.first_seq, 3);
    cr_assert_eq(info.last_seq, 5);
    cr_assert_eq(info.max_msgs, 3);
    cr_assert_eq(s_read_status(store, id, 2), TERN_ENOTFOUND);
    cr_assert_eq(s_read_status(store, id, 3), TERN_OK);
    info = s_topic(store, "bytes");
    cr_assert_eq(info.msgs, 2);
    cr_assert_eq(info.bytes, 8);
    cr_assert_eq(info.first_seq, 4);
    tern_store_stats_t stats;
    tern_store_stats(store, &stats);
    cr_assert_eq(stats.retention_trimmed, 5);
    //  Changing limits keeps the id.
    uint32_t id2 = 0;
    tern_store_batch_topic_put(batch, "count", TERN_TOPIC_PUT, &(tern_topic_limits_t){0, 0, 0},
                               &err, &id2);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(id2, id);
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
}

Test(store, retention_by_age_and_ttl_sweep) {
    tern_store_config_t config = test_store_config();
    tern_store_t *store = test_store_open(&config);
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_store_batch_topic_put(batch, "aged", TERN_TOPIC_PUT, &(tern_topic_limits_t){60000, 0, 0},
                               NULL, NULL);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    uint64_t now = s_now_ns();
    tern_frame_t msg;
    for (int i = 0; i < 4; i++) {
        s_msg(&msg, "aged", "x");
        msg.timestamp_ns = now - (uint64_t)(4 - i) * 30 * 1000000000ull; //  120, 90, 60, 30 s ago
        s_append(store, &msg);
    }
    uint32_t ttl_id = s_append_text(store, "ttl", "a", 4, now - 1).topic_id;
    s_append_text(store, "ttl", "b", 4, 0);
    s_append_text(store, "ttl", "c", 4, now - 2);
    s_append_text(store, "ttl", "d", 4, now + 3600ull * 1000000000ull);

    uint64_t removed = 0;
    tern_store_batch_sweep(batch, now, 1000, &removed);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(removed, 2 + 2); //  2 expired, 2 older than 60 s
    tern_topic_info_t info = s_topic(store, "aged");
    cr_assert_eq(info.msgs, 2);
    cr_assert_eq(info.first_seq, 3);
    info = s_topic(store, "ttl");
    cr_assert_eq(info.msgs, 2);
    cr_assert_eq(info.first_seq, 2);
    cr_assert_eq(s_read_status(store, ttl_id, 1), TERN_ENOTFOUND);
    cr_assert_eq(s_read_status(store, ttl_id, 3), TERN_ENOTFOUND);
    cr_assert_eq(s_read_status(store, ttl_id, 4), TERN_OK);
    tern_store_stats_t stats;
    tern_store_stats(store, &stats);
    cr_assert_eq(stats.expired, 2);
    cr_assert_eq(stats.retention_trimmed, 2);

    //  Bounded: one at a time.
    tern_store_batch_sweep(batch, now + 7200ull * 1000000000ull, 1, &removed);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(removed, 1);
    cr_assert_eq(s_read_status(store, ttl_id, 4), TERN_ENOTFOUND);
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
}

Test(store, topic_delete_and_purge) {
    tern_store_t *store =
        test_store_open(&(tern_store_config_t){.dir = test_store_dir, .map_initial = 1 << 20});
    uint32_t id = s_append_text(store, "t", "1", 4, 0).topic_id;
    s_append_text(store, "t", "2", 4, 0);
    s_append_text(store, "u", "1", 4, 0);
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_err_t err1 = TERN_EINTERNAL, err2 = TERN_EINTERNAL;
    uint64_t removed = 0;
    tern_store_batch_group_open(batch, id, "g", TERN_START_FIRST, 0, &err1, NULL);
    tern_store_batch_topic_delete(batch, "t", true, &err2, &removed);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(err1, TERN_OK);
    cr_assert_eq(err2, TERN_OK);
    cr_assert_eq(removed, 2);
    tern_topic_info_t info = s_topic(store, "t");
    cr_assert_eq(info.msgs, 0);
    cr_assert_eq(info.first_seq, 3);
    cr_assert_eq(s_append_text(store, "t", "3", 4, 0).seq, 3); //  seqs continue

    tern_store_batch_topic_delete(batch, "t", false, &err2, &removed);
    tern_store_batch_topic_delete(batch, "nope", false, &err1, NULL);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(err2, TERN_OK);
    cr_assert_eq(err1, TERN_ENOTFOUND);
    cr_assert_eq(removed, 1);
    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    cr_assert_eq(tern_store_topic_get(reader, "t", &info), TERN_ENOTFOUND);
    cr_assert_eq(tern_store_topic_get_id(reader, id, &info), TERN_ENOTFOUND);
    tern_group_info_t group;
    cr_assert_eq(tern_store_group_get(reader, id, "g", &group), TERN_ENOTFOUND);
    tern_store_read_end(reader);
    //  Recreated: a new id, seqs from 1.
    tern_append_result_t res = s_append_text(store, "t", "again", 4, 0);
    cr_assert_neq(res.topic_id, id);
    cr_assert_eq(res.seq, 1);
    tern_store_stats_t stats;
    tern_store_stats(store, &stats);
    cr_assert_eq(stats.topics, 2);
    tern_store_reader_destroy(&reader);
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
}

static bool s_count_topic(const tern_topic_info_t *topic, void *arg) {
    (void)topic;
    (*(int *)arg)++;
    return true;
}

Test(store, topic_list_and_meta_u64) {
    tern_store_t *store =
        test_store_open(&(tern_store_config_t){.dir = test_store_dir, .map_initial = 1 << 20});
    s_append_text(store, "b", "1", 4, 0);
    s_append_text(store, "a", "1", 4, 0);
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_store_batch_set_u64(batch, "id.last_ms", 123456789);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
    store = test_store_open(&(tern_store_config_t){.dir = test_store_dir, .map_initial = 1 << 20});
    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    uint64_t value = 0;
    cr_assert_eq(tern_store_get_u64(reader, "id.last_ms", &value), TERN_OK);
    cr_assert_eq(value, 123456789);
    cr_assert_eq(tern_store_get_u64(reader, "nope", &value), TERN_ENOTFOUND);
    int n = 0;
    cr_assert_eq(tern_store_topic_list(reader, s_count_topic, &n), TERN_OK);
    cr_assert_eq(n, 2);
    tern_store_read_end(reader);
    tern_store_reader_destroy(&reader);
    tern_store_destroy(&store);
}

typedef struct {
    tern_entry_t entries[16];
    int count;
} s_entries_t;

static bool s_collect_entry(const tern_entry_t *entry, void *arg) {
    s_entries_t *list = arg;
    list->entries[list->count++] = *entry;
    return list->count < 16;
}

static tern_group_info_t s_group(tern_store_t *store, uint32_t topic_id, const char *name,
                                 s_entries_t *pending, s_entries_t *dlq) {
    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    tern_group_info_t info;
    cr_assert_eq(tern_store_group_get(reader, topic_id, name, &info), TERN_OK);
    if (pending) {
        pending->count = 0;
        cr_assert_eq(tern_store_pending_list(reader, topic_id, name, s_collect_entry, pending),
                     TERN_OK);
    }
    if (dlq) {
        dlq->count = 0;
        cr_assert_eq(tern_store_dlq_list(reader, topic_id, name, s_collect_entry, dlq), TERN_OK);
    }
    tern_store_read_end(reader);
    tern_store_reader_destroy(&reader);
    return info;
}

Test(store, group_start_modes) {
    tern_store_t *store =
        test_store_open(&(tern_store_config_t){.dir = test_store_dir, .map_initial = 1 << 20});
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_store_batch_topic_put(batch, "t", TERN_TOPIC_PUT, &(tern_topic_limits_t){0, 8, 0}, NULL,
                               NULL);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    tern_frame_t msg;
    uint32_t id = 0;
    for (int i = 1; i <= 10; i++) {
        s_msg(&msg, "t", "x");
        msg.timestamp_ns = (uint64_t)i * 1000;
        id = s_append(store, &msg).topic_id; //  keeps seqs 3..10
    }
    //  Every result starts as something the commit must overwrite.
    tern_err_t errs[6] = {TERN_EINTERNAL, TERN_EINTERNAL, TERN_EINTERNAL,
                          TERN_EINTERNAL, TERN_EINTERNAL, TERN_EINTERNAL};
    tern_store_batch_group_open(batch, id, "first", TERN_START_FIRST, 0, &errs[0], NULL);
    tern_store_batch_group_open(batch, id, "new", TERN_START_NEW, 0, &errs[1], NULL);
    tern_store_batch_group_open(batch, id, "seq", TERN_START_SEQ, 7, &errs[2], NULL);
    tern_store_batch_group_open(batch, id, "time", TERN_START_TIME, 5500, &errs[3], NULL);
    tern_store_batch_group_open(batch, id + 99, "x", TERN_START_FIRST, 0, &errs[4], NULL);
    tern_store_batch_group_open(batch, id, "late", TERN_START_TIME, 99999, &errs[5], NULL);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(errs[0], TERN_OK);
    cr_assert_eq(errs[1], TERN_OK);
    cr_assert_eq(errs[2], TERN_OK);
    cr_assert_eq(errs[3], TERN_OK);
    cr_assert_eq(errs[4], TERN_ENOTFOUND);
    cr_assert_eq(errs[5], TERN_OK);
    cr_assert_eq(s_group(store, id, "first", NULL, NULL).lane_next[4], 3);
    cr_assert_eq(s_group(store, id, "first", NULL, NULL).next_unacked, 3);
    cr_assert_eq(s_group(store, id, "new", NULL, NULL).lane_next[0], 11);
    cr_assert_eq(s_group(store, id, "new", NULL, NULL).next_unacked, 11);
    cr_assert_eq(s_group(store, id, "seq", NULL, NULL).lane_next[9], 7);
    cr_assert_eq(s_group(store, id, "time", NULL, NULL).lane_next[4], 6);
    cr_assert_eq(s_group(store, id, "late", NULL, NULL).lane_next[4], 11);

    //  Re-opening leaves the group as is.
    errs[0] = TERN_EINTERNAL;
    tern_store_batch_group_open(batch, id, "seq", TERN_START_SEQ, 2, &errs[0], NULL);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(errs[0], TERN_OK);
    cr_assert_eq(s_group(store, id, "seq", NULL, NULL).lane_next[9], 7);
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
}

Test(store, group_deliver_ack_nack_dead_replay) {
    tern_store_t *store =
        test_store_open(&(tern_store_config_t){.dir = test_store_dir, .map_initial = 1 << 20});
    uint32_t id = 0;
    for (int i = 0; i < 5; i++) {
        id = s_append_text(store, "t", "x", 4, 0).topic_id;
    }
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_store_batch_group_open(batch, id, "g", TERN_START_FIRST, 0, NULL, NULL);
    for (uint64_t seq = 1; seq <= 4; seq++) {
        tern_store_batch_deliver(batch, id, "g", seq, &(tern_delivery_t){4, 1, 1000 + seq, NULL});
    }
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    s_entries_t pending, dlq;
    tern_group_info_t g = s_group(store, id, "g", &pending, &dlq);
    cr_assert_eq(g.pending, 4);
    cr_assert_eq(g.delivered, 4);
    cr_assert_eq(g.lane_next[4], 5);
    cr_assert_eq(g.next_unacked, 1);
    cr_assert_eq(g.ack_floor, 0); //  nothing settled yet
    cr_assert_eq(pending.count, 4);
    cr_assert_eq(pending.entries[0].seq, 1);
    cr_assert_eq(pending.entries[0].due_ms, 1001);
    cr_assert_eq(pending.entries[0].delivery_count, 1);
    cr_assert_eq(pending.entries[0].priority, 4);

    tern_store_batch_ack(batch, id, "g", 1, TERN_TRACE_ACKED);
    tern_store_batch_ack(batch, id, "g", 3, TERN_TRACE_ACKED);
    tern_store_batch_ack(batch, id, "g", 99, TERN_TRACE_ACKED); //  unknown: no error, no count
    tern_store_batch_nack(batch, id, "g", 2, 5000, TERN_TRACE_NACKED);
    tern_store_batch_deliver(batch, id, "g", 2,
                             &(tern_delivery_t){4, 2, 6000, NULL}); //  redelivery
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    g = s_group(store, id, "g", &pending, &dlq);
    cr_assert_eq(g.acked, 2);
    cr_assert_eq(g.nacked, 1);
    cr_assert_eq(g.delivered, 5, "every delivery counts, the redelivery too");
    cr_assert_eq(g.redelivered, 1);
    cr_assert_eq(g.pending, 2);
    cr_assert_eq(g.next_unacked, 2);
    cr_assert_eq(g.ack_floor, 1); //  3 is acked too, but 2 is not
    cr_assert_eq(pending.count, 2);
    cr_assert_eq(pending.entries[0].seq, 2);
    cr_assert_eq(pending.entries[0].due_ms, 6000);
    cr_assert_eq(pending.entries[0].delivery_count, 2);

    tern_store_batch_dead(batch, id, "g", 2, 5, "max deliveries");
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    g = s_group(store, id, "g", &pending, &dlq);
    cr_assert_eq(g.dead, 1);
    cr_assert_eq(g.pending, 1);
    cr_assert_eq(g.next_unacked, 4); //  dead seqs do not hold the floor
    cr_assert_eq(dlq.count, 1);
    cr_assert_eq(dlq.entries[0].seq, 2);
    cr_assert_eq(dlq.entries[0].delivery_count, 5);
    cr_assert_str_eq(dlq.entries[0].reason, "max deliveries");

    tern_store_batch_ack(batch, id, "g", 4, TERN_TRACE_ACKED);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(s_group(store, id, "g", NULL, NULL).next_unacked, 5); //  seq 5 undelivered

    uint64_t moved = 0;
    tern_store_batch_dlq_replay(batch, id, "g", 0, 7000, NULL, &moved);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(moved, 1);
    g = s_group(store, id, "g", &pending, &dlq);
    cr_assert_eq(g.dead, 0);
    cr_assert_eq(g.pending, 1);
    cr_assert_eq(g.next_unacked, 2);
    cr_assert_eq(dlq.count, 0);
    cr_assert_eq(pending.entries[0].seq, 2);
    cr_assert_eq(pending.entries[0].delivery_count, 0);
    cr_assert_eq(pending.entries[0].due_ms, 7000);

    tern_err_t err = TERN_EINTERNAL;
    tern_store_batch_group_delete(batch, id, "g", &err);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(err, TERN_OK);
    tern_store_batch_group_delete(batch, id, "g", &err);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(err, TERN_ENOTFOUND);
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
}

static bool s_count_group(const tern_group_info_t *group, void *arg) {
    (void)group;
    (*(int *)arg)++;
    return true;
}

Test(store, priority_lanes) {
    tern_store_t *store =
        test_store_open(&(tern_store_config_t){.dir = test_store_dir, .map_initial = 1 << 20});
    const uint8_t prios[] = {4, 9, 0, 9, 4, 1};
    uint32_t id = 0;
    for (size_t i = 0; i < sizeof prios; i++) {
        id = s_append_text(store, "t", "x", prios[i], 0).topic_id;
    }
    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    //  Highest priority first, FIFO within a lane.
    uint64_t order[8];
    size_t total = 0;
    for (int lane = TERN_PRIORITY_MAX; lane >= 0; lane--) {
        size_t n = 0;
        cr_assert_eq(
            tern_store_lane_scan(reader, id, (uint8_t)lane, 1, order + total, 8 - total, &n),
            TERN_OK);
        total += n;
    }
    cr_assert_eq(total, 6);
    const uint64_t expect[] = {2, 4, 1, 5, 6, 3};
    for (size_t i = 0; i < 6; i++) {
        cr_assert_eq(order[i], expect[i]);
    }
    size_t n = 0;
    cr_assert_eq(tern_store_lane_scan(reader, id, 9, 3, order, 8, &n), TERN_OK);
    cr_assert_eq(n, 1);
    cr_assert_eq(order[0], 4);
    cr_assert_eq(tern_store_lane_scan(reader, id, 10, 1, order, 8, &n), TERN_ERANGE);
    tern_store_read_end(reader);

    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_store_batch_group_open(batch, id, "g1", TERN_START_FIRST, 0, NULL, NULL);
    tern_store_batch_group_open(batch, id, "g2", TERN_START_FIRST, 0, NULL, NULL);
    //  The floor follows the lowest lane with something left.
    tern_store_batch_deliver(batch, id, "g1", 2, &(tern_delivery_t){9, 1, 0, NULL});
    tern_store_batch_deliver(batch, id, "g1", 4, &(tern_delivery_t){9, 1, 0, NULL});
    tern_store_batch_ack(batch, id, "g1", 2, TERN_TRACE_ACKED);
    tern_store_batch_ack(batch, id, "g1", 4, TERN_TRACE_ACKED);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(s_group(store, id, "g1", NULL, NULL).next_unacked, 1);
    tern_store_batch_deliver(batch, id, "g1", 1, &(tern_delivery_t){4, 1, 0, NULL});
    tern_store_batch_deliver(batch, id, "g1", 5, &(tern_delivery_t){4, 1, 0, NULL});
    tern_store_batch_ack(batch, id, "g1", 1, TERN_TRACE_ACKED);
    tern_store_batch_ack(batch, id, "g1", 5, TERN_TRACE_ACKED);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(s_group(store, id, "g1", NULL, NULL).next_unacked, 3);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    int groups = 0;
    cr_assert_eq(tern_store_group_list(reader, id, s_count_group, &groups), TERN_OK);
    cr_assert_eq(groups, 2);
    groups = 0;
    cr_assert_eq(tern_store_group_list(reader, 0, s_count_group, &groups), TERN_OK);
    cr_assert_eq(groups, 2);
    tern_store_read_end(reader);
    tern_store_reader_destroy(&reader);
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
}

typedef struct {
    tern_outbox_entry_t entries[8];
    int count;
} s_outbox_t;

static bool s_collect_outbox(const tern_outbox_entry_t *entry, void *arg) {
    s_outbox_t *list = arg;
    list->entries[list->count++] = *entry;
    return list->count < 8;
}

Test(store, outbox_and_inbound) {
    tern_store_config_t config = test_store_config();
    config.outbox_retention_ms = 1000;
    tern_store_t *store = test_store_open(&config);
    tern_frame_t msgs[3];
    tern_store_batch_t *batch = tern_store_batch_new(store);
    for (int i = 0; i < 3; i++) {
        s_msg(&msgs[i], "t", "x");
        msgs[i].msg_id = 500 + (uint64_t)i;
        tern_store_batch_append(batch, &msgs[i], i != 1, NULL); //  #1 came from a peer
    }
    tern_store_batch_inbound(batch, "dc-east", 41);
    tern_store_batch_ackstate(batch, 1, "g", 1, 500, TERN_CMD_ACK, NULL);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);

    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    uint64_t last = 0, pos = 99;
    cr_assert_eq(tern_store_outbox_last(reader, &last), TERN_OK);
    cr_assert_eq(last, 3);
    cr_assert_eq(tern_store_inbound_get(reader, "dc-east", &pos), TERN_OK);
    cr_assert_eq(pos, 41);
    cr_assert_eq(tern_store_inbound_get(reader, "dc-none", &pos), TERN_OK);
    cr_assert_eq(pos, 0);
    s_outbox_t out = {.count = 0};
    cr_assert_eq(tern_store_outbox_read(reader, 1, 10, s_collect_outbox, &out), TERN_OK);
    cr_assert_eq(out.count, 3);
    cr_assert_eq(out.entries[0].position, 1);
    cr_assert_eq(out.entries[0].msg_id, 500);
    cr_assert_eq(out.entries[0].seq, 1);
    cr_assert_not(out.entries[0].is_ackstate);
    cr_assert_eq(out.entries[1].position, 2);
    cr_assert_eq(out.entries[1].msg_id, 502);
    cr_assert_eq(out.entries[1].seq, 3);
    cr_assert(out.entries[2].is_ackstate);
    cr_assert_str_eq(out.entries[2].group, "g");
    cr_assert_eq(out.entries[2].op, TERN_CMD_ACK);
    out.count = 0;
    cr_assert_eq(tern_store_outbox_read(reader, 2, 1, s_collect_outbox, &out), TERN_OK);
    cr_assert_eq(out.count, 1);
    cr_assert_eq(out.entries[0].position, 2);
    tern_store_read_end(reader);

    //  Confirmations only move forward; confirmed entries are swept first.
    tern_store_batch_outbox_confirm(batch, "dc-east", 2);
    tern_store_batch_outbox_confirm(batch, "dc-east", 1);
    tern_store_batch_sweep(batch, s_now_ns(), 100, NULL);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    cr_assert_eq(tern_store_outbox_confirmed(reader, "dc-east", &pos), TERN_OK);
    cr_assert_eq(pos, 2);
    out.count = 0;
    cr_assert_eq(tern_store_outbox_read(reader, 0, 10, s_collect_outbox, &out), TERN_OK);
    cr_assert_eq(out.count, 1);
    cr_assert_eq(out.entries[0].position, 3);
    tern_store_read_end(reader);

    //  Past retention, the unconfirmed entry is dropped and counted.
    tern_store_batch_sweep(batch, s_now_ns() + 2000000000ull, 100, NULL);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    tern_store_stats_t stats;
    tern_store_stats(store, &stats);
    cr_assert_eq(stats.outbox_dropped, 1);
    tern_store_reader_destroy(&reader);
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);

    //  Positions are never reused, even with an empty outbox after restart.
    store = test_store_open(&config);
    s_append_text(store, "t", "y", 4, 0);
    reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    cr_assert_eq(tern_store_outbox_last(reader, &last), TERN_OK);
    cr_assert_eq(last, 4);
    tern_store_read_end(reader);
    tern_store_reader_destroy(&reader);
    tern_store_destroy(&store);
}

Test(store, map_grows) {
    tern_store_config_t config = test_store_config();
    config.map_initial = 1 << 20;
    config.map_max = 64 << 20;
    tern_store_t *store = test_store_open(&config);
    static uint8_t payload[10240];
    memset(payload, 'g', sizeof payload);
    tern_store_reader_t *reader = tern_store_reader_new(store);
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_frame_t msgs[64];
    tern_append_result_t res[64];
    for (int round = 0; round < 16; round++) { //  16 x 64 x 10 KiB = 10 MiB
        for (int i = 0; i < 64; i++) {
            memset(&msgs[i], 0, sizeof msgs[i]);
            strcpy(msgs[i].topic, "big");
            msgs[i].payload = payload;
            msgs[i].payload_size = sizeof payload;
            tern_store_batch_append(batch, &msgs[i], false, &res[i]);
        }
        cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
        for (int i = 0; i < 64; i++) {
            cr_assert_eq(res[i].err, TERN_OK);
        }
        //  A reader between commits (not across one) works through growth.
        cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
        tern_frame_t out;
        cr_assert_eq(tern_store_read(reader, res[0].topic_id, res[63].seq, &out), TERN_OK);
        cr_assert_eq(out.payload_size, sizeof payload);
        tern_store_read_end(reader);
    }
    tern_store_stats_t stats;
    tern_store_stats(store, &stats);
    cr_assert_geq(stats.map_grows, 4);
    cr_assert_geq(stats.map_size, 16 << 20);
    cr_assert_leq(stats.map_size, 64 << 20);
    cr_assert_gt(stats.map_used, 10 << 20);
    cr_assert_eq(stats.commits, 16);
    tern_store_reader_destroy(&reader);
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
}

//  A batch larger than the space left stores its earliest appends that fit;
//  only the rest get TERN_EFULL, and exactly the stored ones are in the log.
Test(store, storage_full_keeps_the_batch_prefix_that_fits) {
    tern_store_config_t config = test_store_config();
    config.map_initial = 1 << 20;
    config.map_max = 1 << 20;
    tern_store_t *store = test_store_open(&config);
    static uint8_t payload[10000];
    memset(payload, 'p', sizeof payload);
    enum { N = 200 };
    static tern_frame_t msgs[N];
    static tern_append_result_t res[N];
    tern_store_batch_t *batch = tern_store_batch_new(store);
    for (int i = 0; i < N; i++) {
        memset(&msgs[i], 0, sizeof msgs[i]);
        strcpy(msgs[i].topic, "prefix");
        msgs[i].payload = payload;
        msgs[i].payload_size = sizeof payload;
        tern_store_batch_append(batch, &msgs[i], false, &res[i]);
    }
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    int stored = 0;
    while (stored < N && res[stored].err == TERN_OK) {
        cr_assert_eq(res[stored].seq, (uint64_t)stored + 1);
        stored++;
    }
    cr_assert_gt(stored, 0, "nothing of a 2 MB batch fit into a 1 MiB map");
    cr_assert_lt(stored, N);
    for (int i = stored; i < N; i++) {
        cr_assert_eq(res[i].err, TERN_EFULL, "append %d after the stored prefix: %d", i,
                     (int)res[i].err);
    }
    tern_topic_info_t info;
    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    cr_assert_eq(tern_store_topic_get(reader, "prefix", &info), TERN_OK);
    tern_store_read_end(reader);
    tern_store_reader_destroy(&reader);
    cr_assert_eq(info.msgs, (uint64_t)stored);
    tern_store_stats_t stats;
    tern_store_stats(store, &stats);
    cr_assert_eq(stats.full_errors, 1);
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
}

Test(store, storage_full) {
    tern_store_config_t config = test_store_config();
    config.map_initial = 1 << 20;
    config.map_max = 2 << 20;
    tern_store_t *store = test_store_open(&config);
    static uint8_t payload[4000];
    memset(payload, 'f', sizeof payload);
    tern_frame_t msg;
    memset(&msg, 0, sizeof msg);
    strcpy(msg.topic, "filler");
    msg.payload = payload;
    msg.payload_size = sizeof payload;
    uint32_t keep = s_append_text(store, "keep", "k", 4, 0).topic_id;
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_store_batch_group_open(batch, keep, "g", TERN_START_FIRST, 0, NULL, NULL);
    tern_store_batch_deliver(batch, keep, "g", 1, &(tern_delivery_t){4, 1, 0, NULL});
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);

    tern_append_result_t res;
    int stored = 0;
    for (int i = 0; i < 2000; i++) {
        tern_store_batch_append(batch, &msg, false, &res);
        cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
        if (res.err == TERN_EFULL) {
            break;
        }
        cr_assert_eq(res.err, TERN_OK);
        stored++;
    }
    cr_assert_eq(res.err, TERN_EFULL);
    cr_assert_gt(stored, 100);

    //  Appends fail while the ack in the same batch commits.
    tern_store_batch_append(batch, &msg, false, &res);
    tern_store_batch_ack(batch, keep, "g", 1, TERN_TRACE_ACKED);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(res.err, TERN_EFULL);
    tern_group_info_t g = s_group(store, keep, "g", NULL, NULL);
    cr_assert_eq(g.pending, 0);
    cr_assert_eq(g.acked, 1);
    tern_store_stats_t stats;
    tern_store_stats(store, &stats);
    cr_assert_geq(stats.full_errors, 2);
    cr_assert_leq(stats.map_size, 2 << 20);

    //  Deleting the topic frees space: appends work again.
    tern_err_t err = TERN_EINTERNAL;
    uint64_t removed = 0;
    tern_store_batch_topic_delete(batch, "filler", false, &err, &removed);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(err, TERN_OK);
    cr_assert_eq(removed, (uint64_t)stored);
    //  Its data goes in steps, at the sweeps that follow (tern_store_reap.c).
    do {
        tern_store_batch_sweep(batch, s_now_ns(), 10000, NULL);
        cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    } while (tern_store_sweep_more(store));
    for (int i = 0; i < 50; i++) {
        tern_store_batch_append(batch, &msg, false, &res);
        cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
        cr_assert_eq(res.err, TERN_OK);
    }
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
}

Test(store, crc_mismatch_is_detected) {
    tern_store_config_t config = test_store_config();
    tern_store_t *store = test_store_open(&config);
    const char *marker = "UNIQUE-MARKER-7c1f0e-payload-bytes";
    uint32_t id = s_append_text(store, "t", "before", 4, 0).topic_id;
    s_append_text(store, "t", marker, 4, 0);
    s_append_text(store, "t", "after", 4, 0);
    tern_store_destroy(&store);

    //  Flip one payload byte inside data.mdb (in every copy: LMDB's
    //  copy-on-write leaves older versions of the page in free pages).
    char path[128];
    snprintf(path, sizeof path, "%s/data.mdb", test_store_dir);
    int fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0);
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    uint8_t *map = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    cr_assert_neq(map, MAP_FAILED);
    size_t mlen = strlen(marker), hits = 0;
    for (uint8_t *at = map; at + mlen <= map + st.st_size; at++) {
        at = memmem(at, (size_t)(map + st.st_size - at), marker, mlen);
        if (!at) {
            break;
        }
        at[10] ^= 0x01;
        hits++;
    }
    cr_assert_geq(hits, 1);
    cr_assert_eq(msync(map, (size_t)st.st_size, MS_SYNC), 0);
    munmap(map, (size_t)st.st_size);
    close(fd);

    store = test_store_open(&config);
    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    tern_frame_t out;
    cr_assert_eq(tern_store_read(reader, id, 1, &out), TERN_OK);
    cr_assert_eq(tern_store_read(reader, id, 2, &out), TERN_ECORRUPT);
    cr_assert_eq(tern_store_read(reader, id, 3, &out), TERN_OK);
    tern_store_read_end(reader);
    tern_store_stats_t stats;
    tern_store_stats(store, &stats);
    cr_assert_eq(stats.corrupt_records, 1);
    tern_store_reader_destroy(&reader);
    tern_store_destroy(&store);
}

typedef struct {
    tern_store_t *store; //  the store
    uint32_t topic_id;   //  topic to read
    atomic_bool stop;    //  set by the writer
    atomic_ulong reads;  //  successful reads
    uint64_t errors;     //  reads that failed other than ENOTFOUND
} s_reader_arg_t;

static void *s_reader_thread(void *arg_) {
    s_reader_arg_t *arg = arg_;
    tern_store_reader_t *reader = tern_store_reader_new(arg->store);
    uint64_t seq = 1;
    while (!atomic_load(&arg->stop)) {
        if (tern_store_read_begin(reader) != TERN_OK) {
            arg->errors++;
            continue;
        }
        tern_frame_t out;
        tern_err_t err = tern_store_read(reader, arg->topic_id, seq, &out);
        if (err == TERN_OK) {
            atomic_fetch_add(&arg->reads, 1);
            if (out.payload_size != 10240 || out.payload[0] != 'r' || out.payload[10239] != 'r') {
                arg->errors++;
            }
            seq++;
        } else if (err != TERN_ENOTFOUND) {
            arg->errors++;
        }
        tern_store_read_end(reader);
    }
    tern_store_reader_destroy(&reader);
    return NULL;
}

Test(store, readers_run_while_the_map_grows) {
    tern_store_config_t config = test_store_config();
    config.map_initial = 1 << 20;
    tern_store_t *store = test_store_open(&config);
    static uint8_t payload[10240];
    memset(payload, 'r', sizeof payload);
    tern_frame_t msg;
    memset(&msg, 0, sizeof msg);
    strcpy(msg.topic, "grow");
    msg.payload = payload;
    msg.payload_size = sizeof payload;
    uint32_t topic_id = s_append(store, &msg).topic_id;
    msg.msg_id = 0; //  no msg_id: the same frame can be appended again
    pthread_t threads[2];
    s_reader_arg_t args[2];
    for (int i = 0; i < 2; i++) {
        memset(&args[i], 0, sizeof args[i]);
        args[i].store = store;
        args[i].topic_id = topic_id;
        atomic_init(&args[i].stop, false);
        atomic_init(&args[i].reads, 0);
        cr_assert_eq(pthread_create(&threads[i], NULL, s_reader_thread, &args[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        while (atomic_load(&args[i].reads) == 0) {
            usleep(1000);
        }
    }
    tern_store_batch_t *batch = tern_store_batch_new(store);
    for (int round = 0; round < 64; round++) { //  64 x 16 x 10 KiB = 10 MiB
        for (int i = 0; i < 16; i++) {
            tern_store_batch_append(batch, &msg, false, NULL);
        }
        cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
        usleep(500);
    }
    //  Each reader reads every message once, intact, then stops.
    for (int i = 0; i < 2; i++) {
        for (int wait = 0; wait < 5000 && atomic_load(&args[i].reads) < 1 + 64 * 16; wait++) {
            usleep(1000);
        }
        atomic_store(&args[i].stop, true);
        pthread_join(threads[i], NULL);
        cr_assert_eq(args[i].errors, 0);
        cr_assert_eq(atomic_load(&args[i].reads), 1 + 64 * 16, "reader %d read %lu", i,
                     (unsigned long)atomic_load(&args[i].reads));
    }
    tern_store_stats_t stats;
    tern_store_stats(store, &stats);
    cr_assert_geq(stats.map_grows, 3);
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
}

Test(store, garbage_file_is_corrupt) {
    char path[128];
    snprintf(path, sizeof path, "%s/data.mdb", test_store_dir);
    FILE *file = fopen(path, "wb");
    cr_assert_not_null(file);
    uint8_t junk[16384];
    for (size_t i = 0; i < sizeof junk; i++) {
        junk[i] = (uint8_t)(i * 131 + 17);
    }
    cr_assert_eq(fwrite(junk, 1, sizeof junk, file), sizeof junk);
    fclose(file);
    tern_store_config_t config = test_store_config();
    tern_err_t err = TERN_OK;
    cr_assert_null(tern_store_new(&config, &err));
    cr_assert_eq(err, TERN_ECORRUPT);
}

Test(store, stats_and_reader_check) {
    tern_store_config_t config = test_store_config();
    tern_store_t *store = test_store_open(&config);
    cr_assert_eq(tern_store_reader_check(store), 0);
    s_append_text(store, "a", "x", 4, 0);
    s_append_text(store, "b", "x", 4, 0);
    tern_store_stats_t stats;
    tern_store_stats(store, &stats);
    cr_assert_eq(stats.topics, 2);
    cr_assert_eq(stats.commits, 2);
    cr_assert_eq(stats.map_size, 1 << 20);
    cr_assert_gt(stats.map_used, 0);
    cr_assert_gt(stats.file_bytes, 0);
    cr_assert_eq(stats.corrupt_records, 0);
    //  An empty batch commits nothing.
    tern_store_batch_t *batch = tern_store_batch_new(store);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    tern_store_stats(store, &stats);
    cr_assert_eq(stats.commits, 2);
    tern_store_batch_destroy(&batch);
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
    //  Counters that live on disk come back after a restart.
    store = test_store_open(&config);
    tern_store_stats(store, &stats);
    cr_assert_eq(stats.topics, 2);
    tern_store_destroy(&store);
}

/* ------------------------------------------------------------------------
    Store format 2: dedup with per-commit producer counts, the log keyed by
    (topic, seq), the outbox switch and the format marker.
   ------------------------------------------------------------------------ */

//  Queues an append by PRODUCER/PSEQ into BATCH (MSG and RES must outlive
//  the commit).
static void s_queue_produced(tern_store_batch_t *batch, tern_frame_t *msg,
                             tern_append_result_t *res, const char *producer, uint64_t pseq) {
    s_msg(msg, "t", "m");
    strcpy(msg->producer, producer);
    msg->producer_seq = pseq;
    msg->msg_id = s_next_id++;
    tern_store_batch_append(batch, msg, false, res);
}

//  Appends PRODUCER/PSEQ in a batch of its own; returns the result.
static tern_append_result_t s_produce(tern_store_t *store, const char *producer, uint64_t pseq) {
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_frame_t msg;
    tern_append_result_t res;
    s_queue_produced(batch, &msg, &res, producer, pseq);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(res.err, TERN_OK);
    tern_store_batch_destroy(&batch);
    return res;
}

static uint64_t s_dedup_entries(tern_store_t *store) {
    tern_store_stats_t stats;
    tern_store_stats(store, &stats);
    return stats.dedup_entries;
}

Test(store, dedup_count_bound_across_commits_and_reopen) {
    tern_store_config_t config = test_store_config();
    config.dedup_max = 4;
    tern_store_t *store = test_store_open(&config);
    //  Commit 1: seqs 1..3; commit 2: seqs 4..6 -> 6 > 4: 1 and 2 evicted.
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_frame_t msgs[10];
    tern_append_result_t res[10];
    for (int i = 0; i < 3; i++) {
        s_queue_produced(batch, &msgs[i], &res[i], "p", (uint64_t)i + 1);
    }
    //  Another producer in the same batches keeps its own count.
    s_queue_produced(batch, &msgs[3], &res[3], "q", 1);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(s_dedup_entries(store), 4);
    for (int i = 0; i < 3; i++) {
        s_queue_produced(batch, &msgs[i], &res[i], "p", (uint64_t)i + 4);
    }
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(s_dedup_entries(store), 5); //  p: 3..6, q: 1
    tern_store_destroy(&store);

    //  The count survived the restart: two more entries evict exactly two.
    store = test_store_open(&config);
    cr_assert_eq(s_dedup_entries(store), 5);
    tern_store_batch_destroy(&batch);
    batch = tern_store_batch_new(store);
    for (int i = 0; i < 2; i++) {
        s_queue_produced(batch, &msgs[i], &res[i], "p", (uint64_t)i + 7);
    }
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(s_dedup_entries(store), 5); //  p: 5..8, q: 1
    //  5..8 are remembered, 3 and 4 were evicted (the lowest seqs).
    tern_append_result_t dup = s_produce(store, "p", 5);
    cr_assert(dup.duplicate);
    cr_assert_eq(dup.seq, 6); //  seq 1-3: p1..p3, 4: q1, 5: p4, 6: p5
    cr_assert(s_produce(store, "q", 1).duplicate);
    //  A late retry of an evicted seq is stored, and is itself the lowest
    //  seq then, so the bound evicts it again at once; 5..8 stay.
    cr_assert_not(s_produce(store, "p", 4).duplicate);
    cr_assert_not(s_produce(store, "p", 4).duplicate);
    cr_assert(s_produce(store, "p", 5).duplicate);

    //  More than dedup_max in one batch: the bound holds after the commit.
    for (int i = 0; i < 10; i++) {
        s_queue_produced(batch, &msgs[i], &res[i], "r", (uint64_t)i + 1);
    }
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(res[i].err, TERN_OK);
        cr_assert_not(res[i].duplicate);
    }
    cr_assert_eq(s_dedup_entries(store), 4 + 4 + 1); //  p, r, q
    cr_assert(s_produce(store, "r", 10).duplicate);
    cr_assert(s_produce(store, "r", 7).duplicate);
    cr_assert_not(s_produce(store, "r", 6).duplicate);
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
}

static uint64_t s_sweep(tern_store_t *store, uint32_t max) {
    uint64_t before = s_dedup_entries(store);
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_store_batch_sweep(batch, s_now_ns(), max, NULL);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    tern_store_batch_destroy(&batch);
    return before - s_dedup_entries(store);
}

Test(store, dedup_window_sweep_is_bounded_and_resumes) {
    tern_store_config_t config = test_store_config();
    config.dedup_window_ms = 300;
    tern_store_t *store = test_store_open(&config);
    //  a, b, c: three entries each that will expire.
    const char *old[] = {"a", "b", "c"};
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_frame_t msgs[9];
    tern_append_result_t res[9];
    for (int p = 0; p < 3; p++) {
        for (int i = 0; i < 3; i++) {
            s_queue_produced(batch, &msgs[p * 3 + i], &res[p * 3 + i], old[p], (uint64_t)i + 1);
        }
    }
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    usleep(400 * 1000);
    //  Fresh entries: a 4..5, c 4..5, d 1..2 (b has none).
    const char *fresh[] = {"a", "c", "d"};
    for (int p = 0; p < 3; p++) {
        for (int i = 0; i < 2; i++) {
            uint64_t pseq = p == 2 ? (uint64_t)i + 1 : (uint64_t)i + 4;
            s_queue_produced(batch, &msgs[p * 2 + i], &res[p * 2 + i], fresh[p], pseq);
        }
    }
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(s_dedup_entries(store), 15);

    //  Budget 4: a's three and b's first; the next sweep resumes inside b,
    //  then c's first two; then c's last; then nothing is left to remove.
    cr_assert_eq(s_sweep(store, 4), 4);
    cr_assert_eq(s_sweep(store, 4), 4);
    cr_assert_eq(s_sweep(store, 4), 1);
    cr_assert_eq(s_sweep(store, 4), 0);
    cr_assert_eq(s_dedup_entries(store), 6);

    //  The fresh ones are still duplicates; the expired ones are gone.
    cr_assert(s_produce(store, "a", 5).duplicate);
    cr_assert(s_produce(store, "c", 4).duplicate);
    cr_assert(s_produce(store, "d", 1).duplicate);
    cr_assert_not(s_produce(store, "a", 1).duplicate);
    cr_assert_not(s_produce(store, "b", 3).duplicate);
    cr_assert_eq(s_dedup_entries(store), 8);

    //  A single large sweep after the window removes everything, and a
    //  producer without entries is forgotten (a new entry starts at 1).
    usleep(400 * 1000);
    cr_assert_eq(s_sweep(store, 1000), 8);
    cr_assert_eq(s_dedup_entries(store), 0);
    cr_assert_not(s_produce(store, "b", 3).duplicate);
    cr_assert_eq(s_dedup_entries(store), 1);
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
}

static uint64_t s_outbox_last(tern_store_t *store) {
    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    uint64_t last = 99;
    cr_assert_eq(tern_store_outbox_last(reader, &last), TERN_OK);
    s_outbox_t out = {.count = 0};
    cr_assert_eq(tern_store_outbox_read(reader, 0, 10, s_collect_outbox, &out), TERN_OK);
    cr_assert_eq(out.count, last); //  nothing swept in these tests
    tern_store_read_end(reader);
    tern_store_reader_destroy(&reader);
    return last;
}

Test(store, outbox_off_writes_no_outbox_entries) {
    tern_store_config_t defaults;
    tern_store_config_defaults(&defaults);
    cr_assert(defaults.outbox);
    tern_store_config_t config = test_store_config();
    config.outbox = false;
    tern_store_t *store = test_store_open(&config);
    tern_append_result_t res = s_append_text(store, "t", "local", 4, 0);
    cr_assert_eq(res.err, TERN_OK);
    cr_assert_eq(s_outbox_last(store), 0);
    //  The message is stored and readable; its history says "not shipped".
    cr_assert_eq(s_read_status(store, res.topic_id, res.seq), TERN_OK);
    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    uint64_t position = 99;
    cr_assert_eq(tern_store_trace_outbox(reader, res.msg_id, &position), TERN_OK);
    cr_assert_eq(position, 0);
    tern_store_read_end(reader);
    //  Explicit ack-state entries are still written.
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_store_batch_ackstate(batch, res.topic_id, "g", res.seq, res.msg_id, TERN_CMD_ACK, NULL);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(s_outbox_last(store), 1);
    tern_store_batch_destroy(&batch);
    tern_store_reader_destroy(&reader);
    tern_store_destroy(&store);

    //  With the outbox on, local appends get entries again.
    config.outbox = true;
    store = test_store_open(&config);
    res = s_append_text(store, "t", "local", 4, 0);
    cr_assert_eq(s_outbox_last(store), 2);
    tern_store_destroy(&store);
}

Test(store, log_keyed_by_topic_and_seq_with_interleaved_topics) {
    tern_store_config_t config = test_store_config();
    tern_store_t *store = test_store_open(&config);
    //  Three topics interleaved in one batch: only the newest topic's keys
    //  append at the end of the log; the others go through normal puts.
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_frame_t msgs[30];
    tern_append_result_t res[30];
    char payload[30][8];
    const char *topics[] = {"c", "a", "b"};
    for (int i = 0; i < 30; i++) {
        snprintf(payload[i], sizeof payload[i], "m%d", i);
        s_msg(&msgs[i], topics[i % 3], payload[i]);
        msgs[i].msg_id = s_next_id++;
        tern_store_batch_append(batch, &msgs[i], true, &res[i]);
    }
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    for (int i = 0; i < 30; i++) {
        cr_assert_eq(res[i].err, TERN_OK);
        cr_assert_eq(res[i].seq, (uint64_t)i / 3 + 1);
        tern_frame_t out;
        cr_assert_eq(tern_store_read(reader, res[i].topic_id, res[i].seq, &out), TERN_OK);
        cr_assert_str_eq(out.topic, topics[i % 3]);
        cr_assert_eq(out.payload_size, strlen(payload[i]));
        cr_assert_eq(memcmp(out.payload, payload[i], out.payload_size), 0);
        uint32_t topic_id;
        uint64_t seq;
        cr_assert_eq(tern_store_find_msg(reader, msgs[i].msg_id, &topic_id, &seq), TERN_OK);
        cr_assert_eq(topic_id, res[i].topic_id);
        cr_assert_eq(seq, res[i].seq);
    }
    tern_frame_t out;
    cr_assert_eq(tern_store_read(reader, res[0].topic_id, 11, &out), TERN_ENOTFOUND);
    tern_store_read_end(reader);
    //  Purging the middle topic leaves its neighbours in the log intact.
    uint64_t removed = 0;
    tern_err_t err = TERN_EINTERNAL;
    tern_store_batch_topic_delete(batch, "a", true, &err, &removed);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(err, TERN_OK);
    cr_assert_eq(removed, 10);
    cr_assert_eq(s_topic(store, "a").msgs, 0);
    cr_assert_eq(s_topic(store, "b").msgs, 10);
    cr_assert_eq(s_topic(store, "c").msgs, 10);
    cr_assert_eq(s_read_status(store, res[1].topic_id, 1), TERN_ENOTFOUND);
    cr_assert_eq(s_read_status(store, res[2].topic_id, 10), TERN_OK);
    cr_assert_eq(s_read_status(store, res[0].topic_id, 1), TERN_OK);
    tern_store_reader_destroy(&reader);
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
}

Test(store, format_marker_and_old_format_refused) {
    tern_store_config_t config = test_store_config();
    tern_store_t *store = test_store_open(&config);
    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    uint64_t format = 0;
    cr_assert_eq(tern_store_get_u64(reader, "store.format", &format), TERN_OK);
    cr_assert_eq(format, TERN_STORE_FORMAT);
    cr_assert_eq(format, 3);
    tern_store_read_end(reader);
    tern_store_reader_destroy(&reader);
    s_append_text(store, "t", "x", 4, 0);
    //  A store that says it is of another format is refused, not misread.
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_store_batch_set_u64(batch, "store.format", 4);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
    tern_err_t err = TERN_OK;
    cr_assert_null(tern_store_new(&config, &err));
    cr_assert_eq(err, TERN_ECORRUPT);
}

//  Opens test_store_dir with LMDB directly (FLAGS: 0 or MDB_RDONLY) and begins a
//  transaction: for data directories of older formats made by hand.
static MDB_txn *s_raw_begin(MDB_env **env, unsigned flags) {
    cr_assert_eq(mdb_env_create(env), 0);
    cr_assert_eq(mdb_env_set_maxdbs(*env, 20), 0);
    cr_assert_eq(mdb_env_open(*env, test_store_dir, flags, 0644), 0);
    MDB_txn *txn;
    cr_assert_eq(mdb_txn_begin(*env, NULL, flags, &txn), 0);
    return txn;
}

//  Commits TXN of a hand-made directory, closes ENV, and checks that the
//  store refuses to open it.
static void s_commit_then_refused(MDB_env *env, MDB_txn *txn) {
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    tern_store_config_t config = test_store_config();
    tern_err_t err = TERN_OK;
    cr_assert_null(tern_store_new(&config, &err));
    cr_assert_eq(err, TERN_ECORRUPT);
}

//  A format 1 data directory, made with LMDB directly the way the old store
//  laid it out: a global-seq log and a `tindex`, no format marker.
Test(store, format_1_store_is_refused_untouched) {
    MDB_env *env;
    MDB_txn *txn = s_raw_begin(&env, 0);
    MDB_dbi meta, log, tindex;
    cr_assert_eq(mdb_dbi_open(txn, "meta", MDB_CREATE, &meta), 0);
    cr_assert_eq(mdb_dbi_open(txn, "log", MDB_CREATE, &log), 0);
    cr_assert_eq(mdb_dbi_open(txn, "tindex", MDB_CREATE, &tindex), 0);
    uint8_t gkey[8] = {0, 0, 0, 0, 0, 0, 0, 1}, tkey[12] = {0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1};
    uint8_t record[72] = {0}, global[8] = {1};
    MDB_val k = {8, gkey}, v = {sizeof record, record};
    cr_assert_eq(mdb_put(txn, log, &k, &v, 0), 0);
    k = (MDB_val){12, tkey};
    v = (MDB_val){8, global};
    cr_assert_eq(mdb_put(txn, tindex, &k, &v, 0), 0);
    s_commit_then_refused(env, txn);

    //  Nothing was written: no marker, the old log key is still 8 bytes.
    txn = s_raw_begin(&env, MDB_RDONLY);
    cr_assert_eq(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    cr_assert_eq(mdb_dbi_open(txn, "log", 0, &log), 0);
    k = (MDB_val){12, (void *)"store.format"};
    cr_assert_eq(mdb_get(txn, meta, &k, &v), MDB_NOTFOUND);
    k = (MDB_val){8, gkey};
    cr_assert_eq(mdb_get(txn, log, &k, &v), 0);
    cr_assert_eq(v.mv_size, sizeof record);
    mdb_txn_abort(txn);
    mdb_env_close(env);
}

//  A format 2 data directory, made with LMDB directly the way the format 2
//  store laid it out (marker 2, a `trace_msg` database, 12-byte msgid
//  values), is refused like format 1 and left untouched.
Test(store, format_2_store_is_refused_untouched) {
    MDB_env *env;
    MDB_txn *txn = s_raw_begin(&env, 0);
    MDB_dbi meta, msgid, trace_msg;
    cr_assert_eq(mdb_dbi_open(txn, "meta", MDB_CREATE, &meta), 0);
    cr_assert_eq(mdb_dbi_open(txn, "msgid", MDB_CREATE, &msgid), 0);
    cr_assert_eq(mdb_dbi_open(txn, "trace_msg", MDB_CREATE, &trace_msg), 0);
    uint64_t two = 2;
    MDB_val k = {12, (void *)"store.format"}, v = {8, &two};
    cr_assert_eq(mdb_put(txn, meta, &k, &v, 0), 0);
    uint8_t idkey[8] = {0, 0, 0, 0, 0, 0, 0, 7}, idval[12] = {0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1};
    k = (MDB_val){8, idkey};
    v = (MDB_val){12, idval};
    cr_assert_eq(mdb_put(txn, msgid, &k, &v, 0), 0);
    s_commit_then_refused(env, txn);

    txn = s_raw_begin(&env, MDB_RDONLY);
    cr_assert_eq(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    cr_assert_eq(mdb_dbi_open(txn, "msgid", 0, &msgid), 0);
    k = (MDB_val){12, (void *)"store.format"};
    cr_assert_eq(mdb_get(txn, meta, &k, &v), 0);
    cr_assert_eq(v.mv_size, 8);
    uint64_t format;
    memcpy(&format, v.mv_data, 8);
    cr_assert_eq(format, 2);
    k = (MDB_val){8, idkey};
    cr_assert_eq(mdb_get(txn, msgid, &k, &v), 0);
    cr_assert_eq(v.mv_size, 12);
    //  No database of format 3 was created in it.
    MDB_dbi conf;
    cr_assert_eq(mdb_dbi_open(txn, "trace_conf", 0, &conf), MDB_NOTFOUND);
    mdb_txn_abort(txn);
    mdb_env_close(env);
}

// ---------------------------------------------------------------------------
//  Replica identity (issue 14): the data directory's UUID.

//  Asserts that ID is a canonical lower-case UUID v4 (8-4-4-4-12 hex,
//  version 4, variant 10xx).
static void s_assert_uuid_v4(const char *id) {
    cr_assert_not_null(id);
    cr_assert_eq(strlen(id), TERN_STORE_IDENTITY_LEN, "identity '%s'", id);
    for (size_t i = 0; i < TERN_STORE_IDENTITY_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            cr_assert_eq(id[i], '-', "identity '%s'", id);
        } else {
            cr_assert(strchr("0123456789abcdef", id[i]) && id[i], "identity '%s'", id);
        }
    }
    cr_assert_eq(id[14], '4', "version of '%s'", id);
    cr_assert(strchr("89ab", id[19]) && id[19], "variant of '%s'", id);
}

//  Opens the store in DIR and copies its identity into OUT.
static void s_identity_of(const char *dir, char out[TERN_STORE_IDENTITY_LEN + 1]) {
    tern_store_config_t config = test_store_config();
    config.dir = dir;
    tern_store_t *store = test_store_open(&config);
    s_assert_uuid_v4(tern_store_identity(store));
    strcpy(out, tern_store_identity(store));
    tern_store_destroy(&store);
}

Test(store, identity_is_a_uuid_v4_kept_across_reopen) {
    tern_store_config_t config = test_store_config();
    tern_store_t *store = test_store_open(&config);
    const char *id = tern_store_identity(store); //  borrowed until destroy
    s_assert_uuid_v4(id);
    char first[TERN_STORE_IDENTITY_LEN + 1];
    strcpy(first, id);
    s_append_text(store, "t", "x", 4, 0);
    tern_store_destroy(&store);
    cr_assert_null(tern_store_identity(NULL));

    char again[TERN_STORE_IDENTITY_LEN + 1];
    s_identity_of(test_store_dir, again);
    cr_assert_str_eq(again, first);
    s_identity_of(test_store_dir, again);
    cr_assert_str_eq(again, first);

    //  Two fresh directories are two replicas.
    char other_dir[TEST_DIR_MAX + 8], other[TERN_STORE_IDENTITY_LEN + 1];
    snprintf(other_dir, sizeof other_dir, "%s/other", test_store_dir);
    s_identity_of(other_dir, other);
    cr_assert_str_neq(other, first);
}

//  The child of identity_survives_sigkill: opens the store, writes its
//  identity and then one byte per commit to FD, and appends until killed.
static void s_identity_writer(int fd) {
    tern_store_config_t config = test_store_config();
    config.durability = TERN_DURABILITY_FSYNC;
    tern_store_t *store = tern_store_new(&config, NULL);
    if (!store ||
        write(fd, tern_store_identity(store), TERN_STORE_IDENTITY_LEN) != TERN_STORE_IDENTITY_LEN) {
        _exit(1);
    }
    tern_store_batch_t *batch = tern_store_batch_new(store);
    for (uint64_t id = 1;; id++) {
        tern_frame_t msg;
        s_msg(&msg, "crash", "payload");
        msg.msg_id = id;
        tern_append_result_t res;
        tern_store_batch_append(batch, &msg, true, &res);
        if (tern_store_batch_commit(batch) != TERN_OK || write(fd, "c", 1) != 1) {
            _exit(1);
        }
    }
}

Test(store, identity_survives_sigkill) {
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        s_identity_writer(fds[1]);
    }
    close(fds[1]);
    char id[TERN_STORE_IDENTITY_LEN + 1] = {0}, commits[8];
    size_t got = 0;
    while (got < TERN_STORE_IDENTITY_LEN) {
        ssize_t n = read(fds[0], id + got, TERN_STORE_IDENTITY_LEN - got);
        cr_assert_gt(n, 0, "the writer died before reporting its identity");
        got += (size_t)n;
    }
    //  Kill it in the middle of its appends, after a few commits.
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(read(fds[0], commits, 1), 1, "the writer died before committing");
    }
    cr_assert_eq(kill(pid, SIGKILL), 0);
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "status %d", status);
    close(fds[0]);

    s_assert_uuid_v4(id);
    char reopened[TERN_STORE_IDENTITY_LEN + 1];
    s_identity_of(test_store_dir, reopened);
    cr_assert_str_eq(reopened, id);
}

//  Sets (VALUE not NULL) or deletes the meta key "store.identity" of the
//  closed store in test_store_dir, with LMDB directly.
static void s_raw_identity(const void *value, size_t size) {
    MDB_env *env;
    MDB_txn *txn = s_raw_begin(&env, 0);
    MDB_dbi meta;
    cr_assert_eq(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    MDB_val k = {14, (void *)"store.identity"}, v = {size, (void *)value};
    cr_assert_eq(value ? mdb_put(txn, meta, &k, &v, 0) : mdb_del(txn, meta, &k, NULL), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

//  A format 3 store from before identities (no "store.identity") is not a
//  new format: it gets an identity at its first open, keeps it, and keeps
//  its format and data.
Test(store, store_without_identity_gets_one_at_first_open) {
    tern_store_config_t config = test_store_config();
    tern_store_t *store = test_store_open(&config);
    char old[TERN_STORE_IDENTITY_LEN + 1];
    strcpy(old, tern_store_identity(store));
    tern_append_result_t res = s_append_text(store, "t", "kept", 4, 0);
    tern_store_destroy(&store);
    s_raw_identity(NULL, 0);

    store = test_store_open(&config);
    const char *id = tern_store_identity(store);
    s_assert_uuid_v4(id);
    cr_assert_str_neq(id, old);
    char given[TERN_STORE_IDENTITY_LEN + 1];
    strcpy(given, id);
    cr_assert_eq(s_read_status(store, res.topic_id, res.seq), TERN_OK);
    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    uint64_t format = 0;
    cr_assert_eq(tern_store_get_u64(reader, "store.format", &format), TERN_OK);
    cr_assert_eq(format, TERN_STORE_FORMAT);
    tern_store_read_end(reader);
    tern_store_reader_destroy(&reader);
    tern_store_destroy(&store);

    char again[TERN_STORE_IDENTITY_LEN + 1];
    s_identity_of(test_store_dir, again);
    cr_assert_str_eq(again, given);
}

//  A stored identity that is not a lower-case UUID v4 is refused, and not
//  replaced: a second open is refused too, and once a valid value is put
//  back the store opens with exactly that value.
Test(store, malformed_identity_is_refused_untouched) {
    static const char *bad[] = {
        "",                                      //  empty
        "3f1c2a9e-7b4d-4e0a-9c1f-5a6b7c8d9e0",   //  35 characters
        "3f1c2a9e-7b4d-4e0a-9c1f-5a6b7c8d9e0f0", //  37 characters
        "3f1c2a9e-7b4d-1e0a-9c1f-5a6b7c8d9e0f",  //  version 1
        "3f1c2a9e-7b4d-4e0a-7c1f-5a6b7c8d9e0f",  //  variant 0xxx
        "3F1C2A9E-7B4D-4E0A-9C1F-5A6B7C8D9E0F",  //  upper case
        "3f1c2a9e07b4d04e0a09c1f05a6b7c8d9e0f",  //  no dashes
        "3f1c2a9e-7b4d-4e0a-9c1f-5a6b7c8d9e0g",  //  not hex
    };
    tern_store_config_t config = test_store_config();
    tern_store_t *store = test_store_open(&config);
    tern_store_destroy(&store);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        s_raw_identity(bad[i], strlen(bad[i]));
        for (int attempt = 0; attempt < 2; attempt++) {
            tern_err_t err = TERN_OK;
            cr_assert_null(tern_store_new(&config, &err), "'%s' accepted", bad[i]);
            cr_assert_eq(err, TERN_ECORRUPT, "'%s': %d", bad[i], err);
        }
    }
    uint64_t as_u64 = 42; //  what tern_store_batch_set_u64 would leave
    s_raw_identity(&as_u64, sizeof as_u64);
    tern_err_t err = TERN_OK;
    cr_assert_null(tern_store_new(&config, &err));
    cr_assert_eq(err, TERN_ECORRUPT);

    static const char good[] = "3f1c2a9e-7b4d-4e0a-9c1f-5a6b7c8d9e0f";
    s_raw_identity(good, sizeof good - 1);
    char id[TERN_STORE_IDENTITY_LEN + 1];
    s_identity_of(test_store_dir, id);
    cr_assert_str_eq(id, good);
}

// ---------------------------------------------------------------------------
//  Admin operations (issue 12): topic create/edit, group seek, DLQ requeue,
//  purge and get, reading without consuming.

Test(store, topic_create_edit) {
    tern_store_t *store =
        test_store_open(&(tern_store_config_t){.dir = test_store_dir, .map_initial = 1 << 20});
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_err_t err = TERN_EINTERNAL, err2 = TERN_EINTERNAL;
    uint32_t id = 0;
    tern_store_batch_topic_put(batch, "t", TERN_TOPIC_CREATE, &(tern_topic_limits_t){0, 5, 0}, &err,
                               &id);
    tern_store_batch_topic_put(batch, "t", TERN_TOPIC_CREATE, &(tern_topic_limits_t){0, 9, 0},
                               &err2, NULL); //  same batch: exists
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(err, TERN_OK);
    cr_assert_eq(err2, TERN_EEXIST);
    cr_assert_gt(id, 0);

    err = err2 = TERN_EINTERNAL; //  each result must be written again
    tern_store_batch_topic_put(batch, "t", TERN_TOPIC_EDIT, &(tern_topic_limits_t){60000, 3, 100},
                               &err, NULL);
    tern_store_batch_topic_put(batch, "missing", TERN_TOPIC_EDIT, &(tern_topic_limits_t){0, 3, 0},
                               &err2, NULL);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(err, TERN_OK);
    cr_assert_eq(err2, TERN_ENOTFOUND);

    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    tern_topic_info_t info;
    cr_assert_eq(tern_store_topic_get(reader, "t", &info), TERN_OK);
    cr_assert_eq(info.id, id);
    cr_assert_eq(info.max_age_ms, 60000);
    cr_assert_eq(info.max_msgs, 3);
    cr_assert_eq(info.max_bytes, 100);
    cr_assert_eq(tern_store_topic_get(reader, "missing", &info), TERN_ENOTFOUND);
    tern_store_read_end(reader);

    //  The edited limit is enforced on append.
    for (int i = 0; i < 5; i++) {
        s_append_text(store, "t", "x", 4, 0);
    }
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    cr_assert_eq(tern_store_topic_get(reader, "t", &info), TERN_OK);
    cr_assert_eq(info.msgs, 3);
    cr_assert_eq(info.first_seq, 3);
    tern_store_read_end(reader);
    tern_store_reader_destroy(&reader);
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
}

Test(store, group_seek) {
    tern_store_t *store =
        test_store_open(&(tern_store_config_t){.dir = test_store_dir, .map_initial = 1 << 20});
    uint32_t id = 0;
    for (int i = 0; i < 6; i++) {
        id = s_append_text(store, "t", "x", i == 5 ? 9 : 4, 0).topic_id;
    }
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_store_batch_group_open(batch, id, "g", TERN_START_FIRST, 0, NULL, NULL);
    for (uint64_t seq = 1; seq <= 4; seq++) {
        tern_store_batch_deliver(batch, id, "g", seq, &(tern_delivery_t){4, 1, 1000, NULL});
    }
    tern_store_batch_ack(batch, id, "g", 1, TERN_TRACE_ACKED);
    tern_store_batch_dead(batch, id, "g", 2, 1, "term");
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);

    //  Back to 2: pending (3, 4) dropped, every lane at 2; DLQ and counters kept.
    tern_err_t err = TERN_EINTERNAL;
    tern_store_batch_group_seek(batch, id, "g", TERN_START_SEQ, 2, &err, NULL);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(err, TERN_OK);
    s_entries_t pending, dlq;
    tern_group_info_t g = s_group(store, id, "g", &pending, &dlq);
    cr_assert_eq(g.pending, 0);
    cr_assert_eq(pending.count, 0);
    cr_assert_eq(g.lane_next[4], 2);
    cr_assert_eq(g.lane_next[9], 2);
    cr_assert_eq(g.dead, 1);
    cr_assert_eq(dlq.count, 1);
    cr_assert_eq(g.acked, 1);
    cr_assert_eq(g.delivered, 4);

    //  NEW: past the last message; FIRST: the first stored one.
    tern_store_batch_group_seek(batch, id, "g", TERN_START_NEW, 0, &err, NULL);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(s_group(store, id, "g", NULL, NULL).lane_next[0], 7);
    tern_store_batch_group_seek(batch, id, "g", TERN_START_FIRST, 0, &err, NULL);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(s_group(store, id, "g", NULL, NULL).lane_next[4], 1);

    //  Errors: no such group, no such topic, bad start.
    tern_store_batch_group_seek(batch, id, "nope", TERN_START_FIRST, 0, &err, NULL);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(err, TERN_ENOTFOUND);
    err = TERN_EINTERNAL; //  not the previous case's TERN_ENOTFOUND
    tern_store_batch_group_seek(batch, id + 100, "g", TERN_START_FIRST, 0, &err, NULL);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(err, TERN_ENOTFOUND);
    tern_store_batch_group_seek(batch, id, "g", (tern_start_t)77, 0, &err, NULL);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(err, TERN_ERANGE);
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
}

Test(store, dlq_requeue_purge_get) {
    tern_store_t *store =
        test_store_open(&(tern_store_config_t){.dir = test_store_dir, .map_initial = 1 << 20});
    uint32_t id = 0;
    for (int i = 0; i < 4; i++) {
        id = s_append_text(store, "t", "x", 4, 0).topic_id;
    }
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_store_batch_group_open(batch, id, "g", TERN_START_FIRST, 0, NULL, NULL);
    for (uint64_t seq = 1; seq <= 3; seq++) {
        tern_store_batch_deliver(batch, id, "g", seq, &(tern_delivery_t){4, 1, 1000, NULL});
        tern_store_batch_dead(batch, id, "g", seq, 2, "bad");
    }
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);

    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    tern_entry_t entry;
    cr_assert_eq(tern_store_dlq_get(reader, id, "g", 2, &entry), TERN_OK);
    cr_assert_eq(entry.seq, 2);
    cr_assert_eq(entry.delivery_count, 2);
    cr_assert_str_eq(entry.reason, "bad");
    cr_assert_eq(tern_store_dlq_get(reader, id, "g", 4, &entry), TERN_ENOTFOUND);
    cr_assert_eq(tern_store_dlq_get(reader, id, "other", 2, &entry), TERN_ENOTFOUND);
    cr_assert_eq(tern_store_dlq_get(reader, id, "", 2, &entry), TERN_ENAME);
    tern_store_read_end(reader);

    //  Requeue one: only seq 2 moves; again: not in the DLQ any more.
    tern_err_t err = TERN_EINTERNAL, err2 = TERN_EINTERNAL;
    tern_store_batch_dlq_replay(batch, id, "g", 2, 5000, &err, NULL);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(err, TERN_OK);
    s_entries_t pending, dlq;
    tern_group_info_t g = s_group(store, id, "g", &pending, &dlq);
    cr_assert_eq(g.dead, 2);
    cr_assert_eq(dlq.count, 2);
    cr_assert_eq(dlq.entries[0].seq, 1);
    cr_assert_eq(dlq.entries[1].seq, 3);
    cr_assert_eq(pending.count, 1);
    cr_assert_eq(pending.entries[0].seq, 2);
    cr_assert_eq(pending.entries[0].due_ms, 5000);
    cr_assert_eq(pending.entries[0].delivery_count, 0);
    tern_store_batch_dlq_replay(batch, id, "g", 2, 5000, &err, NULL);
    tern_store_batch_dlq_replay(batch, id, "nope", 1, 5000, &err2, NULL);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(err, TERN_ENOTFOUND);
    cr_assert_eq(err2, TERN_ENOTFOUND);

    //  Purge: the DLQ is empty, pending and the log untouched.
    uint64_t removed = 0;
    tern_store_batch_dlq_purge(batch, id, "g", &err, &removed);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(err, TERN_OK);
    cr_assert_eq(removed, 2);
    g = s_group(store, id, "g", &pending, &dlq);
    cr_assert_eq(g.dead, 0);
    cr_assert_eq(dlq.count, 0);
    cr_assert_eq(pending.count, 1);
    tern_store_batch_dlq_purge(batch, id, "nope", &err, &removed);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(err, TERN_ENOTFOUND);
    cr_assert_eq(removed, 0);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    tern_topic_info_t info;
    cr_assert_eq(tern_store_topic_get(reader, "t", &info), TERN_OK);
    cr_assert_eq(info.msgs, 4);
    tern_store_read_end(reader);
    tern_store_reader_destroy(&reader);
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
}

Test(store, read_next_and_seq_at_time) {
    tern_store_t *store =
        test_store_open(&(tern_store_config_t){.dir = test_store_dir, .map_initial = 1 << 20});
    tern_frame_t msgs[5];
    uint32_t id = 0;
    for (int i = 0; i < 5; i++) {
        s_msg(&msgs[i], "t", "abc");
        msgs[i].timestamp_ns = 1000 * (uint64_t)(i + 1); //  1000, 2000, ... 5000
        msgs[i].expire_at_ns = i == 2 ? 1 : 0;           //  seq 3 expires at once
        id = s_append(store, &msgs[i]).topic_id;
    }
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_store_batch_sweep(batch, 10, 100, NULL);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    tern_store_batch_destroy(&batch);

    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    tern_frame_t out;
    cr_assert_eq(tern_store_read_next(reader, id, 0, &out), TERN_OK);
    cr_assert_eq(out.seq, 1);
    cr_assert_str_eq(out.topic, "t");
    cr_assert_eq(out.payload_size, 3);
    cr_assert_eq(tern_store_read_next(reader, id, 3, &out), TERN_OK); //  the gap is skipped
    cr_assert_eq(out.seq, 4);
    cr_assert_eq(tern_store_read_next(reader, id, 6, &out), TERN_ENOTFOUND);
    cr_assert_eq(tern_store_read_next(reader, id + 1, 1, &out), TERN_ENOTFOUND);

    uint64_t seq = 0;
    cr_assert_eq(tern_store_seq_at_time(reader, id, 0, &seq), TERN_OK);
    cr_assert_eq(seq, 1);
    cr_assert_eq(tern_store_seq_at_time(reader, id, 2500, &seq), TERN_OK);
    cr_assert(seq == 3 || seq == 4, "seq %lu", (unsigned long)seq); //  seq 3 (3000) is gone
    cr_assert_eq(tern_store_read_next(reader, id, seq, &out), TERN_OK);
    cr_assert_eq(out.seq, 4);
    cr_assert_eq(tern_store_seq_at_time(reader, id, 5000, &seq), TERN_OK);
    cr_assert_eq(seq, 5);
    cr_assert_eq(tern_store_seq_at_time(reader, id, 9999, &seq), TERN_OK);
    cr_assert_eq(seq, 6);
    cr_assert_eq(tern_store_seq_at_time(reader, id + 1, 0, &seq), TERN_ENOTFOUND);
    tern_store_read_end(reader);
    tern_store_reader_destroy(&reader);
    tern_store_destroy(&store);
}

//  True while meta still holds the tombstone of TOPIC_ID (tern_store_reap.c).
static bool s_doomed(tern_store_t *store, uint32_t topic_id) {
    char key[64];
    snprintf(key, sizeof key, "store.doomed.%08x", topic_id);
    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    uint64_t last = 0;
    tern_err_t err = tern_store_get_u64(reader, key, &last);
    tern_store_read_end(reader);
    tern_store_reader_destroy(&reader);
    cr_assert(err == TERN_OK || err == TERN_ENOTFOUND, "%s", tern_errname(err));
    return err == TERN_OK;
}

static bool s_count_entry(const tern_entry_t *entry, void *arg) {
    (void)entry;
    (*(uint64_t *)arg)++;
    return true;
}

//  Sweeps until the store says nothing is left; returns how many sweeps.
static int s_sweep_all(tern_store_t *store) {
    tern_store_batch_t *batch = tern_store_batch_new(store);
    int sweeps = 0;
    do {
        tern_store_batch_sweep(batch, s_now_ns(), 10000, NULL);
        cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
        sweeps++;
        cr_assert_lt(sweeps, 1000, "the reaper does not finish");
    } while (tern_store_sweep_more(store));
    tern_store_batch_destroy(&batch);
    return sweeps;
}

//  A topic delete answers at once with the topic gone from every read; its
//  messages and pending entries go in several bounded sweeps (each
//  transaction small, so LMDB keeps few dirty pages), and a restart between
//  the delete and the last sweep finishes the job.
Test(store, topic_delete_in_steps) {
    tern_store_config_t config = test_store_config();
    config.map_initial = 64 << 20;
    config.map_max = 256 << 20;
    tern_store_t *store = test_store_open(&config);
    tern_store_batch_t *batch = tern_store_batch_new(store);
    const int n = 5000; //  more than one sweep removes (S_SWEEP_PAGES)
    char payload[200];
    memset(payload, 'x', sizeof payload - 1);
    payload[sizeof payload - 1] = 0;
    tern_frame_t msgs[64];
    tern_append_result_t res[64];
    uint32_t id = 0;
    for (int i = 0; i < n; i += 64) {
        for (int j = 0; j < 64; j++) {
            s_msg(&msgs[j], "big", payload);
            msgs[j].msg_id = s_next_id++;
            tern_store_batch_append(batch, &msgs[j], true, &res[j]);
        }
        cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
        id = res[0].topic_id;
    }
    uint64_t first_msg_id = msgs[0].msg_id;
    tern_err_t err = TERN_EINTERNAL;
    tern_store_batch_group_open(batch, id, "g", TERN_START_FIRST, 0, &err, NULL);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(err, TERN_OK);
    tern_delivery_t d = {0};
    d.delivery_count = 1;
    d.priority = 4;
    for (uint64_t seq = 1; seq <= 3000; seq++) {
        tern_store_batch_deliver(batch, id, "g", seq, &d);
    }
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);

    uint64_t removed = 0;
    tern_store_batch_topic_delete(batch, "big", false, &err, &removed);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(err, TERN_OK);
    cr_assert_eq(removed, (uint64_t)(n + 63) / 64 * 64, "removed %llu",
                 (unsigned long long)removed);
    cr_assert(s_doomed(store, id));

    //  Gone from every read before the reaper ran.
    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    tern_topic_info_t info;
    cr_assert_eq(tern_store_topic_get(reader, "big", &info), TERN_ENOTFOUND);
    cr_assert_eq(tern_store_topic_get_id(reader, id, &info), TERN_ENOTFOUND);
    tern_frame_t out;
    cr_assert_eq(tern_store_read(reader, id, 1, &out), TERN_ENOTFOUND);
    uint32_t found_topic;
    uint64_t found_seq;
    cr_assert_eq(tern_store_find_msg(reader, first_msg_id, &found_topic, &found_seq),
                 TERN_ENOTFOUND);
    tern_store_read_end(reader);
    //  A new topic of the same name starts empty, with a new id.
    tern_append_result_t fresh = s_append_text(store, "big", "new", 4, 0);
    cr_assert_eq(fresh.err, TERN_OK);
    cr_assert_neq(fresh.topic_id, id);
    cr_assert_eq(fresh.seq, 1);

    //  One bounded sweep does not finish it; the store says there is more.
    tern_store_batch_sweep(batch, s_now_ns(), 10000, NULL);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert(tern_store_sweep_more(store));
    cr_assert(s_doomed(store, id));

    //  Restart halfway: the tombstone is on disk, the reaper finishes.
    tern_store_batch_destroy(&batch);
    tern_store_reader_destroy(&reader);
    tern_store_destroy(&store);
    store = test_store_open(&config);
    cr_assert(s_doomed(store, id));
    cr_assert_gt(s_sweep_all(store), 1);
    cr_assert_not(s_doomed(store, id));
    cr_assert_not(tern_store_sweep_more(store));
    reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    uint64_t pending = 0;
    cr_assert_eq(tern_store_pending_list(reader, id, "g", s_count_entry, &pending), TERN_OK);
    cr_assert_eq(pending, 0);
    //  The history of the removed messages stays (their STORED event).
    cr_assert_eq(tern_store_trace_find(reader, first_msg_id, &found_topic, &found_seq), TERN_OK);
    cr_assert_eq(found_topic, id);
    tern_store_read_end(reader);
    tern_store_reader_destroy(&reader);
    cr_assert_eq(s_topic(store, "big").msgs, 1);
    tern_store_destroy(&store);
}

//  A sweep removes at most 1024 expired messages, whatever its caller's max
//  (each dirties pages LMDB keeps: S_SWEEP_PAGES), says it left work, and
//  the sweeps that follow remove the rest.
Test(store, sweep_bounded_by_pages) {
    tern_store_config_t config = test_store_config();
    config.map_initial = 64 << 20;
    tern_store_t *store = test_store_open(&config);
    tern_store_batch_t *batch = tern_store_batch_new(store);
    const int n = 3000;
    uint64_t expire = s_now_ns() + 1000000; //  1 ms from now
    tern_frame_t msgs[100];
    tern_append_result_t res[100];
    for (int i = 0; i < n; i += 100) {
        for (int j = 0; j < 100; j++) {
            s_msg(&msgs[j], "ttl", "short lived");
            msgs[j].msg_id = s_next_id++;
            msgs[j].expire_at_ns = expire;
            tern_store_batch_append(batch, &msgs[j], true, &res[j]);
        }
        cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    }
    usleep(5000);
    uint64_t removed = 0;
    tern_store_batch_sweep(batch, s_now_ns(), 10000, &removed);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(removed, 1024);
    cr_assert(tern_store_sweep_more(store));
    cr_assert_eq(s_topic(store, "ttl").msgs, (uint64_t)n - 1024);
    cr_assert_gt(s_sweep_all(store), 1);
    cr_assert_eq(s_topic(store, "ttl").msgs, 0);
    tern_store_stats_t stats;
    tern_store_stats(store, &stats);
    cr_assert_eq(stats.expired, (uint64_t)n);
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
}
