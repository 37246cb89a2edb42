"""Describing spaces without opening them (Database.space_info and summary.json).

Proves: after a clean close, space_info gives each space's count, dimension, effects
and creation time without opening (replaying) it; when the space's files changed since
that close (written and not closed cleanly: a crash image), or the summary is damaged,
it opens the space and counts what its log holds.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

import engram
from engram.database import SUMMARY_FILE


def _vec(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(768).astype(np.float32)


def _fill(path: Path) -> dict[str, dict]:
    with engram.open(path) as db:
        a = db.space("agent-a", effects=["priming"])
        for i in range(3):
            a.remember(f"a {i}", embedding=_vec(i))
        b = db.space("agent-b")
        for i in range(5):
            b.remember(f"b {i}")
        return {s: db.space_info(s) for s in ("agent-a", "agent-b")}


def test_a_cleanly_closed_space_is_described_without_opening_it(tmp_path: Path) -> None:
    live = _fill(tmp_path / "data")
    with engram.open(tmp_path / "data") as db:
        described = {s: db.space_info(s) for s in db.spaces()}
        assert db._spaces == {}  # nothing was opened
        assert described == live
        assert described["agent-a"]["memories"] == 3 and described["agent-b"]["memories"] == 5
        assert described["agent-a"]["effects"] == ["priming"]


def test_a_space_whose_files_changed_since_its_summary_is_opened_and_counted(tmp_path: Path) -> None:
    _fill(tmp_path / "data")
    with engram.open(tmp_path / "data") as db:
        db.space("agent-a").remember("a 3", embedding=_vec(3))  # durable in the log; summary says 3
        # A copy taken now is what a crash leaves: the new record, the old summary.
        shutil.copytree(tmp_path / "data", tmp_path / "crashed", ignore=shutil.ignore_patterns("LOCK"))
    with engram.open(tmp_path / "crashed") as db:
        assert db.space_info("agent-a")["memories"] == 4
        assert "agent-a" in db._spaces  # it had to be opened
        assert db.space_info("agent-b")["memories"] == 5 and "agent-b" not in db._spaces
    with engram.open(tmp_path / "crashed") as db:  # closed cleanly again: the summary is current
        assert db.space_info("agent-a")["memories"] == 4 and db._spaces == {}


def test_a_damaged_summary_only_means_opening_the_space(tmp_path: Path) -> None:
    _fill(tmp_path / "data")
    (tmp_path / "data" / "agent-b" / SUMMARY_FILE).write_text('{"memories": 5, "fil')
    (tmp_path / "data" / "agent-a" / SUMMARY_FILE).write_text('{"memories": "3", "files": []}')
    with engram.open(tmp_path / "data") as db:
        assert db.space_info("agent-b")["memories"] == 5
        assert db.space_info("agent-a")["memories"] == 3
        assert set(db._spaces) == {"agent-a", "agent-b"}
