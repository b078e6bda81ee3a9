"""The ASGI HTTP request cycle, shared by every HTTP version.

A cycle is one request and its response. The connection (HTTP/1) or stream
(HTTP/2) that owns it feeds it the request body and implements
:class:`ResponseSink`, which turns the validated ASGI messages into bytes.

Rules:

* ``http.response.start`` is held until the first ``http.response.body`` so
  that head and body usually leave in one write.
* ``receive()`` gives the buffered body, then blocks until the response is
  complete or the client has gone, then returns ``http.disconnect``.
* ``Expect: 100-continue`` is answered on the first ``receive()``, only if
  the response has not started.
* ``send()`` after the client has gone is ignored (as Uvicorn does, so
  Starlette's listener still sees ``http.disconnect`` on ``receive()``).
* An exception before the response starts becomes a 500; after it started,
  the connection is closed. Either way it is logged once with its traceback.

Extensions (advertised in ``scope["extensions"]``):

* ``http.response.trailers``: with ``"trailers": True`` in the start message
  the body's end leaves the framing open until ``http.response.trailers``
  (the sink drops them if the client did not ask for trailers).
* ``http.response.early_hint``: a 103 with the ``links`` as Link fields,
  before the response starts.
* ``http.response.pathsend`` and ``http.response.zerocopysend``: the sink
  sends the file itself (sendfile where it can) and ``content-length`` is
  added when the app gave none and the size is known.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING, Any, Protocol

from squall.errors import ResponseError

if TYPE_CHECKING:
    from squall.asgi.types import ASGIApp, Message, Scope

logger = logging.getLogger("squall.error")

HIGH_WATER = 65536

_DISCONNECT: dict[str, Any] = {"type": "http.disconnect"}


class ResponseSink(Protocol):
    """What a cycle needs from its connection or stream."""

    @property
    def write_paused(self) -> bool: ...

    def start_response(
        self, cycle: HTTPCycle, status: int, headers: Any, body: bytes | None, more_body: bool
    ) -> None: ...
    def send_body(self, cycle: HTTPCycle, body: bytes, more_body: bool) -> None: ...
    def send_continue(self, cycle: HTTPCycle) -> None: ...
    def send_informational(
        self, cycle: HTTPCycle, status: int, headers: list[tuple[bytes, bytes]]
    ) -> None: ...
    def send_trailers(self, cycle: HTTPCycle, headers: list[tuple[bytes, bytes]]) -> None: ...
    async def send_file(self, cycle: HTTPCycle, fd: int, offset: int, count: int) -> None: ...
    def response_complete(self, cycle: HTTPCycle) -> None: ...
    def cycle_failed(self, cycle: HTTPCycle, status: int) -> None: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def consumed(self, size: int) -> None: ...
    async def drain(self) -> None: ...


# cycle states; TRAILERS: the body has ended, the trailers are awaited
IDLE, HELD, STREAMING, DONE, TRAILERS = range(5)


class HTTPCycle:
    __slots__ = (
        "_buffered",
        "_chunks",
        "_waiter",
        "body_complete",
        "body_delivered",
        "disconnected",
        "expect_continue",
        "headers",
        "scope",
        "sent",
        "sink",
        "start_time",
        "state",
        "status",
        "task",
        "trailers",
    )

    def __init__(self, scope: Scope, sink: ResponseSink, expect_continue: bool) -> None:
        self.scope = scope
        self.sink = sink
        self.expect_continue = expect_continue
        self.state = IDLE
        self.status = 0
        self.headers: Any = ()
        self.disconnected = False
        self.body_complete = False
        self.body_delivered = False
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._waiter: asyncio.Future[None] | None = None
        self.start_time = 0.0
        self.task: asyncio.Task[None] | None = None  # set by whoever started it
        self.trailers: list[tuple[bytes, bytes]] | None = None  # announced: collected here
        self.sent = 0  # response body bytes, for the access log

    # -- fed by the owner

    def feed_body(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > HIGH_WATER:
            self.sink.pause_reading()
        self._wake()

    def discard_body(self) -> int:
        """Drop the unread body (the response is complete); return its size."""
        size = self._buffered
        self._chunks.clear()
        self._buffered = 0
        return size

    def end_body(self) -> None:
        self.body_complete = True
        self._wake()

    def disconnect(self) -> None:
        self.disconnected = True
        self._wake()

    def preempt(self, status: int) -> bool:
        """The server answers in the app's place (a timeout, a body over the limit, an
        app failure). True if nothing was sent yet: the cycle is now done with
        ``status`` and the owner sends that answer; False if the response began."""
        if self.state == IDLE or self.state == HELD:
            self.state = DONE
            self.status = status
            self._wake()
            return True
        return False

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- the app's side

    async def receive(self) -> Message:
        if self.expect_continue:
            self.expect_continue = False
            if self.state == IDLE and not self.disconnected:
                self.sink.send_continue(self)
        while True:
            if self._chunks or (self.body_complete and not self.body_delivered):
                chunks = self._chunks
                if len(chunks) == 1:
                    body = chunks[0]
                    chunks.clear()
                else:
                    body = b"".join(chunks)
                    chunks.clear()
                if self._buffered > HIGH_WATER:
                    self.sink.resume_reading()
                if body:
                    self.sink.consumed(len(body))
                self._buffered = 0
                more = not self.body_complete
                if not more:
                    self.body_delivered = True
                return {"type": "http.request", "body": body, "more_body": more}
            if self.disconnected or self.state == DONE:
                return _DISCONNECT
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            await waiter

    async def send(self, message: Message) -> None:
        if self.disconnected:
            return  # as Uvicorn: the app learns of it from receive()
        mtype = message["type"]
        state = self.state
        if mtype == "http.response.body":
            if state != HELD and state != STREAMING:
                if state == IDLE:
                    raise RuntimeError(
                        f"Expected ASGI message 'http.response.start', but got {mtype!r}."
                    )
                raise RuntimeError(
                    f"Unexpected ASGI message {mtype!r} sent, after response already completed."
                )
            body = message.get("body", b"")
            more = message.get("more_body", False)
            self.sent += len(body)
            if not more and self.trailers is not None:
                self._body_then_trailers(body)
                return
            if state == HELD:
                self.sink.start_response(self, self.status, self.headers, body, more)
                self.state = STREAMING if more else DONE
            else:
                self.sink.send_body(self, body, more)
                if not more:
                    self.state = DONE
            if not more:
                self.sink.response_complete(self)
                self._wake()  # a receive() waiting for the end now returns disconnect
            elif self.sink.write_paused:
                await self.sink.drain()
        elif mtype == "http.response.start":
            if state != IDLE:
                raise RuntimeError(
                    f"Unexpected ASGI message {mtype!r} sent, after response already started."
                )
            status = message["status"]
            if type(status) is not int:
                raise RuntimeError(f"Invalid HTTP status code {status!r} in response.")
            self.status = status
            self.headers = message.get("headers", ())
            self.state = HELD
            if message.get("trailers"):
                self.trailers = []
        else:
            await self._send_extension(mtype, message)

    def _body_then_trailers(self, body: bytes) -> None:
        """The last body message of a response with trailers: the framing stays open."""
        if self.state == HELD:
            self.sink.start_response(self, self.status, self.headers, body, True)
        elif self.state == STREAMING:
            self.sink.send_body(self, body, True)
        else:
            raise RuntimeError(f"Unexpected 'http.response.body' in state {self.state}.")
        self.state = TRAILERS

    async def _send_extension(self, mtype: str, message: Message) -> None:
        state = self.state
        if mtype == "http.response.trailers":
            if self.trailers is None or state not in (STREAMING, TRAILERS):
                raise RuntimeError(
                    "'http.response.trailers' needs 'trailers': True in the start message "
                    "and comes after the body."
                )
            self.trailers.extend(message.get("headers", ()))
            if not message.get("more_trailers", False):
                if state == STREAMING:  # trailers end the body
                    self.sink.send_body(self, b"", True)
                self.sink.send_trailers(self, self.trailers)  # if it raises, the cycle fails
                self.state = DONE
                self.sink.response_complete(self)
                self._wake()
        elif mtype == "http.response.early_hint":
            if state == IDLE:
                links = message.get("links", ())
                self.sink.send_informational(self, 103, [(b"link", link) for link in links])
        elif mtype == "http.response.pathsend":
            if state != HELD:
                raise RuntimeError("'http.response.pathsend' must follow 'http.response.start'.")
            fd = os.open(message["path"], os.O_RDONLY)
            try:
                await self._send_file(fd, 0, os.fstat(fd).st_size, False)
            finally:
                os.close(fd)
        elif mtype == "http.response.zerocopysend":
            if state != HELD and state != STREAMING:
                raise RuntimeError("'http.response.zerocopysend' must follow the start message.")
            file = message["file"]
            fd = file if isinstance(file, int) else file.fileno()
            offset = message.get("offset")
            if offset is None:
                offset = os.lseek(fd, 0, os.SEEK_CUR)
            count = message.get("count")
            if count is None:
                count = os.fstat(fd).st_size - offset
            await self._send_file(fd, offset, count, message.get("more_body", False))
        else:
            raise RuntimeError(
                f"Unexpected ASGI message {mtype!r} sent, in response to an HTTP request."
            )

    async def _send_file(self, fd: int, offset: int, count: int, more: bool) -> None:
        sink = self.sink
        if self.state == HELD:
            headers = list(self.headers)
            if (
                not more
                and self.trailers is None  # trailers need a chunked body
                and not any(n.lower() == b"content-length" for n, _ in headers)
            ):
                headers.append((b"content-length", b"%d" % count))
            sink.start_response(self, self.status, headers, None, True)
            self.state = STREAMING
        if count > 0:
            await sink.send_file(self, fd, offset, count)
            self.sent += count
        if not more:
            if self.trailers is not None:
                self.state = TRAILERS
                return
            sink.send_body(self, b"", False)
            self.state = DONE
            sink.response_complete(self)
            self._wake()

    async def run(self, app: ASGIApp, tasks: set[asyncio.Task[Any]]) -> None:
        """Run the app for this request; its task (``self.task``) leaves ``tasks`` when it
        ends. (A task an eager task factory ran to its end inside ``create_task`` is
        never added: see :func:`squall.connection.admit.start`.)"""
        try:
            # through Any: the declared return type is None, and compiled code would
            # drop the value an app wrongly returns
            call: Any = app
            result = await call(self.scope, self.receive, self.send)
        except BaseException as exc:
            self._failed(exc)
            if not isinstance(exc, Exception | asyncio.CancelledError):
                raise
            return
        finally:
            task = self.task
            if task is not None:
                tasks.discard(task)
        if result is not None:
            logger.error("ASGI callable should return None, but returned '%s'.", result)
            if self.state != DONE:
                self.sink.cycle_failed(self, 500)
            return
        if self.state != DONE and not self.disconnected:
            if self.state == IDLE:
                logger.error("ASGI callable returned without starting response.")
            else:
                logger.error("ASGI callable returned without completing response.")
            self.sink.cycle_failed(self, 500)

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, asyncio.CancelledError):
            if self.state != DONE:
                self.sink.cycle_failed(self, 503)
            return
        if isinstance(exc, ResponseError):
            logger.error("Invalid response from ASGI application: %s", exc)
        else:
            logger.error("Exception in ASGI application\n", exc_info=exc)
        if self.state != DONE:
            self.sink.cycle_failed(self, 500)
