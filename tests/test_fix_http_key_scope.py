"""With API keys on, a key sees only the spaces it may use.

/api/v1/admin/status listed every space to any key with read permission, and /metrics
(whose samples are labelled with space ids) answered any such key. A real server with
--require-auth holds two spaces; a key for one of them must see only that one in the
status, and get 403 in the envelope from /metrics; a key for every space sees both.
"""

from __future__ import annotations

import json

from conftest import run_cli


def make_key(data, *args):
    proc = run_cli("key", "create", *args, "--json", data=data)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["key"]


def test_status_and_metrics_keep_to_the_keys_spaces(start_server, tmp_path):
    data = tmp_path / "data"
    one = make_key(data, "--space", "agent-1", "--perm", "read,write")
    every = make_key(data, "--space", "*", "--perm", "read,write")
    server = start_server("--require-auth", data_dir=data)
    with server.client() as c:
        for space, key in (("agent-1", one), ("agent-2", every)):
            r = c.post("/api/v1/memories/remember", json={"content": "x"},
                       headers={"Authorization": f"Bearer {key}", "X-Memory-Space": space})
            assert r.status_code == 201, r.text
        auth = lambda key: {"Authorization": f"Bearer {key}"}  # noqa: E731
        r = c.get("/api/v1/admin/status", headers=auth(one))
        assert r.status_code == 200, r.text
        assert r.json()["spaces"] == ["agent-1"]
        assert c.get("/api/v1/admin/status", headers=auth(every)).json()["spaces"] == ["agent-1", "agent-2"]
        r = c.get("/metrics", headers=auth(one))
        assert r.status_code == 403
        assert r.json()["error"]["field"] == "Authorization"
        assert "agent-2" not in r.text
        r = c.get("/metrics", headers=auth(every))
        assert r.status_code == 200
        assert "agent-2" in r.text


def test_a_refused_space_blames_where_the_request_named_it(start_server, tmp_path):
    """The 403 names the header, the query parameter or the body field that named the
    space, and its example uses that same place."""
    data = tmp_path / "data"
    one = make_key(data, "--space", "agent-1", "--perm", "read,write")
    server = start_server("--require-auth", data_dir=data)
    auth = {"Authorization": f"Bearer {one}"}
    with server.client() as c:
        cases = [
            (c.get("/api/v1/memories", headers={**auth, "X-Memory-Space": "agent-2"}), "X-Memory-Space", "X-Memory-Space: agent-1"),
            (c.get("/api/v1/memories", params={"space": "agent-2"}, headers=auth), "space", "space=agent-1"),
            (c.get("/api/v1/memories", params={"memory_space_id": "agent-2"}, headers=auth), "memory_space_id", "memory_space_id=agent-1"),
            (c.post("/api/v1/memories/remember", json={"content": "x", "memory_space_id": "agent-2"}, headers=auth),
             "memory_space_id", "memory_space_id=agent-1"),
            (c.get("/api/v1/memories", headers=auth), "X-Memory-Space", "X-Memory-Space: agent-1"),  # none named: 'default'
        ]
        for r, field, example in cases:
            assert r.status_code == 403, r.text
            error = r.json()["error"]
            assert error["field"] == field, error
            assert example in json.dumps(error), error
