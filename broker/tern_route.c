/*  tern_route.c - the route actor: who gets which message, and when again.

    route owns every subscription, every group's in-memory delivery state and
    every delivery timer. It reads messages through its own storage reader
    (one short read transaction per dispatch round, never held across a
    wait), encodes DELIVER frames into batches of up to S_BATCH_MAX (header
    encoded in a reused buffer, header and payload each copied once into the
    zmq_msg_t conn will send) and puts each batch on conn's `out` socket;
    conn only forwards them. Durable group state changes (deliver, ack,
    nack, dead, replay, open) go to the storer as one tern_ops_t per loop
    iteration; ephemeral subscriptions live only here.

    Pipe commands (zactor pipe, from tern_broker):
        $TERM      -> exits (no reply); in-flight state is already persisted
    Inbox (PULL, bound at args->inbox; route owns what it receives):
        EVENTS  tern_events_t *  from conn: open/gone/sub/unsub/ack/nack/term/
                                 credit/admin (groups, dlq.list|replay|purge,
                                 group.delete|reset|seek)
        NOTICE  tern_notice_t *  from storer: appended messages, route's ops
                                 with their results (OPEN, admin ops), topics gone
                                 or created (topic.create); appends to a topic
                                 route marked quiet (no group on it) are left
                                 out, and a NOTICE with nothing else not sent
                                 (tern_quiet.h)
    Sends:
        OPS     tern_ops_t *     -> storer inbox (storer hands it back)
        frames  [rid][hdr][payload?] -> conn out: OK, ERROR, REPLY
        DELIVERS tern_delivers_t * -> conn out: up to S_BATCH_MAX DELIVERs
                (conn owns it); sent when full, at the end of each loop
                iteration, and before any other frame

    Model: a group is (topic, name) for durable groups, or (topic, one
    subscription) for an ephemeral one. It keeps one cursor per priority lane
    (next seq not yet delivered) and a list of pending entries (delivered or
    waiting for redelivery). A subscription with a pattern joins the group of
    its name on every matching topic, including topics created later. Within
    a group, consumers are served round robin among those with free window.
    Choices where the contract is silent: a late ACK for a message whose
    ack_wait ran out gets ENOTFOUND (it is redelivered); CREDIT is capped by
    max_inflight; pending entries loaded from storage at start are due at
    once (their sessions died with the old process).

    Timers run whether or not a group has consumers (r_timers, every loop
    iteration): an ack wait that runs out, a waiting entry that has used its
    max_deliver deliveries (moved to the DLQ) and a waiting entry whose
    message expired (dropped as expired) all happen on time; only the
    redelivery itself waits for a consumer with free window. So that this
    holds after a restart too, every durable group with pending entries is
    opened at start, before any subscription joins it.

    In a cluster (args->cluster set) route serves only the topics of the
    partitions this node leads, while its lease is ok (tern_route_cluster.c).
*/
#include "tern_route_priv.h"
#include "tern_actor.h"
#include "tern_admin.h"
#include "tern_json.h"
#include "tern_proto.h"
#include "tern_tagmap.h"
#include "tern_work.h"
#include <inttypes.h>
#include <string.h>

// ---------------------------------------------------------------------------
//  Pure helpers

uint64_t tern_route_backoff_ms(uint64_t base_ms, uint64_t max_ms, uint32_t n) {
    if (n < 1) {
        n = 1;
    }
    uint64_t delay = base_ms;
    for (uint32_t i = 1; i < n; i++) {
        if (delay >= max_ms || delay > UINT64_MAX / 2) {
            delay = max_ms;
            break;
        }
        delay *= 2;
    }
    return delay > max_ms ? max_ms : delay;
}

uint32_t tern_route_window(uint32_t requested, uint32_t max_inflight) {
    if (max_inflight == 0) {
        max_inflight = 1;
    }
    if (requested == 0 || requested > max_inflight) {
        return max_inflight;
    }
    return requested;
}

static size_t s_u64_hash(const void *key) {
    uint64_t x = (uint64_t)(uintptr_t)key;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (size_t)x;
}

static int s_u64_cmp(const void *a, const void *b) {
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

static zhashx_t *s_u64_hash_new(void) {
    zhashx_t *hash = zhashx_new();
    if (!hash) {
        tern_oom(0);
    }
    zhashx_set_key_hasher(hash, s_u64_hash);
    zhashx_set_key_comparator(hash, s_u64_cmp);
    zhashx_set_key_duplicator(hash, NULL);
    zhashx_set_key_destructor(hash, NULL);
    return hash;
}

size_t tern_route_u64_str(uint64_t value, char *buf) {
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    for (size_t i = 0; i < n; i++) {
        buf[i] = tmp[n - 1 - i];
    }
    buf[n] = 0;
    return n;
}

// ---------------------------------------------------------------------------
//  Inbox

static void s_handle_events(r_route_t *self, tern_events_t *events) {
    self->quiet_recheck = true; //  a subscription or group op may join a quiet topic
    for (size_t i = 0; i < events->count; i++) {
        tern_event_t *ev = &events->items[i];
        if (ev->type == TERN_EV_OPEN) {
            r_session_gone(self, ev->session_id); //  a stale one, if any
            r_session_t *session = tern_alloc(sizeof *session);
            session->id = ev->session_id;
            memcpy(session->rid, ev->rid, ev->rid_size);
            session->rid_size = ev->rid_size;
            session->subs = s_u64_hash_new();
            zhashx_insert(self->sessions, S_KEY(session->id), session);
            continue;
        }
        if (ev->type == TERN_EV_GONE) {
            r_session_gone(self, ev->session_id);
            continue;
        }
        if (ev->type == TERN_EV_ADMIN) {
            tern_admin_t *admin = ev->admin;
            ev->admin = NULL;
            r_handle_admin(self, admin);
            continue;
        }
        r_session_t *session = (r_session_t *)zhashx_lookup(self->sessions, S_KEY(ev->session_id));
        if (!session) {
            continue; //  ended meanwhile
        }
        if (ev->type == TERN_EV_SUB) {
            r_handle_sub(self, session, ev);
            continue;
        }
        r_sub_t *sub = (r_sub_t *)zhashx_lookup(session->subs, S_KEY(ev->sub_id));
        if (!sub) {
            r_send_error(self, session, ev->req_id, TERN_ENOTFOUND, "unknown subscription");
            continue;
        }
        switch (ev->type) {
            case TERN_EV_UNSUB:
                r_sub_remove(self, sub);
                r_send_ok(self, session, ev->req_id, ev->sub_id);
                break;
            case TERN_EV_CREDIT: {
                uint64_t window = (uint64_t)sub->window + ev->credit;
                sub->window = window > self->config->max_inflight
                                  ? (self->config->max_inflight ? self->config->max_inflight : 1)
                                  : (uint32_t)window;
                break;
            }
            default:
                r_handle_ack(self, session, sub, ev);
                break;
        }
    }
    tern_events_destroy(&events);
}

//  A peer DC changed GROUP's stored state (replicated acks): adopt lane
//  cursors that moved forward and stored pending entries we do not have (a
//  remote ack of a message not delivered here leaves the lane's earlier
//  messages pending, due now). A waiting entry the store no longer holds
//  although its lane cursor there passed it was acked or dead-lettered by
//  the peer: drop it. Entries whose DELIVER op may still be queued (store
//  cursor not past them) and entries in flight here are kept: those may be
//  delivered once more (at-least-once).
typedef struct {
    r_load_t load;               //  the group being reloaded
    uint64_t lane_next[S_LANES]; //  route's cursors before the reload
} s_reload_t;

//  A stored entry below route's own cursor that route does not hold was
//  acked or dead-lettered here, its op still queued: not loaded again.
static bool s_reload_pending(const tern_entry_t *entry, void *arg) {
    s_reload_t *reload = (s_reload_t *)arg;
    for (r_pend_t *pend = reload->load.group->head; pend; pend = pend->next) {
        if (pend->seq == entry->seq) {
            pend->stored = true;
            return true;
        }
    }
    if (entry->priority < S_LANES && entry->seq < reload->lane_next[entry->priority]) {
        return true;
    }
    return r_load_pending(entry, &reload->load);
}

static void s_group_reload(r_route_t *self, r_group_t *group) {
    tern_group_info_t info;
    if (group->state != G_READY || r_read_begin(self) != TERN_OK ||
        tern_store_group_get(self->reader, group->topic->id, group->name, &info) != TERN_OK) {
        return;
    }
    s_reload_t reload = {{self, group, false}, {0}};
    memcpy(reload.lane_next, group->lane_next, sizeof reload.lane_next);
    for (int lane = 0; lane < S_LANES; lane++) {
        if (info.lane_next[lane] > group->lane_next[lane]) {
            group->lane_next[lane] = info.lane_next[lane];
        }
    }
    for (r_pend_t *pend = group->head; pend; pend = pend->next) {
        pend->stored = false;
    }
    if (tern_store_pending_list(self->reader, group->topic->id, group->name, s_reload_pending,
                                &reload) == TERN_OK) {
        r_pend_t *pend = group->head;
        while (pend) {
            r_pend_t *next = pend->next;
            if (!pend->inflight && !pend->stored && pend->priority < S_LANES &&
                pend->seq < info.lane_next[pend->priority]) {
                r_pend_destroy(pend);
            }
            pend = next;
        }
    }
    group->dirty = true;
}

// ---------------------------------------------------------------------------
//  Quiet topics (tern_quiet.h): the storer stops telling us about their
//  appends while no group is on them.

//  TOPIC, which route knows, had appends and no group: ask the storer not
//  to send its next ones.
static void s_quiet_mark(r_route_t *self, r_topic_t *topic) {
    tern_quiet_t *quiet = self->args->quiet;
    if (!quiet || topic->id >= TERN_QUIET_MAX || tern_quiet_get(quiet, topic->id)) {
        return;
    }
    if (self->quiet_count == self->quiet_cap) {
        self->quiet_cap = self->quiet_cap ? self->quiet_cap * 2 : 16;
        self->quiet_ids = tern_realloc(self->quiet_ids, self->quiet_cap * sizeof(uint32_t));
    }
    self->quiet_ids[self->quiet_count++] = topic->id;
    tern_quiet_set(quiet, topic->id, true);
}

//  Before the turn's read snapshot: a quiet topic a group joined (or that
//  is gone) is noticed again, and its groups scan that snapshot, which
//  holds every append the storer left out (the fence; tern_quiet.h).
static void s_quiet_recheck(r_route_t *self) {
    if (!self->quiet_recheck) {
        return;
    }
    self->quiet_recheck = false;
    size_t kept = 0;
    for (size_t i = 0; i < self->quiet_count; i++) {
        uint32_t id = self->quiet_ids[i];
        r_topic_t *topic = r_topic_get(self, id);
        if (topic && zlistx_size(topic->groups) == 0) {
            self->quiet_ids[kept++] = id;
            continue;
        }
        tern_quiet_set(self->args->quiet, id, false);
        for (r_group_t *group = topic ? (r_group_t *)zlistx_first(topic->groups) : NULL; group;
             group = (r_group_t *)zlistx_next(topic->groups)) {
            group->dirty = true;
        }
    }
    if (kept < self->quiet_count) {
        self->quiet_count = kept;
        tern_quiet_fence(); //  the flags before the snapshot
        r_read_end(self);
    }
}

static void s_handle_notice(r_route_t *self, tern_notice_t *notice) {
    //  Everything below reads what this notice's commit wrote (reloaded and
    //  opened groups, created topics, appended messages): a read transaction
    //  opened earlier in this drain may predate the commit. (An opened group
    //  read through such a snapshot was not found and failed for good.)
    r_read_end(self);
    if (notice->ops || notice->created_count || notice->gone_count) {
        self->quiet_recheck = true; //  groups may have opened (topic.create, group ops)
    }
    for (size_t i = 0; i < notice->reload_count; i++) {
        r_topic_t *topic = r_topic_by_name(self, notice->reload[i].topic);
        if (topic) {
            r_group_t *group = r_durable_get(self, topic->id, notice->reload[i].group);
            if (group) {
                s_group_reload(self, group);
            }
        }
    }
    for (size_t i = 0; i < notice->gone_count; i++) {
        r_topic_t *topic = r_topic_by_name(self, notice->gone[i].name);
        if (topic && !notice->gone[i].purge) {
            r_topic_destroy(self, topic);
        } else if (topic) {
            //  Purged: drop pending entries whose messages are gone at the
            //  next delivery attempt; the cursors continue.
            for (r_group_t *group = (r_group_t *)zlistx_first(topic->groups); group;
                 group = (r_group_t *)zlistx_next(topic->groups)) {
                group->dirty = true;
            }
        }
    }
    for (tern_ops_t *ops = notice->ops; ops; ops = ops->next) {
        for (size_t i = 0; i < ops->count; i++) {
            tern_op_t *op = &ops->items[i];
            if (op->type == TERN_OP_OPEN) {
                r_group_t *group = r_durable_get(self, op->topic_id, op->group);
                if (group && group->state == G_LOADING && group->admin_ops == 0) {
                    r_group_loaded(self, group, op->err);
                }
            } else if (op->ctx) {
                r_admin_op_done(self, op);
            }
        }
    }
    //  Topics made by topic.create: subscriptions join them now (a durable
    //  group is listed at once), not at their first publish.
    for (size_t i = 0; i < notice->created_count; i++) {
        tern_topic_info_t info;
        if (!r_topic_get(self, notice->created[i]) && r_read_begin(self) == TERN_OK &&
            tern_store_topic_get_id(self->reader, notice->created[i], &info) == TERN_OK) {
            r_topic_add(self, info.id, info.name);
        }
    }
    uint32_t last_id = 0;
    r_topic_t *topic = NULL;
    for (size_t i = 0; i < notice->appended_count; i++) {
        tern_appended_t *ap = &notice->appended[i];
        if (!topic || ap->topic_id != last_id) {
            last_id = ap->topic_id;
            topic = r_topic_get(self, ap->topic_id);
            if (!topic) {
                tern_topic_info_t info;
                if (r_read_begin(self) == TERN_OK &&
                    tern_store_topic_get_id(self->reader, ap->topic_id, &info) == TERN_OK) {
                    topic = r_topic_add(self, info.id, info.name);
                }
            }
            if (topic) {
                for (r_group_t *group = (r_group_t *)zlistx_first(topic->groups); group;
                     group = (r_group_t *)zlistx_next(topic->groups)) {
                    group->dirty = true;
                }
                if (zlistx_size(topic->groups) == 0) {
                    s_quiet_mark(self, topic);
                }
            }
        }
        if (topic && self->cluster) {
            r_cluster_raise(topic, ap->seq, notice->inherited);
        }
    }
    if (notice->inherited && self->cluster) {
        r_cluster_inherit(self, notice);
    }
    tern_notice_destroy(&notice);
}

// ---------------------------------------------------------------------------
//  The actor

void r_session_free(void **item_p) {
    r_session_t *session = (r_session_t *)*item_p;
    if (session) {
        zhashx_destroy(&session->subs);
        free(session);
        *item_p = NULL;
    }
}

//  Frees NOTICE and the admin requests its ops still carry.
static void s_notice_free(tern_notice_t *notice) {
    for (tern_ops_t *ops = notice->ops; ops; ops = ops->next) {
        for (size_t i = 0; i < ops->count; i++) {
            free(ops->items[i].ctx);
        }
    }
    tern_notice_destroy(&notice);
}

static void s_cleanup(r_route_t *self) {
    //  Items still in the inbox (shutdown): nobody will handle them.
    tern_work_type_t type;
    void *ptr;
    while (self->inbox && tern_work_recv(self->inbox, ZMQ_DONTWAIT, &type, &ptr) == 0) {
        if (type == TERN_WORK_EVENTS) {
            tern_events_t *events = (tern_events_t *)ptr;
            tern_events_destroy(&events);
        } else if (type == TERN_WORK_NOTICE) {
            s_notice_free((tern_notice_t *)ptr);
        }
    }
    if (self->ops) {
        for (size_t i = 0; i < self->ops->count; i++) {
            free(self->ops->items[i].ctx);
        }
    }
    //  Subscriptions first (they reference groups), then groups and topics.
    if (self->sessions) {
        for (r_session_t *session = (r_session_t *)zhashx_first(self->sessions); session;
             session = (r_session_t *)zhashx_next(self->sessions)) {
            r_sub_t *sub;
            while ((sub = (r_sub_t *)zhashx_first(session->subs))) {
                r_sub_remove(self, sub);
            }
        }
        zhashx_destroy(&self->sessions);
    }
    if (self->topics) {
        r_topic_t *topic;
        while ((topic = (r_topic_t *)zhashx_first(self->topics))) {
            r_topic_destroy(self, topic);
        }
        zhashx_destroy(&self->topics);
    }
    zhashx_destroy(&self->durable);
    zlistx_destroy(&self->groups);
    zlistx_destroy(&self->subs);
    free(self->quiet_ids);
    tern_ops_destroy(&self->ops);
    tern_delivers_destroy(&self->batch);
    while (self->pool.free) {
        r_pend_t *next = self->pool.free->next;
        free(self->pool.free);
        self->pool.free = next;
    }
    r_read_end(self);
    r_cache_destroy(self);
    tern_store_reader_destroy(&self->reader);
    zsock_destroy(&self->inbox_sock);
    zsock_destroy(&self->storer_sock);
    zsock_destroy(&self->out_sock);
}

//  Loop hooks (tern_actor.h): the inbox, then every group's timers and
//  dispatch in one read transaction, then the turn's DELIVER batch and ops.
static void s_on_inbox(void *arg, void *unused) {
    (void)unused;
    r_route_t *self = (r_route_t *)arg;
    for (int n = 0; n < S_DRAIN_MAX; n++) {
        tern_work_type_t type;
        void *ptr;
        if (tern_work_recv(self->inbox, ZMQ_DONTWAIT, &type, &ptr) != 0) {
            break;
        }
        if (type == TERN_WORK_EVENTS) {
            s_handle_events(self, (tern_events_t *)ptr);
        } else if (type == TERN_WORK_NOTICE) {
            s_handle_notice(self, (tern_notice_t *)ptr);
        } else {
            zsys_error("route: unexpected work item type %d", (int)type);
        }
    }
}

#define S_OPS_WAIT_MAX 10 //  ms between looks while the storer has not taken our ops

//  Waits until the earliest group deadline, at most 1 s.
static long s_prepare(tern_loop_t *loop, void *arg) {
    (void)loop;
    r_route_t *self = (r_route_t *)arg;
    uint64_t now = tern_now_ms();
    long timeout = self->cluster ? 100 : 1000; //  a cluster's view is looked at every 100 ms
    if (self->ops_blocked && self->ops_wait_ms < timeout) {
        timeout = self->ops_wait_ms; //  nothing else wakes us when the storer catches up
    }
    for (r_group_t *group = (r_group_t *)zlistx_first(self->groups); group;
         group = (r_group_t *)zlistx_next(self->groups)) {
        if (group->next_check_ms && r_group_live(self, group)) {
            long wait = group->next_check_ms > now ? (long)(group->next_check_ms - now) : 0;
            if (wait < timeout) {
                timeout = wait;
            }
        }
    }
    return timeout;
}

static void s_after(void *arg) {
    r_route_t *self = (r_route_t *)arg;
    uint64_t now = tern_now_ms();
    if (self->cluster) {
        r_cluster_tick(self, now);
    }
    s_quiet_recheck(self);
    //  In a cluster, groups of partitions another node leads (or all, while
    //  the lease may have lapsed) neither deliver nor run timers.
    for (r_group_t *group = (r_group_t *)zlistx_first(self->groups); group;
         group = (r_group_t *)zlistx_next(self->groups)) {
        if (r_group_live(self, group)) {
            r_timers(self, group, now);
        }
    }
    //  Blocked on the storer: look again after 1, 2, 4, 8, 10, 10... ms, and
    //  skip the groups while it has not caught up (each would only see that).
    if (self->ops_blocked && r_ops_full(self)) {
        self->ops_wait_ms =
            self->ops_wait_ms < S_OPS_WAIT_MAX / 2 ? self->ops_wait_ms * 2 : S_OPS_WAIT_MAX;
        r_read_end(self); //  no snapshot kept across turns (it would go stale)
        r_flush_batch(self);
        r_flush_ops(self);
        return;
    }
    self->ops_blocked = false;
    self->ops_wait_ms = 1;
    //  A fresh snapshot: one an inbox handler opened earlier may predate
    //  commits whose NOTICEs this turn handled, and a group that scanned it
    //  would find its lanes empty and stop looking (dirty cleared).
    r_read_end(self);
    if (r_read_begin(self) == TERN_OK) {
        for (r_group_t *group = (r_group_t *)zlistx_first(self->groups); group;
             group = (r_group_t *)zlistx_next(self->groups)) {
            if (r_group_live(self, group)) {
                r_dispatch(self, group, now);
            }
        }
        //  The next round starts one group later: the groups first in the
        //  list would otherwise take every byte the global bound frees first.
        if (zlistx_first(self->groups)) {
            zlistx_move_end(self->groups, zlistx_cursor(self->groups));
        }
    }
    r_read_end(self);
    r_flush_batch(self);
    r_flush_ops(self);
}

void tern_route_actor(zsock_t *pipe, void *arg) {
    tern_thread_name("ternd-route");
    r_route_t *self = tern_alloc(sizeof(r_route_t));
    self->args = (tern_route_args_t *)arg;
    self->config = self->args->config;
    self->metrics = self->args->metrics;
    self->cluster = self->args->cluster;
    self->ops_wait_ms = 1;
    if (self->cluster) {
        self->lease_ok = tern_cluster_lease_ok(self->cluster);
        self->view_version = tern_cluster_version(self->cluster);
    }
    self->sessions = s_u64_hash_new();
    zhashx_set_destructor(self->sessions, r_session_free);
    self->topics = s_u64_hash_new();
    self->durable = zhashx_new();
    self->groups = zlistx_new();
    self->subs = zlistx_new();
    self->reader = tern_store_reader_new(self->args->store);
    self->inbox = tern_work_pull_bind(&self->inbox_sock, self->args->inbox);
    self->to_storer = tern_work_push_connect(&self->storer_sock, self->args->storer_inbox);
    self->out = tern_work_push_connect(&self->out_sock, self->args->conn_out);
    if (!self->reader || !self->inbox || !self->to_storer || !self->out) {
        goto fail;
    }
    //  Known topics, and the groups whose pending entries have timers; the
    //  other groups are opened when subscriptions join them.
    if (r_read_begin(self) == TERN_OK) {
        tern_store_topic_list(self->reader, r_topic_each, self);
        r_open_pending(self);
    }
    r_read_end(self);
    zsock_signal(pipe, 0);

    tern_loop_t loop;
    tern_loop_init(&loop, pipe, self, s_prepare, s_after);
    tern_loop_reader(&loop, self->inbox, s_on_inbox, NULL);
    tern_loop_run(&loop);
    s_cleanup(self);
    free(self);
    return;

fail:
    zsys_error("route: cannot start");
    s_cleanup(self);
    free(self);
    tern_actor_fail(pipe);
}
