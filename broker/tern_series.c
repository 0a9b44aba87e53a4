/*  tern_series.c - bounded labelled counters and histograms (see tern_series.h).

    The table has twice as many slots as the cardinality cap (a power of two),
    so probing stays short; slots are claimed with a CAS and never released.
    Two extra slots hold the "other" series. A thread that finds a slot being
    claimed by another waits for it (a few instructions: the claimer copies
    two short strings and publishes).
*/
#include "tern_series.h"
#include "tern_work.h"
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tern_series_t {
    tern_series_slot_t *slots;  //  owned array of CAP slots
    size_t cap;                 //  power of two, >= 2 * max
    size_t max;                 //  label sets before "other"
    _Atomic size_t used;        //  label sets claimed
    tern_series_slot_t other_t; //  topic="other"
    tern_series_slot_t other_g; //  topic="other", group="other"
};

tern_series_t *tern_series_new(size_t max) {
    tern_series_t *self = tern_alloc(sizeof *self);
    self->max = max ? max : TERN_SERIES_MAX_DEFAULT;
    self->cap = 64;
    while (self->cap < 2 * self->max) {
        self->cap *= 2;
    }
    self->slots = tern_alloc(self->cap * sizeof *self->slots);
    snprintf(self->other_t.topic, sizeof self->other_t.topic, "other");
    snprintf(self->other_g.topic, sizeof self->other_g.topic, "other");
    snprintf(self->other_g.group, sizeof self->other_g.group, "other");
    return self;
}

void tern_series_destroy(tern_series_t **self_p) {
    if (!self_p || !*self_p) {
        return;
    }
    free((*self_p)->slots);
    free(*self_p);
    *self_p = NULL;
}

static uint64_t s_hash(const char *topic, const char *group) {
    uint64_t h = 1469598103934665603ull; //  FNV-1a
    for (const char *p = topic; *p; p++) {
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    }
    h = (h ^ 0xFF) * 1099511628211ull; //  separator: ("a", "b") != ("ab", "")
    for (const char *p = group; *p; p++) {
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    }
    return h;
}

static tern_series_slot_t *s_other(tern_series_t *self, const char *group) {
    tern_series_slot_t *other = *group ? &self->other_g : &self->other_t;
    atomic_store_explicit(&other->state, 2, memory_order_release);
    return other;
}

tern_series_slot_t *tern_series_get(tern_series_t *self, const char *topic, const char *group) {
    group = group ? group : "";
    topic = topic ? topic : "";
    size_t mask = self->cap - 1;
    size_t i = (size_t)s_hash(topic, group) & mask;
    for (size_t probes = 0; probes < self->cap; probes++, i = (i + 1) & mask) {
        tern_series_slot_t *slot = &self->slots[i];
        int state = atomic_load_explicit(&slot->state, memory_order_acquire);
        if (state == 0) {
            if (atomic_load_explicit(&self->used, memory_order_relaxed) >= self->max) {
                return s_other(self, group);
            }
            int expected = 0;
            if (atomic_compare_exchange_strong(&slot->state, &expected, 1)) {
                atomic_fetch_add(&self->used, 1);
                snprintf(slot->topic, sizeof slot->topic, "%s", topic);
                snprintf(slot->group, sizeof slot->group, "%s", group);
                atomic_store_explicit(&slot->state, 2, memory_order_release);
                return slot;
            }
            state = expected;
        }
        while (state == 1) {
            sched_yield();
            state = atomic_load_explicit(&slot->state, memory_order_acquire);
        }
        if (strcmp(slot->topic, topic) == 0 && strcmp(slot->group, group) == 0) {
            return slot;
        }
    }
    return s_other(self, group);
}

void tern_series_add(tern_series_t *self, const char *topic, const char *group,
                     tern_series_counter_t c, uint64_t n) {
    if (!self || c >= TERN_SC_COUNT) {
        return;
    }
    tern_series_slot_t *slot = tern_series_get(self, topic, group);
    atomic_fetch_add_explicit(&slot->counters[c], n, memory_order_relaxed);
}

void tern_series_each(tern_series_t *self, tern_series_fn *fn, void *arg) {
    for (size_t i = 0; i < self->cap; i++) {
        if (atomic_load_explicit(&self->slots[i].state, memory_order_acquire) == 2) {
            fn(&self->slots[i], arg);
        }
    }
    if (atomic_load_explicit(&self->other_t.state, memory_order_acquire) == 2) {
        fn(&self->other_t, arg);
    }
    if (atomic_load_explicit(&self->other_g.state, memory_order_acquire) == 2) {
        fn(&self->other_g, arg);
    }
}

size_t tern_series_count(tern_series_t *self) {
    size_t n = atomic_load(&self->used);
    n += atomic_load(&self->other_t.state) == 2;
    n += atomic_load(&self->other_g.state) == 2;
    return n;
}

const char *tern_series_counter_name(tern_series_counter_t c) {
    static const char *names[TERN_SC_COUNT] = {
        "tern_topic_published_total",     "tern_topic_duplicates_total",
        "tern_group_delivered_total",     "tern_group_redelivered_total",
        "tern_group_acked_total",         "tern_group_nacked_total",
        "tern_group_dead_lettered_total", "tern_group_expired_total"};
    return c < TERN_SC_COUNT ? names[c] : "tern_unknown_total";
}

static const double s_bounds[TERN_HISTO_BUCKETS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                    0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                                    1,      2.5,     10,     60};

double tern_histo_bound(int i) {
    return i >= 0 && i < TERN_HISTO_BUCKETS ? s_bounds[i] : 0;
}

void tern_histo_observe(tern_histo_t *self, uint64_t ns) {
    double s = (double)ns / 1e9;
    int i = 0;
    while (i < TERN_HISTO_BUCKETS && s > s_bounds[i]) {
        i++;
    }
    atomic_fetch_add_explicit(&self->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&self->sum_ns, ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&self->count, 1, memory_order_relaxed);
}
