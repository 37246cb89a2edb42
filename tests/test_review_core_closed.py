"""After close, reads fail as writes do, with ClosedError; bad ids are ValidationErrors."""

from __future__ import annotations

from pathlib import Path

import pytest

import engram


def test_reads_after_close_raise_closed_error(tmp_path: Path) -> None:
    db = engram.open(tmp_path, dimension=4)
    sp = db.space("agent-1")
    a = sp.remember("a", embedding=[1.0, 0.0, 0.0, 0.0])
    b = sp.remember("b", embedding=[0.0, 1.0, 0.0, 0.0])
    sp.associate(a, b, 0.9)
    assert sp.associations(a) == {b: 0.9}
    db.close()
    with pytest.raises(engram.ClosedError):
        sp.associations(a)
    with pytest.raises(engram.ClosedError):
        db.space_info("agent-1")  # described from its summary file, though the lock is gone


def test_associations_checks_the_id(tmp_path: Path) -> None:
    with engram.open(tmp_path, dimension=4) as db:
        sp = db.space("agent-1")
        with pytest.raises(engram.ValidationError) as info:
            sp.associations(5)
        assert info.value.field == "id"
        assert sp.associations("unknown") == {}
