"""The public value types of the engine: Memory and Hit.

They are frozen snapshots handed to callers; the engine keeps its own mutable
records (``space._Item``) and builds these on the way out, so a caller can never
change stored state by mutating what it was given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

MEMORY_TYPES = ("semantic", "episodic", "procedural", "working")
DECAY_FUNCTIONS = ("exponential", "power_law", "two_component", "hybrid", "none")


def ns_to_datetime(ns: int) -> datetime:
    """Nanoseconds since the epoch to an aware UTC datetime (microsecond precision)."""
    return datetime.fromtimestamp(ns // 1000 / 1_000_000, tz=timezone.utc)


def datetime_to_ns(when: datetime) -> int:
    """An aware datetime to nanoseconds since the epoch; naive datetimes are taken as UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    delta = when - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


@dataclass(frozen=True, slots=True)
class Memory:
    """A stored memory or episode as it was when read.

    ``embedding`` is a float32 array of the space's dimension, or None for a
    text-only memory (no vector is ever made up). ``memory_type`` "episodic" marks
    an episode; ``sources`` lists the episode ids a consolidated pattern cites.
    """

    id: str
    content: str
    embedding: np.ndarray | None
    confidence: float
    created_at: datetime
    last_access: datetime
    access_count: int
    tags: tuple[str, ...] = ()
    memory_type: str = "semantic"
    location: str | None = None
    who: tuple[str, ...] = ()
    why: str | None = None
    how: str | None = None
    importance: float | None = None
    emotional_valence: float | None = None
    decay: str = "power_law"
    sources: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def is_episode(self) -> bool:
        return self.memory_type == "episodic"


@dataclass(frozen=True, slots=True)
class Hit:
    """One recall result.

    ``score`` is the match score in [0, 1] (cosine clamped at 0, lexical score, or 1
    for a filter-only recall); ``retention`` the decay factor at read time;
    ``confidence`` = stored confidence x retention x score, always in [0, 1], then
    multiplied by each cognitive effect's factor listed in ``effects`` as
    (name, factor) pairs (for instance ("priming", 1.08), ("proactive_interference", 0.9)).
    ``retrieval_path`` says how the hit was reached: "similarity", "spreading",
    "similarity+spreading" or "filter"; ``activation`` is its spreading activation
    (modes "spreading" and "hybrid"); ``estimated_retrieval_ms`` is the fan effect's
    estimate (1150 + 70 x (associations - 1)) when that effect is on.
    """

    id: str
    score: float
    confidence: float
    retention: float
    memory: Memory
    retrieval_path: str = "similarity"
    effects: tuple[tuple[str, float], ...] = ()
    activation: float | None = None
    estimated_retrieval_ms: float | None = None


@dataclass(frozen=True, slots=True)
class MemoryVersion:
    """An earlier version of a memory, replaced by a reconsolidation at ``replaced_at``
    with the given ``plasticity``."""

    replaced_at: datetime
    plasticity: float
    memory: Memory


@dataclass(frozen=True, slots=True)
class Remembered:
    """What storing one memory did (``Space.remember_many(..., outcomes=True)``).

    ``outcome``: "stored" (a new memory, or an overwrite of the id given), "merged" (a
    near-duplicate of stored memory ``id`` with a higher confidence: that memory took
    its content and confidence, and kept its id) or "kept" (a near-duplicate of stored
    memory ``id`` with an equal or higher confidence: nothing changed).
    """

    id: str
    outcome: str
