"""A path with a trailing slash is a 404 in the error envelope, not a bare 307.

Starlette redirected /api/v1/memories/ to /api/v1/memories with an empty 307; the
original Engram (axum) has no such redirect, so its clients get a 404 there. A real
server is asked for a few such paths, without following redirects.
"""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("method, path, target", [
    ("GET", "/api/v1/memories/", "/api/v1/memories"),
    ("POST", "/api/v1/memories/remember/", "/api/v1/memories/remember"),
    ("GET", "/health/", "/health"),
    ("GET", "/api/v1/nothing/", None),
])
def test_trailing_slash_is_an_enveloped_404(start_server, method, path, target):
    server = start_server()
    with server.client(follow_redirects=False) as c:
        r = c.request(method, path, json={"content": "x"} if method == "POST" else None)
    assert r.status_code == 404, (r.status_code, r.headers, r.text)
    error = r.json()["error"]
    assert error["code"] == "NOT_FOUND"
    assert error["field"] == "path"
    if target is not None:
        assert target in error["message"]
        assert error["example"] == target
