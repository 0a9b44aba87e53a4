/*  tern_crepl.h - the crepl actor: replication inside a clustered DC.

    See the top of tern_crepl.c for its pipe commands, sockets and items, and
    docs/cluster.md ("Replication inside the DC") for the guarantees. One
    thread per clustered node does both sides: as the leader of a partition
    it ships every record the storer commits to the partition's followers
    and holds the publishes' COMMITTED item until the ack rule
    (tern_partmap_ack_check) says every in-sync replica has them, and the
    commit's NOTICE likewise before route may deliver them; as a
    follower it syncs with each partition's leader and applies the leader's
    log through the storer (tern_repl_batch_t with in_dc set). A single node
    (no cluster/etcd) never starts it.
*/
#ifndef TERN_CREPL_H_INCLUDED
#define TERN_CREPL_H_INCLUDED

#include "tern_cluster.h"
#include "tern_config.h"
#include "tern_metrics.h"
#include "tern_store.h"
#include "tern_work.h"
#include <czmq.h>
#include <stdatomic.h>

/*  Figures for metrics, written by the actor, read with relaxed atomics. */
typedef struct {
    _Atomic uint64_t stale_frames;   //  in-DC frames refused: older epoch than the view's
    _Atomic uint64_t unconfirmed;    //  publishes answered TERN_ETIMEOUT (ISR did not confirm)
    _Atomic uint64_t not_leader;     //  publishes answered TERN_ENOTLEADER after the commit
    _Atomic uint64_t shipped;        //  records shipped live to followers
    _Atomic uint64_t syncs_answered; //  CREPL_SYNC answered as a leader
    _Atomic uint64_t resyncs;        //  streams dropped and synced again as a follower
    _Atomic uint64_t applied;        //  records applied as a follower (not duplicates)
    _Atomic uint64_t truncated;      //  records removed by truncation as a follower
    _Atomic uint64_t group_ops;      //  group ops shipped live to followers (CREPL_GROUP)
    _Atomic uint64_t group_skipped;  //  group ops / entries a follower lacked the topic, seq or
                                     //  group of (skipped, logged)
} tern_crepl_stats_t;

typedef struct {
    tern_store_t *store;         //  borrowed; outlives the actor (read only)
    const tern_config_t *config; //  borrowed; outlives the actor
    tern_metrics_t *metrics;     //  borrowed; outlives the actor
    tern_cluster_t *cluster;     //  borrowed; outlives the actor
    tern_crepl_stats_t *stats;   //  borrowed, may be NULL; outlives the actor
    bool deferred;               //  the storer's args->deferred: our copy is durable at SYNCED
    char inbox[128];             //  endpoint crepl binds (PULL: COMMITTED, REPL_DONE)
    char storer_inbox[128];      //  the storer's inbox (crepl connects PUSH)
    char conn_inbox[128];        //  conn's inbox (crepl forwards COMMITTED there)
    char route_inbox[128];       //  route's inbox (crepl forwards NOTICE there)
    char repl_inbox[128];        //  the repl actor's inbox ("": no cross-DC replication;
                                 //  crepl hands it its committed batches once the ISR has them,
                                 //  and OBSAFE)
    int bind_rc;                 //  out: 0 when cluster/listen is bound
    char error[256];             //  out: why it could not start
} tern_crepl_args_t;

/*  Group state replication (tern_crepl_group.c), called on the storer's
    thread. tern_crepl_group_collect: after a commit, appends the committed
    group ops of OPS (those that succeeded) to NOTICE's gops, for crepl to
    ship. tern_crepl_group_queue: queues an in-DC follower's CREPL_GROUP or
    CREPL_GSTATE record REC on BATCH (by topic name); REC->result.seq counts
    what this replica lacked (skipped). REC stays owned by the caller.
    tern_crepl_group_collect_ackstate: after a commit, appends the change a
    peer DC's REPL_ACKSTATE REC made here (REC->result.seq set) as an ack or
    dead op with aux TERN_GOP_AUX_PEER; nothing when it changed nothing. */
void tern_crepl_group_collect(tern_notice_t *notice, const tern_ops_t *ops);
void tern_crepl_group_collect_ackstate(tern_notice_t *notice, const tern_repl_rec_t *rec);
void tern_crepl_group_queue(tern_repl_rec_t *rec, tern_store_batch_t *batch);

/*  The cross-DC outbox (tern_crepl_outbox.c), on the storer's thread:
    queues an in-DC follower's CREPL_OUTBOX record REC on BATCH (the
    leader's confirmations, or its outbox entries of a SYNC answer);
    REC->result.err gets TERN_EMALFORMED / TERN_EINVAL for a payload or
    code it cannot read (the follower syncs again). REC stays the caller's. */
void tern_crepl_outbox_queue(tern_repl_rec_t *rec, tern_store_batch_t *batch);

/*  zactor_fn: ARGS is a tern_crepl_args_t, borrowed for the actor's life. */
void tern_crepl_actor(zsock_t *pipe, void *args);

#endif
