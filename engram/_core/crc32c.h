/* CRC32C (Castagnoli, reflected polynomial 0x82F63B78), as used by the WAL codec.
 *
 * Two paths give the same answer: the SSE4.2 crc32 instruction, chosen at run time
 * when the CPU has it (about 10x faster), and a portable slicing-by-8 table. The
 * value is pre- and post-inverted, so crc32c("123456789") == 0xE3069283 and a
 * running value can be passed back in to continue a checksum over more bytes.
 */
#ifndef ENGRAM_CRC32C_H
#define ENGRAM_CRC32C_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static uint32_t engram_crc32c_table[8][256];
static int engram_crc32c_ready = 0;
static int engram_crc32c_hw = 0;

static void engram_crc32c_init(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : (c >> 1);
        engram_crc32c_table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = engram_crc32c_table[0][n];
        for (int t = 1; t < 8; t++) {
            c = engram_crc32c_table[0][c & 0xff] ^ (c >> 8);
            engram_crc32c_table[t][n] = c;
        }
    }
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    engram_crc32c_hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
#endif
    engram_crc32c_ready = 1;
}

static uint32_t engram_crc32c_sw(uint32_t crc, const unsigned char *p, size_t n) {
    while (n && ((uintptr_t)p & 7)) {
        crc = engram_crc32c_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        n--;
    }
    while (n >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        /* little-endian hosts only: the table walk below assumes byte 0 is lowest */
        uint32_t lo = (uint32_t)word ^ crc;
        uint32_t hi = (uint32_t)(word >> 32);
        crc = engram_crc32c_table[7][lo & 0xff] ^ engram_crc32c_table[6][(lo >> 8) & 0xff] ^
              engram_crc32c_table[5][(lo >> 16) & 0xff] ^ engram_crc32c_table[4][lo >> 24] ^
              engram_crc32c_table[3][hi & 0xff] ^ engram_crc32c_table[2][(hi >> 8) & 0xff] ^
              engram_crc32c_table[1][(hi >> 16) & 0xff] ^ engram_crc32c_table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--) crc = engram_crc32c_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("sse4.2")))
static uint32_t engram_crc32c_hw_run(uint32_t crc, const unsigned char *p, size_t n) {
    uint64_t c = crc;
    while (n && ((uintptr_t)p & 7)) {
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
        n--;
    }
    while (n >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        c = __builtin_ia32_crc32di(c, word);
        p += 8;
        n -= 8;
    }
    while (n--) c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
    return (uint32_t)c;
}
#endif

static uint32_t engram_crc32c(uint32_t value, const unsigned char *p, size_t n) {
    if (!engram_crc32c_ready) engram_crc32c_init();
    uint32_t crc = value ^ 0xFFFFFFFFu;
#if defined(__x86_64__) && defined(__GNUC__)
    if (engram_crc32c_hw) return engram_crc32c_hw_run(crc, p, n) ^ 0xFFFFFFFFu;
#endif
    return engram_crc32c_sw(crc, p, n) ^ 0xFFFFFFFFu;
}

#endif
