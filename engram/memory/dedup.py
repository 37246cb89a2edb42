"""Near-duplicate candidates for dedup on store: random-hyperplane LSH over matrix rows.

An exact scan per stored memory would cost a full pass over the matrix (about
9 ms at 100k rows), which would cap durable inserts near 100/s. Instead each
embedding gets ``TABLES`` keys of ``BITS`` sign bits against fixed random
hyperplanes; rows sharing a key in any table are candidates, and the caller
checks candidates with the exact cosine. The signs are taken on the row's int8
codes (kept anyway for the reduced-precision scan) against int8 hyperplanes
(Gaussian, scaled by 32 and rounded): exact integer dot products, three times
cheaper than float32 ones and order-free, so every machine gets the same keys.
Quantisation moves a 768-d vector by about 0.4 degrees, next to the 18 degrees
of a 0.95 cosine, so the collision rates below are unchanged. Two vectors at cosine 0.95 (18 degrees
apart) agree on a bit with probability 0.9, so they share a key in at least one
of 24 tables of 14 bits with probability 1 - (1 - 0.9**14)**24 = 0.998; at
cosine 0.98 the miss rate is below 1e-5. A random pair collides in a table with
probability 2**-14: about 150 candidates per query at 100k rows.

Layout: the caller keeps every row's keys in an (n, TABLES) array. The index is
a sorted base over the first rows (searched with one ``searchsorted``; rebuilding
it is a radix sort per table, which keeps reopening fast) plus a dict of
buckets for the rows added since. Rows that died are filtered out by the
caller's ``alive`` array, so removal costs nothing; the base is rebuilt when the
matrix is compacted and rows are renumbered.

Determinism: the hyperplanes come from a fixed seed and the signs from exact
integer arithmetic, so every node and process computes the same keys and makes
the same dedup decision for the same state. Candidates are sorted rows.
``SCHEME`` names this key function; checkpoints record it, and keys stored under
another scheme are recomputed on load.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable

import numpy as np

from engram import _core

TABLES = 24
BITS = 14
_SEED = 0x5EED_DEDB
# 1: float32 signs of the embedding (the fixed-lane cosine kernel); 2: int8 codes x int8 planes.
SCHEME = 2
_PLANE_SCALE = 32.0
# Rows past the sorted base go to the delta; re-sorting 100k rows every 16384
# stores costs about a microsecond per store and bounds the delta's size.
DELTA_ROWS_MAX = 16384
KEYS = TABLES << BITS  # every key is below this: tables index arrays directly
# Delta rows per key held in the slot table; the rare bucket past it spills to a dict.
DELTA_SLOTS = 4
# Rows added but not yet in the delta's arrays (added in one vectorised step).
PENDING_ROWS_MAX = 1024
# A batch of at least this many new rows (a bulk store) is looked up in two halves,
# the second on another thread: the kernel releases the GIL for such batches, so a
# two-core machine does both at once. Each row's result depends on that row alone,
# so the split changes the time, never the output. (prepare_rows splits such a
# batch itself, writing both halves into the same arrays.)
PARALLEL_ROWS_MIN = 1024
_PARALLEL = (os.cpu_count() or 1) >= 2


class DedupIndex:
    """Rows by LSH key: a sorted base (CSR over the key space) plus a delta of newer rows.

    The delta is a slot table, ``DELTA_SLOTS`` rows per key, with a count per key
    and a dict for the few buckets that overflow. New rows are queued by ``add``
    and put in the table in one NumPy step at the next lookup, so a batch of
    stores costs a handful of array operations, not a dict update per key.
    """

    def __init__(self, dimension: int) -> None:
        rng = np.random.Generator(np.random.PCG64(_SEED))
        gauss = rng.standard_normal((TABLES * BITS, dimension))
        self._planes = np.ascontiguousarray(np.clip(np.rint(gauss * _PLANE_SCALE), -127, 127).astype(np.int8))
        # Base: rows sorted by key; rows of key k are _base_rows[_base_start[k]:_base_start[k + 1]].
        self._base_rows = np.zeros(0, np.int64)
        self._base_start: np.ndarray | None = None
        self._base_n = 0
        # Delta (allocated on first use; pages are touched only where keys land).
        self._slot_rows: np.ndarray | None = None
        self._slot_count: np.ndarray | None = None
        self._spill: dict[int, list[int]] = {}
        self._pending_rows: list[int] = []
        self._pending_keys: list[list[int]] = []

    def keys_for(self, embeddings: np.ndarray) -> np.ndarray:
        """Keys, int64 of shape (b, TABLES), for float32 embeddings (b, d); table t's keys lie in [t << BITS, (t+1) << BITS)."""
        codes, _ = _core.quantize_rows(np.ascontiguousarray(embeddings, np.float32))
        return self.keys_for_codes(codes)

    def prepare(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Inverse norms, int8 codes, scales and keys of new rows (b, d) float32, C-contiguous,
        in one kernel call (``_core.prepare_rows``: the bits of the separate kernels)."""
        return _core.prepare_rows(vectors, self._planes, BITS)

    def keys_for_codes(self, codes: np.ndarray) -> np.ndarray:
        """Keys for rows already quantised by ``_core.quantize_rows`` (the same keys as ``keys_for``)."""
        return _core.lsh_keys(np.ascontiguousarray(codes), self._planes, BITS)

    def rebuild(self, keys: np.ndarray) -> None:
        """Index rows 0..n-1 whose keys are ``keys`` (n, TABLES) in the sorted base; empty the delta."""
        n = keys.shape[0]
        if n:
            # A counting sort over the key space (_core.base_index): each key's rows, ascending.
            self._base_rows, self._base_start = _core.base_index(np.ascontiguousarray(keys, np.int64), BITS)
        else:
            self._base_rows = np.zeros(0, np.int64)
            self._base_start = None
        self._base_n = n
        if self._slot_count is not None:
            self._slot_count.fill(0)
        self._spill = {}
        self._pending_rows = []
        self._pending_keys = []

    def add(self, row: int, keys: list[int]) -> None:
        """Index a row appended after the base (the base is re-sorted every DELTA_ROWS_MAX rows)."""
        self._pending_rows.append(row)
        self._pending_keys.append(keys)
        if len(self._pending_rows) >= PENDING_ROWS_MAX:
            self._flush()

    def add_rows(self, rows: np.ndarray, keys: np.ndarray) -> None:
        """Index rows (int64 (k,)) appended after the base, with their keys (int64 (k, TABLES)),
        in one step: what ``add`` does for each in turn, without queueing them."""
        self._flush()  # rows queued by add go first, as they would one by one
        self._insert(rows, keys)

    def _flush(self) -> None:
        """Put the queued rows in the slot table (or the spill dict when a key's slots are full)."""
        if not self._pending_rows:
            return
        rows = np.array(self._pending_rows, np.int64)
        keys = np.array(self._pending_keys, np.int64)
        self._pending_rows = []
        self._pending_keys = []
        self._insert(rows, keys)

    def _insert(self, rows: np.ndarray, keys: np.ndarray) -> None:
        if self._slot_count is None:
            self._slot_rows = np.empty((KEYS, DELTA_SLOTS), np.int64)
            self._slot_count = np.zeros(KEYS, np.int64)
        assert self._slot_rows is not None
        spilled_keys, spilled_rows = _core.slot_insert(self._slot_rows, self._slot_count, rows, keys)
        for key, row in zip(spilled_keys.tolist(), spilled_rows.tolist()):
            self._spill.setdefault(key, []).append(row)

    def needs_rebuild(self, n: int) -> bool:
        """Whether the rows past the base have grown enough to re-sort."""
        return n - self._base_n > DELTA_ROWS_MAX

    def candidates_batch(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Candidates of many queries at once: (query index, row) pairs, int64, sorted by
        query then row, without duplicates (dead rows included). ``keys``: (b, TABLES).

        Query j's rows are exactly ``candidates(keys[j])``; the whole batch is a few
        gathers over the base's offsets and the delta's slots.
        """
        self._flush()
        b = keys.shape[0]
        flat = np.ascontiguousarray(keys, np.int64).reshape(-1)
        owner = np.arange(flat.size, dtype=np.int64) // TABLES
        query_parts = []
        row_parts = []
        if self._base_start is not None and b:
            lo = self._base_start[flat]
            lengths = self._base_start[flat + 1] - lo
            total = int(lengths.sum())
            if total:
                # Concatenate the ranges base_rows[lo:lo + length] without a Python loop.
                ends = np.cumsum(lengths)
                index = np.arange(total, dtype=np.int64) - np.repeat(ends - lengths - lo, lengths)
                row_parts.append(self._base_rows[index])
                query_parts.append(np.repeat(owner, lengths))
        if self._slot_count is not None and self._slot_rows is not None:
            counts = self._slot_count[flat]
            held = np.minimum(counts, DELTA_SLOTS)
            if held.any():
                mask = np.arange(DELTA_SLOTS) < held[:, None]
                row_parts.append(self._slot_rows[flat][mask])
                query_parts.append(np.repeat(owner, held))
            if self._spill:
                spilled = np.nonzero(counts > DELTA_SLOTS)[0]
                for position in spilled.tolist():
                    bucket = self._spill[int(flat[position])]
                    row_parts.append(np.array(bucket, np.int64))
                    query_parts.append(np.full(len(bucket), owner[position], np.int64))
        if not row_parts:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        rows = np.concatenate(row_parts)
        queries = np.concatenate(query_parts)
        # One sort of (query, row) as a single int64 key, then drop repeats (a plain
        # sort: np.unique's hash path is several times slower on these sizes).
        n = int(rows.max()) + 1
        combined = queries * n + rows
        combined.sort()
        if combined.size > 1:
            combined = combined[np.concatenate(([True], combined[1:] != combined[:-1]))]
        return combined // n, combined % n

    def matches_batch(self, keys: np.ndarray, eligible: np.ndarray, alive: np.ndarray, episodic: np.ndarray,
                      matrix: np.ndarray, inv_norms: np.ndarray, queries: np.ndarray, query_inv_norms: np.ndarray,
                      threshold: float, codes: np.ndarray | None = None, scales: np.ndarray | None = None,
                      query_codes: np.ndarray | None = None,
                      query_scales: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Indexed rows at or above ``threshold`` for each eligible query: (query, row, score), in (query, row) order.

        Rows are this index's candidates (``candidates_batch``) that are ``alive`` and
        not ``episodic``; scores are ``pair_scores`` bits. One kernel call does the
        lookup, the filtering and the scoring (two at once for a large batch, see
        PARALLEL_ROWS_MIN); rows in spilled buckets are added here.
        """
        self._flush()

        def lookup(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            part = slice(lo, hi)
            found = _core.dedup_matches(
                keys[part], eligible[part], self._base_start, self._base_rows, self._slot_rows, self._slot_count, alive,
                episodic, matrix, inv_norms, queries[part], query_inv_norms[part], threshold, codes, scales,
                None if query_codes is None else query_codes[part], None if query_scales is None else query_scales[part],
            )
            return (found[0] + lo if lo else found[0]), found[1], found[2]

        b = keys.shape[0]
        if b < PARALLEL_ROWS_MIN or not _PARALLEL:
            query, rows, scores = lookup(0, b)
        else:
            first, second = _in_two_halves(b, lookup)
            query, rows, scores = (np.concatenate(pair) for pair in zip(first, second))
        if self._spill:
            assert self._slot_count is not None
            extra_query: list[int] = []
            extra_rows: list[int] = []
            # Only keys whose bucket overflowed have rows in the spill dict.
            overflowed = (self._slot_count[keys] > DELTA_SLOTS) & eligible[:, None]
            for i, t in zip(*(part.tolist() for part in np.nonzero(overflowed))):
                for row in self._spill[int(keys[i, t])]:
                    extra_query.append(i)
                    extra_rows.append(row)
            if extra_rows:
                eq = np.array(extra_query, np.int64)
                er = np.array(extra_rows, np.int64)
                keep = alive[er] & ~episodic[er]
                eq, er = eq[keep], er[keep]
                es = _core.pair_scores(matrix, inv_norms, er, queries, query_inv_norms, eq)
                passing = es >= np.float32(threshold)
                query = np.concatenate([query, eq[passing]])
                rows = np.concatenate([rows, er[passing]])
                scores = np.concatenate([scores, es[passing]])
                n = int(rows.max()) + 1 if rows.size else 1
                _, first = np.unique(query * n + rows, return_index=True)  # sorted, one per (query, row)
                query, rows, scores = query[first], rows[first], scores[first]
        return query, rows, scores

    def candidates(self, keys: list[int]) -> np.ndarray:
        """Rows sharing at least one key with one query, sorted, without duplicates (dead rows included)."""
        _, rows = self.candidates_batch(np.asarray(keys, np.int64).reshape(1, TABLES))
        return rows


def _in_two_halves(b: int, run: Callable[[int, int], Any]) -> tuple[Any, Any]:
    """``(run(0, h), run(h, b))`` for h = b // 2, the second on a thread of its own (a
    plain thread, not a pool: nothing to reset in a forked child). The first half's
    error, if any, is raised first, as the rows' order would have it."""
    h = b // 2
    second: list[Any] = [None, None]

    def work() -> None:
        try:
            second[0] = run(h, b)
        except BaseException as exc:  # handed to the caller below
            second[1] = exc

    thread = threading.Thread(target=work, name="engram-dedup-half", daemon=True)
    thread.start()
    try:
        first = run(0, h)
    finally:
        thread.join()
    if second[1] is not None:
        raise second[1]
    return first, second[0]
