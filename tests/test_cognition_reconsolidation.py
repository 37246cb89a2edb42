"""Reconsolidation (Nader et al. 2000): a recalled memory is briefly modifiable.

Proves, with a clock the test moves: a memory 24 h to 365 days old that was
recalled can be changed between 1 h and 6 h after that recall, with plasticity
following the inverted U 0.5 x 4x(1 - x) (0 at the edges, 0.5 in the middle);
outside the window the change is refused with an error that says when the window
opens (too soon after recall, too young) or why it never will (too old), and
nothing is written; every change is a WAL record, the previous version stays in
history, and reopening (from the log, then from a checkpoint) rebuilds the same state.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

import engram

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
D = 16


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(D).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_plasticity_is_an_inverted_u_over_the_window(tmp_path: Path, clock: Clock) -> None:
    offsets_h = [1.0, 2.25, 3.5, 4.75, 6.0]
    with engram.open(tmp_path / "d", clock=clock) as db:
        sp = db.space("agent-1", dimension=D, dedup_threshold=None)
        for i in range(len(offsets_h)):
            sp.remember(f"m{i}", embedding=unit(i), id=f"m{i}", confidence=0.5)
        recalled_at = T0 + timedelta(days=2)
        clock.now = recalled_at
        for i in range(len(offsets_h)):
            assert sp.recall(embedding=unit(i), k=1)[0].id == f"m{i}"
        plasticity = []
        for i, hours in enumerate(offsets_h):
            clock.now = recalled_at + timedelta(hours=hours)
            new = sp.reconsolidate(f"m{i}", confidence=1.0)
            plasticity.append((new.confidence - 0.5) / 0.5)
            assert sp.history(f"m{i}")[-1].plasticity == pytest.approx(plasticity[-1])
        assert plasticity == pytest.approx([0.0, 0.375, 0.5, 0.375, 0.0])


def test_outside_the_window_says_when_it_opens_or_why_never(tmp_path: Path, clock: Clock) -> None:
    with engram.open(tmp_path / "d", clock=clock) as db:
        sp = db.space("agent-1", dimension=D, dedup_threshold=None)
        sp.remember("young", embedding=unit(1), id="young", confidence=0.5)
        sp.remember("old", embedding=unit(2), id="old", confidence=0.5, when=T0 - timedelta(days=400))
        sp.remember("never", embedding=unit(3), id="never", confidence=0.5, when=T0 - timedelta(days=3))
        last_lsn = sp.stats()["last_lsn"]
        clock.now = T0 + timedelta(hours=1)
        sp.recall(embedding=unit(1), k=1)
        clock.now = T0 + timedelta(hours=2)
        with pytest.raises(engram.ReconsolidationWindowError, match="at least 24 h old") as young:
            sp.reconsolidate("young", confidence=1.0)
        assert young.value.opens_at == T0 + timedelta(hours=24)
        with pytest.raises(engram.ReconsolidationWindowError, match="never been recalled"):
            sp.reconsolidate("never", confidence=1.0)
        sp.recall(embedding=unit(2), k=1)
        clock.now += timedelta(hours=2)
        with pytest.raises(engram.ReconsolidationWindowError, match="never reconsolidate") as old:
            sp.reconsolidate("old", confidence=1.0)
        assert old.value.opens_at is None
        # Recalled 30 min ago: opens 1 h after the recall.
        recall_time = clock.now
        sp.recall(embedding=unit(3), k=1)
        clock.now = recall_time + timedelta(minutes=30)
        with pytest.raises(engram.ReconsolidationWindowError, match="window opens") as soon:
            sp.reconsolidate("never", confidence=1.0)
        assert soon.value.opens_at == recall_time + timedelta(hours=1)
        assert "opens at" in str(soon.value)
        # 7 h after the recall: closed; recalling again reopens it.
        clock.now = recall_time + timedelta(hours=7)
        with pytest.raises(engram.ReconsolidationWindowError, match="recall it again"):
            sp.reconsolidate("never", confidence=1.0)
        assert sp.get("never").confidence == 0.5 and sp.history("never") == []
        assert sp.stats()["last_lsn"] == last_lsn  # refusals write nothing (recalls are not flushed yet)
        with pytest.raises(engram.UnknownIdError):
            sp.reconsolidate("missing", confidence=1.0)
        with pytest.raises(engram.ValidationError):
            sp.reconsolidate("never")


def test_change_is_logged_with_history_and_survives_reopen(tmp_path: Path, clock: Clock) -> None:
    data = tmp_path / "d"
    old_vector, new_vector = unit(1), unit(2)
    with engram.open(data, clock=clock) as db:
        sp = db.space("agent-1", dimension=D, dedup_threshold=None)
        sp.remember("the cafe is on Main St", embedding=old_vector, id="cafe", confidence=0.6, tags=["place"])
        clock.now = T0 + timedelta(days=2)
        sp.recall(embedding=old_vector, k=1)
        clock.now += timedelta(hours=3.5)  # peak plasticity 0.5
        new = sp.reconsolidate("cafe", content="the cafe moved to Elm St", embedding=new_vector, confidence=1.0, tags=["place", "moved"])
        assert new.content == "the cafe moved to Elm St" and new.tags == ("place", "moved")
        assert new.confidence == pytest.approx(0.8)
        np.testing.assert_allclose(new.embedding, old_vector + 0.5 * (new_vector - old_vector), rtol=1e-6)
        [version] = sp.history("cafe")
        assert version.memory.content == "the cafe is on Main St" and version.memory.confidence == 0.6
        np.testing.assert_array_equal(version.memory.embedding, old_vector)
        assert version.replaced_at == clock.now and version.plasticity == pytest.approx(0.5)
        assert sp.recall(text="Elm", k=1)[0].id == "cafe" and sp.recall(text="Main", k=1) == []
        before = (sp.get("cafe"), sp.history("cafe"))

    def same(sp) -> None:
        got = sp.get("cafe")
        assert (got.content, got.confidence, got.tags, got.access_count) == (before[0].content, before[0].confidence, before[0].tags, before[0].access_count)
        np.testing.assert_array_equal(got.embedding, before[0].embedding)
        [v] = sp.history("cafe")
        assert (v.replaced_at, v.plasticity, v.memory.content) == (before[1][0].replaced_at, before[1][0].plasticity, before[1][0].memory.content)
        np.testing.assert_array_equal(v.memory.embedding, before[1][0].memory.embedding)

    with engram.open(data, clock=clock) as db:  # from the WAL
        sp = db.space("agent-1")
        same(sp)
        sp.checkpoint()
    with engram.open(data, clock=clock) as db:  # from the checkpoint
        same(db.space("agent-1"))


def test_reconsolidation_switched_off(tmp_path: Path, clock: Clock) -> None:
    with engram.open(tmp_path / "d", clock=clock) as db:
        sp = db.space("agent-1", dimension=D, dedup_threshold=None, effects=("priming",))
        sp.remember("a", embedding=unit(1), id="a")
        clock.now = T0 + timedelta(days=2)
        sp.recall(embedding=unit(1), k=1)
        clock.now += timedelta(hours=2)
        with pytest.raises(engram.ValidationError, match="switched off"):
            sp.reconsolidate("a", confidence=1.0)
