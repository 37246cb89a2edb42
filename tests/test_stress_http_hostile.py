"""Hostile raw HTTP: the server answers 4xx (or 503 when out of resources) within limits,
names what was wrong, and keeps serving.

Found by running hostile requests by hand against a real server (tests/test_http_fuzz.py
cannot produce them: they are not requests a schema describes):

- a number beyond a double (1e400, or 10**5000 written as a JSON integer) was refused
  as "text that is not valid Unicode (a lone surrogate) or nests too deeply";
- a client that sent its headers and then held the body back kept the connection
  forever (hypercorn has no read timeout, and one would cut SSE streams): enough of
  them used up the server's file descriptors and new clients could not connect;
- out of file descriptors, opening a space answered 500 "internal error" instead of a
  503 the client can retry;
- a client that closed its connection mid-body was logged as a server error with a
  traceback (one log entry per disconnect, at the client's will);
- a msgpack bulk body msgpack refused was answered "not valid msgpack (ValueError)",
  which names no problem (a length bomb, truncation, nesting, a non-string key).

A long schemathesis run (tests/test_http_fuzz.py's settings, 600 examples per operation,
13 min) found one more: GET recall and GET query/probabilistic answered a query-string
embedding of the wrong JSON kind (embedding=2, "x", null, {}) with 422, which their
documented answers do not list; a query parameter's bad text is a 400 there.

By hand again: POST /api/v1/spaces {"id": "x", "dimension": 384} answered 201 with a
768-dimension space (top-level fields are ignored, and dimension never changes after
creation); a space setting next to "id" is now a 422 saying it belongs in "config".

The rest of the battery (header floods, 1 MB headers, invalid UTF-8, 100k-deep JSON,
msgpack length bombs, pipelining, garbage) passed already and stays as a guard.
"""

from __future__ import annotations

import json
import resource
import socket
import time
from typing import Any

import msgpack
import pytest

from conftest import ServerProcess, engram_env, raw_exchange


def exchange(server: ServerProcess, data: bytes, timeout: float = 10.0) -> bytes:
    return raw_exchange(server.port, data, timeout)


def request(method: str, path: str, body: bytes = b"", ctype: str = "application/json", extra: bytes = b"",
            close: bool = True) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + (b"Connection: close\r\n" if close else b"") + extra + b"\r\n" + body


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer[9:12])


def body_of(answer: bytes) -> dict[str, Any]:
    return json.loads(answer.split(b"\r\n\r\n", 1)[1])


def alive(server: ServerProcess) -> None:
    assert status_of(exchange(server, request("GET", "/health/alive"))) == 200


def read_answer(s: socket.socket) -> bytes:
    """One whole answer (head and Content-Length body) from a keep-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, f"closed before an answer: {data!r}"
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    while len(rest) < length:
        rest += s.recv(65536)
    return head + b"\r\n\r\n" + rest


REMEMBER = "/api/v1/memories/remember"
BULK = "/api/v1/memories/bulk"


@pytest.mark.parametrize("number", [b"1e400", b"-1e309", b"1" + b"0" * 5000, b"9" * 400],
                         ids=["1e400", "-1e309", "10**5000", "400 nines"])
def test_a_number_beyond_a_double_is_named(start_server, number: bytes) -> None:
    server = start_server()
    answer = exchange(server, request("POST", REMEMBER, b'{"content": "a", "confidence": ' + number + b"}"))
    assert status_of(answer) == 400
    error = body_of(answer)["error"]
    assert "beyond what a double holds" in error["message"], error
    assert error["field"] == "body" and "1.7976931348623157e308" in error["allowed"], error
    # The same in a JSON-lines bulk body, naming the line.
    answer = exchange(server, request("POST", BULK, b'{"content": "a"}\n{"content": "b", "embedding": [' + number + b"]}\n",
                                      ctype="application/x-ndjson"))
    assert status_of(answer) == 400
    error = body_of(answer)["error"]
    assert "beyond what a double holds" in error["message"] and error["field"] == "line 2", error
    alive(server)


def test_a_held_back_body_gets_408_and_the_connection_closes(start_server) -> None:
    server = start_server(env=engram_env(ENGRAM_BODY_TIMEOUT_S="1"))
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as s:
        s.sendall(request("POST", REMEMBER, close=False).replace(b"Content-Length: 0", b"Content-Length: 100") + b'{"content":')
        t0 = time.monotonic()
        answer = read_answer(s)
        assert status_of(answer) == 408, answer
        assert b"connection: close" in answer.lower()
        error = body_of(answer)["error"]
        assert error["field"] == "body" and "did not arrive within" in error["message"], error
        assert s.recv(100) == b""  # closed: the descriptor is free again
        assert time.monotonic() - t0 < 10
    alive(server)
    assert "Traceback" not in server.log(), server.log()[-3000:]


def test_out_of_file_descriptors_is_a_503_and_the_server_recovers(start_server) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(200, hard), hard))  # the server inherits it
    try:
        server = start_server()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    keep = socket.create_connection(("127.0.0.1", server.port), timeout=20)
    held: list[socket.socket] = []
    try:
        keep.sendall(request("GET", "/health/alive", close=False))
        assert status_of(read_answer(keep)) == 200
        # Use up the server's descriptors: connections whose body never comes.
        for _ in range(250):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            s.sendall(request("POST", REMEMBER, close=False).replace(b"Content-Length: 0", b"Content-Length: 100") + b"{")
            held.append(s)
        time.sleep(1.0)
        # A new space needs files: no descriptor left is a 503 to retry, not a 500.
        body = json.dumps({"content": "while out of descriptors"}).encode()
        keep.sendall(request("POST", REMEMBER, body, close=False, extra=b"X-Memory-Space: fd-starved\r\n"))
        answer = read_answer(keep)
        assert status_of(answer) == 503, answer
        assert b"retry-after: 1" in answer.lower()
        assert "file descriptors" in body_of(answer)["error"]["message"]
    finally:
        for s in held:
            s.close()
        keep.close()
    deadline = time.monotonic() + 20
    while True:  # the server sees the closes and accepts again
        try:
            alive(server)
            break
        except (OSError, AssertionError):
            assert time.monotonic() < deadline, "the server did not recover from running out of descriptors"
            time.sleep(0.2)
    answer = exchange(server, request("POST", REMEMBER, json.dumps({"content": "after"}).encode(),
                                      extra=b"X-Memory-Space: fd-starved\r\n"))
    assert status_of(answer) == 201, answer


def test_a_client_gone_mid_body_is_no_server_error(start_server) -> None:
    server = start_server()
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.sendall(request("POST", REMEMBER, close=False).replace(b"Content-Length: 0", b"Content-Length: 100") + b'{"con')
            time.sleep(0.1)
    time.sleep(0.5)
    alive(server)
    log = server.log()
    assert "error answering" not in log and "Traceback" not in log, log[-3000:]


MSGPACK = "application/msgpack"


def test_a_query_string_embedding_with_a_number_beyond_a_double_says_so(module_server) -> None:
    # It was answered "embedding: is not a JSON array".
    with module_server.client() as client:
        r = client.get("/api/v1/memories/recall?embedding=[" + "9" * 5000 + "]")
        assert r.status_code == 400, r.text
        assert "beyond what a double holds" in r.json()["error"]["message"], r.text
        r = client.get("/api/v1/memories/recall?embedding=[" + ",".join(["1e400"] + ["0.5"] * 767) + "]")
        assert r.status_code == 400, r.text
        assert r.json()["error"]["field"] == "embedding[0]" and "too large" in r.json()["error"]["message"], r.text


@pytest.mark.parametrize("setting, value", [("dimension", 384), ("durability", "async"), ("capacity", 10),
                                            ("dedup_threshold", None), ("decay", "none"), ("effects", [])])
def test_a_space_setting_next_to_id_is_refused_not_ignored(module_server, setting: str, value: Any) -> None:
    space_id = f"misplaced-{setting.replace('_', '-')}"
    with module_server.client() as client:
        r = client.post("/api/v1/spaces", json={"id": space_id, setting: value})
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["field"] == setting and "inside config" in error["message"], error
        assert f'"config": {{"{setting}"' in error["example"], error
        assert space_id not in [sp["id"] for sp in client.get("/api/v1/spaces").json()["spaces"]]
        # Where it belongs, it is taken.
        r = client.post("/api/v1/spaces", json={"id": space_id, "config": {setting: value}})
        assert r.status_code == 201, r.text
        if setting == "dimension":
            assert r.json()["dimension"] == 384


@pytest.mark.parametrize("path", ["/api/v1/memories/recall", "/api/v1/query/probabilistic"])
@pytest.mark.parametrize("value", ["2", "%22x%22", "null", "%7B%7D", "true", "%5B%22a%22%5D"])
def test_a_query_string_embedding_of_the_wrong_kind_is_a_documented_400(module_server, path: str, value: str) -> None:
    with module_server.client() as client:
        documented = client.get("/api-docs/openapi.json").json()["paths"][path]["get"]["responses"]
        r = client.get(f"{path}?query=cell&embedding={value}")
    assert r.status_code == 400, r.text
    assert "400" in documented
    error = r.json()["error"]
    assert error["field"] == "embedding" and error["code"] == "INVALID_MEMORY_INPUT", error


@pytest.mark.parametrize("body, reason", [
    (b"\xdd\xff\xff\xff\xff", "a length prefix declares more than the body holds"),
    (b"\xdf\xff\xff\xff\xff", "a length prefix declares more than the body holds"),
    (b"\x91\x81\xa7content\xdb\xff\xff\xff\xff", "it ends inside a value"),
    (b"\x91" * 100_000, "it nests too deeply"),
    (b"\x91\x81\x01\x02", "a map key is not a string"),
    (b"\xc1", "starts no msgpack value"),
], ids=["array bomb", "map bomb", "string bomb", "deep", "int key", "reserved byte"])
def test_a_refused_msgpack_body_says_why(module_server, body: bytes, reason: str) -> None:
    answer = exchange(module_server, request("POST", BULK, body, MSGPACK))
    assert status_of(answer) == 400
    error = body_of(answer)["error"]
    assert error["message"].startswith("the body is not valid msgpack: ") and reason in error["message"], error
    assert error["field"] == "body"


HOSTILE: list[tuple[str, bytes, tuple[int, ...]]] = [
    ("10k headers", request("GET", "/health/alive", extra=b"".join(b"X-H%d: v\r\n" % i for i in range(10_000))), (200, 431)),
    ("1 MB header", request("GET", "/health/alive", extra=b"X-Big: " + b"a" * (1 << 20) + b"\r\n"), (431,)),
    ("invalid UTF-8 path", b"GET /api/v1/memories/\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", (400, 404)),
    ("invalid UTF-8 JSON", request("POST", REMEMBER, b'{"content": "\xff\xfe"}'), (400,)),
    ("100k-deep array", request("POST", REMEMBER, b"[" * 100_000 + b"]" * 100_000), (400,)),
    ("100k-deep in a field", request("POST", REMEMBER, b'{"content": "a", "metadata": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"), (400,)),
    ("100k-deep object", request("POST", REMEMBER, b'{"a":' * 100_000 + b"1" + b"}" * 100_000), (400, 413)),
    ("duplicate keys", request("POST", REMEMBER, b'{"content": "a", "content": "b"}'), (201,)),
    ("lone surrogate", request("POST", REMEMBER, b'{"content": "\\ud800"}'), (400,)),
    ("NaN", request("POST", REMEMBER, b'{"content": "a", "confidence": NaN}'), (400,)),
    ("msgpack array of 2**32-1", request("POST", BULK, b"\xdd\xff\xff\xff\xff", MSGPACK), (400,)),
    ("msgpack map of 2**32-1", request("POST", BULK, b"\xdf\xff\xff\xff\xff", MSGPACK), (400,)),
    ("msgpack str of 2**32-1", request("POST", BULK, b"\x91\x81\xa7content\xdb\xff\xff\xff\xff", MSGPACK), (400,)),
    ("msgpack embedding of 2**32-1", request("POST", BULK, b"\x91\x81\xa9embedding\xdd\xff\xff\xff\xff", MSGPACK), (400,)),
    ("msgpack 100k-deep", request("POST", BULK, b"\x91" * 100_000, MSGPACK), (400,)),
    ("msgpack u64 confidence", request("POST", BULK, msgpack.packb([{"content": "a", "confidence": 2**64 - 1}]), MSGPACK), (400,)),
    ("msgpack ext content", request("POST", BULK, b"\x91\x81\xa7content\xc7\x05\x01abcde", MSGPACK), (400, 422)),
    ("negative Content-Length", b"POST /api/v1/memories/remember HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", (400,)),
    ("huge Content-Length", b"POST /api/v1/memories/remember HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n", (400, 413)),
    ("bad chunk size", b"POST /api/v1/memories/remember HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", (400,)),
    ("TLS hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 100, (400,)),
    ("HTTP/0.9", b"GET /\r\n\r\n", (400,)),
    ("200 KB path", b"GET /" + b"a" * 200_000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", (404, 414, 431)),
]


def test_hostile_requests_get_4xx_and_the_server_keeps_serving(start_server) -> None:
    server = start_server()
    for name, data, allowed in HOSTILE:
        t0 = time.monotonic()
        answer = exchange(server, data)
        assert time.monotonic() - t0 < 5, f"{name}: took {time.monotonic() - t0:.1f} s"
        assert answer, f"{name}: no answer"
        assert status_of(answer) in allowed, f"{name}: {answer[:300]!r}"
        alive(server)
    # Pipelined: 50 requests in one write, each answered in order.
    answer = exchange(server, b"GET /health/alive HTTP/1.1\r\nHost: x\r\n\r\n" * 50
                      + b"GET /health/alive HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.count(b"HTTP/1.1 200 ") == 51
    assert "Traceback" not in server.log(), server.log()[-3000:]
