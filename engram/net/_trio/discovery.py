"""Seed discovery by DNS SRV over UDP, with a hand-written client (engram.net.dns).

``resolve_srv_seeds("_engram._udp.example.com")`` asks the name server for SRV records and
returns ``host:port`` seeds ordered by priority (ascending), then weight (descending),
then target and port, so every node computes the same list. Target addresses come from the
additional section when the server includes them, else from an A query to the same server,
else from the system resolver. The name server is ``server`` ("host[:port]") or the first
``nameserver`` line of /etc/resolv.conf. Each query is retried ``attempts`` times with its
own timeout; answers with the wrong id or from the wrong address are ignored, not trusted.

Limits and known gaps: UDP only (a truncated answer is used as far as it goes, with a
warning); no search domains; no DNSSEC.
"""

from __future__ import annotations

import logging
import random
import socket as stdlib_socket

import trio

from engram.errors import ValidationError
from engram.net.dns import RCODE_NXDOMAIN, TYPE_A, TYPE_SRV, DnsAnswer, DnsError, decode_response, encode_query

__all__ = ["resolve_srv_seeds", "system_nameserver", "DnsError"]

log = logging.getLogger("engram.membership.discovery")

_RESPONSE_BYTES_MAX = 65535
_RESOLV_CONF = "/etc/resolv.conf"


def system_nameserver(path: str = _RESOLV_CONF) -> tuple[str, int]:
    """The first nameserver of resolv.conf, port 53. Raises DnsError if there is none."""
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    return parts[1], 53
    except OSError as exc:
        raise DnsError(f"dns: cannot read {path}: {exc}") from exc
    raise DnsError(f"dns: no nameserver line in {path}")


def _server_address(server: str) -> tuple[str, int]:
    from engram.net._trio.node import parse_host_port

    return parse_host_port(server, 53) if server else system_nameserver()


async def _query(server: tuple[str, int], name: str, record_type: int, *, timeout_ms: int, attempts: int,
                 rng: random.Random) -> DnsAnswer:
    family = stdlib_socket.AF_INET6 if ":" in server[0] else stdlib_socket.AF_INET
    last_error: Exception = DnsError(f"dns: no answer from {server[0]}:{server[1]} for {name}")
    for _ in range(attempts):
        query_id = rng.randrange(0x10000)
        packet = encode_query(query_id, name, record_type)
        with trio.socket.socket(family, stdlib_socket.SOCK_DGRAM) as sock:
            await sock.connect(server)
            await sock.send(packet)
            with trio.move_on_after(timeout_ms / 1000):
                # Bounded: a flood of stray datagrams cannot keep us here past the timeout.
                while True:
                    try:
                        data = await sock.recv(_RESPONSE_BYTES_MAX)
                    except OSError as exc:  # e.g. ICMP port unreachable
                        last_error = DnsError(f"dns: {server[0]}:{server[1]}: {exc}")
                        break
                    try:
                        answer = decode_response(data, query_id=query_id)
                    except DnsError as exc:
                        last_error = exc
                        continue
                    if answer.truncated:
                        log.warning("dns: truncated answer for %s; using the records it holds", name)
                    return answer
    raise last_error


async def resolve_srv_seeds(name: str, *, server: str = "", timeout_ms: int = 2000, attempts: int = 3,
                            rng: random.Random | None = None) -> list[str]:
    """``host:port`` seeds from the SRV records of ``name``; [] when the name does not exist
    or has no records. Raises ValidationError for a bad name or server, DnsError when the
    server does not answer usably."""
    if not name or not name.startswith("_"):
        raise ValidationError("seeds_srv", f"{name!r} is not an SRV name", "_service._proto.domain",
                              "_engram._udp.example.com")
    address = _server_address(server)
    rng = rng or random.Random()
    answer = await _query(address, name, TYPE_SRV, timeout_ms=timeout_ms, attempts=attempts, rng=rng)
    if answer.rcode == RCODE_NXDOMAIN:
        return []
    if answer.rcode != 0:
        raise DnsError(f"dns: server answered rcode {answer.rcode} for {name}")
    records = sorted(answer.srv, key=lambda r: (r.priority, -r.weight, r.target, r.port))
    seeds: list[str] = []
    for record in records:
        if record.target in ("", "."):
            continue  # RFC 2782: "." means the service is decidedly not available here
        hosts = answer.addresses.get(record.target)
        if not hosts:
            try:
                a_answer = await _query(address, record.target, TYPE_A, timeout_ms=timeout_ms, attempts=attempts,
                                        rng=rng)
                hosts = a_answer.addresses.get(record.target)
            except DnsError as exc:
                log.debug("dns: A query for %s failed: %s", record.target, exc)
        if not hosts:
            try:
                infos = await trio.socket.getaddrinfo(record.target, record.port, type=stdlib_socket.SOCK_STREAM)
                hosts = tuple(info[4][0] for info in infos[:1])
            except OSError as exc:
                log.warning("dns: SRV target %s does not resolve: %s", record.target, exc)
                continue
        host = hosts[0]
        seed = f"[{host}]:{record.port}" if ":" in host else f"{host}:{record.port}"
        if seed not in seeds:
            seeds.append(seed)
    return seeds
