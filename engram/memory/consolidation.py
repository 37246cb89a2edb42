"""Consolidation: recurring episodes become semantic patterns, the same on every replica.

How it works, in order (``consolidate``):

1. Selection. The newest ``max_episodes`` episodes by the key (when_ns, id): episodes
   with equal times are ordered by id, so the cut never depends on input order.
2. Canonical order. The selected episodes sorted by id (Python string order, i.e. by
   code point). Row numbers in this order are what the clustering's tie rule uses.
3. Clustering. ``engram._core.linkage`` (average linkage, cosine distance, fixed-order
   float64 distances, ties merged by (distance, smaller id, larger id)).
4. Cut. Flat clusters with scipy's ``fcluster(Z, t, "distance")`` semantics at
   ``t = 1.0 - cut_similarity`` (float64; 0.19999999999999996 for the default 0.8):
   a subtree is one cluster when the largest merge height inside it is <= t.
5. Size. Clusters with fewer than ``min_cluster_size`` episodes are dropped.
6. Patterns. A pattern's sources are its episode ids, sorted. Its embedding is the
   centroid of the sources' unit vectors: each vector divided by its norm (squares
   summed column by column in float64), summed in float64 in source order, divided
   by the count, then cast to float32. Its strength is the mean cosine of its sources
   to that float32 centroid (cosines from ``engram._core.cosine_distances``, averaged
   with ``math.fsum``), clamped to [0, 1]. first/last_seen_ns are the min/max times of
   its sources. Its id is ``"pat_"`` + the first 32 hex digits of the sha256 of its
   sorted source ids (each as a u32 little-endian byte length then UTF-8 bytes).
7. Merging. While two patterns have centroids whose cosine (1 - cosine distance, in
   float64) is strictly greater than ``merge_similarity``, merge the pair with the
   highest cosine, ties broken by (smaller pattern id, larger pattern id); the merged
   pattern is rebuilt from the union of the sources as in step 6 and compared again.
8. Output sorted by pattern id.

Nothing here reads a clock, a set's or dict's iteration order, the hash seed or a
BLAS routine, so the same episodes, as a set, give the same patterns byte for byte
(``signature``) across processes, input orders, thread counts and builds. This module
is pure: it does not store patterns; the space does that.
"""

from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from engram import _core
from engram.errors import ValidationError

__all__ = ["Pattern", "consolidate", "pattern_id", "signature"]

PATTERN_ID_PREFIX = "pat_"
PATTERN_ID_HEX_CHARS = 32
I64_MIN = -(2**63)
I64_MAX = 2**63 - 1


@dataclass(frozen=True, slots=True, eq=False)
class Pattern:
    """A semantic pattern distilled from recurring episodes.

    ``embedding`` is a read-only float32 vector. Two patterns are equal when every
    field is, embedding bytes included.
    """

    id: str
    source_ids: tuple[str, ...]
    embedding: np.ndarray
    strength: float
    first_seen_ns: int
    last_seen_ns: int

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Pattern):
            return NotImplemented
        return (
            self.id == other.id
            and self.source_ids == other.source_ids
            and self.embedding.dtype == other.embedding.dtype
            and self.embedding.shape == other.embedding.shape
            and self.embedding.tobytes() == other.embedding.tobytes()
            and struct.pack("<d", self.strength) == struct.pack("<d", other.strength)
            and self.first_seen_ns == other.first_seen_ns
            and self.last_seen_ns == other.last_seen_ns
        )

    def __hash__(self) -> int:
        return hash((self.id, self.strength))


def pattern_id(source_ids: Sequence[str]) -> str:
    """The id of the pattern made of these sources: a hash of their sorted ids."""
    digest = hashlib.sha256()
    for source in sorted(source_ids):
        raw = source.encode("utf-8")
        digest.update(struct.pack("<I", len(raw)))
        digest.update(raw)
    return PATTERN_ID_PREFIX + digest.hexdigest()[:PATTERN_ID_HEX_CHARS]


def signature(patterns: Sequence[Pattern]) -> str:
    """sha256 hex of the canonical encoding of ``patterns`` (taken in id order).

    Per pattern: id, sorted source ids (each u32 LE byte length + UTF-8), embedding
    (u32 LE length + float32 LE bytes), strength (float64 LE), first and last seen
    (i64 LE). Two runs agree on it exactly when they produced the same patterns.
    """
    digest = hashlib.sha256(b"engram-patterns-v1")
    digest.update(struct.pack("<Q", len(patterns)))

    def text(value: str) -> None:
        raw = value.encode("utf-8")
        digest.update(struct.pack("<I", len(raw)))
        digest.update(raw)

    for pattern in sorted(patterns, key=lambda p: p.id):
        text(pattern.id)
        digest.update(struct.pack("<I", len(pattern.source_ids)))
        for source in sorted(pattern.source_ids):
            text(source)
        embedding = np.asarray(pattern.embedding, dtype="<f4")
        digest.update(struct.pack("<I", embedding.size))
        digest.update(embedding.tobytes())
        digest.update(struct.pack("<d", pattern.strength))
        digest.update(struct.pack("<qq", pattern.first_seen_ns, pattern.last_seen_ns))
    return digest.hexdigest()


def _check_args(
    ids: Any,
    embeddings: Any,
    whens_ns: Any,
    max_episodes: Any,
    cut_similarity: Any,
    min_cluster_size: Any,
    merge_similarity: Any,
) -> tuple[list[str], np.ndarray, list[int]]:
    if isinstance(ids, (str, bytes)) or not isinstance(ids, (Sequence, np.ndarray)):
        raise ValidationError("ids", f"is a {type(ids).__name__}", "a sequence of episode id strings", "['ep-1', 'ep-2']")
    id_list = list(ids)
    for position, value in enumerate(id_list):
        if not isinstance(value, str) or not value:
            raise ValidationError("ids", f"item {position} is {value!r}", "non-empty strings", "'ep-1'")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError("ids", f"item {position} is not valid Unicode", "strings that encode as UTF-8", "'ep-1'") from None
    if len(set(id_list)) != len(id_list):
        seen: set[str] = set()
        duplicate = next(value for value in id_list if value in seen or seen.add(value))  # type: ignore[func-returns-value]
        raise ValidationError("ids", f"{duplicate!r} appears more than once", "unique ids", "['ep-1', 'ep-2']")
    n = len(id_list)
    example = f"np.zeros(({n}, 768), np.float32)"
    if not isinstance(embeddings, np.ndarray) or embeddings.dtype != np.float32 or embeddings.ndim != 2:
        raise ValidationError("embeddings", "is not a 2-d float32 array", "a float32 array of shape (len(ids), d)", example)
    if embeddings.shape[0] != n:
        raise ValidationError("embeddings", f"has {embeddings.shape[0]} rows for {n} ids", "one row per id", example)
    if embeddings.shape[1] < 1:
        raise ValidationError("embeddings", "has 0 columns", "at least one column", example)
    if not np.isfinite(embeddings).all():
        raise ValidationError("embeddings", "contains NaN or infinity", "finite values", example)
    if isinstance(whens_ns, (str, bytes)) or not isinstance(whens_ns, (Sequence, np.ndarray)):
        raise ValidationError("whens_ns", f"is a {type(whens_ns).__name__}", "a sequence of int nanoseconds", "[1_700_000_000_000_000_000]")
    when_list = []
    for position, value in enumerate(whens_ns):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not I64_MIN <= int(value) <= I64_MAX:
            raise ValidationError(
                "whens_ns", f"item {position} is {value!r}", "signed 64-bit integer nanoseconds since the epoch", "1_700_000_000_000_000_000"
            )
        when_list.append(int(value))
    if len(when_list) != n:
        raise ValidationError("whens_ns", f"has {len(when_list)} items for {n} ids", "one time per id", "[0] * len(ids)")
    if isinstance(max_episodes, bool) or not isinstance(max_episodes, int) or max_episodes < 1:
        raise ValidationError("max_episodes", f"is {max_episodes!r}", "an int >= 1", "5000")
    if isinstance(min_cluster_size, bool) or not isinstance(min_cluster_size, int) or min_cluster_size < 2:
        raise ValidationError("min_cluster_size", f"is {min_cluster_size!r}", "an int >= 2", "3")
    for field, value, example_value in (("cut_similarity", cut_similarity, "0.8"), ("merge_similarity", merge_similarity, "0.9")):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not -1.0 <= float(value) <= 1.0:
            raise ValidationError(field, f"is {value!r}", "a number in [-1, 1]", example_value)
    return id_list, embeddings, when_list


def _flat_clusters(Z: np.ndarray, n: int, threshold: float) -> list[list[int]]:
    """scipy's fcluster(Z, threshold, "distance"): leaves grouped, each group ascending,
    groups in order of their smallest leaf."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    # A subtree is kept whole when the largest height inside it is <= threshold; a
    # kept node's children are kept too, so uniting the leaves of every kept merge
    # yields exactly the maximal kept subtrees.
    height_max = [0.0] * (n - 1)
    leaf_of = list(range(n)) + [0] * (n - 1)
    for step in range(n - 1):
        a = int(Z[step, 0])
        b = int(Z[step, 1])
        height = float(Z[step, 2])
        if a >= n:
            height = max(height, height_max[a - n])
        if b >= n:
            height = max(height, height_max[b - n])
        height_max[step] = height
        leaf_of[n + step] = leaf_of[a]
        if height <= threshold:
            ra = root(leaf_of[a])
            rb = root(leaf_of[b])
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for leaf in range(n):
        groups.setdefault(root(leaf), []).append(leaf)
    return [groups[key] for key in sorted(groups)]


class _Builder:
    """Builds patterns from groups of canonical row numbers (ascending = id order)."""

    def __init__(self, ids: list[str], X: np.ndarray, whens_ns: list[int]) -> None:
        self.ids = ids
        self.X = X
        self.whens_ns = whens_ns
        X64 = X.astype(np.float64)
        columns = np.ascontiguousarray(X64.T)
        squares = np.zeros(X.shape[0], np.float64)
        for column in columns:  # fixed order: column by column, each an exact IEEE op
            squares += column * column
        norms = np.sqrt(squares)
        self.units = np.zeros_like(X64)
        np.divide(X64, norms[:, None], out=self.units, where=norms[:, None] > 0.0)

    def build(self, rows: list[int]) -> Pattern:
        assert rows == sorted(rows)
        assert len(rows) >= 1
        total = np.zeros(self.X.shape[1], np.float64)
        for row in rows:  # fixed order: source id order
            total += self.units[row]
        centroid = (total / np.float64(len(rows))).astype(np.float32)
        cosines = 1.0 - _core.cosine_distances(self.X[rows], centroid[None, :])[:, 0]
        strength = min(1.0, max(0.0, math.fsum(cosines.tolist()) / len(rows)))
        sources = tuple(self.ids[row] for row in rows)
        times = [self.whens_ns[row] for row in rows]
        centroid.setflags(write=False)
        return Pattern(
            id=pattern_id(sources),
            source_ids=sources,
            embedding=centroid,
            strength=strength,
            first_seen_ns=min(times),
            last_seen_ns=max(times),
        )


def _merge_close(builder: _Builder, groups: list[list[int]], merge_similarity: float) -> list[Pattern]:
    """Greedy merging of patterns whose centroids are more than merge_similarity alike."""
    rows_of: dict[str, list[int]] = {}
    patterns = []
    for rows in groups:
        pattern = builder.build(rows)
        rows_of[pattern.id] = rows
        patterns.append(pattern)
    patterns.sort(key=lambda p: p.id)
    if len(patterns) < 2:
        return patterns
    E = np.stack([p.embedding for p in patterns])
    D = _core.cosine_distances(E, E)
    while len(patterns) >= 2:
        # Only pairs i < j in id order count; the first minimum in row-major order is
        # the pair with the smallest (distance, smaller id, larger id).
        masked = np.where(np.triu(np.ones(D.shape, np.bool_), 1), D, np.inf)
        flat = int(np.argmin(masked))
        i, j = divmod(flat, D.shape[0])
        if not 1.0 - float(masked[i, j]) > merge_similarity:
            break
        rows = sorted(rows_of[patterns[i].id] + rows_of[patterns[j].id])
        merged = builder.build(rows)
        rows_of[merged.id] = rows
        keep = [k for k in range(len(patterns)) if k not in (i, j)]
        patterns = [patterns[k] for k in keep]
        D = D[np.ix_(keep, keep)]
        position = next((k for k, p in enumerate(patterns) if p.id > merged.id), len(patterns))
        row = np.empty(len(patterns), np.float64)
        if patterns:
            row = _core.cosine_distances(merged.embedding[None, :], np.stack([p.embedding for p in patterns]))[0]
        patterns.insert(position, merged)
        D = np.insert(D, position, row, axis=0)
        D = np.insert(D, position, np.insert(row, position, 0.0), axis=1)
    return patterns


def consolidate(
    ids: Sequence[str],
    embeddings: np.ndarray,
    whens_ns: Sequence[int],
    *,
    max_episodes: int = 5000,
    cut_similarity: float = 0.8,
    min_cluster_size: int = 3,
    merge_similarity: float = 0.9,
) -> list[Pattern]:
    """Semantic patterns of recurring episodes, sorted by pattern id (see the module doc).

    ``ids[i]``, ``embeddings[i]`` (float32) and ``whens_ns[i]`` describe episode i; the
    order of the episodes does not matter. Episodes whose embedding is all zeros are
    at distance 1 from everything and so never join a cluster at cut_similarity > 0.

    Raises ValidationError if ids are not unique non-empty strings, embeddings is not
    a finite float32 (len(ids), d) array, whens_ns are not one int64 per id,
    max_episodes < 1, min_cluster_size < 2, or a similarity is outside [-1, 1].
    """
    id_list, embeddings, when_list = _check_args(
        ids, embeddings, whens_ns, max_episodes, cut_similarity, min_cluster_size, merge_similarity
    )
    newest = sorted(range(len(id_list)), key=lambda i: (when_list[i], id_list[i]))[-max_episodes:]
    chosen = sorted(newest, key=lambda i: id_list[i])
    if len(chosen) < max(2, min_cluster_size):
        return []
    X = np.ascontiguousarray(embeddings[chosen])
    chosen_ids = [id_list[i] for i in chosen]
    chosen_whens = [when_list[i] for i in chosen]
    Z = _core.linkage(X, "average")
    threshold = 1.0 - float(cut_similarity)
    groups = [rows for rows in _flat_clusters(Z, len(chosen), threshold) if len(rows) >= min_cluster_size]
    if not groups:
        return []
    builder = _Builder(chosen_ids, X, chosen_whens)
    patterns = _merge_close(builder, groups, float(merge_similarity))
    return sorted(patterns, key=lambda p: p.id)
