"""Validation of every value a caller hands the engine.

Each check raises ``ValidationError(field, problem, allowed, example)`` before
anything is written, so a rejected call changes nothing.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any, Iterable

import msgpack
import numpy as np

from engram import _core
from engram.errors import ValidationError
from engram.memory.types import DECAY_FUNCTIONS, MEMORY_TYPES, datetime_to_ns

SPACE_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{2,63}$")
MEMORY_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
CONTENT_BYTES_MAX = 100 * 1024
TAG_COUNT_MAX = 64
TAG_CHARS_MAX = 128
SHORT_TEXT_CHARS_MAX = 1024


def space_id(value: Any) -> str:
    if not isinstance(value, str) or not SPACE_ID_PATTERN.match(value):
        raise ValidationError(
            "space_id",
            f"{value!r} is not a valid space id",
            "3 to 64 characters of a-z, 0-9, '_' and '-', starting with a letter or digit",
            "'agent-1'",
        )
    return value


def memory_id(value: Any, field: str = "id") -> str:
    if not isinstance(value, str) or not MEMORY_ID_PATTERN.match(value):
        raise ValidationError(
            field,
            f"{value!r} is not a valid memory id",
            "1 to 128 characters of letters, digits, '_', '.', ':' and '-', starting with a letter or digit",
            "'mem_7f3a'",
        )
    return value


def content(value: Any, field: str = "content") -> str:
    if not isinstance(value, str):
        raise ValidationError(field, f"expected a string, got {type(value).__name__}", "a UTF-8 string", "'The cell has a nucleus'")
    if value.isascii() and len(value) <= CONTENT_BYTES_MAX:
        return value  # fast path: one byte a character, and ASCII holds no surrogates
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > CONTENT_BYTES_MAX:
        raise ValidationError(field, f"{size} bytes is too long", f"at most {CONTENT_BYTES_MAX} bytes of UTF-8", "'The cell has a nucleus'")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(field, "contains lone surrogates", "valid Unicode text", "'The cell has a nucleus'") from None
    return value


def unit_float(value: Any, field: str, example: str = "0.9") -> float:
    if type(value) is float and 0.0 <= value <= 1.0:
        return value  # the common case (NaN fails the comparison and is refused below)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValidationError(field, f"expected a number, got {type(value).__name__}", "a number in [0, 1]", example)
    number = float(value)
    if not math.isfinite(number) or not 0.0 <= number <= 1.0:
        raise ValidationError(field, f"{value!r} is outside [0, 1]", "a finite number in [0, 1]", example)
    return number


def signed_unit_float(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValidationError(field, f"expected a number, got {type(value).__name__}", "a number in [-1, 1]", "0.4")
    number = float(value)
    if not math.isfinite(number) or not -1.0 <= number <= 1.0:
        raise ValidationError(field, f"{value!r} is outside [-1, 1]", "a finite number in [-1, 1]", "0.4")
    return number


def embedding(value: Any, dimension: int, field: str = "embedding") -> np.ndarray:
    """A new float32 array equal to ``value`` after checking length, finiteness and a non-zero norm.

    The checks run in a compiled kernel that keeps the GIL (``_core.embedding_f32``):
    this runs on every writer thread, and with many writers each NumPy call that
    released the GIL cost a context switch. Raises ValidationError naming ``field``.
    """
    try:
        out = _core.embedding_f32(value, dimension)
    except _core.EmbeddingValueError as exc:
        raise _embedding_error(exc, dimension, field) from None
    # The norm, by the kernel that keeps the GIL for one row (a microsecond).
    inv_norm = float(_core.row_inv_norms(out.reshape(1, -1))[0])
    if not EMBEDDING_INV_NORM_MIN <= inv_norm <= EMBEDDING_INV_NORM_MAX:
        raise embedding_norm_error(inv_norm, dimension, field)
    return out


# float32 cosines are computed from float32 dot products: past a norm of about 1.8e19 a
# vector's products overflow to infinity (every score then reads 1.0, or NaN), and near
# 1e-19 they underflow to 0. Vectors are kept well inside: |a| x |b| stays within
# 1e-30 .. 1e30, where every partial sum of a dot product is a normal float32.
EMBEDDING_NORM_MIN = 1e-15
EMBEDDING_NORM_MAX = 1e15
EMBEDDING_INV_NORM_MIN = 1.0 / EMBEDDING_NORM_MAX
EMBEDDING_INV_NORM_MAX = 1.0 / EMBEDDING_NORM_MIN


def embedding_norm_error(inv_norm: float, dimension: int, field: str) -> ValidationError:
    norm = math.inf if inv_norm == 0.0 else 1.0 / inv_norm
    return ValidationError(
        field, f"has a norm of {norm:.3g}, outside what float32 cosines can score",
        f"{dimension} numbers whose norm (length) is between {EMBEDDING_NORM_MIN:g} and {EMBEDDING_NORM_MAX:g}",
        f"[0.1, 0.2, ...] ({dimension} numbers)",
    )


def _embedding_error(exc: _core.EmbeddingValueError, dimension: int, field: str) -> ValidationError:
    example = f"[0.1, 0.2, ...] ({dimension} numbers)"
    allowed = f"{dimension} finite numbers"
    problem = exc.problem
    if problem == "type":
        return ValidationError(field, f"expected a list of {dimension} numbers, got {exc.detail}", allowed, example)
    if problem == "not_number":
        return ValidationError(field, "contains a value that is not a number", allowed, example)
    if problem == "length":
        return ValidationError(field, f"expected {dimension} dimensions, received {exc.detail}", f"exactly {dimension} finite numbers", example)
    if problem == "nonfinite":
        return ValidationError(field, "contains NaN or infinity", allowed, example)
    if problem == "float32_range":
        return ValidationError(field, "has a value too large for float32", "finite numbers within +-3.4e38", example)
    assert problem == "zero", problem
    return ValidationError(field, "is the zero vector, which has no direction", "a vector with a non-zero norm", example)


# Times are stored as signed 64-bit nanoseconds since 1970: about 1678 to 2261.
WHEN_YEAR_MIN = 1678
WHEN_YEAR_MAX = 2261


def when(value: Any, field: str = "when") -> int:
    if isinstance(value, datetime):
        if not WHEN_YEAR_MIN <= value.year <= WHEN_YEAR_MAX:
            raise ValidationError(
                field, f"{value.isoformat()} is outside the storable range",
                f"a datetime in the years {WHEN_YEAR_MIN} to {WHEN_YEAR_MAX}", "datetime(2026, 1, 5, 9, 30, tzinfo=timezone.utc)",
            )
        return datetime_to_ns(value)
    raise ValidationError(field, f"expected a datetime, got {type(value).__name__}", "a datetime (naive means UTC)", "datetime(2026, 1, 5, 9, 30, tzinfo=timezone.utc)")


def tags(value: Any, field: str = "tags") -> tuple[str, ...]:
    if type(value) is tuple and not value:
        return ()  # the default, on every store: skip the ABC check below
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValidationError(field, f"expected a list of strings, got {type(value).__name__}", f"at most {TAG_COUNT_MAX} strings", "['biology', 'cells']")
    out = tuple(value)
    if len(out) > TAG_COUNT_MAX or not all(isinstance(t, str) and 0 < len(t) <= TAG_CHARS_MAX for t in out):
        raise ValidationError(field, "has too many tags or a tag that is not a short non-empty string", f"at most {TAG_COUNT_MAX} strings of 1 to {TAG_CHARS_MAX} characters", "['biology', 'cells']")
    return out


# Metadata is stored in every record and checkpoint of its memory: bounded like content.
METADATA_BYTES_MAX = CONTENT_BYTES_MAX
METADATA_DEPTH_MAX = 16
_METADATA_EXAMPLE = "{'source': 'chat', 'turn': 3}"
_METADATA_ALLOWED = (f"a dict of string keys to JSON values (string, finite number, bool, None, list, dict), "
                     f"nested at most {METADATA_DEPTH_MAX} deep, at most {METADATA_BYTES_MAX} bytes encoded")


def metadata(value: Any, field: str = "metadata") -> dict[str, Any]:
    """A new dict equal to ``value`` in the form a replayed record gives back (tuples as
    lists, NumPy scalars as Python numbers), so that a memory reads the same before and
    after reopening and the caller keeps no reference into stored state."""
    if not isinstance(value, dict):
        raise ValidationError(field, f"expected a dict, got {type(value).__name__}", _METADATA_ALLOWED, _METADATA_EXAMPLE)
    out = _json_value(value, field, 0)
    size = len(msgpack.packb(out, use_bin_type=True))
    if size > METADATA_BYTES_MAX:
        raise ValidationError(field, f"{size} bytes encoded is too large", _METADATA_ALLOWED, _METADATA_EXAMPLE)
    return out  # type: ignore[no-any-return]


def _json_value(value: Any, path: str, depth: int) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError(path, "contains lone surrogates", _METADATA_ALLOWED, _METADATA_EXAMPLE) from None
        return str(value)
    if isinstance(value, (int, np.integer)):
        number = int(value)
        if not -(2**63) <= number < 2**64:  # what msgpack can store
            raise ValidationError(path, f"{number} does not fit in 64 bits", _METADATA_ALLOWED, _METADATA_EXAMPLE)
        return number
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if not math.isfinite(number):
            raise ValidationError(path, f"{value!r} is not a finite number", _METADATA_ALLOWED, _METADATA_EXAMPLE)
        return number
    if depth >= METADATA_DEPTH_MAX:
        raise ValidationError(path, "is nested too deep", _METADATA_ALLOWED, _METADATA_EXAMPLE)
    if isinstance(value, (list, tuple)):
        return [_json_value(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for key, v in value.items():
            if not isinstance(key, str):
                raise ValidationError(path, f"has a key that is not a string: {key!r}", _METADATA_ALLOWED, _METADATA_EXAMPLE)
            out[str(key)] = _json_value(v, f"{path}[{key!r}]", depth + 1)
        return out
    raise ValidationError(path, f"holds a {type(value).__name__}, which is not a JSON value", _METADATA_ALLOWED, _METADATA_EXAMPLE)


def short_text(value: Any, field: str, example: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > SHORT_TEXT_CHARS_MAX:
        raise ValidationError(field, "expected a string", f"a string of at most {SHORT_TEXT_CHARS_MAX} characters, or None", example)
    return value


def memory_type(value: Any) -> str:
    if value not in MEMORY_TYPES:
        raise ValidationError("memory_type", f"{value!r} is not a memory type", " | ".join(MEMORY_TYPES), "'semantic'")
    return value


def decay_function(value: Any, field: str = "decay") -> str:
    if value not in DECAY_FUNCTIONS:
        raise ValidationError(field, f"{value!r} is not a decay function", " | ".join(DECAY_FUNCTIONS), "'power_law'")
    return value


def positive_int(value: Any, field: str, example: str, maximum: int | None = None, *, minimum: int = 1) -> int:
    """An integer (bool refused, NumPy integers taken) from ``minimum`` (1 unless told) to ``maximum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum \
            or (maximum is not None and value > maximum):
        allowed = f"an integer from {minimum} to {maximum}" if maximum is not None else f"an integer >= {minimum}"
        raise ValidationError(field, f"{value!r} is not allowed", allowed, example)
    return int(value)
