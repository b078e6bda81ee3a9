"""h2spec "Generic tests for HTTP/2 server" (generic/1 to generic/5).

The frames and flows every server must accept: each case expects the normal
answer (a response, a PING ACK, a SETTINGS ACK, DATA as the window allows).
"""

from __future__ import annotations

from hyperframe.frame import GoAwayFrame, SettingsFrame

from tests.compliance.h2spec.h2client import (
    CANCEL,
    DEFAULT_WINDOW,
    NO_ERROR,
    PREFACE,
    SETTINGS_ENABLE_PUSH,
    SETTINGS_HEADER_TABLE_SIZE,
    SETTINGS_INITIAL_WINDOW_SIZE,
    SETTINGS_MAX_CONCURRENT_STREAMS,
    SETTINGS_MAX_FRAME_SIZE,
    SETTINGS_MAX_HEADER_LIST_SIZE,
    H2Conn,
    continuation,
    data,
    goaway,
    headers,
    ping,
    priority,
    priority_fields,
    rst_stream,
    settings,
    window_update,
)

# -- 1. Starting HTTP/2 --------------------------------------------------------


def test_generic_1_1_sends_a_client_connection_preface(h2_raw: H2Conn) -> None:
    """h2spec: "The first HTTP/2 frame sent by the server MUST be a server connection preface."."""
    h2_raw.send(PREFACE, settings((SETTINGS_INITIAL_WINDOW_SIZE, DEFAULT_WINDOW)))
    first = h2_raw.next_frame("the server connection preface")
    assert isinstance(first, SettingsFrame), h2_raw.seen
    assert "ACK" not in first.flags


# -- 2. Streams and Multiplexing -----------------------------------------------


def test_generic_2_1_priority_frame_on_idle_stream(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST accept PRIORITY frame." (on an idle stream)."""
    h2.send(priority(1, 0, 255), ping(bytes(8)))
    h2.expect_ping_ack(bytes(8))


def test_generic_2_2_window_update_frame_on_half_closed_remote_stream(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST accept WINDOW_UPDATE frame." (half-closed (remote) stream)."""
    h2.send(
        settings((SETTINGS_INITIAL_WINDOW_SIZE, 0)),
        headers(1, h2.request()),
        window_update(1, 1),
    )
    assert len(h2.expect_data(1).data) == 1


def test_generic_2_3_priority_frame_on_half_closed_remote_stream(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST accept PRIORITY frame." (half-closed (remote) stream)."""
    h2.send(
        settings((SETTINGS_INITIAL_WINDOW_SIZE, 0)),
        headers(1, h2.request()),
        priority(1, 0, 255),
        window_update(1, 1),
    )
    assert len(h2.expect_data(1).data) == 1


def test_generic_2_4_rst_stream_frame_on_half_closed_remote_stream(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST accept RST_STREAM frame." (half-closed (remote) stream)."""
    h2.send(headers(1, h2.request()), rst_stream(1, CANCEL), ping(bytes(8)))
    h2.expect_ping_ack(bytes(8))


def test_generic_2_5_priority_frame_on_closed_stream(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST accept PRIORITY frame." (closed stream)."""
    h2.send(headers(1, h2.request()))
    h2.expect_stream_end(1)
    h2.send(priority(1, 0, 255), ping(bytes(8)))
    h2.expect_ping_ack(bytes(8))


# -- 3. Frame Definitions --------------------------------------------------------


def test_generic_3_1_1_data_frame(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST accept DATA frame."."""
    h2.send(headers(1, h2.request("POST"), end_stream=False), data(1, b"test", end_stream=True))
    h2.expect_response(1)


def test_generic_3_1_2_multiple_data_frames(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST accept multiple DATA frames."."""
    h2.send(
        headers(1, h2.request("POST"), end_stream=False),
        data(1, b"test"),
        data(1, b"test", end_stream=True),
    )
    h2.expect_response(1)


def test_generic_3_1_3_data_frame_with_padding(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST accept DATA frame with padding."."""
    h2.send(
        headers(1, h2.request("POST"), end_stream=False),
        data(1, b"test", end_stream=True, pad=len(b"padded")),
    )
    h2.expect_response(1)


def test_generic_3_2_1_headers_frame(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST accept HEADERS frame."."""
    h2.send(headers(1, h2.request()))
    h2.expect_response(1)


def test_generic_3_2_2_headers_frame_with_padding(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST accept HEADERS frame with padding."."""
    h2.send(headers(1, h2.request(), pad=8))
    h2.expect_response(1)


def test_generic_3_2_3_headers_frame_with_priority(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST accept HEADERS frame with priority."."""
    h2.send(headers(1, h2.request(), priority=priority_fields(0, 255)))
    h2.expect_response(1)


def test_generic_3_3_1_priority_frame_with_priority_1(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST accept PRIORITY frame with priority 1."."""
    h2.send(priority(1, 0, weight=0), headers(1, h2.request()))
    h2.expect_response(1)


def test_generic_3_3_2_priority_frame_with_priority_256(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST accept PRIORITY frame with priority 256."."""
    h2.send(priority(1, 0, weight=255), headers(1, h2.request()))
    h2.expect_response(1)


def test_generic_3_3_3_priority_frame_with_stream_dependency(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST accept PRIORITY frame with stream dependency."."""
    h2.send(priority(3, 1, weight=0), headers(1, h2.request()))
    h2.expect_response(1)


def test_generic_3_3_4_priority_frame_with_exclusive(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST accept PRIORITY frame with exclusive."."""
    h2.send(priority(1, 0, weight=0, exclusive=True), headers(1, h2.request()))
    h2.expect_response(1)


def test_generic_3_3_5_priority_frame_for_idle_stream_then_headers_for_lower_id(
    h2: H2Conn,
) -> None:
    """h2spec: "The endpoint MUST respond the HEADER frame." (PRIORITY on 3, then HEADERS on 1)."""
    h2.send(priority(3, 0, weight=255), headers(1, h2.request()))
    h2.expect_response(1)


def test_generic_3_4_1_rst_stream_frame(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST accept RST_STREAM frame."."""
    h2.send(headers(1, h2.request(), end_stream=False), rst_stream(1, CANCEL), ping(bytes(8)))
    h2.expect_ping_ack(bytes(8))


def test_generic_3_5_1_settings_frame(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST accept SETTINGS frame."."""
    h2.send(
        settings(
            (SETTINGS_HEADER_TABLE_SIZE, 4096),
            (SETTINGS_ENABLE_PUSH, 1),
            (SETTINGS_MAX_CONCURRENT_STREAMS, 100),
            (SETTINGS_INITIAL_WINDOW_SIZE, 65535),
            (SETTINGS_MAX_FRAME_SIZE, 16384),
            (SETTINGS_MAX_HEADER_LIST_SIZE, 100),
        )
    )
    h2.expect_settings_ack()


def test_generic_3_7_1_ping_frame(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST accept PING frame."."""
    payload = b"h2spec\x00\x00"
    h2.send(ping(payload))
    h2.expect_ping_ack(payload)


def test_generic_3_8_1_goaway_frame(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST accept GOAWAY frame." (the server closes the connection)."""
    h2.send(goaway(0, NO_ERROR, b"h2spec"))
    h2.expect_closed(allow=lambda f: isinstance(f, GoAwayFrame) and f.error_code == NO_ERROR)


def test_generic_3_9_1_window_update_frame_with_stream_id_0(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST accept WINDOW_UPDATE frame." (stream 0)."""
    h2.send(window_update(0, 1), ping(bytes(8)))
    h2.expect_ping_ack(bytes(8))


def test_generic_3_9_2_window_update_frame_with_stream_id_1(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST accept WINDOW_UPDATE frame." (stream 1)."""
    h2.send(headers(1, h2.request()), window_update(1, 1))
    h2.expect_response(1)


def test_generic_3_10_1_continuation_frame(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST accept CONTINUATION frame."."""
    block = h2.request()
    h2.send(headers(1, block[:5], end_headers=False), continuation(1, block[5:]))
    h2.expect_response(1)


def test_generic_3_10_2_multiple_continuation_frames(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST accept multiple CONTINUATION frames."."""
    block = h2.request()
    h2.send(
        headers(1, block[:5], end_headers=False),
        continuation(1, block[5:10], end_headers=False),
        continuation(1, block[10:]),
    )
    h2.expect_response(1)


# -- 4. HTTP Message Exchanges -------------------------------------------------


def test_generic_4_1_get_request(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond to the request." (GET)."""
    h2.send(headers(1, h2.request()))
    h2.expect_response(1)


def test_generic_4_2_head_request(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond to the request." (HEAD)."""
    h2.send(headers(1, h2.request("HEAD")))
    h2.expect_response(1, body=b"")  # the head only: END_STREAM on HEADERS or an empty body


def test_generic_4_3_post_request(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond to the request." (POST)."""
    h2.send(headers(1, h2.request("POST"), end_stream=False), data(1, b"test", end_stream=True))
    h2.expect_response(1)


def test_generic_4_4_post_request_with_trailers(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond to the request." (POST with trailers)."""
    h2.send(
        headers(1, h2.request("POST", [("trailer", "x-test")]), end_stream=False),
        data(1, b"test"),
        headers(1, h2.encode([("x-test", "ok")])),
    )
    h2.expect_response(1)


# -- 5. HPACK -------------------------------------------------------------------
# Each case appends one representation of "user-agent: h2spec" (static index 58)
# or "x-test: h2spec" (a new name) to the request's header block; the app echoes
# the field back, so the decoded value is checked as well. The names follow
# h2spec's; the bytes are the representation the name describes.

H2SPEC_HUFFMAN = b"\x84\x9c\x48\xac\xa4"  # Huffman "h2spec"
X_TEST_HUFFMAN = b"\x85\xf2\xb2\x4a\x84\xff"  # Huffman "x-test"


def _request_with(h2: H2Conn, representation: bytes, *, prefix: bytes = b"") -> None:
    h2.send(headers(1, prefix + h2.request() + representation))


def _expect_echo(h2: H2Conn, name: str, value: str = "h2spec") -> None:
    fields = h2.expect_response(1)
    assert (f"x-echo-{name}", value) in fields, fields


def test_generic_5_1_indexed_header_field_representation(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST accept indexed header field representation"."""
    _request_with(h2, b"\xba")  # index 58: user-agent, empty value
    _expect_echo(h2, "user-agent", "")


def test_generic_5_2_literal_incremental_indexing_indexed_name(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST accept literal header field with incremental indexing"."""
    _request_with(h2, b"\x7a\x06h2spec")
    _expect_echo(h2, "user-agent")


def test_generic_5_3_literal_incremental_indexing_indexed_name_huffman(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST accept literal header field with incremental indexing"."""
    _request_with(h2, b"\x7a" + H2SPEC_HUFFMAN)
    _expect_echo(h2, "user-agent")


def test_generic_5_4_literal_incremental_indexing_new_name(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST accept literal header field with incremental indexing"."""
    _request_with(h2, b"\x40\x06x-test\x06h2spec")
    _expect_echo(h2, "x-test")


def test_generic_5_5_literal_incremental_indexing_new_name_huffman(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST accept literal header field with incremental indexing"."""
    _request_with(h2, b"\x40" + X_TEST_HUFFMAN + H2SPEC_HUFFMAN)
    _expect_echo(h2, "x-test")


def test_generic_5_6_literal_without_indexing_indexed_name(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST accept literal header field without indexing"."""
    _request_with(h2, b"\x0f\x2b\x06h2spec")
    _expect_echo(h2, "user-agent")


def test_generic_5_7_literal_without_indexing_indexed_name_huffman(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST accept literal header field without indexing"."""
    _request_with(h2, b"\x0f\x2b" + H2SPEC_HUFFMAN)
    _expect_echo(h2, "user-agent")


def test_generic_5_8_literal_without_indexing_new_name(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST accept literal header field without indexing"."""
    _request_with(h2, b"\x00\x06x-test\x06h2spec")
    _expect_echo(h2, "x-test")


def test_generic_5_9_literal_without_indexing_new_name_huffman(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST accept literal header field without indexing"."""
    _request_with(h2, b"\x00" + X_TEST_HUFFMAN + H2SPEC_HUFFMAN)
    _expect_echo(h2, "x-test")


def test_generic_5_10_literal_never_indexed_indexed_name(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST accept literal header field never indexed"."""
    _request_with(h2, b"\x1f\x2b\x06h2spec")
    _expect_echo(h2, "user-agent")


def test_generic_5_11_literal_never_indexed_indexed_name_huffman(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST accept literal header field never indexed"."""
    _request_with(h2, b"\x1f\x2b" + H2SPEC_HUFFMAN)
    _expect_echo(h2, "user-agent")


def test_generic_5_12_literal_never_indexed_new_name(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST accept literal header field never indexed"."""
    _request_with(h2, b"\x10\x06x-test\x06h2spec")
    _expect_echo(h2, "x-test")


def test_generic_5_13_literal_never_indexed_new_name_huffman(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST accept literal header field never indexed"."""
    _request_with(h2, b"\x10" + X_TEST_HUFFMAN + H2SPEC_HUFFMAN)
    _expect_echo(h2, "x-test")


def test_generic_5_14_dynamic_table_size_update(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST accept dynamic table size update"."""
    _request_with(h2, b"\x40\x06x-test\x06h2spec", prefix=b"\x20")  # size 0 first
    _expect_echo(h2, "x-test")


def test_generic_5_15_multiple_dynamic_table_size_update(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST accept multiple dynamic table size update"."""
    _request_with(h2, b"\x40\x06x-test\x06h2spec", prefix=b"\x20\x3f\xe1\x1f")  # 0, then 4096
    _expect_echo(h2, "x-test")
