"""The soak's multi-tenant load and its ledger of acknowledged writes.

Workers are threads, each with one keep-alive httpx client. A shared schedule hands
out send times at ``rate`` operations per second across all workers (open loop: a
slow answer does not slow the offered rate, up to the worker count); when the load
falls more than a second behind, the backlog is dropped and counted rather than
fired as a burst. Each operation picks a space and an operation from the mix.

The working set is bounded: each space is preloaded to ``live_per_space`` memories,
then a remember turns into a forget above 110% of that and a forget into a remember
below 90%, so a long run keeps a steady live set and RSS can settle. A growing RSS
then means a leak, not more data.

The ledger records every write the server acknowledged (HTTP 201 with its id and
content) and every acknowledged forget. A request cut by a SIGKILL has no answer and
is "uncertain": it may or may not have happened, and verification adopts or drops it.
Nothing here decides pass or fail; ``verify`` returns what it found.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import httpx
import msgpack
import numpy as np
import orjson

from _stats import Histogram

OPS = ("remember", "recall", "search", "spread", "forget", "consolidate")
MIX_DEFAULT = {"remember": 25, "recall": 30, "search": 10, "spread": 10, "forget": 25}
WORDS = ("river", "cell", "garden", "engine", "harbor", "lantern", "meadow", "signal", "violin", "quartz",
         "orbit", "pepper", "glacier", "falcon", "copper", "tundra")
TOPICS_PER_SPACE = 8
EPISODE_SHARE = 0.2


def parse_mix(text: str) -> dict[str, int]:
    """'remember=25,recall=30,...' -> weights; unknown names and negative weights are errors."""
    mix: dict[str, int] = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        name = name.strip()
        if name not in OPS or name == "consolidate":
            raise ValueError(f"--mix: unknown operation {name!r}; allowed: remember, recall, search, spread, forget; "
                             f"example: {','.join(f'{k}={v}' for k, v in MIX_DEFAULT.items())}")
        try:
            mix[name] = int(weight)
        except ValueError:
            raise ValueError(f"--mix: weight {weight!r} of {name} is not an integer") from None
        if mix[name] < 0:
            raise ValueError(f"--mix: weight of {name} is negative")
    if sum(mix.values()) <= 0:
        raise ValueError("--mix: at least one weight must be positive")
    return mix


def space_ids(count: int) -> list[str]:
    return [f"soak-tenant-{i:03d}" for i in range(count)]


class Gate:
    """Open while the server is up; ``generation`` changes at every kill."""

    def __init__(self) -> None:
        self._up = threading.Event()
        self._lock = threading.Lock()
        self.generation = 0

    def open(self) -> None:
        self._up.set()

    def close(self) -> None:
        with self._lock:
            self._up.clear()
            self.generation += 1

    def is_open(self) -> bool:
        return self._up.is_set()

    def wait_open(self, timeout_s: float) -> bool:
        return self._up.wait(timeout_s)


class Schedule:
    """Send times at a fixed rate, shared by all workers."""

    def __init__(self, rate_per_s: float) -> None:
        assert rate_per_s > 0
        self.interval_s = 1.0 / rate_per_s
        self._lock = threading.Lock()
        self._next = time.monotonic()
        self.dropped = 0

    def take(self) -> float:
        with self._lock:
            now = time.monotonic()
            if self._next < now - 1.0:
                self.dropped += int((now - self._next) / self.interval_s)
                self._next = now
            due = self._next
            self._next += self.interval_s
            return due

    def restart(self) -> None:
        """Start the schedule from now: a pause (preload, verification) is not a backlog."""
        with self._lock:
            self._next = time.monotonic()


@dataclass
class SpaceLedger:
    expected: dict[str, str] = field(default_factory=dict)  # acked, not forgotten: id -> content
    keys: list[str] = field(default_factory=list)
    positions: dict[str, int] = field(default_factory=dict)
    forgotten: set[str] = field(default_factory=set)  # acked forgets since the last verification
    uncertain: dict[str, str | None] = field(default_factory=dict)  # cut by a kill: id -> content (None: a forget)
    new_since_verify: list[str] = field(default_factory=list)

    def add(self, memory_id: str, content: str) -> bool:
        if memory_id in self.expected:
            return False
        self.expected[memory_id] = content
        self.positions[memory_id] = len(self.keys)
        self.keys.append(memory_id)
        self.new_since_verify.append(memory_id)
        return True

    def take(self, rng: random.Random) -> tuple[str, str] | None:
        if not self.keys:
            return None
        i = rng.randrange(len(self.keys))
        memory_id = self.keys[i]
        last = self.keys.pop()
        if last != memory_id:
            self.keys[i] = last
            self.positions[last] = i
        del self.positions[memory_id]
        return memory_id, self.expected.pop(memory_id)


@dataclass
class Interval:
    """What the workers measured since the last sample."""

    hist: dict[str, Histogram] = field(default_factory=lambda: {op: Histogram() for op in OPS})
    errors: dict[str, int] = field(default_factory=lambda: {op: 0 for op in OPS})
    interrupted: int = 0


class Load:
    def __init__(self, *, url: str, spaces: list[str], rate_per_s: float, workers: int, mix: dict[str, int],
                 live_per_space: int, dimension: int, seed: int, gate: Gate,
                 log: Callable[[str], None]) -> None:
        self.url = url
        self.spaces = spaces
        self.mix_ops = [op for op in mix if mix[op] > 0]
        self.mix_weights = [mix[op] for op in self.mix_ops]
        self.live_per_space = live_per_space
        self.dimension = dimension
        self.gate = gate
        self.log = log
        self.schedule = Schedule(rate_per_s)
        self.workers = workers
        self.seed = seed
        self.lock = threading.Lock()
        self.ledgers = {s: SpaceLedger() for s in spaces}
        self.interval = Interval()
        self.totals = {op: Histogram() for op in OPS}
        self.total_errors = {op: 0 for op in OPS}
        self.total_interrupted = 0
        self.error_examples: list[str] = []
        self.lost: list[str] = []  # "space/id: how it was found missing"
        self.resurrected: list[str] = []
        self.content_mismatch: list[str] = []
        self.dedup_hits = 0
        self._seq = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        rng = np.random.default_rng(seed)
        centers = rng.standard_normal((len(spaces), TOPICS_PER_SPACE, dimension)).astype(np.float32)
        self.centers = centers / np.linalg.norm(centers, axis=2, keepdims=True)

    # ------------------------------------------------------------------ helpers

    def _next_seq(self) -> int:
        with self.lock:
            self._seq += 1
            return self._seq

    def _vector(self, rng: np.random.Generator, space_index: int, topic: int) -> np.ndarray:
        # Members of a topic sit ~0.6 cosine from each other: recall finds them, dedup (0.95) does not fire.
        v = self.centers[space_index, topic] * 0.8 + rng.standard_normal(self.dimension).astype(np.float32) * np.float32(0.6 / self.dimension ** 0.5)
        v /= np.linalg.norm(v)
        return v.astype(np.float32)

    def _content(self, seq: int, space: str, topic: int, rng: random.Random) -> str:
        words = " ".join(rng.choice(WORDS) for _ in range(6))
        return f"soak memory {seq} of {space} on topic {WORDS[topic]}: {words}"

    def error(self, op: str, message: str) -> None:
        with self.lock:
            self.interval.errors[op] += 1
            self.total_errors[op] += 1
            if len(self.error_examples) < 50:
                self.error_examples.append(f"{datetime.now(timezone.utc).isoformat(timespec='seconds')} {op}: {message}")

    def _ok(self, op: str, seconds: float) -> None:
        with self.lock:
            self.interval.hist[op].add(seconds)
            self.totals[op].add(seconds)

    def _interrupted(self) -> None:
        with self.lock:
            self.interval.interrupted += 1
            self.total_interrupted += 1

    def swap_interval(self) -> Interval:
        with self.lock:
            out, self.interval = self.interval, Interval()
            return out

    def live_count(self) -> int:
        with self.lock:
            return sum(len(led.expected) for led in self.ledgers.values())

    # ------------------------------------------------------------------ preload

    def preload(self) -> float:
        """Bulk-load every space to ``live_per_space`` (acknowledged, so ledgered). Returns seconds."""
        t0 = time.monotonic()
        rng = random.Random(self.seed)
        nrng = np.random.default_rng(self.seed + 1)
        with httpx.Client(base_url=self.url, timeout=300.0) as c:
            for si, space in enumerate(self.spaces):
                ledger = self.ledgers[space]
                while len(ledger.expected) < self.live_per_space:
                    count = min(1000, self.live_per_space - len(ledger.expected))
                    items = []
                    for _ in range(count):
                        seq = self._next_seq()
                        topic = rng.randrange(TOPICS_PER_SPACE)
                        vec = self._vector(nrng, si, topic).astype("<f4")
                        items.append({"id": f"m{seq}", "content": self._content(seq, space, topic, rng),
                                      "embedding": vec.tobytes(), "confidence": 0.8})
                    r = c.post("/api/v1/memories/bulk", content=msgpack.packb(items),
                               headers={"X-Memory-Space": space, "Content-Type": "application/msgpack"})
                    if r.status_code != 201:
                        raise RuntimeError(f"preload of {space}: HTTP {r.status_code} {r.text[:300]}")
                    ids = r.json()["memory_ids"]
                    with self.lock:
                        for item, memory_id in zip(items, ids):
                            if not ledger.add(memory_id, item["content"]):
                                self.dedup_hits += 1
        return time.monotonic() - t0

    # ------------------------------------------------------------------ workers

    def start(self) -> None:
        self.schedule.restart()
        for w in range(self.workers):
            t = threading.Thread(target=self._worker, args=(w,), name=f"soak-worker-{w}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)

    def _worker(self, index: int) -> None:
        rng = random.Random(self.seed * 1000 + index)
        nrng = np.random.default_rng(self.seed * 1000 + index)
        client: httpx.Client | None = None
        client_generation = -1
        try:
            while not self._stop.is_set():
                due = self.schedule.take()
                delay = due - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
                while not self.gate.wait_open(0.2):
                    if self._stop.is_set():
                        return
                generation = self.gate.generation
                if client is None or client_generation != generation:
                    if client is not None:
                        client.close()
                    client = httpx.Client(base_url=self.url, timeout=60.0)
                    client_generation = generation
                si = rng.randrange(len(self.spaces))
                op = rng.choices(self.mix_ops, self.mix_weights)[0]
                try:
                    self._one(client, op, si, rng, nrng, generation)
                except Exception as exc:  # noqa: BLE001 - a bug in the runner is reported, not fatal
                    self.error(op, f"runner exception {type(exc).__name__}: {exc}")
        finally:
            if client is not None:
                client.close()

    def _cut_by_kill(self, generation: int) -> bool:
        return generation != self.gate.generation or not self.gate.is_open()

    def _one(self, c: httpx.Client, op: str, si: int, rng: random.Random, nrng: np.random.Generator, generation: int) -> None:
        space = self.spaces[si]
        ledger = self.ledgers[space]
        headers = {"X-Memory-Space": space}
        with self.lock:
            live = len(ledger.expected)
        if op == "remember" and live > self.live_per_space * 1.1:
            op = "forget"
        elif op == "forget" and live < self.live_per_space * 0.9:
            op = "remember"
        taken: tuple[str, str] | None = None
        requested_id = ""
        content = ""
        if op == "forget":
            with self.lock:
                taken = ledger.take(rng)
            if taken is None:
                op = "remember"
        t0 = time.perf_counter()
        try:
            if op == "remember":
                seq = self._next_seq()
                topic = rng.randrange(TOPICS_PER_SPACE)
                requested_id = f"m{seq}"
                content = self._content(seq, space, topic, rng)
                vec = self._vector(nrng, si, topic)
                if rng.random() < EPISODE_SHARE:
                    body = {"id": requested_id, "what": content, "embedding": vec,
                            "when": datetime.now(timezone.utc).isoformat(), "importance": 0.7}
                    r = c.post("/api/v1/episodes/remember", content=orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
                               headers={**headers, "Content-Type": "application/json"})
                else:
                    body = {"id": requested_id, "content": content, "embedding": vec, "confidence": 0.8}
                    r = c.post("/api/v1/memories/remember", content=orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
                               headers={**headers, "Content-Type": "application/json"})
                expect = 201
            elif op in ("recall", "spread"):
                topic = rng.randrange(TOPICS_PER_SPACE)
                body = {"embedding": self._vector(nrng, si, topic), "max_results": 10, "threshold": 0.0,
                        "mode": "spreading" if op == "spread" else "similarity"}
                r = c.post("/api/v1/memories/recall", content=orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
                           headers={**headers, "Content-Type": "application/json"})
                expect = 200
            elif op == "search":
                r = c.get("/api/v1/memories/search", params={"query": rng.choice(WORDS), "limit": 10}, headers=headers)
                expect = 200
            else:
                assert taken is not None
                r = c.delete(f"/api/v1/memories/{taken[0]}", headers=headers)
                expect = 200
        except httpx.TransportError as exc:
            if self._cut_by_kill(generation):
                self._interrupted()
                with self.lock:
                    if op == "remember":
                        ledger.uncertain[requested_id] = content
                    elif op == "forget" and taken is not None:
                        ledger.uncertain[taken[0]] = taken[1]
            else:
                self.error(op, f"{type(exc).__name__}: {exc}")
                if op == "forget" and taken is not None:
                    with self.lock:
                        ledger.uncertain[taken[0]] = taken[1]
            return
        elapsed = time.perf_counter() - t0
        if r.status_code != expect:
            if op == "forget" and taken is not None and r.status_code == 404:
                with self.lock:
                    self.lost.append(f"{space}/{taken[0]}: acknowledged, then DELETE answered 404")
            elif op == "forget" and taken is not None:
                with self.lock:
                    ledger.uncertain[taken[0]] = taken[1]
            self.error(op, f"HTTP {r.status_code} (expected {expect}): {r.text[:200]}")
            return
        self._ok(op, elapsed)
        if op == "remember":
            memory_id = r.json().get("memory_id")
            with self.lock:
                if not isinstance(memory_id, str) or not ledger.add(memory_id, content):
                    self.dedup_hits += 1
        elif op == "forget":
            assert taken is not None
            with self.lock:
                ledger.forgotten.add(taken[0])
        elif op in ("recall", "spread"):
            doc = r.json()
            if "memories" not in doc:
                self.error(op, f"answer without 'memories': {r.text[:200]}")

    # ------------------------------------------------------------------ consolidation cadence

    def consolidate_all(self, route: str | None) -> None:
        """One consolidation round over every space: POST ``route`` if the server has it,
        else GET /api/v1/consolidations (read-only) so the cadence still loads the server."""
        with httpx.Client(base_url=self.url, timeout=300.0) as c:
            for space in self.spaces:
                generation = self.gate.generation
                t0 = time.perf_counter()
                try:
                    if route:
                        r = c.post(route, headers={"X-Memory-Space": space, "Content-Type": "application/json"}, content=b"{}")
                        ok = r.status_code in (200, 201, 202)
                    else:
                        r = c.get("/api/v1/consolidations", headers={"X-Memory-Space": space})
                        ok = r.status_code == 200
                except httpx.TransportError as exc:
                    if self._cut_by_kill(generation):
                        self._interrupted()
                    else:
                        self.error("consolidate", f"{type(exc).__name__}: {exc}")
                    continue
                if ok:
                    self._ok("consolidate", time.perf_counter() - t0)
                else:
                    self.error("consolidate", f"HTTP {r.status_code}: {r.text[:200]}")

    # ------------------------------------------------------------------ verification

    def verify(self, *, get_back_max: int, rng: random.Random) -> dict[str, Any]:
        """With the load paused (gate closed): every acknowledged write must be listed and
        every acknowledged forget must not be; up to ``get_back_max`` of the writes acknowledged
        since the last verification (a random sample across spaces) are read back one by one
        and their content compared."""
        t0 = time.monotonic()
        checked = 0
        got_back = 0
        lost_before = len(self.lost)
        with httpx.Client(base_url=self.url, timeout=120.0) as c:
            for space in self.spaces:
                ledger = self.ledgers[space]
                headers = {"X-Memory-Space": space}
                listed: set[str] = set()
                offset = 0
                while True:
                    r = c.get("/api/v1/memories", params={"offset": offset, "limit": 1000}, headers=headers)
                    if r.status_code != 200:
                        raise RuntimeError(f"verification listing of {space}: HTTP {r.status_code} {r.text[:200]}")
                    page = r.json()["memories"]
                    listed.update(m["id"] for m in page)
                    if len(page) < 1000:
                        break
                    offset += len(page)
                with self.lock:
                    expected = dict(ledger.expected)
                    forgotten = set(ledger.forgotten)
                    uncertain = dict(ledger.uncertain)
                    recent = [i for i in ledger.new_since_verify if i in ledger.expected]
                checked += len(expected)
                for memory_id in sorted(set(expected) - listed):
                    r = c.get(f"/api/v1/memories/{memory_id}", headers=headers)
                    if r.status_code == 200:
                        continue  # listed pages are by time; a concurrent clock step could hide one
                    with self.lock:
                        self.lost.append(f"{space}/{memory_id}: acknowledged (HTTP 201), missing after restart (GET {r.status_code})")
                for memory_id in sorted(forgotten & listed):
                    with self.lock:
                        self.resurrected.append(f"{space}/{memory_id}: forget acknowledged, listed again after restart")
                share = max(1, get_back_max // len(self.spaces))
                if len(recent) > share:
                    recent = rng.sample(recent, share)
                for memory_id in recent:
                    r = c.get(f"/api/v1/memories/{memory_id}", headers=headers)
                    got_back += 1
                    if r.status_code != 200:
                        with self.lock:
                            self.lost.append(f"{space}/{memory_id}: acknowledged, GET answered {r.status_code} after restart")
                        continue
                    doc = r.json()
                    text = doc.get("content") if doc.get("content") is not None else doc.get("what")
                    if text != expected[memory_id]:
                        with self.lock:
                            self.content_mismatch.append(f"{space}/{memory_id}: content {str(text)[:80]!r} != {expected[memory_id][:80]!r}")
                with self.lock:
                    for memory_id, content in uncertain.items():
                        if memory_id in listed and content is not None:
                            ledger.add(memory_id, content)
                    ledger.uncertain.clear()
                    ledger.forgotten.clear()
                    ledger.new_since_verify.clear()
        return {"seconds": round(time.monotonic() - t0, 3), "acknowledged_checked": checked, "read_back": got_back,
                "lost_now": len(self.lost) - lost_before}
