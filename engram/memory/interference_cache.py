"""Interference inputs per memory, computed when first needed and caught up lazily.

A memory's proactive and retroactive interference (engram.memory.cognition.interference)
depend on the other live memories created from 6 h before it to 24 h after it with
cosine >= 0.6 to it. Scanning that window on every recall costs a pass over the
window per hit; keeping every entry exact on every write costs a pass per write.
Instead each entry remembers how much of the space it has accounted for:

- ``seen``: the row count when it was last brought up to date. Rows are only ever
  appended (a changed memory gets a new row), so rows from ``seen`` on are new to it.
- ``kills_seen``: how many entries of the tombstone log it has accounted for. A row
  tombstoned after the entry counted it is taken back out.

Bringing an entry up to date scores only the rows appended and tombstoned since, so a
write costs nothing here and a recall pays for what changed since that memory was
last recalled. Compaction renumbers rows: the space then clears the cache.

Entries hold integers only: the earlier count, the later count and the sum of the
later cosines in units of 2**-24. A float32 cosine >= 0.5 is an integer multiple of
2**-24, so the sum is exact, does not depend on the order rows were seen in, and an
entry caught up step by step equals one computed cold, bit for bit.

The entry count is bounded (least recently used out); the tombstone log is bounded
too (past it, every entry is dropped and recomputed on need).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterable, List, Protocol

import numpy as np

from engram import _core
from engram.memory.cognition import interference as interference_mod

ENTRIES_MAX = 65_536
KILLS_MAX = 65_536
# Windows with at least this many rows are pre-screened on the int8 codes (see _scores).
PRESCREEN_ROWS_MIN = 4096


class Embedded(Protocol):
    id: str
    row: int
    created_ns: int


@dataclass(frozen=True, slots=True)
class Rows:
    """The space's row arrays (the caller holds the space lock)."""

    n: int
    matrix: np.ndarray
    inv_norms: np.ndarray
    alive: np.ndarray
    created: np.ndarray
    codes: np.ndarray
    scales: np.ndarray


# entry fields
_ROW, _EARLIER, _LATER, _LATER_UNITS, _SEEN, _KILLS_SEEN = range(6)


class InterferenceCache:
    def __init__(self, entries_max: int = ENTRIES_MAX, kills_max: int = KILLS_MAX) -> None:
        self._entries: "OrderedDict[str, List[int]]" = OrderedDict()
        self._kills: List[int] = []
        self._entries_max = entries_max
        self._kills_max = kills_max

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()
        self._kills.clear()

    def drop(self, memory_id: str) -> None:
        self._entries.pop(memory_id, None)

    def row_dropped(self, row: int) -> None:
        """A row was tombstoned (forget, replacement, eviction)."""
        if not self._entries:
            self._kills.clear()  # entries made from now on start after it
            return
        self._kills.append(row)
        if len(self._kills) > self._kills_max:
            self.clear()

    def inputs(self, memory_id: str) -> tuple[int, int, int]:
        """(earlier count, later count, later cosine sum in 2**-24 units) of a current entry."""
        entry = self._entries[memory_id]
        return entry[_EARLIER], entry[_LATER], entry[_LATER_UNITS]

    def factors(self, items: Iterable[Embedded], rows: Rows) -> dict[str, tuple[float, float]]:
        """(proactive, retroactive) factor of each embedded item, entries brought up to date."""
        todo = [it for it in items if it.row >= 0]
        self.update(todo, rows)
        return {it.id: interference_mod.factors_from_totals(*self.inputs(it.id)) for it in todo}

    def update(self, items: List[Embedded], rows: Rows) -> None:
        cold: List[Embedded] = []
        stale: List[Embedded] = []
        for it in items:
            entry = self._entries.get(it.id)
            if entry is None or entry[_ROW] != it.row:
                cold.append(it)
            else:
                self._entries.move_to_end(it.id)
                if entry[_SEEN] < rows.n or entry[_KILLS_SEEN] < len(self._kills):
                    stale.append(it)
        for group in _window_groups(cold):
            self._compute(group, rows, 0)
        for group in _window_groups(stale):
            self._compute(group, rows, min(self._entries[it.id][_SEEN] for it in group))
        while len(self._entries) > self._entries_max:
            self._entries.popitem(last=False)

    def _compute(self, group: List[Embedded], rows: Rows, first_row: int) -> None:
        """Score the group's memories against the live rows from ``first_row`` in their
        joint window, then against tombstones they had counted; update the entries."""
        n = rows.n
        created = rows.created
        low = group[0].created_ns - interference_mod.WINDOW_BEFORE_NS
        high = group[-1].created_ns + interference_mod.WINDOW_AFTER_NS
        span = slice(first_row, n)
        window = rows.alive[span] & (created[span] >= low) & (created[span] <= high)
        new_rows = np.nonzero(window)[0] + first_row
        hit_rows = np.array([it.row for it in group], np.int64)
        queries = np.ascontiguousarray(rows.matrix[hit_rows])
        query_inv = np.ascontiguousarray(rows.inv_norms[hit_rows])
        new_rows, sims = _scores(rows, new_rows, queries, query_inv)
        kills = self._kills
        entries = []
        for it in group:
            entry = self._entries.get(it.id)
            if entry is None or entry[_ROW] != it.row:
                entry = [it.row, 0, 0, 0, 0, len(kills)]
                self._entries[it.id] = entry
            entries.append(entry)
        seen = np.array([entry[_SEEN] for entry in entries], np.int64)
        counted = (new_rows[None, :] >= seen[:, None]) & (new_rows[None, :] != hit_rows[:, None])
        created_ns = np.array([it.created_ns for it in group], np.int64)
        earlier, later, units = interference_mod.inputs_batch(created_ns, created[new_rows], sims, counted)
        for index, (it, entry) in enumerate(zip(group, entries)):
            entry[_EARLIER] += int(earlier[index])
            entry[_LATER] += int(later[index])
            entry[_LATER_UNITS] += int(units[index])
            taken_back = sorted({r for r in kills[entry[_KILLS_SEEN]:] if r < entry[_SEEN] and r != it.row})
            if taken_back:
                back = np.array(taken_back, np.int64)
                back_sims = _core.cosine_scores(np.ascontiguousarray(rows.matrix[back]), np.ascontiguousarray(rows.inv_norms[back]),
                                                queries[index : index + 1], query_inv[index : index + 1])[0]
                lost = interference_mod.inputs(it.created_ns, created[back], back_sims)
                entry[_EARLIER] -= lost[0]
                entry[_LATER] -= lost[1]
                entry[_LATER_UNITS] -= lost[2]
            entry[_SEEN] = n
            entry[_KILLS_SEEN] = len(kills)


def _window_groups(items: List[Embedded]) -> List[List[Embedded]]:
    """Items in (created, id) order, grouped where their windows overlap: a group shares
    one kernel call over its joint window, and items far apart in time never pull in
    the rows between them."""
    ordered = sorted(items, key=lambda it: (it.created_ns, it.id))
    groups: List[List[Embedded]] = []
    for it in ordered:
        if groups and it.created_ns - interference_mod.WINDOW_BEFORE_NS <= groups[-1][-1].created_ns + interference_mod.WINDOW_AFTER_NS:
            groups[-1].append(it)
        else:
            groups.append([it])
    return groups


def _scores(rows: Rows, picked: np.ndarray, queries: np.ndarray, query_inv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows of ``picked`` that may reach the retroactive threshold for some query,
    and their exact cosines (b, len(those rows)).

    Large windows are screened on the int8 codes first: a row whose approximate cosine
    plus its error bound (engram._core.approx_bound_terms, as in Space._scan) stays
    below 0.6 for every query cannot count for either rule, so only the others are
    scored exactly (with the same bits as a full scan: each row is computed alone).
    The screen takes each bound term at its largest over the queries: a looser bound,
    the same exact answer, and one pass over the (b, rows) scores instead of several.
    """
    b = queries.shape[0]
    if picked.size == 0:
        return picked, np.zeros((b, 0), np.float32)
    # Rows are appended in arrival order, so a window is often (nearly) one run of rows:
    # then the kernels read that slice of the arrays in place and the window's columns
    # are picked from the result, instead of copying the rows out first.
    low, high = int(picked[0]), int(picked[-1]) + 1
    dense = picked.size * 2 > high - low
    columns = picked - low
    if picked.size >= PRESCREEN_ROWS_MIN:
        if dense:
            approx = _core.approx_scores_batch(rows.codes[low:high], rows.scales[low:high], queries)
            if picked.size != high - low:  # else the columns are all of them: no copy
                approx = approx[:, columns]
        else:
            approx = _core.approx_scores_batch(np.ascontiguousarray(rows.codes[picked]), rows.scales[picked], queries)
        inv = rows.inv_norms[picked].astype(np.float64)
        row_coeff, constant = _core.approx_bound_terms(queries, query_inv)
        # In place: the (b, rows) table is the largest array here (4 MB for ten hits at
        # 100k rows), and each temporary copy of it cost as much as the kernel's pass.
        np.multiply(approx, query_inv[:, None], out=approx)
        best = approx.max(axis=0).astype(np.float64) * inv
        reach = best + rows.scales[picked] * inv * row_coeff.max() + constant.max() >= interference_mod.RETROACTIVE_COSINE_MIN
        picked = picked[reach]
        if picked.size == 0:
            return picked, np.zeros((b, 0), np.float32)
        return picked, _core.cosine_scores(np.ascontiguousarray(rows.matrix[picked]), np.ascontiguousarray(rows.inv_norms[picked]),
                                           queries, query_inv)
    if dense:
        scores = _core.cosine_scores(rows.matrix[low:high], rows.inv_norms[low:high], queries, query_inv)
        return picked, scores if picked.size == high - low else scores[:, columns]
    return picked, _core.cosine_scores(np.ascontiguousarray(rows.matrix[picked]), np.ascontiguousarray(rows.inv_norms[picked]),
                                       queries, query_inv)
