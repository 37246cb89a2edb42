"""Concurrent recalls on one space share one scan; concurrent remembers one WAL batch.

Each space gets a ``RecallBatcher`` with one collector task (``serve_batches``) living
in the server's nursery. A request puts its query in a bounded channel and waits. The
collector takes the first waiting query plus every other one already queued (at most
``batch_count_max``), answers them all with one ``Space.recall_many`` call in a worker
thread (embedding queries share one blocked matrix multiply there), and wakes each
requester. While that scan runs, new requests queue up and form the next batch, so the
batch size follows the load: one at a time when idle, large under pressure.

When the queue holds ``queue_count_max`` requests, a new recall is refused with 503 and
Retry-After rather than queued without bound. If a batch fails (say one query is
invalid in a way only the engine noticed), its queries are retried one by one so the
error reaches only the request that caused it.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import trio

from ..errors import ValidationError
from .errors import ApiError

__all__ = ["RecallBatcher", "RememberBatcher"]


class _Slot:
    __slots__ = ("query", "done", "result", "error")

    def __init__(self, query: dict[str, Any]) -> None:
        self.query = query
        self.done = trio.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class RecallBatcher:
    def __init__(
        self,
        space: Any,
        *,
        limiter: trio.CapacityLimiter,
        batch_count_max: int,
        queue_count_max: int,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        assert batch_count_max >= 1
        assert queue_count_max >= 1
        self.space = space
        self.limiter = limiter
        self.batch_count_max = batch_count_max
        self._send, self._receive = trio.open_memory_channel[_Slot](queue_count_max)
        self._on_batch = on_batch
        self.batches_count = 0
        self.queries_count = 0

    async def submit(self, query: dict[str, Any]) -> Any:
        return await self.recall(query)

    async def recall(self, query: dict[str, Any]) -> list[Any]:
        """The hits of one query. Raises ApiError(503) when the queue is full, or whatever
        ``Space.recall`` would raise for this query."""
        slot = _Slot(query)
        try:
            self._send.send_nowait(slot)
        except trio.WouldBlock:
            raise ApiError(503, "too many recalls are waiting on this space; retry shortly",
                           code="SERVER_BUSY", headers={"Retry-After": "1"}) from None
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise ApiError(503, "the server is shutting down", headers={"Retry-After": "1"}) from None
        # Not cancellable from here on would leak nothing: the collector still answers
        # the slot and drops the result if nobody waits.
        await slot.done.wait()
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[no-any-return]

    def close(self) -> None:
        self._send.close()

    async def serve_batches(self) -> None:
        async with self._receive:
            while True:
                try:
                    first = await self._receive.receive()
                except trio.EndOfChannel:
                    return
                batch = [first]
                while len(batch) < self.batch_count_max:
                    try:
                        batch.append(self._receive.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                await self._run(batch)

    async def _run(self, batch: list[_Slot]) -> None:
        queries = [s.query for s in batch]
        self.batches_count += 1
        self.queries_count += len(batch)
        if self._on_batch is not None:
            self._on_batch(len(batch))
        try:
            if len(batch) == 1:
                results = [await trio.to_thread.run_sync(lambda: self.space.recall(**queries[0]), limiter=self.limiter)]
            else:
                results = await trio.to_thread.run_sync(self.space.recall_many, queries, limiter=self.limiter)
        except Exception as exc:  # noqa: BLE001 - isolate the failing query below
            if len(batch) == 1:
                batch[0].error = exc
                batch[0].done.set()
                return
            for slot in batch:
                try:
                    slot.result = await trio.to_thread.run_sync(lambda q=slot.query: self.space.recall(**q), limiter=self.limiter)
                except Exception as one_exc:  # noqa: BLE001 - delivered to its own requester
                    slot.error = one_exc
                slot.done.set()
            return
        assert len(results) == len(batch)
        for slot, result in zip(batch, results):
            slot.result = result
            slot.done.set()


class RememberBatcher(RecallBatcher):
    """Concurrent remembers on one space become one ``Space.remember_many`` call: one
    thread hop, one WAL write and one fsync for the batch (the engine's group commit
    would share the fsync anyway; this also saves a thread hop and GIL hand-offs per
    request). Each requester gets its ``Remembered`` (id and dedup outcome). A failed
    batch is retried one by one, so a bad item fails only its own request and the others
    are stored exactly once (remember_many is all or nothing).
    """

    async def _run(self, batch: list[_Slot]) -> None:
        items = [s.query for s in batch]
        self.batches_count += 1
        self.queries_count += len(batch)
        if self._on_batch is not None:
            self._on_batch(len(batch))
        try:
            results = await trio.to_thread.run_sync(lambda: self.space.remember_many(items, outcomes=True), limiter=self.limiter)
        except Exception as exc:  # noqa: BLE001 - isolate the failing item below
            if len(batch) == 1:
                batch[0].error = _as_sent(exc)
                batch[0].done.set()
                return
            for slot in batch:
                try:
                    slot.result = (await trio.to_thread.run_sync(
                        lambda q=slot.query: self.space.remember_many([q], outcomes=True), limiter=self.limiter))[0]
                except Exception as one_exc:  # noqa: BLE001 - delivered to its own requester
                    slot.error = _as_sent(one_exc)
                slot.done.set()
            return
        assert len(results) == len(batch)
        for slot, remembered in zip(batch, results):
            slot.result = remembered
            slot.done.set()


def _as_sent(exc: BaseException) -> BaseException:
    """``exc`` naming the field as the requester sent it: remember_many of one request's
    memory calls its fields items[0].<field>, but the request sent one memory, not a list."""
    prefix = "items[0]."
    if isinstance(exc, ValidationError) and exc.field.startswith(prefix):
        return ValidationError(exc.field[len(prefix):], exc.problem, exc.allowed, exc.example)
    return exc


def retry_after_s(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
