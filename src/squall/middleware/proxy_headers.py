"""Trusting forwarding headers from known proxies.

``X-Forwarded-For`` (right-most untrusted hop), ``-Proto``, ``-Host``,
``-Port``, ``-Prefix`` and RFC 7239 ``Forwarded`` are read only when the peer
is in ``--forwarded-allow-ips`` (IPs, CIDR networks, ``*``).

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


def parse_forwarded(value: str) -> list[dict[str, str]]:
    """RFC 7239 ``Forwarded`` elements, first hop first; parameter names lowercased."""
    elements: list[dict[str, str]] = []
    for element in _split_unquoted(value, ","):
        params: dict[str, str] = {}
        for pair in _split_unquoted(element, ";"):
            name, sep, raw = pair.partition("=")
            if not sep:
                continue
            raw = raw.strip()
            if len(raw) >= 2 and raw[0] == raw[-1] == '"':
                raw = raw[1:-1].replace('\\"', '"')
            params[name.strip().lower()] = raw
        elements.append(params)
    return elements


def _split_unquoted(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    tail = "".join(current).strip()
    if tail:
        parts.append(tail)
    return [p for p in parts if p]


def apply_proxy_headers(scope: Scope, trusted: TrustedHosts) -> None:
    """Rewrite the scope from a trusted peer's forwarding headers.

    ``Forwarded`` (RFC 7239) wins over the ``X-Forwarded-*`` headers when
    present. The client is the right-most hop that is not a trusted proxy;
    the scheme and host come from the same hop's element (``Forwarded``) or
    the headers (``X-Forwarded-Proto``, ``-Host``, ``-Port``);
    ``X-Forwarded-Prefix`` becomes the ``root_path`` (and prefixes ``path``).
    """
    forwarded_for: list[bytes] = []
    forwarded: list[bytes] = []
    proto = host = port = prefix = None
    for name, value in scope["headers"]:
        if name == b"x-forwarded-for":
            forwarded_for.append(value)
        elif name == b"x-forwarded-proto":
            proto = value.decode("latin-1")
        elif name == b"x-forwarded-host":
            host = value.decode("latin-1")
        elif name == b"x-forwarded-port":
            port = value.decode("latin-1")
        elif name == b"x-forwarded-prefix":
            prefix = value.decode("latin-1")
        elif name == b"forwarded":
            forwarded.append(value)
    client: tuple[str, int] | None = None
    if forwarded:
        elements = parse_forwarded(b", ".join(forwarded).decode("latin-1"))
        chosen = _client_element(elements, trusted)
        if chosen is not None:
            if "for" in chosen:
                client = _split_hop(chosen["for"])
            proto = chosen.get("proto", proto)
            host = chosen.get("host", host)
    elif forwarded_for:
        client = trusted.client_from(b", ".join(forwarded_for).decode("latin-1"))
    if client is not None:
        scope["client"] = client
    if proto is not None:
        scheme = proto.split(",")[-1].strip().lower()
        if scheme in ("http", "https", "ws", "wss"):
            if scope["type"] == "websocket":
                scheme = scheme.replace("http", "ws")
            scope["scheme"] = scheme
    if host is not None:
        _apply_host(scope, host.split(",")[-1].strip(), port)
    elif port is not None and scope.get("server"):
        _apply_port(scope, port)
    if prefix is not None:
        _apply_prefix(scope, prefix.split(",")[-1].strip())


def _client_element(elements: list[dict[str, str]], trusted: TrustedHosts) -> dict[str, str] | None:
    """The element of the right-most hop that is not a trusted proxy."""
    if not elements:
        return None
    for element in reversed(elements):
        host, _ = _split_hop(element.get("for", ""))
        if host not in trusted:
            return element
    return elements[0]


def _apply_host(scope: Scope, host: str, port: str | None) -> None:
    if not host or any(c in host for c in "\r\n\x00/"):
        return
    headers = [(n, v) for n, v in scope["headers"] if n != b"host"]
    headers.insert(0, (b"host", host.encode("latin-1")))
    scope["headers"] = headers
    name, server_port = _split_hop(host)
    if port is not None and port.strip().isdigit():
        server_port = int(port.strip())
    elif not server_port:
        server_port = 443 if scope.get("scheme") in ("https", "wss") else 80
    scope["server"] = (name, server_port)


def _apply_port(scope: Scope, port: str) -> None:
    value = port.rsplit(",", maxsplit=1)[-1].strip()
    if value.isdigit():
        scope["server"] = (scope["server"][0], int(value))


def _apply_prefix(scope: Scope, prefix: str) -> None:
    prefix = prefix.rstrip("/")
    if not prefix.startswith("/") or any(c in prefix for c in "?#\r\n\x00"):
        return
    scope["root_path"] = prefix + scope.get("root_path", "")
    scope["path"] = prefix + scope["path"]
    if "raw_path" in scope and scope["raw_path"] is not None:
        scope["raw_path"] = prefix.encode("latin-1") + scope["raw_path"]


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
