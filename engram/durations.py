"""Durations typed on a command line: '30s', '500ms', '2m', '12h', '30d' -> seconds.

One parser for every option that takes a duration (``engram key create --expires``,
``engram bench http --duration/--warmup``, ``engram.bench.ramp --step``, the simulator's
``--duration``), so they accept the same forms and word their errors alike. A number is
digits with an optional decimal part, then optionally a unit (ms, s, m or min, h, d; any
case); without a unit it counts seconds, unless the caller says a unit is required.

It must stay light: ``engram key create`` imports it, and it must not pull in numpy, trio
or anything else heavy just to read "30d". Only the standard library is imported here.
"""

from __future__ import annotations

import math
import re

__all__ = ["parse_duration_s"]

SECONDS_PER_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}

_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|min|s|m|h|d)?")


def parse_duration_s(text: str, option: str, *, require_unit: bool = False) -> float:
    """Seconds in ``text`` (zero or more, finite); ``option`` names the option in errors.

    ``require_unit``: refuse a bare number. Where the natural unit is not seconds
    (``--expires 30`` meant as 30 days) reading it as seconds would give a silently
    wrong answer, so the caller asks for the unit to be spelt out.

    Raises ValueError (its message names ``option``, what is allowed and an example) for
    text that is not a duration, or for a bare number when ``require_unit`` is set.
    """
    match = _DURATION_RE.fullmatch(text.strip().lower())
    seconds = math.nan if match is None else float(match.group(1)) * SECONDS_PER_UNIT[match.group(2) or "s"]
    if not 0 <= seconds < math.inf:
        raise ValueError(f"{option}: {text!r} is not a duration of zero or more; example: 30s, 500ms, 2m, 12h, 30d")
    if require_unit and match is not None and match.group(2) is None:
        raise ValueError(f"{option}: {text!r} has no unit; allowed: a number with ms, s, m, h or d; "
                         f"example: {option} 30d")
    return seconds
