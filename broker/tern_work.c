/*  tern_work.c - hand-off helpers for the work items of tern_work.h.

    Pointers travel between actors as one small ZeroMQ frame; this file keeps
    the framing and the growable arrays in one place.
*/
#include "tern_work.h"
#include "tern_crepl.h"
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    uint32_t type; //  tern_work_type_t
    void *ptr;     //  the owned item
} s_wire_t;

int tern_work_send(void *sock, tern_work_type_t type, void *ptr) {
    s_wire_t wire = {(uint32_t)type, ptr};
    while (true) {
        int rc = zmq_send(sock, &wire, sizeof wire, ZMQ_DONTWAIT);
        if (rc == (int)sizeof wire) {
            return 0;
        }
        if (errno != EINTR) {
            return -1;
        }
    }
}

int tern_frame_send(void *sock, const uint8_t *rid, size_t rid_size, const tern_frame_t *frame,
                    uint8_t *buf, size_t cap, const char *who) {
    size_t len = 0;
    tern_err_t rc = tern_frame_encode(frame, buf, cap, &len);
    if (rc != TERN_OK) {
        zsys_error("%s: cannot encode %s: %s", who, tern_cmd_name(frame->cmd), tern_strerror(rc));
        errno = EINVAL;
        return -1;
    }
    bool payload = tern_cmd_has_payload(frame->cmd);
    if (rid && zmq_send(sock, rid, rid_size, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        return -1;
    }
    if (zmq_send(sock, buf, len, (payload ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT) < 0) {
        return -1;
    }
    if (payload && zmq_send(sock, frame->payload ? frame->payload : (const uint8_t *)"",
                            frame->payload_size, ZMQ_DONTWAIT) < 0) {
        return -1;
    }
    return 0;
}

void tern_node_sock_options(zsock_t *sock, int hwm, uint64_t max_payload) {
    if (zsock_type(sock) == ZMQ_ROUTER) {
        zsock_set_router_mandatory(sock, 1);
    }
    zsock_set_sndhwm(sock, hwm);
    zsock_set_rcvhwm(sock, hwm);
    zsock_set_linger(sock, 0);
    zsock_set_maxmsgsize(sock, (int64_t)(2 * max_payload + TERN_HEADER_MAX + 4096));
}

int tern_work_recv(void *sock, int flags, tern_work_type_t *type, void **ptr) {
    s_wire_t wire;
    int rc = zmq_recv(sock, &wire, sizeof wire, flags);
    if (rc != (int)sizeof wire) {
        return -1;
    }
    *type = (tern_work_type_t)wire.type;
    *ptr = wire.ptr;
    return 0;
}

int tern_work_parse(const void *data, size_t size, tern_work_type_t *type, void **ptr) {
    s_wire_t wire;
    if (size != sizeof wire) {
        return -1;
    }
    memcpy(&wire, data, sizeof wire);
    *type = (tern_work_type_t)wire.type;
    *ptr = wire.ptr;
    return 0;
}

tern_event_t *tern_events_push(tern_events_t *self) {
    if (self->count == self->cap) {
        self->cap = self->cap ? self->cap * 2 : 64;
        self->items = tern_realloc(self->items, self->cap * sizeof(tern_event_t));
    }
    tern_event_t *ev = &self->items[self->count++];
    memset(ev, 0, sizeof *ev);
    return ev;
}

void tern_events_destroy(tern_events_t **self_p) {
    if (!self_p || !*self_p) {
        return;
    }
    tern_events_t *self = *self_p;
    for (size_t i = 0; i < self->count; i++) {
        free(self->items[i].rid);
        free(self->items[i].text);
        free(self->items[i].admin);
    }
    free(self->items);
    free(self);
    *self_p = NULL;
}

tern_op_t *tern_ops_push(tern_ops_t *self) {
    if (self->count == self->cap) {
        self->cap = self->cap ? self->cap * 2 : 64;
        self->items = tern_realloc(self->items, self->cap * sizeof(tern_op_t));
    }
    tern_op_t *op = &self->items[self->count++];
    memset(op, 0, offsetof(tern_op_t, group));
    op->group[0] = 0;
    op->consumer[0] = 0;
    return op;
}

void tern_ops_destroy(tern_ops_t **self_p) {
    if (!self_p || !*self_p) {
        return;
    }
    for (size_t i = 0; i < (*self_p)->count; i++) {
        free((*self_p)->items[i].reason);
    }
    free((*self_p)->items);
    free(*self_p);
    *self_p = NULL;
}

void tern_notice_destroy(tern_notice_t **self_p) {
    if (!self_p || !*self_p) {
        return;
    }
    tern_notice_t *self = *self_p;
    while (self->ops) {
        tern_ops_t *next = self->ops->next;
        tern_ops_destroy(&self->ops);
        self->ops = next;
    }
    free(self->appended);
    free(self->gone);
    free(self->reload);
    free(self->created);
    free(self->gops);
    free(self->gop_topics);
    free(self->obmarks);
    free(self);
    *self_p = NULL;
}

void tern_obsafe_destroy(tern_obsafe_t **self_p) {
    if (!self_p || !*self_p) {
        return;
    }
    free((*self_p)->marks);
    free((*self_p)->epochs);
    free(*self_p);
    *self_p = NULL;
}

uint64_t tern_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t tern_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void tern_rid_hex(const uint8_t *rid, size_t size, char *out) {
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < size; i++) {
        out[2 * i] = hex[rid[i] >> 4];
        out[2 * i + 1] = hex[rid[i] & 15];
    }
    out[2 * size] = 0;
}

void tern_pub_destroy(tern_pub_t **self_p) {
    if (!self_p || !*self_p) {
        return;
    }
    zmq_msg_close(&(*self_p)->hdr);
    zmq_msg_close(&(*self_p)->body);
    free(*self_p);
    *self_p = NULL;
}

void tern_pubs_destroy(tern_pubs_t **self_p) {
    if (!self_p || !*self_p) {
        return;
    }
    tern_pubs_t *self = *self_p;
    for (size_t i = 0; i < self->count; i++) {
        tern_pub_destroy(&self->items[i]);
    }
    free(self->items);
    free(self);
    *self_p = NULL;
}

void tern_committed_destroy(tern_committed_t **self_p) {
    if (!self_p || !*self_p) {
        return;
    }
    tern_committed_t *self = *self_p;
    while (self->pubs) {
        tern_pubs_t *next = self->pubs->next;
        tern_pubs_destroy(&self->pubs);
        self->pubs = next;
    }
    while (self->admins) {
        tern_admin_t *next = self->admins->next;
        free(self->admins);
        self->admins = next;
    }
    free(self);
    *self_p = NULL;
}

void *tern_work_pull_bind(zsock_t **owner, const char *endpoint) {
    *owner = zsock_new(ZMQ_PULL);
    if (!*owner) {
        return NULL;
    }
    zsock_set_rcvhwm(*owner, 0);
    if (zsock_bind(*owner, "%s", endpoint) != 0) {
        return NULL;
    }
    return zsock_resolve(*owner);
}

void *tern_work_push_connect(zsock_t **owner, const char *endpoint) {
    *owner = zsock_new(ZMQ_PUSH);
    if (!*owner) {
        return NULL;
    }
    zsock_set_sndhwm(*owner, 0);
    zsock_set_linger(*owner, 1000); //  let the peer read what we sent last
    if (zsock_connect(*owner, "%s", endpoint) != 0) {
        return NULL;
    }
    return zsock_resolve(*owner);
}

void tern_thread_name(const char *name) {
    pthread_setname_np(pthread_self(), name);
}

// ---------------------------------------------------------------------------
//  Replication items (repl <-> storer, conn <-> repl)

void tern_repl_rec_destroy(tern_repl_rec_t **rec_p) {
    if (*rec_p) {
        zmq_msg_close(&(*rec_p)->hdr);
        zmq_msg_close(&(*rec_p)->body);
        free(*rec_p);
        *rec_p = NULL;
    }
}

void tern_repl_batch_destroy(tern_repl_batch_t **self_p) {
    if (!self_p || !*self_p) {
        return;
    }
    tern_repl_batch_t *self = *self_p;
    for (size_t i = 0; i < self->count; i++) {
        tern_repl_rec_destroy(&self->recs[i]);
    }
    free(self->recs);
    free(self->marks);
    free(self);
    *self_p = NULL;
}

//  A CREPL_TOPIC (tern_proto.h): the leader's topic admin op. A delete or
//  purge of a topic this replica lacks changes nothing: its result goes to
//  a field nobody checks (rec->result.seq), so the stream goes on.
static void s_queue_topic_op(tern_repl_rec_t *rec, tern_store_batch_t *batch) {
    const tern_frame_t *f = &rec->frame;
    if (f->code == TERN_CREPL_TOPIC_DELETE || f->code == TERN_CREPL_TOPIC_PURGE) {
        static tern_err_t s_ignored; //  storer thread only: written at its commit
        tern_store_batch_topic_delete(batch, f->topic, f->code == TERN_CREPL_TOPIC_PURGE,
                                      &s_ignored, &rec->result.seq);
        return;
    }
    char text[96] = "";
    size_t n = f->payload_size < sizeof text - 1 ? f->payload_size : sizeof text - 1;
    if (f->payload) {
        memcpy(text, f->payload, n);
    }
    tern_topic_limits_t limits = {0, 0, 0};
    if (f->code != TERN_CREPL_TOPIC_PUT ||
        sscanf(text, "%" SCNu64 " %" SCNu64 " %" SCNu64, &limits.max_age_ms, &limits.max_msgs,
               &limits.max_bytes) != 3) {
        rec->result.err = TERN_EINVAL; //  a newer leader's op: sync again, never guess
        return;
    }
    tern_store_batch_topic_put(batch, f->topic, TERN_TOPIC_PUT, &limits, &rec->result.err, NULL);
}

//  An in-DC follower batch: the leader's records at its seqs, and the
//  truncations a re-sync asked for, in the order they came; a stream stops
//  at its first failure (tern_repl_streams_t says why).
static void s_queue_in_dc(tern_repl_batch_t *self, tern_store_batch_t *batch,
                          tern_repl_streams_t *streams) {
    for (size_t i = 0; i < self->count; i++) {
        tern_repl_rec_t *rec = self->recs[i];
        uint32_t pt = rec->frame.partition;
        tern_repl_stream_t *st = streams && pt < streams->count ? &streams->pts[pt] : NULL;
        memset(&rec->result, 0, sizeof rec->result);
        if (st && st->failed != 0 && st->failed == rec->stream) {
            rec->result.err = TERN_ESTATE; //  failed in an earlier commit
            continue;
        }
        if (rec->frame.cmd == TERN_CMD_CREPL_GROUP || rec->frame.cmd == TERN_CMD_CREPL_GSTATE) {
            tern_crepl_group_queue(rec, batch); //  group state: never a link of the chain
            continue;
        }
        if (rec->frame.cmd == TERN_CMD_CREPL_OUTBOX) {
            tern_crepl_outbox_queue(rec, batch); //  cross-DC outbox state: not a link either
            continue;
        }
        if (rec->frame.cmd == TERN_CMD_CREPL_TOPIC) {
            if (st && st->last && st->last_stream == rec->stream) {
                tern_store_batch_only_if(batch, st->last);
            }
            s_queue_topic_op(rec, batch); //  not a link of the chain: it may find nothing
            continue;
        }
        if (rec->frame.cmd == TERN_CMD_CREPL_TRUNCATE) {
            //  "Its log ends at sq": lowers ours, or raises it past records
            //  gone at the leader, so its live stream follows on.
            tern_store_batch_end_at(batch, rec->frame.topic, rec->frame.seq, &rec->result.err,
                                    &rec->result.seq);
        } else if (rec->frame.position > 0) {
            //  Live: must follow our last record, never leave a hole.
            tern_store_batch_append_replica_next(batch, &rec->frame, &rec->result);
        } else {
            tern_store_batch_append_replica(batch, &rec->frame, &rec->result);
        }
        if (st) {
            if (st->last && st->last_stream == rec->stream) {
                tern_store_batch_only_if(batch, st->last);
            }
            st->last = &rec->result.err;
            st->last_stream = rec->stream;
        }
    }
}

void tern_repl_streams_done(tern_repl_streams_t *streams, const tern_repl_batch_t *batch) {
    for (size_t i = 0; streams && i < batch->count; i++) {
        const tern_repl_rec_t *rec = batch->recs[i];
        uint32_t pt = rec->frame.partition;
        if (pt >= streams->count) {
            continue;
        }
        tern_repl_stream_t *st = &streams->pts[pt];
        st->last = NULL;
        if (batch->err == TERN_OK && rec->result.err != TERN_OK && rec->stream != 0) {
            st->failed = rec->stream;
        }
    }
}

const char *tern_repl_ackstate_reason(const tern_frame_t *frame, char *buf, size_t size) {
    //  The history says where: "acked in dc2", "dead in dc3" (the receiver
    //  set origin to the sending DC, where it happened).
    if (frame->reason[0]) {
        snprintf(buf, size, "%s", frame->reason);
    } else {
        snprintf(buf, size, "%s in %s", frame->code == TERN_CMD_TERM ? "dead" : "acked",
                 frame->origin);
    }
    return buf;
}

void tern_repl_batch_queue(tern_repl_batch_t *self, tern_store_batch_t *batch,
                           tern_repl_streams_t *streams) {
    if (self->in_dc) {
        s_queue_in_dc(self, batch, streams);
        return;
    }
    for (size_t i = 0; i < self->count; i++) {
        tern_frame_t *frame = &self->recs[i]->frame;
        if (frame->cmd == TERN_CMD_REPL_ACKSTATE) {
            char why[TERN_REASON_MAX + 1];
            tern_store_batch_ackstate_apply(batch, frame->group, frame->msg_id, frame->code,
                                            tern_repl_ackstate_reason(frame, why, sizeof why),
                                            &self->recs[i]->result);
        } else {
            tern_store_batch_append(batch, frame, false, &self->recs[i]->result);
        }
    }
    for (size_t i = 0; i < self->inbound_count; i++) {
        tern_store_batch_inbound(batch, self->inbound[i].name, self->inbound[i].position);
    }
    for (size_t i = 0; i < self->confirm_count; i++) {
        tern_store_batch_outbox_confirm_pt(batch, self->confirms[i].name,
                                           self->confirms[i].partition, self->confirms[i].position);
    }
}

void tern_repl_admin_destroy(tern_repl_admin_t **self_p) {
    if (!self_p || !*self_p) {
        return;
    }
    free((*self_p)->reply);
    free(*self_p);
    *self_p = NULL;
}

void tern_delivers_destroy(tern_delivers_t **self_p) {
    if (!self_p || !*self_p) {
        return;
    }
    tern_delivers_t *self = *self_p;
    for (size_t i = 0; i < self->count; i++) {
        for (int k = 0; k < 3; k++) {
            zmq_msg_close(&self->items[i].parts[k]);
        }
    }
    free(self->items);
    free(self);
    *self_p = NULL;
}
