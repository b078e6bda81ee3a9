"""Helpers of the framework compatibility tests (fixtures are in conftest.py).

Synchronization between the test thread and the apps (which run on the
server's event loop, in the server thread) is by polling with a deadline
(``wait_until``) or by a ``Gate`` the test opens; nothing sleeps for a fixed
time. ``H2Conn`` is a small blocking HTTP/2 client on the ``h2`` library, for
what httpx cannot do: reset one stream, or open a WebSocket over HTTP/2
(RFC 8441 extended CONNECT).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import random
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import httpx
import websockets.sync.client
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RemoteSettingsChanged,
    ResponseReceived,
    StreamEnded,
    StreamReset,
)
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import RawClient

# -- synchronization ---------------------------------------------------------------------


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    """Poll ``predicate`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.002)


class Gate:
    """Opened by the test thread, awaited by an app on the server's loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open = False
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def open(self) -> None:
        with self._lock:
            self._open = True
            waiters, self._waiters = self._waiters, []
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(event.set)

    async def wait(self, timeout: float = 10.0) -> None:
        event = asyncio.Event()
        with self._lock:
            if self._open:
                return
            self._waiters.append((asyncio.get_running_loop(), event))
        await asyncio.wait_for(event.wait(), timeout)


class LoopBarrier:
    """Holds each request until ``n`` are in flight at once (on the server's loop)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.count = 0
        self.event: asyncio.Event | None = None

    async def wait(self) -> None:
        if self.event is None:
            self.event = asyncio.Event()
        self.count += 1
        if self.count >= self.n:
            self.event.set()
        await asyncio.wait_for(self.event.wait(), 10)


# -- payloads ----------------------------------------------------------------------------


def payload(size: int, seed: int = 0) -> bytes:
    """``size`` pseudo-random bytes (every byte value occurs, CR and LF included)."""
    return random.Random(seed).randbytes(size)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


SCOPE_VERSIONS = {"http1": "1.1", "http2": "2"}  # scope["http_version"] by protocol
FORM_TEXT = "ünïcode & symbols = + %"
# A url-encoded form of several MiB, in fields under 1 MiB each once encoded (Starlette's
# and FastAPI's default limit per field): what the app reports is the joined big fields.
BIG_FIELD_NAMES = [f"big{i}" for i in range(5)]
_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 &=+%é"
BIG_FIELDS = {
    name: "".join(random.Random(i).choices(_ALPHABET, k=700_000))
    for i, name in enumerate(BIG_FIELD_NAMES)
}
BIG_JOINED = "".join(BIG_FIELDS.values())
UPLOAD_A = payload(4 * 1024 * 1024 + 13, seed=1)  # two files, 5 MiB together
UPLOAD_B = payload(1024 * 1024 + 1, seed=2)


def form_data() -> dict[str, str]:
    return {"text": FORM_TEXT, **BIG_FIELDS}


def form_echo(text: str, big_fields: list[str]) -> dict[str, Any]:
    """What a form endpoint answers, from the text field and the big fields in order."""
    big = "".join(big_fields)
    return {"text": text, "big_len": len(big), "big_sha": sha256(big.encode())}


def check_form_echo(echo: dict[str, Any]) -> None:
    assert echo == {
        "text": FORM_TEXT,
        "big_len": len(BIG_JOINED),
        "big_sha": sha256(BIG_JOINED.encode()),
    }


def multipart_files() -> dict[str, tuple[str, bytes, str]]:
    return {
        "a": ("a.bin", UPLOAD_A, "application/octet-stream"),
        "b": ("b.dat", UPLOAD_B, "application/x-test"),
    }


def check_multipart_echo(echo: dict[str, Any]) -> None:
    """What a multipart endpoint answers: a field, and each file's name, size and hash."""
    assert echo == {
        "field": FORM_TEXT,
        "files": {
            "a": {"filename": "a.bin", "size": len(UPLOAD_A), "sha": sha256(UPLOAD_A)},
            "b": {"filename": "b.dat", "size": len(UPLOAD_B), "sha": sha256(UPLOAD_B)},
        },
    }


def parse_sse(text: str) -> list[dict[str, str]]:
    """The events of a text/event-stream body (comments dropped, data lines joined)."""
    events = []
    for block in re.split(r"\r\n\r\n|\n\n|\r\r", text):
        event: dict[str, str] = {}
        for line in re.split(r"\r\n|\n|\r", block):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            event[name] = f"{event[name]}\n{value}" if name in event else value
        if event:
            events.append(event)
    return events


# -- raw HTTP/1.1 ------------------------------------------------------------------------


def h1_request(method: str, path: str, body: bytes = b"", content_type: str = "") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: example.org"]
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    if body or method in {"POST", "PUT"}:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def split_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-cased names) and decoded body of one raw HTTP/1.1 response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        decoded = b""
        rest = body
        while True:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            decoded += rest[:size]
            rest = rest[size + 2 :]
        body = decoded
    return status, headers, body


def pipelined(port: int, requests: list[bytes]) -> list[tuple[int, dict[str, str], bytes]]:
    """Send ``requests`` in one write on one connection; the responses, in order."""
    client = RawClient(port)
    try:
        client.send(b"".join(requests))
        return [split_response(client.response()) for _ in requests]
    finally:
        client.close()


# -- HTTP/2 by hand ----------------------------------------------------------------------


class H2Stream:
    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.data = bytearray()
        self.ended = False
        self.reset: int | None = None


class H2Conn:
    """An ``h2`` client connection (prior knowledge) over a blocking socket."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        config = H2Configuration(client_side=True, header_encoding="utf-8")
        self.conn = H2Connection(config=config)
        self.conn.initiate_connection()
        self.streams: dict[int, H2Stream] = {}
        self.settings: dict[int, int] | None = None
        self.terminated = False
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
                self.settings = dict(self.settings or {})
                for code, change in event.changed_settings.items():
                    self.settings[int(code)] = change.new_value
            elif isinstance(event, ConnectionTerminated):
                self.terminated = True
            elif getattr(event, "stream_id", 0):
                stream = self.streams.setdefault(event.stream_id, H2Stream())
                if isinstance(event, ResponseReceived):
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

    def wait(self, predicate: Callable[[], object], what: str) -> None:
        while not predicate():
            try:
                self.pump()
            except TimeoutError:
                raise AssertionError(f"timed out waiting for {what}") from None

    def _open(self, headers: list[tuple[str, str]], end_stream: bool) -> int:
        sid = self.conn.get_next_available_stream_id()
        self.streams[sid] = H2Stream()
        self.conn.send_headers(sid, headers, end_stream=end_stream)
        self.flush()
        return sid

    def request(self, method: str, path: str, headers: Sequence[tuple[str, str]] = ()) -> int:
        fields = [(":method", method), (":scheme", "http"), (":path", path)]
        fields.append((":authority", f"127.0.0.1:{self.port}"))
        return self._open([*fields, *headers], end_stream=True)

    def connect_websocket(self, path: str, headers: Sequence[tuple[str, str]] = ()) -> int:
        fields = [
            (":method", "CONNECT"),
            (":protocol", "websocket"),
            (":scheme", "http"),
            (":path", path),
            (":authority", f"127.0.0.1:{self.port}"),
            ("sec-websocket-version", "13"),
        ]
        return self._open([*fields, *headers], end_stream=False)

    def complete(self, sid: int) -> H2Stream:
        stream = self.streams[sid]
        self.wait(lambda: stream.ended or stream.reset is not None, f"the end of stream {sid}")
        return stream

    def reset(self, sid: int) -> None:
        self.conn.reset_stream(sid, ErrorCodes.CANCEL)
        self.flush()

    def close(self) -> None:
        self.sock.close()


# -- WebSocket clients, over HTTP/1.1 (websockets) and HTTP/2 (H2Conn) --------------------

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


def ws_frame(opcode: int, payload: bytes) -> bytes:
    """One masked client frame."""
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    key = os.urandom(4)
    mask = (key * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")).to_bytes(n, "big")
    return head + key + masked


class H2WebSocket:
    """A WebSocket on one HTTP/2 stream; the interface of websockets' sync client."""

    def __init__(self, port: int, path: str) -> None:
        self.h2 = H2Conn(port)
        assert self.h2.settings is not None
        assert self.h2.settings.get(0x8) == 1, "no SETTINGS_ENABLE_CONNECT_PROTOCOL"
        self.sid = self.h2.connect_websocket(path)
        self.stream = self.h2.streams[self.sid]
        self.h2.wait(lambda: self.stream.headers or self.stream.reset is not None, "handshake")
        assert self.stream.headers.get(":status") == "200", self.stream.headers
        self.buf = b""
        self.close_code: int | None = None
        self.close_reason = ""

    def _send_frame(self, opcode: int, data: bytes) -> None:
        frame = ws_frame(opcode, data)
        for i in range(0, len(frame), 16384):  # the default SETTINGS_MAX_FRAME_SIZE
            self.h2.conn.send_data(self.sid, frame[i : i + 16384])
        self.h2.flush()

    def send(self, message: str | bytes) -> None:
        if isinstance(message, str):
            self._send_frame(OP_TEXT, message.encode())
        else:
            self._send_frame(OP_BINARY, message)

    def _readable(self) -> bool:
        stream = self.stream
        return bool(stream.data) or stream.ended or stream.reset is not None

    def _frame(self) -> tuple[bool, int, bytes]:
        while True:
            buf = self.buf
            if len(buf) >= 2:
                n = buf[1] & 0x7F
                start = 2
                if n == 126:
                    n, start = int.from_bytes(buf[2:4], "big"), 4
                elif n == 127:
                    n, start = int.from_bytes(buf[2:10], "big"), 10
                assert not buf[1] & 0x80, "a server frame is never masked"
                if len(buf) >= start + n:
                    self.buf = buf[start + n :]
                    return bool(buf[0] & 0x80), buf[0] & 0x0F, buf[start : start + n]
            stream = self.stream
            self.h2.wait(self._readable, "a WebSocket frame")
            if not stream.data:
                raise AssertionError("the stream ended without a frame")
            self.buf += bytes(stream.data)
            stream.data.clear()

    def recv(self, timeout: float = 10) -> str | bytes:
        parts: list[bytes] = []
        kind = None
        while True:
            fin, opcode, data = self._frame()
            if opcode == OP_PING:
                self._send_frame(OP_PONG, data)
                continue
            if opcode == OP_PONG:
                continue
            if opcode == OP_CLOSE:
                self.close_code = int.from_bytes(data[:2], "big") if data else 1005
                self.close_reason = data[2:].decode()
                with contextlib.suppress(Exception):
                    self._send_frame(OP_CLOSE, data[:2])
                raise ConnectionClosedByServer(self.close_code, self.close_reason)
            if opcode != OP_CONT:
                kind = opcode
            parts.append(data)
            if fin:
                message = b"".join(parts)
                return message.decode() if kind == OP_TEXT else message

    def close(self, code: int = 1000) -> None:
        self._send_frame(OP_CLOSE, code.to_bytes(2, "big"))
        with contextlib.suppress(ConnectionClosedByServer, AssertionError, OSError):
            while True:
                self.recv()
        self.h2.close()


class ConnectionClosedByServer(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


@contextlib.contextmanager
def websocket(srv: Any, protocol: str, path: str) -> Iterator[Any]:
    """A WebSocket client to ``srv`` over ``protocol``: ``send``, ``recv``, ``close``."""
    if protocol == "http1":
        with websockets.sync.client.connect(
            f"ws://127.0.0.1:{srv.port}{path}", open_timeout=10, close_timeout=10
        ) as ws:
            yield ws
    else:
        ws = H2WebSocket(srv.port, path)
        try:
            yield ws
        finally:
            ws.h2.close()


def websocket_handshake(
    srv: Any, protocol: str, path: str, subprotocols: Sequence[str] = ()
) -> tuple[int, dict[str, str], bytes]:
    """Open a WebSocket and close it: the handshake's status (101 over HTTP/1.1 or
    200 over HTTP/2 when accepted), response headers, and the body of a denial."""
    if protocol == "http1":
        url = f"ws://127.0.0.1:{srv.port}{path}"
        try:
            with websockets.sync.client.connect(
                url, subprotocols=list(subprotocols) or None, open_timeout=10
            ) as ws:
                response = ws.response
                body = b""
        except InvalidStatus as exc:
            response = exc.response
            body = bytes(response.body or b"")
        assert response is not None
        headers = {name.lower(): value for name, value in response.headers.raw_items()}
        return response.status_code, headers, body
    h2 = H2Conn(srv.port)
    try:
        extra = [("sec-websocket-protocol", ", ".join(subprotocols))] if subprotocols else []
        sid = h2.connect_websocket(path, extra)
        stream = h2.streams[sid]
        h2.wait(lambda: stream.headers or stream.reset is not None, "the handshake's answer")
        status = int(stream.headers[":status"])
        if status != 200:
            h2.complete(sid)
        headers = {name: value for name, value in stream.headers.items() if name[0] != ":"}
        return status, headers, bytes(stream.data) if status != 200 else b""
    finally:
        h2.close()


def server_close(ws: Any) -> tuple[int, str]:
    """Wait for the server to close ``ws``; its close code and reason."""
    try:
        message = ws.recv(timeout=10)
    except ConnectionClosed as exc:
        assert exc.rcvd is not None, "closed without a close frame"
        return exc.rcvd.code, exc.rcvd.reason
    except ConnectionClosedByServer as exc:
        return exc.code, exc.reason
    raise AssertionError(f"got {message!r} instead of a close")


def check_websocket_echo(
    srv: Any,
    protocol: str,
    events: list[Any],
    path: str = "/ws",
    disconnect: tuple[str, object] = ("disconnect", 1000),
) -> None:
    """The echo WebSocket every app serves at ``path``.

    Text ``t`` is answered ``echo:t``, bytes come back reversed, ``bye`` makes
    the app close with 4001 "bye"; the app appends ``disconnect`` (by default
    ``("disconnect", code)``) to ``events`` when the client closes.
    """
    with websocket(srv, protocol, path) as ws:
        ws.send("hello")
        assert ws.recv(timeout=10) == "echo:hello"
        ws.send(b"\x00\x01\x02\xff")
        assert ws.recv(timeout=10) == b"\xff\x02\x01\x00"
        ws.send("ünï")
        assert ws.recv(timeout=10) == "echo:ünï"
        big = payload(256 * 1024, seed=3)
        ws.send(big)
        assert ws.recv(timeout=10) == big[::-1]
        ws.close()
    wait_until(lambda: disconnect in events, what="the app to see the close")
    with websocket(srv, protocol, path) as ws:
        ws.send("bye")
        assert server_close(ws) == (4001, "bye")


# -- client disconnects ------------------------------------------------------------------


def read_first_chunk_then_close(client: Any, path: str, expected: bytes) -> None:
    """Stream ``path``, read until ``expected`` arrived, then close the whole client."""
    with client, client.stream("GET", path) as response:
        assert response.status_code == 200
        got = b""
        for chunk in response.iter_raw():
            got += chunk
            if len(got) >= len(expected):
                break
        assert got.startswith(expected)


class Abandoned:
    """A request the client gives up on while the app handles it.

    Over HTTP/1.1 the client closes the connection; over HTTP/2 it resets the
    stream (RST_STREAM CANCEL) and keeps the connection, which must stay usable.
    """

    def __init__(self, srv: Any, protocol: str, path: str) -> None:
        self.protocol = protocol
        if protocol == "http1":
            self.raw = RawClient(srv.port)
            self.raw.send(h1_request("GET", path))
        else:
            self.h2 = H2Conn(srv.port)
            self.sid = self.h2.request("GET", path)

    def abandon(self) -> None:
        if self.protocol == "http1":
            self.raw.close()
        else:
            self.h2.reset(self.sid)

    def check_connection_still_usable(self, path: str, body: bytes) -> None:
        """Over HTTP/2: another request on the same connection is answered."""
        if self.protocol == "http2":
            stream = self.h2.complete(self.h2.request("GET", path))
            assert stream.headers[":status"] == "200"
            assert bytes(stream.data) == body
            self.h2.close()


# -- checks shared by the framework modules ------------------------------------------------
#
# Every app records into ``ctx.events`` and waits on ``ctx.gate``; the paths and
# the names of the recorded events are the same in every framework module.

STREAM_CHUNKS = [f"chunk-{i}\n".encode() for i in range(5)]


# -- response bodies every framework's app streams (wrapped in its own response type)


async def gated_stream(ctx: Any) -> AsyncIterator[bytes]:
    """STREAM_CHUNKS[0], "stream-waiting", the gate, the rest, "stream-done"."""
    yield STREAM_CHUNKS[0]
    ctx.events.append("stream-waiting")
    await ctx.gate.wait()
    for chunk in STREAM_CHUNKS[1:]:
        yield chunk
    ctx.events.append("stream-done")


async def endless_stream(ctx: Any) -> AsyncIterator[bytes]:
    """ "first" then "more" forever; records how the stream was stopped."""
    try:
        yield b"first\n"
        while True:
            await asyncio.sleep(0.005)
            yield b"more\n"
    except BaseException as exc:
        ctx.events.append(("stream-stopped", type(exc).__name__))
        raise


async def sse_text() -> AsyncIterator[str]:
    """A comment, three events, and one event whose data has two lines."""
    yield ": comment\n\n"
    for i in range(3):
        yield f"id: {i}\nevent: tick\ndata: {json.dumps({'n': i})}\n\n"
    yield "data: line one\ndata: line two\n\n"


# what read_sse gives for sse_text (or a framework's own rendering of the same events)
SSE_EVENTS = [
    {"id": "0", "event": "tick", "data": '{"n": 0}'},
    {"id": "1", "event": "tick", "data": '{"n": 1}'},
    {"id": "2", "event": "tick", "data": '{"n": 2}'},
    {"data": "line one\nline two"},
]
CONCURRENT = 40


def check_incremental_stream(client: Any, ctx: Any, path: str = "/stream") -> None:
    """``path`` sends STREAM_CHUNKS[0], records "stream-waiting", waits for the gate,
    sends the rest and records "stream-done": the client must get the first chunk
    while the app waits."""
    with client.stream("GET", path) as response:
        assert response.status_code == 200
        chunks = response.iter_raw()
        got = b""
        while len(got) < len(STREAM_CHUNKS[0]):
            got += next(chunks)
        assert got == STREAM_CHUNKS[0]  # before the rest exists
        wait_until(lambda: "stream-waiting" in ctx.events, what="the app to wait")
        assert "stream-done" not in ctx.events
        ctx.gate.open()
        got += b"".join(chunks)
    assert got == b"".join(STREAM_CHUNKS)
    wait_until(lambda: "stream-done" in ctx.events, what="the end of the stream")


def check_background_task(client: Any, ctx: Any, path: str = "/background") -> None:
    """``path`` answers ``{"queued": true}`` and leaves a task that waits for the gate,
    then records "background-done"."""
    response = client.get(path)
    assert response.status_code == 200
    assert response.json() == {"queued": True}
    assert "background-done" not in ctx.events  # the task waits for the gate
    # the connection serves the next request while the task is pending
    assert client.get("/plain").text == "ok"
    ctx.gate.open()
    wait_until(lambda: "background-done" in ctx.events, what="the background task")


def check_abandoned_request(srv: Any, protocol: str, ctx: Any, path: str = "/slow") -> None:
    """``path`` records "slow-start", then "slow-disconnected" once the client is gone."""
    request = Abandoned(srv, protocol, path)
    wait_until(lambda: "slow-start" in ctx.events, what="the request to reach the app")
    request.abandon()
    wait_until(lambda: "slow-disconnected" in ctx.events, what="the app to see the disconnect")
    request.check_connection_still_usable("/plain", b"ok")


def check_contextvars(srv: Any, protocol: str, path: str = "/ctx/{rid}") -> None:
    """CONCURRENT requests at once to ``path``; each app call reads its contextvar
    (``before``: must be unset), sets it, waits until all are in flight, reads it
    again (``after``), and reports the contextvar a middleware set from ``x-rid``.

    The requests come from one ``httpx.AsyncClient`` (over HTTP/2: concurrent
    streams on one connection); a sync client shared by threads is not safe with
    HTTP/2 (httpcore allocates stream IDs and sends HEADERS without one lock, so
    a HEADERS frame can go out with a lower stream ID than one already sent, which
    the server rightly answers with GOAWAY PROTOCOL_ERROR).
    """
    rids = [f"r{i}" for i in range(CONCURRENT)]

    async def main() -> list[Any]:
        async with httpx.AsyncClient(
            base_url=srv.url, http1=protocol == "http1", http2=protocol == "http2", timeout=10
        ) as client:
            return await asyncio.gather(
                *(client.get(path.format(rid=rid), headers={"x-rid": rid}) for rid in rids)
            )

    responses = asyncio.run(main())
    version = {"http1": "HTTP/1.1", "http2": "HTTP/2"}[protocol]
    for rid, response in zip(rids, responses, strict=True):
        assert response.http_version == version
        assert response.status_code == 200, response.text
        assert response.json() == {"before": None, "after": rid, "header": rid}


def check_pipelining(port: int) -> None:
    """Six requests in one write; the apps serve /items/{id}, POST /echo and GET /plain.

    The 405 to ``POST /plain`` leaves its body unread: the server must skip it
    to find the next request.
    """
    responses = pipelined(
        port,
        [
            h1_request("GET", "/items/1?q=a"),
            h1_request("POST", "/echo", b'{"n": 1}', "application/json"),
            h1_request("POST", "/plain", b"GET /plain HTTP/1.1\r\n\r\n" * 100, "text/plain"),
            h1_request("GET", "/plain"),
            h1_request("GET", "/missing"),
            h1_request("GET", "/items/2"),
        ],
    )
    assert [status for status, _, _ in responses] == [200, 201, 405, 200, 404, 200]
    assert json.loads(responses[0][2]) == {"id": 1, "q": "a", "http_version": "1.1"}
    assert json.loads(responses[1][2]) == {"received": {"n": 1}}
    assert responses[3][2] == b"ok"
    assert json.loads(responses[5][2]) == {"id": 2, "q": None, "http_version": "1.1"}


def check_routing_and_json(client: Any, protocol: str) -> None:
    """/items/{id:int}?q= echoes id, q and the scope's http_version; POST /echo answers
    201 ``{"received": body}``; a bad id is 404; POST /plain is 405."""
    response = client.get("/items/42", params={"q": "ä b"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    expected = {"id": 42, "q": "ä b", "http_version": SCOPE_VERSIONS[protocol]}
    assert response.json() == expected
    body = {"a": [1, 2, {"b": None}], "s": "ü"}
    response = client.post("/echo", json=body)
    assert response.status_code == 201
    assert response.json() == {"received": body}
    assert client.get("/items/nope").status_code == 404
    assert client.post("/plain").status_code == 405


def check_stream_reset(srv: Any, ctx: Any, path: str = "/forever") -> None:
    """HTTP/2: the client resets (RST_STREAM CANCEL) an endless stream after its first
    chunk; the app's generator must stop, and the connection must stay usable."""
    h2 = H2Conn(srv.port)
    try:
        sid = h2.request("GET", path)
        stream = h2.streams[sid]
        h2.wait(lambda: b"first" in stream.data, "the first chunk")
        assert stream.headers[":status"] == "200"
        h2.reset(sid)
        wait_until(lambda: ctx.events, what="the stream to stop")
        assert ctx.events == [("stream-stopped", "CancelledError")]
        other = h2.complete(h2.request("GET", "/plain"))
        assert other.headers[":status"] == "200"
        assert bytes(other.data) == b"ok"
    finally:
        h2.close()


def check_cookies(client: Any, srv: Any, protocol: str) -> None:
    """/cookies answers the request's cookies as JSON and sets cookies a=1 and b=2
    (two Set-Cookie fields). Over HTTP/2 the client may also split the Cookie field
    into crumbs (RFC 9113 8.2.3), which the app must see joined."""
    response = client.get("/cookies", headers={"cookie": "x=1; y=two"})
    assert response.status_code == 200
    assert response.json() == {"x": "1", "y": "two"}
    set_cookies = response.headers.get_list("set-cookie")
    assert sorted(value.split(";")[0] for value in set_cookies) == ["a=1", "b=2"]
    if protocol == "http2":
        h2 = H2Conn(srv.port)
        try:
            crumbs = [("cookie", "x=1"), ("cookie", "y=two")]
            stream = h2.complete(h2.request("GET", "/cookies", crumbs))
            assert stream.headers[":status"] == "200"
            assert json.loads(bytes(stream.data)) == {"x": "1", "y": "two"}
        finally:
            h2.close()


def check_form_post(client: Any, path: str = "/form") -> None:
    """A url-encoded form of several MiB is echoed back field for field."""
    response = client.post(path, data=form_data())
    assert response.status_code == 200, response.text
    check_form_echo(response.json())


def check_multipart_post(client: Any, path: str = "/upload") -> None:
    """A multipart upload of several MiB arrives whole (sizes and hashes echoed)."""
    response = client.post(path, data={"field": FORM_TEXT}, files=multipart_files())
    assert response.status_code == 200, response.text
    check_multipart_echo(response.json())


def read_sse(client: Any, path: str = "/sse") -> list[dict[str, str]]:
    """The events of a Server-Sent Events response (its content type checked)."""
    with client.stream("GET", path) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        text = response.read().decode()
    return parse_sse(text)
