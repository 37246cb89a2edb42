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

/* In-batch dedup pairs of a large batch (a bulk store): the (later, earlier) pairs
 * of rows sharing at least one key value, eligible[later], earlier < later, sorted
 * by (later, earlier), one per pair (_ref.batch_pairs). Rows are taken in order:
 * each eligible row first collects the owners of the entries already chained
 * under its key values (every earlier row, never itself), then chains its own
 * entries. So the work is one hash probe per key plus one step per pair found,
 * where the twin sorts all m * tables keys. A row's owners are deduplicated with
 * a mark per row and sorted, or read off the marks in order when they are many
 * (a batch of identical vectors pairs every row with every earlier one).
 * The hash only places keys; the output does not depend on it.
 * Writes *later_out / *earlier_out (malloc'd, the caller frees them, NULL when
 * there are no pairs); returns the pair count, or -2 when memory is not available. */
static int64_t engram_batch_pairs_hashed(const int64_t *keys, int64_t m, int64_t tables, const uint8_t *eligible,
                                         int64_t **later_out, int64_t **earlier_out) {
    const int64_t total = m * tables;
    int shift = 64;
    int64_t cap = 1;
    while (cap < 2 * total) {
        cap <<= 1;
        shift--;
    }
    int64_t *slot_key = (int64_t *)malloc(sizeof(int64_t) * (size_t)cap);
    int64_t *slot_head = (int64_t *)malloc(sizeof(int64_t) * (size_t)cap);
    int64_t *next = (int64_t *)malloc(sizeof(int64_t) * (size_t)(total > 0 ? total : 1));
    int64_t *found = (int64_t *)malloc(sizeof(int64_t) * (size_t)(m > 0 ? m : 1));
    int64_t *mark = (int64_t *)malloc(sizeof(int64_t) * (size_t)(m > 0 ? m : 1));
    int64_t out_cap = 1024, count = 0;
    int64_t *lo = (int64_t *)malloc(sizeof(int64_t) * (size_t)out_cap);
    int64_t *eo = (int64_t *)malloc(sizeof(int64_t) * (size_t)out_cap);
    *later_out = NULL;
    *earlier_out = NULL;
    if (!slot_key || !slot_head || !next || !found || !mark || !lo || !eo) goto fail;
    for (int64_t s = 0; s < cap; s++) slot_head[s] = -1;
    for (int64_t j = 0; j < m; j++) mark[j] = -1;
    for (int64_t i = 0; i < m; i++) {
        const int64_t *k = keys + i * tables;
        if (eligible[i]) {
            int64_t n_found = 0;
            for (int64_t t = 0; t < tables; t++) {
                uint64_t s = shift < 64 ? ((uint64_t)k[t] * 0x9E3779B97F4A7C15ULL) >> shift : 0;
                while (slot_head[s] >= 0 && slot_key[s] != k[t]) s = (s + 1) & (uint64_t)(cap - 1);
                for (int64_t e = slot_head[s]; e >= 0; e = next[e]) {
                    const int64_t owner = e / tables;
                    if (mark[owner] != i) {
                        mark[owner] = i;
                        found[n_found++] = owner;
                    }
                }
            }
            if (n_found > 0) {
                if (count + n_found > out_cap) {
                    while (count + n_found > out_cap) out_cap *= 2;
                    int64_t *lo2 = (int64_t *)realloc(lo, sizeof(int64_t) * (size_t)out_cap);
                    if (!lo2) goto fail;
                    lo = lo2;
                    int64_t *eo2 = (int64_t *)realloc(eo, sizeof(int64_t) * (size_t)out_cap);
                    if (!eo2) goto fail;
                    eo = eo2;
                }
                if (n_found * 16 > i) {
                    /* Many owners: the marks, read in row order, are already sorted. */
                    for (int64_t j = 0; j < i; j++)
                        if (mark[j] == i) {
                            lo[count] = i;
                            eo[count++] = j;
                        }
                } else {
                    qsort(found, (size_t)n_found, sizeof(int64_t), engram_cmp_i64);
                    for (int64_t f = 0; f < n_found; f++) {
                        lo[count] = i;
                        eo[count++] = found[f];
                    }
                }
            }
        }
        for (int64_t t = 0; t < tables; t++) {
            uint64_t s = shift < 64 ? ((uint64_t)k[t] * 0x9E3779B97F4A7C15ULL) >> shift : 0;
            while (slot_head[s] >= 0 && slot_key[s] != k[t]) s = (s + 1) & (uint64_t)(cap - 1);
            slot_key[s] = k[t];
            next[i * tables + t] = slot_head[s];
            slot_head[s] = i * tables + t;
        }
    }
    free(slot_key);
    free(slot_head);
    free(next);
    free(found);
    free(mark);
    if (count == 0) {
        free(lo);
        free(eo);
        return 0;
    }
    *later_out = lo;
    *earlier_out = eo;
    return count;
fail:
    free(slot_key);
    free(slot_head);
    free(next);
    free(found);
    free(mark);
    free(lo);
    free(eo);
    return -2;
}

#endif
