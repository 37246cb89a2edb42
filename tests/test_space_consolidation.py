"""Consolidation inside a space: patterns are stored as recallable semantic memories
citing their episodes, a second run on unchanged episodes writes nothing, stale
patterns are superseded, and the stored patterns survive a restart."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

import engram

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)


def cluster(center_seed: int, count: int, start: int) -> list[np.ndarray]:
    rng = np.random.default_rng(center_seed)
    center = rng.standard_normal(768)
    return [(center + 0.05 * rng.standard_normal(768)).astype(np.float32) for _ in range(count)]


def test_patterns_are_stored_cited_and_stable(tmp_path: Path) -> None:
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1")
        for c, seed in enumerate((1, 2)):
            for i, v in enumerate(cluster(seed, 4, 0)):
                sp.remember_episode(what=f"coffee with ana, cluster {c} #{i}", when=T0 + timedelta(hours=i),
                                    embedding=v, importance=0.6, id=f"ep-{c}-{i}")
        sp.remember_episode(what="lonely event", when=T0, embedding=np.random.default_rng(9).standard_normal(768), id="ep-x")
        patterns = sp.consolidate()
        assert len(patterns) == 2
        assert {p.source_ids for p in patterns} == {tuple(f"ep-{c}-{i}" for i in range(4)) for c in (0, 1)}
        stored = sp.patterns()
        assert [m.id for m in stored] == [p.id for p in patterns]
        assert stored[0].memory_type == "semantic" and len(stored[0].sources) == 4
        # recallable by its centroid
        assert sp.recall(embedding=patterns[0].embedding, k=1)[0].id == patterns[0].id
        lsn = sp.stats()["last_lsn"]
        assert sp.consolidate() == patterns
        assert sp.stats()["last_lsn"] == lsn  # nothing new written
        assert sp.last_consolidation["records_written"] == 0
        # a new member supersedes the old pattern of its cluster
        sp.remember_episode(what="coffee again", when=T0 + timedelta(days=1), embedding=cluster(1, 5, 0)[4], id="ep-0-9")
        again = sp.consolidate()
        assert len(again) == 2
        assert len({p.id for p in again} & {p.id for p in patterns}) == 1  # one cluster changed, one did not
        assert sorted(m.id for m in sp.patterns()) == sorted(p.id for p in again)
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1")
        assert sorted(m.id for m in sp.patterns()) == sorted(p.id for p in again)
