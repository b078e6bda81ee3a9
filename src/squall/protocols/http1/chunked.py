"""A strict, incremental decoder for chunked request bodies (RFC 9112 7.1).

Used by the h11 backend so that it frames bodies exactly as strictly as
llhttp does: every line ends in CRLF (no bare LF or CR), the chunk size is
hex digits only with no whitespace, chunk extensions are tokens or quoted
strings without control characters, chunk data is followed by CRLF, and
trailer fields are well formed, bounded, and never carry framing headers.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from squall.protocols.http1.head import ParseError

_SIZE_LINE = re.compile(
    rb"([0-9A-Fa-f]{1,16})"  # chunk-size
    rb"((?:[ \t]*;[ \t]*[!#$%&'*+\-.^_`|~0-9A-Za-z]+"  # ;name
    rb"(?:[ \t]*=[ \t]*(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+|\"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]"
    rb"|\\[\t \x21-\x7e\x80-\xff])*\"))?)*)"  # [=value]
)
_TRAILER_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([\t \x21-\x7e\x80-\xff]*)")
_FRAMING_TRAILERS = frozenset((b"content-length", b"transfer-encoding", b"host", b"connection"))
MAX_LINE = 4096  # a chunk-size line or trailer line
MAX_TRAILERS = 16384

# states
_SIZE, _DATA, _DATA_END, _TRAILERS, _DONE = range(5)


class ChunkedDecoder:
    """Feed bytes; body data goes to ``on_data``; ``feed`` returns what follows the body."""

    __slots__ = ("_buf", "_on_data", "_remaining", "_state", "_trailer_bytes")

    def __init__(self, on_data: Callable[[bytes], None]) -> None:
        self._on_data = on_data
        self._state = _SIZE
        self._buf = b""
        self._remaining = 0
        self._trailer_bytes = 0

    @property
    def done(self) -> bool:
        return self._state == _DONE

    def feed(self, data: bytes) -> bytes:
        """Consume ``data``; after the last chunk and trailers, return the rest."""
        buf = self._buf + data if self._buf else data
        self._buf = b""
        while buf:
            state = self._state
            if state == _DATA:
                take = buf[: self._remaining]
                self._remaining -= len(take)
                buf = buf[len(take) :]
                self._on_data(take)
                if not self._remaining:
                    self._state = _DATA_END
                continue
            if state == _DONE:
                return buf
            if state == _DATA_END:
                if len(buf) < 2:
                    if buf != b"\r":
                        raise ParseError(400, "Chunk data not followed by CRLF")
                    self._buf = buf
                    return b""
                if buf[:2] != b"\r\n":
                    raise ParseError(400, "Chunk data not followed by CRLF")
                buf = buf[2:]
                self._state = _SIZE
                continue
            line, buf = self._line(buf)
            if line is None:
                return b""
            if state == _SIZE:
                self._size_line(line)
            else:
                self._trailer_line(line)
        return b""

    def _line(self, buf: bytes) -> tuple[bytes | None, bytes]:
        end = buf.find(b"\r\n")
        if end < 0:
            if len(buf) > MAX_LINE:
                raise ParseError(400, "Chunk line too long")
            bare = buf.find(b"\n")
            if bare >= 0 or b"\r" in buf[:-1]:
                raise ParseError(400, "Bare CR or LF in chunked body")
            self._buf = buf
            return None, b""
        line = buf[:end]
        if b"\n" in line or b"\r" in line:
            raise ParseError(400, "Bare CR or LF in chunked body")
        if end > MAX_LINE:
            raise ParseError(400, "Chunk line too long")
        return line, buf[end + 2 :]

    def _size_line(self, line: bytes) -> None:
        match = _SIZE_LINE.fullmatch(line)
        if match is None:
            raise ParseError(400, "Invalid chunk size line")
        size = int(match.group(1), 16)
        if size:
            self._remaining = size
            self._state = _DATA
        else:
            self._state = _TRAILERS

    def _trailer_line(self, line: bytes) -> None:
        if not line:
            self._state = _DONE
            return
        self._trailer_bytes += len(line) + 2
        if self._trailer_bytes > MAX_TRAILERS:
            raise ParseError(431, "Trailer section too large")
        match = _TRAILER_LINE.fullmatch(line)
        if match is None:
            raise ParseError(400, "Invalid trailer field")
        if match.group(1).lower() in _FRAMING_TRAILERS:
            raise ParseError(400, "Framing header in trailers")
