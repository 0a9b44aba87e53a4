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
    - live_hole_makes_the_follower_sync: the other way round, the test takes
      the LEADER's place (nodes run a 20 s lease, so the dead leader's
      membership outlives the test): the leader is killed by PID, a ROUTER
      bound at its cluster endpoint, and the partition's record rewritten
      (same leader, a new epoch) so a follower SYNCs to it. The fake leader
      answers with CAUGHT, then two live records of the topic whose seqs
      skip one (N + 1, N + 3): the follower must confirm the first, never the
      second, and SYNC again holding N + 1 (its hole guard); the answer's
      catch-up (N + 2, N + 3) fills the hole, and once it confirmed that, the
      follower's store (node stopped) holds 1..N + 3 with no hole.
    - catch_up_ends_where_the_leader_log_ends: a topic with a 1 s max age,
      records all expired on the leader; a fake follower that SYNCs holding
      seq 2 of it gets no record of it, and a CREPL_TRUNCATE to the leader's
      last seq (its copy must end there, or the next live record would fail
      its hole guard).
*/
#include "cluster_harness.h"
#include "tern.h"

#include <criterion/criterion.h>
#include <inttypes.h>
#include <zmq.h>
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

//  What an answer to a SYNC held, up to its CAUGHT.
typedef struct {
    uint64_t caught;  //  CAUGHT's position (0: no answer this time)
    size_t records;   //  CREPL_RECORDs of the topic asked about
    uint64_t end;     //  its CREPL_TRUNCATE's seq (UINT64_MAX: none)
    bool end_is_last; //  that TRUNCATE came after every record of the topic
} s_answer_t;

//  Sends CREPL_SYNC (request REQ) as node FOLLOWER with LINES (its topics and
//  last seqs), reads the answer up to CAUGHT, noting what it said of TOPIC
//  (may be NULL).
static s_answer_t s_sync_with(it_raw_t *raw, const tern_partmap_record_t *rec, uint32_t follower,
                              const char *lines, const char *topic, uint64_t req) {
    tern_frame_t f;
    tern_frame_init(&f, TERN_CMD_CREPL_SYNC);
    f.req_id = req;
    f.partition = S_PT;
    f.epoch = rec->epoch;
    f.node_id = follower;
    f.payload = (const uint8_t *)lines;
    f.payload_size = strlen(lines);
    f.fields |= TERN_F_PAYLOAD;
    cr_assert_eq(it_raw_send_frame(raw, &f), TERN_OK);
    s_answer_t answer = {0, 0, UINT64_MAX, false};
    tern_frame_t in;
    while (it_raw_recv(raw, &in, 1000) == TERN_OK) {
        if (in.req_id != req) {
            continue;
        }
        bool ours = topic && strcmp(in.topic, topic) == 0;
        if (in.cmd == TERN_CMD_CREPL_RECORD && ours) {
            answer.records++;
            answer.end_is_last = false;
        } else if (in.cmd == TERN_CMD_CREPL_TRUNCATE && ours) {
            answer.end = in.seq;
            answer.end_is_last = true;
        } else if (in.cmd == TERN_CMD_CREPL_CAUGHT) {
            cr_assert_eq(in.partition, S_PT);
            cr_assert_eq(in.epoch, rec->epoch);
            answer.caught = in.position;
            break;
        }
    }
    return answer;
}

//  Sends CREPL_SYNC as node FOLLOWER holding nothing, reads the answer up to
//  CAUGHT; returns CAUGHT's position (0: no answer this time).
static uint64_t s_sync(it_raw_t *raw, const tern_partmap_record_t *rec, uint32_t follower) {
    return s_sync_with(raw, rec, follower, "", NULL, 7).caught;
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

//  The test plays a killed node (its follower, or its leader) for longer
//  than the default 2 s lease: until the lease lapses the view shows the
//  node up, after which the leader stops shipping to it and the controller
//  moves its leaderships (a loaded host made live_stream_is_batched see
//  only part of its records that way).
static const char *const s_long_lease[] = {"--lease", "20s", NULL};

//  A started cluster (ternd flags EXTRA, may be NULL) whose partition S_PT
//  is in sync: *REC its record, *LEADER its leader, *FOLLOWER one of its
//  followers, TOPIC (64 bytes) a topic of it named from PREFIX.
static it_cluster_t *s_cluster_up(const char *const *extra, tern_partmap_record_t *rec, int *leader,
                                  uint32_t *follower, const char *prefix, char *topic) {
    it_cluster_t *cl = it_cluster_new(S_NODES, 1, S_PARTITIONS, extra);
    cr_assert_not_null(cl);
    cr_assert(it_cluster_start(cl, 60000), "the cluster did not start");
    cr_assert(it_cluster_wait_isr_full(cl, S_PT, 30000, rec), "partition %d never in sync", S_PT);
    *leader = (int)rec->leader;
    *follower = (uint32_t)it_cluster_follower(cl, S_PT, *leader);
    it_cluster_topic_for(cl, S_PT, prefix, topic, 64);
    return cl;
}

Test(cluster_records, live_stream_is_batched) {
    tern_partmap_record_t rec;
    int leader;
    uint32_t follower;
    char topic[64];
    it_cluster_t *cl = s_cluster_up(s_long_lease, &rec, &leader, &follower, "records", topic);
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

// ---------------------------------------------------------------------------
//  A fake leader: a ROUTER at the dead leader's cluster endpoint

#define S_FAKE_ID 0x7100000000000000ULL //  msg_ids of the fake leader's records

typedef struct {
    void *ctx;                        //  zmq context, owned
    void *sock;                       //  ROUTER, owned
    uint8_t rid[256];                 //  routing id of the last message
    size_t rid_size;                  //  its size
    uint8_t hdr[TERN_HEADER_MAX];     //  its header
    uint8_t payload[64 * 1024];       //  its payload (SYNC lines)
    size_t payload_size;              //  its size
    const tern_partmap_record_t *rec; //  the record being faked (pt, ep)
} s_fake_t;

static void s_fake_bind(s_fake_t *fake, int port) {
    fake->ctx = zmq_ctx_new();
    fake->sock = zmq_socket(fake->ctx, ZMQ_ROUTER);
    int linger = 0;
    zmq_setsockopt(fake->sock, ZMQ_LINGER, &linger, sizeof linger);
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
    int rc = -1;
    for (int i = 0; i < 50 && (rc = zmq_bind(fake->sock, endpoint)) != 0; i++) {
        usleep(100 * 1000); //  the killed leader's port is on its way out
    }
    cr_assert_eq(rc, 0, "cannot bind %s: %s", endpoint, zmq_strerror(zmq_errno()));
}

static void s_fake_close(s_fake_t *fake) {
    zmq_close(fake->sock);
    zmq_ctx_term(fake->ctx);
}

//  The next frame from any follower into *OUT (payload in fake->payload),
//  skipping what does not decode; false after TIMEOUT_MS.
static bool s_fake_recv(s_fake_t *fake, tern_frame_t *out, int timeout_ms) {
    int64_t deadline = it_now_ms() + timeout_ms;
    while (it_now_ms() < deadline) {
        zmq_pollitem_t item = {fake->sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 100) <= 0) {
            continue;
        }
        int n = zmq_recv(fake->sock, fake->rid, sizeof fake->rid, 0);
        int more = 0;
        size_t more_size = sizeof more;
        zmq_getsockopt(fake->sock, ZMQ_RCVMORE, &more, &more_size);
        int hdr = more ? zmq_recv(fake->sock, fake->hdr, sizeof fake->hdr, 0) : -1;
        fake->payload_size = 0;
        zmq_getsockopt(fake->sock, ZMQ_RCVMORE, &more, &more_size);
        bool has_payload = hdr >= 0 && more;
        if (has_payload) {
            int p = zmq_recv(fake->sock, fake->payload, sizeof fake->payload, 0);
            fake->payload_size = p > 0 ? (size_t)p : 0;
        }
        fake->rid_size = n > 0 ? (size_t)n : 0;
        if (n > 0 && hdr > 0 &&
            tern_frame_decode(out, fake->hdr, (size_t)hdr, has_payload ? fake->payload : NULL,
                              fake->payload_size, NULL) == TERN_OK) {
            return true;
        }
    }
    return false;
}

//  Sends FRAME (pt, ep of the faked record set here; REQ_ID as given) to
//  the follower of the last message received.
static void s_fake_send(s_fake_t *fake, tern_frame_t *frame, uint64_t req_id) {
    frame->partition = S_PT;
    frame->epoch = fake->rec->epoch;
    frame->req_id = req_id;
    uint8_t hdr[1024];
    size_t len = 0;
    cr_assert_eq(tern_frame_encode(frame, hdr, sizeof hdr, &len), TERN_OK, "%s",
                 tern_cmd_name(frame->cmd));
    bool payload = tern_cmd_has_payload(frame->cmd);
    cr_assert(zmq_send(fake->sock, fake->rid, fake->rid_size, ZMQ_SNDMORE) >= 0);
    cr_assert(zmq_send(fake->sock, hdr, len, payload ? ZMQ_SNDMORE : 0) >= 0);
    if (payload) {
        cr_assert(zmq_send(fake->sock, frame->payload, frame->payload_size, 0) >= 0);
    }
}

//  The fake leader's record SEQ of TOPIC at live position POS (0: catch-up).
static void s_fake_record(s_fake_t *fake, const char *topic, uint64_t seq, uint64_t pos,
                          uint64_t req_id) {
    tern_frame_t f;
    tern_frame_init(&f, TERN_CMD_CREPL_RECORD);
    snprintf(f.topic, sizeof f.topic, "%s", topic);
    strcpy(f.origin, "dc1");
    f.seq = seq;
    f.msg_id = S_FAKE_ID + seq;
    f.timestamp_ns = (uint64_t)it_now_ms() * 1000000ULL;
    f.payload = (const uint8_t *)"faked";
    f.payload_size = 5;
    f.fields |= TERN_F_TOPIC | TERN_F_ORIGIN | TERN_F_PAYLOAD;
    f.position = pos;
    s_fake_send(fake, &f, req_id);
}

static void s_fake_caught(s_fake_t *fake, uint64_t pos, uint64_t req_id) {
    tern_frame_t f;
    tern_frame_init(&f, TERN_CMD_CREPL_CAUGHT);
    f.position = pos;
    s_fake_send(fake, &f, req_id);
}

//  Waits for node FOLLOWER's next SYNC, never seeing it confirm a position
//  past MAX_CONFIRM; returns the LAST_SEQ of TOPIC's line in it (0: no line)
//  and its request id in *REQ_ID.
static uint64_t s_fake_sync(s_fake_t *fake, uint32_t follower, const char *topic,
                            uint64_t max_confirm, uint64_t *req_id) {
    tern_frame_t in;
    while (s_fake_recv(fake, &in, 20000)) {
        if (in.node_id != follower || in.epoch != fake->rec->epoch) {
            continue; //  the other follower, or an older stream
        }
        if (in.cmd == TERN_CMD_CREPL_CONFIRM) {
            cr_assert_leq(in.position, max_confirm,
                          "the follower confirmed position %" PRIu64 ": it holds the hole",
                          in.position);
            continue;
        }
        if (in.cmd != TERN_CMD_CREPL_SYNC) {
            continue;
        }
        *req_id = in.req_id;
        char lines[sizeof fake->payload + 1];
        memcpy(lines, fake->payload, fake->payload_size);
        lines[fake->payload_size] = 0;
        for (char *line = strtok(lines, "\n"); line; line = strtok(NULL, "\n")) {
            char name[TERN_TOPIC_MAX + 1];
            unsigned long long last = 0;
            if (sscanf(line, "%llu %200s", &last, name) == 2 && strcmp(name, topic) == 0) {
                return last;
            }
        }
        return 0;
    }
    cr_assert_fail("no SYNC from node %u within 20 s", follower);
    return 0;
}

//  Waits until node FOLLOWER confirms POS.
static void s_fake_confirmed(s_fake_t *fake, uint32_t follower, uint64_t pos) {
    tern_frame_t in;
    while (s_fake_recv(fake, &in, 20000)) {
        if (in.node_id == follower && in.cmd == TERN_CMD_CREPL_CONFIRM &&
            in.epoch == fake->rec->epoch && in.position >= pos) {
            cr_assert_eq(in.position, pos);
            return;
        }
    }
    cr_assert_fail("node %u never confirmed position %" PRIu64, follower, pos);
}

//  Rewrites PT's record as it is (same leader and replicas) without its
//  epoch, so etcd's revision of the write becomes a new one; *REC gets it.
static void s_new_epoch(it_cluster_t *cl, tern_partmap_record_t *rec) {
    cr_assert(it_cluster_record(cl, S_PT, rec, false));
    rec->epoch = 0;
    char text[512], key[96];
    cr_assert_eq(tern_partmap_record_encode(rec, text, sizeof text), TERN_OK);
    snprintf(key, sizeof key, "/tern/%s/partitions/%u", cl->name, S_PT);
    int64_t revision = 0;
    cr_assert_eq(tern_etcd_put(cl->kv, key, text, strlen(text), 0, &revision), TERN_OK);
    cr_assert(it_cluster_record(cl, S_PT, rec, false));
    cr_assert_eq(rec->epoch, (uint64_t)revision);
}

//  Keeps the highest seq acknowledged (UINT64_MAX once one failed).
static void s_max_seq(const tern_pub_result_t *res, void *arg) {
    uint64_t *max = arg;
    if (res->code != TERN_OK) {
        *max = UINT64_MAX;
    } else if (*max != UINT64_MAX && res->seq > *max) {
        *max = res->seq;
    }
}

//  Publishes on *CLIENT_P until one is acknowledged (the whole ISR has it),
//  then COUNT more (payloads PREFIX...), flushed; destroys the client and
//  returns the highest seq acknowledged (at least COUNT + 1).
static uint64_t s_publish_acked(tern_client_t **client_p, const char *topic, const char *prefix,
                                int count) {
    it_cluster_publish_until_acked(*client_p, topic);
    uint64_t n = 0;
    it_pub_async(*client_p, topic, prefix, count, s_max_seq, &n);
    cr_assert_eq(tern_flush(*client_p, 60000), TERN_OK);
    tern_client_destroy(client_p);
    cr_assert(n >= (uint64_t)count + 1 && n != UINT64_MAX,
              "a publish failed (or none acknowledged)");
    return n;
}

Test(cluster_records, live_hole_makes_the_follower_sync) {
    tern_partmap_record_t rec;
    int leader;
    uint32_t follower;
    char topic[64];
    it_cluster_t *cl = s_cluster_up(s_long_lease, &rec, &leader, &follower, "hole", topic);
    //  N records every replica has (acknowledged: the whole ISR has them).
    tern_client_options_t options;
    tern_client_options_init(&options);
    tern_client_t *client = it_cluster_client(cl, leader, &options);
    uint64_t n = s_publish_acked(&client, topic, "real-", 5);

    it_cluster_kill_node(cl, leader);
    s_fake_t fake = {.rec = &rec};
    s_fake_bind(&fake, it_cluster_listen_port(cl, leader));
    s_new_epoch(cl, &rec);
    uint64_t req = 0;
    cr_assert_eq(s_fake_sync(&fake, follower, topic, 0, &req), n);
    s_fake_caught(&fake, 1, req);
    s_fake_record(&fake, topic, n + 1, 2, 0);
    s_fake_record(&fake, topic, n + 3, 3, 0); //  n + 2 lost on the way
    uint64_t held = s_fake_sync(&fake, follower, topic, 2, &req);
    cr_assert_eq(held, n + 1, "the follower holds %" PRIu64 " after the hole, not %" PRIu64, held,
                 n + 1);
    s_fake_record(&fake, topic, n + 2, 0, req);
    s_fake_record(&fake, topic, n + 3, 0, req);
    s_fake_caught(&fake, 3, req);
    s_fake_confirmed(&fake, follower, 3);

    cr_assert_eq(it_cluster_stop_node(cl, (int)follower, 30000), 0);
    s_fake_close(&fake);
    tern_store_t *store = it_cluster_store_open(cl->node[follower]);
    tern_store_reader_t *r = tern_store_reader_new(store);
    cr_assert_eq(tern_store_read_begin(r), TERN_OK);
    tern_topic_info_t info;
    cr_assert_eq(tern_store_topic_get(r, topic, &info), TERN_OK);
    cr_assert_eq(info.last_seq, n + 3);
    for (uint64_t seq = 1; seq <= n + 3; seq++) {
        tern_frame_t msg;
        cr_assert_eq(tern_store_read(r, info.id, seq, &msg), TERN_OK, "seq %" PRIu64 " missing",
                     seq);
        if (seq > n) {
            cr_assert_eq(msg.msg_id, S_FAKE_ID + seq);
        }
    }
    tern_store_reader_destroy(&r);
    tern_store_destroy(&store);
    it_cluster_destroy(&cl);
}

Test(cluster_records, catch_up_ends_where_the_leader_log_ends) {
    tern_partmap_record_t rec;
    int leader;
    uint32_t follower;
    char topic[64];
    it_cluster_t *cl = s_cluster_up(s_long_lease, &rec, &leader, &follower, "ttl", topic);
    tern_client_options_t options;
    tern_client_options_init(&options);
    tern_client_t *client = it_cluster_client(cl, leader, &options);
    tern_header_t args[2] = {{"topic", topic}, {"max_age_ms", "1000"}};
    char *json = NULL;
    cr_assert_eq(tern_admin(client, "topic.create", args, 2, &json, 15000), TERN_OK, "%s",
                 tern_last_reason());
    free(json);
    uint64_t n = s_publish_acked(&client, topic, "gone-", 4);
    it_cluster_kill_node(cl, (int)follower);

    it_raw_t *raw = it_raw_new(cl->listen[leader]);
    cr_assert_not_null(raw);
    char lines[128];
    snprintf(lines, sizeof lines, "2 %s\n", topic);
    s_answer_t answer = {0, 1, UINT64_MAX, false};
    //  Until the leader's sweep removed them all (1 s age, 1 s sweeps).
    for (uint64_t req = 100; req < 160 && (answer.caught == 0 || answer.records > 0); req++) {
        it_sleep_ms(500);
        cr_assert(it_cluster_record(cl, S_PT, &rec, false));
        answer = s_sync_with(raw, &rec, follower, lines, topic, req);
    }
    cr_assert_gt(answer.caught, 0, "the leader never answered the SYNC");
    cr_assert_eq(answer.records, 0, "the leader's records never expired");
    cr_assert_eq(answer.end, n, "the catch-up did not end the copy at %" PRIu64 " (%" PRIu64 ")", n,
                 answer.end);
    cr_assert(answer.end_is_last);
    it_raw_destroy(&raw);
    it_cluster_destroy(&cl);
}
