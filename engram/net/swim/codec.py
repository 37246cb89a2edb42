"""memberlist's wire format: message bodies, compound, CRC, compression, encryption, labels.

One boundary for bytes from peers: ``decode_packet`` (a UDP datagram) and
``decode_stream`` (the bytes of one TCP message) return message dataclasses or raise one
of ``errors.DECODE_ERRORS``; nothing else escapes (tests/test_swim_wire_fuzz.py).

Layers of a UDP packet, outermost first: label, encryption, CRC, compression or compound,
then the type byte and a msgpack body. Bodies are msgpack maps keyed by Go's field names,
written with the old msgpack spec (``use_bin_type=False``: strings and bytes both as
"raw", no str8), which is what go-msgpack in memberlist reads and writes.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import msgpack

from engram.net.swim import lzw
from engram.net.swim.errors import (
    ChecksumMismatch,
    CompressionError,
    DecryptionFailed,
    LabelMismatch,
    MalformedBody,
    MessageTooLarge,
    TruncatedMessage,
    UnknownMessageType,
    WireError,
)
from engram.net.swim.keyring import Keyring
from engram.net.swim.messages import (
    Ack,
    Alive,
    Dead,
    Err,
    IndirectPing,
    Message,
    MessageType,
    Nack,
    NodeState,
    Ping,
    PushNodeState,
    PushPull,
    Suspect,
    User,
)

__all__ = [
    "encode_message",
    "encode_compound",
    "encode_packet",
    "encode_stream",
    "decode_packet",
    "decode_stream",
    "COMPOUND_PARTS_MAX",
    "COMPOUND_OVERHEAD_BYTES",
    "COMPOUND_PART_OVERHEAD_BYTES",
    "label_overhead_bytes",
    "STREAM_BYTES_MAX",
]

COMPOUND_PARTS_MAX = 255
# A compound's fixed header (type + count) and each part's u16 length.
COMPOUND_OVERHEAD_BYTES = 2
COMPOUND_PART_OVERHEAD_BYTES = 2
# memberlist's limit on a push/pull's size (maxPushStateBytes) also bounds every stream.
STREAM_BYTES_MAX = 20 * 1024 * 1024
# Push/pull may list at most this many nodes; far past any real cluster, it bounds work.
_PUSH_NODES_MAX = 100_000
_NESTING_MAX = 4
_CRC_HEADER = struct.Struct(">BI")
_U16 = struct.Struct(">H")
_ENCRYPT_HEADER = struct.Struct(">BI")
_U32_MAX = 0xFFFFFFFF
_U16_MAX = 0xFFFF

# --- message bodies -------------------------------------------------------------------

# (Go field name, Python attribute, kind) in Go's declaration order, which is the order
# go-msgpack writes them in. Kinds: u32, u16, int, str, bytes, bool, state, vsn.
_FIELDS: dict[type, tuple[tuple[str, str, str], ...]] = {
    Ping: (
        ("SeqNo", "seq_no", "u32"), ("Node", "node", "str"),
        ("SourceAddr", "source_addr", "bytes"), ("SourcePort", "source_port", "u16"),
        ("SourceNode", "source_node", "str"),
    ),
    IndirectPing: (
        ("SeqNo", "seq_no", "u32"), ("Target", "target", "bytes"), ("Port", "port", "u16"),
        ("Node", "node", "str"), ("Nack", "nack", "bool"),
        ("SourceAddr", "source_addr", "bytes"), ("SourcePort", "source_port", "u16"),
        ("SourceNode", "source_node", "str"),
    ),
    Ack: (("SeqNo", "seq_no", "u32"), ("Payload", "payload", "bytes")),
    Nack: (("SeqNo", "seq_no", "u32"),),
    Suspect: (("Incarnation", "incarnation", "u32"), ("Node", "node", "str"), ("From", "from_node", "str")),
    Alive: (
        ("Incarnation", "incarnation", "u32"), ("Node", "node", "str"), ("Addr", "addr", "bytes"),
        ("Port", "port", "u16"), ("Meta", "meta", "bytes"), ("Vsn", "vsn", "vsn"),
    ),
    Dead: (("Incarnation", "incarnation", "u32"), ("Node", "node", "str"), ("From", "from_node", "str")),
    Err: (("Error", "error", "str"),),
    PushNodeState: (
        ("Name", "name", "str"), ("Addr", "addr", "bytes"), ("Port", "port", "u16"),
        ("Meta", "meta", "bytes"), ("Incarnation", "incarnation", "u32"),
        ("State", "state", "state"), ("Vsn", "vsn", "vsn"),
    ),
}
# Fields that memberlist tags ``omitempty``: left out when zero, so old peers see the
# exact maps they expect.
_OMIT_EMPTY = frozenset({"SourceAddr", "SourcePort", "SourceNode"})
_TYPE_OF: dict[type, MessageType] = {
    Ping: MessageType.PING,
    IndirectPing: MessageType.INDIRECT_PING,
    Ack: MessageType.ACK,
    Nack: MessageType.NACK,
    Suspect: MessageType.SUSPECT,
    Alive: MessageType.ALIVE,
    Dead: MessageType.DEAD,
    Err: MessageType.ERR,
}
_CLASS_OF: dict[int, type] = {int(t): c for c, t in _TYPE_OF.items()}
_DEFAULTS: dict[str, Any] = {
    "u32": 0, "u16": 0, "int": 0, "str": "", "bytes": b"", "bool": False,
    "state": NodeState.ALIVE, "vsn": b"",
}


def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=False)


def _body_map(message: Any) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for go_name, attribute, kind in _FIELDS[type(message)]:
        value = getattr(message, attribute)
        if go_name in _OMIT_EMPTY and not value:
            continue
        if kind == "str":
            value = value.encode("utf-8")
        elif kind == "state":
            value = int(value)
        body[go_name] = value
    return body


def encode_message(message: Message) -> bytes:
    """Type byte + body of one message, ready for a compound or a packet.

    PushPull and User have stream-specific layouts; use ``encode_stream`` for them on TCP.
    User is encoded here in its UDP form (raw payload after the type byte).
    """
    if isinstance(message, User):
        return bytes((MessageType.USER,)) + message.payload
    if isinstance(message, PushPull):
        return _encode_push_pull(message)
    return bytes((_TYPE_OF[type(message)],)) + _pack(_body_map(message))


def _encode_push_pull(message: PushPull) -> bytes:
    parts = [
        bytes((MessageType.PUSH_PULL,)),
        _pack({"Nodes": len(message.nodes), "UserStateLen": len(message.user_state), "Join": message.join}),
    ]
    parts.extend(_pack(_body_map(node)) for node in message.nodes)
    parts.append(message.user_state)
    return b"".join(parts)


def _convert(kind: str, value: Any, go_name: str) -> Any:
    if value is None:
        return _DEFAULTS[kind]
    if kind in ("u32", "u16", "int", "state"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise MalformedBody(f"field {go_name}: expected an integer, got {type(value).__name__}")
        limit = _U32_MAX if kind == "u32" else _U16_MAX if kind == "u16" else 2**63 - 1
        if not 0 <= value <= limit:
            raise MalformedBody(f"field {go_name}: {value} is out of range 0..{limit}")
        if kind == "state":
            if value > NodeState.LEFT:
                raise MalformedBody(f"field {go_name}: unknown node state {value}")
            return NodeState(value)
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise MalformedBody(f"field {go_name}: expected a boolean")
        return value
    if kind == "vsn" and isinstance(value, list):
        # Go's decoder also accepts Vsn as an array of small integers.
        if len(value) > 16 or not all(isinstance(v, int) and 0 <= v <= 255 for v in value):
            raise MalformedBody(f"field {go_name}: bad version array")
        return bytes(value)
    if not isinstance(value, bytes):
        raise MalformedBody(f"field {go_name}: expected a string, got {type(value).__name__}")
    if kind == "str":
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedBody(f"field {go_name}: not UTF-8") from None
    return value


def _from_map(cls: type, body: Any) -> Any:
    if not isinstance(body, dict):
        raise MalformedBody(f"{cls.__name__}: body is {type(body).__name__}, not a map")
    values: dict[str, Any] = {}
    for go_name, attribute, kind in _FIELDS[cls]:
        values[attribute] = _convert(kind, body.get(go_name.encode()), go_name)
    return cls(**values)


def _unpack_one(data: bytes, offset: int, *, complete: bool) -> tuple[Any, int]:
    """One msgpack object at ``offset``; returns it and the offset after it."""
    unpacker = msgpack.Unpacker(
        raw=True, strict_map_key=False, max_buffer_size=STREAM_BYTES_MAX + 1024,
    )
    unpacker.feed(data[offset:] if offset else data)
    try:
        obj = unpacker.unpack()
    except msgpack.OutOfData:
        if complete:
            raise MalformedBody("msgpack body is cut short") from None
        raise TruncatedMessage("msgpack body is incomplete") from None
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise MalformedBody(f"msgpack body does not decode: {type(exc).__name__}") from None
    return obj, offset + unpacker.tell()




# --- UDP ------------------------------------------------------------------------------


def encode_compound(parts: list[bytes]) -> bytes:
    """Pack encoded messages into one compound message (at most 255 parts of < 64 KiB)."""
    assert 0 < len(parts) <= COMPOUND_PARTS_MAX
    header = bytearray((MessageType.COMPOUND, len(parts)))
    for part in parts:
        assert len(part) <= _U16_MAX
        header += _U16.pack(len(part))
    return bytes(header) + b"".join(parts)


def label_overhead_bytes(label: bytes) -> int:
    return 2 + len(label) if label else 0


def _add_label(data: bytes, label: bytes) -> bytes:
    if not label:
        return data
    return bytes((MessageType.HAS_LABEL, len(label))) + label + data


def encode_packet(
    payload: bytes,
    *,
    crc: bool = False,
    compress: bool = False,
    keyring: Keyring | None = None,
    label: bytes = b"",
) -> bytes:
    """Wrap an encoded message (or compound) for UDP: compression if it helps, CRC when
    the receiver speaks protocol 5, encryption with the primary key, then the label."""
    assert len(label) <= 255
    if compress:
        packed = _compress_frame(payload)
        if len(packed) < len(payload):
            payload = packed
    if crc:
        payload = _CRC_HEADER.pack(MessageType.HAS_CRC, zlib.crc32(payload)) + payload
    if keyring is not None:
        payload = keyring.encrypt(payload, label)
    return _add_label(payload, label)


def _compress_frame(payload: bytes) -> bytes:
    return bytes((MessageType.COMPRESS,)) + _pack({"Algo": 0, "Buf": lzw.compress(payload)})


def _strip_label(data: bytes, label: bytes, skip_label_check: bool) -> tuple[bytes, int]:
    """Remove a label header; returns the rest's offset. Raises LabelMismatch, TruncatedMessage."""
    if data and data[0] == MessageType.HAS_LABEL:
        if len(data) < 2:
            raise TruncatedMessage("label header is cut short")
        size = data[1]
        if size == 0:
            raise LabelMismatch("label header with an empty label")
        if len(data) < 2 + size:
            raise TruncatedMessage("label is cut short")
        got = bytes(data[2 : 2 + size])
        if not skip_label_check and got != label:
            raise LabelMismatch(f"packet label {got!r} differs from ours {label!r}")
        return got, 2 + size
    if label and not skip_label_check:
        raise LabelMismatch(f"packet has no label; ours is {label!r}")
    return b"", 0


def decode_packet(
    data: bytes,
    *,
    keyring: Keyring | None = None,
    label: bytes = b"",
    verify_incoming: bool = True,
    skip_label_check: bool = False,
    part_errors: list[WireError] | None = None,
) -> list[Message]:
    """Decode one UDP datagram into its messages (compounds and compression flattened).

    A compound part that does not decode is skipped and its error appended to
    ``part_errors`` (memberlist also handles the good parts of a compound).
    Raises one of DECODE_ERRORS for the packet as a whole.
    With a keyring and ``verify_incoming=False`` a plaintext packet is accepted too
    (the transition to encryption).
    """
    if not data:
        raise TruncatedMessage("empty packet")
    packet_label, offset = _strip_label(data, label, skip_label_check)
    body = data[offset:]
    if keyring is not None:
        try:
            body = keyring.decrypt(body, packet_label)
        except DecryptionFailed:
            if verify_incoming:
                raise
    out: list[Message] = []
    _decode_payload(body, 0, out, part_errors)
    return out


def _decode_payload(data: bytes, depth: int, out: list[Message], part_errors: list[WireError] | None) -> None:
    if depth > _NESTING_MAX:
        raise MessageTooLarge(f"messages nested more than {_NESTING_MAX} deep")
    if not data:
        raise TruncatedMessage("empty message")
    kind = data[0]
    if kind == MessageType.HAS_CRC:
        if len(data) < 5:
            raise TruncatedMessage("CRC header is cut short")
        _, expected = _CRC_HEADER.unpack_from(data)
        rest = data[5:]
        if zlib.crc32(rest) != expected:
            raise ChecksumMismatch("CRC-32 of the packet does not match")
        _decode_payload(rest, depth + 1, out, part_errors)
    elif kind == MessageType.COMPOUND:
        for part in _split_compound(data):
            try:
                _decode_payload(part, depth + 1, out, part_errors)
            except WireError as exc:
                if part_errors is not None:
                    part_errors.append(exc)
    elif kind == MessageType.COMPRESS:
        _decode_payload(_decompress_frame(data, complete=True)[0], depth + 1, out, part_errors)
    elif kind == MessageType.USER:
        out.append(User(bytes(data[1:])))
    elif kind in _CLASS_OF:
        body, _ = _unpack_one(data, 1, complete=True)
        out.append(_from_map(_CLASS_OF[kind], body))
    else:
        raise UnknownMessageType(f"message type {kind} is not valid in a UDP packet")


def _split_compound(data: bytes) -> list[bytes]:
    if len(data) < 2:
        raise TruncatedMessage("compound header is cut short")
    count = data[1]
    offset = 2 + 2 * count
    if len(data) < offset:
        raise TruncatedMessage("compound length table is cut short")
    parts = []
    for index in range(count):
        (size,) = _U16.unpack_from(data, 2 + 2 * index)
        if offset + size > len(data):
            # memberlist keeps the parts before a truncated one; so do we, then complain.
            if parts:
                break
            raise TruncatedMessage("compound part is cut short")
        parts.append(data[offset : offset + size])
        offset += size
    return parts


def _decompress_frame(data: bytes, *, complete: bool) -> tuple[bytes, int]:
    body, end = _unpack_one(data, 1, complete=complete)
    if not isinstance(body, dict):
        raise MalformedBody("compress body is not a map")
    algo = body.get(b"Algo")
    buf = body.get(b"Buf")
    if algo != 0:
        raise CompressionError(f"unknown compression algorithm {algo!r}; only 0 (LZW) exists")
    if not isinstance(buf, bytes):
        raise MalformedBody("compress Buf is not bytes")
    return lzw.decompress(buf, STREAM_BYTES_MAX), end


# --- TCP ------------------------------------------------------------------------------


def encode_stream(
    message: Ping | Ack | PushPull | User | Err,
    *,
    compress: bool = False,
    keyring: Keyring | None = None,
    label: bytes = b"",
) -> bytes:
    """One TCP message: [label][encrypt frame | compress frame | plain message]."""
    if isinstance(message, User):
        payload = bytes((MessageType.USER,)) + _pack({"UserMsgLen": len(message.payload)}) + message.payload
    else:
        payload = encode_message(message)
    if compress:
        payload = _compress_frame(payload)
    if keyring is not None:
        size = 1 + 12 + len(payload) + 16
        header = _ENCRYPT_HEADER.pack(MessageType.ENCRYPT, size)
        sealed = keyring.encrypt(payload, header + label)
        assert len(sealed) == size
        payload = header + sealed
    return _add_label(payload, label)


def decode_stream(
    data: bytes,
    *,
    keyring: Keyring | None = None,
    label: bytes = b"",
    verify_incoming: bool = True,
    skip_label_check: bool = False,
) -> tuple[Message, int]:
    """Decode the first message of a TCP stream; returns it and the bytes it used.

    Raises TruncatedMessage when more bytes are needed (the caller reads more, within
    STREAM_BYTES_MAX and its timeout), or another of DECODE_ERRORS.
    """
    if not data:
        raise TruncatedMessage("no bytes yet")
    stream_label, offset = _strip_label(data, label, skip_label_check)
    if offset < len(data) and data[offset] == MessageType.ENCRYPT:
        if keyring is None:
            raise DecryptionFailed("encrypted stream, but no keyring is configured")
        if len(data) < offset + 5:
            raise TruncatedMessage("encrypt header is cut short")
        _, size = _ENCRYPT_HEADER.unpack_from(data, offset)
        if size > STREAM_BYTES_MAX:
            raise MessageTooLarge(f"encrypted stream message of {size} bytes")
        end = offset + 5 + size
        if len(data) < end:
            raise TruncatedMessage("encrypted message is incomplete")
        header = bytes(data[offset : offset + 5])
        plain = keyring.decrypt(bytes(data[offset + 5 : end]), header + stream_label)
        message, _ = _decode_stream_payload(plain, complete=True, depth=0)
        return message, end
    if keyring is not None and verify_incoming:
        raise DecryptionFailed("plaintext stream, but encryption is required")
    message, used = _decode_stream_payload(data[offset:], complete=False, depth=0)
    return message, offset + used


def _decode_stream_payload(data: bytes, *, complete: bool, depth: int) -> tuple[Message, int]:
    if depth > _NESTING_MAX:
        raise MessageTooLarge("stream messages nested too deep")
    if not data:
        if complete:
            raise MalformedBody("empty stream message")
        raise TruncatedMessage("stream message type not received yet")
    if len(data) > STREAM_BYTES_MAX + 64 * 1024:
        raise MessageTooLarge("stream message passes the size limit")
    kind = data[0]
    if kind == MessageType.COMPRESS:
        inner, end = _decompress_frame(data, complete=complete)
        message, _ = _decode_stream_payload(inner, complete=True, depth=depth + 1)
        return message, end
    if kind == MessageType.PUSH_PULL:
        return _decode_push_pull(data, complete=complete)
    if kind == MessageType.USER:
        header, end = _unpack_one(data, 1, complete=complete)
        if not isinstance(header, dict):
            raise MalformedBody("user message header is not a map")
        size = _convert("int", header.get(b"UserMsgLen"), "UserMsgLen")
        if size > STREAM_BYTES_MAX:
            raise MessageTooLarge("user message too large")
        if len(data) < end + size:
            if complete:
                raise MalformedBody("user message is cut short")
            raise TruncatedMessage("user message is incomplete")
        return User(bytes(data[end : end + size])), end + size
    if kind in (MessageType.PING, MessageType.ACK, MessageType.ERR):
        body, end = _unpack_one(data, 1, complete=complete)
        return _from_map(_CLASS_OF[kind], body), end
    raise UnknownMessageType(f"message type {kind} is not valid on a stream")


def _decode_push_pull(data: bytes, *, complete: bool) -> tuple[PushPull, int]:
    header, offset = _unpack_one(data, 1, complete=complete)
    if not isinstance(header, dict):
        raise MalformedBody("push/pull header is not a map")
    count = _convert("int", header.get(b"Nodes"), "Nodes")
    user_bytes = _convert("int", header.get(b"UserStateLen"), "UserStateLen")
    join = _convert("bool", header.get(b"Join"), "Join")
    if count > _PUSH_NODES_MAX:
        raise MessageTooLarge(f"push/pull lists {count} nodes")
    if user_bytes > STREAM_BYTES_MAX:
        raise MessageTooLarge(f"push/pull user state of {user_bytes} bytes")
    unpacker = msgpack.Unpacker(raw=True, strict_map_key=False, max_buffer_size=STREAM_BYTES_MAX + 1024)
    unpacker.feed(data[offset:])
    nodes = []
    for _ in range(count):
        try:
            obj = unpacker.unpack()
        except msgpack.OutOfData:
            if complete:
                raise MalformedBody("push/pull node list is cut short") from None
            raise TruncatedMessage("push/pull node list is incomplete") from None
        except Exception as exc:
            raise MalformedBody(f"push/pull node does not decode: {type(exc).__name__}") from None
        nodes.append(_from_map(PushNodeState, obj))
    offset += unpacker.tell()
    end = offset + user_bytes
    if len(data) < end:
        if complete:
            raise MalformedBody("push/pull user state is cut short")
        raise TruncatedMessage("push/pull user state is incomplete")
    return PushPull(join, tuple(nodes), bytes(data[offset:end])), end
