"""The server's garbage-collector policy (engram.api.gc_policy).

Proves: starting the policy freezes what exists; objects created later are frozen at
the next interval, so a full collection no longer walks them; cyclic garbage caught by
a freeze is reclaimed by the periodic full collection; stopping the policy unfreezes;
GcPauseRecorder reports each collection's generation and a non-negative duration; and
a real server exports engram_gc_pause_seconds. How: the policy under trio's MockClock
(virtual time, autojump), with weak references to watch a reference cycle die.
"""

from __future__ import annotations

import gc
import weakref

import trio
import trio.testing

from engram.api import gc_policy


class _Node:
    def __init__(self) -> None:
        self.other: "_Node | None" = None


def _cycle() -> weakref.ref:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_freeze_interval_and_full_collection_reclaims_cycles():
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: gc_policy.serve_gc_policy(
                freeze_interval_s=10, full_interval_s=60, task_status=task_status))
            frozen_at_start = gc.get_freeze_count()
            assert frozen_at_start > 0
            keep = [[i] for i in range(5000)]  # long-lived objects stored after start
            dead = _cycle()  # garbage in a cycle, alive (unreachable) when the next freeze runs
            await trio.sleep(11)
            assert gc.get_freeze_count() >= frozen_at_start + 5000
            gc.collect()
            assert dead() is not None  # frozen: a collection does not see it
            await trio.sleep(60)  # the full collection unfreezes, collects, freezes again
            assert dead() is None
            assert len(keep) == 5000
            nursery.cancel_scope.cancel()
        assert gc.get_freeze_count() == 0  # stopping the policy unfreezes

    try:
        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    finally:
        gc.unfreeze()


def test_pause_recorder_reports_generation_and_duration():
    seen: list[tuple[int, float]] = []
    recorder = gc_policy.GcPauseRecorder(lambda g, s: seen.append((g, s)))
    gc.callbacks.append(recorder)
    try:
        gc.collect(1)
        gc.collect(2)
    finally:
        gc.callbacks.remove(recorder)
    assert [g for g, _ in seen][-2:] == [1, 2]
    assert all(s >= 0 for _, s in seen)


def test_server_exports_gc_pauses(module_server):
    with module_server.client() as c:
        text = c.get("/metrics").text
    assert 'engram_gc_pause_seconds_count{generation="2"}' in text
    assert "engram.gc" in module_server.log() and "frozen after opening the database" in module_server.log()
