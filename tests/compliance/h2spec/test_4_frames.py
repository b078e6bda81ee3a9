"""h2spec http2/4.1 to 4.3: frame format, frame size, header compression (RFC 9113 4)."""

from __future__ import annotations

from tests.compliance.h2spec.h2client import (
    COMPRESSION_ERROR,
    END_HEADERS,
    END_STREAM,
    FRAME_SIZE_ERROR,
    HEADERS,
    MAX_FRAME_SIZE,
    PING,
    PROTOCOL_ERROR,
    H2Conn,
    continuation,
    data,
    dummy_headers,
    frame_header,
    headers,
    ping,
    priority,
    raw_frame,
    unknown_frame,
)

# -- 4.1. Frame Format -----------------------------------------------------------


def test_4_1_1_frame_with_unknown_type(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST ignore and discard any frame that has a type that is unknown."."""
    h2.send(unknown_frame(), ping(bytes(8)))
    h2.expect_ping_ack(bytes(8))


def test_4_1_2_frame_with_undefined_flag(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST ignore any flags that is undefined."."""
    h2.send(raw_frame(PING, 0x16, 0, bytes(8)))  # 0x16: no ACK, only undefined bits
    h2.expect_ping_ack(bytes(8))


def test_4_1_3_frame_with_reserved_field_bit(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST ignore the value of reserved field."."""
    h2.send(frame_header(8, PING, 0x16, 0x80000000) + bytes(8))  # R bit set, stream 0
    h2.expect_ping_ack(bytes(8))


# -- 4.2. Frame Size ---------------------------------------------------------------


def test_4_2_1_data_frame_with_2_14_octets(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST be capable of receiving ... frames up to 2^14 octets ..."."""
    h2.send(
        headers(1, h2.request("POST"), end_stream=False),
        data(1, b"x" * MAX_FRAME_SIZE, end_stream=True),
    )
    h2.expect_response(1)


def test_4_2_2_large_data_frame_exceeding_max_frame_size(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST send an error code of FRAME_SIZE_ERROR."."""
    h2.send(
        headers(1, h2.request("POST"), end_stream=False),
        data(1, b"x" * (MAX_FRAME_SIZE + 1), end_stream=True),
    )
    # RFC 9113 4.2: a stream error, or a connection error (the frame was not read)
    h2.expect_stream_or_connection_error(1, FRAME_SIZE_ERROR)


def test_4_2_3_large_headers_frame_exceeding_max_frame_size(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond with a connection error of type FRAME_SIZE_ERROR."."""
    block = h2.encode(h2.request_headers() + dummy_headers(5))
    assert len(block) > MAX_FRAME_SIZE
    h2.send(headers(1, block))
    h2.expect_goaway(FRAME_SIZE_ERROR)


# -- 4.3. Header Compression and Decompression -----------------------------------


def test_4_3_1_invalid_header_block_fragment(h2: H2Conn) -> None:
    """h2spec: "... terminate the connection with a connection error of type COMPRESSION_ERROR."."""
    # a literal field with incremental indexing, new name, without its strings
    h2.send(raw_frame(HEADERS, END_STREAM | END_HEADERS, 1, b"\x40"))
    h2.expect_goaway(COMPRESSION_ERROR)


def test_4_3_2_priority_frame_while_sending_header_blocks(h2: H2Conn) -> None:
    """h2spec: "... terminate the connection with a connection error of type PROTOCOL_ERROR."."""
    h2.send(
        headers(1, h2.request(), end_stream=False, end_headers=False),
        priority(1, 0, 255),
        continuation(1, h2.encode(dummy_headers(1))),
    )
    h2.expect_goaway(PROTOCOL_ERROR)


def test_4_3_3_headers_frame_to_another_stream_while_sending_header_blocks(h2: H2Conn) -> None:
    """h2spec: "... terminate the connection with a connection error of type PROTOCOL_ERROR."."""
    h2.send(
        headers(1, h2.request(), end_stream=False, end_headers=False),
        headers(3, h2.request()),
        continuation(1, h2.encode(dummy_headers(1))),
    )
    h2.expect_goaway(PROTOCOL_ERROR)
