"""Engram's error hierarchy.

Errors split by whose fault they are (see STYLE.md): a caller's bad value is a
``ValidationError`` (also a ``ValueError``), a peer's bad bytes a
``RemoteProtocolError``, a failed checksum a ``CorruptionError``, our own bug an
``InternalError``. Every message says what was wrong, what is allowed and gives an
example, so that a user can fix the call without reading our source.
"""

from __future__ import annotations

__all__ = [
    "EngramError",
    "ValidationError",
    "UnknownIdError",
    "SpaceLockedError",
    "ClosedError",
    "CorruptionError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "InternalError",
    "ReconsolidationWindowError",
]


class EngramError(Exception):
    """Base class of every error Engram raises on purpose."""


class ValidationError(EngramError, ValueError):
    """A value given by the caller is not allowed; nothing was written.

    ``field`` names the offending argument, ``allowed`` says what would be accepted
    and ``example`` shows a correct value.
    """

    def __init__(self, field: str, problem: str, allowed: str, example: str) -> None:
        self.field = field
        self.problem = problem
        self.allowed = allowed
        self.example = example
        super().__init__(f"{field}: {problem}; allowed: {allowed}; example: {example}")


class UnknownIdError(EngramError, LookupError):
    """An operation named a memory id that does not exist in the space."""

    def __init__(self, field: str, memory_id: str, space_id: str) -> None:
        self.field = field
        self.memory_id = memory_id
        self.space_id = space_id
        super().__init__(
            f"{field}: no memory with id {memory_id!r} in space {space_id!r}; "
            f"allowed: the id of a stored memory, as returned by remember(); "
            f"example: sp.associate(sp.remember('a', embedding=v), other_id)"
        )


class SpaceLockedError(EngramError):
    """Another process holds the data directory's lock; ``holder`` is its pid as the lock
    file gives it ("unknown" when it gives none)."""

    def __init__(self, message: str, holder: str = "unknown") -> None:
        super().__init__(message)
        self.holder = holder


class ClosedError(EngramError):
    """The database or space was used after close()."""


class CorruptionError(EngramError):
    """A checksum failed inside a file that should be intact.

    ``path`` and ``offset`` locate the bad bytes. Opening with ``salvage=True`` keeps
    what is valid before them.
    """

    def __init__(self, path: str, offset: int, reason: str) -> None:
        self.path = path
        self.offset = offset
        self.reason = reason
        super().__init__(
            f"corrupt data in {path} at offset {offset}: {reason}; "
            f"open with engram.open(path, salvage=True) to keep the valid records before it"
        )


class LocalProtocolError(EngramError):
    """Our caller misused a protocol object's API."""


class RemoteProtocolError(EngramError):
    """A peer sent bytes that do not decode; the datagram or frame is dropped."""


class InternalError(EngramError):
    """An invariant of our own broke: a bug to report."""


class ReconsolidationWindowError(EngramError):
    """A memory was changed outside its reconsolidation window; nothing was written.

    ``reason`` says why; ``opens_at`` (an aware datetime, or None when the window
    never opens) says when it could open.
    """

    def __init__(self, memory_id: str, reason: str, opens_at: "object | None") -> None:
        self.memory_id = memory_id
        self.reason = reason
        self.opens_at = opens_at
        when = f"; the window opens at {opens_at.isoformat()}" if opens_at is not None else ""  # type: ignore[attr-defined]
        super().__init__(
            f"memory {memory_id!r} is not reconsolidable now: {reason}{when}; allowed: a memory 24 h to 365 days old, "
            f"changed 1 h to 6 h after it was recalled; example: sp.recall(embedding=v) then, 2 h later, "
            f"sp.reconsolidate(id, confidence=0.9)"
        )
