"""The one duration parser behind --expires, bench --duration/--warmup, ramp --step and sim --duration.

Proves: each unit scales to seconds (ms, s, m, min, h, d; any case; decimals); a bare
number is seconds unless the caller requires a unit, and then it is refused with a
message naming the option, the allowed units and an example; text that is not a
duration of zero or more (negative, nan, inf, words, overflow) is refused naming the
option; the simulator keeps its integer-millisecond interface; and the module imports
nothing heavy, so ``engram key create`` does not pay for numpy or trio to read "30d".
How: direct calls, and a child interpreter that imports the module on its own.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engram.durations import parse_duration_s
from engram.testing import sim


@pytest.mark.parametrize(("text", "seconds"), [
    ("250ms", 0.25), ("30s", 30.0), ("2m", 120.0), ("2min", 120.0), ("12h", 43_200.0), ("30d", 2_592_000.0),
    ("1.5h", 5_400.0), ("0s", 0.0), (" 30D ", 2_592_000.0), ("5 s", 5.0), (".5s", 0.5), ("45", 45.0),
])
def test_units_scale_to_seconds(text, seconds):
    assert parse_duration_s(text, "--x") == seconds


def test_bare_number_is_seconds_unless_a_unit_is_required():
    assert parse_duration_s("30", "--warmup") == 30.0
    with pytest.raises(ValueError) as caught:
        parse_duration_s("30", "--expires", require_unit=True)
    message = str(caught.value)
    assert message.startswith("--expires: '30' has no unit")
    assert "allowed: a number with ms, s, m, h or d" in message
    assert message.endswith("example: --expires 30d")
    assert parse_duration_s("30d", "--expires", require_unit=True) == 2_592_000.0


@pytest.mark.parametrize("text", ["soon", "", "-1s", "nan", "inf", "1e3s", "3 days", "s", "1" * 400 + "d", "30x"])
def test_text_that_is_not_a_duration_is_refused_naming_the_option(text):
    for require_unit in (False, True):
        with pytest.raises(ValueError) as caught:
            parse_duration_s(text, "--step", require_unit=require_unit)
        assert str(caught.value) == (f"--step: {text!r} is not a duration of zero or more; "
                                     "example: 30s, 500ms, 2m, 12h, 30d")


def test_simulator_counts_whole_milliseconds():
    assert sim._parse_duration("600s") == 600_000
    assert sim._parse_duration("0.29s") == 290
    with pytest.raises(ValueError, match="--duration: 'soon'"):
        sim._parse_duration("soon")


def test_the_parser_imports_nothing_heavy():
    # Loaded by path: importing it as engram.durations would run engram/__init__, which
    # loads the engine (numpy) whatever this module does.
    path = Path(__file__).resolve().parent.parent / "engram" / "durations.py"
    code = ("import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('durations', {str(path)!r})\n"
            "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
            "assert module.parse_duration_s('30d', '--expires', require_unit=True) == 2592000.0\n"
            "print(sorted(m for m in ('numpy', 'trio', 'httpx', 'click') if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
