/*  test_memory.c - unit tests of ternd's allocator settings (tern_memory):
    free memory scattered through the heap after a burst goes back to the
    OS once it passes the bound, and not before; memory malloc does not own
    is not trimmed for again and again.
*/
#include "tern_memory.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

TestSuite(memory, .timeout = 60);

#define S_BLOCKS 200000 //  blocks of the burst
#define S_BLOCK  200    //  bytes each: 40 MB in all

//  This process's anonymous resident memory, in KB.
static long s_rss_anon_kb(void) {
    FILE *file = fopen("/proc/self/status", "r");
    cr_assert_not_null(file);
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, file)) {
        if (sscanf(line, "RssAnon: %ld kB", &kb) == 1) {
            break;
        }
    }
    fclose(file);
    cr_assert_geq(kb, 0, "no RssAnon in /proc/self/status");
    return kb;
}

Test(memory, usage_example) {
#if defined(__SANITIZE_ADDRESS__)
    cr_skip_test("AddressSanitizer replaces glibc malloc: nothing of this applies");
#endif
    //  ternd's main: set up once before the actors start, then tick.
    tern_memory_setup();
    tern_memory_tick();

    //  A burst: 40 MB of small blocks, then all freed but every 100th, so
    //  the free memory sits between live blocks, where glibc does not trim
    //  by itself.
    char **blocks = calloc(S_BLOCKS, sizeof *blocks);
    cr_assert_not_null(blocks);
    for (size_t i = 0; i < S_BLOCKS; i++) {
        blocks[i] = malloc(S_BLOCK);
        cr_assert_not_null(blocks[i]);
        memset(blocks[i], 1, S_BLOCK);
    }
    for (size_t i = 0; i < S_BLOCKS; i++) {
        if (i % 100 != 99) {
            free(blocks[i]);
            blocks[i] = NULL;
        }
    }
    long before = s_rss_anon_kb();
    //  Less free memory than the bound: kept.
    cr_assert_not(tern_memory_trim((size_t)1 << 30));
    //  More: given back (most of the 40 MB).
    cr_assert(tern_memory_trim(TERN_MEMORY_KEEP));
    long after = s_rss_anon_kb();
    cr_assert_lt(after, before - 20 * 1024, "RssAnon %ld kB before the trim, %ld kB after", before,
                 after);
    //  Nothing left to give back.
    cr_assert_not(tern_memory_trim(TERN_MEMORY_KEEP));
    for (size_t i = 0; i < S_BLOCKS; i++) {
        free(blocks[i]);
    }
    free(blocks);
}

//  Anonymous memory malloc did not hand out and cannot give back (a thread
//  stack, libzmq's mappings): one trim may look at it, the next ones do not
//  trim again for it (they trimmed every second forever).
//  A commit of 64 KB messages frees LMDB's overflow runs (17 pages each) at
//  the top of the heap; the next transaction mallocs as many again. They stay
//  resident (up to TERN_MEMORY_KEEP) instead of going back and being faulted
//  in, zeroed, page by page (docs/performance.md, "The 64 KB publish path").
Test(memory, keeps_a_commits_overflow_runs) {
#if defined(__SANITIZE_ADDRESS__)
    cr_skip_test("AddressSanitizer replaces glibc malloc: nothing of this applies");
#endif
    tern_memory_setup();
    enum { RUNS = 40, RUN = 17 * 4096 }; //  2.7 MB: more than 1 MB, less than KEEP
    char *runs[RUNS];
    for (size_t i = 0; i < RUNS; i++) {
        runs[i] = malloc(RUN);
        cr_assert_not_null(runs[i]);
        memset(runs[i], 1, RUN);
    }
    long before = s_rss_anon_kb();
    for (size_t i = 0; i < RUNS; i++) {
        free(runs[i]);
    }
    long after = s_rss_anon_kb();
    cr_assert_lt(before - after, 1024, "freeing %d overflow runs gave %ld KB back", RUNS,
                 before - after);
}

Test(memory, foreign_memory_trims_once) {
#if defined(__SANITIZE_ADDRESS__)
    cr_skip_test("AddressSanitizer replaces glibc malloc: nothing of this applies");
#endif
    size_t size = (size_t)3 * TERN_MEMORY_KEEP;
    char *foreign = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert(foreign != MAP_FAILED);
    memset(foreign, 1, size);
    tern_memory_trim(TERN_MEMORY_KEEP);
    for (int i = 0; i < 5; i++) {
        cr_assert_not(tern_memory_trim(TERN_MEMORY_KEEP), "trim %d for memory it cannot free", i);
    }
    munmap(foreign, size);
}
