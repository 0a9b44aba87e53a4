/*  tern_placement.h - which nodes hold each partition: rendezvous hashing.

    The controller places every partition of a clustered DC on R live nodes
    by rendezvous (highest-random-weight) hashing: each (partition, node)
    pair has a weight, a stable hash of the two numbers, and a partition
    goes to the R nodes of highest weight, in that order; the first is the
    preferred leader. A node's weight for a partition does not depend on
    which other nodes exist, so when a node leaves, only the partitions it
    held change (the next node in weight order takes its place), and when a
    node joins, only the partitions where it ranks among the top R change.
    No ring, no virtual nodes, no table to store: any node recomputes the
    same plan from the list of live node ids.

    Pure logic: no sockets, no clock, no etcd (the controller feeds it the
    live nodes it read from etcd and writes the records it decides). The
    partition records themselves (leader, epoch, ISR) are in tern_partmap.h.
    docs/cluster.md explains the choice.
*/
#ifndef TERN_PLACEMENT_H_INCLUDED
#define TERN_PLACEMENT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Most replicas a partition can have (cluster/replicas is 1..this).
#define TERN_PLACEMENT_REPLICAS_MAX 16

//  "No node": never a valid node id (those are 0..TERN_ID_NODE_MAX).
#define TERN_NODE_NONE UINT32_MAX

typedef struct tern_placement_t tern_placement_t;

/*  The weight of NODE_ID for PARTITION: xxHash64 (seed 0, see
    tern_partition.h) of 8 bytes, PARTITION then NODE_ID, each as a
    little-endian u32. Higher ranks first; equal weights rank the lower node
    id first. */
uint64_t tern_placement_weight(uint32_t partition, uint32_t node_id);

/*  Chooses the replicas of PARTITION among the COUNT node ids at NODES (any
    order; duplicates and TERN_NODE_NONE are ignored): writes the min(R,
    distinct nodes) nodes of highest weight to OUT, highest first, and
    returns how many it wrote. OUT must hold R entries. R above
    TERN_PLACEMENT_REPLICAS_MAX counts as the maximum. */
size_t tern_placement_replicas(uint32_t partition, const uint32_t *nodes, size_t count, size_t r,
                               uint32_t *out);

/*  Creates the plan of all PARTITIONS (>= 1) with REPLICAS (1..
    TERN_PLACEMENT_REPLICAS_MAX) each over the COUNT live node ids at NODES
    (copied). With fewer distinct nodes than REPLICAS, every partition gets
    all of them. Returns NULL when PARTITIONS or REPLICAS is out of range.
    Caller owns the result. */
tern_placement_t *tern_placement_new(uint32_t partitions, uint32_t replicas, const uint32_t *nodes,
                                     size_t count);

/*  Safe on NULL; nulls *SELF_P. */
void tern_placement_destroy(tern_placement_t **self_p);

/*  Number of partitions in the plan. */
uint32_t tern_placement_partitions(const tern_placement_t *self);

/*  The replicas of PARTITION, highest weight first, and their number in
    *COUNT. Borrowed; valid until the plan is destroyed. NULL with *COUNT 0
    when PARTITION is out of range. */
const uint32_t *tern_placement_get(const tern_placement_t *self, uint32_t partition, size_t *count);

/*  The preferred leader of PARTITION (its first replica), or TERN_NODE_NONE
    when the partition is out of range or the plan has no node. */
uint32_t tern_placement_leader(const tern_placement_t *self, uint32_t partition);

/*  True when PARTITION has the same replicas in the same order in both
    plans (false when it is out of range in either). */
bool tern_placement_same(const tern_placement_t *a, const tern_placement_t *b, uint32_t partition);

#endif
