/*  it_cluster_fault.c - fault tests of a clustered DC (issue 14, "Proof").

    Each test starts etcd and three ternd nodes (cluster_harness.h), puts
    them under load from producers that use producer ids (libtern, one
    synchronous publish at a time, every attempt recorded), injects one
    fault, waits until the service returns by itself, lets a consumer group
    read every topic from its leader, runs `ternctl cluster verify`, then
    freezes the cluster (kill -9 of every node), reads each in-sync
    replica's data dir with tern_store_new and hands the whole history to
    tern-check (docs/checker.md): every acknowledged message must be on
    every ISR replica exactly once, at its seq, in producer order, delivered
    to the group; and (last, see s_check_refusals) nothing refused as
    TERN_EREPLICAS may have been kept (conn refuses with it before the
    storer; a publish appended and not confirmed gets TERN_ETIMEOUT).

    Faults (short form; tools/chaos/leader-kills.sh runs the long one):
    kill -9 of a partition leader in a loop, of a follower, of the
    controller; SIGSTOP of a leader past its lease then SIGCONT (a raw
    client queues publishes to it while it is stopped: it must acknowledge
    none of them); every node killed at once; a rolling restart; one of
    three etcd members killed; etcd stopped for 10 s; a leader cut off from
    its followers while it reaches etcd, and one cut off from etcd while it
    reaches its followers (here links are cut inside the processes by
    cut_shim.c; it_cluster_netns.c runs the same two tests with real
    blackhole routes between network namespaces it creates).

    The run itself (producers, consumer group, history, checker) is
    cluster_faults.c's, shared with it_cluster_netns.c, which runs the two
    split tests between network namespaces.

    TERN_FAULT_LOGS=1 prints every node's log (its last 8 KB) before the
    freeze. TERN_CHAOS_KILLS=N sets the leader kills of
    cluster_fault/leader_kills (default 20, as issue 14 asks); each kill prints one `failover:`
    line and the test a `failover-summary:` line with p50/p99 (no timing is
    asserted).
*/

#include "cluster_faults.h"
#include "tern_partition.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_KILLS_MAX 1000

//  No per-test timeout: ctest bounds the short form, and the long form
//  (TERN_CHAOS_KILLS) may run for hours.
TestSuite(cluster_fault, .fini = it_fault_fini);

//  The harness itself, without ternd: the map is read from etcd as the
//  nodes write it (epoch from the value, else the key's mod_revision), and
//  topic_for finds topics of a given partition.
Test(cluster_fault, harness_reads_the_map) {
    it_cluster_t *cl = it_cluster_new(IT_FAULT_NODES, 1, IT_FAULT_PARTITIONS, NULL);
    cr_assert(cl, "cannot set up the cluster");
    char key[96];
    snprintf(key, sizeof key, "/tern/%s/partitions/1", cl->name);
    const char *leader_change = "partition=1 leader=2 replicas=2,0,1 isr=2,0";
    int64_t revision = 0;
    cr_assert_eq(tern_etcd_put(cl->kv, key, leader_change, strlen(leader_change), 0, &revision),
                 TERN_OK, "%s", tern_etcd_reason(cl->kv));
    tern_partmap_record_t rec;
    cr_assert(it_cluster_record(cl, 1, &rec, false));
    cr_assert_eq(rec.leader, 2);
    cr_assert_eq(rec.epoch, (uint64_t)revision, "epoch %llu, mod_revision %lld",
                 (unsigned long long)rec.epoch, (long long)revision);
    cr_assert_eq(rec.nisr, 2);
    cr_assert_eq(it_cluster_leader(cl, 1), 2);
    //  An ISR-only change keeps the epoch in the value.
    const char *isr_change = "partition=1 leader=2 epoch=7 replicas=2,0,1 isr=2,0,1";
    cr_assert_eq(tern_etcd_put(cl->kv, key, isr_change, strlen(isr_change), 0, NULL), TERN_OK);
    cr_assert(it_cluster_wait_isr_full(cl, 1, 1000, &rec));
    cr_assert_eq(rec.epoch, 7);
    //  A leader change is what wait_leader waits for.
    cr_assert_not(it_cluster_wait_leader(cl, 1, 2, 0, 100, &rec));
    cr_assert(it_cluster_wait_leader(cl, 1, 0, revision, 100, &rec));
    cr_assert_eq(it_cluster_leader(cl, 0), -1, "no record: no leader");
    cr_assert_not(it_cluster_record(cl, 0, &rec, true));
    const char *garbage = "leader=banana";
    cr_assert_eq(tern_etcd_put(cl->kv, key, garbage, strlen(garbage), 0, NULL), TERN_OK);
    cr_assert_not(it_cluster_record(cl, 1, &rec, true), "a malformed record is no record");
    char controller[96];
    snprintf(controller, sizeof controller, "/tern/%s/controller", cl->name);
    cr_assert_eq(it_cluster_controller(cl), -1);
    cr_assert_eq(tern_etcd_put(cl->kv, controller, "2", 1, 0, NULL), TERN_OK);
    cr_assert_eq(it_cluster_controller(cl), 2);
    for (uint32_t p = 0; p < IT_FAULT_PARTITIONS; p++) {
        char topic[64];
        it_cluster_topic_for(cl, p, "self", topic, sizeof topic);
        cr_assert_eq(tern_partition_of(topic, strlen(topic), IT_FAULT_PARTITIONS), p);
    }
    char eps[IT_CLUSTER_NODES_MAX * 64];
    it_cluster_endpoints_from(cl, 2, eps, sizeof eps);
    cr_assert(strncmp(eps, cl->node[2]->endpoint, strlen(cl->node[2]->endpoint)) == 0, "%s", eps);
    cr_assert_eq(strlen(eps), strlen(cl->endpoints));
    it_cluster_destroy(&cl);
}

//  The link cuts themselves: with its client port cut, a node answers no
//  ternctl; healed, it does again.
Test(cluster_fault, harness_cuts_links) {
    it_cluster_t *cl = it_cluster_new(1, 1, 1, it_fault_flags);
    cr_assert(cl, "cannot set up the cluster");
    cr_assert(it_cluster_enable_cuts(cl));
    cr_assert(it_cluster_start(cl, 60000), "the node did not start");
    it_result_t r;
    it_ctl(&r, cl->node[0], 10000, "status", NULL);
    it_assert_ok(&r, "status before the cut");
    it_result_free(&r);
    int port = cl->node[0]->port;
    cr_assert(it_cluster_cut(cl, 0, &port, 1));
    int rc = it_ctl(&r, cl->node[0], 10000, "--timeout", "1s", "status", NULL);
    cr_assert_neq(rc, 0, "ternctl status answered through a cut link:\n%s", r.out);
    it_result_free(&r);
    cr_assert(it_cluster_cut(cl, 0, NULL, 0));
    it_ctl(&r, cl->node[0], 10000, "status", NULL);
    it_assert_ok(&r, "status after the heal");
    it_result_free(&r);
    it_cluster_destroy(&cl);
}

static double s_percentile(int64_t *v, int n, double q) {
    for (int i = 1; i < n; i++) {
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            int64_t t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    }
    int k = (int)(q * (n - 1) + 0.5);
    return n > 0 ? (double)v[k] : 0;
}

//  kill -9 of partition 0's leader; returns the failover times: until etcd
//  names a new leader, and until the producer's next acknowledgement after
//  that (both from the kill).
static void s_kill_leader_once(it_fault_run_t *run, int k, int64_t *leader_ms, int64_t *ack_ms) {
    it_fault_producer_t *p = &run->prod[0];
    tern_partmap_record_t rec;
    cr_assert(it_cluster_wait_leader(run->cl, p->partition, -1, 0, 30000, &rec));
    int victim = (int)rec.leader;
    int64_t t0 = it_now_ms();
    it_cluster_kill_node(run->cl, victim);
    cr_assert(it_cluster_wait_leader(run->cl, p->partition, victim, rec.epoch, 30000, &rec),
              "kill %d: no new leader after node %d", k, victim);
    *leader_ms = it_now_ms() - t0;
    unsigned long long acked = atomic_load(&p->acked);
    int64_t deadline = it_now_ms() + IT_FAULT_RESUME_MS;
    while (atomic_load(&p->acked) == acked && it_now_ms() < deadline) {
        it_sleep_ms(5);
    }
    cr_assert_gt(atomic_load(&p->acked), acked, "kill %d: no ack after the new leader", k);
    *ack_ms = atomic_load(&p->last_ack) - t0;
    fprintf(stderr,
            "failover: kill %d node %d -> leader %u epoch %llu leader_ms=%lld ack_ms=%lld\n", k,
            victim, rec.leader, (unsigned long long)rec.epoch, (long long)*leader_ms,
            (long long)*ack_ms);
    cr_assert(it_cluster_start_node(run->cl, victim), "node %d did not restart", victim);
    //  The next kill must find the restarted node back in sync, else it
    //  would take the last in-sync copy down with it.
    cr_assert(it_cluster_wait_isr_full(run->cl, p->partition, 30000, &rec),
              "kill %d: node %d did not rejoin the ISR", k, victim);
}

Test(cluster_fault, leader_kills) {
    const char *env = getenv("TERN_CHAOS_KILLS");
    int kills = env ? atoi(env) : 20;
    kills = kills < 1 ? 1 : kills > S_KILLS_MAX ? S_KILLS_MAX : kills;
    static int64_t leader_ms[S_KILLS_MAX], ack_ms[S_KILLS_MAX];
    it_fault_run_t *run = it_fault_run_start(1, false);
    cr_assert(it_fault_progress(run, 20, IT_FAULT_RESUME_MS), "no load before the first kill");
    for (int k = 0; k < kills; k++) {
        s_kill_leader_once(run, k + 1, &leader_ms[k], &ack_ms[k]);
        cr_assert(it_fault_progress(run, 10, IT_FAULT_RESUME_MS),
                  "kill %d: publishing did not resume", k + 1);
    }
    fprintf(stderr,
            "failover-summary: kills=%d leader_p50_ms=%.0f leader_p99_ms=%.0f ack_p50_ms=%.0f "
            "ack_p99_ms=%.0f\n",
            kills, s_percentile(leader_ms, kills, 0.5), s_percentile(leader_ms, kills, 0.99),
            s_percentile(ack_ms, kills, 0.5), s_percentile(ack_ms, kills, 0.99));
    it_fault_run_finish(run);
    it_fault_check_refusals(run);
}

//  A follower of partition 0 (one that leads neither producer's partition
//  if there is one) dies; the leader goes on without it.
Test(cluster_fault, follower_kill) {
    it_fault_run_t *run = it_fault_run_start(1, false);
    cr_assert(it_fault_progress(run, 20, IT_FAULT_RESUME_MS), "no load before the fault");
    tern_partmap_record_t rec;
    cr_assert(it_cluster_record(run->cl, 0, &rec, false));
    int victim = -1;
    for (uint32_t k = 0; k < rec.nreplicas && victim < 0; k++) {
        if (rec.replicas[k] != rec.leader) {
            victim = (int)rec.replicas[k];
        }
    }
    cr_assert_geq(victim, 0, "partition 0 has no follower");
    it_cluster_kill_node(run->cl, victim);
    cr_assert(it_fault_progress(run, 20, IT_FAULT_RESUME_MS),
              "publishing stopped with a follower down");
    cr_assert(it_cluster_start_node(run->cl, victim), "node %d did not restart", victim);
    cr_assert(it_cluster_wait_isr_full(run->cl, 0, 30000, &rec), "node %d did not rejoin", victim);
    it_fault_run_finish(run);
    it_fault_check_refusals(run);
}

//  The controller dies: another node takes the role, the partitions it led
//  fail over.
Test(cluster_fault, controller_kill) {
    it_fault_run_t *run = it_fault_run_start(1, false);
    cr_assert(it_fault_progress(run, 20, IT_FAULT_RESUME_MS), "no load before the fault");
    int victim = it_cluster_controller(run->cl);
    cr_assert_geq(victim, 0, "etcd names no controller");
    it_cluster_kill_node(run->cl, victim);
    int64_t deadline = it_now_ms() + 30000;
    int now = victim;
    while ((now < 0 || now == victim) && it_now_ms() < deadline) {
        it_sleep_ms(20);
        now = it_cluster_controller(run->cl);
    }
    cr_assert(now >= 0 && now != victim, "no new controller after node %d", victim);
    for (uint32_t p = 0; p < IT_FAULT_PARTITIONS; p++) {
        tern_partmap_record_t rec;
        cr_assert(it_cluster_wait_leader(run->cl, p, victim, 0, 30000, &rec),
                  "partition %u still led by the dead controller", p);
    }
    cr_assert(it_fault_progress(run, 20, IT_FAULT_RESUME_MS), "publishing did not resume");
    cr_assert(it_cluster_start_node(run->cl, victim), "node %d did not restart", victim);
    it_fault_run_finish(run);
    it_fault_check_refusals(run);
}

//  SIGSTOP of partition 0's leader past its lease, while a raw client
//  connected to it alone queues publishes to it; SIGCONT once etcd names a
//  new leader. Every answer the node gives them comes after the new epoch
//  began, so it must acknowledge none (checked here: the checker has no
//  clocks); and any it did acknowledge is a message the new leader never
//  got, which tern-check reports as lost or as a seq given twice.
Test(cluster_fault, paused_leader) {
    it_fault_run_t *run = it_fault_run_start(1, false);
    cr_assert(it_fault_progress(run, 20, IT_FAULT_RESUME_MS), "no load before the fault");
    tern_partmap_record_t rec;
    cr_assert(it_cluster_wait_leader(run->cl, 0, -1, 0, 30000, &rec));
    int victim = (int)rec.leader;
    static it_fault_producer_t stale;
    it_raw_t *raw = it_fault_stale_new(run, victim, &stale);
    it_cluster_pause_node(run->cl, victim);
    it_fault_stale_send(raw, &stale);
    cr_assert(it_cluster_wait_leader(run->cl, 0, victim, rec.epoch, 30000, &rec),
              "no new leader while node %d is stopped", victim);
    cr_assert(it_fault_progress(run, 10, IT_FAULT_RESUME_MS),
              "publishing did not move to the new leader");
    it_cluster_resume_node(run->cl, victim);
    int deposed_acks = it_fault_stale_answers(raw, &stale, 10000);
    it_raw_destroy(&raw);
    cr_assert(it_cluster_node_running(run->cl, victim), "node %d died after SIGCONT", victim);
    it_fault_run_finish(run);
    cr_assert_eq(deposed_acks, 0,
                 "node %d acknowledged %d publishes after it lost partition 0 (epoch %llu began)",
                 victim, deposed_acks, (unsigned long long)rec.epoch);
    it_fault_check_refusals(run);
}

//  Every node killed at once, then all started again.
Test(cluster_fault, all_killed) {
    it_fault_run_t *run = it_fault_run_start(1, false);
    cr_assert(it_fault_progress(run, 20, IT_FAULT_RESUME_MS), "no load before the fault");
    for (int i = 0; i < run->cl->count; i++) {
        it_cluster_kill_node(run->cl, i);
    }
    it_sleep_ms(500);
    cr_assert(it_cluster_start(run->cl, 60000), "the cluster did not come back");
    it_fault_run_finish(run);
    it_fault_check_refusals(run);
}

//  Each node in turn: SIGTERM (a clean exit), start, every partition back
//  in sync before the next.
Test(cluster_fault, rolling_restart) {
    it_fault_run_t *run = it_fault_run_start(1, false);
    cr_assert(it_fault_progress(run, 20, IT_FAULT_RESUME_MS), "no load before the restarts");
    for (int i = 0; i < run->cl->count; i++) {
        int rc = it_cluster_stop_node(run->cl, i, 15000);
        cr_assert_eq(rc, 0, "node %d: exit %d on SIGTERM", i, rc);
        cr_assert(it_fault_progress(run, 5, IT_FAULT_RESUME_MS),
                  "publishing stopped with node %d down", i);
        cr_assert(it_cluster_start_node(run->cl, i), "node %d did not restart", i);
        for (uint32_t p = 0; p < IT_FAULT_PARTITIONS; p++) {
            tern_partmap_record_t rec;
            cr_assert(it_cluster_wait_isr_full(run->cl, p, 30000, &rec),
                      "partition %u not back in sync after node %d", p, i);
        }
    }
    it_fault_run_finish(run);
    it_fault_check_refusals(run);
}

//  One PUBLISH (no producer id) of partition 0's topic, by a raw DEALER on
//  node I alone (libtern would follow the leader and retry), while etcd is
//  down: true if the node refused it clearly, ERROR TERN_ENOTLEADER or
//  TERN_EREPLICAS, within 4 s.
static bool s_probe(it_fault_run_t *run, int i) {
    it_raw_t *raw = it_raw_new(run->cl->node[i]->endpoint);
    cr_assert(raw && it_raw_hello(raw, "probe"), "no session with node %d without etcd", i);
    tern_frame_t f;
    tern_frame_init(&f, TERN_CMD_PUBLISH);
    f.req_id = 7;
    snprintf(f.topic, sizeof f.topic, "%s", run->prod[0].topic);
    f.fields |= TERN_F_TOPIC | TERN_F_PAYLOAD;
    f.payload = (const uint8_t *)"probe";
    f.payload_size = 5;
    cr_assert_eq(it_raw_send_frame(raw, &f), TERN_OK);
    tern_frame_t reply;
    tern_err_t rc = it_raw_recv_reply(raw, &reply, 4000);
    uint32_t code = rc != TERN_OK                 ? (uint32_t)rc
                    : reply.cmd == TERN_CMD_ERROR ? reply.code
                                                  : TERN_OK;
    fprintf(stderr, "it_cluster_fault: probe of node %d without etcd: %s %s: %s\n", i,
            rc != TERN_OK ? "no answer" : tern_cmd_name(reply.cmd), tern_errname((int)code),
            rc == TERN_OK && reply.cmd == TERN_CMD_ERROR ? reply.reason : "");
    it_raw_destroy(&raw);
    return code == TERN_ENOTLEADER || code == TERN_EREPLICAS;
}

//  etcd entirely stopped for 10 s: publishes get a clear error
//  (TERN_ENOTLEADER or TERN_EREPLICAS, not a timeout), no node dies, and
//  service returns by itself once etcd is back.
Test(cluster_fault, etcd_outage) {
    it_fault_run_t *run = it_fault_run_start(1, false);
    cr_assert(it_fault_progress(run, 20, IT_FAULT_RESUME_MS), "no load before the outage");
    unsigned long long clear = 0;
    for (int i = 0; i < IT_FAULT_PRODUCERS; i++) {
        clear += atomic_load(&run->prod[i].clear);
    }
    it_etcd_stop(run->cl->etcd);
    int64_t back_at = it_now_ms() + 10000;
    //  Past the lease: ask every node directly (the producers only see
    //  the node they are on).
    it_sleep_ms(3000);
    int answered = 0;
    for (int i = 0; i < run->cl->count; i++) {
        answered += s_probe(run, i);
    }
    it_sleep_ms((int)(back_at - it_now_ms() > 0 ? back_at - it_now_ms() : 0));
    unsigned long long during = 0;
    for (int i = 0; i < IT_FAULT_PRODUCERS; i++) {
        during += atomic_load(&run->prod[i].clear);
    }
    if (answered < run->cl->count) {
        it_cluster_dump_logs(run->cl);
    }
    cr_assert(it_etcd_start_member(run->cl->etcd, 0), "etcd did not restart");
    for (int i = 0; i < run->cl->count; i++) {
        cr_assert(it_cluster_node_running(run->cl, i), "node %d died without etcd", i);
    }
    cr_assert_eq(answered, run->cl->count,
                 "without etcd, %d of %d nodes refused a publish clearly (TERN_ENOTLEADER or "
                 "TERN_EREPLICAS within 4 s)",
                 answered, run->cl->count);
    it_fault_run_finish(run);
    //  What the application sees: libtern (following leaders) must not turn
    //  every refusal into a timeout. Last, so that the checks above run
    //  whatever the client library does.
    cr_assert_gt(during, clear,
                 "the producers (libtern) saw no TERN_ENOTLEADER or TERN_EREPLICAS without "
                 "etcd, only timeouts: the nodes' refusals did not reach the application");
    it_fault_check_refusals(run);
}

//  One of three etcd members (the leader) killed and restarted: the cluster
//  rides through the etcd election.
Test(cluster_fault, etcd_member_kill) {
    it_fault_run_t *run = it_fault_run_start(3, false);
    cr_assert(it_fault_progress(run, 20, IT_FAULT_RESUME_MS), "no load before the fault");
    int member = it_etcd_leader(run->cl->etcd);
    cr_assert_geq(member, 0, "no etcd leader");
    it_etcd_kill_member(run->cl->etcd, member);
    cr_assert(it_fault_progress(run, 20, IT_FAULT_RESUME_MS),
              "publishing stopped with etcd member %d down", member);
    for (int i = 0; i < run->cl->count; i++) {
        cr_assert(it_cluster_node_running(run->cl, i), "node %d died", i);
    }
    cr_assert(it_etcd_start_member(run->cl->etcd, member), "etcd member %d did not restart",
              member);
    it_fault_run_finish(run);
    it_fault_check_refusals(run);
}

//  Partition 0's leader cut off from its followers, still reaching etcd
//  (cluster_faults.h; it_cluster_netns.c runs it with real routes).
Test(cluster_fault, leader_cut_from_followers) {
    it_fault_leader_cut_from_followers();
}

//  Partition 0's leader cut off from etcd only (cluster_faults.h;
//  it_cluster_netns.c runs it with real routes).
Test(cluster_fault, leader_cut_from_etcd) {
    it_fault_leader_cut_from_etcd();
}
