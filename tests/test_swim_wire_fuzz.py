"""Bytes from a peer only ever raise the closed set of decode errors.

How: Hypothesis feeds random byte strings and mutated valid packets and streams (bit
flips, truncations, insertions, swapped type bytes; plain, CRC, compressed, compound,
encrypted, labelled) to ``decode_packet`` and ``decode_stream``. Anything they raise must
be one of ``DECODE_ERRORS``; any other exception is a bug in the codec.
"""

from __future__ import annotations


from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engram.net.swim import codec
from engram.net.swim import messages as m
from engram.net.swim.errors import DECODE_ERRORS
from engram.net.swim.keyring import Keyring
from engram.net.swim.tags import decode_tags

KEY = bytes(range(32))
RING = Keyring([KEY])
VSN = bytes([1, 5, 2, 2, 5, 4])
VALID_MESSAGES = [
    m.Ping(1, "n2", b"\x7f\x00\x00\x01", 7946, "n1"),
    m.IndirectPing(2, b"\x7f\x00\x00\x03", 7946, "n3", True),
    m.Ack(3, b"xyz"),
    m.Nack(4),
    m.Suspect(5, "n3", "n1"),
    m.Alive(6, "n1", b"\x7f\x00\x00\x01", 7946, b"\xff\x81\xa4role\xa6engram", VSN),
    m.Dead(7, "n3", "n1"),
    m.User(b"u"),
]
PUSH = m.PushPull(False, (m.PushNodeState("n1", b"\x01\x02\x03\x04", 7946, b"", 1, m.NodeState.ALIVE, VSN),), b"s")


def _valid_packets() -> list[tuple[bytes, dict]]:
    parts = [codec.encode_message(x) for x in VALID_MESSAGES]
    compound = codec.encode_compound(parts)
    out: list[tuple[bytes, dict]] = [(p, {}) for p in parts]
    out.append((compound, {}))
    out.append((codec.encode_packet(compound, crc=True), {}))
    out.append((codec.encode_packet(compound, compress=True), {}))
    out.append((codec.encode_packet(compound, crc=True, keyring=RING, label=b"lb"), {"keyring": RING, "label": b"lb"}))
    return out


VALID_PACKETS = _valid_packets()
VALID_STREAMS = [
    (codec.encode_stream(PUSH), {}),
    (codec.encode_stream(PUSH, compress=True), {}),
    (codec.encode_stream(m.Ping(1, "n"), keyring=RING), {"keyring": RING}),
    (codec.encode_stream(m.User(b"abc")), {}),
    (codec.encode_stream(m.Err("boom")), {}),
]


def _decode_packet(data: bytes, options: dict) -> None:
    try:
        codec.decode_packet(data, part_errors=[], **options)
    except DECODE_ERRORS:
        pass


def _decode_stream(data: bytes, options: dict) -> None:
    try:
        codec.decode_stream(data, **options)
    except DECODE_ERRORS:
        pass


mutation = st.tuples(
    st.sampled_from(["flip", "cut", "insert", "retype", "delete"]),
    st.integers(min_value=0, max_value=10_000),
    st.integers(min_value=0, max_value=255),
)


def _mutate(data: bytes, steps: list[tuple[str, int, int]]) -> bytes:
    buf = bytearray(data)
    for kind, position, value in steps:
        if not buf:
            break
        index = position % len(buf)
        if kind == "flip":
            buf[index] ^= 1 << (value % 8)
        elif kind == "cut":
            del buf[index:]
        elif kind == "insert":
            buf.insert(index, value)
        elif kind == "retype":
            buf[0] = value % 16
        else:
            del buf[index]
    return bytes(buf)


SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.binary(max_size=600), st.booleans())
def test_random_bytes_raise_only_decode_errors(data: bytes, with_ring: bool) -> None:
    options = {"keyring": RING, "verify_incoming": False} if with_ring else {}
    _decode_packet(data, options)
    _decode_stream(data, options)


@SETTINGS
@given(st.integers(0, 255), st.binary(max_size=300))
def test_every_type_byte_with_random_body(kind: int, body: bytes) -> None:
    _decode_packet(bytes([kind]) + body, {})
    _decode_stream(bytes([kind]) + body, {})


@SETTINGS
@given(st.sampled_from(range(len(VALID_PACKETS))), st.lists(mutation, min_size=1, max_size=4))
def test_mutated_packets_raise_only_decode_errors(index: int, steps: list) -> None:
    data, options = VALID_PACKETS[index]
    _decode_packet(_mutate(data, steps), options)
    _decode_packet(_mutate(data, steps), {})


@SETTINGS
@given(st.sampled_from(range(len(VALID_STREAMS))), st.lists(mutation, min_size=1, max_size=4))
def test_mutated_streams_raise_only_decode_errors(index: int, steps: list) -> None:
    data, options = VALID_STREAMS[index]
    _decode_stream(_mutate(data, steps), options)


@SETTINGS
@given(st.binary(max_size=200))
def test_tags_raise_only_decode_errors(data: bytes) -> None:
    try:
        decode_tags(data)
    except DECODE_ERRORS:
        pass
    try:
        decode_tags(b"\xff" + data)
    except DECODE_ERRORS:
        pass


def test_compressed_bomb_is_bounded() -> None:
    # A tiny LZW stream of repeated codes must not expand without limit.
    from engram.net.swim import lzw

    big = lzw.compress(b"\x00" * 3_000_000)
    try:
        lzw.decompress(big, output_bytes_max=1_000_000)
    except DECODE_ERRORS:
        return
    raise AssertionError("expected MessageTooLarge")
