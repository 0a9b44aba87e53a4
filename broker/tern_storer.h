/*  tern_storer.h - the storer actor: ternd's single LMDB writer.

    See the top of tern_storer.c for its pipe commands and inbox items.
*/
#ifndef TERN_STORER_H_INCLUDED
#define TERN_STORER_H_INCLUDED

#include "tern_cluster.h"
#include "tern_config.h"
#include "tern_id.h"
#include "tern_metrics.h"
#include "tern_quiet.h"
#include "tern_store.h"
#include <czmq.h>

typedef struct {
    tern_store_t *store;         //  borrowed; outlives the actor
    const tern_config_t *config; //  borrowed; outlives the actor
    tern_metrics_t *metrics;     //  borrowed; outlives the actor
    tern_id_gen_t *ids;          //  borrowed; used only by this actor
    tern_cluster_t *cluster;     //  borrowed, NULL on a single node: route's ops of partitions
                                 //  this node no longer leads are dropped (s_fence)
    char inbox[128];             //  endpoint the storer binds (PULL)
    char conn_inbox[128];        //  conn's work inbox (storer connects PUSH)
    char route_inbox[128];       //  route's work inbox (storer connects PUSH)
    char repl_inbox[128];        //  repl's work inbox ("": no replication)
    bool notices_to_conn;        //  cluster: NOTICEs go to conn_inbox (crepl's), behind the
                                 //  same commit's COMMITTED, not to route_inbox
    bool deferred;               //  cluster, durability fsync, no cross-DC repl: each commit's
                                 //  results go out before its flush, then SYNCED (the one
                                 //  decision; crepl's args get the same value, tern_broker.c)
    tern_quiet_t *quiet;         //  borrowed, written by route: topics whose appends need no
                                 //  NOTICE (NULL: every append is noticed; a cluster)
} tern_storer_args_t;

/*  zactor_fn: ARGS is a tern_storer_args_t, borrowed for the actor's life. */
void tern_storer_actor(zsock_t *pipe, void *args);

#endif
