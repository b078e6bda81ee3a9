"""HTTP/1.1 parsing with h11: the pure-Python backend.

h11 parses request heads only: each complete head gets a fresh
``h11.Connection``, and bodies (Content-Length or chunked, see ``chunked.py``)
are framed here, so pipelining, strictness and the calls made on the owner
are the same as with the httptools backend.
Responses are serialized by :class:`~squall.protocols.http1.base.HTTP1` for both.

h11 is more lenient than llhttp in a few places (bare LF line endings,
obs-fold, DEL in values, and it reports an over-long request line as an
over-long head). So that both backends answer the same bytes the same way,
each request head is collected and checked here before h11 sees it.
"""

from __future__ import annotations

import re
from typing import ClassVar

import h11

from squall.protocols.http1.base import HTTP1
from squall.protocols.http1.head import H1Events, Limits, transfer_coding_status

# a bare LF, a CR not followed by LF, an obs-fold, or a control character
_BAD_HEAD = re.compile(rb"(?<!\r)\n|\r(?!\n)|\r\n[ \t]|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# h11 merges duplicated or listed Content-Length values and judges
# Transfer-Encoding by its own rules; these are decided here, as for llhttp.
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length[ \t]*:([^\r]*)", re.IGNORECASE)
_TRANSFER_ENCODING = re.compile(rb"\r\ntransfer-encoding[ \t]*:([^\r]*)", re.IGNORECASE)


def framing_conflict(head: bytes) -> int:
    """The status for framing headers h11 would judge differently, else 0."""
    lengths = _CONTENT_LENGTH.findall(head)
    if len(lengths) > 1 or (lengths and b"," in lengths[0]):
        return 400
    codings = _TRANSFER_ENCODING.findall(head)
    if codings:
        if lengths:
            return 400
        return transfer_coding_status(b",".join(codings))
    return 0


class H11HTTP1(HTTP1):
    __slots__ = ("_head", "_max_event")

    backend: ClassVar[str] = "h11"

    def __init__(
        self, events: H1Events, limits: Limits | None = None, max_incomplete_event: int = 0
    ) -> None:
        super().__init__(events, limits)
        self._max_event = max_incomplete_event or (
            self.limits.header_size + self.limits.request_line
        )
        self._head = bytearray()  # the next request head so far, while it is incomplete

    def _scan_head(self, data: bytes) -> bytes:
        """Collect and check a request head; once whole, parse it and return the rest.

        Each byte is checked once: a head sent a byte at a time costs linear time.
        """
        buf = self._head
        if not buf:
            data = data.lstrip(b"\r\n")  # RFC 9112 2.2: ignore empty lines before a request
        # re-check only the new bytes, with a few before them for the patterns' context
        start = max(0, len(buf) - 3)
        buf += data
        end = buf.find(b"\r\n\r\n", start)
        head_len = len(buf) if end < 0 else end + 4
        line_end = buf.find(b"\r\n", 0, head_len)
        line_len = head_len if line_end < 0 else line_end
        if line_len > self.limits.request_line:
            raise self._fail(414, "Request-URI too long")
        checked = head_len - 1 if end < 0 and buf.endswith(b"\r") else head_len
        if _BAD_HEAD.search(buf, start, checked):
            raise self._fail(400, "Invalid characters or line endings in request head")
        if head_len > self._max_event:
            raise self._fail(431, "Request header fields too large")
        if end < 0:
            self.in_head = bool(buf)
            return b""
        self.in_head = False
        head = bytes(buf[:head_len])
        rest = bytes(buf[head_len:])
        self._head = bytearray()
        status = framing_conflict(head)
        if status:
            raise self._fail(status, "Invalid message framing headers")
        self._parse_head(head)
        return rest

    def _parse_head(self, raw: bytes) -> None:
        """h11 parses the head only; the body is framed here, as strictly as llhttp."""
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self._max_event)
        conn.receive_data(raw)
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise self._fail(exc.error_status_hint, str(exc)[:200]) from None
        if not isinstance(event, h11.Request):  # pragma: no cover - a whole head was given
            raise self._fail(400, "Invalid request head")
        builder = self.builder
        builder.begin()
        for name, value in event.headers:
            builder.add_header(bytes(name), bytes(value))
        version = event.http_version.decode("ascii")
        head = builder.finish(event.method.decode("ascii"), bytes(event.target), version)
        self.events.on_request(head)
        if self._closed:
            return
        if not self._begin_body(head):
            self._end_request()
