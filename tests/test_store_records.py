"""The store path's REMEMBER payload is byte for byte the documented one.

``encode_remember`` packs the item's fields as a tuple and reuses a packer; the log
format is msgpack of {"f": item_fields(item), "e": little-endian float32 bytes,
"r": replaces}. Hypothesis draws items (unicode, tags, metadata, extreme ints and
floats); both ways must give the same bytes, and decoding must give the item back.
"""

from __future__ import annotations

import msgpack
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from engram.memory import records as rec
from engram.memory.records import Item

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
    packer = msgpack.Packer(use_bin_type=True)
    assert rec.encode_remember(item, embedding, replaces, packer) == documented
    assert rec.encode_remember(item, embedding, replaces, packer) == documented  # the packer resets
    if embedding is not None:
        decoded, vector, got_replaces = rec.decode_remember(documented, embedding.shape[0])
        assert decoded == item
        assert vector is not None and vector.tobytes() == embedding.tobytes()
        assert got_replaces == replaces
