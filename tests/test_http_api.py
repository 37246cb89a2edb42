"""The HTTP API of a real ``engram serve`` process, route by route.

Proves: the routes and JSON shapes of the original Engram (remember, episodes,
recall with every filter applied, probabilistic query, list/get/delete with a real
delete, search, spaces, consolidations placeholder, health, system health, metrics,
OpenAPI and /docs, bulk in JSON lines and msgpack, the SSE stream), space selection
precedence (header > ?space= > body > default) and isolation, and that data written
before a restart is there after it. How: start the server as a child process on a
free port (tests/conftest.py) and talk HTTP to it with httpx.
"""

from __future__ import annotations

import json
import threading
import time

import httpx
import msgpack
import numpy as np
import pytest

from conftest import vec


def remember(c: httpx.Client, body: dict, **kw) -> dict:
    r = c.post("/api/v1/memories/remember", json=body, **kw)
    assert r.status_code == 201, r.text
    return r.json()


def test_remember_and_recall_by_text_and_embedding(module_server):
    with module_server.client() as c:
        doc = remember(c, {"content": "The mitochondria is the powerhouse of the cell", "confidence": 0.95,
                           "embedding": vec(1), "tags": ["biology"]}, headers={"X-Memory-Space": "shapes"})
        assert set(doc) >= {"memory_id", "storage_confidence", "consolidation_state", "observed_at", "stored_at"}
        assert doc["storage_confidence"] == {"value": 0.95, "category": "High", "reasoning": doc["storage_confidence"]["reasoning"]}
        assert doc["consolidation_state"] == "Recent"
        mid = doc["memory_id"]
        remember(c, {"content": "Paris is the capital of France", "embedding": vec(2)}, headers={"X-Memory-Space": "shapes"})

        r = c.get("/api/v1/memories/recall", params={"query": "mitochondria"}, headers={"X-Memory-Space": "shapes"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body["memories"]) == {"vivid", "associated", "reconstructed"}
        found = body["memories"]["vivid"] + body["memories"]["associated"]
        assert [m["id"] for m in found] == [mid]
        item = found[0]
        assert set(item) >= {"id", "content", "confidence", "activation_level", "similarity_score", "retrieval_path",
                             "observed_at", "last_access", "tags", "memory_type"}
        assert item["tags"] == ["biology"]
        assert set(body["recall_confidence"]) == {"value", "category", "reasoning"}
        assert "query_analysis" in body

        r = c.get("/api/v1/memories/recall", params={"embedding": json.dumps(vec(1)), "max_results": 1},
                  headers={"X-Memory-Space": "shapes"})
        assert r.status_code == 200, r.text
        hits = r.json()["memories"]["vivid"] + r.json()["memories"]["associated"]
        assert [h["id"] for h in hits] == [mid]
        assert hits[0]["similarity_score"] == pytest.approx(1.0, abs=1e-5)

        # POST form of recall takes the same parameters as a JSON body.
        r = c.post("/api/v1/memories/recall", json={"embedding": vec(2), "max_results": 1}, headers={"X-Memory-Space": "shapes"})
        assert r.status_code == 200, r.text
        hits = r.json()["memories"]["vivid"] + r.json()["memories"]["associated"]
        assert hits[0]["content"] == "Paris is the capital of France"


def test_recall_filters_are_applied(module_server):
    h = {"X-Memory-Space": "filters"}
    with module_server.client(headers=h) as c:
        for i, (when, where) in enumerate([("2024-01-10T00:00:00Z", "lab"), ("2024-03-10T00:00:00Z", "lab"),
                                           ("2024-03-11T00:00:00Z", "home"), ("2024-06-01T00:00:00Z", "lab")]):
            r = c.post("/api/v1/episodes/remember", json={"when": when, "what": f"experiment number {i}", "where_location": where,
                                                          "who": ["ana"], "embedding": vec(100 + i), "importance": 0.9})
            assert r.status_code == 201, r.text
        params = {"query": "experiment", "from_time": "2024-03-01T00:00:00Z", "to_time": "2024-04-01T00:00:00Z", "max_results": 50}
        body = c.get("/api/v1/memories/recall", params=params).json()
        got = sorted(m["content"] for part in body["memories"].values() for m in part)
        assert got == ["experiment number 1", "experiment number 2"]
        body = c.get("/api/v1/memories/recall", params={**params, "location": "lab"}).json()
        got = sorted(m["content"] for part in body["memories"].values() for m in part)
        assert got == ["experiment number 1"]
        # threshold: an unrelated embedding cue with threshold 0.9 finds nothing.
        body = c.get("/api/v1/memories/recall", params={"embedding": json.dumps(vec(999)), "threshold": 0.9}).json()
        assert sum(len(p) for p in body["memories"].values()) == 0
        # max_results bounds the answer.
        body = c.get("/api/v1/memories/recall", params={"query": "experiment", "max_results": 2}).json()
        assert sum(len(p) for p in body["memories"].values()) == 2
        # mode=spreading answers the same shape.
        body = c.get("/api/v1/memories/recall", params={"query": "experiment", "mode": "spreading"}).json()
        assert body["query_analysis"]["mode"] == "spreading"


def test_probabilistic_query(module_server):
    with module_server.client(headers={"X-Memory-Space": "prob"}) as c:
        for i in range(3):
            remember(c, {"content": f"coffee fact {i}", "confidence": 0.9})
        r = c.get("/api/v1/query/probabilistic", params={"query": "coffee", "include_evidence": "true", "include_uncertainty": "true"})
        assert r.status_code == 200, r.text
        body = r.json()
        ci = body["confidence_interval"]
        assert 0 <= ci["lower"] <= ci["point"] <= ci["upper"] <= 1
        assert ci["width"] == pytest.approx(ci["upper"] - ci["lower"])
        assert len(body["memories"]) == 3 and len(body["evidence_chain"]) == 3
        assert {s["source"] for s in body["uncertainty_sources"]} == {"decay", "match", "sample_size"}


def test_list_get_delete_search(module_server):
    with module_server.client(headers={"X-Memory-Space": "crud"}) as c:
        ids = [remember(c, {"content": f"note {i} about zebras", "embedding": vec(200 + i)})["memory_id"] for i in range(5)]
        body = c.get("/api/v1/memories", params={"limit": 2, "offset": 1}).json()
        assert body["count"] == 5 and body["pagination"] == {"offset": 1, "limit": 2, "returned": 2}
        assert [m["id"] for m in body["memories"]] == ids[1:3]
        m = c.get(f"/api/v1/memories/{ids[0]}", params={"include_embeddings": "true"}).json()
        assert m["content"] == "note 0 about zebras" and len(m["embedding"]) == 768
        assert np.allclose(m["embedding"], vec(200), atol=1e-6)
        s = c.get("/api/v1/memories/search", params={"query": "zebras", "limit": 3}).json()
        assert s["total"] == 3 and len(s["memories"]) == 3
        r = c.delete(f"/api/v1/memories/{ids[0]}")
        assert r.status_code == 200 and r.json()["deleted"] is True
        r = c.get(f"/api/v1/memories/{ids[0]}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "MEMORY_NOT_FOUND"
        assert c.delete(f"/api/v1/memories/{ids[0]}").status_code == 404
        assert c.get("/api/v1/memories").json()["count"] == 4
        s = c.get("/api/v1/memories/search", params={"query": "zebras", "limit": 10}).json()
        assert ids[0] not in [x["id"] for x in s["memories"]]


def test_space_selection_precedence_and_isolation(module_server):
    with module_server.client() as c:
        a = remember(c, {"content": "only in alpha", "memory_space_id": "body-space"}, headers={"X-Memory-Space": "alpha"})
        assert a["memory_space_id"] == "alpha"  # header beats body
        b = remember(c, {"content": "only in beta", "memory_space_id": "body-space"}, params={"space": "beta"})
        assert b["memory_space_id"] == "beta"  # query beats body
        d = remember(c, {"content": "only in body space", "memory_space_id": "body-space"})
        assert d["memory_space_id"] == "body-space"
        e = remember(c, {"content": "in the default space"})
        assert e["memory_space_id"] == "default"
        for space, text in (("alpha", "alpha"), ("beta", "beta")):
            body = c.get("/api/v1/memories/recall", params={"query": "only in", "max_results": 10}, headers={"X-Memory-Space": space}).json()
            got = [m["content"] for part in body["memories"].values() for m in part]
            assert got == [f"only in {text}"]
        assert c.get(f"/api/v1/memories/{a['memory_id']}", headers={"X-Memory-Space": "beta"}).status_code == 404
        # A read on an unknown space answers empty and creates nothing.
        r = c.get("/api/v1/memories/recall", params={"query": "x"}, headers={"X-Memory-Space": "never-written"})
        assert r.status_code == 200
        spaces = [s["id"] for s in c.get("/api/v1/spaces").json()["spaces"]]
        assert "never-written" not in spaces and {"alpha", "beta", "body-space", "default"} <= set(spaces)


def test_spaces_routes(module_server):
    with module_server.client() as c:
        r = c.post("/api/v1/spaces", json={"id": "made-by-post"})
        assert r.status_code == 201, r.text
        assert set(r.json()) >= {"id", "persistence_root", "created_at"}
        assert c.post("/api/v1/spaces", json={"id": "made-by-post"}).status_code == 200
        body = c.get("/api/v1/spaces").json()
        assert any(s["id"] == "made-by-post" for s in body["spaces"])
        r = c.post("/api/v1/spaces", json={"id": "Bad Space!"})
        assert r.status_code == 400 and r.json()["error"]["field"] == "id"


def test_health_metrics_docs_consolidations(module_server):
    with module_server.client() as c:
        for path in ("/health", "/health/alive"):
            body = c.get(path).json()
            assert body["status"] == "healthy" and body["service"] == "engram" and body["version"]
        sh = c.get("/api/v1/system/health").json()
        assert sh["status"] == "healthy" and isinstance(sh["checks"], list)
        assert all(set(s) >= {"space", "memories", "pressure", "wal_lag_ms", "consolidation_rate"} for s in sh["spaces"])
        m = c.get("/metrics")
        assert m.status_code == 200 and "engram_http_requests_total" in m.text
        spec = c.get("/api-docs/openapi.json").json()
        assert spec["openapi"].startswith("3.") and "/api/v1/memories/remember" in spec["paths"]
        docs = c.get("/docs")
        assert docs.status_code == 200 and "openapi.json" in docs.text and "cdn" not in docs.text.lower()
        cons = c.get("/api/v1/consolidations").json()
        assert cons["beliefs"] == [] and "generated_at" in cons and "stats" in cons
        assert c.get("/api/v1/consolidations/nope").status_code == 404


def test_bulk_json_lines_and_msgpack(module_server):
    with module_server.client(headers={"X-Memory-Space": "bulk"}) as c:
        lines = "\n".join(json.dumps({"content": f"bulk line {i}", "embedding": vec(300 + i), "confidence": 0.8}) for i in range(50))
        r = c.post("/api/v1/memories/bulk", content=lines, headers={"Content-Type": "application/x-ndjson"})
        assert r.status_code == 201, r.text
        assert r.json()["count"] == 50
        items = [{"content": f"packed {i}", "embedding": np.asarray(vec(400 + i), "<f4").tobytes()} for i in range(50)]
        r = c.post("/api/v1/memories/bulk", content=msgpack.packb(items), headers={"Content-Type": "application/msgpack"})
        assert r.status_code == 201, r.text
        ids = r.json()["memory_ids"]
        assert len(ids) == 50
        got = c.get(f"/api/v1/memories/{ids[7]}", params={"include_embeddings": "true"}).json()
        assert got["content"] == "packed 7" and np.allclose(got["embedding"], vec(407), atol=1e-6)
        assert c.get("/api/v1/memories").json()["count"] == 100
        # All or nothing: one bad line rejects the batch and stores none of it.
        bad = lines + "\n" + json.dumps({"content": "bad", "embedding": [1.0, 2.0]})
        r = c.post("/api/v1/memories/bulk", content=bad, headers={"Content-Type": "application/x-ndjson"})
        assert r.status_code == 400 and r.json()["error"]["field"] == "items[50].embedding"
        assert c.get("/api/v1/memories").json()["count"] == 100


def test_sse_stream_reports_memory_events(module_server):
    events: list[str] = []
    ready = threading.Event()

    def listen() -> None:
        with httpx.Client(base_url=module_server.url, timeout=10.0) as c:
            with c.stream("GET", "/api/v1/stream/memories", headers={"X-Memory-Space": "events"}) as r:
                assert r.headers["content-type"].startswith("text/event-stream")
                for line in r.iter_lines():
                    if line.startswith("event:"):
                        events.append(line.split(":", 1)[1].strip())
                        ready.set()
                    if "memory_deleted" in events:
                        return

    t = threading.Thread(target=listen, daemon=True)
    t.start()
    assert ready.wait(10)
    with module_server.client(headers={"X-Memory-Space": "events"}) as c:
        mid = remember(c, {"content": "an event"})["memory_id"]
        c.post("/api/v1/episodes/remember", json={"when": "2024-01-01T00:00:00Z", "what": "an episode"})
        remember(c, {"content": "another space"}, headers={"X-Memory-Space": "other-events"})
        c.delete(f"/api/v1/memories/{mid}")
    t.join(10)
    assert events == ["connected", "memory_stored", "episode_stored", "memory_deleted"]


def test_restart_keeps_data(start_server, tmp_path):
    server = start_server()
    with server.client() as c:
        ids = [remember(c, {"content": f"durable {i}", "embedding": vec(500 + i)})["memory_id"] for i in range(20)]
        c.delete(f"/api/v1/memories/{ids[0]}")
    assert server.stop() == 0
    assert not (server.data_dir / "engram.pid").exists()
    again = start_server(data_dir=server.data_dir)
    with again.client() as c:
        body = c.get("/api/v1/memories", params={"limit": 100}).json()
        assert body["count"] == 19
        assert [m["id"] for m in body["memories"]] == ids[1:]
        hits = c.get("/api/v1/memories/recall", params={"embedding": json.dumps(vec(505)), "max_results": 1}).json()
        assert [m["id"] for part in hits["memories"].values() for m in part] == [ids[5]]


def test_sigterm_finishes_requests_in_flight(start_server):
    server = start_server()
    results: list[int] = []

    def writer(worker: int, n: int) -> None:
        with server.client() as c:
            for i in range(n):
                try:
                    r = c.post("/api/v1/memories/remember", json={"content": f"in flight {worker} {i}", "embedding": vec(10_000 * worker + i)})
                except httpx.HTTPError:
                    return
                results.append(r.status_code)

    threads = [threading.Thread(target=writer, args=(w, 200)) for w in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    assert server.stop() == 0
    for t in threads:
        t.join(30)
    acked = results.count(201)
    assert acked > 0
    assert set(results) <= {201, 503}
    again = start_server(data_dir=server.data_dir)
    with again.client() as c:
        # Every acknowledged write survived the shutdown (distinct random vectors: no dedup).
        assert c.get("/api/v1/memories").json()["count"] >= acked
