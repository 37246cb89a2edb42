# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled average-linkage clustering under cosine distance; the twin and the
specification are ``linkage`` and ``cosine_distances`` in _ref.py.

The C code is in linkage.h. Distances are computed by OpenMP threads over panels of
rows, each entry by one thread in one fixed order, so the thread count never changes a
bit; the merges then run single-threaded over that one condensed matrix
(n(n-1)/2 float64: 400 MB at n = 10,000; no copy of it is made).
"""

import numpy as np
cimport numpy as cnp
from cython.parallel cimport prange
from libc.stdint cimport int64_t

from engram._core._ref import _check_cosine_args, _check_linkage_args

cnp.import_array()

cdef extern from "linkage.h" nogil:
    void engram_lk_norms(const double *X, int64_t d, int64_t start, int64_t stop, double *n2)
    void engram_lk_pdist_panel(const double *X, const double *n2, int64_t n, int64_t d,
                               int64_t i_start, int64_t i_stop, double *D)
    void engram_lk_cdist_rows(const double *A, const double *n2a, const double *B, const double *n2b,
                              int64_t m, int64_t d, int64_t start, int64_t stop, double *out)
    void engram_lk_cluster(double *D, int64_t n, double *Z, int64_t *rb, int64_t *id, int64_t *size,
                           int64_t *nn, double *nnd, int64_t *next, int64_t *prev)

# 128 rows of 768 float64 are 768 KiB: a panel stays in L2 (2 MiB here) while the
# rows after it stream past in tiles of 4, so each of those is read from memory once
# per panel (128 was fastest of 16..256 at n = 5,000, d = 768).
DEF PANEL_ROWS = 128


def _norms(const double[:, ::1] X):
    cdef int64_t n = X.shape[0]
    cdef int64_t d = X.shape[1]
    n2 = np.empty(n, np.float64)
    cdef double[::1] n2v = n2
    if n:
        with nogil:
            engram_lk_norms(&X[0, 0], d, 0, n, &n2v[0])
    return n2


def _pdist(const double[:, ::1] X, const double[::1] n2):
    """Condensed cosine distances of the rows of X (float64), as in the module docstring."""
    cdef int64_t n = X.shape[0]
    cdef int64_t d = X.shape[1]
    D = np.empty(n * (n - 1) // 2, np.float64)
    cdef double[::1] Dv = D
    if n < 2:
        return D
    cdef int64_t panels = (n + PANEL_ROWS - 1) // PANEL_ROWS
    cdef int64_t p, start, stop
    cdef const double *xp = &X[0, 0]
    cdef const double *np2 = &n2[0]
    cdef double *dp = &Dv[0]
    # Early panels pair with more rows: dynamic scheduling balances them. Which
    # thread computes a panel does not matter to the result.
    for p in prange(panels, nogil=True, schedule="dynamic", chunksize=1):
        start = p * PANEL_ROWS
        stop = start + PANEL_ROWS
        if stop > n:
            stop = n
        engram_lk_pdist_panel(xp, np2, n, d, start, stop, dp)
    return D


def _cluster(D, int64_t n):
    """Runs the merges over the condensed matrix D (overwritten); returns Z."""
    Z = np.empty((n - 1, 4), np.float64)
    work = np.empty((6, n + 1), np.int64)
    nnd = np.empty(n, np.float64)
    cdef double[::1] Dv = D
    cdef double[:, ::1] Zv = Z
    cdef int64_t[:, ::1] w = work
    cdef double[::1] nndv = nnd
    with nogil:
        engram_lk_cluster(&Dv[0], n, &Zv[0, 0], &w[0, 0], &w[1, 0], &w[2, 0], &w[3, 0], &nndv[0],
                          &w[4, 0], &w[5, 0])
    return Z


def linkage(X, method="average"):
    """See ``engram._core._ref.linkage``: same contract, same bits, compiled."""
    X = _check_linkage_args(X, method)
    X64 = np.ascontiguousarray(X, dtype=np.float64)
    D = _pdist(X64, _norms(X64))
    del X64
    return _cluster(D, X.shape[0])


def cosine_distances(A, B):
    """See ``engram._core._ref.cosine_distances``: same contract, same bits, compiled."""
    A, B = _check_cosine_args(A, B)
    A64 = np.ascontiguousarray(A, dtype=np.float64)
    B64 = np.ascontiguousarray(B, dtype=np.float64)
    cdef int64_t k = A64.shape[0]
    cdef int64_t m = B64.shape[0]
    cdef int64_t d = A64.shape[1]
    out = np.empty((k, m), np.float64)
    if k == 0 or m == 0:
        return out
    n2a = _norms(A64)
    n2b = _norms(B64)
    cdef const double[:, ::1] Av = A64
    cdef const double[:, ::1] Bv = B64
    cdef const double[::1] n2av = n2a
    cdef const double[::1] n2bv = n2b
    cdef double[:, ::1] ov = out
    cdef const double *ap = &Av[0, 0]
    cdef const double *bp = &Bv[0, 0]
    cdef const double *n2ap = &n2av[0]
    cdef const double *n2bp = &n2bv[0]
    cdef double *op = &ov[0, 0]
    cdef int64_t blocks = (k + 7) // 8
    cdef int64_t blk, start, stop
    # Below ~16M multiply-adds (a few ms) one thread is faster than waking a second
    # one that may be busy; dynamic chunks keep a stalled thread from holding the rest.
    if k * m * d < 1 << 24:
        with nogil:
            engram_lk_cdist_rows(ap, n2ap, bp, n2bp, m, d, 0, k, op)
        return out
    for blk in prange(blocks, nogil=True, schedule="dynamic"):
        start = blk * 8
        stop = start + 8
        if stop > k:
            stop = k
        engram_lk_cdist_rows(ap, n2ap, bp, n2bp, m, d, start, stop, op)
    return out
