/*  tern_cluster_detect.c - fast failure detection, on etcd's clock.

    Why. A dead node is failed over when etcd deletes its lease-bound keys.
    etcd deletes the keys of an expired lease only when its lessor loop next
    runs, and that loop runs every 500 ms (etcd 3.4 lease/lessor.go,
    runLoop), so the keys go 0-500 ms after the lease expired: with a 1 s
    lease that made detection 0.7-1.5 s. etcd's LeaseTimeToLive cannot tell
    us sooner on its own: it reports whole seconds, truncated toward zero
    (v3_server.go: int64(Remaining().Seconds())), so a live 1 s lease and an
    expired one both read 0.

    What. Every node asks etcd for a lease one second longer than
    cluster/lease (tern_cluster_grant_ttl_s) and announces cluster/lease in
    its node record (`lease=MS`). Renewed every lease/3, such a lease always
    has more than a second left, and etcd reports 0 s left exactly when no
    renewal has reached it for (granted - 1) s >= cluster/lease: etcd's own
    verdict that the node's lease has lapsed, on etcd's clock. Pollers ask
    for it every lease/16 (S_POLLS_PER_LEASE): the controller polls every
    other node that announces `lease=`, and the live node with the lowest
    id other than the controller polls the controller. A lease etcd
    reports at 0 s left is revoked (LeaseRevoke), once a linearizable read
    proves etcd has its quorum (s_quorum_now says why): its keys go at once
    and the watch drives the failover as before. A node nobody polls still
    expires by etcd itself, a second later.

    Safety. Fencing follows cluster/lease, not the granted TTL: lease_until
    = send time of a trusted renewal + 3/4 lease; a poller can read 0 s
    left only a whole lease after that renewal reached etcd. The race: a
    node silent past its lease can still renew (etcd holds the lease) just
    after a poller read 0 s left and before its revoke lands. So a renewal
    is trusted only if etcd answered it within cluster/lease of the
    previous renewal's send: it then reached etcd before any poller could
    read 0 s. A late one is not trusted, and neither is that lease ever
    again: a revoke decided before the late renewal may land at any time
    (a LeaseRevoke whose call timed out is a raft proposal that can still
    apply). The node stays fenced and at once moves its keys (node key,
    and the controller key if it holds it) onto a new lease, in one
    transaction that holds only while they are still bound to the old one
    (tern_cluster_relet, tern_cluster_join.c): a revoke that lands after it
    deletes nothing, one that landed before fails it, and the node then
    gives the old lease up and joins again as after a lost lease. It
    trusts the new lease from its grant, only once the move succeeded. No
    timing assumption about the revoke is left. Nodes
    with a shorter lease than the poller's are not polled (the bounds above
    use the polled node's lease), nor nodes without `lease=` (older ones).

    Thread. The polls run on a thread of their own with their own etcd
    client (tern_cluster_detect_start): a pass polls every other node in
    turn, each call may take up to lease/2 when etcd is slow, and on the
    cluster thread that delayed the node's own keepalive (hence its
    fencing) behind other nodes' polls. The poll thread reads the view
    under its lock and writes nothing but a counter.

    Load: LeaseTimeToLive is a read served by etcd's leader (no raft
    write). The controller makes (N-1) x 16 per lease, one other node 16:
    with 3 nodes and a 1 s lease, 48 small reads a second.
*/
#include "tern_cluster_priv.h"
#include "tern_alloc.h"
#include <czmq.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

//  Polls of a watched lease per cluster/lease: detection within lease/16.
#define S_POLLS_PER_LEASE 16

int64_t tern_cluster_grant_ttl_s(const tern_cluster_t *self) {
    return (self->lease_ms + 999) / 1000 + 1;
}

int64_t tern_cluster_record_lease_ms(const char *text) {
    for (const char *p = text; p && *p; p += strspn(p, " ")) {
        if (strncmp(p, "lease=", 6) == 0) {
            long long ms = strtoll(p + 6, NULL, 10);
            return ms > 0 ? (int64_t)ms : 0;
        }
        p += strcspn(p, " ");
    }
    return 0;
}

void tern_cluster_renewed(tern_cluster_t *self, int64_t sent, int64_t done, bool grant) {
    int64_t previous = self->renew_sent_ms;
    self->renew_sent_ms = sent;
    if (grant) {
        self->relet_due = false; //  a new lease: no revoke decided before can target it
    } else if (done - previous >= self->lease_ms) {
        //  Late: lease_until stays where it was (passed already), and this
        //  lease is never trusted again (tern_cluster_relet).
        self->relet_due = true;
        atomic_fetch_add(&self->late_renewals, 1);
        zsys_warning("cluster: node %u: lease renewed late (%" PRId64 " ms after the previous "
                     "renewal was sent); fenced, moving to a new lease",
                     self->self_id, done - previous);
        return;
    } else if (self->relet_due) {
        return; //  in time, but of the lease a revoke may still hit
    }
    atomic_store(&self->lease_until, sent + self->lease_ms - self->lease_ms / 4);
}

//  What a pass needs of a node, copied under the lock.
typedef struct {
    uint32_t id;      //  node id
    bool up;          //  its key is there
    int64_t lease;    //  the lease its key is bound to
    int64_t lease_ms; //  its announced cluster/lease (0: not polled)
} s_watched_t;

//  Whether etcd has a quorum now and node ID's key is still bound to LEASE:
//  a linearizable read (it needs the leader's quorum). etcd's leader answers
//  LeaseTimeToLive from its own lessor, without its quorum, for up to an
//  election timeout or two after it lost it (until CheckQuorum steps it
//  down); a revoke sent then cannot commit, times out, and stays in that
//  leader's log: if quorum returns with it as leader, the revoke applies
//  then, seconds later, after the node renewed as soon as etcd answered
//  again, and deposes it for nothing (it_cluster_etcd quorum_lost_and_back
//  saw this). This read fails or times out instead, and nothing is revoked.
static bool s_quorum_now(tern_cluster_t *self, tern_etcd_t *etcd, uint32_t id, int64_t lease) {
    char key[TERN_CLUSTER_KEY_MAX];
    tern_cluster_key(self, key, sizeof key, "nodes", id);
    tern_etcd_kvs_t *kvs = NULL;
    bool bound = tern_etcd_get(etcd, key, false, &kvs) == TERN_OK && kvs->count == 1 &&
                 kvs->kvs[0].lease == lease;
    tern_etcd_kvs_destroy(&kvs);
    return bound;
}

//  Asks etcd (through ETCD, the poll thread's client) about M's lease and
//  revokes it if etcd reports it lapsed (and can commit the revoke now).
static void s_poll(tern_cluster_t *self, tern_etcd_t *etcd, const s_watched_t *m) {
    uint32_t id = m->id;
    int64_t lease = m->lease;
    int64_t lease_ms = m->lease_ms;
    int64_t ttl = 0;
    int64_t granted = 0;
    int64_t asked = tern_cluster_now_ms();
    if (tern_etcd_lease_ttl(etcd, lease, &ttl, &granted) != TERN_OK) {
        return; //  etcd in trouble: its own expiry still holds
    }
    //  0 whole seconds left of a lease granted a second longer than the
    //  node's: no renewal for its whole lease. A slow answer is dropped:
    //  it may be old news.
    if (ttl != 0 || granted * 1000 < lease_ms + 1000) {
        return;
    }
    int64_t took = tern_cluster_now_ms() - asked;
    if (took > lease_ms / 4) {
        zsys_info("cluster: node %u's lease read lapsed, but etcd took %" PRId64
                  " ms to say so: asking again",
                  id, took);
        return;
    }
    if (!s_quorum_now(self, etcd, id, lease)) {
        return;
    }
    tern_err_t rc = tern_etcd_lease_revoke(etcd, lease);
    if (rc == TERN_OK) {
        atomic_fetch_add(&self->lease_revokes, 1);
        zsys_info("cluster: node %u's lease lapsed (etcd: no renewal for over %" PRId64
                  " ms): revoked",
                  id, (granted - 1) * 1000);
    } else if (rc != TERN_ESTATE) {
        zsys_warning("cluster: cannot revoke node %u's lapsed lease: %s", id,
                     tern_etcd_reason(etcd));
    }
}

//  One pass: the leases this node watches over, from a copy of the view.
static void s_pass(tern_cluster_t *self, tern_etcd_t *etcd) {
    pthread_mutex_lock(&self->lock);
    size_t count = self->nmembers;
    s_watched_t *list = tern_alloc((count ? count : 1) * sizeof *list);
    for (size_t i = 0; i < count; i++) {
        const tern_cluster_member_t *m = &self->members[i];
        list[i] = (s_watched_t){m->info.id, m->info.up, m->lease, m->lease_ms};
    }
    uint32_t controller = self->controller;
    pthread_mutex_unlock(&self->lock);
    //  The controller's lease is polled by the first live other node only.
    bool first = true;
    for (size_t i = 0; i < count && list[i].id < self->self_id; i++) {
        first &= !list[i].up || list[i].id == controller;
    }
    for (size_t i = 0; i < count && !atomic_load(&self->stop); i++) {
        const s_watched_t *m = &list[i];
        if (m->id == self->self_id || !m->up || m->lease == 0 || m->lease_ms < self->lease_ms) {
            continue;
        }
        if (controller == self->self_id || (first && m->id == controller)) {
            s_poll(self, etcd, m);
        }
    }
    free(list);
}

//  The poll thread: a pass every lease/16 on its own etcd client, so a
//  slow etcd answer to a poll never delays the cluster thread's keepalive
//  (our own renewal), and a pass of many nodes never delays it either.
//  Not gated on our own lease: etcd's verdict on another lease holds
//  whatever ours is, and a poller fenced by a late renewal of its own (a
//  starved host) would otherwise leave a dead node to etcd's expiry.
static void *s_poll_thread(void *arg) {
    tern_cluster_t *self = arg;
    int64_t period = self->lease_ms / S_POLLS_PER_LEASE;
    while (!atomic_load(&self->stop)) {
        int64_t start = tern_cluster_now_ms();
        s_pass(self, self->poll_etcd);
        int64_t left = start + period - tern_cluster_now_ms();
        if (left > 0 && !atomic_load(&self->stop)) {
            zclock_sleep((int)left);
        }
    }
    return NULL;
}

bool tern_cluster_detect_start(tern_cluster_t *self) {
    //  Polls time out at lease/2 (a reading that took over lease/4 is
    //  dropped anyway).
    self->poll_etcd = tern_etcd_new(self->endpoints, (int)(self->lease_ms / 2));
    if (!self->poll_etcd || pthread_create(&self->poll_thread, NULL, s_poll_thread, self) != 0) {
        tern_etcd_destroy(&self->poll_etcd);
        return false;
    }
    self->poll_started = true;
    return true;
}

void tern_cluster_detect_stop(tern_cluster_t *self) {
    if (self->poll_started) {
        atomic_store(&self->stop, true);
        pthread_join(self->poll_thread, NULL);
        self->poll_started = false;
    }
    tern_etcd_destroy(&self->poll_etcd);
}
