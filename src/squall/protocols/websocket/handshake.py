"""WebSocket (RFC 6455, RFC 7692) as a sans-I/O object: bytes in, messages out.

* :func:`check_handshake` validates an already-parsed HTTP/1.1 upgrade
  request (the request is never re-serialized) and returns the pieces of the
  101 response, or the status to refuse it with.
* Framing and compression live in ``wsframing.py``; the permessage-deflate
  offer is negotiated with the ``websockets`` library's parameter rules.

Nothing here imports asyncio.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from websockets.exceptions import NegotiationError
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.headers import build_extension, parse_extension

from squall.protocols.websocket.framing import (
    BYTES,
    CLOSED,
    PONG,
    TEXT,
    DeflateParams,
    WebSocketProtocol,
)

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class HandshakeError(Exception):
    def __init__(self, status: int, reason: str, headers: list[tuple[bytes, bytes]]) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers


class Handshake:
    """What a valid upgrade request asked for."""

    __slots__ = ("accept_key", "deflate", "deflate_params", "subprotocols")

    def __init__(self, accept_key: bytes, subprotocols: list[str]) -> None:
        self.accept_key = accept_key
        self.subprotocols = subprotocols
        self.deflate: DeflateParams | None = None  # negotiated permessage-deflate
        self.deflate_params: bytes = b""


def accept_key(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())


def check_handshake(
    method: str, headers: list[tuple[bytes, bytes]], deflate: bool, http2: bool = False
) -> Handshake:
    """Validate a WebSocket opening request: an HTTP/1.1 upgrade (RFC 6455 4.2.1),
    or with ``http2`` an extended CONNECT (RFC 8441 5, which has no key)."""
    key: bytes | None = None
    version: bytes | None = None
    protocols: list[bytes] = []
    extensions: list[bytes] = []
    keys = 0
    for name, value in headers:
        if name == b"sec-websocket-key":
            key = value.strip()
            keys += 1
        elif name == b"sec-websocket-version":
            version = value.strip()
        elif name == b"sec-websocket-protocol":
            protocols.append(value)
        elif name == b"sec-websocket-extensions":
            extensions.append(value)
    if method != ("CONNECT" if http2 else "GET"):
        raise HandshakeError(400, "WebSocket handshake must use GET", [])
    if version != b"13":
        raise HandshakeError(
            426, "Unsupported WebSocket version", [(b"sec-websocket-version", b"13")]
        )
    if http2:
        key = b""
    elif key is None or keys != 1:
        raise HandshakeError(400, "Missing or duplicated Sec-WebSocket-Key", [])
    else:
        try:
            if len(base64.b64decode(key, validate=True)) != 16:
                raise ValueError
        except (ValueError, binascii.Error):
            raise HandshakeError(400, "Invalid Sec-WebSocket-Key", []) from None
    try:
        subprotocols = [
            p.strip() for v in protocols for p in v.decode("ascii").split(",") if p.strip()
        ]
    except UnicodeDecodeError:
        raise HandshakeError(400, "Invalid Sec-WebSocket-Protocol", []) from None
    handshake = Handshake(accept_key(key) if key else b"", subprotocols)
    if deflate and extensions:
        _negotiate_deflate(handshake, extensions)
    return handshake


def _negotiate_deflate(handshake: Handshake, offers: list[bytes]) -> None:
    factory = ServerPerMessageDeflateFactory(
        server_max_window_bits=12, client_max_window_bits=12, compress_settings={"memLevel": 5}
    )
    try:
        parsed = [ext for value in offers for ext in parse_extension(value.decode("ascii"))]
    except Exception:
        raise HandshakeError(400, "Invalid Sec-WebSocket-Extensions", []) from None
    for name, params in parsed:
        if name != factory.name:
            continue
        try:
            response_params, extension = factory.process_request_params(params, [])
        except NegotiationError:
            continue
        handshake.deflate = DeflateParams(
            extension.remote_no_context_takeover,
            extension.local_no_context_takeover,
            extension.remote_max_window_bits or 15,
            extension.local_max_window_bits or 15,
        )
        handshake.deflate_params = build_extension([(name, response_params)]).encode()
        return


def accept_response(
    handshake: Handshake,
    subprotocol: str | None,
    headers: list[tuple[bytes, bytes]],
    defaults: bytes,
) -> bytes:
    """The 101 response; ``headers`` are the app's (already validated), ``defaults``
    the server's default header lines (those the app sets itself are left out)."""
    parts = [
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n",
        b"sec-websocket-accept: " + handshake.accept_key + b"\r\n",
    ]
    if subprotocol is not None:
        parts.append(b"sec-websocket-protocol: " + subprotocol.encode() + b"\r\n")
    if handshake.deflate_params:
        parts.append(b"sec-websocket-extensions: " + handshake.deflate_params + b"\r\n")
    own = {name.lower() for name, _ in headers}
    for line in defaults.splitlines(keepends=True):
        if line.split(b":", 1)[0].lower() not in own:
            parts.append(line)
    parts += [b"%s: %s\r\n" % (name, value) for name, value in headers]
    parts.append(b"\r\n")
    return b"".join(parts)


__all__ = [
    "BYTES",
    "CLOSED",
    "PONG",
    "TEXT",
    "Handshake",
    "HandshakeError",
    "WebSocketProtocol",
    "check_handshake",
]
