/*  tern_series.h - labelled counters with bounded cardinality, and latency
    histograms, for the Prometheus endpoint.

    The actors bump per-topic and per-(topic, group) counters from their own
    threads; the HTTP thread (tern_http) reads them. There is no mutex: a
    series is a slot in a fixed open-addressing table that is claimed once
    with a compare-and-swap and never freed, its counters are atomics. When
    `max` series exist, every new label set is counted in the topic="other"
    series (group="other" for group series), so a client that invents topic
    names cannot grow the scrape or the memory without bound.
*/
#ifndef TERN_SERIES_H_INCLUDED
#define TERN_SERIES_H_INCLUDED

#include "tern_proto.h"
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TERN_SERIES_MAX_DEFAULT 1000 //  series kept before "other" (server/metrics_series)

typedef enum {
    TERN_SC_PUBLISHED = 0,   //  topic: messages stored
    TERN_SC_DUPLICATES = 1,  //  topic: publishes answered as duplicates
    TERN_SC_DELIVERED = 2,   //  group: deliveries (redeliveries too)
    TERN_SC_REDELIVERED = 3, //  group: deliveries with delivery count > 1
    TERN_SC_ACKED = 4,       //  group: acks
    TERN_SC_NACKED = 5,      //  group: nacks
    TERN_SC_DEAD = 6,        //  group: moved to the DLQ
    TERN_SC_EXPIRED = 7,     //  group: skipped because expired before delivery
    TERN_SC_COUNT
} tern_series_counter_t;

/*  One label set. TOPIC and GROUP are written once, before STATE becomes
    ready (release), and never change afterwards. */
typedef struct {
    _Atomic int state;                        //  0 free, 1 being claimed, 2 ready
    char topic[TERN_TOPIC_MAX + 1];           //  topic label
    char group[TERN_NAME_MAX + 1];            //  group label, "" for a topic series
    _Atomic uint64_t counters[TERN_SC_COUNT]; //  tern_series_counter_t
    _Atomic int64_t inflight;                 //  group: delivered, unacked (gauge)
} tern_series_slot_t;

typedef struct tern_series_t tern_series_t;

/*  Creates a table for at most MAX label sets (0 = the default). Caller owns
    the result; destroy after every thread that uses it stopped. */
tern_series_t *tern_series_new(size_t max);
void tern_series_destroy(tern_series_t **self_p);

/*  The series for (TOPIC, GROUP) (GROUP "" or NULL for a topic series),
    created on first use; the "other" series when the table is full. Never
    NULL. Borrowed; valid until destroy. Any thread. */
tern_series_slot_t *tern_series_get(tern_series_t *self, const char *topic, const char *group);

/*  Adds N to counter C of (TOPIC, GROUP). Any thread; relaxed. */
void tern_series_add(tern_series_t *self, const char *topic, const char *group,
                     tern_series_counter_t c, uint64_t n);

/*  Calls FN for every ready series (any order). For readers. */
typedef void(tern_series_fn)(const tern_series_slot_t *slot, void *arg);
void tern_series_each(tern_series_t *self, tern_series_fn *fn, void *arg);

/*  Series in use (including the two "other" series once used). */
size_t tern_series_count(tern_series_t *self);

/*  Prometheus name of counter C, e.g. "tern_messages_delivered_total". */
const char *tern_series_counter_name(tern_series_counter_t c);

/* ------------------------------------------------------------------------
    Histograms: fixed buckets (seconds), atomic counts, sum in ns.
   ------------------------------------------------------------------------ */

#define TERN_HISTO_BUCKETS 16 //  upper bounds below, then +Inf

typedef struct {
    _Atomic uint64_t buckets[TERN_HISTO_BUCKETS + 1]; //  non-cumulative counts; last = +Inf
    _Atomic uint64_t sum_ns;                          //  sum of observations, ns
    _Atomic uint64_t count;                           //  observations
} tern_histo_t;

/*  Upper bound of bucket I in seconds (I < TERN_HISTO_BUCKETS). */
double tern_histo_bound(int i);

/*  Records one observation of NS nanoseconds. Any thread. */
void tern_histo_observe(tern_histo_t *self, uint64_t ns);

#endif
