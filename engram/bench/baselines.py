"""Regenerate BASELINES.md: single-node figures measured in one run, never typed by hand.

    python -m engram.bench.baselines [--out BASELINES.md] [--sizes 10000,100000]
        [--peers-n 100000] [--http-seconds 10] [--ramp-step 5s] [--note TEXT]

Sections, each measured now on this machine:
1. engine operations, embedded (``engram.open``): P50/P95/P99 and throughput of durable
   and relaxed remember, forget, recall by embedding (with the default cognitive effects
   and with them off) and by text, 3-hop spread, and consolidation of 500 episodes, on a
   space of the first ``--sizes`` entry;
2. HTTP operations: a real ``engram serve`` child process, per-operation P50/P95/P99
   from ``engram bench http``'s load generator (remember, recall, search, health);
3. the saturation knee: ``engram.bench.ramp`` on the same server;
4. memory footprint: a fresh process opens a space of each size and reports RSS
   (above an idle interpreter with engram imported) and bytes on disk;
5. peers: ``engram.bench.peers`` at ``--peers-n``.
Absolute figures move with the machine's load; the file states the load average at
the start and the end. Ratios inside one table are the figures to compare.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["measure_engine", "measure_footprint", "render", "main"]


def _pct(samples_s: list[float]) -> dict[str, float]:
    a = np.asarray(samples_s) * 1e3
    return {"p50_ms": float(np.percentile(a, 50)), "p95_ms": float(np.percentile(a, 95)),
            "p99_ms": float(np.percentile(a, 99)), "count": int(a.size),
            "per_s": float(a.size / (a.sum() / 1e3)) if a.sum() > 0 else float("nan")}


def _timed(fn: Callable[[int], Any], count: int) -> list[float]:
    out = []
    for i in range(count):
        t0 = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t0)
    return out


def _unit(rng: np.random.Generator, count: int, dimension: int) -> np.ndarray:
    v = rng.standard_normal((count, dimension)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


def measure_engine(directory: Path, n: int, *, samples: int = 300, dimension: int = 768) -> dict[str, Any]:
    """Per-operation latency of the embedded engine on a space of ``n`` memories."""
    import engram

    rng = np.random.default_rng(7)
    data = _unit(rng, n, dimension)
    fresh = _unit(rng, samples * 2, dimension)
    words = ("river", "cell", "garden", "engine", "harbor", "lantern", "meadow", "signal")
    out: dict[str, Any] = {"n": n, "samples": samples}
    with engram.open(directory / "engine") as db:
        sp = db.space("base", dedup_threshold=None, durability="sync", dimension=dimension)
        for start in range(0, n, 5000):
            sp.remember_many([{"content": f"memory {i} about {words[i % 8]} and {words[(i // 8) % 8]}", "embedding": data[i],
                               "id": f"b{i}"} for i in range(start, min(n, start + 5000))])
        ids = [f"b{i}" for i in range(n)]
        r = random.Random(1)
        for i in range(min(n, 2000)):
            for j in r.sample(range(n), 3):
                if j != i:
                    sp.associate(ids[i], ids[j], 0.9)
        sp.recall(embedding=data[0], k=10)  # warm up (JIT, page faults)
        out["remember (durable, one call)"] = _pct(_timed(lambda i: sp.remember(f"lone {i}", embedding=fresh[i]), samples))
        out["recall by embedding, top-10"] = _pct(_timed(lambda i: sp.recall(embedding=fresh[i], k=10), samples))
        plain = db.space("plain", dedup_threshold=None, durability="async", dimension=dimension, effects=())
        for start in range(0, n, 5000):
            plain.remember_many([{"content": f"memory {i}", "embedding": data[i]} for i in range(start, min(n, start + 5000))])
        plain.recall(embedding=data[0], k=10)
        out["recall by embedding, top-10, cognitive effects off"] = _pct(
            _timed(lambda i: plain.recall(embedding=fresh[i], k=10), samples))
        out["recall by text, top-10"] = _pct(_timed(lambda i: sp.recall(text=words[i % 8], k=10), samples))
        out["spread, 3 hops"] = _pct(_timed(lambda i: sp.spread([ids[i % 2000]], max_hops=3), samples))
        victims = r.sample(ids, samples)
        out["forget (durable)"] = _pct(_timed(lambda i: sp.forget(victims[i]), samples))
        relaxed = db.space("relaxed", dedup_threshold=None, durability="async", dimension=dimension)
        out["remember (relaxed durability)"] = _pct(_timed(lambda i: relaxed.remember(f"relaxed {i}", embedding=fresh[samples + i]), samples))
        ep = db.space("episodes", dimension=dimension)
        centers = _unit(rng, 25, dimension)
        when = datetime(2026, 1, 1, tzinfo=timezone.utc)
        for i in range(500):
            v = centers[i % 25] + rng.standard_normal(dimension).astype(np.float32) * np.float32(0.25 / dimension ** 0.5)
            ep.remember_episode(f"episode {i}", when=when + timedelta(minutes=i), embedding=v)
        runs = []
        for k in range(3):
            t0 = time.perf_counter()
            ep.consolidate()
            runs.append(time.perf_counter() - t0)
            ep.remember_episode(f"extra {k}", when=when, embedding=centers[k])  # rerun on changed input
        out["consolidate 500 episodes"] = _pct(runs)
    return out


_FOOTPRINT_CHILD = r"""
import json, os, sys, time
import psutil
import engram
proc = psutil.Process()
path, mode = sys.argv[1], sys.argv[2]
if mode == "idle":
    print(json.dumps({"rss_mb": proc.memory_info().rss / 2**20}))
    sys.exit(0)
import numpy as np
n = int(sys.argv[3])
before = proc.memory_info().rss
with engram.open(path) as db:
    if mode == "load":
        sp = db.space("foot", dedup_threshold=None, durability="async")
        rng = np.random.default_rng(0)
        for start in range(0, n, 5000):
            k = min(5000, n - start)
            v = rng.standard_normal((k, 768)).astype(np.float32)
            sp.remember_many([{"content": f"memory {start + i} about topic {(start + i) % 97}", "embedding": v[i]} for i in range(k)])
        sp.checkpoint()
        print(json.dumps({"rss_mb": proc.memory_info().rss / 2**20}))
    else:
        t0 = time.perf_counter()
        sp = db.space("foot")
        sp.recall(embedding=np.ones(768, np.float32), k=10)
        sp.recall(text="topic", k=10)
        print(json.dumps({"rss_mb": proc.memory_info().rss / 2**20, "open_s": time.perf_counter() - t0,
                          "count": len(sp)}))
"""


def measure_footprint(directory: Path, n: int) -> dict[str, Any]:
    """RSS of a fresh process that opened a space of ``n`` memories and recalled once."""
    path = directory / f"foot-{n}"

    def child(*args: str) -> dict[str, Any]:
        res = subprocess.run([sys.executable, "-c", _FOOTPRINT_CHILD, str(path), *args], capture_output=True, text=True,
                             timeout=1800)
        if res.returncode != 0:
            raise RuntimeError(f"footprint child {args} failed: {res.stderr[-2000:]}")
        return json.loads(res.stdout.strip().splitlines()[-1])

    idle = child("idle")
    loaded = child("load", str(n))
    reopened = child("open", str(n))
    disk = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    shutil.rmtree(path, ignore_errors=True)
    raw_mb = n * 768 * 4 / 2**20
    return {"n": n, "idle_rss_mb": idle["rss_mb"], "rss_after_load_mb": loaded["rss_mb"], "rss_after_open_mb": reopened["rss_mb"],
            "open_s": reopened["open_s"], "engine_mb": reopened["rss_mb"] - idle["rss_mb"], "disk_mb": disk / 2**20,
            "raw_embeddings_mb": raw_mb}


class _Server:
    def __init__(self, directory: Path) -> None:
        self.data = directory / "serve"
        self.proc = subprocess.Popen([sys.executable, "-m", "engram", "serve", "--data", str(self.data), "--port", "0",
                                      "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pid_file = self.data / "engram.pid"
        deadline = time.monotonic() + 120
        while not pid_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("engram serve did not start")
            time.sleep(0.05)
        self.url = json.loads(pid_file.read_text())["url"]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=120)


def measure_http(url: str, *, seconds: float, clients: int, preload: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Per-operation percentiles over HTTP, one operation at a time, same clients."""
    import trio

    from .http import _build_requests, _phase, _preload, _summarise

    import urllib.parse

    parsed = urllib.parse.urlsplit(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    stored = _preload(url, "base", preload, 768, "", log)
    out: dict[str, Any] = {"preloaded": stored, "clients": clients, "seconds": seconds}
    for op in ("health", "remember", "recall", "search"):
        requests = _build_requests({op: 1}, f"{host}:{port}", "base", 768, "", 4000 if op == "remember" else 512,
                                   seed=int(time.time()) % 100000)
        log(f"http: {op} x{clients} for {seconds:g}s")
        stats, elapsed, _ = trio.run(_phase, host, port, clients, seconds, {op: 1}, requests)
        row = _summarise(op, clients, stats, elapsed)
        out[op] = {"p50_ms": row["p50_ms"], "p95_ms": row["p95_ms"], "p99_ms": row["p99_ms"],
                   "per_s": row["throughput_per_s"], "count": row["ok"], "errors": row["errors"],
                   "statuses": row["ops"][op]["statuses"]}
    return out


def _loadavg() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def _machine() -> str:
    try:
        cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    except OSError:
        cpu = platform.processor() or "?"
    try:
        mem = next((int(line.split()[1]) // 1024 for line in open("/proc/meminfo") if line.startswith("MemTotal")), 0)
    except OSError:
        mem = 0
    from engram import _core

    return (f"{os.cpu_count()} cores ({cpu}), {mem / 1024:.0f} GB RAM, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, numpy {np.__version__}, kernels: {_core.IMPL}")


def _row(name: str, p: dict[str, Any]) -> str:
    return f"| {name} | {p['p50_ms']:.3f} | {p['p95_ms']:.3f} | {p['p99_ms']:.3f} | {p['per_s']:,.0f} | {p['count']} |"


def render(doc: dict[str, Any]) -> str:
    """BASELINES.md from the measurements (pure: no measuring here)."""
    from .peers import format_table
    from .ramp import format_ramp

    e = doc["engine"]
    lines = [
        "# Engram single-node baselines",
        "",
        f"Generated by `{doc['command']}` on {doc['date']}; do not edit by hand, regenerate.",
        "",
        f"- machine: {doc['machine']}",
        f"- load average (1/5/15 min) at the start: {doc['load_start']}; at the end: {doc['load_end']}",
        f"- took {doc['took_s']:.0f} s",
    ]
    if doc.get("note"):
        lines.append(f"- note: {doc['note']}")
    lines += [
        "",
        "This machine is shared and noisy: compare figures within one table (one run), not with another machine or day.",
        "",
        "Commands that measure the same things in more depth:",
        "",
        "```",
        "python -m engram.bench.baselines                      # this file",
        "python -m engram.bench.core                           # recall vs bandwidth floor, group commit vs fdatasync and SQLite",
        "python -m engram.bench.peers --n 100000               # engram beside chromadb, numpy, sqlite",
        "python -m engram.bench.ramp --url http://127.0.0.1:7432   # saturation knee of a running server",
        "engram bench http --clients 1,16 --duration 30s       # HTTP throughput and percentiles",
        "cd asv_bench && asv run --python=same --quick         # asv suite (P50/P95/P99 tracks)",
        "python soak/run.py --duration 2h --spaces 12 --rate 200   # soak: kills, lost writes, leak verdict",
        "```",
        "",
        f"## Engine operations, embedded (space of {e['n']:,} memories, 768-d, {e['samples']} samples each)",
        "",
        "| operation | P50 ms | P95 ms | P99 ms | ops/s (one caller) | samples |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, p in e.items():
        if isinstance(p, dict):
            lines.append(_row(name, p))
    h = doc["http"]
    lines += [
        "",
        f"## HTTP operations (`engram serve` child process, {h['clients']} keep-alive clients, {h['seconds']:g} s each, "
        f"{h['preloaded']:,} memories preloaded)",
        "",
        "| operation | P50 ms | P95 ms | P99 ms | req/s | requests | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for op in ("health", "remember", "recall", "search"):
        p = h[op]
        lines.append(f"| {op} | {p['p50_ms']:.3f} | {p['p95_ms']:.3f} | {p['p99_ms']:.3f} | {p['per_s']:,.0f} | {p['count']} | {p['errors']} |")
    failed = {op: h[op] for op in ("health", "remember", "recall", "search") if h[op]["errors"]}
    if failed:
        lines += ["", "Errors: " + "; ".join(
            f"{op}: {p['errors']} failed, HTTP statuses {p.get('statuses', {})} (a failure without a status is a "
            f"connection the server closed mid-request)" for op, p in failed.items())]
    if h["health"]["per_s"]:
        lines += ["", "Same-run ratios to GET /health (the HTTP stack's floor): " + "; ".join(
            f"{op} {h[op]['per_s'] / h['health']['per_s']:.2f}x throughput" for op in ("remember", "recall", "search"))]
    lines += ["", "## Saturation knee (mix remember:recall=1:4)", "", format_ramp(doc["ramp"]), ""]
    lines += ["## Memory footprint", "",
              "A fresh process opens a space (from its checkpoint), recalls by embedding and by text, and reports RSS.",
              "", "| memories | RSS after open MB | above idle interpreter MB | raw embeddings MB | open s | disk MB | RSS while loading MB |",
              "|---:|---:|---:|---:|---:|---:|---:|"]
    for f in doc["footprint"]:
        lines.append(f"| {f['n']:,} | {f['rss_after_open_mb']:.0f} | {f['engine_mb']:.0f} | {f['raw_embeddings_mb']:.0f} | "
                     f"{f['open_s']:.2f} | {f['disk_mb']:.0f} | {f['rss_after_load_mb']:.0f} |")
    lines += ["", "## Peers on the same vectors", "", format_table(doc["peers"]), ""]
    if doc["peers"].get("missing"):
        lines.append("Missing peers are optional extras: `pip install -e '.[peers]'`.")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="BASELINES.md")
    p.add_argument("--sizes", default="10000,100000", help="footprint sizes; the first is the engine table's space size")
    p.add_argument("--samples", type=int, default=300, help="samples per engine operation")
    p.add_argument("--peers-n", type=int, default=100_000)
    p.add_argument("--peers-queries", type=int, default=200)
    p.add_argument("--http-seconds", type=float, default=10.0)
    p.add_argument("--http-clients", type=int, default=8)
    p.add_argument("--http-preload", type=int, default=10_000)
    p.add_argument("--ramp-step", default="5s")
    p.add_argument("--ramp-clients-max", type=int, default=128)
    p.add_argument("--note", default="", help="a sentence for the header (why sizes were reduced, say)")
    p.add_argument("--json", default="", help="also write the raw measurements here")
    p.add_argument("--dir", default=os.environ.get("ENGRAM_BENCH_DIR"))
    args = p.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    if not sizes or min(sizes) < 100:
        p.error("--sizes: give sizes of at least 100, e.g. 10000,100000")
    command = "python -m engram.bench.baselines " + " ".join(argv if argv is not None else sys.argv[1:])

    def log(m: str) -> None:
        print(f"[baselines] {m}", file=sys.stderr, flush=True)

    t0 = time.monotonic()
    doc: dict[str, Any] = {"command": command.strip(), "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                           "machine": _machine(), "load_start": _loadavg(), "note": args.note}
    with tempfile.TemporaryDirectory(prefix="engram-baselines-", dir=args.dir) as tmp:
        directory = Path(tmp)
        log(f"engine operations at {sizes[0]}")
        doc["engine"] = measure_engine(directory, sizes[0], samples=args.samples)
        shutil.rmtree(directory / "engine", ignore_errors=True)
        server = _Server(directory)
        try:
            doc["http"] = measure_http(server.url, seconds=args.http_seconds, clients=args.http_clients,
                                       preload=args.http_preload, log=log)
            from .ramp import run_ramp

            log("saturation ramp")
            doc["ramp"] = run_ramp(url=server.url, step=args.ramp_step, clients_max=args.ramp_clients_max, preload=0,
                                   space="base", log=log)
            doc["ramp"].pop("text", None)
        finally:
            server.stop()
        shutil.rmtree(directory / "serve", ignore_errors=True)
        doc["footprint"] = []
        for n in sizes:
            log(f"footprint at {n}")
            doc["footprint"].append(measure_footprint(directory, n))
        from .peers import run_peers

        log(f"peers at {args.peers_n}")
        doc["peers"] = run_peers(n=args.peers_n, queries=args.peers_queries, directory=str(directory), log=log)
    doc["load_end"] = _loadavg()
    doc["took_s"] = time.monotonic() - t0
    text = render(doc)
    Path(args.out).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2, default=str))
    log(f"wrote {args.out} in {doc['took_s']:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
