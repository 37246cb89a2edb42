"""Shared helpers: time a callable many times and report percentiles, so asv's
history shows P50/P95/P99 and throughput, not only a mean."""

from __future__ import annotations

import os
import resource
import time
from typing import Any, Callable

import numpy as np

PERCENTILES = ["p50", "p95", "p99"]


def sample(fn: Callable[[], Any], count: int) -> dict[str, float]:
    """Latencies in ms at each percentile, plus ops/s and peak RSS in MB."""
    times = np.empty(count)
    start_all = time.perf_counter()
    for i in range(count):
        start = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - start
    total = time.perf_counter() - start_all
    ms = times * 1e3
    return {
        "p50": float(np.percentile(ms, 50)),
        "p95": float(np.percentile(ms, 95)),
        "p99": float(np.percentile(ms, 99)),
        "ops_per_s": count / total,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def vectors(count: int, dimension: int = 768, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, dimension), dtype=np.float32)


def bench_dir() -> str:
    return os.environ.get("ENGRAM_BENCH_DIR", "/tmp")
