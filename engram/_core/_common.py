"""Constants and errors shared by the compiled kernels and their twins.

Both implementations import from here so that a caller catching an error, or
reading a header field, cannot tell which one ran.
"""

from __future__ import annotations

import struct

from engram.errors import EngramError

# WAL record header, little-endian, 36 bytes:
#   magic u32 | version u8 | record type u8 | flags u16 | lsn u64 | timestamp ns i64 |
#   payload length u32 | payload CRC32C u32 | header CRC32C u32 (of the 32 bytes before it)
RECORD_MAGIC = 0x57524745  # b"EGRW" read as a little-endian u32
RECORD_VERSION = 1
HEADER_STRUCT = struct.Struct("<IBBHQqII")
HEADER_BYTES = HEADER_STRUCT.size + 4
assert HEADER_BYTES == 36
# A record larger than this is refused on encode and treated as corrupt on decode:
# it bounds the memory one bad length field can make the reader allocate.
PAYLOAD_BYTES_MAX = 64 * 1024 * 1024

# Cosine scores accumulate in this many float32 lanes, in a fixed order, so the
# compiled scan and its twin produce the same bits whatever the SIMD width.
DOT_LANES = 16
# Inverse row norms sum squares in this many float64 lanes, in a fixed order (see
# store.h), so the compiled kernel and its twin give the same bits.
NORM_LANES = 8


class RecordError(EngramError):
    """A WAL record could not be decoded at ``offset``."""

    def __init__(self, offset: int, reason: str) -> None:
        self.offset = offset
        self.reason = reason
        super().__init__(f"record at offset {offset}: {reason}")


class RecordTruncatedError(RecordError):
    """The buffer ends before the record does (a torn tail, if it is the last one)."""


class RecordChecksumError(RecordError):
    """A header field or a CRC does not match: the bytes are not a valid record."""


class EmbeddingValueError(ValueError):
    """An embedding the store path refuses: ``problem`` says which rule it broke.

    ``problem`` is one of "type" (not a sequence: ``detail`` is the type's name),
    "not_number", "length" (``detail`` is what was received: a count or a shape),
    "nonfinite", "float32_range" or "zero". The engine turns it into a
    ValidationError that names the field; kernels know no field names.
    """

    def __init__(self, problem: str, detail: str = "") -> None:
        self.problem = problem
        self.detail = detail
        super().__init__(f"embedding: {problem} {detail}".rstrip())
