"""The closed set of errors that decoding a peer's bytes may raise.

Every byte sequence handed to ``engram.net.swim.codec`` either decodes or raises one of
``DECODE_ERRORS``; the fuzz test (tests/test_swim_wire_fuzz.py) holds us to that. All of
them are ``RemoteProtocolError`` (a peer's fault): the driver counts them, logs at debug and
drops the datagram or closes the stream; they never kill a listener.
"""

from __future__ import annotations

from engram.errors import RemoteProtocolError

__all__ = [
    "WireError",
    "TruncatedMessage",
    "UnknownMessageType",
    "MalformedBody",
    "ChecksumMismatch",
    "DecryptionFailed",
    "LabelMismatch",
    "CompressionError",
    "MessageTooLarge",
    "DECODE_ERRORS",
]


class WireError(RemoteProtocolError):
    """Base of every decode failure of memberlist wire data."""


class TruncatedMessage(WireError):
    """The data ends before the message does. On a stream: read more bytes and retry."""


class UnknownMessageType(WireError):
    """The type byte is not one memberlist defines, or is not allowed where it appeared."""


class MalformedBody(WireError):
    """The msgpack body does not decode, or a field is missing or has the wrong type."""


class ChecksumMismatch(WireError):
    """A hasCrc frame's CRC-32 does not match its payload."""


class DecryptionFailed(WireError):
    """No installed key opens the message, or plaintext arrived where encryption is required."""


class LabelMismatch(WireError):
    """The packet's label (type 244 header) differs from ours, or is missing or unexpected."""


class CompressionError(WireError):
    """A compress frame names an unknown algorithm or its LZW stream is invalid."""


class MessageTooLarge(WireError):
    """A size, count or nesting depth goes past the limits we accept."""


DECODE_ERRORS: tuple[type[WireError], ...] = (
    TruncatedMessage,
    UnknownMessageType,
    MalformedBody,
    ChecksumMismatch,
    DecryptionFailed,
    LabelMismatch,
    CompressionError,
    MessageTooLarge,
)
