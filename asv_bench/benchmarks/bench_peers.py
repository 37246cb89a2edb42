"""Peers side by side in asv: engram beside numpy, sqlite and (if installed) chromadb on
the same vectors, measured in one ``setup_cache`` so every ratio comes from one run.

``track_`` methods report each peer's query P50/P99 (ms), inserts per second, recall@10
and the same-run ratios engram/peer. n = 10k by default; ``ENGRAM_BENCH_LARGE=1`` adds
100k (chromadb's HNSW build alone takes minutes there). A missing peer reports NaN.
Also: text recall through the engine at 100k, which bench_core measures at 10k only.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np

import engram

from ._percentiles import PERCENTILES, bench_dir, sample, vectors

SIZES = [10_000] + ([100_000] if os.environ.get("ENGRAM_BENCH_LARGE") == "1" else [])
PEERS = ["engram", "chromadb", "numpy", "sqlite"]
NAN = float("nan")


class Peers:
    params = (SIZES, PEERS)
    param_names = ["n", "peer"]
    timeout = 3600

    def setup_cache(self):
        from engram.bench.peers import run_peers

        return {n: run_peers(n=n, queries=100, directory=bench_dir()) for n in SIZES}

    def _row(self, cache, n, peer):
        return cache[n]["peers"].get(peer)

    def track_query_p50_ms(self, cache, n, peer):
        row = self._row(cache, n, peer)
        return row.get("p50_ms", NAN) if row else NAN

    def track_query_p99_ms(self, cache, n, peer):
        row = self._row(cache, n, peer)
        return row.get("p99_ms", NAN) if row else NAN

    def track_inserts_per_s(self, cache, n, peer):
        row = self._row(cache, n, peer)
        return row["insert_per_s"] if row else NAN

    def track_recall_at_10(self, cache, n, peer):
        row = self._row(cache, n, peer)
        return row.get("recall_at_10", NAN) if row else NAN

    def track_engram_over_peer_query_p50(self, cache, n, peer):
        e, row = self._row(cache, n, "engram"), self._row(cache, n, peer)
        if not e or not row or "p50_ms" not in row:
            return NAN
        return e["p50_ms"] / row["p50_ms"]

    def track_engram_over_peer_inserts(self, cache, n, peer):
        e, row = self._row(cache, n, "engram"), self._row(cache, n, peer)
        return e["insert_per_s"] / row["insert_per_s"] if e and row else NAN


class TextRecallLarge:
    """recall(text=...) through the engine at 100k memories (bench_core covers 10k)."""

    params = [PERCENTILES]
    param_names = ["stat"]
    timeout = 1200

    def setup_cache(self):
        directory = tempfile.mkdtemp(dir=bench_dir())
        n = 100_000
        data = vectors(n, seed=11)
        with engram.open(directory) as db:
            sp = db.space("bench", dedup_threshold=None, durability="async")
            for start in range(0, n, 5000):
                sp.remember_many([{"content": f"memory {i} about topic {i % 101} and item {i % 13}", "embedding": data[i]}
                                  for i in range(start, min(n, start + 5000))])
            sp.recall(text="topic 1 item", k=10)  # builds the lazy text index
            it = iter(range(10**9))
            result = sample(lambda: sp.recall(text=f"topic {next(it) % 101} item", k=10), 100)
        shutil.rmtree(directory)
        return result

    def track_text_recall_100k_ms(self, cache, stat):
        return cache[stat]
