"""Response and embedding encoding shortcuts give the bytes and errors of the plain code.

Proves: (1) a UTC datetime put in a response as itself (schemas.iso_value) is written by
schemas.dumps exactly as schemas.iso writes it, with orjson and with the standard-library
fallback, over the engine's whole time range; a datetime in another zone still goes
through iso (converted to UTC). (2) to_embedding's fast path (no NaN, infinity or
out-of-range value) returns the same float32 bits as the checked path, and every
refusal keeps its message: too large, NaN/infinite, all zeros (also after float32
rounding). How: seeded random datetimes and vectors, in-process.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from engram.api import schemas as S
from engram.api.errors import ApiError


def _times(n: int, seed: int) -> list[datetime]:
    rng = random.Random(seed)
    lo = datetime(1678, 1, 1, tzinfo=timezone.utc)
    span_s = int((datetime(2261, 12, 31, tzinfo=timezone.utc) - lo).total_seconds())
    return [lo + timedelta(seconds=rng.randint(0, span_s), microseconds=rng.choice([0, 10, 100000, rng.randint(0, 999999)]))
            for _ in range(n)]


def test_utc_datetimes_encode_as_iso(monkeypatch):
    times = _times(5000, 1)
    doc = [S.iso_value(t) for t in times]
    assert all(isinstance(v, datetime) for v in doc)
    expected = json.dumps([S.iso(t) for t in times], separators=(",", ":")).encode()
    assert S.dumps(doc) == expected
    monkeypatch.setattr(S, "_orjson", None)  # the standard-library fallback
    assert S.dumps(doc) == expected


def test_other_zones_and_none_go_through_iso():
    t = datetime(2024, 5, 1, 11, 30, tzinfo=timezone(timedelta(hours=2)))
    assert S.iso_value(t) == "2024-05-01T09:30:00Z"
    assert S.iso_value(None) is None
    assert S.dumps({"t": S.iso_value(datetime(2024, 5, 1, 9, 30, 0, 5, tzinfo=timezone.utc))}) == b'{"t":"2024-05-01T09:30:00.000005Z"}'


def _reference(v: list, dim: int) -> np.ndarray:
    arr = np.array(v, dtype=np.float64)
    if np.any(np.abs(arr) > 3.0e38):
        raise AssertionError("not for out-of-range input")
    return arr.astype(np.float32)


@pytest.mark.parametrize("seed", range(3))
def test_embedding_fast_path_same_bits(seed):
    rng = np.random.default_rng(seed)
    for _ in range(200):
        v = [float(x) for x in rng.standard_normal(32) * 10.0 ** rng.integers(-40, 38)]
        assert S.to_embedding(v, "embedding", 32).tobytes() == _reference(v, 32).tobytes()


@pytest.mark.parametrize("values, field, words", [
    ([1.0, float("nan"), 0.0], "embedding[1]", "NaN or infinite"),
    ([1.0, 2.0, float("inf")], "embedding[2]", "too large for float32"),
    ([3.5e38, 1.0, 1.0], "embedding[0]", "too large for float32"),
    ([0.0, 0, 0.0], "embedding", "all zeros"),
    ([1e-50, 0.0, -1e-60], "embedding", "all zeros"),  # non-zero as float64, zero as float32
])
def test_embedding_refusals_keep_their_messages(values, field, words):
    with pytest.raises(ApiError) as info:
        S.to_embedding(values, "embedding", 3)
    assert info.value.status == 400
    assert info.value.field == field
    assert words in info.value.message
