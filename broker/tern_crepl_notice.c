/*  tern_crepl_notice.c - crepl: route sees only what the in-sync replicas have.

    Part of the crepl actor (tern_crepl.c; state in tern_crepl_priv.h). In a
    cluster the storer sends each commit's NOTICE (its appended messages,
    route's ops results) here, on the socket of the COMMITTED, right behind
    the COMMITTED of the same commit (tern_storer.c). A NOTICE with appended
    messages waits for what that COMMITTED waits for (its c_need_t, copied in
    c_committed: the highest position per partition), decided by the same
    rule (c_decide: tern_partmap_ack_check, lost leadership, deadline); one
    without is decided at once. They go to route strictly in commit order
    (route reads OPEN and admin results in them), so a decided NOTICE still
    waits behind an undecided older one. This is the high watermark: route
    dispatches a message only once every in-sync replica has it, so no
    consumer reads a write a failover can lose (docs/checker.md rule (e)).

    Never held forever: a partition this node no longer leads is decided
    (route ignores topics it does not lead), and at cluster/ack_timeout the
    NOTICE goes anyway, like its publishes' TERN_ETIMEOUT: the messages stay
    in the log and are delivered, the unknown-outcome case of a publish.

    Inherited log. Route also reads the store directly (a group's lanes from
    its cursor), so it bounds every lane scan by a per-topic high watermark
    raised only by the NOTICEs forwarded here (tern_route_cluster.c). When
    this node starts leading a partition, the log it finds there (position 1)
    is not yet on the followers; c_notice_inherit lists the partition's
    topics at their last_seq now (before any SYNC of this leadership is
    answered, so every follower's catch-up holds at least that) and queues an
    `inherited` NOTICE that waits for position 1, i.e. for the followers'
    CAUGHT (sent even when it lists no topic: route adopts the partition's
    stored group state when it arrives, tern_route_cluster.c). Records still at our storer from the
   time we followed the partition are not in that list; they become visible with the next NOTICE of
   their topic.
*/
#include "tern_crepl_priv.h"
#include <string.h>

void c_notice(c_repl_t *self, tern_notice_t *notice) {
    c_held_t *held = tern_alloc(sizeof *held);
    held->notice = notice;
    held->deadline_ms = tern_now_ms() + self->config->ack_timeout_ms;
    //  Route's op results in it too wait until this node flushed the commit.
    held->sync_gen = self->deferred ? self->synced_gen + 1 : 0;
    if (notice->appended_count && self->last_count) {
        //  Its messages are the last COMMITTED's publishes (same commit).
        held->count = held->cap = self->last_count;
        held->needs = tern_alloc(held->cap * sizeof *held->needs);
        memcpy(held->needs, self->last_needs, held->count * sizeof *held->needs);
    }
    self->last_count = 0;
    if (!self->deferred) {                //  else at SYNCED (c_notices_synced)
        c_group_ship(self, notice, held); //  right behind its commit's records
    }
    c_held_push(&self->notices, &self->notices_tail, held);
}

typedef struct {
    c_repl_t *self;        //  the actor
    uint32_t pt;           //  the partition
    tern_notice_t *notice; //  being filled
    size_t cap;            //  notice->appended allocated
} s_inherit_t;

static bool s_collect(const tern_topic_info_t *topic, void *arg) {
    s_inherit_t *inh = arg;
    if (topic->last_seq == 0 || c_partition_of(inh->self, topic->name) != inh->pt) {
        return true;
    }
    tern_notice_t *notice = inh->notice;
    if (notice->appended_count == inh->cap) {
        inh->cap = inh->cap ? inh->cap * 2 : 16;
        notice->appended = tern_realloc(notice->appended, inh->cap * sizeof *notice->appended);
    }
    notice->appended[notice->appended_count++] =
        (tern_appended_t){.topic_id = topic->id, .priority = 0, .seq = topic->last_seq};
    return true;
}

void c_notice_inherit(c_repl_t *self, uint32_t pt) {
    s_inherit_t inh = {self, pt, tern_alloc(sizeof(tern_notice_t)), 0};
    inh.notice->inherited = true;
    inh.notice->partition = pt;
    uint64_t last = 0;
    if (tern_store_read_begin(self->reader) == TERN_OK) {
        tern_store_topic_list(self->reader, s_collect, &inh);
        //  The outbox as found, read with the topics: position 1 covers
        //  exactly this (what we commit from now on carries its own marks,
        //  released only once the ISR has it).
        tern_store_outbox_last_pt(self->reader, pt, &last);
        tern_store_read_end(self->reader);
    }
    if (last) {
        inh.notice->obmarks = tern_alloc(sizeof *inh.notice->obmarks);
        inh.notice->obmarks[0] = (tern_outbox_mark_t){pt, last};
        inh.notice->obmark_count = 1;
    }
    //  Sent even with no topic listed: route adopts the partition's stored
    //  group state when it arrives (tern_route_cluster.c).
    c_lead_t *lead = &self->leads[pt];
    c_held_t *held = tern_alloc(sizeof *held);
    held->notice = inh.notice;
    held->deadline_ms = tern_now_ms() + self->config->ack_timeout_ms;
    held->count = held->cap = 1;
    held->needs = tern_alloc(sizeof *held->needs);
    held->needs[0] = (c_need_t){pt, lead->epoch, 1, false, TERN_OK};
    c_held_push(&self->notices, &self->notices_tail, held);
}

static void s_free(c_held_t *held) {
    tern_notice_destroy(&held->notice);
    free(held->needs);
    free(held);
}

/* ------------------------------------------------------------------------
    OBSAFE: the outbox the ISR holds (rule 2 of docs/replication.md,
    "Outbox in a cluster"), told to repl as each NOTICE is released
   ------------------------------------------------------------------------ */

//  Adds (PT, POS) to *ITEM (made on first use) if we lead PT and the NEED
//  for PT (NULL: the commit had no records there) was acknowledged.
static void s_obsafe_add(c_repl_t *self, tern_obsafe_t **item, size_t *cap, uint32_t pt,
                         uint64_t pos, const c_need_t *need) {
    if (pt >= self->partitions || !self->leads[pt].leading || pos == 0 ||
        (need && (need->err != TERN_OK || need->epoch != self->leads[pt].epoch))) {
        return; //  not ours to ship, or the ISR may not have it: a later mark covers it
    }
    if (!*item) {
        *item = tern_alloc(sizeof **item);
    }
    tern_obsafe_t *it = *item;
    if (it->count == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        it->marks = tern_realloc(it->marks, *cap * sizeof *it->marks);
        it->epochs = tern_realloc(it->epochs, *cap * sizeof *it->epochs);
    }
    it->marks[it->count] = (tern_outbox_mark_t){pt, pos};
    it->epochs[it->count++] = self->leads[pt].epoch;
}

//  HELD's NOTICE is being released: its outbox marks (an inherited one's:
//  the partition's outbox as found at the leadership start, see
//  c_notice_inherit) go to repl. Nothing when repl does not run.
static void s_obsafe(c_repl_t *self, c_held_t *held) {
    tern_notice_t *notice = held->notice;
    if (!self->repl_sock || !notice) {
        return;
    }
    tern_obsafe_t *item = NULL;
    size_t cap = 0;
    for (size_t i = 0; i < notice->obmark_count; i++) {
        const tern_outbox_mark_t *mark = &notice->obmarks[i];
        const c_need_t *need = NULL;
        for (size_t j = 0; j < held->count && !need; j++) {
            need = held->needs[j].pt == mark->partition ? &held->needs[j] : NULL;
        }
        s_obsafe_add(self, &item, &cap, mark->partition, mark->position, need);
    }
    if (item && tern_work_send(zsock_resolve(self->repl_sock), TERN_WORK_OBSAFE, item) != 0) {
        tern_obsafe_destroy(&item);
    }
}

void c_notices_evaluate(c_repl_t *self) {
    if (!self->notices) {
        return;
    }
    uint64_t now = tern_now_ms();
    bool lease_ok = tern_cluster_lease_ok(self->cluster);
    self->eval_gen++;
    bool head = true; //  every one before is forwarded
    for (c_held_t *held = self->notices; held;) {
        bool all = true;
        for (size_t i = 0; i < held->count; i++) {
            if (!held->needs[i].decided) {
                c_decide(self, &held->needs[i], lease_ok, now, held->deadline_ms);
            }
            all = all && held->needs[i].decided;
        }
        all = all && held->sync_gen <= self->synced_gen;
        c_held_t *next = held->next;
        if (head && all) {
            self->notices = next;
            if (self->notices_tail == held) {
                self->notices_tail = NULL;
            }
            s_obsafe(self, held);
            //  An inherited NOTICE of a leadership that ended before its
            //  followers synced is dropped: route may already see our next
            //  leadership of the partition (A -> B -> A), whose groups must
            //  adopt only at that one's own inherited NOTICE.
            const c_lead_t *lead = &self->leads[held->notice->partition];
            bool stale =
                held->notice->inherited && (!lead->leading || lead->epoch != held->needs[0].epoch);
            if (!stale && tern_work_send(zsock_resolve(self->route_sock), TERN_WORK_NOTICE,
                                         held->notice) == 0) {
                held->notice = NULL;
            }
            s_free(held);
        } else {
            head = false;
        }
        held = next;
    }
}

void c_notices_synced(c_repl_t *self) {
    //  With a deferred flush the NOTICE came before its commit (the storer
    //  ships ahead of it, tern_storer.c s_commit_shipped): its ops' topics
    //  are read by id from the store (c_group_ship), and a follower must not
    //  get group state of a commit that may never happen here. Still right
    //  behind the commit's records and before the next commit's, whose
    //  COMMITTED comes after this SYNCED.
    for (c_held_t *held = self->notices; held; held = held->next) {
        if (held->notice && held->notice->gop_count && held->sync_gen <= self->synced_gen) {
            c_group_ship(self, held->notice, held);
        }
    }
}

void c_notices_drop(c_repl_t *self) {
    while (self->notices) {
        c_held_t *held = self->notices;
        self->notices = held->next;
        s_free(held);
    }
    self->notices_tail = NULL;
    free(self->last_needs);
    self->last_needs = NULL;
    self->last_count = self->last_cap = 0;
}
