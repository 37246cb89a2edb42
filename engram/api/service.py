"""The server's state over one open Database: spaces, threads, batchers, keys, events.

Every blocking engine call goes through ``run`` (a worker thread bounded by one
CapacityLimiter), so the trio loop never waits on an fsync or a scan. Spaces are
opened lazily, once, under a per-space lock. Reads of a space that does not exist
answer as empty and create nothing; the first write creates it.

Writes pass through ``writing()``: a backup closes that gate, waits for writes in
flight to finish, checkpoints and copies the files, then opens it again; this is what
makes ``engram backup create`` a consistent snapshot while the server keeps serving.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import logging
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Callable, TypeVar

import trio

from ..config import Settings
from ..storage import backup as backup_files
from ..storage.files import make_directory
from .auth import KeyRecord, KeyStore, RateLimiter, VerifiedCache, create_private
from .batching import RecallBatcher, RememberBatcher
from .consolidation import ConsolidationScheduler
from .errors import ApiError
from .events import EventHub
from .metrics import Metrics
from .schemas import EMBEDDING_DIM_DEFAULT

__all__ = ["Service"]

log = logging.getLogger("engram.api")
T = TypeVar("T")

# Set by the HTTP handler when a request starts: whether the server was still serving
# then (see writing()). A ContextVar follows the request's task into the write path.
ADMITTED_BEFORE_SHUTDOWN: contextvars.ContextVar[bool] = contextvars.ContextVar("admitted_before_shutdown", default=False)

# Files of the data directory that a backup must not copy: the process lock and pid file.
_BACKUP_SKIP = {"LOCK", "engram.pid"}


class Service:
    def __init__(self, db: Any, settings: Settings, nursery: trio.Nursery) -> None:
        self.db = db
        self.settings = settings
        self.nursery = nursery
        self.limiter = trio.CapacityLimiter(settings.engine_threads_max)
        self.started_monotonic_s = time.monotonic()
        self.started_at = datetime.now(timezone.utc)
        self._spaces: dict[str, Any] = {}
        self._space_locks: dict[str, trio.Lock] = {}
        self._known: set[str] = set(db.spaces())
        self._dimensions: dict[str, int] = {}
        self._batchers: dict[str, RecallBatcher] = {}
        self._write_batchers: dict[str, RememberBatcher] = {}
        self.hub = EventHub()
        self.metrics = Metrics(self._space_stats)
        self.keys = KeyStore(settings.keys_path)
        self.key_cache = VerifiedCache(ttl_s=settings.key_cache_ttl_s)
        self.rates = RateLimiter()
        # Checking a key costs one scrypt (tens of ms of CPU), and anyone who knows a key
        # id can make the server pay it with wrong secrets: on threads of their own, so
        # such a flood never takes the engine's threads (fsync, scans) from real work.
        self.key_limiter = trio.CapacityLimiter(2)
        self.auth_enabled = settings.auth_enabled
        self.shutting_down = False
        self._writers = 0
        self._writers_idle = trio.Event()
        self._writers_idle.set()
        self._gate_open = trio.Event()
        self._gate_open.set()
        self._backup_lock = trio.Lock()
        self.membership: Any = None  # the SWIM handle when serving with --cluster
        if settings.cluster:
            from engram.net._trio.metrics import register_membership_metrics

            register_membership_metrics(self.metrics.registry, lambda: self.membership)
        self._embedder: Any = None
        self._embedder_lock = trio.Lock()
        self.consolidation = ConsolidationScheduler(
            open_space=lambda space_id: self.db.space(space_id),
            space_ids=lambda: sorted(self._known),
            publish=self.hub.publish,
            registry=self.metrics.registry,
            interval_s=settings.consolidation_interval_s,
            max_episodes=settings.consolidation_max_episodes,
        )

    # ------------------------------------------------------------------ threads

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await trio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    # ------------------------------------------------------------------ spaces

    def space_exists(self, space_id: str) -> bool:
        return space_id in self._known

    def known_spaces(self) -> list[str]:
        return sorted(self._known)

    async def refresh_known(self) -> None:
        self._known.update(await self.run(self.db.spaces))

    async def space(self, space_id: str, *, create: bool, config: dict[str, Any] | None = None) -> Any | None:
        """The open Space, or None if it does not exist and ``create`` is false."""
        sp = self._spaces.get(space_id)
        if sp is not None:
            return sp
        if not create and space_id not in self._known:
            return None
        lock = self._space_locks.setdefault(space_id, trio.Lock())
        async with lock:
            sp = self._spaces.get(space_id)
            if sp is not None:
                return sp
            sp = await self._open_space(space_id, config)
            self._register(space_id, sp)
            return sp

    @contextlib.asynccontextmanager
    async def space_for_write(self, space_id: str) -> AsyncIterator[Any]:
        """The space a write goes to, created on first use. A space this write creates is
        seen by other requests only once the write succeeded: meanwhile they wait for it,
        and if the write fails before anything is logged (the engine refused a value) the
        space is deleted again, so that a rejected request leaves nothing behind."""
        sp = await self.space(space_id, create=False)
        if sp is not None:
            yield sp
            return
        lock = self._space_locks.setdefault(space_id, trio.Lock())
        async with lock:
            sp = self._spaces.get(space_id)
            if sp is None:
                sp = await self._open_space(space_id, None)
                try:
                    yield sp
                except BaseException:
                    # Also when cancelled: the write may have finished in its thread, and
                    # then the space holds an acknowledged record and must be known.
                    with trio.CancelScope(shield=True):
                        try:
                            discarded = await self._discard_if_unused(space_id)
                        except Exception:  # noqa: BLE001 - the write's own error is the one to report
                            log.exception("could not remove the space %r a refused first write created", space_id)
                            discarded = False
                        if not discarded:
                            self._register(space_id, sp)
                    raise
                self._register(space_id, sp)
                return
        yield sp

    async def _open_space(self, space_id: str, config: dict[str, Any] | None) -> Any:
        settings: dict[str, Any] = {}
        if space_id not in self._known:
            if self.settings.durability != "sync":
                settings["durability"] = self.settings.durability
            if self.settings.embedder == "minilm":
                settings["dimension"] = 384  # the embedder's vectors
            settings.update(config or {})
        return await self.run(lambda: self.db.space(space_id, **settings))

    def _register(self, space_id: str, sp: Any) -> None:
        self._spaces[space_id] = sp
        self._known.add(space_id)
        self._dimensions[space_id] = int(getattr(getattr(sp, "config", None), "dimension", EMBEDDING_DIM_DEFAULT))

    async def _discard_if_unused(self, space_id: str) -> bool:
        if not await self.run(self.db.discard_if_unused, space_id):
            return False
        for batchers in (self._batchers, self._write_batchers):
            batcher = batchers.pop(space_id, None)
            if batcher is not None:
                batcher.close()
        return True

    def dimension(self, space_id: str) -> int:
        default = 384 if self.settings.embedder == "minilm" else EMBEDDING_DIM_DEFAULT
        return self._dimensions.get(space_id, default)

    # ------------------------------------------------------------------ embeddings

    async def embedder(self) -> Any:
        """The configured embedder, loaded once in a worker thread (seconds), or None."""
        if self.settings.embedder == "none":
            return None
        async with self._embedder_lock:
            if self._embedder is None:
                from engram.embed import load_embedder

                self._embedder = await self.run(load_embedder, self.settings.embedder)
        return self._embedder

    async def embed(self, space_id: str, texts: list[str]) -> Any:
        """Embeddings (float32 rows) for ``texts`` if an embedder is on and fits the space, else None."""
        embedder = await self.embedder()
        if embedder is None or not texts or await self.dimension_of(space_id) != embedder.dimension:
            return None
        return await self.run(embedder.encode, texts)

    async def dimension_of(self, space_id: str) -> int:
        if space_id in self._dimensions or space_id not in self._known:
            return self.dimension(space_id)
        await self.space(space_id, create=False)
        return self.dimension(space_id)

    def batcher(self, space_id: str, sp: Any) -> RecallBatcher:
        b = self._batchers.get(space_id)
        if b is None:
            b = RecallBatcher(
                sp,
                limiter=self.limiter,
                batch_count_max=self.settings.recall_batch_count_max,
                queue_count_max=self.settings.recall_queue_count_max,
                on_batch=self.metrics.recall_batch.observe,
            )
            self._batchers[space_id] = b
            self.nursery.start_soon(b.serve_batches, name=f"serve_recall_batches[{space_id}]")
        return b

    def write_batcher(self, space_id: str, sp: Any) -> RememberBatcher:
        b = self._write_batchers.get(space_id)
        if b is None:
            b = RememberBatcher(
                sp,
                limiter=self.limiter,
                batch_count_max=self.settings.remember_batch_count_max,
                queue_count_max=self.settings.recall_queue_count_max,
                on_batch=self.metrics.remember_batch.observe,
            )
            self._write_batchers[space_id] = b
            self.nursery.start_soon(b.serve_batches, name=f"serve_remember_batches[{space_id}]")
        return b

    def close_batchers(self) -> None:
        for b in list(self._batchers.values()) + list(self._write_batchers.values()):
            b.close()

    def _space_stats(self) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for space_id, sp in sorted(self._spaces.items()):
            try:
                out.append((space_id, sp.stats()))
            except Exception:  # noqa: BLE001 - a closed space has no stats; skip it in a scrape
                continue
        return out

    # ------------------------------------------------------------------ write gate

    @contextlib.asynccontextmanager
    async def writing(self) -> AsyncIterator[None]:
        while not self._gate_open.is_set():
            await self._gate_open.wait()
        # A request that arrived before SIGTERM is in flight and is finished, write
        # included; one that arrived after (on a kept-alive connection) is refused.
        if self.shutting_down and not ADMITTED_BEFORE_SHUTDOWN.get():
            raise ApiError(503, "the server is shutting down", headers={"Retry-After": "1"})
        self._writers += 1
        self._writers_idle = trio.Event() if self._writers == 1 else self._writers_idle
        try:
            yield
        finally:
            self._writers -= 1
            if self._writers == 0:
                self._writers_idle.set()

    async def backup(self, target: Path) -> dict[str, Any]:
        """Checkpoint and copy the data directory into ``target`` (created; must be empty)."""
        async with self._backup_lock:
            target = Path(target)
            example = '{"target": "/backups/engram-1"}'
            if target.exists() and not target.is_dir():
                raise ApiError(400, f"target: {target} exists and is not a directory", field="target",
                               allowed="a path that does not exist or an empty directory", example=example)
            if target.exists() and any(target.iterdir()):
                raise ApiError(409, f"target: {target} is not empty", code="BACKUP_TARGET_NOT_EMPTY", field="target",
                               allowed="a path that does not exist or an empty directory", example='{"target": "/backups/engram-2024-05-01"}')
            data = Path(self.settings.data_dir).resolve()
            if target.resolve() == data or data in target.resolve().parents:
                raise ApiError(400, "target: must be outside the data directory", field="target",
                               allowed="a path outside the data directory", example='{"target": "/backups/engram-1"}')
            try:
                # Made before the write gate closes: a target the server cannot create is
                # the caller's mistake (400 naming it), not an internal error.
                await self.run(make_directory, target)
            except OSError as exc:
                raise ApiError(400, f"target: cannot create {target} ({exc.strerror or exc})", field="target",
                               allowed="a directory path the server may create and write", example=example) from None
            self._gate_open = trio.Event()
            try:
                await self._writers_idle.wait()
                # Consolidation writes patterns (and may start a checkpoint that drops WAL
                # segments) outside the write gate: no run may overlap the copy.
                async with self.consolidation.limiter:
                    t0 = time.monotonic()
                    stats, records = await self._run_or_empty(target, example, self._checkpoint_and_copy, target)
            finally:
                self._gate_open.set()
            # The copy is fixed now, its digests taken as it was made: flushing it to disk
            # and writing the manifest need not hold writes.
            await self._run_or_empty(target, example, backup_files.seal_backup, target, records,
                                     stats["spaces"], stats["created_at"])
            stats["duration_s"] = round(time.monotonic() - t0, 3)
            return stats

    async def _run_or_empty(self, target: Path, example: str, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker thread; if it fails, the target is emptied (a failed
        copy is no backup, and the same command can be run again) and a full disk is a 507."""
        try:
            return await self.run(fn, *args)
        except BaseException as exc:
            with trio.CancelScope(shield=True):
                await self.run(backup_files.empty_directory, target)
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise ApiError(507, f"target: no space left for the backup in {target}; nothing was kept",
                               field="target", allowed="a file system with room for the data directory",
                               example=example) from None
            raise

    async def checkpoint(self) -> None:
        """Checkpoint every open space, never while a backup copies (it drops WAL segments)."""
        async with self._backup_lock:
            await self.run(self.db.checkpoint)

    def _checkpoint_and_copy(self, target: Path) -> tuple[dict[str, Any], dict[str, backup_files.FileRecord]]:
        """Checkpoint, then copy every space and the key database into ``target``; the
        answer's stats, and each copied file's size and digest (taken as it was copied)."""
        self.db.checkpoint()
        source = Path(self.settings.data_dir)
        records: dict[str, backup_files.FileRecord] = {}
        spaces = []
        for entry in sorted(source.iterdir()):
            if entry.name in _BACKUP_SKIP or entry.name.endswith((".tmp", "-journal", "-wal", "-shm")):
                continue
            if entry.is_dir():
                if not (entry / "space.json").exists():
                    continue
                spaces.append(entry.name)
                copied = backup_files.copy_tree(entry, target / entry.name, skip=lambda name: name.endswith(".tmp"))
                records.update((f"{entry.name}/{rel}", record) for rel, record in copied.items())
            elif entry.name == "keys.sqlite":
                # The SQLite backup API copies a consistent image even if a CLI writes now.
                create_private(target / entry.name)  # the copy as private as the original
                with contextlib.closing(sqlite3.connect(entry)) as src, contextlib.closing(sqlite3.connect(target / entry.name)) as dst:
                    src.backup(dst)
                # SQLite wrote this copy, not us: it is read once here, to hash it.
                records[entry.name] = backup_files.file_record(target / entry.name)
        created_at = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
        stats = {"target": str(target), "spaces": spaces, "files": len(records),
                 "bytes": sum(r.size_bytes for r in records.values()), "created_at": created_at}
        return stats, records

    # ------------------------------------------------------------------ auth

    async def _verify_key(self, token: str) -> KeyRecord | None:
        return await trio.to_thread.run_sync(self.keys.verify, token, limiter=self.key_limiter)

    async def authenticate(self, authorization: str | None) -> KeyRecord | None:
        """The caller's key (None when auth is off). Raises ApiError 401 or 429."""
        if not self.auth_enabled:
            return None
        if not authorization:
            self.metrics.auth_failures.labels("missing").inc()
            raise ApiError(401, "this server requires an API key", field="Authorization",
                           allowed="Bearer engram_key_<id>_<secret> (the CLI sends --api-key or ENGRAM_API_KEY)",
                           example="Authorization: Bearer engram_key_0123456789ab_...",
                           headers={"WWW-Authenticate": 'Bearer realm="engram"'})
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            self.metrics.auth_failures.labels("malformed").inc()
            raise ApiError(401, "the Authorization header must read 'Bearer <key>'", field="Authorization",
                           allowed="Bearer engram_key_<id>_<secret>", example="Authorization: Bearer engram_key_0123456789ab_...",
                           headers={"WWW-Authenticate": 'Bearer realm="engram"'})
        now = time.monotonic()
        record = await self.key_cache.lookup(token, now, self._verify_key)
        if record is None:
            self.metrics.auth_failures.labels("invalid").inc()
            raise ApiError(401, "the API key is not valid (unknown, revoked or mistyped)",
                           headers={"WWW-Authenticate": 'Bearer realm="engram", error="invalid_token"'})
        if record.expired(time.time()):  # checked on every request: a cached key can expire meanwhile
            self.metrics.auth_failures.labels("expired").inc()
            raise ApiError(401, f"API key {record.id} expired at {record.expires_iso}; create a new one with "
                                "'engram key create'", field="Authorization",
                           example="engram key create --space agent-1 --expires 30d",
                           headers={"WWW-Authenticate": 'Bearer realm="engram", error="invalid_token"'})
        wait_s = self.rates.take(record.id, record.rate_per_s, now)
        if wait_s > 0:
            self.metrics.auth_failures.labels("rate").inc()
            retry = str(max(1, int(wait_s + 0.999)))
            raise ApiError(429, f"API key {record.id} is above its rate of {record.rate_per_s:g} requests/s",
                           headers={"Retry-After": retry})
        return record
