"""A raw HTTP/2 client for the h2spec-style conformance cases (RFC 9113, RFC 7541).

Frames are built by hand (so that the cases can send what a well-behaved
library refuses to: stream 0 DATA, bad lengths, bad padding, ...) and the
server's frames are parsed with ``hyperframe``. Header blocks are encoded with
``hpack.Encoder`` (one per connection, like h2spec's), or written byte by
byte for the HPACK error cases.

Nothing sleeps: every expectation reads frames (socket timeout ``TIMEOUT``)
until the frame it waits for arrives, the connection closes, or the timeout
fails the test with the frames seen so far.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import hpack
import pytest
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
TIMEOUT = 5.0

# frame types (RFC 9113 6)
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY = range(8)
WINDOW_UPDATE, CONTINUATION = 8, 9
# flags
END_STREAM = ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20
# error codes (RFC 9113 7)
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = range(4)
SETTINGS_TIMEOUT, STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM = range(4, 8)
CANCEL, COMPRESSION_ERROR, CONNECT_ERROR, ENHANCE_YOUR_CALM = range(8, 12)
INADEQUATE_SECURITY, HTTP_1_1_REQUIRED = 12, 13
ERROR_NAMES = dict(
    enumerate(
        (
            "NO_ERROR",
            "PROTOCOL_ERROR",
            "INTERNAL_ERROR",
            "FLOW_CONTROL_ERROR",
            "SETTINGS_TIMEOUT",
            "STREAM_CLOSED",
            "FRAME_SIZE_ERROR",
            "REFUSED_STREAM",
            "CANCEL",
            "COMPRESSION_ERROR",
            "CONNECT_ERROR",
            "ENHANCE_YOUR_CALM",
            "INADEQUATE_SECURITY",
            "HTTP_1_1_REQUIRED",
        )
    )
)
# settings (RFC 9113 6.5.2)
SETTINGS_HEADER_TABLE_SIZE, SETTINGS_ENABLE_PUSH, SETTINGS_MAX_CONCURRENT_STREAMS = 1, 2, 3
SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_FRAME_SIZE, SETTINGS_MAX_HEADER_LIST_SIZE = 4, 5, 6

DEFAULT_WINDOW = 65535
MAX_FRAME_SIZE = 16384  # the server does not raise SETTINGS_MAX_FRAME_SIZE
MAX_HEADER_LEN = 4000  # h2spec's default --max-header-length, for its dummy headers

# The answer of the app below: larger than every flow-control window the cases set.
RESPONSE_BODY = b"h2spec conformance\n" * 64


ECHOED = (b"user-agent", b"x-test")  # request fields the app echoes as x-echo-<name>


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the whole request body, then answers 200 with ``RESPONSE_BODY``.

    The request's ``user-agent`` and ``x-test`` fields come back as
    ``x-echo-user-agent`` and ``x-echo-x-test``, to check what HPACK decoded.
    """
    assert scope["type"] == "http"
    echo = [(b"x-echo-" + name, value) for name, value in scope["headers"] if name in ECHOED]
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        if not message.get("more_body"):
            break
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), *echo],
        }
    )
    await send({"type": "http.response.body", "body": RESPONSE_BODY})


def error_name(code: int) -> str:
    return ERROR_NAMES.get(code, hex(code))


# -- building frames -----------------------------------------------------------


def frame_header(length: int, ftype: int, flags: int, stream_id: int) -> bytes:
    """A 9-octet frame header, any field value allowed (R bit included in ``stream_id``)."""
    return length.to_bytes(3, "big") + bytes((ftype, flags)) + struct.pack(">L", stream_id)


def raw_frame(ftype: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One frame; the length field is the payload's."""
    return frame_header(len(payload), ftype, flags, stream_id) + payload


def _padded(payload: bytes, pad: int | None) -> tuple[int, bytes]:
    if pad is None:
        return 0, payload
    return PADDED, bytes((pad,)) + payload + bytes(pad)


def data(
    stream_id: int, body: bytes = b"", *, end_stream: bool = False, pad: int | None = None
) -> bytes:
    flags, payload = _padded(body, pad)
    return raw_frame(DATA, flags | (END_STREAM if end_stream else 0), stream_id, payload)


def priority_fields(dependency: int = 0, weight: int = 255, exclusive: bool = False) -> bytes:
    """Stream dependency, E bit and weight (the wire value: priority - 1)."""
    return struct.pack(">LB", dependency | (0x80000000 if exclusive else 0), weight)


def headers(
    stream_id: int,
    block: bytes,
    *,
    end_stream: bool = True,
    end_headers: bool = True,
    pad: int | None = None,
    priority: bytes | None = None,
) -> bytes:
    flags = (END_STREAM if end_stream else 0) | (END_HEADERS if end_headers else 0)
    if priority is not None:
        flags |= PRIORITY_FLAG
        block = priority + block
    padded, payload = _padded(block, pad)
    return raw_frame(HEADERS, flags | padded, stream_id, payload)


def priority(
    stream_id: int, dependency: int = 0, weight: int = 255, exclusive: bool = False
) -> bytes:
    return raw_frame(PRIORITY, 0, stream_id, priority_fields(dependency, weight, exclusive))


def rst_stream(stream_id: int, code: int) -> bytes:
    return raw_frame(RST_STREAM, 0, stream_id, struct.pack(">L", code))


def settings(*pairs: tuple[int, int]) -> bytes:
    return raw_frame(SETTINGS, 0, 0, b"".join(struct.pack(">HL", k, v) for k, v in pairs))


def settings_ack() -> bytes:
    return raw_frame(SETTINGS, ACK, 0)


def ping(payload: bytes = bytes(8), *, ack: bool = False) -> bytes:
    return raw_frame(PING, ACK if ack else 0, 0, payload)


def goaway(last_stream_id: int, code: int, debug: bytes = b"") -> bytes:
    return raw_frame(GOAWAY, 0, 0, struct.pack(">LL", last_stream_id, code) + debug)


def window_update(stream_id: int, increment: int) -> bytes:
    return raw_frame(WINDOW_UPDATE, 0, stream_id, struct.pack(">L", increment))


def continuation(stream_id: int, block: bytes, *, end_headers: bool = True) -> bytes:
    return raw_frame(CONTINUATION, END_HEADERS if end_headers else 0, stream_id, block)


def push_promise(
    stream_id: int, promised_id: int, block: bytes, *, end_headers: bool = True
) -> bytes:
    payload = struct.pack(">L", promised_id) + block
    return raw_frame(PUSH_PROMISE, END_HEADERS if end_headers else 0, stream_id, payload)


def unknown_frame(stream_id: int = 0) -> bytes:
    """h2spec's extension frame: type 0x16, 8 zero octets."""
    return raw_frame(0x16, 0, stream_id, bytes(8))


def dummy_headers(count: int, length: int = MAX_HEADER_LEN) -> list[tuple[str, str]]:
    """h2spec's DummyHeaders: ``x-dummyN: xxxx...``."""
    return [(f"x-dummy{i}", "x" * length) for i in range(count)]


def describe(f: Frame) -> str:
    name = type(f).__name__.replace("Frame", "").upper()
    flags = "|".join(sorted(f.flags)) or "-"
    extra = ""
    if isinstance(f, GoAwayFrame):
        extra = f" {error_name(f.error_code)} last={f.last_stream_id} {f.additional_data!r}"
    elif isinstance(f, RstStreamFrame):
        extra = f" {error_name(f.error_code)}"
    elif isinstance(f, DataFrame):
        extra = f" len={len(f.data)}"
    elif isinstance(f, PingFrame):
        extra = f" {f.opaque_data!r}"
    return f"{name}(stream={f.stream_id}, {flags}{extra})"


# -- the connection ------------------------------------------------------------


class FramesAfterGoaway(AssertionError):
    """The server sent frames after its error GOAWAY instead of closing right away."""


class H2Conn:
    """A client connection speaking HTTP/2 with prior knowledge."""

    def __init__(self, port: int, timeout: float = TIMEOUT) -> None:
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.closed = False  # the server closed (or reset) the connection
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.server_settings: dict[int, int] = {}
        self.seen: list[str] = []  # every frame received, for failure messages

    def close(self) -> None:
        self.sock.close()

    # -- sending

    def send(self, *chunks: bytes) -> None:
        """Everything in one write, so that the server reads it as one batch."""
        try:
            self.sock.sendall(b"".join(chunks))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server already gave up; what it sent is still read

    def request_headers(
        self, method: str = "GET", extra: Iterable[tuple[str, str]] = ()
    ) -> list[tuple[str, str]]:
        """h2spec's CommonHeaders: :method, :scheme, :path, :authority."""
        return [
            (":method", method),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", f"127.0.0.1:{self.port}"),
            *extra,
        ]

    def encode(self, fields: Sequence[tuple[str, str]]) -> bytes:
        return bytes(self.encoder.encode(list(fields)))

    def request(self, method: str = "GET", extra: Iterable[tuple[str, str]] = ()) -> bytes:
        """The encoded header block of a request."""
        return self.encode(self.request_headers(method, extra))

    def handshake(self) -> None:
        """h2spec's Handshake: preface and SETTINGS, then both SETTINGS exchanged and acked."""
        self.send(PREFACE, settings((SETTINGS_INITIAL_WINDOW_SIZE, DEFAULT_WINDOW)))
        got_settings = got_ack = False
        while not (got_settings and got_ack):
            f = self.next_frame("the server's SETTINGS and its SETTINGS ACK")
            if isinstance(f, SettingsFrame):
                if "ACK" in f.flags:
                    got_ack = True
                else:
                    got_settings = True
                    self.server_settings.update(f.settings)
                    self.send(settings_ack())

    # -- receiving

    def read_frame(self) -> Frame | None:
        """The next frame, or None once the server closed the connection."""
        while True:
            if len(self.buf) >= 9:
                length = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) >= 9 + length:
                    head, body = self.buf[:9], self.buf[9 : 9 + length]
                    self.buf = self.buf[9 + length :]
                    f, _ = Frame.parse_frame_header(memoryview(head))
                    f.parse_body(memoryview(body))
                    self.seen.append(describe(f))
                    return f
            if self.closed:
                if self.buf:
                    pytest.fail(f"connection closed inside a frame: {self.buf[:64]!r}")
                return None
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            except TimeoutError:
                pytest.fail(f"no frame and no close within {TIMEOUT} s; frames: {self.seen}")
            if not chunk:
                self.closed = True
            self.buf += chunk

    def next_frame(self, what: str) -> Frame:
        f = self.read_frame()
        if f is None:
            pytest.fail(f"expected {what}, but the connection closed; frames: {self.seen}")
        return f

    def wait_for(self, what: str, match: Callable[[Frame], bool]) -> Any:
        """Skip frames until ``match``; an unexpected GOAWAY or RST_STREAM fails the test."""
        while True:
            f = self.next_frame(what)
            if match(f):
                return f
            if isinstance(f, (GoAwayFrame, RstStreamFrame)):
                pytest.fail(f"expected {what}, got {describe(f)}; frames: {self.seen}")

    def expect_closed(self, allow: Callable[[Frame], bool] = lambda f: False) -> None:
        """The server closes the connection; frames before that must pass ``allow``."""
        while (f := self.read_frame()) is not None:
            if not allow(f):
                pytest.fail(f"expected the connection to close, got {describe(f)}")

    def expect_closed_after_goaway(self) -> None:
        """Nothing follows an error GOAWAY: RFC 9113 5.4.1, the endpoint MUST close."""
        extra = []
        while (f := self.read_frame()) is not None:
            extra.append(describe(f))
        if extra:
            raise FramesAfterGoaway(f"frames after the GOAWAY: {extra}; frames: {self.seen}")

    def expect_goaway(self, *codes: int) -> GoAwayFrame:
        """A connection error: GOAWAY with one of ``codes``, nothing after it, then the close."""
        names = " or ".join(map(error_name, codes))
        f = self.wait_for(f"GOAWAY({names})", lambda f: isinstance(f, GoAwayFrame))
        assert f.error_code in codes, f"GOAWAY {error_name(f.error_code)}, expected {names}"
        self.expect_closed_after_goaway()
        return f

    def expect_rst_stream(self, stream_id: int, *codes: int, alive: bool = True) -> RstStreamFrame:
        """A stream error: RST_STREAM with one of ``codes``; the connection stays usable."""
        names = " or ".join(map(error_name, codes))
        f = self.wait_for(
            f"RST_STREAM({names}) on stream {stream_id}",
            lambda f: isinstance(f, RstStreamFrame) and f.stream_id == stream_id,
        )
        assert f.error_code in codes, f"RST_STREAM {error_name(f.error_code)}, expected {names}"
        if alive:
            self.expect_alive()
        return f

    def expect_stream_or_connection_error(self, stream_id: int, *codes: int) -> Frame:
        """RST_STREAM on ``stream_id`` or GOAWAY (then the close), with one of ``codes``."""
        names = " or ".join(map(error_name, codes))
        f = self.wait_for(
            f"RST_STREAM or GOAWAY ({names}) for stream {stream_id}",
            lambda f: (
                isinstance(f, GoAwayFrame)
                or (isinstance(f, RstStreamFrame) and f.stream_id == stream_id)
            ),
        )
        assert f.error_code in codes, f"{describe(f)}, expected {names}"
        if isinstance(f, GoAwayFrame):
            self.expect_closed_after_goaway()
        return f

    def expect_ping_ack(self, payload: bytes) -> PingFrame:
        f = self.wait_for("PING with ACK", lambda f: isinstance(f, PingFrame))
        assert "ACK" in f.flags, f"the server sent a PING without ACK: {describe(f)}"
        assert f.opaque_data == payload, f"PING ACK payload {f.opaque_data!r} != {payload!r}"
        return f

    def expect_alive(self) -> None:
        """The connection still works: a PING is acknowledged with the same payload."""
        payload = os.urandom(8)
        self.send(ping(payload))
        self.expect_ping_ack(payload)

    def expect_settings_ack(self) -> SettingsFrame:
        f = self.wait_for("SETTINGS with ACK", lambda f: isinstance(f, SettingsFrame))
        assert "ACK" in f.flags, f"expected SETTINGS ACK, got {describe(f)}"
        assert not f.settings, "SETTINGS ACK with a payload"
        return f

    def expect_data(self, stream_id: int) -> DataFrame:
        return self.wait_for(
            f"DATA on stream {stream_id}",
            lambda f: isinstance(f, DataFrame) and f.stream_id == stream_id,
        )

    def expect_stream_end(self, stream_id: int) -> None:
        """Frames of ``stream_id`` until one with END_STREAM (the response is complete)."""
        self.wait_for(
            f"END_STREAM on stream {stream_id}",
            lambda f: (
                isinstance(f, (DataFrame, HeadersFrame))
                and f.stream_id == stream_id
                and "END_STREAM" in f.flags
            ),
        )

    def expect_response(
        self, stream_id: int, status: str = "200", body: bytes | None = RESPONSE_BODY
    ) -> list[tuple[str, str]]:
        """A complete response on ``stream_id``: its status, and its body unless None."""
        f = self.wait_for(
            f"response HEADERS on stream {stream_id}",
            lambda f: isinstance(f, HeadersFrame) and f.stream_id == stream_id,
        )
        block = f.data
        ended = "END_STREAM" in f.flags
        while "END_HEADERS" not in f.flags:
            f = self.next_frame(f"CONTINUATION on stream {stream_id}")
            assert isinstance(f, ContinuationFrame), describe(f)
            block += f.data
        fields = [(str(k), str(v)) for k, v in self.decoder.decode(block)]
        assert fields[0] == (":status", status), fields
        received = b""
        while not ended:
            f = self.wait_for(
                f"the response body on stream {stream_id}",
                lambda f: isinstance(f, (DataFrame, HeadersFrame)) and f.stream_id == stream_id,
            )
            if isinstance(f, DataFrame):
                received += f.data
            ended = "END_STREAM" in f.flags
        if body is not None:
            assert received == body
        return fields
