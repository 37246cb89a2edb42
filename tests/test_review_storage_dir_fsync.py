"""Directory entries that an acknowledged write depends on are fsync'd before the ack.

Proves: a file's fsync makes its data durable, not its name: on a power failure a
newly created directory or a renamed file may vanish unless its parent directory was
fsync'd after the change (POSIX; ext4 usually hides this, other filesystems do not).
So when the first write to a new space is acknowledged, the data directory must have
been fsync'd holding the space's directory, the space's directory holding ``wal``, and
``wal`` holding the segment; and salvage's renaming of the segments after the damage
(``.corrupt``) must be fsync'd before new records reuse their LSNs, or after a power
failure they come back as ``.wal`` and the space no longer opens. How: ``os.fsync`` is
wrapped to note, for each directory it syncs, the entries the directory held then (a
kill -9 cannot show this: the page cache survives it).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

import engram


def vec(i: int) -> np.ndarray:
    return np.random.default_rng(i).standard_normal(768).astype(np.float32)


def _trace_directory_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, set[str]]]:
    synced: list[tuple[str, set[str]]] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            path = os.readlink(f"/proc/self/fd/{fd}")
            synced.append((path, set(os.listdir(path))))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return synced


def _durable_name(synced: list[tuple[str, set[str]]], path: Path) -> bool:
    return any(directory == str(path.parent) and path.name in entries for directory, entries in synced)


def test_a_new_space_is_reachable_after_a_power_failure_once_its_first_write_is_acknowledged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced = _trace_directory_fsyncs(monkeypatch)
    data = tmp_path / "data"
    with engram.open(data) as db:
        db.space("agent-1").remember("first", embedding=vec(1), id="m1")  # acknowledged
        segment, = (data / "agent-1" / "wal").glob("*.wal")
        missing = [str(p.relative_to(tmp_path)) for p in (data, data / "agent-1", data / "agent-1" / "wal", segment)
                   if not _durable_name(synced, p)]
        assert missing == [], f"not fsync'd into their parent directory: {missing}"


def test_salvage_renames_are_durable_before_new_records_reuse_their_lsns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1", segment_bytes_max=16 * 1024, dedup_threshold=None)
        for i in range(12):
            sp.remember(f"memory {i}", embedding=vec(i), id=f"m{i}")
    first, *later = sorted((tmp_path / "agent-1" / "wal").glob("*.wal"))
    assert len(later) >= 2
    raw = bytearray(first.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    first.write_bytes(bytes(raw))
    synced = _trace_directory_fsyncs(monkeypatch)
    with engram.open(tmp_path, salvage=True) as db:
        sp = db.space("agent-1")
        sp.remember("after salvage", embedding=vec(100), id="new")  # acknowledged, in a reused LSN
        for path in later:
            assert _durable_name(synced, path.with_suffix(".corrupt")), f"rename of {path.name} not fsync'd"
