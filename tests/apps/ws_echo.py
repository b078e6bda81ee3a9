"""A WebSocket echo app for the Autobahn conformance tests (``tests.apps.ws_echo:app``).

* ``websocket``: accepts every connection, then sends each text message back as
  text and each binary message back as bytes, until the client disconnects;
* ``http``: answers every request with a small ``200 OK`` (handy as a readiness probe);
* ``lifespan``: completes startup and shutdown.
"""

from __future__ import annotations

from typing import Any

Scope = dict[str, Any]
Receive = Any
Send = Any


async def _websocket(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif kind == "websocket.receive":
            text = message.get("text")
            if text is not None:
                await send({"type": "websocket.send", "text": text})
            else:
                await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})
        elif kind == "websocket.disconnect":
            return


async def _http(receive: Receive, send: Send) -> None:
    while True:  # drain the request body before answering
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    body = b"ws echo\n"
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    kind = scope["type"]
    if kind == "websocket":
        await _websocket(receive, send)
    elif kind == "http":
        await _http(receive, send)
    elif kind == "lifespan":
        await _lifespan(receive, send)
