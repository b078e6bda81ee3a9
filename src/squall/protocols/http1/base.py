"""HTTP/1.1 as a sans-I/O protocol object: bytes in, calls out, bytes back.

Rules (RFC 9112 and RFC 9110):

* A parser backend (httptools or h11, in their own modules) turns bytes into
  calls on an :class:`H1Events` owner: ``on_request(head)``, ``on_body(data)``
  and ``on_request_end()``, in that order, once per request, pipelined requests
  one after the other.
* A request that is malformed, too large, or framed ambiguously raises
  :class:`ParseError` out of ``feed()`` carrying the status to answer (400,
  414, 431, 501). The owner answers it and closes; the object is then spent.
* Framing checks are done in :class:`~squall.protocols.http1.head.HeadBuilder`
  (``h1head.py``), the same for both backends, so a lenient parser never
  decides alone: one ``Host`` on HTTP/1.1, Content-Length and
  Transfer-Encoding never together, ``chunked`` the only transfer coding, a
  single well-formed Content-Length.
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
from typing import TYPE_CHECKING, ClassVar

from squall.errors import ResponseError
from squall.protocols.http1.head import H1Events, HeadBuilder, Limits, ParseError, RequestHead

if TYPE_CHECKING:
    from squall.protocols.http1.chunked import ChunkedDecoder

# -- outgoing header validation --------------------------------------------

_TOKEN_RE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE_SEARCH = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]").search


def valid_header_name(name: bytes) -> bool:
    return _TOKEN_RE.fullmatch(name) is not None


def valid_header_value(value: bytes) -> bool:
    return _BAD_VALUE_SEARCH(value) is None


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
            from squall.protocols.http1.chunked import ChunkedDecoder  # it imports this module

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


def error_response(
    status: int, message: str, defaults: dict[int, bytes], head_only: bool = False
) -> bytes:
    """A complete plain-text response for refusals the server makes itself (its
    head only, with the length the body would have, in answer to HEAD)."""
    body = message.encode() + b"\n"
    return b"".join(
        (
            STATUS_LINES_11[status],
            defaults[0],
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            b"" if head_only else body,
        )
    )
