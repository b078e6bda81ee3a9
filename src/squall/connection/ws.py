"""The WebSocket handler: an HTTP/1.1 connection after ``Upgrade: websocket``.

The HTTP/1 handler admits the upgrade request (:func:`start_websocket`) and
switches the connection to a :class:`WSHandler`, which feeds every read to
the :class:`~squall.asgi.websocket.WebSocketSession` and is that session's
sink: it writes the handshake answer (101), a denial response, and frames.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from squall.connection.admit import (
    admit_websocket,
    start_session,
    websocket_session,
)
from squall.connection.port import Handler
from squall.protocols.websocket.handshake import HandshakeError, accept_response

if TYPE_CHECKING:
    from squall.asgi.websocket import WebSocketSession
    from squall.connection.port import ConnectionPort, Deadline, Switch
    from squall.protocols.http1.base import HTTP1
    from squall.protocols.http1.head import RequestHead
    from squall.protocols.websocket.handshake import Handshake


def start_websocket(port: ConnectionPort, proto: HTTP1, head: RequestHead) -> WSHandler | None:
    """Admit an upgrade request; the handler to switch to, or None if refused
    (the refusal has been written and the connection is closing)."""
    server = port.server
    head.keep_alive = False  # for any HTTP answer: a refusal or a denial
    try:
        scope, handshake = admit_websocket(server, port.info, head)
    except HandshakeError as exc:
        body = exc.reason.encode()
        headers = [(b"content-type", b"text/plain; charset=utf-8"), *exc.headers]
        defaults = server.default_headers
        port.write(proto.response_head(exc.status, headers, defaults, head, body, False))
        port.close()
        return None
    head.switching = True
    handler = WSHandler(port, proto, head)
    handler.session = websocket_session(server, scope, handler, handshake)
    start_session(server, handler.session)
    return handler


class WSHandler(Handler):
    """The connection's handler after the upgrade, and the session's sink."""

    __slots__ = ("head", "port", "proto", "session", "write")

    def __init__(self, port: ConnectionPort, proto: HTTP1, head: RequestHead) -> None:
        self.port = port
        self.proto = proto  # encodes a denial response as HTTP/1.1
        self.head = head
        self.session: WebSocketSession = None  # type: ignore[assignment]
        self.write = port.write  # the hot path: no extra call per frame

    # -- Handler

    def attached(self) -> None:
        self.port.clear_deadline()  # the session keeps its own (pings, close)

    def feed(self, data: bytes) -> Switch | None:
        self.session.feed(data)
        return None

    def eof_received(self) -> None:
        pass  # connection_lost follows and ends the session

    def connection_lost(self) -> None:
        self.session.connection_lost()

    def deadline_expired(self, kind: Deadline) -> None:
        pass

    def shutdown(self) -> None:
        self.session.shutdown()

    def gauge(self) -> tuple[str, int]:
        return "websocket", 1

    # -- WebSocketSink

    @property
    def write_paused(self) -> bool:
        return self.port.write_paused

    def close(self) -> None:
        self.port.close()

    def pause_reading(self) -> None:
        self.port.pause_reading()

    def resume_reading(self) -> None:
        self.port.resume_reading()

    async def drain(self) -> None:
        await self.port.drain()

    def send_accept(
        self, handshake: Handshake, subprotocol: str | None, headers: list[tuple[bytes, bytes]]
    ) -> None:
        defaults = self.port.server.default_headers[0]
        self.write(accept_response(handshake, subprotocol, headers, defaults))

    def send_response(self, status: int, headers: Any, body: bytes, more_body: bool) -> None:
        defaults = self.port.server.default_headers
        self.write(self.proto.response_head(status, headers, defaults, self.head, body, more_body))

    def send_response_body(self, body: bytes, more_body: bool) -> None:
        self.write(self.proto.response_body(body, more_body))

    def session_done(self, session: WebSocketSession) -> None:
        server = self.port.server
        if server.timed:
            server.response_done(session, self.port.info, "websocket")
