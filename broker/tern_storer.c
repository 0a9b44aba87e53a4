/*  tern_storer.c - the storer actor: the one LMDB writer of ternd.

    Everything that changes storage passes through here: publishes from conn,
    group state ops from route, topic admin writes from conn, and the periodic
    TTL sweep. The actor drains its inbox, queues every item in ONE
    tern_store_batch_t, commits once (one fsync acknowledges every publish of
    the drain), then hands the results back: one tern_committed_t to conn (which
    sends the PUBACKs, batched per session) and one tern_notice_t to route
    (appended messages to dispatch, route's ops back with their results).
    Nothing is acknowledged before tern_store_batch_commit returned (in a
    cluster: before the flush after it).

    Pipe commands (zactor pipe, from tern_broker):
        $TERM            -> drains the inbox, commits, exits (no reply)
    Inbox (PULL, bound at args->inbox; tern_work items, storer owns them):
        PUBS   tern_pubs_t *    from conn: append each, return via COMMITTED
        ADMIN  tern_admin_t *   from conn: topic.create|edit|delete|purge, returned
        OPS    tern_ops_t *     from route: persist; returned via NOTICE when it
                                holds OPEN or an admin op (route needs the result),
                                else freed here after the commit
        REPL   tern_repl_batch_t * from repl: peers' records and cursors, applied
                                in the same commit, returned via REPL_DONE;
                                from crepl (in_dc set): the leader's records and
                                truncations, applied as a follower
    Sends:
        COMMITTED tern_committed_t *  -> conn inbox, one per commit
        NOTICE    tern_notice_t *     -> route inbox, one per commit that has
                                         something for route (appends to quiet
                                         topics are not: tern_quiet.h)
        REPL_DONE tern_repl_batch_t * -> repl inbox, after its commit; an in_dc
                                         batch -> the conn inbox (crepl's)
    In a cluster, args->conn_inbox is the crepl actor's inbox (tern_broker.c):
    crepl holds each COMMITTED until the partition's in-sync replicas have
    its records, then forwards it to conn; and NOTICE goes there too
    (args->notices_to_conn, on the same socket, so right behind its
    COMMITTED): crepl forwards it to route, in commit order, once the same
    rule holds, so no consumer sees a message the ISR may not have.
    With durability fsync a cluster node sends COMMITTED and NOTICE before
    it commits (tern_store_batch_apply filled the results), commits without
    flushing the meta page, flushes it (tern_store_sync), then sends the
    in_dc REPL_DONEs and SYNCED (no item) to crepl, which counts this node's
    own copy as durable only then (s_commit_shipped).
        SYNCED    (NULL)              -> the conn inbox (crepl's), per commit
*/
#include "tern_storer.h"
#include "tern_actor.h"
#include "tern_admin.h"
#include "tern_crepl.h"
#include "tern_repl.h"
#include "tern_work.h"
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_DRAIN_MAX      1024  //  inbox items taken per drain
#define S_SWEEP_MAX      10000 //  messages removed per sweep
#define S_SWEEP_AGAIN_MS 10    //  the next sweep after one that left work (tern_store_sweep_more)
#define S_DRAIN_LOCAL    1     //  a drain with publishes or topic ops (shipped via COMMITTED)
#define S_DRAIN_INBOUND  2     //  a drain with another DC's records (shipped via REPL_DONE)

typedef struct {
    tern_storer_args_t *args;  //  borrowed
    void *inbox;               //  PULL
    void *to_conn;             //  PUSH
    void *to_route;            //  PUSH
    zsock_t *inbox_sock;       //  czmq owners of the above
    zsock_t *conn_sock;        //  czmq owner
    zsock_t *route_sock;       //  czmq owner
    tern_store_batch_t *batch; //  the reused write batch
    uint64_t rng;              //  trace id PRNG state
    uint64_t next_sweep_ms;    //  when to sweep next
    uint64_t sweep_ms;         //  sweep interval (storage/sweep_interval, default 1 s)
    //  The current drain:
    tern_committed_t *committed; //  for conn (NULL until needed)
    tern_notice_t *notice;       //  for route (NULL until needed)
    size_t appended_cap;         //  notice->appended capacity
    size_t appends;              //  appends queued in the batch
    uint64_t swept;              //  sweep result
    bool sweeping;               //  a sweep is queued
    bool stopping;               //  $TERM received: conn and route are gone
    tern_ops_t *spent;           //  op batches to free after the commit
    tern_ops_t **ship;           //  cluster: this drain's op batches in order, for crepl (borrowed)
    size_t ship_count;           //  used
    size_t ship_cap;             //  allocated
    void *to_repl;               //  PUSH to repl (NULL: no replication)
    zsock_t *repl_sock;          //  czmq owner
    tern_repl_batch_t *repl;     //  this drain's replication batches in arrival order (owned)
    tern_repl_batch_t *repl_last; //  the last of them (NULL when none)
    tern_repl_streams_t streams;  //  in-DC follower streams (allocated on first use)
    bool deferred;                //  cluster with durability fsync: flush after the results
    void *carry;                  //  the next drain's first item: a publish batch's tail past
                                  //  batch_bytes, or an item s_drain_mixes refused (owned)
    tern_work_type_t carry_type;  //  its type
    int drain_kind;        //  cluster: S_DRAIN_LOCAL or S_DRAIN_INBOUND once this drain has one
    uint64_t id_ms_stored; //  id.last_ms as of the last good commit (0: none yet)
} s_storer_t;

static uint64_t s_rand(uint64_t *state) {
    //  splitmix64: fast, good enough for trace ids (not security).
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

//  Fills a W3C traceparent "00-<32 hex>-<16 hex>-01" from *STATE (a PRNG
//  state the caller keeps) into OUT (TERN_TRACE_MAX + 1 bytes).
static void s_trace_generate(uint64_t *state, char *out) {
    uint64_t a = s_rand(state), b = s_rand(state), c = s_rand(state);
    if ((a | b) == 0) {
        a = 1; //  an all-zero trace id is invalid in W3C
    }
    if (c == 0) {
        c = 1;
    }
    //  "00-<32 hex>-<16 hex>-01" without snprintf: formatting it was ~2k of the
    //  ~23k instructions the storer spends per publish (callgrind, docs/performance.md).
    static const char hex[] = "0123456789abcdef";
    const uint64_t words[3] = {a, b, c};
    char *p = out;
    *p++ = '0';
    *p++ = '0';
    *p++ = '-';
    for (int w = 0; w < 3; w++) {
        if (w == 2) {
            *p++ = '-';
        }
        for (int shift = 60; shift >= 0; shift -= 4) {
            *p++ = hex[(words[w] >> shift) & 0xf];
        }
    }
    memcpy(p, "-01", 4); //  with the NUL: 55 characters in all (TERN_TRACE_MAX)
}

//  The expiry time (unix ns) of a publish received at NOW_NS: from ttl_ms if
//  TERN_F_TTL is set, else from the TTL class, else 0 (never).
static uint64_t s_expire_at(const tern_config_t *config, const tern_frame_t *msg, uint64_t now_ns) {
    uint64_t ttl_ms = 0;
    if ((msg->fields & TERN_F_TTL) && msg->ttl_ms > 0) {
        ttl_ms = msg->ttl_ms;
    } else if (msg->ttl_class == TERN_TTL_INSTANT) {
        ttl_ms = config->ttl_instant_ms;
    } else if (msg->ttl_class == TERN_TTL_BUSINESS) {
        ttl_ms = config->ttl_business_ms;
    } else if (msg->ttl_class == TERN_TTL_SYNC) {
        ttl_ms = config->ttl_sync_ms;
    }
    return ttl_ms ? now_ns + ttl_ms * 1000000ull : 0;
}

static tern_notice_t *s_notice(s_storer_t *self) {
    if (!self->notice) {
        self->notice = tern_alloc(sizeof(tern_notice_t));
        self->appended_cap = 0;
    }
    return self->notice;
}

static tern_committed_t *s_committed(s_storer_t *self) {
    if (!self->committed) {
        self->committed = tern_alloc(sizeof(tern_committed_t));
    }
    return self->committed;
}

static void s_queue_pubs(s_storer_t *self, tern_pubs_t *pubs) {
    const tern_config_t *config = self->args->config;
    uint64_t now_ns = tern_now_ns();
    for (size_t i = 0; i < pubs->count; i++) {
        tern_pub_t *pub = pubs->items[i];
        tern_frame_t *msg = &pub->frame;
        memset(&pub->result, 0, sizeof pub->result);
        uint64_t id = 0;
        tern_err_t rc = tern_id_next(self->args->ids, &id);
        if (rc != TERN_OK) {
            pub->result.err = rc;
            continue;
        }
        msg->msg_id = id;
        msg->timestamp_ns = now_ns;
        msg->expire_at_ns = s_expire_at(config, msg, now_ns);
        if (msg->expire_at_ns) {
            msg->fields |= TERN_F_EXPIRE;
        }
        size_t dc_len = strnlen(config->dc, sizeof msg->origin - 1);
        memcpy(msg->origin, config->dc, dc_len);
        msg->origin[dc_len] = 0;
        msg->fields |= TERN_F_ORIGIN;
        if (!(msg->fields & TERN_F_TRACE) || msg->trace_id[0] == 0) {
            s_trace_generate(&self->rng, msg->trace_id);
            msg->fields |= TERN_F_TRACE;
        }
        tern_store_batch_append(self->batch, msg, true, &pub->result);
        self->appends++;
    }
    //  Keep arrival order (conn answers in that order): append at the tail.
    tern_committed_t *committed = s_committed(self);
    pubs->next = NULL;
    tern_pubs_t **tail = &committed->pubs;
    while (*tail) {
        tail = &(*tail)->next;
    }
    *tail = pubs;
}

static void s_queue_admin(s_storer_t *self, tern_admin_t *admin) {
    admin->err = TERN_OK;
    admin->count = 0;
    switch (admin->op) {
        case TERN_ADMIN_TOPIC_CREATE:
        case TERN_ADMIN_TOPIC_EDIT: {
            bool create = admin->op == TERN_ADMIN_TOPIC_CREATE;
            tern_topic_limits_t limits = {admin->max_age_ms, admin->max_msgs, admin->max_bytes};
            tern_store_batch_topic_put(self->batch, admin->topic,
                                       create ? TERN_TOPIC_CREATE : TERN_TOPIC_EDIT, &limits,
                                       &admin->err, create ? &admin->topic_id : NULL);
            break;
        }
        case TERN_ADMIN_TOPIC_DELETE:
        case TERN_ADMIN_TOPIC_PURGE:
            tern_store_batch_topic_delete(self->batch, admin->topic,
                                          admin->op == TERN_ADMIN_TOPIC_PURGE, &admin->err,
                                          &admin->count);
            break;
        default: //  not a storer op (tern_admin.c's table says who answers)
            admin->err = TERN_EINVAL;
            break;
    }
    tern_committed_t *committed = s_committed(self);
    //  crepl ships it to the followers between the same publishes.
    admin->pubs_before = 0;
    for (tern_pubs_t *pubs = committed->pubs; pubs; pubs = pubs->next) {
        admin->pubs_before += pubs->count;
    }
    admin->next = committed->admins;
    committed->admins = admin;
}

//  Adds one admin op on a group (replay, seek, reset, drop, purge) to the
//  batch; its result lands in op->err and op->count after the commit.
static void s_batch_admin_op(s_storer_t *self, tern_op_t *op) {
    switch (op->type) {
        case TERN_OP_REPLAY:
            //  One entry (seq) reports a missing one in op->err, counted 1 when
            //  TERN_OK; the whole DLQ (seq 0) counts what moved.
            tern_store_batch_dlq_replay(self->batch, op->topic_id, op->group, op->seq, op->due_ms,
                                        op->seq ? &op->err : NULL, op->seq ? NULL : &op->count);
            if (op->seq) {
                op->count = 1;
            }
            break;
        case TERN_OP_SEEK:
            tern_store_batch_group_seek(self->batch, op->topic_id, op->group,
                                        (tern_start_t)op->start, op->start_value, &op->err,
                                        &op->start_seq);
            break;
        case TERN_OP_RESET: //  the state goes, then the group is opened afresh
            tern_store_batch_group_delete(self->batch, op->topic_id, op->group, NULL);
            tern_store_batch_group_open(self->batch, op->topic_id, op->group,
                                        (tern_start_t)op->start, op->start_value, &op->err,
                                        &op->start_seq);
            break;
        case TERN_OP_DROP:
            tern_store_batch_group_delete(self->batch, op->topic_id, op->group, &op->err);
            break;
        case TERN_OP_PURGE:
            tern_store_batch_dlq_purge(self->batch, op->topic_id, op->group, &op->err, &op->count);
            break;
        default:
            op->err = TERN_EINVAL;
            break;
    }
}

//  Adds OP to the batch: delivery state (open, deliver, ack, nack, dead),
//  the rest through s_batch_admin_op.
static void s_batch_op(s_storer_t *self, tern_op_t *op) {
    switch (op->type) {
        case TERN_OP_OPEN:
            tern_store_batch_group_open(self->batch, op->topic_id, op->group,
                                        (tern_start_t)op->start, op->start_value, &op->err,
                                        &op->start_seq);
            break;
        case TERN_OP_DELIVER: {
            //  op->consumer names the consumer, for the message's history.
            tern_delivery_t delivery = {op->priority, op->delivery_count, op->due_ms, op->consumer};
            tern_store_batch_deliver(self->batch, op->topic_id, op->group, op->seq, &delivery);
            break;
        }
        case TERN_OP_ACK:
            tern_store_batch_ack(self->batch, op->topic_id, op->group, op->seq,
                                 op->cause == TERN_CAUSE_EXPIRED ? TERN_TRACE_EXPIRED
                                                                 : TERN_TRACE_ACKED);
            if (self->to_repl) { //  ack state travels to the peer DCs by msg_id
                tern_store_batch_ackstate(self->batch, op->topic_id, op->group, op->seq, 0,
                                          TERN_CMD_ACK, &op->ob);
            }
            break;
        case TERN_OP_NACK:
            tern_store_batch_nack(self->batch, op->topic_id, op->group, op->seq, op->due_ms,
                                  op->cause == TERN_CAUSE_ACK_WAIT ? TERN_TRACE_TIMEOUT
                                                                   : TERN_TRACE_NACKED);
            break;
        case TERN_OP_DEAD:
            tern_store_batch_dead(self->batch, op->topic_id, op->group, op->seq, op->delivery_count,
                                  op->reason ? op->reason : "");
            if (self->to_repl) {
                tern_store_batch_ackstate(self->batch, op->topic_id, op->group, op->seq, 0,
                                          TERN_CMD_TERM, &op->ob);
            }
            break;
        default:
            s_batch_admin_op(self, op);
            break;
    }
}

//  A cluster: route's ops of a partition this node no longer leads are not
//  written (their err says so; admin ops are answered with it). OPEN is
//  kept: route would fail the group for good on an error, and a group
//  opened here late is at worst one the new leader lacks, pruned by the
//  next snapshot. Route made them before it saw the view change; were they committed now,
//  after the view change, they could land after the SYNC snapshot our
//  follower side applies from the new leader and diverge from it for good.
//  The view is the one crepl acts on, so an op checked here as led commits
//  in this drain, before any catch-up batch the storer takes later (whose
//  snapshot then replaces it). The window that remains: an op checked just
//  before the view changes commits just after it, so before that snapshot.
static void s_fence(s_storer_t *self, tern_ops_t *ops) {
    uint32_t last = UINT32_MAX, me = tern_cluster_self(self->args->cluster);
    bool led = false;
    for (size_t i = 0; i < ops->count; i++) {
        tern_op_t *op = &ops->items[i];
        if (op->partition != last) {
            tern_partmap_record_t rec;
            last = op->partition;
            led = tern_cluster_record(self->args->cluster, last, &rec) && rec.leader == me;
        }
        if (!led && op->type != TERN_OP_OPEN) {
            op->err = TERN_ENOTLEADER;
        }
    }
}

//  Adds route's OPS to the batch; they come back to route in a notice if it
//  waits on a result, else they are freed after the commit.
static void s_queue_ops(s_storer_t *self, tern_ops_t *ops) {
    if (self->args->cluster) {
        s_fence(self, ops);
    }
    for (size_t i = 0; i < ops->count; i++) {
        if (ops->items[i].err != TERN_ENOTLEADER) {
            s_batch_op(self, &ops->items[i]);
        }
    }
    if (self->args->notices_to_conn) {
        //  A cluster: after the commit crepl ships them to the followers
        //  (s_ship_ops), in this order.
        if (self->ship_count == self->ship_cap) {
            self->ship_cap = self->ship_cap ? self->ship_cap * 2 : 16;
            self->ship = tern_realloc(self->ship, self->ship_cap * sizeof *self->ship);
        }
        self->ship[self->ship_count++] = ops;
    }
    bool answer = false; //  route needs results only for OPEN and admin ops
    for (size_t i = 0; i < ops->count && !answer; i++) {
        answer = ops->items[i].type == TERN_OP_OPEN || ops->items[i].ctx != NULL;
    }
    if (!answer) {
        //  Borrowed by the batch until the commit, then freed here.
        ops->next = self->spent;
        self->spent = ops;
        return;
    }
    tern_notice_t *notice = s_notice(self);
    //  Keep route's order: append at the tail.
    ops->next = NULL;
    tern_ops_t **tail = &notice->ops;
    while (*tail) {
        tail = &(*tail)->next;
    }
    *tail = ops;
}

//  A cluster, after the commit: the committed group ops, in route's order,
//  go to crepl in the commit's NOTICE (tern_crepl_group.c ships them to
//  the followers of the partitions this node leads).
static void s_ship_ops(s_storer_t *self, tern_err_t commit_rc) {
    for (size_t i = 0; i < self->ship_count && commit_rc == TERN_OK; i++) {
        tern_crepl_group_collect(s_notice(self), self->ship[i]);
    }
    self->ship_count = 0;
}

//  The commit's outbox marks into its NOTICE: crepl sends them to repl as
//  OBSAFE once the ISR has this commit (a commit without a NOTICE holds
//  only a follower's copies). After s_ship_ops: a commit of group acks
//  only (ack-state entries) has a NOTICE only for its group ops.
static void s_obmarks(s_storer_t *self, tern_err_t commit_rc) {
    size_t nmarks = 0;
    const tern_outbox_mark_t *marks = tern_store_batch_outbox_marks(self->batch, &nmarks);
    if (commit_rc == TERN_OK && nmarks && self->args->cluster && self->notice) {
        tern_notice_t *notice = self->notice;
        notice->obmarks = tern_alloc(nmarks * sizeof *marks);
        memcpy(notice->obmarks, marks, nmarks * sizeof *marks);
        notice->obmark_count = nmarks;
    }
}

//  Metrics and the verbose log line of one publish after the commit.
static void s_observe_pub(s_storer_t *self, tern_pub_t *pub, uint64_t now_ns) {
    tern_metrics_t *metrics = self->args->metrics;
    const tern_frame_t *msg = &pub->frame;
    const tern_append_result_t *res = &pub->result;
    if (res->err == TERN_EFULL) {
        atomic_store(&metrics->storage_full, 1);
    }
    if (res->err != TERN_OK) {
        if (self->args->config->verbose) {
            zsys_info("storer: refused %s (%s) trace %s", msg->topic, tern_errname(res->err),
                      msg->trace_id);
        }
        return;
    }
    atomic_store(&metrics->storage_full, 0);
    tern_series_add(metrics->series, msg->topic, NULL,
                    res->duplicate ? TERN_SC_DUPLICATES : TERN_SC_PUBLISHED, 1);
    if (!res->duplicate && now_ns > msg->timestamp_ns) {
        tern_histo_observe(&metrics->durable_latency, now_ns - msg->timestamp_ns);
    }
    if (self->args->config->verbose) {
        zsys_info("storer: %s %s seq %" PRIu64 " msg %" PRIu64 " trace %s (producer %s/%" PRIu64
                  ")",
                  res->duplicate ? "duplicate" : "stored", msg->topic, res->seq, res->msg_id,
                  msg->trace_id, msg->producer[0] ? msg->producer : "-", msg->producer_seq);
    }
}

//  After the commit: tells route about a message appended as RES, unless
//  route said nothing listens on its topic (tern_quiet.h); then no NOTICE
//  at all when the commit has nothing else for route.
static void s_notice_append(s_storer_t *self, const tern_append_result_t *res, uint8_t priority) {
    if (self->args->quiet && tern_quiet_get(self->args->quiet, res->topic_id)) {
        return;
    }
    tern_notice_t *notice = s_notice(self);
    if (notice->appended_count == self->appended_cap) {
        self->appended_cap = self->appended_cap ? self->appended_cap * 2 : 256;
        notice->appended =
            tern_realloc(notice->appended, self->appended_cap * sizeof(tern_appended_t));
    }
    tern_appended_t *ap = &notice->appended[notice->appended_count++];
    ap->topic_id = res->topic_id;
    ap->seq = res->seq;
    ap->priority = priority;
}

//  After the commit: fill the notice from the results, update counters.
static void s_collect(s_storer_t *self, tern_err_t commit_rc) {
    tern_metrics_t *metrics = self->args->metrics;
    uint64_t now_ns = tern_now_ns();
    if (self->args->quiet) {
        tern_quiet_fence(); //  the commit before the flags (tern_quiet.h)
    }
    if (self->committed) {
        for (tern_pubs_t *pubs = self->committed->pubs; pubs; pubs = pubs->next) {
            for (size_t i = 0; i < pubs->count; i++) {
                tern_append_result_t *res = &pubs->items[i]->result;
                if (commit_rc != TERN_OK && res->err == TERN_OK) {
                    res->err = commit_rc;
                }
                s_observe_pub(self, pubs->items[i], now_ns);
                if (res->err != TERN_OK) {
                    tern_metrics_add(metrics->publish_errors, 1);
                } else if (res->duplicate) {
                    tern_metrics_add(metrics->duplicates, 1);
                } else {
                    tern_metrics_add(metrics->published, 1);
                    s_notice_append(self, res, pubs->items[i]->frame.priority);
                }
            }
        }
        for (tern_admin_t *admin = self->committed->admins; admin; admin = admin->next) {
            if (commit_rc != TERN_OK && admin->err == TERN_OK) {
                admin->err = commit_rc;
            }
            if (admin->err == TERN_OK && admin->op == TERN_ADMIN_TOPIC_CREATE) {
                //  Route learns the topic now, not at its first publish: groups
                //  subscribed to it open at once (issue 4).
                tern_notice_t *notice = s_notice(self);
                notice->created =
                    tern_realloc(notice->created, (notice->created_count + 1) * sizeof(uint32_t));
                notice->created[notice->created_count++] = admin->topic_id;
            } else if (admin->err == TERN_OK && admin->op != TERN_ADMIN_TOPIC_EDIT) {
                //  Route must forget the topic's groups (delete) or its cursors
                //  now point at nothing (purge); it is told by topic id.
                tern_notice_t *notice = s_notice(self);
                notice->gone = tern_realloc(notice->gone,
                                            (notice->gone_count + 1) * sizeof(tern_topic_gone_t));
                tern_topic_gone_t *gone = &notice->gone[notice->gone_count++];
                atomic_store(&metrics->storage_full, 0); //  space was freed
                snprintf(gone->name, sizeof gone->name, "%s", admin->topic);
                gone->purge = admin->op == TERN_ADMIN_TOPIC_PURGE;
            }
        }
    }
    if (self->notice) {
        for (tern_ops_t *ops = self->notice->ops; ops; ops = ops->next) {
            for (size_t i = 0; i < ops->count; i++) {
                if (commit_rc != TERN_OK && ops->items[i].err == TERN_OK) {
                    ops->items[i].err = commit_rc;
                }
            }
        }
    }
    if (self->sweeping && commit_rc == TERN_OK && self->swept) {
        tern_metrics_add(metrics->expired, self->swept);
    }
}

//  Hands COMMITTED to conn and NOTICE to route (either may be NULL); frees
//  them when the peer is gone or we are stopping.
static void s_deliver_results(s_storer_t *self, tern_committed_t *committed,
                              tern_notice_t *notice) {
    if (committed &&
        (self->stopping || tern_work_send(self->to_conn, TERN_WORK_COMMITTED, committed) != 0)) {
        tern_committed_destroy(&committed);
    }
    if (notice &&
        (self->stopping || tern_work_send(self->to_route, TERN_WORK_NOTICE, notice) != 0)) {
        tern_notice_destroy(&notice);
    }
}

//  Sends this commit's results. (Measured: holding them until the NEXT
//  commit, which would make durability=batch as safe as fsync, was no faster
//  than fsync on the reference box, and slower for one producer: the ack waits
//  one more commit. So batch keeps its documented meaning: acknowledged after
//  a commit whose meta page is flushed later.)
static void s_send_results(s_storer_t *self) {
    s_deliver_results(self, self->committed, self->notice);
    self->committed = NULL;
    self->notice = NULL;
}

//  Replicated records (repl actor): appended with local = false, with the
//  inbound cursors that cover them, in this drain's one transaction.
static void s_queue_repl(s_storer_t *self, tern_repl_batch_t *batch) {
    uint32_t partitions = self->args->config->partitions;
    if (batch->in_dc && !self->streams.pts && partitions > 0) {
        self->streams.pts = tern_alloc(partitions * sizeof *self->streams.pts);
        self->streams.count = partitions;
    }
    tern_repl_batch_queue(batch, self->batch, &self->streams);
    self->appends += batch->count;
    //  In arrival order: crepl confirms a follower's batches (REPL_DONE) as
    //  they come back, and a later batch confirmed before an earlier failed
    //  one would report positions (or a CAUGHT) past a gap.
    if (self->repl_last) {
        self->repl_last->next = batch;
    } else {
        self->repl = batch;
    }
    self->repl_last = batch;
}

//  Tells route that a peer DC changed GROUP of TOPIC (once per notice).
static void s_reload_group(s_storer_t *self, const char *topic, const char *group) {
    tern_notice_t *notice = s_notice(self);
    for (size_t i = 0; i < notice->reload_count; i++) {
        if (streq(notice->reload[i].topic, topic) && streq(notice->reload[i].group, group)) {
            return;
        }
    }
    notice->reload =
        tern_realloc(notice->reload, (notice->reload_count + 1) * sizeof(tern_group_ref_t));
    tern_group_ref_t *ref = &notice->reload[notice->reload_count++];
    snprintf(ref->topic, sizeof ref->topic, "%s", topic);
    snprintf(ref->group, sizeof ref->group, "%s", group);
}

//  After the commit: new remote messages go to route like local ones; the
//  batches go back to repl, which confirms to the origins.
static void s_collect_repl(s_storer_t *self, tern_err_t commit_rc) {
    self->repl_last = NULL;
    while (self->repl) {
        tern_repl_batch_t *batch = self->repl;
        self->repl = batch->next;
        batch->next = NULL;
        batch->err = commit_rc;
        if (batch->in_dc) {
            tern_repl_streams_done(&self->streams, batch);
            //  A follower's copy of its leader's log: route is not told (a
            //  follower never delivers), and crepl (behind the conn inbox in
            //  a cluster) confirms the positions to the leader.
            if (self->stopping || tern_work_send(self->to_conn, TERN_WORK_REPL_DONE, batch) != 0) {
                tern_repl_batch_destroy(&batch);
            }
            continue;
        }
        for (size_t i = 0; i < batch->count && commit_rc == TERN_OK; i++) {
            tern_repl_rec_t *rec = batch->recs[i];
            if (rec->frame.cmd == TERN_CMD_REPL_ACKSTATE) {
                s_reload_group(self, rec->frame.topic, rec->frame.group);
                if (self->args->cluster) {
                    //  To the followers like a local ack (tern_crepl_group.c).
                    tern_crepl_group_collect_ackstate(s_notice(self), rec);
                }
                continue;
            }
            if (rec->frame.cmd != TERN_CMD_REPL_RECORD || rec->result.err != TERN_OK ||
                rec->result.duplicate || rec->result.topic_id == 0) {
                continue;
            }
            s_notice_append(self, &rec->result, rec->frame.priority);
        }
        //  In a cluster crepl ships the new records to the followers and
        //  gives the batch to repl once the ISR has them (tern_crepl_inbound.c).
        void *to = self->args->cluster ? self->to_conn : self->to_repl;
        if (self->stopping || !to || tern_work_send(to, TERN_WORK_REPL_DONE, batch) != 0) {
            tern_repl_batch_destroy(&batch);
        }
    }
}

//  The commit's results into its COMMITTED and NOTICE (s_send_results
//  sends them): the publishes' outcomes, route's ops, the outbox marks.
static void s_fill_results(s_storer_t *self, tern_err_t commit_rc) {
    s_collect(self, commit_rc);
    s_ship_ops(self, commit_rc);
    s_obmarks(self, commit_rc);
}

//  A cluster node's commit with durability fsync. Its results go to crepl
//  BEFORE the commit: tern_store_batch_apply assigns every seq, msg_id and
//  dedup result inside the open transaction, COMMITTED and NOTICE go to
//  crepl, which ships the records to the followers at once, and only then
//  does the transaction commit (data pages flushed, meta page written:
//  tern_store_defer_sync) and its meta page get flushed. So the followers'
//  commits run alongside ours instead of after it (shipping after the
//  commit made every publish wait for the leader's commit and then the
//  followers', which also halved the batches: docs/performance.md,
//  "Cluster"). The ack rule is unchanged: crepl counts this node's own copy
//  durable only at TERN_WORK_SYNCED, sent after the flush, and releases the
//  NOTICE (route's view of the commit) and ships its group ops only then;
//  a follower's batches are confirmed (REPL_DONE) only after it too.
//
//  A commit that fails after its records were shipped would leave the
//  followers with records this leader lacks, and our next commit would
//  assign the same seqs to other messages: the followers would refuse them
//  (TERN_ESTATE) and a failover could pick either history. Nothing of it
//  was acknowledged (that waits for SYNCED), so the node exits: its lease
//  lapses, an in-sync follower (which may hold the shipped records, never
//  acknowledged: at-least-once) leads, and this node comes back as a
//  follower that truncates to the new leader's log. Fencing the partitions
//  without exiting would need the view to change before our next commit,
//  which the storer cannot wait for. The same holds for a failed flush.
//  A drain without publishes or topic ops (a follower's batches, route's
//  ops, a sweep) ships nothing from here (group ops go at SYNCED), so its
//  results go after the commit, which may then fail as on a single node.
//  Returns the batch's outcome.
static tern_err_t s_commit_shipped(s_storer_t *self) {
    tern_err_t rc = tern_store_batch_apply(self->batch);
    bool ship = rc == TERN_OK && self->committed;
    if (ship) {
        s_fill_results(self, rc); //  st_ob_marks read the marks at apply
        s_send_results(self);
    }
    tern_err_t commit_rc = tern_store_batch_commit(self->batch);
    if (commit_rc != TERN_OK && ship) {
        zsys_error("storer: commit failed after its records were shipped (%s); aborting",
                   tern_strerror(commit_rc));
        abort();
    }
    rc = rc != TERN_OK ? rc : commit_rc;
    if (rc != TERN_OK) {
        zsys_error("storer: commit failed: %s", tern_strerror(rc));
    }
    tern_metrics_add(self->args->metrics->commits, 1);
    if (!ship) {
        s_fill_results(self, rc);
        s_send_results(self);
    }
    if (tern_store_sync(self->args->store) != TERN_OK) {
        //  After a failed flush the kernel may have dropped the pages it could
        //  not write, and a later flush would not say so: nothing written
        //  since the last good one can be trusted. Nothing of it was
        //  acknowledged; the node restarts as a follower and syncs.
        zsys_error("storer: flushing the store to disk failed; aborting");
        abort();
    }
    s_collect_repl(self, rc);
    if (!self->stopping) {
        tern_work_send(self->to_conn, TERN_WORK_SYNCED, NULL);
    }
    return rc;
}

//  What a publish adds to the batch besides its payload (record header,
//  queue entry, index and dedup entries), for splitting a publish batch.
#define S_PUB_BYTES 512

static uint64_t s_batch_bytes(s_storer_t *self) {
    uint64_t bytes = self->args->config->batch_bytes;
    return bytes ? bytes : 16u << 20;
}

//  True while the batch may take another inbox item: fewer than batch_max
//  appends and fewer than batch_bytes bytes. The bytes bound the write
//  transaction's dirty pages (LMDB mallocs each one and keeps them for the
//  next transactions): 4096 records of 64 KB, or one drain of route's ops
//  under fan-out, would otherwise make a transaction of hundreds of MB.
//  Other items are never split, so a batch closes at the first item past
//  the bound; a publish batch is split (s_take_pubs).
static bool s_batch_open(s_storer_t *self) {
    uint32_t batch_max = self->args->config->batch_max ? self->args->config->batch_max : 4096;
    return self->appends < batch_max && tern_store_batch_bytes(self->batch) < s_batch_bytes(self);
}

//  Queues PUBS, or as many of its publishes (at least one) as batch_bytes
//  leaves room for: conn's drain can hold 1024 publishes of up to 1 MB. The
//  rest moves to a new batch in self->carry, taken first by the next drain,
//  so publishes still commit (and are answered) in arrival order.
static void s_take_pubs(s_storer_t *self, tern_pubs_t *pubs) {
    uint64_t room = s_batch_bytes(self) - tern_store_batch_bytes(self->batch);
    uint64_t bytes = 0;
    size_t n = 0;
    while (n < pubs->count && (n == 0 || bytes < room)) {
        bytes += pubs->items[n++]->frame.payload_size + S_PUB_BYTES;
    }
    if (n < pubs->count) {
        tern_pubs_t *tail = tern_alloc(sizeof *tail);
        tail->count = tail->cap = pubs->count - n;
        tail->items = tern_realloc(NULL, tail->cap * sizeof(tern_pub_t *));
        memcpy(tail->items, pubs->items + n, tail->count * sizeof(tern_pub_t *));
        pubs->count = n; //  the tail's publishes are owned by TAIL now
        self->carry = tail;
        self->carry_type = TERN_WORK_PUBS;
    }
    s_queue_pubs(self, pubs);
}

//  True when the item (TYPE, PTR) may not join this drain, which then ends
//  (the item starts the next one). In a cluster crepl ships a drain's
//  publishes and topic ops (COMMITTED) and its inbound records from another
//  DC (REPL_DONE) to the followers separately, one after the other, each at
//  the next positions: with both in one drain, a topic's records reached
//  the followers out of seq order (a local seq past an inbound one shipped
//  first), and a follower's append of the lower seq failed (TERN_ESTATE,
//  s_replica_held) and left a hole the catch-up did not see (drill
//  dc_cut_off, docs/replication.md). So a drain holds one kind or the other.
static bool s_drain_mixes(s_storer_t *self, tern_work_type_t type, void *ptr) {
    int kind = 0;
    if (type == TERN_WORK_PUBS || type == TERN_WORK_ADMIN) {
        kind = S_DRAIN_LOCAL;
    } else if (type == TERN_WORK_REPL && !((tern_repl_batch_t *)ptr)->in_dc) {
        kind = S_DRAIN_INBOUND;
    }
    if (!self->args->cluster || kind == 0) {
        return false;
    }
    if (self->drain_kind && self->drain_kind != kind) {
        return true;
    }
    self->drain_kind = kind;
    return false;
}

//  Drains up to S_DRAIN_MAX items (while s_batch_open), commits once,
//  sends the results. Returns the number of items handled.
static size_t s_drain_and_commit(s_storer_t *self, bool sweep) {
    size_t handled = 0;
    self->appends = 0;
    self->swept = 0;
    self->sweeping = false;
    self->drain_kind = 0;
    while (handled < S_DRAIN_MAX && s_batch_open(self)) {
        tern_work_type_t type = self->carry_type;
        void *ptr = self->carry;
        self->carry = NULL;
        if (!ptr && tern_work_recv(self->inbox, ZMQ_DONTWAIT, &type, &ptr) != 0) {
            break;
        }
        if (s_drain_mixes(self, type, ptr)) {
            self->carry = ptr;
            self->carry_type = type;
            break;
        }
        handled++;
        if (type == TERN_WORK_PUBS) {
            s_take_pubs(self, (tern_pubs_t *)ptr);
        } else if (type == TERN_WORK_ADMIN) {
            s_queue_admin(self, (tern_admin_t *)ptr);
        } else if (type == TERN_WORK_OPS) {
            //  Taken: route may deliver more (tern_route_deliver.c).
            atomic_fetch_sub_explicit(&self->args->metrics->ops_queued,
                                      (int64_t)((tern_ops_t *)ptr)->count, memory_order_relaxed);
            s_queue_ops(self, (tern_ops_t *)ptr);
        } else if (type == TERN_WORK_REPL) {
            s_queue_repl(self, (tern_repl_batch_t *)ptr);
        } else {
            zsys_error("storer: unexpected work item type %d", (int)type);
        }
    }
    if (sweep) {
        tern_store_batch_sweep(self->batch, tern_now_ns(), S_SWEEP_MAX, &self->swept);
        self->sweeping = true;
    }
    if (tern_store_batch_size(self->batch) == 0 && !self->committed && !self->notice &&
        !self->spent && !self->repl) {
        return handled;
    }
    //  Only when it moved: a lone publish's commit touched one more page for
    //  it (~2.3 k of the storer's ~40 k instructions per sync publish, and a
    //  page write), though several such commits fall in one millisecond and
    //  route's op commits issue no id at all.
    uint64_t id_ms = tern_id_gen_last_ms(self->args->ids);
    if (id_ms != self->id_ms_stored) {
        tern_store_batch_set_u64(self->batch, "id.last_ms", id_ms);
    }
    tern_err_t rc;
    if (self->deferred) {
        rc = s_commit_shipped(self);
    } else {
        rc = tern_store_batch_commit(self->batch);
        if (rc != TERN_OK) {
            zsys_error("storer: commit failed: %s", tern_strerror(rc));
        }
        tern_metrics_add(self->args->metrics->commits, 1);
        s_fill_results(self, rc);
        s_collect_repl(self, rc);
        s_send_results(self);
    }
    if (rc == TERN_OK) {
        self->id_ms_stored = id_ms;
    }
    if (sweep && rc == TERN_OK && tern_store_sweep_more(self->args->store)) {
        //  The sweep is bounded by the pages it dirties (a deleted topic is
        //  removed in steps): the next step comes soon, not a second later.
        self->next_sweep_ms = tern_now_ms() + S_SWEEP_AGAIN_MS;
    }
    while (self->spent) {
        tern_ops_t *next = self->spent->next;
        tern_ops_destroy(&self->spent);
        self->spent = next;
    }
    return handled;
}

//  True (and the next sweep scheduled) when the TTL sweep is due.
static bool s_sweep_due(s_storer_t *self) {
    uint64_t now = tern_now_ms();
    if (now < self->next_sweep_ms) {
        return false;
    }
    self->next_sweep_ms = now + self->sweep_ms;
    return true;
}

//  Loop hooks (tern_actor.h). The inbox is drained until empty, each round
//  one commit (the first one carries the sweep when due); without inbox
//  items a due sweep commits alone.
static void s_on_inbox(void *arg, void *unused) {
    (void)unused;
    s_storer_t *self = (s_storer_t *)arg;
    bool sweep = s_sweep_due(self);
    while (s_drain_and_commit(self, sweep) > 0) {
        sweep = false;
    }
}

static long s_prepare(tern_loop_t *loop, void *arg) {
    (void)loop;
    s_storer_t *self = (s_storer_t *)arg;
    return tern_loop_wait_until(self->next_sweep_ms);
}

static void s_after(void *arg) {
    s_storer_t *self = (s_storer_t *)arg;
    if (s_sweep_due(self)) {
        s_drain_and_commit(self, true);
    }
    //  A drain that split a publish batch left its tail in carry, and no
    //  inbox event comes for it: without this it waited for the next sweep.
    while (self->carry && s_drain_and_commit(self, false) > 0) {
    }
}

void tern_storer_actor(zsock_t *pipe, void *arg) {
    tern_thread_name("ternd-storer");
    s_storer_t self_s, *self = &self_s;
    memset(self, 0, sizeof *self);
    self->args = (tern_storer_args_t *)arg;
    self->rng = tern_now_ns() ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)self;
    self->inbox = tern_work_pull_bind(&self->inbox_sock, self->args->inbox);
    if (!self->inbox) {
        goto fail;
    }
    self->to_conn = tern_work_push_connect(&self->conn_sock, self->args->conn_inbox);
    //  In a cluster crepl sees each commit's NOTICE right after its COMMITTED
    //  (one socket keeps the order) and hands it to route once the in-sync
    //  replicas have its messages (tern_crepl_notice.c).
    self->to_route = self->args->notices_to_conn
                         ? self->to_conn
                         : tern_work_push_connect(&self->route_sock, self->args->route_inbox);
    self->batch = tern_store_batch_new(self->args->store);
    self->deferred = self->args->deferred;
    if (self->deferred && tern_store_defer_sync(self->args->store, true) != TERN_OK) {
        zsys_warning("storer: cannot defer the flush; commits flush (and are flushed again)");
    }
    if (self->args->repl_inbox[0]) {
        self->to_repl = tern_work_push_connect(&self->repl_sock, self->args->repl_inbox);
        if (!self->to_repl) {
            goto fail;
        }
    }
    if (!self->to_conn || !self->to_route || !self->batch) {
        goto fail;
    }
    self->sweep_ms =
        self->args->config->sweep_interval_ms ? self->args->config->sweep_interval_ms : 1000;
    self->next_sweep_ms = tern_now_ms() + self->sweep_ms;
    zsock_signal(pipe, 0);

    tern_loop_t loop;
    tern_loop_init(&loop, pipe, self, s_prepare, s_after);
    tern_loop_reader(&loop, self->inbox, s_on_inbox, NULL);
    tern_loop_run(&loop);
    //  Flush: whatever is still queued is committed before we leave.
    self->stopping = true;
    while (s_drain_and_commit(self, false) > 0) {
    }
    free(self->streams.pts);
    free(self->ship);
    tern_store_batch_destroy(&self->batch);
    zsock_destroy(&self->inbox_sock);
    zsock_destroy(&self->conn_sock);
    zsock_destroy(&self->route_sock);
    zsock_destroy(&self->repl_sock);
    return;

fail:
    zsys_error("storer: cannot start (endpoint %s)", self->args->inbox);
    tern_store_batch_destroy(&self->batch);
    zsock_destroy(&self->inbox_sock);
    zsock_destroy(&self->conn_sock);
    zsock_destroy(&self->route_sock);
    zsock_destroy(&self->repl_sock);
    tern_actor_fail(pipe);
}
