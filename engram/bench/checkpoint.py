"""Checkpoint stalls and crash-recovery replay, each against a baseline of the same run.

    python -m engram.bench.checkpoint [--n 30000] [--seconds 4] [--replay 100000] [--json]

- stall: a space of n memories; a writer thread (remember_many of 100), a reader
  thread (recall top-10) and a probe thread (takes the space lock and the write lock
  every millisecond, timing how long it waited, GIL included) run for ``seconds``
  without checkpoints, then as long with a thread checkpointing in a loop; the
  checkpoint thread's holds of each lock are timed too. Prints P50/P95/P99/max.
- replay: a log of ``replay`` REMEMBER records and no snapshot (what a crash leaves
  when the last checkpoint is a whole log ago); reopening it, records/s. With
  ``--log-dir`` the log is kept, so that old and new code can replay the same one
  in turns (run each from its own checkout).
- crash: a space of ``replay`` memories filled with the default checkpoint policy,
  its writer SIGKILLed; reopening it (snapshot plus the log's tail).
Machines here are noisy: compare the phases (and old code with new, run alternately).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

import engram
from engram import _core
from engram.memory import space as space_mod


def percentiles(samples_s: list[float]) -> dict[str, float]:
    if not samples_s:
        return {"count": 0}
    array = np.array(samples_s) * 1e3
    return {
        "p50_ms": round(float(np.percentile(array, 50)), 3),
        "p95_ms": round(float(np.percentile(array, 95)), 3),
        "p99_ms": round(float(np.percentile(array, 99)), 3),
        "max_ms": round(float(array.max()), 3),
        "count": int(array.size),
    }


def _fill(sp: Any, vectors: np.ndarray, start: int, stop: int, batch: int = 1000) -> None:
    for first in range(start, stop, batch):
        sp.remember_many([{"content": f"memory {i} about topic {i % 97}", "embedding": vectors[i], "tags": ("bench",)}
                          for i in range(first, min(stop, first + batch))])


class _TimedLock:
    """A lock that records how long the checkpoint thread holds it (outermost holds)."""

    def __init__(self, lock: Any, holds: list[float]) -> None:
        self._inner = lock
        self._holds = holds
        self._depth = threading.local()

    def __enter__(self) -> "_TimedLock":
        self._inner.acquire()
        depth = getattr(self._depth, "n", 0)
        self._depth.n = depth + 1
        if depth == 0:
            self._depth.start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._depth.n -= 1
        if self._depth.n == 0 and threading.current_thread().name == "checkpointer":
            self._holds.append(time.perf_counter() - self._depth.start)
        self._inner.release()


def _phase(sp: Any, vectors: np.ndarray, cursor: list[int], seconds: float, checkpoints: bool) -> dict[str, Any]:
    stop = threading.Event()
    holds: list[float] = []
    write_holds: list[float] = []
    sp._lock, sp._write_lock = _TimedLock(sp._lock, holds), _TimedLock(sp._write_lock, write_holds)
    writes: list[float] = []
    reads: list[float] = []
    probe_lock: list[float] = []
    probe_write_lock: list[float] = []
    made = [0]

    def writer() -> None:
        while not stop.is_set():
            start = cursor[0]
            cursor[0] += 100
            began = time.perf_counter()
            _fill(sp, vectors, start, start + 100)
            writes.append(time.perf_counter() - began)

    def reader() -> None:
        rng = np.random.default_rng(5)
        while not stop.is_set():
            q = vectors[int(rng.integers(0, cursor[0]))]
            began = time.perf_counter()
            sp.recall(embedding=q, k=10)
            reads.append(time.perf_counter() - began)

    def probe() -> None:
        while not stop.is_set():
            began = time.perf_counter()
            with sp._lock:
                pass
            probe_lock.append(time.perf_counter() - began)
            began = time.perf_counter()
            with sp._write_lock:
                pass
            probe_write_lock.append(time.perf_counter() - began)
            time.sleep(0.001)

    def checkpointer() -> None:
        while not stop.is_set():
            sp.checkpoint()
            made[0] += 1

    threads = [threading.Thread(target=fn) for fn in (writer, reader, probe)]
    if checkpoints:
        threads.append(threading.Thread(target=checkpointer, name="checkpointer"))
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    sp._lock, sp._write_lock = sp._lock._inner, sp._write_lock._inner
    return {"checkpoints": made[0], "write_100": percentiles(writes), "recall": percentiles(reads),
            "lock_wait": percentiles(probe_lock), "write_lock_wait": percentiles(probe_write_lock),
            "checkpoint_lock_hold": percentiles(holds), "checkpoint_write_lock_hold": percentiles(write_holds)}


def bench_stall(directory: Path, n: int, seconds: float) -> dict[str, Any]:
    vectors = np.random.default_rng(1).standard_normal((n + 200_000, 768), dtype=np.float32)
    with engram.open(directory / "stall") as db:
        # async: a writer's latency is CPU and lock waits, not the disk's fsync.
        sp = db.space("bench", durability="async")
        _fill(sp, vectors, 0, n)
        sp.checkpoint()
        cursor = [n]
        quiet = _phase(sp, vectors, cursor, seconds, checkpoints=False)
        busy = _phase(sp, vectors, cursor, seconds, checkpoints=True)
        rows = len(sp)
    return {"n_start": n, "n_end": rows, "no_checkpoint": quiet, "checkpointing": busy}


def _timed_reopens(path: Path, repeat: int) -> tuple[list[float], list[float], int, int]:
    """Open the space at ``path`` ``repeat`` times: wall and CPU seconds of each open, the
    records the last one replayed and the memories it holds."""
    times: list[float] = []
    cpu: list[float] = []
    replayed = count = 0
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        with engram.open(path) as db:
            sp = db.space("bench")
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
            replayed = sp.recovery.records
            count = len(sp)
    return times, cpu, replayed, count


def bench_replay(path: Path, records: int, repeat: int = 1) -> dict[str, Any]:
    """Reopen a space whose whole state is in its log ``repeat`` times (built at ``path``
    first unless it is there: another version of the code can replay the same log)."""
    saved = space_mod.CHECKPOINT_WAL_MIN, space_mod.CHECKPOINT_AT_CLOSE_MIN
    space_mod.CHECKPOINT_WAL_MIN = space_mod.CHECKPOINT_AT_CLOSE_MIN = 10**15  # leave the whole log
    try:
        if not (path / "bench").exists():
            vectors = np.random.default_rng(3).standard_normal((records, 768), dtype=np.float32)
            with engram.open(path) as db:
                sp = db.space("bench", durability="async", checkpoint_wal_bytes=10**15)
                _fill(sp, vectors, 0, records)
        times, cpu, replayed, count = _timed_reopens(path, repeat)
    finally:
        space_mod.CHECKPOINT_WAL_MIN, space_mod.CHECKPOINT_AT_CLOSE_MIN = saved
    assert count == replayed, (count, replayed)
    best = min(times)
    # CPU seconds (all threads): less at the mercy of other processes than the wall clock.
    return {"records": replayed, "reopen_s": [round(t, 3) for t in times], "cpu_s": [round(t, 3) for t in cpu],
            "records_per_s_best": round(replayed / best)}


def _fill_and_die(path: str, records: int) -> None:
    """Child of bench_crash: fill a space with the default checkpoint policy, then SIGKILL itself."""
    import signal

    vectors = np.random.default_rng(4).standard_normal((records, 768), dtype=np.float32)
    db = engram.open(path)
    sp = db.space("bench", durability="async")
    _fill(sp, vectors, 0, records)
    sp.wait_for_checkpoint()
    sp._wal.sync()
    os.kill(os.getpid(), signal.SIGKILL)


def bench_crash(path: Path, records: int, repeat: int = 1) -> dict[str, Any]:
    """Reopen a space of ``records`` memories whose writer was SIGKILLed (the default
    checkpoint policy decided what is in its snapshot and what is left in its log)."""
    import subprocess
    import sys

    if not (path / "bench").exists():
        subprocess.run([sys.executable, "-c", f"from engram.bench.checkpoint import _fill_and_die; _fill_and_die({str(path)!r}, {records})"],
                       check=False)
    saved = space_mod.CHECKPOINT_AT_CLOSE_MIN
    space_mod.CHECKPOINT_AT_CLOSE_MIN = 10**15  # leave the directory as the crash left it
    try:
        times, cpu, replayed, count = _timed_reopens(path, repeat)
    finally:
        space_mod.CHECKPOINT_AT_CLOSE_MIN = saved
    assert count == records, count
    return {"memories": count, "replayed": replayed, "reopen_s": [round(t, 3) for t in times],
            "cpu_s": [round(t, 3) for t in cpu]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=30_000, help="memories before the stall phases")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each stall phase")
    parser.add_argument("--replay", type=int, default=100_000, help="records in the log to replay")
    parser.add_argument("--repeat", type=int, default=1, help="reopens to time")
    parser.add_argument("--log-dir", type=Path, help="replay the log kept here (built first if absent)")
    parser.add_argument("--crash-dir", type=Path, help="reopen the SIGKILLed space kept here (built first if absent)")
    parser.add_argument("--only", choices=["stall", "replay", "crash"], action="append")
    parser.add_argument("--json", action="store_true", help="one line of JSON")
    args = parser.parse_args(argv)
    chosen = set(args.only or ["stall", "replay", "crash"])
    results: dict[str, Any] = {"impl": _core.IMPL, "load": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(dir=os.environ.get("ENGRAM_BENCH_DIR")) as tmp:
        if "stall" in chosen:
            results["stall"] = bench_stall(Path(tmp), args.n, args.seconds)
        if "replay" in chosen:
            results["replay"] = bench_replay(args.log_dir or Path(tmp) / "replay", args.replay, args.repeat)
        if "crash" in chosen:
            results["crash"] = bench_crash(args.crash_dir or Path(tmp) / "crash", args.replay, args.repeat)
    print(json.dumps(results) if args.json else json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
