"""Helpers shared by the integration tests (no fixtures here: see conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# A logging config that sends every ``squall.*`` record to the root logger, so
# pytest's ``caplog`` sees the records of a server running in a thread.
PROPAGATE_LOGS = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {
        "squall": {"handlers": [], "propagate": True, "level": "INFO"},
        "squall.error": {"handlers": [], "propagate": True, "level": "INFO"},
        "squall.access": {"handlers": [], "propagate": True, "level": "INFO"},
    },
}


def wait_until(predicate: Callable[[], object], timeout: float = 5.0, what: str = "") -> None:
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

    @property
    def is_open(self) -> bool:
        return self._open

    def open(self) -> None:
        with self._lock:
            self._open = True
            waiters, self._waiters = self._waiters, []
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(event.set)

    async def wait(self) -> None:
        event = asyncio.Event()
        with self._lock:
            if self._open:
                return
            self._waiters.append((asyncio.get_running_loop(), event))
        await event.wait()


def request(
    method: str = "GET",
    path: str = "/",
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    version: str = "1.1",
    host: str | None = "example.org",
) -> bytes:
    """Bytes of one request; Content-Length is added when there is a body."""
    lines = [f"{method} {path} HTTP/{version}"]
    if host is not None:
        lines.append(f"Host: {host}")
    names = {n.lower() for n, _ in headers or ()}
    for name, value in headers or ():
        lines.append(f"{name}: {value}")
    if body and "content-length" not in names and "transfer-encoding" not in names:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    raw_head: bytes = b""
    complete: bool = True  # body framing satisfied
    extra: dict[str, object] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        values = self.all(name)
        assert len(values) <= 1, f"{name} appears {len(values)} times: {values}"
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n == name.lower()]


def parse_response(raw: bytes) -> Response:
    """Parse exactly one response (as returned by RawClient.response()); decode chunked."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    assert sep, f"no complete response head in {raw[:200]!r}"
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3})(?: .*)?$", lines[0])
    assert m, f"bad status line {lines[0]!r}"
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip().lower(), value.strip()))
    resp = Response(int(m.group(1)), headers, rest, raw_head=head)
    te = [v for n, v in headers if n == "transfer-encoding"]
    cl = [v for n, v in headers if n == "content-length"]
    if te and te[-1].lower() == "chunked":
        body, complete = dechunk(rest)
        resp.body, resp.complete = body, complete
    elif cl:
        resp.complete = len(rest) == int(cl[0])
    return resp


def dechunk(data: bytes) -> tuple[bytes, bool]:
    """Decode a chunked body; (body, saw the last chunk)."""
    out = []
    pos = 0
    while True:
        end = data.find(b"\r\n", pos)
        if end < 0:
            return b"".join(out), False
        size = int(data[pos:end].split(b";")[0], 16)
        if size == 0:
            return b"".join(out), data[end + 2 : end + 4] == b"\r\n"
        chunk = data[end + 2 : end + 2 + size]
        out.append(chunk)
        if len(chunk) < size:
            return b"".join(out), False
        pos = end + 2 + size + 2


def reset_close(sock: socket.socket) -> None:
    """Close with a TCP RST instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def connections(srv) -> list:
    """The server's open connections (from its shared state)."""
    state = srv.server.state
    return list(state.connections) if state is not None else []


# -- WebSocket: raw frames and handshakes ----------------------------------------------

WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455's sample key
WS_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # ... and its Sec-WebSocket-Accept
WS_HEADERS = [
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", WS_KEY),
    ("Sec-WebSocket-Version", "13"),
]

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def ws_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = b"\x37\xfa\x21\x3d",
) -> bytes:
    """One WebSocket frame; masked (as a client must) unless ``mask`` is None."""
    head = bytes([(0x80 if fin else 0) | (rsv & 0x7) << 4 | (opcode & 0xF)])
    mask_bit = 0x80 if mask is not None else 0
    n = len(payload)
    if n < 126:
        head += bytes([mask_bit | n])
    elif n < 1 << 16:
        head += bytes([mask_bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", n)
    if mask is None:
        return head + payload
    key = (mask * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
    return head + mask + masked


def ws_close_frame(code: int = 1000, reason: str = "", **kw) -> bytes:
    return ws_frame(OP_CLOSE, struct.pack("!H", code) + reason.encode(), **kw)


def ws_request(path: str = "/", headers: list[tuple[str, str]] | None = None) -> bytes:
    """A WebSocket upgrade request with a valid key and version, plus ``headers``."""
    return request("GET", path, headers=[*WS_HEADERS, *(headers or [])])


@dataclass
class WSFrame:
    fin: bool
    rsv: int
    opcode: int
    payload: bytes
    masked: bool

    @property
    def close(self) -> tuple[int | None, str]:
        """(code, reason) of a close frame."""
        assert self.opcode == OP_CLOSE, f"not a close frame: {self}"
        if len(self.payload) < 2:
            return None, ""
        return struct.unpack("!H", self.payload[:2])[0], self.payload[2:].decode()


def read_ws_frame(client) -> WSFrame | None:
    """The next frame from a RawClient's stream (after the 101); None at EOF."""

    def need(n: int) -> bool:
        while len(client.buf) < n:
            if not client._fill():
                return False
        return True

    if not need(2):
        assert not client.buf, f"truncated frame: {client.buf!r}"
        return None
    b0, b1 = client.buf[0], client.buf[1]
    n, pos = b1 & 0x7F, 2
    if n == 126:
        assert need(4)
        n, pos = struct.unpack("!H", client.buf[2:4])[0], 4
    elif n == 127:
        assert need(10)
        n, pos = struct.unpack("!Q", client.buf[2:10])[0], 10
    masked = bool(b1 & 0x80)
    if masked:
        pos += 4
    assert need(pos + n), "truncated frame"
    payload = client.buf[pos : pos + n]
    if masked:
        key = client.buf[pos - 4 : pos]
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    client.buf = client.buf[pos + n :]
    return WSFrame(bool(b0 & 0x80), (b0 >> 4) & 0x7, b0 & 0xF, payload, masked)


def read_ws_close(client) -> tuple[int | None, str]:
    """Skip data and ping frames up to the server's close frame; its (code, reason)."""
    while True:
        frame = read_ws_frame(client)
        assert frame is not None, "the connection ended without a close frame"
        if frame.opcode == OP_CLOSE:
            return frame.close


class _Bytes:
    """A RawClient stand-in over fixed bytes, for :func:`read_ws_frame`."""

    def __init__(self, data: bytes) -> None:
        self.buf = data

    def _fill(self) -> bool:
        return False


def split_ws_frames(data: bytes) -> list[WSFrame]:
    """All the frames in ``data`` (which must end on a frame boundary)."""
    source = _Bytes(data)
    frames = []
    while (frame := read_ws_frame(source)) is not None:
        frames.append(frame)
    return frames


# -- WebSocket: a real client and an echo app ------------------------------------------------


def ws_url(srv, path: str = "/") -> str:
    return f"ws://127.0.0.1:{srv.port}{path}"


def ws_client(srv, path: str = "/", **kw):
    """The ``websockets`` sync client, connected to ``srv`` (short timeouts, no pings)."""
    from websockets.sync.client import connect

    kw.setdefault("open_timeout", 5)
    kw.setdefault("close_timeout", 2)
    kw.setdefault("ping_interval", None)
    return connect(ws_url(srv, path), **kw)


def echo_app(log: list | None = None):
    """Accepts, echoes every message, records every message it receives in ``log``."""

    async def app(scope, receive, send):
        assert scope["type"] == "websocket"
        while True:
            message = await receive()
            if log is not None:
                log.append(message)
            kind = message["type"]
            if kind == "websocket.connect":
                await send({"type": "websocket.accept"})
            elif kind == "websocket.receive":
                if message.get("text") is not None:
                    await send({"type": "websocket.send", "text": message["text"]})
                else:
                    await send({"type": "websocket.send", "bytes": message["bytes"]})
            else:
                return

    return app


def assert_still_serving(srv) -> None:
    """A new client gets a working WebSocket: the server survived what came before."""
    with ws_client(srv) as ws:
        ws.send("still there?")
        assert ws.recv(timeout=5) == "still there?"
