"""HTTP/1 semantics over real sockets: persistence, pipelining, bodies, framing."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import socket
import threading

import httpx
import pytest

from tests.integration.helpers import Gate, parse_response, request, wait_until

pytestmark = pytest.mark.usefixtures("fast_tick")  # in-thread servers stop quickly


async def read_body(receive) -> tuple[bytes, int]:
    """The whole request body and the number of http.request messages."""
    chunks = []
    count = 0
    while True:
        message = await receive()
        assert message["type"] == "http.request", message
        count += 1
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), count


async def echo(scope, receive, send):
    """Echoes method, path, the client port and the body."""
    body, _ = await read_body(receive)
    info = {
        "method": scope["method"],
        "path": scope["path"],
        "client_port": scope["client"][1],
        "http_version": scope["http_version"],
    }
    payload = json.dumps(info).encode() + b"\n" + body
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/octet-stream")],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def split_echo(resp_body: bytes) -> tuple[dict, bytes]:
    line, _, body = resp_body.partition(b"\n")
    return json.loads(line), body


# -- persistent connections ----------------------------------------------------


def test_keep_alive_reuses_connection(serve, http_impl):
    srv = serve(echo, http=http_impl)
    c = srv.client()
    ports = []
    for i in range(3):
        c.send(request("GET", f"/r{i}"))
        resp = parse_response(c.response())
        assert resp.status == 200
        assert resp.header("connection") is None
        info, _ = split_echo(resp.body)
        assert info["path"] == f"/r{i}"
        ports.append(info["client_port"])
    assert ports == [c.sock.getsockname()[1]] * 3
    assert not c.is_closed(timeout=0.05)


def test_httpx_client_reuses_connection(serve, http_impl):
    srv = serve(echo, http=http_impl)
    with httpx.Client(base_url=srv.url) as client:
        ports = {split_echo(client.get(f"/{i}").content)[0]["client_port"] for i in range(5)}
    assert len(ports) == 1
    assert srv.server.state.total_requests == 5


def test_http10_without_keep_alive_is_closed(serve, http_impl):
    srv = serve(echo, http=http_impl)
    c = srv.client()
    c.send(request("GET", "/old", version="1.0", host=None))
    raw = c.read_until_closed()
    resp = parse_response(raw)
    assert resp.status == 200
    assert resp.header("connection") == "close"
    info, body = split_echo(resp.body)
    assert info["http_version"] == "1.0"
    assert body == b""


def test_http10_keep_alive_stays_open(serve, http_impl):
    srv = serve(echo, http=http_impl)
    c = srv.client()
    for i in range(2):
        c.send(request("GET", f"/{i}", version="1.0", headers=[("Connection", "keep-alive")]))
        resp = parse_response(c.response())
        assert resp.status == 200
        assert resp.header("connection") == "keep-alive"
        assert split_echo(resp.body)[0]["path"] == f"/{i}"
    assert not c.is_closed(timeout=0.05)
    # a plain HTTP/1.0 request on the same connection ends it
    c.send(request("GET", "/last", version="1.0"))
    resp = parse_response(c.response())
    assert resp.header("connection") == "close"
    assert c.is_closed()


def test_requests_after_connection_close_are_not_answered(serve, http_impl):
    paths = []

    async def app(scope, receive, send):
        paths.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    srv = serve(app, http=http_impl)
    c = srv.client()
    c.send(request("GET", "/a", headers=[("Connection", "close")]) + request("GET", "/b"))
    raw = c.read_until_closed()
    assert raw.count(b"HTTP/1.1 ") == 1
    assert parse_response(raw).body == b"/a"
    srv.stop()
    assert paths == ["/a"]


def test_app_connection_close_header_closes(serve, http_impl):
    async def app(scope, receive, send):
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"Connection", b"close")]}
        )
        await send({"type": "http.response.body", "body": b"bye"})

    srv = serve(app, http=http_impl)
    c = srv.client()
    c.send(request() + request())
    raw = c.read_until_closed()
    assert raw.count(b"HTTP/1.1 ") == 1
    resp = parse_response(raw)
    assert resp.all("connection") == ["close"]
    assert resp.body == b"bye"


def test_unread_request_body_does_not_become_a_request(serve, http_impl):
    """An app that ignores the body: the body must not be parsed as the next request."""
    paths = []

    async def app(scope, receive, send):
        paths.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    srv = serve(app, http=http_impl)
    smuggled = request("GET", "/smuggled")
    for headers, body in (
        ([], smuggled),
        ([("Transfer-Encoding", "chunked")], b"%x\r\n%b\r\n0\r\n\r\n" % (len(smuggled), smuggled)),
    ):
        c = srv.client()
        c.send(request("POST", "/upload", headers=headers, body=body) + request("GET", "/next"))
        first = parse_response(c.response())
        assert first.body == b"/upload"
        rest = c.read_until_closed() if first.header("connection") == "close" else c.response()
        if rest:
            assert parse_response(rest).body == b"/next"
        c.close()
    assert "/smuggled" not in paths


def test_connection_close_on_http11(serve, http_impl):
    srv = serve(echo, http=http_impl)
    c = srv.client()
    c.send(request("GET", "/bye", headers=[("Connection", "close")]))
    raw = c.read_until_closed()
    resp = parse_response(raw)
    assert resp.status == 200
    assert resp.header("connection") == "close"
    assert resp.complete
    assert split_echo(resp.body)[0]["path"] == "/bye"


async def streaming_no_length(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for part in (b"one,", b"two,", b"three"):
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


@pytest.mark.parametrize("keep_alive", [False, True])
def test_http10_streamed_response_is_close_delimited(serve, http_impl, keep_alive):
    srv = serve(streaming_no_length, http=http_impl)
    c = srv.client()
    headers = [("Connection", "keep-alive")] if keep_alive else []
    c.send(request("GET", "/", version="1.0", headers=headers))
    raw = c.read_until_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head.lower()
    assert b"content-length" not in head.lower()
    assert b"connection: close" in head.lower()
    assert body == b"one,two,three"


# -- pipelining -------------------------------------------------------------------


def test_pipelined_requests_answered_in_order(serve, http_impl):
    srv = serve(echo, http=http_impl)
    c = srv.client()
    reqs = [
        request("GET", "/first"),
        request("POST", "/second", body=b"body-two"),
        request("PUT", "/third", body=b"x" * 5000),
        request(
            "POST",
            "/fourth",
            headers=[("Transfer-Encoding", "chunked")],
            body=b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        ),
        request("GET", "/fifth"),
    ]
    c.send(b"".join(reqs))
    expected = [
        ("GET", "/first", b""),
        ("POST", "/second", b"body-two"),
        ("PUT", "/third", b"x" * 5000),
        ("POST", "/fourth", b"abcde"),
        ("GET", "/fifth", b""),
    ]
    for method, path, body in expected:
        resp = parse_response(c.response())
        assert resp.status == 200
        info, got = split_echo(resp.body)
        assert (info["method"], info["path"], got) == (method, path, body)
    assert not c.is_closed(timeout=0.05)


def test_many_pipelined_requests_in_one_write(serve, http_impl):
    srv = serve(echo, http=http_impl)
    c = srv.client()
    c.send(b"".join(request("POST", f"/{i}", body=b"%d" % i) for i in range(300)))
    for i in range(300):
        info, body = split_echo(parse_response(c.response()).body)
        assert (info["path"], body) == (f"/{i}", b"%d" % i)


def test_many_concurrent_connections(serve, http_impl):
    srv = serve(echo, http=http_impl)

    def client(i):
        with httpx.Client(base_url=srv.url) as session:
            return [split_echo(session.post(f"/{i}", content=b"x" * i).content) for _ in range(3)]

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        results = list(pool.map(client, range(64)))
    for i, answers in enumerate(results):
        assert [(info["path"], body) for info, body in answers] == [(f"/{i}", b"x" * i)] * 3
    assert srv.server.state.total_requests == 64 * 3


def test_pipelined_requests_with_slow_first_response(serve, http_impl):
    """The second request waits for the first response, even if it is ready first."""
    gate = Gate()
    entered = threading.Event()
    order = []

    async def app(scope, receive, send):
        await read_body(receive)
        if scope["path"] == "/slow":
            entered.set()
            await gate.wait()
        order.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    srv = serve(app, http=http_impl, timeout_graceful_shutdown=1)
    c = srv.client()
    c.send(request("GET", "/slow") + request("POST", "/fast", body=b"abc"))
    assert entered.wait(5)
    gate.open()
    assert parse_response(c.response()).body == b"/slow"
    assert parse_response(c.response()).body == b"/fast"
    assert order == ["/slow", "/fast"]


# -- request bodies ---------------------------------------------------------------


def test_content_length_body(serve, http_impl):
    srv = serve(echo, http=http_impl)
    body = bytes(range(256)) * 40
    r = httpx.post(srv.url + "/upload", content=body)
    assert r.status_code == 200
    assert split_echo(r.content)[1] == body


def test_chunked_body_multi_chunk(serve, http_impl):
    srv = serve(echo, http=http_impl)
    c = srv.client()
    chunks = [b"Hello", b", ", b"\r\nchunked\r\n", b"x" * 3000, b"\x00\xff end"]
    wire = b"".join(b"%x\r\n%b\r\n" % (len(ch), ch) for ch in chunks) + b"0\r\n\r\n"
    head = request("POST", "/chunks", headers=[("Transfer-Encoding", "chunked")])
    # in several writes, cut in awkward places
    data = head + wire
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for i in range(0, len(data), 777):
        c.send(data[i : i + 777])
    resp = parse_response(c.response())
    assert resp.status == 200
    assert split_echo(resp.body)[1] == b"".join(chunks)


def test_chunked_body_with_extensions_and_trailers(serve, http_impl):
    srv = serve(echo, http=http_impl)
    c = srv.client()
    wire = b"4;name=value\r\nwiki\r\n5\r\npedia\r\n0\r\nX-Trailer: yes\r\n\r\n"
    c.send(request("POST", "/", headers=[("Transfer-Encoding", "chunked")]) + wire)
    resp = parse_response(c.response())
    assert resp.status == 200
    assert split_echo(resp.body)[1] == b"wikipedia"
    # the connection is still usable afterwards
    c.send(request("GET", "/after"))
    assert split_echo(parse_response(c.response()).body)[0]["path"] == "/after"


def test_large_body_content_length(serve, http_impl):
    received = {}

    async def app(scope, receive, send):
        body, count = await read_body(receive)
        received["count"] = count
        digest = hashlib.sha256(body).hexdigest().encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"%d %s" % (len(body), digest)})

    srv = serve(app, http=http_impl)
    body = (b"0123456789abcdef" * 65536)[: 1024 * 1024 + 7]
    r = httpx.post(srv.url + "/", content=body)
    assert r.content == b"%d %s" % (len(body), hashlib.sha256(body).hexdigest().encode())
    assert received["count"] >= 1


def test_large_body_chunked(serve, http_impl):
    srv = serve(echo, http=http_impl)
    body = bytes(i % 251 for i in range(1024 * 1024))

    def gen():
        for i in range(0, len(body), 100_000):
            yield body[i : i + 100_000]

    r = httpx.post(srv.url + "/", content=gen())  # a generator is sent chunked
    assert r.status_code == 200
    assert split_echo(r.content)[1] == body


# -- Expect: 100-continue -----------------------------------------------------------


def test_expect_100_continue_sent_on_first_receive(serve, http_impl):
    entered = threading.Event()
    gate = Gate()

    async def app(scope, receive, send):
        entered.set()
        await gate.wait()
        body, _ = await read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"got " + body})

    srv = serve(app, http=http_impl, timeout_graceful_shutdown=1)
    c = srv.client()
    c.send(request("POST", "/", headers=[("Expect", "100-continue"), ("Content-Length", "5")]))
    assert entered.wait(5)
    # The app runs but has not called receive(): nothing may have been sent.
    c.sock.setblocking(False)
    try:
        early = c.sock.recv(100)
    except BlockingIOError:
        early = b""
    c.sock.setblocking(True)
    c.sock.settimeout(5)
    assert early == b""
    gate.open()
    while b"\r\n\r\n" not in c.buf:
        assert c._fill()
    assert c.buf.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    c.buf = c.buf[len(b"HTTP/1.1 100 Continue\r\n\r\n") :]
    c.send(b"hello")
    resp = parse_response(c.response())
    assert resp.status == 200
    assert resp.body == b"got hello"


def test_expect_100_continue_not_sent_if_app_does_not_read(serve, http_impl):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 413, "headers": []})
        await send({"type": "http.response.body", "body": b"too big"})

    srv = serve(app, http=http_impl)
    c = srv.client()
    c.send(request("POST", "/", headers=[("Expect", "100-continue"), ("Content-Length", "99")]))
    raw = c.read_until_closed()  # the unread body means the connection ends
    assert raw.startswith(b"HTTP/1.1 413 ")
    assert b"100 Continue" not in raw
    assert parse_response(raw).body == b"too big"


def test_expect_100_continue_not_sent_after_response_started(serve, http_impl):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        body, _ = await read_body(receive)  # must not put a 100 inside the response
        await send({"type": "http.response.body", "body": b"-" + body})

    srv = serve(app, http=http_impl, timeout_graceful_shutdown=1)
    c = srv.client()
    c.send(request("POST", "/", headers=[("Expect", "100-continue"), ("Content-Length", "3")]))
    while b"partial" not in c.buf:
        assert c._fill(), c.buf
    c.send(b"end")
    raw = c.response()
    assert raw.startswith(b"HTTP/1.1 200 ")
    assert b"100 Continue" not in raw
    assert parse_response(raw).body == b"partial-end"


# -- HEAD -------------------------------------------------------------------------


async def hello_with_length(scope, receive, send):
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"11")],
        }
    )
    await send({"type": "http.response.body", "body": b"hello world"})


def test_head_has_no_body(serve, http_impl):
    srv = serve(hello_with_length, http=http_impl)
    c = srv.client()
    c.send(request("HEAD", "/") + request("GET", "/"))
    head = c.head_only()
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"content-length: 11\r\n" in head.lower()
    # the next response follows the head directly: no body bytes in between
    nxt = c.response()
    assert nxt.startswith(b"HTTP/1.1 200 ")
    assert parse_response(nxt).body == b"hello world"


def test_head_with_declared_length_and_empty_body(serve, http_impl):
    """What frameworks do for HEAD: the GET's content-length, no body bytes."""

    async def app(scope, receive, send):
        body = b"" if scope["method"] == "HEAD" else b"hello world"
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"11")]}
        )
        await send({"type": "http.response.body", "body": body})

    srv = serve(app, http=http_impl)
    c = srv.client()
    for _ in range(2):
        c.send(request("HEAD", "/"))
        head = c.head_only()
        assert head.startswith(b"HTTP/1.1 200 ")
        assert b"content-length: 11\r\n" in head.lower()
    c.send(request("GET", "/"))
    assert parse_response(c.response()).body == b"hello world"
    assert srv.server.state.total_requests == 3


def test_head_with_httpx(serve, http_impl):
    srv = serve(hello_with_length, http=http_impl)
    with httpx.Client(base_url=srv.url) as client:
        r = client.head("/")
        assert r.status_code == 200
        assert r.headers["content-length"] == "11"
        assert r.content == b""
        assert client.get("/").content == b"hello world"


def test_head_streamed_response_has_no_body(serve, http_impl):
    srv = serve(streaming_no_length, http=http_impl)
    c = srv.client()
    c.send(request("HEAD", "/") + request("GET", "/"))
    head = c.head_only()
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"transfer-encoding" not in head.lower()
    nxt = parse_response(c.response())
    assert nxt.body == b"one,two,three"


# -- response framing ----------------------------------------------------------------


def test_streamed_response_is_chunked(serve, http_impl):
    srv = serve(streaming_no_length, http=http_impl)
    c = srv.client()
    c.send(request())
    raw = c.response()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    assert b"content-length" not in head.lower()
    assert body == b"4\r\none,\r\n4\r\ntwo,\r\n5\r\nthree\r\n0\r\n\r\n"
    r = httpx.get(srv.url)
    assert r.content == b"one,two,three"


def test_streamed_chunk_is_sent_before_the_app_continues(serve, http_impl):
    """A chunk sent with more_body=True reaches the client while the app waits (SSE)."""
    gate = Gate()

    async def app(scope, receive, send):
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        await send({"type": "http.response.body", "body": b"data: first\n\n", "more_body": True})
        await gate.wait()
        await send({"type": "http.response.body", "body": b"data: second\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    srv = serve(app, http=http_impl, timeout_graceful_shutdown=1)
    c = srv.client()
    c.send(request())
    while b"data: first" not in c.buf:
        assert c._fill(), c.buf
    assert not gate.is_open
    assert b"second" not in c.buf
    gate.open()
    resp = parse_response(c.response())
    assert resp.body == b"data: first\n\ndata: second\n\n"
    assert resp.complete


def test_pipelined_streamed_responses_stay_in_order(serve, http_impl):
    async def app(scope, receive, send):
        name = scope["path"][1:].encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(3):
            part = b"%s-%d;" % (name, i)
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b"end-" + name})

    srv = serve(app, http=http_impl)
    c = srv.client()
    names = ["a", "b", "c", "d"]
    c.send(b"".join(request("GET", "/" + n) for n in names))
    for n in names:
        resp = parse_response(c.response())
        assert resp.complete
        assert resp.body == f"{n}-0;{n}-1;{n}-2;end-{n}".encode()


def test_single_final_body_gets_content_length(serve, http_impl):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"exactly 17 bytes!"})

    srv = serve(app, http=http_impl)
    c = srv.client()
    c.send(request())
    resp = parse_response(c.response())
    assert resp.header("content-length") == "17"
    assert resp.header("transfer-encoding") is None
    assert resp.body == b"exactly 17 bytes!"


def test_empty_final_body_gets_zero_content_length(serve, http_impl):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body"})

    srv = serve(app, http=http_impl)
    c = srv.client()
    c.send(request() + request())
    for _ in range(2):
        resp = parse_response(c.response())
        assert resp.status == 200
        assert resp.header("content-length") == "0"
        assert resp.body == b""


def test_204_and_304_have_no_body(serve, http_impl):
    async def app(scope, receive, send):
        status = int(scope["path"][1:])
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"should not be sent"})

    srv = serve(app, http=http_impl)
    c = srv.client()
    c.send(request("GET", "/204") + request("GET", "/304") + request("GET", "/200"))
    for status in (204, 304):
        head = c.head_only()
        assert head.startswith(b"HTTP/1.1 %d " % status)
        assert b"transfer-encoding" not in head.lower()
    last = parse_response(c.response())
    assert last.status == 200
    assert last.body == b"should not be sent"


# -- WebSocket and other upgrades ------------------------------------------------------


WS_UPGRADE = [
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ("Sec-WebSocket-Version", "13"),
]


def test_websocket_upgrade_to_http_only_app_gets_500(serve, http_impl):
    called = []

    async def app(scope, receive, send):
        called.append(scope["type"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"app"})

    srv = serve(app, http=http_impl)
    c = srv.client()
    c.send(request("GET", "/ws", headers=WS_UPGRADE))
    resp = parse_response(c.read_until_closed())
    assert resp.status == 500
    assert resp.header("connection") == "close"
    assert called == ["websocket"]


def test_websocket_upgrade_with_ws_none_is_plain_http(serve, http_impl):
    called = []

    async def app(scope, receive, send):
        called.append(scope["type"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"app"})

    srv = serve(app, http=http_impl, ws="none")
    c = srv.client()
    c.send(request("GET", "/ws", headers=WS_UPGRADE))
    resp = parse_response(c.response())
    assert resp.status == 200
    assert called == ["http"]


def test_h2c_upgrade_served_as_http11_when_http2_is_off(serve, http_impl):
    srv = serve(echo, http=http_impl, http2=False)
    c = srv.client()
    c.send(
        request(
            "GET",
            "/h2c",
            headers=[
                ("Upgrade", "h2c"),
                ("Connection", "Upgrade, HTTP2-Settings"),
                ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA"),
            ],
        )
    )
    resp = parse_response(c.response())
    assert resp.status == 200
    assert split_echo(resp.body)[0]["path"] == "/h2c"
    # still an HTTP/1.1 connection
    c.send(request("GET", "/again"))
    resp = parse_response(c.response())
    assert resp.status == 200
    assert split_echo(resp.body)[0]["path"] == "/again"


# -- limits -------------------------------------------------------------------------


def test_limit_concurrency_answers_503(serve, http_impl):
    gate = Gate()
    entered = threading.Event()

    async def app(scope, receive, send):
        entered.set()
        await gate.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    srv = serve(app, http=http_impl, limit_concurrency=1, timeout_graceful_shutdown=1)
    busy = srv.client()
    busy.send(request())
    assert entered.wait(5)
    extra = srv.client()
    extra.send(request())
    raw = extra.read_until_closed()
    resp = parse_response(raw)
    assert resp.status == 503
    assert resp.header("connection") == "close"
    gate.open()
    assert parse_response(busy.response()).status == 200
    busy.close()
    # capacity is back once the first connection has gone
    wait_until(lambda: len(srv.server.state.connections) == 0, what="connections closed")
    assert httpx.get(srv.url).status_code == 200


def test_keep_alive_timeout_closes_idle_connection(serve, http_impl):
    srv = serve(echo, http=http_impl, timeout_keep_alive=0.3)
    c = srv.client()
    c.send(request())
    assert parse_response(c.response()).status == 200
    assert c.is_closed(timeout=5)
    assert c.buf == b""


def test_keep_alive_timeout_spares_a_request_in_progress(serve, http_impl):
    gate = Gate()
    entered = threading.Event()

    async def app(scope, receive, send):
        entered.set()
        await gate.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"late but fine"})

    srv = serve(app, http=http_impl, timeout_keep_alive=0.3, timeout_graceful_shutdown=1)
    busy = srv.client()
    busy.send(request())
    assert entered.wait(5)
    # an idle connection opened after the request started times out first
    idle = srv.client()
    assert idle.is_closed(timeout=5)
    assert not busy.is_closed(timeout=0.01)
    gate.open()
    resp = parse_response(busy.response())
    assert resp.body == b"late but fine"
    assert resp.header("connection") is None
    # and after the response the keep-alive timeout applies again
    assert busy.is_closed(timeout=5)


def test_keep_alive_timeout_before_first_request(serve, http_impl):
    srv = serve(echo, http=http_impl, timeout_keep_alive=0.3)
    c = srv.client()
    assert c.is_closed(timeout=5)
    assert c.buf == b""
