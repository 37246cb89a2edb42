"""The original Engram's documented curl examples, replayed against this server.

Proves: an existing client's commands work unchanged (only the port differs): the
quickstart's remember and recall by text, the API reference's "capital+France"
recall, the multi-tenancy guide's X-Memory-Space remember/recall and space listing,
and recall by embedding through the query string. How: run the real ``curl`` binary
against a server process; each command is the documented one with
``localhost:7432`` replaced by the test server's address.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess

import pytest

from conftest import vec

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def curl(server, command: str) -> dict:
    command = command.replace("http://localhost:7432", server.url)
    args = shlex.split(command)
    assert args[0] == "curl"
    proc = subprocess.run(args + ["-s", "-w", "\n%{http_code}"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    body, _, code = proc.stdout.rpartition("\n")
    return {"status": int(code), "body": json.loads(body) if body.strip() else None}


def recalled(body: dict) -> list[dict]:
    return [m for part in ("vivid", "associated", "reconstructed") for m in body["memories"][part]]


def test_quickstart(module_server):
    r = curl(module_server, """curl -X POST http://localhost:7432/api/v1/memories/remember \\
      -H "Content-Type: application/json" \\
      -d '{
        "content": "The mitochondria is the powerhouse of the cell",
        "confidence": 0.95
      }'""".replace("\\\n", " "))
    assert r["status"] == 201 and r["body"]["memory_id"]
    r = curl(module_server, 'curl -X GET "http://localhost:7432/api/v1/memories/recall?query=mitochondria"')
    assert r["status"] == 200
    hits = recalled(r["body"])
    assert hits[0]["content"] == "The mitochondria is the powerhouse of the cell"
    assert hits[0]["confidence"]["value"] > 0.9 and hits[0]["confidence"]["category"] == "High"


def test_api_reference_recall(module_server):
    r = curl(module_server, """curl -X POST http://localhost:7432/api/v1/memories/remember -H "Content-Type: application/json" -d '{"content": "The capital of France is Paris", "confidence": 0.9}'""")
    assert r["status"] == 201
    r = curl(module_server, 'curl "http://localhost:7432/api/v1/memories/recall?query=capital+France"')
    assert r["status"] == 200
    assert recalled(r["body"])[0]["content"] == "The capital of France is Paris"
    assert r["body"]["recall_confidence"]["category"] in ("High", "Medium", "Low")


def test_memory_spaces_guide(module_server):
    r = curl(module_server, """curl -X POST http://localhost:7432/api/v1/memories/remember \
      -H "Content-Type: application/json" \
      -H "X-Memory-Space: research" \
      -d '{"content": "CRISPR enables precise gene editing", "confidence": 0.95}'""")
    assert r["status"] == 201 and r["body"]["memory_space_id"] == "research"
    r = curl(module_server, """curl -H "X-Memory-Space: research" "http://localhost:7432/api/v1/memories/recall?query=gene%20editing\"""")
    assert [m["content"] for m in recalled(r["body"])] == ["CRISPR enables precise gene editing"]
    r = curl(module_server, """curl -X POST http://localhost:7432/api/v1/memories/remember \
      -H "Content-Type: application/json" \
      -H "X-Memory-Space: production" \
      -d '{"content": "First production memory", "confidence": 0.95}'""")
    assert r["status"] == 201
    r = curl(module_server, "curl http://localhost:7432/api/v1/spaces")
    ids = {s["id"] for s in r["body"]["spaces"]}
    assert {"research", "production"} <= ids
    # The default space does not see the research memory.
    r = curl(module_server, 'curl "http://localhost:7432/api/v1/memories/recall?query=CRISPR"')
    assert recalled(r["body"]) == []
    # Isolation check from the troubleshooting guide: another space answers 404.
    rid = curl(module_server, """curl -X POST http://localhost:7432/api/v1/memories -H "X-Memory-Space: space_a" -H "Content-Type: application/json" -d '{"id":"test_isolation_a","content":"isolated","confidence":0.9}'""")
    assert rid["status"] == 201 and rid["body"]["memory_id"] == "test_isolation_a"
    r = curl(module_server, 'curl -H "X-Memory-Space: space_b" http://localhost:7432/api/v1/memories/test_isolation_a')
    assert r["status"] == 404 and r["body"]["error"]["code"] == "MEMORY_NOT_FOUND"
    r = curl(module_server, 'curl -H "X-Memory-Space: space_a" http://localhost:7432/api/v1/memories/test_isolation_a')
    assert r["status"] == 200 and r["body"]["content"] == "isolated"


def test_recall_by_embedding(module_server):
    v = json.dumps(vec(42))
    body = json.dumps({"content": "a memory with an embedding", "embedding": vec(42), "confidence": 0.9})
    r = curl(module_server, f"""curl -X POST http://localhost:7432/api/v1/memories/remember -H "Content-Type: application/json" -H "X-Memory-Space: vectors" -d '{body}'""")
    assert r["status"] == 201
    r = curl(module_server, f"""curl -G http://localhost:7432/api/v1/memories/recall -H "X-Memory-Space: vectors" --data-urlencode 'embedding={v}' --data-urlencode 'max_results=5'""")
    assert r["status"] == 200
    hits = recalled(r["body"])
    assert hits[0]["content"] == "a memory with an embedding" and hits[0]["similarity_score"] > 0.999
    # The same vector unencoded in the URL, as a naive client sends it.
    raw = "[" + ",".join(f"{x:.6f}" for x in vec(42)) + "]"
    r = curl(module_server, f"""curl -g "http://localhost:7432/api/v1/memories/recall?space=vectors&embedding={raw}\"""")
    assert r["status"] == 200 and recalled(r["body"])[0]["content"] == "a memory with an embedding"
