"""The saturation ramp (engram.bench.ramp) stops by its stated rules and reports the knee.

How: the stop rules run on made-up steps (a tail that breaks away, a failed request, a
throughput plateau, the client limit, a first step that is already broken) and must
name the right knee and rule. Then a short real ramp against a real ``engram serve``
process (0.5 s steps up to 4 clients) must produce steps with throughput, percentiles,
a server RSS read from /proc, and a text report naming the knee; `engram bench http --ramp`
drives the same ramp from the CLI.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engram.bench.ramp import find_knee, run_ramp


def _step(clients: int, rps: float, p50: float, p99: float, errors: int = 0) -> dict:
    return {"clients": clients, "throughput_per_s": rps, "p50_ms": p50, "p95_ms": p99, "p99_ms": p99,
            "errors": errors, "ok": 100}


def test_tail_rule_knee_is_the_step_before() -> None:
    steps = [_step(1, 100, 1, 2), _step(2, 190, 1, 3), _step(4, 300, 1.5, 20)]
    v = find_knee(steps, tail_ratio=10)
    assert v["knee"]["clients"] == 2
    assert v["stopped_at"]["clients"] == 4
    assert "P99" in v["rule"]


def test_errors_stop_the_ramp() -> None:
    v = find_knee([_step(1, 100, 1, 2), _step(2, 150, 1, 2, errors=3)], tail_ratio=10)
    assert v["knee"]["clients"] == 1
    assert "failed" in v["rule"]


def test_plateau_knee_is_the_fewest_clients_at_best_throughput() -> None:
    steps = [_step(1, 100, 1, 2), _step(2, 200, 1, 2), _step(4, 205, 2, 4), _step(8, 204, 4, 8)]
    v = find_knee(steps, tail_ratio=10)
    assert v["stopped_at"]["clients"] == 8
    assert v["knee"]["clients"] == 4
    assert "plateau" in v["rule"]


def test_limit_and_broken_first_step() -> None:
    v = find_knee([_step(1, 100, 1, 2), _step(2, 200, 1, 2)], tail_ratio=10)
    assert v["stopped_at"] is None
    assert v["knee"]["clients"] == 2
    v = find_knee([_step(1, 100, 1, 50)], tail_ratio=10)
    assert v["knee"] is None


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        run_ramp(url="http://127.0.0.1:1", clients_start=0)
    with pytest.raises(ValueError):
        run_ramp(url="http://127.0.0.1:1", tail_ratio=1)
    with pytest.raises(ValueError, match="--step: '0s' measures nothing"):
        run_ramp(url="http://127.0.0.1:1", step="0s")


@pytest.fixture
def server(tmp_path: Path):
    data = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "-m", "engram", "serve", "--data", str(data), "--port", "0",
                             "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid_file = data / "engram.pid"
    deadline = time.monotonic() + 60
    while not pid_file.exists():
        assert proc.poll() is None, "engram serve exited"
        assert time.monotonic() < deadline, "engram serve did not start"
        time.sleep(0.05)
    doc = json.loads(pid_file.read_text())
    try:
        yield doc["url"], proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_short_real_ramp(server) -> None:
    url, pid = server
    result = run_ramp(url=url, mix="remember:recall=1:4", step="0.5s", clients_max=4, preload=300, log=lambda m: None)
    assert result["server_pid"] == pid
    assert 1 <= len(result["steps"]) <= 3
    assert [s["clients"] for s in result["steps"]] == [1, 2, 4][: len(result["steps"])]
    for s in result["steps"]:
        assert s["ok"] > 0
        assert s["p50_ms"] <= s["p99_ms"]
        assert s["rss_peak_mb"] is not None and s["rss_peak_mb"] > 10
    assert "knee:" in result["text"]
    assert "stopped:" in result["text"]


def test_cli_bench_http_ramp(server) -> None:
    url, _pid = server
    proc = subprocess.run([sys.executable, "-m", "engram", "--url", url, "bench", "http", "--ramp", "--clients", "2",
                           "--duration", "0.5s", "--preload", "100", "--mix", "recall", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert [s["clients"] for s in doc["steps"]][0] == 1
    assert max(s["clients"] for s in doc["steps"]) <= 2
    assert "knee" in doc and "rule" in doc
