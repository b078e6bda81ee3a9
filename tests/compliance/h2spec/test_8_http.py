"""h2spec http2/8.1 to 8.2: HTTP message exchanges (RFC 9113 8).

Malformed requests (RFC 9113 8.1.1, 8.2, 8.3) are stream errors PROTOCOL_ERROR:
each case expects RST_STREAM and checks that the connection still works.
"""

from __future__ import annotations

from tests.compliance.h2spec.h2client import (
    PROTOCOL_ERROR,
    H2Conn,
    data,
    headers,
    push_promise,
)


def _malformed(h2: H2Conn, fields: list[tuple[str, str]]) -> None:
    h2.send(headers(1, h2.encode(fields)))
    h2.expect_rst_stream(1, PROTOCOL_ERROR)


# -- 8.1. HTTP Request/Response Exchange ----------------------------------------------------


def test_8_1_1_second_headers_frame_without_end_stream(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond with a stream error of type PROTOCOL_ERROR."."""
    h2.send(
        headers(1, h2.request("POST"), end_stream=False),
        data(1, b"test"),
        headers(1, h2.encode([("x-test", "ok")]), end_stream=False),
    )
    h2.expect_rst_stream(1, PROTOCOL_ERROR)


# -- 8.1.2. HTTP Header Fields ------------------------------------------------------------


def test_8_1_2_1_header_field_name_in_uppercase_letters(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond with a stream error of type PROTOCOL_ERROR."."""
    _malformed(h2, h2.request_headers(extra=[("X-TEST", "ok")]))


# -- 8.1.2.1. Pseudo-Header Fields -----------------------------------------------------------


def test_8_1_2_1_1_unknown_pseudo_header_field(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond with a stream error of type PROTOCOL_ERROR."."""
    _malformed(h2, h2.request_headers(extra=[(":test", "ok")]))


def test_8_1_2_1_2_pseudo_header_field_defined_for_response(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond with a stream error of type PROTOCOL_ERROR."."""
    _malformed(h2, h2.request_headers(extra=[(":status", "200")]))


def test_8_1_2_1_3_pseudo_header_field_as_trailers(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond with a stream error of type PROTOCOL_ERROR."."""
    h2.send(
        headers(1, h2.request("POST"), end_stream=False),
        data(1, b"test"),
        headers(1, h2.encode([(":method", "POST")]), end_stream=False),
    )
    h2.expect_rst_stream(1, PROTOCOL_ERROR)


def test_8_1_2_1_4_pseudo_header_field_after_a_regular_header_field(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond with a stream error of type PROTOCOL_ERROR."."""
    _malformed(h2, [("x-test", "ok"), *h2.request_headers()])


# -- 8.1.2.2. Connection-Specific Header Fields --------------------------------------------


def test_8_1_2_2_1_connection_specific_header_field(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond with a stream error of type PROTOCOL_ERROR."."""
    _malformed(h2, h2.request_headers(extra=[("connection", "keep-alive")]))


def test_8_1_2_2_2_te_header_field_other_than_trailers(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond with a stream error of type PROTOCOL_ERROR."."""
    _malformed(h2, h2.request_headers(extra=[("trailers", "test"), ("te", "trailers, deflate")]))


# -- 8.1.2.3. Request Pseudo-Header Fields ---------------------------------------------------


def _without(h2: H2Conn, name: str) -> list[tuple[str, str]]:
    return [(k, v) for k, v in h2.request_headers() if k != name]


def test_8_1_2_3_1_empty_path_pseudo_header_field(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond with a stream error of type PROTOCOL_ERROR."."""
    _malformed(h2, [(k, "" if k == ":path" else v) for k, v in h2.request_headers()])


def test_8_1_2_3_2_omits_method_pseudo_header_field(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond with a stream error of type PROTOCOL_ERROR."."""
    _malformed(h2, _without(h2, ":method"))


def test_8_1_2_3_3_omits_scheme_pseudo_header_field(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond with a stream error of type PROTOCOL_ERROR."."""
    _malformed(h2, _without(h2, ":scheme"))


def test_8_1_2_3_4_omits_path_pseudo_header_field(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond with a stream error of type PROTOCOL_ERROR."."""
    _malformed(h2, _without(h2, ":path"))


def test_8_1_2_3_5_duplicated_method_pseudo_header_field(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond with a stream error of type PROTOCOL_ERROR."."""
    _malformed(h2, h2.request_headers(extra=[(":method", "GET")]))


def test_8_1_2_3_6_duplicated_scheme_pseudo_header_field(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond with a stream error of type PROTOCOL_ERROR."."""
    _malformed(h2, h2.request_headers(extra=[(":scheme", "http")]))


def test_8_1_2_3_7_duplicated_path_pseudo_header_field(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST respond with a stream error of type PROTOCOL_ERROR."."""
    _malformed(h2, h2.request_headers(extra=[(":path", "/")]))


# -- 8.1.2.6. Malformed Requests and Responses -----------------------------------------------


def test_8_1_2_6_1_content_length_not_equal_to_data_frame_payload_length(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST treat this as a stream error of type PROTOCOL_ERROR."."""
    h2.send(
        headers(1, h2.request("POST", [("content-length", "1")]), end_stream=False),
        data(1, b"test", end_stream=True),
    )
    h2.expect_rst_stream(1, PROTOCOL_ERROR)


def test_8_1_2_6_2_content_length_not_equal_to_sum_of_data_frame_lengths(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST treat this as a stream error of type PROTOCOL_ERROR."."""
    h2.send(
        headers(1, h2.request("POST", [("content-length", "1")]), end_stream=False),
        data(1, b"test"),
        data(1, b"test", end_stream=True),
    )
    h2.expect_rst_stream(1, PROTOCOL_ERROR)


# -- 8.2. Server Push ----------------------------------------------------------------------


def test_8_2_1_push_promise_frame(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST treat this as a connection error of type PROTOCOL_ERROR."."""
    h2.send(push_promise(1, 3, h2.request()))
    h2.expect_goaway(PROTOCOL_ERROR)
