"""HTTP/1.1 parsing with httptools (llhttp): the fast backend.

llhttp calls the ``on_*`` methods below straight from C; each does the least
it can and hands the finished head to :class:`~squall.protocols.http1.HeadBuilder`,
which applies the same framing rules as the h11 backend.
"""

from __future__ import annotations

import httptools

from squall.protocols.http1 import HTTP1, H1Events, Limits, ParseError

_METHODS: dict[bytes, str] = {}


class HttptoolsHTTP1(HTTP1):
    __slots__ = ("_closed", "_head_bytes", "_in_head", "_parser", "_url")

    backend = "httptools"

    def __init__(self, events: H1Events, limits: Limits | None = None) -> None:
        super().__init__(events, limits)
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._in_head = False
        self._head_bytes = 0
        self._closed = False

    def feed(self, data: bytes) -> None:
        if self._closed:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._after_upgrade(data[exc.args[0] :])
            return
        except httptools.HttpParserCallbackError as exc:
            self._closed = True
            cause = exc.__context__
            if isinstance(cause, ParseError):
                raise cause from None
            raise
        except httptools.HttpParserError as exc:
            self._closed = True
            raise ParseError(400, _describe(exc)) from None
        if self._in_head:
            self._head_bytes += len(data)
            limits = self.limits
            if self._head_bytes > limits.header_size + limits.request_line:
                self._closed = True
                raise ParseError(431, "Request header fields too large")

    def _after_upgrade(self, rest: bytes) -> None:
        # llhttp stops after a request asking for an upgrade (or CONNECT) and
        # skips its body. The owner has seen the request; if it keeps the
        # connection as HTTP/1.1, parsing goes on with a fresh parser.
        self._parser = httptools.HttpRequestParser(self)
        head = self.builder.head
        if head.content_length or head.chunked or head.method == "CONNECT":
            # the unread body would be taken for a request: never keep it alive
            head.keep_alive = False
        if not head.keep_alive:
            self._closed = True
            return
        if rest:
            self.feed(rest)

    # -- llhttp callbacks

    def on_message_begin(self) -> None:
        self._url = b""
        self._in_head = True
        self._head_bytes = 0
        self.builder.begin()

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self.limits.request_line:
            raise ParseError(414, "Request-URI too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.builder.add_header(name.lower(), value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        parser = self._parser
        raw_method = parser.get_method()
        method = _METHODS.get(raw_method)
        if method is None:
            method = raw_method.decode("ascii")
            if len(_METHODS) < 64:
                _METHODS[raw_method] = method
        head = self.builder.finish(method, self._url, parser.get_http_version())
        self.events.on_request(head)

    def on_body(self, body: bytes) -> None:
        self.events.on_body(body)

    def on_message_complete(self) -> None:
        self.events.on_request_end()


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text.replace("\r", "\\r").replace("\n", "\\n")[:200]
