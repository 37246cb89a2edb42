"""The compiled readers of HTTP embeddings (engram/_core/_json.pyx) against their twins
(_core/_ref.py) and against the Python path they stand in for (orjson or json, then
float64 -> float32): same array, or None exactly where the twin says None."""

from __future__ import annotations

import json
import urllib.parse

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engram import _core
from engram._core import _ref

pytestmark = pytest.mark.kernel

DIM = 8


def _same(got, want) -> bool:
    if got is None or want is None:
        return got is None and want is None
    return got.dtype == np.float32 and got.tobytes() == want.tobytes()


def _python_path(text: str, dim: int) -> np.ndarray:
    values = json.loads(text)
    return np.array(values, np.float64).astype(np.float32)


def _texts(rng: np.random.Generator) -> list[str]:
    v = rng.standard_normal(DIM) * 10.0 ** rng.integers(-30, 30, DIM)
    ints = rng.integers(-10**12, 10**12, DIM)
    return [
        "[" + ",".join(f"{x:.4f}" for x in v) + "]",
        json.dumps([float(x) for x in v]),  # ", " separators, repr digits, exponents
        "[" + ",".join(repr(float(x)) for x in v) + "]",
        " \t[ " + " ,\n".join(f"{x:.6e}" for x in v) + " ]\r\n",
        "[" + ",".join(str(int(x)) for x in ints) + "]",
        "[" + ",".join(f"{x:E}" for x in v) + "]",
        "[-0," + ",".join(f"{x:.3f}" for x in v[1:]) + "]",
    ]


@pytest.mark.parametrize("seed", range(20))
def test_plain_arrays_read_as_the_python_path_reads_them(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for text in _texts(rng):
        want = _python_path(text, DIM)
        raw = text.encode()
        quoted = urllib.parse.quote(text, safe="").encode()
        assert _same(_core.float_array_text(raw, DIM, False), want), text
        assert _same(_core.float_array_text(quoted, DIM, True), want), quoted
        assert _same(_core.float_array_text(quoted.lower(), DIM, True), want)  # %2c: escapes in either case
        assert _same(_ref.float_array_text(quoted, DIM, True), want)
        values = json.loads(text)
        assert _same(_core.float_list_f32(values, DIM), want)
        assert _same(_ref.float_list_f32(values, DIM), want)


REFUSED = [
    "", "[]", "[1,2]", "1,2,3,4,5,6,7,8", "[1,2,3,4,5,6,7,8,9]", "[1,2,3,4,5,6,7,8,]", "[,1,2,3,4,5,6,7,8]",
    "[01,2,3,4,5,6,7,8]", "[1.,2,3,4,5,6,7,8]", "[.5,2,3,4,5,6,7,8]", "[+1,2,3,4,5,6,7,8]", "[1e,2,3,4,5,6,7,8]",
    "[1e+,2,3,4,5,6,7,8]", "[NaN,2,3,4,5,6,7,8]", "[Infinity,2,3,4,5,6,7,8]", "[-,2,3,4,5,6,7,8]",
    "[true,2,3,4,5,6,7,8]", "[null,2,3,4,5,6,7,8]", '["1",2,3,4,5,6,7,8]', "[[1],2,3,4,5,6,7,8]",
    "[0x1,2,3,4,5,6,7,8]", "[1 2,3,4,5,6,7,8,9]", "[1,2,3,4,5,6,7,8]x", "x[1,2,3,4,5,6,7,8]",
    "[1e400,2,3,4,5,6,7,8]", "[3.1e38,2,3,4,5,6,7,8]", "[0,0,0,0,0,0,0,0]", "[1e-50,0,0,0,0,0,0,0]",
    "[1234567890123456,2,3,4,5,6,7,8]", "[" + "1" * 41 + ".5,2,3,4,5,6,7,8]", "[1,2,3,4,5,6,7,8\u00e9]",
]


@pytest.mark.parametrize("text", REFUSED)
def test_anything_but_the_plain_case_is_left_to_the_caller(text: str) -> None:
    raw = text.encode()
    for percent in (False, True):
        data = urllib.parse.quote(text, safe="").encode() if percent else raw
        assert _core.float_array_text(data, DIM, percent) is None
        assert _ref.float_array_text(data, DIM, percent) is None


def test_broken_escapes_and_plus_signs() -> None:
    plain = "[1,2,3,4,5,6,7,8]"
    quoted = urllib.parse.quote(plain, safe="")
    for data in (quoted + "%", quoted + "%2", quoted.replace("%2C", "%2G", 1), quoted.replace("%2C", "%", 1)):
        assert _core.float_array_text(data.encode(), DIM, True) is None
        assert _ref.float_array_text(data.encode(), DIM, True) is None
    # In a query string '+' is a space (around a number: fine; as an exponent's sign: broken),
    # and %2B is '+'.
    spaced = "%5B+1,2,3,4,5,6,7,8%5D".encode()
    assert _same(_core.float_array_text(spaced, DIM, True), np.arange(1, 9, dtype=np.float32))
    assert _core.float_array_text(b"%5B1e+5,2,3,4,5,6,7,8%5D", DIM, True) is None
    assert _same(_core.float_array_text(b"%5B1e%2B5,2,3,4,5,6,7,8%5D", DIM, True),
                 np.array([1e5, 2, 3, 4, 5, 6, 7, 8], np.float32))


def test_lists_take_floats_and_ints_only() -> None:
    good = [0.5, 2, -3, 4.25, 5, 6, 7, 8]
    assert _same(_core.float_list_f32(good, DIM), np.array(good, np.float32))
    for bad in ([True] + good[1:], ["0.5"] + good[1:], [None] + good[1:], [np.float64(0.5)] + good[1:],
                [10**400] + good[1:], [float("nan")] + good[1:], [3.5e38] + good[1:], [0.0] * DIM, good[:-1],
                tuple(good), np.array(good)):
        assert _core.float_list_f32(bad, DIM) is None, bad
        assert _ref.float_list_f32(bad, DIM) is None, bad
    big = [2**63 + 1] + good[1:]  # past int64: rounded to the nearest float64, as float() does
    assert _same(_core.float_list_f32(big, DIM), _ref.float_list_f32(big, DIM))


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="0123456789-+.eE,[] \t%2CBbD5", max_size=60))
def test_any_text_reads_as_the_twin_reads_it(text: str) -> None:
    data = text.encode()
    for percent in (False, True):
        assert _same(_core.float_array_text(data, DIM, percent), _ref.float_array_text(data, DIM, percent)), (data, percent)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2**70, 2**70), st.booleans()),
                min_size=DIM, max_size=DIM))
def test_any_list_reads_as_the_twin_reads_it(values: list) -> None:
    assert _same(_core.float_list_f32(values, DIM), _ref.float_list_f32(values, DIM))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(min_value=-1e30, max_value=1e30, allow_nan=False), min_size=DIM, max_size=DIM),
       st.integers(1, 17), st.sampled_from("gef"))
def test_numbers_of_any_precision_round_as_python_rounds_them(values: list, digits: int, style: str) -> None:
    """Short numbers take a fast path (exact digits times an exact power of ten, one
    rounding) and long ones strtod; either way the float64 is Python's float()."""
    tokens = [f"{x:.{digits}{style}}" for x in values]
    text = ("[" + ",".join(tokens) + "]").encode()
    want = _ref.float_array_text(text, DIM, False)
    assert _same(_core.float_array_text(text, DIM, False), want)
    if want is not None:
        assert want.tolist() == np.array([float(t) for t in tokens], np.float64).astype(np.float32).tolist()
