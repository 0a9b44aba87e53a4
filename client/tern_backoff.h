/*  tern_backoff.h - reconnect delays: exponential backoff with jitter.

    Used by the client's I/O thread (tern_client_session.c) to space reconnect
    attempts; kept apart so the unit tests can check its bounds.
*/
#ifndef TERN_BACKOFF_H_INCLUDED
#define TERN_BACKOFF_H_INCLUDED

#include <stdint.h>

/*  Returns the delay before reconnect attempt ATTEMPT (0 for the first one
    after a loss): d = min(MAX_MS, MIN_MS * 2^ATTEMPT), jittered uniformly into
    [d/2, d] ("equal jitter", so many clients losing one broker do not come
    back in lockstep). *RNG is the caller's xorshift state (never 0). */
uint32_t tern_backoff_delay(uint32_t attempt, uint32_t min_ms, uint32_t max_ms, uint64_t *rng);

/*  Advances the xorshift64 state *RNG and returns the next value. */
uint64_t tern_rand_next(uint64_t *rng);

/*  Returns a seed from the kernel's random source (never 0). */
uint64_t tern_rand_seed(void);

#endif
