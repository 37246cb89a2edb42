"""A client that never reads its answers cannot pin them, or its connection, for ever.

helper-27's stress run: 60 sockets asking for 15 MB answers and reading nothing took a
server from 101 MB to 1.37 GB resident, held as long as the sockets stayed open, because
hypercorn's sends wait shielded and without a deadline. Now a send blocked longer than
``send_timeout_s`` closes the connection. How: a real server with ENGRAM_SEND_TIMEOUT_S=1,
a raw socket that asks for a large answer, then reads nothing for a while.
"""

from __future__ import annotations

import socket
import time

import msgpack
import numpy as np
from conftest import engram_env


def test_a_client_that_reads_nothing_is_cut_off_after_the_send_timeout(start_server):
    server = start_server(env=engram_env(ENGRAM_SEND_TIMEOUT_S="1"))
    rng = np.random.default_rng(5)
    items = [{"content": f"memory {i}", "embedding": rng.standard_normal(768).astype(np.float32).tolist()} for i in range(1000)]
    with server.client(headers={"X-Memory-Space": "big"}) as c:
        r = c.post("/api/v1/memories/bulk", content=msgpack.packb(items), headers={"Content-Type": "application/msgpack"})
        assert r.status_code == 201, r.text
        full = len(c.get("/api/v1/memories", params={"limit": 1000, "include_embeddings": "true"}).content)
    assert full > 10_000_000  # more than the loopback socket buffers hold

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
