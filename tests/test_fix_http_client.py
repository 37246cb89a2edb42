"""The CLI's HTTP client counts only a 2xx as success.

httpx does not follow redirects by default, so a 307 came back as a response whose
body the client returned as if the request had worked. Each test answers the client
through httpx.MockTransport with one status and checks that ClientError is raised
with that status and a message that says what to do.
"""

from __future__ import annotations

import httpx
import pytest

from engram.api.client import ApiClient, ClientError


def _client(status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> ApiClient:
    client = ApiClient("http://127.0.0.1:1")
    client.http = httpx.Client(base_url=client.base_url, transport=httpx.MockTransport(
        lambda request: httpx.Response(status, headers=headers, content=body)))
    return client


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_is_an_error_naming_the_target(status):
    client = _client(status, {"location": "http://elsewhere.example/api/v1/memories/remember"})
    with pytest.raises(ClientError) as info:
        client.post("/api/v1/memories/remember", json={"content": "x"})
    assert info.value.status == status
    assert "elsewhere.example" in str(info.value)
    assert "--url" in str(info.value)


def test_not_modified_without_body_is_an_error():
    with pytest.raises(ClientError) as info:
        _client(304).get("/api/v1/memories")
    assert info.value.status == 304


def test_success_still_returns_the_body():
    assert _client(201, {"content-type": "application/json"}, b'{"memory_id": "m1"}').post("/x") == {"memory_id": "m1"}
