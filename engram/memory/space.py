"""A memory space: the engine's state for one tenant, made durable by its WAL.

State: a contiguous float32 matrix of embeddings (one row per embedded memory,
grown by doubling, deleted rows tombstoned and compacted copy-on-write), an id
map of ``Item`` records, a text index, an association graph and a dedup index.

Writes: validate everything first, in the caller's thread (a rejected call
changes nothing). Stores (remember, remember_episode, remember_many) then queue
for the space's group commit: one leader per generation of waiting callers plans
the whole batch against the state (dedup, eviction, overwrites decided item by
item, arithmetic batched in compiled kernels), appends its records, fsyncs once,
and only then applies it to memory, so a store is visible to readers only once it
is durable and acknowledged right after. Every state change (a store batch from
plan to apply, the other writes through _commit, checkpoints, close) holds the
write lock, then the space lock for the part readers must not see half done, so
LSN order is the order of effects. The other writes (forget, associate,
reconsolidate, consolidate) still apply under the lock before their fsync.

Reads: take a consistent view of the arrays under the lock (cheap: references and
the row count), then scan without it; the matrix is never modified below the
view's row count except for tombstones, and compaction builds new arrays.

Ordering rules (determinism): recall orders equal scores by ascending id;
filter-only recall orders by time descending, then id; listing by time, then id.
"""

from __future__ import annotations

import copy
import dataclasses
import gc
import heapq
import logging
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable, List, Sequence

import numpy as np

from engram import _core
from engram.errors import ClosedError, EngramError, ReconsolidationWindowError, UnknownIdError, ValidationError
from engram.memory import consolidation
from engram.memory.cognition import EFFECTS, NS_PER_HOUR
from engram.memory.cognition import fan as fan_mod
from engram.memory.cognition import priming as priming_mod
from engram.memory.cognition import reconsolidation as reconsolidation_mod
from engram.memory.cognition import spacing as spacing_mod
from engram.memory import decay as decay_mod
from engram.memory import records as rec
from engram.memory.interference_cache import InterferenceCache, Rows
from engram.memory.residuals import RowResiduals
from engram.memory import residuals as residuals_mod
from engram.memory import validate as check
from engram.memory.dedup import SCHEME as DEDUP_SCHEME
from engram.memory.dedup import TABLES as DEDUP_TABLES
from engram.memory.dedup import DedupIndex
from engram.memory.graph import AssociationGraph
from engram.memory.records import Item
from engram.memory.text import TextIndex
from engram.memory.consolidation import Pattern
from engram.memory.types import Hit, Memory, MemoryVersion, Remembered, ns_to_datetime
from engram.storage import snapshot
from engram.storage.wal import RecoveryReport, WriteAheadLog

DIMENSION_DEFAULT = 768
K_MAX = 10_000
HOPS_MAX = 16
_COMPACT_MIN_ROWS = 1024
# A group-commit leader waits for more writers while they keep arriving at most this
# far apart, for at most this long in all (see Space._gather).
STORE_GATHER_GAP_S = 100e-6
STORE_GATHER_MAX_S = 1e-3
# Bulk stores take the space lock for this many items at a time (see Space._store).
STORE_CHUNK_ITEMS = 256
# remember_many checks the embeddings of a batch of plain memories as one matrix from
# this many items (see Space._prepare_plain); fewer go item by item.
PLAIN_BATCH_MIN = 16
# The only keys of a plain memory in remember_many (see Space._prepare_plain).
_PLAIN_KEYS = frozenset({"content", "embedding", "confidence", "tags", "memory_type"})
# Opening writes replayed rows in batches of this many, on this many threads (see _ReplayRows).
REPLAY_BATCH_RECORDS = 1024
REPLAY_WORKERS = 2
# From this many rows, the arrays' next growth is prepared in the background (see Space._grow).
GROW_AHEAD_ROWS_MIN = 8192
# A checkpoint sorts its items in runs of this many, then merges them (see Space._snapshot_state).
SNAPSHOT_RUN_ITEMS = 4096
# Checkpoint policy (see Space._checkpoint_due): the least log worth a checkpoint while
# writing, and at close.
CHECKPOINT_WAL_MIN = 64 * 1024 * 1024
CHECKPOINT_AT_CLOSE_MIN = 8 * 1024 * 1024
# From this many rows, plain top-k recalls scan int8 codes first (see Space._scan).
# Measured here with the VNNI kernel: at 5,000 rows both ways cost the same, at
# 10,000 the screen halves a lone recall's CPU (1.4 -> 0.75 ms) and cuts a batch
# of 16 by a quarter.
APPROX_SCAN_ROWS_MIN = 4096
RECALL_MODES = ("similarity", "spreading", "hybrid")
# float32 cosines of a vector with itself fall short of 1 by up to this much (measured:
# 1.8e-7 at 768 dimensions, 7.7e-7 at 65,536): a recall or dedup threshold closer to 1
# than this is lowered to 1 - COSINE_ROUNDING, so that 1.0 means "identical" and finds it.
COSINE_ROUNDING = 2e-6
# Spreading during recall (modes "spreading" and "hybrid"): the reference defaults.
RECALL_SPREAD_HOPS = 4
RECALL_SPREAD_RATE = 0.7
# Hybrid ranking: a weighted blend, each term in [0, 1] (see Space.recall).
HYBRID_WEIGHTS = {"similarity": 0.5, "activation": 0.2, "confidence": 0.2, "recency": 0.1}
HYBRID_RECENCY_HALF_LIFE_NS = 24 * NS_PER_HOUR


@dataclass(frozen=True, kw_only=True, slots=True)
class SpaceConfig:
    """Settings of one space, stored in its ``space.json``.

    dimension: embedding length; fixed when the space is created (its first
        db.space or db.space_info call), even before it holds an embedding.
    durability: "sync" (acknowledged means fsync'd; group commit shares fsyncs) or
        "async" (fsync every ``flush_interval_ms``: faster, loses the last interval
        on a power failure; must be asked for by name).
    decay: default decay function of the space's memories (per memory overridable).
    dedup_threshold: cosine at or above which storing a memory merges it into the
        stored one, under the stored id, keeping the higher confidence's content (see
        Space.remember); None turns dedup off; 1.0 merges identical
        vectors (float32 rounding of their cosine allowed: COSINE_ROUNDING). Episodes never dedup.
    capacity: most memories the space holds; at capacity the lowest-activation one
        (confidence x retention now, ties by id) is evicted. None: unbounded.
    segment_bytes_max: WAL segment size before rotation.
    checkpoint_wal_bytes: the most WAL bytes since the last checkpoint before a write
        triggers one (sooner for a small space: see Space._checkpoint_due).
    effects: the cognitive effects that shape recall (engram.memory.cognition), any
        of "priming", "fan", "interference", "reconsolidation", "spacing"; all by
        default, () for plain similarity, confidence and decay.
    fan_divisor: how the fan effect divides activation: "fan" (by the number of
        associations, Anderson's rule) or "sqrt" (by its square root, milder).
    """

    dimension: int = DIMENSION_DEFAULT
    durability: str = "sync"
    decay: str = "power_law"
    dedup_threshold: float | None = 0.95
    capacity: int | None = None
    flush_interval_ms: int = 50
    segment_bytes_max: int = 64 * 1024 * 1024
    checkpoint_wal_bytes: int = 512 * 1024 * 1024
    effects: tuple[str, ...] = EFFECTS
    fan_divisor: str = "fan"

    def __post_init__(self) -> None:
        if isinstance(self.effects, str) or not isinstance(self.effects, (tuple, list, frozenset, set)):
            raise ValidationError("effects", f"{self.effects!r} is not a list of effect names", ", ".join(EFFECTS), "('priming', 'spacing')")
        for name in self.effects:
            if name not in EFFECTS:
                raise ValidationError("effects", f"{name!r} is not an effect", ", ".join(EFFECTS), "('priming', 'spacing')")
        # Canonical order, so that a stored list and a given tuple compare equal.
        object.__setattr__(self, "effects", tuple(e for e in EFFECTS if e in self.effects))
        if self.fan_divisor not in fan_mod.DIVISORS:
            raise ValidationError("fan_divisor", f"{self.fan_divisor!r} is not allowed", "'fan' or 'sqrt'", "'fan'")
        check.positive_int(self.dimension, "dimension", "768", maximum=65536)
        if self.durability not in ("sync", "async"):
            raise ValidationError("durability", f"{self.durability!r} is not a durability mode", "'sync' or 'async'", "'sync'")
        check.decay_function(self.decay)
        if self.dedup_threshold is not None:
            check.unit_float(self.dedup_threshold, "dedup_threshold", "0.95")
        if self.capacity is not None:
            check.positive_int(self.capacity, "capacity", "100000")
        check.positive_int(self.flush_interval_ms, "flush_interval_ms", "50", maximum=60_000)
        if isinstance(self.segment_bytes_max, bool) or not isinstance(self.segment_bytes_max, (int, np.integer)) \
                or self.segment_bytes_max < 4096:
            raise ValidationError("segment_bytes_max", f"{self.segment_bytes_max!r} is not allowed", "an integer >= 4096", "67108864")
        check.positive_int(self.checkpoint_wal_bytes, "checkpoint_wal_bytes", "536870912")

    def to_json(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in self.__dataclass_fields__}
        out["effects"] = list(self.effects)
        return out

    def has(self, effect: str) -> bool:
        assert effect in EFFECTS
        return effect in self.effects


@dataclass(frozen=True, slots=True)
class _View:
    """What a reader needs of the matrix, taken under the lock in O(1)."""

    n: int
    matrix: np.ndarray
    inv_norms: np.ndarray
    alive: np.ndarray
    created: np.ndarray
    episodic: np.ndarray
    row_ids: List[str]
    codes: np.ndarray
    scales: np.ndarray
    layout: int  # row numbering: compaction starts a new one


class Space:
    """One memory space. Thread-safe. Obtain it from ``Database.space``."""

    def __init__(self, space_id: str, directory: Path, config: SpaceConfig, now_ns: Callable[[], int]) -> None:
        self.id = space_id
        self.directory = Path(directory)
        self.config = config
        self._now_ns = now_ns
        self._lock = threading.RLock()
        # Held by whoever changes state (a store batch from plan to apply, _commit,
        # checkpoint, close), before _lock; readers never take it.
        self._write_lock = threading.Lock()
        self._checkpoint_lock = threading.Lock()
        # The open generation of store requests, led by its first caller (see _store).
        self._queue_lock = threading.Lock()
        self._generation: _Generation | None = None
        self._last_followers = 0  # followers of the last generation (see _gather)
        self._last_store_s = 0.0  # how long its store took, fsync included
        self._items: dict[str, Item] = {}
        self._text: TextIndex | None = None  # built on first text query (see _text_index)
        self._graph = AssociationGraph()
        self._dedup = DedupIndex(config.dimension)
        d = config.dimension
        self._n = 0
        self._dead = 0
        self._layout = 0  # bumped when compaction renumbers the rows
        self._residuals = RowResiduals()  # for the int8 screen's bound (see _scan)
        self._matrix = np.zeros((0, d), np.float32)
        self._inv_norms = np.zeros(0, np.float32)
        self._alive = np.zeros(0, np.bool_)
        self._created = np.zeros(0, np.int64)
        self._episodic = np.zeros(0, np.bool_)
        self._row_ids: List[str] = []
        self._lsh_keys = np.zeros((0, DEDUP_TABLES), np.int64)
        # int8 copies of the rows for the reduced-precision candidate scan (see _scan).
        self._codes = np.zeros((0, config.dimension), np.int8)
        self._scales = np.zeros(0, np.float32)
        self._spare: _Spare | None = None  # arrays prepared for the next growth (see _grow)
        self._growing = False  # a thread prepares them
        self._pending_touches: dict[str, None] = {}  # ids retrieved since the last write (values unused)
        self._priming = priming_mod.PrimingState()
        # Interference inputs per recalled memory, caught up lazily with what was stored
        # and forgotten since (engram.memory.interference_cache): writes pay nothing.
        self._interference = InterferenceCache()
        self._history: dict[str, List[tuple[int, float, List[Any], bytes | None]]] = {}
        self._failed: BaseException | None = None
        self._closed = False
        self.evicted = 0
        self.deduplicated = 0
        # Dedup merges not logged yet: a merge that keeps the stored duplicate writes no
        # record of its own, so its count rides the next write, like the touches.
        self._pending_deduplicated = 0
        self.last_consolidation: dict[str, Any] | None = None
        self.created_ns = 0  # set by Database from space.json
        self.recovery = RecoveryReport()
        self._checkpoint_lsn = 0
        self._wal_bytes_at_checkpoint = 0
        self._snapshot_bytes = 0  # size of the latest snapshot (see _checkpoint_due)
        self._checkpointer: threading.Thread | None = None  # a background checkpoint (see _checkpoint_soon)
        self._checkpointer_lock = threading.Lock()
        # While a checkpoint builds its snapshot: where touches save what they overwrite (see checkpoint).
        self._saved_touches: dict[int, tuple[int, int, float]] | None = None
        self._wal = WriteAheadLog(
            self.directory / "wal",
            segment_bytes_max=config.segment_bytes_max,
            durability=config.durability,
            flush_interval_ms=config.flush_interval_ms,
        )

    # ------------------------------------------------------------------
    # opening

    def _open(self, salvage: bool) -> None:
        enabled = gc.isenabled()
        gc.disable()  # 100k new Items are not cyclic; rescanning them would triple the load time
        try:
            self._load(salvage)
        finally:
            if enabled:
                gc.enable()

    def _load(self, salvage: bool) -> None:
        snapshot.remove_temporary(self.directory)
        latest = snapshot.latest(self.directory)
        # Room for every row the log could add (each embedded REMEMBER holds its vector), so
        # that replay does not grow the arrays again and again (each growth copies and
        # faults in every row so far); pages never written cost nothing.
        reserve = self._wal.size_bytes() // (4 * self.config.dimension)
        after = 0
        if latest is not None:
            snap = snapshot.read(latest)
            self._load_snapshot(snap, reserve)
            after = snap.lsn
            self._checkpoint_lsn = snap.lsn
        elif reserve:
            self._grow(max(1024, reserve + reserve // 4))
        records, report = self._wal.recover(after, salvage)
        rows = _ReplayRows(self)
        dimension = self.config.dimension
        try:
            for record in records:
                try:
                    if record.rtype == rec.REMEMBER:
                        item, raw, replaces = rec.decode_remember_raw(record.payload, dimension)
                        self._replay_remember(rows, item, raw, replaces)
                        continue
                    if record.rtype not in _REPLAY_WITHOUT_ROWS:
                        rows.finish()  # it reads or appends rows: every row before it first
                    self._apply_record(record.rtype, record.payload)
                except (ValueError, KeyError, TypeError) as exc:
                    # Back to the log, which knows the record's file and offset: it raises
                    # a CorruptionError naming them or, salvaging, cuts the log there.
                    try:
                        records.throw(ValueError(f"{type(exc).__name__}: {exc}"))
                    except StopIteration:
                        pass
                    break
            rows.finish()
        finally:
            rows.close()
        self.recovery = report
        self._snapshot_bytes = 0 if latest is None else latest.stat().st_size
        # The log replayed now counts towards the next checkpoint, so a space reopened with
        # a long tail checkpoints soon instead of replaying it again at every open.
        self._wal_bytes_at_checkpoint = -self._wal.size_bytes()

    def _replay_remember(self, rows: "_ReplayRows", item: Item, raw: bytes | None, replaces: str | None) -> None:
        """Apply a decoded REMEMBER record (its embedding as little-endian float32 bytes) as
        _apply_record does, but for the row's arrays, which ``rows`` writes later in batches."""
        if raw is None:
            self._apply_remember(item, None, None, replaces)
            return
        row = self._n
        if row == self._matrix.shape[0]:
            rows.finish()
            self._grow(max(1024, 2 * self._matrix.shape[0]))
        self._alive[row] = True  # before: a record of this batch may yet tombstone it
        rows.add(item, raw)
        self._apply_remember(item, self._matrix[row], None, replaces, written=True)
        if rows.pending() >= REPLAY_BATCH_RECORDS:
            rows.submit()

    def _apply_record(self, rtype: int, payload: bytes) -> None:
        if rtype == rec.REMEMBER:
            item, embedding, replaces = rec.decode_remember(payload, self.config.dimension)
            keys = None
            code = None
            if embedding is not None:
                codes, scales = _core.quantize_rows(embedding.reshape(1, -1))
                keys = self._dedup.keys_for_codes(codes)[0].tolist()
                code = (codes[0], float(scales[0]))
            self._apply_remember(item, embedding, keys, replaces, code=code)
        elif rtype == rec.FORGET:
            memory_id, reason = rec.decode_forget(payload)
            if self._apply_forget(memory_id) and reason == "evicted":
                self.evicted += 1  # as the store that evicted it counted (a checkpoint keeps the count)
        elif rtype == rec.ASSOCIATE:
            a, b, weight = rec.decode_associate(payload)
            if a in self._items and b in self._items:
                self._graph.associate(a, b, weight)
        elif rtype == rec.TOUCH:
            for memory_id, at, count, stability in rec.decode_touch(payload):
                item = self._items.get(memory_id)
                if item is None:
                    continue
                if count is None:
                    item.access_count += 1
                    item.last_access_ns = max(item.last_access_ns, at)
                else:
                    item.access_count = count
                    item.last_access_ns = at
                    assert stability is not None
                    item.stability = stability
        elif rtype == rec.RECONSOLIDATE:
            at, plasticity, item, embedding, previous, previous_embedding = rec.decode_reconsolidate(payload, self.config.dimension)
            self._apply_reconsolidate(at, plasticity, item, embedding, previous, previous_embedding)
        elif rtype == rec.DEDUPLICATED:
            self.deduplicated += rec.decode_deduplicated(payload)
        else:
            raise ValueError(f"unknown record type {rtype}")

    # ------------------------------------------------------------------
    # state changes (the caller holds the lock)

    def _apply_remember(
        self, item: Item, embedding: np.ndarray | None, keys: List[int] | None, replaces: str | None,
        inv_norm: float | None = None, code: tuple[np.ndarray, float] | None = None, written: bool = False,
    ) -> None:
        # Logs written before dedup merges kept the stored id hold a stronger duplicate as
        # a new id that "replaces" the stored one: replayed as they were written.
        if replaces is not None and replaces != item.id:
            self._apply_forget(replaces)
        old = self._items.get(item.id)
        if old is not None:
            self._interference.drop(old.id)  # its own window's contents change with it
            self._drop_row(old)
            if self._text is not None:
                self._text.remove(old.id)
        if embedding is not None:
            assert keys is not None or written
            item.row = self._append_row(item, embedding, inv_norm, keys, code, written)
        else:
            item.row = -1
        self._items[item.id] = item
        if self._text is not None:
            self._text.add(item.id, item.content)

    def _apply_forget(self, memory_id: str) -> bool:
        item = self._items.pop(memory_id, None)
        if item is None:
            return False
        self._interference.drop(memory_id)
        self._priming.forget(memory_id)
        self._drop_row(item)
        if self._text is not None:
            self._text.remove(memory_id)
        self._graph.remove_node(memory_id)
        self._pending_touches.pop(memory_id, None)
        self._history.pop(memory_id, None)
        return True

    def _drop_row(self, item: Item) -> None:
        if item.row >= 0:
            self._interference.row_dropped(item.row)
            self._alive[item.row] = False
            self._dead += 1
            item.row = -1

    def _append_row(
        self, item: Item, embedding: np.ndarray, inv_norm: float | None, keys: List[int] | None,
        code: tuple[np.ndarray, float] | None = None, written: bool = False,
    ) -> int:
        """Append ``item``'s row; ``written``: its arrays and the dedup index already hold
        the row at ``self._n`` (see _write_rows), only the bookkeeping is left."""
        if not written:
            if self._n == self._matrix.shape[0]:
                self._grow(max(1024, 2 * self._matrix.shape[0]))
            row = self._n
            self._matrix[row] = embedding
            if inv_norm is None:
                inv_norm = _core.row_inv_norms(embedding.reshape(1, -1))[0]
            self._inv_norms[row] = inv_norm
            self._alive[row] = True
            self._created[row] = item.created_ns
            self._episodic[row] = item.memory_type == "episodic"
            self._lsh_keys[row] = keys
            if code is None:
                codes, scales = _core.quantize_rows(embedding.reshape(1, -1))
                code = (codes[0], float(scales[0]))
            self._codes[row] = code[0]
            self._scales[row] = code[1]
        row = self._n
        self._row_ids.append(item.id)
        self._n += 1
        if not written:  # _write_rows indexed written rows, and checks for a rebuild after them
            assert keys is not None
            self._dedup.add(row, keys)
            if self._dedup.needs_rebuild(self._n):
                self._dedup.rebuild(self._lsh_keys[: self._n])
        return row

    def _grow(self, capacity: int) -> None:
        """Make the row arrays ``capacity`` rows long (caller holds the lock). New arrays, old
        ones left intact: a reader holding a view keeps valid data. With arrays prepared
        ahead (see _grow_ahead) only the rows appended since and the tombstones are copied
        here: a growth to 131,072 rows took 0.2-0.4 s under the locks, most of it page
        faults of the fresh arrays."""
        n = self._n
        spare, self._spare = self._spare, None
        if spare is not None and spare.capacity >= capacity and spare.source is self._matrix:
            start, arrays = spare.rows, spare.arrays
        else:
            start, arrays = 0, {name: _empty_rows(getattr(self, name), capacity) for name in _ROW_ARRAYS}
        for name, array in arrays.items():
            first = 0 if name == "_alive" else start  # tombstones change rows in place
            array[first:n] = getattr(self, name)[first:n]
            setattr(self, name, array)
        self._row_ids = list(self._row_ids)

    def _grow_ahead(self, source: dict[str, np.ndarray], rows: int, capacity: int) -> None:
        """Background thread: new arrays of ``capacity`` rows holding the first ``rows`` of
        ``source`` (rows that never change but for tombstones), for the next _grow."""
        arrays = {}
        for name, old in source.items():
            array = _empty_rows(old, capacity)
            array[:rows] = old[:rows]
            array[rows : old.shape[0]] = 0  # faulted in now, not when _grow copies the rows to come
            arrays[name] = array
        with self._lock:
            self._growing = False
            if self._matrix is source["_matrix"]:  # not grown nor compacted meanwhile
                self._spare = _Spare(source=source["_matrix"], rows=rows, capacity=capacity, arrays=arrays)

    def _compact_if_sparse(self) -> None:
        """Upkeep of the row arrays after a write (caller holds the lock): compacted when a
        quarter of the rows are dead; when three quarters full, the next growth is
        prepared on a background thread (see _grow)."""
        capacity = self._matrix.shape[0]
        if capacity >= GROW_AHEAD_ROWS_MIN and self._n * 4 >= capacity * 3 and self._spare is None and not self._growing:
            self._growing = True
            source = {name: getattr(self, name) for name in _ROW_ARRAYS}
            threading.Thread(target=self._grow_ahead, args=(source, self._n, 2 * capacity),
                             name=f"grow:{self.id}", daemon=True).start()
        if self._n < _COMPACT_MIN_ROWS or self._dead * 4 < self._n:
            return
        self._spare = None
        keep = np.nonzero(self._alive[: self._n])[0]
        capacity = max(1024, 2 * len(keep))
        d = self.config.dimension
        matrix = np.zeros((capacity, d), np.float32)
        matrix[: len(keep)] = self._matrix[keep]
        row_ids = [self._row_ids[r] for r in keep]
        self._inv_norms = _resized(self._inv_norms[keep], len(keep), capacity)
        self._alive = _resized(self._alive[keep], len(keep), capacity)
        self._created = _resized(self._created[keep], len(keep), capacity)
        self._episodic = _resized(self._episodic[keep], len(keep), capacity)
        keys = np.zeros((capacity, DEDUP_TABLES), np.int64)
        keys[: len(keep)] = self._lsh_keys[keep]
        self._lsh_keys = keys
        codes = np.zeros((capacity, d), np.int8)
        codes[: len(keep)] = self._codes[keep]
        self._codes = codes
        self._scales = _resized(self._scales[keep], len(keep), capacity)
        self._dedup.rebuild(keys[: len(keep)])
        self._matrix = matrix
        self._row_ids = row_ids
        self._interference.clear()  # rows renumbered
        self._layout += 1
        for row, memory_id in enumerate(row_ids):
            self._items[memory_id].row = row
        self._n = len(keep)
        self._dead = 0

    def _text_index(self) -> TextIndex:
        """The text index, built from every item on first use (reopening stays fast)."""
        with self._lock:
            if self._text is None:
                index = TextIndex()
                for item in self._items.values():
                    index.add(item.id, item.content)
                self._text = index
            return self._text

    def _view(self) -> _View:
        with self._lock:
            self._check_open()
            n = self._n
            return _View(n, self._matrix, self._inv_norms, self._alive[:n].copy(), self._created, self._episodic,
                         self._row_ids, self._codes, self._scales, self._layout)

    # ------------------------------------------------------------------
    # writing

    def _pending_entries(self) -> List[tuple[int, bytes]]:
        """What memory holds that no record does yet, as records to log with the next
        write (caller holds the lock): the retrievals since the last write (TOUCH, their
        outcomes, so replay sets the same access counts, times and stabilities) and the
        dedup merge count (DEDUPLICATED, so the statistic survives a reopen)."""
        entries = []
        if self._pending_touches:
            touches = []
            for memory_id in sorted(self._pending_touches):
                item = self._items.get(memory_id)
                if item is not None:
                    touches.append((memory_id, item.last_access_ns, item.access_count, item.stability))
            self._pending_touches.clear()
            entries.append((rec.TOUCH, rec.encode_touch(touches)))
        if self._pending_deduplicated:
            entries.append((rec.DEDUPLICATED, rec.encode_deduplicated(self._pending_deduplicated)))
            self._pending_deduplicated = 0
        return entries

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"space {self.id!r} is closed; open the database again with engram.open(path)")
        if self._failed is not None:
            raise EngramError(f"space {self.id!r} stopped after a storage failure ({self._failed}); reopen the database")

    def _commit(self, build: Callable[[], tuple[List[tuple[int, bytes]], Any]], *, durable: bool = True) -> Any:
        """Run ``build`` under the lock, log its entries, wait until durable, return its result.

        ``build`` applies its changes to memory and returns (WAL entries, result).
        ``durable=False`` skips the wait (the caller waits once for several commits).
        The write lock orders it with the stores' group commit (see _store_batch):
        nothing changes state between a batch's plan and its apply.
        """
        with self._write_lock, self._lock:
            self._check_open()
            entries, result = build()
            if not entries:
                return result
            entries[:0] = self._pending_entries()
            try:
                lsn = self._wal.append(entries, self._now_ns())
            except BaseException as exc:
                # Memory already holds changes the log does not: refuse further use.
                self._failed = exc
                raise
            self._compact_if_sparse()
            need_checkpoint = self._checkpoint_due()
        if durable:
            self._wal.wait_durable(lsn)
        if need_checkpoint:
            self._checkpoint_soon()
        return result

    def _prepare(
        self,
        content: Any,
        *,
        embedding: Any,
        confidence: Any,
        when: Any,
        id: Any,
        tags: Any,
        location: Any,
        memory_type: Any,
        decay: Any,
        who: Any = (),
        why: Any = None,
        how: Any = None,
        importance: Any = None,
        valence: Any = None,
        metadata: Any = None,
        sources: Any = (),
        field_prefix: str = "",
    ) -> tuple[Item, np.ndarray | None]:
        # Defaults (None, empty tuples, "semantic") skip their check: this runs on every
        # writer thread for every store, and a default needs no checking.
        text = check.content(content, field_prefix + ("what" if memory_type == "episodic" else "content"))
        mtype = "semantic" if memory_type == "semantic" else check.memory_type(memory_type)
        vector = None if embedding is None else check.embedding(embedding, self.config.dimension, field_prefix + "embedding")
        conf = check.unit_float(confidence, field_prefix + "confidence")
        now = self._now_ns()
        created = now if when is None else check.when(when, field_prefix + "when")
        memory_id = _new_id(mtype) if id is None else check.memory_id(id, field_prefix + "id")
        fn = None if decay is None else check.decay_function(decay, field_prefix + "decay")
        who_tuple = check.tags(who, field_prefix + "who")
        meta = {} if metadata is None else check.metadata(metadata, field_prefix + "metadata")
        tag_tuple = check.tags(tags, field_prefix + "tags")
        place = None if location is None else \
            check.short_text(location, field_prefix + ("where" if mtype == "episodic" else "location"), "'lab'")
        why_text = None if why is None else check.short_text(why, field_prefix + "why", "'to test the hypothesis'")
        how_text = None if how is None else check.short_text(how, field_prefix + "how", "'by microscope'")
        weight = None if importance is None else check.unit_float(importance, field_prefix + "importance", "0.6")
        feeling = None if valence is None else check.signed_unit_float(valence, field_prefix + "emotional_valence")
        # Positional: Item's field order (id, content, confidence, created, last access,
        # access count, tags, type, location, who, why, how, importance, valence, decay,
        # sources, metadata).
        item = Item(memory_id, text, conf, created, created, 0, tag_tuple, mtype, place, who_tuple, why_text, how_text,
                    weight, feeling, fn, sources if type(sources) is tuple else tuple(sources), meta)
        return item, vector

    def remember(
        self,
        content: str,
        *,
        embedding: Any = None,
        confidence: float = 0.7,
        when: datetime | None = None,
        id: str | None = None,
        tags: Iterable[str] = (),
        location: str | None = None,
        memory_type: str = "semantic",
        decay: str | None = None,
    ) -> str:
        """Store a memory; return its id.

        Dedup (see SpaceConfig.dedup_threshold): a near-duplicate of a stored memory is
        merged into it and the stored memory's id is returned, even when ``id`` names
        another (that id is then not created). A weaker or equally confident duplicate
        changes nothing; a more confident one gives the stored memory its content,
        embedding, confidence, tags, location and decay, and it keeps its id, creation
        time, associations, retrieval statistics and history. An ``id`` already stored
        is overwritten, never deduplicated.

        Raises ValidationError (nothing written) for a bad value, ClosedError after close.
        """
        prepared = self._prepare(
            content, embedding=embedding, confidence=confidence, when=when, id=id, tags=tags,
            location=location, memory_type=memory_type, decay=decay,
        )
        return self._store([prepared])[0][0]

    def remember_episode(
        self,
        what: str,
        *,
        when: datetime,
        where: str | None = None,
        who: Iterable[str] = (),
        why: str | None = None,
        how: str | None = None,
        embedding: Any = None,
        importance: float | None = None,
        emotional_valence: float | None = None,
        confidence: float | None = None,
        id: str | None = None,
        metadata: dict[str, Any] | None = None,
        decay: str | None = None,
    ) -> str:
        """Store an episode (never deduplicated); ``importance`` is its encoding confidence."""
        if when is None:
            raise ValidationError("when", "is required for an episode", "a datetime", "datetime(2026, 1, 5, 9, 30, tzinfo=timezone.utc)")
        if confidence is None:
            confidence = importance if importance is not None else 0.7
        prepared = self._prepare(
            what, embedding=embedding, confidence=confidence, when=when, id=id, tags=(), location=where,
            memory_type="episodic", decay=decay, who=who, why=why, how=how, importance=importance,
            valence=emotional_valence, metadata=metadata,
        )
        return self._store([prepared])[0][0]

    def remember_many(self, items: Sequence[dict[str, Any]], *, outcomes: bool = False) -> List[Any]:
        """Store many memories with one WAL write and one fsync; all or nothing on bad input.

        Each dict holds ``remember``'s keyword arguments plus ``content`` (or an
        episode's: ``what``, ``when``, ``where``... with ``memory_type="episodic"``).
        Returns their ids in order, or with ``outcomes=True`` a ``Remembered`` (id and
        whether the item was stored, merged into a near-duplicate or kept out by one) each.
        """
        ids, dedup = self._remember_many(items)
        if not outcomes:
            return ids
        return [Remembered(memory_id, dedup.get(index, "stored")) for index, memory_id in enumerate(ids)]

    def _remember_many(self, items: Sequence[dict[str, Any]]) -> tuple[List[str], dict[int, str]]:
        if isinstance(items, (str, bytes, dict)) or not isinstance(items, Sequence):
            raise ValidationError("items", "expected a list of dicts", "a list of dicts with remember()'s arguments", "[{'content': 'a', 'embedding': [...]}]")
        plain = self._prepare_plain(items)
        if plain is not None:
            return self._store(*plain)
        prepared = []
        allowed = {"content", "what", "embedding", "confidence", "when", "id", "tags", "location", "where",
                   "memory_type", "decay", "who", "why", "how", "importance", "emotional_valence", "metadata"}
        for index, raw in enumerate(items):
            prefix = f"items[{index}]."
            if not isinstance(raw, dict):
                raise ValidationError(f"items[{index}]", "expected a dict", "a dict with remember()'s arguments", "{'content': 'a'}")
            if not allowed.issuperset(raw):
                unknown = sorted(set(raw) - allowed)
                raise ValidationError(prefix + unknown[0], "is not a known field", ", ".join(sorted(allowed)), "{'content': 'a'}")
            mtype = raw.get("memory_type", "semantic")
            importance = raw.get("importance")
            confidence = raw.get("confidence", importance if importance is not None else 0.7)
            prepared.append(self._prepare(
                raw.get("what", raw.get("content")), embedding=raw.get("embedding"), confidence=confidence,
                when=raw.get("when"), id=raw.get("id"), tags=raw.get("tags", ()),
                location=raw.get("where", raw.get("location")), memory_type=mtype, decay=raw.get("decay"),
                who=raw.get("who", ()), why=raw.get("why"), how=raw.get("how"), importance=importance,
                valence=raw.get("emotional_valence"), metadata=raw.get("metadata"), field_prefix=prefix,
            ))
        if not prepared:
            return [], {}
        return self._store(prepared)

    def _prepare_plain(self, items: Sequence[Any]) -> tuple[List[tuple[Item, np.ndarray | None]], np.ndarray] | None:
        """``remember_many``'s items, prepared, and their embeddings stacked, when every
        one is a plain memory (a bulk load's usual item): ASCII content, a float32 NumPy
        embedding of the space's dimension, at most a float confidence in [0, 1], no
        tags, semantic. The embeddings are checked as one matrix (finite, no zero row)
        and each item is built without _prepare's per-field calls. None for anything
        else, and for any value the checks below do not take: the general path then
        stores the items or raises its error for the first bad one, so both give the
        same items, records and errors. Each item has its own clock reading and id,
        taken in order, as _prepare takes them."""
        if len(items) < PLAIN_BATCH_MIN:
            return None
        dimension = self.config.dimension
        shape = (dimension,)
        f32 = np.float32
        keys = _PLAIN_KEYS
        content_max = check.CONTENT_BYTES_MAX
        vectors = []
        for raw in items:
            if type(raw) is not dict or not keys.issuperset(raw):
                return None
            text = raw.get("content")
            vector = raw.get("embedding")
            conf = raw.get("confidence", 0.7)
            if type(text) is not str or len(text) > content_max or not text.isascii() \
                    or type(vector) is not np.ndarray or vector.dtype != f32 or vector.shape != shape \
                    or type(conf) is not float or not 0.0 <= conf <= 1.0:
                return None
            if "tags" in raw or "memory_type" in raw:
                tags = raw.get("tags", ())
                mtype = raw.get("memory_type", "semantic")
                if (type(tags) is not tuple and type(tags) is not list) or tags or type(mtype) is not str or mtype != "semantic":
                    return None
            vectors.append(vector)
        stacked = np.stack(vectors)
        # The norm range check.embedding applies; row_inv_norms gives 0 for a row that is
        # zero or holds NaN or infinity, so this refuses those too.
        inv_norms = _core.row_inv_norms(stacked)
        if not ((inv_norms >= check.EMBEDDING_INV_NORM_MIN) & (inv_norms <= check.EMBEDDING_INV_NORM_MAX)).all():
            return None
        now_ns = self._now_ns
        prepared: List[tuple[Item, np.ndarray | None]] = []
        append = prepared.append
        for raw, vector in zip(items, stacked):
            created = now_ns()
            # Positional, as in _prepare.
            append((Item(_new_id("semantic"), raw["content"], raw.get("confidence", 0.7), created, created, 0, (), "semantic",
                         None, (), None, None, None, None, None, (), {}), vector))
        return prepared, stacked

    def _store(self, prepared: List[tuple[Item, np.ndarray | None]], stacked: np.ndarray | None = None
               ) -> tuple[List[str], dict[int, str]]:
        """Store validated items through the space's group commit; return their ids and, by
        index, the dedup outcome ("merged" or "kept") of the items dedup decided.

        Stores form generations. The caller that opens a generation leads it: it
        waits for the write lock (held by the previous generation's leader through
        its fsync), closes the generation, stores every request in it as one batch
        (see _store_batch), then wakes all its followers with one system call. The
        others only queue and sleep. So concurrent writers share one planning pass,
        one WAL write and one fsync, and a batch's wake-up does not cost the leader
        one context switch per follower (which, measured with 32 writers, took half
        of the time the leader held the GIL). ``stacked``: every item's embedding, as
        the rows of one matrix (a bulk store's), which a batch of that request alone
        plans on without stacking them again.
        """
        request = _StoreRequest(prepared, stacked)
        with self._queue_lock:
            generation = self._generation
            lead = generation is None
            if generation is None:
                generation = self._generation = _Generation()
            else:
                generation.add_follower()
            generation.requests.append(request)
        if lead:
            if self._lead_generation(generation):
                self._checkpoint_soon()
        else:
            generation.wait()
        if request.error is not None:
            raise request.error
        assert request.ids is not None
        return request.ids, request.dedup

    def _lead_generation(self, generation: _Generation) -> bool:
        """Store a generation's requests as one batch and wake them; return whether a checkpoint is due."""
        checkpoint_due = False
        batch: List[_StoreRequest] = []
        try:
            with self._write_lock:
                self._gather(generation)
                with self._queue_lock:
                    # Closed: later callers open the next generation.
                    if self._generation is generation:
                        self._generation = None
                    batch = list(generation.requests)
                started = time.perf_counter()
                if len(batch) == 1:
                    ids, dedup = self._store_batch(batch[0].prepared, batch[0].stacked)
                else:
                    ids, dedup = self._store_batch([item for request in batch for item in request.prepared])
                self._last_store_s = time.perf_counter() - started
                self._last_followers = len(batch) - 1
                checkpoint_due = self._checkpoint_due()
            position = 0
            for request in batch:
                stop = position + len(request.prepared)
                request.ids = ids[position:stop]
                if dedup:  # rare: most batches hold no near-duplicate
                    request.dedup = {i - position: outcome for i, outcome in dedup.items() if position <= i < stop}
                position = stop
        except BaseException as exc:
            with self._queue_lock:
                if self._generation is generation:
                    self._generation = None  # failed before closing: nobody may join it now
            for request in generation.requests:
                request.error = exc
        finally:
            generation.wake()
        return checkpoint_due

    def _write_rows(self, plan: _StorePlan, vectors: List[int]) -> None:
        """Write and index the rows the next stores will append (rows n, n + 1, ... in the
        order of ``vectors``, increasing indices into the plan's arrays) with one slice
        assignment per array; _append_row then only does the bookkeeping. Rows at or
        past n are not visible to readers, and a row the batch later removes is
        tombstoned after, as one by one (caller holds the lock)."""
        if not vectors:
            return
        n = self._n
        k = len(vectors)
        stop = n + k
        if stop > self._matrix.shape[0]:
            self._grow(max(1024, 2 * self._matrix.shape[0], stop))
        source: slice | np.ndarray
        if vectors[-1] - vectors[0] == k - 1:
            source = slice(vectors[0], vectors[0] + k)  # the usual case: no copy to gather
        else:
            source = np.array(vectors, np.int64)
        self._matrix[n:stop] = plan.stacked[source]
        self._inv_norms[n:stop] = plan.inv_norms[source]
        self._alive[n:stop] = True
        items = plan.vector_items
        self._created[n:stop] = [items[v].created_ns for v in vectors]
        self._episodic[n:stop] = [items[v].memory_type == "episodic" for v in vectors]
        keys = plan.keys[source]
        self._lsh_keys[n:stop] = keys
        self._codes[n:stop] = plan.codes[source]
        self._scales[n:stop] = plan.scales[source]
        self._dedup.add_rows(np.arange(n, stop, dtype=np.int64), keys)

    def _gather(self, generation: _Generation) -> None:
        """Let the writers the last batch just woke join this one before it closes.

        With writers that each wait for their previous store, a batch that closes at
        once holds only those who waited through the last fsync, about half of them,
        and the halves alternate. When the last batch had followers, the leader
        sleeps while requests keep arriving (each gap under STORE_GATHER_GAP_S), for
        at most half the last batch's store time (and STORE_GATHER_MAX_S): nearly
        every writer then shares each fsync, and a fast disk waits little. A lone
        writer never waits.
        """
        if self._last_followers == 0:
            return
        # As many as last time: everyone is probably in, and another sleep (which lasts
        # longer than asked on a busy machine) would only delay them all.
        expected = self._last_followers + 1
        deadline = time.perf_counter() + min(STORE_GATHER_MAX_S, self._last_store_s / 2)
        seen = len(generation.requests)
        while seen < expected and time.perf_counter() < deadline:
            time.sleep(STORE_GATHER_GAP_S)
            count = len(generation.requests)
            if count == seen:
                return
            seen = count

    def _store_batch(self, prepared: List[tuple[Item, np.ndarray | None]], stacked: np.ndarray | None = None
                     ) -> tuple[List[str], dict[int, str]]:
        """Plan, log, make durable, then apply a batch of items (the caller holds the write lock).

        Decisions (dedup, eviction, overwrites) are taken item by item in order, each
        against the state as the earlier items leave it, exactly as if they had been
        stored one by one; only the arithmetic is done for the whole batch at once.
        Memory changes after the records are durable, so a reader never sees a write
        that a crash could still take back, and a dedup hit only ever answers with a
        durable memory. Raises ClosedError, or the storage error that stopped the space.
        """
        with self._lock:
            self._check_open()
        plan = _StorePlan(self, prepared, stacked)
        entries = plan.entries
        if entries:
            with self._lock:
                entries[:0] = self._pending_entries()
            try:
                lsn = self._wal.append(entries, self._now_ns())
                self._wal.wait_durable(lsn)
            except BaseException as exc:
                # The log may hold records that memory does not: refuse further use.
                self._failed = exc
                raise
        else:
            # Only dedup hits: whatever they answer with must be durable too. Their count
            # is logged with the next write (_pending_entries): no fsync of its own.
            self._wal.wait_durable(self._wal.last_lsn)
        try:
            self._apply_plan(plan)
        except BaseException as exc:
            # The log holds records that memory does not (all of them): refuse further use.
            self._failed = exc
            raise
        return plan.ids, plan.dedup

    def _apply_plan(self, plan: _StorePlan) -> None:
        """Apply a durable batch's actions in order (the caller holds the write lock)."""
        actions = plan.actions
        for start in range(0, len(actions), STORE_CHUNK_ITEMS):
            # A large batch is applied in chunks so that readers are not stalled behind it.
            with self._lock:
                chunk = actions[start : start + STORE_CHUNK_ITEMS]
                # The chunk's new rows, written and indexed at once; each item below then
                # takes the next row, in the same order.
                self._write_rows(plan, [action[4] for action in chunk if action[0] == _REMEMBER and action[4] >= 0])
                if plan.simple:
                    self._apply_new_items(chunk)
                else:
                    for action in chunk:
                        if action[0] == _FORGET:
                            self._apply_forget(action[1])
                            self.evicted += 1
                            _log_eviction(self.id, action[1])
                        else:
                            _, item, vector, merge, v = action
                            if merge:
                                self._catch_up_touches(item)
                            self._apply_remember(item, vector, None, None, written=v >= 0)
                if self._dedup.needs_rebuild(self._n):
                    self._dedup.rebuild(self._lsh_keys[: self._n])
        with self._lock:
            self.deduplicated += plan.deduplicated
            self._pending_deduplicated += plan.deduplicated
            self._compact_if_sparse()

    def _catch_up_touches(self, item: Item) -> None:
        """A merged item (see _merge_into) copied its stored duplicate's retrievals when the
        plan was made, without the space lock: a recall since then counted one more on the
        stored item. Take them over, and log them with the next write like any touch
        (the REMEMBER record already written holds the plan's; caller holds the lock)."""
        stored = self._items.get(item.id)
        if stored is None:
            return
        touched = (max(stored.last_access_ns, item.last_access_ns), stored.access_count, stored.stability)
        if touched != (item.last_access_ns, item.access_count, item.stability):
            item.last_access_ns, item.access_count, item.stability = touched
            self._pending_touches[item.id] = None

    def _apply_new_items(self, chunk: List[tuple[Any, ...]]) -> None:
        """_apply_remember for items of a simple plan (new ids, nothing replaced), whose
        rows _write_rows has written and indexed: what it does for them, in order."""
        items = self._items
        row_ids = self._row_ids
        text = self._text
        row = self._n
        for _, item, vector, _merge, v in chunk:
            if v >= 0:
                item.row = row
                row_ids.append(item.id)
                row += 1
            else:
                item.row = -1
            items[item.id] = item
            if text is not None:
                text.add(item.id, item.content)
        self._n = row

    def forget(self, memory_id: str) -> bool:
        """Delete a memory for real (a WAL tombstone); True if it existed."""
        check.memory_id(memory_id)

        def build() -> tuple[List[tuple[int, bytes]], bool]:
            if not self._apply_forget(memory_id):
                return [], False
            return [(rec.FORGET, rec.encode_forget(memory_id, "forget"))], True

        return bool(self._commit(build))

    def associate(self, a: str, b: str, weight: float = 0.5) -> None:
        """Link two memories (undirected) with a weight in (0, 1]. Raises UnknownIdError."""
        check.memory_id(a, "a")
        check.memory_id(b, "b")
        w = check.unit_float(weight, "weight", "0.9")
        if w == 0.0:
            raise ValidationError("weight", "0 would be no association", "a number in (0, 1]", "0.9")
        if a == b:
            raise ValidationError("b", "a memory cannot be associated with itself", "an id different from a", "sp.associate(id1, id2)")

        def build() -> tuple[List[tuple[int, bytes]], None]:
            for name, memory_id in (("a", a), ("b", b)):
                if memory_id not in self._items:
                    raise UnknownIdError(name, memory_id, self.id)
            self._graph.associate(a, b, w)
            return [(rec.ASSOCIATE, rec.encode_associate(a, b, w))], None

        self._commit(build)

    # ------------------------------------------------------------------
    # reading

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, memory_id: object) -> bool:
        return memory_id in self._items

    def get(self, memory_id: str) -> Memory | None:
        check.memory_id(memory_id)
        with self._lock:
            self._check_open()
            item = self._items.get(memory_id)
            return None if item is None else self._memory(item)

    def _memory(self, item: Item) -> Memory:
        embedding = None if item.row < 0 else self._matrix[item.row].copy()
        return Memory(
            id=item.id, content=item.content, embedding=embedding, confidence=item.confidence,
            created_at=ns_to_datetime(item.created_ns), last_access=ns_to_datetime(item.last_access_ns),
            access_count=item.access_count, tags=item.tags, memory_type=item.memory_type, location=item.location,
            who=item.who, why=item.why, how=item.how, importance=item.importance, emotional_valence=item.valence,
            decay=item.decay or self.config.decay, sources=item.sources, metadata=_metadata_copy(item.metadata),
        )

    def _retention(self, item: Item, now: int) -> float:
        elapsed = now - item.last_access_ns
        if item.stability != 1.0 and self.config.has("spacing"):
            elapsed = spacing_mod.stretched_elapsed_ns(elapsed, item.stability)
        return decay_mod.retention(item.decay or self.config.decay, elapsed, item.access_count)

    def _activation(self, item: Item, now: int) -> float:
        return item.confidence * self._retention(item, now)

    def list(self, offset: int = 0, limit: int = 100) -> List[Memory]:
        """Memories ordered by time, then id."""
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValidationError("offset", f"{offset!r} is not allowed", "an integer >= 0", "0")
        check.positive_int(limit, "limit", "100", maximum=K_MAX)
        with self._lock:
            self._check_open()
            ordered = sorted(self._items.values(), key=lambda it: (it.created_ns, it.id))
            return [self._memory(item) for item in ordered[offset : offset + limit]]

    def recall(
        self,
        *,
        embedding: Any = None,
        text: str | None = None,
        k: int = 10,
        threshold: float = 0.0,
        after: datetime | None = None,
        before: datetime | None = None,
        location: str | None = None,
        memory_types: Iterable[str] | None = None,
        mode: str = "similarity",
    ) -> List[Hit]:
        """Recall by embedding (exact cosine), by text, by filters, or any mix.

        Score: cosine clamped at 0 for an embedding cue; the lexical score for a
        text cue; their mean when both are given; 1.0 for filters alone. Filters
        (``after`` <= time < ``before``, ``location`` case-insensitively, types)
        combine with any cue. A hit's confidence is stored confidence x retention
        at read time x score. Hits below ``threshold`` (on score) are dropped; a
        threshold of 1.0 keeps cosines within float32 rounding of 1 (COSINE_ROUNDING).

        ``mode``:
        - "similarity": the best matches by score (the default).
        - "spreading": the ``k`` best matches seed spreading activation (their
          score as starting activation) through associations, divided by each
          node's fan (engram.memory.cognition.fan); hits are the nodes reached,
          ranked by activation, which is also their ``score``; confidence is
          stored x retention x activation.
        - "hybrid": matches from a wider shortlist and the nodes spreading reaches,
          ranked by 0.5 x similarity + 0.2 x activation + 0.2 x (stored confidence x
          retention) + 0.1 x recency, recency = 0.5 ** (age / 24 h); that blend is
          the ``score``; confidence is stored x retention x max(similarity, activation).
        Then every hit's confidence is multiplied by the space's cognitive effects
        (priming, interference; spacing acts through retention, the fan through
        activation), each listed in ``Hit.effects``. Raises ValidationError.
        """
        return self.recall_many([dict(embedding=embedding, text=text, k=k, threshold=threshold, after=after,
                                      before=before, location=location, memory_types=memory_types, mode=mode)])[0]

    def recall_many(self, queries: Sequence[dict[str, Any]]) -> List[List[Hit]]:
        """Answer several recalls; their embedding cues share one pass over the matrix."""
        parsed = [self._parse_query(q, i if len(queries) > 1 else None) for i, q in enumerate(queries)]
        priming = self.config.has("priming")
        view = self._view()
        full: dict[int, np.ndarray] = {}
        screened: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        with_vectors = [p for p in parsed if p.vector is not None]
        if with_vectors and view.n:
            queries_matrix = np.stack([p.vector for p in with_vectors])
            full, screened = self._scan(view, queries_matrix, with_vectors)
        now = self._now_ns()
        results = []
        vector_index = 0
        # The scan above ran without the lock; ranking and building hits read the
        # item map, the text index and rows, which writers change: hold the lock.
        with self._lock:
            self._check_open()
            chosen_per_query = []
            for query in parsed:
                row_scores = None
                shortlist = None
                if query.vector is not None:
                    row_scores = full.get(vector_index, np.zeros(0, np.float32))
                    shortlist = screened.get(vector_index)
                    vector_index += 1
                chosen_per_query.append(self._rank(query, view, row_scores, now, shortlist))
            if self.config.has("interference"):
                # Bring the interference entries of every query's hits up to date in one
                # pass (one kernel call per window group, not one per query). Which hits
                # a query has does not depend on the effects, and a caught-up entry is the
                # same whenever it is caught up, so each query's effects below are as if
                # it ran alone; priming still follows the queries' order.
                self._interference.update(_unique_embedded(chosen_per_query), self._rows())
            for chosen in chosen_per_query:
                hits = self._with_effects(chosen, now)
                results.append(hits)
                if priming and hits:
                    top = self._items.get(hits[0].id)
                    if top is not None:
                        self._priming.recalled(top.id, now, top.row >= 0)
            self._touch([hit.id for hits in results for hit in hits], now)
        return results

    def _scan(self, view: _View, queries: np.ndarray, parsed: List["_Query"]
              ) -> tuple[dict[int, np.ndarray], dict[int, tuple[np.ndarray, np.ndarray]]]:
        """Cosine scores of each query row: ``full[j]`` every row's exact score, or
        ``screened[j] = (rows, scores)``, the exact scores of the only rows that can
        reach query j's top k (every other row is out of it).

        For a large space, a plain top-k query (similarity mode; no text, location or
        type) is screened on the int8 codes (a quarter of the bytes): with bound_i the
        error bound of engram._core.approx_bound_terms (quantisation of rows and
        queries plus rounding, in cosine units), only rows whose approximate score +
        bound_i reaches the k-th best of approximate score - bound are scored exactly.
        The true top k always pass, and their exact scores are the same bits as in a
        full scan (each row is computed alone, in a fixed order), so results are
        identical. The whole batch is screened in one kernel call that holds the GIL
        only to allocate its result (engram._core.screen_batch). ``parsed`` describes
        the first len(parsed) query rows; later rows (priming) get full exact scans.
        """
        n = view.n
        matrix = view.matrix[:n]
        inv_norms = view.inv_norms[:n]
        eligible = [
            j for j, query in enumerate(parsed)
            if n >= APPROX_SCAN_ROWS_MIN and query.mode == "similarity" and query.text is None
            and query.location is None and query.types is None
        ]
        approximate = set(eligible)
        exact_rows = [j for j in range(queries.shape[0]) if j not in approximate]
        full: dict[int, np.ndarray] = {}
        screened: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        if exact_rows:
            scores = _core.cosine_scores(matrix, inv_norms, np.ascontiguousarray(queries[exact_rows]))
            full.update(zip(exact_rows, scores))
        if not eligible:
            return full, screened
        chosen = np.ascontiguousarray(queries[eligible])
        q_inv = _core.row_inv_norms(chosen)
        approx = _core.approx_scores_batch(view.codes[:n], view.scales[:n], chosen)
        if _core.approx_quantises_queries():
            # Integer dot products of quantised rows and queries: the residual bound
            # (engram.memory.residuals) is exact and much tighter.
            q_codes, q_scales = _core.quantize_rows(chosen)
            row_coeff, constant = residuals_mod.query_terms(chosen, q_codes, q_scales)
            per_row = self._residuals.of(view.layout, view.matrix, view.codes, view.scales, n)
        else:
            row_coeff, constant = _core.approx_bound_terms(chosen, q_inv)
            per_row = view.scales[:n] * inv_norms
        offsets, rows, scores, whole = _core.screen_batch(
            approx, inv_norms, per_row, q_inv, row_coeff, constant,
            np.array([parsed[j].k for j in eligible], np.int64),
            np.array([_TIME_MIN if parsed[j].after is None else parsed[j].after for j in eligible], np.int64),
            np.array([_TIME_MAX if parsed[j].before is None else parsed[j].before for j in eligible], np.int64),
            view.alive, view.created[:n], matrix, chosen,
        )
        for position, j in enumerate(eligible):
            if whole[position]:  # the bound could not narrow it: a full exact scan is cheaper
                full[j] = _core.cosine_scores(matrix, inv_norms, chosen[position : position + 1])[0]
            else:
                span = slice(int(offsets[position]), int(offsets[position + 1]))
                screened[j] = (rows[span], scores[span])
        return full, screened

    def _parse_query(self, raw: dict[str, Any], index: int | None) -> "_Query":
        prefix = "" if index is None else f"queries[{index}]."
        allowed = {"embedding", "text", "k", "threshold", "after", "before", "location", "memory_types", "mode"}
        unknown = sorted(set(raw) - allowed)
        if unknown:
            raise ValidationError(prefix + unknown[0], "is not a recall argument", ", ".join(sorted(allowed)), "{'text': 'cell', 'k': 5}")
        vector = None if raw.get("embedding") is None else check.embedding(raw["embedding"], self.config.dimension, prefix + "embedding")
        text = raw.get("text")
        if text is not None:
            if not isinstance(text, str) or not text.strip():
                raise ValidationError(prefix + "text", "expected a non-blank string", "a string with a character other than spaces (one with no word, such as '!!!', matches nothing)", "'mitochondria'")
            check.content(text, prefix + "text")
        k = check.positive_int(raw.get("k", 10), prefix + "k", "10", maximum=K_MAX)
        threshold = _reachable(check.unit_float(raw.get("threshold", 0.0), prefix + "threshold", "0.5"))
        after = None if raw.get("after") is None else check.when(raw["after"], prefix + "after")
        before = None if raw.get("before") is None else check.when(raw["before"], prefix + "before")
        if after is not None and before is not None and before < after:
            # An inverted window is a mistake (swapped bounds), not a question with no answer.
            raise ValidationError(prefix + "before", "is earlier than after", "a datetime at or after 'after'",
                                  "recall(after=datetime(2026, 1, 1), before=datetime(2026, 2, 1))")
        location = check.short_text(raw.get("location"), prefix + "location", "'lab'")
        types = raw.get("memory_types")
        if types is not None:
            if isinstance(types, str):
                types = [types]
            types = frozenset(check.memory_type(t) for t in types)
        mode = raw.get("mode", "similarity")
        if mode not in RECALL_MODES:
            raise ValidationError(prefix + "mode", f"{mode!r} is not a recall mode", "'similarity', 'spreading' or 'hybrid'", "'hybrid'")
        return _Query(vector, text, k, threshold, after, before, None if location is None else location.casefold(), types, mode)

    def _matches(self, item: Item, query: "_Query") -> bool:
        if query.after is not None and item.created_ns < query.after:
            return False
        if query.before is not None and item.created_ns >= query.before:
            return False
        if query.location is not None and (item.location is None or item.location.casefold() != query.location):
            return False
        if query.types is not None and item.memory_type not in query.types:
            return False
        return True

    def _rank(self, query: "_Query", view: _View, row_scores: np.ndarray | None, now: int,
              shortlist: tuple[np.ndarray, np.ndarray] | None = None) -> List[tuple[float, float, str, Item, str, float | None, float]]:
        """The chosen hits of one query (see _finish) from its row scores, or from the (rows
        ascending, exact scores) the int8 screen kept for a plain top-k query (no other
        row can reach its top k)."""
        candidates: dict[str, float] = {}
        if shortlist is not None:
            # Selecting among the shortlisted rows gives the same rows in the same order as
            # over all n (ascending rows keep the index tie-break), without a pass over n.
            # screen_batch kept only rows alive and inside the time filter in this view.
            rows, scores = shortlist
            sub, values = _core.select_topk(scores, query.k)
            for row, value in zip(rows[sub].tolist(), values.tolist()):
                candidates[view.row_ids[row]] = max(0.0, min(1.0, value))
        elif row_scores is not None and view.n:
            mask = _row_mask(view, query)
            # With a text cue too, take a wider cosine shortlist so the blend can reorder it.
            # Hybrid ranking re-orders a wider shortlist too.
            k_wide = query.k if query.text is None and query.mode != "hybrid" else min(view.n, 4 * query.k + 16)
            extra_filters = query.location is not None or query.types is not None
            while True:
                rows, values = _core.select_topk(row_scores, k_wide, mask)
                candidates = {}
                for row, value in zip(rows.tolist(), values.tolist()):
                    candidates[view.row_ids[row]] = max(0.0, min(1.0, value))
                # Location and type are checked per item: widen the shortlist until
                # enough candidates pass them, or every row has been considered.
                if not extra_filters or k_wide >= view.n:
                    break
                passing = sum(1 for mid in candidates if (it := self._items.get(mid)) is not None and self._matches(it, query))
                if passing >= query.k:
                    break
                k_wide = min(view.n, 4 * k_wide)
        text_scores = self._text_index().scores(query.text) if query.text is not None else None
        hits: List[tuple[float, str, Item]] = []
        if query.vector is None and text_scores is None:
            for item in list(self._items.values()):
                if self._matches(item, query):
                    hits.append((1.0, item.id, item))
            hits.sort(key=lambda h: (-h[2].created_ns, h[1]))
        elif query.vector is None and query.mode == "similarity" and text_scores is not None \
                and (top := self._top_text_hits(query, text_scores)) is not None:
            hits = top
        else:
            ids = set(candidates) if text_scores is None else set(candidates) | set(text_scores)
            for memory_id in ids:
                item = self._items.get(memory_id)
                if item is None or not self._matches(item, query):
                    continue
                if query.vector is not None and text_scores is not None:
                    cosine = candidates.get(memory_id)
                    if cosine is None:
                        cosine = self._cosine_of(item, query.vector)
                    score = (cosine + text_scores.get(memory_id, 0.0)) / 2.0
                elif query.vector is not None:
                    score = candidates[memory_id]
                else:
                    score = text_scores[memory_id]
                hits.append((score, memory_id, item))
            hits.sort(key=lambda h: (-h[0], h[1]))
        return self._finish(query, hits, now)

    def _top_text_hits(self, query: "_Query", text_scores: dict[str, float]) -> List[tuple[float, str, Item]] | None:
        """For a text-only similarity query: the ranked matches _finish can read, without
        ordering every document (a common word matches most of them, often all with the
        same score: sorting them all cost ~2.5 us each).

        Takes the first ``window`` documents of the ranking (score desc, then id): those
        scoring above the window's last score, ordered, then the smallest ids among those
        tied with it. Once k of them pass the filters they are the ranking's first k
        passing entries, all that _finish takes in similarity mode; once the window's
        last score is under the threshold, nothing after it counts either. Otherwise the
        window widens; None (rank them all) once it would hold most documents.
        """
        n = len(text_scores)
        window = 4 * query.k + 16
        if n <= 2 * window:
            return None
        ids = list(text_scores)
        scores = np.fromiter(text_scores.values(), np.float64, n)
        items = self._items
        while window * 2 <= n:
            last = float(np.partition(scores, n - window)[n - window])
            above = np.flatnonzero(scores > last).tolist()
            entries = sorted(((float(scores[i]), ids[i]) for i in above), key=lambda e: (-e[0], e[1]))
            tied = heapq.nsmallest(window - len(above), (ids[i] for i in np.flatnonzero(scores == last).tolist()))
            entries.extend((last, memory_id) for memory_id in tied)
            hits: List[tuple[float, str, Item]] = []
            for score, memory_id in entries:
                item = items.get(memory_id)
                if item is not None and self._matches(item, query):
                    hits.append((score, memory_id, item))
                    if len(hits) == query.k:
                        return hits
            if last < query.threshold:
                return hits
            window *= 4
        return None

    def _finish(self, query: "_Query", ranked: List[tuple[float, str, Item]], now: int) -> List[tuple[float, float, str, Item, str, float | None, float]]:
        """Apply the recall mode to the ranked matches: the chosen hits, before the cognitive
        effects that _with_effects applies (caller holds the lock)."""
        filter_only = query.vector is None and query.text is None
        first_path = "filter" if filter_only else "similarity"
        matched: List[tuple[float, str, Item]] = []
        for entry in ranked:
            if entry[0] >= query.threshold:
                matched.append(entry)
                if query.mode == "similarity" and len(matched) == query.k:
                    break
        # chosen: (base score for confidence, reported score, id, item, path, activation, fan factor)
        chosen: List[tuple[float, float, str, Item, str, float | None, float]] = []
        if query.mode == "similarity":
            for score, memory_id, item in matched:
                chosen.append((score, score, memory_id, item, first_path, None, 1.0))
            return chosen
        seeds = {memory_id: score for score, memory_id, _ in matched[: query.k]}
        use_fan = self.config.has("fan")
        kind = self.config.fan_divisor if use_fan else "none"
        activation, depth = fan_mod.spread(self._graph, seeds, RECALL_SPREAD_HOPS, RECALL_SPREAD_RATE, kind)
        plain: dict[str, float] = {}
        if use_fan and len(activation) > len(seeds):
            plain, _ = fan_mod.spread(self._graph, seeds, RECALL_SPREAD_HOPS, RECALL_SPREAD_RATE, "none")

        def fan_factor(memory_id: str) -> float:
            if depth.get(memory_id, 0) == 0 or memory_id not in plain or plain[memory_id] <= 0.0:
                return 1.0
            return min(1.0, activation[memory_id] / plain[memory_id])

        if query.mode == "spreading":
            reached = []
            for memory_id, value in activation.items():
                node = self._items.get(memory_id)
                if node is None or not self._matches(node, query):
                    continue
                path = first_path if depth[memory_id] == 0 else "spreading"
                reached.append((value, memory_id, node, path))
            reached.sort(key=lambda r: (-r[0], r[1]))
            for value, memory_id, item, path in reached[: query.k]:
                chosen.append((value, value, memory_id, item, path, value, fan_factor(memory_id)))
            return chosen
        assert query.mode == "hybrid"
        similarity = {memory_id: score for score, memory_id, _ in matched}
        blended = []
        for memory_id in sorted(set(similarity) | set(activation)):
            node = self._items.get(memory_id)
            if node is None or not self._matches(node, query):
                continue
            sim = similarity.get(memory_id)
            if sim is None:
                sim = self._cosine_of(node, query.vector) if query.vector is not None else 0.0
            act = activation.get(memory_id, 0.0)
            recency = 0.5 ** (max(0, now - node.created_ns) / HYBRID_RECENCY_HALF_LIFE_NS)
            blend = (HYBRID_WEIGHTS["similarity"] * sim + HYBRID_WEIGHTS["activation"] * act
                     + HYBRID_WEIGHTS["confidence"] * node.confidence * self._retention(node, now)
                     + HYBRID_WEIGHTS["recency"] * recency)
            spread_reached = depth.get(memory_id, 0) > 0
            if memory_id in similarity:
                path = "similarity+spreading" if spread_reached else first_path
            else:
                path = "spreading"
            blended.append((min(1.0, blend), memory_id, node, path, max(sim, act), act if memory_id in activation else None))
        blended.sort(key=lambda b: (-b[0], b[1]))
        for blend, memory_id, item, path, base, act_value in blended[: query.k]:
            chosen.append((base, blend, memory_id, item, path, act_value, fan_factor(memory_id)))
        return chosen

    def _with_effects(self, chosen: List[tuple[float, float, str, Item, str, float | None, float]], now: int) -> List[Hit]:
        """Hits with every enabled effect applied and listed (caller holds the lock)."""
        config = self.config
        semantic = np.zeros(len(chosen))
        if config.has("priming") and chosen:
            self._priming.prune(now)
            semantic = self._semantic_priming(chosen, now)
        interference = self._interference.factors([c[3] for c in chosen], self._rows()) if config.has("interference") else {}
        out = []
        for index, (base, score, memory_id, item, path, activation, fan_factor) in enumerate(chosen):
            effects: List[tuple[str, float]] = []
            retention = self._retention(item, now)
            if item.stability != 1.0 and config.has("spacing"):
                unspaced = decay_mod.retention(item.decay or config.decay, now - item.last_access_ns, item.access_count)
                if retention != unspaced:
                    effects.append(("spacing", retention / unspaced))
            confidence = item.confidence * retention * base
            if fan_factor != 1.0:
                effects.append(("fan", fan_factor))  # already inside the activation used as base
            if config.has("priming"):
                factor = self._priming.factor(memory_id, now, item.access_count, float(semantic[index]))
                if factor != 1.0:
                    effects.append(("priming", factor))
                    confidence *= factor
            if memory_id in interference:
                proactive, retroactive = interference[memory_id]
                if proactive != 1.0:
                    effects.append(("proactive_interference", proactive))
                    confidence *= proactive
                if retroactive != 1.0:
                    effects.append(("retroactive_interference", retroactive))
                    confidence *= retroactive
            confidence = min(1.0, max(0.0, confidence))
            estimate = fan_mod.estimated_retrieval_ms(self._graph.fan(memory_id)) if config.has("fan") else None
            out.append(Hit(memory_id, score, confidence, retention, self._memory(item), path, tuple(effects), activation, estimate))
        return out

    def _semantic_priming(self, chosen: List[tuple[float, float, str, Item, str, float | None, float]], now: int) -> np.ndarray:
        """Semantic priming of the chosen hits by the memories recalled in the last seconds (cognition.priming)."""
        sources = [(t0, m, it.row) for t0, m in self._priming.active_sources(now) if (it := self._items.get(m)) is not None and it.row >= 0]
        embedded = [i for i, c in enumerate(chosen) if c[3].row >= 0]
        out = np.zeros(len(chosen))
        if not sources or not embedded:
            return out
        source_rows = np.array([row for _, _, row in sources], np.int64)
        hit_rows = np.array([chosen[i][3].row for i in embedded], np.int64)
        hits = np.ascontiguousarray(self._matrix[hit_rows])
        hit_inv = np.ascontiguousarray(self._inv_norms[hit_rows])
        # The deterministic cosine kernel: (hits x sources), then (hits x hits) only when some
        # source reaches some hit: otherwise nothing primes (hop 1 is zero, so is the relay).
        to_sources = _core.cosine_scores(np.ascontiguousarray(self._matrix[source_rows]), np.ascontiguousarray(self._inv_norms[source_rows]), hits, hit_inv)
        # A source never primes itself (semantic_sums skips it); leaving its cosine of 1 in
        # this test sent nearly every recall of a recurring memory down the slow path.
        reaching = (to_sources >= priming_mod.SEMANTIC_COSINE_MIN) & (hit_rows[:, None] != source_rows[None, :])
        if not reaching.any():
            return out
        between = _core.cosine_scores(hits, hit_inv, hits, hit_inv)
        out[embedded] = priming_mod.semantic_sums([chosen[i][2] for i in embedded], [(t0, m) for t0, m, _ in sources],
                                                  to_sources.astype(np.float64), between.astype(np.float64), now)
        return out

    def _rows(self) -> Rows:
        """The live row arrays, for the interference cache (caller holds the lock)."""
        return Rows(self._n, self._matrix, self._inv_norms, self._alive, self._created, self._codes, self._scales)

    def query(self, text: str) -> Any:
        """Run one statement of the query language (engram.memory.query) and return its QueryResult.

        ``RECALL "text" | [vector] | id [MODE m] [WHERE ...] [LIMIT n]``, ``SPREAD FROM id ...``,
        ``CONSOLIDATE``. Raises QueryError (a ValidationError, with position and a
        suggestion) for a query that does not parse, and what recall, spread and
        consolidate raise.
        """
        from engram.memory import query as query_mod  # the language sits above the engine's core

        return query_mod.execute(self, query_mod.parse(text))

    # ------------------------------------------------------------------
    # reconsolidation

    def reconsolidate(
        self,
        memory_id: str,
        *,
        content: str | None = None,
        embedding: Any = None,
        confidence: float | None = None,
        tags: Iterable[str] | None = None,
    ) -> Memory:
        """Change a memory inside its reconsolidation window; return the new version.

        The memory must have been recalled 1 h to 6 h ago and be 24 h to 365 days
        old (engram.memory.cognition.reconsolidation). ``confidence`` and
        ``embedding`` move towards the given values by the plasticity at this moment
        (an inverted U over the window, at most 0.5); ``content`` and ``tags`` are
        replaced. The previous version is kept (see ``history``). One WAL record.
        Raises ValidationError (bad value, or the effect is off in this space),
        UnknownIdError, ReconsolidationWindowError (outside the window: says why and
        when it opens).
        """
        check.memory_id(memory_id)
        if not self.config.has("reconsolidation"):
            raise ValidationError("effects", "reconsolidation is switched off in this space", "a space whose effects include 'reconsolidation'",
                                  f"db.space({self.id!r}, effects=('reconsolidation', ...))")
        text = None if content is None else check.content(content)
        vector = None if embedding is None else check.embedding(embedding, self.config.dimension)
        target = None if confidence is None else check.unit_float(confidence, "confidence", "0.9")
        new_tags = None if tags is None else check.tags(tags, "tags")
        if text is None and vector is None and target is None and new_tags is None:
            raise ValidationError("reconsolidate", "nothing to change", "at least one of content, embedding, confidence, tags",
                                  "sp.reconsolidate(id, confidence=0.9)")

        def build() -> tuple[List[tuple[int, bytes]], Memory]:
            item = self._items.get(memory_id)
            if item is None:
                raise UnknownIdError("id", memory_id, self.id)
            now = self._now_ns()
            last_recall = item.last_access_ns if item.access_count > 0 else None
            window = reconsolidation_mod.window(now, item.created_ns, last_recall)
            if not window.open:
                raise ReconsolidationWindowError(memory_id, window.reason, None if window.opens_ns is None else ns_to_datetime(window.opens_ns))
            p = window.plasticity
            previous_embedding = None if item.row < 0 else self._matrix[item.row].copy()
            new_embedding = previous_embedding
            if vector is not None:
                if previous_embedding is None:
                    new_embedding = vector  # nothing to blend from: the given vector as is
                else:
                    new_embedding = (previous_embedding + np.float32(p) * (vector - previous_embedding)).astype(np.float32)
            new = dataclasses.replace(
                item,
                content=item.content if text is None else text,
                confidence=item.confidence if target is None else min(1.0, max(0.0, reconsolidation_mod.blend(item.confidence, target, p))),
                tags=item.tags if new_tags is None else new_tags,
                metadata=dict(item.metadata),
                row=-1,
            )
            payload = rec.encode_reconsolidate(now, p, new, new_embedding, item, previous_embedding)
            previous_fields = rec.item_fields(item)
            self._apply_reconsolidate(now, p, new, new_embedding, previous_fields,
                                      None if previous_embedding is None else previous_embedding.astype("<f4").tobytes())
            return [(rec.RECONSOLIDATE, payload)], self._memory(self._items[memory_id])

        return self._commit(build)  # type: ignore[no-any-return]

    def _apply_reconsolidate(self, at: int, plasticity: float, item: Item, embedding: np.ndarray | None,
                             previous_fields: List[Any], previous_embedding: bytes | None) -> None:
        keys = None if embedding is None else self._dedup.keys_for(embedding.reshape(1, -1))[0].tolist()
        self._apply_remember(item, embedding, keys, None)
        # A new list, not an append: a checkpoint may hold the old one (see _capture).
        self._history[item.id] = self._history.get(item.id, []) + [(at, plasticity, list(previous_fields), previous_embedding)]

    def history(self, memory_id: str) -> List[MemoryVersion]:
        """Earlier versions of a memory replaced by reconsolidation, oldest first."""
        check.memory_id(memory_id)
        with self._lock:
            self._check_open()
            out = []
            for at, plasticity, fields, raw in self._history.get(memory_id, []):
                item = rec.item_from_fields(fields)
                memory = self._memory(item)
                embedding = None if raw is None else np.frombuffer(raw, dtype="<f4").astype(np.float32)
                out.append(MemoryVersion(ns_to_datetime(at), plasticity, dataclasses.replace(memory, embedding=embedding)))
            return out

    def _cosine_of(self, item: Item, vector: np.ndarray) -> float:
        if item.row < 0:
            return 0.0
        row = np.ascontiguousarray(self._matrix[item.row : item.row + 1])
        value = float(_core.cosine_scores(row, self._inv_norms[item.row : item.row + 1], vector.reshape(1, -1))[0, 0])
        return max(0.0, min(1.0, value))

    def _touch(self, ids: List[str], now: int) -> None:
        """Count a retrieval: persisted with the next write, checkpoint or close (not fsync'd on its own)."""
        if not ids:
            return
        spacing = self.config.has("spacing")
        with self._lock:
            saved = self._saved_touches
            for memory_id in ids:
                item = self._items.get(memory_id)
                if item is not None:
                    if saved is not None and id(item) not in saved:  # a checkpoint still reads the item
                        saved[id(item)] = (item.last_access_ns, item.access_count, item.stability)
                    if spacing:
                        item.stability = spacing_mod.after_recall(item.stability, self._retention(item, now))
                    item.access_count += 1
                    item.last_access_ns = max(item.last_access_ns, now)
                    self._pending_touches[memory_id] = None

    def spread(self, seeds: Iterable[str], max_hops: int = 4, decay: float = 0.7, threshold: float | None = None) -> dict[str, float]:
        """Spreading activation from ``seeds`` (activation 1.0); see engram.memory.graph.
        ``max_hops=0`` spreads nowhere: the seeds alone, each at 1.0 (depth 0 of the formula)."""
        if isinstance(seeds, str):
            seeds = [seeds]
        seed_list = [check.memory_id(s, "seeds") for s in seeds]
        hops = check.positive_int(max_hops, "max_hops", "4", maximum=HOPS_MAX, minimum=0)  # 0: the seeds alone
        # NumPy scalars count as numbers, as in every other numeric argument (check.unit_float).
        if isinstance(decay, bool) or not isinstance(decay, (int, float, np.integer, np.floating)) or not 0.0 <= float(decay) <= 10.0:
            raise ValidationError("decay", f"{decay!r} is not allowed", "a rate from 0 to 10 (e^(-rate x depth))", "0.7")
        if threshold is not None:
            threshold = check.unit_float(threshold, "threshold", "0.05")
        with self._lock:
            self._check_open()
            for seed in seed_list:
                if seed not in self._items:
                    raise UnknownIdError("seeds", seed, self.id)
            return self._graph.spread(seed_list, hops, float(decay), threshold)

    def associations(self, memory_id: str) -> dict[str, float]:
        """The memories linked to ``memory_id``, with their weights, by id ({} for an unknown id)."""
        check.memory_id(memory_id)
        with self._lock:
            self._check_open()  # as every other read: a closed space's state is no longer the database's
            neighbours = self._graph.neighbours(memory_id)
            return {other: neighbours[other] for other in sorted(neighbours)}

    def unused(self) -> bool:
        """Whether nothing was ever logged here. LSNs carry on across checkpoints (replay
        starts from the snapshot's), so the last one is 0 only for a space never written."""
        with self._lock:
            return self._wal.last_lsn == 0

    def stats(self) -> dict[str, Any]:
        with self._lock:
            episodes = sum(1 for it in self._items.values() if it.memory_type == "episodic")
            return {
                "space": self.id,
                "memories": len(self._items) - episodes,
                "episodes": episodes,
                "associations": len(self._graph),
                "rows": self._n,
                "dead_rows": self._dead,
                "evicted": self.evicted,
                "deduplicated": self.deduplicated,
                "last_lsn": self._wal.last_lsn,
                "checkpoint_lsn": self._checkpoint_lsn,
                "wal_bytes": self._wal.size_bytes(),
                "fsyncs": self._wal.fsync_count,
                "torn_tail_bytes": self.recovery.torn_tail_bytes,
                "skipped_covered_bytes": self.recovery.skipped_bytes,
                "durability": self.config.durability,
            }

    # ------------------------------------------------------------------
    # consolidation

    def consolidate(self, max_episodes: int = 5000, should_stop: Callable[[], bool] | None = None) -> List[Pattern]:
        """Distil recurring episodes into semantic patterns and store them; return the patterns.

        Clusters the newest ``max_episodes`` embedded episodes (see
        engram.memory.consolidation for the exact, deterministic rules) on a snapshot
        taken under the lock, so writers are blocked only while it is copied. Each
        pattern is stored as a semantic memory whose id is the pattern id, whose
        ``sources`` cite its episodes and whose confidence is its strength; patterns
        of an earlier run that no longer appear are forgotten (reason "superseded").
        Running it again on unchanged episodes writes nothing. ``should_stop`` is
        asked after clustering: if it answers True nothing is written and
        ConsolidationCancelled is raised (the scheduler's cancellation point).
        """
        limit = check.positive_int(max_episodes, "max_episodes", "5000", maximum=1_000_000)
        started = time.perf_counter()
        with self._lock:
            self._check_open()
            episodes = [it for it in self._items.values() if it.memory_type == "episodic" and it.row >= 0]
            ids = [it.id for it in episodes]
            whens = [it.created_ns for it in episodes]
            rows = np.array([it.row for it in episodes], np.int64)
            matrix = self._matrix[rows] if len(rows) else np.zeros((0, self.config.dimension), np.float32)
            previews = {it.id: it.content for it in episodes}
        patterns = consolidation.consolidate(ids, matrix, whens, max_episodes=limit) if len(ids) else []
        if should_stop is not None and should_stop():
            raise ConsolidationCancelled(f"consolidation of space {self.id!r} was cancelled before writing")

        def build() -> tuple[List[tuple[int, bytes]], int]:
            entries: List[tuple[int, bytes]] = []
            wanted = {p.id for p in patterns}
            for old in sorted(it.id for it in self._items.values() if it.metadata.get("kind") == "pattern"):
                if old not in wanted:
                    self._apply_forget(old)
                    entries.append((rec.FORGET, rec.encode_forget(old, "superseded")))
            for pattern in patterns:
                existing = self._items.get(pattern.id)
                if existing is not None and existing.row >= 0 and existing.sources == pattern.source_ids and \
                        self._matrix[existing.row].tobytes() == pattern.embedding.tobytes():
                    continue
                first = previews.get(pattern.source_ids[0], "")
                item = Item(
                    id=pattern.id,
                    content=f"Pattern of {len(pattern.source_ids)} episodes: {first[:200]}",
                    confidence=min(1.0, max(0.0, float(pattern.strength))),
                    created_ns=pattern.last_seen_ns,
                    last_access_ns=pattern.last_seen_ns,
                    memory_type="semantic",
                    sources=pattern.source_ids,
                    metadata={"kind": "pattern", "strength": float(pattern.strength),
                              "first_seen_ns": pattern.first_seen_ns, "last_seen_ns": pattern.last_seen_ns},
                )
                vector = np.ascontiguousarray(pattern.embedding, np.float32)
                keys = self._dedup.keys_for(vector.reshape(1, -1))[0].tolist()
                self._apply_remember(item, vector, keys, None)
                entries.append((rec.REMEMBER, rec.encode_remember(item, vector, None)))
            return entries, len(entries)

        written = self._commit(build)
        self.last_consolidation = {
            "generated_ns": self._now_ns(),
            "episodes": len(ids),
            "patterns": len(patterns),
            "records_written": written,
            "duration_s": time.perf_counter() - started,
        }
        return patterns

    def patterns(self) -> List[Memory]:
        """Stored consolidation patterns, sorted by id."""
        with self._lock:
            self._check_open()
            found = sorted((it for it in self._items.values() if it.metadata.get("kind") == "pattern"), key=lambda it: it.id)
            return [self._memory(it) for it in found]

    # ------------------------------------------------------------------
    # checkpoints and closing

    def _checkpoint_due(self, floor: int | None = None, snapshot_share: int = 1) -> bool:
        """Whether the log since the last checkpoint is worth folding into a snapshot.

        Replaying the log at open costs far more per memory than reading a snapshot
        (measured here: 100k memories from 310 MB of log took 10 s, from a snapshot
        0.5 s), so the log may grow to the last snapshot's size (at least ``floor``, at
        most checkpoint_wal_bytes): a reopen after a crash replays at most about the
        space's own size, and snapshots add at most as many bytes as the log they fold
        (a quarter of the size, tried first, rewrote up to four times as much). A clean close
        folds a longer log than an eighth of the snapshot (see close), so a clean reopen
        replays little. ``snapshot_share``: the log allowed, as the snapshot's size
        divided by it.
        """
        floor = CHECKPOINT_WAL_MIN if floor is None else floor
        since = self._wal.bytes_written - self._wal_bytes_at_checkpoint
        return since > min(self.config.checkpoint_wal_bytes, max(floor, self._snapshot_bytes // snapshot_share))

    def _checkpoint_soon(self) -> None:
        """Checkpoint on a background thread, one at a time: the writer that crossed the
        threshold returns at once instead of waiting for the snapshot to be written and
        fsync'd (measured here: bulk batches of 1,000 took 0.3-0.5 s instead of 30 ms when
        their writer did it). Writers and readers still wait while the state is copied
        under the locks. A failed checkpoint loses nothing (the log holds every write);
        it is logged, and the next write that finds one due tries again."""
        with self._checkpointer_lock:
            if self._checkpointer is not None and self._checkpointer.is_alive():
                return
            self._checkpointer = threading.Thread(target=self._checkpoint_in_background, name=f"checkpoint:{self.id}", daemon=True)
            self._checkpointer.start()

    def _checkpoint_in_background(self) -> None:
        try:
            self.checkpoint()
        except ClosedError:
            pass
        except Exception:  # the log still holds every write; the next write retries
            logging.getLogger("engram.space").exception("space %s: background checkpoint failed", self.id)

    def wait_for_checkpoint(self) -> None:
        """Wait for a background checkpoint in progress, if any (close does)."""
        with self._checkpointer_lock:
            checkpointer = self._checkpointer
        if checkpointer is not None:
            checkpointer.join()

    def checkpoint(self) -> int:
        """Write a snapshot of the whole space and drop the WAL segments it covers; return its LSN.

        Under the locks it only captures the state (see _capture: references, a copy of
        the tombstones, the list of items), so writers and readers wait about as long
        for a space of 100k memories as for one of 1k; the snapshot is built and written
        after, while they run. Touches in the meantime save the values they overwrite
        (see _touch), so the snapshot is exactly the state at its LSN.
        """
        with self._checkpoint_lock:
            # The rotation below syncs the segment under the locks: sync most of it first.
            self._wal.sync()
            with self._write_lock, self._lock:
                self._check_open()
                pending = self._pending_entries()
                if pending:
                    self._wal.append(pending, self._now_ns())
                capture = self._capture()
                self._saved_touches = capture.saved
                self._wal.rotate()
                self._wal_bytes_at_checkpoint = self._wal.bytes_written
            lsn = capture.lsn
            try:
                self._wal.sync()
                if lsn == self._checkpoint_lsn and snapshot.latest(self.directory) is not None:
                    return lsn
                meta, embeddings = self._snapshot_state(capture)
            finally:
                with self._lock:
                    self._saved_touches = None
            path = snapshot.write(self.directory, lsn, meta, embeddings)
            self._snapshot_bytes = path.stat().st_size
            snapshot.remove_older(self.directory, path)
            self._wal.drop_through(lsn)
            self._checkpoint_lsn = lsn
            return lsn

    def _capture(self) -> "_Capture":
        """The state at the last LSN, in time that hardly grows with the space (caller holds
        both locks): the arrays' rows below n never change but for tombstones (new rows go
        past n, growth and compaction make new arrays), so references and a copy of the
        tombstones keep them; row ids are only appended to; items are replaced, never
        changed, except by touches (which save what they overwrite into ``saved``); the
        history's lists are replaced, never appended to (see _apply_reconsolidate)."""
        n = self._n
        return _Capture(
            lsn=self._wal.last_lsn, n=n, items=list(self._items.values()), alive=self._alive[:n].copy(),
            row_ids=self._row_ids, matrix=self._matrix, inv_norms=self._inv_norms, created=self._created,
            episodic=self._episodic, lsh_keys=self._lsh_keys, codes=self._codes, scales=self._scales,
            graph=self._graph.copy(), history=dict(self._history), evicted=self.evicted,
            deduplicated=self.deduplicated, saved={},
        )

    def _snapshot_state(self, capture: "_Capture") -> tuple[dict[str, Any], snapshot.Rows]:
        """A checkpoint's metadata and embeddings from a capture, without the locks. Items
        are ordered by id, so the bytes depend on the state only."""
        # Sorted in runs, then merged, and the row map built in parts: one sorted() or
        # dict() of 100k holds the GIL for 30-50 ms, every thread of the process stalled.
        step = SNAPSHOT_RUN_ITEMS
        items = capture.items
        runs = [sorted(items[start : start + step], key=_item_id) for start in range(0, len(items), step)]
        ordered = runs[0] if len(runs) == 1 else list(heapq.merge(*runs, key=_item_id))
        live = np.flatnonzero(capture.alive).tolist()
        row_ids = capture.row_ids
        row_of: dict[str, int] = {}
        for start in range(0, len(live), step):
            part = live[start : start + step]
            row_of.update(zip([row_ids[r] for r in part], part))
        embedded = [it.id for it in ordered if it.id in row_of]
        rows = np.array([row_of[mid] for mid in embedded], np.int64)
        # The large arrays as Rows: written a chunk at a time, never gathered whole.
        embeddings = snapshot.Rows(capture.matrix, rows, "<f4")
        saved = capture.saved
        # Packed as read: bytes are not containers the cyclic GC tracks (100k tuples kept
        # until the end made it rescan the heap, tripling the time).
        pack = rec.fields_packer()
        packed: List[bytes] = []
        for item in ordered:
            # Without the lock: a touch saves an item's values before it changes them, so
            # when ``saved`` has no entry *after* the item was read, what was read is its
            # value at the capture (and with one, the entry is). A lock held per chunk of
            # items instead was held up to 0.2 s whenever the GIL went elsewhere.
            values = rec.item_fields_packed(item)
            before = saved.get(id(item))
            if before is not None:
                last, count, stability = before
                values = values[:4] + (last, count) + values[6:17] + (stability,)
            packed.append(pack(values))
        fields = snapshot.PackedArray(len(packed), b"".join(packed))
        meta = {
            "version": 1,
            "items": fields,
            "embedded": embedded,
            "dedup_keys": snapshot.Rows(capture.lsh_keys, rows, "<i8"),
            "dedup_scheme": DEDUP_SCHEME,
            "inv_norms": capture.inv_norms[rows].astype("<f4").tobytes(),
            "created": capture.created[rows].astype("<i8").tobytes(),
            "episodic": capture.episodic[rows].tobytes(),
            # int8 codes are derived data, stored so that reopening does not recompute them.
            "codes": snapshot.Rows(capture.codes, rows, "i1"),
            "scales": capture.scales[rows].astype("<f4").tobytes(),
            "edges": [list(edge) for edge in capture.graph.edges()],
            "evicted": capture.evicted,
            "deduplicated": capture.deduplicated,
            "history": {mid: [list(v) for v in capture.history[mid]] for mid in sorted(capture.history)},
        }
        return meta, embeddings

    def _load_snapshot(self, snap: snapshot.Snapshot, reserve: int = 0) -> None:
        """Load a checkpoint into an empty space, with room for ``reserve`` more rows."""
        meta = snap.meta
        items = [rec.item_from_fields(values) for values in meta["items"]]
        by_id = {item.id: item for item in items}
        embedded = meta["embedded"]
        keys = np.frombuffer(meta["dedup_keys"], dtype="<i8").reshape(len(embedded), -1) if embedded else None
        n = len(embedded)
        rows = n + reserve
        self._grow(max(1024, rows + rows // 4))
        if n:
            self._matrix[:n] = snap.embeddings
            self._inv_norms[:n] = np.frombuffer(meta["inv_norms"], dtype="<f4")
            self._alive[:n] = True
            self._lsh_keys[:n] = keys
            if "codes" in meta:
                self._codes[:n] = np.frombuffer(meta["codes"], dtype=np.int8).reshape(n, self.config.dimension)
                self._scales[:n] = np.frombuffer(meta["scales"], dtype="<f4")
            else:  # a checkpoint written before codes were stored
                self._codes[:n], self._scales[:n] = _core.quantize_rows(self._matrix[:n])
            if meta.get("dedup_scheme", 1) != DEDUP_SCHEME:
                # Keys of an older key function: recompute them, or old and new rows would never meet.
                self._lsh_keys[:n] = self._dedup.keys_for_codes(self._codes[:n])
            self._created[:n] = np.frombuffer(meta["created"], dtype="<i8")
            self._episodic[:n] = np.frombuffer(meta["episodic"], dtype=np.bool_)
        for row, memory_id in enumerate(embedded):
            by_id[memory_id].row = row
        self._dedup.rebuild(self._lsh_keys[:n])
        self._row_ids = list(embedded)
        self._n = n
        for item in items:
            self._items[item.id] = item
        for a, b, weight in meta["edges"]:
            self._graph.associate(a, b, weight)
        self.evicted = meta.get("evicted", 0)
        self.deduplicated = meta.get("deduplicated", 0)
        for memory_id, versions in meta.get("history", {}).items():
            self._history[memory_id] = [(int(at), float(p), fields, emb) for at, p, fields, emb in versions]

    def close(self) -> None:
        """Flush and release the space; first fold the log into a snapshot when it is longer
        than an eighth of the last one (at least 8 MiB), so that the next open replays
        little of it (see _checkpoint_due)."""
        self.wait_for_checkpoint()
        if not self._closed and self._failed is None and self._checkpoint_due(CHECKPOINT_AT_CLOSE_MIN, snapshot_share=8):
            try:
                self.checkpoint()
            except ClosedError:
                return
            except Exception:
                # Only a shorter replay is lost (the log holds every write): the space must
                # still close, or it stays writable after the database released its lock.
                logging.getLogger("engram.space").exception("space %s: checkpoint at close failed", self.id)
        with self._write_lock, self._lock:
            if self._closed:
                return
            pending = self._pending_entries() if self._failed is None else []
            if pending:
                self._wal.append(pending, self._now_ns())
            self._closed = True
        self._wal.close()


# Records whose replay neither reads nor appends rows: they need not wait for _ReplayRows.
_REPLAY_WITHOUT_ROWS = (rec.FORGET, rec.ASSOCIATE, rec.TOUCH, rec.DEDUPLICATED)


class _ReplayRows:
    """The array side of replaying REMEMBER records (see Space._load).

    Replayed records take rows n, n + 1, ... in log order whatever else they do (a
    replaced or forgotten row is only tombstoned, in ``alive``, at once), so their
    rows are written in batches: one slice assignment per array and one kernel call
    for norms, codes and dedup keys (each row's values do not depend on the batch).
    Worker threads write batches i and i + 1 (the kernel and NumPy's copies release
    the GIL; their time, page faults of the fresh arrays included, is about the
    caller's for decoding) while the caller decodes batch i + 2; dedup keys are
    indexed in batch order when a batch is collected. The state equals applying the
    records one by one with _apply_record.
    """

    def __init__(self, space: Space) -> None:
        self._space = space
        self._start = 0  # first row of the batch being filled
        self._raws: List[bytes] = []
        self._items: List[Item] = []
        self._running: List[tuple[Any, int, int]] = []  # (future, first row, stop), oldest first
        self._pool: ThreadPoolExecutor | None = None

    def pending(self) -> int:
        return len(self._raws)

    def add(self, item: Item, raw: bytes) -> None:
        """Queue the row of ``item``, which takes the space's next row (n)."""
        if not self._raws:
            self._start = self._space._n  # rows may have been appended without us (reconsolidation)
        self._raws.append(raw)
        self._items.append(item)

    def submit(self) -> None:
        """Start writing the filled batch (once a worker is free)."""
        if not self._raws:
            return
        if len(self._running) >= REPLAY_WORKERS:
            self._collect()
        start = self._start
        stop = start + len(self._raws)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=REPLAY_WORKERS, thread_name_prefix="replay-rows")
        future = self._pool.submit(self._write, start, stop, self._raws, self._items)
        self._running.append((future, start, stop))
        self._raws = []
        self._items = []

    def finish(self) -> None:
        """Write every row added so far and index it."""
        self.submit()
        while self._running:
            self._collect()

    def _collect(self) -> None:
        """Index the oldest running batch once written."""
        future, start, stop = self._running.pop(0)
        keys = future.result()
        space = self._space
        space._dedup.add_rows(np.arange(start, stop, dtype=np.int64), keys)
        if space._dedup.needs_rebuild(stop):
            space._dedup.rebuild(space._lsh_keys[:stop])

    def _write(self, start: int, stop: int, raws: List[bytes], items: List[Item]) -> np.ndarray:
        space = self._space
        rows = space._matrix[start:stop]
        rows[:] = np.frombuffer(b"".join(raws), dtype="<f4").reshape(stop - start, space.config.dimension)
        inv_norms, codes, scales, keys = space._dedup.prepare(rows)
        space._inv_norms[start:stop] = inv_norms
        space._codes[start:stop] = codes
        space._scales[start:stop] = scales
        space._lsh_keys[start:stop] = keys
        space._created[start:stop] = [item.created_ns for item in items]
        space._episodic[start:stop] = [item.memory_type == "episodic" for item in items]
        return keys

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


@dataclass(frozen=True, kw_only=True, slots=True)
class _Capture:
    """What a checkpoint keeps of the state at its LSN (see Space._capture)."""

    lsn: int
    n: int
    items: List[Item]
    alive: np.ndarray  # a copy: tombstones change rows in place
    row_ids: List[str]  # appended to after, read below n only
    matrix: np.ndarray
    inv_norms: np.ndarray
    created: np.ndarray
    episodic: np.ndarray
    lsh_keys: np.ndarray
    codes: np.ndarray
    scales: np.ndarray
    graph: AssociationGraph
    history: dict[str, List[tuple[int, float, List[Any], bytes | None]]]
    evicted: int
    deduplicated: int
    # id(item) -> (last_access_ns, access_count, stability) before a touch since the capture.
    saved: dict[int, tuple[int, int, float]]


def _item_id(item: Item) -> str:
    return item.id


class _StoreRequest:
    """One caller's items on their way through the group commit (see Space._store)."""

    __slots__ = ("prepared", "stacked", "ids", "dedup", "error")

    def __init__(self, prepared: List[tuple[Item, np.ndarray | None]], stacked: np.ndarray | None = None) -> None:
        self.prepared = prepared
        self.stacked = stacked  # every item's embedding as one matrix's rows, or None
        self.ids: List[str] | None = None
        self.dedup: dict[int, str] = {}  # index in prepared -> "merged" or "kept"
        self.error: BaseException | None = None


class _Generation:
    """The store requests that one leader commits together, and how its followers sleep.

    Followers block reading a semaphore eventfd; the leader writes their count once,
    and the kernel wakes them all in that one call. Without eventfd (not Linux), a
    threading.Semaphore does the same job with one release per follower.
    """

    __slots__ = ("requests", "_followers", "_fd", "_semaphore")

    def __init__(self) -> None:
        self.requests: List[_StoreRequest] = []
        self._followers = 0
        self._fd = -1
        self._semaphore: threading.Semaphore | None = None

    def add_follower(self) -> None:
        """Called under the queue lock before the follower appends its request."""
        if self._followers == 0:
            if _EVENTFD:
                self._fd = os.eventfd(0, os.EFD_SEMAPHORE | os.EFD_CLOEXEC)
            else:
                self._semaphore = threading.Semaphore(0)
        self._followers += 1

    def wait(self) -> None:
        if self._fd >= 0:
            os.eventfd_read(self._fd)
        else:
            assert self._semaphore is not None
            self._semaphore.acquire()

    def wake(self) -> None:
        if self._followers == 0:
            return
        if self._fd >= 0:
            os.eventfd_write(self._fd, self._followers)
        else:
            assert self._semaphore is not None
            self._semaphore.release(self._followers)

    def __del__(self) -> None:
        # The last reference goes when the last follower has read its wake-up.
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


# Ids' random bits come from a generator of our own, seeded from the OS and reseeded in
# a forked child: an application calling random.seed() must never make two processes
# (or two runs) draw the same ids. Not os.urandom per id: that call releases the GIL,
# a context switch per store with many writer threads.
_id_random = random.Random()
os.register_at_fork(after_in_child=_id_random.seed)
_random_bits = _id_random.getrandbits
_EVENTFD = hasattr(os, "eventfd") and hasattr(os, "EFD_SEMAPHORE")


class _StorePlan:
    """What storing a batch does, decided without changing the space (the caller holds the write lock).

    Items are decided in order, each against the stored state as the batch's
    earlier items leave it (an overlay: ids and rows they removed, items they
    added), which gives the decisions, records and ids of storing them one by one.
    The arithmetic is batched: one norm, quantisation and LSH pass over the new
    vectors, one candidate lookup and one pair-cosine call against stored rows, one
    for pairs inside the batch that share a key. Produces WAL ``entries``, the
    ``actions`` to apply once durable, the ``ids`` to answer and the dedup count.
    """

    __slots__ = ("entries", "actions", "ids", "dedup", "deduplicated", "vector_items", "stacked", "inv_norms", "codes",
                 "scales", "keys", "simple")

    def __init__(self, space: Space, prepared: List[tuple[Item, np.ndarray | None]],
                 given: np.ndarray | None = None) -> None:
        """``given``: every item's embedding as the rows of one C-contiguous matrix, in order."""
        self.entries: List[tuple[int, bytes]] = []
        # (_FORGET, id) or (_REMEMBER, item, vector, merged into a duplicate's id, vector index or -1), in order.
        self.actions: List[tuple[Any, ...]] = []
        self.ids: List[str] = []
        self.dedup: dict[int, str] = {}  # item index -> "merged" or "kept", for the items dedup decided
        self.deduplicated = 0
        offsets: List[int] = []  # per item: its vector's index in the batch, -1 without one
        vectors: List[np.ndarray] = []
        vector_items: List[Item] = []
        for item, vector in prepared:
            if vector is None:
                offsets.append(-1)
            else:
                offsets.append(len(vectors))
                vectors.append(vector)
                vector_items.append(item)
        threshold = None if space.config.dedup_threshold is None else _reachable(space.config.dedup_threshold)
        state_passing: dict[int, List[tuple[float, int]]] = {}
        batch_passing: dict[int, List[tuple[float, int]]] = {}
        self.vector_items = vector_items
        if vectors:
            # The validator's vectors are C-contiguous: one needs no copy.
            if given is not None and len(vectors) == len(prepared):
                stacked = given
            else:
                stacked = vectors[0].reshape(1, -1) if len(vectors) == 1 else _core.stack_rows_f32(vectors, space.config.dimension)
            inv_norms, codes, scales, keys = space._dedup.prepare(stacked)
            self.stacked, self.inv_norms, self.codes, self.scales, self.keys = stacked, inv_norms, codes, scales, keys
            if threshold is not None:
                eligible = np.array([item.memory_type != "episodic" and not item.sources for item in vector_items], np.bool_)
                state_passing = _state_matches(space, keys, stacked, inv_norms, codes, scales, eligible, threshold)
                batch_passing = _batch_matches(keys, stacked, inv_norms, eligible, threshold)

        items = space._items
        capacity = space.config.capacity
        entries = self.entries
        actions = self.actions
        ids = self.ids
        batch_ids = [item.id for item, _ in prepared]
        # The usual batch: no dedup candidate passed, room for every item, new distinct
        # ids. Then each item is simply stored, in order, which is what the loop below
        # decides for it too; only the bookkeeping is skipped.
        self.simple = not state_passing and not batch_passing \
            and (capacity is None or len(items) + len(prepared) <= capacity) \
            and items.keys().isdisjoint(batch_ids) and len(set(batch_ids)) == len(batch_ids)
        if self.simple:
            remember = rec.REMEMBER
            encode = rec.encode_remember
            for index, (item, vector) in enumerate(prepared):
                actions.append((_REMEMBER, item, vector, False, offsets[index]))
                entries.append((remember, encode(item, vector, None)))
            ids.extend(batch_ids)
            return
        removed: set[str] = set()  # stored ids this batch removes
        dead_rows: set[int] = set()  # their rows
        live: dict[str, int] = {}  # id -> index in prepared of the batch item holding it now
        applied = [False] * len(vectors)  # batch vectors stored and not removed since
        count = len(items)

        def kill(memory_id: str) -> None:
            nonlocal count
            index = live.pop(memory_id, None)
            if index is not None:
                if offsets[index] >= 0:
                    applied[offsets[index]] = False
                count -= 1
                return
            stored = items.get(memory_id)
            if stored is not None and memory_id not in removed:
                removed.add(memory_id)
                if stored.row >= 0:
                    dead_rows.add(stored.row)
                count -= 1

        for index, (item, vector) in enumerate(prepared):
            v = offsets[index]
            memory_id = item.id
            # Whether the id is stored now (as the batch's earlier items leave the state).
            present = memory_id in live or (memory_id in items and memory_id not in removed)
            merge = False
            if (v in state_passing or v in batch_passing) and not present \
                    and item.memory_type != "episodic" and not item.sources:
                best: tuple[float, str] | None = None
                best_item: Item | None = None
                for score, row in state_passing.get(v, ()):
                    if row in dead_rows:
                        continue
                    candidate = (-score, space._row_ids[row])
                    if best is None or candidate < best:
                        best = candidate
                        best_item = items[candidate[1]]
                for score, other in batch_passing.get(v, ()):
                    if not applied[other]:
                        continue
                    other_item = vector_items[other]
                    if other_item.memory_type == "episodic":
                        continue
                    candidate = (-score, other_item.id)
                    if best is None or candidate < best:
                        best = candidate
                        best_item = other_item
                if best_item is not None:
                    self.deduplicated += 1
                    if best_item.confidence >= item.confidence:
                        ids.append(best_item.id)  # the stored duplicate stays
                        self.dedup[index] = "kept"
                        continue
                    # The stronger copy is stored under the duplicate's id, which callers
                    # may hold (and associations, priming and history are keyed by):
                    # the same memory, now with the stronger content. An overwrite of
                    # that id, so it takes the duplicate's place and evicts nothing.
                    _merge_into(item, best_item)
                    memory_id = item.id
                    present = merge = True
                    self.dedup[index] = "merged"
            # A loop, not one eviction: a space whose capacity was lowered on reopening
            # holds more than it allows, and each store brings it back within bounds.
            while capacity is not None and not present and count >= capacity:
                victim = _eviction_victim(space, live, prepared, removed)
                kill(victim)  # never this item's id: that is not stored
                entries.append((rec.FORGET, rec.encode_forget(victim, "evicted")))
                actions.append((_FORGET, victim))
            if present:
                kill(memory_id)  # overwritten by this item
            live[memory_id] = index
            count += 1
            if v >= 0:
                applied[v] = True
            actions.append((_REMEMBER, item, vector, merge, v))
            entries.append((rec.REMEMBER, rec.encode_remember(item, vector, None)))
            ids.append(memory_id)


_FORGET = 0
_REMEMBER = 1


def _merge_into(item: Item, stored: Item) -> None:
    """Make ``item`` (a new memory, stronger than its stored duplicate) the stored memory's
    next version: its id, creation time and retrieval statistics, the rest from ``item``.
    Storing it is then an overwrite of that id (one REMEMBER record, replayed as such)."""
    item.id = stored.id
    item.created_ns = stored.created_ns
    item.access_count = stored.access_count
    item.last_access_ns = max(stored.last_access_ns, item.last_access_ns)  # storing reinforces
    item.stability = stored.stability


def _reachable(threshold: float) -> float:
    """A score threshold that float32 rounding of a cosine of 1 still reaches (see COSINE_ROUNDING)."""
    return min(threshold, 1.0 - COSINE_ROUNDING)


def _state_matches(space: Space, keys: np.ndarray, vectors: np.ndarray, inv_norms: np.ndarray, codes: np.ndarray,
                   scales: np.ndarray, eligible: np.ndarray, threshold: float) -> dict[int, List[tuple[float, int]]]:
    """Stored rows at or above the threshold for each eligible new vector: {vector: [(score, row)]}.

    Candidates are the LSH index's; dead and episodic rows are dropped as the dedup
    rule says; scores are the pair kernel's (the bits of cosine_scores for each pair).
    """
    if not eligible.any():
        return {}
    # The int8 codes let the kernel skip rows that cannot reach the threshold.
    query, rows, scores = space._dedup.matches_batch(keys, eligible, space._alive, space._episodic, space._matrix,
                                                     space._inv_norms, vectors, inv_norms, threshold,
                                                     space._codes, space._scales, codes, scales)
    out: dict[int, List[tuple[float, int]]] = {}
    for v, row, score in zip(query.tolist(), rows.tolist(), scores.tolist()):
        out.setdefault(v, []).append((score, row))
    return out


def _batch_matches(keys: np.ndarray, vectors: np.ndarray, inv_norms: np.ndarray, eligible: np.ndarray,
                   threshold: float) -> dict[int, List[tuple[float, int]]]:
    """Earlier vectors of the batch at or above the threshold for each eligible one: {vector: [(score, earlier)]}.

    An earlier vector is a candidate when it shares an LSH key (it would be in the
    index by then); its score is the cosine the stored row would give (same bits,
    same inverse norm).
    """
    later_index, earlier_index = _core.batch_pairs(keys, eligible)
    if later_index.size == 0:
        return {}
    scores = _core.pair_scores(vectors, inv_norms, earlier_index, vectors, inv_norms, later_index)
    out: dict[int, List[tuple[float, int]]] = {}
    for pair_later, pair_earlier, score in zip(later_index.tolist(), earlier_index.tolist(), scores.tolist()):
        if score >= threshold:
            out.setdefault(pair_later, []).append((score, pair_earlier))
    return out


def _eviction_victim(space: Space, live: dict[str, int], prepared: List[tuple[Item, np.ndarray | None]],
                     removed: set[str]) -> str:
    """The memory a store at capacity evicts: lowest activation now, ties by id, among the
    stored memories the batch has not removed and the batch's items so far."""
    with space._lock:  # readers change access counts and stabilities
        now = space._now_ns()
        candidates = [it for it in space._items.values() if it.id not in removed and it.id not in live]
        candidates.extend(prepared[index][0] for index in live.values())
        victim = min(candidates, key=lambda it: (space._activation(it, now), it.id))
    return victim.id


class ConsolidationCancelled(EngramError):
    """A consolidation run was asked to stop; it wrote nothing."""


@dataclass(frozen=True, slots=True)
class _Query:
    vector: np.ndarray | None
    text: str | None
    k: int
    threshold: float
    after: int | None
    before: int | None
    location: str | None
    types: frozenset[str] | None
    mode: str = "similarity"


def _unique_embedded(chosen_per_query: List[List[tuple[float, float, str, Item, str, float | None, float]]]) -> List[Item]:
    """The distinct items with a row among every query's chosen hits, first seen first."""
    seen: dict[str, Item] = {}
    for chosen in chosen_per_query:
        for entry in chosen:
            item = entry[3]
            if item.row >= 0 and item.id not in seen:
                seen[item.id] = item
    return list(seen.values())


# Open ends of a time filter for the screen kernel (created times are int64 ns).
_TIME_MIN = np.iinfo(np.int64).min
_TIME_MAX = np.iinfo(np.int64).max


def _row_mask(view: _View, query: _Query) -> np.ndarray:
    """Rows a vector query may return: alive, and inside its time filter (after <= t < before)."""
    mask = view.alive.copy()
    created = view.created[: view.n]
    if query.after is not None:
        mask &= created >= query.after
    if query.before is not None:
        mask &= created < query.before
    return mask



# The arrays with one entry per row (see Space._grow).
_ROW_ARRAYS = ("_matrix", "_inv_norms", "_alive", "_created", "_episodic", "_lsh_keys", "_codes", "_scales")


def _empty_rows(array: np.ndarray, capacity: int) -> np.ndarray:
    """Zeros shaped like ``array`` but ``capacity`` rows long."""
    return np.zeros((capacity,) + array.shape[1:], array.dtype)


@dataclass(frozen=True, slots=True)
class _Spare:
    """Arrays prepared for the next growth (see Space._grow_ahead)."""

    source: np.ndarray  # the matrix they were copied from: valid while it is the space's
    rows: int  # rows copied
    capacity: int
    arrays: dict[str, np.ndarray]


def _resized(array: np.ndarray, n: int, capacity: int) -> np.ndarray:
    out = np.zeros(capacity, array.dtype)
    out[:n] = array[:n]
    return out


def _metadata_copy(metadata: dict[str, Any]) -> dict[str, Any]:
    """A copy a caller may change: nested lists and dicts too, or changing them would
    change the stored memory (flat metadata, the usual kind, takes the cheap copy)."""
    for value in metadata.values():
        if type(value) is list or type(value) is dict:
            return copy.deepcopy(metadata)
    return dict(metadata)


def _new_id(memory_type: str) -> str:
    # Time-ordered (ms) then 48 random bits: ids sort roughly by creation, never collide in
    # practice. The bits come from the random module's generator (seeded from the OS,
    # reseeded in a forked child), not from os.urandom: that system call releases the
    # GIL, and with many writer threads each release is a context switch.
    prefix = "ep" if memory_type == "episodic" else "mem"
    return f"{prefix}_{time.time_ns() // 1_000_000:012x}{_random_bits(48):012x}"


def _log_eviction(space_id: str, memory_id: str) -> None:
    logging.getLogger("engram.space").info("space %s at capacity: evicted %s (lowest activation)", space_id, memory_id)
