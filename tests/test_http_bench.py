"""``engram bench http`` and the space setting it relies on.

Proves: (1) POST /api/v1/spaces accepts ``config.effects`` (recall's cognitive effects,
fixed at creation), lists it in the space document, and refuses bad values with the
error envelope (400 for an unknown effect, 422 for a wrong type); a space created with
``[]`` answers recall hits that carry no effects. (2) The load generator honours
``Connection: close``: it reconnects and counts no error (a tiny in-test HTTP server
closes every third response). (3) A short real run with ``effects="off"`` creates the
space with no effects, reports both phases and a health ratio, and refuses to reuse a
space whose effects differ. (4) The bulk bench stores what it says, in both formats,
and with two requests in flight, and its engine time is part of its wall time. (5) With
``wrk=True`` the report holds wrk's figures for the same phases (wrk's output, units
included, is read right). How: a real ``engram serve`` child (conftest) and httpx.
"""

from __future__ import annotations

import json

import trio

from conftest import vec
from engram.bench import http as bench


def test_space_effects_setting(module_server):
    with module_server.client() as c:
        r = c.post("/api/v1/spaces", json={"id": "plain-recall", "config": {"effects": []}})
        assert r.status_code == 201, r.text
        assert r.json()["effects"] == []
        r = c.post("/api/v1/spaces", json={"id": "some-effects", "config": {"effects": ["spacing", "priming"]}})
        assert r.status_code == 201, r.text
        assert r.json()["effects"] == ["priming", "spacing"]  # the engine's canonical order
        listed = {s["id"]: s for s in c.get("/api/v1/spaces").json()["spaces"]}
        assert listed["plain-recall"]["effects"] == []

        r = c.post("/api/v1/spaces", json={"id": "bad-effects", "config": {"effects": ["telepathy"]}})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "INVALID_MEMORY_INPUT"
        assert "telepathy" in r.json()["error"]["message"]
        r = c.post("/api/v1/spaces", json={"id": "bad-effects", "config": {"effects": "priming"}})
        assert r.status_code == 422, r.text
        assert "bad-effects" not in {s["id"] for s in c.get("/api/v1/spaces").json()["spaces"]}

        h = {"X-Memory-Space": "plain-recall"}
        for i in range(3):
            r = c.post("/api/v1/memories/remember", json={"content": f"fact {i}", "embedding": vec(500 + i)}, headers=h)
            assert r.status_code == 201, r.text
        for _ in range(2):  # a second recall is where priming would show
            body = c.post("/api/v1/memories/recall", json={"embedding": vec(500), "threshold": 0}, headers=h).json()
        hits = body["memories"]["vivid"] + body["memories"]["associated"]
        assert hits and all(hit["effects"] == [] for hit in hits)


def test_client_honours_connection_close():
    async def main() -> dict:
        served = 0

        async def handle(stream: trio.SocketStream) -> None:
            nonlocal served
            buf = b""
            try:
                while True:
                    while b"\r\n\r\n" not in buf:
                        chunk = await stream.receive_some(65536)
                        if not chunk:
                            return
                        buf += chunk
                    _, _, buf = buf.partition(b"\r\n\r\n")
                    served += 1
                    close = served % 3 == 0
                    await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                                          + (b"Connection: close\r\n" if close else b"") + b"\r\nok")
                    if close:
                        return
            finally:
                await stream.aclose()

        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(trio.serve_tcp, handle, 0)
            port = listeners[0].socket.getsockname()[1]
            request = {"health": [bench._request("GET", "/health", f"127.0.0.1:{port}", {})]}
            stats, _elapsed, conn_errors = await bench._phase("127.0.0.1", port, 2, 0.5, {"health": 1}, request)
            nursery.cancel_scope.cancel()
        return {"stats": stats["health"], "conn_errors": conn_errors}

    out = trio.run(main)
    assert out["conn_errors"] == 0
    assert out["stats"].errors == 0
    assert len(out["stats"].latencies_ns) >= 6
    assert out["stats"].reconnects >= 2


def test_short_run_with_effects_off(module_server):
    logs: list[str] = []
    report = bench.run_bench(url=module_server.url, clients="2", duration="1s", mix="remember:recall=1:4", preload=50,
                             space="bench-plain", dimension=768, baseline=True, effects="off", log=logs.append)
    assert report["effects"] == []
    phases = [r["phase"] for r in report["results"]]
    assert phases == ["health", "remember:recall=1:4"]
    mixed = report["results"][1]
    assert mixed["ok"] > 0 and mixed["errors"] == 0
    assert mixed["ops"]["recall"]["ok"] > 0 and mixed["ops"]["remember"]["ok"] > 0
    assert "remember:recall=1:4 / health at 2 clients" in report["ratios"]
    assert "recall effects: none" in report["text"]
    try:
        bench.run_bench(url=module_server.url, clients="1", duration="0.2s", mix="recall", preload=0, space="bench-plain",
                        dimension=768, baseline=False, effects="on", log=logs.append)
    except ValueError as exc:
        assert "already exists with effects" in str(exc)
    else:
        raise AssertionError("a space created without effects was reused for --effects on")


def test_bulk_bench_stores_and_splits_the_time(module_server):
    for fmt in ("msgpack", "jsonl"):
        report = bench.run_bulk(url=module_server.url, space=f"bulk-{fmt}", count=250, batch=100, fmt=fmt, seed=3)
        assert report["count"] == 250
        assert report["per_s"] > 0 and report["engine_s"] > 0
        assert 0.0 <= report["http_share"] <= 1.0
        assert report["engine_s"] <= report["wall_s"]
        with module_server.client(headers={"X-Memory-Space": f"bulk-{fmt}"}) as c:
            assert c.get("/api/v1/memories", params={"limit": 1}).json()["count"] == 250


def test_bulk_bench_with_two_requests_in_flight(module_server):
    report = bench.run_bulk(url=module_server.url, space="bulk-two", count=400, batch=100, fmt="msgpack", seed=4, concurrency=2)
    assert report["count"] == 400 and report["concurrency"] == 2
    assert report["parse_us_per_memory"] > 0 and report["read_us_per_memory"] >= 0
    # Overlapping requests: no HTTP/engine split is printed (it would not add up).
    assert "no HTTP/engine split" in report["text"] and "HTTP side" not in report["text"]
    with module_server.client(headers={"X-Memory-Space": "bulk-two"}) as c:
        assert c.get("/api/v1/memories", params={"limit": 1}).json()["count"] == 400


WRK_SAMPLE = """Running 2s test @ http://127.0.0.1:7481/health
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     6.81ms    1.94ms  30.96ms   86.25%
  Latency Distribution
     50%  650.00us
     75%    7.94ms
     90%    9.97ms
     99%    1.20s
  4237 requests in 10.05s, 16.93MB read
  Non-2xx or 3xx responses: 3
Requests/sec:    421.80
requests 4237, errors (status) 3, p50 0.65 ms, p95 71.38 ms, p99 1200.00 ms
"""


def test_wrk_output_is_read_with_units():
    doc = bench._parse_wrk(WRK_SAMPLE)
    assert doc["throughput_per_s"] == 421.8
    assert doc["requests"] == 4237 and doc["errors"] == 3
    assert doc["p50_ms"] == 0.65 and doc["p99_ms"] == 1200.0 and doc["p95_ms"] == 71.38


def test_a_percentile_wrk_does_not_print_is_null_not_nan():
    # wrk's own table (the /health run) has no 95%: JSON null, never NaN (not JSON).
    doc = bench._parse_wrk(WRK_SAMPLE.rsplit("requests 4237", 1)[0])
    assert doc["p95_ms"] is None and doc["p50_ms"] == 0.65
    assert json.loads(json.dumps(doc, allow_nan=False)) == doc


def test_short_run_beside_wrk(module_server):
    import os

    import pytest

    if not os.path.exists(bench.WRK_PATH):
        pytest.skip("wrk is not installed (apt-get install wrk)")
    report = bench.run_bench(url=module_server.url, clients="2", duration="1s", mix="remember:recall=1:4", preload=20,
                             space="bench-wrk", dimension=768, baseline=True, effects="off", wrk=True, log=lambda s: None)
    assert [w["phase"] for w in report["wrk"]] == ["health", "remember:recall=1:4"]
    for w in report["wrk"]:
        assert w["throughput_per_s"] > 0 and w["errors"] == 0, w
    assert "wrk: remember:recall=1:4 / health" in report["ratios"]
    assert "wrk health" in report["text"]


def test_warm_up_runs_the_mix_unmeasured(module_server):
    logs: list[str] = []
    report = bench.run_bench(url=module_server.url, clients="2", duration="0.5s", mix="recall", preload=30, space="bench-warm",
                             dimension=768, baseline=False, warmup="0.5s", log=logs.append)
    assert any(line.startswith("warm-up: recall x2 for 0.5s") for line in logs), logs
    assert [r["phase"] for r in report["results"]] == ["recall"]  # the warm-up is not a result
    assert "after a 0.5s warm-up" in report["text"]
    with module_server.client() as c:  # the warm-up really recalled: the space's recall count grew past the phase's
        metrics = c.get("/metrics").text
    recalls = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                  if line.startswith("engram_recalls_total") and 'space="bench-warm"' in line)
    assert recalls > report["results"][0]["ok"]


def test_durations_must_be_zero_or_more():
    import pytest

    for bad, option in (("-1s", "--warmup"), ("soon", "--warmup"), ("nan", "--warmup"), ("inf", "--warmup")):
        with pytest.raises(ValueError, match=option):
            bench.run_bench(url="http://127.0.0.1:9", clients="1", duration="1s", mix="recall", preload=0,
                            space="x-none", dimension=768, baseline=False, warmup=bad)
    with pytest.raises(ValueError, match="--duration: '0s' measures nothing"):
        bench.run_bench(url="http://127.0.0.1:9", clients="1", duration="0s", mix="recall", preload=0, space="x-none",
                        dimension=768, baseline=False)


def test_each_phase_reports_cpu_per_request_of_server_and_client(module_server):
    report = bench.run_bench(url=module_server.url, clients="2", duration="0.5s", mix="recall", preload=30, space="bench-cpu",
                             dimension=768, baseline=True, log=lambda s: None)
    for r in report["results"]:
        assert r["server_cpu_us_per_request"] is not None and r["server_cpu_us_per_request"] > 0, r
        assert r["client_cpu_us_per_request"] > 0, r
    health, recall = report["results"]
    # A recall (a scan, then hits to JSON) costs the server more than a /health answer.
    assert recall["server_cpu_us_per_request"] > health["server_cpu_us_per_request"]
    assert "srv us/req" in report["text"]


def test_process_cpu_reads_proc_and_refuses_an_unknown_pid():
    import os
    import time

    before = bench.process_cpu_s(os.getpid())
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:
        pass
    assert bench.process_cpu_s(os.getpid()) > before
    assert bench.process_cpu_s(2**22 + 12345) is None  # beyond pid_max: no such process
