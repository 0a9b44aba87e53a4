/*  tern_cluster.c - the cluster actor: the view and the thread's loop.

    One thread per clustered node talks to etcd (tern_cluster_priv.h says
    which file does what). Its loop, every pass:
        keepalive due (every lease/3)  -> renew; lease gone -> re-join
        (a late renewal is not trusted: the keys move to a new lease,
        tern_cluster_detect.c)
        lease not trusted              -> nothing more: the lease step is
                                          tried again every 100 ms, and
                                          no other etcd call delays it
        requests queued                -> ISR and handover writes
        no controller in the view      -> campaign (tern_cluster_ctl.c)
        we are controller and membership changed, or a lease passed
                                       -> a controller pass
        then poll the watch's fd and the wake pipe until the next deadline,
        and apply every watch event to the view.
    A watch that says COMPACTED is replaced: the prefix is read again and a
    new watch starts after that read. The lease polls (revoke leases etcd
    reports lapsed, every lease/16) run on a thread of their own
    (tern_cluster_detect.c), so they never delay our keepalive.
*/
#include "tern_cluster_priv.h"
#include "tern_alloc.h"
#include "tern_id.h"
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  Leases between two full re-reads of the prefix (s_check_watch).
#define S_SYNC_LEASES 5
//  Deadline of each etcd call while joining (tern_cluster_new).
#define S_JOIN_TIMEOUT_MS 5000
//  Pace of the lease step (keepalive, relet, re-join) while the lease is not
//  trusted: service returns as soon as etcd answers, not up to lease/3 later.
#define S_FENCED_RETRY_MS 100

int64_t tern_cluster_now_ms(void) {
    return zclock_mono();
}

void tern_cluster_key(tern_cluster_t *self, char *buf, size_t len, const char *what, long id) {
    if (id < 0) {
        snprintf(buf, len, "%s/%s", self->prefix, what);
    } else {
        snprintf(buf, len, "%s/%s/%ld", self->prefix, what, id);
    }
}

//  --- The view (thread side) ------------------------------------------------

static tern_cluster_member_t *s_member(tern_cluster_t *self, uint32_t id, bool create) {
    for (size_t i = 0; i < self->nmembers; i++) {
        if (self->members[i].info.id == id) {
            return &self->members[i];
        }
    }
    if (!create) {
        return NULL;
    }
    if (self->nmembers == self->members_max) {
        self->members_max = self->members_max ? self->members_max * 2 : 8;
        self->members = tern_realloc(self->members, self->members_max * sizeof self->members[0]);
    }
    //  Keep them by id, so tern_cluster_nodes lists them in order.
    size_t at = self->nmembers;
    while (at > 0 && self->members[at - 1].info.id > id) {
        at--;
    }
    memmove(&self->members[at + 1], &self->members[at],
            (self->nmembers - at) * sizeof self->members[0]);
    self->nmembers++;
    tern_cluster_member_t *m = &self->members[at];
    memset(m, 0, sizeof *m);
    m->info.id = id;
    m->down_since_ms = tern_cluster_now_ms();
    return m;
}

//  Parses `id=2 endpoint=... cluster=... identity=... dc=...` into INFO
//  (unknown fields ignored: a newer node may add some).
void tern_cluster_parse_node(const char *text, tern_cluster_node_t *info) {
    static const struct {
        const char *name;
        size_t off;
        size_t size;
    } fields[] = {
        {"endpoint=", offsetof(tern_cluster_node_t, endpoint), sizeof info->endpoint},
        {"cluster=", offsetof(tern_cluster_node_t, cluster_endpoint),
         sizeof info->cluster_endpoint},
        {"identity=", offsetof(tern_cluster_node_t, identity), sizeof info->identity},
        {"dc=", offsetof(tern_cluster_node_t, dc), sizeof info->dc},
        {"repl=", offsetof(tern_cluster_node_t, repl_endpoint), sizeof info->repl_endpoint},
    };
    const char *p = text;
    while (*p) {
        size_t len = strcspn(p, " ");
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
            size_t n = strlen(fields[i].name);
            if (len > n && strncmp(p, fields[i].name, n) == 0) {
                size_t vlen = len - n < fields[i].size - 1 ? len - n : fields[i].size - 1;
                char *dst = (char *)info + fields[i].off;
                memcpy(dst, p + n, vlen);
                dst[vlen] = 0;
            }
        }
        p += len;
        p += strspn(p, " ");
    }
}

//  A key under PREFIX/NAME/<number>: the number, else -1.
static long s_key_id(const char *rest, const char *name) {
    size_t n = strlen(name);
    if (strncmp(rest, name, n) != 0 || rest[n] != '/' || !rest[n + 1]) {
        return -1;
    }
    char *end = NULL;
    errno = 0;
    long id = strtol(rest + n + 1, &end, 10);
    return (errno || *end || id < 0) ? -1 : id;
}

static bool s_apply_node(tern_cluster_t *self, long id, const tern_etcd_kv_t *kv, bool deleted) {
    if (id > TERN_ID_NODE_MAX) {
        return false;
    }
    tern_cluster_member_t *m = s_member(self, (uint32_t)id, true);
    if (kv->mod_revision <= m->mod_revision) {
        return false; //  what we hold already, or older
    }
    m->mod_revision = kv->mod_revision;
    m->lease = deleted ? 0 : kv->lease;
    bool was_up = m->info.up;
    if (deleted) {
        m->info.up = false;
        if (was_up) {
            m->down_since_ms = tern_cluster_now_ms();
        }
    } else {
        m->info.up = true;
        tern_cluster_parse_node(kv->value, &m->info);
        m->lease_ms = tern_cluster_record_lease_ms(kv->value);
    }
    if (was_up != m->info.up) {
        self->control_dirty = true;
        zsys_info("cluster: node %ld is %s", id, m->info.up ? "up" : "down");
    }
    return true;
}

//  Two records of one ver that differ (not only in epoch): written by two
//  nodes from one restored record, or by an older node. Every node must
//  pick the same one: the higher epoch, then the lower text.
static const tern_partmap_record_t *s_winner(const tern_partmap_record_t *a,
                                             const tern_partmap_record_t *b) {
    if (a->epoch != b->epoch) {
        return a->epoch > b->epoch ? a : b;
    }
    char ta[TERN_PARTMAP_TEXT_MAX] = "", tb[TERN_PARTMAP_TEXT_MAX] = "";
    tern_partmap_record_encode(a, ta, sizeof ta);
    tern_partmap_record_encode(b, tb, sizeof tb);
    return strcmp(ta, tb) <= 0 ? a : b;
}

//  REC (from etcd) has the ver of VIEW. True when the view changed. The
//  same record, or one written back in a higher epoch, is no conflict.
static bool s_same_ver(tern_cluster_t *self, long p, const tern_partmap_record_t *rec,
                       tern_partmap_record_t *view) {
    tern_partmap_record_t other = *rec;
    other.epoch = view->epoch;
    if (tern_partmap_record_same(&other, view)) {
        if (rec->epoch <= view->epoch) {
            return false; //  the same record read again (or written back by us)
        }
        *view = *rec;
        return true;
    }
    char ta[TERN_PARTMAP_TEXT_MAX] = "", tb[TERN_PARTMAP_TEXT_MAX] = "";
    tern_partmap_record_encode(rec, ta, sizeof ta);
    tern_partmap_record_encode(view, tb, sizeof tb);
    zsys_error("cluster: partition %ld: etcd's record (%s) and this node's (%s) share a ver: "
               "two decisions on one restored record; the winner is written in a new epoch",
               p, ta, tb);
    self->conflict[p] = true;
    self->republish_due = true;
    if (s_winner(rec, view) == view) {
        return false;
    }
    *view = *rec;
    return true;
}

//  The view takes a record only if its ver is above the one it holds (or
//  the same ver in a higher epoch: one written back), so it never goes
//  back, not even when etcd does (restored from a backup): it then keeps
//  the newer record and writes it back (tern_cluster_republish). WATCH: a
//  watch event (older than a read or our own write: the watch lags);
//  else a read, where a key older than what we saw means etcd went back.
static bool s_apply_record(tern_cluster_t *self, long p, const tern_etcd_kv_t *kv, bool deleted,
                           bool watch) {
    if (p >= (long)self->partitions) {
        return false;
    }
    if (kv->mod_revision <= self->mod_revision[p]) {
        if (watch || kv->mod_revision == self->mod_revision[p]) {
            return false; //  what we hold already (our own write, a re-read), or older
        }
        //  A restore whose revisions were bumped past ours (etcdutl
        //  --bump-revision): the read's revision never went back.
        zsys_error("cluster: %s is at revision %" PRId64 ", below the %" PRId64
                   " this node saw: etcd was restored from a backup (docs/cluster.md, \"etcd "
                   "backup and restore\")",
                   kv->key, kv->mod_revision, self->mod_revision[p]);
        tern_cluster_went_back(self);
    }
    tern_partmap_record_t rec = {.partition = (uint32_t)p, .leader = TERN_NODE_NONE};
    if (!deleted) {
        const char *why = "";
        if (tern_partmap_record_decode(kv->value, kv->value_size, &rec, &why) != TERN_OK ||
            rec.partition != (uint32_t)p) {
            zsys_error("cluster: %s is not a partition record (%s): ignored", kv->key, why);
            return false;
        }
        if (rec.epoch == 0) {
            rec.epoch = (uint64_t)kv->mod_revision; //  a leader change: its own revision
        }
        if (rec.ver == 0) {
            rec.ver = (uint64_t)kv->mod_revision; //  written by an older node
        }
    }
    self->mod_revision[p] = deleted ? 0 : kv->mod_revision;
    self->etcd_ver[p] = rec.ver;
    self->etcd_epoch[p] = rec.epoch;
    tern_partmap_record_t *view = &self->records[p];
    if (view->nreplicas > 0 && deleted) {
        zsys_error("cluster: etcd lacks the record of partition %ld this node saw (ver %" PRIu64
                   "): etcd restored from a backup? writing it back",
                   p, view->ver);
        self->republish_due = true;
        return false;
    }
    if (view->nreplicas > 0 && rec.ver < view->ver) {
        zsys_error("cluster: etcd holds an older record of partition %ld (ver %" PRIu64
                   ", epoch %" PRIu64 ") than this node saw (ver %" PRIu64 ", epoch %" PRIu64
                   "): etcd restored from a backup? keeping ours and writing it back",
                   p, rec.ver, rec.epoch, view->ver, view->epoch);
        self->republish_due = true;
        return false;
    }
    if (rec.ver == view->ver) {
        if (view->nreplicas == 0) {
            return false; //  no record, as before
        }
        bool changed = s_same_ver(self, p, &rec, view);
        self->view_dirty = self->view_dirty || changed;
        return changed;
    }
    *view = rec;
    self->conflict[p] = false; //  a newer ver settles it
    self->view_dirty = true;
    return true;
}

//  Applies KV; WATCH: it is a watch event (see s_apply_record).
static void s_apply(tern_cluster_t *self, const tern_etcd_kv_t *kv, bool deleted, bool watch) {
    size_t plen = strlen(self->prefix);
    if (strncmp(kv->key, self->prefix, plen) != 0 || kv->key[plen] != '/') {
        return;
    }
    const char *rest = kv->key + plen + 1;
    bool changed = false;
    pthread_mutex_lock(&self->lock);
    if (kv->mod_revision > self->max_revision) {
        self->max_revision = kv->mod_revision;
    }
    long id = -1;
    if ((id = s_key_id(rest, "nodes")) >= 0) {
        changed = s_apply_node(self, id, kv, deleted);
    } else if ((id = s_key_id(rest, "partitions")) >= 0) {
        changed = s_apply_record(self, id, kv, deleted, watch);
    } else if (strcmp(rest, "controller") == 0 && kv->mod_revision > self->controller_revision) {
        self->controller_revision = kv->mod_revision;
        char *end = NULL;
        unsigned long n = deleted ? 0 : strtoul(kv->value, &end, 10);
        uint32_t controller =
            deleted || !end || *end || n > TERN_ID_NODE_MAX ? TERN_NODE_NONE : (uint32_t)n;
        changed = controller != self->controller;
        self->controller = controller;
    }
    pthread_mutex_unlock(&self->lock);
    if (changed) {
        atomic_fetch_add(&self->version, 1);
    }
}

void tern_cluster_apply_kv(tern_cluster_t *self, const tern_etcd_kv_t *kv, bool deleted) {
    s_apply(self, kv, deleted, false);
}

static int s_kv_cmp(const void *key, const void *kv) {
    return strcmp(key, ((const tern_etcd_kv_t *)kv)->key);
}

//  KEY is gone as of revision REVISION unless KVS (etcd's answer for PREFIX,
//  in key order) holds it.
static void s_gone_unless(tern_cluster_t *self, const char *key, const char *prefix,
                          const tern_etcd_kvs_t *kvs) {
    if (strncmp(key, prefix, strlen(prefix)) != 0 ||
        bsearch(key, kvs->kvs, kvs->count, sizeof kvs->kvs[0], s_kv_cmp)) {
        return;
    }
    tern_etcd_kv_t gone = {.key = (char *)key, .value = "", .mod_revision = kvs->revision};
    tern_cluster_apply_kv(self, &gone, true);
}

//  What the view holds under PREFIX and KVS lacks was deleted: a watch
//  that was silent (a frozen member) may never have said so.
static void s_apply_absent(tern_cluster_t *self, const char *prefix, const tern_etcd_kvs_t *kvs) {
    char key[TERN_CLUSTER_KEY_MAX];
    for (size_t i = 0; i < self->nmembers; i++) {
        if (self->members[i].info.up) {
            tern_cluster_key(self, key, sizeof key, "nodes", self->members[i].info.id);
            s_gone_unless(self, key, prefix, kvs);
        }
    }
    //  Records the view holds that etcd lacks too (restored without them,
    //  or the view file's): that marks them for writing back.
    for (uint32_t p = 0; p < self->partitions; p++) {
        if (self->mod_revision[p] != 0 || self->records[p].nreplicas > 0) {
            tern_cluster_key(self, key, sizeof key, "partitions", p);
            s_gone_unless(self, key, prefix, kvs);
        }
    }
    if (self->controller != TERN_NODE_NONE) {
        tern_cluster_key(self, key, sizeof key, "controller", -1);
        s_gone_unless(self, key, prefix, kvs);
    }
}

tern_err_t tern_cluster_reread(tern_cluster_t *self, const char *key, bool prefix_read,
                               int64_t *revision_p) {
    tern_etcd_kvs_t *kvs = NULL;
    tern_err_t rc = tern_etcd_get(self->etcd, key, prefix_read, &kvs);
    if (rc != TERN_OK) {
        return rc;
    }
    pthread_mutex_lock(&self->lock);
    tern_cluster_check_revision(self, kvs->revision);
    pthread_mutex_unlock(&self->lock);
    for (size_t i = 0; i < kvs->count; i++) {
        tern_cluster_apply_kv(self, &kvs->kvs[i], false);
    }
    if (prefix_read) {
        s_apply_absent(self, key, kvs);
    } else if (kvs->count == 0) {
        //  Gone: a delete as of the read's revision.
        tern_etcd_kv_t gone = {.key = (char *)key, .value = "", .mod_revision = kvs->revision};
        tern_cluster_apply_kv(self, &gone, true);
    }
    if (revision_p) {
        *revision_p = kvs->revision;
    }
    tern_etcd_kvs_destroy(&kvs);
    return TERN_OK;
}

size_t tern_cluster_live(tern_cluster_t *self, uint32_t *live) {
    size_t n = 0;
    for (size_t i = 0; i < self->nmembers; i++) {
        if (self->members[i].info.up) {
            live[n++] = self->members[i].info.id;
        }
    }
    return n;
}

//  --- The thread ---------------------------------------------------------

static void s_follow_member(tern_cluster_t *self);

static int64_t s_min(int64_t a, int64_t b) {
    return a < b ? a : b;
}

//  The lease step failed while the lease is not trusted: try again soon,
//  not a whole lease/3 later (an attempt that met a silent member already
//  took its timeout; one that met a refusal returned at once).
static void s_retry_soon(tern_cluster_t *self) {
    if (!tern_cluster_lease_ok(self)) {
        int64_t soon = tern_cluster_now_ms() + S_FENCED_RETRY_MS;
        self->next_keepalive_ms = s_min(self->next_keepalive_ms, soon);
    }
}

//  A renewal etcd answered with TTL_S left, sent at SENT. After a late
//  renewal (relet_due) it only proved etcd answers again: the keys move to
//  a new lease at once.
static void s_renewal_answered(tern_cluster_t *self, int64_t sent) {
    if (!self->relet_due) {
        //  From the send time: etcd counts the TTL from when it got it.
        tern_cluster_renewed(self, sent, tern_cluster_now_ms(), false);
        atomic_fetch_add(&self->renewals, 1);
    }
    if (self->next_renew_log_ms) {
        self->next_renew_log_ms = 0;
        zsys_info("cluster: lease renewed again (%s)", tern_etcd_endpoint(self->etcd));
    }
    if (self->relet_due) {
        tern_cluster_relet(self); //  late: at once, no revoke to wait for
    }
    if (self->relet_due) {
        s_retry_soon(self);
    } else {
        s_follow_member(self);
    }
}

void tern_cluster_tick_keepalive(tern_cluster_t *self) {
    int64_t now = tern_cluster_now_ms();
    if (now < self->next_keepalive_ms) {
        return;
    }
    self->next_keepalive_ms = now + self->lease_ms / 3;
    if (self->lease == 0) {
        tern_cluster_rejoin(self);
        s_retry_soon(self);
        return;
    }
    //  Also the probe before a relet: a keepalive may be sent to every
    //  member in turn (a grant may not), so a frozen member does not take
    //  the whole attempt, and its answer says whether the old lease lives.
    int64_t ttl_s = 0;
    tern_err_t rc = tern_etcd_lease_keepalive(self->etcd, self->lease, &ttl_s);
    if (rc == TERN_OK && ttl_s > 0) {
        s_renewal_answered(self, now);
        return;
    }
    atomic_fetch_add(&self->renew_failures, 1);
    if (rc == TERN_ESTATE || (rc == TERN_OK && ttl_s <= 0)) {
        atomic_store(&self->lease_until, 0);
        zsys_warning("cluster: node %u lost its etcd lease; joining again", self->self_id);
        self->lease = 0;
        self->control_since_ms = 0;
        tern_cluster_rejoin(self);
        s_retry_soon(self);
        return;
    }
    if (now >= self->next_renew_log_ms) {
        //  Once when the failures start, then every 30 s while they last.
        self->next_renew_log_ms = now + 30000;
        zsys_warning("cluster: lease keepalive failed: %s", tern_etcd_reason(self->etcd));
    }
    s_retry_soon(self);
}

//  Reads the whole prefix again and watches from after it (the start, and
//  after a COMPACTED watch). False if etcd did not answer.
bool tern_cluster_load(tern_cluster_t *self) {
    self->went_back = false; //  this is the new read and watch it asks for
    tern_etcd_watch_destroy(&self->watch);
    int64_t revision = 0;
    char prefix[TERN_CLUSTER_KEY_MAX];
    snprintf(prefix, sizeof prefix, "%s/", self->prefix);
    if (tern_cluster_reread(self, prefix, true, &revision) != TERN_OK) {
        return false;
    }
    //  The watch starts at the first member listed: the one that answered.
    snprintf(self->member, sizeof self->member, "%s", tern_etcd_endpoint(self->etcd));
    char members[sizeof self->endpoints + sizeof self->member + 2];
    size_t at = (size_t)snprintf(members, sizeof members, "%s", self->member);
    for (const char *p = self->endpoints; *p; p += *p == ',') {
        size_t len = strcspn(p, ",");
        if (len != strlen(self->member) || strncmp(p, self->member, len) != 0) {
            at += (size_t)snprintf(members + at, sizeof members - at, ",%.*s", (int)len, p);
        }
        p += len;
    }
    self->watch = tern_etcd_watch_new(members, prefix, revision + 1);
    self->watch_down_since_ms = 0;
    self->next_sync_ms = tern_cluster_now_ms() + S_SYNC_LEASES * self->lease_ms;
    return self->watch != NULL;
}

//  A watch can be stuck without a word: DOWN, then connected to a frozen
//  member that never answers. And a silent member looks just like a quiet
//  cluster. So: a watch DOWN for a lease is started anew, and every
//  S_SYNC_LEASES leases the prefix is read again; if that read taught the
//  view anything, the watch had missed it and is started anew.
static void s_check_watch(tern_cluster_t *self) {
    int64_t now = tern_cluster_now_ms();
    const char *why = NULL;
    if (self->went_back) {
        why = "etcd went back in time";
    } else if (self->watch_down_since_ms && now - self->watch_down_since_ms > self->lease_ms) {
        why = "the etcd watch is down";
    } else if (now >= self->next_sync_ms) {
        self->next_sync_ms = now + S_SYNC_LEASES * self->lease_ms;
        uint64_t version = atomic_load(&self->version);
        char prefix[TERN_CLUSTER_KEY_MAX];
        tern_cluster_key(self, prefix, sizeof prefix, "", -1);
        if (tern_cluster_reread(self, prefix, true, NULL) == TERN_OK &&
            atomic_load(&self->version) != version) {
            why = "the etcd watch missed changes";
        }
    }
    if (why) {
        zsys_info("cluster: %s: watching anew", why);
        if (!tern_cluster_load(self)) {
            zsys_error("cluster: cannot re-read the cluster: %s", tern_etcd_reason(self->etcd));
        }
    }
}

//  A keepalive answered by another member than before: the one we left may
//  be frozen (SIGSTOP, a hung host), and a watch on a frozen member is
//  silent, not broken. Read again and watch from the member that answers.
static void s_follow_member(tern_cluster_t *self) {
    const char *member = tern_etcd_endpoint(self->etcd);
    if (strcmp(member, self->member) == 0) {
        return;
    }
    zsys_info("cluster: etcd member %s answers now (was %s): watching from it", member,
              self->member);
    if (!tern_cluster_load(self)) {
        zsys_error("cluster: cannot re-read the cluster: %s", tern_etcd_reason(self->etcd));
    }
}

static void s_handle_watch(tern_cluster_t *self) {
    tern_etcd_event_t *ev = NULL;
    bool reload = false;
    while ((ev = tern_etcd_watch_next(self->watch)) != NULL) {
        switch (ev->type) {
            case TERN_ETCD_EV_PUT:
            case TERN_ETCD_EV_DELETE:
                s_apply(self, &ev->kv, ev->type == TERN_ETCD_EV_DELETE, true);
                break;
            case TERN_ETCD_EV_DOWN:
                zsys_warning("cluster: etcd watch down: %s", ev->reason ? ev->reason : "");
                if (!self->watch_down_since_ms) {
                    self->watch_down_since_ms = tern_cluster_now_ms();
                }
                break;
            case TERN_ETCD_EV_UP:
                zsys_info("cluster: etcd watch back");
                self->watch_down_since_ms = 0;
                break;
            case TERN_ETCD_EV_COMPACTED:
                reload = true;
                break;
        }
        tern_etcd_event_destroy(&ev);
        if (reload) {
            break;
        }
    }
    if (reload && !tern_cluster_load(self)) {
        zsys_error("cluster: cannot re-read the cluster: %s", tern_etcd_reason(self->etcd));
    }
}

//  When the loop must run again without an event. Only what can act now
//  counts: without a trusted lease only the lease step runs (s_thread), so
//  a node cut off from etcd waits for its next try instead of spinning.
static int64_t s_next_wake(tern_cluster_t *self, int64_t now) {
    int64_t until = self->next_keepalive_ms; //  also when a failed load is tried again
    if (!tern_cluster_lease_ok(self)) {
        return until;
    }
    if (self->watch) {
        until = s_min(until, self->next_sync_ms);
        if (self->watch_down_since_ms) {
            until = s_min(until, self->watch_down_since_ms + self->lease_ms + 1);
        }
    }
    if (self->control_since_ms && tern_cluster_lease_ok(self)) {
        until = s_min(until, self->control_dirty ? now : self->next_control_ms);
    }
    if (self->controller == TERN_NODE_NONE && self->lease != 0) {
        until = s_min(until, self->next_campaign_ms);
    }
    if (self->republish_due && tern_cluster_lease_ok(self)) {
        until = s_min(until, self->next_republish_ms);
    }
    if (self->went_back) {
        until = now;
    }
    if (self->hold_until_ms > now) {
        until = s_min(until, self->hold_until_ms); //  the decisions held back
    }
    return until;
}

static void *s_thread(void *arg) {
    tern_cluster_t *self = arg;
    while (!atomic_load(&self->stop)) {
        tern_cluster_tick_keepalive(self);
        //  Without a trusted lease etcd is silent or the lease in doubt:
        //  each call below could wait its whole timeout and delay the next
        //  try of the lease step, which is what brings service back. The
        //  watch's events are still applied.
        if (tern_cluster_lease_ok(self)) {
            tern_cluster_announce(self);
            tern_cluster_serve_requests(self);
            tern_cluster_republish(self);
            tern_cluster_campaign(self);
            tern_cluster_control(self);
            if (!self->watch) {
                tern_cluster_load(self); //  a failed reload: try again each pass
            } else {
                s_check_watch(self);
            }
        }
        tern_cluster_view_save(self, false);
        int64_t now = tern_cluster_now_ms();
        int64_t until = s_next_wake(self, now);
        int timeout = until > now ? (int)(until - now) : 0;
        struct pollfd fds[2] = {
            {.fd = self->wake[0], .events = POLLIN},
            {.fd = self->watch ? tern_etcd_watch_fd(self->watch) : -1, .events = POLLIN}};
        if (poll(fds, 2, timeout) > 0) {
            char buf[64];
            if (fds[0].revents & POLLIN) {
                while (read(self->wake[0], buf, sizeof buf) > 0) {
                }
            }
            if (self->watch && (fds[1].revents & POLLIN)) {
                s_handle_watch(self);
            }
        }
    }
    return NULL;
}

void tern_cluster_wake(tern_cluster_t *self) {
    char byte = 1;
    //  A full pipe already wakes the thread: a failed write loses nothing.
    if (write(self->wake[1], &byte, 1) < 0) {
        return;
    }
}

//  --- The object ----------------------------------------------------------

tern_cluster_t *tern_cluster_new(const tern_config_t *config, const char *endpoint,
                                 const char *cluster_endpoint, const char *identity, char *errbuf,
                                 size_t errlen) {
    tern_cluster_t *self = tern_alloc(sizeof *self);
    self->wake[0] = self->wake[1] = -1;
    pthread_mutex_init(&self->lock, NULL);
    self->self_id = config->node_id;
    self->partitions = config->partitions;
    self->replicas = config->replicas;
    self->lease_ms = config->lease_ms < 1000 ? 1000 : (int64_t)config->lease_ms;
    self->replace_after_ms = (int64_t)config->replace_after_ms;
    self->controller = TERN_NODE_NONE;
    snprintf(self->name, sizeof self->name, "%s",
             config->cluster_name[0] ? config->cluster_name : config->dc);
    snprintf(self->prefix, sizeof self->prefix, "/tern/%s", self->name);
    snprintf(self->endpoints, sizeof self->endpoints, "%s", config->etcd);
    snprintf(self->identity, sizeof self->identity, "%s", identity ? identity : "");
    snprintf(self->cluster_endpoint, sizeof self->cluster_endpoint, "%s", cluster_endpoint);
    snprintf(self->dc, sizeof self->dc, "%s", config->dc);
    if (config->repl_listen[0] && strcmp(config->repl_listen, "off") != 0) {
        snprintf(self->repl_endpoint, sizeof self->repl_endpoint, "%s", config->repl_listen);
    }
    tern_cluster_node_value(self, endpoint);
    if (pipe(self->wake) != 0) {
        snprintf(errbuf, errlen, "cluster: cannot make a pipe: %s", strerror(errno));
        goto fail;
    }
    fcntl(self->wake[0], F_SETFL, O_NONBLOCK);
    fcntl(self->wake[1], F_SETFL, O_NONBLOCK);
    self->etcd = tern_etcd_new(config->etcd, (int)(self->lease_ms / 2));
    if (!self->etcd) {
        snprintf(errbuf, errlen, "cluster/etcd: bad etcd endpoints \"%s\"", config->etcd);
        goto fail;
    }
    //  Join decides the partition count (the cluster's): size the view after.
    //  Joining is in no hurry, and a slow etcd (a loaded host) should not
    //  make ternd exit: its calls get S_JOIN_TIMEOUT_MS, the thread's lease/2.
    tern_etcd_set_timeout(self->etcd, S_JOIN_TIMEOUT_MS);
    if (!tern_cluster_join(self, config, errbuf, errlen)) {
        goto fail;
    }
    tern_cluster_view_load(self, config->data_dir);
    if (!tern_cluster_load(self)) {
        snprintf(errbuf, errlen, "cannot read cluster %s from etcd: %s", self->name,
                 tern_etcd_reason(self->etcd));
        goto fail;
    }
    tern_etcd_set_timeout(self->etcd, (int)(self->lease_ms / 2));
    self->next_keepalive_ms = tern_cluster_now_ms() + self->lease_ms / 3;
    if (pthread_create(&self->thread, NULL, s_thread, self) != 0) {
        snprintf(errbuf, errlen, "cluster: cannot start its thread");
        goto fail;
    }
    self->thread_started = true;
    if (!tern_cluster_detect_start(self)) {
        snprintf(errbuf, errlen, "cluster: cannot start its lease poll thread");
        goto fail;
    }
    zsys_info("cluster: node %u joined cluster %s (%u partitions, %zu nodes known)", self->self_id,
              self->name, self->partitions, self->nmembers);
    return self;

fail:
    tern_cluster_destroy(&self);
    return NULL;
}

//  Sizes the view for PARTITIONS (join calls it once it knows the count).
void tern_cluster_size(tern_cluster_t *self, uint32_t partitions) {
    self->partitions = partitions;
    self->records = tern_alloc(partitions * sizeof self->records[0]);
    self->mod_revision = tern_alloc(partitions * sizeof self->mod_revision[0]);
    self->reqs = tern_alloc(partitions * sizeof self->reqs[0]);
    self->positions = tern_alloc(partitions * sizeof self->positions[0]);
    self->etcd_ver = tern_alloc(partitions * sizeof self->etcd_ver[0]);
    self->etcd_epoch = tern_alloc(partitions * sizeof self->etcd_epoch[0]);
    self->conflict = tern_alloc(partitions * sizeof self->conflict[0]);
    for (uint32_t p = 0; p < partitions; p++) {
        self->records[p].partition = p;
        self->records[p].leader = TERN_NODE_NONE;
        self->reqs[p].handover_to = TERN_NODE_NONE;
        atomic_init(&self->positions[p], 0);
    }
}

void tern_cluster_destroy(tern_cluster_t **self_p) {
    if (!self_p || !*self_p) {
        return;
    }
    tern_cluster_t *self = *self_p;
    if (self->thread_started) {
        atomic_store(&self->stop, true);
        tern_cluster_wake(self);
        pthread_join(self->thread, NULL);
        tern_cluster_view_save(self, true); //  what the last lease/3 changed
    }
    tern_cluster_detect_stop(self);
    tern_etcd_watch_destroy(&self->watch);
    if (self->etcd && self->lease) {
        //  Leave at once: our keys go and the controller fails us over now
        //  rather than a lease later.
        atomic_store(&self->lease_until, 0);
        if (tern_etcd_lease_revoke(self->etcd, self->lease) == TERN_OK && self->thread_started) {
            zsys_info("cluster: node %u left cluster %s", self->self_id, self->name);
        }
    }
    tern_etcd_destroy(&self->etcd);
    if (self->wake[0] >= 0) {
        close(self->wake[0]);
        close(self->wake[1]);
    }
    pthread_mutex_destroy(&self->lock);
    free(self->records);
    free(self->mod_revision);
    free(self->reqs);
    free(self->etcd_ver);
    free(self->etcd_epoch);
    free(self->conflict);
    free((void *)self->positions);
    free(self->members);
    free(self);
    *self_p = NULL;
}

//  --- The view (any thread) -----------------------------------------------

uint32_t tern_cluster_self(tern_cluster_t *self) {
    return self->self_id;
}

uint32_t tern_cluster_partitions(tern_cluster_t *self) {
    return self->partitions;
}

uint64_t tern_cluster_version(tern_cluster_t *self) {
    return atomic_load(&self->version);
}

bool tern_cluster_record(tern_cluster_t *self, uint32_t partition, tern_partmap_record_t *out) {
    if (partition >= self->partitions) {
        return false;
    }
    pthread_mutex_lock(&self->lock);
    *out = self->records[partition];
    pthread_mutex_unlock(&self->lock);
    return true;
}

bool tern_cluster_node(tern_cluster_t *self, uint32_t id, tern_cluster_node_t *out) {
    pthread_mutex_lock(&self->lock);
    tern_cluster_member_t *m = s_member(self, id, false);
    if (m) {
        *out = m->info;
    }
    pthread_mutex_unlock(&self->lock);
    return m != NULL;
}

size_t tern_cluster_nodes(tern_cluster_t *self, tern_cluster_node_t *out, size_t max) {
    pthread_mutex_lock(&self->lock);
    size_t n = self->nmembers;
    for (size_t i = 0; i < n && i < max; i++) {
        out[i] = self->members[i].info;
    }
    pthread_mutex_unlock(&self->lock);
    return n;
}

uint32_t tern_cluster_controller(tern_cluster_t *self) {
    pthread_mutex_lock(&self->lock);
    uint32_t id = self->controller;
    pthread_mutex_unlock(&self->lock);
    return id;
}

bool tern_cluster_lease_ok(tern_cluster_t *self) {
    return tern_cluster_now_ms() < atomic_load(&self->lease_until);
}

bool tern_cluster_leads(tern_cluster_t *self, uint32_t partition, uint64_t *epoch_p) {
    tern_partmap_record_t rec;
    if (!tern_cluster_record(self, partition, &rec) || rec.leader != self->self_id ||
        !tern_cluster_lease_ok(self)) {
        return false;
    }
    if (epoch_p) {
        *epoch_p = rec.epoch;
    }
    return true;
}

const char *tern_cluster_not_leader(tern_cluster_t *self, uint32_t partition, char *buf,
                                    size_t len) {
    tern_partmap_record_t rec;
    tern_cluster_node_t node;
    if (!tern_cluster_record(self, partition, &rec) || rec.leader == TERN_NODE_NONE) {
        snprintf(buf, len, "partition %u has no leader", partition);
    } else if (rec.leader == self->self_id) {
        //  We lead it in the record but our lease may have lapsed.
        snprintf(buf, len, "partition %u: node %u's etcd lease may have lapsed", partition,
                 rec.leader);
    } else if (tern_cluster_node(self, rec.leader, &node) && node.endpoint[0]) {
        snprintf(buf, len, "partition %u is led by node %u at %s", partition, rec.leader,
                 node.endpoint);
    } else {
        snprintf(buf, len, "partition %u is led by node %u", partition, rec.leader);
    }
    return buf;
}

void tern_cluster_node_value(tern_cluster_t *self, const char *endpoint) {
    snprintf(self->node_value, sizeof self->node_value,
             "id=%u endpoint=%s cluster=%s identity=%s dc=%s lease=%" PRId64 "%s%s", self->self_id,
             endpoint, self->cluster_endpoint, self->identity, self->dc, self->lease_ms,
             self->repl_endpoint[0] ? " repl=" : "", self->repl_endpoint);
}

void tern_cluster_set_endpoint(tern_cluster_t *self, const char *endpoint) {
    pthread_mutex_lock(&self->lock);
    snprintf(self->new_endpoint, sizeof self->new_endpoint, "%s", endpoint);
    pthread_mutex_unlock(&self->lock);
    tern_cluster_wake(self);
}

void tern_cluster_isr_request(tern_cluster_t *self, uint32_t partition, uint64_t epoch,
                              const tern_partmap_record_t *next) {
    if (partition >= self->partitions || !next) {
        return;
    }
    pthread_mutex_lock(&self->lock);
    self->reqs[partition].isr = true;
    self->reqs[partition].isr_epoch = epoch;
    self->reqs[partition].next = *next;
    self->reqs_pending = true;
    pthread_mutex_unlock(&self->lock);
    tern_cluster_wake(self);
}

tern_err_t tern_cluster_handover(tern_cluster_t *self, uint32_t partition, uint32_t to) {
    if (partition >= self->partitions) {
        return TERN_EINVAL;
    }
    uint32_t live[TERN_ID_NODE_MAX + 1];
    pthread_mutex_lock(&self->lock);
    size_t nlive = tern_cluster_live(self, live);
    bool ok = tern_partmap_can_lead(&self->records[partition], to, live, nlive);
    if (ok) {
        self->reqs[partition].handover_to = to;
        self->reqs_pending = true;
    }
    pthread_mutex_unlock(&self->lock);
    if (ok) {
        tern_cluster_wake(self);
    }
    return ok ? TERN_OK : TERN_EINVAL;
}

void tern_cluster_set_position(tern_cluster_t *self, uint32_t partition, uint64_t position) {
    if (partition < self->partitions) {
        atomic_store_explicit(&self->positions[partition], position, memory_order_relaxed);
    }
}

uint64_t tern_cluster_position(tern_cluster_t *self, uint32_t partition) {
    if (partition >= self->partitions) {
        return 0;
    }
    return atomic_load_explicit(&self->positions[partition], memory_order_relaxed);
}

void tern_cluster_stats(tern_cluster_t *self, tern_cluster_stats_t *out) {
    out->renewals = atomic_load(&self->renewals);
    out->renew_failures = atomic_load(&self->renew_failures);
    out->failovers = atomic_load(&self->failovers);
    out->isr_changes = atomic_load(&self->isr_changes);
    out->lease_revokes = atomic_load(&self->lease_revokes);
    out->late_renewals = atomic_load(&self->late_renewals);
}
