"""``db.space(id, **config)`` changes space.json only once the space opened with it.

Proves: when opening fails after the settings were validated (here Space._open raises,
as a corrupt log or an I/O error would), an existing space's space.json keeps its
bytes and the next plain open gets the old settings and memories; a space being
created leaves no directory behind; a call that succeeds still stores the new settings.
How: a real data directory, with Space._open made to fail for one call.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import engram
from engram.memory.space import Space


def failing_open(self: Space, salvage: bool) -> None:
    raise OSError(5, "Input/output error (simulated)")


def test_a_failed_open_leaves_the_stored_settings(tmp_path: Path, monkeypatch) -> None:
    with engram.open(tmp_path, dimension=8) as db:
        db.space("agent-1", capacity=10).remember("kept", id="m1")
        space_file = db.space("agent-1").directory / "space.json"
    before = space_file.read_bytes()
    with engram.open(tmp_path, dimension=8) as db:
        with monkeypatch.context() as m:
            m.setattr(Space, "_open", failing_open)
            with pytest.raises(OSError, match="simulated"):
                db.space("agent-1", capacity=5, dedup_threshold=None)
        assert space_file.read_bytes() == before
        sp = db.space("agent-1")  # the failed call left nothing open or half done
        assert sp.config.capacity == 10 and sp.config.dedup_threshold == 0.95
        assert sp.get("m1").content == "kept"
    with engram.open(tmp_path, dimension=8) as db:
        assert db.space("agent-1", capacity=5).config.capacity == 5  # a successful change is stored
    with engram.open(tmp_path, dimension=8) as db:
        assert db.space("agent-1").config.capacity == 5


def test_a_failed_creation_leaves_no_space(tmp_path: Path, monkeypatch) -> None:
    with engram.open(tmp_path, dimension=8) as db:
        with monkeypatch.context() as m:
            m.setattr(Space, "_open", failing_open)
            with pytest.raises(OSError, match="simulated"):
                db.space("new-space", capacity=5)
        assert not (tmp_path / "new-space").exists()
        assert "new-space" not in db.spaces()
        assert db.space("new-space").config.capacity is None  # created afresh, without the failed call's settings
