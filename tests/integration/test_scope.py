"""The HTTP connection scope the app receives."""

from __future__ import annotations

import pytest

from tests.integration.helpers import parse_response, request

pytestmark = pytest.mark.usefixtures("fast_tick")  # in-thread servers stop quickly


def scope_recorder(scopes: list):
    async def app(scope, receive, send):
        scopes.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def one_scope(srv, scopes, raw: bytes, keep_open: bool = True) -> dict:
    c = srv.client()
    c.send(raw)
    resp = parse_response(c.response() if keep_open else c.read_until_closed())
    assert resp.status == 200
    assert len(scopes) == 1
    scope = scopes[0]
    scope["_client_sock"] = c.sock.getsockname()
    return scope


def test_scope_keys(serve, http_impl):
    scopes: list = []
    srv = serve(scope_recorder(scopes), http=http_impl)
    raw = (
        b"GET /caf%C3%A9/a%20b/c%2Fd?x=1&y=%20z&x=2 HTTP/1.1\r\n"
        b"Host: example.org:8080\r\n"
        b"X-Mixed-Case: One\r\n"
        b"Accept: text/html\r\n"
        b"x-mixed-case: Two\r\n"
        b"Cookie: a=1\r\n"
        b"\r\n"
    )
    scope = one_scope(srv, scopes, raw)
    assert scope["type"] == "http"
    assert scope["asgi"]["version"] == "3.0"
    assert isinstance(scope["asgi"]["spec_version"], str)
    assert scope["asgi"]["spec_version"].startswith("2.")
    assert scope["http_version"] == "1.1"
    assert tuple(scope["server"]) == ("127.0.0.1", srv.port)
    assert tuple(scope["client"]) == ("127.0.0.1", scope["_client_sock"][1])
    assert scope["scheme"] == "http"
    assert scope["method"] == "GET"
    assert scope["root_path"] == ""
    assert scope["path"] == "/café/a b/c/d"
    assert scope["raw_path"] == b"/caf%C3%A9/a%20b/c%2Fd"
    assert scope["query_string"] == b"x=1&y=%20z&x=2"
    assert [tuple(h) for h in scope["headers"]] == [
        (b"host", b"example.org:8080"),
        (b"x-mixed-case", b"One"),
        (b"accept", b"text/html"),
        (b"x-mixed-case", b"Two"),
        (b"cookie", b"a=1"),
    ]
    for name, value in scope["headers"]:
        assert isinstance(name, bytes)
        assert isinstance(value, bytes)
    assert scope["state"] == {}
    assert isinstance(scope["state"], dict)


def test_scope_without_query(serve, http_impl):
    scopes: list = []
    srv = serve(scope_recorder(scopes), http=http_impl)
    scope = one_scope(srv, scopes, request("DELETE", "/items/42"))
    assert scope["method"] == "DELETE"
    assert scope["path"] == "/items/42"
    assert scope["raw_path"] == b"/items/42"
    assert scope["query_string"] == b""


def test_scope_empty_query_after_question_mark(serve, http_impl):
    scopes: list = []
    srv = serve(scope_recorder(scopes), http=http_impl)
    scope = one_scope(srv, scopes, request("GET", "/p?"))
    assert scope["path"] == "/p"
    assert scope["raw_path"] == b"/p"
    assert scope["query_string"] == b""


def test_scope_http10(serve, http_impl):
    scopes: list = []
    srv = serve(scope_recorder(scopes), http=http_impl)
    scope = one_scope(srv, scopes, b"GET /old HTTP/1.0\r\n\r\n", keep_open=False)
    assert scope["http_version"] == "1.0"
    assert scope["headers"] == []


def test_scope_absolute_form_target(serve, http_impl):
    scopes: list = []
    srv = serve(scope_recorder(scopes), http=http_impl)
    raw = b"GET http://example.org/abs/path?q=1 HTTP/1.1\r\nHost: example.org\r\n\r\n"
    scope = one_scope(srv, scopes, raw)
    assert scope["path"] == "/abs/path"
    assert scope["raw_path"] == b"/abs/path"
    assert scope["query_string"] == b"q=1"


@pytest.mark.parametrize("root_path", ["/api", "/api/"])
def test_root_path(serve, http_impl, root_path):
    scopes: list = []
    srv = serve(scope_recorder(scopes), http=http_impl, root_path=root_path)
    scope = one_scope(srv, scopes, request("GET", "/users/a%20b?x=1"))
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/users/a b"
    assert scope["raw_path"] == b"/api/users/a%20b"
    assert scope["query_string"] == b"x=1"


def test_each_request_gets_its_own_scope(serve, http_impl):
    scopes: list = []
    srv = serve(scope_recorder(scopes), http=http_impl)
    c = srv.client()
    c.send(request("GET", "/one") + request("POST", "/two", body=b"x"))
    c.response()
    c.response()
    assert [s["path"] for s in scopes] == ["/one", "/two"]
    assert scopes[0] is not scopes[1]
    assert scopes[0]["headers"] is not scopes[1]["headers"]
    assert scopes[0]["state"] is not scopes[1]["state"]
    assert scopes[0]["client"] == scopes[1]["client"]
