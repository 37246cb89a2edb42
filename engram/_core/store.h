/* Kernels of the store path: inverse row norms in a fixed order, and everything a
 * batch of new rows needs before planning (norms, int8 codes, LSH keys) in one call.
 *
 * Inverse norms: the squares are taken in double (a float32 times itself is exact
 * in double) and summed in ENGRAM_NORM_LANES lanes, element k into lane k % lanes,
 * each lane in index order, then the lanes are added pairwise (lane i + lane
 * i + width/2, width halving), which is the twin's order (_ref.row_inv_norms).
 * No fused multiply-add (setup.py passes -ffp-contract=off), so the bits do not
 * depend on the compiler or the SIMD width.
 */
#ifndef ENGRAM_STORE_H
#define ENGRAM_STORE_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "dedup.h"

#define ENGRAM_NORM_LANES 8

static float engram_inv_norm_one(const float *row, int64_t d) {
    double acc[ENGRAM_NORM_LANES] = {0, 0, 0, 0, 0, 0, 0, 0};
    const int64_t full = d - d % ENGRAM_NORM_LANES;
    for (int64_t k = 0; k < full; k += ENGRAM_NORM_LANES) {
        for (int l = 0; l < ENGRAM_NORM_LANES; l++) {
            double x = (double)row[k + l];
            acc[l] += x * x;
        }
    }
    for (int64_t k = full; k < d; k++) {
        double x = (double)row[k];
        acc[k - full] += x * x;
    }
    for (int width = ENGRAM_NORM_LANES / 2; width >= 1; width /= 2) {
        for (int l = 0; l < width; l++) acc[l] += acc[l + width];
    }
    double norm = sqrt(acc[0]);
    return norm > 0.0 ? (float)(1.0 / norm) : 0.0f;
}

static void engram_inv_norms(const float *M, int64_t n, int64_t d, float *out) {
    for (int64_t i = 0; i < n; i++) out[i] = engram_inv_norm_one(M + i * d, d);
}

/* Norms, codes, scales and keys of b new rows; -1 for a non-finite value, -2 when
 * scratch memory is not available. */
static int engram_prepare_rows(const float *M, int64_t b, int64_t d, const int8_t *planes, int64_t tables,
                               int64_t bits, float *inv_norms, int8_t *codes, float *scales, int64_t *keys) {
    if (engram_quantize_rows(M, b, d, codes, scales) < 0) return -1;
    engram_inv_norms(M, b, d, inv_norms);
    int16_t *rows = (int16_t *)malloc(sizeof(int16_t) * (size_t)(b * d));
    int32_t *dots = (int32_t *)malloc(sizeof(int32_t) * (size_t)(b * tables * bits));
    if (rows == NULL || dots == NULL) {
        free(rows);
        free(dots);
        return -2;
    }
    engram_lsh_keys(codes, b, d, planes, tables, bits, keys, rows, dots);
    free(rows);
    free(dots);
    return 0;
}

#endif
