"""The dedup counter (space stats ``deduplicated``) is the same after a reopen.

Proves: merges that keep the stored duplicate (which change no memory and so wrote no
record) and merges that replace it are counted again when the log is replayed, after
a checkpoint, and across both; a DEDUPLICATED record holds each batch's count. How:
stores near-identical embeddings through the public API, one by one and in batches,
reads the counter, reopens (log only, snapshot only, snapshot plus log) and compares.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import engram


def vec(seed: int, d: int = 768) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(d).astype(np.float32)


def near(seed: int, step: int) -> np.ndarray:
    """A vector whose cosine with ``vec(seed)`` is far above the 0.95 threshold."""
    return vec(seed) + 0.001 * vec(10_000 + step)


def store_duplicates(sp, seed: int) -> None:
    sp.remember(f"original {seed}", embedding=vec(seed), confidence=0.5, id=f"o{seed}")
    sp.remember(f"weaker copy {seed}", embedding=near(seed, 1), confidence=0.4)  # the stored one stays
    sp.remember(f"stronger copy {seed}", embedding=near(seed, 2), confidence=0.9)  # it replaces the stored one
    sp.remember_many([{"content": f"batch copy {seed}.{i}", "embedding": near(seed, 3 + i), "confidence": 0.1}
                      for i in range(3)])  # three hits against the stored one, nothing else written


def deduplicated(data: Path) -> int:
    with engram.open(data) as db:
        return db.space("agent-1").stats()["deduplicated"]


def test_the_counter_comes_back_from_the_log(tmp_path: Path) -> None:
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1")
        store_duplicates(sp, 1)
        before = sp.stats()["deduplicated"]
        count = len(sp)
    assert before == 5 and count == 1
    assert deduplicated(tmp_path) == before
    assert deduplicated(tmp_path) == before  # replaying again adds nothing twice


def test_the_counter_comes_back_from_a_checkpoint_and_the_log_after_it(tmp_path: Path) -> None:
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1")
        store_duplicates(sp, 1)
        sp.checkpoint()
        store_duplicates(sp, 2)
        before = sp.stats()["deduplicated"]
    assert before == 10
    assert deduplicated(tmp_path) == before
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1")
        sp.checkpoint()
        assert sp.stats()["deduplicated"] == before
    assert deduplicated(tmp_path) == before


def test_a_batch_of_only_hits_logs_its_count_without_an_fsync_of_its_own(tmp_path: Path) -> None:
    """The count is a statistic: a store answered wholly by dedup must not wait for a disk
    flush of its own (it did not before the count was logged); the next sync carries it."""
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1")
        sp.remember("original", embedding=vec(7), confidence=0.5, id="o7")
        fsyncs = sp.stats()["fsyncs"]
        for step in range(5):
            sp.remember(f"weaker copy {step}", embedding=near(7, step), confidence=0.1)
        assert sp.stats()["fsyncs"] == fsyncs
        assert sp.stats()["deduplicated"] == 5
        sp.remember("something else", embedding=vec(8), confidence=0.5)  # its fsync covers the counts too
    assert deduplicated(tmp_path) == 5
