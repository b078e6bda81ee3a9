"""HTTP/2 wire vocabulary and the types the rest of the package shares.

Holds the frame types, flags, error codes and settings ids of RFC 9113, the
connection preface, the window sizes, the 9-byte frame header
(:func:`pack_header`, :func:`unpack_header`) and whole frames (:func:`frame`
and friends), the server's limits (:class:`H2Limits`) and the SETTINGS they
make (:func:`server_preface`), what the owner of a connection receives
(:class:`H2Events`), the two errors (:class:`H2ConnectionError` closes the
connection, :class:`StreamError` resets one stream) and the state of one
stream (:class:`StreamState`).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Protocol

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

WRITE_HIGH_WATER = 65536  # outbound bytes waiting in a stream before its sender waits

_FRAME_HEADER = struct.Struct(">HBBBL")  # length (16 + 8 bits), type, flags, stream id
pack_header = _FRAME_HEADER.pack
unpack_header = _FRAME_HEADER.unpack_from
SETTING = struct.Struct(">HL")  # one SETTINGS parameter: id, value


def frame(ftype: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    """One whole frame."""
    size = len(payload)
    return pack_header(size >> 8, size & 0xFF, ftype, flags, stream_id) + payload


def window_update(stream_id: int, increment: int) -> bytes:
    """A WINDOW_UPDATE frame."""
    return pack_header(0, 4, WINDOW_UPDATE, 0, stream_id) + increment.to_bytes(4, "big")


def goaway(last_stream_id: int, code: int, debug: bytes = b"") -> bytes:
    """A GOAWAY frame."""
    return frame(GOAWAY, 0, 0, struct.pack(">LL", last_stream_id, code) + debug)


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


def server_preface(limits: H2Limits) -> bytes:
    """Our SETTINGS, and the WINDOW_UPDATE that gives the connection our larger window."""
    settings = [
        (S_MAX_CONCURRENT_STREAMS, limits.max_concurrent_streams),
        (S_INITIAL_WINDOW_SIZE, limits.initial_window),
        (S_MAX_HEADER_LIST_SIZE, limits.max_header_list_size),
    ]
    if limits.connect_protocol:
        settings.append((S_ENABLE_CONNECT_PROTOCOL, 1))
    preface = frame(SETTINGS, 0, 0, b"".join(SETTING.pack(k, v) for k, v in settings))
    if limits.initial_window > DEFAULT_WINDOW:
        preface += window_update(0, limits.initial_window - DEFAULT_WINDOW)
    return preface


class H2Events(Protocol):
    """What the owner of an :class:`~squall.protocols.http2.H2Protocol` receives."""

    def on_request(self, stream_id: int, head: RequestHead, end_stream: bool) -> None: ...
    def on_data(self, stream_id: int, data: bytes, end_stream: bool) -> None: ...
    def on_stream_reset(self, stream_id: int) -> None: ...
    def on_stream_writable(self, stream_id: int) -> None: ...
    def on_refused_header_block(self, stream_id: int, status: int) -> None: ...
    def on_goaway(self) -> None: ...


class H2ConnectionError(Exception):
    """A connection error: GOAWAY with ``code``, and the connection closes."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class StreamError(Exception):
    """A stream error: RST_STREAM with ``code`` on ``stream_id``."""

    def __init__(self, stream_id: int, code: int, message: str = "") -> None:
        super().__init__(message)
        self.stream_id = stream_id
        self.code = code


class StreamState:
    """One open stream: both directions' windows and ends, and the DATA waiting to go."""

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
