"""A stronger near-duplicate is merged into the stored memory, under the stored id.

Proves: storing a near-duplicate (cosine >= the dedup threshold) with a higher
confidence returns the stored id, and that id then holds the stronger content,
embedding and confidence while keeping its creation time, associations and access
statistics; an explicit ``id=`` naming another memory still merges (that id is not
created); the merge is one REMEMBER record under the stored id (no FORGET, no
"replaces"); the state is the same after replaying the log, after a checkpoint and
after both; a recall that lands between the merge's plan and its apply is kept;
logs written before this change (a REMEMBER that "replaces" the stored id) still
replay as written; the HTTP API answers with the stored id and serves the new content.
How: the public API on a real data directory, the WAL read back with WriteAheadLog,
and a real server for the HTTP check.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

import engram
from engram.memory import records as rec
from engram.memory.records import Item
from engram.storage.wal import WriteAheadLog

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
NS = 1_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def vec(seed: int, d: int = 768) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(d).astype(np.float32)


def near(seed: int, step: int) -> np.ndarray:
    """Cosine with ``vec(seed)`` far above 0.95, and a different vector for each step."""
    return (vec(seed) + 0.02 * vec(10_000 + step)).astype(np.float32)


def state(sp) -> list[tuple]:
    out = []
    for m in sorted(sp.list(limit=10_000), key=lambda m: m.id):
        out.append((m.id, m.content, m.confidence, m.tags, m.location, m.created_at, m.access_count,
                    m.last_access, np.asarray(sp.get(m.id).embedding, np.float32).tobytes(),
                    tuple(sorted(sp.associations(m.id).items()))))
    return out


def stored_then_merged(sp, clock: Clock) -> str:
    """'orig' (associated with 'other', recalled once), then a stronger copy an hour later."""
    sp.remember("original", id="orig", embedding=vec(1), confidence=0.5, tags=["old"])
    sp.remember("other", id="other", embedding=vec(2), confidence=0.5)
    sp.associate("orig", "other", weight=0.8)
    clock.now = T0 + timedelta(minutes=30)
    assert [h.id for h in sp.recall(embedding=vec(1), k=1)] == ["orig"]  # one access
    clock.now = T0 + timedelta(hours=1)
    return sp.remember("stronger copy", embedding=near(1, 1), confidence=0.9, tags=["new"], location="lab")


def test_a_stronger_duplicate_keeps_the_stored_id_and_what_hangs_on_it(tmp_path: Path) -> None:
    clock = Clock()
    with engram.open(tmp_path, clock=clock) as db:
        sp = db.space("agent-1", effects=())
        assert stored_then_merged(sp, clock) == "orig"
        assert len(sp) == 2 and sp.stats()["deduplicated"] == 1
        m = sp.get("orig")
        assert (m.content, m.confidence, m.tags, m.location) == ("stronger copy", 0.9, ("new",), "lab")
        assert np.array_equal(m.embedding, near(1, 1))
        assert m.created_at == T0  # the memory's own creation, not the copy's
        assert m.access_count == 1 and m.last_access == T0 + timedelta(hours=1)  # storing reinforces
        assert sp.associations("orig") == {"other": 0.8}
        assert sp.spread(["other"], max_hops=1)["orig"] > 0
        # Recall finds the new content under the old id.
        assert [h.id for h in sp.recall(embedding=near(1, 1), k=1)] == ["orig"]
        # A weaker copy afterwards still changes nothing and answers with the same id.
        assert sp.remember("weak copy", embedding=near(1, 2), confidence=0.3) == "orig"
        assert sp.get("orig").content == "stronger copy"


def test_an_explicit_id_still_merges_into_the_stored_memory(tmp_path: Path) -> None:
    with engram.open(tmp_path, clock=Clock()) as db:
        sp = db.space("agent-1")
        sp.remember("original", id="orig", embedding=vec(1), confidence=0.5)
        assert sp.remember("stronger", id="mine", embedding=near(1, 1), confidence=0.9) == "orig"
        assert sp.get("mine") is None and sp.get("orig").content == "stronger"
        # The same in a batch, against an earlier item of the batch.
        ids = sp.remember_many([{"content": "first", "id": "b1", "embedding": vec(5), "confidence": 0.4},
                                {"content": "second", "id": "b2", "embedding": near(5, 1), "confidence": 0.8}])
        assert ids == ["b1", "b1"] and sp.get("b2") is None and sp.get("b1").content == "second"
        assert len(sp) == 2


def test_a_merge_is_one_remember_record_under_the_stored_id(tmp_path: Path) -> None:
    clock = Clock()
    with engram.open(tmp_path, clock=clock) as db:
        sp = db.space("agent-1", effects=())
        stored_then_merged(sp, clock)
        directory = sp.directory
    wal = WriteAheadLog(directory / "wal")
    records, _ = wal.recover(0)
    kinds = [(r.rtype, r.payload) for r in records]
    wal.close()
    remembers = [rec.decode_remember(p, 768) for t, p in kinds if t == rec.REMEMBER]
    assert [(item.id, item.content, replaces) for item, _, replaces in remembers] == [
        ("orig", "original", None), ("other", "other", None), ("orig", "stronger copy", None)]
    assert not [t for t, _ in kinds if t == rec.FORGET]


def test_the_merge_survives_replay_and_checkpoints(tmp_path: Path) -> None:
    clock = Clock()
    with engram.open(tmp_path / "log", clock=clock) as db:
        sp = db.space("agent-1", effects=())
        stored_then_merged(sp, clock)
        before = state(sp)
    assert before[0][:2] == ("orig", "stronger copy")
    with engram.open(tmp_path / "log", clock=clock) as db:
        sp = db.space("agent-1")
        assert state(sp) == before  # from the log alone
        sp.checkpoint()
    with engram.open(tmp_path / "log", clock=clock) as db:
        assert state(db.space("agent-1")) == before  # from the snapshot alone
    # A snapshot taken before the merge, the merge in the log after it.
    clock = Clock()
    with engram.open(tmp_path / "mixed", clock=clock) as db:
        sp = db.space("agent-1", effects=())
        sp.remember("original", id="orig", embedding=vec(1), confidence=0.5)
        sp.checkpoint()
        assert sp.remember("stronger", embedding=near(1, 1), confidence=0.9) == "orig"
        mixed = state(sp)
    with engram.open(tmp_path / "mixed", clock=clock) as db:
        assert state(db.space("agent-1")) == mixed and mixed[0][:2] == ("orig", "stronger")


def test_a_recall_during_the_merge_is_not_lost(tmp_path: Path) -> None:
    # The plan copies the stored memory's access statistics without the space lock; a
    # recall during the fsync (between plan and apply) counts on the stored item.
    clock = Clock()
    with engram.open(tmp_path, clock=clock) as db:
        sp = db.space("agent-1", effects=())
        sp.remember("original", id="orig", embedding=vec(1), confidence=0.5)
        clock.now = T0 + timedelta(hours=1)
        wal = sp._wal
        original = wal.wait_durable

        def recalling_wait(lsn: int) -> None:
            sp.recall(embedding=vec(1), k=1)
            original(lsn)

        wal.wait_durable = recalling_wait
        try:
            assert sp.remember("stronger", embedding=near(1, 1), confidence=0.9) == "orig"
        finally:
            wal.wait_durable = original
        assert sp.get("orig").access_count == 1
        before = state(sp)
    with engram.open(tmp_path, clock=clock) as db:
        assert state(db.space("agent-1")) == before


def test_a_log_written_with_replaces_still_replays(tmp_path: Path) -> None:
    # What the code before this change logged for a stronger duplicate: the new memory
    # under its own id, "replacing" the stored one (which then disappears).
    at = int(T0.timestamp()) * NS
    with engram.open(tmp_path, clock=Clock()) as db:
        sp = db.space("agent-1")
        old = Item("old", "original", 0.5, at, at)
        new = Item("new", "stronger", 0.9, at + NS, at + NS)
        lsn = sp._wal.append([(rec.REMEMBER, rec.encode_remember(old, vec(1), None)),
                              (rec.REMEMBER, rec.encode_remember(new, near(1, 1), "old"))], at + NS)
        sp._wal.wait_durable(lsn)
    with engram.open(tmp_path, clock=Clock()) as db:
        sp = db.space("agent-1")
        assert sp.get("old") is None and len(sp) == 1
        assert sp.get("new").content == "stronger"
        assert np.array_equal(sp.get("new").embedding, near(1, 1))


def test_http_answers_with_the_stored_id(start_server) -> None:
    server = start_server()
    with server.client() as c:
        headers = {"X-Memory-Space": "dedup"}
        first = c.post("/api/v1/memories/remember", headers=headers,
                       json={"content": "original", "embedding": vec(1).tolist(), "confidence": 0.5})
        assert first.status_code == 201, first.text
        memory_id = first.json()["memory_id"]
        second = c.post("/api/v1/memories/remember", headers=headers,
                        json={"content": "stronger", "embedding": near(1, 1).tolist(), "confidence": 0.9})
        assert second.status_code == 201, second.text
        assert second.json()["memory_id"] == memory_id
        got = c.get(f"/api/v1/memories/{memory_id}", headers=headers)
        assert got.status_code == 200 and got.json()["content"] == "stronger"
        # What dedup did is in the answer; a kept one reports the stored confidence, not the sent one.
        assert first.json()["outcome"] == "stored" and second.json()["outcome"] == "merged"
        third = c.post("/api/v1/memories/remember", headers=headers,
                       json={"content": "weaker", "embedding": near(1, 2).tolist(), "confidence": 0.3}).json()
        assert (third["memory_id"], third["outcome"]) == (memory_id, "kept")
        assert third["storage_confidence"]["value"] == 0.9 and memory_id in third["system_message"]
        bulk = c.post("/api/v1/memories/bulk", headers=headers, json=[
            {"content": "fresh", "embedding": vec(5).tolist()},
            {"content": "weaker again", "embedding": near(1, 3).tolist(), "confidence": 0.1},
            {"content": "strongest", "embedding": near(1, 4).tolist(), "confidence": 0.95}]).json()
        assert bulk["memory_ids"][1:] == [memory_id, memory_id] and (bulk["merged"], bulk["kept"]) == (1, 1)
        # A kept one answers with the stored memory's observation time, and is not counted as stored.
        assert third["observed_at"] == got.json()["observed_at"] != third["stored_at"]
        samples = [line for line in c.get("/metrics").text.splitlines()
                   if line.startswith('engram_memories_remembered_total{space="dedup"}')]
        assert samples == ['engram_memories_remembered_total{space="dedup"} 4.0']  # 6 sent, 2 kept out


def test_remember_many_says_what_dedup_did_to_each_item(tmp_path: Path) -> None:
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1", effects=())
        sp.remember("original", id="orig", embedding=vec(1), confidence=0.6)
        items = [
            {"content": "new", "embedding": vec(2), "id": "fresh"},
            {"content": "weaker copy", "embedding": near(1, 1), "confidence": 0.5},
            {"content": "stronger copy", "embedding": near(1, 2), "confidence": 0.8},
            {"content": "no embedding", "id": "text-only"},
            {"content": "overwritten", "embedding": vec(3), "id": "fresh"},
        ]
        got = sp.remember_many(items, outcomes=True)
        assert got == [engram.Remembered("fresh", "stored"), engram.Remembered("orig", "kept"),
                       engram.Remembered("orig", "merged"), engram.Remembered("text-only", "stored"),
                       engram.Remembered("fresh", "stored")]
        assert sp.get("orig").content == "stronger copy"
        # Without outcomes: the ids alone, as before; the plain (bulk) path says the same.
        assert sp.remember_many([{"content": "again", "embedding": near(1, 3), "confidence": 0.1}]) == ["orig"]
        plain = [{"content": f"bulk {i}", "embedding": vec(100 + i)} for i in range(3)] + \
                [{"content": "bulk copy", "embedding": near(100, 1), "confidence": 0.2}]
        assert [r.outcome for r in sp.remember_many(plain, outcomes=True)] == ["stored", "stored", "stored", "kept"]


def test_outcomes_reach_each_caller_of_a_shared_group_commit(tmp_path: Path, monkeypatch) -> None:
    import threading

    from engram.memory.space import Space

    batch_sizes: list[int] = []
    store_batch = Space._store_batch

    def counting(self, prepared, stacked=None):
        batch_sizes.append(len(prepared))
        return store_batch(self, prepared, stacked)

    monkeypatch.setattr(Space, "_store_batch", counting)
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1", effects=())
        for i in range(8):
            sp.remember(f"stored {i}", id=f"s{i}", embedding=vec(200 + i), confidence=0.6)
        results: dict[int, list] = {}
        start = threading.Barrier(8)

        def writer(i: int) -> None:
            start.wait()
            for round_ in range(20):
                items = [{"content": f"new {i}.{round_}", "embedding": vec(1000 + 100 * i + round_)},
                         {"content": "weak copy", "embedding": near(200 + i, round_), "confidence": 0.1}]
                results.setdefault(i, []).append(sp.remember_many(items, outcomes=True))

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i in range(8):
            for got in results[i]:
                assert [r.outcome for r in got] == ["stored", "kept"] and got[1].id == f"s{i}"
        assert sp.stats()["deduplicated"] == 8 * 20
    assert max(batch_sizes) > 2  # callers really shared a batch, so each got its slice of the outcomes


def test_a_kept_near_duplicate_publishes_no_event(tmp_path: Path) -> None:
    import json

    from engram.api.http import create_app
    from engram.config import Settings
    from tests.conftest import run_with_service

    events: list[tuple[str, str]] = []

    async def body(svc) -> None:
        app = create_app(svc)
        sub = svc.hub.subscribe("dedup")

        async def post(doc: dict) -> None:
            raw = json.dumps(doc).encode()
            scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                     "scheme": "http", "path": "/api/v1/memories/remember", "raw_path": b"/api/v1/memories/remember",
                     "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2),
                     "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode()),
                                 (b"x-memory-space", b"dedup")]}

            async def receive() -> dict:
                return {"type": "http.request", "body": raw, "more_body": False}

            async def send(message: dict) -> None:
                if message["type"] == "http.response.start":
                    assert message["status"] == 201

            await app(scope, receive, send)

        await post({"content": "original", "embedding": vec(1).tolist(), "confidence": 0.5})
        await post({"content": "weaker", "embedding": near(1, 1).tolist(), "confidence": 0.2})  # kept: no event
        await post({"content": "stronger", "embedding": near(1, 2).tolist(), "confidence": 0.9})  # merged: an event
        events.extend((kind, payload["content"]) for _, kind, payload in sub.queue)

    run_with_service(Settings.test_min(tmp_path / "data"), body)
    assert events == [("memory_stored", "original"), ("memory_stored", "stronger")]
