"""Bad input over HTTP gets a 4xx with the error envelope, and changes nothing.

Proves: malformed JSON, wrong types, missing fields, wrong embedding length, NaN,
out-of-range confidence, oversized content and bodies (413), bad space ids, unknown
ids and routes all answer 4xx with {"error": {code, message, educational_context,
cognitive_guidance}} naming the field and showing an example; no answer carries a
stack trace; after all of it the space holds exactly what the valid requests stored.
How: a real server process (tests/conftest.py), raw httpx requests.
"""

from __future__ import annotations

import json

import msgpack
import pytest

from conftest import vec

R = "/api/v1/memories/remember"


def check_envelope(r, status: int, field: str | None = None) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    err = body["error"]
    assert set(err) >= {"code", "message", "educational_context", "cognitive_guidance"}
    assert all(isinstance(err[k], str) and err[k] for k in ("code", "message", "educational_context", "cognitive_guidance"))
    assert "Traceback" not in r.text and 'File "' not in r.text
    if field is not None:
        assert err["field"] == field, err
        assert err.get("example"), err
    return err


CASES = [
    # (description, kwargs for client.post, status, field)
    ("not json", {"content": b"{not json"}, 400, "body"),
    ("empty body", {"content": b""}, 400, "body"),
    ("array body", {"json": [1, 2]}, 422, "body"),
    ("missing content", {"json": {"confidence": 0.5}}, 422, "content"),
    ("content wrong type", {"json": {"content": 12}}, 422, "content"),
    ("content too large", {"json": {"content": "x" * (100 * 1024 + 1)}}, 400, "content"),
    ("confidence > 1", {"json": {"content": "a", "confidence": 1.5}}, 400, "confidence"),
    ("confidence string", {"json": {"content": "a", "confidence": "high"}}, 422, "confidence"),
    ("confidence bool", {"json": {"content": "a", "confidence": True}}, 422, "confidence"),
    ("NaN literal", {"content": b'{"content": "a", "confidence": NaN}'}, 400, "body"),
    ("embedding short", {"json": {"content": "a", "embedding": [0.1] * 767}}, 400, "embedding"),
    ("embedding long", {"json": {"content": "a", "embedding": [0.1] * 769}}, 400, "embedding"),
    ("embedding zero", {"json": {"content": "a", "embedding": [0.0] * 768}}, 400, "embedding"),
    ("embedding string item", {"json": {"content": "a", "embedding": ["x"] * 768}}, 422, "embedding[0]"),
    ("embedding Infinity", {"content": ('{"content": "a", "embedding": [Infinity' + ", 0.1" * 767 + "]}").encode()}, 400, "body"),
    ("embedding too big for float32", {"json": {"content": "a", "embedding": [1e39] + [0.1] * 767}}, 400, "embedding[0]"),
    ("tags not list", {"json": {"content": "a", "tags": "x"}}, 422, "tags"),
    ("memory_type unknown", {"json": {"content": "a", "memory_type": "dream"}}, 400, "memory_type"),
    ("timestamp garbage", {"json": {"content": "a", "timestamp": "yesterday"}}, 400, "timestamp"),
    ("bad id", {"json": {"content": "a", "id": "has space"}}, 400, "id"),
    ("bad body space", {"json": {"content": "a", "memory_space_id": "NO"}}, 400, "memory_space_id"),
    ("bad header space", {"json": {"content": "a"}, "headers": {"X-Memory-Space": "x"}}, 400, "X-Memory-Space"),
]


@pytest.mark.parametrize("desc,kw,status,field", CASES, ids=[c[0] for c in CASES])
def test_bad_remember(module_server, desc, kw, status, field):
    with module_server.client(headers={"X-Memory-Space": "bad-input"} if "headers" not in kw else {}) as c:
        check_envelope(c.post(R, **kw), status, field)


def test_nothing_was_written_by_rejected_requests(module_server):
    with module_server.client(headers={"X-Memory-Space": "bad-input"}) as c:
        for _desc, kw, _status, _field in CASES:
            if "headers" not in kw:
                c.post(R, **kw)
        assert c.get("/api/v1/memories").json()["count"] == 0
        assert c.post(R, json={"content": "a good one", "embedding": vec(1)}).status_code == 201
        assert c.get("/api/v1/memories").json()["count"] == 1


def test_body_limit_413(module_server):
    with module_server.client() as c:
        err = check_envelope(c.post(R, content=b"x" * (2 * 1024 * 1024), headers={"Content-Type": "application/json"}), 413)
        assert err["code"] == "PAYLOAD_TOO_LARGE"

        def chunks():  # no Content-Length: the limit applies while streaming
            for _ in range(40):
                yield b"x" * 65536

        check_envelope(c.post(R, content=chunks()), 413)


def test_bad_episode(module_server):
    with module_server.client() as c:
        check_envelope(c.post("/api/v1/episodes/remember", json={"what": "no when"}), 422, "when")
        check_envelope(c.post("/api/v1/episodes/remember", json={"when": "2024-01-01T00:00:00Z", "what": "x",
                                                                 "emotional_valence": 2}), 400, "emotional_valence")
        check_envelope(c.post("/api/v1/episodes/remember", json={"when": "2024-01-01T00:00:00Z", "what": "x",
                                                                 "metadata": {"k": [1]}}), 422, "metadata.k")


def test_bad_recall_parameters(module_server):
    with module_server.client() as c:
        g = lambda **p: c.get("/api/v1/memories/recall", params=p)  # noqa: E731
        check_envelope(g(), 400, "query")
        check_envelope(g(query="x", max_results="ten"), 400, "max_results")
        check_envelope(g(query="x", max_results=0), 400, "max_results")
        check_envelope(g(query="x", threshold=2), 400, "threshold")
        check_envelope(g(query="x", threshold="nan"), 400, "threshold")
        check_envelope(g(query="x", mode="telepathy"), 400, "mode")
        check_envelope(g(query="x", from_time="not a time"), 400, "from_time")
        check_envelope(g(query="x", from_time="2024-02-01T00:00:00Z", to_time="2024-01-01T00:00:00Z"), 400, "from_time")
        check_envelope(g(embedding="[1,2,3]"), 400, "embedding")
        check_envelope(g(embedding="[not json"), 400, "embedding")
        check_envelope(g(embedding=json.dumps([float("nan")] * 768).replace("NaN", "NaN")), 400, None)
        check_envelope(c.get("/api/v1/memories", params={"limit": 5000}), 400, "limit")
        check_envelope(c.get("/api/v1/memories/search"), 400, "query")
        check_envelope(c.get("/api/v1/query/probabilistic", params={"query": "x", "include_evidence": "perhaps"}), 400, "include_evidence")


def test_unknown_ids_routes_methods(module_server):
    with module_server.client() as c:
        assert check_envelope(c.get("/api/v1/memories/does-not-exist"), 404)["code"] == "MEMORY_NOT_FOUND"
        assert check_envelope(c.delete("/api/v1/memories/does-not-exist"), 404)["code"] == "MEMORY_NOT_FOUND"
        check_envelope(c.get("/api/v1/memories/%00weird%20id"), 404)
        check_envelope(c.get("/no/such/route"), 404)
        check_envelope(c.put(R, json={}), 405)


def test_bulk_errors(module_server):
    with module_server.client(headers={"X-Memory-Space": "bulk-bad"}) as c:
        b = "/api/v1/memories/bulk"
        check_envelope(c.post(b, content=b"\x92\x01", headers={"Content-Type": "application/msgpack"}), 400, "body")  # truncated
        check_envelope(c.post(b, content=b"\xc1", headers={"Content-Type": "application/msgpack"}), 400, "body")  # reserved byte
        check_envelope(c.post(b, content=msgpack.packb([1, 2]), headers={"Content-Type": "application/msgpack"}), 422, "items[0]")
        check_envelope(c.post(b, content=b"{}\n{bad", headers={"Content-Type": "application/x-ndjson"}), 400, "line 2")
        check_envelope(c.post(b, content=b"a=1", headers={"Content-Type": "application/x-www-form-urlencoded"}), 415, "Content-Type")
        check_envelope(c.post(b, content=b'{"content": "x", "memory_space_id": "elsewhere"}', headers={"Content-Type": "application/x-ndjson"}),
                       400, "items[0].memory_space_id")
        assert c.get("/api/v1/memories").json()["count"] == 0
