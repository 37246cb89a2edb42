"""Membership configuration: one frozen keyword-only dataclass with memberlist's presets.

``lan()``, ``local()`` and ``wan()`` copy memberlist's DefaultLANConfig,
DefaultLocalConfig and DefaultWANConfig numbers; ``test_min()`` shrinks every period so
unit tests reach timeouts and retransmit limits in a few simulated seconds. Every field
says its unit in its name and is checked in ``__post_init__``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass
from typing import Any

from engram.errors import ValidationError
from engram.net.swim.keyring import Keyring
from engram.net.swim.messages import META_BYTES_MAX

__all__ = ["SwimConfig"]


def _fail(field: str, problem: str, allowed: str, example: str) -> None:
    raise ValidationError(field, problem, allowed, example)


@dataclass(frozen=True, kw_only=True, slots=True)
class SwimConfig:
    """How one node takes part in membership."""

    # Unique name in the cluster; also how peers address pings to us.
    node_name: str
    # IP address peers reach us on (never 0.0.0.0), and the UDP+TCP gossip port.
    advertise_host: str = "127.0.0.1"
    advertise_port: int = 7946
    # Serf-format metadata (engram.net.swim.tags.encode_tags), at most 512 bytes.
    meta: bytes = b""
    # How often we probe one member; awareness multiplies it while we look unhealthy.
    # Shorter detects failures sooner at the cost of more packets.
    probe_interval_ms: int = 1000
    # How long we wait for a direct ack before asking k peers to probe indirectly.
    probe_timeout_ms: int = 500
    # Suspicion timeout = suspicion_mult x max(1, log10 n) x probe interval at the least,
    # suspicion_max_timeout_mult times that at the most (Lifeguard shrinks it with
    # independent confirmations). Larger means fewer false deaths and slower detection.
    suspicion_mult: int = 4
    suspicion_max_timeout_mult: int = 6
    # Gossip: every interval, send queued rumours to this many random members.
    gossip_interval_ms: int = 200
    gossip_nodes: int = 3
    # Peers asked to probe a member that missed our direct ping.
    indirect_checks: int = 3
    # A rumour is sent retransmit_mult x ceil(log10(n+1)) times.
    retransmit_mult: int = 4
    # Full state exchange over TCP with one random member (scaled up above 32 members).
    push_pull_interval_ms: int = 30_000
    # Keep gossiping to, and remembering, dead members this long.
    gossip_to_the_dead_ms: int = 30_000
    # Stream operations (push/pull, TCP fallback ping) give up after this long.
    tcp_timeout_ms: int = 10_000
    # Awareness score 0..max-1 multiplies probe intervals (Lifeguard's local health).
    awareness_max_multiplier: int = 8
    # Largest UDP payload we send; rumours are piggybacked up to it.
    udp_buffer_bytes: int = 1400
    # Skip the TCP ping that runs beside indirect probes.
    disable_tcp_pings: bool = False
    # LZW-compress packets when smaller. Off by default: receivers accept both and
    # pure-Python LZW costs CPU on every packet; memberlist peers decode either way.
    compress_outgoing: bool = False
    # memberlist >= 0.3 label (empty: none); must match on every member.
    label: bytes = b""
    skip_inbound_label_check: bool = False
    # AES keys (16/24/32 bytes), first is primary. Empty: no encryption.
    keys: tuple[bytes, ...] = ()
    # During a switch to encryption: accept plaintext (verify_incoming=False) and/or
    # still send plaintext (verify_outgoing=False).
    verify_incoming: bool = True
    verify_outgoing: bool = True
    # memberlist protocol version we speak (1..5) and the delegate (Serf) range we advertise.
    protocol_version: int = 2
    delegate_version_min: int = 2
    delegate_version_max: int = 5
    delegate_version: int = 4
    # After joining, re-announce our own alive rumour this long, so a join whose first
    # rumour was lost still reaches everyone in seconds instead of waiting for push/pull.
    join_announce_ms: int = 10_000
    # When a ping arrives from a member we do not know, sync state with it over TCP, at
    # most once per this period per sender (0 disables).
    unknown_sender_sync_ms: int = 5_000
    # Like Serf's reconnect: every interval, try a TCP push/pull with one member we saw
    # fail (not leave), for up to reconnect_timeout_ms; this is what heals a partition after
    # both sides have declared each other dead. 0 disables.
    reconnect_interval_ms: int = 30_000
    reconnect_timeout_ms: int = 24 * 3600 * 1000
    # Count each indirect prober that nacked (it pinged the member itself and got no ack)
    # as a confirmation of our own suspicion. Off by default: nacks all describe the same
    # moment, so they cannot tell a stall from a death, while Lifeguard's confirmations,
    # from separate probes at separate times, show the failure lasts. In the simulator,
    # turning this on brought false deaths with short timeouts and stalls (test_min seeds
    # 27 and 48) and did not speed up LAN detection.
    nack_confirmations: bool = False
    # Suspect at once when the TCP fallback ping is refused (the host answered: nothing
    # listens on the gossip port) instead of waiting for the rest of the probe round. A
    # stalled process still accepts connections and a cut link times out, so neither is
    # affected. Off: memberlist exactly.
    suspect_on_refused: bool = True
    # When we learn of a suspicion by rumour, send it once to the accused as well; an
    # accused that already refuted answers a stale accusation with its alive directly.
    # Rumours go out a limited number of times, so otherwise a refutation can miss a node
    # that then declares a live member dead. One small packet per suspicion learned.
    tell_the_accused: bool = True
    # Gossip at once when a member changes state in our view, not only on the gossip tick:
    # the same packets, sent earlier, so news spreads one hop per network delay.
    eager_gossip: bool = True
    # Clock-aligned probe order. Ring = alive and suspect members plus us, sorted by name
    # (n long, we at index i); at a tick in slot s of the shared clock (probe intervals of
    # the wall clock the driver hands the core, at this node's phase) we probe
    # ring[(i + 1 + s mod (n - 1)) mod n]. For one slot that is a permutation of the ring
    # without fixed point, so every member is probed about once per interval (gap under
    # two intervals) instead of at Poisson-random times, whose exponential tail made the
    # wait for the first probe of a failed member up to ~4.6 s at p99; over n - 1 ticks
    # each node still probes every member once. Nothing is adopted from other nodes and
    # the wire is unchanged: memberlist/Serf peers probe their own way, which only costs
    # alignment. Bad clocks (skew, steps) degrade the order towards random, never the
    # completeness: a member unprobed for 2(n - 1) ticks (memberlist's worst case plus
    # one) goes first, and while awareness > 0 (ticks stretched, slots skipped) the node
    # probes in plain round robin. Simulator (100 nodes, 1% loss, seeds 101-110):
    # detection p50 9.28 -> 8.97 s, p99 12.54 -> 10.17 s, no false deaths. False:
    # memberlist's shuffled order.
    aligned_probing: bool = True
    # Kept suspicion/refute history for /metrics and debugging ("who suspected whom").
    suspicion_log_count_max: int = 256

    def __post_init__(self) -> None:
        if not self.node_name or len(self.node_name.encode()) > 128:
            _fail("node_name", f"{self.node_name!r} is empty or too long", "1..128 bytes of UTF-8", "n1")
        try:
            host = ipaddress.ip_address(self.advertise_host)
        except ValueError:
            _fail("advertise_host", f"{self.advertise_host!r} is not an IP address",
                  "an IPv4 or IPv6 address peers can reach", "10.0.0.5")
        else:
            if host.is_unspecified:
                _fail("advertise_host", f"{self.advertise_host} is unspecified; peers cannot reach it",
                      "a concrete address of this host", "10.0.0.5")
        if not 1 <= self.advertise_port <= 65535:
            _fail("advertise_port", f"{self.advertise_port} is out of range", "1..65535", "7946")
        if len(self.meta) > META_BYTES_MAX:
            _fail("meta", f"{len(self.meta)} bytes", f"at most {META_BYTES_MAX} bytes", "encode_tags({'role': 'engram'})")
        for name in ("probe_interval_ms", "probe_timeout_ms", "gossip_interval_ms", "push_pull_interval_ms",
                     "tcp_timeout_ms"):
            if getattr(self, name) <= 0:
                _fail(name, f"{getattr(self, name)} is not positive", "a positive number of milliseconds", "1000")
        if self.probe_timeout_ms > self.probe_interval_ms:
            _fail("probe_timeout_ms", "longer than probe_interval_ms", "at most probe_interval_ms", "500")
        for name in ("suspicion_mult", "suspicion_max_timeout_mult", "gossip_nodes", "retransmit_mult",
                     "awareness_max_multiplier"):
            if getattr(self, name) < 1:
                _fail(name, f"{getattr(self, name)} is below 1", "an integer >= 1", "4")
        if self.indirect_checks < 0:
            _fail("indirect_checks", "negative", "an integer >= 0", "3")
        if not 576 <= self.udp_buffer_bytes <= 65000:
            _fail("udp_buffer_bytes", f"{self.udp_buffer_bytes}", "576..65000", "1400")
        if not 1 <= self.protocol_version <= 5:
            _fail("protocol_version", f"{self.protocol_version}", "1..5", "2")
        if not 0 <= len(self.label) <= 255:
            _fail("label", "longer than 255 bytes", "0..255 bytes", "b'dc1'")
        for key in self.keys:
            if len(key) not in (16, 24, 32):
                _fail("keys", f"a key is {len(key)} bytes", "16, 24 or 32 bytes each", "(os.urandom(32),)")

    @property
    def advertise_addr(self) -> bytes:
        return ipaddress.ip_address(self.advertise_host).packed

    @property
    def vsn(self) -> bytes:
        return bytes((1, 5, self.protocol_version, self.delegate_version_min,
                      self.delegate_version_max, self.delegate_version))

    def make_keyring(self) -> Keyring | None:
        return Keyring(list(self.keys)) if self.keys else None

    def replace(self, **changes: Any) -> SwimConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def lan(cls, **overrides: Any) -> SwimConfig:
        """memberlist's DefaultLANConfig: 1 s probes, 500 ms timeout, suspicion x4."""
        return cls(**overrides)

    @classmethod
    def wan(cls, **overrides: Any) -> SwimConfig:
        """memberlist's DefaultWANConfig."""
        values: dict[str, Any] = dict(
            probe_interval_ms=5000, probe_timeout_ms=3000, suspicion_mult=6, gossip_interval_ms=500,
            gossip_nodes=4, push_pull_interval_ms=60_000, gossip_to_the_dead_ms=60_000, tcp_timeout_ms=30_000,
        )
        values.update(overrides)
        return cls(**values)

    @classmethod
    def local(cls, **overrides: Any) -> SwimConfig:
        """memberlist's DefaultLocalConfig: loopback or one rack."""
        values: dict[str, Any] = dict(
            probe_timeout_ms=200, suspicion_mult=3, gossip_interval_ms=100, indirect_checks=1,
            retransmit_mult=2, push_pull_interval_ms=15_000, gossip_to_the_dead_ms=15_000, tcp_timeout_ms=1000,
        )
        values.update(overrides)
        return cls(**values)

    @classmethod
    def test_min(cls, **overrides: Any) -> SwimConfig:
        """Tiny periods and limits so tests reach every timeout quickly."""
        values: dict[str, Any] = dict(
            probe_interval_ms=100, probe_timeout_ms=50, suspicion_mult=4, suspicion_max_timeout_mult=6,
            gossip_interval_ms=20, gossip_nodes=3, indirect_checks=2, retransmit_mult=2,
            push_pull_interval_ms=2000, gossip_to_the_dead_ms=2000, tcp_timeout_ms=200,
            join_announce_ms=1000, unknown_sender_sync_ms=500, reconnect_interval_ms=1000,
        )
        values.update(overrides)
        return cls(**values)
