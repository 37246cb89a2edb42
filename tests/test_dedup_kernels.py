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


@pytest.mark.parametrize("d", [130, 768])
def test_lsh_keys_in_row_blocks_equal_twin(d: int) -> None:
    """Rows go four at a time through the vector kernel, the rest of a block of 32 one
    at a time: 37 rows take both ways in two blocks; the int8 extremes give the largest
    sums each block reduces."""
    rng = np.random.default_rng(d)
    codes = rng.choice(np.array([-128, 127, 0, 1], np.int8), size=(37, d))
    planes = rng.choice(np.array([-128, 127, -1], np.int8), size=(20, d))
    expected = _ref.lsh_keys(codes, planes, 5)
    for impl in impls:
        assert impl.lsh_keys(codes, planes, 5).tolist() == expected.tolist()
        assert impl.lsh_keys(codes[33:], planes, 5).tolist() == expected[33:].tolist()


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


@given(st.integers(1, 40), st.integers(0, 6), st.integers(0, 2**32 - 1))
@settings(max_examples=150, deadline=None)
def test_quantize_rows_equals_twin(d: int, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    magnitudes = rng.choice(np.array([0.0, 1e-38, 1e-3, 1.0, 1e4, 1e37]), size=(n, 1))
    matrix = (rng.standard_normal((n, d)) * magnitudes).astype(np.float32)
    if n:
        matrix[rng.integers(0, n)] = np.round(matrix[0] * 2) / 2  # halves: rint ties to even
    expected_codes, expected_scales = _ref.quantize_rows(matrix)
    # The half-step error bound holds where the scale is a normal float32. A subnormal
    # scale (rows of magnitude ~1e-41) is rounded to few bits, and max|x| / scale can
    # then exceed 127 by up to a step (found by hypothesis: 0.8 of a step off). Such
    # rows cannot be stored: the engine refuses embeddings of norm below 1e-15.
    normal = expected_scales >= np.finfo(np.float32).tiny
    error = np.abs(matrix - expected_codes.astype(np.float32) * expected_scales[:, None])
    assert np.all((error <= expected_scales[:, None] / 2 * 1.0001 + 1e-45)[normal])
    for impl in impls:
        codes, scales = impl.quantize_rows(matrix)
        assert codes.tobytes() == expected_codes.tobytes()
        assert scales.tobytes() == expected_scales.tobytes()


def test_quantize_rows_rejects_non_finite() -> None:
    for impl in impls + [_ref]:
        for bad in (np.nan, np.inf):
            m = np.ones((2, 8), np.float32)
            m[1, 3] = bad
            with pytest.raises(ValueError, match="NaN or infinity"):
                impl.quantize_rows(m)


def _index_arrays(rng: np.random.Generator, n: int, keys_count: int, slots: int):
    """A base over the first rows (CSR) and a slot table over the rest, as DedupIndex keeps them."""
    tables = 3
    row_keys = rng.integers(0, keys_count, (n, tables)).astype(np.int64)
    base_n = int(rng.integers(0, n + 1))
    flat = row_keys[:base_n].T.reshape(-1)  # entry j: table j // base_n, row j % base_n
    order = np.argsort(flat, kind="stable")
    base_rows = np.tile(np.arange(base_n, dtype=np.int64), tables)[order]
    start = np.zeros(keys_count + 1, np.int64)
    np.cumsum(np.bincount(flat, minlength=keys_count), out=start[1:])
    slot_rows = np.full((keys_count, slots), -7, np.int64)  # unheld slots hold junk
    slot_count = np.zeros(keys_count, np.int64)
    for row in range(base_n, n):
        for key in row_keys[row].tolist():
            if slot_count[key] < slots:
                slot_rows[key, slot_count[key]] = row
            slot_count[key] += 1
    return tables, (start if base_n else None), base_rows, slot_rows, slot_count


@given(st.integers(1, 30), st.integers(1, 5), st.integers(0, 2**32 - 1), st.booleans())
@settings(max_examples=150, deadline=None)
def test_dedup_matches_equal_twin(n: int, b: int, seed: int, with_slots: bool) -> None:
    rng = np.random.default_rng(seed)
    d = int(rng.integers(1, 40))
    keys_count = int(rng.integers(1, 12))
    tables, base_start, base_rows, slot_rows, slot_count = _index_arrays(rng, n, keys_count, 2)
    if not with_slots:
        slot_rows = slot_count = None
    matrix = rng.integers(-2, 3, (n + 3, d)).astype(np.float32)  # rows past n: capacity, as in a space
    queries = matrix[rng.integers(0, n, b)] + rng.integers(0, 2, (b, d)).astype(np.float32)  # near and exact duplicates
    inv = _core.row_inv_norms(matrix)
    q_inv = _core.row_inv_norms(queries)
    alive = rng.random(n + 3) < 0.8
    episodic = rng.random(n + 3) < 0.2
    eligible = rng.random(b) < 0.8
    keys = rng.integers(0, keys_count, (b, tables)).astype(np.int64)
    threshold = float(rng.choice([0.0, 0.5, 0.95, 1.0]))
    expected = _ref.dedup_matches(keys, eligible, base_start, base_rows, slot_rows, slot_count, alive, episodic,
                                  matrix, inv, queries, q_inv, threshold)
    # The specification spelt out: candidates by key, alive and not episodic, pair score >= threshold.
    want = []
    for i in range(b):
        if not eligible[i]:
            continue
        rows = set()
        for key in keys[i].tolist():
            if base_start is not None:
                rows.update(base_rows[base_start[key] : base_start[key + 1]].tolist())
            if slot_rows is not None:
                rows.update(slot_rows[key, : min(int(slot_count[key]), 2)].tolist())
        for row in sorted(rows):
            if alive[row] and not episodic[row]:
                score = _ref.cosine_scores(matrix[row : row + 1], inv[row : row + 1], queries[i : i + 1], q_inv[i : i + 1])[0, 0]
                if score >= np.float32(threshold):
                    want.append((i, row, float(score)))
    assert list(zip(*(part.tolist() for part in expected))) == want
    codes, scales = _ref.quantize_rows(matrix)
    query_codes, query_scales = _ref.quantize_rows(queries)
    for impl in impls:
        got = impl.dedup_matches(keys, eligible, base_start, base_rows, slot_rows, slot_count, alive, episodic,
                                 matrix, inv, queries, q_inv, threshold)
        assert [part.tobytes() for part in got] == [part.tobytes() for part in expected]
        # The int8 prefilter skips only rows that cannot pass: the same output.
        got = impl.dedup_matches(keys, eligible, base_start, base_rows, slot_rows, slot_count, alive, episodic,
                                 matrix, inv, queries, q_inv, threshold, codes, scales, query_codes, query_scales)
        assert [part.tobytes() for part in got] == [part.tobytes() for part in expected]


def test_dedup_prefilter_keeps_every_pair_at_the_threshold_on_random_768() -> None:
    # Queries at controlled cosines around 0.95 to rows of a random matrix: the int8
    # bound must never drop a pair whose float32 score passes.
    rng = np.random.default_rng(21)
    n, d, b = 400, 768, 200
    matrix = rng.standard_normal((n, d)).astype(np.float32)
    targets = rng.integers(0, n, b)
    noise = rng.standard_normal((b, d)).astype(np.float32)
    unit = matrix[targets] / np.linalg.norm(matrix[targets], axis=1, keepdims=True)
    noise -= (noise * unit).sum(1, keepdims=True) * unit
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    cosines = rng.uniform(0.93, 0.97, b)
    queries = (unit * cosines[:, None] + noise * np.sqrt(1 - cosines**2)[:, None]).astype(np.float32)
    queries *= rng.uniform(0.1, 10, (b, 1)).astype(np.float32)
    inv = _core.row_inv_norms(matrix)
    q_inv = _core.row_inv_norms(queries)
    codes, scales = _core.quantize_rows(matrix)
    query_codes, query_scales = _core.quantize_rows(queries)
    keys = np.zeros((b, 1), np.int64)  # one key holding every row: all pairs are candidates
    start = np.array([0, n], np.int64)
    rows = np.arange(n, dtype=np.int64)
    args = (keys, np.ones(b, bool), start, rows, None, None, np.ones(n, bool), np.zeros(n, bool), matrix, inv, queries, q_inv, 0.95)
    expected = _ref.dedup_matches(*args)
    assert 50 < expected[0].size < b  # pairs on both sides of the threshold
    for impl in impls:
        got = impl.dedup_matches(*args, codes, scales, query_codes, query_scales)
        assert [part.tobytes() for part in got] == [part.tobytes() for part in expected]


def test_dedup_matches_refuses_rows_outside_the_matrix() -> None:
    matrix = np.ones((4, 8), np.float32)
    inv = _core.row_inv_norms(matrix)
    start = np.array([0, 1, 1], np.int64)
    for impl in impls:
        with pytest.raises(ValueError, match="outside"):
            impl.dedup_matches(np.array([[0]], np.int64), np.ones(1, bool), start, np.array([9], np.int64), None, None,
                               np.ones(4, bool), np.zeros(4, bool), matrix, inv, matrix[:1].copy(), inv[:1].copy(), 0.5)


def test_dedup_matches_refuses_keys_and_offsets_outside_the_index() -> None:
    matrix = np.ones((4, 8), np.float32)
    inv = _core.row_inv_norms(matrix)
    rows = np.array([0, 1], np.int64)
    good = np.array([0, 1, 2], np.int64)
    for impl in impls + [_ref]:
        with pytest.raises(ValueError, match="keys"):
            impl.dedup_matches(np.array([[2]], np.int64), np.ones(1, bool), good, rows, None, None,
                               np.ones(4, bool), np.zeros(4, bool), matrix, inv, matrix[:1].copy(), inv[:1].copy(), 0.5)
        with pytest.raises(ValueError, match="base_start"):
            impl.dedup_matches(np.array([[1]], np.int64), np.ones(1, bool), np.array([0, 1, 5], np.int64), rows, None, None,
                               np.ones(4, bool), np.zeros(4, bool), matrix, inv, matrix[:1].copy(), inv[:1].copy(), 0.5)


@given(st.integers(1, 6), st.integers(1, 3), st.integers(0, 40), st.integers(1, 4), st.integers(0, 2**32 - 1))
@settings(max_examples=150, deadline=None)
def test_slot_insert_equals_twin(key_count: int, slots: int, n: int, tables: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, 1000, n).astype(np.int64)
    keys = rng.integers(0, key_count, (n, tables)).astype(np.int64)
    start_counts = rng.integers(0, slots + 2, key_count).astype(np.int64)
    start_rows = rng.integers(0, 1000, (key_count, slots)).astype(np.int64)
    expected_rows, expected_count = start_rows.copy(), start_counts.copy()
    expected = _ref.slot_insert(expected_rows, expected_count, rows, keys)
    # The rule spelt out: each (row, key) in order takes the key's next slot while there is one.
    count = start_counts.copy()
    held = {k: list(start_rows[k, : min(count[k], slots)]) for k in range(key_count)}
    spilled = []
    for row, row_keys in zip(rows.tolist(), keys.tolist()):
        for key in row_keys:
            if count[key] < slots:
                held[key].append(row)
            else:
                spilled.append((key, row))
            count[key] += 1
    assert expected_count.tolist() == count.tolist()
    assert list(zip(expected[0].tolist(), expected[1].tolist())) == spilled
    for k in range(key_count):
        assert expected_rows[k, : min(count[k], slots)].tolist() == held[k][:slots]
    for impl in impls:
        got_rows, got_count = start_rows.copy(), start_counts.copy()
        got = impl.slot_insert(got_rows, got_count, rows, keys)
        assert got_count.tolist() == expected_count.tolist()
        assert [g.tolist() for g in got] == [e.tolist() for e in expected]
        for k in range(key_count):
            held_k = min(int(expected_count[k]), slots)
            assert got_rows[k, :held_k].tolist() == expected_rows[k, :held_k].tolist()


def test_slot_insert_of_a_bulk_batch_equals_twin() -> None:
    """Past the size where the compiled loop releases the GIL (and asks for slots rows
    ahead): the twin's slots, counts and spills, many keys overflowing."""
    rng = np.random.default_rng(9)
    key_count, slots, n, tables = 5000, 3, 20000, 4
    rows = np.arange(7, 7 + n, dtype=np.int64)
    keys = rng.integers(0, key_count, (n, tables)).astype(np.int64)
    start_rows = np.full((key_count, slots), -1, np.int64)
    expected_rows, expected_count = start_rows.copy(), np.zeros(key_count, np.int64)
    expected = _ref.slot_insert(expected_rows, expected_count, rows, keys)
    assert expected[0].size > 1000
    for impl in impls:
        got_rows, got_count = start_rows.copy(), np.zeros(key_count, np.int64)
        got = impl.slot_insert(got_rows, got_count, rows, keys)
        assert got_count.tolist() == expected_count.tolist()
        assert got_rows.tolist() == expected_rows.tolist()
        assert [g.tolist() for g in got] == [e.tolist() for e in expected]


def test_large_batches_in_two_halves_give_the_same_output(monkeypatch) -> None:
    """A batch of PARALLEL_ROWS_MIN rows or more is prepared and looked up in two halves,
    one on another thread; the arrays must be the ones one call over the whole gives,
    with matches in both halves, against the sorted base, the delta and spilled buckets."""
    from engram.memory import dedup

    rng = np.random.default_rng(5)
    d = 16
    stored = rng.standard_normal((3000, d)).astype(np.float32)
    stored[2500:2520] = stored[2499]  # one key's delta bucket overflows into the spill dict
    queries = rng.standard_normal((1500, d)).astype(np.float32)
    queries[::7] = stored[rng.integers(0, 3000, queries[::7].shape[0])] + 0.01  # near duplicates everywhere
    queries[1400] = stored[2499]
    alive = np.ones(3000, bool)
    episodic = np.zeros(3000, bool)
    eligible = rng.random(1500) < 0.9
    eligible[1400] = True

    def run(parallel: bool):
        with monkeypatch.context() as m:
            m.setattr(dedup, "_PARALLEL", parallel)
            index = dedup.DedupIndex(d)
            inv, codes, scales, keys = index.prepare(stored)
            index.rebuild(keys[:2000])
            index.add_rows(np.arange(2000, 3000, dtype=np.int64), keys[2000:])
            prepared = index.prepare(np.ascontiguousarray(queries))
            q_inv, q_codes, q_scales, q_keys = prepared
            found = index.matches_batch(q_keys, eligible, alive, episodic, stored, inv, queries, q_inv, 0.9,
                                        codes, scales, q_codes, q_scales)
        assert index._spill  # the spilled bucket is part of the lookup
        return [a.tobytes() for a in (inv, codes, scales, keys, *prepared, *found)], found

    whole, _ = run(False)
    halves, found = run(True)
    assert halves == whole
    query = found[0]
    assert query.size and query.min() < 750 <= query.max()  # matches in both halves
    assert 1400 in query.tolist()


@given(st.integers(0, 700), st.integers(1, 5), st.integers(1, 6), st.integers(0, 2**32 - 1))
@settings(max_examples=80, deadline=None)
def test_base_index_equals_twin_and_the_rule(n: int, tables: int, bits: int, seed: int) -> None:
    """The dedup index's sorted base (rebuild): for each key, the rows holding it,
    ascending, in one CSR; the compiled counting sort (in blocks of 256 rows) gives
    the twin's arrays. Few bits: long runs of equal keys across block boundaries."""
    rng = np.random.default_rng(seed)
    keys = np.ascontiguousarray(rng.integers(0, 1 << bits, (n, tables)) + (np.arange(tables) << bits)[None, :], np.int64)
    rows, start = _ref.base_index(keys, bits)
    assert rows.dtype == np.int64 and start.dtype == np.int64 and start.shape == ((tables << bits) + 1,)
    for key in range(tables << bits):
        table = key >> bits
        assert rows[start[key] : start[key + 1]].tolist() == [i for i in range(n) if keys[i, table] == key]
    for impl in impls:
        got = impl.base_index(keys, bits)
        assert got[0].tolist() == rows.tolist() and got[1].tolist() == start.tolist()


def test_base_index_refuses_keys_outside_their_table() -> None:
    keys = np.array([[0, 5], [3, 4]], np.int64)  # table 1's keys lie in [4, 8) for bits=2
    for impl in impls + [_ref]:
        assert impl.base_index(keys, 2)[1].tolist() == [0, 1, 1, 1, 2, 3, 4, 4, 4]
        for bad in (np.array([[0, 3]], np.int64), np.array([[4, 4]], np.int64), np.array([[-1, 4]], np.int64),
                    np.array([[0, 8]], np.int64)):
            with pytest.raises(ValueError, match=r"table t's keys must lie in \[t << 2"):
                impl.base_index(bad, 2)
        with pytest.raises(ValueError, match="keys: must be"):
            impl.base_index(keys.astype(np.int32), 2)
        with pytest.raises(ValueError, match="bits"):
            impl.base_index(keys, 0)
