"""Starlette under Squall, over HTTP/1.1 and HTTP/2.

Routing and JSON, form and multipart uploads of several MiB, streaming and
Server-Sent Events, a client that leaves mid-stream, FileResponse (sent with
``http.response.pathsend``, which Squall advertises), background tasks,
lifespan state, WebSockets (HTTP/1.1 and RFC 8441 over HTTP/2), a request
abandoned by its client, contextvars across concurrent requests and
pipelined HTTP/1.1 requests. Also: cookies both ways (split Cookie crumbs over
HTTP/2), an HTTP/2 stream reset mid-stream, and WebSocket subprotocols and
denials (``send_denial_response``, Squall's ``websocket.http.response``).

Checks that read the same for FastAPI, Litestar, Quart and Starlette are
written once in test_shared.py, which runs them on this module's make_app.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from tests.compat.helpers import (
    BIG_FIELD_NAMES,
    CONCURRENT,
    SSE_EVENTS,
    Gate,
    LoopBarrier,
    check_abandoned_request,
    check_routing_and_json,
    check_stream_reset,
    check_websocket_echo,
    endless_stream,
    form_echo,
    gated_stream,
    payload,
    read_first_chunk_then_close,
    read_sse,
    sha256,
    sse_text,
    wait_until,
    websocket_handshake,
)

pytestmark = [pytest.mark.usefixtures("fast_tick"), pytest.mark.timeout(30)]

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("sl_rid", default=None)
header_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("sl_hid", default=None)


def make_app(file_path: Path | None = None) -> tuple[Any, SimpleNamespace]:
    """A Starlette app and what it records (``ctx``)."""
    ctx = SimpleNamespace(
        events=[],
        sent=[],  # ASGI message types the app sent, for HTTP
        gate=Gate(),
        barrier=LoopBarrier(CONCURRENT),
        file_path=file_path,
    )

    async def item(request: Request) -> Response:
        return JSONResponse(
            {
                "id": request.path_params["item_id"],
                "q": request.query_params.get("q"),
                "http_version": request.scope["http_version"],
            }
        )

    async def echo(request: Request) -> Response:
        return JSONResponse({"received": await request.json()}, status_code=201)

    async def plain(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def cookies(request: Request) -> Response:
        response = JSONResponse(dict(request.cookies))
        response.set_cookie("a", "1")
        response.set_cookie("b", "2")
        return response

    async def form(request: Request) -> Response:
        async with request.form() as data:
            fields = [str(data[name]) for name in BIG_FIELD_NAMES]
            return JSONResponse(form_echo(str(data["text"]), fields))

    async def upload(request: Request) -> Response:
        async with request.form(max_part_size=1024 * 1024) as data:
            files = {}
            for name in ("a", "b"):
                upload = data[name]
                content = await upload.read()  # type: ignore[union-attr]
                files[name] = {
                    "filename": upload.filename,  # type: ignore[union-attr]
                    "size": len(content),
                    "sha": sha256(content),
                }
            return JSONResponse({"field": data["field"], "files": files})

    async def stream(request: Request) -> Response:
        return StreamingResponse(gated_stream(ctx), media_type="text/plain")

    async def sse(request: Request) -> Response:
        return StreamingResponse(sse_text(), media_type="text/event-stream")

    async def forever(request: Request) -> Response:
        return StreamingResponse(endless_stream(ctx), media_type="text/plain")

    async def file(request: Request) -> Response:
        return FileResponse(ctx.file_path, media_type="application/octet-stream")

    async def background(request: Request) -> Response:
        async def task() -> None:
            await ctx.gate.wait()
            ctx.events.append("background-done")

        return JSONResponse({"queued": True}, background=BackgroundTask(task))

    async def state(request: Request) -> Response:
        seen = dict(vars(request.state)["_state"])
        request.state.mutated = True  # a shallow copy per request: not seen by the next
        return JSONResponse({"greeting": seen.get("greeting"), "mutated": "mutated" in seen})

    async def slow(request: Request) -> Response:
        ctx.events.append("slow-start")
        while not await request.is_disconnected():
            await asyncio.sleep(0.005)
        ctx.events.append("slow-disconnected")
        return PlainTextResponse("too late")

    async def context(request: Request) -> Response:
        rid = request.path_params["rid"]
        before = request_id.get()
        request_id.set(rid)
        await ctx.barrier.wait()
        await asyncio.sleep(0)
        return JSONResponse(
            {"before": before, "after": request_id.get(), "header": header_id.get()}
        )

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                ctx.events.append(("disconnect", message["code"]))
                return
            text = message.get("text")
            if text == "bye":
                await websocket.close(4001, "bye")
                return
            if text is not None:
                await websocket.send_text("echo:" + text)
            else:
                await websocket.send_bytes(message["bytes"][::-1])

    async def ws_subprotocol(websocket: WebSocket) -> None:
        await websocket.accept(subprotocol="chat")
        await websocket.close()

    async def ws_deny(websocket: WebSocket) -> None:
        # the websocket.http.response extension, which Squall advertises
        denial = PlainTextResponse("go away", status_code=401, headers={"x-why": "token"})
        await websocket.send_denial_response(denial)

    async def ws_reject(websocket: WebSocket) -> None:
        await websocket.close(code=1008)  # before accept: a 403

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        ctx.events.append("startup")
        yield {"greeting": "hello from lifespan"}
        ctx.events.append("shutdown")

    app = Starlette(
        routes=[
            Route("/items/{item_id:int}", item),
            Route("/echo", echo, methods=["POST"]),
            Route("/plain", plain),
            Route("/cookies", cookies),
            Route("/form", form, methods=["POST"]),
            Route("/upload", upload, methods=["POST"]),
            Route("/stream", stream),
            Route("/sse", sse),
            Route("/forever", forever),
            Route("/file", file, methods=["GET", "HEAD"]),
            Route("/background", background),
            Route("/state", state),
            Route("/slow", slow),
            Route("/ctx/{rid}", context),
            WebSocketRoute("/ws", ws),
            WebSocketRoute("/ws-subprotocol", ws_subprotocol),
            WebSocketRoute("/ws-deny", ws_deny),
            WebSocketRoute("/ws-reject", ws_reject),
        ],
        lifespan=lifespan,
    )

    async def outer(scope: Any, receive: Any, send: Any) -> None:
        """Records the HTTP messages sent; sets a contextvar from a request header."""
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"x-rid":
                header_id.set(value.decode())

        async def recording_send(message: Any) -> None:
            ctx.sent.append(message["type"])
            await send(message)

        await app(scope, receive, recording_send)

    return outer, ctx


def test_routing_and_json(serve, http, protocol):
    app, _ = make_app()
    with http(serve(app)) as client:
        check_routing_and_json(client, protocol)


def test_server_sent_events(serve, http):
    app, _ = make_app()
    with http(serve(app)) as client:
        events = read_sse(client)
    assert events == SSE_EVENTS


def test_client_disconnect_stops_the_stream(serve, http):
    app, ctx = make_app()
    read_first_chunk_then_close(http(serve(app)), "/forever", b"first\n")
    wait_until(lambda: ctx.events, what="the stream to stop")
    # Starlette's listener sees http.disconnect and cancels the generator.
    assert ctx.events == [("stream-stopped", "CancelledError")]


def test_http2_stream_reset_stops_the_stream(serve):
    app, ctx = make_app()
    check_stream_reset(serve(app), ctx)


def test_file_response_uses_pathsend(serve, http, tmp_path):
    data = payload(2 * 1024 * 1024 + 5, seed=7)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    app, ctx = make_app(path)
    with http(serve(app)) as client:
        response = client.get("/file")
        assert response.status_code == 200
        assert response.content == data
        assert response.headers["content-length"] == str(len(data))
        assert "etag" in response.headers
        # Starlette's FileResponse sends the path when the server advertises pathsend.
        assert ctx.sent == ["http.response.start", "http.response.pathsend"]
        ranged = client.get("/file", headers={"range": "bytes=100-1099"})
        assert ranged.status_code == 206
        assert ranged.content == data[100:1100]
        assert ranged.headers["content-range"] == f"bytes 100-1099/{len(data)}"
        head = client.head("/file")
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["content-length"] == str(len(data))


def test_websocket(serve, protocol):
    app, ctx = make_app()
    check_websocket_echo(serve(app), protocol, ctx.events)


def test_websocket_subprotocol_and_denials(serve, protocol):
    app, _ = make_app()
    srv = serve(app)
    accepted = 101 if protocol == "http1" else 200
    status, headers, _ = websocket_handshake(srv, protocol, "/ws-subprotocol", ["super", "chat"])
    assert (status, headers["sec-websocket-protocol"]) == (accepted, "chat")
    status, headers, body = websocket_handshake(srv, protocol, "/ws-deny")
    assert (status, headers["x-why"], body) == (401, "token", b"go away")
    status, _, _ = websocket_handshake(srv, protocol, "/ws-reject")
    assert status == 403


def test_abandoned_request_sees_the_disconnect(serve, protocol):
    app, ctx = make_app()
    check_abandoned_request(serve(app), protocol, ctx)
