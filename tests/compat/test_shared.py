"""Checks that read the same on FastAPI, Litestar, Quart and Starlette.

Each framework's module (tests/compat/test_<framework>.py) builds its app with
``make_app``; the assertions are written here once and run on each of them.
The framework-specific checks stay in those modules.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import pytest

from tests.compat.helpers import (
    check_background_task,
    check_contextvars,
    check_cookies,
    check_form_post,
    check_incremental_stream,
    check_multipart_post,
    check_pipelining,
)

FRAMEWORKS = ["fastapi", "litestar", "quart", "starlette"]

pytestmark = [
    pytest.mark.usefixtures("fast_tick"),
    pytest.mark.timeout(30),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:litestar"),
]


@pytest.fixture(name="make_app", params=FRAMEWORKS)
def _make_app(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """The framework's app factory: ``make_app(file_path=None) -> (app, ctx)``."""
    module = importlib.import_module(f"tests.compat.test_{request.param}")
    factory: Callable[..., Any] = module.make_app
    return factory


def test_cookies(make_app, serve, http, protocol):
    app, _ = make_app()
    srv = serve(app)
    with http(srv) as client:
        check_cookies(client, srv, protocol)


def test_urlencoded_form(make_app, serve, http):
    app, _ = make_app()
    with http(serve(app)) as client:
        check_form_post(client)


def test_multipart_upload(make_app, serve, http):
    app, _ = make_app()
    with http(serve(app)) as client:
        check_multipart_post(client)


def test_streaming_response_is_incremental(make_app, serve, http):
    app, ctx = make_app()
    with http(serve(app)) as client:
        check_incremental_stream(client, ctx)


def test_background_task_runs_after_the_response(make_app, serve, http):
    app, ctx = make_app()
    with http(serve(app)) as client:
        check_background_task(client, ctx)


def test_lifespan_state(make_app, serve, http):
    app, ctx = make_app()
    srv = serve(app, lifespan="on")
    assert ctx.events == ["startup"]
    with http(srv) as client:
        first = client.get("/state").json()
        second = client.get("/state").json()
    assert first == {"greeting": "hello from lifespan", "mutated": False}
    assert second == first  # each request has its own copy of the state
    srv.stop()
    assert ctx.events == ["startup", "shutdown"]


def test_contextvars_are_isolated_between_concurrent_requests(make_app, serve, protocol):
    app, _ = make_app()
    check_contextvars(serve(app), protocol)


def test_pipelined_requests(make_app, serve, http_impl):
    app, _ = make_app()
    check_pipelining(serve(app, http=http_impl).port)
