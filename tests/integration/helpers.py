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
