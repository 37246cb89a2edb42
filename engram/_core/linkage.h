/* Average-linkage clustering under cosine distance, deterministic to the bit.
 *
 * Two parts, both specified by the NumPy twin ``linkage`` in _ref.py:
 *
 * 1. Distances. dot(x, y) of two float64 rows accumulates in 8 lanes: lane l holds
 *    x[l]*y[l] + x[8+l]*y[8+l] + ... in increasing order; the d % 8 tail elements are
 *    added to lanes 0.. in order; the lanes are reduced by the fixed tree
 *    ((0+4)+(2+6)) + ((1+5)+(3+7)). Every multiply and add is a separate IEEE
 *    operation (built with -ffp-contract=off, no fast-math), so the bits are the same
 *    on every SIMD width that target_clones picks, on every thread count (each entry
 *    is computed by one thread) and in NumPy. Then
 *        dist = clamp(1 - dot / sqrt(n2x * n2y), 0, 2),  n2 = dot(x, x),
 *    and 1 (similarity 0) when either row is all zeros.
 *
 * 2. Merges. The exact greedy rule: at every step merge the active pair with the
 *    smallest key (distance, smaller cluster id, larger cluster id), where points are
 *    ids 0..n-1 and the cluster made by step s is id n+s, as in scipy. Distances to the
 *    new cluster follow Lance-Williams for the average:
 *        d(a+b, k) = (size_a * d(a, k) + size_b * d(b, k)) / (size_a + size_b).
 *    It runs as Muellner's "generic" algorithm: every slot k keeps its best partner
 *    among the active slots j > k (nn[k], nnd[k]), kept exact after every merge, so the
 *    global best pair is the best of those; only slots whose partner was merged are
 *    rescanned. Typical cost O(n^2), and no second copy of the distance matrix.
 */
#ifndef ENGRAM_LINKAGE_H
#define ENGRAM_LINKAGE_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* How many active slots ahead the merge loop prefetches. */
#define ENGRAM_LK_PREFETCH 16

typedef double engram_v8d __attribute__((vector_size(64)));

static inline engram_v8d engram_lk_load(const double *p) {
    engram_v8d v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* The fixed tail and reduction tree shared by every dot product. */
static inline double engram_lk_finish(engram_v8d acc, const double *x, const double *y, int64_t full, int64_t d) {
    double a[8];
    memcpy(a, &acc, sizeof(a));
    for (int64_t l = 0; l < d - full; l++) a[l] += x[full + l] * y[full + l];
    double b0 = a[0] + a[4], b1 = a[1] + a[5], b2 = a[2] + a[6], b3 = a[3] + a[7];
    double c0 = b0 + b2, c1 = b1 + b3;
    return c0 + c1;
}

static inline double engram_lk_dot(const double *x, const double *y, int64_t d) {
    const int64_t full = d - d % 8;
    engram_v8d acc = {0};
    for (int64_t c = 0; c < full; c += 8) acc += engram_lk_load(x + c) * engram_lk_load(y + c);
    return engram_lk_finish(acc, x, y, full, d);
}

static inline double engram_lk_dist(double dot, double n2x, double n2y) {
    double sim = 0.0;
    if (n2x > 0.0 && n2y > 0.0) sim = dot / sqrt(n2x * n2y);
    double dist = 1.0 - sim;
    if (dist < 0.0) dist = 0.0;
    if (dist > 2.0) dist = 2.0;
    return dist;
}

/* Condensed index of the pair (i, j), i < j: row_base[i] + j. */
static inline int64_t engram_lk_row_base(int64_t n, int64_t i) {
    return i * (2 * n - i - 1) / 2 - i - 1;
}

/* Squared norms of rows [start, stop). */
static void engram_lk_norms(const double *X, int64_t d, int64_t start, int64_t stop, double *n2) {
    for (int64_t i = start; i < stop; i++) n2[i] = engram_lk_dot(X + i * d, X + i * d, d);
}

/* A 4 x 4 tile of dot products: rows i..i+3 against rows j..j+3, the same lanes and
 * order as engram_lk_dot (16 independent chains keep both FP pipes busy). */
__attribute__((target_clones("avx512f", "avx2", "default")))
static void engram_lk_tile4(const double *X, int64_t d, int64_t i, int64_t j, double out[16]) {
    const int64_t full = d - d % 8;
    const double *x0 = X + (i + 0) * d, *x1 = X + (i + 1) * d, *x2 = X + (i + 2) * d, *x3 = X + (i + 3) * d;
    const double *y0 = X + (j + 0) * d, *y1 = X + (j + 1) * d, *y2 = X + (j + 2) * d, *y3 = X + (j + 3) * d;
    engram_v8d a00 = {0}, a01 = {0}, a02 = {0}, a03 = {0};
    engram_v8d a10 = {0}, a11 = {0}, a12 = {0}, a13 = {0};
    engram_v8d a20 = {0}, a21 = {0}, a22 = {0}, a23 = {0};
    engram_v8d a30 = {0}, a31 = {0}, a32 = {0}, a33 = {0};
    for (int64_t c = 0; c < full; c += 8) {
        engram_v8d r0 = engram_lk_load(x0 + c), r1 = engram_lk_load(x1 + c);
        engram_v8d r2 = engram_lk_load(x2 + c), r3 = engram_lk_load(x3 + c);
        engram_v8d q0 = engram_lk_load(y0 + c), q1 = engram_lk_load(y1 + c);
        engram_v8d q2 = engram_lk_load(y2 + c), q3 = engram_lk_load(y3 + c);
        a00 += r0 * q0; a01 += r0 * q1; a02 += r0 * q2; a03 += r0 * q3;
        a10 += r1 * q0; a11 += r1 * q1; a12 += r1 * q2; a13 += r1 * q3;
        a20 += r2 * q0; a21 += r2 * q1; a22 += r2 * q2; a23 += r2 * q3;
        a30 += r3 * q0; a31 += r3 * q1; a32 += r3 * q2; a33 += r3 * q3;
    }
    out[0] = engram_lk_finish(a00, x0, y0, full, d);
    out[1] = engram_lk_finish(a01, x0, y1, full, d);
    out[2] = engram_lk_finish(a02, x0, y2, full, d);
    out[3] = engram_lk_finish(a03, x0, y3, full, d);
    out[4] = engram_lk_finish(a10, x1, y0, full, d);
    out[5] = engram_lk_finish(a11, x1, y1, full, d);
    out[6] = engram_lk_finish(a12, x1, y2, full, d);
    out[7] = engram_lk_finish(a13, x1, y3, full, d);
    out[8] = engram_lk_finish(a20, x2, y0, full, d);
    out[9] = engram_lk_finish(a21, x2, y1, full, d);
    out[10] = engram_lk_finish(a22, x2, y2, full, d);
    out[11] = engram_lk_finish(a23, x2, y3, full, d);
    out[12] = engram_lk_finish(a30, x3, y0, full, d);
    out[13] = engram_lk_finish(a31, x3, y1, full, d);
    out[14] = engram_lk_finish(a32, x3, y2, full, d);
    out[15] = engram_lk_finish(a33, x3, y3, full, d);
}

/* Condensed distances of every pair (i, j), i < j, for rows i in the panel
 * [i_start, i_stop). Panels are independent, so threads may take them in any order. */
static void engram_lk_pdist_panel(const double *X, const double *n2, int64_t n, int64_t d,
                                  int64_t i_start, int64_t i_stop, double *D) {
    double t[16];
    for (int64_t j0 = i_start; j0 < n; j0 += 4) {
        for (int64_t i0 = i_start; i0 < i_stop; i0 += 4) {
            if (i0 >= j0 + 3) continue; /* no pair i < j in this tile */
            if (i0 + 4 <= i_stop && j0 + 4 <= n) {
                engram_lk_tile4(X, d, i0, j0, t);
                for (int64_t a = 0; a < 4; a++) {
                    const int64_t i = i0 + a;
                    const int64_t base = engram_lk_row_base(n, i);
                    for (int64_t b = 0; b < 4; b++) {
                        const int64_t j = j0 + b;
                        if (i < j) D[base + j] = engram_lk_dist(t[a * 4 + b], n2[i], n2[j]);
                    }
                }
            } else {
                for (int64_t i = i0; i < i0 + 4 && i < i_stop; i++) {
                    const int64_t base = engram_lk_row_base(n, i);
                    for (int64_t j = j0; j < j0 + 4 && j < n; j++) {
                        if (i < j) D[base + j] = engram_lk_dist(engram_lk_dot(X + i * d, X + j * d, d), n2[i], n2[j]);
                    }
                }
            }
        }
    }
}

/* Rectangular distances: out[i * m + j] = dist(A[i], B[j]) for rows i in [start, stop).
 * Four rows of B at a time give four independent chains (same lanes and order as
 * engram_lk_dot). */
__attribute__((target_clones("avx512f", "avx2", "default")))
static void engram_lk_cdist_rows(const double *A, const double *n2a, const double *B, const double *n2b,
                                 int64_t m, int64_t d, int64_t start, int64_t stop, double *out) {
    const int64_t full = d - d % 8;
    for (int64_t i = start; i < stop; i++) {
        const double *x = A + i * d;
        int64_t j = 0;
        for (; j + 4 <= m; j += 4) {
            const double *y0 = B + (j + 0) * d, *y1 = B + (j + 1) * d, *y2 = B + (j + 2) * d, *y3 = B + (j + 3) * d;
            engram_v8d a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
            for (int64_t c = 0; c < full; c += 8) {
                engram_v8d r = engram_lk_load(x + c);
                a0 += r * engram_lk_load(y0 + c);
                a1 += r * engram_lk_load(y1 + c);
                a2 += r * engram_lk_load(y2 + c);
                a3 += r * engram_lk_load(y3 + c);
            }
            out[i * m + j + 0] = engram_lk_dist(engram_lk_finish(a0, x, y0, full, d), n2a[i], n2b[j + 0]);
            out[i * m + j + 1] = engram_lk_dist(engram_lk_finish(a1, x, y1, full, d), n2a[i], n2b[j + 1]);
            out[i * m + j + 2] = engram_lk_dist(engram_lk_finish(a2, x, y2, full, d), n2a[i], n2b[j + 2]);
            out[i * m + j + 3] = engram_lk_dist(engram_lk_finish(a3, x, y3, full, d), n2a[i], n2b[j + 3]);
        }
        for (; j < m; j++) {
            out[i * m + j] = engram_lk_dist(engram_lk_dot(x, B + j * d, d), n2a[i], n2b[j]);
        }
    }
}

static inline int engram_lk_key_less(double d1, int64_t lo1, int64_t hi1, double d2, int64_t lo2, int64_t hi2) {
    if (d1 != d2) return d1 < d2;
    if (lo1 != lo2) return lo1 < lo2;
    return hi1 < hi2;
}

static inline double *engram_lk_at(double *D, const int64_t *rb, int64_t i, int64_t j) {
    return i < j ? D + rb[i] + j : D + rb[j] + i;
}

/* Best partner of slot k among active slots j > k: smallest distance, then smallest
 * cluster id. For a fixed k that is the same order as the full key (distance, smaller
 * id, larger id), because ids are distinct. */
static inline void engram_lk_rescan(const double *D, const int64_t *rb, const int64_t *next, const int64_t *id,
                                    int64_t n, int64_t k, int64_t *nn, double *nnd) {
    int64_t best = -1;
    double best_d = 0.0;
    const double *row = D + rb[k];
    for (int64_t j = next[k]; j < n; j = next[j]) {
        const double dj = row[j];
        if (best < 0 || dj < best_d || (dj == best_d && id[j] < id[best])) {
            best = j;
            best_d = dj;
        }
    }
    nn[k] = best;
    nnd[k] = best_d;
}

/* Runs the n - 1 merges over the condensed matrix D (overwritten) and writes Z,
 * (n - 1) x 4 float64 in scipy's format. Work arrays have n (next: n + 1) entries. */
static void engram_lk_cluster(double *D, int64_t n, double *Z, int64_t *rb, int64_t *id, int64_t *size,
                              int64_t *nn, double *nnd, int64_t *next, int64_t *prev) {
    for (int64_t i = 0; i < n; i++) {
        rb[i] = engram_lk_row_base(n, i);
        id[i] = i;
        size[i] = 1;
        next[i] = i + 1;
        prev[i] = i - 1;
    }
    next[n] = n;
    int64_t head = 0; /* first active slot; next[] of the last one is n */
    for (int64_t k = 0; k < n; k++) engram_lk_rescan(D, rb, next, id, n, k, nn, nnd);

    for (int64_t s = 0; s < n - 1; s++) {
        int64_t a = -1, best_lo = 0, best_hi = 0;
        double best_d = 0.0;
        for (int64_t k = head; k < n; k = next[k]) {
            const int64_t p = nn[k];
            if (p < 0) continue;
            const int64_t lo = id[k] < id[p] ? id[k] : id[p];
            const int64_t hi = id[k] < id[p] ? id[p] : id[k];
            if (a < 0 || engram_lk_key_less(nnd[k], lo, hi, best_d, best_lo, best_hi)) {
                a = k;
                best_d = nnd[k];
                best_lo = lo;
                best_hi = hi;
            }
        }
        const int64_t b = nn[a]; /* a < b: the new cluster takes slot b */
        const int64_t size_a = size[a], size_b = size[b];
        Z[4 * s + 0] = (double)best_lo;
        Z[4 * s + 1] = (double)best_hi;
        Z[4 * s + 2] = best_d;
        Z[4 * s + 3] = (double)(size_a + size_b);

        /* unlink slot a */
        if (prev[a] >= 0) next[prev[a]] = next[a]; else head = next[a];
        if (next[a] < n) prev[next[a]] = prev[a];

        id[b] = n + s;
        size[b] = size_a + size_b;
        const double fa = (double)size_a, fb = (double)size_b, fs = (double)(size_a + size_b);
        /* For k < a both distances sit in columns of the condensed matrix, one cache
         * line per k: prefetch them a few active slots ahead (changes no result). */
        int64_t ahead = head;
        for (int p = 0; p < ENGRAM_LK_PREFETCH && ahead < n; p++) ahead = next[ahead];
        for (int64_t k = head; k < n; k = next[k]) {
            if (ahead < n) {
                if (ahead != b) {
                    __builtin_prefetch(engram_lk_at(D, rb, ahead, a), 0);
                    __builtin_prefetch(engram_lk_at(D, rb, ahead, b), 1);
                }
                ahead = next[ahead];
            }
            if (k == b) continue;
            double *dkb = engram_lk_at(D, rb, k, b);
            const double dka = *engram_lk_at(D, rb, k, a);
            *dkb = (fa * dka + fb * *dkb) / fs;
            if (k < b) {
                if (nn[k] == a || nn[k] == b) {
                    engram_lk_rescan(D, rb, next, id, n, k, nn, nnd);
                } else if (*dkb < nnd[k] || (*dkb == nnd[k] && id[b] < id[nn[k]])) {
                    nn[k] = b;
                    nnd[k] = *dkb;
                }
            }
        }
        engram_lk_rescan(D, rb, next, id, n, b, nn, nnd);
        nn[a] = -1;
    }
}

#endif
