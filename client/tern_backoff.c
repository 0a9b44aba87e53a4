/*  tern_backoff.c - reconnect delays and the client's small random source.

    The client needs randomness for two things only: jitter on reconnect delays
    and its default producer id. Neither needs a cryptographic generator, but
    the seed comes from getrandom() so two clients started in the same
    microsecond still differ.
*/
#include "tern_backoff.h"

#include <sys/random.h>
#include <time.h>
#include <unistd.h>

uint64_t tern_rand_next(uint64_t *rng) {
    uint64_t x = *rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *rng = x;
    return x;
}

uint64_t tern_rand_seed(void) {
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)getpid();
    }
    return seed ? seed : 0x9E3779B97F4A7C15ull;
}

uint32_t tern_backoff_delay(uint32_t attempt, uint32_t min_ms, uint32_t max_ms, uint64_t *rng) {
    if (min_ms == 0) {
        min_ms = 1;
    }
    if (max_ms < min_ms) {
        max_ms = min_ms;
    }
    uint64_t delay = min_ms;
    for (uint32_t i = 0; i < attempt && delay < max_ms; i++) {
        delay *= 2;
    }
    if (delay > max_ms) {
        delay = max_ms;
    }
    uint64_t low = delay / 2;
    return (uint32_t)(low + tern_rand_next(rng) % (delay - low + 1));
}
