"""Regression tests for the connection core: one bad stream never hurts the others,
HTTP/2 streams have the deadlines of an HTTP/1.1 request, apps are tracked however
their task is started, and every request gets a scope of its own.

Real servers on 127.0.0.1:0 (in a thread), real clients (the ``h2`` library's client
over a socket, httpx).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import h2.errors
import h2.settings
import httpx
import pytest

from tests.integration.helpers import PROPAGATE_LOGS, wait_until
from tests.integration.http2_client import H2Client

pytestmark = pytest.mark.usefixtures("fast_tick")

SLACK = 2.0  # beyond a deadline, the most a busy machine may add


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/read``: read the whole body, then answer; ``/started``: answer first, then
    read; ``/big``: 1 MiB; anything else: "ok". WebSockets are accepted."""
    if scope["type"] == "lifespan":
        return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        return
    path = scope["path"]
    if path == "/read":
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"%d" % len(body)})
    elif path == "/started":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"begun", "more_body": True})
        while (await receive())["type"] != "http.disconnect":
            pass
    elif path == "/big":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x" * (1 << 20)})
    else:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        assert record.exc_info is None, record.getMessage()
        assert "Fatal error" not in record.getMessage(), record.getMessage()


# -- one bad stream on a multiplexed connection ------------------------------------


@pytest.mark.parametrize("path", ["no-slash", "*", "http://[bad/x", "/a b"])
def test_bad_extended_connect_path_is_refused_on_its_stream_only(
    serve: Any, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    caplog.set_level(logging.INFO)
    srv = serve(app, log_config=PROPAGATE_LOGS)
    client = H2Client(srv.port)
    client.conn.config.validate_outbound_headers = False
    before = client.get("/before")  # a stream in use on the same connection
    assert (before.status, bytes(before.data)) == (200, b"ok")
    stream_id = client.request(
        path,
        "CONNECT",
        headers=[(b":protocol", b"websocket"), (b"sec-websocket-version", b"13")],
        end_stream=False,
    )
    bad = client.response(stream_id)
    assert bad.reset is not None or bad.status == 400, bad
    after = client.get("/after")
    assert (after.status, bytes(after.data)) == (200, b"ok")
    assert client.goaway is None and not client.closed
    no_tracebacks(caplog)


# -- per-stream deadlines --------------------------------------------------------------


def test_stalled_request_body_on_a_stream_gets_408_and_the_connection_lives(
    serve: Any,
) -> None:
    srv = serve(app, timeout_request_body=0.5)
    client = H2Client(srv.port, timeout=10)
    started = time.monotonic()
    stalled = client.request("/read", "POST", end_stream=False)
    client.send_body(stalled, b"0123456789", end_stream=False)  # then nothing more
    other = client.get("/")  # served meanwhile
    assert (other.status, bytes(other.data)) == (200, b"ok")
    result = client.response(stalled, timeout=0.5 + SLACK + 1)
    assert result.status == 408
    assert 0.4 <= time.monotonic() - started <= 0.5 + SLACK
    after = client.get("/after")
    assert after.status == 200 and client.goaway is None


def test_stalled_body_after_the_response_began_resets_the_stream(serve: Any) -> None:
    srv = serve(app, timeout_request_body=0.5)
    client = H2Client(srv.port, timeout=10)
    stalled = client.request("/started", "POST", end_stream=False)
    client.send_body(stalled, b"0123", end_stream=False)
    client.wait(lambda: client.streams.get(stalled) and client.streams[stalled].data)
    client.wait(lambda: client.streams[stalled].done, timeout=0.5 + SLACK + 1)
    result = client.streams[stalled]
    assert result.status == 200 and bytes(result.data) == b"begun"
    assert result.reset == h2.errors.ErrorCodes.CANCEL
    assert client.get("/").status == 200 and client.goaway is None


def test_a_body_the_app_does_not_read_is_not_timed(serve: Any) -> None:
    """Held back by flow control (the app is not reading), not the client's fault."""
    gate: list[int] = []

    async def slow_reader(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while not gate:
            await asyncio.sleep(0.01)
        await app(scope, receive, send)

    srv = serve(slow_reader, timeout_request_body=0.3)
    client = H2Client(srv.port, timeout=10)
    stream_id = client.request("/read", "POST", end_stream=False)
    client.send_body(stream_id, b"x" * 200_000, end_stream=False)  # more than it buffers
    time.sleep(1.0)  # well past the deadline: the app has not read, nothing times out
    client.ping()  # all the server sent before this has arrived
    assert not client.streams[stream_id].done and client.streams[stream_id].headers is None
    gate.append(1)
    client.conn.end_stream(stream_id)
    client.flush()
    result = client.response(stream_id)
    assert (result.status, bytes(result.data)) == (200, b"200000")


def test_a_stream_the_peer_gives_no_window_is_reset_after_timeout_write(serve: Any) -> None:
    srv = serve(app, timeout_write=0.5)
    client = H2Client(
        srv.port, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0}, timeout=10
    )
    started = time.monotonic()
    big = client.request("/big")
    client.wait(lambda: client.streams.get(big) and client.streams[big].done, timeout=5)
    result = client.streams[big]
    assert result.reset == h2.errors.ErrorCodes.CANCEL
    assert 0.4 <= time.monotonic() - started <= 0.5 + SLACK
    # the connection lives on: a new stream, given a window, is served
    small = client.request("/")
    client.conn.increment_flow_control_window(65535, stream_id=small)
    client.flush()
    answer = client.response(small)
    assert (answer.status, bytes(answer.data)) == (200, b"ok") and client.goaway is None


# -- task tracking -------------------------------------------------------------------


def eager_factory(loop: asyncio.AbstractEventLoop, coro: Any, **kw: Any) -> Any:
    """An eager task factory (as ``asyncio.eager_task_factory`` on 3.12+, which this
    Python may lack): a request's cycle runs to its end inside ``create_task``."""
    if getattr(coro, "__qualname__", "") == "HTTPCycle.run":
        try:
            coro.send(None)
        except StopIteration:
            done = loop.create_future()
            done.set_result(None)
            return done
        raise AssertionError("the test's app must answer without suspending")
    return asyncio.Task(coro, loop=loop, **kw)


def test_eager_task_factory_does_not_leak_tasks(serve: Any) -> None:
    async def installing(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            asyncio.get_running_loop().set_task_factory(eager_factory)
            assert message["type"] == "lifespan.startup"
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        await app(scope, receive, send)

    srv = serve(installing, lifespan="on", limit_concurrency=2)
    with httpx.Client(base_url=srv.url) as client:
        statuses = [client.get("/").status_code for _ in range(6)]
    assert statuses == [200] * 6  # a leaked task would count against the limit: 503
    wait_until(lambda: not srv.server.state.tasks, 2, "the task set to empty")
    started = time.monotonic()
    srv.stop()
    assert time.monotonic() - started < 2  # shutdown waits for no phantom task


# -- scopes of their own -------------------------------------------------------------


def test_scope_extensions_are_a_dict_of_each_request(serve: Any) -> None:
    seen: list[bool] = []

    async def writer(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append("x-mine" in scope["extensions"])
        scope["extensions"]["x-mine"] = {}
        await app(scope, receive, send)

    srv = serve(writer)
    with httpx.Client(base_url=srv.url) as keep_alive:
        assert keep_alive.get("/").status_code == 200
        assert keep_alive.get("/").status_code == 200
    assert httpx.get(srv.url).status_code == 200
    assert seen == [False, False, False]
