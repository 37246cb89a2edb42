"""Node metadata in Serf's tag format: the byte 0xFF, then a msgpack map of strings.

Serf reads a member's ``Meta`` this way (``serf members`` prints the tags), so Engram puts
its HTTP address, data-plane address and role there; a stock Serf agent shows them and an
Engram node reads a Serf agent's tags the same way. Metadata longer than 512 bytes is
refused by memberlist, so encoding checks the size.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgpack

from engram.errors import ValidationError
from engram.net.swim.errors import MalformedBody
from engram.net.swim.messages import META_BYTES_MAX

__all__ = ["encode_tags", "decode_tags", "engram_tags", "TAG_MAGIC"]

TAG_MAGIC = 0xFF


def encode_tags(tags: Mapping[str, str]) -> bytes:
    """Serf tag bytes, keys sorted so that equal tags give equal bytes.

    Raises ValidationError when a key or value is not a string or the result passes 512 B.
    """
    for key, value in tags.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValidationError("tags", f"{key!r}={value!r} is not str=str", "string keys and values",
                                  "{'role': 'engram'}")
    ordered = {key: tags[key] for key in sorted(tags)}
    data = bytes((TAG_MAGIC,)) + msgpack.packb(ordered, use_bin_type=False)
    if len(data) > META_BYTES_MAX:
        raise ValidationError("tags", f"encoded tags are {len(data)} bytes", f"at most {META_BYTES_MAX} bytes",
                              "{'role': 'engram', 'http_addr': '10.0.0.1:7432'}")
    return data


def decode_tags(meta: bytes) -> dict[str, str]:
    """Tags from a member's metadata. Serf's old format (no 0xFF) is just the role.

    Raises MalformedBody when the map does not decode to strings.
    """
    if not meta:
        return {}
    if meta[0] != TAG_MAGIC:
        try:
            return {"role": meta.decode("utf-8")}
        except UnicodeDecodeError:
            raise MalformedBody("legacy role tag is not UTF-8") from None
    try:
        raw = msgpack.unpackb(meta[1:], raw=True, strict_map_key=False)
    except Exception as exc:  # msgpack raises several types for bad bytes
        raise MalformedBody(f"tags do not decode: {type(exc).__name__}") from None
    if not isinstance(raw, dict):
        raise MalformedBody("tags are not a map")
    tags: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(key, bytes) or not isinstance(value, bytes):
            raise MalformedBody("tag keys and values must be strings")
        try:
            tags[key.decode("utf-8")] = value.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedBody("tag is not UTF-8") from None
    return tags


def engram_tags(*, http_addr: str = "", data_addr: str = "", role: str = "engram",
                extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The tags an Engram node advertises: role, and its HTTP and data-plane addresses."""
    tags = {"role": role}
    if http_addr:
        tags["http_addr"] = http_addr
    if data_addr:
        tags["data_addr"] = data_addr
    if extra:
        tags.update(extra)
    return tags
