/*  bench_pct.h - latency percentiles as the shared bench format reports them.

    `ternctl bench` and the benchmark peers in tools/bench (js_fanout) print
    p50/p99/p999 the way ../shared/bench/common.h does (nearest rank, in
    microseconds, of nanosecond samples), so their RESULT lines compare with
    the NATS and ceiling anchors. Header-only: the peers do not link tern.
*/
#ifndef TERN_BENCH_PCT_H_INCLUDED
#define TERN_BENCH_PCT_H_INCLUDED

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

//  qsort comparator of uint64_t.
static inline int bench_cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

//  Sorts V[0..N) in place (ascending).
static inline void bench_sort_u64(uint64_t *v, size_t n) {
    qsort(v, n, sizeof *v, bench_cmp_u64);
}

//  Nearest-rank percentile P (0..100) of sorted V[0..N) in microseconds; -1
//  when there is no sample.
static inline double bench_pct_us(const uint64_t *v, size_t n, double p) {
    if (n == 0) {
        return -1;
    }
    size_t idx = (size_t)((p / 100.0) * (double)n);
    return (double)v[idx < n ? idx : n - 1] / 1000.0;
}

#endif
