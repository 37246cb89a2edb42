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
