/*  test_id.c - snowflake ids (cluster/tern_id.c).

    Every rule that involves time runs on an injected clock: a manual clock the
    test sets, a clock that follows real time from a base the test can step
    backwards, and a clock that freezes for a number of reads.
*/
#include "tern_id.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#define T0 (TERN_ID_EPOCH_MS + 86400000ULL) //  2026-01-02, a fixed "now"

static uint64_t s_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

//  Manual clock: returns whatever the test stored.
typedef struct {
    _Atomic uint64_t now; //  unix ms
} manual_clock_t;

static uint64_t s_manual(void *arg) {
    return atomic_load(&((manual_clock_t *)arg)->now);
}

//  Live clock: BASE plus real elapsed time since START; the test steps it
//  backwards or forwards by changing BASE.
typedef struct {
    _Atomic uint64_t base; //  unix ms at start
    uint64_t start;        //  monotonic ms at start
} live_clock_t;

static void s_live_init(live_clock_t *clock, uint64_t base) {
    atomic_init(&clock->base, base);
    clock->start = s_mono_ms();
}

static uint64_t s_live(void *arg) {
    live_clock_t *clock = arg;
    return atomic_load(&clock->base) + (s_mono_ms() - clock->start);
}

//  Frozen clock: returns AT for the first FROZEN_READS reads, then AT + 1.
typedef struct {
    uint64_t at;           //  unix ms
    uint64_t frozen_reads; //  reads that return AT
    uint64_t reads;        //  reads so far
} counted_clock_t;

static uint64_t s_counted(void *arg) {
    counted_clock_t *clock = arg;
    return clock->reads++ < clock->frozen_reads ? clock->at : clock->at + 1;
}

Test(id, usage) {
    //  One generator per node; the broker persists tern_id_gen_last_ms().
    tern_id_gen_t *gen = tern_id_gen_new(7, 0, 100, NULL, NULL);
    cr_assert_not_null(gen);
    uint64_t id;
    cr_assert_eq(tern_id_next(gen, &id), TERN_OK);
    cr_assert_eq(tern_id_node(id), 7);
    cr_assert_eq(tern_id_unix_ms(id), tern_id_gen_last_ms(gen));
    cr_assert_gt(tern_id_unix_ms(id), TERN_ID_EPOCH_MS);
    tern_id_gen_destroy(&gen);
    cr_assert_null(gen);
    tern_id_gen_destroy(&gen); //  idempotent
    tern_id_gen_destroy(NULL);
}

Test(id, layout_and_parts) {
    manual_clock_t clock;
    atomic_init(&clock.now, TERN_ID_EPOCH_MS + 12345);
    tern_id_gen_t *gen = tern_id_gen_new(1023, 0, 0, s_manual, &clock);
    cr_assert_not_null(gen);
    uint64_t id;
    cr_assert_eq(tern_id_next(gen, &id), TERN_OK);
    cr_assert_eq(id, (12345ULL << 22) | (1023ULL << 12) | 0);
    cr_assert_eq(tern_id_next(gen, &id), TERN_OK);
    cr_assert_eq(id, (12345ULL << 22) | (1023ULL << 12) | 1);
    cr_assert_eq(tern_id_unix_ms(id), TERN_ID_EPOCH_MS + 12345);
    cr_assert_eq(tern_id_node(id), 1023);
    cr_assert_eq(tern_id_seq(id), 1);
    cr_assert_eq(tern_id_gen_last_ms(gen), TERN_ID_EPOCH_MS + 12345);

    atomic_store(&clock.now, TERN_ID_EPOCH_MS + 12346);
    cr_assert_eq(tern_id_next(gen, &id), TERN_OK);
    cr_assert_eq(tern_id_seq(id), 0, "a new millisecond restarts the sequence");
    cr_assert_eq(tern_id_unix_ms(id), TERN_ID_EPOCH_MS + 12346);
    tern_id_gen_destroy(&gen);

    //  Node 0 and the parts of a hand-made id.
    uint64_t made = (5ULL << 22) | (3ULL << 12) | 4095;
    cr_assert_eq(tern_id_unix_ms(made), TERN_ID_EPOCH_MS + 5);
    cr_assert_eq(tern_id_node(made), 3);
    cr_assert_eq(tern_id_seq(made), 4095);
}

Test(id, node_out_of_range) {
    cr_assert_null(tern_id_gen_new(1024, 0, 0, NULL, NULL));
    cr_assert_null(tern_id_gen_new(UINT32_MAX, 0, 0, NULL, NULL));
    tern_id_gen_t *gen = tern_id_gen_new(TERN_ID_NODE_MAX, 0, 0, NULL, NULL);
    cr_assert_not_null(gen);
    tern_id_gen_destroy(&gen);
}

Test(id, monotonic_on_a_stepping_clock) {
    //  The clock advances one ms every 1000 reads and steps back 1 ms now and
    //  then (within the bound): ids must still strictly increase.
    live_clock_t clock;
    s_live_init(&clock, T0);
    tern_id_gen_t *gen = tern_id_gen_new(1, 0, 50, s_live, &clock);
    uint64_t prev = 0;
    for (int i = 0; i < 200000; i++) {
        if (i % 50000 == 49999) {
            atomic_fetch_sub(&clock.base, 2);
        }
        uint64_t id;
        cr_assert_eq(tern_id_next(gen, &id), TERN_OK);
        cr_assert_gt(id, prev, "id %d not above the previous one", i);
        cr_assert_leq(tern_id_unix_ms(id), s_live(&clock), "id ahead of the clock");
        prev = id;
    }
    cr_assert_eq(tern_id_gen_last_ms(gen), tern_id_unix_ms(prev));
    tern_id_gen_destroy(&gen);
}

#define THREADS    4
#define PER_THREAD 100000

typedef struct {
    tern_id_gen_t *gen; //  shared generator
    uint64_t *ids;      //  this thread's ids, in issue order
    int errors;         //  non-OK results or order violations
} worker_t;

static void *s_worker(void *arg) {
    worker_t *worker = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        if (tern_id_next(worker->gen, &worker->ids[i]) != TERN_OK ||
            (i > 0 && worker->ids[i] <= worker->ids[i - 1])) {
            worker->errors++;
        }
    }
    return NULL;
}

static int s_cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

Test(id, unique_across_threads) {
    tern_id_gen_t *gen = tern_id_gen_new(42, 0, 100, NULL, NULL);
    uint64_t *all = malloc(sizeof(uint64_t) * THREADS * PER_THREAD);
    cr_assert_not_null(all);
    worker_t workers[THREADS];
    pthread_t threads[THREADS];
    for (int t = 0; t < THREADS; t++) {
        workers[t] = (worker_t){.gen = gen, .ids = all + (size_t)t * PER_THREAD};
        cr_assert_eq(pthread_create(&threads[t], NULL, s_worker, &workers[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        pthread_join(threads[t], NULL);
        cr_assert_eq(workers[t].errors, 0, "thread %d saw an error or a decrease", t);
    }
    qsort(all, THREADS * PER_THREAD, sizeof(uint64_t), s_cmp_u64);
    for (size_t i = 1; i < THREADS * PER_THREAD; i++) {
        cr_assert_neq(all[i], all[i - 1], "duplicate id %llu", (unsigned long long)all[i]);
    }
    for (size_t i = 0; i < THREADS * PER_THREAD; i++) {
        cr_assert_eq(tern_id_node(all[i]), 42);
    }
    cr_assert_eq(tern_id_gen_last_ms(gen), tern_id_unix_ms(all[THREADS * PER_THREAD - 1]));
    free(all);
    tern_id_gen_destroy(&gen);
}

Test(id, sequence_overflow_waits_for_next_ms) {
    //  4096 ids fit in one ms; the 4097th waits until the clock moves on.
    counted_clock_t clock = {.at = T0, .frozen_reads = 4097};
    tern_id_gen_t *gen = tern_id_gen_new(9, 0, 0, s_counted, &clock);
    uint64_t id;
    for (uint32_t i = 0; i < 4096; i++) {
        cr_assert_eq(tern_id_next(gen, &id), TERN_OK);
        cr_assert_eq(tern_id_unix_ms(id), T0);
        cr_assert_eq(tern_id_seq(id), i);
    }
    cr_assert_eq(tern_id_next(gen, &id), TERN_OK);
    cr_assert_eq(tern_id_unix_ms(id), T0 + 1, "overflow must not reuse or borrow");
    cr_assert_eq(tern_id_seq(id), 0);
    cr_assert_gt(clock.reads, 4097, "the generator re-read the clock after waiting");
    tern_id_gen_destroy(&gen);
}

Test(id, sequence_overflow_on_a_stuck_clock_fails) {
    manual_clock_t clock;
    atomic_init(&clock.now, T0);
    tern_id_gen_t *gen = tern_id_gen_new(9, 0, 20, s_manual, &clock);
    uint64_t id;
    for (int i = 0; i < 4096; i++) {
        cr_assert_eq(tern_id_next(gen, &id), TERN_OK);
    }
    uint64_t start = s_mono_ms();
    cr_assert_eq(tern_id_next(gen, &id), TERN_ECLOCK);
    uint64_t took = s_mono_ms() - start;
    cr_assert_geq(took, 20, "gave up after %llu ms, before the bound", (unsigned long long)took);
    cr_assert_lt(took, 1000);
    //  Once the clock moves, ids flow again.
    atomic_store(&clock.now, T0 + 1);
    cr_assert_eq(tern_id_next(gen, &id), TERN_OK);
    cr_assert_eq(tern_id_unix_ms(id), T0 + 1);
    tern_id_gen_destroy(&gen);
}

Test(id, restart_never_reissues) {
    //  First run: ids at T0 on a frozen clock, then "crash".
    manual_clock_t frozen;
    atomic_init(&frozen.now, T0);
    tern_id_gen_t *gen = tern_id_gen_new(3, 0, 100, s_manual, &frozen);
    uint64_t before;
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(tern_id_next(gen, &before), TERN_OK);
    }
    uint64_t persisted = tern_id_gen_last_ms(gen);
    cr_assert_eq(persisted, T0);
    tern_id_gen_destroy(&gen);

    //  Restart in the same ms: the first id waits for T0 + 1.
    live_clock_t live;
    s_live_init(&live, T0);
    gen = tern_id_gen_new(3, persisted, 100, s_live, &live);
    uint64_t after;
    cr_assert_eq(tern_id_next(gen, &after), TERN_OK);
    cr_assert_gt(after, before);
    cr_assert_gt(tern_id_unix_ms(after), persisted);
    tern_id_gen_destroy(&gen);

    //  Restart with the clock 50 ms behind the persisted ms (within the bound):
    //  waits, then issues after it.
    s_live_init(&live, T0 + 1000 - 50);
    gen = tern_id_gen_new(3, T0 + 1000, 200, s_live, &live);
    uint64_t start = s_mono_ms();
    cr_assert_eq(tern_id_next(gen, &after), TERN_OK);
    cr_assert_gt(tern_id_unix_ms(after), T0 + 1000);
    cr_assert_geq(s_mono_ms() - start, 45);
    tern_id_gen_destroy(&gen);

    //  Restart with the clock far behind the persisted ms: refused.
    atomic_store(&frozen.now, T0);
    gen = tern_id_gen_new(3, T0 + 60000, 100, s_manual, &frozen);
    cr_assert_eq(tern_id_next(gen, &after), TERN_ECLOCK);
    cr_assert_eq(tern_id_gen_last_ms(gen), T0 + 60000);
    tern_id_gen_destroy(&gen);
}

Test(id, clock_backwards_within_bound_waits) {
    live_clock_t clock;
    s_live_init(&clock, T0);
    tern_id_gen_t *gen = tern_id_gen_new(5, 0, 200, s_live, &clock);
    uint64_t first, second;
    cr_assert_eq(tern_id_next(gen, &first), TERN_OK);
    atomic_fetch_sub(&clock.base, 80);
    uint64_t start = s_mono_ms();
    cr_assert_eq(tern_id_next(gen, &second), TERN_OK);
    uint64_t took = s_mono_ms() - start;
    cr_assert_gt(second, first);
    cr_assert_geq(took, 75, "waited only %llu ms", (unsigned long long)took);
    cr_assert_lt(took, 1000);
    cr_assert_leq(tern_id_unix_ms(second), s_live(&clock), "id ahead of the clock");
    tern_id_gen_destroy(&gen);
}

Test(id, clock_backwards_beyond_bound_fails) {
    manual_clock_t clock;
    atomic_init(&clock.now, T0);
    tern_id_gen_t *gen = tern_id_gen_new(5, 0, 1000, s_manual, &clock);
    uint64_t first, id = 0;
    cr_assert_eq(tern_id_next(gen, &first), TERN_OK);
    atomic_store(&clock.now, T0 - 1001);
    uint64_t start = s_mono_ms();
    cr_assert_eq(tern_id_next(gen, &id), TERN_ECLOCK);
    cr_assert_lt(s_mono_ms() - start, 500, "beyond the bound fails at once, without waiting");
    cr_assert_eq(id, 0, "*id is written only on success");
    cr_assert_eq(tern_id_gen_last_ms(gen), T0, "a refusal changes nothing");
    //  The clock recovers: ids continue above the earlier ones.
    atomic_store(&clock.now, T0 + 1);
    cr_assert_eq(tern_id_next(gen, &id), TERN_OK);
    cr_assert_gt(id, first);
    tern_id_gen_destroy(&gen);

    //  Exactly at the bound it waits instead; with a clock that never comes
    //  back, the wait itself is bounded.
    gen = tern_id_gen_new(5, 0, 100, s_manual, &clock);
    atomic_store(&clock.now, T0);
    cr_assert_eq(tern_id_next(gen, &first), TERN_OK);
    atomic_store(&clock.now, T0 - 100);
    start = s_mono_ms();
    cr_assert_eq(tern_id_next(gen, &id), TERN_ECLOCK);
    cr_assert_geq(s_mono_ms() - start, 100);
    tern_id_gen_destroy(&gen);
}

Test(id, clock_before_epoch_fails) {
    manual_clock_t clock;
    atomic_init(&clock.now, 1000); //  1970
    tern_id_gen_t *gen = tern_id_gen_new(0, 0, 10, s_manual, &clock);
    uint64_t id;
    cr_assert_eq(tern_id_next(gen, &id), TERN_ECLOCK);
    tern_id_gen_destroy(&gen);
}
