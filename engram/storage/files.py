"""Durable file-system steps shared by the log, snapshots, the database and backups.

A new directory, a rename or a replaced small file survives a power failure only once
the directory holding it is fsync'd too; these helpers do that step every time.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any


def fsync_path(path: Path, *, data_only: bool = False) -> None:
    """fsync (fdatasync with ``data_only``) the file or directory at ``path``."""
    fd = os.open(path, os.O_RDONLY)
    try:
        (os.fdatasync if data_only else os.fsync)(fd)
    finally:
        os.close(fd)


def fsync_directory(path: Path) -> None:
    fsync_path(path)


def write_json_durably(path: Path, doc: Any, *, indent: int) -> None:
    """Replace ``path`` with ``doc`` as JSON (sorted keys), all or nothing across a power
    failure: written to a temporary file, fsync'd, renamed over, then the directory fsync'd."""
    path = Path(path)
    temp = path.with_name(path.name + ".tmp")
    with open(temp, "w", encoding="utf-8") as handle:
        json.dump(doc, handle, sort_keys=True, indent=indent)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
    fsync_directory(path.parent)


def make_directory(path: Path) -> None:
    """``path.mkdir(parents=True, exist_ok=True)``, durably: the parent of each directory
    it creates is fsync'd after, so that a power failure cannot take a new directory (and
    the fsync'd files in it) away. Raises OSError."""
    path = Path(path)
    created = []
    ancestor = path
    while not ancestor.exists() and ancestor != ancestor.parent:
        created.append(ancestor)
        ancestor = ancestor.parent
    path.mkdir(parents=True, exist_ok=True)
    for directory in reversed(created):
        fsync_directory(directory.parent)


def remove_tree_durably(path: Path, *, ignore_errors: bool = False) -> None:
    """Delete the directory ``path`` and all it holds, then fsync its parent, so that a
    power failure cannot bring the deletion back. With ``ignore_errors``, what cannot
    be deleted is left (as shutil.rmtree's flag); the parent is fsync'd all the same.
    Raises OSError."""
    path = Path(path)
    shutil.rmtree(path, ignore_errors=ignore_errors)
    fsync_directory(path.parent)
