/*  tern_cluster_ctl.c - the cluster's writes: controller, ISR, handover.

    Every write of a partition record is a compare-and-swap: on its key's
    create_revision == 0 (a new record) or on the mod_revision the view
    holds. A CAS that fails means someone else wrote first: the key is read
    again and the decision is taken again on the next pass. Every write
    carries `ver=V`, above every ver etcd or the view held for the key
    (tern_cluster_next_ver, its low bits the writer's node id), and
    `epoch=`: V when the leader changes, else the epoch kept. So epochs
    never go back, not even when etcd does (restored from a backup:
    tern_cluster_restore.c).

    The controller (the node holding the lease-bound PREFIX/controller key)
    runs a pass when it becomes controller, on every node up/down, and once
    a lease otherwise (for cluster/replace_after and the start-up wait):
    - a partition without a record waits until cluster/replicas nodes are
      live, or 3 leases have passed since this node became controller; then
      it is created with replicas by tern_placement over the live nodes,
      leader = the first, ISR = all of them;
    - an existing record gets tern_partmap_failover over the live nodes;
    - replicas are added (fewer than cluster/replicas while other live nodes
      exist) or replaced (down longer than cluster/replace_after, and not in
      the ISR) by placement; new replicas are outside the ISR until their
      leader adds them (it has seen them catch up).
*/
#include "tern_cluster_priv.h"
#include "tern_id.h"
#include <czmq.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

//  Most records created by one transaction (etcd allows 128 ops).
#define S_CREATE_BATCH 32

//  The view takes a record we wrote at REVISION (the watch brings it again
//  later; the mod_revision check ignores that).
static void s_adopt(tern_cluster_t *self, const tern_partmap_record_t *rec, int64_t revision) {
    pthread_mutex_lock(&self->lock);
    bool newer = revision > self->mod_revision[rec->partition];
    if (newer) {
        tern_partmap_record_t *view = &self->records[rec->partition];
        *view = *rec;
        view->ver = view->ver ? view->ver : (uint64_t)revision;
        self->mod_revision[rec->partition] = revision;
        self->etcd_ver[rec->partition] = view->ver;
        self->etcd_epoch[rec->partition] = view->epoch;
        self->view_dirty = true;
    }
    pthread_mutex_unlock(&self->lock);
    if (newer) {
        atomic_fetch_add(&self->version, 1);
    }
}

static void s_record_key(tern_cluster_t *self, uint32_t partition, char *buf, size_t len) {
    tern_cluster_key(self, buf, len, "partitions", (long)partition);
}

bool tern_cluster_cas_record(tern_cluster_t *self, const tern_partmap_record_t *rec,
                             bool new_epoch) {
    tern_partmap_record_t next = *rec;
    next.ver = tern_cluster_next_ver(self, rec);
    next.epoch = new_epoch ? next.ver : rec->epoch;
    return tern_cluster_cas_write(self, &next);
}

bool tern_cluster_cas_write(tern_cluster_t *self, const tern_partmap_record_t *rec) {
    char key[TERN_CLUSTER_KEY_MAX];
    s_record_key(self, rec->partition, key, sizeof key);
    char value[TERN_PARTMAP_TEXT_MAX];
    if (tern_partmap_record_encode(rec, value, sizeof value) != TERN_OK) {
        return false; //  the rules never make one that breaks an invariant
    }
    tern_etcd_compare_t cmp = {
        .key = key, .target = TERN_ETCD_MOD, .revision = self->mod_revision[rec->partition]};
    tern_etcd_op_t op = {.key = key, .value = value, .value_size = strlen(value)};
    bool done = false;
    int64_t revision = 0;
    tern_err_t rc = tern_etcd_txn(self->etcd, &cmp, 1, &op, 1, &done, &revision);
    if (rc == TERN_OK && done) {
        s_adopt(self, rec, revision);
        return true;
    }
    if (rc != TERN_OK) {
        zsys_warning("cluster: cannot write partition %u: %s", rec->partition,
                     tern_etcd_reason(self->etcd));
    }
    tern_cluster_reread(self, key, false, NULL);
    return false;
}

//  --- Controller -----------------------------------------------------------

void tern_cluster_campaign(tern_cluster_t *self) {
    int64_t now = tern_cluster_now_ms();
    if (self->controller != TERN_NODE_NONE || self->lease == 0 || now < self->next_campaign_ms) {
        return;
    }
    self->next_campaign_ms = now + self->lease_ms / 4;
    char key[TERN_CLUSTER_KEY_MAX];
    tern_cluster_key(self, key, sizeof key, "controller", -1);
    char value[16];
    snprintf(value, sizeof value, "%u", self->self_id);
    tern_etcd_compare_t cmp = {.key = key, .target = TERN_ETCD_CREATE, .revision = 0};
    tern_etcd_op_t op = {
        .key = key, .value = value, .value_size = strlen(value), .lease = self->lease};
    bool won = false;
    int64_t revision = 0;
    tern_err_t rc = tern_etcd_txn(self->etcd, &cmp, 1, &op, 1, &won, &revision);
    if (rc != TERN_OK || !won) {
        tern_cluster_reread(self, key, false, NULL);
    } else {
        tern_etcd_kv_t kv = {
            .key = key, .value = value, .value_size = strlen(value), .mod_revision = revision};
        tern_cluster_apply_kv(self, &kv, false);
    }
}

//  When node ID went down (never seen: when we became controller).
static int64_t s_down_since(tern_cluster_t *self, uint32_t id) {
    for (size_t i = 0; i < self->nmembers; i++) {
        if (self->members[i].info.id == id) {
            return self->members[i].down_since_ms;
        }
    }
    return self->control_since_ms;
}

static bool s_in(const uint32_t *set, size_t count, uint32_t id) {
    for (size_t i = 0; i < count; i++) {
        if (set[i] == id) {
            return true;
        }
    }
    return false;
}

//  Adds or replaces NEXT's replicas (see the top). True when they changed.
static bool s_repair_replicas(tern_cluster_t *self, tern_partmap_record_t *next,
                              const uint32_t *live, size_t nlive, int64_t now) {
    uint32_t keep[TERN_PLACEMENT_REPLICAS_MAX];
    size_t nkeep = 0;
    for (uint32_t i = 0; i < next->nreplicas; i++) {
        uint32_t r = next->replicas[i];
        if (tern_partmap_in_isr(next, r) || s_in(live, nlive, r) ||
            now - s_down_since(self, r) < self->replace_after_ms) {
            keep[nkeep++] = r;
        }
    }
    size_t want =
        self->replicas < TERN_PLACEMENT_REPLICAS_MAX ? self->replicas : TERN_PLACEMENT_REPLICAS_MAX;
    if (nkeep < want) {
        uint32_t ranked[TERN_PLACEMENT_REPLICAS_MAX];
        size_t n = tern_placement_replicas(next->partition, live, nlive,
                                           TERN_PLACEMENT_REPLICAS_MAX, ranked);
        for (size_t i = 0; i < n && nkeep < want; i++) {
            if (!s_in(keep, nkeep, ranked[i])) {
                keep[nkeep++] = ranked[i];
            }
        }
    }
    if (nkeep == next->nreplicas && memcmp(keep, next->replicas, nkeep * sizeof keep[0]) == 0) {
        return false;
    }
    memset(next->replicas, 0, sizeof next->replicas);
    memcpy(next->replicas, keep, nkeep * sizeof keep[0]);
    next->nreplicas = (uint32_t)nkeep;
    return true;
}

//  After a lost CAS or an etcd error: another pass soon, not at once (etcd
//  may be down, and a pass would fail again at once).
static void s_retry_soon(tern_cluster_t *self) {
    int64_t at = tern_cluster_now_ms() + 100;
    self->next_control_ms = at < self->next_control_ms ? at : self->next_control_ms;
}

//  Creates the records of the partitions in MISSING (COUNT of them, at most
//  S_CREATE_BATCH) in one transaction, each on create_revision == 0.
static void s_create_batch(tern_cluster_t *self, const uint32_t *missing, size_t count,
                           const uint32_t *live, size_t nlive) {
    char keys[S_CREATE_BATCH][TERN_CLUSTER_KEY_MAX];
    char values[S_CREATE_BATCH][TERN_PARTMAP_TEXT_MAX];
    tern_partmap_record_t recs[S_CREATE_BATCH];
    tern_etcd_compare_t cmp[S_CREATE_BATCH];
    tern_etcd_op_t ops[S_CREATE_BATCH];
    for (size_t i = 0; i < count; i++) {
        tern_partmap_record_t *rec = &recs[i];
        memset(rec, 0, sizeof *rec);
        rec->partition = missing[i];
        rec->nreplicas = (uint32_t)tern_placement_replicas(missing[i], live, nlive, self->replicas,
                                                           rec->replicas);
        rec->leader = rec->nreplicas ? rec->replicas[0] : TERN_NODE_NONE;
        rec->nisr = rec->nreplicas;
        memcpy(rec->isr, rec->replicas, sizeof rec->isr);
        s_record_key(self, missing[i], keys[i], sizeof keys[i]);
        tern_partmap_record_encode(rec, values[i], sizeof values[i]);
        cmp[i] = (tern_etcd_compare_t){.key = keys[i], .target = TERN_ETCD_CREATE};
        ops[i] =
            (tern_etcd_op_t){.key = keys[i], .value = values[i], .value_size = strlen(values[i])};
    }
    bool done = false;
    int64_t revision = 0;
    tern_err_t rc = tern_etcd_txn(self->etcd, cmp, count, ops, count, &done, &revision);
    if (rc == TERN_OK && done) {
        for (size_t i = 0; i < count; i++) {
            recs[i].epoch = (uint64_t)revision;
            s_adopt(self, &recs[i], revision);
        }
        zsys_info("cluster: controller %u created %zu partition records", self->self_id, count);
        return;
    }
    //  Someone else created some (or the outcome is unknown): read them all.
    char prefix[TERN_CLUSTER_KEY_MAX];
    tern_cluster_key(self, prefix, sizeof prefix, "partitions/", -1);
    tern_cluster_reread(self, prefix, true, NULL);
    s_retry_soon(self);
}

//  Creates missing records once enough nodes are live (see the top).
static void s_create_missing(tern_cluster_t *self, const uint32_t *live, size_t nlive,
                             int64_t now) {
    uint32_t missing[S_CREATE_BATCH];
    size_t count = 0;
    bool waiting = nlive < self->replicas && now - self->control_since_ms < 3 * self->lease_ms;
    for (uint32_t p = 0; p < self->partitions && self->lease; p++) {
        if (self->mod_revision[p] != 0 || self->records[p].nreplicas > 0) {
            continue; //  etcd has it, or lost it and we write ours back (republish)
        }
        if (waiting) {
            //  Look again when the wait ends, if no node comes first.
            int64_t at = self->control_since_ms + 3 * self->lease_ms;
            self->next_control_ms = at < self->next_control_ms ? at : self->next_control_ms;
            return;
        }
        missing[count++] = p;
        if (count == S_CREATE_BATCH) {
            s_create_batch(self, missing, count, live, nlive);
            count = 0;
            tern_cluster_tick_keepalive(self);
        }
    }
    if (count) {
        s_create_batch(self, missing, count, live, nlive);
    }
}

//  A node id, or "none", into BUF.
static const char *s_node_name(uint32_t id, char *buf, size_t len) {
    if (id == TERN_NODE_NONE) {
        snprintf(buf, len, "none");
    } else {
        snprintf(buf, len, "%u", id);
    }
    return buf;
}

//  Failover and replica repair of every existing record.
static void s_fix_records(tern_cluster_t *self, const uint32_t *live, size_t nlive, int64_t now) {
    for (uint32_t p = 0; p < self->partitions && self->lease; p++) {
        if (self->mod_revision[p] == 0) {
            continue;
        }
        tern_partmap_record_t cur = self->records[p];
        tern_partmap_record_t next;
        bool changed = tern_partmap_failover(&cur, live, nlive, &next);
        changed = s_repair_replicas(self, &next, live, nlive, now) || changed;
        if (!changed) {
            continue;
        }
        bool new_leader = next.leader != cur.leader;
        if (tern_cluster_cas_record(self, &next, new_leader)) {
            if (new_leader) {
                atomic_fetch_add(&self->failovers, 1);
                char from[16], to[16];
                zsys_info("cluster: partition %u: leader %s -> %s (controller %u)", p,
                          s_node_name(cur.leader, from, sizeof from),
                          s_node_name(next.leader, to, sizeof to), self->self_id);
            }
        } else {
            s_retry_soon(self); //  re-read: decide again
        }
        tern_cluster_tick_keepalive(self);
    }
}

void tern_cluster_control(tern_cluster_t *self) {
    int64_t now = tern_cluster_now_ms();
    if (self->controller != self->self_id || self->lease == 0) {
        self->control_since_ms = 0;
        return;
    }
    if (!tern_cluster_lease_ok(self) || tern_cluster_holding(self)) {
        return; //  we may no longer be the controller, or etcd went back
    }
    if (self->control_since_ms == 0) {
        //  Decide on etcd as it is now, not on a watch that may lag (events
        //  older than what the read gives are then ignored).
        char prefix[TERN_CLUSTER_KEY_MAX];
        tern_cluster_key(self, prefix, sizeof prefix, "", -1);
        if (tern_cluster_reread(self, prefix, true, NULL) != TERN_OK) {
            s_retry_soon(self);
            return;
        }
        self->control_since_ms = now;
        self->control_dirty = true;
        zsys_info("cluster: node %u is the controller of cluster %s", self->self_id, self->name);
    }
    if (!self->control_dirty && now < self->next_control_ms) {
        return;
    }
    self->control_dirty = false;
    self->next_control_ms = now + self->lease_ms;
    uint32_t live[TERN_ID_NODE_MAX + 1];
    size_t nlive = tern_cluster_live(self, live);
    s_create_missing(self, live, nlive, now);
    s_fix_records(self, live, nlive, now);
}

//  --- Requests from other threads -------------------------------------------

//  One ISR write for REQ on PARTITION: only for the record this node leads
//  in the request's epoch. True when done or moot, false to try again.
static bool s_isr_write(tern_cluster_t *self, uint32_t p, const tern_cluster_req_t *req) {
    tern_partmap_record_t next = self->records[p];
    if (next.leader != self->self_id || next.epoch != req->isr_epoch) {
        return true; //  no longer ours in that epoch: moot
    }
    memcpy(next.isr, req->next.isr, sizeof next.isr);
    next.nisr = req->next.nisr;
    if (tern_partmap_record_check(&next, NULL) != TERN_OK ||
        tern_partmap_record_same(&next, &self->records[p])) {
        return true;
    }
    if (!tern_cluster_cas_record(self, &next, false)) {
        return false;
    }
    atomic_fetch_add(&self->isr_changes, 1);
    return true;
}

//  One handover of PARTITION to TO. True when done or moot.
static bool s_handover_write(tern_cluster_t *self, uint32_t p, uint32_t to) {
    uint32_t live[TERN_ID_NODE_MAX + 1];
    size_t nlive = tern_cluster_live(self, live);
    tern_partmap_record_t next = self->records[p];
    if (next.leader == to || !tern_partmap_can_lead(&next, to, live, nlive)) {
        return true;
    }
    uint32_t from = next.leader;
    next.leader = to;
    if (!tern_cluster_cas_record(self, &next, true)) {
        return false;
    }
    zsys_info("cluster: partition %u handed over from node %u to node %u", p, from, to);
    return true;
}

void tern_cluster_serve_requests(tern_cluster_t *self) {
    if (tern_cluster_holding(self)) {
        return; //  etcd went back: they stay queued (tern_cluster_restore.c)
    }
    pthread_mutex_lock(&self->lock);
    bool pending = self->reqs_pending;
    self->reqs_pending = false;
    pthread_mutex_unlock(&self->lock);
    for (uint32_t p = 0; pending && p < self->partitions; p++) {
        pthread_mutex_lock(&self->lock);
        tern_cluster_req_t req = self->reqs[p];
        self->reqs[p].isr = false;
        self->reqs[p].handover_to = TERN_NODE_NONE;
        pthread_mutex_unlock(&self->lock);
        //  A lost CAS re-read the record: decide again, a few times.
        for (int attempt = 0; req.isr && attempt < 3; attempt++) {
            if (s_isr_write(self, p, &req)) {
                break;
            }
        }
        for (int attempt = 0; req.handover_to != TERN_NODE_NONE && attempt < 3; attempt++) {
            if (s_handover_write(self, p, req.handover_to)) {
                break;
            }
        }
    }
}

size_t tern_cluster_handover_all(tern_cluster_t *self, int timeout_ms) {
    int64_t deadline = tern_cluster_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    int64_t next_ask = 0;
    uint32_t live[TERN_ID_NODE_MAX + 1];
    size_t led = 0;
    while (true) {
        size_t movable = 0;
        led = 0;
        int64_t now = tern_cluster_now_ms();
        for (uint32_t p = 0; p < self->partitions; p++) {
            tern_partmap_record_t rec;
            tern_cluster_record(self, p, &rec);
            if (rec.leader != self->self_id) {
                continue;
            }
            led++;
            pthread_mutex_lock(&self->lock);
            size_t nlive = tern_cluster_live(self, live);
            pthread_mutex_unlock(&self->lock);
            for (uint32_t i = 0; i < rec.nreplicas; i++) {
                uint32_t to = rec.replicas[i];
                if (to != self->self_id && tern_partmap_can_lead(&rec, to, live, nlive)) {
                    movable++;
                    //  Asked again now and then: a lost CAS drops a request.
                    if (now >= next_ask) {
                        tern_cluster_handover(self, p, to);
                    }
                    break;
                }
            }
        }
        if (now >= next_ask) {
            next_ask = now + 200;
        }
        //  Without an ok lease etcd is likely out of reach: do not hold up
        //  the stop for nothing (the lease's expiry fails us over anyway).
        if (movable == 0 || now >= deadline || !tern_cluster_lease_ok(self)) {
            return led;
        }
        zclock_sleep(20);
    }
}
