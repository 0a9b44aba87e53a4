/*  tern_alloc.c - allocation helpers that end the process on out of memory.
    See tern_alloc.h for the policy. */
//  program_invocation_short_name needs _GNU_SOURCE (set for the whole build).
#include "tern_alloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Noreturn void tern_oom(size_t size) {
    if (size) {
        fprintf(stderr, "%s: out of memory (%zu bytes)\n", program_invocation_short_name, size);
    } else {
        fprintf(stderr, "%s: out of memory\n", program_invocation_short_name);
    }
    abort();
}

void *tern_alloc(size_t size) {
    void *ptr = calloc(1, size ? size : 1);
    if (!ptr) {
        tern_oom(size);
    }
    return ptr;
}

void *tern_alloc_raw(size_t size) {
    void *ptr = malloc(size ? size : 1);
    if (!ptr) {
        tern_oom(size);
    }
    return ptr;
}

void *tern_realloc(void *ptr, size_t size) {
    void *grown = realloc(ptr, size ? size : 1);
    if (!grown) {
        tern_oom(size);
    }
    return grown;
}

char *tern_strdup(const char *text) {
    return tern_strndup(text, (size_t)-1);
}

char *tern_strndup(const char *text, size_t max) {
    char *copy = strndup(text, max);
    if (!copy) {
        tern_oom(strnlen(text, max) + 1);
    }
    return copy;
}
