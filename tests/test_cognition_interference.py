"""Proactive (Underwood 1957) and retroactive (McGeoch 1942) interference.

Proves, with memories the test places in time and in angle (exact cosines): each
earlier similar memory (cosine >= 0.7, within 6 h) lowers a memory's recall
confidence by 5%, at most 30%; later similar learning (cosine >= 0.6, within 24 h)
lowers it by 0.15 x mean cosine x sqrt(count), at most 25%, so interference grows
with similarity and with count; dissimilar or distant memories do not interfere;
a new write refreshes the cached result; the effect can be switched off.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

import engram

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
D = 64


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(D)
    return v / np.linalg.norm(v)


def at_cosine(base: np.ndarray, cosine: float, seed: int) -> np.ndarray:
    noise = unit(seed)
    noise = noise - noise.dot(base) * base
    noise /= np.linalg.norm(noise)
    return (cosine * base + math.sqrt(1 - cosine**2) * noise).astype(np.float32)


def effect(hit: engram.Hit, name: str) -> float:
    return dict(hit.effects).get(name, 1.0)


def scenario(tmp_path: Path, name: str, others: list[tuple[float, float]], **config) -> engram.Hit:
    """A target at T0 + 1 day and ``others`` as (hours relative to it, cosine to it); the target's hit."""
    with engram.open(tmp_path / name, clock=lambda: T0 + timedelta(days=3)) as db:
        sp = db.space("agent-1", dimension=D, dedup_threshold=None, **config)
        target = unit(1)
        when = T0 + timedelta(days=1)
        sp.remember("target", embedding=target.astype(np.float32), id="target", when=when, confidence=0.8)
        for i, (hours, cosine) in enumerate(others):
            sp.remember(f"other {i}", embedding=at_cosine(target, cosine, 100 + i), when=when + timedelta(hours=hours), confidence=0.8)
        hit = sp.recall(embedding=target, k=1)[0]
        assert hit.id == "target"
        return hit


def test_proactive_grows_with_count_and_caps_at_30_percent(tmp_path: Path) -> None:
    confidences = []
    for n in range(0, 9):
        hit = scenario(tmp_path, f"p{n}", [(-0.1 * (i + 1), 0.8) for i in range(n)], effects=("interference",))
        assert effect(hit, "proactive_interference") == pytest.approx(1 - min(0.30, 0.05 * n))
        assert effect(hit, "retroactive_interference") == 1.0
        confidences.append(hit.confidence)
    assert confidences == sorted(confidences, reverse=True)
    assert confidences[6] == pytest.approx(confidences[8])  # the 30% cap
    assert confidences[1] == pytest.approx(confidences[0] * 0.95)


def test_proactive_needs_similarity_and_recency(tmp_path: Path) -> None:
    hit = scenario(tmp_path, "p", [(-1, 0.65), (-7, 0.9), (-1, 0.75), (0, 0.9)], effects=("interference",))
    # Only the one at -1 h with cosine 0.75 counts: 0.65 is below 0.7, -7 h is outside 6 h,
    # and one created at the same instant is not earlier.
    assert effect(hit, "proactive_interference") == pytest.approx(0.95)


def test_retroactive_grows_with_similarity_and_count(tmp_path: Path) -> None:
    def retro(others: list[tuple[float, float]], name: str) -> float:
        return effect(scenario(tmp_path, name, others, effects=("interference",)), "retroactive_interference")

    def expected(cosines: list[float]) -> float:
        return 1 - min(0.25, 0.15 * (sum(cosines) / len(cosines)) * math.sqrt(len(cosines)))

    low = retro([(2, 0.65), (3, 0.65)], "low")
    high = retro([(2, 0.9), (3, 0.9)], "high")
    assert low == pytest.approx(expected([0.65, 0.65]), abs=1e-5)
    assert high == pytest.approx(expected([0.9, 0.9]), abs=1e-5)
    assert high < low < 1.0  # more similar, more interference
    by_count = [retro([(h + 1, 0.7) for h in range(n)], f"n{n}") for n in (1, 2, 3)]
    assert by_count[0] > by_count[1] > by_count[2]
    assert by_count[1] == pytest.approx(expected([0.7, 0.7]), abs=1e-5)
    assert retro([(h + 1, 0.95) for h in range(8)], "cap") == pytest.approx(0.75)
    # Dissimilar (0.55) and too late (25 h) learning does not interfere.
    assert retro([(1, 0.55), (25, 0.95)], "none") == 1.0


def test_a_new_memory_refreshes_the_cached_result(tmp_path: Path) -> None:
    clock_time = T0 + timedelta(days=3)
    with engram.open(tmp_path / "d", clock=lambda: clock_time) as db:
        sp = db.space("agent-1", dimension=D, dedup_threshold=None)
        target = unit(1)
        sp.remember("target", embedding=target.astype(np.float32), id="target", when=T0)
        assert effect(sp.recall(embedding=target, k=1)[0], "retroactive_interference") == 1.0
        sp.remember("later", embedding=at_cosine(target, 0.9, 5), when=T0 + timedelta(hours=1))
        assert effect(sp.recall(embedding=target, k=1)[0], "retroactive_interference") == pytest.approx(1 - 0.15 * 0.9, abs=1e-5)


def test_interference_switched_off(tmp_path: Path) -> None:
    hit = scenario(tmp_path, "off", [(-1, 0.9), (1, 0.9)], effects=("priming", "spacing"))
    assert hit.effects == ()
    assert hit.confidence == pytest.approx(0.8 * hit.retention * hit.score)
