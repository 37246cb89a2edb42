# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled kernels of dedup on store (dedup.h); twins and specification: ``_ref.lsh_keys``, ``_ref.pair_scores``.

LSH dot products are exact integers, so the keys equal the twin's bit for bit on
every machine; pair scores repeat the cosine kernel's operations in its order.
The GIL is released only while a kernel runs on a large input (more than
NOGIL_WORK values): for one store or a small group-commit batch the release
costs more than it gives, since with many writer threads each release hands the
GIL to another thread and back (two context switches).
"""

import numpy as np
cimport numpy as cnp
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t

cnp.import_array()

cdef enum:
    # Work (values read) above which a kernel releases the GIL: about 85 rows of 768.
    NOGIL_WORK = 65536

from engram._core._ref import _check_base_index_args, _check_lsh_args, _check_matches_args, _check_pair_args, _check_quantize_args, _check_slot_args

cdef extern from "dedup.h" nogil:
    int engram_quantize_rows(const float *M, int64_t n, int64_t d, int8_t *codes, float *scales)
    int64_t engram_raw_candidates(const int64_t *keys, int64_t tables, const int64_t *base_start, int64_t base_len,
                                  const int64_t *slot_count, int64_t slots, int64_t key_count)
    int64_t engram_dedup_matches(const int64_t *keys, int64_t b, int64_t tables, const uint8_t *eligible,
                                 const int64_t *base_start, const int64_t *base_rows,
                                 const int64_t *slot_rows, const int64_t *slot_count, int64_t slots,
                                 const uint8_t *alive, const uint8_t *episodic, const float *M,
                                 const float *inv_norms, const float *Q, const float *q_inv, int64_t d,
                                 int64_t n, float threshold, const int8_t *codes, const float *scales,
                                 const int8_t *q_codes, const float *q_scales, int64_t *scratch,
                                 int64_t *out_query, int64_t *out_row, float *out_score)
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
    if b * d > NOGIL_WORK:
        with nogil:
            engram_lsh_keys(&c[0, 0], b, d, &p[0, 0], tables, nbits, &o[0, 0], &rs[0], &ds[0])
    else:
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
    if count * d > NOGIL_WORK:
        with nogil:
            engram_pair_scores(&m[0, 0], &inv[0], &r[0], &q[0, 0], &qi[0], &qo[0], count, d, &o[0])
    else:
        engram_pair_scores(&m[0, 0], &inv[0], &r[0], &q[0, 0], &qi[0], &qo[0], count, d, &o[0])
    return out


cdef inline void *_data(object array):
    # Only for arrays whose dtype and C-contiguity the checks above have verified.
    return cnp.PyArray_DATA(<cnp.ndarray>array)


def dedup_matches(keys, eligible, base_start, base_rows, slot_rows, slot_count, alive, episodic,
                  matrix, inv_norms, queries, query_inv_norms, threshold, codes=None, scales=None,
                  query_codes=None, query_scales=None):
    """See ``engram._core._ref.dedup_matches``: same contract, same bits, compiled.

    With int8 codes of the rows and the queries, rows that provably cannot reach
    the threshold are skipped before their float32 score (see dedup.h). Arrays are
    passed to C by pointer once checked (typed memoryviews cost a microsecond each,
    and this runs on every store).
    """
    _check_matches_args(keys, eligible, base_start, base_rows, slot_rows, slot_count, alive, episodic,
                        matrix, inv_norms, queries, query_inv_norms, codes, scales, query_codes, query_scales)
    cdef int64_t b = keys.shape[0]
    cdef int64_t tables = keys.shape[1]
    cdef int64_t d = matrix.shape[1]
    cdef int64_t slots = 0 if slot_rows is None else slot_rows.shape[1]
    cdef const int64_t *k = <const int64_t *>_data(keys)
    cdef const uint8_t *el = <const uint8_t *>_data(eligible)
    cdef const int64_t *bs_p = NULL
    cdef const int64_t *br_p = NULL
    cdef const int64_t *sr_p = NULL
    cdef const int64_t *sc_p = NULL
    cdef int64_t base_len = 0
    cdef int64_t key_count = 1 << 62  # no index: keys are never read
    if base_start is not None:
        bs_p = <const int64_t *>_data(base_start)
        br_p = <const int64_t *>_data(base_rows)
        base_len = base_rows.shape[0]
        key_count = base_start.shape[0] - 1
    if slot_rows is not None:
        sr_p = <const int64_t *>_data(slot_rows)
        sc_p = <const int64_t *>_data(slot_count)
        key_count = slot_rows.shape[0]
    cdef int64_t i, raw, total = 0, largest = 0
    for i in range(b):
        if el[i]:
            raw = engram_raw_candidates(k + i * tables, tables, bs_p, base_len, sc_p, slots, key_count)
            if raw == -1:
                raise ValueError(f"keys: a key is outside 0..{key_count - 1}; example: DedupIndex.keys_for(vectors)")
            if raw == -2:
                raise ValueError(f"base_start: offsets must rise within 0..{base_len}; example: the DedupIndex's arrays")
            total += raw
            if raw > largest:
                largest = raw
    out_query = np.empty(total, np.int64)
    out_row = np.empty(total, np.int64)
    out_score = np.empty(total, np.float32)
    if total == 0:
        return out_query, out_row, out_score
    scratch = np.empty(largest, np.int64)
    cdef float thr = np.float32(threshold)
    cdef int64_t rows_n = matrix.shape[0]
    cdef const int8_t *c_p = NULL
    cdef const float *s_p = NULL
    cdef const int8_t *qc_p = NULL
    cdef const float *qs_p = NULL
    if codes is not None:
        c_p = <const int8_t *>_data(codes)
        s_p = <const float *>_data(scales)
        qc_p = <const int8_t *>_data(query_codes)
        qs_p = <const float *>_data(query_scales)
    cdef const uint8_t *al = <const uint8_t *>_data(alive)
    cdef const uint8_t *ep = <const uint8_t *>_data(episodic)
    cdef const float *m = <const float *>_data(matrix)
    cdef const float *inv = <const float *>_data(inv_norms)
    cdef const float *q = <const float *>_data(queries)
    cdef const float *qi = <const float *>_data(query_inv_norms)
    cdef int64_t *scr = <int64_t *>_data(scratch)
    cdef int64_t *oq = <int64_t *>_data(out_query)
    cdef int64_t *orow = <int64_t *>_data(out_row)
    cdef float *osc = <float *>_data(out_score)
    cdef int64_t written
    # By the number of queries, not candidates: a group-commit batch's lookup (a few
    # dozen queries) keeps the GIL, as the writers behind it are waiting anyway; a
    # bulk store's lets other threads run.
    if b * d > NOGIL_WORK:
        with nogil:
            written = engram_dedup_matches(k, b, tables, el, bs_p, br_p, sr_p, sc_p, slots, al, ep, m, inv, q, qi, d,
                                           rows_n, thr, c_p, s_p, qc_p, qs_p, scr, oq, orow, osc)
    else:
        written = engram_dedup_matches(k, b, tables, el, bs_p, br_p, sr_p, sc_p, slots, al, ep, m, inv, q, qi, d,
                                       rows_n, thr, c_p, s_p, qc_p, qs_p, scr, oq, orow, osc)
    if written < 0:
        raise ValueError(f"base_rows/slot_rows: a candidate row is outside 0..{rows_n - 1}; example: the DedupIndex's arrays")
    return out_query[:written], out_row[:written], out_score[:written]


def quantize_rows(matrix):
    """See ``engram._core._ref.quantize_rows``: same contract, same bits, compiled."""
    _check_quantize_args(matrix)
    cdef int64_t n = matrix.shape[0]
    cdef int64_t d = matrix.shape[1]
    codes = np.empty((n, d), np.int8)
    scales = np.empty(n, np.float32)
    if n == 0:
        return codes, scales
    source = np.ascontiguousarray(matrix)
    cdef const float[:, ::1] m = source
    cdef int8_t[:, ::1] c = codes
    cdef float[::1] sc = scales
    cdef int status
    if n * d > NOGIL_WORK:
        with nogil:
            status = engram_quantize_rows(&m[0, 0], n, d, &c[0, 0], &sc[0])
    else:
        status = engram_quantize_rows(&m[0, 0], n, d, &c[0, 0], &sc[0])
    if status < 0:
        raise ValueError("matrix: contains NaN or infinity; allowed: finite values; example: np.zeros((10, 768), np.float32)")
    return codes, scales


def slot_insert(slot_rows, slot_count, rows, keys):
    """See ``engram._core._ref.slot_insert``: same contract, same result, compiled."""
    _check_slot_args(slot_rows, slot_count, rows, keys)
    cdef int64_t n = rows.shape[0]
    cdef int64_t tables = keys.shape[1]
    cdef int64_t slots = slot_rows.shape[1]
    cdef int64_t *sr = <int64_t *>_data(slot_rows)
    cdef int64_t *sc = <int64_t *>_data(slot_count)
    cdef const int64_t *r = <const int64_t *>_data(rows)
    cdef const int64_t *k = <const int64_t *>_data(keys)
    spilled_keys = np.empty(n * tables, np.int64)
    spilled_rows = np.empty(n * tables, np.int64)
    cdef int64_t *spk = <int64_t *>_data(spilled_keys)
    cdef int64_t *spr = <int64_t *>_data(spilled_rows)
    cdef int64_t spilled
    # A few operations per key: holding the GIL costs less than handing it over,
    # except for a bulk store's rows.
    if n * tables > SLOT_INSERT_NOGIL_KEYS:
        with nogil:
            spilled = _slot_insert(sr, sc, r, k, n, tables, slots, spk, spr)
    else:
        spilled = _slot_insert(sr, sc, r, k, n, tables, slots, spk, spr)
    return spilled_keys[:spilled], spilled_rows[:spilled]


cdef enum:
    SLOT_INSERT_NOGIL_KEYS = 65536
    # Rows ahead whose slots are asked for before they are written (see _slot_insert).
    SLOT_INSERT_AHEAD = 4


cdef extern from *:
    void __builtin_prefetch(const void *address, int rw, int locality) nogil


cdef int64_t _slot_insert(int64_t *sr, int64_t *sc, const int64_t *r, const int64_t *k, int64_t n, int64_t tables,
                          int64_t slots, int64_t *spk, int64_t *spr) noexcept nogil:
    """Each key's next slot, in row then table order; rows past a key's slots spill.
    A row's keys land all over the (MBs of) slot table, a cache miss each: the
    slots of the row SLOT_INSERT_AHEAD rows on are asked for first, so the misses
    overlap (the writes, and so the result, are in the same order)."""
    cdef int64_t i, t, key, ahead, position, spilled = 0
    for i in range(n):
        if i + SLOT_INSERT_AHEAD < n:
            for t in range(tables):
                ahead = k[(i + SLOT_INSERT_AHEAD) * tables + t]
                __builtin_prefetch(sc + ahead, 1, 1)
                __builtin_prefetch(sr + ahead * slots, 1, 1)
        for t in range(tables):
            key = k[i * tables + t]
            position = sc[key]
            if position < slots:
                sr[key * slots + position] = r[i]
            else:
                spk[spilled] = key
                spr[spilled] = r[i]
                spilled += 1
            sc[key] = position + 1
    return spilled


cdef enum:
    # Rows whose keys (24 x 8 bytes each) stay in L1/L2 while each table places them.
    BASE_INDEX_BLOCK_ROWS = 256


def base_index(keys, bits):
    """See ``engram._core._ref.base_index``: the same arrays, compiled: a counting sort
    (one pass to count each key, one to place the entries), where the twin sorts all
    n * tables keys. Entries are placed in blocks of rows, table by table within a
    block: a table's keys own one range, so the counters and output being written
    stay in cache (all tables at once, or whole tables at a time, were memory-bound)."""
    if type(keys) is not np.ndarray or keys.dtype != np.int64 or keys.ndim != 2 or not keys.flags.c_contiguous \
            or type(bits) is not int or not 1 <= bits <= 30:
        _check_base_index_args(keys, bits)
    cdef int64_t n = keys.shape[0]
    cdef int64_t tables = keys.shape[1]
    cdef int64_t span = 1 << bits
    cdef int64_t count = tables * span
    cdef int64_t total = n * tables
    start = np.zeros(count + 1, np.int64)
    rows = np.empty(total, np.int64)
    cursor = np.empty(count, np.int64)
    cdef const int64_t *k = <const int64_t *>_data(keys)
    cdef int64_t *st = <int64_t *>_data(start)
    cdef int64_t *out = <int64_t *>_data(rows)
    cdef int64_t *cur = <int64_t *>_data(cursor)
    cdef int64_t e, i, t, key, block, block_end
    cdef bint bad = False
    with nogil:
        for e in range(total):
            key = k[e] - (e % tables) * span
            if key < 0 or key >= span:
                bad = True
                break
            st[k[e] + 1] += 1
        if not bad:
            for key in range(count):
                st[key + 1] += st[key]
                cur[key] = st[key]
            block = 0
            while block < n:
                block_end = block + BASE_INDEX_BLOCK_ROWS if block + BASE_INDEX_BLOCK_ROWS < n else n
                for t in range(tables):
                    for i in range(block, block_end):
                        key = k[i * tables + t]
                        out[cur[key]] = i
                        cur[key] += 1
                block = block_end
    if bad:
        _check_base_index_args(keys, bits)  # raises the twin's error
    return rows, start

