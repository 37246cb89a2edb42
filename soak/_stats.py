"""Numbers for the soak: a bounded latency histogram and the leak verdict.

The histogram keeps log-spaced buckets (1% wide, 10 µs to 1000 s), so a 7-day run
at any rate holds a fixed ~1,900 counters per operation and still answers P50/P99
within 1%. The leak verdict fits one RSS slope to the samples of the last two thirds
of the run with a separate intercept for each server lifetime: a SIGKILL and restart
resets RSS, and pooling lifetimes that way measures growth with uptime instead of
the sawtooth the restarts draw. Compaction draws a sawtooth of its own within a
lifetime (RSS climbs as rows are appended, drops when a space compacts); a slope over
part of one tooth is its climb, not a leak, so when the cycle is known the fit is made
to the peak of each whole cycle, and a run with no lifetime spanning two cycles is
called too short to judge. It must not import matplotlib or the engine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

_LOW_S = 1e-5
_GROWTH = 1.01
_BUCKETS = int(math.log(1e8) / math.log(_GROWTH)) + 2


class Histogram:
    """Latencies in seconds, bucketed; percentiles answered at the bucket's upper edge."""

    __slots__ = ("counts", "total", "max_s")

    def __init__(self) -> None:
        self.counts = [0] * _BUCKETS
        self.total = 0
        self.max_s = 0.0

    def add(self, seconds: float) -> None:
        if seconds <= _LOW_S:
            index = 0
        else:
            index = min(_BUCKETS - 1, 1 + int(math.log(seconds / _LOW_S) / math.log(_GROWTH)))
        self.counts[index] += 1
        self.total += 1
        if seconds > self.max_s:
            self.max_s = seconds

    def merge(self, other: "Histogram") -> None:
        for i, c in enumerate(other.counts):
            if c:
                self.counts[i] += c
        self.total += other.total
        self.max_s = max(self.max_s, other.max_s)

    def percentile_ms(self, q: float) -> float:
        """The q-quantile (0 < q <= 1) in ms; NaN when empty."""
        assert 0.0 < q <= 1.0
        if self.total == 0:
            return float("nan")
        rank = max(1, math.ceil(q * self.total))
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank:
                upper_s = _LOW_S * _GROWTH ** i
                return min(upper_s, self.max_s) * 1e3
        return self.max_s * 1e3


@dataclass(frozen=True, kw_only=True, slots=True)
class LeakVerdict:
    """RSS growth with uptime over the last two thirds of a run.

    slope_mb_per_h: pooled within-lifetime least-squares slope.
    growth_mb: slope times the analysed window's summed uptime span, the growth the
        fit attributes to the window.
    leak: slope above ``threshold_mb_per_h`` and growth above ``noise_mb`` (RSS moves
        by a few MB from allocator noise alone; a short run must not call that a leak).
    judged: False when the run is too short to tell a leak from the compaction
        sawtooth (then ``leak`` is False and ``reason`` says so).
    """

    slope_mb_per_h: float
    growth_mb: float
    window_s: float
    samples: int
    lifetimes: int
    threshold_mb_per_h: float
    noise_mb: float
    leak: bool
    reason: str
    judged: bool = True


def leak_verdict(times_s: Sequence[float], rss_mb: Sequence[float], lifetimes: Sequence[int], *,
                 threshold_mb_per_h: float, noise_mb: float, cycle_s: float = 0.0) -> LeakVerdict:
    """Fit RSS = a_lifetime + slope * t over samples with t in the last two thirds.

    ``lifetimes`` labels each sample with the server process it came from. A lifetime
    with fewer than two samples in the window carries no slope information and is dropped.
    ``cycle_s`` > 0 is the period of the sawtooth compaction draws: each lifetime's window
    is then cut into whole cycles from its first sample and the fit is made to the peak
    of each (a plateau's peaks stay level, a leak's climb); lifetimes with fewer than two
    whole cycles are dropped, and when none is left the verdict is not judged.
    """
    assert len(times_s) == len(rss_mb) == len(lifetimes)
    assert threshold_mb_per_h > 0
    assert noise_mb >= 0
    assert cycle_s >= 0
    if not times_s:
        return LeakVerdict(slope_mb_per_h=0.0, growth_mb=0.0, window_s=0.0, samples=0, lifetimes=0,
                           threshold_mb_per_h=threshold_mb_per_h, noise_mb=noise_mb, leak=False,
                           reason="no samples")
    start, end = min(times_s), max(times_s)
    cut = start + (end - start) / 3.0
    groups: dict[int, list[tuple[float, float]]] = {}
    for t, r, life in zip(times_s, rss_mb, lifetimes):
        if t >= cut:
            groups.setdefault(life, []).append((t, r))
    if cycle_s > 0:
        longest_s = max((max(t for t, _ in pts) - min(t for t, _ in pts) for pts in groups.values()), default=0.0)
        groups = {life: peaks for life, pts in groups.items() if len(peaks := _cycle_peaks(pts, cycle_s)) >= 2}
        if not groups:
            return LeakVerdict(slope_mb_per_h=0.0, growth_mb=0.0, window_s=longest_s, samples=0, lifetimes=0,
                               threshold_mb_per_h=threshold_mb_per_h, noise_mb=noise_mb, leak=False, judged=False,
                               reason=f"too short to judge: no server lifetime spans two compaction cycles "
                                      f"(2 x {cycle_s:.0f} s) in the last two thirds of the run (the longest spans "
                                      f"{longest_s:.0f} s); RSS climbs within a cycle without leaking, so run longer "
                                      f"or kill less often (--kill-every)")
    sxx = 0.0
    sxy = 0.0
    span_s = 0.0
    used = 0
    kept = 0
    for life in sorted(groups):
        pts = groups[life]
        if len(pts) < 2:
            continue
        kept += 1
        used += len(pts)
        mt = sum(t for t, _ in pts) / len(pts)
        mr = sum(r for _, r in pts) / len(pts)
        sxx += sum((t - mt) ** 2 for t, _ in pts)
        sxy += sum((t - mt) * (r - mr) for t, r in pts)
        span_s += max(t for t, _ in pts) - min(t for t, _ in pts)
    if sxx <= 0.0:
        return LeakVerdict(slope_mb_per_h=0.0, growth_mb=0.0, window_s=span_s, samples=used, lifetimes=kept,
                           threshold_mb_per_h=threshold_mb_per_h, noise_mb=noise_mb, leak=False,
                           reason="too few samples per server lifetime in the last two thirds to fit a slope")
    slope_mb_per_s = sxy / sxx
    slope_mb_per_h = slope_mb_per_s * 3600.0
    growth_mb = slope_mb_per_s * span_s
    leak = slope_mb_per_h > threshold_mb_per_h and growth_mb > noise_mb
    if leak:
        reason = (f"RSS grows {slope_mb_per_h:.1f} MB/h (> {threshold_mb_per_h:g} MB/h) and "
                  f"{growth_mb:.1f} MB over the window (> {noise_mb:g} MB noise)")
    elif slope_mb_per_h <= threshold_mb_per_h:
        reason = f"RSS slope {slope_mb_per_h:.1f} MB/h is within {threshold_mb_per_h:g} MB/h"
    else:
        reason = (f"RSS slope {slope_mb_per_h:.1f} MB/h exceeds {threshold_mb_per_h:g} MB/h but the fitted growth "
                  f"{growth_mb:.1f} MB is within the {noise_mb:g} MB noise floor (run longer to decide)")
    return LeakVerdict(slope_mb_per_h=slope_mb_per_h, growth_mb=growth_mb, window_s=span_s, samples=used,
                       lifetimes=kept, threshold_mb_per_h=threshold_mb_per_h, noise_mb=noise_mb, leak=leak, reason=reason)


def _cycle_peaks(pts: list[tuple[float, float]], cycle_s: float) -> list[tuple[float, float]]:
    """(middle, peak RSS) of each whole cycle of a lifetime's samples, cut from its first
    sample; the part after the last whole cycle is left out (its peak may be still to come)."""
    first = min(t for t, _ in pts)
    last = max(t for t, _ in pts)
    whole = int((last - first) // cycle_s)
    peaks: dict[int, float] = {}
    for t, r in pts:
        index = int((t - first) // cycle_s)
        if index < whole:
            peaks[index] = max(peaks.get(index, r), r)
    return [(first + (index + 0.5) * cycle_s, peaks[index]) for index in sorted(peaks)]


def parse_duration_s(text: str) -> float:
    """'90s', '2m', '2h', '7d', '500ms' or a bare number of seconds."""
    t = text.strip().lower()
    units = (("ms", 1e-3), ("s", 1.0), ("m", 60.0), ("h", 3600.0), ("d", 86400.0))
    for suffix, scale in units:
        if t.endswith(suffix) and not (suffix == "s" and t.endswith("ms")):
            number = t[: -len(suffix)]
            break
    else:
        number, scale = t, 1.0
    try:
        value = float(number) * scale
    except ValueError:
        raise ValueError(f"{text!r} is not a duration; examples: 90s, 2m, 2h, 7d") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{text!r} is not a duration; examples: 90s, 2m, 2h, 7d")
    return value
