"""WebSocket sessions (ASGI spec 2.4) through a real server and real clients.

The handshake comes through the HTTP/1 parser, so every test runs over both.
The ``websockets`` sync client plays the well-behaved peer; RawClient is used
where the exact bytes on the wire matter.
"""

from __future__ import annotations

import logging
import re

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.integration.helpers import (
    OP_TEXT,
    PROPAGATE_LOGS,
    WS_ACCEPT,
    assert_still_serving,
    echo_app,
    parse_response,
    read_ws_close,
    read_ws_frame,
    request,
    wait_until,
    ws_client,
    ws_close_frame,
    ws_frame,
    ws_request,
)

pytestmark = pytest.mark.usefixtures("fast_tick")  # in-thread servers stop quickly


# -- the ASGI conversation -----------------------------------------------------------------


def test_echo_text_and_bytes(serve, http_impl):
    srv = serve(echo_app(), http=http_impl)
    with ws_client(srv, compression=None) as ws:
        ws.send("hello")
        assert ws.recv(timeout=5) == "hello"
        ws.send("héllo ☃ \U0001f600")
        assert ws.recv(timeout=5) == "héllo ☃ \U0001f600"
        ws.send(b"\x00\x01\xfe\xff")
        assert ws.recv(timeout=5) == b"\x00\x01\xfe\xff"
        ws.send("")
        assert ws.recv(timeout=5) == ""
        ws.send(b"")
        assert ws.recv(timeout=5) == b""
        big = bytes(range(256)) * 1024  # 256 KiB: a 64-bit length on the wire
        ws.send(big)
        assert ws.recv(timeout=5) == big


def test_messages_the_app_receives(serve, http_impl):
    log: list = []
    srv = serve(echo_app(log), http=http_impl)
    with ws_client(srv) as ws:
        ws.send("text")
        assert ws.recv(timeout=5) == "text"
        ws.send(b"bytes")
        assert ws.recv(timeout=5) == b"bytes"
        ws.close(4001, "client says bye")
    wait_until(lambda: len(log) == 4, what="the disconnect")
    assert log[0] == {"type": "websocket.connect"}
    assert log[1]["type"] == "websocket.receive"
    assert log[1]["text"] == "text"
    assert log[1].get("bytes") is None
    assert log[2]["type"] == "websocket.receive"
    assert log[2]["bytes"] == b"bytes"
    assert log[2].get("text") is None
    assert log[3] == {"type": "websocket.disconnect", "code": 4001, "reason": "client says bye"}


def test_fragmented_message_is_reassembled(serve, http_impl):
    log: list = []
    srv = serve(echo_app(log), http=http_impl)
    c = srv.client()
    c.send(ws_request("/"))
    assert parse_response(c.response()).status == 101
    snowman = "☃".encode()  # split between two fragments
    c.send(
        ws_frame(OP_TEXT, b"ab" + snowman[:1], fin=False)
        + ws_frame(0x9, b"mid-message ping")
        + ws_frame(0x0, snowman[1:], fin=False)
        + ws_frame(0x0, b"cd", fin=True)
    )
    pong = read_ws_frame(c)
    assert (pong.opcode, pong.payload, pong.masked) == (0xA, b"mid-message ping", False)
    echo = read_ws_frame(c)
    assert (echo.fin, echo.opcode, echo.payload) == (True, OP_TEXT, "ab☃cd".encode())
    c.send(ws_close_frame(1000))
    assert read_ws_close(c) == (1000, "")
    assert c.is_closed()
    wait_until(lambda: log[-1]["type"] == "websocket.disconnect")
    assert [m.get("text") for m in log if m["type"] == "websocket.receive"] == ["ab☃cd"]


def test_raw_handshake_response(serve, http_impl):
    srv = serve(echo_app(), http=http_impl)
    c = srv.client()
    c.send(ws_request("/chat"))
    resp = parse_response(c.response())
    assert resp.status == 101
    assert resp.raw_head.startswith(b"HTTP/1.1 101 ")
    assert resp.header("upgrade").lower() == "websocket"
    assert resp.header("connection").lower() == "upgrade"
    assert resp.header("sec-websocket-accept") == WS_ACCEPT
    assert resp.header("sec-websocket-protocol") is None
    assert resp.header("sec-websocket-extensions") is None  # none offered
    assert resp.header("content-length") is None
    assert resp.header("transfer-encoding") is None
    assert resp.header("date") is not None
    assert resp.body == b""
    c.send(ws_frame(OP_TEXT, b"raw"))
    frame = read_ws_frame(c)
    assert (frame.fin, frame.rsv, frame.opcode, frame.payload) == (True, 0, OP_TEXT, b"raw")
    assert not frame.masked  # a server never masks
    c.send(ws_close_frame(1000, "done"))
    assert read_ws_close(c) == (1000, "done")  # echoed
    assert c.is_closed()


def test_accept_headers_replace_server_defaults(serve, http_impl):
    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept", "headers": [(b"server", b"mine")]})
        await receive()

    srv = serve(app, http=http_impl)
    c = srv.client()
    c.send(ws_request())
    resp = parse_response(c.response())
    assert resp.status == 101
    assert resp.all("server") == ["mine"]
    assert len(resp.all("date")) == 1
    c.close()


def test_invalid_accept_header_is_500(serve, http_impl):
    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept", "headers": [(b"x-bad", b"a\r\nb")]})

    srv = serve(app, http=http_impl)
    c = srv.client()
    c.send(ws_request())
    resp = parse_response(c.read_until_closed())
    assert resp.status == 500
    assert resp.header("x-bad") is None


def test_upgrade_after_a_plain_request_on_the_same_connection(serve, http_impl):
    async def app(scope, receive, send):
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"plain"})
        else:
            await echo_app()(scope, receive, send)

    srv = serve(app, http=http_impl)
    c = srv.client()
    c.send(request("GET", "/"))
    assert parse_response(c.response()).body == b"plain"
    c.send(ws_request())
    assert parse_response(c.response()).status == 101
    c.send(ws_frame(OP_TEXT, b"now a websocket"))
    assert read_ws_frame(c).payload == b"now a websocket"
    c.send(ws_close_frame(1000))
    assert read_ws_close(c) == (1000, "")
    assert c.is_closed()


def test_messages_sent_with_the_upgrade_request(serve, http_impl):
    """Frames in the same packet as the request wait for the app's accept."""
    log: list = []
    srv = serve(echo_app(log), http=http_impl)
    c = srv.client()
    c.send(ws_request("/") + ws_frame(OP_TEXT, b"early") + ws_frame(0x2, b"bird"))
    assert parse_response(c.response()).status == 101
    assert read_ws_frame(c).payload == b"early"
    assert read_ws_frame(c).payload == b"bird"
    c.send(ws_close_frame(1000))
    assert read_ws_close(c) == (1000, "")
    c.close()


def test_subprotocol_and_accept_headers(serve, http_impl):
    scopes: list = []

    async def app(scope, receive, send):
        scopes.append(scope)
        assert (await receive())["type"] == "websocket.connect"
        await send(
            {
                "type": "websocket.accept",
                "subprotocol": scope["subprotocols"][1],
                "headers": [(b"x-extra", b"yes"), (b"set-cookie", b"a=1")],
            }
        )
        await send({"type": "websocket.send", "text": "hi"})
        await receive()

    srv = serve(app, http=http_impl)
    with ws_client(srv, subprotocols=["chat.v1", "chat.v2", "chat.v3"]) as ws:
        assert ws.subprotocol == "chat.v2"
        assert ws.response.headers["sec-websocket-protocol"] == "chat.v2"
        assert ws.response.headers["x-extra"] == "yes"
        assert ws.response.headers["set-cookie"] == "a=1"
        assert ws.recv(timeout=5) == "hi"
    assert scopes[0]["subprotocols"] == ["chat.v1", "chat.v2", "chat.v3"]


def test_no_subprotocol_offered(serve, http_impl):
    scopes: list = []

    async def app(scope, receive, send):
        scopes.append(scope)
        await echo_app()(scope, receive, send)

    srv = serve(app, http=http_impl)
    with ws_client(srv) as ws:
        assert ws.subprotocol is None
        assert "sec-websocket-protocol" not in ws.response.headers
    assert scopes[0]["subprotocols"] == []


def test_scope(serve, http_impl):
    scopes: list = []

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    scope["state"]["db"] = "ready"
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        scopes.append(scope)
        await receive()
        await send({"type": "websocket.accept"})
        await receive()

    srv = serve(app, http=http_impl, lifespan="on", root_path="/api")
    with ws_client(
        srv,
        "/chat/a%20b?x=1&y=2",
        subprotocols=["one", "two"],
        additional_headers={"X-Custom": "Value"},
    ) as ws:
        local_port = ws.socket.getsockname()[1]
    wait_until(lambda: scopes)
    scope = scopes[0]
    assert scope["type"] == "websocket"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["scheme"] == "ws"
    assert "method" not in scope
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/chat/a b"
    assert scope["raw_path"] == b"/api/chat/a%20b"
    assert scope["query_string"] == b"x=1&y=2"
    assert tuple(scope["server"]) == ("127.0.0.1", srv.port)
    assert tuple(scope["client"]) == ("127.0.0.1", local_port)
    assert scope["subprotocols"] == ["one", "two"]
    assert scope["state"] == {"db": "ready"}
    assert "websocket.http.response" in scope["extensions"]
    headers = [(bytes(n), bytes(v)) for n, v in scope["headers"]]
    assert all(n == n.lower() for n, _ in headers)
    assert (b"x-custom", b"Value") in headers
    assert (b"upgrade", b"websocket") in headers
    assert (b"sec-websocket-version", b"13") in headers
    assert (b"sec-websocket-protocol", b"one, two") in headers


def test_app_closes_with_code_and_reason(serve, http_impl):
    log: list = []

    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "before close"})
        await send({"type": "websocket.close", "code": 4000, "reason": "done here"})
        log.append(await receive())
        try:
            await send({"type": "websocket.send", "text": "after close"})
        except OSError as exc:  # ASGI: a server-specific subclass of OSError
            log.append(exc)

    srv = serve(app, http=http_impl)
    with ws_client(srv) as ws:
        assert ws.recv(timeout=5) == "before close"
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=5)
    assert info.value.rcvd is not None
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (4000, "done here")
    wait_until(lambda: len(log) == 2, what="the app to finish")
    assert log[0] == {"type": "websocket.disconnect", "code": 4000, "reason": "done here"}
    assert isinstance(log[1], OSError)


@pytest.mark.parametrize(
    "reason",
    [
        pytest.param("x" * 200, id="ascii"),
        pytest.param("é" * 100, id="non-ascii"),  # cut on a character boundary
    ],
)
def test_app_closes_with_a_long_reason(serve, http_impl, reason):
    """A close frame holds 123 bytes of reason: a longer one is cut, the close still works."""

    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 4000, "reason": reason})
        await receive()

    srv = serve(app, http=http_impl)
    with ws_client(srv) as ws, pytest.raises(ConnectionClosed) as info:
        ws.recv(timeout=5)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 4000
    assert reason.startswith(info.value.rcvd.reason)
    assert len(info.value.rcvd.reason.encode()) <= 123


def test_close_without_code_is_1000(serve, http_impl):
    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close"})
        await receive()

    srv = serve(app, http=http_impl)
    c = srv.client()
    c.send(ws_request())
    assert parse_response(c.response()).status == 101
    assert read_ws_close(c) == (1000, "")
    c.send(ws_close_frame(1000))
    assert c.is_closed()


def test_send_after_client_disconnect_raises_oserror(serve, http_impl):
    log: list = []

    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        log.append(await receive())
        try:
            await send({"type": "websocket.send", "text": "anyone?"})
        except OSError as exc:
            log.append(exc)

    srv = serve(app, http=http_impl)
    with ws_client(srv) as ws:
        ws.close(1001, "going away")
    wait_until(lambda: len(log) == 2, what="the app to finish")
    assert log[0] == {"type": "websocket.disconnect", "code": 1001, "reason": "going away"}
    assert isinstance(log[1], OSError)


def test_client_drops_the_connection(serve, http_impl):
    log: list = []
    srv = serve(echo_app(log), http=http_impl)
    c = srv.client()
    c.send(ws_request())
    assert parse_response(c.response()).status == 101
    c.close()  # no close frame
    wait_until(lambda: log and log[-1]["type"] == "websocket.disconnect")
    assert log[-1]["code"] == 1006
    assert_still_serving(srv)


# -- denial: websocket.http.response and close before accept --------------------------------


def test_denial_response(serve, http_impl):
    async def app(scope, receive, send):
        await receive()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 401,
                "headers": [(b"content-type", b"text/plain"), (b"www-authenticate", b"Basic")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b"who are you?"})

    srv = serve(app, http=http_impl)
    with pytest.raises(InvalidStatus) as info:
        ws_client(srv)
    response = info.value.response
    assert response.status_code == 401
    assert response.headers["content-type"] == "text/plain"
    assert response.headers["www-authenticate"] == "Basic"
    assert response.body == b"who are you?"

    c = srv.client()
    c.send(ws_request())
    resp = parse_response(c.read_until_closed())
    assert resp.status == 401
    assert resp.complete
    assert resp.body == b"who are you?"
    assert resp.header("upgrade") is None
    assert resp.header("sec-websocket-accept") is None
    assert resp.header("connection") == "close"


def test_denial_response_streamed(serve, http_impl):
    async def app(scope, receive, send):
        await receive()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 403,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b"not ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"allowed"})

    srv = serve(app, http=http_impl)
    c = srv.client()
    c.send(ws_request())
    resp = parse_response(c.read_until_closed())
    assert resp.status == 403
    assert resp.complete
    assert resp.body == b"not allowed"
    assert resp.header("sec-websocket-accept") is None

    with pytest.raises(InvalidStatus) as info:
        ws_client(srv)
    assert info.value.response.status_code == 403
    assert info.value.response.body == b"not allowed"


def test_denial_with_content_length(serve, http_impl):
    async def app(scope, receive, send):
        await receive()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 404,
                "headers": [(b"content-length", b"7")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"such"})

    srv = serve(app, http=http_impl)
    c = srv.client()
    c.send(ws_request())
    raw = c.read_until_closed()
    resp = parse_response(raw)
    assert resp.status == 404
    assert resp.header("content-length") == "7"
    assert resp.body == b"no such"


def test_close_before_accept_is_403(serve, http_impl):
    log: list = []

    async def app(scope, receive, send):
        log.append(await receive())
        await send({"type": "websocket.close", "code": 4003})
        log.append(await receive())

    srv = serve(app, http=http_impl)
    c = srv.client()
    c.send(ws_request())
    resp = parse_response(c.read_until_closed())
    assert resp.status == 403
    assert resp.header("sec-websocket-accept") is None
    with pytest.raises(InvalidStatus) as info:
        ws_client(srv)
    assert info.value.response.status_code == 403
    wait_until(lambda: len(log) == 4)
    assert log[0] == {"type": "websocket.connect"}
    assert log[1]["type"] == "websocket.disconnect"


# -- app errors -----------------------------------------------------------------------------


def test_exception_before_accept_is_500(serve, http_impl):
    async def app(scope, receive, send):
        await receive()
        raise RuntimeError("boom before accept")

    srv = serve(app, http=http_impl)
    c = srv.client()
    c.send(ws_request())
    resp = parse_response(c.read_until_closed())
    assert resp.status == 500
    assert resp.header("sec-websocket-accept") is None
    with pytest.raises(InvalidStatus) as info:
        ws_client(srv)
    assert info.value.response.status_code == 500


def test_return_before_accept_is_500(serve, http_impl):
    async def app(scope, receive, send):
        await receive()

    srv = serve(app, http=http_impl)
    c = srv.client()
    c.send(ws_request())
    assert parse_response(c.read_until_closed()).status == 500
    with pytest.raises(InvalidStatus) as info:
        ws_client(srv)
    assert info.value.response.status_code == 500


def test_accepting_a_subprotocol_not_offered_is_500(serve, http_impl):
    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept", "subprotocol": "not-offered"})

    srv = serve(app, http=http_impl)
    with pytest.raises(InvalidStatus) as info:
        ws_client(srv, subprotocols=["offered"])
    assert info.value.response.status_code == 500


def test_exception_after_accept_closes_1011(serve, http_impl):
    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        message = await receive()
        if message.get("text") == "crash":
            raise RuntimeError("boom after accept")

    srv = serve(app, http=http_impl)
    with ws_client(srv) as ws:
        ws.send("crash")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=5)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 1011
    assert_still_serving(serve(echo_app(), http=http_impl))


def test_return_after_accept_closes_1000(serve, http_impl):
    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "bye"})

    srv = serve(app, http=http_impl)
    c = srv.client()
    c.send(ws_request())
    assert parse_response(c.response()).status == 101
    assert read_ws_frame(c).payload == b"bye"
    assert read_ws_close(c) == (1000, "")
    c.send(ws_close_frame(1000))
    assert c.is_closed()

    with ws_client(srv) as ws:
        assert ws.recv(timeout=5) == "bye"
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=5)
    assert info.value.rcvd.code == 1000


# -- access log -----------------------------------------------------------------------------


def access_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "squall.access"]


def test_access_log(serve, http_impl, caplog):
    caplog.set_level(logging.INFO)

    async def app(scope, receive, send):
        await receive()
        if scope["path"] == "/denied":
            await send({"type": "websocket.close"})
        elif scope["path"] == "/unauthorized":
            await send({"type": "websocket.http.response.start", "status": 401, "headers": []})
            await send({"type": "websocket.http.response.body", "body": b"no"})
        else:
            await send({"type": "websocket.accept"})
            while (await receive())["type"] != "websocket.disconnect":
                pass

    srv = serve(app, http=http_impl, log_config=PROPAGATE_LOGS, log_level="info")
    with ws_client(srv, "/chat?room=1") as ws:
        port = ws.socket.getsockname()[1]
        ws.send("hi")
    wait_until(lambda: len(access_lines(caplog)) == 1, what="the first access line")
    assert access_lines(caplog) == [f'127.0.0.1:{port} - "GET /chat?room=1 HTTP/1.1" 101']

    for path in ("/denied", "/unauthorized"):
        with pytest.raises(InvalidStatus):
            ws_client(srv, path)
    wait_until(lambda: len(access_lines(caplog)) == 3, what="the other access lines")
    lines = access_lines(caplog)
    assert re.fullmatch(r'127\.0\.0\.1:\d+ - "GET /denied HTTP/1\.1" 403', lines[1])
    assert re.fullmatch(r'127\.0\.0\.1:\d+ - "GET /unauthorized HTTP/1\.1" 401', lines[2])


def test_plain_http_next_to_websocket(serve, http_impl):
    """The same app serves HTTP requests on other connections."""

    async def app(scope, receive, send):
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"plain"})
        else:
            await echo_app()(scope, receive, send)

    srv = serve(app, http=http_impl)
    with ws_client(srv) as ws:
        c = srv.client()
        c.send(request("GET", "/"))
        assert parse_response(c.response()).body == b"plain"
        ws.send("ws")
        assert ws.recv(timeout=5) == "ws"
