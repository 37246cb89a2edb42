"""`engram serve --cluster` with real processes: two servers join over SWIM on loopback.

Proves: the second server joins through --seeds; /cluster/nodes on both lists both
nodes alive with their HTTP address; /cluster/health reports a connected partition
state; `engram cluster members` prints the table; when one server stops (SIGTERM)
the other sees it as left, not failed; a server without --cluster answers as a
single node; membership metrics are exported.
"""

from __future__ import annotations

import json
import time

from conftest import free_port, run_cli


def wait_for(predicate, timeout_s: float = 15.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def test_two_servers_form_a_cluster(start_server, tmp_path) -> None:
    gossip_a, gossip_b = free_port(), free_port()
    a = start_server("--cluster", "--node-name", "node-a", "--bind", f"127.0.0.1:{gossip_a}", data_dir=tmp_path / "a")
    b = start_server("--cluster", "--node-name", "node-b", "--bind", f"127.0.0.1:{gossip_b}",
                     "--seeds", f"127.0.0.1:{gossip_a}", data_dir=tmp_path / "b")

    def alive_names(server):
        with server.client() as c:
            doc = c.get("/cluster/nodes").json()
        return sorted(n["id"] for n in doc["nodes"] if n["state"] == "alive")

    assert wait_for(lambda: alive_names(a) == ["node-a", "node-b"] and alive_names(b) == ["node-a", "node-b"])
    with a.client() as c:
        nodes = {n["id"]: n for n in c.get("/cluster/nodes").json()["nodes"]}
        assert nodes["node-b"]["api_address"].endswith(str(b.port))
        health = c.get("/cluster/health").json()
        assert health["mode"] == "cluster" and health["partition"]["state"] == "connected"
        metrics = c.get("/metrics").text
        assert "engram_cluster_up 1.0" in metrics and 'engram_cluster_members{state="alive"} 2.0' in metrics
    out = run_cli("--url", a.url, "cluster", "members")
    assert out.returncode == 0 and "node-b" in out.stdout, out.stderr
    assert b.stop() == 0

    def b_left():
        with a.client() as c:
            states = {n["id"]: n["state"] for n in c.get("/cluster/nodes").json()["nodes"]}
        return states.get("node-b") == "left"

    assert wait_for(b_left)


def test_single_node_server_answers_cluster_routes(start_server) -> None:
    server = start_server()
    with server.client() as c:
        doc = c.get("/cluster/nodes").json()
        assert doc["mode"] == "single-node" and doc["count"] == 1
        assert c.get("/cluster/health").json()["confidence_penalty"]["factor"] == 1.0
    out = run_cli("--url", server.url, "cluster", "members", "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["count"] == 1
