"""Soak a real ``engram serve`` under a multi-tenant mixed load, killing it now and then.

    python soak/run.py --duration 90s --spaces 12 --rate 200 [--out DIR] [--kill-every 60s]
    python soak/run.py --duration 7d --spaces 12 --rate 200 --out /var/tmp/soak-7d

What it does, in order:
1. starts ``python -m engram serve`` on a free loopback port over a fresh data
   directory (``--out``/data) and bulk-loads each space to its live set;
2. offers ``--rate`` operations per second from worker threads: remember (memories
   and episodes), recall by embedding, text search, spreading recall and forget,
   over ``--spaces`` tenants, holding each space's live set steady;
3. every ``--consolidate-every`` (60 s) runs a consolidation round over every space:
   POST /api/v1/consolidate when the server has that route, else the read-only
   GET /api/v1/consolidations (the report says which);
4. every ``--kill-every`` SIGKILLs the server mid-load, restarts it, and checks
   that every write it acknowledged (HTTP 201) is there, that acknowledged forgets
   stayed forgotten, and reads back the content of the newest writes;
5. every ``--sample-every`` writes one CSV row: RSS, open fds, threads, CPU, WAL and
   data bytes, and per-operation P50/P95/P99 of the interval;
6. at the end kills and verifies once more, stops the server gracefully, and writes
   report.md, summary.json, rss.png and p99.png beside samples.csv.

Exit status: 0 when nothing was lost, nothing erred and RSS did not leak; 1 otherwise;
2 when the soak itself could not run (bad arguments, the server would not start).
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import random
import shlex
import shutil
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402

from _load import MIX_DEFAULT, OPS, Gate, Load, parse_mix, space_ids  # noqa: E402
from _report import plot, read_samples, write_markdown, write_summary  # noqa: E402
from _server import ServerProcess  # noqa: E402
from _stats import Histogram, leak_verdict, parse_duration_s  # noqa: E402

CONSOLIDATE_ROUTE = "/api/v1/consolidate"


def _machine() -> str:
    try:
        cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    except OSError:
        cpu = platform.processor() or "?"
    return f"{platform.node()}, {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()} {platform.release()}"


def compaction_cycle_s(live_per_space: int, forgets_per_s_per_space: float) -> float:
    """Seconds between two compactions of one space, which RSS follows as a sawtooth.

    A space compacts once a quarter of its rows are dead and it holds at least
    1,024 rows (engram.memory.space: _compact_if_sparse, _COMPACT_MIN_ROWS); each forget
    leaves one dead row, and the live set is held steady. 0 when nothing is forgotten.
    """
    if forgets_per_s_per_space <= 0:
        return 0.0
    dead_rows = max(live_per_space / 3.0, 1024.0 - live_per_space)
    return dead_rows / forgets_per_s_per_space


def turnover_s(live_per_space: int, forgets_per_s_per_space: float) -> float:
    """Seconds for a space's live set to be replaced once (0 when nothing is forgotten).

    The server's state that follows the live set fills over about one turnover after a
    start and then holds steady: recall priming's co-recall pairs, for one, are kept
    until their memories are forgotten (engram.memory.cognition.priming). A 45-minute
    soak killing every 480 s (one turnover at the defaults) saw each lifetime climb
    40-60 MB and called it a 436 MB/h leak; without kills the same load levelled off
    at about 550 MB after the first turnover."""
    if forgets_per_s_per_space <= 0:
        return 0.0
    return live_per_space / forgets_per_s_per_space


def default_kill_every_s(duration_s: float, cycle_s: float, warmup_s: float = 0.0) -> float:
    """Server lifetimes of a warm-up (one turnover of the live set, see turnover_s) plus
    three compaction cycles, at least 3 min, so the leak rule, which compares cycle peaks
    within a lifetime after its warm-up, can judge; at most a third of the run, so a
    short run still kills twice."""
    return min(max(180.0, warmup_s + 3.0 * cycle_s), duration_s / 3.0)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", default="90s", help="how long the load runs: 90s, 2m, 2h, 7d (default 90s)")
    p.add_argument("--spaces", type=int, default=12, help="tenants (memory spaces), default 12")
    p.add_argument("--rate", type=float, default=200.0, help="offered operations per second, default 200")
    p.add_argument("--workers", type=int, default=0, help="client threads (default: rate/20, at least 4)")
    p.add_argument("--out", default="", help="directory for data, CSV, report, plots (default: a new soak/out/<time>)")
    p.add_argument("--kill-every", default="", help="SIGKILL + restart interval (default: one turnover of the live set plus three compaction cycles, at least 3m, at most a third of the run; 0 disables)")
    p.add_argument("--sample-every", default="", help="CSV sample interval (default 60s; duration/40 for runs under 40m)")
    p.add_argument("--consolidate-every", default="60s", help="consolidation round interval, default 60s")
    p.add_argument("--live-per-space", type=int, default=2000, help="memories each space holds steady, default 2000")
    p.add_argument("--dimension", type=int, default=768)
    p.add_argument("--mix", default=",".join(f"{k}={v}" for k, v in MIX_DEFAULT.items()),
                   help="operation weights (default %(default)s)")
    p.add_argument("--leak-mb-per-hour", type=float, default=20.0, help="RSS slope that counts as a leak, default 20 MB/h")
    p.add_argument("--leak-noise-mb", type=float, default=32.0,
                   help="fitted RSS growth over the window below which no leak is called, default 32 MB")
    p.add_argument("--leak-warmup", default="",
                   help="uptime of each server lifetime left out of the leak fit (default: one turnover of the live set, "
                        "at least 60s, at most half of --kill-every)")
    p.add_argument("--leak-cycle", default="",
                   help="period of the RSS sawtooth compaction draws, judged by its peaks (default: estimated "
                        "from --live-per-space, --rate, --spaces and the forget share; 0 fits every sample)")
    p.add_argument("--verify-read-back", type=int, default=600,
                   help="acknowledged writes since the last restart read back one by one at each restart, "
                        "a sample across spaces (all are checked by listing), default 600")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--keep-data", action="store_true", help="keep the data directory after a passing run")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        duration_s = parse_duration_s(args.duration)
        mix = parse_mix(args.mix)
        if args.spaces < 1 or args.rate <= 0 or args.live_per_space < 1:
            raise ValueError("--spaces, --rate and --live-per-space must be positive")
        forgets_per_s_per_space = args.rate * mix.get("forget", 0) / sum(mix.values()) / args.spaces
        settle_s = turnover_s(args.live_per_space, forgets_per_s_per_space)
        if args.leak_cycle:
            leak_cycle_s = parse_duration_s(args.leak_cycle)
        else:
            leak_cycle_s = compaction_cycle_s(args.live_per_space, forgets_per_s_per_space)
        if args.kill_every:
            kill_every_s = parse_duration_s(args.kill_every)
        else:
            kill_every_s = default_kill_every_s(duration_s, leak_cycle_s, settle_s)
        if args.sample_every:
            sample_every_s = parse_duration_s(args.sample_every)
        else:
            sample_every_s = 60.0 if duration_s >= 2400 else max(1.0, duration_s / 40.0)
        consolidate_every_s = parse_duration_s(args.consolidate_every)
        if args.leak_warmup:
            leak_warmup_s = parse_duration_s(args.leak_warmup)
        else:
            # One turnover of the live set (at least 60 s), but no more than half a
            # lifetime, so a short lifetime is still fitted on something.
            leak_warmup_s = max(60.0, settle_s)
            if kill_every_s > 0:
                leak_warmup_s = min(leak_warmup_s, kill_every_s / 2.0)
        if sample_every_s <= 0:
            raise ValueError("--sample-every must be positive")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    workers = args.workers or max(4, int(args.rate / 20))
    started_at = datetime.now(timezone.utc)
    out = Path(args.out) if args.out else Path(__file__).resolve().parent / "out" / started_at.strftime("%Y%m%dT%H%M%SZ")
    out.mkdir(parents=True, exist_ok=True)
    data_dir = out / "data"
    if data_dir.exists():
        shutil.rmtree(data_dir)
    command = "python soak/run.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))

    def log(msg: str) -> None:
        print(f"[soak {time.monotonic() - t_start:7.1f}s] {msg}", flush=True)

    t_start = time.monotonic()
    server = ServerProcess(data_dir, out / "server.log")
    pids: list[int] = []
    try:
        startup_s = server.start()
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    assert server.proc is not None
    pids.append(server.proc.pid)
    log(f"engram serve pid {server.proc.pid} on {server.url} (ready in {startup_s:.2f}s), data in {data_dir}")

    gate = Gate()
    spaces = space_ids(args.spaces)
    load = Load(url=server.url, spaces=spaces, rate_per_s=args.rate, workers=workers, mix=mix,
                live_per_space=args.live_per_space, dimension=args.dimension, seed=args.seed, gate=gate, log=log)
    preload_s = load.preload()
    log(f"preloaded {args.spaces} x {args.live_per_space} memories in {preload_s:.1f}s")

    with httpx.Client(timeout=30.0) as c:
        probe = c.post(server.url + CONSOLIDATE_ROUTE, headers={"X-Memory-Space": spaces[0]}, content=b"{}")
    consolidate_route = CONSOLIDATE_ROUTE if probe.status_code in (200, 201, 202) else None
    if consolidate_route:
        consolidation_note = (f"POST {CONSOLIDATE_ROUTE} on every space every {consolidate_every_s:g} s "
                              f"(counted as the `consolidate` operation).")
    else:
        consolidation_note = (f"The server has no POST {CONSOLIDATE_ROUTE} (it answered HTTP {probe.status_code}), so "
                              f"consolidation was not triggered over HTTP. Every {consolidate_every_s:g} s the soak read "
                              f"GET /api/v1/consolidations on every space instead (counted as `consolidate`). "
                              f"The engine's Space.consolidate is covered by the asv suite, not by this soak.")
    log(consolidation_note)

    csv_path = out / "samples.csv"
    fields = ["t_s", "utc", "lifetime", "uptime_s", "rss_mb", "fds", "threads", "cpu_s", "wal_bytes", "data_bytes",
              "live_memories", "ops", "errors", "interrupted", "dropped_sends"]
    for op in OPS:
        fields += [f"{op}_n", f"{op}_p50_ms", f"{op}_p95_ms", f"{op}_p99_ms"]
    csv_file = open(csv_path, "w", newline="")
    writer = csv.DictWriter(csv_file, fieldnames=fields)
    writer.writeheader()

    restarts: list[dict[str, Any]] = []
    verify_rng = random.Random(args.seed)
    samples = 0

    fatal: list[str] = []

    def kill_restart_verify(at_s: float) -> bool:
        """SIGKILL, restart, verify; False (and a line in ``fatal``) if the server would not come back."""
        gate.close()
        server.kill()
        t_kill = time.monotonic()
        try:
            server.start()
            recovery_s = time.monotonic() - t_kill
            assert server.proc is not None
            pids.append(server.proc.pid)
            result = load.verify(get_back_max=args.verify_read_back, rng=verify_rng)
        except (RuntimeError, httpx.HTTPError, KeyError, ValueError) as exc:
            fatal.append(f"restart #{len(restarts) + 1} at {at_s:.0f}s failed: {type(exc).__name__}: {exc}")
            log(fatal[-1])
            return False
        restarts.append({"at_s": at_s, "lifetime": server.lifetime, "recovery_s": recovery_s, "verify": result})
        log(f"SIGKILL + restart #{len(restarts)}: back in {recovery_s:.2f}s; {result['acknowledged_checked']} acknowledged "
            f"writes listed, {result['read_back']} read back, verified in {result['seconds']}s, "
            f"lost {result['lost_now']}")
        load.schedule.restart()
        gate.open()
        return True

    def take_sample() -> None:
        nonlocal samples
        now = time.monotonic()
        interval = load.swap_interval()
        ps = server.sample()
        row: dict[str, Any] = {
            "t_s": round(now - t_load, 3), "utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "lifetime": server.lifetime, "uptime_s": round(now - server.started_monotonic_s, 3),
            "live_memories": load.live_count(), "interrupted": interval.interrupted,
            "ops": sum(h.total for h in interval.hist.values()), "errors": sum(interval.errors.values()),
            "dropped_sends": load.schedule.dropped,
        }
        if ps is not None:
            row.update(rss_mb=round(ps.rss_mb, 2), fds=ps.fds, threads=ps.threads, cpu_s=round(ps.cpu_s, 2),
                       wal_bytes=ps.wal_bytes, data_bytes=ps.data_bytes)
        for op in OPS:
            h = interval.hist[op]
            row[f"{op}_n"] = h.total
            if h.total:
                row[f"{op}_p50_ms"] = round(h.percentile_ms(0.50), 3)
                row[f"{op}_p95_ms"] = round(h.percentile_ms(0.95), 3)
                row[f"{op}_p99_ms"] = round(h.percentile_ms(0.99), 3)
        writer.writerow(row)
        csv_file.flush()
        samples += 1

    gate.open()
    load.start()
    t_load = time.monotonic()
    end = t_load + duration_s
    next_sample = t_load + sample_every_s
    next_consolidate = t_load + consolidate_every_s if consolidate_every_s > 0 else float("inf")
    next_kill = t_load + kill_every_s if kill_every_s > 0 else float("inf")
    log(f"load: {args.rate:g} ops/s from {workers} workers over {args.spaces} spaces for {duration_s:g}s; "
        f"kill every {kill_every_s:g}s, sample every {sample_every_s:g}s")
    server.sample()  # prime psutil's CPU counters
    consolidator: threading.Thread | None = None
    try:
        while True:
            now = time.monotonic()
            if now >= end:
                break
            if now >= next_sample:
                take_sample()
                next_sample += sample_every_s
                if next_sample < now:
                    next_sample = now + sample_every_s
            elif now >= next_kill and end - now > min(10.0, kill_every_s / 2):
                if not kill_restart_verify(now - t_load):
                    break
                next_kill = time.monotonic() + kill_every_s
            elif now >= next_consolidate:
                # On its own thread, so a SIGKILL can land in the middle of a consolidation.
                if consolidator is None or not consolidator.is_alive():
                    consolidator = threading.Thread(target=load.consolidate_all, args=(consolidate_route,),
                                                    name="soak-consolidate", daemon=True)
                    consolidator.start()
                next_consolidate += consolidate_every_s
            else:
                time.sleep(min(0.1, max(0.0, min(next_sample, next_kill, next_consolidate, end) - now)))
        load_s = time.monotonic() - t_load
        take_sample()
    except KeyboardInterrupt:
        load_s = time.monotonic() - t_load
        log("interrupted: stopping the load and reporting what was measured")
    gate.close()
    load.stop()
    if consolidator is not None:
        consolidator.join(timeout=300)
    # One last SIGKILL mid-stream state is not needed: the load is stopped. Kill anyway (the
    # disk state after a crash is what is verified), restart, verify, then stop gracefully.
    if not fatal:
        kill_restart_verify(time.monotonic() - t_load)
    gate.close()
    final_stop_status = server.stop()
    csv_file.close()
    wall_s = time.monotonic() - t_start

    rows = read_samples(csv_path)
    restart_times = [r["at_s"] for r in restarts]
    # A fresh server warms up (spaces opened lazily, JIT, thread pools): leave each lifetime's
    # first seconds out. Uptime, not run time, is what a leak grows with; within one lifetime
    # they differ by a constant, so fitting on run time with per-lifetime intercepts is the same.
    fit_rows = [r for r in rows if r.get("rss_mb") and float(r["uptime_s"]) >= leak_warmup_s]
    times = [float(r["t_s"]) for r in fit_rows]
    rss = [float(r["rss_mb"]) for r in fit_rows]
    lifetimes = [int(r["lifetime"]) for r in fit_rows]
    verdict = leak_verdict(times, rss, lifetimes, threshold_mb_per_h=args.leak_mb_per_hour, noise_mb=args.leak_noise_mb,
                           cycle_s=leak_cycle_s)

    ops_summary = {}
    for op in OPS:
        h: Histogram = load.totals[op]
        if h.total == 0 and load.total_errors[op] == 0:
            continue
        ops_summary[op] = {"count": h.total, "errors": load.total_errors[op], "per_s": h.total / load_s if load_s else 0.0,
                           "p50_ms": h.percentile_ms(0.50) if h.total else float("nan"),
                           "p95_ms": h.percentile_ms(0.95) if h.total else float("nan"),
                           "p99_ms": h.percentile_ms(0.99) if h.total else float("nan"),
                           "max_ms": h.max_s * 1e3}

    def series(key: str, scale: float = 1.0) -> dict[str, float]:
        vals = [float(r[key]) / scale for r in rows if r.get(key)]
        return {"first": vals[0], "last": vals[-1], "max": max(vals)} if vals else {}

    process = {"rss_mb": series("rss_mb"), "fds": series("fds"), "threads": series("threads"),
               "wal_mb": series("wal_bytes", 2**20), "data_mb": series("data_bytes", 2**20)}
    plots = plot(rows, [op for op in OPS if op in ops_summary], restart_times, out)
    errors_total = sum(load.total_errors.values())
    achieved = sum(o["count"] for o in ops_summary.values()) / load_s if load_s else 0.0
    notes = [
        f"achieved {achieved:.1f} acknowledged operations/s of the {args.rate:g}/s offered "
        f"({100 * achieved / args.rate:.0f}%), averaged over the whole load period including the pauses for kills "
        f"and verification; well below 100% means the server (or the shared machine) was saturated",
        f"latency is measured at the client (httpx, keep-alive) from send to the full answer; the client shares "
        f"{os.cpu_count()} cores with the server, so it includes client scheduling delay",
        f"preload: {args.spaces} x {args.live_per_space} memories through POST /api/v1/memories/bulk in {preload_s:.1f}s",
        f"sends dropped because the load fell more than 1 s behind its schedule: {load.schedule.dropped}",
        f"remembers answered with an existing id (dedup): {load.dedup_hits}",
    ]
    passed = (not load.lost and not load.resurrected and not load.content_mismatch and errors_total == 0
              and not verdict.leak and final_stop_status == 0 and not fatal)
    summary = {
        "passed": passed, "started_at": started_at.isoformat(timespec="seconds"), "command": command,
        "machine": _machine(), "duration_s": load_s, "wall_s": wall_s, "spaces": args.spaces, "rate_per_s": args.rate,
        "workers": workers, "live_per_space": args.live_per_space, "dimension": args.dimension,
        "mix": ",".join(f"{k}={v}" for k, v in mix.items()), "kill_every_s": kill_every_s,
        "sample_every_s": sample_every_s, "consolidate_every_s": consolidate_every_s,
        "consolidate_route": consolidate_route, "consolidation_note": consolidation_note,
        "server_pids": pids, "samples": len(rows), "restarts": restarts, "ops": ops_summary,
        "achieved_per_s": achieved, "errors_total": errors_total, "interrupted": load.total_interrupted, "error_examples": load.error_examples,
        "lost": load.lost, "resurrected": load.resurrected, "content_mismatch": load.content_mismatch,
        "leak": {"leak": verdict.leak, "reason": verdict.reason, "slope_mb_per_h": verdict.slope_mb_per_h,
                 "growth_mb": verdict.growth_mb, "window_s": verdict.window_s, "samples": verdict.samples,
                 "lifetimes": verdict.lifetimes, "threshold_mb_per_h": verdict.threshold_mb_per_h,
                 "noise_mb": verdict.noise_mb, "warmup_s": leak_warmup_s, "judged": verdict.judged,
                 "cycle_s": leak_cycle_s},
        "process": process, "final_stop_status": final_stop_status, "fatal": fatal, "plots": plots, "notes": notes,
        "out_dir": str(out),
    }
    write_summary(summary, out)
    report = write_markdown(summary, out)
    if passed and not args.keep_data:
        shutil.rmtree(data_dir, ignore_errors=True)
    log(f"{'PASS' if passed else 'FAIL'}: lost {len(load.lost)}, resurrected {len(load.resurrected)}, "
        f"errors {errors_total}, leak: {verdict.reason}; report {report}")
    if not verdict.judged:
        log("the leak verdict is TOO SHORT TO JUDGE (not a failure): see the reason above")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
