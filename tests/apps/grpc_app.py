"""A gRPC server written as a plain ASGI app (``tests.apps.grpc_app:app``).

No protoc and no server library: the request body is read as gRPC
length-prefixed messages (a compressed flag byte, a 4-byte big-endian length,
the payload), the answer is ``content-type: application/grpc`` with messages
framed the same way, and the call's status goes in HTTP trailers
(``grpc-status``, ``grpc-message``) through the ASGI trailers extension. The
payloads are raw bytes: the client calls with identity serializers.

Methods (service ``test.Echo``):

* ``Unary``: echoes its one message.
* ``ServerStream``: the request is ``>II`` (count, size); answers ``count``
  messages of ``size`` bytes, message ``i`` filled with the byte ``i % 256``,
  each sent with ``more_body`` (the send awaits the server's back-pressure).
  Stops when the client goes away, and records it.
* ``ClientStream``: reads every message; answers ``>QQ`` (messages, bytes)
  followed by the SHA-256 of all the payloads in order.
* ``Bidi``: echoes each message as soon as it arrives.
* ``Fail``: ``grpc-status`` 3 (INVALID_ARGUMENT) and a ``grpc-message`` in
  trailers after the response headers; ``FailTrailersOnly``: the same status in
  the response headers of a response without a body and without trailers.
* ``Slow``: holds the call (up to 20 s) until the client goes away, and
  records it.

Records are files in ``$MARK_DIR`` (default: the working directory), named by
the request's ``x-test-tag`` metadata: ``started-<tag>`` when a call begins,
``disconnect-<tag>`` (holding the number of messages sent so far) when the app
sees ``http.disconnect``. Lifespan events are completed.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import struct
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PREFIX = struct.Struct(">BI")  # compressed flag, payload length
OK, CANCELLED, INVALID_ARGUMENT, UNIMPLEMENTED, INTERNAL = 0, 1, 3, 12, 13
SLOW_LIMIT = 20.0  # how long Slow holds a call whose client stays


class Disconnected(Exception):
    """The client went away (``http.disconnect``)."""


class BadMessage(Exception):
    """The request body is not a sequence of uncompressed gRPC messages."""


def frame(payload: bytes) -> bytes:
    return PREFIX.pack(0, len(payload)) + payload


def mark(tag: str, name: str, content: str = "") -> None:
    if not tag:
        return
    path = os.path.join(os.environ.get("MARK_DIR", "."), f"{name}-{tag}")
    with open(path + ".tmp", "w") as fh:
        fh.write(content)
    os.replace(path + ".tmp", path)  # whole when it appears


class Reader:
    """The request's messages, parsed as the body arrives."""

    def __init__(self, receive: Receive) -> None:
        self.receive = receive
        self.buffer = bytearray()
        self.ended = False

    async def next(self) -> bytes | None:
        """The next message; None once the body has ended on a message boundary."""
        buffer = self.buffer
        while True:
            if len(buffer) >= PREFIX.size:
                compressed, length = PREFIX.unpack_from(buffer)
                if compressed:
                    raise BadMessage("compressed messages are not supported")
                end = PREFIX.size + length
                if len(buffer) >= end:
                    payload = bytes(buffer[PREFIX.size : end])
                    del buffer[:end]
                    return payload
            if self.ended:
                if buffer:
                    raise BadMessage(f"the body ended inside a message ({len(buffer)} bytes)")
                return None
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise Disconnected
            buffer += message.get("body", b"")
            if not message.get("more_body", False):
                self.ended = True

    async def only(self) -> bytes:
        """The one message of a unary request."""
        first = await self.next()
        if first is None or await self.next() is not None:
            raise BadMessage("expected exactly one request message")
        return first


class Call:
    """The response side of one call: headers once, messages, status in trailers."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = False
        self.sent = 0  # messages

    async def start(self) -> None:
        if not self.started:
            self.started = True
            await self.send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/grpc")],
                    "trailers": True,
                }
            )

    async def message(self, payload: bytes) -> None:
        await self.start()
        await self.send({"type": "http.response.body", "body": frame(payload), "more_body": True})
        self.sent += 1

    async def finish(self, status: int = OK, text: bytes = b"") -> None:
        await self.start()
        await self.send({"type": "http.response.body", "body": b"", "more_body": False})
        trailers = [(b"grpc-status", b"%d" % status)]
        if text:
            trailers.append((b"grpc-message", text))
        await self.send({"type": "http.response.trailers", "headers": trailers})


def watch_disconnect(receive: Receive) -> asyncio.Future[Message]:
    """After the whole body was read: the next receive() resolves on ``http.disconnect``."""
    return asyncio.ensure_future(receive())


async def unary(reader: Reader, call: Call, tag: str) -> None:
    await call.message(await reader.only())
    await call.finish()


async def server_stream(reader: Reader, call: Call, tag: str) -> None:
    request = await reader.only()
    if len(request) != 8:
        await call.finish(INVALID_ARGUMENT, b"expected 8 bytes: count and size")
        return
    count, size = struct.unpack(">II", request)
    gone = watch_disconnect(reader.receive)
    try:
        for i in range(count):
            if gone.done():
                mark(tag, "disconnect", str(call.sent))
                return
            await call.message(bytes([i % 256]) * size)
            if i % 256 == 255:
                # A send does not suspend while the connection takes the data, nor once
                # the client is gone (it is dropped, as in Uvicorn): let the watcher run.
                await asyncio.sleep(0)
        if gone.done():
            mark(tag, "disconnect", str(call.sent))
            return
        await call.finish()
    finally:
        gone.cancel()


async def client_stream(reader: Reader, call: Call, tag: str) -> None:
    digest = hashlib.sha256()
    messages = total = 0
    while (payload := await reader.next()) is not None:
        messages += 1
        total += len(payload)
        digest.update(payload)
    await call.message(struct.pack(">QQ", messages, total) + digest.digest())
    await call.finish()


async def bidi(reader: Reader, call: Call, tag: str) -> None:
    await call.start()
    while (payload := await reader.next()) is not None:
        await call.message(payload)
    await call.finish()


async def fail(reader: Reader, call: Call, tag: str) -> None:
    while await reader.next() is not None:
        pass
    await call.finish(INVALID_ARGUMENT, b"bad argument: caf%C3%A9 50%25")


async def fail_trailers_only(reader: Reader, call: Call, tag: str) -> None:
    while await reader.next() is not None:
        pass
    call.started = True
    await call.send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/grpc"),
                (b"grpc-status", b"%d" % INVALID_ARGUMENT),
                (b"grpc-message", b"trailers only"),
            ],
        }
    )
    await call.send({"type": "http.response.body", "body": b"", "more_body": False})


async def slow(reader: Reader, call: Call, tag: str) -> None:
    while await reader.next() is not None:
        pass
    gone = watch_disconnect(reader.receive)
    try:
        message = await asyncio.wait_for(gone, SLOW_LIMIT)
    except asyncio.TimeoutError:
        await call.message(b"too late")
        await call.finish()
        return
    finally:
        gone.cancel()
    if message["type"] == "http.disconnect":
        mark(tag, "disconnect", "0")


METHODS: dict[str, Callable[[Reader, Call, str], Awaitable[None]]] = {
    "/test.Echo/Unary": unary,
    "/test.Echo/ServerStream": server_stream,
    "/test.Echo/ClientStream": client_stream,
    "/test.Echo/Bidi": bidi,
    "/test.Echo/Fail": fail,
    "/test.Echo/FailTrailersOnly": fail_trailers_only,
    "/test.Echo/Slow": slow,
}


async def _grpc(scope: Scope, receive: Receive, send: Send) -> None:
    headers = dict(scope["headers"])
    tag = headers.get(b"x-test-tag", b"").decode("ascii")
    if not tag.replace("-", "").isalnum():
        tag = ""
    mark(tag, "started")
    call = Call(send)
    reader = Reader(receive)
    method = METHODS.get(scope["path"])
    if scope["method"] != "POST" or not headers.get(b"content-type", b"").startswith(
        b"application/grpc"
    ):
        await send(
            {
                "type": "http.response.start",
                "status": 415,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"17")],
            }
        )
        await send({"type": "http.response.body", "body": b"not a gRPC call\n\n"})
        return
    if method is None:
        await call.finish(UNIMPLEMENTED, b"unknown method")
        return
    try:
        await method(reader, call, tag)
    except Disconnected:
        mark(tag, "disconnect", str(call.sent))
    except BadMessage as exc:
        await call.finish(INTERNAL, str(exc).encode())


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await _grpc(scope, receive, send)
    elif scope["type"] == "lifespan":
        await _lifespan(receive, send)
