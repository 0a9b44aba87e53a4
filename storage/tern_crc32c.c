/*  tern_crc32c.c - CRC32C (Castagnoli) for stored records.

    Every log record carries a CRC32C so a reader never hands out bytes that
    changed on disk. The SSE4.2 crc32 instruction is used when the CPU has it
    (checked once at run time); otherwise a slicing-by-8 table in software.
    The instruction has a latency of 3 cycles and a throughput of 1, so one
    chain of it runs at a third of its speed: large buffers are summed as
    three lanes at once and the lanes joined with the "zeros" operator
    (Mark Adler's crc32c.c method): crc(A B) = shift(crc(A), |B|) ^ crc0(B).
    tern_crc32c_copy also stores each word it sums, so a 64 KB payload is
    read once to be copied into its log record and summed (the record codec).
*/
#include "tern_store.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

#define CRC32C_POLY 0x82F63B78u //  reflected Castagnoli polynomial

#define S_LONG  8192 //  lane bytes of the long three-lane blocks (a power of two)
#define S_SHORT 256  //  lane bytes of the short blocks (a power of two)

static uint32_t s_table[8][256];
static uint32_t s_long[4][256];  //  advances a CRC register over S_LONG zero bytes
static uint32_t s_short[4][256]; //  the same over S_SHORT zero bytes
static pthread_once_t s_once = PTHREAD_ONCE_INIT;
static bool s_have_sse42;

//  MAT (32 columns, a linear map on CRC registers) applied to VEC.
static uint32_t s_gf2_times(const uint32_t *mat, uint32_t vec) {
    uint32_t sum = 0;
    for (; vec; vec >>= 1, mat++) {
        if (vec & 1) {
            sum ^= *mat;
        }
    }
    return sum;
}

static void s_gf2_square(uint32_t *square, const uint32_t *mat) {
    for (int n = 0; n < 32; n++) {
        square[n] = s_gf2_times(mat, mat[n]);
    }
}

//  Fills ZEROS with the map "advance the register over LEN zero bytes" (LEN
//  a power of two), one table per byte of the register, by squaring the
//  one-zero-bit operator.
static void s_zeros_table(uint32_t zeros[4][256], size_t len) {
    uint32_t odd[32];  //  operators for odd powers of two zero bits
    uint32_t even[32]; //  and for even ones
    odd[0] = CRC32C_POLY;
    for (int n = 1; n < 32; n++) {
        odd[n] = 1u << (n - 1);
    }
    s_gf2_square(even, odd); //  2 zero bits
    s_gf2_square(odd, even); //  4 zero bits
    uint32_t *op = even;
    for (;;) {
        s_gf2_square(even, odd); //  the first pass: one zero byte
        op = even;
        len >>= 1;
        if (len == 0) {
            break;
        }
        s_gf2_square(odd, even);
        op = odd;
        len >>= 1;
        if (len == 0) {
            break;
        }
    }
    for (uint32_t n = 0; n < 256; n++) {
        for (int k = 0; k < 4; k++) {
            zeros[k][n] = s_gf2_times(op, n << (8 * k));
        }
    }
}

static inline uint32_t s_shift(uint32_t zeros[4][256], uint32_t crc) {
    return zeros[0][crc & 0xff] ^ zeros[1][(crc >> 8) & 0xff] ^ zeros[2][(crc >> 16) & 0xff] ^
           zeros[3][crc >> 24];
}

static void s_init(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t crc = n;
        for (int k = 0; k < 8; k++) {
            crc = (crc & 1) ? (crc >> 1) ^ CRC32C_POLY : crc >> 1;
        }
        s_table[0][n] = crc;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t crc = s_table[0][n];
        for (int k = 1; k < 8; k++) {
            crc = s_table[0][crc & 0xff] ^ (crc >> 8);
            s_table[k][n] = crc;
        }
    }
    s_zeros_table(s_long, S_LONG);
    s_zeros_table(s_short, S_SHORT);
#if defined(__x86_64__)
    __builtin_cpu_init();
    s_have_sse42 = __builtin_cpu_supports("sse4.2");
#endif
}

static uint32_t s_crc_sw(uint32_t crc, const uint8_t *p, size_t len) {
    while (len && ((uintptr_t)p & 7)) {
        crc = s_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        len--;
    }
    while (len >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        uint32_t lo = (uint32_t)word ^ crc;
        uint32_t hi = (uint32_t)(word >> 32);
        crc = s_table[7][lo & 0xff] ^ s_table[6][(lo >> 8) & 0xff] ^ s_table[5][(lo >> 16) & 0xff] ^
              s_table[4][lo >> 24] ^ s_table[3][hi & 0xff] ^ s_table[2][(hi >> 8) & 0xff] ^
              s_table[1][(hi >> 16) & 0xff] ^ s_table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--) {
        crc = s_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    }
    return crc;
}

#if defined(__x86_64__)
//  One lane word: sums the 8 bytes at P and, when DST is set, stores them at
//  DST (always inlined, so the summing-only callers test no DST).
#define S_WORD(c, p, dst, at)                                                                      \
    do {                                                                                           \
        uint64_t word_;                                                                            \
        memcpy(&word_, (p) + (at), 8);                                                             \
        (c) = _mm_crc32_u64((c), word_);                                                           \
        if (dst) {                                                                                 \
            memcpy((dst) + (at), &word_, 8);                                                       \
        }                                                                                          \
    } while (0)

//  Sums (and copies) LEN bytes in blocks of three lanes of LANE bytes while
//  they last; advances *P, *DST, *LEN.
__attribute__((target("sse4.2"), always_inline)) static inline uint64_t
s_crc_lanes(uint64_t c, const uint8_t **p, uint8_t **dst, size_t *len, size_t lane,
            uint32_t zeros[4][256]) {
    while (*len >= 3 * lane) {
        uint64_t c1 = 0;
        uint64_t c2 = 0;
        const uint8_t *src = *p;
        uint8_t *out = *dst;
        for (size_t at = 0; at < lane; at += 8) {
            S_WORD(c, src, out, at);
            S_WORD(c1, src, out, at + lane);
            S_WORD(c2, src, out, at + 2 * lane);
        }
        c = s_shift(zeros, (uint32_t)c) ^ c1;
        c = s_shift(zeros, (uint32_t)c) ^ c2;
        *p += 3 * lane;
        *dst = out ? out + 3 * lane : NULL;
        *len -= 3 * lane;
    }
    return c;
}

__attribute__((target("sse4.2"), always_inline)) static inline uint32_t
s_crc_hw_body(uint32_t crc, uint8_t *dst, const uint8_t *p, size_t len) {
    uint64_t c = crc;
    c = s_crc_lanes(c, &p, &dst, &len, S_LONG, s_long);
    c = s_crc_lanes(c, &p, &dst, &len, S_SHORT, s_short);
    size_t at = 0;
    for (; at + 8 <= len; at += 8) {
        S_WORD(c, p, dst, at);
    }
    for (; at < len; at++) {
        c = _mm_crc32_u8((uint32_t)c, p[at]);
        if (dst) {
            dst[at] = p[at];
        }
    }
    return (uint32_t)c;
}

__attribute__((target("sse4.2"))) static uint32_t s_crc_hw(uint32_t crc, const uint8_t *p,
                                                           size_t len) {
    return s_crc_hw_body(crc, NULL, p, len);
}

__attribute__((target("sse4.2"))) static uint32_t s_crc_hw_copy(uint32_t crc, uint8_t *dst,
                                                                const uint8_t *p, size_t len) {
    return s_crc_hw_body(crc, dst, p, len);
}
#endif

uint32_t tern_crc32c(uint32_t crc, const void *buf, size_t len) {
    pthread_once(&s_once, s_init);
    crc = ~crc;
#if defined(__x86_64__)
    if (s_have_sse42) {
        return ~s_crc_hw(crc, (const uint8_t *)buf, len);
    }
#endif
    return ~s_crc_sw(crc, (const uint8_t *)buf, len);
}

uint32_t tern_crc32c_sw(uint32_t crc, const void *buf, size_t len) {
    pthread_once(&s_once, s_init);
    return ~s_crc_sw(~crc, (const uint8_t *)buf, len);
}

uint32_t tern_crc32c_copy(uint32_t crc, void *dst, const void *src, size_t len) {
    pthread_once(&s_once, s_init);
    crc = ~crc;
#if defined(__x86_64__)
    if (s_have_sse42) {
        return ~s_crc_hw_copy(crc, (uint8_t *)dst, (const uint8_t *)src, len);
    }
#endif
    memcpy(dst, src, len);
    return ~s_crc_sw(crc, (const uint8_t *)dst, len);
}
