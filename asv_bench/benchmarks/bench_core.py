"""Single-node core: remember (durable, relaxed), recall by embedding and text, spread,
decay, WAL append and replay, checkpoint and reopen, a 12-space multi-tenant mix.

Each class measures once in ``setup_cache`` and reports P50/P95/P99 (ms), throughput
and peak RSS through parameterised ``track_`` methods; ``time_`` methods give asv's
own timing of the hot call. ``ENGRAM_BENCH_LARGE=1`` adds the 1M-row recall.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

import engram
from engram import _core
from engram.storage.wal import WriteAheadLog

from ._percentiles import PERCENTILES, bench_dir, sample, vectors

RECALL_SIZES = [10_000, 100_000] + ([1_000_000] if os.environ.get("ENGRAM_BENCH_LARGE") == "1" else [])


def _filled_space(n: int, directory: str, **config):
    db = engram.open(directory)
    sp = db.space("bench", dedup_threshold=None, durability="async", **config)
    data = vectors(n)
    for start in range(0, n, 5000):
        sp.remember_many([{"content": f"memory {i} about topic {i % 101} and item {i % 13}", "embedding": data[i]}
                          for i in range(start, min(n, start + 5000))])
    return db, sp


class RecallByEmbedding:
    params = (RECALL_SIZES, PERCENTILES)
    param_names = ["n", "stat"]
    timeout = 600

    def setup_cache(self):
        out = {}
        for n in RECALL_SIZES:
            rng = np.random.default_rng(1)
            matrix = rng.standard_normal((n, 768), dtype=np.float32)
            inv = _core.row_inv_norms(matrix)
            queries = rng.standard_normal((64, 768), dtype=np.float32)
            _core.topk_cosine(matrix, inv, queries[0], 10)
            it = iter(range(10**9))
            ours = sample(lambda: _core.topk_cosine(matrix, inv, queries[next(it) % 64], 10), 50)
            floor = sample(lambda: np.max(matrix), 50)
            out[n] = {"ours": ours, "floor": floor}
        return out

    def track_latency_ms(self, cache, n, stat):
        return cache[n]["ours"][stat]

    def track_ratio_to_bandwidth_floor(self, cache, n, stat):
        return cache[n]["ours"][stat] / cache[n]["floor"][stat]


class RecallOnSpace:
    """recall() through the engine at 10k: embedding, text, and a 3-hop spread."""

    params = [PERCENTILES]
    param_names = ["stat"]
    timeout = 600

    def setup_cache(self):
        directory = tempfile.mkdtemp(dir=bench_dir())
        db, sp = _filled_space(10_000, directory)
        ids = [m.id for m in sp.list(limit=10_000)]
        rng = np.random.default_rng(2)
        for a in range(0, 2000):
            for b in rng.integers(0, 10_000, 3):
                if ids[a] != ids[int(b)]:
                    sp.associate(ids[a], ids[int(b)], 0.9)
        queries = vectors(64, seed=3)
        it = iter(range(10**9))
        result = {
            "embedding": sample(lambda: sp.recall(embedding=queries[next(it) % 64], k=10), 200),
            "text": sample(lambda: sp.recall(text=f"topic {next(it) % 101} item", k=10), 200),
            "spread": sample(lambda: sp.spread([ids[next(it) % 2000]], max_hops=3), 200),
        }
        db.close()
        shutil.rmtree(directory)
        return result

    def track_embedding_ms(self, cache, stat):
        return cache["embedding"][stat]

    def track_text_ms(self, cache, stat):
        return cache["text"][stat]

    def track_spread_3hop_ms(self, cache, stat):
        return cache["spread"][stat]


class RecallBatchOnSpace:
    """recall_many() through the engine: a lone query against a batch of 16 sharing one
    scan (what the HTTP server does with recalls that arrive together), 10k and 100k
    rows, effects off so the scan is what is measured. Reports per-query latency of
    each and the batch's throughput gain; the 100k gain is the engine's share of the
    HTTP target (16 clients >= 4x one client)."""

    params = (RECALL_SIZES, PERCENTILES)
    param_names = ["n", "stat"]
    timeout = 900

    def setup_cache(self):
        out = {}
        for n in RECALL_SIZES:
            directory = tempfile.mkdtemp(dir=bench_dir())
            db, sp = _filled_space(n, directory, effects=())
            queries = [{"embedding": q, "k": 10} for q in vectors(256, seed=5)]
            it = iter(range(10**9))
            sp.recall_many(queries[:16])
            one = sample(lambda: sp.recall_many([queries[next(it) % 256]]), 60)
            batch = sample(lambda: sp.recall_many([queries[(next(it) + j) % 256] for j in range(16)]), 20)
            out[n] = {"one": one, "batch16_per_query": {key: value / 16 for key, value in batch.items() if key in PERCENTILES},
                      "gain": batch["ops_per_s"] * 16 / one["ops_per_s"]}
            db.close()
            shutil.rmtree(directory)
        return out

    def track_one_query_ms(self, cache, n, stat):
        return cache[n]["one"][stat]

    def track_batch16_per_query_ms(self, cache, n, stat):
        return cache[n]["batch16_per_query"][stat]

    def track_batch16_throughput_gain(self, cache, n, stat):
        return cache[n]["gain"]


class Remember:
    """Durable (fsync'd, group commit) and relaxed (async) remember, one writer."""

    params = [["sync", "async"], PERCENTILES + ["ops_per_s"]]
    param_names = ["durability", "stat"]
    timeout = 600

    def setup_cache(self):
        data = vectors(3000, seed=4)
        out = {}
        for durability in ("sync", "async"):
            directory = tempfile.mkdtemp(dir=bench_dir())
            with engram.open(directory) as db:
                sp = db.space("bench", durability=durability)
                it = iter(range(10**9))
                out[durability] = sample(lambda: sp.remember("a memory", embedding=data[next(it)], confidence=0.8), 2000)
            shutil.rmtree(directory)
        return out

    def track_remember(self, cache, durability, stat):
        return cache[durability][stat]


class Decay:
    """Reading with decay: recall over 10k memories spread across 30 days, each decay function."""

    params = [["exponential", "power_law", "two_component", "hybrid"]]
    param_names = ["decay"]

    def setup(self, decay):
        self.directory = tempfile.mkdtemp(dir=bench_dir())
        now = [datetime(2026, 1, 1, tzinfo=timezone.utc)]
        self.db = engram.open(self.directory, clock=lambda: now[0])
        self.sp = self.db.space("bench", decay=decay, dedup_threshold=None, durability="async")
        data = vectors(10_000, seed=5)
        base = now[0]
        self.sp.remember_many([{"content": f"m{i}", "embedding": data[i], "when": base - timedelta(minutes=4 * i)}
                               for i in range(10_000)])
        now[0] = base + timedelta(days=1)
        self.query = vectors(1, seed=6)[0]

    def teardown(self, decay):
        self.db.close()
        shutil.rmtree(self.directory)

    def time_recall_100_with_decay(self, decay):
        self.sp.recall(embedding=self.query, k=100)


class WalAppendReplay:
    params = [PERCENTILES + ["ops_per_s"]]
    param_names = ["stat"]
    timeout = 600

    def setup_cache(self):
        directory = Path(tempfile.mkdtemp(dir=bench_dir()))
        payload = os.urandom(3400)
        wal = WriteAheadLog(directory)
        records, _ = wal.recover()
        list(records)
        append = sample(lambda: wal.wait_durable(wal.append([(1, payload)] * 32, 0)), 500)
        wal.close()
        start = time.perf_counter()
        wal = WriteAheadLog(directory)
        records, report = wal.recover()
        count = sum(1 for _ in records)
        replay_s = time.perf_counter() - start
        wal.close()
        shutil.rmtree(directory)
        return {"append32": append, "replay_records_per_s": count / replay_s}

    def track_append_batch32_durable(self, cache, stat):
        return cache["append32"][stat]

    def track_replay_records_per_s(self, cache, stat):
        return cache["replay_records_per_s"]


class CheckpointReopen:
    params = [[10_000, 100_000]]
    param_names = ["n"]
    timeout = 900

    def setup_cache(self):
        out = {}
        for n in self.params[0]:
            directory = tempfile.mkdtemp(dir=bench_dir())
            db, sp = _filled_space(n, directory)
            start = time.perf_counter()
            sp.checkpoint()
            checkpoint_s = time.perf_counter() - start
            db.close()
            start = time.perf_counter()
            with engram.open(directory) as db2:
                assert len(db2.space("bench")) == n
            out[n] = {"checkpoint_s": checkpoint_s, "reopen_s": time.perf_counter() - start}
            shutil.rmtree(directory)
        return out

    def track_checkpoint_s(self, cache, n):
        return cache[n]["checkpoint_s"]

    def track_reopen_s(self, cache, n):
        return cache[n]["reopen_s"]


class MultiTenantMix:
    """12 spaces, each 2,000 memories; a mix of remember (1) and recall (4) spread over spaces."""

    params = [PERCENTILES + ["ops_per_s"]]
    param_names = ["stat"]
    timeout = 600

    def setup_cache(self):
        directory = tempfile.mkdtemp(dir=bench_dir())
        db = engram.open(directory)
        spaces = [db.space(f"tenant-{t:02d}") for t in range(12)]
        data = vectors(24_000 + 5000, seed=7)
        for t, sp in enumerate(spaces):
            sp.remember_many([{"content": f"t{t} m{i}", "embedding": data[t * 2000 + i]} for i in range(2000)])
        it = iter(range(10**9))

        def op():
            i = next(it)
            sp = spaces[i % 12]
            if i % 5 == 0:
                sp.remember(f"new {i}", embedding=data[24_000 + i % 5000])
            else:
                sp.recall(embedding=data[(i * 7) % 24_000], k=10)

        result = sample(op, 2000)
        db.close()
        shutil.rmtree(directory)
        return result

    def track_mix(self, cache, stat):
        return cache[stat]
