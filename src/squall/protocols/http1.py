"""HTTP/1.1 as a sans-I/O protocol object: bytes in, calls out, bytes back.

Rules (RFC 9112 and RFC 9110):

* A parser backend (httptools or h11, in their own modules) turns bytes into
  calls on an :class:`H1Events` owner: ``on_request(head)``, ``on_body(data)``
  and ``on_request_end()``, in that order, once per request, pipelined requests
  one after the other.
* A request that is malformed, too large, or framed ambiguously raises
  :class:`ParseError` out of ``feed()`` carrying the status to answer (400,
  414, 431, 501). The owner answers it and closes; the object is then spent.
* Framing checks are done here, in :class:`HeadBuilder`, the same for both
  backends, so a lenient parser never decides alone: one ``Host`` on HTTP/1.1,
  Content-Length and Transfer-Encoding never together, ``chunked`` the only
  transfer coding, a single well-formed Content-Length.
* The response side (:meth:`HTTP1.response_head`, :meth:`HTTP1.response_body`)
  serializes one response at a time, chooses its framing (Content-Length,
  chunked, or close-delimited for HTTP/1.0), suppresses bodies for HEAD, 1xx,
  204 and 304, enforces the declared Content-Length, and never lets CR, LF or
  NUL from the app reach the wire.

Nothing here imports asyncio.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import TYPE_CHECKING, ClassVar, Protocol

from squall.errors import ResponseError

if TYPE_CHECKING:
    from squall.protocols.chunked import ChunkedDecoder

# -- outgoing header validation --------------------------------------------

_TOKEN_RE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE_SEARCH = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]").search


def valid_header_name(name: bytes) -> bool:
    return _TOKEN_RE.fullmatch(name) is not None


def valid_header_value(value: bytes) -> bool:
    return _BAD_VALUE_SEARCH(value) is None


class ParseError(Exception):
    """A request that must be refused: ``status`` is the answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


# -- precomputed wire pieces ------------------------------------------------


def _status_line(version: bytes, code: int) -> bytes:
    try:
        phrase = HTTPStatus(code).phrase.encode()
    except ValueError:
        phrase = b""
    return b"HTTP/%s %d %s\r\n" % (version, code, phrase)


STATUS_LINES_11 = {code: _status_line(b"1.1", code) for code in range(100, 600)}

# Kind codes for response header names the encoder must act on.
_K_OTHER, _K_CL, _K_TE, _K_CONN, _K_SERVER, _K_DATE = range(6)
_SPECIAL_RESPONSE = {
    b"content-length": _K_CL,
    b"transfer-encoding": _K_TE,
    b"connection": _K_CONN,
    b"server": _K_SERVER,
    b"date": _K_DATE,
}
# name as sent by the app -> kind; only valid names are cached
_name_kinds: dict[bytes, int] = {}


def _name_kind(name: bytes) -> int:
    kind = _name_kinds.get(name)
    if kind is None:
        if not valid_header_name(name):
            raise ResponseError(f"Invalid HTTP header name: {name!r}")
        kind = _SPECIAL_RESPONSE.get(name.lower(), _K_OTHER)
        if len(_name_kinds) < 1024:
            _name_kinds[name] = kind
    return kind


# -- request head -----------------------------------------------------------


class RequestHead:
    """One parsed request head, framing already decided."""

    __slots__ = (
        "chunked",
        "content_length",
        "expect_continue",
        "forwarded",
        "headers",
        "http_version",
        "keep_alive",
        "method",
        "switching",
        "target",
        "upgrade",
    )

    def __init__(self) -> None:
        self.method = ""
        self.target = b""
        self.http_version = "1.1"
        self.headers: list[tuple[bytes, bytes]] = []
        self.keep_alive = True
        self.chunked = False
        self.content_length = 0
        self.expect_continue = False
        self.upgrade: bytes | None = None
        self.forwarded = False  # carries Forwarded or an X-Forwarded-* header
        self.switching = False  # set by the owner: the connection changes protocol after it


class H1Events(Protocol):
    """What the owner of an HTTP/1 protocol object receives."""

    def on_request(self, head: RequestHead) -> None: ...
    def on_body(self, data: bytes) -> None: ...
    def on_request_end(self) -> None: ...


class Limits:
    __slots__ = ("field_size", "fields", "header_size", "request_line")

    def __init__(
        self,
        request_line: int = 8192,
        fields: int = 100,
        field_size: int = 16384,
        header_size: int = 65536,
    ) -> None:
        self.request_line = request_line
        self.fields = fields
        self.field_size = field_size
        self.header_size = header_size


# request header names the head builder must look at
_H_HOST, _H_CL, _H_TE, _H_CONN, _H_EXPECT, _H_UPGRADE, _H_XFWD = range(1, 8)
_SPECIAL_REQUEST = {
    b"host": _H_HOST,
    b"content-length": _H_CL,
    b"transfer-encoding": _H_TE,
    b"connection": _H_CONN,
    b"expect": _H_EXPECT,
    b"upgrade": _H_UPGRADE,
    b"x-forwarded-for": _H_XFWD,
    b"x-forwarded-proto": _H_XFWD,
    b"x-forwarded-host": _H_XFWD,
    b"x-forwarded-port": _H_XFWD,
    b"x-forwarded-prefix": _H_XFWD,
    b"forwarded": _H_XFWD,
}
_DIGITS = frozenset(b"0123456789")
# Host = uri-host [ ":" port ]: an IP literal or a reg-name (RFC 3986), no userinfo
_AUTHORITY_END = re.compile(rb"[/?#]")
HOST_VALUE = _HOST_VALUE = re.compile(
    rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?"
).fullmatch
# The methods llhttp knows; any other token gets 501 from both backends.
KNOWN_METHODS = frozenset(
    (
        "DELETE GET HEAD POST PUT CONNECT OPTIONS TRACE COPY LOCK MKCOL MOVE PROPFIND "
        "PROPPATCH SEARCH UNLOCK BIND REBIND UNBIND ACL REPORT MKACTIVITY CHECKOUT MERGE "
        "M-SEARCH NOTIFY SUBSCRIBE UNSUBSCRIBE PATCH PURGE MKCALENDAR LINK UNLINK SOURCE QUERY"
    ).split()
)


def transfer_coding_status(value: bytes) -> int:
    """0 if ``value`` is exactly ``chunked``; else 400 (malformed) or 501 (unsupported).

    Malformed: an empty element, or ``chunked`` anywhere but once at the end
    (RFC 9112 6.1). Well-formed codings other than ``chunked`` are unsupported.
    """
    codings = [c.strip(b" \t").lower() for c in value.split(b",")]
    if codings == [b"chunked"]:
        return 0
    if not all(codings) or b"chunked" in codings[:-1]:
        return 400
    return 501


class HeadBuilder:
    """Collects one request head from either backend and decides its framing."""

    __slots__ = ("_cl", "_conn", "_expect", "_hosts", "_size", "_te", "_upgrade", "head", "limits")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.head = RequestHead()
        self._reset()

    def _reset(self) -> None:
        self._hosts = 0
        self._size = 0
        self._cl: bytes | None = None
        self._te: bytes | None = None
        self._conn: bytes | None = None
        self._expect: bytes | None = None
        self._upgrade: bytes | None = None

    def begin(self) -> RequestHead:
        self.head = head = RequestHead()
        self._reset()
        return head

    def add_header(self, name: bytes, value: bytes) -> None:
        """Record one header; ``name`` is already lowercased."""
        head = self.head
        headers = head.headers
        limits = self.limits
        size = len(name) + len(value)
        self._size += size + 4
        if (
            size > limits.field_size
            or len(headers) >= limits.fields
            or self._size > limits.header_size
        ):
            raise ParseError(431, "Request header fields too large")
        headers.append((name, value))
        kind = _SPECIAL_REQUEST.get(name)
        if kind is None:
            return
        if kind == _H_HOST:
            self._hosts += 1
            if _HOST_VALUE(value) is None:
                raise ParseError(400, "Invalid Host header")
        elif kind == _H_CL:
            if self._cl is not None:
                raise ParseError(400, "Duplicated Content-Length header")
            self._cl = value
        elif kind == _H_TE:
            self._te = value if self._te is None else self._te + b"," + value
        elif kind == _H_CONN:
            self._conn = value if self._conn is None else self._conn + b"," + value
        elif kind == _H_EXPECT:
            self._expect = value
        elif kind == _H_UPGRADE:
            self._upgrade = value
        else:
            head.forwarded = True

    def finish(self, method: str, target: bytes, version: str) -> RequestHead:
        """Apply RFC 9112 framing rules; raise ParseError on anything ambiguous."""
        head = self.head
        if method not in KNOWN_METHODS:
            raise ParseError(501, "Method not implemented")
        if target[:1] != b"/":  # RFC 9112 3.2: origin, absolute, authority or asterisk form
            if target == b"*":
                if method != "OPTIONS":
                    raise ParseError(400, "The asterisk form is for OPTIONS only")
            elif method == "CONNECT":
                if b":" not in target or _HOST_VALUE(target) is None:
                    raise ParseError(400, "Invalid authority-form target")
            elif target[:7].lower() != b"http://" and target[:8].lower() != b"https://":
                raise ParseError(400, "Invalid request target")
            else:
                authority = _AUTHORITY_END.split(target.split(b"//", 1)[1], 1)[0]
                if not authority or _HOST_VALUE(authority) is None:
                    raise ParseError(400, "Invalid authority in request target")
        head.method = method
        head.target = target
        head.http_version = version
        if version == "1.1":
            if self._hosts != 1:
                raise ParseError(400, "Missing or duplicated Host header")
        elif version != "1.0":
            raise ParseError(505 if version[:1] >= "2" else 400, "Unsupported HTTP version")
        elif self._hosts > 1:
            raise ParseError(400, "Duplicated Host header")
        conn = self._conn
        tokens: list[bytes] = []
        if conn is not None:
            tokens = [t.strip().lower() for t in conn.split(b",")]
        if version == "1.1":
            head.keep_alive = b"close" not in tokens
        else:
            head.keep_alive = b"keep-alive" in tokens and b"close" not in tokens
        te = self._te
        cl = self._cl
        if te is not None:
            if cl is not None:
                raise ParseError(400, "Both Content-Length and Transfer-Encoding")
            status = transfer_coding_status(te)
            if status:
                raise ParseError(status, "Unsupported or invalid Transfer-Encoding")
            if version == "1.0":
                raise ParseError(400, "Transfer-Encoding on HTTP/1.0")
            head.chunked = True
        elif cl is not None:
            stripped = cl.strip(b" \t")
            if not stripped or not _DIGITS.issuperset(stripped) or len(stripped) > 18:
                raise ParseError(400, "Invalid Content-Length")
            head.content_length = int(stripped)
        if self._expect is not None:
            if self._expect.lower() != b"100-continue":
                raise ParseError(417, "Unsupported Expect")
            head.expect_continue = version == "1.1"
        if self._upgrade is not None and b"upgrade" in tokens:
            head.upgrade = self._upgrade.strip().lower()
        if method == "CONNECT" or (
            head.upgrade is not None and (head.chunked or head.content_length)
        ):
            # what follows is a tunnel, or the body of an upgrade request (which llhttp
            # leaves unparsed): answer this request, then close
            head.keep_alive = False
        return head


# -- the protocol object ----------------------------------------------------

# Bits for the default headers the app replaced; ``defaults[bits]`` is the
# pre-encoded block of the remaining default header lines (see default_block).
_SEEN_SERVER, _SEEN_DATE = 1, 2
_BODYLESS = frozenset([*range(100, 200), 204, 304])


def default_block(server: bytes, date: bytes, other: bytes) -> dict[int, bytes]:
    """The default header lines, for each combination the app may have replaced."""
    return {
        0: server + date + other,
        _SEEN_SERVER: date + other,
        _SEEN_DATE: server + other,
        _SEEN_SERVER | _SEEN_DATE: other,
    }


def _content_length(value: bytes) -> int:
    try:
        length = int(value)
    except ValueError:
        length = -1
    if length < 0:
        raise ResponseError(f"Invalid Content-Length: {value!r}")
    return length


_CHUNKED_END = b"0\r\n\r\n"
# response framing modes
_F_LENGTH, _F_CHUNKED, _F_CLOSE, _F_NONE = range(4)


class HTTP1:
    """Base of the two backends: response encoding and shared state.

    Subclasses implement ``feed(data)`` and, for pipelining, deliver calls on
    ``self.events``. ``feed`` raises :class:`ParseError` for a bad request.
    """

    __slots__ = (
        "_body",
        "_body_left",
        "_closed",
        "_framing",
        "_remaining",
        "builder",
        "events",
        "in_head",
        "keep_alive",
        "limits",
        "unparsed",
    )

    backend: ClassVar[str] = "base"

    def __init__(self, events: H1Events, limits: Limits | None = None) -> None:
        self.events = events
        self.limits = limits or Limits()
        self.builder = HeadBuilder(self.limits)
        self.keep_alive = True
        self._framing = _F_NONE
        self._remaining = 0
        self.unparsed: bytes | None = None  # after a switch: the bytes for the next protocol
        self._body: ChunkedDecoder | None = None  # reading a chunked body here
        self._body_left = 0  # bytes left of a Content-Length body read here
        self.in_head = False  # part of a request head has been received
        self._closed = False  # nothing more is parsed

    def feed(self, data: bytes) -> None:
        """Parse ``data``: heads by the backend's ``_scan_head``, bodies here."""
        # A loop, not recursion: one read may hold thousands of pipelined requests.
        while data and not self._closed:
            if self._body is not None or self._body_left:
                data = self._read_body(data)
            else:
                data = self._scan_head(data)
            if self._switched():
                self.unparsed = data  # the owner takes the connection over
                return

    def _scan_head(self, data: bytes) -> bytes:  # pragma: no cover - abstract
        """Take the next request head from ``data``; return what follows it."""
        raise NotImplementedError

    def _fail(self, status: int, reason: str) -> ParseError:
        self._closed = True
        return ParseError(status, reason)

    def _switched(self) -> bool:
        """The last request ended this protocol: the connection changes hands.

        A method, not an expression in ``feed``: there the type checker has
        narrowed ``_closed`` to False, and mypyc would drop the test.
        """
        return self._closed and self.builder.head.switching

    # -- bodies framed in Python (h11 always; httptools for a switching request)

    def _begin_body(self, head: RequestHead) -> bool:
        """Frame ``head``'s body here; False if it has none."""
        if head.chunked:
            from squall.protocols.chunked import ChunkedDecoder  # it imports this module

            self._body = ChunkedDecoder(self.events.on_body)
        elif head.content_length:
            self._body_left = head.content_length
        else:
            return False
        return True

    def _read_body(self, data: bytes) -> bytes:
        """Feed body bytes; at the body's end, end the request; return what follows."""
        body = self._body
        if body is not None:
            data = body.feed(data)
            if not body.done:
                return b""
            self._body = None
        else:
            take = data[: self._body_left]
            self._body_left -= len(take)
            data = data[len(take) :]
            self.events.on_body(take)
            if self._body_left:
                return b""
        self._end_request()
        return data

    def _end_request(self) -> None:
        head = self.builder.head
        if not head.keep_alive or head.switching:
            self._closed = True
        self.events.on_request_end()

    def feed_eof(self) -> None:
        """The peer closed its side; a partial request is simply dropped."""
        self._closed = True

    # -- response side

    def response_head(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...],
        defaults: dict[int, bytes],
        head: RequestHead,
        body: bytes | None,
        more_body: bool,
    ) -> bytes:
        """The response head followed by the framed ``body``, as one bytes object."""
        start, framed = self.response_start(status, headers, defaults, head, body, more_body)
        return start + framed if framed else start

    def response_start(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...],
        defaults: dict[int, bytes],
        head: RequestHead,
        body: bytes | None,
        more_body: bool,
    ) -> tuple[bytes, bytes]:
        """Serialize a response head; return it and ``body`` framed (b"" if none).

        ``defaults`` comes from :func:`default_block`: the server's default
        header lines, less those the app replaces with its own (``server``,
        ``date``).
        ``body`` is the first body chunk when the app already sent it, and
        ``more_body`` says whether more follows; with ``body=None`` only the
        head is produced and the body comes through :meth:`response_body`.
        """
        line = STATUS_LINES_11.get(status)
        if line is None:
            raise ResponseError(f"Invalid HTTP status code: {status!r}")
        parts = [line]
        content_length = -1
        keep_alive = head.keep_alive
        seen = 0  # _SEEN_SERVER | _SEEN_DATE
        kinds = _name_kinds
        bad_value = _BAD_VALUE_SEARCH
        for name, value in headers:
            kind = kinds.get(name)
            if kind is None:
                kind = _name_kind(name)
            if bad_value(value) is not None:
                raise ResponseError(f"Invalid HTTP header value for {name!r}")
            if kind:
                if kind == _K_CL:
                    content_length = _content_length(value)
                    continue  # re-emitted below with the framing decision
                if kind == _K_TE:
                    continue  # framing is the server's business
                if kind == _K_CONN:
                    if b"close" in value.lower():
                        keep_alive = False
                    continue
                seen |= _SEEN_SERVER if kind == _K_SERVER else _SEEN_DATE
            parts += (name, b": ", value, b"\r\n")
        parts.append(defaults[seen])

        version = head.http_version
        if status in _BODYLESS or head.method == "HEAD":
            framing = _F_NONE
            # HEAD and 304 describe the body they would have had; 1xx and 204 have none.
            if content_length >= 0 and status >= 200 and status != 204:
                parts.append(b"content-length: %d\r\n" % content_length)
        elif content_length >= 0:
            framing = _F_LENGTH
            parts.append(b"content-length: %d\r\n" % content_length)
        elif body is not None and not more_body:
            framing = _F_LENGTH
            content_length = len(body)
            parts.append(b"content-length: %d\r\n" % content_length)
        elif version == "1.1":
            framing = _F_CHUNKED
            parts.append(b"transfer-encoding: chunked\r\n")
        else:
            framing = _F_CLOSE
            keep_alive = False
        if not keep_alive:
            parts.append(b"connection: close\r\n\r\n")
        elif version == "1.0":
            parts.append(b"connection: keep-alive\r\n\r\n")
        else:
            parts.append(b"\r\n")
        self.keep_alive = keep_alive
        self._framing = framing
        self._remaining = content_length
        if body is None:
            return b"".join(parts), b""
        if framing == _F_LENGTH and not more_body and len(body) == content_length:
            return b"".join(parts), body  # the common case, checked inline
        return b"".join(parts), self.response_body(body, more_body)

    def response_body(self, data: bytes, more_body: bool) -> bytes:
        """Frame one body chunk; raise ResponseError if it breaks Content-Length."""
        framing = self._framing
        if framing == _F_LENGTH:
            remaining = self._remaining - len(data)
            if remaining < 0:
                raise ResponseError("Response content longer than Content-Length")
            if not more_body and remaining:
                raise ResponseError("Response content shorter than Content-Length")
            self._remaining = remaining
            return data
        if framing == _F_CHUNKED:
            if data:
                framed = b"%x\r\n%b\r\n" % (len(data), data)
                return framed + _CHUNKED_END if not more_body else framed
            return b"" if more_body else _CHUNKED_END
        if framing == _F_CLOSE:
            return data
        return b""

    def response_trailers(self, headers: list[tuple[bytes, bytes]], accepted: bool) -> bytes:
        """End a body whose final chunk was sent with ``more_body``; trailers only
        go out on a chunked body of a client that sent ``TE: trailers``."""
        if self._framing != _F_CHUNKED:
            return self.response_body(b"", False)
        self._framing = _F_NONE
        if not accepted or not headers:
            return _CHUNKED_END
        parts = [b"0\r\n"]
        for name, value in headers:
            _name_kind(name)
            if not valid_header_value(value):
                raise ResponseError(f"Invalid HTTP trailer value for {name!r}")
            parts += (name, b": ", value, b"\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)

    def file_framing(self, count: int) -> tuple[bytes, bytes] | None:
        """What goes before and after ``count`` body bytes sent from a file;
        None when the response has no body (HEAD, 204, 304)."""
        framing = self._framing
        if framing == _F_LENGTH:
            remaining = self._remaining - count
            if remaining < 0:
                raise ResponseError("Response content longer than Content-Length")
            self._remaining = remaining
            return b"", b""
        if framing == _F_CHUNKED:
            return b"%x\r\n" % count, b"\r\n"
        if framing == _F_CLOSE:
            return b"", b""
        return None

    def informational(self, status: int, headers: list[tuple[bytes, bytes]]) -> bytes:
        """A 1xx interim response (100 Continue, 103 Early Hints)."""
        parts = [STATUS_LINES_11[status]]
        for name, value in headers:
            _name_kind(name)
            if not valid_header_value(value):
                raise ResponseError(f"Invalid HTTP header value for {name!r}")
            parts += (name, b": ", value, b"\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)


def error_response(status: int, message: str, defaults: dict[int, bytes]) -> bytes:
    """A complete plain-text response for refusals the server makes itself."""
    body = message.encode() + b"\n"
    return b"".join(
        (
            STATUS_LINES_11[status],
            defaults[0],
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        )
    )
