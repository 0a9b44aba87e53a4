/*  tern_placement.c - rendezvous placement of partitions on nodes.

    For each partition, every live node gets a weight (tern_placement_weight)
    and the R heaviest win. The selection keeps a sorted top-R list while it
    walks the nodes: O(nodes x R) per partition, a few microseconds for
    hundreds of nodes, and it runs only when membership changes.
*/
#include "tern_placement.h"
#include "tern_alloc.h"
#include "tern_partition.h"

#include <stdlib.h>
#include <string.h>

struct tern_placement_t {
    uint32_t partitions; //  number of partitions
    uint32_t width;      //  entries per partition in replicas (R)
    uint32_t *replicas;  //  partitions x width node ids, each row highest weight first
    uint8_t *counts;     //  replicas actually chosen per partition (<= width)
};

uint64_t tern_placement_weight(uint32_t partition, uint32_t node_id) {
    unsigned char key[8];
    for (int i = 0; i < 4; i++) {
        key[i] = (unsigned char)(partition >> (8 * i));
        key[4 + i] = (unsigned char)(node_id >> (8 * i));
    }
    return tern_partition_hash(key, sizeof key, 0);
}

//  True when node A (weight WA) ranks before node B (weight WB).
static bool s_before(uint64_t wa, uint32_t a, uint64_t wb, uint32_t b) {
    return wa != wb ? wa > wb : a < b;
}

size_t tern_placement_replicas(uint32_t partition, const uint32_t *nodes, size_t count, size_t r,
                               uint32_t *out) {
    uint64_t weights[TERN_PLACEMENT_REPLICAS_MAX];
    size_t chosen = 0;
    if (r > TERN_PLACEMENT_REPLICAS_MAX) {
        r = TERN_PLACEMENT_REPLICAS_MAX;
    }
    for (size_t i = 0; i < count && r > 0; i++) {
        uint32_t node = nodes[i];
        uint64_t weight = tern_placement_weight(partition, node);
        size_t at = chosen;
        bool duplicate = node == TERN_NODE_NONE;
        for (size_t j = 0; j < chosen && !duplicate; j++) {
            duplicate = out[j] == node;
        }
        //  A duplicate of a node that fell below the top R ranks below it
        //  again, so only duplicates inside the list need the check above.
        while (!duplicate && at > 0 && s_before(weight, node, weights[at - 1], out[at - 1])) {
            at--;
        }
        if (duplicate || at >= r) {
            continue;
        }
        size_t last = chosen < r ? chosen : r - 1;
        memmove(out + at + 1, out + at, (last - at) * sizeof *out);
        memmove(weights + at + 1, weights + at, (last - at) * sizeof *weights);
        out[at] = node;
        weights[at] = weight;
        if (chosen < r) {
            chosen++;
        }
    }
    return chosen;
}

tern_placement_t *tern_placement_new(uint32_t partitions, uint32_t replicas, const uint32_t *nodes,
                                     size_t count) {
    if (partitions == 0 || replicas == 0 || replicas > TERN_PLACEMENT_REPLICAS_MAX) {
        return NULL;
    }
    tern_placement_t *self = tern_alloc(sizeof *self);
    self->partitions = partitions;
    self->width = replicas;
    self->replicas = tern_alloc((size_t)partitions * replicas * sizeof *self->replicas);
    self->counts = tern_alloc(partitions);
    for (uint32_t p = 0; p < partitions; p++) {
        uint32_t *row = self->replicas + (size_t)p * replicas;
        self->counts[p] = (uint8_t)tern_placement_replicas(p, nodes, count, replicas, row);
    }
    return self;
}

void tern_placement_destroy(tern_placement_t **self_p) {
    if (self_p && *self_p) {
        free((*self_p)->replicas);
        free((*self_p)->counts);
        free(*self_p);
        *self_p = NULL;
    }
}

uint32_t tern_placement_partitions(const tern_placement_t *self) {
    return self->partitions;
}

const uint32_t *tern_placement_get(const tern_placement_t *self, uint32_t partition,
                                   size_t *count) {
    if (partition >= self->partitions) {
        *count = 0;
        return NULL;
    }
    *count = self->counts[partition];
    return self->replicas + (size_t)partition * self->width;
}

uint32_t tern_placement_leader(const tern_placement_t *self, uint32_t partition) {
    size_t count;
    const uint32_t *row = tern_placement_get(self, partition, &count);
    return count > 0 ? row[0] : TERN_NODE_NONE;
}

bool tern_placement_same(const tern_placement_t *a, const tern_placement_t *b, uint32_t partition) {
    size_t na, nb;
    const uint32_t *ra = tern_placement_get(a, partition, &na);
    const uint32_t *rb = tern_placement_get(b, partition, &nb);
    return ra && rb && na == nb && memcmp(ra, rb, na * sizeof *ra) == 0;
}
