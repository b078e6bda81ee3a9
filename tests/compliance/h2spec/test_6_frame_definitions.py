"""h2spec http2/6.1 to 6.10: frame definitions (RFC 9113 6)."""

from __future__ import annotations

from hyperframe.frame import DataFrame, PingFrame

from tests.compliance.h2spec.h2client import (
    CANCEL,
    DATA,
    END_HEADERS,
    END_STREAM,
    FLOW_CONTROL_ERROR,
    FRAME_SIZE_ERROR,
    GOAWAY,
    HEADERS,
    PADDED,
    PING,
    PRIORITY,
    PROTOCOL_ERROR,
    RESPONSE_BODY,
    RST_STREAM,
    SETTINGS,
    SETTINGS_ENABLE_PUSH,
    SETTINGS_INITIAL_WINDOW_SIZE,
    SETTINGS_MAX_FRAME_SIZE,
    STREAM_CLOSED,
    WINDOW_UPDATE,
    H2Conn,
    continuation,
    data,
    describe,
    dummy_headers,
    frame_header,
    headers,
    ping,
    priority,
    raw_frame,
    rst_stream,
    settings,
    window_update,
)

MAX_WINDOW = 2**31 - 1


def expect_window_respected(h2: H2Conn, stream_id: int) -> None:
    """No more DATA on ``stream_id`` (its window is spent) before a PING comes back."""
    h2.send(ping(b"window\x00\x00"))
    while True:
        f = h2.next_frame("the PING ACK")
        assert not (isinstance(f, DataFrame) and f.stream_id == stream_id and f.data), (
            f"DATA beyond the flow-control window: {describe(f)}"
        )
        if isinstance(f, PingFrame) and "ACK" in f.flags:
            return


# -- 6.1. DATA --------------------------------------------------------------------------


def test_6_1_1_data_frame_with_0x0_stream_identifier(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond with a connection error of type PROTOCOL_ERROR."."""
    h2.send(raw_frame(DATA, END_STREAM, 0, b"test"))
    h2.expect_goaway(PROTOCOL_ERROR)


def test_6_1_2_data_frame_on_stream_not_open_or_half_closed_local(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond with a stream error of type STREAM_CLOSED."."""
    h2.send(headers(1, h2.request("POST")), data(1, b"test", end_stream=True))
    # a connection error STREAM_CLOSED is allowed too if the stream closed meanwhile
    h2.expect_stream_or_connection_error(1, STREAM_CLOSED)


def test_6_1_3_data_frame_with_invalid_pad_length(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST treat this as a connection error of type PROTOCOL_ERROR."."""
    h2.send(
        headers(1, h2.request("POST", [("content-length", "4")]), end_stream=False),
        frame_header(5, DATA, PADDED | END_STREAM, 1) + b"\x06Test",  # pad length 6 > 4
    )
    h2.expect_goaway(PROTOCOL_ERROR)


# -- 6.2. HEADERS ---------------------------------------------------------------------------


def test_6_2_1_headers_without_end_headers_and_a_priority_frame(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST treat this as a connection error of type PROTOCOL_ERROR."."""
    h2.send(
        headers(1, h2.request(), end_stream=False, end_headers=False),
        priority(1, 0, 255),
        continuation(1, h2.encode(dummy_headers(1))),
    )
    h2.expect_goaway(PROTOCOL_ERROR)


def test_6_2_2_headers_to_another_stream_while_sending_a_headers_frame(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST treat this as a connection error of type PROTOCOL_ERROR."."""
    h2.send(
        headers(1, h2.request(), end_stream=False, end_headers=False),
        headers(3, h2.request()),
        continuation(1, h2.encode(dummy_headers(1))),
    )
    h2.expect_goaway(PROTOCOL_ERROR)


def test_6_2_3_headers_frame_with_0x0_stream_identifier(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond with a connection error of type PROTOCOL_ERROR."."""
    h2.send(headers(0, h2.request()))
    h2.expect_goaway(PROTOCOL_ERROR)


def test_6_2_4_headers_frame_with_invalid_pad_length(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST treat this as a connection error of type PROTOCOL_ERROR."."""
    block = h2.request()
    flags = END_STREAM | END_HEADERS | PADDED
    # the pad length (block + 2) is longer than what follows it (block)
    h2.send(frame_header(len(block) + 1, HEADERS, flags, 1) + bytes((len(block) + 2,)) + block)
    # RFC 9113 6.2 names no error kind: a stream or a connection error
    h2.expect_stream_or_connection_error(1, PROTOCOL_ERROR)


# -- 6.3. PRIORITY --------------------------------------------------------------------------


def test_6_3_1_priority_frame_with_0x0_stream_identifier(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond with a connection error of type PROTOCOL_ERROR."."""
    h2.send(priority(0, 0, 255))
    h2.expect_goaway(PROTOCOL_ERROR)


def test_6_3_2_priority_frame_with_a_length_other_than_5_octets(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond with a stream error of type FRAME_SIZE_ERROR."."""
    h2.send(headers(1, h2.request()), raw_frame(PRIORITY, 0, 1, b"\x80\x00\x00\x01"))
    h2.expect_rst_stream(1, FRAME_SIZE_ERROR)


# -- 6.4. RST_STREAM ------------------------------------------------------------------------


def test_6_4_1_rst_stream_frame_with_0x0_stream_identifier(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond with a connection error of type PROTOCOL_ERROR."."""
    h2.send(rst_stream(0, CANCEL))
    h2.expect_goaway(PROTOCOL_ERROR)


def test_6_4_2_rst_stream_frame_on_a_idle_stream(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond with a connection error of type PROTOCOL_ERROR."."""
    h2.send(rst_stream(1, CANCEL))
    h2.expect_goaway(PROTOCOL_ERROR)


def test_6_4_3_rst_stream_frame_with_a_length_other_than_4_octets(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond with a connection error of type FRAME_SIZE_ERROR."."""
    h2.send(headers(1, h2.request()), raw_frame(RST_STREAM, 0, 1, b"\x00\x00\x00"))
    h2.expect_goaway(FRAME_SIZE_ERROR)  # RFC 9113 6.4: a connection error


# -- 6.5. SETTINGS --------------------------------------------------------------------------


def test_6_5_1_settings_frame_with_ack_flag_and_payload(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond with a connection error of type FRAME_SIZE_ERROR."."""
    h2.send(raw_frame(SETTINGS, 0x1, 0, b"\x00"))
    h2.expect_goaway(FRAME_SIZE_ERROR)


def test_6_5_2_settings_frame_with_a_stream_identifier_other_than_0x0(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond with a connection error of type PROTOCOL_ERROR."."""
    h2.send(raw_frame(SETTINGS, 0, 1, b"\x00\x03\x00\x00\x00\x64"))
    h2.expect_goaway(PROTOCOL_ERROR)


def test_6_5_3_settings_frame_with_a_length_other_than_a_multiple_of_6(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond with a connection error of type FRAME_SIZE_ERROR."."""
    h2.send(raw_frame(SETTINGS, 0, 0, b"\x00\x03\x00\x00\x00\x64\x00\x02"))
    h2.expect_goaway(FRAME_SIZE_ERROR)


# -- 6.5.2. Defined SETTINGS Parameters ---------------------------------------------------


def test_6_5_2_1_settings_enable_push_other_than_0_or_1(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST treat this as a connection error of type PROTOCOL_ERROR."."""
    h2.send(settings((SETTINGS_ENABLE_PUSH, 2)))
    h2.expect_goaway(PROTOCOL_ERROR)


def test_6_5_2_2_settings_initial_window_size_above_maximum(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST treat this as a connection error of type FLOW_CONTROL_ERROR."."""
    h2.send(settings((SETTINGS_INITIAL_WINDOW_SIZE, 2**31)))
    h2.expect_goaway(FLOW_CONTROL_ERROR)


def test_6_5_2_3_settings_max_frame_size_below_initial_value(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST treat this as a connection error of type PROTOCOL_ERROR."."""
    h2.send(settings((SETTINGS_MAX_FRAME_SIZE, 16383)))
    h2.expect_goaway(PROTOCOL_ERROR)


def test_6_5_2_4_settings_max_frame_size_above_maximum_allowed(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST treat this as a connection error of type PROTOCOL_ERROR."."""
    h2.send(settings((SETTINGS_MAX_FRAME_SIZE, 2**24)))
    h2.expect_goaway(PROTOCOL_ERROR)


def test_6_5_2_5_settings_frame_with_unknown_identifier(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST ignore that setting."."""
    h2.send(settings((0xFF, 1)), ping(bytes(8)))
    h2.expect_settings_ack()
    h2.expect_ping_ack(bytes(8))


# -- 6.5.3. Settings Synchronization --------------------------------------------------------


def test_6_5_3_1_multiple_values_of_settings_initial_window_size(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST process the values in the settings in the order they apper."."""
    h2.send(settings((SETTINGS_INITIAL_WINDOW_SIZE, 100), (SETTINGS_INITIAL_WINDOW_SIZE, 1)))
    h2.expect_settings_ack()
    h2.send(headers(1, h2.request()))
    first = h2.expect_data(1)
    assert first.data == RESPONSE_BODY[:1]  # the last value, 1, is the window
    assert "END_STREAM" not in first.flags
    expect_window_respected(h2, 1)


def test_6_5_3_2_settings_frame_without_ack_flag(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST immediately emit a SETTINGS frame with the ACK flag set."."""
    h2.send(settings((SETTINGS_ENABLE_PUSH, 0)))
    assert h2.expect_settings_ack().stream_id == 0


# -- 6.7. PING ------------------------------------------------------------------------------


def test_6_7_1_ping_frame(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST sends a PING frame with ACK, with an identical payload."."""
    h2.send(ping(b"h2spec\x00\x00"))
    assert h2.expect_ping_ack(b"h2spec\x00\x00").stream_id == 0


def test_6_7_2_ping_frame_with_ack(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST NOT respond to PING frames with ACK."."""
    h2.send(ping(b"invalid\x00", ack=True), ping(b"h2spec\x00\x00"))
    # the first PING seen must be the answer to the second one
    h2.expect_ping_ack(b"h2spec\x00\x00")


def test_6_7_3_ping_frame_with_a_stream_identifier_other_than_0x0(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond with a connection error of type PROTOCOL_ERROR."."""
    h2.send(raw_frame(PING, 0, 1, bytes(8)))
    h2.expect_goaway(PROTOCOL_ERROR)


def test_6_7_4_ping_frame_with_a_length_other_than_8(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST treated as a connection error of type FRAME_SIZE_ERROR."."""
    h2.send(raw_frame(PING, 0, 0, bytes(6)))
    h2.expect_goaway(FRAME_SIZE_ERROR)


# -- 6.8. GOAWAY ----------------------------------------------------------------------------


def test_6_8_1_goaway_frame_with_a_stream_identifier_other_than_0x0(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST treated as a connection error of type PROTOCOL_ERROR."."""
    h2.send(raw_frame(GOAWAY, 0, 1, bytes(8)))
    h2.expect_goaway(PROTOCOL_ERROR)


# -- 6.9. WINDOW_UPDATE ---------------------------------------------------------------------


def test_6_9_1_window_update_with_an_increment_of_0(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond with a connection error of type PROTOCOL_ERROR."."""
    h2.send(window_update(0, 0))
    h2.expect_goaway(PROTOCOL_ERROR)


def test_6_9_2_window_update_with_an_increment_of_0_on_a_stream(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond with a stream error of type PROTOCOL_ERROR."."""
    h2.send(headers(1, h2.request(), end_stream=False), window_update(1, 0))
    h2.expect_rst_stream(1, PROTOCOL_ERROR)


def test_6_9_3_window_update_with_a_length_other_than_4_octets(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST treated as a connection error of type FRAME_SIZE_ERROR."."""
    h2.send(raw_frame(WINDOW_UPDATE, 0, 0, b"\x00\x00\x01"))
    h2.expect_goaway(FRAME_SIZE_ERROR)


# -- 6.9.1. The Flow-Control Window ---------------------------------------------------------


def test_6_9_1_1_initial_window_size_1_then_headers(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST NOT send a flow-controlled frame with a length that exceeds ..."""
    h2.send(settings((SETTINGS_INITIAL_WINDOW_SIZE, 1)))
    h2.expect_settings_ack()
    h2.send(headers(1, h2.request()))
    first = h2.expect_data(1)
    assert first.data == RESPONSE_BODY[:1]
    assert "END_STREAM" not in first.flags
    expect_window_respected(h2, 1)


def test_6_9_1_2_window_update_over_2_31_minus_1(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST sends a GOAWAY frame with a FLOW_CONTROL_ERROR code."."""
    h2.send(window_update(0, MAX_WINDOW), window_update(0, MAX_WINDOW))
    h2.expect_goaway(FLOW_CONTROL_ERROR)


def test_6_9_1_3_window_update_over_2_31_minus_1_on_a_stream(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST sends a RST_STREAM frame with a FLOW_CONTROL_ERROR code."."""
    h2.send(
        headers(1, h2.request(), end_stream=False),
        window_update(1, MAX_WINDOW),
        window_update(1, MAX_WINDOW),
    )
    h2.expect_rst_stream(1, FLOW_CONTROL_ERROR)


# -- 6.9.2. Initial Flow-Control Window Size ------------------------------------------------


def test_6_9_2_1_changes_initial_window_size_after_headers(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST adjust the size of all stream flow-control windows."."""
    h2.send(settings((SETTINGS_INITIAL_WINDOW_SIZE, 0)))
    h2.expect_settings_ack()
    h2.send(headers(1, h2.request()), settings((SETTINGS_INITIAL_WINDOW_SIZE, 1)))
    h2.expect_settings_ack()
    first = h2.expect_data(1)
    assert first.data == RESPONSE_BODY[:1]
    expect_window_respected(h2, 1)


def test_6_9_2_2_settings_making_the_window_size_negative(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST track the negative flow-control window."."""
    h2.send(settings((SETTINGS_INITIAL_WINDOW_SIZE, 3)))
    h2.expect_settings_ack()
    h2.send(headers(1, h2.request()))
    assert h2.expect_data(1).data == RESPONSE_BODY[:3]
    h2.send(settings((SETTINGS_INITIAL_WINDOW_SIZE, 2)))  # the window is now -1
    h2.expect_settings_ack()
    expect_window_respected(h2, 1)
    h2.send(window_update(1, 2))  # and now 1
    assert h2.expect_data(1).data == RESPONSE_BODY[3:4]
    expect_window_respected(h2, 1)


def test_6_9_2_3_initial_window_size_exceeding_the_maximum(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST treat this as a connection error of type FLOW_CONTROL_ERROR."."""
    h2.send(raw_frame(SETTINGS, 0, 0, b"\x00\x04\x80\x00\x00\x00"))
    h2.expect_goaway(FLOW_CONTROL_ERROR)


# -- 6.10. CONTINUATION ---------------------------------------------------------------------


def test_6_10_1_multiple_continuation_frames_preceded_by_a_headers_frame(h2: H2Conn) -> None:
    """h2spec: "The endpoint must accept the frame."."""
    dummy = dummy_headers(1)
    h2.send(
        headers(1, h2.request(), end_headers=False),
        continuation(1, h2.encode(dummy), end_headers=False),
        continuation(1, h2.encode(dummy)),
    )
    h2.expect_response(1)


def test_6_10_2_continuation_followed_by_a_frame_other_than_continuation(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST treat this as a connection error of type PROTOCOL_ERROR."."""
    h2.send(
        headers(1, h2.request("POST"), end_stream=False, end_headers=False),
        continuation(1, h2.encode(dummy_headers(1)), end_headers=False),
        data(1, b"test", end_stream=True),
    )
    h2.expect_goaway(PROTOCOL_ERROR)


def test_6_10_3_continuation_frame_with_0x0_stream_identifier(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond with a connection error of type PROTOCOL_ERROR."."""
    h2.send(
        headers(1, h2.request(), end_headers=False),
        continuation(0, h2.encode(dummy_headers(1))),
    )
    h2.expect_goaway(PROTOCOL_ERROR)


def test_6_10_4_continuation_preceded_by_headers_with_end_headers(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond with a connection error of type PROTOCOL_ERROR."."""
    h2.send(headers(1, h2.request()), continuation(1, h2.encode(dummy_headers(1))))
    h2.expect_goaway(PROTOCOL_ERROR)


def test_6_10_5_continuation_preceded_by_continuation_with_end_headers(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond with a connection error of type PROTOCOL_ERROR."."""
    dummy = dummy_headers(1)
    h2.send(
        headers(1, h2.request(), end_headers=False),
        continuation(1, h2.encode(dummy)),
        continuation(1, h2.encode(dummy)),
    )
    h2.expect_goaway(PROTOCOL_ERROR)


def test_6_10_6_continuation_preceded_by_a_data_frame(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond with a connection error of type PROTOCOL_ERROR."."""
    dummy = dummy_headers(1)
    h2.send(
        headers(1, h2.request("POST"), end_stream=False, end_headers=False),
        data(1, b"test", end_stream=True),
        continuation(1, h2.encode(dummy), end_headers=False),
        continuation(0, h2.encode(dummy)),
    )
    h2.expect_goaway(PROTOCOL_ERROR)
