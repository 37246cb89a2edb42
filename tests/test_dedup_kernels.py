"""The dedup kernels (LSH keys over int8 codes, cosines of pairs) give their twins' bits.

LSH keys are exact integer arithmetic, so the compiled kernel (AVX2 four planes at
a time, or scalar) must equal the NumPy twin bit for bit, including dimensions that
are not a multiple of the SIMD width and plane counts that are not a multiple of
four. Pair scores must equal, bit for bit, the entry ``cosine_scores`` gives for
the same row and query: dedup in a batch then decides exactly as one by one.
Hypothesis draws the inputs; under ENGRAM_PURE=1 the twins face the public names.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engram import _core
from engram._core import _ref

pytestmark = pytest.mark.kernel

COMPILED = os.environ.get("ENGRAM_PURE") != "1"
if COMPILED:
    from engram._core import _dedup

    impls = [_dedup, _core]
else:
    impls = [_core]


@given(st.integers(1, 70), st.integers(1, 9), st.integers(1, 6), st.integers(0, 2**32 - 1), st.booleans())
@settings(max_examples=150, deadline=None)
def test_lsh_keys_equal_twin(d: int, b: int, bits: int, seed: int, extreme: bool) -> None:
    rng = np.random.default_rng(seed)
    tables = int(rng.integers(1, 7))
    if extreme:  # the int8 extremes: the largest products and sums
        codes = rng.choice(np.array([-128, 127], np.int8), size=(b, d))
        planes = rng.choice(np.array([-128, 127], np.int8), size=(tables * bits, d))
    else:
        codes = rng.integers(-128, 128, (b, d)).astype(np.int8)
        planes = rng.integers(-3, 4, (tables * bits, d)).astype(np.int8)  # small: many zero dots (bit 0)
    expected = _ref.lsh_keys(codes, planes, bits)
    assert expected.dtype == np.int64 and expected.shape == (b, tables)
    # The specification, spelt out: exact integer dots, bit j when > 0, table offset.
    dots = codes.astype(np.int64) @ planes.astype(np.int64).T
    for i in range(b):
        for t in range(tables):
            key = sum(1 << j for j in range(bits) if dots[i, t * bits + j] > 0)
            assert expected[i, t] == key + (t << bits)
    for impl in impls:
        assert impl.lsh_keys(codes, planes, bits).tolist() == expected.tolist()


def test_lsh_keys_at_768_and_batch_equals_single() -> None:
    rng = np.random.default_rng(11)
    codes = rng.integers(-127, 128, (40, 768)).astype(np.int8)
    planes = np.clip(np.rint(rng.standard_normal((336, 768)) * 32), -127, 127).astype(np.int8)
    expected = _ref.lsh_keys(codes, planes, 14)
    for impl in impls:
        batch = impl.lsh_keys(codes, planes, 14)
        assert batch.tolist() == expected.tolist()
        for i in (0, 17, 39):
            assert impl.lsh_keys(codes[i : i + 1], planes, 14).tolist() == expected[i : i + 1].tolist()


def test_lsh_keys_reject_bad_arguments() -> None:
    codes = np.zeros((2, 8), np.int8)
    planes = np.zeros((6, 8), np.int8)
    for impl in impls:
        with pytest.raises(ValueError, match="codes"):
            impl.lsh_keys(codes.astype(np.int16), planes, 3)
        with pytest.raises(ValueError, match="planes"):
            impl.lsh_keys(codes, planes[:, :7].copy(), 3)
        with pytest.raises(ValueError, match="multiple"):
            impl.lsh_keys(codes, planes, 4)
        with pytest.raises(ValueError, match="bits"):
            impl.lsh_keys(codes, planes, 0)


@given(st.integers(1, 50), st.integers(1, 12), st.integers(1, 6), st.integers(0, 60), st.integers(0, 2**32 - 1))
@settings(max_examples=150, deadline=None)
def test_pair_scores_equal_cosine_scores_bits(d: int, n: int, b: int, count: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    # Small integers make exact ties and cancellations common; some rows are zero.
    matrix = rng.integers(-3, 4, (n, d)).astype(np.float32)
    queries = (rng.standard_normal((b, d)) * 10).astype(np.float32)
    inv = _core.row_inv_norms(matrix)
    q_inv = _core.row_inv_norms(queries)
    rows = rng.integers(0, n, count).astype(np.int64)
    query_of = rng.integers(0, b, count).astype(np.int64)
    full = _ref.cosine_scores(matrix, inv, queries, q_inv)
    expected = full[query_of, rows]
    twin = _ref.pair_scores(matrix, inv, rows, queries, q_inv, query_of)
    assert twin.dtype == np.float32
    assert twin.view(np.uint32).tolist() == expected.view(np.uint32).tolist()
    for impl in impls:
        got = impl.pair_scores(matrix, inv, rows, queries, q_inv, query_of)
        assert got.view(np.uint32).tolist() == expected.view(np.uint32).tolist()


def test_pair_scores_read_rows_in_place_and_reject_bad_indices() -> None:
    rng = np.random.default_rng(5)
    matrix = rng.standard_normal((20, 768)).astype(np.float32)
    inv = np.zeros(32, np.float32)  # longer than the matrix, as a growing space's arrays are
    inv[:20] = _core.row_inv_norms(matrix)
    q = rng.standard_normal((3, 768)).astype(np.float32)
    qi = _core.row_inv_norms(q)
    rows = np.array([19, 0, 7], np.int64)
    which = np.array([2, 0, 1], np.int64)
    expected = _ref.cosine_scores(matrix, inv[:20].copy(), q, qi)[which, rows]
    for impl in impls:
        assert impl.pair_scores(matrix, inv, rows, q, qi, which).tobytes() == expected.tobytes()
        with pytest.raises(ValueError, match="rows"):
            impl.pair_scores(matrix, inv, np.array([20], np.int64), q, qi, np.array([0], np.int64))
        with pytest.raises(ValueError, match="query_of"):
            impl.pair_scores(matrix, inv, np.array([0], np.int64), q, qi, np.array([3], np.int64))
        with pytest.raises(ValueError, match="rows"):
            impl.pair_scores(matrix, inv, np.array([0], np.int32), q, qi, np.array([0], np.int64))
