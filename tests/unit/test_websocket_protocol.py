"""The sans-I/O WebSocket layer: handshake validation and framing, driven with bytes."""

from __future__ import annotations

import zlib

import pytest

from squall.protocols.websocket.handshake import (
    BYTES,
    CLOSED,
    PONG,
    TEXT,
    HandshakeError,
    WebSocketProtocol,
    accept_response,
    check_handshake,
)
from tests.integration.helpers import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    WS_ACCEPT,
    WS_KEY,
    split_ws_frames,
    ws_close_frame,
    ws_frame,
)

HEADERS = [
    (b"host", b"example.org"),
    (b"upgrade", b"websocket"),
    (b"connection", b"Upgrade"),
    (b"sec-websocket-key", WS_KEY.encode()),
    (b"sec-websocket-version", b"13"),
]
DEFLATE_OFFER = (b"sec-websocket-extensions", b"permessage-deflate; client_max_window_bits")
SECOND_KEY = (b"sec-websocket-key", b"AQIDBAUGBwgJCgsMDQ4PEA==")
NON_ASCII_PROTOCOL = (b"sec-websocket-protocol", b"chat\xe9")


def extensions(value: bytes) -> tuple[bytes, bytes]:
    return (b"sec-websocket-extensions", value)


def handshake(*extra: tuple[bytes, bytes], deflate: bool = True):
    return check_handshake("GET", [*HEADERS, *extra], deflate)


def protocol(max_size: int | None = 1 << 20, offer: bytes | None = None) -> WebSocketProtocol:
    """A protocol for an accepted handshake (with permessage-deflate if ``offer``)."""
    extra = [(b"sec-websocket-extensions", offer)] if offer else []
    hs = handshake(*extra)
    if offer:
        assert hs.deflate is not None
    return WebSocketProtocol(hs.deflate, max_size)


def messages(events: list) -> list:
    return [(kind, value) for kind, value in events if kind in (TEXT, BYTES)]


def deflate(data: bytes, co=None) -> bytes:
    """One compressed client message (RFC 7692 7.2.1): the sync-flush tail stripped."""
    co = co or zlib.compressobj(wbits=-12)
    out = co.compress(data) + co.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def close_code(data: bytes) -> int | None:
    frames = split_ws_frames(data)
    assert [f.opcode for f in frames] == [OP_CLOSE], frames
    return frames[0].close[0]


# -- check_handshake ------------------------------------------------------------------------


def test_valid_handshake():
    hs = handshake()
    assert hs.accept_key == WS_ACCEPT.encode()
    assert hs.subprotocols == []
    assert hs.deflate is None
    assert hs.deflate_params == b""


def test_subprotocols_in_offer_order():
    hs = handshake(
        (b"sec-websocket-protocol", b"chat, superchat"),
        (b"sec-websocket-protocol", b" v3 ,,v4"),
    )
    assert hs.subprotocols == ["chat", "superchat", "v3", "v4"]


@pytest.mark.parametrize(
    ("method", "headers", "status"),
    [
        pytest.param("POST", HEADERS, 400, id="post"),
        pytest.param("GET", [h for h in HEADERS if h[0] != b"sec-websocket-key"], 400, id="no-key"),
        pytest.param("GET", [*HEADERS, SECOND_KEY], 400, id="two-keys"),
        pytest.param(
            "GET",
            [*HEADERS[:3], (b"sec-websocket-key", b"not base64!"), HEADERS[4]],
            400,
            id="key-not-base64",
        ),
        pytest.param(
            "GET",
            [*HEADERS[:3], (b"sec-websocket-key", b"AAAAAAAAAAAAAAAAAAAA"), HEADERS[4]],
            400,
            id="key-15-bytes",
        ),
        pytest.param(
            "GET",
            [*HEADERS[:3], (b"sec-websocket-key", b"AAAAAAAAAAAAAAAAAAAAAAAAAA=="), HEADERS[4]],
            400,
            id="key-19-bytes",
        ),
        pytest.param("GET", [*HEADERS, NON_ASCII_PROTOCOL], 400, id="non-ascii-protocol"),
        pytest.param("GET", HEADERS[:4], 426, id="no-version"),
        pytest.param("GET", [*HEADERS[:4], (b"sec-websocket-version", b"8")], 426, id="version-8"),
        pytest.param(
            "GET", [*HEADERS[:4], (b"sec-websocket-version", b"13, 8")], 426, id="version-list"
        ),
    ],
)
def test_bad_handshake(method, headers, status):
    with pytest.raises(HandshakeError) as info:
        check_handshake(method, headers, True)
    assert info.value.status == status
    assert info.value.reason
    if status == 426:
        assert (b"sec-websocket-version", b"13") in info.value.headers


def test_deflate_negotiated():
    hs = handshake(DEFLATE_OFFER)
    assert hs.deflate is not None
    assert hs.deflate_params.startswith(b"permessage-deflate")
    assert b"client_max_window_bits" in hs.deflate_params  # answers the client's parameter


def test_deflate_first_acceptable_offer_wins():
    offer = b"x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=8"
    hs = handshake(extensions(offer + b", permessage-deflate"))
    assert hs.deflate is not None
    assert hs.deflate_params.startswith(b"permessage-deflate")


@pytest.mark.parametrize(
    ("extensions", "enabled"),
    [
        pytest.param([], True, id="not-offered"),
        pytest.param([DEFLATE_OFFER], False, id="disabled"),
        pytest.param([extensions(b"x-webkit-deflate-frame")], True, id="unknown"),
        pytest.param([extensions(b"permessage-deflate; bogus_param")], True, id="bad-param"),
    ],
)
def test_deflate_not_negotiated(extensions, enabled):
    hs = handshake(*extensions, deflate=enabled)
    assert hs.deflate is None
    assert hs.deflate_params == b""


def test_malformed_extensions_header_is_400():
    with pytest.raises(HandshakeError) as info:
        handshake((b"sec-websocket-extensions", b"permessage-deflate; ;="))
    assert info.value.status == 400


def test_accept_response():
    hs = handshake(DEFLATE_OFFER, (b"sec-websocket-protocol", b"a, b"))
    defaults = b"server: squall\r\ndate: Mon, 23 Nov 2026 00:00:00 GMT\r\n"
    data = accept_response(hs, "b", [(b"server", b"mine"), (b"x-extra", b"1")], defaults)
    assert data.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert data.endswith(b"\r\n\r\n")
    lines = data[:-4].split(b"\r\n")[1:]
    headers = [tuple(line.split(b": ", 1)) for line in lines]
    names = [n.lower() for n, _ in headers]
    assert (b"upgrade", b"websocket") in headers
    assert (b"connection", b"Upgrade") in headers
    assert (b"sec-websocket-accept", WS_ACCEPT.encode()) in headers
    assert (b"sec-websocket-protocol", b"b") in headers
    assert (b"sec-websocket-extensions", hs.deflate_params) in headers
    assert (b"x-extra", b"1") in headers
    assert names.count(b"server") == 1
    assert (b"server", b"mine") in headers
    assert names.count(b"date") == 1


def test_accept_response_minimal():
    data = accept_response(handshake(), None, [], b"")
    assert b"sec-websocket-protocol" not in data.lower()
    assert b"sec-websocket-extensions" not in data.lower()


# -- WebSocketProtocol: messages ------------------------------------------------------------


def test_single_frame_messages():
    p = protocol()
    events = p.feed(ws_frame(OP_TEXT, "héllo".encode()) + ws_frame(OP_BINARY, b"\x00\xff"))
    assert events == [(TEXT, "héllo"), (BYTES, b"\x00\xff")]
    assert p.feed(ws_frame(OP_TEXT, b"") + ws_frame(OP_BINARY, b"")) == [(TEXT, ""), (BYTES, b"")]
    assert p.data_to_send() == b""
    assert p.open
    assert not p.wants_close


def test_fed_one_byte_at_a_time():
    p = protocol()
    data = (
        ws_frame(OP_TEXT, b"a" * 10)
        + ws_frame(OP_BINARY, b"b" * 300)  # 16-bit length
        + ws_frame(OP_BINARY, b"c" * 70000)  # 64-bit length
    )
    events = []
    for i in range(len(data)):
        events += p.feed(data[i : i + 1])
    assert events == [(TEXT, "a" * 10), (BYTES, b"b" * 300), (BYTES, b"c" * 70000)]


def test_fragmented_text_with_a_character_split_between_fragments():
    p = protocol()
    snowman = "☃".encode()
    events = p.feed(ws_frame(OP_TEXT, b"x" + snowman[:2], fin=False))
    assert events == []
    events = p.feed(ws_frame(OP_PING, b"p") + ws_frame(OP_CONT, snowman[2:], fin=False))
    assert events == []
    assert split_ws_frames(p.data_to_send())[0].payload == b"p"  # the ping's pong
    assert p.feed(ws_frame(OP_CONT, b"y")) == [(TEXT, "x☃y")]


def test_fragmented_binary():
    p = protocol()
    data = ws_frame(OP_BINARY, b"ab", fin=False) + ws_frame(OP_CONT, b"", fin=False)
    assert p.feed(data + ws_frame(OP_CONT, b"cd")) == [(BYTES, b"abcd")]
    assert p.feed(ws_frame(OP_TEXT, b"next")) == [(TEXT, "next")]


def test_ping_is_answered_with_a_pong():
    p = protocol()
    assert p.feed(ws_frame(OP_PING, b"are you there")) == []
    (pong,) = split_ws_frames(p.data_to_send())
    assert (pong.fin, pong.opcode, pong.payload, pong.masked) == (
        True,
        OP_PONG,
        b"are you there",
        False,
    )
    assert p.data_to_send() == b""


def test_pong_is_reported():
    p = protocol()
    assert p.feed(ws_frame(OP_PONG, b"1234")) == [(PONG, b"1234")]
    assert p.data_to_send() == b""


def test_client_close():
    p = protocol()
    events = p.feed(ws_close_frame(1001, "going away"))
    assert events == [(CLOSED, (1001, "going away"))]
    (echo,) = split_ws_frames(p.data_to_send())
    assert echo.close == (1001, "going away")
    assert not echo.masked
    assert not p.open
    assert p.wants_close
    assert p.close_info() == (1001, "going away")
    assert messages(p.feed(ws_frame(OP_TEXT, b"late"))) == []


def test_empty_close_is_1005():
    p = protocol()
    assert p.feed(ws_frame(OP_CLOSE, b"")) == [(CLOSED, (1005, ""))]
    (echo,) = split_ws_frames(p.data_to_send())
    assert echo.opcode == OP_CLOSE
    assert echo.payload == b""
    assert p.wants_close


def test_frames_after_close_are_ignored():
    p = protocol()
    events = p.feed(ws_frame(OP_TEXT, b"a") + ws_close_frame(1000) + ws_frame(OP_TEXT, b"b"))
    assert events == [(TEXT, "a"), (CLOSED, (1000, ""))]


def test_close_between_fragments():
    p = protocol()
    events = p.feed(ws_frame(OP_TEXT, b"half", fin=False) + ws_close_frame(1000, "bye"))
    assert events == [(CLOSED, (1000, "bye"))]
    assert split_ws_frames(p.data_to_send())[0].close == (1000, "bye")


def test_server_initiated_close():
    p = protocol()
    data = p.send_close(4000, "done")
    (frame,) = split_ws_frames(data)
    assert frame.close == (4000, "done")
    assert not frame.masked
    assert not p.open
    assert not p.wants_close  # waiting for the client's close
    assert p.send_close(4001, "again") == b""  # only one close frame
    assert messages(p.feed(ws_frame(OP_TEXT, b"in flight"))) == [(TEXT, "in flight")]
    events = p.feed(ws_close_frame(4000, "done"))
    assert events[-1][0] == CLOSED
    assert p.data_to_send() == b""  # no second close frame
    assert p.wants_close
    assert p.close_info() == (4000, "done")


def test_close_reason_is_truncated_on_a_character_boundary():
    p = protocol()
    (frame,) = split_ws_frames(p.send_close(4000, "é" * 100))  # 200 bytes of UTF-8
    assert len(frame.payload) <= 125
    code, reason = frame.close  # decodes: no character cut in half
    assert code == 4000
    assert "é" * 10 in reason


def test_close_info_before_any_close():
    assert protocol().close_info() == (1006, "")


# -- WebSocketProtocol: protocol errors -----------------------------------------------------

BAD = [
    pytest.param(ws_frame(OP_TEXT, b"caf\xc3"), 1007, id="invalid-utf8"),
    pytest.param(ws_frame(OP_TEXT, b"\xed\xa0\x80"), 1007, id="utf8-surrogate"),
    pytest.param(ws_frame(OP_TEXT, b"\xff", fin=False), 1007, id="invalid-utf8-first-fragment"),
    pytest.param(
        ws_frame(OP_TEXT, b"ok", fin=False) + ws_frame(OP_CONT, b"\xc3"),
        1007,
        id="utf8-truncated-at-the-end",
    ),
    pytest.param(ws_frame(OP_TEXT, b"hi", mask=None), 1002, id="unmasked"),
    pytest.param(ws_frame(OP_TEXT, b"hi", rsv=4), 1002, id="rsv1-without-deflate"),
    pytest.param(ws_frame(OP_TEXT, b"hi", rsv=2), 1002, id="rsv2"),
    pytest.param(ws_frame(OP_TEXT, b"hi", rsv=1), 1002, id="rsv3"),
    pytest.param(ws_frame(OP_PING, b"hi", rsv=4), 1002, id="rsv1-on-a-ping"),
    pytest.param(ws_frame(0x3, b"hi"), 1002, id="opcode-3"),
    pytest.param(ws_frame(0x7, b"hi"), 1002, id="opcode-7"),
    pytest.param(ws_frame(0xB, b"hi"), 1002, id="opcode-0xb"),
    pytest.param(ws_frame(0xF, b"hi"), 1002, id="opcode-0xf"),
    pytest.param(ws_frame(OP_PING, b"hi", fin=False), 1002, id="fragmented-ping"),
    pytest.param(ws_frame(OP_CLOSE, b"\x03\xe8", fin=False), 1002, id="fragmented-close"),
    pytest.param(ws_frame(OP_PONG, b"x" * 126), 1002, id="pong-over-125-bytes"),
    pytest.param(ws_frame(OP_CONT, b"orphan"), 1002, id="continuation-without-start"),
    pytest.param(
        ws_frame(OP_TEXT, b"a", fin=False) + ws_frame(OP_BINARY, b"b"),
        1002,
        id="new-message-inside-a-fragmented-one",
    ),
    pytest.param(ws_frame(OP_CLOSE, b"\x03"), 1002, id="close-1-byte"),
    pytest.param(ws_close_frame(999), 1002, id="close-code-999"),
    pytest.param(ws_close_frame(1004), 1002, id="close-code-1004"),
    pytest.param(ws_close_frame(1005), 1002, id="close-code-1005"),
    pytest.param(ws_close_frame(1006), 1002, id="close-code-1006"),
    pytest.param(ws_close_frame(1015), 1002, id="close-code-1015"),
    pytest.param(ws_close_frame(5000), 1002, id="close-code-5000"),
    pytest.param(ws_frame(OP_CLOSE, b"\x03\xe8\xff"), 1007, id="close-reason-not-utf8"),
]


@pytest.mark.parametrize(("data", "code"), BAD)
def test_protocol_error(data, code):
    p = protocol()
    events = p.feed(data)
    assert messages(events) == []
    assert close_code(p.data_to_send()) == code
    assert not p.open
    assert p.wants_close
    assert p.close_info()[0] == code
    assert messages(p.feed(ws_frame(OP_TEXT, b"after"))) == []  # nothing more is read
    assert p.data_to_send() == b""


@pytest.mark.parametrize(("data", "code"), BAD)
def test_nothing_after_a_protocol_error_is_delivered(data, code):
    p = protocol()
    events = p.feed(ws_frame(OP_TEXT, b"before") + data + ws_frame(OP_TEXT, b"after"))
    assert messages(events) == [(TEXT, "before")]
    assert close_code(p.data_to_send()) == code


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999])
def test_valid_close_codes(code):
    p = protocol()
    assert p.feed(ws_close_frame(code, "r")) == [(CLOSED, (code, "r"))]


# -- WebSocketProtocol: size limit ----------------------------------------------------------


def test_max_size_single_frame():
    p = protocol(max_size=100)
    assert p.feed(ws_frame(OP_BINARY, b"x" * 100)) == [(BYTES, b"x" * 100)]
    assert messages(p.feed(ws_frame(OP_BINARY, b"x" * 101))) == []
    assert close_code(p.data_to_send()) == 1009
    assert p.wants_close


def test_max_size_counts_text_in_bytes():
    p = protocol(max_size=10)
    assert messages(p.feed(ws_frame(OP_TEXT, ("é" * 6).encode()))) == []  # 6 characters, 12 bytes
    assert close_code(p.data_to_send()) == 1009


def test_max_size_fragmented():
    p = protocol(max_size=100)
    data = ws_frame(OP_BINARY, b"x" * 50, fin=False) + ws_frame(OP_CONT, b"x" * 50)
    assert p.feed(data) == [(BYTES, b"x" * 100)]
    data = ws_frame(OP_BINARY, b"x" * 50, fin=False) + ws_frame(OP_CONT, b"x" * 51)
    assert messages(p.feed(data)) == []
    assert close_code(p.data_to_send()) == 1009


def test_max_size_known_from_the_header():
    """A frame announcing a huge payload is refused before any of it arrives."""
    p = protocol(max_size=1000)
    head = bytes([0x82, 0x80 | 127]) + (1 << 40).to_bytes(8, "big") + b"mask"
    p.feed(head)
    assert close_code(p.data_to_send()) == 1009
    assert p.wants_close


def test_no_max_size():
    p = protocol(max_size=None)
    assert p.feed(ws_frame(OP_BINARY, b"x" * 200_000)) == [(BYTES, b"x" * 200_000)]


# -- WebSocketProtocol: sending -------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 100_000])
def test_send_lengths(size):
    p = protocol()
    (frame,) = split_ws_frames(p.send_bytes(b"b" * size))
    assert (frame.fin, frame.rsv, frame.opcode, frame.masked) == (True, 0, OP_BINARY, False)
    assert frame.payload == b"b" * size
    (frame,) = split_ws_frames(p.send_text("☃" * size))
    assert frame.opcode == OP_TEXT
    assert frame.payload.decode() == "☃" * size


def test_send_ping():
    p = protocol()
    (frame,) = split_ws_frames(p.send_ping(b"abcd"))
    assert (frame.opcode, frame.payload, frame.masked) == (OP_PING, b"abcd", False)


# -- WebSocketProtocol: permessage-deflate --------------------------------------------------

OFFER = b"permessage-deflate; client_max_window_bits"


def test_deflate_receive_with_context_takeover():
    p = protocol(offer=OFFER)
    co = zlib.compressobj(wbits=-12)  # one compressor for the connection, as a client does
    text = "compress me " * 100
    for _ in range(3):  # later messages refer back to earlier ones
        assert p.feed(ws_frame(OP_TEXT, deflate(text.encode(), co), rsv=4)) == [(TEXT, text)]
    assert p.feed(ws_frame(OP_BINARY, b"raw")) == [(BYTES, b"raw")]  # RSV1 clear: not compressed


def test_deflate_fragmented_message():
    p = protocol(offer=OFFER)
    data = deflate(b"fragmented " * 100)
    events = p.feed(
        ws_frame(OP_BINARY, data[:10], rsv=4, fin=False)
        + ws_frame(OP_CONT, data[10:20], fin=False)
        + ws_frame(OP_CONT, data[20:])
    )
    assert events == [(BYTES, b"fragmented " * 100)]


def test_deflate_send():
    p = protocol(offer=OFFER)
    d = zlib.decompressobj(-15)
    text = "squall " * 500
    for _ in range(3):
        (frame,) = split_ws_frames(p.send_text(text))
        assert (frame.opcode, frame.rsv) == (OP_TEXT, 4)
        assert len(frame.payload) < len(text) // 10
        assert d.decompress(frame.payload + b"\x00\x00\xff\xff") == text.encode()


def test_deflate_server_no_context_takeover():
    p = protocol(offer=b"permessage-deflate; server_no_context_takeover")
    for _ in range(2):  # each message decompresses on its own
        (frame,) = split_ws_frames(p.send_bytes(b"same again " * 50))
        fresh = zlib.decompressobj(-15)
        assert fresh.decompress(frame.payload + b"\x00\x00\xff\xff") == b"same again " * 50


def test_deflate_rsv1_on_a_continuation_frame():
    p = protocol(offer=OFFER)
    data = ws_frame(OP_TEXT, deflate(b"a"), rsv=4, fin=False) + ws_frame(
        OP_CONT, deflate(b"b"), rsv=4
    )
    assert messages(p.feed(data)) == []
    assert close_code(p.data_to_send()) == 1002


def test_deflate_max_size_counts_decompressed_bytes():
    p = protocol(max_size=1000, offer=OFFER)
    assert p.feed(ws_frame(OP_BINARY, deflate(b"\x00" * 1000), rsv=4)) == [(BYTES, b"\x00" * 1000)]
    assert messages(p.feed(ws_frame(OP_BINARY, deflate(b"\x00" * 1001), rsv=4))) == []
    assert close_code(p.data_to_send()) == 1009


def test_decompression_bomb():
    p = protocol(max_size=1 << 20, offer=OFFER)
    bomb = deflate(b"\x00" * (64 << 20))  # 64 MiB of zeros: ~64 KiB compressed
    assert len(bomb) < 100_000
    assert messages(p.feed(ws_frame(OP_BINARY, bomb, rsv=4))) == []
    assert close_code(p.data_to_send()) == 1009


def test_decompression_bomb_in_fragments():
    p = protocol(max_size=1 << 20, offer=OFFER)
    bomb = deflate(b"\x00" * (4 << 20))
    third = len(bomb) // 3
    data = (
        ws_frame(OP_BINARY, bomb[:third], rsv=4, fin=False)
        + ws_frame(OP_CONT, bomb[third : 2 * third], fin=False)
        + ws_frame(OP_CONT, bomb[2 * third :])
    )
    assert messages(p.feed(data)) == []
    assert close_code(p.data_to_send()) == 1009


def test_invalid_compressed_data():
    p = protocol(offer=OFFER)
    assert messages(p.feed(ws_frame(OP_BINARY, b"\xff\xff\xff\xff", rsv=4))) == []
    assert close_code(p.data_to_send()) in (1002, 1007)
    assert p.wants_close
