"""Forwarded (RFC 7239) and X-Forwarded-Host/-Port/-Prefix from trusted proxies."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from squall.middleware.proxy_headers import (
    ProxyHeadersMiddleware,
    TrustedHosts,
    apply_proxy_headers,
    parse_forwarded,
)


def scope(*headers: tuple[bytes, bytes], kind: str = "http") -> dict[str, Any]:
    return {
        "type": kind,
        "scheme": "http" if kind == "http" else "ws",
        "client": ("10.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "root_path": "",
        "path": "/items",
        "raw_path": b"/items",
        "headers": [(b"host", b"internal:8000"), *headers],
    }


TRUSTED = TrustedHosts("10.0.0.0/8")


def test_parse_forwarded_elements_and_quotes() -> None:
    value = 'for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8::1]:4711";host="a,b"'
    assert parse_forwarded(value) == [
        {"for": "192.0.2.60", "proto": "http", "by": "203.0.113.43"},
        {"for": "[2001:db8::1]:4711", "host": "a,b"},
    ]


def test_forwarded_sets_client_scheme_and_host_from_the_clients_element() -> None:
    s = scope((b"forwarded", b"for=198.51.100.7;proto=https;host=shop.example, for=10.0.0.9"))
    apply_proxy_headers(s, TRUSTED)
    assert s["client"] == ("198.51.100.7", 0)
    assert s["scheme"] == "https"
    assert s["headers"][0] == (b"host", b"shop.example")
    assert [n for n, _ in s["headers"]].count(b"host") == 1
    assert s["server"] == ("shop.example", 443)


def test_forwarded_wins_over_x_forwarded() -> None:
    s = scope(
        (b"x-forwarded-for", b"203.0.113.1"),
        (b"forwarded", b'for="[2001:db8::1]:4711"'),
    )
    apply_proxy_headers(s, TRUSTED)
    assert s["client"] == ("2001:db8::1", 4711)


def test_x_forwarded_host_port_and_prefix() -> None:
    s = scope(
        (b"x-forwarded-for", b"203.0.113.1"),
        (b"x-forwarded-proto", b"https"),
        (b"x-forwarded-host", b"api.example"),
        (b"x-forwarded-port", b"8443"),
        (b"x-forwarded-prefix", b"/v1/"),
    )
    apply_proxy_headers(s, TRUSTED)
    assert s["client"] == ("203.0.113.1", 0)
    assert s["scheme"] == "https"
    assert s["server"] == ("api.example", 8443)
    assert s["headers"][0] == (b"host", b"api.example")
    assert s["root_path"] == "/v1"
    assert s["path"] == "/v1/items"
    assert s["raw_path"] == b"/v1/items"


def test_port_alone_changes_the_server_port() -> None:
    s = scope((b"x-forwarded-port", b"9000"))
    apply_proxy_headers(s, TRUSTED)
    assert s["server"] == ("127.0.0.1", 9000)


@pytest.mark.parametrize(
    "header",
    [
        (b"x-forwarded-prefix", b"api"),  # not absolute
        (b"x-forwarded-prefix", b"/a?b"),
        (b"x-forwarded-host", b"evil/path"),
    ],
)
def test_unusable_values_are_ignored(header: tuple[bytes, bytes]) -> None:
    s = scope(header)
    before = dict(s)
    apply_proxy_headers(s, TRUSTED)
    assert s["path"] == before["path"]
    assert s["root_path"] == before["root_path"]
    assert s["headers"][0] == (b"host", b"internal:8000")


def test_middleware_ignores_untrusted_peers() -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope)

    middleware = ProxyHeadersMiddleware(app, trusted_hosts="192.168.0.0/16")
    s = scope((b"forwarded", b"for=1.2.3.4;proto=https"), (b"x-forwarded-prefix", b"/p"))
    asyncio.run(middleware(s, None, None))  # type: ignore[arg-type]
    assert seen[0]["client"] == ("10.0.0.1", 5000)
    assert seen[0]["scheme"] == "http"
    assert seen[0]["root_path"] == ""
    trusting = ProxyHeadersMiddleware(app, trusted_hosts="10.0.0.0/8")
    s = scope((b"forwarded", b"for=1.2.3.4;proto=https"), (b"x-forwarded-prefix", b"/p"))
    asyncio.run(trusting(s, None, None))  # type: ignore[arg-type]
    assert seen[1]["client"] == ("1.2.3.4", 0)
    assert seen[1]["scheme"] == "https"
    assert seen[1]["root_path"] == "/p"


def test_websocket_scheme() -> None:
    s = scope((b"forwarded", b"for=1.2.3.4;proto=https"), kind="websocket")
    apply_proxy_headers(s, TRUSTED)
    assert s["scheme"] == "wss"
