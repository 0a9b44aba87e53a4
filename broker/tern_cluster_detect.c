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
    id other than the controller polls the controller. A lease etcd reports at 0 s left is revoked
   (LeaseRevoke): its keys go at once and the watch drives the failover as before. A node nobody
   polls still expires by etcd itself, a second later.

    Safety. Fencing follows cluster/lease, not the granted TTL: lease_until
    = send time of a trusted renewal + 3/4 lease; a poller can read 0 s
    left only a whole lease after that renewal reached etcd. The race: a
    node silent past its lease can still renew (etcd holds the lease) just
    after a poller read 0 s left and before its revoke lands. So a renewal
    is trusted only if etcd answered it within cluster/lease of the
    previous renewal's send: it then reached etcd before any poller could
    read 0 s. A late one is not trusted: the node stays fenced and renews
    again 3/4 lease later, by which time any revoke decided before the late
    renewal has landed (a poller drops a reading that took more than
    lease/4, and its revoke call gives up after lease/2): that renewal fails
    (the lease is gone: the node joins again) or confirms the lease. Nodes
    with a shorter lease than the poller's are not polled (the bounds above
    use the polled node's lease), nor nodes without `lease=` (older ones).

    Load: LeaseTimeToLive is a read served by etcd's leader (no raft
    write). The controller makes (N-1) x 16 per lease, one other node 16:
    with 3 nodes and a 1 s lease, 48 small reads a second.
*/
#include "tern_cluster_priv.h"
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
    if (!grant && done - previous >= self->lease_ms) {
        //  Late: lease_until stays where it was (passed already).
        self->confirm_at_ms = done + self->lease_ms - self->lease_ms / 4;
        self->next_keepalive_ms = self->confirm_at_ms;
        atomic_fetch_add(&self->late_renewals, 1);
        zsys_warning("cluster: node %u: lease renewed late (%" PRId64 " ms after the previous "
                     "renewal was sent); fenced until a renewal confirms it",
                     self->self_id, done - previous);
        return;
    }
    if (self->confirm_at_ms && sent < self->confirm_at_ms) {
        //  In time, but sent before a revoke racing the late one surely landed.
        self->next_keepalive_ms = self->confirm_at_ms;
        return;
    }
    self->confirm_at_ms = 0;
    atomic_store(&self->lease_until, sent + self->lease_ms - self->lease_ms / 4);
}

//  Asks etcd about M's lease and revokes it if etcd reports it lapsed.
static void s_poll(tern_cluster_t *self, const tern_cluster_member_t *m) {
    uint32_t id = m->info.id;
    int64_t lease = m->lease;
    int64_t lease_ms = m->lease_ms;
    int64_t ttl = 0;
    int64_t granted = 0;
    int64_t asked = tern_cluster_now_ms();
    if (tern_etcd_lease_ttl(self->etcd, lease, &ttl, &granted) != TERN_OK) {
        return; //  etcd in trouble: its own expiry still holds
    }
    //  0 whole seconds left of a lease granted a second longer than the
    //  node's: no renewal for its whole lease. A slow answer is dropped,
    //  so a revoke lands within the bound the node's late renewals wait.
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
    tern_err_t rc = tern_etcd_lease_revoke(self->etcd, lease);
    if (rc == TERN_OK) {
        atomic_fetch_add(&self->lease_revokes, 1);
        zsys_info("cluster: node %u's lease lapsed (etcd: no renewal for over %" PRId64
                  " ms): revoked",
                  id, (granted - 1) * 1000);
    } else if (rc != TERN_ESTATE) {
        zsys_warning("cluster: cannot revoke node %u's lapsed lease: %s", id,
                     tern_etcd_reason(self->etcd));
    }
}

void tern_cluster_detect(tern_cluster_t *self) {
    int64_t now = tern_cluster_now_ms();
    if (now < self->next_detect_ms) {
        return;
    }
    self->next_detect_ms = now + self->lease_ms / S_POLLS_PER_LEASE;
    //  Not gated on our own lease: etcd's verdict on another lease holds
    //  whatever ours is, and a poller fenced by a late renewal of its own
    //  (a starved host) would otherwise leave a dead node to etcd's expiry.
    if (!self->watch) {
        return;
    }
    bool controller = self->controller == self->self_id;
    //  The controller's lease is polled by the first live other node only.
    bool first = true;
    for (size_t i = 0; i < self->nmembers && self->members[i].info.id < self->self_id; i++) {
        first &= !self->members[i].info.up || self->members[i].info.id == self->controller;
    }
    //  Only this thread writes members, and s_poll applies nothing.
    for (size_t i = 0; i < self->nmembers; i++) {
        const tern_cluster_member_t *m = &self->members[i];
        if (m->info.id == self->self_id || !m->info.up || m->lease == 0 ||
            m->lease_ms < self->lease_ms) {
            continue;
        }
        if (controller || (first && m->info.id == self->controller)) {
            s_poll(self, m);
        }
    }
}
