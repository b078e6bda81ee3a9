"""WebSocket over HTTP/2 (RFC 8441): extended CONNECT from the ``h2`` library's client.

The WebSocket frames travel in DATA frames on the CONNECT stream; the client frames
are built (masked) with the helpers of ``tests/integration/helpers.py``, and the
server's frames are read with ``read_ws_frame`` from the stream's DATA.
"""

from __future__ import annotations

import socket
import zlib

import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    InformationalResponseReceived,
    RemoteSettingsChanged,
    ResponseReceived,
    StreamEnded,
    StreamReset,
)

from tests.integration.helpers import (
    OP_BINARY,
    OP_CLOSE,
    OP_TEXT,
    echo_app,
    read_ws_close,
    read_ws_frame,
    wait_until,
    ws_close_frame,
    ws_frame,
)

pytestmark = pytest.mark.usefixtures("fast_tick")  # in-thread servers stop quickly

ENABLE_CONNECT_PROTOCOL = 0x8


class Stream:
    def __init__(self) -> None:
        self.headers: dict[bytes, bytes] = {}
        self.data = bytearray()
        self.ended = False
        self.reset: int | None = None

    @property
    def status(self) -> int:
        return int(self.headers[b":status"])


class H2Client:
    """An ``h2`` client connection over a blocking socket, with per-stream records."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        config = H2Configuration(client_side=True, header_encoding=None)
        self.conn = H2Connection(config=config)
        self.conn.initiate_connection()
        self.streams: dict[int, Stream] = {}
        self.settings: dict[int, int] | None = None
        self.goaway: int | None = None
        self.flush()
        self.wait(lambda: self.settings is not None, "the server's SETTINGS")

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def pump(self) -> None:
        data = self.sock.recv(65536)  # the socket timeout fails a test that waits in vain
        assert data, "the server closed the connection"
        for event in self.conn.receive_data(data):
            if isinstance(event, RemoteSettingsChanged):
                if self.settings is None:
                    self.settings = {}
                for code, change in event.changed_settings.items():
                    self.settings[int(code)] = change.new_value
            elif isinstance(event, ConnectionTerminated):
                self.goaway = event.error_code
            elif getattr(event, "stream_id", 0):
                stream = self.streams.setdefault(event.stream_id, Stream())
                if isinstance(event, ResponseReceived | InformationalResponseReceived):
                    stream.headers = dict(event.headers)
                elif isinstance(event, DataReceived):
                    stream.data += event.data
                    self.conn.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                elif isinstance(event, StreamEnded):
                    stream.ended = True
                elif isinstance(event, StreamReset):
                    stream.reset = event.error_code
        self.flush()

    def wait(self, predicate, what: str) -> None:
        while not predicate():
            try:
                self.pump()
            except TimeoutError:
                raise AssertionError(f"timed out waiting for {what}") from None

    def _open(self, headers: list[tuple[str, str]], end_stream: bool) -> int:
        sid = self.conn.get_next_available_stream_id()
        self.streams[sid] = Stream()
        self.conn.send_headers(sid, headers, end_stream=end_stream)
        self.flush()
        return sid

    def connect_ws(self, path: str = "/ws", headers: list[tuple[str, str]] | None = None) -> int:
        """An extended CONNECT for a WebSocket; ``headers`` replace the version header."""
        fields = [
            (":method", "CONNECT"),
            (":protocol", "websocket"),
            (":scheme", "http"),
            (":path", path),
            (":authority", "example.org"),
        ]
        extra = headers if headers is not None else [("sec-websocket-version", "13")]
        return self._open(fields + extra, end_stream=False)

    def get(self, path: str) -> int:
        fields = [(":method", "GET"), (":scheme", "http"), (":path", path)]
        return self._open([*fields, (":authority", "example.org")], end_stream=True)

    def response(self, sid: int) -> Stream:
        """The stream once its response head came (or it was reset)."""
        stream = self.streams[sid]
        self.wait(lambda: stream.headers or stream.reset is not None, f"a response on {sid}")
        return stream

    def complete(self, sid: int) -> Stream:
        """The stream once it ended (or was reset)."""
        stream = self.streams[sid]
        self.wait(lambda: stream.ended or stream.reset is not None, f"the end of stream {sid}")
        return stream

    def websocket(self, sid: int) -> WS:
        stream = self.response(sid)
        assert stream.status == 200, f"handshake answered {stream.headers}"
        return WS(self, sid)

    def close(self) -> None:
        self.sock.close()


class WS:
    """The WebSocket on one stream; ``buf``/``_fill`` make it a reader for read_ws_frame."""

    def __init__(self, client: H2Client, sid: int) -> None:
        self.client = client
        self.sid = sid
        self.stream = client.streams[sid]
        self.buf = b""

    def _fill(self) -> bool:
        stream = self.stream
        self.client.wait(
            lambda: stream.data or stream.ended or stream.reset is not None,
            f"WebSocket data on stream {self.sid}",
        )
        if stream.data:
            self.buf += bytes(stream.data)
            stream.data.clear()
            return True
        return False

    def send(self, frame: bytes, end_stream: bool = False) -> None:
        """``frame`` in DATA frames of at most 16 KiB (the default SETTINGS_MAX_FRAME_SIZE)."""
        conn = self.client.conn
        chunks = [frame[i : i + 16384] for i in range(0, len(frame), 16384)] or [b""]
        for i, chunk in enumerate(chunks, 1):
            conn.send_data(self.sid, chunk, end_stream=end_stream and i == len(chunks))
        self.client.flush()

    def frame(self):
        frame = read_ws_frame(self)
        assert frame is not None, "the stream ended instead of a frame"
        assert not frame.masked, "server frames are never masked"
        return frame

    def echo(self, opcode: int, payload: bytes) -> None:
        self.send(ws_frame(opcode, payload))
        frame = self.frame()
        assert (frame.opcode, frame.payload, frame.fin) == (opcode, payload, True)


@pytest.fixture
def h2client():
    clients: list[H2Client] = []

    def connect(srv) -> H2Client:
        client = H2Client(srv.port)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()


def ws_and_http_app(log: list | None = None, calls: list | None = None):
    """WebSocket: ``echo_app``; HTTP: 200 "plain <path>"."""
    echo = echo_app(log)

    async def app(scope, receive, send):
        if calls is not None:
            calls.append(scope)
        if scope["type"] == "websocket":
            await echo(scope, receive, send)
            return
        body = b"plain " + scope["path"].encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return app


def disconnects(log: list) -> list[dict]:
    return [m for m in log if m["type"] == "websocket.disconnect"]


# -- SETTINGS ----------------------------------------------------------------------------


def test_settings_advertise_enable_connect_protocol(serve, h2client):
    srv = serve(ws_and_http_app())
    client = h2client(srv)
    assert client.settings is not None
    assert client.settings.get(ENABLE_CONNECT_PROTOCOL) == 1


def test_no_connect_protocol_without_websockets(serve, h2client):
    calls: list = []
    srv = serve(ws_and_http_app(calls=calls), ws="none")
    client = h2client(srv)
    assert client.settings is not None
    assert client.settings.get(ENABLE_CONNECT_PROTOCOL, 0) == 0
    # an extended CONNECT anyway: the stream is refused, the connection stays
    sid = client.connect_ws()
    stream = client.complete(sid)
    assert stream.reset == ErrorCodes.PROTOCOL_ERROR
    assert not stream.headers
    plain = client.complete(client.get("/plain"))
    assert (plain.status, bytes(plain.data)) == (200, b"plain /plain")
    assert [c["type"] for c in calls] == ["http"]


# -- the handshake -----------------------------------------------------------------------


def test_echo_text_and_binary(serve, h2client):
    log: list = []
    srv = serve(ws_and_http_app(log))
    client = h2client(srv)
    sid = client.connect_ws()
    head = client.response(sid).headers
    assert head[b":status"] == b"200"  # not 101: RFC 8441 5
    assert b"sec-websocket-accept" not in head
    assert not client.streams[sid].ended
    ws = client.websocket(sid)
    ws.echo(OP_TEXT, "héllo".encode())
    ws.echo(OP_BINARY, bytes(range(256)))
    ws.echo(OP_BINARY, b"\x00" * 70000)  # 64-bit length, several DATA frames
    # a fragmented message is echoed whole
    ws.send(ws_frame(OP_TEXT, b"frag", fin=False) + ws_frame(0x0, b"mented"))
    frame = ws.frame()
    assert (frame.opcode, frame.payload) == (OP_TEXT, b"fragmented")
    received = [m for m in log if m["type"] == "websocket.receive"]
    assert received[0] == {"type": "websocket.receive", "text": "héllo"}
    assert received[1] == {"type": "websocket.receive", "bytes": bytes(range(256))}


def test_scope_and_subprotocol(serve, h2client):
    scopes: list = []

    async def app(scope, receive, send):
        scopes.append(scope)
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept", "subprotocol": "chat.v2"})
        await send({"type": "websocket.send", "text": "hi"})
        while (await receive())["type"] != "websocket.disconnect":
            pass

    srv = serve(app)
    client = h2client(srv)
    sid = client.connect_ws(
        "/ws/room?a=1",
        [("sec-websocket-version", "13"), ("sec-websocket-protocol", "chat.v1, chat.v2")],
    )
    stream = client.response(sid)
    assert stream.status == 200
    assert stream.headers[b"sec-websocket-protocol"] == b"chat.v2"
    ws = client.websocket(sid)
    frame = ws.frame()
    assert (frame.opcode, frame.payload) == (OP_TEXT, b"hi")

    scope = scopes[0]
    assert scope["type"] == "websocket"
    assert scope["scheme"] == "ws"
    assert scope["http_version"] == "2"
    assert scope["path"] == "/ws/room"
    assert scope["raw_path"] == b"/ws/room"
    assert scope["query_string"] == b"a=1"
    assert scope["subprotocols"] == ["chat.v1", "chat.v2"]
    assert "method" not in scope
    headers = scope["headers"]
    assert (b"host", b"example.org") in headers
    assert not [name for name, _ in headers if name.startswith(b":")]
    assert "websocket.http.response" in scope["extensions"]


def test_no_subprotocol_header_unless_the_app_picks_one(serve, h2client):
    srv = serve(ws_and_http_app())
    client = h2client(srv)
    sid = client.connect_ws(
        headers=[("sec-websocket-version", "13"), ("sec-websocket-protocol", "chat.v1")]
    )
    stream = client.response(sid)
    assert stream.status == 200
    assert b"sec-websocket-protocol" not in stream.headers


# -- denials -----------------------------------------------------------------------------


def test_close_before_accept_is_403(serve, h2client):
    log: list = []
    echo = echo_app()

    async def app(scope, receive, send):
        if scope["path"] != "/deny":
            await echo(scope, receive, send)
            return
        log.append(await receive())
        await send({"type": "websocket.close"})

    srv = serve(app)
    client = h2client(srv)
    sid = client.connect_ws("/deny")
    stream = client.complete(sid)
    assert stream.status == 403
    assert stream.ended, f"reset {stream.reset} instead of END_STREAM"
    assert bytes(stream.data) == b""
    assert log == [{"type": "websocket.connect"}]
    # only that stream: the connection still serves a WebSocket
    client.websocket(client.connect_ws("/ws")).echo(OP_TEXT, b"accepted")
    assert client.goaway is None


def test_denial_response(serve, h2client):
    async def app(scope, receive, send):
        await receive()
        headers = [(b"content-type", b"text/plain"), (b"x-reason", b"token")]
        await send({"type": "websocket.http.response.start", "status": 401, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"entry"})

    srv = serve(app)
    client = h2client(srv)
    stream = client.complete(client.connect_ws())
    assert stream.ended, f"reset {stream.reset} instead of END_STREAM"
    assert stream.status == 401
    assert stream.headers[b"x-reason"] == b"token"
    assert stream.headers[b"content-type"] == b"text/plain"
    assert bytes(stream.data) == b"no entry"


def test_wrong_version_is_426_on_that_stream_only(serve, h2client):
    calls: list = []
    srv = serve(ws_and_http_app(calls=calls))
    client = h2client(srv)
    bad = client.connect_ws(headers=[("sec-websocket-version", "8")])
    good = client.connect_ws()
    stream = client.complete(bad)
    assert stream.status == 426
    assert stream.headers[b"sec-websocket-version"] == b"13"
    assert bytes(stream.data) == b"Unsupported WebSocket version"
    ws = client.websocket(good)
    ws.echo(OP_TEXT, b"the other stream works")
    assert len(calls) == 1  # the app never saw the bad handshake
    missing = client.complete(client.connect_ws(headers=[]))
    assert missing.status == 426


# -- closing -----------------------------------------------------------------------------


def test_close_initiated_by_the_app(serve, h2client):
    log: list = []

    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "bye soon"})
        await send({"type": "websocket.close", "code": 4000, "reason": "done"})
        log.append(await receive())

    srv = serve(app)
    client = h2client(srv)
    ws = client.websocket(client.connect_ws())
    assert ws.frame().payload == b"bye soon"
    frame = ws.frame()
    assert frame.opcode == OP_CLOSE
    assert frame.close == (4000, "done")
    assert not ws.stream.ended, "the stream ended before the client answered the close"
    ws.send(ws_close_frame(4000, "done"))
    assert read_ws_frame(ws) is None  # END_STREAM, nothing after the close
    assert ws.stream.ended
    wait_until(lambda: log, what="the app's websocket.disconnect")
    assert log == [{"type": "websocket.disconnect", "code": 4000, "reason": "done"}]


def test_close_initiated_by_the_client(serve, h2client):
    log: list = []
    srv = serve(ws_and_http_app(log))
    client = h2client(srv)
    ws = client.websocket(client.connect_ws())
    ws.echo(OP_TEXT, b"before closing")
    ws.send(ws_close_frame(4001, "client done"))
    assert read_ws_close(ws) == (4001, "client done")  # the echo
    assert read_ws_frame(ws) is None
    assert ws.stream.ended
    wait_until(lambda: disconnects(log), what="the app's websocket.disconnect")
    assert disconnects(log) == [
        {"type": "websocket.disconnect", "code": 4001, "reason": "client done"}
    ]


def test_client_resets_the_stream(serve, h2client):
    log: list = []
    srv = serve(ws_and_http_app(log))
    client = h2client(srv)
    sid = client.connect_ws()
    ws = client.websocket(sid)
    ws.echo(OP_TEXT, b"about to vanish")
    client.conn.reset_stream(sid, ErrorCodes.CANCEL)
    client.flush()
    wait_until(lambda: disconnects(log), what="the app's websocket.disconnect")
    assert disconnects(log) == [{"type": "websocket.disconnect", "code": 1006, "reason": ""}]
    # the connection lives on
    again = client.websocket(client.connect_ws())
    again.echo(OP_TEXT, b"still here")
    assert client.goaway is None


def test_client_end_stream_is_a_disconnect(serve, h2client):
    """END_STREAM from the client is the TCP FIN of RFC 8441: the app sees a disconnect."""
    log: list = []
    srv = serve(ws_and_http_app(log))
    client = h2client(srv)
    ws = client.websocket(client.connect_ws())
    ws.echo(OP_TEXT, b"last words")
    client.conn.end_stream(ws.sid)
    client.flush()
    wait_until(lambda: disconnects(log), what="the app's websocket.disconnect")
    assert disconnects(log) == [{"type": "websocket.disconnect", "code": 1006, "reason": ""}]


class StreamStillOpen(AssertionError):
    pass


def test_server_ends_the_stream_after_the_client_end_stream(serve, h2client):
    log: list = []
    srv = serve(ws_and_http_app(log))
    client = h2client(srv)
    ws = client.websocket(client.connect_ws())
    client.conn.end_stream(ws.sid)
    client.flush()
    wait_until(lambda: disconnects(log), what="the app's websocket.disconnect")
    client.sock.settimeout(2)
    try:
        client.complete(ws.sid)
    except AssertionError:
        raise StreamStillOpen(
            "no END_STREAM or RST_STREAM from the server 2 s after the app returned"
        ) from None


# -- sharing the connection ----------------------------------------------------------------


def test_plain_http_next_to_an_open_websocket(serve, h2client):
    calls: list = []
    srv = serve(ws_and_http_app(calls=calls))
    client = h2client(srv)
    ws = client.websocket(client.connect_ws())
    ws.echo(OP_TEXT, b"one")
    for path in ("/a", "/b"):
        stream = client.complete(client.get(path))
        assert (stream.status, bytes(stream.data)) == (200, b"plain " + path.encode())
    ws.echo(OP_TEXT, b"two")
    second = client.websocket(client.connect_ws("/ws2"))
    second.echo(OP_BINARY, b"a second WebSocket on the same connection")
    ws.echo(OP_TEXT, b"three")
    assert [c["type"] for c in calls] == ["websocket", "http", "http", "websocket"]


# -- permessage-deflate ----------------------------------------------------------------------


def _compress(data: bytes, wbits: int) -> bytes:
    deflater = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -wbits)
    packed = deflater.compress(data) + deflater.flush(zlib.Z_SYNC_FLUSH)
    assert packed.endswith(b"\x00\x00\xff\xff")
    return packed[:-4]


def test_permessage_deflate(serve, h2client):
    log: list = []
    srv = serve(ws_and_http_app(log))
    client = h2client(srv)
    offer = "permessage-deflate; client_max_window_bits"
    sid = client.connect_ws(
        headers=[("sec-websocket-version", "13"), ("sec-websocket-extensions", offer)]
    )
    stream = client.response(sid)
    assert stream.status == 200
    agreed = stream.headers[b"sec-websocket-extensions"].decode()
    assert agreed.startswith("permessage-deflate"), agreed
    params = dict(
        (p.strip().partition("=")[0], p.strip().partition("=")[2]) for p in agreed.split(";")[1:]
    )
    client_bits = int(params.get("client_max_window_bits") or 15)

    ws = client.websocket(sid)
    text = "squall speaks deflate over h2 " * 100
    packed = _compress(text.encode(), client_bits)
    ws.send(ws_frame(OP_TEXT, packed, rsv=4))  # RSV1: compressed
    frame = ws.frame()
    assert frame.opcode == OP_TEXT
    assert frame.rsv == 4, "the echo is not compressed"
    assert len(frame.payload) < len(text) // 4
    inflater = zlib.decompressobj(-15)
    assert inflater.decompress(frame.payload + b"\x00\x00\xff\xff").decode() == text
    assert {"type": "websocket.receive", "text": text} in log


def test_permessage_deflate_disabled(serve, h2client):
    srv = serve(ws_and_http_app(), ws_per_message_deflate=False)
    client = h2client(srv)
    sid = client.connect_ws(
        headers=[
            ("sec-websocket-version", "13"),
            ("sec-websocket-extensions", "permessage-deflate"),
        ]
    )
    stream = client.response(sid)
    assert stream.status == 200
    assert b"sec-websocket-extensions" not in stream.headers
    ws = client.websocket(sid)
    ws.send(ws_frame(OP_TEXT, b"plain"))
    frame = ws.frame()
    assert (frame.rsv, frame.payload) == (0, b"plain")
