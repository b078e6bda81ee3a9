"""Listening addresses as written in the configuration (``--bind``)."""

from __future__ import annotations


def parse_bind(value: str) -> tuple[str, str | int, int]:
    """``--bind`` forms: ("tcp", host, port), ("unix", path, 0), ("fd", n, 0)."""
    if value.startswith("unix:"):
        return ("unix", value[5:], 0)
    if value.startswith("fd://"):
        return ("fd", int(value[5:]), 0)
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        if not rest.startswith(":"):
            raise ValueError(f"expected [IPv6]:PORT, got {value!r}")
        return ("tcp", host, int(rest[1:]))
    host, sep, port = value.rpartition(":")
    if not sep:
        raise ValueError(f"expected HOST:PORT, unix:PATH or fd://N, got {value!r}")
    return ("tcp", host, int(port))
