/* Kernels of dedup on store: LSH keys of new rows, exact cosines of (row, query) pairs.
 *
 * LSH keys are sign-random-projection (SimHash) keys from int8 codes, in exact
 * integer arithmetic.
 *
 * Bit j of table t of row i is set when dot(codes[i], planes[t * bits + j]) > 0,
 * the dot product taken over int8 values in an int32 accumulator. Every product
 * and every partial sum is an exact integer (|sum| <= 128 * 128 * 65536 < 2**31
 * for the dimensions allowed), so the result does not depend on the order of the
 * additions: the AVX-512 VNNI, AVX2 and scalar paths give the twin's bits.
 *
 * Speed: 336 planes of 768 int8 are 258 KB, more than L1 and L2 per row, so the
 * planes are streamed once per batch, four at a time (3 KB, in L1), against every
 * row of the batch widened once to int16.
 */
#ifndef ENGRAM_DEDUP_H
#define ENGRAM_DEDUP_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "scan.h"

/* dots[i * p + r] = dot(rows[i], planes[r]) for r in [r_start, r_stop). */
static void engram_lsh_dots_scalar(const int16_t *rows, int64_t b, int64_t d, const int8_t *planes,
                                   int64_t r_start, int64_t r_stop, int64_t p, int32_t *dots) {
    for (int64_t r = r_start; r < r_stop; r++) {
        const int8_t *plane = planes + r * d;
        for (int64_t i = 0; i < b; i++) {
            const int16_t *row = rows + i * d;
            int32_t acc = 0;
            for (int64_t k = 0; k < d; k++) acc += (int32_t)row[k] * (int32_t)plane[k];
            dots[i * p + r] = acc;
        }
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define ENGRAM_LSH_AVX2 1

__attribute__((target("avx2")))
static inline int32_t engram_hsum8(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

/* The same as the scalar kernel for r in [0, p - p % 4), four planes per pass. */
__attribute__((target("avx2")))
static int64_t engram_lsh_dots_avx2(const int16_t *rows, int64_t b, int64_t d, const int8_t *planes, int64_t p,
                                    int32_t *dots) {
    const int64_t full = d - d % 16;
    int64_t r = 0;
    for (; r + 4 <= p; r += 4) {
        const int8_t *p0 = planes + r * d, *p1 = p0 + d, *p2 = p1 + d, *p3 = p2 + d;
        for (int64_t i = 0; i < b; i++) {
            const int16_t *row = rows + i * d;
            __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
            for (int64_t k = 0; k < full; k += 16) {
                __m256i x = _mm256_loadu_si256((const __m256i *)(row + k));
                s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(x, _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(p0 + k)))));
                s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(x, _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(p1 + k)))));
                s2 = _mm256_add_epi32(s2, _mm256_madd_epi16(x, _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(p2 + k)))));
                s3 = _mm256_add_epi32(s3, _mm256_madd_epi16(x, _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(p3 + k)))));
            }
            int32_t a0 = engram_hsum8(s0), a1 = engram_hsum8(s1), a2 = engram_hsum8(s2), a3 = engram_hsum8(s3);
            for (int64_t k = full; k < d; k++) {
                a0 += (int32_t)row[k] * (int32_t)p0[k];
                a1 += (int32_t)row[k] * (int32_t)p1[k];
                a2 += (int32_t)row[k] * (int32_t)p2[k];
                a3 += (int32_t)row[k] * (int32_t)p3[k];
            }
            int32_t *o = dots + i * p + r;
            o[0] = a0;
            o[1] = a1;
            o[2] = a2;
            o[3] = a3;
        }
    }
    return r;
}
#endif

/* The lane sums of four int32 vectors: out[j] = sum of v[j]'s 16 lanes (exact: the
 * sums fit, see below). Halves added, then two rounds of pairwise adds, for all four
 * at once. */
__attribute__((target("avx512f,avx512bw,avx512vnni")))
static inline void engram_hsum16x4(const __m512i *v, int32_t *out) {
    __m256i h[4];
    for (int j = 0; j < 4; j++) h[j] = _mm256_add_epi32(_mm512_castsi512_si256(v[j]), _mm512_extracti64x4_epi64(v[j], 1));
    /* hadd(a, b) = [a0+a1, a2+a3, b0+b1, b2+b3 | a4+a5, a6+a7, b4+b5, b6+b7] */
    const __m256i ab = _mm256_hadd_epi32(h[0], h[1]);
    const __m256i cd = _mm256_hadd_epi32(h[2], h[3]);
    const __m256i abcd = _mm256_hadd_epi32(ab, cd); /* per 128-bit half: partial sums of a, b, c, d */
    const __m128i sums = _mm_add_epi32(_mm256_castsi256_si128(abcd), _mm256_extracti128_si256(abcd, 1));
    _mm_storeu_si128((__m128i *)out, sums);
}

/* AVX-512 VNNI: vpdpbusd multiplies unsigned by signed bytes, 64 per instruction,
 * into int32 lanes. Rows are biased to unsigned (c + 128) and the bias is taken
 * back exactly: dot(c, p) = dot(c + 128, p) - 128 * sum(p). Lanes cannot overflow
 * (each adds at most 4 * 255 * 128 per step, d / 64 steps). Four planes per pass
 * over four rows (the rest of a block one row at a time), as the AVX2 kernel. The
 * remainder d % 64 is done in scalar code. */
__attribute__((target("avx512f,avx512bw,avx512vnni")))
static int64_t engram_lsh_dots_vnni(const int8_t *codes, int64_t b, int64_t d, const int8_t *planes, int64_t p,
                                    int32_t *dots, uint8_t *biased) {
    const int64_t full = d - d % 64;
    for (int64_t i = 0; i < b * d; i++) biased[i] = (uint8_t)((int32_t)codes[i] + 128);
    const int64_t quads_end = p - p % 4;
    /* Rows in blocks of 32 (24 KB biased, in L1/L2) against all the planes. */
    for (int64_t block = 0; block < b; block += 32) {
    const int64_t block_end = block + 32 < b ? block + 32 : b;
    for (int64_t r = 0; r < quads_end; r += 4) {
        const int8_t *p0 = planes + r * d, *p1 = p0 + d, *p2 = p1 + d, *p3 = p2 + d;
        /* sum(p) over the vector part as dot(1, p), four planes at a time. */
        const __m512i ones = _mm512_set1_epi8(1);
        __m512i b0 = _mm512_setzero_si512(), b1 = b0, b2 = b0, b3 = b0;
        for (int64_t k = 0; k < full; k += 64) {
            b0 = _mm512_dpbusd_epi32(b0, ones, _mm512_loadu_si512((const void *)(p0 + k)));
            b1 = _mm512_dpbusd_epi32(b1, ones, _mm512_loadu_si512((const void *)(p1 + k)));
            b2 = _mm512_dpbusd_epi32(b2, ones, _mm512_loadu_si512((const void *)(p2 + k)));
            b3 = _mm512_dpbusd_epi32(b3, ones, _mm512_loadu_si512((const void *)(p3 + k)));
        }
        const int32_t bias[4] = {_mm512_reduce_add_epi32(b0), _mm512_reduce_add_epi32(b1),
                                 _mm512_reduce_add_epi32(b2), _mm512_reduce_add_epi32(b3)};
        int64_t i = block;
        /* Four rows at a time against the four planes: 16 accumulators, each load used
         * four times, and the 16 sums reduced together (engram_hsum16x4). */
        for (; i + 4 <= block_end; i += 4) {
            const uint8_t *x0p = biased + i * d, *x1p = x0p + d, *x2p = x1p + d, *x3p = x2p + d;
            __m512i acc[16];
            for (int a = 0; a < 16; a++) acc[a] = _mm512_setzero_si512();
            for (int64_t k = 0; k < full; k += 64) {
                const __m512i q0 = _mm512_loadu_si512((const void *)(p0 + k));
                const __m512i q1 = _mm512_loadu_si512((const void *)(p1 + k));
                const __m512i q2 = _mm512_loadu_si512((const void *)(p2 + k));
                const __m512i q3 = _mm512_loadu_si512((const void *)(p3 + k));
                __m512i x = _mm512_loadu_si512((const void *)(x0p + k));
                acc[0] = _mm512_dpbusd_epi32(acc[0], x, q0);
                acc[1] = _mm512_dpbusd_epi32(acc[1], x, q1);
                acc[2] = _mm512_dpbusd_epi32(acc[2], x, q2);
                acc[3] = _mm512_dpbusd_epi32(acc[3], x, q3);
                x = _mm512_loadu_si512((const void *)(x1p + k));
                acc[4] = _mm512_dpbusd_epi32(acc[4], x, q0);
                acc[5] = _mm512_dpbusd_epi32(acc[5], x, q1);
                acc[6] = _mm512_dpbusd_epi32(acc[6], x, q2);
                acc[7] = _mm512_dpbusd_epi32(acc[7], x, q3);
                x = _mm512_loadu_si512((const void *)(x2p + k));
                acc[8] = _mm512_dpbusd_epi32(acc[8], x, q0);
                acc[9] = _mm512_dpbusd_epi32(acc[9], x, q1);
                acc[10] = _mm512_dpbusd_epi32(acc[10], x, q2);
                acc[11] = _mm512_dpbusd_epi32(acc[11], x, q3);
                x = _mm512_loadu_si512((const void *)(x3p + k));
                acc[12] = _mm512_dpbusd_epi32(acc[12], x, q0);
                acc[13] = _mm512_dpbusd_epi32(acc[13], x, q1);
                acc[14] = _mm512_dpbusd_epi32(acc[14], x, q2);
                acc[15] = _mm512_dpbusd_epi32(acc[15], x, q3);
            }
            for (int row = 0; row < 4; row++) {
                int32_t a[4];
                engram_hsum16x4(acc + 4 * row, a);
                const int8_t *crow = codes + (i + row) * d;
                for (int j = 0; j < 4; j++) a[j] -= 128 * bias[j]; /* only the vector part was biased */
                for (int64_t k = full; k < d; k++) {
                    a[0] += (int32_t)crow[k] * (int32_t)p0[k];
                    a[1] += (int32_t)crow[k] * (int32_t)p1[k];
                    a[2] += (int32_t)crow[k] * (int32_t)p2[k];
                    a[3] += (int32_t)crow[k] * (int32_t)p3[k];
                }
                int32_t *o = dots + (i + row) * p + r;
                o[0] = a[0];
                o[1] = a[1];
                o[2] = a[2];
                o[3] = a[3];
            }
        }
        for (; i < block_end; i++) {
            const uint8_t *row = biased + i * d;
            const int8_t *crow = codes + i * d;
            __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
            for (int64_t k = 0; k < full; k += 64) {
                __m512i x = _mm512_loadu_si512((const void *)(row + k));
                s0 = _mm512_dpbusd_epi32(s0, x, _mm512_loadu_si512((const void *)(p0 + k)));
                s1 = _mm512_dpbusd_epi32(s1, x, _mm512_loadu_si512((const void *)(p1 + k)));
                s2 = _mm512_dpbusd_epi32(s2, x, _mm512_loadu_si512((const void *)(p2 + k)));
                s3 = _mm512_dpbusd_epi32(s3, x, _mm512_loadu_si512((const void *)(p3 + k)));
            }
            int32_t a0 = _mm512_reduce_add_epi32(s0), a1 = _mm512_reduce_add_epi32(s1);
            int32_t a2 = _mm512_reduce_add_epi32(s2), a3 = _mm512_reduce_add_epi32(s3);
            /* Only the vector part was biased. */
            a0 -= 128 * bias[0];
            a1 -= 128 * bias[1];
            a2 -= 128 * bias[2];
            a3 -= 128 * bias[3];
            for (int64_t k = full; k < d; k++) {
                a0 += (int32_t)crow[k] * (int32_t)p0[k];
                a1 += (int32_t)crow[k] * (int32_t)p1[k];
                a2 += (int32_t)crow[k] * (int32_t)p2[k];
                a3 += (int32_t)crow[k] * (int32_t)p3[k];
            }
            int32_t *o = dots + i * p + r;
            o[0] = a0;
            o[1] = a1;
            o[2] = a2;
            o[3] = a3;
        }
    }
    }
    return quads_end;
}

/* rows: scratch of b * d int16; dots: scratch of b * tables * bits int32. */
static void engram_lsh_keys(const int8_t *codes, int64_t b, int64_t d, const int8_t *planes, int64_t tables,
                            int64_t bits, int64_t *out, int16_t *rows, int32_t *dots) {
    const int64_t p = tables * bits;
    int64_t done = 0;
    int vnni = 0;
#ifdef ENGRAM_LSH_AVX2
    vnni = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw");
    if (vnni) /* the int16 scratch holds the b * d biased bytes first */
        done = engram_lsh_dots_vnni(codes, b, d, planes, p, dots, (uint8_t *)rows);
#endif
    if (done < p) {
        for (int64_t i = 0; i < b * d; i++) rows[i] = codes[i];
#ifdef ENGRAM_LSH_AVX2
        if (!vnni && __builtin_cpu_supports("avx2")) done = engram_lsh_dots_avx2(rows, b, d, planes, p, dots);
#endif
        engram_lsh_dots_scalar(rows, b, d, planes, done, p, p, dots);
    }
    for (int64_t i = 0; i < b; i++) {
        for (int64_t t = 0; t < tables; t++) {
            int64_t key = 0;
            const int32_t *row_dots = dots + i * p + t * bits;
            for (int64_t j = 0; j < bits; j++)
                if (row_dots[j] > 0) key |= (int64_t)1 << j;
            out[i * tables + t] = key + (t << bits);
        }
    }
}

/* One pair's cosine: the operations of engram_scores_block's single-query path. */
static inline float engram_pair_score_one(const float *row, const float *q0, int64_t d, float inv_row, float inv_q) {
    const int64_t full = d - d % 16;
    engram_v16f a0 = {0};
    for (int64_t c = 0; c < full; c += 16) a0 += engram_load16(row + c) * engram_load16(q0 + c);
    return engram_finish(a0, row, q0, full, d) * inv_row * inv_q;
}

/* Cosines of pairs: out[k] = dot(M[rows[k]], Q[qidx[k]]) * inv_norms[rows[k]] * q_inv[qidx[k]].
 *
 * The same operations in the same order as engram_scores_block (16 lanes, no
 * FMA, the fixed reduction tree, then the two multiplications left to right), so
 * each score has the bits cosine_scores gives that row and query. A batch of new
 * rows is checked against each one's own LSH candidates in one call, without
 * copying the candidate rows out of the matrix.
 */
__attribute__((target_clones("avx512f", "avx2", "default")))
static void engram_pair_scores(const float *M, const float *inv_norms, const int64_t *rows, const float *Q,
                               const float *q_inv, const int64_t *qidx, int64_t count, int64_t d, float *out) {
    for (int64_t k = 0; k < count; k++)
        out[k] = engram_pair_score_one(M + rows[k] * d, Q + qidx[k] * d, d, inv_norms[rows[k]], q_inv[qidx[k]]);
}

/* int8 codes of rows, as _ref.quantize_rows: scale = float32(max|x| / 127.0) computed
 * in double, codes = clip(rint(x / scale), -127, 127) in double (scale 1 for a zero
 * row). Every step is one correctly rounded IEEE operation, so the bits are the
 * twin's. Returns -1 for a non-finite value (nothing else is defined for it). */
/* Clones for AVX-512 and AVX2 let the compiler inline nearbyint as one rounding
 * instruction (round half to even, as the library call): the same bits, without a
 * call per value. */
__attribute__((target_clones("avx512f", "avx2", "default")))
static int engram_quantize_rows(const float *M, int64_t n, int64_t d, int8_t *codes, float *scales) {
    for (int64_t i = 0; i < n; i++) {
        const float *row = M + i * d;
        float amax = 0.0f;
        for (int64_t k = 0; k < d; k++) {
            float a = fabsf(row[k]);
            if (!(a <= 3.4028234663852886e38f)) return -1; /* NaN or infinity */
            if (a > amax) amax = a;
        }
        float scale = (float)((double)amax / 127.0);
        scales[i] = scale;
        double safe = scale > 0.0f ? (double)scale : 1.0;
        int8_t *out = codes + i * d;
        for (int64_t k = 0; k < d; k++) {
            double v = nearbyint((double)row[k] / safe);
            if (v > 127.0) v = 127.0;
            if (v < -127.0) v = -127.0;
            out[k] = (int8_t)v;
        }
    }
    return 0;
}

static int engram_cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Raw candidate count of query i (with repeats): base ranges plus held delta slots of
 * its keys; -1 for a key outside [0, key_count), -2 for base offsets that do not rise
 * within [0, base_len] (nothing is read out of bounds). */
static int64_t engram_raw_candidates(const int64_t *keys, int64_t tables, const int64_t *base_start, int64_t base_len,
                                     const int64_t *slot_count, int64_t slots, int64_t key_count) {
    int64_t total = 0;
    for (int64_t t = 0; t < tables; t++) {
        int64_t key = keys[t];
        if (key < 0 || key >= key_count) return -1;
        if (base_start) {
            int64_t lo = base_start[key], hi = base_start[key + 1];
            if (lo < 0 || hi < lo || hi > base_len) return -2;
            total += hi - lo;
        }
        if (slot_count) total += slot_count[key] < slots ? (slot_count[key] > 0 ? slot_count[key] : 0) : slots;
    }
    return total;
}

/* Coordinates of the first, cheap bound of a dedup candidate (a multiple of 64). */
#define ENGRAM_DEDUP_HEAD 256

#ifdef ENGRAM_LSH_AVX2
/* The int8 bound's two integers for one candidate: dot(cx, cq) and sum |cx|, exact.
 * vpdpbusd multiplies unsigned by signed bytes, so cx is flipped to cx + 128 (an XOR
 * of the sign bit) and 128 * sum(cq) taken off; cq_sum_full is sum(cq) over the first
 * d - d % 64 values. The sum of |cx| is vpsadbw of the absolute bytes. */
__attribute__((target("avx512f,avx512bw,avx512vnni")))
static void engram_code_dot_l1_vnni(const int8_t *cx, const int8_t *cq, int64_t d, int32_t cq_sum_full,
                                    int32_t *dot_out, int32_t *l1_out) {
    const int64_t full = d - d % 64;
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    const __m512i zero = _mm512_setzero_si512();
    __m512i acc = zero, sad = zero;
    for (int64_t k = 0; k < full; k += 64) {
        const __m512i x = _mm512_loadu_si512((const void *)(cx + k));
        const __m512i q = _mm512_loadu_si512((const void *)(cq + k));
        acc = _mm512_dpbusd_epi32(acc, _mm512_xor_si512(x, flip), q);
        sad = _mm512_add_epi64(sad, _mm512_sad_epu8(_mm512_abs_epi8(x), zero));
    }
    int32_t dot = _mm512_reduce_add_epi32(acc) - 128 * cq_sum_full;
    int32_t l1 = (int32_t)_mm512_reduce_add_epi64(sad);
    for (int64_t k = full; k < d; k++) {
        dot += (int32_t)cx[k] * (int32_t)cq[k];
        l1 += cx[k] < 0 ? -(int32_t)cx[k] : (int32_t)cx[k];
    }
    *dot_out = dot;
    *l1_out = l1;
}

#endif

/* Exact int32 dot product and L1 norm of cx over the first len codes: VNNI when the
 * caller has it (cq_sum: sum of cq over the first len - len % 64), else a plain loop. */
static inline void engram_code_dot_l1(const int8_t *cx, const int8_t *cq, int64_t len, int32_t cq_sum, int vnni,
                                      int32_t *dot_out, int32_t *l1_out) {
#ifdef ENGRAM_LSH_AVX2
    if (vnni) {
        engram_code_dot_l1_vnni(cx, cq, len, cq_sum, dot_out, l1_out);
        return;
    }
#endif
    (void)cq_sum;
    (void)vnni;
    int32_t dot = 0, l1 = 0;
    for (int64_t c = 0; c < len; c++) {
        dot += (int32_t)cx[c] * (int32_t)cq[c];
        l1 += cx[c] < 0 ? -(int32_t)cx[c] : (int32_t)cx[c];
    }
    *dot_out = dot;
    *l1_out = l1;
}

/* Dedup matches of a batch: for each eligible query i, the distinct rows sharing a
 * key with it (in the base's CSR ranges or the delta's held slots) that are alive
 * and not episodic, scored as engram_pair_score_one, kept when score >= threshold.
 * With int8 codes (codes != NULL) a row whose bound from the codes cannot reach the
 * threshold is not scored: the output is the same, fewer bytes are read.
 * Written in (query, row) order; returns how many, or -1 for a candidate row
 * outside [0, n) (nothing is read out of bounds). scratch holds the largest raw
 * candidate count of one query; the outputs hold the raw total. */
__attribute__((target_clones("avx512f", "avx2", "default")))
static int64_t engram_dedup_matches(const int64_t *keys, int64_t b, int64_t tables, const uint8_t *eligible,
                                    const int64_t *base_start, const int64_t *base_rows,
                                    const int64_t *slot_rows, const int64_t *slot_count, int64_t slots,
                                    const uint8_t *alive, const uint8_t *episodic, const float *M,
                                    const float *inv_norms, const float *Q, const float *q_inv, int64_t d,
                                    int64_t n, float threshold, const int8_t *codes, const float *scales,
                                    const int8_t *q_codes, const float *q_scales, int64_t *scratch,
                                    int64_t *out_query, int64_t *out_row, float *out_score) {
    int64_t written = 0;
    /* The float32 score of a pair is within (d / 16 + 10) * 2**-24 of its real cosine;
     * a row is skipped on its int8 bound only when even that cannot reach the threshold. */
    const double margin = 4.0 * (double)d / 16777216.0 + 1e-6;
    /* Rows are first checked on their first ENGRAM_DEDUP_HEAD coordinates (see below). */
    const int64_t head = d >= 2 * ENGRAM_DEDUP_HEAD ? ENGRAM_DEDUP_HEAD : 0;
    int vnni = 0;
#ifdef ENGRAM_LSH_AVX2
    vnni = codes != NULL && __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw");
#endif
    for (int64_t i = 0; i < b; i++) {
        if (!eligible[i]) continue;
        const int64_t *qk = keys + i * tables;
        int64_t m = 0;
        /* The keys' index entries are scattered over megabytes: ask for all of them first. */
        for (int64_t t = 0; t < tables; t++) {
            if (base_start) __builtin_prefetch(base_start + qk[t], 0, 0);
            if (slot_count) {
                __builtin_prefetch(slot_count + qk[t], 0, 0);
                __builtin_prefetch(slot_rows + qk[t] * slots, 0, 0);
            }
        }
        for (int64_t t = 0; t < tables; t++) {
            int64_t key = qk[t];
            if (base_start)
                for (int64_t p = base_start[key]; p < base_start[key + 1]; p++) scratch[m++] = base_rows[p];
            if (slot_count) {
                int64_t held = slot_count[key] < slots ? (slot_count[key] > 0 ? slot_count[key] : 0) : slots;
                for (int64_t s = 0; s < held; s++) scratch[m++] = slot_rows[key * slots + s];
            }
        }
        if (m > 1) qsort(scratch, (size_t)m, sizeof(int64_t), engram_cmp_i64);
        const float *q = Q + i * d;
        double q_l1 = 0.0, q_l1_head = 0.0, q_tail_sq = 0.0;
        int32_t cq_sum_full = 0, cq_sum_head = 0;
        if (codes) {
            /* Sums in eight lanes, so that they vectorise (a chain of 768 dependent adds
             * took longer than checking the candidates). Any order gives these sums to
             * a few ulps, far inside the margin, and they only decide what is skipped. */
            double l1_lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0}, head_lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            double sq_lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            int64_t c = 0;
            for (; c + 8 <= head; c += 8)
                for (int l = 0; l < 8; l++) head_lanes[l] += fabs((double)q[c + l]);
            for (; c + 8 <= d; c += 8)
                for (int l = 0; l < 8; l++) {
                    const double v = (double)q[c + l];
                    l1_lanes[l] += fabs(v);
                    sq_lanes[l] += v * v;
                }
            for (; c < d; c++) {
                l1_lanes[0] += fabs((double)q[c]);
                sq_lanes[0] += (double)q[c] * (double)q[c];
            }
            for (int l = 0; l < 8; l++) {
                q_l1_head += head_lanes[l];
                q_tail_sq += sq_lanes[l];
                q_l1 += l1_lanes[l] + head_lanes[l];
            }
            const int8_t *qc = q_codes + i * d;
            for (int64_t k = 0; k < d - d % 64; k++) cq_sum_full += qc[k];
            for (int64_t k = 0; k < head; k++) cq_sum_head += qc[k];
        }
        /* The tail's largest share of a cosine: x_tail.q_tail <= |x| |q_tail| (Cauchy-
         * Schwarz), and |x| inv_norm[row] is 1 within float32 rounding (1e-6 covers it). */
        const double tail_term = sqrt(q_tail_sq) * (double)q_inv[i] * (1.0 + 1e-6);
        const int64_t ahead_bytes = head > 0 ? head : d;
        for (int64_t k = 0; k < m; k++) {
            int64_t row = scratch[k];
            if (k > 0 && row == scratch[k - 1]) continue;
            if (row < 0 || row >= n) return -1;
            /* Candidates are scattered over the matrix: ask for a later one's codes now
             * (the head only when there is a head check: most rows stop there). */
            if (codes && k + 4 < m && scratch[k + 4] >= 0 && scratch[k + 4] < n) {
                const char *ahead = (const char *)(codes + scratch[k + 4] * d);
                for (int64_t line = 0; line < ahead_bytes; line += 64) __builtin_prefetch(ahead + line, 0, 0);
            }
            if (!alive[row] || episodic[row]) continue;
            if (codes && head > 0) {
                /* The int8 bound below over the first head coordinates only, plus the
                 * tail's Cauchy-Schwarz share: a rigorous bound from 256 bytes. A random
                 * row (tail share about 0.82 at 768) stops here. */
                const int8_t *cx = codes + row * d;
                const int8_t *cq = q_codes + i * d;
                int32_t dot, l1;
                engram_code_dot_l1(cx, cq, head, cq_sum_head, vnni, &dot, &l1);
                double sx = scales[row], sq = q_scales[i];
                double upper = sx * sq * (double)dot + 0.5 * sx * q_l1_head + 0.5 * sx * sq * (double)l1;
                if (upper * (double)inv_norms[row] * (double)q_inv[i] + tail_term < (double)threshold - margin) continue;
            }
            if (codes) {
                /* x = sx cx + ex, q = sq cq + eq with |ex| <= sx / 2, |eq| <= sq / 2 per
                 * coordinate, so x.q <= sx sq cx.cq + sx / 2 |q|_1 + sx sq / 2 |cx|_1:
                 * exact integers and a rigorous upper bound of the cosine from 768 bytes
                 * of the row instead of 3 KB. */
                const int8_t *cx = codes + row * d;
                const int8_t *cq = q_codes + i * d;
                int32_t dot, l1;
                engram_code_dot_l1(cx, cq, d, cq_sum_full, vnni, &dot, &l1);
                double sx = scales[row], sq = q_scales[i];
                double upper = sx * sq * (double)dot + 0.5 * sx * q_l1 + 0.5 * sx * sq * (double)l1;
                if (upper * (double)inv_norms[row] * (double)q_inv[i] < (double)threshold - margin) continue;
            }
            float score = engram_pair_score_one(M + row * d, q, d, inv_norms[row], q_inv[i]);
            if (score >= threshold) {
                out_query[written] = i;
                out_row[written] = row;
                out_score[written] = score;
                written++;
            }
        }
    }
    return written;
}

#endif
