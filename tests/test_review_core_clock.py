"""An injected clock that is not one is the caller's error, named "clock", before any write."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import engram


def test_a_clock_that_is_not_callable_is_refused_at_open(tmp_path: Path) -> None:
    with pytest.raises(engram.ValidationError) as info:
        engram.open(tmp_path, clock="now")  # type: ignore[arg-type]
    assert info.value.field == "clock"


@pytest.mark.parametrize("reading", ["now", None, float("nan"), float("inf"), True])
def test_a_bad_clock_reading_is_a_validation_error_and_writes_nothing(tmp_path: Path, reading: object) -> None:
    good = [True]
    with engram.open(tmp_path, clock=lambda: 1_700_000_000.0 if good[0] else reading, dimension=4) as db:
        sp = db.space("agent-1")
        lsn = sp.stats()["last_lsn"]
        good[0] = False
        with pytest.raises(engram.ValidationError) as info:
            sp.remember("x", embedding=np.ones(4, np.float32))
        assert info.value.field == "clock"
        good[0] = True
        assert len(sp) == 0 and sp.stats()["last_lsn"] == lsn
        sp.remember("y", embedding=np.ones(4, np.float32))  # numbers and datetimes still work
        assert len(sp) == 1
