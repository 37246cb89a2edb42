"""Connections: one client cannot stop the server, and keep-alive lasts.

Proves: (1) a request with ``Connection: close`` followed by more bytes on the same
connection, sent a few hundred times, leaves the server serving, with no
BusyResourceError and no dropped handler in its log. Without engram.api.tcp_server
(hypercorn's own close, which sends EOF beside the reader's 400), this stopped the
whole server within a few hundred connections. (2) The close waits for a send in
flight instead of failing it (unit test on EngramTCPServer with an in-memory
stream). (3) A keep-alive connection serves more than hypercorn's default 1,000
requests without being closed. (4) A response head and its body leave in one send;
a head whose body is late still leaves one tick later, and a close sends a held head
first (unit tests with a recording stream). How: a real ``engram serve`` child (conftest) and raw
sockets, so the bytes on the wire are exactly the ones that trigger the race.
"""

from __future__ import annotations

import socket
import threading

import pytest
import trio
import trio.testing

from engram.api import tcp_server

PAYLOAD = (b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
           b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")


def _read_all(sock: socket.socket, timeout_s: float = 5.0) -> bytes:
    sock.settimeout(timeout_s)
    out = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return out
            out += chunk
    except (socket.timeout, ConnectionResetError):
        return out


def test_close_with_trailing_bytes_does_not_stop_the_server(start_server):
    server = start_server()
    answers: list[bytes] = []
    lock = threading.Lock()

    def worker(count: int) -> None:
        for _ in range(count):
            with socket.create_connection(("127.0.0.1", server.port)) as sock:
                sock.sendall(PAYLOAD)
                data = _read_all(sock)
            with lock:
                answers.append(data)

    threads = [threading.Thread(target=worker, args=(40,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert server.proc.poll() is None, f"the server stopped:\n{server.log()[-3000:]}"
    with server.client() as c:
        assert c.get("/health").status_code == 200
    assert len(answers) == 320
    # Every connection gets an answer (the 200, or hypercorn's 400 for the stray bytes
    # when the reader gets there first), never a bare reset.
    assert all(a.startswith((b"HTTP/1.1 200", b"HTTP/1.1 400")) for a in answers), [a[:40] for a in answers if not a.startswith(b"HTTP/1.1 ")][:3]
    log = server.log()
    assert "BusyResourceError" not in log, log[-3000:]
    assert "dropped one connection" not in log, log[-3000:]


def test_keep_alive_connection_outlives_hypercorns_default_request_cap(start_server):
    server = start_server()
    request = b"GET /health/alive HTTP/1.1\r\nHost: t\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.settimeout(10)
        buf = b""
        for n in range(1200):
            sock.sendall(request)
            while b"\r\n\r\n" not in buf:
                chunk = sock.recv(65536)
                assert chunk, f"server closed the connection after {n} requests"
                buf += chunk
            head, _, rest = buf.partition(b"\r\n\r\n")
            assert b"connection: close" not in head.lower(), f"closed after {n + 1} requests"
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
            while len(rest) < length:
                rest += sock.recv(65536)
            buf = rest[length:]


def test_sigterm_closes_idle_keep_alive_connections_at_once(start_server):
    """An idle keep-alive connection does not hold up a graceful stop: the server closes
    it when it terminates (engram.api.tcp_server._IdleTimer), exits 0, and the client
    reads the end of the stream."""
    import time

    server = start_server()
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.settimeout(10)
        sock.sendall(b"GET /health/alive HTTP/1.1\r\nHost: t\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert server.stop() == 0
        assert time.monotonic() - started < 2.5  # not the graceful timeout, let alone keep-alive's 75 s
        assert sock.recv(65536) == b""


class _SocketLikeStream(trio.abc.HalfCloseableStream):
    """Sends like trio's SocketStream (a second concurrent send or send_eof raises
    BusyResourceError), but each send_all takes 0.5 s, like a socket with a full buffer."""

    def __init__(self) -> None:
        self.data = b""
        self.eof = False
        self.closed = False
        self._busy = False
        self.sending = trio.Event()

    async def send_all(self, data: bytes) -> None:
        if self._busy:
            raise trio.BusyResourceError("another task is currently sending data on this SocketStream")
        self._busy = True
        self.sending.set()
        try:
            await trio.sleep(0.5)
            if self.closed or self.eof:
                raise trio.ClosedResourceError
            self.data += data
        finally:
            self._busy = False

    async def send_eof(self) -> None:
        if self._busy:
            raise trio.BusyResourceError("another task is currently sending data on this SocketStream")
        self._busy = True
        try:
            await trio.lowlevel.checkpoint()
            self.eof = True
        finally:
            self._busy = False

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        return b""

    async def aclose(self) -> None:
        self.closed = True
        await trio.lowlevel.checkpoint()


def _server_on(stream: trio.abc.HalfCloseableStream) -> tcp_server.EngramTCPServer:
    server = tcp_server.EngramTCPServer.__new__(tcp_server.EngramTCPServer)
    server.send_lock = trio.Lock()
    server.stream = stream  # type: ignore[assignment]
    server._held_head = None
    server.idle_task = tcp_server._IdleTimer(server)
    return server


def test_close_waits_for_the_send_in_flight():
    async def main() -> None:
        stream = _SocketLikeStream()
        server = _server_on(stream)

        async def sender() -> None:
            async with server.send_lock:
                await stream.send_all(b"the response")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sender)
            await stream.sending.wait()
            # hypercorn's own _close sends EOF now, beside send_all: the send fails.
            await server._close()
        assert stream.data == b"the response"
        assert stream.eof and stream.closed

    trio.run(main)


def test_install_is_idempotent_and_checks_hypercorn():
    import hypercorn.trio.run as run

    tcp_server.install()
    tcp_server.install()
    assert run.TCPServer is tcp_server.EngramTCPServer


@pytest.mark.parametrize("owner", [True, False])
def test_close_from_the_lock_holder_does_not_deadlock(owner):
    async def main() -> None:
        stream = _SocketLikeStream()
        server = _server_on(stream)
        with trio.fail_after(2):
            if owner:
                async with server.send_lock:
                    await server._close()
            else:
                await server._close()
        assert stream.eof and stream.closed

    trio.run(main)


class _RecordingStream(_SocketLikeStream):
    """Records each send_all call (no delay)."""

    def __init__(self) -> None:
        super().__init__()
        self.sends: list[bytes] = []

    async def send_all(self, data: bytes) -> None:
        await trio.lowlevel.checkpoint()
        self.sends.append(bytes(data))


class _TaskGroup:
    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery


def test_head_and_body_leave_in_one_send():
    from hypercorn.events import RawData

    async def main() -> list[bytes]:
        stream = _RecordingStream()
        server = _server_on(stream)
        async with trio.open_nursery() as nursery:
            server._task_group = _TaskGroup(nursery)
            await server.protocol_send(RawData(b"HTTP/1.1 200 \r\ncontent-length: 2\r\n\r\n"))
            await server.protocol_send(RawData(b"ok"))
            await server.protocol_send(RawData(b""))
        return stream.sends

    sends = trio.run(main)
    assert sends[0] == b"HTTP/1.1 200 \r\ncontent-length: 2\r\n\r\nok"
    assert all(s == b"" for s in sends[1:])


def test_a_head_without_a_body_is_sent_one_tick_later():
    from hypercorn.events import RawData

    async def main() -> tuple[list[bytes], list[bytes]]:
        stream = _RecordingStream()
        server = _server_on(stream)
        async with trio.open_nursery() as nursery:
            server._task_group = _TaskGroup(nursery)
            await server.protocol_send(RawData(b"HTTP/1.1 200 \r\ntransfer-encoding: chunked\r\n\r\n"))
            await trio.sleep(0.1)  # a stream whose first chunk is late
            early = list(stream.sends)
            await server.protocol_send(RawData(b"2\r\nok\r\n"))
        return early, stream.sends

    early, sends = trio.run(main)
    assert early == [b"HTTP/1.1 200 \r\ntransfer-encoding: chunked\r\n\r\n"]
    assert sends == [b"HTTP/1.1 200 \r\ntransfer-encoding: chunked\r\n\r\n", b"2\r\nok\r\n"]


def test_close_sends_a_held_head_first():
    from hypercorn.events import RawData

    async def main() -> _RecordingStream:
        stream = _RecordingStream()
        server = _server_on(stream)
        async with trio.open_nursery() as nursery:
            server._task_group = _TaskGroup(nursery)
            await server.protocol_send(RawData(b"HTTP/1.1 204 \r\n\r\n"))
            await server._close()
        return stream

    stream = trio.run(main)
    assert stream.sends == [b"HTTP/1.1 204 \r\n\r\n"]
    assert stream.eof and stream.closed


class _IdleServer:
    """What _IdleTimer uses of a connection: its config, worker context and close."""

    def __init__(self, timeout: float) -> None:
        from hypercorn.trio.worker_context import WorkerContext

        self.config = type("Config", (), {"keep_alive_timeout": timeout})()
        self.context = WorkerContext(None)
        self.closed_at: list[float] = []

    async def _initiate_server_close(self) -> None:
        self.closed_at.append(trio.current_time())


class _Nursery:
    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery


def _idle_run(script) -> list[float]:
    """Run ``script(timer, server)`` on a virtual clock; return when the connection was closed."""
    server = _IdleServer(10.0)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            timer = tcp_server._IdleTimer(server)  # type: ignore[arg-type]
            await script(timer, _Nursery(nursery), server)
            await trio.sleep(100)
            timer.finish()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return server.closed_at


def test_idle_connection_closes_after_the_keep_alive_timeout():
    async def script(timer, group, server):
        await timer.restart(group, None)

    assert _idle_run(script) == [10.0]


def test_a_request_holds_the_timeout_and_its_end_starts_it_again():
    async def script(timer, group, server):
        await timer.restart(group, None)  # connected, idle
        await trio.sleep(8)
        await timer.stop()  # a request begins, and takes 30 s
        await trio.sleep(30)
        await timer.restart(group, None)  # answered: idle from t=38
        await trio.sleep(5)
        await timer.stop()
        await timer.restart(group, None)  # another quick request at t=43

    assert _idle_run(script) == [53.0]


def test_terminating_closes_an_idle_connection_at_once_and_a_busy_one_when_answered():
    async def idle(timer, group, server):
        await timer.restart(group, None)
        await trio.sleep(2)
        await server.context.terminated.set()

    assert _idle_run(idle) == [2.0]

    async def busy(timer, group, server):
        await timer.restart(group, None)
        await timer.stop()
        await trio.sleep(1)
        await server.context.terminated.set()
        await trio.sleep(3)
        await timer.restart(group, None)  # answered at t=4

    assert _idle_run(busy) == [4.0]


def test_a_finished_connection_is_not_closed_again():
    async def script(timer, group, server):
        await timer.restart(group, None)
        await trio.sleep(1)
        timer.finish()

    assert _idle_run(script) == []
