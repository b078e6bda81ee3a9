"""Bad WebSocket handshakes and bad frames: the right refusal, and the server stays up."""

from __future__ import annotations

import pytest

from tests.integration.helpers import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_TEXT,
    assert_still_serving,
    echo_app,
    parse_response,
    read_ws_frame,
    request,
    wait_until,
    ws_close_frame,
    ws_frame,
    ws_request,
)

pytestmark = pytest.mark.usefixtures("fast_tick")  # in-thread servers stop quickly

KEY = ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
VERSION = ("Sec-WebSocket-Version", "13")
UPGRADE = [("Upgrade", "websocket"), ("Connection", "Upgrade")]


# -- handshakes -----------------------------------------------------------------------------


def upgrade(*headers: tuple[str, str], method: str = "GET") -> bytes:
    return request(method, "/", headers=[*UPGRADE, *headers])


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        pytest.param(upgrade(VERSION), 400, id="no-key"),
        pytest.param(upgrade(VERSION, ("Sec-WebSocket-Key", "not base64!")), 400, id="key-not-b64"),
        pytest.param(  # base64 of 15 bytes, not 16
            upgrade(VERSION, ("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAA")), 400, id="key-15-bytes"
        ),
        pytest.param(upgrade(VERSION, ("Sec-WebSocket-Key", "")), 400, id="key-empty"),
        pytest.param(
            upgrade(VERSION, KEY, ("Sec-WebSocket-Key", "AQIDBAUGBwgJCgsMDQ4PEA==")),
            400,
            id="two-keys",
        ),
        pytest.param(
            upgrade(VERSION, KEY, ("Sec-WebSocket-Protocol", "chat\xe9")),
            400,
            id="non-ascii-subprotocol",
        ),
        pytest.param(
            upgrade(VERSION, KEY, ("Sec-WebSocket-Extensions", "permessage-deflate; ;=")),
            400,
            id="bad-extensions-header",
        ),
        pytest.param(upgrade(VERSION, KEY, method="POST"), 400, id="post"),
    ],
)
def test_bad_handshake_is_refused(serve, http_impl, raw, status):
    called: list = []

    async def app(scope, receive, send):
        called.append(scope["type"])
        await echo_app()(scope, receive, send)

    srv = serve(app, http=http_impl)
    c = srv.client()
    c.send(raw)
    resp = parse_response(c.read_until_closed())
    assert resp.status == status
    assert resp.header("sec-websocket-accept") is None
    assert resp.header("upgrade") is None
    assert resp.header("connection") == "close"
    assert resp.complete
    assert called == []
    assert_still_serving(srv)


@pytest.mark.parametrize("version", ["8", "14", "", None])
def test_wrong_version_is_426(serve, http_impl, version):
    srv = serve(echo_app(), http=http_impl)
    headers = [*UPGRADE, KEY]
    if version is not None:
        headers.append(("Sec-WebSocket-Version", version))
    c = srv.client()
    c.send(request("GET", "/", headers=headers))
    resp = parse_response(c.read_until_closed())
    assert resp.status == 426
    assert resp.header("sec-websocket-version") == "13"
    assert resp.header("sec-websocket-accept") is None
    assert_still_serving(srv)


# -- frames after the handshake -------------------------------------------------------------


def opened(srv):
    c = srv.client()
    c.send(ws_request())
    assert parse_response(c.response()).status == 101
    return c


BAD_FRAMES = [
    pytest.param(ws_frame(OP_TEXT, b"caf\xc3"), 1007, id="invalid-utf8"),
    pytest.param(ws_frame(OP_TEXT, b"\xed\xa0\x80"), 1007, id="utf8-surrogate"),
    pytest.param(
        ws_frame(OP_TEXT, b"ok ", fin=False) + ws_frame(OP_CONT, b"\xff", fin=False),
        1007,
        id="invalid-utf8-in-a-fragment",
    ),
    pytest.param(ws_frame(OP_TEXT, b"hello", mask=None), 1002, id="unmasked"),
    pytest.param(ws_frame(OP_TEXT, b"hello", rsv=4), 1002, id="rsv1-without-deflate"),
    pytest.param(ws_frame(OP_TEXT, b"hello", rsv=2), 1002, id="rsv2"),
    pytest.param(ws_frame(OP_BINARY, b"hello", rsv=1), 1002, id="rsv3"),
    pytest.param(ws_frame(0x3, b"hello"), 1002, id="opcode-3"),
    pytest.param(ws_frame(0xB, b"hello"), 1002, id="opcode-0xb"),
    pytest.param(ws_frame(OP_PING, b"hi", fin=False), 1002, id="fragmented-ping"),
    pytest.param(ws_frame(OP_PING, b"x" * 126), 1002, id="ping-over-125-bytes"),
    pytest.param(ws_frame(OP_CONT, b"orphan"), 1002, id="continuation-without-start"),
    pytest.param(
        ws_frame(OP_TEXT, b"one", fin=False) + ws_frame(OP_TEXT, b"two"),
        1002,
        id="new-message-inside-a-fragmented-one",
    ),
    pytest.param(ws_frame(OP_CLOSE, b"\x03"), 1002, id="close-payload-of-1-byte"),
    pytest.param(ws_close_frame(999), 1002, id="close-code-999"),
    pytest.param(ws_frame(OP_CLOSE, b"\x03\xe8\xff"), 1007, id="close-reason-not-utf8"),
]


@pytest.mark.parametrize(("data", "code"), BAD_FRAMES)
def test_bad_frame_fails_the_connection(serve, http_impl, data, code):
    log: list = []
    srv = serve(echo_app(log), http=http_impl)
    c = opened(srv)
    c.send(data)
    frame = read_ws_frame(c)
    assert frame is not None
    assert frame.opcode == OP_CLOSE, frame
    assert frame.close[0] == code
    assert c.is_closed()  # the server closes the TCP connection
    wait_until(lambda: log and log[-1]["type"] == "websocket.disconnect")
    assert log[-1]["code"] == code
    assert [m for m in log if m["type"] == "websocket.receive"] == []
    assert_still_serving(srv)


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        pytest.param(ws_frame(0x3, b"?"), 1002, id="bad-opcode"),
        pytest.param(ws_frame(OP_TEXT, b"\xff"), 1007, id="invalid-utf8"),
        pytest.param(ws_frame(OP_TEXT, b"\xff", fin=False), 1007, id="invalid-utf8-fragment"),
    ],
)
def test_nothing_after_a_bad_frame_is_delivered(serve, http_impl, bad, code):
    """What precedes the bad frame is delivered, nothing after it (RFC 6455 7.1.7)."""
    log: list = []

    async def app(scope, receive, send):  # records, never sends
        await receive()
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] != "websocket.disconnect":
            log.append(message)
        log.append(message)

    srv = serve(app, http=http_impl)
    c = opened(srv)
    c.send(ws_frame(OP_TEXT, b"good") + bad + ws_frame(OP_TEXT, b"lost"))
    frame = read_ws_frame(c)
    assert frame.close[0] == code
    assert c.is_closed()
    wait_until(lambda: log and log[-1]["type"] == "websocket.disconnect")
    assert [m.get("text") for m in log[:-1]] == ["good"]
    assert log[-1]["code"] == code


def test_close_between_fragments_is_answered_normally(serve, http_impl):
    """RFC 6455 5.4: control frames may come between fragments; a close ends it cleanly."""
    log: list = []
    srv = serve(echo_app(log), http=http_impl)
    c = opened(srv)
    c.send(ws_frame(OP_TEXT, b"half", fin=False) + ws_close_frame(1001, "bye"))
    frame = read_ws_frame(c)
    assert frame.close == (1001, "bye")
    assert c.is_closed()
    wait_until(lambda: log and log[-1]["type"] == "websocket.disconnect")
    assert log[-1] == {"type": "websocket.disconnect", "code": 1001, "reason": "bye"}


def test_empty_close_frame(serve, http_impl):
    log: list = []
    srv = serve(echo_app(log), http=http_impl)
    c = opened(srv)
    c.send(ws_frame(OP_CLOSE, b""))
    frame = read_ws_frame(c)
    assert frame.opcode == OP_CLOSE
    assert frame.payload == b""  # echoed as it came
    assert c.is_closed()
    wait_until(lambda: log and log[-1]["type"] == "websocket.disconnect")
    assert log[-1]["code"] == 1005


def test_garbage_after_the_handshake(serve, http_impl):
    srv = serve(echo_app(), http=http_impl)
    c = opened(srv)
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # HTTP is not a WebSocket frame
    frame = read_ws_frame(c)
    assert frame.opcode == OP_CLOSE
    assert frame.close[0] == 1002
    assert c.is_closed()
    assert_still_serving(srv)


def test_client_sends_close_then_data(serve, http_impl):
    log: list = []
    srv = serve(echo_app(log), http=http_impl)
    c = opened(srv)
    c.send(ws_close_frame(1000) + ws_frame(OP_TEXT, b"after close"))
    assert read_ws_frame(c).close == (1000, "")
    assert read_ws_frame(c) is None  # nothing else, then EOF
    wait_until(lambda: log and log[-1]["type"] == "websocket.disconnect")
    assert [m for m in log if m["type"] == "websocket.receive"] == []
    c.close()
