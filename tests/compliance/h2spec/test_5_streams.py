"""h2spec http2/5.1 to 5.5: stream states, identifiers, concurrency, priority, errors, extensions.

Where two rules of RFC 9113 apply to the same frame (5.1 says STREAM_CLOSED for a
stream that is half-closed (remote) or reset, 6.10 says PROTOCOL_ERROR for a
CONTINUATION without a header block), the case accepts both codes, as h2spec does.
"""

from __future__ import annotations

from tests.compliance.h2spec.h2client import (
    CANCEL,
    PING,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
    SETTINGS_INITIAL_WINDOW_SIZE,
    SETTINGS_MAX_CONCURRENT_STREAMS,
    STREAM_CLOSED,
    H2Conn,
    continuation,
    data,
    dummy_headers,
    headers,
    ping,
    priority,
    priority_fields,
    raw_frame,
    rst_stream,
    settings,
    unknown_frame,
    window_update,
)

# -- 5.1. Stream States ------------------------------------------------------------


def test_5_1_1_idle_sends_data_frame(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST treat this as a connection error of type PROTOCOL_ERROR."."""
    h2.send(data(1, b"test", end_stream=True))
    h2.expect_goaway(PROTOCOL_ERROR)


def test_5_1_2_idle_sends_rst_stream_frame(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST treat this as a connection error of type PROTOCOL_ERROR."."""
    h2.send(rst_stream(1, CANCEL))
    h2.expect_goaway(PROTOCOL_ERROR)


def test_5_1_3_idle_sends_window_update_frame(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST treat this as a connection error of type PROTOCOL_ERROR."."""
    h2.send(window_update(1, 100))
    h2.expect_goaway(PROTOCOL_ERROR)


def test_5_1_4_idle_sends_continuation_frame(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST treat this as a connection error of type PROTOCOL_ERROR."."""
    h2.send(continuation(1, h2.request()))
    h2.expect_goaway(PROTOCOL_ERROR)


def test_5_1_5_half_closed_remote_sends_data_frame(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond with a stream error of type STREAM_CLOSED."."""
    h2.send(headers(1, h2.request()), data(1, b"test", end_stream=True))
    # a connection error STREAM_CLOSED is allowed too if the stream closed meanwhile
    h2.expect_stream_or_connection_error(1, STREAM_CLOSED)


def test_5_1_6_half_closed_remote_sends_headers_frame(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond with a stream error of type STREAM_CLOSED."."""
    h2.send(headers(1, h2.request()), headers(1, h2.request()))
    h2.expect_stream_or_connection_error(1, STREAM_CLOSED)


def test_5_1_7_half_closed_remote_sends_continuation_frame(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond with a stream error of type STREAM_CLOSED."."""
    block = h2.request()
    h2.send(headers(1, block), continuation(1, block))
    h2.expect_stream_or_connection_error(1, STREAM_CLOSED, PROTOCOL_ERROR)


def test_5_1_8_closed_sends_data_frame_after_rst_stream(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST treat this as a stream error of type STREAM_CLOSED."."""
    h2.send(
        headers(1, h2.request(), end_stream=False),
        rst_stream(1, CANCEL),
        data(1, b"test", end_stream=True),
    )
    # RFC 9113 5.1 (closed): MAY be a connection error STREAM_CLOSED instead
    h2.expect_stream_or_connection_error(1, STREAM_CLOSED)


def test_5_1_9_closed_sends_headers_frame_after_rst_stream(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST treat this as a stream error of type STREAM_CLOSED."."""
    h2.send(
        headers(1, h2.request(), end_stream=False),
        rst_stream(1, CANCEL),
        headers(1, h2.request()),
    )
    h2.expect_stream_or_connection_error(1, STREAM_CLOSED)


def test_5_1_10_closed_sends_continuation_frame_after_rst_stream(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST treat this as a stream error of type STREAM_CLOSED."."""
    h2.send(
        headers(1, h2.request(), end_stream=False),
        rst_stream(1, CANCEL),
        continuation(1, h2.encode(dummy_headers(1))),
    )
    h2.expect_stream_or_connection_error(1, STREAM_CLOSED, PROTOCOL_ERROR)


def test_5_1_11_closed_sends_data_frame(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST treat this as a connection error of type STREAM_CLOSED."."""
    h2.send(headers(1, h2.request()))
    h2.expect_stream_end(1)
    h2.send(data(1, b"test", end_stream=True))
    h2.expect_goaway(STREAM_CLOSED)


def test_5_1_12_closed_sends_headers_frame(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST treat this as a connection error of type STREAM_CLOSED."."""
    block = h2.request()
    h2.send(headers(1, block))
    h2.expect_stream_end(1)
    h2.send(headers(1, block))
    h2.expect_goaway(STREAM_CLOSED)


def test_5_1_13_closed_sends_continuation_frame(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST treat this as a connection error of type STREAM_CLOSED."."""
    h2.send(headers(1, h2.request()))
    h2.expect_stream_end(1)
    h2.send(continuation(1, h2.encode(dummy_headers(1))))
    h2.expect_goaway(STREAM_CLOSED, PROTOCOL_ERROR)


# -- 5.1.1. Stream Identifiers -----------------------------------------------------


def test_5_1_1_1_even_numbered_stream_identifier(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond with a connection error of type PROTOCOL_ERROR."."""
    h2.send(headers(2, h2.request()))
    h2.expect_goaway(PROTOCOL_ERROR)


def test_5_1_1_2_stream_identifier_smaller_than_previous(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond with a connection error of type PROTOCOL_ERROR."."""
    h2.send(headers(5, h2.request()), headers(3, h2.request()))
    h2.expect_goaway(PROTOCOL_ERROR)


# -- 5.1.2. Stream Concurrency -----------------------------------------------------


def test_5_1_2_1_exceeding_advertised_concurrent_stream_limit(h2: H2Conn) -> None:
    """h2spec: "... a stream error of type PROTOCOL_ERROR or REFUSED_STREAM."."""
    limit = h2.server_settings[SETTINGS_MAX_CONCURRENT_STREAMS]
    # a zero window keeps every response (and so every stream) open
    frames = [settings((SETTINGS_INITIAL_WINDOW_SIZE, 0))]
    frames += [headers(2 * i + 1, h2.request()) for i in range(limit + 1)]
    h2.send(*frames)
    h2.expect_rst_stream(2 * limit + 1, PROTOCOL_ERROR, REFUSED_STREAM)


# -- 5.3.1. Stream Dependencies ------------------------------------------------------


def test_5_3_1_1_headers_frame_depending_on_itself(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST treat this as a stream error of type PROTOCOL_ERROR."."""
    h2.send(headers(1, h2.request(), priority=priority_fields(1, 255)))
    h2.expect_rst_stream(1, PROTOCOL_ERROR)


def test_5_3_1_2_priority_frame_depending_on_itself(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST treat this as a stream error of type PROTOCOL_ERROR."."""
    h2.send(priority(1, 1, 255))
    h2.expect_rst_stream(1, PROTOCOL_ERROR)


# -- 5.4.1. Connection Error Handling ------------------------------------------------


def test_5_4_1_1_invalid_ping_frame_for_connection_close(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST close the TCP connection" (after a PING on stream 3)."""
    h2.send(raw_frame(PING, 0, 3, bytes(8)))
    h2.expect_goaway(PROTOCOL_ERROR)  # and the close


def test_5_4_1_2_invalid_ping_frame_to_receive_goaway_frame(h2: H2Conn) -> None:
    """h2spec (strict): "... a connection error SHOULD first send a GOAWAY frame"."""
    h2.send(raw_frame(PING, 0, 3, bytes(8)))
    goaway = h2.expect_goaway(PROTOCOL_ERROR)
    assert goaway.last_stream_id == 0  # no stream was received


# -- 5.5. Extending HTTP/2 -------------------------------------------------------------


def test_5_5_1_unknown_extension_frame(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST ignore unknown or unsupported values in all extensible ..."."""
    h2.send(unknown_frame(), ping(bytes(8)))
    h2.expect_ping_ack(bytes(8))


def test_5_5_2_unknown_extension_frame_in_the_middle_of_a_header_block(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST treat as a connection error of type PROTOCOL_ERROR."."""
    h2.send(headers(1, h2.request(), end_headers=False), unknown_frame())
    h2.expect_goaway(PROTOCOL_ERROR)
