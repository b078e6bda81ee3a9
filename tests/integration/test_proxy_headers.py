"""X-Forwarded-For and X-Forwarded-Proto from trusted and untrusted peers."""

from __future__ import annotations

import json

import pytest

from tests.integration.helpers import parse_response, request

pytestmark = pytest.mark.usefixtures("fast_tick")  # in-thread servers stop quickly


async def client_info(scope, receive, send):
    body = json.dumps({"client": scope["client"], "scheme": scope["scheme"]}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


FORWARDED = [("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", "https")]


@pytest.fixture(autouse=True)
def _no_env_override(monkeypatch):
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)


def ask(srv, headers) -> tuple[dict, int]:
    c = srv.client()
    c.send(request("GET", "/", headers=headers))
    resp = parse_response(c.response())
    assert resp.status == 200
    return json.loads(resp.body), c.sock.getsockname()[1]


def test_trusted_by_default_from_localhost(serve, http_impl):
    srv = serve(client_info, http=http_impl)
    info, _ = ask(srv, FORWARDED)
    assert info["client"] == ["203.0.113.7", 0]
    assert info["scheme"] == "https"


def test_forwarded_for_with_port_and_proxy_chain(serve, http_impl):
    srv = serve(client_info, http=http_impl)
    info, _ = ask(srv, [("X-Forwarded-For", "198.51.100.1:4321, 127.0.0.1")])
    assert info["client"] == ["198.51.100.1", 4321]
    assert info["scheme"] == "http"


def test_forwarded_proto_only(serve, http_impl):
    srv = serve(client_info, http=http_impl)
    info, port = ask(srv, [("X-Forwarded-Proto", "https")])
    assert info["client"] == ["127.0.0.1", port]
    assert info["scheme"] == "https"


def test_ignored_when_peer_not_in_forwarded_allow_ips(serve, http_impl):
    srv = serve(client_info, http=http_impl, forwarded_allow_ips="10.0.0.1")
    info, port = ask(srv, FORWARDED)
    assert info["client"] == ["127.0.0.1", port]
    assert info["scheme"] == "http"


def test_ignored_with_proxy_headers_disabled(serve, http_impl):
    srv = serve(client_info, http=http_impl, proxy_headers=False)
    info, port = ask(srv, FORWARDED)
    assert info["client"] == ["127.0.0.1", port]
    assert info["scheme"] == "http"


def test_trust_everyone(serve, http_impl):
    srv = serve(client_info, http=http_impl, forwarded_allow_ips="*")
    info, _ = ask(
        srv, [("X-Forwarded-For", "192.0.2.1, 192.0.2.2"), ("X-Forwarded-Proto", "https")]
    )
    assert info["client"] == ["192.0.2.1", 0]
    assert info["scheme"] == "https"


def test_without_forwarded_headers_client_is_the_peer(serve, http_impl):
    srv = serve(client_info, http=http_impl)
    info, port = ask(srv, [])
    assert info["client"] == ["127.0.0.1", port]
    assert info["scheme"] == "http"
