"""SETTINGS from the client, bytes in and bytes out against ``H2Protocol``.

The SETTINGS ACK marks the point from which the client counts its new
settings (RFC 9113 6.5.3): grpcio counts a larger SETTINGS_INITIAL_WINDOW_SIZE
only from the ACK on and kills a stream whose DATA overflows the window it
knows. So DATA that a raised window unblocks must go after the ACK, and a
refused SETTINGS gets GOAWAY, no ACK, and no DATA sent on its windows.
"""

from __future__ import annotations

from typing import Any

import hpack
from hyperframe.frame import DataFrame, Frame, GoAwayFrame, SettingsFrame

from squall.protocols.http2 import H2Limits, H2Protocol
from tests.compliance.h2spec.h2client import (
    DEFAULT_WINDOW,
    FLOW_CONTROL_ERROR,
    MAX_FRAME_SIZE,
    PREFACE,
    PROTOCOL_ERROR,
    SETTINGS_ENABLE_PUSH,
    SETTINGS_INITIAL_WINDOW_SIZE,
    SETTINGS_MAX_FRAME_SIZE,
    describe,
    headers,
    settings,
    window_update,
)

MAX_WINDOW = 2**31 - 1
BODY = bytes(100_000)  # more than the default stream window
GET = [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "example.org")]


class Owner:
    """Takes every request and records the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def on_request(self, stream_id: int, head: Any, end_stream: bool) -> None:
        self.calls.append(("request", stream_id, end_stream))

    def on_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        self.calls.append(("data", stream_id, len(data), end_stream))

    def on_stream_reset(self, stream_id: int) -> None:
        self.calls.append(("reset", stream_id))

    def on_stream_writable(self, stream_id: int) -> None:
        self.calls.append(("writable", stream_id))

    def on_refused_header_block(self, stream_id: int, status: int) -> None:
        self.calls.append(("refused", stream_id, status))

    def on_goaway(self) -> None:
        self.calls.append(("goaway",))


def parse(data: bytes) -> list[Frame]:
    """Every frame in ``data``, which must hold whole frames only."""
    frames = []
    pos = 0
    while pos < len(data):
        frame, length = Frame.parse_frame_header(memoryview(data[pos : pos + 9]))
        frame.parse_body(memoryview(data[pos + 9 : pos + 9 + length]))
        frames.append(frame)
        pos += 9 + length
    assert pos == len(data)
    return frames


def is_ack(frame: Frame) -> bool:
    return isinstance(frame, SettingsFrame) and "ACK" in frame.flags


def blocked_response() -> tuple[H2Protocol, Owner, int]:
    """A connection whose stream 1 has sent what the default stream window allows.

    The connection window is opened wide first, so that the rest of the body
    waits for the stream window only. Stream 3 is open too, its request body
    still coming and no response begun. Returns the protocol, its owner and
    the body bytes stream 1 sent so far.
    """
    owner = Owner()
    proto = H2Protocol(owner, H2Limits())
    proto.data_to_send()  # the server's SETTINGS
    encoder = hpack.Encoder()
    proto.feed(
        PREFACE
        + settings()
        + window_update(0, 1 << 24)
        + headers(1, encoder.encode(GET))
        + headers(3, encoder.encode(GET), end_stream=False)
    )
    assert owner.calls == [("request", 1, True), ("request", 3, False)]
    proto.data_to_send()  # the ACK of the client's first SETTINGS
    proto.send_headers(1, hpack.Encoder().encode([(":status", "200")]), False)
    proto.send_data(1, BODY, True)
    sent = parse(proto.data_to_send())
    body = sum(len(f.data) for f in sent if isinstance(f, DataFrame))
    assert body == DEFAULT_WINDOW
    assert proto.buffered(1) == len(BODY) - DEFAULT_WINDOW
    return proto, owner, body


def test_data_unblocked_by_a_larger_initial_window_goes_after_the_ack() -> None:
    proto, _, body = blocked_response()
    proto.feed(settings((SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20)))
    frames = parse(proto.data_to_send())
    shown = [describe(f) for f in frames]
    acks = [i for i, f in enumerate(frames) if is_ack(f)]
    data = [i for i, f in enumerate(frames) if isinstance(f, DataFrame)]
    assert len(acks) == 1, shown
    assert data, shown  # the larger window let the rest of the body go
    assert acks[0] < data[0], shown
    assert body + sum(len(frames[i].data) for i in data) == len(BODY)
    assert "END_STREAM" in frames[data[-1]].flags
    assert proto.buffered(1) == 0
    assert not proto.closed


def test_the_unblocked_data_uses_a_max_frame_size_from_the_same_settings() -> None:
    proto, _, _ = blocked_response()
    proto.feed(
        settings((SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20), (SETTINGS_MAX_FRAME_SIZE, 1 << 16))
    )
    frames = parse(proto.data_to_send())
    assert is_ack(frames[0]), [describe(f) for f in frames]
    sizes = [len(f.data) for f in frames if isinstance(f, DataFrame)]
    assert sizes == [len(BODY) - DEFAULT_WINDOW]  # one frame, larger than 16384
    assert sizes[0] > MAX_FRAME_SIZE


def test_a_smaller_initial_window_is_acknowledged_and_sends_nothing() -> None:
    proto, _, _ = blocked_response()
    proto.feed(settings((SETTINGS_INITIAL_WINDOW_SIZE, 1000)))
    frames = parse(proto.data_to_send())
    assert len(frames) == 1 and is_ack(frames[0]), [describe(f) for f in frames]
    assert proto.buffered(1) == len(BODY) - DEFAULT_WINDOW


def test_a_refused_setting_gets_goaway_and_neither_ack_nor_data() -> None:
    proto, _, _ = blocked_response()
    # a valid larger window first, then an invalid value in the same frame
    proto.feed(settings((SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20), (SETTINGS_ENABLE_PUSH, 2)))
    frames = parse(proto.data_to_send())
    assert len(frames) == 1, [describe(f) for f in frames]
    assert isinstance(frames[0], GoAwayFrame)
    assert frames[0].error_code == PROTOCOL_ERROR
    assert proto.closed
    assert proto.buffered(1) == len(BODY) - DEFAULT_WINDOW  # nothing went on the new window


def test_a_stream_window_overflow_gets_goaway_and_neither_ack_nor_data() -> None:
    proto, _, _ = blocked_response()
    proto.feed(window_update(3, MAX_WINDOW - DEFAULT_WINDOW))  # stream 3 at the maximum
    assert proto.data_to_send() == b""
    proto.feed(settings((SETTINGS_INITIAL_WINDOW_SIZE, DEFAULT_WINDOW + 1)))
    frames = parse(proto.data_to_send())
    assert len(frames) == 1, [describe(f) for f in frames]
    assert isinstance(frames[0], GoAwayFrame)
    assert frames[0].error_code == FLOW_CONTROL_ERROR
    assert proto.closed
