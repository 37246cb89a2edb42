"""Requests h11 refuses before the app runs are answered in the JSON error envelope.

hypercorn answered them with the status, ``Content-Length: 0`` and nothing else.
How: a real server (``engram serve``) is sent each malformed request on a raw socket;
the answer must keep hypercorn's status and ``Connection: close``, carry
``Content-Type: application/json`` and the envelope whose message names the problem
(with field/allowed/example for the usual mistakes), echo no raw request bytes, and
the server must answer a normal request afterwards.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import raw_exchange as exchange
from hypercorn.protocol.h11 import H11Protocol

from engram.api import h11_errors

REMEMBER = b"POST /api/v1/memories/remember HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


def parse(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    assert answer.startswith(b"HTTP/1.1 "), answer[:300]
    head, body = answer.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return int(lines[0][9:12]), headers, body


def alive(port: int) -> None:
    status, _, body = parse(exchange(port, b"GET /health/alive HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    assert status == 200, body


# name, request, status, words the message must contain, field (None: no field expected)
CASES: list[tuple[str, bytes, int, list[str], str | None]] = [
    ("two different Content-Length", REMEMBER + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
     400, ["Content-Length", "disagree"], "Content-Length"),
    ("non-ASCII-digit Content-Length", REMEMBER + "Content-Length: ²\r\n\r\n{}".encode(),
     400, ["Content-Length", "ASCII digits"], "Content-Length"),
    ("missing Host", b"GET /health/alive HTTP/1.1\r\nConnection: close\r\n\r\n",
     400, ["no Host header"], "Host"),
    ("two Host headers", b"GET /health/alive HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
     400, ["more than one Host"], "Host"),
    # 1 MiB, far past the 256 KiB limit: h11 checks the limit only while the head is still
    # incomplete, so a head of 300 KiB read in 64 KiB pieces (4 x 64 KiB is the limit itself,
    # not above it) could complete in the next read and pass; that failed once in CI.
    ("header section too large", b"GET /health/alive HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1024 * 1024) + b"\r\n\r\n",
     431, ["too large"], "headers"),
    ("space in the path", b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
     400, ["request line is malformed"], "request line"),
    ("non-ASCII byte in the path", "GET /café HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
     400, ["request line is malformed"], "request line"),
    ("control byte in a header name", b"GET /health/alive HTTP/1.1\r\nHost: x\r\nX-Bad\x01: v\r\n\r\n",
     400, ["header line is malformed"], "headers"),
    ("malformed chunk size", REMEMBER + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
     400, ["chunk size"], "body"),
    ("chunk longer than its size", REMEMBER + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}}\r\n0\r\n\r\n",
     400, ["chunk"], "body"),
    ("unsupported Transfer-Encoding", REMEMBER + b"Transfer-Encoding: gzip\r\n\r\n",
     501, ["Transfer-Encoding", "chunked"], "Transfer-Encoding"),
]


@pytest.mark.parametrize("name,data,status,words,field", CASES, ids=[c[0] for c in CASES])
def test_a_request_h11_refuses_gets_the_envelope_and_the_server_goes_on(module_server, name, data, status,
                                                                        words, field) -> None:
    got, headers, body = parse(exchange(module_server.port, data))
    assert got == status, body
    assert headers.get("content-type") == "application/json", headers
    assert headers.get("connection") == "close", headers
    assert int(headers["content-length"]) == len(body)
    error: dict[str, Any] = json.loads(body)["error"]
    for word in words:
        assert word in error["message"], error
    assert error["educational_context"] and error["cognitive_guidance"]
    if field is not None:
        assert error["field"] == field, error
        assert error["allowed"] and error["example"], error
    assert body.isascii() and all(0x20 <= b < 0x7F for b in body), body  # nothing echoed raw
    alive(module_server.port)
    assert "Traceback" not in module_server.log(), module_server.log()[-3000:]


def test_echoed_request_bytes_are_escaped_and_short(module_server) -> None:
    # h11 quotes the bad header line in its message: it comes back escaped and cut short.
    line = b"X-Bad\x01\x1b[31m: " + "é".encode() * 5000
    _, _, body = parse(exchange(module_server.port, b"GET / HTTP/1.1\r\nHost: x\r\n" + line + b"\r\n\r\n"))
    message = json.loads(body)["error"]["message"]
    assert "\x1b" not in message and "\x01" not in message and "é" not in message
    assert "\\x1b" in message, message  # shown, escaped
    assert len(message) < 300, len(message)


def test_a_normal_request_is_unchanged(module_server) -> None:
    status, _headers, body = parse(exchange(
        module_server.port, b"GET /health/alive HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    assert status == 200, body
    # Keep-alive requests, one bad one last: the good answers are unchanged, the bad one enveloped.
    answer = exchange(module_server.port, b"GET /health/alive HTTP/1.1\r\nHost: x\r\n\r\n" * 3
                      + b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.count(b"HTTP/1.1 200 ") == 3, answer
    assert answer.count(b"HTTP/1.1 400 ") == 1, answer
    assert b'"field":"request line"' in answer, answer


def test_install_refuses_a_hypercorn_it_does_not_know(monkeypatch) -> None:
    async def other(self: Any, status_code: int) -> None:
        pass

    monkeypatch.setattr(H11Protocol, "_send_error_response", other)
    assert h11_errors.install() is False
    assert H11Protocol._send_error_response is other


def test_without_the_h11_error_the_answer_is_still_an_envelope() -> None:
    err = h11_errors.describe(431, None, max_head_bytes=1024)
    assert err.status == 431 and err.field == "headers" and "1024 bytes" in err.allowed
    err = h11_errors.describe(400, None)
    assert err.status == 400 and err.message == "the request is not valid HTTP/1.1"
