"""Switching an HTTP/1.1 connection to WebSocket.

:func:`start_websocket` is called by the connection for a request with
``Upgrade: websocket``. It validates the handshake (refusing a bad one with
the status RFC 6455 asks for), builds the scope, and starts the app with a
:class:`~squall.asgi.websocket.WebSocketSession` whose sink,
:class:`H1WebSocketSink`, writes through the connection.
"""

from __future__ import annotations

from time import perf_counter
from typing import TYPE_CHECKING, Any

from squall.asgi.scope import websocket_scope
from squall.asgi.websocket import WebSocketSession
from squall.middleware.proxy_headers import apply_proxy_headers
from squall.protocols.websocket.handshake import HandshakeError, accept_response, check_handshake

if TYPE_CHECKING:
    from squall.connection.transport import Connection
    from squall.protocols.http1.head import RequestHead
    from squall.protocols.websocket.handshake import Handshake


def start_websocket(conn: Connection, head: RequestHead) -> WebSocketSession | None:
    """Start a WebSocket session for ``head``; None if the handshake was refused."""
    server = conn.server
    config = server.config
    head.keep_alive = False  # for any HTTP answer: a refusal or a denial
    try:
        handshake = check_handshake(head.method, head.headers, config.ws_per_message_deflate)
    except HandshakeError as exc:
        body = exc.reason.encode()
        headers = [(b"content-type", b"text/plain; charset=utf-8"), *exc.headers]
        conn.write(
            conn.proto.response_head(exc.status, headers, server.default_headers, head, body, False)
        )
        conn.close()
        return None
    scope = websocket_scope(head, conn.info, server.root_path, server.state, handshake.subprotocols)
    if conn.info.trusted and head.forwarded:
        apply_proxy_headers(scope, server.trusted_hosts)
    head.switching = True
    session = WebSocketSession(
        scope,
        H1WebSocketSink(conn, head),
        handshake,
        max_size=config.ws_max_size,
        max_queue=config.ws_max_queue,
        ping_interval=config.ws_ping_interval,
        ping_timeout=config.ws_ping_timeout,
    )
    if server.timed:
        session.start_time = perf_counter()
    task = conn.loop.create_task(session.run(server.app))
    server.tasks.add(task)
    task.add_done_callback(server.tasks.discard)
    return session


class H1WebSocketSink:
    """The WebSocket session's view of an HTTP/1.1 connection."""

    __slots__ = ("conn", "head", "write")

    def __init__(self, conn: Connection, head: RequestHead) -> None:
        self.conn = conn
        self.head = head
        self.write = conn.write  # the hot path: no extra call per frame

    @property
    def write_paused(self) -> bool:
        return self.conn.write_paused

    def close(self) -> None:
        self.conn.close()

    def pause_reading(self) -> None:
        self.conn.pause_reading()

    def resume_reading(self) -> None:
        self.conn.resume_reading()

    async def drain(self) -> None:
        await self.conn.drain()

    def send_accept(
        self, handshake: Handshake, subprotocol: str | None, headers: list[tuple[bytes, bytes]]
    ) -> None:
        defaults = self.conn.server.default_headers[0]
        self.write(accept_response(handshake, subprotocol, headers, defaults))

    def send_response(self, status: int, headers: Any, body: bytes, more_body: bool) -> None:
        conn = self.conn
        self.write(
            conn.proto.response_head(
                status, headers, conn.server.default_headers, self.head, body, more_body
            )
        )

    def send_response_body(self, body: bytes, more_body: bool) -> None:
        self.write(self.conn.proto.response_body(body, more_body))

    def session_done(self, session: WebSocketSession) -> None:
        server = self.conn.server
        if server.timed:
            server.response_done(session, self.conn.info, "websocket")
