/*  test_store_gstate.c - group state an in-DC follower gets from its leader:
    the leader's group ops applied by topic name, snapshots that replace a
    group's state, pruning of groups the leader lacks, the group digest
    replicas compare, and the payload codec of CREPL_GROUP / CREPL_GSTATE;
    on real LMDB stores in the test's directory. */
#include "test_store_fixture.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOPIC "orders.eu"

static tern_store_t *s_open(const char *name) {
    static char dir[TEST_DIR_MAX + 16];
    snprintf(dir, sizeof dir, "%s/%s", test_store_dir, name);
    tern_store_config_t config = test_store_config();
    config.dir = dir;
    return test_store_open(&config);
}

//  Publishes COUNT messages on the leader and ships them to the follower at
//  the same seqs (what the record path does).
static void s_logs(tern_store_t *leader, tern_store_t *follower, int count) {
    for (int i = 1; i <= count; i++) {
        tern_frame_t msg;
        tern_frame_init(&msg, TERN_CMD_PUBLISH);
        strcpy(msg.topic, TOPIC);
        msg.payload = (const uint8_t *)"x";
        msg.payload_size = 1;
        static uint64_t next_id = 1000; //  unique across calls: a repeat is a duplicate
        msg.msg_id = ++next_id;
        msg.fields |= TERN_F_TOPIC | TERN_F_PAYLOAD;
        tern_append_result_t res;
        tern_store_batch_t *batch = tern_store_batch_new(leader);
        tern_store_batch_append(batch, &msg, true, &res);
        cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
        tern_store_batch_destroy(&batch);
        cr_assert_eq(res.err, TERN_OK);
        msg.cmd = TERN_CMD_CREPL_RECORD;
        msg.seq = res.seq;
        msg.msg_id = res.msg_id;
        batch = tern_store_batch_new(follower);
        tern_store_batch_append_replica(batch, &msg, &res);
        cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
        tern_store_batch_destroy(&batch);
        cr_assert_eq(res.err, TERN_OK, "%s", tern_errname(res.err));
    }
}

static uint32_t s_topic_id(tern_store_t *store) {
    tern_store_reader_t *r = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(r), TERN_OK);
    tern_topic_info_t info;
    cr_assert_eq(tern_store_topic_get(r, TOPIC, &info), TERN_OK);
    tern_store_reader_destroy(&r);
    return info.id;
}

static tern_gop_t s_gop(uint8_t type, const char *group, uint64_t seq) {
    tern_gop_t op;
    memset(&op, 0, sizeof op);
    op.type = type;
    op.seq = seq;
    snprintf(op.group, sizeof op.group, "%s", group);
    return op;
}

//  The leader's ops of the tests: open g, deliver 1..4, ack 1, nack 2,
//  dead 3 (TERM), into OPS; returns how many.
static size_t s_script(tern_gop_t *ops) {
    size_t n = 0;
    ops[n++] = s_gop(TERN_GOP_OPEN, "g", 0); //  aux 0: TERN_START_FIRST
    for (uint64_t seq = 1; seq <= 4; seq++) {
        ops[n] = s_gop(TERN_GOP_DELIVER, "g", seq);
        ops[n].count = 1;
        ops[n++].value = 5000 + seq;
    }
    ops[n++] = s_gop(TERN_GOP_ACK, "g", 1);
    ops[n] = s_gop(TERN_GOP_NACK, "g", 2);
    ops[n++].value = 9000;
    ops[n] = s_gop(TERN_GOP_DEAD, "g", 3);
    ops[n].count = 1;
    snprintf(ops[n++].reason, sizeof ops[0].reason, "poison");
    return n;
}

//  Applies OPS as the leader's storer does (by topic id).
static void s_leader_apply(tern_store_t *store, const tern_gop_t *ops, size_t count) {
    uint32_t id = s_topic_id(store);
    tern_store_batch_t *batch = tern_store_batch_new(store);
    for (size_t i = 0; i < count; i++) {
        const tern_gop_t *op = &ops[i];
        tern_delivery_t d = {0, op->count, op->value, NULL};
        switch (op->type) {
            case TERN_GOP_OPEN:
                tern_store_batch_group_open(batch, id, op->group, TERN_START_FIRST, 0, NULL, NULL);
                break;
            case TERN_GOP_DELIVER:
                tern_store_batch_deliver(batch, id, op->group, op->seq, &d);
                break;
            case TERN_GOP_ACK:
                tern_store_batch_ack(batch, id, op->group, op->seq, 0);
                break;
            case TERN_GOP_NACK:
                tern_store_batch_nack(batch, id, op->group, op->seq, op->value, 0);
                break;
            case TERN_GOP_DEAD:
                tern_store_batch_dead(batch, id, op->group, op->seq, op->count, op->reason);
                break;
            default:
                cr_assert_fail("not in the script");
        }
    }
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    tern_store_batch_destroy(&batch);
}

//  Applies OPS as a follower does (by topic name); returns what was skipped.
static uint64_t s_follower_apply(tern_store_t *store, const char *topic, const tern_gop_t *ops,
                                 size_t count) {
    uint64_t skipped = 0;
    tern_store_batch_t *batch = tern_store_batch_new(store);
    for (size_t i = 0; i < count; i++) {
        tern_store_batch_group_apply(batch, topic, &ops[i], &skipped);
    }
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    tern_store_batch_destroy(&batch);
    return skipped;
}

static uint64_t s_gdigest(tern_store_t *store, uint64_t upto) {
    tern_store_reader_t *r = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(r), TERN_OK);
    uint64_t digest = 1;
    cr_assert_eq(tern_store_group_digest(r, TOPIC, upto, &digest), TERN_OK);
    tern_store_reader_destroy(&r);
    return digest;
}

typedef struct {
    uint64_t seqs[16]; //  entries seen
    size_t count;      //  used
} s_seen_t;

static bool s_see(const tern_entry_t *entry, void *arg) {
    s_seen_t *seen = arg;
    seen->seqs[seen->count++] = entry->seq;
    return seen->count < 16;
}

//  The seqs of GROUP's pending (DLQ false) or DLQ entries.
static s_seen_t s_entries(tern_store_t *store, const char *group, bool dlq) {
    s_seen_t seen = {{0}, 0};
    tern_store_reader_t *r = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(r), TERN_OK);
    uint32_t id = s_topic_id(store);
    tern_err_t rc = dlq ? tern_store_dlq_list(r, id, group, s_see, &seen)
                        : tern_store_pending_list(r, id, group, s_see, &seen);
    cr_assert_eq(rc, TERN_OK);
    tern_store_reader_destroy(&r);
    return seen;
}

static bool s_has_group(tern_store_t *store, const char *group) {
    tern_store_reader_t *r = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(r), TERN_OK);
    tern_group_info_t info;
    tern_err_t rc = tern_store_group_get(r, s_topic_id(store), group, &info);
    tern_store_reader_destroy(&r);
    return rc == TERN_OK;
}

//  Both stores with the same 5-message log, the script applied on the
//  leader into OPS; returns the script's length.
static size_t s_pair(tern_store_t **leader, tern_store_t **follower, tern_gop_t *ops) {
    *leader = s_open("leader");
    *follower = s_open("follower");
    s_logs(*leader, *follower, 5);
    size_t n = s_script(ops);
    s_leader_apply(*leader, ops, n);
    return n;
}

static void s_close(tern_store_t *leader, tern_store_t *follower) {
    tern_store_destroy(&follower);
    tern_store_destroy(&leader);
}

TestSuite(store_gstate, .init = test_store_setup, .fini = test_store_teardown);

//  Usage: the leader's group ops, applied on the follower by topic name,
//  give the same group state (and digest).
Test(store_gstate, usage) {
    tern_store_t *leader, *follower;
    tern_gop_t ops[16];
    size_t n = s_pair(&leader, &follower, ops);
    cr_assert_neq(s_gdigest(leader, 5), s_gdigest(follower, 5)); //  no group there yet
    cr_assert_eq(s_follower_apply(follower, TOPIC, ops, n), 0);
    cr_assert_eq(s_gdigest(follower, 5), s_gdigest(leader, 5));
    s_seen_t pending = s_entries(follower, "g", false), dead = s_entries(follower, "g", true);
    cr_assert_eq(pending.count, 2);
    cr_assert_eq(pending.seqs[0], 2);
    cr_assert_eq(pending.seqs[1], 4);
    cr_assert_eq(dead.count, 1);
    cr_assert_eq(dead.seqs[0], 3);
    s_close(leader, follower);
}

//  Ops the follower already holds (a suffix sent again after a snapshot)
//  change nothing: every suffix of the script, applied again, converges.
Test(store_gstate, reapplied_suffix_converges) {
    tern_store_t *leader, *follower;
    tern_gop_t ops[16];
    size_t n = s_pair(&leader, &follower, ops);
    s_follower_apply(follower, TOPIC, ops, n);
    for (size_t from = 0; from < n; from++) {
        s_follower_apply(follower, TOPIC, ops + from, n - from);
        cr_assert_eq(s_gdigest(follower, 5), s_gdigest(leader, 5), "suffix from op %zu", from);
    }
    s_close(leader, follower);
}

//  What the follower lacks is skipped and counted, never fatal.
Test(store_gstate, missing_topic_seq_or_group_is_skipped) {
    tern_store_t *leader = s_open("leader"), *follower = s_open("follower");
    s_logs(leader, follower, 2);
    tern_gop_t ops[3] = {s_gop(TERN_GOP_DELIVER, "g", 1), s_gop(TERN_GOP_OPEN, "g", 0),
                         s_gop(TERN_GOP_DELIVER, "g", 9)};
    cr_assert_eq(s_follower_apply(follower, "no.such.topic", ops, 1), 1);
    cr_assert_eq(s_follower_apply(follower, TOPIC, ops, 1), 1);     //  group g missing
    cr_assert_eq(s_follower_apply(follower, TOPIC, ops + 1, 2), 1); //  seq 9 beyond last_seq
    cr_assert(s_has_group(follower, "g"));
    cr_assert_eq(s_entries(follower, "g", false).count, 0);
    s_close(leader, follower);
}

//  A snapshot replaces the follower's state of a group, and pruning drops
//  groups the leader does not have.
Test(store_gstate, snapshot_replaces_and_prunes) {
    tern_store_t *leader, *follower;
    tern_gop_t ops[16];
    s_pair(&leader, &follower, ops);
    //  The follower's own (stale) state: g with other entries, and x.
    tern_gop_t stale[4] = {s_gop(TERN_GOP_OPEN, "g", 0), s_gop(TERN_GOP_DELIVER, "g", 5),
                           s_gop(TERN_GOP_OPEN, "x", 0), s_gop(TERN_GOP_DELIVER, "x", 1)};
    s_follower_apply(follower, TOPIC, stale, 4);
    cr_assert(s_has_group(follower, "x"));

    tern_gentry_t pending[2] = {{2, 9000, 1, 0, ""}, {4, 5004, 1, 0, ""}};
    tern_gentry_t dead[1] = {{3, 1, 1, 0, "poison"}};
    tern_gstate_t state = {.group = "g", .pending = pending, .npending = 1};
    for (int i = 0; i <= TERN_PRIORITY_MAX; i++) {
        state.lane_next[i] = 1;
    }
    state.lane_next[0] = 5; //  lane 0, where s_leader_apply delivered 1..4
    uint64_t skipped = 0;
    tern_store_batch_t *batch = tern_store_batch_new(follower);
    tern_store_batch_gstate_put(batch, TOPIC, &state, true, &skipped);
    //  The rest of the entries in a continuation, as GSTATE MORE does.
    state.pending = pending + 1;
    state.dead = dead;
    state.ndead = 1;
    tern_store_batch_gstate_put(batch, TOPIC, &state, false, &skipped);
    const char *names[] = {"g"};
    uint64_t removed = 0;
    tern_store_batch_gstate_prune(batch, TOPIC, names, 1, NULL, NULL, &removed);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    tern_store_batch_destroy(&batch);
    cr_assert_eq(skipped, 0);
    cr_assert_eq(removed, 1);
    cr_assert_not(s_has_group(follower, "x"));
    cr_assert_eq(s_entries(follower, "g", false).count, 2);
    cr_assert_eq(s_gdigest(follower, 5), s_gdigest(leader, 5));
    s_close(leader, follower);
}

//  The digest sees entries and cursors up to UPTO only.
Test(store_gstate, digest_up_to_a_position) {
    tern_store_t *leader, *follower;
    tern_gop_t ops[16];
    size_t n = s_pair(&leader, &follower, ops);
    s_follower_apply(follower, TOPIC, ops, n - 1); //  not the DEAD of seq 3
    cr_assert_neq(s_gdigest(follower, 5), s_gdigest(leader, 5));
    cr_assert_eq(s_gdigest(follower, 2), s_gdigest(leader, 2));
    s_close(leader, follower);
}

//  The ops tern_gops_decode handed out.
typedef struct {
    tern_gop_t op[16]; //  in order
    size_t count;      //  handed out
} s_back_t;

static void s_back_add(const tern_gop_t *op, void *arg) {
    s_back_t *back = arg;
    cr_assert_lt(back->count, 16);
    back->op[back->count++] = *op;
}

Test(store_gstate, codec_round_trip_and_malformed) {
    tern_gop_t ops[16];
    s_back_t back = {.count = 0};
    size_t n = s_script(ops), len = 0;
    ops[n - 1].ob = 42; //  the DEAD's ack-state outbox position (cross-DC on)
    uint8_t buf[8192];
    cr_assert_eq(tern_gops_encode(ops, n, buf, sizeof buf, &len), TERN_OK);
    cr_assert_eq(tern_gops_decode(buf, len, s_back_add, &back), TERN_OK);
    cr_assert_eq(back.count, n);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(back.op[i].type, ops[i].type);
        cr_assert_eq(back.op[i].count, ops[i].count);
        cr_assert_eq(back.op[i].seq, ops[i].seq);
        cr_assert_eq(back.op[i].value, ops[i].value);
        cr_assert_str_eq(back.op[i].group, ops[i].group);
        cr_assert_str_eq(back.op[i].reason, ops[i].reason);
        cr_assert_eq(back.op[i].ob, ops[i].ob);
    }
    back.count = 0;
    cr_assert_eq(tern_gops_decode(buf, len - 1, s_back_add, &back), TERN_EMALFORMED);
    cr_assert_eq(back.count, 0);
    cr_assert_eq(tern_gops_encode(ops, n, buf, 16, &len), TERN_ETOOBIG);

    tern_gentry_t dead[1] = {{3, 77, 2, 4, "poison"}};
    tern_gstate_t state = {.group = "g", .acked = 7, .dead = dead, .ndead = 1}, got;
    state.lane_next[4] = 9;
    cr_assert_eq(tern_gstate_encode(&state, buf, sizeof buf, &len), TERN_OK);
    cr_assert_eq(tern_gstate_decode(buf, len, &got), TERN_OK);
    cr_assert_str_eq(got.group, "g");
    cr_assert_eq(got.lane_next[4], 9);
    cr_assert_eq(got.acked, 7);
    cr_assert_eq(got.npending, 0);
    cr_assert_eq(got.ndead, 1);
    cr_assert_eq(got.dead[0].priority, 4);
    cr_assert_str_eq(got.dead[0].reason, "poison");
    tern_gstate_clear(&got);
    buf[1] ^= 0xff; //  the group name's type byte
    cr_assert_eq(tern_gstate_decode(buf, len, &got), TERN_EMALFORMED);
    cr_assert_eq(tern_gstate_decode((const uint8_t *)"\x93", 1, &got), TERN_EMALFORMED);
}

//  F1 of the review: an OPEN (start NEW) resolved by the leader at commit N,
//  applied on a follower that already holds the records of commit N+1 (a
//  crepl drain sends its records before its group frames). The leader ships
//  the seq its commit resolved (TERN_START_SEQ), so both start the group at
//  the same place; shipping the rule NEW made the follower start past
//  messages the group never got.
Test(store_gstate, open_new_ships_the_resolved_seq) {
    tern_store_t *leader = s_open("leader"), *follower = s_open("follower");
    s_logs(leader, follower, 3);
    uint32_t id = s_topic_id(leader);
    uint64_t start = 0, again = 99;
    tern_store_batch_t *batch = tern_store_batch_new(leader);
    tern_store_batch_group_open(batch, id, "g", TERN_START_NEW, 0, NULL, &start);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    tern_store_batch_destroy(&batch);
    cr_assert_eq(start, 4);
    //  An OPEN of an existing group resolves nothing; a SEEK where it moved.
    uint64_t seek = 0, missing = 99;
    batch = tern_store_batch_new(leader);
    tern_store_batch_group_open(batch, id, "g", TERN_START_NEW, 0, NULL, &again);
    tern_store_batch_group_seek(batch, id, "g", TERN_START_FIRST, 0, NULL, &seek);
    tern_store_batch_group_seek(batch, id, "nope", TERN_START_NEW, 0, NULL, &missing);
    tern_store_batch_group_seek(batch, id, "g", TERN_START_NEW, 0, NULL, NULL);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    tern_store_batch_destroy(&batch);
    cr_assert_eq(again, 0);
    cr_assert_eq(seek, 1);
    cr_assert_eq(missing, 0);
    s_logs(leader, follower, 2); //  commit N+1's records reach the follower first
    tern_gop_t op = s_gop(TERN_GOP_OPEN, "g", 0);
    op.aux = TERN_START_SEQ; //  what tern_crepl_group_collect ships
    op.value = start;
    s_follower_apply(follower, TOPIC, &op, 1);
    tern_store_reader_t *r = tern_store_reader_new(leader), *rf = tern_store_reader_new(follower);
    cr_assert_eq(tern_store_read_begin(r), TERN_OK);
    cr_assert_eq(tern_store_read_begin(rf), TERN_OK);
    tern_group_info_t gl, gf;
    cr_assert_eq(tern_store_group_get(r, id, "g", &gl), TERN_OK);
    cr_assert_eq(tern_store_group_get(rf, s_topic_id(follower), "g", &gf), TERN_OK);
    for (int lane = 0; lane <= TERN_PRIORITY_MAX; lane++) {
        cr_assert_eq(gl.lane_next[lane], 4);
        cr_assert_eq(gf.lane_next[lane], gl.lane_next[lane], "lane %d: leader %llu follower %llu",
                     lane, (unsigned long long)gl.lane_next[lane],
                     (unsigned long long)gf.lane_next[lane]);
    }
    tern_store_reader_destroy(&r);
    tern_store_reader_destroy(&rf);
    s_close(leader, follower);
}

//  F5 of the review: a leader's group names in several frames, each pruning
//  only its range of names (NAMES_PART up to its last name, the final NAMES
//  from the previous frame's last name on): the union decides.
Test(store_gstate, prune_by_name_ranges) {
    tern_store_t *leader = s_open("leader"), *follower = s_open("follower");
    s_logs(leader, follower, 1);
    uint32_t id = s_topic_id(follower);
    const char *all[] = {"a", "b", "c", "d", "e"};
    tern_store_batch_t *batch = tern_store_batch_new(follower);
    for (size_t i = 0; i < 5; i++) {
        tern_store_batch_group_open(batch, id, all[i], TERN_START_FIRST, 0, NULL, NULL);
    }
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    tern_store_batch_destroy(&batch);
    const char *part[] = {"a", "c"}, *rest[] = {"e"};
    uint64_t removed = 0;
    batch = tern_store_batch_new(follower);
    tern_store_batch_gstate_prune(batch, TOPIC, part, 2, NULL, "c", &removed);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    tern_store_batch_destroy(&batch);
    cr_assert_eq(removed, 1); //  b; d and e are the next frame's to decide
    cr_assert_not(s_has_group(follower, "b"));
    cr_assert(s_has_group(follower, "d"));
    batch = tern_store_batch_new(follower);
    tern_store_batch_gstate_prune(batch, TOPIC, rest, 1, "c", NULL, &removed);
    cr_assert_eq(tern_store_batch_commit(batch), TERN_OK);
    tern_store_batch_destroy(&batch);
    cr_assert_eq(removed, 2);
    cr_assert_not(s_has_group(follower, "d"));
    cr_assert(s_has_group(follower, "a") && s_has_group(follower, "c") &&
              s_has_group(follower, "e"));
    s_close(leader, follower);
}
