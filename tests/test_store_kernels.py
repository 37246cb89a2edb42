"""The store-path kernels (embedding validator, inverse norms, batch preparation) equal their twins.

The validator must accept, return and refuse exactly what its twin does: every error
case is fed to both implementations, as a list, a tuple and an array, and the
engine's ValidationError must name the field, what is allowed and an example.
Hypothesis draws vectors (with NaN, infinities, huge values, zeros, ints) for the
differential tests; norms and the fused preparation must give the twins' bits.
Under ENGRAM_PURE=1 the twins face the public names.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engram import _core
from engram._core import _ref
from engram.errors import ValidationError
from engram.memory import validate
from engram.memory.dedup import BITS, DedupIndex

pytestmark = pytest.mark.kernel

COMPILED = os.environ.get("ENGRAM_PURE") != "1"
if COMPILED:
    from engram._core import _store

    impls = [_store, _ref, _core]
else:
    impls = [_ref, _core]

D = 8


def _outcome(impl, value, dimension):
    try:
        out = impl.embedding_f32(value, dimension)
    except _core.EmbeddingValueError as exc:
        return ("error", exc.problem, exc.detail)
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.float32
    assert out.shape == (dimension,)
    assert out.flags.c_contiguous
    return ("ok", out.tobytes())


ERROR_CASES = [
    ("type", None),
    ("type", "0.1, 0.2"),
    ("type", b"\x00" * 32),
    ("not_number", [0.1] * (D - 1) + ["x"]),
    ("not_number", [0.1] * (D - 1) + [None]),  # NumPy would read None as NaN
    ("not_number", [0.1] * (D - 1) + ["4"]),  # NumPy would parse the string
    ("not_number", ["0.5"] * D),
    ("not_number", [0.1] * (D - 1) + [1 + 2j]),
    ("not_number", np.ones(D, np.complex64)),  # NumPy would drop the imaginary part with a warning
    ("not_number", np.array(["1"] * D)),
    ("not_number", [0.1] * (D - 1) + [object()]),
    ("not_number", [[0.1, 0.2]] * (D // 2) + [0.3]),
    ("not_number", [0.1] * (D - 1) + [10**400]),
    ("length", [0.1] * (D - 1)),
    ("length", [0.1] * (D + 1)),
    ("length", []),
    ("length", np.ones((2, D), np.float32)),
    ("length", np.ones(D + 1, np.float32)),
    ("nonfinite", [0.1] * (D - 1) + [math.nan]),
    ("nonfinite", [0.1] * (D - 1) + [math.inf]),
    ("nonfinite", [-math.inf] + [0.1] * (D - 1)),
    ("nonfinite", np.r_[np.ones(D - 1, np.float32), np.float32("nan")].astype(np.float32)),
    ("nonfinite", np.r_[np.ones(D - 1), np.inf]),
    ("float32_range", [0.1] * (D - 1) + [1e39]),
    ("float32_range", np.r_[np.ones(D - 1), -1e300]),
    ("float32_range", [0.1] * (D - 1) + [10**39]),
    ("zero", [0.0] * D),
    ("zero", [0] * D),
    ("zero", [1e-60] * D),  # nonzero in float64, zero once cast to float32
    ("zero", np.zeros(D, np.float32)),
    ("zero", np.full(D, -0.0, np.float32)),
]


@pytest.mark.parametrize("impl", impls, ids=lambda m: m.__name__)
@pytest.mark.parametrize("problem,value", ERROR_CASES, ids=[f"{p}-{i}" for i, (p, _) in enumerate(ERROR_CASES)])
def test_every_refusal_is_the_same(impl, problem, value) -> None:
    with pytest.raises(_core.EmbeddingValueError) as info:
        impl.embedding_f32(value, D)
    assert info.value.problem == problem
    assert _outcome(impl, value, D) == _outcome(_ref, value, D)
    if isinstance(value, list):
        assert _outcome(impl, tuple(value), D) == _outcome(_ref, tuple(value), D)


def test_nan_before_a_bad_length_is_a_length_error() -> None:
    # The length is checked before the values: the order the twin specifies.
    for impl in impls:
        with pytest.raises(_core.EmbeddingValueError) as info:
            impl.embedding_f32([math.nan] * (D + 1), D)
        assert info.value.problem == "length"
        assert info.value.detail == str(D + 1)


@pytest.mark.parametrize("impl", impls, ids=lambda m: m.__name__)
def test_accepted_inputs_give_a_fresh_float32_copy(impl) -> None:
    source = np.arange(1, D + 1, dtype=np.float32) / 3
    for value in (source, source.tolist(), tuple(source.tolist()), source.astype(np.float64),
                  list(range(1, D + 1)), np.asfortranarray(source), source[::-1].copy()[::-1],
                  [np.float64(x) for x in source], [True] + [0.5] * (D - 1)):
        out = impl.embedding_f32(value, D)
        expected = np.asarray(value, np.float64).astype(np.float32)
        assert out.tobytes() == expected.tobytes()
        assert out.dtype == np.float32 and out.flags.c_contiguous and out.flags.owndata
    out = impl.embedding_f32(source, D)
    out[0] = 99.0
    assert source[0] != 99.0  # a copy, never a view of the caller's array


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
anything = st.one_of(finite, st.floats(), st.integers(-(2**70), 2**70), st.sampled_from([0, 0.0, -0.0, 1e-50, 3.5e38]))


@settings(max_examples=300, deadline=None)
@given(st.lists(anything, min_size=D - 1, max_size=D + 1))
def test_lists_match_the_twin(values) -> None:
    expected = _outcome(_ref, values, D)
    for impl in impls:
        assert _outcome(impl, values, D) == expected
        assert _outcome(impl, tuple(values), D) == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(width=32), min_size=D, max_size=D))
def test_float32_arrays_match_the_twin(values) -> None:
    array = np.array(values, np.float32)
    expected = _outcome(_ref, array, D)
    for impl in impls:
        assert _outcome(impl, array, D) == expected
        assert _outcome(impl, array[::1], D) == expected


@pytest.mark.parametrize("value,needle", [
    (None, "got NoneType"), ([0.1] * 3, "received 3"), ([0.1] * (D - 1) + [math.nan], "NaN or infinity"),
    ([0.1] * (D - 1) + ["x"], "not a number"), ([1e39] * D, "too large for float32"), ([0.0] * D, "zero vector"),
    (np.ones((2, D), np.float32), "shape (2, 8)"),
])
def test_validation_errors_name_field_rule_and_example(value, needle) -> None:
    with pytest.raises(ValidationError) as info:
        validate.embedding(value, D, "items[3].embedding")
    message = str(info.value)
    assert "items[3].embedding" in message
    assert needle in message
    assert f"{D}" in message
    assert "[0.1, 0.2, ...]" in message
    assert isinstance(info.value, ValueError)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 40), st.integers(1, 70), st.integers(0, 2**32 - 1))
def test_row_inv_norms_give_the_twins_bits(n, d, seed) -> None:
    rng = np.random.default_rng(seed)
    matrix = (rng.standard_normal((n, d)) * 10.0 ** rng.integers(-20, 20, (n, 1))).astype(np.float32)
    matrix[rng.random(n) < 0.2] = 0.0
    expected = _ref.row_inv_norms(matrix)
    for impl in impls:
        assert impl.row_inv_norms(matrix).tobytes() == expected.tobytes()
    nonzero = expected > 0
    exact = 1.0 / np.sqrt(np.sum(matrix[nonzero].astype(np.float64) ** 2, axis=1))
    assert np.allclose(expected[nonzero], exact, rtol=1e-6)
    assert (expected[~nonzero] == 0).all()


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 120), st.sampled_from([8, 33, 768]), st.integers(0, 2**32 - 1))
def test_prepare_rows_is_norms_codes_and_keys(b, d, seed) -> None:
    rng = np.random.default_rng(seed)
    matrix = rng.standard_normal((b, d), dtype=np.float32)
    planes = DedupIndex(d)._planes
    expected = (_ref.row_inv_norms(matrix), *_ref.quantize_rows(matrix), _ref.lsh_keys(_ref.quantize_rows(matrix)[0], planes, BITS))
    for impl in impls:
        got = impl.prepare_rows(matrix, planes, BITS)
        assert len(got) == 4
        for a, e in zip(got, expected):
            assert a.dtype == e.dtype and a.shape == e.shape
            assert a.tobytes() == e.tobytes()


@pytest.mark.parametrize("b", [1024, 1501])
def test_prepare_rows_of_a_bulk_batch_equal_its_parts(b) -> None:
    """From 1,024 rows the compiled kernel does the second half on a thread of its own,
    writing into the same arrays: the twin's bits for every row, either side of the
    split; a non-finite value in either half is refused as in one pass."""
    rng = np.random.default_rng(b)
    d = 40
    matrix = rng.standard_normal((b, d), dtype=np.float32)
    matrix[b // 2] = 0.0  # a zero row right at the split
    planes = DedupIndex(d)._planes
    codes, scales = _ref.quantize_rows(matrix)
    expected = (_ref.row_inv_norms(matrix), codes, scales, _ref.lsh_keys(codes, planes, BITS))
    for impl in impls:
        got = impl.prepare_rows(matrix, planes, BITS)
        for a, e in zip(got, expected):
            assert a.dtype == e.dtype and a.shape == e.shape
            assert a.tobytes() == e.tobytes()
        for row in (3, b - 2):
            bad = matrix.copy()
            bad[row, 1] = np.nan
            with pytest.raises(ValueError, match="NaN or infinity"):
                impl.prepare_rows(bad, planes, BITS)


def test_prepare_rows_refuses_what_its_parts_refuse() -> None:
    planes = DedupIndex(D)._planes
    bad = np.ones((2, D), np.float32)
    bad[1, 3] = np.inf
    for impl in impls:
        with pytest.raises(ValueError, match="NaN or infinity"):
            impl.prepare_rows(bad, planes, BITS)
        with pytest.raises(ValueError, match="float32"):
            impl.prepare_rows(np.ones((2, D)), planes, BITS)
        with pytest.raises(ValueError, match="C-contiguous"):
            impl.prepare_rows(np.ones((D, 2), np.float32).T, planes, BITS)
        with pytest.raises(ValueError, match="planes"):
            impl.prepare_rows(np.ones((2, D + 1), np.float32), planes, BITS)


@pytest.mark.parametrize("d", [64, 100, 130, 768])
def test_dedup_prefilter_is_exact_at_every_width(d) -> None:
    # The int8 bound's integers come from a VNNI path for whole 64-byte blocks and a
    # scalar tail: queries at cosines around each threshold, rows with saturated codes,
    # every pair a candidate; the output must be the twin's, bit for bit.
    rng = np.random.default_rng(d)
    n, b = 300, 120
    matrix = rng.standard_normal((n, d)).astype(np.float32)
    matrix[: n // 4, 0] = 1e4  # codes 127 there, near 0 elsewhere
    matrix[n // 4 : n // 2] = np.sign(matrix[n // 4 : n // 2])  # codes all +-127
    targets = rng.integers(0, n, b)
    unit = matrix[targets] / np.linalg.norm(matrix[targets], axis=1, keepdims=True)
    noise = rng.standard_normal((b, d)).astype(np.float32)
    noise -= (noise * unit).sum(1, keepdims=True) * unit
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    for threshold in (0.5, 0.95, 0.999):
        cosines = np.clip(rng.uniform(threshold - 0.02, threshold + 0.02, b), -1, 1)
        queries = (unit * cosines[:, None] + noise * np.sqrt(1 - cosines**2)[:, None]).astype(np.float32)
        inv = _core.row_inv_norms(matrix)
        q_inv = _core.row_inv_norms(queries)
        codes, scales = _core.quantize_rows(matrix)
        query_codes, query_scales = _core.quantize_rows(queries)
        keys = np.zeros((b, 1), np.int64)
        args = (keys, np.ones(b, bool), np.array([0, n], np.int64), np.arange(n, dtype=np.int64), None, None,
                np.ones(n, bool), np.zeros(n, bool), matrix, inv, queries, q_inv, threshold)
        expected = _ref.dedup_matches(*args)
        assert expected[0].size > 10
        for impl in impls[1:] if not COMPILED else [_core]:
            got = impl.dedup_matches(*args, codes, scales, query_codes, query_scales)
            assert [part.tobytes() for part in got] == [part.tobytes() for part in expected]


@pytest.mark.parametrize("impl", impls)
@pytest.mark.parametrize("n", [1, 2, 25, 86, 200])
def test_stack_rows_is_np_stack(impl, n) -> None:
    # 86 rows of 768 is past the compiled kernel's GIL threshold: it hands over to the twin.
    rng = np.random.default_rng(n)
    vectors = [rng.standard_normal(768).astype(np.float32) for _ in range(n)]
    out = impl.stack_rows_f32(vectors, 768)
    assert out.dtype == np.float32 and out.shape == (n, 768) and out.flags.c_contiguous
    assert out.tobytes() == np.stack(vectors).tobytes()
    vectors[0][0] = 99.0
    assert out[0, 0] != 99.0  # a copy, not a view


@pytest.mark.parametrize("impl", impls)
def test_stack_rows_refuses_other_shapes_and_types(impl) -> None:
    good = np.ones(8, np.float32)
    for bad in ([], [good, np.ones(7, np.float32)], [good, np.ones(8, np.float64)], [good, [1.0] * 8]):
        with pytest.raises(ValueError):
            impl.stack_rows_f32(bad, 8)
    # A strided (non-contiguous) row is copied right, by the twin.
    strided = np.arange(16, dtype=np.float32)[::2]
    assert impl.stack_rows_f32([good, strided], 8).tobytes() == np.stack([good, strided]).tobytes()
