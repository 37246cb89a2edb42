# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Parallel driver of the C cosine score kernel (scan.h) over blocks of rows.

Rows are split into fixed blocks scored by OpenMP threads; each row's scores are
computed by one thread in one order, so the thread count never changes a bit.
"""

import numpy as np
cimport numpy as cnp
from libc.stdint cimport int64_t

cnp.import_array()

cdef extern from "scan.h" nogil:
    void engram_scores_block(const float *M, const float *inv_norms, int64_t start, int64_t stop,
                             int64_t n_total, int64_t d, const float *Q, const float *q_inv, int64_t b,
                             float *out)

from cython.parallel cimport prange
cimport openmp

# 64 rows of 768 float32 are 192 KiB: a block stays in L2 while every query of a
# batch is scored against it.
DEF ROW_BLOCK = 64
# Below this many multiply-adds (about 40k rows of 768 for one query) one thread
# does the job: a thread team costs tens of microseconds to wake, and when the
# other core is busy the region waits a whole time slice for its second thread
# (p95 15 ms instead of 1 ms at 10k rows, measured here under load).
DEF PARALLEL_WORK_MIN = 33554432
# Blocks are handed out dynamically so that a descheduled thread delays the
# scan by one chunk, not by half of it.
DEF CHUNK_BLOCKS = 16


def scores_batch(const float[:, ::1] matrix, const float[::1] inv_norms,
                 const float[:, ::1] queries, const float[::1] q_inv):
    """Scores of every row against every query: float32 array of shape (b, n)."""
    cdef int64_t n = matrix.shape[0]
    cdef int64_t d = matrix.shape[1]
    cdef int64_t b = queries.shape[0]
    out = np.empty((b, n), np.float32)
    cdef float[:, ::1] out_view = out
    if n == 0 or b == 0:
        return out
    cdef int64_t blocks = (n + ROW_BLOCK - 1) // ROW_BLOCK
    cdef int64_t blk, start, stop
    cdef const float *mp = &matrix[0, 0]
    cdef const float *ip = &inv_norms[0]
    cdef const float *qp = &queries[0, 0]
    cdef const float *qi = &q_inv[0]
    cdef float *op = &out_view[0, 0]
    cdef int threads = 1
    if n * b * d >= PARALLEL_WORK_MIN:
        threads = openmp.omp_get_max_threads()
    for blk in prange(blocks, nogil=True, schedule="dynamic", chunksize=CHUNK_BLOCKS, num_threads=threads):
        start = blk * ROW_BLOCK
        stop = start + ROW_BLOCK
        if stop > n:
            stop = n
        engram_scores_block(mp, ip, start, stop, n, d, qp, qi, b, op)
    return out
