"""Building ASGI scopes from parsed requests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from squall.protocols.http1.head import HOST_VALUE, ParseError

if TYPE_CHECKING:
    from squall.protocols.http1.head import RequestHead


# The extensions every HTTP request has; each scope gets a copy of this dict (the
# values are empty dicts, the same for every request, as the spec has them empty).
HTTP_EXTENSIONS: dict[str, Any] = {
    "http.response.trailers": {},
    "http.response.early_hint": {},
    "http.response.pathsend": {},
    "http.response.zerocopysend": {},
}


class ConnInfo:
    """What a connection knows about its two ends, shared by its requests."""

    __slots__ = (
        "alpn",
        "client",
        "client_label",
        "scheme",
        "server",
        "tls",
        "trusted",
    )

    def __init__(
        self,
        client: tuple[str, int] | None,
        server: tuple[str, int | None] | None,
        scheme: str,
        trusted: bool,
        alpn: str | None = None,
        tls: dict[str, Any] | None = None,
    ) -> None:
        self.client = client
        self.server = server
        self.scheme = scheme
        self.trusted = trusted
        self.client_label = format_address(client)
        self.alpn = alpn  # the protocol TLS negotiated
        self.tls = tls  # the ASGI "tls" extension, for TLS connections

    def tls_extensions(self) -> dict[str, Any]:
        """A request's extensions on a TLS connection (a copy of the tls dict too)."""
        extensions = HTTP_EXTENSIONS.copy()
        if self.tls is not None:
            extensions["tls"] = dict(self.tls)
        return extensions


def format_address(addr: tuple[str, int] | None) -> str:
    if not addr:
        return "-"
    host, port = addr[0], addr[1]
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}"


def split_target(target: bytes) -> tuple[bytes, bytes]:
    """Split a request target into (raw path, query string); 400 if unusable."""
    if target[:1] != b"/":
        if target[:7].lower() == b"http://" or target[:8].lower() == b"https://":
            try:
                parts = urlsplit(target)
            except ValueError:  # e.g. a bad IP literal
                raise ParseError(400, "Invalid authority in request target") from None
            if not parts.netloc or HOST_VALUE(parts.netloc) is None:
                raise ParseError(400, "Invalid authority in request target")
            path = parts.path or b"/"
            return path, parts.query
        if target == b"*":
            return b"*", b""
        raise ParseError(400, "Invalid request target")
    index = target.find(b"?")
    if index < 0:
        return target, b""
    return target[:index], target[index + 1 :]


def decode_path(raw_path: bytes) -> str:
    try:
        path = raw_path.decode("ascii")
    except UnicodeDecodeError:
        raise ParseError(400, "Invalid characters in request target") from None
    if "%" in path:
        path = unquote(path)
    return path


def http_scope(
    head: RequestHead, info: ConnInfo, root_path: str, state: dict[str, Any]
) -> dict[str, Any]:
    target = head.target
    query = b""
    if target[:1] == b"/":  # origin-form, the common case, inline
        index = target.find(b"?")
        if index < 0:
            raw_path = target
        else:
            raw_path, query = target[:index], target[index + 1 :]
    else:
        raw_path, query = split_target(target)
        if target[:1] != b"*":  # absolute form: its authority is the host (RFC 9112 3.2.2)
            authority = urlsplit(target).netloc
            head.headers = [(b"host", authority)] + [
                (n, v) for n, v in head.headers if n != b"host"
            ]
    path = decode_path(raw_path)
    if root_path:
        path = root_path + path
        raw_path = root_path.encode() + raw_path
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": head.http_version,
        "server": info.server,
        "client": info.client,
        "scheme": info.scheme,
        "method": head.method,
        "root_path": root_path,
        "path": path,
        "raw_path": raw_path,
        "query_string": query,
        "headers": head.headers,
        "state": state.copy(),
        # a dict of its own per request: an app or middleware may add to it
        "extensions": HTTP_EXTENSIONS.copy() if info.tls is None else info.tls_extensions(),
    }


def websocket_scope(
    head: RequestHead,
    info: ConnInfo,
    root_path: str,
    state: dict[str, Any],
    subprotocols: list[str],
) -> dict[str, Any]:
    scope = http_scope(head, info, root_path, state)
    del scope["method"]
    scope["type"] = "websocket"
    scope["asgi"] = {"version": "3.0", "spec_version": "2.4"}
    scope["scheme"] = "wss" if info.scheme == "https" else "ws"
    scope["subprotocols"] = subprotocols
    scope["extensions"] = {"websocket.http.response": {}}
    if info.tls is not None:
        scope["extensions"]["tls"] = dict(info.tls)
    return scope
