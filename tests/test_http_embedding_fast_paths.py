"""The fast embedding checks of the HTTP boundary give the answers of the careful ones.

Proves: (1) ``to_embedding`` (the C reader ``_core.float_list_f32`` for the plain
case) returns the same float32 bits as its item-by-item path (the C reader turned
off) for valid arrays, and the same error (status, message, field) for invalid ones: wrong length,
strings, nulls, nested arrays, values too large for float32, all zeros, huge
integers. (2) ``list_embeddings`` (JSON bulk bodies, each row read by ``_core.float_list_f32``)
yields, through ``parse_remember``, exactly the keyword arguments and the first error
of the per-item path, including an item whose line holds ``true``. (3) A msgpack bulk
body read through the large-body buffer and the in-place unpacker, and a JSON lines
body, are stored and listed by a real server, and a bad item stores nothing.
How: Hypothesis-generated arrays in-process; one real server for (3).
"""

from __future__ import annotations

import json

import msgpack
import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engram.api import schemas as S
from engram.api.errors import ApiError
from engram.api.http import _parse_bulk

DIM = 8

_number = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.integers(min_value=-(2**70), max_value=2**70),
)
_value = st.one_of(_number, _number, _number, st.booleans(), st.none(), st.text(max_size=3), st.lists(_number, max_size=2))
_with_bool = st.tuples(st.lists(_number, min_size=DIM - 1, max_size=DIM - 1), st.booleans(), st.integers(0, DIM - 1)).map(
    lambda t: t[0][: t[2]] + [t[1]] + t[0][t[2]:])
_vector = st.one_of(
    st.lists(_number, min_size=DIM, max_size=DIM),
    _with_bool,
    st.lists(_value, min_size=DIM - 1, max_size=DIM + 1),
    st.lists(st.just(0), min_size=DIM, max_size=DIM),
)


def _outcome(fn):
    try:
        out = fn()
    except ApiError as err:
        return ("error", err.status, err.message, err.field)
    return ("ok", out.dtype.str, out.tobytes())


def _json_roundtrip(v):
    """As a client's JSON reaches the server (orjson refuses ints beyond 64 bits; json does not)."""
    text = json.dumps(v).encode()
    try:
        return orjson.loads(text), text
    except orjson.JSONDecodeError:
        return json.loads(text), text


def _careful(v) -> tuple:
    """to_embedding's outcome on its item-by-item path (the C reader declining everything)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(S._core, "float_list_f32", lambda values, dim: None)
        return _outcome(lambda: S.to_embedding(v, "embedding", DIM))


@settings(max_examples=400, deadline=None)
@given(_vector)
def test_fast_check_matches_careful_check(v):
    value, _ = _json_roundtrip(v)
    assert _outcome(lambda: S.to_embedding(value, "embedding", DIM)) == _careful(value)


def test_fast_check_on_edge_cases():
    for bad in ([1.0] * (DIM - 1) + ["x"], [1.0] * (DIM - 1) + [None], [0] * DIM, [1e39] + [1.0] * (DIM - 1),
                [1.0] * (DIM - 1) + [[1.0]], [1.5] * (DIM - 1) + [True], [3.1e38] + [1.0] * (DIM - 1)):
        careful = _careful(bad)
        assert careful[0] == "error"  # a boolean is not a number, although NumPy would take True as 1.0
        assert _outcome(lambda: S.to_embedding(bad, "embedding", DIM)) == careful
    # Integers beyond int64 are numbers too: read to the nearest float64, as the careful path does.
    big = [2**70] + [1] * (DIM - 1)
    assert _outcome(lambda: S.to_embedding(big, "embedding", DIM)) == _careful(big)


def test_recall_query_string_refuses_booleans():
    text = "[" + ",".join(["0.5"] * (DIM - 1) + ["true"]) + "]"
    with pytest.raises(ApiError) as info:
        S.parse_recall_params({"embedding": text}, dim=DIM)
    assert info.value.field == f"embedding[{DIM - 1}]"
    ok = S.parse_recall_params({"embedding": "[" + ",".join(["0.5"] * DIM) + "]"}, dim=DIM)
    assert ok["embedding"].tobytes() == np.full(DIM, 0.5, np.float32).tobytes()


def _bulk(items_lines: list[bytes]) -> tuple:
    try:
        kws = _parse_bulk(b"\n".join(items_lines), "application/x-ndjson", 1000, DIM, "space-a")
    except ApiError as err:
        return ("error", err.status, err.message, err.field)
    return ("ok", [{k: (v.tobytes() if isinstance(v, np.ndarray) else v) for k, v in kw.items()} for kw in kws])


def _careful_bulk(items_lines: list[bytes]) -> tuple:
    try:
        kws = [S.parse_remember(orjson.loads(line), dim=DIM, prefix=f"items[{i}].") for i, line in enumerate(items_lines)]
    except ApiError as err:
        return ("error", err.status, err.message, err.field)
    return ("ok", [{k: (v.tobytes() if isinstance(v, np.ndarray) else v) for k, v in kw.items()} for kw in kws])


@settings(max_examples=150, deadline=None)
@given(st.lists(_vector, min_size=1, max_size=6), st.data())
def test_json_bulk_matches_item_by_item(vectors, data):
    lines = []
    for i, v in enumerate(vectors):
        item = {"content": f"item {i} " + data.draw(st.sampled_from(["", "true", "false"])), "embedding": v}
        text = json.dumps(item).encode()
        try:
            orjson.loads(text)
        except orjson.JSONDecodeError:
            return  # not JSON orjson accepts: the server refuses the body before any of this
        lines.append(text)
    assert _bulk(lines) == _careful_bulk(lines)


def test_server_stores_large_bodies_in_both_formats(module_server):
    rng = np.random.default_rng(11)
    vs = rng.standard_normal((600, 768)).astype("<f4")  # ~1.9 MB of msgpack: the large-body buffer
    items = [{"content": f"large body {i}", "embedding": v.tobytes(), "confidence": 0.8} for i, v in enumerate(vs)]
    with module_server.client(headers={"X-Memory-Space": "bulk-large"}) as c:
        r = c.post("/api/v1/memories/bulk", content=msgpack.packb(items), headers={"Content-Type": "application/msgpack"})
        assert r.status_code == 201, r.text
        assert r.json()["count"] == 600
        assert set(r.json()) >= {"read_seconds", "parse_seconds", "engine_seconds"}
        got = c.get(f"/api/v1/memories/{r.json()['memory_ids'][599]}", params={"include_embeddings": "true"}).json()
        assert np.array(got["embedding"], np.float32).tobytes() == vs[599].tobytes()
        # One bad item among many: 400 naming it, and nothing of the body stored.
        bad = vs[300].copy()
        bad[5] = np.nan
        items2 = [{"content": f"second {i}", "embedding": v.tobytes()} for i, v in enumerate(vs)]
        items2[300]["embedding"] = bad.tobytes()
        r = c.post("/api/v1/memories/bulk", content=msgpack.packb(items2), headers={"Content-Type": "application/msgpack"})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["message"].startswith("items[300].embedding[5]")
        assert c.get("/api/v1/memories", params={"limit": 1}).json()["count"] == 600
        lines = "\n".join(json.dumps({"content": f"line {i}", "embedding": [float(x) for x in v]}) for i, v in enumerate(rng.standard_normal((200, 768))))
        r = c.post("/api/v1/memories/bulk", content=lines, headers={"Content-Type": "application/x-ndjson"})
        assert r.status_code == 201, r.text
        assert c.get("/api/v1/memories", params={"limit": 1}).json()["count"] == 800


def test_hit_documents_match_the_generic_serialiser():
    """The engine-type fast path of hit_json gives the generic path's document."""
    from datetime import datetime, timedelta, timezone

    from engram.memory.types import Hit, Memory

    utc = datetime(2024, 5, 1, 9, 30, tzinfo=timezone.utc)
    other = datetime(2024, 5, 1, 11, 30, tzinfo=timezone(timedelta(hours=2)))
    values = (0.0, 0.4, 0.41, 0.7, 0.71, 1.0, 1.5, -0.2, float("nan"))
    for i, (conf, score, retention) in enumerate(zip(values, reversed(values), values[3:] + values[:3])):
        m = Memory(id=f"m{i}", content=f"c{i}", embedding=None, confidence=0.9, created_at=utc if i % 2 else other,
                   last_access=other if i % 2 else utc, access_count=i, tags=("a", "b")[: i % 3], location=None if i % 2 else "lab")
        for activation in (None, 0.3, 2.0):
            h = Hit(id=m.id, score=score, confidence=conf, retention=retention, memory=m)
            fast = S.hit_json(h, retrieval_path="direct_match", activation=activation)
            slow = S._generic_hit_json(h, "direct_match", activation)
            assert orjson.dumps(fast, option=orjson.OPT_UTC_Z) == orjson.dumps(slow, option=orjson.OPT_UTC_Z)
