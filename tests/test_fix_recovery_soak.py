"""The soak's leak rule is not fooled by the RSS sawtooth compaction draws.

Proves: with the compaction cycle known, a sawtooth whose peaks stay level is no leak
(the old slope fit over part of a tooth called it one), steady growth is a leak, and a
run whose lifetimes are shorter than two cycles is reported as too short to judge
instead of failing; the soak estimates the cycle from its load (about 160 s a space at
the defaults). How: leak_verdict on made-up RSS series, one sample every 10 s.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "soak"))

from _stats import leak_verdict  # noqa: E402
from run import compaction_cycle_s, default_kill_every_s, turnover_s  # noqa: E402

CYCLE_S = 160.0


def sawtooth(lifetime_s: float, lifetimes: int, growth_mb_per_h: float = 0.0, phase_s: float = 0.0):
    """RSS climbing 40 MB over each compaction cycle and dropping back, plus any steady growth."""
    times, rss, life = [], [], []
    for n in range(lifetimes):
        start = n * (lifetime_s + 20.0)
        for i in range(int(lifetime_s // 10)):
            uptime = i * 10.0
            times.append(start + uptime)
            rss.append(400.0 + 40.0 * (((uptime + phase_s) % CYCLE_S) / CYCLE_S) + growth_mb_per_h * uptime / 3600.0)
            life.append(n + 1)
    return times, rss, life


def test_a_sawtooth_with_level_peaks_is_no_leak() -> None:
    times, rss, life = sawtooth(1200.0, 2)
    v = leak_verdict(times, rss, life, threshold_mb_per_h=20, noise_mb=32, cycle_s=CYCLE_S)
    assert v.judged and not v.leak, v.reason
    assert abs(v.slope_mb_per_h) < 1


def test_the_slope_over_part_of_a_tooth_was_a_false_leak() -> None:
    # What an 8-minute run sees: three lifetimes shorter than a cycle, each one climb.
    times, rss, life = sawtooth(150.0, 3)
    old = leak_verdict(times, rss, life, threshold_mb_per_h=20, noise_mb=32)
    assert old.leak  # the rule without the cycle: a false FAIL
    new = leak_verdict(times, rss, life, threshold_mb_per_h=20, noise_mb=32, cycle_s=CYCLE_S)
    assert not new.leak and not new.judged
    assert new.reason.startswith("too short to judge")


def test_steady_growth_under_the_sawtooth_is_a_leak() -> None:
    times, rss, life = sawtooth(1800.0, 2, growth_mb_per_h=200.0)
    v = leak_verdict(times, rss, life, threshold_mb_per_h=20, noise_mb=32, cycle_s=CYCLE_S)
    assert v.judged and v.leak, v.reason
    assert 190 < v.slope_mb_per_h < 210


def test_lifetimes_shorter_than_two_cycles_are_too_short_to_judge() -> None:
    times, rss, life = sawtooth(160.0, 3, growth_mb_per_h=500.0)  # the 8-minute default: a kill every 160 s
    v = leak_verdict(times, rss, life, threshold_mb_per_h=20, noise_mb=32, cycle_s=CYCLE_S)
    assert not v.judged and not v.leak
    assert "too short to judge" in v.reason and "2 x 160 s" in v.reason


def test_the_cycle_the_soak_expects_at_its_defaults() -> None:
    # 200 ops/s, 25% forgets, 12 spaces, 2,000 live: ~4.2 forgets/s a space, 667 dead rows a cycle.
    assert round(compaction_cycle_s(2000, 200 * 0.25 / 12)) == 160
    assert compaction_cycle_s(150, 80 * 0.25 / 12) > 500  # small spaces wait for 1,024 rows
    assert compaction_cycle_s(2000, 0.0) == 0.0


def test_a_long_soak_kills_seldom_enough_for_the_leak_rule_to_judge() -> None:
    cycle = compaction_cycle_s(2000, 200 * 0.25 / 12)  # the defaults: 160 s
    two_hours = default_kill_every_s(7200.0, cycle)
    assert two_hours == 3 * cycle  # three whole cycles per lifetime: two peaks at least
    assert default_kill_every_s(7 * 86400.0, cycle) == 3 * cycle
    assert default_kill_every_s(7200.0, 10.0) == 180.0  # never more often than every 3 min
    assert default_kill_every_s(120.0, cycle) == 40.0  # a short run still kills (a third of it)
    assert default_kill_every_s(7200.0, 0.0) == 180.0  # nothing forgotten: no cycle


def test_lifetimes_leave_room_for_the_live_set_to_turn_over_before_the_leak_fit() -> None:
    # At the defaults the live set is replaced every 480 s, and state that follows it
    # (priming's co-recall pairs) fills over that time: a 45-minute soak that killed every
    # 480 s fitted only that climb and called it a 436 MB/h leak.
    forgets = 200 * 0.25 / 12
    settle = turnover_s(2000, forgets)
    assert round(settle) == 480
    assert turnover_s(2000, 0.0) == 0.0
    cycle = compaction_cycle_s(2000, forgets)
    assert default_kill_every_s(7200.0, cycle, settle) == settle + 3 * cycle  # 960 s: warm-up, then three cycles
    assert default_kill_every_s(2700.0, cycle, settle) == 900.0  # a third of a 45-minute run
