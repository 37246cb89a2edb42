"""Deterministic simulator: a whole SWIM cluster on virtual time, faults drawn from a seed.

``python -m engram.testing.sim --seed N [--nodes 50] [--duration 600s] [options]``

Every option not given on the command line is drawn from the seed (node count, timing
preset, loss, delay, duplication, reorder, a partition, crashes and restarts, event-loop
stalls, late joins), and printed first. The run has a start phase (the cluster forms), a
fault phase, and a healing phase with every fault removed in which the cluster must
converge. The cores run unchanged (engram.net.swim.core) with real wire bytes; only the
network and the clock are simulated. Each host's wall clock (the shared clock that aligned
probing reads) is off by a fixed seeded amount within +-``--clock-skew-ms`` (20 ms). Events are ordered by ``(deliver_at_ms, sequence)``
and every random draw comes from seeded ``random.Random`` objects, so the same seed gives
the same event log; the last line printed is ``event-log sha256: <hex>``.

Checkers are separate functions and each failure kind has its own exit code:
0 ok; 2 membership disagreement after healing; 3 a false death (a live, reachable node
declared dead in a run without partitions); 4 a crash not detected by every live node in
time; 5 an exception inside a core; 64 bad command line. A failure prints its seed.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import math
import random
import struct
import sys
import traceback
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from engram.durations import parse_duration_s
from engram.net.swim.config import SwimConfig
from engram.net.swim.core import Datagram, Membership, StreamRequest
from engram.net.swim.messages import NodeState
from engram.net.swim.suspicion import suspicion_timeout_min_ms

__all__ = ["SimOptions", "Simulation", "SimResult", "draw_options", "main", "EXIT_CODES"]

EXIT_OK = 0
EXIT_DISAGREEMENT = 2
EXIT_FALSE_DEATH = 3
EXIT_UNDETECTED = 4
EXIT_EXCEPTION = 5
EXIT_USAGE = 64
EXIT_CODES = {"disagreement": EXIT_DISAGREEMENT, "false-death": EXIT_FALSE_DEATH,
              "undetected": EXIT_UNDETECTED, "exception": EXIT_EXCEPTION}
PARTITIONS = ("none", "halves", "bridge", "isolate")
PRESETS = {"lan": SwimConfig.lan, "local": SwimConfig.local, "test_min": SwimConfig.test_min}
_HEADER = struct.Struct(">qB H H I")


@dataclass(frozen=True, kw_only=True)
class SimOptions:
    """One simulated run. All durations are virtual milliseconds."""

    seed: int
    nodes: int
    preset: str
    start_ms: int
    duration_ms: int
    heal_ms: int
    loss: float
    delay_ms_min: int
    delay_ms_max: int
    duplicate: float
    reorder: float
    partition: str
    partition_start_ms: int
    partition_end_ms: int
    crashes: int
    restart: bool
    stalls: int
    stall_ms_min: int
    stall_ms_max: int
    joins: int
    # Drop the seed's UDP for a while after a late join: its rumour of the newcomer is lost.
    join_rumour_lost: bool
    # What a crash looks like from outside: "process" (the host stays up and answers TCP
    # connections to the dead port with a reset, as after kill -9) or "host" (silence).
    crash_kind: str = "process"
    # Each host's wall clock is off true time by a fixed amount drawn from +-clock_skew_ms
    # (NTP-grade by default), handed to the core as its clock offset: the cores' shared
    # clock (aligned probing) is never assumed perfect.
    clock_skew_ms: int = 20
    # "aligned" or "shuffled" probe order for every node; "" keeps the preset's choice.
    probing: str = ""

    def describe(self) -> str:
        return " ".join(f"{k}={v}" for k, v in asdict(self).items())


def _config_for(preset: str, name: str, host: str) -> SwimConfig:
    return PRESETS[preset](node_name=name, advertise_host=host, advertise_port=7946)


def heal_ms_for(preset: str, nodes: int) -> int:
    config = _config_for(preset, "x", "10.0.0.1")
    suspicion_max = config.suspicion_max_timeout_mult * suspicion_timeout_min_ms(
        config.suspicion_mult, nodes, config.probe_interval_ms)
    push_pull = config.push_pull_interval_ms * (1 if nodes <= 32 else math.ceil(math.log2(nodes) - 5) + 1)
    return suspicion_max + max(3 * config.reconnect_interval_ms, push_pull) + 30 * config.probe_interval_ms


def draw_options(seed: int, **given: Any) -> SimOptions:
    """Options drawn from ``seed``; any keyword given overrides the draw."""
    rng = random.Random(f"options-{seed}")
    preset = given.get("preset") or rng.choice(["local", "lan", "test_min", "test_min"])
    nodes = given.get("nodes") or rng.randint(3, 12)
    unit = PRESETS[preset](node_name="x").probe_interval_ms
    start_ms = 10 * unit
    duration_ms = given.get("duration_ms") or rng.randint(60, 180) * unit
    values: dict[str, Any] = dict(
        seed=seed, nodes=nodes, preset=preset, start_ms=start_ms, duration_ms=duration_ms,
        heal_ms=heal_ms_for(preset, nodes),
        loss=rng.choice([0.0, 0.0, 0.01, 0.05]),
        delay_ms_min=1, delay_ms_max=rng.choice([2, 5, 20]),
        duplicate=rng.choice([0.0, 0.01, 0.05]), reorder=rng.choice([0.0, 0.05]),
        partition=rng.choice(PARTITIONS) if nodes >= 3 else "none",
        partition_start_ms=0, partition_end_ms=0,
        crashes=rng.randint(0, min(2, nodes - 2)), restart=rng.random() < 0.5,
        stalls=rng.randint(0, 2), stall_ms_min=unit // 2, stall_ms_max=5 * unit // 2,
        joins=rng.randint(0, 1), join_rumour_lost=True,
    )
    start = start_ms + rng.randint(0, duration_ms // 2)
    values["partition_start_ms"] = start
    values["partition_end_ms"] = start + rng.randint(duration_ms // 10, duration_ms // 3)
    values.update({k: v for k, v in given.items() if v is not None})
    if values["partition"] == "none":
        values["partition_start_ms"] = values["partition_end_ms"] = 0
    return SimOptions(**values)


@dataclass
class _Node:
    index: int
    name: str
    host: str
    core: Membership | None = None
    up: bool = False
    generation: int = 0
    stalled_until_ms: int = 0
    tick_at_ms: int = -1
    tick_token: int = 0
    ever_crashed: bool = False
    seed_host: str = ""


@dataclass
class SimResult:
    """What a run produced: the log digest, the failures found and the measurements."""

    options: SimOptions
    digest: str = ""
    failures: list[tuple[str, str]] = field(default_factory=list)
    # Per crash: (victim, crash_ms, first_ms, last_ms, down_ms): first and last node to see it dead,
    # after the crash; down_ms how long it stayed down when it restarted (None: still down).
    detections: list[tuple[str, int, int | None, int | None, int | None]] = field(default_factory=list)
    false_deaths: list[tuple[int, str, str]] = field(default_factory=list)
    # Per late join: ms until every live node knew the newcomer (None: never).
    join_spread_ms: list[int | None] = field(default_factory=list)
    events: int = 0

    @property
    def exit_code(self) -> int:
        if not self.failures:
            return EXIT_OK
        return EXIT_CODES[self.failures[0][0]]


class Simulation:
    """Runs the cores over a simulated network. One instance, one run."""

    def __init__(self, options: SimOptions) -> None:
        self.options = options
        self.now_ms = 0
        self._net_rng = random.Random(f"net-{options.seed}")
        self._fault_rng = random.Random(f"faults-{options.seed}")
        self._queue: list[tuple[int, int, str, Any]] = []
        self._seq = 0
        self._log = hashlib.sha256()
        self.result = SimResult(options)
        total = options.nodes + options.joins
        self.nodes = [_Node(i, f"n{i:03d}", f"10.0.{i // 250}.{i % 250 + 1}") for i in range(total)]
        self._by_host = {n.host: n for n in self.nodes}
        self._crashes: dict[str, int] = {}
        self._seen_dead: dict[str, dict[str, int]] = {}
        self._join_started: dict[str, int] = {}
        self._join_known: dict[str, dict[str, int]] = {}
        self._mute_until_ms: dict[str, int] = {}
        self._sides: dict[str, int] = {}
        self._knew: dict[str, list[tuple[str, int]]] = {}
        self._join_audience: dict[str, list[str]] = {}

    # --- event queue ------------------------------------------------------------------

    def _push(self, at_ms: int, kind: str, payload: Any) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (at_ms, self._seq, kind, payload))

    def _record(self, kind: int, a: int, b: int, data: bytes) -> None:
        self._log.update(_HEADER.pack(self.now_ms, kind, a, b, len(data)))
        self._log.update(data)
        self.result.events += 1

    # --- plan -------------------------------------------------------------------------

    def _plan(self) -> None:
        o = self.options
        rng = self._fault_rng
        fault_end = o.start_ms + o.duration_ms
        for node in self.nodes[: o.nodes]:
            self._push(rng.randint(0, 1000 if o.preset != "test_min" else 100), "start", node.index)
        for j in range(o.joins):
            node = self.nodes[o.nodes + j]
            self._push(o.start_ms + rng.randint(0, o.duration_ms - 1), "start", node.index)
        victims = rng.sample(range(1, o.nodes), min(o.crashes, o.nodes - 1))
        for victim in victims:
            at = o.start_ms + rng.randint(0, o.duration_ms * 2 // 3)
            self._push(at, "crash", victim)
            if o.restart:
                self._push(at + rng.randint(o.duration_ms // 10, o.duration_ms // 3), "restart", victim)
        stallers = rng.sample(range(o.nodes), min(o.stalls, o.nodes))
        for index in stallers:
            at = o.start_ms
            while True:
                at += rng.randint(5000, 30000) if o.preset != "test_min" else rng.randint(500, 3000)
                if at >= fault_end:
                    break
                self._push(at, "stall", (index, rng.randint(o.stall_ms_min, o.stall_ms_max)))
        if o.partition != "none":
            names = [n.name for n in self.nodes]
            shuffled = names[:]
            rng.shuffle(shuffled)
            if o.partition == "isolate":
                self._sides = {name: (1 if name == shuffled[0] else 0) for name in names}
            else:
                half = len(shuffled) // 2
                self._sides = {name: (0 if i < half else 1) for i, name in enumerate(shuffled)}
                if o.partition == "bridge":
                    self._sides[shuffled[-1]] = 2  # talks to both sides
        self._push(fault_end, "heal", None)
        self._push(fault_end + o.heal_ms, "end", None)

    def _faulty(self) -> bool:
        return self.now_ms < self.options.start_ms + self.options.duration_ms

    def _blocked(self, source: str, target: str) -> bool:
        o = self.options
        if o.partition == "none" or not (o.partition_start_ms <= self.now_ms < o.partition_end_ms):
            return False
        a, b = self._sides.get(source, 0), self._sides.get(target, 0)
        return a != b and a != 2 and b != 2

    # --- node actions -----------------------------------------------------------------

    def clock_skew_ms(self, node: _Node) -> int:
        """How far ``node``'s wall clock is off the simulator's (true) clock: fixed per host,
        from its own seeded draw so that the other draws are the same with or without skew."""
        skew = self.options.clock_skew_ms
        return random.Random(f"clock-{self.options.seed}-{node.name}").randint(-skew, skew) if skew else 0

    def _start(self, node: _Node) -> None:
        o = self.options
        config = _config_for(o.preset, node.name, node.host)
        if o.probing:
            config = config.replace(aligned_probing=o.probing == "aligned")
        node.core = Membership(config, random.Random(f"node-{o.seed}-{node.name}-{node.generation}"), self.now_ms,
                               clock_offset_ms=self.clock_skew_ms(node))
        node.up = True
        live = [n for n in self.nodes if n.up and n is not node and not n.ever_crashed or (n.up and n is not node)]
        if node.index >= o.nodes or node.generation > 0:
            if live:
                seed_node = live[self._fault_rng.randrange(len(live))]
                node.seed_host = seed_node.host
                node.core.join([(seed_node.host, 7946)], self.now_ms)
                self._push(self.now_ms + 1000, "rejoin", (node.index, node.generation))
                if node.index >= o.nodes:
                    self._join_started[node.name] = self.now_ms
                    self._join_known[node.name] = {}
                    self._join_audience[node.name] = [n.name for n in self.nodes if n.up and n is not node]
                    if o.join_rumour_lost:
                        self._mute_until_ms[seed_node.name] = self.now_ms + 2000 * (
                            1 if o.preset != "test_min" else 0) + 200
        elif node.index > 0:
            node.seed_host = self.nodes[0].host
            node.core.join([(self.nodes[0].host, 7946)], self.now_ms)
            self._push(self.now_ms + 1000, "rejoin", (node.index, node.generation))
        self._after(node)

    def _after(self, node: _Node) -> None:
        """Send what the core produced and re-arm its timer."""
        core = node.core
        assert core is not None
        for change in core.poll_events():
            self._record(1, node.index, 0, f"{change.node}|{change.state}|{change.incarnation}".encode())
            self._observe(node, change.node, change.state)
        for output in core.poll_output():
            if isinstance(output, Datagram):
                self._send_datagram(node, output)
            else:
                self._send_stream(node, output)
        deadline = core.next_deadline_ms()
        if deadline != node.tick_at_ms:
            node.tick_at_ms = deadline
            node.tick_token += 1
            self._push(max(deadline, self.now_ms), "tick", (node.index, node.generation, node.tick_token))

    def _observe(self, observer: _Node, subject: str, state: str) -> None:
        if state == "dead" and subject not in self._crashes:
            target = next((n for n in self.nodes if n.name == subject), None)
            if target is not None and target.up and self.options.partition == "none":
                self.result.false_deaths.append((self.now_ms, observer.name, subject))
        if state in ("dead", "left") and subject in self._crashes:
            self._seen_dead[subject].setdefault(observer.name, self.now_ms)
        if state in ("alive",) and subject in self._join_known:
            self._join_known[subject].setdefault(observer.name, self.now_ms)

    def _send_datagram(self, node: _Node, output: Datagram) -> None:
        target = self._by_host.get(output.target[0])
        if target is None:
            return
        if self._mute_until_ms.get(node.name, -1) > self.now_ms:
            return
        faulty = self._faulty()
        if self._blocked(node.name, target.name):
            return
        rng = self._net_rng
        o = self.options
        if faulty and o.loss and rng.random() < o.loss:
            return
        copies = 2 if faulty and o.duplicate and rng.random() < o.duplicate else 1
        for _ in range(copies):
            delay = rng.randint(o.delay_ms_min, o.delay_ms_max)
            if faulty and o.reorder and rng.random() < o.reorder:
                delay += rng.randint(0, 5 * o.delay_ms_max)
            self._push(self.now_ms + delay, "udp", (node.index, target.index, output.data))

    def _send_stream(self, node: _Node, output: StreamRequest) -> None:
        target = self._by_host.get(output.target[0])
        o = self.options
        delay = self._net_rng.randint(o.delay_ms_min, o.delay_ms_max)
        reply = (node.index, node.generation, output.token)
        if target is None or self._blocked(node.name, target.name):
            self._push(self.now_ms + output.timeout_ms, "stream_reply", (reply, None, self.now_ms + output.timeout_ms))
            return
        deadline = self.now_ms + output.timeout_ms
        self._push(self.now_ms + delay, "stream_in", (reply, target.index, output.data, deadline))

    # --- run --------------------------------------------------------------------------

    def run(self) -> SimResult:
        self._plan()
        try:
            self._loop()
        except Exception:  # a core raised: report with the seed, never hide it
            self.result.failures.append(("exception", traceback.format_exc()))
        if not self.result.failures:
            check_agreement(self)
            check_false_deaths(self)
            check_detection(self)
        self.result.digest = self._log.hexdigest()
        return self.result

    def _loop(self) -> None:
        queue = self._queue
        nodes = self.nodes
        while queue:
            at_ms, _, kind, payload = heapq.heappop(queue)
            self.now_ms = at_ms
            if kind == "tick":
                index, generation, token = payload
                node = nodes[index]
                if not node.up or node.generation != generation or node.tick_token != token:
                    continue
                if node.stalled_until_ms > at_ms:
                    self._push(node.stalled_until_ms, kind, payload)
                    continue
                node.tick_at_ms = -1
                assert node.core is not None
                node.core.tick(at_ms)
                self._after(node)
            elif kind == "udp":
                source, target_index, data = payload
                node = nodes[target_index]
                if not node.up:
                    continue
                if node.stalled_until_ms > at_ms:
                    self._push(node.stalled_until_ms, kind, payload)
                    continue
                self._record(2, source, target_index, data)
                assert node.core is not None
                node.core.receive((nodes[source].host, 7946), data, at_ms)
                self._after(node)
            elif kind == "stream_in":
                (source, generation, token), target_index, data, deadline = payload
                node = nodes[target_index]
                answer = None
                if node.up and node.stalled_until_ms > at_ms:
                    self._push(node.stalled_until_ms, kind, payload)
                    continue
                if not node.up and self.options.crash_kind == "process":
                    delay = self._net_rng.randint(self.options.delay_ms_min, self.options.delay_ms_max)
                    self._push(min(at_ms + delay, deadline), "stream_reply",
                               ((source, generation, token), b"", deadline))
                    continue
                if node.up and not self._blocked(nodes[source].name, node.name):
                    assert node.core is not None
                    self._record(3, source, target_index, data)
                    answer = node.core.receive_stream((nodes[source].host, 40000 + source), data, at_ms)
                    self._after(node)
                delay = self._net_rng.randint(self.options.delay_ms_min, self.options.delay_ms_max)
                self._push(min(at_ms + delay, deadline), "stream_reply", ((source, generation, token), answer, deadline))
            elif kind == "stream_reply":
                (source, generation, token), answer, deadline = payload
                node = nodes[source]
                if not node.up or node.generation != generation:
                    continue
                if node.stalled_until_ms > at_ms:
                    self._push(node.stalled_until_ms, kind, payload)
                    continue
                if at_ms >= deadline and answer is not None:
                    answer = None
                # b"" stands for a connection refused by the target's host.
                refused = answer == b""
                self._record(4, source, token, answer or (b"refused" if refused else b""))
                assert node.core is not None
                node.core.stream_reply(token, None if refused else answer, at_ms, refused=refused)
                self._after(node)
            elif kind == "rejoin":
                # What a driver does: retry the seed until a push/pull succeeds.
                index, generation = payload
                node = nodes[index]
                if node.up and node.generation == generation and node.core is not None and not node.core.joined:
                    seed_node = self._by_host.get(node.seed_host)
                    if seed_node is None or not seed_node.up:
                        # Its seed is gone (crashed, not come back): a real node's driver
                        # looks its seeds up again on every attempt (discovery) and gets a
                        # live member. Without this a joiner whose only seed died during a
                        # partition retried it forever (seed 1772893878).
                        live = [n for n in nodes if n.up and n is not node]
                        if live:
                            pick = random.Random(f"rejoin-{self.options.seed}-{node.name}-{at_ms}")
                            node.seed_host = live[pick.randrange(len(live))].host
                    node.core.join([(node.seed_host, 7946)], at_ms)
                    self._after(node)
                    self._push(at_ms + 1000, "rejoin", payload)
            elif kind == "start":
                self._record(5, payload, 0, b"")
                self._start(nodes[payload])
            elif kind == "crash":
                node = nodes[payload]
                if node.up:
                    self._record(6, payload, 0, b"")
                    node.up = False
                    node.ever_crashed = True
                    node.core = None
                    self._crashes[node.name] = at_ms
                    self._seen_dead[node.name] = {}
                    # Detection is measured over the nodes that knew the victim alive.
                    self._knew[node.name] = [(n.name, n.generation) for n in nodes if n.up and n.core is not None and (
                        (m := n.core.member(node.name)) is not None and m.state != NodeState.DEAD)]
            elif kind == "restart":
                node = nodes[payload]
                if not node.up:
                    self._record(7, payload, 0, b"")
                    node.generation += 1
                    if node.name in self._crashes:
                        crash_ms = self._crashes.pop(node.name)
                        self._finish_crash(node.name, crash_ms, down_ms=at_ms - crash_ms)
                    self._start(node)
            elif kind == "stall":
                index, stall_ms = payload
                node = nodes[index]
                self._record(8, index, stall_ms, b"")
                node.stalled_until_ms = max(node.stalled_until_ms, at_ms + stall_ms)
            elif kind == "heal":
                self._record(9, 0, 0, b"")
                self._measure_crashes()
            elif kind == "end":
                self._record(10, 0, 0, b"")
                return

    def _finish_crash(self, victim: str, crash_ms: int, down_ms: int | None = None) -> None:
        # A node that itself crashed and restarted since has forgotten the victim.
        up = {(n.name, n.generation) for n in self.nodes if n.up}
        live = [name for name, generation in self._knew[victim] if (name, generation) in up]
        if not live:
            return  # every node that knew the victim has itself crashed since
        seen = self._seen_dead.get(victim, {})
        times = [seen[name] - crash_ms for name in live if name in seen]
        first = min(times) if times else None
        last = max(times) if len(times) == len(live) else None
        self.result.detections.append((victim, crash_ms, first, last, down_ms))

    def _measure_crashes(self) -> None:
        for victim, crash_ms in sorted(self._crashes.items()):
            self._finish_crash(victim, crash_ms)
        for name, started in sorted(self._join_started.items()):
            known = self._join_known[name]
            # Those up when it joined and still up (later joiners learn it by their own join).
            up = {n.name for n in self.nodes if n.up}
            others = [n for n in self._join_audience[name] if n in up]
            if all(o in known for o in others):
                self.result.join_spread_ms.append(max((known[o] for o in others), default=started) - started)
            else:
                self.result.join_spread_ms.append(None)


# --- checkers -------------------------------------------------------------------------


def check_agreement(sim: Simulation) -> None:
    """After healing, every live node sees every live node alive and no crashed node alive."""
    live = [n for n in sim.nodes if n.up]
    live_names = {n.name for n in live}
    for node in live:
        assert node.core is not None
        for other in sim.nodes:
            member = node.core.member(other.name)
            if other.name in live_names:
                if member is None or member.state != NodeState.ALIVE:
                    sim.result.failures.append(("disagreement", (
                        f"{node.name} sees live {other.name} as "
                        f"{'unknown' if member is None else member.state.name.lower()}")))
                    return
            elif other.generation > 0 or other.index < sim.options.nodes or other.ever_crashed:
                if member is not None and member.state == NodeState.ALIVE and other.ever_crashed:
                    sim.result.failures.append(("disagreement", f"{node.name} sees crashed {other.name} alive"))
                    return


def check_false_deaths(sim: Simulation) -> None:
    if sim.result.false_deaths:
        at, observer, subject = sim.result.false_deaths[0]
        sim.result.failures.append(("false-death", f"{observer} declared live {subject} dead at {at} ms "
                                                   f"({len(sim.result.false_deaths)} in all)"))


def check_detection(sim: Simulation) -> None:
    """Each crash is seen dead by every live node within a bound, unless the victim was
    back up before the bound ran out (then nobody had to see it dead: a restart within
    a second, before its suspicion timed out, is no failure to detect)."""
    o = sim.options
    if o.partition != "none":
        return
    config = _config_for(o.preset, "x", "10.0.0.1")
    bound = (config.suspicion_max_timeout_mult * suspicion_timeout_min_ms(
        config.suspicion_mult, o.nodes + o.joins, config.probe_interval_ms)
        + config.awareness_max_multiplier * config.probe_interval_ms * 2)
    for victim, crash_ms, _first, last, down_ms in sim.result.detections:
        if last is None and down_ms is not None and down_ms < bound:
            continue
        if last is None or last > bound:
            sim.result.failures.append(("undetected", f"crash of {victim} at {crash_ms} ms: all live nodes saw it "
                                                      f"dead after {last} ms, bound {bound} ms"))
            return


# --- command line ---------------------------------------------------------------------


def _parse_duration(text: str) -> int:
    """Milliseconds in ``text`` ('600s', '10m', '250ms'); the simulator's clock counts ms.

    Raises ValueError (naming --duration) for text that is not a duration.
    """
    return round(parse_duration_s(text, "--duration") * 1000)


def _percentile(values: list[int], fraction: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(math.ceil(fraction * len(ordered))) - 1)]


def summarize(result: SimResult) -> list[str]:
    lines = [f"events: {result.events}"]
    firsts = [d[2] for d in result.detections if d[2] is not None]
    lasts = [d[3] for d in result.detections if d[3] is not None]
    spreads = [d[3] - d[2] for d in result.detections if d[2] is not None and d[3] is not None]
    if result.detections:
        lines.append(f"crashes: {len(result.detections)} detected-by-all: {len(lasts)}")
    if firsts:
        lines.append(f"detection first node ms: p50={_percentile(firsts, .5)} p99={_percentile(firsts, .99)} max={max(firsts)}")
    if lasts:
        lines.append(f"detection all nodes ms: p50={_percentile(lasts, .5)} p99={_percentile(lasts, .99)} max={max(lasts)}")
        lines.append(f"dead rumour spread first->last ms: p50={_percentile(spreads, .5)} max={max(spreads)}")
    if result.join_spread_ms:
        known = [j for j in result.join_spread_ms if j is not None]
        lines.append(f"late joins: {len(result.join_spread_ms)} known-everywhere: {len(known)}"
                     + (f" p50={_percentile(known, .5)} p99={_percentile(known, .99)} ms" if known else ""))
    lines.append(f"false deaths: {len(result.false_deaths)}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engram.testing.sim", description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--nodes", type=int)
    # Converted after parsing, not as an argparse type: the error already names --duration,
    # and argparse would prefix it with "argument --duration: " again.
    parser.add_argument("--duration", help="fault phase, e.g. 600s or 10m")
    parser.add_argument("--preset", choices=sorted(PRESETS))
    parser.add_argument("--loss", type=float)
    parser.add_argument("--delay-ms", help="MIN:MAX one-way delay")
    parser.add_argument("--duplicate", type=float)
    parser.add_argument("--reorder", type=float)
    parser.add_argument("--partition", choices=PARTITIONS)
    parser.add_argument("--crashes", type=int)
    parser.add_argument("--restart", choices=["yes", "no"])
    parser.add_argument("--stalls", type=int)
    parser.add_argument("--stall-ms", help="MIN:MAX stall length")
    parser.add_argument("--joins", type=int)
    parser.add_argument("--crash-kind", choices=["process", "host"],
                        help="process: the host refuses TCP to a crashed node (kill -9); host: silence")
    parser.add_argument("--clock-skew-ms", type=int,
                        help="each host's wall clock is off by a fixed draw from +-this (default 20)")
    parser.add_argument("--probing", choices=["aligned", "shuffled"],
                        help="probe order of every node (default: the preset's, aligned_probing)")
    args = parser.parse_args(argv)
    try:
        duration_ms = None if args.duration is None else _parse_duration(args.duration)
    except ValueError as exc:
        parser.error(str(exc))
    given: dict[str, Any] = dict(nodes=args.nodes, duration_ms=duration_ms, preset=args.preset, loss=args.loss,
                                 duplicate=args.duplicate, reorder=args.reorder, partition=args.partition,
                                 crashes=args.crashes, stalls=args.stalls, joins=args.joins,
                                 crash_kind=args.crash_kind, clock_skew_ms=args.clock_skew_ms,
                                 probing=args.probing)
    if args.restart is not None:
        given["restart"] = args.restart == "yes"
    for flag, low, high in (("delay_ms", "delay_ms_min", "delay_ms_max"), ("stall_ms", "stall_ms_min", "stall_ms_max")):
        text = getattr(args, flag)
        if text:
            parts = text.split(":")
            given[low], given[high] = int(parts[0]), int(parts[-1])
    if args.nodes is not None and args.nodes < 1:
        print("--nodes must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    options = draw_options(args.seed, **given)
    if given.get("nodes") and "heal_ms" not in given:
        options = replace(options, heal_ms=heal_ms_for(options.preset, options.nodes))
    print(f"options: {options.describe()}", flush=True)
    result = Simulation(options).run()
    for line in summarize(result):
        print(line)
    for kind, detail in result.failures:
        print(f"FAILED ({kind}, exit {EXIT_CODES[kind]}) seed={options.seed}: {detail}")
        print("reproduce: python -m engram.testing.sim " + " ".join(argv if argv is not None else sys.argv[1:]))
    print(f"event-log sha256: {result.digest}", flush=True)
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
