"""WebSocket (RFC 6455, RFC 7692) as a sans-I/O object: bytes in, messages out.

* :func:`check_handshake` validates an already-parsed HTTP/1.1 upgrade
  request (the request is never re-serialized) and returns the pieces of the
  101 response, or the status to refuse it with.
* :class:`WebSocketProtocol` frames messages. It uses the frame parser,
  masking and permessage-deflate of the ``websockets`` library's sans-I/O
  ``Protocol``, and adds what it leaves to its users: reassembly of
  fragmented messages, fail-fast UTF-8 validation of text (close 1007), and
  the size limit counted on the decompressed message (close 1009).

Nothing here imports asyncio.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
from typing import Any

from websockets.exceptions import NegotiationError
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Close, CloseCode, Frame, Opcode
from websockets.headers import build_extension, parse_extension
from websockets.protocol import State
from websockets.server import ServerProtocol

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
        self.deflate: Any = None  # the negotiated extension object
        self.deflate_params: bytes = b""


def accept_key(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())


def check_handshake(method: str, headers: list[tuple[bytes, bytes]], deflate: bool) -> Handshake:
    """Validate an HTTP/1.1 WebSocket upgrade request (RFC 6455 4.2.1)."""
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
    if method != "GET":
        raise HandshakeError(400, "WebSocket handshake must use GET", [])
    if version != b"13":
        raise HandshakeError(
            426, "Unsupported WebSocket version", [(b"sec-websocket-version", b"13")]
        )
    if key is None or keys != 1:
        raise HandshakeError(400, "Missing or duplicated Sec-WebSocket-Key", [])
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
    handshake = Handshake(accept_key(key), subprotocols)
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
        handshake.deflate = extension
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


# events from WebSocketProtocol.feed()
TEXT, BYTES, CLOSED, PONG = range(4)


class _Framing(ServerProtocol):
    """websockets' sans-I/O protocol, with one rule relaxed to match RFC 6455 5.4:
    a close frame may arrive between the fragments of a message (the unfinished
    message is dropped and the close answered normally, not with 1002)."""

    def recv_frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.CLOSE:
            self.current_size = None
        super().recv_frame(frame)


class WebSocketProtocol:
    """Frames and messages of one open WebSocket connection (server side)."""

    __slots__ = ("_decoder", "_parts", "_proto", "_text", "max_size")

    def __init__(self, handshake: Handshake | None, max_size: int | None) -> None:
        # max_size also bounds each frame's decompression (no deflate bombs)
        self._proto = _Framing(state=State.OPEN, max_size=max_size)
        if handshake is not None and handshake.deflate is not None:
            self._proto.extensions = [handshake.deflate]
        self.max_size = max_size
        self._parts: list[Any] = []  # str pieces for text, bytes for binary
        self._text = False
        self._decoder: Any = None

    # -- incoming

    def feed(self, data: bytes) -> list[tuple[int, Any]]:
        """Parse ``data``; return complete messages and the close, in order."""
        proto = self._proto
        proto.receive_data(data)
        out: list[tuple[int, Any]] = []
        frame_event = self._frame
        for event in proto.events_received():
            if isinstance(event, Frame):  # (once open, a server only receives frames)
                frame_event(event, out)
        if proto.state is State.CLOSED and not (out and out[-1][0] == CLOSED):
            out.append((CLOSED, self.close_info()))
        return out

    def _frame(self, frame: Frame, out: list[tuple[int, Any]]) -> None:
        # (the size limit is enforced by the frame parser, on decompressed sizes)
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if frame.fin:  # a whole message in one frame: the common case
                if opcode is Opcode.BINARY:
                    out.append((BYTES, bytes(frame.data)))
                    return
                try:
                    out.append((TEXT, bytes(frame.data).decode()))
                except UnicodeDecodeError:
                    self._proto.fail(CloseCode.INVALID_DATA, "Invalid UTF-8 in text message")
                return
            self._text = opcode is Opcode.TEXT
            self._parts = []
            self._decoder = codecs.getincrementaldecoder("utf-8")() if self._text else None
        elif opcode is not Opcode.CONT:
            if opcode is Opcode.CLOSE:
                out.append((CLOSED, self.close_info()))
            elif opcode is Opcode.PONG:
                out.append((PONG, bytes(frame.data)))
            return
        data = bytes(frame.data)
        decoder = self._decoder
        if decoder is not None:
            try:  # fail fast: at the first invalid fragment, not at the end
                self._parts.append(decoder.decode(data, final=frame.fin))
            except UnicodeDecodeError:
                self._proto.fail(CloseCode.INVALID_DATA, "Invalid UTF-8 in text message")
                return
        else:
            self._parts.append(data)
        if frame.fin:
            parts, self._parts = self._parts, []
            if self._text:
                out.append((TEXT, "".join(parts)))
            else:
                out.append((BYTES, b"".join(parts)))

    def close_info(self) -> tuple[int, str]:
        """The close code and reason as the app should see them."""
        proto = self._proto
        rcvd = proto.close_rcvd
        if rcvd is not None:
            return rcvd.code, rcvd.reason
        sent = proto.close_sent
        if sent is not None:
            return sent.code, sent.reason
        return 1006, ""

    # -- outgoing

    def send_text(self, text: str) -> bytes:
        self._proto.send_text(text.encode())
        return self.data_to_send()

    def send_bytes(self, data: bytes) -> bytes:
        self._proto.send_binary(data)
        return self.data_to_send()

    def send_ping(self, payload: bytes) -> bytes:
        self._proto.send_ping(payload)
        return self.data_to_send()

    def send_close(self, code: int = 1000, reason: str = "") -> bytes:
        if self._proto.state is State.OPEN:
            self._proto.send_close(code, reason)
        return self.data_to_send()

    def data_to_send(self) -> bytes:
        """Bytes to write; the end-of-stream marker (b"") is dropped: see ``wants_close``."""
        writes = self._proto.data_to_send()
        if len(writes) == 1:
            return writes[0]
        return b"".join(writes)

    @property
    def open(self) -> bool:
        return self._proto.state is State.OPEN

    @property
    def wants_close(self) -> bool:
        """The closing handshake is over (or failed): close the TCP connection."""
        return self._proto.state is State.CLOSED or self._proto.eof_sent


__all__ = [
    "BYTES",
    "CLOSED",
    "PONG",
    "TEXT",
    "Close",
    "Handshake",
    "HandshakeError",
    "WebSocketProtocol",
    "check_handshake",
]
