"""engram bench bulk run twice into the same space stores new memories both times.

Proves: the second run sends vectors unlike the first run's, so none is merged into a
stored memory by dedup (cosine >= 0.95) and the space ends with both runs' memories;
before, one fixed seed resent the first run's vectors, the space kept its count and
the report timed merges while calling them new memories. How: run_bulk twice against
a real server and count the space.
"""

from __future__ import annotations

from engram.bench.http import run_bulk


def test_second_bulk_run_adds_new_memories(module_server):
    for fmt in ("msgpack", "jsonl"):
        run_bulk(url=module_server.url, space="bench-rerun", count=40, batch=20, fmt=fmt, log=lambda _s: None)
    with module_server.client(headers={"X-Memory-Space": "bench-rerun"}) as c:
        assert c.get("/api/v1/memories", params={"limit": 1}).json()["count"] == 80
