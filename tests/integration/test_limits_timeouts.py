"""Limits and timeouts, against a real server, from raw sockets.

Every server here runs with short timeouts (about half a second), so each test
takes one to three seconds. Nothing waits with a fixed sleep: outcomes are read
with socket timeouts or polled with deadlines. The only deliberate pauses are
those of the attackers themselves (a slowloris client sends one byte every
0.1 s: that is the attack).

Options covered: ``timeout_request_header`` (slowloris: 408, then close),
``timeout_keep_alive`` (idle: closed without a word), ``timeout_request_body``
(a stalled body: 408, not while the app itself is not reading),
``timeout_write`` (a client that does not read is cut off), ``limit_request_body``
(413), ``max_requests_per_connection`` and ``limit_connections``.
"""

from __future__ import annotations

import asyncio
import contextlib
import selectors
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from typing import Any

import hpack
import httpx
import pytest
from hyperframe.frame import (
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    RstStreamFrame,
    SettingsFrame,
)

from tests.conftest import RawClient, recv_until_closed
from tests.integration.helpers import Gate, connections, parse_response, request, wait_until

pytestmark = [pytest.mark.usefixtures("fast_tick"), pytest.mark.timeout(20)]

T = 0.5  # the short timeout used throughout
SLACK = 0.6  # how late a deadline may be observed (timer, scheduling, a loaded CI box)
EARLY = 0.05  # how early (clock granularity between the test and the server's loop)
DRIP = 0.1  # a slowloris client sends one byte this often

SHORT = {
    "timeout_request_header": T,
    "timeout_keep_alive": T,
    "timeout_request_body": T,
    "timeout_write": T,
    "timeout_graceful_shutdown": 1,
}


# -- the app -----------------------------------------------------------------------------


class Record:
    """What the app saw, for the test thread to check."""

    def __init__(self) -> None:
        self.calls: list[str] = []  # paths, in order
        self.received: dict[str, int] = {}  # path -> body bytes the app read
        self.disconnects: list[str] = []  # paths whose receive() said http.disconnect
        self.gate = Gate()
        self.stream_done = threading.Event()
        self.stream: dict[str, Any] = {}


STREAM_CHUNK = b"x" * 65536
STREAM_TOTAL = 64 * 1024 * 1024  # far more than the socket buffers hold


def make_app(rec: Record):
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        path = scope["path"]
        rec.calls.append(path)
        if path == "/stream":
            await stream(receive, send)
            return
        if path == "/sleepy":  # the app is busy before it reads its body
            await asyncio.sleep(float(scope["query_string"] or 1))
        elif path == "/gate":
            await rec.gate.wait()
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                rec.disconnects.append(path)
                break
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        rec.received[path] = size
        body = b"%d" % size
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"%d" % len(body))],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def stream(receive, send):
        """Stream until STREAM_TOTAL is sent or the client is gone."""
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.ensure_future(watch())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        sent = 0
        called = returned = time.monotonic()
        error = None
        try:
            while sent < STREAM_TOTAL and not gone.is_set():
                called = time.monotonic()
                await send({"type": "http.response.body", "body": STREAM_CHUNK, "more_body": True})
                returned = time.monotonic()
                sent += len(STREAM_CHUNK)
                await asyncio.sleep(0)  # let the watcher see a disconnect
        except Exception as exc:  # a send that raises counts as seeing the disconnect
            error = exc
        finally:
            watcher.cancel()
        rec.stream.update(
            sent=sent,
            gone=gone.is_set(),
            error=error,
            last_send=returned - called,  # the send that waited on the client
        )
        rec.stream_done.set()

    return app


# -- fixtures and helpers ----------------------------------------------------------------


@pytest.fixture
def socks(serve) -> Iterator[list[socket.socket]]:
    """Sockets to close before the servers stop (a stop waits for open connections)."""
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        with contextlib.suppress(OSError):
            sock.close()


@pytest.fixture
def start(serve, socks):
    """``start(**config)``: a server with the short timeouts; returns (server, record)."""

    def run(**options: Any):
        rec = Record()
        srv = serve(make_app(rec), **{**SHORT, **options})
        return srv, rec

    return run


def connect(port: int, socks: list[socket.socket], rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    socks.append(sock)
    return sock


def raw(port: int, socks: list[socket.socket]) -> RawClient:
    client = RawClient(port)
    socks.append(client.sock)
    return client


def wrap(sock: socket.socket) -> RawClient:
    """A RawClient (for reading whole responses) over a socket opened here."""
    client = RawClient.__new__(RawClient)
    client.sock, client.buf = sock, b""
    return client


def get(port: int, path: str = "/", timeout: float = 2.0) -> bytes:
    """One request on a fresh connection: the response."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request("GET", path, headers=[("Connection", "close")]))
        return wrap(sock).response()


def assert_served(port: int) -> None:
    resp = parse_response(get(port))
    assert resp.status == 200, resp


def read_closed(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Read until the server closes: (bytes, monotonic time of the close)."""
    data = recv_until_closed(sock, timeout)
    return data, time.monotonic()


class Dripper(threading.Thread):
    """Sends ``data`` one byte per DRIP seconds, until it ends, the server closes, or stop."""

    def __init__(self, sock: socket.socket, data: bytes) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.data = data
        self.stop = threading.Event()
        self.first: float | None = None  # when the first byte left

    def run(self) -> None:
        for i in range(len(self.data)):
            try:
                self.sock.send(self.data[i : i + 1])
            except OSError:
                return
            if self.first is None:
                self.first = time.monotonic()
            if self.stop.wait(DRIP):
                return


def send_slowly(sock: socket.socket, data: bytes, pieces: int) -> float:
    """Send ``data`` in ``pieces`` parts DRIP seconds apart; the seconds it took."""
    size = -(-len(data) // pieces)
    first = time.monotonic()
    for i in range(pieces):
        if i:
            time.sleep(DRIP)  # the slow client's pace, not a wait for the server
        sock.sendall(data[i * size : (i + 1) * size])
    return time.monotonic() - first


def slow_head() -> bytes:
    """A request head that never ends (far more bytes than any test sends)."""
    return b"GET / HTTP/1.1\r\nHost: example.org\r\nX-Slow: " + b"a" * 10000


def drip_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Slowloris on ``sock``: (what the server sent, seconds from first byte to close)."""
    dripper = Dripper(sock, slow_head())
    dripper.start()
    try:
        data, closed = read_closed(sock, timeout)
    finally:
        dripper.stop.set()
        dripper.join(2)
    assert dripper.first is not None
    return data, closed - dripper.first


def assert_408(data: bytes) -> None:
    resp = parse_response(data)
    assert resp.status == 408, data
    assert resp.header("connection") == "close"
    assert resp.complete


# -- slowloris: the request head deadline ------------------------------------------------


@pytest.mark.timeout(20)
def test_slowloris_gets_408_then_close_while_others_are_served(start, socks, http_impl):
    srv, rec = start(http=http_impl)
    attacker = connect(srv.port, socks)
    dripper = Dripper(attacker, slow_head())
    dripper.start()
    try:
        wait_until(lambda: dripper.first is not None, 2, "the first byte")
        # during the attack, another client is served at once
        assert_served(srv.port)
        assert time.monotonic() - dripper.first < T, "served only after the attack ended"
        data, closed = read_closed(attacker, T + SLACK + 1)
    finally:
        dripper.stop.set()
        dripper.join(2)
    elapsed = closed - dripper.first
    assert_408(data)
    assert T - EARLY <= elapsed <= T + SLACK, elapsed
    assert rec.calls == ["/"]  # the attacker's request never reached the app


@pytest.mark.timeout(20)
def test_connection_that_sends_nothing_is_closed_silently(start, socks, http_impl):
    srv, rec = start(http=http_impl)
    sock = connect(srv.port, socks)
    opened = time.monotonic()
    data, closed = read_closed(sock, T + SLACK + 1)
    assert data == b"", "an idle connection is closed without a response"
    assert T - EARLY <= closed - opened <= T + SLACK
    assert rec.calls == []


@pytest.mark.timeout(20)
def test_head_completed_just_in_time_is_served(start, socks, http_impl):
    srv, rec = start(http=http_impl, timeout_request_header=1.0, timeout_keep_alive=1.0)
    sock = connect(srv.port, socks)
    # 8 pieces, 0.1 s apart: the head is whole after ~0.7 s of its 1 s
    took = send_slowly(sock, request("GET", "/in-time"), 8)
    assert 0.65 < took < 0.9
    resp = parse_response(wrap(sock).response())
    assert resp.status == 200
    assert rec.calls == ["/in-time"]


@pytest.mark.timeout(20)
def test_header_deadline_restarts_for_each_request_on_keep_alive(start, socks, http_impl):
    srv, rec = start(http=http_impl, timeout_request_header=0.6, timeout_keep_alive=0.6)
    sock = connect(srv.port, socks)
    client = wrap(sock)
    began = time.monotonic()
    # two heads, each sent over ~0.4 s: together longer than one header deadline
    for path in ("/one", "/two"):
        send_slowly(sock, request("GET", path), 5)
        assert parse_response(client.response()).status == 200
    assert time.monotonic() - began > 0.6, "not longer than one deadline: proves nothing"
    assert rec.calls == ["/one", "/two"]
    # the third head never ends: 408 within the deadline of its own first byte
    data, elapsed = drip_until_closed(sock, 0.6 + SLACK + 1)
    assert_408(data)
    assert 0.6 - EARLY <= elapsed <= 0.6 + SLACK


@pytest.mark.timeout(20)
def test_slowloris_408_when_keep_alive_is_longer_than_header_timeout(start, socks, http_impl):
    srv, _ = start(http=http_impl, timeout_request_header=T, timeout_keep_alive=4)
    sock = connect(srv.port, socks)
    with contextlib.suppress(TimeoutError):  # not closed in time: the assertion says so
        data, elapsed = drip_until_closed(sock, T + SLACK)
        assert_408(data)
        assert elapsed <= T + SLACK
        return
    pytest.fail(f"no 408 within {T + SLACK} s of the first byte (header timeout {T} s)")


@pytest.mark.timeout(20)
def test_head_begun_during_a_response_gets_408(start, socks, http_impl):
    srv, rec = start(http=http_impl)
    client = raw(srv.port, socks)
    client.send(request("GET", "/gate"))
    wait_until(lambda: rec.calls == ["/gate"], 2, "the first request to run")
    client.send(b"GET /two HTTP/1.1\r\nHo")  # the next head begins, then stalls
    proto = connections(srv)[0].handler.proto
    # the parser has those bytes (httptools: inside a head; h11: collecting one)
    wait_until(lambda: proto.in_head, 2)
    rec.gate.open()
    assert parse_response(client.response()).status == 200
    answered = time.monotonic()
    data, closed = read_closed(client.sock, T + SLACK + 1)
    assert closed - answered <= T + SLACK
    assert_408(client.buf + data)


# -- the request body deadline -----------------------------------------------------------


@pytest.mark.timeout(20)
def test_stalled_content_length_body_gets_408(start, socks, http_impl):
    srv, rec = start(http=http_impl)
    sock = connect(srv.port, socks)
    sock.sendall(request("POST", "/echo", headers=[("Content-Length", "100")]) + b"0123456789")
    sent = time.monotonic()
    data, closed = read_closed(sock, T + SLACK + 1)
    assert_408(data)
    assert T - EARLY <= closed - sent <= T + SLACK
    wait_until(lambda: "/echo" in rec.received, 2, "the app to finish")
    assert rec.disconnects == ["/echo"]  # the app reading the body saw the client go
    assert rec.received["/echo"] == 10


@pytest.mark.timeout(20)
def test_stalled_chunked_body_gets_408(start, socks, http_impl):
    srv, rec = start(http=http_impl)
    sock = connect(srv.port, socks)
    head = request("POST", "/echo", headers=[("Transfer-Encoding", "chunked")])
    sock.sendall(head + b"a\r\n0123456789\r\n")
    sent = time.monotonic()
    data, closed = read_closed(sock, T + SLACK + 1)
    assert_408(data)
    assert T - EARLY <= closed - sent <= T + SLACK
    wait_until(lambda: "/echo" in rec.received, 2, "the app to finish")
    assert rec.disconnects == ["/echo"]
    assert rec.received["/echo"] == 10


@pytest.mark.timeout(20)
def test_stalled_body_408_when_keep_alive_is_longer_than_body_timeout(start, socks, http_impl):
    srv, _ = start(http=http_impl, timeout_request_body=T, timeout_keep_alive=4)
    sock = connect(srv.port, socks)
    sock.sendall(request("POST", "/echo", headers=[("Content-Length", "100")]) + b"0123456789")
    try:
        data, _ = read_closed(sock, T + SLACK)
    except TimeoutError:
        pytest.fail(f"no 408 within {T + SLACK} s of the stall (body timeout {T} s)")
    assert_408(data)


@pytest.mark.timeout(20)
def test_body_deadline_does_not_run_while_the_app_is_not_reading(start, socks, http_impl):
    srv, rec = start(http=http_impl)
    size = 4 * 1024 * 1024
    sock = connect(srv.port, socks)
    # the app sleeps 1.5 s (3 body deadlines) before it reads: the body fills the buffers
    # and the server stops reading; the client, stuck in sendall, is not to blame
    message = request("POST", "/sleepy", body=b"b" * size).replace(b"/sleepy", b"/sleepy?1.5")
    sender = threading.Thread(target=sock.sendall, args=(message,), daemon=True)
    sender.start()

    def paused() -> bool:
        conns = connections(srv)
        return bool(conns) and conns[0].reading_paused

    wait_until(paused, 2, "the server to stop reading (the app does not read)")
    resp = parse_response(wrap(sock).response())
    sender.join(5)
    assert resp.status == 200, resp
    assert resp.body == b"%d" % size  # the whole body, read after the sleep
    assert rec.disconnects == []


@pytest.mark.timeout(20)
def test_stalled_body_of_pipelined_request_gets_408(start, socks, http_impl):
    srv, rec = start(http=http_impl, timeout_keep_alive=0.3, timeout_request_header=0.3)
    client = raw(srv.port, socks)
    client.send(request("GET", "/gate"))
    wait_until(lambda: rec.calls == ["/gate"], 2, "the first request to run")
    conn = connections(srv)[0]
    wait_until(lambda: conn._timer is None, 2, "the keep-alive timer to pass")
    # pipelined: a body that stalls after 10 of 100 bytes
    client.send(request("POST", "/echo", headers=[("Content-Length", "100")]) + b"0123456789")
    wait_until(lambda: conn.handler._pipeline, 2, "the pipelined request to be queued")
    rec.gate.open()
    first = parse_response(client.response())
    assert first.status == 200
    started = time.monotonic()
    client.sock.settimeout(T + SLACK)
    try:
        data = client.read_until_closed()
    except TimeoutError:
        pytest.fail(f"the stalled body got no 408 within {T + SLACK} s")
    assert_408(data)
    assert time.monotonic() - started <= T + SLACK


# -- the write deadline ------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_client_that_does_not_read_is_aborted(start, socks):
    srv, rec = start()
    port = srv.port
    sock = connect(port, socks, rcvbuf=4096)
    sock.sendall(request("GET", "/stream"))
    wait_until(
        lambda: any(c.write_paused for c in connections(srv)), 5, "the server to stop writing"
    )
    stalled = time.monotonic()
    # while that client holds its response, another is served
    assert_served(port)
    assert not rec.stream_done.is_set()
    assert rec.stream_done.wait(T + SLACK + 2), "the non-reading client was never cut off"
    stream = rec.stream
    assert stream["gone"] or stream["error"] is not None, stream
    assert stream["sent"] < STREAM_TOTAL
    # the send that waited on the client ended after about --timeout-write
    assert T - EARLY <= stream["last_send"] <= T + SLACK, stream
    assert time.monotonic() - stalled <= T + SLACK + 0.5
    wait_until(lambda: len(connections(srv)) == 0, 2, "the connection to be gone")
    # the client sees the connection end (a reset: the server aborted it)
    sock.settimeout(2)
    with contextlib.suppress(ConnectionResetError):
        while sock.recv(1 << 20):
            pass
    assert_served(port)


# -- HTTP/2 by hand ----------------------------------------------------------------------


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class H2Client:
    """HTTP/2 prior knowledge by hand: frames from ``hyperframe``, HPACK from ``hpack``.

    (The ``h2`` library refuses frames after a GOAWAY, even on the streams it lets finish.)
    """

    def __init__(self, port: int, socks: list[socket.socket]) -> None:
        self.sock = connect(port, socks)
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.buf = b""
        self.frames: list[Frame] = []
        self.next_id = 1
        self.sock.sendall(PREFACE + SettingsFrame(0).serialize())

    def send_request(
        self, path: str, method: str = "GET", extra: list[tuple[str, str]] | None = None
    ) -> int:
        stream_id, self.next_id = self.next_id, self.next_id + 2
        fields = [(":method", method), (":scheme", "http"), (":path", path), (":authority", "a")]
        block = self.encoder.encode([*fields, *(extra or [])])
        frame = HeadersFrame(stream_id, block, flags=["END_HEADERS"])
        if method == "GET":
            frame.flags.add("END_STREAM")
        self.sock.sendall(frame.serialize())
        return stream_id

    def send_data(self, stream_id: int, data: bytes, end: bool = False) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(
                DataFrame(stream_id, data, flags=["END_STREAM"] if end else []).serialize()
            )

    def frame(self) -> Frame | None:
        """The next frame; None at EOF (the socket timeout applies)."""
        while len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(self.buf[:3], "big"):
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                return None
            self.buf += data
        frame, length = Frame.parse_frame_header(memoryview(self.buf[:9]))
        frame.parse_body(memoryview(self.buf[9 : 9 + length]))
        self.buf = self.buf[9 + length :]
        if isinstance(frame, SettingsFrame) and "ACK" not in frame.flags:
            with contextlib.suppress(OSError):  # (the server may have closed already)
                self.sock.sendall(SettingsFrame(0, flags=["ACK"]).serialize())
        self.frames.append(frame)
        return frame

    def response(self, stream_id: int, timeout: float = 3) -> tuple[int, bytes]:
        """(status, body) on ``stream_id``; (0, b"") if it was reset or the connection ended."""
        self.sock.settimeout(timeout)
        status, body = 0, b""
        while (frame := self.frame()) is not None:
            if frame.stream_id != stream_id:
                continue
            if isinstance(frame, RstStreamFrame):
                return 0, body
            if isinstance(frame, HeadersFrame):
                status = int(dict(self.decoder.decode(frame.data))[":status"])
            elif isinstance(frame, DataFrame):
                body += frame.data
            if "END_STREAM" in frame.flags:
                return status, body
        return 0, body

    def until_closed(self, timeout: float) -> list[Frame]:
        self.sock.settimeout(timeout)
        start = len(self.frames)
        while self.frame() is not None:
            pass
        return self.frames[start:]


# -- limit_request_body ------------------------------------------------------------------

LIMIT = 1000


@pytest.mark.timeout(20)
@pytest.mark.parametrize("send_body", [False, True], ids=["head-only", "with-body"])
def test_content_length_over_limit_gets_413_before_the_app(start, socks, http_impl, send_body):
    srv, rec = start(http=http_impl, limit_request_body=LIMIT)
    sock = connect(srv.port, socks)
    body = b"z" * (LIMIT + 1)
    head = request("POST", "/echo", headers=[("Content-Length", str(LIMIT + 1))])
    sock.sendall(head + (body if send_body else b""))
    data, _ = read_closed(sock, 3)  # head-only: the 413 does not wait for the body
    resp = parse_response(data)
    assert resp.status == 413, data
    assert resp.header("connection") == "close"
    assert rec.calls == []
    assert_served(srv.port)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_exactly_at_limit_is_served(start, socks, http_impl, chunked):
    srv, rec = start(http=http_impl, limit_request_body=LIMIT)
    client = raw(srv.port, socks)
    body = b"z" * LIMIT
    if chunked:
        head = request("POST", "/echo", headers=[("Transfer-Encoding", "chunked")])
        client.send(head + b"1f4\r\n" + body[:500] + b"\r\n1f4\r\n" + body[500:] + b"\r\n0\r\n\r\n")
    else:
        client.send(request("POST", "/echo", body=body))
    resp = parse_response(client.response())
    assert resp.status == 200
    assert resp.body == b"%d" % LIMIT
    assert resp.header("connection") is None
    client.send(request("GET", "/again"))  # the connection stays open
    assert parse_response(client.response()).status == 200
    assert rec.calls == ["/echo", "/again"]


@pytest.mark.timeout(20)
def test_chunked_body_crossing_the_limit_gets_413(start, socks, http_impl):
    srv, rec = start(http=http_impl, limit_request_body=LIMIT)
    sock = connect(srv.port, socks)
    head = request("POST", "/echo", headers=[("Transfer-Encoding", "chunked")])
    sock.sendall(head + b"258\r\n" + b"z" * 600 + b"\r\n")  # 600 bytes: under the limit
    wait_until(lambda: rec.calls == ["/echo"], 2, "the app to start")
    sock.sendall(b"258\r\n" + b"z" * 600 + b"\r\n")  # 1200: over it
    data, _ = read_closed(sock, 3)
    resp = parse_response(data)
    assert resp.status == 413, data
    assert resp.header("connection") == "close"
    wait_until(lambda: "/echo" in rec.received, 2, "the app to finish")
    assert rec.disconnects == ["/echo"]  # the app reading it saw the client go
    assert rec.received["/echo"] <= LIMIT  # never a byte past the limit
    assert_served(srv.port)


@pytest.mark.timeout(20)
def test_http2_content_length_over_limit_gets_413(start):
    srv, rec = start(limit_request_body=LIMIT, timeout_keep_alive=5)
    with httpx.Client(http1=False, http2=True, timeout=3) as client:
        resp = client.post(srv.url + "/echo", content=b"z" * (2 * LIMIT))
        assert resp.http_version == "HTTP/2"
        assert resp.status_code == 413, (resp.status_code, resp.text)
        # the connection goes on: only that stream was refused
        resp = client.post(srv.url + "/echo", content=b"z" * LIMIT)
        assert (resp.status_code, resp.text) == (200, str(LIMIT))
    assert rec.calls == ["/echo"]  # the refused request never reached the app


@pytest.mark.timeout(20)
def test_http2_body_crossing_the_limit_gets_413(start, socks):
    srv, rec = start(limit_request_body=LIMIT, timeout_keep_alive=5)
    client = H2Client(srv.port, socks)
    stream_id = client.send_request("/echo", method="POST")  # no content-length
    client.send_data(stream_id, b"z" * 600)
    wait_until(lambda: rec.calls == ["/echo"], 2, "the app to start")
    client.send_data(stream_id, b"z" * 600)  # 1200: over the limit
    status, body = client.response(stream_id)
    assert status == 413, body
    wait_until(lambda: "/echo" in rec.received, 2, "the app to finish")
    assert rec.disconnects == ["/echo"]
    assert rec.received["/echo"] <= LIMIT
    # another stream on the same connection is served
    stream_id = client.send_request("/after")
    assert client.response(stream_id) == (200, b"0")


# -- max_requests_per_connection ---------------------------------------------------------


@pytest.mark.timeout(20)
def test_third_response_closes_the_connection(start, socks, http_impl):
    srv, rec = start(http=http_impl, max_requests_per_connection=3, timeout_keep_alive=5)
    client = raw(srv.port, socks)
    for n in (1, 2):
        client.send(request("GET", f"/{n}"))
        resp = parse_response(client.response())
        assert resp.status == 200
        assert resp.header("connection") is None
    client.send(request("GET", "/3"))
    resp = parse_response(client.response())
    assert resp.status == 200
    assert resp.header("connection") == "close"
    assert client.is_closed(2)  # closed at once, not after the keep-alive deadline
    assert rec.calls == ["/1", "/2", "/3"]


@pytest.mark.timeout(20)
def test_pipelined_requests_beyond_the_maximum_are_not_served(start, socks, http_impl):
    srv, rec = start(http=http_impl, max_requests_per_connection=3, timeout_keep_alive=5)
    client = raw(srv.port, socks)
    client.send(b"".join(request("GET", f"/{n}") for n in range(1, 6)))
    rest = client.read_until_closed()
    statuses = rest.count(b"HTTP/1.1 200")
    assert statuses == 3, rest
    assert rest.lower().count(b"connection: close") == 1
    assert rec.calls == ["/1", "/2", "/3"]


@pytest.mark.timeout(20)
def test_http2_goaway_after_max_requests(start, socks):
    srv, rec = start(max_requests_per_connection=3, timeout_keep_alive=5)
    client = H2Client(srv.port, socks)
    for n in (1, 2, 3):
        stream_id = client.send_request(f"/{n}")
        assert client.response(stream_id) == (200, b"0")
    goaways = [f for f in client.frames if isinstance(f, GoAwayFrame)]
    assert len(goaways) == 1, "one GOAWAY, with the third request"
    assert goaways[0].last_stream_id == 5  # the third request is served
    assert goaways[0].error_code == 0
    # the connection ends well before the keep-alive deadline
    began = time.monotonic()
    client.until_closed(2)
    assert time.monotonic() - began < 1
    assert rec.calls == ["/1", "/2", "/3"]


@pytest.mark.timeout(20)
def test_http2_stream_beyond_the_maximum_is_not_served(start, socks):
    srv, rec = start(max_requests_per_connection=2, timeout_keep_alive=5)
    client = H2Client(srv.port, socks)
    # three streams at once: the second is the last one served
    first, second, third = (client.send_request(f"/{n}") for n in (1, 2, 3))
    assert client.response(first) == (200, b"0")
    assert client.response(second) == (200, b"0")
    client.until_closed(2)
    goaways = [f for f in client.frames if isinstance(f, GoAwayFrame)]
    assert goaways and goaways[0].last_stream_id == second
    assert not any(f.stream_id == third and isinstance(f, HeadersFrame) for f in client.frames)
    assert sorted(rec.calls) == ["/1", "/2"]


# -- limit_connections -------------------------------------------------------------------


def keep_alive_client(port: int, socks: list[socket.socket], path: str) -> RawClient:
    client = raw(port, socks)
    client.send(request("GET", path))
    assert parse_response(client.response()).status == 200
    return client


def no_response(client: RawClient, within: float) -> bool:
    client.sock.settimeout(within)
    try:
        data = client.sock.recv(65536)
    except TimeoutError:
        return True
    client.buf += data
    return False


@pytest.mark.timeout(20)
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_limit_connections_holds_the_next_in_the_backlog(start, socks, loop):
    srv, rec = start(limit_connections=2, timeout_keep_alive=5, loop=loop)
    port = srv.port  # (the listening server is closed and reopened as the limit is hit)
    first = keep_alive_client(port, socks, "/a")
    keep_alive_client(port, socks, "/b")
    wait_until(lambda: len(connections(srv)) == 2, 2, "two connections")
    third = raw(port, socks)  # the TCP handshake completes: the kernel's backlog holds it
    third.send(request("GET", "/c"))
    assert no_response(third, 0.5), "served beyond --limit-connections"
    assert len(connections(srv)) == 2
    assert rec.calls == ["/a", "/b"]
    first.close()
    third.sock.settimeout(3)
    resp = parse_response(third.response())
    assert resp.status == 200
    assert rec.calls == ["/a", "/b", "/c"]
    assert len(connections(srv)) <= 2


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    "loop",
    [
        pytest.param("asyncio"),
        "uvloop",
    ],
)
def test_limit_connections_lets_in_one_per_close(start, socks, loop):
    srv, rec = start(limit_connections=2, timeout_keep_alive=5, loop=loop)
    port = srv.port
    first = keep_alive_client(port, socks, "/a")
    second = keep_alive_client(port, socks, "/b")
    wait_until(lambda: len(connections(srv)) == 2, 2, "two connections")
    waiting = [raw(port, socks) for _ in range(3)]
    for n, client in enumerate(waiting):
        client.send(request("GET", f"/w{n}"))
    first.close()
    wait_until(lambda: len(rec.calls) >= 3, 3, "one waiting client to be served")
    # one close, one new connection: the other two still wait
    with contextlib.suppress(AssertionError):
        wait_until(lambda: len(rec.calls) > 3, 0.5)
    assert len(rec.calls) == 3, rec.calls
    assert len(connections(srv)) <= 2
    second.close()
    wait_until(lambda: len(rec.calls) >= 4, 3, "a second waiting client to be served")


# -- many slowloris connections at once --------------------------------------------------


@pytest.mark.timeout(20)
def test_many_slowloris_connections(start, http_impl, socks):
    """100 dripping and 100 silent connections: all closed in time; others still served."""
    srv, _ = start(http=http_impl)
    port = srv.port
    drip_count = idle_count = 100
    head = slow_head()
    sel = selectors.DefaultSelector()
    state: dict[socket.socket, dict[str, Any]] = {}
    for n in range(drip_count + idle_count):
        sock = connect(port, socks)
        sock.setblocking(False)
        dripping = n < drip_count
        info = {"drip": dripping, "start": time.monotonic(), "sent": 0, "data": b""}
        if dripping:
            sock.send(head[:1])
            info["sent"] = 1
            info["start"] = time.monotonic()
        state[sock] = info
        sel.register(sock, selectors.EVENT_READ)
    open_socks = set(state)
    latencies: list[float] = []
    next_tick = time.monotonic() + DRIP
    deadline = time.monotonic() + T + SLACK + 2
    while open_socks and time.monotonic() < deadline:
        for key, _ in sel.select(max(0.0, next_tick - time.monotonic())):
            sock = key.fileobj
            info = state[sock]  # type: ignore[index]
            try:
                data = sock.recv(65536)  # type: ignore[union-attr]
            except ConnectionResetError:
                data = b""
            if data:
                info["data"] += data
                continue
            info["closed"] = time.monotonic() - info["start"]
            sel.unregister(sock)
            open_socks.discard(sock)  # type: ignore[arg-type]
        if time.monotonic() >= next_tick:
            next_tick += DRIP
            for sock in open_socks:
                info = state[sock]
                if info["drip"]:
                    with contextlib.suppress(OSError):
                        sock.send(head[info["sent"] : info["sent"] + 1])
                        info["sent"] += 1
            # a well-behaved client, on a new connection, every tick of the attack
            began = time.monotonic()
            assert parse_response(get(port, timeout=1)).status == 200
            latencies.append(time.monotonic() - began)
    sel.close()
    assert not open_socks, f"{len(open_socks)} attack connections still open"
    drips = [i["closed"] for i in state.values() if i["drip"]]
    idles = [i["closed"] for i in state.values() if not i["drip"]]
    for info in state.values():
        if info["drip"]:
            assert_408(info["data"])
        else:
            assert info["data"] == b""
    timing = (
        f"{http_impl}: dripping closed after min {min(drips):.3f} / median "
        f"{statistics.median(drips):.3f} / max {max(drips):.3f} s; silent after min "
        f"{min(idles):.3f} / median {statistics.median(idles):.3f} / max {max(idles):.3f} s; "
        f"{len(latencies)} normal requests, max latency {max(latencies) * 1000:.1f} ms"
    )
    print(timing)
    assert min(drips) >= T - EARLY and max(drips) <= T + SLACK, timing
    assert min(idles) >= T - EARLY and max(idles) <= T + SLACK, timing
    assert len(latencies) >= 4, timing
    assert max(latencies) < 0.5, timing
