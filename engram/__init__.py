"""Engram: a cognitive memory database for agents.

    import engram
    with engram.open("./data") as db:
        sp = db.space("agent-1")
        mid = sp.remember("The mitochondria is the powerhouse of the cell", embedding=vec, confidence=0.9)
        hits = sp.recall(embedding=vec, k=10)
"""

from engram.database import Database, open
from engram.errors import (
    ClosedError,
    CorruptionError,
    EngramError,
    InternalError,
    LocalProtocolError,
    ReconsolidationWindowError,
    RemoteProtocolError,
    SpaceLockedError,
    UnknownIdError,
    ValidationError,
)
from engram.memory.space import Space, SpaceConfig
from engram.memory.types import Hit, Memory, MemoryVersion, Remembered

__version__ = "0.1.0"

__all__ = [
    "open",
    "Database",
    "Space",
    "SpaceConfig",
    "Memory",
    "Hit",
    "MemoryVersion",
    "Remembered",
    "ReconsolidationWindowError",
    "EngramError",
    "ValidationError",
    "UnknownIdError",
    "SpaceLockedError",
    "ClosedError",
    "CorruptionError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "InternalError",
    "__version__",
]
