"""Bulk remember's batched embedding check gives the same answers as the per-item one.

Proves: for msgpack bulk bodies (embeddings as raw float32 bytes), validating all
embeddings together (schemas.packed_embeddings) yields exactly the keyword arguments
the per-item path (parse_remember alone) yields, and a bad item is still reported with
the per-item path's error, in item order: a bad field in an earlier item wins over a
bad embedding in a later one; NaN, zero and wrong-length embeddings name their item.
How: random batches in-process, and one bulk request to a real server.
"""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from engram.api import schemas as S
from engram.api.errors import ApiError
from engram.api.http import _decode_bulk

DIM = 16


def _items(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    vs = rng.standard_normal((n, DIM)).astype("<f4")
    return [{"content": f"item {i}", "embedding": v.tobytes(), "confidence": 0.5 + i / (4 * n), "tags": ["t"]}
            for i, v in enumerate(vs)]


def _parse_all(items: list[dict], packed: bool) -> list[dict]:
    rows = S.packed_embeddings(items, DIM) if packed else {}
    out = []
    for i, item in enumerate(items):
        kw = {"embedding": rows[i]} if i in rows else {}
        out.append(S.parse_remember(item, dim=DIM, prefix=f"items[{i}].", **kw))
    return out


def _error(items: list[dict], packed: bool) -> tuple[int, str, str | None]:
    with pytest.raises(ApiError) as info:
        _parse_all(items, packed)
    return info.value.status, info.value.message, info.value.field


@pytest.mark.parametrize("seed", range(5))
def test_same_keyword_arguments(seed):
    items = msgpack.unpackb(msgpack.packb(_items(50, seed)), raw=False)  # as the server decodes them
    a, b = _parse_all(items, packed=False), _parse_all(items, packed=True)
    assert len(a) == len(b) == 50
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key in x:
            if key == "embedding":
                assert x[key].dtype == y[key].dtype == np.float32
                assert x[key].tobytes() == y[key].tobytes()
            else:
                assert x[key] == y[key]


def test_bad_embeddings_name_their_item_in_order():
    items = _items(6, 1)
    items[4]["embedding"] = np.full(DIM, np.nan, "<f4").tobytes()
    items[2]["embedding"] = np.zeros(DIM, "<f4").tobytes()
    assert _error(items, True) == _error(items, False)
    assert "items[2].embedding" in _error(items, True)[1]
    items[2] = _items(1, 2)[0]
    assert _error(items, True) == _error(items, False)
    assert "items[4].embedding" in (_error(items, True)[2] or "")
    items[1]["confidence"] = 7  # an earlier bad field wins over the later bad embedding
    assert _error(items, True) == _error(items, False)
    assert _error(items, True)[2] == "items[1].confidence"
    items = _items(3, 3)
    items[1]["embedding"] = items[1]["embedding"][:-4]  # 15 values
    assert _error(items, True) == _error(items, False)
    assert "items[1].embedding" in _error(items, True)[1]


def test_server_reports_the_bad_item(module_server):
    items = _items(4, 9)
    rng = np.random.default_rng(9)
    good = rng.standard_normal((4, 768)).astype("<f4")
    for item, v in zip(items, good):
        item["embedding"] = v.tobytes()
    bad = good[3].copy()
    bad[7] = np.inf
    items[3]["embedding"] = bad.tobytes()
    with module_server.client(headers={"X-Memory-Space": "bulk-check", "Content-Type": "application/msgpack"}) as c:
        r = c.post("/api/v1/memories/bulk", content=msgpack.packb(items))
        assert r.status_code == 400, r.text
        assert r.json()["error"]["message"].startswith("items[3].embedding[7]")
        assert c.get("/api/v1/memories", params={"limit": 10}).json()["count"] == 0  # nothing stored
        items[3]["embedding"] = good[3].tobytes()
        r = c.post("/api/v1/memories/bulk", content=msgpack.packb(items))
        assert r.status_code == 201, r.text
        assert r.json()["count"] == 4


def test_decode_bulk_still_refuses_truncated_msgpack():
    raw = msgpack.packb(_items(2, 4))
    with pytest.raises(ApiError) as info:
        _decode_bulk(raw[:-3], "application/msgpack", 100)
    assert info.value.status == 400
