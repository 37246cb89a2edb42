"""Every acknowledged write of a mixed workload survives SIGKILL, across two spaces and
durability modes.

A widening of tests/test_crash.py. The child opens two spaces and runs several threads
that remember, remember_episode, remember_many, forget, associate and checkpoint (per
space and database-wide) at random, printing each acknowledgement (one line, after the
call returned) to stdout. The parent SIGKILLs it at a random moment, sometimes before it
has even finished opening (so recovery itself gets killed), then reopens the directory
and checks, after every trial:

- every required id is there, its content and embedding bit-identical;
- every required forget stays forgotten (the id is absent);
- every required association is there, with its weight, both ways;
- any id ever written that is present has its exact content and embedding (an
  unflushed async write may be lost, never mangled);
- reopening raises nothing.

Each trial picks the spaces' settings again: durability "sync" or "async", and for some a
small ``checkpoint_wal_bytes`` so background checkpoints race the kill. In sync mode a
write is required once acknowledged. In async mode an acknowledgement means "written to
the OS" only (the flusher fsyncs every flush_interval_ms), so a write is required only
once a checkpoint of its space (which syncs the log) or a database checkpoint began
after its acknowledgement and then completed; writes not so covered are "unknown" (they
may or may not survive, but if present must be whole). Ids are partitioned so that a
forgotten id is never associated (forget drops its associations); an id meant to be
forgotten whose forget was not acknowledged is required neither way (the kill may have
come between the forget and its line).

ENGRAM_STRESS_CRASH_TRIALS sets the count (default 20, about 25 s; CI runs the default),
ENGRAM_STRESS_CRASH_SEED the seed.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

import engram

TRIALS = int(os.environ.get("ENGRAM_STRESS_CRASH_TRIALS", "20"))
SPACES = ("mixed-a", "mixed-b")

CHILD = textwrap.dedent(
    """
    import hashlib, json, os, random, sys, threading, traceback
    from datetime import datetime, timezone
    import numpy as np
    import engram

    def vec(key):
        seed = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")
        return np.random.default_rng(seed).standard_normal(768).astype(np.float32)

    data, trial, settings = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    db = engram.open(data)
    spaces = {name: db.space(name, segment_bytes_max=64 * 1024, **cfg) for name, cfg in settings.items()}
    out_lock = threading.Lock()

    def say(*words):
        with out_lock:
            sys.stdout.write(" ".join(words) + "\\n")
            sys.stdout.flush()

    say("ready")
    WHEN = datetime(2026, 1, 5, 9, 30, tzinfo=timezone.utc)

    def worker(w):
        rng = random.Random(f"{trial}-{w}")
        names = list(spaces)
        kept = {name: [] for name in names}        # ids this thread may associate
        doomed = {name: [] for name in names}      # ids this thread will forget
        i = 0
        while True:
            name = rng.choice(names)
            sp = spaces[name]
            op = rng.random()
            i += 1
            base = f"x{trial}-w{w}-{i}"
            if op < 0.35:
                mid = base + ("-f" if rng.random() < 0.3 else "")
                assert sp.remember(f"content of {mid}", embedding=vec(mid), id=mid) == mid
                say("R", name, mid)
                (doomed if mid.endswith("-f") else kept)[name].append(mid)
            elif op < 0.5:
                mid = base + "-e"
                sp.remember_episode(f"content of {mid}", when=WHEN, where="lab", who=["ann"],
                                    embedding=vec(mid), id=mid, metadata={"trial": trial})
                say("R", name, mid)
                kept[name].append(mid)
            elif op < 0.62:
                n = rng.randint(2, 40)
                ids = [f"{base}-m{j}" for j in range(n)]
                assert sp.remember_many([{"content": f"content of {m}", "embedding": vec(m), "id": m} for m in ids]) == ids
                say("R", name, *ids)
                kept[name].extend(ids)
            elif op < 0.75:
                if doomed[name]:
                    mid = doomed[name].pop(rng.randrange(len(doomed[name])))
                    assert sp.forget(mid), mid
                    say("F", name, mid)
            elif op < 0.9:
                if len(kept[name]) >= 2:
                    a, b = rng.sample(kept[name], 2)
                    weight = rng.choice([0.25, 0.5, 0.75, 1.0])
                    sp.associate(a, b, weight)
                    say("A", name, a, b, str(weight))
            elif op < 0.97:
                say("CB", name, base)
                sp.checkpoint()
                say("C", name, base)
            else:
                say("CB", "*", base)
                db.checkpoint()
                say("C", "*", base)

    def guarded(w):
        try:
            worker(w)
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
            os._exit(3)  # the parent sees exit 3, not a SIGKILL, and shows this traceback

    threads = [threading.Thread(target=guarded, args=(w,), daemon=True) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    """
)


def vec(key: str) -> np.ndarray:
    # Seeded by a hash of the whole id: ids that share a tail get different vectors
    # (the same vector under two ids would be merged by dedup in "mixed-b").
    seed = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")
    return np.random.default_rng(seed).standard_normal(768).astype(np.float32)


class Expected:
    """What the parent knows must (or may) hold, per space."""

    def __init__(self) -> None:
        self.present: dict[str, set[str]] = {s: set() for s in SPACES}    # required present
        self.forgotten: dict[str, set[str]] = {s: set() for s in SPACES}  # required absent
        self.links: dict[str, dict[tuple[str, str], float]] = {s: {} for s in SPACES}
        self.written: dict[str, set[str]] = {s: set() for s in SPACES}    # ever acknowledged

    def absorb(self, lines: list[str], durability: dict[str, str]) -> None:
        # Async events not yet covered by a completed checkpoint, per space, with their line index.
        pending: dict[str, list[tuple[int, list[str]]]] = {s: [] for s in SPACES}
        begun: dict[str, int] = {}  # checkpoint token -> index of its "CB" line

        def apply(event: list[str]) -> None:
            kind, space = event[0], event[1]
            if kind == "R":
                for mid in event[2:]:
                    self.present[space].add(mid)
            elif kind == "F":
                self.present[space].discard(event[2])
                self.forgotten[space].add(event[2])
            elif kind == "A":
                a, b = sorted(event[2:4])
                self.links[space][(a, b)] = float(event[4])

        for index, line in enumerate(lines):
            event = line.split()
            kind = event[0]
            if kind == "CB":
                begun[event[2]] = index
            elif kind == "C":
                # This checkpoint synced the log of its space(s) as it began: whatever
                # was acknowledged before its "CB" line is on disk.
                mark = begun.pop(event[2])
                for s in (SPACES if event[1] == "*" else (event[1],)):
                    for _, ev in (x for x in pending[s] if x[0] < mark):
                        apply(ev)
                    pending[s] = [x for x in pending[s] if x[0] >= mark]
            else:
                space = event[1]
                if kind == "R":
                    self.written[space].update(event[2:])
                if durability[space] == "sync":
                    apply(event)
                else:
                    pending[space].append((index, event))
        # A doomed id ("-f") not acknowledged as forgotten may have been forgotten all
        # the same (killed after the forget, before its line): required neither way.
        # No later trial touches it; check() records what the reopen found.
        for index, line in enumerate(lines):
            event = line.split()
            if event[0] == "R":
                for mid in event[2:]:
                    if mid.endswith("-f") and mid not in self.forgotten[event[1]]:
                        self.present[event[1]].discard(mid)
        # Whatever stays pending may or may not have survived: required neither way.
        for space in SPACES:
            for _, ev in pending[space]:
                if ev[0] == "F":
                    self.present[space].discard(ev[2])
                    self.forgotten[space].discard(ev[2])
                elif ev[0] == "A":
                    self.links[space].pop(tuple(sorted(ev[2:4])), None)

    def check(self, data: Path, trial: int) -> None:
        with engram.open(data) as db:
            for name in SPACES:
                if name not in db.spaces():
                    assert not self.present[name] and not self.written[name], f"trial {trial}: space {name} lost"
                    continue
                sp = db.space(name)
                missing = sorted(mid for mid in self.present[name] if sp.get(mid) is None)
                assert missing == [], f"trial {trial}: {len(missing)} acknowledged writes lost in {name}, e.g. {missing[:3]}"
                back = sorted(mid for mid in self.forgotten[name] if sp.get(mid) is not None)
                assert back == [], f"trial {trial}: {len(back)} acknowledged forgets undone in {name}, e.g. {back[:3]}"
                for mid in self.written[name]:
                    m = sp.get(mid)
                    if m is None:
                        continue
                    assert m.content == f"content of {mid}", (trial, name, mid, m.content)
                    assert m.embedding.tobytes() == vec(mid).tobytes(), (trial, name, mid)
                for (a, b), weight in self.links[name].items():
                    assert sp.associations(a).get(b) == weight, (trial, name, a, b, weight, sp.associations(a))
                    assert sp.associations(b).get(a) == weight, (trial, name, b, a, weight, sp.associations(b))
                # What reopening found is now the state (close syncs it): an async write
                # that survived is required from here on, one that did not stays absent.
                for mid in self.written[name]:
                    if sp.get(mid) is not None:
                        self.present[name].add(mid)
                        self.forgotten[name].discard(mid)
                    else:
                        self.present[name].discard(mid)
                        self.forgotten[name].add(mid)
                self.links[name] = {
                    (a, b): w for a in self.present[name] for b, w in sp.associations(a).items() if a < b
                }


def settings_for(rng: random.Random) -> dict[str, dict[str, object]]:
    out = {}
    for name in SPACES:
        cfg: dict[str, object] = {"durability": rng.choice(["sync", "sync", "async"])}
        cfg["checkpoint_wal_bytes"] = rng.choice([64 * 1024, 512 * 1024 * 1024])
        cfg["dedup_threshold"] = None if name == "mixed-a" else 0.95
        out[name] = cfg
    return out


def test_mixed_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    data = tmp_path / "data"
    seed = int(os.environ.get("ENGRAM_STRESS_CRASH_SEED", "0")) or random.randrange(1 << 30)
    rng = random.Random(seed)
    expected = Expected()
    acknowledged = 0
    kinds: dict[str, int] = {}
    for trial in range(TRIALS):
        settings = settings_for(rng)
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(data), str(trial), json.dumps(settings)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert child.stdout is not None
        if rng.random() < 0.15:
            # Kill it while it may still be opening (replaying, truncating a torn tail,
            # writing space.json): recovery must itself survive a kill.
            time.sleep(rng.uniform(0.0, 0.6))
        else:
            line = child.stdout.readline().strip()
            assert line == "ready", f"seed {seed} trial {trial}: {line!r} " + child.stderr.read()
            time.sleep(rng.uniform(0.0, 0.3))
        child.send_signal(signal.SIGKILL)
        # Read through the same file object as the readline above: communicate() reads
        # the pipe itself and would miss lines readline() already buffered.
        out = child.stdout.read()
        err = child.stderr.read() if child.stderr is not None else ""
        child.wait(timeout=30)
        assert child.returncode == -signal.SIGKILL, f"seed {seed} trial {trial}: {err}"
        lines = out.splitlines()
        if out and not out.endswith("\n"):
            lines = lines[:-1]  # cut mid-write: only whole lines are acknowledgements
        lines = [line for line in lines if line != "ready"]
        acknowledged += len(lines)
        for line in lines:
            kinds[line.split()[0]] = kinds.get(line.split()[0], 0) + 1
        durability = {name: str(cfg["durability"]) for name, cfg in settings.items()}
        expected.absorb(lines, durability)
        try:
            expected.check(data, trial)
        except AssertionError as exc:
            raise AssertionError(f"seed {seed}, settings {settings}: {exc}") from exc
    print(f"seed {seed}: {TRIALS} trials, acknowledgements by kind {kinds}")
    assert acknowledged > TRIALS, f"seed {seed}: the children hardly wrote ({acknowledged} lines)"
    assert kinds.get("F", 0) and kinds.get("A", 0) and kinds.get("C", 0), f"seed {seed}: some operations never ran: {kinds}"
