"""engram.api.h11_validation answers exactly as h11's regular expressions do.

Each replacement is compared with ``re.compile`` of the same pattern text on
generated lines (any bytes, near-miss lines built from valid parts, long recall
targets) and on hand-picked edge cases; then a real h11 connection with the
replacements installed parses the same requests and refuses the same bad ones.
"""

from __future__ import annotations

import re

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engram.api import h11_validation as hv

LINE_RE = re.compile(hv.REQUEST_LINE_PATTERN)
TARGET_RE = re.compile(hv.REQUEST_TARGET_PATTERN)


def _same(fast, regex, data: bytes) -> None:
    expected = regex.fullmatch(data)
    got = fast.fullmatch(data)
    if expected is None:
        assert got is None, data
    else:
        assert got is not None, data
        assert got.groupdict() == expected.groupdict(), data


# Bytes around every class boundary: controls, space, DEL, high bytes, separators.
EDGE = [b"", b" ", b"\t", b"\x00", b"\x20", b"\x21", b"\x7e", b"\x7f", b"\x80", b"\xff", b"/", b":", b"\r", b"\n",
        b"GET", b"get", b"M-SEARCH", b"G\xc3T", b"HTTP/1.1", b"HTTP/1.", b"HTTP/11", b"HTTP/1.10", b"http/1.1",
        b"HTTP/a.1", b"HTTP/1.b", b"HTTP/1,1"]
parts = st.one_of(st.sampled_from(EDGE), st.binary(max_size=12),
                  st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7e), min_size=1, max_size=30).map(str.encode))


@settings(max_examples=600, deadline=None)
@given(st.lists(parts, min_size=1, max_size=5), st.sampled_from([b" ", b"  ", b"\t", b""]))
def test_request_line_matches_the_regex(pieces, separator) -> None:
    line = separator.join(pieces)
    _same(hv.RequestLine(), LINE_RE, line)
    _same(hv.RequestLine(), LINE_RE, bytearray(line))  # h11 hands over bytearray lines


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_as_line_or_target(data) -> None:
    _same(hv.RequestLine(), LINE_RE, data)
    _same(hv.RequestTarget(), TARGET_RE, data)
    _same(hv.RequestLine(), LINE_RE, b"GET " + data + b" HTTP/1.1")


@pytest.mark.parametrize("line", [
    b"GET / HTTP/1.1", b"GET /api/v1/memories/recall?embedding=%5B0.1%2C-0.2%5D&k=3 HTTP/1.0",
    b"OPTIONS * HTTP/1.1", b"GET  / HTTP/1.1", b"GET / HTTP/1.1 ", b" GET / HTTP/1.1", b"GET /\x7f HTTP/1.1",
    b"GET /\x80 HTTP/1.1", b"GET / HTTP/1.1\r", b"G(T / HTTP/1.1", b"GET / HTTP/9.9", b"GET /a b HTTP/1.1",
    b"GET " + b"%2C0.123456789" * 1500 + b" HTTP/1.1",
])
def test_edge_lines(line) -> None:
    _same(hv.RequestLine(), LINE_RE, line)
    _same(hv.RequestTarget(), TARGET_RE, line.split(b" ")[1] if line.count(b" ") >= 1 else line)


def _parse(raw: bytes):
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(raw)
    try:
        return conn.next_event()
    except h11.RemoteProtocolError as exc:
        return ("refused", str(exc))


def test_h11_parses_the_same_with_the_replacements(monkeypatch) -> None:
    from h11 import _events, _readers

    requests = [
        b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /api/v1/memories/recall?embedding=" + b"%2C0.5" * 3000 + b" HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /bad\x7ftarget HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET  /two-spaces HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.x\r\nHost: a\r\n\r\n",
    ]
    before = [_parse(r) for r in requests]
    monkeypatch.setattr(_readers, "request_line_re", _readers.request_line_re)
    monkeypatch.setattr(_events, "request_target_re", _events.request_target_re)
    assert hv.install() is True
    assert isinstance(_readers.request_line_re, hv.RequestLine)
    assert hv.install() is True  # idempotent
    after = [_parse(r) for r in requests]
    assert [type(x) for x in after] == [type(x) for x in before]
    for b, a in zip(before, after):
        if isinstance(b, h11.Request):
            assert (a.method, a.target, a.http_version, a.headers) == (b.method, b.target, b.http_version, b.headers)
    assert isinstance(after[0], h11.Request) and isinstance(after[2], tuple) and isinstance(after[3], tuple)


def test_install_leaves_an_unknown_h11_alone(monkeypatch) -> None:
    from h11 import _readers

    monkeypatch.setattr(_readers, "request_line_re", re.compile(rb"(?P<method>\S+) (?P<target>\S+) HTTP/(?P<http_version>.+)"))
    assert hv.install() is False
    assert isinstance(_readers.request_line_re, re.Pattern)
