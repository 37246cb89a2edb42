"""The store path's REMEMBER payload is byte for byte the documented one.

The log format is msgpack of {"f": item_fields(item), "e": little-endian float32
bytes, "r": replaces}; ``_core.remember_payload`` packs the usual values itself
(compiled) and leaves the rest to msgpack (the twin). Hypothesis draws items
(unicode, tags, metadata, extreme ints and floats) and raw field values of every
msgpack width; every implementation must give msgpack's bytes, or its error, and
decoding must give the item back.
"""

from __future__ import annotations

import msgpack
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import os

import pytest

from engram import _core
from engram._core import _ref
from engram.memory import records as rec
from engram.memory.records import Item

pytestmark = pytest.mark.kernel

IMPLS = [_ref, _core]
if os.environ.get("ENGRAM_PURE") != "1":
    from engram._core import _store

    IMPLS.append(_store)

text = st.text(max_size=20)
maybe_text = st.none() | text
maybe_float = st.none() | st.floats(allow_nan=False)
items = st.builds(
    Item, text, text, st.floats(0, 1), st.integers(-(2**63), 2**63 - 1), st.integers(-(2**63), 2**63 - 1),
    st.integers(0, 2**40), st.lists(text, max_size=3).map(tuple), st.sampled_from(["semantic", "episodic"]), maybe_text,
    st.lists(text, max_size=3).map(tuple), maybe_text, maybe_text, maybe_float, maybe_float, maybe_text,
    st.lists(text, max_size=2).map(tuple), st.dictionaries(text, st.integers(-(2**63), 2**63 - 1) | text | st.none(), max_size=3),
    stability=st.floats(0.1, 100),
)


@settings(max_examples=200, deadline=None)
@given(items, st.none() | st.lists(st.floats(width=32, allow_nan=False), min_size=1, max_size=8), st.none() | text)
def test_payload_is_the_documented_msgpack(item, values, replaces) -> None:
    embedding = None if values is None else np.array(values, np.float32)
    documented = msgpack.packb({"f": rec.item_fields(item), "e": None if embedding is None else embedding.astype("<f4").tobytes(),
                                "r": replaces}, use_bin_type=True)
    assert rec.encode_remember(item, embedding, replaces) == documented
    for impl in IMPLS:
        assert impl.remember_payload(rec.item_fields_packed(item), embedding, replaces) == documented
    if embedding is not None:
        decoded, vector, got_replaces = rec.decode_remember(documented, embedding.shape[0])
        assert decoded == item
        assert vector is not None and vector.tobytes() == embedding.tobytes()
        assert got_replaces == replaces


ints = st.integers(-(2**63), 2**63 - 1) | st.sampled_from(
    [0, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, -1, -32, -33, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1])
values = st.none() | text | st.text(min_size=30, max_size=300) | st.floats() | ints | \
    st.lists(text, max_size=20).map(tuple) | st.lists(text, max_size=3) | st.just({}) | \
    st.booleans() | st.integers(2**63, 2**64 - 1) | st.dictionaries(text, ints, min_size=1, max_size=2) | \
    st.lists(ints, max_size=2).map(tuple)


@settings(max_examples=400, deadline=None)
@given(st.lists(values, max_size=20).map(tuple), st.none() | st.integers(0, 70), st.none() | text)
def test_every_value_packs_as_msgpack_does(fields, length, replaces) -> None:
    embedding = None if length is None else np.arange(length, dtype=np.float32) / 3
    expected = msgpack.packb({"f": fields, "e": None if embedding is None else embedding.tobytes(), "r": replaces},
                             use_bin_type=True)
    for impl in IMPLS:
        assert impl.remember_payload(fields, embedding, replaces) == expected


def test_unusual_embeddings_and_fields_fall_back_to_msgpack() -> None:
    base = np.arange(8, dtype=np.float32)
    for embedding in (base[::2], base.astype(">f4"), base.astype(np.float64), base.reshape(2, 4)):
        expected = _ref.remember_payload(("a",), embedding, None)
        for impl in IMPLS:
            assert impl.remember_payload(("a",), embedding, None) == expected
    for impl in IMPLS:
        with pytest.raises((OverflowError, TypeError, ValueError)):
            impl.remember_payload((2**70,), None, None)
        with pytest.raises(UnicodeEncodeError):
            impl.remember_payload(("\ud800",), None, None)
