/*  tern_memory.h - ternd's allocator settings and giving memory back after
    a burst (glibc malloc).

    ternd's main thread calls tern_memory_setup once, before any actor
    starts, and tern_memory_tick from its wait loop. Nothing else in the
    broker depends on them: they change how much freed memory the process
    keeps, never what it allocates.
*/
#ifndef TERN_MEMORY_H_INCLUDED
#define TERN_MEMORY_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

//  Blocks at least this large get their own mapping (fresh zeroed pages,
//  a page fault per 4 KB on first touch, unmapped on free): arrays made and
//  freed per batch on a hot path stay below it.
#define TERN_MEMORY_MMAP_THRESHOLD (256u * 1024)

//  Free heap memory ternd keeps without giving it back (bytes).
#define TERN_MEMORY_KEEP (16u << 20)

/*  Sets glibc malloc's tunables for a broker: few arenas, large blocks in
    their own mappings, a trim threshold of TERN_MEMORY_KEEP. Call before
    starting threads.
    Borrowed nothing; no errors (an unknown tunable is ignored). */
void tern_memory_setup(void);

/*  Gives free heap memory back to the OS when the process's anonymous
    resident memory that malloc has not handed out grew by more than KEEP
    bytes since the last trim (what a trim cannot give back, such as thread
    stacks, is not counted again). Never trims when mallinfo2 reports
    nothing handed out (another malloc). Returns true if it trimmed. Thread-safe; takes each arena's
    lock while it walks it, so call it rarely (tern_memory_tick). */
bool tern_memory_trim(size_t keep);

/*  tern_memory_trim(TERN_MEMORY_KEEP) at most once a second; for a loop
    that wakes often. Main thread only (keeps its last-run time). */
void tern_memory_tick(void);

#endif
