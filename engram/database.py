"""A data directory of memory spaces: ``engram.open(path)``.

Layout: ``<data>/LOCK`` (one process at a time), and one directory per space,
``<data>/<space_id>/`` with ``space.json`` (its settings and creation time), its
checkpoint and its ``wal/`` segments. Spaces open lazily on first use and are
created by their first ``db.space(id)`` call.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from engram.errors import ClosedError, CorruptionError, ValidationError
from engram.memory import validate as check
from engram.memory.space import Space, SpaceConfig
from engram.memory.types import datetime_to_ns, ns_to_datetime
from engram.storage.files import make_directory, remove_tree_durably, write_json_durably
from engram.storage.lock import DirectoryLock

SPACE_FILE = "space.json"
# Written when the database closes a space: its memory count and the files (names and
# sizes) that hold it, so that listing spaces need not open (replay) the closed ones.
SUMMARY_FILE = "summary.json"
Clock = Callable[[], "datetime | float | int"]


def _space_config(settings: dict[str, Any]) -> SpaceConfig:
    """SpaceConfig(**settings), with an unknown setting a ValidationError naming it (a
    misspelt keyword would otherwise be a TypeError from the dataclass)."""
    known = SpaceConfig.__dataclass_fields__
    for name in sorted(settings):
        if name not in known:
            raise ValidationError(name, "is not a space setting", ", ".join(known), "engram.open(path, dimension=768)")
    return SpaceConfig(**settings)


def _clock_ns(clock: Clock | None) -> Callable[[], int]:
    """The engine reads time through this: an injected clock (datetime or epoch seconds) or the wall clock."""
    if clock is None:
        return time.time_ns
    if not callable(clock):
        raise ValidationError("clock", f"{clock!r} is not callable", "a function returning a datetime or epoch seconds, or None",
                              "engram.open(path, clock=lambda: datetime.now(timezone.utc))")

    def now_ns() -> int:
        value = clock()
        if isinstance(value, datetime):
            return datetime_to_ns(value)
        # Checked on every reading (an isinstance): a bad reading is the caller's error,
        # named as such, not a float() TypeError from deep inside a write.
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ValidationError("clock", f"returned {value!r}", "a datetime or finite epoch seconds",
                                  "engram.open(path, clock=lambda: datetime.now(timezone.utc))")
        return int(round(float(value) * 1_000_000_000))

    return now_ns


class Database:
    """An open data directory. Use as a context manager, or call ``close()``."""

    def __init__(self, path: str | os.PathLike[str], *, clock: Clock | None = None, salvage: bool = False, **defaults: Any) -> None:
        self.path = Path(path)
        _space_config(defaults)  # validate the defaults now, not at first use (and before locking)
        make_directory(self.path)
        self._lock_file = DirectoryLock(self.path)
        self._lock_file.acquire()
        self._now_ns = _clock_ns(clock)
        self._salvage = salvage
        self._defaults = defaults
        self._spaces: dict[str, Space] = {}
        self._guard = threading.Lock()
        self._closed = False

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def now_ns(self) -> int:
        return self._now_ns()

    def space(self, space_id: str, **config: Any) -> Space:
        """The space named ``space_id``, created on first use.

        ``config`` (see SpaceConfig) applies at creation and is stored; given again
        for an existing space it updates the stored settings, except ``dimension``
        which cannot change once set. Settings are stored once the space has opened
        with them: a call that raises (ValidationError, CorruptionError, OSError)
        leaves space.json, and a space it would have created, as they were.
        """
        check.space_id(space_id)
        with self._guard:
            if self._closed:
                raise ClosedError("the database is closed; open it again with engram.open(path)")
            space = self._spaces.get(space_id)
            if space is not None:
                # Compared as a whole config, so that another spelling of the same
                # settings (effects as a list, in another order) is the same.
                if config and _space_config({**space.config.to_json(), **config}) != space.config:
                    raise ValidationError(
                        "config", f"space {space_id!r} is already open with other settings",
                        "the same settings, or none, while it is open", f"db.space({space_id!r})",
                    )
                return space
            directory = self.path / space_id
            stored = self._read_space_file(directory)
            settings = dict(self._defaults)
            if stored is not None:
                settings.update(stored["config"])
                if "dimension" in config and config["dimension"] != stored["config"]["dimension"]:
                    # Fixed at creation (by the first db.space or space_info call), whether or
                    # not the space holds an embedding yet: say so, not that it stores some.
                    dim = stored["config"]["dimension"]
                    raise ValidationError(
                        "dimension", f"space {space_id!r} was created with dimension {dim}",
                        f"{dim}, the dimension it was created with; another dimension needs another space",
                        f"db.space({space_id!r}) or db.space('{space_id[:55]}-{config['dimension']}', dimension={config['dimension']})",
                    )
            settings.update(config)
            space_config = _space_config(settings)
            created_ns = stored["created_ns"] if stored is not None else self._now_ns()
            new_directory = not directory.exists()
            make_directory(directory)  # durable: the space's acknowledged writes live in it
            space = None
            try:
                space = Space(space_id, directory, space_config, self._now_ns)
                space._open(self._salvage)
                # Settings are stored only once the space opened with them: a call whose
                # open fails (a corrupt log, an I/O error) leaves space.json as it was.
                if stored is None or stored["config"] != space_config.to_json():
                    self._write_space_file(directory, {"id": space_id, "created_ns": created_ns, "config": space_config.to_json()})
            except BaseException:
                self._abandon(space, directory if new_directory else None)
                raise
            space.created_ns = created_ns
            self._spaces[space_id] = space
            return space

    def _abandon(self, space: Space | None, made: Path | None) -> None:
        """Undo a space's failed opening: close its log, if made (the opening's error is
        the one the caller raises, not a second from here), and delete ``made``, the
        directory this call created."""
        if space is not None:
            try:
                space._wal.close()
            except OSError:
                pass
        if made is not None:
            assert made.parent == self.path
            remove_tree_durably(made, ignore_errors=True)

    def spaces(self) -> list[str]:
        """Ids of every space in the directory, sorted."""
        found = {p.parent.name for p in self.path.glob(f"*/{SPACE_FILE}")}
        with self._guard:
            found.update(self._spaces)
        return sorted(found)

    def space_info(self, space_id: str) -> dict[str, Any]:
        """id, path, created_at, dimension, memories and effects of a space. A space that
        is not open and was closed cleanly since its files last changed is described
        from the summary written at that close, without opening it; any other one is
        opened (created on first use, as ``space``)."""
        check.space_id(space_id)
        with self._guard:
            if self._closed:  # as space(): after close the lock is released and the files may change
                raise ClosedError("the database is closed; open it again with engram.open(path)")
            space = self._spaces.get(space_id)
        if space is None:
            directory = self.path / space_id
            stored = self._read_space_file(directory)
            memories = self._summary_memories(directory)
            if stored is not None and memories is not None:
                config = _space_config({**self._defaults, **stored["config"]})
                return {"id": space_id, "path": str(directory), "created_at": ns_to_datetime(stored["created_ns"]),
                        "dimension": config.dimension, "memories": memories, "effects": list(config.effects)}
            space = self.space(space_id)
        return {
            "id": space_id,
            "path": str(space.directory),
            "created_at": ns_to_datetime(space.created_ns),
            "dimension": space.config.dimension,
            "memories": len(space),
            "effects": list(space.config.effects),
        }

    @staticmethod
    def _space_files(directory: Path) -> list[list[Any]]:
        """[relative path, size] of every file that holds the space's state, sorted."""
        found = []
        for path in directory.rglob("*"):
            if path.is_file() and path.name not in (SPACE_FILE, SUMMARY_FILE) and not path.name.endswith(".tmp"):
                found.append([path.relative_to(directory).as_posix(), path.stat().st_size])
        return sorted(found)

    def _write_summary(self, space: Space) -> None:
        body = {"memories": len(space), "files": self._space_files(space.directory)}
        temp = space.directory / (SUMMARY_FILE + ".tmp")
        temp.write_text(json.dumps(body, sort_keys=True))
        os.replace(temp, space.directory / SUMMARY_FILE)  # no fsync: a lost summary only means opening the space

    def _summary_memories(self, directory: Path) -> int | None:
        """The memory count of the summary, if the space's files are still exactly the ones it describes."""
        try:
            body = json.loads((directory / SUMMARY_FILE).read_text())
            memories = body["memories"]
            if not isinstance(memories, int) or body["files"] != self._space_files(directory):
                return None
            return memories
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def checkpoint(self) -> None:
        """Checkpoint every open space."""
        with self._guard:
            spaces = list(self._spaces.values())
        for space in spaces:
            space.checkpoint()

    def discard_if_unused(self, space_id: str) -> bool:
        """Close and delete the open space ``space_id`` if nothing was ever logged in it
        (Space.unused), and say whether it did. For a server that created a space for a
        write the engine then refused: the rejected request must leave nothing behind."""
        check.space_id(space_id)
        with self._guard:
            space = self._spaces.get(space_id)
            if space is None or not space.unused():
                return False
            space.close()
            del self._spaces[space_id]
            remove_tree_durably(self.path / space_id)  # durable, like the directory's creation
            return True

    def close(self) -> None:
        """Flush every space's WAL, close it and release the directory lock."""
        with self._guard:
            if self._closed:
                return
            self._closed = True
            spaces = list(self._spaces.values())
        first_error: BaseException | None = None
        try:
            for space in spaces:
                # Every space is closed even if one fails: one left open would go on
                # writing after the lock below is released.
                try:
                    space.close()
                except Exception as exc:
                    first_error = first_error or exc
                    continue
                if space._failed is None:
                    try:
                        self._write_summary(space)
                    except OSError:
                        pass  # the space is closed and durable; the next listing opens it
        finally:
            self._lock_file.release()
        if first_error is not None:
            raise first_error

    @staticmethod
    def _read_space_file(directory: Path) -> dict[str, Any] | None:
        path = directory / SPACE_FILE
        if not path.exists():
            return None
        # Written atomically, so a bad one was damaged or edited by hand: say which file
        # and where, as for any other corrupt file (not a bare JSONDecodeError or KeyError).
        try:
            body = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise CorruptionError(str(path), exc.pos, f"space settings are not JSON ({exc.msg})") from None
        except UnicodeDecodeError as exc:
            raise CorruptionError(str(path), exc.start, "space settings are not UTF-8") from None
        if not isinstance(body, dict) or not isinstance(body.get("config"), dict) \
                or isinstance(body.get("created_ns"), bool) or not isinstance(body.get("created_ns"), int):
            raise CorruptionError(str(path), 0, "space settings lack a 'config' object or an integer 'created_ns'")
        return body

    @staticmethod
    def _write_space_file(directory: Path, body: dict[str, Any]) -> None:
        write_json_durably(directory / SPACE_FILE, body, indent=2)


def open(path: str | os.PathLike[str], *, clock: Clock | None = None, salvage: bool = False, **defaults: Any) -> Database:  # noqa: A001
    """Open (or create) a data directory.

    ``clock``: a callable returning a datetime or epoch seconds (tests drive time
    with it). ``salvage``: on a corrupt record, keep what is valid before it instead
    of raising CorruptionError. ``defaults``: SpaceConfig settings for new spaces.
    Raises SpaceLockedError if another process has the directory open.
    """
    return Database(path, clock=clock, salvage=salvage, **defaults)
