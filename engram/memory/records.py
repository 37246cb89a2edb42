"""The engine's WAL record types and the msgpack payload of each.

These payloads are what the log stores, what replication will ship and what a
checkpoint's metadata holds, so their encoding is explicit: short keys, an
embedding as raw little-endian float32 bytes, times as integer nanoseconds.
A record states an outcome (a dedup's ``replaces``, an eviction's reason), never
a decision to re-take on replay, so replaying a log always rebuilds the same state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import msgpack
import numpy as np

from engram import _core

REMEMBER = 1
FORGET = 2
ASSOCIATE = 3
TOUCH = 4
RECONSOLIDATE = 5
# How many stores of a batch dedup merged into a stored memory (the stats counter):
# a merge that keeps the stored duplicate writes no other record.
DEDUPLICATED = 6


@dataclass(slots=True)
class Item:
    """The engine's mutable record of one memory (callers get frozen ``Memory`` copies)."""

    id: str
    content: str
    confidence: float
    created_ns: int
    last_access_ns: int
    access_count: int = 0
    tags: tuple[str, ...] = ()
    memory_type: str = "semantic"
    location: str | None = None
    who: tuple[str, ...] = ()
    why: str | None = None
    how: str | None = None
    importance: float | None = None
    valence: float | None = None
    decay: str | None = None  # None: the space's default
    sources: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    row: int = -1  # row in the embedding matrix, -1 for a text-only memory
    stability: float = 1.0  # spacing effect: decay sees elapsed time / stability (cognition.spacing)


def item_fields(item: Item) -> list[Any]:
    """The item as a list (checkpoint metadata), without its row and embedding."""
    return [
        item.id, item.content, item.confidence, item.created_ns, item.last_access_ns, item.access_count,
        list(item.tags), item.memory_type, item.location, list(item.who), item.why, item.how,
        item.importance, item.valence, item.decay, list(item.sources), item.metadata, item.stability,
    ]


def item_fields_packed(item: Item) -> tuple[Any, ...]:
    """``item_fields`` for msgpack only (WAL payloads, checkpoints): the tuples as they are
    (msgpack writes a tuple and a list as the same array, so the bytes are the same) and
    no list to build (a tenth of the time: 0.05 s instead of 0.44 s for 100k items)."""
    return (
        item.id, item.content, item.confidence, item.created_ns, item.last_access_ns, item.access_count,
        item.tags, item.memory_type, item.location, item.who, item.why, item.how,
        item.importance, item.valence, item.decay, item.sources, item.metadata, item.stability,
    )


def fields_packer() -> Callable[[Any], bytes]:
    """A function packing one value as a checkpoint's msgpack does (see storage.snapshot)."""
    return msgpack.Packer(use_bin_type=True).pack  # type: ignore[no-any-return]


def item_from_fields(values: list[Any]) -> Item:
    # 17 fields before stability existed (older logs and checkpoints), 18 since. Indexed,
    # not unpacked from a slice: replay builds one per record (0.5 us of 2.3 saved).
    if len(values) < 17:
        raise ValueError(f"an item has 17 or 18 fields, not {len(values)}")
    return Item(values[0], values[1], values[2], values[3], values[4], values[5], tuple(values[6]), values[7],
                values[8], tuple(values[9]), values[10], values[11], values[12], values[13], values[14],
                tuple(values[15]), values[16], -1, float(values[17]) if len(values) > 17 else 1.0)


def encode_remember(item: Item, embedding: np.ndarray | None, replaces: str | None) -> bytes:
    """The REMEMBER payload: msgpack of {"f": item_fields(item), "e": little-endian
    float32 bytes or None, "r": replaces}, packed by ``_core.remember_payload`` (the
    compiled packer writes the usual values directly; msgpack gives the same bytes)."""
    return _core.remember_payload(item_fields_packed(item), embedding, replaces)


def decode_remember(payload: bytes, dimension: int) -> tuple[Item, np.ndarray | None, str | None]:
    item, raw, replaces = decode_remember_raw(payload, dimension)
    embedding = None if raw is None else np.frombuffer(raw, dtype="<f4").astype(np.float32)
    return item, embedding, replaces


def decode_remember_raw(payload: bytes, dimension: int) -> tuple[Item, bytes | None, str | None]:
    """``decode_remember`` with the embedding left as its little-endian float32 bytes
    (replay joins a batch's and converts them at once). Raises ValueError, KeyError, TypeError."""
    body = msgpack.unpackb(payload, raw=False)
    item = item_from_fields(body["f"])
    raw = body["e"]
    if raw is not None and (type(raw) is not bytes or len(raw) != 4 * dimension):
        raise ValueError(f"record embedding is {len(raw)} bytes, space has {dimension} float32 dimensions")
    return item, raw, body["r"]


def encode_deduplicated(count: int) -> bytes:
    return msgpack.packb({"n": count}, use_bin_type=True)


def decode_deduplicated(payload: bytes) -> int:
    """Raises ValueError, KeyError, TypeError."""
    count = msgpack.unpackb(payload, raw=False)["n"]
    if type(count) is not int or count < 1:
        raise ValueError(f"dedup count {count!r} is not a positive integer")
    return count


def encode_forget(memory_id: str, reason: str) -> bytes:
    return msgpack.packb({"id": memory_id, "why": reason}, use_bin_type=True)


def decode_forget(payload: bytes) -> tuple[str, str]:
    body = msgpack.unpackb(payload, raw=False)
    return body["id"], body["why"]


def encode_associate(a: str, b: str, weight: float) -> bytes:
    return msgpack.packb({"a": a, "b": b, "w": weight}, use_bin_type=True)


def decode_associate(payload: bytes) -> tuple[str, str, float]:
    body = msgpack.unpackb(payload, raw=False)
    return body["a"], body["b"], body["w"]


def encode_touch(touches: list[tuple[str, int, int, float]]) -> bytes:
    """Retrievals as outcomes: (id, last access ns, access count, stability) after them."""
    return msgpack.packb([[mid, at, count, stability] for mid, at, count, stability in touches], use_bin_type=True)


def decode_touch(payload: bytes) -> list[tuple[str, int, int | None, float | None]]:
    """Entries of 4 (outcomes) or of 2 (older logs: one more access at that time; count and stability None)."""
    out: list[tuple[str, int, int | None, float | None]] = []
    for entry in msgpack.unpackb(payload, raw=False):
        if len(entry) == 2:
            out.append((entry[0], entry[1], None, None))
        else:
            out.append((entry[0], entry[1], int(entry[2]), float(entry[3])))
    return out


def encode_reconsolidate(at_ns: int, plasticity: float, item: Item, embedding: np.ndarray | None,
                         previous: Item, previous_embedding: np.ndarray | None) -> bytes:
    """A reconsolidation's outcome: the new version and the one it replaces (kept in history)."""
    body = {
        "at": at_ns,
        "p": plasticity,
        "f": item_fields(item),
        "e": None if embedding is None else embedding.astype("<f4").tobytes(),
        "pf": item_fields(previous),
        "pe": None if previous_embedding is None else previous_embedding.astype("<f4").tobytes(),
    }
    return msgpack.packb(body, use_bin_type=True)


def decode_reconsolidate(payload: bytes, dimension: int) -> tuple[int, float, Item, np.ndarray | None, list[Any], bytes | None]:
    body = msgpack.unpackb(payload, raw=False)
    item = item_from_fields(body["f"])
    raw = body["e"]
    embedding = None if raw is None else np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if embedding is not None and embedding.shape[0] != dimension:
        raise ValueError(f"record embedding has {embedding.shape[0]} dimensions, space has {dimension}")
    return int(body["at"]), float(body["p"]), item, embedding, body["pf"], body["pe"]
