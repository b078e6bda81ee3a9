"""The outbound side of an HTTP/2 connection: :class:`Outbound`.

It holds what the owner sends (header blocks, DATA, informational headers,
resets), the output buffer, the peer's settings and flow-control windows (one
per stream, one for the connection) with the DATA waiting for them, and the
stream table it shares with the parser
(:class:`~squall.protocols.http2.inbound.H2Protocol`, which hands the owner
this object's methods as its own).

Outbound DATA goes at once while the windows allow; the rest waits in its
stream (``pending``), and the stream in ``blocked`` while the peer's window
is spent. :meth:`Outbound.buffered` tells the owner how much waits, and
``on_stream_writable`` when it drained below ``WRITE_HIGH_WATER``. A stream
receive window is given back as the owner reports the body consumed
(:meth:`Outbound.consumed`).
"""

from __future__ import annotations

from squall.protocols.http2.frames import (
    CANCEL,
    CONTINUATION,
    DATA,
    DEFAULT_FRAME_SIZE,
    DEFAULT_WINDOW,
    END_HEADERS,
    END_STREAM,
    FLOW_CONTROL_ERROR,
    FRAME_SIZE_ERROR,
    HEADERS,
    MAX_WINDOW,
    NO_ERROR,
    PROTOCOL_ERROR,
    RST_STREAM,
    S_ENABLE_CONNECT_PROTOCOL,
    S_ENABLE_PUSH,
    S_INITIAL_WINDOW_SIZE,
    S_MAX_FRAME_SIZE,
    SETTING,
    WRITE_HIGH_WATER,
    H2ConnectionError,
    H2Events,
    StreamError,
    StreamState,
    frame,
    pack_header,
    window_update,
)

RECENT_STREAMS = 1024  # closed streams remembered, for the frames still in flight


class Outbound:
    """Frames the owner sends, and the peer's windows they wait for."""

    __slots__ = (
        "blocked",
        "closed",
        "events",
        "our_initial_window",
        "out",
        "peer_initial_window",
        "peer_max_frame",
        "recent",
        "send_window",
        "streams",
    )

    def __init__(self, events: H2Events, initial_window: int) -> None:
        self.events = events
        self.our_initial_window = initial_window  # a stream's receive window
        self.out: list[bytes] = []  # frames queued, taken by ``data_to_send``
        self.streams: dict[int, StreamState] = {}  # open streams, shared with the parser
        self.blocked: dict[int, StreamState] = {}  # streams with DATA waiting for window
        # recently closed streams: 1 if we reset them (late frames are ignored), else 0
        self.recent: dict[int, int] = {}
        self.closed = False  # a connection error was queued: nothing more is sent
        self.peer_initial_window = DEFAULT_WINDOW
        self.peer_max_frame = DEFAULT_FRAME_SIZE
        self.send_window = DEFAULT_WINDOW  # the connection's

    # -- the stream table and the output buffer

    def open_stream(self, stream_id: int) -> StreamState:
        """A new stream, with the windows the settings give it."""
        stream = StreamState(self.peer_initial_window, self.our_initial_window)
        self.streams[stream_id] = stream
        return stream

    def close_stream(self, stream_id: int, reset_by_us: int = 0) -> None:
        """Forget the stream; remember for a while that it was closed (and how)."""
        self.streams.pop(stream_id, None)
        self.blocked.pop(stream_id, None)
        recent = self.recent
        recent[stream_id] = reset_by_us
        if len(recent) > RECENT_STREAMS:
            del recent[next(iter(recent))]

    def data_to_send(self) -> bytes:
        """Take the frames queued."""
        out = self.out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data

    # -- what the owner sends

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
        self.header_frames(stream_id, block, end_stream)
        if end_stream:
            self.local_end(stream_id, stream)

    def send_informational(self, stream_id: int, block: bytes) -> None:
        """Send a 1xx header block."""
        if stream_id in self.streams and not self.closed:
            self.header_frames(stream_id, block, False)

    def header_frames(self, stream_id: int, block: bytes, end_stream: bool) -> None:
        """HEADERS, and CONTINUATION for what exceeds the peer's frame size."""
        max_frame = self.peer_max_frame
        flags = END_STREAM if end_stream else 0
        out = self.out
        if len(block) <= max_frame:
            out.append(frame(HEADERS, flags | END_HEADERS, stream_id, block))
            return
        out.append(frame(HEADERS, flags, stream_id, block[:max_frame]))
        for start in range(max_frame, len(block), max_frame):
            last = start + max_frame >= len(block)
            chunk = block[start : start + max_frame]
            out.append(frame(CONTINUATION, END_HEADERS if last else 0, stream_id, chunk))

    def send_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        """Send body data: at once while the windows allow, else once they open."""
        stream = self.streams.get(stream_id)
        if stream is None or stream.local_closed or stream.response_done or self.closed:
            return
        size = len(data)
        if (
            not stream.pending_size
            and size <= stream.send_window
            and size <= self.send_window
            and size <= self.peer_max_frame
        ):
            stream.send_window -= size
            self.send_window -= size
            flags = END_STREAM if end_stream else 0
            self.out.append(pack_header(size >> 8, size & 0xFF, DATA, flags, stream_id))
            if size:
                self.out.append(data)
            if end_stream:
                stream.response_done = True
                self.local_end(stream_id, stream)
            return
        if data:
            stream.pending.append(data)
            stream.pending_size += size
        if end_stream:
            stream.end_pending = True
            stream.response_done = True
        self.flush_stream(stream_id, stream)

    def buffered(self, stream_id: int) -> int:
        """Outbound bytes waiting for the peer's window; marks the stream as waited on."""
        stream = self.streams.get(stream_id)
        if stream is None:
            return 0
        if stream.pending_size >= WRITE_HIGH_WATER:
            stream.waiting = True
        return stream.pending_size

    def consumed(self, stream_id: int, size: int) -> None:
        """The app took ``size`` body bytes: give them back to the peer's window."""
        stream = self.streams.get(stream_id)
        if stream is None or stream.remote_closed or self.closed:
            return
        unacked = stream.unacked + size
        if unacked >= self.our_initial_window >> 1:
            self.out.append(window_update(stream_id, unacked))
            stream.recv_window += unacked
            unacked = 0
        stream.unacked = unacked

    def reset(self, stream_id: int, code: int = CANCEL) -> None:
        """The owner abandons a stream (e.g. the app failed mid-response)."""
        if stream_id not in self.streams:
            return
        if not self.closed:  # after a connection error's GOAWAY nothing more is sent
            self.out.append(frame(RST_STREAM, 0, stream_id, code.to_bytes(4, "big")))
        self.close_stream(stream_id, 1)
        if code != NO_ERROR:
            self.events.on_stream_reset(stream_id)

    def local_end(self, stream_id: int, stream: StreamState) -> None:
        """END_STREAM was queued."""
        stream.local_closed = True
        if stream.remote_closed:
            self.close_stream(stream_id)
        else:
            # the response is complete before the request: ask the client to stop sending
            self.reset(stream_id, NO_ERROR)

    # -- DATA waiting for the windows

    def flush_stream(self, stream_id: int, stream: StreamState) -> None:
        """Send what the windows allow of the stream's waiting DATA, then its end."""
        pending = stream.pending
        out = self.out
        max_frame = self.peer_max_frame
        while pending:
            allowed = min(stream.send_window, self.send_window, max_frame)
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
            self.send_window -= size
            last = not pending and stream.end_pending and stream.trailers is None
            flags = END_STREAM if last else 0
            out.append(pack_header(size >> 8, size & 0xFF, DATA, flags, stream_id))
            out.append(chunk)
            if last:
                stream.end_pending = False
                self.local_end(stream_id, stream)
                return
        if pending:
            self.blocked[stream_id] = stream
        else:
            self.blocked.pop(stream_id, None)
            if stream.end_pending:  # everything went: END_STREAM (or the trailers)
                stream.end_pending = False
                if stream.trailers is not None:
                    self.header_frames(stream_id, stream.trailers, True)
                    stream.trailers = None
                else:
                    out.append(pack_header(0, 0, DATA, END_STREAM, stream_id))
                self.local_end(stream_id, stream)
                return
        if stream.waiting and stream.pending_size < WRITE_HIGH_WATER:
            stream.waiting = False
            self.events.on_stream_writable(stream_id)

    def flush_blocked(self) -> None:
        """Send what the windows now allow of every blocked stream's DATA."""
        for stream_id, stream in list(self.blocked.items()):
            if self.send_window <= 0:
                return
            self.flush_stream(stream_id, stream)

    # -- the peer's windows and settings

    def on_window_update(self, stream_id: int, payload: bytes, last_stream_id: int) -> None:
        """A WINDOW_UPDATE frame from the peer (``last_stream_id``: the highest opened)."""
        if len(payload) != 4:
            raise H2ConnectionError(FRAME_SIZE_ERROR, "WINDOW_UPDATE must be 4 bytes")
        increment = int.from_bytes(payload, "big") & 0x7FFFFFFF
        if stream_id == 0:
            if not increment:
                raise H2ConnectionError(PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            self.send_window += increment
            if self.send_window > MAX_WINDOW:
                raise H2ConnectionError(FLOW_CONTROL_ERROR, "Connection window overflow")
            if self.blocked:
                self.flush_blocked()
            return
        stream = self.streams.get(stream_id)
        if stream is None:
            if stream_id > last_stream_id:
                raise H2ConnectionError(PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream")
            return  # closed: a late update is harmless
        if not increment:
            raise StreamError(stream_id, PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
        stream.send_window += increment
        if stream.send_window > MAX_WINDOW:
            raise StreamError(stream_id, FLOW_CONTROL_ERROR, "Stream window overflow")
        if stream.pending_size or stream.end_pending:
            self.flush_stream(stream_id, stream)

    def apply_settings(self, payload: bytes) -> bool:
        """The peer's SETTINGS (they bound what we send): check them all, then apply them.

        Nothing is sent here, as the SETTINGS ACK must go before any DATA on a
        larger window: returns whether the windows grew, so that blocked DATA
        may go (:meth:`flush_blocked`) once the ACK is queued.
        """
        initial_window = -1
        max_frame = 0
        for offset in range(0, len(payload) - 5, 6):
            key, value = SETTING.unpack_from(payload, offset)
            if key == S_INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise H2ConnectionError(FLOW_CONTROL_ERROR, "INITIAL_WINDOW_SIZE too large")
                initial_window = value
            elif key == S_MAX_FRAME_SIZE:
                if not DEFAULT_FRAME_SIZE <= value <= 0xFFFFFF:
                    raise H2ConnectionError(PROTOCOL_ERROR, "Invalid MAX_FRAME_SIZE")
                max_frame = value
            elif key == S_ENABLE_PUSH:
                if value > 1:
                    raise H2ConnectionError(PROTOCOL_ERROR, "Invalid ENABLE_PUSH")
            elif key == S_ENABLE_CONNECT_PROTOCOL and value > 1:
                raise H2ConnectionError(PROTOCOL_ERROR, "Invalid ENABLE_CONNECT_PROTOCOL")
            # HEADER_TABLE_SIZE: our encoder never uses the dynamic table.
            # MAX_CONCURRENT_STREAMS, MAX_HEADER_LIST_SIZE, unknown: nothing to do.
        if max_frame:
            self.peer_max_frame = max_frame
        if initial_window < 0:
            return False
        delta = initial_window - self.peer_initial_window
        self.peer_initial_window = initial_window
        if delta:  # every stream's window moves by the difference
            for stream in self.streams.values():
                stream.send_window += delta
                if stream.send_window > MAX_WINDOW:
                    raise H2ConnectionError(FLOW_CONTROL_ERROR, "Stream window overflow")
        return delta > 0
