"""Django (ASGI) with Channels under Squall, over HTTP/1.1 and HTTP/2.

The settings are configured here, with this module as ``ROOT_URLCONF``; the
ASGI application is Channels' ``ProtocolTypeRouter``: Django's ASGI handler
for HTTP, a ``URLRouter`` with an ``AsyncWebsocketConsumer`` for WebSockets,
and a small lifespan handler (Django itself has none) whose state the views
read from ``request.scope["state"]``.

Covered: async views and JSON, url-encoded and multipart bodies of several
MiB (``request.POST``/``request.FILES``), ``StreamingHttpResponse`` over an
async iterator and Server-Sent Events, a client that leaves mid-stream and an
abandoned request (Django cancels the view when it sees ``http.disconnect``),
``FileResponse``, lifespan state, WebSockets through Channels (HTTP/1.1 and
RFC 8441 over HTTP/2), contextvars across concurrent requests (one set by an
async middleware) and pipelined HTTP/1.1 requests; also cookies both ways, an
HTTP/2 stream reset mid-stream and a consumer that rejects the handshake.
Django 5 has no background tasks, so there is no such test here.

The URL configuration is module-global, so the views read the per-test
records from ``CTX``, which the autouse ``ctx`` fixture replaces for each test.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import django
import pytest
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="squall-compat-tests",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=["channels"],
        MIDDLEWARE=[f"{__name__}.rid_middleware"],
        DATABASES={},
        USE_TZ=True,
        DATA_UPLOAD_MAX_MEMORY_SIZE=16 * 1024 * 1024,
        ASGI_APPLICATION=f"{__name__}.application",
    )
    django.setup()

from asgiref.sync import markcoroutinefunction
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import ProtocolTypeRouter, URLRouter
from django.core.asgi import get_asgi_application
from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.urls import path
from django.views.decorators.http import require_GET, require_POST

from tests.compat.helpers import (
    BIG_FIELD_NAMES,
    CONCURRENT,
    FORM_TEXT,
    SSE_EVENTS,
    Gate,
    LoopBarrier,
    check_abandoned_request,
    check_contextvars,
    check_cookies,
    check_form_echo,
    check_incremental_stream,
    check_multipart_echo,
    check_pipelining,
    check_routing_and_json,
    check_stream_reset,
    check_websocket_echo,
    endless_stream,
    form_data,
    form_echo,
    gated_stream,
    multipart_files,
    payload,
    read_first_chunk_then_close,
    read_sse,
    sha256,
    sse_text,
    wait_until,
    websocket_handshake,
)

pytestmark = [
    pytest.mark.usefixtures("fast_tick"),
    pytest.mark.timeout(30),
    # FileResponse iterates a file, which Django's ASGI handler turns into a list first.
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous"),
]

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("dj_rid", default=None)
header_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("dj_hid", default=None)

CTX = SimpleNamespace()


@pytest.fixture(autouse=True)
def ctx() -> SimpleNamespace:
    """Fresh records for the views of this test."""
    global CTX
    CTX = SimpleNamespace(events=[], gate=Gate(), barrier=LoopBarrier(CONCURRENT), file_path=None)
    return CTX


def rid_middleware(
    get_response: Callable[[HttpRequest], Awaitable[HttpResponse]],
) -> Callable[[HttpRequest], Awaitable[HttpResponse]]:
    """An async middleware that sets a contextvar from the ``x-rid`` header."""

    async def middleware(request: HttpRequest) -> HttpResponse:
        rid = request.headers.get("x-rid")
        if rid is not None:
            header_id.set(rid)
        return await get_response(request)

    markcoroutinefunction(middleware)
    return middleware


rid_middleware.async_capable = True  # type: ignore[attr-defined]
rid_middleware.sync_capable = False  # type: ignore[attr-defined]


# -- views -------------------------------------------------------------------------------


@require_GET
async def item(request: HttpRequest, item_id: int) -> HttpResponse:
    return JsonResponse(
        {
            "id": item_id,
            "q": request.GET.get("q"),
            "http_version": request.scope["http_version"],  # type: ignore[attr-defined]
        }
    )


@require_POST
async def echo(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"received": json.loads(request.body)}, status=201)


@require_GET
async def plain(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


async def cookies(request: HttpRequest) -> HttpResponse:
    response = JsonResponse(request.COOKIES)
    response.set_cookie("a", "1")
    response.set_cookie("b", "2")
    return response


@require_POST
async def form(request: HttpRequest) -> HttpResponse:
    data = request.POST
    return JsonResponse(form_echo(data["text"], [data[name] for name in BIG_FIELD_NAMES]))


@require_POST
async def upload(request: HttpRequest) -> HttpResponse:
    files = {}
    for name in ("a", "b"):
        uploaded = request.FILES[name]
        content = uploaded.read()
        files[name] = {"filename": uploaded.name, "size": len(content), "sha": sha256(content)}
    return JsonResponse({"field": request.POST["field"], "files": files})


async def stream(request: HttpRequest) -> HttpResponse:
    return StreamingHttpResponse(gated_stream(CTX), content_type="text/plain")


async def sse(request: HttpRequest) -> HttpResponse:
    response = StreamingHttpResponse(sse_text(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    return response


async def forever(request: HttpRequest) -> HttpResponse:
    return StreamingHttpResponse(endless_stream(CTX), content_type="text/plain")


async def file(request: HttpRequest) -> HttpResponse:
    return FileResponse(open(CTX.file_path, "rb"), content_type="application/octet-stream")


async def state(request: HttpRequest) -> HttpResponse:
    scope_state = request.scope["state"]  # type: ignore[attr-defined]
    seen = dict(scope_state)
    scope_state["mutated"] = True  # a copy per request: not seen by the next
    return JsonResponse({"greeting": seen.get("greeting"), "mutated": "mutated" in seen})


async def slow(request: HttpRequest) -> HttpResponse:
    CTX.events.append("slow-start")
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        CTX.events.append("slow-disconnected")
        raise
    return HttpResponse("too late")


async def context(request: HttpRequest, rid: str) -> HttpResponse:
    before = request_id.get()
    request_id.set(rid)
    await CTX.barrier.wait()
    await asyncio.sleep(0)
    return JsonResponse({"before": before, "after": request_id.get(), "header": header_id.get()})


urlpatterns = [
    path("items/<int:item_id>", item),
    path("echo", echo),
    path("plain", plain),
    path("cookies", cookies),
    path("form", form),
    path("upload", upload),
    path("stream", stream),
    path("sse", sse),
    path("forever", forever),
    path("file", file),
    path("state", state),
    path("slow", slow),
    path("ctx/<str:rid>", context),
]


# -- WebSocket (Channels) and lifespan -----------------------------------------------------


class EchoConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    async def connect(self) -> None:
        await self.accept()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data == "bye":
            await self.close(code=4001, reason="bye")
        elif text_data is not None:
            await self.send(text_data="echo:" + text_data)
        else:
            assert bytes_data is not None
            await self.send(bytes_data=bytes_data[::-1])

    async def disconnect(self, code: int) -> None:
        CTX.events.append(("disconnect", code))


class RejectConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    async def connect(self) -> None:
        await self.close()  # before accept: a 403


async def lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Django has no lifespan support; this sets the state its views read."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            CTX.events.append("startup")
            scope["state"]["greeting"] = "hello from lifespan"
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            CTX.events.append("shutdown")
            await send({"type": "lifespan.shutdown.complete"})
            return


application = ProtocolTypeRouter(
    {
        "http": get_asgi_application(),
        "websocket": URLRouter(
            [path("ws", EchoConsumer.as_asgi()), path("ws-reject", RejectConsumer.as_asgi())]
        ),
        "lifespan": lifespan,
    }
)


# -- tests -------------------------------------------------------------------------------


def test_routing_and_json(serve, http, protocol):
    with http(serve(application)) as client:
        check_routing_and_json(client, protocol)


def test_cookies(serve, http, protocol):
    srv = serve(application)
    with http(srv) as client:
        check_cookies(client, srv, protocol)


def test_urlencoded_form(serve, http):
    with http(serve(application)) as client:
        response = client.post("/form", data=form_data())
    assert response.status_code == 200, response.text
    check_form_echo(response.json())


def test_multipart_upload(serve, http):
    with http(serve(application)) as client:
        response = client.post("/upload", data={"field": FORM_TEXT}, files=multipart_files())
    assert response.status_code == 200, response.text
    check_multipart_echo(response.json())


def test_streaming_response_is_incremental(serve, http, ctx):
    with http(serve(application)) as client:
        check_incremental_stream(client, ctx)


def test_server_sent_events(serve, http):
    with http(serve(application)) as client:
        events = read_sse(client)
    assert events == SSE_EVENTS


def test_client_disconnect_stops_the_stream(serve, http, ctx):
    read_first_chunk_then_close(http(serve(application)), "/forever", b"first\n")
    wait_until(lambda: ctx.events, what="the stream to stop")
    # Django's disconnect listener cancels the task that sends the response.
    assert ctx.events == [("stream-stopped", "CancelledError")]


def test_http2_stream_reset_stops_the_stream(serve, ctx):
    check_stream_reset(serve(application), ctx)


def test_file_response(serve, http, ctx, tmp_path):
    data = payload(2 * 1024 * 1024 + 5, seed=11)
    ctx.file_path = tmp_path / "blob.bin"
    ctx.file_path.write_bytes(data)
    with http(serve(application)) as client:
        response = client.get("/file")
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-length"] == str(len(data))


def test_lifespan_state(serve, http, ctx):
    srv = serve(application, lifespan="on")
    assert ctx.events == ["startup"]
    with http(srv) as client:
        first = client.get("/state").json()
        second = client.get("/state").json()
    assert first == {"greeting": "hello from lifespan", "mutated": False}
    assert second == first
    srv.stop()
    assert ctx.events == ["startup", "shutdown"]


def test_websocket_through_channels(serve, protocol, ctx):
    check_websocket_echo(serve(application), protocol, ctx.events)


def test_websocket_rejected_by_the_consumer(serve, protocol):
    status, _, _ = websocket_handshake(serve(application), protocol, "/ws-reject")
    assert status == 403


def test_abandoned_request_is_cancelled(serve, protocol, ctx):
    check_abandoned_request(serve(application), protocol, ctx)


def test_contextvars_are_isolated_between_concurrent_requests(serve, protocol):
    check_contextvars(serve(application), protocol)


def test_pipelined_requests(serve, http_impl):
    check_pipelining(serve(application, http=http_impl).port)
