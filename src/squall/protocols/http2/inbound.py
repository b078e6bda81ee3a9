"""HTTP/2 (RFC 9113) for a server: the sans-I/O protocol object :class:`H2Protocol`.

Bytes go in through :meth:`H2Protocol.feed`; requests, body data and resets
come out as calls on an :class:`~squall.protocols.http2.frames.H2Events` owner.
This module is the frame parser; what is sent and the peer's windows are an
:class:`~squall.protocols.http2.flow.Outbound` (its ``send_*``, ``buffered``,
``consumed``, ``reset`` and ``data_to_send`` are the protocol's own), abuse
accounting a :class:`~squall.protocols.http2.guard.Guard`.

* A frame over our SETTINGS_MAX_FRAME_SIZE is refused before it is buffered.
* A connection error queues GOAWAY (never naming a stream a GOAWAY already
  excluded) and sets ``closed``: nothing more is read or sent. A stream error
  queues RST_STREAM and counts as a premature reset (MadeYouReset).
* Every header block is decoded, even for refused streams: HPACK never drifts.
* SETTINGS are checked, applied, acknowledged, and only then goes the DATA
  that a larger INITIAL_WINDOW_SIZE unblocked (peers count from the ACK).

Nothing here imports asyncio.
"""

from __future__ import annotations

from squall.protocols.http2.fields import MalformedRequest, request_head
from squall.protocols.http2.flow import Outbound
from squall.protocols.http2.frames import (
    ACK,
    COMPRESSION_ERROR,
    CONTINUATION,
    DATA,
    DEFAULT_FRAME_SIZE,
    END_HEADERS,
    END_STREAM,
    ENHANCE_YOUR_CALM,
    FLOW_CONTROL_ERROR,
    FRAME_SIZE_ERROR,
    GOAWAY,
    HEADERS,
    NO_ERROR,
    PADDED,
    PING,
    PREFACE,
    PRIORITY,
    PRIORITY_FLAG,
    PROTOCOL_ERROR,
    PUSH_PROMISE,
    REFUSED_STREAM,
    RST_STREAM,
    SETTINGS,
    STREAM_CLOSED,
    WINDOW_UPDATE,
    H2ConnectionError,
    H2Events,
    H2Limits,
    StreamError,
    frame,
    goaway,
    server_preface,
    unpack_header,
    window_update,
)
from squall.protocols.http2.guard import Guard
from squall.protocols.http2.hpack import Decoder, HeaderListTooLarge, HPACKError

SETTINGS_ACK = frame(SETTINGS, ACK, 0, b"")


class H2Protocol:
    """One server connection: feed it bytes, take the frames it queued."""

    __slots__ = (
        "_buf",
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
        "_settings_seen",
        "blocked",
        "buffered",
        "consumed",
        "data_to_send",
        "events",
        "goaway_last",
        "goaway_sent",
        "guard",
        "last_stream_id",
        "limits",
        "outbound",
        "reset",
        "send_data",
        "send_headers",
        "send_informational",
        "streams",
    )

    def __init__(self, events: H2Events, limits: H2Limits | None = None) -> None:
        self.events = events
        self.limits = limits = limits or H2Limits()
        self.guard = Guard(limits.max_concurrent_streams)
        self.outbound = outbound = Outbound(events, limits.initial_window)
        self.streams = outbound.streams
        self.blocked = outbound.blocked  # streams whose DATA waits for the peer's window
        self._out = outbound.out
        self._recent = outbound.recent
        # the owner's side: the Outbound's methods, bound once (no call in between)
        self.send_headers = outbound.send_headers
        self.send_data = outbound.send_data
        self.send_informational = outbound.send_informational
        self.buffered = outbound.buffered
        self.consumed = outbound.consumed
        self.reset = outbound.reset
        self.data_to_send = outbound.data_to_send
        self._buf = b""
        self._preface = True  # the client preface is still expected
        self._settings_seen = False
        self._decoder = Decoder()
        self.last_stream_id = 0
        self._recv_window = limits.initial_window
        self._recv_unacked = 0
        self._hb: list[bytes] = []  # header block fragments being collected
        self._hb_stream = 0
        self._hb_flags = 0
        self._hb_count = 0
        self._hb_size = 0
        self._hb_error = 0
        self.goaway_sent = False
        self.goaway_last = -1  # the last stream id a GOAWAY announced (-1: none sent)
        self._out.append(server_preface(limits))

    # -- state the owner reads

    @property
    def closed(self) -> bool:
        """A connection error was queued: close after sending."""
        return self.outbound.closed

    @property
    def control_queued(self) -> int:
        """Control frames queued since the transport last flushed (the owner zeroes it)."""
        return self.guard.control_queued

    @control_queued.setter
    def control_queued(self, value: int) -> None:
        self.guard.control_queued = value

    # -- output

    def goaway(self) -> None:
        """Graceful shutdown: GOAWAY(NO_ERROR) with the last stream id; no new streams."""
        if not self.goaway_sent and not self.outbound.closed:
            self.goaway_sent = True
            self.goaway_last = self.last_stream_id
            self._out.append(goaway(self.last_stream_id, NO_ERROR))

    def peer_left(self) -> None:
        """The peer sent GOAWAY: no new streams either way (and none is announced)."""
        if not self.goaway_sent:
            self.goaway_sent = True
            self.goaway_last = self.last_stream_id

    def fail(self, code: int, message: str = "") -> None:
        """Connection error: GOAWAY with ``code``; nothing more is read."""
        if self.outbound.closed:
            return
        self.outbound.closed = True
        self._buf = b""
        debug = message.encode("ascii", "replace")[:256]
        # streams opened after a GOAWAY were ignored: a later GOAWAY never names more
        # (RFC 9113 6.8)
        last = self.last_stream_id if self.goaway_last < 0 else self.goaway_last
        self._out.append(goaway(last, code, debug))

    def _reset(self, stream_id: int, code: int) -> None:
        """RST_STREAM for a stream error: the peer provoked it (MadeYouReset), so it counts."""
        known = stream_id in self.streams
        if not known and self.outbound.recent.get(stream_id) == 1:
            return  # reset by us already: nothing more goes on it (RFC 9113 6.4)
        self._out.append(frame(RST_STREAM, 0, stream_id, code.to_bytes(4, "big")))
        if known or stream_id <= self.last_stream_id:
            self.outbound.close_stream(stream_id, 1)
        self.guard.control()
        self.guard.premature_reset()
        if known and code != NO_ERROR:
            self.events.on_stream_reset(stream_id)

    # -- input

    def initiate_upgrade(self, settings_payload: bytes) -> None:
        """h2c Upgrade: apply HTTP2-Settings; stream 1 is the (half-closed) request."""
        self.outbound.apply_settings(settings_payload)  # no stream yet: nothing to flush
        self.outbound.open_stream(1).remote_closed = True
        self.last_stream_id = 1
        self.guard.streams_opened = 1

    def feed(self, data: bytes) -> None:
        if self.outbound.closed:
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
                hi, lo, ftype, flags, stream_id = unpack_header(buf, pos)
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
                        self.outbound.on_window_update(stream_id, payload, self.last_stream_id)
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
        return self.outbound.closed

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
            self._out.append(window_update(0, unacked))
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
            self.guard.spend()
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
            self.guard.spend()

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
            self.guard.spend()

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
                self.outbound.close_stream(stream_id)
            self.events.on_data(stream_id, b"", True)
            return
        # a new stream
        self.last_stream_id = stream_id
        if self.goaway_sent:
            return  # after GOAWAY new streams are ignored
        self.guard.streams_opened += 1
        if error:
            raise StreamError(stream_id, error, "Stream depends on itself")
        if len(self.streams) >= self.limits.max_concurrent_streams:
            raise StreamError(stream_id, REFUSED_STREAM, "Too many concurrent streams")
        if headers is None or len(headers) > self.limits.header_fields + 4:
            stream = self.outbound.open_stream(stream_id)
            stream.remote_closed = end_stream
            self.events.on_refused_header_block(stream_id, 431)
            return
        try:
            head = request_head(headers, self.limits.connect_protocol)
        except MalformedRequest as exc:
            raise StreamError(stream_id, PROTOCOL_ERROR, str(exc)) from None
        stream = self.outbound.open_stream(stream_id)
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
        self.guard.spend()
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
            self.guard.premature_reset()
        self.outbound.close_stream(stream_id)
        self.events.on_stream_reset(stream_id)

    def _on_ping(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id:
            raise H2ConnectionError(PROTOCOL_ERROR, "PING on a stream")
        if len(payload) != 8:
            raise H2ConnectionError(FRAME_SIZE_ERROR, "PING must be 8 bytes")
        if flags & ACK:
            return
        self.guard.spend()
        self._out.append(frame(PING, ACK, 0, payload))
        self.guard.control()

    def _on_goaway(self, stream_id: int, payload: bytes) -> None:
        if stream_id:
            raise H2ConnectionError(PROTOCOL_ERROR, "GOAWAY on a stream")
        if len(payload) < 8:
            raise H2ConnectionError(FRAME_SIZE_ERROR, "GOAWAY shorter than 8 bytes")
        self.events.on_goaway()

    def _on_settings(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id:
            raise H2ConnectionError(PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & ACK:
            if payload:
                raise H2ConnectionError(FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            return
        if len(payload) % 6:
            raise H2ConnectionError(FRAME_SIZE_ERROR, "SETTINGS length not a multiple of 6")
        self.guard.spend()
        grew = self.outbound.apply_settings(payload)
        self._out.append(SETTINGS_ACK)
        self.guard.control()
        if grew:  # after the ACK: the peer counts the larger window from it on
            self.outbound.flush_blocked()
