"""Capacity is a bound the space keeps, also after it was lowered on an existing space."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import engram

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_lowered_capacity_is_reached_by_the_next_store(tmp_path: Path) -> None:
    with engram.open(tmp_path, clock=lambda: T0, dimension=8, effects=()) as db:
        sp = db.space("agent-1", dedup_threshold=None)
        for i in range(5):
            sp.remember(f"m{i}", id=f"m{i}", embedding=np.eye(8, dtype=np.float32)[i], confidence=0.1 + 0.1 * i)
    with engram.open(tmp_path, clock=lambda: T0) as db:
        sp = db.space("agent-1", capacity=2)
        assert len(sp) == 5  # lowering the capacity alone writes nothing
        sp.remember("new", id="new", embedding=np.eye(8, dtype=np.float32)[7], confidence=0.9)
        assert len(sp) == 2
        # The lowest activations went (confidence x retention, retention equal here).
        assert sorted(m.id for m in sp.list()) == ["m4", "new"]
        assert sp.stats()["evicted"] == 4
    with engram.open(tmp_path, clock=lambda: T0) as db:
        assert sorted(m.id for m in db.space("agent-1").list()) == ["m4", "new"]  # the evictions were logged


def test_lowered_capacity_bounds_a_batch(tmp_path: Path) -> None:
    with engram.open(tmp_path, clock=lambda: T0, dimension=8, effects=()) as db:
        sp = db.space("agent-1", dedup_threshold=None)
        sp.remember_many([{"content": f"m{i}", "id": f"m{i}", "confidence": 0.5} for i in range(4)])
    with engram.open(tmp_path, clock=lambda: T0) as db:
        sp = db.space("agent-1", capacity=3)
        sp.remember_many([{"content": f"n{i}", "id": f"n{i}", "confidence": 0.9} for i in range(2)])
        assert len(sp) == 3


def test_a_dedup_replacement_at_capacity_evicts_nothing(tmp_path: Path) -> None:
    # The new memory takes the place of its stored duplicate: the count does not grow,
    # so no third memory may be evicted for it.
    e = np.eye(8, dtype=np.float32)
    with engram.open(tmp_path, clock=lambda: T0, dimension=8, effects=()) as db:
        sp = db.space("agent-1", capacity=2)
        sp.remember("a", id="a", embedding=e[0], confidence=0.5)
        sp.remember("b", id="b", embedding=e[1], confidence=0.3)
        near_a = e[0] + 0.01 * e[2]
        kept = sp.remember("a2", id="a2", embedding=near_a, confidence=0.8)
        assert kept == "a"  # merged into the stored duplicate, under its id
        assert sorted((m.id, m.content) for m in sp.list()) == [("a", "a2"), ("b", "b")]
        assert sp.stats()["evicted"] == 0
        assert sp.stats()["deduplicated"] == 1
