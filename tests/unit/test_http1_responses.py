"""HTTP/1 response encoding: HTTP1.response_head / response_body / informational."""

from __future__ import annotations

import pytest

from squall.protocols.http1.base import (
    HTTP1,
    ResponseError,
    default_block,
    error_response,
    valid_header_name,
    valid_header_value,
)
from squall.protocols.http1.head import RequestHead

from ._h1 import BACKENDS, Recorder


def make_defaults(server: bytes, date: bytes, other: bytes) -> dict[int, bytes]:
    """The ``defaults`` argument of response_head: server, date and other default lines."""
    return default_block(server, date, other)


DEFAULTS = make_defaults(b"server: squall\r\n", b"date: X\r\n", b"")


@pytest.fixture(params=BACKENDS, ids=lambda cls: cls.backend)
def proto(request: pytest.FixtureRequest) -> HTTP1:
    return request.param(Recorder())  # type: ignore[no-any-return]


def make_head(method: str = "GET", version: str = "1.1", keep_alive: bool = True) -> RequestHead:
    head = RequestHead()
    head.method = method
    head.target = b"/"
    head.http_version = version
    head.keep_alive = keep_alive
    return head


def split(data: bytes) -> tuple[bytes, list[bytes], bytes]:
    """(status line, header lines, rest) of a serialized response."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, f"no end of head in {data!r}"
    lines = head.split(b"\r\n")
    return lines[0], lines[1:], rest


def header_names(lines: list[bytes]) -> list[bytes]:
    return [line.split(b":", 1)[0].lower() for line in lines]


def respond(
    proto: HTTP1,
    status: int = 200,
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes | None = b"",
    more_body: bool = False,
    head: RequestHead | None = None,
    defaults: dict[int, bytes] | None = None,
) -> bytes:
    return proto.response_head(
        status,
        headers or [],
        DEFAULTS if defaults is None else defaults,
        head or make_head(),
        body,
        more_body,
    )


# -- status line --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "line"),
    [
        (200, b"HTTP/1.1 200 OK"),
        (404, b"HTTP/1.1 404 Not Found"),
        (418, b"HTTP/1.1 418 I'm a Teapot"),
        (500, b"HTTP/1.1 500 Internal Server Error"),
        (599, b"HTTP/1.1 599 "),
        (299, b"HTTP/1.1 299 "),
    ],
)
def test_status_line_and_reason_phrase(proto: HTTP1, status: int, line: bytes) -> None:
    assert split(respond(proto, status))[0] == line


def test_status_line_is_http11_for_http10_request(proto: HTTP1) -> None:
    assert respond(proto, head=make_head(version="1.0")).startswith(b"HTTP/1.1 200 OK\r\n")


@pytest.mark.parametrize("status", [0, 99, 600, 1000, -200, True])
def test_invalid_status_raises(proto: HTTP1, status: int) -> None:
    with pytest.raises(ResponseError):
        respond(proto, status)


# -- exact wire output ----------------------------------------------------------------------


def test_exact_simple_response(proto: HTTP1) -> None:
    out = respond(proto, 200, [(b"content-type", b"text/plain")], b"hello")
    assert out == (
        b"HTTP/1.1 200 OK\r\n"
        b"content-type: text/plain\r\n"
        b"server: squall\r\n"
        b"date: X\r\n"
        b"content-length: 5\r\n"
        b"\r\n"
        b"hello"
    )
    assert proto.keep_alive is True


def test_app_header_names_and_values_kept_verbatim(proto: HTTP1) -> None:
    out = respond(proto, 200, [(b"X-Mixed-Case", b"Value With  Spaces\ttab")], b"")
    assert b"\r\nX-Mixed-Case: Value With  Spaces\ttab\r\n" in out


def test_duplicate_app_headers_kept_in_order(proto: HTTP1) -> None:
    headers = [(b"set-cookie", b"a=1"), (b"x", b"y"), (b"set-cookie", b"b=2")]
    _, lines, _ = split(respond(proto, 200, headers))
    assert lines[:3] == [b"set-cookie: a=1", b"x: y", b"set-cookie: b=2"]


def test_k_other_defaults_appended(proto: HTTP1) -> None:
    defaults = make_defaults(b"server: squall\r\n", b"date: X\r\n", b"x-extra: 1\r\n")
    _, lines, _ = split(respond(proto, 200, [], b"", defaults=defaults))
    assert b"x-extra: 1" in lines


def test_empty_defaults_add_nothing(proto: HTTP1) -> None:
    defaults = make_defaults(b"", b"", b"")
    out = respond(proto, 204, [], b"", defaults=defaults)
    assert out == b"HTTP/1.1 204 No Content\r\n\r\n"


# -- content-length and framing ------------------------------------------------------------------


def test_content_length_computed_for_single_final_body(proto: HTTP1) -> None:
    _, lines, rest = split(respond(proto, 200, [], b"x" * 1234))
    assert b"content-length: 1234" in lines
    assert b"transfer-encoding: chunked" not in lines
    assert rest == b"x" * 1234


def test_content_length_zero_for_empty_final_body(proto: HTTP1) -> None:
    _, lines, rest = split(respond(proto, 200, [], b""))
    assert b"content-length: 0" in lines
    assert rest == b""


def test_app_content_length_used_and_enforced(proto: HTTP1) -> None:
    out = respond(proto, 200, [(b"Content-Length", b"10")], b"01234", more_body=True)
    _, lines, rest = split(out)
    assert header_names(lines).count(b"content-length") == 1
    assert b"content-length: 10" in lines
    assert rest == b"01234"
    assert proto.response_body(b"56789", False) == b"56789"


def test_chunked_when_streaming_on_http11(proto: HTTP1) -> None:
    out = respond(proto, 200, [], b"hello", more_body=True)
    _, lines, rest = split(out)
    assert b"transfer-encoding: chunked" in lines
    assert b"content-length" not in header_names(lines)
    assert rest == b"5\r\nhello\r\n"
    assert proto.response_body(b"", True) == b""
    assert proto.response_body(b"x" * 26, True) == b"1a\r\n" + b"x" * 26 + b"\r\n"
    assert proto.response_body(b"", False) == b"0\r\n\r\n"
    assert proto.keep_alive is True


def test_chunked_final_chunk_with_data(proto: HTTP1) -> None:
    respond(proto, 200, [], None, more_body=True)
    assert proto.response_body(b"end", False) == b"3\r\nend\r\n0\r\n\r\n"


def test_head_only_then_body(proto: HTTP1) -> None:
    """With body=None only the head is produced."""
    out = respond(proto, 200, [], None, more_body=True)
    assert out.endswith(b"\r\n\r\n")
    _, lines, rest = split(out)
    assert rest == b""
    assert b"transfer-encoding: chunked" in lines


def test_head_only_with_no_more_body_is_chunked(proto: HTTP1) -> None:
    # body=None: the body comes later, so its length is unknown
    _, lines, _ = split(respond(proto, 200, [], None, more_body=False))
    assert b"transfer-encoding: chunked" in lines


def test_close_delimited_on_http10_without_content_length(proto: HTTP1) -> None:
    head = make_head(version="1.0", keep_alive=True)
    out = respond(proto, 200, [], b"part1", more_body=True, head=head)
    _, lines, rest = split(out)
    assert b"connection: close" in lines
    assert b"transfer-encoding" not in header_names(lines)
    assert b"content-length" not in header_names(lines)
    assert rest == b"part1"
    assert proto.keep_alive is False
    assert proto.response_body(b"part2", True) == b"part2"
    assert proto.response_body(b"", False) == b""


def test_http10_keep_alive_with_length_says_keep_alive(proto: HTTP1) -> None:
    head = make_head(version="1.0", keep_alive=True)
    _, lines, _ = split(respond(proto, 200, [], b"abc", head=head))
    assert b"connection: keep-alive" in lines
    assert b"content-length: 3" in lines
    assert proto.keep_alive is True


def test_http10_without_keep_alive_says_close(proto: HTTP1) -> None:
    head = make_head(version="1.0", keep_alive=False)
    _, lines, _ = split(respond(proto, 200, [], b"abc", head=head))
    assert b"connection: close" in lines
    assert proto.keep_alive is False


def test_http11_request_close_says_close(proto: HTTP1) -> None:
    _, lines, _ = split(respond(proto, 200, [], b"abc", head=make_head(keep_alive=False)))
    assert b"connection: close" in lines
    assert proto.keep_alive is False


def test_http11_keep_alive_sends_no_connection_header(proto: HTTP1) -> None:
    _, lines, _ = split(respond(proto, 200, [], b"abc"))
    assert b"connection" not in header_names(lines)


@pytest.mark.parametrize("value", [b"close", b"Close", b"keep-alive, close"])
def test_app_connection_close_ends_keep_alive(proto: HTTP1, value: bytes) -> None:
    _, lines, _ = split(respond(proto, 200, [(b"Connection", value)], b"abc"))
    assert proto.keep_alive is False
    assert header_names(lines).count(b"connection") == 1
    assert b"connection: close" in lines


def test_app_connection_keep_alive_is_not_repeated(proto: HTTP1) -> None:
    _, lines, _ = split(respond(proto, 200, [(b"connection", b"keep-alive")], b"abc"))
    assert proto.keep_alive is True
    assert b"connection" not in header_names(lines)


def test_keep_alive_state_reset_per_response(proto: HTTP1) -> None:
    respond(proto, 200, [(b"connection", b"close")], b"")
    assert proto.keep_alive is False
    respond(proto, 200, [], b"")
    assert proto.keep_alive is True


# -- bodies that must not be sent -----------------------------------------------------------------


def test_head_request_has_no_body_but_keeps_content_length(proto: HTTP1) -> None:
    out = respond(proto, 200, [(b"content-length", b"42")], b"x" * 42, head=make_head("HEAD"))
    _, lines, rest = split(out)
    assert rest == b""
    assert b"content-length: 42" in lines
    assert proto.response_body(b"more", False) == b""


def test_head_request_without_app_length_has_no_body(proto: HTTP1) -> None:
    out = respond(proto, 200, [], b"hello", head=make_head("HEAD"))
    _, lines, rest = split(out)
    assert rest == b""
    assert b"transfer-encoding" not in header_names(lines)


def test_head_request_streaming_has_no_chunks(proto: HTTP1) -> None:
    out = respond(proto, 200, [], b"a", more_body=True, head=make_head("HEAD"))
    _, lines, rest = split(out)
    assert rest == b""
    assert b"transfer-encoding" not in header_names(lines)
    assert proto.response_body(b"b", True) == b""
    assert proto.response_body(b"", False) == b""


@pytest.mark.parametrize("status", [204, 100, 103, 101])
def test_no_content_length_for_204_and_1xx(proto: HTTP1, status: int) -> None:
    out = respond(proto, status, [(b"content-length", b"5")], b"hello")
    _, lines, rest = split(out)
    assert b"content-length" not in header_names(lines)
    assert b"transfer-encoding" not in header_names(lines)
    assert rest == b""


def test_204_without_app_length_gets_none(proto: HTTP1) -> None:
    out = respond(proto, 204, [], b"")
    _, lines, rest = split(out)
    assert b"content-length" not in header_names(lines)
    assert rest == b""


def test_304_keeps_content_length_and_has_no_body(proto: HTTP1) -> None:
    out = respond(proto, 304, [(b"content-length", b"99")], b"")
    _, lines, rest = split(out)
    assert b"content-length: 99" in lines
    assert rest == b""


def test_304_without_app_length_gets_none(proto: HTTP1) -> None:
    _, lines, _ = split(respond(proto, 304, [], b""))
    assert b"content-length" not in header_names(lines)


# -- server, date and transfer-encoding from the app ----------------------------------------------


@pytest.mark.parametrize("name", [b"server", b"Server", b"SERVER"])
def test_app_server_header_replaces_default(proto: HTTP1, name: bytes) -> None:
    _, lines, _ = split(respond(proto, 200, [(name, b"mine")], b""))
    assert header_names(lines).count(b"server") == 1
    assert name + b": mine" in lines
    assert b"server: squall" not in lines


@pytest.mark.parametrize("name", [b"date", b"Date"])
def test_app_date_header_replaces_default(proto: HTTP1, name: bytes) -> None:
    _, lines, _ = split(respond(proto, 200, [(name, b"Tue, 01 Jan 2030 00:00:00 GMT")], b""))
    assert header_names(lines).count(b"date") == 1
    assert b"date: X" not in lines


def test_default_server_and_date_present(proto: HTTP1) -> None:
    _, lines, _ = split(respond(proto, 200, [], b""))
    assert b"server: squall" in lines
    assert b"date: X" in lines


def test_defaults_not_shared_between_responses(proto: HTTP1) -> None:
    respond(proto, 200, [(b"server", b"mine")], b"")
    _, lines, _ = split(respond(proto, 200, [], b""))
    assert b"server: squall" in lines


@pytest.mark.parametrize("value", [b"chunked", b"gzip, chunked", b"identity"])
def test_app_transfer_encoding_dropped(proto: HTTP1, value: bytes) -> None:
    _, lines, rest = split(respond(proto, 200, [(b"Transfer-Encoding", value)], b"hello"))
    assert (b"Transfer-Encoding: " + value) not in lines
    assert b"transfer-encoding" not in header_names(lines)
    assert b"content-length: 5" in lines
    assert rest == b"hello"


def test_app_transfer_encoding_dropped_when_streaming(proto: HTTP1) -> None:
    _, lines, rest = split(respond(proto, 200, [(b"transfer-encoding", b"gzip")], b"a", True))
    assert lines.count(b"transfer-encoding: chunked") == 1
    assert b"transfer-encoding: gzip" not in lines
    assert rest == b"1\r\na\r\n"


# -- content-length enforcement -------------------------------------------------------------------


def test_content_length_overrun_in_first_body_raises(proto: HTTP1) -> None:
    with pytest.raises(ResponseError):
        respond(proto, 200, [(b"content-length", b"3")], b"hello")


def test_content_length_overrun_in_later_body_raises(proto: HTTP1) -> None:
    respond(proto, 200, [(b"content-length", b"6")], b"abc", more_body=True)
    with pytest.raises(ResponseError):
        proto.response_body(b"defg", True)


def test_content_length_underrun_raises(proto: HTTP1) -> None:
    with pytest.raises(ResponseError):
        respond(proto, 200, [(b"content-length", b"10")], b"short")


def test_content_length_underrun_at_end_of_stream_raises(proto: HTTP1) -> None:
    respond(proto, 200, [(b"content-length", b"6")], b"abc", more_body=True)
    assert proto.response_body(b"d", True) == b"d"
    with pytest.raises(ResponseError):
        proto.response_body(b"", False)


def test_content_length_exact_across_chunks(proto: HTTP1) -> None:
    respond(proto, 200, [(b"content-length", b"6")], None, more_body=True)
    assert [
        proto.response_body(x, m) for x, m in ((b"ab", True), (b"cd", True), (b"ef", False))
    ] == [
        b"ab",
        b"cd",
        b"ef",
    ]


@pytest.mark.parametrize("value", [b"abc", b"-1", b"", b"1.5", b"0x10"])
def test_invalid_app_content_length_raises(proto: HTTP1, value: bytes) -> None:
    with pytest.raises(ResponseError):
        respond(proto, 200, [(b"content-length", value)], b"")


# -- header injection ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        b"ok\r\nSet-Cookie: evil=1",
        b"ok\nx",
        b"ok\rx",
        b"ok\x00x",
        b"\x7f",
        b"\x1b[31m",
    ],
    ids=["crlf", "lf", "cr", "nul", "del", "esc"],
)
def test_cve_2020_7695_header_injection(proto: HTTP1, value: bytes) -> None:
    with pytest.raises(ResponseError):
        respond(proto, 200, [(b"x-header", value)], b"")


@pytest.mark.parametrize(
    "name",
    [b"bad name", b"bad\r\nname", b"", b"x:y", b"bad\x00", b"caf\xe9", b"(x)", b"a\tb"],
)
def test_invalid_header_name_raises(proto: HTTP1, name: bytes) -> None:
    with pytest.raises(ResponseError):
        respond(proto, 200, [(name, b"v")], b"")


def test_injection_check_applies_to_special_headers(proto: HTTP1) -> None:
    for name in (b"server", b"date", b"connection", b"content-type"):
        with pytest.raises(ResponseError):
            respond(proto, 200, [(name, b"x\r\nevil: 1")], b"")


def test_tab_and_obs_text_allowed_in_values(proto: HTTP1) -> None:
    out = respond(proto, 200, [(b"x", b"a\tb caf\xe9")], b"")
    assert b"x: a\tb caf\xe9\r\n" in out


def test_valid_header_name_and_value_helpers() -> None:
    assert valid_header_name(b"X-Custom_Header.1~!#$%&'*+^`|")
    assert not valid_header_name(b"")
    assert not valid_header_name(b"a b")
    assert not valid_header_name(b"a:b")
    assert not valid_header_name(b"a\n")
    assert valid_header_value(b"")
    assert valid_header_value(b"text/html; charset=utf-8\t\x80\xff")
    assert not valid_header_value(b"a\rb")
    assert not valid_header_value(b"a\nb")
    assert not valid_header_value(b"a\x00b")
    assert not valid_header_value(b"a\x7fb")


# -- informational and error responses ------------------------------------------------------------


def test_informational_100(proto: HTTP1) -> None:
    assert proto.informational(100, []) == b"HTTP/1.1 100 Continue\r\n\r\n"


def test_informational_103_with_headers(proto: HTTP1) -> None:
    out = proto.informational(103, [(b"link", b"</style.css>; rel=preload")])
    assert out == b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n"


def test_informational_rejects_injection(proto: HTTP1) -> None:
    with pytest.raises(ResponseError):
        proto.informational(103, [(b"link", b"x\r\nevil: 1")])
    with pytest.raises(ResponseError):
        proto.informational(103, [(b"bad name", b"x")])


def test_informational_does_not_change_framing(proto: HTTP1) -> None:
    respond(proto, 200, [(b"content-length", b"4")], None, more_body=True)
    proto.informational(100, [])
    assert proto.response_body(b"abcd", False) == b"abcd"


def test_error_response() -> None:
    out = error_response(400, "Bad Request", DEFAULTS)
    assert out == (
        b"HTTP/1.1 400 Bad Request\r\n"
        b"server: squall\r\n"
        b"date: X\r\n"
        b"content-type: text/plain; charset=utf-8\r\n"
        b"content-length: 12\r\n"
        b"connection: close\r\n"
        b"\r\n"
        b"Bad Request\n"
    )


@pytest.mark.parametrize("status", [413, 414, 431, 501, 505])
def test_error_response_length_matches_body(status: int) -> None:
    _, lines, rest = split(error_response(status, "Some message", DEFAULTS))
    assert lines[-2] == b"content-length: %d" % len(rest)
    assert rest == b"Some message\n"


def test_app_server_and_date_both_replace_defaults(proto: HTTP1) -> None:
    defaults = make_defaults(b"server: squall\r\n", b"date: X\r\n", b"x-extra: 1\r\n")
    headers = [(b"date", b"D"), (b"server", b"S")]
    _, lines, _ = split(respond(proto, 200, headers, b"", defaults=defaults))
    assert lines == [b"date: D", b"server: S", b"x-extra: 1", b"content-length: 0"]
