"""Consolidation gives one answer for one set of episodes, and follows its pattern rules.

What is proven, and how:

* Input order: the same episodes (with exact ties: duplicated vectors, scaled copies,
  sparse one-hot vectors, equal timestamps) in 1,000 random insertion orders give one
  ``signature`` (sha256 of the canonical encoding of every pattern). Small n, so the
  thousand runs take a few seconds.
* Processes: three child processes with different PYTHONHASHSEED, with
  OPENBLAS_NUM_THREADS/OMP_NUM_THREADS 1 and 2, compiled and ENGRAM_PURE=1, each in its
  own insertion order, print the same signature as this process.
* Rules, on vectors built so that the expected answer is known: the cut at similarity
  0.8 (scipy ``fcluster`` 'distance' semantics), the minimum size 3, the merge of
  patterns whose centroids are more than 0.9 alike, newest-by-(when, id) selection,
  id = hash of the sorted sources, centroid and strength definitions, and that running
  again on unchanged episodes gives identical patterns. On tie-free data the clusters
  equal scipy's linkage + fcluster.
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.cluster.hierarchy import fcluster
from scipy.cluster.hierarchy import linkage as scipy_linkage

from engram.errors import ValidationError
from engram.memory.consolidation import Pattern, _flat_clusters, consolidate, pattern_id, signature

REPO = Path(__file__).resolve().parents[1]


def episodes_with_ties(n_topics: int = 6, per_topic: int = 8, d: int = 48, seed: int = 1) -> tuple[list[str], np.ndarray, list[int]]:
    """Topic clusters plus exact ties of every kind; deterministic from the seed."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_topics, d))
    rows = [centers[t] + 0.25 * rng.standard_normal(d) for t in range(n_topics) for _ in range(per_topic)]
    rows += [rows[0], rows[0], rows[5] * 2.0, rows[9] * 0.5]  # duplicates and scaled copies
    for k in range(4):  # sparse one-hot vectors: three exact copies of each direction
        onehot = np.zeros(d)
        onehot[k] = 1.0 + k
        rows += [onehot, onehot * 3.0, onehot]
    rows += [np.zeros(d)]  # a zero vector clusters with nothing
    X = np.array(rows, np.float32)
    n = X.shape[0]
    ids = [f"ep-{i:04d}" for i in range(n)]
    whens = [1_000_000_000 * (i // 3) for i in range(n)]  # equal times in threes
    return ids, X, whens


def shuffled(ids: list[str], X: np.ndarray, whens: list[int], rnd: random.Random) -> tuple[list[str], np.ndarray, list[int]]:
    order = list(range(len(ids)))
    rnd.shuffle(order)
    return [ids[i] for i in order], X[order], [whens[i] for i in order]


def test_fixture_exercises_ties_and_merges() -> None:
    ids, X, whens = episodes_with_ties()
    patterns = consolidate(ids, X, whens)
    assert len(patterns) >= 6
    sources = [s for p in patterns for s in p.source_ids]
    assert "ep-0048" in sources and "ep-0049" in sources  # duplicated vectors clustered
    assert any(len(p.source_ids) == 3 and all(X[ids.index(s)].nonzero()[0].size == 1 for s in p.source_ids) for p in patterns)


def test_one_signature_for_1000_insertion_orders() -> None:
    ids, X, whens = episodes_with_ties()
    # max_episodes below n: the (when, id) selection with equal times is exercised too.
    kwargs = {"max_episodes": len(ids) - 5}
    expected = signature(consolidate(ids, X, whens, **kwargs))
    rnd = random.Random(20261124)
    signatures = set()
    for _ in range(1000):
        signatures.add(signature(consolidate(*shuffled(ids, X, whens, rnd), **kwargs)))
    assert signatures == {expected}
    # And where the pattern-merging step runs.
    ids, X, whens = merge_fixture()
    expected = signature(consolidate(ids, X, whens))
    assert {signature(consolidate(*shuffled(ids, X, whens, rnd))) for _ in range(200)} == {expected}


CHILD = r"""
import json, random, sys
sys.path.insert(0, {tests!r})
from test_consolidation_determinism import episodes_with_ties, shuffled
from engram import _core
from engram.memory.consolidation import consolidate, signature
ids, X, whens = episodes_with_ties(n_topics=20, per_topic=15, d=64, seed=3)
ids, X, whens = shuffled(ids, X, whens, random.Random({order_seed}))
print(json.dumps({{"impl": _core.IMPL, "sig": signature(consolidate(ids, X, whens, max_episodes=len(ids) - 7))}}))
"""


@pytest.mark.kernel
def test_same_signature_across_processes_threads_and_builds() -> None:
    ids, X, whens = episodes_with_ties(n_topics=20, per_topic=15, d=64, seed=3)
    expected = signature(consolidate(ids, X, whens, max_episodes=len(ids) - 7))
    configs = [
        {"PYTHONHASHSEED": "0", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "ENGRAM_PURE": "0"},
        {"PYTHONHASHSEED": "4242", "OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2", "ENGRAM_PURE": "0"},
        {"PYTHONHASHSEED": "77", "OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2", "ENGRAM_PURE": "1"},
    ]
    impls = []
    for k, extra in enumerate(configs):
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.update(extra)
        code = CHILD.format(tests=str(REPO / "tests"), order_seed=1000 + k)
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout.strip().splitlines()[-1])
        impls.append(out["impl"])
        assert out["sig"] == expected, (extra, out)
    assert impls == ["compiled", "compiled", "python"]


# ---------------------------------------------------------------------------
# Pattern rules on constructed vectors


def blob(center: np.ndarray, noise_dirs: np.ndarray, scale: float) -> np.ndarray:
    """Rows center + scale * e_k for orthonormal e_k orthogonal to center (unit)."""
    return center[None, :] + scale * noise_dirs


def basis(d: int) -> np.ndarray:
    return np.eye(d)


def as_input(rows: list[np.ndarray], prefix: str = "ep") -> tuple[list[str], np.ndarray, list[int]]:
    X = np.array(rows, np.float32)
    return [f"{prefix}-{i:03d}" for i in range(len(rows))], X, list(range(len(rows)))


def test_cut_at_similarity_0_8() -> None:
    # Three rows e0 + s*e_k: pairwise cosine 1/(1+s^2).
    E = basis(8)
    tight = blob(E[0], E[1:4], math.sqrt(1 / 0.85 - 1))  # cosine 0.85: one cluster
    loose = blob(E[4], E[5:8], math.sqrt(1 / 0.75 - 1))  # cosine 0.75: no cluster
    ids, X, whens = as_input(list(tight) + list(loose))
    patterns = consolidate(ids, X, whens)
    assert [p.source_ids for p in patterns] == [("ep-000", "ep-001", "ep-002")]
    # Lowering the cut to 0.7 admits the loose triple as well.
    assert len(consolidate(ids, X, whens, cut_similarity=0.7)) == 2


def test_min_cluster_size_3() -> None:
    E = basis(10)
    pair = blob(E[0], E[1:3], 0.3)
    triple = blob(E[3], E[4:7], 0.3)
    ids, X, whens = as_input(list(pair) + list(triple))
    assert [p.source_ids for p in consolidate(ids, X, whens)] == [("ep-002", "ep-003", "ep-004")]
    assert len(consolidate(ids, X, whens, min_cluster_size=2)) == 2


def merge_fixture() -> tuple[list[str], np.ndarray, list[int]]:
    # Two blobs of 6 around unit centres with cosine g = 0.945, noise s^2 = 0.2 along
    # distinct orthonormal directions: within-blob cosine 1/1.2 = 0.833 (clusters at
    # 0.8), cross-blob mean cosine g/1.2 = 0.7875 (stays two clusters), centroid
    # cosine g/(1 + 0.2/6) = 0.9145 (> 0.9: merged into one pattern).
    E = basis(16)
    g = 0.945
    c_a = E[0]
    c_b = g * E[0] + math.sqrt(1 - g * g) * E[1]
    s = math.sqrt(0.2)
    rows = list(blob(c_a, E[2:8], s)) + list(blob(c_b, E[8:14], s))
    return as_input(rows)


def test_merge_patterns_above_0_9() -> None:
    ids, X, whens = merge_fixture()
    separate = consolidate(ids, X, whens, merge_similarity=0.95)
    assert sorted(len(p.source_ids) for p in separate) == [6, 6]
    merged = consolidate(ids, X, whens)
    assert len(merged) == 1
    assert merged[0].source_ids == tuple(sorted(ids))
    assert merged[0].id == pattern_id(ids)
    # Merging rebuilds the pattern from the union, as if it had been one cluster.
    assert merged[0].first_seen_ns == 0 and merged[0].last_seen_ns == 11


def test_id_is_hash_of_sorted_sources() -> None:
    assert pattern_id(["b", "a", "c"]) == pattern_id(["c", "b", "a"])
    assert pattern_id(["a", "b"]) != pattern_id(["ab"])  # length-prefixed, no ambiguity
    assert pattern_id(["a"]).startswith("pat_") and len(pattern_id(["a"])) == 4 + 32
    ids, X, whens = episodes_with_ties()
    for p in consolidate(ids, X, whens):
        assert p.source_ids == tuple(sorted(p.source_ids))
        assert p.id == pattern_id(p.source_ids)


def test_centroid_strength_and_times() -> None:
    ids, X, whens = episodes_with_ties()
    by_id = {i: (X[k].astype(np.float64), whens[k]) for k, i in enumerate(ids)}
    patterns = consolidate(ids, X, whens)
    assert [p.id for p in patterns] == sorted(p.id for p in patterns)
    for p in patterns:
        vectors = np.array([by_id[s][0] / np.linalg.norm(by_id[s][0]) for s in p.source_ids])
        centroid = vectors.mean(axis=0)
        assert p.embedding.dtype == np.float32 and not p.embedding.flags.writeable
        assert np.allclose(p.embedding, centroid, atol=1e-6)
        cosines = vectors @ centroid / np.linalg.norm(centroid)
        assert abs(p.strength - cosines.mean()) < 1e-6
        assert 0.0 <= p.strength <= 1.0
        assert p.first_seen_ns == min(by_id[s][1] for s in p.source_ids)
        assert p.last_seen_ns == max(by_id[s][1] for s in p.source_ids)


def test_recompute_on_unchanged_episodes_is_identical() -> None:
    ids, X, whens = episodes_with_ties()
    first = consolidate(ids, X, whens)
    again = consolidate(list(ids), X.copy(), list(whens))
    assert first == again
    assert signature(first) == signature(again)
    # An episode that clusters with nothing (a zero vector) changes nothing either.
    more = consolidate(ids + ["zz-new"], np.vstack([X, np.zeros((1, X.shape[1]), np.float32)]), whens + [0])
    assert signature(more) == signature(first)


def test_selection_is_newest_by_when_then_id() -> None:
    E = basis(12)
    old = blob(E[0], E[1:4], 0.3)
    new = blob(E[4], E[5:8], 0.3)
    ids, X, _ = as_input(list(old) + list(new))
    whens = [5, 5, 5, 9, 9, 9]
    assert [p.source_ids for p in consolidate(ids, X, whens, max_episodes=3)] == [("ep-003", "ep-004", "ep-005")]
    # Equal times: the larger ids count as newer, whatever the input order.
    whens = [7] * 6
    picked = consolidate(ids[::-1], X[::-1].copy(), whens, max_episodes=3)
    assert [p.source_ids for p in picked] == [("ep-003", "ep-004", "ep-005")]


def test_clusters_equal_scipy_fcluster_without_ties() -> None:
    rng = np.random.default_rng(9)
    centers = rng.standard_normal((15, 32))
    X = (centers[rng.integers(0, 15, 200)] + 0.35 * rng.standard_normal((200, 32))).astype(np.float32)
    ids = [f"e{i:03d}" for i in range(200)]  # already in canonical (id) order
    patterns = consolidate(ids, X, list(range(200)), merge_similarity=1.0)  # no merging
    labels = fcluster(scipy_linkage(X.astype(np.float64), "average", "cosine"), 1.0 - 0.8, "distance")
    expected = []
    for label in np.unique(labels):
        members = tuple(ids[i] for i in np.flatnonzero(labels == label))
        if len(members) >= 3:
            expected.append(members)
    assert sorted(p.source_ids for p in patterns) == sorted(expected)
    assert len(expected) >= 5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_flat_clusters_equal_fcluster_at_exact_heights(seed: int) -> None:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((40, 6))
    Z = scipy_linkage(X, "average", "cosine")
    for t in [Z[5, 2], Z[20, 2], Z[-1, 2], 0.0, 0.5]:  # thresholds equal to merge heights test "<="
        ours = _flat_clusters(Z, 40, float(t))
        labels = fcluster(Z, t, "distance")
        theirs = sorted(sorted(np.flatnonzero(labels == v).tolist()) for v in np.unique(labels))
        assert sorted(ours) == theirs


def test_small_inputs() -> None:
    assert consolidate([], np.zeros((0, 4), np.float32), []) == []
    assert consolidate(["a", "b"], np.ones((2, 4), np.float32), [0, 1]) == []
    ids, X, whens = as_input([np.ones(4)] * 3)
    (p,) = consolidate(ids, X, whens)
    assert isinstance(p, Pattern) and p.source_ids == tuple(ids)


@pytest.mark.parametrize(
    "args,kwargs,field",
    [
        ((["a", "a", "b"], np.ones((3, 4), np.float32), [0, 1, 2]), {}, "ids"),
        ((["a", "", "b"], np.ones((3, 4), np.float32), [0, 1, 2]), {}, "ids"),
        (("abc", np.ones((3, 4), np.float32), [0, 1, 2]), {}, "ids"),
        ((["a", "b", "c"], np.ones((3, 4), np.float64), [0, 1, 2]), {}, "embeddings"),
        ((["a", "b", "c"], np.ones((2, 4), np.float32), [0, 1, 2]), {}, "embeddings"),
        ((["a", "b", "c"], np.full((3, 4), np.nan, np.float32), [0, 1, 2]), {}, "embeddings"),
        ((["a", "b", "c"], np.ones((3, 4), np.float32), [0, 1]), {}, "whens_ns"),
        ((["a", "b", "c"], np.ones((3, 4), np.float32), [0, 1.5, 2]), {}, "whens_ns"),
        ((["a", "b", "c"], np.ones((3, 4), np.float32), [0, 1, 2]), {"max_episodes": 0}, "max_episodes"),
        ((["a", "b", "c"], np.ones((3, 4), np.float32), [0, 1, 2]), {"min_cluster_size": 1}, "min_cluster_size"),
        ((["a", "b", "c"], np.ones((3, 4), np.float32), [0, 1, 2]), {"cut_similarity": 1.5}, "cut_similarity"),
        ((["a", "b", "c"], np.ones((3, 4), np.float32), [0, 1, 2]), {"merge_similarity": float("nan")}, "merge_similarity"),
    ],
)
def test_bad_input_is_a_validation_error(args: tuple, kwargs: dict, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        consolidate(*args, **kwargs)
    assert caught.value.field == field


@pytest.mark.kernel
def test_compiled_and_twin_agree_on_768_dimensions(monkeypatch: pytest.MonkeyPatch) -> None:
    from engram import _core
    from engram._core import _ref

    rng = np.random.default_rng(21)
    centers = rng.standard_normal((25, 768))
    X = (centers[rng.integers(0, 25, 500)] + 0.45 * rng.standard_normal((500, 768))).astype(np.float32)
    X[100:103] = X[7]  # exact duplicates
    ids = [f"ep-{i:04d}" for i in rng.permutation(500)]
    whens = rng.integers(0, 50, 500).tolist()  # many equal times
    expected = consolidate(ids, X, whens, max_episodes=480)
    assert len(expected) >= 10
    monkeypatch.setattr(_core, "linkage", _ref.linkage)
    monkeypatch.setattr(_core, "cosine_distances", _ref.cosine_distances)
    assert signature(consolidate(ids, X, whens, max_episodes=480)) == signature(expected)
