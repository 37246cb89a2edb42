"""API keys: single-flight verification, optional expiry, and the OpenAPI 404.

Proves: concurrent first checks of one token run scrypt once (counted by wrapping
``auth._hash``; the one check in flight is held in its thread until every other
request is blocked, so the overlap is certain, not timed), while a wrong secret for the
same key id runs its own scrypt and is refused; a key created with an expiry is
refused past it with a 401 saying it expired and when; a key database made before
expiry existed is migrated; ``engram key list`` shows the expiry; and the OpenAPI
document lists the trailing-slash 404 on every operation.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import replace

import trio
import trio.testing

from engram.api import auth
from engram.api.errors import ApiError
from engram.api.openapi import openapi_document
from engram.api.service import Service
from engram.config import Settings
from tests.conftest import run_cli, run_with_service


def _run_with_service(tmp_path, body):
    run_with_service(replace(Settings.test_min(tmp_path / "data"), auth="required"), body)


def test_concurrent_first_checks_of_one_token_share_one_scrypt(tmp_path, monkeypatch):
    release = threading.Event()
    entered = threading.Event()
    calls: list[str] = []
    real_hash = auth._hash

    def counting_hash(secret: str, salt: bytes) -> bytes:
        calls.append(secret)
        if len(calls) == 2:  # the first check of the real token (call 1 is create's): hold it
            entered.set()
            release.wait(10)
        return real_hash(secret, salt)

    monkeypatch.setattr(auth, "_hash", counting_hash)
    results: list[object] = []

    async def body(svc: Service) -> None:
        record, token = svc.keys.create(spaces=["*"], permissions=["read"], rate_per_s=1000.0)
        wrong = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")

        async def check(t: str) -> None:
            try:
                results.append((await svc.authenticate(f"Bearer {t}")).id)
            except ApiError as exc:
                results.append(exc.status)

        async with trio.open_nursery() as checks:
            for _ in range(8):
                checks.start_soon(check, token)
            await trio.to_thread.run_sync(entered.wait, 10)
            await trio.testing.wait_all_tasks_blocked()  # every other check is waiting now
            release.set()
        # A wrong secret for the same key id: its own full scrypt, and refused.
        await check(wrong)
        assert results == [record.id] * 8 + [401]

    _run_with_service(tmp_path, body)
    assert len(calls) == 3, calls  # create, the one shared check, the wrong secret


def test_an_expired_key_gets_401_saying_when(tmp_path):
    async def body(svc: Service) -> None:
        record, token = svc.keys.create(spaces=["*"], permissions=["read"], rate_per_s=1000.0, expires_in_s=3600.0)
        assert (await svc.authenticate(f"Bearer {token}")).id == record.id
        # Move the expiry into the past, as an hour's wait would.
        with sqlite3.connect(svc.keys.path) as conn:
            conn.execute("UPDATE api_keys SET expires_at = 1000000000 WHERE id = ?", (record.id,))
        svc.key_cache = auth.VerifiedCache(ttl_s=0.0)
        try:
            await svc.authenticate(f"Bearer {token}")
        except ApiError as exc:
            assert exc.status == 401
            assert exc.message == (f"API key {record.id} expired at 2001-09-09T01:46:40Z; "
                                   "create a new one with 'engram key create'")
        else:
            raise AssertionError("an expired key was accepted")

    _run_with_service(tmp_path, body)


def test_a_key_database_without_expiry_is_migrated(tmp_path):
    path = tmp_path / "keys.sqlite"
    salt = b"s" * 16
    with sqlite3.connect(path) as conn:  # the table as it was before keys could expire
        conn.execute("CREATE TABLE api_keys (id TEXT PRIMARY KEY, name TEXT NOT NULL, salt BLOB NOT NULL, "
                     "hash BLOB NOT NULL, spaces TEXT NOT NULL, permissions TEXT NOT NULL, rate_per_s REAL NOT NULL, "
                     "created_at REAL NOT NULL, revoked INTEGER NOT NULL DEFAULT 0)")
        conn.execute("INSERT INTO api_keys VALUES (?,?,?,?,?,?,?,?,0)",
                     ("0123456789ab", "old", salt, auth._hash("secret", salt), '["*"]', '["read"]', 5.0, 1.0))
    store = auth.KeyStore(path)
    old = store.verify("engram_key_0123456789ab_secret")
    assert old is not None and old.expires_at is None and not old.expired(2e9)
    new, _token = store.create(spaces=["a-1"], permissions=["read"], rate_per_s=1.0, expires_in_s=60.0)
    assert [(k.id, k.expires_at is None) for k in store.list()] == [("0123456789ab", True), (new.id, False)]


def test_key_create_expires_and_list_shows_it(tmp_path):
    data = tmp_path / "data"
    made = run_cli("key", "create", "--space", "*", "--expires", "30d", "--json", data=data)
    assert made.returncode == 0, made.stderr
    doc = json.loads(made.stdout)
    assert abs(doc["expires_at"] - doc["created_at"] - 30 * 86400) < 1e-3
    run_cli("key", "create", "--space", "*", data=data)
    listed = run_cli("key", "list", data=data)
    iso = auth.KeyRecord(doc["id"], "", ("*",), ("read",), 1.0, 0.0, False, doc["expires_at"]).expires_iso
    lines = listed.stdout.splitlines()
    assert f"expires {iso}" in lines[0] and "expires" not in lines[1], listed.stdout
    bad = run_cli("key", "create", "--space", "*", "--expires", "0s", data=data)
    assert bad.returncode != 0 and "expires: must be a positive duration; example: --expires 30d" in bad.stderr


def test_openapi_documents_the_trailing_slash_404_on_every_operation():
    doc = openapi_document("test")
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            response = operation["responses"].get("404")
            assert response is not None, f"{method.upper()} {path} lists no 404"
            assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
            assert "trailing slash" in response["description"]
            # Any route can run out of file descriptors (503, tests/test_stress_http_hostile.py).
            assert "503" in operation["responses"], f"{method.upper()} {path} lists no 503"
