"""Consolidation over HTTP against a real server process.

Proves: POST /api/v1/consolidate runs now and stores patterns; GET
/api/v1/consolidations reflects the latest patterns with citations to their
episodes (and refreshes after new episodes, unlike the original); the consolidation
SSE stream reports the run; Prometheus counts runs; the scheduler runs on its own
when the interval is short; `engram consolidate` drives the same route.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone

import numpy as np

from conftest import run_cli

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)


def cluster_vectors(seed: int, count: int) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    center = rng.standard_normal(768)
    return [(center + 0.05 * rng.standard_normal(768)).tolist() for _ in range(count)]


def add_episodes(client, space: str, seed: int, count: int, offset: int = 0) -> list[str]:
    ids = []
    for i, v in enumerate(cluster_vectors(seed, count)):
        r = client.post("/api/v1/episodes/remember", headers={"X-Memory-Space": space}, json={
            "id": f"ep-{seed}-{offset + i}", "when": (T0 + timedelta(hours=offset + i)).isoformat(),
            "what": f"coffee with ana number {offset + i}", "embedding": v, "importance": 0.6})
        assert r.status_code == 201, r.text
        ids.append(r.json()["memory_id"])
    return ids


def test_consolidate_now_and_beliefs_with_citations(start_server) -> None:
    server = start_server()
    events: list[dict] = []

    def listen() -> None:
        with server.client() as c, c.stream("GET", "/api/v1/stream/consolidation", timeout=30) as r:
            for line in r.iter_lines():
                if line.startswith("data:"):
                    events.append(json.loads(line[5:]))
                    if any(e.get("patterns") is not None for e in events):
                        return

    with server.client() as c:
        ids = add_episodes(c, "agent-1", 1, 4)
        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        time.sleep(0.5)
        r = c.post("/api/v1/consolidate", headers={"X-Memory-Space": "agent-1"}, json={})
        assert r.status_code == 200, r.text
        assert r.json()["patterns"] == 1 and r.json()["episodes"] == 4
        doc = c.get("/api/v1/consolidations", headers={"X-Memory-Space": "agent-1"}).json()
        assert len(doc["beliefs"]) == 1
        belief = doc["beliefs"][0]
        assert sorted(cit["episode_id"] for cit in belief["citations"]) == sorted(ids)
        assert belief["stats"]["episode_count"] == 4 and 0 < belief["strength"] <= 1
        one = c.get(f"/api/v1/consolidations/{belief['id']}", headers={"X-Memory-Space": "agent-1"})
        assert one.status_code == 200 and one.json()["id"] == belief["id"]
        # The document refreshes: a second cluster appears after the next run.
        add_episodes(c, "agent-1", 2, 3)
        assert c.post("/api/v1/consolidate", headers={"X-Memory-Space": "agent-1"}, json={}).json()["patterns"] == 2
        assert len(c.get("/api/v1/consolidations", headers={"X-Memory-Space": "agent-1"}).json()["beliefs"]) == 2
        listener.join(10)
        kinds = [e.get("memory_space_id") for e in events if e.get("patterns") is not None]
        assert kinds and kinds[0] == "agent-1"
        metrics = c.get("/metrics").text
        assert 'engram_consolidation_runs_total{space="agent-1"} 2.0' in metrics


def test_scheduler_runs_on_its_interval_and_cli(start_server) -> None:
    server = start_server("--consolidation-interval", "0.5")
    with server.client() as c:
        add_episodes(c, "agent-2", 3, 3)
        deadline = time.monotonic() + 20
        beliefs: list = []
        while time.monotonic() < deadline and not beliefs:
            time.sleep(0.3)
            beliefs = c.get("/api/v1/consolidations", headers={"X-Memory-Space": "agent-2"}).json()["beliefs"]
        assert len(beliefs) == 1
    out = run_cli("--url", server.url, "consolidate", "--space", "agent-2", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["patterns"] == 1
