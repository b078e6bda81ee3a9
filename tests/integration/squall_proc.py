"""Helpers for tests that run real Squall processes (supervisor and workers).

:class:`Proc` starts ``python -m squall`` in a new session (so the whole
process tree can be killed with one ``killpg``), captures its merged output
line by line and polls it with deadlines. :func:`get` makes one request on a
fresh connection and returns the status and body; the test app
(:data:`PID_APP`) answers with its ``os.getpid()``.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

# The app under test. It appends its pid to $MARK_DIR/imports at import time
# (so a test can see which processes imported it), answers every request with
# its pid, and has a few special paths (it raises at import while
# $MARK_DIR/fail-import exists, and fails lifespan startup if $FAIL_LIFESPAN):
#   /hang   writes hang-<pid> and blocks the whole process in time.sleep
#   /slow   writes slow-<pid> and answers once $MARK_DIR/release exists
PID_APP = """
import asyncio, os, time

MARK_DIR = os.environ.get("MARK_DIR", ".")
with open(os.path.join(MARK_DIR, "imports"), "a") as fh:
    fh.write(f"{os.getpid()}\\n")
if os.path.exists(os.path.join(MARK_DIR, "fail-import")):
    raise RuntimeError("a broken deploy")


def _touch(name):
    with open(os.path.join(MARK_DIR, name), "w") as fh:
        fh.write(str(os.getpid()))


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if os.environ.get("FAIL_LIFESPAN"):
                    await send({"type": "lifespan.startup.failed", "message": "no database"})
                    return
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/hang":
        _touch(f"hang-{os.getpid()}")
        time.sleep(30)
    elif path == "/slow":
        _touch(f"slow-{os.getpid()}")
        while not os.path.exists(os.path.join(MARK_DIR, "release")):
            await asyncio.sleep(0.01)
    body = str(os.getpid()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
"""


def write_app(directory: Path, name: str = "pidapp") -> str:
    (directory / f"{name}.py").write_text(PID_APP)
    return f"{name}:app"


def deadline_loop(timeout: float, what: str) -> Iterator[None]:
    """Yields until ``timeout`` seconds have passed, then fails naming ``what``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        yield
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    for _ in deadline_loop(timeout, what):
        value = predicate()
        if value:
            return value
    raise AssertionError("unreachable")


class Proc:
    """A Squall process tree in its own session; its output is captured."""

    def __init__(
        self,
        args: Sequence[str],
        cwd: Path,
        env: dict[str, str] | None = None,
        pass_fds: Sequence[int] = (),
        argv: Sequence[str] | None = None,
    ) -> None:
        full_env = dict(os.environ, PYTHONUNBUFFERED="1", MARK_DIR=str(cwd))
        for name in ("WEB_CONCURRENCY", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
            full_env.pop(name, None)
        full_env.update(env or {})
        command = list(argv) if argv is not None else [sys.executable, "-m", "squall"]
        self.proc = subprocess.Popen(
            [*command, *args],
            cwd=cwd,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            pass_fds=tuple(pass_fds),
        )
        self.pid = self.proc.pid
        self.cwd = cwd
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def findall(self, pattern: str) -> list[str]:
        return re.findall(pattern, self.output)

    def wait_for(self, pattern: str, timeout: float = 10.0, count: int = 1) -> list[str]:
        """Wait until ``pattern`` occurs ``count`` times; all its matches (group 1 if any)."""
        end = time.monotonic() + timeout
        while True:
            found = self.findall(pattern)
            if len(found) >= count:
                return found
            if self.proc.poll() is not None:
                self._reader.join(2)
                found = self.findall(pattern)
                if len(found) >= count:
                    return found
                raise AssertionError(
                    f"process exited ({self.proc.returncode}) before {pattern!r} x{count}:\n"
                    + self.output
                )
            if time.monotonic() > end:
                raise AssertionError(
                    f"{pattern!r} x{count} not seen in {timeout} s:\n{self.output}"
                )
            time.sleep(0.01)

    def ready_workers(self, count: int, timeout: float = 10.0) -> list[int]:
        """Wait for ``count`` "Worker [pid] is ready" lines; the pids, in order."""
        return [int(p) for p in self.wait_for(r"Worker \[(\d+)\] is ready", timeout, count)]

    def port(self, timeout: float = 10.0) -> int:
        found = self.wait_for(r"(?:listening|running) on http://\S+:(\d+)", timeout)
        return int(found[0])

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def wait(self, timeout: float = 15.0) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code

    def children(self) -> set[int]:
        return children_of(self.pid)

    def group_alive(self) -> bool:
        """True while any process of the session's process group exists."""
        try:
            os.killpg(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def kill_all(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.proc.wait(5)
        self._reader.join(2)


def children_of(pid: int) -> set[int]:
    """Live (non-zombie) child processes of ``pid``, from /proc."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry))
    return found


def listening_sockets(pid: int, port: int) -> set[int]:
    """Inodes of the TCP sockets listening on ``port`` that ``pid`` holds open."""
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as fh:
            for line in fh.readlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                    listening.add(int(fields[9]))
    held = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                held.add(int(target[8:-1]))
    return listening & held


def pid_exists(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def process_trees(tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    """For a fixture: ``start(*args, env=..., pass_fds=..., argv=...)``; all killed after."""
    procs: list[Proc] = []

    def start(
        *args: str,
        env: dict[str, str] | None = None,
        pass_fds: Sequence[int] = (),
        argv: Sequence[str] | None = None,
        cwd: Path | None = None,
    ) -> Proc:
        proc = Proc(args, cwd or tmp_path, env=env, pass_fds=pass_fds, argv=argv)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill_all()


# -- requests: one fresh connection each -------------------------------------------------


def get(
    address: tuple[Any, ...] | str,
    path: str = "/",
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    """GET ``path`` on a new connection (TCP (host, port) or a Unix path); (status, body)."""
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(address)
    else:
        sock = socket.create_connection(address, timeout=timeout)
    with sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    raw = b"".join(chunks)
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise ConnectionError(f"incomplete response: {raw!r}")
    status = int(head.split(b" ", 2)[1])
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    if m and len(body) != int(m.group(1)):
        raise ConnectionError(f"truncated body: {raw!r}")
    return status, body


def get_pid(address: tuple[Any, ...] | str, path: str = "/") -> int:
    status, body = get(address, path)
    assert status == 200, (status, body)
    return int(body)


def pids_serving(
    address: tuple[Any, ...] | str,
    count: int,
    timeout: float = 10.0,
    within: set[int] | None = None,
) -> set[int]:
    """Request until ``count`` distinct pids (from ``within`` if given) answered; those pids.

    Every request must succeed."""
    seen: set[int] = set()
    for _ in deadline_loop(timeout, f"{count} distinct pids serving (saw {seen})"):
        pid = get_pid(address)
        if within is None or pid in within:
            seen.add(pid)
        if len(seen) >= count:
            return seen
    raise AssertionError("unreachable")


class RequestLoop:
    """A thread making requests (a fresh connection each) until stopped."""

    def __init__(self, address: tuple[Any, ...] | str) -> None:
        self.address = address
        self.pids: list[int] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                status, body = get(self.address)
                if status != 200:
                    self.failures.append(f"status {status}: {body!r}")
                else:
                    self.pids.append(int(body))
            except Exception as exc:
                self.failures.append(repr(exc))

    def __enter__(self) -> RequestLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)
