"""The one asyncio.Protocol: the only code that touches the transport.

A :class:`Connection` owns one socket. It feeds bytes to a sans-I/O HTTP/1
protocol object, turns the calls it gets back into ASGI cycles, and writes
what the cycles produce. It alone handles flow control in both directions,
the connection's timer, and its part in a graceful shutdown.

Connection states: *idle* (no request in progress: the keep-alive deadline is
armed, also before the first request), *active* (a cycle is running; later
pipelined requests wait in order and reading pauses), *closing* (the transport
is closed or closing).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections import deque
from time import perf_counter
from typing import TYPE_CHECKING, Any

from squall.asgi.http import DONE, HELD, IDLE, HTTPCycle
from squall.asgi.scope import ConnInfo, http_scope
from squall.connection.h2 import H2Session
from squall.connection.sendfile import send_file
from squall.connection.ws import start_websocket
from squall.middleware.proxy_headers import apply_proxy_headers
from squall.protocols.http1.base import error_response
from squall.protocols.http1.head import ParseError, RequestHead

if TYPE_CHECKING:
    from squall.asgi.websocket import WebSocketSession
    from squall.connection.state import ServerState
    from squall.protocols.http1.base import HTTP1
    from squall.protocols.proxy import ProxyInfo

logger = logging.getLogger("squall.error")
access_logger = logging.getLogger("squall.access")

SHUTDOWN_GRACE = 0.5  # a fresh connection's first request may be on its way at shutdown
DRAIN_LIMIT = 65536  # unread request body dropped to keep a connection; beyond it, close


class Connection(asyncio.Protocol):
    __slots__ = (
        "_body_received",
        "_deadline",
        "_drain_waiters",
        "_drained",
        "_draining",
        "_flush_scheduled",
        "_fresh",
        "_pipeline",
        "_read_paused",
        "_reading_body",
        "_refusal",
        "_requests",
        "_timer",
        "_timer_at",
        "_waiting",
        "_wbuf",
        "_wbuf_size",
        "_write_deadline",
        "closing",
        "cycle",
        "h2",
        "head",
        "info",
        "loop",
        "parsing",
        "proto",
        "proxied",
        "server",
        "transport",
        "upgrading",
        "write_paused",
        "ws",
    )

    def __init__(self, server: ServerState) -> None:
        self.server = server
        self.loop = server.loop
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.proto: HTTP1 = server.make_http1(self)
        self.info: ConnInfo = None  # type: ignore[assignment]
        self.cycle: HTTPCycle | None = None  # the cycle whose response is being sent
        self.head: RequestHead | None = None  # its request head
        self.parsing: HTTPCycle | None = None  # the cycle receiving request body
        self._pipeline: deque[tuple[HTTPCycle, RequestHead, Any]] = deque()
        self._read_paused = False
        self._refusal: bytes | None = None  # answer to a bad pipelined request
        self.write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._draining: HTTPCycle | None = None  # answered, its body still arriving
        self._drained = 0
        # Streamed chunks sent in one loop iteration leave in one write.
        self._wbuf: list[bytes] = []
        self._wbuf_size = 0
        self._flush_scheduled = False
        self._deadline: float | None = None  # keep-alive, request head or body deadline
        self._write_deadline: float | None = None  # while the client does not read
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0  # when it fires
        self._waiting = True  # for a request: the keep-alive deadline runs
        self._reading_body = False  # the body deadline runs
        self._body_received = 0  # of the request being parsed (for --limit-request-body)
        self._requests = 0
        self.closing = False
        self.ws: WebSocketSession | None = None  # after a WebSocket upgrade
        self.h2: H2Session | None = None  # serving HTTP/2
        self.upgrading = False  # h2c: the upgrade request's body is still read as HTTP/1.1
        self._fresh = True  # nothing received yet: an HTTP/2 preface may come
        self.proxied: ProxyInfo | None = None  # addresses from a PROXY protocol header

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.info = self.server.conn_info(transport, self.proxied)
        server = self.server
        if server.limit_connections is not None and not server.connection_opened(self):
            self.transport.pause_reading()  # over the limit (accepted in a batch): wait for a slot
            self._read_paused = True
            return
        server.connections.add(self)
        if logger.isEnabledFor(5):
            logger.log(5, "%s - HTTP connection made", self.info.client_label)
        self._arm(self.server.config.timeout_keep_alive)
        if self.info.alpn == "h2":
            self._start_h2()

    def unpark(self) -> None:
        """A connection slot is free: serve this connection, accepted over the limit."""
        if not self.closing:
            self.server.connections.add(self)
            self._resume_reading()
            self._arm(self.server.config.timeout_keep_alive)
            if self.info.alpn == "h2":
                self._start_h2()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.server.connections.discard(self)
        if self.server.limit_connections is not None:
            self.server.connection_closed(self)
        if logger.isEnabledFor(5):
            logger.log(5, "%s - HTTP connection lost", self.info.client_label)
        for cycle in self._cycles():
            cycle.disconnect()
        if self.ws is not None:
            self.ws.connection_lost()
        if self.h2 is not None:
            self.h2.connection_lost()
        self._pipeline.clear()
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._wake_drainers()

    def gauge(self) -> tuple[str, int]:
        if self.h2 is not None:
            return "h2", sum(1 for s in self.h2.streams.values() if s.is_websocket)
        if self.ws is not None:
            return "websocket", 1
        return "http/1.1", 0

    def _websocket(self) -> WebSocketSession | None:
        return self.ws

    def data_received(self, data: bytes) -> None:
        metrics = self.server.metrics
        if metrics is not None:
            metrics.bytes_in += len(data)
        if self.ws is not None:
            self.ws.feed(data)
            return
        if self.h2 is not None and not self.upgrading:
            self.h2.feed(data)
            return
        started = self._waiting  # the first bytes of a request
        if started:
            self._waiting = False
            if self._fresh:
                self._fresh = False
                if data[:3] == b"PRI" and self.server.http2:  # HTTP/2 prior knowledge
                    self._start_h2()
                    assert self.h2 is not None
                    self.h2.feed(data)
                    return
        try:
            self.proto.feed(data)
            unparsed = self.proto.unparsed
            if unparsed is not None:  # switched: the rest is for the new protocol
                ws = self._websocket()  # not self.ws: narrowed to None above (mypyc)
                if ws is not None:
                    if unparsed:
                        ws.feed(unparsed)
                elif self.h2 is not None:
                    self._switch_to_h2()
                    self.h2.feed(unparsed)
        except ParseError as exc:
            self._refuse(exc.status, exc.reason)
        except Exception:
            logger.exception("Error while parsing HTTP request")
            self._refuse(400, "Invalid HTTP request received.")
        if (
            started
            and self.cycle is None
            and self.parsing is None
            and not self.closing
            and self.h2 is None
            and self._websocket() is None  # not self.ws: narrowed to None above (mypyc)
        ):  # the head is not complete in this read: it gets the header deadline
            self._set_deadline(self.server.config.timeout_request_header)

    def eof_received(self) -> bool | None:
        # The peer can't be told apart from one that closed completely, and a
        # request waiting on it would wait forever: treat EOF as a disconnect.
        self.proto.feed_eof()
        return None

    def pause_writing(self) -> None:
        self.write_paused = True
        self._write_deadline = deadline = self.loop.time() + self.server.config.timeout_write
        self._schedule(deadline)

    def resume_writing(self) -> None:
        self.write_paused = False
        self._write_deadline = None
        self._wake_drainers()

    # -- H1Events: calls from the parser

    def on_request(self, head: RequestHead) -> None:
        if self.closing:
            return
        self._deadline = None
        server = self.server
        if head.upgrade == b"websocket" and server.websockets:
            if self.cycle is None:
                self.ws = start_websocket(self, head)
                return
            app = server.refusal(400, "A WebSocket upgrade cannot be pipelined.")
            head.keep_alive = False
        elif head.upgrade == b"h2c" and server.http2 and self._h2c_upgrade(head):
            return
        elif server.limit_concurrency is not None and server.over_capacity():
            logger.warning("Exceeded concurrency limit.")
            app = server.refusal(503, "Service Unavailable")
            head.keep_alive = False
        else:
            app = server.app
        scope = http_scope(head, self.info, server.root_path, server.state)
        if self.info.trusted and head.forwarded:
            apply_proxy_headers(scope, server.trusted_hosts)
        if server.request_checks:  # any of: health path, body limit, per-connection limit
            app = self._checked(head, app)
        cycle = HTTPCycle(scope, self, head.expect_continue)
        self.parsing = cycle
        if head.content_length == 0 and not head.chunked:
            cycle.body_complete = True
        else:
            self._reading_body = True
            self._set_deadline(server.config.timeout_request_body)
        if self.cycle is None:
            self._start(cycle, head, app)
        else:
            self._pipeline.append((cycle, head, app))
            self._pause_reading()

    def _checked(self, head: RequestHead, app: Any) -> Any:
        """The optional per-request rules; returns the app that answers."""
        server = self.server
        if server.health_path is not None and head.target == server.health_path:
            app = server.health
        self._requests += 1
        per_connection = server.max_requests_per_connection
        if per_connection is not None and self._requests >= per_connection:
            head.keep_alive = False
        limit = server.limit_request_body
        if limit is not None:
            self._body_received = 0
            if head.content_length > limit:
                logger.info("%s - Request body too large: 413", self.info.client_label)
                app = server.refusal(413, "Request Entity Too Large")
                head.keep_alive = False
        return app

    def on_body(self, data: bytes) -> None:
        cycle = self.parsing
        if cycle is None:
            return
        if self._reading_body:
            self._deadline = self.loop.time() + self.server.config.timeout_request_body
        limit = self.server.limit_request_body
        if limit is not None:
            self._body_received += len(data)
            if self._body_received > limit and cycle is not self._draining:
                self._body_too_large(cycle)
                return
        if cycle is self._draining:  # answered already: the rest of its body is dropped
            self._drained += len(data)
            if self._drained > DRAIN_LIMIT:
                self._close()
            return
        cycle.feed_body(data)

    def on_request_end(self) -> None:
        cycle = self.parsing
        if self._reading_body:
            self._reading_body = False
            self._deadline = None
        if self.upgrading:
            self.parsing = None
            if cycle is not None:
                cycle.end_body()
            self._switch_to_h2()
            return
        if cycle is not None:
            cycle.end_body()
            if cycle is self._draining:
                self._draining = None
                self._next()

    # -- HTTP/2

    def _start_h2(self) -> None:
        self.h2 = H2Session(self)
        self.h2.schedule_flush()  # the server preface (held while an h2c upgrade is read)
        self._arm(self.server.config.timeout_keep_alive)  # idle until a stream ends

    def _h2c_upgrade(self, head: RequestHead) -> bool:
        """Switch to HTTP/2 for ``Upgrade: h2c`` (RFC 7540 3.2); False to stay HTTP/1.1."""
        if self.cycle is not None or self.info.scheme == "https" or head.method == "CONNECT":
            return False
        settings = [v for n, v in head.headers if n == b"http2-settings"]
        if len(settings) != 1:
            return False
        try:
            payload = base64.urlsafe_b64decode(settings[0] + b"=" * (-len(settings[0]) % 4))
        except (ValueError, binascii.Error):
            return False
        head.switching = True
        # The 101 (and the HTTP/2 preface after it) waits until the request body has
        # come as HTTP/1.1: a client may still be sending it, or wait for 100 Continue.
        self.upgrading = True
        self._start_h2()
        assert self.h2 is not None
        try:
            cycle = self.h2.upgrade(head, payload)
        except Exception:  # bad HTTP2-Settings: the preface was sent, so end as HTTP/2
            self._switch_to_h2()
            self.h2.proto.fail(1, "Invalid HTTP2-Settings")
            self.h2.schedule_flush()
            return True
        self.parsing = cycle
        self._deadline = None
        return True

    def _switch_to_h2(self) -> None:
        """h2c: the upgrade request is all read; the 101, then HTTP/2 frames."""
        if self.upgrading:
            self.upgrading = False
            self.transport.write(
                b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n"
            )
            assert self.h2 is not None
            self.h2.schedule_flush()

    def h2_idle(self) -> None:
        """The HTTP/2 connection has no streams left: the keep-alive deadline runs."""
        self._arm(self.server.config.timeout_keep_alive)

    # -- running cycles

    def _start(self, cycle: HTTPCycle, head: RequestHead, app: Any) -> None:
        """Run the app for ``cycle`` in its own task (its own contextvars copy).

        Eager task start (Python 3.12+) was measured and rejected: with uvloop it
        served 35% fewer plaintext requests under wrk than a normal task.
        """
        self.cycle = cycle
        self.head = head
        server = self.server
        if server.timed:
            cycle.start_time = perf_counter()
        task = self.loop.create_task(cycle.run(app, server.tasks))
        cycle.task = task
        server.tasks.add(task)

    def _cycles(self) -> list[HTTPCycle]:
        cycles = [c for c, _, _ in self._pipeline]
        if self.cycle is not None:
            cycles.append(self.cycle)
        if self.parsing is not None and self.parsing not in cycles:
            cycles.append(self.parsing)
        return cycles

    # -- ResponseSink: calls from the active cycle

    def start_response(
        self, cycle: HTTPCycle, status: int, headers: Any, body: bytes | None, more_body: bool
    ) -> None:
        head = self.head
        assert head is not None
        if self.server.shutting_down:
            head.keep_alive = False
        start, framed = self.proto.response_start(
            status, headers, self.server.default_headers, head, body, more_body
        )
        if more_body:
            self._buffer(start + framed)
        elif self.closing:
            pass
        elif self._pipeline:  # more requests queued: their answers can share one write
            self._buffer(start + framed, schedule=False)
        elif self._wbuf:
            self._wbuf.append(start + framed)
            self._flush()
        elif len(framed) < 16384:
            self.transport.write(start + framed)  # head and body in one write
        else:
            self.transport.writelines((start, framed))  # large: no copy to join them

    def send_body(self, cycle: HTTPCycle, body: bytes, more_body: bool) -> None:
        data = self.proto.response_body(body, more_body)
        if more_body:
            self._buffer(data)
        elif self._pipeline:
            self._buffer(data, schedule=False)
        elif self._wbuf:
            self._wbuf.append(data)
            self._flush()
        elif data and not self.closing:
            self.transport.write(data)

    def send_continue(self, cycle: HTTPCycle) -> None:
        if not self.closing:
            self.transport.write(self.proto.informational(100, []))

    def send_informational(
        self, cycle: HTTPCycle, status: int, headers: list[tuple[bytes, bytes]]
    ) -> None:
        head = self.head
        if not self.closing and head is not None and head.http_version == "1.1":
            self._buffer(self.proto.informational(status, headers))

    def send_trailers(self, cycle: HTTPCycle, headers: list[tuple[bytes, bytes]]) -> None:
        head = self.head
        accepted = head is not None and any(
            name == b"te" and b"trailers" in value.lower() for name, value in head.headers
        )
        self._buffer(self.proto.response_trailers(headers, accepted), schedule=False)
        self._flush()

    async def send_file(self, cycle: HTTPCycle, fd: int, offset: int, count: int) -> None:
        framing = self.proto.file_framing(count)
        if framing is None or self.closing:
            return
        prefix, suffix = framing
        if prefix:
            self._buffer(prefix, schedule=False)
        self._flush()
        zero_copy = self.info.scheme == "http"
        await send_file(self.transport, self, fd, offset, count, zero_copy)
        if suffix:
            self._buffer(suffix)

    def response_complete(self, cycle: HTTPCycle) -> None:
        server = self.server
        server.total_requests += 1
        if server.timed:
            server.response_done(cycle, self.info, "http/1.1")
        if self.closing:
            return
        if not self.proto.keep_alive or server.shutting_down or cycle.expect_continue:
            # (a client still waiting for 100 Continue may never send its body)
            self._close()
            return
        if not cycle.body_complete:
            # The app answered without reading the whole body: read and drop the
            # rest (up to DRAIN_LIMIT), then go on with the next request.
            self._draining = cycle
            self._drained = cycle.discard_body()
            self._resume_reading()
            return
        self._next()

    def _next(self) -> None:
        """The response is complete and so is its request: next request, or idle."""
        self.cycle = None
        self.head = None
        if self._pipeline:
            next_cycle, head, app = self._pipeline.popleft()
            self._start(next_cycle, head, app)
            # runs after the next app's first step: if it did not answer at once, send
            # what is held now rather than after it
            self.loop.call_soon(self._flush_if_stalled, next_cycle)
            if not self._pipeline and self._refusal is None:
                self._resume_reading()
        elif self._refusal is not None:
            self.transport.write(self._refusal)
            self._close()
        else:
            self._resume_reading()
            if self.proto.in_head:  # the next head began during the response
                self._waiting = False
                self._set_deadline(self.server.config.timeout_request_header)
            else:
                self._arm(self.server.config.timeout_keep_alive)

    def cycle_failed(self, cycle: HTTPCycle, status: int) -> None:
        """The app failed or returned early: answer ``status`` if nothing was sent."""
        if self.closing or cycle is not self.cycle:
            return
        self._flush()
        if cycle.state == IDLE or cycle.state == HELD:  # nothing on the wire yet
            cycle.state = DONE
            cycle.status = status
            message = "Internal Server Error" if status == 500 else "Service Unavailable"
            self.transport.write(error_response(status, message, self.server.default_headers))
            if self.server.timed:
                self.server.response_done(cycle, self.info, "http/1.1")
        self._close()

    def pause_reading(self) -> None:
        self._pause_reading()

    def consumed(self, size: int) -> None:
        pass

    def resume_reading(self) -> None:
        if not self._pipeline:
            self._resume_reading()

    async def drain(self) -> None:
        if not self.write_paused or self.closing:
            return
        waiter = self.loop.create_future()
        self._drain_waiters.append(waiter)
        await waiter

    # -- for the WebSocket sink

    def write(self, data: bytes) -> None:
        if data and not self.closing:
            self.transport.write(data)

    def close(self) -> None:
        self._close()

    # -- flow control, timers, closing

    def _buffer(self, data: bytes, schedule: bool = True) -> None:
        """Hold output until the loop turns (or, for a pipeline, until it stalls or
        ends), or until 64 KiB are waiting."""
        if not data:
            return
        self._wbuf.append(data)
        self._wbuf_size += len(data)
        if self._wbuf_size >= 65536:
            self._flush()
        elif schedule and not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush_if_stalled(self, cycle: HTTPCycle) -> None:
        if cycle.state != DONE:
            self._flush()

    def _flush(self) -> None:
        self._flush_scheduled = False
        wbuf = self._wbuf
        if wbuf:
            data = wbuf[0] if len(wbuf) == 1 else b"".join(wbuf)
            wbuf.clear()
            self._wbuf_size = 0
            if not self.closing:
                self.transport.write(data)

    def _pause_reading(self) -> None:
        if not self._read_paused and not self.closing:
            self._read_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._read_paused and not self.closing:
            self._read_paused = False
            self.transport.resume_reading()

    def _wake_drainers(self) -> None:
        waiters = self._drain_waiters
        if waiters:
            self._drain_waiters = []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _arm(self, seconds: float) -> None:
        """Wait for a request: the keep-alive deadline."""
        deadline = self.loop.time() + seconds
        self._deadline = deadline
        self._waiting = True
        self._schedule(deadline)

    def _set_deadline(self, seconds: float) -> None:
        self._deadline = deadline = self.loop.time() + seconds
        self._schedule(deadline)

    def _schedule(self, when: float) -> None:
        """One timer handle per connection; moved only when a deadline comes sooner."""
        timer = self._timer
        if timer is None:
            self._timer = self.loop.call_at(when, self._on_timer)
            self._timer_at = when
        elif when < self._timer_at:
            timer.cancel()
            self._timer = self.loop.call_at(when, self._on_timer)
            self._timer_at = when

    def _on_timer(self) -> None:
        """Named deadlines: keep-alive (idle), request head, request body, write."""
        self._timer = None
        if self.closing:
            return
        now = self.loop.time()
        write_deadline = self._write_deadline
        if write_deadline is not None and now >= write_deadline:
            logger.info("%s - Client did not read for --timeout-write", self.info.client_label)
            self.closing = True
            self.transport.abort()
            return
        deadline = self._deadline
        if deadline is not None and now >= deadline:
            if self.h2 is not None:
                if not self.h2.streams:
                    self.h2.idle_timeout()
                    return
                deadline = None
            elif self._reading_body:
                if self._read_paused:  # the app is not reading: not the client's fault
                    deadline = self._deadline = now + self.server.config.timeout_request_body
                else:
                    self._request_timeout("Request body timed out")
                    return
            elif self.cycle is None:
                if self._waiting:
                    if logger.isEnabledFor(5):
                        logger.log(5, "%s - keep-alive timeout", self.info.client_label)
                    self._close()
                else:
                    self._request_timeout("Request header timed out")
                return
            else:
                deadline = None
        upcoming = [d for d in (deadline, write_deadline) if d is not None]
        if upcoming:
            self._timer_at = when = min(upcoming)
            self._timer = self.loop.call_at(when, self._on_timer)

    def _request_timeout(self, reason: str) -> None:
        """A request that stalled: 408 if nothing was answered yet, then close."""
        logger.info("%s - %s: 408", self.info.client_label, reason)
        cycle = self.parsing
        if cycle is not None:
            cycle.disconnect()
        current = self.cycle
        if current is None or current.state == IDLE or current.state == HELD:
            if current is not None:
                current.state = DONE
            self._flush()
            self.transport.write(
                error_response(408, "Request Timeout", self.server.default_headers)
            )
        self._close()

    def _body_too_large(self, cycle: HTTPCycle) -> None:
        """A body over --limit-request-body: 413 if nothing was answered, then close."""
        logger.info("%s - Request body too large: 413", self.info.client_label)
        cycle.disconnect()
        if cycle is self.cycle and (cycle.state == IDLE or cycle.state == HELD):
            cycle.state = DONE
            cycle.status = 413
            self._flush()
            self.transport.write(
                error_response(413, "Request Entity Too Large", self.server.default_headers)
            )
        self._close()

    def _refuse(self, status: int, reason: str) -> None:
        """Answer a bad request and close; pending responses go first."""
        log = logger.info if status in (408, 431, 414) else logger.warning
        log("%s - %s: %d", self.info.client_label, reason, status)
        if self.closing:
            return
        body = error_response(
            status, _REASONS.get(status, "Bad Request"), self.server.default_headers
        )
        cycle = self.cycle
        self._flush()
        if cycle is None:
            self.transport.write(body)
            self._close()
        elif cycle is self.parsing and not cycle.body_complete:
            # the running request's own body is broken: it ends here
            cycle.disconnect()
            if cycle.state == IDLE or cycle.state == HELD:
                cycle.state = DONE
                self.transport.write(body)
            self._close()
        else:
            # the requests before it are answered first, then this refusal
            broken = self.parsing
            if broken is not None and not broken.body_complete and self._pipeline:
                self._pipeline.pop()  # its body is broken: it is never started
            self._refusal = body
            self._pause_reading()

    def _close(self) -> None:
        if not self.closing:
            self._flush()
            self.closing = True
            self.transport.close()
            pending = self.transport.get_write_buffer_size()
            if pending:  # the rest goes out as the peer reads; a peer that stops is cut off
                self.loop.call_later(self._linger_interval(), self._check_linger, pending)

    def _linger_interval(self) -> float:
        return max(1.0, float(self.server.config.timeout_keep_alive))

    def _check_linger(self, before: int) -> None:
        """A closing connection with output still buffered: abort it unless it moved."""
        transport = self.transport
        pending = transport.get_write_buffer_size()
        if not pending or transport.get_extra_info("socket") is None:
            return
        if pending >= before:
            transport.abort()
        else:
            self.loop.call_later(self._linger_interval(), self._check_linger, pending)

    def shutdown(self) -> None:
        """Graceful shutdown: close when idle, else after the current response."""
        if self.ws is not None:
            self.ws.shutdown()
        elif self.h2 is not None:
            self.h2.shutdown()
        elif self.cycle is None and not self._pipeline:
            if self._waiting and not self._fresh:
                self._close()  # idle between requests
            else:
                # accepted, with a request maybe already in the socket, or a head
                # begun: a moment to read and answer it (with connection: close)
                self._set_deadline(SHUTDOWN_GRACE)
        elif self.head is not None:
            self.head.keep_alive = False


_REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    414: "URI Too Long",
    417: "Expectation Failed",
    431: "Request Header Fields Too Large",
    501: "Not Implemented",
    505: "HTTP Version Not Supported",
}
