"""CLI commands given odd arguments answer with a clear message and an exit code, never
a Python traceback, and never report success for something they did not do.

How: ``python -m engram`` subprocesses from this checkout (tests/conftest.py helpers).
"""

from __future__ import annotations

import json

from conftest import run_cli


def no_traceback(proc):
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stdout, proc.stdout
    return proc


def test_config_file_that_cannot_be_read_is_a_settings_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"\xff\xfe = 1\n")
    proc = no_traceback(run_cli("--config", str(bad), "config", "show", data=tmp_path / "data"))
    assert proc.returncode != 0 and "config" in proc.stderr, proc.stderr
    from conftest import engram_env

    proc = no_traceback(run_cli("config", "show", data=tmp_path / "data", env=engram_env(ENGRAM_CONFIG=str(tmp_path))))
    assert proc.returncode != 0 and "config" in proc.stderr, proc.stderr
