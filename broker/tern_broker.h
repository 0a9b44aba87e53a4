/*  tern_broker.h - one ternd node: the store and the actors, started and
    stopped in order.

    tern_broker_new opens the store, restores the id generator from the
    persisted "id.last_ms", then starts the storer, route and conn actors (conn
    last: once it returns, clients are accepted). tern_broker_destroy stops them
    in reverse: conn (no new input), route, storer (commits what is queued),
    then closes LMDB. Used by ternd.c and by in-process tests.
*/
#ifndef TERN_BROKER_H_INCLUDED
#define TERN_BROKER_H_INCLUDED

#include "tern_config.h"
#include "tern_metrics.h"
#include "tern_repl.h"
#include <stddef.h>

typedef struct tern_broker_t tern_broker_t;

/*  Starts a node with CONFIG (copied). Returns NULL on failure and writes one
    line saying why into ERRBUF (store cannot open, endpoint busy...). Caller
    owns the result. */
tern_broker_t *tern_broker_new(const tern_config_t *config, char *errbuf, size_t errlen);

/*  Stops the node (flushing pending commits) and closes the store. Safe on
    NULL; nulls *SELF_P. */
void tern_broker_destroy(tern_broker_t **self_p);

/*  The client endpoint actually bound (a wildcard port resolved). Borrowed;
    valid until destroy. */
const char *tern_broker_endpoint(tern_broker_t *self);

/*  The node's counters. Borrowed; valid until destroy. */
tern_metrics_t *tern_broker_metrics(tern_broker_t *self);

/*  Replication figures per configured peer (index = config peers), or NULL
    when replication is off. Borrowed; valid until destroy. */
tern_repl_stats_t *tern_broker_repl_stats(tern_broker_t *self);

#endif
