"""Recalls that arrive together share one scan (engram.api.batching.RecallBatcher).

Unit tests on a virtual clock with a recording stand-in for the space: what each
scan receives, and when. Proves: queued recalls share one call, and those arriving
during a scan form the next one; a lone recall never waits; a failing query fails
only its own request.

(Waiting a little after a shared scan for the clients it answered to come back, so
that they share the next scan too, was tried: with 16 clients on 100k memories it
did not raise throughput, because the scan of the first ones back overlaps with the
event loop answering the rest.)
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from engram.api.batching import RecallBatcher


class _Space:
    """Answers each query with its own ``q`` after ``scan_s`` of (virtual) work."""

    def __init__(self, scan_s: float = 0.005) -> None:
        self.scan_s = scan_s
        self.calls: list[tuple[float, list[int]]] = []

    def recall(self, **query: Any) -> list[int]:
        return self.recall_many([query])[0]

    def recall_many(self, queries: list[dict[str, Any]]) -> list[list[int]]:
        self.calls.append((trio.current_time(), [q["q"] for q in queries]))  # in trio's (shuffled) task order
        if any(q["q"] < 0 for q in queries):
            raise ValueError("a negative query")
        return [[q["q"]] for q in queries]


async def _in_thread(fn: Any, *args: Any, limiter: Any = None) -> Any:
    """trio.to_thread.run_sync on the virtual clock: the call, then the scan's time."""
    result = fn(*args)
    await trio.sleep(0.005)
    return result


def _run(scenario: Any) -> list[tuple[float, list[int]]]:
    space = _Space()

    async def main() -> None:
        batcher = RecallBatcher(space, limiter=trio.CapacityLimiter(4), batch_count_max=64, queue_count_max=64)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(batcher.serve_batches)
            await scenario(batcher, nursery)
            batcher.close()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trio.to_thread, "run_sync", _in_thread)
        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return space.calls


async def _client(batcher: RecallBatcher, q: int, answers: dict[int, Any]) -> None:
    try:
        answers[q] = await batcher.recall({"q": q})
    except ValueError as exc:
        answers[q] = str(exc)


def test_queued_recalls_share_one_scan_and_those_arriving_during_it_the_next():
    answers: dict[int, Any] = {}

    async def scenario(batcher, nursery):
        async with trio.open_nursery() as clients:
            for q in range(4):
                clients.start_soon(_client, batcher, q, answers)
        # The four come back one by one, 0.3 ms apart (the loop answering and parsing
        # them): the first is scanned at once, the others arrive during its scan.
        async with trio.open_nursery() as clients:
            for q in range(10, 14):
                clients.start_soon(_client, batcher, q, answers)
                await trio.sleep(0.0003)

    calls = _run(scenario)
    assert [sorted(batch) for _, batch in calls] == [[0, 1, 2, 3], [10], [11, 12, 13]]
    assert answers == {q: [q] for q in (0, 1, 2, 3, 10, 11, 12, 13)}


def test_a_lone_client_never_waits():
    async def scenario(batcher, nursery):
        for q in range(3):
            await batcher.recall({"q": q})

    calls = _run(scenario)
    assert [batch for _, batch in calls] == [[0], [1], [2]]
    assert [t for t, _ in calls] == pytest.approx([0.0, 0.005, 0.010])


def test_a_failing_query_fails_only_its_own_request():
    answers: dict[int, Any] = {}

    async def scenario(batcher, nursery):
        async with trio.open_nursery() as clients:
            for q in (1, -1, 2):
                clients.start_soon(_client, batcher, q, answers)

    _run(scenario)
    assert answers == {1: [1], -1: "a negative query", 2: [2]}
