/*  tern_partition.h - which partition a topic belongs to.

    A clustered DC splits its topics over P partitions (cluster/partitions,
    fixed when the cluster is created). libtern (to send a publish to its
    partition's leader) and ternd (to refuse what it does not lead) must agree
    on the partition of every topic bit for bit, so the function lives here in
    protocol/, which both link, and docs/protocol.md ("Partitions") specifies
    it with test vectors that tests/unit/test_partition.c checks.

    The hash is xxHash64 (seed 0) over the topic's bytes, written from its
    published specification (github.com/Cyan4973/xxHash, doc/xxhash_spec.md):
    a precise, well-known function that other languages have, whose low bits
    are as well mixed as its high ones, so `hash mod P` is even for P = 64
    (FNV-1a's low k bits depend only on the low k bits of each byte).
    Pure functions: no state, no allocation, thread-safe.
*/
#ifndef TERN_PARTITION_H_INCLUDED
#define TERN_PARTITION_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*  xxHash64 of LEN bytes at DATA with SEED. DATA may be NULL when LEN is 0. */
uint64_t tern_partition_hash(const void *data, size_t len, uint64_t seed);

/*  The partition (0..PARTITIONS-1) of the topic of LEN bytes at TOPIC:
    tern_partition_hash(TOPIC, LEN, 0) mod PARTITIONS. The name is taken as
    bytes, exactly as on the wire (no terminator, no case folding). A
    PARTITIONS of 0 (no cluster) counts as 1: every topic is partition 0. */
uint32_t tern_partition_of(const char *topic, size_t len, uint32_t partitions);

#ifdef __cplusplus
}
#endif

#endif
