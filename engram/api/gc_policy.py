"""Keep CPython's cyclic garbage collector off the engine's heap while serving.

An open space holds ~25 long-lived Python objects per memory (items, ids, tags, index
entries). CPython's full (generation 2) collection walks every tracked object, holding
the GIL: with 10k memories a walk took 55-75 ms (several per 20 s of mixed load, while
the heap grows), ~10x that at 100k; every request in flight waits, which is where
the mixed load's P99 came from. Those objects are not garbage; walking them finds
nothing (the logged full collections freed 0 objects).

So ``serve_gc_policy``:
- at start, collects once and ``gc.freeze()``s what the opened database holds (frozen
  objects sit in a permanent generation that collections skip);
- every ``freeze_interval_s``, freezes again, so memories stored since then leave
  the collected generations too and a full collection only walks what is recent;
- every ``full_interval_s``, unfreezes, collects everything (one long pause, counted)
  and freezes again: cyclic garbage that a freeze caught (a request's reference cycle
  that was alive at that moment) is reclaimed then, so nothing leaks for longer.
Reference counting is unaffected: frozen objects that are no longer referenced are
freed at once, as always; only garbage in reference cycles waits for the next full run.

It must not run in an embedded process (``engram.open``): it changes process-wide
interpreter state, which only ``engram serve`` owns.
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any, Callable

import trio

__all__ = ["serve_gc_policy", "GcPauseRecorder", "FREEZE_INTERVAL_S", "FULL_INTERVAL_S"]

log = logging.getLogger("engram.gc")

FREEZE_INTERVAL_S = 10.0  # how stale the collected generations may get
FULL_INTERVAL_S = 1800.0  # how long cyclic garbage caught by a freeze may wait


class GcPauseRecorder:
    """A gc callback that times each collection and hands (generation, seconds) on."""

    def __init__(self, observe: Callable[[int, float], None]) -> None:
        self._observe = observe
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        elif self._start:
            self._observe(int(info.get("generation", 0)), time.perf_counter() - self._start)
            self._start = 0.0


def full_collection() -> tuple[int, float]:
    """Unfreeze, collect every generation, freeze again; returns (objects freed, seconds)."""
    t0 = time.perf_counter()
    gc.unfreeze()
    freed = gc.collect()
    gc.freeze()
    return freed, time.perf_counter() - t0


async def serve_gc_policy(*, freeze_interval_s: float = FREEZE_INTERVAL_S, full_interval_s: float = FULL_INTERVAL_S,
                          task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Run the policy above until cancelled; on exit, unfreeze (the process may go on)."""
    assert freeze_interval_s > 0
    assert full_interval_s >= freeze_interval_s
    freed, seconds = full_collection()
    log.info("gc: %d objects frozen after opening the database (%.0f ms, %d freed)", gc.get_freeze_count(), seconds * 1e3, freed)
    task_status.started()
    next_full = trio.current_time() + full_interval_s
    try:
        while True:
            await trio.sleep(freeze_interval_s)
            if trio.current_time() >= next_full:
                freed, seconds = full_collection()
                log.info("gc: full collection freed %d objects in %.0f ms; %d frozen", freed, seconds * 1e3, gc.get_freeze_count())
                next_full = trio.current_time() + full_interval_s
            else:
                gc.freeze()
    finally:
        gc.unfreeze()
