"""Malformed, oversized and ambiguous requests: refused, closed, others unaffected."""

from __future__ import annotations

import socket
import threading

import pytest

from tests.integration.helpers import parse_response, request

pytestmark = pytest.mark.usefixtures("fast_tick")  # in-thread servers stop quickly


async def ok(scope, receive, send):
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok " + scope["path"].encode()})


def assert_refused(client, status: int) -> bytes:
    """The server answers ``status`` with connection: close, then closes."""
    raw = client.read_until_closed()
    resp = parse_response(raw)
    assert resp.status == status, raw
    assert resp.header("connection") == "close"
    assert resp.complete
    assert client.is_closed()
    return raw


def assert_still_serving(client) -> None:
    client.send(request("GET", "/healthy"))
    resp = parse_response(client.response())
    assert resp.status == 200
    assert resp.body == b"ok /healthy"


LIMITS = {
    "limit_request_line": 1024,
    "limit_request_fields": 10,
    "limit_request_header_size": 2048,
}


def _fields(n: int) -> bytes:
    return b"".join(b"X-Field-%d: %d\r\n" % (i, i) for i in range(n))


BAD_REQUESTS = {
    "malformed_request_line": (b"NOT A VALID REQUEST LINE\r\n\r\n", 400),
    "missing_version": (b"GET /\r\nHost: a\r\n\r\n", 400),
    "garbage_bytes": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
    "request_line_too_long": (
        b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\nHost: a\r\n\r\n",
        414,
    ),
    "too_many_fields": (b"GET / HTTP/1.1\r\nHost: a\r\n" + _fields(11) + b"\r\n", 431),
    "header_section_too_large": (
        b"GET / HTTP/1.1\r\nHost: a\r\n"
        + b"".join(b"X-Big-%d: %s\r\n" % (i, b"v" * 600) for i in range(5))
        + b"\r\n",
        431,
    ),
    "missing_host_http11": (b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400),
    "two_hosts": (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    "transfer_encoding_gzip": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
        501,
    ),
    "content_length_and_transfer_encoding": (
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    "transfer_encoding_and_content_length": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    "two_content_lengths": (
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        400,
    ),
    "content_length_plus": (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello", 400),
    "content_length_hex": (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\nhello", 400),
    "content_length_abc": (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\nhello", 400),
    "space_before_colon": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    "nul_in_header_value": (b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x00b\r\n\r\n", 400),
    "space_in_header_name": (b"GET / HTTP/1.1\r\nHost: a\r\nX A: 1\r\n\r\n", 400),
    "chunked_on_http10": (
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    "content_length_negative": (
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\nhello",
        400,
    ),
}


def test_bad_requests_refused(serve, http_impl):
    """Each bad request gets its status and a close; another connection is unaffected.

    One server for the whole table (each case on a fresh connection) keeps this fast.
    """
    srv = serve(ok, http=http_impl, **LIMITS)
    other = srv.client()  # a second connection, open before, during and after
    assert_still_serving(other)
    for served, (case, (data, status)) in enumerate(BAD_REQUESTS.items(), start=2):
        bad = srv.client()
        bad.send(data)
        try:
            assert_refused(bad, status)
        except AssertionError as exc:
            raise AssertionError(f"case {case!r}: {exc}") from exc
        assert_still_serving(other)
        # the refused request never ran the app
        assert srv.server.state.total_requests == served, case


def test_request_line_too_long_in_two_pieces(serve, http_impl):
    srv = serve(ok, http=http_impl, limit_request_line=1024)
    other = srv.client()
    bad = srv.client()
    bad.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    bad.send(b"GET /" + b"a" * 700)
    # A full round trip on another connection makes sure the server has read
    # the first piece on its own before the second one is sent.
    assert_still_serving(other)
    assert not bad.is_closed(timeout=0.05)
    bad.send(b"b" * 700 + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    assert_refused(bad, 414)
    assert_still_serving(other)


def test_request_line_at_limit_is_accepted(serve, http_impl):
    srv = serve(ok, http=http_impl, limit_request_line=1024)
    c = srv.client()
    path = b"/" + b"p" * 900
    c.send(b"GET " + path + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    resp = parse_response(c.response())
    assert resp.status == 200
    assert resp.body == b"ok " + path


def test_fields_at_limit_are_accepted(serve, http_impl):
    srv = serve(ok, http=http_impl, **LIMITS)
    c = srv.client()
    c.send(b"GET / HTTP/1.1\r\nHost: a\r\n" + _fields(9) + b"\r\n")
    assert parse_response(c.response()).status == 200


def test_header_field_too_large(serve, http_impl):
    srv = serve(ok, http=http_impl, limit_request_field_size=512)
    other = srv.client()
    bad = srv.client()
    bad.send(b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: " + b"z" * 600 + b"\r\n\r\n")
    assert_refused(bad, 431)
    assert_still_serving(other)


def test_http10_without_host_is_fine(serve, http_impl):
    srv = serve(ok, http=http_impl)
    c = srv.client()
    c.send(b"GET /old HTTP/1.0\r\n\r\n")
    resp = parse_response(c.read_until_closed())
    assert resp.status == 200
    assert resp.body == b"ok /old"


def test_bad_request_after_good_pipelined_one(serve, http_impl):
    srv = serve(ok, http=http_impl)
    c = srv.client()
    c.send(request("GET", "/good") + b"GET /bad HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
    first = parse_response(c.response())
    assert first.status == 200
    assert first.body == b"ok /good"
    assert first.header("connection") is None
    assert_refused(c, 400)
    assert srv.server.state.total_requests == 1


def test_bad_request_after_two_good_pipelined_ones(serve, http_impl):
    srv = serve(ok, http=http_impl)
    c = srv.client()
    c.send(
        request("GET", "/one")
        + request("POST", "/two", body=b"data")
        + b"GET /three HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"
    )
    assert parse_response(c.response()).body == b"ok /one"
    assert parse_response(c.response()).body == b"ok /two"
    assert_refused(c, 501)


def test_unsupported_http_version(serve, http_impl):
    srv = serve(ok, http=http_impl)
    c = srv.client()
    c.send(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n")
    raw = c.read_until_closed()
    assert parse_response(raw).status in (400, 505)
    assert c.is_closed()


def test_bad_chunked_body_while_app_reads(serve, http_impl):
    """The head is fine, so the app runs; the broken body must end the exchange."""
    seen = []
    done = threading.Event()

    async def app(scope, receive, send):
        while True:
            message = await receive()
            seen.append(message["type"])
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                break
        done.set()
        if message["type"] == "http.request":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"whole body?"})

    srv = serve(app, http=http_impl, timeout_graceful_shutdown=0.5)
    c = srv.client()
    c.send(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
    c.send(b"zz\r\nhello\r\n0\r\n\r\n")
    assert done.wait(5), seen  # the app is told the request is over
    assert seen[-1] == "http.disconnect"
    raw = c.read_until_closed()
    assert b"whole body?" not in raw
    if raw:
        assert parse_response(raw).status == 400
