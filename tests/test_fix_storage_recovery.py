"""Recovery of damaged logs: what is corruption, what salvage keeps, what a torn tail is.

Proves: a record whose checksums hold but whose payload does not decode is a
CorruptionError naming its segment and offset, and ``salvage=True`` keeps every record
before it and opens; a hole in the LSN sequence (a segment lost in the middle, a
record out of order) is corruption too, never replayed, and salvage keeps what is
before it; damage inside the final write of the log (a batch torn by power loss,
valid records of the same write after the hole) is a torn tail, while damage followed
by a later write is corruption, so a torn-tail cut never reaches an acknowledged
write. How: segments are written through the public API, then crafted with the
kernel codec (``_core.encode_record``) or damaged byte by byte, and reopened.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import engram
from engram import _core
from engram.memory import records as rec


def vec(seed: int, d: int = 768) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(d).astype(np.float32)


def segments(data: Path) -> list[Path]:
    return sorted((data / "agent-1" / "wal").glob("*.wal"))


def fill(data: Path, count: int, **config) -> None:
    with engram.open(data) as db:
        sp = db.space("agent-1", dedup_threshold=None, **config)
        for i in range(count):
            sp.remember(f"memory {i}", embedding=vec(i), id=f"m{i}")


def record_offsets(raw: bytes) -> list[int]:
    """The offset of every record in a segment, in order."""
    offsets = []
    offset = 0
    while offset < len(raw):
        offsets.append(offset)
        offset = _core.decode_record(raw, offset)[5]
    return offsets


def with_lsn(raw: bytes, offset: int, lsn: int) -> bytes:
    """The record at ``offset`` encoded again under another LSN (a valid record)."""
    rtype, flags, _, ts, payload, _ = _core.decode_record(raw, offset)
    return _core.encode_record(rtype, flags, lsn, ts, payload)


def ids(data: Path, **options) -> list[str]:
    with engram.open(data, **options) as db:
        return sorted(m.id for m in db.space("agent-1").list(limit=1000))


def assert_reopens_and_appends(data: Path, expected: list[str]) -> None:
    """After salvage the log takes new records and opens again without salvage."""
    with engram.open(data) as db:
        db.space("agent-1").remember("after", embedding=vec(999), id="after")
    assert ids(data) == sorted(expected + ["after"])


def test_a_payload_that_does_not_decode_is_salvaged_before_it(tmp_path: Path) -> None:
    fill(tmp_path, 5)
    seg = segments(tmp_path)[-1]
    raw = seg.read_bytes()
    bad_offset = len(raw)
    # Checksums hold, the payload is not msgpack (0xc1 is never used), a valid record follows.
    bad = _core.encode_record(rec.REMEMBER, 0, 6, 0, b"\xc1")
    seg.write_bytes(raw + bad + with_lsn(raw, record_offsets(raw)[-1], 7))
    with pytest.raises(engram.CorruptionError) as info:
        ids(tmp_path)
    assert info.value.path == str(seg)
    assert info.value.offset == bad_offset
    assert "record 6" in info.value.reason and "salvage=True" in str(info.value)
    assert ids(tmp_path, salvage=True) == [f"m{i}" for i in range(5)]
    assert_reopens_and_appends(tmp_path, [f"m{i}" for i in range(5)])


def test_a_payload_that_does_not_decode_in_the_first_record_of_a_segment(tmp_path: Path) -> None:
    fill(tmp_path, 3)
    wal = tmp_path / "agent-1" / "wal"
    later = wal / f"{4:020d}.wal"
    later.write_bytes(_core.encode_record(rec.REMEMBER, 0, 4, 0, b"\xc1"))
    with pytest.raises(engram.CorruptionError) as info:
        ids(tmp_path)
    assert (info.value.path, info.value.offset) == (str(later), 0)
    assert ids(tmp_path, salvage=True) == ["m0", "m1", "m2"]
    assert (wal / f"{4:020d}.corrupt").exists()  # set aside, not emptied under a name that lies
    assert_reopens_and_appends(tmp_path, ["m0", "m1", "m2"])


def test_a_segment_missing_in_the_middle_is_corruption(tmp_path: Path) -> None:
    fill(tmp_path, 20, segment_bytes_max=16 * 1024)
    segs = segments(tmp_path)
    assert len(segs) >= 4
    segs[1].unlink()
    kept = [f"m{i}" for i in range(len(record_offsets(segs[0].read_bytes())))]
    with pytest.raises(engram.CorruptionError) as info:
        ids(tmp_path)
    assert (info.value.path, info.value.offset) == (str(segs[2]), 0)
    assert "missing or out of order" in info.value.reason
    assert ids(tmp_path, salvage=True) == sorted(kept)
    assert_reopens_and_appends(tmp_path, kept)


def test_an_lsn_that_jumps_ahead_is_corruption(tmp_path: Path) -> None:
    fill(tmp_path, 5)
    seg = segments(tmp_path)[-1]
    raw = seg.read_bytes()
    offsets = record_offsets(raw)
    # Record 4 is lost; record 5 follows record 3 directly.
    seg.write_bytes(raw[: offsets[3]] + raw[offsets[4] :])
    with pytest.raises(engram.CorruptionError) as info:
        ids(tmp_path)
    assert (info.value.path, info.value.offset) == (str(seg), offsets[3])
    assert ids(tmp_path, salvage=True) == ["m0", "m1", "m2"]
    assert_reopens_and_appends(tmp_path, ["m0", "m1", "m2"])


def test_an_lsn_that_goes_backwards_is_salvageable_corruption(tmp_path: Path) -> None:
    fill(tmp_path, 5)
    seg = segments(tmp_path)[-1]
    raw = seg.read_bytes()
    offsets = record_offsets(raw)
    seg.write_bytes(raw + with_lsn(raw, offsets[0], 2) + with_lsn(raw, offsets[1], 6))
    with pytest.raises(engram.CorruptionError) as info:
        ids(tmp_path)
    assert (info.value.path, info.value.offset) == (str(seg), len(raw))
    assert ids(tmp_path, salvage=True) == [f"m{i}" for i in range(5)]
    assert_reopens_and_appends(tmp_path, [f"m{i}" for i in range(5)])


# -- damage in the final write: a torn tail, not corruption ---------------------------


def fill_then_batch(data: Path, **config) -> None:
    """m0..m2 written one by one (each fsync'd: acknowledged), then b0..b7 in one write."""
    with engram.open(data) as db:
        sp = db.space("agent-1", dedup_threshold=None, **config)
        for i in range(3):
            sp.remember(f"memory {i}", embedding=vec(i), id=f"m{i}")
        sp.remember_many([{"content": f"batch {i}", "embedding": vec(100 + i), "id": f"b{i}"} for i in range(8)])


def flags_of(raw: bytes) -> list[int]:
    return [_core.decode_record(raw, offset)[1] for offset in record_offsets(raw)]


def zero(raw: bytes, start: int, stop: int) -> bytes:
    """A hole of zeros, as pages that never reached the disk read back."""
    return raw[:start] + bytes(stop - start) + raw[stop:]


def test_each_write_marks_its_first_record(tmp_path: Path) -> None:
    from engram.storage.wal import FLAG_LAG, FLAG_WRITE_START

    fill_then_batch(tmp_path)
    # Each durable write waited for its fsync before the next began: lag 0 every time.
    assert flags_of(segments(tmp_path)[-1].read_bytes()) == [FLAG_WRITE_START | FLAG_LAG] * 4 + [0] * 7


@pytest.mark.parametrize("lost", ["block 0", "block 1", "block 2", "first record"])
def test_a_hole_inside_the_final_write_is_a_torn_tail(tmp_path: Path, lost: str) -> None:
    fill_then_batch(tmp_path)
    seg = segments(tmp_path)[-1]
    raw = seg.read_bytes()
    offsets = record_offsets(raw)
    if lost == "first record":  # the record that marks the write's start
        start, stop = offsets[3], offsets[4]
    else:
        # A 4 KiB block the batch alone filled (it began after the last fsync'd byte)
        # never reached the disk; the batch's later blocks did.
        start = (-(-offsets[3] // 4096) + int(lost[-1])) * 4096
        stop = start + 4096
    assert offsets[3] <= start and stop < offsets[-1]
    first_bad = max(i for i, offset in enumerate(offsets) if offset <= start)
    seg.write_bytes(zero(raw, start, stop))
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1")
        kept = sorted(m.id for m in sp.list(limit=100))
        assert sp.stats()["torn_tail_bytes"] == len(raw) - offsets[first_bad]
    assert kept == sorted(["m0", "m1", "m2"] + [f"b{i}" for i in range(first_bad - 3)])
    assert seg.stat().st_size == offsets[first_bad]
    assert_reopens_and_appends(tmp_path, kept)


def test_a_hole_in_an_earlier_write_is_corruption(tmp_path: Path) -> None:
    fill_then_batch(tmp_path)
    seg = segments(tmp_path)[-1]
    raw = seg.read_bytes()
    offsets = record_offsets(raw)
    seg.write_bytes(zero(raw, offsets[1] + 50, offsets[1] + 60))  # m1, acknowledged, then later writes
    with pytest.raises(engram.CorruptionError) as info:
        ids(tmp_path)
    assert (info.value.path, info.value.offset) == (str(seg), offsets[1])
    assert seg.read_bytes() == zero(raw, offsets[1] + 50, offsets[1] + 60)  # nothing cut


def test_a_hole_in_an_unmarked_log_followed_by_records_is_corruption(tmp_path: Path) -> None:
    # A log written before writes were marked: no mark proves the records after the
    # hole belong to the damaged write, so they may be later, acknowledged writes.
    fill_then_batch(tmp_path)
    seg = segments(tmp_path)[-1]
    raw = seg.read_bytes()
    offsets = record_offsets(raw)
    unmarked = b"".join(
        _core.encode_record(rtype, 0, lsn, ts, payload)
        for rtype, _, lsn, ts, payload, _ in (_core.decode_record(raw, offset) for offset in offsets)
    )
    assert len(unmarked) == len(raw)
    seg.write_bytes(zero(unmarked, offsets[4] + 50, offsets[4] + 60))
    with pytest.raises(engram.CorruptionError) as info:
        ids(tmp_path)
    assert (info.value.path, info.value.offset) == (str(seg), offsets[4])


def test_a_hole_in_a_final_write_that_began_a_segment_is_a_torn_tail(tmp_path: Path) -> None:
    fill_then_batch(tmp_path, segment_bytes_max=16 * 1024)
    segs = segments(tmp_path)
    assert len(segs) == 2  # the batch did not fit: it began a new segment
    raw = segs[-1].read_bytes()
    segs[-1].write_bytes(zero(raw, 0, 4096))  # its first record is the damage
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1")
        assert sp.stats()["torn_tail_bytes"] == len(raw)
        assert sorted(m.id for m in sp.list(limit=100)) == ["m0", "m1", "m2"]
    assert_reopens_and_appends(tmp_path, ["m0", "m1", "m2"])


@pytest.mark.parametrize("cut", [1, 36, 1000, 5000])
def test_a_final_write_cut_short_keeps_its_whole_records(tmp_path: Path, cut: int) -> None:
    fill_then_batch(tmp_path)
    seg = segments(tmp_path)[-1]
    raw = seg.read_bytes()
    seg.write_bytes(raw[:-cut])
    whole = [offset for offset in record_offsets(raw)[3:] if offset < len(raw) - cut]
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1")
        assert sp.stats()["torn_tail_bytes"] == len(raw) - cut - whole[-1]
        kept = sorted(m.id for m in sp.list(limit=100))
    assert kept == sorted(["m0", "m1", "m2"] + [f"b{i}" for i in range(len(whole) - 1)])
