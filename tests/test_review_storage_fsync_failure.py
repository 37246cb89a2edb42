"""A failed fsync is final: nothing written before it is ever acknowledged afterwards.

Proves: once ``fdatasync`` of a WAL segment fails (EIO from a dying disk, ENOSPC on
thin storage), a later sync that returns 0 does not make the records of the failed
one durable: Linux reports a writeback error once and may have dropped the dirty
pages ("fsyncgate"), so a retried fsync succeeds over lost data. The log must refuse
to acknowledge anything from then on. How: ``os.fdatasync`` is replaced by one that
fails once, then succeeds; the retry, a concurrent waiter's retry and a later write
through the public API must all fail instead of returning.
"""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import numpy as np
import pytest

import engram
from engram.storage.wal import WriteAheadLog


def _fail_once(monkeypatch: pytest.MonkeyPatch, started: threading.Event | None = None,
               release: threading.Event | None = None) -> list[int]:
    real = os.fdatasync
    calls: list[int] = []

    def fdatasync(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 1:
            if started is not None and release is not None:
                started.set()
                release.wait(10)
            raise OSError(errno.EIO, "Input/output error")
        real(fd)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    return calls


def test_a_retried_sync_does_not_acknowledge_what_a_failed_one_lost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wal = WriteAheadLog(tmp_path / "wal")
    records, _ = wal.recover()
    assert list(records) == []
    lsn = wal.append([(2, b"first")], 1)
    calls = _fail_once(monkeypatch)
    with pytest.raises(OSError):
        wal.wait_durable(lsn)
    with pytest.raises(OSError):
        wal.wait_durable(lsn)  # the caller retries: its record may be gone from the page cache
    with pytest.raises(OSError):
        wal.append([(2, b"second")], 2)  # nothing more goes behind a hole in the log
    assert len(calls) == 1
    monkeypatch.undo()
    with pytest.raises(OSError):
        wal.close()  # close reports it too, and still releases the file
    assert wal._fd == -1


def test_a_waiter_behind_a_failed_sync_is_not_acknowledged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wal = WriteAheadLog(tmp_path / "wal")
    records, _ = wal.recover()
    list(records)
    started, release = threading.Event(), threading.Event()
    calls = _fail_once(monkeypatch, started, release)
    first = wal.append([(2, b"leader's")], 1)
    leader_error: list[BaseException] = []

    def lead() -> None:
        try:
            wal.wait_durable(first)
        except BaseException as exc:  # noqa: BLE001
            leader_error.append(exc)

    leader = threading.Thread(target=lead)
    leader.start()
    assert started.wait(10)  # the leader's fdatasync is running (and will fail)
    second = wal.append([(2, b"follower's")], 2)
    outcome: list[object] = []

    def follow() -> None:
        try:
            wal.wait_durable(second)
            outcome.append("acknowledged")
        except OSError as exc:
            outcome.append(exc)

    follower = threading.Thread(target=follow)
    follower.start()
    while not wal._waiters:  # queued behind the running sync
        threading.Event().wait(0.001)
    release.set()
    leader.join(10)
    follower.join(10)
    assert leader_error and isinstance(leader_error[0], OSError)
    assert outcome and isinstance(outcome[0], OSError), f"follower got {outcome}"
    assert len(calls) == 1


def test_after_a_failed_sync_a_later_forget_is_not_acknowledged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = engram.open(tmp_path)
    sp = db.space("agent-1")
    for i in range(3):
        sp.remember(f"m {i}", embedding=np.random.default_rng(i).standard_normal(768).astype(np.float32), id=f"m{i}")
    _fail_once(monkeypatch)
    with pytest.raises(OSError):
        sp.forget("m0")
    with pytest.raises((OSError, engram.EngramError)):
        sp.forget("m1")  # its fsync would succeed, but the forget of m0 before it may be lost
    monkeypatch.undo()
    with pytest.raises(OSError):
        db.close()  # reported again at close, which still releases the directory
    engram.open(tmp_path).close()
