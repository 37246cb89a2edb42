"""Saturation ramp: add clients until the tail breaks away, report the knee and the RSS.

    python -m engram.bench.ramp --url http://127.0.0.1:7432 [--mix remember:recall=1:4]
        [--step 5s] [--clients-max 256] [--preload 10000] [--json]

Each step runs the mix with twice the clients of the step before (1, 2, 4, ...) for
``--step`` seconds on the load generator of ``engram bench http`` (one keep-alive
connection per client, pre-encoded requests). The ramp stops at the first step where
P99 > ``--tail-ratio`` (10) x P50 or any request failed, where throughput has not grown
5% over the best step for two steps in a row (a plateau: more clients only queue), or at
``--clients-max``. The knee is the last step before the stop: its clients, throughput,
P50/P95/P99; the step that stopped the ramp is reported beside it with the rule that
fired. Server RSS (peak during each step) is read through /proc when the server runs on
this machine (its pid from GET /api/v1/admin/status); otherwise it is reported as unknown.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import urllib.parse
from typing import Any, Callable

import trio

from ..durations import parse_duration_s
from .http import (
    _build_requests,
    _phase,
    _preload,
    _server_pid,
    _summarise,
    parse_mix,
)

__all__ = ["run_ramp", "find_knee", "format_ramp"]

PLATEAU_GAIN = 1.05
PLATEAU_STEPS = 2


def find_knee(steps: list[dict[str, Any]], *, tail_ratio: float) -> dict[str, Any]:
    """Apply the stop rules to measured steps in client order.

    Returns {"knee": step or None, "stopped_at": step or None, "rule": str}. ``knee`` is
    None when the very first step already breaks a rule.
    """
    assert tail_ratio > 1
    best = 0.0
    flat = 0
    previous: dict[str, Any] | None = None
    for step in steps:
        if step["errors"] > 0:
            return {"knee": previous, "stopped_at": step, "rule": f"{step['errors']} failed requests"}
        if step["ok"] == 0 or step["p99_ms"] > tail_ratio * step["p50_ms"]:
            return {"knee": previous, "stopped_at": step,
                    "rule": f"P99 {step['p99_ms']:.2f} ms > {tail_ratio:g} x P50 {step['p50_ms']:.2f} ms"}
        if step["throughput_per_s"] < best * PLATEAU_GAIN:
            flat += 1
            if flat >= PLATEAU_STEPS:
                knee = max(steps[: steps.index(step) + 1], key=lambda s: (s["throughput_per_s"], -s["clients"]))
                return {"knee": knee, "stopped_at": step,
                        "rule": f"throughput plateau: no step gained {100 * (PLATEAU_GAIN - 1):.0f}% over "
                                f"{best:,.0f} req/s for {PLATEAU_STEPS} steps"}
        else:
            flat = 0
        best = max(best, step["throughput_per_s"])
        previous = step
    return {"knee": previous, "stopped_at": None, "rule": "reached the most clients asked for (--clients-max; --clients of engram bench http --ramp) without breaking a rule"}


class _RssWatch:
    """Peak RSS of a local process, sampled every 0.2 s on a thread while active."""

    def __init__(self, pid: int | None) -> None:
        self.proc = None
        if pid is not None:
            try:
                import psutil

                self.proc = psutil.Process(pid)
                self.proc.memory_info()
            except Exception:  # noqa: BLE001 - another host, or no permission: RSS unknown
                self.proc = None
        self.peak_mb: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def read_mb(self) -> float | None:
        if self.proc is None:
            return None
        try:
            return float(self.proc.memory_info().rss) / 2**20
        except Exception:  # noqa: BLE001 - the server went away
            return None

    def __enter__(self) -> "_RssWatch":
        self.peak_mb = self.read_mb()
        if self.proc is not None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            v = self.read_mb()
            if v is not None and (self.peak_mb is None or v > self.peak_mb):
                self.peak_mb = v

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def run_ramp(*, url: str, mix: str = "remember:recall=1:4", step: str = "5s", clients_start: int = 1,
             clients_max: int = 256, tail_ratio: float = 10.0, preload: int = 10_000, space: str = "bench",
             dimension: int = 768, api_key: str = "", log: Callable[[str], None] = print) -> dict[str, Any]:
    """Ramp the clients against ``url``; returns the steps, the knee and the text table.

    Raises ValueError for a bad mix, duration or client bounds.
    """
    step_s = parse_duration_s(step, "--step")
    if step_s == 0:
        raise ValueError(f"--step: {step!r} measures nothing; give more than zero, e.g. 5s")
    weights = parse_mix(mix)
    if clients_start < 1 or clients_max < clients_start:
        raise ValueError("--clients-start must be >= 1 and <= --clients-max; example: --clients-start 1 --clients-max 256")
    if tail_ratio <= 1:
        raise ValueError("--tail-ratio must be > 1; example: 10")
    parsed = urllib.parse.urlsplit(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    stored = _preload(url, space, preload, dimension, api_key, log) if preload > 0 else 0
    pool = 4000 if weights.get("remember") else 512
    requests = _build_requests(weights, f"{host}:{port}", space, dimension, api_key, pool, seed=int(time.time()) % 100000)
    pid = _server_pid(url, api_key)
    watch = _RssWatch(pid)
    rss_start = watch.read_mb()
    steps: list[dict[str, Any]] = []
    clients = clients_start
    while True:
        log(f"ramp: {clients} clients for {step_s:g}s")
        with watch:
            stats, elapsed, _ = trio.run(_phase, host, port, clients, step_s, weights, requests)
        row = _summarise(mix, clients, stats, elapsed)
        row["rss_peak_mb"] = watch.peak_mb
        steps.append(row)
        verdict = find_knee(steps, tail_ratio=tail_ratio)
        if verdict["stopped_at"] is not None or clients >= clients_max:
            break
        clients = min(clients_max, clients * 2)
    result = {"url": url, "mix": mix, "step_s": step_s, "tail_ratio": tail_ratio, "preloaded": stored,
              "server_pid": pid, "rss_start_mb": rss_start, "steps": steps, **verdict}
    result["text"] = format_ramp(result)
    return result


def _rss(x: float | None) -> str:
    return "unknown" if x is None else f"{x:.0f}"


def format_ramp(result: dict[str, Any]) -> str:
    lines = [f"saturation ramp: {result['url']}, mix {result['mix']}, {result['step_s']:g}s per step, "
             f"stop at P99 > {result['tail_ratio']:g} x P50, errors or a plateau",
             "",
             "| clients | req/s | P50 ms | P95 ms | P99 ms | P99/P50 | errors | server RSS peak MB |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in result["steps"]:
        ratio = s["p99_ms"] / s["p50_ms"] if s["ok"] and s["p50_ms"] > 0 else float("nan")
        lines.append(f"| {s['clients']} | {s['throughput_per_s']:,.0f} | {s['p50_ms']:.2f} | {s['p95_ms']:.2f} | "
                     f"{s['p99_ms']:.2f} | {ratio:.1f} | {s['errors']} | {_rss(s.get('rss_peak_mb'))} |")
    knee = result["knee"]
    lines.append("")
    if knee is None:
        lines.append("knee: none (the first step already broke a rule)")
    else:
        lines.append(f"knee: {knee['clients']} clients, {knee['throughput_per_s']:,.0f} req/s, P50 {knee['p50_ms']:.2f} ms, "
                     f"P99 {knee['p99_ms']:.2f} ms, server RSS {_rss(knee.get('rss_peak_mb'))} MB "
                     f"(at start {_rss(result['rss_start_mb'])} MB)")
    stop = result["stopped_at"]
    lines.append(f"stopped: {result['rule']}" + (f" at {stop['clients']} clients" if stop else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:7432")
    p.add_argument("--mix", default="remember:recall=1:4")
    p.add_argument("--step", default="5s", help="how long each client count runs")
    p.add_argument("--clients-start", type=int, default=1)
    p.add_argument("--clients-max", type=int, default=256)
    p.add_argument("--tail-ratio", type=float, default=10.0, help="stop when P99 exceeds this many times P50")
    p.add_argument("--preload", type=int, default=10_000)
    p.add_argument("--space", default="bench")
    p.add_argument("--dimension", type=int, default=768)
    p.add_argument("--api-key", default="")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    try:
        result = run_ramp(url=args.url, mix=args.mix, step=args.step, clients_start=args.clients_start,
                          clients_max=args.clients_max, tail_ratio=args.tail_ratio, preload=args.preload,
                          space=args.space, dimension=args.dimension, api_key=args.api_key,
                          log=lambda m: print(m, flush=True))
    except ValueError as exc:
        p.error(str(exc))
    print(json.dumps({k: v for k, v in result.items() if k != "text"}, indent=2) if args.json else result["text"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
