"""The send deadline is for a client that reads nothing, not for one that reads slowly.

``send_timeout_s`` was applied to the whole ``send_all`` of an answer: a 15 MB answer
to a client reading a steady few MB/s (a slow link) takes longer than the deadline,
so the connection was closed mid-answer although the client never stopped reading.
How: a real server with ENGRAM_SEND_TIMEOUT_S=1, a raw socket with a small receive
buffer that reads 64 KiB every 20 ms (never idle for anywhere near 1 s), whose answer
takes several seconds to arrive.
"""

from __future__ import annotations

import json
import socket
import time

import msgpack
import numpy as np
from conftest import engram_env


def test_a_client_that_reads_slowly_but_steadily_gets_its_whole_answer(start_server):
    server = start_server(env=engram_env(ENGRAM_SEND_TIMEOUT_S="1"))
    rng = np.random.default_rng(5)
    items = [{"content": f"memory {i}", "embedding": rng.standard_normal(768).astype(np.float32).tolist()} for i in range(1000)]
    with server.client(headers={"X-Memory-Space": "big"}) as c:
        r = c.post("/api/v1/memories/bulk", content=msgpack.packb(items), headers={"Content-Type": "application/msgpack"})
        assert r.status_code == 201, r.text
        full = c.get("/api/v1/memories", params={"limit": 1000, "include_embeddings": "true"}).content
    assert len(full) > 10_000_000

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
