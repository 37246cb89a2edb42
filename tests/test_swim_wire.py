"""The memberlist wire codec writes the bytes Go's memberlist writes and reads them back.

How: round trips through every layer (compound, CRC, LZW, AES-GCM with a keyring, labels)
and byte-exact checks of layouts taken from memberlist's source (type bytes, Go field
names, old-spec msgpack raw strings, compound and CRC headers, the TCP encrypt frame).
Interoperability with a real Serf agent is proven separately in test_serf_conformance.py.
"""

from __future__ import annotations

import os
import struct
import zlib

import msgpack
import pytest

from engram.errors import LocalProtocolError, ValidationError
from engram.net.swim import codec, lzw
from engram.net.swim import messages as m
from engram.net.swim.errors import (
    ChecksumMismatch,
    CompressionError,
    DecryptionFailed,
    LabelMismatch,
    TruncatedMessage,
    UnknownMessageType,
)
from engram.net.swim.keyring import Keyring, decode_key
from engram.net.swim.tags import decode_tags, encode_tags, engram_tags

VSN = bytes([1, 5, 2, 2, 5, 4])
SAMPLES: list[m.Message] = [
    m.Ping(7, "n2"),
    m.Ping(8, "n2", b"\x7f\x00\x00\x01", 7946, "n1"),
    m.IndirectPing(9, b"\x7f\x00\x00\x03", 7946, "n3", True, b"\x7f\x00\x00\x01", 7946, "n1"),
    m.Ack(7, b""),
    m.Ack(7, b"\x01coordinate"),
    m.Nack(9),
    m.Suspect(4, "n3", "n1"),
    m.Alive(5, "n1", b"\x7f\x00\x00\x01", 7946, encode_tags({"role": "engram"}), VSN),
    m.Dead(6, "n3", "n3"),
    m.User(b"serf event"),
]


def test_ping_body_uses_go_field_names_and_raw_strings() -> None:
    data = codec.encode_message(m.Ping(7, "n2"))
    assert data[0] == 0
    body = msgpack.unpackb(data[1:], raw=True)
    assert body == {b"SeqNo": 7, b"Node": b"n2"}
    # Old-spec msgpack: a 40-character name is raw16 (0xda), never str8 (0xd9).
    long = codec.encode_message(m.Ping(1, "x" * 40))
    assert b"\xda\x00\x28" in long and b"\xd9" not in long


def test_alive_field_order_and_vsn_as_raw_bytes() -> None:
    alive = SAMPLES[7]
    body = msgpack.unpackb(codec.encode_message(alive)[1:], raw=True)
    assert list(body) == [b"Incarnation", b"Node", b"Addr", b"Port", b"Meta", b"Vsn"]
    assert body[b"Vsn"] == VSN


def test_vsn_as_array_and_nil_fields_decode() -> None:
    body = {b"Incarnation": 1, b"Node": b"a", b"Addr": b"\x01\x02\x03\x04", b"Port": 1,
            b"Meta": None, b"Vsn": [1, 5, 2, 0, 0, 0]}
    data = bytes([4]) + msgpack.packb(body, use_bin_type=False)
    (alive,) = codec.decode_packet(data)
    assert alive == m.Alive(1, "a", b"\x01\x02\x03\x04", 1, b"", bytes([1, 5, 2, 0, 0, 0]))


@pytest.mark.parametrize("message", SAMPLES, ids=lambda s: type(s).__name__)
def test_single_message_round_trip(message: m.Message) -> None:
    assert codec.decode_packet(codec.encode_message(message)) == [message]


def test_compound_layout_and_round_trip() -> None:
    parts = [codec.encode_message(s) for s in SAMPLES]
    data = codec.encode_compound(parts)
    assert data[0] == 7 and data[1] == len(parts)
    assert struct.unpack_from(">H", data, 2)[0] == len(parts[0])
    assert codec.decode_packet(data) == SAMPLES


def test_compound_bad_part_is_reported_and_others_kept() -> None:
    data = codec.encode_compound([codec.encode_message(SAMPLES[0]), b"\x63garbage"])
    errors: list = []
    assert codec.decode_packet(data, part_errors=errors) == [SAMPLES[0]]
    assert isinstance(errors[0], UnknownMessageType)


def test_crc_header_and_mismatch() -> None:
    payload = codec.encode_message(SAMPLES[0])
    data = codec.encode_packet(payload, crc=True)
    assert data[0] == 12 and struct.unpack_from(">I", data, 1)[0] == zlib.crc32(payload)
    assert codec.decode_packet(data) == [SAMPLES[0]]
    bad = data[:-1] + bytes([data[-1] ^ 1])
    with pytest.raises(ChecksumMismatch):
        codec.decode_packet(bad)


def test_lzw_round_trip_and_compress_frame() -> None:
    for data in [b"", b"a", b"abababababab" * 50, os.urandom(3000), bytes(range(256)) * 40]:
        assert lzw.decompress(lzw.compress(data)) == data
    payload = codec.encode_compound([codec.encode_message(s) for s in SAMPLES * 5])
    data = codec.encode_packet(payload, compress=True)
    assert data[0] == 9
    assert codec.decode_packet(data) == SAMPLES * 5


def test_lzw_crosses_table_reset() -> None:
    # More than 4096 distinct codes forces Go's writer to emit a clear code mid-stream.
    data = os.urandom(40000) + b"z" * 10000
    assert lzw.decompress(lzw.compress(data)) == data


def test_lzw_known_go_bytes() -> None:
    # The textbook LZW code sequence for this text, in the layout Go writes: 9-bit
    # codes, a leading clear code and a final eof, packed least significant bit first.
    text = b"TOBEORNOTTOBEORTOBEORNOT"
    encoded = lzw.compress(text)
    codes = [256, 84, 79, 66, 69, 79, 82, 78, 79, 84, 258, 260, 262, 267, 261, 263, 265, 257]
    packed = 0
    for index, code in enumerate(codes):
        packed |= code << (9 * index)
    expected = packed.to_bytes((9 * len(codes) + 7) // 8, "little")
    assert encoded == expected
    with pytest.raises(CompressionError):
        lzw.decompress(encoded[:-3])


def test_keyring_install_use_remove_and_sizes() -> None:
    k16, k24, k32 = os.urandom(16), os.urandom(24), os.urandom(32)
    ring = Keyring([k32])
    ring.install(k16)
    ring.install(k24)
    payload = codec.encode_message(SAMPLES[1])
    old = codec.encode_packet(payload, keyring=ring)
    ring.use(k16)
    assert ring.primary_key == k16
    new = codec.encode_packet(payload, keyring=ring)
    for data in (old, new):
        assert codec.decode_packet(data, keyring=ring) == [SAMPLES[1]]
    ring.remove(k32)
    with pytest.raises(DecryptionFailed):
        codec.decode_packet(old, keyring=ring)
    with pytest.raises(LocalProtocolError):
        ring.remove(k16)
    with pytest.raises(LocalProtocolError):
        ring.use(os.urandom(16))
    with pytest.raises(ValidationError):
        ring.install(os.urandom(20))


def test_encrypted_layout_version_nonce_tag() -> None:
    ring = Keyring([os.urandom(32)])
    payload = codec.encode_message(SAMPLES[0])
    data = codec.encode_packet(payload, keyring=ring)
    assert data[0] == 1 and len(data) == 1 + 12 + len(payload) + 16


def test_plaintext_accepted_only_during_transition() -> None:
    ring = Keyring([os.urandom(32)])
    plain = codec.encode_message(SAMPLES[0])
    with pytest.raises(DecryptionFailed):
        codec.decode_packet(plain, keyring=ring)
    assert codec.decode_packet(plain, keyring=ring, verify_incoming=False) == [SAMPLES[0]]


def test_serf_keygen_key_decodes() -> None:
    assert len(decode_key("pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=")) == 32
    with pytest.raises(ValidationError):
        decode_key("not base64!")
    with pytest.raises(ValidationError):
        decode_key("AAAA")


def test_labels_udp_and_aad() -> None:
    ring = Keyring([os.urandom(16)])
    payload = codec.encode_message(SAMPLES[0])
    data = codec.encode_packet(payload, keyring=ring, label=b"dc1")
    assert data[:5] == b"\xf4\x03dc1"
    assert codec.decode_packet(data, keyring=ring, label=b"dc1") == [SAMPLES[0]]
    with pytest.raises(LabelMismatch):
        codec.decode_packet(data, keyring=ring, label=b"dc2")
    with pytest.raises(LabelMismatch):
        codec.decode_packet(payload, label=b"dc1")
    with pytest.raises(LabelMismatch):
        codec.decode_packet(codec.encode_packet(payload, label=b"x"))
    # The label is authenticated: moving ciphertext under another label fails to decrypt.
    moved = b"\xf4\x03dc2" + data[5:]
    with pytest.raises(DecryptionFailed):
        codec.decode_packet(moved, keyring=ring, label=b"dc2")


def test_stream_push_pull_layout_and_framing() -> None:
    node = m.PushNodeState("n1", b"\x7f\x00\x00\x01", 7946, b"", 3, m.NodeState.LEFT, VSN)
    push = m.PushPull(True, (node, node), b"serf-state")
    data = codec.encode_stream(push)
    assert data[0] == 6
    unpacker = msgpack.Unpacker(raw=True)
    unpacker.feed(data[1:])
    assert unpacker.unpack() == {b"Nodes": 2, b"UserStateLen": 10, b"Join": True}
    assert codec.decode_stream(data) == (push, len(data))
    for cut in range(len(data)):
        with pytest.raises(TruncatedMessage):
            codec.decode_stream(data[:cut])


def test_stream_encrypt_frame_header_is_associated_data() -> None:
    ring = Keyring([os.urandom(32)])
    data = codec.encode_stream(m.Ping(1, "n"), keyring=ring, compress=True)
    assert data[0] == 10
    (size,) = struct.unpack_from(">I", data, 1)
    assert size == len(data) - 5
    message, used = codec.decode_stream(data + b"more", keyring=ring)
    assert message == m.Ping(1, "n") and used == len(data)
    tampered = data[:1] + struct.pack(">I", size) + data[5:]
    assert codec.decode_stream(tampered, keyring=ring)[0] == m.Ping(1, "n")
    with pytest.raises(DecryptionFailed):
        codec.decode_stream(codec.encode_stream(m.Ping(1, "n")), keyring=ring)


def test_stream_user_message_has_length_header() -> None:
    data = codec.encode_stream(m.User(b"abc"))
    assert codec.decode_stream(data) == (m.User(b"abc"), len(data))


def test_serf_tags() -> None:
    tags = engram_tags(http_addr="127.0.0.2:7432", data_addr="127.0.0.2:7433")
    meta = encode_tags(tags)
    assert meta[0] == 0xFF
    assert decode_tags(meta) == tags
    assert decode_tags(b"web") == {"role": "web"}
    assert encode_tags({"b": "1", "a": "2"}) == encode_tags({"a": "2", "b": "1"})
    with pytest.raises(ValidationError):
        encode_tags({"big": "x" * 600})
