"""LZW as Go's ``compress/lzw`` does it with LSB bit order and 8-bit literals.

memberlist compresses every TCP stream (and UDP packets when that makes them smaller) with
this codec, so we must decode it. Codes start 9 bits wide, grow to 12; code 256 clears the
table and 257 ends the stream. The width schedule below mirrors Go's reader and writer
exactly (the writer emits a clear code when the next code would be 4095), because a single
off-by-one in when the width grows corrupts everything after it.

Pure Python: decoding a few KiB costs about a millisecond; encoding is offered but the node
only compresses when its config asks (``compress_outgoing``), since receivers accept both.
"""

from __future__ import annotations

from engram.net.swim.errors import CompressionError, MessageTooLarge

__all__ = ["decompress", "compress"]

_CLEAR = 256
_EOF = 257
_WIDTH_MAX = 12
_CODE_MAX = (1 << _WIDTH_MAX) - 1


def decompress(data: bytes, output_bytes_max: int = 20 * 1024 * 1024) -> bytes:
    """Decode an LSB, 8-bit-literal LZW stream.

    Raises CompressionError for an invalid code or a missing end code, MessageTooLarge when
    the output would pass ``output_bytes_max`` (a zip-bomb guard).
    """
    # Each table entry is stored as its full byte string; simple and fast enough in CPython.
    table: list[bytes] = [bytes((i,)) for i in range(256)] + [b"", b""]
    out = bytearray()
    width = 9
    hi = _EOF
    overflow = 1 << width
    last: bytes | None = None
    bits = 0
    bit_count = 0
    position = 0
    length = len(data)
    while True:
        while bit_count < width:
            if position >= length:
                raise CompressionError("LZW stream ends without an end code")
            bits |= data[position] << bit_count
            position += 1
            bit_count += 8
        code = bits & ((1 << width) - 1)
        bits >>= width
        bit_count -= width
        if code == _CLEAR:
            del table[258:]
            width = 9
            hi = _EOF
            overflow = 1 << width
            last = None
            continue
        if code == _EOF:
            return bytes(out)
        if code < hi:
            entry = table[code]
            if last is not None:
                table.append(last + entry[:1])
        elif code == hi and last is not None:
            # The "KwKwK" case: the code being defined right now.
            entry = last + last[:1]
            table.append(entry)
        elif code == hi and code < len(table):
            # The table is full (12 bits): Go keeps the entry at 4095 and adds no more.
            entry = table[code]
        else:
            raise CompressionError(f"LZW code {code} is past the table's end {hi}")
        out += entry
        if len(out) > output_bytes_max:
            raise MessageTooLarge(f"LZW output passes {output_bytes_max} bytes")
        hi += 1
        last = entry
        if hi >= overflow:
            if width == _WIDTH_MAX:
                # Table full: Go stops adding entries until the next clear code.
                last = None
                hi -= 1
            else:
                width += 1
                overflow = 1 << width


def compress(data: bytes) -> bytes:
    """Encode ``data`` so that Go's ``lzw.NewReader(r, lzw.LSB, 8)`` reads it back."""
    out = bytearray()
    bits = 0
    bit_count = 0
    width = 9

    def emit(code: int) -> None:
        nonlocal bits, bit_count
        bits |= code << bit_count
        bit_count += width
        while bit_count >= 8:
            out.append(bits & 0xFF)
            bits >>= 8
            bit_count -= 8

    emit(_CLEAR)
    hi = _EOF
    overflow = 1 << width
    table: dict[bytes, int] = {}
    if data:
        current = data[:1]
        code = data[0]
        for index in range(1, len(data)):
            extended = current + data[index : index + 1]
            found = table.get(extended)
            if found is not None:
                current = extended
                code = found
                continue
            emit(code)
            current = data[index : index + 1]
            code = data[index]
            hi += 1
            if hi == overflow:
                width += 1
                overflow <<= 1
            if hi == _CODE_MAX:
                emit(_CLEAR)
                width = 9
                hi = _EOF
                overflow = 1 << width
                table.clear()
                continue
            table[extended] = hi
        emit(code)
        hi += 1
        if hi == overflow:
            width += 1
            overflow <<= 1
        if hi == _CODE_MAX:
            emit(_CLEAR)
            width = 9
    emit(_EOF)
    if bit_count > 0:
        out.append(bits & 0xFF)
    return bytes(out)
