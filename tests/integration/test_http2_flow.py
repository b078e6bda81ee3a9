"""HTTP/2 streams through the ASGI cycle: flow control, bodies, errors, fields.

The client is the ``h2`` library's state machine over a real socket
(:class:`~tests.integration.http2_client.H2Client`), so every frame the server
sends is also checked by an independent implementation.
"""

from __future__ import annotations

import hashlib
import random
import threading

import pytest

from tests.integration.helpers import Gate, wait_until
from tests.integration.http2_client import (
    INITIAL_WINDOW_SIZE,
    INTERNAL_ERROR,
    NO_ERROR,
    H2Client,
    one,
    status_of,
    values,
)

pytestmark = pytest.mark.usefixtures("fast_tick")  # in-thread servers stop quickly

MiB = 1 << 20
CONNECTION_SPECIFIC = {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding"}


async def read_body(receive) -> tuple[bytes, list[dict]]:
    messages = []
    body = bytearray()
    while True:
        message = await receive()
        messages.append(message)
        body += message.get("body", b"")
        if not message.get("more_body"):
            return bytes(body), messages


async def answer(send, status: int = 200, body: bytes = b"", headers=()) -> None:
    await send({"type": "http.response.start", "status": status, "headers": list(headers)})
    await send({"type": "http.response.body", "body": body})


def digest(data: bytes) -> bytes:
    return b"%d %s" % (len(data), hashlib.sha256(data).hexdigest().encode())


# -- scope -----------------------------------------------------------------------------


def test_scope_of_an_h2_stream(serve):
    scopes: list[dict] = []

    async def app(scope, receive, send):
        scopes.append(scope)
        await answer(send, body=b"ok")

    srv = serve(app)
    client = H2Client(srv.port)
    result = client.get("/a%20b/c?x=1&y=2", headers=[("x-first", "1"), ("accept", "*/*")])
    assert result.status == 200
    scope = scopes[0]
    assert scope["type"] == "http"
    assert scope["http_version"] == "2"
    assert scope["scheme"] == "http"
    assert scope["method"] == "GET"
    assert scope["path"] == "/a b/c"
    assert scope["raw_path"] == b"/a%20b/c"
    assert scope["query_string"] == b"x=1&y=2"
    assert scope["root_path"] == ""
    assert scope["server"] == ("127.0.0.1", srv.port)
    assert scope["client"] == client.sock.getsockname()
    assert scope["headers"][0] == (b"host", b"127.0.0.1")  # from :authority
    assert [n for n, _ in scope["headers"] if n.startswith(b":")] == []  # no pseudo-fields
    assert (b"x-first", b"1") in scope["headers"]


def test_authority_becomes_the_first_host_header(serve):
    scopes: list[dict] = []

    async def app(scope, receive, send):
        scopes.append(scope)
        await answer(send)

    srv = serve(app)
    client = H2Client(srv.port)
    client.get("/", authority="example.com:8443", headers=[("x-a", "1"), ("user-agent", "t")])
    headers = scopes[0]["headers"]
    assert headers[0] == (b"host", b"example.com:8443")
    assert values(headers, b"host") == [b"example.com:8443"]
    assert headers[1:] == [(b"x-a", b"1"), (b"user-agent", b"t")]


def test_cookie_fields_are_joined(serve):
    scopes: list[dict] = []

    async def app(scope, receive, send):
        scopes.append(scope)
        await answer(send)

    srv = serve(app)
    client = H2Client(srv.port)
    cookies = [("cookie", "a=1"), ("x-mid", "m"), ("cookie", "b=2"), ("cookie", "c=3")]
    assert client.get("/", headers=cookies).status == 200
    headers = scopes[0]["headers"]
    assert values(headers, b"cookie") == [b"a=1; b=2; c=3"]
    assert values(headers, b"x-mid") == [b"m"]


# -- flow control --------------------------------------------------------------------------


def test_upload_larger_than_the_stream_window(serve):
    gate = Gate()
    received: list[bytes] = []

    async def app(scope, receive, send):
        if scope["path"] == "/up":
            await gate.wait()  # read nothing until the test says so
        body, _ = await read_body(receive)
        received.append(body)
        await answer(send, body=digest(body))

    srv = serve(app)
    client = H2Client(srv.port)
    body = random.Random(7).randbytes(2 * MiB + 512 * 1024)
    sid = client.request("/up", method="POST", end_stream=False)
    client.wait(lambda: client.conn.outbound_flow_control_window >= MiB, what="connection window")
    assert client.conn.local_flow_control_window(sid) == MiB  # SETTINGS_INITIAL_WINDOW_SIZE
    client.send_body(sid, body[:MiB], end_stream=False)  # exactly the stream window
    client.ping()
    assert client.conn.local_flow_control_window(sid) == 0
    # the app has read nothing: no WINDOW_UPDATE for the stream ...
    assert [inc for s, inc in client.window_updates if s == sid] == []
    # ... but the connection window was given back: other streams still flow
    assert sum(inc for s, inc in client.window_updates if s == 0) >= MiB // 2
    other = client.get("/other", method="POST", body=b"x" * 70_000)
    assert bytes(other.data) == digest(b"x" * 70_000)
    assert not client.streams[sid].done

    gate.open()
    client.send_body(sid, body[MiB:])  # waits for the WINDOW_UPDATEs as the app reads
    result = client.response(sid)
    assert result.status == 200
    assert bytes(result.data) == digest(body)
    assert received[-1] == body
    stream_updates = [inc for s, inc in client.window_updates if s == sid]
    assert len(stream_updates) >= 2
    assert sum(stream_updates) >= len(body) - MiB


def test_download_larger_than_the_client_window(serve):
    chunk, chunks = 16384, 16
    expected = random.Random(3).randbytes(chunk * chunks)
    progress = [0]
    finished = threading.Event()

    async def app(scope, receive, send):
        headers = [(b"content-length", b"%d" % len(expected))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for i in range(chunks):
            piece = expected[i * chunk : (i + 1) * chunk]
            await send({"type": "http.response.body", "body": piece, "more_body": i < chunks - 1})
            progress[0] = i + 1
        finished.set()

    srv = serve(app)
    client = H2Client(srv.port, settings={INITIAL_WINDOW_SIZE: 16384})
    client.auto_ack = False  # the window opens only when the test says so
    sid = client.request("/big")
    stream = client.streams[sid]
    client.wait(lambda: len(stream.data) >= 16384, what="the first window of data")
    client.ping()  # whatever the server sent beyond the window would be here by now
    assert len(stream.data) == 16384  # (h2 also fails on a flow-control violation)
    assert not stream.done
    assert not finished.is_set()
    assert progress[0] < chunks  # the app waits in send(): back-pressure

    client.conn.increment_flow_control_window(len(expected), stream_id=sid)
    client.conn.increment_flow_control_window(len(expected))
    client.flush()
    result = client.response(sid)
    assert result.ended and result.reset is None
    assert result.status == 200
    assert bytes(result.data) == expected
    assert finished.wait(5)


# -- bodies the response must not have, and content-length ---------------------------------


@pytest.mark.parametrize("streamed", [False, True], ids=["one-message", "streamed"])
def test_head_has_headers_and_no_data(serve, streamed):
    async def app(scope, receive, send):
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"11")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if streamed:
            await send({"type": "http.response.body", "body": b"hello", "more_body": True})
            await send({"type": "http.response.body", "body": b" world"})
        else:
            await send({"type": "http.response.body", "body": b"hello world"})

    srv = serve(app)
    client = H2Client(srv.port)
    result = client.get("/", method="HEAD")
    assert result.status == 200
    assert one(result.headers, b"content-length") == b"11"
    assert result.order == ["headers", "end"]  # END_STREAM on HEADERS, no DATA frame
    assert result.data_frames == 0
    assert client.get("/").data == b"hello world"  # the same app, with GET


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses(serve, status):
    async def app(scope, receive, send):
        await answer(send, status, body=b"must not be sent", headers=[(b"etag", b'"v1"')])

    srv = serve(app)
    client = H2Client(srv.port)
    result = client.get("/")
    assert result.status == status
    assert one(result.headers, b"etag") == b'"v1"'
    assert result.order == ["headers", "end"]
    assert result.data == b""
    assert client.get("/again").status == status  # the connection is fine


@pytest.mark.parametrize(
    ("headers", "parts", "content_length"),
    [
        ([(b"content-length", b"5")], [b"he", b"llo"], b"5"),  # declared by the app
        ([], [b"hello"], b"5"),  # one message: the server adds it
        ([], [b"he", b"l", b"lo"], None),  # streamed, undeclared: no length at all
    ],
    ids=["declared", "one-message", "streamed"],
)
def test_response_content_length(serve, headers, parts, content_length):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for i, part in enumerate(parts):
            await send(
                {"type": "http.response.body", "body": part, "more_body": i < len(parts) - 1}
            )

    srv = serve(app)
    result = H2Client(srv.port).get("/")
    assert result.status == 200
    assert values(result.headers, b"content-length") == ([content_length] if content_length else [])
    assert values(result.headers, b"transfer-encoding") == []
    assert bytes(result.data) == b"hello"
    assert result.ended and result.reset is None


@pytest.mark.parametrize(
    ("declared", "parts"),
    [(100, [b"x" * 10, b"y" * 10]), (5, [b"abc", b"def"])],
    ids=["shorter", "longer"],
)
def test_body_not_matching_content_length_resets_the_stream(serve, declared, parts):
    async def app(scope, receive, send):
        if scope["path"] == "/ok":
            await answer(send, body=b"fine")
            return
        headers = [(b"content-length", b"%d" % declared)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": parts[0], "more_body": True})
        await send({"type": "http.response.body", "body": parts[1]})

    srv = serve(app)
    client = H2Client(srv.port)
    bad = client.get("/bad")
    assert bad.status == 200
    assert one(bad.headers, b"content-length") == b"%d" % declared
    assert bytes(bad.data) == parts[0]  # what fit went out; then the stream was reset
    assert bad.reset == INTERNAL_ERROR
    assert not bad.ended
    ok = client.get("/ok")  # the same connection still serves
    assert ok.status == 200
    assert bytes(ok.data) == b"fine"
    assert client.goaway is None


# -- app errors: one stream only -------------------------------------------------------------


def test_app_error_before_the_response_is_a_500_on_that_stream_only(serve):
    gate = Gate()
    entered = threading.Event()

    async def app(scope, receive, send):
        if scope["path"] == "/slow":
            entered.set()
            await gate.wait()
            await answer(send, body=b"slow done")
        else:
            raise RuntimeError("broken before the response")

    srv = serve(app)
    client = H2Client(srv.port)
    slow = client.request("/slow")
    wait_until(entered.is_set, what="the slow app")
    failed = client.get("/fail")
    assert failed.status == 500
    assert bytes(failed.data) == b"Internal Server Error\n"
    assert failed.ended and failed.reset is None
    assert not client.streams[slow].done  # the other stream is untouched
    gate.open()
    result = client.response(slow)
    assert result.status == 200
    assert bytes(result.data) == b"slow done"
    assert client.goaway is None


def test_app_error_mid_stream_resets_that_stream_only(serve):
    gate = Gate()
    entered = threading.Event()

    async def app(scope, receive, send):
        if scope["path"] == "/slow":
            entered.set()
            await gate.wait()
            await answer(send, body=b"slow done")
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("broken mid-stream")

    srv = serve(app)
    client = H2Client(srv.port)
    slow = client.request("/slow")
    wait_until(entered.is_set, what="the slow app")
    broken = client.get("/boom")
    assert broken.status == 200
    assert bytes(broken.data) == b"partial"
    assert broken.reset == INTERNAL_ERROR
    assert not broken.ended
    assert not client.streams[slow].done
    gate.open()
    result = client.response(slow)
    assert bytes(result.data) == b"slow done"
    assert result.ended
    assert client.goaway is None


# -- fields -------------------------------------------------------------------------------------


def test_connection_specific_response_headers_are_not_sent(serve):
    async def app(scope, receive, send):
        headers = [
            (b"Connection", b"close"),
            (b"Transfer-Encoding", b"chunked"),
            (b"Keep-Alive", b"timeout=5"),
            (b"Upgrade", b"websocket"),
            (b"Proxy-Connection", b"keep-alive"),
            (b"X-Custom-Name", b"Mixed Value"),
            (b"Content-Type", b"text/plain"),
        ]
        await answer(send, body=b"ok", headers=headers)

    srv = serve(app)
    result = H2Client(srv.port).get("/")
    assert result.status == 200
    names = [n for n, _ in result.headers]
    assert all(n == n.lower() for n in names), names
    assert not CONNECTION_SPECIFIC & set(names)
    assert b"upgrade" not in names
    assert one(result.headers, b"x-custom-name") == b"Mixed Value"  # values keep their case
    assert one(result.headers, b"content-type") == b"text/plain"
    assert bytes(result.data) == b"ok"


@pytest.mark.parametrize("app_server", [None, b"mine"], ids=["default", "app-server"])
def test_server_and_date_headers_once(serve, app_server):
    async def app(scope, receive, send):
        headers = [(b"Server", app_server)] if app_server else []
        await answer(send, body=b"ok", headers=headers)

    srv = serve(app)
    result = H2Client(srv.port).get("/")
    assert values(result.headers, b"server") == [app_server or b"squall"]
    assert len(values(result.headers, b"date")) == 1
    assert one(result.headers, b"date").endswith(b" GMT")


def test_request_trailers_are_accepted(serve):
    seen: list[list[dict]] = []

    async def app(scope, receive, send):
        body, messages = await read_body(receive)
        seen.append(messages)
        await answer(send, body=body)

    srv = serve(app)
    client = H2Client(srv.port)
    sid = client.request(
        "/echo", method="POST", headers=[("te", "trailers")], body=b"part1-", end_stream=False
    )
    client.send_body(sid, b"part2", end_stream=False)
    client.conn.send_headers(sid, [(b"x-checksum", b"abc")], end_stream=True)  # trailers
    client.flush()
    result = client.response(sid)
    assert result.status == 200
    assert bytes(result.data) == b"part1-part2"
    assert seen[0][-1]["more_body"] is False
    assert client.get("/echo").status == 200  # and the connection goes on


def test_expect_100_continue_when_the_app_reads(serve):
    async def app(scope, receive, send):
        body, _ = await read_body(receive)
        await answer(send, body=body.upper())

    srv = serve(app)
    client = H2Client(srv.port)
    sid = client.request(
        "/",
        method="POST",
        headers=[("expect", "100-continue"), ("content-length", "5")],
        end_stream=False,
    )
    stream = client.streams[sid]
    client.wait(lambda: stream.informational, what="100 Continue")
    assert [status_of(h) for h in stream.informational] == [100]
    assert stream.headers is None  # the final response waits for the body
    client.send_body(sid, b"hello")
    result = client.response(sid)
    assert result.order[:2] == ["informational", "headers"]
    assert result.status == 200
    assert bytes(result.data) == b"HELLO"


def test_expect_100_continue_not_sent_when_the_app_does_not_read(serve):
    async def app(scope, receive, send):
        await answer(send, 413, body=b"too big")

    srv = serve(app)
    client = H2Client(srv.port)
    sid = client.request(
        "/",
        method="POST",
        headers=[("expect", "100-continue"), ("content-length", "5")],
        end_stream=False,
    )
    result = client.response(sid)
    assert result.status == 413
    assert result.informational == []
    assert bytes(result.data) == b"too big"
    # the response is complete before the request: the client is asked to stop sending
    client.wait(lambda: result.reset is not None, what="RST_STREAM")
    assert result.reset == NO_ERROR
    assert client.get("/").status == 413  # the connection goes on


# -- the client going away, unread bodies, large heads, settings ---------------------------------


def test_client_reset_is_an_http_disconnect_for_that_stream_only(serve):
    gate = Gate()
    messages: list[dict] = []
    waiting = threading.Event()

    async def app(scope, receive, send):
        if scope["path"] == "/cancelled":
            messages.append(await receive())  # the first part of the body
            waiting.set()
            messages.append(await receive())  # ... then the reset
            return
        await gate.wait()
        await answer(send, body=b"other")

    srv = serve(app)
    client = H2Client(srv.port)
    other = client.request("/other")
    sid = client.request("/cancelled", method="POST", body=b"abc", end_stream=False)
    wait_until(waiting.is_set, what="the first body message")
    client.conn.reset_stream(sid, error_code=8)  # CANCEL
    client.flush()
    wait_until(lambda: len(messages) == 2, what="http.disconnect")
    assert messages == [
        {"type": "http.request", "body": b"abc", "more_body": True},
        {"type": "http.disconnect"},
    ]
    gate.open()
    assert bytes(client.response(other).data) == b"other"
    assert client.goaway is None


def test_unread_upload_does_not_stall_the_connection(serve):
    async def app(scope, receive, send):
        if scope["path"] == "/ignore":
            await answer(send, 413, body=b"no thanks")  # the body is never read
            return
        body, _ = await read_body(receive)
        await answer(send, body=digest(body))

    srv = serve(app)
    client = H2Client(srv.port)
    sid = client.request("/ignore", method="POST", end_stream=False)
    client.wait(lambda: client.conn.local_flow_control_window(sid) >= MiB, what="window")
    client.send_body(sid, b"z" * MiB, end_stream=False)  # a whole stream window, unread
    ignored = client.response(sid)
    assert ignored.status == 413
    client.wait(lambda: ignored.reset is not None, what="RST_STREAM(NO_ERROR)")
    assert ignored.reset == NO_ERROR
    big = random.Random(5).randbytes(3 * MiB)  # needs the connection window back
    result = client.get("/read", method="POST", body=big)
    assert bytes(result.data) == digest(big)


def test_response_head_larger_than_a_frame(serve):
    big = b"v" * 40_000  # more than the 16 KiB frame: HEADERS + CONTINUATION frames

    async def app(scope, receive, send):
        await answer(send, body=b"ok", headers=[(b"x-big", big), (b"x-after", b"1")])

    srv = serve(app)
    client = H2Client(srv.port)
    result = client.get("/")
    assert result.status == 200
    assert one(result.headers, b"x-big") == big
    assert one(result.headers, b"x-after") == b"1"
    assert bytes(result.data) == b"ok"
    assert client.get("/again").status == 200  # the HPACK state is still in step


def test_server_settings_follow_the_config(serve):
    async def app(scope, receive, send):
        await answer(send)

    srv = serve(app, h2_max_concurrent_streams=7, h2_initial_window_size=3 * 65536)
    client = H2Client(srv.port)
    settings = client.conn.remote_settings
    assert settings.max_concurrent_streams == 7
    assert settings.initial_window_size == 3 * 65536
    assert client.conn.outbound_flow_control_window == 3 * 65536  # the connection window too
