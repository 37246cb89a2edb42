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

import numpy as np

from engram import _core

TABLES = 24
BITS = 14
_SEED = 0x5EED_DEDB
# 1: float32 signs of the embedding (the fixed-lane cosine kernel); 2: int8 codes x int8 planes.
SCHEME = 2
_PLANE_SCALE = 32.0
# Rows past the sorted base live in a dict of buckets; re-sorting 100k rows every
# 16384 stores costs about a microsecond per store and bounds the dict's size.
DELTA_ROWS_MAX = 16384


class DedupIndex:
    def __init__(self, dimension: int) -> None:
        rng = np.random.Generator(np.random.PCG64(_SEED))
        gauss = rng.standard_normal((TABLES * BITS, dimension))
        self._planes = np.ascontiguousarray(np.clip(np.rint(gauss * _PLANE_SCALE), -127, 127).astype(np.int8))
        # Keys of table t lie in [t << BITS, (t + 1) << BITS): the tables' sorted key
        # arrays concatenated in table order form one sorted array, searched at once.
        self._base_keys = np.zeros(0, np.int64)
        self._base_rows = np.zeros(0, np.int64)
        self._base_n = 0
        self._delta: dict[int, list[int]] = {}

    def keys_for(self, embeddings: np.ndarray) -> np.ndarray:
        """Keys, int64 of shape (b, TABLES), for float32 embeddings (b, d); table t's keys lie in [t << BITS, (t+1) << BITS)."""
        codes, _ = _core.quantize_rows(np.ascontiguousarray(embeddings, np.float32))
        return self.keys_for_codes(codes)

    def keys_for_codes(self, codes: np.ndarray) -> np.ndarray:
        """Keys for rows already quantised by ``_core.quantize_rows`` (the same keys as ``keys_for``)."""
        return _core.lsh_keys(np.ascontiguousarray(codes), self._planes, BITS)

    def rebuild(self, keys: np.ndarray) -> None:
        """Index rows 0..n-1 whose keys are ``keys`` (n, TABLES) in the sorted base."""
        n = keys.shape[0]
        key_parts = []
        row_parts = []
        for table in range(TABLES):
            # 14-bit keys as uint16: NumPy sorts them with a radix sort, in linear time.
            local = (keys[:, table] - (table << BITS)).astype(np.uint16)
            order = np.argsort(local, kind="stable")
            key_parts.append(local[order].astype(np.int64) + (table << BITS))
            row_parts.append(order.astype(np.int64))
        self._base_keys = np.concatenate(key_parts) if n else np.zeros(0, np.int64)
        self._base_rows = np.concatenate(row_parts) if n else np.zeros(0, np.int64)
        self._base_n = n
        self._delta = {}

    def add(self, row: int, keys: list[int]) -> None:
        """Index a row appended after the base (the base is re-sorted every DELTA_ROWS_MAX rows)."""
        delta = self._delta
        for key in keys:
            bucket = delta.get(key)
            if bucket is None:
                delta[key] = [row]
            else:
                bucket.append(row)

    def needs_rebuild(self, n: int) -> bool:
        """Whether the rows past the base (scanned linearly) have grown enough to re-sort."""
        return n - self._base_n > DELTA_ROWS_MAX

    def candidates_batch(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Candidates of many queries at once: (query index, row) pairs, int64, sorted by
        query then row, without duplicates (dead rows included). ``keys``: (b, TABLES).

        Query j's rows are exactly ``candidates(keys[j])``; one ``searchsorted`` serves
        the whole batch.
        """
        b = keys.shape[0]
        query_parts = []
        row_parts = []
        if self._base_keys.size and b:
            flat = keys.reshape(-1)
            lo = self._base_keys.searchsorted(flat, side="left")
            hi = self._base_keys.searchsorted(flat, side="right")
            lengths = hi - lo
            total = int(lengths.sum())
            if total:
                # Concatenate the ranges base_rows[lo:hi] without a Python loop.
                ends = np.cumsum(lengths)
                index = np.arange(total, dtype=np.int64) - np.repeat(ends - lengths - lo, lengths)
                row_parts.append(self._base_rows[index])
                query_parts.append(np.repeat(np.arange(flat.size, dtype=np.int64) // TABLES, lengths))
        delta = self._delta
        if delta:
            # Python lists first, one array at the end: a bucket is a row or two.
            delta_rows: list[int] = []
            delta_queries: list[int] = []
            get = delta.get
            for j, query in enumerate(keys.tolist()):
                found = len(delta_rows)
                for key in query:
                    bucket = get(key)
                    if bucket:
                        delta_rows.extend(bucket)
                delta_queries.extend([j] * (len(delta_rows) - found))
            if delta_rows:
                row_parts.append(np.array(delta_rows, np.int64))
                query_parts.append(np.array(delta_queries, np.int64))
        if not row_parts:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        rows = np.concatenate(row_parts)
        queries = np.concatenate(query_parts)
        # One sort of (query, row) as a single int64 key, then drop repeats.
        n = int(rows.max()) + 1
        combined = np.unique(queries * n + rows)
        return combined // n, combined % n

    def candidates(self, keys: list[int]) -> np.ndarray:
        """Rows sharing at least one key, sorted, without duplicates (dead rows included)."""
        query = np.asarray(keys, np.int64)
        parts = []
        if self._base_keys.size:
            lo = self._base_keys.searchsorted(query, side="left")
            hi = self._base_keys.searchsorted(query, side="right")
            rows = self._base_rows
            parts = [rows[a:b] for a, b in zip(lo.tolist(), hi.tolist()) if b > a]
        delta = self._delta
        for key in keys:
            bucket = delta.get(key)
            if bucket:
                parts.append(np.asarray(bucket, np.int64))
        if not parts:
            return np.zeros(0, np.int64)
        return np.unique(np.concatenate(parts))
