"""Consolidation: end-to-end ``consolidate`` and the clustering kernel against scipy.

n = 500, 2,000 and 5,000 episodes of 768 dimensions drawn around topics (one per ~20
episodes, within-topic cosine about 0.83, so the 0.8 cut finds real clusters).
``time_`` methods give asv's own timing; ``ConsolidationSummary`` measures ours and
``scipy.cluster.hierarchy.linkage(X, "average", "cosine")`` in the same run (so the
ratio is not skewed by a busy machine on another day) and the peak extra memory of
each, from tracemalloc (numpy and scipy allocate through it), in MB.
Target (DESIGN.md): consolidate of 5,000 under 1 s; scipy takes about 4.5 s here.
"""

from __future__ import annotations

import time
import tracemalloc

import numpy as np

from engram import _core
from engram.memory.consolidation import consolidate

SIZES = [500, 2000, 5000]
DIMENSION = 768


def episodes(n: int, seed: int = 0) -> tuple[list[str], np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    topics = max(1, n // 20)
    centers = rng.standard_normal((topics, DIMENSION))
    X = (centers[rng.integers(0, topics, n)] + 0.45 * rng.standard_normal((n, DIMENSION))).astype(np.float32)
    ids = [f"ep-{i:06d}" for i in rng.permutation(n)]
    whens = rng.integers(1_700_000_000 * 10**9, 1_800_000_000 * 10**9, n).tolist()
    return ids, X, whens


def _scipy_linkage():
    try:
        from scipy.cluster.hierarchy import linkage
    except ImportError:  # pragma: no cover - scipy is a test/bench extra
        raise NotImplementedError("scipy is not installed")
    return linkage


def _measure(fn, repeat: int) -> tuple[float, float]:
    """(best wall seconds over ``repeat`` runs, peak traced MB of one run)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    tracemalloc.start()
    try:
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return best, peak / 2**20


class Linkage:
    params = [SIZES]
    param_names = ["n"]
    timeout = 600
    number = 1
    repeat = 3

    def setup(self, n):
        self.X = episodes(n)[1]

    def time_ours(self, n):
        _core.linkage(self.X, "average")

    def time_scipy(self, n):
        _scipy_linkage()(self.X, "average", "cosine")

    def peakmem_ours(self, n):
        _core.linkage(self.X, "average")


class Consolidate:
    params = [SIZES]
    param_names = ["n"]
    timeout = 600
    number = 1
    repeat = 3

    def setup(self, n):
        self.ids, self.X, self.whens = episodes(n)

    def time_consolidate(self, n):
        consolidate(self.ids, self.X, self.whens)

    def peakmem_consolidate(self, n):
        consolidate(self.ids, self.X, self.whens)


class ConsolidationSummary:
    """Ours and scipy measured in one run: seconds, ratio, peak extra memory."""

    params = [SIZES]
    param_names = ["n"]
    timeout = 900

    def setup_cache(self):
        scipy_linkage = _scipy_linkage()
        out = {}
        for n in SIZES:
            ids, X, whens = episodes(n)
            _core.linkage(X[:50], "average")  # warm: thread pool, first-call costs
            ours_s, ours_mb = _measure(lambda: _core.linkage(X, "average"), 3)
            scipy_s, scipy_mb = _measure(lambda: scipy_linkage(X, "average", "cosine"), 1 if n >= 5000 else 3)
            end_s, end_mb = _measure(lambda: consolidate(ids, X, whens), 3)
            out[n] = {
                "linkage_s": ours_s,
                "scipy_s": scipy_s,
                "consolidate_s": end_s,
                "linkage_mb": ours_mb,
                "scipy_mb": scipy_mb,
                "consolidate_mb": end_mb,
            }
        return out

    def track_consolidate_seconds(self, cache, n):
        return cache[n]["consolidate_s"]

    track_consolidate_seconds.unit = "seconds"

    def track_linkage_seconds(self, cache, n):
        return cache[n]["linkage_s"]

    track_linkage_seconds.unit = "seconds"

    def track_scipy_linkage_seconds(self, cache, n):
        return cache[n]["scipy_s"]

    track_scipy_linkage_seconds.unit = "seconds"

    def track_speedup_over_scipy(self, cache, n):
        """scipy linkage time / our end-to-end consolidate time, same run."""
        return cache[n]["scipy_s"] / cache[n]["consolidate_s"]

    track_speedup_over_scipy.unit = "ratio"

    def track_peak_extra_memory_mb(self, cache, n):
        """Peak memory allocated during one consolidate (tracemalloc), MB."""
        return cache[n]["consolidate_mb"]

    track_peak_extra_memory_mb.unit = "MB"

    def track_linkage_peak_extra_memory_mb(self, cache, n):
        return cache[n]["linkage_mb"]

    track_linkage_peak_extra_memory_mb.unit = "MB"

    def track_scipy_peak_extra_memory_mb(self, cache, n):
        return cache[n]["scipy_mb"]

    track_scipy_peak_extra_memory_mb.unit = "MB"
