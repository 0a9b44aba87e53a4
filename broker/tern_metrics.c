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
