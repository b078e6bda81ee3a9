"""The two kinds of HTTP/2 stream an :class:`~squall.connection.h2.StreamOwner` serves.

* :class:`H2Stream`: a request stream, the :class:`~squall.asgi.http.ResponseSink`
  of its HTTP cycle (the same cycle as HTTP/1.1).
* :class:`H2WebSocketSink`: an extended CONNECT stream (RFC 8441), the sink of
  a WebSocket session (the same session as the HTTP/1.1 upgrade).

Both wait on the peer's flow-control window and the transport the same way
(:class:`_StreamWriter`).
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING, Any, Protocol

from squall.asgi.http import DONE
from squall.connection.admit import start, start_session
from squall.connection.sendfile import FileShorterThanCount
from squall.errors import ResponseError
from squall.protocols import http2 as h2
from squall.protocols.http2.fields import response_fields
from squall.protocols.http2.hpack import encode_field

if TYPE_CHECKING:
    from squall.asgi.http import HTTPCycle
    from squall.asgi.websocket import WebSocketSession
    from squall.connection.port import ConnectionPort
    from squall.connection.state import ServerState
    from squall.protocols.http1.head import RequestHead
    from squall.protocols.websocket.handshake import Handshake

logger = logging.getLogger("squall.error")

_BODYLESS = frozenset([*range(100, 200), 204, 304])
_MESSAGES = {
    408: b"Request Timeout\n",
    413: b"Request Entity Too Large\n",
    500: b"Internal Server Error\n",
    503: b"Service Unavailable\n",
}


class StreamOwner(Protocol):
    """What a stream uses of its connection's HTTP/2 handler."""

    port: ConnectionPort
    server: ServerState
    loop: asyncio.AbstractEventLoop
    proto: h2.H2Protocol
    streams: dict[int, H2Stream | H2WebSocketSink]
    running: int
    held: bool

    def schedule_flush(self) -> None: ...
    def stream_done(self, stream: H2Stream | H2WebSocketSink) -> None: ...
    def send_continue(self, stream_id: int) -> None: ...
    def body_received(self, stream: H2Stream) -> None: ...
    def went_idle(self) -> None: ...


class _StreamWriter:
    """What both kinds of stream share: waiting for the peer's window and the transport."""

    __slots__ = ("_waiter", "body_deadline", "conn_session", "id", "proto")

    def __init__(self, h2session: StreamOwner, stream_id: int) -> None:
        self.conn_session = h2session
        self.proto: h2.H2Protocol = h2session.proto
        self.id = stream_id
        self._waiter: asyncio.Future[None] | None = None
        self.body_deadline = 0.0  # when the request body times out (0: not timed)

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    @property
    def write_paused(self) -> bool:
        owner = self.conn_session
        return owner.port.write_paused or self.proto.buffered(self.id) >= h2.WRITE_HIGH_WATER

    async def drain(self) -> None:
        owner = self.conn_session
        if owner.port.write_paused:
            await owner.port.drain()
        while self.id in owner.streams and self.proto.buffered(self.id) >= h2.WRITE_HIGH_WATER:
            waiter = self._waiter = owner.loop.create_future()
            await waiter


class H2Stream(_StreamWriter):
    """One request stream: the :class:`~squall.asgi.http.ResponseSink` of its cycle."""

    is_websocket = False

    __slots__ = (
        "_received",
        "_remaining",
        "app",
        "body_paused",
        "cycle",
        "head",
        "head_only",
        "session",
    )

    def __init__(self, session: StreamOwner, stream_id: int, head: RequestHead, app: Any) -> None:
        super().__init__(session, stream_id)
        self.session = session
        self.head = head
        self.app = app
        self.cycle: HTTPCycle = None  # type: ignore[assignment]
        self.head_only = head.method == "HEAD"
        self._remaining = -1  # declared response content-length still to send
        self._received = 0  # request body bytes, for --limit-request-body
        self.body_paused = False  # the app holds more body than it has read

    def start(self) -> None:
        session = self.session
        server = session.server
        cycle = self.cycle
        session.running += 1
        start(server, cycle, self.app).add_done_callback(self._app_returned)

    def _app_returned(self, task: asyncio.Task[None]) -> None:
        self.session.running -= 1

    # -- from the session

    def receive(self, data: bytes, end_stream: bool) -> None:
        cycle = self.cycle
        if data:
            limit = self.session.server.limit_request_body
            if limit is not None:
                self._received += len(data)
                if self._received > limit:
                    self._body_too_large()
                    return
            if cycle.state == DONE:
                self.proto.consumed(self.id, len(data))
            else:
                cycle.feed_body(data)
            if self.body_deadline:
                self.session.body_received(self)
        if end_stream:
            self.body_deadline = 0.0
            cycle.end_body()

    def _body_too_large(self) -> None:
        """Over --limit-request-body: 413 if nothing was answered, else a reset."""
        logger.info("%s - Request body too large: 413", self.session.port.info.client_label)
        self.cycle.disconnect()
        self._answer(413, h2.CANCEL)

    def body_timeout(self) -> None:
        """The request body stalled: 408 if nothing was answered, else a reset."""
        self.cycle.disconnect()
        self._answer(408, h2.CANCEL)

    def _answer(self, status: int, code: int) -> None:
        """Answer ``status`` in the app's place if nothing was sent, else reset with
        ``code``; the stream is done either way."""
        session = self.session
        cycle = self.cycle
        if cycle.preempt(status):
            message = _MESSAGES[status]
            block, _ = response_fields(
                status,
                [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", b"%d" % len(message)),
                ],
                session.server.h2_defaults,
            )
            if self.head_only:  # the head alone, in answer to HEAD
                self.proto.send_headers(self.id, block, True)
            else:
                self.proto.send_headers(self.id, block, False)
                self.proto.send_data(self.id, message, True)
            if session.server.timed:
                session.server.response_done(cycle, session.port.info, "h2")
        else:
            self.proto.reset(self.id, code)
        self.body_deadline = 0.0
        session.schedule_flush()
        session.stream_done(self)

    def gone(self) -> None:
        """Reset by the peer, or the connection is lost."""
        self.cycle.disconnect()
        self.wake()

    # -- ResponseSink

    def start_response(
        self, cycle: HTTPCycle, status: int, headers: Any, body: bytes | None, more_body: bool
    ) -> None:
        block, length = response_fields(status, headers, self.session.server.h2_defaults)
        proto = self.proto
        if self.head_only or status in _BODYLESS:
            proto.send_headers(self.id, block, True)
            self._remaining = -2  # any body the app sends is dropped
        else:
            body = body or b""
            if length < 0 and not more_body:
                length = len(body)
                block += encode_field(b"content-length", b"%d" % length)
            self._remaining = length
            if not body and not more_body:  # one HEADERS frame ends it (gRPC "trailers-only")
                self._check_length(body, more_body)
                proto.send_headers(self.id, block, True)
            elif body or not more_body:
                self._check_length(body, more_body)
                proto.send_headers(self.id, block, False)
                proto.send_data(self.id, body, not more_body)
            else:
                proto.send_headers(self.id, block, False)
        self.session.schedule_flush()

    def _check_length(self, body: bytes, more_body: bool) -> None:
        remaining = self._remaining
        if remaining >= 0:
            remaining -= len(body)
            if remaining < 0:
                raise ResponseError("Response content longer than Content-Length")
            if not more_body and remaining:
                raise ResponseError("Response content shorter than Content-Length")
            self._remaining = remaining

    def send_body(self, cycle: HTTPCycle, body: bytes, more_body: bool) -> None:
        if self._remaining == -2:
            if not more_body:
                self.proto.send_data(self.id, b"", True)  # already ended; no-op
            return
        self._check_length(body, more_body)
        if body or not more_body:
            self.proto.send_data(self.id, body, not more_body)
            self.session.schedule_flush()

    def send_continue(self, cycle: HTTPCycle) -> None:
        self.session.send_continue(self.id)

    def send_informational(
        self, cycle: HTTPCycle, status: int, headers: list[tuple[bytes, bytes]]
    ) -> None:
        block, _ = response_fields(status, headers, None)
        self.proto.send_informational(self.id, block)
        self.session.schedule_flush()

    def send_trailers(self, cycle: HTTPCycle, headers: list[tuple[bytes, bytes]]) -> None:
        if self._remaining == -2:
            return
        self._check_length(b"", False)
        if headers:
            block, _ = response_fields(0, headers, None)
            self.proto.send_headers(self.id, block, True)
        else:
            self.proto.send_data(self.id, b"", True)
        self.session.schedule_flush()

    async def send_file(self, cycle: HTTPCycle, fd: int, offset: int, count: int) -> None:
        if self._remaining == -2:
            return
        if self._remaining >= 0:
            if count > self._remaining:
                raise ResponseError("Response content longer than Content-Length")
            self._remaining -= count
        proto = self.proto
        while count > 0 and self.id in self.session.streams:
            chunk = os.pread(fd, min(count, 65536), offset)
            if not chunk:
                raise FileShorterThanCount("The file ended before 'count' bytes")
            offset += len(chunk)
            count -= len(chunk)
            proto.send_data(self.id, chunk, False)
            self.session.schedule_flush()
            if self.write_paused:
                await self.drain()

    def response_complete(self, cycle: HTTPCycle) -> None:
        session = self.session
        server = session.server
        server.total_requests += 1
        if server.timed:
            server.response_done(cycle, session.port.info, "h2")
        self.body_deadline = 0.0
        session.stream_done(self)

    def cycle_failed(self, cycle: HTTPCycle, status: int) -> None:
        self._answer(status, h2.INTERNAL_ERROR)

    def pause_reading(self) -> None:
        """Flow control is the stream window: the body stops when it is spent.
        Only an h2c upgrade request's body comes as HTTP/1.1: that pauses the socket."""
        self.body_paused = True
        if self.session.held:
            self.session.port.pause_reading()

    def resume_reading(self) -> None:
        self.body_paused = False
        self.session.port.resume_reading()

    def consumed(self, size: int) -> None:
        self.proto.consumed(self.id, size)
        self.session.schedule_flush()


class H2WebSocketSink(_StreamWriter):
    """A WebSocket over an HTTP/2 stream (RFC 8441): the session's sink."""

    is_websocket = True

    __slots__ = ("answered", "ended", "h2", "head", "held", "paused", "session")

    def __init__(self, h2session: StreamOwner, stream_id: int, head: RequestHead) -> None:
        super().__init__(h2session, stream_id)
        self.h2 = h2session
        self.head = head
        self.session: WebSocketSession = None  # type: ignore[assignment]
        self.ended = False
        self.answered = False  # a response head went out (200, or a denial)
        # back-pressure: while the session's queue is full, bytes received are not
        # given back to the stream's flow-control window, so the peer must stop
        self.paused = False
        self.held = 0

    def start(self) -> None:
        h2 = self.h2
        h2.running += 1
        start_session(h2.server, self.session).add_done_callback(self._app_returned)

    def _app_returned(self, task: asyncio.Task[None]) -> None:
        self.h2.running -= 1

    # -- from the H2 session

    def receive(self, data: bytes, end_stream: bool) -> None:
        if data:
            if self.paused:
                self.held += len(data)
            else:
                self.proto.consumed(self.id, len(data))
            if self.session is not None:
                self.session.feed(data)
        if end_stream:  # the client's side is done (RFC 8441 5.3): so is the session
            if self.session is not None:
                self.session.connection_lost()
            self.close()

    def gone(self) -> None:
        if self.session is not None:
            self.session.connection_lost()
        self.wake()

    # -- WebSocketSink

    def write(self, data: bytes) -> None:
        if data and not self.ended:
            self.proto.send_data(self.id, data, False)
            self.h2.schedule_flush()

    def close(self) -> None:
        if not self.ended:
            self.ended = True
            if self._was_answered():
                self.proto.send_data(self.id, b"", True)
            else:  # ended (by the client) before any answer: no DATA without a head
                self.proto.reset(self.id, h2.CANCEL)
            self.h2.schedule_flush()
            self.h2.stream_done(self)

    def _was_answered(self) -> bool:
        return self.answered

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False
        if self.held:
            self.proto.consumed(self.id, self.held)
            self.held = 0
            self.h2.schedule_flush()

    def send_accept(
        self, handshake: Handshake, subprotocol: str | None, headers: list[tuple[bytes, bytes]]
    ) -> None:
        extra = list(headers)
        if subprotocol is not None:
            extra.append((b"sec-websocket-protocol", subprotocol.encode()))
        if handshake.deflate_params:
            extra.append((b"sec-websocket-extensions", handshake.deflate_params))
        block, _ = response_fields(200, extra, self.h2.server.h2_defaults)
        self.answered = True
        self.proto.send_headers(self.id, block, False)
        self.h2.schedule_flush()

    def send_response(self, status: int, headers: Any, body: bytes, more_body: bool) -> None:
        headers = list(headers)
        if not more_body:
            headers.append((b"content-length", b"%d" % len(body)))
        block, _ = response_fields(status, headers, self.h2.server.h2_defaults)
        self.answered = True
        self.proto.send_headers(self.id, block, False)
        if body or not more_body:
            self.proto.send_data(self.id, body, not more_body)
        if not more_body:
            self.ended = True
        self.h2.schedule_flush()

    def send_response_body(self, body: bytes, more_body: bool) -> None:
        self.proto.send_data(self.id, body, not more_body)
        if not more_body:
            self.ended = True
        self.h2.schedule_flush()

    def session_done(self, session: WebSocketSession) -> None:
        h2 = self.h2
        if h2.server.timed:
            h2.server.response_done(session, h2.port.info, "websocket")
        if self.ended:
            h2.stream_done(self)
