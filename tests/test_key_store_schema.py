"""The key store creates or migrates its table once, not on every connection.

Proves: create, list, revoke and verify on one KeyStore run the schema work once; eight
threads that connect at once (as the server's key checks do) still run it once; a key
database replaced under a store by one made before keys could expire is migrated when
next used (its file is new); and every record path (create, list, verify) reads the
same fields, expiry and revocation included. How: ``KeyStore._ensure_schema`` wrapped
to count calls, threads released together by a barrier, real SQLite files in tmp_path.
"""

from __future__ import annotations

import sqlite3
import threading

from engram.api import auth


def _count_schema_runs(monkeypatch) -> list[int]:
    calls: list[int] = []
    original = auth.KeyStore._ensure_schema

    def counting(conn: sqlite3.Connection) -> None:
        calls.append(1)
        original(conn)

    monkeypatch.setattr(auth.KeyStore, "_ensure_schema", staticmethod(counting))
    return calls


def _old_database(path) -> None:
    """A key database as made before keys could expire, holding key 0123456789ab (secret 'secret')."""
    salt = b"s" * 16
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE api_keys (id TEXT PRIMARY KEY, name TEXT NOT NULL, salt BLOB NOT NULL, "
                     "hash BLOB NOT NULL, spaces TEXT NOT NULL, permissions TEXT NOT NULL, rate_per_s REAL NOT NULL, "
                     "created_at REAL NOT NULL, revoked INTEGER NOT NULL DEFAULT 0)")
        conn.execute("INSERT INTO api_keys VALUES (?,?,?,?,?,?,?,?,0)",
                     ("0123456789ab", "old", salt, auth._hash("secret", salt), '["*"]', '["read"]', 5.0, 1.0))
    conn.close()


def test_schema_work_runs_once_per_store(tmp_path, monkeypatch):
    calls = _count_schema_runs(monkeypatch)
    store = auth.KeyStore(tmp_path / "keys.sqlite")
    record, token = store.create(spaces=["a-1", "b-2"], permissions=["write", "read"], rate_per_s=7.5, name="n",
                                 expires_in_s=60.0)
    listed = store.list()
    verified = store.verify(token)
    assert listed == [record] and verified == record
    assert record.spaces == ("a-1", "b-2") and record.permissions == ("read", "write") and not record.revoked
    assert store.revoke(record.id)
    assert store.verify(token) is None and store.list()[0].revoked
    assert len(calls) == 1


def test_threads_connecting_at_once_run_the_schema_work_once(tmp_path, monkeypatch):
    calls = _count_schema_runs(monkeypatch)
    path = tmp_path / "keys.sqlite"
    _old_database(path)
    store = auth.KeyStore(path)
    start = threading.Barrier(8)
    answers: list[auth.KeyRecord | None] = []

    def check() -> None:
        start.wait(10)
        answers.append(store.verify("engram_key_0123456789ab_secret"))

    threads = [threading.Thread(target=check) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(answers) == 8 and all(a is not None and a.expires_at is None for a in answers)
    assert len(calls) == 1


def test_a_database_replaced_under_the_store_is_migrated(tmp_path):
    path = tmp_path / "keys.sqlite"
    store = auth.KeyStore(path)
    store.create(spaces=["*"], permissions=["read"], rate_per_s=1.0)
    replacement = tmp_path / "old.sqlite"
    _old_database(replacement)
    replacement.replace(path)
    old = store.verify("engram_key_0123456789ab_secret")
    assert old is not None and old.name == "old" and old.expires_at is None
    assert [k.id for k in store.list()] == ["0123456789ab"]
