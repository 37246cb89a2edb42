"""Single-node core benchmarks, each a ratio against a baseline measured in the same run.

    python -m engram.bench.core [--n 100000] [--writers 32] [--seconds 3] [--json]

- recall: exact top-10 over n x d against the memory-bandwidth floor (NumPy
  reading the matrix once, ``np.max``) and against NumPy ``M @ q`` + argpartition.
- group commit: durable ``remember`` from W threads against a raw loop of one
  ``write`` of W records + ``fdatasync`` (the same batch size, the same disk),
  and against SQLite (WAL mode, synchronous=FULL) with W threads; the three take
  turns (3 rounds) so that a drifting disk treats them alike.
- lone durable remember: latency percentiles against a raw 4 KB append + fdatasync,
  the two calls alternating.
- bulk: durable ``remember_many`` of batches of 1,000 into a space that already holds
  10,000 memories: memories/s and P50/P95/P99 per batch.
- reopen: time to open a space of n memories from its checkpoint.
Machines here are noisy: read the ratios, not the absolute times.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

import engram
from engram import _core

RECORD_BYTES = 3400  # a 768-d float32 embedding plus a short content, as a WAL record


def percentiles(samples_s: list[float]) -> dict[str, float]:
    array = np.array(samples_s) * 1e3
    return {
        "p50_ms": float(np.percentile(array, 50)),
        "p95_ms": float(np.percentile(array, 95)),
        "p99_ms": float(np.percentile(array, 99)),
        "count": int(array.size),
    }


def _timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def bench_recall(n: int, d: int = 768, repeat: int = 30) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((n, d), dtype=np.float32)
    inv = _core.row_inv_norms(matrix)
    query = rng.standard_normal(d, dtype=np.float32)
    _core.topk_cosine(matrix, inv, query, 10)  # warm up (JIT, page faults)
    floor = _timed(lambda: np.max(matrix), repeat)
    ours = _timed(lambda: _core.topk_cosine(matrix, inv, query, 10), repeat)
    numpy_scan = _timed(lambda: np.argpartition(matrix @ query, -10)[-10:], repeat)
    batch = rng.standard_normal((16, d), dtype=np.float32)
    batched = _timed(lambda: _core.topk_cosine_batch(matrix, inv, batch, 10), max(3, repeat // 5))
    result = {
        "n": n,
        "impl": _core.IMPL,
        "ours": percentiles(ours),
        "bandwidth_floor": percentiles(floor),
        "numpy_matmul_argpartition": percentiles(numpy_scan),
        "batch16_per_query_p50_ms": float(np.median(batched)) * 1e3 / 16,
    }
    result["ratio_to_floor_p50"] = result["ours"]["p50_ms"] / result["bandwidth_floor"]["p50_ms"]
    result["speedup_vs_numpy_p50"] = result["numpy_matmul_argpartition"]["p50_ms"] / result["ours"]["p50_ms"]
    result["batch16_speedup_per_query"] = result["ours"]["p50_ms"] / result["batch16_per_query_p50_ms"]
    return result


def _raw_group_fsync(fd: int, batch: int, seconds: float) -> tuple[int, float]:
    """Records written and seconds taken by a loop of one ``write`` of ``batch`` records + ``fdatasync``."""
    payload = os.urandom(RECORD_BYTES) * batch
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        os.write(fd, payload)
        os.fdatasync(fd)
        count += batch
    return count, time.perf_counter() - start


def _run_threads(writers: int, seconds: float, body: Callable[[int, Callable[[], bool]], int]) -> tuple[int, float]:
    """Operations done and seconds taken by ``writers`` threads running ``body`` for ``seconds``."""
    counts = [0] * writers
    barrier = threading.Barrier(writers + 1)
    stop_at = [0.0]

    def run(w: int) -> None:
        barrier.wait()
        counts[w] = body(w, lambda: time.perf_counter() < stop_at[0])

    threads = [threading.Thread(target=run, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + seconds + 1.0  # set before the barrier opens
    barrier.wait()
    start = time.perf_counter()
    stop_at[0] = start + seconds
    for t in threads:
        t.join()
    return sum(counts), time.perf_counter() - start


def _vectors(count: int, d: int = 768) -> np.ndarray:
    return np.random.default_rng(1).standard_normal((count, d), dtype=np.float32)


# NumPy's ufunc loops keep the GIL up to 500 elements (NPY_BEGIN_THREADS_THRESHOLDED).
_ADD_PIECE = 384


def _distinct(vectors: np.ndarray, w: int, i: int) -> np.ndarray:
    """Writer ``w``'s ``i``-th embedding: the sum of two pool vectors, a different pair each
    call, so that stores are distinct memories (cosine about 0.5 between two of them), not
    dedup hits on a few thousand repeated vectors. Costs one 768-float add per call, for
    Engram and SQLite alike. The add runs in pieces of at most _ADD_PIECE floats: NumPy
    releases the GIL for a longer loop, and with 32 threads each release handed the GIL
    to another thread, so the bench measured its own vector arithmetic's convoy."""
    a_index = (w * 131 + i) % len(vectors)
    b_index = (w * 977 + i * 7 + 1 + i // len(vectors)) % len(vectors)
    a, b = vectors[a_index], vectors[b_index if b_index != a_index else (b_index + 1) % len(vectors)]
    out = np.empty_like(a)
    for start in range(0, len(a), _ADD_PIECE):
        np.add(a[start : start + _ADD_PIECE], b[start : start + _ADD_PIECE], out=out[start : start + _ADD_PIECE])
    return out


def bench_group_commit(directory: Path, writers: int, seconds: float, dedup: bool, rounds: int = 3) -> dict[str, Any]:
    """Durable remember from ``writers`` threads against raw fdatasync and SQLite.

    The disk here is shared and its fsync time drifts by several times within a
    minute, so the three run in turns (raw, Engram, SQLite, ``rounds`` times, each
    for ``seconds / rounds``) and each rate is its total over its turns: the ratios
    compare the three under the same conditions.
    """
    vectors = _vectors(4096)
    slice_s = seconds / rounds
    db_path = directory / f"sqlite-{dedup}.db"
    setup = sqlite3.connect(db_path)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE memories (id INTEGER PRIMARY KEY, content TEXT, embedding BLOB)")
    setup.commit()
    setup.close()
    written = [0] * writers  # per-writer sequence numbers, continued across turns

    def sqlite_writer(w: int, going: Callable[[], bool]) -> int:
        conn = sqlite3.connect(db_path, timeout=60, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA synchronous=FULL")
        i = 0
        while going():
            conn.execute("INSERT INTO memories (content, embedding) VALUES (?, ?)",
                         (f"writer {w} memory {i}", _distinct(vectors, w, i).tobytes()))
            i += 1
        conn.close()
        return i

    totals = {"raw": [0, 0.0], "engram": [0, 0.0], "sqlite": [0, 0.0]}
    raw_fd = os.open(directory / f"raw-{dedup}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        with engram.open(directory / f"engram-{dedup}") as db:
            sp = db.space("bench", dedup_threshold=0.95 if dedup else None)

            def engram_writer(w: int, going: Callable[[], bool]) -> int:
                i = written[w]
                while going():
                    sp.remember(f"writer {w} memory {i}", embedding=_distinct(vectors, w, i), confidence=0.8)
                    i += 1
                done = i - written[w]
                written[w] = i
                return done

            for _ in range(rounds):
                for name, run in (("raw", lambda: _raw_group_fsync(raw_fd, writers, slice_s)),
                                  ("engram", lambda: _run_threads(writers, slice_s, engram_writer)),
                                  ("sqlite", lambda: _run_threads(writers, slice_s, sqlite_writer))):
                    count, elapsed = run()
                    totals[name][0] += count
                    totals[name][1] += elapsed
            fsyncs = sp.stats()["fsyncs"]
    finally:
        os.close(raw_fd)
    rate = {name: count / elapsed for name, (count, elapsed) in totals.items()}
    return {
        "writers": writers,
        "dedup": dedup,
        "rounds": rounds,
        "engram_per_s": rate["engram"],
        "raw_fdatasync_same_batch_per_s": rate["raw"],
        "sqlite_wal_full_per_s": rate["sqlite"],
        "ratio_to_raw": rate["engram"] / rate["raw"],
        "ratio_to_sqlite": rate["engram"] / rate["sqlite"],
        "engram_fsyncs": fsyncs,
        "engram_records_per_fsync": totals["engram"][0] / max(1, fsyncs),
    }


def bench_lone_remember(directory: Path, count: int) -> dict[str, Any]:
    vectors = _vectors(count)
    fd = os.open(directory / "raw4k.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    block = os.urandom(4096)

    def raw_once() -> None:
        os.write(fd, block)
        os.fdatasync(fd)

    raw: list[float] = []
    ours: list[float] = []
    with engram.open(directory / "lone") as db:
        sp = db.space("bench")
        # Alternate the two, one call each, so that both see the same disk moment.
        for i in range(count):
            start = time.perf_counter()
            raw_once()
            middle = time.perf_counter()
            sp.remember("a lone memory", embedding=vectors[i], confidence=0.8)
            raw.append(middle - start)
            ours.append(time.perf_counter() - middle)
    os.close(fd)
    result = {"engram": percentiles(ours), "raw_4k_fdatasync": percentiles(raw)}
    result["p99_ratio"] = result["engram"]["p99_ms"] / result["raw_4k_fdatasync"]["p99_ms"]
    return result


def bench_bulk(directory: Path, batches: int, batch_items: int = 1000, preload: int = 10_000) -> dict[str, Any]:
    """Durable remember_many (the HTTP bulk endpoint's engine call) at a 10k-memory space."""
    rng = np.random.default_rng(2)
    total = preload + batches * batch_items
    vectors = rng.standard_normal((total, 768), dtype=np.float32)
    with engram.open(directory / "bulk") as db:
        sp = db.space("bench")  # defaults: durability "sync", dedup at 0.95
        for start in range(0, preload, batch_items):
            sp.remember_many([{"content": f"preloaded memory {i} about topic {i % 97}", "embedding": vectors[i]}
                              for i in range(start, start + batch_items)])
        times = []
        for b in range(batches):
            base = preload + b * batch_items
            items = [{"content": f"bulk memory {i} about topic {i % 97}", "embedding": vectors[i], "confidence": 0.8}
                     for i in range(base, base + batch_items)]
            start = time.perf_counter()
            ids = sp.remember_many(items)
            times.append(time.perf_counter() - start)
            assert len(ids) == batch_items
        assert len(sp) == total
    result = {"batch_items": batch_items, "preload": preload, "per_batch": percentiles(times)}
    result["memories_per_s"] = batches * batch_items / sum(times)
    return result


def bench_reopen(directory: Path, n: int) -> dict[str, Any]:
    vectors = _vectors(n)
    path = directory / "reopen"
    with engram.open(path) as db:
        sp = db.space("bench", dedup_threshold=None, durability="async")
        for start in range(0, n, 1000):
            sp.remember_many([{"content": f"memory number {i} about topic {i % 97}", "embedding": vectors[i]}
                              for i in range(start, min(n, start + 1000))])
        sp.checkpoint()
    start = time.perf_counter()
    with engram.open(path) as db:
        count = len(db.space("bench"))
        elapsed = time.perf_counter() - start
    assert count == n
    return {"n": n, "reopen_s": elapsed}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="rows for recall and reopen")
    parser.add_argument("--writers", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--lone", type=int, default=2000, help="lone remembers to time")
    parser.add_argument("--bulk-batches", type=int, default=20, help="remember_many batches of 1,000 to time")
    parser.add_argument("--only", choices=["recall", "group", "lone", "bulk", "reopen"], action="append")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    chosen = set(args.only or ["recall", "group", "lone", "bulk", "reopen"])
    results: dict[str, Any] = {"impl": _core.IMPL}
    with tempfile.TemporaryDirectory(dir=os.environ.get("ENGRAM_BENCH_DIR")) as tmp:
        directory = Path(tmp)
        if "recall" in chosen:
            results["recall"] = bench_recall(args.n)
        if "group" in chosen:
            results["group_commit"] = bench_group_commit(directory, args.writers, args.seconds, dedup=True)
            results["group_commit_no_dedup"] = bench_group_commit(directory, args.writers, args.seconds, dedup=False)
        if "lone" in chosen:
            results["lone_remember"] = bench_lone_remember(directory, args.lone)
        if "bulk" in chosen:
            results["bulk_remember_many"] = bench_bulk(directory, args.bulk_batches)
        if "reopen" in chosen:
            results["reopen"] = bench_reopen(directory, args.n)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
