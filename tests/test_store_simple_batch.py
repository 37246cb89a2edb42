"""The plain store batch (no dedup candidate, room for all, new ids) equals one-by-one stores.

A batch of distinct random vectors and text-only items takes the store path's
short cut; across chunk boundaries (more items than one apply chunk) and with a
text index already built, it must leave the same WAL bytes, the same state and
the same rows as storing each item alone, and replay to the same state.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import engram
from engram.memory.space import STORE_CHUNK_ITEMS

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _items(count: int) -> list[dict]:
    rng = np.random.default_rng(7)
    out = []
    for i in range(count):
        item = {"content": f"memory {i} about topic {i % 13}", "id": f"m{i:04d}", "confidence": 0.5}
        if i % 7 != 3:
            item["embedding"] = rng.standard_normal(64).astype(np.float32)
        out.append(item)
    return out


def _state(sp) -> list[tuple]:
    rows = []
    for m in sorted(sp.list(limit=10_000), key=lambda m: m.id):
        emb = sp.get(m.id).embedding
        rows.append((m.id, m.content, m.confidence, None if emb is None else np.asarray(emb).tobytes()))
    return rows


def test_a_plain_batch_equals_one_by_one(tmp_path: Path) -> None:
    items = _items(STORE_CHUNK_ITEMS + 57)
    outcomes = {}
    for mode in ("batch", "single"):
        path = tmp_path / mode
        with engram.open(path, clock=lambda: T0) as db:
            sp = db.space("agent-1", dimension=64)
            sp.remember("seed memory", id="seed", confidence=0.5)
            assert sp.recall(text="seed", k=1)[0].id == "seed"  # the text index now exists
            if mode == "batch":
                ids = sp.remember_many(items)
            else:
                ids = [sp.remember(**item) for item in items]
            hits = [h.id for h in sp.recall(text="topic 5", k=50)]
            vector_hits = [h.id for h in sp.recall(embedding=items[11]["embedding"], k=3)]
            outcomes[mode] = (ids, _state(sp), hits, vector_hits, len(sp))
        wal = b"".join(p.read_bytes() for p in sorted(path.glob("spaces/*/wal/*.wal")))
        with engram.open(path, clock=lambda: T0) as db:
            assert _state(db.space("agent-1")) == outcomes[mode][1]
        outcomes[mode] += (wal,)
    assert outcomes["batch"] == outcomes["single"]
    ids, _, hits, vector_hits, count, _ = outcomes["batch"]
    assert ids == [item["id"] for item in items]
    assert count == len(items) + 1
    assert vector_hits[0] == "m0011"
    assert "m0005" in hits and "m0018" in hits
