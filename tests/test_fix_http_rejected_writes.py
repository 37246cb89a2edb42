"""A rejected write changes nothing, and a single remember's error names its own field.

Against a real server: remember, episodes/remember and bulk requests that HTTP
validation refuses (a msgpack bytes metadata key, an empty who entry, an importance of
2) are sent to a space that does not exist yet; each must be a 4xx naming the field,
and the space must not be listed afterwards. Values only the engine refuses, after the
server made the space, are ENGINE_REFUSALS below: they prove the space is taken back. Then a RememberBatcher over a
real Space is handed a request the engine refuses: the error must name the field as
the client sent it, not remember_many's items[0].<field>.
"""

from __future__ import annotations

import json

import msgpack
import pytest
import trio

import engram
from engram.api.batching import RememberBatcher
from engram.errors import ValidationError

def _msgpack(obj) -> tuple[bytes, dict[str, str]]:
    return msgpack.packb(obj, use_bin_type=True), {"Content-Type": "application/msgpack"}


def _json(obj) -> tuple[bytes, dict[str, str]]:
    return json.dumps(obj).encode(), {"Content-Type": "application/json"}


@pytest.mark.parametrize("path, body, field", [
    # msgpack map keys may be bytes; the engine refuses metadata with a non-string key
    ("/api/v1/memories/bulk", _msgpack([{"content": "x", "metadata": {b"k": 1}}]), "items[0].metadata"),
    ("/api/v1/memories/remember", _json({"content": "x", "who": ["ana", ""]}), "who[1]"),
    ("/api/v1/episodes/remember", _json({"what": "x", "when": "2025-01-01T00:00:00Z", "importance": 2}), "importance"),
])
def test_rejected_write_leaves_no_new_space(start_server, path, body, field):
    server = start_server()
    content, headers = body
    with server.client() as c:
        r = c.post(path, content=content, headers={"X-Memory-Space": "never-made", **headers})
        assert 400 <= r.status_code < 500, r.text
        assert r.json()["error"]["field"] == field
        spaces = [s["id"] for s in c.get("/api/v1/spaces").json()["spaces"]]
        assert "never-made" not in spaces
    assert not (server.data_dir / "never-made").exists()


def test_single_remember_error_names_the_field_as_sent(tmp_path):
    db = engram.open(tmp_path / "data")
    sp = db.space("batch-errors")

    async def main() -> BaseException | None:
        batcher = RememberBatcher(sp, limiter=trio.CapacityLimiter(2), batch_count_max=8, queue_count_max=8)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(batcher.serve_batches)
            try:
                await batcher.submit({"content": "x", "confidence": 2.0})
            except ValidationError as exc:
                return exc
            finally:
                batcher.close()
        return None

    try:
        err = trio.run(main)
    finally:
        db.close()
    assert isinstance(err, ValidationError)
    assert err.field == "confidence"
    assert "items[" not in str(err)


# Values only the engine refuses (its checks run after the server has created the
# space): an embedding whose norm float32 cosines cannot score, and metadata too long.
ENGINE_REFUSALS = [
    ("/api/v1/memories/remember", _json({"content": "x", "embedding": [1e16] * 768}), "embedding"),
    ("/api/v1/episodes/remember", _json({"what": "x", "when": "2025-01-01T00:00:00Z", "embedding": [1e16] * 768}), "embedding"),
    ("/api/v1/memories/bulk", _msgpack([{"content": "ok", "embedding": [0.1] * 768},
                                        {"content": "x", "embedding": [1e16] * 768}]), "items[1].embedding"),
]


@pytest.mark.parametrize("path, body, field", ENGINE_REFUSALS)
def test_a_write_the_engine_refuses_leaves_no_new_space(start_server, path, body, field):
    server = start_server()
    content, headers = body
    with server.client() as c:
        r = c.post(path, content=content, headers={"X-Memory-Space": "engine-refused", **headers})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["field"] == field
        assert "engine-refused" not in [s["id"] for s in c.get("/api/v1/spaces").json()["spaces"]]
        assert not (server.data_dir / "engine-refused").exists()
        # The name is free again: a good write creates the space, and it keeps its memory.
        r = c.post("/api/v1/memories/remember", json={"content": "kept", "embedding": [0.1] * 768},
                   headers={"X-Memory-Space": "engine-refused"})
        assert r.status_code == 201, r.text
        listed = {s["id"]: s["memories"] for s in c.get("/api/v1/spaces").json()["spaces"]}
        assert listed.get("engine-refused") == 1


def test_first_writes_racing_to_a_new_space_keep_every_good_one(start_server):
    """A refused first write and good ones arrive together: the space is created once,
    and every good write is there (the refused one must not delete it under them)."""
    import httpx

    server = start_server()
    import numpy as np

    rng = np.random.default_rng(11)  # distinct directions: dedup must not merge them
    good = [{"content": f"good {i}", "embedding": rng.standard_normal(768).round(4).tolist()} for i in range(6)]
    bad = {"content": "bad", "embedding": [1e16] * 768}
    statuses: list[int] = []

    async def main() -> None:
        async with httpx.AsyncClient(base_url=server.url, headers={"X-Memory-Space": "raced-space"}) as c:
            async def send(body):
                statuses.append((await c.post("/api/v1/memories/remember", json=body)).status_code)
            async with trio.open_nursery() as nursery:
                for body in [bad, *good[:3], bad, *good[3:]]:
                    nursery.start_soon(send, body)

    trio.run(main)
    assert sorted(statuses) == [201] * 6 + [400] * 2
    with server.client(headers={"X-Memory-Space": "raced-space"}) as c:
        stored = c.get("/api/v1/memories", params={"limit": 100}).json()
        assert sorted(m["content"] for m in stored["memories"]) == sorted(g["content"] for g in good)


class _Interrupted(BaseException):
    """Stands for trio.Cancelled: a BaseException that ends the request after (or before) its write."""


def test_an_interrupted_first_write_keeps_a_space_that_holds_a_record(tmp_path):
    """A first write cut off by a BaseException (a cancelled request) after its record was
    logged must leave the space known to the server, not half-made; one cut off before
    anything was logged leaves no space at all."""
    import numpy as np

    from engram.api.service import Service
    from engram.config import Settings

    db = engram.open(tmp_path / "data")
    results: dict[str, object] = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            svc = Service(db, Settings(data_dir=tmp_path / "data"), nursery)
            for space_id, write in (("written-then-cut", True), ("cut-before", False)):
                try:
                    async with svc.space_for_write(space_id) as sp:
                        if write:
                            sp.remember("kept", embedding=np.ones(768, np.float32))
                        raise _Interrupted()
                except _Interrupted:
                    pass
            results["known"] = svc.known_spaces()
            results["found"] = await svc.space("written-then-cut", create=False) is not None
            svc.close_batchers()
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
        assert results["known"] == ["written-then-cut"]
        assert results["found"] is True
        assert db.spaces() == ["written-then-cut"]
        assert not (tmp_path / "data" / "cut-before").exists()
    finally:
        db.close()
