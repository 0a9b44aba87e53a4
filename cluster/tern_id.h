/*  tern_id.h - snowflake message ids.

    64-bit ids: 41 bits of milliseconds since 2026-01-01T00:00:00Z, 10 bits of
    node id (unique across every DC; the replication handshake checks it), 12
    bits of sequence within the millisecond. Ids are monotonic per node, even
    across restarts: the broker persists the last issued millisecond (see
    tern_id_gen_last_ms) with every storage commit and passes it back at start.
    A clock that steps backwards is waited out up to a bound, then refused.
    A generator is safe to use from several threads at once.
*/
#ifndef TERN_ID_H_INCLUDED
#define TERN_ID_H_INCLUDED

#include "tern_err.h"
#include <stdint.h>

#define TERN_ID_EPOCH_MS  1767225600000ULL /* 2026-01-01T00:00:00Z */
#define TERN_ID_NODE_BITS 10
#define TERN_ID_SEQ_BITS  12
#define TERN_ID_NODE_MAX  1023

typedef struct tern_id_gen_t tern_id_gen_t;

/*  Clock source in unix ms; NULL means the real clock (CLOCK_REALTIME).
    Tests pass their own. */
typedef uint64_t(tern_clock_fn)(void *arg);

/*  Creates a generator for NODE_ID (0..1023) that will never issue an id at or
    below millisecond LAST_MS (unix ms; 0 if none persisted). MAX_BACKWARDS_MS
    is how long next() waits for a clock that went backwards before failing
    with TERN_ECLOCK. Returns NULL if NODE_ID is out of range. Caller owns the
    result. */
tern_id_gen_t *tern_id_gen_new(uint32_t node_id, uint64_t last_ms, uint32_t max_backwards_ms,
                               tern_clock_fn *clock, void *clock_arg);
void tern_id_gen_destroy(tern_id_gen_t **self_p);

/*  Issues the next id into *ID. Returns TERN_OK, or TERN_ECLOCK when the clock
    is behind the last issued millisecond by more than the bound. Thread-safe.
    Never borrows future milliseconds: after 4096 ids in one ms,
    and while the clock is behind by at most the bound, it sleeps until the
    clock moves on. It also returns TERN_ECLOCK when the clock is before the
    epoch, or does not reach the needed ms within the bound (+10 ms for a
    sequence overflow) of real waiting time (a stuck clock). *ID is written
    only on TERN_OK. */
tern_err_t tern_id_next(tern_id_gen_t *self, uint64_t *id);

/*  The unix ms of the last issued id (what to persist); before the first id,
    max(LAST_MS, TERN_ID_EPOCH_MS). Thread-safe. */
uint64_t tern_id_gen_last_ms(tern_id_gen_t *self);

/*  Parts of an id. */
uint64_t tern_id_unix_ms(uint64_t id);
uint32_t tern_id_node(uint64_t id);
uint32_t tern_id_seq(uint64_t id);

#endif
