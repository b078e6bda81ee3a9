"""Request framing rules (RFC 9112): Host, Content-Length, Transfer-Encoding, Expect, Upgrade.

Each rule is checked directly on :class:`HeadBuilder` (what the module promises)
and through both parser backends (what a client gets).
"""

from __future__ import annotations

import pytest

from squall.protocols.http1.base import HTTP1
from squall.protocols.http1.head import HeadBuilder, Limits, ParseError, RequestHead

from ._h1 import BACKENDS, feed, parse_error


@pytest.fixture(params=BACKENDS, ids=lambda cls: cls.backend)
def backend(request: pytest.FixtureRequest) -> type[HTTP1]:
    return request.param  # type: ignore[no-any-return]


def build(
    headers: list[tuple[bytes, bytes]], version: str = "1.1", method: str = "GET"
) -> RequestHead:
    builder = HeadBuilder(Limits())
    builder.begin()
    for name, value in headers:
        builder.add_header(name, value)
    return builder.finish(method, b"/", version)


def build_error(headers: list[tuple[bytes, bytes]], version: str = "1.1") -> ParseError:
    with pytest.raises(ParseError) as info:
        build(headers, version)
    return info.value


def request(*lines: bytes, version: bytes = b"1.1", body: bytes = b"") -> bytes:
    return (
        b"POST / HTTP/" + version + b"\r\n" + b"".join(x + b"\r\n" for x in lines) + b"\r\n" + body
    )


H = b"Host: a"

# -- HeadBuilder directly -----------------------------------------------------------------


def test_builder_records_head_fields() -> None:
    builder = HeadBuilder(Limits())
    builder.begin()
    builder.add_header(b"host", b"a")
    head = builder.finish("PATCH", b"/x?y", "1.1")
    assert head is builder.head
    assert (head.method, head.target, head.http_version) == ("PATCH", b"/x?y", "1.1")
    assert head.headers == [(b"host", b"a")]


def test_builder_begin_resets_state() -> None:
    builder = HeadBuilder(Limits())
    builder.begin()
    builder.add_header(b"host", b"a")
    builder.add_header(b"content-length", b"5")
    builder.add_header(b"x-forwarded-for", b"1.2.3.4")
    first = builder.finish("POST", b"/", "1.1")
    second = builder.begin()
    assert second is not first
    builder.add_header(b"host", b"a")
    head = builder.finish("GET", b"/", "1.1")
    assert head.content_length == 0
    assert head.forwarded is False
    assert head.headers == [(b"host", b"a")]
    assert first.content_length == 5


@pytest.mark.parametrize(
    ("hosts", "version", "status"),
    [(0, "1.1", 400), (2, "1.1", 400), (2, "1.0", 400)],
)
def test_builder_host_rules(hosts: int, version: str, status: int) -> None:
    assert build_error([(b"host", b"a")] * hosts, version).status == status


@pytest.mark.parametrize(("hosts", "version"), [(1, "1.1"), (0, "1.0"), (1, "1.0")])
def test_builder_host_ok(hosts: int, version: str) -> None:
    assert build([(b"host", b"a")] * hosts, version).http_version == version


@pytest.mark.parametrize(
    ("te", "status"),
    [
        (b"gzip", 501),
        (b"chunked, gzip", 400),
        (b"gzip, chunked", 501),
        (b"chunked, chunked", 400),
        (b"identity", 501),
        (b"", 400),
        (b"chunked,", 400),
        (b", chunked", 400),
    ],
)
def test_builder_transfer_encoding_refusals(te: bytes, status: int) -> None:
    err = build_error([(b"host", b"a"), (b"transfer-encoding", te)])
    assert err.status == status


@pytest.mark.parametrize("te", [b"chunked", b"Chunked", b" chunked ", b"CHUNKED"])
def test_builder_chunked_accepted(te: bytes) -> None:
    head = build([(b"host", b"a"), (b"transfer-encoding", te)])
    assert head.chunked is True
    assert head.content_length == 0


def test_builder_two_te_headers_are_one_list() -> None:
    err = build_error(
        [(b"host", b"a"), (b"transfer-encoding", b"gzip"), (b"transfer-encoding", b"chunked")]
    )
    assert err.status == 501


def test_builder_te_on_http10_is_400() -> None:
    assert build_error([(b"transfer-encoding", b"chunked")], "1.0").status == 400


@pytest.mark.parametrize("order", ["cl-first", "te-first"])
def test_builder_cl_and_te_is_400(order: str) -> None:
    pair = [(b"content-length", b"5"), (b"transfer-encoding", b"chunked")]
    if order == "te-first":
        pair.reverse()
    assert build_error([(b"host", b"a"), *pair]).status == 400


@pytest.mark.parametrize(
    "value",
    [b"+5", b"0x5", b"1_0", b"", b"-1", b"5.0", b"1 2", b"5, 5", b"\xd9\xa5", b"1" * 19, b" "],
)
def test_builder_invalid_content_length_is_400(value: bytes) -> None:
    assert build_error([(b"host", b"a"), (b"content-length", value)]).status == 400


@pytest.mark.parametrize(
    ("value", "length"),
    [(b"0", 0), (b"5", 5), (b" 7\t", 7), (b"000012", 12), (b"9" * 18, 10**18 - 1)],
)
def test_builder_content_length_parsed(value: bytes, length: int) -> None:
    head = build([(b"host", b"a"), (b"content-length", value)])
    assert head.content_length == length
    assert head.chunked is False


def test_builder_conflicting_content_lengths_is_400() -> None:
    err = build_error([(b"host", b"a"), (b"content-length", b"5"), (b"content-length", b"6")])
    assert err.status == 400


def test_builder_duplicate_identical_content_lengths_is_400() -> None:
    err = build_error([(b"host", b"a"), (b"content-length", b"5"), (b"content-length", b"5")])
    assert err.status == 400


@pytest.mark.parametrize(
    ("expect", "version", "flag"),
    [
        (b"100-continue", "1.1", True),
        (b"100-Continue", "1.1", True),
        (b"100-continue", "1.0", False),
    ],
)
def test_builder_expect_continue(expect: bytes, version: str, flag: bool) -> None:
    head = build([(b"host", b"a"), (b"expect", expect)], version)
    assert head.expect_continue is flag


@pytest.mark.parametrize("expect", [b"foo", b"100-continue, foo", b"", b"200-ok"])
def test_builder_unsupported_expect_is_417(expect: bytes) -> None:
    assert build_error([(b"host", b"a"), (b"expect", expect)]).status == 417


def test_builder_unsupported_version() -> None:
    assert build_error([(b"host", b"a")], "2.0").status == 505
    assert build_error([(b"host", b"a")], "0.9").status == 400


def test_builder_limits() -> None:
    builder = HeadBuilder(Limits(fields=2, field_size=10, header_size=30))
    builder.begin()
    builder.add_header(b"a", b"1")
    builder.add_header(b"b", b"2")
    with pytest.raises(ParseError) as info:
        builder.add_header(b"c", b"3")
    assert info.value.status == 431

    builder.begin()
    with pytest.raises(ParseError) as info:
        builder.add_header(b"name", b"1234567")  # 11 > field_size 10
    assert info.value.status == 431

    builder = HeadBuilder(Limits(fields=100, field_size=100, header_size=30))
    builder.begin()
    builder.add_header(b"a", b"x" * 20)  # 21 + 4 = 25
    with pytest.raises(ParseError) as info:
        builder.add_header(b"b", b"y")  # 25 + 2 + 4 = 31 > 30
    assert info.value.status == 431


# -- Host, through the backends -------------------------------------------------------------


def test_missing_host_on_http11_is_400(backend: type[HTTP1]) -> None:
    assert parse_error(backend, b"GET / HTTP/1.1\r\n\r\n").status == 400


@pytest.mark.parametrize("version", [b"1.1", b"1.0"])
def test_duplicate_host_is_400(backend: type[HTTP1], version: bytes) -> None:
    data = b"GET / HTTP/" + version + b"\r\nHost: a\r\nHost: b\r\n\r\n"
    assert parse_error(backend, data).status == 400


def test_empty_host_value_is_a_host(backend: type[HTTP1]) -> None:
    rec = feed(backend, b"GET / HTTP/1.1\r\nHost:\r\n\r\n")
    assert rec.heads[0].headers == [(b"host", b"")]


# -- Transfer-Encoding, through the backends --------------------------------------------------


@pytest.mark.parametrize(
    ("te", "status", "marks"),
    [
        # RFC 9112 6.1: chunked must be the final coding and applied once (else 400)
        (b"gzip", 501, {}),
        (b"gzip, chunked", 501, {}),
        (b"chunked, gzip", 400, {}),
        (b"chunked, chunked", 400, {}),
        (b"", 400, {}),
        (b"chunked,", 400, {}),
    ],
    ids=["gzip", "gzip-chunked", "chunked-gzip", "chunked-chunked", "empty", "trailing-comma"],
)
@pytest.mark.parametrize("which", ["httptools", "h11"])
def test_transfer_encoding_status_matches_head_builder(
    request: pytest.FixtureRequest, which: str, te: bytes, status: int, marks: dict[str, str]
) -> None:
    backend = next(cls for cls in BACKENDS if cls.backend == which)
    if which in marks:
        request.applymarker(pytest.mark.xfail(strict=True, reason=marks[which]))
    # the module's own promise, independent of any parser
    assert build_error([(b"host", b"a"), (b"transfer-encoding", te)]).status == status
    data = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: " + te + b"\r\n\r\n"
    assert parse_error(backend, data).status == status


def test_two_te_headers_gzip_then_chunked_is_501(backend: type[HTTP1]) -> None:
    data = request(H, b"Transfer-Encoding: gzip", b"Transfer-Encoding: chunked")
    assert parse_error(backend, data).status == 501


def test_te_chunked_on_http10_is_400(backend: type[HTTP1]) -> None:
    data = request(b"Transfer-Encoding: chunked", version=b"1.0", body=b"0\r\n\r\n")
    assert parse_error(backend, data).status == 400


@pytest.mark.parametrize("value", [b"chunked", b"Chunked"])
def test_te_chunked_case_insensitive(backend: type[HTTP1], value: bytes) -> None:
    rec = feed(backend, request(H, b"Transfer-Encoding: " + value, body=b"1\r\nx\r\n0\r\n\r\n"))
    assert rec.heads[0].chunked is True
    assert rec.merged()[1:] == [("body", b"x"), ("end",)]


@pytest.mark.parametrize(
    "lines",
    [
        [b"Content-Length: 5", b"Transfer-Encoding: chunked"],
        [b"Transfer-Encoding: chunked", b"Content-Length: 5"],
        [b"Transfer-Encoding: chunked", b"Content-Length: 0"],
    ],
    ids=["cl-te", "te-cl", "te-cl0"],
)
def test_content_length_with_transfer_encoding_is_400(
    backend: type[HTTP1], lines: list[bytes]
) -> None:
    data = request(H, *lines, body=b"0\r\n\r\n")
    assert parse_error(backend, data).status == 400


def test_framing_header_in_trailers_is_400(backend: type[HTTP1]) -> None:
    data = request(
        H,
        b"Transfer-Encoding: chunked",
        body=b"5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\n",
    )
    assert parse_error(backend, data).status == 400


# -- Content-Length, through the backends --------------------------------------------------------


def test_conflicting_content_lengths_is_400(backend: type[HTTP1]) -> None:
    data = request(H, b"Content-Length: 5", b"Content-Length: 6", body=b"hello!")
    assert parse_error(backend, data).status == 400


def test_duplicate_identical_content_lengths_is_400(backend: type[HTTP1]) -> None:
    data = request(H, b"Content-Length: 5", b"Content-Length: 5", body=b"hello")
    assert parse_error(backend, data).status == 400


def test_content_length_list_is_400(backend: type[HTTP1]) -> None:
    data = request(H, b"Content-Length: 5, 5", body=b"hello")
    assert parse_error(backend, data).status == 400


INVALID_CL = {
    "plus": b"+5",
    "hex": b"0x5",
    "underscore": b"1_0",
    "empty": b"",
    "negative": b"-1",
    "huge": b"99999999999999999999",
    "19-digits": b"0000000000000000005",
    "decimal": b"5.0",
    "inner-space": b"1 2",
    "arabic-digit": "\u0665".encode(),
    "letters": b"five",
}


@pytest.mark.parametrize("value", INVALID_CL.values(), ids=INVALID_CL.keys())
def test_invalid_content_length_is_400(backend: type[HTTP1], value: bytes) -> None:
    data = request(H, b"Content-Length: " + value, body=b"hello")
    assert parse_error(backend, data).status == 400


def test_content_length_with_surrounding_whitespace(backend: type[HTTP1]) -> None:
    rec = feed(backend, request(H, b"Content-Length:  5 ", body=b"hello"))
    assert rec.heads[0].content_length == 5
    assert rec.merged()[1:] == [("body", b"hello"), ("end",)]


def test_content_length_leading_zeros(backend: type[HTTP1]) -> None:
    rec = feed(backend, request(H, b"Content-Length: 0005", body=b"hello"))
    assert rec.heads[0].content_length == 5


def test_content_length_zero_ends_at_once(backend: type[HTTP1]) -> None:
    rec = feed(backend, request(H, b"Content-Length: 0"))
    assert [c[0] for c in rec.calls] == ["request", "end"]


def test_no_framing_headers_means_no_body(backend: type[HTTP1]) -> None:
    rec = feed(backend, b"POST / HTTP/1.1\r\nHost: a\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n")
    assert [c[0] for c in rec.calls] == ["request", "end", "request", "end"]
    assert rec.heads[1].target == b"/next"


# -- Expect ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [b"100-continue", b"100-Continue"])
def test_expect_100_continue_flag(backend: type[HTTP1], value: bytes) -> None:
    rec = feed(backend, request(H, b"Expect: " + value, b"Content-Length: 5"))
    head = rec.heads[0]
    assert head.expect_continue is True
    # body not sent yet: the request is delivered, not ended
    assert [c[0] for c in rec.calls] == ["request"]


def test_expect_100_continue_ignored_on_http10(backend: type[HTTP1]) -> None:
    rec = feed(backend, request(b"Expect: 100-continue", b"Content-Length: 0", version=b"1.0"))
    assert rec.heads[0].expect_continue is False


def test_no_expect_no_flag(backend: type[HTTP1]) -> None:
    rec = feed(backend, request(H, b"Content-Length: 0"))
    assert rec.heads[0].expect_continue is False


@pytest.mark.parametrize("value", [b"foo", b"100-continue, bar", b"200-ok"])
def test_unsupported_expect_is_417(backend: type[HTTP1], value: bytes) -> None:
    data = request(H, b"Expect: " + value, b"Content-Length: 0")
    assert parse_error(backend, data).status == 417


# -- Upgrade --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("connection", "upgrade", "expected"),
    [
        (b"Upgrade", b"websocket", b"websocket"),
        (b"upgrade", b"WebSocket", b"websocket"),
        (b"keep-alive, Upgrade", b"websocket", b"websocket"),
        (None, b"websocket", None),
        (b"keep-alive", b"websocket", None),
        (b"Upgrade", b"h2c", b"h2c"),
    ],
)
def test_upgrade_detection(
    backend: type[HTTP1], connection: bytes | None, upgrade: bytes, expected: bytes | None
) -> None:
    data = b"GET /ws HTTP/1.1\r\nHost: a\r\n"
    if connection is not None:
        data += b"Connection: " + connection + b"\r\n"
    data += b"Upgrade: " + upgrade + b"\r\n\r\n"
    rec = feed(backend, data)
    assert rec.heads[0].upgrade == expected
    assert [c[0] for c in rec.calls] == ["request", "end"]


def test_refused_upgrade_lets_next_request_through(backend: type[HTTP1]) -> None:
    """When the owner keeps the connection as HTTP/1.1, parsing goes on."""
    data = (
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n"
        b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    rec = feed(backend, data)
    assert [h.target for h in rec.heads] == [b"/ws", b"/next"]


def test_upgrade_stops_parsing_when_owner_closes(backend: type[HTTP1]) -> None:
    class Closer:
        def __init__(self) -> None:
            self.targets: list[bytes] = []

        def on_request(self, head: RequestHead) -> None:
            self.targets.append(head.target)
            head.keep_alive = False  # as the transport does for websocket refusals

        def on_body(self, data: bytes) -> None:
            pass

        def on_request_end(self) -> None:
            pass

    events = Closer()
    proto = backend(events)
    proto.feed(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"
        b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    assert events.targets == [b"/ws"]


def test_upgrade_request_body_is_delivered(backend: type[HTTP1]) -> None:
    data = request(H, b"Connection: Upgrade", b"Upgrade: h2c", b"Content-Length: 3", body=b"abc")
    rec = feed(backend, data)
    assert rec.merged()[1:] == [("body", b"abc"), ("end",)]
