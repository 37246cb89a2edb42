"""The interference cache stays equal to a fresh computation as memories come and go.

Recalls fill the cache; stores, forgets and an update of the same id then change
the stored set; every cached entry, once caught up, must equal what a cold
computation over the final set gives (same counts, same cosine sums, so the same
factors bit for bit), and what the reference formula gives over the live set.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

import engram
import engram._core
from engram.memory import interference_cache
from engram.memory.cognition import interference

T0 = datetime(2026, 5, 1, tzinfo=timezone.utc)


def _near_one_center(seed: int):
    """A vector maker: the same random center plus noise of the given scale."""
    rng = np.random.default_rng(seed)
    center = rng.standard_normal(768)
    return lambda scale: (center + scale * rng.standard_normal(768)).astype(np.float32)


def test_incremental_cache_equals_cold_computation(tmp_path: Path) -> None:
    near = _near_one_center(3)
    clock = [T0 + timedelta(days=2)]
    with engram.open(tmp_path, clock=lambda: clock[0]) as db:
        sp = db.space("agent-1", dedup_threshold=None)
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
            cached = [sp._items[mid] for mid in list(sp._interference._entries) if mid in sp._items]
            warm_factors = sp._interference.factors(cached, sp._rows())
            warm = {it.id: sp._interference.inputs(it.id) for it in cached}
            sp._interference.clear()
            cold_factors = sp._interference.factors(cached, sp._rows())
            cold = {it.id: sp._interference.inputs(it.id) for it in cached}
            n = sp._n
            live = [r for r in range(n) if sp._alive[r]]
            reference = {}
            for it in cached:
                others = np.array([r for r in live if r != it.row], np.int64)
                sims = engram._core.cosine_scores(sp._matrix[others], sp._inv_norms[others], sp._matrix[it.row : it.row + 1],
                                                  sp._inv_norms[it.row : it.row + 1])[0]
                reference[it.id] = interference.factors(it.created_ns, sp._created[others], sims)
        assert len(cold) >= 10 and "m05" not in cold
        assert any(count > 0 for count, _, _ in cold.values()) and any(later > 0 for _, later, _ in cold.values())
        assert warm == cold
        assert warm_factors == cold_factors == reference


def _factors_cold(sp) -> dict:
    """Each memory's factors computed cold on its own (a kernel call of one query, so
    the int8 screen can drop rows)."""
    with sp._lock:
        cache = interference_cache.InterferenceCache()
        out = {}
        for it in sorted((it for it in sp._items.values() if it.row >= 0), key=lambda it: it.id):
            out.update(cache.factors([it], sp._rows()))
        return out


def test_int8_prescreen_gives_the_exact_factors(tmp_path: Path, monkeypatch) -> None:
    """Windows above PRESCREEN_ROWS_MIN are screened on int8 codes: the factors must be
    the same bits as the exact scan's, including memories near both thresholds."""
    rng = np.random.default_rng(11)
    center = rng.standard_normal(768)
    with engram.open(tmp_path, clock=lambda: T0 + timedelta(days=3)) as db:
        sp = db.space("agent-1", dedup_threshold=None, durability="async")
        # noise scales spread the cosines to the centre across 0.4..0.95, so pairs fall
        # on both sides of 0.6 and 0.7
        scales = np.linspace(0.3, 1.6, 300)
        sp.remember_many([{"content": f"m{i}", "embedding": (center + s * rng.standard_normal(768)).astype(np.float32),
                           "when": T0 + timedelta(minutes=7 * i)} for i, s in enumerate(scales)])
        monkeypatch.setattr(interference_cache, "PRESCREEN_ROWS_MIN", 10**9)
        exact = _factors_cold(sp)
        monkeypatch.setattr(interference_cache, "PRESCREEN_ROWS_MIN", 1)
        screened = _factors_cold(sp)
    assert exact == screened
    assert sum(1 for pro, retro in exact.values() if pro < 1.0) > 10
    assert sum(1 for pro, retro in exact.values() if retro < 1.0) > 10
    assert sum(1 for pro, retro in exact.values() if pro == 1.0 and retro == 1.0) > 10


def test_overflowing_tombstone_log_and_compaction_keep_entries_exact(tmp_path: Path, monkeypatch) -> None:
    rng = np.random.default_rng(12)
    center = rng.standard_normal(768)
    clock = [T0 + timedelta(days=2)]
    with engram.open(tmp_path, clock=lambda: clock[0]) as db:
        sp = db.space("agent-1", dedup_threshold=None, durability="async")
        sp._interference = interference_cache.InterferenceCache(entries_max=50, kills_max=8)
        ids = sp.remember_many([{"content": f"m{i}", "embedding": (center + 0.7 * rng.standard_normal(768)).astype(np.float32),
                                 "when": T0 + timedelta(minutes=10 * i)} for i in range(1500)])
        for round_ in range(3):
            for victim in ids[round_ * 300 : round_ * 300 + 150]:  # past kills_max, then past the compaction point
                sp.forget(victim)
            for _ in range(3):
                sp.recall(embedding=(center + 0.3 * rng.standard_normal(768)).astype(np.float32), k=20)
            for victim in ids[round_ * 300 + 150 : round_ * 300 + 155]:  # taken back out of live entries
                sp.forget(victim)
            sp.remember_many([{"content": f"r{round_}-{i}", "embedding": (center + 0.7 * rng.standard_normal(768)).astype(np.float32),
                               "when": T0 + timedelta(minutes=10 * i + 3)} for i in range(0, 1500, 50)])
            with sp._lock:
                cached = [sp._items[mid] for mid in list(sp._interference._entries) if mid in sp._items]
                warm = sp._interference.factors(cached, sp._rows())
            cold = _factors_cold(sp)
            assert len(cached) >= 20 and len(sp._interference) <= 50
            assert all(warm[mid] == cold[mid] for mid in warm)
        assert any(f != (1.0, 1.0) for f in cold.values())


def test_a_batch_of_recalls_reports_each_hits_exact_factors(tmp_path: Path) -> None:
    """recall_many catches up every query's hits in one pass before the effects: each
    hit's interference must still be its memory's own factors over the live rows."""
    near = _near_one_center(8)
    clock = [T0 + timedelta(days=2)]
    with engram.open(tmp_path, clock=lambda: clock[0]) as db:
        sp = db.space("agent-1", dedup_threshold=None)
        for i in range(40):
            sp.remember(f"m{i}", embedding=near(0.6), when=T0 + timedelta(hours=i), id=f"m{i:02d}")
        sp.recall_many([{"embedding": near(0.3), "k": 8} for _ in range(3)])  # warm some entries
        sp.remember("late", embedding=near(0.5), when=T0 + timedelta(hours=20, minutes=30), id="late")
        sp.forget("m11")
        batches = sp.recall_many([{"embedding": near(0.3), "k": 8} for _ in range(4)])
        want = _factors_cold(sp)
        checked = 0
        for hits in batches:
            for hit in hits:
                effects = dict(hit.effects)
                proactive, retroactive = want[hit.id]
                assert effects.get("proactive_interference", 1.0) == proactive
                assert effects.get("retroactive_interference", 1.0) == retroactive
                checked += proactive != 1.0 or retroactive != 1.0
        assert checked >= 5  # the factors are not all neutral
