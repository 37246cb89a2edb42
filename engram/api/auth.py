"""API keys: creation, hashed storage in SQLite, verification and per-key rate limits.

A key reads ``engram_key_<id>_<secret>``. It is printed once by ``engram key create``;
the database (``<data>/keys.sqlite``) holds only its id, a random salt and
scrypt(secret, salt), plus the spaces and permissions it grants and its rate. Checking a
key costs one scrypt (tens of ms), so the server remembers a verified key by the SHA-256
of the whole token for ``cache_ttl_s`` seconds; a revoked key stops working after that.
Concurrent first checks of one token share one scrypt run (``VerifiedCache.lookup``).
A key may carry an expiry (``--expires 30d``); past it the key gets a 401 saying so.

Permissions: ``read`` (GET routes), ``write`` (remember, delete, create spaces),
``admin`` (backup, key-free admin routes). Spaces: a list of ids, or ``*`` for all.
Routes that describe every space show a key only the spaces it may use (spaces list,
system health, admin status); /metrics, labelled with every space, needs a ``*`` key.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import math
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import trio

__all__ = ["KeyRecord", "KeyStore", "RateLimiter", "PERMISSIONS", "KEY_PREFIX", "create_private"]

KEY_PREFIX = "engram_key_"
PERMISSIONS = ("read", "write", "admin")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    name: str
    spaces: tuple[str, ...]  # ("*",) for every space
    permissions: tuple[str, ...]
    rate_per_s: float
    created_at: float
    revoked: bool
    expires_at: float | None = None  # Unix time; None: never expires

    def expired(self, now_s: float) -> bool:
        """Whether the key has expired at wall-clock time ``now_s``."""
        return self.expires_at is not None and now_s >= self.expires_at

    @property
    def expires_iso(self) -> str | None:
        if self.expires_at is None:
            return None
        return datetime.fromtimestamp(self.expires_at, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")

    @property
    def all_spaces(self) -> bool:
        """Whether the key may use every space ('*')."""
        return "*" in self.spaces

    def allows_space(self, space_id: str) -> bool:
        return self.all_spaces or space_id in self.spaces

    def allows(self, permission: str) -> bool:
        return permission in self.permissions or "admin" in self.permissions

    def as_json(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "spaces": list(self.spaces), "permissions": list(self.permissions),
                "rate_per_s": self.rate_per_s, "created_at": self.created_at, "revoked": self.revoked,
                "expires_at": self.expires_at}


def _hash(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, maxmem=64 * 1024 * 1024, **_SCRYPT)


def create_private(path: Path) -> None:
    """Create ``path`` empty and readable by its owner only, unless it exists.

    The key database holds salted hashes, spaces and rates: not secrets, but an offline
    guessing target and a map of who may do what, so other users of the host get no
    read access (SQLite gives its journal files the database file's mode)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def split_token(token: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed token, else None."""
    if not token.startswith(KEY_PREFIX):
        return None
    rest = token[len(KEY_PREFIX):]
    key_id, sep, secret = rest.partition("_")
    if not sep or len(key_id) != 12 or not secret or len(secret) > 128:
        return None
    if any(c not in "0123456789abcdef" for c in key_id):
        return None
    return key_id, secret


# The columns a KeyRecord is built from, in _record's order; every SELECT of records uses them.
_RECORD_COLUMNS = "id, name, spaces, permissions, rate_per_s, created_at, revoked, expires_at"


def _record(row: tuple[Any, ...]) -> KeyRecord:
    """The KeyRecord of a row that starts with ``_RECORD_COLUMNS``."""
    key_id, name, spaces, permissions, rate_per_s, created_at, revoked, expires_at = row[:8]
    return KeyRecord(key_id, name, tuple(json.loads(spaces)), tuple(json.loads(permissions)), rate_per_s, created_at,
                     bool(revoked), expires_at)


class KeyStore:
    """The SQLite table of keys. Each method opens its own short connection, so the CLI and
    the server (in a worker thread) can use the same file at once.

    The table is created (or migrated) once per file this store sees, not on every
    connection: the server verifies keys from several worker threads, so a lock makes
    one of them do it. The file is known by (device, inode), so a key database replaced
    under a running server (an older one put back by hand) is migrated too."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._schema_lock = threading.Lock()
        self._schema_file: tuple[int, int] | None = None  # (st_dev, st_ino) whose schema is current

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A connection for one transaction (committed, or rolled back on error), then
        closed: sqlite3's own ``with conn`` ends the transaction but leaves the
        connection open until garbage collection."""
        conn = self._connect()
        try:
            with conn:
                yield conn
        finally:
            conn.close()

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        create_private(self.path)
        conn = sqlite3.connect(self.path, timeout=5.0)
        try:
            stat = self.path.stat()
            file = (stat.st_dev, stat.st_ino)
            if file != self._schema_file:
                with self._schema_lock:
                    if file != self._schema_file:
                        self._ensure_schema(conn)
                        self._schema_file = file
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _ensure_schema(conn: sqlite3.Connection) -> None:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS api_keys (id TEXT PRIMARY KEY, name TEXT NOT NULL, salt BLOB NOT NULL, "
            "hash BLOB NOT NULL, spaces TEXT NOT NULL, permissions TEXT NOT NULL, rate_per_s REAL NOT NULL, "
            "created_at REAL NOT NULL, revoked INTEGER NOT NULL DEFAULT 0, expires_at REAL)"
        )
        # Key databases made before keys could expire lack the column: add it (NULL, never
        # expires). Another process may add it first; then the ALTER fails, harmlessly.
        if "expires_at" not in {row[1] for row in conn.execute("PRAGMA table_info(api_keys)")}:
            try:
                conn.execute("ALTER TABLE api_keys ADD COLUMN expires_at REAL")
            except sqlite3.OperationalError as exc:
                if "duplicate column" not in str(exc):
                    raise
        conn.commit()

    def exists(self) -> bool:
        return self.path.exists()

    def create(self, *, spaces: list[str], permissions: list[str], rate_per_s: float, name: str = "",
               expires_in_s: float | None = None) -> tuple[KeyRecord, str]:
        """Store a new key and return it with the full token, which is never stored.
        ``expires_in_s``: seconds from now until the key stops working (None: never).

        Raises:
            ValueError: an unknown permission, no space, a rate <= 0 or an expiry <= 0.
        """
        perms = tuple(sorted(set(permissions)))
        for p in perms:
            if p not in PERMISSIONS:
                raise ValueError(f"perm: {p!r} is not a permission; allowed: {', '.join(PERMISSIONS)}; example: --perm read,write")
        if not perms:
            raise ValueError("perm: at least one permission is needed; example: --perm read,write")
        if not spaces:
            raise ValueError("space: at least one space (or '*') is needed; example: --space agent-1")
        if not (rate_per_s > 0 and math.isfinite(rate_per_s)):
            raise ValueError("rate: must be a positive number of requests per second; example: --rate 100")
        if expires_in_s is not None and not (expires_in_s > 0 and math.isfinite(expires_in_s)):
            raise ValueError("expires: must be a positive duration; example: --expires 30d")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        now = time.time()
        expires_at = None if expires_in_s is None else now + expires_in_s
        record = KeyRecord(key_id, name, tuple(spaces), perms, float(rate_per_s), now, False, expires_at)
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO api_keys (id, name, salt, hash, spaces, permissions, rate_per_s, created_at, revoked, expires_at) "
                "VALUES (?,?,?,?,?,?,?,?,0,?)",
                (key_id, name, salt, _hash(secret, salt), json.dumps(list(spaces)), json.dumps(list(perms)),
                 float(rate_per_s), record.created_at, expires_at),
            )
        return record, f"{KEY_PREFIX}{key_id}_{secret}"

    def list(self) -> list[KeyRecord]:
        if not self.path.exists():
            return []
        with self._transaction() as conn:
            rows = conn.execute(f"SELECT {_RECORD_COLUMNS} FROM api_keys ORDER BY created_at, id").fetchall()
        return [_record(row) for row in rows]

    def revoke(self, key_id: str) -> bool:
        if not self.path.exists():
            return False
        with self._transaction() as conn:
            cur = conn.execute("UPDATE api_keys SET revoked = 1 WHERE id = ?", (key_id,))
            return cur.rowcount > 0

    def verify(self, token: str) -> KeyRecord | None:
        """The key's record if the token is valid and not revoked, else None. Blocking (scrypt).
        An expired key's record is returned (its secret checked): the caller refuses it,
        saying when it expired."""
        parts = split_token(token)
        if parts is None or not self.path.exists():
            return None
        key_id, secret = parts
        with self._transaction() as conn:
            row = conn.execute(f"SELECT {_RECORD_COLUMNS}, salt, hash FROM api_keys WHERE id = ?", (key_id,)).fetchone()
        if row is None:
            return None
        record = _record(row)
        salt, stored_hash = row[8:]
        if record.revoked:
            return None
        if not hmac.compare_digest(_hash(secret, salt), stored_hash):
            return None
        return record


class VerifiedCache:
    """Verified (and refused) tokens by SHA-256, for ``ttl_s`` seconds, at most ``count_max`` entries."""

    def __init__(self, ttl_s: float = 10.0, count_max: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.count_max = count_max
        self._entries: dict[bytes, tuple[float, KeyRecord | None]] = {}
        self._flights: dict[bytes, trio.Event] = {}  # digest -> set when its check ends

    @staticmethod
    def digest(token: str) -> bytes:
        return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()

    def get(self, digest: bytes, now_s: float) -> tuple[bool, KeyRecord | None]:
        entry = self._entries.get(digest)
        if entry is None or entry[0] < now_s:
            return False, None
        return True, entry[1]

    async def lookup(self, token: str, now_s: float, verify: Callable[[str], Awaitable[KeyRecord | None]]) -> KeyRecord | None:
        """The cached answer for ``token``, else ``await verify(token)``, cached.

        Single flight per token: a check that arrives while one of the same token runs
        waits for it and reads its cached answer, so a burst of first requests with a
        new key costs one scrypt, not one each. Keyed by the whole token's digest, so a
        wrong secret for the same key id is a check (and a scrypt) of its own. If the
        running check fails (raises), a waiter runs its own."""
        digest = self.digest(token)
        while True:
            hit, record = self.get(digest, now_s)
            if hit:
                return record
            flight = self._flights.get(digest)
            if flight is None:
                break
            await flight.wait()
        flight = self._flights[digest] = trio.Event()
        try:
            record = await verify(token)
            self.put(digest, record, now_s)
            return record
        finally:
            del self._flights[digest]
            flight.set()

    def put(self, digest: bytes, record: KeyRecord | None, now_s: float) -> None:
        if len(self._entries) >= self.count_max:
            # Dropping everything is crude but bounded; a refill costs one scrypt per live key.
            self._entries.clear()
        self._entries[digest] = (now_s + self.ttl_s, record)


class RateLimiter:
    """Token buckets per key id: ``rate`` tokens per second, burst of one second's worth."""

    def __init__(self, count_max: int = 100_000) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}
        self.count_max = count_max

    def take(self, key_id: str, rate_per_s: float, now_s: float) -> float:
        """0.0 if the request may go ahead, else the seconds to wait before retrying."""
        burst = max(1.0, rate_per_s)
        tokens, last = self._buckets.get(key_id, (burst, now_s))
        tokens = min(burst, tokens + (now_s - last) * rate_per_s)
        if tokens >= 1.0:
            if len(self._buckets) >= self.count_max and key_id not in self._buckets:
                self._buckets.clear()
            self._buckets[key_id] = (tokens - 1.0, now_s)
            return 0.0
        self._buckets[key_id] = (tokens, now_s)
        return (1.0 - tokens) / rate_per_s
