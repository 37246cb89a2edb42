"""Content-Length must be ASCII digits; anything else is a 400 in the error envelope.

The app checked ``str.isdigit()``, which is also true for '²' (int() then raises: a 500)
and '١' (int() reads 1). How: the ASGI app over a real Service is sent requests whose
Content-Length is one of those, in process (h11 and h2 refuse such a header before it
reaches the app, so on the wire the app's check is a second line of defence); and a
real server is sent the same bytes on a raw socket, which must answer 400 and go on
serving.
"""

from __future__ import annotations

import json
import socket

import pytest

from engram.api.http import create_app
from engram.config import Settings
from tests.conftest import run_with_service


def _asgi_post(tmp_path, content_length: bytes) -> tuple[int, dict]:
    sent: list[dict] = []

    async def body(svc) -> None:
        app = create_app(svc)
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": "/api/v1/spaces", "raw_path": b"/api/v1/spaces", "query_string": b"",
                 "root_path": "", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2),
                 "headers": [(b"content-type", b"application/json"), (b"content-length", content_length)]}

        async def receive() -> dict:
            return {"type": "http.request", "body": b'{"id": "abc"}', "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        await app(scope, receive, send)

    run_with_service(Settings.test_min(tmp_path / "data"), body)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(payload)


@pytest.mark.parametrize("value", ["²".encode("latin-1"), "١".encode(), b"+13", b"1_3"])
def test_non_ascii_digit_content_length_is_a_400_naming_the_header(tmp_path, value):
    status, doc = _asgi_post(tmp_path, value)
    assert status == 400, doc
    error = doc["error"]
    assert error["field"] == "Content-Length"
    assert "ASCII digits" in error["allowed"]
    assert error["example"] == "Content-Length: 120"


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_real_server_refuses_a_non_ascii_content_length_and_goes_on(start_server):
    server = start_server()
    for value in ("²".encode("utf-8"), "١".encode("utf-8")):
        answer = _raw(server.port, b"POST /api/v1/spaces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                   b"Content-Length: " + value + b"\r\nConnection: close\r\n\r\n{}")
        assert answer.startswith(b"HTTP/1.1 400"), answer
    with server.client() as c:
        assert c.get("/health").status_code == 200
