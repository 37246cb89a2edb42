"""SIGTERM finishes a write that was in flight when it arrived.

Proves: a remember whose request head reached the server before SIGTERM, and whose
body arrives after it, is stored and answered 201 (before, it was refused with 503
although it was in flight); the server then exits 0 and the memory is there after a
restart. How: a real ``engram serve`` process (tests/conftest.py) and a raw socket
that sends the request head and half the body, waits, signals, then sends the rest.
"""

from __future__ import annotations

import json
import socket
import time

from conftest import vec


def test_a_write_in_flight_at_sigterm_is_finished(start_server):
    server = start_server()
    body = json.dumps({"content": "in flight at SIGTERM", "embedding": vec(3)}).encode()
    head = (f"POST /api/v1/memories/remember HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head + body[: len(body) // 2])
        time.sleep(0.5)  # the handler is reading the body now
        server.proc.send_signal(15)
        time.sleep(0.5)  # the server has begun its shutdown
        sock.sendall(body[len(body) // 2 :])
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            assert chunk, answer
            answer += chunk
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 201"), answer[:400]
    assert server.proc.wait(timeout=30) == 0

    server.start()
    with server.client() as c:
        listed = c.get("/api/v1/memories").json()
    assert [m["content"] for m in listed["memories"]] == ["in flight at SIGTERM"]
