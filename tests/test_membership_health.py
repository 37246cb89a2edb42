"""The membership driver reports partitions, exports Prometheus metrics, and finds seeds by DNS SRV.

How: several nodes run in one trio run, each with real UDP and TCP sockets on its own
127.0.0.x address (port picked by the OS) and the ``test_min`` timings (100 ms probes), so
suspicions become deaths in about a second of real time.

- Partition: five nodes join; three are stopped (as a crash would). The survivors' detectors
  must go connected -> partitioned (2 of 5 reachable is below 0.5) with the documented
  penalty ``1 - 0.5 x (1 - r / 0.5)`` and reason in ``.health()``. Three fresh nodes under
  the same names then rejoin: the state must pass through healing (penalty 0.9) and end
  connected after the healing window.
- Metrics: a prometheus_client registry with ``register_membership_metrics`` renders members
  by state, probes, suspicions by kind and by (suspect, suspected_by) pair, refutes,
  awareness and bytes in/out, and stays bounded when pairs exceed the cap.
- The member table of ``engram cluster members`` is sorted and aligned.
- DNS SRV: a tiny DNS server written here answers on 127.0.0.1 (UDP, OS-picked port) with
  SRV records and A records in the additional section (and, for one target, only via a
  separate A query). ``resolve_srv_seeds`` must return the seeds in priority/weight order;
  a node configured only with ``seeds_srv`` must join the cluster through them, and once
  isolated must look the records up again and join a member it has never heard of. Malformed
  answers (bad id, truncated, pointer loops) raise DnsError only.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import trio
from prometheus_client import CollectorRegistry, generate_latest

from engram.net import dns
from engram.net._trio.discovery import resolve_srv_seeds
from engram.net._trio.metrics import register_membership_metrics
from engram.net._trio.node import MembershipConfig, MembershipHandle, serve_membership
from engram.net._trio.validate import validate_membership

# --- helpers ---------------------------------------------------------------------------


def _config(name: str, host: str, seeds: tuple[str, ...] = (), **extra: Any) -> MembershipConfig:
    return MembershipConfig(node_name=name, bind=f"{host}:0", seeds=seeds, preset="test_min",
                            partition_check_ms=100, partition_healing_ms=600, **extra)


def _address(handle: MembershipHandle) -> str:
    swim = handle.core.config
    return f"{swim.advertise_host}:{swim.advertise_port}"


async def _start(nursery: trio.Nursery, config: MembershipConfig) -> MembershipHandle:
    handle: MembershipHandle = await nursery.start(serve_membership, config)
    return handle


async def _until(predicate: Any, timeout_s: float, what: str) -> None:
    with trio.move_on_after(timeout_s):
        while not predicate():
            await trio.sleep(0.02)
        return
    raise AssertionError(f"timed out waiting for {what}")


def _alive(handle: MembershipHandle, count: int) -> bool:
    return handle.health()["members"]["alive"] == count


# --- partition detection ---------------------------------------------------------------


def test_partition_is_detected_with_penalty_then_heals() -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            first = await _start(nursery, _config("h1", "127.0.0.71"))
            seed = _address(first)
            handles = [first]
            for i in range(2, 6):
                handles.append(await _start(nursery, _config(f"h{i}", f"127.0.0.{70 + i}", (seed,))))
            await _until(lambda: all(_alive(h, 5) for h in handles), 10, "five nodes to form")
            health = first.health()
            assert health["partition"]["state"] == "connected"
            assert health["confidence_penalty"] == {"factor": 1.0, "reason": ""}

            for handle in handles[2:]:
                handle.stop()
            survivors = handles[:2]
            await _until(lambda: all(h.health()["partition"]["state"] == "partitioned" for h in survivors), 10,
                         "survivors to see a partition")
            # Suspects already count as unreachable; wait for the deaths and a fresh check.
            await _until(lambda: first.health()["members"]["dead"] == 3, 10, "three deaths")
            await trio.sleep(0.25)
            health = first.health()
            assert health["partition"]["reachable_fraction"] == pytest.approx(2 / 5)
            penalty = health["confidence_penalty"]
            assert penalty["factor"] == pytest.approx(1 - 0.5 * (1 - (2 / 5) / 0.5))
            assert "partitioned" in penalty["reason"] and "40%" in penalty["reason"]
            assert first.penalty().factor == pytest.approx(penalty["factor"])

            # The far side comes back (new processes under the same names).
            states: list[str] = []
            for i in range(3, 6):
                handles.append(await _start(nursery, _config(f"h{i}", f"127.0.0.{70 + i}", (seed,))))

            async def watch() -> None:
                while True:
                    state = first.health()["partition"]["state"]
                    if not states or states[-1] != state:
                        states.append(state)
                    await trio.sleep(0.01)

            with trio.move_on_after(15):
                async with trio.open_nursery() as watcher:
                    watcher.start_soon(watch)
                    await _until(lambda: first.health()["partition"]["state"] == "connected", 15, "healing")
                    watcher.cancel_scope.cancel()
            if states[-1] != first.health()["partition"]["state"]:
                states.append(first.health()["partition"]["state"])
            assert states[-1] == "connected", states
            assert "healing" in states, states
            assert [c["state"] for c in first.health()["partition"]["changes"]][-3:] == [
                "partitioned", "healing", "connected"]
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_partition_settings_are_validated() -> None:
    problems = validate_membership(MembershipConfig(node_name="x", bind="127.0.0.1:7946", partition_threshold=1.5),
                                   resolve=False)
    assert any("partition_threshold" in p for p in problems)
    problems = validate_membership(MembershipConfig(node_name="x", bind="127.0.0.1:7946", seeds_srv="engram.example"),
                                   resolve=False)
    assert any("seeds_srv" in p for p in problems)


# --- metrics ---------------------------------------------------------------------------


def test_metrics_export_membership_state() -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            first = await _start(nursery, _config("m1", "127.0.0.81"))
            others = [await _start(nursery, _config(f"m{i}", f"127.0.0.{80 + i}", (_address(first),)))
                      for i in (2, 3)]
            registry = CollectorRegistry()
            current: list[MembershipHandle | None] = [None]
            register_membership_metrics(registry, lambda: current[0])
            assert b"engram_cluster_up 0.0" in generate_latest(registry)
            current[0] = first
            await _until(lambda: _alive(first, 3), 10, "three nodes")
            others[1].stop()
            await _until(lambda: first.health()["members"]["dead"] == 1, 10, "a death")
            text = generate_latest(registry).decode()
            nursery.cancel_scope.cancel()
        assert "engram_cluster_up 1.0" in text
        assert 'engram_cluster_members{state="alive"} 2.0' in text
        assert 'engram_cluster_members{state="dead"} 1.0' in text
        assert 'engram_cluster_partition_state{state="connected"} 1.0' in text
        for name in ("engram_swim_probes_total", "engram_swim_refutes_total", "engram_swim_awareness_score",
                     'engram_swim_bytes_total{direction="in"}', 'engram_swim_bytes_total{direction="out"}',
                     'engram_swim_suspicions_total{reason="probe_failed"}'):
            assert name in text, name
        # Who suspected m3: m1 itself (its probe failed) or m2 (rumour); both name the pair.
        assert 'engram_swim_suspicions_by_pair_total{reason="' in text
        assert 'suspect="m3"' in text

    trio.run(main)


def test_suspicion_pairs_are_bounded() -> None:
    from engram.net.swim.config import SwimConfig
    from engram.net.swim.core import Membership
    import random

    core = Membership(SwimConfig.test_min(node_name="a", advertise_host="10.0.0.1", suspicion_log_count_max=4),
                      random.Random(1), 0)
    for i in range(10):
        core._count_suspicion(f"n{i}", "b", "rumour")
    assert len(core.suspicion_counts) == 5
    assert core.suspicion_counts[("_other", "_other", "rumour")] == 6


# --- DNS SRV ---------------------------------------------------------------------------


def _name(text: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in text.split(".")) + b"\0"


class _DnsServer:
    """Answers SRV queries for one name from ``records`` and A queries from ``hosts``.
    Targets in ``additional`` get their A record in the additional section."""

    def __init__(self, srv_name: str, records: list[tuple[int, int, int, str]], hosts: dict[str, str],
                 additional: set[str]) -> None:
        self.srv_name, self.records, self.hosts, self.additional = srv_name, records, hosts, additional
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.queries: list[tuple[str, int]] = []
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop:
            try:
                data, source = self.sock.recvfrom(512)
            except (socket.timeout, OSError):
                continue
            self.sock.sendto(self.answer(data), source)

    def answer(self, query: bytes) -> bytes:
        ident = struct.unpack(">H", query[:2])[0]
        labels, offset = [], 12
        while query[offset]:
            labels.append(query[offset + 1: offset + 1 + query[offset]].decode())
            offset += 1 + query[offset]
        qtype = struct.unpack(">H", query[offset + 1: offset + 3])[0]
        question = query[12: offset + 5]
        name = ".".join(labels)
        self.queries.append((name, qtype))
        answers: list[bytes] = []
        extra: list[bytes] = []
        rcode = 0
        # Names in answers point back at the question (offset 12): exercises compression.
        if qtype == dns.TYPE_SRV and name == self.srv_name:
            for priority, weight, port, target in self.records:
                body = struct.pack(">HHH", priority, weight, port) + _name(target)
                answers.append(b"\xc0\x0c" + struct.pack(">HHIH", 33, 1, 30, len(body)) + body)
                if target in self.additional:
                    extra.append(_name(target) + struct.pack(">HHIH", 1, 1, 30, 4)
                                 + socket.inet_aton(self.hosts[target]))
        elif qtype == dns.TYPE_A and name in self.hosts:
            answers.append(b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 30, 4) + socket.inet_aton(self.hosts[name]))
        else:
            rcode = 3
        header = struct.pack(">HHHHHH", ident, 0x8180 | rcode, 1, len(answers), 0, len(extra))
        return header + question + b"".join(answers) + b"".join(extra)


@pytest.fixture
def dns_server() -> Iterator[_DnsServer]:
    server = _DnsServer(
        "_engram._udp.cluster.test",
        [(20, 0, 7001, "late.cluster.test"), (10, 5, 7002, "b.cluster.test"), (10, 50, 7003, "a.cluster.test")],
        {"a.cluster.test": "127.0.0.91", "b.cluster.test": "127.0.0.92", "late.cluster.test": "127.0.0.93"},
        additional={"a.cluster.test", "b.cluster.test"},
    )
    try:
        yield server
    finally:
        server.close()


def test_srv_seeds_are_ordered_and_resolved(dns_server: _DnsServer) -> None:
    seeds = trio.run(lambda: resolve_srv_seeds("_engram._udp.cluster.test", server=dns_server.address))
    # priority ascending, then weight descending; late.cluster.test needed its own A query.
    assert seeds == ["127.0.0.91:7003", "127.0.0.92:7002", "127.0.0.93:7001"]
    assert ("late.cluster.test", dns.TYPE_A) in dns_server.queries
    assert ("a.cluster.test", dns.TYPE_A) not in dns_server.queries
    missing = trio.run(lambda: resolve_srv_seeds("_engram._udp.nowhere.test", server=dns_server.address))
    assert missing == []


def test_node_joins_through_srv_seeds() -> None:
    async def main(server: _DnsServer) -> None:
        async with trio.open_nursery() as nursery:
            first = await _start(nursery, _config("d1", "127.0.0.95"))
            port = first.core.config.advertise_port
            server.records[:] = [(10, 10, port, "d1.cluster.test")]
            joiner = await _start(nursery, _config("d2", "127.0.0.96", seeds_srv="_engram._udp.cluster.test",
                                                   dns_server=server.address))
            await _until(lambda: _alive(first, 2) and _alive(joiner, 2), 10, "join through SRV")
            nursery.cancel_scope.cancel()

    server = _DnsServer("_engram._udp.cluster.test", [], {"d1.cluster.test": "127.0.0.95"}, {"d1.cluster.test"})
    try:
        trio.run(main, server)
    finally:
        server.close()


def test_isolated_node_looks_srv_up_again_and_joins_the_new_seed() -> None:
    async def main(server: _DnsServer) -> None:
        async with trio.open_nursery() as nursery:
            first = await _start(nursery, _config("r1", "127.0.0.97"))
            server.records[:] = [(10, 10, first.core.config.advertise_port, "r1.cluster.test")]
            joiner = await _start(nursery, _config("r2", "127.0.0.98", seeds_srv="_engram._udp.cluster.test",
                                                   dns_server=server.address, rejoin_check_ms=200))
            await _until(lambda: _alive(joiner, 2), 10, "join through SRV")
            first.stop()
            await _until(lambda: joiner.health()["members"]["alive"] == 1, 10, "the seed's death")
            # A new member appears only in DNS: the isolated node must find it by itself.
            third = await _start(nursery, _config("r3", "127.0.0.99"))
            server.hosts["r3.cluster.test"] = "127.0.0.99"
            server.additional.add("r3.cluster.test")
            server.records[:] = [(10, 10, third.core.config.advertise_port, "r3.cluster.test")]
            await _until(lambda: _alive(joiner, 2) and _alive(third, 2), 10, "rejoin through refreshed SRV")
            nursery.cancel_scope.cancel()

    server = _DnsServer("_engram._udp.cluster.test", [], {"r1.cluster.test": "127.0.0.97"}, {"r1.cluster.test"})
    try:
        trio.run(main, server)
    finally:
        server.close()


def test_srv_server_silent_raises_dns_error() -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        with pytest.raises(dns.DnsError):
            trio.run(lambda: resolve_srv_seeds("_x._udp.test", server=f"127.0.0.1:{silent.getsockname()[1]}",
                                               timeout_ms=50, attempts=2))
    finally:
        silent.close()


def test_malformed_dns_answers_raise_only_dns_error() -> None:
    import random

    server = _DnsServer("_e._udp.t", [(1, 1, 7946, "a.t")], {"a.t": "10.0.0.1"}, {"a.t"})
    try:
        good = server.answer(dns.encode_query(7, "_e._udp.t", dns.TYPE_SRV))
    finally:
        server.close()
    answer = dns.decode_response(good, query_id=7)
    assert answer.srv == (dns.SrvRecord(1, 1, 7946, "a.t"),)
    assert answer.addresses == {"a.t": ("10.0.0.1",)}
    with pytest.raises(dns.DnsError):
        dns.decode_response(good, query_id=8)
    loop = good[:12] + b"\xc0\x0c" + good[12:]
    with pytest.raises(dns.DnsError):
        dns.decode_response(loop)
    rng = random.Random(5)
    for _ in range(3000):
        data = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        data = data[: rng.randint(0, len(data))] if rng.random() < 0.3 else data
        try:
            dns.decode_response(bytes(data))
        except dns.DnsError:
            pass


def test_member_table_is_sorted_and_aligned() -> None:
    from engram.net.cluster_view import format_members

    text = format_members([
        {"id": "n2", "swim_address": "127.0.0.2:7946", "api_address": "", "state": "alive", "incarnation": 1,
         "tags": {"role": "engram"}},
        {"id": "n1", "swim_address": "127.0.0.1:7946", "api_address": "127.0.0.1:7432", "state": "dead",
         "incarnation": 3, "tags": {}},
    ])
    lines = text.splitlines()
    assert lines[0].split() == ["ID", "STATE", "SWIM", "ADDRESS", "API", "ADDRESS", "INCARNATION", "ROLE"]
    assert lines[1].split() == ["n1", "dead", "127.0.0.1:7946", "127.0.0.1:7432", "3", "-"]
    assert lines[2].split() == ["n2", "alive", "127.0.0.2:7946", "-", "1", "engram"]
    assert lines[1].index("127.0.0.1:7946") == lines[0].index("SWIM")
