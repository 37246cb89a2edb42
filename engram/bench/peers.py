"""Engram beside the stores a user would pick instead, on the same data in one run.

    python -m engram.bench.peers [--n 100000] [--queries 200] [--batch 1000] [--json]

One data set (``n`` x 768 float32, a mixture of 64 Gaussian clusters, seeded) and one
set of held-out queries go into each peer:

- engram: ``engram.open`` + ``remember_many`` in batches (durability "sync": each batch
  is fsync'd before it returns), exact top-10 ``recall``. Dedup and the cognitive
  effects are off so the comparison is plain vector storage and search.
- chromadb (optional extra ``peers``): embedded ``PersistentClient``, explicit
  embeddings (no embedder, which would download a model), cosine HNSW built while
  adding.
- numpy: the matrix in memory, ``M @ q`` + argpartition over normalised rows; this is
  also the exact answer recall@10 is measured against.
- sqlite3 (standard library): WAL mode, ``synchronous=FULL``, the same batches as one
  transaction each; the everyday anchor for a durable local write. No vector search.

For each: inserts per second, build time (work after the inserts before queries run:
engram's checkpoint, numpy's save + fsync; chromadb builds while adding), single-query
P50/P99, recall@10 against the exact answer, reopen time (open + first query) and
bytes on disk. A peer whose package is missing is listed as missing, not fatal.
Machines here are shared and noisy: compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["make_data", "exact_topk", "run_peers", "format_table"]

PEERS = ("engram", "chromadb", "numpy", "sqlite")
K = 10


def make_data(n: int, queries: int, dimension: int = 768, clusters: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Clustered unit vectors and held-out queries from the same clusters."""
    assert n > 0
    assert queries > 0
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, dimension)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)

    def draw(count: int) -> np.ndarray:
        labels = rng.integers(0, clusters, count)
        noise = rng.standard_normal((count, dimension)).astype(np.float32) * np.float32(1.2 / dimension ** 0.5)
        v = centers[labels] + noise
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        return v.astype(np.float32)

    return draw(n), draw(queries)


def exact_topk(data: np.ndarray, queries: np.ndarray, k: int = K, block: int = 65536) -> np.ndarray:
    """Exact top-k row indices by cosine (rows are unit vectors); ties by ascending index."""
    best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_index = np.zeros((len(queries), 0), dtype=np.int64)
    for start in range(0, len(data), block):
        scores = queries @ data[start:start + block].T
        index = np.broadcast_to(np.arange(start, start + scores.shape[1]), scores.shape)
        best_scores = np.concatenate([best_scores, scores], axis=1)
        best_index = np.concatenate([best_index, index], axis=1)
        order = np.lexsort((best_index, -best_scores), axis=1)[:, :k]
        best_scores = np.take_along_axis(best_scores, order, axis=1)
        best_index = np.take_along_axis(best_index, order, axis=1)
    return best_index


def _pct_ms(samples_s: list[float]) -> dict[str, float]:
    a = np.asarray(samples_s) * 1e3
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99))}


def _dir_bytes(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def _recall_at_k(found: list[list[int]], truth: np.ndarray) -> float:
    hits = sum(len(set(f[:K]) & set(t.tolist())) for f, t in zip(found, truth))
    return hits / (K * len(truth))


def _query_loop(fn: Callable[[np.ndarray], list[int]], queries: np.ndarray) -> tuple[list[list[int]], list[float]]:
    fn(queries[0])  # warm up: JIT, page cache, lazy index loads
    found, times = [], []
    for q in queries:
        t0 = time.perf_counter()
        ids = fn(q)
        times.append(time.perf_counter() - t0)
        found.append(ids)
    return found, times


def bench_engram(directory: Path, data: np.ndarray, queries: np.ndarray, batch: int) -> dict[str, Any]:
    import engram

    path = directory / "engram"
    config = {"dedup_threshold": None, "effects": (), "durability": "sync", "dimension": int(data.shape[1])}
    t0 = time.perf_counter()
    with engram.open(path) as db:
        sp = db.space("peers", **config)
        for start in range(0, len(data), batch):
            sp.remember_many([{"content": f"vector {i}", "embedding": data[i], "id": f"v{i}"}
                              for i in range(start, min(len(data), start + batch))])
        insert_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        sp.checkpoint()
        build_s = time.perf_counter() - t1

        def query(q: np.ndarray) -> list[int]:
            return [int(h.id[1:]) for h in sp.recall(embedding=q, k=K)]

        found, times = _query_loop(query, queries)
    t2 = time.perf_counter()
    with engram.open(path) as db:
        sp = db.space("peers")
        sp.recall(embedding=queries[0], k=K)
        reopen_s = time.perf_counter() - t2
    return {"insert_per_s": len(data) / insert_s, "build_s": build_s, "found": found, "times": times,
            "reopen_s": reopen_s, "disk_bytes": _dir_bytes(path),
            "note": "durable (fsync per batch), exact scan; build = checkpoint"}


def _chroma_forget_clients() -> None:
    # chromadb caches one system per path, so a second PersistentClient would not reopen anything.
    try:
        from chromadb.api.client import SharedSystemClient

        SharedSystemClient.clear_system_cache()
    except (ImportError, AttributeError):
        pass


def bench_chromadb(directory: Path, data: np.ndarray, queries: np.ndarray, batch: int) -> dict[str, Any]:
    import chromadb  # optional extra: pip install -e '.[peers]'

    path = directory / "chroma"
    settings = chromadb.config.Settings(anonymized_telemetry=False, allow_reset=True)
    client = chromadb.PersistentClient(path=str(path), settings=settings)
    col = client.create_collection("peers", metadata={"hnsw:space": "cosine"}, embedding_function=None)
    batch = min(batch, client.get_max_batch_size())
    t0 = time.perf_counter()
    for start in range(0, len(data), batch):
        stop = min(len(data), start + batch)
        col.add(ids=[f"v{i}" for i in range(start, stop)], embeddings=data[start:stop])
    insert_s = time.perf_counter() - t0

    def query(q: np.ndarray) -> list[int]:
        res = col.query(query_embeddings=[q], n_results=K, include=[])
        return [int(i[1:]) for i in res["ids"][0]]

    found, times = _query_loop(query, queries)
    del col, client
    _chroma_forget_clients()
    t2 = time.perf_counter()
    client = chromadb.PersistentClient(path=str(path), settings=settings)
    col = client.get_collection("peers", embedding_function=None)
    col.query(query_embeddings=[queries[0]], n_results=K, include=[])
    reopen_s = time.perf_counter() - t2
    del col, client
    _chroma_forget_clients()
    return {"insert_per_s": len(data) / insert_s, "build_s": 0.0, "found": found, "times": times,
            "reopen_s": reopen_s, "disk_bytes": _dir_bytes(path),
            "version": chromadb.__version__, "note": "HNSW (cosine) built while adding; build time is inside inserts"}


def bench_numpy(directory: Path, data: np.ndarray, queries: np.ndarray, batch: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    parts = [np.array(data[start:start + batch]) for start in range(0, len(data), batch)]
    matrix = np.concatenate(parts)
    insert_s = time.perf_counter() - t0
    path = directory / "numpy" / "matrix.npy"
    path.parent.mkdir(parents=True)
    t1 = time.perf_counter()
    with open(path, "wb") as f:
        np.save(f, matrix)
        f.flush()
        os.fsync(f.fileno())
    build_s = time.perf_counter() - t1

    def query(q: np.ndarray) -> list[int]:
        scores = matrix @ q
        top = np.argpartition(scores, -K)[-K:]
        return top[np.argsort(-scores[top], kind="stable")].tolist()

    found, times = _query_loop(query, queries)
    t2 = time.perf_counter()
    again = np.load(path, mmap_mode="r")
    np.argpartition(np.asarray(again) @ queries[0], -K)
    reopen_s = time.perf_counter() - t2
    return {"insert_per_s": len(data) / insert_s, "build_s": build_s, "found": found, "times": times,
            "reopen_s": reopen_s, "disk_bytes": _dir_bytes(path.parent),
            "version": np.__version__, "note": "in memory (inserts are copies, not durable); build = np.save + fsync"}


def bench_sqlite(directory: Path, data: np.ndarray, queries: np.ndarray, batch: int) -> dict[str, Any]:
    path = directory / "sqlite" / "peers.db"
    path.parent.mkdir(parents=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE memories (id TEXT PRIMARY KEY, content TEXT, embedding BLOB)")
    t0 = time.perf_counter()
    for start in range(0, len(data), batch):
        stop = min(len(data), start + batch)
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO memories VALUES (?, ?, ?)",
                         ((f"v{i}", f"vector {i}", data[i].tobytes()) for i in range(start, stop)))
        conn.execute("COMMIT")
    insert_s = time.perf_counter() - t0
    conn.close()
    return {"insert_per_s": len(data) / insert_s, "build_s": None, "found": None, "times": None, "reopen_s": None,
            "disk_bytes": _dir_bytes(path.parent), "version": sqlite3.sqlite_version,
            "note": "WAL, synchronous=FULL, one transaction per batch; durable inserts only, no vector search"}


RUNNERS: dict[str, Callable[[Path, np.ndarray, np.ndarray, int], dict[str, Any]]] = {
    "engram": bench_engram, "chromadb": bench_chromadb, "numpy": bench_numpy, "sqlite": bench_sqlite,
}


def run_peers(*, n: int, queries: int = 200, batch: int = 1000, dimension: int = 768, seed: int = 0,
              only: list[str] | None = None, directory: str | None = None,
              log: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    """Run every peer on the same data; returns {"peers": {...}, "missing": {...}, ...}.

    Raises ValueError for a non-positive size or an unknown peer name.
    """
    if n < K or queries < 1 or batch < 1:
        raise ValueError(f"n must be >= {K}, queries and batch >= 1; example: --n 100000 --queries 200")
    chosen = only or list(PEERS)
    for name in chosen:
        if name not in RUNNERS:
            raise ValueError(f"unknown peer {name!r}; allowed: {', '.join(PEERS)}")
    t0 = time.perf_counter()
    data, qs = make_data(n, queries, dimension, seed=seed)
    truth = exact_topk(data, qs)
    log(f"data: {n} x {dimension} float32 ({data.nbytes / 2**20:.0f} MB), {queries} queries, "
        f"exact top-{K} in {time.perf_counter() - t0:.1f}s")
    out: dict[str, Any] = {"n": n, "dimension": dimension, "queries": queries, "batch": batch, "k": K,
                           "peers": {}, "missing": {}}
    with tempfile.TemporaryDirectory(prefix="engram-peers-", dir=directory) as tmp:
        for name in chosen:
            log(f"{name}: loading {n} vectors")
            try:
                res = RUNNERS[name](Path(tmp), data, qs, batch)
            except ImportError as exc:
                out["missing"][name] = f"{exc.name or exc} is not installed (pip install -e '.[peers]')"
                log(f"{name}: missing ({exc})")
                continue
            row: dict[str, Any] = {k: v for k, v in res.items() if k not in ("found", "times")}
            if res["found"] is not None:
                row.update(_pct_ms(res["times"]))
                row["recall_at_10"] = _recall_at_k(res["found"], truth)
            out["peers"][name] = row
            log(f"{name}: {row['insert_per_s']:,.0f} inserts/s" +
                (f", P50 {row['p50_ms']:.2f} ms, recall@10 {row['recall_at_10']:.3f}" if "p50_ms" in row else ""))
            shutil.rmtree(Path(tmp) / name, ignore_errors=True)
    e = out["peers"].get("engram")
    ratios = {}
    if e:
        for name, row in out["peers"].items():
            if name == "engram":
                continue
            ratios[f"engram/{name} inserts per s"] = e["insert_per_s"] / row["insert_per_s"]
            if "p50_ms" in row:
                ratios[f"engram/{name} query P50 (lower is faster)"] = e["p50_ms"] / row["p50_ms"]
    out["ratios"] = ratios
    return out


def _f(x: Any, fmt: str) -> str:
    return "—" if x is None else format(x, fmt)


def format_table(result: dict[str, Any]) -> str:
    """A markdown table of the peers, then the missing ones and the same-run ratios."""
    lines = [f"n = {result['n']} x {result['dimension']}, {result['queries']} queries, batches of {result['batch']}, top-{result['k']}",
             "",
             "| peer | inserts/s | build s | query P50 ms | query P99 ms | recall@10 | reopen s | disk MB | notes |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, r in result["peers"].items():
        version = f" {r['version']}" if r.get("version") else ""
        lines.append(f"| {name}{version} | {r['insert_per_s']:,.0f} | {_f(r.get('build_s'), '.2f')} | "
                     f"{_f(r.get('p50_ms'), '.3f')} | {_f(r.get('p99_ms'), '.3f')} | {_f(r.get('recall_at_10'), '.3f')} | "
                     f"{_f(r.get('reopen_s'), '.2f')} | {r['disk_bytes'] / 2**20:.1f} | {r.get('note', '')} |")
    for name, why in result["missing"].items():
        lines.append(f"| {name} | missing | | | | | | | {why} |")
    if result.get("ratios"):
        lines += ["", "Same-run ratios: " + "; ".join(f"{k} = {v:.2f}" for k, v in result["ratios"].items())]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="vectors to load, default 100000")
    parser.add_argument("--queries", type=int, default=200, help="held-out queries, default 200")
    parser.add_argument("--batch", type=int, default=1000, help="vectors per insert call / transaction, default 1000")
    parser.add_argument("--dimension", type=int, default=768)
    parser.add_argument("--only", action="append", choices=list(PEERS), help="run only these peers (repeatable)")
    parser.add_argument("--dir", default=os.environ.get("ENGRAM_BENCH_DIR"), help="where the stores are written (a temp dir inside)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    try:
        result = run_peers(n=args.n, queries=args.queries, batch=args.batch, dimension=args.dimension, only=args.only,
                           directory=args.dir, log=lambda m: print(f"[peers] {m}", flush=True))
    except ValueError as exc:
        parser.error(str(exc))
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    if result["missing"]:
        print("missing peers: " + ", ".join(result["missing"]), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
