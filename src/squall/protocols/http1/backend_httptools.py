"""HTTP/1.1 parsing with httptools (llhttp): the fast backend.

llhttp parses request heads only. Squall finds where each head ends (the
first CRLF CRLF after the request line), feeds llhttp exactly those bytes, and
frames bodies itself (:meth:`HTTP1._read_body`, ``chunked.py``), as the h11
backend does. So the two backends share one framing decision
(:class:`~squall.protocols.http1.base.HeadBuilder`), one chunked decoder, and one
idea of where the next pipelined request begins; llhttp never frames a body
by its own reading of the head.

Where llhttp is more lenient than h11, this module checks after it: the
request line must be exactly ``method SP target SP HTTP/x.y`` (llhttp allows
repeated spaces), and the status for an unknown method (501) or a malformed
request line (400) is decided on the whole request line, whatever the reads.
Trailing whitespace is stripped from header values.
"""

from __future__ import annotations

import re
from typing import ClassVar

import httptools

from squall.protocols.http1.base import HTTP1
from squall.protocols.http1.head import H1Events, Limits, ParseError

_METHODS: dict[bytes, str] = {}
_EMPTY_LINE = (13, 10)  # CR, LF
_REQUEST_LINE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+ [^ \r\n]+ HTTP/\d\.\d\r?\n")


class HttptoolsHTTP1(HTTP1):
    __slots__ = (
        "_bad_method",
        "_got_head",
        "_head",
        "_line",
        "_max_head",
        "_parser",
        "_url",
    )

    backend: ClassVar[str] = "httptools"

    def __init__(self, events: H1Events, limits: Limits | None = None) -> None:
        super().__init__(events, limits)
        self._parser: httptools.HttpRequestParser | None = None  # made per head as needed
        self._url = b""
        self._head = bytearray()  # a head begun in an earlier read
        self._got_head = False  # llhttp reached the end of the head fed to it
        self._line = 0  # the length the request line must have
        self._bad_method = False  # waiting for the whole request line to choose 400 or 501
        self._max_head = self.limits.header_size + self.limits.request_line

    def _scan_head(self, data: bytes) -> bytes:
        """Feed llhttp up to the end of the next head; once whole, deliver it."""
        buf = self._head
        if buf:
            offset = len(buf)
            buf += data
            end = buf.find(b"\r\n\r\n", offset - 3 if offset > 3 else 0)
        else:
            if data[0] in _EMPTY_LINE:  # RFC 9112 2.2: ignore empty lines before a request
                data = data.lstrip(b"\r\n")
                if not data:
                    return b""
            offset = 0
            end = data.find(b"\r\n\r\n")
            self.builder.begin()
        if end < 0:  # the head goes on in a later read
            if not offset:
                buf += data
            self.in_head = True
            if len(buf) > self._max_head:
                raise self._fail(431, "Request header fields too large")
            self._parse(data, buf)
            return b""
        cut = end + 4 - offset  # the bytes of ``data`` that end the head
        if offset:
            head = bytes(buf[: end + 4])
            buf.clear()
            self.in_head = False
        else:
            head = data
        if end + 4 > self._max_head:
            raise self._fail(431, "Request header fields too large")
        part = data if cut == len(data) else data[:cut]
        parser = self._parser
        if parser is not None:  # the usual case, inline
            try:
                parser.feed_data(part)
            except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
                self._failed(exc, head)
        else:
            self._parse(part, head)
        if not self._got_head:
            raise self._fail(400, "Invalid request head")
        self._got_head = False
        if not head.startswith(b"\r\n", self._line):
            raise self._fail(400, "Invalid request line")
        request = self.builder.head
        self.events.on_request(request)
        if self._closed:
            return b""
        if request.chunked or request.content_length:
            self._begin_body(request)
            self._parser = None  # llhttp waits for a body it is never given
        else:
            if not request.keep_alive or request.switching:
                self._closed = True
            self.events.on_request_end()
        return data[cut:]

    def _parse(self, part: bytes, head: bytes | bytearray) -> None:
        """Feed llhttp one part of the current head (``head``: all of it so far)."""
        parser = self._parser
        if parser is None:
            if self._bad_method:
                self._judge_method(head)
                return
            parser = self._parser = httptools.HttpRequestParser(self)
            # llhttp never frames a body here, so its reading of Transfer-Encoding
            # must not refuse what HeadBuilder accepts ("chunked<HTAB>")
            parser.set_dangerous_leniencies(lenient_transfer_encoding=True)
        try:
            parser.feed_data(part)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._failed(exc, head)

    def _failed(self, exc: Exception, head: bytes | bytearray) -> None:
        """Act on what llhttp raised while parsing a head."""
        if isinstance(exc, httptools.HttpParserUpgrade):
            self._parser = None  # llhttp stops for good after an upgrade request
            return
        self._parser = None
        if isinstance(exc, httptools.HttpParserCallbackError):
            self._closed = True
            cause = exc.__context__
            if isinstance(cause, ParseError):
                raise cause from None
            raise exc
        if isinstance(exc, httptools.HttpParserInvalidMethodError):
            self._bad_method = True
            self._judge_method(head)
            return
        raise self._fail(400, _describe(exc)) from None

    def _judge_method(self, head: bytes | bytearray) -> None:
        """llhttp refused the method: 501 for a well-formed line, 400 otherwise."""
        if b"\n" in head or len(head) > self.limits.request_line:
            if _REQUEST_LINE.match(head):
                raise self._fail(501, "Method not implemented")
            raise self._fail(400, "Invalid method")

    # -- llhttp callbacks

    def on_url(self, url: bytes) -> None:
        if self._got_head:  # llhttp ended the head before the CRLF CRLF found here
            raise ParseError(400, "Invalid request head")
        self._url += url
        limit = self.limits.request_line
        # the whole line counts: method, target and version (checked only near the limit)
        if (
            len(self._url) > limit - 16
            and self._parser is not None
            and len(self._parser.get_method()) + len(self._url) + 10 > limit
        ):
            raise ParseError(414, "Request-URI too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.builder.add_header(name.lower(), value.rstrip(b" \t"))

    def on_headers_complete(self) -> None:
        parser = self._parser
        assert parser is not None
        raw_method = parser.get_method()
        method = _METHODS.get(raw_method)
        if method is None:
            method = raw_method.decode("ascii")
            if len(_METHODS) < 64:
                _METHODS[raw_method] = method
        url = self._url
        self._url = b""
        self._line = len(raw_method) + len(url) + 10  # method SP target SP HTTP/x.y
        self._got_head = True
        self.builder.finish(method, url, parser.get_http_version())

    def on_body(self, body: bytes) -> None:  # never fed a body: llhttp misread the head
        raise ParseError(400, "Invalid request head")


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text.replace("\r", "\\r").replace("\n", "\\n")[:200]
