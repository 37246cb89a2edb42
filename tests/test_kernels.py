"""The compiled kernels give exactly what their twins in engram/_core/_ref.py give.

Hypothesis draws inputs; both implementations run in one process and must agree:
indices and score bits exactly for top-k, bytes and errors exactly for the WAL
codec. Run again under ENGRAM_PURE=1 by CI (the twin then faces itself, and the
public entry points are the twins), which also proves the suite runs without
compiled code.
"""

from __future__ import annotations

import copy

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
    from engram._core import _topk, _walcodec

    impls = [(_topk, _walcodec)]
else:
    impls = [(_ref, _ref)]


def test_impl_is_named() -> None:
    assert _core.IMPL == ("compiled" if COMPILED else "python")


def test_crc32c_known_vectors() -> None:
    # RFC 3720 (iSCSI) check value and a 32-byte zero block.
    assert _ref.crc32c(b"123456789") == 0xE3069283
    assert _core.crc32c(b"123456789") == 0xE3069283
    assert _core.crc32c(bytes(32)) == 0x8A9136AA


@given(st.binary(max_size=300), st.integers(0, 0xFFFFFFFF))
@settings(max_examples=200, deadline=None)
def test_crc32c_equals_twin(data: bytes, start: int) -> None:
    for _, codec in impls:
        assert codec.crc32c(data, start) == _ref.crc32c(data, start)
        # Continuing a CRC over two halves equals one pass.
        half = len(data) // 2
        assert codec.crc32c(data[half:], codec.crc32c(data[:half])) == _ref.crc32c(data)


@given(
    st.integers(0, 255), st.integers(0, 0xFFFF), st.integers(0, 2**64 - 1),
    st.integers(-(2**63), 2**63 - 1), st.binary(max_size=200),
)
@settings(max_examples=200, deadline=None)
def test_record_roundtrip_equals_twin(rtype: int, flags: int, lsn: int, ts: int, payload: bytes) -> None:
    expected = _ref.encode_record(rtype, flags, lsn, ts, payload)
    for _, codec in impls:
        encoded = codec.encode_record(rtype, flags, lsn, ts, payload)
        assert encoded == expected
        assert codec.decode_record(b"xx" + encoded, 2) == (rtype, flags, lsn, ts, payload, 2 + len(encoded))


@given(st.binary(min_size=1, max_size=120), st.data())
@settings(max_examples=300, deadline=None)
def test_damaged_records_raise_the_same_error(payload: bytes, data: st.DataObject) -> None:
    record = bytearray(_ref.encode_record(1, 0, 7, 0, payload))
    position = data.draw(st.integers(0, len(record) - 1))
    record[position] ^= data.draw(st.integers(1, 255))
    cut = data.draw(st.integers(0, len(record)))
    damaged = bytes(record[:cut])

    def outcome(codec):
        try:
            return ("ok", codec.decode_record(damaged, 0))
        except _core.RecordError as exc:
            return (type(exc).__name__, exc.offset)

    expected = outcome(_ref)
    assert expected[0] != "ok"  # CRC32C detects every single-byte change and every cut
    for _, codec in impls:
        assert outcome(codec) == expected


@given(
    st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=300)), min_size=1, max_size=40),
    st.one_of(st.integers(0, 2**40), st.integers(2**64 - 41, 2**64 - 1)),
    st.integers(-(2**63), 2**63 - 1), st.integers(0, 64), st.booleans(),
)
@settings(max_examples=200, deadline=None)
def test_records_into_a_buffer_equal_the_joined_records(entries, first_lsn, ts, spare, as_numpy) -> None:
    """encode_records_into writes the very bytes of encode_record for each entry, back to
    back, into a (longer, reused) buffer; LSNs up to the largest."""
    if first_lsn + len(entries) - 1 > 2**64 - 1:
        first_lsn = 2**64 - len(entries)
    want = b"".join(_ref.encode_record(rtype, 0, first_lsn + i, ts, payload) for i, (rtype, payload) in enumerate(entries))
    for _, codec in impls + [("twin", _ref)]:
        out = np.full(len(want) + spare, 7, np.uint8) if as_numpy else bytearray(b"\x07" * (len(want) + spare))
        assert codec.encode_records_into(out, entries, first_lsn, ts) == len(want)
        assert bytes(out[: len(want)]) == want and bytes(out[len(want):]) == b"\x07" * spare
    # first_flags marks the first record only (the log's write-start flag): its header differs, the rest not.
    flagged = _ref.encode_record(entries[0][0], 0x0101, first_lsn, ts, entries[0][1])
    for _, codec in impls + [("twin", _ref)]:
        out = bytearray(len(want))
        assert codec.encode_records_into(out, entries, first_lsn, ts, 0x0101) == len(want)
        assert bytes(out[: len(flagged)]) == flagged and bytes(out[len(flagged):]) == want[len(flagged):]


def test_records_into_a_buffer_at_bulk_size() -> None:
    """A batch past the size where the compiled loop releases the GIL: the same bytes."""
    rng = np.random.default_rng(3)
    entries = [(1, rng.bytes(3100)) for _ in range(400)] + [(4, b"")]
    want = b"".join(_ref.encode_record(rtype, 0, 50 + i, 99, payload) for i, (rtype, payload) in enumerate(entries))
    for _, codec in impls:
        out = np.empty(len(want), np.uint8)
        assert codec.encode_records_into(out, entries, 50, 99) == len(want)
        assert out.tobytes() == want
        flagged = _ref.encode_record(1, 1, 50, 99, entries[0][1])  # and with the first record flagged, without the GIL
        assert codec.encode_records_into(out, entries, 50, 99, 1) == len(want)
        assert out.tobytes() == flagged + want[len(flagged):]


def _outcome(fn):
    try:
        return ("ok", fn())
    except (ValueError, OverflowError, TypeError) as exc:
        return (type(exc).__name__, str(exc))


@pytest.mark.parametrize("case", ["rtype", "lsn", "lsn_past_end", "ts", "short", "readonly", "not_buffer", "wide_items",
                                  "payload_bytearray", "payload_memoryview", "entry_list", "empty"])
def test_records_into_a_buffer_refuse_as_the_twin(case: str) -> None:
    """Bad entries, ranges and buffers: the twin's error (nothing written), or for
    bytes-like payloads and list entries the twin's bytes."""
    entries: list = [(1, b"abc"), (2, b"defg")]
    out: object = bytearray(200)
    lsn, ts = 5, 0
    if case == "rtype":
        entries[1] = (256, b"x")
    elif case == "lsn":
        lsn = -1
    elif case == "lsn_past_end":
        lsn = 2**64 - 1  # the second record's LSN is out of range
    elif case == "ts":
        ts = 2**63
    elif case == "short":
        out = bytearray(50)
    elif case == "readonly":
        out = bytes(200)
    elif case == "not_buffer":
        out = [0] * 200
    elif case == "wide_items":
        out = np.zeros(50, np.int32)
    elif case == "payload_bytearray":
        entries[0] = (1, bytearray(b"abc"))
    elif case == "payload_memoryview":
        entries[0] = (1, memoryview(b"abc"))
    elif case == "entry_list":
        entries[0] = [1, b"abc"]
    elif case == "empty":
        entries = []
    results = []
    for _, codec in impls + [("twin", _ref)]:
        target = copy.copy(out)
        results.append((_outcome(lambda: codec.encode_records_into(target, entries, lsn, ts)),
                        bytes(target) if isinstance(target, (bytes, bytearray)) else None))
    assert all(result == results[-1] for result in results)
    if case in ("rtype", "lsn", "lsn_past_end", "ts", "short", "readonly", "not_buffer", "wide_items"):
        assert results[-1][0][0] != "ok"
        if isinstance(out, bytearray):
            assert results[-1][1] == bytes(out)  # nothing written


def test_codec_rejects_out_of_range_fields() -> None:
    for _, codec in impls:
        for args in [(256, 0, 1, 0, b""), (1, 70000, 1, 0, b""), (1, 0, -1, 0, b""), (1, 0, 2**64, 0, b"")]:
            with pytest.raises((ValueError, OverflowError)):
                codec.encode_record(*args)


vectors = st.integers(1, 40).flatmap(
    lambda d: st.tuples(
        st.just(d),
        st.lists(st.lists(st.integers(-3, 3), min_size=d, max_size=d), min_size=1, max_size=30),
        st.lists(st.integers(-3, 3), min_size=d, max_size=d),
    )
)


@given(vectors, st.integers(0, 12), st.data())
@settings(max_examples=200, deadline=None)
def test_topk_equals_twin_with_ties(case, k: int, data: st.DataObject) -> None:
    # Small integer vectors make exact ties frequent: the tie rule is under test.
    d, rows, query = case
    matrix = np.array(rows, np.float32)
    inv = _core.row_inv_norms(matrix)
    q = np.array(query, np.float32)
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=len(rows), max_size=len(rows))), np.bool_)
    expected = _ref.topk_cosine(matrix, inv, q, k, mask)
    for topk, _ in impls:
        idx, val = topk.topk_cosine(matrix, inv, q, k, mask)
        assert idx.dtype == np.int64 and val.dtype == np.float32
        assert idx.tolist() == expected[0].tolist()
        assert val.view(np.int32).tolist() == expected[1].view(np.int32).tolist()
    idx, val = expected
    allowed = int(mask.sum())
    assert len(idx) >= min(k, allowed)
    # Ordered by score descending, then index ascending.
    pairs = list(zip((-val).tolist(), idx.tolist()))
    assert pairs == sorted(pairs)
    if len(idx) > k:
        assert np.all(val[k - 1 :] == val[k - 1])  # only ties at the k-th score go past k


def test_topk_on_random_768_is_exact_and_batch_equals_single() -> None:
    rng = np.random.default_rng(7)
    matrix = rng.standard_normal((2000, 768)).astype(np.float32)
    inv = _core.row_inv_norms(matrix)
    queries = rng.standard_normal((5, 768)).astype(np.float32)
    exact = (matrix.astype(np.float64) @ queries.T.astype(np.float64)).T * inv.astype(np.float64)[None, :]
    for topk, _ in impls:
        batch = topk.topk_cosine_batch(matrix, inv, queries, 10)
        for j, (idx, val) in enumerate(batch):
            single = topk.topk_cosine(matrix, inv, queries[j], 10)
            assert idx.tolist() == single[0].tolist()
            assert set(idx.tolist()) == set(np.argsort(-exact[j])[:10].tolist())
            np.testing.assert_allclose(val, exact[j][idx] / np.linalg.norm(queries[j]), rtol=1e-5)


def test_parallel_scan_gives_the_twins_bits() -> None:
    # 50,000 x 768 is above the kernel's parallel threshold (OpenMP threads share the
    # rows), while the twin computes in one NumPy pass: equal bits show the thread
    # split does not reach the result.
    rng = np.random.default_rng(3)
    matrix = rng.standard_normal((50_000, 768)).astype(np.float32)
    inv = _core.row_inv_norms(matrix)
    q = rng.standard_normal((3, 768)).astype(np.float32)
    first = _core.cosine_scores(matrix, inv, q)
    second = _core.cosine_scores(matrix, inv, q)
    assert first.tobytes() == second.tobytes()
    assert first.tobytes() == _ref.cosine_scores(matrix, inv, q).tobytes()


def test_topk_rejects_bad_arguments() -> None:
    m = np.zeros((3, 4), np.float32)
    inv = np.ones(3, np.float32)
    for topk, _ in impls:
        with pytest.raises(ValueError, match="matrix"):
            topk.topk_cosine(m.astype(np.float64), inv, np.ones(4, np.float32), 1)
        with pytest.raises(ValueError, match="queries"):
            topk.topk_cosine(m, inv, np.ones(5, np.float32), 1)
        with pytest.raises(ValueError, match="k"):
            topk.topk_cosine(m, inv, np.ones(4, np.float32), -1)
        with pytest.raises(ValueError, match="mask"):
            topk.topk_cosine(m, inv, np.ones(4, np.float32), 1, np.ones(2, bool))


def test_records_into_refuse_first_flags_out_of_range_as_the_twin() -> None:
    for flags in (-1, 0x10000):
        for _, codec in impls + [("twin", _ref)]:
            out = bytearray(200)
            with pytest.raises((ValueError, OverflowError)):
                codec.encode_records_into(out, [(1, b"abc")], 5, 0, flags)
            assert out == bytearray(200)  # nothing written
