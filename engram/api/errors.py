"""The HTTP error envelope and the mapping from engine errors to status codes.

Every 4xx/5xx body is ``{"error": {"code", "message", "educational_context",
"cognitive_guidance", "field"?, "allowed"?, "example"?}}`` as in the original Engram,
with the offending field and a correct example added so a client can fix its call.
A client's mistake is never a 500; a 500 never carries a stack trace.
"""

from __future__ import annotations

import errno
import json
from typing import Any

from .. import errors as engine_errors

__all__ = ["ApiError", "error_body", "from_engine_error", "CODES"]

# Status -> the original Engram's code for it.
CODES: dict[int, str] = {
    400: "INVALID_MEMORY_INPUT",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "MEMORY_NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    408: "QUERY_TIMEOUT",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "MEMORY_VALIDATION_ERROR",
    429: "RATE_LIMITED",
    500: "MEMORY_SYSTEM_ERROR",
    503: "MEMORY_CLUSTER_UNAVAILABLE",
}


class ApiError(Exception):
    """An answer other than success, with everything the envelope needs."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        field: str | None = None,
        allowed: str | None = None,
        example: str | None = None,
        context: str | None = None,
        guidance: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        assert 400 <= status <= 599
        super().__init__(message)
        self.status = status
        self.code = code or CODES.get(status, "ERROR")
        self.message = message
        self.field = field
        self.allowed = allowed
        self.example = example
        self.context = context
        self.guidance = guidance
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self)


def _default_context(err: ApiError) -> str:
    if err.field and err.allowed:
        return f"The field '{err.field}' accepts {err.allowed}."
    return {
        401: "This server requires an API key: send 'Authorization: Bearer engram_key_<id>_<secret>'.",
        403: "API keys are limited to some memory spaces and permissions (read, write, admin).",
        404: "Memories are addressed by the id that remember returned, inside one memory space.",
        413: "Large loads go through POST /api/v1/memories/bulk (JSON lines or msgpack) in chunks.",
        429: "Each API key has a request rate; wait for the time given in Retry-After.",
        503: "The server is busy or shutting down; retry after the time given in Retry-After.",
    }.get(err.status, "Engram stores and recalls memories with a confidence in [0,1].")


def _default_guidance(err: ApiError) -> str:
    if err.example:
        return f"Example of a correct value: {err.example}"
    return {
        401: "Create a key with 'engram key create --space default --perm read,write'.",
        403: "Use a key created for this space, or select a space the key allows (X-Memory-Space).",
        404: "List what exists with GET /api/v1/memories, or check the X-Memory-Space header.",
        429: "Slow down or ask for a key with a higher --rate.",
    }.get(err.status, "See GET /api-docs/openapi.json or /docs for the request shapes.")


def error_body(err: ApiError) -> dict[str, Any]:
    inner: dict[str, Any] = {
        "code": err.code,
        "message": err.message,
        "educational_context": err.context or _default_context(err),
        "cognitive_guidance": err.guidance or _default_guidance(err),
    }
    if err.field is not None:
        inner["field"] = err.field
    if err.allowed is not None:
        inner["allowed"] = err.allowed
    if err.example is not None:
        inner["example"] = err.example
    return {"error": inner}


def error_bytes(err: ApiError) -> bytes:
    return json.dumps(error_body(err), separators=(",", ":"), ensure_ascii=False).encode()


def from_engine_error(exc: BaseException, *, field_prefix: str = "") -> ApiError:
    """Translate an engine exception into the answer a client should see.

    A ValidationError is the client's fault (400 naming the field); an UnknownIdError a
    404; a locked or closed database, or no file descriptor left, a 503; anything else is our fault (500, no details).
    """
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, engine_errors.ValidationError):
        name = f"{field_prefix}{exc.field}"
        return ApiError(
            400,
            f"{name}: {exc.problem}",
            field=name,
            allowed=exc.allowed,
            example=exc.example,
        )
    if isinstance(exc, engine_errors.UnknownIdError):
        return ApiError(
            404,
            f"no memory with id {exc.memory_id!r} in space {exc.space_id!r}",
            field=f"{field_prefix}{exc.field}",
            allowed="the id of a stored memory, as returned by remember",
            example='GET /api/v1/memories?limit=10 lists stored ids',
        )
    if isinstance(exc, engine_errors.ClosedError):
        return ApiError(503, "the database is closing; retry shortly", headers={"Retry-After": "1"})
    if isinstance(exc, engine_errors.SpaceLockedError):
        return ApiError(503, "the space is locked by another process", headers={"Retry-After": "5"})
    if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
        # Out of file descriptors (connections hold them too): passing, not the request's
        # fault nor a broken server; the client should come back, not report a bug.
        return ApiError(503, "the server is out of file descriptors (too many open connections or files); retry shortly",
                        headers={"Retry-After": "1"})
    return ApiError(500, "internal error; the server log has the details")
