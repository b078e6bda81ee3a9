from __future__ import annotations

import httpx


async def hello(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-a", b"1")]})
    await send({"type": "http.response.body", "body": b"hi"})


def test_hello(serve, http_impl):
    srv = serve(hello, http=http_impl)
    r = httpx.get(srv.url + "/")
    assert r.status_code == 200
    assert r.text == "hi"
    assert r.headers["server"] == "squall"
    assert r.headers["x-a"] == "1"


def test_pipelined(serve, http_impl):
    srv = serve(hello, http=http_impl)
    c = srv.client()
    c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
    one = c.response()
    two = c.response()
    assert one.startswith(b"HTTP/1.1 200") and one.endswith(b"hi")
    assert two.startswith(b"HTTP/1.1 200") and two.endswith(b"hi")
