"""Settings from a TOML file keep their exact value or are refused.

Proves: an integer setting given a fractional number in the TOML file (``port =
7432.9``, ``engine_threads_max = 2.7``) is refused with a message naming the setting,
its source and an example, instead of being truncated to another value; an integral
float is still accepted; and the CLI reports it as a usage error (exit 2) without a
traceback. How: ``load_settings`` on files in a temporary directory, and ``python -m
engram config show`` as a child process. Also: a SettingsError carries the setting's name and
source as attributes (what load_settings attributes by), its message unchanged.
"""

from __future__ import annotations

import pytest

from engram.config import SettingsError, load_settings

from conftest import run_cli


@pytest.mark.parametrize("line, name", [("port = 7432.9", "port"), ("engine_threads_max = 2.7", "engine_threads_max"),
                                        ("[server]\nbody_bytes_max = 1000.5", "body_bytes_max")])
def test_a_fractional_integer_setting_is_refused(tmp_path, line, name):
    path = tmp_path / "engram.toml"
    path.write_text(line + "\n")
    with pytest.raises(SettingsError) as err:
        load_settings({}, env={}, config_path=path)
    message = str(err.value)
    assert message.startswith(f"{name} (from file {path})")
    assert "not a valid int" in message and "example" in message


def test_an_integral_float_is_the_integer(tmp_path):
    path = tmp_path / "engram.toml"
    path.write_text("port = 7500.0\n")
    settings, sources = load_settings({}, env={}, config_path=path)
    assert settings.port == 7500 and type(settings.port) is int
    assert sources["port"] == f"file {path}"


def test_cli_reports_it_without_a_traceback(tmp_path):
    path = tmp_path / "engram.toml"
    path.write_text("port = 7432.9\n")
    proc = run_cli("--config", str(path), "config", "show")
    assert proc.returncode == 2, proc.stderr  # a usage error, like the same mistake under any other command
    assert "port (from file" in proc.stderr and "Traceback" not in proc.stderr


def test_a_relative_path_in_the_file_is_relative_to_the_file(tmp_path, monkeypatch):
    """data_dir = "store" in /etc/x/engram.toml means /etc/x/store, from any working
    directory; a flag or variable stays relative to where engram is started."""
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    conf = conf_dir / "engram.toml"
    conf.write_text('data_dir = "store"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    settings, sources = load_settings({}, env={}, config_path=str(conf))
    assert settings.data_dir == conf_dir / "store"
    assert sources["data_dir"] == f"file {conf}"
    conf.write_text(f'data_dir = "{tmp_path / "absolute"}"\n')
    assert load_settings({}, env={}, config_path=str(conf))[0].data_dir == tmp_path / "absolute"
    settings, _ = load_settings({"data_dir": "from-flag"}, env={}, config_path=str(conf))
    assert str(settings.data_dir) == "from-flag"


def test_a_value_refused_by_the_settings_checks_names_where_it_came_from(tmp_path):
    with pytest.raises(SettingsError, match=r"^durability \(from env ENGRAM_DURABILITY\): 'fast' is not allowed"):
        load_settings({}, env={"ENGRAM_DURABILITY": "fast"})
    path = tmp_path / "engram.toml"
    path.write_text('durability = "fast"\n')
    with pytest.raises(SettingsError, match=rf"^durability \(from file {path}\): "):
        load_settings({}, env={}, config_path=path)
    with pytest.raises(SettingsError, match=r"^durability \(from flag\): "):
        load_settings({"durability": "fast"}, env={})


def test_a_settings_error_carries_the_setting_and_its_source(tmp_path):
    # Attribution reads these attributes, not the message text: a problem that itself
    # contains ': ' (a path, an example) must not move where the source is named.
    with pytest.raises(SettingsError) as err:
        load_settings({}, env={"ENGRAM_LOG_LEVEL": "verbose"})
    assert (err.value.setting, err.value.source) == ("log_level", "env ENGRAM_LOG_LEVEL")
    assert str(err.value) == f"log_level (from env ENGRAM_LOG_LEVEL): {err.value.problem}"
    with pytest.raises(SettingsError) as err:
        load_settings({"port": "abc"}, env={})
    assert (err.value.setting, err.value.source) == ("port", "flag")
    with pytest.raises(SettingsError) as err:
        load_settings({}, env={}, config_path=tmp_path / "missing.toml")
    assert (err.value.setting, err.value.source) == ("config", None)
    with pytest.raises(SettingsError) as err:
        load_settings({"no_such_setting": 1}, env={})
    assert err.value.setting is None and str(err.value) == "unknown setting 'no_such_setting'"
