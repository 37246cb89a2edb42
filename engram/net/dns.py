"""A small DNS message codec for seed discovery: SRV and A queries, and their answers.

Sans-IO: ``encode_query`` builds the bytes of a question, ``decode_response`` turns the
bytes of an answer into records. engram.net._trio.discovery sends them over UDP. Only what
seed discovery needs is understood (RFC 1035 header and names with compression pointers,
RFC 2782 SRV, A and AAAA records); every other record type is skipped by its length.

Any malformed answer raises DnsError (a RemoteProtocolError): truncated data, a name
pointer loop, a label over 63 bytes, a name over 255 bytes, an id or question mismatch.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from engram.errors import RemoteProtocolError, ValidationError

__all__ = ["DnsError", "SrvRecord", "DnsAnswer", "encode_query", "decode_response",
           "TYPE_A", "TYPE_AAAA", "TYPE_SRV", "RCODE_NXDOMAIN"]

TYPE_A = 1
TYPE_AAAA = 28
TYPE_SRV = 33
CLASS_IN = 1
RCODE_NXDOMAIN = 3
_HEADER = struct.Struct(">HHHHHH")
_RR = struct.Struct(">HHIH")
_SRV = struct.Struct(">HHH")
_POINTER_HOPS_MAX = 64
_NAME_BYTES_MAX = 255
_LABEL_BYTES_MAX = 63
_RECORDS_MAX = 512


class DnsError(RemoteProtocolError):
    """A DNS server sent an answer we cannot use."""


@dataclass(frozen=True, slots=True, order=True)
class SrvRecord:
    priority: int
    weight: int
    port: int
    target: str


@dataclass(frozen=True, slots=True)
class DnsAnswer:
    """The parts of a response seed discovery uses. ``addresses`` maps a lowercase host
    name to the IP addresses found for it anywhere in the message (answers or additional)."""

    query_id: int
    rcode: int
    truncated: bool
    srv: tuple[SrvRecord, ...]
    addresses: dict[str, tuple[str, ...]]


def _encode_name(name: str) -> bytes:
    labels = [label for label in name.rstrip(".").split(".")]
    if not name.strip(".") or any(not label for label in labels):
        raise ValidationError("dns name", f"{name!r} has an empty label", "dot-separated labels",
                              "_engram._udp.example.com")
    out = bytearray()
    for label in labels:
        raw = label.encode("idna") if not label.isascii() else label.encode("ascii")
        if len(raw) > _LABEL_BYTES_MAX:
            raise ValidationError("dns name", f"label {label!r} is over 63 bytes", "labels of 1..63 bytes",
                                  "_engram._udp.example.com")
        out.append(len(raw))
        out += raw
    out.append(0)
    if len(out) > _NAME_BYTES_MAX:
        raise ValidationError("dns name", f"{name!r} is over 255 bytes", "a shorter name", "_engram._udp.example.com")
    return bytes(out)


def encode_query(query_id: int, name: str, record_type: int) -> bytes:
    """One question, recursion desired. Raises ValidationError for a bad name."""
    assert 0 <= query_id <= 0xFFFF
    header = _HEADER.pack(query_id, 0x0100, 1, 0, 0, 0)
    return header + _encode_name(name) + struct.pack(">HH", record_type, CLASS_IN)


def _decode_name(data: bytes, offset: int) -> tuple[str, int]:
    """The name at ``offset`` and the offset just after it (after the first pointer)."""
    labels: list[str] = []
    end = -1
    hops = 0
    length_total = 0
    while True:
        if offset >= len(data):
            raise DnsError("dns: name runs past the end of the message")
        length = data[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(data):
                raise DnsError("dns: truncated name pointer")
            hops += 1
            if hops > _POINTER_HOPS_MAX:
                raise DnsError("dns: name pointer loop")
            if end < 0:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | data[offset + 1]
            continue
        if length & 0xC0:
            raise DnsError(f"dns: unsupported label type 0x{length:02x}")
        offset += 1
        if length == 0:
            break
        if offset + length > len(data):
            raise DnsError("dns: label runs past the end of the message")
        length_total += length + 1
        if length_total > _NAME_BYTES_MAX:
            raise DnsError("dns: name over 255 bytes")
        labels.append(data[offset:offset + length].decode("ascii", errors="replace"))
        offset += length
    return ".".join(labels).lower(), (end if end >= 0 else offset)


def decode_response(data: bytes, *, query_id: int | None = None) -> DnsAnswer:
    """Parse a response. Raises DnsError for anything malformed, or if ``query_id`` is
    given and does not match (a stray or spoofed answer)."""
    if len(data) < _HEADER.size:
        raise DnsError("dns: message shorter than its header")
    ident, flags, questions, answers, authorities, additionals = _HEADER.unpack_from(data)
    if not flags & 0x8000:
        raise DnsError("dns: not a response")
    if query_id is not None and ident != query_id:
        raise DnsError(f"dns: answer id {ident} does not match query id {query_id}")
    if answers + authorities + additionals > _RECORDS_MAX:
        raise DnsError("dns: too many records")
    offset = _HEADER.size
    for _ in range(questions):
        _, offset = _decode_name(data, offset)
        offset += 4
    srv: list[SrvRecord] = []
    addresses: dict[str, list[str]] = {}
    for _ in range(answers + authorities + additionals):
        name, offset = _decode_name(data, offset)
        if offset + _RR.size > len(data):
            raise DnsError("dns: truncated resource record")
        record_type, record_class, _ttl, length = _RR.unpack_from(data, offset)
        offset += _RR.size
        body_end = offset + length
        if body_end > len(data):
            raise DnsError("dns: record data runs past the end of the message")
        if record_class == CLASS_IN:
            if record_type == TYPE_SRV:
                if length < _SRV.size + 1:
                    raise DnsError("dns: SRV record too short")
                priority, weight, port = _SRV.unpack_from(data, offset)
                target, _ = _decode_name(data, offset + _SRV.size)
                srv.append(SrvRecord(priority, weight, port, target))
            elif record_type == TYPE_A and length == 4:
                addresses.setdefault(name, []).append(str(ipaddress.IPv4Address(data[offset:body_end])))
            elif record_type == TYPE_AAAA and length == 16:
                addresses.setdefault(name, []).append(str(ipaddress.IPv6Address(data[offset:body_end])))
        offset = body_end
    return DnsAnswer(ident, flags & 0x000F, bool(flags & 0x0200), tuple(srv),
                     {name: tuple(values) for name, values in addresses.items()})
