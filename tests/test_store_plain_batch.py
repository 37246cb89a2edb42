"""Bulk fast paths give what the general paths give.

- ``Space.remember_many`` prepares a batch of plain memories (content, a float32
  embedding, a float confidence) with one matrix check (``_prepare_plain``) and
  plans on that matrix. With the same clock and ids it must write the same WAL
  bytes, take the same dedup decisions and leave the same state as the general
  path (forced by raising PLAIN_BATCH_MIN), and for any batch holding a value the
  fast path does not take, valid or not, return the same ids or raise the same
  error, with nothing written.
- ``_parse_bulk`` builds plain items' keyword arguments without parse_remember;
  with the fast path off (no plain keys) every body gives the same arguments or
  the same error.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timezone
from pathlib import Path

import msgpack
import numpy as np
import pytest

import engram
from engram.api import http
from engram.api.errors import ApiError
from engram.errors import EngramError
from engram.memory import space as space_mod

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
DIM = 32


@pytest.fixture
def fixed_ids(monkeypatch):
    """Ids from a counter that each run restarts, so two runs can be compared byte for byte."""
    def reset() -> None:
        counter = itertools.count()
        monkeypatch.setattr(space_mod, "_new_id", lambda mtype: f"{'ep' if mtype == 'episodic' else 'mem'}_{next(counter):06d}")
    return reset


def _plain_items(count: int, seed: int = 3) -> list[dict]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((count, DIM)).astype(np.float32)
    items = []
    for i in range(count):
        v = vectors[i]
        if i % 9 == 4:  # a near-duplicate of an earlier item of the batch (both outcomes)
            v = (vectors[i - 3] + 0.01 * vectors[i]).astype(np.float32)
        item = {"content": f"plain memory {i}", "embedding": v}
        if i % 3:
            item["confidence"] = [0.2, 0.9][i % 2]
        if i % 5 == 1:
            item["tags"] = [] if i % 2 else ()
        if i % 7 == 2:
            item["memory_type"] = "semantic"
        items.append(item)
    return items


def _run(tmp_path: Path, name: str, items: list[dict], fixed_ids, stored: list[dict]) -> tuple:
    fixed_ids()
    path = tmp_path / name
    with engram.open(path, clock=lambda: T0) as db:
        sp = db.space("agent-1", dimension=DIM)
        sp.remember_many(stored)
        try:
            outcome: object = sp.remember_many(items)
        except EngramError as exc:
            outcome = (type(exc), str(exc))
        state = sorted((m.id, m.content, m.confidence, m.tags, m.memory_type, np.asarray(sp.get(m.id).embedding).tobytes())
                       for m in sp.list(limit=10_000))
        counts = (len(sp), sp.stats()["deduplicated"])
    wal = b"".join(p.read_bytes() for p in sorted(path.glob("spaces/*/wal/*.wal")))
    return outcome, state, counts, wal


def _stored() -> list[dict]:
    """Rows already stored, some of which the batch duplicates."""
    rng = np.random.default_rng(11)
    return [{"content": f"stored {i}", "embedding": rng.standard_normal(DIM).astype(np.float32), "confidence": 0.5}
            for i in range(20)]


def _both(tmp_path: Path, items: list[dict], fixed_ids, monkeypatch, tag: str) -> tuple[tuple, tuple]:
    fast = _run(tmp_path, f"fast-{tag}", items, fixed_ids, _stored())
    with monkeypatch.context() as m:
        m.setattr(space_mod, "PLAIN_BATCH_MIN", 10**9)
        general = _run(tmp_path, f"general-{tag}", items, fixed_ids, _stored())
    return fast, general


def test_a_plain_batch_takes_the_fast_path_and_writes_the_same_bits(tmp_path: Path, fixed_ids, monkeypatch) -> None:
    items = _plain_items(300)
    stored = _stored()
    items[40]["embedding"] = (stored[3]["embedding"] + 0.001).astype(np.float32)  # a weaker duplicate of a stored row
    items[41]["embedding"] = (stored[4]["embedding"] + 0.001).astype(np.float32)
    items[41]["confidence"] = 0.9  # a stronger one: merged into it
    with engram.open(tmp_path / "probe") as db:
        assert db.space("agent-1", dimension=DIM)._prepare_plain(items) is not None  # the fast path is taken
    fast, general = _both(tmp_path, items, fixed_ids, monkeypatch, "plain")
    assert fast == general
    ids = fast[0]
    assert isinstance(ids, list) and len(ids) == len(items)
    # The decisions themselves (so that equality is not two equal mistakes): a weaker
    # duplicate answers with the stored id, a stronger one too, its content now stored under it.
    stored_ids = [f"mem_{i:06d}" for i in range(len(stored))]  # the counter's first ids
    assert ids[40] == stored_ids[3]
    assert ids[41] == stored_ids[4] and (stored_ids[4], items[41]["content"]) in {row[:2] for row in fast[1]}
    assert len(set(ids)) < len(ids) and fast[2][1] >= 2


def _variant(name: str, items: list[dict]) -> list[dict]:
    v = [dict(item) for item in items]
    bad = v[17]
    if name == "nan":
        e = bad["embedding"].copy()
        e[3] = np.nan
        bad["embedding"] = e
    elif name == "zero":
        bad["embedding"] = np.zeros(DIM, np.float32)
    elif name == "short":
        bad["embedding"] = bad["embedding"][:-1].copy()
    elif name == "float64":
        bad["embedding"] = bad["embedding"].astype(np.float64)
    elif name == "list":
        bad["embedding"] = bad["embedding"].tolist()
    elif name == "int_confidence":
        bad["confidence"] = 1
    elif name == "confidence_high":
        bad["confidence"] = 1.5
    elif name == "confidence_none":
        bad["confidence"] = None
    elif name == "unicode":
        bad["content"] = "caf\u00e9 memory"
    elif name == "surrogate":
        bad["content"] = "bad \udc80"
    elif name == "not_str":
        bad["content"] = 42
    elif name == "tags":
        bad["tags"] = ["biology"]
    elif name == "tags_str":
        bad["tags"] = ""
    elif name == "episodic":
        bad["memory_type"] = "episodic"
        bad["when"] = T0
    elif name == "unknown_type":
        bad["memory_type"] = "dream"
    elif name == "extra_key":
        bad["location"] = "lab"
    elif name == "unknown_key":
        bad["colour"] = "red"
    elif name == "not_dict":
        v[17] = ["content", "x"]
    elif name == "later_also_bad":
        bad["confidence"] = 2.0
        e = v[30]["embedding"].copy()
        e[0] = np.inf
        v[30]["embedding"] = e
    return v


VARIANTS = ["nan", "zero", "short", "float64", "list", "int_confidence", "confidence_high", "confidence_none",
            "unicode", "surrogate", "not_str", "tags", "tags_str", "episodic", "unknown_type", "extra_key",
            "unknown_key", "not_dict", "later_also_bad"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_any_other_value_gives_the_general_paths_answer(tmp_path: Path, fixed_ids, monkeypatch, variant: str) -> None:
    items = _variant(variant, _plain_items(60))
    fast, general = _both(tmp_path, items, fixed_ids, monkeypatch, variant)
    assert fast == general
    if isinstance(fast[0], tuple):  # refused: nothing of the batch was written
        _, state, counts, _ = fast
        assert counts[0] == len(_stored()) and not any(row[1].startswith("plain") for row in state)


def _body(items: list[dict]) -> bytes:
    return msgpack.packb(items)


def _parse(body: bytes, fast: bool, monkeypatch, ctype: str = "application/msgpack") -> object:
    with monkeypatch.context() as m:
        if not fast:
            m.setattr(http, "_PLAIN_BULK_KEYS", frozenset())
        try:
            kws = http._parse_bulk(body, ctype, 100_000, DIM, "agent-1")
        except ApiError as err:
            return ("error", err.status, str(err), err.field)
    return [{k: (v.tobytes() if isinstance(v, np.ndarray) else v) for k, v in kw.items()} for kw in kws]


def _wire_items() -> list[dict]:
    rng = np.random.default_rng(5)
    return [{"content": f"wire {i}", "embedding": rng.standard_normal(DIM).astype("<f4").tobytes(), "confidence": 0.25 + (i % 3) / 4}
            for i in range(40)]


WIRE_VARIANTS = {
    "plain": lambda it: None,
    "no_confidence": lambda it: it.pop("confidence"),
    "confidence_null": lambda it: it.update(confidence=None),
    "confidence_int": lambda it: it.update(confidence=1),
    "confidence_object": lambda it: it.update(confidence={"value": 0.5}),
    "confidence_high": lambda it: it.update(confidence=1.01),
    "empty_content": lambda it: it.update(content=""),
    "nul_content": lambda it: it.update(content="a\x00b"),
    "unicode_content": lambda it: it.update(content="na\u00efve"),
    "long_content": lambda it: it.update(content="x" * (100 * 1024 + 1)),
    "content_number": lambda it: it.update(content=7),
    "nan_embedding": lambda it: it.update(embedding=np.full(DIM, np.nan, "<f4").tobytes()),
    "short_embedding": lambda it: it.update(embedding=it["embedding"][:-4]),
    "other_space": lambda it: it.update(memory_space_id="elsewhere"),
    "with_tags": lambda it: it.update(tags=["x"]),
}


@pytest.mark.parametrize("variant", sorted(WIRE_VARIANTS))
def test_bulk_parse_fast_path_equals_parse_remember(monkeypatch, variant: str) -> None:
    items = _wire_items()
    WIRE_VARIANTS[variant](items[7])
    body = _body(items)
    fast = _parse(body, True, monkeypatch)
    assert fast == _parse(body, False, monkeypatch)
    if variant == "plain":
        assert isinstance(fast, list) and fast[7]["tags"] == () and fast[7]["memory_type"] == "semantic"
    # JSON lines take the same path for their plain items.
    lines = "\n".join(msgpack_free_json(it) for it in items).encode()
    assert _parse(lines, True, monkeypatch, "application/x-ndjson") == _parse(lines, False, monkeypatch, "application/x-ndjson")


def msgpack_free_json(item: dict) -> str:
    import json

    out = dict(item)
    if isinstance(out.get("embedding"), bytes):
        out["embedding"] = np.frombuffer(out["embedding"], "<f4").astype(float).tolist()
    return json.dumps(out)
