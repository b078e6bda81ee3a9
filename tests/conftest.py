"""Shared test helpers: a real Squall on 127.0.0.1:0, in a thread or a subprocess."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from squall import Config, Server

ROOT = Path(__file__).resolve().parent.parent
HTTP_IMPLS = ["httptools", "h11"]


@pytest.fixture(params=HTTP_IMPLS)
def http_impl(request: pytest.FixtureRequest) -> str:
    """Parametrizes a test over both HTTP/1 parser backends."""
    return str(request.param)


class RunningServer:
    """A Squall server running in a background thread."""

    def __init__(self, app: Any, **options: Any) -> None:
        options.setdefault("port", 0)
        options.setdefault("log_level", "warning")
        options.setdefault("lifespan", "off")
        self.config = Config(app, **options)
        self.server = Server(self.config)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            self.server.run()
        except BaseException as exc:  # surfaced by the test through .error
            self.error = exc

    def start(self) -> RunningServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {self.error!r}")
            time.sleep(0.005)
        return self

    @property
    def port(self) -> int:
        sock = self.server.servers[0].sockets[0]
        return int(sock.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def client(self) -> RawClient:
        return RawClient(self.port)


@pytest.fixture
def serve() -> Iterator[Any]:
    """``serve(app, **config)`` starts a server in a thread and stops it after the test."""
    started: list[RunningServer] = []

    def start(app: Any, **options: Any) -> RunningServer:
        srv = RunningServer(app, **options).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


def recv_until_closed(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Read until the peer closes; fails the test if it does not close in time."""
    sock.settimeout(timeout)
    chunks = []
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


class RawClient:
    """A raw socket with a read buffer, for reading responses one by one."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        self.buf += data
        return bool(data)

    def response(self) -> bytes:
        """One complete response (head and Content-Length or chunked body)."""
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                out, self.buf = self.buf, b""
                return out
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        self.buf = rest
        body = b""
        m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        no_body = head.startswith((b"HTTP/1.1 1", b"HTTP/1.1 204", b"HTTP/1.1 304"))
        if m and not no_body:
            need = int(m.group(1))
            while len(self.buf) < need and self._fill():
                pass
            body, self.buf = self.buf[:need], self.buf[need:]
        elif re.search(rb"(?im)^transfer-encoding:\s*chunked", head):
            while b"0\r\n\r\n" not in self.buf and self._fill():
                pass
            end = self.buf.find(b"0\r\n\r\n") + 5
            body, self.buf = self.buf[:end], self.buf[end:]
        return head + b"\r\n\r\n" + body

    def head_only(self) -> bytes:
        """One response head without a body (for HEAD requests)."""
        while b"\r\n\r\n" not in self.buf and self._fill():
            pass
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        return head + b"\r\n\r\n"

    def read_until_closed(self) -> bytes:
        while self._fill():
            pass
        out, self.buf = self.buf, b""
        return out

    def is_closed(self, timeout: float = 5.0) -> bool:
        """True if the server closes the connection (reading any pending bytes)."""
        self.sock.settimeout(timeout)
        try:
            while self._fill():
                pass
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        self.sock.close()


class SquallProcess:
    """``python -m squall ...`` as a subprocess, with its log captured."""

    def __init__(
        self, args: list[str], cwd: Path | str | None = None, env: dict[str, str] | None = None
    ) -> None:
        full_env = dict(os.environ, PYTHONUNBUFFERED="1")
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "squall", *args],
            cwd=cwd or ROOT,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.port: int | None = None

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 15.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.output)
            if m:
                return m
            if self.proc.poll() is not None:
                time.sleep(0.05)
                m = re.search(pattern, self.output)
                if m:
                    return m
                raise AssertionError(f"process exited ({self.proc.returncode}):\n{self.output}")
            time.sleep(0.01)
        raise AssertionError(f"{pattern!r} not seen in time:\n{self.output}")

    def wait_started(self) -> int:
        m = self.wait_for(r"running on http://[^:]+:(\d+)")
        self.port = int(m.group(1))
        return self.port

    def stop(self, sig: int = 2, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self._reader.join(2)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait(5)


@pytest.fixture
def squall_process() -> Iterator[Any]:
    procs: list[SquallProcess] = []

    def start(
        *args: str, cwd: Path | str | None = None, env: dict[str, str] | None = None
    ) -> SquallProcess:
        proc = SquallProcess(list(args), cwd=cwd, env=env)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.proc.poll() is None:
            proc.kill()


@pytest.fixture
def fast_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opt-in: a 10 ms server tick, so ``RunningServer.stop()`` takes ~10 ms, not ~100 ms.

    Only the in-thread servers' polling interval changes (``should_exit``, the
    date header refresh, graceful-shutdown polling); subprocess servers keep
    the real tick.
    """
    import squall.server.serve

    monkeypatch.setattr(squall.server.serve, "TICK", 0.01)
