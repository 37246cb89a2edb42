"""The ``engram`` command, run as a child process like a user would.

Proves: serve/status/stop through the pid file (status --json, exit 0 on stop);
memory create|get|search|list|delete and space create|list against a running server
and, with no server, against the data directory directly; import of a JSON-lines file
and export back to the same memories; backup create while serving is a consistent
copy that restore brings back, and restore refuses a non-empty target without
--force; config show reports flag > env > file > default; key create prints a key
once and stores only a hash. How: ``python -m engram`` subprocesses from this
checkout (tests/conftest.py helpers), data in pytest's temporary directories.
"""

from __future__ import annotations

import json
import sqlite3

from conftest import engram_env, run_cli, vec


def ok(proc):
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def test_memory_and_space_commands_without_a_server(tmp_path):
    data = tmp_path / "data"
    mid = ok(run_cli("memory", "create", "The mitochondria is the powerhouse of the cell", "--confidence", "0.9",
                     "--tag", "biology", data=data)).stdout.strip()
    assert mid
    got = json.loads(ok(run_cli("memory", "get", mid, "--json", data=data)).stdout)
    assert got["content"].startswith("The mitochondria") and got["tags"] == ["biology"]
    found = json.loads(ok(run_cli("memory", "search", "mitochondria", "--json", data=data)).stdout)
    assert [m["id"] for m in found["memories"]] == [mid]
    listed = json.loads(ok(run_cli("memory", "list", "--json", data=data)).stdout)
    assert listed["count"] == 1
    ok(run_cli("space", "create", "research", data=data))
    spaces = json.loads(ok(run_cli("space", "list", "--json", data=data)).stdout)
    assert {s["id"] for s in spaces["spaces"]} == {"default", "research"}
    ok(run_cli("memory", "delete", mid, data=data))
    missing = run_cli("memory", "get", mid, data=data)
    assert missing.returncode == 1 and "404" in missing.stderr
    bad = run_cli("memory", "create", "x", "--confidence", "3", data=data)
    assert bad.returncode == 1 and "confidence" in bad.stderr


def test_serve_status_stop_import_export_backup_restore(start_server, tmp_path):
    server = start_server()
    data = server.data_dir
    status = json.loads(ok(run_cli("status", "--json", data=data)).stdout)
    assert status["running"] and status["health"]["status"] == "healthy"

    src = tmp_path / "in.jsonl"
    with open(src, "w") as fh:
        for i in range(300):
            fh.write(json.dumps({"content": f"imported fact {i}", "embedding": vec(i), "confidence": 0.8,
                                 "tags": ["imp"], "timestamp": f"2024-01-01T00:{i // 60:02d}:{i % 60:02d}Z"}) + "\n")
    out = json.loads(ok(run_cli("import", str(src), "--space", "imp-space", "--batch", "128", "--json", data=data)).stdout)
    assert out["imported"] == 300

    dump = tmp_path / "out.jsonl"
    ok(run_cli("export", "--space", "imp-space", "-o", str(dump), data=data))
    rows = [json.loads(line) for line in dump.read_text().splitlines()]
    assert len(rows) == 300
    assert rows[0]["content"] == "imported fact 0" and len(rows[0]["embedding"]) == 768

    # Backup while the server runs and keeps taking writes.
    backup_dir = tmp_path / "backup-1"
    with server.client(headers={"X-Memory-Space": "imp-space"}) as c:
        assert c.post("/api/v1/memories/remember", json={"content": "before backup"}).status_code == 201
        b = json.loads(ok(run_cli("backup", "create", str(backup_dir), "--json", data=data)).stdout)
        assert "imp-space" in b["spaces"]
        assert c.post("/api/v1/memories/remember", json={"content": "after backup"}).status_code == 201
    refused = run_cli("backup", "create", str(backup_dir), data=data)
    assert refused.returncode == 1 and "not empty" in refused.stderr

    stopped = ok(run_cli("stop", data=data))
    assert "stopped" in stopped.stdout
    assert not (data / "engram.pid").exists()
    assert run_cli("status", data=data).returncode == 3

    # Restore into a fresh directory: exactly what existed at backup time.
    target = tmp_path / "restored"
    r = json.loads(ok(run_cli("restore", str(backup_dir), "--json", data=target)).stdout)
    assert r["spaces"]["imp-space"] == 301
    # The original directory is not empty: restore refuses without --force.
    refused = run_cli("restore", str(backup_dir), data=data)
    assert refused.returncode == 2 and "--force" in refused.stderr
    ok(run_cli("restore", str(backup_dir), "--force", data=data))
    listed = json.loads(ok(run_cli("memory", "list", "--space", "imp-space", "--limit", "1000", "--json", data=data)).stdout)
    contents = {m["content"] for m in listed["memories"]}
    assert "before backup" in contents and "after backup" not in contents and len(contents) == 301


def test_config_precedence(tmp_path):
    cfg = tmp_path / "engram.toml"
    cfg.write_text('port = 9000\nhost = "0.0.0.0"\nlog_level = "warning"\n')
    env = engram_env(ENGRAM_PORT="9100")
    doc = json.loads(ok(run_cli("--config", str(cfg), "config", "show", "--json", env=env)).stdout)
    assert doc["port"] == {"value": 9100, "source": "env ENGRAM_PORT"}
    assert doc["host"]["value"] == "0.0.0.0" and doc["host"]["source"].startswith("file")
    assert doc["body_bytes_max"]["source"] == "default"
    doc = json.loads(ok(run_cli("--config", str(cfg), "--data", str(tmp_path / "d"), "config", "show", "--json", env=env)).stdout)
    assert doc["data_dir"]["source"] == "flag"
    table = ok(run_cli("config", "show", "--table")).stdout
    assert "ENGRAM_DATA_DIR" in table and "ENGRAM_PORT" in table
    bad = tmp_path / "bad.toml"
    bad.write_text("prot = 1\n")
    proc = run_cli("--config", str(bad), "config", "show")
    assert proc.returncode != 0 and "unknown setting" in proc.stderr


def test_key_create_prints_once_and_stores_only_a_hash(tmp_path):
    data = tmp_path / "data"
    out = json.loads(ok(run_cli("key", "create", "--space", "agent-1", "--perm", "read,write", "--json", data=data)).stdout)
    token = out["key"]
    assert token.startswith("engram_key_") and out["spaces"] == ["agent-1"] and out["permissions"] == ["read", "write"]
    secret = token.split("_", 3)[3]
    raw = (data / "keys.sqlite").read_bytes()
    assert secret.encode() not in raw and token.encode() not in raw
    with sqlite3.connect(data / "keys.sqlite") as conn:
        cols = [r[1] for r in conn.execute("PRAGMA table_info(api_keys)")]
    assert "hash" in cols and "salt" in cols
    listing = ok(run_cli("key", "list", data=data)).stdout
    assert out["id"] in listing and secret not in listing
    assert run_cli("key", "create", "--space", "agent-1", "--perm", "fly", data=data).returncode != 0


def test_memory_create_says_when_dedup_merged_or_kept_it(tmp_path):
    data = tmp_path / "data"
    base = vec(3)
    near = [x + 0.001 for x in base]  # cosine far above 0.95
    first = ok(run_cli("memory", "create", "first", "--confidence", "0.5", "--embedding", json.dumps(base), data=data)).stdout.strip()
    merged = ok(run_cli("memory", "create", "stronger", "--confidence", "0.9", "--embedding", json.dumps(near), data=data)).stdout
    kept = ok(run_cli("memory", "create", "weaker", "--confidence", "0.1", "--embedding", json.dumps(near), data=data)).stdout
    assert merged.strip() == f"{first}  (Memory merged into near-duplicate {first})"
    assert kept.strip() == f"{first}  (Memory not stored: near-duplicate {first} kept)"
