/*  tern_metrics.c - ternd's atomic counters (see tern_metrics.h). */
#include "tern_metrics.h"
#include "tern_err.h"
#include "tern_work.h"
#include <stdlib.h>

tern_metrics_t *tern_metrics_new(void) {
    return tern_metrics_new_with(0);
}

tern_metrics_t *tern_metrics_new_with(size_t series_max) {
    tern_metrics_t *self = tern_alloc(sizeof *self);
    self->started_ms = tern_now_ms();
    self->series = tern_series_new(series_max);
    return self;
}

void tern_metrics_destroy(tern_metrics_t **self_p) {
    if (self_p && *self_p) {
        tern_series_destroy(&(*self_p)->series);
        free((*self_p)->follower_lag);
        free(*self_p);
        *self_p = NULL;
    }
}

int tern_metrics_code_bucket(int code) {
    switch (code) {
        case TERN_EMALFORMED:
            return 0;
        case TERN_EMAGIC:
            return 1;
        case TERN_EVERSION:
            return 2;
        case TERN_ECOMMAND:
            return 3;
        case TERN_ETOOBIG:
            return 4;
        case TERN_ETOPIC:
        case TERN_ENAME:
            return 5;
        case TERN_EMETA:
            return 6;
        default:
            return 7;
    }
}

const char *tern_metrics_code_name(int bucket) {
    static const char *names[TERN_METRICS_CODES] = {"malformed", "magic", "version", "command",
                                                    "too_big",   "name",  "meta",    "other"};
    return bucket >= 0 && bucket < TERN_METRICS_CODES ? names[bucket] : "other";
}

void tern_metrics_cluster_init(tern_metrics_t *self, uint32_t partitions) {
    if (!self->follower_lag && partitions > 0) {
        self->follower_lag =
            tern_alloc((size_t)partitions * TERN_METRICS_FOLLOWERS * sizeof *self->follower_lag);
        self->follower_lag_partitions = partitions;
    }
}

void tern_metrics_follower_lag(tern_metrics_t *self, uint32_t partition, uint32_t node,
                               uint64_t lag_ms) {
    if (!self->follower_lag || partition >= self->follower_lag_partitions) {
        return;
    }
    tern_metrics_lag_t *row = &self->follower_lag[(size_t)partition * TERN_METRICS_FOLLOWERS];
    tern_metrics_lag_t *free_slot = NULL;
    for (int i = 0; i < TERN_METRICS_FOLLOWERS; i++) {
        uint32_t held = atomic_load_explicit(&row[i].node, memory_order_relaxed);
        if (held == node + 1) {
            atomic_store_explicit(&row[i].lag_ms, lag_ms, memory_order_relaxed);
            return;
        }
        if (held == 0 && !free_slot) {
            free_slot = &row[i];
        }
    }
    if (free_slot) {
        //  The value first, so a scrape never shows a new node with an old lag.
        atomic_store_explicit(&free_slot->lag_ms, lag_ms, memory_order_relaxed);
        atomic_store_explicit(&free_slot->node, node + 1, memory_order_release);
    }
}

void tern_metrics_follower_lag_clear(tern_metrics_t *self, uint32_t partition) {
    if (!self->follower_lag || partition >= self->follower_lag_partitions) {
        return;
    }
    tern_metrics_lag_t *row = &self->follower_lag[(size_t)partition * TERN_METRICS_FOLLOWERS];
    for (int i = 0; i < TERN_METRICS_FOLLOWERS; i++) {
        atomic_store_explicit(&row[i].node, 0, memory_order_relaxed);
    }
}
