"""Bugs the fuzzers found, reproduced and fixed: each test keeps its fix in place.

A new finding is added here as a strict xfail until src/ is fixed.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import hpack
import pytest

from squall.asgi.scope import ConnInfo, http_scope
from squall.protocols.http1.backend_h11 import H11HTTP1
from squall.protocols.http1.backend_httptools import HttptoolsHTTP1
from squall.protocols.http1.base import HTTP1
from squall.protocols.http1.head import _HOST_VALUE, ParseError
from tests.fuzz._harness import conn, corpus
from tests.unit._h1 import Recorder

GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def status(backend: type[HTTP1], chunks: list[bytes]) -> int | None:
    proto = backend(Recorder())
    try:
        for chunk in chunks:
            proto.feed(chunk)
    except ParseError as exc:
        return exc.status
    return None


# The status for a method llhttp does not know is chosen on the whole request
# line, wherever the reads split it and whatever came before it.
UNKNOWN_METHOD = {
    # the request line split across two reads: the tail alone does not match
    "split-read": ([b"BR", b"EW / HTTP/1.1\r\nHost: x\r\n\r\n"], 501),
    # a CR that llhttp skips before the request line: the regex does not
    "leading-cr": ([b"\r*GET / HTTP/1.1\r\nHost: x\r\n\r\n"], 501),
    # garbage pipelined after a valid request: the regex matches the first request
    "pipelined-garbage": ([GET + b"\x01\x02garbage\r\n\r\n"], 400),
}


@pytest.mark.parametrize(("chunks", "expected"), UNKNOWN_METHOD.values(), ids=UNKNOWN_METHOD.keys())
def test_httptools_status_for_a_bad_method_does_not_depend_on_the_read(
    chunks: list[bytes], expected: int
) -> None:
    assert status(H11HTTP1, chunks) == expected  # h11 answers the same for any split
    assert status(H11HTTP1, [b"".join(chunks)]) == expected
    assert status(HttptoolsHTTP1, [b"".join(chunks)]) == expected
    assert status(HttptoolsHTTP1, chunks) == expected


@pytest.mark.parametrize(
    "line",
    [
        b"GET x",
        b"GET x/y",
        b"GET ?q",
        b"GET :http://a/",
        b"CONNECT example.org:44#",
        b"CONNECT a|b:443",
        b'GET http://"example.org/',
        b"GET http://ex<a>mple.org/",
    ],
)
def test_h11_refuses_a_target_in_none_of_the_four_forms(line: bytes) -> None:
    data = line + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    assert status(HttptoolsHTTP1, [data]) == 400
    assert status(H11HTTP1, [data]) == 400


@pytest.mark.parametrize("ext", [b';a=1"b"', b';ext=1"q=;x y"'])
def test_httptools_refuses_a_malformed_chunk_extension(ext: bytes) -> None:
    data = (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5"
        + ext
        + b"\r\nhello\r\n0\r\n\r\n"
    )
    assert status(H11HTTP1, [data]) == 400
    assert status(HttptoolsHTTP1, [data]) == 400


def test_connection_trailer_same_on_both_backends() -> None:
    data = (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\nConnection: close\r\n\r\n"
        b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    outcomes = []
    for backend in (HttptoolsHTTP1, H11HTTP1):
        rec = Recorder()
        try:
            backend(rec).feed(data)
        except ParseError as exc:
            outcomes.append((rec.merged(), exc.status))
        else:
            outcomes.append((rec.merged(), None))
    assert outcomes[0] == outcomes[1]


# The ASGI scope of an absolute-form request (src/squall/asgi/scope.py), reached
# with targets from the fuzzers that both parsers accept.


def scope_host(target: bytes) -> bytes:
    """The host header the app sees for ``GET target`` with ``Host: good``."""
    rec = Recorder()
    HttptoolsHTTP1(rec).feed(b"GET " + target + b" HTTP/1.1\r\nHost: good\r\n\r\n")
    scope = http_scope(rec.heads[0], ConnInfo(None, None, "http", False), "", {})
    return dict(scope["headers"])[b"host"]


@pytest.mark.parametrize("target", [b"http://[zz]/", b"http://[::1/", b"http://a[b]/"])
def test_bad_ip_literal_in_absolute_form_is_a_parse_error(target: bytes) -> None:
    with pytest.raises(ParseError) as info:
        scope_host(target)
    assert info.value.status == 400


@pytest.mark.parametrize("target", [b"http://a:b:c/", b"http://a:80:80/"])
def test_absolute_form_authority_obeys_the_host_rules(target: bytes) -> None:
    try:
        host = scope_host(target)
    except ParseError as exc:
        assert exc.status == 400
    else:
        assert _HOST_VALUE(host) is not None, host


# -- the whole connection (fuzz/conn_harness.py, tests/fuzz/test_connection.py) -----
#
# Each case is the exact input of a finding. FIXED: the connection now serves it with
# no problem at all. OPEN: listed in conn_harness.OPEN (the fuzzers step over it); the
# test fails with StillOpen while the finding shows, and only it. Once src/ is fixed the
# strict xfail turns into a failure: move the case to FIXED and drop it from OPEN.

PREFACE: bytes = conn.PREFACE
frame: Callable[[int, int, int, bytes], bytes] = corpus.frame
masked: Callable[..., bytes] = corpus.masked


def _get(
    encoder: hpack.Encoder,
    method: bytes = b"GET",
    path: bytes = b"/",
    *extra: tuple[bytes, bytes],
) -> bytes:
    fields = [(b":method", method), (b":scheme", b"https"), (b":path", path)]
    return encoder.encode([*fields, (b":authority", b"a"), *extra])


CL_3 = (b"content-length", b"3")
SELF_DEPENDENT = struct.pack(">LB", 1, 16)  # the PRIORITY part of a HEADERS frame on stream 1
_ENCODER_2 = hpack.Encoder()


_ENCODER = hpack.Encoder()
GOAWAY_CHUNKS = [
    PREFACE + frame(4, 0, 0, b""),
    frame(1, 0x5, 1, _get(_ENCODER)),
    frame(1, 0x5, 3, _get(_ENCODER)),
    # the 3rd request of max_requests_per_connection=3 sends GOAWAY(5); stream 7 is
    # ignored, then DATA on stream 0 is a connection error
    frame(1, 0x5, 5, _get(_ENCODER)) + frame(1, 0x5, 7, _get(_ENCODER)) + frame(0, 0, 0, b"x"),
]
CONNECT_WS = frame(
    1,
    0x4,
    1,
    hpack.Encoder().encode(
        [
            (b":method", b"CONNECT"),
            (b":protocol", b"websocket"),
            (b":scheme", b"https"),
            (b":path", b"/ws"),
            (b":authority", b"a"),
            (b"sec-websocket-version", b"13"),
        ]
    ),
)
# the upgrade request's app starts at once; a WINDOW_UPDATE of 0 is a connection error
H2C_FAIL = (
    b"GET /fail HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
    b"Upgrade: h2c\r\nHTTP2-Settings: \r\n\r\n"
)
HEAD_FAIL = b"HEAD /fail0 HTTP/1.1\r\nHost: x\r\n\r\n"
HEAD_CHUNKED_OVER_LIMIT = (
    b"HEAD /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"190\r\n"
    + b"x" * 400
    + b"\r\n0\r\n\r\n"
)
HEAD_BODY_STALLS = b"HEAD /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab"
HEAD_BAD_CHUNK = b"HEAD /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"

# Fixed in f8f4e25 (found by this harness). What each showed:
# - head-*: the server's own error answer (400, 408, 413, 500) to HEAD carried a body;
# - split-preface*: an HTTP/2 preface whose first read held under 3 bytes was parsed as
#   an HTTP/1.1 request (and answered 400 or 501);
# - goaway-last-stream-up*: after GOAWAY(5) for max_requests_per_connection, stream 7
#   (ignored) and then a connection error sent GOAWAY(7, PROTOCOL_ERROR) (RFC 9113 6.8);
# - frames-after-error-goaway: the h2c upgrade request's app failed after a connection
#   error, and its RST_STREAM went out after the GOAWAY;
# - connect-end-before-head*: an extended CONNECT and its END_STREAM in one read got an
#   empty DATA(END_STREAM) and no response head, and its app never ran.
# Fixed in 933343e:
# - duplicate-rst-stream-*: a second stream error on a stream already reset (a PRIORITY
#   frame of 8 bytes, a second self-dependent HEADERS) sent RST_STREAM again.
FIXED = {
    "head-500-h1": conn.Plan([HEAD_FAIL]),
    "head-500-h1-h11": conn.Plan([HEAD_FAIL], http="h11"),
    "head-413-h1": conn.Plan([HEAD_CHUNKED_OVER_LIMIT], tight=True),
    "head-408-h1": conn.Plan([HEAD_BODY_STALLS], gaps={0: 61.0}),
    "head-400-h1": conn.Plan([HEAD_BAD_CHUNK], http="h11"),
    "head-500-h2": conn.Plan(
        [
            PREFACE
            + frame(4, 0, 0, b"")
            + frame(1, 0x5, 1, _get(hpack.Encoder(), b"HEAD", b"/fail0"))
        ],
        alpn="h2",
    ),
    "split-preface": conn.Plan(
        [b"P", PREFACE[1:] + frame(4, 0, 0, b"") + frame(1, 0x5, 1, _get(hpack.Encoder()))]
    ),
    "split-preface-2": conn.Plan([b"PR", PREFACE[2:] + frame(4, 0, 0, b"")], http="h11"),
    "goaway-last-stream-up": conn.Plan(GOAWAY_CHUNKS, alpn="h2", tight=True),
    "goaway-last-stream-up-cleartext": conn.Plan(GOAWAY_CHUNKS, tight=True),
    "frames-after-error-goaway": conn.Plan(
        [H2C_FAIL + PREFACE + frame(4, 0, 0, b"") + frame(8, 0, 0, bytes(4))]
    ),
    "connect-end-before-head": conn.Plan(
        [PREFACE + frame(4, 0, 0, b"") + CONNECT_WS + frame(0, 0x1, 1, b"")], alpn="h2"
    ),
    "connect-end-before-head-with-data": conn.Plan(
        [PREFACE + frame(4, 0, 0, b"") + CONNECT_WS + frame(0, 0x1, 1, masked(1, b"hi"))]
    ),
    "duplicate-rst-stream-priority": conn.Plan(
        [
            PREFACE
            + frame(4, 0, 0, b"")
            + frame(1, 0x4, 1, _get(hpack.Encoder(), b"POST", b"/echo", CL_3))
            + frame(0, 0x1, 1, b"hello")  # not the content-length: RST_STREAM
            + frame(2, 0, 1, bytes(8))  # a PRIORITY frame of 8 bytes: RST_STREAM again
        ],
        alpn="h2",
    ),
    "duplicate-rst-stream-self-dependency": conn.Plan(
        [
            PREFACE
            + frame(4, 0, 0, b"")
            + frame(1, 0x24, 1, SELF_DEPENDENT + _get(_ENCODER_2))
            + frame(1, 0x25, 1, SELF_DEPENDENT + _get(_ENCODER_2))
        ]
    ),
}
# (open finding, plan): each plan shows that finding and nothing else
OPEN_CASES: dict[str, tuple[str, object]] = {}
REASONS: dict[str, str] = {}  # open finding: what is wrong, where


@pytest.mark.parametrize("case", FIXED)
def test_connection_finding_stays_fixed(case: str) -> None:
    outcome = conn.run(FIXED[case])
    problems = conn.check(outcome)
    assert not problems, conn.describe(outcome, problems)


class StillOpen(Exception):
    """The open finding showed, and only it."""


def test_every_open_finding_has_a_case() -> None:
    assert {name for name, _ in OPEN_CASES.values()} == set(conn.OPEN) == set(REASONS)


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            case,
            marks=pytest.mark.xfail(
                strict=True, raises=StillOpen, reason=REASONS[OPEN_CASES[case][0]]
            ),
        )
        for case in OPEN_CASES
    ],
)
def test_open_finding(case: str) -> None:
    name, plan = OPEN_CASES[case]
    outcome = conn.run(plan)
    problems = conn.check(outcome)
    others = [p for p in problems if conn.open_finding(p) != name]
    assert not others, conn.describe(outcome, others)
    if problems:
        raise StillOpen(conn.describe(outcome, problems))
