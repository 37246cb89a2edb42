"""Durability mechanics: torn tails, corruption, salvage, checkpoints, rotation, the lock.

Each test writes through the public API, damages files the way a crash or a bad
disk would, reopens, and checks what survived and what was reported.
"""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import numpy as np
import pytest

import engram
from engram.storage.wal import WriteAheadLog


def vec(seed: int, d: int = 768) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(d).astype(np.float32)


def segments(data: Path, space: str = "agent-1") -> list[Path]:
    return sorted((data / space / "wal").glob("*.wal"))


def fill(data: Path, count: int, **config) -> list[str]:
    with engram.open(data) as db:
        sp = db.space("agent-1", **config)
        return [sp.remember(f"memory {i}", embedding=vec(i), id=f"m{i}") for i in range(count)]


def test_reopen_replays_everything(tmp_path: Path) -> None:
    ids = fill(tmp_path, 20)
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1")
        assert len(sp) == 20
        for i, mid in enumerate(ids):
            m = sp.get(mid)
            assert m.content == f"memory {i}"
            assert m.embedding.tobytes() == vec(i).tobytes()


def test_torn_tail_is_truncated_and_reported(tmp_path: Path) -> None:
    fill(tmp_path, 10)
    seg = segments(tmp_path)[-1]
    size = seg.stat().st_size
    with open(seg, "r+b") as f:
        f.truncate(size - 100)  # the last record loses its end
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1")
        assert len(sp) == 9
        assert sp.stats()["torn_tail_bytes"] > 0
        assert sp.get("m9") is None
        sp.remember("after", embedding=vec(99), id="after")
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1")
        assert len(sp) == 10 and sp.get("after") is not None


def test_garbage_tail_is_a_torn_tail(tmp_path: Path) -> None:
    fill(tmp_path, 5)
    with open(segments(tmp_path)[-1], "ab") as f:
        f.write(b"\x00" * 50 + b"garbage")
    with engram.open(tmp_path) as db:
        assert len(db.space("agent-1")) == 5


def test_corruption_inside_the_log_is_loud(tmp_path: Path) -> None:
    fill(tmp_path, 10)
    seg = segments(tmp_path)[-1]
    raw = bytearray(seg.read_bytes())
    raw[200] ^= 0xFF  # inside the first record's payload; valid records follow
    seg.write_bytes(bytes(raw))
    with pytest.raises(engram.CorruptionError) as info:
        with engram.open(tmp_path) as db:
            db.space("agent-1")
    assert str(seg) in str(info.value) and info.value.offset == 0
    assert "salvage=True" in str(info.value)
    # salvage keeps what is valid before the damage (nothing, here) and goes on.
    with engram.open(tmp_path, salvage=True) as db:
        sp = db.space("agent-1")
        assert len(sp) == 0
        sp.remember("fresh", embedding=vec(1), id="fresh")
    with engram.open(tmp_path) as db:
        assert db.space("agent-1").get("fresh") is not None


def test_salvage_keeps_the_prefix(tmp_path: Path) -> None:
    fill(tmp_path, 10)
    seg = segments(tmp_path)[-1]
    raw = bytearray(seg.read_bytes())
    record = len(raw) // 10
    raw[5 * record + 100] ^= 0x01
    seg.write_bytes(bytes(raw))
    with engram.open(tmp_path, salvage=True) as db:
        sp = db.space("agent-1")
        assert sorted(m.id for m in sp.list(limit=100)) == sorted(f"m{i}" for i in range(5))


def test_checkpoint_drops_old_segments_and_reopens(tmp_path: Path) -> None:
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1", segment_bytes_max=16 * 1024)
        for i in range(40):
            sp.remember(f"memory {i}", embedding=vec(i), id=f"m{i}")
        sp.associate("m1", "m2", 0.8)
        sp.forget("m3")
        assert len(segments(tmp_path)) > 3
        lsn = sp.checkpoint()
        assert lsn == sp.stats()["last_lsn"]
        assert len(segments(tmp_path)) == 1
        sp.remember("after checkpoint", embedding=vec(1000), id="late")
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1")
        assert len(sp) == 40
        assert sp.get("m3") is None and sp.get("late") is not None
        assert sp.associations("m1") == {"m2": 0.8}
        assert sp.get("m7").embedding.tobytes() == vec(7).tobytes()
        hits = sp.recall(embedding=vec(7), k=1)
        assert hits[0].id == "m7"


def test_corrupt_checkpoint_is_loud(tmp_path: Path) -> None:
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1")
        sp.remember("a", embedding=vec(1))
        sp.checkpoint()
    snap = next((tmp_path / "agent-1").glob("checkpoint-*.snap"))
    raw = bytearray(snap.read_bytes())
    raw[-5] ^= 0xFF
    snap.write_bytes(bytes(raw))
    with pytest.raises(engram.CorruptionError, match="checkpoint"):
        with engram.open(tmp_path) as db:
            db.space("agent-1")


def _hold_lock(path: str, ready, release) -> None:
    db = engram.open(path)
    ready.set()
    release.wait(10)
    db.close()


def test_second_process_gets_a_clear_lock_error(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_hold_lock, args=(str(tmp_path), ready, release))
    child.start()
    try:
        assert ready.wait(30)
        with pytest.raises(engram.SpaceLockedError, match=f"pid {child.pid}"):
            engram.open(tmp_path)
    finally:
        release.set()
        child.join(10)
    engram.open(tmp_path).close()  # released when the holder closed


def test_group_commit_shares_fsyncs(tmp_path: Path) -> None:
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1", dedup_threshold=None)
        barrier = threading.Barrier(16)

        def writer(w: int) -> None:
            barrier.wait()
            for i in range(20):
                sp.remember(f"w{w} {i}", embedding=vec(w * 100 + i))

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stats = sp.stats()
        assert len(sp) == 320
        assert stats["fsyncs"] < 320  # concurrent writers shared fsyncs


def test_async_durability_must_be_named_and_flushes(tmp_path: Path) -> None:
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1", durability="async", flush_interval_ms=5)
        for i in range(10):
            sp.remember(f"m{i}", embedding=vec(i))
        assert sp.stats()["durability"] == "async"
    with engram.open(tmp_path) as db:
        assert len(db.space("agent-1")) == 10
    with pytest.raises(engram.ValidationError, match="durability"):
        with engram.open(tmp_path / "x") as db:
            db.space("agent-2", durability="fast")


def test_wal_lsns_are_contiguous_across_rotation(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path, segment_bytes_max=4096)
    records, _ = wal.recover()
    list(records)
    for i in range(50):
        wal.wait_durable(wal.append([(1, b"x" * 200)], i))
    wal.close()
    wal = WriteAheadLog(tmp_path, segment_bytes_max=4096)
    records, report = wal.recover()
    lsns = [r.lsn for r in records]
    assert lsns == list(range(1, 51))
    assert report.last_lsn == 50 and len(wal.segments()) > 2
    wal.close()
