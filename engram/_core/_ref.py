"""Pure-Python and NumPy twins of every compiled kernel: the specification.

Each function here has the same signature, dtypes, errors and tie rules as its
compiled counterpart (``_walcodec.pyx``, ``_topk.py``, ``_linkage.pyx``). The
differential tests feed both the same inputs and compare. ``ENGRAM_PURE=1`` makes
the whole package run on these.
"""

from __future__ import annotations

import math
import numbers
import re
import urllib.parse

import msgpack
import numpy as np

from engram._core._common import (
    DOT_LANES,
    HEADER_BYTES,
    NORM_LANES,
    EmbeddingValueError,
    HEADER_STRUCT,
    PAYLOAD_BYTES_MAX,
    RECORD_MAGIC,
    RECORD_VERSION,
    RecordChecksumError,
    RecordTruncatedError,
)

# ---------------------------------------------------------------------------
# CRC32C


def _make_crc_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _make_crc_table()


def crc32c(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    """CRC32C of ``data``, continuing from ``value`` (0 to start)."""
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"value: {value} is not a u32 CRC; allowed: 0..4294967295; example: 0")
    table = _CRC_TABLE
    crc = value ^ 0xFFFFFFFF
    for byte in memoryview(data).cast("B"):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# ---------------------------------------------------------------------------
# WAL record codec


def _check_encode_args(rtype: int, flags: int, lsn: int, timestamp_ns: int, payload_len: int) -> None:
    if not 0 <= rtype <= 0xFF:
        raise ValueError(f"rtype: {rtype} out of range; allowed: 0..255; example: 1")
    if not 0 <= flags <= 0xFFFF:
        raise ValueError(f"flags: {flags} out of range; allowed: 0..65535; example: 0")
    if not 0 <= lsn <= 0xFFFFFFFFFFFFFFFF:
        raise ValueError(f"lsn: {lsn} out of range; allowed: 0..2**64-1; example: 1")
    if not -(2**63) <= timestamp_ns < 2**63:
        raise ValueError(f"timestamp_ns: {timestamp_ns} out of range; allowed: a signed 64-bit count of ns; example: 0")
    if payload_len > PAYLOAD_BYTES_MAX:
        raise ValueError(
            f"payload: {payload_len} bytes is too large; allowed: at most {PAYLOAD_BYTES_MAX} bytes; example: b'\\x80'"
        )


def encode_record(rtype: int, flags: int, lsn: int, timestamp_ns: int, payload: bytes) -> bytes:
    """One WAL record: the 36-byte header followed by ``payload``."""
    payload = bytes(payload)
    _check_encode_args(rtype, flags, lsn, timestamp_ns, len(payload))
    head = HEADER_STRUCT.pack(
        RECORD_MAGIC, RECORD_VERSION, rtype, flags, lsn, timestamp_ns, len(payload), crc32c(payload)
    )
    return head + crc32c(head).to_bytes(4, "little") + payload


def encode_records_into(out: object, entries: list[tuple[int, bytes]], first_lsn: int, timestamp_ns: int,
                        first_flags: int = 0) -> int:
    """The records of ``entries`` ((rtype, payload) pairs) back to back at the start of
    ``out``: the bytes of ``encode_record(rtype, flags, first_lsn + i, timestamp_ns, payload)``
    for the i-th entry, in order, flags being ``first_flags`` for the first record (the log
    marks where each write starts) and 0 for the others. Returns how many bytes were written. ``out`` is a
    writable C-contiguous byte buffer (bytearray, NumPy uint8) and may be longer.
    Errors, raised before anything is written: encode_record's for the first bad entry,
    then out's when it is not such a buffer or too short."""
    records = [encode_record(rtype, first_flags if i == 0 else 0, first_lsn + i, timestamp_ns, payload)
               for i, (rtype, payload) in enumerate(entries)]
    need = sum(len(record) for record in records)
    view = _records_out(out, need)
    position = 0
    for record in records:
        view[position : position + len(record)] = record
        position += len(record)
    return need


def _records_out(out: object, need: int) -> memoryview:
    """``out`` as a writable flat byte view of at least ``need`` bytes, or ValueError."""
    example = "np.empty(size, np.uint8) or bytearray(size)"
    try:
        view = memoryview(out)
    except TypeError:
        raise ValueError(f"out: a {type(out).__name__} is not a byte buffer; allowed: a writable C-contiguous byte buffer; example: {example}") from None
    if view.readonly or not view.c_contiguous or view.itemsize != 1:
        raise ValueError(f"out: must be writable, C-contiguous, of bytes; allowed: a writable C-contiguous byte buffer; example: {example}")
    view = view.cast("B")
    if view.nbytes < need:
        raise ValueError(f"out: {view.nbytes} bytes, the records need {need}; allowed: at least {need} bytes; example: {example}")
    return view


def decode_record(buf: bytes | bytearray | memoryview, offset: int = 0) -> tuple[int, int, int, int, bytes, int]:
    """Decode the record at ``offset``: ``(rtype, flags, lsn, timestamp_ns, payload, next_offset)``.

    Raises RecordTruncatedError when ``buf`` ends inside the record and
    RecordChecksumError when the magic, version, a length or a CRC is wrong. The
    header is checked before its length field is trusted.
    """
    view = memoryview(buf).cast("B")
    size = len(view)
    if offset < 0 or offset > size:
        raise ValueError(f"offset: {offset} outside the buffer; allowed: 0..{size}; example: 0")
    if size - offset < HEADER_BYTES:
        raise RecordTruncatedError(offset, f"{size - offset} bytes left, a header needs {HEADER_BYTES}")
    head = view[offset : offset + HEADER_BYTES - 4]
    magic, version, rtype, flags, lsn, timestamp_ns, length, payload_crc = HEADER_STRUCT.unpack(head)
    header_crc = int.from_bytes(view[offset + HEADER_BYTES - 4 : offset + HEADER_BYTES], "little")
    if crc32c(head) != header_crc:
        raise RecordChecksumError(offset, "header checksum mismatch")
    if magic != RECORD_MAGIC:
        raise RecordChecksumError(offset, f"bad magic 0x{magic:08x}")
    if version != RECORD_VERSION:
        raise RecordChecksumError(offset, f"unknown record format version {version}")
    if length > PAYLOAD_BYTES_MAX:
        raise RecordChecksumError(offset, f"payload length {length} over the limit")
    start = offset + HEADER_BYTES
    end = start + length
    if end > size:
        raise RecordTruncatedError(offset, f"payload needs {length} bytes, {size - start} left")
    payload = bytes(view[start:end])
    if crc32c(payload) != payload_crc:
        raise RecordChecksumError(offset, "payload checksum mismatch")
    return rtype, flags, lsn, timestamp_ns, payload, end


# ---------------------------------------------------------------------------
# Exact cosine top-k


def _check_topk_args(matrix: np.ndarray, inv_norms: np.ndarray, queries: np.ndarray, k: int, mask: np.ndarray | None) -> None:
    if matrix.dtype != np.float32 or matrix.ndim != 2:
        raise ValueError("matrix: must be a 2-d float32 array; example: np.zeros((10, 768), np.float32)")
    if not matrix.flags.c_contiguous:
        raise ValueError("matrix: must be C-contiguous; example: np.ascontiguousarray(m, np.float32)")
    if inv_norms.dtype != np.float32 or inv_norms.shape != (matrix.shape[0],):
        raise ValueError(f"inv_norms: must be float32 of shape ({matrix.shape[0]},); example: np.ones(n, np.float32)")
    if queries.dtype != np.float32 or queries.ndim != 2 or queries.shape[1] != matrix.shape[1]:
        raise ValueError(f"queries: must be float32 of shape (b, {matrix.shape[1]}); example: np.ones((1, d), np.float32)")
    if k < 0:
        raise ValueError(f"k: {k} is negative; allowed: k >= 0; example: 10")
    if mask is not None and (mask.dtype != np.bool_ or mask.shape != (matrix.shape[0],)):
        raise ValueError(f"mask: must be bool of shape ({matrix.shape[0]},) or None; example: np.ones(n, bool)")


def _lane_dots(matrix: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Dot products of every row with ``query`` in the fixed lane order of the kernel."""
    n, d = matrix.shape
    lanes = DOT_LANES
    full = d - d % lanes
    acc = np.zeros((n, lanes), np.float32)
    for c in range(0, full, lanes):
        acc += matrix[:, c : c + lanes] * query[c : c + lanes]
    for j in range(full, d):
        acc[:, j - full] += matrix[:, j] * query[j]
    width = lanes
    while width > 1:
        width //= 2
        acc = acc[:, :width] + acc[:, width : 2 * width]
    return acc[:, 0]


def _select(scores: np.ndarray, k: int, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    n = scores.shape[0]
    candidates = np.arange(n, dtype=np.int64)
    if mask is not None:
        candidates = candidates[mask]
    if k == 0 or candidates.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    values = scores[candidates]
    if candidates.size > k:
        kth = np.partition(values, candidates.size - k)[candidates.size - k]
        keep = values >= kth  # every row tied with the k-th score stays
        candidates = candidates[keep]
        values = values[keep]
    order = np.lexsort((candidates, -values))
    return candidates[order], values[order]


def _query_inv_norms(queries: np.ndarray, query_inv_norms: np.ndarray | None) -> np.ndarray:
    if query_inv_norms is None:
        return row_inv_norms(queries)
    if query_inv_norms.dtype != np.float32 or query_inv_norms.shape != (queries.shape[0],):
        raise ValueError(f"query_inv_norms: must be float32 of shape ({queries.shape[0]},) or None; example: None")
    return query_inv_norms


def cosine_scores(
    matrix: np.ndarray, inv_norms: np.ndarray, queries: np.ndarray, query_inv_norms: np.ndarray | None = None
) -> np.ndarray:
    """Scores of every row against every query, float32 of shape (b, n).

    Score of row i for query j: ``lane_dot(matrix[i], queries[j]) * inv_norms[i] *
    query_inv_norms[j]`` in float32, the dot product accumulated in ``DOT_LANES``
    lanes in a fixed order. ``query_inv_norms`` defaults to ``row_inv_norms(queries)``.
    """
    _check_topk_args(matrix, inv_norms, queries, 0, None)
    q_inv = _query_inv_norms(queries, query_inv_norms)
    out = np.empty((queries.shape[0], matrix.shape[0]), np.float32)
    for j, q in enumerate(queries):
        out[j] = _lane_dots(matrix, q) * inv_norms * q_inv[j]
    return out


def select_topk(scores: np.ndarray, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best entries of a float32 score vector, ties at the k-th score included.

    Returns ``(indices int64, scores float32)`` ordered by score descending, then
    index ascending; every entry whose score equals the k-th best is included, so
    a result may hold more than ``k`` rows (the caller breaks those ties by its own
    key). Entries where ``mask`` is False are never returned.
    """
    if scores.dtype != np.float32 or scores.ndim != 1:
        raise ValueError("scores: must be a 1-d float32 array; example: np.zeros(10, np.float32)")
    if k < 0:
        raise ValueError(f"k: {k} is negative; allowed: k >= 0; example: 10")
    if mask is not None and (mask.dtype != np.bool_ or mask.shape != scores.shape):
        raise ValueError(f"mask: must be bool of shape {scores.shape} or None; example: np.ones(n, bool)")
    return _select(scores, k, mask)


def topk_cosine_batch(
    matrix: np.ndarray,
    inv_norms: np.ndarray,
    queries: np.ndarray,
    k: int,
    mask: np.ndarray | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each row of ``queries``, ``select_topk(cosine_scores(...)[j], k, mask)``."""
    _check_topk_args(matrix, inv_norms, queries, k, mask)
    scores = cosine_scores(matrix, inv_norms, queries)
    return [select_topk(row, k, mask) for row in scores]


def topk_cosine(
    matrix: np.ndarray,
    inv_norms: np.ndarray,
    query: np.ndarray,
    k: int,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One query's top-k; see ``topk_cosine_batch``."""
    if not isinstance(query, np.ndarray) or query.ndim != 1:
        raise ValueError("query: must be a 1-d float32 array; example: np.ones(768, np.float32)")
    return topk_cosine_batch(matrix, inv_norms, query.reshape(1, -1), k, mask)[0]


def _check_rows_f32(matrix: object) -> None:
    if not isinstance(matrix, np.ndarray) or matrix.dtype != np.float32 or matrix.ndim != 2:
        raise ValueError("matrix: must be a 2-d float32 array; example: np.zeros((10, 768), np.float32)")


def row_inv_norms(matrix: np.ndarray) -> np.ndarray:
    """1/||row|| for every row, float32, computed in float64; 0 for a zero row.

    The order is part of the spec (compiled: store.h): squares in float64 (exact),
    element k added to lane k % NORM_LANES in index order, then the lanes added
    pairwise (lane i += lane i + width/2, width halving), then 1/sqrt in float64.
    """
    _check_rows_f32(matrix)
    n, d = matrix.shape
    squares = matrix.astype(np.float64)
    squares *= squares
    lanes = NORM_LANES
    full = d - d % lanes
    acc = np.zeros((n, lanes), np.float64)
    for c in range(0, full, lanes):
        acc += squares[:, c : c + lanes]
    for j in range(full, d):
        acc[:, j - full] += squares[:, j]
    width = lanes
    while width > 1:
        width //= 2
        acc = acc[:, :width] + acc[:, width : 2 * width]
    norms = np.sqrt(acc[:, 0])
    out = np.zeros(n, np.float64)
    np.divide(1.0, norms, out=out, where=norms > 0)
    return out.astype(np.float32)


# ---------------------------------------------------------------------------
# The store path (compiled: _store.pyx, store.h)


def stack_rows_f32(vectors: list, dimension: int) -> np.ndarray:
    """The (len(vectors), dimension) float32 C-contiguous matrix whose rows are
    ``vectors`` (a non-empty list of float32 (dimension,) arrays), in order; a new
    array. ValueError for an empty list or a vector of another shape or dtype."""
    if not vectors:
        raise ValueError("stack_rows_f32 needs at least one vector")
    for vector in vectors:
        if not isinstance(vector, np.ndarray) or vector.dtype != np.float32 or vector.shape != (dimension,):
            raise ValueError(f"stack_rows_f32 takes float32 ({dimension},) arrays")
    return np.ascontiguousarray(np.stack(vectors))


def embedding_f32(value: object, dimension: int) -> np.ndarray:
    """A new C-contiguous float32 (dimension,) array equal to ``value``, or EmbeddingValueError.

    Accepted: any sequence or array of real numbers (bool, int, float; a float32
    array of the right shape is copied as is). Checked in this order, each on the
    whole value: a str, bytes or None is "type"; anything but real numbers (a numeric
    string, None, a complex number, a nested list) or a number beyond float64 is
    "not_number"; a shape other than (dimension,) is "length"; NaN or infinity is
    "nonfinite"; a finite value beyond float32 is "float32_range"; all zeros (after
    the cast to float32) is "zero".
    """
    if isinstance(value, np.ndarray) and value.dtype == np.float32 and value.shape == (dimension,):
        if not np.isfinite(value).all():
            raise EmbeddingValueError("nonfinite")
        if not value.any():
            raise EmbeddingValueError("zero")
        return np.array(value, np.float32, order="C")
    if isinstance(value, (str, bytes)) or value is None:
        raise EmbeddingValueError("type", type(value).__name__)
    # Converted as it is first: np.asarray(value, float64) also parsed "4" as 4.0, took
    # None for NaN and dropped a complex number's imaginary part.
    try:
        raw = np.asarray(value)
        if raw.dtype.kind == "O" and not all(isinstance(x, numbers.Real) for x in raw.flat):
            raise TypeError("not a real number")  # ints beyond int64 come as objects: still numbers
        if raw.dtype.kind not in "biufO":
            raise TypeError("not a real number")
        array = raw.astype(np.float64)
    except (TypeError, ValueError, OverflowError):
        raise EmbeddingValueError("not_number") from None
    if array.ndim != 1 or array.shape[0] != dimension:
        got = array.shape[0] if array.ndim == 1 else f"shape {array.shape}"
        raise EmbeddingValueError("length", str(got))
    if not np.all(np.isfinite(array)):
        raise EmbeddingValueError("nonfinite")
    with np.errstate(over="ignore"):
        out = array.astype(np.float32)
    if not np.all(np.isfinite(out)):
        raise EmbeddingValueError("float32_range")
    if not np.any(out):
        raise EmbeddingValueError("zero")
    return out


# --------------------------------------------------------------------------- HTTP embeddings
# The plain case of an embedding in an HTTP request, read without the Python JSON path
# (see _json.pyx). Each returns float32 (dim,) or None; None means "not the plain case",
# and the caller's own path decides (and words any refusal).

JSON_MAGNITUDE_MAX = 3.0e38  # the API refuses magnitudes past this as too large for float32
JSON_TOKEN_CHARS_MAX = 40
JSON_INTEGER_DIGITS_MAX = 15  # integers longer than this are left to the caller
_JSON_NUMBER = re.compile(rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_BROKEN_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def _plain_f32(values: list[float]) -> np.ndarray | None:
    """float32 of float64 values, or None if one is non-finite or past the API's limit,
    or all are zero as float32."""
    if not all(math.isfinite(v) and abs(v) <= JSON_MAGNITUDE_MAX for v in values):
        return None
    out = np.array(values, np.float64).astype(np.float32)
    return out if out.any() else None


def float_list_f32(values: object, dim: int) -> np.ndarray | None:
    """A list of exactly ``dim`` values, each exactly a float or an int (a bool is not),
    as float32 through float64 (an int rounded to the nearest float64), or None."""
    if type(values) is not list or len(values) != dim:
        return None
    doubles = []
    for value in values:
        if type(value) is float:
            doubles.append(value)
        elif type(value) is int:
            try:
                doubles.append(float(value))
            except OverflowError:
                return None
        else:
            return None
    return _plain_f32(doubles)


def float_array_text(raw: bytes, dim: int, percent: bool) -> np.ndarray | None:
    """A JSON array of exactly ``dim`` numbers (JSON's grammar and whitespace, each token
    at most 40 characters, an integer at most 15 digits) as float32 through float64, or
    None. With ``percent`` the text is first decoded as a query-string value: '+' is a
    space, %XX a byte, and a '%' without two hex digits makes it None."""
    text = bytes(raw)
    if percent:
        if _BROKEN_ESCAPE.search(text):
            return None
        text = urllib.parse.unquote_to_bytes(text.replace(b"+", b" "))
    whitespace = b" \t\n\r"
    text = text.strip(whitespace)
    if not (text.startswith(b"[") and text.endswith(b"]")):
        return None
    tokens = [token.strip(whitespace) for token in text[1:-1].split(b",")]
    if len(tokens) != dim:
        return None
    doubles = []
    for token in tokens:
        if len(token) > JSON_TOKEN_CHARS_MAX or not _JSON_NUMBER.fullmatch(token):
            return None
        if any(c in token for c in b".eE"):
            doubles.append(float(token))
        elif len(token.lstrip(b"-")) > JSON_INTEGER_DIGITS_MAX:
            return None
        else:
            doubles.append(float(int(token)))  # an integer: -0 is 0
    return _plain_f32(doubles)


def remember_payload(fields: tuple, embedding: np.ndarray | None, replaces: str | None) -> bytes:
    """The REMEMBER record's payload: msgpack (``use_bin_type=True``) of the map
    {"f": fields as an array, "e": the embedding's little-endian float32 bytes or nil,
    "r": replaces}. Errors are msgpack's (a value it cannot pack)."""
    body = {"f": fields, "e": None if embedding is None else embedding.astype("<f4").tobytes(), "r": replaces}
    return msgpack.packb(body, use_bin_type=True)


def batch_pairs(keys: np.ndarray, eligible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (later, earlier) pairs of a batch's rows that share at least one key value,
    with ``eligible[later]``, earlier < later: two int64 arrays sorted by (later,
    earlier), one entry per pair. ``keys`` int64 (m, tables), ``eligible`` bool (m,)."""
    _check_batch_pairs_args(keys, eligible)
    m = keys.shape[0]
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    if m < 2 or keys.shape[1] == 0:
        return empty
    flat = keys.reshape(-1)
    order = np.argsort(flat, kind="stable")
    ordered = flat[order]
    owners = order // keys.shape[1]
    # Runs of equal keys: every later member pairs with every earlier one. Owners rise
    # within a run (the stable sort keeps flat order) but may repeat (one owner, one
    # value in two tables): such self-pairs are dropped below.
    is_start = np.r_[True, ordered[1:] != ordered[:-1]]
    starts = np.nonzero(is_start)[0]
    lengths = np.diff(np.r_[starts, flat.size])
    multi = lengths > 1
    starts, lengths = starts[multi], lengths[multi]
    # Run r has lengths[r] * (lengths[r] - 1) / 2 pairs; pair j of it is (q, p) in the
    # order q = 1.., p = 0..q-1.
    counts = lengths * (lengths - 1) // 2
    run_of = np.repeat(np.arange(starts.size), counts)
    j = np.arange(run_of.size) - np.repeat(np.cumsum(counts) - counts, counts)
    q = ((1 + np.sqrt(8 * j + 1)) // 2).astype(np.int64)  # the q whose pairs hold j
    q -= (q * (q - 1) // 2 > j)  # float rounding, either way
    q += ((q + 1) * q // 2 <= j)
    p = j - q * (q - 1) // 2
    later = owners[starts[run_of] + q]
    earlier = owners[starts[run_of] + p]
    keep = (later != earlier) & eligible[later]
    later, earlier = later[keep], earlier[keep]
    if later.size == 0:
        return empty
    combined = np.unique(later * m + earlier)
    return combined // m, combined % m


def _check_batch_pairs_args(keys: object, eligible: object) -> None:
    if type(keys) is not np.ndarray or keys.dtype != _I64 or keys.ndim != 2 or not keys.flags.c_contiguous:
        raise ValueError("keys: must be a C-contiguous 2-d int64 array; example: DedupIndex.keys_for(vectors)")
    if type(eligible) is not np.ndarray or eligible.dtype != _BOOL or eligible.shape != (keys.shape[0],):
        raise ValueError(f"eligible: must be a bool array of shape ({keys.shape[0]},); example: np.ones(len(keys), bool)")


def prepare_rows(matrix: np.ndarray, planes: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What a batch of new rows needs before planning, in one call:
    ``(row_inv_norms(m), *quantize_rows(m), lsh_keys(codes, planes, bits))``.

    Errors are those of the three: a non-finite value is quantize_rows' ValueError.
    """
    _check_quantize_args(matrix)
    if not matrix.flags.c_contiguous:
        raise ValueError("matrix: must be C-contiguous; example: np.stack(vectors)")
    codes, scales = quantize_rows(matrix)
    keys = lsh_keys(codes, planes, bits)
    return row_inv_norms(matrix), codes, scales, keys


# ---------------------------------------------------------------------------
# Average-linkage clustering under cosine distance (compiled: _linkage.pyx, linkage.h)

_LK_LANES = 8


def _check_rows(field: str, rows: object, rows_min: int) -> np.ndarray:
    """``rows`` as a C-contiguous 2-d float32 array, or a ValidationError."""
    from engram.errors import ValidationError

    example = "np.zeros((10, 768), np.float32)"
    if not isinstance(rows, np.ndarray):
        raise ValidationError(field, f"is a {type(rows).__name__}, not a numpy array", "a 2-d float32 array", example)
    if rows.dtype != np.float32:
        raise ValidationError(field, f"has dtype {rows.dtype}", "float32", f"{field}.astype(np.float32)")
    if rows.ndim != 2:
        raise ValidationError(field, f"has {rows.ndim} dimensions", "a 2-d array of shape (n, d)", example)
    if rows.shape[0] < rows_min:
        raise ValidationError(field, f"has {rows.shape[0]} rows", f"at least {rows_min} rows", example)
    if rows.shape[1] < 1:
        raise ValidationError(field, "has 0 columns", "at least 1 column", example)
    finite = np.isfinite(rows).all(axis=1)
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        raise ValidationError(field, f"row {bad} contains NaN or infinity", "finite values only", example)
    return np.ascontiguousarray(rows)


def _check_linkage_args(X: object, method: object) -> np.ndarray:
    from engram.errors import ValidationError

    if not isinstance(method, str) or method != "average":
        raise ValidationError("method", f"{method!r} is not supported", "'average'", "linkage(X, method='average')")
    return _check_rows("X", X, 2)


def _check_cosine_args(A: object, B: object) -> tuple[np.ndarray, np.ndarray]:
    from engram.errors import ValidationError

    A = _check_rows("A", A, 0)
    B = _check_rows("B", B, 0)
    if A.shape[1] != B.shape[1]:
        raise ValidationError(
            "B", f"has {B.shape[1]} columns but A has {A.shape[1]}", "the same width as A", "np.zeros((3, A.shape[1]), np.float32)"
        )
    return A, B


def _lk_dots(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """dot(A[i], B[i]) in float64 over the last axis (broadcasting), in the kernel's order.

    Lane l (of 8) accumulates A[l]*B[l] + A[8+l]*B[8+l] + ... in increasing order, the
    d % 8 tail elements are added to lanes 0.. in order, and the lanes are reduced by
    the tree ((0+4)+(2+6)) + ((1+5)+(3+7)). Each product and sum is one IEEE
    operation, so the bits equal linkage.h's on any machine.
    """
    d = A.shape[-1]
    full = d - d % _LK_LANES
    shape = np.broadcast_shapes(A.shape[:-1], B.shape[:-1])
    acc = np.zeros(shape + (_LK_LANES,), np.float64)
    for c in range(0, full, _LK_LANES):
        acc += A[..., c : c + _LK_LANES] * B[..., c : c + _LK_LANES]
    for t in range(full, d):
        acc[..., t - full] += A[..., t] * B[..., t]
    half = acc[..., :4] + acc[..., 4:]
    quarter = half[..., :2] + half[..., 2:]
    return quarter[..., 0] + quarter[..., 1]


def _lk_dist(dot: np.ndarray, n2x: np.ndarray, n2y: np.ndarray) -> np.ndarray:
    """clamp(1 - dot / sqrt(n2x * n2y), 0, 2); 1 where either row is all zeros."""
    dot, n2x, n2y = np.broadcast_arrays(np.asarray(dot, np.float64), n2x, n2y)
    sim = np.zeros(dot.shape, np.float64)
    np.divide(dot, np.sqrt(n2x * n2y), out=sim, where=(n2x > 0.0) & (n2y > 0.0))
    dist = 1.0 - sim
    np.clip(dist, 0.0, 2.0, out=dist)
    return dist


def cosine_distances(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Cosine distances of every row of A to every row of B: float64 (len(A), len(B)).

    ``dist = clamp(1 - dot(a, b) / sqrt(dot(a, a) * dot(b, b)), 0, 2)`` with every dot
    product in float64 in the fixed lane order of ``_lk_dots`` (no BLAS), and 1 when
    either row is all zeros. The result is symmetric to the bit and the same on every
    machine, thread count and build; ``linkage`` uses the same distances.

    Raises ValidationError if A or B is not a 2-d float32 array with at least one
    column, if their widths differ, or if either holds NaN or infinity.
    """
    A, B = _check_cosine_args(A, B)
    A64 = A.astype(np.float64)
    B64 = B.astype(np.float64)
    out = np.empty((A.shape[0], B.shape[0]), np.float64)
    if out.size == 0:
        return out
    n2a = _lk_dots(A64, A64)
    n2b = _lk_dots(B64, B64)
    for i in range(A.shape[0]):
        out[i] = _lk_dist(_lk_dots(B64, A64[i]), n2a[i], n2b)
    return out


def linkage(X: np.ndarray, method: str = "average") -> np.ndarray:
    """Average-linkage agglomerative clustering of the rows of X under cosine distance.

    X is float32 (n, d), n >= 2, finite; the caller passes the rows in its canonical
    order (the tie rule below refers to row numbers). Returns scipy's linkage matrix:
    float64 (n - 1, 4), row s = [smaller id, larger id, distance, size], where points
    are ids 0..n-1 and the cluster made at step s is id n + s.

    Specification:

    * Distances between points are those of ``cosine_distances`` (fixed-order float64,
      zero rows at distance 1 from everything).
    * Greedy rule with ties: at each step merge the pair of active clusters with the
      smallest key (distance, smaller id, larger id). Duplicated rows therefore merge
      in row order, and equal distances never depend on the thread count, the input
      memory layout or the hash seed.
    * Distances to a new cluster follow Lance-Williams for the average,
      ``(size_a * d(a, k) + size_b * d(b, k)) / (size_a + size_b)`` in float64, which
      equals the mean of the pairwise distances up to rounding.

    On tie-free input this is the tree of ``scipy.cluster.hierarchy.linkage(X,
    "average", "cosine")``, heights within 1e-9. Unlike scipy the rows come in merge
    order, which is non-decreasing in height except where rounding makes a
    Lance-Williams update one ulp smaller than the merge before it.

    The algorithm (here and in linkage.h) is Muellner's "generic" one: each slot k
    keeps its best partner among active slots j > k, kept exact after every merge, and
    the new cluster takes the larger slot of the pair. This twin keeps a square matrix;
    the kernel a condensed one.

    Raises ValidationError if method is not "average" or X is not as described.
    """
    X = _check_linkage_args(X, method)
    n = X.shape[0]
    X64 = X.astype(np.float64)
    n2 = _lk_dots(X64, X64)
    D = np.zeros((n, n), np.float64)
    for i in range(n - 1):
        row = _lk_dist(_lk_dots(X64[i + 1 :], X64[i]), n2[i], n2[i + 1 :])
        D[i, i + 1 :] = row
        D[i + 1 :, i] = row
    del X64

    ids = np.arange(n, dtype=np.int64)
    sizes = np.ones(n, np.int64)
    active = np.ones(n, np.bool_)
    nn = np.full(n, -1, np.int64)
    nnd = np.zeros(n, np.float64)

    def rescan(k: int) -> None:
        # Best partner among active slots j > k: smallest distance, then smallest id
        # (for a fixed k the same order as the full key, since ids are distinct).
        later = np.flatnonzero(active[k + 1 :]) + (k + 1)
        if later.size == 0:
            nn[k] = -1
            nnd[k] = 0.0
            return
        values = D[k, later]
        best = values.min()
        tied = later[values == best]
        nn[k] = tied[np.argmin(ids[tied])]
        nnd[k] = best

    for k in range(n):
        rescan(k)

    Z = np.empty((n - 1, 4), np.float64)
    for step in range(n - 1):
        slots = np.flatnonzero(active & (nn >= 0))
        partners = nn[slots]
        lo = np.minimum(ids[slots], ids[partners])
        hi = np.maximum(ids[slots], ids[partners])
        first = np.lexsort((hi, lo, nnd[slots]))[0]
        a = int(slots[first])
        b = int(nn[a])
        size_a = int(sizes[a])
        size_b = int(sizes[b])
        Z[step] = (lo[first], hi[first], nnd[a], size_a + size_b)

        active[a] = False
        ids[b] = n + step
        sizes[b] = size_a + size_b
        others = np.flatnonzero(active)
        others = others[others != b]
        fa, fb, fs = np.float64(size_a), np.float64(size_b), np.float64(size_a + size_b)
        merged = (fa * D[others, a] + fb * D[others, b]) / fs
        D[others, b] = merged
        D[b, others] = merged

        lower = others[others < b]
        stale = (nn[lower] == a) | (nn[lower] == b)
        fresh = lower[~stale]
        to_b = D[fresh, b]
        better = (to_b < nnd[fresh]) | ((to_b == nnd[fresh]) & (ids[b] < ids[nn[fresh]]))
        nn[fresh[better]] = b
        nnd[fresh[better]] = to_b[better]
        for k in lower[stale]:
            rescan(int(k))
        rescan(b)
        nn[a] = -1
    return Z


# ---------------------------------------------------------------------------
# Reduced-precision scan: int8 codes, approximate scores, error bounds
#
# Shared by both implementations (quantisation is plain NumPy): a row x becomes
# codes c = rint(x / scale) with scale = max|x| / 127, so |x - c * scale| <= scale / 2
# in every coordinate. For a query q the approximate dot a = (c . q) * scale then
# satisfies |x . q - a| <= scale / 2 * ||q||_1, plus the approximate kernel's own
# float32 rounding, below 768 * 2**-24 * 127 * scale * ||q||_1 = 0.0058 * scale * ||q||_1
# for d = 768 (it grows with d: APPROX_BOUND_FACTOR covers d up to 4096).
#
# Where the compiled kernel uses AVX-512 VNNI it quantises the query the same way
# (codes p, scale s), so a = (c . p) * scale * s, computed exactly in int32. Then
# |x . q - a| <= scale / 2 * ||q||_1 + s / 2 * ||x||_1, and ||x||_1 <= sqrt(d) ||x||_2.
# In cosine units (times 1/||x|| and 1/||q||) the bound is, for row i and query j,
#     scale_i / ||x_i|| * row_coeff_j + constant_j
# with row_coeff_j = APPROX_BOUND_FACTOR * ||q_j||_1 / ||q_j|| and
# constant_j = APPROX_BOUND_FACTOR * s_j * sqrt(d) / ||q_j|| + 1e-6 (the final float
# products). Both kernels and the twin stay inside it.

APPROX_BOUND_FACTOR = 0.54


def approx_bound_terms(queries: np.ndarray, q_inv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row_coeff, constant), float64 (b,): the approximate cosine of row i for query j
    is within scales[i] * inv_norms[i] * row_coeff[j] + constant[j] of the exact one."""
    q_scales = quantize_scales(queries)
    inv = q_inv.astype(np.float64)
    row_coeff = APPROX_BOUND_FACTOR * np.abs(queries.astype(np.float64)).sum(axis=1) * inv
    constant = APPROX_BOUND_FACTOR * q_scales.astype(np.float64) * np.sqrt(queries.shape[1]) * inv + 1e-6
    return row_coeff, constant


def approx_candidates(approx: np.ndarray, inv_norms: np.ndarray, scale_inv: np.ndarray, q_inv: float,
                      row_coeff: float, constant: float, k: int, mask: np.ndarray | None) -> np.ndarray:
    """Rows (int64, ascending) that may reach one query's top ``k``, from its int8 scores.

    cosine = approx * inv_norms * q_inv and bound = scale_inv * row_coeff + constant, in
    float32; the k-th best lower bound (cosine - bound) over the allowed rows decides:
    every allowed row whose upper bound (cosine + bound) reaches it is kept, all of them
    when fewer than ``k`` rows are allowed. The compiled kernel does the same float32
    operations in the same order, so it keeps the same rows.
    """
    n = approx.shape[0]
    if inv_norms.shape != (n,) or scale_inv.shape != (n,):
        raise ValueError(f"inv_norms/scale_inv: must have {n} entries like approx; example: float32 arrays of shape ({n},)")
    if mask is not None and (mask.dtype != np.bool_ or mask.shape != (n,)):
        raise ValueError(f"mask: must be bool of shape ({n},) or None; example: np.ones({n}, bool)")
    if k <= 0 or n == 0:
        return np.zeros(0, np.int64)
    allowed = np.ones(n, bool) if mask is None else mask
    cosine = approx * inv_norms * np.float32(q_inv)
    bound = scale_inv * np.float32(row_coeff) + np.float32(constant)
    lower = (cosine - bound).astype(np.float32)
    best, values = select_topk(lower, k, allowed)
    if len(best) < k:
        return np.flatnonzero(allowed).astype(np.int64)
    return np.flatnonzero(allowed & (cosine + bound >= values[k - 1])).astype(np.int64)


def scores_rows(matrix: np.ndarray, inv_norms: np.ndarray, rows: np.ndarray, query: np.ndarray, q_inv: float) -> np.ndarray:
    """Exact scores (float32) of the listed rows for one query: the same bits as those rows
    in ``cosine_scores`` over the whole matrix."""
    n, d = matrix.shape
    if query.shape != (d,) or inv_norms.shape != (n,):
        raise ValueError(f"query/inv_norms: must have {d} and {n} entries; example: a float32 query of shape ({d},)")
    rows = np.asarray(rows, np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= n):
        raise ValueError(f"rows: every row must be in 0..{n - 1}; example: np.array([0, 5], np.int64)")
    return cosine_scores(matrix[rows], inv_norms[rows], query.reshape(1, -1), np.array([q_inv], np.float32))[0]


def screen_batch(approx: np.ndarray, inv_norms: np.ndarray, scale_inv: np.ndarray, q_inv: np.ndarray,
                 row_coeff: np.ndarray, constant: np.ndarray, ks: np.ndarray, after: np.ndarray, before: np.ndarray,
                 alive_mask: np.ndarray, created: np.ndarray, matrix: np.ndarray, queries: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each query's int8 candidates and their exact scores, for a batch.

    Query j may return the rows that are alive with after[j] <= created < before[j];
    its candidates are ``approx_candidates`` over those rows with k = ks[j], scored by
    ``scores_rows``. Returns (offsets int64 (b + 1), rows int64, scores float32, full
    bool (b,)): query j's rows, ascending, are rows[offsets[j]:offsets[j + 1]]; a query
    with more candidates than a quarter of the rows gets none and full[j] True (the
    caller scans it in full instead).
    """
    b, n = approx.shape
    if (inv_norms.shape != (n,) or scale_inv.shape != (n,) or created.shape != (n,) or matrix.shape[0] < n
            or queries.shape != (b, matrix.shape[1])):
        raise ValueError(f"screen_batch: arrays must describe the same {n} rows and {b} queries; example: see Space._scan")
    for name, array in (("q_inv", q_inv), ("row_coeff", row_coeff), ("constant", constant), ("ks", ks), ("after", after), ("before", before)):
        if array.shape != (b,):
            raise ValueError(f"{name}: must have one entry per query ({b}); example: np.ones({b})")
    if alive_mask.dtype != np.bool_ or alive_mask.shape != (n,):
        raise ValueError(f"alive_mask: must be bool of shape ({n},); example: np.ones({n}, bool)")
    offsets = np.zeros(b + 1, np.int64)
    full = np.zeros(b, bool)
    parts_rows, parts_scores = [], []
    for j in range(b):
        mask = alive_mask & (created >= after[j]) & (created < before[j])
        rows = approx_candidates(approx[j], inv_norms, scale_inv, float(q_inv[j]), float(row_coeff[j]), float(constant[j]), int(ks[j]), mask)
        if rows.size * 4 > n:
            full[j] = True
            rows = rows[:0]
        parts_rows.append(rows)
        parts_scores.append(scores_rows(matrix[:n], inv_norms, rows, queries[j], float(q_inv[j])))
        offsets[j + 1] = offsets[j] + rows.size
    return (offsets, np.concatenate(parts_rows) if parts_rows else np.zeros(0, np.int64),
            np.concatenate(parts_scores).astype(np.float32) if parts_scores else np.zeros(0, np.float32), full)


def _check_quantize_args(matrix: object) -> None:
    if not isinstance(matrix, np.ndarray) or matrix.dtype != np.float32 or matrix.ndim != 2:
        raise ValueError("matrix: must be a 2-d float32 array; example: np.zeros((10, 768), np.float32)")
    if not 1 <= matrix.shape[1] <= 4096:
        raise ValueError(f"matrix: {matrix.shape[1]} columns; allowed: 1 to 4096 for the int8 scan; example: 768")


def quantize_rows(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 codes (n, d) and float32 scales (n,) with |x - codes * scale| <= scale / 2.

    scale = float32(max|x| / 127.0) in float64; codes = clip(rint(x / scale), -127, 127)
    in float64 (scale 1 for a zero row). Non-finite values are a ValueError.
    """
    _check_quantize_args(matrix)
    if not np.isfinite(matrix).all():
        raise ValueError("matrix: contains NaN or infinity; allowed: finite values; example: np.zeros((10, 768), np.float32)")
    scales = quantize_scales(matrix)
    safe = np.where(scales > 0, scales, np.float32(1.0)).astype(np.float64)
    codes = np.clip(np.rint(matrix.astype(np.float64) / safe[:, None]), -127, 127).astype(np.int8)
    return codes, scales


def quantize_scales(matrix: np.ndarray) -> np.ndarray:
    """The float32 scales ``quantize_rows`` gives, without the codes (the bound needs
    only the queries' scales)."""
    amax = np.max(np.abs(matrix), axis=1) if matrix.shape[0] else np.zeros(0, np.float32)
    return (amax.astype(np.float64) / 127.0).astype(np.float32)


def approx_quantises_queries() -> bool:
    """Whether approx_scores_batch quantises the queries too and sums in integers (the
    compiled VNNI kernel); the twin multiplies in float, so no."""
    return False


def approx_scores_batch(codes: np.ndarray, scales: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Approximate dot products ``(codes[i] . q) * scales[i]``, float32 (b, n).

    Not bit-identical to the compiled kernel (its order is free): results are only
    used to pick candidates with ``approx_bounds``, never returned.
    """
    if codes.dtype != np.int8 or codes.ndim != 2 or scales.shape != (codes.shape[0],):
        raise ValueError("codes/scales: must be int8 (n, d) and float32 (n,); example: quantize_rows(m)")
    if queries.dtype != np.float32 or queries.ndim != 2 or queries.shape[1] != codes.shape[1]:
        raise ValueError(f"queries: must be float32 of shape (b, {codes.shape[1]}); example: np.ones((1, d), np.float32)")
    return ((queries @ codes.astype(np.float32).T) * scales[None, :]).astype(np.float32)


# ---------------------------------------------------------------------------
# Dedup on store: LSH keys over int8 codes, cosines of pairs (compiled: _dedup.pyx, dedup.h)

LSH_DIMENSION_MAX = 65536  # keeps every int32 partial sum of int8 products exact


def _check_lsh_args(codes: object, planes: object, bits: int) -> None:
    if not isinstance(codes, np.ndarray) or codes.dtype != np.int8 or codes.ndim != 2 or not codes.flags.c_contiguous:
        raise ValueError("codes: must be a C-contiguous 2-d int8 array; example: quantize_rows(m)[0]")
    if not isinstance(planes, np.ndarray) or planes.dtype != np.int8 or planes.ndim != 2 or not planes.flags.c_contiguous:
        raise ValueError("planes: must be a C-contiguous 2-d int8 array; example: np.ones((336, 768), np.int8)")
    if planes.shape[1] != codes.shape[1]:
        raise ValueError(f"planes: {planes.shape[1]} columns, codes have {codes.shape[1]}; allowed: the same; example: (336, {codes.shape[1]})")
    if codes.shape[1] > LSH_DIMENSION_MAX:
        raise ValueError(f"codes: {codes.shape[1]} columns; allowed: at most {LSH_DIMENSION_MAX}; example: 768")
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 48:
        raise ValueError(f"bits: {bits!r} not allowed; allowed: an integer from 1 to 48; example: 14")
    if planes.shape[0] % bits:
        raise ValueError(f"planes: {planes.shape[0]} rows is not a multiple of bits={bits}; example: {bits * 24}")


def lsh_keys(codes: np.ndarray, planes: np.ndarray, bits: int) -> np.ndarray:
    """Sign-random-projection keys, int64 (b, tables) with tables = planes.shape[0] // bits.

    Bit j of key t of row i is set when the integer dot product of ``codes[i]``
    and ``planes[t * bits + j]`` is > 0; key t then has ``t << bits`` added, so
    table t's keys lie in ``[t << bits, (t + 1) << bits)``. The dot products are
    exact (here in float64, whose 53-bit mantissa holds every partial sum), so any
    order of summation gives the same keys.
    """
    _check_lsh_args(codes, planes, bits)
    tables = planes.shape[0] // bits
    dots = codes.astype(np.float64) @ planes.astype(np.float64).T
    signs = (dots > 0).reshape(codes.shape[0], tables, bits).astype(np.int64)
    weights = np.int64(1) << np.arange(bits, dtype=np.int64)
    return signs @ weights + (np.arange(tables, dtype=np.int64) << bits)


def _check_pair_args(matrix: object, inv_norms: object, rows: object, queries: object, query_inv_norms: object,
                     query_of: object) -> None:
    if not isinstance(matrix, np.ndarray) or matrix.dtype != np.float32 or matrix.ndim != 2 or not matrix.flags.c_contiguous:
        raise ValueError("matrix: must be a C-contiguous 2-d float32 array; example: np.zeros((10, 768), np.float32)")
    n, d = matrix.shape
    if not isinstance(inv_norms, np.ndarray) or inv_norms.dtype != np.float32 or inv_norms.ndim != 1 or inv_norms.shape[0] < n \
            or not inv_norms.flags.c_contiguous:
        raise ValueError(f"inv_norms: must be C-contiguous float32 with at least {n} entries; example: np.ones(n, np.float32)")
    if not isinstance(queries, np.ndarray) or queries.dtype != np.float32 or queries.ndim != 2 or queries.shape[1] != d \
            or not queries.flags.c_contiguous:
        raise ValueError(f"queries: must be C-contiguous float32 of shape (b, {d}); example: np.ones((1, {d}), np.float32)")
    b = queries.shape[0]
    if not isinstance(query_inv_norms, np.ndarray) or query_inv_norms.dtype != np.float32 or query_inv_norms.shape != (b,) \
            or not query_inv_norms.flags.c_contiguous:
        raise ValueError(f"query_inv_norms: must be C-contiguous float32 of shape ({b},); example: row_inv_norms(queries)")
    for name, index, bound in (("rows", rows, n), ("query_of", query_of, b)):
        if not isinstance(index, np.ndarray) or index.dtype != np.int64 or index.ndim != 1 or not index.flags.c_contiguous:
            raise ValueError(f"{name}: must be a C-contiguous 1-d int64 array; example: np.array([0, 2], np.int64)")
        if index.size and (int(index.min()) < 0 or int(index.max()) >= bound):
            raise ValueError(f"{name}: an index is outside 0..{bound - 1}; allowed: 0 <= index < {bound}; example: 0")
    if rows.shape != query_of.shape:
        raise ValueError(f"query_of: shape {query_of.shape} differs from rows' {rows.shape}; allowed: one query per row; example: np.zeros(len(rows), np.int64)")


def pair_scores(matrix: np.ndarray, inv_norms: np.ndarray, rows: np.ndarray, queries: np.ndarray,
                query_inv_norms: np.ndarray, query_of: np.ndarray) -> np.ndarray:
    """Cosine of each pair, float32 of shape (len(rows),).

    ``out[k]`` has exactly the bits of ``cosine_scores(matrix[rows[k]:rows[k]+1],
    inv_norms[rows[k]:rows[k]+1], queries[query_of[k]:query_of[k]+1],
    query_inv_norms[query_of[k]:query_of[k]+1])[0, 0]``: the lane dot product, then
    times the row's inverse norm, then times the query's.
    """
    _check_pair_args(matrix, inv_norms, rows, queries, query_inv_norms, query_of)
    if rows.size == 0:
        return np.zeros(0, np.float32)
    a = matrix[rows]
    q = queries[query_of]
    n, d = a.shape
    lanes = DOT_LANES
    full = d - d % lanes
    acc = np.zeros((n, lanes), np.float32)
    for c in range(0, full, lanes):
        acc += a[:, c : c + lanes] * q[:, c : c + lanes]
    for j in range(full, d):
        acc[:, j - full] += a[:, j] * q[:, j]
    width = lanes
    while width > 1:
        width //= 2
        acc = acc[:, :width] + acc[:, width : 2 * width]
    return acc[:, 0] * inv_norms[rows] * query_inv_norms[query_of]


def _check_matches_args(keys: object, eligible: object, base_start: object, base_rows: object, slot_rows: object,
                        slot_count: object, alive: object, episodic: object, matrix: object, inv_norms: object,
                        queries: object, query_inv_norms: object, codes: object = None, scales: object = None,
                        query_codes: object = None, query_scales: object = None) -> None:
    """Types, shapes and sizes (one pass, no allocation: this runs on every store). Keys and
    index offsets are range-checked where they are used (the kernel, or dedup_matches)."""
    checks = [("keys", keys, _I64, 2), ("eligible", eligible, _BOOL, 1), ("alive", alive, _BOOL, 1),
              ("episodic", episodic, _BOOL, 1), ("matrix", matrix, _F32, 2), ("inv_norms", inv_norms, _F32, 1),
              ("queries", queries, _F32, 2), ("query_inv_norms", query_inv_norms, _F32, 1)]
    if codes is not None:
        checks += [("codes", codes, _I8, 2), ("scales", scales, _F32, 1), ("query_codes", query_codes, _I8, 2),
                   ("query_scales", query_scales, _F32, 1)]
    elif not (scales is None and query_codes is None and query_scales is None):
        raise ValueError("codes: scales, query_codes and query_scales come with codes; example: all four or none")
    if base_start is not None:
        checks += [("base_start", base_start, _I64, 1), ("base_rows", base_rows, _I64, 1)]
    if slot_rows is not None:
        checks += [("slot_rows", slot_rows, _I64, 2), ("slot_count", slot_count, _I64, 1)]
    for name, value, dtype, ndim in checks:
        if type(value) is not np.ndarray or value.dtype != dtype or value.ndim != ndim or not value.flags.c_contiguous:
            raise ValueError(f"{name}: must be a C-contiguous {ndim}-d {dtype.name} array; example: see DedupIndex")
    n, d = matrix.shape  # type: ignore[union-attr]
    b = keys.shape[0]  # type: ignore[union-attr]
    if eligible.shape[0] != b or queries.shape != (b, d) or query_inv_norms.shape[0] != b:  # type: ignore[union-attr]
        raise ValueError(f"eligible/queries/query_inv_norms: one per key row ({b}) and {d} columns; example: the new vectors")
    if inv_norms.shape[0] < n or alive.shape[0] < n or episodic.shape[0] < n:  # type: ignore[union-attr]
        raise ValueError(f"inv_norms/alive/episodic: must cover the matrix's {n} rows; example: the space's arrays")
    if codes is not None:
        if codes.shape != (n, d) or scales.shape[0] != n:  # type: ignore[union-attr]
            raise ValueError(f"codes/scales: must be the matrix's int8 codes ({n}, {d}) and scales ({n},); example: quantize_rows(matrix)")
        if query_codes.shape != (b, d) or query_scales.shape[0] != b:  # type: ignore[union-attr]
            raise ValueError(f"query_codes/query_scales: must be the queries' codes ({b}, {d}) and scales ({b},); example: quantize_rows(queries)")
    if base_start is not None and base_start.shape[0] < 1:  # type: ignore[union-attr]
        raise ValueError("base_start: needs at least one offset; example: np.zeros(keys + 1, np.int64)")
    if slot_rows is not None:
        if slot_count.shape[0] != slot_rows.shape[0]:  # type: ignore[union-attr]
            raise ValueError("slot_count: one count per slot_rows row; example: np.zeros(len(slot_rows), np.int64)")
        if base_start is not None and base_start.shape[0] - 1 != slot_rows.shape[0]:  # type: ignore[union-attr]
            raise ValueError("slot_rows: one row per key, as base_start has; example: the DedupIndex's arrays")


_I64 = np.dtype(np.int64)
_I8 = np.dtype(np.int8)
_F32 = np.dtype(np.float32)
_BOOL = np.dtype(np.bool_)


def dedup_matches(keys: np.ndarray, eligible: np.ndarray, base_start: np.ndarray | None, base_rows: np.ndarray,
                  slot_rows: np.ndarray | None, slot_count: np.ndarray | None, alive: np.ndarray, episodic: np.ndarray,
                  matrix: np.ndarray, inv_norms: np.ndarray, queries: np.ndarray, query_inv_norms: np.ndarray,
                  threshold: float, codes: np.ndarray | None = None, scales: np.ndarray | None = None,
                  query_codes: np.ndarray | None = None,
                  query_scales: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stored rows a batch of new vectors may duplicate: (query, row, score) arrays, in (query, row) order.

    For each query i with ``eligible[i]``: the distinct rows sharing a key with
    ``keys[i]``, found in the base (rows ``base_rows[base_start[k]:base_start[k + 1]]``
    of key k; no base when ``base_start`` is None) or in the delta's slot table
    (the first ``min(slot_count[k], slots)`` entries of ``slot_rows[k]``; none when
    ``slot_rows`` is None), that are ``alive`` and not ``episodic``, whose
    ``pair_scores`` cosine is >= ``float32(threshold)``. A candidate row outside
    the matrix is a ValueError. ``codes``/``scales`` (``quantize_rows`` of the
    matrix) and ``query_codes``/``query_scales`` (of the queries) change nothing in
    the result: the compiled kernel uses them to skip rows that cannot pass.
    """
    _check_matches_args(keys, eligible, base_start, base_rows, slot_rows, slot_count, alive, episodic,
                        matrix, inv_norms, queries, query_inv_norms, codes, scales, query_codes, query_scales)
    b, tables = keys.shape
    key_count = None if base_start is None else base_start.shape[0] - 1
    if slot_rows is not None:
        key_count = slot_rows.shape[0]
    if key_count is not None and keys.size and (int(keys.min()) < 0 or int(keys.max()) >= key_count):
        raise ValueError(f"keys: a key is outside 0..{key_count - 1}; example: DedupIndex.keys_for(vectors)")
    query_parts = [np.zeros(0, np.int64)]
    row_parts = [np.zeros(0, np.int64)]
    for i in np.nonzero(eligible)[0].tolist():
        for key in keys[i].tolist():
            if base_start is not None:
                lo, hi = int(base_start[key]), int(base_start[key + 1])
                if lo < 0 or hi < lo or hi > base_rows.shape[0]:
                    raise ValueError(f"base_start: offsets must rise within 0..{base_rows.shape[0]}; example: the DedupIndex's arrays")
                found = base_rows[lo:hi]
                row_parts.append(found)
                query_parts.append(np.full(found.size, i, np.int64))
            if slot_rows is not None:
                assert slot_count is not None
                found = slot_rows[key, : min(int(slot_count[key]), slot_rows.shape[1])]
                row_parts.append(found)
                query_parts.append(np.full(found.size, i, np.int64))
    pairs = np.unique(np.stack([np.concatenate(query_parts), np.concatenate(row_parts)], axis=1), axis=0)
    if pairs.size and (int(pairs[:, 1].min()) < 0 or int(pairs[:, 1].max()) >= matrix.shape[0]):
        raise ValueError(f"base_rows/slot_rows: a candidate row is outside 0..{matrix.shape[0] - 1}; example: the DedupIndex's arrays")
    query = np.ascontiguousarray(pairs[:, 0])
    rows = np.ascontiguousarray(pairs[:, 1])
    keep = alive[rows] & ~episodic[rows]
    query = query[keep]
    rows = rows[keep]
    scores = pair_scores(matrix, inv_norms, rows, queries, query_inv_norms, query)
    passing = scores >= np.float32(threshold)
    return query[passing], rows[passing], scores[passing]


def slot_insert(slot_rows: np.ndarray, slot_count: np.ndarray, rows: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Put ``rows[i]`` under each of its keys ``keys[i]`` in a slot table, in order; return the
    (key, row) pairs that found their key's slots full, in order.

    ``slot_rows`` (K, S) int64 holds up to S rows per key; ``slot_count`` (K,) int64
    counts every row ever put under a key (held or not). For each row i in order and
    each of its keys k in order: the row goes to slot ``slot_count[k]`` when that is
    below S, and ``slot_count[k]`` grows by one either way.
    """
    _check_slot_args(slot_rows, slot_count, rows, keys)
    spilled_keys: list[int] = []
    spilled_rows: list[int] = []
    slots = slot_rows.shape[1]
    for row, row_keys in zip(rows.tolist(), keys.tolist()):
        for key in row_keys:
            position = int(slot_count[key])
            if position < slots:
                slot_rows[key, position] = row
            else:
                spilled_keys.append(key)
                spilled_rows.append(row)
            slot_count[key] = position + 1
    return np.array(spilled_keys, np.int64), np.array(spilled_rows, np.int64)


def base_index(keys: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """The sorted base of the dedup index over rows 0..n-1 with ``keys`` (int64 (n, tables)),
    table t's keys in [t << bits, (t + 1) << bits) (as DedupIndex.keys_for gives them):
    ``(rows, start)``, int64, where ``rows[start[k]:start[k + 1]]`` are the rows holding
    key k, ascending, and start has (tables << bits) + 1 entries. ValueError for a key
    outside its table's range."""
    _check_base_index_args(keys, bits)
    n, tables = keys.shape
    parts = [np.zeros(0, np.int64)]
    for table in range(tables):
        # A table's keys, made local: one stable sort each (as uint16, NumPy's radix
        # sort, when they fit), so each key's rows come out ascending.
        local = keys[:, table] - (table << bits)
        parts.append(np.argsort(local.astype(np.uint16) if bits <= 16 else local, kind="stable").astype(np.int64))
    start = np.zeros((tables << bits) + 1, np.int64)
    np.cumsum(np.bincount(keys.reshape(-1), minlength=tables << bits), out=start[1:])
    return np.concatenate(parts), start


def _check_base_index_args(keys: object, bits: object) -> None:
    if type(keys) is not np.ndarray or keys.dtype != _I64 or keys.ndim != 2 or not keys.flags.c_contiguous:
        raise ValueError("keys: must be a C-contiguous 2-d int64 array; example: DedupIndex.keys_for(vectors)")
    if type(bits) is not int or not 1 <= bits <= 30:
        raise ValueError(f"bits: {bits!r} is not allowed; allowed: an int from 1 to 30; example: 14")
    if keys.size:
        local = keys - (np.arange(keys.shape[1], dtype=np.int64) << bits)[None, :]
        if int(local.min()) < 0 or int(local.max()) >= 1 << bits:
            raise ValueError(f"keys: table t's keys must lie in [t << {bits}, (t + 1) << {bits}); example: DedupIndex.keys_for(vectors)")


def _check_slot_args(slot_rows: object, slot_count: object, rows: object, keys: object) -> None:
    for name, value, dtype, ndim in (("slot_rows", slot_rows, _I64, 2), ("slot_count", slot_count, _I64, 1),
                                     ("rows", rows, _I64, 1), ("keys", keys, _I64, 2)):
        if type(value) is not np.ndarray or value.dtype != dtype or value.ndim != ndim or not value.flags.c_contiguous:
            raise ValueError(f"{name}: must be a C-contiguous {ndim}-d {dtype.name} array; example: see DedupIndex")
    if not slot_rows.flags.writeable or not slot_count.flags.writeable:  # type: ignore[union-attr]
        raise ValueError("slot_rows/slot_count: must be writeable; example: the DedupIndex's arrays")
    if slot_count.shape[0] != slot_rows.shape[0] or keys.shape[0] != rows.shape[0]:  # type: ignore[union-attr]
        raise ValueError("slot_count/keys: one count per slot row, one key row per row; example: the DedupIndex's arrays")
    if keys.size and (int(keys.min()) < 0 or int(keys.max()) >= slot_rows.shape[0]):  # type: ignore[union-attr]
        raise ValueError(f"keys: a key is outside 0..{slot_rows.shape[0] - 1}; example: DedupIndex.keys_for(vectors)")  # type: ignore[union-attr]
