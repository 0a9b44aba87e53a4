/*  tern_tagmap.c - delivery tag -> pointer map (see tern_tagmap.h).

    Invariants: CAP is 0 or a power of two; at least a quarter of the slots
    is empty, so every probe ends; the map grows when half of them are live.
*/
#include "tern_tagmap.h"
#include "tern_alloc.h"
#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

void tern_tagmap_init(tern_tagmap_t *self) {
    memset(self, 0, sizeof *self);
}

void tern_tagmap_fini(tern_tagmap_t *self) {
    free(self->slots);
    tern_tagmap_init(self);
}

static tern_tagmap_slot_t *s_find(const tern_tagmap_t *self, uint64_t tag) {
    if (self->cap == 0 || tag == 0 || tag == TERN_TAGMAP_TOMB) {
        return NULL;
    }
    size_t mask = self->cap - 1;
    for (size_t i = (size_t)tag & mask;; i = (i + 1) & mask) {
        if (self->slots[i].tag == tag) {
            return &self->slots[i];
        }
        if (self->slots[i].tag == 0) {
            return NULL;
        }
    }
}

void *tern_tagmap_get(const tern_tagmap_t *self, uint64_t tag) {
    tern_tagmap_slot_t *slot = s_find(self, tag);
    return slot ? slot->value : NULL;
}

//  Rebuilds the map with CAP slots and no deleted ones.
static void s_rehash(tern_tagmap_t *self, size_t cap) {
    tern_tagmap_slot_t *slots = tern_alloc(cap * sizeof(tern_tagmap_slot_t));
    size_t mask = cap - 1;
    for (size_t i = 0; i < self->cap; i++) {
        uint64_t tag = self->slots[i].tag;
        if (tag != 0 && tag != TERN_TAGMAP_TOMB) {
            size_t j = (size_t)tag & mask;
            while (slots[j].tag != 0) {
                j = (j + 1) & mask;
            }
            slots[j] = self->slots[i];
        }
    }
    free(self->slots);
    self->slots = slots;
    self->cap = cap;
    self->filled = self->count;
}

//  TAG is not in the map (tags are never reused), so a deleted slot on the
//  probe path can take it. Sequential tags land on the slots their
//  predecessors one table-size earlier left: no rehash in steady state.
void tern_tagmap_insert(tern_tagmap_t *self, uint64_t tag, void *value) {
    assert(tag != 0 && tag != TERN_TAGMAP_TOMB);
    while (true) {
        if (self->cap) {
            size_t mask = self->cap - 1;
            size_t i = (size_t)tag & mask;
            while (self->slots[i].tag != 0 && self->slots[i].tag != TERN_TAGMAP_TOMB) {
                i = (i + 1) & mask;
            }
            if (self->slots[i].tag == TERN_TAGMAP_TOMB || (self->filled + 1) * 4 <= self->cap * 3) {
                if (self->slots[i].tag == 0) {
                    self->filled++;
                }
                self->slots[i].tag = tag;
                self->slots[i].value = value;
                self->count++;
                return;
            }
        }
        //  Keep a quarter of the slots empty; grow when half are live.
        size_t cap = self->cap ? self->cap : 64;
        while ((self->count + 1) * 2 > cap) {
            cap *= 2;
        }
        s_rehash(self, cap);
    }
}

void tern_tagmap_delete(tern_tagmap_t *self, uint64_t tag) {
    tern_tagmap_slot_t *slot = s_find(self, tag);
    if (slot) {
        slot->tag = TERN_TAGMAP_TOMB;
        slot->value = NULL;
        self->count--;
    }
}

size_t tern_tagmap_count(const tern_tagmap_t *self) {
    return self->count;
}

void **tern_tagmap_list(const tern_tagmap_t *self, uint64_t max_tag, size_t *count) {
    void **list = tern_alloc((self->count + 1) * sizeof(void *));
    size_t n = 0;
    for (size_t i = 0; i < self->cap; i++) {
        uint64_t tag = self->slots[i].tag;
        if (tag != 0 && tag != TERN_TAGMAP_TOMB && tag <= max_tag) {
            list[n++] = self->slots[i].value;
        }
    }
    *count = n;
    return list;
}
