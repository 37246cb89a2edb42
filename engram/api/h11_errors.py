"""hypercorn's answer to a request h11 refuses, in the project's JSON error envelope.

When h11 cannot parse a request (two different Content-Length headers, no Host
header, a request head over ``h11_max_incomplete_size``, a bad byte in the request
line or a header, malformed chunked framing, ...), it raises ``RemoteProtocolError``
with a message and an ``error_status_hint``. hypercorn (0.18) catches it in
``H11Protocol._handle_events`` and answers with ``_send_error_response(status)``:
the status, ``Content-Length: 0``, ``Connection: close``, and nothing that says
what was wrong. The app never runs, so none of its error handling applies.

``install()`` replaces ``H11Protocol._send_error_response`` with one that answers
the same status with ``Connection: close`` and, instead of the empty body, the
envelope of ``errors.py`` (``Content-Type: application/json``): a message naming
the problem, and for the usual mistakes the field, what is allowed and an example.
hypercorn passes only the status, but it calls the method inside its
``except h11.RemoteProtocolError as error`` block, so the error is the exception
being handled (``sys.exc_info()``); should that ever not hold, the answer is the
envelope with a message from the status alone. h11's message can quote request
bytes (``illegal header line: bytearray(b'...')``): it is echoed as printable ASCII
only, escaped, and cut to ``ECHO_LIMIT`` characters.

``install()`` checks that hypercorn is 0.18 and still makes that call from that
block, and leaves hypercorn alone otherwise (returns False).
"""

from __future__ import annotations

import importlib.metadata
import inspect
import logging
import sys
from itertools import chain
from typing import Any

import h11
from hypercorn.protocol.h11 import H11Protocol

from .errors import ApiError, error_bytes

__all__ = ["ECHO_LIMIT", "describe", "install"]

log = logging.getLogger("engram.hypercorn")

ECHO_LIMIT = 160  # characters of h11's message echoed back

_original_send_error_response = H11Protocol._send_error_response
_CALL = "await self._send_error_response(error.error_status_hint)"

_REQUEST_LINE = {
    "field": "request line",
    "allowed": "METHOD SP target SP HTTP/1.1: a method of letters, a target of visible ASCII characters "
               "(percent-encode spaces, control characters and non-ASCII bytes as %XX)",
    "example": "GET /api/v1/memories?limit=10 HTTP/1.1",
}
_HEADER_LINE = {
    "field": "headers",
    "allowed": "one 'Name: value' per line: a name of letters, digits and -!#$%&'*+.^_`|~, a value of visible "
               "characters, spaces and tabs; no line folding",
    "example": "Content-Type: application/json",
}
_CONTENT_LENGTH = {
    "field": "Content-Length",
    "allowed": "one Content-Length of 1 to 20 ASCII digits (0-9); a repeated header must carry the same value",
    "example": "Content-Length: 120",
}
_TRANSFER_ENCODING = {
    "field": "Transfer-Encoding",
    "allowed": "'chunked' once, or no Transfer-Encoding and a Content-Length",
    "example": "Transfer-Encoding: chunked",
}
_CHUNKED = {
    "field": "body",
    "allowed": "chunked framing: each chunk '<size in hex>\\r\\n<data>\\r\\n', then '0\\r\\n\\r\\n'",
    "example": "5\\r\\nhello\\r\\n0\\r\\n\\r\\n",
}

# h11's message (its start) -> what to tell the client. Messages from h11 0.14-0.16.
_KNOWN: list[tuple[str, str, dict[str, str]]] = [
    ("conflicting Content-Length", "the request has Content-Length headers that disagree", _CONTENT_LENGTH),
    ("bad Content-Length", "the Content-Length header is not a number of ASCII digits", _CONTENT_LENGTH),
    ("Missing mandatory Host", "the request has no Host header (HTTP/1.1 requires one)", {}),
    ("Found multiple Host", "the request has more than one Host header", {}),
    ("Receive buffer too long", "the request line and headers are too large", {}),
    ("illegal request line", "the request line is malformed", _REQUEST_LINE),
    ("no request line received", "the request line is missing", _REQUEST_LINE),
    ("Illegal method characters", "the request method has characters a method cannot have", _REQUEST_LINE),
    ("Illegal target characters", "the request target (path) has characters that must be percent-encoded",
     _REQUEST_LINE),
    ("illegal header line", "a header line is malformed", _HEADER_LINE),
    ("Illegal header name", "a header name has characters a header name cannot have", _HEADER_LINE),
    ("Illegal header value", "a header value has characters a header value cannot have", _HEADER_LINE),
    ("continuation line at start of headers", "the headers start with a folded (indented) line", _HEADER_LINE),
    ("multiple Transfer-Encoding", "the request has more than one Transfer-Encoding header", _TRANSFER_ENCODING),
    ("Only Transfer-Encoding: chunked", "the only Transfer-Encoding this server reads is chunked", _TRANSFER_ENCODING),
    ("illegal chunk header", "the chunked body has a malformed chunk size line", _CHUNKED),
    ("malformed chunk footer", "a chunk of the chunked body does not end with CRLF where its size says", _CHUNKED),
]

_CODES = {400: "MALFORMED_HTTP_REQUEST", 431: "REQUEST_HEADERS_TOO_LARGE", 501: "NOT_IMPLEMENTED"}


def _echo(text: str) -> str:
    """``text`` as printable ASCII (anything else backslash-escaped), at most ECHO_LIMIT characters."""
    out = "".join(c if " " <= c <= "~" else c.encode("unicode_escape").decode("ascii") for c in text)
    return out if len(out) <= ECHO_LIMIT else out[:ECHO_LIMIT - 3] + "..."


def describe(status: int, error: BaseException | None, *, max_head_bytes: int | None = None,
             host_example: str = "Host: 127.0.0.1:8080") -> ApiError:
    """The ApiError to answer ``status`` with when h11 refused a request with ``error``."""
    if not 400 <= status <= 599:
        status = 400
    detail = str(error) if error is not None else ""
    summary, extra, matched = "the request is not valid HTTP/1.1", {}, ""
    for prefix, text, fields in _KNOWN:
        if detail.startswith(prefix):
            summary, extra, matched = text, dict(fields), prefix
            break
    if matched.endswith("Host"):
        extra = {"field": "Host", "allowed": "exactly one Host header, naming the server's host and port",
                 "example": host_example}
    elif status == 431:
        limit = f"at most {max_head_bytes} bytes" if max_head_bytes else "a bounded size"
        extra = {"field": "headers", "allowed": f"a request line and headers of {limit} together",
                 "example": 'large inputs go in a POST body: POST /api/v1/memories/recall '
                            'with {"query": "mitochondria", "max_results": 5}'}
    message = f"{summary} (HTTP parser: {_echo(detail)})" if detail else summary
    return ApiError(status, message, code=_CODES.get(status), **extra)


async def _send_error_response(self: H11Protocol, status_code: int) -> None:
    """hypercorn's error answer (same status, ``Connection: close``) with the envelope as its body."""
    error = sys.exc_info()[1]  # hypercorn calls this while handling h11's RemoteProtocolError
    if not isinstance(error, h11.RemoteProtocolError):
        error = None
    host = "Host: 127.0.0.1:8080"
    if self.server:
        name = f"[{self.server[0]}]" if ":" in self.server[0] else self.server[0]  # IPv6 in brackets
        host = f"Host: {name}:{self.server[1]}"
    body = error_bytes(describe(status_code, error, max_head_bytes=self.config.h11_max_incomplete_size,
                                host_example=host))
    await self._send_h11_event(
        h11.Response(
            status_code=status_code,
            headers=list(chain(
                [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                 (b"connection", b"close")],
                self.config.response_headers("h11"),
            )),
        )
    )
    await self._send_h11_event(h11.Data(data=body))
    await self._send_h11_event(h11.EndOfMessage())


def _hypercorn_calls_it_as_expected() -> bool:
    try:
        if not importlib.metadata.version("hypercorn").startswith("0.18."):
            return False
        source = inspect.getsource(H11Protocol._handle_events)
    except (importlib.metadata.PackageNotFoundError, OSError, TypeError):
        return False
    # The call must sit in the handler of h11's RemoteProtocolError, where sys.exc_info() is that error.
    handler = source.find("except h11.RemoteProtocolError as error:")
    return handler >= 0 and source.find(_CALL, handler) > handler and source.count(_CALL) == 1


def install() -> bool:
    """Make hypercorn answer h11's refusals with the error envelope; return whether it did (idempotent)."""
    current: Any = H11Protocol.__dict__.get("_send_error_response")
    if current is _send_error_response:
        return True
    if current is not _original_send_error_response or not _hypercorn_calls_it_as_expected():
        log.warning("hypercorn is not the version engram.api.h11_errors patches (0.18); "
                    "protocol errors keep hypercorn's empty answers")
        return False
    H11Protocol._send_error_response = _send_error_response  # type: ignore[method-assign]
    return True
