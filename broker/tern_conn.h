/*  tern_conn.h - the conn actor: ternd's client-facing ROUTER.

    See the top of tern_conn.c for its pipe commands, sockets and the session
    state machine.
*/
#ifndef TERN_CONN_H_INCLUDED
#define TERN_CONN_H_INCLUDED

#include "tern_cluster.h"
#include "tern_config.h"
#include "tern_metrics.h"
#include "tern_store.h"
#include <czmq.h>

typedef struct {
    tern_store_t *store;         //  borrowed: conn opens its own reader for admin reads
    const tern_config_t *config; //  borrowed; outlives the actor
    tern_metrics_t *metrics;     //  borrowed; outlives the actor
    tern_cluster_t *cluster;     //  borrowed; NULL on a single node (no cluster/etcd)
    char inbox[128]; //  conn binds (PULL): COMMITTED from the storer (from crepl in a cluster)
    char out[128];   //  conn binds (PULL): frames to send, from route
    char storer_inbox[128]; //  conn connects (PUSH): PUBS, ADMIN
    char route_inbox[128];  //  conn connects (PUSH): EVENTS
    //  Written by the actor before it signals ready:
    int bind_rc;     //  0, or -1 if the client endpoint could not be bound
    char bound[256]; //  the endpoint actually bound (port resolved)
    char error[512]; //  why binding failed
} tern_conn_args_t;

/*  zactor_fn: ARGS is a tern_conn_args_t, borrowed for the actor's life. The
    actor signals 0 when it listens, 1 when it could not bind (then waits for
    $TERM). */
void tern_conn_actor(zsock_t *pipe, void *args);

#endif
