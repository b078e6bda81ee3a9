"""Serving an HTTP/2 connection: streams run through the shared ASGI cycle.

A :class:`Connection` that negotiated HTTP/2 (ALPN ``h2``, the cleartext
preface, or an ``Upgrade: h2c`` request) hands its bytes to an
:class:`H2Session`. The session is the owner of the sans-I/O
:class:`~squall.protocols.http2.connection.H2Protocol`: it turns new streams into
:class:`~squall.asgi.http.HTTPCycle` objects (or, for an extended CONNECT,
WebSocket sessions), and writes what the protocol queues, once per loop turn,
so that the answers of many streams share one write.

Streams are started after the whole read is parsed, so a stream reset in the
same read (Rapid Reset) never starts the app. Apps still running after their
stream was reset count against the stream limit until they return.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from squall.asgi.http import HTTPCycle
from squall.asgi.scope import http_scope, websocket_scope
from squall.asgi.websocket import WebSocketSession
from squall.connection.h2streams import H2Stream, H2WebSocketSink
from squall.middleware.proxy_headers import apply_proxy_headers
from squall.protocols import http2 as h2
from squall.protocols.http1.head import ParseError
from squall.protocols.http2.fields import response_fields
from squall.protocols.websocket.handshake import HandshakeError, check_handshake

if TYPE_CHECKING:
    from squall.connection.state import ServerState
    from squall.connection.transport import Connection
    from squall.protocols.http1.head import RequestHead

logger = logging.getLogger("squall.error")


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
        self.proto: h2.H2Protocol = h2.H2Protocol(self, self.server.h2_limits)
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
