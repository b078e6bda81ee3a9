"""The HTTP/1.1 handler: requests in order on one connection.

Every connection starts here (but one that negotiated ``h2`` by ALPN). The
handler feeds reads to the sans-I/O parser, admits each request head, runs
one cycle at a time (pipelined requests wait in order, reading paused) and is
the :class:`~squall.asgi.http.ResponseSink` of the running cycle.

States: *waiting* (no request in progress: the keep-alive deadline runs, and
the request-head deadline once a head has begun), *active* (a cycle runs;
the request-body deadline runs while its body arrives), *draining* (the
response went out before the whole body came: the rest is read and dropped,
up to ``DRAIN_LIMIT``), then waiting again or closed.

A read may change the protocol: HTTP/2 prior knowledge, ``Upgrade:
websocket`` or ``Upgrade: h2c`` (:mod:`squall.connection.h2c`). ``feed``
then returns the :class:`~squall.connection.port.Switch` for the shell.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from squall.asgi.http import DONE, HTTPCycle
from squall.connection.admit import admit_http, start
from squall.connection.h2 import H2Handler
from squall.connection.h2c import H2cUpgrade
from squall.connection.port import Deadline, Handler, Switch
from squall.connection.ws import start_websocket
from squall.protocols.http1.base import error_response
from squall.protocols.http1.head import ParseError

if TYPE_CHECKING:
    from squall.connection.port import ConnectionPort
    from squall.protocols.http1.head import RequestHead

logger = logging.getLogger("squall.error")

SHUTDOWN_GRACE = 0.5  # a fresh connection's first request may be on its way at shutdown
DRAIN_LIMIT = 65536  # unread request body dropped to keep a connection; beyond it, close

_REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    414: "URI Too Long",
    417: "Expectation Failed",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}


class H1Handler(Handler):
    __slots__ = (
        "_body_received",
        "_body_timeout",
        "_drained",
        "_draining",
        "_early",
        "_fresh",
        "_head_timeout",
        "_keep_alive",
        "_pipeline",
        "_reading_body",
        "_refusal",
        "_requests",
        "_switch",
        "_upgrade",
        "_waiting",
        "cycle",
        "head",
        "info",
        "parsing",
        "port",
        "proto",
        "server",
    )

    def __init__(self, port: ConnectionPort) -> None:
        self.port = port
        self.server = server = port.server
        config = server.config
        # the deadlines' lengths, read once
        self._keep_alive = float(config.timeout_keep_alive)
        self._head_timeout = float(config.timeout_request_header)
        self._body_timeout = float(config.timeout_request_body)
        self.info = port.info
        self.proto = server.make_http1(self)
        self.cycle: HTTPCycle | None = None  # the cycle whose response is being sent
        self.head: RequestHead | None = None  # its request head
        self.parsing: HTTPCycle | None = None  # the cycle receiving request body
        self._pipeline: deque[tuple[HTTPCycle, RequestHead, Any]] = deque()
        self._refusal: bytes | None = None  # answer to a bad pipelined request
        self._draining: HTTPCycle | None = None  # answered, its body still arriving
        self._drained = 0
        self._waiting = True  # for a request: the keep-alive deadline runs
        self._reading_body = False  # the body deadline runs
        self._body_received = 0  # of the request being parsed (for --limit-request-body)
        self._requests = 0
        self._fresh = True  # nothing received yet: an HTTP/2 preface may come
        self._early = b""  # the first bytes, while they may begin the HTTP/2 preface
        self._switch: Handler | None = None  # the handler a request switched to
        self._upgrade: H2cUpgrade | None = None  # h2c: the upgrade request's body is read

    # -- Handler

    def attached(self) -> None:
        self.port.set_deadline(Deadline.KEEP_ALIVE, self._keep_alive)

    def feed(self, data: bytes) -> Switch | None:
        started = self._waiting  # the first bytes of a request
        if started:
            self._waiting = False
            if self._fresh:  # the connection's first bytes: maybe the HTTP/2 preface
                first = self._first_bytes(data)
                if first is None or isinstance(first, Switch):
                    return first
                data = first
        port = self.port
        try:
            self.proto.feed(data)
            switch = self._switch
            if switch is not None:
                self._switch = None
                return Switch(switch, self.proto.unparsed or b"")
        except ParseError as exc:
            self._refuse(exc.status, exc.reason)
        except Exception:
            logger.exception("Error while parsing HTTP request")
            self._refuse(400, "Invalid HTTP request received.")
        if started and self.cycle is None and self.parsing is None and not port.closing:
            # the head is not complete in this read: it gets the header deadline
            port.set_deadline(Deadline.REQUEST_HEAD, self._head_timeout)
        return None

    def _first_bytes(self, data: bytes) -> bytes | Switch | None:
        """HTTP/2 prior knowledge starts with ``PRI``: a Switch; fewer than three bytes
        that may begin it are held (None); else the bytes to parse as HTTP/1.1."""
        data = self._early + data
        if self.server.http2 and data[:3] == b"PRI"[: len(data)]:
            if len(data) >= 3:
                return Switch(H2Handler(self.port), data)
            self._early = data
            self._waiting = True
            self.port.set_deadline(Deadline.REQUEST_HEAD, self._head_timeout)
            return None
        self._fresh = False
        self._early = b""
        return data

    def eof_received(self) -> None:
        self.proto.feed_eof()

    def connection_lost(self) -> None:
        for cycle in self._cycles():
            cycle.disconnect()
        if self._upgrade is not None:
            self._upgrade.h2.connection_lost()
        self._pipeline.clear()

    def gauge(self) -> tuple[str, int]:
        return "http/1.1", 0

    def shutdown(self) -> None:
        """Close when idle, else after the current response."""
        if self._upgrade is not None:
            self._upgrade.h2.shutdown()
        elif self.cycle is None and not self._pipeline:
            if self._waiting and not self._fresh:
                self.port.close()  # idle between requests
            else:
                # accepted, with a request maybe already in the socket, or a head
                # begun: a moment to read and answer it (with connection: close)
                self.port.set_deadline(Deadline.SHUTDOWN_GRACE, SHUTDOWN_GRACE)
        elif self.head is not None:
            self.head.keep_alive = False

    def deadline_expired(self, kind: Deadline) -> None:
        port = self.port
        if kind == Deadline.REQUEST_BODY:
            if port.reading_paused:  # the app is not reading: not the client's fault
                port.set_deadline(kind, self._body_timeout)
            else:
                self._request_timeout("Request body timed out")
        elif self.cycle is None:
            if self._waiting:  # keep-alive, or the shutdown grace of an idle connection
                if logger.isEnabledFor(5):
                    logger.log(5, "%s - keep-alive timeout", self.info.client_label)
                port.close()
            else:
                self._request_timeout("Request header timed out")

    # -- H1Events: calls from the parser

    def on_request(self, head: RequestHead) -> None:
        port = self.port
        if port.closing:
            return
        server = self.server
        refused = None
        if head.upgrade is not None:
            if head.upgrade == b"websocket" and server.websockets:
                if self.cycle is None:
                    self._switch = start_websocket(port, self.proto, head)
                    return
                refused = server.refusal(400, "A WebSocket upgrade cannot be pipelined.")
            elif head.upgrade == b"h2c" and server.http2 and self.cycle is None:
                upgrade = H2cUpgrade.start(port, head)
                if upgrade is not None:
                    if upgrade.cycle is None:  # bad HTTP2-Settings: answered as HTTP/2
                        self._switch = upgrade.switch()
                    else:
                        self._upgrade = upgrade
                        self.parsing = upgrade.cycle
                    return
        scope, app = admit_http(server, self.info, head)
        if refused is not None:
            app = refused
            head.keep_alive = False
        self._requests += 1
        per_connection = server.max_requests_per_connection
        if per_connection is not None and self._requests >= per_connection:
            head.keep_alive = False
        self._body_received = 0
        cycle = HTTPCycle(scope, self, head.expect_continue)
        self.parsing = cycle
        if head.content_length == 0 and not head.chunked:
            cycle.body_complete = True
        else:
            self._reading_body = True
            port.set_deadline(Deadline.REQUEST_BODY, self._body_timeout)
        if self.cycle is None:
            self.cycle = cycle
            self.head = head
            start(server, cycle, app)
        else:
            self._pipeline.append((cycle, head, app))
            port.pause_reading()

    def on_body(self, data: bytes) -> None:
        cycle = self.parsing
        if cycle is None:
            return
        if self._reading_body:
            self.port.set_deadline(Deadline.REQUEST_BODY, self._body_timeout)
        limit = self.server.limit_request_body
        if limit is not None:
            self._body_received += len(data)
            if self._body_received > limit and cycle is not self._draining:
                self._body_too_large(cycle)
                return
        if cycle is self._draining:  # answered already: the rest of its body is dropped
            self._drained += len(data)
            if self._drained > DRAIN_LIMIT:
                self.port.close()
            return
        cycle.feed_body(data)

    def on_request_end(self) -> None:
        cycle = self.parsing
        if self._reading_body:
            self._reading_body = False
            self.port.clear_deadline()
        upgrade = self._upgrade
        if upgrade is not None:  # h2c: the request is all read; HTTP/2 from here on
            self.parsing = None
            self._upgrade = None
            if cycle is not None:
                cycle.end_body()
            self._switch = upgrade.switch()
            return
        if cycle is not None:
            cycle.end_body()
            if cycle is self._draining:
                self._draining = None
                self._next()

    # -- running cycles

    def _cycles(self) -> list[HTTPCycle]:
        cycles = [c for c, _, _ in self._pipeline]
        if self.cycle is not None:
            cycles.append(self.cycle)
        if self.parsing is not None and self.parsing not in cycles:
            cycles.append(self.parsing)
        return cycles

    # -- ResponseSink: calls from the running cycle

    @property
    def write_paused(self) -> bool:
        return self.port.write_paused

    def start_response(
        self, cycle: HTTPCycle, status: int, headers: Any, body: bytes | None, more_body: bool
    ) -> None:
        head = self.head
        assert head is not None
        server = self.server
        if server.shutting_down:
            head.keep_alive = False
        start_line, framed = self.proto.response_start(
            status, headers, server.default_headers, head, body, more_body
        )
        port = self.port
        if more_body:
            port.buffer(start_line + framed)
        elif self._pipeline:  # more requests queued: their answers can share one write
            port.buffer(start_line + framed, schedule=False)
        elif len(framed) < 16384:
            port.write(start_line + framed)  # head and body in one write
        else:
            port.buffer(start_line, schedule=False)
            port.write(framed)

    def send_body(self, cycle: HTTPCycle, body: bytes, more_body: bool) -> None:
        data = self.proto.response_body(body, more_body)
        if more_body:
            self.port.buffer(data)
        elif self._pipeline:
            self.port.buffer(data, schedule=False)
        elif data:
            self.port.write(data)

    def send_continue(self, cycle: HTTPCycle) -> None:
        self.port.write(self.proto.informational(100, []))

    def send_informational(
        self, cycle: HTTPCycle, status: int, headers: list[tuple[bytes, bytes]]
    ) -> None:
        head = self.head
        if head is not None and head.http_version == "1.1":
            self.port.buffer(self.proto.informational(status, headers))

    def send_trailers(self, cycle: HTTPCycle, headers: list[tuple[bytes, bytes]]) -> None:
        head = self.head
        accepted = head is not None and any(
            name == b"te" and b"trailers" in value.lower() for name, value in head.headers
        )
        self.port.write(self.proto.response_trailers(headers, accepted))

    async def send_file(self, cycle: HTTPCycle, fd: int, offset: int, count: int) -> None:
        framing = self.proto.file_framing(count)
        port = self.port
        if framing is None or port.closing:
            return
        prefix, suffix = framing
        if prefix:
            port.buffer(prefix, schedule=False)
        await port.send_file(fd, offset, count)
        if suffix:
            port.buffer(suffix)

    def response_complete(self, cycle: HTTPCycle) -> None:
        server = self.server
        server.total_requests += 1
        if server.timed:
            server.response_done(cycle, self.info, "http/1.1")
        port = self.port
        if port.closing:
            return
        if not self.proto.keep_alive or server.shutting_down or cycle.expect_continue:
            # (a client still waiting for 100 Continue may never send its body)
            port.close()
            return
        if not cycle.body_complete:
            # The app answered without reading the whole body: read and drop the
            # rest (up to DRAIN_LIMIT), then go on with the next request.
            self._draining = cycle
            self._drained = cycle.discard_body()
            port.resume_reading()
            return
        self._next()

    def _next(self) -> None:
        """The response is complete and so is its request: next request, or idle."""
        if self.parsing is self.cycle:
            self.parsing = None
        self.cycle = None
        self.head = None
        port = self.port
        if self._pipeline:
            next_cycle, head, app = self._pipeline.popleft()
            self.cycle = next_cycle
            self.head = head
            start(self.server, next_cycle, app)
            # runs after the next app's first step: if it did not answer at once, send
            # what is held now rather than after it
            port.loop.call_soon(self._flush_if_stalled, next_cycle)
            if not self._pipeline and self._refusal is None:
                port.resume_reading()
        elif self._refusal is not None:
            port.write(self._refusal)
            port.close()
        else:
            if port.reading_paused:
                port.resume_reading()
            self._waiting = True
            if self.proto.in_head:  # the next head began during the response
                self._waiting = False
                port.set_deadline(Deadline.REQUEST_HEAD, self._head_timeout)
            else:
                port.set_deadline(Deadline.KEEP_ALIVE, self._keep_alive)

    def _flush_if_stalled(self, cycle: HTTPCycle) -> None:
        if cycle.state != DONE:
            self.port.flush()

    def cycle_failed(self, cycle: HTTPCycle, status: int) -> None:
        """The app failed or returned early: answer ``status`` if nothing was sent."""
        if self.port.closing or cycle is not self.cycle:
            return
        if cycle.preempt(status):  # nothing on the wire yet
            self.port.write(self._error(status, cycle))
            if self.server.timed:
                self.server.response_done(cycle, self.info, "http/1.1")
        self.port.close()

    def pause_reading(self) -> None:
        self.port.pause_reading()

    def consumed(self, size: int) -> None:
        pass

    def resume_reading(self) -> None:
        if not self._pipeline:
            self.port.resume_reading()

    async def drain(self) -> None:
        await self.port.drain()

    # -- refusals

    def _answer(self, cycle: HTTPCycle | None, status: int) -> None:
        """Answer ``status`` in place of ``cycle`` (if nothing was sent yet), then close."""
        if cycle is None or cycle.preempt(status):
            self.port.write(self._error(status, cycle))
        self.port.close()

    def _error(self, status: int, cycle: HTTPCycle | None) -> bytes:
        """The server's own answer ``status``, in place of ``cycle`` (if any)."""
        head = self.head if cycle is not None and cycle is self.cycle else None
        head_only = head is not None and head.method == "HEAD"
        reason = _REASONS.get(status, "Bad Request")
        return error_response(status, reason, self.server.default_headers, head_only)

    def _request_timeout(self, reason: str) -> None:
        """A request that stalled: 408 if nothing was answered yet, then close."""
        logger.info("%s - %s: 408", self.info.client_label, reason)
        if self.parsing is not None:
            self.parsing.disconnect()
        self._answer(self.cycle, 408)

    def _body_too_large(self, cycle: HTTPCycle) -> None:
        """A body over --limit-request-body: 413 if nothing was answered, then close."""
        logger.info("%s - Request body too large: 413", self.info.client_label)
        cycle.disconnect()
        if cycle is self.cycle:
            self._answer(cycle, 413)
        else:
            self.port.close()

    def _refuse(self, status: int, reason: str) -> None:
        """Answer a bad request and close; pending responses go first."""
        log = logger.info if status in (408, 431, 414) else logger.warning
        log("%s - %s: %d", self.info.client_label, reason, status)
        if self.port.closing:
            return
        cycle = self.cycle
        if cycle is None:
            self._answer(None, status)
        elif cycle is self.parsing and not cycle.body_complete:
            # the running request's own body is broken: it ends here
            cycle.disconnect()
            self._answer(cycle, status)
        else:
            # the requests before it are answered first, then this refusal
            broken = self.parsing
            if broken is not None and not broken.body_complete and self._pipeline:
                self._pipeline.pop()  # its body is broken: it is never started
            self._refusal = error_response(
                status, _REASONS.get(status, "Bad Request"), self.server.default_headers
            )
            self.port.pause_reading()
