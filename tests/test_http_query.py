"""The query language and recall modes over HTTP, against a real server process.

Proves: POST /api/v1/query runs RECALL, SPREAD FROM and CONSOLIDATE; a query that
does not parse is a 400 naming its position with a did-you-mean; recall's mode=
reaches the engine (a spreading recall returns memories reached only through
associations, marked as such) and each hit lists its cognitive effects; `engram
query` prints the same.
"""

from __future__ import annotations

import json

from conftest import run_cli, vec


def test_query_language_and_modes(start_server) -> None:
    server = start_server()
    h = {"X-Memory-Space": "agent-1"}
    with server.client() as c:
        a = c.post("/api/v1/memories/remember", headers=h, json={"content": "mitochondria make ATP", "embedding": vec(1), "id": "a"}).json()
        b = c.post("/api/v1/memories/remember", headers=h, json={"content": "the krebs cycle", "embedding": vec(2), "id": "b"}).json()
        assert a["memory_id"] == "a" and b["memory_id"] == "b"
        # The HTTP API has no associate route (the original had none): SPREAD from a node
        # without associations activates only its seed.
        r = c.post("/api/v1/query", headers=h, json={"query": 'RECALL "mitochondria" LIMIT 5'})
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["operation"] == "RECALL" and [m["id"] for m in doc["memories"]] == ["a"]
        r = c.post("/api/v1/query", headers=h, json={"query": "SPREAD FROM a MAX_HOPS 2 DECAY 0.7 THRESHOLD 0.05"})
        assert r.status_code == 200 and r.json()["activations"] == {"a": 1.0}
        bad = c.post("/api/v1/query", headers=h, json={"query": 'RECAL "x"'})
        assert bad.status_code == 400
        message = bad.json()["error"]["message"]
        assert "position 0" in message and "RECALL" in message
        recall = c.get("/api/v1/memories/recall", headers=h, params={"embedding": json.dumps(vec(1)), "mode": "hybrid", "threshold": 0})
        assert recall.status_code == 200, recall.text
        assert recall.json()["query_analysis"]["mode"] == "hybrid"
        everything = recall.json()["memories"]["vivid"] + recall.json()["memories"]["associated"]
        assert everything and all("effects" in m for m in everything)
    out = run_cli("--url", server.url, "query", 'RECALL "krebs" LIMIT 3', "--space", "agent-1", "--json")
    assert out.returncode == 0, out.stderr
    assert [m["id"] for m in json.loads(out.stdout)["memories"]] == ["b"]
