"""Recall arguments a user can get wrong, and what they get back."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

import engram

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def sp(tmp_path: Path):
    with engram.open(tmp_path, clock=lambda: T0, dimension=4, effects=()) as db:
        yield db.space("agent-1", dedup_threshold=None)


def test_a_time_window_that_ends_before_it_starts_is_refused(sp) -> None:
    sp.remember("in the lab", when=T0 - timedelta(days=1), location="lab")
    with pytest.raises(engram.ValidationError) as info:
        sp.recall(after=T0, before=T0 - timedelta(days=2))
    assert info.value.field == "before"
    assert "after" in info.value.allowed
    # The same with a cue, and in a batch (the field names the query).
    with pytest.raises(engram.ValidationError):
        sp.recall(text="lab", after=T0, before=T0 - timedelta(days=2))
    with pytest.raises(engram.ValidationError) as info:
        sp.recall_many([{"text": "lab"}, {"after": T0, "before": T0 - timedelta(seconds=1)}])
    assert info.value.field == "queries[1].before"
    # A naive bound is UTC: compared with an aware one at the same instant it is no inversion.
    assert sp.recall(after=T0.replace(tzinfo=None) - timedelta(days=2), before=T0) != []
    # An empty window (after == before) is a valid question with no answer.
    assert sp.recall(after=T0, before=T0) == []


def _vectors(n: int, d: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    return (rng.standard_normal((n, d)) * rng.uniform(0.01, 100.0, (n, 1))).astype(np.float32)


def test_threshold_one_finds_the_stored_vector_itself(tmp_path: Path) -> None:
    # A vector's cosine with itself is 1; float32 arithmetic gives 1 - 6e-8 for many
    # vectors, which a threshold of exactly 1.0 must not turn away.
    vs = _vectors(40, 768)
    with engram.open(tmp_path, clock=lambda: T0, effects=()) as db:
        sp = db.space("agent-1", dedup_threshold=None)
        ids = [sp.remember(f"m{i}", embedding=v) for i, v in enumerate(vs)]
        found = [[h.id for h in sp.recall(embedding=v, k=1, threshold=1.0)] for v in vs]
        assert found == [[mid] for mid in ids]


def test_dedup_threshold_one_merges_identical_vectors(tmp_path: Path) -> None:
    # dedup_threshold=1.0 is "only exact duplicates": every identical pair must merge.
    vs = _vectors(40, 768)
    with engram.open(tmp_path, clock=lambda: T0, effects=()) as db:
        sp = db.space("agent-1", dedup_threshold=1.0)
        for i, v in enumerate(vs):
            first = sp.remember(f"m{i}", embedding=v, confidence=0.5)
            assert sp.remember(f"again {i}", embedding=v.copy(), confidence=0.4) == first
        assert len(sp) == len(vs)
        assert sp.stats()["deduplicated"] == len(vs)
        # One batch, the same.
        other = db.space("agent-2", dedup_threshold=1.0)
        other.remember_many([{"content": f"m{i}", "embedding": v} for i, v in enumerate(vs)]
                            + [{"content": f"again {i}", "embedding": v.copy()} for i, v in enumerate(vs)])
        assert len(other) == len(vs)
