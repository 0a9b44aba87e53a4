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
    heap, once more than TERN_MEMORY_KEEP is resident but unused.
*/
#include "tern_memory.h"
#include <czmq.h>
#include <malloc.h>
#include <stdio.h>
#include <unistd.h>

void tern_memory_setup(void) {
    //  Explicit values also switch off glibc's dynamic mmap threshold, which
    //  after one freed 1.6 MB op batch would keep every later one in a heap.
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    mallopt(M_TRIM_THRESHOLD, 1 << 20);
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

//  Compares what is resident with what malloc has handed out, not malloc's
//  free bytes: those stay free (and counted) after malloc_trim gave their
//  pages back, so they would make every call trim again.
bool tern_memory_trim(size_t keep) {
    struct mallinfo2 info = mallinfo2();
    size_t used = info.uordblks + info.hblkhd;
    if (s_rss_anon() <= used + keep) {
        return false;
    }
    malloc_trim(0);
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
