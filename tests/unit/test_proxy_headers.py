"""X-Forwarded-For / X-Forwarded-Proto from trusted proxies."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from squall.middleware.proxy_headers import (
    ProxyHeadersMiddleware,
    TrustedHosts,
    apply_proxy_headers,
)

# -- TrustedHosts ---------------------------------------------------------------------------


def test_single_ips() -> None:
    trusted = TrustedHosts("127.0.0.1, ::1")
    assert "127.0.0.1" in trusted
    assert "::1" in trusted
    assert "127.0.0.2" not in trusted
    assert "10.0.0.1" not in trusted
    assert trusted.always is False


def test_cidr_networks() -> None:
    trusted = TrustedHosts(["10.0.0.0/8", "2001:db8::/32", "192.168.1.0/24"])
    assert "10.1.2.3" in trusted
    assert "10.255.255.255" in trusted
    assert "11.0.0.1" not in trusted
    assert "2001:db8::1" in trusted
    assert "2001:db9::1" not in trusted
    assert "192.168.1.77" in trusted
    assert "192.168.2.1" not in trusted


def test_non_strict_network() -> None:
    # host bits set: accepted as the network it belongs to
    trusted = TrustedHosts("10.1.2.3/8")
    assert "10.200.0.1" in trusted


def test_literals() -> None:
    trusted = TrustedHosts("unix:/run/proxy.sock, proxy.internal")
    assert "unix:/run/proxy.sock" in trusted
    assert "proxy.internal" in trusted
    assert "other.internal" not in trusted
    assert "127.0.0.1" not in trusted


def test_star_trusts_everything() -> None:
    trusted = TrustedHosts("*")
    assert trusted.always is True
    assert "1.2.3.4" in trusted
    assert "anything" in trusted
    assert None in trusted


def test_star_among_others() -> None:
    assert TrustedHosts("127.0.0.1,*").always is True


def test_empty_and_blank_items() -> None:
    trusted = TrustedHosts(" , ,")
    assert "127.0.0.1" not in trusted
    assert "" not in trusted
    assert trusted.always is False


def test_non_string_host_not_trusted() -> None:
    trusted = TrustedHosts("127.0.0.1")
    assert None not in trusted
    assert 127 not in trusted


def test_invalid_host_not_trusted() -> None:
    assert "not-an-ip" not in TrustedHosts("10.0.0.0/8")


def test_ipv4_mapped_not_confused() -> None:
    trusted = TrustedHosts("127.0.0.1")
    assert "::ffff:10.0.0.1" not in trusted


def test_membership_stable_with_cache() -> None:
    trusted = TrustedHosts("10.0.0.0/8")
    for _ in range(3):
        assert "10.0.0.1" in trusted
        assert "11.0.0.1" not in trusted


# -- client_from: the right-most untrusted hop ---------------------------------------------


@pytest.mark.parametrize(
    ("trusted", "header", "client"),
    [
        ("127.0.0.1", "1.2.3.4", ("1.2.3.4", 0)),
        ("127.0.0.1", "1.2.3.4, 5.6.7.8", ("5.6.7.8", 0)),
        ("127.0.0.1,10.0.0.0/8", "1.2.3.4, 5.6.7.8, 10.0.0.1", ("5.6.7.8", 0)),
        ("127.0.0.1,10.0.0.0/8", "1.2.3.4, 10.0.0.5, 10.0.0.1", ("1.2.3.4", 0)),
        ("10.0.0.0/8", "10.0.0.3, 10.0.0.2, 10.0.0.1", ("10.0.0.3", 0)),
        ("*", "1.2.3.4, 5.6.7.8, 9.9.9.9", ("1.2.3.4", 0)),
        ("127.0.0.1", " 1.2.3.4 ,  5.6.7.8 ", ("5.6.7.8", 0)),
        ("127.0.0.1", "1.2.3.4,,", ("1.2.3.4", 0)),
    ],
    ids=[
        "single",
        "rightmost",
        "skip-trusted",
        "skip-all-trusted-but-first",
        "all-trusted-leftmost",
        "star-leftmost",
        "spaces",
        "empty-items",
    ],
)
def test_client_from(trusted: str, header: str, client: tuple[str, int]) -> None:
    assert TrustedHosts(trusted).client_from(header) == client


@pytest.mark.parametrize(
    ("header", "client"),
    [
        ("1.2.3.4:5678", ("1.2.3.4", 5678)),
        ("[2001:db8::1]:443", ("2001:db8::1", 443)),
        ("[2001:db8::1]", ("2001:db8::1", 0)),
        ("2001:db8::1", ("2001:db8::1", 0)),
        ("1.2.3.4:notaport", ("1.2.3.4", 0)),
    ],
)
def test_client_from_ports_kept(header: str, client: tuple[str, int]) -> None:
    assert TrustedHosts("127.0.0.1").client_from(header) == client


def test_client_from_trust_ignores_port() -> None:
    trusted = TrustedHosts("10.0.0.1")
    assert trusted.client_from("1.2.3.4:1111, 10.0.0.1:2222") == ("1.2.3.4", 1111)


@pytest.mark.parametrize("header", ["", " ", ", ,"])
def test_client_from_empty(header: str) -> None:
    assert TrustedHosts("127.0.0.1").client_from(header) is None


# -- apply_proxy_headers ------------------------------------------------------------------------


def scope_with(headers: list[tuple[bytes, bytes]], type_: str = "http") -> dict[str, Any]:
    return {
        "type": type_,
        "scheme": "ws" if type_ == "websocket" else "http",
        "client": ("127.0.0.1", 5000),
        "headers": headers,
    }


def test_apply_sets_client_and_scheme() -> None:
    scope = scope_with([(b"x-forwarded-for", b"1.2.3.4"), (b"x-forwarded-proto", b"https")])
    apply_proxy_headers(scope, TrustedHosts("127.0.0.1"))
    assert scope["client"] == ("1.2.3.4", 0)
    assert scope["scheme"] == "https"


@pytest.mark.parametrize(
    ("proto", "scheme"),
    [
        (b"https", "https"),
        (b"HTTPS", "https"),
        (b" https ", "https"),
        (b"http", "http"),
        (b"wss", "wss"),
        (b"ws", "ws"),
    ],
)
def test_apply_accepted_protos(proto: bytes, scheme: str) -> None:
    scope = scope_with([(b"x-forwarded-proto", proto)])
    apply_proxy_headers(scope, TrustedHosts("127.0.0.1"))
    assert scope["scheme"] == scheme


@pytest.mark.parametrize("proto", [b"ftp", b"javascript", b"https, http", b"", b"http\x00"])
def test_apply_rejects_other_protos(proto: bytes) -> None:
    scope = scope_with([(b"x-forwarded-proto", proto)])
    apply_proxy_headers(scope, TrustedHosts("127.0.0.1"))
    assert scope["scheme"] == "http"


@pytest.mark.parametrize(
    ("proto", "scheme"),
    [(b"https", "wss"), (b"http", "ws"), (b"wss", "wss"), (b"ws", "ws")],
)
def test_apply_websocket_mapping(proto: bytes, scheme: str) -> None:
    scope = scope_with([(b"x-forwarded-proto", proto)], "websocket")
    apply_proxy_headers(scope, TrustedHosts("127.0.0.1"))
    assert scope["scheme"] == scheme


def test_apply_last_proto_wins() -> None:
    scope = scope_with([(b"x-forwarded-proto", b"http"), (b"x-forwarded-proto", b"https")])
    apply_proxy_headers(scope, TrustedHosts("127.0.0.1"))
    assert scope["scheme"] == "https"


def test_apply_multiple_forwarded_for_headers_are_one_list() -> None:
    scope = scope_with(
        [(b"x-forwarded-for", b"1.1.1.1, 2.2.2.2"), (b"x-forwarded-for", b"3.3.3.3, 10.0.0.1")]
    )
    apply_proxy_headers(scope, TrustedHosts("10.0.0.1"))
    assert scope["client"] == ("3.3.3.3", 0)


def test_apply_without_headers_changes_nothing() -> None:
    scope = scope_with([(b"host", b"a")])
    before = dict(scope)
    apply_proxy_headers(scope, TrustedHosts("127.0.0.1"))
    assert scope == before


def test_apply_empty_forwarded_for_keeps_client() -> None:
    scope = scope_with([(b"x-forwarded-for", b"")])
    apply_proxy_headers(scope, TrustedHosts("127.0.0.1"))
    assert scope["client"] == ("127.0.0.1", 5000)


def test_apply_latin1_header_does_not_crash() -> None:
    scope = scope_with([(b"x-forwarded-for", b"caf\xe9")])
    apply_proxy_headers(scope, TrustedHosts("127.0.0.1"))
    assert scope["client"] == ("caf\xe9", 0)


# -- ProxyHeadersMiddleware -----------------------------------------------------------------------


def run_middleware(scope: dict[str, Any], trusted: str | list[str] = "127.0.0.1") -> dict[str, Any]:
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(dict(scope))

    async def noop(*args: Any) -> None:
        return None

    asyncio.run(ProxyHeadersMiddleware(app, trusted)(scope, noop, noop))  # type: ignore[arg-type]
    assert len(seen) == 1
    return seen[0]


FWD = [(b"x-forwarded-for", b"1.2.3.4"), (b"x-forwarded-proto", b"https")]


def test_middleware_trusted_peer() -> None:
    seen = run_middleware(scope_with(FWD))
    assert seen["client"] == ("1.2.3.4", 0)
    assert seen["scheme"] == "https"


def test_middleware_untrusted_peer_ignored() -> None:
    scope = scope_with(FWD)
    scope["client"] = ("8.8.8.8", 1234)
    seen = run_middleware(scope)
    assert seen["client"] == ("8.8.8.8", 1234)
    assert seen["scheme"] == "http"


def test_middleware_default_trusts_localhost_only() -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["client"])

    async def noop(*args: Any) -> None:
        return None

    mw = ProxyHeadersMiddleware(app)
    asyncio.run(mw(scope_with(FWD), noop, noop))
    other = scope_with(FWD)
    other["client"] = ("10.0.0.1", 1)
    asyncio.run(mw(other, noop, noop))
    assert seen == [("1.2.3.4", 0), ("10.0.0.1", 1)]


def test_middleware_unix_socket_peer_needs_star() -> None:
    scope = scope_with(FWD)
    scope["client"] = None
    assert run_middleware(dict(scope), "127.0.0.1")["client"] is None
    assert run_middleware(dict(scope, headers=FWD), "*")["client"] == ("1.2.3.4", 0)


def test_middleware_websocket_scheme() -> None:
    seen = run_middleware(scope_with(FWD, "websocket"))
    assert seen["scheme"] == "wss"


def test_middleware_lifespan_untouched() -> None:
    scope: dict[str, Any] = {"type": "lifespan"}
    assert run_middleware(scope) == {"type": "lifespan"}


def test_middleware_cidr_and_list() -> None:
    scope = scope_with(FWD)
    scope["client"] = ("10.9.8.7", 1)
    assert run_middleware(scope, ["10.0.0.0/8"])["client"] == ("1.2.3.4", 0)
