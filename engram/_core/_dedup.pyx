# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled kernels of dedup on store (dedup.h); twins and specification: ``_ref.lsh_keys``, ``_ref.pair_scores``.

LSH dot products are exact integers, so the keys equal the twin's bit for bit on
every machine; pair scores repeat the cosine kernel's operations in its order.
The GIL is released while a kernel runs: a group-commit leader computing a
batch's keys lets the writers behind it validate their next calls.
"""

import numpy as np
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t

from engram._core._ref import _check_lsh_args, _check_pair_args

cdef extern from "dedup.h" nogil:
    void engram_pair_scores(const float *M, const float *inv_norms, const int64_t *rows, const float *Q,
                            const float *q_inv, const int64_t *qidx, int64_t count, int64_t d, float *out)
    void engram_lsh_keys(const int8_t *codes, int64_t b, int64_t d, const int8_t *planes, int64_t tables,
                         int64_t bits, int64_t *out, int16_t *rows, int32_t *dots)


def lsh_keys(codes, planes, int bits):
    """See ``engram._core._ref.lsh_keys``: same contract, same bits, compiled."""
    _check_lsh_args(codes, planes, bits)
    cdef int64_t b = codes.shape[0]
    cdef int64_t d = codes.shape[1]
    cdef int64_t tables = planes.shape[0] // bits
    out = np.empty((b, tables), np.int64)
    if b == 0 or tables == 0:
        return out
    cdef const int8_t[:, ::1] c = codes
    cdef const int8_t[:, ::1] p = planes
    cdef int64_t[:, ::1] o = out
    cdef int64_t nbits = bits
    rows_scratch = np.empty(b * d, np.int16)
    dots_scratch = np.empty(b * tables * bits, np.int32)
    cdef int16_t[::1] rs = rows_scratch
    cdef int32_t[::1] ds = dots_scratch
    if d == 0:
        # No coordinates: every dot product is 0, so no bit is set.
        out[:] = np.arange(tables, dtype=np.int64) << bits
        return out
    with nogil:
        engram_lsh_keys(&c[0, 0], b, d, &p[0, 0], tables, nbits, &o[0, 0], &rs[0], &ds[0])
    return out


def pair_scores(matrix, inv_norms, rows, queries, query_inv_norms, query_of):
    """See ``engram._core._ref.pair_scores``: same contract, same bits, compiled."""
    _check_pair_args(matrix, inv_norms, rows, queries, query_inv_norms, query_of)
    cdef int64_t count = rows.shape[0]
    out = np.empty(count, np.float32)
    if count == 0:
        return out
    cdef const float[:, ::1] m = matrix
    cdef const float[::1] inv = inv_norms
    cdef const int64_t[::1] r = rows
    cdef const float[:, ::1] q = queries
    cdef const float[::1] qi = query_inv_norms
    cdef const int64_t[::1] qo = query_of
    cdef float[::1] o = out
    cdef int64_t d = matrix.shape[1]
    with nogil:
        engram_pair_scores(&m[0, 0], &inv[0], &r[0], &q[0, 0], &qi[0], &qo[0], count, d, &o[0])
    return out
