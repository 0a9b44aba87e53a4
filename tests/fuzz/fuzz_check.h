/*  fuzz_check.h - the property check of the fuzz targets.

    A failed property must stop the run with a finding in both modes (under
    libFuzzer, and replaying the corpus as a test), so CHECK aborts rather
    than asserts: assert vanishes under NDEBUG in the RelWithDebInfo build.
*/
#ifndef FUZZ_CHECK_H_INCLUDED
#define FUZZ_CHECK_H_INCLUDED

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
