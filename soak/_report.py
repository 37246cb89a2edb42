"""The soak's report: report.md, summary.json and PNG plots of RSS and P99 over time.

Everything here reads the samples CSV and the run's summary dict; it measures
nothing. Plots need matplotlib (the ``bench`` and ``test`` extras); without it the
report says that the plots are missing instead of failing the run.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any


def read_samples(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _float(row: dict[str, str], key: str) -> float:
    try:
        return float(row.get(key) or "nan")
    except ValueError:
        return float("nan")


def plot(samples: list[dict[str, str]], ops: list[str], restarts_s: list[float], out_dir: Path) -> list[str]:
    """Write rss.png and p99.png; returns the file names written (empty without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    t_min = [_float(r, "t_s") / 60.0 for r in samples]
    written = []

    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(t_min, [_float(r, "rss_mb") for r in samples], marker=".", label="server RSS (MB)")
    for x in restarts_s:
        ax.axvline(x / 60.0, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("minutes since start (dotted: SIGKILL + restart)")
    ax.set_ylabel("RSS (MB)")
    ax.set_title("engram serve RSS over the soak")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_dir / "rss.png", dpi=100)
    plt.close(fig)
    written.append("rss.png")

    fig, ax = plt.subplots(figsize=(9, 4))
    for op in ops:
        ys = [_float(r, f"{op}_p99_ms") for r in samples]
        if any(not math.isnan(y) for y in ys):
            ax.plot(t_min, ys, marker=".", label=op)
    for x in restarts_s:
        ax.axvline(x / 60.0, color="grey", linestyle=":", linewidth=1)
    ax.set_yscale("log")
    ax.set_xlabel("minutes since start (dotted: SIGKILL + restart)")
    ax.set_ylabel("P99 latency per sample interval (ms)")
    ax.set_title("P99 latency per operation over the soak")
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "p99.png", dpi=100)
    plt.close(fig)
    written.append("p99.png")
    return written


def _fmt(x: Any, digits: int = 2) -> str:
    if isinstance(x, float):
        return "n/a" if math.isnan(x) else f"{x:.{digits}f}"
    return str(x)


def _leak_word(leak: dict[str, Any]) -> str:
    if leak["leak"]:
        return "LEAK"
    return "no leak" if leak.get("judged", True) else "not judged"


def write_markdown(summary: dict[str, Any], out_dir: Path) -> Path:
    s = summary
    verdict = "PASS" if s["passed"] else "FAIL"
    lines = [
        f"# Engram soak report: {verdict}",
        "",
        f"- started {s['started_at']}, ran {s['duration_s']:.0f} s of load ({s['wall_s']:.0f} s wall in all)",
        f"- command: `{s['command']}`",
        f"- machine: {s['machine']}",
        f"- {s['spaces']} spaces, offered rate {s['rate_per_s']:g} ops/s by {s['workers']} workers, "
        f"live set {s['live_per_space']} memories per space ({s['dimension']}-d), mix {s['mix']}",
        f"- server: `engram serve` pid(s) {', '.join(str(p) for p in s['server_pids'])}; "
        f"SIGKILL + restart every {s['kill_every_s']:g} s ({len(s['restarts'])} restarts)",
        f"- samples every {s['sample_every_s']:g} s: {s['samples']} rows in `samples.csv`",
        "",
        "## Verdict",
        "",
        "| check | result |",
        "|---|---|",
        f"| lost acknowledged writes | {len(s['lost'])} |",
        f"| forgotten memories that came back | {len(s['resurrected'])} |",
        f"| content mismatches on read-back | {len(s['content_mismatch'])} |",
        f"| errors (outside kill windows) | {s['errors_total']} |",
        f"| requests cut by a SIGKILL (expected, not errors) | {s['interrupted']} |",
        f"| leak | {_leak_word(s['leak'])}: {s['leak']['reason']} |",
        f"| graceful shutdown at the end | exit status {s['final_stop_status']} |",
        f"| server failed to come back | {'; '.join(s['fatal']) if s['fatal'] else 'never'} |",
        "",
        f"Leak rule: least-squares slope of server RSS against uptime over the last two thirds of the run "
        f"(leaving out each lifetime's first {s['leak']['warmup_s']:g} s of warm-up), "
        f"one intercept per server lifetime (restarts reset RSS), pooled over {s['leak']['lifetimes']} lifetimes and "
        f"{s['leak']['samples']} samples: {s['leak']['slope_mb_per_h']:.1f} MB/h. A leak is a slope above "
        f"{s['leak']['threshold_mb_per_h']:g} MB/h whose fitted growth over the window "
        f"({s['leak']['growth_mb']:.1f} MB in {s['leak']['window_s']:.0f} s of uptime) also exceeds the "
        f"{s['leak']['noise_mb']:g} MB noise floor. The live set is held steady, so RSS should not grow with data. "
        + (f"Compaction makes RSS a sawtooth of about {s['leak']['cycle_s']:.0f} s per cycle, so the fit is made to the "
           f"peak of each whole cycle (the samples above are those peaks), and a run whose lifetimes do not span two "
           f"cycles is not judged." if s['leak'].get('cycle_s') else ""),
        "",
        "## Latency per operation (whole run, acknowledged answers only)",
        "",
        "| operation | count | errors | ops/s | P50 ms | P95 ms | P99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for op, o in s["ops"].items():
        lines.append(f"| {op} | {o['count']} | {o['errors']} | {_fmt(o['per_s'], 1)} | {_fmt(o['p50_ms'])} | "
                     f"{_fmt(o['p95_ms'])} | {_fmt(o['p99_ms'])} | {_fmt(o['max_ms'])} |")
    lines += ["", "## Server process", "",
              "| figure | first sample | last sample | max |", "|---|---:|---:|---:|"]
    for key, label in (("rss_mb", "RSS (MB)"), ("fds", "open file descriptors"), ("threads", "threads"),
                       ("wal_mb", "WAL segments (MB)"), ("data_mb", "data directory (MB)")):
        p = s["process"].get(key, {})
        lines.append(f"| {label} | {_fmt(p.get('first', float('nan')), 1)} | {_fmt(p.get('last', float('nan')), 1)} | "
                     f"{_fmt(p.get('max', float('nan')), 1)} |")
    lines += ["", "## Restarts (SIGKILL, restart, verify every acknowledged write)", "",
              "| at s | lifetime | recovery to /health s | verify s | acknowledged checked | read back | lost |",
              "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in s["restarts"]:
        lines.append(f"| {r['at_s']:.0f} | {r['lifetime']} | {r['recovery_s']:.2f} | {r['verify']['seconds']:.2f} | "
                     f"{r['verify']['acknowledged_checked']} | {r['verify']['read_back']} | {r['verify']['lost_now']} |")
    lines += ["", "## Consolidation cadence", "", s["consolidation_note"], ""]
    if s["plots"]:
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in s["plots"]] + [""]
    else:
        lines += ["## Plots", "", "matplotlib is not installed: no PNG plots (`pip install -e '.[bench]'`).", ""]
    for title, key in (("Lost writes", "lost"), ("Resurrected forgets", "resurrected"),
                       ("Content mismatches", "content_mismatch"), ("Errors (first 50)", "error_examples")):
        if s[key]:
            lines += [f"## {title}", ""] + [f"- {x}" for x in s[key][:200]] + [""]
    lines += ["## Notes", ""] + [f"- {n}" for n in s["notes"]] + [""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    return path


def write_summary(summary: dict[str, Any], out_dir: Path) -> Path:
    path = out_dir / "summary.json"
    path.write_text(json.dumps(summary, indent=2, default=str))
    return path
