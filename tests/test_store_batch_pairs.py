"""A store batch finds the same in-batch dedup candidates as a pair-by-pair search.

``_batch_matches`` builds every (later, earlier) pair of batch vectors that share an
LSH key with array arithmetic; here a plain double loop over the keys is the
reference. Keys are drawn from tiny ranges so that runs of 2 to 30 equal keys, and
vectors sharing several keys, are common; scores come from ``pair_scores`` in both.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from engram import _core
from engram.memory.space import _batch_matches


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
