"""A server-sent-event stream frees its subscriber slot however the client leaves.

The slot was freed only in the frame generator's finally, which never runs when the
generator never started: a client gone before the response start could be sent kept
its slot, and enough of them would fill the hub (503 for every later stream). First
an SSEResponse whose send fails at once must leave the hub empty; then, against a
real server, clients that read and close, close at once, or reset the connection must
leave engram_sse_subscribers at 0, and more streams than the hub holds can be opened
one after another.
"""

from __future__ import annotations

import re
import socket
import struct
import time

import httpx
import trio

from engram.api.events import EventHub, SSEResponse


def test_slot_freed_when_the_response_cannot_start():
    hub = EventHub(subscribers_max=2)

    async def main() -> None:
        sub = hub.subscribe("default")
        assert sub is not None and hub.subscriber_count == 1

        async def receive() -> dict:
            await trio.sleep_forever()
            return {}

        async def send(message: dict) -> None:
            raise OSError("the client is gone")

        response = SSEResponse(hub.stream(sub, hello={}), on_close=lambda: hub.unsubscribe(sub))
        try:
            await response({"type": "http"}, receive, send)
        except OSError:
            pass

    trio.run(main)
    assert hub.subscriber_count == 0


def _subscribers(server) -> float:
    text = httpx.get(server.url + "/metrics").text
    return float(re.search(r"^engram_sse_subscribers (\S+)", text, re.M).group(1))


def _wait_for_zero(server) -> float:
    deadline = time.monotonic() + 10
    while (count := _subscribers(server)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return count


def test_real_server_frees_slots_of_departed_clients(start_server):
    server = start_server()
    request = b"GET /api/v1/stream/memories HTTP/1.1\r\nHost: x\r\n\r\n"
    for _ in range(300):  # more than the hub's 256 slots: a leak would end in 503s
        with httpx.stream("GET", server.url + "/api/v1/stream/memories", timeout=10) as r:
            assert r.status_code == 200
            next(r.iter_bytes())
    assert _wait_for_zero(server) == 0
    for linger in (False, True):
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", server.port))
            if linger:  # close with a reset instead of a FIN
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.sendall(request)
            s.close()
        assert _wait_for_zero(server) == 0
