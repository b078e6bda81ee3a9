"""HTTP/1.1 parsing with httptools (llhttp): the fast backend.

llhttp calls the ``on_*`` methods below straight from C; each does the least
it can and hands the finished head to :class:`~squall.protocols.http1.HeadBuilder`,
which applies the same framing rules as the h11 backend.

Where llhttp and h11 differ, this module makes llhttp answer as h11 does:
trailing whitespace is stripped from header values, trailer fields never join
the request's headers, bytes after a ``Connection: close`` request are
ignored, and the body of a request asking for an upgrade the server does not
make is still delivered (llhttp skips it).
"""

from __future__ import annotations

import re

import httptools

from squall.protocols.http1 import (
    HTTP1,
    H1Events,
    Limits,
    ParseError,
)

_METHODS: dict[bytes, str] = {}
_REQUEST_LINE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+ [^ \r\n]+ HTTP/\d\.\d\r?\n")
_FRAMING_TRAILERS = (b"content-length", b"transfer-encoding", b"host", b"connection")
_BODY_ONLY_CL = b"POST / HTTP/1.1\r\nHost: -\r\nContent-Length: %d\r\n\r\n"
_BODY_ONLY_CHUNKED = b"POST / HTTP/1.1\r\nHost: -\r\nTransfer-Encoding: chunked\r\n\r\n"


class HttptoolsHTTP1(HTTP1):
    __slots__ = (
        "_body_only",
        "_closed",
        "_defer_end",
        "_done",
        "_head_bytes",
        "_parser",
        "_synthetic",
        "_url",
    )

    backend = "httptools"

    def __init__(self, events: H1Events, limits: Limits | None = None) -> None:
        super().__init__(events, limits)
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._head_bytes = 0
        self._closed = False
        self._done = False  # a request without keep-alive has ended: ignore the rest
        self._defer_end = False  # llhttp ends an upgrade request before its body
        self._body_only = False  # parsing a synthetic head to read that body
        self._synthetic = False  # inside that synthetic head

    def feed(self, data: bytes) -> None:
        # A loop, not recursion: one read may hold many pipelined upgrade requests.
        while data and not self._closed:
            if self._body is not None or self._body_left:  # a switching request's body
                data = self._read_body(data)
                if self._closed:
                    self.unparsed = data
            else:
                data = self._feed_once(data)

    def _feed_once(self, data: bytes) -> bytes:
        """Parse ``data``; return bytes left over after an upgrade request."""
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            return self._after_upgrade(data[exc.args[0] :])
        except httptools.HttpParserCallbackError as exc:
            self._closed = True
            cause = exc.__context__
            if isinstance(cause, _Stop):
                return b""
            if isinstance(cause, ParseError):
                raise cause from None
            raise
        except httptools.HttpParserInvalidMethodError:
            self._closed = True
            if self._done:
                return b""
            if _REQUEST_LINE.match(data):  # well-formed, with a method llhttp does not know
                raise ParseError(501, "Method not implemented") from None
            raise ParseError(400, "Invalid method") from None
        except httptools.HttpParserError as exc:
            self._closed = True
            if self._done:
                return b""
            raise ParseError(400, _describe(exc)) from None
        if self.in_head:
            self._head_bytes += len(data)
            limits = self.limits
            if self._head_bytes > limits.header_size + limits.request_line:
                self._closed = True
                raise ParseError(431, "Request header fields too large")
        return b""

    def _after_upgrade(self, rest: bytes) -> bytes:
        # llhttp stops after a request asking for an upgrade (or CONNECT) and
        # skips its body. The owner has seen the request; if it keeps the
        # connection as HTTP/1.1, parsing goes on with a fresh parser.
        self._parser = httptools.HttpRequestParser(self)
        head = self.builder.head
        if head.switching:  # the owner takes the connection over, after the body
            self._defer_end = False
            if self._begin_body(head):
                return rest
            self._closed = True
            self.unparsed = rest
            self.events.on_request_end()
            return b""
        if self._defer_end:
            # Read the skipped body through a synthetic head, then end there.
            self._defer_end = False
            self._body_only = True
            if head.chunked:
                self._parser.feed_data(_BODY_ONLY_CHUNKED)
            else:
                self._parser.feed_data(_BODY_ONLY_CL % head.content_length)
            return rest
        if not head.keep_alive:
            self._closed = True
            return b""
        return rest

    # -- llhttp callbacks

    def on_message_begin(self) -> None:
        if self._done:
            raise _Stop
        if self._body_only:
            self._synthetic = True
            return
        self._url = b""
        self.in_head = True
        self._head_bytes = 0
        self.builder.begin()

    def on_url(self, url: bytes) -> None:
        self._url += url
        limit = self.limits.request_line
        # the whole line counts: method, target and version (checked only near the limit)
        if (
            len(self._url) > limit - 16
            and len(self._parser.get_method()) + len(self._url) + 10 > limit
        ):
            raise ParseError(414, "Request-URI too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._synthetic:
            return
        if self.in_head:
            self.builder.add_header(name.lower(), value.rstrip(b" \t"))
        elif name.lower() in _FRAMING_TRAILERS:
            raise ParseError(400, "Framing header in trailers")

    def on_headers_complete(self) -> None:
        self.in_head = False
        if self._body_only:
            self._synthetic = False
            return
        parser = self._parser
        raw_method = parser.get_method()
        method = _METHODS.get(raw_method)
        if method is None:
            method = raw_method.decode("ascii")
            if len(_METHODS) < 64:
                _METHODS[raw_method] = method
        head = self.builder.finish(method, self._url, parser.get_http_version())
        if parser.should_upgrade() and (head.content_length or head.chunked):
            self._defer_end = True
        self.events.on_request(head)

    def on_body(self, body: bytes) -> None:
        self.events.on_body(body)

    def on_message_complete(self) -> None:
        if self._defer_end or self.builder.head.switching:
            return  # the end comes after the body, read in _after_upgrade
        if not self.builder.head.keep_alive:
            self._done = True
            self._closed = True
        self.events.on_request_end()

    def _end_request(self) -> None:
        self._closed = True  # only a switching request's body is read by _read_body
        self.events.on_request_end()


class _Stop(Exception):
    """Raised from a callback to stop llhttp after a final request."""


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text.replace("\r", "\\r").replace("\n", "\\n")[:200]
