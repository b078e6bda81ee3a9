"""h2spec http2/7: unknown error codes trigger no special behavior (RFC 9113 7)."""

from __future__ import annotations

from hyperframe.frame import GoAwayFrame

from tests.compliance.h2spec.h2client import NO_ERROR, H2Conn, goaway, headers, ping, rst_stream


def test_7_1_goaway_frame_with_unknown_error_code(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST NOT trigger any special behavior." (the connection closes)."""
    h2.send(goaway(0, 0xFF))
    h2.expect_closed(allow=lambda f: isinstance(f, GoAwayFrame) and f.error_code == NO_ERROR)


def test_7_2_rst_stream_frame_with_unknown_error_code(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST NOT trigger any special behavior." (the connection lives on)."""
    h2.send(
        headers(1, h2.request("POST"), end_stream=False),
        rst_stream(1, 0xFF),
        ping(bytes(8)),
    )
    h2.expect_ping_ack(bytes(8))
