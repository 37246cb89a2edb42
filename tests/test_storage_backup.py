"""The backup format reads each file once, and restore refuses a damaged file as it copies.

Proves: (a) a backup reads every file of the data directory once and never reads its
copy back (the digests are taken while copying), and a restore reads every file of
the backup once (its digest checked while copying it into the staging directory);
(b) a file damaged in the backup after it was written, keeping its size so that only
its digest tells, makes restore fail naming that file, with the data directory's
files byte for byte as they were and no staging directory left; a file of the wrong
size is refused before any file is copied; (c) BACKUP.json lists every copied file
with the size and SHA-256 that hashlib, run here independently, finds.

How: reads are counted, not timed: ``builtins.open`` and ``io.open`` (what
``Path.open`` calls) are wrapped for the test so that every file opened for reading
is counted, with the bytes read through it. A copy that read a file twice, or hashed
its copy afterwards, shows up as a second open. The backup is taken by the server's
Service in one trio run over a real database (tests/conftest.py run_with_service),
and restore runs the real ``engram restore`` command in this process (click's
CliRunner), so the spy sees its reads.
"""

from __future__ import annotations

import builtins
import hashlib
import io
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any, Self

import pytest
from click.testing import CliRunner

import engram
from engram.api.service import Service
from engram.cli import main as cli_main
from engram.config import Settings
from engram.storage import backup as backup_files
from engram.storage.backup import BACKUP_MANIFEST

from conftest import run_with_service, vec


class _CountedReader:
    """A file opened for reading whose reads add to ``reads.bytes[key]``."""

    def __init__(self, handle: Any, reads: _Reads, key: str) -> None:
        self._handle = handle
        self._reads = reads
        self._key = key

    def read(self, *args: Any) -> Any:
        data = self._handle.read(*args)
        self._reads.bytes[self._key] += len(data)
        return data

    def readinto(self, buffer: Any) -> Any:
        n = self._handle.readinto(buffer)
        self._reads.bytes[self._key] += n or 0
        return n

    def __iter__(self) -> Any:
        for line in self._handle:
            self._reads.bytes[self._key] += len(line)
            yield line

    def __enter__(self) -> Self:
        self._handle.__enter__()
        return self

    def __exit__(self, *exc: object) -> Any:
        return self._handle.__exit__(*exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)


class _Reads:
    def __init__(self) -> None:
        self.opens: Counter[str] = Counter()  # real path -> times opened for reading
        self.bytes: Counter[str] = Counter()  # real path -> bytes read

    def under(self, root: Path) -> dict[str, int]:
        """Opens for reading of files under ``root``, by path relative to it."""
        prefix = os.path.realpath(root) + os.sep
        return {key[len(prefix):]: n for key, n in self.opens.items() if key.startswith(prefix)}

    def bytes_of(self, path: Path) -> int:
        return self.bytes[os.path.realpath(path)]


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> _Reads:
    real_open = builtins.open
    seen = _Reads()

    def spy(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = real_open(file, mode, *args, **kwargs)
        if isinstance(file, (str, bytes, os.PathLike)) and ("r" in mode or "+" in mode):
            key = os.path.realpath(file)
            seen.opens[key] += 1
            return _CountedReader(handle, seen, key)
        return handle

    monkeypatch.setattr(builtins, "open", spy)
    monkeypatch.setattr(io, "open", spy)
    return seen


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _data_dir(tmp_path: Path) -> Settings:
    settings = Settings.test_min(tmp_path / "data")
    with engram.open(settings.data_dir) as db:
        for i in range(20):
            db.space("alpha").remember(content=f"alpha fact {i}", embedding=vec(i))
        for i in range(5):
            db.space("beta").remember(content=f"beta fact {i}", embedding=vec(100 + i))
    return settings


def _backup(settings: Settings, target: Path) -> dict[str, Any]:
    result: dict[str, Any] = {}

    async def body(svc: Service) -> None:
        result.update(await svc.backup(target))

    run_with_service(settings, body)
    return result


def _restore(data: Path, backup: Path, monkeypatch: pytest.MonkeyPatch, *flags: str) -> Any:
    for key in list(os.environ):
        if key.startswith("ENGRAM_"):
            monkeypatch.delenv(key)
    return CliRunner().invoke(cli_main, ["--data", str(data), "restore", str(backup), *flags])


# ----------------------------------------------------------------------------- (a) one read


def test_copy_tree_reads_each_source_file_once_and_never_its_copy(tmp_path, reads):
    source, target = tmp_path / "source", tmp_path / "target"
    (source / "wal").mkdir(parents=True)
    contents = {
        "empty": b"",
        "small": b"a few bytes",
        # More than two chunks, ending in a partial one.
        "wal/big": os.urandom(2 * backup_files.CHUNK_BYTES + 12345),
        "wal/chunk": os.urandom(backup_files.CHUNK_BYTES),
    }
    for rel, data in contents.items():
        (source / rel).write_bytes(data)
    reads.opens.clear()

    records = backup_files.copy_tree(source, target)

    assert reads.under(source) == {rel: 1 for rel in contents}
    for rel, data in contents.items():
        assert reads.bytes_of(source / rel) == len(data), rel
    assert reads.under(target) == {}  # no copy read back
    assert records == {rel: backup_files.FileRecord(len(data), _sha256(data)) for rel, data in contents.items()}
    assert _files(target) == contents


def test_a_backup_reads_no_copied_file_back(tmp_path, reads):
    settings = _data_dir(tmp_path)
    target = tmp_path / "backup"
    reads.opens.clear()

    stats = _backup(settings, target)
    target_reads = reads.under(target)
    source_reads = reads.under(Path(settings.data_dir))

    copied = [rel for rel in _files(target) if rel != BACKUP_MANIFEST]
    assert stats["files"] == len(copied) and len(copied) >= 4
    # keys.sqlite is written by SQLite's backup API, not by our copy: it alone is read
    # once to hash it. No other file of the backup is read.
    assert {rel: n for rel, n in target_reads.items() if rel != "keys.sqlite"} == {}
    assert target_reads.get("keys.sqlite", 0) <= 1
    for rel in copied:
        if rel != "keys.sqlite":
            # The copy's read; a checkpoint's own reads of the log would add, so at least one.
            assert source_reads.get(rel, 0) >= 1, rel


def test_restore_reads_each_backup_file_once(tmp_path, reads, monkeypatch):
    settings = _data_dir(tmp_path)
    backup = tmp_path / "backup"
    _backup(settings, backup)
    listed = json.loads((backup / BACKUP_MANIFEST).read_text())["files"]
    reads.opens.clear()
    reads.bytes.clear()

    result = _restore(tmp_path / "restored", backup, monkeypatch)

    assert result.exit_code == 0, result.output
    assert reads.under(backup) == {BACKUP_MANIFEST: 1, **{rel: 1 for rel in listed}}
    for rel, meta in listed.items():
        assert reads.bytes_of(backup / rel) == meta["bytes"], rel
    assert sorted(_files(tmp_path / "restored")) == sorted({*listed, "LOCK"})


# ----------------------------------------------------------------------------- (b) damage


def _backup_with_a_flipped_bit(tmp_path: Path, pick: Any = max) -> tuple[Path, str]:
    """A backup of a small data directory with one bit flipped in the non-empty file
    ``pick`` chooses among the listed ones (its size kept: only its digest can tell)."""
    backup = tmp_path / "backup"
    _backup(_data_dir(tmp_path), backup)
    listed = json.loads((backup / BACKUP_MANIFEST).read_text())["files"]
    damaged = pick(rel for rel, meta in listed.items() if meta["bytes"] > 0)
    raw = bytearray((backup / damaged).read_bytes())
    raw[len(raw) // 2] ^= 0x01
    (backup / damaged).write_bytes(bytes(raw))
    return backup, damaged


def test_a_file_damaged_after_the_backup_fails_restore_naming_it_and_keeps_the_target(tmp_path, reads, monkeypatch):
    # The last file restore copies: every other one is copied before the damage is seen.
    backup, damaged = _backup_with_a_flipped_bit(tmp_path, max)

    precious = tmp_path / "precious"
    with engram.open(precious) as db:
        db.space("gamma").remember(content="precious", embedding=vec(7))
    before = {rel: data for rel, data in _files(precious).items() if rel != "LOCK"}
    reads.opens.clear()

    result = _restore(precious, backup, monkeypatch, "--force")

    assert result.exit_code == 1, result.output
    assert f"{damaged} differs from what the backup wrote (SHA-256)" in result.output
    assert "nothing was changed" in result.output
    # Found while copying (each file read once), not by a separate pass before it.
    assert set(reads.under(backup).values()) == {1}
    assert {rel: data for rel, data in _files(precious).items() if rel != "LOCK"} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left


def test_a_failed_restore_into_a_missing_directory_leaves_no_directory(tmp_path, reads, monkeypatch):
    # Restore opens the target (its lock) before copying; that used to leave a new
    # directory holding a LOCK behind a restore that said "nothing was changed".
    backup, _damaged = _backup_with_a_flipped_bit(tmp_path, min)
    fresh = tmp_path / "fresh"

    result = _restore(fresh, backup, monkeypatch)

    assert result.exit_code == 1, result.output
    assert "nothing was changed" in result.output
    assert not fresh.exists()


def test_restore_files_stops_at_the_damaged_file(tmp_path):
    backup, damaged = _backup_with_a_flipped_bit(tmp_path, min)
    listed = backup_files.read_backup(backup)

    with pytest.raises(ValueError, match=f"is damaged: {damaged} differs from what the backup wrote"):
        backup_files.restore_files(backup, tmp_path / "staging", listed)


def test_a_file_of_the_wrong_size_is_refused_before_anything_is_copied(tmp_path, reads, monkeypatch):
    settings = _data_dir(tmp_path)
    backup = tmp_path / "backup"
    _backup(settings, backup)
    listed = json.loads((backup / BACKUP_MANIFEST).read_text())["files"]
    cut = max(rel for rel, meta in listed.items() if meta["bytes"] > 0)
    (backup / cut).write_bytes((backup / cut).read_bytes()[:-1])
    reads.opens.clear()

    result = _restore(tmp_path / "restored", backup, monkeypatch)

    assert result.exit_code == 1, result.output
    assert f"{cut} has {listed[cut]['bytes'] - 1} bytes, the backup wrote {listed[cut]['bytes']}" in result.output
    assert reads.under(backup) == {BACKUP_MANIFEST: 1}  # only the manifest was read
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# ----------------------------------------------------------------------------- (c) manifest


def test_the_manifest_lists_every_copied_file_with_its_size_and_digest(tmp_path):
    settings = _data_dir(tmp_path)
    target = tmp_path / "backup"
    stats = _backup(settings, target)

    doc = json.loads((target / BACKUP_MANIFEST).read_text())
    on_disk = {rel: data for rel, data in _files(target).items() if rel != BACKUP_MANIFEST}
    assert doc["files"] == {rel: {"bytes": len(data), "sha256": _sha256(data)} for rel, data in on_disk.items()}
    assert doc["spaces"] == ["alpha", "beta"] == stats["spaces"]
    assert stats["files"] == len(on_disk) and stats["bytes"] == sum(len(d) for d in on_disk.values())
    # The copy is of the data directory: each space's file is there with the same bytes.
    source = _files(Path(settings.data_dir))
    for rel, data in on_disk.items():
        if rel != "keys.sqlite":
            assert source[rel] == data, rel
    assert sorted(backup_files.read_backup(target)) == sorted(on_disk)
