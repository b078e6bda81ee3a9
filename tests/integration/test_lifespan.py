"""The lifespan protocol: startup, shutdown, shared state, failures."""

from __future__ import annotations

import textwrap

import httpx
import pytest

pytestmark = pytest.mark.usefixtures("fast_tick")  # in-thread servers stop quickly


def lifespan_app(events: list, state_init: dict | None = None):
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                events.append(message["type"])
                if message["type"] == "lifespan.startup":
                    scope["state"].update(state_init or {})
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        state = scope["state"]
        events.append(("request", scope["path"], sorted(state)))
        if scope["path"] == "/add":
            state["per_request"] = "leak?"
            state["shared_list"].append("added by a request")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": repr(sorted(state)).encode()})

    return app


def test_startup_and_shutdown_called(serve, http_impl):
    events: list = []
    srv = serve(lifespan_app(events, {"shared_list": []}), http=http_impl, lifespan="on")
    assert events == ["lifespan.startup"]  # complete before the server accepts anything
    assert httpx.get(srv.url + "/x").status_code == 200
    srv.stop()
    assert not srv.thread.is_alive()
    assert events == ["lifespan.startup", ("request", "/x", ["shared_list"]), "lifespan.shutdown"]


def test_state_from_startup_is_a_shallow_copy_per_request(serve, http_impl):
    events: list = []
    shared: list = []
    srv = serve(
        lifespan_app(events, {"db": "connection", "shared_list": shared}),
        http=http_impl,
        lifespan="on",
    )
    with httpx.Client(base_url=srv.url) as client:
        assert client.get("/add").text == repr(["db", "per_request", "shared_list"])
        # a key added by one request does not leak into the next
        assert client.get("/next").text == repr(["db", "shared_list"])
    requests = [e for e in events if isinstance(e, tuple)]
    assert requests == [
        ("request", "/add", ["db", "shared_list"]),
        ("request", "/next", ["db", "shared_list"]),
    ]
    # shallow: the values themselves are the objects startup stored
    assert shared == ["added by a request"]


def test_lifespan_off_never_calls_app_with_lifespan(serve, http_impl):
    events: list = []
    srv = serve(lifespan_app(events, {"shared_list": []}), http=http_impl, lifespan="off")
    assert httpx.get(srv.url + "/").text == "[]"
    srv.stop()
    assert [e for e in events if isinstance(e, str)] == []


def test_lifespan_auto_with_app_raising_still_serves(serve, http_impl):
    calls: list = []

    async def app(scope, receive, send):
        calls.append(scope["type"])
        if scope["type"] != "http":
            raise RuntimeError("no lifespan here")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"served"})

    srv = serve(app, http=http_impl, lifespan="auto")
    r = httpx.get(srv.url)
    assert r.status_code == 200
    assert r.text == "served"
    srv.stop()
    assert srv.error is None
    assert calls == ["lifespan", "http"]  # no shutdown call after a failed lifespan


def test_lifespan_auto_with_app_raising_assertion(serve, http_impl):
    """Frameworks that only know "http" often assert on the scope type."""

    async def app(scope, receive, send):
        assert scope["type"] == "http"
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body"})

    srv = serve(app, http=http_impl, lifespan="auto")
    assert httpx.get(srv.url).status_code == 204


FAILING_STARTUP = """
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        raise RuntimeError("database unreachable")
"""

STARTUP_FAILED_MESSAGE = """
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "config is broken"})
        await receive()
"""


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param(FAILING_STARTUP, "database unreachable", id="raises"),
        pytest.param(STARTUP_FAILED_MESSAGE, "config is broken", id="startup.failed"),
    ],
)
def test_lifespan_on_failing_startup_exits_3(squall_process, tmp_path, source, expected):
    (tmp_path / "failing_app.py").write_text(textwrap.dedent(source))
    proc = squall_process("failing_app:app", "--port", "0", "--lifespan", "on", cwd=tmp_path)
    assert proc.proc.wait(15) == 3
    proc.stop()
    out = proc.output
    assert "Application startup failed. Exiting." in out
    assert expected in out
    assert "running on" not in out  # it never listened


def test_lifespan_auto_failing_startup_message_exits_3(squall_process, tmp_path):
    """lifespan.startup.failed is a real failure even in auto mode."""
    (tmp_path / "failing_app.py").write_text(textwrap.dedent(STARTUP_FAILED_MESSAGE))
    proc = squall_process("failing_app:app", "--port", "0", cwd=tmp_path)
    assert proc.proc.wait(15) == 3
    proc.stop()
    assert "Application startup failed. Exiting." in proc.output
    assert "config is broken" in proc.output


def test_lifespan_auto_raising_app_serves_in_process(squall_process, tmp_path, http_impl):
    (tmp_path / "plain_app.py").write_text(
        textwrap.dedent(
            """
            async def app(scope, receive, send):
                assert scope["type"] == "http"
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"plain"})
            """
        )
    )
    proc = squall_process("plain_app:app", "--port", "0", "--http", http_impl, cwd=tmp_path)
    port = proc.wait_started()
    assert httpx.get(f"http://127.0.0.1:{port}/").text == "plain"
    assert proc.stop() == 0
    assert "ASGI 'lifespan' protocol appears unsupported." in proc.output
