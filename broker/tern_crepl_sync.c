/*  tern_crepl_sync.c - crepl: the leader's answer to a follower's SYNC.

    Part of the crepl actor (tern_crepl.c; state in tern_crepl_priv.h). A
    follower that starts (or restarts) following a partition sends
    CREPL_SYNC with its topics of the partition, one line each:
    `LAST_SEQ TOPIC [MSG_ID]` (MSG_ID: its record at LAST_SEQ, when it has
    it). The leader answers in the same turn, so no commit slips between the
    catch-up and the live stream:
    - CREPL_TRUNCATE(t, sq) for every topic where the follower holds more
      than we do (sq = our last_seq; 0 for a topic we do not have), or whose
      record at LAST_SEQ is not ours (a deposed leader's unacknowledged
      tail: sq = 0, the topic is copied again from its start);
    - every record after the follower's LAST_SEQ of every topic of the
      partition (ours from the first for topics it lacks), as CREPL_RECORD
      with pos 0, read from a store snapshot taken now;
    - CREPL_CAUGHT(pos = our end): from now on it gets the live stream.
    Records committed but not yet shipped are in the snapshot and come again
    live: applying is idempotent. The answer is sent in one go (socket HWMs
    hold it); if the socket refuses part of it, the follower stays out of
    the live stream and syncs again after its timeout.
*/
#include "tern_crepl_priv.h"
#include <inttypes.h>
#include <string.h>

//  One of our topics of the partition being synced.
typedef struct {
    uint32_t id;                    //  topic id
    char name[TERN_TOPIC_MAX + 1];  //  its name
    uint64_t last_seq;              //  our last seq
    uint64_t from;                  //  first seq the follower needs
} s_topic_t;

typedef struct {
    c_repl_t *self;      //  the actor
    uint32_t pt;         //  the partition
    s_topic_t *topics;   //  our topics of it (owned)
    size_t count;        //  used
    size_t cap;          //  allocated
    zhashx_t *by_name;   //  name -> index + 1
} s_sync_t;

static bool s_collect(const tern_topic_info_t *topic, void *arg) {
    s_sync_t *sync = arg;
    if (c_partition_of(sync->self, topic->name) != sync->pt) {
        return true;
    }
    if (sync->count == sync->cap) {
        sync->cap = sync->cap ? sync->cap * 2 : 16;
        sync->topics = tern_realloc(sync->topics, sync->cap * sizeof *sync->topics);
    }
    s_topic_t *t = &sync->topics[sync->count++];
    t->id = topic->id;
    snprintf(t->name, sizeof t->name, "%s", topic->name);
    t->last_seq = topic->last_seq;
    t->from = 1;
    zhashx_insert(sync->by_name, t->name, (void *)(uintptr_t)sync->count);
    return true;
}

//  Parses one line `LAST_SEQ TOPIC [MSG_ID]` (LEN bytes at P, no newline).
//  False for anything else.
static bool s_parse_line(const char *p, size_t len, uint64_t *last_seq, char *topic,
                         uint64_t *msg_id) {
    char line[TERN_TOPIC_MAX + 64];
    if (len == 0 || len >= sizeof line) {
        return false;
    }
    memcpy(line, p, len);
    line[len] = 0;
    char *end = NULL;
    errno = 0;
    *last_seq = strtoull(line, &end, 10);
    if (errno || end == line || *end != ' ') {
        return false;
    }
    char *name = end + 1;
    char *space = strchr(name, ' ');
    size_t name_len = space ? (size_t)(space - name) : strlen(name);
    if (!tern_topic_valid(name, name_len)) {
        return false;
    }
    memcpy(topic, name, name_len);
    topic[name_len] = 0;
    *msg_id = 0;
    if (space) {
        *msg_id = strtoull(space + 1, &end, 10);
        if (errno || *end != 0) {
            return false;
        }
    }
    return true;
}

static int s_send_truncate(c_repl_t *self, const uint8_t *rid, size_t rid_size, uint32_t pt,
                           uint64_t epoch, const char *topic, uint64_t after) {
    tern_frame_t frame;
    tern_frame_init(&frame, TERN_CMD_CREPL_TRUNCATE);
    C_PT(&frame) = pt;
    C_EP(&frame) = epoch;
    snprintf(frame.topic, sizeof frame.topic, "%s", topic);
    frame.fields |= TERN_F_TOPIC;
    frame.seq = after;
    return c_send(self, self->router, rid, rid_size, &frame, NULL);
}

//  Where the follower's copy of topic T (LAST_SEQ, MSG_ID) stands against
//  ours: sets t->from and sends a TRUNCATE when it holds what we do not.
static int s_compare(c_repl_t *self, const uint8_t *rid, size_t rid_size, s_sync_t *sync,
                     uint64_t epoch, s_topic_t *t, uint64_t last_seq, uint64_t msg_id) {
    if (last_seq > t->last_seq) {
        t->from = t->last_seq + 1;
        return s_send_truncate(self, rid, rid_size, sync->pt, epoch, t->name, t->last_seq);
    }
    tern_frame_t ours;
    if (last_seq > 0 && msg_id &&
        tern_store_read(self->reader, t->id, last_seq, &ours) == TERN_OK &&
        ours.msg_id != msg_id) {
        zsys_warning("crepl: partition %u: follower's %s differs at seq %" PRIu64
                     "; it is copied again",
                     sync->pt, t->name, last_seq);
        t->from = 1;
        return s_send_truncate(self, rid, rid_size, sync->pt, epoch, t->name, 0);
    }
    t->from = last_seq + 1;
    return 0;
}

//  Reads the follower's lines and sends the truncations. -1 if a send failed.
static int s_truncations(c_repl_t *self, const uint8_t *rid, size_t rid_size, s_sync_t *sync,
                         uint64_t epoch, const tern_frame_t *frame) {
    const char *p = (const char *)frame->payload;
    size_t left = frame->payload ? frame->payload_size : 0;
    while (left > 0) {
        const char *nl = memchr(p, '\n', left);
        size_t len = nl ? (size_t)(nl - p) : left;
        uint64_t last_seq = 0, msg_id = 0;
        char topic[TERN_TOPIC_MAX + 1];
        int rc = 0;
        if (!s_parse_line(p, len, &last_seq, topic, &msg_id)) {
            if (len > 0) {
                zsys_warning("crepl: partition %u: bad SYNC line from node %u", sync->pt,
                             frame->node_id);
            }
        } else {
            uintptr_t at = (uintptr_t)zhashx_lookup(sync->by_name, topic);
            if (at) {
                rc = s_compare(self, rid, rid_size, sync, epoch, &sync->topics[at - 1], last_seq,
                               msg_id);
            } else if (last_seq > 0) { //  a topic we do not have at all
                rc = s_send_truncate(self, rid, rid_size, sync->pt, epoch, topic, 0);
            }
        }
        if (rc != 0) {
            return -1;
        }
        p += nl ? len + 1 : len;
        left -= nl ? len + 1 : len;
    }
    return 0;
}

//  Sends every record the follower lacks as CREPL_RECORD pos 0.
static int s_catch_up(c_repl_t *self, const uint8_t *rid, size_t rid_size, s_sync_t *sync,
                      uint64_t epoch) {
    for (size_t i = 0; i < sync->count; i++) {
        s_topic_t *t = &sync->topics[i];
        tern_frame_t frame;
        for (uint64_t seq = t->from;
             seq <= t->last_seq && tern_store_read_next(self->reader, t->id, seq, &frame) == TERN_OK;
             seq = frame.seq + 1) {
            frame.cmd = TERN_CMD_CREPL_RECORD;
            C_PT(&frame) = sync->pt;
            C_EP(&frame) = epoch;
            frame.position = 0;
            snprintf(frame.topic, sizeof frame.topic, "%s", t->name);
            frame.fields |= TERN_F_TOPIC;
            if (c_send(self, self->router, rid, rid_size, &frame, NULL) != 0) {
                return -1;
            }
        }
    }
    return 0;
}

void c_answer_sync(c_repl_t *self, const uint8_t *rid, size_t rid_size, const tern_frame_t *frame) {
    c_lead_t *lead = c_fence_lead(self, frame);
    int idx = lead ? c_rep_index(lead, frame->node_id) : -1;
    if (idx < 0) {
        return; //  stale, ahead, or not a replica: it syncs again once the view agrees
    }
    lead->synced[idx] = false;
    s_sync_t sync = {self, C_PT(frame), NULL, 0, 0, zhashx_new()};
    if (!sync.by_name || tern_store_read_begin(self->reader) != TERN_OK) {
        zhashx_destroy(&sync.by_name);
        return;
    }
    int rc = -1;
    if (tern_store_topic_list(self->reader, s_collect, &sync) == TERN_OK &&
        s_truncations(self, rid, rid_size, &sync, lead->epoch, frame) == 0 &&
        s_catch_up(self, rid, rid_size, &sync, lead->epoch) == 0) {
        tern_frame_t caught;
        tern_frame_init(&caught, TERN_CMD_CREPL_CAUGHT);
        C_PT(&caught) = sync.pt;
        C_EP(&caught) = lead->epoch;
        caught.position = lead->end;
        rc = c_send(self, self->router, rid, rid_size, &caught, NULL);
    }
    tern_store_read_end(self->reader);
    if (rc == 0) {
        lead->synced[idx] = true;
        atomic_fetch_add_explicit(&self->stats->syncs_answered, 1, memory_order_relaxed);
        zsys_info("crepl: partition %u: node %u synced (%zu topics, position %" PRIu64 ")",
                  sync.pt, frame->node_id, sync.count, lead->end);
    } else {
        zsys_warning("crepl: partition %u: sync of node %u cut short (%s); it will ask again",
                     sync.pt, frame->node_id, zmq_strerror(zmq_errno()));
    }
    free(sync.topics);
    zhashx_destroy(&sync.by_name);
}
