"""A store batch finds the same in-batch dedup candidates as a pair-by-pair search.

``batch_pairs`` lists every (later, earlier) pair of batch rows that share a key
value: the twin with array arithmetic, the compiled kernel pair by pair for small
batches (and through the twin for large ones). A plain double loop over the keys is
the reference for both, and for ``_batch_matches`` on top of them. Keys are drawn
from tiny ranges so that runs of 2 to 30 equal keys, rows sharing several keys, and
one row holding one value in two tables, are common.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import os

import pytest

from engram import _core
from engram._core import _ref
from engram.memory.space import _batch_matches

IMPLS = [_ref, _core]
if os.environ.get("ENGRAM_PURE") != "1":
    from engram._core import _store

    IMPLS.append(_store)


def _reference(keys, vectors, inv_norms, eligible, threshold):
    m = keys.shape[0]
    pairs = sorted({(later, earlier) for later in range(m) if eligible[later] for earlier in range(later)
                    if set(keys[later].tolist()) & set(keys[earlier].tolist())})
    out = {}
    for later, earlier in pairs:
        score = _core.pair_scores(vectors, inv_norms, np.array([earlier], np.int64), vectors, inv_norms,
                                  np.array([later], np.int64))[0]
        if score >= threshold:
            out.setdefault(later, []).append((float(score), earlier))
    return out


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 40), st.integers(1, 6), st.integers(1, 12), st.floats(-1.0, 1.0), st.integers(0, 2**32 - 1))
def test_pairs_match_a_double_loop(m, tables, key_range, threshold, seed) -> None:
    rng = np.random.default_rng(seed)
    # Table t's keys lie in their own range, as the LSH keys do.
    keys = rng.integers(0, key_range, (m, tables)) + (np.arange(tables) * 1000)[None, :]
    keys = np.ascontiguousarray(keys, np.int64)
    vectors = rng.standard_normal((m, 16), dtype=np.float32)
    vectors[rng.random(m) < 0.3] = vectors[0] if m else 0  # exact duplicates pass any threshold
    vectors = np.ascontiguousarray(vectors)
    inv_norms = _core.row_inv_norms(vectors) if m else np.zeros(0, np.float32)
    eligible = rng.random(m) < 0.8
    assert _batch_matches(keys, vectors, inv_norms, eligible, threshold) == \
        _reference(keys, vectors, inv_norms, eligible, threshold)


def _reference_pairs(keys, eligible):
    m = keys.shape[0]
    pairs = [(later, earlier) for later in range(m) if eligible[later] for earlier in range(later)
             if set(keys[later].tolist()) & set(keys[earlier].tolist())]
    return [p[0] for p in pairs], [p[1] for p in pairs]


@pytest.mark.kernel
@settings(max_examples=200, deadline=None)
@given(st.integers(0, 150), st.integers(0, 6), st.integers(1, 40), st.booleans(), st.integers(0, 2**32 - 1))
def test_batch_pairs_match_a_double_loop(m, tables, key_range, own_ranges, seed) -> None:
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, key_range, (m, tables))
    if own_ranges:
        keys = keys + (np.arange(tables) * 1000)[None, :]
    keys = np.ascontiguousarray(keys, np.int64)
    eligible = rng.random(m) < 0.8
    want = _reference_pairs(keys, eligible)
    for impl in IMPLS:
        later, earlier = impl.batch_pairs(keys, eligible)
        assert later.dtype == np.int64 and earlier.dtype == np.int64
        assert (later.tolist(), earlier.tolist()) == want


@pytest.mark.kernel
def test_batch_pairs_refuse_bad_arguments() -> None:
    for impl in IMPLS:
        with pytest.raises(ValueError, match="keys"):
            impl.batch_pairs(np.zeros((3, 2), np.int32), np.ones(3, bool))
        with pytest.raises(ValueError, match="eligible"):
            impl.batch_pairs(np.zeros((3, 2), np.int64), np.ones(4, bool))


@pytest.mark.kernel
@settings(max_examples=25, deadline=None)
@given(st.integers(129, 700), st.integers(1, 5), st.integers(1, 400), st.floats(0.0, 1.0), st.integers(0, 2**32 - 1))
def test_large_batch_pairs_match_the_twin(m, tables, key_range, duplicated, seed) -> None:
    """Batches past the pair-by-pair limit (the compiled kernel's hash path): the twin's
    pairs, and the double loop's, with runs of equal keys and repeated rows common."""
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, key_range, (m, tables)) + (np.arange(tables) * 1000)[None, :]
    keys[rng.random(m) < duplicated] = keys[0]  # identical vectors share every key
    keys = np.ascontiguousarray(keys, np.int64)
    eligible = rng.random(m) < 0.8
    want_later, want_earlier = _ref.batch_pairs(keys, eligible)
    if m <= 300:
        assert (want_later.tolist(), want_earlier.tolist()) == _reference_pairs(keys, eligible)
    for impl in IMPLS:
        later, earlier = impl.batch_pairs(keys, eligible)
        assert later.dtype == np.int64 and earlier.dtype == np.int64
        assert later.tolist() == want_later.tolist() and earlier.tolist() == want_earlier.tolist()
