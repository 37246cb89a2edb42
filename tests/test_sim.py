"""The simulator replays a cluster exactly from a seed, and its checkers pass on many seeds.

How: a fixed list of seeds (each draws node count, preset, loss, delay, duplication,
reorder, partitions, crashes and restarts, stalls and late joins) must exit 0, and so must
seeds that once failed, with their preset forced; one fresh
seed, printed so a failure can be replayed, must too. The same seed must give the same
``event-log sha256`` line in-process and in a subprocess with another PYTHONHASHSEED.
Mutations of the core (no refutation, no reconnect) must make the checkers fail, which
proves the checkers can see the failures they are for.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest

from engram.net.swim import core
from engram.testing import sim

FIXED_SEEDS = [1, 2, 3, 5, 7, 11, 13, 17, 19, 23]


@pytest.mark.parametrize("seed", FIXED_SEEDS)
def test_fixed_seed_passes(seed: int) -> None:
    result = sim.Simulation(sim.draw_options(seed)).run()
    assert result.exit_code == 0, f"seed {seed}: {result.failures}"


# Seeds that once failed. Under the first aligned order (which adopted the step of whoever
# probed us) seeds 13 (local) and 24 (lan) detected a crash after the bound and 48 (local)
# declared a live member dead; 13 is in FIXED_SEEDS. Then the same seed numbers and 27
# with each preset forced (the other draws change with it): test_min 27 and 48 had false
# deaths with nack confirmations on. Drawn seed 1784325144 (local, 5 nodes) declared a
# live member dead when the accused and then its judge stalled for about 2.4 s each: the
# judge's tick ran before it read the refutation waiting in its buffer (Membership.tick).
# Drawn seed 946289866 (test_min) restarted a crashed member before the detection bound
# and the checker still demanded its detection (check_detection).
# Drawn seed 1772893878 (local) started a joiner whose only seed crashed for good during a
# partition; it retried the dead seed forever (the simulated driver now looks again).
REGRESSION_SEEDS = [(None, 24), (None, 48), (None, 1784325144), (None, 946289866), (None, 1772893878), ("test_min", 13), ("test_min", 24), ("test_min", 27),
                    ("test_min", 48), ("local", 13), ("local", 24), ("lan", 13), ("lan", 24), ("lan", 48)]


@pytest.mark.parametrize(("preset", "seed"), REGRESSION_SEEDS)
def test_regression_seed_passes(preset: str | None, seed: int) -> None:
    result = sim.Simulation(sim.draw_options(seed, preset=preset)).run()
    assert result.exit_code == 0, f"{preset or 'drawn preset'} seed {seed}: {result.failures}"


def test_fresh_seed_passes() -> None:
    seed = random.SystemRandom().randrange(1, 2**31)
    print(f"fresh simulator seed: {seed} (replay: python -m engram.testing.sim --seed {seed})")
    result = sim.Simulation(sim.draw_options(seed)).run()
    assert result.exit_code == 0, f"seed {seed}: {result.failures}"


def test_same_seed_same_log_across_processes() -> None:
    options = sim.draw_options(7)
    first = sim.Simulation(options).run().digest
    assert sim.Simulation(options).run().digest == first
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-m", "engram.testing.sim", "--seed", "7"], env=env,
                         capture_output=True, text=True, timeout=120)
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("options: seed=7 ")
    assert lines[-1] == f"event-log sha256: {first}"
    assert out.returncode == 0
    assert sim.Simulation(sim.draw_options(8)).run().digest != first


def test_cli_reports_failure_with_seed_and_exit_code(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # With refutation disabled a stalled or suspected node cannot clear its name. Seed 2
    # (10 nodes, test_min, a stall and duplicated packets) suspects live members under either
    # probe order.
    monkeypatch.setattr(core.Membership, "_refute", lambda self, *args, **kwargs: None)
    code = sim.main(["--seed", "2"])
    out = capsys.readouterr().out
    assert code in (sim.EXIT_FALSE_DEATH, sim.EXIT_DISAGREEMENT)
    assert "seed=2" in out and "reproduce: python -m engram.testing.sim --seed 2" in out
    assert out.strip().splitlines()[-1].startswith("event-log sha256: ")


def test_partition_without_reconnect_fails_to_converge(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core.Membership, "_on_timer_reconnect", lambda self, key, now_ms: None)
    # The other healing path: a member told it is dead answers the stale accusation.
    monkeypatch.setattr(core.Membership, "_answer_stale_accusation", lambda self, source: None)
    # And news pushed early enough to reach members only just declared dead.
    config_for = sim._config_for
    monkeypatch.setattr(sim, "_config_for", lambda *args: config_for(*args).replace(
        eager_gossip=False, tell_the_accused=False))
    # Whether a side still hears of the other by luck (a late rumour, a join) depends on
    # the seed (1 and 4 converge by luck since suspicions wait out a stall); these four
    # converge with the healing paths (test_partition_heals_on_the_seeds_that_need_it)
    # and most of them must end in disagreement without.
    codes = [sim.Simulation(sim.draw_options(seed, partition="halves", crashes=0)).run().exit_code
             for seed in SEEDS_THAT_NEED_HEALING]
    assert codes.count(sim.EXIT_DISAGREEMENT) >= 3, codes


SEEDS_THAT_NEED_HEALING = (2, 7, 8, 9)


def test_partition_heals_on_the_seeds_that_need_it() -> None:
    codes = [sim.Simulation(sim.draw_options(seed, partition="halves", crashes=0)).run().exit_code
             for seed in SEEDS_THAT_NEED_HEALING]
    assert codes == [sim.EXIT_OK] * len(SEEDS_THAT_NEED_HEALING), codes


def test_partition_heals_with_reconnect() -> None:
    for partition in ("halves", "bridge", "isolate"):
        options = sim.draw_options(2, partition=partition, crashes=0)
        result = sim.Simulation(options).run()
        assert result.exit_code == 0, (partition, result.failures)


def test_crash_is_detected_everywhere_fault_free() -> None:
    options = sim.draw_options(4, preset="test_min", nodes=8, loss=0.0, partition="none", crashes=2,
                               restart=False, stalls=0, duplicate=0.0, reorder=0.0)
    result = sim.Simulation(options).run()
    assert result.exit_code == 0, result.failures
    assert len(result.detections) == 2
    assert all(last is not None for _, _, _, last, _ in result.detections)
    assert not result.false_deaths


def test_duration_parsing() -> None:
    assert sim._parse_duration("600s") == 600_000
    assert sim._parse_duration("10m") == 600_000
    assert sim._parse_duration("250ms") == 250
    with pytest.raises(Exception):
        sim._parse_duration("soon")


def test_detection_bound_applies_to_crashes_that_stayed_down_past_it() -> None:
    # Seed 946289866 (test_min) restarted a victim 1,149 ms after its crash, before its
    # suspicion had timed out anywhere; the checker called that a missed detection
    # although the bound (4,000 ms) had not run out.
    options = sim.draw_options(4, preset="test_min", nodes=5, joins=0, partition="none")
    simulation = sim.Simulation(options)
    simulation.result.detections = [("n001", 4111, None, None, 1149)]
    sim.check_detection(simulation)
    assert simulation.result.failures == []
    for unseen in [("n001", 4111, None, None, 5000), ("n001", 4111, None, None, None), ("n001", 4111, 300, 4500, None)]:
        simulation.result.detections = [unseen]
        simulation.result.failures = []
        sim.check_detection(simulation)
        assert [kind for kind, _ in simulation.result.failures] == ["undetected"], unseen
