"""Checkpoint files: a space's whole state at one LSN, written atomically.

Layout of ``checkpoint-<lsn>.snap`` (little-endian):
  magic 8 bytes "EGRSNAP1" | lsn u64 | rows u64 | dimension u32 | meta bytes u64 |
  embedding bytes u64 | meta CRC32C u32 | embedding CRC32C u32 | header CRC32C u32
then the msgpack metadata, then the float32 embedding rows. A snapshot is written
to a temporary name, fsync'd, renamed and the directory fsync'd, so a crash leaves
either the old checkpoint or the new one, never half of one. Loading verifies
every CRC; a bad checkpoint is a CorruptionError (the WAL segments it covered are
gone, so silently skipping it would lose data).
"""

from __future__ import annotations

import builtins
import gc
import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from engram import _core
from engram.errors import CorruptionError

MAGIC = b"EGRSNAP1"
_HEAD = struct.Struct("<8sQQIQQII")
_HEAD_BYTES = _HEAD.size + 4
PREFIX = "checkpoint-"
SUFFIX = ".snap"


@dataclass(frozen=True, slots=True)
class Snapshot:
    lsn: int
    meta: dict[str, Any]
    embeddings: np.ndarray  # float32 (rows, dimension)


def _crc(data: bytes | memoryview) -> int:
    return _core.crc32c(data) if len(data) else 0


def write(directory: Path, lsn: int, meta: dict[str, Any], embeddings: np.ndarray) -> Path:
    """Write a checkpoint atomically and return its path."""
    assert embeddings.dtype == np.float32 and embeddings.ndim == 2
    meta_bytes = _pack(meta)
    emb = np.ascontiguousarray(embeddings)
    emb_view = memoryview(emb).cast("B")
    head = _HEAD.pack(MAGIC, lsn, emb.shape[0], emb.shape[1], len(meta_bytes), len(emb_view), _crc(meta_bytes), _crc(emb_view))
    final = directory / f"{PREFIX}{lsn:020d}{SUFFIX}"
    temp = final.with_suffix(".tmp")
    with open(temp, "wb") as handle:
        handle.write(head)
        handle.write(_core.crc32c(head).to_bytes(4, "little"))
        handle.write(meta_bytes)
        handle.write(emb_view)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, final)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return final


@dataclass(frozen=True, slots=True)
class PackedArray:
    """A metadata value packed ahead: a msgpack array of ``count`` elements whose packed
    bytes, concatenated, are ``body`` (the caller packs them as it reads them)."""

    count: int
    body: bytes


def _pack(meta: dict[str, Any]) -> bytes:
    """``msgpack.packb(meta)`` byte for byte (a PackedArray as the array it holds), long
    lists packed an element at a time: one packb call holds the GIL throughout (0.3 s for
    100k items, every writer and reader of the process stalled behind a background
    checkpoint); between calls they run."""
    parts: list[bytes] = []
    packer = msgpack.Packer(use_bin_type=True, autoreset=False)
    packer.pack_map_header(len(meta))
    for key, value in meta.items():
        packer.pack(key)
        if isinstance(value, PackedArray):
            packer.pack_array_header(value.count)
            parts.append(packer.bytes())
            packer.reset()
            parts.append(value.body)
        elif isinstance(value, (list, tuple)) and len(value) > 64:
            packer.pack_array_header(len(value))
            for element in value:
                packer.pack(element)
        else:
            packer.pack(value)
    parts.append(packer.bytes())
    return b"".join(parts)


def latest(directory: Path) -> Path | None:
    found = sorted(p for p in directory.glob(f"{PREFIX}*{SUFFIX}") if p.name[len(PREFIX) : -len(SUFFIX)].isdigit())
    return found[-1] if found else None


def read(path: Path) -> Snapshot:
    """Load and verify a checkpoint. Raises CorruptionError."""
    with builtins.open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        # A read-only map, not a read: the embeddings are copied once, into the matrix.
        data = mmap.mmap(handle.fileno(), size, access=mmap.ACCESS_READ) if size else b""
    if len(data) < _HEAD_BYTES:
        raise CorruptionError(str(path), 0, "checkpoint shorter than its header")
    head = bytes(data[: _HEAD.size])
    if _core.crc32c(head) != int.from_bytes(data[_HEAD.size : _HEAD_BYTES], "little"):
        raise CorruptionError(str(path), 0, "checkpoint header checksum mismatch")
    magic, lsn, rows, dimension, meta_len, emb_len, meta_crc, emb_crc = _HEAD.unpack(head)
    if magic != MAGIC:
        raise CorruptionError(str(path), 0, "not a checkpoint file")
    meta_start = _HEAD_BYTES
    emb_start = meta_start + meta_len
    if emb_start + emb_len != len(data) or emb_len != rows * dimension * 4:
        raise CorruptionError(str(path), meta_start, "checkpoint sizes do not match the file")
    meta_bytes = memoryview(data)[meta_start:emb_start]
    emb_bytes = memoryview(data)[emb_start:]
    if _crc(meta_bytes) != meta_crc:
        raise CorruptionError(str(path), meta_start, "checkpoint metadata checksum mismatch")
    if _crc(emb_bytes) != emb_crc:
        raise CorruptionError(str(path), emb_start, "checkpoint embeddings checksum mismatch")
    meta = _unpack_without_gc(meta_bytes)
    # A view into the file's bytes, not a copy: the caller copies rows into its matrix.
    embeddings = np.frombuffer(emb_bytes, dtype=np.float32).reshape(rows, dimension)
    return Snapshot(lsn, meta, embeddings)


def _unpack_without_gc(raw: memoryview) -> dict[str, Any]:
    # Unpacking creates millions of containers; the cyclic GC would rescan them
    # many times over (0.5 s instead of 0.1 s at 100k memories). None are cyclic.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return msgpack.unpackb(raw, raw=False, strict_map_key=False)
    finally:
        if enabled:
            gc.enable()


def remove_older(directory: Path, keep: Path) -> None:
    for path in directory.glob(f"{PREFIX}*{SUFFIX}"):
        if path != keep:
            path.unlink()
