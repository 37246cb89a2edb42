"""A hit's confidence is what the README says it is, for a default space (every
cognitive effect on) as well as a plain one."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

import engram

README = Path(__file__).resolve().parents[1] / "README.md"
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
APPLIED = ("priming", "proactive_interference", "retroactive_interference")  # the factors multiplied in


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def test_the_readme_states_the_effects_in_the_formula() -> None:
    bullet = re.search(r"\*\*Hit confidence\*\*(.*?)\n- ", README.read_text(), re.S)
    assert bullet is not None
    text = bullet.group(1)
    for name in ("priming", "interference", "Hit.effects", "effects=()"):
        assert name in text, name


@pytest.mark.parametrize("effects", [None, ()])
def test_confidence_is_stored_x_retention_x_score_x_listed_factors(tmp_path: Path, effects) -> None:
    clock = Clock()
    settings = {} if effects is None else {"effects": effects}
    rng = np.random.default_rng(3)
    base = rng.standard_normal(32).astype(np.float32)
    with engram.open(tmp_path, clock=clock, dimension=32) as db:
        sp = db.space("agent-1", dedup_threshold=None, **settings)
        for i in range(12):
            clock.now += timedelta(minutes=7)
            sp.remember(f"m{i}", embedding=base + 0.4 * rng.standard_normal(32).astype(np.float32),
                        confidence=0.3 + 0.05 * i)
        seen_effect = False
        for round_ in range(6):
            clock.now += timedelta(seconds=20)
            for hit in sp.recall(embedding=base + 0.2 * rng.standard_normal(32).astype(np.float32), k=5):
                factors = [f for name, f in hit.effects if name in APPLIED]
                seen_effect |= bool(factors)
                expected = hit.memory.confidence * hit.retention * hit.score * math.prod(factors)
                assert hit.confidence == pytest.approx(min(1.0, max(0.0, expected)), rel=1e-9)
        assert seen_effect == (effects is None)  # the default space really applied some effect
