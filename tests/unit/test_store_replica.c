/*  test_store_replica.c - what an in-DC follower needs from storage: appends
    at the leader's seq (gaps, duplicates, divergence, dedup entries),
    truncation of a tail the leader does not have (counters, indexes, dedup
    entries, group state), and the digest replicas compare, all on real LMDB
    stores in the test's directory. */
#include "test_store_fixture.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define TOPIC "orders.eu"

//  Opens (or reopens) the store in subdirectory NAME of the test's directory.
static tern_store_t *s_open(const char *name) {
    static char dir[TEST_DIR_MAX + 16];
    snprintf(dir, sizeof dir, "%s/%s", test_store_dir, name);
    tern_store_config_t config = test_store_config();
    config.dir = dir;
    return test_store_open(&config);
}

//  A message as the leader stored it: MSG_ID at SEQ, producer P (NULL: none)
//  with producer seq PSEQ, payload TEXT (borrowed: a literal).
static void s_msg(tern_frame_t *msg, uint64_t seq, uint64_t msg_id, const char *p, uint64_t pseq,
                  const char *text) {
    tern_frame_init(msg, TERN_CMD_CREPL_RECORD);
    strcpy(msg->topic, TOPIC);
    strcpy(msg->origin, "dc1");
    msg->seq = seq;
    msg->msg_id = msg_id;
    msg->timestamp_ns = 1000 + seq;
    msg->payload = (const uint8_t *)text;
    msg->payload_size = strlen(text);
    msg->fields |= TERN_F_TOPIC | TERN_F_ORIGIN | TERN_F_PAYLOAD;
    if (p) {
        strcpy(msg->producer, p);
        msg->producer_seq = pseq;
        msg->fields |= TERN_F_PRODUCER;
    }
}

//  One replica append, committed; returns its result.
static tern_append_result_t s_replica(tern_store_t *store, const tern_frame_t *msg) {
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_append_result_t res;
    tern_store_batch_append_replica(batch, msg, &res);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    tern_store_batch_destroy(&batch);
    return res;
}

//  One append of MSG (tern_store_batch_append, LOCAL as given), committed;
//  returns its result.
static tern_append_result_t s_append(tern_store_t *store, const tern_frame_t *msg, bool local) {
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_append_result_t res;
    tern_store_batch_append(batch, msg, local, &res);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    tern_store_batch_destroy(&batch);
    return res;
}

//  One local append (a leader's publish), committed; returns its result.
static tern_append_result_t s_local(tern_store_t *store, uint64_t msg_id, const char *p,
                                    uint64_t pseq, const char *text) {
    tern_frame_t msg;
    s_msg(&msg, 0, msg_id, p, pseq, text);
    msg.cmd = TERN_CMD_PUBLISH;
    return s_append(store, &msg, true);
}

//  Truncates TOPIC to AFTER, committed; returns the messages removed.
static uint64_t s_truncate(tern_store_t *store, const char *topic, uint64_t after) {
    return test_store_truncate(store, topic, after, false);
}

static tern_topic_info_t s_topic(tern_store_t *store) {
    tern_store_reader_t *r = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(r), TERN_OK);
    tern_topic_info_t info;
    cr_assert_eq(tern_store_topic_get(r, TOPIC, &info), TERN_OK);
    tern_store_reader_destroy(&r);
    return info;
}

//  The digest of TOPIC up to UPTO, with the dedup entries of the messages
//  stored at or after SINCE (ns).
static uint64_t s_digest_since(tern_store_t *store, uint64_t upto, uint64_t since) {
    tern_store_reader_t *r = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(r), TERN_OK);
    uint64_t digest = 1;
    cr_assert_eq(tern_store_digest(r, TOPIC, upto, since, &digest), TERN_OK);
    tern_store_reader_destroy(&r);
    return digest;
}

static uint64_t s_digest(tern_store_t *store, uint64_t upto) {
    return s_digest_since(store, upto, 0);
}

//  Ships LEADER's messages with seq > FROM to FOLLOWER with replica appends,
//  as the leader's catch-up does; returns how many were stored.
static int s_ship(tern_store_t *leader, tern_store_t *follower, uint64_t from) {
    tern_store_reader_t *r = tern_store_reader_new(leader);
    cr_assert_eq(tern_store_read_begin(r), TERN_OK);
    tern_topic_info_t info;
    cr_assert_eq(tern_store_topic_get(r, TOPIC, &info), TERN_OK);
    int stored = 0;
    tern_frame_t msg;
    for (uint64_t seq = from + 1; tern_store_read_next(r, info.id, seq, &msg) == TERN_OK;
         seq = msg.seq + 1) {
        tern_append_result_t res = s_replica(follower, &msg);
        cr_assert_eq(res.err, TERN_OK, "seq %lu: %s", (unsigned long)msg.seq,
                     tern_errname(res.err));
        cr_assert_eq(res.seq, msg.seq);
        stored += !res.duplicate;
    }
    tern_store_reader_destroy(&r);
    return stored;
}

TestSuite(store_replica, .init = test_store_setup, .fini = test_store_teardown);

//  Usage: the leader stores publishes; the follower appends what it ships
//  at the same seqs; both logs then digest the same.
Test(store_replica, usage) {
    tern_store_t *leader = s_open("leader");
    tern_store_t *follower = s_open("follower");
    for (uint64_t i = 1; i <= 3; i++) {
        cr_assert_eq(s_local(leader, 100 + i, "p", i, "hello").seq, i);
    }
    cr_assert_eq(s_ship(leader, follower, 0), 3);
    cr_assert_eq(s_topic(follower).last_seq, 3);
    cr_assert_eq(s_digest(follower, 3), s_digest(leader, 3));
    cr_assert_neq(s_digest(leader, 3), 0);
    tern_store_destroy(&follower);
    tern_store_destroy(&leader);
}

Test(store_replica, append_at_given_seqs_with_gaps) {
    tern_store_t *store = s_open("f");
    tern_frame_t m;
    uint64_t seqs[] = {1, 2, 5, 9};
    for (size_t i = 0; i < 4; i++) {
        s_msg(&m, seqs[i], 200 + seqs[i], NULL, 0, "x");
        tern_append_result_t res = s_replica(store, &m);
        cr_assert_eq(res.err, TERN_OK);
        cr_assert_eq(res.seq, seqs[i]);
        cr_assert_eq(res.msg_id, 200 + seqs[i]);
        cr_assert_not(res.duplicate);
    }
    tern_topic_info_t info = s_topic(store);
    cr_assert_eq(info.first_seq, 1);
    cr_assert_eq(info.last_seq, 9);
    cr_assert_eq(info.msgs, 4);
    cr_assert_eq(info.bytes, 4);
    //  The gaps read as gaps, the msgid index and the lane find the records.
    tern_store_reader_t *r = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(r), TERN_OK);
    tern_frame_t out;
    cr_assert_eq(tern_store_read(r, info.id, 3, &out), TERN_ENOTFOUND);
    cr_assert_eq(tern_store_read_next(r, info.id, 3, &out), TERN_OK);
    cr_assert_eq(out.seq, 5);
    cr_assert_eq(out.msg_id, 205);
    cr_assert_eq(out.timestamp_ns, 1005);
    cr_assert_str_eq(out.origin, "dc1");
    uint32_t topic_id;
    uint64_t seq;
    cr_assert_eq(tern_store_find_msg(r, 209, &topic_id, &seq), TERN_OK);
    cr_assert_eq(seq, 9);
    uint64_t lane[8];
    size_t n;
    cr_assert_eq(tern_store_lane_scan(r, info.id, TERN_PRIORITY_DEFAULT, 1, lane, 8, &n), TERN_OK);
    cr_assert_eq(n, 4);
    cr_assert_eq(lane[2], 5);
    tern_store_reader_destroy(&r);
    //  A local append continues after the last seq.
    cr_assert_eq(s_local(store, 300, NULL, 0, "y").seq, 10);
    tern_store_destroy(&store);
}

Test(store_replica, duplicates_and_divergence) {
    tern_store_t *store = s_open("f");
    tern_frame_t m;
    s_msg(&m, 1, 501, NULL, 0, "a");
    cr_assert_eq(s_replica(store, &m).err, TERN_OK);
    s_msg(&m, 2, 502, NULL, 0, "b");
    cr_assert_eq(s_replica(store, &m).err, TERN_OK);
    //  The same record again (catch-up and live stream both had it).
    tern_append_result_t res = s_replica(store, &m);
    cr_assert_eq(res.err, TERN_OK);
    cr_assert(res.duplicate);
    cr_assert_eq(res.seq, 2);
    cr_assert_eq(res.msg_id, 502);
    //  Another message at a held seq: the log diverged.
    s_msg(&m, 1, 999, NULL, 0, "z");
    res = s_replica(store, &m);
    cr_assert_eq(res.err, TERN_ESTATE);
    cr_assert_not(res.duplicate);
    //  A held msg_id at a new seq: not the leader's log either.
    s_msg(&m, 3, 501, NULL, 0, "a");
    cr_assert_eq(s_replica(store, &m).err, TERN_ESTATE);
    //  Seqs start at 1.
    s_msg(&m, 0, 503, NULL, 0, "c");
    cr_assert_eq(s_replica(store, &m).err, TERN_ERANGE);
    tern_topic_info_t info = s_topic(store);
    cr_assert_eq(info.last_seq, 2);
    cr_assert_eq(info.msgs, 2);
    //  A duplicate of a record this node already removed (retention) is
    //  still a duplicate, not a divergence.
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_topic_limits_t limits = {0, 1, 0};
    tern_store_batch_topic_put(batch, TOPIC, TERN_TOPIC_EDIT, &limits, NULL, NULL);
    s_msg(&m, 3, 503, NULL, 0, "c");
    tern_store_batch_append_replica(batch, &m, &res);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    tern_store_batch_destroy(&batch);
    cr_assert_eq(res.err, TERN_OK);
    cr_assert_eq(s_topic(store).msgs, 1);
    s_msg(&m, 2, 502, NULL, 0, "b");
    res = s_replica(store, &m);
    cr_assert_eq(res.err, TERN_OK);
    cr_assert(res.duplicate);
    tern_store_destroy(&store);
}

Test(store_replica, dedup_entry_travels_with_the_record) {
    tern_store_t *store = s_open("f");
    tern_frame_t m;
    s_msg(&m, 4, 700, "p", 7, "a");
    cr_assert_eq(s_replica(store, &m).err, TERN_OK);
    //  After a failover this node leads: the producer's retry is a
    //  duplicate of the record the old leader stored.
    tern_append_result_t res = s_local(store, 900, "p", 7, "a");
    cr_assert_eq(res.err, TERN_OK);
    cr_assert(res.duplicate);
    cr_assert_eq(res.msg_id, 700);
    cr_assert_eq(res.seq, 4);
    //  The leader's decision wins over an entry the follower had: the pair
    //  now names the shipped record (never refused).
    cr_assert_eq(s_local(store, 710, "q", 1, "b").seq, 5);
    s_msg(&m, 6, 720, "q", 1, "c");
    res = s_replica(store, &m);
    cr_assert_eq(res.err, TERN_OK);
    cr_assert_not(res.duplicate);
    res = s_local(store, 901, "q", 1, "c");
    cr_assert(res.duplicate);
    cr_assert_eq(res.msg_id, 720);
    cr_assert_eq(res.seq, 6);
    tern_store_stats_t stats;
    tern_store_stats(store, &stats);
    cr_assert_eq(stats.dedup_entries, 2);
    tern_store_destroy(&store);
}

//  A twin (the same producer seq accepted in two DCs): the leader keeps
//  the lower msg_id and removes its copy (st_supersede); its follower, which
//  holds that copy, removes it too when the winning record arrives in the
//  stream, and the two logs stay the same.
Test(store_replica, twin_superseded_on_the_follower_too) {
    tern_store_t *leader = s_open("l");
    tern_store_t *follower = s_open("f");
    cr_assert_eq(s_local(leader, 900, "p", 1, "ours").seq, 1);
    cr_assert_eq(s_ship(leader, follower, 0), 1);
    //  The other DC's copy, lower id, applied at the leader (local false).
    tern_frame_t twin;
    s_msg(&twin, 0, 800, "p", 1, "theirs");
    strcpy(twin.origin, "dc2");
    twin.cmd = TERN_CMD_REPL_RECORD;
    tern_append_result_t res = s_append(leader, &twin, false);
    cr_assert_eq(res.err, TERN_OK);
    cr_assert_not(res.duplicate);
    cr_assert_eq(res.seq, 2);
    cr_assert_eq(s_ship(leader, follower, 1), 1);
    tern_store_t *stores[2] = {leader, follower};
    for (int i = 0; i < 2; i++) {
        tern_store_reader_t *r = tern_store_reader_new(stores[i]);
        cr_assert_eq(tern_store_read_begin(r), TERN_OK);
        tern_frame_t m;
        cr_assert_neq(tern_store_read(r, s_topic(stores[i]).id, 1, &m), TERN_OK,
                      "store %d still holds the losing copy", i);
        tern_store_reader_destroy(&r);
        tern_store_stats_t stats;
        tern_store_stats(stores[i], &stats);
        cr_assert_eq(stats.superseded, 1, "store %d", i);
        cr_assert_eq(s_topic(stores[i]).msgs, 1, "store %d", i);
    }
    cr_assert_eq(s_digest(leader, 2), s_digest(follower, 2));
    //  A retry of the pair is a duplicate of the winner on either.
    res = s_local(follower, 901, "p", 1, "ours");
    cr_assert(res.duplicate);
    cr_assert_eq(res.msg_id, 800);
    tern_store_destroy(&leader);
    tern_store_destroy(&follower);
}

Test(store_replica, truncate_then_append_continues) {
    tern_store_t *store = s_open("f");
    for (uint64_t i = 1; i <= 5; i++) {
        cr_assert_eq(s_local(store, 100 + i, NULL, 0, "12345").seq, i);
    }
    cr_assert_eq(s_truncate(store, TOPIC, 3), 2);
    tern_topic_info_t info = s_topic(store);
    cr_assert_eq(info.last_seq, 3);
    cr_assert_eq(info.first_seq, 1);
    cr_assert_eq(info.msgs, 3);
    cr_assert_eq(info.bytes, 15);
    //  A local append gets 4; after truncating that, a replica append at 4.
    cr_assert_eq(s_local(store, 200, NULL, 0, "x").seq, 4);
    cr_assert_eq(s_truncate(store, TOPIC, 3), 1);
    tern_frame_t m;
    s_msg(&m, 4, 104, NULL, 0, "12345"); //  the truncated msg_id may come back
    tern_append_result_t res = s_replica(store, &m);
    cr_assert_eq(res.err, TERN_OK);
    cr_assert_not(res.duplicate);
    cr_assert_eq(s_topic(store).last_seq, 4);
    //  A re-sync's truncation and the records after it commit in one batch.
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_err_t err = TERN_EINTERNAL;
    uint64_t removed = 0;
    tern_store_batch_truncate(batch, TOPIC, 3, &err, &removed);
    tern_frame_t m2;
    s_msg(&m2, 5, 106, NULL, 0, "12345");
    tern_store_batch_append_replica(batch, &m, &res);
    tern_append_result_t res2;
    tern_store_batch_append_replica(batch, &m2, &res2);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    tern_store_batch_destroy(&batch);
    cr_assert_eq(err, TERN_OK);
    cr_assert_eq(removed, 1);
    cr_assert_eq(res.err, TERN_OK);
    cr_assert_not(res.duplicate);
    cr_assert_eq(res2.err, TERN_OK);
    cr_assert_eq(s_topic(store).last_seq, 5);
    cr_assert_eq(s_truncate(store, TOPIC, 4), 1);
    //  The removed ones are gone from the msgid index.
    tern_store_reader_t *r = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(r), TERN_OK);
    uint32_t topic_id;
    uint64_t seq;
    cr_assert_eq(tern_store_find_msg(r, 105, &topic_id, &seq), TERN_ENOTFOUND);
    cr_assert_eq(tern_store_find_msg(r, 200, &topic_id, &seq), TERN_ENOTFOUND);
    cr_assert_eq(tern_store_find_msg(r, 104, &topic_id, &seq), TERN_OK);
    cr_assert_eq(seq, 4);
    tern_store_reader_destroy(&r);
    //  Nothing beyond the end, a missing topic, everything.
    cr_assert_eq(s_truncate(store, TOPIC, 4), 0);
    cr_assert_eq(s_truncate(store, TOPIC, 10), 0);
    cr_assert_eq(s_topic(store).last_seq, 4);
    cr_assert_eq(s_truncate(store, "no.such.topic", 0), 0);
    cr_assert_eq(s_truncate(store, TOPIC, 0), 4);
    info = s_topic(store);
    cr_assert_eq(info.last_seq, 0);
    cr_assert_eq(info.first_seq, 1);
    cr_assert_eq(info.msgs, 0);
    cr_assert_eq(info.bytes, 0);
    cr_assert_eq(s_local(store, 300, NULL, 0, "y").seq, 1);
    //  A bad name is refused.
    batch = tern_store_batch_new(store);
    err = TERN_OK;
    tern_store_batch_truncate(batch, "", 0, &err, NULL);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    tern_store_batch_destroy(&batch);
    cr_assert_eq(err, TERN_ETOPIC);
    tern_store_destroy(&store);
}

Test(store_replica, truncate_removes_dedup_entries) {
    tern_store_t *store = s_open("f");
    for (uint64_t i = 1; i <= 5; i++) {
        cr_assert_eq(s_local(store, 100 + i, "p", i, "x").seq, i);
    }
    tern_store_stats_t stats;
    tern_store_stats(store, &stats);
    cr_assert_eq(stats.dedup_entries, 5);
    cr_assert_eq(s_truncate(store, TOPIC, 3), 2);
    tern_store_stats(store, &stats);
    cr_assert_eq(stats.dedup_entries, 3);
    //  (p, 4) is new again; (p, 2) is still a duplicate.
    tern_append_result_t res = s_local(store, 400, "p", 4, "x");
    cr_assert_eq(res.err, TERN_OK);
    cr_assert_not(res.duplicate);
    cr_assert_eq(res.seq, 4);
    res = s_local(store, 401, "p", 2, "x");
    cr_assert(res.duplicate);
    cr_assert_eq(res.msg_id, 102);
    //  A replica record's entry goes with it too.
    tern_frame_t m;
    s_msg(&m, 5, 105, "p", 5, "x");
    cr_assert_eq(s_replica(store, &m).err, TERN_OK);
    cr_assert_eq(s_truncate(store, TOPIC, 4), 1);
    res = s_local(store, 501, "p", 5, "x");
    cr_assert_not(res.duplicate);
    cr_assert_eq(res.seq, 5);
    tern_store_stats(store, &stats);
    cr_assert_eq(stats.dedup_entries, 5);
    tern_store_destroy(&store);
}

//  A record delivered to group G and left pending, or dead-lettered.
static void s_deliver(tern_store_batch_t *batch, uint32_t topic_id, uint64_t seq) {
    tern_store_batch_deliver(batch, topic_id, "g", seq,
                             &(tern_delivery_t){TERN_PRIORITY_DEFAULT, 1, 5000, "c1"});
}

Test(store_replica, truncate_drops_group_entries_and_clamps_cursors) {
    tern_store_t *store = s_open("f");
    for (uint64_t i = 1; i <= 6; i++) {
        tern_frame_t m;
        s_msg(&m, i, 100 + i, NULL, 0, "x");
        m.expire_at_ns = 1000000 + i; //  in 1970: expired for the sweep below
        cr_assert_eq(s_replica(store, &m).err, TERN_OK);
    }
    uint32_t id = s_topic(store).id;
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_store_batch_group_open(batch, id, "g", TERN_START_FIRST, 0, NULL, NULL);
    tern_store_batch_group_open(batch, id, "h", TERN_START_FIRST, 0, NULL, NULL);
    for (uint64_t seq = 2; seq <= 6; seq++) {
        s_deliver(batch, id, seq);
    }
    tern_store_batch_ack(batch, id, "g", 3, 0);
    tern_store_batch_dead(batch, id, "g", 6, 1, "bad");
    tern_store_batch_dead(batch, id, "g", 2, 1, "bad");
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    //  g: pending 4, 5; dead 2, 6; lane cursor 7. h: nothing delivered.
    cr_assert_eq(s_truncate(store, TOPIC, 4), 2);

    tern_store_reader_t *r = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(r), TERN_OK);
    tern_group_info_t g;
    cr_assert_eq(tern_store_group_get(r, id, "g", &g), TERN_OK);
    cr_assert_eq(g.pending, 1);
    cr_assert_eq(g.dead, 1);
    cr_assert_eq(g.lane_next[TERN_PRIORITY_DEFAULT], 5);
    cr_assert_eq(g.next_unacked, 4);
    tern_entry_t e;
    cr_assert_eq(tern_store_dlq_get(r, id, "g", 6, &e), TERN_ENOTFOUND);
    cr_assert_eq(tern_store_dlq_get(r, id, "g", 2, &e), TERN_OK);
    cr_assert_eq(tern_store_group_get(r, id, "h", &g), TERN_OK);
    cr_assert_eq(g.lane_next[TERN_PRIORITY_DEFAULT], 1);
    //  The lane index holds 1..4 only.
    uint64_t lane[8];
    size_t n;
    cr_assert_eq(tern_store_lane_scan(r, id, TERN_PRIORITY_DEFAULT, 1, lane, 8, &n), TERN_OK);
    cr_assert_eq(n, 4);
    cr_assert_eq(lane[3], 4);
    tern_store_reader_destroy(&r);

    //  The expiry index lost the removed ones: a sweep removes the 4 left.
    uint64_t swept = 0;
    tern_store_batch_sweep(batch, 2000000, 100, &swept);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    cr_assert_eq(swept, 4);
    tern_store_batch_destroy(&batch);
    cr_assert_eq(s_topic(store).msgs, 0);
    tern_store_destroy(&store);
}

Test(store_replica, truncate_a_group_opened_in_the_same_batch) {
    tern_store_t *store = s_open("f");
    for (uint64_t i = 1; i <= 3; i++) {
        cr_assert_eq(s_local(store, 100 + i, NULL, 0, "x").seq, i);
    }
    uint32_t id = s_topic(store).id;
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_store_batch_group_open(batch, id, "g", TERN_START_NEW, 0, NULL, NULL);
    tern_err_t err = TERN_EINTERNAL;
    tern_store_batch_truncate(batch, TOPIC, 1, &err, NULL);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    tern_store_batch_destroy(&batch);
    cr_assert_eq(err, TERN_OK);
    tern_store_reader_t *r = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(r), TERN_OK);
    tern_group_info_t g;
    cr_assert_eq(tern_store_group_get(r, id, "g", &g), TERN_OK);
    cr_assert_eq(g.lane_next[0], 2); //  was 4 (NEW), clamped
    tern_store_reader_destroy(&r);
    tern_store_destroy(&store);
}

Test(store_replica, digest_same_logs_same_digest) {
    tern_store_t *a = s_open("a");
    tern_store_t *b = s_open("b");
    //  Same contents through different paths and topic ids: b has another
    //  topic first, so its orders.eu has another id.
    tern_frame_t other;
    s_msg(&other, 1, 50, NULL, 0, "other");
    strcpy(other.topic, "other");
    cr_assert_eq(s_replica(b, &other).err, TERN_OK);
    const char *texts[] = {"one", "two", "three", "four"};
    for (uint64_t i = 1; i <= 4; i++) {
        cr_assert_eq(s_local(a, 100 + i, i % 2 ? "p" : NULL, i, texts[i - 1]).seq, i);
    }
    cr_assert_eq(s_ship(a, b, 0), 4);
    for (uint64_t upto = 0; upto <= 5; upto++) {
        cr_assert_eq(s_digest(a, upto), s_digest(b, upto), "upto %lu", (unsigned long)upto);
    }
    cr_assert_neq(s_digest(a, 3), s_digest(a, 4)); //  order- and extent-sensitive
    cr_assert_eq(s_digest(a, 0), 0);

    //  One record differs (same seq and id, another payload): the digest
    //  differs from that record on.
    tern_store_t *c = s_open("c");
    tern_store_reader_t *r = tern_store_reader_new(a);
    cr_assert_eq(tern_store_read_begin(r), TERN_OK);
    uint32_t id = s_topic(a).id;
    for (uint64_t seq = 1; seq <= 4; seq++) {
        tern_frame_t m;
        cr_assert_eq(tern_store_read(r, id, seq, &m), TERN_OK);
        if (seq == 3) {
            m.payload = (const uint8_t *)"THREE";
        }
        cr_assert_eq(s_replica(c, &m).err, TERN_OK);
    }
    tern_store_reader_destroy(&r);
    cr_assert_eq(s_digest(c, 2), s_digest(a, 2));
    cr_assert_neq(s_digest(c, 3), s_digest(a, 3));
    cr_assert_neq(s_digest(c, 4), s_digest(a, 4));

    //  A dedup entry differs: b's (p, 1) is repointed by a later replica
    //  record; the digest of seqs 1..4 changes though those records did not.
    uint64_t before = s_digest(b, 4);
    tern_frame_t m;
    s_msg(&m, 5, 900, "p", 1, "again");
    cr_assert_eq(s_replica(b, &m).err, TERN_OK);
    cr_assert_neq(s_digest(b, 4), before);
    //  Truncated and shipped again: identical again.
    cr_assert_eq(s_truncate(b, TOPIC, 0), 5);
    cr_assert_eq(s_ship(a, b, 0), 4);
    cr_assert_eq(s_digest(b, 4), s_digest(a, 4));

    //  Errors: no reader snapshot, no out pointer, a bad name; a missing
    //  topic digests as an empty one.
    r = tern_store_reader_new(a);
    uint64_t d = 7;
    cr_assert_eq(tern_store_digest(r, TOPIC, 4, 0, &d), TERN_ESTATE);
    cr_assert_eq(tern_store_read_begin(r), TERN_OK);
    cr_assert_eq(tern_store_digest(r, TOPIC, 4, 0, NULL), TERN_EINVAL);
    cr_assert_eq(tern_store_digest(r, "", 4, 0, &d), TERN_ETOPIC);
    cr_assert_eq(tern_store_digest(r, "no.such", 4, 0, &d), TERN_OK);
    cr_assert_eq(d, 0);
    tern_store_reader_destroy(&r);
    tern_store_destroy(&c);
    tern_store_destroy(&b);
    tern_store_destroy(&a);
}

//  Each node stamps a dedup entry with its own commit time and sweeps it on
//  its own clock: a follower that copied the log late (re-seeded) still
//  holds entries its leader expired. The digest compares only the entries
//  of messages stored since the time it is given (the soak's `cluster
//  verify` failure, docs/cluster.md), and still every one of those.
Test(store_replica, digest_leaves_out_dedup_entries_older_than_since) {
    tern_store_t *a = s_open("a");
    tern_store_t *b = s_open("b");
    const char *texts[] = {"one", "two", "three", "four"};
    for (uint64_t i = 1; i <= 4; i++) {
        tern_frame_t msg;
        s_msg(&msg, 0, 100 + i, "p", i, texts[i - 1]);
        msg.cmd = TERN_CMD_PUBLISH;
        msg.timestamp_ns = 1000 + i; //  stored at 1001..1004
        cr_assert_eq(s_append(a, &msg, true).seq, i);
    }
    //  The leader's window passes (a sweep a window and a second from
    //  now); then the follower copies the log: its entries are new.
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t later = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec +
                     (test_store_config().dedup_window_ms + 1000) * 1000000ull;
    tern_store_batch_t *batch = tern_store_batch_new(a);
    tern_store_batch_sweep(batch, later, 1000, NULL);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    tern_store_batch_destroy(&batch);
    tern_store_stats_t stats;
    tern_store_stats(a, &stats);
    cr_assert_eq(stats.dedup_entries, 0, "the leader's entries were swept");
    cr_assert_eq(s_ship(a, b, 0), 4);
    tern_store_stats(b, &stats);
    cr_assert_eq(stats.dedup_entries, 4);
    //  Every entry compared: they differ. From 1004 only record 4's entry is compared
    //  (absent on a, present on b); from 1005 none, and the logs agree.
    cr_assert_neq(s_digest(a, 4), s_digest(b, 4));
    cr_assert_neq(s_digest_since(a, 4, 1004), s_digest_since(b, 4, 1004));
    cr_assert_eq(s_digest_since(a, 4, 1005), s_digest_since(b, 4, 1005));
    cr_assert_eq(s_digest_since(a, 3, 1004), s_digest_since(b, 3, 1004));
    //  A record that differs still counts, whatever SINCE.
    tern_frame_t m;
    s_msg(&m, 5, 900, NULL, 0, "five");
    cr_assert_eq(s_replica(b, &m).err, TERN_OK);
    cr_assert_neq(s_digest_since(a, 5, 1005), s_digest_since(b, 5, 1005));
    tern_store_destroy(&b);
    tern_store_destroy(&a);
}

Test(store_replica, survives_close_and_reopen) {
    tern_store_t *a = s_open("a");
    tern_store_t *b = s_open("b");
    for (uint64_t i = 1; i <= 5; i++) {
        cr_assert_eq(s_local(a, 100 + i, "p", i, "x").seq, i);
    }
    cr_assert_eq(s_ship(a, b, 0), 5);
    //  b diverges (a record a never had), then truncates to a's log.
    cr_assert_eq(s_local(b, 999, "p", 6, "junk").seq, 6);
    uint64_t digest = s_digest(a, 5);
    tern_store_destroy(&b);
    b = s_open("b");
    cr_assert_eq(s_digest(b, 5), digest);
    cr_assert_eq(s_truncate(b, TOPIC, 5), 1);
    tern_store_destroy(&b);
    b = s_open("b");
    tern_topic_info_t info = s_topic(b);
    cr_assert_eq(info.last_seq, 5);
    cr_assert_eq(info.msgs, 5);
    cr_assert_eq(s_digest(b, UINT64_MAX), s_digest(a, UINT64_MAX));
    //  (p, 6) is free again and the next seq is 6, on both.
    tern_append_result_t res = s_local(a, 106, "p", 6, "x");
    cr_assert_eq(res.seq, 6);
    cr_assert_eq(s_ship(a, b, 5), 1);
    cr_assert_eq(s_digest(b, UINT64_MAX), s_digest(a, UINT64_MAX));
    tern_store_destroy(&b);
    tern_store_destroy(&a);
}

static bool s_count_event(const tern_trace_event_t *event, void *arg) {
    uint64_t *ids = arg;
    ids[0]++;
    ids[1] = event->msg_id ? event->msg_id : ids[1];
    return true;
}

//  Events of seqs FROM..TO: how many, and the last msg_id named.
static void s_events(tern_store_t *store, uint32_t id, uint64_t from, uint64_t to, uint64_t *count,
                     uint64_t *msg_id) {
    tern_store_reader_t *r = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(r), TERN_OK);
    uint64_t acc[2] = {0, 0};
    cr_assert_eq(tern_store_trace_scan(r, id, from, to, s_count_event, acc), TERN_OK);
    tern_store_reader_destroy(&r);
    *count = acc[0];
    *msg_id = acc[1];
}

static tern_err_t s_trace_find(tern_store_t *store, uint64_t msg_id) {
    tern_store_reader_t *r = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(r), TERN_OK);
    uint32_t topic_id;
    uint64_t seq;
    tern_err_t err = tern_store_trace_find(r, msg_id, &topic_id, &seq);
    tern_store_reader_destroy(&r);
    return err;
}

Test(store_replica, truncate_removes_history_of_the_given_back_seqs) {
    tern_store_t *store = s_open("f");
    for (uint64_t i = 1; i <= 5; i++) {
        tern_frame_t m;
        s_msg(&m, i, 100 + i, NULL, 0, "x");
        m.expire_at_ns = i == 4 ? 1000004 : 0;
        cr_assert_eq(s_replica(store, &m).err, TERN_OK);
    }
    uint32_t id = s_topic(store).id;
    tern_store_batch_t *batch = tern_store_batch_new(store);
    tern_store_batch_group_open(batch, id, "g", TERN_START_FIRST, 0, NULL, NULL);
    s_deliver(batch, id, 5);
    uint64_t swept = 0;
    tern_store_batch_sweep(batch, 2000000, 100, &swept); //  seq 4 expires: its history stays
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    tern_store_batch_destroy(&batch);
    cr_assert_eq(swept, 1);
    cr_assert_eq(s_trace_find(store, 104), TERN_OK);
    uint64_t count, msg_id;
    s_events(store, id, 4, 5, &count, &msg_id);
    cr_assert_eq(count, 4); //  STORED and EXPIRED of 4, STORED and DELIVERED of 5

    cr_assert_eq(s_truncate(store, TOPIC, 3), 1);
    s_events(store, id, 4, UINT64_MAX, &count, &msg_id);
    cr_assert_eq(count, 0);
    cr_assert_eq(s_trace_find(store, 104), TERN_ENOTFOUND);
    cr_assert_eq(s_trace_find(store, 105), TERN_ENOTFOUND);
    cr_assert_eq(s_trace_find(store, 103), TERN_OK);
    //  Seq 4 now holds another message, with its own history only.
    tern_frame_t m;
    s_msg(&m, 4, 900, NULL, 0, "y");
    cr_assert_eq(s_replica(store, &m).err, TERN_OK);
    s_events(store, id, 4, 4, &count, &msg_id);
    cr_assert_eq(count, 1);
    cr_assert_eq(msg_id, 900);
    s_events(store, id, 1, 3, &count, &msg_id);
    cr_assert_eq(count, 3);
    tern_store_destroy(&store);
}

//  The leader's records through the wire as CREPL_RECORD (encode, decode),
//  with every optional field, give the follower the same digest.
Test(store_replica, through_the_wire_codec) {
    tern_store_t *leader = s_open("leader");
    tern_store_t *follower = s_open("follower");
    uint8_t meta[64];
    size_t meta_len;
    tern_kv_t kv[] = {{"ct", 2, "json", 4}};
    cr_assert_eq(tern_meta_encode(kv, 1, meta, sizeof meta, &meta_len), TERN_OK);
    for (uint64_t i = 1; i <= 4; i++) {
        tern_frame_t pub;
        s_msg(&pub, 0, 100 + i, i % 2 ? "p" : NULL, i, i == 3 ? "" : "body");
        pub.cmd = TERN_CMD_PUBLISH;
        if (i == 2) {
            strcpy(pub.key, "k");
            strcpy(pub.trace_id, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
            pub.meta = meta;
            pub.meta_size = meta_len;
            pub.meta_count = 1;
            pub.priority = 9;
            pub.expire_at_ns = 1ull << 62;
            pub.ttl_ms = 5000;
            pub.fields |= TERN_F_KEY | TERN_F_TRACE | TERN_F_META | TERN_F_TTL | TERN_F_EXPIRE;
        }
        tern_store_batch_t *batch = tern_store_batch_new(leader);
        tern_append_result_t res;
        tern_store_batch_append(batch, &pub, true, &res);
        cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
        tern_store_batch_destroy(&batch);
        cr_assert_eq(res.err, TERN_OK);
    }
    tern_store_reader_t *r = tern_store_reader_new(leader);
    cr_assert_eq(tern_store_read_begin(r), TERN_OK);
    uint32_t id = s_topic(leader).id;
    tern_frame_t rec;
    for (uint64_t seq = 1; tern_store_read_next(r, id, seq, &rec) == TERN_OK; seq = rec.seq + 1) {
        rec.cmd = TERN_CMD_CREPL_RECORD;
        rec.partition = 3;
        rec.epoch = 77;
        rec.position = seq;
        uint8_t hdr[TERN_HEADER_MAX];
        size_t len;
        cr_assert_eq(tern_frame_encode(&rec, hdr, sizeof hdr, &len), TERN_OK);
        tern_frame_t in;
        cr_assert_eq(tern_frame_decode(&in, hdr, len, rec.payload, rec.payload_size, NULL),
                     TERN_OK);
        cr_assert_eq(in.seq, rec.seq);
        tern_append_result_t res = s_replica(follower, &in);
        cr_assert_eq(res.err, TERN_OK, "%s", tern_errname(res.err));
    }
    tern_store_reader_destroy(&r);
    cr_assert_eq(s_topic(follower).msgs, 4);
    cr_assert_eq(s_digest(follower, UINT64_MAX), s_digest(leader, UINT64_MAX));
    tern_store_destroy(&follower);
    tern_store_destroy(&leader);
}

//  A cluster node's storer defers the meta page's flush of each commit to
//  tern_store_sync (tern_store_defer_sync): the commits are visible at once,
//  and what was synced is there after a reopen.
Test(store_replica, deferred_flush) {
    static char dir[TEST_DIR_MAX + 16];
    snprintf(dir, sizeof dir, "%s/deferred", test_store_dir);
    tern_store_config_t config = test_store_config();
    config.dir = dir;
    config.durability = TERN_DURABILITY_FSYNC;
    tern_store_t *store = test_store_open(&config);
    cr_assert_eq(tern_store_defer_sync(store, true), TERN_OK);
    for (uint64_t i = 1; i <= 3; i++) {
        cr_assert_eq(s_local(store, 100 + i, "p", i, "x").seq, i);
        cr_assert_eq(s_topic(store).last_seq, i); //  readers see it before the flush
        cr_assert_eq(tern_store_sync(store), TERN_OK);
    }
    cr_assert_eq(tern_store_defer_sync(store, false), TERN_OK);
    tern_store_destroy(&store);
    store = test_store_open(&config);
    cr_assert_eq(s_topic(store).last_seq, 3);
    tern_store_destroy(&store);
    //  Nothing to defer without durability fsync; NULL is refused.
    tern_store_t *plain = s_open("plain");
    cr_assert_eq(tern_store_defer_sync(plain, true), TERN_EINVAL);
    cr_assert_eq(tern_store_sync(plain), TERN_OK);
    tern_store_destroy(&plain);
    cr_assert_eq(tern_store_defer_sync(NULL, true), TERN_EINVAL);
    cr_assert_eq(tern_store_sync(NULL), TERN_EINVAL);
}
