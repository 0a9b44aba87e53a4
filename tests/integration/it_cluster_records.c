/*  it_cluster_records.c - the leader's batched live stream (CREPL_RECORDS, 57).

    Real etcd and three real ternd nodes (cluster_harness.h). One follower of
    the partition under test is killed by PID, and the test takes its place
    on the wire: a raw DEALER on the leader's cluster endpoint that sends
    CREPL_SYNC with that follower's node id, reads the answer up to CAUGHT,
    and then reads the live stream while libtern publishes asynchronously
    (window 256) to a topic of the partition.
    - live_stream_is_batched: every live record comes inside a CREPL_RECORDS
      frame of the partition's (pt, ep), its entries at consecutive positions
      right after CAUGHT's, each an encoded CREPL_RECORD of the topic whose
      seq and msg_id are those libtern got acknowledged, with its payload;
      and the records came in fewer frames than records (one per drain of the
      leader's commits, not one per record). Before the SYNC the leader's
      ROUTER is sent frames it must survive (a CREPL_RECORDS with garbage
      entries, a header that is not msgpack, a CREPL_RECORDS without its
      payload): it says why in its log and keeps acknowledging.
*/
#include "cluster_harness.h"
#include "tern.h"

#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_NODES      3
#define S_PARTITIONS 4
#define S_PT         1   //  the partition under test
#define S_MSGS       400 //  async publishes after CAUGHT

TestSuite(cluster_records, .fini = it_cluster_teardown, .timeout = 300);

//  One acknowledged publish, indexed by its seq.
typedef struct {
    uint64_t msg_id; //  0: not acknowledged (yet)
    bool seen;       //  its entry was on the wire
} s_ack_t;

typedef struct {
    s_ack_t *by_seq; //  [S_MSGS * 2 + 64]
    size_t cap;      //  entries
    int errors;      //  publishes that failed
} s_acks_t;

static void s_on_ack(const tern_pub_result_t *res, void *arg) {
    s_acks_t *acks = arg;
    if (res->code != TERN_OK || res->seq >= acks->cap) {
        acks->errors++;
        return;
    }
    acks->by_seq[res->seq].msg_id = res->msg_id;
}

//  Frames the leader's ROUTER must survive (it handles only SYNC and CONFIRM).
static void s_send_junk(it_raw_t *raw, const tern_partmap_record_t *rec) {
    tern_frame_t f;
    tern_frame_init(&f, TERN_CMD_CREPL_RECORDS);
    f.partition = S_PT;
    f.epoch = rec->epoch;
    f.position = 2;
    static const uint8_t junk[] = {0, 0, 0, 200, 0xc1, 0xc1, 0xc1};
    f.payload = junk;
    f.payload_size = sizeof junk;
    f.fields |= TERN_F_PAYLOAD;
    cr_assert_eq(it_raw_send_frame(raw, &f), TERN_OK);
    static const uint8_t not_msgpack[] = {0xc1, 0xc1, 0xc1, 0xc1};
    cr_assert(it_raw_send(raw, not_msgpack, sizeof not_msgpack, junk, sizeof junk));
    uint8_t hdr[TERN_HEADER_MAX];
    size_t len = 0;
    cr_assert_eq(tern_frame_encode(&f, hdr, sizeof hdr, &len), TERN_OK);
    cr_assert(it_raw_send(raw, hdr, len, NULL, 0)); //  its payload missing
}

//  Sends CREPL_SYNC as node FOLLOWER holding nothing, reads the answer up to
//  CAUGHT; returns CAUGHT's position (0: no answer this time).
static uint64_t s_sync(it_raw_t *raw, const tern_partmap_record_t *rec, uint32_t follower) {
    tern_frame_t f;
    tern_frame_init(&f, TERN_CMD_CREPL_SYNC);
    f.req_id = 7;
    f.partition = S_PT;
    f.epoch = rec->epoch;
    f.node_id = follower;
    f.payload = (const uint8_t *)"";
    f.payload_size = 0;
    f.fields |= TERN_F_PAYLOAD;
    cr_assert_eq(it_raw_send_frame(raw, &f), TERN_OK);
    tern_frame_t in;
    while (it_raw_recv(raw, &in, 1000) == TERN_OK) {
        if (in.cmd == TERN_CMD_CREPL_CAUGHT && in.req_id == 7) {
            cr_assert_eq(in.partition, S_PT);
            cr_assert_eq(in.epoch, rec->epoch);
            return in.position;
        }
    }
    return 0;
}

//  Reads the live stream until WANT records came (or 30 s of silence);
//  checks each frame and entry, marks the entries in ACKS. Returns the
//  number of CREPL_RECORDS frames.
static size_t s_read_live(it_raw_t *raw, const tern_partmap_record_t *rec, const char *topic,
                          uint64_t caught, size_t want, s_acks_t *acks) {
    uint64_t next = caught + 1;
    size_t frames = 0, records = 0;
    tern_frame_t in;
    //  One deadline for the whole read: heartbeats keep coming when the
    //  records do not (the leader dropped this follower), so a wait per frame
    //  would never run out.
    int64_t deadline = it_now_ms() + 30000;
    int64_t left;
    while (records < want && (left = deadline - it_now_ms()) > 0 &&
           it_raw_recv(raw, &in, (int)left) == TERN_OK) {
        if (in.cmd == TERN_CMD_CREPL_HEARTBEAT) {
            continue;
        }
        cr_assert_eq(in.cmd, TERN_CMD_CREPL_RECORDS, "live %s, not CREPL_RECORDS",
                     tern_cmd_name(in.cmd));
        cr_assert_eq(in.partition, S_PT);
        cr_assert_eq(in.epoch, rec->epoch);
        cr_assert_eq(in.position, next, "frame at %" PRIu64 ", expected %" PRIu64, in.position,
                     next);
        frames++;
        size_t at = 0, entries = 0;
        tern_frame_t e;
        tern_err_t rc;
        while ((rc = tern_records_next(in.payload, in.payload_size, &at, NULL, &e)) == TERN_OK) {
            cr_assert_eq(e.cmd, TERN_CMD_CREPL_RECORD);
            cr_assert_eq(e.partition, S_PT);
            cr_assert_eq(e.epoch, rec->epoch);
            cr_assert_eq(e.position, next++, "entry at %" PRIu64, e.position);
            cr_assert_str_eq(e.topic, topic);
            cr_assert_lt(e.seq, acks->cap);
            cr_assert_eq(e.payload_size, 11, "payload of seq %" PRIu64, e.seq);
            cr_assert_eq(memcmp(e.payload, "record-", 7), 0);
            acks->by_seq[e.seq].seen = true;
            cr_assert_neq(e.msg_id, 0);
            if (acks->by_seq[e.seq].msg_id) {
                cr_assert_eq(e.msg_id, acks->by_seq[e.seq].msg_id, "seq %" PRIu64, e.seq);
            }
            entries++;
        }
        cr_assert_eq(rc, TERN_ENOTFOUND, "entry %zu: %s", entries, tern_errname(rc));
        cr_assert_gt(entries, 0);
        records += entries;
    }
    cr_assert_eq(records, want, "%zu live records of %zu on the wire", records, want);
    return frames;
}

//  A 10 s lease: the test speaks as the killed follower, which the leader
//  drops once that node's lease lapses (the test takes about 2.5 s; a 2 s
//  lease made it lose that race on a busy host).
static const char *const s_flags[] = {"--lease", "10s", NULL};

Test(cluster_records, live_stream_is_batched) {
    it_cluster_t *cl = it_cluster_new(S_NODES, 1, S_PARTITIONS, s_flags);
    cr_assert_not_null(cl);
    cr_assert(it_cluster_start(cl, 60000), "the cluster did not start");
    tern_partmap_record_t rec;
    cr_assert(it_cluster_wait_isr_full(cl, S_PT, 30000, &rec), "partition %d never in sync", S_PT);
    int leader = (int)rec.leader;
    uint32_t follower = (uint32_t)it_cluster_follower(cl, S_PT, leader);
    char topic[64];
    it_cluster_topic_for(cl, S_PT, "records", topic, sizeof topic);
    it_cluster_kill_node(cl, (int)follower);

    tern_client_options_t options;
    tern_client_options_init(&options);
    options.producer_id = "it-records";
    options.window = 256;
    tern_client_t *client = it_cluster_client(cl, leader, &options);
    it_cluster_publish_until_acked(client, topic);

    it_raw_t *raw = it_raw_new(cl->listen[leader]);
    cr_assert_not_null(raw);
    cr_assert(it_cluster_record(cl, S_PT, &rec, false));
    cr_assert_eq((int)rec.leader, leader, "the leader moved");
    s_send_junk(raw, &rec);
    uint64_t caught = 0;
    for (int i = 0; i < 20 && caught == 0; i++) {
        cr_assert(it_cluster_record(cl, S_PT, &rec, false));
        caught = s_sync(raw, &rec, follower); //  0: the leader's view was behind
    }
    cr_assert_gt(caught, 0, "the leader never answered the SYNC");

    s_acks_t acks = {calloc(S_MSGS * 2 + 64, sizeof(s_ack_t)), S_MSGS * 2 + 64, 0};
    it_pub_async(client, topic, "record-", S_MSGS, s_on_ack, &acks);
    cr_assert_eq(tern_flush(client, 60000), TERN_OK);
    cr_assert_eq(acks.errors, 0, "%d publishes failed", acks.errors);

    size_t frames = s_read_live(raw, &rec, topic, caught, S_MSGS, &acks);
    size_t acked = 0;
    for (size_t s = 0; s < acks.cap; s++) {
        if (acks.by_seq[s].msg_id) {
            acked++;
            cr_assert(acks.by_seq[s].seen, "acknowledged seq %zu never shipped", s);
        }
    }
    cr_assert_eq(acked, S_MSGS);
    cr_assert_lt(frames, S_MSGS, "one frame per record: nothing was batched");
    cr_log_info("%d records in %zu CREPL_RECORDS frames", S_MSGS, frames);
    free(acks.by_seq);
    it_raw_destroy(&raw);
    tern_client_destroy(&client);
    it_cluster_destroy(&cl);
}
