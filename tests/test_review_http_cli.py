"""CLI commands given odd arguments answer with a clear message and an exit code, never
a Python traceback, and never report success for something they did not do.

How: ``python -m engram`` subprocesses from this checkout (tests/conftest.py helpers).
"""

from __future__ import annotations

import json

from conftest import free_port, run_cli


def no_traceback(proc):
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stdout, proc.stdout
    return proc


def test_unreachable_url_is_an_error_message(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    for args in (("memory", "list"), ("space", "list"), ("memory", "create", "x"), ("export",)):
        proc = no_traceback(run_cli("--url", url, *args, data=tmp_path / "data"))
        assert proc.returncode == 1, (args, proc.stderr)
        assert "error:" in proc.stderr and "no answer" in proc.stderr, proc.stderr


def test_import_with_unreachable_url_is_an_error_message(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"content": "a"}) + "\n")
    proc = no_traceback(run_cli("--url", f"http://127.0.0.1:{free_port()}", "import", str(src), data=tmp_path / "data"))
    assert proc.returncode == 1 and "error:" in proc.stderr, proc.stderr


def test_non_ascii_space_and_key_are_usage_errors(tmp_path):
    data = tmp_path / "data"
    proc = no_traceback(run_cli("memory", "list", "--space", "espacé", data=data))
    assert proc.returncode == 2 and "--space" in proc.stderr, proc.stderr
    for args in (("memory", "list"), ("status",)):
        proc = no_traceback(run_cli("--api-key", "clé", *args, data=data))
        assert proc.returncode == 2 and "api" in proc.stderr.lower(), proc.stderr


def test_memory_get_and_delete_refuse_ids_that_are_not_ids(tmp_path):
    """An empty id made the CLI request /api/v1/memories/ (a 307 redirect): 'memory delete ""'
    printed "deleted" and exited 0 having deleted nothing, 'memory get ""' crashed; an id
    with '/' or '..' reached other routes (GET ../spaces printed a traceback)."""
    data = tmp_path / "data"
    for memory_id in ("", "../spaces", "a/b", " "):
        for cmd in ("get", "delete"):
            proc = no_traceback(run_cli("memory", cmd, memory_id, data=data))
            assert proc.returncode == 2, (cmd, memory_id, proc.returncode, proc.stdout, proc.stderr)
            assert "deleted" not in proc.stdout


def test_embedding_file_that_does_not_exist(tmp_path):
    proc = no_traceback(run_cli("memory", "create", "x", "--embedding", f"@{tmp_path / 'missing.json'}", data=tmp_path / "data"))
    assert proc.returncode == 2 and "--embedding" in proc.stderr, proc.stderr


def test_export_to_a_directory_that_does_not_exist(tmp_path):
    proc = no_traceback(run_cli("export", "-o", str(tmp_path / "no" / "such" / "out.jsonl"), data=tmp_path / "data"))
    assert proc.returncode in (1, 2) and "out.jsonl" in proc.stderr, proc.stderr


def test_key_create_rate_zero_is_refused_not_replaced_by_the_default(tmp_path):
    proc = no_traceback(run_cli("key", "create", "--space", "agent-1", "--rate", "0", "--json", data=tmp_path / "data"))
    assert proc.returncode == 2 and "rate" in proc.stderr, (proc.stdout, proc.stderr)


def test_config_file_that_cannot_be_read_is_a_settings_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"\xff\xfe = 1\n")
    proc = no_traceback(run_cli("--config", str(bad), "config", "show", data=tmp_path / "data"))
    assert proc.returncode != 0 and "config" in proc.stderr, proc.stderr
    from conftest import engram_env

    proc = no_traceback(run_cli("config", "show", data=tmp_path / "data", env=engram_env(ENGRAM_CONFIG=str(tmp_path))))
    assert proc.returncode != 0 and "config" in proc.stderr, proc.stderr


def test_stop_with_a_stale_pid_file_does_not_signal_another_program(tmp_path):
    """After a crash the pid file stays behind; once its pid is reused by another program,
    'engram stop' sent that program SIGTERM."""
    import subprocess
    import sys

    data = tmp_path / "data"
    data.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (data / "engram.pid").write_text(json.dumps({"pid": other.pid, "url": f"http://127.0.0.1:{free_port()}"}))
        proc = no_traceback(run_cli("stop", "--timeout", "2", data=data))
        assert proc.returncode == 1, (proc.stdout, proc.stderr)
        assert "not an engram server" in proc.stderr, proc.stderr
        assert other.poll() is None, "engram stop signalled a process that is not an engram server"
        assert not (data / "engram.pid").exists(), "the stale pid file should be removed"
    finally:
        other.kill()
        other.wait()
