"""Recovery after a crash inside a checkpoint, and what damage it may and may not cost.

Proves: a process killed (SIGKILL) after a checkpoint's snapshot is durable but before
the WAL segments it covers are deleted leaves those segments behind; their records are
all inside the snapshot, so damage in them (a flipped byte) neither stops the space
from opening nor, with ``salvage=True``, costs the intact, acknowledged records
written after the checkpoint. How: a child process blocks its checkpoint just before
``drop_through``, stores more memories, prints each acknowledged id and is killed;
the parent flips a byte in the covered segment and reopens. Also: a checkpoint
killed after writing its snapshot under the temporary name, before the rename, leaves
no file that stays forever (each would hold the space's size on disk); and the
eviction count (stats, the engram_space_evicted metric) is the same after a reopen
that replays the log as after one that reads a checkpoint.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

import engram

from conftest import engram_env

CHILD = textwrap.dedent(
    """
    import sys, threading, time
    import numpy as np
    import engram
    from engram.storage.wal import WriteAheadLog

    def vec(i):
        return np.random.default_rng(i).standard_normal(768).astype(np.float32)

    snapshot_durable = threading.Event()

    def stuck_drop(self, lsn):
        snapshot_durable.set()
        time.sleep(60)  # killed here: the snapshot is written, the old segments remain

    WriteAheadLog.drop_through = stuck_drop
    db = engram.open(sys.argv[1])
    sp = db.space("agent-1", dedup_threshold=None)
    for i in range(10):
        sp.remember(f"memory {i}", embedding=vec(i), id=f"m{i}")
    threading.Thread(target=sp.checkpoint, daemon=True).start()
    assert snapshot_durable.wait(30)
    for i in range(10, 15):
        sp.remember(f"memory {i}", embedding=vec(i), id=f"m{i}")
        print(f"m{i}", flush=True)
    print("done", flush=True)
    time.sleep(60)
    """
)


def vec(i: int) -> np.ndarray:
    return np.random.default_rng(i).standard_normal(768).astype(np.float32)


def _crash_between_snapshot_and_drop(data: Path) -> list[str]:
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(data)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=engram_env())
    assert child.stdout is not None
    acknowledged = []
    for line in child.stdout:
        if line.strip() == "done":
            break
        acknowledged.append(line.strip())
    child.send_signal(signal.SIGKILL)
    _, err = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL, err
    return acknowledged


def test_damage_in_a_segment_the_checkpoint_covers_costs_no_acknowledged_write(tmp_path: Path) -> None:
    data = tmp_path / "data"
    acknowledged = _crash_between_snapshot_and_drop(data)
    assert acknowledged == [f"m{i}" for i in range(10, 15)]
    space = data / "agent-1"
    assert len(list(space.glob("checkpoint-*.snap"))) == 1
    covered, current = sorted((space / "wal").glob("*.wal"))  # the crash left the covered one
    raw = bytearray(covered.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # a bad sector in a file recovery does not need
    covered.write_bytes(bytes(raw))

    with engram.open(data) as db:
        sp = db.space("agent-1")
        assert len(sp) == 15
    for salvage in (False, True):
        with engram.open(data, salvage=salvage) as db:
            sp = db.space("agent-1")
            for i in range(15):
                m = sp.get(f"m{i}")
                assert m is not None, f"m{i} lost (salvage={salvage})"
                assert m.embedding.tobytes() == vec(i).tobytes()


CHILD_KILLED_BEFORE_RENAME = textwrap.dedent(
    """
    import os, sys, time
    import numpy as np
    import engram

    def stuck_replace(source, target):
        print("snapshot written", flush=True)
        time.sleep(60)  # killed here: the whole snapshot sits under its temporary name

    db = engram.open(sys.argv[1])
    sp = db.space("agent-1", dedup_threshold=None)
    for i in range(20):
        sp.remember(f"memory {i}", embedding=np.random.default_rng(i).standard_normal(768).astype(np.float32), id=f"m{i}")
    os.replace = stuck_replace
    sp.checkpoint()
    """
)


def test_a_checkpoint_killed_before_its_rename_leaves_no_file_behind_for_good(tmp_path: Path) -> None:
    data = tmp_path / "data"
    child = subprocess.Popen([sys.executable, "-c", CHILD_KILLED_BEFORE_RENAME, str(data)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=engram_env())
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "snapshot written"
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)
    space = data / "agent-1"
    assert len(list(space.glob("*.tmp"))) == 1 and not list(space.glob("*.snap"))
    with engram.open(data) as db:
        sp = db.space("agent-1")
        assert len(sp) == 20
        sp.remember("later", embedding=vec(100), id="later")
        sp.checkpoint()  # at another LSN: the crashed one's file would never be overwritten
    leftovers = sorted(p.name for p in space.rglob("*.tmp"))
    assert leftovers == [], f"a crashed checkpoint's file stays forever: {leftovers}"


def test_evictions_replayed_from_the_log_are_counted(tmp_path: Path) -> None:
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1", capacity=3, dedup_threshold=None)
        for i in range(5):
            sp.remember(f"memory {i}", embedding=vec(i), id=f"m{i}")
        before = sp.stats()["evicted"]
        assert before == 2
    with engram.open(tmp_path) as db:  # no checkpoint: the count comes from the log
        assert db.space("agent-1").stats()["evicted"] == before
