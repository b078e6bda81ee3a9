"""Default response headers and validation of the headers an app sends."""

from __future__ import annotations

import email.utils
import logging

import httpx
import pytest

from tests.integration.helpers import PROPAGATE_LOGS, parse_response, request

pytestmark = pytest.mark.usefixtures("fast_tick")  # in-thread servers stop quickly


def app_with_headers(headers: list[tuple[bytes, bytes]], body: bytes = b"body"):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def get(srv, target: str = "/"):
    c = srv.client()
    c.send(request("GET", target))
    return parse_response(c.response())


# -- server and date ---------------------------------------------------------------


def test_default_server_and_date_headers(serve, http_impl):
    srv = serve(app_with_headers([(b"content-type", b"text/plain")]), http=http_impl)
    resp = get(srv)
    assert resp.status == 200
    assert resp.all("server") == ["squall"]
    dates = resp.all("date")
    assert len(dates) == 1
    assert email.utils.parsedate_to_datetime(dates[0]).tzname() == "UTC"
    assert dates[0].endswith(" GMT")
    assert resp.all("content-type") == ["text/plain"]


def test_app_server_and_date_headers_not_duplicated(serve, http_impl):
    headers = [(b"Server", b"my-app/1.0"), (b"Date", b"Tue, 01 Jan 2030 00:00:00 GMT")]
    srv = serve(app_with_headers(headers), http=http_impl)
    resp = get(srv)
    assert resp.all("server") == ["my-app/1.0"]
    assert resp.all("date") == ["Tue, 01 Jan 2030 00:00:00 GMT"]


def test_no_server_header(serve, http_impl):
    srv = serve(app_with_headers([]), http=http_impl, server_header=False)
    resp = get(srv)
    assert resp.status == 200
    assert resp.all("server") == []
    assert len(resp.all("date")) == 1


def test_no_date_header(serve, http_impl):
    srv = serve(app_with_headers([]), http=http_impl, date_header=False)
    resp = get(srv)
    assert resp.status == 200
    assert resp.all("date") == []
    assert resp.all("server") == ["squall"]


def test_no_server_and_no_date_but_app_headers_kept(serve, http_impl):
    headers = [(b"server", b"app"), (b"date", b"whenever")]
    srv = serve(app_with_headers(headers), http=http_impl, server_header=False, date_header=False)
    resp = get(srv)
    assert resp.all("server") == ["app"]
    assert resp.all("date") == ["whenever"]


def test_extra_default_headers(serve, http_impl):
    srv = serve(
        app_with_headers([(b"x-app", b"yes")]), http=http_impl, headers=["X-A:1", "X-B: two words"]
    )
    resp = get(srv)
    assert resp.all("x-a") == ["1"]
    assert resp.all("x-b") == ["two words"]
    assert resp.all("x-app") == ["yes"]
    assert resp.all("server") == ["squall"]


def test_default_server_header_can_be_replaced(serve, http_impl):
    srv = serve(app_with_headers([]), http=http_impl, headers=["Server: custom"])
    resp = get(srv)
    assert resp.all("server") == ["custom"]


def test_default_headers_on_server_made_responses(serve, http_impl):
    srv = serve(app_with_headers([]), http=http_impl)
    c = srv.client()
    c.send(b"GET / HTTP/1.1\r\n\r\n")  # no Host: refused by the server itself
    resp = parse_response(c.read_until_closed())
    assert resp.status == 400
    assert resp.all("server") == ["squall"]
    assert len(resp.all("date")) == 1


def test_duplicate_app_headers_are_kept_in_order(serve, http_impl):
    headers = [(b"set-cookie", b"a=1"), (b"x-other", b"o"), (b"set-cookie", b"b=2")]
    srv = serve(app_with_headers(headers), http=http_impl)
    resp = get(srv)
    assert resp.all("set-cookie") == ["a=1", "b=2"]


def test_app_transfer_encoding_and_content_length_are_framed_by_server(serve, http_impl):
    headers = [(b"content-length", b"4"), (b"transfer-encoding", b"chunked")]
    srv = serve(app_with_headers(headers), http=http_impl)
    resp = get(srv)
    assert resp.all("content-length") == ["4"]
    assert resp.all("transfer-encoding") == []
    assert resp.body == b"body"


# -- validation ----------------------------------------------------------------------

BAD_HEADERS = {
    "value_crlf": (b"x-evil", b"a\r\nx-injected: yes"),
    "value_lf": (b"x-evil", b"a\nx-injected: yes"),
    "value_cr": (b"x-evil", b"a\rx-injected: yes"),
    "value_nul": (b"x-evil", b"a\x00x-injected: yes"),
    "name_crlf": (b"x-evil\r\nx-injected", b"yes"),
    "name_space": (b"x evil", b"x-injected"),
    "name_colon": (b"x-injected:", b"yes"),
    "name_empty": (b"", b"x-injected"),
}


def test_invalid_response_headers_never_reach_wire(serve, http_impl, caplog):
    caplog.set_level(logging.INFO)

    async def app(scope, receive, send):
        name, value = BAD_HEADERS[scope["path"][1:]]
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"x-fine", b"1"), (name, value)],
            }
        )
        await send({"type": "http.response.body", "body": b"body"})

    srv = serve(app, http=http_impl, log_config=PROPAGATE_LOGS, log_level="info")
    for case in BAD_HEADERS:
        caplog.clear()
        c = srv.client()
        c.send(request("GET", "/" + case))
        raw = c.read_until_closed()
        lowered = raw.lower()
        assert b"x-injected" not in lowered, case
        assert b"x-evil" not in lowered, case
        assert b"x-fine" not in lowered, case  # nothing of the bad head was sent
        if raw:
            resp = parse_response(raw)
            assert resp.status == 500, case
            assert resp.header("connection") == "close", case
        errors = [r for r in caplog.records if r.name == "squall.error" and r.levelno >= 40]
        assert len(errors) == 1, case


def test_cve_2020_7695_response_splitting(serve, http_impl):
    """A header value built from the request (decoded path) cannot split the response."""

    async def app(scope, receive, send):
        await send(
            {
                "type": "http.response.start",
                "status": 302,
                "headers": [(b"location", scope["path"].encode("latin-1"))],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    srv = serve(app, http=http_impl)
    c = srv.client()
    c.send(
        request(
            "GET",
            "/redirect%0D%0ASet-Cookie:%20session=evil%0D%0A%0D%0AHTTP/1.1%20200%20OK%0D%0A",
        )
        + request("GET", "/second")
    )
    raw = c.read_until_closed()
    assert b"set-cookie" not in raw.lower()
    assert b"session=evil" not in raw
    resp = parse_response(raw)
    assert resp.status == 500
    assert resp.header("connection") == "close"
    assert raw.count(b"HTTP/1.1 ") == 1
    # a harmless path is still redirected normally
    r = httpx.get(srv.url + "/fine", follow_redirects=False)
    assert r.status_code == 302
    assert r.headers["location"] == "/fine"


def test_latin1_header_values_pass_through(serve, http_impl):
    srv = serve(app_with_headers([(b"x-latin", "café\t1".encode("latin-1"))]), http=http_impl)
    resp = get(srv)
    assert resp.raw_head.count("café\t1".encode("latin-1")) == 1
