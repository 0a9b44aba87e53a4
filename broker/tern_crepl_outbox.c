/*  tern_crepl_outbox.c - crepl: the cross-DC outbox of a partition, the
    same on every replica of it.

    Part of the crepl actor (tern_crepl.c; state in tern_crepl_priv.h), plus
    the function the storer calls on its own thread for a follower's
    CREPL_OUTBOX frame. With peer DCs configured, each partition's leader
    keeps an outbox (storage/tern_store_outbox.c) and ships it cross-DC
    (tern_repl*.c); a new leader must find the same entries at the same
    positions, and what each peer confirmed, to resume without gaps
    (docs/replication.md "Outbox in a cluster"). How each part reaches the
    followers:

    - Record entries ride their record: CREPL_RECORD `ob` (tern_crepl_lead.c).
    - Ack-state entries ride their ACK / DEAD op in CREPL_GROUP
      (tern_crepl_group.c, the op's 8th element).
    - Confirmations: CREPL_OUTBOX CONFIRMS, "POS PEER" lines of every
      configured peer, to the synced followers at a heartbeat round when
      they moved (c_outbox_confirms). They are monotone (a lower position
      is ignored), so one that overtakes the entries it covers is harmless:
      the follower's sweep drops those entries when they come.
    - Catch-up: the last part of a SYNC answer (c_outbox_snapshot, from the
      answer's read snapshot): CONFIRMS, then RESET (sq = our first entry,
      pos = our last; the follower drops its entries from sq on, a tail we
      lack included, and takes our last) and MORE frames with every entry
      we hold. Records the follower gets in the catch-up carry no `ob`:
      their entries come here. Entries of commits after the snapshot come
      live (and again, idempotently, if they were in it).

    Without peers (cross-DC off) none of this sends anything.

    Chunks. The outbox part is split across catch-up rounds like the
    records (tern_crepl_sync.c, "Chunks"), so a partition whose peers
    confirmed nothing for hours (a DC cut off) does not queue its whole
    unconfirmed outbox (about 80 bytes an entry) on the socket at once. It
    comes once the records went whole; a round carries at most
    self->chunk_outbox entries (C_OB_CHUNK_ENTRIES, grown with the rounds
    like the record bound; TERN_CREPL_CHUNK_OUTBOX lowers it for tests) and
    stops after the frame that passes C_OB_CHUNK_BYTES, in frames of at
    most max_payload. An answer that stopped short ends with CAUGHT pos 0
    and sq = the position the next round resumes at; the follower echoes
    that sq in its next SYNC once it applied the round, and the leader
    resumes there only if it is the position it noted for that follower
    (c_short_t, of this epoch): any other SYNC (a follower that restarted
    or synced again, a new leader) starts the outbox part over. A resumed
    round's RESET has sq = that position (the entries before it, sent in
    the earlier rounds, stay) and our current last. Entries written between
    rounds are at positions past it, so they come in a later round; the
    group snapshot and CAUGHT (the live stream) come in the last round.
*/
#include "tern_crepl_priv.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_LINE_MAX (TERN_TOPIC_MAX + TERN_NAME_MAX + 128) //  one entry line, at most

//  Payload bytes one frame takes (under the peers' max_payload).
static size_t s_room(const c_repl_t *self) {
    uint64_t max = self->config->max_payload;
    return max > 4096 + S_LINE_MAX ? (size_t)(max - 2048) : 2048 + S_LINE_MAX;
}

//  The CONFIRMS lines of PT into BUF (CAP bytes, room for every peer) from
//  the reader's open snapshot; returns their length, and in *SUM the sum of
//  the positions (what changed since the last round).
static size_t s_confirms_text(c_repl_t *self, uint32_t pt, char *buf, size_t cap, uint64_t *sum) {
    size_t len = 0;
    *sum = 0;
    for (uint32_t i = 0; i < self->config->peer_count; i++) {
        const char *peer = self->config->peers[i].name;
        uint64_t pos = 0;
        if (tern_store_outbox_confirmed_pt(self->reader, peer, pt, &pos) != TERN_OK || !pos) {
            continue;
        }
        int n = snprintf(buf + len, cap - len, "%" PRIu64 " %s\n", pos, peer);
        if (n < 0 || (size_t)n >= cap - len) {
            break;
        }
        len += (size_t)n;
        *sum += pos;
    }
    return len;
}

#define S_CONFIRMS_CAP (TERN_PEERS_MAX * (TERN_NAME_MAX + 24))

void c_outbox_confirms(c_repl_t *self, uint32_t pt, c_lead_t *lead) {
    if (!self->config->peer_count || !self->ob_sent) {
        return;
    }
    char text[S_CONFIRMS_CAP];
    uint64_t sum = 0;
    size_t len = 0;
    if (tern_store_read_begin(self->reader) == TERN_OK) {
        len = s_confirms_text(self, pt, text, sizeof text, &sum);
        tern_store_read_end(self->reader);
    }
    if (sum == self->ob_sent[pt]) {
        return;
    }
    tern_frame_t frame;
    c_frame_init(&frame, TERN_CMD_CREPL_OUTBOX, pt, lead->epoch, 0);
    frame.code = TERN_CREPL_OUTBOX_CONFIRMS;
    frame.payload = (const uint8_t *)text;
    frame.payload_size = len;
    frame.fields |= TERN_F_PAYLOAD;
    bool all = true;
    for (size_t i = 1; i < lead->nreps; i++) {
        c_peer_t *peer = lead->synced[i] ? c_peer(self, lead->reps[i].node, false) : NULL;
        all = all && peer && peer->rid_size &&
              c_send(self, self->router, peer->rid, peer->rid_size, &frame) == 0;
    }
    if (all) {
        self->ob_sent[pt] = sum; //  else again next round
    }
}

//  A SYNC answer's entry frames, filled as the outbox is read.
typedef struct {
    c_repl_t *self;     //  the actor
    const uint8_t *rid; //  the follower
    size_t rid_size;    //  its length
    tern_frame_t frame; //  RESET first, then MORE
    char *buf;          //  payload being filled (owned)
    size_t len;         //  used
    size_t cap;         //  allocated (s_room)
    int rc;             //  -1 once a send failed
    uint64_t next;      //  where the next read starts
    size_t seen;        //  entries in the last read
    uint64_t entries;   //  entries in this round
    uint64_t bytes;     //  payload bytes sent in this round
    uint64_t budget;    //  entries this round may carry
    uint64_t stop;      //  the first entry past the budget (next round's start), or 0
} s_snap_t;

static int s_snap_flush(s_snap_t *snap) {
    snap->frame.payload = (const uint8_t *)snap->buf;
    snap->frame.payload_size = snap->len;
    snap->frame.fields |= TERN_F_PAYLOAD;
    if (c_send(snap->self, snap->self->router, snap->rid, snap->rid_size, &snap->frame) != 0) {
        snap->rc = -1;
    }
    snap->frame.code = TERN_CREPL_OUTBOX_MORE;
    snap->bytes += snap->len;
    snap->len = 0;
    return snap->rc;
}

static bool s_snap_entry(const tern_outbox_entry_t *e, void *arg) {
    s_snap_t *snap = arg;
    //  The bounds are checked before each entry, never before the first,
    //  so every round carries one and the rounds end.
    if (snap->entries && (snap->entries >= snap->budget || snap->bytes >= C_OB_CHUNK_BYTES)) {
        snap->stop = e->position;
        return false;
    }
    snap->next = e->position + 1;
    snap->seen++;
    snap->entries++;
    tern_topic_info_t topic;
    const char *name = "";
    if (tern_store_topic_get_id(snap->self->reader, e->topic_id, &topic) == TERN_OK) {
        name = topic.name;
    }
    if (snap->cap - snap->len < S_LINE_MAX && s_snap_flush(snap) != 0) {
        return false;
    }
    int n = snprintf(snap->buf + snap->len, snap->cap - snap->len,
                     "%" PRIu64 " %d %" PRIu64 " %" PRIu64 " %" PRIu32 " %" PRIu64 " g%s t%s\n",
                     e->position, e->is_ackstate ? 1 : 0, e->seq, e->msg_id, e->op, e->at_ns,
                     e->group, name);
    snap->len += n > 0 ? (size_t)n : 0;
    return true;
}

static bool s_first(const tern_outbox_entry_t *e, void *arg) {
    *(tern_outbox_entry_t *)arg = *e;
    return false;
}

//  RESET's sq, where the follower's entries are replaced from: our first
//  entry (LAST + 1 when we hold none) or, resuming, where the last round
//  stopped (what came before it stays).
static uint64_t s_reset_from(c_repl_t *self, uint32_t pt, uint64_t last, uint64_t from) {
    if (from) {
        return from;
    }
    tern_outbox_entry_t first;
    first.position = 0;
    if (tern_store_outbox_read_pt(self->reader, pt, 0, 1, s_first, &first) == TERN_OK &&
        first.position) {
        return first.position;
    }
    return last + 1;
}

int c_outbox_snapshot(c_repl_t *self, const uint8_t *rid, size_t rid_size, uint32_t pt,
                      uint64_t epoch, uint64_t req_id, c_ob_round_t *round) {
    round->next = 0;
    if (!self->config->peer_count) {
        return 0;
    }
    char text[S_CONFIRMS_CAP];
    uint64_t sum = 0, last = 0;
    tern_frame_t frame;
    c_frame_init(&frame, TERN_CMD_CREPL_OUTBOX, pt, epoch, 0);
    frame.req_id = req_id;
    frame.code = TERN_CREPL_OUTBOX_CONFIRMS;
    frame.payload = (const uint8_t *)text;
    frame.payload_size = s_confirms_text(self, pt, text, sizeof text, &sum);
    frame.fields |= TERN_F_PAYLOAD;
    if (c_send(self, self->router, rid, rid_size, &frame) != 0 ||
        tern_store_outbox_last_pt(self->reader, pt, &last) != TERN_OK) {
        return -1;
    }
    s_snap_t snap = {.self = self,
                     .rid = rid,
                     .rid_size = rid_size,
                     .frame = frame,
                     .cap = s_room(self),
                     .next = round->from,
                     .budget = round->budget};
    snap.buf = tern_alloc(snap.cap);
    snap.frame.code = TERN_CREPL_OUTBOX_RESET;
    snap.frame.position = last;
    snap.frame.seq = s_reset_from(self, pt, last, round->from);
    do {
        snap.seen = 0;
        if (tern_store_outbox_read_pt(self->reader, pt, snap.next, 1024, s_snap_entry, &snap) !=
            TERN_OK) {
            snap.rc = -1;
        }
    } while (snap.rc == 0 && snap.seen == 1024 && !snap.stop);
    if (snap.rc == 0 && (snap.len || snap.frame.code == TERN_CREPL_OUTBOX_RESET)) {
        s_snap_flush(&snap);
    }
    free(snap.buf);
    round->next = snap.stop;
    return snap.rc;
}

// ---------------------------------------------------------------------------
//  The follower's side, on the storer's thread

//  Parses one entry line P (LEN bytes, no newline) into E and its TOPIC
//  (TERN_TOPIC_MAX + 1). False when it is malformed.
static bool s_parse_entry(const char *p, size_t len, tern_outbox_entry_t *e, char *topic) {
    char line[S_LINE_MAX + 1];
    if (len > S_LINE_MAX) {
        return false;
    }
    memcpy(line, p, len);
    line[len] = 0;
    unsigned kind = 0;
    int at = 0;
    memset(e, 0, sizeof *e);
    if (sscanf(line, "%" SCNu64 " %u %" SCNu64 " %" SCNu64 " %" SCNu32 " %" SCNu64 " %n",
               &e->position, &kind, &e->seq, &e->msg_id, &e->op, &e->at_ns, &at) != 6 ||
        kind > 1 || line[at] != 'g') {
        return false;
    }
    const char *group = line + at + 1;
    const char *sep = strstr(group, " t");
    if (!sep || (size_t)(sep - group) > TERN_NAME_MAX || strlen(sep + 2) > TERN_TOPIC_MAX) {
        return false;
    }
    memcpy(e->group, group, (size_t)(sep - group));
    e->group[sep - group] = 0;
    strcpy(topic, sep + 2);
    e->is_ackstate = kind == 1;
    return e->position > 0;
}

//  CONFIRMS: "POS PEER" lines.
static bool s_parse_confirm(const char *p, size_t len, uint64_t *pos, char *peer) {
    char line[TERN_NAME_MAX + 32];
    if (len >= sizeof line) {
        return false;
    }
    memcpy(line, p, len);
    line[len] = 0;
    int at = 0;
    return sscanf(line, "%" SCNu64 " %n", pos, &at) == 1 && at > 0 && line[at] &&
           strlen(line + at) <= TERN_NAME_MAX && strcpy(peer, line + at);
}

void tern_crepl_outbox_queue(tern_repl_rec_t *rec, tern_store_batch_t *batch) {
    const tern_frame_t *f = &rec->frame;
    uint32_t pt = f->partition;
    if (f->code == TERN_CREPL_OUTBOX_RESET) {
        tern_store_batch_outbox_reset_pt(batch, pt, f->seq, f->position);
    } else if (f->code != TERN_CREPL_OUTBOX_CONFIRMS && f->code != TERN_CREPL_OUTBOX_MORE) {
        rec->result.err = TERN_EINVAL; //  a newer leader's kind: sync again, never guess
        return;
    }
    const char *p = (const char *)f->payload;
    const char *end = p ? p + f->payload_size : p;
    while (p && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        bool ok;
        if (f->code == TERN_CREPL_OUTBOX_CONFIRMS) {
            char peer[TERN_NAME_MAX + 1];
            uint64_t pos = 0;
            ok = s_parse_confirm(p, len, &pos, peer);
            if (ok) {
                tern_store_batch_outbox_confirm_pt(batch, peer, pt, pos);
            }
        } else {
            tern_outbox_entry_t e;
            char topic[TERN_TOPIC_MAX + 1];
            ok = s_parse_entry(p, len, &e, topic);
            if (ok) {
                e.partition = pt;
                tern_store_batch_outbox_put(batch, topic, &e);
            }
        }
        if (!ok) {
            rec->result.err = TERN_EMALFORMED;
            return;
        }
        p += len + 1;
    }
}
