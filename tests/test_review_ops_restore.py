"""``engram restore`` never trades a good data directory for a bad backup.

Proves: a backup whose file was damaged after it was written, or that lost a file (an
unfinished or half-copied backup), is refused with a message naming the file, and
the data directory keeps every memory it had, even with --force; a backup kept
inside the data directory is refused instead of deleted by --force; --force on a
good backup replaces the old contents as a whole (no old space survives beside the
restored ones); an API key revoked after the backup is still revoked after restoring
it; a running server's directory is refused and keeps serving. How:
``python -m engram`` child processes (tests/conftest.py), a real server for the
backup taken while serving and for the lock.
"""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli, vec


def ok(proc):
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def _fill(data: Path, space: str, contents: list[str]) -> None:
    for i, text in enumerate(contents):
        ok(run_cli("memory", "create", text, "--space", space, "--embedding", json.dumps(vec(i)), data=data))


def _contents(data: Path, space: str) -> list[str]:
    doc = json.loads(ok(run_cli("memory", "list", "--space", space, "--json", "--limit", "100", data=data)).stdout)
    return sorted(m["content"] for m in doc["memories"])


def _backup(tmp_path: Path, name: str) -> Path:
    source = tmp_path / "source"
    _fill(source, "alpha", ["backed up one", "backed up two"])
    backup = tmp_path / name
    ok(run_cli("backup", "create", str(backup), data=source))
    return backup


def _precious(tmp_path: Path) -> Path:
    data = tmp_path / "precious"
    _fill(data, "beta", ["precious one", "precious two", "precious three"])
    return data


def test_a_damaged_backup_is_refused_and_the_data_directory_kept(tmp_path):
    backup = _backup(tmp_path, "damaged")
    wal = sorted((backup / "alpha" / "wal").iterdir())[0]
    raw = bytearray(wal.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # a flipped bit in the middle of the log
    wal.write_bytes(bytes(raw))
    data = _precious(tmp_path)

    proc = run_cli("restore", str(backup), "--force", data=data)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert wal.name in proc.stderr and "nothing was changed" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert _contents(data, "beta") == ["precious one", "precious three", "precious two"]
    assert not (data / "alpha").exists()


def test_a_backup_missing_a_file_is_refused(tmp_path):
    backup = _backup(tmp_path, "partial")
    (backup / "alpha" / "space.json").unlink()
    data = _precious(tmp_path)
    proc = run_cli("restore", str(backup), "--force", data=data)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "alpha/space.json is missing" in proc.stderr
    assert _contents(data, "beta") == ["precious one", "precious three", "precious two"]


def test_an_unfinished_backup_without_its_manifest_is_refused(tmp_path):
    backup = _backup(tmp_path, "unfinished")
    (backup / "BACKUP.json").unlink()  # what a backup cut short before its last step looks like
    target = tmp_path / "fresh"
    proc = run_cli("restore", str(backup), data=target)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "BACKUP.json" in proc.stderr and "did not finish" in proc.stderr
    assert not target.exists() or not any(p.name != "LOCK" for p in target.iterdir())


def test_a_backup_inside_the_data_directory_is_refused_not_deleted(tmp_path):
    data = _precious(tmp_path)
    backup = data / "backups" / "b1"
    ok(run_cli("backup", "create", str(backup), data=_precious(tmp_path / "other")))
    proc = run_cli("restore", str(backup), "--force", data=data)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "overlap" in proc.stderr
    assert (backup / "BACKUP.json").exists()
    assert _contents(data, "beta") == ["precious one", "precious three", "precious two"]


def test_force_replaces_the_whole_directory_and_leaves_no_staging(tmp_path):
    backup = _backup(tmp_path, "good")
    data = _precious(tmp_path)
    out = json.loads(ok(run_cli("restore", str(backup), "--force", "--json", data=data)).stdout)
    assert out["spaces"] == {"alpha": 2}
    assert sorted(p.name for p in data.iterdir() if p.name != "LOCK") == ["alpha"]
    assert not (data / "BACKUP.json").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert _contents(data, "alpha") == ["backed up one", "backed up two"]


def test_restore_onto_a_running_servers_directory_is_refused(start_server, tmp_path):
    backup = _backup(tmp_path, "good")
    server = start_server()
    with server.client() as c:
        assert c.post("/api/v1/memories/remember", json={"content": "live", "embedding": vec(7)}).status_code == 201
    for flags in (["--force"], []):  # without --force too: the running server is what to fix first
        proc = run_cli("restore", str(backup), *flags, data=server.data_dir)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "stop the server first" in proc.stderr and "--force" not in proc.stderr
    with server.client() as c:
        listed = c.get("/api/v1/memories").json()
    assert [m["content"] for m in listed["memories"]] == ["live"]


def test_a_key_revoked_since_the_backup_stays_revoked(tmp_path):
    data = tmp_path / "data"
    made = json.loads(ok(run_cli("key", "create", "--space", "alpha", "--json", data=data)).stdout)
    kept = json.loads(ok(run_cli("key", "create", "--space", "alpha", "--json", data=data)).stdout)
    _fill(data, "alpha", ["one fact"])
    backup = tmp_path / "backup"
    ok(run_cli("backup", "create", str(backup), data=data))
    ok(run_cli("key", "revoke", made["id"], data=data))  # say it leaked after the backup

    out = json.loads(ok(run_cli("restore", str(backup), "--force", "--json", data=data)).stdout)
    assert out["keys_kept_revoked"] == [made["id"]]
    keys = {k["id"]: k["revoked"] for k in json.loads(ok(run_cli("key", "list", "--json", data=data)).stdout)}
    assert keys == {made["id"]: True, kept["id"]: False}
