"""The group-commit write path: batches decide exactly as one-by-one stores, acknowledged is durable.

- Equivalence: the same items stored by one ``remember_many`` call and by one
  ``remember``/``remember_episode`` call each, under a fixed clock and explicit
  ids, leave byte-identical WAL segments and identical state, including dedup
  inside the batch and against stored rows (both confidence outcomes), episodes
  (never deduplicated), an id stored twice in one batch, and eviction at capacity.
- Concurrency: many threads storing at once; every id a call returned is there
  after reopening, with its content, and the stored set equals the state before
  close; the WAL holds fewer fsyncs than stores (they were shared).
- Visibility: while a batch's fsync runs, its memories are not visible to readers;
  once the call returns they are.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

import engram

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def vec(seed: int, d: int = 768) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(d).astype(np.float32)


def near(v: np.ndarray, seed: int, amount: float = 0.02) -> np.ndarray:
    return (v + amount * vec(seed)).astype(np.float32)


def batch_items() -> list[dict]:
    base = [vec(i) for i in range(6)]
    return [
        {"content": "zero", "embedding": base[0], "id": "m00", "confidence": 0.5},
        {"content": "one", "embedding": base[1], "id": "m01", "confidence": 0.6},
        # A weaker near-duplicate of an item earlier in the same batch: answered with m00.
        {"content": "zero again, weaker", "embedding": near(base[0], 100), "id": "m02", "confidence": 0.4},
        # A stronger one: merged into m01 (its content under m01's id).
        {"content": "one again, stronger", "embedding": near(base[1], 101), "id": "m03", "confidence": 0.9},
        # Near-duplicates of stored rows (see stored_items), both outcomes.
        {"content": "stored dup, weaker", "embedding": near(base[4], 102), "id": "m04", "confidence": 0.1},
        {"content": "stored dup, stronger", "embedding": near(base[5], 103), "id": "m05", "confidence": 0.95},
        # Episodes never dedup, even on the same vector.
        {"what": "an event", "when": T0, "embedding": base[2], "id": "e06", "memory_type": "episodic", "importance": 0.5},
        {"what": "the same event", "when": T0, "embedding": base[2], "id": "e07", "memory_type": "episodic", "importance": 0.5},
        # One id twice in the batch: the second overwrites the first.
        {"content": "first version", "embedding": base[3], "id": "m08", "confidence": 0.5},
        {"content": "second version", "embedding": near(base[3], 104, 0.5), "id": "m08", "confidence": 0.7},
        # Text only.
        {"content": "no vector at all", "id": "m10", "confidence": 0.3},
        # A duplicate of the overwritten row's successor and of a merged memory's successor.
        {"content": "three again", "embedding": near(base[3], 104, 0.5), "id": "m11", "confidence": 0.6},
        {"content": "one thrice", "embedding": near(base[1], 105), "id": "m12", "confidence": 0.95},
    ]


def stored_items() -> list[dict]:
    return [
        {"content": "stored four", "embedding": vec(4), "id": "s04", "confidence": 0.5},
        {"content": "stored five", "embedding": vec(5), "id": "s05", "confidence": 0.5},
        {"content": "stored ep", "embedding": vec(2), "id": "s06", "confidence": 0.5},
    ]


def store_one(sp, item: dict) -> str:
    item = dict(item)
    if item.get("memory_type") == "episodic":
        del item["memory_type"]
        return sp.remember_episode(**item)
    return sp.remember(**item)


def state(sp) -> list[tuple]:
    out = []
    for m in sorted(sp.list(limit=10_000), key=lambda m: m.id):
        emb = sp.get(m.id).embedding
        out.append((m.id, m.content, m.confidence, None if emb is None else np.asarray(emb, np.float32).tobytes()))
    return out


def wal_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(path.glob("spaces/*/wal/*.wal")))


# 8: one fewer than the batch leaves unbounded (9), so the batch must evict.
@pytest.mark.parametrize("capacity", [None, 8])
def test_a_batch_stores_the_same_bits_as_one_by_one(tmp_path: Path, capacity) -> None:
    outcomes = {}
    for mode in ("batch", "single"):
        path = tmp_path / mode
        with engram.open(path, clock=lambda: T0) as db:
            sp = db.space("agent-1", capacity=capacity)
            for item in stored_items():
                store_one(sp, item)
            if mode == "batch":
                ids = sp.remember_many(batch_items())
            else:
                ids = [store_one(sp, item) for item in batch_items()]
            outcomes[mode] = (ids, state(sp), sp.stats()["deduplicated"], sp.stats()["evicted"])
        outcomes[mode] += (wal_bytes(path),)
        with engram.open(path, clock=lambda: T0) as db:
            assert state(db.space("agent-1")) == outcomes[mode][1]  # replay gives the same state
    batch, single = outcomes["batch"], outcomes["single"]
    assert batch[0] == single[0]
    assert batch[1] == single[1]
    assert batch[2:4] == single[2:4]
    assert batch[4] == single[4]  # the very same records, LSNs and timestamps
    ids = batch[0]
    # The decisions themselves (so that equality is not two equal mistakes).
    if capacity is None:
        assert ids[2] == "m00" and ids[3] == "m01" and ids[4] == "s04" and ids[5] == "s05"
        assert ids[6] == "e06" and ids[7] == "e07" and ids[11] == "m08" and ids[12] == "m01"
        stored = {row[0]: row[1] for row in batch[1]}
        assert {"m02", "m03", "m04", "m05", "m11", "m12"}.isdisjoint(stored)
        assert {"m00", "m01", "m08", "m10", "e06", "e07", "s04", "s05", "s06"} <= stored.keys()
        assert stored["m01"] == "one thrice" and stored["s05"] == "stored dup, stronger"
        assert batch[2] == 6  # m02, m03, m04, m05, m11, m12
    else:
        assert batch[3] > 0 and len(batch[1]) <= capacity


def test_concurrent_writers_every_acknowledged_id_survives_reopen(tmp_path: Path) -> None:
    writers, per_writer = 16, 40
    acknowledged: list[list[tuple[str, str]]] = [[] for _ in range(writers)]
    errors: list[BaseException] = []
    start = threading.Barrier(writers)
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1")

        def run(w: int) -> None:
            try:
                start.wait()
                for i in range(per_writer):
                    content = f"writer {w} memory {i}"
                    if i % 10 == 9:  # now and then a near-duplicate of this writer's previous memory
                        embedding = near(vec(1000 * w + i - 1), 7 * w + i)
                    else:
                        embedding = vec(1000 * w + i)
                    if i % 7 == 3:
                        ids = sp.remember_many([{"content": content, "embedding": embedding},
                                                {"content": content + " (text)"}])
                        acknowledged[w].append((ids[1], content + " (text)"))
                        memory_id = ids[0]
                    else:
                        # Duplicates are weaker than what they copy, so no acknowledged id is
                        # superseded by dedup (that would be a legitimate disappearance).
                        confidence = 0.3 if i % 10 == 9 else 0.5 + (i % 3) / 10
                        memory_id = sp.remember(content, embedding=embedding, confidence=confidence)
                    acknowledged[w].append((memory_id, content))
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(w,)) for w in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        before = state(sp)
        stats = sp.stats()
        stores = sum(len(a) for a in acknowledged)
        assert stats["fsyncs"] < stores  # writers shared fsyncs
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1")
        assert state(sp) == before
        for w in range(writers):
            for memory_id, content in acknowledged[w]:
                memory = sp.get(memory_id)
                assert memory is not None, memory_id
                if memory.content != content:
                    # A dedup hit answers with the stored original: this writer's previous memory.
                    assert content.endswith("9") and memory.content == f"writer {w} memory {int(content.split()[-1]) - 1}"


def test_a_write_is_invisible_until_durable_then_visible(tmp_path: Path) -> None:
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1")
        wal = sp._wal
        original = wal.wait_durable
        seen_during_sync: list[tuple[bool, int]] = []

        def checking_wait(lsn: int) -> None:
            # Another thread reads while the writer is inside its fsync.
            result: list[tuple[bool, int]] = []
            reader = threading.Thread(target=lambda: result.append(("m1" in sp, len(sp.recall(embedding=vec(1), k=5)))))
            reader.start()
            reader.join()
            seen_during_sync.extend(result)
            original(lsn)

        wal.wait_durable = checking_wait
        try:
            assert sp.remember("one", embedding=vec(1), id="m1") == "m1"
        finally:
            wal.wait_durable = original
        assert seen_during_sync == [(False, 0)]
        assert "m1" in sp and sp.recall(embedding=vec(1), k=1)[0].id == "m1"


def test_a_failed_fsync_fails_the_batch_shows_nothing_and_stops_the_space(tmp_path: Path) -> None:
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1")
        sp.remember("before", embedding=vec(1), id="m0")
        wal = sp._wal
        original = wal.wait_durable
        entered = threading.Event()
        release = threading.Event()

        def failing_wait(lsn: int) -> None:
            entered.set()
            release.wait(5)  # let a second writer queue behind this batch
            raise OSError(5, "simulated EIO from fdatasync")

        wal.wait_durable = failing_wait
        errors: list[BaseException] = []

        def second() -> None:
            try:
                sp.remember("second", embedding=vec(3), id="m2")
            except BaseException as exc:  # noqa: BLE001 - checked below
                errors.append(exc)

        follower = threading.Thread(target=second)
        try:
            with pytest.raises(OSError, match="simulated"):
                def first() -> None:
                    entered.wait(5)
                    follower.start()
                    time.sleep(0.2)
                    release.set()
                threading.Thread(target=first).start()
                sp.remember("first", embedding=vec(2), id="m1")
            follower.join(5)
        finally:
            wal.wait_durable = original
        assert "m1" not in sp and "m2" not in sp and "m0" in sp  # nothing of the failed batch is visible
        # The follower failed too: with the same error if it was in the batch, or refused after.
        assert len(errors) == 1 and isinstance(errors[0], (OSError, engram.EngramError))
        with pytest.raises(engram.EngramError, match="storage failure"):
            sp.remember("after", embedding=vec(4))
