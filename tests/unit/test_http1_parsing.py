"""HTTP/1 request parsing, bytes in and calls out, on both parser backends.

Framing rules (Host, Content-Length, Transfer-Encoding, Expect) are in
test_head_rules.py; this file covers the request stream itself, the size
limits and malformed syntax.
"""

from __future__ import annotations

from typing import Any

import pytest

from squall.protocols.http1.backend_h11 import H11HTTP1
from squall.protocols.http1.base import HTTP1
from squall.protocols.http1.head import Limits, ParseError

from ._h1 import BACKENDS, Recorder, feed, parse_error

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(params=BACKENDS, ids=lambda cls: cls.backend)
def backend(request: pytest.FixtureRequest) -> type[HTTP1]:
    return request.param  # type: ignore[no-any-return]


SMALL = Limits(request_line=100, fields=5, field_size=200, header_size=1000)

# -- well-formed requests ------------------------------------------------------


def test_simple_get(backend: type[HTTP1]) -> None:
    rec = feed(backend, b"GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n")
    assert rec.calls == [
        ("request", "GET", b"/path?q=1", "1.1", [(b"host", b"example.com")]),
        ("end",),
    ]
    head = rec.heads[0]
    assert head.keep_alive is True
    assert head.chunked is False
    assert head.content_length == 0
    assert head.expect_continue is False
    assert head.upgrade is None
    assert head.forwarded is False


def test_backend_names() -> None:
    assert [cls.backend for cls in BACKENDS] == ["httptools", "h11"]


def test_headers_lowercased_in_wire_order_with_duplicates(backend: type[HTTP1]) -> None:
    data = (
        b"GET / HTTP/1.1\r\n"
        b"X-Second: 2\r\n"
        b"Host: a\r\n"
        b"Accept: text/html\r\n"
        b"x-second: 3\r\n"
        b"SET-COOKIE: a=1\r\n"
        b"Set-Cookie: b=2\r\n"
        b"\r\n"
    )
    rec = feed(backend, data)
    assert rec.heads[0].headers == [
        (b"x-second", b"2"),
        (b"host", b"a"),
        (b"accept", b"text/html"),
        (b"x-second", b"3"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
    ]


def test_header_value_case_and_inner_space_kept(backend: type[HTTP1]) -> None:
    rec = feed(backend, b"GET / HTTP/1.1\r\nHost: a\r\nX-Mixed: Hello  World\r\n\r\n")
    assert rec.heads[0].headers[1] == (b"x-mixed", b"Hello  World")


def test_obs_text_in_header_value_kept(backend: type[HTTP1]) -> None:
    rec = feed(backend, b"GET / HTTP/1.1\r\nHost: a\r\nX-Latin: caf\xe9\r\n\r\n")
    assert rec.heads[0].headers[1] == (b"x-latin", b"caf\xe9")


def test_header_value_surrounding_whitespace_stripped(backend: type[HTTP1]) -> None:
    rec = feed(backend, b"GET / HTTP/1.1\r\nHost: a\r\nX-A:   one  \r\nX-B:\ttwo\t\r\n\r\n")
    assert rec.heads[0].headers[1:] == [(b"x-a", b"one"), (b"x-b", b"two")]


@pytest.mark.parametrize(
    ("version", "connection", "keep_alive"),
    [
        (b"1.0", None, False),
        (b"1.0", b"keep-alive", True),
        (b"1.0", b"Keep-Alive", True),
        (b"1.0", b"close", False),
        (b"1.1", None, True),
        (b"1.1", b"keep-alive", True),
        (b"1.1", b"close", False),
        (b"1.1", b"Close", False),
        (b"1.1", b"keep-alive, close", False),
        (b"1.1", b"te, close", False),
    ],
)
def test_keep_alive_rules(
    backend: type[HTTP1], version: bytes, connection: bytes | None, keep_alive: bool
) -> None:
    data = b"GET / HTTP/" + version + b"\r\nHost: a\r\n"
    if connection is not None:
        data += b"Connection: " + connection + b"\r\n"
    rec = feed(backend, data + b"\r\n")
    head = rec.heads[0]
    assert head.http_version == version.decode()
    assert head.keep_alive is keep_alive


def test_http10_without_host_is_fine(backend: type[HTTP1]) -> None:
    rec = feed(backend, b"GET / HTTP/1.0\r\n\r\n")
    assert rec.calls == [("request", "GET", b"/", "1.0", []), ("end",)]


@pytest.mark.parametrize("step", [None, 1, 2, 7])
def test_content_length_body(backend: type[HTTP1], step: int | None) -> None:
    data = b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world"
    rec = feed(backend, data, step=step)
    assert rec.merged() == [
        ("request", "POST", b"/upload", "1.1", [(b"host", b"a"), (b"content-length", b"11")]),
        ("body", b"hello world"),
        ("end",),
    ]
    assert rec.heads[0].content_length == 11
    assert rec.heads[0].chunked is False


def test_content_length_body_byte_by_byte_arrives_incrementally(backend: type[HTTP1]) -> None:
    rec = Recorder()
    proto = backend(rec)
    proto.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n")
    assert [c[0] for c in rec.calls] == ["request"]
    for byte in b"abc":
        proto.feed(bytes([byte]))
    assert ("end",) not in rec.calls
    assert b"".join(c[1] for c in rec.calls if c[0] == "body") == b"abc"
    proto.feed(b"d")
    assert rec.merged()[1:] == [("body", b"abcd"), ("end",)]


def test_incomplete_body_does_not_end(backend: type[HTTP1]) -> None:
    rec = feed(backend, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhalf")
    assert rec.merged()[1:] == [("body", b"half")]


CHUNKED = (
    b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n"
    b"1;ext=1\r\n \r\n"
    b"A\r\n0123456789\r\n"
    b"0\r\n\r\n"
)


@pytest.mark.parametrize("step", [None, 1, 3, 16])
def test_chunked_body_across_feeds(backend: type[HTTP1], step: int | None) -> None:
    rec = feed(backend, CHUNKED, step=step)
    assert rec.merged() == [
        ("request", "POST", b"/c", "1.1", [(b"host", b"a"), (b"transfer-encoding", b"chunked")]),
        ("body", b"hello 0123456789"),
        ("end",),
    ]
    assert rec.heads[0].chunked is True
    assert rec.heads[0].content_length == 0


def test_chunked_not_ended_before_last_chunk(backend: type[HTTP1]) -> None:
    rec = feed(backend, CHUNKED[: CHUNKED.index(b"0\r\n\r\n")])
    assert ("end",) not in rec.calls
    assert rec.merged()[1] == ("body", b"hello 0123456789")


def test_trailers_do_not_change_delivered_headers(backend: type[HTTP1]) -> None:
    data = (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nhi\r\n0\r\nX-Trailer: 1\r\n\r\n"
    )
    rec = feed(backend, data)
    assert rec.merged()[1:] == [("body", b"hi"), ("end",)]
    assert rec.heads[0].headers == [(b"host", b"a"), (b"transfer-encoding", b"chunked")]


PIPELINE = (
    b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n"
    b"POST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
    b"PUT /three HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"4\r\nwxyz\r\n0\r\n\r\n"
    b"DELETE /four?x HTTP/1.1\r\nHost: b\r\n\r\n"
)
PIPELINE_CALLS = [
    ("request", "GET", b"/one", "1.1", [(b"host", b"a")]),
    ("end",),
    ("request", "POST", b"/two", "1.1", [(b"host", b"a"), (b"content-length", b"3")]),
    ("body", b"abc"),
    ("end",),
    ("request", "PUT", b"/three", "1.1", [(b"host", b"a"), (b"transfer-encoding", b"chunked")]),
    ("body", b"wxyz"),
    ("end",),
    ("request", "DELETE", b"/four?x", "1.1", [(b"host", b"b")]),
    ("end",),
]


def test_pipelined_requests_in_one_feed(backend: type[HTTP1]) -> None:
    rec = feed(backend, PIPELINE)
    assert rec.merged() == PIPELINE_CALLS
    assert [h.target for h in rec.heads] == [b"/one", b"/two", b"/three", b"/four?x"]
    # each request gets its own head object
    assert len({id(h) for h in rec.heads}) == 4


def test_pipelined_requests_byte_by_byte(backend: type[HTTP1]) -> None:
    assert feed(backend, PIPELINE, step=1).merged() == PIPELINE_CALLS


@pytest.mark.parametrize("count", [1000, 5000])
def test_many_pipelined_requests_in_one_feed(backend: type[HTTP1], count: int) -> None:
    """One read can hold thousands of small pipelined requests (64 KiB / 27 bytes)."""
    rec = feed_all(backend, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n" * count)
    assert len(rec.heads) == count
    assert rec.calls.count(("end",)) == count


def feed_all(backend: type[HTTP1], data: bytes) -> Recorder:
    """Feed once; an exception becomes a short assertion (deep tracebacks are slow)."""
    rec = Recorder()
    proto = backend(rec)
    error = ""
    try:
        proto.feed(data)
    except Exception as exc:
        error = f"{type(exc).__name__}: {str(exc)[:80]}"
    assert not error, f"{error} after {len(rec.heads)} requests"
    return rec


def test_many_pipelined_kept_upgrade_requests_in_one_feed(backend: type[HTTP1]) -> None:
    """Upgrade requests the owner answers as HTTP/1.1 (h2c) do not nest parsing."""
    one = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
    rec = feed_all(backend, one * 2000)
    assert len(rec.heads) == 2000


def _head_of(size: int) -> bytes:
    fields = b"".join(b"X-%05d: %s\r\n" % (i, b"v" * 80) for i in range(size // 90))
    return b"GET / HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\n"


def test_slow_head_is_checked_in_linear_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """A head sent one byte per packet must not be re-checked whole each time (slowloris).

    Counts the bytes the h11 backend's head check scans, so nothing here is timed.
    """
    from squall.protocols.http1 import backend_h11 as h1_h11

    real = h1_h11._BAD_HEAD
    scanned: list[int] = []

    class Counting:
        def search(self, buf: Any, pos: int = 0, endpos: int | None = None) -> Any:
            scanned.append((len(buf) if endpos is None else endpos) - pos)
            return real.search(buf, pos, len(buf) if endpos is None else endpos)

    monkeypatch.setattr(h1_h11, "_BAD_HEAD", Counting())
    head = _head_of(4800)
    rec = Recorder()
    proto = H11HTTP1(rec)
    for i in range(len(head)):
        proto.feed(head[i : i + 1])
    assert len(rec.heads) == 1
    assert sum(scanned) <= 5 * len(head)


def test_request_split_at_every_offset(backend: type[HTTP1]) -> None:
    for offset in range(len(PIPELINE) + 1):
        rec = Recorder()
        proto = backend(rec)
        for piece in (PIPELINE[:offset], PIPELINE[offset:]):
            if piece:  # feed(b"") is covered by test_empty_feed_is_harmless
                proto.feed(piece)
        assert rec.merged() == PIPELINE_CALLS, f"split at offset {offset}"


def test_request_split_in_three_at_many_offsets(backend: type[HTTP1]) -> None:
    data = PIPELINE[:120]
    whole = feed(backend, data).merged()
    for a in range(0, len(data), 5):
        for b in range(a, len(data), 9):
            rec = Recorder()
            proto = backend(rec)
            for piece in (data[:a], data[a:b], data[b:]):
                if piece:
                    proto.feed(piece)
            assert rec.merged() == whole, f"split at {a}, {b}"


def test_empty_feed_is_harmless(backend: type[HTTP1]) -> None:
    rec = Recorder()
    proto = backend(rec)
    proto.feed(b"")
    proto.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    proto.feed(b"")
    assert [c[0] for c in rec.calls] == ["request", "end"]


def test_absolute_form_and_asterisk_targets_are_passed_through(backend: type[HTTP1]) -> None:
    rec = feed(
        backend,
        b"GET http://a/b?c HTTP/1.1\r\nHost: a\r\n\r\nOPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    assert [h.target for h in rec.heads] == [b"http://a/b?c", b"*"]
    assert [h.method for h in rec.heads] == ["GET", "OPTIONS"]


def test_bytes_after_connection_close_request_are_ignored(backend: type[HTTP1]) -> None:
    data = (
        b"GET /1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    rec = feed(backend, data)
    assert rec.calls == [
        ("request", "GET", b"/1", "1.1", [(b"host", b"a"), (b"connection", b"close")]),
        ("end",),
    ]


def test_leading_empty_line_ignored(backend: type[HTTP1]) -> None:
    rec = feed(backend, b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert [c[0] for c in rec.calls] == ["request", "end"]


@pytest.mark.parametrize("method", [b"FOO", b"get", b"Get", b"PURGE-X"])
def test_unknown_method_token_is_501(backend: type[HTTP1], method: bytes) -> None:
    """Methods are case-sensitive tokens; ones the server does not know get 501."""
    assert parse_error(backend, method + b" / HTTP/1.1\r\nHost: a\r\n\r\n").status == 501


@pytest.mark.parametrize(
    "method", [b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"TRACE"]
)
def test_common_methods_accepted(backend: type[HTTP1], method: bytes) -> None:
    rec = feed(backend, method + b" / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert rec.heads[0].method == method.decode()


def test_feed_after_parse_error_is_ignored(backend: type[HTTP1]) -> None:
    rec = Recorder()
    proto = backend(rec)
    with pytest.raises(ParseError):
        proto.feed(b"GARBAGE\r\n\r\n")
    proto.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert rec.calls == []


def test_feed_eof_with_partial_request_makes_no_calls(backend: type[HTTP1]) -> None:
    rec = Recorder()
    proto = backend(rec)
    proto.feed(b"GET / HTTP/1.1\r\nHo")
    proto.feed_eof()
    assert rec.calls == []


# -- x-forwarded-* ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "forwarded"),
    [
        (b"X-Forwarded-For: 1.2.3.4", True),
        (b"X-Forwarded-Proto: https", True),
        (b"x-forwarded-for: 1.2.3.4, 5.6.7.8", True),
        (b"Forwarded: for=1.2.3.4", True),
        (b"X-Forwarded-Prefix: /api", True),
        (b"X-Real-IP: 1.2.3.4", False),
    ],
)
def test_forwarded_flag(backend: type[HTTP1], header: bytes, forwarded: bool) -> None:
    rec = feed(backend, b"GET / HTTP/1.1\r\nHost: a\r\n" + header + b"\r\n\r\n")
    assert rec.heads[0].forwarded is forwarded


def test_forwarded_flag_reset_between_pipelined_requests(backend: type[HTTP1]) -> None:
    rec = feed(
        backend,
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n"
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    assert [h.forwarded for h in rec.heads] == [True, False]


# -- malformed syntax -> 400 -------------------------------------------------------------

BAD_SYNTAX = {
    "garbage-line": b"GARBAGE\r\n\r\n",
    "missing-version": b"GET /\r\nHost: a\r\n\r\n",
    "extra-token": b"GET / HTTP/1.1 extra\r\nHost: a\r\n\r\n",
    "space-in-target": b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
    "ctl-in-target": b"GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n",
    "utf8-in-target": "GET /é HTTP/1.1\r\nHost: a\r\n\r\n".encode(),
    "bad-version": b"GET / HTTP/x.y\r\nHost: a\r\n\r\n",
    "http-1.2": b"GET / HTTP/1.2\r\nHost: a\r\n\r\n",
    "http-0.9": b"GET / HTTP/0.9\r\n\r\n",
    "nul-in-value": b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",
    "cr-in-value": b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
    "space-before-colon": b"GET / HTTP/1.1\r\nHost: a\r\nX : a\r\n\r\n",
    "empty-name": b"GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n",
    "bad-name-char": b"GET / HTTP/1.1\r\nHost: a\r\nX(y): x\r\n\r\n",
    "no-colon": b"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n",
}


@pytest.mark.parametrize("data", BAD_SYNTAX.values(), ids=BAD_SYNTAX.keys())
def test_malformed_request_is_400(backend: type[HTTP1], data: bytes) -> None:
    err = parse_error(backend, data)
    assert err.status == 400
    assert err.reason
    assert "\n" not in err.reason and "\r" not in err.reason


@pytest.mark.parametrize("data", BAD_SYNTAX.values(), ids=BAD_SYNTAX.keys())
def test_malformed_request_is_400_byte_by_byte(backend: type[HTTP1], data: bytes) -> None:
    assert parse_error(backend, data, step=1).status == 400


def test_http2_version_is_505(backend: type[HTTP1]) -> None:
    assert parse_error(backend, b"GET / HTTP/2.0\r\nHost: a\r\n\r\n").status == 505


def test_del_in_header_value_is_400(backend: type[HTTP1]) -> None:
    assert parse_error(backend, b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n").status == 400


BARE_LF = {
    "request-line": b"GET / HTTP/1.1\nHost: a\r\n\r\n",
    "header-line": b"GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n",
    "everywhere": b"GET / HTTP/1.1\nHost: a\n\n",
}


@pytest.mark.parametrize("data", BARE_LF.values(), ids=BARE_LF.keys())
def test_bare_lf_in_head_is_400(backend: type[HTTP1], data: bytes) -> None:
    assert parse_error(backend, data).status == 400


@pytest.mark.parametrize("fold", [b" ", b"\t"], ids=["space", "tab"])
def test_obs_fold_is_400(backend: type[HTTP1], fold: bytes) -> None:
    data = b"GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n" + fold + b"two\r\n\r\n"
    assert parse_error(backend, data).status == 400


@pytest.mark.parametrize(
    "size",
    [b"zz", b"-5", b"0x5", b"5 5", b""],
    ids=["letters", "negative", "0x", "space", "empty"],
)
def test_invalid_chunk_size_is_400(backend: type[HTTP1], size: bytes) -> None:
    data = (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        + size
        + b"\r\nhello\r\n0\r\n\r\n"
    )
    err = parse_error(backend, data)
    assert err.status == 400


def test_chunk_data_without_crlf_is_400(backend: type[HTTP1]) -> None:
    data = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n"
    assert parse_error(backend, data).status == 400


def test_request_before_the_bad_one_is_delivered(backend: type[HTTP1]) -> None:
    rec = Recorder()
    proto = backend(rec)
    with pytest.raises(ParseError) as info:
        proto.feed(b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\nGET /bad HTTP/1.1\r\n\r\n")
    assert info.value.status == 400
    assert rec.calls == [("request", "GET", b"/ok", "1.1", [(b"host", b"a")]), ("end",)]


# -- size limits -------------------------------------------------------------------------


def _line(url_len: int) -> bytes:
    """A request line of ``GET <url> HTTP/1.1`` with a URL of ``url_len`` bytes."""
    return b"GET /" + b"a" * (url_len - 1) + b" HTTP/1.1"


@pytest.mark.parametrize("step", [None, 1, 7, 50])
def test_long_target_is_414(backend: type[HTTP1], step: int | None) -> None:
    data = _line(101) + b"\r\nHost: a\r\n\r\n"
    err = parse_error(backend, data, SMALL, step)
    assert err.status == 414


def test_long_target_without_line_end_is_414_early(backend: type[HTTP1]) -> None:
    """A request line that never ends is refused once it passes the limit."""
    rec = Recorder()
    proto = backend(rec, SMALL)
    sent = 0
    with pytest.raises(ParseError) as info:
        for _ in range(1000):
            proto.feed(b"GET /" if sent == 0 else b"aaaa")
            sent += 4
    assert info.value.status == 414
    assert sent <= 2 * SMALL.request_line


def test_default_limit_request_line_is_414(backend: type[HTTP1]) -> None:
    err = parse_error(backend, _line(9000) + b"\r\nHost: a\r\n\r\n")
    assert err.status == 414


def test_request_line_at_limit_accepted(backend: type[HTTP1]) -> None:
    line = b"GET /" + b"a" * (SMALL.request_line - 14) + b" HTTP/1.1"
    assert len(line) == SMALL.request_line
    rec = feed(backend, line + b"\r\nHost: a\r\n\r\n", SMALL)
    assert [c[0] for c in rec.calls] == ["request", "end"]


@pytest.mark.parametrize("method", [b"GET", b"DELETE"])
def test_request_line_one_over_limit_is_414(backend: type[HTTP1], method: bytes) -> None:
    line = method + b" /" + b"a" * (SMALL.request_line - len(method) - 10) + b" HTTP/1.1"
    assert len(line) == SMALL.request_line + 1
    err = parse_error(backend, line + b"\r\nHost: a\r\n\r\n", SMALL)
    assert err.status == 414


def test_request_line_over_limit_with_short_target_is_414(backend: type[HTTP1]) -> None:
    line = b"GET /" + b"a" * (SMALL.request_line - 10) + b" HTTP/1.1"
    assert len(line) > SMALL.request_line + 2
    assert len(line) - len(b"GET  HTTP/1.1") < SMALL.request_line
    err = parse_error(backend, line + b"\r\nHost: a\r\n\r\n", SMALL)
    assert err.status == 414


def _fields(n: int, value: bytes = b"v") -> bytes:
    return b"".join(b"X-F%03d: %s\r\n" % (i, value) for i in range(n))


def test_fields_at_limit_accepted(backend: type[HTTP1]) -> None:
    # Host plus four more: five fields, the limit
    rec = feed(backend, b"GET / HTTP/1.1\r\nHost: a\r\n" + _fields(4) + b"\r\n", SMALL)
    assert len(rec.heads[0].headers) == SMALL.fields


@pytest.mark.parametrize("step", [None, 1, 9])
def test_too_many_fields_is_431(backend: type[HTTP1], step: int | None) -> None:
    data = b"GET / HTTP/1.1\r\nHost: a\r\n" + _fields(5) + b"\r\n"
    assert parse_error(backend, data, SMALL, step).status == 431


def test_default_field_count_limit_is_431(backend: type[HTTP1]) -> None:
    data = b"GET / HTTP/1.1\r\nHost: a\r\n" + _fields(100) + b"\r\n"
    assert parse_error(backend, data).status == 431


@pytest.mark.parametrize("step", [None, 1, 10])
def test_field_larger_than_field_size_is_431(backend: type[HTTP1], step: int | None) -> None:
    data = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"v" * 300 + b"\r\n\r\n"
    assert parse_error(backend, data, SMALL, step).status == 431


def test_field_at_field_size_accepted(backend: type[HTTP1]) -> None:
    # name "x-big" (5) + value (195) == field_size 200
    data = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"v" * 195 + b"\r\n\r\n"
    rec = feed(backend, data, SMALL)
    assert rec.heads[0].headers[1] == (b"x-big", b"v" * 195)


MANY_FIELDS = Limits(request_line=100, fields=1000, field_size=200, header_size=1000)


@pytest.mark.parametrize("step", [None, 1, 3, 64])
def test_header_section_too_large_is_431(backend: type[HTTP1], step: int | None) -> None:
    data = b"GET / HTTP/1.1\r\nHost: a\r\n" + _fields(40, b"v" * 50) + b"\r\n"
    assert parse_error(backend, data, MANY_FIELDS, step).status == 431


@pytest.mark.parametrize("step", [1, 10, 100])
def test_endless_header_section_refused_early(backend: type[HTTP1], step: int) -> None:
    """Fed slowly without ever ending, the head is refused soon after the limit."""
    rec = Recorder()
    proto = backend(rec, MANY_FIELDS)
    proto.feed(b"GET / HTTP/1.1\r\nHost: a\r\n")
    piece = (b"X: y\r\n" * 20)[:step] if step < 120 else b"X: y\r\n" * (step // 6)
    sent = 0
    with pytest.raises(ParseError) as info:
        while sent < 100_000:
            proto.feed(piece)
            sent += len(piece)
    assert info.value.status == 431
    limit = MANY_FIELDS.header_size + MANY_FIELDS.request_line
    assert sent <= limit + 2 * step + 10
    assert rec.calls == []


@pytest.mark.parametrize("step", [1, 50])
def test_endless_header_value_refused_early(backend: type[HTTP1], step: int) -> None:
    rec = Recorder()
    proto = backend(rec, MANY_FIELDS)
    proto.feed(b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: ")
    sent = 0
    with pytest.raises(ParseError) as info:
        while sent < 100_000:
            proto.feed(b"v" * step)
            sent += step
    assert info.value.status == 431
    assert sent <= MANY_FIELDS.header_size + MANY_FIELDS.request_line + step


def test_limits_do_not_count_across_pipelined_requests(backend: type[HTTP1]) -> None:
    one = b"GET / HTTP/1.1\r\nHost: a\r\n" + _fields(4) + b"\r\n"
    rec = feed(backend, one * 10, SMALL)
    assert [c[0] for c in rec.calls] == ["request", "end"] * 10


def test_body_does_not_count_against_header_limits(backend: type[HTTP1]) -> None:
    body = b"x" * 5000
    data = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n" + body
    for step in (None, 100):
        rec = feed(backend, data, SMALL, step)
        assert rec.merged()[1:] == [("body", body), ("end",)]


# -- chunked framing syntax (after the head) ------------------------------------------------

BAD_CHUNK_FRAMING = {
    "bare-lf-line-ends": b"5\nhello\n0\n\n",
    "bare-lf-in-trailer": b"5\r\nhello\r\n0\r\nX-T: 1\n\r\n",
    "ctl-in-extension": b"5;\x01\r\nhello\r\n0\r\n\r\n",
    "space-after-size": b"5 \r\nhello\r\n0\r\n\r\n",
    "size-overflow": b"fffffffffffffffffff\r\n",
}


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda cls: cls.backend)
@pytest.mark.parametrize("framing", BAD_CHUNK_FRAMING.values(), ids=BAD_CHUNK_FRAMING.keys())
def test_bad_chunk_framing_is_400(backend: type[HTTP1], framing: bytes) -> None:
    data = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + framing
    assert parse_error(backend, data).status == 400


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda cls: cls.backend)
def test_request_line_with_double_space(backend: type[HTTP1]) -> None:
    """RFC 9112 3 lets a server refuse it or split on whitespace; either way, no ambiguity."""
    data = b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n"
    rec = Recorder()
    try:
        backend(rec).feed(data)
    except ParseError as exc:
        assert exc.status == 400
    else:
        assert [h.target for h in rec.heads] == [b"/"]


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda cls: cls.backend)
def test_transfer_encoding_value_delivered(backend: type[HTTP1]) -> None:
    """httptools passes the value verbatim; h11 lowercases it (both mean chunked)."""
    data = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n"
    rec = feed(backend, data)
    name, value = rec.heads[0].headers[1]
    assert name == b"transfer-encoding"
    assert value in (b"Chunked", b"chunked")
    assert rec.heads[0].chunked


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda cls: cls.backend)
def test_response_between_requests_leaves_parsing_alone(backend: type[HTTP1]) -> None:
    """Request-side and response-side state of one protocol object never mix."""
    from squall.protocols.http1.base import default_block

    rec = Recorder()
    proto = backend(rec)
    proto.feed(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n")
    defaults = default_block(b"server: squall\r\n", b"", b"")
    out = proto.response_head(200, [(b"content-length", b"2")], defaults, rec.heads[0], None, True)
    assert out.endswith(b"content-length: 2\r\n\r\n")
    proto.feed(b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n")
    assert proto.response_body(b"ok", False) == b"ok"
    assert [h.target for h in rec.heads] == [b"/a", b"/b"]
