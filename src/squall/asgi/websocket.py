"""The ASGI WebSocket session (spec 2.4), shared by every way a WebSocket starts.

The owner (the HTTP/1.1 connection after an Upgrade request, or an HTTP/2
stream after an extended CONNECT, RFC 8441) implements :class:`WebSocketSink`
and feeds the session the bytes that follow the handshake. The session turns
the app's messages into the handshake answer (101, or 200 on HTTP/2), a denial
response (``websocket.http.response``), or frames.

States: *connecting* (the app has not answered the handshake), *open*,
*closing* (a close frame was sent; the peer's is awaited, at most
``CLOSE_TIMEOUT`` seconds), *response* (a denial response is being sent),
*closed*. The app receives ``websocket.disconnect`` exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

from squall.errors import ClientDisconnected, ResponseError
from squall.protocols.http1.base import valid_header_name, valid_header_value
from squall.protocols.websocket import handshake as frames
from squall.protocols.websocket.handshake import WebSocketProtocol

if TYPE_CHECKING:
    from squall.asgi.types import ASGIApp, Message, Scope
    from squall.protocols.websocket.handshake import Handshake

logger = logging.getLogger("squall.error")

CLOSE_TIMEOUT = 10.0
EARLY_LIMIT = 65536  # bytes held before the app accepts; reading pauses beyond
CONNECTING, OPEN, CLOSING, RESPONSE, CLOSED = range(5)


class WebSocketSink(Protocol):
    @property
    def write_paused(self) -> bool: ...

    def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    async def drain(self) -> None: ...
    def send_accept(
        self, handshake: Handshake, subprotocol: str | None, headers: list[tuple[bytes, bytes]]
    ) -> None: ...
    def send_response(self, status: int, headers: Any, body: bytes, more_body: bool) -> None: ...
    def send_response_body(self, body: bytes, more_body: bool) -> None: ...
    def session_done(self, session: WebSocketSession) -> None: ...


class WebSocketSession:
    def __init__(
        self,
        scope: Scope,
        sink: WebSocketSink,
        handshake: Handshake,
        *,
        max_size: int | None,
        max_queue: int,
        ping_interval: float | None,
        ping_timeout: float | None,
    ) -> None:
        self.scope = scope
        self.sink = sink
        self._write = sink.write
        self.handshake = handshake
        self.max_size = max_size
        self.max_queue = max(1, max_queue)
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.state = CONNECTING
        self.status = 0  # the HTTP status of the handshake answer, for the access log
        self.start_time = 0.0
        self.proto: WebSocketProtocol | None = None
        self._early = bytearray()  # bytes that came before the app accepted
        self._queue: deque[Message] = deque([{"type": "websocket.connect"}])
        self._waiter: asyncio.Future[None] | None = None
        self._disconnect_queued = False
        self._reading_paused = False
        self._timer: asyncio.TimerHandle | None = None
        self._ping_payload: bytes | None = None
        self._ping_sent_at = 0.0

    # -- fed by the owner

    def feed(self, data: bytes) -> None:
        proto = self.proto
        if proto is None:
            if self.state == CONNECTING:
                # a client may not send frames before the 101; hold a little, then stop reading
                self._early += data
                if len(self._early) > EARLY_LIMIT and not self._reading_paused:
                    self._reading_paused = True
                    self.sink.pause_reading()
            return
        events = proto.feed(data)
        queue = self._queue
        for kind, value in events:
            if kind == frames.TEXT:
                queue.append({"type": "websocket.receive", "text": value})
            elif kind == frames.BYTES:
                queue.append({"type": "websocket.receive", "bytes": value})
            elif kind == frames.PONG:
                if value == self._ping_payload:
                    self._ping_payload = None
            elif kind == frames.CLOSED:
                code, reason = value
                self._finish(code, reason)
        out = proto.data_to_send()
        if out:
            self._write(out)
        if proto.wants_close:
            if not self._disconnect_queued:
                self._finish(*proto.close_info())
            self.sink.close()
        if events:
            self._wake()
            if len(queue) > self.max_queue and not self._reading_paused:
                self._reading_paused = True
                self.sink.pause_reading()

    def connection_lost(self) -> None:
        if self.state == CONNECTING or self.proto is None:
            self._finish(1006, "")
        else:
            self._finish(*self.proto.close_info())
        self.state = CLOSED
        self._cancel_timer()

    def shutdown(self) -> None:
        """Server shutdown: close 1012 (Service Restart), then wait for the peer's close."""
        if self.state == OPEN:
            self._close(1012, "Server is shutting down")
        elif self.state == CONNECTING:
            self.status = 503
            self.sink.send_response(503, [], b"Service Unavailable", False)
            self.state = CLOSED
            self.sink.close()

    # -- the app's side

    async def receive(self) -> Message:
        queue = self._queue
        while not queue:
            if self._disconnect_queued:
                raise ClientDisconnected("WebSocket is closed")
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            await waiter
        message = queue.popleft()
        if self._reading_paused and len(queue) <= self.max_queue // 2:
            self._reading_paused = False
            self.sink.resume_reading()
        return message

    async def send(self, message: Message) -> None:
        kind = message["type"]
        state = self.state
        if state == OPEN:
            assert self.proto is not None
            if kind == "websocket.send":
                text = message.get("text")
                if text is not None:
                    self._write(self.proto.send_text(text))
                else:
                    data = message.get("bytes")
                    if data is None:
                        raise RuntimeError("websocket.send needs 'text' or 'bytes'.")
                    self._write(self.proto.send_bytes(data))
                if self.sink.write_paused:
                    await self.sink.drain()
                return
            if kind == "websocket.close":
                self._close(message.get("code") or 1000, message.get("reason") or "")
                return
        elif state == CONNECTING:
            if kind == "websocket.accept":
                self._accept(message)
                return
            if kind == "websocket.close":
                self._deny(403, [], b"", False)
                return
            if kind == "websocket.http.response.start":
                self.status = message["status"]
                self._deny(message["status"], message.get("headers", []), None, True)
                return
        elif state == RESPONSE:
            if kind == "websocket.http.response.body":
                more = message.get("more_body", False)
                self.sink.send_response_body(message.get("body", b""), more)
                if not more:
                    self.state = CLOSED
                    self.sink.close()
                return
        elif state in (CLOSING, CLOSED) and kind in ("websocket.send", "websocket.close"):
            raise ClientDisconnected("WebSocket is closed")
        raise RuntimeError(f"Unexpected ASGI message {kind!r} in WebSocket state {state}.")

    async def run(self, app: ASGIApp) -> None:
        try:
            call: Any = app  # not None-typed: compiled code would drop a returned value
            result = await call(self.scope, self.receive, self.send)
        except BaseException as exc:
            if not isinstance(exc, (ClientDisconnected, asyncio.CancelledError)):
                logger.error("Exception in ASGI application\n", exc_info=exc)
            self._app_ended(error=True)
            if not isinstance(exc, Exception | asyncio.CancelledError):
                raise
            return
        if result is not None:
            logger.error("ASGI callable should return None, but returned '%s'.", result)
        self._app_ended(error=False)

    # -- internals

    def _accept(self, message: Message) -> None:
        subprotocol = message.get("subprotocol")
        headers = [(_bytes(n), _bytes(v)) for n, v in message.get("headers") or ()]
        for name, value in headers:
            if not valid_header_name(name) or not valid_header_value(value):
                raise ResponseError(f"Invalid header in websocket.accept: {name!r}")
        if subprotocol is not None and subprotocol not in self.handshake.subprotocols:
            raise RuntimeError(f"Subprotocol {subprotocol!r} was not offered by the client.")
        self.sink.send_accept(self.handshake, subprotocol, headers)
        self.status = 101
        self.state = OPEN
        self.proto = WebSocketProtocol(self.handshake.deflate, self.max_size)
        if self.ping_interval:
            self._schedule(self.ping_interval, self._keepalive)
        if self._early:
            early, self._early = bytes(self._early), bytearray()
            self.feed(early)
        if self._reading_paused and len(self._queue) <= self.max_queue // 2:
            self._reading_paused = False
            self.sink.resume_reading()

    def _deny(self, status: int, headers: Any, body: bytes | None, more: bool) -> None:
        self.status = status
        if body is None:  # a denial response whose body follows
            self.state = RESPONSE
            self.sink.send_response(status, headers, b"", True)
            return
        self.state = CLOSED
        self.sink.send_response(status, headers, body, more)
        self.sink.close()
        self._finish(1006, "")

    def _close(self, code: int, reason: str) -> None:
        assert self.proto is not None
        self.sink.write(self.proto.send_close(code, reason))
        self.state = CLOSING
        self._schedule(CLOSE_TIMEOUT, self.sink.close)

    def _app_ended(self, error: bool) -> None:
        state = self.state
        if state == CONNECTING:
            if not error:
                logger.error("ASGI callable returned without completing handshake.")
            self._deny(
                500,
                [(b"content-type", b"text/plain; charset=utf-8")],
                b"Internal Server Error",
                False,
            )
        elif state == OPEN:
            self._close(1011 if error else 1000, "")
        elif state == RESPONSE:
            self.state = CLOSED
            self.sink.close()
        self.sink.session_done(self)

    def _finish(self, code: int, reason: str) -> None:
        """Queue the one websocket.disconnect for the app."""
        if not self._disconnect_queued:
            self._disconnect_queued = True
            self._queue.append({"type": "websocket.disconnect", "code": code, "reason": reason})
            self._wake()
        if self.state in (OPEN, CLOSING):
            self.state = CLOSED

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- timers: keepalive pings and the closing-handshake deadline

    def _schedule(self, delay: float, callback: Any) -> None:
        self._cancel_timer()
        self._timer = asyncio.get_running_loop().call_later(delay, callback)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _keepalive(self) -> None:
        self._timer = None
        if self.state != OPEN or self.proto is None:
            return
        loop = asyncio.get_running_loop()
        if self._ping_payload is not None:
            if self.ping_timeout and loop.time() - self._ping_sent_at >= self.ping_timeout:
                self._close(1011, "keepalive ping timeout")
                return
        else:
            self._ping_payload = os.urandom(4)
            self._ping_sent_at = loop.time()
            self.sink.write(self.proto.send_ping(self._ping_payload))
        interval = self.ping_interval or 20.0
        timeout = self.ping_timeout  # 0 turns the timeout off, as None does
        wait = min(interval, timeout) if timeout else interval
        self._schedule(wait, self._keepalive)


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("latin-1")
