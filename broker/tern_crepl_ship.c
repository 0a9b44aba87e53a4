/*  tern_crepl_ship.c - crepl: the leader's outgoing CREPL_RECORDS frames.

    Part of the crepl actor (tern_crepl.c; state in tern_crepl_priv.h). The
    leader side (tern_crepl_lead.c) adds each record and topic op it ships
    live to its partition's pending CREPL_RECORDS payload here, and the inbox
    handler flushes every pending payload once per drain of the inbox: one
    ZeroMQ message per follower and partition for all the commits of the
    drain (cut where a commit's group ops must go between its records and
    the next commit's, see c_ship_add), instead of three sends per record and follower. Measured
   before (docs/performance.md, "Cluster"): the leader's libzmq I/O thread spent 4 us/msg in the
   kernel and each side's crepl 2-3 us/msg on per-record sends, wake-ups and allocations. The
   payload is built once and handed to ZeroMQ without a copy (zmq_msg_init_data); each follower's
   send is a reference to it (zmq_msg_copy). A record too large for one payload (server/max_payload,
   C_RECORDS_MAX) goes alone as CREPL_RECORD, after the pending ones, so the order holds.

    Invariant: nothing is pending outside the inbox handler, so heartbeats,
    SYNC answers and CAUGHT never overtake a record.
*/
#include "tern_crepl_priv.h"
#include <inttypes.h>
#include <string.h>

//  The most a CREPL_RECORDS payload carries.
static size_t s_budget(c_repl_t *self) {
    uint64_t max = self->config->max_payload;
    return max && max < C_RECORDS_MAX ? (size_t)max : C_RECORDS_MAX;
}

static void s_free(void *data, void *hint) {
    (void)hint;
    free(data);
}

//  A header of these frames: no more than a topic name and a few numbers.
#define S_HDR_MAX 512

void c_ship_frame(c_repl_t *self, c_lead_t *lead, const tern_frame_t *frame, uint8_t *payload,
                  size_t size) {
    uint8_t hdr[S_HDR_MAX]; //  not self->buf: it may hold the header c_ship_add is adding
    size_t len = 0;
    tern_err_t rc = tern_frame_encode(frame, hdr, sizeof hdr, &len);
    zmq_msg_t body;
    zmq_msg_init_data(&body, payload, size, s_free, NULL); //  ZeroMQ owns it now
    for (size_t i = 1; i < lead->nreps; i++) {
        if (!lead->synced[i]) {
            continue;
        }
        c_peer_t *peer = c_peer(self, lead->reps[i].node, false);
        if (rc != TERN_OK || !peer || !peer->rid_size ||
            c_send_encoded(self, peer->rid, peer->rid_size, hdr, len, &body) != 0) {
            zsys_warning("crepl: partition %u: follower %u dropped from the live stream (%s)",
                         C_PT(frame), lead->reps[i].node,
                         rc != TERN_OK ? tern_strerror(rc)
                                       : (peer ? zmq_strerror(zmq_errno()) : "unknown"));
            lead->synced[i] = false;
        }
    }
    zmq_msg_close(&body);
}

//  Sends PT's pending payload to every synced follower (c_ship_frame).
static void s_flush(c_repl_t *self, uint32_t pt, c_lead_t *lead) {
    tern_frame_t frame;
    c_frame_init(&frame, TERN_CMD_CREPL_RECORDS, pt, lead->epoch, lead->out_pos);
    frame.payload = lead->out; //  for the encoder's checks; sent by reference
    frame.payload_size = lead->out_len;
    frame.fields |= TERN_F_PAYLOAD;
    uint8_t *out = lead->out;
    size_t out_len = lead->out_len;
    lead->out_hint = lead->out_cap; //  the next one likely needs as much: no reallocs
    lead->out = NULL;
    lead->out_len = lead->out_cap = 0;
    lead->out_pos = 0;
    c_ship_frame(self, lead, &frame, out, out_len);
}

bool c_ship_add(c_repl_t *self, uint32_t pt, c_lead_t *lead, uint64_t pos, size_t hdr_len,
                const uint8_t *payload, size_t payload_size) {
    size_t entry = hdr_len + payload_size + TERN_RECORDS_ENTRY_OVERHEAD;
    size_t budget = s_budget(self);
    if (lead->gqueued) {
        //  Group ops of an earlier commit wait: the records before them, then
        //  they, then this one (a follower applies them in stream order; ops
        //  after later records could meet a topic deleted and re-created).
        if (lead->out_len) {
            s_flush(self, pt, lead);
        }
        //  (At every commit boundary: group ops go at SYNCED, right before
        //  the next commit's COMMITTED, tern_crepl_notice.c.) They encode in
        //  their own buffer (c_ship_frame): self->buf holds this record's
        //  header.
        c_group_flush_pt(self, pt);
    }
    if (lead->out_len &&
        (lead->out_len + entry > budget || pos != lead->out_pos + lead->out_count)) {
        s_flush(self, pt, lead);
    }
    if (entry > budget) {
        return false; //  the caller sends it alone, after what was pending
    }
    if (lead->out_cap - lead->out_len < entry) {
        size_t cap = lead->out_cap                      ? lead->out_cap * 2
                     : lead->out_hint > C_RECORDS_FIRST ? lead->out_hint
                                                        : C_RECORDS_FIRST;
        while (cap - lead->out_len < entry) {
            cap *= 2;
        }
        lead->out = tern_realloc(lead->out, cap);
        lead->out_cap = cap;
    }
    if (!lead->out_len) {
        lead->out_pos = pos;
        lead->out_count = 0;
    }
    if (!lead->out_dirty) {
        lead->out_dirty = true;
        self->ship_dirty[self->ship_dirty_count++] = pt; //  each led partition once: fits [P]
    }
    lead->out_len +=
        tern_records_put(lead->out + lead->out_len, self->buf, hdr_len, payload, payload_size);
    lead->out_count++;
    return true;
}

void c_ship_flush(c_repl_t *self) {
    for (size_t i = 0; i < self->ship_dirty_count; i++) {
        uint32_t pt = self->ship_dirty[i];
        c_lead_t *lead = &self->leads[pt];
        lead->out_dirty = false;
        if (lead->leading && lead->out_len) {
            s_flush(self, pt, lead);
        }
    }
    self->ship_dirty_count = 0;
}

void c_ship_drop(c_lead_t *lead) {
    free(lead->out); //  stays on the dirty list, flushed as empty
    lead->out = NULL;
    lead->out_len = lead->out_cap = 0;
    lead->out_pos = 0;
    lead->out_count = 0;
}
