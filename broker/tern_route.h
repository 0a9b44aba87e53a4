/*  tern_route.h - the route actor: subscriptions, groups, credit, timers.

    See the top of tern_route.c for its pipe commands and inbox items.
*/
#ifndef TERN_ROUTE_H_INCLUDED
#define TERN_ROUTE_H_INCLUDED

#include "tern_config.h"
#include "tern_metrics.h"
#include "tern_store.h"
#include <czmq.h>
#include <stdint.h>

typedef struct {
    tern_store_t *store;         //  borrowed: route opens its own reader
    const tern_config_t *config; //  borrowed; outlives the actor
    tern_metrics_t *metrics;     //  borrowed; outlives the actor
    char inbox[128];             //  route binds (PULL): EVENTS from conn, NOTICE from storer
    char storer_inbox[128];      //  route connects (PUSH): OPS
    char conn_out[128];          //  route connects (PUSH): frames for clients
} tern_route_args_t;

/*  Writes VALUE in decimal with a NUL into BUF (at least 21 bytes); returns
    the number of digits. The hot path's replacement for snprintf("%" PRIu64). */
size_t tern_route_u64_str(uint64_t value, char *buf);

/*  zactor_fn: ARGS is a tern_route_args_t, borrowed for the actor's life. */
void tern_route_actor(zsock_t *pipe, void *args);

/*  The redelivery delay after delivery number N (N >= 1) without ack:
    BASE_MS * 2^(N-1), capped by MAX_MS (and never overflowing). */
uint64_t tern_route_backoff_ms(uint64_t base_ms, uint64_t max_ms, uint32_t n);

/*  The window of a new subscription: REQUESTED, or MAX_INFLIGHT when 0,
    capped by MAX_INFLIGHT (at least 1). */
uint32_t tern_route_window(uint32_t requested, uint32_t max_inflight);

#endif
