"""HTTP/1.1 parsing with h11: the pure-Python backend.

h11 is used as a parser only. Each request gets a fresh ``h11.Connection``;
bytes after a request's end are carried into the next one, so pipelining and
the calls made on the owner are the same as with the httptools backend.
Responses are serialized by :class:`~squall.protocols.http1.HTTP1` for both.
"""

from __future__ import annotations

import h11

from squall.protocols.http1 import HTTP1, H1Events, Limits, ParseError


class H11HTTP1(HTTP1):
    __slots__ = ("_closed", "_conn", "_line_done", "_line_len", "_max_event")

    backend = "h11"

    def __init__(
        self, events: H1Events, limits: Limits | None = None, max_incomplete_event: int = 0
    ) -> None:
        super().__init__(events, limits)
        self._max_event = max_incomplete_event or (
            self.limits.header_size + self.limits.request_line
        )
        self._closed = False
        self._new_connection()

    def _new_connection(self) -> None:
        self._conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self._max_event)
        self._line_len = 0
        self._line_done = False

    def feed(self, data: bytes) -> None:
        if self._closed:
            return
        if not self._line_done:
            self._count_request_line(data)
        self._conn.receive_data(data)
        self._drain()

    def feed_eof(self) -> None:
        if not self._closed:
            self._conn.receive_data(b"")

    def _count_request_line(self, data: bytes) -> None:
        # h11 reports an over-long request line as an over-long head (431);
        # RFC 9112 wants 414 for it, so count up to the first line break here.
        end = data.find(b"\n")
        self._line_len += len(data) if end < 0 else end
        self._line_done = end >= 0
        if self._line_len > self.limits.request_line + 2:
            self._closed = True
            raise ParseError(414, "Request-URI too long")

    def _drain(self) -> None:
        events = self.events
        while True:
            try:
                event = self._conn.next_event()
            except h11.RemoteProtocolError as exc:
                self._closed = True
                raise ParseError(exc.error_status_hint, str(exc)[:200]) from None
            if event is h11.NEED_DATA:
                return
            if isinstance(event, h11.Data):
                events.on_body(bytes(event.data))
            elif isinstance(event, h11.Request):
                self._on_request(event)
            elif isinstance(event, h11.EndOfMessage):
                self._check_trailers(event)
                events.on_request_end()
                self._next_request()
                return
            else:  # ConnectionClosed or PAUSED
                return

    def _on_request(self, event: h11.Request) -> None:
        builder = self.builder
        builder.begin()
        for name, value in event.headers:
            builder.add_header(bytes(name), bytes(value))
        version = event.http_version.decode("ascii")
        head = builder.finish(event.method.decode("ascii"), bytes(event.target), version)
        self.events.on_request(head)

    def _check_trailers(self, event: h11.EndOfMessage) -> None:
        for name, _ in event.headers:
            if name in (b"content-length", b"transfer-encoding", b"host"):
                self._closed = True
                raise ParseError(400, "Framing header in trailers")

    def _next_request(self) -> None:
        rest, _closed = self._conn.trailing_data
        head = self.builder.head
        upgrading = head.upgrade is not None or head.method == "CONNECT"
        if upgrading and (head.content_length or head.chunked or head.method == "CONNECT"):
            head.keep_alive = False
        if not head.keep_alive:
            self._closed = True
            return
        self._new_connection()
        if rest:
            self._count_request_line(bytes(rest))
            self._conn.receive_data(bytes(rest))
            self._drain()
