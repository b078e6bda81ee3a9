"""Pipelined answers share writes, but a slow request never holds back earlier answers."""

from __future__ import annotations

import pytest

from tests.integration.helpers import Gate, parse_response, request

pytestmark = pytest.mark.usefixtures("fast_tick")


def test_answer_before_a_stalled_request_is_sent_at_once(serve, http_impl):
    gate = Gate()

    async def app(scope, receive, send):
        if scope["path"] == "/slow":
            await gate.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    srv = serve(app, http=http_impl)
    c = srv.client()
    c.send(request("GET", "/fast1") + request("GET", "/fast2") + request("GET", "/slow"))
    # both quick answers arrive while /slow still waits (nothing opens the gate yet)
    assert parse_response(c.response()).body == b"/fast1"
    assert parse_response(c.response()).body == b"/fast2"
    assert not gate.is_open
    gate.open()
    assert parse_response(c.response()).body == b"/slow"


def test_many_pipelined_answers_in_order(serve, http_impl):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    srv = serve(app, http=http_impl)
    c = srv.client()
    c.send(b"".join(request("GET", f"/{i}") for i in range(64)))
    assert [parse_response(c.response()).body for _ in range(64)] == [
        f"/{i}".encode() for i in range(64)
    ]
    assert srv.server.state.total_requests == 64
