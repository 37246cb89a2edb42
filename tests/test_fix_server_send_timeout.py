"""A client that never reads its answers cannot pin them, or its connection, for ever.

helper-27's stress run: 60 sockets asking for 15 MB answers and reading nothing took a
server from 101 MB to 1.37 GB resident, held as long as the sockets stayed open, because
hypercorn's sends wait shielded and without a deadline. Now a send blocked longer than
``send_timeout_s`` closes the connection. How: a real server with ENGRAM_SEND_TIMEOUT_S=1,
a raw socket that asks for a large answer, then reads nothing for a while.
"""

from __future__ import annotations

import json
import socket
import time

import msgpack
import numpy as np
from conftest import engram_env


def server_with_a_big_answer(start_server):
    """A server with a 1 s send deadline, and the length of an answer (1,000 memories with
    their embeddings as JSON) far larger than the loopback socket buffers hold."""
    server = start_server(env=engram_env(ENGRAM_SEND_TIMEOUT_S="1"))
    rng = np.random.default_rng(5)
    items = [{"content": f"memory {i}", "embedding": rng.standard_normal(768).astype(np.float32).tolist()} for i in range(1000)]
    with server.client(headers={"X-Memory-Space": "big"}) as c:
        r = c.post("/api/v1/memories/bulk", content=msgpack.packb(items), headers={"Content-Type": "application/msgpack"})
        assert r.status_code == 201, r.text
        full = len(c.get("/api/v1/memories", params={"limit": 1000, "include_embeddings": "true"}).content)
    assert full > 10_000_000
    return server, full


def test_a_client_that_reads_nothing_is_cut_off_after_the_send_timeout(start_server):
    server, full = server_with_a_big_answer(start_server)

    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(b"GET /api/v1/memories?limit=1000&include_embeddings=true HTTP/1.1\r\n"
                     b"Host: x\r\nX-Memory-Space: big\r\n\r\n")
        time.sleep(4)  # read nothing: the server's send blocks, then gives up
        sock.settimeout(20)
        got = 0
        while chunk := sock.recv(1 << 20):  # what the buffers held, then the close
            got += len(chunk)
    assert 0 < got < full  # cut off, not the whole answer
    with server.client() as c:  # and the server goes on
        assert c.get("/health").status_code == 200
    assert "closed a connection whose client read nothing" in server.log()


def test_a_client_that_reads_slowly_but_steadily_gets_its_whole_answer(start_server):
    # The deadline is on time without progress, not on the whole answer (review-http).
    server, _ = server_with_a_big_answer(start_server)
    got = bytearray()
    started = time.monotonic()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(b"GET /api/v1/memories?limit=1000&include_embeddings=true HTTP/1.1\r\n"
                     b"Host: x\r\nX-Memory-Space: big\r\nConnection: close\r\n\r\n")
        sock.settimeout(20)
        while chunk := sock.recv(65536):
            got += chunk
            time.sleep(0.02)  # about 3 MB/s at most: several seconds for the whole answer
    elapsed = time.monotonic() - started
    head, _, body = bytes(got).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:100]
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")))
    assert len(body) == length, f"cut off after {len(body)} of {length} bytes in {elapsed:.1f} s"
    assert len(json.loads(body)["memories"]) == 1000
    assert elapsed > 2  # the answer did take longer than the deadline to read
