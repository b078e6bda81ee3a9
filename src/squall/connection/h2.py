"""The HTTP/2 handler: streams run through the shared ASGI cycle.

A connection that negotiated HTTP/2 (ALPN ``h2``, the cleartext preface, or
an ``Upgrade: h2c`` request) is served by an :class:`H2Handler`, the owner of
the sans-I/O :class:`~squall.protocols.http2.H2Protocol`. Each new stream goes
through the one admission path (:mod:`squall.connection.admit`) and becomes
an :class:`~squall.asgi.http.HTTPCycle` (or, for an extended CONNECT, a
WebSocket session); what the protocol queues is written once per loop turn,
so the answers of many streams share one write.

Streams are started after the whole read is parsed, so a stream reset in the
same read (Rapid Reset) never starts the app. Apps still running after their
stream was reset count against the stream limit until they return.

Deadlines: the connection's keep-alive deadline runs while no stream is
open (then GOAWAY and close). Each stream has the request-body and
write-stall deadlines of an HTTP/1.1 connection (:mod:`squall.connection.h2deadlines`):
a stalled body gets 408 (or RST_STREAM once the response began), a stream the
peer gives no window for ``--timeout-write`` is reset; the connection lives on.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from squall.asgi.http import HTTPCycle
from squall.connection.admit import admit_http, admit_websocket, websocket_session
from squall.connection.h2deadlines import StreamDeadlines
from squall.connection.h2streams import H2Stream, H2WebSocketSink
from squall.connection.port import Deadline, Handler
from squall.protocols import http2 as h2
from squall.protocols.http2.fields import response_fields
from squall.protocols.http2.hpack import STATUS_FIELDS
from squall.protocols.websocket.handshake import HandshakeError

if TYPE_CHECKING:
    from collections.abc import Callable

    from squall.connection.port import ConnectionPort, Switch
    from squall.protocols.http1.head import RequestHead

logger = logging.getLogger("squall.error")


class H2Handler(Handler):
    __slots__ = (
        "_flush_scheduled",
        "_new",
        "deadlines",
        "held",
        "interim",
        "loop",
        "port",
        "proto",
        "requests",
        "running",
        "server",
        "streams",
    )

    def __init__(
        self, port: ConnectionPort, interim: Callable[[ConnectionPort], None] | None = None
    ) -> None:
        self.port = port
        self.server = port.server
        self.loop = port.loop
        self.proto: h2.H2Protocol = h2.H2Protocol(self, self.server.h2_limits)
        self.streams: dict[int, H2Stream | H2WebSocketSink] = {}
        self.running = 0  # apps still running, reset streams included
        self.requests = 0
        self._new: list[H2Stream | H2WebSocketSink] = []
        self._flush_scheduled = False
        # h2c: until the shell holds this handler, the connection still speaks
        # HTTP/1.1 (the upgrade request's body): nothing is written, and a
        # 100 Continue goes out through ``interim``
        self.held = interim is not None
        self.interim = interim
        self.deadlines = StreamDeadlines(self)

    # -- Handler

    def attached(self) -> None:
        self.held = False
        self.interim = None
        self.schedule_flush()  # the server preface (and what was held)
        if not self.streams:
            self.port.set_deadline(Deadline.KEEP_ALIVE, self.server.config.timeout_keep_alive)

    def feed(self, data: bytes) -> Switch | None:
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
        return None

    def eof_received(self) -> None:
        pass  # connection_lost follows: every stream learns of it there

    def connection_lost(self) -> None:
        streams = list(self.streams.values())
        self.streams.clear()
        for stream in streams:
            stream.gone()

    def deadline_expired(self, kind: Deadline) -> None:
        if kind == Deadline.STREAMS:
            self.deadlines.expired()
        elif not self.streams and not self.proto.blocked:  # keep-alive: idle for too long
            self.proto.goaway()
            self._flush()
            self.port.close()

    def shutdown(self) -> None:
        """Graceful: GOAWAY with the last stream id; close once those streams finish."""
        self.proto.goaway()
        for stream in list(self.streams.values()):
            if isinstance(stream, H2WebSocketSink):
                stream.session.shutdown()
        self._flush()
        self.maybe_close()

    def gauge(self) -> tuple[str, int]:
        return "h2", sum(1 for s in self.streams.values() if s.is_websocket)

    def upgrade(self, head: RequestHead, settings: bytes) -> HTTPCycle:
        """h2c: the HTTP/1.1 request that asked for the upgrade is stream 1."""
        self.proto.initiate_upgrade(settings)
        head.http_version = "2"
        stream = self._http_stream(1, head, end_stream=False)
        assert stream is not None
        self._new.remove(stream)
        stream.start()  # now: its app reads the body as it comes
        return stream.cycle

    def fail_settings(self) -> None:
        """h2c with HTTP2-Settings that do not parse: a connection error after the 101."""
        self.proto.fail(h2.PROTOCOL_ERROR, "Invalid HTTP2-Settings")

    def maybe_close(self) -> None:
        """After GOAWAY: close once every stream is done, its data sent (not just queued
        behind the peer's flow-control window)."""
        proto = self.proto
        if proto.closed or (proto.goaway_sent and not self.streams and not proto.streams):
            self._flush()
            self.port.close()

    # -- output

    def schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self.held:  # h2c: nothing before the 101, which waits for the request body
            return
        proto = self.proto
        port = self.port
        data = proto.data_to_send()
        if data and not port.closing:
            port.write(data)
            if not port.write_buffer_size():
                proto.control_queued = 0
            if proto.blocked:
                self.deadlines.writes_blocked()
        if proto.closed:
            port.close()

    def send_continue(self, stream_id: int) -> None:
        interim = self.interim
        if interim is not None:  # h2c: the body still comes as HTTP/1.1, so does the 100
            interim(self.port)
            return
        self.proto.send_informational(stream_id, STATUS_FIELDS[100])
        self.schedule_flush()

    # -- H2Events

    def on_request(self, stream_id: int, head: RequestHead, end_stream: bool) -> None:
        if head.method == "CONNECT" and head.upgrade is not None:
            if head.upgrade.lower() == b"websocket" and self.server.websockets:
                self._websocket_stream(stream_id, head, end_stream)
            else:
                self.proto.reset(stream_id, h2.PROTOCOL_ERROR)
            return
        self._http_stream(stream_id, head, end_stream)

    def _room(self, stream_id: int) -> bool:
        if self.running >= self.proto.limits.max_concurrent_streams:
            # apps of reset streams are still running: no new work until they return
            self.proto.reset(stream_id, h2.REFUSED_STREAM)
            return False
        return True

    def _http_stream(self, stream_id: int, head: RequestHead, end_stream: bool) -> H2Stream | None:
        if not self._room(stream_id):
            return None
        server = self.server
        scope, app = admit_http(server, self.port.info, head)
        self.requests += 1
        per_connection = server.max_requests_per_connection
        if per_connection is not None and self.requests >= per_connection:
            self.proto.goaway()  # this stream is served; later ones go elsewhere
        stream = H2Stream(self, stream_id, head, app)
        cycle = stream.cycle = HTTPCycle(scope, stream, head.expect_continue)
        if end_stream:
            cycle.body_complete = True
        else:
            self.deadlines.body_started(stream)
        self.streams[stream_id] = stream
        self._new.append(stream)
        return stream

    def _websocket_stream(self, stream_id: int, head: RequestHead, end_stream: bool) -> None:
        if not self._room(stream_id):
            return
        server = self.server
        sink = H2WebSocketSink(self, stream_id, head)
        try:
            scope, handshake = admit_websocket(server, self.port.info, head, http2=True)
        except HandshakeError as exc:
            sink.send_response(exc.status, exc.headers, exc.reason.encode(), False)
            return
        sink.session = websocket_session(server, scope, sink, handshake)
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
        self.proto.peer_left()  # no new streams either way
        self.maybe_close()

    # -- streams finishing

    def stream_done(self, stream: H2Stream | H2WebSocketSink) -> None:
        if self.streams.get(stream.id) is stream:
            del self.streams[stream.id]
        if not self.streams:
            if self.proto.blocked:  # responses still wait for the peer's window
                self.deadlines.writes_blocked()
            else:
                self.went_idle()
        self.maybe_close()

    def body_received(self, stream: H2Stream) -> None:
        self.deadlines.body_received(stream)

    def went_idle(self) -> None:
        """No stream is open: the keep-alive deadline runs."""
        self.deadlines.idle()
        self.port.set_deadline(Deadline.KEEP_ALIVE, self.server.config.timeout_keep_alive)
