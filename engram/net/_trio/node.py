"""The membership runtime: one Membership core driven over UDP and TCP on one port.

``serve_membership(config)`` binds UDP and TCP on the gossip address, joins the seeds
(names resolved, retried with backoff until one push/pull succeeds), and runs every task of
the node in one nursery: the UDP reader, the TCP listener and its connections, the outgoing
datagram sender, outgoing stream requests, and the timer that calls ``core.tick`` at
``core.next_deadline_ms()``. The core decides everything; this module only moves bytes.

Queues are bounded: outgoing datagrams go through a channel of 1,024 (full: the datagram
is dropped and counted, as the network could have done), inbound TCP connections are
limited to 128 at a time, and every stream read stops at the core's 20 MiB limit or
``tcp_timeout_ms``.

Every ``partition_check_ms`` the runtime feeds the member counts to a PartitionDetector
(engram.net.swim.partition): connected -> partitioned (reachable fraction below
``partition_threshold``) -> healing -> connected; ``handle.health()`` reports the state and
``handle.penalty()`` the confidence multiplier and reason for results that depend on other
nodes. Seeds may also come from DNS SRV (``seeds_srv``; engram.net._trio.discovery), looked
up again on every join attempt. Outgoing TCP is dialled from the bind address, so peers and
firewall rules see one source address for UDP and TCP.

Run one node by hand (the real-process and Serf conformance tests do):
``python -m engram.net._trio.node --node-name n1 --bind 127.0.0.2:7946 --seeds 127.0.0.1:7946``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import random
import signal
import socket as stdlib_socket
import sys
from dataclasses import dataclass, field
from typing import Any

import trio

from engram.errors import ValidationError
from engram.net._trio.clock import now_ms, wall_offset_ms
from engram.net._trio.discovery import resolve_srv_seeds
from engram.net.dns import DnsError
from engram.net.swim import codec
from engram.net.swim.config import SwimConfig
from engram.net.swim.core import Datagram, Membership, StreamRequest
from engram.net.swim.errors import WireError
from engram.net.swim.keyring import decode_key
from engram.net.swim.partition import PartitionDetector, PartitionState, Penalty
from engram.net.swim.tags import decode_tags, encode_tags, engram_tags

__all__ = ["MembershipConfig", "MembershipHandle", "serve_membership", "parse_host_port", "main"]

log = logging.getLogger("engram.membership")

_DATAGRAM_QUEUE_MAX = 1024
_STREAM_CONNECTIONS_MAX = 128
_UDP_RECV_BYTES_MAX = 65536
_JOIN_BACKOFF_MS_MIN = 500
_JOIN_BACKOFF_MS_MAX = 30_000


def parse_host_port(text: str, default_port: int = 7946) -> tuple[str, int]:
    """``host[:port]`` or ``[v6]:port``. Raises ValidationError."""
    text = text.strip()
    host, port = text, default_port
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValidationError("address", f"{text!r} has no closing bracket", "host:port", "[::1]:7946")
        host = text[1:end]
        if text[end + 1 :].startswith(":"):
            port = _port(text[end + 2 :], text)
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        port = _port(port_text, text)
    if not host:
        raise ValidationError("address", f"{text!r} has no host", "host:port", "10.0.0.1:7946")
    return host, port


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise ValidationError("address", f"{whole!r} has a bad port", "a port 0..65535", "10.0.0.1:7946")
    return int(text)


@dataclass(frozen=True, kw_only=True)
class MembershipConfig:
    """What ``engram serve --cluster`` passes to the membership runtime."""

    node_name: str
    # host:port to bind UDP and TCP on; the host is also advertised unless advertise is set.
    bind: str = "0.0.0.0:7946"
    advertise: str = ""
    # host:port of members to join; names are resolved, retried with backoff.
    seeds: tuple[str, ...] = ()
    # An SRV name (e.g. _engram._udp.example.com) whose records list more seeds; looked up
    # again on every join attempt, so a new DNS record is picked up while retrying.
    seeds_srv: str = ""
    # host[:port] of the DNS server for seeds_srv; empty: the first of /etc/resolv.conf.
    dns_server: str = ""
    # After joining, how often to check that some other member is still alive; if none
    # is, the seeds (names and SRV records) are looked up again and joined.
    rejoin_check_ms: int = 30_000
    # Base64 AES key as `serf keygen` prints; empty: no encryption.
    encrypt: str = ""
    http_addr: str = ""
    data_addr: str = ""
    role: str = "engram"
    # Timing preset: "lan" (memberlist DefaultLANConfig) or "local".
    preset: str = "lan"
    # Milliseconds to wait for our leave rumour to go out before stopping.
    leave_timeout_ms: int = 5000
    # Partition detection: below this reachable fraction (alive+1)/(tracked+1) the node is
    # partitioned. Higher catches smaller splits but flags more ordinary failures.
    partition_threshold: float = 0.5
    # How often the detector looks at the member list; detection takes up to this long
    # after the suspicions have turned into deaths.
    partition_check_ms: int = 2000
    # How long the fraction must stay above the threshold before healing becomes connected.
    partition_healing_ms: int = 10_000
    swim_overrides: dict[str, Any] = field(default_factory=dict)

    def swim_config(self) -> SwimConfig:
        bind_host, bind_port = parse_host_port(self.bind)
        advertise_host, advertise_port = parse_host_port(self.advertise, bind_port) if self.advertise else (bind_host, bind_port)
        if advertise_host in ("0.0.0.0", "::", ""):
            raise ValidationError("advertise", f"binding {self.bind} gives no address peers can reach",
                                  "bind a concrete address, or set advertise", "--bind 10.0.0.5:7946")
        preset = {"lan": SwimConfig.lan, "local": SwimConfig.local, "wan": SwimConfig.wan,
                  "test_min": SwimConfig.test_min}.get(self.preset)
        if preset is None:
            raise ValidationError("preset", f"{self.preset!r}", "lan, local, wan or test_min", "lan")
        PartitionDetector(threshold=self.partition_threshold, healing_window_ms=self.partition_healing_ms)
        if self.rejoin_check_ms <= 0:
            raise ValidationError("rejoin_check_ms", f"{self.rejoin_check_ms}", "milliseconds > 0", "30000")
        if self.partition_check_ms <= 0:
            raise ValidationError("partition_check_ms", f"{self.partition_check_ms}", "milliseconds > 0", "2000")
        keys = (decode_key(self.encrypt),) if self.encrypt else ()
        meta = encode_tags(engram_tags(http_addr=self.http_addr, data_addr=self.data_addr, role=self.role))
        return preset(node_name=self.node_name, advertise_host=advertise_host, advertise_port=advertise_port,
                      meta=meta, keys=keys, **self.swim_overrides)


class MembershipHandle:
    """What the server holds while membership runs."""

    def __init__(self, core: Membership, nursery: trio.Nursery, config: MembershipConfig) -> None:
        self.core = core
        self.config = config
        self._nursery = nursery
        self.dropped_datagrams = 0
        self.send_errors = 0
        self.partition = PartitionDetector(threshold=config.partition_threshold,
                                           healing_window_ms=config.partition_healing_ms)
        # (at_ms, state) for each change of partition state, newest last, bounded.
        self.partition_log: list[tuple[int, str]] = []

    def check_partition(self, now_ms: int) -> PartitionState:
        """Feed the detector the current member counts (the runtime calls this every
        ``partition_check_ms``); returns the state."""
        before = self.partition.state
        reachable, tracked = self.core.reachability()
        state = self.partition.update(reachable, tracked, now_ms)
        if state != before:
            log.warning("partition state %s -> %s (%d of %d other members reachable)",
                        before.value, state.value, reachable, tracked)
            self.partition_log.append((now_ms, state.value))
            del self.partition_log[:-32]
        return state

    def penalty(self) -> Penalty:
        """The confidence multiplier (and reason) for results that depend on other nodes:
        1.0 when connected; 0.9 while healing; ``1 - 0.5 x (1 - r / threshold)`` (floor
        0.5) while partitioned, r being the reachable fraction. Constant time."""
        return self.partition.penalty()

    def members(self) -> list[dict[str, Any]]:
        """The /cluster/nodes list: id, swim_address, api_address, state, incarnation, tags."""
        out = []
        for member in self.core.members():
            try:
                tags = decode_tags(member.meta)
            except WireError:
                tags = {}
            out.append({
                "id": member.name,
                "swim_address": f"{member.host}:{member.port}",
                "api_address": tags.get("http_addr", ""),
                "state": {0: "alive", 1: "suspect", 2: "dead", 3: "left"}[int(member.state)],
                "incarnation": member.incarnation,
                "tags": tags,
            })
        return out

    def health(self) -> dict[str, Any]:
        """The membership part of /cluster/health."""
        counts = {"alive": 0, "suspect": 0, "dead": 0, "left": 0}
        for member in self.members():
            counts[member["state"]] += 1
        penalty = self.partition.penalty()
        return {
            "node_id": self.core.name,
            "members": counts,
            "partition": {
                "state": self.partition.state.value,
                "reachable_fraction": round(self.partition.reachable_fraction, 4),
                "threshold": self.partition.threshold,
                "changes": [{"at_ms": at, "state": state} for at, state in self.partition_log[-8:]],
            },
            "confidence_penalty": {"factor": round(penalty.factor, 4), "reason": penalty.reason},
            "reachable_fraction": round(self.partition.reachable_fraction, 4),
            "awareness_score": self.core.awareness.score,
            "incarnation": self.core.incarnation,
            "joined": self.core.joined,
            "recent_suspicions": [
                {"at_ms": at, "node": node, "by": by, "reason": why} for at, node, by, why in self.core.suspicion_log
            ][-20:],
        }

    def metrics(self) -> dict[str, int]:
        values = self.core.metrics.as_dict()
        values["dropped_datagrams"] = self.dropped_datagrams
        values["send_errors"] = self.send_errors
        values["awareness_score"] = self.core.awareness.score
        return values

    async def leave(self) -> None:
        """Gossip our departure, wait for it to go out (bounded), then stop the node."""
        self.core.leave(now_ms())
        self._poke()
        with trio.move_on_after(self.config.leave_timeout_ms / 1000):
            while not self.core.leave_done:
                await trio.sleep(0.05)
        self._nursery.cancel_scope.cancel()

    def stop(self) -> None:
        """Stop without telling anyone (as a crash would)."""
        self._nursery.cancel_scope.cancel()

    def _poke(self) -> None:  # replaced by the runtime
        pass


class _Runtime:
    def __init__(self, config: MembershipConfig, swim: SwimConfig, nursery: trio.Nursery,
                 udp: trio.socket.SocketType) -> None:
        self.config = config
        self.swim = swim
        self.nursery = nursery
        self.udp = udp
        self.core = Membership(swim, random.Random(), now_ms(), clock_offset_ms=wall_offset_ms())
        self.handle = MembershipHandle(self.core, nursery, config)
        self.handle._poke = self.flush  # type: ignore[method-assign]
        self.send_channel, self.receive_channel = trio.open_memory_channel[tuple[tuple[str, int], bytes]](_DATAGRAM_QUEUE_MAX)
        self.wakeup = trio.Event()
        self.connections = trio.CapacityLimiter(_STREAM_CONNECTIONS_MAX)
        bind_host = parse_host_port(config.bind)[0]
        self.local_address = None if bind_host in ("0.0.0.0", "::") else bind_host

    def flush(self) -> None:
        """Hand the core's outputs to the sender and stream tasks; wake the timer."""
        for output in self.core.poll_output():
            if isinstance(output, Datagram):
                try:
                    self.send_channel.send_nowait((output.target, output.data))
                except trio.WouldBlock:
                    self.handle.dropped_datagrams += 1
            else:
                self.nursery.start_soon(self.run_stream_request, output)
        for change in self.core.poll_events():
            log.info("member %s is %s (incarnation %d): %s", change.node, change.state, change.incarnation, change.reason)
        self.wakeup.set()

    async def serve_udp_sender(self) -> None:
        async for target, data in self.receive_channel:
            try:
                await self.udp.sendto(data, target)
            except OSError:
                self.handle.send_errors += 1

    async def serve_udp_reader(self) -> None:
        while True:
            data, source = await self.udp.recvfrom(_UDP_RECV_BYTES_MAX)
            self.core.receive((source[0], source[1]), data, now_ms())
            self.flush()

    async def serve_timer(self) -> None:
        while True:
            deadline_ms = self.core.next_deadline_ms()
            self.wakeup = trio.Event()
            with trio.move_on_at(deadline_ms / 1000):
                await self.wakeup.wait()
            # The wall clock may have been stepped (NTP): keep the shared clock current.
            self.core.set_clock_offset(wall_offset_ms())
            self.core.tick(now_ms())
            self.flush()

    async def _read_message(self, stream: trio.abc.Stream) -> bytes | None:
        buffer = bytearray()
        while len(buffer) <= codec.STREAM_BYTES_MAX:
            if buffer:
                size = self.core.stream_message_size(bytes(buffer))
                if size is not None:
                    return bytes(buffer[:size])
            chunk = await stream.receive_some(65536)
            if not chunk:
                return None
            buffer += chunk
        return None

    async def _connect(self, target: tuple[str, int]) -> trio.SocketStream:
        """TCP to ``target`` from our bind address when it is a specific one, so peers
        (and firewall rules) see the same source on TCP as on UDP. Raises
        ConnectionRefusedError when the host answers with a reset."""
        family = stdlib_socket.AF_INET6 if ":" in target[0] else stdlib_socket.AF_INET
        sock = trio.socket.socket(family, stdlib_socket.SOCK_STREAM)
        try:
            if self.local_address is not None and (":" in self.local_address) == (family == stdlib_socket.AF_INET6):
                await sock.bind((self.local_address, 0))
            await sock.connect(target)
        except BaseException:
            sock.close()
            raise
        return trio.SocketStream(sock)

    async def run_stream_request(self, request: StreamRequest) -> None:
        answer: bytes | None = None
        refused = False
        with trio.move_on_after(request.timeout_ms / 1000):
            try:
                stream = await self._connect(request.target)
                async with stream:
                    await stream.send_all(request.data)
                    answer = await self._read_message(stream)
            except ConnectionRefusedError:
                refused = True
                log.debug("stream to %s refused", request.target)
            except (OSError, trio.BrokenResourceError, WireError) as exc:
                log.debug("stream to %s failed: %s", request.target, exc)
        self.core.stream_reply(request.token, answer, now_ms(), refused=refused)
        self.flush()

    async def handle_connection(self, stream: trio.SocketStream) -> None:
        async with self.connections:
            try:
                async with stream:
                    with trio.move_on_after(self.swim.tcp_timeout_ms / 1000):
                        peer = stream.socket.getpeername()
                        data = await self._read_message(stream)
                        if data is None:
                            return
                        reply = self.core.receive_stream((peer[0], peer[1]), data, now_ms())
                        self.flush()
                        if reply is not None:
                            await stream.send_all(reply)
            except (OSError, trio.BrokenResourceError, WireError) as exc:
                self.core.metrics.decode_errors += isinstance(exc, WireError)
                log.debug("inbound stream failed: %s", exc)

    async def serve_partition_check(self) -> None:
        while True:
            await trio.sleep(self.config.partition_check_ms / 1000)
            self.handle.check_partition(now_ms())

    async def serve_join(self, seeds: tuple[str, ...]) -> None:
        """Push/pull with the seeds until one answers, backing off with jitter; then check
        every ``rejoin_check_ms`` and start over (names and SRV records looked up again)
        if no other member is alive any more, e.g. after a long isolation."""
        if not (seeds or self.config.seeds_srv):
            return
        rng = random.Random()
        while True:
            backoff_ms = _JOIN_BACKOFF_MS_MIN
            while not self.core.leaving and not (self.core.joined and self.core.reachability()[0] > 0):
                await self._join_once(seeds)
                await trio.sleep((backoff_ms + rng.randrange(backoff_ms // 2 + 1)) / 1000)
                backoff_ms = min(_JOIN_BACKOFF_MS_MAX, backoff_ms * 2)
            await trio.sleep(self.config.rejoin_check_ms / 1000)

    async def _join_once(self, seeds: tuple[str, ...]) -> None:
        addresses = []
        found = list(seeds)
        if self.config.seeds_srv:
            try:
                found += await resolve_srv_seeds(self.config.seeds_srv, server=self.config.dns_server)
            except (DnsError, OSError) as exc:
                log.warning("cannot look up seeds %s: %s", self.config.seeds_srv, exc)
        for seed in found:
            host, port = parse_host_port(seed)
            try:
                infos = await trio.socket.getaddrinfo(host, port, type=stdlib_socket.SOCK_STREAM,
                                                      family=stdlib_socket.AF_INET)
            except OSError as exc:
                log.warning("cannot resolve seed %s: %s", seed, exc)
                continue
            for info in infos[:1]:
                addresses.append((info[4][0], info[4][1]))
        own = (self.swim.advertise_host, self.swim.advertise_port)
        self.core.join([a for a in dict.fromkeys(addresses) if a != own], now_ms())
        self.flush()


async def serve_membership(config: MembershipConfig, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Run membership until cancelled or ``handle.leave()``; ``task_status.started(handle)``
    once both sockets are bound. Raises ValidationError for a bad config, OSError if the
    port is taken."""
    bind_host, bind_port = parse_host_port(config.bind)
    if bind_port != 0:
        swim = config.swim_config()
    listeners = await trio.open_tcp_listeners(bind_port, host=bind_host)
    if bind_port == 0:
        # Port 0 (tests): the OS picks the TCP port and UDP binds the same number.
        bind_port = listeners[0].socket.getsockname()[1]
        host_text = f"[{bind_host}]" if ":" in bind_host else bind_host
        config = dataclasses.replace(config, bind=f"{host_text}:{bind_port}")
        try:
            swim = config.swim_config()
        except ValidationError:
            for listener in listeners:
                await listener.aclose()
            raise
    family = stdlib_socket.AF_INET6 if ":" in bind_host else stdlib_socket.AF_INET
    udp = trio.socket.socket(family, stdlib_socket.SOCK_DGRAM)
    await udp.bind((bind_host, bind_port))
    with udp:
        async with trio.open_nursery() as nursery:
            runtime = _Runtime(config, swim, nursery, udp)
            nursery.start_soon(runtime.serve_udp_sender)
            nursery.start_soon(runtime.serve_udp_reader)
            nursery.start_soon(runtime.serve_timer)
            nursery.start_soon(trio.serve_listeners, runtime.handle_connection, listeners)
            nursery.start_soon(runtime.serve_join, config.seeds)
            nursery.start_soon(runtime.serve_partition_check)
            runtime.flush()
            task_status.started(runtime.handle)


# --- standalone runner ----------------------------------------------------------------


async def _serve_status_file(handle: MembershipHandle, path: str) -> None:
    """Write the member list as JSON (atomically) twice a second, for tests and scripts."""
    while True:
        body = json.dumps({"members": handle.members(), "health": handle.health(), "metrics": handle.metrics()})
        temporary = path + ".tmp"
        with open(temporary, "w") as f:
            f.write(body)
        os.replace(temporary, path)
        await trio.sleep(0.2)


async def _run(config: MembershipConfig, status_file: str | None) -> None:
    async with trio.open_nursery() as nursery:
        handle: MembershipHandle = await nursery.start(serve_membership, config)
        print(json.dumps({"started": config.node_name, "bind": config.bind}), flush=True)
        if status_file:
            nursery.start_soon(_serve_status_file, handle, status_file)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                await handle.leave()
                nursery.cancel_scope.cancel()
                return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engram.net._trio.node",
                                     description="Run one Engram membership node (memberlist protocol).")
    parser.add_argument("--node-name", required=True)
    parser.add_argument("--bind", default="0.0.0.0:7946", help="HOST[:PORT] for UDP and TCP gossip")
    parser.add_argument("--advertise", default="", help="HOST[:PORT] peers should use, if not the bind address")
    parser.add_argument("--seeds", default="", help="comma-separated HOST:PORT of members to join")
    parser.add_argument("--seeds-srv", default="", help="DNS SRV name listing seeds, e.g. _engram._udp.example.com")
    parser.add_argument("--dns-server", default="", help="HOST[:PORT] of the DNS server for --seeds-srv")
    parser.add_argument("--encrypt", default="", help="base64 key as `serf keygen` prints")
    parser.add_argument("--partition-threshold", type=float, default=0.5)
    parser.add_argument("--partition-check-ms", type=int, default=2000)
    parser.add_argument("--partition-healing-ms", type=int, default=10_000)
    parser.add_argument("--reconnect-interval-ms", type=int, default=None,
                        help="how often to try a failed member again (heals partitions); preset default")
    parser.add_argument("--probe-interval-ms", type=int, default=None, help="probe period; preset default")
    parser.add_argument("--probing", choices=["aligned", "shuffled"], default=None,
                        help="probe order: clock-aligned ring (default) or memberlist's shuffled list")
    parser.add_argument("--http-addr", default="")
    parser.add_argument("--data-addr", default="")
    parser.add_argument("--role", default="engram")
    parser.add_argument("--preset", default="lan", choices=["lan", "local", "wan", "test_min"])
    parser.add_argument("--status-file", default=None, help="write members/health JSON here periodically")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    seeds = tuple(s for s in args.seeds.split(",") if s.strip())
    config = MembershipConfig(node_name=args.node_name, bind=args.bind, advertise=args.advertise, seeds=seeds,
                              encrypt=args.encrypt, http_addr=args.http_addr, data_addr=args.data_addr,
                              role=args.role, preset=args.preset, seeds_srv=args.seeds_srv,
                              dns_server=args.dns_server, partition_threshold=args.partition_threshold,
                              partition_check_ms=args.partition_check_ms,
                              partition_healing_ms=args.partition_healing_ms,
                              swim_overrides={key: value for key, value in (
                                  ("reconnect_interval_ms", args.reconnect_interval_ms),
                                  ("probe_interval_ms", args.probe_interval_ms),
                                  ("aligned_probing", None if args.probing is None else args.probing == "aligned"),
                              ) if value is not None})
    try:
        config.swim_config()
    except ValidationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    trio.run(_run, config, args.status_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
