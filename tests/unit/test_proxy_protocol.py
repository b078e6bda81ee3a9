"""The PROXY protocol parser, v1 and v2."""

from __future__ import annotations

import socket
import struct

import pytest

from squall.protocols.proxy import V2_SIGNATURE, ProxyProtocolError, parse


def v2(command: int, family: int, body: bytes, tlvs: bytes = b"") -> bytes:
    payload = body + tlvs
    return (
        V2_SIGNATURE + bytes((0x20 | command, family)) + struct.pack(">H", len(payload)) + payload
    )


def test_v1_tcp4_and_rest_untouched() -> None:
    data = b"PROXY TCP4 192.0.2.1 198.51.100.2 51000 443\r\nGET / HTTP/1.1\r\n"
    result = parse(data)
    assert result is not None
    info, length = result
    assert info.client == ("192.0.2.1", 51000)
    assert info.server == ("198.51.100.2", 443)
    assert data[length:] == b"GET / HTTP/1.1\r\n"


def test_v1_tcp6_and_unknown() -> None:
    result = parse(b"PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n")
    assert result is not None
    assert result[0].client == ("2001:db8::1", 1)
    unknown = parse(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n")
    assert unknown is not None
    assert unknown[0].client is None
    assert unknown[1] == len(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n")


@pytest.mark.parametrize("partial", [b"P", b"PROXY TCP4 1.2.3.4", b"\r\n\r\n\x00", V2_SIGNATURE])
def test_incomplete_headers_ask_for_more(partial: bytes) -> None:
    assert parse(partial) is None


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
        b"PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n",  # family mismatch
        b"PROXY TCP4 1.2.3.4 5.6.7.8 70000 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
        b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY " + b"x" * 120,
        b"\r\n\r\n\x00\r\nQUIX\n\x21\x11\x00\x00",
        V2_SIGNATURE + b"\x31\x11\x00\x00",  # version 3
        V2_SIGNATURE + b"\x22\x11\x00\x00",  # command 2
    ],
)
def test_invalid_headers(data: bytes) -> None:
    with pytest.raises(ProxyProtocolError):
        parse(data)


def test_v2_inet_inet6_local_unix_and_tlvs() -> None:
    body4 = socket.inet_aton("192.0.2.7") + socket.inet_aton("192.0.2.8") + struct.pack(">HH", 7, 8)
    data = v2(1, 0x11, body4, tlvs=b"\x04\x00\x01x") + b"rest"
    result = parse(data)
    assert result is not None
    assert result[0].client == ("192.0.2.7", 7)
    assert result[0].server == ("192.0.2.8", 8)
    assert data[result[1] :] == b"rest"
    body6 = (
        socket.inet_pton(socket.AF_INET6, "2001:db8::7")
        + socket.inet_pton(socket.AF_INET6, "2001:db8::8")
        + struct.pack(">HH", 9, 10)
    )
    result = parse(v2(1, 0x21, body6))
    assert result is not None
    assert result[0].client == ("2001:db8::7", 9)
    local = parse(v2(0, 0x00, b""))
    assert local is not None
    assert local[0].client is None
    unix = parse(v2(1, 0x31, b"\x00" * 216))
    assert unix is not None
    assert unix[0].client is None
    assert parse(v2(1, 0x11, body4)[:20]) is None  # body still coming
    with pytest.raises(ProxyProtocolError):
        parse(v2(1, 0x12, body4))  # datagram
    with pytest.raises(ProxyProtocolError):
        parse(v2(1, 0x11, body4[:6]))
