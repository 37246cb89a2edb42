"""The embedded API's behaviour: recall, ties, filters, decay, spreading, dedup, capacity, isolation.

Everything goes through ``engram.open`` on a temporary directory with an injected
clock, so time-dependent behaviour (decay) is driven, never slept for.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

import engram
from engram.memory import decay

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def vec(seed: int, d: int = 768) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(d).astype(np.float32)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db(tmp_path: Path, clock: Clock):
    with engram.open(tmp_path / "data", clock=clock) as database:
        yield database


def test_recall_by_embedding_is_exact_top_k(db) -> None:
    sp = db.space("agent-1", dedup_threshold=None)
    vectors = {f"m{i:03d}": vec(i) for i in range(300)}
    for mid, v in vectors.items():
        sp.remember(mid, embedding=v, id=mid, confidence=0.8)
    q = vec(1000)
    hits = sp.recall(embedding=q, k=10)
    exact = sorted(vectors, key=lambda m: -float(np.dot(vectors[m], q) / np.linalg.norm(vectors[m]) / np.linalg.norm(q)))[:10]
    assert [h.id for h in hits] == exact
    assert all(0.0 <= h.confidence <= 1.0 for h in hits)
    # confidence = stored x retention x score (retention is 1.0 at t = 0)
    assert hits[0].confidence == pytest.approx(0.8 * 1.0 * hits[0].score)


def test_equal_scores_order_by_ascending_id_whatever_the_insertion_order(tmp_path: Path) -> None:
    v = vec(5)
    orders = [["b", "c", "a", "d"], ["d", "a", "c", "b"]]
    results = []
    for n, order in enumerate(orders):
        with engram.open(tmp_path / str(n)) as db:
            sp = db.space("agent-1", dedup_threshold=None)
            for mid in order:
                sp.remember(mid + "-memory", embedding=v, id=mid)
            sp.remember("other", embedding=vec(6), id="z")
            results.append([h.id for h in sp.recall(embedding=v, k=3)])
    assert results[0] == results[1] == ["a", "b", "c"]


def test_text_recall_stores_no_fake_vector(db) -> None:
    sp = db.space("agent-1")
    a = sp.remember("The mitochondria is the powerhouse of the cell")
    b = sp.remember("Ribosomes translate messenger RNA into proteins")
    sp.remember("Unrelated note about the weather")
    assert sp.get(a).embedding is None
    hits = sp.recall(text="mitochondria cell", k=10)
    assert hits[0].id == a and hits[0].score == 1.0
    assert b not in [h.id for h in hits]
    # A text-only memory is never returned for an embedding cue.
    assert sp.recall(embedding=vec(1), k=10) == []


def test_filters_combine_with_cues(db, clock: Clock) -> None:
    sp = db.space("agent-1", dedup_threshold=None)
    for day in range(5):
        sp.remember_episode(what=f"visit day {day}", when=T0 + timedelta(days=day), where="lab" if day % 2 == 0 else "home",
                            who=["ana"], embedding=vec(day), importance=0.6, id=f"e{day}")
    got = sp.recall(after=T0 + timedelta(days=1), before=T0 + timedelta(days=4), location="LAB", k=50)
    assert [h.id for h in got] == ["e2"]
    got = sp.recall(embedding=vec(4), after=T0 + timedelta(days=3), k=50)
    assert {h.id for h in got} == {"e3", "e4"} and got[0].id == "e4"
    got = sp.recall(text="visit", location="home", k=50)
    assert {h.id for h in got} == {"e1", "e3"}
    # filter-only recall: newest first
    assert [h.id for h in sp.recall(location="lab", k=50)] == ["e4", "e2", "e0"]


def test_threshold_drops_weak_matches(db) -> None:
    sp = db.space("agent-1")
    sp.remember("a", embedding=vec(1), id="a")
    sp.remember("b", embedding=vec(2), id="b")
    assert [h.id for h in sp.recall(embedding=vec(1), k=10, threshold=0.5)] == ["a"]


def test_decay_is_lazy_and_follows_the_reference(db, clock: Clock) -> None:
    sp = db.space("agent-1")
    sp.remember("exp", embedding=vec(1), id="x", confidence=1.0, decay="exponential")
    sp.remember("pow", embedding=vec(2), id="p", confidence=1.0, decay="power_law")
    clock.now = T0 + timedelta(hours=2)
    by_id = {h.id: h for h in sp.recall(text="exp pow", k=10)}
    assert by_id["x"].retention == pytest.approx(math.exp(-2 / 1.96))
    assert by_id["p"].retention == pytest.approx(3 ** -0.18)
    clock.now = T0 + timedelta(days=30)
    assert sp.recall(embedding=vec(1), k=1)[0].retention == pytest.approx(0.1)  # the floor


def test_decay_functions() -> None:
    h = 3_600_000_000_000
    assert decay.retention("exponential", 0, 0) == 1.0
    assert decay.retention("power_law", 24 * h, 0) == pytest.approx(25 ** -0.18)
    # two-component: exponential below 3 recalls, power law from 3
    assert decay.retention("two_component", 2 * h, 2) == pytest.approx(math.exp(-2 / 1.96))
    assert decay.retention("two_component", 2 * h, 3) == pytest.approx(3 ** -0.18)
    # hybrid: continuous at the transition, power law after
    before = decay.retention("hybrid", int(decay.HYBRID_TRANSITION_HOURS * h) - 1, 0)
    after = decay.retention("hybrid", int(decay.HYBRID_TRANSITION_HOURS * h) + 1, 0)
    assert before == pytest.approx(after, rel=1e-6)
    assert decay.retention("none", 10**18, 0) == 1.0


def test_spread_matches_the_reference_chain(db) -> None:
    sp = db.space("agent-1")
    ids = [sp.remember(f"node {i}", embedding=vec(i), id=f"n{i}") for i in range(5)]
    for a, b in zip(ids, ids[1:]):
        sp.associate(a, b, weight=0.9)
    act = sp.spread(["n0"], max_hops=4, decay=0.7)
    assert act["n0"] == 1.0
    assert act["n1"] == pytest.approx(0.447, abs=5e-4)
    assert act["n2"] == pytest.approx(0.099, abs=5e-4)
    assert "n3" not in act  # 0.099 x 0.9 x e^-2.1 < 0.1 at depth 3
    assert list(act) == sorted(act)
    # Close the ring: spreading terminates, activation is capped, n3 is now 2 hops away.
    sp.associate("n4", "n0", weight=0.9)
    ring = sp.spread(["n0"], max_hops=16, decay=0.7)
    assert ring["n0"] == 1.0
    assert ring["n4"] == pytest.approx(0.447, abs=5e-4)
    assert ring["n3"] == pytest.approx(0.099, abs=5e-4)
    assert ring == sp.spread(["n0"], max_hops=16, decay=0.7)


def test_dedup_keeps_the_higher_confidence(db) -> None:
    sp = db.space("agent-1")
    v = vec(1)
    first = sp.remember("first", embedding=v, confidence=0.6)
    near = v + 0.02 * vec(2)
    assert sp.remember("weaker duplicate", embedding=near, confidence=0.5) == first
    # A stronger one takes the stored memory's place under its id.
    assert sp.remember("stronger duplicate", embedding=near, confidence=0.9) == first and len(sp) == 1
    assert sp.get(first).confidence == 0.9 and sp.get(first).content == "stronger duplicate"
    # episodes never dedup
    for i in range(3):
        sp.remember_episode(what="same event", when=T0, embedding=v, importance=0.5)
    assert len(sp) == 4


def test_dedup_off(db) -> None:
    sp = db.space("agent-1", dedup_threshold=None)
    sp.remember("a", embedding=vec(1))
    sp.remember("a", embedding=vec(1))
    assert len(sp) == 2


def test_capacity_evicts_the_lowest_activation(db) -> None:
    sp = db.space("agent-1", capacity=3)
    sp.remember("a", embedding=vec(1), id="a", confidence=0.9)
    sp.remember("b", embedding=vec(2), id="b", confidence=0.2)
    sp.remember("c", embedding=vec(3), id="c", confidence=0.5)
    sp.remember("d", embedding=vec(4), id="d", confidence=0.6)
    assert sorted(m.id for m in sp.list()) == ["a", "c", "d"]
    assert sp.stats()["evicted"] == 1


def test_spaces_are_isolated(db) -> None:
    a = db.space("tenant-a")
    b = db.space("tenant-b")
    v = vec(1)
    mid = a.remember("secret of a", embedding=v)
    a.associate(mid, a.remember("other", embedding=vec(2)), 0.9)
    assert b.recall(embedding=v, k=10) == []
    assert b.recall(text="secret", k=10) == []
    assert b.get(mid) is None
    with pytest.raises(engram.UnknownIdError):
        b.spread([mid])
    assert db.spaces() == ["tenant-a", "tenant-b"]


def test_forget_and_associate_unknown(db) -> None:
    sp = db.space("agent-1")
    mid = sp.remember("x", embedding=vec(1))
    with pytest.raises(engram.UnknownIdError, match="nope"):
        sp.associate(mid, "nope", 0.5)
    assert sp.forget(mid) is True
    assert sp.forget(mid) is False
    assert sp.get(mid) is None and sp.recall(embedding=vec(1)) == []


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(content="x", embedding=[0.1] * 767), "embedding"),
        (dict(content="x", embedding=[float("nan")] * 768), "embedding"),
        (dict(content="x", embedding=[float("inf")] + [0.0] * 767), "embedding"),
        (dict(content="x", embedding=[0.0] * 768), "embedding"),
        (dict(content="x", confidence=1.5), "confidence"),
        (dict(content="x", confidence=float("nan")), "confidence"),
        (dict(content="x" * (100 * 1024 + 1)), "content"),
        (dict(content=5), "content"),
        (dict(content="x", id="bad id!"), "id"),
        (dict(content="x", memory_type="dream"), "memory_type"),
        (dict(content="x", tags="notalist"), "tags"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(db, kwargs, field) -> None:
    sp = db.space("agent-1")
    before = sp.stats()["last_lsn"]
    with pytest.raises(engram.ValidationError) as info:
        sp.remember(**kwargs)
    assert isinstance(info.value, ValueError)
    assert info.value.field == field
    assert "allowed" in str(info.value) and "example" in str(info.value)
    assert sp.stats()["last_lsn"] == before and len(sp) == 0


def test_bad_space_id(db) -> None:
    for bad in ["ab", "Agent", "-x-y", "a" * 65, "a/b"]:
        with pytest.raises(engram.ValidationError, match="space_id"):
            db.space(bad)


def test_bulk_is_all_or_nothing(db) -> None:
    sp = db.space("agent-1")
    with pytest.raises(engram.ValidationError, match=r"items\[1\].embedding"):
        sp.remember_many([{"content": "ok", "embedding": vec(1)}, {"content": "bad", "embedding": [1.0]}])
    assert len(sp) == 0
    ids = sp.remember_many([{"content": f"m{i}", "embedding": vec(i)} for i in range(50)])
    assert len(ids) == 50 and len(sp) == 50


def test_recall_many_equals_single_recalls(db) -> None:
    sp = db.space("agent-1", dedup_threshold=None)
    for i in range(200):
        sp.remember(f"m{i}", embedding=vec(i), id=f"m{i:03d}")
    queries = [dict(embedding=vec(1000 + j), k=5) for j in range(6)] + [dict(text="m7", k=3)]
    batch = sp.recall_many(queries)
    singles = [sp.recall(**q) for q in queries]
    assert [[h.id for h in r] for r in batch] == [[h.id for h in r] for r in singles]


def test_closed_database_refuses_use(tmp_path: Path) -> None:
    db = engram.open(tmp_path)
    sp = db.space("agent-1")
    db.close()
    with pytest.raises(engram.ClosedError):
        sp.remember("x")


def test_location_filter_finds_matches_beyond_the_first_shortlist(db) -> None:
    sp = db.space("agent-1", dedup_threshold=None)
    q = vec(1)
    # 300 close memories elsewhere, then 3 weaker ones in the lab.
    for i in range(300):
        sp.remember(f"near {i}", embedding=q + 0.5 * vec(100 + i), location="home", id=f"h{i:03d}")
    for i in range(3):
        sp.remember(f"lab {i}", embedding=vec(900 + i), location="lab", id=f"l{i}")
    assert {h.id for h in sp.recall(embedding=q, location="lab", k=3)} == {"l0", "l1", "l2"}


def test_concurrent_readers_see_consistent_memories_during_compaction(db) -> None:
    import threading

    sp = db.space("agent-1", dedup_threshold=None, durability="async")  # 2,000 forgets: no fsync each
    vectors = {f"m{i:04d}": vec(i) for i in range(3000)}
    sp.remember_many([{"content": mid, "embedding": v, "id": mid} for mid, v in vectors.items()])
    errors: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            for hit in sp.recall(embedding=vec(7), k=20):
                if hit.memory.embedding.tobytes() != vectors[hit.id].tobytes():
                    errors.append(hit.id)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for mid in list(vectors)[:2000]:  # forces at least one compaction
        if mid != "m0007":
            sp.forget(mid)
    stop.set()
    for t in threads:
        t.join()
    assert errors == []
    assert sp.stats()["dead_rows"] < 2000  # compaction ran
    assert sp.recall(embedding=vec(7), k=1)[0].id == "m0007"


def test_times_outside_int64_nanoseconds_are_refused(db) -> None:
    sp = db.space("agent-1")
    for year in (455, 1600, 2300):
        with pytest.raises(engram.ValidationError, match="storable range"):
            sp.remember("x", when=datetime(year, 1, 1, tzinfo=timezone.utc))
    assert len(sp) == 0


def test_large_bulk_goes_in_chunks_and_stays_all_or_nothing_on_bad_input(tmp_path: Path) -> None:
    from engram.memory import space as space_mod

    n = 2 * space_mod.STORE_CHUNK_ITEMS + 7
    items = [{"content": f"m{i}", "embedding": vec(i), "id": f"m{i:04d}"} for i in range(n)]
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1", dedup_threshold=None)
        with pytest.raises(engram.ValidationError, match=rf"items\[{n}\]"):
            sp.remember_many(items + [{"content": "bad", "confidence": 2.0}])
        assert len(sp) == 0
        assert sp.remember_many(items) == [it["id"] for it in items]
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1")
        assert len(sp) == n and sp.get(f"m{n - 1:04d}").embedding.tobytes() == vec(n - 1).tobytes()


@pytest.mark.parametrize("seed", range(3))
def test_text_recall_of_common_words_ranks_as_ranking_everything(db, monkeypatch, seed) -> None:
    """A text query matching most memories takes a shortlist of the best scores
    (Space._top_text_hits); the hits equal ranking every match (ties by id, filters,
    thresholds; a rare location makes the shortlist widen), which the test gets by
    turning the shortlist off."""
    from engram.memory.space import Space

    rng = np.random.default_rng(seed)
    words = ["alpha", "beta", "gamma", "delta", "common"]
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    sp = db.space("texts")
    for i in range(700):
        picked = rng.choice(words[:4], size=int(rng.integers(0, 4)), replace=False).tolist()
        sp.remember(" ".join(["common"] * int(rng.integers(0, 2)) + picked) or "nothing", when=t0 + timedelta(minutes=int(rng.integers(0, 500))),
                    location="attic" if i % 40 == 0 else ["lab", "home"][i % 2], memory_type=["semantic", "episodic"][i % 3 == 0])
    queries = []
    for _ in range(40):
        queries.append(dict(text=" ".join(rng.choice(words, size=int(rng.integers(1, 4)), replace=False).tolist()),
                            k=int(rng.choice([1, 5, 10, 40])), threshold=float(rng.choice([0.0, 0.3, 0.6, 0.95])),
                            **rng.choice([{}, {"location": "lab"}, {"location": "attic"}, {"after": t0 + timedelta(minutes=250)},
                                          {"memory_types": ["episodic"]}])))
    fast = [[(h.id, h.score) for h in sp.recall(**q)] for q in queries]
    assert sum(len(h) for h in fast) > 100
    monkeypatch.setattr(Space, "_top_text_hits", lambda self, query, scores: None)
    full = [[(h.id, h.score) for h in sp.recall(**q)] for q in queries]
    assert fast == full
