"""The soak runner works end to end, and its leak rule says what it claims.

How: one real two-minute soak (``python soak/run.py`` as a subprocess: a real
``engram serve``, 12 spaces, a mixed load, three SIGKILL + restart + verify cycles, one
consolidation round) must exit 0 within 130 s and leave a report that states zero lost
writes and zero errors, a leak verdict, the restarts, the consolidation cadence and both
PNG plots, plus a CSV with one row per sample. The leak fit, the histogram and the
duration parser are checked directly on made-up numbers: a steady sawtooth across
restarts is no leak, steady growth within lifetimes is one, noise below the floor is not.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "soak"))

from _stats import Histogram, leak_verdict, parse_duration_s  # noqa: E402


@pytest.mark.slow
@pytest.mark.timeout(200)
def test_two_minute_soak_passes_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "soak"
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "soak" / "run.py"), "--duration", "105s", "--spaces", "12", "--rate", "80",
         "--live-per-space", "150", "--kill-every", "30s", "--sample-every", "3s", "--consolidate-every", "60s",
         "--out", str(out)],
        capture_output=True, text=True, timeout=190)
    wall_s = time.monotonic() - t0
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert wall_s <= 130, f"the CI soak took {wall_s:.0f}s"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["passed"] is True
    assert summary["lost"] == []
    assert summary["resurrected"] == []
    assert summary["errors_total"] == 0
    assert summary["final_stop_status"] == 0
    assert len(summary["restarts"]) >= 3  # two on the cadence and the final one
    assert all(r["verify"]["acknowledged_checked"] > 0 for r in summary["restarts"])
    assert len(set(summary["server_pids"])) == len(summary["restarts"]) + 1
    for op in ("remember", "recall", "search", "spread", "forget", "consolidate"):
        assert summary["ops"][op]["count"] > 0, op
    report = (out / "report.md").read_text()
    assert report.startswith("# Engram soak report: PASS")
    assert "| lost acknowledged writes | 0 |" in report
    assert "| errors (outside kill windows) | 0 |" in report
    # Its lifetimes (30 s) are far shorter than two compaction cycles of its small spaces.
    assert "| leak | not judged: too short to judge" in report
    assert "MB/h" in report
    assert "## Restarts" in report
    assert "## Consolidation cadence" in report
    for png in ("rss.png", "p99.png"):
        assert f"![{png}]({png})" in report
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(out / "samples.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) >= 20
    for key in ("rss_mb", "fds", "threads", "wal_bytes", "remember_p99_ms", "recall_p50_ms"):
        assert key in rows[0]
    assert sum(1 for r in rows if r["rss_mb"]) >= 20
    assert not (out / "data").exists()  # a passing run removes its data directory


def test_leak_verdict_sawtooth_across_restarts_is_no_leak() -> None:
    # Each lifetime: RSS flat around 300 MB; restarts drop and refill it. Run time grows.
    times, rss, life = [], [], []
    for lifetime in range(1, 6):
        for i in range(20):
            times.append(lifetime * 600.0 + i * 30.0)
            rss.append(300.0 + (i % 3) * 0.5)
            life.append(lifetime)
    v = leak_verdict(times, rss, life, threshold_mb_per_h=20, noise_mb=32)
    assert not v.leak
    assert abs(v.slope_mb_per_h) < 20


def test_leak_verdict_growth_within_lifetimes_is_a_leak() -> None:
    # 100 MB/h within each lifetime, reset by restarts: an unpooled fit over run time would miss it.
    times, rss, life = [], [], []
    for lifetime in range(1, 4):
        for i in range(60):
            t = lifetime * 7200.0 + i * 120.0
            times.append(t)
            rss.append(200.0 + 100.0 * (i * 120.0) / 3600.0)
            life.append(lifetime)
    v = leak_verdict(times, rss, life, threshold_mb_per_h=20, noise_mb=32)
    assert v.leak
    assert 95 < v.slope_mb_per_h < 105


def test_leak_verdict_short_noise_is_not_a_leak() -> None:
    times = [float(t) for t in range(0, 120, 3)]
    rss = [300.0 + 0.1 * t for t in times]  # 360 MB/h but only ~8 MB over the window
    v = leak_verdict(times, rss, [1] * len(times), threshold_mb_per_h=20, noise_mb=32)
    assert not v.leak
    assert v.slope_mb_per_h > 20
    assert "noise floor" in v.reason


def test_histogram_percentiles_within_one_percent() -> None:
    h = Histogram()
    for i in range(1, 10001):
        h.add(i / 1e4)  # 0.1 ms .. 1 s, uniform
    assert h.total == 10000
    assert abs(h.percentile_ms(0.5) - 500) / 500 < 0.011
    assert abs(h.percentile_ms(0.99) - 990) / 990 < 0.011
    assert h.percentile_ms(1.0) == pytest.approx(1000, rel=1e-9)


def test_parse_duration() -> None:
    assert parse_duration_s("90s") == 90
    assert parse_duration_s("2m") == 120
    assert parse_duration_s("7d") == 7 * 86400
    assert parse_duration_s("500ms") == 0.5
    with pytest.raises(ValueError):
        parse_duration_s("soon")
