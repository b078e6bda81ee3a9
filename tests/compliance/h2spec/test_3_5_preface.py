"""h2spec http2/3.5: the HTTP/2 connection preface (RFC 9113 3.4)."""

from __future__ import annotations

from hyperframe.frame import SettingsFrame, WindowUpdateFrame

from tests.compliance.h2spec.h2client import (
    DEFAULT_WINDOW,
    PREFACE,
    PROTOCOL_ERROR,
    SETTINGS_INITIAL_WINDOW_SIZE,
    TIMEOUT,
    H2Conn,
    settings,
)
from tests.conftest import recv_until_closed


def test_3_5_1_sends_client_connection_preface(h2_raw: H2Conn) -> None:
    """h2spec: "The server connection preface MUST be the first frame the server sends ..."."""
    h2_raw.send(PREFACE, settings((SETTINGS_INITIAL_WINDOW_SIZE, DEFAULT_WINDOW)))
    first = h2_raw.next_frame("the server connection preface")
    assert isinstance(first, SettingsFrame), h2_raw.seen
    assert "ACK" not in first.flags
    assert first.stream_id == 0


def test_3_5_2_sends_invalid_connection_preface(h2_raw: H2Conn) -> None:
    """h2spec: "The endpoint MUST terminate the TCP connection." (invalid preface)."""
    # h2spec's bytes do not even start like the preface: no HTTP/2 is spoken, the
    # server answers them as a bad HTTP/1.1 request and closes.
    h2_raw.send(b"INVALID CONNECTION PREFACE\r\n\r\n")
    received = recv_until_closed(h2_raw.sock, TIMEOUT)
    assert received.startswith(b"HTTP/1.1 400 "), received
    assert b"\r\nconnection: close\r\n" in received.lower()

    # A preface that starts right but goes wrong: RFC 9113 3.4 connection error
    # PROTOCOL_ERROR (the server preface was already queued), then the close.
    bad = H2Conn(h2_raw.port)
    try:
        bad.send(PREFACE[:18] + b"XX\r\n\r\n")
        assert isinstance(bad.next_frame("the server preface"), SettingsFrame)
        assert isinstance(bad.next_frame("the connection WINDOW_UPDATE"), WindowUpdateFrame)
        bad.expect_goaway(PROTOCOL_ERROR)
    finally:
        bad.close()
