/*  tern_alloc.h - the one out-of-memory policy of every layer.

    ternd and libtern cannot make progress without memory, and a half-done
    operation would be worse than none (an acknowledged publish must be on
    disk; an LMDB transaction must be whole), so running out of memory ends
    the process: tern_oom prints one line naming the program and the size,
    then aborts. Every allocation that cannot be refused goes through the
    helpers below, so there is no other abort for it anywhere in the tree
    (docs/architecture.md, "Out of memory"). Code that can refuse cleanly
    (an over-size request from the wire) checks sizes before it allocates.
    Thread-safe; protocol/ holds it because every layer links protocol.
*/
#ifndef TERN_ALLOC_H_INCLUDED
#define TERN_ALLOC_H_INCLUDED

#include <stddef.h>

/*  Ends the process: prints "PROGRAM: out of memory (SIZE bytes)" on stderr
    (without the size when SIZE is 0: an allocation made by a library) and
    aborts. */
_Noreturn void tern_oom(size_t size);

/*  calloc(1, SIZE) (SIZE 0 counts as 1); never returns NULL. */
void *tern_alloc(size_t size);

/*  malloc(SIZE), not zeroed: for blocks that are filled at once. */
void *tern_alloc_raw(size_t size);

/*  realloc(PTR, SIZE) (SIZE 0 counts as 1); never returns NULL. */
void *tern_realloc(void *ptr, size_t size);

/*  strdup(TEXT) and strndup(TEXT, MAX); never return NULL (TEXT must not
    be NULL). */
char *tern_strdup(const char *text);
char *tern_strndup(const char *text, size_t max);

#endif
