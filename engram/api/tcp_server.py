"""hypercorn's trio connection handler with a close that cannot race a send.

hypercorn (0.18) serialises its sends on a connection with ``send_lock``, but its
``_close`` calls ``SocketStream.send_eof`` without that lock, and trio's ``send_eof``
holds the stream's send conflict detector across a checkpoint. Any other task that
sends in that window gets ``trio.BusyResourceError`` ("another task is currently
sending data on this SocketStream"). One request is enough to make it happen: a
request with ``Connection: close`` followed by more bytes on the same connection.
The reader task answers the extra bytes with a 400 while the app task, having sent
its response, closes; the reader's send raises, nothing in hypercorn catches it,
and it leaves ``TCPServer.run`` into ``trio.serve_listeners``' nursery, which
stops the whole server. Under plain load the same window costs a dropped
keep-alive connection now and then.

``EngramTCPServer`` keeps hypercorn's behaviour and changes four things:
- ``_close`` takes ``send_lock`` (bounded wait; if a sender is stuck on a peer that
  does not read, closing the socket is what unblocks it, as before), so the EOF
  is sent after any response in flight, never beside it;
- ``run`` contains an ordinary exception of one connection: it is logged and that
  connection is dropped; the listener and every other connection go on;
- a response head is held back until the next bytes of the connection, so that head
  and body leave in one ``send`` (hypercorn sends them separately: two syscalls and,
  on loopback, two wake-ups of the client per response). The app sends the body right
  after the head without yielding, so they meet in the same scheduler tick; if the
  body is late (a stream), a task spawned with the head sends it alone one tick later.

- a send that makes no progress for ``send_timeout_s`` (the peer reads nothing, its
  socket buffers are full) closes the connection, where hypercorn waited forever,
  shielded: a client that requests large answers and never reads them would pin the
  answers in memory and the connection for as long as it liked;

- the idle timeout is one watcher task per connection whose deadline a request moves
  (``_IdleTimer``), where hypercorn stopped its idle task when a request began and
  started a new one (``nursery.start``) when it ended: about a tenth of the event
  loop's time per request under load.

``install()`` points hypercorn's trio worker at this class; ``engram serve`` calls it
before it binds. It must not be used for anything but hypercorn's trio worker.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import hypercorn.trio.run as _hypercorn_run
import trio
from hypercorn.events import Closed, Event, RawData
from hypercorn.trio.tcp_server import TCPServer

__all__ = ["EngramTCPServer", "install", "CLOSE_LOCK_WAIT_S"]

log = logging.getLogger("engram.hypercorn")

# How long a close waits for a send in flight to finish before closing under it.
CLOSE_LOCK_WAIT_S = 5.0


class _IdleTimer:
    """hypercorn's idle task (``TrioSingleTask`` running ``TCPServer._idle_timeout``: close
    the connection after ``keep_alive_timeout`` idle, or when the server terminates while
    it is idle) as one watcher task whose deadline moves. ``restart`` and ``stop`` keep
    the names and meaning hypercorn's ``protocol_send`` calls them with (the connection
    became idle; a request began); ``finish`` ends the watcher when the connection ends.
    """

    def __init__(self, server: "EngramTCPServer") -> None:
        self._server = server
        self._scope: trio.CancelScope | None = None
        self._idle = False
        self._finished = False

    async def restart(self, task_group: Any, action: Any) -> None:
        self._idle = True
        if self._finished:
            return  # the connection is ending: no watcher for it now
        deadline = trio.current_time() + self._server.config.keep_alive_timeout
        if self._scope is None:
            self._scope = trio.CancelScope(deadline=deadline)
            task_group._nursery.start_soon(self._watch, self._scope)
        else:
            self._scope.deadline = deadline

    async def stop(self) -> None:
        self._idle = False
        if self._scope is not None:
            self._scope.deadline = math.inf

    def finish(self) -> None:
        self._finished = True
        if self._scope is not None:
            self._scope.cancel()

    async def _watch(self, scope: trio.CancelScope) -> None:
        with scope:
            await self._server.context.terminated.wait()
        if self._finished:
            return
        if not scope.cancelled_caught and not self._idle:
            # Terminating while a request runs: the next restart (the request answered)
            # starts a new watcher, which finds the server terminated and closes.
            self._scope = None
            return
        with trio.CancelScope(shield=True):
            await self._server._initiate_server_close()


SEND_CHUNK_BYTES = 256 * 1024  # the send deadline restarts after each chunk sent (see _send_raw)


class EngramTCPServer(TCPServer):
    """One HTTP connection (see the module docstring for what differs from hypercorn's)."""

    connection_errors_count = 0  # class-wide: connections dropped by a contained error
    send_timeout_s = 60.0  # set by install(); see the module docstring
    send_timeouts_count = 0  # class-wide: connections closed because a send blocked too long

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._held_head: bytes | None = None
        self.idle_task = _IdleTimer(self)  # type: ignore[assignment]

    async def _read_data(self) -> None:
        try:
            await super()._read_data()
        finally:
            self.idle_task.finish()  # type: ignore[attr-defined]

    async def protocol_send(self, event: Event) -> None:
        if isinstance(event, RawData):
            held = self._held_head
            if held is None:
                task_group = getattr(self, "_task_group", None)
                nursery = getattr(task_group, "_nursery", None)
                if nursery is not None and event.data.startswith(b"HTTP/"):
                    self._held_head = event.data
                    nursery.start_soon(self._send_held_head)
                    return
            else:
                self._held_head = None
                event = RawData(held + event.data, event.address)
            await self._send_raw(event.data)
            return
        await super().protocol_send(event)

    async def _send_held_head(self) -> None:
        held = self._held_head
        if held is not None:  # nothing followed the head within its tick
            self._held_head = None
            await self._send_raw(held)

    async def _send_raw(self, data: bytes) -> None:
        """hypercorn's send of raw bytes (under ``send_lock``, shielded from the request's
        cancellation, a peer gone is the connection closed) with a deadline: a send that
        makes no progress for ``send_timeout_s`` closes the socket, and so the connection.
        The deadline is per chunk of ``SEND_CHUNK_BYTES``, not for the whole answer: a
        large answer to a client that reads slowly but steadily may take longer than
        ``send_timeout_s`` to go out, and must not be cut off for it."""
        async with self.send_lock:
            try:
                view = memoryview(data)
                with trio.CancelScope(shield=True) as scope:
                    for start in range(0, max(len(view), 1), SEND_CHUNK_BYTES):
                        scope.deadline = trio.current_time() + self.send_timeout_s
                        await self.stream.send_all(view[start : start + SEND_CHUNK_BYTES])
                if scope.cancelled_caught:
                    EngramTCPServer.send_timeouts_count += 1
                    log.info("closed a connection whose client read nothing for %g s", self.send_timeout_s)
                    await self.stream.aclose()  # a cancelled send_all leaves the stream unusable anyway
                    await self.protocol.handle(Closed())
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                await self.protocol.handle(Closed())

    async def run(self) -> None:
        try:
            await super().run()
        except* Exception as group:  # trio.Cancelled is a BaseException and still propagates
            EngramTCPServer.connection_errors_count += 1
            log.warning("dropped one connection after an error in its handler: %r", group.exceptions[0],
                        exc_info=group.exceptions[0])

    async def _close(self) -> None:
        self.idle_task.finish()  # type: ignore[attr-defined]
        with trio.CancelScope(shield=True):
            if self.send_lock.statistics().owner is trio.lowlevel.current_task():
                await self._close_holding_lock()  # this task holds the lock: nobody else is sending
                return
            with trio.move_on_after(CLOSE_LOCK_WAIT_S):
                async with self.send_lock:
                    await self._close_holding_lock()
                    return
            # A send has been stuck for CLOSE_LOCK_WAIT_S (the peer reads nothing):
            # closing the socket makes that send fail with ClosedResourceError,
            # which hypercorn's protocol_send handles.
            await self.stream.aclose()

    async def _close_holding_lock(self) -> None:
        held = self._held_head
        if held is not None:
            self._held_head = None
            try:
                await self.stream.send_all(held)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the peer is gone; closing is all that is left
        await super()._close()


def install(*, send_timeout_s: float = 60.0) -> None:
    """Make hypercorn's trio worker serve connections with EngramTCPServer (idempotent),
    with sends that give up after ``send_timeout_s``.

    Raises RuntimeError if this hypercorn no longer has the names this relies on.
    """
    EngramTCPServer.send_timeout_s = send_timeout_s
    current = getattr(_hypercorn_run, "TCPServer", None)
    if current is EngramTCPServer:
        return
    if current is not TCPServer or not all(hasattr(TCPServer, name) for name in ("_close", "protocol_send", "run")):
        raise RuntimeError("hypercorn.trio.run.TCPServer is not the class engram.api.tcp_server patches; "
                           "check the hypercorn version (tested with 0.18)")
    _hypercorn_run.TCPServer = EngramTCPServer  # type: ignore[misc]
