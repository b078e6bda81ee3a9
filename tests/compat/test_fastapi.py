"""FastAPI under Squall, over HTTP/1.1 and HTTP/2.

Typed path, query and body parameters (Pydantic), ``Form``/``UploadFile``
uploads of several MiB, ``StreamingResponse`` and FastAPI's own Server-Sent
Events (``EventSourceResponse``), a client that leaves mid-stream,
``FileResponse``, ``BackgroundTasks``, lifespan state, WebSockets (HTTP/1.1
and RFC 8441 over HTTP/2), a request abandoned by its client, contextvars
across concurrent requests (set by a dependency) and pipelined HTTP/1.1
requests. Also: cookies both ways and an HTTP/2 stream reset mid-stream.

FastAPI resolves the endpoints' annotations from this module's globals, so the
models and ``Annotated`` parameters are module-level names.

Checks that read the same for FastAPI, Litestar, Quart and Starlette are
written once in test_shared.py, which runs them on this module's make_app.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any

import pytest
from fastapi import (
    BackgroundTasks,
    Depends,
    FastAPI,
    File,
    Form,
    Header,
    Request,
    Response,
    UploadFile,
    WebSocket,
    WebSocketDisconnect,
)
from fastapi.responses import FileResponse, PlainTextResponse, StreamingResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel

from tests.compat.helpers import (
    CONCURRENT,
    Gate,
    LoopBarrier,
    check_abandoned_request,
    check_routing_and_json,
    check_stream_reset,
    check_websocket_echo,
    form_echo,
    gated_stream,
    payload,
    read_first_chunk_then_close,
    read_sse,
    sha256,
    wait_until,
)

pytestmark = [pytest.mark.usefixtures("fast_tick"), pytest.mark.timeout(30)]

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("fa_rid", default=None)
header_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("fa_hid", default=None)


class Item(BaseModel):
    id: int
    q: str | None
    http_version: str


class Echo(BaseModel):
    received: dict[str, Any]


async def rid_from_header(x_rid: Annotated[str | None, Header()] = None) -> None:
    """A dependency that sets a contextvar the endpoint reads after an await."""
    if x_rid is not None:
        header_id.set(x_rid)


def make_app(file_path: Path | None = None) -> tuple[FastAPI, SimpleNamespace]:
    """A FastAPI app and what it records (``ctx``)."""
    ctx = SimpleNamespace(
        events=[],
        gate=Gate(),
        barrier=LoopBarrier(CONCURRENT),
        file_path=file_path,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        ctx.events.append("startup")
        yield {"greeting": "hello from lifespan"}
        ctx.events.append("shutdown")

    app = FastAPI(lifespan=lifespan)

    @app.get("/items/{item_id:int}")
    async def item(item_id: int, request: Request, q: str | None = None) -> Item:
        return Item(id=item_id, q=q, http_version=request.scope["http_version"])

    @app.post("/echo", status_code=201)
    async def echo(body: dict[str, Any]) -> Echo:
        return Echo(received=body)

    @app.get("/plain", response_class=PlainTextResponse)
    async def plain() -> str:
        return "ok"

    @app.get("/cookies")
    async def cookies(request: Request, response: Response) -> dict[str, str]:
        response.set_cookie("a", "1")
        response.set_cookie("b", "2")
        return dict(request.cookies)

    @app.post("/form")
    async def form(
        text: Annotated[str, Form()],
        big0: Annotated[str, Form()],
        big1: Annotated[str, Form()],
        big2: Annotated[str, Form()],
        big3: Annotated[str, Form()],
        big4: Annotated[str, Form()],
    ) -> dict[str, Any]:
        return form_echo(text, [big0, big1, big2, big3, big4])

    @app.post("/upload")
    async def upload(
        field: Annotated[str, Form()],
        a: Annotated[UploadFile, File()],
        b: Annotated[UploadFile, File()],
    ) -> dict[str, Any]:
        files = {}
        for name, file in (("a", a), ("b", b)):
            content = await file.read()
            files[name] = {"filename": file.filename, "size": len(content), "sha": sha256(content)}
        return {"field": field, "files": files}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        return StreamingResponse(gated_stream(ctx), media_type="text/plain")

    @app.get("/sse", response_class=EventSourceResponse)
    async def sse() -> AsyncIterable[ServerSentEvent]:
        for i in range(3):
            yield ServerSentEvent(data={"n": i}, event="tick", id=str(i))
        yield ServerSentEvent(raw_data="line one\nline two")

    @app.get("/sse-forever", response_class=EventSourceResponse)
    async def sse_forever() -> AsyncIterable[ServerSentEvent]:
        try:
            yield ServerSentEvent(raw_data="first", id="0")
            n = 0
            while True:
                await asyncio.sleep(0.005)
                n += 1
                yield ServerSentEvent(raw_data="more", id=str(n))
        except BaseException as exc:
            ctx.events.append(("stream-stopped", type(exc).__name__))
            raise

    @app.get("/file")
    async def file() -> FileResponse:
        return FileResponse(ctx.file_path, media_type="application/octet-stream")

    @app.get("/background")
    async def background(tasks: BackgroundTasks) -> dict[str, bool]:
        async def task() -> None:
            await ctx.gate.wait()
            ctx.events.append("background-done")

        tasks.add_task(task)
        return {"queued": True}

    @app.get("/state")
    async def state(request: Request) -> dict[str, Any]:
        seen = dict(request.scope["state"])
        request.state.mutated = True
        return {"greeting": request.state.greeting, "mutated": "mutated" in seen}

    @app.get("/slow")
    async def slow(request: Request) -> str:
        ctx.events.append("slow-start")
        while not await request.is_disconnected():
            await asyncio.sleep(0.005)
        ctx.events.append("slow-disconnected")
        return "too late"

    @app.get("/ctx/{rid}", dependencies=[Depends(rid_from_header)])
    async def context(rid: str) -> dict[str, str | None]:
        before = request_id.get()
        request_id.set(rid)
        await ctx.barrier.wait()
        await asyncio.sleep(0)
        return {"before": before, "after": request_id.get(), "header": header_id.get()}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    raise WebSocketDisconnect(message["code"])
                text = message.get("text")
                if text == "bye":
                    await websocket.close(4001, "bye")
                    return
                if text is not None:
                    await websocket.send_text("echo:" + text)
                else:
                    await websocket.send_bytes(message["bytes"][::-1])
        except WebSocketDisconnect as exc:
            ctx.events.append(("disconnect", exc.code))

    return app, ctx


def test_routing_and_json(serve, http, protocol):
    app, _ = make_app()
    with http(serve(app)) as client:
        check_routing_and_json(client, protocol)
        invalid = client.post(
            "/echo", content=b"[1, 2]", headers={"content-type": "application/json"}
        )
        assert invalid.status_code == 422  # Pydantic validation


def test_server_sent_events(serve, http):
    app, _ = make_app()
    with http(serve(app)) as client:
        events = read_sse(client)
    assert [(e["event"], e["id"], json.loads(e["data"])) for e in events[:3]] == [
        ("tick", "0", {"n": 0}),
        ("tick", "1", {"n": 1}),
        ("tick", "2", {"n": 2}),
    ]
    assert events[3:] == [{"data": "line one\nline two"}]


def test_client_disconnect_stops_the_event_stream(serve, http):
    app, ctx = make_app()
    read_first_chunk_then_close(http(serve(app)), "/sse-forever", b"data: first\nid: 0\n\n")
    wait_until(lambda: ctx.events, what="the stream to stop")
    assert ctx.events == [("stream-stopped", "CancelledError")]


def test_http2_stream_reset_stops_the_stream(serve):
    app, ctx = make_app()
    check_stream_reset(serve(app), ctx, "/sse-forever")


def test_file_response(serve, http, tmp_path):
    data = payload(2 * 1024 * 1024 + 5, seed=8)
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
