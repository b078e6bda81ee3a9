"""Squall's own accept loop: for ``--proxy-protocol``, and on the asyncio loop.

On the plain asyncio loop, whose server logs and retries ``accept()`` in a
burst when the process runs out of file descriptors, this loop is used for
every listener: on EMFILE it logs once and retries every half second.

With the option on, each listening socket gets an :class:`AcceptLoop`
instead of an asyncio server. For a peer in ``--forwarded-allow-ips`` the
header is read straight from the socket, exactly its bytes and no more
(consuming what the kernel holds while the header is incomplete, then the
rest of it), before the connection is handed to asyncio with
``connect_accepted_socket``; TLS therefore starts after the header, as
HAProxy sends it. The header's client and server addresses replace the
socket's. A peer that is not trusted is served without reading a header
(its bytes are not believed); a trusted peer without a valid header within
``--timeout-request-header`` is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import TYPE_CHECKING, Any

from squall.protocols.proxy import V1_MAX, ProxyInfo, ProxyProtocolError, parse

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable

    from squall.connection.state import ServerState
    from squall.connection.transport import Connection

logger = logging.getLogger("squall.error")

PEEK = 4096
ACCEPT_BATCH = 16  # connections taken per readiness event


class AcceptLoop:
    """A listening socket served by our own accept loop (an asyncio-server look-alike)."""

    def __init__(
        self,
        state: ServerState,
        sock: socket.socket,
        factory: Callable[[], Connection],
        ssl_context: ssl.SSLContext | None,
        handshake_timeout: float,
        proxy_protocol: bool = True,
    ) -> None:
        self.state = state
        self.proxy_protocol = proxy_protocol
        sock.listen(state.config.backlog)  # a pre-bound socket may not listen yet
        sock.setblocking(False)
        self.sockets = [sock]
        self.factory = factory
        self.ssl = ssl_context
        self.handshake_timeout = handshake_timeout
        self._pending: set[asyncio.Task[None]] = set()
        self._failing = False  # accept() is failing (logged once until it works again)
        self._retry: asyncio.TimerHandle | None = None
        self._closed = False
        # accept() is called from a reader callback, never from a task that could be
        # cancelled between the kernel's accept and our hand-over: pausing (close)
        # loses no connection, the rest wait in the backlog
        state.loop.add_reader(sock.fileno(), self._accept)

    def close(self) -> None:
        """Stop accepting (connections being handed over still are)."""
        if not self._closed:
            self._closed = True
            if self._retry is not None:
                self._retry.cancel()
            else:
                self.state.loop.remove_reader(self.sockets[0].fileno())

    async def wait_closed(self) -> None:
        return None

    def _accept(self) -> None:
        loop = self.state.loop
        listener = self.sockets[0]
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. EMFILE: back off instead of spinning
                if not self._failing:
                    logger.error("accept() failed: %s; retrying every 0.5 s", exc)
                self._failing = True
                loop.remove_reader(listener.fileno())
                self._retry = loop.call_later(0.5, self._resume)
                return
            if self._failing:
                logger.warning("accept() works again")
                self._failing = False
            conn.setblocking(False)
            task = loop.create_task(self._serve(conn))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
            if self._closed:  # paused by the connection just handed over
                return

    def _resume(self) -> None:
        self._retry = None
        if not self._closed:
            self.state.loop.add_reader(self.sockets[0].fileno(), self._accept)

    async def _serve(self, conn: socket.socket) -> None:
        state = self.state
        info: ProxyInfo | None = None
        if self.proxy_protocol and _trusted(state, conn):
            try:
                info = await asyncio.wait_for(
                    read_header(state.loop, conn), state.config.timeout_request_header
                )
            except (ProxyProtocolError, asyncio.TimeoutError, OSError) as exc:
                reason = "timed out" if isinstance(exc, asyncio.TimeoutError) else str(exc)
                logger.warning("PROXY protocol header from a trusted peer: %s", reason)
                conn.close()
                return

        def factory() -> Connection:
            connection = self.factory()
            connection.proxied = info
            return connection

        options: dict[str, Any] = {}
        if self.ssl is not None:
            options = {"ssl": self.ssl, "ssl_handshake_timeout": self.handshake_timeout}
        try:
            await state.loop.connect_accepted_socket(factory, conn, **options)
        except (OSError, ConnectionError) as exc:
            logger.debug("connection failed before it was served: %s", exc)
            conn.close()


def _trusted(state: ServerState, conn: socket.socket) -> bool:
    if conn.family == socket.AF_UNIX:
        return state.trusted_hosts.always
    with contextlib.suppress(OSError):
        return str(conn.getpeername()[0]) in state.trusted_hosts
    return False


async def read_header(loop: asyncio.AbstractEventLoop, conn: socket.socket) -> ProxyInfo:
    """Read exactly the PROXY header from ``conn`` (no byte after it)."""
    buffered = b""
    while True:
        await _readable(loop, conn)
        peeked = conn.recv(PEEK, socket.MSG_PEEK)
        if not peeked:
            raise ProxyProtocolError("connection closed before the PROXY header")
        data = buffered + peeked
        result = parse(data)
        if result is not None:
            info, length = result
            take = length - len(buffered)
            while take:  # the header is in the kernel buffer: take just it
                chunk = conn.recv(take)
                if not chunk:
                    raise ProxyProtocolError("connection closed in the PROXY header")
                take -= len(chunk)
            return info
        if len(data) > V1_MAX and data[:1] == b"P":
            raise ProxyProtocolError("PROXY protocol v1 header too long")
        buffered += conn.recv(len(peeked))  # all of it is header: consume and wait


async def _readable(loop: asyncio.AbstractEventLoop, conn: socket.socket) -> None:
    future: asyncio.Future[None] = loop.create_future()
    fd = conn.fileno()

    def ready() -> None:
        if not future.done():
            future.set_result(None)

    loop.add_reader(fd, ready)
    try:
        await future
    finally:
        loop.remove_reader(fd)
