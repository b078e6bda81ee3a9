"""The connection shell: the one asyncio.Protocol, and the only code that
touches the transport.

A :class:`Connection` owns one socket: socket I/O, the write buffer, read
pause, drain, write flow control, its one timer and its part in a graceful
shutdown. It holds one protocol handler (see :mod:`squall.connection.port`)
and swaps it when a read returns a :class:`~squall.connection.port.Switch`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from squall.connection.h1 import H1Handler
from squall.connection.h2 import H2Handler
from squall.connection.port import CLOSED, CLOSING, NEW, OPEN, ConnectionPort, Deadline
from squall.connection.sendfile import send_file

if TYPE_CHECKING:
    from collections.abc import Callable

    from squall.asgi.scope import ConnInfo
    from squall.connection.port import Handler, Switch
    from squall.connection.state import ServerState
    from squall.protocols.proxy import ProxyInfo

logger = logging.getLogger("squall.error")

FLUSH_AT = 65536  # bytes held by buffer() that are written at once


class Connection(asyncio.Protocol, ConnectionPort):
    __slots__ = (
        "_deadline",
        "_deadline_kind",
        "_drain_waiters",
        "_flush_scheduled",
        "_timer",
        "_timer_at",
        "_wbuf",
        "_wbuf_size",
        "_write_deadline",
        "clock",
        "closing",
        "handler",
        "info",
        "loop",
        "proxied",
        "reading_paused",
        "server",
        "state",
        "transport",
        "write_paused",
    )

    def __init__(self, server: ServerState, clock: Callable[[], float] | None = None) -> None:
        self.server = server
        self.loop = server.loop
        self.clock: Callable[[], float] = clock or server.loop.time
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.info: ConnInfo = None  # type: ignore[assignment]
        self.handler: Handler = None  # type: ignore[assignment]
        self.state = NEW
        self.closing = False  # state is CLOSING or CLOSED (read on every write)
        self.proxied: ProxyInfo | None = None  # addresses from a PROXY protocol header
        self.reading_paused = False
        self.write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        # Streamed chunks of one loop turn leave in one write.
        self._wbuf: list[bytes] = []
        self._wbuf_size = 0
        self._flush_scheduled = False
        self._deadline_kind = Deadline.KEEP_ALIVE
        self._deadline: float | None = None  # the read deadline (one at a time)
        self._write_deadline: float | None = None  # while the peer does not read
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0  # when it fires

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        server = self.server
        self.info = server.conn_info(transport, self.proxied)
        if server.limit_connections is not None and not server.connection_opened(self):
            self.transport.pause_reading()  # over the limit (accepted in a batch): wait for a slot
            self.reading_paused = True
            return
        self._open()

    def unpark(self) -> None:
        """A connection slot is free: serve this connection, accepted over the limit."""
        if self.state == NEW:
            self.resume_reading()
            self._open()

    def _open(self) -> None:
        self.state = OPEN
        self.server.connections.add(self)
        if logger.isEnabledFor(5):
            logger.log(5, "%s - HTTP connection made", self.info.client_label)
        if self.info.alpn == "h2":
            self.handler = H2Handler(self)
        else:
            self.handler = H1Handler(self)
        self.handler.attached()

    def connection_lost(self, exc: Exception | None) -> None:
        was = self.state
        self.state = CLOSED
        self.closing = True
        server = self.server
        server.connections.discard(self)
        if server.limit_connections is not None:
            server.connection_closed(self)
        if was == NEW:
            return
        if logger.isEnabledFor(5):
            logger.log(5, "%s - HTTP connection lost", self.info.client_label)
        self.handler.connection_lost()
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._wake_drainers()

    def data_received(self, data: bytes) -> None:
        metrics = self.server.metrics
        if metrics is not None:
            metrics.bytes_in += len(data)
        switch = self.handler.feed(data)
        while switch is not None and self.state == OPEN:
            switch = self._switch(switch)

    def _switch(self, switch: Switch) -> Switch | None:
        """The protocol changed: hold the new handler, and feed it the rest."""
        handler = self.handler = switch.handler
        handler.attached()
        if switch.data:
            return handler.feed(switch.data)
        return None

    def eof_received(self) -> bool | None:
        # The peer can't be told apart from one that closed completely, and a
        # request waiting on it would wait forever: treat EOF as a disconnect.
        if self.state == OPEN:
            self.handler.eof_received()
        return None

    def pause_writing(self) -> None:
        self.write_paused = True
        self._write_deadline = deadline = self.clock() + self.server.config.timeout_write
        self._schedule(deadline)

    def resume_writing(self) -> None:
        self.write_paused = False
        self._write_deadline = None
        self._wake_drainers()

    # -- ConnectionPort: output

    def write(self, data: bytes) -> None:
        if self.state > OPEN:
            return
        if self._wbuf:
            self._wbuf.append(data)
            self.flush()
        elif data:
            self.transport.write(data)

    def buffer(self, data: bytes, schedule: bool = True) -> None:
        if not data:
            return
        self._wbuf.append(data)
        self._wbuf_size += len(data)
        if self._wbuf_size >= FLUSH_AT:
            self.flush()
        elif schedule and not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self._flush_scheduled = False
        wbuf = self._wbuf
        if wbuf:
            data = wbuf[0] if len(wbuf) == 1 else b"".join(wbuf)
            wbuf.clear()
            self._wbuf_size = 0
            if self.state <= OPEN:
                self.transport.write(data)

    def write_buffer_size(self) -> int:
        return self.transport.get_write_buffer_size()

    async def send_file(self, fd: int, offset: int, count: int) -> None:
        self.flush()
        if self.state == OPEN:
            await send_file(self.transport, self, fd, offset, count, self.info.scheme == "http")

    async def drain(self) -> None:
        if not self.write_paused or self.state > OPEN:
            return
        waiter = self.loop.create_future()
        self._drain_waiters.append(waiter)
        await waiter

    def _wake_drainers(self) -> None:
        waiters = self._drain_waiters
        if waiters:
            self._drain_waiters = []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    # -- ConnectionPort: reading

    def pause_reading(self) -> None:
        if not self.reading_paused and self.state <= OPEN:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.reading_paused and self.state <= OPEN:
            self.reading_paused = False
            self.transport.resume_reading()

    def now(self) -> float:
        return self.clock()

    # -- ConnectionPort: deadlines

    def set_deadline(self, kind: Deadline, seconds: float) -> None:
        self._deadline_kind = kind
        self._deadline = deadline = self.clock() + seconds
        if self._timer is None or deadline < self._timer_at:  # else it re-arms when it fires
            self._schedule(deadline)

    def clear_deadline(self) -> None:
        self._deadline = None

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

    def _next_deadline(self) -> float | None:
        # through a call: mypy narrowed the attribute to None above (and mypyc trusts it)
        return self._deadline

    def _on_timer(self) -> None:
        """The timer fired: a deadline passed (handled), or one moved later (re-armed)."""
        self._timer = None
        if self.state != OPEN:
            return
        now = self.clock()
        write_deadline = self._write_deadline
        if write_deadline is not None and now >= write_deadline:
            logger.info("%s - Client did not read for --timeout-write", self.info.client_label)
            self.abort()
            return
        deadline = self._deadline
        if deadline is not None and now >= deadline:
            self._deadline = None
            self.handler.deadline_expired(self._deadline_kind)
            if self.state != OPEN:
                return
            deadline = self._next_deadline()  # the handler may have set another
        upcoming = [d for d in (deadline, self._write_deadline) if d is not None]
        if upcoming:
            self._schedule(min(upcoming))

    # -- closing

    def close(self) -> None:
        if self.state <= OPEN:
            self.flush()
            self.state = CLOSING
            self.closing = True
            self.transport.close()
            pending = self.transport.get_write_buffer_size()
            if pending:  # the rest goes out as the peer reads; a peer that stops is cut off
                self.loop.call_later(self._linger_interval(), self._check_linger, pending)

    def abort(self) -> None:
        if self.state <= OPEN:
            self.state = CLOSING
            self.closing = True
            self.transport.abort()

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
        """Graceful shutdown: the handler finishes what runs and takes nothing new."""
        if self.state == OPEN:
            self.handler.shutdown()
        elif self.state == NEW:
            self.transport.close()

    def gauge(self) -> tuple[str, int]:
        return self.handler.gauge() if self.state == OPEN else ("http/1.1", 0)
