"""API keys over HTTP.

Proves: with keys required, a request without a key or with a bad key gets 401 (with
WWW-Authenticate), a key used on a space it does not allow or for a permission it
lacks gets 403, a key above its rate gets 429 with Retry-After, a revoked key stops
working; health stays open; keys are off by default on loopback and on by default on
a non-loopback address unless --insecure. How: keys made with ``engram key create``
in the server's data directory, a real server started with --require-auth.
"""

from __future__ import annotations

import json
import time


from conftest import engram_env, run_cli


def make_key(data, *args):
    proc = run_cli("key", "create", *args, "--json", data=data)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_keys_401_403_429_and_revoke(start_server, tmp_path):
    data = tmp_path / "data"
    rw = make_key(data, "--space", "agent-1", "--perm", "read,write")
    ro = make_key(data, "--space", "agent-1", "--perm", "read")
    slow = make_key(data, "--space", "agent-1", "--perm", "read", "--rate", "2")
    server = start_server("--require-auth", data_dir=data, env=engram_env(ENGRAM_KEY_CACHE_TTL_S="1"))
    h = lambda k: {"Authorization": f"Bearer {k['key']}", "X-Memory-Space": "agent-1"}  # noqa: E731
    with server.client() as c:
        assert c.get("/health").status_code == 200  # open without a key
        r = c.get("/api/v1/memories")
        assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHORIZED"
        assert "Bearer" in r.headers["www-authenticate"]
        # The refusal says how to send a key, from HTTP and from the CLI.
        assert r.json()["error"]["field"] == "Authorization" and "ENGRAM_API_KEY" in r.json()["error"]["allowed"]
        assert c.get("/api/v1/memories", headers={"Authorization": "Bearer engram_key_000000000000_nope"}).status_code == 401
        assert c.get("/api/v1/memories", headers={"Authorization": "Basic abc"}).status_code == 401
        assert c.get("/api/v1/memories", headers={"Authorization": f"Bearer {rw['key']}x"}).status_code == 401

        r = c.post("/api/v1/memories/remember", json={"content": "secret plan"}, headers=h(rw))
        assert r.status_code == 201, r.text
        mid = r.json()["memory_id"]
        assert c.get(f"/api/v1/memories/{mid}", headers=h(ro)).status_code == 200
        # Wrong space: 403, and nothing is revealed.
        r = c.get(f"/api/v1/memories/{mid}", headers={**h(rw), "X-Memory-Space": "agent-2"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN"
        r = c.post("/api/v1/memories/remember", json={"content": "x", "memory_space_id": "agent-2"},
                   headers={"Authorization": f"Bearer {rw['key']}"})
        assert r.status_code == 403
        # Missing permission: 403, nothing written.
        r = c.post("/api/v1/memories/remember", json={"content": "read-only key"}, headers=h(ro))
        assert r.status_code == 403
        assert c.get("/api/v1/memories", headers=h(ro)).json()["count"] == 1
        # Spaces listing shows only what the key may see.
        c.post("/api/v1/spaces", json={"id": "other-space"}, headers={"Authorization": f"Bearer {make_key(data, '--space', '*', '--perm', 'admin')['key']}"})
        assert [s["id"] for s in c.get("/api/v1/spaces", headers=h(ro)).json()["spaces"]] == ["agent-1"]

        # Rate: 2/s with a burst of 2; the third request at once is refused.
        codes = [c.get("/api/v1/memories", headers=h(slow)).status_code for _ in range(5)]
        assert codes[:2] == [200, 200] and 429 in codes
        r = next(c.get("/api/v1/memories", headers=h(slow)) for _ in range(1))
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) >= 1
            assert r.json()["error"]["code"] == "RATE_LIMITED"

        # Revoke: refused once the server's cache of verified keys (1 s here) expires.
        assert run_cli("key", "revoke", ro["id"], data=data).returncode == 0
        deadline = time.monotonic() + 15
        while c.get("/api/v1/memories", headers=h(ro)).status_code == 200:
            assert time.monotonic() < deadline, "revoked key still accepted"
            time.sleep(0.5)
        assert c.get("/api/v1/memories", headers=h(ro)).status_code == 401


def test_auth_defaults_by_address(start_server, tmp_path):
    # Loopback: off by default.
    server = start_server(data_dir=tmp_path / "a")
    with server.client() as c:
        assert c.get("/api/v1/memories").status_code == 200
    assert server.stop() == 0
    # A non-loopback bind (all addresses): required by default, off with --insecure.
    server = start_server("--host", "0.0.0.0", data_dir=tmp_path / "b")
    with server.client() as c:
        assert c.get("/api/v1/memories").status_code == 401
    assert server.stop() == 0
    server = start_server("--host", "0.0.0.0", "--insecure", data_dir=tmp_path / "c")
    with server.client() as c:
        assert c.get("/api/v1/memories").status_code == 200
