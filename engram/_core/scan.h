/* Cosine score kernel: dot products in 16 float32 lanes, in a fixed order.
 *
 * Every lane is a separate multiply then add (built with -ffp-contract=off, so no
 * fused multiply-add), accumulated over the row in order and reduced by a fixed
 * tree. The result is therefore the same bits on every SIMD width target_clones
 * picks (AVX-512, AVX2, SSE2) and equals the NumPy twin in _ref.py. Four queries
 * are scored per row at once: four independent chains keep the adders busy when
 * a batch of queries makes the scan compute-bound rather than memory-bound.
 */
#ifndef ENGRAM_SCAN_H
#define ENGRAM_SCAN_H

#include <stdint.h>
#include <string.h>

typedef float engram_v16f __attribute__((vector_size(64)));

static inline engram_v16f engram_load16(const float *p) {
    engram_v16f v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static inline float engram_finish(engram_v16f acc, const float *row, const float *q, int64_t full, int64_t d) {
    float a[16];
    memcpy(a, &acc, sizeof(a));
    for (int64_t l = 0; l < d - full; l++) a[l] += row[full + l] * q[full + l];
    float b[8], c[4];
    for (int l = 0; l < 8; l++) b[l] = a[l] + a[l + 8];
    for (int l = 0; l < 4; l++) c[l] = b[l] + b[l + 4];
    float e0 = c[0] + c[2];
    float e1 = c[1] + c[3];
    return e0 + e1;
}

/* out[j * n_total + i] = dot(M[i], Q[j]) * inv_norms[i] * q_inv[j] for i in [start, stop). */
__attribute__((target_clones("avx512f", "avx2", "default")))
static void engram_scores_block(const float *M, const float *inv_norms, int64_t start, int64_t stop,
                                int64_t n_total, int64_t d, const float *Q, const float *q_inv, int64_t b,
                                float *out) {
    const int64_t full = d - d % 16;
    for (int64_t i = start; i < stop; i++) {
        const float *row = M + i * d;
        const float inv = inv_norms[i];
        int64_t j = 0;
        for (; j + 4 <= b; j += 4) {
            const float *q0 = Q + (j + 0) * d, *q1 = Q + (j + 1) * d;
            const float *q2 = Q + (j + 2) * d, *q3 = Q + (j + 3) * d;
            engram_v16f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
            for (int64_t c = 0; c < full; c += 16) {
                engram_v16f r = engram_load16(row + c);
                a0 += r * engram_load16(q0 + c);
                a1 += r * engram_load16(q1 + c);
                a2 += r * engram_load16(q2 + c);
                a3 += r * engram_load16(q3 + c);
            }
            out[(j + 0) * n_total + i] = engram_finish(a0, row, q0, full, d) * inv * q_inv[j + 0];
            out[(j + 1) * n_total + i] = engram_finish(a1, row, q1, full, d) * inv * q_inv[j + 1];
            out[(j + 2) * n_total + i] = engram_finish(a2, row, q2, full, d) * inv * q_inv[j + 2];
            out[(j + 3) * n_total + i] = engram_finish(a3, row, q3, full, d) * inv * q_inv[j + 3];
        }
        for (; j < b; j++) {
            const float *q0 = Q + j * d;
            engram_v16f a0 = {0};
            for (int64_t c = 0; c < full; c += 16) a0 += engram_load16(row + c) * engram_load16(q0 + c);
            out[j * n_total + i] = engram_finish(a0, row, q0, full, d) * inv * q_inv[j];
        }
    }
}


/* Approximate scores from int8 codes: out[j * n_total + i] = dot(codes[i], Q[j]) * scales[i].
 *
 * Used only to choose candidates for an exact re-rank, with an error bound that
 * covers quantisation and this function's own rounding, so its summation order
 * and fused multiply-adds are free (nothing here must match the twin bit for
 * bit). A row is 4x fewer bytes than its float32 form, which is what a
 * memory-bound scan pays for. The int8 -> float conversion is written with
 * intrinsics: GCC lowers generic vector conversions of int8 to scalar code.
 */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* A tile of up to 4 rows x 4 queries per pass over the columns: each 16-column chunk
 * of a row is converted once and each chunk of a query loaded once for 16 products,
 * so loads and conversions stay under the multiply-adds. */
__attribute__((target("avx512f")))
static void engram_approx_avx512(const int8_t *codes, const float *scales, int64_t start, int64_t stop,
                                 int64_t n_total, int64_t d, const float *Q, int64_t b, float *out) {
    const int64_t full = d - d % 16;
    for (int64_t i = start; i < stop; i += 4) {
        const int64_t rows = stop - i < 4 ? stop - i : 4;
        for (int64_t j = 0; j < b; j += 4) {
            const int64_t m = b - j < 4 ? b - j : 4;
            __m512 acc[4][4];
            for (int64_t r = 0; r < 4; r++)
                for (int64_t t = 0; t < 4; t++) acc[r][t] = _mm512_setzero_ps();
            if (rows == 4 && m == 4) {
                for (int64_t c = 0; c < full; c += 16) {
                    __m512 x[4], q[4];
                    for (int64_t r = 0; r < 4; r++)
                        x[r] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(codes + (i + r) * d + c))));
                    for (int64_t t = 0; t < 4; t++) q[t] = _mm512_loadu_ps(Q + (j + t) * d + c);
                    for (int64_t r = 0; r < 4; r++)
                        for (int64_t t = 0; t < 4; t++) acc[r][t] = _mm512_fmadd_ps(x[r], q[t], acc[r][t]);
                }
            } else {
                for (int64_t c = 0; c < full; c += 16) {
                    for (int64_t r = 0; r < rows; r++) {
                        __m512 x = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(codes + (i + r) * d + c))));
                        for (int64_t t = 0; t < m; t++)
                            acc[r][t] = _mm512_fmadd_ps(x, _mm512_loadu_ps(Q + (j + t) * d + c), acc[r][t]);
                    }
                }
            }
            for (int64_t r = 0; r < rows; r++) {
                const int8_t *row = codes + (i + r) * d;
                for (int64_t t = 0; t < m; t++) {
                    float sum = _mm512_reduce_add_ps(acc[r][t]);
                    for (int64_t c = full; c < d; c++) sum += row[c] * Q[(j + t) * d + c];
                    out[(j + t) * n_total + i + r] = sum * scales[i + r];
                }
            }
        }
    }
}

/* One row x M queries, M a compile-time constant at every call (the function is
 * always inlined), so the accumulators stay in registers for every M. With bounds
 * known only at run time the compiler kept them on the stack. */
__attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline))
static inline void engram_vnni_tile(const int8_t *codes, const float *scales, int64_t i, int64_t j,
                                    int64_t n_total, int64_t d, int64_t full, const int8_t *QC,
                                    const float *q_scales, const int32_t *q_sums, float *out, const int M) {
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    const int8_t *row = codes + i * d;
    __m512i acc[4];
    for (int t = 0; t < M; t++) acc[t] = _mm512_setzero_si512();
    for (int64_t c = 0; c < full; c += 64) {
        const __m512i x = _mm512_xor_si512(_mm512_loadu_si512((const void *)(row + c)), flip);
        for (int t = 0; t < M; t++)
            acc[t] = _mm512_dpbusd_epi32(acc[t], x, _mm512_loadu_si512((const void *)(QC + (j + t) * d + c)));
    }
    for (int t = 0; t < M; t++) {
        const int8_t *qc = QC + (j + t) * d;
        int32_t sum = _mm512_reduce_add_epi32(acc[t]) - 128 * q_sums[j + t];
        for (int64_t c = full; c < d; c++) sum += (int32_t)row[c] * (int32_t)qc[c];
        out[(j + t) * n_total + i] = (float)sum * scales[i] * q_scales[j + t];
    }
}

/* One query against rows [start, stop), one row at a time: the rows are read as one
 * sequential stream (four rows interleaved ran at a third of the bandwidth here when
 * only one query used them), with four accumulators over alternating chunks so the
 * multiply-adds do not wait on each other. Integer sums: the same bits as a tile. */
__attribute__((target("avx512f,avx512bw,avx512vnni")))
static void engram_vnni_query_rows(const int8_t *codes, const float *scales, int64_t start, int64_t stop,
                                   int64_t n_total, int64_t d, int64_t full, const int8_t *qc,
                                   float q_scale, int32_t q_sum, float *out_row) {
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    for (int64_t i = start; i < stop; i++) {
        const int8_t *row = codes + i * d;
        __m512i acc[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
        int64_t c = 0;
        for (; c + 256 <= full; c += 256)
            for (int u = 0; u < 4; u++)
                acc[u] = _mm512_dpbusd_epi32(acc[u], _mm512_xor_si512(_mm512_loadu_si512((const void *)(row + c + 64 * u)), flip),
                                             _mm512_loadu_si512((const void *)(qc + c + 64 * u)));
        for (; c < full; c += 64)
            acc[0] = _mm512_dpbusd_epi32(acc[0], _mm512_xor_si512(_mm512_loadu_si512((const void *)(row + c)), flip),
                                         _mm512_loadu_si512((const void *)(qc + c)));
        __m512i total = _mm512_add_epi32(_mm512_add_epi32(acc[0], acc[1]), _mm512_add_epi32(acc[2], acc[3]));
        int32_t sum = _mm512_reduce_add_epi32(total) - 128 * q_sum;
        for (int64_t k = full; k < d; k++) sum += (int32_t)row[k] * (int32_t)qc[k];
        out_row[i] = (float)sum * scales[i] * q_scale;
    }
}

/* With AVX-512 VNNI the queries are quantised too (codes q and scale sq per query,
 * as the rows): one vpdpbusd does 64 int8 multiply-adds into int32, exactly. It
 * multiplies unsigned by signed bytes, so each row chunk is offset by 128 (xor 0x80)
 * and 128 x (sum of the query's codes over those columns) is taken back out. Sums stay
 * below 2**24 (768 x 255 x 127), so the conversion to float is exact; the query's
 * quantisation error is covered by approx_bound_terms. Integer sums do not depend on
 * the tile shape, so every shape gives the same bits. */
__attribute__((target("avx512f,avx512bw,avx512vnni")))
static void engram_approx_vnni(const int8_t *codes, const float *scales, int64_t start, int64_t stop,
                               int64_t n_total, int64_t d, const int8_t *QC, const float *q_scales,
                               const int32_t *q_sums, int64_t b, float *out) {
    const int64_t full = d - d % 64;
#define ENGRAM_VNNI_TILE(M) engram_vnni_tile(codes, scales, i, j, n_total, d, full, QC, q_scales, q_sums, out, M)
    /* Row by row, so the codes are read as one sequential stream: tiles of four rows
     * read four interleaved streams, and ran here at a third of the bandwidth when few
     * queries shared them (100k rows, one thread: a lone query 8.3 -> 4.5 ms, four
     * queries 12.3 -> 5 ms; sixteen stay compute-bound, ~17 ms either way). The
     * queries, 768 bytes each, stay in L1 across rows. */
    const int64_t whole = b - b % 4;
    if (whole > 0 || b % 4 > 1) {
        for (int64_t i = start; i < stop; i++) {
            int64_t j = 0;
            for (; j < whole; j += 4) ENGRAM_VNNI_TILE(4);
            switch (b - j) {
                case 3: ENGRAM_VNNI_TILE(3); break;
                case 2: ENGRAM_VNNI_TILE(2); break;
                default: break;
            }
        }
    }
    if (b % 4 == 1) {  /* the last query alone: four accumulators over a row's chunks */
        const int64_t q = b - 1;
        engram_vnni_query_rows(codes, scales, start, stop, n_total, d, full, QC + q * d, q_scales[q], q_sums[q], out + q * n_total);
    }
#undef ENGRAM_VNNI_TILE
}

__attribute__((target("avx2,fma")))
static void engram_approx_avx2(const int8_t *codes, const float *scales, int64_t start, int64_t stop,
                               int64_t n_total, int64_t d, const float *Q, int64_t b, float *out) {
    const int64_t full = d - d % 8;
    for (int64_t i = start; i < stop; i++) {
        const int8_t *row = codes + i * d;
        for (int64_t j = 0; j < b; j += 4) {
            const int64_t m = b - j < 4 ? b - j : 4;
            __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
            for (int64_t c = 0; c < full; c += 8) {
                __m256 r = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(row + c))));
                for (int64_t t = 0; t < m; t++)
                    acc[t] = _mm256_fmadd_ps(r, _mm256_loadu_ps(Q + (j + t) * d + c), acc[t]);
            }
            for (int64_t t = 0; t < m; t++) {
                float lanes[8];
                _mm256_storeu_ps(lanes, acc[t]);
                float sum = 0.0f;
                for (int l = 0; l < 8; l++) sum += lanes[l];
                for (int64_t c = full; c < d; c++) sum += row[c] * Q[(j + t) * d + c];
                out[(j + t) * n_total + i] = sum * scales[i];
            }
        }
    }
}
#endif

static void engram_approx_scalar(const int8_t *codes, const float *scales, int64_t start, int64_t stop,
                                 int64_t n_total, int64_t d, const float *Q, int64_t b, float *out) {
    for (int64_t i = start; i < stop; i++) {
        const int8_t *row = codes + i * d;
        for (int64_t j = 0; j < b; j++) {
            const float *q = Q + j * d;
            float sum = 0.0f;
            for (int64_t c = 0; c < d; c++) sum += row[c] * q[c];
            out[j * n_total + i] = sum * scales[i];
        }
    }
}

/* level: 3 VNNI (needs the quantised queries), 2 AVX-512F, 1 AVX2+FMA, 0 scalar. */
static int engram_approx_level(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    static int level = -1;
    if (level < 0) {
        __builtin_cpu_init();
        level = (__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw")) ? 3
              : __builtin_cpu_supports("avx512f") ? 2
              : (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? 1 : 0;
    }
    return level;
#else
    return 0;
#endif
}

static void engram_approx_block(const int8_t *codes, const float *scales, int64_t start, int64_t stop,
                                int64_t n_total, int64_t d, const float *Q, const int8_t *QC,
                                const float *q_scales, const int32_t *q_sums, int64_t b, float *out) {
#if defined(__x86_64__) && defined(__GNUC__)
    const int level = engram_approx_level();
    if (level == 3 && QC != 0) { engram_approx_vnni(codes, scales, start, stop, n_total, d, QC, q_scales, q_sums, b, out); return; }
    if (level >= 2) { engram_approx_avx512(codes, scales, start, stop, n_total, d, Q, b, out); return; }
    if (level == 1) { engram_approx_avx2(codes, scales, start, stop, n_total, d, Q, b, out); return; }
#endif
    engram_approx_scalar(codes, scales, start, stop, n_total, d, Q, b, out);
}

#endif
