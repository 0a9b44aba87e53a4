/*  tern_route.h - the route actor: subscriptions, groups, credit, timers.

    See the top of tern_route.c for its pipe commands and inbox items.
*/
#ifndef TERN_ROUTE_H_INCLUDED
#define TERN_ROUTE_H_INCLUDED

#include "tern_cluster.h"
#include "tern_config.h"
#include "tern_metrics.h"
#include "tern_quiet.h"
#include "tern_store.h"
#include <czmq.h>
#include <stdint.h>

typedef struct {
    tern_store_t *store;         //  borrowed: route opens its own reader
    const tern_config_t *config; //  borrowed; outlives the actor
    tern_metrics_t *metrics;     //  borrowed; outlives the actor
    tern_cluster_t *cluster;     //  borrowed; NULL on a single node (no cluster/etcd)
    char inbox[128];             //  route binds (PULL): EVENTS from conn, NOTICE from storer
    char storer_inbox[128];      //  route connects (PUSH): OPS
    char conn_out[128];          //  route connects (PUSH): frames for clients
    tern_quiet_t *quiet;         //  borrowed, read by the storer: route marks topics with no
                                 //  group in it (NULL: not used; a cluster)
} tern_route_args_t;

/*  zactor_fn: ARGS is a tern_route_args_t, borrowed for the actor's life. */
void tern_route_actor(zsock_t *pipe, void *args);

#endif
