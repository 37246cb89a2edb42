"""Embeddings whose float32 cosines cannot be computed (their dot products overflow or
underflow) are refused like NaN: a ValidationError naming the field, nothing written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import engram

D = 8


def _vector(seed: int, scale: float) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(D)
    return (v / np.linalg.norm(v) * scale).astype(np.float32)


@pytest.mark.parametrize("scale", [1e30, 3e20, 1e-25])
def test_an_out_of_range_norm_is_refused_everywhere(tmp_path: Path, scale: float) -> None:
    with engram.open(tmp_path, dimension=D) as db:
        sp = db.space("agent-1", dedup_threshold=None)
        sp.remember("ok", embedding=_vector(0, 1.0))
        lsn = sp.stats()["last_lsn"]
        bad = _vector(1, scale)
        assert np.isfinite(bad).all() and bad.any()  # finite and non-zero: only the norm is wrong
        with pytest.raises(engram.ValidationError) as info:
            sp.remember("bad", embedding=bad)
        assert info.value.field == "embedding" and "norm" in info.value.allowed and info.value.example
        with pytest.raises(engram.ValidationError) as info:
            sp.recall(embedding=bad)
        assert info.value.field == "embedding"
        plain = [{"content": f"m{i}", "embedding": _vector(10 + i, 1.0)} for i in range(20)]
        plain[13]["embedding"] = bad  # the bulk path checks a stack of plain items at once
        with pytest.raises(engram.ValidationError) as info:
            sp.remember_many(plain)
        assert info.value.field == "items[13].embedding"
        assert len(sp) == 1 and sp.stats()["last_lsn"] == lsn


@pytest.mark.parametrize("scale", [1e-12, 1e-3, 1.0, 1e3, 1e12])
def test_wide_but_sane_norms_score_like_unit_vectors(tmp_path: Path, scale: float) -> None:
    with engram.open(tmp_path, dimension=D, effects=()) as db:
        sp = db.space("agent-1", dedup_threshold=None)
        ids = [sp.remember(f"m{i}", embedding=_vector(i, scale * (1 + i))) for i in range(6)]
        q = _vector(0, scale)
        hits = sp.recall(embedding=q, k=6)
        assert hits[0].id == ids[0] and hits[0].score == pytest.approx(1.0, abs=1e-6)
        assert all(0.0 <= h.score <= 1.0 for h in hits)
