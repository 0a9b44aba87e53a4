/*  tern_crepl_sync.c - crepl: the leader's answer to a follower's SYNC.

    Part of the crepl actor (tern_crepl.c; state in tern_crepl_priv.h). A
    follower that starts (or restarts) following a partition sends
    CREPL_SYNC with its topics of the partition, one line each:
    `LAST_SEQ TOPIC SEQ:MSG_ID...`: the anchors are its records at LAST_SEQ,
    LAST_SEQ - 1, - 2, - 4, ... (those it holds), so one round finds where
    its copy stops matching ours (at most twice as far back as needed;
    truncating more than needed only costs a copy). The leader answers in the same turn, so no
   commit slips between the catch-up and the live stream:
    - CREPL_TRUNCATE(t, sq) for every topic where the follower holds what
      we do not (a deposed leader's unacknowledged tail): sq = its highest
      anchor that matches our log (0 for a topic we do not have);
    - CREPL_TOPIC(DELETE) for every topic it lists that we do not have
      (deleted here while it was away, or a deposed leader's own);
    - per topic of the partition, CREPL_TOPIC(PUT, our limits), then every
      record after the follower's LAST_SEQ (ours from the first for topics
      it lacks), as CREPL_RECORD with pos 0, read from a store snapshot
      taken now. CREPL_TOPIC(PURGE) first for a topic whose every record
      it holds is below our first seq (a purge it missed, or retention).
      A purge it missed while holding records we still have too is not
      repeated (docs/cluster.md, limits of the first cut);
    - CREPL_CAUGHT(pos = our end): from now on it gets the live stream.
    Records committed but not yet shipped are in the snapshot and come again
    live: applying is idempotent. If the socket refuses part of the answer,
    the follower stays out of the live stream and syncs again after its
    timeout.

    Chunks. One answer carries at most self->chunk_records records
    (C_CHUNK_RECORDS; doubled for each consecutive answer to the same
    follower that stopped short, up to C_CHUNK_GROWTH times, back to the
    bound once it caught up: s_budget) and stops at the first record past
    C_CHUNK_BYTES of payload, so a follower that lacks millions of records (a re-seeded
    replica) never needs the whole catch-up queued at once. An answer that
    stops short ends, instead of the group snapshot and CAUGHT, with
    CREPL_CAUGHT pos 0 ("more"): the follower applies what came and, once
    it is committed, sends SYNC again; its last seqs moved, so the next
    round is a fresh snapshot that starts where this one stopped (its
    anchors now match ours: no truncation), and topics past the budget are
    reached in a later round. Every round sends at least one record (the
    budget is checked before each record, never before the first), so the
    rounds end; the last one ends as above (group snapshot, CAUGHT). The
    follower stays out of the live stream and the ISR (synced[] false)
    until then, and a new leader between rounds fences the next SYNC by
    (pt, ep) as any other.
*/
#include "tern_crepl_priv.h"
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define S_ANCHORS 64 //  anchors read per SYNC line

//  One of our topics of the partition being synced.
typedef struct {
    uint32_t id;                   //  topic id
    char name[TERN_TOPIC_MAX + 1]; //  its name
    uint64_t last_seq;             //  our last seq
    uint64_t first_seq;            //  our first stored seq (last_seq + 1: none)
    uint64_t from;                 //  first seq the follower needs
    tern_topic_limits_t limits;    //  its retention limits
} s_topic_t;

typedef struct {
    c_repl_t *self;    //  the actor
    uint32_t pt;       //  the partition
    s_topic_t *topics; //  our topics of it (owned)
    size_t count;      //  used
    size_t cap;        //  allocated
    zhashx_t *by_name; //  name -> index + 1
    uint64_t req_id;   //  the SYNC's request id: every frame of the answer carries it
    uint64_t budget;   //  records this answer may carry
    uint64_t records;  //  records sent in this answer
    uint64_t bytes;    //  their payload bytes
    bool more;         //  stopped at the budget: the follower asks again
} s_sync_t;

uint64_t c_chunk_bound(const char *knob, uint64_t bound) {
    const char *value = getenv(knob);
    char *end = NULL;
    unsigned long long n = value ? strtoull(value, &end, 10) : 0;
    if (!value || end == value || *end != 0 || n == 0 || n > bound) {
        return bound; //  unset or unusable: the knob only ever lowers it
    }
    zsys_info("crepl: SYNC answers carry at most %llu of their kind (%s)", n, knob);
    return n;
}

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
    t->first_seq = topic->first_seq;
    t->from = 1;
    t->limits = (tern_topic_limits_t){topic->max_age_ms, topic->max_msgs, topic->max_bytes};
    zhashx_insert(sync->by_name, t->name, (void *)(uintptr_t)sync->count);
    return true;
}

//  One line of a SYNC: `LAST_SEQ TOPIC` then anchors `SEQ:MSG_ID`, highest
//  seq first (the follower's records at LAST_SEQ, - 1, - 2, - 4, ...).
typedef struct {
    uint64_t last_seq;              //  the follower's last seq
    char topic[TERN_TOPIC_MAX + 1]; //  the topic
    uint64_t seq[S_ANCHORS];        //  anchor seqs, descending
    uint64_t msg_id[S_ANCHORS];     //  their msg_ids
    size_t anchors;                 //  used
} s_line_t;

//  Parses LEN bytes at P (no newline) into *LINE. False if malformed.
static bool s_parse_line(const char *p, size_t len, s_line_t *line) {
    char text[C_LINE_MAX];
    if (len == 0 || len >= sizeof text) {
        return false;
    }
    memcpy(text, p, len);
    text[len] = 0;
    char *end = NULL;
    errno = 0;
    line->last_seq = strtoull(text, &end, 10);
    if (errno || end == text || *end != ' ') {
        return false;
    }
    char *name = end + 1;
    char *rest = strchr(name, ' ');
    size_t name_len = rest ? (size_t)(rest - name) : strlen(name);
    if (!tern_topic_valid(name, name_len)) {
        return false;
    }
    memcpy(line->topic, name, name_len);
    line->topic[name_len] = 0;
    line->anchors = 0;
    while (rest && *rest == ' ' && line->anchors < S_ANCHORS) {
        uint64_t seq = strtoull(rest + 1, &end, 10);
        if (errno || *end != ':') {
            return false;
        }
        uint64_t id = strtoull(end + 1, &end, 10);
        if (errno || (*end != ' ' && *end != 0)) {
            return false;
        }
        line->seq[line->anchors] = seq;
        line->msg_id[line->anchors++] = id;
        rest = end;
    }
    return true;
}

static int s_send_truncate(c_repl_t *self, const uint8_t *rid, size_t rid_size, s_sync_t *sync,
                           uint64_t epoch, const char *topic, uint64_t after) {
    tern_frame_t frame;
    tern_frame_init(&frame, TERN_CMD_CREPL_TRUNCATE);
    frame.req_id = sync->req_id;
    C_PT(&frame) = sync->pt;
    C_EP(&frame) = epoch;
    snprintf(frame.topic, sizeof frame.topic, "%s", topic);
    frame.fields |= TERN_F_TOPIC;
    frame.seq = after;
    return c_send(self, self->router, rid, rid_size, &frame);
}

//  CREPL_TOPIC pos 0 (catch-up): OP on TOPIC, with LIMITS for a PUT.
static int s_send_topic(c_repl_t *self, const uint8_t *rid, size_t rid_size, s_sync_t *sync,
                        uint64_t epoch, const char *topic, uint32_t op,
                        const tern_topic_limits_t *limits) {
    tern_frame_t frame;
    char text[96];
    c_topic_frame(&frame, sync->pt, epoch, 0, topic, op, limits, text, sizeof text);
    frame.req_id = sync->req_id;
    return c_send(self, self->router, rid, rid_size, &frame);
}

//  Where the follower's copy of topic T (LINE) stops matching ours: its
//  highest anchor we hold with the same msg_id (or no longer hold: trimmed
//  here), else 0; without anchors, its last seq capped at ours. Sets
//  t->from and sends a TRUNCATE when it holds what we do not.
static int s_compare(c_repl_t *self, const uint8_t *rid, size_t rid_size, s_sync_t *sync,
                     uint64_t epoch, s_topic_t *t, const s_line_t *line) {
    uint64_t keep = line->last_seq < t->last_seq ? line->last_seq : t->last_seq;
    if (line->anchors > 0) {
        keep = 0;
        for (size_t i = 0; i < line->anchors && keep == 0; i++) {
            tern_frame_t ours;
            if (line->seq[i] > t->last_seq) {
                continue;
            }
            tern_err_t rc = tern_store_read(self->reader, t->id, line->seq[i], &ours);
            if (rc == TERN_ENOTFOUND || (rc == TERN_OK && ours.msg_id == line->msg_id[i])) {
                keep = line->seq[i];
            }
        }
    }
    t->from = keep + 1;
    if (line->anchors > 0 && line->seq[0] < t->first_seq &&
        s_send_topic(self, rid, rid_size, sync, epoch, t->name, TERN_CREPL_TOPIC_PURGE, NULL) !=
            0) {
        //  Even its last record is gone here (a purge it missed, or our
        //  retention): it keeps none of them, as we do.
        return -1;
    }
    if (keep >= line->last_seq) {
        return 0;
    }
    zsys_info("crepl: partition %u: node's %s holds seqs after %" PRIu64 " that differ from "
              "ours (up to %" PRIu64 "): truncated",
              sync->pt, t->name, keep, line->last_seq);
    return s_send_truncate(self, rid, rid_size, sync, epoch, t->name, keep);
}

//  Reads the follower's lines and sends the truncations. -1 if a send failed.
static int s_truncations(c_repl_t *self, const uint8_t *rid, size_t rid_size, s_sync_t *sync,
                         uint64_t epoch, const tern_frame_t *frame) {
    const char *p = (const char *)frame->payload;
    size_t left = frame->payload ? frame->payload_size : 0;
    while (left > 0) {
        const char *nl = memchr(p, '\n', left);
        size_t len = nl ? (size_t)(nl - p) : left;
        s_line_t line;
        int rc = 0;
        if (!s_parse_line(p, len, &line)) {
            if (len > 0) {
                zsys_warning("crepl: partition %u: bad SYNC line from node %u", sync->pt,
                             frame->node_id);
            }
        } else {
            uintptr_t at = (uintptr_t)zhashx_lookup(sync->by_name, line.topic);
            if (at) {
                rc = s_compare(self, rid, rid_size, sync, epoch, &sync->topics[at - 1], &line);
            } else { //  a topic we do not have: deleted here (or a deposed leader's)
                rc = s_send_topic(self, rid, rid_size, sync, epoch, line.topic,
                                  TERN_CREPL_TOPIC_DELETE, NULL);
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

//  Sends the records the follower lacks as CREPL_RECORD pos 0, in topic
//  and seq order, up to the chunk budget (sync->more set where it stopped).
static int s_catch_up(c_repl_t *self, const uint8_t *rid, size_t rid_size, s_sync_t *sync,
                      uint64_t epoch) {
    for (size_t i = 0; i < sync->count; i++) {
        s_topic_t *t = &sync->topics[i];
        //  Its limits first: they are ours whatever it missed (create, edit).
        if (s_send_topic(self, rid, rid_size, sync, epoch, t->name, TERN_CREPL_TOPIC_PUT,
                         &t->limits) != 0) {
            return -1;
        }
        tern_frame_t frame;
        tern_err_t rc = TERN_OK;
        uint64_t seq = t->from;
        for (; seq <= t->last_seq &&
               (rc = tern_store_read_next(self->reader, t->id, seq, &frame)) == TERN_OK;
             seq = frame.seq + 1) {
            if (sync->records >= sync->budget || sync->bytes >= C_CHUNK_BYTES) {
                sync->more = true; //  never before the first record: each round moves
                return 0;
            }
            frame.cmd = TERN_CMD_CREPL_RECORD;
            frame.req_id = sync->req_id;
            C_PT(&frame) = sync->pt;
            C_EP(&frame) = epoch;
            frame.position = 0;
            snprintf(frame.topic, sizeof frame.topic, "%s", t->name);
            frame.fields |= TERN_F_TOPIC;
            if (c_send(self, self->router, rid, rid_size, &frame) != 0) {
                return -1;
            }
            sync->records++;
            sync->bytes += frame.payload_size;
        }
        //  Our last records are gone (TTL, retention, purge): its copy ends
        //  at the last one sent, and our live stream goes on from our
        //  last_seq + 1, which its hole guard would refuse. So its log of
        //  the topic is told to end where ours does.
        if (seq <= t->last_seq && rc == TERN_ENOTFOUND &&
            s_send_truncate(self, rid, rid_size, sync, epoch, t->name, t->last_seq) != 0) {
            return -1;
        }
    }
    return 0;
}

//  The end of the answer. Once its records went whole: the outbox part (its
//  next chunk: ROUND) and, when that went whole too, the group snapshot and
//  CAUGHT(our end); else CAUGHT(0): "SYNC again" (sq: where the outbox part
//  resumes). The group snapshot goes in the last round only: the follower
//  gets no live group ops before CAUGHT, so an earlier one could be stale.
static int s_finish(c_repl_t *self, const uint8_t *rid, size_t rid_size, s_sync_t *sync,
                    const c_lead_t *lead, c_ob_round_t *round) {
    if (!sync->more) {
        if (c_outbox_snapshot(self, rid, rid_size, sync->pt, lead->epoch, sync->req_id, round) !=
            0) {
            return -1;
        }
        sync->more = round->next != 0;
        if (!sync->more &&
            c_group_snapshot(self, rid, rid_size, sync->pt, lead->epoch, sync->req_id) != 0) {
            return -1;
        }
    }
    tern_frame_t caught;
    tern_frame_init(&caught, TERN_CMD_CREPL_CAUGHT);
    caught.req_id = sync->req_id;
    C_PT(&caught) = sync->pt;
    C_EP(&caught) = lead->epoch;
    caught.position = sync->more ? 0 : lead->end; //  end >= 1 (tern_crepl_priv.h)
    caught.seq = sync->more ? round->next : 0;    //  echoed by the next SYNC
    return c_send(self, self->router, rid, rid_size, &caught);
}

//  Keeps the SYNC FRAME from RID for c_parked_answer (copies its payload).
static void s_park(c_repl_t *self, const uint8_t *rid, size_t rid_size, const tern_frame_t *frame) {
    c_parked_t *p = tern_alloc(sizeof *p);
    memcpy(p->rid, rid, rid_size);
    p->rid_size = rid_size;
    p->frame = *frame;
    if (frame->payload && frame->payload_size) {
        p->data = tern_alloc(frame->payload_size);
        memcpy(p->data, frame->payload, frame->payload_size);
    }
    p->frame.payload = p->data;
    p->frame.payload_size = p->data ? frame->payload_size : 0;
    if (self->parked_tail) {
        self->parked_tail->next = p;
    } else {
        self->parked = p;
    }
    self->parked_tail = p;
}

void c_parked_answer(c_repl_t *self, bool shutdown) {
    if (!self->parked) {
        return;
    }
    if (!shutdown) {
        //  What this drain queued goes first, to the followers synced so far
        //  (an answer's follower is not one of them until its CAUGHT).
        c_ship_flush(self);
        c_group_flush(self);
    }
    while (self->parked) {
        c_parked_t *p = self->parked;
        self->parked = p->next;
        if (!shutdown) {
            c_answer_sync(self, p->rid, p->rid_size, &p->frame);
        }
        free(p->data);
        free(p);
    }
    self->parked_tail = NULL;
}

//  NODE's entry in LEAD's short-round counts (of LEAD's epoch), a free or
//  stale one taken if it has none.
static c_short_t *s_short(c_lead_t *lead, uint32_t node) {
    c_short_t *free_one = &lead->shorts[0];
    for (size_t i = 0; i < C_RMAX; i++) {
        c_short_t *e = &lead->shorts[i];
        if (e->epoch == lead->epoch && e->node == node) {
            return e;
        }
        if (e->epoch != lead->epoch || e->rounds == 0) {
            free_one = e;
        }
    }
    *free_one = (c_short_t){node, lead->epoch, 0, 0};
    return free_one;
}

//  The record bound of an answer to a follower whose last ROUNDS answers
//  stopped short: x2 per such answer, at most C_CHUNK_GROWTH x the bound.
//  A partition that takes more than one bound of records per round (the
//  answer, the follower's fsync'd commit, its next SYNC) would otherwise
//  never finish its catch-up; each round remains one snapshot's worth.
static uint64_t s_budget(uint64_t bound, uint32_t rounds) {
    uint64_t budget = bound;
    for (uint32_t i = 0; i < rounds && budget < bound * C_CHUNK_GROWTH; i++) {
        budget *= 2;
    }
    return budget < bound * C_CHUNK_GROWTH ? budget : bound * C_CHUNK_GROWTH;
}

void c_answer_sync(c_repl_t *self, const uint8_t *rid, size_t rid_size, const tern_frame_t *frame) {
    if (self->unsynced) {
        //  Records were shipped ahead of the storer's commit (tern_storer.c,
        //  s_commit_shipped): a snapshot now could lack some of them while
        //  CAUGHT's position, the end, counts them, and this follower was
        //  not in the live stream they went to. So the answer waits for the
        //  SYNCED after which every position up to the end is in the store.
        s_park(self, rid, rid_size, frame);
        return;
    }
    c_lead_t *lead = c_fence_lead(self, frame);
    int idx = lead ? c_rep_index(lead, frame->node_id) : -1;
    if (idx < 0) {
        return; //  stale, ahead, or not a replica: it syncs again once the view agrees
    }
    if (self->follows[C_PT(frame)].inflight > 0) {
        //  We just became leader and records we got as a follower are still
        //  at our storer: a snapshot now would miss them (and truncate them
        //  away from the follower). It asks again after C_SYNC_WAIT_MS.
        return;
    }
    //  Its stream starts over: out of the live stream, and what it
    //  confirmed before (its copy may have been emptied since) no longer
    //  counts for joining the ISR: it confirms again after CAUGHT, which a
    //  catch-up in several rounds sends only at the last.
    lead->synced[idx] = false;
    lead->reps[idx].durable = 0;
    c_short_t *shorts = s_short(lead, frame->node_id);
    s_sync_t sync = {.self = self,
                     .pt = C_PT(frame),
                     .by_name = zhashx_new(),
                     .req_id = frame->req_id,
                     .budget = s_budget(self->chunk_records, shorts->rounds)};
    if (!sync.by_name || tern_store_read_begin(self->reader) != TERN_OK) {
        zhashx_destroy(&sync.by_name);
        return;
    }
    //  The outbox part resumes where the last round stopped only if this
    //  SYNC says its follower applied that round (it echoes CAUGHT's sq; a
    //  follower that restarted or synced again sends 0): else from the start.
    bool resume = frame->seq && frame->seq == shorts->ob_next;
    c_ob_round_t round = {resume ? shorts->ob_next : 0,
                          s_budget(self->chunk_outbox, shorts->rounds), 0};
    round.next = round.from; //  kept when the records stop short of the outbox part
    int rc = -1;
    if (tern_store_topic_list(self->reader, s_collect, &sync) == TERN_OK &&
        s_truncations(self, rid, rid_size, &sync, lead->epoch, frame) == 0 &&
        s_catch_up(self, rid, rid_size, &sync, lead->epoch) == 0) {
        rc = s_finish(self, rid, rid_size, &sync, lead, &round);
    }
    tern_store_read_end(self->reader);
    shorts->ob_next = rc == 0 ? round.next : 0;
    if (rc == 0 && sync.more) {
        shorts->rounds++;
        zsys_info("crepl: partition %u: node %u sync round sent %" PRIu64 " records (%" PRIu64
                  " bytes), outbox next at %" PRIu64 "; more to come",
                  sync.pt, frame->node_id, sync.records, sync.bytes, round.next);
    } else if (rc == 0) {
        shorts->rounds = 0; //  caught: the next catch-up starts at the bound again
        lead->synced[idx] = true;
        atomic_fetch_add_explicit(&self->stats->syncs_answered, 1, memory_order_relaxed);
        zsys_info("crepl: partition %u: node %u synced (%zu topics, position %" PRIu64 ")", sync.pt,
                  frame->node_id, sync.count, lead->end);
    } else {
        zsys_warning("crepl: partition %u: sync of node %u cut short (%s); it will ask again",
                     sync.pt, frame->node_id, zmq_strerror(zmq_errno()));
    }
    free(sync.topics);
    zhashx_destroy(&sync.by_name);
}
