/*  tern_quiet.c - topics nobody listens to (see tern_quiet.h). */
#include "tern_quiet.h"

bool tern_quiet_get(tern_quiet_t *self, uint32_t topic_id) {
    return topic_id < TERN_QUIET_MAX &&
           atomic_load_explicit(&self->flags[topic_id], memory_order_relaxed) != 0;
}

void tern_quiet_set(tern_quiet_t *self, uint32_t topic_id, bool quiet) {
    if (topic_id < TERN_QUIET_MAX) {
        atomic_store_explicit(&self->flags[topic_id], quiet ? 1 : 0, memory_order_relaxed);
    }
}

void tern_quiet_fence(void) {
    atomic_thread_fence(memory_order_seq_cst);
}
