"""The key database and its backups are readable by their owner only.

Proves: ``engram key create`` makes ``keys.sqlite`` with mode 0600 even under a
permissive umask (022), and ``engram backup create`` copies it with the same mode, so
that other users of the host cannot read the salted hashes (an offline guessing
target) or which key may do what. How: ``python -m engram`` child processes
(tests/conftest.py) started under umask 022; file modes read with os.stat.
"""

from __future__ import annotations

import json
import os
import stat

import pytest

from conftest import run_cli


@pytest.fixture
def permissive_umask():
    old = os.umask(0o022)  # children inherit it: the common default on servers
    yield
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_key_database_and_its_backup_are_private(tmp_path, permissive_umask):
    data = tmp_path / "data"
    proc = run_cli("key", "create", "--space", "agent-1", "--perm", "read,write", "--json", data=data)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["key"].startswith("engram_key_")
    assert _mode(data / "keys.sqlite") == 0o600

    proc = run_cli("memory", "create", "one fact", "--space", "agent-1", data=data)
    assert proc.returncode == 0, proc.stderr
    backup = tmp_path / "backup"
    proc = run_cli("backup", "create", str(backup), data=data)
    assert proc.returncode == 0, proc.stderr
    assert _mode(backup / "keys.sqlite") == 0o600

    restored = tmp_path / "restored"
    proc = run_cli("restore", str(backup), data=restored)
    assert proc.returncode == 0, proc.stderr
    assert _mode(restored / "keys.sqlite") == 0o600


def test_a_bad_space_for_a_key_is_refused_with_an_example(tmp_path):
    data = tmp_path / "data"
    proc = run_cli("key", "create", "--space", "a", "--perm", "read,write", data=data)  # too short: ids have 3+ characters
    assert proc.returncode == 2, proc.stderr
    assert "'a' is not a space id" in proc.stderr and "example: --space agent-1" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (data / "keys.sqlite").exists()  # nothing was created
