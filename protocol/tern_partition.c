/*  tern_partition.c - xxHash64 and topic -> partition.

    Written from the xxHash64 specification (doc/xxhash_spec.md in the
    xxHash repository): four accumulators over 32-byte stripes, a merge,
    then the tail in 8-, 4- and 1-byte steps, then the avalanche. Input
    words are read little-endian byte by byte, so the result does not depend
    on the host's byte order or on alignment.
*/
#include "tern_partition.h"

#define S_PRIME1 0x9E3779B185EBCA87ULL
#define S_PRIME2 0xC2B2AE3D27D4EB4FULL
#define S_PRIME3 0x165667B19E3779F9ULL
#define S_PRIME4 0x85EBCA77C2B2AE63ULL
#define S_PRIME5 0x27D4EB2F165667C5ULL

static uint64_t s_rotl(uint64_t x, unsigned r) {
    return (x << r) | (x >> (64 - r));
}

static uint64_t s_read64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

static uint64_t s_read32(const unsigned char *p) {
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24;
}

static uint64_t s_round(uint64_t acc, uint64_t lane) {
    acc += lane * S_PRIME2;
    return s_rotl(acc, 31) * S_PRIME1;
}

static uint64_t s_merge(uint64_t acc, uint64_t v) {
    acc ^= s_round(0, v);
    return acc * S_PRIME1 + S_PRIME4;
}

//  The stripes of 32 bytes: returns the merged accumulator, advances *P_P.
static uint64_t s_stripes(const unsigned char **p_p, size_t len, uint64_t seed) {
    const unsigned char *p = *p_p;
    uint64_t v1 = seed + S_PRIME1 + S_PRIME2;
    uint64_t v2 = seed + S_PRIME2;
    uint64_t v3 = seed;
    uint64_t v4 = seed - S_PRIME1;
    for (; len >= 32; len -= 32, p += 32) {
        v1 = s_round(v1, s_read64(p));
        v2 = s_round(v2, s_read64(p + 8));
        v3 = s_round(v3, s_read64(p + 16));
        v4 = s_round(v4, s_read64(p + 24));
    }
    *p_p = p;
    uint64_t acc = s_rotl(v1, 1) + s_rotl(v2, 7) + s_rotl(v3, 12) + s_rotl(v4, 18);
    acc = s_merge(acc, v1);
    acc = s_merge(acc, v2);
    acc = s_merge(acc, v3);
    return s_merge(acc, v4);
}

uint64_t tern_partition_hash(const void *data, size_t len, uint64_t seed) {
    const unsigned char *p = data;
    uint64_t acc = len >= 32 ? s_stripes(&p, len, seed) : seed + S_PRIME5;
    size_t rest = len % 32;
    acc += (uint64_t)len;
    for (; rest >= 8; rest -= 8, p += 8) {
        acc ^= s_round(0, s_read64(p));
        acc = s_rotl(acc, 27) * S_PRIME1 + S_PRIME4;
    }
    if (rest >= 4) {
        acc ^= s_read32(p) * S_PRIME1;
        acc = s_rotl(acc, 23) * S_PRIME2 + S_PRIME3;
        rest -= 4;
        p += 4;
    }
    for (; rest > 0; rest--, p++) {
        acc ^= *p * S_PRIME5;
        acc = s_rotl(acc, 11) * S_PRIME1;
    }
    acc ^= acc >> 33;
    acc *= S_PRIME2;
    acc ^= acc >> 29;
    acc *= S_PRIME3;
    acc ^= acc >> 32;
    return acc;
}

uint32_t tern_partition_of(const char *topic, size_t len, uint32_t partitions) {
    if (partitions <= 1) {
        return 0;
    }
    return (uint32_t)(tern_partition_hash(topic, len, 0) % partitions);
}
