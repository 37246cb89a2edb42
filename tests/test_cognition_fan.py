"""The fan effect (Anderson 1974) and the recall modes it shapes.

Proves, on a graph the test builds: a memory with one association passes all of
its activation to it, one with three passes a third to each (or 1/sqrt(3) with the
"sqrt" divisor); a memory with fan 1 has an estimated retrieval time of 1150 ms and
one with fan 3 of 1290 ms (1150 + 70 x (fan - 1)), so it is "retrieved faster";
spreading and hybrid recalls say how each hit was reached; switched off, the fan
neither divides activation nor reports a time; ``sp.spread`` keeps the reference rule.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

import engram

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
D = 32


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(D).astype(np.float32)
    return v / np.linalg.norm(v)


def build(sp) -> None:
    """'one' has a single association (to t1); 'three' has three (to t2, t3, t4); all weights 0.9."""
    for i, mid in enumerate(["one", "three", "t1", "t2", "t3", "t4"]):
        sp.remember(mid, embedding=unit(i), id=mid, confidence=1.0)
    sp.associate("one", "t1", 0.9)
    for t in ("t2", "t3", "t4"):
        sp.associate("three", t, 0.9)


def spreading(sp, seed: str) -> dict[str, engram.Hit]:
    # threshold 0.9: only the seed itself matches; the rest is reached by spreading.
    return {h.id: h for h in sp.recall(embedding=sp.get(seed).embedding, k=10, threshold=0.9, mode="spreading")}


@pytest.mark.parametrize("divisor, expected_ratio", [("fan", 1 / 3), ("sqrt", 1 / math.sqrt(3))])
def test_more_associations_less_activation_each(tmp_path: Path, divisor: str, expected_ratio: float) -> None:
    with engram.open(tmp_path / "d", clock=lambda: T0) as db:
        sp = db.space("agent-1", dimension=D, dedup_threshold=None, fan_divisor=divisor)
        build(sp)
        from_one = spreading(sp, "one")
        from_three = spreading(sp, "three")
        assert set(from_one) == {"one", "t1"}
        assert set(from_three) == {"three", "t2", "t3", "t4"}
        a1 = from_one["t1"].activation
        assert a1 == pytest.approx(from_one["one"].activation * 0.9 * math.exp(-0.7), rel=1e-5)
        for t in ("t2", "t3", "t4"):
            assert from_three[t].activation == pytest.approx(a1 * expected_ratio, rel=1e-5)
            assert from_three[t].retrieval_path == "spreading"
            assert dict(from_three[t].effects)["fan"] == pytest.approx(expected_ratio, rel=1e-5)
            assert from_three[t].confidence < from_one["t1"].confidence
        assert from_three["three"].retrieval_path == "similarity"


def test_fan_one_is_retrieved_faster_than_fan_three(tmp_path: Path) -> None:
    with engram.open(tmp_path / "d", clock=lambda: T0) as db:
        sp = db.space("agent-1", dimension=D, dedup_threshold=None)
        build(sp)
        one = sp.recall(embedding=unit(0), k=1)[0]
        three = sp.recall(embedding=unit(1), k=1)[0]
        assert (one.id, three.id) == ("one", "three")
        assert one.estimated_retrieval_ms == 1150.0
        assert three.estimated_retrieval_ms == 1150.0 + 70.0 * 2
        assert one.estimated_retrieval_ms < three.estimated_retrieval_ms


def test_fan_switched_off(tmp_path: Path) -> None:
    with engram.open(tmp_path / "d", clock=lambda: T0) as db:
        sp = db.space("agent-1", dimension=D, dedup_threshold=None, effects=())
        build(sp)
        from_one = spreading(sp, "one")
        from_three = spreading(sp, "three")
        assert from_three["t2"].activation == pytest.approx(from_one["t1"].activation, rel=1e-6)
        assert from_three["t2"].estimated_retrieval_ms is None and from_three["t2"].effects == ()


def test_reference_spread_is_not_divided(tmp_path: Path) -> None:
    with engram.open(tmp_path / "d", clock=lambda: T0) as db:
        sp = db.space("agent-1", dimension=D, dedup_threshold=None)
        build(sp)
        act = sp.spread(["three"], max_hops=2, decay=0.7)
        assert act["t2"] == pytest.approx(0.9 * math.exp(-0.7))


def test_hybrid_blends_similarity_and_activation(tmp_path: Path) -> None:
    with engram.open(tmp_path / "d", clock=lambda: T0) as db:
        sp = db.space("agent-1", dimension=D, dedup_threshold=None)
        build(sp)
        hits = sp.recall(embedding=unit(0), k=3, mode="hybrid")
        by_id = {h.id: h for h in hits}
        assert hits[0].id == "one" and hits[0].retrieval_path == "similarity"
        # t1 is reached by spreading; it outranks memories that are only (weakly) similar.
        assert by_id["t1"].retrieval_path in ("spreading", "similarity+spreading")
        assert hits[1].id == "t1"
        t1 = by_id["t1"]
        sim = max(0.0, float(unit(0) @ unit(2)))
        blend = 0.5 * sim + 0.2 * t1.activation + 0.2 * 1.0 * t1.retention + 0.1 * 1.0
        assert t1.score == pytest.approx(blend, rel=1e-5)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        with pytest.raises(engram.ValidationError, match="mode"):
            sp.recall(embedding=unit(0), mode="dreaming")
