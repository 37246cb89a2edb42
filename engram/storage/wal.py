"""Write-ahead log of one memory space: segments, group commit, recovery.

A log is a directory of segment files named by the LSN of their first record
(``00000000000000000001.wal``). Records are the kernel codec's (36-byte header
with CRC32C of header and payload, then a msgpack payload). Appends go to the OS
with one ``os.write`` per batch, under the caller's lock so that LSN order equals
write order; durability is a separate step, ``wait_durable(lsn)``, done outside
that lock so that concurrent writers share one ``fdatasync`` (group commit: the
first waiter to find no sync running becomes the leader and syncs everything
written so far; the others wait for it).

Recovery reads every segment in order. In the last segment, damage inside the final
write is a torn tail: a record cut short or failing its checksum with no valid record
after it, or with only records of the same write after it (a batch whose pages reached
the disk out of order when the power failed). It is truncated and counted. Each
append's first record carries FLAG_WRITE_START, so a later write after the damage is
visible, and how far the log was known durable when it was written (FLAG_LAG and its
lag). Damage that a later write knew to be durable (fsync'd, so perhaps acknowledged)
is corruption. Damage that no later write knew to be durable lies after the last sync
any write saw complete: a torn tail, however many writes follow it. They can follow
it in both modes: durability "async" returns before any fsync, and in "sync" a forget
or associate waits for its fsync outside the write lock, so a store may append while
that fsync is still in flight (see _torn_tail).

A damaged payload of a record the checkpoint covers (LSN <= ``after_lsn``, already in
the snapshot) loses nothing: its intact header says where the next record starts, and
replay steps over it and reports it (see _covered_damage_end). Anything else that fails is a
``CorruptionError`` naming file and offset, unless ``salvage`` asks to keep what is
valid before it: so is a record whose LSN does not follow the one before (a lost
segment, records out of order) and one whose payload the space cannot decode (it
throws it back in).

It must not: decode payloads (the space does), or hold the sync lock during I/O.
"""

from __future__ import annotations

import mmap
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generator, NamedTuple

import numpy as np

from engram import _core
from engram._core._common import HEADER_STRUCT, RECORD_MAGIC, RECORD_VERSION
from engram.errors import ClosedError, CorruptionError
from engram.storage.files import fsync_directory, fsync_path, make_directory

SEGMENT_SUFFIX = ".wal"
# Appends encode their records into a buffer the log keeps (see append), up to this
# size (a group commit's records); a larger batch (a bulk store's) gets a buffer of its
# own, which NumPy backs with huge pages from 4 MB: few page faults either way, and an
# idle space holds at most this much.
ENCODE_BUFFER_BYTES_MAX = 1024 * 1024
# Header flag of the first record of each append (one os.write): recovery can then tell
# damage inside the log's final write, never fsync'd as a whole, from damage followed
# by a later write (see _torn_tail).
FLAG_WRITE_START = 0x0001
# Header flag of the first record of an append: bits 2-15 then hold its lag, how many
# records before it were not yet known durable when it was written (saturated at LAG_MAX:
# a larger lag reads as this one, which only makes recovery more ready to call damage
# corruption). Recovery learns from it where the last sync that write saw complete ended
# (see _torn_tail). Logs written before it was set in durability "sync" lack it: there
# a later write counts as knowing everything before it durable, the older, stricter rule.
FLAG_LAG = 0x0002
LAG_SHIFT = 2
LAG_MAX = 0xFFFF >> LAG_SHIFT


class WalRecord(NamedTuple):
    """One record read back (a tuple: recovery makes one per record, and a frozen
    dataclass cost three times as much to build)."""

    rtype: int
    flags: int
    lsn: int
    timestamp_ns: int
    payload: bytes


@dataclass(slots=True)
class RecoveryReport:
    """What opening the log found: records replayed, torn bytes cut, salvage done."""

    records: int = 0
    last_lsn: int = 0
    torn_tail_bytes: int = 0
    torn_tail_segment: str | None = None
    salvaged_from: str | None = None
    salvaged_offset: int | None = None
    # Damaged bytes holding only records the checkpoint covers, stepped over:
    # (segment name, offset, bytes) each.
    skipped: list[tuple[str, int, int]] = field(default_factory=list)

    @property
    def skipped_bytes(self) -> int:
        return sum(size for _, _, size in self.skipped)


def _segment_name(first_lsn: int) -> str:
    return f"{first_lsn:020d}{SEGMENT_SUFFIX}"


class WriteAheadLog:
    """The log of one space. Thread-safe for ``wait_durable``; ``append`` needs the caller's lock."""

    def __init__(
        self,
        directory: Path,
        *,
        segment_bytes_max: int = 64 * 1024 * 1024,
        durability: str = "sync",
        flush_interval_ms: int = 50,
    ) -> None:
        assert durability in ("sync", "async")
        assert segment_bytes_max >= 4096
        assert flush_interval_ms >= 1
        self.directory = Path(directory)
        make_directory(self.directory)
        self.segment_bytes_max = segment_bytes_max
        self.durability = durability
        self.flush_interval_ms = flush_interval_ms
        self._fd = -1
        self._segment_path: Path | None = None
        self._segment_bytes = 0
        self._next_lsn = 1
        self._written_lsn = 0
        self._durable_lsn = 0
        self._syncing = False
        self._sync_cond = threading.Condition(threading.Lock())
        # Writers waiting for a running sync, each on its own event: a finished sync
        # wakes only the writers it made durable, plus one to lead the next sync, never
        # the whole crowd (32 writers woken per fsync cost more than the fsync).
        self._waiters: list[tuple[int, threading.Event]] = []
        self._closed = False
        # The first failed fdatasync, kept: Linux reports a writeback error once and may
        # drop the pages it could not write, so a later fdatasync that returns 0 proves
        # nothing about the records before it. From then on the log acknowledges and
        # accepts nothing (PostgreSQL's answer to "fsyncgate"); reopening replays what
        # really is on disk. A failed write whose partial bytes cannot be cut off is
        # kept here too (see _undo_partial_write).
        self._sync_error: OSError | None = None
        self._flusher: threading.Thread | None = None
        self._encode_buffer = np.empty(0, np.uint8)
        self._flusher_stop = threading.Event()
        self.fsync_count = 0
        self.bytes_written = 0

    # -- recovery ---------------------------------------------------------

    def segments(self) -> list[tuple[int, Path]]:
        """(first LSN, path) of every segment, in LSN order."""
        out = []
        for path in self.directory.iterdir():
            if path.suffix == SEGMENT_SUFFIX and path.stem.isdigit():
                out.append((int(path.stem), path))
        out.sort()
        return out

    def recover(self, after_lsn: int = 0, salvage: bool = False) -> tuple[Generator[WalRecord, None, None], RecoveryReport]:
        """Replay records with LSN > ``after_lsn``, then open the log for appends.

        Returns a generator of records, which must be consumed fully before the log
        is used, and a report filled in as it runs. A record the caller cannot decode
        or apply is handed back with ``records.throw(ValueError(reason))``: that raises
        a CorruptionError naming its file and offset or, with ``salvage``, cuts the log
        just before it and ends the generator (StopIteration). Records must follow each
        other by LSN (no gap, none backwards); one that does not is damage too.
        Raises CorruptionError.
        """
        report = RecoveryReport(last_lsn=after_lsn)
        return self._replay(after_lsn, salvage, report), report

    def _replay(self, after_lsn: int, salvage: bool, report: RecoveryReport) -> Generator[WalRecord, None, None]:
        segments = self.segments()
        last_lsn = after_lsn
        framed = False  # whether the segment read before marked its writes' first records
        for position, (first_lsn, path) in enumerate(segments):
            is_last = position == len(segments) - 1
            if not is_last and segments[position + 1][0] - 1 <= after_lsn:
                # Every record in it is inside the checkpoint (a crash came between the
                # snapshot and drop_through): not needed, so not read. Read, damage in
                # it would stop the space from opening, and salvage would cut the log
                # there and set aside every later segment, acknowledged writes included.
                continue
            damage: tuple[int, str, bool] | None = None  # offset, reason, torn tail
            data = _map(path)
            try:
                # Writes made before FLAG_WRITE_START existed are unmarked: only a segment
                # whose first write is marked is judged by the marks. One whose first
                # record is damaged counts as marked if the segment before it was.
                try:
                    framed = bool(_core.decode_record(data, 0)[1] & FLAG_WRITE_START)
                except (_core.RecordError, ValueError):
                    pass
                offset = 0
                prev_lsn = first_lsn - 1  # LSN of the record before ``offset`` (the name is the first's)
                while offset < len(data):
                    try:
                        rtype, flags, lsn, ts, payload, end = _core.decode_record(data, offset)
                    except _core.RecordError as exc:
                        if last_lsn == after_lsn and after_lsn > 0:
                            # Nothing newer than the checkpoint read yet: the damage may hold only
                            # records the snapshot has, whose loss would cost nothing.
                            resume = _covered_damage_end(data, offset, prev_lsn, after_lsn)
                            if resume is not None:
                                report.skipped.append((path.name, offset, resume[0] - offset))
                                offset, prev_lsn = resume
                                continue
                        # A torn tail: the process died while writing its last batch.
                        damage = (offset, exc.reason, is_last and _torn_tail(data, offset, framed, prev_lsn + 1))
                        break
                    prev_lsn = lsn
                    if lsn > after_lsn:
                        if lsn != last_lsn + 1:
                            # Replaying across a hole (a segment lost in the middle) or
                            # backwards would build a state no writer ever saw.
                            reason = f"record LSN {lsn} where {last_lsn + 1} was expected: records are missing or out of order"
                            damage = (offset, reason, False)
                            break
                        try:
                            yield WalRecord(rtype, flags, lsn, ts, payload)
                        except ValueError as exc:
                            # Thrown in by the space: the checksum holds but the payload does
                            # not decode or apply. Here the log knows the file and offset,
                            # and salvage can cut the log just before it.
                            damage = (offset, f"record {lsn} does not decode or apply: {exc}", False)
                            break
                        last_lsn = lsn
                        report.records += 1
                    offset = end
            finally:
                _unmap(data)  # before any truncation below
            if damage is None:
                continue
            offset, reason, torn = damage
            if torn:
                report.torn_tail_bytes = path.stat().st_size - offset
                report.torn_tail_segment = path.name
                _truncate(path, offset)
                continue
            if not salvage:
                raise CorruptionError(str(path), offset, reason)
            report.salvaged_from = str(path)
            report.salvaged_offset = offset
            if offset == 0:
                # Set aside whole, not left empty: an empty segment would keep a name
                # (its first LSN) that the records appended next do not have, and
                # segments are ordered by name.
                path.rename(path.with_suffix(".corrupt"))
            else:
                _truncate(path, offset)
            for _, later in segments[position + 1 :]:
                later.rename(later.with_suffix(".corrupt"))
            # Durable before new records reuse their LSNs: back as .wal after a power
            # failure, they would break the order of the log (a CorruptionError at open).
            fsync_directory(self.directory)
            break
        report.last_lsn = last_lsn
        self._open_for_append(last_lsn)

    def _open_for_append(self, last_lsn: int) -> None:
        segments = self.segments()
        self._next_lsn = last_lsn + 1
        self._written_lsn = last_lsn
        self._durable_lsn = last_lsn
        if segments and segments[-1][1].stat().st_size < self.segment_bytes_max:
            path = segments[-1][1]
        else:
            path = self.directory / _segment_name(self._next_lsn)
            if segments and segments[-1][1].stat().st_size:
                # A full last segment is closed from now on: no later write's fsync covers
                # it, and its replayed records may still be only in the page cache (the
                # process died before their sync). Lost to a power failure, they would be
                # damage in a segment that is not the last, a CorruptionError at open.
                fsync_path(segments[-1][1], data_only=True)
        self._open_segment(path)
        if self._segment_bytes:
            # The records replayed count as durable (_durable_lsn above), and the next
            # write's lag says so to recovery: make it true after a crash of the process
            # alone, whose last writes may still be only in the page cache.
            os.fdatasync(self._fd)
        if self.durability == "async":
            self._flusher = threading.Thread(target=self._serve_flusher, name=f"wal-flush:{self.directory}", daemon=True)
            self._flusher.start()

    def _open_segment(self, path: Path) -> None:
        created = not path.exists()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._segment_path = path
        self._segment_bytes = os.fstat(self._fd).st_size
        if created:
            fsync_directory(self.directory)

    # -- appends ----------------------------------------------------------

    @property
    def next_lsn(self) -> int:
        return self._next_lsn

    @property
    def last_lsn(self) -> int:
        return self._written_lsn

    def append(self, entries: list[tuple[int, bytes]], timestamp_ns: int) -> int:
        """Write records for ``entries`` ((rtype, payload) pairs) to the OS; return the last LSN.

        The caller holds its own lock around this call and applies the records to
        its state under the same lock, so LSN order is the order of effects.
        """
        if self._closed:
            raise ClosedError("the write-ahead log is closed")
        self._raise_if_sync_failed()
        assert entries
        # The records go straight into one buffer: a bytes object per record plus their
        # joined copy were 32 MB of fresh memory for a bulk batch of 5,000, each 4 KB
        # page of it faulted in (~1.6 faults a record under the server's malloc settings).
        size = _core.HEADER_BYTES * len(entries) + sum(len(payload) for _, payload in entries)
        buffer = self._encode_buffer
        if buffer.shape[0] < size:
            buffer = np.empty(max(size, min(2 * buffer.shape[0], ENCODE_BUFFER_BYTES_MAX)), np.uint8)
            if buffer.shape[0] <= ENCODE_BUFFER_BYTES_MAX:
                self._encode_buffer = buffer
        # The first record marked as a write's start, with its lag (see _torn_tail).
        # _durable_lsn read without _sync_cond: a value a sync is about to raise only
        # makes the lag larger, and a larger lag only claims less.
        lag = min(self._next_lsn - 1 - self._durable_lsn, LAG_MAX)
        first_flags = FLAG_WRITE_START | FLAG_LAG | (lag << LAG_SHIFT)
        written_bytes = _core.encode_records_into(buffer, entries, self._next_lsn, timestamp_ns, first_flags)
        lsn = self._next_lsn + len(entries)
        data = memoryview(buffer)[:written_bytes]
        if self._segment_bytes > 0 and self._segment_bytes + len(data) > self.segment_bytes_max:
            self._rotate_locked()
        written = 0
        view = memoryview(data)
        try:
            while written < len(data):
                written += os.write(self._fd, view[written:])
        except BaseException:
            self._undo_partial_write()
            raise
        self._segment_bytes += len(data)
        self.bytes_written += len(data)
        self._next_lsn = lsn
        self._written_lsn = lsn - 1
        return lsn - 1

    def _undo_partial_write(self) -> None:
        """Cut the segment back to its last whole batch after a failed write (ENOSPC
        halfway): left there, the partial bytes would be followed by the next batch, and
        recovery would find damage followed by valid records (a CorruptionError). If the
        cut fails too, the log refuses every later write and sync, as after a failed
        fsync: appending after those bytes would make later acknowledged records unreadable."""
        try:
            os.ftruncate(self._fd, self._segment_bytes)
        except OSError as exc:
            with self._sync_cond:
                self._fail_locked(OSError(exc.errno, f"a failed write left a partial batch at offset {self._segment_bytes} of "
                                                     f"{self._segment_path} that could not be cut off ({exc})"))

    def _fail_locked(self, error: OSError | None) -> None:
        """Keep the first storage failure (sticky: see _sync_error) and wake every waiter
        to meet it (caller holds _sync_cond). None only wakes them."""
        if error is not None and self._sync_error is None:
            self._sync_error = error
        self._wake_locked(everyone=True)

    def wait_durable(self, lsn: int) -> None:
        """Return once every record up to ``lsn`` is on disk (a no-op in async mode)."""
        if self.durability == "async":
            return
        self._sync_until(lsn)

    def sync(self) -> None:
        """Make everything written so far durable, whatever the durability mode."""
        self._sync_until(self._written_lsn)

    def _sync_until(self, lsn: int) -> None:
        while True:
            with self._sync_cond:
                if self._durable_lsn >= lsn:
                    return
                if self._closed:
                    raise ClosedError("the write-ahead log is closed")
                self._raise_if_sync_failed()
                if self._syncing:
                    event: threading.Event | None = threading.Event()
                    self._waiters.append((lsn, event))
                else:
                    # Become the leader: everything written before this read is covered.
                    event = None
                    target = self._written_lsn
                    fd = self._fd
                    self._syncing = True
            if event is not None:
                event.wait()
                continue  # durable now, or chosen to lead the next sync
            try:
                os.fdatasync(fd)
            except BaseException as exc:
                with self._sync_cond:
                    self._syncing = False
                    self._fail_locked(exc if isinstance(exc, OSError) else None)  # each retries; the error reaches them too
                raise
            with self._sync_cond:
                self._syncing = False
                self.fsync_count += 1
                if target > self._durable_lsn:
                    self._durable_lsn = target
                self._wake_locked()

    def _raise_if_sync_failed(self) -> None:
        error = self._sync_error
        if error is not None:
            raise OSError(
                error.errno,
                f"the write-ahead log in {self.directory} failed to sync or write ({error}); records written "
                f"before that may not be on disk, so nothing more is acknowledged: reopen the database "
                f"(recovery cuts what is not whole)",
            )

    def _wake_locked(self, everyone: bool = False) -> None:
        """Wake the waiters that are durable now, and one more to lead the next sync."""
        remaining = []
        for waiter_lsn, event in self._waiters:
            if everyone or waiter_lsn <= self._durable_lsn:
                event.set()
            else:
                remaining.append((waiter_lsn, event))
        if remaining and not self._syncing:
            remaining[0][1].set()
            remaining = remaining[1:]
        self._waiters = remaining
        self._sync_cond.notify_all()  # rotation and close wait on the condition itself

    def rotate(self) -> None:
        """Start a new segment (the caller holds its lock); used before a checkpoint."""
        if self._segment_bytes > 0:
            self._rotate_locked()

    def _rotate_locked(self) -> None:
        # The old segment must be durable before it is closed: wait out a running
        # sync on it, then sync it ourselves.
        with self._sync_cond:
            while self._syncing:
                self._sync_cond.wait()
            self._raise_if_sync_failed()
            try:
                os.fdatasync(self._fd)
            except OSError as exc:
                self._fail_locked(exc)
                raise
            self.fsync_count += 1
            self._durable_lsn = self._written_lsn
            os.close(self._fd)
            self._open_segment(self.directory / _segment_name(self._next_lsn))
            self._wake_locked()

    def drop_through(self, lsn: int) -> int:
        """Delete segments whose records all have LSN <= ``lsn``; return how many."""
        segments = self.segments()
        dropped = 0
        for (first, path), (next_first, _) in zip(segments, segments[1:]):
            if next_first - 1 <= lsn and path != self._segment_path:
                path.unlink()
                dropped += 1
        if dropped:
            fsync_directory(self.directory)
        return dropped

    def size_bytes(self) -> int:
        return sum(path.stat().st_size for _, path in self.segments())

    def _serve_flusher(self) -> None:
        while not self._flusher_stop.wait(self.flush_interval_ms / 1000):
            try:
                self.sync()
            except (ClosedError, OSError):
                return

    def close(self) -> None:
        if self._closed:
            return
        self._flusher_stop.set()
        if self._flusher is not None:
            self._flusher.join()
        if self._fd >= 0:
            try:
                self.sync()  # raises if a sync failed: what it wrote may not be on disk
            finally:
                with self._sync_cond:
                    self._closed = True
                    os.close(self._fd)
                    self._fd = -1
                    self._wake_locked(everyone=True)
        self._closed = True


def _map(path: Path) -> mmap.mmap | bytes:
    """A segment's bytes, mapped read-only: reading 64 MiB into a new buffer cost more
    than decoding its records (page faults of the copy)."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if not size:
            return b""
        data = mmap.mmap(handle.fileno(), size, access=mmap.ACCESS_READ)
    if hasattr(mmap, "MADV_WILLNEED"):
        data.madvise(mmap.MADV_WILLNEED)  # read ahead the whole segment, not a page fault at a time
    return data


def _unmap(data: mmap.mmap | bytes) -> None:
    if isinstance(data, mmap.mmap):
        try:
            data.close()
        except BufferError:  # a view still held somewhere: the map goes with it
            pass


_MAGIC = RECORD_MAGIC.to_bytes(4, "little")


def _torn_tail(data: bytes, offset: int, framed: bool, damaged_lsn: int) -> bool:
    """Whether damage at ``offset`` of the last segment, where record ``damaged_lsn``
    began, lies after the last sync that completed.

    It does when no intact record starts after it, or, in a segment whose writes are
    marked (``framed``), when none of the intact records after it starts a write: they
    belong to the damaged write, the last one, whose fsync cannot have completed
    without the damaged bytes. An intact record that starts a write is a later write:
    if, by its lag (FLAG_LAG), a completed sync had reached ``damaged_lsn`` when it was
    written, the damaged bytes had been fsync'd and may have been acknowledged, so this
    is corruption. If not, it proves nothing (it may have been written while the damaged
    record's own fsync was in flight, and a power failure then lets pages reach the disk
    in any order), and damage that only such writes follow is past every sync a write
    saw complete. (A sync that completed with no write after it to tell is missed: its
    bytes count as torn, as the final write's own always did.) A write without FLAG_LAG
    (older logs) counts as knowing everything before it durable.
    """
    position = data.find(_MAGIC, offset + 1)
    while position != -1:
        try:
            _, flags, lsn, _, _, _ = _core.decode_record(data, position)
        except _core.RecordError:
            position = data.find(_MAGIC, position + 1)
            continue
        if not framed:
            return False
        if flags & FLAG_WRITE_START:
            known_durable = lsn - 1 - (flags >> LAG_SHIFT) if flags & FLAG_LAG else lsn - 1
            if known_durable >= damaged_lsn:
                return False
        position = data.find(_MAGIC, position + 1)
    return True


def _covered_damage_end(data: bytes, offset: int, prev_lsn: int, after_lsn: int) -> tuple[int, int] | None:
    """Where the next record starts after damage at ``offset`` confined to the payload of
    a record the checkpoint covers (LSN <= ``after_lsn``), and that record's LSN; None
    otherwise. ``prev_lsn`` is the LSN of the record before the damage.

    Only a record whose header is intact (its CRC32C holds, the payload's does not) is
    stepped over: the header vouches for its LSN and length. When the header is lost
    too, the next record cannot be found with certainty: a payload may hold any bytes,
    valid records included (an embedding is raw float32 a client chose), and no rule
    over what follows tells a record made up inside a payload from a real one in every
    case (a review found a made-up record replayed under one such rule). That stays damage.
    """
    size = len(data)
    if size - offset < _core.HEADER_BYTES:
        return None
    head = bytes(data[offset : offset + _core.HEADER_BYTES - 4])
    if _core.crc32c(head) != int.from_bytes(data[offset + _core.HEADER_BYTES - 4 : offset + _core.HEADER_BYTES], "little"):
        return None
    magic, version, _, _, lsn, _, length, _ = HEADER_STRUCT.unpack(head)
    end = offset + _core.HEADER_BYTES + length
    if magic == RECORD_MAGIC and version == RECORD_VERSION and lsn == prev_lsn + 1 and lsn <= after_lsn and end <= size:
        return end, lsn
    return None  # the header holds: its record is newer, out of order or cut short


def _truncate(path: Path, offset: int) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(offset)
        handle.flush()
        os.fsync(handle.fileno())
