"""Text rendering of the member list for ``engram cluster members`` (pure, no I/O).

Input is the list ``MembershipHandle.members()`` returns (and ``GET /cluster/nodes``
serves): dicts with id, swim_address, api_address, state, incarnation, tags. Rows are
sorted by id, so the output is the same on every node that sees the same members.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["format_members"]

_COLUMNS = (("ID", "id"), ("STATE", "state"), ("SWIM ADDRESS", "swim_address"), ("API ADDRESS", "api_address"),
            ("INCARNATION", "incarnation"), ("ROLE", "role"))


def format_members(members: Sequence[dict[str, Any]]) -> str:
    """An aligned table, one member per line, with a header. Raises KeyError if a member
    lacks one of the fields above (other than role, read from tags)."""
    rows = [[title for title, _ in _COLUMNS]]
    for member in sorted(members, key=lambda m: str(m["id"])):
        row = []
        for _, key in _COLUMNS:
            value = (member.get("tags") or {}).get("role", "") if key == "role" else member[key]
            row.append(str(value) if value not in (None, "") else "-")
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines) + "\n"
