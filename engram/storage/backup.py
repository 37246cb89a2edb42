"""The backup directory format: copied files plus BACKUP.json, their sizes and SHA-256.

A backup is a copy of the data directory's files with a manifest, ``BACKUP.json``,
written last: ``{"format": 1, "created_at", "spaces", "files": {relative path:
{"bytes", "sha256"}}}``. A backup that stopped half way has no manifest, and restore
refuses it; the digests let restore notice a file damaged since.

Every copy here hashes what it reads in the same pass as it writes it (read a chunk,
hash it, write it), so a file's bytes are read once: a backup does not read its copy
back to hash it, and a restore does not read the backup once to verify it and again
to copy it. Copies are made durable (each file, then each directory, fsync'd) before
the manifest that vouches for them is written.

This module knows files only: it takes no locks, knows no spaces or servers, and
never decides which files of a data directory belong in a backup (the caller does).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .files import fsync_directory, fsync_path, make_directory, write_json_durably

__all__ = [
    "BACKUP_MANIFEST",
    "FileRecord",
    "copy_file",
    "copy_tree",
    "empty_directory",
    "file_record",
    "fsync_tree",
    "read_backup",
    "restore_files",
    "seal_backup",
    "write_manifest",
]

BACKUP_MANIFEST = "BACKUP.json"
# Read and written in pieces this big: large enough that hashing, not system calls,
# is the cost; small enough that a copy holds little memory.
CHUNK_BYTES = 1 << 20
# Problems listed in one "is damaged" message; the rest are counted.
PROBLEMS_SHOWN_MAX = 5


@dataclass(frozen=True, slots=True)
class FileRecord:
    """A file's size and SHA-256 (hex), as BACKUP.json lists it."""

    size_bytes: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"bytes": self.size_bytes, "sha256": self.sha256}


def file_record(path: Path) -> FileRecord:
    """Size and digest of ``path``, read once. For a file this module did not copy
    (the key database, which SQLite's backup API writes). Raises OSError."""
    digest = hashlib.sha256()
    size_bytes = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
            size_bytes += len(chunk)
    return FileRecord(size_bytes, digest.hexdigest())


def copy_file(source: Path, target: Path) -> FileRecord:
    """Copy ``source`` to the new file ``target`` (its mode and times as well, as
    shutil.copy2 does) and return the size and digest of the bytes copied, hashed as
    they were read. ``target`` must not exist. Not fsync'd: see fsync_tree. Raises
    OSError (FileExistsError if ``target`` exists)."""
    digest = hashlib.sha256()
    size_bytes = 0
    # Created private: copystat below gives it the source's mode once it is written,
    # so a private source (the key database) is never readable by others meanwhile.
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(fd, "wb", closefd=True) as sink, open(source, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
            sink.write(chunk)
            size_bytes += len(chunk)
    shutil.copystat(source, target)
    return FileRecord(size_bytes, digest.hexdigest())


def copy_tree(source: Path, target: Path, *, skip: Callable[[str], bool] | None = None) -> dict[str, FileRecord]:
    """Copy the directory ``source`` into ``target`` (made, with its subdirectories),
    every file hashed as it is copied, except files whose name ``skip`` accepts.
    Returns the records of the copied files by path relative to ``source`` (POSIX
    separators). Not fsync'd: see fsync_tree. Raises OSError."""
    records: dict[str, FileRecord] = {}
    for root, dirs, names in os.walk(source):
        dirs.sort()  # os.walk descends in this order: the same tree copies the same way
        rel = Path(root).relative_to(source)
        make_directory(target / rel)
        for name in sorted(names):
            if skip is not None and skip(name):
                continue
            records[(rel / name).as_posix()] = copy_file(Path(root) / name, target / rel / name)
    return records


def fsync_tree(root: Path) -> None:
    """fsync every file and directory under ``root`` (and ``root``), files first, so
    that what a copy wrote survives a power failure. Reads no file's contents."""
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            fsync_path(Path(dirpath) / name)
        fsync_directory(Path(dirpath))


def write_manifest(target: Path, *, spaces: list[str], created_at: str, files: dict[str, FileRecord]) -> None:
    """Write BACKUP.json into a finished backup, durably. ``files`` are the records the
    copy made, one for every file of ``target``. Raises OSError."""
    present = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    present = [rel for rel in present if rel != BACKUP_MANIFEST]
    # Every file of the backup is vouched for, and nothing that is not there.
    assert sorted(files) == present, sorted(set(files) ^ set(present))
    doc = {"format": 1, "created_at": created_at, "spaces": spaces,
           "files": {rel: files[rel].to_json() for rel in sorted(files)}}
    write_json_durably(target / BACKUP_MANIFEST, doc, indent=1)


def seal_backup(target: Path, files: dict[str, FileRecord], spaces: list[str], created_at: str) -> None:
    """Make a finished copy durable, then write its manifest. The manifest goes in last,
    after everything else is on disk: a backup that stopped half way (a full disk, a
    killed server) has none, and restore refuses it. Raises OSError."""
    fsync_tree(target)
    write_manifest(target, spaces=spaces, created_at=created_at, files=files)


def _damaged(source: Path, problems: list[str]) -> ValueError:
    shown = "; ".join(problems[:PROBLEMS_SHOWN_MAX])
    if len(problems) > PROBLEMS_SHOWN_MAX:
        shown += f"; and {len(problems) - PROBLEMS_SHOWN_MAX} more"
    return ValueError(f"{source} is damaged: {shown}")


def _read_manifest(source: Path) -> dict[str, dict[str, Any]]:
    manifest = source / BACKUP_MANIFEST
    try:
        doc = json.loads(manifest.read_text(encoding="utf-8"))
        listed = doc["files"] if isinstance(doc, dict) else None
    except FileNotFoundError:
        raise ValueError(f"{source} has no {BACKUP_MANIFEST}: it is not an engram backup, or its 'engram backup create' "
                         "did not finish; restore only a directory that 'engram backup create' completed") from None
    except (OSError, ValueError, KeyError, UnicodeDecodeError):
        listed = None
    if not isinstance(listed, dict) or not all(isinstance(m, dict) for m in listed.values()):
        raise ValueError(f"{source / BACKUP_MANIFEST} is damaged (not the JSON 'engram backup create' writes)")
    return listed


def read_backup(source: Path) -> dict[str, dict[str, Any]]:
    """The manifest's entries of a backup that passes every check needing no file's
    contents: manifest present and parsable, every listed file there with its listed
    size, no file unlisted. The digests are checked by restore_files as it copies.

    Raises:
        ValueError: no manifest (not a backup, or one that never finished), a damaged
            manifest, a listed file missing or of another size, or an unlisted file.
    """
    listed = _read_manifest(source)
    problems = []
    for rel, meta in sorted(listed.items()):
        path = source / rel
        if not path.is_file():
            problems.append(f"{rel} is missing")
        elif path.stat().st_size != meta.get("bytes"):
            problems.append(f"{rel} has {path.stat().st_size} bytes, the backup wrote {meta.get('bytes')}")
    present = {p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file()}
    # LOCK: opening the backup with engram.open (to look inside) leaves one; it is no data.
    for rel in sorted(present - set(listed) - {BACKUP_MANIFEST, "LOCK"}):
        problems.append(f"{rel} is not part of the backup")
    if problems:
        raise _damaged(source, problems)
    return listed


def restore_files(source: Path, target: Path, listed: dict[str, dict[str, Any]],
                  on_file: Callable[[str], None] | None = None) -> None:
    """Copy the files ``listed`` (read_backup's answer) from the backup ``source`` into
    the new directory ``target``, checking each one's size and digest against the
    manifest as it is copied, and make the copy durable. ``on_file(rel)`` is called
    after each file. On a mismatch it stops at that file; what it copied is left for
    the caller to delete (``target`` is a staging directory, never the data itself).

    Raises:
        ValueError: a file whose size or digest differs from the manifest's, in the
            words read_backup uses.
        OSError: reading the backup or writing ``target`` failed.
    """
    for rel, meta in sorted(listed.items()):
        assert rel != BACKUP_MANIFEST
        make_directory((target / rel).parent)
        record = copy_file(source / rel, target / rel)
        if record.size_bytes != meta.get("bytes"):  # changed since read_backup looked
            raise _damaged(source, [f"{rel} has {record.size_bytes} bytes, the backup wrote {meta.get('bytes')}"])
        if record.sha256 != meta.get("sha256"):
            raise _damaged(source, [f"{rel} differs from what the backup wrote (SHA-256)"])
        if on_file is not None:
            on_file(rel)
    fsync_tree(target)


def empty_directory(target: Path) -> None:
    """Delete everything in ``target`` (what a failed backup wrote), leaving it empty, so
    that the same backup can be tried again. A subdirectory that cannot be deleted is
    left (this runs while another error, the one to report, is on its way); a file
    that cannot be unlinked raises OSError."""
    if not target.is_dir():
        return
    for entry in target.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
