"""Priming reproduces Neely (1977) and its associative and repetition cousins.

Proves, on vectors built with known cosines and a clock the test moves (never
sleeping): recalling "doctor" lifts the confidence of "nurse" (cosine 0.85) and
not of "car" (cosine ~0); the lift grows with similarity and fades with a 300 ms
half-life; a second prime within the 50 ms refractory period adds nothing; two
memories recalled within 30 s of each other twice prime each other; repetition adds
5% per exposure up to 30%; and the effect can be switched off per space.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

import engram
from engram.memory.cognition import priming

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
D = 64


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(D)
    return v / np.linalg.norm(v)


def at_cosine(base: np.ndarray, cosine: float, seed: int) -> np.ndarray:
    """A unit vector whose cosine to ``base`` is exactly ``cosine`` (up to float32)."""
    noise = unit(seed)
    noise = noise - noise.dot(base) * base
    noise /= np.linalg.norm(noise)
    return (cosine * base + math.sqrt(1 - cosine**2) * noise).astype(np.float32)


def factor(hit: engram.Hit, name: str = "priming") -> float:
    return dict(hit.effects).get(name, 1.0)


def fill(sp, vectors: dict[str, np.ndarray]) -> None:
    for mid, v in vectors.items():
        sp.remember(mid, embedding=v, id=mid, confidence=0.8)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def words() -> dict[str, np.ndarray]:
    doctor = unit(1)
    return {"doctor": doctor.astype(np.float32), "nurse": at_cosine(doctor, 0.85, 2), "car": at_cosine(doctor, 0.0, 3)}


def test_doctor_primes_nurse_not_car(tmp_path: Path, clock: Clock) -> None:
    vectors = words()
    with engram.open(tmp_path / "primed", clock=clock) as db, engram.open(tmp_path / "control", clock=clock) as control_db:
        sp = db.space("agent-1", dimension=D, dedup_threshold=None)
        control = control_db.space("agent-1", dimension=D, dedup_threshold=None)
        fill(sp, vectors)
        fill(control, vectors)
        assert sp.recall(embedding=vectors["doctor"], k=1)[0].id == "doctor"
        clock.advance(milliseconds=100)
        nurse = sp.recall(embedding=vectors["nurse"], k=1)[0]
        nurse_control = control.recall(embedding=vectors["nurse"], k=1)[0]
        assert nurse.id == nurse_control.id == "nurse"
        assert nurse.confidence > nurse_control.confidence
        # The documented formula: 0.15 x (0.85 - 0.6) / 0.4, decayed 100 ms, saturated.
        boost = 0.15 * 0.25 / 0.4 * 0.5 ** (100 / 300)
        assert factor(nurse) == pytest.approx(1 + priming.combine(boost, 0.0, 0.0), rel=1e-4)
        assert nurse.confidence == pytest.approx(nurse_control.confidence * factor(nurse), rel=1e-6)
        car = sp.recall(embedding=vectors["car"], k=1)[0]
        assert car.id == "car" and factor(car) == 1.0
        assert car.confidence == pytest.approx(control.recall(embedding=vectors["car"], k=1)[0].confidence)


def test_lift_grows_with_similarity_and_fades(tmp_path: Path, clock: Clock) -> None:
    source = unit(10).astype(np.float32)
    vectors = {"source": source, "close": at_cosine(source, 0.95, 11), "far": at_cosine(source, 0.7, 12),
               "unrelated": at_cosine(source, 0.5, 13)}
    with engram.open(tmp_path / "d", clock=clock) as db:
        sp = db.space("agent-1", dimension=D, dedup_threshold=None)
        fill(sp, vectors)
        sp.recall(embedding=source, k=1)
        clock.advance(milliseconds=60)
        got = {h.id: h for h in sp.recall_many([{"embedding": vectors[m], "k": 1} for m in ("close", "far", "unrelated")]) for h in [h[0]]}
        assert factor(got["close"]) > factor(got["far"]) > 1.0
        assert factor(got["unrelated"]) == 1.0  # below cosine 0.6: no prime


def semantic_part(f: float, exposures: int) -> float:
    """Undo the saturating combination: the tanh'd semantic sum inside a priming factor."""
    return math.atanh(-math.log(2.0 - f) - priming.repetition(exposures))


def test_prime_halves_every_300_ms(tmp_path: Path, clock: Clock) -> None:
    vectors = words()
    seen = {}
    for delay_ms in (100, 400, 10_000):
        clock.now = T0
        with engram.open(tmp_path / f"d{delay_ms}", clock=clock) as db:
            sp = db.space("agent-1", dimension=D, dedup_threshold=None)
            fill(sp, vectors)
            sp.recall(embedding=vectors["doctor"], k=1)
            clock.advance(milliseconds=delay_ms)
            seen[delay_ms] = semantic_part(factor(sp.recall(embedding=vectors["nurse"], k=1)[0]), 0)
    assert seen[400] == pytest.approx(seen[100] / 2, rel=1e-4)
    assert seen[10_000] == pytest.approx(0.0, abs=1e-9)


def test_refractory_period_ignores_a_second_prime(tmp_path: Path, clock: Clock) -> None:
    vectors = words()
    factors = {}
    for gap_ms in (20, 100):
        clock.now = T0
        with engram.open(tmp_path / f"gap{gap_ms}", clock=clock) as db:
            sp = db.space("agent-1", dimension=D, dedup_threshold=None)
            fill(sp, vectors)
            sp.recall(embedding=vectors["doctor"], k=1)
            clock.advance(milliseconds=gap_ms)
            sp.recall(embedding=vectors["doctor"], k=1)
            clock.now = T0 + timedelta(milliseconds=200)
            factors[gap_ms] = factor(sp.recall(embedding=vectors["nurse"], k=1)[0])
    one_prime = 1 + priming.combine(0.15 * 0.25 / 0.4 * 0.5 ** (200 / 300), 0, 0)
    assert factors[20] == pytest.approx(one_prime, rel=1e-4)  # second prime within 50 ms: ignored
    assert factors[100] > one_prime


def test_associative_priming_after_two_co_recalls(tmp_path: Path, clock: Clock) -> None:
    a = unit(20).astype(np.float32)
    vectors = {"a": a, "b": at_cosine(a, 0.0, 21), "c": at_cosine(a, 0.0, 22)}
    with engram.open(tmp_path / "d", clock=clock) as db:
        sp = db.space("agent-1", dimension=D, dedup_threshold=None)
        fill(sp, vectors)
        for _ in range(2):  # a then b, 5 s apart, twice, 60 s between the pairs
            sp.recall(embedding=vectors["a"], k=1)
            clock.advance(seconds=5)
            sp.recall(embedding=vectors["b"], k=1)
            clock.advance(seconds=60)
        sp.recall(embedding=vectors["c"], k=1)  # c: recalled once with nobody
        clock.advance(seconds=60)
        sp.recall(embedding=vectors["a"], k=1)
        clock.advance(milliseconds=10)
        b = sp.recall(embedding=vectors["b"], k=1)[0]
        c = sp.recall(embedding=vectors["c"], k=1)[0]
        # P(b|a) = 2 co-recalls / 3 recalls of a; boost 0.15 x P, 10 ms old.
        expected = priming.combine(0.0, 0.15 * (2 / 3) * 0.5 ** (10 / 300), priming.repetition(2))
        assert factor(b) == pytest.approx(1 + expected, rel=1e-6)
        assert factor(c) == pytest.approx(1 + priming.combine(0, 0, priming.repetition(1)))


def test_repetition_adds_five_percent_per_exposure_up_to_thirty(tmp_path: Path, clock: Clock) -> None:
    with engram.open(tmp_path / "d", clock=clock) as db:
        sp = db.space("agent-1", dimension=D, dedup_threshold=None, effects=("priming",))
        sp.remember("only", embedding=unit(30).astype(np.float32), id="only", confidence=0.5)
        seen = []
        for _ in range(9):
            clock.advance(seconds=60)
            seen.append(factor(sp.recall(embedding=unit(30), k=1)[0]))
        expected = [1 + 1 - math.exp(-min(0.30, 0.05 * n)) for n in range(9)]
        assert seen == pytest.approx(expected)
        assert seen[7] == seen[8]  # capped from the 6th exposure on


def test_priming_switched_off(tmp_path: Path, clock: Clock) -> None:
    vectors = words()
    with engram.open(tmp_path / "d", clock=clock) as db:
        sp = db.space("agent-1", dimension=D, dedup_threshold=None, effects=("fan", "interference", "spacing"))
        fill(sp, vectors)
        sp.recall(embedding=vectors["doctor"], k=1)
        clock.advance(milliseconds=100)
        assert factor(sp.recall(embedding=vectors["nurse"], k=1)[0]) == 1.0


def test_forgetting_drops_priming_state(tmp_path) -> None:
    """Per-memory priming counts must not outlive the memory (the soak saw them grow)."""
    import numpy as np

    import engram

    rng = np.random.default_rng(4)
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1", dedup_threshold=None)
        ids = [sp.remember(f"m{i}", embedding=rng.standard_normal(768)) for i in range(5)]
        for _ in range(2):  # twice: every pair becomes strong enough to prime
            for mid in ids:
                sp.recall(embedding=sp.get(mid).embedding, k=1)
        assert set(ids) <= set(sp._priming.recalls) and set(ids) <= set(sp._priming.strong)
        for mid in ids:
            sp.forget(mid)
        assert sp._priming.recalls == {} and sp._priming.co_recalls == {} and sp._priming.pairs == 0
        assert sp._priming.strong == {}


def test_working_memory_spans_bound_sources_and_partners() -> None:
    """Only the SOURCES_MAX latest recalls prime, and a recall pairs with at most
    ASSOCIATIVE_PARTNERS_MAX recent memories, however fast recalls come."""
    state = priming.PrimingState()
    t0 = 1_000_000_000_000
    count = priming.SOURCES_MAX + 10
    for i in range(count):
        state.recalled(f"m{i:03d}", t0 + i * 1_000_000, embedded=True)  # one per ms, all within the lifetime
    active = state.active_sources(t0 + count * 1_000_000)
    assert [m for _, m in active] == [f"m{i:03d}" for i in range(10, count)]
    assert state.pairs == 2 * sum(min(i, priming.ASSOCIATIVE_PARTNERS_MAX) for i in range(count))


def test_a_recall_primes_only_its_strongest_associates() -> None:
    """A memory co-recalled with many others primes only the ASSOCIATIVE_PRIMED_MAX it
    was co-recalled with most often (ties by id), not all of them."""
    state = priming.PrimingState()
    t = 1_000_000_000_000
    step = 40 * 1_000_000_000  # 40 s apart: each round's pairs are the only ones in the 30 s window
    partners = [f"p{i:02d}" for i in range(priming.ASSOCIATIVE_PRIMED_MAX + 8)]
    # "hub" is co-recalled with each partner; the first eight partners twice as often.
    for rounds, names in ((2, partners), (2, partners[:8])):
        for _ in range(rounds):
            for name in names:
                state.recalled(name, t, embedded=True)
                state.recalled("hub", t + 1_000_000, embedded=True)
                t += step
    assert len(state.strong["hub"]) == len(partners)
    state.associative.clear()
    state.recalled("hub", t, embedded=True)
    counts = state.co_recalls["hub"]
    expected = sorted(partners, key=lambda b: (-counts[b], b))[: priming.ASSOCIATIVE_PRIMED_MAX]
    assert len(state.associative) == priming.ASSOCIATIVE_PRIMED_MAX  # the cap itself
    assert sorted(state.associative) == sorted(expected)
    assert set(partners[:8]) <= set(state.associative)


def test_a_memory_holds_only_its_latest_associative_primes() -> None:
    state = priming.PrimingState()
    t = 1_000_000_000_000
    for _ in range(2):  # a and b become associates
        state.recalled("a", t, embedded=True)
        state.recalled("b", t + 1_000_000, embedded=True)
        t += 40 * 1_000_000_000
    times = []
    for i in range(priming.ASSOCIATIVE_PRIMES_HELD + 5):  # a recalled every ms: b gathers primes
        state.recalled("a", t + i * 1_000_000, embedded=True)
        times.append(t + i * 1_000_000)
    held = [t0 for t0, _ in state.associative["b"]]
    assert held == times[-priming.ASSOCIATIVE_PRIMES_HELD:]
