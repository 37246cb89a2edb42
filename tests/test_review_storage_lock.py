"""The directory lock after a failed open.

Proves: ``engram.open`` that fails on its arguments (a bad default setting) leaves the
data directory unlocked, so the same process can open it right after; before, the lock
file descriptor stayed open and the retry got SpaceLockedError naming its own pid.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import engram


def test_a_failed_open_does_not_keep_the_directory_locked(tmp_path: Path) -> None:
    with pytest.raises(engram.ValidationError):
        engram.open(tmp_path, durability="bogus")
    with engram.open(tmp_path) as db:  # was: SpaceLockedError naming this very process
        db.space("agent-a").remember("a", embedding=np.ones(768, np.float32))
