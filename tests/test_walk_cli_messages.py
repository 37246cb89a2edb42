"""What a new user sees for the obvious mistakes while following the README.

Proves: a bench against a port where no server listens is one error line naming the
URL and 'engram serve' (was a traceback); a bad --clients, --space or --dimension is a
usage error before any request; a server-side 400 shown by the CLI carries what is
allowed, not only the example; memory search --limit 0 names 'limit' (was
'max_results', a parameter the user never gave); an unknown log level is refused (the
server quietly logged at info); --expires without a unit is refused (a bare 30 meant
30 seconds); an empty listing has no blank first line; restore or serve on a locked
directory says who holds it and the CLI's way out (both repeated the engine's hint to
call engram.open on another directory); the ramp's stop line names a flag that exists.
How: ``python -m engram`` subprocesses over temporary data directories (the CLI
serves them itself when no server runs), and load_settings / find_knee directly.
"""

from __future__ import annotations

import pytest
from conftest import free_port, run_cli

import engram
from engram.bench.ramp import find_knee
from engram.config import SettingsError, load_settings


def test_bench_against_no_server_is_one_error_line(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    for args in (("bench", "http", "--duration", "1s", "--preload", "10"), ("bench", "bulk", "--count", "10")):
        proc = run_cli("--url", url, *args, data=tmp_path / "data")
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr
        assert f"no answer from {url}" in proc.stderr and "engram serve" in proc.stderr


@pytest.mark.parametrize("args, option, allowed", [
    (("--clients", "a,b"), "--clients", "comma-separated list"),
    (("--space", "Bad"), "--space", "3-64 of a-z"),
    (("--dimension", "0"), "--dimension", "--dimension 768"),
])
def test_bench_bad_option_is_a_usage_error_before_any_request(tmp_path, args, option, allowed):
    # No server at this URL: only a check made before any request can give exit 2.
    proc = run_cli("--url", f"http://127.0.0.1:{free_port()}", "bench", "http", "--duration", "1s", *args,
                   data=tmp_path / "data")
    assert proc.returncode == 2, proc.stderr
    assert option in proc.stderr and allowed in proc.stderr


def test_server_errors_shown_by_the_cli_say_what_is_allowed(tmp_path):
    proc = run_cli("memory", "list", "--limit", "5000", data=tmp_path / "data")
    assert proc.returncode == 1
    assert "limit: 5000 is out of range; allowed: an integer in [1, 1000]" in proc.stderr


def test_search_limit_error_names_limit(tmp_path):
    proc = run_cli("memory", "search", "Paris", "--limit", "0", data=tmp_path / "data")
    assert proc.returncode == 1
    assert "limit: 0 is out of range" in proc.stderr and "max_results" not in proc.stderr


def test_unknown_log_level_is_refused():
    with pytest.raises(SettingsError, match=r"log_level \(from flag\): 'verbose' is not allowed; allowed: debug, info, warning, error"):
        load_settings({"log_level": "verbose"}, env={})
    assert load_settings({"log_level": "WARNING"}, env={})[0].log_level == "WARNING"  # the server upper-cases it


def test_key_expiry_needs_a_unit(tmp_path):
    proc = run_cli("key", "create", "--space", "agent-1", "--expires", "30", data=tmp_path / "data")
    assert proc.returncode == 2
    assert "'30' has no unit" in proc.stderr and "--expires 30d" in proc.stderr
    assert run_cli("key", "list", data=tmp_path / "data").stdout == "no keys\n"


def test_empty_listing_has_no_blank_line(tmp_path):
    proc = run_cli("memory", "list", "--space", "empty-space", data=tmp_path / "data")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "(0 of 0)\n"


def test_restore_into_a_locked_directory_says_to_stop_the_holder(tmp_path):
    data, source, backup = tmp_path / "data", tmp_path / "source", tmp_path / "backup"
    assert run_cli("memory", "create", "hello", data=source).returncode == 0
    made = run_cli("backup", "create", str(backup), data=source)
    assert made.returncode == 0, made.stderr
    with engram.open(data):  # this process holds the lock, as a server would
        proc = run_cli("restore", "--force", str(backup), data=data)
    assert proc.returncode == 2
    assert "is in use by another process" in proc.stderr and "engram stop" in proc.stderr
    assert "engram.open(" not in proc.stderr


def test_ramp_stop_line_names_a_real_flag():
    step = {"clients": 1, "ok": 10, "errors": 0, "p50_ms": 1.0, "p99_ms": 2.0, "throughput_per_s": 100.0}
    rule = find_knee([step], tail_ratio=10)["rule"]
    assert "--clients of engram bench http --ramp" in rule


def test_serve_on_a_directory_in_use_says_how_out_from_the_cli(tmp_path):
    data = tmp_path / "data"
    with engram.open(data):  # another program has the directory open
        proc = run_cli("serve", "--port", "0", data=data, timeout=60)
    assert proc.returncode == 2
    assert "is in use: another process" in proc.stderr and "engram serve --data" in proc.stderr
    assert "engram.open(" not in proc.stderr


def test_a_cli_command_on_a_directory_held_by_another_process_says_whom_and_what_to_do(tmp_path):
    import os

    data = tmp_path / "data"
    with engram.open(data):  # this test process holds the lock, as an embedding program would
        proc = run_cli("memory", "list", data=data)
    assert proc.returncode == 1
    assert f"in use by another process (pid {os.getpid()})" in proc.stderr and "--url" in proc.stderr
    assert "engram.open" not in proc.stderr  # the engine's advice to Python callers, not to CLI users
