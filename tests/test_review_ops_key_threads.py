"""Checking API keys never takes the engine's worker threads.

Proves: while many key checks are in progress (each one scrypt, which anyone knowing
a key id can trigger with wrong secrets), an engine call through ``Service.run`` still
gets a thread at once. How: the server's Service in one trio run over a real database
with keys required; the key store's verify is replaced by one that blocks until the
test lets it go, and 16 requests with distinct tokens are authenticated at once.
"""

from __future__ import annotations

import threading
from dataclasses import replace

import trio

import engram
from engram.api.errors import ApiError
from engram.api.service import Service
from engram.config import Settings


def test_key_checks_leave_the_engine_threads_free(tmp_path):
    settings = replace(Settings.test_min(tmp_path / "data"), auth="required")
    release = threading.Event()
    entered: list[int] = []
    db = engram.open(settings.data_dir)
    engine_answered: list[bool] = []

    def blocking_verify(token: str):
        entered.append(1)
        release.wait(10)
        return None

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            svc = Service(db, settings, nursery)
            svc.keys.verify = blocking_verify

            async def attempt(i: int) -> None:
                try:
                    await svc.authenticate(f"Bearer engram_key_{i:012x}_wrong-secret")
                except ApiError:
                    pass

            async with trio.open_nursery() as attempts:
                for i in range(16):
                    attempts.start_soon(attempt, i)
                await trio.sleep(0.2)  # every check that can get a thread has one now
                with trio.move_on_after(2.0):
                    engine_answered.append(await svc.run(lambda: True))
                release.set()
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    finally:
        release.set()
        db.close()
    assert entered, "no key check ran"
    assert engine_answered == [True], "an engine call waited behind key checks"
