"""An episode's metadata: JSON values only, bounded, read back the same before and
after reopening, and never a way into stored state."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

import engram

WHEN = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize("bad, where", [
    ({"x": object()}, "metadata['x']"),
    ({"x": {1, 2}}, "metadata['x']"),
    ({"x": WHEN}, "metadata['x']"),
    ({"x": float("nan")}, "metadata['x']"),
    ({"x": [1, float("inf")]}, "metadata['x'][1]"),
    ({"x": {1: 2}}, "metadata['x']"),
    ({"x": 2**70}, "metadata['x']"),
    ({"x": "a" * (200 * 1024)}, "metadata"),
    ("not a dict", "metadata"),
])
def test_bad_metadata_is_a_validation_error_and_writes_nothing(tmp_path: Path, bad: object, where: str) -> None:
    with engram.open(tmp_path, dimension=4) as db:
        sp = db.space("agent-1")
        lsn = sp.stats()["last_lsn"]
        with pytest.raises(engram.ValidationError) as info:
            sp.remember_episode(what="e", when=WHEN, metadata=bad)
        assert info.value.field == where
        assert "JSON" in info.value.allowed and info.value.example
        with pytest.raises(engram.ValidationError):
            sp.remember_many([{"what": "e", "when": WHEN, "memory_type": "episodic", "metadata": bad}])
        assert len(sp) == 0 and sp.stats()["last_lsn"] == lsn


def test_metadata_reads_the_same_after_reopening(tmp_path: Path) -> None:
    given = {"turn": np.int64(3), "score": np.float32(0.5), "path": ("a", "b"), "nested": {"k": [1, (2, 3)]}, "ok": True}
    with engram.open(tmp_path, dimension=4) as db:
        mid = db.space("agent-1").remember_episode(what="e", when=WHEN, metadata=given)
        live = db.space("agent-1").get(mid).metadata
    with engram.open(tmp_path, dimension=4) as db:
        replayed = db.space("agent-1").get(mid).metadata
    assert live == replayed == {"turn": 3, "score": 0.5, "path": ["a", "b"], "nested": {"k": [1, [2, 3]]}, "ok": True}
    assert type(live["turn"]) is int and type(live["path"]) is list


def test_changing_what_was_given_or_read_changes_nothing_stored(tmp_path: Path) -> None:
    with engram.open(tmp_path, dimension=4) as db:
        sp = db.space("agent-1")
        given = {"people": ["ana"], "place": {"room": 1}}
        mid = sp.remember_episode(what="e", when=WHEN, metadata=given)
        given["people"].append("bo")
        read = sp.get(mid).metadata
        read["people"].append("cy")
        read["place"]["room"] = 2
        assert sp.get(mid).metadata == {"people": ["ana"], "place": {"room": 1}}
