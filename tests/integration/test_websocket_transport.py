"""WebSocket compression, limits, keepalive, back-pressure and shutdown, end to end."""

from __future__ import annotations

import logging
import select
import threading
import zlib

import pytest
from websockets.exceptions import ConnectionClosed

from tests.integration.helpers import (
    OP_BINARY,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Gate,
    assert_still_serving,
    connections,
    echo_app,
    parse_response,
    read_ws_close,
    read_ws_frame,
    wait_until,
    ws_client,
    ws_close_frame,
    ws_frame,
    ws_request,
)

pytestmark = pytest.mark.usefixtures("fast_tick")  # in-thread servers stop quickly

DEFLATE_OFFER = [("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")]


class Inflater:
    """RFC 7692 7.2.2: decompress the server's messages (with context takeover)."""

    def __init__(self) -> None:
        self.d = zlib.decompressobj(-15)

    def __call__(self, payload: bytes) -> bytes:
        return self.d.decompress(payload + b"\x00\x00\xff\xff")


def deflate(data: bytes) -> bytes:
    """One compressed client message (fresh context, 4 KiB window), tail stripped."""
    co = zlib.compressobj(wbits=-12)
    compressed = co.compress(data) + co.flush(zlib.Z_SYNC_FLUSH)
    assert compressed.endswith(b"\x00\x00\xff\xff")
    return compressed[:-4]


# -- permessage-deflate ---------------------------------------------------------------------


def test_deflate_negotiated_by_default(serve, http_impl):
    srv = serve(echo_app(), http=http_impl)
    with ws_client(srv, max_size=None) as ws:  # the websockets client offers deflate
        extensions = ws.response.headers.get("sec-websocket-extensions", "")
        assert extensions.startswith("permessage-deflate")
        ws.send("small")
        assert ws.recv(timeout=5) == "small"
        big = "squall! " * 200_000  # 1.6 MB, very compressible
        ws.send(big)
        assert ws.recv(timeout=5) == big
        noise = bytes(range(256)) * 100 + bytes(reversed(range(256))) * 100
        ws.send(noise)
        assert ws.recv(timeout=5) == noise
        for i in range(20):  # the compression contexts stay in step
            ws.send(f"message {i}" * (i + 1))
            assert ws.recv(timeout=5) == f"message {i}" * (i + 1)


def test_deflate_on_the_wire(serve, http_impl):
    srv = serve(echo_app(), http=http_impl)
    c = srv.client()
    c.send(ws_request(headers=DEFLATE_OFFER))
    resp = parse_response(c.response())
    assert resp.status == 101
    assert resp.header("sec-websocket-extensions").startswith("permessage-deflate")
    inflate = Inflater()
    text = b"compress me " * 1000
    c.send(ws_frame(OP_TEXT, deflate(text), rsv=4))  # RSV1: a compressed message
    frame = read_ws_frame(c)
    assert (frame.opcode, frame.rsv) == (OP_TEXT, 4)
    assert len(frame.payload) < len(text) // 10
    assert inflate(frame.payload) == text
    # a compressed message in two fragments: RSV1 on the first only
    compressed = deflate(text[::-1])
    half = len(compressed) // 2
    c.send(
        ws_frame(OP_TEXT, compressed[:half], rsv=4, fin=False)
        + ws_frame(OP_CONT, compressed[half:])
    )
    frame = read_ws_frame(c)
    assert inflate(frame.payload) == text[::-1]
    # an uncompressed message (RSV1 clear) is fine too
    c.send(ws_frame(OP_BINARY, b"plain"))
    frame = read_ws_frame(c)
    assert frame.opcode == OP_BINARY
    got = inflate(frame.payload) if frame.rsv == 4 else frame.payload
    assert got == b"plain"
    c.send(ws_close_frame(1000))
    assert read_ws_close(c) == (1000, "")
    c.close()


def test_deflate_disabled(serve, http_impl):
    srv = serve(echo_app(), http=http_impl, ws_per_message_deflate=False)
    with ws_client(srv) as ws:
        assert "sec-websocket-extensions" not in ws.response.headers
        big = "squall! " * 10_000
        ws.send(big)
        assert ws.recv(timeout=5) == big
    c = srv.client()
    c.send(ws_request(headers=DEFLATE_OFFER))
    resp = parse_response(c.response())
    assert resp.status == 101
    assert resp.header("sec-websocket-extensions") is None
    c.send(ws_frame(OP_TEXT, b"x" * 500))
    frame = read_ws_frame(c)
    assert (frame.rsv, frame.payload) == (0, b"x" * 500)
    c.close()


def test_unknown_extension_is_ignored(serve, http_impl):
    srv = serve(echo_app(), http=http_impl)
    c = srv.client()
    c.send(ws_request(headers=[("Sec-WebSocket-Extensions", "x-webkit-deflate-frame")]))
    resp = parse_response(c.response())
    assert resp.status == 101
    assert resp.header("sec-websocket-extensions") is None
    c.close()


# -- ws_max_size ----------------------------------------------------------------------------


def test_max_size(serve, http_impl):
    log: list = []
    srv = serve(echo_app(log), http=http_impl, ws_max_size=1024)
    with ws_client(srv, compression=None) as ws:
        ws.send(b"x" * 1024)  # at the limit: fine
        assert ws.recv(timeout=5) == b"x" * 1024
        ws.send("y" * 1025)
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=5)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 1009
    wait_until(lambda: log and log[-1]["type"] == "websocket.disconnect")
    assert log[-1]["code"] == 1009
    assert_still_serving(srv)


def test_max_size_counts_the_whole_fragmented_message(serve, http_impl):
    srv = serve(echo_app(), http=http_impl, ws_max_size=1024)
    c = srv.client()
    c.send(ws_request())
    assert parse_response(c.response()).status == 101
    c.send(ws_frame(OP_BINARY, b"a" * 500, fin=False) + ws_frame(OP_CONT, b"b" * 500, fin=False))
    c.send(ws_frame(OP_CONT, b"c" * 500))
    assert read_ws_close(c)[0] == 1009
    assert c.is_closed()
    assert_still_serving(srv)


def test_decompression_bomb(serve, http_impl):
    log: list = []
    srv = serve(echo_app(log), http=http_impl, ws_max_size=1024 * 1024)
    with ws_client(srv, max_size=None) as ws:
        assert ws.response.headers["sec-websocket-extensions"].startswith("permessage-deflate")
        ws.send(b"\x00" * (512 * 1024))  # under the limit once decompressed: fine
        assert ws.recv(timeout=5) == b"\x00" * (512 * 1024)
        ws.send(b"\x00" * (2 * 1024 * 1024))  # ~2 KiB on the wire, 2 MiB decompressed
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=5)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 1009
    wait_until(lambda: log and log[-1]["type"] == "websocket.disconnect")
    assert log[-1]["code"] == 1009
    assert len(log) == 3  # connect, the 512 KiB message, disconnect
    assert_still_serving(srv)


def test_raw_decompression_bomb(serve, http_impl):
    srv = serve(echo_app(), http=http_impl, ws_max_size=1024 * 1024)
    c = srv.client()
    c.send(ws_request(headers=DEFLATE_OFFER))
    assert parse_response(c.response()).status == 101
    bomb = deflate(b"\x00" * (16 * 1024 * 1024))
    assert len(bomb) < 100_000
    c.send(ws_frame(OP_BINARY, bomb, rsv=4))
    assert read_ws_close(c)[0] == 1009
    assert c.is_closed()
    assert_still_serving(srv)


# -- keepalive ------------------------------------------------------------------------------


def test_unanswered_ping_closes_1011(serve, http_impl):
    log: list = []
    srv = serve(echo_app(log), http=http_impl, ws_ping_interval=0.2, ws_ping_timeout=0.2)
    c = srv.client()
    c.send(ws_request())
    assert parse_response(c.response()).status == 101
    ping = read_ws_frame(c)
    assert ping.opcode == OP_PING
    assert not ping.masked
    close = read_ws_frame(c)  # no pong from us: nothing but the close comes next
    assert close.opcode == 0x8
    assert close.close[0] == 1011
    c.send(ws_close_frame(1011))
    assert c.is_closed()
    wait_until(lambda: log and log[-1]["type"] == "websocket.disconnect")
    assert log[-1]["code"] == 1011


def test_answered_pings_keep_the_connection(serve, http_impl):
    # (a new ping only follows an answered one, so the pings below prove the pongs count)
    srv = serve(echo_app(), http=http_impl, ws_ping_interval=0.2, ws_ping_timeout=0.5)
    c = srv.client()
    c.send(ws_request())
    assert parse_response(c.response()).status == 101
    payloads = set()
    for _ in range(4):
        frame = read_ws_frame(c)
        assert frame.opcode == OP_PING, frame
        payloads.add(frame.payload)
        c.send(ws_frame(OP_PONG, frame.payload))
    assert len(payloads) == 4  # a fresh payload each time
    c.send(ws_frame(OP_TEXT, b"still open"))
    frame = read_ws_frame(c)
    while frame.opcode == OP_PING:
        c.send(ws_frame(OP_PONG, frame.payload))
        frame = read_ws_frame(c)
    assert frame.payload == b"still open"
    c.send(ws_close_frame(1000))
    assert read_ws_close(c) == (1000, "")
    c.close()


@pytest.mark.parametrize("timeout", [0, None], ids=["timeout-0", "timeout-none"])
def test_ping_timeout_off_keeps_the_ping_interval(serve, http_impl, timeout):
    # --ws-ping-timeout 0 (or none) turns the timeout off; pings still come every interval.
    # Each answered ping lets the next one go: if the wait fell to 0 they would come
    # back to back, many per interval.
    srv = serve(echo_app(), http=http_impl, ws_ping_interval=0.5, ws_ping_timeout=timeout)
    c = srv.client()
    c.send(ws_request())
    assert parse_response(c.response()).status == 101
    ping = read_ws_frame(c)
    assert ping.opcode == OP_PING
    c.send(ws_frame(OP_PONG, ping.payload))
    ready, _, _ = select.select([c.sock], [], [], 0.25)  # half an interval: nothing due
    assert not ready, "a ping came before its interval"
    ping = read_ws_frame(c)  # but the next one does come
    assert ping.opcode == OP_PING
    c.send(ws_close_frame(1000))
    assert read_ws_close(c) == (1000, "")
    c.close()


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_websockets_client_answers_pings(serve, http_impl):
    srv = serve(echo_app(), http=http_impl, ws_ping_interval=0.2, ws_ping_timeout=0.5)
    frames = Collect()
    client_logger = logging.getLogger("tests.ws.client")
    client_logger.setLevel(logging.DEBUG)  # the client logs frames at DEBUG
    client_logger.addHandler(frames)
    try:
        with ws_client(srv, logger=client_logger) as ws:

            def pongs() -> int:
                return sum(m.startswith("> PONG") for m in list(frames.messages))

            wait_until(lambda: pongs() >= 3, what="three pings answered")
            ws.send("alive")
            assert ws.recv(timeout=5) == "alive"
            # a bounded wait across more intervals: nothing but pings arrive
            with pytest.raises(TimeoutError):
                ws.recv(timeout=0.5)
            answered = pongs()
            wait_until(lambda: pongs() >= answered + 2, what="two more pings answered")
            ws.send("still alive")
            assert ws.recv(timeout=5) == "still alive"
    finally:
        client_logger.removeHandler(frames)


# -- back-pressure --------------------------------------------------------------------------


def test_reading_pauses_when_the_app_does_not_receive(serve, http_impl):
    gate = Gate()
    count = 60

    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        await gate.wait()
        got = []
        while len(got) < count:
            message = await receive()
            assert message["type"] == "websocket.receive", message
            got.append(message["text"])
        await send({"type": "websocket.send", "text": ",".join(got)})
        await receive()

    srv = serve(app, http=http_impl, ws_max_queue=4)
    with ws_client(srv, compression=None) as ws:
        for i in range(count // 2):
            ws.send(f"m{i}")
        wait_until(
            lambda: any(not conn.transport.is_reading() for conn in connections(srv)),
            what="the server to stop reading",
        )
        (conn,) = connections(srv)
        for i in range(count // 2, count):  # these wait in the socket buffers
            ws.send(f"m{i}")
        assert not conn.transport.is_reading()
        gate.open()
        assert ws.recv(timeout=5) == ",".join(f"m{i}" for i in range(count))
        wait_until(conn.transport.is_reading, what="reading to resume")


def send_until_blocked(sock, frame: bytes, limit: int) -> tuple[int, int]:
    """Send ``frame`` repeatedly until the socket stays unwritable for 0.5 s.

    Returns (whole frames sent, bytes of the next frame sent); fails the test if
    ``limit`` frames go through without blocking."""
    sock.setblocking(False)
    frames, offset = 0, 0
    while frames < limit:
        _, writable, _ = select.select([], [sock], [], 0.5)
        if not writable:
            return frames, offset
        try:
            offset += sock.send(frame[offset:])
        except BlockingIOError:
            continue
        if offset == len(frame):
            frames, offset = frames + 1, 0
    pytest.fail(f"{limit} frames sent and the server still reads")


def counting_app(gate: Gate, accept_first: bool):
    """Waits for ``gate`` (after or before accepting), then counts 64 KiB messages;
    answers the count when b"end" comes."""

    async def app(scope, receive, send):
        await receive()
        if accept_first:
            await send({"type": "websocket.accept"})
        await gate.wait()
        if not accept_first:
            await send({"type": "websocket.accept"})
        total = 0
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            if message["bytes"] == b"end":
                await send({"type": "websocket.send", "text": str(total)})
            else:
                assert message["bytes"] == b"z" * 65536
                total += 1

    return app


@pytest.mark.parametrize(
    "accept_first",
    [
        pytest.param(True, id="after-accept"),
        pytest.param(False, id="before-accept"),
    ],
)
def test_raw_client_sends_block_when_the_app_does_not_receive(serve, http_impl, accept_first):
    gate = Gate()
    srv = serve(counting_app(gate, accept_first), http=http_impl, ws_max_queue=4)
    c = srv.client()
    c.send(ws_request())
    if accept_first:
        assert parse_response(c.response()).status == 101
    frame = ws_frame(OP_BINARY, b"z" * 65536)
    try:
        try:
            # (socket buffers hold a few MiB; a server that keeps reading takes it all)
            frames, offset = send_until_blocked(c.sock, frame, limit=200)
            assert frames > 4
            assert not any(conn.transport.is_reading() for conn in connections(srv))
        finally:
            gate.open()
        c.sock.setblocking(True)
        c.sock.settimeout(10)
        # the rest of the partly sent frame (a whole one if none was), then "end"
        c.sock.sendall(frame[offset:] + ws_frame(OP_BINARY, b"end"))
        if not accept_first:
            assert parse_response(c.response()).status == 101
        reply = read_ws_frame(c)
        assert reply.payload == str(frames + 1).encode()
        c.send(ws_close_frame(1000))
        assert read_ws_close(c) == (1000, "")
    finally:
        c.close()


def test_sending_waits_for_a_slow_client(serve, http_impl):
    count, size = 64, 256 * 1024  # 16 MiB: more than socket buffers hold
    sent: list = []

    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        for i in range(count):
            await send({"type": "websocket.send", "bytes": bytes([i]) * size})
            sent.append(i)
        await send({"type": "websocket.close"})
        await receive()

    srv = serve(app, http=http_impl)
    c = srv.client()
    c.send(ws_request())
    assert parse_response(c.response()).status == 101
    wait_until(
        lambda: any(conn.write_paused for conn in connections(srv)),
        what="the server's writes to pause",
    )
    assert len(sent) < count  # the app waits in send()
    c.sock.settimeout(10)
    for i in range(count):
        frame = read_ws_frame(c)
        assert (frame.opcode, frame.payload) == (OP_BINARY, bytes([i]) * size)
    assert read_ws_close(c) == (1000, "")
    c.send(ws_close_frame(1000))
    assert c.is_closed()
    assert len(sent) == count


# -- graceful shutdown ----------------------------------------------------------------------


def test_shutdown_closes_1012(serve, http_impl):
    log: list = []
    srv = serve(echo_app(log), http=http_impl)
    with ws_client(srv) as ws:
        ws.send("hi")
        assert ws.recv(timeout=5) == "hi"
        stopper = threading.Thread(target=srv.stop)
        stopper.start()
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=5)
        stopper.join(10)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 1012
    assert not srv.thread.is_alive()
    assert srv.error is None
    assert log[-1]["type"] == "websocket.disconnect"
    assert log[-1]["code"] == 1012


def test_shutdown_raw_client(serve, http_impl):
    srv = serve(echo_app(), http=http_impl)
    c = srv.client()
    c.send(ws_request())
    assert parse_response(c.response()).status == 101
    closes: list = []
    reader = threading.Thread(target=lambda: closes.append(read_ws_close(c)))
    reader.start()
    stopper = threading.Thread(target=srv.stop)
    stopper.start()
    reader.join(10)
    assert closes and closes[0][0] == 1012
    c.send(ws_close_frame(1012))
    assert c.is_closed()
    stopper.join(10)
    assert not srv.thread.is_alive()
    assert srv.error is None


def test_shutdown_before_accept_is_503(serve, http_impl):
    connected = threading.Event()

    async def app(scope, receive, send):
        await receive()
        connected.set()
        await receive()  # never accepts; the disconnect ends it

    srv = serve(app, http=http_impl)
    c = srv.client()
    c.send(ws_request())
    assert connected.wait(5)
    stopper = threading.Thread(target=srv.stop)
    stopper.start()
    resp = parse_response(c.read_until_closed())
    assert resp.status == 503
    stopper.join(10)
    assert not srv.thread.is_alive()
    assert srv.error is None


def test_concurrent_sessions(serve, http_impl):
    """Several clients at once, each with its own conversation."""
    srv = serve(echo_app(), http=http_impl)
    errors: list = []

    def talk(n: int) -> None:
        try:
            with ws_client(srv, f"/{n}") as ws:
                for i in range(20):
                    ws.send(f"{n}:{i}")
                    assert ws.recv(timeout=5) == f"{n}:{i}"
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=talk, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert errors == []
