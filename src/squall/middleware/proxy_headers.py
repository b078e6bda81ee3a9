"""Trusting ``X-Forwarded-For`` and ``X-Forwarded-Proto`` from known proxies.

Squall applies this while building each scope (the peer's trust is decided
once per connection); :class:`ProxyHeadersMiddleware` offers the same as a
standalone ASGI middleware.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from squall.asgi.types import ASGIApp, Receive, Scope, Send

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedHosts:
    """A set of IPs, CIDR networks and literals; ``*`` trusts everything."""

    def __init__(self, hosts: str | Iterable[str]) -> None:
        if isinstance(hosts, str):
            hosts = hosts.split(",")
        items = [h.strip() for h in hosts if h.strip()]
        self.always = "*" in items
        self.networks: list[_Network] = []
        self.literals: set[str] = set()
        for item in items:
            try:
                self.networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                self.literals.add(item)
        self._cache: dict[str, bool] = {}

    def __contains__(self, host: object) -> bool:
        if self.always:
            return True
        if not isinstance(host, str):
            return False
        known = self._cache.get(host)
        if known is None:
            known = self._check(host)
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[host] = known
        return known

    def _check(self, host: str) -> bool:
        if host in self.literals:
            return True
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(ip in net for net in self.networks)

    def client_from(self, forwarded_for: str) -> tuple[str, int] | None:
        """The right-most untrusted hop of an X-Forwarded-For list."""
        hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
        if not hops:
            return None
        chosen = hops[0]
        for hop in reversed(hops):
            host, _ = _split_hop(hop)
            if host not in self:
                chosen = hop
                break
        return _split_hop(chosen)


def _split_hop(hop: str) -> tuple[str, int]:
    if hop.startswith("["):  # [v6]:port
        end = hop.find("]")
        host = hop[1:end] if end > 0 else hop
        port = hop[end + 2 :] if end > 0 and hop[end + 1 : end + 2] == ":" else ""
    elif hop.count(":") == 1:
        host, port = hop.split(":")
    else:
        host, port = hop, ""
    return host, int(port) if port.isdigit() else 0


def apply_proxy_headers(scope: Scope, trusted: TrustedHosts) -> None:
    """Rewrite ``client`` and ``scheme`` from a trusted peer's headers."""
    forwarded_for: list[bytes] = []
    proto: bytes | None = None
    for name, value in scope["headers"]:
        if name == b"x-forwarded-for":
            forwarded_for.append(value)
        elif name == b"x-forwarded-proto":
            proto = value
    if proto is not None:
        scheme = proto.decode("latin-1").strip().lower()
        if scheme in ("http", "https", "ws", "wss"):
            if scope["type"] == "websocket":
                scheme = scheme.replace("http", "ws")
            scope["scheme"] = scheme
    if forwarded_for:
        client = trusted.client_from(b", ".join(forwarded_for).decode("latin-1"))
        if client is not None:
            scope["client"] = client


class ProxyHeadersMiddleware:
    """ASGI middleware form of Squall's proxy-header handling."""

    def __init__(self, app: ASGIApp, trusted_hosts: str | Iterable[str] = "127.0.0.1") -> None:
        self.app = app
        self.trusted = TrustedHosts(trusted_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            client: Any = scope.get("client")
            if (client is None and self.trusted.always) or (client and client[0] in self.trusted):
                apply_proxy_headers(scope, self.trusted)
        await self.app(scope, receive, send)
