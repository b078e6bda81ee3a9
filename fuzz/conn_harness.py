"""Fuzzing the whole connection: a real Connection, a fake transport, real apps.

:func:`run` serves one client byte stream on a real
:class:`squall.connection.transport.Connection`, on a fresh asyncio loop whose
clock moves only when the harness says so (no wall-clock waits; deadlines
fire when a :class:`Plan` moves time on; asyncio rather than uvloop, whose
clock cannot be driven). The bytes arrive in the pieces the
plan gives, the loop turning between pieces so the apps run; then EOF or a
lost connection, then every timer left fires. :func:`check` reads what the
server wrote as a client would: an HTTP/1.1 response stream (parsed with
h11, 1xx and 101 included), WebSocket frames after an upgrade, or HTTP/2
frames (hyperframe and hpack) after a preface or ``Upgrade: h2c``.

A finding is any of:

* an exception out of ``connection_made``, ``data_received``,
  ``eof_received`` or ``connection_lost`` (each called from a loop callback,
  as a transport calls it), or one that reaches the loop's exception handler;
* an ERROR record on ``squall.error``, other than the ``/fail`` app's own;
* an app task still pending once the connection is lost (and every timer has
  fired), or one that ended with an exception;
* bytes written after ``close()``/``abort()`` or after ``connection_lost``;
* reading paused while nothing runs (the connection would hang), or a loop
  that never goes idle;
* output that is not a well-formed response stream for the protocol spoken.

The apps (:class:`Apps`) are chosen by the first path segment: ``/stream``
echoes the body as it comes, ``/trailers`` sends trailers when the scope
offers them (without reading the body), ``/early`` sends a 103 first,
``/empty`` answers 204, ``/fail`` raises after starting its response
(``/fail0`` before any body), anything else echoes the whole body with a
content-length. A WebSocket is accepted and echoed (``/deny`` answers 403
with a body, ``/close`` closes before accepting).

Used by ``fuzz/atheris_targets.py`` (targets ``conn_h1`` and ``conn_h2``)
and by ``tests/fuzz/test_connection.py``; nothing here imports hypothesis
or atheris.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
import traceback
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import h11
import hpack
from hyperframe import frame as hf
from hyperframe.exceptions import HyperframeError, UnknownFrameError

from squall.asgi.types import Message, Receive, Scope, Send
from squall.config import Config
from squall.connection.state import ServerState
from squall.connection.transport import Connection
from squall.loading import http_backend

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
START = 1000.0  # the virtual clock at the start (never 0: code may use 0.0 for "unset")
SETTLE_TURNS = 5000  # loop turns for the apps to finish what one read started (a livelock: more)
FINAL_WAIT = 3600.0  # after the connection is lost: every timer left fires


# -- the apps -----------------------------------------------------------------


class AppFailure(Exception):
    """What the ``/fail`` app raises on purpose (its log record is not a finding)."""


@dataclass
class Seen:
    """A request as an app saw it, in the order the apps were called."""

    kind: str  # "http" or "websocket"
    method: str
    http_version: str
    path: str


def _start(status: int, headers: list[tuple[bytes, bytes]], **extra: Any) -> Message:
    return {"type": "http.response.start", "status": status, "headers": headers, **extra}


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body; None if the client went away first."""
    parts = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


async def _echo(scope: Scope, receive: Receive, send: Send) -> None:
    body = await _read_body(receive)
    if body is None:
        return
    headers = [
        (b"content-type", b"application/octet-stream"),
        (b"content-length", b"%d" % len(body)),
    ]
    await send(_start(200, headers))
    await send({"type": "http.response.body", "body": body})


async def _stream(scope: Scope, receive: Receive, send: Send) -> None:
    await send(_start(200, [(b"content-type", b"text/plain")]))
    await send({"type": "http.response.body", "body": b"begin\n", "more_body": True})
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return
        body = message.get("body", b"")
        if body:
            await send({"type": "http.response.body", "body": body, "more_body": True})
        if not message.get("more_body", False):
            break
    await send({"type": "http.response.body", "body": b"end\n"})


async def _trailers(scope: Scope, receive: Receive, send: Send) -> None:
    offered = "http.response.trailers" in scope.get("extensions", {})
    await send(_start(200, [(b"content-type", b"text/plain")], trailers=offered))
    await send({"type": "http.response.body", "body": b"with trailers", "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
    if offered:
        trailer = {"type": "http.response.trailers", "headers": [(b"x-sum", b"1")]}
        await send({**trailer, "more_trailers": True})
        await send({"type": "http.response.trailers", "headers": [(b"x-end", b"2")]})


async def _early(scope: Scope, receive: Receive, send: Send) -> None:
    if "http.response.early_hint" in scope.get("extensions", {}):
        links = [b"</style.css>; rel=preload; as=style"]
        await send({"type": "http.response.early_hint", "links": links})
    await _echo(scope, receive, send)


async def _empty(scope: Scope, receive: Receive, send: Send) -> None:
    await send(_start(204, []))
    await send({"type": "http.response.body", "body": b""})


async def _fail(scope: Scope, receive: Receive, send: Send) -> None:
    await send(_start(200, [(b"content-type", b"text/plain")]))
    if scope["path"].startswith("/fail0"):
        raise AppFailure("before the body")
    await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    raise AppFailure("after the first body chunk")


_ROUTES: dict[str, Callable[[Scope, Receive, Send], Awaitable[None]]] = {
    "stream": _stream,
    "trailers": _trailers,
    "early": _early,
    "empty": _empty,
    "fail": _fail,
    "fail0": _fail,
}


async def _websocket(scope: Scope, receive: Receive, send: Send) -> None:
    if (await receive())["type"] != "websocket.connect":
        return
    path = scope["path"]
    if path.startswith("/deny"):
        await send({"type": "websocket.http.response.start", "status": 403, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b"no", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"pe"})
        return
    if path.startswith("/close"):
        await send({"type": "websocket.close", "code": 1000})
        return
    offered = scope.get("subprotocols") or []
    await send({"type": "websocket.accept", "subprotocol": offered[0] if offered else None})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        text = message.get("text")
        if text == "close":
            await send({"type": "websocket.close", "code": 1000, "reason": "asked"})
        elif text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})


class Apps:
    """The ASGI app of one run: routes by path and records what it saw."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "websocket":
            self.seen.append(Seen("websocket", "GET", scope.get("http_version", "1.1"), path))
            await _websocket(scope, receive, send)
        elif scope["type"] == "http":
            self.seen.append(Seen("http", scope["method"], scope["http_version"], path))
            route = _ROUTES.get(path[1:].split("/", 1)[0], _echo)
            await route(scope, receive, send)


# -- the event loop and the transport -------------------------------------------


class VirtualLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose clock moves only when :attr:`now` is set."""

    def __init__(self) -> None:
        self.now = START
        super().__init__()

    def time(self) -> float:
        return self.now

    def busy(self) -> bool:
        """Callbacks are ready to run (timers not counted)."""
        return bool(self._ready)  # type: ignore[attr-defined]


class _FakeSSLContext:
    def get_ciphers(self) -> list[dict[str, Any]]:
        return [{"name": "TLS_AES_128_GCM_SHA256", "id": 0x03001301}]


class _FakeSSLObject:
    """What ServerState.conn_info reads of a TLS connection."""

    def __init__(self, alpn: str) -> None:
        self.alpn = alpn
        self.context = _FakeSSLContext()

    def selected_alpn_protocol(self) -> str | None:
        return self.alpn

    def getpeercert(self, binary_form: bool = False) -> Any:
        return None

    def cipher(self) -> tuple[str, str, int]:
        return ("TLS_AES_128_GCM_SHA256", "TLSv1.3", 128)

    def version(self) -> str:
        return "TLSv1.3"


class FakeTransport(asyncio.Transport):
    """Records what the connection does to its socket; closing schedules connection_lost."""

    def __init__(self, run: Run, alpn: str | None) -> None:
        super().__init__()
        self.run = run
        self.out: list[bytes] = []
        self.events: list[str] = []  # pause/resume_reading, close, abort, in order
        self.closing = False
        self.closed_by_server: str | None = None  # "close" or "abort"
        self.reading = True
        self.buffered = 0  # what get_write_buffer_size says (nonzero while the peer stalls)
        self.extra: dict[str, Any] = {
            "peername": ("127.0.0.1", 50000),
            "sockname": ("127.0.0.1", 8000),
            "socket": None,
            "sslcontext": None,
        }
        if alpn is not None:
            self.extra["sslcontext"] = object()
            self.extra["ssl_object"] = _FakeSSLObject(alpn)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.run.lost:
            self.run.finding(
                f"{len(data)} bytes written after connection_lost: {bytes(data)[:80]!r}"
            )
        elif self.closing:
            self.run.finding(f"{len(data)} bytes written after {self.closed_by_server}()")
        self.out.append(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def _closed(self, how: str) -> None:
        self.events.append(how)
        if not self.closing:
            self.closing = True
            self.closed_by_server = how
            self.run.lose(None)

    def close(self) -> None:
        self._closed("close")

    def abort(self) -> None:
        self._closed("abort")

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        self.events.append("pause_reading")
        self.reading = False

    def resume_reading(self) -> None:
        self.events.append("resume_reading")
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading and not self.closing

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (16384, 65536)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def can_write_eof(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.extra.get(name, default)


# -- one run --------------------------------------------------------------------


@dataclass
class Plan:
    """How one client byte stream is delivered."""

    chunks: Sequence[bytes]
    http: str = "httptools"  # the HTTP/1 parser backend
    alpn: str | None = None  # TLS with this ALPN protocol ("h2", "http/1.1"); None: cleartext
    tight: bool = False  # small limits: body, streams, concurrency, requests per connection
    gaps: dict[int, float] = field(default_factory=dict)  # after chunk i, the clock moves on
    stall: tuple[int, int] | None = None  # the client stops reading from chunk a to chunk b
    end: str = "eof"  # then "eof", "lost" (connection_lost(None)) or "reset" (with an error)

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


@dataclass
class Outcome:
    plan: Plan
    written: bytes
    seen: list[Seen]
    closed_by_server: str | None
    findings: list[str]
    transport_events: list[str] = field(default_factory=list)


_CONFIGS: dict[tuple[str, bool], Config] = {}


def _placeholder(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("ServerState is given the app")


def config(http: str, tight: bool) -> Config:
    """The Config of a run (cached: it is frozen)."""
    key = (http, tight)
    cfg = _CONFIGS.get(key)
    if cfg is None:
        options: dict[str, Any] = {"http": http, "lifespan": "off", "access_log": False}
        if tight:
            options.update(
                limit_request_body=300,
                limit_concurrency=2,
                max_requests_per_connection=3,
                limit_request_line=200,
                limit_request_fields=12,
                limit_request_field_size=200,
                h2_max_concurrent_streams=2,
                h2_max_header_list_size=600,
                h2_max_continuation_frames=2,
                h2_initial_window_size=65535,
                ws_max_size=200,
                ws_max_queue=2,
                ws_per_message_deflate=False,
            )
        cfg = _CONFIGS[key] = Config(_placeholder, **options)
    return cfg


class _ErrorRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Run:
    """One connection served from start to end (see :func:`run`)."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.findings: list[str] = []
        self.lost = False
        self._lose_scheduled = False
        self.stalled = False  # the client is not reading (pause_writing in force)
        self.loop = VirtualLoop()
        self.apps = Apps()
        cfg = config(plan.http, plan.tight)
        self.state = ServerState(cfg, self.apps, self.loop, http_backend(cfg))
        self.conn = Connection(self.state)
        self.transport = FakeTransport(self, plan.alpn)
        self.tasks: list[asyncio.Task[Any]] = []

    def finding(self, what: str) -> None:
        self.findings.append(what)

    # -- calls into the connection, each from a loop callback as a real transport makes them

    def _guarded(self, name: str, call: Callable[[], object]) -> None:
        try:
            call()
        except Exception as exc:
            self.finding(f"{name} raised:\n{traceback.format_exc()}")
            self.lose(exc)  # as asyncio's transports do after a protocol callback fails

    def _deliver(self, data: bytes) -> None:
        if not self.lost and not self.transport.closing:
            self._guarded("data_received", lambda: self.conn.data_received(data))

    def _eof(self) -> None:
        if self.lost or self.transport.closing:
            return
        keep_open: list[bool | None] = []
        self._guarded("eof_received", lambda: keep_open.append(self.conn.eof_received()))
        if not (keep_open and keep_open[0]):
            self.lose(None)  # a transport closes itself unless the protocol keeps it open

    def lose(self, exc: Exception | None) -> None:
        if not self._lose_scheduled:
            self._lose_scheduled = True
            self.loop.call_soon(self._lost, exc)

    def _lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._guarded("connection_lost", lambda: self.conn.connection_lost(exc))

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        detail = "".join(traceback.format_exception(exc)) if exc is not None else ""
        self.finding(f"loop exception handler: {context.get('message')}\n{detail}")

    def _task_factory(
        self, loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any
    ) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.Task(coro, loop=loop, **kwargs)
        self.tasks.append(task)
        return task

    # -- turning the loop

    async def _settle(self) -> None:
        """Turn the loop until nothing is ready to run (timers aside)."""
        for _ in range(SETTLE_TURNS):
            if not self.loop.busy():
                return
            await asyncio.sleep(0)
        self.finding(f"the loop is still busy after {SETTLE_TURNS} turns")

    async def _call(self, callback: Callable[..., object], *args: Any) -> None:
        self.loop.call_soon(callback, *args)
        await asyncio.sleep(0)
        await self._settle()

    async def _advance(self, seconds: float) -> None:
        self.loop.now += seconds
        await asyncio.sleep(0)  # due timers run in the next turn
        await self._settle()

    async def _stall(self, on: bool) -> None:
        if on != self.stalled and not self.lost:
            self.stalled = on
            self.transport.buffered = 1 << 20 if on else 0
            await self._call(self.conn.pause_writing if on else self.conn.resume_writing)

    async def _readable(self) -> bool:
        """Whether the transport would read now; a stalled client reads again if it must."""
        while not (self.lost or self.transport.closing):
            if self.transport.reading:
                return True
            if not self.stalled:
                self.finding("reading is paused while nothing runs: the connection hangs")
                return False
            await self._stall(False)
        return False

    async def _drive(self) -> None:
        plan = self.plan
        await self._call(
            self._guarded, "connection_made", lambda: self.conn.connection_made(self.transport)
        )
        for index, chunk in enumerate(plan.chunks):
            if plan.stall is not None and index in plan.stall:
                await self._stall(index == plan.stall[0])
            if not await self._readable():
                break
            await self._call(self._deliver, chunk)
            gap = plan.gaps.get(index)
            if gap:
                await self._advance(gap)
        if not self.lost and not self.transport.closing:
            if plan.end == "eof":
                await self._call(self._eof)
            if plan.end == "reset":
                self.lose(ConnectionResetError("reset by the fuzzer"))
            else:
                self.lose(None)
        await self._settle()
        await self._advance(FINAL_WAIT)

    def execute(self) -> Outcome:
        loop = self.loop
        errors = _ErrorRecords()
        squall_log = logging.getLogger("squall.error")
        saved = (squall_log.level, squall_log.propagate)
        squall_log.setLevel(logging.ERROR)
        squall_log.propagate = False
        squall_log.addHandler(errors)
        try:
            loop.set_exception_handler(self._on_loop_error)
            driver = loop.create_task(self._drive())
            loop.set_task_factory(self._task_factory)
            loop.run_until_complete(driver)
            self._check_tasks()
        finally:
            squall_log.removeHandler(errors)
            squall_log.setLevel(saved[0])
            squall_log.propagate = saved[1]
            loop.close()
        for record in errors.records:
            if record.exc_info and isinstance(record.exc_info[1], AppFailure):
                continue
            detail = (
                "".join(traceback.format_exception(*record.exc_info)) if record.exc_info else ""
            )
            self.finding(f"squall.error logged: {record.getMessage()}\n{detail}")
        if not self.lost:
            self.finding("connection_lost was never called")
        return Outcome(
            self.plan,
            b"".join(self.transport.out),
            self.apps.seen,
            self.transport.closed_by_server,
            self.findings,
            self.transport.events,
        )

    def _check_tasks(self) -> None:
        pending = [task for task in self.tasks if not task.done()]
        for task in pending:
            self.finding(f"task still pending after connection_lost: {task!r}")
            task.cancel()
        for _ in range(20 if pending else 0):
            self.loop.stop()
            self.loop.run_forever()
        for task in self.tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                exc = task.exception()
                assert exc is not None
                detail = "".join(traceback.format_exception(exc))
                self.finding(f"task ended with an exception: {task!r}\n{detail}")


# deadlines (with the default config): keep-alive 5 s, WebSocket ping 20 s, request
# head 30 s, request body and write stall 60 s
GAPS = (1.0, 6.0, 21.0, 31.0, 61.0)


def fuzz_plan(data: bytes, chunks: Sequence[bytes], **options: Any) -> Plan:
    """The plan the atheris targets give ``data``, drawn from its CRC: an input replays."""
    bits = zlib.crc32(data, 0x2545F491)  # not the CRC that cut the pieces
    n = len(chunks)
    gaps: dict[int, float] = {}
    if n and bits & 3 == 0:
        gaps[n - 1] = GAPS[(bits >> 2) % len(GAPS)]
    if n > 1 and (bits >> 5) & 3 == 0:
        gaps[(bits >> 7) % n] = GAPS[(bits >> 11) % len(GAPS)]
    stall = None
    if n > 1 and (bits >> 14) & 7 == 0:
        first = (bits >> 17) % n
        stall = (first, first + 1 + (bits >> 21) % 3)
    end = ("eof", "eof", "lost", "reset")[(bits >> 24) & 3]
    options.setdefault("tight", (bits >> 26) & 3 == 0)
    return Plan(chunks, gaps=gaps, stall=stall, end=end, **options)


# Findings reported and not fixed yet (tests/fuzz/test_regressions.py has each as a
# strict xfail, with the fixed ones as plain regressions): the fuzzers step over them,
# so that a run goes on to find others.
OPEN: dict[str, re.Pattern[str]] = {
    # "name": re.compile(r"what check() says of it"),  (none open now)
}


def open_finding(problem: str) -> str | None:
    """The name of the open finding ``problem`` is, if any."""
    return next((name for name, pattern in OPEN.items() if pattern.search(problem)), None)


def run(plan: Plan) -> Outcome:
    """Serve ``plan`` on a real Connection; the outcome lists what went wrong."""
    return Run(plan).execute()


def check(outcome: Outcome) -> list[str]:
    """The run's findings, and what is wrong with the bytes the server wrote."""
    plan = outcome.plan
    data = plan.data
    out = outcome.written
    problems = list(outcome.findings)
    if plan.alpn == "h2":
        problems += check_h2(out, data, outcome.closed_by_server)
    elif out.startswith(b"HTTP/"):
        if data.startswith(PREFACE):
            problems.append("an HTTP/2 preface was answered as HTTP/1.1")
        problems += check_h1(out, data, outcome.seen, outcome.closed_by_server)
    elif out:
        problems += check_h2(out, data, outcome.closed_by_server)
    return problems


def verify(plan: Plan, allow_open: bool = False) -> Outcome:
    """Run ``plan``; AssertionError (a crash, for atheris) listing every problem.

    ``allow_open``: the open findings (:data:`OPEN`) alone are no failure."""
    outcome = run(plan)
    problems = check(outcome)
    if allow_open and all(open_finding(p) for p in problems):
        return outcome
    if problems:
        raise AssertionError(describe(outcome, problems))
    return outcome


def describe(outcome: Outcome, problems: list[str]) -> str:
    plan = outcome.plan
    lines = [
        f"{len(problems)} problem(s); http={plan.http} alpn={plan.alpn} tight={plan.tight} "
        f"gaps={plan.gaps} stall={plan.stall} end={plan.end}",
        f"chunks: {list(plan.chunks)!r}",
        f"written: {outcome.written[:2000]!r}",
        f"seen: {outcome.seen}",
        f"transport: {outcome.transport_events}",
    ]
    lines += [f"- {p}" for p in problems]
    return "\n".join(lines)


# -- reading HTTP/1.1 output ------------------------------------------------------

_STATUS_LINE = re.compile(rb"HTTP/1\.1 ([1-5][0-9][0-9]) [^\r\n\x00]*\r\n")
_FIELD_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+): ?([^\x00-\x08\x0a-\x1f\x7f]*)\r\n")


def _head_fields(out: bytes, start: int, end: int) -> list[tuple[bytes, bytes]] | None:
    """The field lines of a head between ``start`` and ``end`` (its blank line); None if bad."""
    fields = []
    pos = start
    while pos < end:
        m = _FIELD_LINE.match(out, pos, end + 2)
        if m is None:
            return None
        fields.append((m.group(1).lower(), m.group(2)))
        pos = m.end()
    return fields


def _final_response(out: bytes, pos: int, method: str) -> tuple[int, bool, bool] | str:
    """One final response at ``pos``, read by h11 as the answer to ``method``.

    Returns (where it ends, whether it said connection: close, whether it is
    complete), or what h11 found wrong. An incomplete response runs to the end.
    """
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
    client.send(h11.EndOfMessage())
    client.receive_data(out[pos:])
    close = False
    eof = False
    while True:
        try:
            event = client.next_event()
        except h11.RemoteProtocolError as exc:
            if eof:  # cut short by the end of the connection
                return len(out), close, False
            return f"h11: {exc}"
        if event is h11.NEED_DATA:
            if eof:
                return len(out), close, False
            client.receive_data(b"")
            eof = True
        elif isinstance(event, h11.Response):
            close = any(
                n == b"connection" and b"close" in v.lower() for n, v in event.headers.raw_items()
            )
        elif isinstance(event, h11.InformationalResponse):
            return f"a {event.status_code} inside a response"
        elif isinstance(event, h11.EndOfMessage):
            if eof:  # delimited by the close: whether it is all there, no client can tell
                return len(out), True, False
            trailing, _ = client.trailing_data
            return len(out) - len(trailing), close, True


def check_h1(out: bytes, data: bytes, seen: list[Seen], closed_by_server: str | None) -> list[str]:
    """``out`` as a client reads it: responses in order, each complete but maybe the last."""
    problems: list[str] = []
    pos = 0
    index = 0  # the request (as the apps saw them) the next final response answers
    while pos < len(out):
        method = seen[index].method if index < len(seen) else "?"
        where = f"at byte {pos} (response {index + 1}, to {method})"
        m = _STATUS_LINE.match(out, pos)
        if m is None:
            problems.append(f"{where}: not a status line: {out[pos : pos + 60]!r}")
            break
        status = int(m.group(1))
        if status < 200:
            end = out.find(b"\r\n\r\n", m.end() - 2)
            fields = _head_fields(out, m.end(), end) if end >= 0 else None
            if fields is None:
                problems.append(f"{where}: a malformed {status} head")
                break
            pos = end + 4
            if status != 101:
                continue
            request = seen[index] if index < len(seen) else None
            upgrade = dict(fields).get(b"upgrade", b"").lower()
            if upgrade == b"websocket":
                if request is None or request.kind != "websocket":
                    problems.append(f"{where}: 101 websocket for {request}")
                deflate = any(n == b"sec-websocket-extensions" for n, _ in fields)
                problems += check_ws(out[pos:], deflate)
            elif upgrade == b"h2c":
                # (no app runs when the HTTP2-Settings are refused: a GOAWAY follows the 101)
                if request is not None and request.http_version != "2":
                    problems.append(f"{where}: 101 h2c for {request}")
                method = request.method if request is not None else "GET"
                problems += check_h2(out[pos:], data, closed_by_server, h2c=method)
            else:
                problems.append(f"{where}: 101 to {upgrade!r}")
            return problems
        if index < len(seen):
            result = _final_response(out, pos, "HEAD" if method == "HEAD" else "GET")
        else:
            # a refusal the server made itself (no app saw the request): it closes the
            # connection, and may answer a HEAD request
            result = _final_response(out, pos, "GET")
            if isinstance(result, str) or result[0] != len(out):
                result = _final_response(out, pos, "HEAD")
        if isinstance(result, str):
            problems.append(f"{where}: {result}: {out[pos : pos + 200]!r}")
            break
        end, close, complete = result
        index += 1
        pos = end
        if close and complete:
            if pos < len(out):
                if method == "HEAD":
                    what = f"a body after the response to HEAD (status {status})"
                else:
                    what = "bytes after a 'connection: close' response"
                problems.append(f"{where}: {what}: {out[pos : pos + 60]!r}")
                break
            # (a response without a body is whole at its head, while its app may still run:
            # e.g. blocked in drain() by a client that stopped reading)
            bodyless = method == "HEAD" or status in (204, 304)
            if not closed_by_server and not bodyless:
                problems.append(f"{where}: 'connection: close' but the server never closed")
    return problems


# -- reading WebSocket output ---------------------------------------------------

_CLOSE_CODES = {*range(1000, 1004), *range(1007, 1015), *range(3000, 5000)}


def check_ws(out: bytes, deflate: bool, whole: bool = True) -> list[str]:
    """Server frames: unmasked, well framed, control frames short, nothing after a close.

    ``whole``: the output is all there (else it may end inside a frame: HTTP/2 flow
    control can hold the rest of a frame back when the connection ends)."""
    problems: list[str] = []
    pos = 0
    in_message = False
    closed = False
    while pos < len(out):
        where = f"websocket frame at byte {pos}"
        if closed:
            problems.append(f"{where}: a frame after the close frame")
            break
        if len(out) - pos < 2:
            if whole:
                problems.append(f"{where}: a partial frame")
            break
        b0, b1 = out[pos], out[pos + 1]
        fin, rsv, opcode = b0 & 0x80, b0 & 0x70, b0 & 0x0F
        length = b1 & 0x7F
        size = 2
        if length == 126:
            length, size = int.from_bytes(out[pos + 2 : pos + 4], "big"), 4
        elif length == 127:
            length, size = int.from_bytes(out[pos + 2 : pos + 10], "big"), 10
        if b1 & 0x80:
            problems.append(f"{where}: a masked server frame")
        if pos + size + length > len(out):
            if whole:
                problems.append(f"{where}: a partial frame")
            break
        payload = out[pos + size : pos + size + length]
        pos += size + length
        if rsv & ~(0x40 if deflate else 0) or (rsv and opcode not in (1, 2)):
            problems.append(f"{where}: reserved bits {rsv:#x} on opcode {opcode}")
        if opcode >= 8:
            if opcode not in (8, 9, 10) or not fin or length > 125:
                problems.append(f"{where}: a bad control frame (opcode {opcode}, {length} bytes)")
            if opcode == 8:
                closed = True
                if length == 1:
                    problems.append(f"{where}: a one-byte close frame")
                elif length >= 2:
                    code = int.from_bytes(payload[:2], "big")
                    if code not in _CLOSE_CODES:
                        problems.append(f"{where}: close code {code}")
                    try:
                        payload[2:].decode()
                    except UnicodeDecodeError:
                        problems.append(f"{where}: a close reason that is not UTF-8")
        elif opcode == 0:
            if not in_message:
                problems.append(f"{where}: a continuation outside a message")
            in_message = not fin
        elif opcode in (1, 2):
            if in_message:
                problems.append(f"{where}: a new message inside a fragmented one")
            in_message = not fin
        else:
            problems.append(f"{where}: reserved opcode {opcode}")
    return problems


# -- reading HTTP/2 output --------------------------------------------------------

_CONNECTION_FIELDS = {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding"}
_CONNECTION_FIELDS.add(b"upgrade")


@dataclass
class _ClientH2:
    """What the client's bytes allowed the server, at most (whatever the server read of them),
    and the method of each request the client's header blocks decode to."""

    opened: set[int] = field(default_factory=set)  # by HEADERS
    referenced: set[int] = field(default_factory=set)  # by any frame (PRIORITY on an idle one)
    methods: dict[int, tuple[bytes, bytes]] = field(default_factory=dict)  # (:method, :protocol)
    stream_credit: dict[int, int] = field(default_factory=dict)
    conn_credit: int = 0
    initial_window: int = 65535
    max_frame: int = 16384
    table_size: int = 4096
    pings: set[bytes] = field(default_factory=set)
    settings: int = 0

    def apply_settings(self, payload: bytes) -> None:
        for i in range(0, len(payload) - 5, 6):
            ident = int.from_bytes(payload[i : i + 2], "big")
            value = int.from_bytes(payload[i + 2 : i + 6], "big")
            if ident == 1:
                self.table_size = max(self.table_size, value)
            elif ident == 4:
                self.initial_window = max(self.initial_window, value)
            elif ident == 5:
                self.max_frame = max(self.max_frame, value)


_H2_SETTINGS = re.compile(rb"(?i)\r\nhttp2-settings:[ \t]*([A-Za-z0-9_\-=]*)")


def _unpad(flags: int, payload: bytes, priority: bool) -> bytes | None:
    if flags & 0x8:
        if not payload or payload[0] >= len(payload):
            return None
        payload = payload[1 : len(payload) - payload[0]]
    if priority and flags & 0x20:
        payload = payload[5:]
    return payload


def _client_h2(data: bytes, h2c: str | None) -> _ClientH2:
    """``h2c``: the method of the upgrade request (stream 1), None without an upgrade."""
    view = _ClientH2()
    start = data.find(PREFACE)
    if h2c is not None:
        view.opened.add(1)
        view.referenced.add(1)
        view.methods[1] = (h2c.encode(), b"")
        view.settings += 1  # HTTP2-Settings: a SETTINGS frame that may be acknowledged
        # (any request's HTTP2-Settings: the values are upper bounds)
        for m in _H2_SETTINGS.finditer(data, 0, start if start >= 0 else len(data)):
            value = m.group(1).rstrip(b"=")
            try:
                view.apply_settings(base64.urlsafe_b64decode(value + b"=" * (-len(value) % 4)))
            except (ValueError, binascii.Error):
                pass
    if start < 0:
        return view
    decoder: hpack.Decoder | None = hpack.Decoder()
    block = b""
    pos = start + len(PREFACE)
    while pos + 9 <= len(data):
        length = int.from_bytes(data[pos : pos + 3], "big")
        ftype, flags = data[pos + 3], data[pos + 4]
        stream_id = int.from_bytes(data[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
        payload = data[pos + 9 : pos + 9 + length]
        pos += 9 + length
        if ftype in (1, 9) and decoder is not None:
            part = _unpad(flags, payload, ftype == 1)
            if part is None:
                decoder = None
            else:
                block = part if ftype == 1 else block + part
        if ftype in (1, 9) and flags & 0x4 and decoder is not None:
            try:
                fields = dict(decoder.decode(block, raw=True))
            except Exception:
                decoder = None  # the table is lost: methods after this are unknown
            else:
                if ftype == 1 or stream_id not in view.methods:
                    method = fields.get(b":method", b"")
                    view.methods.setdefault(stream_id, (method, fields.get(b":protocol", b"")))
        view.referenced.add(stream_id)
        if ftype == 1:
            view.opened.add(stream_id)
        elif ftype == 8 and len(payload) == 4:
            increment = int.from_bytes(payload, "big") & 0x7FFFFFFF
            if stream_id:
                view.stream_credit[stream_id] = view.stream_credit.get(stream_id, 0) + increment
            else:
                view.conn_credit += increment
        elif ftype == 4 and not flags & 1:
            view.settings += 1
            view.apply_settings(payload)
        elif ftype == 6 and not flags & 1:
            view.pings.add(payload)
    return view


@dataclass
class _OutStream:
    method: bytes = b""  # the request's, when the client's header blocks could be read
    websocket: bool = False  # an extended CONNECT for a WebSocket
    final: bool = False  # the final response head was sent
    ended: bool = False  # END_STREAM sent
    reset: bool = False  # RST_STREAM sent
    status: int = 0
    fields: list[tuple[bytes, bytes]] = field(default_factory=list)
    length: int | None = None  # content-length
    data: int = 0  # DATA bytes
    body: bytearray = field(default_factory=bytearray)  # kept for a WebSocket stream


def check_h2(
    out: bytes, data: bytes, closed_by_server: str | None, h2c: str | None = None
) -> list[str]:
    """``out`` as HTTP/2 frames from a server, checked against what the client allowed
    (``h2c``: the method of the request that upgraded the connection, if one did)."""
    problems: list[str] = []
    view = _client_h2(data, h2c)
    first_decoder = hpack.Decoder()
    first_decoder.max_allowed_table_size = view.table_size
    first_decoder.max_header_list_size = 1 << 30
    decoder: hpack.Decoder | None = first_decoder
    streams: dict[int, _OutStream] = {}
    block = bytearray()
    block_stream = 0
    block_ends = False
    conn_data = 0
    acks = 0
    goaway_last: int | None = None
    goaway_error = False
    pos = 0
    count = 0

    def header_block(st: _OutStream, where: str) -> None:
        nonlocal decoder
        if decoder is None:
            return
        try:
            fields = list(decoder.decode(bytes(block), raw=True))
        except Exception as exc:
            problems.append(f"{where}: HPACK: {exc!r}")
            decoder = None  # its table is lost: the blocks after this one are not read
            return
        pseudo = [(n, v) for n, v in fields if n.startswith(b":")]
        regular = [(n, v) for n, v in fields if not n.startswith(b":")]
        for name, value in regular:
            if name != name.lower() or name in _CONNECTION_FIELDS:
                problems.append(f"{where}: field {name!r}")
            if re.search(rb"[\x00\r\n]", value) or value != value.strip(b" \t"):
                problems.append(f"{where}: value {value!r}")
        if st.final:  # trailers
            if pseudo or not block_ends:
                problems.append(f"{where}: trailers with {pseudo} (END_STREAM {block_ends})")
            st.ended = True
            return
        if len(pseudo) != 1 or fields[0][0] != b":status" or not fields[0][1].isdigit():
            problems.append(f"{where}: a response head with pseudo fields {pseudo}")
            return
        status = int(fields[0][1])
        if not 100 <= status <= 599 or status == 101:
            problems.append(f"{where}: status {status}")
        if status < 200:
            if block_ends:
                problems.append(f"{where}: a {status} that ends the stream")
            return
        st.final = True
        st.status = status
        st.fields = regular
        lengths = {v for n, v in regular if n == b"content-length"}
        if lengths:
            value = lengths.pop()
            if lengths or not value.isdigit():
                problems.append(f"{where}: content-length {value!r} {lengths}")
            else:
                st.length = int(value)
        if block_ends:
            st.ended = True

    while pos < len(out):
        count += 1
        if len(out) - pos < 9:
            problems.append(f"frame {count}: a partial frame header at the end")
            break
        try:
            frm, length = hf.Frame.parse_frame_header(memoryview(out[pos : pos + 9]), strict=True)
        except UnknownFrameError:
            problems.append(f"frame {count}: unknown frame type {out[pos + 3]}")
            break
        except HyperframeError as exc:
            problems.append(f"frame {count}: {exc}")
            break
        body = out[pos + 9 : pos + 9 + length]
        if len(body) < length:
            problems.append(f"frame {count}: a partial frame at the end")
            break
        pos += 9 + length
        sid = frm.stream_id
        where = f"frame {count} ({type(frm).__name__}, stream {sid})"
        try:
            frm.parse_body(memoryview(body))
        except HyperframeError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if goaway_error:
            problems.append(f"{where}: sent after a GOAWAY with an error code")
            break
        if length > view.max_frame:
            problems.append(f"{where}: {length} bytes, over MAX_FRAME_SIZE {view.max_frame}")
        if count == 1 and (not isinstance(frm, hf.SettingsFrame) or "ACK" in frm.flags):
            problems.append(f"{where}: the server preface is not SETTINGS")
        if block_stream and not (isinstance(frm, hf.ContinuationFrame) and sid == block_stream):
            problems.append(f"{where}: inside the header block of stream {block_stream}")
            block_stream = 0
        # (a stream error, e.g. a bad PRIORITY frame, resets a stream that stays idle, of
        # either parity: RFC 9113 6.3 asks for it, though 6.4 forbids RST_STREAM on idle ones)
        if isinstance(frm, hf.RstStreamFrame):
            unknown = sid not in view.referenced
        else:
            unknown = sid % 2 == 0 or sid not in view.opened
        if sid and unknown:
            problems.append(f"{where}: a stream the client did not open")
        st = streams.get(sid)
        if st is None:
            method, protocol = view.methods.get(sid, (b"", b""))
            st = streams[sid] = _OutStream(method, method == b"CONNECT" and protocol != b"")
        if sid and st.reset and not isinstance(frm, hf.PriorityFrame):
            problems.append(f"{where}: sent after RST_STREAM")
        if isinstance(frm, hf.DataFrame):
            if st.ended or not st.final:
                what = "an extended CONNECT: " if st.websocket else ""
                what += f"DATA of {len(frm.data)} bytes"
                what += " with END_STREAM" if "END_STREAM" in frm.flags else ""
                what += " after END_STREAM" if st.ended else " before the response head"
                problems.append(f"{where}: {what}")
            size = frm.flow_controlled_length
            st.data += size
            conn_data += size
            if frm.data and st.status in (204, 304):
                problems.append(f"{where}: a body on a {st.status}")
            if frm.data and st.method == b"HEAD" and st.status not in (400, 431):
                problems.append(f"{where}: a body on the response to HEAD (status {st.status})")
            if st.websocket and st.status == 200:
                st.body += frm.data
            if "END_STREAM" in frm.flags:
                st.ended = True
                if st.length is not None and st.data not in (0, st.length):
                    problems.append(f"{where}: {st.data} bytes of content-length {st.length}")
        elif isinstance(frm, (hf.HeadersFrame, hf.ContinuationFrame)):
            if isinstance(frm, hf.HeadersFrame):
                if st.ended:
                    problems.append(f"{where}: HEADERS after END_STREAM")
                if goaway_last is not None and sid > goaway_last and not st.final:
                    problems.append(f"{where}: a response on a stream after GOAWAY({goaway_last})")
                block[:] = frm.data
                block_ends = "END_STREAM" in frm.flags
            elif block_stream != sid:
                problems.append(f"{where}: CONTINUATION outside a header block")
                continue
            else:
                block += frm.data
            if "END_HEADERS" in frm.flags:
                block_stream = 0
                header_block(st, where)
            else:
                block_stream = sid
        elif isinstance(frm, hf.RstStreamFrame):
            st.reset = True
        elif isinstance(frm, hf.SettingsFrame):
            acks += "ACK" in frm.flags
        elif isinstance(frm, hf.PingFrame):
            if "ACK" in frm.flags and bytes(frm.opaque_data) not in view.pings:
                problems.append(f"{where}: a PING ACK for a PING never sent")
        elif isinstance(frm, hf.GoAwayFrame):
            if goaway_last is not None and frm.last_stream_id > goaway_last:
                problems.append(f"{where}: last stream id up from {goaway_last}")
            goaway_last = frm.last_stream_id
            goaway_error = frm.error_code != 0
        elif isinstance(frm, hf.PushPromiseFrame):
            problems.append(f"{where}: a server push")
    if block_stream:
        problems.append(f"the header block of stream {block_stream} never ends")
    if conn_data > 65535 + view.conn_credit:
        problems.append(f"{conn_data} DATA bytes: over the connection window the client gave")
    for sid, st in streams.items():
        if sid and st.data > view.initial_window + view.stream_credit.get(sid, 0):
            problems.append(f"stream {sid}: {st.data} DATA bytes, over the window the client gave")
        if st.websocket and st.status == 200:
            deflate = any(n == b"sec-websocket-extensions" for n, _ in st.fields)
            for problem in check_ws(bytes(st.body), deflate, whole=st.ended):
                problems.append(f"stream {sid}: {problem}")
    if acks > view.settings:
        problems.append(f"{acks} SETTINGS ACKs for {view.settings} SETTINGS")
    if goaway_error and not closed_by_server:
        problems.append("a GOAWAY with an error, but the connection stayed open")
    return problems
