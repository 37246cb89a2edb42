"""Exact cosine top-k: a parallel scan at the memory-bandwidth floor, then selection.

Scores come from the C kernel in ``scan.h`` (driven by OpenMP in ``_scan.pyx``):
it reads each row once for every query of a batch while the row is in cache, so
concurrent recalls share one pass over the matrix. Each dot product accumulates
in ``DOT_LANES`` float32 lanes in a fixed order with no fast-math and no FMA, so
the bits equal the NumPy twin's (``_ref.topk_cosine_batch``) and do not depend on
thread count or SIMD width. Selection (a heap in ``_scan.pyx``) keeps every row
tied with the k-th score so that the caller can break ties by id.
"""

from __future__ import annotations

import numpy as np

from engram._core._scan import approx_scores_batch as _approx_scores_batch
from engram._core._scan import scores_batch, select_candidates
from engram._core._scan import screen_batch as _screen_batch
from engram._core._scan import approx_quantises_queries as _approx_quantises_queries
from engram._core._ref import _check_topk_args, _query_inv_norms
from engram._core._store import row_inv_norms

def cosine_scores(
    matrix: np.ndarray, inv_norms: np.ndarray, queries: np.ndarray, query_inv_norms: np.ndarray | None = None
) -> np.ndarray:
    """See ``engram._core._ref.cosine_scores``: same contract, same bits, compiled."""
    _check_topk_args(matrix, inv_norms, queries, 0, None)
    # The compiled norms (the twin's bits): the twin's NumPy lane loop took ~200 us a batch.
    q_inv = _query_inv_norms(queries, query_inv_norms) if query_inv_norms is not None else row_inv_norms(queries)
    return scores_batch(matrix, inv_norms, np.ascontiguousarray(queries), q_inv)


def select_topk(scores: np.ndarray, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """See ``engram._core._ref.select_topk``: same contract, compiled."""
    if scores.dtype != np.float32 or scores.ndim != 1:
        raise ValueError("scores: must be a 1-d float32 array; example: np.zeros(10, np.float32)")
    if k < 0:
        raise ValueError(f"k: {k} is negative; allowed: k >= 0; example: 10")
    if mask is not None and (mask.dtype != np.bool_ or mask.shape != scores.shape):
        raise ValueError(f"mask: must be bool of shape {scores.shape} or None; example: np.ones(n, bool)")
    if not scores.flags.c_contiguous:
        scores = np.ascontiguousarray(scores)
    idx = select_candidates(scores, k, mask)
    values = scores[idx]
    # Stable sort of indices already ascending: score descending, then index ascending.
    order = np.argsort(-values, kind="stable")
    return idx[order], values[order]


def topk_cosine_batch(
    matrix: np.ndarray,
    inv_norms: np.ndarray,
    queries: np.ndarray,
    k: int,
    mask: np.ndarray | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """See ``engram._core._ref.topk_cosine_batch``: same contract, compiled."""
    _check_topk_args(matrix, inv_norms, queries, k, mask)
    scores = cosine_scores(matrix, inv_norms, queries)
    return [select_topk(row, k, mask) for row in scores]


def topk_cosine(
    matrix: np.ndarray,
    inv_norms: np.ndarray,
    query: np.ndarray,
    k: int,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One query's top-k; see ``topk_cosine_batch``."""
    if not isinstance(query, np.ndarray) or query.ndim != 1:
        raise ValueError("query: must be a 1-d float32 array; example: np.ones(768, np.float32)")
    return topk_cosine_batch(matrix, inv_norms, query.reshape(1, -1), k, mask)[0]


def approx_scores_batch(codes: np.ndarray, scales: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """See ``engram._core._ref.approx_scores_batch``: same contract (not the same bits), compiled."""
    if codes.dtype != np.int8 or codes.ndim != 2 or scales.shape != (codes.shape[0],):
        raise ValueError("codes/scales: must be int8 (n, d) and float32 (n,); example: quantize_rows(m)")
    if queries.dtype != np.float32 or queries.ndim != 2 or queries.shape[1] != codes.shape[1]:
        raise ValueError(f"queries: must be float32 of shape (b, {codes.shape[1]}); example: np.ones((1, d), np.float32)")
    return _approx_scores_batch(codes, np.ascontiguousarray(scales, np.float32), np.ascontiguousarray(queries))


def screen_batch(approx, inv_norms, scale_inv, q_inv, row_coeff, constant, ks, after, before, alive_mask, created, matrix, queries):
    """See ``engram._core._ref.screen_batch``: same contract, same rows and bits, compiled,
    with the GIL released for the work (queries in parallel for large batches)."""
    if alive_mask.dtype != np.bool_:
        raise ValueError("alive_mask: must be a bool array; example: np.ones(n, bool)")
    return _screen_batch(np.ascontiguousarray(approx, np.float32), np.ascontiguousarray(inv_norms, np.float32),
                         np.ascontiguousarray(scale_inv, np.float32), np.ascontiguousarray(q_inv, np.float32),
                         np.ascontiguousarray(row_coeff, np.float64), np.ascontiguousarray(constant, np.float64),
                         np.ascontiguousarray(ks, np.int64), np.ascontiguousarray(after, np.int64),
                         np.ascontiguousarray(before, np.int64), np.ascontiguousarray(alive_mask),
                         np.ascontiguousarray(created, np.int64), matrix, np.ascontiguousarray(queries, np.float32))


def approx_quantises_queries() -> bool:
    """See ``engram._core._ref.approx_quantises_queries``: True with the VNNI kernel."""
    return bool(_approx_quantises_queries())
