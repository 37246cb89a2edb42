"""Checkpoint files: a space's whole state at one LSN, written atomically.

Layout of ``checkpoint-<lsn>.snap`` (little-endian):
  magic 8 bytes "EGRSNAP1" | lsn u64 | rows u64 | dimension u32 | meta bytes u64 |
  embedding bytes u64 | meta CRC32C u32 | embedding CRC32C u32 | header CRC32C u32
then the msgpack metadata, then the float32 embedding rows. A snapshot is written
to a temporary name (the header last: sizes and checksums are summed as the rest is
written a chunk at a time), fsync'd, renamed and the directory fsync'd, so a crash
leaves either the old checkpoint or the new one, never half of one. Loading verifies
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
from typing import Any, Iterator

import msgpack
import numpy as np

from engram import _core
from engram.errors import CorruptionError
from engram.storage.files import fsync_directory

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


@dataclass(frozen=True, slots=True)
class PackedArray:
    """A metadata value packed ahead: a msgpack array of ``count`` elements whose packed
    bytes, concatenated, are ``body`` (the caller packs them as it reads them)."""

    count: int
    body: bytes


@dataclass(frozen=True, slots=True)
class Rows:
    """Rows ``rows`` of ``array`` in that order, as ``dtype`` (little-endian): a metadata
    value (a msgpack bin of their bytes) or the embeddings, gathered and written a chunk
    at a time, so that a checkpoint of 100k memories does not allocate and fault in
    0.4 GB of copies (the caller guarantees the rows do not change meanwhile)."""

    array: np.ndarray
    rows: np.ndarray  # int64
    dtype: str

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows),) + self.array.shape[1:]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize

    def chunks(self) -> Iterator[memoryview]:
        if not len(self.rows):
            return
        step = max(1, _CHUNK_BYTES // (self.nbytes // len(self.rows) or 1))
        buffer = np.empty((min(step, len(self.rows)),) + self.array.shape[1:], self.array.dtype)
        for start in range(0, len(self.rows), step):
            index = self.rows[start : start + step]
            part = np.take(self.array, index, axis=0, out=buffer[: len(index)])
            if part.dtype != np.dtype(self.dtype):
                part = part.astype(self.dtype)
            yield memoryview(part).cast("B")

    def tobytes(self) -> bytes:
        return b"".join(bytes(chunk) for chunk in self.chunks())


_CHUNK_BYTES = 4 * 1024 * 1024
Part = bytes | memoryview | Rows


def _parts(meta: dict[str, Any]) -> list[Part]:
    """``msgpack.packb(meta)`` byte for byte, as parts to write in turn (a PackedArray as
    the array it holds, Rows as a bin of their bytes); long lists are packed an element
    at a time: one packb call holds the GIL throughout (0.3 s for 100k items, every
    writer and reader of the process stalled behind a background checkpoint)."""
    parts: list[Part] = []
    packer = msgpack.Packer(use_bin_type=True, autoreset=False)

    def flush() -> None:
        parts.append(packer.bytes())
        packer.reset()

    packer.pack_map_header(len(meta))
    for key, value in meta.items():
        packer.pack(key)
        if isinstance(value, PackedArray):
            packer.pack_array_header(value.count)
            flush()
            parts.append(value.body)
        elif isinstance(value, Rows):
            flush()
            parts.append(_bin_header(value.nbytes))
            parts.append(value)
        elif isinstance(value, (list, tuple)) and len(value) > 64:
            packer.pack_array_header(len(value))
            for element in value:
                packer.pack(element)
        else:
            packer.pack(value)
    flush()
    return parts


def _bin_header(size: int) -> bytes:
    """The msgpack bin header packb writes before ``size`` bytes (bin 8, 16 or 32)."""
    if size < 1 << 8:
        return struct.pack(">BB", 0xC4, size)
    if size < 1 << 16:
        return struct.pack(">BH", 0xC5, size)
    return struct.pack(">BI", 0xC6, size)


def _chunks(part: Part) -> Iterator[bytes | memoryview]:
    if isinstance(part, Rows):
        yield from part.chunks()
    elif len(part):
        yield part


def pack_meta(meta: dict[str, Any]) -> bytes:
    """The metadata's bytes as a checkpoint holds them."""
    return b"".join(bytes(chunk) for part in _parts(meta) for chunk in _chunks(part))


def write(directory: Path, lsn: int, meta: dict[str, Any], embeddings: np.ndarray | Rows) -> Path:
    """Write a checkpoint atomically and return its path.

    ``meta``'s values may be Rows and PackedArray; ``embeddings`` is float32 (rows,
    dimension) or Rows of such a matrix. Nothing is gathered whole: the header, with
    the sizes and checksums, is written last, over a placeholder."""
    if isinstance(embeddings, Rows):
        assert embeddings.array.dtype == np.float32 and embeddings.array.ndim == 2 and embeddings.dtype == "<f4"
        emb_parts: list[Part] = [embeddings]
    else:
        assert embeddings.dtype == np.float32 and embeddings.ndim == 2
        emb_parts = [memoryview(np.ascontiguousarray(embeddings)).cast("B")]
    rows, dimension = embeddings.shape
    meta_parts = _parts(meta)
    final = directory / f"{PREFIX}{lsn:020d}{SUFFIX}"
    temp = final.with_suffix(".tmp")
    with open(temp, "wb") as handle:
        handle.write(bytes(_HEAD_BYTES))
        sums = []
        for parts in (meta_parts, emb_parts):
            crc = 0
            size = 0
            for part in parts:
                for chunk in _chunks(part):
                    crc = _core.crc32c(chunk, crc)
                    size += len(chunk)
                    handle.write(chunk)
            sums.append((size, crc))
        (meta_len, meta_crc), (emb_len, emb_crc) = sums
        head = _HEAD.pack(MAGIC, lsn, rows, dimension, meta_len, emb_len, meta_crc, emb_crc)
        handle.seek(0)
        handle.write(head)
        handle.write(_core.crc32c(head).to_bytes(4, "little"))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, final)
    fsync_directory(directory)
    return final


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


def remove_temporary(directory: Path) -> None:
    """Delete what checkpoints killed before their rename left (the caller holds the
    directory lock, so none is being written): never read, and never overwritten by a
    checkpoint at another LSN, each would take the space's size on disk for good."""
    for path in directory.glob(f"{PREFIX}*.tmp"):
        path.unlink()


def remove_older(directory: Path, keep: Path) -> None:
    for path in directory.glob(f"{PREFIX}*{SUFFIX}"):
        if path != keep:
            path.unlink()
