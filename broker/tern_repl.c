/*  tern_repl.c - the repl actor: ships this node's outbox to every peer DC and
    applies the peers' records through the storer.

    This file runs the actor: its sockets, the inbox, the storer batches,
    sending, timers and the loop. The outbound direction is in
    tern_repl_link.c, the inbound one in tern_repl_apply.c, `ternctl peers`
    and the metrics figures in tern_repl_admin.c (tern_repl_priv.h).

    Links. For every configured peer (name = the peer's DC) there are two
    directions, each on its own connection:
    - outbound: our DEALER to the peer's ROUTER. We send REPL_HELLO, the peer
      answers REPL_WELCOME with `pos` = the last position of OUR outbox it
      durably applied; we stream the outbox from pos + 1 as REPL_RECORDs (only
      locally originated records are in the outbox: loop prevention), send
      REPL_HEARTBEAT every repl/heartbeat (1 s), and the peer answers with
      REPL_CONFIRM (after each commit and to each heartbeat). Its state
      machine (connect, backoff 1 s/2 s/5 s, dead after three heartbeats of
      silence, pause) is cluster/tern_peer.c.
    - inbound: the peer's DEALER to our ROUTER. We check its REPL_HELLO
      (version, known DC, node id unique), answer REPL_WELCOME with our
      inbound cursor for it, then hand every drain's records to the storer
      as one tern_repl_batch_t carrying the new inbound cursor: records and
      cursor commit in one LMDB transaction, and apply is idempotent by
      msg_id, so a crash never applies twice or skips. Records at or below
      the cursor are dropped before they reach the storer.

    Pipe commands (zactor pipe, from tern_broker):
        $TERM             -> closes every socket and exits (no reply)
    Inbox (PULL at args->inbox; repl owns what it receives):
        REPL_DONE tern_repl_batch_t *  from the storer after the commit:
                                       confirm to the origin, then free
    Sends:
        REPL tern_repl_batch_t *       -> storer inbox
    ROUTER (args->config->repl_listen), frames [rid][header][payload?]:
        REPL_HELLO, REPL_RECORD, REPL_HEARTBEAT from peers (REPL_WELCOME,
        REPL_CONFIRM, ERROR back); also HELLO and ADMIN from ternctl
        (WELCOME, REPLY): `peers`, `peers.pause` / `peers.resume` (m: name).
        The same operations reach the client endpoint: conn sends them as
        REPL_ADMIN items to the inbox, bound also at
        tern_repl_admin_endpoint(config); repl answers and pushes the item
        back to its reply_to (conn's inbox).
    DEALER per peer, frames [header][payload?]: the outbound direction above.
*/
#include "tern_repl_priv.h"
#include "tern_actor.h"
#include "tern_auth.h"
#include <inttypes.h>
#include <string.h>

bool tern_repl_enabled(const tern_config_t *config) {
    return config->repl_listen[0] && !streq(config->repl_listen, "off");
}

// ---------------------------------------------------------------------------
//  Batches (tern_repl_batch_t, tern_work.h)

tern_repl_batch_t *p_batch(p_repl_t *self) {
    if (!self->batch) {
        self->batch = tern_alloc(sizeof(tern_repl_batch_t));
    }
    return self->batch;
}

void p_batch_pos(tern_repl_pos_t *list, size_t *count, const char *name, uint64_t pos) {
    for (size_t i = 0; i < *count; i++) {
        if (streq(list[i].name, name)) {
            if (pos > list[i].position) {
                list[i].position = pos;
            }
            return;
        }
    }
    if (*count < TERN_PEERS_MAX) {
        snprintf(list[*count].name, sizeof list[*count].name, "%s", name);
        list[*count].position = pos;
        (*count)++;
    }
}

void p_flush_batch(p_repl_t *self) {
    if (!self->batch) {
        return;
    }
    if (tern_work_send(zsock_resolve(self->storer_sock), TERN_WORK_REPL, self->batch) != 0) {
        zsys_error("repl: cannot reach the storer; %zu records dropped", self->batch->count);
        //  The cursors did not move: the peers resend after a reconnect.
        for (size_t i = 0; i < self->link_count; i++) {
            self->links[i].queued = self->links[i].applied;
        }
        for (size_t i = 0; i < S_SESSIONS_MAX; i++) {
            self->sessions[i].queued = self->sessions[i].applied;
        }
        tern_repl_batch_destroy(&self->batch);
    }
    self->batch = NULL;
}

// ---------------------------------------------------------------------------
//  Sending

p_link_t *p_link_by_name(p_repl_t *self, const char *name) {
    for (size_t i = 0; i < self->link_count; i++) {
        if (streq(self->links[i].cfg->name, name)) {
            return &self->links[i];
        }
    }
    return NULL;
}

p_session_t *p_session_by_rid(p_repl_t *self, const uint8_t *rid, size_t size) {
    for (size_t i = 0; i < S_SESSIONS_MAX; i++) {
        p_session_t *session = &self->sessions[i];
        if (session->link && session->rid_size == size && memcmp(session->rid, rid, size) == 0) {
            return session;
        }
    }
    return NULL;
}

void p_sessions_end(p_repl_t *self, p_link_t *link, p_session_t *session, tern_err_t code,
                    const char *reason) {
    for (size_t i = 0; i < S_SESSIONS_MAX; i++) {
        p_session_t *s = &self->sessions[i];
        if (s->link && (link ? s->link == link : s == session)) {
            if (code != TERN_OK) {
                p_send_error(self, s->rid, s->rid_size, 0, code, reason);
            }
            s->link = NULL; //  it will HELLO again
        }
    }
}

bool p_link_inbound(const p_repl_t *self, const p_link_t *link) {
    for (size_t i = 0; i < S_SESSIONS_MAX; i++) {
        if (self->sessions[i].link == link) {
            return true;
        }
    }
    return false;
}

//  Sends FRAME (and its payload when the command has one) on a DEALER (RID
//  NULL) or to RID on the ROUTER. Returns 0, or -1 (errno EAGAIN when full).
int p_send(p_repl_t *self, void *sock, const uint8_t *rid, size_t rid_size,
           const tern_frame_t *frame) {
    return tern_frame_send(sock, rid, rid_size, frame, self->buf, sizeof self->buf, "repl");
}

void p_send_error(p_repl_t *self, const uint8_t *rid, size_t rid_size, uint64_t req_id,
                  tern_err_t code, const char *reason) {
    tern_frame_t frame;
    tern_frame_init(&frame, TERN_CMD_ERROR);
    frame.req_id = req_id;
    frame.code = (uint32_t)code;
    snprintf(frame.reason, sizeof frame.reason, "%s", reason);
    frame.fields |= TERN_F_REASON;
    p_send(self, self->router, rid, rid_size, &frame);
}

void p_send_pos(p_repl_t *self, void *sock, const uint8_t *rid, size_t rid_size, tern_cmd_t cmd,
                uint64_t pos) {
    tern_frame_t frame;
    tern_frame_init(&frame, cmd);
    frame.position = pos;
    if (p_send(self, sock, rid, rid_size, &frame) != 0 && rid && errno == EHOSTUNREACH) {
        p_session_t *session = p_session_by_rid(self, rid, rid_size);
        if (session) {
            session->link = NULL; //  its connection is gone; it will HELLO again
        }
    }
}

// ---------------------------------------------------------------------------
//  Inbox and timers

// ---------------------------------------------------------------------------
//  A clustered node's streams: one per partition, shipped while it leads

//  Starts or stops stream PT of every link: on from what each peer
//  confirmed of PT (replicated partition state), in the epoch of
//  self->safe_epoch[PT]; off the moment we stop leading it.
static void s_streams_set(p_repl_t *self, uint32_t pt, bool on) {
    bool reading = on && tern_store_read_begin(self->reader) == TERN_OK;
    for (size_t i = 0; i < self->link_count; i++) {
        p_link_t *link = &self->links[i];
        p_stream_t *st = &link->streams[pt];
        if (on) {
            uint64_t pos = 0;
            if (reading) {
                tern_store_outbox_confirmed_pt(self->reader, link->cfg->name, pt, &pos);
            }
            st->confirmed = st->stored_conf = pos;
            st->next_pos = pos + 1;
        }
        st->on = on;
        if (on) {
            //  Over fresh sessions, once for all the partitions started in
            //  this turn (tern_repl_link.c s_restart).
            link->restart = true;
        }
    }
    if (reading) {
        tern_store_read_end(self->reader);
    }
    zsys_info("repl: partition %u: %s", pt,
              on ? "shipping it cross-DC (we lead it)" : "no longer shipping it (not its leader)");
}

//  True if the partition record says this node leads PT in EPOCH now. By
//  the record, not the lease: a lease in doubt stops publishes, but what
//  the ISR holds may still be shipped; another leader or epoch (this node
//  deposed) may not be.
static bool s_leads_in(p_repl_t *self, uint32_t pt, uint64_t epoch) {
    tern_partmap_record_t rec;
    return epoch && tern_cluster_record(self->args->cluster, pt, &rec) &&
           rec.leader == self->config->node_id && rec.epoch == epoch;
}

//  OBSAFE from crepl (takes ownership): outbox positions the ISR holds. A
//  mark of an epoch the record no longer gives us (still in our inbox when
//  the view changed, or sent by crepl before it noticed) is dropped: it
//  must not restart a stream that the fence stopped.
static void s_obsafe(p_repl_t *self, tern_obsafe_t *item) {
    for (size_t i = 0; i < item->count && self->partitions; i++) {
        uint32_t pt = item->marks[i].partition;
        uint64_t epoch = item->epochs[i];
        if (pt >= self->partitions) {
            continue;
        }
        if (self->safe_epoch[pt] != epoch) {
            if (!s_leads_in(self, pt, epoch)) {
                continue; //  stale (a mark of the epoch being shipped is left to the fence)
            }
            //  A new leadership: resume each peer from its replicated position.
            self->safe_epoch[pt] = epoch;
            self->safe[pt] = 0;
            s_streams_set(self, pt, true);
        }
        if (item->marks[i].position > self->safe[pt]) {
            self->safe[pt] = item->marks[i].position;
        }
    }
    tern_obsafe_destroy(&item);
}

//  Stops the streams of partitions we no longer lead in the epoch we ship
//  them in: when the view changes, and (ALWAYS) each time before
//  confirmations that moved are written (at most every 100 ms), so that
//  whatever kept a stream on past its leadership cannot write one.
static void s_fence(p_repl_t *self, bool always) {
    uint64_t view = tern_cluster_version(self->args->cluster);
    if (view == self->view && !always) {
        return;
    }
    self->view = view;
    for (uint32_t pt = 0; pt < self->partitions; pt++) {
        if (self->safe_epoch[pt] && !s_leads_in(self, pt, self->safe_epoch[pt])) {
            self->safe_epoch[pt] = 0;
            s_streams_set(self, pt, false);
        }
    }
}

//  The inbox: committed batches from the storer, admin items from conn.
static void s_handle_inbox(void *actor, void *unused) {
    (void)unused;
    p_repl_t *self = (p_repl_t *)actor;
    for (int n = 0; n < S_DRAIN_MAX; n++) {
        tern_work_type_t type;
        void *ptr;
        if (tern_work_recv(zsock_resolve(self->inbox_sock), ZMQ_DONTWAIT, &type, &ptr) != 0) {
            return;
        }
        if (type == TERN_WORK_REPL_ADMIN) {
            p_admin_item(self, (tern_repl_admin_t *)ptr);
            continue;
        }
        if (type == TERN_WORK_OBSAFE) {
            s_obsafe(self, (tern_obsafe_t *)ptr);
            continue;
        }
        if (type != TERN_WORK_REPL_DONE) {
            zsys_error("repl: unexpected work item type %d", (int)type);
            continue;
        }
        p_batch_done(self, (tern_repl_batch_t *)ptr);
    }
}

//  Queues PEER's confirmation of partition PT's outbox up to POS (a batch
//  holds TERN_PEERS_MAX of them: then it goes and another one starts).
static void s_batch_confirm(p_repl_t *self, const char *peer, uint32_t pt, uint64_t pos) {
    tern_repl_batch_t *batch = p_batch(self);
    if (batch->confirm_count == TERN_PEERS_MAX) {
        p_flush_batch(self);
        batch = p_batch(self);
    }
    tern_repl_pos_t *c = &batch->confirms[batch->confirm_count++];
    snprintf(c->name, sizeof c->name, "%s", peer);
    c->position = pos;
    c->partition = pt;
}

//  True if ST's confirmation moved since it was last written and is ours
//  to write (in a cluster: the stream is on).
static bool s_conf_moved(const p_repl_t *self, const p_stream_t *st) {
    return st->confirmed > st->stored_conf && (st->on || !self->partitions);
}

//  True if any stream's confirmation is to be written.
static bool s_confirms_pending(const p_repl_t *self) {
    for (size_t i = 0; i < self->link_count; i++) {
        for (uint32_t s = 0; s < self->links[i].nstreams; s++) {
            if (s_conf_moved(self, &self->links[i].streams[s])) {
                return true;
            }
        }
    }
    return false;
}

//  The peers' confirmations that moved, to disk: they drive outbox cleanup,
//  and in a cluster a partition's next leader resumes shipping from them.
//  In a cluster only of streams that are on, i.e. partitions the record
//  says we lead (the fence, run first, stopped the others): a follower's
//  copy comes from its leader, and a value written here would never be
//  corrected (confirmations are max-merged).
static void s_store_confirms(p_repl_t *self) {
    //  The fence reads every partition's record: only when something would
    //  be written (it only ever turns streams off, so nothing pending
    //  before it means nothing after).
    if (self->partitions && s_confirms_pending(self)) {
        s_fence(self, true);
    }
    for (size_t i = 0; i < self->link_count; i++) {
        p_link_t *link = &self->links[i];
        for (uint32_t s = 0; s < link->nstreams; s++) {
            p_stream_t *st = &link->streams[s];
            if (s_conf_moved(self, st)) {
                s_batch_confirm(self, link->cfg->name, st->pt, st->confirmed);
                st->stored_conf = st->confirmed;
            }
        }
    }
}

static void s_housekeeping(p_repl_t *self, uint64_t now) {
    p_publish_stats(self);
    s_store_confirms(self); //  once a second on a single node
    for (size_t i = 0; i < S_SESSIONS_MAX; i++) {
        p_session_t *session = &self->sessions[i];
        if (session->link && now - session->seen_ms > 3 * self->config->repl_heartbeat_ms) {
            session->link = NULL; //  inbound session silent: it will HELLO again
        }
    }
    p_flush_batch(self);
    tern_store_stats_t stats;
    tern_store_stats(self->args->store, &stats);
    if (stats.outbox_dropped > self->dropped_seen) {
        zsys_warning("repl: outbox retention dropped %" PRIu64 " records that a peer had not "
                     "confirmed (%" PRIu64 " in total): that peer will never receive them",
                     stats.outbox_dropped - self->dropped_seen, stats.outbox_dropped);
        self->dropped_seen = stats.outbox_dropped;
    }
}

static void s_refresh_outbox_last(p_repl_t *self) {
    if (tern_store_read_begin(self->reader) == TERN_OK) {
        tern_store_outbox_last(self->reader, &self->outbox_last);
        tern_store_read_end(self->reader);
    }
}

static void s_timers(p_repl_t *self) {
    uint64_t now = tern_now_ms();
    bool any_live = false;
    if (self->partitions) {
        s_fence(self, false);
    }
    for (size_t i = 0; i < self->link_count; i++) {
        p_link_t *link = &self->links[i];
        p_link_event(self, link, TERN_PEER_TICK);
        if (tern_peer_state(link->fsm) == TERN_PEER_LIVE) {
            any_live = true;
            p_route_timers(self, link, now);
            if (now - link->last_hb_ms >= self->config->repl_heartbeat_ms && link->dealer) {
                p_send_pos(self, zsock_resolve(link->dealer), NULL, 0, TERN_CMD_REPL_HEARTBEAT,
                           self->outbox_last);
                link->last_hb_ms = now;
            }
        }
    }
    if (any_live && !self->partitions) {
        s_refresh_outbox_last(self);
    }
    if (any_live) {
        for (size_t i = 0; i < self->link_count; i++) {
            p_pump(self, &self->links[i]);
        }
    }
    if (now >= self->next_house_ms) {
        s_housekeeping(self, now);
        self->next_house_ms = now + S_HOUSE_MS;
    } else if (self->partitions && now >= self->next_confirm_ms) {
        //  A cluster: every 100 ms, so that a successor (which ships from
        //  the replicated confirmation) resends at most about 100 ms of
        //  shipping instead of a second's (docs/replication.md). Riding in
        //  the storer's next drain, it adds no commit while traffic flows.
        s_store_confirms(self);
        p_flush_batch(self);
        self->next_confirm_ms = now + S_CONFIRM_MS;
    }
}

// ---------------------------------------------------------------------------
//  The actor

//  One link per configured peer, with its inbound cursor and confirmation
//  as stored; registers every peer with the outbox.
static void s_load_links(p_repl_t *self) {
    //  Inbound cursors and confirmations as stored.
    uint64_t now = tern_now_ms();
    if (self->args->cluster) {
        self->partitions = tern_cluster_partitions(self->args->cluster);
        self->safe = tern_alloc(self->partitions * sizeof *self->safe);
        self->safe_epoch = tern_alloc(self->partitions * sizeof *self->safe_epoch);
    }
    //  Dead after three heartbeats of silence (repl/heartbeat); a HELLO
    //  gets at least the default 3 s for its WELCOME.
    uint32_t dead_ms = (uint32_t)(3 * self->config->repl_heartbeat_ms);
    tern_peer_timing_t timing = {dead_ms > 3000 ? dead_ms : 3000, dead_ms};
    tern_store_read_begin(self->reader);
    tern_store_outbox_last(self->reader, &self->outbox_last);
    for (uint32_t i = 0; i < self->config->peer_count && i < TERN_PEERS_MAX; i++) {
        p_link_t *link = &self->links[self->link_count++];
        link->cfg = &self->config->peers[i];
        link->fsm = tern_peer_new(&timing, link->cfg->endpoint_count, now);
        if (!link->fsm) {
            tern_oom(0);
        }
        //  Until a sender says who it is, the cursor of its DC (the only
        //  one before store identities; tern_repl_apply.c s_in_cursor).
        snprintf(link->in_cursor, sizeof link->in_cursor, "%s", link->cfg->name);
        uint64_t pos = 0;
        if (tern_store_inbound_get(self->reader, link->cfg->name, &pos) == TERN_OK) {
            link->applied = link->queued = pos;
        }
        //  A single node ships its one outbox; a clustered one each
        //  partition it leads (started by OBSAFE, s_obsafe).
        link->nstreams = self->partitions ? self->partitions : 1;
        link->streams = tern_alloc(link->nstreams * sizeof *link->streams);
        for (uint32_t s = 0; s < link->nstreams; s++) {
            link->streams[s].pt = s;
        }
        link->streams[0].on = !self->partitions;
        pos = 0;
        if (!self->partitions &&
            tern_store_outbox_confirmed(self->reader, link->cfg->name, &pos) == TERN_OK) {
            link->streams[0].confirmed = link->streams[0].stored_conf = pos;
        }
    }
    tern_store_read_end(self->reader);
    //  Register every peer (position 0 never moves a confirmation back), so
    //  the outbox keeps entries for a peer that has not connected yet.
    for (size_t i = 0; i < self->link_count && !self->partitions; i++) {
        s_batch_confirm(self, self->links[i].cfg->name, 0, self->links[i].streams[0].confirmed);
    }
    p_flush_batch(self);
    tern_store_stats_t stats;
    tern_store_stats(self->args->store, &stats);
    self->dropped_seen = stats.outbox_dropped;
    if (stats.outbox_dropped) {
        zsys_warning("repl: %" PRIu64 " outbox records were dropped by retention before every "
                     "peer confirmed them",
                     stats.outbox_dropped);
    }
}

//  Opens the replication ROUTER and the inproc sockets, and loads the links.
//  Returns 0, or -1 with args->error set.
static int s_start(p_repl_t *self) {
    tern_repl_args_t *args = self->args;
    self->router_sock = zsock_new(ZMQ_ROUTER);
    self->reader = tern_store_reader_new(args->store);
    if (!self->router_sock || !self->reader) {
        snprintf(args->error, sizeof args->error, "repl: cannot create sockets");
        return -1;
    }
    tern_node_sock_options(self->router_sock, S_HWM, self->config->max_payload);
    if (self->config->auth_mode == TERN_AUTH_CURVE) {
        char why[200];
        if (tern_auth_curve_server(zsock_resolve(self->router_sock), self->config->auth_server_key,
                                   why, sizeof why) != TERN_OK) {
            snprintf(args->error, sizeof args->error, "repl: %s", why);
            return -1;
        }
    }
    if (zsock_bind(self->router_sock, "%s", self->config->repl_listen) < 0) {
        snprintf(args->error, sizeof args->error, "repl: cannot bind %.160s: %.60s",
                 self->config->repl_listen, zmq_strerror(zmq_errno()));
        return -1;
    }
    self->router = zsock_resolve(self->router_sock);
    char admin[128];
    tern_repl_admin_endpoint(self->config, admin, sizeof admin);
    if (!tern_work_pull_bind(&self->inbox_sock, args->inbox) ||
        zsock_bind(self->inbox_sock, "%s", admin) != 0 ||
        !tern_work_push_connect(&self->storer_sock, args->storer_inbox)) {
        snprintf(args->error, sizeof args->error, "repl: cannot reach the storer");
        return -1;
    }
    s_load_links(self);
    return 0;
}

static void s_stop(p_repl_t *self) {
    //  Results the storer already sent us: free them (nobody else will).
    if (self->inbox_sock) {
        tern_work_type_t type;
        void *ptr;
        while (tern_work_recv(zsock_resolve(self->inbox_sock), ZMQ_DONTWAIT, &type, &ptr) == 0) {
            if (type == TERN_WORK_REPL_DONE) {
                tern_repl_batch_t *batch = ptr;
                tern_repl_batch_destroy(&batch);
            } else if (type == TERN_WORK_REPL_ADMIN) {
                tern_repl_admin_t *item = ptr;
                tern_repl_admin_destroy(&item); //  its client times out
            } else if (type == TERN_WORK_OBSAFE) {
                tern_obsafe_t *item = ptr;
                tern_obsafe_destroy(&item);
            }
        }
    }
    for (size_t i = 0; i < self->link_count; i++) {
        p_close_dealer(&self->links[i]);
        tern_peer_destroy(&self->links[i].fsm);
        free(self->links[i].streams);
    }
    for (size_t i = 0; i < S_SESSIONS_MAX; i++) {
        free(self->sessions[i].applied_pt);
    }
    free(self->safe);
    free(self->safe_epoch);
    free(self->touched);
    tern_repl_batch_destroy(&self->batch);
    tern_store_reader_destroy(&self->reader);
    zsock_destroy(&self->router_sock);
    zsock_destroy(&self->inbox_sock);
    zsock_destroy(&self->storer_sock);
    zsock_destroy(&self->conn_sock);
}

//  Loop hooks (tern_actor.h): the inbox, the ROUTER, then each live
//  link's DEALER (readers for this turn only: links connect and drop);
//  timers after every turn. $TERM ends the loop at once.
static void s_on_dealer(void *self, void *arg) {
    p_link_t *link = (p_link_t *)arg;
    if (link->dealer) { //  an earlier handler of this turn may have dropped it
        p_handle_dealer((p_repl_t *)self, link);
    }
}

//  Adds the DEALERs of this turn; waits until the next link deadline (a
//  live link pumps its outbox every S_PUMP_MS), at most 100 ms.
static long s_prepare(tern_loop_t *loop, void *arg) {
    p_repl_t *self = (p_repl_t *)arg;
    uint64_t now = tern_now_ms();
    uint64_t deadline = now + 100;
    for (size_t i = 0; i < self->link_count; i++) {
        p_link_t *link = &self->links[i];
        if (link->dealer) {
            tern_loop_reader(loop, zsock_resolve(link->dealer), s_on_dealer, link);
        }
        p_route_readers(self, link, loop);
        uint64_t d = tern_peer_deadline(link->fsm);
        if (tern_peer_state(link->fsm) == TERN_PEER_LIVE) {
            d = now + S_PUMP_MS;
        }
        if (d < deadline) {
            deadline = d;
        }
    }
    return tern_loop_wait_until(deadline);
}

static void s_after(void *self) {
    s_timers((p_repl_t *)self);
}

void tern_repl_actor(zsock_t *pipe, void *arg) {
    tern_thread_name("ternd-repl");
    p_repl_t *self = tern_alloc(sizeof *self);
    self->args = (tern_repl_args_t *)arg;
    self->config = self->args->config;
    self->args->bind_rc = -1;
    if (s_start(self) != 0) {
        zsys_error("%s", self->args->error);
        s_stop(self);
        free(self);
        tern_actor_fail(pipe);
        return;
    }
    self->args->bind_rc = 0;
    zsys_info("repl: dc %s node %u replicating on %s with %zu peer(s)", self->config->dc,
              self->config->node_id, self->config->repl_listen, self->link_count);
    zsock_signal(pipe, 0);

    tern_loop_t loop;
    tern_loop_init(&loop, pipe, self, s_prepare, s_after);
    tern_loop_reader(&loop, zsock_resolve(self->inbox_sock), s_handle_inbox, NULL);
    tern_loop_reader(&loop, self->router, p_handle_router, NULL);
    loop.stop_at_once = true;
    tern_loop_run(&loop);
    s_stop(self);
    free(self);
}
