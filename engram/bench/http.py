"""``engram bench http``: an HTTP load generator that is not the bottleneck.

Each client is one keep-alive TCP connection driven by a trio task with pre-encoded
request bytes and a minimal HTTP/1.1 response reader (status line, Content-Length),
so a client costs a few microseconds of CPU per request, far less than the server
spends answering it. Requests follow a fixed weighted round-robin over the mix
(remember:recall=1:4 sends R, r, r, r, r, R, ...), offset per client.

Every figure is measured in the same run: with ``--baseline`` (default) the same
clients first hammer GET /health for the same duration, and the report gives the
mixed load's throughput as a ratio of that. ``--clients 1,16`` runs each phase at
each client count (recall scaling from 1 to 16 clients in one run).

Remember bodies come from a pool of distinct random unit vectors (4 decimals); once
the pool is used up they repeat, and the server's dedup then answers them with the
existing id (still a durable 201).
"""

from __future__ import annotations

import json
import math
import os
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import trio

from ..durations import parse_duration_s

__all__ = ["run_bench", "run_bulk", "parse_mix"]

OPS = ("remember", "recall", "health", "search", "bulk")


def parse_mix(text: str) -> dict[str, int]:
    """'remember:recall=1:4' -> {'remember': 1, 'recall': 4}; 'recall' -> {'recall': 1}."""
    names, _, weights = text.partition("=")
    ops = [n.strip() for n in names.split(":") if n.strip()]
    ws = [w.strip() for w in weights.split(":")] if weights else ["1"] * len(ops)
    if not ops or len(ws) != len(ops):
        raise ValueError(f"--mix: {text!r} is not a mix; example: remember:recall=1:4")
    mix = {}
    for op, w in zip(ops, ws):
        if op not in OPS:
            raise ValueError(f"--mix: unknown operation {op!r}; allowed: {', '.join(OPS)}")
        try:
            mix[op] = int(w)
        except ValueError:
            raise ValueError(f"--mix: weight {w!r} is not an integer; example: remember:recall=1:4") from None
        if mix[op] < 0:
            raise ValueError("--mix: weights must be >= 0")
    if sum(mix.values()) == 0:
        raise ValueError("--mix: at least one weight must be > 0")
    return mix


@dataclass
class OpStats:
    latencies_ns: list[int] = field(default_factory=list)
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)  # requests without a response, by exception
    reconnects: int = 0  # connections the server closed with "Connection: close" (not errors)


def _request(method: str, target: str, host: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class _Conn:
    """One keep-alive connection with a tiny response reader."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buf = bytearray()

    async def roundtrip(self, request: bytes) -> tuple[int, bool]:
        """Send one request, read its response: (status, whether the server closes after it)."""
        await self.stream.send_all(request)
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            chunk = await self.stream.receive_some(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk
        head = bytes(self.buf[:end]).decode("latin-1")
        status = int(head[9:12])
        length = 0
        close = False
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value.strip())
            elif name == "connection" and "close" in value.lower():
                close = True
        need = end + 4 + length
        while len(self.buf) < need:
            chunk = await self.stream.receive_some(max(65536, need - len(self.buf)))
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk
        del self.buf[:need]
        return status, close


def _unit_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, dim)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


def _vec_json(v: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.4f}" for x in v.tolist()) + "]"


def _build_requests(mix: dict[str, int], host: str, space: str, dim: int, api_key: str, pool: int, seed: int) -> dict[str, list[bytes]]:
    headers = {"X-Memory-Space": space}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    out: dict[str, list[bytes]] = {}
    if mix.get("remember"):
        vs = _unit_vectors(pool, dim, seed)
        out["remember"] = [
            _request("POST", "/api/v1/memories/remember", host, {**headers, "Content-Type": "application/json"},
                     ('{"content":"bench memory %d %d","confidence":0.8,"embedding":%s}' % (seed, i, _vec_json(v))).encode())
            for i, v in enumerate(vs)]
    if mix.get("recall"):
        vs = _unit_vectors(min(pool, 512), dim, seed + 1)
        out["recall"] = [
            _request("GET", "/api/v1/memories/recall?max_results=10&threshold=0&embedding=" + urllib.parse.quote(_vec_json(v), safe=""),
                     host, headers) for v in vs]
    if mix.get("search"):
        words = ["bench", "memory", "cell", "river", "engram", "lab"]
        out["search"] = [_request("GET", f"/api/v1/memories/search?query={w}&limit=10", host, headers) for w in words]
    if mix.get("health"):
        out["health"] = [_request("GET", "/health", host, headers)]
    if mix.get("bulk"):
        import msgpack

        vs = _unit_vectors(max(1, pool // 10) * 10, dim, seed + 2)
        bodies = []
        for b in range(0, len(vs), 100):
            items = [{"content": f"bulk bench {seed} {b + i}", "embedding": v.astype("<f4").tobytes()} for i, v in enumerate(vs[b:b + 100])]
            bodies.append(_request("POST", "/api/v1/memories/bulk", host, {**headers, "Content-Type": "application/msgpack"}, msgpack.packb(items)))
        out["bulk"] = bodies
    return out


def _schedule(mix: dict[str, int]) -> list[str]:
    # Smooth weighted round-robin: remember:recall=1:4 -> recall, recall, remember, recall, recall
    total = sum(mix.values())
    current = {op: 0 for op in mix}
    order = []
    for _ in range(total):
        for op, w in mix.items():
            current[op] += w
        best = max(current, key=lambda op: (current[op], op))
        current[best] -= total
        order.append(best)
    return order


async def _phase(host: str, port: int, clients: int, duration_s: float, mix: dict[str, int], requests: dict[str, list[bytes]]) -> tuple[dict[str, OpStats], float, int]:
    stats = {op: OpStats() for op in mix if mix[op]}
    order = _schedule({k: v for k, v in mix.items() if v})
    conn_errors = 0
    deadline = 0.0

    async def client(index: int) -> None:
        nonlocal conn_errors
        conn: _Conn | None = None
        step = index
        counters = {op: index * 7919 for op in stats}
        while trio.current_time() < deadline:
            op = order[step % len(order)]
            step += 1
            pool = requests[op]
            req = pool[counters[op] % len(pool)]
            counters[op] += 1
            try:
                if conn is None:
                    conn = _Conn(await trio.open_tcp_stream(host, port))
                t0 = time.perf_counter_ns()
                status, close = await conn.roundtrip(req)
                t1 = time.perf_counter_ns()
            except (OSError, ConnectionError, trio.BrokenResourceError, ValueError) as exc:
                conn_errors += 1
                stats[op].errors += 1
                name = type(exc).__name__
                stats[op].failures[name] = stats[op].failures.get(name, 0) + 1
                if conn is not None:
                    await conn.stream.aclose()
                conn = None
                await trio.sleep(0.01)
                continue
            s = stats[op]
            if close:  # the server asked for a new connection: honour it, it is not an error
                s.reconnects += 1
                await conn.stream.aclose()
                conn = None
            s.statuses[status] = s.statuses.get(status, 0) + 1
            if 200 <= status < 300:
                s.latencies_ns.append(t1 - t0)
            else:
                s.errors += 1
        if conn is not None:
            await conn.stream.aclose()

    t_start = time.perf_counter()
    deadline = trio.current_time() + duration_s
    async with trio.open_nursery() as nursery:
        for i in range(clients):
            nursery.start_soon(client, i)
    elapsed = time.perf_counter() - t_start
    return stats, elapsed, conn_errors


def _pct(sorted_ns: list[int], q: float) -> float:
    if not sorted_ns:
        return float("nan")
    i = min(len(sorted_ns) - 1, max(0, math.ceil(q * len(sorted_ns)) - 1))
    return sorted_ns[i] / 1e6


def _summarise(name: str, clients: int, stats: dict[str, OpStats], elapsed_s: float) -> dict[str, Any]:
    all_ns: list[int] = []
    per_op = {}
    for op, s in stats.items():
        lat = sorted(s.latencies_ns)
        all_ns.extend(lat)
        per_op[op] = {"ok": len(lat), "errors": s.errors, "statuses": {str(k): v for k, v in sorted(s.statuses.items())},
                      "failures": dict(sorted(s.failures.items())), "reconnects": s.reconnects,
                      "throughput_per_s": round(len(lat) / elapsed_s, 1),
                      "p50_ms": round(_pct(lat, 0.50), 3), "p95_ms": round(_pct(lat, 0.95), 3), "p99_ms": round(_pct(lat, 0.99), 3)}
    all_ns.sort()
    return {"phase": name, "clients": clients, "seconds": round(elapsed_s, 3), "ok": len(all_ns),
            "errors": sum(s.errors for s in stats.values()), "throughput_per_s": round(len(all_ns) / elapsed_s, 1),
            "p50_ms": round(_pct(all_ns, 0.50), 3), "p95_ms": round(_pct(all_ns, 0.95), 3), "p99_ms": round(_pct(all_ns, 0.99), 3),
            "ops": per_op}


EFFECTS_ALL = ("priming", "fan", "interference", "reconsolidation", "spacing")


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds process ``pid`` has used, or None if there is no such process."""
    import psutil

    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return times.user + times.system


def _server_pid(url: str, api_key: str) -> int | None:
    """The server's pid when it runs on this machine (a loopback URL; its admin status
    names it), so a phase can report the server's CPU and RSS; else None."""
    import httpx

    from ..config import is_loopback

    if not is_loopback(urllib.parse.urlsplit(url).hostname or ""):
        return None
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        doc = httpx.get(url.rstrip("/") + "/api/v1/admin/status", headers=headers, timeout=10.0).json()
    except (httpx.HTTPError, ValueError):
        return None
    pid = doc.get("pid") if isinstance(doc, dict) else None
    return pid if isinstance(pid, int) and process_cpu_s(pid) is not None else None


def _ensure_space(url: str, space: str, effects: str, api_key: str, log: Callable[[str], None]) -> list[str] | None:
    """Create ``space`` with recall's cognitive effects on (all) or off ([]) if it does not
    exist; check them if it does. ``effects="default"`` leaves the space as it is.
    Returns the space's effects (None if unknown). Raises ValueError on a mismatch.

    It asks about this one space (POST /api/v1/spaces answers an existing space's
    document), never GET /api/v1/spaces: listing opens every space of the data
    directory, which on a server holding other large spaces loads gigabytes in the
    middle of a measurement."""
    import httpx

    if effects not in ("default", "on", "off"):
        raise ValueError(f"--effects: {effects!r} is not allowed; allowed: default, on, off")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(base_url=url, headers=headers, timeout=300.0) as c:
        if effects == "default":
            r = c.post("/api/v1/spaces", json={"id": space})
            if r.status_code not in (200, 201):
                raise ValueError(f"cannot open space {space!r}: HTTP {r.status_code} {r.text[:300]}")
            return r.json().get("effects")
        wanted = list(EFFECTS_ALL) if effects == "on" else []
        r = c.post("/api/v1/spaces", json={"id": space, "config": {"effects": wanted}})
        if r.status_code == 201:
            log(f"space {space!r} created with effects {r.json().get('effects')}")
            return r.json().get("effects")
        if r.status_code != 409:
            raise ValueError(f"cannot create space {space!r}: HTTP {r.status_code} {r.text[:300]}")
        r = c.post("/api/v1/spaces", json={"id": space})  # it exists: its document, effects included
        if r.status_code not in (200, 201):
            raise ValueError(f"cannot read space {space!r}: HTTP {r.status_code} {r.text[:300]}")
        current = r.json().get("effects")
        if current is not None and bool(current) != (effects == "on"):
            raise ValueError(f"--effects {effects}: space {space!r} already exists with effects {current}; "
                             "effects are fixed at creation, so pick another --space")
        return current


def _preload(url: str, space: str, n: int, dim: int, api_key: str, log: Callable[[str], None]) -> int:
    import httpx
    import msgpack

    headers = {"X-Memory-Space": space}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    with httpx.Client(base_url=url, headers=headers, timeout=300.0) as c:
        have = c.get("/api/v1/memories", params={"limit": 1}).json().get("count", 0)
        if have >= n:
            log(f"preload: space {space!r} already holds {have} memories")
            return int(have)
        need = n - have
        t0 = time.perf_counter()
        done = 0
        batch = 5000
        while done < need:
            k = min(batch, need - done)
            vs = _unit_vectors(k, dim, seed=have + done + 1_000_003)
            items = [{"content": f"preloaded memory {have + done + i} about topic {(have + done + i) % 97}",
                      "embedding": v.astype("<f4").tobytes(), "confidence": 0.8} for i, v in enumerate(vs)]
            r = c.post("/api/v1/memories/bulk", content=msgpack.packb(items), headers={"Content-Type": "application/msgpack"})
            if r.status_code != 201:
                raise RuntimeError(f"preload failed: HTTP {r.status_code} {r.text[:300]}")
            done += k
        elapsed = time.perf_counter() - t0
        log(f"preload: {need} memories in {elapsed:.2f}s ({need / elapsed:,.0f}/s, msgpack bulk, durable)")
        return int(have + need)


def run_bench(*, url: str, clients: int | str, duration: str, mix: str, preload: int, space: str, dimension: int,
              baseline: bool, api_key: str = "", effects: str = "default", wrk: bool = False, warmup: str = "0s",
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the benchmark against ``url``; returns the report (``text`` holds the table).

    ``warmup``: first run the mix at the largest client count for this long, unmeasured.
    Recall keeps per-memory state that its first use computes (interference inputs:
    one pass over the memory's time window); without a warm-up the first measured
    phase pays for it and the later ones do not, which skews a 1-vs-16-client ratio.

    ``wrk``: afterwards, the same phases from wrk (a C load generator; /health, and
    engram/bench/wrk_mix.lua for the 1:4 mix) at the largest client count, so the report
    shows whether this client, rather than the server, set the figures."""
    duration_s = parse_duration_s(duration, "--duration")
    if duration_s == 0:
        raise ValueError(f"--duration: {duration!r} measures nothing; give more than zero, e.g. 30s")
    warmup_s = parse_duration_s(warmup, "--warmup")
    mix_weights = parse_mix(mix)
    client_counts = [int(x) for x in str(clients).split(",") if x.strip()]
    if not client_counts or min(client_counts) < 1:
        raise ValueError("--clients: give a positive count or a comma-separated list, e.g. 16 or 1,16")
    parsed = urllib.parse.urlsplit(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    host_header = f"{host}:{port}"
    space_effects = _ensure_space(url, space, effects, api_key, log)
    stored = _preload(url, space, preload, dimension, api_key, log) if preload > 0 else 0
    pool = 4000 if mix_weights.get("remember") else 512
    requests = _build_requests(mix_weights, host_header, space, dimension, api_key, pool, seed=int(time.time()) % 100000)
    health_req = {"health": [_request("GET", "/health", host_header, {"Authorization": f"Bearer {api_key}"} if api_key else {})]}
    results = []

    server_pid = _server_pid(url, api_key)

    def run_phase(name: str, n: int, weights: dict[str, int], reqs: dict[str, list[bytes]]) -> None:
        log(f"phase {name} x{n} for {duration_s:g}s")
        load_before = os.getloadavg()[0]
        server_before = None if server_pid is None else process_cpu_s(server_pid)
        client_before = time.process_time()
        st, el, _ = trio.run(_phase, host, port, n, duration_s, weights, reqs)
        client_cpu = time.process_time() - client_before
        server_after = None if server_pid is None else process_cpu_s(server_pid)
        summary = _summarise(name, n, st, el)
        # This machine is shared: the 1-minute load average beside each figure says how
        # quiet it was (a ratio within one run holds up better than either figure).
        summary["load_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        # CPU per answered request, the server's (when it runs here) and this client's:
        # what a request costs, and whether the client could be the bottleneck.
        done = max(1, summary["ok"])
        summary["client_cpu_us_per_request"] = round(client_cpu / done * 1e6, 1)
        summary["server_cpu_us_per_request"] = (None if server_before is None or server_after is None
                                                else round((server_after - server_before) / done * 1e6, 1))
        results.append(summary)

    if warmup_s > 0:
        log(f"warm-up: {mix} x{max(client_counts)} for {warmup_s:g}s (not measured)")
        trio.run(_phase, host, port, max(client_counts), warmup_s, mix_weights, requests)
    for n in client_counts:
        if baseline:
            run_phase("health", n, {"health": 1}, health_req)
        run_phase(mix, n, mix_weights, requests)
    wrk_results = []
    if wrk:
        wrk_results = _run_wrk(url, space, max(client_counts), duration_s, mix_weights, log)
    effects_text = "default" if space_effects is None else (", ".join(space_effects) or "none")
    lines = [f"engram bench http: {url}, space {space!r} with {stored} memories preloaded, recall effects: {effects_text}, "
             f"{duration_s:g}s per phase" + (f" after a {warmup_s:g}s warm-up" if warmup_s > 0 else ""),
             f"{'phase':<28}{'clients':>8}{'ok':>9}{'err':>6}{'req/s':>10}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
             f"{'srv us/req':>11}{'cli us/req':>11}  load 1m"]
    for r in results:
        server_cpu = "-" if r["server_cpu_us_per_request"] is None else f"{r['server_cpu_us_per_request']:.0f}"
        lines.append(f"{r['phase']:<28}{r['clients']:>8}{r['ok']:>9}{r['errors']:>6}{r['throughput_per_s']:>10.1f}"
                     f"{r['p50_ms']:>9.2f}{r['p95_ms']:>9.2f}{r['p99_ms']:>9.2f}{server_cpu:>11}{r['client_cpu_us_per_request']:>11.0f}"
                     f"  {r['load_1m'][0]:.2f}->{r['load_1m'][1]:.2f}")
        if len(r["ops"]) > 1:
            for op, o in r["ops"].items():
                lines.append(f"  {op:<26}{'':>8}{o['ok']:>9}{o['errors']:>6}{o['throughput_per_s']:>10.1f}"
                             f"{o['p50_ms']:>9.2f}{o['p95_ms']:>9.2f}{o['p99_ms']:>9.2f}")
    for r in results:
        for op, o in r["ops"].items():
            if o["failures"]:
                lines.append(f"failures ({r['phase']}, {op}, {r['clients']} clients; requests without a response): {o['failures']}")
            if o["reconnects"]:
                lines.append(f"reconnects ({r['phase']}, {op}): {o['reconnects']} (server sent Connection: close; not errors)")
    ratios = {}
    if baseline:
        for n in client_counts:
            h = next(r for r in results if r["phase"] == "health" and r["clients"] == n)
            m = next(r for r in results if r["phase"] == mix and r["clients"] == n)
            if h["throughput_per_s"]:
                ratios[f"{mix} / health at {n} clients"] = round(m["throughput_per_s"] / h["throughput_per_s"], 3)
    if len(client_counts) > 1:
        lo, hi = min(client_counts), max(client_counts)
        a = next(r for r in results if r["phase"] == mix and r["clients"] == lo)
        b = next(r for r in results if r["phase"] == mix and r["clients"] == hi)
        if a["throughput_per_s"]:
            ratios[f"{mix} throughput {hi} clients / {lo} client(s)"] = round(b["throughput_per_s"] / a["throughput_per_s"], 3)
    for w in wrk_results:
        lines.append(f"wrk {w['phase']:<24}{w['clients']:>8}{w['requests']:>9}{w['errors']:>6}{w['throughput_per_s']:>10.1f}"
                     + "".join(f"{'n/a':>9}" if w[p] is None else f"{w[p]:>9.2f}" for p in ("p50_ms", "p95_ms", "p99_ms"))
                     + f"  {w['load_1m'][0]:.2f}->{w['load_1m'][1]:.2f}")
    by_phase = {w["phase"]: w for w in wrk_results}
    if "health" in by_phase and "remember:recall=1:4" in by_phase and by_phase["health"]["throughput_per_s"]:
        ratios["wrk: remember:recall=1:4 / health"] = round(
            by_phase["remember:recall=1:4"]["throughput_per_s"] / by_phase["health"]["throughput_per_s"], 3)
    for k, v in ratios.items():
        lines.append(f"ratio {k}: {v}")
    return {"url": url, "space": space, "effects": space_effects, "preloaded": stored, "duration_s": duration_s, "results": results,
            "wrk": wrk_results, "ratios": ratios,
            "text": "\n".join(lines)}


WRK_PATH = "/usr/bin/wrk"


def _parse_wrk(text: str) -> dict[str, Any]:
    """Throughput and latency percentiles from wrk's --latency output (and wrk_mix.lua's line)."""
    import re

    def ms(value: str, unit: str) -> float:
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    out: dict[str, Any] = {"requests": 0, "errors": 0, "throughput_per_s": 0.0}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m:
        out["throughput_per_s"] = float(m.group(1))
    m = re.search(r"(\d+) requests in", text)
    if m:
        out["requests"] = int(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if m:
        out["errors"] = int(m.group(1))
    for q in (50, 99):
        m = re.search(rf"\s{q}%\s+([\d.]+)(us|ms|s)\b", text)
        out[f"p{q}_ms"] = round(ms(m.group(1), m.group(2)), 3) if m else None
    m = re.search(r"p95 ([\d.]+) ms", text)  # wrk's --latency table has no 95%; wrk_mix.lua prints it
    out["p95_ms"] = float(m.group(1)) if m else None  # None: JSON null, "n/a" in the table
    return out


def _run_wrk(url: str, space: str, clients: int, duration_s: float, mix: dict[str, int],
             log: Callable[[str], None]) -> list[dict[str, Any]]:
    """/health and (for the remember:recall=1:4 mix) wrk_mix.lua, run by wrk; [] without wrk."""
    import subprocess

    if not Path(WRK_PATH).exists():
        log(f"--wrk: {WRK_PATH} is not installed (apt-get install wrk); skipped")
        return []
    script = Path(__file__).with_name("wrk_mix.lua")
    seconds = f"{max(1, round(duration_s))}s"
    runs = [("health", [WRK_PATH, "-t2", f"-c{clients}", f"-d{seconds}", "--latency", url.rstrip("/") + "/health"])]
    if mix == {"remember": 1, "recall": 4}:
        runs.append(("remember:recall=1:4", [WRK_PATH, "-t2", f"-c{clients}", f"-d{seconds}", "--latency", "-s", str(script),
                                             url.rstrip("/"), "--", space]))
    else:
        log("--wrk: wrk_mix.lua sends remember:recall=1:4 only; wrk measures /health alone")
    out = []
    for name, cmd in runs:
        log(f"phase wrk {name} x{clients} for {seconds}")
        load_before = os.getloadavg()[0]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 120)
        doc = _parse_wrk(done.stdout)
        doc.update({"phase": name, "clients": clients, "load_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)]})
        out.append(doc)
    return out


def run_bulk(*, url: str, space: str, count: int, batch: int, fmt: str, dimension: int = 768, api_key: str = "",
             seed: int = 7, concurrency: int = 1, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Durable bulk remember, end to end: ``count`` new memories in bodies of ``batch``
    (msgpack with raw float32 embeddings, or JSON lines), ``concurrency`` requests at a
    time (1: one after the other).

    Splits the wall time into the engine's share (``engine_seconds`` in the response:
    Space.remember_many, WAL write and fsync) and the HTTP side (transfer, decode,
    validation, response); bodies are built before the clock starts. With concurrency
    above 1 the wall time is the whole run's, and the engine's share is the sum over
    requests, which overlap: the split then says where the time went, not what adds up."""
    import threading

    import httpx
    import msgpack

    if fmt not in ("msgpack", "jsonl"):
        raise ValueError(f"--format: {fmt!r} is not allowed; allowed: msgpack, jsonl")
    if count < 1 or batch < 1:
        raise ValueError("--count and --batch must be >= 1")
    if concurrency < 1:
        raise ValueError("--concurrency must be >= 1")
    headers = {"X-Memory-Space": space}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    with httpx.Client(base_url=url, headers=headers, timeout=600.0) as c:
        start = int(c.get("/api/v1/memories", params={"limit": 1}).json().get("count", 0))
    # Seeded by what the space already holds too: a second run into the same space with
    # one seed would resend the first run's vectors, which dedup merges into the stored
    # memories, and the report would time merges while calling them new memories.
    rng = np.random.default_rng([seed, start])
    bodies: list[tuple[int, bytes]] = []
    built = 0
    while built < count:
        k = min(batch, count - built)
        vs = rng.standard_normal((k, dimension)).astype("<f4")
        if fmt == "msgpack":
            body = msgpack.packb([{"content": f"bulk {seed} {start + built + i}", "embedding": v.tobytes(), "confidence": 0.8}
                                  for i, v in enumerate(vs)])
        else:
            body = "\n".join('{"content":"bulk %d %d","confidence":0.8,"embedding":%s}' % (seed, start + built + i, _vec_json(v))
                              for i, v in enumerate(vs)).encode()
        bodies.append((k, body))
        built += k
    ctype = "application/msgpack" if fmt == "msgpack" else "application/x-ndjson"
    lock = threading.Lock()
    totals = {"request_wall_s": 0.0, "engine_s": 0.0, "read_s": 0.0, "parse_s": 0.0, "done": 0}
    failures: list[str] = []
    pending = list(reversed(bodies))

    def worker() -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=600.0) as client:
            while True:
                with lock:
                    if not pending or failures:
                        return
                    k, body = pending.pop()
                t0 = time.perf_counter()
                r = client.post("/api/v1/memories/bulk", content=body, headers={"Content-Type": ctype})
                took = time.perf_counter() - t0
                if r.status_code != 201:
                    with lock:
                        failures.append(f"bulk failed: HTTP {r.status_code} {r.text[:300]}")
                    return
                doc = r.json()
                with lock:
                    totals["request_wall_s"] += took
                    totals["engine_s"] += float(doc.get("engine_seconds", 0.0))
                    totals["read_s"] += float(doc.get("read_seconds", 0.0))
                    totals["parse_s"] += float(doc.get("parse_seconds", 0.0))
                    totals["done"] += k

    t_start = time.perf_counter()
    threads = [threading.Thread(target=worker, name=f"bulk-client-{i}") for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run_wall_s = time.perf_counter() - t_start
    if failures:
        raise RuntimeError(failures[0])
    done = int(totals["done"])
    wall_s = totals["request_wall_s"] if concurrency == 1 else run_wall_s
    engine_s, read_s, parse_s = totals["engine_s"], totals["read_s"], totals["parse_s"]
    http_s = max(0.0, wall_s - engine_s)
    per_s = done / wall_s
    engine_per_s = done / engine_s if engine_s else 0.0
    http_share = http_s / wall_s
    # The HTTP side splits into the server receiving the body, the server decoding and
    # checking it, and the rest: the client sending it, the response, the framework.
    rest_s = max(0.0, http_s - read_s - parse_s)
    us = 1e6 / done
    doc: dict[str, Any] = {"format": fmt, "count": done, "batch": batch, "wall_s": round(wall_s, 3), "engine_s": round(engine_s, 3),
                           "per_s": round(per_s, 1), "engine_per_s": round(engine_per_s, 1) if engine_s else None,
                           "http_us_per_memory": round(http_s * us, 1), "http_share": round(http_share, 3),
                           "read_us_per_memory": round(read_s * us, 1), "parse_us_per_memory": round(parse_s * us, 1),
                           "rest_us_per_memory": round(rest_s * us, 1), "engine_us_per_memory": round(engine_s * us, 1)}
    doc["concurrency"] = concurrency
    doc["text"] = f"bulk {fmt}, {done} memories in bodies of {batch}, {concurrency} at a time, durable: {per_s:,.0f}/s end to end; "
    if concurrency == 1:
        doc["text"] += (
            f"engine (remember_many + WAL + fsync) {engine_s:.2f}s = {engine_per_s:,.0f}/s = {doc['engine_us_per_memory']} us/memory; "
            f"HTTP side {http_s:.2f}s = {doc['http_us_per_memory']} us/memory, {100 * http_share:.0f}% of the wall time "
            f"(server reading the body {doc['read_us_per_memory']}, decoding and checking it {doc['parse_us_per_memory']}, "
            f"client send, response and framework {doc['rest_us_per_memory']} us/memory)")
    else:
        # Requests in flight together overlap: their engine, read and parse times add up
        # to more than the wall time, so a split of it would not mean anything.
        doc["text"] += (f"engine time summed over requests {engine_s:.2f}s ({doc['engine_us_per_memory']} us/memory); "
                        "no HTTP/engine split with --concurrency above 1 (requests overlap): use --concurrency 1 for it")
    return doc


def main_json(argv: list[str]) -> None:  # pragma: no cover - convenience for python -m
    print(json.dumps(run_bench(url=argv[0], clients=16, duration="10s", mix="remember:recall=1:4", preload=10000,
                               space="bench", dimension=768, baseline=True), indent=2))
