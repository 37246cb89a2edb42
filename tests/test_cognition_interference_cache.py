"""The interference cache stays equal to a fresh computation as memories come and go.

Recalls fill the cache; stores, forgets and an update of the same id then change
the stored set; every cached entry must equal what a cold computation over the
final set gives (same counts, same cosines, so the same factors bit for bit).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

import engram

T0 = datetime(2026, 5, 1, tzinfo=timezone.utc)


def test_incremental_cache_equals_cold_computation(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    center = rng.standard_normal(768)
    clock = [T0 + timedelta(days=2)]
    with engram.open(tmp_path, clock=lambda: clock[0]) as db:
        sp = db.space("agent-1", dedup_threshold=None)

        def near(scale: float) -> np.ndarray:
            return (center + scale * rng.standard_normal(768)).astype(np.float32)

        for i in range(30):
            sp.remember(f"m{i}", embedding=near(0.6), when=T0 + timedelta(hours=i), id=f"m{i:02d}")
        for _ in range(5):
            sp.recall(embedding=near(0.3), k=10)
        assert len(sp._interference) >= 10
        sp.remember("late", embedding=near(0.5), when=T0 + timedelta(hours=12, minutes=30), id="late")
        sp.remember("early", embedding=near(0.5), when=T0 + timedelta(hours=3, minutes=10), id="early")
        sp.forget("m05")
        sp.remember("m07 again", embedding=near(0.4), when=T0 + timedelta(hours=7), id="m07")
        with sp._lock:
            warm = {mid: (count, sorted(later)) for mid, (count, later) in sp._interference.items()}
            sp._interference.clear()
            sp._fill_interference([sp._items[mid] for mid in warm if mid in sp._items])
            cold = {mid: (count, sorted(later)) for mid, (count, later) in sp._interference.items()}
        assert warm.keys() >= cold.keys()
        assert any(count > 0 for count, _ in cold.values()) and any(later for _, later in cold.values())
        for mid in cold:
            assert warm[mid] == cold[mid], mid
