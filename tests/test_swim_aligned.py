"""Clock-aligned probing: every member probed once per interval, every node's round complete.

How: cores with aligned probing that know the same members are asked for their probe
target at their own tick times, each with its own clock offset and phase. For one slot of
the shared clock the targets must be a permutation of the ring with no fixed point, and
each node's n - 1 consecutive ticks must reach every other member. The completeness guard
is checked where the clock cannot help: a clock that jumps at random (gaps stay within
2(n - 1) ticks, one more than memberlist's worst case), a raised awareness score (a plain
round robin, each member every n - 1 ticks) and one tick read off a wrong clock (the order
is aligned again a few ticks later). In a fault-free simulated cluster every member is
probed in every interval (largest gap under two intervals plus the clocks' skew) while
memberlist's shuffled order, run through the same check, leaves gaps well over two
intervals: the check can fail. Hosts' clocks seconds apart, and a cluster where half the
nodes probe in the shuffled order (as Serf peers do), still pass every simulator checker.
"""

from __future__ import annotations

import itertools
import random
from collections import defaultdict

import pytest

from engram.net.swim import codec
from engram.net.swim import messages as m
from engram.net.swim.config import SwimConfig
from engram.net.swim.core import Membership
from engram.testing import sim

VSN = bytes([1, 5, 2, 2, 5, 4])


def _alive(name: str, host: int) -> bytes:
    return codec.encode_message(m.Alive(1, name, bytes([10, 0, host // 250, host % 250 + 1]), 7946, b"", VSN))


def _cluster(count: int, seed: int, **overrides: object) -> list[Membership]:
    """``count`` cores that all know each other, with clock offsets of up to +-20 ms."""
    rng = random.Random(seed)
    names = [f"n{i:03d}" for i in range(count)]
    rng.shuffle(names)  # the ring is sorted by name, not by creation order
    cores = []
    for index, name in enumerate(names):
        config = SwimConfig.lan(node_name=name, advertise_host=f"10.0.{index // 250}.{index % 250 + 1}",
                                aligned_probing=True, **overrides)
        cores.append(Membership(config, random.Random(rng.random()), 0, clock_offset_ms=rng.randint(-20, 20)))
    for core in cores:
        for index, name in enumerate(names):
            if name != core.name:
                core.receive(("10.0.0.200", 7946), _alive(name, index), 0)
        core.poll_output()
        core.poll_events()
    return cores


def _target(core: Membership, slot: int) -> str:
    member = core._next_probe_target(core._slot_start_ms(slot))
    assert member is not None
    return member.name


@pytest.mark.parametrize("count", [2, 3, 4, 7, 16, 33])
def test_one_slot_is_a_permutation_without_fixed_point(count: int) -> None:
    cores = _cluster(count, seed=count)
    names = sorted(core.name for core in cores)
    for slot in range(1000, 1000 + 3 * count):
        targets = {core.name: _target(core, slot) for core in cores}
        assert all(prober != target for prober, target in targets.items())
        assert sorted(targets.values()) == names, f"slot {slot}: some member probed twice, another never"


@pytest.mark.parametrize("count", [2, 5, 12])
def test_each_node_reaches_every_member_in_n_minus_1_ticks(count: int) -> None:
    cores = _cluster(count, seed=100 + count)
    for core in cores:
        others = sorted(c.name for c in cores if c is not core)
        for start in (50, 51, 77):
            seen = [_target(core, slot) for slot in range(start, start + count - 1)]
            assert sorted(seen) == others


def test_late_and_early_ticks_stay_in_their_slot() -> None:
    cores = _cluster(9, seed=9)
    core = cores[0]
    interval = core.config.probe_interval_ms
    on_time = [core._next_probe_target(core._slot_start_ms(s)).name for s in range(200, 208)]  # type: ignore[union-attr]
    twin = _cluster(9, seed=9)[0]
    wobbly = [twin._next_probe_target(twin._slot_start_ms(s) + (-1) ** s * (interval // 2 - 1)).name  # type: ignore[union-attr]
              for s in range(200, 208)]
    assert wobbly == on_time


def _gaps(core: Membership, ticks: int, now_for_tick) -> dict[str, list[int]]:
    last: dict[str, int] = {}
    gaps: dict[str, list[int]] = defaultdict(list)
    for tick in range(1, ticks + 1):
        member = core._next_probe_target(now_for_tick(tick))
        assert member is not None
        if member.name in last:
            gaps[member.name].append(tick - last[member.name])
        last[member.name] = tick
    return gaps


def test_a_jumping_clock_never_breaks_completeness() -> None:
    count = 20
    core = _cluster(count, seed=5)[0]
    jumps = random.Random(7)

    def now_for_tick(tick: int) -> int:
        core.set_clock_offset(jumps.randrange(-10**9, 10**9))
        return tick * 1000

    gaps = _gaps(core, 40 * count, now_for_tick)
    assert len(gaps) == count - 1
    # After the first rounds (members that entered the ring together are served one per tick).
    assert max(g for member_gaps in gaps.values() for g in member_gaps[3:]) <= 2 * (count - 1)


def test_while_degraded_a_node_probes_in_plain_round_robin() -> None:
    count = 11
    core = _cluster(count, seed=11)[0]
    core.awareness.apply_delta(3)
    # Rounds stretched x4 tick every fourth slot: along the ring they would reach only the
    # members at even steps (half of them) and leave the rest to the guard.
    gaps = _gaps(core, 10 * count, lambda tick: core._slot_start_ms(4 * tick) + 1)
    assert {g for member_gaps in gaps.values() for g in member_gaps} == {count - 1}


def _probe_log(monkeypatch: pytest.MonkeyPatch, aligned: bool, seed: int) -> tuple[sim.Simulation, list[tuple[int, str, int, str]]]:
    """A fault-free 24-node LAN run; every probe as (sim ms, prober, prober's slot, target)."""
    log: list[tuple[int, str, int, str]] = []
    original = Membership._next_probe_target

    def logged(self: Membership, now_ms: int):  # type: ignore[no-untyped-def]
        member = original(self, now_ms)
        if member is not None:
            log.append((now_ms, self.name, self._slot(now_ms), member.name))
        return member

    monkeypatch.setattr(Membership, "_next_probe_target", logged)
    config_for = sim._config_for
    monkeypatch.setattr(sim, "_config_for", lambda *args: config_for(*args).replace(aligned_probing=aligned))
    options = sim.draw_options(seed, nodes=24, preset="lan", duration_ms=120_000, loss=0.0, duplicate=0.0,
                               reorder=0.0, partition="none", crashes=0, stalls=0, joins=0)
    run = sim.Simulation(options)
    result = run.run()
    assert result.exit_code == 0, result.failures
    return run, log


def _largest_gap_ms(log: list[tuple[int, str, int, str]], after_ms: int) -> int:
    times: dict[str, list[int]] = defaultdict(list)
    for at_ms, _prober, _slot, target in log:
        if at_ms >= after_ms:
            times[target].append(at_ms)
    return max(b - a for series in times.values() for a, b in itertools.pairwise(series))


def test_fault_free_cluster_probes_every_member_every_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    run, log = _probe_log(monkeypatch, aligned=True, seed=31)
    names = sorted(node.name for node in run.nodes)
    settled_ms = 30_000  # formed (joins and their rumours are over)
    by_slot: dict[int, list[str]] = defaultdict(list)
    rounds: dict[str, list[str]] = defaultdict(list)
    for at_ms, prober, slot, target in log:
        if at_ms >= settled_ms:
            by_slot[slot].append(target)
            rounds[prober].append(target)
    full_slots = sorted(by_slot)[1:-1]  # the first and last slot are cut by the window
    assert len(full_slots) > 60
    for slot in full_slots:
        assert sorted(by_slot[slot]) == names, f"slot {slot}"
    for prober, targets in rounds.items():
        others = [n for n in names if n != prober]
        for start in range(0, len(targets) - len(others), 7):
            assert sorted(targets[start:start + len(others)]) == others, prober
    skew = run.options.clock_skew_ms
    assert _largest_gap_ms(log, settled_ms) < 2 * 1000 + 2 * skew


def test_the_gap_check_fails_for_memberlists_shuffled_order(monkeypatch: pytest.MonkeyPatch) -> None:
    run, log = _probe_log(monkeypatch, aligned=False, seed=31)
    assert _largest_gap_ms(log, 30_000) > 2 * 1000 + 2 * run.options.clock_skew_ms


def test_alignment_recovers_after_a_clock_jump() -> None:
    """One tick read off a wrong clock probes out of turn; a few ticks later the node is back
    on the aligned order for good (a guard that fired one tick early would pass the
    displacement on from member to member forever)."""
    count = 13
    core = _cluster(count, seed=13)[0]
    offset = core._clock_offset_ms
    for slot in range(100, 100 + 3 * count):
        _target(core, slot)
    for jump in (400_000, -7_000, 123_000):
        now_ms = core._slot_start_ms(100 + 3 * count)
        core.set_clock_offset(offset + jump)
        core._next_probe_target(now_ms)
        core.set_clock_offset(offset)
        before = core.metrics.probes_aligned
        ticks = 8 * count
        for slot in range(101 + 3 * count, 101 + 3 * count + ticks):
            _target(core, slot)
        off_order = ticks - (core.metrics.probes_aligned - before)
        assert off_order <= 2, f"jump {jump}: {off_order} ticks off the aligned order"


@pytest.mark.parametrize("seed", [3, 5, 13, 24])
def test_wild_clocks_only_cost_alignment(seed: int) -> None:
    """Hosts' wall clocks seconds apart (many probe intervals): the order is no longer a
    permutation per interval, but every checker (agreement, no false death, detection in
    time) still passes."""
    result = sim.Simulation(sim.draw_options(seed, clock_skew_ms=5000)).run()
    assert result.exit_code == 0, result.failures


@pytest.mark.parametrize("seed", [2, 11, 24])
def test_mixed_probe_orders_pass_every_checker(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every other node probes in memberlist's shuffled order, as Serf or memberlist peers
    of a mixed cluster do (the wire is the same): the aligned ones lose some alignment,
    nothing else."""
    config_for = sim._config_for
    monkeypatch.setattr(sim, "_config_for", lambda preset, name, host: config_for(preset, name, host).replace(
        aligned_probing=name[-1:] in "02468"))
    result = sim.Simulation(sim.draw_options(seed, nodes=9, crashes=2)).run()
    assert result.exit_code == 0, result.failures


def test_churn_leaves_no_state_behind() -> None:
    """Members that join, die and are reaped, over and over: the aligned order's state (and
    the shuffled order's list, which it does not use) stays the size of the membership."""
    core = _cluster(3, seed=1)[0]
    now_ms = 0
    for round_no in range(120):
        name = f"churn{round_no:03d}"
        core.receive(("10.0.0.200", 7946), _alive(name, 100 + round_no % 100), now_ms)
        core.receive(("10.0.0.200", 7946), codec.encode_message(m.Dead(1, name, "n000")), now_ms)
        now_ms += core.config.gossip_to_the_dead_ms + 5 * core.config.probe_interval_ms
        for step in range(0, 5 * core.config.probe_interval_ms, 100):
            core.tick(now_ms - 5 * core.config.probe_interval_ms + step)
        core.poll_output()
        core.poll_events()
    assert len(core.members()) <= 4
    assert len(core._probe_order) <= 4 and len(core._last_probed) <= 3
