"""HTTP/2 (RFC 9113) for a server, as a sans-I/O protocol object.

Bytes go in through :meth:`H2Protocol.feed`; requests, body data and resets
come out as calls on an :class:`H2Events` owner; frames to send collect in
an output buffer that the owner takes with :meth:`H2Protocol.data_to_send`.

Rules:

* Frames are read from a 9-byte header; a frame longer than our
  SETTINGS_MAX_FRAME_SIZE is refused before its payload is buffered.
* A *connection error* (:class:`H2ConnectionError` inside) queues GOAWAY
  with the code RFC 9113 names and sets :attr:`closed`; nothing more is read.
  A *stream error* queues RST_STREAM and reports the stream as reset.
* Every header block is decoded, even for streams about to be refused, so
  the HPACK state never drifts.
* Flow control: the connection window is replenished as DATA arrives (the
  per-stream windows bound what is buffered); a stream window is replenished
  as the owner reports the body consumed (:meth:`consumed`). Outbound DATA
  waits in the stream for the peer's windows; :meth:`buffered` tells the owner
  how much is waiting, and ``on_stream_writable`` when it drained.
* Abuse: cheap frames (PING, SETTINGS, PRIORITY, empty DATA) draw on a token
  bucket; streams reset before their response completed (by the peer, or by
  us after a peer error) are counted against the streams opened; outbound
  control frames not yet taken by the transport are bounded. Crossing any of
  them is a connection error ENHANCE_YOUR_CALM.

Nothing here imports asyncio.
"""

from __future__ import annotations

import struct
import time
from typing import TYPE_CHECKING, Protocol

from squall.protocols.http2.fields import MalformedRequest, request_head
from squall.protocols.http2.hpack import Decoder, HeaderListTooLarge, HPACKError

if TYPE_CHECKING:
    from squall.protocols.http1.head import RequestHead

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# frame types
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY = range(8)
WINDOW_UPDATE, CONTINUATION = 8, 9
# flags
END_STREAM = ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20
# error codes
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = range(4)
SETTINGS_TIMEOUT, STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM = range(4, 8)
CANCEL, COMPRESSION_ERROR, CONNECT_ERROR, ENHANCE_YOUR_CALM = range(8, 12)
INADEQUATE_SECURITY, HTTP_1_1_REQUIRED = 12, 13
# settings
S_HEADER_TABLE_SIZE, S_ENABLE_PUSH, S_MAX_CONCURRENT_STREAMS = 1, 2, 3
S_INITIAL_WINDOW_SIZE, S_MAX_FRAME_SIZE, S_MAX_HEADER_LIST_SIZE = 4, 5, 6
S_ENABLE_CONNECT_PROTOCOL = 8

MAX_WINDOW = 2**31 - 1
DEFAULT_WINDOW = 65535
DEFAULT_FRAME_SIZE = 16384

_FRAME_HEADER = struct.Struct(">HBBBL")  # length (16 + 8 bits), type, flags, stream id
_pack_header = _FRAME_HEADER.pack
_unpack_header = _FRAME_HEADER.unpack_from

WRITE_HIGH_WATER = 65536  # outbound bytes waiting in a stream before its sender waits

# cheap-frame budget: a bucket of CHEAP_BURST tokens refilled at CHEAP_RATE per second
CHEAP_BURST = 1000
CHEAP_RATE = 100.0
# premature resets: judged once this many streams were opened ...
RESET_MIN_STREAMS = 200
CONTROL_QUEUE_LIMIT = 1000  # outbound control frames the transport has not taken


class H2Limits:
    """Server-side HTTP/2 limits (see ``Config``)."""

    __slots__ = (
        "connect_protocol",
        "header_fields",
        "initial_window",
        "max_concurrent_streams",
        "max_continuation",
        "max_header_list_size",
    )

    def __init__(
        self,
        max_concurrent_streams: int = 100,
        max_header_list_size: int = 65536,
        initial_window: int = 1 << 20,
        max_continuation: int = 32,
        header_fields: int = 100,
        connect_protocol: bool = True,
    ) -> None:
        self.max_concurrent_streams = max_concurrent_streams
        self.max_header_list_size = max_header_list_size
        self.initial_window = initial_window
        self.max_continuation = max_continuation
        self.header_fields = header_fields
        self.connect_protocol = connect_protocol


class H2Events(Protocol):
    """What the owner of an :class:`H2Protocol` receives."""

    def on_request(self, stream_id: int, head: RequestHead, end_stream: bool) -> None: ...
    def on_data(self, stream_id: int, data: bytes, end_stream: bool) -> None: ...
    def on_stream_reset(self, stream_id: int) -> None: ...
    def on_stream_writable(self, stream_id: int) -> None: ...
    def on_refused_header_block(self, stream_id: int, status: int) -> None: ...
    def on_goaway(self) -> None: ...


class H2ConnectionError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class StreamError(Exception):
    def __init__(self, stream_id: int, code: int, message: str = "") -> None:
        super().__init__(message)
        self.stream_id = stream_id
        self.code = code


class _Stream:
    __slots__ = (
        "end_pending",
        "expected",
        "local_closed",
        "pending",
        "pending_size",
        "received",
        "recv_window",
        "remote_closed",
        "response_done",
        "send_window",
        "trailers",
        "unacked",
        "waiting",
    )

    def __init__(self, send_window: int, recv_window: int) -> None:
        self.send_window = send_window
        self.recv_window = recv_window
        self.unacked = 0  # body bytes consumed but not yet given back by WINDOW_UPDATE
        self.remote_closed = False
        self.local_closed = False
        self.response_done = False  # END_STREAM queued (maybe still behind the window)
        self.expected = -1  # declared content-length
        self.received = 0
        self.pending: list[bytes] = []
        self.pending_size = 0
        self.end_pending = False
        self.trailers: bytes | None = None
        self.waiting = False  # the owner waits for on_stream_writable


class H2Protocol:
    __slots__ = (
        "_buf",
        "_cheap_last",
        "_cheap_tokens",
        "_decoder",
        "_hb",
        "_hb_count",
        "_hb_error",
        "_hb_flags",
        "_hb_size",
        "_hb_stream",
        "_out",
        "_preface",
        "_recent",
        "_recv_unacked",
        "_recv_window",
        "_send_window",
        "_settings_seen",
        "blocked",
        "closed",
        "control_queued",
        "events",
        "goaway_sent",
        "last_stream_id",
        "limits",
        "peer_initial_window",
        "peer_max_frame",
        "premature_resets",
        "streams",
        "streams_opened",
    )

    def __init__(self, events: H2Events, limits: H2Limits | None = None) -> None:
        self.events = events
        self.limits = limits = limits or H2Limits()
        self._buf = b""
        self._preface = True  # the client preface is still expected
        self._settings_seen = False
        self._decoder = Decoder()
        self.streams: dict[int, _Stream] = {}
        self.blocked: dict[int, _Stream] = {}  # streams with DATA waiting for window
        # recently closed streams: 1 if we reset them (late frames are ignored), else 0
        self._recent: dict[int, int] = {}
        self.last_stream_id = 0
        self.peer_initial_window = DEFAULT_WINDOW
        self.peer_max_frame = DEFAULT_FRAME_SIZE
        self._send_window = DEFAULT_WINDOW
        self._recv_window = limits.initial_window
        self._recv_unacked = 0
        self._hb: list[bytes] = []  # header block fragments being collected
        self._hb_stream = 0
        self._hb_flags = 0
        self._hb_count = 0
        self._hb_size = 0
        self._hb_error = 0
        self._out: list[bytes] = []
        self.closed = False  # a connection error was queued: close after sending
        self.goaway_sent = False
        self._cheap_tokens = float(CHEAP_BURST)
        self._cheap_last = time.monotonic()
        self.streams_opened = 0
        self.premature_resets = 0
        self.control_queued = 0  # the owner zeroes it when the transport has flushed
        settings = [
            (S_MAX_CONCURRENT_STREAMS, limits.max_concurrent_streams),
            (S_INITIAL_WINDOW_SIZE, limits.initial_window),
            (S_MAX_HEADER_LIST_SIZE, limits.max_header_list_size),
        ]
        if limits.connect_protocol:
            settings.append((S_ENABLE_CONNECT_PROTOCOL, 1))
        self._frame(SETTINGS, 0, 0, b"".join(struct.pack(">HL", k, v) for k, v in settings))
        if limits.initial_window > DEFAULT_WINDOW:
            self._window_update(0, limits.initial_window - DEFAULT_WINDOW)

    # -- output

    def _frame(self, ftype: int, flags: int, stream_id: int, payload: bytes) -> None:
        size = len(payload)
        self._out.append(_pack_header(size >> 8, size & 0xFF, ftype, flags, stream_id) + payload)

    def _window_update(self, stream_id: int, increment: int) -> None:
        self._out.append(
            _pack_header(0, 4, WINDOW_UPDATE, 0, stream_id) + increment.to_bytes(4, "big")
        )

    def data_to_send(self) -> bytes:
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data

    def _control(self) -> None:
        self.control_queued += 1
        if self.control_queued > CONTROL_QUEUE_LIMIT:
            raise H2ConnectionError(ENHANCE_YOUR_CALM, "Too many control frames queued")

    # -- input

    def initiate_upgrade(self, settings_payload: bytes) -> None:
        """h2c Upgrade: apply HTTP2-Settings; stream 1 is the (half-closed) request."""
        self._apply_settings(settings_payload)
        stream = _Stream(self.peer_initial_window, self.limits.initial_window)
        stream.remote_closed = True
        self.streams[1] = stream
        self.last_stream_id = 1
        self.streams_opened = 1

    def feed(self, data: bytes) -> None:
        if self.closed:
            return
        buf = self._buf + data if self._buf else data
        pos = 0
        try:
            if self._preface:
                if len(buf) < 24:
                    if not PREFACE.startswith(buf):
                        raise H2ConnectionError(PROTOCOL_ERROR, "Invalid connection preface")
                    self._buf = buf
                    return
                if not buf.startswith(PREFACE):
                    raise H2ConnectionError(PROTOCOL_ERROR, "Invalid connection preface")
                self._preface = False
                pos = 24
            end = len(buf)
            max_frame = DEFAULT_FRAME_SIZE
            while end - pos >= 9:
                hi, lo, ftype, flags, stream_id = _unpack_header(buf, pos)
                length = (hi << 8) | lo
                if length > max_frame:
                    raise H2ConnectionError(FRAME_SIZE_ERROR, "Frame larger than MAX_FRAME_SIZE")
                stop = pos + 9 + length
                if stop > end:
                    break
                payload = buf[pos + 9 : stop]
                pos = stop
                stream_id &= 0x7FFFFFFF
                if not self._settings_seen:
                    if ftype != SETTINGS or flags & ACK:
                        raise H2ConnectionError(PROTOCOL_ERROR, "First frame must be SETTINGS")
                    self._settings_seen = True
                if self._hb_stream and ftype != CONTINUATION:
                    raise H2ConnectionError(PROTOCOL_ERROR, "Header block interrupted")
                try:
                    if ftype == DATA:
                        self._on_data(flags, stream_id, payload)
                    elif ftype == HEADERS:
                        self._on_headers(flags, stream_id, payload)
                    elif ftype == WINDOW_UPDATE:
                        self._on_window_update(stream_id, payload)
                    elif ftype == CONTINUATION:
                        self._on_continuation(flags, stream_id, payload)
                    elif ftype == SETTINGS:
                        self._on_settings(flags, stream_id, payload)
                    elif ftype == RST_STREAM:
                        self._on_rst_stream(stream_id, payload)
                    elif ftype == PING:
                        self._on_ping(flags, stream_id, payload)
                    elif ftype == PRIORITY:
                        self._on_priority(stream_id, payload)
                    elif ftype == GOAWAY:
                        self._on_goaway(stream_id, payload)
                    elif ftype == PUSH_PROMISE:
                        raise H2ConnectionError(PROTOCOL_ERROR, "Clients cannot push")
                    # other types are extensions: ignored (RFC 9113 5.5)
                except StreamError as refused:  # one name per type: mypyc types the variable
                    self._reset(refused.stream_id, refused.code)
                if self._failed():  # not self.closed: narrowed to False above (mypyc)
                    return
        except H2ConnectionError as exc:
            self.fail(exc.code, str(exc))
            return
        self._buf = buf[pos:] if pos < len(buf) else b""

    def _failed(self) -> bool:
        return self.closed

    def fail(self, code: int, message: str = "") -> None:
        """Connection error: GOAWAY with ``code``; nothing more is read."""
        if self.closed:
            return
        self.closed = True
        self._buf = b""
        debug = message.encode("ascii", "replace")[:256]
        self._frame(GOAWAY, 0, 0, struct.pack(">LL", self.last_stream_id, code) + debug)

    # -- frames

    def _on_data(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise H2ConnectionError(PROTOCOL_ERROR, "DATA on stream 0")
        length = len(payload)
        window = self._recv_window - length
        if window < 0:
            raise H2ConnectionError(FLOW_CONTROL_ERROR, "Connection window exceeded")
        unacked = self._recv_unacked + length
        if unacked >= self.limits.initial_window >> 1:
            self._window_update(0, unacked)
            window += unacked
            unacked = 0
        self._recv_window = window
        self._recv_unacked = unacked
        data = payload
        if flags & PADDED:
            if not length or payload[0] >= length:
                raise H2ConnectionError(PROTOCOL_ERROR, "Padding longer than the frame")
            data = payload[1 : length - payload[0]]
        stream = self.streams.get(stream_id)
        if stream is None:
            if stream_id > self.last_stream_id:
                raise H2ConnectionError(PROTOCOL_ERROR, "DATA on an idle stream")
            if self._recent.get(stream_id):
                return
            raise H2ConnectionError(STREAM_CLOSED, "DATA on a closed stream")
        if stream.remote_closed:
            raise StreamError(stream_id, STREAM_CLOSED, "DATA after END_STREAM")
        stream.recv_window -= length
        if stream.recv_window < 0:
            raise StreamError(stream_id, FLOW_CONTROL_ERROR, "Stream window exceeded")
        if length != len(data):
            stream.unacked += length - len(data)  # padding is never consumed by the app
        end_stream = bool(flags & END_STREAM)
        if not data and not end_stream:
            self._spend()
        received = stream.received + len(data)
        stream.received = received
        if stream.expected >= 0 and (
            received > stream.expected or (end_stream and received != stream.expected)
        ):
            raise StreamError(stream_id, PROTOCOL_ERROR, "Body length differs from content-length")
        if end_stream:
            stream.remote_closed = True
        self.events.on_data(stream_id, data, end_stream)

    def _on_headers(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise H2ConnectionError(PROTOCOL_ERROR, "HEADERS on stream 0")
        if not stream_id & 1:
            raise H2ConnectionError(PROTOCOL_ERROR, "Client stream ids are odd")
        length = len(payload)
        start = 0
        fragment = payload
        error = 0
        if flags & (PADDED | PRIORITY_FLAG):
            if flags & PADDED:
                start = 1
                length -= payload[0] if payload else 0
            if flags & PRIORITY_FLAG:
                start += 5
            if start > len(payload):
                raise H2ConnectionError(FRAME_SIZE_ERROR, "HEADERS too short")
            if length < start:
                raise H2ConnectionError(PROTOCOL_ERROR, "Padding longer than the frame")
            if flags & PRIORITY_FLAG:
                dependency = int.from_bytes(payload[start - 5 : start - 1], "big") & 0x7FFFFFFF
                if dependency == stream_id:
                    error = PROTOCOL_ERROR  # depends on itself; after decoding the block
            fragment = payload[start:length]
        stream = self.streams.get(stream_id)
        if stream is None and stream_id <= self.last_stream_id:
            recent = self._recent.get(stream_id)
            if recent is None:
                raise H2ConnectionError(PROTOCOL_ERROR, "Stream id lower than a previous one")
            if not recent:
                raise H2ConnectionError(STREAM_CLOSED, "HEADERS on a closed stream")
            error = error or -1  # a stream we reset: ignore it once decoded
        self._hb_stream = stream_id
        self._hb_flags = flags
        self._hb = [fragment]
        self._hb_size = len(fragment)
        self._hb_count = 0
        self._hb_error = error
        if flags & END_HEADERS:
            self._end_header_block()
        elif not fragment:
            self._spend()

    def _on_continuation(self, flags: int, stream_id: int, payload: bytes) -> None:
        if not self._hb_stream or stream_id != self._hb_stream:
            raise H2ConnectionError(PROTOCOL_ERROR, "CONTINUATION without a header block")
        self._hb_count += 1
        self._hb_size += len(payload)
        if self._hb_count > self.limits.max_continuation:
            raise H2ConnectionError(ENHANCE_YOUR_CALM, "Too many CONTINUATION frames")
        if self._hb_size > 2 * self.limits.max_header_list_size + 16384:
            raise H2ConnectionError(ENHANCE_YOUR_CALM, "Header block too large")
        self._hb.append(payload)
        if flags & END_HEADERS:
            self._end_header_block()
        elif not payload:
            self._spend()

    def _end_header_block(self) -> None:
        stream_id = self._hb_stream
        fragments = self._hb
        block = fragments[0] if len(fragments) == 1 else b"".join(fragments)
        self._hb_stream = 0
        self._hb = []
        end_stream = bool(self._hb_flags & END_STREAM)
        limit = self.limits.max_header_list_size
        try:
            headers = self._decoder.decode(block, limit)
        except HPACKError as bad:
            raise H2ConnectionError(COMPRESSION_ERROR, str(bad)) from None
        except HeaderListTooLarge as large:  # one name per type: mypyc types the variable
            if large.args[0] > 4 * limit:
                raise H2ConnectionError(ENHANCE_YOUR_CALM, "Header list far too large") from None
            headers = None
        error = self._hb_error
        if error < 0:
            return  # a stream we reset: its late header block only updated the table
        stream = self.streams.get(stream_id)
        if stream is not None:  # trailers
            if stream.remote_closed:
                raise StreamError(stream_id, STREAM_CLOSED, "HEADERS after END_STREAM")
            if error:
                raise StreamError(stream_id, error, "Stream depends on itself")
            if not end_stream:
                raise StreamError(stream_id, PROTOCOL_ERROR, "Trailers without END_STREAM")
            if headers is None or any(name[:1] == b":" for name, _ in headers):
                raise StreamError(stream_id, PROTOCOL_ERROR, "Pseudo-header in trailers")
            if stream.expected >= 0 and stream.received != stream.expected:
                raise StreamError(stream_id, PROTOCOL_ERROR, "Body shorter than content-length")
            stream.remote_closed = True
            if stream.local_closed:
                self._close_stream(stream_id)
            self.events.on_data(stream_id, b"", True)
            return
        # a new stream
        self.last_stream_id = stream_id
        if self.goaway_sent:
            return  # after GOAWAY new streams are ignored
        self.streams_opened += 1
        if error:
            raise StreamError(stream_id, error, "Stream depends on itself")
        if len(self.streams) >= self.limits.max_concurrent_streams:
            raise StreamError(stream_id, REFUSED_STREAM, "Too many concurrent streams")
        if headers is None or len(headers) > self.limits.header_fields + 4:
            stream = self.streams[stream_id] = _Stream(
                self.peer_initial_window, self.limits.initial_window
            )
            stream.remote_closed = end_stream
            self.events.on_refused_header_block(stream_id, 431)
            return
        try:
            head = request_head(headers, self.limits.connect_protocol)
        except MalformedRequest as exc:
            raise StreamError(stream_id, PROTOCOL_ERROR, str(exc)) from None
        stream = self.streams[stream_id] = _Stream(
            self.peer_initial_window, self.limits.initial_window
        )
        stream.expected = head.content_length
        if end_stream:
            stream.remote_closed = True
            if head.content_length > 0:
                raise StreamError(stream_id, PROTOCOL_ERROR, "Body shorter than content-length")
        self.events.on_request(stream_id, head, end_stream)

    def _on_priority(self, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise H2ConnectionError(PROTOCOL_ERROR, "PRIORITY on stream 0")
        if len(payload) != 5:
            raise StreamError(stream_id, FRAME_SIZE_ERROR, "PRIORITY must be 5 bytes")
        self._spend()
        if int.from_bytes(payload[:4], "big") & 0x7FFFFFFF == stream_id:
            raise StreamError(stream_id, PROTOCOL_ERROR, "Stream depends on itself")

    def _on_rst_stream(self, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise H2ConnectionError(PROTOCOL_ERROR, "RST_STREAM on stream 0")
        if len(payload) != 4:
            raise H2ConnectionError(FRAME_SIZE_ERROR, "RST_STREAM must be 4 bytes")
        if stream_id > self.last_stream_id:
            raise H2ConnectionError(PROTOCOL_ERROR, "RST_STREAM on an idle stream")
        stream = self.streams.get(stream_id)
        if stream is None:
            return
        if not stream.response_done:
            self._premature()
        self._close_stream(stream_id)
        self.events.on_stream_reset(stream_id)

    def _on_settings(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id:
            raise H2ConnectionError(PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & ACK:
            if payload:
                raise H2ConnectionError(FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            return
        if len(payload) % 6:
            raise H2ConnectionError(FRAME_SIZE_ERROR, "SETTINGS length not a multiple of 6")
        self._spend()
        self._apply_settings(payload)
        self._frame(SETTINGS, ACK, 0, b"")
        self._control()

    def _apply_settings(self, payload: bytes) -> None:
        for offset in range(0, len(payload) - 5, 6):
            key, value = struct.unpack_from(">HL", payload, offset)
            if key == S_INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise H2ConnectionError(FLOW_CONTROL_ERROR, "INITIAL_WINDOW_SIZE too large")
                delta = value - self.peer_initial_window
                self.peer_initial_window = value
                if delta:
                    for stream in self.streams.values():
                        stream.send_window += delta
                        if stream.send_window > MAX_WINDOW:
                            raise H2ConnectionError(FLOW_CONTROL_ERROR, "Stream window overflow")
                    if delta > 0:
                        self._flush_blocked()
            elif key == S_MAX_FRAME_SIZE:
                if not DEFAULT_FRAME_SIZE <= value <= 0xFFFFFF:
                    raise H2ConnectionError(PROTOCOL_ERROR, "Invalid MAX_FRAME_SIZE")
                self.peer_max_frame = value
            elif key == S_ENABLE_PUSH:
                if value > 1:
                    raise H2ConnectionError(PROTOCOL_ERROR, "Invalid ENABLE_PUSH")
            elif key == S_ENABLE_CONNECT_PROTOCOL and value > 1:
                raise H2ConnectionError(PROTOCOL_ERROR, "Invalid ENABLE_CONNECT_PROTOCOL")
            # HEADER_TABLE_SIZE: our encoder never uses the dynamic table.
            # MAX_CONCURRENT_STREAMS, MAX_HEADER_LIST_SIZE, unknown: nothing to do.

    def _on_ping(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id:
            raise H2ConnectionError(PROTOCOL_ERROR, "PING on a stream")
        if len(payload) != 8:
            raise H2ConnectionError(FRAME_SIZE_ERROR, "PING must be 8 bytes")
        if flags & ACK:
            return
        self._spend()
        self._frame(PING, ACK, 0, payload)
        self._control()

    def _on_goaway(self, stream_id: int, payload: bytes) -> None:
        if stream_id:
            raise H2ConnectionError(PROTOCOL_ERROR, "GOAWAY on a stream")
        if len(payload) < 8:
            raise H2ConnectionError(FRAME_SIZE_ERROR, "GOAWAY shorter than 8 bytes")
        self.events.on_goaway()

    def _on_window_update(self, stream_id: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise H2ConnectionError(FRAME_SIZE_ERROR, "WINDOW_UPDATE must be 4 bytes")
        increment = int.from_bytes(payload, "big") & 0x7FFFFFFF
        if stream_id == 0:
            if not increment:
                raise H2ConnectionError(PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            self._send_window += increment
            if self._send_window > MAX_WINDOW:
                raise H2ConnectionError(FLOW_CONTROL_ERROR, "Connection window overflow")
            if self.blocked:
                self._flush_blocked()
            return
        stream = self.streams.get(stream_id)
        if stream is None:
            if stream_id > self.last_stream_id:
                raise H2ConnectionError(PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream")
            return  # closed: a late update is harmless
        if not increment:
            raise StreamError(stream_id, PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
        stream.send_window += increment
        if stream.send_window > MAX_WINDOW:
            raise StreamError(stream_id, FLOW_CONTROL_ERROR, "Stream window overflow")
        if stream.pending_size or stream.end_pending:
            self._flush_stream(stream_id, stream)

    # -- abuse accounting

    def _spend(self) -> None:
        """One cheap frame drawn from the bucket."""
        now = time.monotonic()
        tokens = self._cheap_tokens + (now - self._cheap_last) * CHEAP_RATE
        self._cheap_last = now
        tokens = min(tokens, CHEAP_BURST)
        tokens -= 1
        self._cheap_tokens = tokens
        if tokens < 0:
            raise H2ConnectionError(ENHANCE_YOUR_CALM, "Flood of control or empty frames")

    def _premature(self) -> None:
        self.premature_resets += 1
        resets = self.premature_resets
        limit = self.limits.max_concurrent_streams
        if resets > 2 * limit + RESET_MIN_STREAMS or (
            self.streams_opened >= RESET_MIN_STREAMS and 2 * resets > self.streams_opened
        ):
            raise H2ConnectionError(ENHANCE_YOUR_CALM, "Too many streams reset")

    # -- the owner's side: responses

    def send_headers(self, stream_id: int, block: bytes, end_stream: bool) -> None:
        """Send a header block (from :func:`encode_response` or trailers)."""
        stream = self.streams.get(stream_id)
        if stream is None or stream.local_closed or self.closed:
            return
        if end_stream:
            stream.response_done = True
            if stream.pending_size:  # trailers go after the DATA still waiting
                stream.trailers = block
                stream.end_pending = True
                return
        self._header_frames(stream_id, block, end_stream)
        if end_stream:
            self._local_end(stream_id, stream)

    def _header_frames(self, stream_id: int, block: bytes, end_stream: bool) -> None:
        max_frame = self.peer_max_frame
        flags = END_STREAM if end_stream else 0
        if len(block) <= max_frame:
            self._frame(HEADERS, flags | END_HEADERS, stream_id, block)
            return
        self._frame(HEADERS, flags, stream_id, block[:max_frame])
        for start in range(max_frame, len(block), max_frame):
            last = start + max_frame >= len(block)
            chunk = block[start : start + max_frame]
            self._frame(CONTINUATION, END_HEADERS if last else 0, stream_id, chunk)

    def send_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        stream = self.streams.get(stream_id)
        if stream is None or stream.local_closed or stream.response_done or self.closed:
            return
        size = len(data)
        if (
            not stream.pending_size
            and size <= stream.send_window
            and size <= self._send_window
            and size <= self.peer_max_frame
        ):
            stream.send_window -= size
            self._send_window -= size
            flags = END_STREAM if end_stream else 0
            self._out.append(_pack_header(size >> 8, size & 0xFF, DATA, flags, stream_id))
            if size:
                self._out.append(data)
            if end_stream:
                stream.response_done = True
                self._local_end(stream_id, stream)
            return
        if data:
            stream.pending.append(data)
            stream.pending_size += size
        if end_stream:
            stream.end_pending = True
            stream.response_done = True
        self._flush_stream(stream_id, stream)

    def _flush_stream(self, stream_id: int, stream: _Stream) -> None:
        pending = stream.pending
        out = self._out
        max_frame = self.peer_max_frame
        while pending:
            allowed = min(stream.send_window, self._send_window, max_frame)
            if allowed <= 0:
                break
            chunk = pending[0]
            if len(chunk) > allowed:
                pending[0] = chunk[allowed:]
                chunk = chunk[:allowed]
            else:
                pending.pop(0)
            size = len(chunk)
            stream.pending_size -= size
            stream.send_window -= size
            self._send_window -= size
            last = not pending and stream.end_pending and stream.trailers is None
            flags = END_STREAM if last else 0
            out.append(_pack_header(size >> 8, size & 0xFF, DATA, flags, stream_id))
            out.append(chunk)
            if last:
                stream.end_pending = False
                self._local_end(stream_id, stream)
                return
        if pending:
            self.blocked[stream_id] = stream
        else:
            self.blocked.pop(stream_id, None)
            if stream.end_pending:  # everything went: END_STREAM (or the trailers)
                stream.end_pending = False
                if stream.trailers is not None:
                    self._header_frames(stream_id, stream.trailers, True)
                    stream.trailers = None
                else:
                    out.append(_pack_header(0, 0, DATA, END_STREAM, stream_id))
                self._local_end(stream_id, stream)
                return
        if stream.waiting and stream.pending_size < WRITE_HIGH_WATER:
            stream.waiting = False
            self.events.on_stream_writable(stream_id)

    def _flush_blocked(self) -> None:
        for stream_id, stream in list(self.blocked.items()):
            if self._send_window <= 0:
                return
            self._flush_stream(stream_id, stream)

    def buffered(self, stream_id: int) -> int:
        """Outbound bytes waiting for the peer's window; marks the stream as waited on."""
        stream = self.streams.get(stream_id)
        if stream is None:
            return 0
        if stream.pending_size >= WRITE_HIGH_WATER:
            stream.waiting = True
        return stream.pending_size

    def _local_end(self, stream_id: int, stream: _Stream) -> None:
        stream.local_closed = True
        if stream.remote_closed:
            self._close_stream(stream_id)
        else:
            # the response is complete before the request: ask the client to stop sending
            self._reset(stream_id, NO_ERROR, peer_caused=False)

    def _close_stream(self, stream_id: int, reset_by_us: int = 0) -> None:
        self.streams.pop(stream_id, None)
        self.blocked.pop(stream_id, None)
        recent = self._recent
        recent[stream_id] = reset_by_us
        if len(recent) > 1024:
            del recent[next(iter(recent))]

    def consumed(self, stream_id: int, size: int) -> None:
        """The app took ``size`` body bytes: give them back to the peer's window."""
        stream = self.streams.get(stream_id)
        if stream is None or stream.remote_closed:
            return
        unacked = stream.unacked + size
        if unacked >= self.limits.initial_window >> 1:
            self._window_update(stream_id, unacked)
            stream.recv_window += unacked
            unacked = 0
        stream.unacked = unacked

    def reset(self, stream_id: int, code: int = CANCEL) -> None:
        """The owner abandons a stream (e.g. the app failed mid-response)."""
        if stream_id in self.streams:
            self._reset(stream_id, code, peer_caused=False)

    def _reset(self, stream_id: int, code: int, peer_caused: bool = True) -> None:
        """RST_STREAM; a reset the peer provoked (MadeYouReset) counts as premature."""
        known = stream_id in self.streams
        self._frame(RST_STREAM, 0, stream_id, code.to_bytes(4, "big"))
        if known or stream_id <= self.last_stream_id:
            self._close_stream(stream_id, 1)
        if peer_caused:
            self._control()
            self._premature()
        if known and code != NO_ERROR:
            self.events.on_stream_reset(stream_id)

    def goaway(self) -> None:
        """Graceful shutdown: GOAWAY(NO_ERROR) with the last stream id; no new streams."""
        if not self.goaway_sent and not self.closed:
            self.goaway_sent = True
            self._frame(GOAWAY, 0, 0, struct.pack(">LL", self.last_stream_id, NO_ERROR))

    def send_informational(self, stream_id: int, block: bytes) -> None:
        if stream_id in self.streams and not self.closed:
            self._header_frames(stream_id, block, False)
