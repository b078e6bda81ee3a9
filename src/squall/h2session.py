"""Serving an HTTP/2 connection: streams run through the shared ASGI cycle.

A :class:`Connection` that negotiated HTTP/2 (ALPN ``h2``, the cleartext
preface, or an ``Upgrade: h2c`` request) hands its bytes to an
:class:`H2Session`. The session is the owner of the sans-I/O
:class:`~squall.protocols.http2.H2Protocol`: it turns new streams into
:class:`~squall.asgi.http.HTTPCycle` objects (or, for an extended CONNECT,
WebSocket sessions), and writes what the protocol queues, once per loop turn,
so that the answers of many streams share one write.

Streams are started after the whole read is parsed, so a stream reset in the
same read (Rapid Reset) never starts the app. Apps still running after their
stream was reset count against the stream limit until they return.
"""

from __future__ import annotations

import asyncio
import logging
import os
from time import perf_counter
from typing import TYPE_CHECKING, Any

from squall.asgi.http import DONE, HELD, IDLE, HTTPCycle
from squall.asgi.scope import http_scope, websocket_scope
from squall.asgi.websocket import WebSocketSession
from squall.middleware.proxy_headers import apply_proxy_headers
from squall.protocols import http2 as h2
from squall.protocols.h2fields import response_fields
from squall.protocols.hpack import STATUS_FIELDS, encode_field
from squall.protocols.http1 import ParseError, ResponseError
from squall.protocols.websocket import HandshakeError, check_handshake
from squall.sendfile import FileShorterThanCount

if TYPE_CHECKING:
    from squall.protocols.http1 import RequestHead
    from squall.protocols.websocket import Handshake
    from squall.state import ServerState
    from squall.transport import Connection

logger = logging.getLogger("squall.error")

_BODYLESS = frozenset([*range(100, 200), 204, 304])


class H2Session:
    __slots__ = (
        "_flush_scheduled",
        "_new",
        "conn",
        "idle_since",
        "loop",
        "proto",
        "requests",
        "running",
        "server",
        "streams",
    )

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.server: ServerState = conn.server
        self.loop = conn.loop
        self.proto = h2.H2Protocol(self, self.server.h2_limits)
        self.streams: dict[int, H2Stream | H2WebSocketSink] = {}
        self.running = 0  # apps still running, reset streams included
        self.requests = 0
        self._new: list[H2Stream | H2WebSocketSink] = []
        self._flush_scheduled = False
        self.idle_since = True

    # -- fed by the connection

    def feed(self, data: bytes) -> None:
        proto = self.proto
        proto.feed(data)
        new = self._new
        if new:
            self._new = []
            if not proto.closed:  # after a connection error nothing more runs
                for stream in new:
                    if stream.id in self.streams:
                        stream.start()
        self.schedule_flush()
        if proto.goaway_sent and not self.streams:  # window updates may have let the rest go
            self.maybe_close()

    def upgrade(self, head: RequestHead, settings: bytes) -> HTTPCycle:
        """h2c: the HTTP/1.1 request that asked for the upgrade is stream 1."""
        self.proto.initiate_upgrade(settings)
        head.http_version = "2"
        stream = self._http_stream(1, head, end_stream=False)
        assert stream is not None
        self._new.remove(stream)
        stream.start()  # now: its app reads the body as it comes
        return stream.cycle

    def connection_lost(self) -> None:
        streams = list(self.streams.values())
        self.streams.clear()
        for stream in streams:
            stream.gone()

    def shutdown(self) -> None:
        """Graceful: GOAWAY with the last stream id; close once those streams finish."""
        self.proto.goaway()
        for stream in list(self.streams.values()):
            if isinstance(stream, H2WebSocketSink):
                stream.session.shutdown()
        self._flush()
        self.maybe_close()

    def idle_timeout(self) -> None:
        if not self.streams:
            self.proto.goaway()
            self._flush()
            self.conn.close()

    def maybe_close(self) -> None:
        """After GOAWAY: close once every stream is done, its data sent (not just queued
        behind the peer's flow-control window)."""
        proto = self.proto
        if proto.closed or (proto.goaway_sent and not self.streams and not proto.streams):
            self._flush()
            self.conn.close()

    # -- output

    def schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        proto = self.proto
        conn = self.conn
        if conn.upgrading:  # h2c: nothing before the 101, which waits for the request body
            return
        data = proto.data_to_send()
        if data and not conn.closing:
            conn.transport.write(data)
            if not conn.transport.get_write_buffer_size():
                proto.control_queued = 0
        if proto.closed:
            conn.close()

    # -- H2Events

    def on_request(self, stream_id: int, head: RequestHead, end_stream: bool) -> None:
        if head.method == "CONNECT" and head.upgrade is not None:
            if head.upgrade.lower() == b"websocket" and self.server.websockets:
                self._websocket_stream(stream_id, head, end_stream)
            else:
                self.proto.reset(stream_id, h2.PROTOCOL_ERROR)
            return
        self._http_stream(stream_id, head, end_stream)

    def _admit(self, stream_id: int) -> bool:
        if self.running >= self.proto.limits.max_concurrent_streams:
            # apps of reset streams are still running: no new work until they return
            self.proto.reset(stream_id, h2.REFUSED_STREAM)
            return False
        return True

    def _http_stream(self, stream_id: int, head: RequestHead, end_stream: bool) -> H2Stream | None:
        if not self._admit(stream_id):
            return None
        server = self.server
        app = server.app
        self.requests += 1
        per_connection = server.config.max_requests_per_connection
        if per_connection is not None and self.requests >= per_connection:
            self.proto.goaway()  # this stream is served; later ones go elsewhere
        if server.health_path is not None and head.target == server.health_path:
            app = server.health
        elif server.limit_concurrency is not None and server.over_capacity():
            logger.warning("Exceeded concurrency limit.")
            app = server.refusal(503, "Service Unavailable")
        elif server.limit_request_body is not None and head.content_length > (
            server.limit_request_body
        ):
            logger.info("%s - Request body too large: 413", self.conn.info.client_label)
            app = server.refusal(413, "Request Entity Too Large")
        info = self.conn.info
        try:
            scope = http_scope(head, info, server.root_path, server.state)
        except ParseError as exc:
            app = server.refusal(exc.status, exc.reason)
            scope = http_scope(_placeholder(head), info, server.root_path, server.state)
        if info.trusted and head.forwarded:
            apply_proxy_headers(scope, server.trusted_hosts)
        stream = H2Stream(self, stream_id, head, app)
        cycle = stream.cycle = HTTPCycle(scope, stream, head.expect_continue)
        if end_stream:
            cycle.body_complete = True
        self.streams[stream_id] = stream
        self._new.append(stream)
        return stream

    def _websocket_stream(self, stream_id: int, head: RequestHead, end_stream: bool) -> None:
        if not self._admit(stream_id):
            return
        server = self.server
        config = server.config
        sink = H2WebSocketSink(self, stream_id, head)
        try:
            handshake = check_handshake(
                head.method, head.headers, config.ws_per_message_deflate, http2=True
            )
        except HandshakeError as exc:
            sink.send_response(exc.status, exc.headers, exc.reason.encode(), False)
            return
        scope = websocket_scope(head, self.conn.info, server.root_path, server.state, [])
        scope["subprotocols"] = handshake.subprotocols
        scope["http_version"] = "2"
        if self.conn.info.trusted and head.forwarded:
            apply_proxy_headers(scope, server.trusted_hosts)
        sink.session = WebSocketSession(
            scope,
            sink,
            handshake,
            max_size=config.ws_max_size,
            max_queue=config.ws_max_queue,
            ping_interval=config.ws_ping_interval,
            ping_timeout=config.ws_ping_timeout,
        )
        self.streams[stream_id] = sink
        self._new.append(sink)

    def on_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        stream = self.streams.get(stream_id)
        if stream is not None:
            stream.receive(data, end_stream)
        elif data:
            self.proto.consumed(stream_id, len(data))

    def on_stream_reset(self, stream_id: int) -> None:
        stream = self.streams.pop(stream_id, None)
        if stream is not None:
            stream.gone()
        self.maybe_close()

    def on_stream_writable(self, stream_id: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is not None:
            stream.wake()

    def on_refused_header_block(self, stream_id: int, status: int) -> None:
        message = b"Request Header Fields Too Large\n"
        block, _ = response_fields(
            status,
            [(b"content-type", b"text/plain; charset=utf-8")],
            self.server.h2_defaults,
        )
        self.proto.send_headers(stream_id, block, False)
        self.proto.send_data(stream_id, message, True)

    def on_goaway(self) -> None:
        self.proto.goaway_sent = True  # the peer is leaving: no new streams either way
        self.maybe_close()

    # -- streams finishing

    def stream_done(self, stream: H2Stream | H2WebSocketSink) -> None:
        if self.streams.get(stream.id) is stream:
            del self.streams[stream.id]
        if not self.streams:
            self.conn.h2_idle()
        self.maybe_close()


def _placeholder(head: RequestHead) -> RequestHead:
    head.target = b"/"
    return head


class _StreamWriter:
    """What both kinds of stream share: waiting for the peer's window and the transport."""

    __slots__ = ("_waiter", "conn_session", "id", "proto")

    def __init__(self, h2session: H2Session, stream_id: int) -> None:
        self.conn_session = h2session
        self.proto = h2session.proto
        self.id = stream_id
        self._waiter: asyncio.Future[None] | None = None

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    @property
    def write_paused(self) -> bool:
        owner = self.conn_session
        return owner.conn.write_paused or self.proto.buffered(self.id) >= h2.WRITE_HIGH_WATER

    async def drain(self) -> None:
        owner = self.conn_session
        if owner.conn.write_paused:
            await owner.conn.drain()
        while self.id in owner.streams and self.proto.buffered(self.id) >= h2.WRITE_HIGH_WATER:
            waiter = self._waiter = owner.loop.create_future()
            await waiter


class H2Stream(_StreamWriter):
    """One request stream: the :class:`~squall.asgi.http.ResponseSink` of its cycle."""

    is_websocket = False

    __slots__ = ("_received", "_remaining", "app", "cycle", "head", "head_only", "session")

    def __init__(self, session: H2Session, stream_id: int, head: RequestHead, app: Any) -> None:
        super().__init__(session, stream_id)
        self.session = session
        self.head = head
        self.app = app
        self.cycle: HTTPCycle = None  # type: ignore[assignment]
        self.head_only = head.method == "HEAD"
        self._remaining = -1  # declared response content-length still to send
        self._received = 0  # request body bytes, for --limit-request-body

    def start(self) -> None:
        session = self.session
        server = session.server
        cycle = self.cycle
        if server.timed:
            cycle.start_time = perf_counter()
        session.running += 1
        task = session.loop.create_task(cycle.run(self.app, server.tasks))
        cycle.task = task
        server.tasks.add(task)
        task.add_done_callback(self._app_returned)

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
        if end_stream:
            cycle.end_body()

    def _body_too_large(self) -> None:
        """Over --limit-request-body: 413 if nothing was answered, else a reset."""
        cycle = self.cycle
        session = self.session
        logger.info("%s - Request body too large: 413", session.conn.info.client_label)
        if cycle.state == IDLE or cycle.state == HELD:
            cycle.state = DONE
            cycle.status = 413
            message = b"Request Entity Too Large\n"
            block, _ = response_fields(
                413,
                [(b"content-type", b"text/plain; charset=utf-8")],
                session.server.h2_defaults,
            )
            length = encode_field(b"content-length", b"%d" % len(message))
            self.proto.send_headers(self.id, block + length, False)
            self.proto.send_data(self.id, message, True)
        else:
            self.proto.reset(self.id, h2.CANCEL)
        cycle.disconnect()
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
            if body or not more_body:
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
        conn = self.session.conn
        if conn.upgrading:  # h2c: the body still comes as HTTP/1.1, so does the 100
            conn.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            return
        self.proto.send_informational(self.id, STATUS_FIELDS[100])
        self.session.schedule_flush()

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
            server.response_done(cycle, session.conn.info, "h2")
        session.stream_done(self)

    def cycle_failed(self, cycle: HTTPCycle, status: int) -> None:
        session = self.session
        if cycle.state == IDLE or cycle.state == HELD:
            cycle.state = DONE
            cycle.status = status
            message = b"Internal Server Error\n" if status == 500 else b"Service Unavailable\n"
            block, _ = response_fields(
                status,
                [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", b"%d" % len(message)),
                ],
                session.server.h2_defaults,
            )
            self.proto.send_headers(self.id, block, False)
            self.proto.send_data(self.id, message, True)
            if session.server.timed:
                session.server.response_done(cycle, session.conn.info, "h2")
        else:
            self.proto.reset(self.id, h2.INTERNAL_ERROR)
        session.schedule_flush()
        session.stream_done(self)

    def pause_reading(self) -> None:
        """Flow control is the stream window: the body stops when it is spent.
        Only an h2c upgrade request's body comes as HTTP/1.1: that pauses the socket."""
        if self.session.conn.upgrading:
            self.session.conn.pause_reading()

    def resume_reading(self) -> None:
        self.session.conn.resume_reading()

    def consumed(self, size: int) -> None:
        self.proto.consumed(self.id, size)
        self.session.schedule_flush()


class H2WebSocketSink(_StreamWriter):
    """A WebSocket over an HTTP/2 stream (RFC 8441): the session's sink."""

    is_websocket = True

    __slots__ = ("ended", "h2", "head", "session")

    def __init__(self, h2session: H2Session, stream_id: int, head: RequestHead) -> None:
        super().__init__(h2session, stream_id)
        self.h2 = h2session
        self.head = head
        self.session: WebSocketSession = None  # type: ignore[assignment]
        self.ended = False

    def start(self) -> None:
        h2 = self.h2
        server = h2.server
        if server.timed:
            self.session.start_time = perf_counter()
        h2.running += 1
        task = h2.loop.create_task(self.session.run(server.app))
        server.tasks.add(task)
        task.add_done_callback(self._app_returned)

    def _app_returned(self, task: asyncio.Task[None]) -> None:
        self.h2.running -= 1
        self.h2.server.tasks.discard(task)

    # -- from the H2 session

    def receive(self, data: bytes, end_stream: bool) -> None:
        if data:
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
            self.proto.send_data(self.id, b"", True)
            self.h2.schedule_flush()
            self.h2.stream_done(self)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def send_accept(
        self, handshake: Handshake, subprotocol: str | None, headers: list[tuple[bytes, bytes]]
    ) -> None:
        extra = list(headers)
        if subprotocol is not None:
            extra.append((b"sec-websocket-protocol", subprotocol.encode()))
        if handshake.deflate_params:
            extra.append((b"sec-websocket-extensions", handshake.deflate_params))
        block, _ = response_fields(200, extra, self.h2.server.h2_defaults)
        self.proto.send_headers(self.id, block, False)
        self.h2.schedule_flush()

    def send_response(self, status: int, headers: Any, body: bytes, more_body: bool) -> None:
        headers = list(headers)
        if not more_body:
            headers.append((b"content-length", b"%d" % len(body)))
        block, _ = response_fields(status, headers, self.h2.server.h2_defaults)
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
            h2.server.response_done(session, h2.conn.info, "websocket")
        if self.ended:
            h2.stream_done(self)
