"""Floods against a real Squall process, while a second, well-behaved client is measured.

Each test starts ``python -m squall`` (its own process, so its memory can be read
from ``/proc/<pid>/status``) and runs one attack from a raw socket:

* WebSocket fragmentation floods: a message sent as one-byte fragments must be
  failed with 1009 on the very fragment that crosses ``--ws-max-size``; a
  message of endless *empty* fragments must be stopped too; a legal message in
  two-byte fragments must not cost more memory than the bound.
* WebSocket decompression bombs (permessage-deflate negotiated by hand): one
  compressed frame that inflates to 128 times the limit, and the same bomb
  dribbled in 16-byte fragments; 1009, and memory stays bounded.
* The WebSocket attacks also run over HTTP/2 (RFC 8441 extended CONNECT), where
  the attacker's stream is ended and its connection keeps serving; and a flood of
  small messages to an app that never reads them must be held back (by
  ``--ws-max-queue``) on both protocols.
* A connection flood past the file-descriptor limit (``ulimit -n 64``): idle and
  half-sent connections, replaced as fast as the server closes them, on both
  event loops.

The tests that expose a Squall bug are strict expected failures naming the line.

During every attack a :class:`GoodClient` thread makes round trips (an HTTP/1.1
request on a fresh connection, a WebSocket echo and an HTTP/2 request on
connections it keeps), and the attacker waits for it to complete one after each
batch it sends, so the round trips overlap the attack. Every one must succeed
(5 s timeouts; nothing asserts speed). The server's resident memory is sampled
every few milliseconds during the attack; its growth must stay under 64 MiB.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import re
import selectors
import socket
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h2.exceptions
import pytest
from websockets.sync.client import connect as ws_connect

from tests.conftest import RawClient
from tests.integration.helpers import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    WSFrame,
    parse_response,
    read_ws_close,
    read_ws_frame,
    ws_frame,
    ws_request,
)
from tests.integration.http2_client import H2Client, values
from tests.integration.squall_proc import Proc, get, process_trees

pytestmark = pytest.mark.timeout(45)

APP = """
import asyncio
import json

# what the attackers' WebSockets (any path but /good) delivered to the app
seen = {"received": 0, "disconnects": []}


async def app(scope, receive, send):
    if scope["type"] == "http":
        body = json.dumps(seen).encode() if scope["path"] == "/stats" else b"ok"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
        return
    if scope["type"] != "websocket":
        return
    attacker = scope["path"] != "/good"
    if scope["path"] == "/deaf":  # accepts, then never reads a message
        await receive()
        await send({"type": "websocket.accept"})
        await asyncio.sleep(3600)
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif kind == "websocket.receive":
            if attacker:
                seen["received"] += 1
            echo = {k: v for k, v in message.items() if k != "type"}
            await send({"type": "websocket.send", **echo})
        else:
            if attacker:
                seen["disconnects"].append(message.get("code"))
            return
"""

MiB = 1 << 20
RSS_BOUND = 64 * MiB  # the server's memory may grow this much during an attack, no more
TIMEOUT = 5.0  # every socket read and every round trip of the good client
WS_MAX = 65536  # --ws-max-size of the fragmentation floods
BOMB_MAX = MiB  # --ws-max-size of the decompression bombs
FLOOD_FRAGMENTS = 200_000  # one-byte fragments the flood sends (or until the server stops it)
EMPTY_FRAGMENTS = 500_000  # empty fragments: 7.6 times WS_MAX, far beyond any real message
AMPLIFY_MAX = 4 * MiB  # --ws-max-size when a legal message comes in 2-byte fragments
DEAF_FLOOD = 96 * MiB  # of small messages, to an app that never reads them
STALL = 1.0  # a send that makes no progress this long: the server stopped taking data
BATCH = 8192  # fragments per send; the good client is served once between batches
BOMB_ZEROS = 128 * MiB  # the bomb inflates to 128 times BOMB_MAX
BOMB_FRAGMENT = 16  # compressed bytes per fragment of the split bomb
DEFLATE_OFFER = [("Sec-WebSocket-Extensions", "permessage-deflate")]

# HTTP/1.1 parsers to upgrade with, or "h2": RFC 8441 over cleartext HTTP/2
TRANSPORTS = ["httptools", "h11", "h2"]


# -- the server --------------------------------------------------------------------------


@dataclass
class Squall:
    proc: Proc
    port: int

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stats(self) -> dict[str, Any]:
        status, body = get(("127.0.0.1", self.port), "/stats", timeout=TIMEOUT)
        assert status == 200, (status, body)
        return dict(json.loads(body))

    def attacker_outcome(self) -> dict[str, Any]:
        """What the app saw of the attack, once its disconnect has arrived."""
        deadline = time.monotonic() + TIMEOUT
        while not (stats := self.stats())["disconnects"]:
            assert time.monotonic() < deadline, f"the app never saw the attacker go: {stats}"
            time.sleep(0.01)
        return stats


@pytest.fixture
def squall(tmp_path: Path) -> Iterator[Callable[..., Squall]]:
    """``squall(*options, ulimit=None)``: a Squall process on 127.0.0.1, a free port."""
    (tmp_path / "floodapp.py").write_text(APP)
    trees = process_trees(tmp_path)
    start = next(trees)

    def run(*options: str, ulimit: int | None = None) -> Squall:
        args = ["floodapp:app", "--host", "127.0.0.1", "--port", "0", "--lifespan", "off"]
        args += ["--no-access-log", *options]
        if ulimit is None:
            proc = start(*args)
        else:
            command = " ".join([sys.executable, "-m", "squall", *args])
            proc = start(argv=["bash", "-c", f"ulimit -n {ulimit}; exec {command}"])
        return Squall(proc, proc.port())

    yield run
    with contextlib.suppress(StopIteration):
        next(trees)


def rss(pid: int) -> int:
    """Resident memory of ``pid``, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


class RssMeter:
    """Samples a process's resident memory every few ms; ``growth``: peak minus start."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.start = self.peak = rss(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, rss(self.pid))

    def __enter__(self) -> RssMeter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.peak = max(self.peak, rss(self.pid))

    @property
    def growth(self) -> int:
        return self.peak - self.start

    def check(self) -> None:
        assert self.growth < RSS_BOUND, (
            f"server RSS grew {self.growth / MiB:.1f} MiB "
            f"({self.start / MiB:.1f} -> {self.peak / MiB:.1f} MiB)"
        )


# -- the well-behaved client -------------------------------------------------------------


class GoodClient(threading.Thread):
    """Round trips until stopped; ``ok`` counts them, ``failures`` says what went wrong.

    A round trip is a GET on a fresh HTTP/1.1 connection and, with ``keep``, also a
    WebSocket echo and an HTTP/2 GET on connections kept open throughout. The first
    failure ends the thread.
    """

    def __init__(self, port: int, keep: bool = True, timeout: float = TIMEOUT) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.keep = keep
        self.timeout = timeout
        self.ok = 0
        self.failures: list[str] = []
        self._cond = threading.Condition()
        self._halt = threading.Event()

    def run(self) -> None:
        with contextlib.ExitStack() as stack:
            try:
                if self.keep:
                    ws = stack.enter_context(
                        ws_connect(
                            f"ws://127.0.0.1:{self.port}/good",
                            open_timeout=self.timeout,
                            close_timeout=1,
                            ping_interval=None,
                        )
                    )
                    h2c = H2Client(self.port, timeout=self.timeout)
                    stack.callback(h2c.close)
                n = 0
                while not self._halt.is_set():
                    n += 1
                    status, body = get(("127.0.0.1", self.port), "/", timeout=self.timeout)
                    assert (status, body) == (200, b"ok"), (status, body)
                    if self.keep:
                        ws.send(f"round trip {n}")
                        assert ws.recv(timeout=self.timeout) == f"round trip {n}"
                        response = h2c.get("/")
                        assert (response.status, bytes(response.data)) == (200, b"ok")
                    with self._cond:
                        self.ok += 1
                        self._cond.notify_all()
            except Exception as exc:
                with self._cond:
                    self.failures.append(f"after {self.ok} round trips: {exc!r}")
                    self._cond.notify_all()

    def wait_for(self, count: int, timeout: float) -> None:
        """Until ``count`` round trips are done; fails on a failure or after ``timeout``."""
        with self._cond:
            self._cond.wait_for(lambda: self.ok >= count or self.failures, timeout)
            assert not self.failures, f"the good client failed: {self.failures}"
            assert self.ok >= count, f"the good client was not served within {timeout} s"

    def progress(self) -> None:
        """Wait for one more round trip (the attacker calls this between batches)."""
        self.wait_for(self.ok + 1, 2 * TIMEOUT)

    def stop(self) -> None:
        self._halt.set()
        self.join(3 * self.timeout)

    def __enter__(self) -> GoodClient:
        self.start()
        self.wait_for(1, 10)  # ready: served once before the attack starts
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def measured(srv: Squall) -> Iterator[tuple[GoodClient, RssMeter]]:
    """The good client and the memory meter around an attack; checks both after it."""
    with GoodClient(srv.port) as good, RssMeter(srv.pid) as meter:
        before = good.ok
        yield good, meter
        during = good.ok - before
    assert not good.failures, good.failures
    assert during > 0, "no round trip of the good client completed during the attack"
    meter.check()


# -- the WebSocket attacker: over HTTP/1.1 or an HTTP/2 stream ----------------------------


class H1Attacker:
    """A WebSocket by hand over a raw HTTP/1.1 socket."""

    def __init__(self, port: int, path: str, headers: list[tuple[str, str]]) -> None:
        self.client = RawClient(port, timeout=TIMEOUT)
        self.client.send(ws_request(path, headers=headers))
        response = parse_response(self.client.response())
        assert response.status == 101, response
        self.extensions = response.header("sec-websocket-extensions")

    @property
    def reader(self) -> Any:  # buf and _fill(), for read_ws_frame
        return self.client

    def send(self, data: bytes, stall: float = TIMEOUT) -> bool:
        """False once the server has closed the connection, or not read for ``stall`` s."""
        self.client.sock.settimeout(stall)
        try:
            self.client.send(data)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            return False
        finally:
            self.client.sock.settimeout(TIMEOUT)
        return True

    def check_ended(self) -> None:
        assert self.client.is_closed(TIMEOUT), "the server kept the TCP connection open"
        assert not self.client.buf, f"more bytes after the close frame: {self.client.buf[:80]!r}"

    def close(self) -> None:
        self.client.close()


class H2Attacker:
    """A WebSocket by hand on an extended CONNECT stream (RFC 8441), flow control obeyed."""

    def __init__(self, port: int, path: str, headers: list[tuple[str, str]]) -> None:
        self.client = H2Client(port, timeout=TIMEOUT)
        fields = [(":protocol", "websocket"), ("sec-websocket-version", "13")]
        fields += [(name.lower(), value) for name, value in headers]
        self.sid = self.client.request(path, method="CONNECT", headers=fields, end_stream=False)
        self.stream = self.client.streams[self.sid]
        self.client.wait(lambda: self.stream.headers or self.stream.done, what="the handshake")
        assert self.stream.status == 200, self.stream
        found = values(self.stream.headers or [], b"sec-websocket-extensions")
        self.extensions = found[0].decode() if found else None
        self.buf = b""

    @property
    def reader(self) -> Any:
        return self

    def _fill(self) -> bool:
        stream = self.stream
        self.client.wait(lambda: stream.data or stream.done, what="WebSocket data")
        if stream.data:
            self.buf += bytes(stream.data)
            stream.data.clear()
            return True
        return False

    def send(self, data: bytes, stall: float = TIMEOUT) -> bool:
        """Send as the windows allow; False once the server has ended or reset the stream,
        or given no window for ``stall`` s."""
        conn, stream = self.client.conn, self.stream
        view = memoryview(data)
        self.client.sock.settimeout(stall)
        try:
            while view:
                self.client.wait(
                    lambda: stream.done or conn.local_flow_control_window(self.sid) > 0,
                    timeout=stall,
                    what="send window",
                )
                if stream.done:
                    return False
                window = conn.local_flow_control_window(self.sid)
                size = min(len(view), window, conn.max_outbound_frame_size)
                try:
                    conn.send_data(self.sid, bytes(view[:size]))
                except h2.exceptions.StreamClosedError:
                    return False
                self.client.flush()
                view = view[size:]
        except TimeoutError:
            return False
        finally:
            self.client.sock.settimeout(TIMEOUT)
        return True

    def check_ended(self) -> None:
        """The stream is over; the connection itself still serves requests."""
        self.client.wait(lambda: self.stream.done, what="the end of the attacker's stream")
        response = self.client.get("/after")
        assert (response.status, bytes(response.data)) == (200, b"ok")

    def close(self) -> None:
        self.client.close()


@contextlib.contextmanager
def attacker(
    transport: str, port: int, deflate: bool = False, path: str = "/attack"
) -> Iterator[H1Attacker | H2Attacker]:
    headers = DEFLATE_OFFER if deflate else []
    kind = H2Attacker if transport == "h2" else H1Attacker
    ws = kind(port, path, headers)
    try:
        if deflate:
            assert ws.extensions and ws.extensions.startswith("permessage-deflate"), ws.extensions
        yield ws
    finally:
        ws.close()


def start(squall: Callable[..., Squall], transport: str, *options: str) -> Squall:
    http = "httptools" if transport == "h2" else transport
    return squall("--http", http, "--ws-ping-interval", "0", *options)


def next_frame(ws: H1Attacker | H2Attacker) -> WSFrame:
    frame = read_ws_frame(ws.reader)
    assert frame is not None, "the server ended the connection without a close frame"
    return frame


def flood(ws: H1Attacker | H2Attacker, frame: bytes, count: int, good: GoodClient) -> int:
    """Send ``frame`` ``count`` times in batches; the fragments the server took."""
    sent = 0
    while sent < count:
        n = min(BATCH, count - sent)
        if not ws.send(frame * n):
            break
        sent += n
        good.progress()
    return sent


def window_bits(extensions: str | None) -> int:
    """The client's LZ77 window: 15 unless the server's answer set client_max_window_bits."""
    m = re.search(r"client_max_window_bits=(\d+)", extensions or "")
    return int(m.group(1)) if m else 15


@functools.cache
def bomb(wbits: int) -> bytes:
    """BOMB_ZEROS zero bytes, raw deflate, the RFC 7692 tail stripped (about 570 KiB)."""
    deflater = zlib.compressobj(1, zlib.DEFLATED, -wbits)
    chunk = bytes(MiB)
    parts = [deflater.compress(chunk) for _ in range(BOMB_ZEROS // MiB)]
    parts.append(deflater.flush(zlib.Z_SYNC_FLUSH))
    data = b"".join(parts)
    assert data.endswith(b"\x00\x00\xff\xff")
    return data[:-4]


def compressed_start(wbits: int) -> bytes:
    """The compressed bytes of "a" (sync-flushed: a valid first fragment)."""
    deflater = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -wbits)
    return deflater.compress(b"a") + deflater.flush(zlib.Z_SYNC_FLUSH)


# -- 1. WebSocket fragmentation floods ---------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_one_byte_fragments_fail_with_1009_on_the_fragment_past_the_limit(squall, transport):
    srv = start(squall, transport, "--ws-max-size", str(WS_MAX))
    one = ws_frame(OP_CONT, b"a", fin=False)
    with measured(srv) as (good, _), attacker(transport, srv.port) as ws:
        # a text message of exactly WS_MAX bytes so far, in WS_MAX fragments: allowed
        assert ws.send(ws_frame(OP_TEXT, b"a", fin=False))
        assert flood(ws, one, WS_MAX - 1, good) == WS_MAX - 1
        # a ping is answered in order: every fragment before it was read, none refused
        assert ws.send(ws_frame(OP_PING, b"probe"))
        frame = next_frame(ws)
        assert (frame.opcode, frame.payload) == (OP_PONG, b"probe"), frame
        # the next fragment crosses the limit; the flood goes on until the server stops it
        flood(ws, one, FLOOD_FRAGMENTS - WS_MAX, good)
        assert read_ws_close(ws.reader) == (1009, "Message too big")
        ws.check_ended()
    assert srv.attacker_outcome() == {"received": 0, "disconnects": [1009]}


@pytest.mark.parametrize("deflate", [False, True], ids=["plain", "deflate"])
@pytest.mark.parametrize("transport", ["httptools", "h2"])
def test_endless_empty_fragments_are_stopped(squall, transport, deflate):
    srv = start(squall, transport, "--ws-max-size", str(WS_MAX))
    with measured(srv) as (good, _), attacker(transport, srv.port, deflate) as ws:
        if deflate:
            first = ws_frame(
                OP_TEXT, compressed_start(window_bits(ws.extensions)), fin=False, rsv=4
            )
        else:
            first = ws_frame(OP_TEXT, b"a", fin=False)
        assert ws.send(first)
        flood(ws, ws_frame(OP_CONT, b"", fin=False), EMPTY_FRAGMENTS, good)
        ws.send(ws_frame(OP_PING, b"probe"))
        # a message within the limit needs at most WS_MAX non-empty fragments; empty ones
        # carry nothing: long before EMPTY_FRAGMENTS the server must fail the message
        # (1009, or 1008 for a policy of its own) instead of answering the ping
        frame = next_frame(ws)
        assert frame.opcode == OP_CLOSE, f"{EMPTY_FRAGMENTS} empty fragments accepted: {frame}"
        assert frame.close[0] in (1008, 1009), frame.close
        ws.check_ended()
    assert srv.attacker_outcome() == {"received": 0, "disconnects": [frame.close[0]]}


def test_tiny_fragments_of_a_message_within_the_limit_cost_bounded_memory(squall):
    srv = start(squall, "httptools", "--ws-max-size", str(AMPLIFY_MAX))
    two = ws_frame(OP_CONT, b"ab", fin=False)
    count = AMPLIFY_MAX // 2
    with measured(srv) as (good, meter), attacker("httptools", srv.port) as ws:
        # a legal message, exactly AMPLIFY_MAX bytes, held by the server until its end
        assert ws.send(ws_frame(OP_TEXT, b"ab", fin=False))
        assert flood(ws, two, count - 2, good) == count - 2
        assert ws.send(ws_frame(OP_PING, b"probe"))
        frame = next_frame(ws)
        assert (frame.opcode, frame.payload) == (OP_PONG, b"probe"), frame
        assert meter.growth < RSS_BOUND, (
            f"{count - 1} fragments of a {AMPLIFY_MAX >> 20} MiB message took "
            f"{meter.growth / MiB:.0f} MiB of server memory"
        )
        assert ws.send(ws_frame(OP_CONT, b"ab"))
        echo = next_frame(ws)
        assert (echo.opcode, len(echo.payload)) == (OP_TEXT, AMPLIFY_MAX)
    assert srv.attacker_outcome() == {"received": 1, "disconnects": [1006]}


# -- 2. WebSocket decompression bombs ----------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_decompression_bomb_in_one_frame(squall, transport):
    srv = start(squall, transport, "--ws-max-size", str(BOMB_MAX))
    with measured(srv) as (good, _), attacker(transport, srv.port, deflate=True) as ws:
        payload = bomb(window_bits(ws.extensions))
        # smaller than the limit on the wire: only inflating it shows it is too big
        assert len(payload) < BOMB_MAX
        assert ws.send(ws_frame(OP_TEXT, payload, rsv=4))
        good.progress()
        assert read_ws_close(ws.reader) == (1009, "Message too big")
        ws.check_ended()
    assert srv.attacker_outcome() == {"received": 0, "disconnects": [1009]}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_decompression_bomb_split_in_many_fragments(squall, transport):
    srv = start(squall, transport, "--ws-max-size", str(BOMB_MAX))
    with measured(srv) as (good, _), attacker(transport, srv.port, deflate=True) as ws:
        payload = bomb(window_bits(ws.extensions))
        pieces = [payload[i : i + BOMB_FRAGMENT] for i in range(0, len(payload), BOMB_FRAGMENT)]
        frames = [ws_frame(OP_TEXT, pieces[0], fin=False, rsv=4)]
        frames += [ws_frame(OP_CONT, p, fin=False) for p in pieces[1:-1]]
        frames.append(ws_frame(OP_CONT, pieces[-1]))
        for i in range(0, len(frames), BATCH):
            if not ws.send(b"".join(frames[i : i + BATCH])):
                break
            good.progress()
        good.progress()  # at least once, even if the server stopped the first batch
        assert read_ws_close(ws.reader) == (1009, "Message too big")
        ws.check_ended()
    assert srv.attacker_outcome() == {"received": 0, "disconnects": [1009]}


# -- 3. (also) a message flood on a WebSocket whose app does not read ------------------------


@pytest.mark.parametrize(
    "transport",
    [
        "httptools",
        "h2",
    ],
)
def test_message_flood_to_an_app_that_does_not_read_is_held_back(squall, transport):
    srv = start(squall, transport)
    megabyte = ws_frame(OP_BINARY, b"x" * 1000) * 1000  # a thousand 1000-byte messages
    with measured(srv) as (good, _), attacker(transport, srv.port, path="/deaf") as ws:
        sent = 0
        while sent < DEAF_FLOOD and ws.send(megabyte, stall=STALL):
            sent += len(megabyte)
            good.progress()
        # --ws-max-queue messages wait for the app; then the server stops reading
        assert sent < DEAF_FLOOD, f"the server took {sent / MiB:.0f} MiB of unread messages"


# -- 4. a connection flood past the file-descriptor limit -----------------------------------

FD_LIMIT = 64
FLOOD = 150  # held open at all times: more than the process can hold, the rest wait
T = 0.5  # --timeout-keep-alive and --timeout-request-header
ACCEPT_RETRY = 0.5  # the accept loop retries this often while out of descriptors
SLACK = 3.0
GOOD_ROUNDS = 3
PARTIAL_HEAD = b"GET / HTTP/1.1\r\nHost: example.org\r\n"  # never finished


@pytest.mark.timeout(60)
@pytest.mark.parametrize("http_impl", ["httptools", "h11"])
@pytest.mark.parametrize(
    "loop",
    [
        "asyncio",
        "uvloop",
    ],
)
def test_connection_flood_past_the_descriptor_limit(squall, loop, http_impl):
    srv = squall(
        "--loop",
        loop,
        "--http",
        http_impl,
        "--timeout-keep-alive",
        str(T),
        "--timeout-request-header",
        str(T),
        ulimit=FD_LIMIT,
    )
    # the server's spare descriptors decide how many waves of the flood it takes to
    # reach a connection queued behind the flood; each wave lasts T, plus an accept retry
    capacity = FD_LIMIT - len(os.listdir(f"/proc/{srv.pid}/fd"))
    assert capacity > 10, capacity
    waves = math.ceil((FLOOD + 1) / capacity) + 1
    bound = waves * (T + ACCEPT_RETRY) + SLACK

    sel = selectors.DefaultSelector()
    conns: dict[socket.socket, dict[str, Any]] = {}
    done: list[dict[str, Any]] = []

    def open_one(n: int) -> None:
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=TIMEOUT)
        partial = n % 2 == 1
        if partial:
            sock.sendall(PARTIAL_HEAD)
        sock.setblocking(False)
        conns[sock] = {"partial": partial, "opened": time.monotonic(), "data": b""}
        sel.register(sock, selectors.EVENT_READ)

    def poll(timeout: float) -> None:
        for key, _ in sel.select(timeout):
            sock: socket.socket = key.fileobj  # type: ignore[assignment]
            info = conns[sock]
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                data, info["reset"] = b"", True
            if data:
                info["data"] += data
                continue
            info["closed"] = time.monotonic() - info["opened"]
            sel.unregister(sock)
            sock.close()
            done.append(conns.pop(sock))

    opened = 0
    try:
        with RssMeter(srv.pid) as meter:
            for opened in range(FLOOD):
                open_one(opened)
            good = GoodClient(srv.port, keep=False, timeout=bound)
            good.start()
            # the flood is kept at FLOOD connections while the good client makes its rounds
            while good.ok < GOOD_ROUNDS and not good.failures and good.is_alive():
                poll(0.02)
                while len(conns) < FLOOD:
                    opened += 1
                    open_one(opened)
            good.stop()
            # then every flood connection still open must be closed within its bound
            deadline = time.monotonic() + bound + 1
            while conns and time.monotonic() < deadline:
                poll(0.05)
    finally:
        for sock in list(conns):
            sock.close()
        sel.close()
    assert not good.failures, good.failures
    assert good.ok >= GOOD_ROUNDS, f"{good.ok} round trips"
    assert not conns, f"{len(conns)} flood connections still open after {bound:.1f} s"
    assert len(done) > FLOOD, "the flood was never renewed: no connection was closed"
    latest = max(info["closed"] for info in done)
    assert latest <= bound, f"a flood connection lasted {latest:.2f} s (bound {bound:.1f} s)"
    for info in done:
        assert not info.get("reset"), info
        if info["partial"]:
            response = parse_response(info["data"])
            assert response.status == 408, info
        else:
            assert info["data"] == b"", info
    meter.check()
    assert "Traceback" not in srv.proc.output, srv.proc.output
