"""WebSocket framing (RFC 6455 section 5) and permessage-deflate (RFC 7692), server side.

:class:`WebSocketProtocol` is sans-I/O: ``feed(bytes)`` returns events,
``send_*`` return bytes to write. Rules it enforces:

* client frames must be masked; reserved bits must be clear (RSV1 only on
  the first frame of a compressed message); opcodes are 0-2 and 8-10;
  control frames are final and at most 125 bytes; continuation frames only
  inside a fragmented message, a new data frame only outside one. Each
  violation closes with 1002.
* text is valid UTF-8, checked as each fragment arrives (close 1007).
* a message larger than ``max_size`` closes with 1009 as soon as that is
  known: from the frame header when uncompressed, while inflating when
  compressed, so a decompression bomb never grows past the limit. An empty
  fragment counts as one byte, so endless empty fragments end the same way;
  fragments are kept as one growing buffer, so a message costs its size in
  memory however finely it is fragmented.
* pings are answered with pongs; a close frame is answered with a close
  frame (its code validated, its reason UTF-8) and ends the connection.
* control frames may come between the fragments of a message.

Nothing here imports asyncio.
"""

from __future__ import annotations

import codecs
import zlib
from typing import Any


def _unmask_python(data: bytes, mask: bytes) -> bytes:
    n = len(data)
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


try:  # websockets ships a C implementation of masking
    from websockets.speedups import apply_mask as _apply_mask
except ImportError:  # pragma: no cover - pure-Python fallback
    _apply_mask = _unmask_python  # type: ignore[assignment]


# events from feed()
TEXT, BYTES, CLOSED, PONG = range(4)
OPEN, CLOSING, DONE = range(3)  # connection states

_CONT, _TEXT, _BINARY, _CLOSE, _PING, _PONG = 0, 1, 2, 8, 9, 10
_DEFLATE_TAIL = b"\x00\x00\xff\xff"
_VALID_CLOSE = frozenset([1000, 1001, 1002, 1003, *range(1007, 1015)])


class DeflateParams:
    """The negotiated permessage-deflate parameters (remote = the client's frames)."""

    __slots__ = ("local_bits", "local_no_context", "remote_bits", "remote_no_context")

    def __init__(
        self, remote_no_context: bool, local_no_context: bool, remote_bits: int, local_bits: int
    ) -> None:
        self.remote_no_context = remote_no_context
        self.local_no_context = local_no_context
        self.remote_bits = max(9, remote_bits)  # zlib cannot use 8; a wider window reads it
        self.local_bits = local_bits


class ProtocolFailure(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _frame_head(opcode: int, length: int, rsv1: bool = False) -> bytes:
    first = 0x80 | opcode | (0x40 if rsv1 else 0)
    if length < 126:
        return bytes((first, length))
    if length < 65536:
        return bytes((first, 126)) + length.to_bytes(2, "big")
    return bytes((first, 127)) + length.to_bytes(8, "big")


class WebSocketProtocol:
    """Frames and messages of one open WebSocket connection."""

    __slots__ = (
        "_buf",
        "_compressed",
        "_decoder",
        "_deflate",
        "_deflater",
        "_inflater",
        "_opcode",
        "_out",
        "_parts",
        "_size",
        "close_rcvd",
        "close_sent",
        "max_size",
        "state",
    )

    def __init__(self, deflate: DeflateParams | None, max_size: int | None) -> None:
        self.max_size = max_size if max_size is not None else 1 << 62
        self.state = OPEN
        self._deflate = deflate
        self._inflater: Any = None
        self._deflater: Any = None
        self._buf = bytearray()
        self._out: list[bytes] = []
        self._opcode = -1  # of the message in progress; -1 when none
        self._compressed = False
        self._parts = bytearray()  # the fragments of the message in progress
        self._size = 0
        self._decoder: Any = None
        self.close_rcvd: tuple[int, str] | None = None
        self.close_sent: tuple[int, str] | None = None

    # -- incoming

    def feed(self, data: bytes) -> list[tuple[int, Any]]:
        """Parse ``data``; return complete messages, pongs and the close, in order."""
        out: list[tuple[int, Any]] = []
        if self.state == DONE or (self.state == CLOSING and self.close_rcvd is not None):
            return out
        buf: Any = data
        if self._buf:
            self._buf += data
            buf = self._buf
        try:
            used = self._parse(buf, out)
        except ProtocolFailure as exc:
            self._fail(exc.code, exc.reason, out)
            return out
        if buf is self._buf:
            del self._buf[:used]
        elif used < len(buf):
            self._buf += buf[used:]
        return out

    def _parse(self, buf: Any, out: list[tuple[int, Any]]) -> int:
        pos = 0
        end = len(buf)
        while end - pos >= 2 and self.state != DONE and self.close_rcvd is None:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if end - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if end - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            opcode = b0 & 0x0F
            self._check_header(b0, b1, opcode, length)
            total = head + 4 + length
            if end - pos < total:
                break
            mask = bytes(buf[pos + head : pos + head + 4])
            payload = bytes(buf[pos + head + 4 : pos + total])
            pos += total
            if length:
                payload = _apply_mask(payload, mask)
            if opcode >= 8:
                self._control(opcode, payload, out)
            else:
                self._data(opcode, bool(b0 & 0x80), bool(b0 & 0x40), payload, out)
        return pos

    def _check_header(self, b0: int, b1: int, opcode: int, length: int) -> None:
        if not b1 & 0x80:
            raise ProtocolFailure(1002, "Client frames must be masked")
        if opcode >= 8:
            if opcode > _PONG:
                raise ProtocolFailure(1002, f"Invalid opcode {opcode}")
            if not b0 & 0x80 or length > 125:
                raise ProtocolFailure(1002, "Control frames must be final and short")
            if b0 & 0x70:
                raise ProtocolFailure(1002, "Reserved bits set on a control frame")
            return
        if opcode > _BINARY:
            raise ProtocolFailure(1002, f"Invalid opcode {opcode}")
        if b0 & 0x30 or (b0 & 0x40 and (self._deflate is None or opcode == _CONT)):
            raise ProtocolFailure(1002, "Reserved bits set")
        if opcode == _CONT:
            if self._opcode < 0:
                raise ProtocolFailure(1002, "Continuation frame without a message")
        elif self._opcode >= 0:
            raise ProtocolFailure(1002, "New message inside a fragmented message")
        compressed = bool(b0 & 0x40) if opcode else self._compressed
        if (
            not compressed
            and (self._size if opcode == _CONT else 0) + (length or 1) > self.max_size
        ):
            raise ProtocolFailure(1009, "Message too big")
        if length > self.max_size + 1024:  # compressed data that large is never legitimate
            raise ProtocolFailure(1009, "Message too big")

    def _data(
        self, opcode: int, fin: bool, rsv1: bool, payload: bytes, out: list[tuple[int, Any]]
    ) -> None:
        if opcode:  # the first frame of a message
            if fin and not rsv1:  # a whole, uncompressed message: the common case
                if opcode == _BINARY:
                    out.append((BYTES, payload))
                    return
                try:
                    out.append((TEXT, payload.decode()))
                except UnicodeDecodeError:
                    raise ProtocolFailure(1007, "Invalid UTF-8 in text message") from None
                return
            self._opcode = opcode
            self._compressed = rsv1
            self._parts = bytearray()
            self._size = 0
            self._decoder = codecs.getincrementaldecoder("utf-8")() if opcode == _TEXT else None
        if self._compressed:
            payload = self._inflate(payload, fin)
        else:
            self._size += len(payload) or 1
        decoder = self._decoder
        if decoder is not None:
            try:  # fail fast: at the first invalid fragment (the text is decoded again at the end)
                decoder.decode(payload, final=fin)
            except UnicodeDecodeError:
                raise ProtocolFailure(1007, "Invalid UTF-8 in text message") from None
        self._parts += payload
        if fin:
            message = bytes(self._parts)
            self._parts = bytearray()
            self._opcode = -1
            if decoder is not None:
                out.append((TEXT, message.decode()))
            else:
                out.append((BYTES, message))

    def _inflate(self, payload: bytes, fin: bool) -> bytes:
        params = self._deflate
        assert params is not None
        inflater = self._inflater
        if inflater is None:
            inflater = self._inflater = zlib.decompressobj(-params.remote_bits)
        if fin:
            payload += _DEFLATE_TAIL
        room = self.max_size - self._size
        if room < 0:  # only empty fragments can get here
            raise ProtocolFailure(1009, "Message too big")
        try:
            data: bytes = inflater.decompress(payload, room + 1)
        except zlib.error:
            raise ProtocolFailure(1007, "Invalid compressed data") from None
        self._size += len(data) or 1
        if len(data) > room or inflater.unconsumed_tail:
            raise ProtocolFailure(1009, "Message too big")
        if fin and params.remote_no_context:
            self._inflater = None
        return data

    def _control(self, opcode: int, payload: bytes, out: list[tuple[int, Any]]) -> None:
        if opcode == _PING:
            if self.state == OPEN:
                self._out.append(_frame_head(_PONG, len(payload)) + payload)
        elif opcode == _PONG:
            out.append((PONG, payload))
        elif opcode == _CLOSE:
            code, reason = _parse_close(payload)
            self.close_rcvd = (code, reason)
            if self.state == OPEN:  # echo it, then we are done
                self._out.append(_frame_head(_CLOSE, len(payload)) + payload)
                self.close_sent = (code, reason)
            self.state = DONE
            out.append((CLOSED, (code, reason)))
        else:
            raise ProtocolFailure(1002, f"Invalid opcode {opcode}")

    def _fail(self, code: int, reason: str, out: list[tuple[int, Any]]) -> None:
        if self.close_sent is None:
            self._out.append(self._close_frame(code, reason))
            self.close_sent = (code, reason)
        self.state = DONE
        out.append((CLOSED, (code, reason)))

    # -- outgoing

    def send_text(self, text: str) -> bytes:
        return self._message(_TEXT, text.encode())

    def send_bytes(self, data: bytes) -> bytes:
        return self._message(_BINARY, bytes(data))

    def _message(self, opcode: int, data: bytes) -> bytes:
        params = self._deflate
        if params is None:
            return _frame_head(opcode, len(data)) + data
        deflater = self._deflater
        if deflater is None:
            deflater = self._deflater = zlib.compressobj(
                zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -params.local_bits, 5
            )
        packed: bytes = deflater.compress(data) + deflater.flush(zlib.Z_SYNC_FLUSH)
        if packed.endswith(_DEFLATE_TAIL):
            packed = packed[:-4]
        if params.local_no_context:
            self._deflater = None
        return _frame_head(opcode, len(packed), rsv1=True) + packed

    def send_ping(self, payload: bytes) -> bytes:
        return _frame_head(_PING, len(payload)) + payload

    def send_close(self, code: int = 1000, reason: str = "") -> bytes:
        """Start the closing handshake (only once, only while open)."""
        if self.state != OPEN:
            return b""
        self.close_sent = (code, reason)
        self.state = CLOSING
        return self._close_frame(code, reason)

    @staticmethod
    def _close_frame(code: int, reason: str) -> bytes:
        raw = reason.encode()
        if len(raw) > 123:  # a control frame's limit; cut on a character boundary
            raw = raw[:123].decode("utf-8", "ignore").encode()
        payload = code.to_bytes(2, "big") + raw
        return _frame_head(_CLOSE, len(payload)) + payload

    def data_to_send(self) -> bytes:
        """Replies the protocol owes the peer (pongs, the close echo or a failure's close)."""
        out = self._out
        if not out:
            return b""
        self._out = []
        return out[0] if len(out) == 1 else b"".join(out)

    @property
    def open(self) -> bool:
        return self.state == OPEN

    @property
    def wants_close(self) -> bool:
        """The closing handshake is over (or failed): close the TCP connection."""
        return self.state == DONE

    def close_info(self) -> tuple[int, str]:
        """The close code and reason as the app should see them."""
        if self.close_rcvd is not None:
            return self.close_rcvd
        if self.close_sent is not None:
            return self.close_sent
        return 1006, ""


def _parse_close(payload: bytes) -> tuple[int, str]:
    if not payload:
        return 1005, ""
    if len(payload) == 1:
        raise ProtocolFailure(1002, "Close frame with a 1-byte payload")
    code = int.from_bytes(payload[:2], "big")
    if code not in _VALID_CLOSE and not 3000 <= code <= 4999:
        raise ProtocolFailure(1002, f"Invalid close code {code}")
    try:
        reason = payload[2:].decode()
    except UnicodeDecodeError:
        raise ProtocolFailure(1007, "Invalid UTF-8 in close reason") from None
    return code, reason
