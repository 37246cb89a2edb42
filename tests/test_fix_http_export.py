"""export -> import keeps every field a memory or an episode can be given.

A space is filled through the embedded API with memories and episodes carrying every
field remember and remember_episode take (id, embedding, confidence, tags, location,
time, kind, decay, who/why/how, importance, valence, metadata). ``engram export`` writes
it, ``engram import`` loads the file into a fresh data directory, and the two spaces
are compared field by field through the embedded API (no server: the CLI serves the
data directory itself for the length of each command).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np

import engram
from conftest import run_cli, vec

# What remember/remember_episode can set, so what a round trip must keep. access_count
# and last_access are what recalls did later, not what was stored: import starts them anew.
FIELDS = ("id", "content", "confidence", "created_at", "tags", "memory_type", "location", "who", "why", "how",
          "importance", "emotional_valence", "decay", "metadata")


def _fill(path) -> None:
    with engram.open(path) as db:
        sp = db.space("round-trip")
        sp.remember("plain fact", embedding=np.array(vec(1), dtype=np.float32), confidence=0.9, tags=["a", "b"],
                    location="lab", memory_type="procedural", decay="exponential", id="mem-1",
                    when=datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc))
        sp.remember("text only", confidence=0.3)
        sp.remember_episode("Met Ana in the lab", when=datetime(2025, 4, 2, 9, 30, tzinfo=timezone.utc), where="lab",
                            who=["ana", "ben"], why="to review results", how="in person",
                            embedding=np.array(vec(2), dtype=np.float32), importance=0.6, emotional_valence=-0.25,
                            confidence=0.8, id="ep-1", metadata={"project": "x", "n": 3, "ok": True}, decay="hybrid")
        sp.remember_episode("Phoned Ben", when=datetime(2025, 4, 3, 10, 0, tzinfo=timezone.utc), who=["ben"])


def _memories(path) -> dict[str, dict]:
    with engram.open(path) as db:
        sp = db.space("round-trip")
        out = {}
        for m in sp.list(0, 1000):
            doc = {f: getattr(m, f) for f in FIELDS}
            doc["embedding"] = None if m.embedding is None else np.asarray(m.embedding).tolist()
            out[m.id] = doc
        return out


def test_export_import_round_trip_keeps_every_field(tmp_path):
    source, target, dump = tmp_path / "a", tmp_path / "b", tmp_path / "dump.jsonl"
    _fill(source)
    done = run_cli("export", "--space", "round-trip", "-o", str(dump), data=source)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in dump.read_text().splitlines()]
    assert len(rows) == 4
    done = run_cli("import", str(dump), "--space", "round-trip", data=target)
    assert done.returncode == 0, done.stderr
    before, after = _memories(source), _memories(target)
    assert sorted(before) == sorted(after)
    for memory_id, doc in before.items():
        for field, value in doc.items():
            assert after[memory_id][field] == value, (memory_id, field)
