"""The contract between the connection shell and the protocol handler it holds.

:class:`~squall.connection.transport.Connection` is the shell: it alone
touches the asyncio transport, the timer and flow control. It holds exactly
one :class:`Handler` (HTTP/1, HTTP/2 or WebSocket) and feeds it every read.
A handler sees its connection only as a :class:`ConnectionPort`.

Rules:

* ``Handler.feed(data)`` returns None, or a :class:`Switch` when the protocol
  changes (WebSocket upgrade, h2c upgrade, HTTP/2 prior knowledge): the shell
  then holds ``switch.handler`` instead, calls its ``attached()`` and feeds it
  ``switch.data``, the bytes that came after the change.
* Writes keep their order: :meth:`ConnectionPort.buffer` holds bytes until
  the loop turns (so the answers of one read share a write), and
  :meth:`ConnectionPort.write` sends whatever is held first.
* One deadline runs for reading at a time, named for what it guards
  (:class:`Deadline`); when it passes, the shell calls
  ``Handler.deadline_expired(kind)``. The write-stall deadline is the shell's
  own: a peer that reads nothing for ``--timeout-write`` is cut off.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, TypeVar

try:
    from mypy_extensions import trait
except ImportError:  # only mypyc reads it (calls through a trait are native calls)
    _C = TypeVar("_C")

    def trait(cls: _C) -> _C:
        return cls


if TYPE_CHECKING:
    import asyncio

    from squall.asgi.scope import ConnInfo
    from squall.connection.state import ServerState


class Deadline(enum.IntEnum):
    """What a read deadline guards (as Go's net/http names its timeouts)."""

    KEEP_ALIVE = 1  # idle, waiting for the next request (--timeout-keep-alive)
    REQUEST_HEAD = 2  # a request head begun but not complete (--timeout-request-header)
    REQUEST_BODY = 3  # no request body bytes for a while (--timeout-request-body)
    STREAMS = 4  # HTTP/2: the soonest deadline of any stream (body or write stall)
    SHUTDOWN_GRACE = 5  # shutting down: a fresh connection's request may be on its way


class ConnState(enum.IntEnum):
    """The shell's lifecycle; a handler's own states live in the handler."""

    NEW = 0  # accepted, over --limit-connections: parked, not read yet
    OPEN = 1  # serving through its handler
    CLOSING = 2  # close() called: buffered output leaves, then the socket closes
    CLOSED = 3  # connection_lost


NEW, OPEN, CLOSING, CLOSED = ConnState


@trait
class Handler:
    """A protocol handler held by the shell (HTTP/1, HTTP/2, WebSocket)."""

    __slots__ = ()

    def attached(self) -> None:
        """Now held by the shell: e.g. the HTTP/2 preface goes out."""
        raise NotImplementedError

    def feed(self, data: bytes) -> Switch | None:
        """A read; a :class:`Switch` if the protocol changed."""
        raise NotImplementedError

    def eof_received(self) -> None:
        raise NotImplementedError

    def connection_lost(self) -> None:
        raise NotImplementedError

    def deadline_expired(self, kind: Deadline) -> None:
        """The read deadline ``kind`` passed."""
        raise NotImplementedError

    def shutdown(self) -> None:
        """Graceful shutdown: finish what is running, take nothing new."""
        raise NotImplementedError

    def gauge(self) -> tuple[str, int]:
        """For the metrics: the protocol's name and its open WebSocket sessions."""
        raise NotImplementedError


class Switch:
    """A handler's answer to a read that changed the protocol."""

    __slots__ = ("data", "handler")

    def __init__(self, handler: Handler, data: bytes) -> None:
        self.handler = handler
        self.data = data


@trait
class ConnectionPort:
    """What a handler may use of its connection (the shell implements it).

    A trait, not a ``typing.Protocol``: with the compiled build, calls through
    it are native calls.
    """

    __slots__ = ()

    server: ServerState
    info: ConnInfo
    loop: asyncio.AbstractEventLoop
    closing: bool  # close() was called, or the peer is gone
    write_paused: bool  # the peer is not reading fast enough: wait for drain()
    reading_paused: bool

    def write(self, data: bytes) -> None:
        """Send ``data`` now, after anything held by :meth:`buffer`."""
        raise NotImplementedError

    def buffer(self, data: bytes, schedule: bool = True) -> None:
        """Hold ``data`` until the loop turns (``schedule``) or :meth:`flush`."""
        raise NotImplementedError

    def flush(self) -> None:
        raise NotImplementedError

    def write_buffer_size(self) -> int:
        """Bytes written but not yet taken by the peer."""
        raise NotImplementedError

    def close(self) -> None:
        """Close after what is buffered; a peer that stops reading is cut off."""
        raise NotImplementedError

    def pause_reading(self) -> None:
        raise NotImplementedError

    def resume_reading(self) -> None:
        raise NotImplementedError

    async def drain(self) -> None:
        """Wait until the peer reads again (return at once if it does)."""
        raise NotImplementedError

    async def send_file(self, fd: int, offset: int, count: int) -> None:
        """Send ``count`` bytes of ``fd`` from ``offset`` (sendfile on plain TCP)."""
        raise NotImplementedError

    def set_deadline(self, kind: Deadline, seconds: float) -> None:
        """Run the read deadline ``kind``, ``seconds`` from now (replacing any other)."""
        raise NotImplementedError

    def clear_deadline(self) -> None:
        raise NotImplementedError

    def now(self) -> float:
        """The connection's clock (the loop's, unless a test passed another)."""
        raise NotImplementedError
