"""Litestar under Squall, over HTTP/1.1 and HTTP/2.

Typed route handlers and JSON, url-encoded and multipart bodies of several
MiB (a dataclass with ``UploadFile`` fields), ``Stream`` and
``ServerSentEvent`` responses, a client that leaves mid-stream (Litestar's
listener cancels the stream), ``File``, ``BackgroundTask``, lifespan context
managers with ``app.state``, WebSockets (HTTP/1.1 and RFC 8441 over HTTP/2),
a request abandoned by its client (seen by the handler as
``http.disconnect``), contextvars across concurrent requests (set by a
middleware) and pipelined HTTP/1.1 requests. Also: cookies both ways and an
HTTP/2 stream reset mid-stream.

Litestar resolves the handlers' annotations from this module's globals, so
the dataclass and the annotated types are module-level names.

Checks that read the same for FastAPI, Litestar, Quart and Starlette are
written once in test_shared.py, which runs them on this module's make_app.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any

import pytest
from litestar import Litestar, MediaType, Request, Response, get, post, websocket
from litestar.background_tasks import BackgroundTask
from litestar.connection import WebSocket
from litestar.datastructures import Cookie, State, UploadFile
from litestar.enums import RequestEncodingType
from litestar.exceptions import WebSocketDisconnect
from litestar.params import Body
from litestar.response import File, ServerSentEvent, ServerSentEventMessage, Stream
from litestar.types import ASGIApp, Receive, Scope, Send

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
    wait_until,
)

pytestmark = [
    pytest.mark.usefixtures("fast_tick"),
    pytest.mark.timeout(30),
    # 2.25 deprecates the inferred parameter style, whose replacements (FromPath,
    # JSONBody) do not exist in the oldest Litestar the compat extra allows.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:litestar"),
]

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("ls_rid", default=None)
header_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("ls_hid", default=None)


@dataclass
class UploadForm:
    field: str
    a: UploadFile
    b: UploadFile


def rid_middleware(app: ASGIApp) -> ASGIApp:
    """Sets a contextvar from the ``x-rid`` header, for the handler to read after an await."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        for name, value in scope.get("headers", ()):
            if name == b"x-rid":
                header_id.set(value.decode())
        await app(scope, receive, send)

    return middleware


def make_app(file_path: Path | None = None) -> tuple[Litestar, SimpleNamespace]:
    """A Litestar app and what it records (``ctx``)."""
    ctx = SimpleNamespace(
        events=[],
        gate=Gate(),
        barrier=LoopBarrier(CONCURRENT),
        file_path=file_path,
    )

    @get("/items/{item_id:int}")
    async def item(item_id: int, request: Request, q: str | None = None) -> dict[str, Any]:
        return {"id": item_id, "q": q, "http_version": request.scope["http_version"]}

    @post("/echo")  # POST answers 201 by default
    async def echo(data: dict[str, Any]) -> dict[str, Any]:
        return {"received": data}

    @get("/plain", media_type=MediaType.TEXT)
    async def plain() -> str:
        return "ok"

    @get("/cookies")
    async def cookies(request: Request) -> Response[dict[str, str]]:
        return Response(
            dict(request.cookies), cookies=[Cookie(key="a", value="1"), Cookie(key="b", value="2")]
        )

    @post("/form", status_code=200)
    async def form(
        data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> dict[str, Any]:
        return form_echo(data["text"], [data[name] for name in BIG_FIELD_NAMES])

    @post("/upload", status_code=200)
    async def upload(
        data: Annotated[UploadForm, Body(media_type=RequestEncodingType.MULTI_PART)],
    ) -> dict[str, Any]:
        files = {}
        for name, file in (("a", data.a), ("b", data.b)):
            content = await file.read()
            files[name] = {"filename": file.filename, "size": len(content), "sha": sha256(content)}
        return {"field": data.field, "files": files}

    @get("/stream")
    async def stream() -> Stream:
        return Stream(gated_stream(ctx), media_type=MediaType.TEXT)

    @get("/sse")
    async def sse() -> ServerSentEvent:
        async def events() -> AsyncIterator[ServerSentEventMessage]:
            for i in range(3):
                yield ServerSentEventMessage(data=json.dumps({"n": i}), event="tick", id=i)
            yield ServerSentEventMessage(data="line one\nline two")

        return ServerSentEvent(events())

    @get("/forever")
    async def forever() -> Stream:
        return Stream(endless_stream(ctx), media_type=MediaType.TEXT)

    @get("/file")
    async def file() -> File:
        return File(path=ctx.file_path, media_type="application/octet-stream")

    @get("/background")
    async def background() -> Response[dict[str, bool]]:
        async def task() -> None:
            await ctx.gate.wait()
            ctx.events.append("background-done")

        return Response({"queued": True}, background=BackgroundTask(task))

    @get("/state")
    async def state(state: State, request: Request) -> dict[str, Any]:
        seen = dict(request.scope["state"])
        request.state.mutated = True  # the scope's state: a copy per request
        return {"greeting": state.greeting, "mutated": "mutated" in seen}

    @get("/slow", media_type=MediaType.TEXT)
    async def slow(request: Request) -> str:
        ctx.events.append("slow-start")
        while (await request.receive())["type"] != "http.disconnect":
            pass
        ctx.events.append("slow-disconnected")
        return "too late"

    @get("/ctx/{rid:str}")
    async def context(rid: str) -> dict[str, str | None]:
        before = request_id.get()
        request_id.set(rid)
        await ctx.barrier.wait()
        await asyncio.sleep(0)
        return {"before": before, "after": request_id.get(), "header": header_id.get()}

    @websocket("/ws")
    async def ws(socket: WebSocket) -> None:
        await socket.accept()
        try:
            while True:
                message = await socket.receive()
                if message["type"] == "websocket.disconnect":
                    raise WebSocketDisconnect(detail="disconnect", code=message["code"])
                text = message.get("text")
                if text == "bye":
                    await socket.close(code=4001, reason="bye")
                    return
                if text is not None:
                    await socket.send_text("echo:" + text)
                else:
                    await socket.send_bytes(message["bytes"][::-1])
        except WebSocketDisconnect as exc:
            ctx.events.append(("disconnect", exc.code))

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        ctx.events.append("startup")
        app.state.greeting = "hello from lifespan"
        yield
        ctx.events.append("shutdown")

    app = Litestar(
        route_handlers=[
            item,
            echo,
            plain,
            cookies,
            form,
            upload,
            stream,
            sse,
            forever,
            file,
            background,
            state,
            slow,
            context,
            ws,
        ],
        lifespan=[lifespan],
        middleware=[rid_middleware],
        request_max_body_size=16 * 1024 * 1024,
    )
    return app, ctx


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
    assert ctx.events == [("stream-stopped", "CancelledError")]


def test_http2_stream_reset_stops_the_stream(serve):
    app, ctx = make_app()
    check_stream_reset(serve(app), ctx)


def test_file_response(serve, http, tmp_path):
    data = payload(2 * 1024 * 1024 + 5, seed=9)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    app, _ = make_app(path)
    with http(serve(app)) as client:
        response = client.get("/file")
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-length"] == str(len(data))


def test_websocket(serve, protocol):
    app, ctx = make_app()
    check_websocket_echo(serve(app), protocol, ctx.events)


def test_abandoned_request_sees_the_disconnect(serve, protocol):
    app, ctx = make_app()
    check_abandoned_request(serve(app), protocol, ctx)
