"""``engram stop`` signals only an engram server, and status says why spaces are missing.

Proves: a stale pid file whose pid now belongs to another engram command (an import,
an export, a bench: its command line names engram but not ``serve``) is not sent
SIGTERM, and the stale file is removed; a real server is still stopped (exit 0) and
exits 0 itself; ``engram status`` against a server that needs a key, called
without one, says that its spaces are not shown and why (before, it printed a
healthy server with no spaces). How: ``python -m engram`` child processes (tests/conftest.py) and a
sleeping child whose command line reads like ``engram export``.
"""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import free_port, run_cli


def test_stop_does_not_signal_another_engram_command(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    # argv as 'engram export' would show it: the program name 'engram', no 'serve'.
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "engram", "export"])
    try:
        (data / "engram.pid").write_text(json.dumps({"pid": other.pid, "url": f"http://127.0.0.1:{free_port()}"}))
        proc = run_cli("stop", "--timeout", "2", data=data)
        assert proc.returncode == 1, (proc.stdout, proc.stderr)
        assert "not an engram server" in proc.stderr
        assert other.poll() is None, "engram stop signalled an engram command that is not the server"
        assert not (data / "engram.pid").exists()
    finally:
        other.kill()
        other.wait()


def test_stop_still_stops_a_server(start_server):
    server = start_server()
    proc = run_cli("stop", data=server.data_dir)
    assert proc.returncode == 0, proc.stderr
    assert server.proc.wait(timeout=30) == 0


def test_status_says_why_it_shows_no_spaces(start_server):
    server = start_server("--require-auth")
    proc = run_cli("status", data=server.data_dir)
    assert proc.returncode == 0, proc.stderr
    assert "spaces not shown" in proc.stdout and "401" in proc.stdout
    doc = json.loads(run_cli("status", "--json", data=server.data_dir).stdout)
    assert doc["running"] is True and "401" in doc["system_error"]


def test_status_json_has_one_shape_running_or_not(start_server, tmp_path):
    keys = {"running", "url", "data_dir", "pid", "latency_ms", "health", "system", "error", "system_error"}
    idle = run_cli("status", "--json", data=tmp_path / "nothing-here")
    assert idle.returncode == 3
    doc = json.loads(idle.stdout)
    assert set(doc) == keys and doc["running"] is False and doc["pid"] is None and doc["health"] is None
    server = start_server()
    doc = json.loads(run_cli("status", "--json", data=server.data_dir).stdout)
    assert set(doc) == keys and doc["running"] is True and doc["error"] is None
    assert isinstance(doc["pid"], int) and doc["health"]["status"] == "healthy" and doc["latency_ms"] > 0
