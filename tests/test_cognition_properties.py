"""Confidences stay in [0, 1] under any sequence of operations, with every effect on.

Hypothesis draws sequences of remember (near-duplicates included, so priming and
interference fire), associate, recall in every mode, reconsolidate attempts and
clock jumps from milliseconds to months; every hit's confidence, retention and each
effect factor is checked, and the stored state after reopening equals the live one.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engram

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
D = 8

operation = st.one_of(
    st.tuples(st.just("remember"), st.integers(0, 5), st.floats(0.0, 1.0), st.floats(-48, 48)),
    st.tuples(st.just("associate"), st.integers(0, 30), st.integers(0, 30), st.floats(0.01, 1.0)),
    st.tuples(st.just("recall"), st.integers(0, 5), st.sampled_from(["similarity", "spreading", "hybrid"]), st.integers(1, 5)),
    st.tuples(st.just("reconsolidate"), st.integers(0, 30), st.floats(0.0, 1.0), st.just(0)),
    st.tuples(st.just("wait"), st.sampled_from([0.01, 0.2, 3600.0, 3 * 3600.0, 86400.0 * 2, 86400.0 * 90]), st.just(0), st.just(0)),
)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(operation, min_size=1, max_size=40))
def test_confidence_stays_in_unit_interval(tmp_path_factory, ops) -> None:
    data = tmp_path_factory.mktemp("prop")
    base = [np.random.default_rng(s).standard_normal(D).astype(np.float32) for s in range(6)]
    clock = Clock()
    ids: list[str] = []
    with engram.open(data, clock=clock) as db:
        sp = db.space("agent-1", dimension=D, dedup_threshold=None)
        for n, (kind, a, b, c) in enumerate(ops):
            if kind == "remember":
                vector = base[a] + np.float32(0.1) * np.random.default_rng(n).standard_normal(D).astype(np.float32)
                ids.append(sp.remember(f"m{n}", embedding=vector, confidence=b, when=clock.now + timedelta(hours=c), id=f"m{n}"))
            elif kind == "associate" and len(ids) >= 2 and ids[a % len(ids)] != ids[b % len(ids)]:
                sp.associate(ids[a % len(ids)], ids[b % len(ids)], c)
            elif kind == "recall":
                for hit in sp.recall(embedding=base[a], k=c, mode=b):
                    assert 0.0 <= hit.confidence <= 1.0
                    assert 0.0 < hit.retention <= 1.0
                    assert 0.0 <= hit.score <= 1.0
                    for _, value in hit.effects:
                        assert 0.0 < value
            elif kind == "reconsolidate" and ids:
                try:
                    memory = sp.reconsolidate(ids[a % len(ids)], confidence=b)
                    assert 0.0 <= memory.confidence <= 1.0
                except engram.ReconsolidationWindowError:
                    pass
            elif kind == "wait":
                clock.now += timedelta(seconds=a)
        live = {m: (it.confidence, it.stability, it.access_count, it.content) for m, it in sp._items.items()}
    with engram.open(data, clock=clock) as db:
        sp = db.space("agent-1")
        assert {m: (it.confidence, it.stability, it.access_count, it.content) for m, it in sp._items.items()} == live
