"""Checks of cluster settings for ``engram validate config`` (the CLI prints the list).

Each check returns human-readable problems (what is wrong, what is allowed, an example);
an empty list means the settings are usable. Seeds are resolved with the system resolver,
which is why this lives with the drivers.
"""

from __future__ import annotations

import ipaddress
import socket

from engram.errors import ValidationError
from engram.net._trio.node import MembershipConfig, parse_host_port

__all__ = ["validate_membership"]


def validate_membership(config: MembershipConfig, *, resolve: bool = True) -> list[str]:
    problems: list[str] = []
    try:
        config.swim_config()
    except ValidationError as exc:
        problems.append(str(exc))
    try:
        bind_host, bind_port = parse_host_port(config.bind)
        if bind_port == 0:
            problems.append("bind: port 0 picks a random port peers cannot know; allowed: 1..65535; example: 0.0.0.0:7946")
        if bind_host in ("0.0.0.0", "::") and not config.advertise:
            problems.append(f"advertise: binding {config.bind} advertises an unspecified address; "
                            "allowed: a concrete address; example: --advertise 10.0.0.5")
    except ValidationError as exc:
        problems.append(str(exc))
    if config.seeds_srv:
        labels = config.seeds_srv.rstrip(".").split(".")
        if len(labels) < 3 or not labels[0].startswith("_") or not labels[1].startswith("_") or not all(labels):
            problems.append(f"seeds_srv: {config.seeds_srv!r} is not an SRV name; allowed: _service._proto.domain; "
                            "example: _engram._udp.example.com")
    if config.dns_server:
        try:
            parse_host_port(config.dns_server, 53)
        except ValidationError as exc:
            problems.append(f"dns_server: {exc}")
    own: tuple[str, int] | None = None
    for seed in config.seeds:
        if seed.strip().lower().startswith("consul"):
            problems.append(f"seeds: {seed!r}: Consul discovery is not supported; allowed: host:port or DNS SRV; "
                            "example: 10.0.0.1:7946")
            continue
        try:
            host, port = parse_host_port(seed)
        except ValidationError as exc:
            problems.append(str(exc))
            continue
        if port == 0:
            problems.append(f"seeds: {seed!r} has port 0; allowed: 1..65535; example: {host}:7946")
        try:
            address = ipaddress.ip_address(host)
            if address.is_unspecified:
                problems.append(f"seeds: {seed!r} is unspecified; allowed: a reachable address; example: 10.0.0.1:7946")
        except ValueError:
            if resolve:
                try:
                    socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
                except OSError as exc:
                    problems.append(f"seeds: {seed!r} does not resolve ({exc}); allowed: a resolvable name or an IP; "
                                    "example: node1.example.com:7946")
        if own is None:
            try:
                own = parse_host_port(config.advertise or config.bind)
            except ValidationError:
                own = ("", -1)
        if (host, port) == own:
            problems.append(f"seeds: {seed!r} is this node itself; list other members")
    return problems
