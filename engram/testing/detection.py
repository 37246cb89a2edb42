"""Failure-detection figures from the simulator, comparable with memberlist's benchmark.

``python -m engram.testing.detection [--seeds 101-105] [--crash-kind process|host]``

Each seed is one simulated run with memberlist's LAN timings: 100 nodes, 1% loss, 1-3 ms
one-way delay, 10 crashes (with restarts) over 10 simulated minutes, no stalls. For every
crash it takes the time from the crash until the first live node, and until every live
node that knew the victim, saw it dead; it prints p50/p99/max over all crashes of all
seeds, the dead-rumour spread (first to last node) and the false deaths. memberlist's
published figures (100 nodes, 1% loss, kill -9, 30 runs): p50 9.86 s, p99 11.98 s, spread
0.38 s p50. ``--crash-kind host`` makes crashed nodes silent on TCP too (a lost host rather
than a killed process), which turns off the refused-connection shortcut. ``--baseline``
turns off Engram's additions to memberlist's algorithm (suspect_on_refused, eager_gossip,
tell_the_accused, aligned_probing: memberlist's shuffled probe order) for an A/B comparison
on the same seeds; ``--probing shuffled`` turns off only the clock-aligned probe order, and
``--clock-skew-ms`` spreads the hosts' wall clocks wider (bad NTP) to see it degrade.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

from engram.testing import sim

__all__ = ["measure", "main"]


def _percentile(values: list[int], fraction: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(math.ceil(fraction * len(ordered))) - 1)]


BASELINE = {"suspect_on_refused": False, "eager_gossip": False, "tell_the_accused": False,
            "nack_confirmations": False, "aligned_probing": False}


def measure(seeds: list[int], crash_kind: str = "process", *, verbose: bool = False,
            overrides: dict[str, bool] | None = None, clock_skew_ms: int | None = None) -> dict[str, float]:
    """Run the seeds and return the figures in seconds (and counts). ``overrides`` are
    SwimConfig fields applied to every node; ``clock_skew_ms`` replaces the simulator's
    +-20 ms spread of the hosts' wall clocks."""
    config_for = sim._config_for
    if overrides:
        sim._config_for = lambda *args: config_for(*args).replace(**overrides)  # type: ignore[assignment]
    try:
        return _measure(seeds, crash_kind, verbose, clock_skew_ms)
    finally:
        sim._config_for = config_for  # type: ignore[assignment]


def _measure(seeds: list[int], crash_kind: str, verbose: bool, clock_skew_ms: int | None) -> dict[str, float]:
    firsts: list[int] = []
    lasts: list[int] = []
    spreads: list[int] = []
    false_deaths = 0
    wall_s = 0.0
    for seed in seeds:
        options = sim.draw_options(seed, nodes=100, preset="lan", duration_ms=600_000, loss=0.01, delay_ms_min=1,
                                   delay_ms_max=3, duplicate=0.0, reorder=0.0, partition="none", crashes=10,
                                   restart=True, stalls=0, joins=0, crash_kind=crash_kind,
                                   clock_skew_ms=clock_skew_ms)
        started = time.perf_counter()
        result = sim.Simulation(options).run()
        wall_s += time.perf_counter() - started
        false_deaths += len(result.false_deaths)
        for _victim, _crash_ms, first, last in result.detections:
            if first is not None:
                firsts.append(first)
            if last is not None:
                lasts.append(last)
            if first is not None and last is not None:
                spreads.append(last - first)
        if verbose:
            print(f"seed {seed}: {len(result.detections)} crashes, failures {result.failures[:1]}", flush=True)
    return {
        "crashes": len(lasts),
        "first_p50_s": _percentile(firsts, .5) / 1000, "first_p99_s": _percentile(firsts, .99) / 1000,
        "all_p50_s": _percentile(lasts, .5) / 1000, "all_p99_s": _percentile(lasts, .99) / 1000,
        "all_max_s": max(lasts) / 1000, "spread_p50_s": _percentile(spreads, .5) / 1000,
        "false_deaths": false_deaths, "wall_s_per_run": wall_s / len(seeds),
    }


def _seeds(text: str) -> list[int]:
    if "-" in text:
        low, high = text.split("-")
        return list(range(int(low), int(high) + 1))
    return [int(s) for s in text.split(",")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engram.testing.detection", description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="101-105", help="e.g. 101-105 or 101,107")
    parser.add_argument("--crash-kind", default="process", choices=["process", "host"])
    parser.add_argument("--baseline", action="store_true", help="memberlist's algorithm without Engram's additions")
    parser.add_argument("--probing", choices=["aligned", "shuffled"], help="override the probe order only")
    parser.add_argument("--clock-skew-ms", type=int, help="hosts' wall clocks off by up to +-this (default 20)")
    args = parser.parse_args(argv)
    overrides: dict[str, bool] = dict(BASELINE) if args.baseline else {}
    if args.probing:
        overrides["aligned_probing"] = args.probing == "aligned"
    figures = measure(_seeds(args.seeds), args.crash_kind, verbose=True, overrides=overrides or None,
                      clock_skew_ms=args.clock_skew_ms)
    for key, value in figures.items():
        print(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")
    return 0 if figures["false_deaths"] == 0 else 3


if __name__ == "__main__":
    sys.exit(main())
