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

#endif
