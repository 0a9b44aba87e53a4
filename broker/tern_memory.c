/*  tern_memory.c - ternd's allocator settings and giving memory back after
    a burst (glibc malloc).

    What a burst leaves behind (docs/performance.md, "Memory"): after fan-out
    to 100 groups ternd kept 408 MB of anonymous memory of which 147 MB was in
    use; the rest was freed chunks glibc keeps in its arenas (one per thread
    that allocated, up to 8 per core) for reuse. The actors allocate on one
    thread and free on another (route makes op batches, the storer frees
    them), so freed memory is scattered over arenas and seldom at the top of
    a heap, where glibc trims on its own. So: fewer arenas, blocks of 256 KB
    and more (large messages) in their own mappings that go back at free,
    and a periodic malloc_trim, which also returns the free pages inside a
    heap, once the resident memory malloc has not handed out grew by more
    than TERN_MEMORY_KEEP since the last trim.
*/
#include "tern_memory.h"
#include <czmq.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

void tern_memory_setup(void) {
    //  Explicit values also switch off glibc's dynamic mmap threshold, which
    //  after one freed 1.6 MB op batch would keep every later one in a heap.
    mallopt(M_MMAP_THRESHOLD, TERN_MEMORY_MMAP_THRESHOLD);
    //  The top of a heap is kept up to KEEP, what the periodic trim keeps
    //  too: at 1 MB every commit of 64 KB messages gave its LMDB overflow
    //  runs (17 pages each, freed at commit) back and faulted them in again
    //  (13 page faults per message, a fifth of ternd's CPU; docs/performance.md,
    //  "The 64 KB publish path").
    mallopt(M_TRIM_THRESHOLD, TERN_MEMORY_KEEP);
    mallopt(M_ARENA_MAX, 4);
}

//  Anonymous resident memory of this process (bytes), 0 if unknown.
static size_t s_rss_anon(void) {
    FILE *file = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0, shared = 0;
    int fields = file ? fscanf(file, "%lu %lu %lu", &size, &resident, &shared) : 0;
    if (file) {
        fclose(file);
    }
    if (fields != 3 || resident < shared) {
        return 0;
    }
    return (size_t)(resident - shared) * (size_t)sysconf(_SC_PAGESIZE);
}

//  Anonymous resident memory malloc has not handed out (bytes): its free
//  pages, and what it does not own (thread stacks, libzmq's mappings). From
//  what malloc handed out, not from its free bytes: those stay free (and
//  counted) after malloc_trim gave their pages back. 0 if unknown, and when
//  mallinfo2 reports nothing handed out (AddressSanitizer replaces malloc).
static size_t s_gap(void) {
    struct mallinfo2 info = mallinfo2();
    size_t used = info.uordblks + info.hblkhd;
    size_t rss = used ? s_rss_anon() : 0;
    return rss > used ? rss - used : 0;
}

//  The gap the last trim left: what no trim gives back. Trimming when the
//  gap exceeded KEEP trimmed every second forever once stacks and libzmq
//  held more than that; so only growth past this floor counts.
static _Atomic size_t s_floor;

bool tern_memory_trim(size_t keep) {
    size_t gap = s_gap();
    size_t floor = atomic_load(&s_floor);
    if (gap < floor) {
        atomic_store(&s_floor, gap); //  some of it went away (a thread ended)
        floor = gap;
    }
    if (gap == 0 || gap <= floor + keep) {
        return false;
    }
    malloc_trim(0);
    atomic_store(&s_floor, s_gap());
    return true;
}

void tern_memory_tick(void) {
    static int64_t next_ms = 0;
    int64_t now = zclock_mono();
    if (now < next_ms) {
        return;
    }
    next_ms = now + 1000;
    tern_memory_trim(TERN_MEMORY_KEEP);
}
