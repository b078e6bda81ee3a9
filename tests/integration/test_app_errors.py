"""Applications that fail: exceptions, missing responses, bad return values."""

from __future__ import annotations

import logging

import httpx
import pytest

from tests.integration.helpers import PROPAGATE_LOGS, parse_response, request, wait_until

pytestmark = pytest.mark.usefixtures("fast_tick")  # in-thread servers stop quickly


def errors(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "squall.error" and r.levelno >= logging.ERROR]


@pytest.fixture
def logged(serve, caplog):
    """``serve`` with squall's records visible to caplog."""
    caplog.set_level(logging.INFO)

    def start(app, **options):
        return serve(app, log_config=PROPAGATE_LOGS, log_level="info", **options)

    return start


async def raise_before_start(scope, receive, send):
    raise ValueError("broken before the response")


def test_exception_before_response_start(logged, caplog, http_impl):
    srv = logged(raise_before_start, http=http_impl)
    c = srv.client()
    c.send(request("GET", "/boom"))
    raw = c.read_until_closed()
    resp = parse_response(raw)
    assert resp.status == 500
    assert resp.body.strip() == b"Internal Server Error"
    assert resp.header("content-length") == str(len(resp.body))
    assert resp.header("connection") == "close"
    records = errors(caplog)
    assert len(records) == 1
    record = records[0]
    assert record.getMessage().startswith("Exception in ASGI application")
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ValueError)
    assert "broken before the response" in caplog.text
    assert "Traceback" in caplog.text


def test_exception_after_response_start_and_held(logged, caplog, http_impl):
    """start is held until the first body message: nothing was sent, so a 500 goes out."""

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("after start")

    srv = logged(app, http=http_impl)
    r = httpx.get(srv.url)
    assert r.status_code == 500
    assert len(errors(caplog)) == 1


def test_exception_while_streaming_closes_connection(logged, caplog, http_impl):
    async def app(scope, receive, send):
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        await send({"type": "http.response.body", "body": b"first part", "more_body": True})
        raise RuntimeError("mid-stream failure")

    srv = logged(app, http=http_impl)
    c = srv.client()
    c.send(request())
    raw = c.read_until_closed()
    resp = parse_response(raw)
    assert resp.status == 200
    assert resp.body == b"first part"
    assert not resp.complete  # no terminating chunk: the client knows it was cut
    assert b"500" not in raw
    records = errors(caplog)
    assert len(records) == 1
    assert records[0].getMessage().startswith("Exception in ASGI application")
    assert isinstance(records[0].exc_info[1], RuntimeError)


def test_exception_while_streaming_with_content_length(logged, caplog, http_impl):
    async def app(scope, receive, send):
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"20")]}
        )
        await send({"type": "http.response.body", "body": b"0123456789", "more_body": True})
        raise RuntimeError("mid-stream failure")

    srv = logged(app, http=http_impl)
    c = srv.client()
    c.send(request())
    resp = parse_response(c.read_until_closed())
    assert resp.status == 200
    assert resp.body == b"0123456789"
    assert not resp.complete
    assert len(errors(caplog)) == 1


def test_app_returns_without_response(logged, caplog, http_impl):
    async def app(scope, receive, send):
        return None

    srv = logged(app, http=http_impl)
    c = srv.client()
    c.send(request())
    resp = parse_response(c.read_until_closed())
    assert resp.status == 500
    assert resp.body.strip() == b"Internal Server Error"
    records = errors(caplog)
    assert len(records) == 1
    assert "without starting response" in records[0].getMessage()


def test_app_returns_without_completing_response(logged, caplog, http_impl):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"half", "more_body": True})

    srv = logged(app, http=http_impl)
    c = srv.client()
    c.send(request())
    resp = parse_response(c.read_until_closed())
    assert resp.status == 200
    assert resp.body == b"half"
    assert not resp.complete
    records = errors(caplog)
    assert len(records) == 1
    assert "without completing response" in records[0].getMessage()


def test_app_returning_a_value_is_logged(logged, caplog, http_impl):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"fine"})
        return 42

    srv = logged(app, http=http_impl)
    r = httpx.get(srv.url)
    assert r.status_code == 200
    assert r.text == "fine"
    records = errors(caplog)
    assert len(records) == 1
    assert "should return None" in records[0].getMessage()
    assert "42" in records[0].getMessage()


def test_app_returning_a_value_without_response(logged, caplog, http_impl):
    async def app(scope, receive, send):
        return "oops"

    srv = logged(app, http=http_impl)
    r = httpx.get(srv.url)
    assert r.status_code == 500
    assert any("should return None" in r.getMessage() for r in errors(caplog))


def test_server_keeps_serving_after_app_errors(logged, caplog, http_impl):
    async def app(scope, receive, send):
        if scope["path"] == "/boom":
            raise KeyError("boom")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"alive"})

    srv = logged(app, http=http_impl)
    with httpx.Client(base_url=srv.url) as client:
        for _ in range(3):
            assert client.get("/boom").status_code == 500
            assert client.get("/").text == "alive"
    assert len(errors(caplog)) == 3


# -- the response the app sends is checked ------------------------------------------


def _length_app(declared: int, parts: list[bytes]):
    async def app(scope, receive, send):
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"%d" % declared)],
            }
        )
        for i, part in enumerate(parts):
            more = i < len(parts) - 1
            await send({"type": "http.response.body", "body": part, "more_body": more})

    return app


@pytest.mark.parametrize(
    ("declared", "parts"),
    [
        pytest.param(10, [b"0123456789", b"extra"], id="more-streamed"),
        pytest.param(10, [b"01234", b"56789-extra"], id="more-in-last-part"),
        pytest.param(10, [b"01234", b"567"], id="less-streamed"),
    ],
)
def test_content_length_mismatch_after_head_sent(logged, caplog, http_impl, declared, parts):
    srv = logged(_length_app(declared, parts), http=http_impl)
    c = srv.client()
    c.send(request() + request())
    raw = c.read_until_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"content-length: 10\r\n" in head.lower() + b"\r\n"
    assert len(body) <= declared  # never more than declared
    assert body == b"".join(parts)[: len(body)]
    if sum(map(len, parts)) < declared:
        assert len(body) < declared  # the client sees a truncated response
    assert raw.count(b"HTTP/1.1") == 1  # the pipelined second request is not answered
    records = errors(caplog)
    assert len(records) == 1
    assert "Content-Length" in records[0].getMessage()


@pytest.mark.parametrize(
    ("declared", "parts"),
    [
        pytest.param(10, [b"0123456789-extra"], id="more-single"),
        pytest.param(10, [b"01234"], id="less-single"),
    ],
)
def test_content_length_mismatch_in_single_message(logged, caplog, http_impl, declared, parts):
    """Nothing is on the wire yet: either a 500 or a bare close, never a wrong body."""
    srv = logged(_length_app(declared, parts), http=http_impl)
    c = srv.client()
    c.send(request())
    raw = c.read_until_closed()
    assert b"0123456789-extra" not in raw
    if raw:
        resp = parse_response(raw)
        assert resp.status == 500
        assert resp.header("connection") == "close"
    records = errors(caplog)
    assert len(records) == 1
    assert "Content-Length" in records[0].getMessage()


@pytest.mark.parametrize("status", [99, 600, 1000, "200"], ids=repr)
def test_invalid_status_code(logged, caplog, http_impl, status):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"never"})

    srv = logged(app, http=http_impl)
    c = srv.client()
    c.send(request())
    raw = c.read_until_closed()
    assert b"never" not in raw
    resp = parse_response(raw)
    assert resp.status == 500
    assert len(errors(caplog)) == 1


def test_body_before_start_is_an_error(logged, caplog, http_impl):
    async def app(scope, receive, send):
        await send({"type": "http.response.body", "body": b"no head"})

    srv = logged(app, http=http_impl)
    r = httpx.get(srv.url)
    assert r.status_code == 500
    assert b"no head" not in r.content
    records = errors(caplog)
    assert len(records) == 1
    assert "http.response.start" in str(records[0].exc_info[1])


def test_send_after_response_complete_is_an_error(logged, caplog, http_impl):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})
        await send({"type": "http.response.body", "body": b"extra"})

    srv = logged(app, http=http_impl)
    c = srv.client()
    c.send(request() + request())
    first = parse_response(c.response())
    assert first.status == 200
    assert first.body == b"done"
    second = parse_response(c.response())
    assert second.status == 200
    assert second.body == b"done"
    assert b"extra" not in c.buf
    # one error per request, each logged after its complete response
    wait_until(lambda: len(errors(caplog)) == 2, what="two error records")
    for record in errors(caplog):
        assert "after response already completed" in str(record.exc_info[1])
