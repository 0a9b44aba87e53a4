/*  cluster_faults.h - the fault runs of it_cluster_fault.c and
    it_cluster_netns.c: a clustered DC under load, one fault, the end.

    A run (it_fault_run_start) is a cluster of IT_FAULT_NODES nodes
    (cluster_harness.h) with fast failure detection, a history file, and
    IT_FAULT_PRODUCERS producer threads (libtern, producer ids, one
    synchronous publish at a time, every attempt recorded in the history).
    A test injects its fault, then it_fault_run_finish waits until service
    returned, lets a consumer group read every topic, runs `ternctl cluster
    verify`, kills every node, dumps each ISR replica's data dir into the
    history and runs tern-check on it (docs/checker.md, rules a-c and e);
    it_fault_check_refusals, the last step, checks rule d.

    The two split tests are here whole (it_fault_leader_cut_from_*), so
    that it_cluster_fault.c runs them with cut_shim.c's silent sockets and
    it_cluster_netns.c with real blackhole routes between namespaces
    (it_cluster_cut does either, cluster_harness.c).
*/
#ifndef TERN_IT_CLUSTER_FAULTS_H_INCLUDED
#define TERN_IT_CLUSTER_FAULTS_H_INCLUDED

#include "cluster_harness.h"
#include "test_dir.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>

#define IT_FAULT_NODES      3
#define IT_FAULT_PARTITIONS 4
#define IT_FAULT_PRODUCERS  2 //  producer I publishes to a topic of partition I
#define IT_FAULT_RESUME_MS  45000

/*  The ternd flags of a run (NULL-terminated): fast failure detection, so
    a test spends seconds per fault; ack_timeout above isr_lag so a dead
    follower leaves the ISR before publishes time out. */
extern const char *const it_fault_flags[];

typedef struct it_fault_run_t it_fault_run_t;

//  One producer thread and what it saw.
typedef struct {
    it_fault_run_t *run;   //  the test it belongs to
    char producer[32];     //  producer id
    char topic[64];        //  its topic
    uint32_t partition;    //  the topic's partition
    int first;             //  node whose endpoint it tries first
    pthread_t thread;      //  the thread
    uint64_t next_seq;     //  first producer_seq not acknowledged yet (thread only)
    tern_err_t last_code;  //  outcome of its last attempt (thread only)
    atomic_ullong acked;   //  acknowledgements
    atomic_ullong errors;  //  failed attempts
    atomic_ullong clear;   //  failed with TERN_ENOTLEADER or TERN_EREPLICAS
    atomic_llong last_ack; //  it_now_ms() of the last acknowledgement
} it_fault_producer_t;

//  One test's cluster, history file and producers.
struct it_fault_run_t {
    it_cluster_t *cl;                             //  the cluster
    char dir[TEST_DIR_MAX];                       //  temp dir of the history
    char path[TEST_DIR_MAX + 32];                 //  the history file
    FILE *hist;                                   //  open on PATH, line-buffered writes
    atomic_bool stop;                             //  producers stop at their next attempt
    it_fault_producer_t prod[IT_FAULT_PRODUCERS]; //  the producers
};

/*  A cluster of IT_FAULT_NODES over ETCD_MEMBERS with every partition led
    (its links cuttable when CUTS), a history file, and the producers
    running. The run is static: a failed assertion leaves the test while
    the producers still use it (it_fault_fini stops them). */
it_fault_run_t *it_fault_run_start(int etcd_members, bool cuts);

/*  Waits until every producer got WANT more acknowledgements than it had
    at the call, or TIMEOUT_MS; false (with the counts) if one did not. */
bool it_fault_progress(it_fault_run_t *run, unsigned long long want, int timeout_ms);

/*  The end of every test: service must have returned; the group reads
    every topic; the ISR of each partition is read from etcd; `ternctl
    cluster verify` compares the replicas; every node is killed at once
    (the logs freeze); each ISR replica's log is dumped; the checker runs. */
void it_fault_run_finish(it_fault_run_t *run);

/*  The last step of every test, after its own assertions: the checker on
    rule (d) for TERN_EREPLICAS, which the issue states as "nothing refused
    as TERN_EREPLICAS was later acknowledged"; then the history goes.
    TERN_EREPLICAS is answered by conn before the storer (the record's ISR
    is below min_insync); what the leader appended and its ISR did not
    confirm is TERN_ETIMEOUT (outcome unknown, not checked by rule d). */
void it_fault_check_refusals(it_fault_run_t *run);

/*  Criterion .fini: a test that failed with its producers running stops
    them before the cluster they use goes; then it_cluster_teardown. */
void it_fault_fini(void);

/*  The producer STALE (partition 0's topic) and a raw session with node
    VICTIM alone, for a leader about to be deposed. Caller owns the
    session. */
it_raw_t *it_fault_stale_new(it_fault_run_t *run, int victim, it_fault_producer_t *stale);

/*  Sends the stale PUBLISHes (producer STALE, producer_seq = req_id = 1..)
    on RAW, which is connected to the stopped leader alone. */
void it_fault_stale_send(it_raw_t *raw, const it_fault_producer_t *stale);

/*  Reads the stopped-then-resumed leader's answers for up to TIMEOUT_MS,
    recording each as a publish line; returns how many were PUBACKs with
    TERN_OK. Only that node can have sent them (RAW talks to it alone). */
int it_fault_stale_answers(it_raw_t *raw, it_fault_producer_t *stale, int timeout_ms);

/*  A whole test: partition 0's leader cut off from every other node's
    cluster endpoint (and they from its), while it still reaches etcd and
    its clients: it keeps its lease and its leadership, so it must shrink
    its ISR and refuse (TERN_EREPLICAS), never acknowledge with one copy;
    after the heal the followers catch up and rejoin; verify, tern-check. */
void it_fault_leader_cut_from_followers(void);

/*  A whole test: partition 0's leader cut off from etcd only: its lease
    lapses, another node leads, and the deposed node, still running and
    still reaching its followers, must acknowledge nothing (a raw client
    asks it directly); after the heal it rejoins; verify, tern-check. */
void it_fault_leader_cut_from_etcd(void);

#endif
