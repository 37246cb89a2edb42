"""Recovery edge cases: async writes after a torn one, damage the checkpoint covers.

Proves: in durability "async" a torn write followed by later writes that no completed
sync had reached is a torn tail (cut and reported), while a later write that knew the
damaged record durable still makes it corruption; damage confined to records at or
below the checkpoint's LSN, in a segment that also holds newer records, is stepped
over and reported when the header of the damaged record holds or a later segment
confirms where the records resume, and a record made up inside a payload is never
replayed. How: logs are written through the public API, then damaged byte by byte or
rebuilt from their records with the kernel codec (``_core``), and reopened.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import engram
from engram import _core
from engram.storage.wal import FLAG_LAG, FLAG_WRITE_START, LAG_SHIFT, WriteAheadLog


def vec(seed: int, d: int = 768) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(d).astype(np.float32)


def wal_dir(data: Path) -> Path:
    return data / "agent-1" / "wal"


def segments(data: Path) -> list[Path]:
    return sorted(wal_dir(data).glob("*.wal"))


def records_of(raw: bytes) -> list[tuple[int, bytes]]:
    """(offset, bytes) of every record in a segment, in order."""
    out = []
    offset = 0
    while offset < len(raw):
        end = _core.decode_record(raw, offset)[5]
        out.append((offset, raw[offset:end]))
        offset = end
    return out


def ids(data: Path, **options) -> list[str]:
    with engram.open(data, **options) as db:
        return sorted(m.id for m in db.space("agent-1").list(limit=1000))


def zero(raw: bytes, start: int, stop: int) -> bytes:
    return raw[:start] + bytes(stop - start) + raw[stop:]


# -- durability "async": damage no completed sync reached is a torn tail -----------------


ASYNC = {"durability": "async", "flush_interval_ms": 60_000}  # the flusher never runs in a test


def remember_three_then_batch(sp, first: str = "m") -> None:
    for i in range(3):
        sp.remember(f"memory {first}{i}", embedding=vec(i), id=f"{first}{i}")
    sp.remember_many([{"content": f"batch {i}", "embedding": vec(100 + i), "id": f"b{i}"} for i in range(8)])


def test_async_writes_mark_their_lag(tmp_path: Path) -> None:
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1", dedup_threshold=None, **ASYNC)
        remember_three_then_batch(sp)
    raw = segments(tmp_path)[-1].read_bytes()
    flags = [_core.decode_record(raw, offset)[1] for offset, _ in records_of(raw)]
    mark = FLAG_WRITE_START | FLAG_LAG
    # No sync completed while they were written: each lags by every record before it.
    assert flags == [mark, mark | 1 << LAG_SHIFT, mark | 2 << LAG_SHIFT, mark | 3 << LAG_SHIFT] + [0] * 7


def test_async_torn_write_followed_by_unsynced_writes_is_a_torn_tail(tmp_path: Path) -> None:
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1", dedup_threshold=None, **ASYNC)
        remember_three_then_batch(sp)
        sp.remember("later 0", embedding=vec(200), id="c0")  # later writes that reached the disk
        sp.remember("later 1", embedding=vec(201), id="c1")
    seg = segments(tmp_path)[-1]
    raw = seg.read_bytes()
    offsets = [offset for offset, _ in records_of(raw)]
    start = (-(-offsets[3] // 4096) + 1) * 4096  # a block inside the batch never reached the disk
    assert offsets[3] < start and start + 4096 < offsets[11]
    first_bad = max(i for i, offset in enumerate(offsets) if offset <= start)
    seg.write_bytes(zero(raw, start, start + 4096))
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1")
        kept = sorted(m.id for m in sp.list(limit=100))
        assert sp.stats()["torn_tail_bytes"] == len(raw) - offsets[first_bad]
    assert kept == sorted(["m0", "m1", "m2"] + [f"b{i}" for i in range(first_bad - 3)])
    assert seg.stat().st_size == offsets[first_bad]
    with engram.open(tmp_path) as db:  # the log takes new records and opens again
        db.space("agent-1").remember("after", embedding=vec(999), id="after")
    assert ids(tmp_path) == sorted(kept + ["after"])


def test_async_damage_a_later_write_knew_durable_is_corruption(tmp_path: Path) -> None:
    with engram.open(tmp_path) as db:
        remember_three_then_batch(db.space("agent-1", dedup_threshold=None, **ASYNC))
    with engram.open(tmp_path) as db:  # close synced everything; the write after reopening knows it
        db.space("agent-1").remember("later", embedding=vec(200), id="c0")
    seg = segments(tmp_path)[-1]
    raw = seg.read_bytes()
    offsets = [offset for offset, _ in records_of(raw)]
    damaged = zero(raw, offsets[5] + 50, offsets[5] + 60)
    seg.write_bytes(damaged)
    with pytest.raises(engram.CorruptionError) as info:
        ids(tmp_path)
    assert (info.value.path, info.value.offset) == (str(seg), offsets[5])
    assert seg.read_bytes() == damaged  # nothing cut


def test_async_damage_before_a_sync_the_flusher_completed_is_corruption(tmp_path: Path) -> None:
    def replay(**options) -> list[int]:
        wal = WriteAheadLog(tmp_path, durability="async", flush_interval_ms=60_000)
        try:
            records, _ = wal.recover(**options)
            return [record.lsn for record in records]
        finally:
            wal.close()

    assert replay() == []
    wal = WriteAheadLog(tmp_path, durability="async", flush_interval_ms=60_000)
    list(wal.recover()[0])
    for i in range(3):
        wal.append([(1, b"x" * 200)], i)
    wal.sync()  # what the flusher does every flush_interval_ms
    wal.append([(1, b"y" * 200)], 3)
    wal.append([(1, b"z" * 200)], 4)
    wal.close()
    seg = max(tmp_path.glob("*.wal"))
    raw = seg.read_bytes()
    offsets = [offset for offset, _ in records_of(raw)]
    assert _core.decode_record(raw, offsets[3])[1] == FLAG_WRITE_START | FLAG_LAG  # lag 0: all before it synced
    damaged = zero(raw, offsets[1] + 50, offsets[1] + 60)
    seg.write_bytes(damaged)
    with pytest.raises(engram.CorruptionError) as info:
        replay()
    assert (info.value.path, info.value.offset) == (str(seg), offsets[1])
    # Damage after that sync (record 4) is a torn tail: record 5 was written before any sync reached it.
    seg.write_bytes(zero(raw, offsets[3] + 50, offsets[3] + 60))
    assert replay() == [1, 2, 3]
    assert seg.stat().st_size == offsets[3]


# -- damage the checkpoint covers, in a segment that also holds newer records -------------


def logged_around_a_checkpoint(data: Path) -> list[bytes]:
    """m0..m4 (LSN 1-5), a checkpoint at LSN 5, then n0..n2 (LSN 6-8); returns the eight
    records and removes every segment, for the test to lay them out as it likes."""
    with engram.open(data) as db:
        sp = db.space("agent-1", dedup_threshold=None)
        for i in range(5):
            sp.remember(f"memory {i}", embedding=vec(i), id=f"m{i}")
        before = segments(data)[-1].read_bytes()
        assert sp.checkpoint() == 5
        for i in range(3):
            sp.remember(f"new {i}", embedding=vec(50 + i), id=f"n{i}")
    after = segments(data)[-1].read_bytes()
    records = [record for _, record in records_of(before) + records_of(after)]
    assert [_core.decode_record(r, 0)[2] for r in records] == list(range(1, 9))
    for seg in segments(data):
        seg.unlink()
    return records


def write_segment(data: Path, first_lsn: int, content: bytes) -> Path:
    path = wal_dir(data) / f"{first_lsn:020d}.wal"
    path.write_bytes(content)
    return path


EVERYONE = sorted([f"m{i}" for i in range(5)] + [f"n{i}" for i in range(3)])


def test_a_covered_record_whose_payload_is_damaged_is_stepped_over(tmp_path: Path) -> None:
    records = logged_around_a_checkpoint(tmp_path)
    # One segment holds records 1-8 (as after a salvage that appended to a covered segment).
    content = b"".join(records)
    at = len(records[0])  # record 2: its header holds, its payload does not
    seg = write_segment(tmp_path, 1, zero(content, at + 100, at + 110))
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1")
        assert sorted(m.id for m in sp.list(limit=100)) == EVERYONE
        assert sp.stats()["skipped_covered_bytes"] == len(records[1])
        assert sp.recovery.skipped == [(seg.name, at, len(records[1]))]
        assert sp.stats()["torn_tail_bytes"] == 0


def test_a_covered_record_whose_header_is_lost_stays_corruption_even_with_a_next_segment(tmp_path: Path) -> None:
    # Without its header the next record cannot be found with certainty (a record made up
    # inside a payload reads like a real one: tests/test_review_today_wal.py), so no resync.
    records = logged_around_a_checkpoint(tmp_path)
    at = len(records[0])
    seg = write_segment(tmp_path, 1, zero(b"".join(records[:7]), at, at + 36))  # record 2's header
    write_segment(tmp_path, 8, records[7])
    with pytest.raises(engram.CorruptionError) as info:
        ids(tmp_path)
    assert (info.value.path, info.value.offset) == (str(seg), at)


def test_a_covered_record_whose_header_is_lost_in_the_last_segment_stays_corruption(tmp_path: Path) -> None:
    # Nothing after the records found would refute them if they were made up inside a payload.
    records = logged_around_a_checkpoint(tmp_path)
    at = len(records[0])
    seg = write_segment(tmp_path, 1, zero(b"".join(records), at, at + 36))
    with pytest.raises(engram.CorruptionError) as info:
        ids(tmp_path)
    assert (info.value.path, info.value.offset) == (str(seg), at)


def test_a_damaged_newer_record_is_not_stepped_over(tmp_path: Path) -> None:
    records = logged_around_a_checkpoint(tmp_path)
    at = sum(len(r) for r in records[:5])  # record 6, after the checkpoint
    seg = write_segment(tmp_path, 1, zero(b"".join(records[:7]), at + 100, at + 110))
    write_segment(tmp_path, 8, records[7])
    with pytest.raises(engram.CorruptionError) as info:
        ids(tmp_path)
    assert (info.value.path, info.value.offset) == (str(seg), at)


def fake(record: bytes, lsn: int) -> bytes:
    rtype, flags, _, ts, payload, _ = _core.decode_record(record, 0)
    return _core.encode_record(rtype, flags, lsn, ts, payload)


@pytest.mark.parametrize("layout", ["records follow the host", "the host ends its segment"])
def test_a_record_made_up_inside_a_covered_payload_is_never_replayed(tmp_path: Path, layout: str) -> None:
    records = logged_around_a_checkpoint(tmp_path)
    # Record 5, the checkpoint's last, carries in its payload what reads as record 6 (the
    # space never decodes it: it is covered). Its header is lost, so a scan finds the fake first.
    made_up = _core.encode_record(1, FLAG_WRITE_START, 6, 0, b"\xc1 made up")
    rtype, flags, _, ts, payload, _ = _core.decode_record(records[4], 0)
    host = _core.encode_record(rtype, flags, 5, ts, payload + made_up)
    at = sum(len(r) for r in records[:4])
    if layout == "records follow the host":
        # The made-up record 6 is followed by the real one: LSNs break, the resync is refused.
        seg = write_segment(tmp_path, 1, zero(b"".join(records[:4]) + host + b"".join(records[5:7]), at, at + 36))
        write_segment(tmp_path, 8, records[7])
        with pytest.raises(engram.CorruptionError) as info:
            ids(tmp_path)
        assert (info.value.path, info.value.offset) == (str(seg), at)
    else:
        # The next segment starts at record 6: this one holds nothing newer and is not read.
        write_segment(tmp_path, 1, zero(b"".join(records[:4]) + host, at, at + 36))
        write_segment(tmp_path, 6, b"".join(records[5:]))
        assert ids(tmp_path) == EVERYONE  # the payload decoded as \xc1 would have failed


def test_sync_damage_in_a_write_whose_fsync_was_in_flight_when_the_next_began_is_a_torn_tail(tmp_path: Path) -> None:
    # Durability "sync": a forget or associate waits for its fsync outside the write lock,
    # so a store may append while that fsync is in flight. If the power fails then, the
    # later write's pages may reach the disk and the earlier one's not: nothing of either
    # was acknowledged, so that is a torn tail, not corruption (helper-28's review).
    def replay() -> list[int]:
        wal = WriteAheadLog(tmp_path, durability="sync")
        try:
            records, _ = wal.recover()
            return [record.lsn for record in records]
        finally:
            wal.close()

    assert replay() == []
    wal = WriteAheadLog(tmp_path, durability="sync")
    list(wal.recover()[0])
    wal.wait_durable(wal.append([(1, b"a" * 3000)] * 2, 0))  # records 1-2: acknowledged
    wal.append([(2, b"f" * 3000)], 1)  # record 3: its fsync still in flight...
    wal.append([(1, b"b" * 3000)] * 2, 2)  # ...when records 4-5 are appended
    wal.close()
    seg = max(tmp_path.glob("*.wal"))
    raw = seg.read_bytes()
    offsets = [offset for offset, _ in records_of(raw)]
    assert _core.decode_record(raw, offsets[2])[1] == FLAG_WRITE_START | FLAG_LAG  # lag 0
    assert _core.decode_record(raw, offsets[3])[1] == FLAG_WRITE_START | FLAG_LAG | 1 << LAG_SHIFT
    seg.write_bytes(zero(raw, offsets[2] + 50, offsets[2] + 60))
    assert replay() == [1, 2]  # cut at record 3: a torn tail
    assert seg.stat().st_size == offsets[2]
    # Damage to record 2, which record 3's write knew durable: corruption, as before.
    seg.write_bytes(zero(raw, offsets[1] + 50, offsets[1] + 60))
    with pytest.raises(engram.CorruptionError):
        replay()
