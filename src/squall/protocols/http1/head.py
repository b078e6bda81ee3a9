"""HTTP/1.1 request heads: what a parser backend hands over, and the framing rules.

Both backends (``h1_httptools.py``, ``h1_h11.py``) give each header to a
:class:`HeadBuilder`, which applies RFC 9112's framing rules the same way for
both: one ``Host`` on HTTP/1.1, Content-Length and Transfer-Encoding never
together, ``chunked`` the only transfer coding, a single well-formed
Content-Length. A request that must be refused raises :class:`ParseError`
with the status to answer.

Nothing here imports asyncio.
"""

from __future__ import annotations

import re
from typing import Protocol


class ParseError(Exception):
    """A request that must be refused: ``status`` is the answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


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
