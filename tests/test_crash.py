"""An acknowledged write survives SIGKILL at any moment.

A child process writes memories from several threads (so group commit is in
play) and prints each id after ``remember`` returns, i.e. once acknowledged. The
parent kills it with SIGKILL at a random moment, reopens the same directory and
checks that every acknowledged id is there with its content and embedding intact.
Trials run on one directory, so recovery after recovery (torn tails included) is
exercised. ``ENGRAM_CRASH_TRIALS`` raises the count (default 50, as CI requires).
"""

from __future__ import annotations

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

TRIALS = int(os.environ.get("ENGRAM_CRASH_TRIALS", "50"))

CHILD = textwrap.dedent(
    """
    import sys, threading
    import numpy as np
    import engram

    def vec(key):
        seed = int.from_bytes(key.encode()[-8:].rjust(8, b"0"), "little")
        return np.random.default_rng(seed).standard_normal(768).astype(np.float32)

    db = engram.open(sys.argv[1])
    sp = db.space("crash-test", dedup_threshold=None, segment_bytes_max=256 * 1024)
    trial = sys.argv[2]
    lock = threading.Lock()
    print("ready", flush=True)

    def writer(w):
        i = 0
        while True:
            mid = f"t{trial}-w{w}-{i}"
            sp.remember(f"content of {mid}", embedding=vec(mid), id=mid)
            with lock:
                sys.stdout.write(mid + "\\n")
                sys.stdout.flush()
            i += 1
            if i % 50 == 0 and w == 0:
                sp.checkpoint()

    threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    """
)


def vec(key: str) -> np.ndarray:
    seed = int.from_bytes(key.encode()[-8:].rjust(8, b"0"), "little")
    return np.random.default_rng(seed).standard_normal(768).astype(np.float32)


def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    data = tmp_path / "data"
    rng = random.Random(int(os.environ.get("ENGRAM_CRASH_SEED", "0")) or None)
    acknowledged: list[str] = []
    for trial in range(TRIALS):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(data), str(trial)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
        time.sleep(rng.uniform(0.0, 0.25))
        child.send_signal(signal.SIGKILL)
        # Read through the same file object as the readline above: communicate() reads
        # the pipe itself and would miss lines readline() already buffered.
        out = child.stdout.read()
        err = child.stderr.read() if child.stderr is not None else ""
        child.wait(timeout=30)
        lines = out.splitlines()
        # The last line may be cut mid-write: only whole lines are acknowledgements.
        if out and not out.endswith("\n"):
            lines = lines[:-1]
        acknowledged.extend(lines)
        assert child.returncode == -signal.SIGKILL, err

    assert len(acknowledged) > TRIALS  # the children really wrote
    with engram.open(data) as db:
        sp = db.space("crash-test")
        missing = [mid for mid in acknowledged if sp.get(mid) is None]
        assert missing == [], f"{len(missing)} acknowledged writes lost, e.g. {missing[:3]}"
        for mid in acknowledged:
            m = sp.get(mid)
            assert m.content == f"content of {mid}"
            assert m.embedding.tobytes() == vec(mid).tobytes()
