/*  tern_crc32c.c - CRC32C (Castagnoli) for stored records.

    Every log record carries a CRC32C so a reader never hands out bytes that
    changed on disk. The SSE4.2 crc32 instruction is used when the CPU has it
    (checked once at run time); otherwise a slicing-by-8 table in software.
*/
#include "tern_store.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

#define CRC32C_POLY 0x82F63B78u //  reflected Castagnoli polynomial

static uint32_t s_table[8][256];
static pthread_once_t s_once = PTHREAD_ONCE_INIT;
static bool s_have_sse42;

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
__attribute__((target("sse4.2"))) static uint32_t s_crc_hw(uint32_t crc, const uint8_t *p,
                                                           size_t len) {
    uint64_t c = crc;
    while (len && ((uintptr_t)p & 7)) {
        c = _mm_crc32_u8((uint32_t)c, *p++);
        len--;
    }
    while (len >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        c = _mm_crc32_u64(c, word);
        p += 8;
        len -= 8;
    }
    while (len--) {
        c = _mm_crc32_u8((uint32_t)c, *p++);
    }
    return (uint32_t)c;
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
