/*  tern_cluster_join.c - joining a cluster: lease, partitions, identity, node key.

    Join, in this order (each step can refuse; nothing about this node is
    written before the node id is known to be free):
    1. PREFIX/config/partitions: created by a txn if absent, else it must
       equal cluster/partitions;
    2. PREFIX/nodes/<id> must be absent: another live ternd with this id is
       refused. A key that carries our own identity is this data dir's
       previous run (killed less than a lease ago): we wait for it to go;
    3. PREFIX/identity/<id>: a different identity means this node's data dir
       was wiped or swapped. It may lack messages it acknowledged as an ISR
       member, so it leaves every ISR (CAS per record) before it registers:
       it can never be elected with missing data. Then our identity is
       written;
    4. a lease of cluster/lease + 1 s (whole seconds; the extra second lets
       the pollers of tern_cluster_detect.c read a lapse), granted last
       since the steps above may wait longer than its TTL;
    5. PREFIX/nodes/<id> created by a txn (create_revision == 0), bound to
       the lease. (Two ternd started with one id at the same instant can
       both pass step 2; the txn lets one register, the other exits 1.)
*/
#include "tern_cluster_priv.h"
#include "tern_id.h"
#include <czmq.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Grants a lease a second longer than cluster/lease (tern_cluster_detect.c
//  says why), sent at *SENT_P (may be NULL); lease_until starts from the
//  send time if TRUST, else the caller trusts it later (tern_cluster_renewed).
static tern_err_t s_grant(tern_cluster_t *self, bool trust, int64_t *sent_p) {
    int64_t ttl_s = tern_cluster_grant_ttl_s(self);
    int64_t sent = tern_cluster_now_ms();
    int64_t granted = 0;
    tern_err_t rc = tern_etcd_lease_grant(self->etcd, ttl_s, &self->lease, &granted);
    if (sent_p) {
        *sent_p = sent;
    }
    if (rc == TERN_OK) {
        self->ttl_ms = (granted > 0 ? granted : ttl_s) * 1000;
        if (trust) {
            tern_cluster_renewed(self, sent, tern_cluster_now_ms(), true);
        } else {
            //  As a trusted grant for the renewals that follow it.
            self->renew_sent_ms = sent;
            self->relet_due = false;
        }
    } else {
        self->lease = 0;
    }
    return rc;
}

//  Step 1: the cluster's partition count.
static bool s_partitions(tern_cluster_t *self, const tern_config_t *config, char *errbuf,
                         size_t errlen) {
    char key[TERN_CLUSTER_KEY_MAX];
    tern_cluster_key(self, key, sizeof key, "config/partitions", -1);
    char value[16];
    snprintf(value, sizeof value, "%u", config->partitions);
    tern_etcd_compare_t cmp = {.key = key, .target = TERN_ETCD_CREATE, .revision = 0};
    tern_etcd_op_t op = {.key = key, .value = value, .value_size = strlen(value)};
    bool created = false;
    tern_err_t rc = tern_etcd_txn(self->etcd, &cmp, 1, &op, 1, &created, NULL);
    tern_etcd_kvs_t *kvs = NULL;
    if (rc == TERN_OK && !created) {
        rc = tern_etcd_get(self->etcd, key, false, &kvs);
    }
    if (rc != TERN_OK) {
        snprintf(errbuf, errlen, "cannot join cluster %s: %s", self->name,
                 tern_etcd_reason(self->etcd));
        return false;
    }
    bool ok = true;
    if (kvs && kvs->count == 1 && strcmp(kvs->kvs[0].value, value) != 0) {
        snprintf(errbuf, errlen, "cluster/partitions is %u but cluster %s was created with %s",
                 config->partitions, self->name, kvs->kvs[0].value);
        ok = false;
    }
    tern_etcd_kvs_destroy(&kvs);
    if (ok) {
        tern_cluster_size(self, config->partitions);
    }
    return ok;
}

//  Step 2: no other live node with our id. A key of our own identity (our
//  previous run) is waited out: two granted TTLs and a second. Not less:
//  an etcd that restarted (or was restored from a backup) gives every
//  lease its whole TTL again, plus its election timeout, from the moment
//  its new leader is elected, and with every node down nobody revokes it
//  sooner (tern_cluster_detect.c).
static bool s_id_free(tern_cluster_t *self, char *errbuf, size_t errlen) {
    char key[TERN_CLUSTER_KEY_MAX];
    tern_cluster_key(self, key, sizeof key, "nodes", self->self_id);
    int64_t give_up = tern_cluster_now_ms() + 2 * tern_cluster_grant_ttl_s(self) * 1000 + 1000;
    bool logged = false;
    while (true) {
        tern_etcd_kvs_t *kvs = NULL;
        if (tern_etcd_get(self->etcd, key, false, &kvs) != TERN_OK) {
            snprintf(errbuf, errlen, "cannot join cluster %s: %s", self->name,
                     tern_etcd_reason(self->etcd));
            return false;
        }
        tern_cluster_node_t holder = {.id = self->self_id};
        if (kvs->count == 1) {
            tern_cluster_parse_node(kvs->kvs[0].value, &holder);
        }
        size_t count = kvs->count;
        tern_etcd_kvs_destroy(&kvs);
        if (count == 0) {
            return true;
        }
        if (strcmp(holder.identity, self->identity) != 0 || tern_cluster_now_ms() > give_up) {
            snprintf(errbuf, errlen, "node id %u is already live in cluster %s (another ternd?)",
                     self->self_id, self->name);
            return false;
        }
        if (!logged) {
            zsys_info("cluster: node %u: waiting for the lease of this data dir's previous run "
                      "to expire",
                      self->self_id);
            logged = true;
        }
        zclock_sleep(250);
    }
}

//  Writes REC without SELF in its ISR (and a new leader if it led), by CAS
//  on MOD_REVISION. LIVE: the live nodes. TERN_OK, or the CAS lost (false
//  in *DONE), or an etcd error.
static tern_err_t s_leave_isr(tern_cluster_t *self, const tern_etcd_kv_t *kv, const uint32_t *live,
                              size_t nlive, bool *done) {
    *done = true;
    tern_partmap_record_t rec;
    if (tern_partmap_record_decode(kv->value, kv->value_size, &rec, NULL) != TERN_OK ||
        !tern_partmap_in_isr(&rec, self->self_id)) {
        return TERN_OK;
    }
    uint64_t epoch = rec.epoch ? rec.epoch : (uint64_t)kv->mod_revision;
    tern_partmap_record_t next = rec;
    next.nisr = 0;
    for (uint32_t i = 0; i < rec.nisr; i++) {
        if (rec.isr[i] != self->self_id) {
            next.isr[next.nisr++] = rec.isr[i];
        }
    }
    bool new_leader = rec.leader == self->self_id;
    if (new_leader) {
        next.leader = TERN_NODE_NONE;
        next.leader = tern_partmap_elect(&next, live, nlive);
    }
    //  As tern_cluster_cas_record: explicit, above what the key held, and
    //  our own (another node may decide on the same record).
    next.ver = tern_cluster_ver_above(self->self_id, rec.ver, epoch, kv->mod_revision);
    next.epoch = new_leader ? next.ver : epoch;
    char value[TERN_PARTMAP_TEXT_MAX];
    if (tern_partmap_record_encode(&next, value, sizeof value) != TERN_OK) {
        return TERN_OK;
    }
    tern_etcd_compare_t cmp = {
        .key = kv->key, .target = TERN_ETCD_MOD, .revision = kv->mod_revision};
    tern_etcd_op_t op = {.key = kv->key, .value = value, .value_size = strlen(value)};
    tern_err_t rc = tern_etcd_txn(self->etcd, &cmp, 1, &op, 1, done, NULL);
    if (rc == TERN_OK && *done) {
        zsys_warning("cluster: node %u left the ISR of partition %u (now %s)%s", self->self_id,
                     rec.partition, value,
                     next.nisr == 0 ? ": it was its only in-sync copy, which is lost" : "");
    }
    return rc;
}

//  Step 3's ISR part: every record, until each CAS goes through.
static bool s_forget_isr(tern_cluster_t *self, char *errbuf, size_t errlen) {
    char prefix[TERN_CLUSTER_KEY_MAX];
    snprintf(prefix, sizeof prefix, "%s/", self->prefix);
    for (int attempt = 0; attempt < 20; attempt++) {
        tern_etcd_kvs_t *kvs = NULL;
        if (tern_etcd_get(self->etcd, prefix, true, &kvs) != TERN_OK) {
            break;
        }
        uint32_t live[TERN_ID_NODE_MAX + 1];
        size_t nlive = 0;
        size_t plen = strlen(prefix);
        for (size_t i = 0; i < kvs->count; i++) {
            const char *rest = kvs->kvs[i].key + plen;
            if (strncmp(rest, "nodes/", 6) == 0 && nlive <= TERN_ID_NODE_MAX) {
                live[nlive++] = (uint32_t)strtoul(rest + 6, NULL, 10);
            }
        }
        bool all = true;
        tern_err_t rc = TERN_OK;
        for (size_t i = 0; i < kvs->count && rc == TERN_OK; i++) {
            bool done = true;
            if (strncmp(kvs->kvs[i].key + plen, "partitions/", 11) == 0) {
                rc = s_leave_isr(self, &kvs->kvs[i], live, nlive, &done);
            }
            all = all && done;
        }
        tern_etcd_kvs_destroy(&kvs);
        if (rc == TERN_OK && all) {
            return true;
        }
    }
    snprintf(errbuf, errlen,
             "node %u's data dir has a new identity and it could not leave the ISRs of "
             "cluster %s: %s",
             self->self_id, self->name, tern_etcd_reason(self->etcd));
    return false;
}

//  Step 3.
static bool s_identity(tern_cluster_t *self, char *errbuf, size_t errlen) {
    char key[TERN_CLUSTER_KEY_MAX];
    tern_cluster_key(self, key, sizeof key, "identity", self->self_id);
    tern_etcd_kvs_t *kvs = NULL;
    if (tern_etcd_get(self->etcd, key, false, &kvs) != TERN_OK) {
        snprintf(errbuf, errlen, "cannot join cluster %s: %s", self->name,
                 tern_etcd_reason(self->etcd));
        return false;
    }
    bool same = kvs->count == 1 && strcmp(kvs->kvs[0].value, self->identity) == 0;
    if (kvs->count == 1 && !same) {
        zsys_warning("cluster: node %u's data dir has identity %s, etcd knew it as %s: the data "
                     "dir was wiped or swapped, so the node leaves every ISR before it joins",
                     self->self_id, self->identity, kvs->kvs[0].value);
    }
    bool wiped = kvs->count == 1 && !same;
    tern_etcd_kvs_destroy(&kvs);
    if (wiped && !s_forget_isr(self, errbuf, errlen)) {
        return false;
    }
    if (!same && tern_etcd_put(self->etcd, key, self->identity, strlen(self->identity), 0, NULL) !=
                     TERN_OK) {
        snprintf(errbuf, errlen, "cannot join cluster %s: %s", self->name,
                 tern_etcd_reason(self->etcd));
        return false;
    }
    return true;
}

//  Step 5. TERN_OK with *CREATED false: the id is taken.
static tern_err_t s_register(tern_cluster_t *self, bool *created) {
    char key[TERN_CLUSTER_KEY_MAX];
    tern_cluster_key(self, key, sizeof key, "nodes", self->self_id);
    tern_etcd_compare_t cmp = {.key = key, .target = TERN_ETCD_CREATE, .revision = 0};
    tern_etcd_op_t op = {.key = key,
                         .value = self->node_value,
                         .value_size = strlen(self->node_value),
                         .lease = self->lease};
    return tern_etcd_txn(self->etcd, &cmp, 1, &op, 1, created, NULL);
}

bool tern_cluster_join(tern_cluster_t *self, const tern_config_t *config, char *errbuf,
                       size_t errlen) {
    if (!s_partitions(self, config, errbuf, errlen) || !s_id_free(self, errbuf, errlen) ||
        !s_identity(self, errbuf, errlen)) {
        return false;
    }
    //  The lease last: the steps above may wait longer than its TTL.
    bool created = false;
    if (s_grant(self, true, NULL) != TERN_OK || s_register(self, &created) != TERN_OK) {
        snprintf(errbuf, errlen, "cannot join cluster %s: %s", self->name,
                 tern_etcd_reason(self->etcd));
        return false;
    }
    if (!created) {
        snprintf(errbuf, errlen, "node id %u is already live in cluster %s (another ternd?)",
                 self->self_id, self->name);
        return false;
    }
    return true;
}

//  Reads every key of the cluster again into the view.
static tern_err_t s_reread_all(tern_cluster_t *self) {
    char prefix[TERN_CLUSTER_KEY_MAX];
    tern_cluster_key(self, prefix, sizeof prefix, "", -1);
    return tern_cluster_reread(self, prefix, true, NULL);
}

bool tern_cluster_rejoin(tern_cluster_t *self) {
    //  Trusted from the grant's send time, but only once registered and
    //  read: until then the view may name us leader of partitions failed
    //  over while we were away.
    //  (Our lease is gone or given up: every caller zeroed it.)
    int64_t sent = 0;
    atomic_store(&self->lease_until, 0);
    if (s_grant(self, false, &sent) != TERN_OK) {
        int64_t now = tern_cluster_now_ms();
        if (now >= self->next_renew_log_ms) { //  the keepalive's pace: every 30 s
            self->next_renew_log_ms = now + 30000;
            zsys_warning("cluster: cannot get a new lease: %s", tern_etcd_reason(self->etcd));
        }
        return false;
    }
    bool created = false;
    tern_err_t rc = s_register(self, &created);
    if (rc == TERN_OK && created) {
        zsys_info("cluster: node %u joined cluster %s again", self->self_id, self->name);
        //  The view takes etcd as it is now (our new key, failovers made
        //  while we were away): the watch may lag, and what it delivers
        //  later that is older than this read is ignored. Unread, the
        //  lease is trusted from its next renewal (the load follows it).
        if (s_reread_all(self) == TERN_OK) {
            tern_cluster_renewed(self, sent, tern_cluster_now_ms(), true);
        }
        return true;
    }
    if (rc == TERN_OK) {
        zsys_error("cluster: node id %u is live again in cluster %s, but not as this process "
                   "(another ternd?); retrying",
                   self->self_id, self->name);
    } else {
        zsys_warning("cluster: cannot register again: %s", tern_etcd_reason(self->etcd));
    }
    //  Start over with a fresh lease next time; this one may hold nothing.
    tern_etcd_lease_revoke(self->etcd, self->lease);
    self->lease = 0;
    atomic_store(&self->lease_until, 0);
    return false;
}

//  Gives the current lease up (a revoke that fails is harmless: the lease
//  lapses on its own) and joins again with a new one.
static void s_give_up(tern_cluster_t *self) {
    tern_etcd_lease_revoke(self->etcd, self->lease);
    self->lease = 0;
    self->control_since_ms = 0;
    atomic_store(&self->lease_until, 0);
    tern_cluster_rejoin(self);
}

//  Whether KEY is bound to LEASE now (*BOUND). TERN_OK or etcd's error.
static tern_err_t s_bound_to(tern_cluster_t *self, const char *key, int64_t lease, bool *bound) {
    tern_etcd_kvs_t *kvs = NULL;
    tern_err_t rc = tern_etcd_get(self->etcd, key, false, &kvs);
    *bound = rc == TERN_OK && kvs->count == 1 && kvs->kvs[0].lease == lease;
    tern_etcd_kvs_destroy(&kvs);
    return rc;
}

void tern_cluster_relet(tern_cluster_t *self) {
    int64_t sent = tern_cluster_now_ms();
    int64_t fresh = 0;
    int64_t granted = 0;
    if (tern_etcd_lease_grant(self->etcd, tern_cluster_grant_ttl_s(self), &fresh, &granted) !=
        TERN_OK) {
        return; //  relet_due stays: the next keepalive tries again
    }
    char node_key[TERN_CLUSTER_KEY_MAX], ctl_key[TERN_CLUSTER_KEY_MAX], ctl_value[16];
    tern_cluster_key(self, node_key, sizeof node_key, "nodes", self->self_id);
    tern_cluster_key(self, ctl_key, sizeof ctl_key, "controller", -1);
    snprintf(ctl_value, sizeof ctl_value, "%u", self->self_id);
    //  Both keys, only while both are still bound to the old lease.
    tern_etcd_compare_t cmp[2] = {
        {.key = node_key, .target = TERN_ETCD_LEASE, .revision = self->lease},
        {.key = ctl_key, .target = TERN_ETCD_LEASE, .revision = self->lease}};
    tern_etcd_op_t ops[2] = {
        {.key = node_key,
         .value = self->node_value,
         .value_size = strlen(self->node_value),
         .lease = fresh},
        {.key = ctl_key, .value = ctl_value, .value_size = strlen(ctl_value), .lease = fresh}};
    size_t n = self->controller == self->self_id ? 2 : 1;
    bool moved = false;
    tern_err_t rc = tern_etcd_txn(self->etcd, cmp, n, ops, n, &moved, NULL);
    if (rc != TERN_OK) {
        rc = s_bound_to(self, node_key, fresh, &moved); //  the txn may have applied
    }
    if (rc == TERN_OK && moved) {
        int64_t old = self->lease;
        self->lease = fresh;
        self->ttl_ms = (granted > 0 ? granted : tern_cluster_grant_ttl_s(self)) * 1000;
        //  The records as etcd holds them after the move, before the lease
        //  is trusted: the view may have missed changes while etcd was
        //  silent (the watch is down), and no partition is led from a
        //  record older than this read. Unread, relet_due stays and the
        //  next keepalive moves the keys again.
        if (s_reread_all(self) != TERN_OK) {
            return;
        }
        tern_cluster_renewed(self, sent, tern_cluster_now_ms(), true);
        tern_etcd_lease_revoke(self->etcd, old); //  it holds nothing now
        zsys_info("cluster: node %u moved its keys to a new lease after the late renewal",
                  self->self_id);
        return;
    }
    if (rc != TERN_OK) {
        return; //  unknown: FRESH lapses by itself; the next keepalive tries again
    }
    tern_etcd_lease_revoke(self->etcd, fresh);
    zsys_warning("cluster: node %u: its keys left the old lease (revoked after the late "
                 "renewal); joining again",
                 self->self_id);
    s_give_up(self);
}

void tern_cluster_announce(tern_cluster_t *self) {
    char endpoint[256];
    pthread_mutex_lock(&self->lock);
    snprintf(endpoint, sizeof endpoint, "%s", self->new_endpoint);
    self->new_endpoint[0] = 0;
    pthread_mutex_unlock(&self->lock);
    if (!endpoint[0]) {
        return;
    }
    tern_cluster_node_value(self, endpoint);
    if (self->lease == 0) {
        return; //  the re-join registers the new value
    }
    //  Only our own key, while it is ours (bound to our lease).
    char key[TERN_CLUSTER_KEY_MAX];
    tern_cluster_key(self, key, sizeof key, "nodes", self->self_id);
    tern_etcd_compare_t cmp = {.key = key, .target = TERN_ETCD_LEASE, .revision = self->lease};
    tern_etcd_op_t op = {.key = key,
                         .value = self->node_value,
                         .value_size = strlen(self->node_value),
                         .lease = self->lease};
    bool done = false;
    if (tern_etcd_txn(self->etcd, &cmp, 1, &op, 1, &done, NULL) != TERN_OK || !done) {
        zsys_warning("cluster: node %u could not announce endpoint %s: %s", self->self_id, endpoint,
                     tern_etcd_reason(self->etcd));
    }
}
