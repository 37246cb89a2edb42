"""A bulk store announces on the event stream only what it changed, as remember does.

Today remember stopped publishing an event for a kept near-duplicate ("nothing
changed: no event"), but POST /api/v1/memories/bulk still published
memories_bulk_stored with every item, kept ones included: a bulk of nothing but kept
near-duplicates told subscribers that memories were stored when none was. How: the
app in process over a real data directory, a hub subscriber, three bulk bodies.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from engram.api.http import create_app
from engram.config import Settings
from tests.conftest import run_with_service


def vec(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(768).astype(np.float32)


def near(seed: int, step: int) -> np.ndarray:
    return (vec(seed) + 0.02 * vec(10_000 + step)).astype(np.float32)


def test_bulk_events_leave_out_kept_near_duplicates(tmp_path: Path) -> None:
    events: list[dict] = []
    answers: list[dict] = []

    async def body(svc) -> None:
        app = create_app(svc)
        sub = svc.hub.subscribe("dedup")

        async def bulk(items: list[dict]) -> None:
            raw = b"\n".join(json.dumps(item).encode() for item in items)
            scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                     "scheme": "http", "path": "/api/v1/memories/bulk", "raw_path": b"/api/v1/memories/bulk",
                     "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2),
                     "headers": [(b"content-type", b"application/x-ndjson"), (b"content-length", str(len(raw)).encode()),
                                 (b"x-memory-space", b"dedup")]}
            chunks: list[bytes] = []

            async def receive() -> dict:
                return {"type": "http.request", "body": raw, "more_body": False}

            async def send(message: dict) -> None:
                if message["type"] == "http.response.start":
                    assert message["status"] == 201
                elif message["type"] == "http.response.body":
                    chunks.append(message.get("body", b""))

            await app(scope, receive, send)
            answers.append(json.loads(b"".join(chunks)))

        await bulk([{"content": "original", "embedding": vec(1).tolist(), "confidence": 0.5}])
        await bulk([{"content": "weaker", "embedding": near(1, 1).tolist(), "confidence": 0.2}])  # kept only
        await bulk([{"content": "weaker again", "embedding": near(1, 2).tolist(), "confidence": 0.2},  # kept
                    {"content": "other", "embedding": vec(2).tolist(), "confidence": 0.5}])  # stored
        events.extend({"count": payload["count"], "memory_ids": payload["memory_ids"]}
                      for _, kind, payload in sub.queue if kind == "memories_bulk_stored")

    run_with_service(Settings.test_min(tmp_path / "data"), body)
    assert [a["kept"] for a in answers] == [0, 1, 1]  # the answers say what dedup did
    original, other = answers[0]["memory_ids"][0], answers[2]["memory_ids"][1]
    assert events == [{"count": 1, "memory_ids": [original]}, {"count": 1, "memory_ids": [other]}]
