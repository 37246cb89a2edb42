"""Settings given to engram.open and db.space: bad ones are ValidationErrors naming the
field, and the same settings given again in another spelling are the same settings."""

from __future__ import annotations

from pathlib import Path

import pytest

import engram


@pytest.mark.parametrize("where", ["open", "space"])
def test_an_unknown_setting_is_a_validation_error_naming_it(tmp_path: Path, where: str) -> None:
    with pytest.raises(engram.ValidationError) as info:
        if where == "open":
            engram.open(tmp_path, dimensions=4)
        else:
            with engram.open(tmp_path) as db:
                db.space("agent-1", dimensions=4)
    assert info.value.field == "dimensions"
    assert "dimension" in info.value.allowed  # the known settings are listed
    assert isinstance(info.value, ValueError)
    with engram.open(tmp_path) as db:
        assert db.spaces() == []  # nothing was created


@pytest.mark.parametrize("value", ["4096", 4096.5, None, True, 100])
def test_a_bad_segment_size_is_a_validation_error(tmp_path: Path, value: object) -> None:
    with engram.open(tmp_path) as db:
        with pytest.raises(engram.ValidationError) as info:
            db.space("agent-1", segment_bytes_max=value)
        assert info.value.field == "segment_bytes_max"
        assert db.spaces() == []


def test_the_same_settings_in_another_spelling_are_accepted_while_open(tmp_path: Path) -> None:
    with engram.open(tmp_path) as db:
        sp = db.space("agent-1", effects=["spacing", "priming"], dimension=4)
        assert db.space("agent-1", effects=["priming", "spacing"]) is sp
        assert db.space("agent-1", effects=("spacing", "priming"), dimension=4) is sp
        with pytest.raises(engram.ValidationError):
            db.space("agent-1", effects=["priming"])  # really different: refused while open


def test_a_dimension_change_says_the_space_was_created_with_another(tmp_path: Path) -> None:
    # The space holds no embedding: the error must not claim it stores some, and must say
    # how to get the other dimension.
    with engram.open(tmp_path) as db:
        db.space_info("agent-1")  # creates it, with the default dimension
    with engram.open(tmp_path) as db:
        with pytest.raises(engram.ValidationError) as info:
            db.space("agent-1", dimension=4)
        assert info.value.field == "dimension"
        assert "stores" not in info.value.problem and "created" in info.value.problem
        assert "dimension=4" in info.value.example
        assert db.space("agent-1-4", dimension=4).config.dimension == 4  # the example works
