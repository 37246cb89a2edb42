"""The clustering kernel is deterministic, follows its tie rule and equals scipy without ties.

What is proven, and how:

* Compiled ``_linkage.linkage`` / ``cosine_distances`` give the same bits as their
  NumPy twins in ``_ref.py``: Hypothesis draws matrices (random floats, small integers
  that make exact ties, duplicated rows, sparse rows, zero rows, widths that are not a
  multiple of the 8 lanes) and the two outputs must be byte-identical, heights included
  (tolerance: zero).
* The twin's bookkeeping (Muellner's generic algorithm) equals a brute-force greedy
  oracle written here: every step merges the pair with the smallest
  (distance, smaller id, larger id), Lance-Williams average update.
* On tie-free random data both equal ``scipy.cluster.hierarchy.linkage(X, "average",
  "cosine")``: ids and sizes exactly, heights within 1e-9.
* Hand-computed trees for exact ties: duplicated rows, orthogonal basis rows.
* Bad input raises the same ValidationError, with the same message, from both.

Marked ``kernel``: CI runs the file again with ENGRAM_PURE=1 (the twin then faces
itself; the oracle and scipy comparisons still hold).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.cluster.hierarchy import linkage as scipy_linkage
from scipy.spatial.distance import cdist

from engram import _core
from engram._core import _ref
from engram.errors import ValidationError

pytestmark = pytest.mark.kernel

COMPILED = os.environ.get("ENGRAM_PURE") != "1"
if COMPILED:
    from engram._core import _linkage as impl
else:
    impl = _ref


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def oracle(X: np.ndarray) -> np.ndarray:
    """Brute-force statement of the spec: O(n^3) greedy with the tie key."""
    n = X.shape[0]
    D = _ref.cosine_distances(X, X)
    clusters = {i: i for i in range(n)}  # cluster id -> row/col in D
    sizes = {i: 1 for i in range(n)}
    Z = []
    for step in range(n - 1):
        live = sorted(clusters)
        best = min(
            (D[clusters[p], clusters[q]], p, q) for k, p in enumerate(live) for q in live[k + 1 :]
        )
        dist, p, q = best
        new = n + step
        slot = clusters[q]
        for r in live:
            if r in (p, q):
                continue
            merged = (np.float64(sizes[p]) * D[clusters[p], clusters[r]] + np.float64(sizes[q]) * D[clusters[q], clusters[r]]) / np.float64(sizes[p] + sizes[q])
            D[slot, clusters[r]] = merged
            D[clusters[r], slot] = merged
        Z.append((p, q, dist, sizes[p] + sizes[q]))
        sizes[new] = sizes.pop(p) + sizes.pop(q)
        del clusters[p], clusters[q]
        clusters[new] = slot
    return np.array(Z, np.float64).reshape(n - 1, 4)


@st.composite
def matrices(draw: st.DrawFn, n_max: int = 40) -> np.ndarray:
    n = draw(st.integers(2, n_max))
    d = draw(st.integers(1, 21))
    seed = draw(st.integers(0, 2**32 - 1))
    kind = draw(st.sampled_from(["float", "small_ints", "duplicates", "sparse", "mixed"]))
    rng = np.random.default_rng(seed)
    if kind == "float":
        X = rng.standard_normal((n, d))
    elif kind == "small_ints":
        X = rng.integers(-2, 3, (n, d)).astype(np.float64)
    elif kind == "duplicates":
        base = rng.standard_normal((max(1, n // 3), d))
        X = base[rng.integers(0, base.shape[0], n)] * rng.choice([1.0, 2.0, 0.5], (n, 1))
    elif kind == "sparse":
        X = np.zeros((n, d))
        cols = rng.integers(0, d, n)
        X[np.arange(n), cols] = rng.choice([1.0, 3.0, -1.0], n)
    else:
        X = rng.standard_normal((n, d))
        X[rng.random(n) < 0.3] = 0.0
        dup = rng.integers(0, n, n // 4)
        X[rng.integers(0, n, n // 4)] = X[dup]
    return X.astype(np.float32)


@given(matrices(n_max=60))
@settings(max_examples=150, deadline=None)
def test_linkage_compiled_equals_twin_bitwise(X: np.ndarray) -> None:
    assert same_bits(impl.linkage(X), _ref.linkage(X))


@given(matrices(n_max=14))
@settings(max_examples=100, deadline=None)
def test_twin_equals_greedy_oracle(X: np.ndarray) -> None:
    assert same_bits(_ref.linkage(X), oracle(X))


@given(matrices(n_max=12), matrices(n_max=12))
@settings(max_examples=100, deadline=None)
def test_cosine_distances_compiled_equals_twin(A: np.ndarray, B: np.ndarray) -> None:
    B = np.resize(B, (B.shape[0], A.shape[1])).astype(np.float32)
    assert same_bits(impl.cosine_distances(A, B), _ref.cosine_distances(A, B))
    # Symmetric to the bit, and the diagonal of a row with itself is ~0.
    assert same_bits(impl.cosine_distances(A, B).T, impl.cosine_distances(B, A))


def test_linkage_compiled_equals_twin_at_full_width() -> None:
    # 768 columns and n not a multiple of the 4-row tiles or the 32-row panels.
    rng = np.random.default_rng(7)
    X = rng.standard_normal((203, 768)).astype(np.float32)
    X[50] = X[10]
    X[77] = 0.0
    assert same_bits(impl.linkage(X), _ref.linkage(X))
    assert same_bits(impl.cosine_distances(X[:9], X), _ref.cosine_distances(X[:9], X))
    # Large enough (> 16M multiply-adds) for the compiled kernel's parallel path.
    B = np.vstack([X, X, X])
    assert same_bits(impl.cosine_distances(X[:40], B), _ref.cosine_distances(X[:40], B))


@pytest.mark.parametrize("n,d,seed", [(2, 5, 0), (3, 2, 1), (17, 3, 2), (120, 768, 3), (257, 40, 4)])
@pytest.mark.parametrize("which", ["impl", "twin"])
def test_equals_scipy_without_ties(n: int, d: int, seed: int, which: str) -> None:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    fn = impl.linkage if which == "impl" else _ref.linkage
    ours = fn(X)
    ref = scipy_linkage(X.astype(np.float64), "average", "cosine")
    assert np.array_equal(ours[:, [0, 1, 3]], ref[:, [0, 1, 3]])
    assert np.max(np.abs(ours[:, 2] - ref[:, 2])) <= 1e-9


def test_equals_scipy_on_clustered_data() -> None:
    # Embedding-like data: topics plus noise, where merges at many scales matter.
    rng = np.random.default_rng(11)
    centers = rng.standard_normal((12, 64))
    X = (centers[rng.integers(0, 12, 300)] + 0.5 * rng.standard_normal((300, 64))).astype(np.float32)
    ours = impl.linkage(X)
    ref = scipy_linkage(X.astype(np.float64), "average", "cosine")
    assert np.array_equal(ours[:, [0, 1, 3]], ref[:, [0, 1, 3]])
    assert np.max(np.abs(ours[:, 2] - ref[:, 2])) <= 1e-9


def test_cosine_distances_match_scipy() -> None:
    rng = np.random.default_rng(5)
    A = rng.standard_normal((7, 33)).astype(np.float32)
    B = rng.standard_normal((9, 33)).astype(np.float32)
    assert np.max(np.abs(impl.cosine_distances(A, B) - cdist(A.astype(np.float64), B.astype(np.float64), "cosine"))) < 1e-12


@pytest.mark.parametrize("fn", [impl.linkage, _ref.linkage], ids=["impl", "twin"])
def test_duplicates_merge_in_row_order(fn: object) -> None:
    v = np.array([0.3, -1.2, 2.0, 0.7], np.float32)
    w = np.array([1.0, 0.0, 0.0, -1.0], np.float32)
    X = np.stack([v, v * 2, v, w])
    Z = fn(X)  # type: ignore[operator]
    h = Z[0, 2]
    assert h < 1e-15
    # (0,1) first: smallest (distance, smaller id, larger id); then 2 joins the new 4.
    assert Z[:, [0, 1, 3]].tolist() == [[0, 1, 2], [2, 4, 3], [3, 5, 4]]
    assert Z[1, 2] == h


@pytest.mark.parametrize("fn", [impl.linkage, _ref.linkage], ids=["impl", "twin"])
def test_orthogonal_sparse_rows_tie_at_one(fn: object) -> None:
    X = np.eye(4, 6, dtype=np.float32) * np.array([[1], [5], [0.25], [2]], np.float32)
    Z = fn(X)  # type: ignore[operator]
    assert Z.tolist() == [[0, 1, 1.0, 2], [2, 3, 1.0, 2], [4, 5, 1.0, 4]]


@pytest.mark.parametrize("fn", [impl.cosine_distances, _ref.cosine_distances], ids=["impl", "twin"])
def test_zero_rows_are_at_distance_one(fn: object) -> None:
    X = np.array([[0, 0, 0], [1, 2, 3], [0, 0, 0]], np.float32)
    D = fn(X, X)  # type: ignore[operator]
    assert D[0].tolist() == [1.0, 1.0, 1.0]
    assert D[:, 2].tolist() == [1.0, 1.0, 1.0]
    assert D[1, 1] < 1e-15


def test_non_contiguous_input_equals_contiguous() -> None:
    rng = np.random.default_rng(3)
    X = rng.standard_normal((30, 20)).astype(np.float32)
    view = X[::2, ::2]
    assert same_bits(impl.linkage(view), impl.linkage(np.ascontiguousarray(view)))
    assert same_bits(_ref.linkage(view), impl.linkage(np.ascontiguousarray(view)))


def test_public_entry_points_are_the_selected_impl() -> None:
    assert _core.linkage is impl.linkage
    assert _core.cosine_distances is impl.cosine_distances


GOOD = np.ones((3, 4), np.float32)
BAD_LINKAGE_CASES = [
    ([[1.0, 2.0], [3.0, 4.0]], "average", "X"),
    (GOOD.astype(np.float64), "average", "X"),
    (np.ones(4, np.float32), "average", "X"),
    (np.ones((2, 2, 2), np.float32), "average", "X"),
    (np.ones((1, 4), np.float32), "average", "X"),
    (np.ones((0, 4), np.float32), "average", "X"),
    (np.ones((3, 0), np.float32), "average", "X"),
    (np.array([[1, 2], [np.nan, 1]], np.float32), "average", "X"),
    (np.array([[1, 2], [np.inf, 1]], np.float32), "average", "X"),
    (GOOD, "single", "method"),
    (GOOD, None, "method"),
]


@pytest.mark.parametrize("X,method,field", BAD_LINKAGE_CASES)
def test_bad_linkage_input_same_error_in_both(X: object, method: object, field: str) -> None:
    with pytest.raises(ValidationError) as ours:
        impl.linkage(X, method)
    with pytest.raises(ValidationError) as twin:
        _ref.linkage(X, method)
    assert ours.value.field == field
    assert str(ours.value) == str(twin.value)
    assert "allowed" in str(ours.value) and "example" in str(ours.value)


@pytest.mark.parametrize(
    "A,B,field",
    [
        (GOOD, np.ones((2, 5), np.float32), "B"),
        (GOOD.astype(np.float16), GOOD, "A"),
        (GOOD, np.array([[np.nan] * 4], np.float32), "B"),
        ("rows", GOOD, "A"),
    ],
)
def test_bad_cosine_input_same_error_in_both(A: object, B: object, field: str) -> None:
    with pytest.raises(ValidationError) as ours:
        impl.cosine_distances(A, B)
    with pytest.raises(ValidationError) as twin:
        _ref.cosine_distances(A, B)
    assert ours.value.field == field
    assert str(ours.value) == str(twin.value)


def test_empty_cosine_inputs() -> None:
    empty = np.zeros((0, 4), np.float32)
    assert impl.cosine_distances(empty, GOOD).shape == (0, 3)
    assert _ref.cosine_distances(GOOD, empty).shape == (3, 0)
