# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Parallel driver of the C cosine score kernel (scan.h) over blocks of rows.

Rows are split into fixed blocks scored by OpenMP threads; each row's scores are
computed by one thread in one order, so the thread count never changes a bit.
"""

import numpy as np
cimport numpy as cnp
from libc.stdint cimport int64_t

cnp.import_array()

from libc.stdint cimport int8_t, int32_t, INT64_MIN, INT64_MAX
from libc.stdlib cimport malloc, calloc, realloc, free
from libc.string cimport memcpy

from engram._core._dedup import quantize_rows  # the compiled one: same bits as the twin

cdef extern from "scan.h" nogil:
    int engram_approx_level()
    void engram_approx_block(const int8_t *codes, const float *scales, int64_t start, int64_t stop,
                             int64_t n_total, int64_t d, const float *Q, const int8_t *QC,
                             const float *q_scales, const int32_t *q_sums, int64_t b, float *out)
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


cdef inline void _sift_down(float *heap, Py_ssize_t size, Py_ssize_t pos) noexcept nogil:
    cdef Py_ssize_t left, right, smallest
    cdef float tmp
    while True:
        left = 2 * pos + 1
        right = left + 1
        smallest = pos
        if left < size and heap[left] < heap[smallest]:
            smallest = left
        if right < size and heap[right] < heap[smallest]:
            smallest = right
        if smallest == pos:
            return
        tmp = heap[smallest]
        heap[smallest] = heap[pos]
        heap[pos] = tmp
        pos = smallest


cdef inline Py_ssize_t _heap_offer(float *heap, Py_ssize_t size, Py_ssize_t k, float value) noexcept nogil:
    """Keep the k largest values offered so far in a min-heap of ``size`` entries; returns
    the new size. NaN is never kept (comparisons with NaN are false)."""
    cdef Py_ssize_t pos, parent
    cdef float tmp
    if value != value:
        return size
    if size < k:
        pos = size
        heap[pos] = value
        while pos > 0:
            parent = (pos - 1) // 2
            if heap[parent] > heap[pos]:
                tmp = heap[parent]
                heap[parent] = heap[pos]
                heap[pos] = tmp
                pos = parent
            else:
                break
        return size + 1
    if value > heap[0]:
        heap[0] = value
        _sift_down(heap, k, 0)
    return size


def select_candidates(const float[::1] scores, Py_ssize_t k, mask):
    """Indices (int64, ascending) of every allowed entry whose score is >= the k-th best.

    A min-heap of the k best allowed scores finds the k-th best in one pass; a
    second pass collects every entry at or above it, so ties at the k-th score are
    all included. NaN never enters (comparisons with NaN are false). The caller
    orders the result by (score descending, index ascending).
    """
    cdef Py_ssize_t n = scores.shape[0]
    cdef const unsigned char[::1] allowed
    cdef bint use_mask = mask is not None
    if use_mask:
        allowed = mask.view(np.uint8)
    if k <= 0 or n == 0:
        return np.zeros(0, np.int64)
    heap_arr = np.empty(k, np.float32)
    cdef float[::1] heap = heap_arr
    cdef Py_ssize_t size = 0, i, pos, count = 0
    cdef float kth
    with nogil:
        for i in range(n):
            if use_mask and not allowed[i]:
                continue
            size = _heap_offer(&heap[0], size, k, scores[i])
    if size == 0:
        return np.zeros(0, np.int64)
    kth = heap[0]
    with nogil:
        for i in range(n):
            if (not use_mask or allowed[i]) and scores[i] >= kth:
                count += 1
    out = np.empty(count, np.int64)
    cdef long long[::1] out_view = out
    pos = 0
    with nogil:
        for i in range(n):
            if (not use_mask or allowed[i]) and scores[i] >= kth:
                out_view[pos] = i
                pos += 1
    return out


def approx_scores_batch(const signed char[:, ::1] codes, const float[::1] scales, const float[:, ::1] queries):
    """Approximate dot products from int8 codes: float32 (b, n) of ``(codes[i] . q) * scales[i]``."""
    cdef int64_t n = codes.shape[0]
    cdef int64_t d = codes.shape[1]
    cdef int64_t b = queries.shape[0]
    out = np.empty((b, n), np.float32)
    cdef float[:, ::1] out_view = out
    if n == 0 or b == 0:
        return out
    cdef int64_t blocks = (n + ROW_BLOCK - 1) // ROW_BLOCK
    cdef int64_t blk, start, stop
    cdef const int8_t *cp = <const int8_t *>&codes[0, 0]
    cdef const float *sp = &scales[0]
    cdef const float *qp = &queries[0, 0]
    cdef float *op = &out_view[0, 0]
    cdef const int8_t *qcp = NULL
    cdef const float *qsp = NULL
    cdef const int32_t *qsum = NULL
    cdef const signed char[:, ::1] q_codes_view
    cdef const float[::1] q_scales_view
    cdef const int32_t[::1] q_sums_view
    if approx_quantises_queries():
        # The VNNI kernel takes the queries as int8 codes too, quantised like the rows;
        # q_sums covers the columns it takes 64 at a time (see scan.h).
        q_codes, q_scales = quantize_rows(np.asarray(queries))
        q_sums = q_codes[:, : d - d % 64].sum(axis=1, dtype=np.int32)
        q_codes_view = q_codes
        q_scales_view = q_scales
        q_sums_view = q_sums
        qcp = <const int8_t *>&q_codes_view[0, 0]
        qsp = &q_scales_view[0]
        qsum = &q_sums_view[0]
    cdef int threads = 1
    # The same threshold as the float scan: the conversions make it as compute-heavy.
    if n * b * d >= PARALLEL_WORK_MIN:
        threads = openmp.omp_get_max_threads()
    for blk in prange(blocks, nogil=True, schedule="dynamic", chunksize=CHUNK_BLOCKS, num_threads=threads):
        start = blk * ROW_BLOCK
        stop = start + ROW_BLOCK
        if stop > n:
            stop = n
        engram_approx_block(cp, sp, start, stop, n, d, qp, qcp, qsp, qsum, b, op)
    return out


def approx_quantises_queries():
    """True when approx_scores_batch quantises the queries to int8 (the VNNI kernel)."""
    return engram_approx_level() == 3


cdef inline bint _allowed(const unsigned char *alive, const int64_t *created, bint timed, int64_t i,
                          int64_t after, int64_t before) noexcept nogil:
    """Row i may answer the query: alive, and (for a query with a time window) created in it."""
    if not alive[i]:
        return False
    return not timed or (created[i] >= after and created[i] < before)


cdef Py_ssize_t _kth_lower(const float *approx, const float *inv_norms, const float *scale_inv,
                           const unsigned char *alive, const int64_t *created, bint timed, int64_t after, int64_t before,
                           Py_ssize_t n, float q_inv, float coeff, float constant, Py_ssize_t k,
                           float *heap, float *kth) noexcept nogil:
    """The k-th best lower bound over the allowed rows into *kth; returns how many rows
    were allowed, capped at k (fewer than k: every allowed row is a candidate)."""
    cdef Py_ssize_t size = 0, i
    cdef float cosine, bound, lower
    for i in range(n):
        if not _allowed(alive, created, timed, i, after, before):
            continue
        cosine = approx[i] * inv_norms[i] * q_inv
        bound = scale_inv[i] * coeff + constant
        lower = cosine - bound
        # Once the heap is full most rows are below its least entry: test that here and
        # call the heap only for the few that enter it.
        if size < k or lower > heap[0]:
            size = _heap_offer(heap, size, k, lower)
    if size == k:
        kth[0] = heap[0]
    return size


cdef Py_ssize_t _collect(const float *approx, const float *inv_norms, const float *scale_inv,
                         const unsigned char *alive, const int64_t *created, bint timed, int64_t after, int64_t before,
                         Py_ssize_t n, float q_inv, float coeff, float constant, bint every, float kth,
                         Py_ssize_t limit, int64_t **rows, Py_ssize_t *capacity) noexcept nogil:
    """The allowed rows whose upper bound reaches kth (every allowed row if ``every``), in
    ascending order, into the growable *rows; returns their count, or ``limit`` as soon
    as there are that many (the caller then scans the query in full), or -1 when memory
    runs out."""
    cdef Py_ssize_t count = 0, i
    cdef float cosine, bound
    cdef int64_t *grown
    for i in range(n):
        if not _allowed(alive, created, timed, i, after, before):
            continue
        if not every:
            cosine = approx[i] * inv_norms[i] * q_inv
            bound = scale_inv[i] * coeff + constant
            if not (cosine + bound >= kth):
                continue
        if count == limit:
            return limit
        if count == capacity[0]:
            grown = <int64_t *>realloc(rows[0], 2 * capacity[0] * sizeof(int64_t))
            if grown == NULL:
                return -1
            rows[0] = grown
            capacity[0] = 2 * capacity[0]
        rows[0][count] = i
        count = count + 1
    return count


def screen_batch(const float[:, ::1] approx, const float[::1] inv_norms, const float[::1] scale_inv,
                 const float[::1] q_inv, const double[::1] row_coeff, const double[::1] constant,
                 const long long[::1] ks, const long long[::1] after, const long long[::1] before,
                 alive_mask, const long long[::1] created, const float[:, ::1] matrix, const float[:, ::1] queries):
    """Each query's int8 candidates and their exact scores, for a whole batch in one call.

    For query j: the rows allowed (alive, after[j] <= created < before[j]) whose upper
    bound reaches the k-th best lower bound (as ``approx_candidates``), each scored
    exactly as in a full scan (as ``scores_rows``). Returns (offsets int64 (b + 1),
    rows int64, scores float32): query j's rows, ascending, are rows[offsets[j]:
    offsets[j + 1]]. A query whose candidates exceed a quarter of the rows gets none
    and full[j] True (a full exact scan is cheaper than scoring them one by one):
    (offsets, rows, scores, full). The GIL is released for all the work but the
    result's allocation, so a batch hands it over twice, not three times per query.

    Two passes over the rows per query: the k-th best lower bound, then the candidates
    (collected into a growable buffer, which also counts them) scored at once. A query
    without a time window reads no creation times.
    """
    cdef Py_ssize_t b = approx.shape[0], n = approx.shape[1], d = matrix.shape[1]
    if (inv_norms.shape[0] != n or scale_inv.shape[0] != n or created.shape[0] != n or matrix.shape[0] < n
            or queries.shape[0] != b or queries.shape[1] != d):
        raise ValueError(f"screen_batch: arrays must describe the same {n} rows and {b} queries; example: see Space._scan")
    for name, array in (("q_inv", q_inv), ("row_coeff", row_coeff), ("constant", constant), ("ks", ks), ("after", after), ("before", before)):
        if array.shape[0] != b:
            raise ValueError(f"{name}: must have one entry per query ({b}); example: np.ones({b})")
    cdef const unsigned char[::1] alive = alive_mask.view(np.uint8)
    if alive.shape[0] != n:
        raise ValueError(f"alive_mask: must be bool of shape ({n},); example: np.ones({n}, bool)")
    offsets = np.zeros(b + 1, np.int64)
    full = np.zeros(b, bool)
    if b == 0 or n == 0:
        return offsets, np.zeros(0, np.int64), np.zeros(0, np.float32), full
    cdef long long kmax = max(1, max(ks))
    heaps_arr = np.empty((b, kmax), np.float32)
    kth_arr = np.full(b, -np.inf, np.float32)
    counts_arr = np.zeros(b, np.int64)
    cdef float[:, ::1] heaps = heaps_arr
    cdef float[::1] kth = kth_arr
    cdef long long[::1] counts = counts_arr
    cdef unsigned char[::1] full_view = full.view(np.uint8)
    # Per query: its candidate rows and their exact scores, in buffers of its own (freed below).
    cdef int64_t **found = <int64_t **>calloc(b, sizeof(int64_t *))
    cdef float **found_scores = <float **>calloc(b, sizeof(float *))
    if found == NULL or found_scores == NULL:
        free(found)
        free(found_scores)
        raise MemoryError("screen_batch: no memory for the candidate lists")
    cdef Py_ssize_t limit = n // 4 + 1  # count * 4 > n: scan in full instead
    cdef Py_ssize_t j, i, size, count, capacity, position
    cdef float qi
    cdef bint timed
    cdef int failed = 0
    cdef int64_t *rows_out
    cdef float *scores_out
    cdef long long[::1] offs = offsets
    cdef int threads = 1
    if b >= 2 and n * b >= 200000:
        threads = openmp.omp_get_max_threads()
    try:
        for j in prange(b, nogil=True, schedule="dynamic", chunksize=1, num_threads=threads):
            if ks[j] <= 0:
                continue
            qi = q_inv[j]
            timed = after[j] != INT64_MIN or before[j] != INT64_MAX
            size = _kth_lower(&approx[j, 0], &inv_norms[0], &scale_inv[0], &alive[0], <const int64_t *>&created[0], timed,
                              after[j], before[j], n, qi, <float>row_coeff[j], <float>constant[j], ks[j], &heaps[j, 0], &kth[j])
            capacity = 256
            found[j] = <int64_t *>malloc(capacity * sizeof(int64_t))
            if found[j] == NULL:
                failed += 1  # a reduction: prange makes a plain assignment thread-private
                continue
            count = _collect(&approx[j, 0], &inv_norms[0], &scale_inv[0], &alive[0], <const int64_t *>&created[0], timed,
                             after[j], before[j], n, qi, <float>row_coeff[j], <float>constant[j], size < ks[j], kth[j],
                             limit, &found[j], &capacity)
            if count < 0:
                failed += 1  # a reduction: prange makes a plain assignment thread-private
                continue
            if count == limit:
                full_view[j] = 1
                continue
            counts[j] = count
            found_scores[j] = <float *>malloc((count + 1) * sizeof(float))
            if found_scores[j] == NULL:
                failed += 1  # a reduction: prange makes a plain assignment thread-private
                continue
            for position in range(count):
                i = found[j][position]
                engram_scores_block(&matrix[i, 0], &inv_norms[i], 0, 1, 1, d, &queries[j, 0], &qi, 1, &found_scores[j][position])
        if failed:
            raise MemoryError("screen_batch: no memory for the candidate lists")
        np.cumsum(counts_arr, out=offsets[1:])
        total = int(offsets[b])
        rows_arr = np.empty(total, np.int64)
        scores_arr = np.empty(total, np.float32)
        if total:
            rows_out = <int64_t *>cnp.PyArray_DATA(rows_arr)
            scores_out = <float *>cnp.PyArray_DATA(scores_arr)
            for j in range(b):
                if counts[j]:
                    memcpy(&rows_out[offs[j]], found[j], counts[j] * sizeof(int64_t))
                    memcpy(&scores_out[offs[j]], found_scores[j], counts[j] * sizeof(float))
        return offsets, rows_arr, scores_arr, full
    finally:
        for j in range(b):
            free(found[j])
            free(found_scores[j])
        free(found)
        free(found_scores)


from libc.math cimport sqrt, nextafterf, INFINITY


def row_residuals(const float[:, ::1] matrix, const signed char[:, ::1] codes, const float[::1] scales):
    """||x - codes * scale|| / ||x|| of each row, float32 rounded up (0 for a zero row).

    Sums in double in column order: x and codes * scale are exact in double, so the
    result is within a few double ulps of the real ratio, far below the float32 ulp it
    is rounded up by (engram.memory.residuals keeps the NumPy definition).
    """
    cdef Py_ssize_t n = matrix.shape[0], d = matrix.shape[1], i, c
    if codes.shape[0] != n or codes.shape[1] != d or scales.shape[0] != n:
        raise ValueError(f"codes/scales: must match the matrix ({n} x {d}); example: quantize_rows(matrix)")
    out = np.empty(n, np.float32)
    cdef float[::1] out_view = out
    cdef double sx, se, x, e, scale
    with nogil:
        for i in range(n):
            sx = 0.0
            se = 0.0
            scale = scales[i]
            for c in range(d):
                x = matrix[i, c]
                e = x - <double>codes[i, c] * scale
                sx = sx + x * x
                se = se + e * e
            if sx > 0.0:
                out_view[i] = nextafterf(<float>(sqrt(se) / sqrt(sx)), INFINITY)
            else:
                out_view[i] = nextafterf(<float>sqrt(se), INFINITY)
    return out
