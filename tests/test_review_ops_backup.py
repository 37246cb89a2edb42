"""A backup copies a data directory no writer touches, and a failed one leaves nothing.

Proves: (1) a consolidation run, which writes patterns outside the HTTP write gate and
may start a checkpoint that drops WAL segments, never overlaps the copy of
``Service.backup`` (the copy waits for a run in flight to end); (2) a backup whose
copy fails (a full disk) answers 507 and removes what it wrote, so the target is empty
again and the same command can be repeated, and no half-written backup is left
behind; a target that is a file, or lies under one, is a 400 naming the target, not
a 500; (3) every
write acknowledged while a backup is taken is in the backup or in the data afterwards,
and the backup restores and opens. How: (1) and (2) drive the server's Service in one
trio run over a real database, with a consolidation that takes 0.3 s in its worker
thread and a copy that fails with ENOSPC; (3) a real ``engram serve`` process, writers
on several connections, ``engram backup create`` and ``engram restore`` as children.
"""

from __future__ import annotations

import errno
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import trio

import engram
from engram.api.errors import ApiError
from engram.api.service import Service
from engram.config import Settings
from engram.storage import backup as backup_files

from conftest import run_cli, run_with_service, vec


class _SlowSpace:
    """Stands in for a Space whose consolidation takes a while in its worker thread."""

    def __init__(self, running: threading.Event) -> None:
        self.running = running
        self.last_consolidation = {"patterns": 0}

    def consolidate(self, max_episodes: int, should_stop=None):
        self.running.set()
        time.sleep(0.3)
        self.running.clear()
        return []


def _service_run(tmp_path: Path, body) -> None:
    settings = Settings.test_min(tmp_path / "data")
    with engram.open(settings.data_dir) as db:
        db.space("alpha").remember(content="a fact", embedding=vec(1))
        run_with_service(settings, body, db)


def test_backup_copy_never_overlaps_a_consolidation_run(tmp_path):
    running = threading.Event()
    overlapped: list[bool] = []

    async def body(svc: Service) -> None:
        svc.consolidation._open_space = lambda space_id: _SlowSpace(running)
        copy = svc._checkpoint_and_copy

        def watched_copy(target: Path):
            overlapped.append(running.is_set())
            return copy(target)

        svc._checkpoint_and_copy = watched_copy
        async with trio.open_nursery() as nursery:
            nursery.start_soon(svc.consolidation.run_now, "alpha")
            while not running.is_set():  # the run's thread is consolidating now
                await trio.sleep(0.01)
            await svc.backup(tmp_path / "backup")

    _service_run(tmp_path, body)
    assert overlapped == [False]
    assert (tmp_path / "backup" / "BACKUP.json").exists()


def test_a_failed_backup_leaves_its_target_empty(tmp_path, monkeypatch):
    copied: list[str] = []

    def full_disk(source, target, *a, **kw):
        copied.append(str(source))
        raise OSError(errno.ENOSPC, "No space left on device")

    async def body(svc: Service) -> None:
        monkeypatch.setattr(backup_files, "copy_file", full_disk)
        with pytest.raises(ApiError) as err:
            await svc.backup(tmp_path / "backup")
        assert err.value.status == 507 and "no space left" in err.value.message
        monkeypatch.undo()
        assert list((tmp_path / "backup").iterdir()) == []
        await svc.backup(tmp_path / "backup")  # the same target, again, now works

    _service_run(tmp_path, body)
    assert copied
    assert (tmp_path / "backup" / "BACKUP.json").exists()


def test_writes_acknowledged_during_a_backup_are_in_it_or_after_it(start_server, tmp_path):
    server = start_server()
    stop = threading.Event()
    acked: list[tuple[float, float, str]] = []  # (sent, acknowledged, content)

    def writer(n: int) -> None:
        with server.client() as c:
            i = 0
            while not stop.is_set():
                content = f"w{n}-{i}"
                sent = time.monotonic()
                r = c.post("/api/v1/memories/remember", json={"content": content, "embedding": vec(n * 10_000 + i)},
                           headers={"X-Memory-Space": "busy"})
                assert r.status_code == 201, r.text
                acked.append((sent, time.monotonic(), content))
                i += 1

    backup = tmp_path / "backup"
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(writer, n) for n in range(4)]
        time.sleep(0.5)
        started = time.monotonic()
        proc = run_cli("backup", "create", str(backup), "--json", data=server.data_dir)
        finished = time.monotonic()
        time.sleep(0.3)
        stop.set()
        for f in futures:
            f.result()
    assert proc.returncode == 0, proc.stderr

    restored = tmp_path / "restored"
    out = run_cli("restore", str(backup), "--json", data=restored)
    assert out.returncode == 0, out.stderr
    with engram.open(restored) as db:
        in_backup: set[str] = set()
        while "busy" in db.spaces():
            page = db.space("busy").list(offset=len(in_backup), limit=10_000)
            in_backup |= {m.content for m in page}
            if len(page) < 10_000:
                break
    before = {c for _s, a, c in acked if a < started}
    after = {c for s, _a, c in acked if s > finished}
    assert before and after  # the writers ran on both sides of the backup
    assert before <= in_backup, sorted(before - in_backup)[:5]
    assert not (after & in_backup), sorted(after & in_backup)[:5]
    assert json.loads(out.stdout)["spaces"]["busy"] == len(in_backup)


def test_a_target_that_cannot_be_a_directory_is_the_callers_mistake(start_server, tmp_path):
    server = start_server()
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    with server.client() as c:
        for target in (a_file, a_file / "below"):
            r = c.post("/api/v1/admin/backup", json={"target": str(target)})
            assert r.status_code == 400, r.text
            error = r.json()["error"]
            assert error["field"] == "target" and str(target) in error["message"]
    proc = run_cli("backup", "create", str(a_file / "below"), data=server.data_dir)
    assert proc.returncode == 1 and "cannot create" in proc.stderr and "500" not in proc.stderr
