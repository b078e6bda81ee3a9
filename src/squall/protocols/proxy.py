"""The HAProxy PROXY protocol, versions 1 and 2, as a sans-I/O parser.

:func:`parse` takes the first bytes of a connection and returns the
addresses the proxy reports and how many bytes the header took, ``None`` when
more bytes are needed, or raises :class:`ProxyProtocolError`.

* v1: ``PROXY TCP4|TCP6 SRC DST SPORT DPORT\\r\\n`` or ``PROXY UNKNOWN ...``,
  at most 107 bytes.
* v2: the 12-byte signature, version 2 with command LOCAL (health checks:
  the connection's own addresses stay) or PROXY, families INET, INET6 and
  UNIX over STREAM; TLVs are skipped.

Nothing here imports asyncio.
"""

from __future__ import annotations

import ipaddress
import struct

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_MAX = 107
V2_MAX = 16 + 65535

Address = tuple[str, int]


class ProxyProtocolError(Exception):
    """Not a valid PROXY protocol header."""


class ProxyInfo:
    """What the header says: the client's and the server's addresses (None: unknown)."""

    __slots__ = ("client", "server")

    def __init__(self, client: Address | None, server: Address | None) -> None:
        self.client = client
        self.server = server


def parse(data: bytes) -> tuple[ProxyInfo, int] | None:
    if data[:1] == b"\r":
        if len(data) < 16:
            if not V2_SIGNATURE.startswith(data[:12]):
                raise ProxyProtocolError("Invalid PROXY protocol v2 signature")
            return None
        return _parse_v2(data)
    if data[:1] == b"P":
        return _parse_v1(data)
    if data:
        raise ProxyProtocolError("Missing PROXY protocol header")
    return None


def _parse_v1(data: bytes) -> tuple[ProxyInfo, int] | None:
    end = data.find(b"\r\n", 0, V1_MAX + 1)
    if end < 0:
        if len(data) >= V1_MAX or not b"PROXY ".startswith(data[:6]):
            raise ProxyProtocolError("Invalid PROXY protocol v1 header")
        return None
    parts = data[:end].split(b" ")
    if parts[0] != b"PROXY" or len(parts) < 2:
        raise ProxyProtocolError("Invalid PROXY protocol v1 header")
    if parts[1] == b"UNKNOWN":
        return ProxyInfo(None, None), end + 2
    if parts[1] not in (b"TCP4", b"TCP6") or len(parts) != 6:
        raise ProxyProtocolError("Invalid PROXY protocol v1 header")
    version = 4 if parts[1] == b"TCP4" else 6
    try:
        src = _address(parts[2].decode("ascii"), version)
        dst = _address(parts[3].decode("ascii"), version)
        sport, dport = _port(parts[4]), _port(parts[5])
    except (ValueError, UnicodeDecodeError):
        raise ProxyProtocolError("Invalid address in PROXY protocol v1 header") from None
    return ProxyInfo((src, sport), (dst, dport)), end + 2


def _address(text: str, version: int) -> str:
    ip = ipaddress.ip_address(text)
    if ip.version != version:
        raise ValueError(text)
    return str(ip)


def _port(raw: bytes) -> int:
    if not raw.isdigit() or (len(raw) > 1 and raw[:1] == b"0"):
        raise ValueError(raw)
    port = int(raw)
    if port > 65535:
        raise ValueError(raw)
    return port


def _parse_v2(data: bytes) -> tuple[ProxyInfo, int] | None:
    if data[:12] != V2_SIGNATURE:
        raise ProxyProtocolError("Invalid PROXY protocol v2 signature")
    ver_cmd, family, length = struct.unpack_from(">BBH", data, 12)
    if ver_cmd >> 4 != 2 or ver_cmd & 0x0F > 1:
        raise ProxyProtocolError("Unsupported PROXY protocol v2 version or command")
    total = 16 + length
    if len(data) < total:
        return None
    body = data[16:total]
    if ver_cmd & 0x0F == 0:  # LOCAL: the proxy's own connection (health check)
        return ProxyInfo(None, None), total
    transport = family & 0x0F
    if transport not in (0, 1):  # UNSPEC or STREAM
        raise ProxyProtocolError("PROXY protocol v2: only stream transports")
    kind = family >> 4
    if kind == 1 and len(body) >= 12:
        src = str(ipaddress.IPv4Address(body[0:4]))
        dst = str(ipaddress.IPv4Address(body[4:8]))
        sport, dport = struct.unpack_from(">HH", body, 8)
        return ProxyInfo((src, sport), (dst, dport)), total
    if kind == 2 and len(body) >= 36:
        src = str(ipaddress.IPv6Address(body[0:16]))
        dst = str(ipaddress.IPv6Address(body[16:32]))
        sport, dport = struct.unpack_from(">HH", body, 32)
        return ProxyInfo((src, sport), (dst, dport)), total
    if kind in (0, 3):  # UNSPEC, UNIX: no usable client address
        return ProxyInfo(None, None), total
    raise ProxyProtocolError("PROXY protocol v2: address block too short")
