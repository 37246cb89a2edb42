"""Growth prepared ahead: arrays copied on a background thread when three quarters full,
so that the growth under the locks copies only the rows appended since and the
tombstones. The space it leaves is the one growing in place leaves, tombstones
written after the copy included."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

import engram
from engram.memory import space as space_mod
from engram.memory.space import Space

D = 16


def vec(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(D).astype(np.float32)


def join_growers() -> None:
    for thread in threading.enumerate():
        if thread.name.startswith("grow:"):
            thread.join()


def grow_a_space(path: Path, monkeypatch, rows_min: int) -> tuple[tuple, list[bool]]:
    monkeypatch.setattr(space_mod, "GROW_AHEAD_ROWS_MIN", rows_min)
    used: list[bool] = []
    original = Space._grow

    def spy(self, capacity):
        used.append(self._spare is not None and self._spare.source is self._matrix)
        return original(self, capacity)

    monkeypatch.setattr(Space, "_grow", spy)
    with engram.open(path, clock=lambda: 1_767_225_600.0) as db:  # created times alike in both spaces
        sp = db.space("agent-1", dimension=D, dedup_threshold=None)
        for batch in range(12):
            sp.remember_many([{"content": f"m{batch}-{i}", "embedding": vec(batch * 1000 + i), "id": f"m{batch:02d}-{i:03d}"}
                              for i in range(200)])
            join_growers()
            sp.forget(f"m{batch // 2:02d}-{batch:03d}")  # a tombstone after the arrays were copied ahead
            sp.remember(f"text {batch}", id=f"t{batch:02d}")
        n = sp._n
        state = (n, sp._dead, list(sp._row_ids), sorted((it.id, it.row) for it in sp._items.values()),
                 *(getattr(sp, name)[:n].tobytes() for name in space_mod._ROW_ARRAYS),
                 [(h.id, h.score) for h in sp.recall(embedding=vec(3005), k=5)])
    return state, used


def test_growth_prepared_ahead_leaves_the_space_growth_in_place_leaves(tmp_path: Path, monkeypatch) -> None:
    ahead, used_ahead = grow_a_space(tmp_path / "ahead", monkeypatch, 1024)
    in_place, used_in_place = grow_a_space(tmp_path / "in-place", monkeypatch, 10**9)
    assert ahead == in_place
    assert ahead[0] == 2400 and ahead[1] == 12
    assert any(used_ahead) and not any(used_in_place)
