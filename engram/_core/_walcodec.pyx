# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled WAL record codec and CRC32C; the twin and the specification are in _ref.py.

Header layout, errors and checks are identical to the twin (see _common.py): the
header CRC is verified before its length field is trusted, so a corrupt length can
never make the reader allocate or read past the buffer.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_GET_SIZE
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy

from engram._core._common import (
    HEADER_BYTES,
    PAYLOAD_BYTES_MAX,
    RECORD_MAGIC,
    RECORD_VERSION,
    RecordChecksumError,
    RecordTruncatedError,
)
from engram._core import _ref
from engram._core._ref import _check_encode_args

cdef extern from "crc32c.h" nogil:
    uint32_t engram_crc32c(uint32_t value, const unsigned char *p, size_t n)

cdef enum:
    HEAD = 36
    HEAD_BODY = 32

cdef uint32_t RECORD_MAGIC_C = RECORD_MAGIC
cdef uint8_t RECORD_VERSION_C = RECORD_VERSION
cdef Py_ssize_t PAYLOAD_BYTES_MAX_C = PAYLOAD_BYTES_MAX


def crc32c(const unsigned char[::1] data, unsigned long long value=0):
    """CRC32C of ``data``, continuing from ``value`` (0 to start)."""
    if value > 0xFFFFFFFF:
        raise ValueError(f"value: {value} is not a u32 CRC; allowed: 0..4294967295; example: 0")
    cdef size_t n = data.shape[0]
    cdef const unsigned char *p = &data[0] if n else NULL
    cdef uint32_t out
    with nogil:
        out = engram_crc32c(<uint32_t>value, p, n)
    return out


cdef inline void _put(char *dst, const void *src, size_t n) noexcept nogil:
    memcpy(dst, src, n)


def encode_record(int rtype, int flags, object lsn, object timestamp_ns, payload):
    """One WAL record: the 36-byte header followed by ``payload``."""
    cdef const unsigned char[::1] body = payload
    cdef size_t length = body.shape[0]
    _check_encode_args(rtype, flags, lsn, timestamp_ns, length)
    out = PyBytes_FromStringAndSize(NULL, HEAD + length)
    _write_record(PyBytes_AS_STRING(out), <uint8_t>rtype, <uint16_t>flags, <uint64_t>lsn, <int64_t>timestamp_ns,
                  <const char *>&body[0] if length else NULL, <uint32_t>length)
    return out


cdef enum:
    # From this many bytes of records the copying and checksums run without the GIL.
    RECORDS_NOGIL_BYTES = 262144


cdef inline void _write_record(char *o, uint8_t rt, uint16_t fl, uint64_t l, int64_t ts, const char *payload,
                               uint32_t plen) noexcept nogil:
    """A record (header, then payload) at ``o``, which has room for HEAD + plen bytes."""
    cdef uint32_t magic = RECORD_MAGIC_C
    cdef uint8_t version = RECORD_VERSION_C
    cdef uint32_t pcrc = engram_crc32c(0, <const unsigned char *>payload if plen else NULL, plen)
    _put(o, &magic, 4)
    _put(o + 4, &version, 1)
    _put(o + 5, &rt, 1)
    _put(o + 6, &fl, 2)
    _put(o + 8, &l, 8)
    _put(o + 16, &ts, 8)
    _put(o + 24, &plen, 4)
    _put(o + 28, &pcrc, 4)
    cdef uint32_t hcrc = engram_crc32c(0, <const unsigned char *>o, HEAD_BODY)
    _put(o + 32, &hcrc, 4)
    if plen:
        memcpy(o + HEAD, payload, plen)


def encode_records_into(out, entries, first_lsn, timestamp_ns, first_flags=0):
    """See ``engram._core._ref.encode_records_into``: the same bytes and errors, compiled.

    A WAL append's records in one call, written where the log wants them (a buffer it
    reuses), instead of one bytes object per record and a joined copy of them all
    (for a bulk batch, 32 MB of fresh memory to fault in). Entries of (int, bytes)
    within range take the compiled loop; anything else goes to the twin, which
    encodes it or raises its error."""
    cdef Py_ssize_t n = len(entries)
    if n == 0 or not (0 <= first_lsn and first_lsn + n - 1 <= 0xFFFFFFFFFFFFFFFF) \
            or not (-(2 ** 63) <= timestamp_ns < 2 ** 63) or type(first_flags) is not int or not 0 <= first_flags <= 0xFFFF:
        return _ref.encode_records_into(out, entries, first_lsn, timestamp_ns, first_flags)
    cdef const char **payloads = <const char **>malloc(n * sizeof(char *))
    cdef uint32_t *lengths = <uint32_t *>malloc(n * sizeof(uint32_t))
    cdef uint8_t *types = <uint8_t *>malloc(n * sizeof(uint8_t))
    cdef Py_ssize_t i, length, need = 0, position = 0
    cdef uint64_t lsn0 = first_lsn
    cdef int64_t ts = timestamp_ns
    cdef uint16_t flags0 = first_flags  # in range: checked above
    cdef unsigned char[::1] buf
    cdef char *o
    if payloads == NULL or lengths == NULL or types == NULL:
        free(payloads)
        free(lengths)
        free(types)
        raise MemoryError("encode_records_into: no memory for the entries")
    try:
        for i in range(n):
            entry = entries[i]
            if type(entry) is not tuple or len(<tuple>entry) != 2:
                return _ref.encode_records_into(out, entries, first_lsn, timestamp_ns, first_flags)
            rtype = (<tuple>entry)[0]
            payload = (<tuple>entry)[1]
            if type(rtype) is not int or not 0 <= rtype <= 0xFF or not PyBytes_CheckExact(payload):
                return _ref.encode_records_into(out, entries, first_lsn, timestamp_ns, first_flags)
            length = PyBytes_GET_SIZE(payload)
            if length > PAYLOAD_BYTES_MAX_C:
                return _ref.encode_records_into(out, entries, first_lsn, timestamp_ns, first_flags)
            # Borrowed: entries holds the payloads (immutable bytes) until this returns.
            payloads[i] = PyBytes_AS_STRING(payload)
            lengths[i] = <uint32_t>length
            types[i] = <uint8_t>rtype
            need += HEAD + length
        buf = _ref._records_out(out, need)
        o = <char *>&buf[0]
        if need >= RECORDS_NOGIL_BYTES:
            with nogil:
                for i in range(n):
                    _write_record(o + position, types[i], flags0 if i == 0 else 0, lsn0 + <uint64_t>i, ts, payloads[i], lengths[i])
                    position += HEAD + lengths[i]
        else:
            for i in range(n):
                _write_record(o + position, types[i], flags0 if i == 0 else 0, lsn0 + <uint64_t>i, ts, payloads[i], lengths[i])
                position += HEAD + lengths[i]
        return need
    finally:
        free(payloads)
        free(lengths)
        free(types)


def decode_record(buf, Py_ssize_t offset=0):
    """Decode the record at ``offset``: ``(rtype, flags, lsn, timestamp_ns, payload, next_offset)``."""
    cdef const unsigned char[::1] view = buf
    cdef Py_ssize_t size = view.shape[0]
    if offset < 0 or offset > size:
        raise ValueError(f"offset: {offset} outside the buffer; allowed: 0..{size}; example: 0")
    if size - offset < HEAD:
        raise RecordTruncatedError(offset, f"{size - offset} bytes left, a header needs {HEADER_BYTES}")
    cdef const unsigned char *p = &view[offset]
    cdef uint32_t magic, plen, pcrc, hcrc
    cdef uint8_t version, rt
    cdef uint16_t fl
    cdef uint64_t l
    cdef int64_t ts
    memcpy(&magic, p, 4)
    memcpy(&version, p + 4, 1)
    memcpy(&rt, p + 5, 1)
    memcpy(&fl, p + 6, 2)
    memcpy(&l, p + 8, 8)
    memcpy(&ts, p + 16, 8)
    memcpy(&plen, p + 24, 4)
    memcpy(&pcrc, p + 28, 4)
    memcpy(&hcrc, p + 32, 4)
    if engram_crc32c(0, p, HEAD_BODY) != hcrc:
        raise RecordChecksumError(offset, "header checksum mismatch")
    if magic != RECORD_MAGIC:
        raise RecordChecksumError(offset, f"bad magic 0x{magic:08x}")
    if version != RECORD_VERSION:
        raise RecordChecksumError(offset, f"unknown record format version {version}")
    if plen > PAYLOAD_BYTES_MAX:
        raise RecordChecksumError(offset, f"payload length {plen} over the limit")
    cdef Py_ssize_t start = offset + HEAD
    cdef Py_ssize_t end = start + plen
    if end > size:
        raise RecordTruncatedError(offset, f"payload needs {plen} bytes, {size - start} left")
    if engram_crc32c(0, p + HEAD, plen) != pcrc:
        raise RecordChecksumError(offset, "payload checksum mismatch")
    payload = PyBytes_FromStringAndSize(<const char *>(p + HEAD), plen)
    return rt, fl, l, ts, payload, end
