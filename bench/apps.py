"""Raw ASGI apps (no framework) for the benchmark scenarios.

Each app is usable by any ASGI server, e.g. ``squall bench.apps:plaintext``.
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

HELLO = b"Hello, world!"
CHUNK = b"x" * 1024
CHUNKS = 16


async def lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    """Acknowledge lifespan startup and shutdown; ignore any other scope type."""
    while scope["type"] == "lifespan":
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def respond(send: Send, body: bytes, content_type: bytes) -> None:
    """Send a complete response with a content-length."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode("ascii")),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def plaintext(scope: Scope, receive: Receive, send: Send) -> None:
    """GET / -> 13 bytes of text/plain."""
    if scope["type"] != "http":
        return await lifespan(scope, receive, send)
    await respond(send, HELLO, b"text/plain")


async def json(scope: Scope, receive: Receive, send: Send) -> None:
    """A small dict built and serialized with the stdlib per request."""
    if scope["type"] != "http":
        return await lifespan(scope, receive, send)
    payload = {"message": "Hello, world!", "path": scope["path"], "id": 42, "ok": True}
    await respond(send, jsonlib.dumps(payload).encode(), b"application/json")


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Read the whole request body and send it back."""
    if scope["type"] != "http":
        return await lifespan(scope, receive, send)
    parts: list[bytes] = []
    more_body = True
    while more_body:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        parts.append(message.get("body", b""))
        more_body = message.get("more_body", False)
    await respond(send, b"".join(parts), b"application/octet-stream")


async def stream(scope: Scope, receive: Receive, send: Send) -> None:
    """16 chunks of 1 KiB without a content-length (chunked in HTTP/1.1)."""
    if scope["type"] != "http":
        return await lifespan(scope, receive, send)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/octet-stream")],
        }
    )
    for _ in range(CHUNKS):
        await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def ws_echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Accept a WebSocket and echo every message back."""
    if scope["type"] != "websocket":
        return await lifespan(scope, receive, send)
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif kind == "websocket.receive":
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": message["text"]})
            else:
                await send({"type": "websocket.send", "bytes": message["bytes"]})
        else:
            return


async def mixed(scope: Scope, receive: Receive, send: Send) -> None:
    """Plain text over HTTP (any version), echo over WebSocket: for bench/soak.py."""
    if scope["type"] == "websocket":
        return await ws_echo(scope, receive, send)
    if scope["type"] == "http":
        return await plaintext(scope, receive, send)
    return await lifespan(scope, receive, send)
