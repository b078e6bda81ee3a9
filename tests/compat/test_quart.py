"""Quart under Squall, over HTTP/1.1 and HTTP/2.

Routing and JSON, url-encoded and multipart bodies of several MiB
(``request.form``/``request.files``), streamed async-generator responses and
Server-Sent Events, a client that leaves mid-stream (Quart cancels the
handler), ``send_file``, ``add_background_task``, ``before_serving`` /
``after_serving`` over the lifespan protocol, WebSockets (HTTP/1.1 and RFC
8441 over HTTP/2), a request abandoned by its client (Quart cancels the
handler), contextvars across concurrent requests (one set in a
``before_request`` hook) and pipelined HTTP/1.1 requests. Also: cookies both
ways and an HTTP/2 stream reset mid-stream.

Checks that read the same for FastAPI, Litestar, Quart and Starlette are
written once in test_shared.py, which runs them on this module's make_app.
"""

from __future__ import annotations

import asyncio
import contextvars
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from quart import Quart, make_response, request, send_file, websocket

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
)

pytestmark = [pytest.mark.usefixtures("fast_tick"), pytest.mark.timeout(30)]

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("qu_rid", default=None)
header_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("qu_hid", default=None)


def make_app(file_path: Path | None = None) -> tuple[Quart, SimpleNamespace]:
    """A Quart app and what it records (``ctx``)."""
    ctx = SimpleNamespace(
        events=[],
        gate=Gate(),
        barrier=LoopBarrier(CONCURRENT),
        file_path=file_path,
    )
    app = Quart(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 16 * 1024 * 1024
    app.config["MAX_FORM_MEMORY_SIZE"] = 8 * 1024 * 1024  # fields of ~850 KB

    @app.before_serving
    async def startup() -> None:
        ctx.events.append("startup")
        app.greeting = "hello from lifespan"  # type: ignore[attr-defined]

    @app.after_serving
    async def shutdown() -> None:
        ctx.events.append("shutdown")

    @app.before_request
    async def rid_from_header() -> None:
        rid = request.headers.get("x-rid")
        if rid is not None:
            header_id.set(rid)

    @app.get("/items/<int:item_id>")
    async def item(item_id: int) -> Any:
        return {
            "id": item_id,
            "q": request.args.get("q"),
            "http_version": request.scope["http_version"],
        }

    @app.post("/echo")
    async def echo() -> Any:
        return {"received": await request.get_json()}, 201

    @app.get("/plain")
    async def plain() -> Any:
        return "ok"

    @app.get("/cookies")
    async def cookies() -> Any:
        response = await make_response(dict(request.cookies))
        response.set_cookie("a", "1")
        response.set_cookie("b", "2")
        return response

    @app.post("/form")
    async def form() -> Any:
        data = await request.form
        return form_echo(data["text"], [data[name] for name in BIG_FIELD_NAMES])

    @app.post("/upload")
    async def upload() -> Any:
        data = await request.form
        uploaded = await request.files
        files = {}
        for name in ("a", "b"):
            storage = uploaded[name]
            content = storage.read()
            files[name] = {
                "filename": storage.filename,
                "size": len(content),
                "sha": sha256(content),
            }
        return {"field": data["field"], "files": files}

    @app.get("/stream")
    async def stream() -> Any:
        return gated_stream(ctx), 200, {"content-type": "text/plain"}

    @app.get("/sse")
    async def sse() -> Any:
        events = (line.encode() async for line in sse_text())
        return events, 200, {"content-type": "text/event-stream", "cache-control": "no-cache"}

    @app.get("/forever")
    async def forever() -> Any:
        return endless_stream(ctx), 200, {"content-type": "text/plain"}

    @app.get("/file")
    async def file() -> Any:
        return await send_file(ctx.file_path, mimetype="application/octet-stream", conditional=True)

    @app.get("/background")
    async def background() -> Any:
        async def task() -> None:
            await ctx.gate.wait()
            ctx.events.append("background-done")

        app.add_background_task(task)
        return {"queued": True}

    @app.get("/state")
    async def state() -> Any:
        seen = dict(request.scope["state"])
        request.scope["state"]["mutated"] = True  # a copy per request: not seen by the next
        return {"greeting": app.greeting, "mutated": "mutated" in seen}  # type: ignore[attr-defined]

    @app.get("/slow")
    async def slow() -> Any:
        ctx.events.append("slow-start")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            ctx.events.append("slow-disconnected")
            raise
        return "too late"

    @app.get("/ctx/<rid>")
    async def context(rid: str) -> Any:
        before = request_id.get()
        request_id.set(rid)
        await ctx.barrier.wait()
        await asyncio.sleep(0)
        return {"before": before, "after": request_id.get(), "header": header_id.get()}

    @app.websocket("/ws")
    async def ws() -> None:
        await websocket.accept()
        try:
            while True:
                message = await websocket.receive()
                if message == "bye":
                    await websocket.close(4001, "bye")
                    return
                if isinstance(message, str):
                    await websocket.send("echo:" + message)
                else:
                    await websocket.send(message[::-1])
        except asyncio.CancelledError:
            # Quart cancels the handler on websocket.disconnect (the code is not exposed).
            ctx.events.append(("disconnect", "cancelled"))
            raise

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
    data = payload(2 * 1024 * 1024 + 5, seed=10)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    app, _ = make_app(path)
    with http(serve(app)) as client:
        response = client.get("/file")
        ranged = client.get("/file", headers={"range": "bytes=100-1099"})
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-length"] == str(len(data))
    assert ranged.status_code == 206
    assert ranged.content == data[100:1100]


def test_websocket(serve, protocol):
    app, ctx = make_app()
    check_websocket_echo(serve(app), protocol, ctx.events, disconnect=("disconnect", "cancelled"))


def test_abandoned_request_is_cancelled(serve, protocol):
    app, ctx = make_app()
    check_abandoned_request(serve(app), protocol, ctx)
