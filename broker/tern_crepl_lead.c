/*  tern_crepl_lead.c - crepl: the leader side.

    Part of the crepl actor (tern_crepl.c; state in tern_crepl_priv.h). For
    each partition this node leads: every record the storer commits is
    shipped to the synced followers as CREPL_RECORD at the next position
    (the payload is a reference to the publish's own frame, never copied),
    and the COMMITTED item is held until tern_partmap_ack_check says ACK for
    its highest position in every partition it touches; then it goes to
    conn. REFUSE (the ISR shrank below min_insync while it waited) or
    cluster/ack_timeout turn those publishes into TERN_ETIMEOUT, the loss
    of the leadership, its epoch or the lease into TERN_ENOTLEADER: never
    an acknowledgement from one copy or from a deposed leader. Not
    TERN_EREPLICAS: they are in this log already and may reach the
    followers later, so the outcome is unknown (a resend with the same
    producer seq is deduplicated); TERN_EREPLICAS means "not stored" and
    only conn answers it, before the storer (tern_conn_cluster.c). The
    item's committed topic admin ops (create, edit, delete, purge) are
    shipped as CREPL_TOPIC at their own positions between its records, in
    the storer's order, and their replies wait for the same rule; one that
    fails it gets TERN_ETIMEOUT (outcome unknown) even where a publish gets
    TERN_ENOTLEADER, since a client asks again after TERN_ENOTLEADER. Followers' CREPL_SYNC is
   answered here (truncations, the catch-up read from the store, CAUGHT), and so are their CONFIRMs;
    heartbeats every lease/4 and the ISR every 100 ms.
*/
#include "tern_admin.h"
#include "tern_crepl_priv.h"
#include <inttypes.h>
#include <string.h>

// ---------------------------------------------------------------------------
//  Leadership

static bool s_same_isr(const tern_partmap_record_t *a, const tern_partmap_record_t *b) {
    if (a->nisr != b->nisr) {
        return false;
    }
    for (uint32_t i = 0; i < a->nisr; i++) {
        if (!tern_partmap_in_isr(b, a->isr[i])) {
            return false;
        }
    }
    return true;
}

//  Rebuilds the replica entries from REC's replicas, keeping what we knew of
//  the ones that stay; a new one starts at NOW (lag_ms to show up).
static void s_reps_rebuild(c_repl_t *self, c_lead_t *lead, const tern_partmap_record_t *rec,
                           uint64_t now) {
    tern_partmap_replica_t reps[C_RMAX];
    bool synced[C_RMAX];
    size_t n = 0;
    //  Our own copy: durable up to the end, but with a deferred flush only
    //  up to what the last SYNCED covered: nothing yet for a new leadership
    //  (the log we found may hold a commit whose flush is still to come;
    //  the next SYNCED raises it to the end; an idle storer's TTL sweep
    //  commits, hence SYNCs, every storage/sweep_interval).
    uint64_t durable = !self->deferred ? lead->end : lead->nreps ? lead->reps[0].durable : 0;
    reps[n] = (tern_partmap_replica_t){self->self_id, durable, now};
    synced[n++] = true;
    for (uint32_t i = 0; i < rec->nreplicas && n < C_RMAX; i++) {
        if (rec->replicas[i] == self->self_id) {
            continue;
        }
        reps[n] = (tern_partmap_replica_t){rec->replicas[i], 0, now};
        synced[n] = false;
        for (size_t k = 1; k < lead->nreps; k++) {
            if (lead->reps[k].node == rec->replicas[i]) {
                reps[n] = lead->reps[k];
                synced[n] = lead->synced[k];
            }
        }
        n++;
    }
    memcpy(lead->reps, reps, sizeof reps);
    memcpy(lead->synced, synced, sizeof synced);
    lead->nreps = n;
}

void c_lead_start(c_repl_t *self, uint32_t pt, const tern_partmap_record_t *rec) {
    c_lead_t *lead = &self->leads[pt];
    uint64_t now = tern_now_ms();
    memset(lead, 0, sizeof *lead);
    lead->leading = true;
    lead->epoch = rec->epoch;
    lead->end = 1; //  the log as we found it (tern_crepl_priv.h, "Positions")
    lead->rec = *rec;
    lead->ship_ms = tern_alloc(C_RING * sizeof(uint64_t));
    lead->ship_ms[1] = now;
    s_reps_rebuild(self, lead, rec, now);
    tern_cluster_set_position(self->cluster, pt, 0);
    c_notice_inherit(self, pt);
    zsys_info("crepl: leading partition %u in epoch %" PRIu64 " (%u in sync)", pt, rec->epoch,
              rec->nisr);
}

void c_lead_stop(c_repl_t *self, uint32_t pt) {
    c_lead_t *lead = &self->leads[pt];
    if (!lead->leading) {
        return;
    }
    zsys_info("crepl: no longer leading partition %u (epoch %" PRIu64 ")", pt, lead->epoch);
    lead->leading = false;
    c_ship_drop(lead);
    free(lead->ship_ms);
    lead->ship_ms = NULL;
    tern_cluster_set_position(self->cluster, pt, 0);
    tern_metrics_follower_lag_clear(self->args->metrics, pt);
}

void c_lead_update(c_repl_t *self, uint32_t pt, const tern_partmap_record_t *rec) {
    c_lead_t *lead = &self->leads[pt];
    bool replicas_changed =
        rec->nreplicas != lead->rec.nreplicas ||
        memcmp(rec->replicas, lead->rec.replicas, rec->nreplicas * sizeof rec->replicas[0]) != 0;
    lead->rec = *rec;
    if (replicas_changed) {
        s_reps_rebuild(self, lead, rec, tern_now_ms());
    }
    if (lead->pending_set && s_same_isr(&lead->pending, rec)) {
        lead->pending_set = false; //  our ISR write landed
    }
}

int c_rep_index(c_lead_t *lead, uint32_t node) {
    for (size_t i = 1; i < lead->nreps; i++) {
        if (lead->reps[i].node == node) {
            return (int)i;
        }
    }
    return -1;
}

// ---------------------------------------------------------------------------
//  Shipping and holding publishes

void c_ship_record(c_repl_t *self, uint32_t pt, c_lead_t *lead, const tern_frame_t *src,
                   const tern_append_result_t *res, zmq_msg_t *body, uint64_t pos) {
    tern_frame_t frame = *src;
    frame.cmd = TERN_CMD_CREPL_RECORD;
    C_PT(&frame) = pt;
    C_EP(&frame) = lead->epoch;
    frame.position = pos;
    frame.seq = res->seq;
    frame.msg_id = res->msg_id;
    frame.outbox_pos = res->outbox_pos; //  followers write the same outbox entry
    size_t len = 0;                     //  one encoding for every follower
    if (tern_frame_encode(&frame, self->buf, sizeof self->buf, &len) != TERN_OK) {
        zsys_error("crepl: partition %u: cannot encode %s seq %" PRIu64, pt, frame.topic,
                   frame.seq);
        len = 0;
    }
    atomic_fetch_add_explicit(&self->stats->shipped, 1, memory_order_relaxed);
    if (len && c_ship_add(self, pt, lead, pos, len, zmq_msg_data(body), zmq_msg_size(body))) {
        return;
    }
    for (size_t i = 1; i < lead->nreps; i++) {
        if (!lead->synced[i]) {
            continue;
        }
        c_peer_t *peer = c_peer(self, lead->reps[i].node, false);
        if (!len || !peer || !peer->rid_size ||
            c_send_encoded(self, peer->rid, peer->rid_size, self->buf, len, body) != 0) {
            zsys_warning("crepl: partition %u: follower %u dropped from the live stream (%s)", pt,
                         lead->reps[i].node, peer ? zmq_strerror(zmq_errno()) : "unknown");
            lead->synced[i] = false;
        }
    }
}

c_need_t *c_held_need(c_repl_t *self, c_held_t *held, uint32_t pt) {
    for (size_t i = 0; i < held->count; i++) {
        if (held->needs[i].pt == pt) {
            return &held->needs[i];
        }
    }
    if (held->count == held->cap) {
        held->cap = held->cap ? held->cap * 2 : 4;
        held->needs = tern_realloc(held->needs, held->cap * sizeof *held->needs);
    }
    c_need_t *need = &held->needs[held->count++];
    c_lead_t *lead = &self->leads[pt];
    *need =
        (c_need_t){pt, lead->epoch, 0, !lead->leading, lead->leading ? TERN_OK : TERN_ENOTLEADER};
    return need;
}

void c_ship_next(c_repl_t *self, c_need_t *need, const tern_frame_t *frame,
                 const tern_append_result_t *res, zmq_msg_t *body, uint64_t now) {
    c_lead_t *lead = &self->leads[need->pt];
    if (res->duplicate) { //  its original is earlier in the log
        need->pos = need->pos > lead->end ? need->pos : lead->end;
        return;
    }
    uint64_t pos = c_next_pos(self, lead, now);
    c_ship_record(self, need->pt, lead, frame, res, body, pos);
    need->pos = pos;
}

void c_topic_frame(tern_frame_t *frame, uint32_t pt, uint64_t epoch, uint64_t pos,
                   const char *topic, uint32_t op, const tern_topic_limits_t *limits, char *text,
                   size_t cap) {
    tern_frame_init(frame, TERN_CMD_CREPL_TOPIC);
    C_PT(frame) = pt;
    C_EP(frame) = epoch;
    frame->position = pos;
    snprintf(frame->topic, sizeof frame->topic, "%s", topic);
    frame->fields |= TERN_F_TOPIC;
    frame->code = op;
    tern_topic_limits_t none = {0, 0, 0};
    limits = limits ? limits : &none;
    int n = snprintf(text, cap, "%" PRIu64 " %" PRIu64 " %" PRIu64, limits->max_age_ms,
                     limits->max_msgs, limits->max_bytes);
    frame->payload = (const uint8_t *)text;
    frame->payload_size = n > 0 ? (size_t)n : 0;
    frame->fields |= TERN_F_PAYLOAD;
}

//  Ships ADMIN (a committed topic op of PT) as CREPL_TOPIC at the next
//  position to the synced followers, like a record (s_ship). Returns it.
static uint64_t s_ship_topic(c_repl_t *self, uint32_t pt, c_lead_t *lead, const tern_admin_t *admin,
                             uint64_t now) {
    uint32_t op = admin->op == TERN_ADMIN_TOPIC_DELETE  ? TERN_CREPL_TOPIC_DELETE
                  : admin->op == TERN_ADMIN_TOPIC_PURGE ? TERN_CREPL_TOPIC_PURGE
                                                        : TERN_CREPL_TOPIC_PUT;
    tern_topic_limits_t limits = {admin->max_age_ms, admin->max_msgs, admin->max_bytes};
    uint64_t pos = c_next_pos(self, lead, now);
    tern_frame_t frame;
    char text[96];
    c_topic_frame(&frame, pt, lead->epoch, pos, admin->topic, op, &limits, text, sizeof text);
    size_t len = 0;
    if (tern_frame_encode(&frame, self->buf, sizeof self->buf, &len) == TERN_OK &&
        c_ship_add(self, pt, lead, pos, len, frame.payload, frame.payload_size)) {
        return pos;
    }
    for (size_t i = 1; i < lead->nreps; i++) {
        c_peer_t *peer = lead->synced[i] ? c_peer(self, lead->reps[i].node, false) : NULL;
        if (lead->synced[i] &&
            (!peer || !peer->rid_size ||
             c_send(self, self->router, peer->rid, peer->rid_size, &frame) != 0)) {
            lead->synced[i] = false; //  it sees the gap at the next heartbeat
        }
    }
    return pos;
}

static bool s_topic_op(const tern_admin_t *admin) {
    return admin->err == TERN_OK &&
           (admin->op == TERN_ADMIN_TOPIC_CREATE || admin->op == TERN_ADMIN_TOPIC_EDIT ||
            admin->op == TERN_ADMIN_TOPIC_DELETE || admin->op == TERN_ADMIN_TOPIC_PURGE);
}

//  Ships ITEM's committed topic ops that came before publish number K
//  (every remaining one when K is SIZE_MAX), in the storer's order: its
//  list is newest first.
static void s_ship_admins(c_repl_t *self, c_held_t *held, size_t k, uint64_t now) {
    for (;;) {
        tern_admin_t *next = NULL;
        for (tern_admin_t *a = held->item->admins; a; a = a->next) {
            if (s_topic_op(a) && a->pubs_before != SIZE_MAX && a->pubs_before <= k) {
                next = a; //  the last one found is the oldest
            }
        }
        if (!next) {
            return;
        }
        next->pubs_before = SIZE_MAX; //  shipped
        uint32_t pt = c_partition_of(self, next->topic);
        c_need_t *need = c_held_need(self, held, pt);
        if (!need->decided) {
            need->pos = s_ship_topic(self, pt, &self->leads[pt], next, now);
        }
    }
}

void c_last_needs_add(c_repl_t *self, const c_held_t *held) {
    if (self->last_count == 0) { //  the usual case: one COMMITTED per NOTICE
        if (held->count > self->last_cap) {
            self->last_cap = held->count;
            self->last_needs = tern_realloc(self->last_needs, self->last_cap * sizeof(c_need_t));
        }
        if (held->count) {
            memcpy(self->last_needs, held->needs, held->count * sizeof(c_need_t));
        }
        self->last_count = held->count;
        return;
    }
    for (size_t i = 0; i < held->count; i++) {
        size_t k = 0;
        while (k < self->last_count && self->last_needs[k].pt != held->needs[i].pt) {
            k++;
        }
        if (k == self->last_count) {
            if (k == self->last_cap) {
                self->last_cap = self->last_cap * 2 + 4;
                self->last_needs =
                    tern_realloc(self->last_needs, self->last_cap * sizeof(c_need_t));
            }
            self->last_needs[self->last_count++] = held->needs[i];
        } else if (held->needs[i].pos > self->last_needs[k].pos) {
            self->last_needs[k] = held->needs[i];
        }
    }
}

void c_committed(c_repl_t *self, tern_committed_t *item) {
    //  Shipped ahead of the storer's commit: a catch-up snapshot read before
    //  the next SYNCED would miss records already counted in the end.
    self->unsynced = self->deferred;
    c_held_t *held = tern_alloc(sizeof *held);
    held->item = item;
    uint64_t now = tern_now_ms();
    held->deadline_ms = now + self->config->ack_timeout_ms;
    size_t k = 0;
    for (tern_pubs_t *pubs = item->pubs; pubs; pubs = pubs->next) {
        for (size_t i = 0; i < pubs->count; i++, k++) {
            s_ship_admins(self, held, k, now);
            tern_pub_t *pub = pubs->items[i];
            if (pub->result.err != TERN_OK) {
                continue;
            }
            uint32_t pt = c_partition_of(self, pub->frame.topic);
            c_need_t *need = c_held_need(self, held, pt);
            if (!need->decided) {
                c_ship_next(self, need, &pub->frame, &pub->result, &pub->body, now);
            }
        }
    }
    s_ship_admins(self, held, SIZE_MAX - 1, now);
    //  The commit's NOTICE comes next on the inbox and waits for the same.
    c_last_needs_add(self, held);
    c_held_push(&self->held, &self->held_tail, held);
}

//  Gives HELD's item to conn: the publishes of every failed partition carry
//  its error. Frees HELD.
static void s_forward(c_repl_t *self, c_held_t *held) {
    tern_committed_t *item = held->item;
    for (tern_pubs_t *pubs = item->pubs; pubs && held->count; pubs = pubs->next) {
        for (size_t i = 0; i < pubs->count; i++) {
            tern_pub_t *pub = pubs->items[i];
            if (pub->result.err != TERN_OK) {
                continue;
            }
            c_need_t *need = c_held_need(self, held, c_partition_of(self, pub->frame.topic));
            if (need->err != TERN_OK) {
                pub->result.err = need->err;
                atomic_fetch_add_explicit(need->err == TERN_ETIMEOUT ? &self->stats->unconfirmed
                                                                     : &self->stats->not_leader,
                                          1, memory_order_relaxed);
            }
        }
    }
    for (tern_admin_t *a = item->admins; a && held->count; a = a->next) {
        if (s_topic_op(a)) { //  the ISR has it too, or the client hears why not
            c_need_t *need = c_held_need(self, held, c_partition_of(self, a->topic));
            //  It ran here already: after a lost leadership, epoch or lease
            //  the outcome is unknown, not "refused" (a client retries
            //  TERN_ENOTLEADER: it would purge or delete twice).
            a->err = need->err == TERN_ENOTLEADER ? TERN_ETIMEOUT : need->err;
        }
    }
    if (tern_work_send(zsock_resolve(self->conn_sock), TERN_WORK_COMMITTED, item) != 0) {
        tern_committed_destroy(&item);
    }
    free(held->needs);
    free(held);
}

//  Why NEED (of LEAD) is not acknowledged yet, into WHY (LEN bytes): only
//  for the log, so not formatted on the hot path (s_decide).
static void s_why(c_repl_t *self, const c_lead_t *lead, const c_need_t *need, bool lease_ok,
                  char *why, size_t len) {
    snprintf(why, len, "the lease may have lapsed");
    if (lease_ok) {
        tern_partmap_ack_check(&lead->rec, lead->pending_set ? &lead->pending : NULL, lead->reps,
                               lead->nreps, need->pos, self->config->min_insync, why, len);
    }
}

//  Decides NEED if it can be: ACK, REFUSE, lost leadership, deadline.
static void s_decide(c_repl_t *self, c_need_t *need, bool lease_ok, uint64_t now,
                     uint64_t deadline) {
    c_lead_t *lead = &self->leads[need->pt];
    if (!lead->leading || lead->epoch != need->epoch) {
        need->decided = true;
        need->err = TERN_ENOTLEADER;
        return;
    }
    char why[160];
    //  A lower position of this partition waiting in this round: so does
    //  this one (the rule is monotonic in the position).
    if (lease_ok && (lead->wait_gen != self->eval_gen || need->pos < lead->wait_pos)) {
        tern_partmap_ack_t ack = tern_partmap_ack_check(
            &lead->rec, lead->pending_set ? &lead->pending : NULL, lead->reps, lead->nreps,
            need->pos, self->config->min_insync, NULL, 0);
        if (ack == TERN_PARTMAP_ACK) {
            need->decided = true;
            need->err = TERN_OK;
            if (need->pos > lead->acked) {
                lead->acked = need->pos;
            }
            return;
        }
        if (ack == TERN_PARTMAP_WAIT) {
            lead->wait_gen = self->eval_gen;
            lead->wait_pos = need->pos;
        }
        if (ack == TERN_PARTMAP_REFUSE) {
            if (self->config->verbose) {
                s_why(self, lead, need, lease_ok, why, sizeof why);
                zsys_info("crepl: partition %u not confirmed (outcome unknown): %s", need->pt, why);
            }
            need->decided = true;
            need->err = TERN_ETIMEOUT; //  appended: outcome unknown, not "not stored"
            return;
        }
    }
    if (now >= deadline) {
        s_why(self, lead, need, lease_ok, why, sizeof why);
        zsys_warning("crepl: partition %u: position %" PRIu64 " not acknowledged within "
                     "cluster/ack_timeout: %s",
                     need->pt, need->pos, why);
        need->decided = true;
        need->err = lease_ok ? TERN_ETIMEOUT : TERN_ENOTLEADER;
    }
}

void c_decide(c_repl_t *self, c_need_t *need, bool lease_ok, uint64_t now, uint64_t deadline) {
    s_decide(self, need, lease_ok, now, deadline);
}

bool c_held_decide(c_repl_t *self, c_held_t *held, bool lease_ok, uint64_t now) {
    bool all = true;
    for (size_t i = 0; i < held->count; i++) {
        if (!held->needs[i].decided) {
            s_decide(self, &held->needs[i], lease_ok, now, held->deadline_ms);
        }
        all = all && held->needs[i].decided;
    }
    return all;
}

void c_evaluate(c_repl_t *self) {
    if (!self->held) {
        return;
    }
    uint64_t now = tern_now_ms();
    bool lease_ok = tern_cluster_lease_ok(self->cluster);
    self->eval_gen++;
    c_held_t **link = &self->held;
    c_held_t *prev = NULL;
    while (*link) {
        c_held_t *held = *link;
        if (!c_held_decide(self, held, lease_ok, now)) {
            prev = held;
            link = &held->next;
            continue;
        }
        *link = held->next;
        if (self->held_tail == held) {
            self->held_tail = prev;
        }
        s_forward(self, held);
    }
}

void c_held_push(c_held_t **head, c_held_t **tail, c_held_t *held) {
    if (*tail) {
        (*tail)->next = held;
    } else {
        *head = held;
    }
    *tail = held;
}

static void s_held_free(c_held_t **head, c_held_t **tail) {
    while (*head) {
        c_held_t *held = *head;
        *head = held->next;
        tern_committed_destroy(&held->item);
        tern_repl_batch_destroy(&held->batch);
        free(held->needs);
        free(held);
    }
    *tail = NULL;
}

void c_held_drop(c_repl_t *self) {
    s_held_free(&self->held, &self->held_tail);
    s_held_free(&self->inbound, &self->inbound_tail); //  tern_crepl_inbound.c's
}

void c_synced(c_repl_t *self) {
    //  Its COMMITTED came before it and the next commit's comes after it, so
    //  every position shipped so far was in a commit now on disk.
    self->synced_gen++;
    self->unsynced = false;
    //  First the group ops of the commits now on disk: any position they
    //  take is durable here too.
    c_notices_synced(self);
    for (uint32_t pt = 0; pt < self->partitions; pt++) {
        if (self->leads[pt].leading) {
            self->leads[pt].reps[0].durable = self->leads[pt].end;
        }
    }
    c_parked_answer(self, false);
}

// ---------------------------------------------------------------------------
//  Timers: heartbeats and the ISR

static void s_heartbeats(c_repl_t *self, uint32_t pt, c_lead_t *lead) {
    c_outbox_confirms(self, pt, lead); //  cross-DC: what the peers confirmed, if it moved
    tern_frame_t frame;
    c_frame_init(&frame, TERN_CMD_CREPL_HEARTBEAT, pt, lead->epoch, lead->end);
    for (size_t i = 1; i < lead->nreps; i++) {
        //  Also to a follower out of the live stream: one that still thinks
        //  it is live sees the gap at once and syncs again.
        c_peer_t *peer = c_peer(self, lead->reps[i].node, false);
        //  A position past our end: a group frame it missed (only one that
        //  opens a group takes a position, tern_crepl_group.c) may leave no
        //  gap of its own.
        frame.position = lead->synced[i] ? lead->end : lead->end + 1;
        if (peer && peer->rid_size &&
            c_send(self, self->router, peer->rid, peer->rid_size, &frame) != 0) {
            lead->synced[i] = false;
        }
    }
}

static void s_isr(c_repl_t *self, uint32_t pt, c_lead_t *lead, uint64_t now) {
    //  A follower whose node the view shows down is left out (no entry: not
    //  in sync), so it leaves the ISR at once and cannot rejoin on what it
    //  confirmed before it went: a SIGTERM'd leader syncs as a follower in
    //  the few ms before it exits, and re-admitting it made publishes wait
    //  for a dead member until isr_lag dropped it (tools/chaos/handover.sh).
    tern_partmap_replica_t reps[C_RMAX];
    size_t nreps = 0;
    for (size_t i = 0; i < lead->nreps; i++) {
        tern_cluster_node_t node;
        if (i > 0 && tern_cluster_node(self->cluster, lead->reps[i].node, &node) && !node.up) {
            //  Forget what it confirmed: back up (perhaps on an emptied data
            //  dir), it rejoins on what it confirms after its next CAUGHT.
            lead->reps[i].durable = 0;
            lead->synced[i] = false;
            continue;
        }
        if (i > 0 && !lead->synced[i] && !tern_partmap_in_isr(&lead->rec, lead->reps[i].node)) {
            //  Out of the ISR and not (yet) answered CAUGHT: it may not join on
            //  an older confirmation (its node may have gone down and come back
            //  between two of these rounds, unseen), nor between the rounds
            //  of a catch-up (tern_crepl_sync.c).
            continue;
        }
        reps[nreps++] = lead->reps[i];
    }
    tern_partmap_record_t next;
    uint64_t hw = lead->acked > 1 ? lead->acked : 1; //  rejoin needs at least the sync
    if (!tern_partmap_isr_next(&lead->rec, reps, nreps, hw, now, self->config->isr_lag_ms, &next)) {
        lead->pending_set = false;
        return;
    }
    if (lead->pending_set && s_same_isr(&lead->pending, &next) && now - lead->pending_ms < 1000) {
        return; //  asked already; the view shows the outcome
    }
    zsys_info("crepl: partition %u: ISR %u -> %u members", pt, lead->rec.nisr, next.nisr);
    tern_cluster_isr_request(self->cluster, pt, lead->epoch, &next);
    lead->pending = next;
    lead->pending_set = true;
    lead->pending_ms = now;
}

void c_lead_timers(c_repl_t *self, uint64_t now) {
    bool beat = now >= self->next_hb_ms;
    bool isr = now >= self->next_isr_ms && tern_cluster_lease_ok(self->cluster);
    if (beat) {
        self->next_hb_ms = now + self->hb_ms;
    }
    if (now >= self->next_isr_ms) {
        self->next_isr_ms = now + C_ISR_MS;
    }
    for (uint32_t pt = 0; pt < self->partitions; pt++) {
        c_lead_t *lead = &self->leads[pt];
        if (!lead->leading) {
            continue;
        }
        lead->reps[0].caught_up_ms = now;
        if (!self->deferred) {
            lead->reps[0].durable = lead->end;
        }
        if (beat) {
            s_heartbeats(self, pt, lead);
        }
        if (isr) {
            s_isr(self, pt, lead, now);
            tern_cluster_set_position(self->cluster, pt, lead->end - 1);
            for (size_t i = 1; i < lead->nreps; i++) {
                uint64_t at = lead->reps[i].caught_up_ms;
                tern_metrics_follower_lag(self->args->metrics, pt, lead->reps[i].node,
                                          now > at ? now - at : 0);
            }
        }
    }
}

// ---------------------------------------------------------------------------
//  The ROUTER: followers' SYNC and CONFIRM

c_lead_t *c_fence_lead(c_repl_t *self, const tern_frame_t *frame) {
    uint32_t pt = C_PT(frame);
    if (pt >= self->partitions) {
        return NULL;
    }
    c_lead_t *lead = &self->leads[pt];
    uint64_t epoch = lead->epoch;
    if (!lead->leading) {
        tern_partmap_record_t rec;
        epoch = tern_cluster_record(self->cluster, pt, &rec) ? rec.epoch : 0;
    }
    if (tern_partmap_fence(epoch, C_EP(frame)) == TERN_PARTMAP_EPOCH_STALE) {
        c_count_stale(self);
        return NULL;
    }
    return lead->leading && epoch == C_EP(frame) ? lead : NULL;
}

static void s_confirm(c_repl_t *self, const tern_frame_t *frame) {
    c_lead_t *lead = c_fence_lead(self, frame);
    int idx = lead ? c_rep_index(lead, frame->node_id) : -1;
    if (idx < 0 || frame->position > lead->end) {
        return;
    }
    uint64_t pos = frame->position, now = tern_now_ms();
    uint64_t leader_end = lead->end, as_of = now;
    if (pos > 0 && pos < lead->end && lead->end - pos < C_RING) {
        //  It holds everything up to POS: it was caught up when POS was the end.
        leader_end = pos;
        as_of = lead->ship_ms[pos % C_RING];
    }
    tern_partmap_replica_confirm(&lead->reps[idx], pos, leader_end, as_of);
}

void c_handle_router(void *actor, void *unused) {
    (void)unused;
    c_repl_t *self = (c_repl_t *)actor;
    c_refresh(self);
    for (int n = 0; n < C_DRAIN_MAX; n++) {
        uint8_t rid[TERN_RID_MAX];
        int rid_size = zmq_recv(self->router, rid, sizeof rid, ZMQ_DONTWAIT);
        if (rid_size < 0) {
            break;
        }
        zmq_msg_t hdr, body;
        zmq_msg_init(&hdr);
        zmq_msg_init(&body);
        bool has_body = false, ok = zmq_msg_recv(&hdr, self->router, 0) >= 0;
        if (ok && zmq_msg_more(&hdr)) {
            has_body = zmq_msg_recv(&body, self->router, 0) >= 0;
            while (zmq_msg_more(&body)) { //  extra frames: drop
                zmq_msg_close(&body);
                zmq_msg_init(&body);
                zmq_msg_recv(&body, self->router, 0);
                has_body = false;
            }
        }
        tern_frame_t frame;
        tern_err_t rc = ok ? tern_frame_decode(&frame, zmq_msg_data(&hdr), zmq_msg_size(&hdr),
                                               has_body ? zmq_msg_data(&body) : NULL,
                                               has_body ? zmq_msg_size(&body) : 0, NULL)
                           : TERN_EFRAMES;
        if (rc == TERN_OK &&
            (frame.cmd == TERN_CMD_CREPL_SYNC || frame.cmd == TERN_CMD_CREPL_CONFIRM)) {
            c_peer_t *peer = c_peer(self, frame.node_id, true);
            if (peer) {
                memcpy(peer->rid, rid, (size_t)rid_size);
                peer->rid_size = (size_t)rid_size;
            }
            if (frame.cmd == TERN_CMD_CREPL_SYNC) {
                c_answer_sync(self, rid, (size_t)rid_size, &frame);
            } else {
                s_confirm(self, &frame);
            }
        } else if (rc != TERN_OK) {
            zsys_warning("crepl: bad frame on cluster/listen: %s", tern_strerror(rc));
        }
        zmq_msg_close(&hdr);
        zmq_msg_close(&body);
    }
    c_evaluate(self);
    c_inbound_evaluate(self);
    c_notices_evaluate(self);
}
