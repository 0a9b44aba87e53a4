/*  tern_crepl.c - the crepl actor: replication inside a clustered DC.

    This file runs the actor: its sockets, the inbox, the view, timers and
    the loop. The leader side is tern_crepl_lead.c, the follower side
    tern_crepl_follow.c (state in tern_crepl_priv.h); the wire is the
    CREPL_* commands of docs/protocol.md, every frame carrying (pt, ep) and
    fenced against the view (tern_partmap_fence).

    Sockets. One ROUTER bound at cluster/listen: followers' DEALERs connect to
    it (SYNC and CONFIRM in; TRUNCATE, RECORD, CAUGHT, HEARTBEAT out). One
    DEALER per leader node this node follows a partition of (not
    ZMQ_IMMEDIATE, which can abort libzmq under a half-read frame: see
    tern_crepl_follow.c s_link_open; a link silent too long is reopened).
    Frames: [rid][header][payload?] on the ROUTER, [header]
    [payload?] on a DEALER.

    Pipe commands (zactor pipe, from tern_broker):
        $TERM             -> frees what it holds (conn is already gone),
                             closes every socket and exits (no reply)
    Inbox (PULL at args->inbox; crepl owns what it receives):
        COMMITTED tern_committed_t *   from the storer (its conn_inbox is ours):
                                       ship, hold until the ISR has it, forward
        NOTICE    tern_notice_t *      from the storer, right behind its commit's
                                       COMMITTED: hold (FIFO) until the ISR has
                                       its messages, forward to route
        REPL_DONE tern_repl_batch_t *  from the storer: a follower batch
                                       committed; confirm to the leader, free
        SYNCED    (NULL)               from the storer (durability fsync): its
                                       last commit is on disk; this node's copy
                                       of every position shipped is durable
    Sends:
        COMMITTED -> conn's inbox (results possibly changed to TERN_ETIMEOUT
                     or TERN_ENOTLEADER)
        NOTICE    -> route's inbox, in commit order (tern_crepl_notice.c)
        REPL (in_dc) -> the storer's inbox

    Follower stream, per partition (state x event; "resync" = drop the
    stream, phase IDLE, the next timer turn sends SYNC):

        state     | SYNC timer   | TRUNCATE/RECORD pos 0 | CAUGHT       | RECORD pos p     |
   HEARTBEAT h IDLE      | send, SYNCING| drop                  | drop         | drop             |
   drop SYNCING   | quiet:resend| to the batch          | LIVE, mark   | drop             | drop
        LIVE      | -            | drop                  | drop         | p = recv+1: batch| h >
   recv: resync |              |                       |              | p > recv+1: resync| else
   CONFIRM A view change of the partition's leader or epoch: resync. A failed or conflicting apply
   (TERN_ESTATE: our tail differs from the leader's): resync, whose answer truncates first.
*/
#include "tern_crepl_priv.h"
#include "tern_actor.h"
#include <inttypes.h>
#include <string.h>

// ---------------------------------------------------------------------------
//  Sending

int c_send_encoded(c_repl_t *self, const uint8_t *rid, size_t rid_size, const uint8_t *hdr,
                   size_t len, zmq_msg_t *payload) {
    if (zmq_send(self->router, rid, rid_size, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(self->router, hdr, len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        return -1;
    }
    zmq_msg_t copy; //  zero copy: a reference to the publish's own frame
    zmq_msg_init(&copy);
    zmq_msg_copy(&copy, payload);
    if (zmq_msg_send(&copy, self->router, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&copy);
        return -1;
    }
    return 0;
}

int c_send(c_repl_t *self, void *sock, const uint8_t *rid, size_t rid_size,
           const tern_frame_t *frame) {
    return tern_frame_send(sock, rid, rid_size, frame, self->buf, sizeof self->buf, "crepl");
}

void c_frame_init(tern_frame_t *frame, tern_cmd_t cmd, uint32_t pt, uint64_t epoch, uint64_t pos) {
    tern_frame_init(frame, cmd);
    C_PT(frame) = pt;
    C_EP(frame) = epoch;
    frame->position = pos;
}

void c_count_stale(c_repl_t *self) {
    atomic_fetch_add_explicit(&self->stats->stale_frames, 1, memory_order_relaxed);
    tern_metrics_add(self->args->metrics->cluster_stale_frames, 1);
}

c_peer_t *c_peer(c_repl_t *self, uint32_t node, bool create) {
    for (size_t i = 0; i < self->peer_count; i++) {
        if (self->peers[i].node == node) {
            return &self->peers[i];
        }
    }
    if (!create || self->peer_count == C_PEERS_MAX) {
        return NULL;
    }
    c_peer_t *peer = &self->peers[self->peer_count++];
    memset(peer, 0, sizeof *peer);
    peer->node = node;
    return peer;
}

uint32_t c_partition_of(c_repl_t *self, const char *topic) {
    return tern_partition_of(topic, strlen(topic), self->partitions);
}

// ---------------------------------------------------------------------------
//  The view

//  Applies PT's record REC: start or stop leading it, following it.
static void s_apply_record(c_repl_t *self, uint32_t pt, const tern_partmap_record_t *rec) {
    c_lead_t *lead = &self->leads[pt];
    bool leads = rec->leader == self->self_id;
    if (leads && (!lead->leading || lead->epoch != rec->epoch)) {
        c_lead_stop(self, pt);
        c_lead_start(self, pt, rec);
    } else if (leads) {
        c_lead_update(self, pt, rec);
    } else if (lead->leading) {
        c_lead_stop(self, pt);
    }
    c_follow_t *f = &self->follows[pt];
    bool follows =
        !leads && rec->leader != TERN_NODE_NONE && tern_partmap_in_replicas(rec, self->self_id);
    if (follows && (!f->following || f->leader != rec->leader || f->epoch != rec->epoch)) {
        c_follow_start(self, pt, rec);
    } else if (!follows && f->following) {
        c_follow_stop(self, pt);
    }
}

void c_refresh(c_repl_t *self) {
    uint64_t version = tern_cluster_version(self->cluster);
    if (version == self->version) {
        return;
    }
    self->version = version;
    for (uint32_t pt = 0; pt < self->partitions; pt++) {
        tern_partmap_record_t rec;
        if (tern_cluster_record(self->cluster, pt, &rec)) {
            s_apply_record(self, pt, &rec);
        }
    }
}

// ---------------------------------------------------------------------------
//  Inbox and timers

static void s_handle_inbox(void *actor, void *unused) {
    (void)unused;
    c_repl_t *self = (c_repl_t *)actor;
    c_refresh(self);
    for (int n = 0; n < C_DRAIN_MAX; n++) {
        tern_work_type_t type;
        void *ptr;
        if (tern_work_recv(zsock_resolve(self->inbox_sock), ZMQ_DONTWAIT, &type, &ptr) != 0) {
            break;
        }
        if (type == TERN_WORK_COMMITTED) {
            c_committed(self, (tern_committed_t *)ptr);
        } else if (type == TERN_WORK_REPL_DONE && !((tern_repl_batch_t *)ptr)->in_dc) {
            c_inbound(self, (tern_repl_batch_t *)ptr); //  from another DC: wait for the ISR
        } else if (type == TERN_WORK_REPL_DONE) {
            c_batch_done(self, (tern_repl_batch_t *)ptr);
        } else if (type == TERN_WORK_NOTICE) {
            c_notice(self, (tern_notice_t *)ptr);
        } else if (type == TERN_WORK_SYNCED) {
            c_synced(self);
        } else {
            zsys_error("crepl: unexpected work item type %d", (int)type);
        }
    }
    c_ship_flush(self);    //  the drain's records: one frame per follower and partition
    c_confirm_flush(self); //  the drain's commits as a follower: one CONFIRM per partition
    c_flush_batch(self);
    c_group_flush(self); //  after every record of the drain (tern_crepl_group.c)
    c_evaluate(self);
    c_inbound_evaluate(self);
    c_notices_evaluate(self);
}

static void s_after(void *actor) {
    c_repl_t *self = (c_repl_t *)actor;
    uint64_t now = tern_now_ms();
    c_refresh(self);
    c_lead_timers(self, now);
    c_follow_timers(self, now);
    c_flush_batch(self);
    c_confirm_flush(self); //  a batch the storer could not take resyncs: nothing, normally
    c_evaluate(self);
    c_inbound_evaluate(self);
    c_notices_evaluate(self);
}

static void s_on_dealer(void *actor, void *arg) {
    c_link_t *link = (c_link_t *)arg;
    if (link->dealer) {
        c_handle_dealer((c_repl_t *)actor, link);
    }
}

//  Adds this turn's DEALERs; waits until the next timer (at most 50 ms: the
//  view, held deadlines and SYNC retries are looked at every turn).
static long s_prepare(tern_loop_t *loop, void *actor) {
    c_repl_t *self = (c_repl_t *)actor;
    for (size_t i = 0; i < self->link_count; i++) {
        if (self->links[i].dealer && tern_loop_reader(loop, zsock_resolve(self->links[i].dealer),
                                                      s_on_dealer, &self->links[i]) != 0) {
            break; //  more leaders than poll slots: the rest next turn
        }
    }
    uint64_t deadline = tern_now_ms() + 50;
    if (self->next_isr_ms < deadline) {
        deadline = self->next_isr_ms;
    }
    return tern_loop_wait_until(deadline);
}

// ---------------------------------------------------------------------------
//  The actor

//  Opens the ROUTER and the inproc sockets. Returns 0, or -1 with
//  args->error set.
static int s_start(c_repl_t *self) {
    tern_crepl_args_t *args = self->args;
    self->router_sock = zsock_new(ZMQ_ROUTER);
    self->reader = tern_store_reader_new(args->store);
    if (!self->router_sock || !self->reader) {
        snprintf(args->error, sizeof args->error, "crepl: cannot create sockets");
        return -1;
    }
    tern_node_sock_options(self->router_sock, C_HWM, self->config->max_payload);
    if (zsock_bind(self->router_sock, "%s", self->config->cluster_listen) < 0) {
        snprintf(args->error, sizeof args->error, "crepl: cannot bind cluster/listen %.150s: %.60s",
                 self->config->cluster_listen, zmq_strerror(zmq_errno()));
        return -1;
    }
    self->router = zsock_resolve(self->router_sock);
    if (!tern_work_pull_bind(&self->inbox_sock, args->inbox) ||
        !tern_work_push_connect(&self->storer_sock, args->storer_inbox) ||
        !tern_work_push_connect(&self->conn_sock, args->conn_inbox) ||
        !tern_work_push_connect(&self->route_sock, args->route_inbox)) {
        snprintf(args->error, sizeof args->error, "crepl: cannot reach the storer, conn and route");
        return -1;
    }
    if (args->repl_inbox[0] && !tern_work_push_connect(&self->repl_sock, args->repl_inbox)) {
        snprintf(args->error, sizeof args->error, "crepl: cannot reach repl");
        return -1;
    }
    self->self_id = tern_cluster_self(self->cluster);
    self->partitions = tern_cluster_partitions(self->cluster);
    self->leads = tern_alloc(self->partitions * sizeof *self->leads);
    self->follows = tern_alloc(self->partitions * sizeof *self->follows);
    self->ship_dirty = tern_alloc(self->partitions * sizeof *self->ship_dirty);
    if (self->config->peer_count) {
        self->ob_sent = tern_alloc(self->partitions * sizeof *self->ob_sent);
    }
    self->hb_ms = self->config->lease_ms / 4 ? self->config->lease_ms / 4 : 250;
    self->chunk_records = c_chunk_bound("TERN_CREPL_CHUNK_RECORDS", C_CHUNK_RECORDS);
    self->chunk_outbox = c_chunk_bound("TERN_CREPL_CHUNK_OUTBOX", C_OB_CHUNK_ENTRIES);
    //  The storer's decision (tern_broker.c sets both; tern_storer.c,
    //  s_flush_deferred): this node's own copy counts as durable at SYNCED,
    //  not when its results arrive.
    self->deferred = args->deferred;
    self->version = UINT64_MAX; //  the first refresh reads every record
    c_refresh(self);
    return 0;
}

static void s_stop(c_repl_t *self) {
    //  conn stopped before us (tern_broker): what we hold or still find in
    //  the inbox is freed here, never sent to its closed inbox (an item in
    //  a pipe nobody reads would leak).
    if (self->inbox_sock) {
        tern_work_type_t type;
        void *ptr;
        while (tern_work_recv(zsock_resolve(self->inbox_sock), ZMQ_DONTWAIT, &type, &ptr) == 0) {
            if (type == TERN_WORK_COMMITTED) {
                tern_committed_t *item = ptr;
                tern_committed_destroy(&item);
            } else if (type == TERN_WORK_REPL_DONE) {
                tern_repl_batch_t *batch = ptr;
                tern_repl_batch_destroy(&batch);
            } else if (type == TERN_WORK_NOTICE) {
                tern_notice_t *notice = ptr;
                tern_notice_destroy(&notice);
            }
        }
    }
    c_parked_answer(self, true);
    if (self->leads) {
        c_held_drop(self);
        c_notices_drop(self);
        for (uint32_t pt = 0; pt < self->partitions; pt++) {
            c_lead_stop(self, pt);
        }
    }
    c_links_close(self);
    tern_repl_batch_destroy(&self->batch);
    c_rec_pool_free(self);
    tern_store_reader_destroy(&self->reader);
    free(self->leads);
    free(self->follows);
    free(self->ship_dirty);
    free(self->ob_sent);
    zsock_destroy(&self->router_sock);
    zsock_destroy(&self->inbox_sock);
    zsock_destroy(&self->storer_sock);
    zsock_destroy(&self->conn_sock);
    zsock_destroy(&self->route_sock);
    zsock_destroy(&self->repl_sock);
}

void tern_crepl_actor(zsock_t *pipe, void *arg) {
    tern_thread_name("ternd-crepl");
    c_repl_t *self = tern_alloc(sizeof *self);
    self->args = (tern_crepl_args_t *)arg;
    self->config = self->args->config;
    self->cluster = self->args->cluster;
    self->stats = self->args->stats ? self->args->stats : &self->stats_s;
    self->args->bind_rc = -1;
    if (!self->cluster || s_start(self) != 0) {
        if (!self->args->error[0]) {
            snprintf(self->args->error, sizeof self->args->error, "crepl: no cluster");
        }
        zsys_error("%s", self->args->error);
        s_stop(self);
        free(self);
        tern_actor_fail(pipe);
        return;
    }
    self->args->bind_rc = 0;
    zsys_info("crepl: node %u replicating in the DC on %s (%u partitions)", self->self_id,
              self->config->cluster_listen, self->partitions);
    zsock_signal(pipe, 0);

    tern_loop_t loop;
    tern_loop_init(&loop, pipe, self, s_prepare, s_after);
    tern_loop_reader(&loop, zsock_resolve(self->inbox_sock), s_handle_inbox, NULL);
    tern_loop_reader(&loop, self->router, c_handle_router, NULL);
    loop.stop_at_once = true;
    tern_loop_run(&loop);
    s_stop(self);
    free(self);
}
