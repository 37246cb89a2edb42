"""spread() arguments: NumPy numbers are numbers, as everywhere else."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import engram


def test_spread_takes_numpy_numbers(tmp_path: Path) -> None:
    with engram.open(tmp_path, dimension=4) as db:
        sp = db.space("agent-1")
        ids = [sp.remember(f"n{i}", id=f"n{i}") for i in range(3)]
        sp.associate(ids[0], ids[1], 0.9)
        sp.associate(ids[1], ids[2], 0.9)
        plain = sp.spread([ids[0]], max_hops=4, decay=0.7)
        assert plain["n1"] == pytest.approx(0.447, abs=5e-4) and plain["n2"] == pytest.approx(0.099, abs=5e-4)
        assert sp.spread([ids[0]], max_hops=np.int64(4), decay=np.float32(0.7)) == pytest.approx(plain, rel=1e-6)
        assert sp.spread([ids[0]], decay=np.float64(0.7)) == plain
        with pytest.raises(engram.ValidationError) as info:
            sp.spread([ids[0]], decay=np.float32(-1))
        assert info.value.field == "decay"
