"""``spread(seeds, max_hops=0)`` gives the seeds' own activations.

Proves: at depth 0 the README's formula has only the seeds, each at 1.0 (above the
depth-0 threshold of 0.01), whatever their associations; a negative or too large
``max_hops`` is a ValidationError naming the field and the allowed range. How: a small
associated graph through the public API.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import engram
from engram.errors import ValidationError


def test_zero_hops_gives_the_seeds_alone(tmp_path: Path) -> None:
    with engram.open(tmp_path, dimension=8) as db:
        sp = db.space("agent-1")
        for i in range(3):
            sp.remember(f"n{i}", id=f"n{i}", embedding=np.eye(8, dtype=np.float32)[i])
        sp.associate("n0", "n1", weight=0.9)
        sp.associate("n1", "n2", weight=0.9)
        assert sp.spread(["n1", "n0"], max_hops=0) == {"n0": 1.0, "n1": 1.0}
        assert sp.spread("n2", max_hops=np.int64(0)) == {"n2": 1.0}
        assert set(sp.spread(["n0"], max_hops=1)) == {"n0", "n1"}  # one hop still reaches the neighbour


@pytest.mark.parametrize("bad", [-1, 17, 1.0, True, "2"])
def test_a_bad_max_hops_names_the_field_and_range(tmp_path: Path, bad) -> None:
    with engram.open(tmp_path, dimension=8) as db:
        sp = db.space("agent-1")
        sp.remember("n0", id="n0", embedding=np.eye(8, dtype=np.float32)[0])
        with pytest.raises(ValidationError) as info:
            sp.spread(["n0"], max_hops=bad)
        assert info.value.field == "max_hops" and "from 0 to 16" in str(info.value)
