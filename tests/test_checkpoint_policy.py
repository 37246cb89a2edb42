"""When the space folds its log into a snapshot: at close when the log is long, on write
(in the background) once the log reaches the last snapshot's size (within a floor and
checkpoint_wal_bytes), with a reopened log's tail counted."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import engram
from engram.memory import space as space_mod
from engram.storage import snapshot


def _fill(sp, start: int, count: int) -> None:
    rng = np.random.default_rng(start)
    sp.remember_many([{"content": f"m{i}", "embedding": rng.standard_normal(768).astype(np.float32), "id": f"m{i:06d}"}
                      for i in range(start, start + count)])


def _wal_bytes(sp) -> int:
    return sp._wal.size_bytes()


def test_close_folds_a_long_log_and_reopen_replays_nothing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(space_mod, "CHECKPOINT_AT_CLOSE_MIN", 1_000_000)
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1", dedup_threshold=None)
        _fill(sp, 0, 600)  # about 2 MB of log, under the write-time floor of 32 MB
        assert snapshot.latest(sp.directory) is None
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1")
        assert snapshot.latest(sp.directory) is not None
        assert sp.recovery.records == 0 and len(sp) == 600
        assert sp.get("m000599") is not None


def test_a_short_log_is_left_at_close(tmp_path: Path) -> None:
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1", dedup_threshold=None)
        _fill(sp, 0, 50)
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1")
        assert snapshot.latest(sp.directory) is None and sp.recovery.records > 0 and len(sp) == 50


def test_the_log_may_grow_to_the_size_of_the_snapshot(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(space_mod, "CHECKPOINT_WAL_MIN", 100_000)
    monkeypatch.setattr(space_mod, "CHECKPOINT_AT_CLOSE_MIN", 10**12)
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1", dedup_threshold=None)
        _fill(sp, 0, 2000)
        sp.checkpoint()
        first = snapshot.latest(sp.directory)
        limit = first.stat().st_size
        written = sp._wal.bytes_written
        i = 2000
        while sp._wal.bytes_written - written < limit - 40_000:  # just under the limit: no checkpoint yet
            _fill(sp, i, 10)
            i += 10
        sp.wait_for_checkpoint()
        assert snapshot.latest(sp.directory) == first
        while snapshot.latest(sp.directory) == first and i < 5000:
            _fill(sp, i, 10)
            i += 10
            sp.wait_for_checkpoint()  # checkpoints run in the background
        assert snapshot.latest(sp.directory) != first
        assert sp._wal.bytes_written - written <= limit + 40_000


def test_a_reopened_tail_counts_towards_the_next_checkpoint(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(space_mod, "CHECKPOINT_WAL_MIN", 1_000_000)
    monkeypatch.setattr(space_mod, "CHECKPOINT_AT_CLOSE_MIN", 10**12)  # close leaves the log
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1", dedup_threshold=None)
        _fill(sp, 0, 250)  # under 1 MB
        assert snapshot.latest(sp.directory) is None
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1")
        tail = _wal_bytes(sp)
        assert 500_000 < tail < 1_000_000 and snapshot.latest(sp.directory) is None
        _fill(sp, 250, 150)  # the tail plus these pass 1 MB; these alone do not
        sp.wait_for_checkpoint()
        assert snapshot.latest(sp.directory) is not None
        assert len(sp) == 400


def test_batched_replay_builds_the_state_of_one_by_one_replay(tmp_path: Path, monkeypatch) -> None:
    rng = np.random.default_rng(5)
    with engram.open(tmp_path / "data") as db:
        sp = db.space("agent-1", dedup_threshold=0.95)
        base = rng.standard_normal((300, 768)).astype(np.float32)
        sp.remember_many([{"content": f"m{i}", "embedding": base[i], "id": f"m{i:03d}"} for i in range(300)])
        sp.remember("text only", id="t001")
        sp.remember("again", embedding=base[7] + 1e-4, confidence=0.99)  # a dedup replacement
        sp.remember("overwritten", embedding=base[9] * -1.0, id="m010")
        sp.forget("m020")
        sp.associate("m001", "m002", weight=0.8)
        sp.remember_many([{"content": f"late{i}", "embedding": base[i] * -0.5 + 1.0} for i in range(40)])
    states = []
    for batch in (1, space_mod.REPLAY_BATCH_RECORDS):
        monkeypatch.setattr(space_mod, "REPLAY_BATCH_RECORDS", batch)
        with engram.open(tmp_path / "data") as db:
            sp = db.space("agent-1")
            assert sp.recovery.records > 300
            n = sp._n
            states.append((
                n, list(sp._row_ids), sp._matrix[:n].tobytes(), sp._inv_norms[:n].tobytes(), sp._alive[:n].tobytes(),
                sp._codes[:n].tobytes(), sp._scales[:n].tobytes(), sp._lsh_keys[:n].tobytes(),
                sorted((m.id, m.content, m.confidence) for m in sp.list(limit=10_000)),
            ))
    assert states[0] == states[1]



def test_a_due_checkpoint_runs_in_the_background(tmp_path: Path, monkeypatch) -> None:
    """The writer that makes a checkpoint due does not write the snapshot itself."""
    import threading

    monkeypatch.setattr(space_mod, "CHECKPOINT_WAL_MIN", 200_000)
    monkeypatch.setattr(space_mod, "CHECKPOINT_AT_CLOSE_MIN", 10**12)
    writers: list[str] = []
    original = snapshot.write

    def spy(*args, **kwargs):
        writers.append(threading.current_thread().name)
        return original(*args, **kwargs)

    monkeypatch.setattr(snapshot, "write", spy)
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1", dedup_threshold=None)
        _fill(sp, 0, 100)  # about 340 kB: due
        sp.wait_for_checkpoint()
        assert writers and all(name.startswith("checkpoint:") for name in writers)
        assert len(sp) == 100
    with engram.open(tmp_path) as db:
        assert len(db.space("agent-1")) == 100


def test_close_folds_a_log_longer_than_an_eighth_of_the_snapshot(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(space_mod, "CHECKPOINT_AT_CLOSE_MIN", 10_000)
    monkeypatch.setattr(space_mod, "CHECKPOINT_WAL_MIN", 10**12)
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1", dedup_threshold=None)
        _fill(sp, 0, 800)
        sp.checkpoint()
        first = snapshot.latest(sp.directory)
        _fill(sp, 800, 150)  # a fifth of the snapshot: over an eighth (the write-time floor is out of reach)
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1")
        assert snapshot.latest(sp.directory) != first and sp.recovery.records == 0 and len(sp) == 950
