"""Request validation and response shapes of the HTTP API.

Validation happens here, at the boundary, before anything reaches the engine: every
field is checked for type, range and length, and a failure raises ``ApiError`` naming
the field, what is allowed and a correct example. Malformed JSON and values of the wrong
kind are 400/422 the way the original Engram (axum) answered: 400 for bytes that are not
JSON or a value out of range, 422 for a body of the wrong structure (missing field, wrong
type). Responses are plain dicts shaped like the original's JSON.

Nothing here does I/O.
"""

from __future__ import annotations

import json
import math
import re
import urllib.parse
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

import numpy as np

from .. import _core
from ..memory.types import Hit as _Hit
from ..memory.types import Memory as _Memory
from ..memory.validate import SHORT_TEXT_CHARS_MAX
from .errors import CODES, ApiError

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - optional speed-up
    _orjson = None  # type: ignore[assignment]

__all__ = [
    "SPACE_ID_RE", "CONTENT_BYTES_MAX", "EMBEDDING_DIM_DEFAULT", "parse_json", "parse_remember",
    "parse_episode", "parse_recall_params", "parse_list_params", "confidence_json", "memory_json",
    "hit_json", "iso", "check_space_id",
]

SPACE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{2,63}$")
MEMORY_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
CONTENT_BYTES_MAX = 100 * 1024
EMBEDDING_DIM_DEFAULT = 768
TAGS_COUNT_MAX = 64
TAG_CHARS_MAX = 128
TEXT_FIELD_CHARS_MAX = 4096
# location, where_location, why and how are held to SHORT_TEXT_CHARS_MAX (1024), the
# engine's limit, here: refused by the engine they named items[0].location and came
# after the request had created its space.
MEMORY_TYPES = ("semantic", "episodic", "procedural", "working")
DECAY_KINDS = ("exponential", "power_law", "two_component", "hybrid", "none")
RECALL_MODES = ("similarity", "spreading", "hybrid")
# The engine's cognitive effects (engram.memory.cognition.EFFECTS), in its canonical order.
RECALL_EFFECTS = ("priming", "fan", "interference", "reconsolidation", "spacing")
MAX_RESULTS_MAX = 1000
LIST_LIMIT_MAX = 1000

EXAMPLE_EMBEDDING = "[0.12, -0.03, ...] (768 finite numbers)"
EXAMPLE_TIME = '"2024-05-01T09:30:00Z"'
TIME_MIN = datetime(1678, 1, 1, tzinfo=timezone.utc)
TIME_MAX = datetime(2261, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc)  # all of the last day, as the engine takes it


# ----------------------------------------------------------------------------- JSON


def _reject_constant(name: str) -> Any:
    raise ApiError(
        400,
        f"the body contains {name}, which is not a number JSON allows",
        field="body",
        allowed="finite numbers only (no NaN, Infinity)",
        example='{"content": "...", "confidence": 0.9}',
    )


def parse_json(raw: bytes, *, what: str = "body") -> Any:
    """Decode JSON; NaN and Infinity literals are refused (400).

    orjson (strict RFC 8259: no NaN, no lone surrogates) parses floats several times
    faster than the standard library, which matters for 768-number embeddings; the
    standard library's decoder gives the precise error position when orjson refuses.
    """
    if not raw.strip():
        raise ApiError(
            400, f"the {what} is empty; a JSON object is required", field=what,
            allowed="a JSON object", example='{"content": "The mitochondria is the powerhouse of the cell"}',
        )
    if _orjson is not None:
        try:
            return _orjson.loads(raw)
        except (_orjson.JSONDecodeError, RecursionError):
            pass  # the standard library below explains the refusal
    def finite_number(text: str, parse: Any) -> Any:
        # The standard library takes 1e400 as inf and 10**400 as an int that no double
        # (nor the engine) holds; orjson refuses both: say so rather than blame the text.
        if math.isinf(float(text)):
            shown = text if len(text) <= 24 else f"{text[:12]}...({len(text)} characters)"
            raise ApiError(400, f"the {what} holds the number {shown}, beyond what a double holds",
                           field=what, allowed="finite numbers within +-1.7976931348623157e308",
                           example='{"content": "...", "confidence": 0.9}')
        return parse(text)

    try:
        value = json.loads(raw, parse_constant=_reject_constant,
                           parse_float=lambda text: finite_number(text, float),
                           parse_int=lambda text: finite_number(text, int))
        if _orjson is not None:
            # orjson refused what the standard library accepts: lone surrogate
            # escapes (not valid Unicode; the log could not store them) or deep nesting.
            raise ApiError(400, f"the {what} holds text that is not valid Unicode (a lone \\uD800-\\uDFFF escape) or nests too deeply",
                           field=what, allowed="UTF-8 JSON with paired surrogate escapes", example='{"content": "caf\\u00e9"}')
        return value
    except ApiError:
        raise
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        where = ""
        if isinstance(exc, json.JSONDecodeError):
            where = f" at line {exc.lineno} column {exc.colno}: {exc.msg}"
        raise ApiError(
            400, f"the {what} is not valid JSON{where}", field=what,
            allowed="a UTF-8 JSON document", example='{"content": "The mitochondria is the powerhouse of the cell"}',
        ) from None


def _json_default(obj: Any) -> Any:
    if isinstance(obj, datetime):
        return iso(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def dumps(obj: Any) -> bytes:
    """Compact JSON. A UTC ``datetime`` in ``obj`` is written as ``iso`` writes it
    (orjson's OPT_UTC_Z gives the same text, checked over 1678-2261, in C)."""
    if _orjson is not None:
        return _orjson.dumps(obj, option=_orjson.OPT_UTC_Z)
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default).encode()


# ----------------------------------------------------------------------------- fields


def _structure(field: str, problem: str, allowed: str, example: str) -> ApiError:
    return ApiError(422, f"{field}: {problem}", field=field, allowed=allowed, example=example)


def _value(field: str, problem: str, allowed: str, example: str) -> ApiError:
    return ApiError(400, f"{field}: {problem}", field=field, allowed=allowed, example=example)


def require_object(body: Any, field: str = "body", example: str = '{"content": "..."}') -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _structure(field, f"expected a JSON object, got {_kind(body)}", "a JSON object", example)
    return body


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


def get_str(
    obj: Mapping[str, Any], key: str, *, prefix: str = "", required: bool = False, chars_max: int = TEXT_FIELD_CHARS_MAX,
    example: str = '"text"', allow_empty: bool = False,
) -> str | None:
    name = prefix + key
    v = obj.get(key)
    if v is None:
        if required:
            raise _structure(name, "is required", "a string", example)
        return None
    if not isinstance(v, str):
        raise _structure(name, f"expected a string, got {_kind(v)}", "a string", example)
    if not allow_empty and v == "":
        raise _value(name, "is empty", "a non-empty string", example)
    if len(v) > chars_max:
        raise _value(name, f"is {len(v)} characters long", f"at most {chars_max} characters", example)
    if "\x00" in v:
        raise _value(name, "contains a NUL character", "text without NUL characters", example)
    return v


def get_number(
    obj: Mapping[str, Any], key: str, *, prefix: str = "", lo: float, hi: float, default: float | None = None,
    example: str = "0.9",
) -> float | None:
    name = prefix + key
    v = obj.get(key)
    if v is None:
        return default
    # The original also accepted the JSON form {"value": x} for confidences.
    if isinstance(v, dict) and "value" in v:
        v = v["value"]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _structure(name, f"expected a number, got {_kind(v)}", f"a number in [{lo}, {hi}]", example)
    f = float(v)
    if not math.isfinite(f) or not lo <= f <= hi:
        raise _value(name, f"{v!r} is out of range", f"a number in [{lo}, {hi}]", example)
    return f


def get_str_list(
    obj: Mapping[str, Any], key: str, *, prefix: str = "", count_max: int = TAGS_COUNT_MAX, example: str = '["biology"]'
) -> tuple[str, ...]:
    name = prefix + key
    v = obj.get(key)
    if v is None:
        return ()
    if not isinstance(v, list):
        raise _structure(name, f"expected an array of strings, got {_kind(v)}", "an array of strings", example)
    if len(v) > count_max:
        raise _value(name, f"has {len(v)} items", f"at most {count_max} strings", example)
    out = []
    for i, item in enumerate(v):
        if not isinstance(item, str):
            raise _structure(f"{name}[{i}]", f"expected a string, got {_kind(item)}", "a string", example)
        if not item or len(item) > TAG_CHARS_MAX or "\x00" in item:
            raise _value(f"{name}[{i}]", "is empty, too long or contains NUL", f"1..{TAG_CHARS_MAX} characters", example)
        out.append(item)
    return tuple(out)


def get_enum(obj: Mapping[str, Any], key: str, allowed: Iterable[str], *, prefix: str = "", default: str | None = None) -> str | None:
    name = prefix + key
    allowed = tuple(allowed)
    v = obj.get(key)
    if v is None:
        return default
    if not isinstance(v, str):
        raise _structure(name, f"expected a string, got {_kind(v)}", "one of " + ", ".join(allowed), f'"{allowed[0]}"')
    norm = v.strip().lower()
    if norm not in allowed:
        raise _value(name, f"{v!r} is not allowed", "one of " + ", ".join(allowed), f'"{allowed[0]}"')
    return norm


def parse_time(v: Any, name: str) -> datetime:
    if not isinstance(v, str):
        raise _structure(name, f"expected an RFC 3339 time string, got {_kind(v)}", "an RFC 3339 time", EXAMPLE_TIME)
    try:
        t = datetime.fromisoformat(v.strip())
    except ValueError:
        raise _value(name, f"{v!r} is not an RFC 3339 time", "an RFC 3339 time such as 2024-05-01T09:30:00Z", EXAMPLE_TIME) from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    try:
        t = t.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        t = None
    # The engine keeps times as int64 nanoseconds since 1970: years 1678 to 2261.
    if t is None or not TIME_MIN <= t <= TIME_MAX:
        raise _value(name, f"{v!r} is out of range", "a time from 1678-01-01 to 2261-12-31 (UTC)", EXAMPLE_TIME)
    return t


def get_time(obj: Mapping[str, Any], key: str, *, prefix: str = "", required: bool = False) -> datetime | None:
    v = obj.get(key)
    if v is None:
        if required:
            raise _structure(prefix + key, "is required", "an RFC 3339 time", EXAMPLE_TIME)
        return None
    return parse_time(v, prefix + key)


def to_embedding(v: Any, name: str, dim: int) -> np.ndarray:
    """A JSON array (or raw little-endian float32 bytes, from msgpack) as float32 (dim,).

    The plain case (a list of only floats and ints, finite, within the limit, not all
    zero) is read in one C loop (``_core.float_list_f32``, ~2 us where the path below
    takes ~35); anything else returns None there and is decided, and worded, below.
    The bits are the same either way (float64 first, then float32).
    """
    if type(v) is list:
        plain = _core.float_list_f32(v, dim)
        if plain is not None:
            return plain
    if isinstance(v, (bytes, bytearray, memoryview)):
        raw = bytes(v)
        if len(raw) != 4 * dim:
            raise _value(name, f"has {len(raw) // 4} float32 values ({len(raw)} bytes); expected {dim}",
                         f"{dim} little-endian float32 values ({4 * dim} bytes)", EXAMPLE_EMBEDDING)
        arr = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    else:
        if not isinstance(v, list):
            raise _structure(name, f"expected an array of {dim} numbers, got {_kind(v)}", f"an array of {dim} finite numbers", EXAMPLE_EMBEDDING)
        if len(v) != dim:
            raise _value(name, f"has {len(v)} values; expected {dim}", f"an array of exactly {dim} finite numbers", EXAMPLE_EMBEDDING)
        types = set(map(type, v))
        if not types <= {int, float}:
            bad = next(i for i, x in enumerate(v) if type(x) not in (int, float))
            raise _structure(f"{name}[{bad}]", f"expected a number, got {_kind(v[bad])}", "a finite number", "0.12")
        try:
            arr = np.array(v, dtype=np.float64)
        except OverflowError:
            raise _value(name, "contains an integer too large for float32", "finite float32 numbers", "0.12") from None
        return _checked_float64(arr, name)
    return _checked_float32(arr, name)


def _checked_float64(arr: np.ndarray, name: str) -> np.ndarray:
    """float64 values as float32, refusing values too large for float32, NaN, infinity and all zeros."""
    magnitude = np.abs(arr)
    if magnitude.max() <= 3.0e38:  # the common case: no NaN, no infinity, nothing too large
        out = arr.astype(np.float32)
        if not out.any():
            raise _value(name, "is all zeros, which has no direction for cosine similarity", "a non-zero vector", EXAMPLE_EMBEDDING)
        return out
    if np.any(magnitude > 3.0e38):
        bad = int(np.argmax(magnitude > 3.0e38))
        raise _value(f"{name}[{bad}]", "is too large for float32", "finite float32 numbers", "0.12")
    return _checked_float32(arr.astype(np.float32), name)


def _checked_float32(arr: np.ndarray, name: str) -> np.ndarray:
    if not np.all(np.isfinite(arr)):
        bad = int(np.argmax(~np.isfinite(arr)))
        raise _value(f"{name}[{bad}]", "is NaN or infinite", "finite numbers", "0.12")
    if not np.any(arr):
        raise _value(name, "is all zeros, which has no direction for cosine similarity", "a non-zero vector", EXAMPLE_EMBEDDING)
    return arr


def check_space_id(space: Any, field: str) -> str:
    if not isinstance(space, str) or not SPACE_ID_RE.match(space):
        raise ApiError(
            400, f"{field}: {space!r} is not a valid memory space id", field=field,
            allowed="3-64 characters of a-z, 0-9, '_' and '-', starting with a letter or digit",
            example='"agent-1"',
        )
    return space


def get_memory_id(obj: Mapping[str, Any], key: str = "id", *, prefix: str = "") -> str | None:
    v = obj.get(key)
    if v is None:
        return None
    name = prefix + key
    if not isinstance(v, str):
        raise _structure(name, f"expected a string, got {_kind(v)}", "a string id", '"mem_7f3a"')
    if not MEMORY_ID_RE.match(v):
        raise _value(name, f"{v!r} is not a valid memory id", "1-128 characters of A-Z, a-z, 0-9, '_', '.', ':' and '-'", '"mem_7f3a"')
    return v


# ----------------------------------------------------------------------------- requests

REMEMBER_KEYS = {
    "id", "content", "embedding", "confidence", "tags", "memory_type", "timestamp", "when", "observed_at",
    "memory_space_id", "memory_space", "location", "decay", "decay_function", "decay_rate",
}

REMEMBER_EXAMPLE = '{"content": "The mitochondria is the powerhouse of the cell", "confidence": 0.95}'


_NO_EMBEDDING = object()


def packed_embeddings(items: list[Any], dim: int) -> dict[int, np.ndarray]:
    """Bulk remember: the embeddings sent as raw little-endian float32 bytes (msgpack),
    checked together. Returns {item index: float32 row} for every item whose embedding
    has the right length, is finite and is not all zeros; any other item is left to
    ``parse_remember``, which then raises the precise error in item order.

    One copy, one isfinite and one any over the whole batch instead of four NumPy calls
    per item; the rows are views of that one matrix (the engine copies each row).
    """
    size = 4 * dim
    index = [i for i, item in enumerate(items) if type(item) is dict and type(item.get("embedding")) is bytes
             and len(item["embedding"]) == size]
    if not index:
        return {}
    # np.array of fixed-size byte strings copies them into one NumPy allocation, which
    # NumPy backs with huge pages: 2 ms for 5,000 x 3 KB where b"".join took 12, most
    # of it page faults on a fresh 15 MB mapping. The bytes keep every value as sent.
    matrix = np.array([items[i]["embedding"] for i in index], dtype=f"S{size}").view("<f4").reshape(len(index), dim)
    if matrix.dtype != np.float32:  # a big-endian host: one more copy, into native order
        matrix = matrix.astype(np.float32)
    good = np.isfinite(matrix).all(axis=1) & matrix.any(axis=1)
    return {i: matrix[row] for row, i in enumerate(index) if good[row]}


def list_embeddings(items: list[Any], dim: int) -> dict[int, np.ndarray]:
    """Bulk remember in JSON: embeddings sent as arrays of numbers, read in C.

    Returns {item index: float32 row} for items whose embedding is a list of ``dim``
    floats and ints (no bools), finite and within 3e38, not all zeros, with the bits
    ``to_embedding`` gives (float64 first, then float32): ``_core.float_list_f32``,
    ~2 us a row where one ``np.array`` over all rows took ~26 (NumPy's type inference,
    then a text scan for ``true``/``false`` because it reads True as 1). Every other
    item is left to ``parse_remember`` for its precise error.
    """
    rows: dict[int, np.ndarray] = {}
    plain = _core.float_list_f32
    for i, item in enumerate(items):
        if type(item) is dict:
            emb = item.get("embedding")
            if type(emb) is list:
                row = plain(emb, dim)
                if row is not None:
                    rows[i] = row
    return rows


def parse_remember(body: Any, *, dim: int, prefix: str = "", embedding: Any = _NO_EMBEDDING) -> dict[str, Any]:
    """A remember request as keyword arguments of ``Space.remember`` (plus ``content``).

    ``embedding``: the body's embedding already validated (``packed_embeddings``)."""
    obj = require_object(body, prefix.rstrip(".") or "body", REMEMBER_EXAMPLE)
    content = get_str(obj, "content", prefix=prefix, required=True, chars_max=CONTENT_BYTES_MAX,
                      example='"The mitochondria is the powerhouse of the cell"')
    assert content is not None
    if len(content.encode("utf-8", "surrogatepass")) > CONTENT_BYTES_MAX:
        raise _value(prefix + "content", "is larger than 100 KB", "at most 102400 bytes of UTF-8", '"a short fact"')
    try:
        content.encode("utf-8")
    except UnicodeEncodeError:
        raise _value(prefix + "content", "contains lone surrogates", "valid Unicode text", '"a short fact"') from None
    kw: dict[str, Any] = {"content": content}
    if embedding is not _NO_EMBEDDING:
        kw["embedding"] = embedding
    else:
        emb = obj.get("embedding")
        if emb is not None:
            kw["embedding"] = to_embedding(emb, prefix + "embedding", dim)
    kw["confidence"] = get_number(obj, "confidence", prefix=prefix, lo=0.0, hi=1.0, default=0.7, example="0.9")
    mid = get_memory_id(obj, prefix=prefix)
    if mid is not None:
        kw["id"] = mid
    kw["tags"] = get_str_list(obj, "tags", prefix=prefix)
    kw["memory_type"] = get_enum(obj, "memory_type", MEMORY_TYPES, prefix=prefix, default="semantic")
    when = None
    for key in ("timestamp", "observed_at", "when"):
        if obj.get(key) is not None:
            when = get_time(obj, key, prefix=prefix)
            break
    if when is not None:
        kw["when"] = when
    loc = get_str(obj, "location", prefix=prefix, chars_max=SHORT_TEXT_CHARS_MAX, example='"lab"')
    if loc is not None:
        kw["location"] = loc
    decay = get_enum(obj, "decay", DECAY_KINDS, prefix=prefix) or get_enum(obj, "decay_function", DECAY_KINDS, prefix=prefix)
    if decay is not None:
        kw["decay"] = decay
    kw.update(_episode_fields(obj, prefix))
    return kw


EPISODE_EXAMPLE = '{"when": "2024-05-01T09:30:00Z", "what": "Met Ana in the lab", "where_location": "lab", "who": ["ana"]}'


def parse_episode(body: Any, *, dim: int) -> dict[str, Any]:
    """An episode request as keyword arguments of ``Space.remember_episode``."""
    obj = require_object(body, "body", EPISODE_EXAMPLE)
    what = get_str(obj, "what", required=True, chars_max=CONTENT_BYTES_MAX, example='"Met Ana in the lab"')
    assert what is not None
    if len(what.encode("utf-8", "surrogatepass")) > CONTENT_BYTES_MAX:
        raise _value("what", "is larger than 100 KB", "at most 102400 bytes of UTF-8", '"Met Ana in the lab"')
    try:
        what.encode("utf-8")
    except UnicodeEncodeError:
        raise _value("what", "contains lone surrogates", "valid Unicode text", '"Met Ana"') from None
    when = get_time(obj, "when", required=True)
    kw: dict[str, Any] = {"what": what, "when": when}
    where = get_str(obj, "where_location", chars_max=SHORT_TEXT_CHARS_MAX, example='"lab"') \
        or get_str(obj, "where", chars_max=SHORT_TEXT_CHARS_MAX, example='"lab"')
    if where is not None:
        kw["where"] = where
    emb = obj.get("embedding")
    if emb is not None:
        kw["embedding"] = to_embedding(emb, "embedding", dim)
    if obj.get("confidence") is not None:
        kw["confidence"] = get_number(obj, "confidence", lo=0.0, hi=1.0, example="0.6")
    mid = get_memory_id(obj)
    if mid is not None:
        kw["id"] = mid
    kw.update(_episode_fields(obj, ""))
    return kw


def _episode_fields(obj: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """who, why, how, importance, emotional_valence and metadata of an episode (or of a
    bulk item, so that what ``engram export`` wrote goes back in), as keyword arguments
    of ``Space.remember_episode``/``remember_many``; absent ones are left out."""
    kw: dict[str, Any] = {}
    who = get_str_list(obj, "who", prefix=prefix, example='["ana", "ben"]')
    if who:
        kw["who"] = who
    for key in ("why", "how"):
        v = get_str(obj, key, prefix=prefix, chars_max=SHORT_TEXT_CHARS_MAX, example='"to review results"')
        if v is not None:
            kw[key] = v
    for key, lo, hi in (("importance", 0.0, 1.0), ("emotional_valence", -1.0, 1.0)):
        v = get_number(obj, key, prefix=prefix, lo=lo, hi=hi, example="0.6")
        if v is not None:
            kw[key] = v
    meta = obj.get("metadata")
    if meta is not None:
        name = prefix + "metadata"
        if not isinstance(meta, dict):
            raise _structure(name, f"expected an object, got {_kind(meta)}", "an object of string keys to strings, numbers or booleans", '{"project": "x"}')
        if len(meta) > 64:
            raise _value(name, f"has {len(meta)} keys", "at most 64 keys", '{"project": "x"}')
        clean: dict[str, Any] = {}
        for k, v in meta.items():
            if not isinstance(k, str):  # a msgpack body may have bytes keys; the engine refuses them
                raise _structure(name, f"has a key that is {_kind(k)}, not a string", "an object of string keys", '{"project": "x"}')
            if len(k) > TAG_CHARS_MAX or "\x00" in k:
                raise _value(f"{name}.{k[:32]}", "key is too long or contains NUL", f"keys of at most {TAG_CHARS_MAX} characters", '{"project": "x"}')
            if v is not None and not isinstance(v, (str, int, float, bool)):
                raise _structure(f"{name}.{k}", f"expected a string, number or boolean, got {_kind(v)}", "a scalar value", '"x"')
            if isinstance(v, str) and (len(v) > TEXT_FIELD_CHARS_MAX or "\x00" in v):
                raise _value(f"{name}.{k}", "is too long or contains NUL", f"at most {TEXT_FIELD_CHARS_MAX} characters", '"x"')
            if isinstance(v, float) and not math.isfinite(v):
                raise _value(f"{name}.{k}", "is not finite", "a finite number", "1.5")
            clean[k] = v
        kw["metadata"] = clean
    return kw


# ----------------------------------------------------------------------------- query strings

class EncodedQueryValue:
    """An ``embedding`` query-string value kept as sent (percent-encoded): parse_recall_params
    reads its numbers with _core.float_array_text without decoding ~7 KB first, and
    decodes it only when that declines (see ``decoded``)."""

    __slots__ = ("raw",)

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def decoded(self) -> str:
        return _decode_query_value(self.raw)


def _decode_query_value(value: bytes) -> str:
    if b"+" in value:
        value = value.replace(b"+", b" ")
    if b"%" in value:
        value = value.replace(b"%2C", b",").replace(b"%5B", b"[").replace(b"%5D", b"]")
        if b"%" in value:
            value = urllib.parse.unquote_to_bytes(value)
    return value.decode("utf-8", "replace")


def query_dict(query_string: bytes) -> dict[str, Any]:
    """The query string as {name: last value}, like Starlette's QueryParams.get; the
    value of ``embedding`` comes as an EncodedQueryValue, every other one as str.

    An embedding in a query string is ~7 KB of numbers with a %2C after each one;
    urllib's unquote takes ~150 us on it (a Python call per escape). The escapes that
    clients emit for a JSON array (%2C, %5B, %5D, upper case as RFC 3986 recommends)
    are replaced with bytes.replace first; only a value with other escapes left goes
    through unquote, so the result is the same either way.
    """
    out: dict[str, str] = {}
    if not query_string:
        return out
    for part in query_string.split(b"&"):
        if not part:
            continue
        key, _, value = part.partition(b"=")
        if b"+" in key:
            key = key.replace(b"+", b" ")
        if b"%" in key:
            key = urllib.parse.unquote_to_bytes(key)
        name = key.decode("utf-8", "replace")
        out[name] = EncodedQueryValue(value) if name == "embedding" else _decode_query_value(value)
    return out


# What a query parameter integer may look like. int() alone also takes "1_0", " 10 "
# and other scripts' digits ("１０", "١٠"), which no client means as a number.
_ASCII_INT_RE = re.compile(r"[+-]?[0-9]+")


def param_int(params: Mapping[str, str], key: str, *, lo: int, hi: int, default: int) -> int:
    """The integer query parameter ``key`` (ASCII digits with an optional sign) within
    [lo, hi], or ``default`` when absent or empty. Raises ApiError 400 naming ``key``."""
    raw = params.get(key)
    if raw is None or raw == "":
        return default
    if not _ASCII_INT_RE.fullmatch(raw):
        raise _value(key, f"{raw!r} is not an integer", f"an integer in [{lo}, {hi}] written with ASCII digits 0-9",
                     f"{key}={default}")
    if len(raw) > 24:  # far outside any range here; int() of thousands of digits costs time
        raise _value(key, f"{raw[:24]}... is out of range", f"an integer in [{lo}, {hi}]", f"{key}={default}")
    v = int(raw)
    if not lo <= v <= hi:
        raise _value(key, f"{v} is out of range", f"an integer in [{lo}, {hi}]", f"{key}={default}")
    return v


def _param_float(params: Mapping[str, str], key: str, *, lo: float, hi: float, default: float | None) -> float | None:
    raw = params.get(key)
    if raw is None or raw == "":
        return default
    try:
        v = float(raw)
    except ValueError:
        raise _value(key, f"{raw!r} is not a number", f"a number in [{lo}, {hi}]", f"{key}=0.5") from None
    if not math.isfinite(v) or not lo <= v <= hi:
        raise _value(key, f"{raw} is out of range", f"a number in [{lo}, {hi}]", f"{key}=0.5")
    return v


def param_bool(params: Mapping[str, str], key: str, default: bool = False) -> bool:
    raw = params.get(key)
    if raw is None or raw == "":
        return default
    low = raw.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise _value(key, f"{raw!r} is not a boolean", "true or false", f"{key}=true")


_RECALL_SCALAR_KEYS = {
    "query": ("a string", '"mitochondria"'), "q": ("a string", '"mitochondria"'),
    "content": ("a string", '"mitochondria"'), "text": ("a string", '"mitochondria"'),
    "max_results": ("an integer", "10"), "limit": ("an integer", "10"),
    "threshold": ("a number", "0.5"), "confidence_threshold": ("a number", "0.5"),
    "mode": ("a string", '"similarity"'),
    "from_time": ("an RFC 3339 time string", EXAMPLE_TIME), "to_time": ("an RFC 3339 time string", EXAMPLE_TIME),
    "location": ("a string", '"lab"'),
    "memory_type": ("a string or an array of memory types", '["episodic", "semantic"]'),
    "memory_types": ("a string or an array of memory types", '["episodic", "semantic"]'),
}


def parse_recall_params(params: Mapping[str, Any], *, dim: int, threshold_default: float | None = None) -> dict[str, Any]:
    """Recall/query parameters (query string or JSON body) as a validated dict.

    Keys: text, embedding, k, threshold (None means the per-cue default), after, before,
    location, memory_types, mode.
    """
    # A JSON body (POST recall) may hold arrays and objects where a query string holds
    # text: the scalar fields refuse them (they were dropped, and the filter with them);
    # memory_type takes an array of type names too.
    if any(isinstance(v, (list, dict)) for v in params.values()):
        params = dict(params)
        for key in _RECALL_SCALAR_KEYS:
            v = params.get(key)
            if not isinstance(v, (list, dict)):
                continue
            if key in ("memory_type", "memory_types") and isinstance(v, list) and all(isinstance(t, str) for t in v):
                params[key] = ",".join(v)
                continue
            allowed, example = _RECALL_SCALAR_KEYS[key]
            raise _structure(key, f"expected {allowed}, got {_kind(v)}", allowed, example)

    def s(key: str) -> str | None:
        v = params.get(key)
        if v is None:
            return None
        if not isinstance(v, str):
            if key in ("embedding",):
                return v  # type: ignore[return-value]
            v = json.dumps(v) if not isinstance(v, (int, float)) or isinstance(v, bool) else str(v)
        return v

    text = s("query") or s("q") or s("content") or s("text")
    if text is not None:
        if len(text) > TEXT_FIELD_CHARS_MAX:
            raise _value("query", f"is {len(text)} characters long", f"at most {TEXT_FIELD_CHARS_MAX} characters", "query=mitochondria")
        if "\x00" in text:
            raise _value("query", "contains a NUL character", "plain text", "query=mitochondria")
        if not text.strip():
            text = None
    emb_raw = params.get("embedding")
    embedding = None
    if isinstance(emb_raw, EncodedQueryValue):
        embedding = _core.float_array_text(emb_raw.raw, dim, True)
        emb_raw = None if embedding is not None else emb_raw.decoded()
    if emb_raw is not None and emb_raw != "":
        if isinstance(emb_raw, str):
            try:
                if _orjson is not None:
                    try:
                        emb_val = _orjson.loads(emb_raw)
                    except _orjson.JSONDecodeError:
                        emb_val = json.loads(emb_raw, parse_constant=lambda n: float("nan"))
                else:
                    emb_val = json.loads(emb_raw, parse_constant=lambda n: float("nan"))
            except (ValueError, RecursionError):
                # 10**5000 written out: the standard library refuses an int of over 4300
                # digits with a ValueError; it is a JSON array, of a number no double holds.
                problem = "holds a number beyond what a double holds" if re.match(r"\s*\[[\s\d.eE+,-]*\]\s*$", emb_raw) \
                    else "is not a JSON array"
                raise _value("embedding", problem, f"a JSON array of {dim} numbers", "embedding=[0.12,-0.03,...]") from None
            try:
                embedding = to_embedding(emb_val, "embedding", dim)
            except ApiError as err:
                # A query parameter has no structure to get wrong: any refusal of its text
                # is a bad value, 400, as GET's documented answers say (not the body's 422).
                err.status, err.code = 400, CODES[400]
                raise
        else:
            embedding = to_embedding(emb_raw, "embedding", dim)
    str_params = {k: (v if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else str(v))
                  for k, v in params.items() if isinstance(v, (str, int, float, bool))}
    k = param_int(str_params, "max_results", lo=1, hi=MAX_RESULTS_MAX,
                  default=param_int(str_params, "limit", lo=1, hi=MAX_RESULTS_MAX, default=10))
    threshold = _param_float(str_params, "threshold", lo=0.0, hi=1.0, default=None)
    if threshold is None:
        threshold = _param_float(str_params, "confidence_threshold", lo=0.0, hi=1.0, default=threshold_default)
    mode = str_params.get("mode") or "similarity"
    mode = mode.strip().lower()
    if mode not in RECALL_MODES:
        raise _value("mode", f"{mode!r} is not allowed", "similarity, spreading or hybrid", "mode=similarity")
    after = parse_time(str_params["from_time"], "from_time") if str_params.get("from_time") else None
    before = parse_time(str_params["to_time"], "to_time") if str_params.get("to_time") else None
    if after is not None and before is not None and after > before:
        raise _value("from_time", "is after to_time", "from_time <= to_time", "from_time=2024-01-01T00:00:00Z&to_time=2024-12-31T00:00:00Z")
    location = str_params.get("location") or None
    if location is not None and (len(location) > TEXT_FIELD_CHARS_MAX or "\x00" in location):
        raise _value("location", "is too long or contains NUL", "a short place name", "location=lab")
    mtypes = None
    raw_types = str_params.get("memory_type") or str_params.get("memory_types")
    if raw_types:
        mtypes = tuple(t.strip().lower() for t in raw_types.split(",") if t.strip())
        for t in mtypes:
            if t not in MEMORY_TYPES:
                raise _value("memory_type", f"{t!r} is not allowed", "comma-separated of " + ", ".join(MEMORY_TYPES), "memory_type=episodic")
    if text is None and embedding is None and after is None and before is None and location is None and mtypes is None:
        raise _value("query", "no cue was given", "at least one of query (text), embedding, from_time, to_time, location",
                     "/api/v1/memories/recall?query=mitochondria")
    return {"text": text, "embedding": embedding, "k": k, "threshold": threshold, "after": after,
            "before": before, "location": location, "memory_types": mtypes, "mode": mode}


def parse_list_params(params: Mapping[str, str]) -> tuple[int, int, bool]:
    offset = param_int(params, "offset", lo=0, hi=2**62, default=0)
    limit = param_int(params, "limit", lo=1, hi=LIST_LIMIT_MAX, default=100)
    return offset, limit, param_bool(params, "include_embeddings")


# ----------------------------------------------------------------------------- responses


def iso(t: datetime | None) -> str | None:
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def iso_value(t: datetime | None) -> datetime | str | None:
    """What ``dumps`` turns into ``iso(t)``: a UTC datetime itself (formatted in C when
    the response is encoded, ~3 us less per time field), any other one as iso(t)."""
    if t is not None and t.tzinfo is timezone.utc:
        return t
    return iso(t)


def category(value: float) -> str:
    if value > 0.7:
        return "High"
    if value > 0.4:
        return "Medium"
    return "Low"


def confidence_json(value: float, reasoning: str) -> dict[str, Any]:
    v = min(1.0, max(0.0, float(value)))
    return {"value": v, "category": category(v), "reasoning": reasoning}


def _f(x: Any) -> float | None:
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def memory_json(m: Any, *, include_embedding: bool = False) -> dict[str, Any]:
    """A stored memory as the original's JSON (confidence in its {value,category,reasoning} form)."""
    out: dict[str, Any] = {
        "id": m.id,
        "content": m.content,
        "confidence": confidence_json(m.confidence, "stored confidence"),
        "created_at": iso_value(m.created_at),
        "observed_at": iso_value(m.created_at),
        "last_access": iso_value(getattr(m, "last_access", None)),
        "access_count": int(getattr(m, "access_count", 0) or 0),
        "tags": list(getattr(m, "tags", ()) or ()),
        "memory_type": getattr(m, "memory_type", "semantic"),
        "decay_function": getattr(m, "decay", None),
        "location": getattr(m, "location", None),
        "has_embedding": getattr(m, "embedding", None) is not None,
    }
    if out["memory_type"] == "episodic":
        out["what"] = m.content
        out["when"] = iso_value(m.created_at)
        out["where_location"] = getattr(m, "location", None)
        out["who"] = list(getattr(m, "who", ()) or ())
        out["why"] = getattr(m, "why", None)
        out["how"] = getattr(m, "how", None)
        out["importance"] = _f(getattr(m, "importance", None))
        out["emotional_valence"] = _f(getattr(m, "emotional_valence", None))
    sources = getattr(m, "sources", ()) or ()
    if sources:
        out["sources"] = list(sources)
    meta = getattr(m, "metadata", None)
    if meta:
        out["metadata"] = {str(k): v for k, v in meta.items()}
    if include_embedding:
        emb = getattr(m, "embedding", None)
        out["embedding"] = None if emb is None else [float(x) for x in np.asarray(emb, dtype=np.float32).tolist()]
    return out


def hit_json(hit: Any, *, retrieval_path: str, activation: float | None = None) -> dict[str, Any]:
    if type(hit) is _Hit and type(hit.memory) is _Memory:
        return _engine_hit_json(hit, retrieval_path, activation)
    return _generic_hit_json(hit, retrieval_path, activation)


def _generic_hit_json(hit: Any, retrieval_path: str, activation: float | None) -> dict[str, Any]:
    m = hit.memory
    conf = float(hit.confidence)
    return {
        "id": hit.id,
        "content": m.content,
        "confidence": confidence_json(conf, "stored confidence x retention x match"),
        "activation_level": min(1.0, max(0.0, float(activation if activation is not None else hit.retention))),
        "similarity_score": min(1.0, max(0.0, float(hit.score))),
        "retrieval_path": retrieval_path,
        "observed_at": iso_value(m.created_at),
        "last_access": iso_value(getattr(m, "last_access", None)),
        "tags": list(getattr(m, "tags", ()) or ()),
        "memory_type": getattr(m, "memory_type", "semantic"),
        "location": getattr(m, "location", None),
    }


_HIT_REASONING = "stored confidence x retention x match"


def _engine_hit_json(hit: Any, retrieval_path: str, activation: float | None) -> dict[str, Any]:
    """``hit_json`` for the engine's own Hit and Memory: the same document, read with
    plain attribute access and the clamps inlined. A recall answers 10 hits a request
    on the event loop; the generic version's getattr calls and helper calls were about
    half of a recall's response-building time."""
    m = hit.memory
    # x if 0 <= x <= 1 else ...: the clamp min(1, max(0, x)) gives, NaN included (-> 0.0).
    conf = float(hit.confidence)
    conf = conf if 0.0 <= conf <= 1.0 else (1.0 if conf > 1.0 else 0.0)
    level = float(activation if activation is not None else hit.retention)
    level = level if 0.0 <= level <= 1.0 else (1.0 if level > 1.0 else 0.0)
    score = float(hit.score)
    score = score if 0.0 <= score <= 1.0 else (1.0 if score > 1.0 else 0.0)
    created = m.created_at
    last = m.last_access
    return {
        "id": hit.id,
        "content": m.content,
        "confidence": {"value": conf, "category": "High" if conf > 0.7 else ("Medium" if conf > 0.4 else "Low"),
                       "reasoning": _HIT_REASONING},
        "activation_level": level,
        "similarity_score": score,
        "retrieval_path": retrieval_path,
        "observed_at": created if created.tzinfo is timezone.utc else iso(created),
        "last_access": last if last is not None and last.tzinfo is timezone.utc else iso(last),
        "tags": list(m.tags or ()),
        "memory_type": m.memory_type,
        "location": m.location,
    }
