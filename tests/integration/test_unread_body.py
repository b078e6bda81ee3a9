"""An app may answer without reading the request body; the connection survives if it can."""

from __future__ import annotations

import pytest

from tests.integration.helpers import parse_response, request

pytestmark = pytest.mark.usefixtures("fast_tick")


async def no_read(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": scope["path"].encode()})


def test_small_unread_body_is_dropped_and_keep_alive_continues(serve, http_impl):
    srv = serve(no_read, http=http_impl)
    c = srv.client()
    c.send(request("POST", "/one", body=b"x" * 1000) + request("GET", "/two"))
    assert parse_response(c.response()).body == b"/one"
    assert parse_response(c.response()).body == b"/two"
    assert not c.is_closed(timeout=0.05)


def test_unread_body_arriving_later_is_dropped(serve, http_impl):
    srv = serve(no_read, http=http_impl)
    c = srv.client()
    head = b"POST /one HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n"
    c.send(head + b"12345")
    assert parse_response(c.response()).body == b"/one"
    c.send(b"67890" + request("GET", "/two"))
    assert parse_response(c.response()).body == b"/two"


def test_large_unread_body_closes_the_connection(serve, http_impl):
    srv = serve(no_read, http=http_impl)
    c = srv.client()
    head = b"POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: 10000000\r\n\r\n"
    c.send(head)
    assert parse_response(c.response()).body == b"/big"
    try:
        for _ in range(40):
            c.send(b"x" * 65536)
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert c.is_closed()
