"""Checkpoints built outside the locks, batched replay, and older snapshots.

- A checkpoint taken while writers, recalls and touches run is exactly the state at
  its LSN: each snapshot equals the snapshot of a space that never checkpointed and
  replayed the same log up to that LSN, record by record.
- Opening (rows written in batches on a worker thread) builds the state that
  applying the log one record at a time builds, bit for bit.
- The snapshot's metadata is msgpack.packb of it, byte for byte; snapshots written
  before codes, stability, history and the current dedup scheme still load.
"""

from __future__ import annotations

import shutil
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import msgpack
import numpy as np
import pytest

import engram
from engram import _core
from engram.memory import records as rec
from engram.memory import space as space_mod
from engram.memory.space import Space
from engram.storage import snapshot
from engram.storage.wal import WriteAheadLog

D = 32
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def vec(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(D).astype(np.float32)


def replayed_one_by_one(sp: Space, scratch: Path, upto_lsn: int | None = None) -> Space:
    """A space that never checkpointed: ``sp``'s whole log (kept) applied record by record
    with _apply_record, up to ``upto_lsn``."""
    shutil.copytree(sp.directory / "wal", scratch / "wal")
    ref = Space("reference", scratch, sp.config, lambda: 0)
    records, _ = ref._wal.recover(0)
    for record in records:
        if upto_lsn is None or record.lsn <= upto_lsn:
            ref._apply_record(record.rtype, record.payload)
    return ref


def snapshot_of(sp: Space) -> tuple[dict, bytes]:
    """The metadata and embedding bytes a checkpoint of ``sp`` would write now."""
    with sp._write_lock, sp._lock:
        capture = sp._capture()
    meta, embeddings = sp._snapshot_state(capture)
    return msgpack.unpackb(snapshot.pack_meta(meta), raw=False, strict_map_key=False), embeddings.tobytes()


def test_checkpoints_taken_during_writes_and_recalls_are_the_state_at_their_lsn(tmp_path: Path, monkeypatch) -> None:
    # Keep every snapshot and every segment, to compare each snapshot with the log.
    monkeypatch.setattr(WriteAheadLog, "drop_through", lambda self, lsn: 0)
    monkeypatch.setattr(snapshot, "remove_older", lambda directory, keep: None)
    monkeypatch.setattr(space_mod, "CHECKPOINT_AT_CLOSE_MIN", 10**12)
    # Recalls between the capture and the reading of the items, every time, besides
    # the ones the reader thread makes whenever it gets to run.
    original = Space._snapshot_state

    def touched_meanwhile(self, capture):
        if self.id == "agent-1":  # not the reference spaces built below
            self.recall(embedding=vec(3), k=5)
        return original(self, capture)

    monkeypatch.setattr(Space, "_snapshot_state", touched_meanwhile)
    with engram.open(tmp_path / "data") as db:
        sp = db.space("agent-1", dimension=D, dedup_threshold=None)
        sp.remember_many([{"content": f"m{i}", "embedding": vec(i), "id": f"m{i:04d}"} for i in range(200)])
        done = threading.Event()
        errors: list[BaseException] = []

        def writer() -> None:
            try:
                for b in range(40):
                    sp.remember_many([{"content": f"w{b}-{j}", "embedding": vec(1000 + 10 * b + j)} for j in range(10)])
                    sp.remember(f"text {b}", id=f"t{b:03d}")
                    sp.forget(f"m{b * 3:04d}")
                    sp.associate(f"m{b * 3 + 1:04d}", f"m{b * 3 + 2:04d}", weight=0.5 + b / 100)
                    sp.remember(f"again {b}", embedding=vec(5000 + b), id=f"m{b * 3 + 1:04d}")  # overwrite
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                done.set()

        def reader() -> None:
            i = 0
            while not done.is_set():
                sp.recall(embedding=vec(i % 250), k=3)
                i += 1

        def checkpointer() -> None:
            while not done.is_set():
                sp.checkpoint()

        threads = [threading.Thread(target=fn) for fn in (writer, reader, checkpointer)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        sp.checkpoint()
        paths = sorted(sp.directory.glob("checkpoint-*.snap"))
        assert len(paths) >= 3
        for number, path in enumerate(paths):
            snap = snapshot.read(path)
            ref = replayed_one_by_one(sp, tmp_path / f"ref{number}", upto_lsn=snap.lsn)
            meta, embeddings = snapshot_of(ref)
            assert snap.meta == meta, path.name
            assert snap.embeddings.tobytes() == embeddings
    # And reopened from the last one (and the touch its recall left), it is the space.
    monkeypatch.undo()
    with engram.open(tmp_path / "data") as db:
        sp = db.space("agent-1")
        assert sp.recovery.records <= 1
        ref = replayed_one_by_one(sp, tmp_path / "ref-final")
        assert snapshot_of(sp) == snapshot_of(ref)


def state(sp: Space) -> tuple:
    """Everything replay builds, in row order."""
    n = sp._n
    items = sorted((rec.item_fields(it), it.row) for it in sp._items.values())
    keys = sp._lsh_keys[:n]
    candidates = sp._dedup.candidates_batch(keys) if n else (np.zeros(0), np.zeros(0))
    return (
        n, sp._dead, list(sp._row_ids), sp._matrix[:n].tobytes(), sp._inv_norms[:n].tobytes(), sp._alive[:n].tobytes(),
        sp._created[:n].tobytes(), sp._episodic[:n].tobytes(), keys.tobytes(), sp._codes[:n].tobytes(),
        sp._scales[:n].tobytes(), items, sp._graph.edges(), sorted(sp._history.items()),
        candidates[0].tobytes(), candidates[1].tobytes(),
    )


@pytest.mark.parametrize("batch", [1, 7, 1024])
def test_batched_replay_equals_applying_records_one_by_one(tmp_path: Path, monkeypatch, batch: int) -> None:
    monkeypatch.setattr(space_mod, "CHECKPOINT_AT_CLOSE_MIN", 10**12)
    monkeypatch.setattr(space_mod, "REPLAY_BATCH_RECORDS", batch)
    clock = Clock()
    with engram.open(tmp_path / "data", clock=clock) as db:
        sp = db.space("agent-1", dimension=D, dedup_threshold=0.95)
        sp.remember_many([{"content": f"m{i}", "embedding": vec(i), "id": f"m{i:03d}"} for i in range(60)])
        sp.remember_many([{"content": "once", "embedding": vec(100), "id": "dup"},
                          {"content": "twice", "embedding": vec(101), "id": "dup"},  # same id, same batch
                          {"content": "text only", "id": "text"}])
        sp.forget("m003")  # a row that is still in the batch being replayed
        sp.remember("near m007", embedding=vec(7) + 1e-4, confidence=0.99)  # dedup: replaces m007
        sp.remember_episode("met ana", when=T0 + timedelta(hours=1), where="lab", embedding=vec(200), importance=0.6)
        sp.associate("m001", "m002", weight=0.8)
        clock.now = T0 + timedelta(days=2)
        sp.recall(embedding=vec(10), k=3)  # touches, logged with the next write
        clock.now = T0 + timedelta(days=2, hours=3)
        sp.reconsolidate("m010", confidence=1.0, embedding=vec(300))
        sp.remember_many([{"content": f"late{i}", "embedding": vec(400 + i)} for i in range(30)])
        sp.forget("text")
    with engram.open(tmp_path / "data", clock=clock) as db:
        sp = db.space("agent-1")
        assert sp.recovery.records > 90
        ref = replayed_one_by_one(sp, tmp_path / "ref")
        assert state(sp) == state(ref)
        assert sp.history("m010") and sp.get("m003") is None and sp.get("dup").content == "twice"


@pytest.mark.parametrize("count", [5, 300, 3000])  # codes as bin 8, 16, 32
def test_snapshot_metadata_is_msgpack_of_it(tmp_path: Path, monkeypatch, count: int) -> None:
    monkeypatch.setattr(snapshot, "_CHUNK_BYTES", 1000)  # rows written in many chunks
    monkeypatch.setattr(space_mod, "SNAPSHOT_RUN_ITEMS", 64)  # items sorted in many runs, then merged
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1", dimension=D, dedup_threshold=None)
        # Stored out of id order (a permutation of m0000...), so that the runs need merging.
        sp.remember_many([{"content": f"m{i}", "embedding": vec(i), "id": f"m{i * 7919 % count:04d}", "tags": ["a", f"t{i}"],
                           "metadata": {"k": [i, {"x": 1.5}]}} for i in range(count)])
        sp.remember("text", id="text")
        sp.forget("m0001")
        for i in range(2, count - 1, 2):
            sp.associate(f"m{i:04d}", f"m{i + 1:04d}", weight=0.3)
        sp.checkpoint()
        path = snapshot.latest(sp.directory)
        expected = {m.id: m.embedding.tobytes() for m in sp.list(limit=10_000) if m.embedding is not None}
    raw = path.read_bytes()
    head = snapshot._HEAD.unpack(raw[: snapshot._HEAD.size])
    meta_bytes = raw[snapshot._HEAD_BYTES : snapshot._HEAD_BYTES + head[4]]
    meta = msgpack.unpackb(meta_bytes, raw=False, strict_map_key=False)
    assert meta_bytes == msgpack.packb(meta, use_bin_type=True)
    ids = [values[0] for values in meta["items"]]
    assert ids == sorted(expected) + ["text"] and meta["embedded"] == sorted(expected)
    snap = snapshot.read(path)
    assert {mid: snap.embeddings[i].tobytes() for i, mid in enumerate(meta["embedded"])} == expected
    assert meta["codes"] == _core.quantize_rows(np.ascontiguousarray(snap.embeddings))[0].tobytes()


def test_a_snapshot_of_an_older_version_still_loads(tmp_path: Path) -> None:
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1", dimension=D, dedup_threshold=0.95)
        sp.remember_many([{"content": f"m{i}", "embedding": vec(i), "id": f"m{i:03d}"} for i in range(40)])
        sp.remember("text only", id="text")
        sp.associate("m001", "m002", weight=0.8)
        sp.checkpoint()
        path = snapshot.latest(sp.directory)
        expected = {m.id: (m.content, m.confidence, None if m.embedding is None else m.embedding.tobytes())
                    for m in sp.list(limit=1000)}
    snap = snapshot.read(path)
    meta = dict(snap.meta)
    # What the first checkpoints held: no codes, no history or counters, items of 17
    # fields (no stability), dedup keys of the first key function.
    for key in ("codes", "scales", "history", "evicted", "deduplicated"):
        del meta[key]
    meta["dedup_scheme"] = 1
    meta["dedup_keys"] = bytes(len(meta["dedup_keys"]))
    meta["items"] = [values[:17] for values in meta["items"]]
    embeddings = snap.embeddings.copy()
    path.unlink()
    snapshot.write(path.parent, snap.lsn, meta, embeddings)
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1")
        got = {m.id: (m.content, m.confidence, None if m.embedding is None else m.embedding.tobytes())
               for m in sp.list(limit=1000)}
        assert got == expected
        assert sp.associations("m001") == {"m002": 0.8}
        n = sp._n
        codes, scales = _core.quantize_rows(sp._matrix[:n])
        assert sp._codes[:n].tobytes() == codes.tobytes() and sp._scales[:n].tobytes() == scales.tobytes()
        assert sp._lsh_keys[:n].tobytes() == sp._dedup.keys_for_codes(codes).tobytes()
        assert all(it.stability == 1.0 for it in sp._items.values())
        # The recomputed keys find duplicates: storing m005 again is a dedup hit.
        assert sp.remember("m005 again", embedding=vec(5), confidence=0.1) == "m005"


def test_a_copied_graph_and_the_graph_change_independently() -> None:
    from engram.memory.graph import AssociationGraph

    graph = AssociationGraph()
    for i in range(50):
        graph.associate(f"n{i:02d}", f"n{(i * 7 + 1) % 50:02d}", 0.5 + i / 100)
    copy = graph.copy()
    before = copy.edges()
    graph.associate("n01", "n02", 0.9)  # a shared neighbour dict, changed
    graph.remove_node("n03")  # shared dicts of its neighbours, changed
    graph.associate("new1", "new2", 0.3)
    assert copy.edges() == before
    after = graph.edges()
    assert ("n01", "n02", 0.9) in after and all("n03" not in edge[:2] for edge in after)
    copy.associate("n04", "n05", 0.1)
    copy.remove_node("n06")
    assert graph.edges() == after
    again = graph.copy()
    assert again.edges() == after and again.spread(["n01"], 2, 0.7) == graph.spread(["n01"], 2, 0.7)
