/*  test_store_outbox_pt.c - the outbox of a clustered store (partitions >
    0): entries per partition at (pt, pos) for local appends and ack-state
    changes, a follower's copy at the leader's positions, per-(peer, pt)
    confirmations, the per-partition sweep, the marks a commit reports
    (OBSAFE), and that a single node and an outbox that is off are as
    before. Real LMDB stores in the test's directory. */
#include "test_store_fixture.h"
#include "tern_partition.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#define PARTS 8

//  Opens (or reopens) the store in subdirectory NAME with PARTITIONS.
static tern_store_t *s_open(const char *name, uint32_t partitions, bool outbox) {
    static char dir[TEST_DIR_MAX + 16];
    snprintf(dir, sizeof dir, "%s/%s", test_store_dir, name);
    tern_store_config_t config = test_store_config();
    config.dir = dir;
    config.partitions = partitions;
    config.outbox = outbox;
    return test_store_open(&config);
}

//  Two topic names of different partitions of PARTS, found once.
static char s_topic[2][32];

static void s_topics(void) {
    snprintf(s_topic[0], sizeof s_topic[0], "orders.0");
    uint32_t pt0 = tern_partition_of(s_topic[0], strlen(s_topic[0]), PARTS);
    for (int i = 1; i < 100; i++) {
        snprintf(s_topic[1], sizeof s_topic[1], "orders.%d", i);
        if (tern_partition_of(s_topic[1], strlen(s_topic[1]), PARTS) != pt0) {
            return;
        }
    }
    cr_assert_fail("no second partition");
}

static uint32_t s_pt(int topic) {
    return tern_partition_of(s_topic[topic], strlen(s_topic[topic]), PARTS);
}

static void s_msg(tern_frame_t *msg, int topic, uint64_t seq, uint64_t msg_id) {
    tern_frame_init(msg, TERN_CMD_CREPL_RECORD);
    strcpy(msg->topic, s_topic[topic]);
    strcpy(msg->origin, "dc1");
    msg->seq = seq;
    msg->msg_id = msg_id;
    msg->timestamp_ns = 1000 + seq;
    msg->payload = (const uint8_t *)"x";
    msg->payload_size = 1;
    msg->fields |= TERN_F_TOPIC | TERN_F_ORIGIN | TERN_F_PAYLOAD;
}

//  Local appends of MSG_IDS (count N) to TOPIC in one commit; copies the
//  commit's marks into MARKS (up to 4) and returns how many.
static size_t s_local(tern_store_t *store, int topic, const uint64_t *msg_ids, size_t n,
                      tern_outbox_mark_t *marks) {
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_frame_t msg[8];
    tern_append_result_t res[8];
    for (size_t i = 0; i < n; i++) {
        s_msg(&msg[i], topic, 0, msg_ids[i]);
        msg[i].cmd = TERN_CMD_PUBLISH;
        tern_store_batch_append(batch, &msg[i], true, &res[i]);
    }
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(res[i].err, TERN_OK);
    }
    size_t count = 0;
    const tern_outbox_mark_t *m = tern_store_batch_outbox_marks(batch, &count);
    cr_assert_leq(count, 4);
    if (count) {
        memcpy(marks, m, count * sizeof *m);
    }
    tern_store_batch_destroy(&batch);
    return count;
}

typedef struct {
    tern_outbox_entry_t e[16]; //  entries read
    size_t n;                  //  how many
} s_read_t;

static bool s_collect(const tern_outbox_entry_t *entry, void *arg) {
    s_read_t *r = arg;
    cr_assert_lt(r->n, 16);
    r->e[r->n++] = *entry;
    return true;
}

//  Reads partition PT of STORE from FROM into R; returns the read's error.
static tern_err_t s_read(tern_store_t *store, uint32_t pt, uint64_t from, s_read_t *r) {
    memset(r, 0, sizeof *r);
    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    tern_err_t err = tern_store_outbox_read_pt(reader, pt, from, 100, s_collect, r);
    tern_store_read_end(reader);
    tern_store_reader_destroy(&reader);
    return err;
}

//  PT's last position and PEER's confirmation of it (PEER NULL: none).
static uint64_t s_last(tern_store_t *store, uint32_t pt, const char *peer) {
    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    uint64_t pos = 99;
    if (peer) {
        cr_assert_eq(tern_store_outbox_confirmed_pt(reader, peer, pt, &pos), TERN_OK);
    } else {
        cr_assert_eq(tern_store_outbox_last_pt(reader, pt, &pos), TERN_OK);
    }
    tern_store_read_end(reader);
    tern_store_reader_destroy(&reader);
    return pos;
}

static void s_commit(tern_store_batch_t **batch) {
    cr_assert_eq(tern_store_batch_commit(*batch), TERN_OK);
    tern_store_batch_destroy(batch);
}

TestSuite(store_outbox_pt, .init = test_store_setup, .fini = test_store_teardown);

//  Usage: local appends of two topics of different partitions each get
//  positions from 1 in their partition; the commit's marks say how far
//  each partition went; a peer confirms per partition.
Test(store_outbox_pt, usage) {
    s_topics();
    tern_store_t *store = s_open("a", PARTS, true);
    uint64_t ids0[] = {101, 102, 103}, ids1[] = {201};
    tern_outbox_mark_t marks[4];
    cr_assert_eq(s_local(store, 0, ids0, 3, marks), 1);
    cr_assert_eq(marks[0].partition, s_pt(0));
    cr_assert_eq(marks[0].position, 3);
    cr_assert_eq(s_local(store, 1, ids1, 1, marks), 1);
    cr_assert_eq(marks[0].partition, s_pt(1));
    cr_assert_eq(marks[0].position, 1);

    s_read_t r;
    cr_assert_eq(s_read(store, s_pt(0), 2, &r), TERN_OK);
    cr_assert_eq(r.n, 2);
    cr_assert_eq(r.e[0].position, 2);
    cr_assert_eq(r.e[0].partition, s_pt(0));
    cr_assert_eq(r.e[0].msg_id, 102);
    cr_assert_eq(r.e[0].seq, 2);
    cr_assert_not(r.e[0].is_ackstate);
    cr_assert_eq(s_read(store, s_pt(1), 0, &r), TERN_OK);
    cr_assert_eq(r.n, 1);
    cr_assert_eq(r.e[0].msg_id, 201);
    cr_assert_eq(s_last(store, s_pt(0), NULL), 3);
    cr_assert_eq(s_last(store, s_pt(1), NULL), 1);

    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_store_batch_outbox_confirm_pt(batch, "dc2", s_pt(0), 2);
    tern_store_batch_outbox_confirm_pt(batch, "dc2", s_pt(0), 1); //  lower: ignored
    s_commit(&batch);
    cr_assert_eq(s_last(store, s_pt(0), "dc2"), 2);
    cr_assert_eq(s_last(store, s_pt(1), "dc2"), 0);

    //  Nothing in the single node's stream, and the positions survive a reopen.
    tern_store_destroy(&store);
    store = s_open("a", PARTS, true);
    cr_assert_eq(s_last(store, s_pt(0), NULL), 3);
    uint64_t ids2[] = {104};
    s_local(store, 0, ids2, 1, marks);
    cr_assert_eq(marks[0].position, 4);
    tern_store_destroy(&store);
}

Test(store_outbox_pt, bad_partition_and_peer) {
    s_topics();
    tern_store_t *store = s_open("a", PARTS, true);
    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    uint64_t pos;
    s_read_t r;
    cr_assert_eq(tern_store_outbox_read_pt(reader, PARTS, 0, 10, s_collect, &r), TERN_EINVAL);
    cr_assert_eq(tern_store_outbox_last_pt(reader, PARTS, &pos), TERN_EINVAL);
    cr_assert_eq(tern_store_outbox_confirmed_pt(reader, "dc2", PARTS, &pos), TERN_EINVAL);
    cr_assert_eq(tern_store_outbox_confirmed_pt(reader, "", 0, &pos), TERN_EINVAL);
    tern_store_read_end(reader);
    tern_store_reader_destroy(&reader);
    tern_store_destroy(&store);

    //  A single node has one stream, pt 0.
    store = s_open("b", 0, true);
    reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    cr_assert_eq(tern_store_outbox_last_pt(reader, 1, &pos), TERN_EINVAL);
    cr_assert_eq(tern_store_outbox_last_pt(reader, 0, &pos), TERN_OK);
    tern_store_read_end(reader);
    tern_store_reader_destroy(&reader);
    tern_store_destroy(&store);
}

//  A single node: the old stream, through the _pt functions too, no marks.
Test(store_outbox_pt, single_node_unchanged) {
    s_topics();
    tern_store_t *store = s_open("a", 0, true);
    uint64_t ids0[] = {101, 102}, ids1[] = {201};
    tern_outbox_mark_t marks[4];
    cr_assert_eq(s_local(store, 0, ids0, 2, marks), 0);
    cr_assert_eq(s_local(store, 1, ids1, 1, marks), 0);
    s_read_t r;
    cr_assert_eq(s_read(store, 0, 0, &r), TERN_OK);
    cr_assert_eq(r.n, 3);
    cr_assert_eq(r.e[2].position, 3);
    cr_assert_eq(r.e[2].msg_id, 201);
    cr_assert_eq(r.e[2].partition, 0);
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_store_batch_outbox_confirm_pt(batch, "dc2", 0, 2);
    s_commit(&batch);
    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    uint64_t pos = 0;
    cr_assert_eq(tern_store_outbox_confirmed(reader, "dc2", &pos), TERN_OK);
    cr_assert_eq(pos, 2);
    cr_assert_eq(tern_store_outbox_last(reader, &pos), TERN_OK);
    cr_assert_eq(pos, 3);
    tern_store_read_end(reader);
    tern_store_reader_destroy(&reader);
    tern_store_destroy(&store);
}

//  Outbox off (no peers): a clustered store writes nothing and marks nothing.
Test(store_outbox_pt, outbox_off_writes_nothing) {
    s_topics();
    tern_store_t *store = s_open("a", PARTS, false);
    uint64_t ids0[] = {101, 102};
    tern_outbox_mark_t marks[4];
    cr_assert_eq(s_local(store, 0, ids0, 2, marks), 0);
    s_read_t r;
    cr_assert_eq(s_read(store, s_pt(0), 0, &r), TERN_OK);
    cr_assert_eq(r.n, 0);
    cr_assert_eq(s_last(store, s_pt(0), NULL), 0);
    tern_store_destroy(&store);
}

//  A local ack gets an ack-state entry in its topic's partition, with the
//  message's msg_id (a replica must mean the same by it).
Test(store_outbox_pt, ackstate_in_topic_partition) {
    s_topics();
    tern_store_t *store = s_open("a", PARTS, true);
    uint64_t ids1[] = {201, 202};
    tern_outbox_mark_t marks[4];
    s_local(store, 1, ids1, 2, marks);
    tern_store_reader_t *reader = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(reader), TERN_OK);
    tern_topic_info_t info;
    cr_assert_eq(tern_store_topic_get(reader, s_topic[1], &info), TERN_OK);
    tern_store_read_end(reader);
    tern_store_reader_destroy(&reader);

    tern_store_batch_t *batch = tern_store_batch_new(store);
    uint64_t pos = 0;
    tern_store_batch_ackstate(batch, (uint32_t)info.id, "billing", 2, 0, TERN_CMD_ACK, &pos);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    size_t count;
    const tern_outbox_mark_t *m = tern_store_batch_outbox_marks(batch, &count);
    cr_assert_eq(count, 1);
    cr_assert_eq(m[0].partition, s_pt(1));
    cr_assert_eq(m[0].position, 3);
    cr_assert_eq(pos, 3);
    tern_store_batch_destroy(&batch);

    s_read_t r;
    cr_assert_eq(s_read(store, s_pt(1), 3, &r), TERN_OK);
    cr_assert_eq(r.n, 1);
    cr_assert(r.e[0].is_ackstate);
    cr_assert_eq(r.e[0].msg_id, 202);
    cr_assert_eq(r.e[0].seq, 2);
    cr_assert_str_eq(r.e[0].group, "billing");
    cr_assert_eq(r.e[0].op, TERN_CMD_ACK);
    tern_store_destroy(&store);
}

//  A follower: the leader's record entries at the leader's positions (a
//  replay is harmless), an ack-state entry by topic name, and the reset a
//  catch-up starts with (a tail the leader lacks is given back).
Test(store_outbox_pt, follower_copy) {
    s_topics();
    tern_store_t *store = s_open("f", PARTS, false); //  the leader decides: off or not
    tern_frame_t msg;
    tern_append_result_t res;
    tern_store_batch_t *batch = tern_store_batch_new(store);
    for (uint64_t seq = 1; seq <= 3; seq++) {
        s_msg(&msg, 0, seq, 100 + seq);
        msg.outbox_pos = seq + 10; //  the leader's positions
        tern_store_batch_append_replica(batch, &msg, &res);
        cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
        cr_assert_eq(res.err, TERN_OK);
    }
    s_msg(&msg, 0, 3, 103); //  a replay: nothing new
    msg.outbox_pos = 13;
    tern_store_batch_append_replica(batch, &msg, &res);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert(res.duplicate);
    tern_outbox_entry_t ack;
    memset(&ack, 0, sizeof ack);
    ack.partition = s_pt(0);
    ack.position = 14;
    ack.is_ackstate = true;
    ack.seq = 2;
    ack.msg_id = 102;
    ack.op = TERN_CMD_TERM;
    ack.at_ns = 5;
    strcpy(ack.group, "billing");
    tern_store_batch_outbox_put(batch, s_topic[0], &ack);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    size_t count;
    const tern_outbox_mark_t *m = tern_store_batch_outbox_marks(batch, &count);
    cr_assert_eq(count, 1);
    cr_assert_eq(m[0].position, 14);

    s_read_t r;
    cr_assert_eq(s_read(store, s_pt(0), 0, &r), TERN_OK);
    cr_assert_eq(r.n, 4);
    cr_assert_eq(r.e[0].position, 11);
    cr_assert_eq(r.e[0].msg_id, 101);
    cr_assert_eq(r.e[2].position, 13);
    cr_assert_eq(r.e[3].position, 14);
    cr_assert(r.e[3].is_ackstate);
    cr_assert_eq(r.e[3].at_ns, 5);
    cr_assert_neq(r.e[3].topic_id, 0);
    cr_assert_eq(r.e[3].topic_id, r.e[0].topic_id);
    cr_assert_eq(s_last(store, s_pt(0), NULL), 14);

    //  The new leader has up to 12 only: 13 and 14 go, and the last is 12.
    tern_store_batch_outbox_reset_pt(batch, s_pt(0), 13, 12);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(s_read(store, s_pt(0), 0, &r), TERN_OK);
    cr_assert_eq(r.n, 2);
    cr_assert_eq(r.e[1].position, 12);
    cr_assert_eq(s_last(store, s_pt(0), NULL), 12);
    tern_store_batch_destroy(&batch);
    tern_store_destroy(&store);
    store = s_open("f", PARTS, false);
    cr_assert_eq(s_last(store, s_pt(0), NULL), 12);
    tern_store_destroy(&store);
}

//  The sweep drops per partition what every known peer confirmed there,
//  and nothing of a partition one peer has not confirmed.
Test(store_outbox_pt, sweep_per_partition) {
    s_topics();
    tern_store_t *store = s_open("a", PARTS, true);
    uint64_t ids0[] = {101, 102, 103}, ids1[] = {201, 202};
    tern_outbox_mark_t marks[4];
    s_local(store, 0, ids0, 3, marks);
    s_local(store, 1, ids1, 2, marks);
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_store_batch_outbox_confirm_pt(batch, "dc2", s_pt(0), 3);
    tern_store_batch_outbox_confirm_pt(batch, "dc3", s_pt(0), 2);
    tern_store_batch_outbox_confirm_pt(batch, "dc2", s_pt(1), 2); //  dc3 nothing of pt 1
    s_commit(&batch);
    batch = tern_store_batch_new(store);
    tern_store_batch_sweep(batch, 1, 100, NULL); //  time 1: nothing past retention
    s_commit(&batch);
    s_read_t r;
    cr_assert_eq(s_read(store, s_pt(0), 0, &r), TERN_OK);
    cr_assert_eq(r.n, 1);
    cr_assert_eq(r.e[0].position, 3);
    cr_assert_eq(s_read(store, s_pt(1), 0, &r), TERN_OK);
    cr_assert_eq(r.n, 2);
    cr_assert_eq(s_last(store, s_pt(0), NULL), 3);

    //  Past retention everything unconfirmed goes, counted as dropped.
    batch = tern_store_batch_new(store);
    tern_store_batch_sweep(batch, UINT64_MAX, 100, NULL);
    s_commit(&batch);
    cr_assert_eq(s_read(store, s_pt(1), 0, &r), TERN_OK);
    cr_assert_eq(r.n, 0);
    tern_store_stats_t stats;
    tern_store_stats(store, &stats);
    cr_assert_eq(stats.outbox_dropped, 3);
    tern_store_destroy(&store);
}
