/*  tern_id.c - snowflake message ids: 41 bits of ms, 10 of node, 12 of sequence.

    Every message gets its msg_id here (the store actor asks, once per record),
    and the id is the key that replication, dedup and ack-state use across DCs,
    so two nodes must never issue the same id and one node never the same id
    twice, not even across a restart.

    State is one 64-bit word, (ms since the tern epoch) << 12 | sequence,
    advanced with a compare-and-swap, so issuing an id takes no lock and several
    threads can share a generator. The word always holds the last issued id's
    ms and sequence; at creation it holds (LAST_MS, 4095), "this millisecond is
    used up", which makes the first id land strictly after LAST_MS.

    Rules for the next id, with NOW from the clock and LAST from the state:
      NOW >  LAST            issue (NOW, 0)
      NOW == LAST, seq free  issue (LAST, seq + 1)
      NOW == LAST, seq used  sequence overflow (4096 ids in one ms): wait for
                             the clock to reach the next ms
      NOW <  LAST            the clock went backwards: wait for it to catch up
                             if LAST - NOW <= max_backwards_ms, else refuse
    No waiting case borrows future milliseconds: an id's timestamp is never
    ahead of the clock that issued it. Waiting is bounded in real time
    (CLOCK_MONOTONIC): a clock that does not reach the needed ms within
    max_backwards_ms (plus a 10 ms grace for the overflow wait, so a bound of
    0 still allows an overflow to roll into the next ms) gives TERN_ECLOCK,
    which also covers a clock that is stuck.
*/
#include "tern_id.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#define S_SEQ_MASK          ((1ULL << TERN_ID_SEQ_BITS) - 1)
#define S_MS_BITS           41
#define S_MS_MAX            ((1ULL << S_MS_BITS) - 1)
#define S_OVERFLOW_GRACE_MS 10

struct tern_id_gen_t {
    _Atomic uint64_t state;    //  (ms since epoch) << 12 | seq of the last id
    uint64_t node_bits;        //  node id already shifted into place
    uint32_t max_backwards_ms; //  how long a backwards clock is waited out
    tern_clock_fn *clock;      //  clock source (unix ms)
    void *clock_arg;           //  its argument
};

static uint64_t s_realtime_ms(void *arg) {
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t s_monotonic_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void s_sleep_us(uint64_t us) {
    struct timespec ts = {.tv_sec = (time_t)(us / 1000000), .tv_nsec = (long)(us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

tern_id_gen_t *tern_id_gen_new(uint32_t node_id, uint64_t last_ms, uint32_t max_backwards_ms,
                               tern_clock_fn *clock, void *clock_arg) {
    if (node_id > TERN_ID_NODE_MAX) {
        return NULL;
    }
    tern_id_gen_t *self = calloc(1, sizeof(*self));
    if (!self) {
        return NULL;
    }
    //  A persisted ms before the epoch means "none"; one past the 41-bit range
    //  is kept saturated so next() refuses rather than wrapping around.
    uint64_t rel = last_ms > TERN_ID_EPOCH_MS ? last_ms - TERN_ID_EPOCH_MS : 0;
    if (rel > S_MS_MAX) {
        rel = S_MS_MAX;
    }
    atomic_init(&self->state, rel << TERN_ID_SEQ_BITS | S_SEQ_MASK);
    self->node_bits = (uint64_t)node_id << TERN_ID_SEQ_BITS;
    self->max_backwards_ms = max_backwards_ms;
    self->clock = clock ? clock : s_realtime_ms;
    self->clock_arg = clock ? clock_arg : NULL;
    return self;
}

void tern_id_gen_destroy(tern_id_gen_t **self_p) {
    if (self_p && *self_p) {
        free(*self_p);
        *self_p = NULL;
    }
}

tern_err_t tern_id_next(tern_id_gen_t *self, uint64_t *id) {
    uint64_t wait_start_us = 0; //  0 until the first wait
    while (true) {
        uint64_t old = atomic_load_explicit(&self->state, memory_order_acquire);
        uint64_t last = old >> TERN_ID_SEQ_BITS;
        uint64_t seq = old & S_SEQ_MASK;
        uint64_t now_unix = self->clock(self->clock_arg);
        //  A clock before the epoch is "behind" by at least everything issued.
        uint64_t now = now_unix > TERN_ID_EPOCH_MS ? now_unix - TERN_ID_EPOCH_MS : 0;
        uint64_t next;
        if (now > last) {
            if (now > S_MS_MAX) {
                return TERN_ECLOCK; //  past 2095: the 41 bits are spent
            }
            next = now << TERN_ID_SEQ_BITS;
        } else if (now == last && seq < S_SEQ_MASK) {
            next = old + 1;
        } else {
            //  Overflow (now == last) or clock behind (now < last): wait.
            uint64_t behind = last - now;
            uint64_t bound_ms = self->max_backwards_ms;
            if (behind == 0) {
                bound_ms += S_OVERFLOW_GRACE_MS;
            } else if (behind > self->max_backwards_ms) {
                return TERN_ECLOCK;
            }
            uint64_t now_us = s_monotonic_us();
            if (wait_start_us == 0) {
                wait_start_us = now_us;
            }
            uint64_t waited_us = now_us - wait_start_us;
            if (waited_us > bound_ms * 1000) {
                return TERN_ECLOCK;
            }
            //  Sleep until the clock should have caught up, in short steps so
            //  a clock that jumps forward again is noticed soon.
            uint64_t nap_us = behind ? behind * 1000 : 100;
            if (nap_us > 5000) {
                nap_us = 5000;
            }
            s_sleep_us(nap_us);
            continue;
        }
        if (atomic_compare_exchange_weak_explicit(&self->state, &old, next, memory_order_acq_rel,
                                                  memory_order_acquire)) {
            uint64_t ms = next >> TERN_ID_SEQ_BITS;
            *id = ms << (TERN_ID_NODE_BITS + TERN_ID_SEQ_BITS) | self->node_bits |
                  (next & S_SEQ_MASK);
            return TERN_OK;
        }
        //  Another thread took this (ms, seq); read the state again.
    }
}

uint64_t tern_id_gen_last_ms(tern_id_gen_t *self) {
    uint64_t state = atomic_load_explicit(&self->state, memory_order_acquire);
    return (state >> TERN_ID_SEQ_BITS) + TERN_ID_EPOCH_MS;
}

uint64_t tern_id_unix_ms(uint64_t id) {
    return (id >> (TERN_ID_NODE_BITS + TERN_ID_SEQ_BITS)) + TERN_ID_EPOCH_MS;
}

uint32_t tern_id_node(uint64_t id) {
    return (uint32_t)(id >> TERN_ID_SEQ_BITS) & TERN_ID_NODE_MAX;
}

uint32_t tern_id_seq(uint64_t id) {
    return (uint32_t)(id & S_SEQ_MASK);
}
