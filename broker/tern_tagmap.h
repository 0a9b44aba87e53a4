/*  tern_tagmap.h - a small map from delivery tags (u64) to borrowed pointers.

    route keeps one per subscription: the messages in flight by the tag
    their DELIVER carried, so an ACK, NACK or TERM finds its entry in O(1).
    Open addressing on the tag itself (tags are sequential per subscription,
    so tag & mask spreads them evenly), linear probing, deleted slots marked
    and reused by later tags: no allocation per insert in steady state,
    where a zhashx allocated an item per insert. The map is embedded in its
    owner (no allocation until the first insert), like nng's idhash.

    Not thread safe: one owner. Out of memory ends the process (tern_alloc.h).
*/
#ifndef TERN_TAGMAP_H_INCLUDED
#define TERN_TAGMAP_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#define TERN_TAGMAP_TOMB UINT64_MAX //  a deleted slot: never a valid tag

typedef struct {
    uint64_t tag; //  0 = empty slot (tags start at 1), TERN_TAGMAP_TOMB = deleted
    void *value;  //  borrowed
} tern_tagmap_slot_t;

typedef struct {
    tern_tagmap_slot_t *slots; //  owned array of CAP slots
    size_t cap;                //  a power of two, or 0 before the first insert
    size_t count;              //  live entries
    size_t filled;             //  live + deleted slots (the rest are empty)
} tern_tagmap_t;

/*  An empty map: zero it ({0} or memset) or call this. */
void tern_tagmap_init(tern_tagmap_t *self);

/*  Frees the slots; the map is empty (and usable) again. Values are
    borrowed: not touched. */
void tern_tagmap_fini(tern_tagmap_t *self);

/*  The value of TAG, or NULL if TAG is not in the map (0 and
    TERN_TAGMAP_TOMB never are). Borrowed. */
void *tern_tagmap_get(const tern_tagmap_t *self, uint64_t tag);

/*  Adds TAG -> VALUE. TAG must be in 1 .. TERN_TAGMAP_TOMB - 1 and not in
    the map yet (tags are never reused): a programmer error otherwise. */
void tern_tagmap_insert(tern_tagmap_t *self, uint64_t tag, void *value);

/*  Removes TAG; nothing if it is not in the map. */
void tern_tagmap_delete(tern_tagmap_t *self, uint64_t tag);

/*  Number of entries. */
size_t tern_tagmap_count(const tern_tagmap_t *self);

/*  The values whose tag is <= MAX_TAG, copied into a new array (caller owns
    it; free()) with *COUNT set: callers change the map while walking the
    list. Slot order, not tag order. */
void **tern_tagmap_list(const tern_tagmap_t *self, uint64_t max_tag, size_t *count);

#endif
