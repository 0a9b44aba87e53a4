/*  it_cluster_etcd.c - etcd drills of a clustered DC (issues 14 and 15):
    etcd restored from a backup, and how fast a node notices that etcd is
    gone.

    Restore (the dangerous one, docs/cluster.md "etcd backup and restore"):
    a snapshot of the three-member etcd is saved while the cluster takes
    writes; then partition 0's leader is killed, so its record moves on (a
    new leader, a new epoch, an ISR without the dead node) and publishes are
    acknowledged without it; then every etcd member is stopped and restored
    from the snapshot into fresh data dirs. The restored record names the
    dead node as leader, in its ISR, at an older epoch. The dead node is
    started again. It must not lead from that stale record (it lacks the
    messages acknowledged meanwhile), the epochs must not go back, and the
    service must return by itself: the producers (cluster_faults.h) publish
    again, `ternctl cluster verify` finds the replicas identical and
    tern-check finds every acknowledged message on every ISR replica. A
    second test restarts every node after the restore as well, so only what
    the nodes kept on disk (DATA/cluster-view) remembers the newer records.

    Detection: etcd frozen (every member SIGSTOPped: connections hang, as
    with a hung host) or killed, while a raw session per node publishes to
    a partition the node leads every 50 ms; each node's first refusal
    (TERN_ENOTLEADER) is the moment it detected the trouble, printed as a
    `detect:` line, for the default 2 s lease and the fast profile's 1 s.
    Nothing about time is asserted: every node must refuse clearly, and a
    SUBSCRIBE must be refused too (no deliveries without a lease).

    Quorum lost and back: two of three etcd members frozen for 10 s under
    load; `quorum:` lines say when each node and each producer was
    acknowledged again, counted from the moment quorum returned, and
    whether a partition changed leader or epoch (docs/cluster.md "Service
    after etcd returns"). Asserted: nothing acknowledged lost (verify,
    tern-check), never a time.
*/
#include "cluster_faults.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

TestSuite(cluster_etcd, .fini = it_fault_fini);

//  Polls etcd until PARTITION's record has a leader at an epoch of at
//  least MIN_EPOCH (the restore rolled it back below); *OUT gets the last
//  record read. True if it did within TIMEOUT_MS.
static bool s_wait_epoch_at_least(it_cluster_t *cl, uint32_t partition, uint64_t min_epoch,
                                  int timeout_ms, tern_partmap_record_t *out) {
    int64_t deadline = it_now_ms() + timeout_ms;
    do {
        if (it_cluster_record(cl, partition, out, true) && out->leader != TERN_NODE_NONE &&
            out->epoch >= min_epoch) {
            return true;
        }
        it_sleep_ms(100);
    } while (it_now_ms() < deadline);
    return false;
}

//  The restore drill; RESTART_ALL: every node is also killed and started
//  again after the restore.
static void s_restore_drill(bool restart_all) {
    it_fault_run_t *run = it_fault_run_start(3, false);
    it_cluster_t *cl = run->cl;
    cr_assert(it_fault_progress(run, 20, IT_FAULT_RESUME_MS), "no load before the snapshot");
    char snap[sizeof run->dir + 16];
    snprintf(snap, sizeof snap, "%s/etcd.db", run->dir);
    cr_assert(it_etcd_snapshot_save(cl->etcd, 0, snap), "etcdctl snapshot save failed");
    tern_partmap_record_t at_snapshot, moved_on, restored, back;
    cr_assert(it_cluster_wait_leader(cl, 0, -1, 0, 30000, &at_snapshot));
    int victim = (int)at_snapshot.leader;
    //  After the snapshot: partition 0 fails over and takes writes without
    //  the victim, which leaves its ISR.
    it_cluster_kill_out(cl, victim, 0, 30000);
    cr_assert(it_cluster_wait_leader(cl, 0, victim, at_snapshot.epoch, 30000, &moved_on));
    cr_assert(it_fault_progress(run, 30, IT_FAULT_RESUME_MS), "no acks after the failover");
    cr_assert(it_cluster_record(cl, 0, &moved_on, false));
    int64_t fault_at = it_now_ms();
    cr_assert(it_etcd_restore(cl->etcd, snap), "etcd did not come back from the snapshot");
    cr_assert(it_cluster_record(cl, 0, &restored, false));
    fprintf(stderr,
            "it_cluster_etcd: partition 0 at the snapshot: leader %u epoch %llu isr %u; "
            "after: leader %u epoch %llu isr %u; restored: leader %u epoch %llu isr %u\n",
            at_snapshot.leader, (unsigned long long)at_snapshot.epoch, at_snapshot.nisr,
            moved_on.leader, (unsigned long long)moved_on.epoch, moved_on.nisr, restored.leader,
            (unsigned long long)restored.epoch, restored.nisr);
    for (int i = 0; restart_all && i < cl->count; i++) {
        it_cluster_kill_node(cl, i);
    }
    for (int i = 0; i < cl->count; i++) {
        if (!it_cluster_node_running(cl, i) && !it_cluster_start_node(cl, i)) {
            it_cluster_dump_logs(cl);
            cr_assert_fail("node %d did not start", i);
        }
    }
    cr_assert(it_fault_progress(run, 20, IT_FAULT_RESUME_MS),
              "publishing did not resume after the restore");
    int64_t again_at = it_now_ms();
    cr_assert(s_wait_epoch_at_least(cl, 0, moved_on.epoch, 30000, &back),
              "partition 0's epoch went back: %llu after the restore, %llu before it",
              (unsigned long long)back.epoch, (unsigned long long)moved_on.epoch);
    cr_assert(it_cluster_wait_isr_full(cl, 0, 30000, &back),
              "partition 0's ISR did not become whole again");
    int64_t whole_at = it_now_ms();
    fprintf(stderr,
            "drill: etcd_restored%s publish_again_ms=%lld isr_whole_ms=%lld leader=%u "
            "epoch=%llu\n",
            restart_all ? "_nodes_restarted" : "", (long long)(again_at - fault_at),
            (long long)(whole_at - fault_at), back.leader, (unsigned long long)back.epoch);
    it_fault_run_finish(run);
    it_fault_check_refusals(run);
}

Test(cluster_etcd, restored_from_backup) {
    s_restore_drill(false);
}

Test(cluster_etcd, restored_and_every_node_restarted) {
    s_restore_drill(true);
}

//  --- Detection ------------------------------------------------------------

//  A raw session with node I and a topic of a partition it leads.
typedef struct {
    it_raw_t *raw;    //  session with the node alone
    char topic[64];   //  of a partition it leads
    uint64_t req;     //  last req_id sent
    int64_t sent;     //  it_now_ms() when the last probe was sent
    int64_t acked;    //  send time of the last acknowledged probe
    int64_t refused;  //  send time of the first refused probe, 0: none yet
    int64_t answered; //  it_now_ms() when that refusal came
    uint32_t code;    //  that refusal's code
    char reason[300]; //  and its reason
} s_probe_t;

//  Publishes one probe; true once the node refused it (ERROR).
static bool s_probe_once(s_probe_t *pr, uint32_t cmd) {
    tern_frame_t f;
    tern_frame_init(&f, cmd);
    f.req_id = ++pr->req;
    snprintf(f.topic, sizeof f.topic, "%s", pr->topic);
    f.fields |= TERN_F_TOPIC;
    if (cmd == TERN_CMD_PUBLISH) {
        f.fields |= TERN_F_PAYLOAD;
        f.payload = (const uint8_t *)"probe";
        f.payload_size = 5;
    }
    pr->sent = it_now_ms();
    if (it_raw_send_frame(pr->raw, &f) != TERN_OK) {
        return false;
    }
    tern_frame_t reply;
    //  Errors of earlier probes that timed out may come first: skip them.
    while (it_raw_recv_reply(pr->raw, &reply, 250) == TERN_OK) {
        if (reply.cmd == TERN_CMD_PUBACK) {
            //  In order, and only one probe is out at a time.
            pr->acked = pr->sent;
            return false;
        }
        if (reply.req_id != pr->req) {
            continue;
        }
        if (reply.cmd != TERN_CMD_ERROR) {
            pr->acked = pr->sent;
            return false;
        }
        pr->code = reply.code;
        snprintf(pr->reason, sizeof pr->reason, "%s", reply.reason);
        return true;
    }
    return false;
}

//  Opens PR: a raw session with node I and a topic named from PREFIX of
//  the first of PARTITIONS partitions it leads (per etcd), probed until
//  acknowledged (the ISR is whole, etcd fine). False if it leads none.
static bool s_probe_open(it_cluster_t *cl, int i, uint32_t partitions, const char *prefix,
                         s_probe_t *pr) {
    uint32_t p = 0;
    while (p < partitions && it_cluster_leader(cl, p) != i) {
        p++;
    }
    if (p == partitions) {
        return false;
    }
    it_cluster_topic_for(cl, p, prefix, pr->topic, sizeof pr->topic);
    pr->raw = it_raw_new(cl->node[i]->endpoint);
    cr_assert(pr->raw && it_raw_hello(pr->raw, prefix), "no session with node %d", i);
    int64_t deadline = it_now_ms() + 30000;
    while (s_probe_once(pr, TERN_CMD_PUBLISH)) {
        cr_assert_lt(it_now_ms(), deadline, "node %d: %s", i, pr->reason);
        it_sleep_ms(100);
    }
    return true;
}

//  Freezes (PAUSE) or kills etcd under a cluster with LEASE and reports
//  when each node refused.
static void s_detect(const char *lease, bool pause) {
    const char *flags[] = {"--lease", lease, NULL};
    it_cluster_t *cl = it_cluster_new(3, 1, 8, flags);
    cr_assert(cl, "cannot set up the cluster");
    cr_assert(it_cluster_start(cl, 60000), "the cluster did not start");
    s_probe_t probes[3];
    memset(probes, 0, sizeof probes);
    for (int i = 0; i < cl->count; i++) {
        cr_assert(s_probe_open(cl, i, 8, "detect", &probes[i]), "node %d leads no partition", i);
    }
    int64_t fault_at = it_now_ms();
    if (pause) {
        it_etcd_pause_member(cl->etcd, 0);
    } else {
        it_etcd_kill_member(cl->etcd, 0);
    }
    int64_t deadline = fault_at + 10000;
    int left = cl->count;
    while (left > 0 && it_now_ms() < deadline) {
        for (int i = 0; i < cl->count; i++) {
            s_probe_t *pr = &probes[i];
            if (!pr->refused && s_probe_once(pr, TERN_CMD_PUBLISH)) {
                pr->refused = pr->sent;
                pr->answered = it_now_ms();
                left--;
            }
        }
        it_sleep_ms(50);
    }
    for (int i = 0; i < cl->count; i++) {
        s_probe_t *pr = &probes[i];
        //  The node stopped acknowledging between the last acknowledged
        //  probe's send and the first refused one's.
        fprintf(stderr,
                "detect: lease=%s etcd=%s node=%d last_ack_sent_ms=%lld refused_sent_ms=%lld "
                "refusal_came_ms=%lld code=%s (%s)\n",
                lease, pause ? "frozen" : "killed", i, (long long)(pr->acked - fault_at),
                pr->refused ? (long long)(pr->refused - fault_at) : -1LL,
                pr->refused ? (long long)(pr->answered - fault_at) : -1LL,
                tern_errname((int)pr->code), pr->reason);
    }
    //  No delivery without a lease: a subscription is refused as well.
    bool sub_refused = s_probe_once(&probes[0], TERN_CMD_SUBSCRIBE);
    uint32_t sub_code = probes[0].code;
    if (pause) {
        it_etcd_resume_member(cl->etcd, 0);
    } else {
        cr_assert(it_etcd_start_member(cl->etcd, 0), "etcd did not restart");
    }
    for (int i = 0; i < cl->count; i++) {
        cr_assert(probes[i].refused, "node %d still acknowledged 10 s without etcd", i);
        cr_assert_eq(probes[i].code, TERN_ENOTLEADER, "node %d refused with %s: %s", i,
                     tern_errname((int)probes[i].code), probes[i].reason);
        it_raw_destroy(&probes[i].raw);
    }
    cr_assert(sub_refused && sub_code == TERN_ENOTLEADER,
              "a SUBSCRIBE without etcd was not refused with TERN_ENOTLEADER");
    cr_assert(it_cluster_wait_all_led(cl, 30000), "not led again after etcd returned");
    it_cluster_destroy(&cl);
}

Test(cluster_etcd, detection_default_lease_frozen) {
    s_detect("2s", true);
}

Test(cluster_etcd, detection_default_lease_killed) {
    s_detect("2s", false);
}

Test(cluster_etcd, detection_fast_profile_frozen) {
    s_detect("1s", true);
}

Test(cluster_etcd, detection_fast_profile_killed) {
    s_detect("1s", false);
}

//  --- Quorum lost and back ---------------------------------------------------

//  Watches the producers of RUN from quorum's return: the first
//  acknowledgement of each after it (polled every 5 ms, on a thread of its
//  own so the probes' waits do not blur it).
typedef struct {
    it_fault_run_t *run;                         //  whose producers
    unsigned long long base[IT_FAULT_PRODUCERS]; //  acks before quorum returned
    int64_t back[IT_FAULT_PRODUCERS];            //  it_now_ms() of the next one, 0: none yet
    int64_t deadline;                            //  gives up then
} s_watch_t;

//  When etcd serves a linearizable read again after quorum returned: a
//  client of its own reads every 20 ms (each read 100 ms at most), so the
//  report tells etcd's part from ternd's.
typedef struct {
    const char *endpoints; //  etcd's members
    int64_t deadline;      //  gives up then
    int64_t serves;        //  it_now_ms() of the first answered read, 0: none
} s_etcd_probe_t;

static void *s_watch_etcd(void *arg) {
    s_etcd_probe_t *e = arg;
    tern_etcd_t *etcd = tern_etcd_new(e->endpoints, 100);
    while (etcd && !e->serves && it_now_ms() < e->deadline) {
        tern_etcd_kvs_t *kvs = NULL;
        if (tern_etcd_get(etcd, "/quorum-probe", false, &kvs) == TERN_OK) {
            e->serves = it_now_ms();
        }
        tern_etcd_kvs_destroy(&kvs);
        it_sleep_ms(20);
    }
    tern_etcd_destroy(&etcd);
    return NULL;
}

static void *s_watch_producers(void *arg) {
    s_watch_t *w = arg;
    int left = IT_FAULT_PRODUCERS;
    while (left > 0 && it_now_ms() < w->deadline) {
        for (int k = 0; k < IT_FAULT_PRODUCERS; k++) {
            if (!w->back[k] && atomic_load(&w->run->prod[k].acked) > w->base[k]) {
                w->back[k] = it_now_ms();
                left--;
            }
        }
        it_sleep_ms(5);
    }
    return NULL;
}

//  etcd (three members) loses quorum for 10 s: two members SIGSTOPped
//  while the producers publish and a raw session per node probes a
//  partition that node leads. Once quorum is back, each probe publishes
//  every 20 ms until it is acknowledged; the `quorum:` lines report, from
//  the moment quorum returned, when each node and each producer was served
//  again, and whether a partition changed leader or epoch over the outage
//  (a needless failover). Nothing about time is asserted; the run ends as
//  every fault run does (verify, tern-check).
Test(cluster_etcd, quorum_lost_and_back) {
    it_fault_run_t *run = it_fault_run_start(3, false);
    it_cluster_t *cl = run->cl;
    cr_assert(it_fault_progress(run, 20, IT_FAULT_RESUME_MS), "no load before the fault");
    s_probe_t probes[IT_FAULT_NODES];
    memset(probes, 0, sizeof probes);
    tern_partmap_record_t before[IT_FAULT_PARTITIONS], after[IT_FAULT_PARTITIONS];
    for (uint32_t p = 0; p < IT_FAULT_PARTITIONS; p++) {
        cr_assert(it_cluster_record(cl, p, &before[p], false));
    }
    for (int i = 0; i < cl->count; i++) {
        s_probe_open(cl, i, IT_FAULT_PARTITIONS, "quorum", &probes[i]); //  none if it leads none
    }
    int leader = it_etcd_leader(cl->etcd);
    cr_assert_geq(leader, 0, "etcd has no leader");
    //  Two followers stop: the leader is left alone, without quorum.
    int a = (leader + 1) % 3, b = (leader + 2) % 3;
    it_etcd_pause_member(cl->etcd, a);
    it_etcd_pause_member(cl->etcd, b);
    it_sleep_ms(10000);
    s_watch_t watch = {.run = run};
    for (int k = 0; k < IT_FAULT_PRODUCERS; k++) {
        watch.base[k] = atomic_load(&run->prod[k].acked);
    }
    it_etcd_resume_member(cl->etcd, a);
    it_etcd_resume_member(cl->etcd, b);
    int64_t back_at = it_now_ms();
    int64_t deadline = back_at + 30000;
    watch.deadline = deadline;
    s_etcd_probe_t etcd_probe = {.endpoints = cl->etcd->endpoints, .deadline = deadline};
    pthread_t watcher, etcd_watcher;
    cr_assert_eq(pthread_create(&watcher, NULL, s_watch_producers, &watch), 0);
    cr_assert_eq(pthread_create(&etcd_watcher, NULL, s_watch_etcd, &etcd_probe), 0);
    int left = 0;
    for (int i = 0; i < cl->count; i++) {
        left += probes[i].raw != NULL;
        probes[i].acked = 0;
    }
    while (left > 0 && it_now_ms() < deadline) {
        for (int i = 0; i < cl->count; i++) {
            s_probe_t *pr = &probes[i];
            if (pr->raw && !pr->acked) {
                s_probe_once(pr, TERN_CMD_PUBLISH);
                left -= pr->acked != 0;
            }
        }
        it_sleep_ms(20);
    }
    for (int i = 0; i < cl->count; i++) {
        s_probe_t *pr = &probes[i];
        if (pr->raw) {
            fprintf(stderr, "quorum: node=%d first_ack_sent_ms=%lld last_code=%s (%s)\n", i,
                    pr->acked ? (long long)(pr->acked - back_at) : -1LL,
                    tern_errname((int)pr->code), pr->reason);
        }
    }
    pthread_join(watcher, NULL);
    pthread_join(etcd_watcher, NULL);
    fprintf(stderr, "quorum: etcd_serves_ms=%lld\n",
            etcd_probe.serves ? (long long)(etcd_probe.serves - back_at) : -1LL);
    for (int k = 0; k < IT_FAULT_PRODUCERS; k++) {
        int64_t at = watch.back[k];
        fprintf(stderr, "quorum: producer=%d partition=%u first_ack_ms=%lld\n", k,
                run->prod[k].partition, at ? (long long)(at - back_at) : -1LL);
    }
    for (uint32_t p = 0; p < IT_FAULT_PARTITIONS; p++) {
        cr_assert(it_cluster_record(cl, p, &after[p], false));
        fprintf(stderr, "quorum: partition=%u leader %u -> %u, epoch %llu -> %llu, isr %u -> %u\n",
                p, before[p].leader, after[p].leader, (unsigned long long)before[p].epoch,
                (unsigned long long)after[p].epoch, before[p].nisr, after[p].nisr);
    }
    for (int i = 0; i < cl->count; i++) {
        it_raw_destroy(&probes[i].raw);
    }
    it_fault_run_finish(run);
    it_fault_check_refusals(run);
}
