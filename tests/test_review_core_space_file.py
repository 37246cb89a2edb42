"""A damaged space.json is a CorruptionError naming the file and offset, not a JSON
library's exception, and it does not stop other spaces from opening."""

from __future__ import annotations

from pathlib import Path

import pytest

import engram


@pytest.mark.parametrize("text, offset", [('{"config": {"dimension": 4', 26), ("[]", 0), ('{"config": {}}', 0), (b"\xff\xfe", 0)])
def test_a_damaged_space_file_is_a_corruption_error(tmp_path: Path, text: str | bytes, offset: int) -> None:
    with engram.open(tmp_path, dimension=4) as db:
        db.space("agent-1").remember("a")
        db.space("agent-2").remember("b")
    path = tmp_path / "agent-1" / "space.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with engram.open(tmp_path) as db:
        with pytest.raises(engram.CorruptionError) as info:
            db.space("agent-1")
        assert info.value.path == str(path) and info.value.offset == offset
        with pytest.raises(engram.CorruptionError):
            db.space_info("agent-1")
        assert len(db.space("agent-2")) == 1
