"""Memory events fanned out to server-sent-event subscribers.

Handlers ``publish`` an event after the engine acknowledged a write. Each subscriber
owns a bounded deque: when a slow client falls ``buffer_count_max`` events behind, the
oldest events are dropped and the next message it receives is a ``lagged`` event saying
how many it missed (publishing never blocks a writer). ``close`` ends every stream, so
a shutting-down server is not held open by idle SSE clients.
"""

from __future__ import annotations

import collections
import itertools
import json
from datetime import datetime, timezone
from typing import Any, AsyncIterator, Callable

import trio

__all__ = ["EventHub", "Subscription", "SSEResponse"]


class Subscription:
    """``space_id``: the space (or topic) whose events it receives, None for all;
    ``payload_spaces``: if set, only events whose ``memory_space_id`` is one of them (a
    topic such as consolidation carries events of every space)."""

    def __init__(self, hub: "EventHub", space_id: str | None, buffer_count_max: int,
                 payload_spaces: frozenset[str] | None = None) -> None:
        self.hub = hub
        self.space_id = space_id
        self.payload_spaces = payload_spaces
        self.queue: collections.deque[tuple[int, str, dict[str, Any]]] = collections.deque(maxlen=buffer_count_max)
        self.dropped_count = 0
        self.wakeup = trio.Event()

    def offer(self, item: tuple[int, str, dict[str, Any]]) -> None:
        if len(self.queue) == self.queue.maxlen:
            self.dropped_count += 1
        self.queue.append(item)
        self.wakeup.set()


class EventHub:
    def __init__(self, *, buffer_count_max: int = 1024, subscribers_max: int = 256, keepalive_s: float = 15.0) -> None:
        self.buffer_count_max = buffer_count_max
        self.subscribers_max = subscribers_max
        self.keepalive_s = keepalive_s
        self._subs: set[Subscription] = set()
        self._seq = itertools.count(1)
        self.closed = trio.Event()

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)

    def publish(self, kind: str, space_id: str, data: dict[str, Any]) -> None:
        if not self._subs:
            return
        payload = dict(data)
        payload.setdefault("memory_space_id", space_id)  # topic events carry their own space
        payload.setdefault("timestamp", datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"))
        item = (next(self._seq), kind, payload)
        for sub in self._subs:
            if (sub.space_id is None or sub.space_id == space_id) and \
                    (sub.payload_spaces is None or payload.get("memory_space_id") in sub.payload_spaces):
                sub.offer(item)

    def subscribe(self, space_id: str | None, *, payload_spaces: frozenset[str] | None = None) -> Subscription | None:
        """A new subscription, or None when ``subscribers_max`` streams are already open."""
        if len(self._subs) >= self.subscribers_max or self.closed.is_set():
            return None
        sub = Subscription(self, space_id, self.buffer_count_max, payload_spaces)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Free ``sub``'s slot (again is harmless)."""
        self._subs.discard(sub)

    def close(self) -> None:
        self.closed.set()
        for sub in self._subs:
            sub.wakeup.set()

    async def stream(self, sub: Subscription, *, hello: dict[str, Any]) -> AsyncIterator[bytes]:
        """SSE frames for one subscriber until the hub closes or the client goes away."""
        try:
            yield _frame(0, "connected", hello)
            while not self.closed.is_set():
                if not sub.queue:
                    sub.wakeup = trio.Event()
                    with trio.move_on_after(self.keepalive_s):
                        await sub.wakeup.wait()
                    if not sub.queue:
                        if not self.closed.is_set():
                            yield b": keep-alive\n\n"
                        continue
                if sub.dropped_count:
                    missed, sub.dropped_count = sub.dropped_count, 0
                    yield _frame(0, "lagged", {"missed_events": missed})
                # Bound one burst so a busy stream still yields to the loop between writes.
                for _ in range(min(len(sub.queue), 256)):
                    seq, kind, payload = sub.queue.popleft()
                    yield _frame(seq, kind, payload)
        finally:
            self.unsubscribe(sub)


def _frame(seq: int, kind: str, payload: dict[str, Any]) -> bytes:
    head = f"id: {seq}\n" if seq else ""
    return f"{head}event: {kind}\ndata: {json.dumps(payload, separators=(',', ':'), ensure_ascii=False)}\n\n".encode()


class SSEResponse:
    """An ASGI response streaming ``frames`` as text/event-stream.

    Written against trio directly rather than Starlette's StreamingResponse, whose
    anyio task group calls ``CancelScope.cancel(reason)``, which trio 0.22 lacks. One
    task forwards frames, another watches for the client's disconnect; whichever ends
    first cancels the other.
    """

    status_code = 200

    def __init__(self, frames: AsyncIterator[bytes], on_close: Callable[[], None] | None = None) -> None:
        self.frames = frames
        self.on_close = on_close

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        # ``on_close`` frees the subscriber's slot however this ends: closing ``frames``
        # does not when the generator never started (its finally is never entered), as
        # when the client is gone before the response start could be sent.
        try:
            await self._stream(receive, send)
        finally:
            if self.on_close is not None:
                self.on_close()

    async def _stream(self, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no")]})
        async with trio.open_nursery() as nursery:
            async def watch_disconnect() -> None:
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        nursery.cancel_scope.cancel()
                        return

            nursery.start_soon(watch_disconnect)
            try:
                async for frame in self.frames:
                    await send({"type": "http.response.body", "body": frame, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError:
                pass  # the client went away mid-write
            finally:
                aclose = getattr(self.frames, "aclose", None)
                if aclose is not None:
                    with trio.CancelScope(shield=True):
                        await aclose()
            nursery.cancel_scope.cancel()
