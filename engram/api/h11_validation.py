"""h11's request-line and request-target checks, with the same answers in a third of the time.

A recall by embedding is a GET whose query string holds 768 percent-encoded numbers:
a request line of 15-20 KB. h11 (0.14-0.16) checks that line with two regular
expressions, each a pass of Python's regex engine over every byte (about 22 us a
pass at 19 KB here): the request line ``method SP target SP HTTP/d.d`` and then the
target again, ``[\\x21-\\x7e]+``, when it builds the Request event. Together they
were about 90 us of the event loop per recall, a fifth of what a /health request
costs in all.

``install()`` replaces those two compiled patterns in h11's modules with objects
whose ``fullmatch`` gives the same result (None, or a match whose ``groupdict()``
has the same groups and bytes) from ``bytes.split`` and ``bytes.translate``. It
first checks that h11 still defines the patterns it replaces, with the exact
pattern text, and leaves h11 alone otherwise. The tests compare both objects with
the original regular expressions on generated and adversarial lines.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["RequestLine", "RequestTarget", "install", "REQUEST_LINE_PATTERN", "REQUEST_TARGET_PATTERN"]

# The patterns h11's _abnf builds (RFC 7230), as h11 0.14-0.16 compile them.
REQUEST_TARGET_PATTERN = rb"[\x21-\x7e]+"
REQUEST_LINE_PATTERN = rb"(?P<method>[-!#$%&'*+.^_`|~0-9a-zA-Z]+) (?P<target>[\x21-\x7e]+) HTTP/(?P<http_version>[0-9]\.[0-9])"

_VCHAR = bytes(range(0x21, 0x7F))
_TCHAR = b"-!#$%&'*+.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_DIGITS = b"0123456789"


def _only(data: bytes, allowed: bytes) -> bool:
    """Whether ``data`` is non-empty and made of ``allowed`` bytes only (C speed)."""
    return bool(data) and not data.translate(None, allowed)


class _Match:
    """What h11 uses of a match: ``groupdict()``."""

    __slots__ = ("_groups",)

    def __init__(self, groups: dict[str, bytes]) -> None:
        self._groups = groups

    def groupdict(self) -> dict[str, bytes]:
        return dict(self._groups)


class RequestTarget:
    """``re.compile(REQUEST_TARGET_PATTERN)``'s ``fullmatch``, without the regex engine."""

    pattern = REQUEST_TARGET_PATTERN

    def fullmatch(self, data: Any) -> _Match | None:
        data = bytes(data)
        return _Match({}) if _only(data, _VCHAR) else None


class RequestLine:
    """``re.compile(REQUEST_LINE_PATTERN)``'s ``fullmatch``, without the regex engine.

    No group can hold a space, so a matching line is exactly three space-separated
    parts: a method of token characters, a target of visible characters, and
    ``HTTP/`` digit ``.`` digit."""

    pattern = REQUEST_LINE_PATTERN

    def fullmatch(self, data: Any) -> _Match | None:
        parts = bytes(data).split(b" ")
        if len(parts) != 3:
            return None
        method, target, version = parts
        if not (_only(method, _TCHAR) and _only(target, _VCHAR)):
            return None
        if len(version) != 8 or not version.startswith(b"HTTP/") or version[6:7] != b"." \
                or not (_only(version[5:6], _DIGITS) and _only(version[7:8], _DIGITS)):
            return None
        return _Match({"method": method, "target": target, "http_version": version[5:]})


def install() -> bool:
    """Point h11 at the faster checks; return whether it did (idempotent).

    Only when h11's modules still hold the two compiled patterns, with exactly the
    text above: any other h11 keeps its own checks."""
    try:
        from h11 import _events, _readers
    except ImportError:  # pragma: no cover - hypercorn always brings h11
        return False
    if isinstance(_readers.request_line_re, RequestLine) and isinstance(_events.request_target_re, RequestTarget):
        return True
    line = getattr(_readers, "request_line_re", None)
    target = getattr(_events, "request_target_re", None)
    if not (isinstance(line, re.Pattern) and line.pattern == REQUEST_LINE_PATTERN
            and isinstance(target, re.Pattern) and target.pattern == REQUEST_TARGET_PATTERN):
        return False
    _readers.request_line_re = RequestLine()  # type: ignore[assignment]
    _events.request_target_re = RequestTarget()  # type: ignore[assignment]
    return True
