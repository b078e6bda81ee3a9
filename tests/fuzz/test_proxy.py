"""Property tests for the PROXY protocol parser (v1 and v2).

* Any bytes: ``parse`` raises nothing but ProxyProtocolError, and a header it
  accepts is within the bytes given.
* Valid headers built here (v1 TCP4, TCP6, UNKNOWN; v2 LOCAL and PROXY over
  INET, INET6, UNIX and UNSPEC, with TLVs), followed by anything: ``parse``
  gives the addresses and length sent; every proper prefix asks for more bytes.
"""

from __future__ import annotations

import ipaddress
import struct

from hypothesis import given
from hypothesis import strategies as st

from squall.protocols.proxy import V2_SIGNATURE, ProxyInfo, ProxyProtocolError, parse
from tests.fuzz._split import mutated

Address = tuple[str, int] | None
ipv4 = st.ip_addresses(v=4)
ipv6 = st.ip_addresses(v=6)
ports = st.integers(0, 65535)


@st.composite
def v1_headers(draw: st.DrawFn) -> tuple[bytes, Address, Address]:
    kind = draw(st.sampled_from(["TCP4", "TCP6", "UNKNOWN"]))
    if kind == "UNKNOWN":
        rest = draw(st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")))
        return b"PROXY UNKNOWN" + (b" " + rest if rest else b"") + b"\r\n", None, None
    addresses = ipv4 if kind == "TCP4" else ipv6
    src, dst = draw(addresses), draw(addresses)
    sport, dport = draw(ports), draw(ports)
    src_text = src.exploded if draw(st.booleans()) and src.version == 6 else str(src)
    line = f"PROXY {kind} {src_text} {dst} {sport} {dport}\r\n".encode()
    return line, (str(src), sport), (str(dst), dport)


@st.composite
def v2_headers(draw: st.DrawFn) -> tuple[bytes, Address, Address]:
    local = draw(st.booleans())
    # INET, INET6, UNIX over STREAM; UNSPEC; INET, INET6 over UNSPEC
    family = draw(st.sampled_from([0x11, 0x21, 0x31, 0x00, 0x10, 0x20]))
    client: Address = None
    server: Address = None
    if family >> 4 == 1:
        src, dst = draw(ipv4), draw(ipv4)
        sport, dport = draw(ports), draw(ports)
        body = src.packed + dst.packed + struct.pack(">HH", sport, dport)
        client, server = (str(src), sport), (str(dst), dport)
    elif family >> 4 == 2:
        src6, dst6 = draw(ipv6), draw(ipv6)
        sport, dport = draw(ports), draw(ports)
        body = src6.packed + dst6.packed + struct.pack(">HH", sport, dport)
        client, server = (str(src6), sport), (str(dst6), dport)
    elif family >> 4 == 3:
        body = draw(st.binary(min_size=216, max_size=216))
    else:
        body = b""
    for _ in range(draw(st.integers(0, 3))):  # TLVs: skipped
        value = draw(st.binary(max_size=20))
        body += struct.pack(">BH", draw(st.integers(0, 255)), len(value)) + value
    if local:
        family = draw(st.integers(0, 255))
        client = server = None
    ver_cmd = 0x20 if local else 0x21
    header = V2_SIGNATURE + struct.pack(">BBH", ver_cmd, family, len(body)) + body
    return header, client, server


headers = st.one_of(v1_headers(), v2_headers())


@given(data=st.one_of(st.binary(max_size=120), mutated(headers.map(lambda h: h[0]))))
def test_any_bytes_raise_only_proxy_protocol_error(data: bytes) -> None:
    try:
        result = parse(data)
    except ProxyProtocolError:
        return
    if result is not None:
        info, used = result
        assert isinstance(info, ProxyInfo)
        assert 0 < used <= len(data)
        for address in (info.client, info.server):
            if address is not None:
                host, port = address
                ipaddress.ip_address(host)
                assert 0 <= port <= 65535


@given(header=headers, rest=st.binary(max_size=40), data=st.data())
def test_valid_headers_parse_in_any_split(
    header: tuple[bytes, Address, Address], rest: bytes, data: st.DataObject
) -> None:
    raw, client, server = header
    result = parse(raw + rest)
    assert result is not None
    info, used = result
    assert (info.client, info.server, used) == (client, server, len(raw))
    # a connection's first bytes may come in pieces: a proper prefix needs more
    cut = data.draw(st.integers(0, len(raw) - 1))
    assert parse(raw[:cut]) is None
