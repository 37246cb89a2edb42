"""A restore that died while swapping contents is noticed by the next restore or serve.

``engram restore`` moves the data directory's entries into ``.<name>.replaced-<pid>``
beside it, then the backup's entries in. A crash between the two leaves the old
contents there and the data directory a possible mix. Proves, by making that state on
disk by hand: ``engram restore`` and ``engram serve`` on that directory stop with exit
2 and a message naming the leftover and both ways out, and change nothing; a leftover
of a swap that finished (renamed ``.complete`` before deletion) is deleted and the
restore goes ahead, leaving nothing beside the data directory.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.conftest import run_cli, vec


def ok(proc):
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def _backup(tmp_path: Path) -> Path:
    source = tmp_path / "source"
    ok(run_cli("memory", "create", "backed up", "--space", "alpha", "--embedding", json.dumps(vec(1)), data=source))
    backup = tmp_path / "backup"
    ok(run_cli("backup", "create", str(backup), data=source))
    return backup


def _crashed_mid_swap(tmp_path: Path) -> tuple[Path, Path]:
    """A data directory whose restore (pid 4242) moved part of its contents out and died."""
    data = tmp_path / "data"
    ok(run_cli("memory", "create", "old one", "--space", "beta", "--embedding", json.dumps(vec(2)), data=data))
    ok(run_cli("memory", "create", "old two", "--space", "gamma", "--embedding", json.dumps(vec(3)), data=data))
    leftover = tmp_path / ".data.replaced-4242"
    leftover.mkdir()
    os.replace(data / "beta", leftover / "beta")
    return data, leftover


def _listing(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.name != "LOCK")


def test_restore_and_serve_stop_at_a_leftover_of_an_interrupted_swap(tmp_path):
    backup = _backup(tmp_path)
    data, leftover = _crashed_mid_swap(tmp_path)
    before = (_listing(data), _listing(leftover))
    for args in (("restore", str(backup), "--force"), ("serve", "--port", "1")):
        proc = run_cli(*args, data=data)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        message = proc.stderr
        assert str(leftover) in message and "(process 4242) that stopped while swapping" in message, message
        assert "To finish the restore" in message and "To go back instead" in message, message
        assert (_listing(data), _listing(leftover)) == before
    assert "run this restore again" in run_cli("restore", str(backup), "--force", data=data).stderr
    assert "run 'engram restore --force BACKUP' again" in run_cli("serve", data=data).stderr


def test_a_leftover_of_a_finished_swap_is_deleted(tmp_path):
    backup = _backup(tmp_path)
    data = tmp_path / "data"
    ok(run_cli("memory", "create", "old", "--space", "beta", "--embedding", json.dumps(vec(2)), data=data))
    done = tmp_path / ".data.replaced-777.complete"
    (done / "beta").mkdir(parents=True)
    ok(run_cli("restore", str(backup), "--force", data=data))
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".data.")) == []
    listed = json.loads(ok(run_cli("memory", "list", "--space", "alpha", "--json", data=data)).stdout)
    assert [m["content"] for m in listed["memories"]] == ["backed up"]
