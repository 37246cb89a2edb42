"""Closing a database when something goes wrong.

Proves: (1) a checkpoint that fails at close (disk full while writing the snapshot)
loses nothing, since the log holds every write, so close still closes every space and
releases the lock; before, close raised with every space left open and writable while
the lock was already released, so a second opener and the old handles wrote one log;
(2) when one space's close does fail (its log failed to sync), the others are still
closed and the lock released, and the error is reported. How: the failure is
injected with monkeypatch (snapshot.write, os.fdatasync), then the test checks that
the spaces refuse writes, the directory reopens and every acknowledged write is in it.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest

import engram
import engram.memory.space as space_mod
from engram.storage import snapshot


def vec(i: int) -> np.ndarray:
    return np.random.default_rng(i).standard_normal(768).astype(np.float32)


def test_a_checkpoint_failing_at_close_still_closes_every_space(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(space_mod, "CHECKPOINT_AT_CLOSE_MIN", 1)  # every close checkpoints

    def disk_full(*args: object, **kwargs: object) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(snapshot, "write", disk_full)
    db = engram.open(tmp_path)
    a = db.space("agent-a")
    b = db.space("agent-b", durability="async")
    a.remember("a", embedding=vec(1), id="a1")
    b.remember("b", embedding=vec(2), id="b1")
    db.close()
    for sp in (a, b):
        with pytest.raises(engram.ClosedError):
            sp.remember("after close", embedding=vec(3))
    monkeypatch.undo()
    with engram.open(tmp_path) as db:
        assert db.space("agent-a").get("a1") is not None
        assert db.space("agent-b").get("b1") is not None
        assert len(db.space("agent-a")) == 1 and len(db.space("agent-b")) == 1


def test_one_space_failing_to_close_does_not_leave_the_others_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = engram.open(tmp_path)
    a = db.space("agent-a")
    b = db.space("agent-b", durability="async")
    a.remember("a", embedding=vec(1), id="a1")
    b.remember("b", embedding=vec(2), id="b1")
    real = os.fdatasync
    failed = []

    def fdatasync(fd: int) -> None:
        if not failed:
            failed.append(fd)
            raise OSError(errno.EIO, "Input/output error")
        real(fd)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    with pytest.raises(OSError):
        a.forget("a1")  # agent-a's log is broken from now on
    monkeypatch.undo()
    b.remember("b", embedding=vec(4), id="b2")
    with pytest.raises(OSError):
        db.close()  # agent-a's failure is reported...
    with pytest.raises(engram.ClosedError):
        b.remember("after close", embedding=vec(5))  # ...and agent-b was closed all the same
    with engram.open(tmp_path) as db:  # the lock was released
        assert db.space("agent-b").get("b2") is not None

