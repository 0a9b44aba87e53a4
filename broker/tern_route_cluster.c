/*  tern_route_cluster.c - route in a clustered DC: deliver only what this
    node leads, and only while its lease is ok.

    A node holds the topics of every partition it is a replica of, but only
    the leader of a partition delivers its messages (its followers hold the
    log, not the consumers). route marks each topic it knows `led` when this
    node leads the topic's partition, with the partition's epoch (a new
    epoch while led is a stop and a start: r_cluster_change, so leadership
    going A -> B -> A between two looks is not missed); groups of other topics neither
    dispatch nor run timers, and a subscription with a pattern joins only
    led topics. The view's version is compared every loop turn (at least
    every 100 ms):
    when it moved, route lists the store's topics again (a follower's topics
    were written by replication, which route does not hear of), sets `led`
    again, and a topic that became led gets the pattern subscriptions that
    match it and its groups dispatch from their cursors. The version is also
    compared before a subscription joins topics, so that it never joins by
    a view older than the one conn refused or admitted it by. A topic that is no
    longer led keeps its groups, idle and without pending entries, until this
    node leads it again; then they adopt the stored state, which the leader
    replicated here meanwhile (s_adopt; tern_crepl_group.c), once the
    partition's inherited NOTICE arrives: at the view change the old
    leader's last group ops may still be in follower batches at our storer;
    the inherited NOTICE waits for the followers' CAUGHT, which our leader
    side sends only once those batches are committed (c_answer_sync). Until
    then the groups dispatch nothing (hw is 0, no pending entries).
    While tern_cluster_lease_ok is false, nothing is delivered at all.

    High watermark. Every topic has `hw`: a lane scan (a group catching up
    from its cursor, a new message) dispatches only seqs <= hw. Route gets
    its NOTICEs from crepl, which forwards each one only once every in-sync
    replica has its messages (tern_crepl_notice.c); each appended seq
    raises hw. An `inherited` NOTICE (crepl's, when this node starts leading
    a partition, released once the followers synced) sets hw to the log as
    this node found it; hw drops to 0 when the topic is no longer led. So a
    consumer never reads a message a failover can lose (docs/checker.md
    rule (e)), except a publish crepl answered with an error after
    cluster/ack_timeout: its NOTICE is released then (the unknown outcome).
    Redeliveries read seqs that were below hw when first delivered.
    Single node: none of this runs (route's cluster is NULL; hw is the max).
*/
#include "tern_route_priv.h"
#include "tern_partition.h"
#include <string.h>

uint32_t r_cluster_partition(r_route_t *self, const char *name) {
    return self->cluster
               ? tern_partition_of(name, strlen(name), tern_cluster_partitions(self->cluster))
               : 0;
}

bool r_cluster_leads(r_route_t *self, const char *name, uint64_t *epoch_p) {
    if (epoch_p) {
        *epoch_p = 0;
    }
    if (!self->cluster) {
        return true;
    }
    uint32_t p = r_cluster_partition(self, name);
    tern_partmap_record_t rec;
    if (!tern_cluster_record(self->cluster, p, &rec)) {
        return false;
    }
    if (epoch_p) {
        *epoch_p = rec.epoch;
    }
    return rec.leader == tern_cluster_self(self->cluster);
}

r_lead_change_t r_cluster_change(bool was_led, uint64_t was_epoch, bool led, uint64_t epoch) {
    if (was_led && led) {
        return epoch == was_epoch ? R_LEAD_SAME : R_LEAD_RESTART;
    }
    return was_led ? R_LEAD_STOP : led ? R_LEAD_START : R_LEAD_SAME;
}

//  TOPIC is no longer led: its durable groups forget their pending entries
//  (the store keeps them). A consumer's late ack of one finds nothing, so
//  this node writes no group state for a topic it does not lead: the
//  leader's replicated state is the only one (docs/cluster.md, "Group
//  state").
static void s_forget(r_topic_t *topic) {
    for (r_group_t *group = (r_group_t *)zlistx_first(topic->groups); group;
         group = (r_group_t *)zlistx_next(topic->groups)) {
        while (group->name[0] && group->head) {
            r_pend_destroy(group->head);
        }
    }
}

//  TOPIC became led: its durable groups take the stored state, i.e. the
//  leader's as replicated here (tern_crepl_group.c), not what this node
//  held when it last led the topic: lane cursors and pending entries as
//  stored, each entry due at its stored time. A group the store lacks
//  (deleted by the leader meanwhile) keeps its cursors.
static void s_adopt(r_route_t *self, r_topic_t *topic) {
    for (r_group_t *group = (r_group_t *)zlistx_first(topic->groups); group;
         group = (r_group_t *)zlistx_next(topic->groups)) {
        if (!group->name[0] || group->state != G_READY) {
            continue; //  ephemeral, or still opening (it reads the store then)
        }
        while (group->head) {
            r_pend_destroy(group->head);
        }
        tern_group_info_t info;
        tern_err_t err = r_read_begin(self);
        if (err == TERN_OK) {
            err = tern_store_group_get(self->reader, topic->id, group->name, &info);
        }
        if (err == TERN_OK) {
            memcpy(group->lane_next, info.lane_next, sizeof group->lane_next);
            r_load_t load = {self, group, true};
            err = tern_store_pending_list(self->reader, topic->id, group->name, r_load_pending,
                                          &load);
        }
        if (err != TERN_OK) {
            zsys_warning("route: group %s on %s: stored state not adopted: %s", group->name,
                         topic->name, tern_strerror(err));
        }
    }
}

//  The view moved: topics the store holds that route has not seen, then
//  each topic's `led` again.
static void s_rescan(r_route_t *self) {
    if (r_read_begin(self) == TERN_OK) {
        tern_store_topic_list(self->reader, r_topic_each, self); //  adds the missing ones
    }
    for (r_topic_t *topic = (r_topic_t *)zhashx_first(self->topics); topic;
         topic = (r_topic_t *)zhashx_next(self->topics)) {
        uint64_t epoch = 0;
        bool led = r_cluster_leads(self, topic->name, &epoch);
        r_lead_change_t change = r_cluster_change(topic->led, topic->epoch, led, epoch);
        topic->led = led;
        topic->epoch = epoch;
        if (change == R_LEAD_STOP || change == R_LEAD_RESTART) {
            topic->hw = 0; //  the next leadership's inherited NOTICE sets it again
            topic->adopt = false;
            s_forget(topic);
        }
        if (change == R_LEAD_START || change == R_LEAD_RESTART) {
            //  Taken over (also A -> B -> A between two of our looks, seen
            //  only as a new epoch: what we held from the first leadership
            //  is stale): its groups go on from the stored (replicated)
            //  state at the partition's inherited NOTICE, which crepl queues
            //  for every new epoch (r_cluster_inherit).
            topic->adopt = true;
        }
    }
    //  Joins after the loop: s_join may open read transactions and add to
    //  the topics' group lists, not to the table being walked.
    for (r_topic_t *topic = (r_topic_t *)zhashx_first(self->topics); topic;
         topic = (r_topic_t *)zhashx_next(self->topics)) {
        r_topic_join(self, topic, false);
    }
}

void r_cluster_tick(r_route_t *self, uint64_t now) {
    bool was_ok = self->lease_ok;
    self->lease_ok = tern_cluster_lease_ok(self->cluster);
    if (self->lease_ok && !was_ok) {
        //  Back from a lapse: what waited is looked at again.
        for (r_group_t *group = (r_group_t *)zlistx_first(self->groups); group;
             group = (r_group_t *)zlistx_next(self->groups)) {
            group->dirty = true;
            group->rescan = true;
        }
    }
    (void)now;
    r_cluster_sync(self);
}

void r_cluster_sync(r_route_t *self) {
    uint64_t version = tern_cluster_version(self->cluster); //  an atomic load
    if (version != self->view_version) {
        self->view_version = version;
        s_rescan(self);
    }
}

void r_cluster_raise(r_topic_t *topic, uint64_t seq, bool inherited) {
    if (inherited || seq > topic->hw) {
        topic->hw = seq;
    }
}

void r_cluster_inherit(r_route_t *self, const tern_notice_t *notice) {
    r_cluster_sync(self); //  crepl saw the view that made it leader: so do we now
    r_read_end(self);     //  adopt from a snapshot taken now, not an older one
    for (r_topic_t *topic = (r_topic_t *)zhashx_first(self->topics); topic;
         topic = (r_topic_t *)zhashx_next(self->topics)) {
        if (!topic->adopt || !topic->led || topic->partition != notice->partition) {
            continue;
        }
        topic->adopt = false;
        s_adopt(self, topic);
        //  Due redeliveries are looked at now.
        for (r_group_t *group = (r_group_t *)zlistx_first(topic->groups); group;
             group = (r_group_t *)zlistx_next(topic->groups)) {
            group->dirty = true;
            group->rescan = true;
            r_check_at(group, tern_now_ms());
        }
    }
}
