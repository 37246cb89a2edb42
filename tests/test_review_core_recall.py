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
