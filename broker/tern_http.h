/*  tern_http.h - ternd's HTTP endpoint: Prometheus /metrics and /healthz.

    libmicrohttpd serves it from its own thread (MHD_USE_INTERNAL_POLLING_THREAD).
    That thread never touches an actor's state: it reads the atomics of
    tern_metrics_t (and its series table and histograms), the store's atomic
    stats, and /proc for the process gauges. So it needs no lock and cannot
    stall the data path; a slow scraper only costs its own thread.

    /metrics   200, text/plain; version=0.0.4 (Prometheus text exposition)
    /healthz   200 "ok" when the node serves and its storage is writable,
               503 "unavailable: REASON" otherwise (not serving, storage full,
               data directory not writable, disk full)
    other      404
*/
#ifndef TERN_HTTP_H_INCLUDED
#define TERN_HTTP_H_INCLUDED

#include "tern_config.h"
#include "tern_metrics.h"
#include "tern_repl.h"
#include "tern_store.h"
#include <stddef.h>

typedef struct tern_http_t tern_http_t;

/*  Splits "HOST:PORT" (HOST an IPv4 address, a name that resolves to one,
    or "*" for every interface; PORT 0 = any free port). Returns false on
    bad input. */
bool tern_http_parse_address(const char *address, char *host, size_t host_cap, int *port);

/*  Starts serving on CONFIG->metrics. METRICS, STORE, CONFIG and REPL (the
    replication actor's per-peer figures; NULL when replication is off) are
    borrowed and must outlive the result. Returns NULL with one line in ERRBUF when the
    address is malformed or cannot be bound. Caller owns the result. */
tern_http_t *tern_http_new(const tern_config_t *config, tern_metrics_t *metrics,
                           tern_store_t *store, tern_repl_stats_t *repl, char *errbuf,
                           size_t errlen);

/*  Stops the server thread. Safe on NULL; nulls *SELF_P. */
void tern_http_destroy(tern_http_t **self_p);

/*  The TCP port actually bound. */
int tern_http_port(tern_http_t *self);

/*  Renders the /metrics document into a new string (caller frees) and the
    /healthz verdict: returns true when healthy, else false with REASON. */
char *tern_http_render_metrics(const tern_config_t *config, tern_metrics_t *metrics,
                               tern_store_t *store, tern_repl_stats_t *repl);
bool tern_http_health(const tern_config_t *config, tern_metrics_t *metrics, char *reason,
                      size_t reason_cap);

#endif
