"""HTTP/2 field rules: checking request fields, encoding response fields.

* :func:`request_head` turns a decoded request header list into a
  :class:`~squall.protocols.http1.base.RequestHead` (RFC 9113 8.2 and 8.3): field
  names lowercase tokens, pseudo-header fields first, once each, only the
  request ones; no connection-specific fields, ``te`` only ``trailers``;
  values without NUL, CR, LF or surrounding whitespace; one content-length;
  the pseudo-header fields each method needs. ``:authority`` becomes the
  first ``host`` field and split ``cookie`` fields are joined (RFC 9113
  8.2.3), as the ASGI spec asks. A malformed request raises
  :class:`MalformedRequest`; the caller resets the stream.
* :func:`response_fields` encodes a response head (status, the app's headers
  lowercased and checked, the server's default fields) and drops the
  connection-specific fields HTTP/2 forbids.

Nothing here imports asyncio.
"""

from __future__ import annotations

import re

from squall.errors import ResponseError
from squall.protocols.http1.base import valid_header_name
from squall.protocols.http1.head import RequestHead
from squall.protocols.http2.hpack import STATUS_FIELDS, encode_field

CONNECTION_SPECIFIC = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)
_LOWER_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+")
_METHOD_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_REQUEST_VALUE = re.compile(rb"[\x00\r\n]|^[ \t]|[ \t]$").search
_BAD_RESPONSE_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]").search
_DIGITS = re.compile(rb"[0-9]{1,18}")
_BAD_PATH = re.compile(rb"[\x00-\x20\x7f]").search  # controls and spaces (RFC 9113 8.3.1)


class MalformedRequest(Exception):
    """A request RFC 9113 calls malformed: the stream is reset with PROTOCOL_ERROR."""


# -- requests ---------------------------------------------------------------

# request field names already checked: name -> kind
_N_OTHER, _N_TE, _N_CL, _N_HOST, _N_COOKIE, _N_EXPECT, _N_FWD, _N_CONN = range(8)
FORWARDING = (
    b"forwarded",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"x-forwarded-port",
    b"x-forwarded-prefix",
)
_request_names: dict[bytes, int] = {
    b"te": _N_TE,
    b"content-length": _N_CL,
    b"host": _N_HOST,
    b"cookie": _N_COOKIE,
    b"expect": _N_EXPECT,
    **dict.fromkeys(FORWARDING, _N_FWD),
    **dict.fromkeys(CONNECTION_SPECIFIC, _N_CONN),
}
_methods: dict[bytes, str] = {}


def _request_name(name: bytes) -> int:
    if _LOWER_TOKEN.fullmatch(name) is None:
        raise MalformedRequest("Invalid or uppercase field name")
    if len(_request_names) < 1024:
        _request_names[name] = _N_OTHER
    return _N_OTHER


def request_head(headers: list[tuple[bytes, bytes]], connect_protocol: bool) -> RequestHead:
    """Check a decoded request header list; return its head."""
    method = scheme = path = authority = protocol = None
    regular: list[tuple[bytes, bytes]] = []
    cookies: list[bytes] | None = None
    content_length = -1
    expect_continue = False
    forwarded = False
    names = _request_names
    for name, value in headers:
        if name[:1] == b":":
            if regular or cookies:
                raise MalformedRequest("Pseudo-header field after regular fields")
            if name == b":method" and method is None:
                method = value
            elif name == b":path" and path is None:
                path = value
            elif name == b":scheme" and scheme is None:
                scheme = value
            elif name == b":authority" and authority is None:
                authority = value
            elif name == b":protocol" and protocol is None:
                protocol = value
            else:
                raise MalformedRequest("Unknown, response or repeated pseudo-header field")
            continue
        kind = names.get(name)
        if kind is None:
            kind = _request_name(name)
        if _BAD_REQUEST_VALUE(value) is not None:
            raise MalformedRequest("Invalid field value")
        if kind:
            if kind == _N_TE:
                if value != b"trailers":
                    raise MalformedRequest("te other than trailers")
            elif kind == _N_CL:
                if _DIGITS.fullmatch(value) is None or (
                    content_length >= 0 and int(value) != content_length
                ):
                    raise MalformedRequest("Invalid content-length")
                content_length = int(value)
            elif kind == _N_HOST:
                if authority is not None:
                    continue  # :authority is the one that counts (RFC 9113 8.3.1)
            elif kind == _N_COOKIE:
                if cookies is None:
                    cookies = [value]
                else:
                    cookies.append(value)
                continue
            elif kind == _N_EXPECT:
                expect_continue = value.lower() == b"100-continue"
            elif kind == _N_FWD:
                forwarded = True
            else:
                raise MalformedRequest("Connection-specific field")
        regular.append((name, value))
    if cookies is not None:
        regular.append((b"cookie", b"; ".join(cookies)))
    if method is None:
        raise MalformedRequest("Missing :method")
    if method == b"CONNECT":
        if protocol is None:
            if scheme is not None or path is not None or not authority:
                raise MalformedRequest("Malformed CONNECT")
            path = b""
        elif not connect_protocol:
            raise MalformedRequest(":protocol is not enabled")
        elif not scheme or not path or not authority:
            raise MalformedRequest("Malformed extended CONNECT")
        elif path[:1] != b"/":  # RFC 8441 4: the target of the protocol, origin-form
            raise MalformedRequest("Invalid :path")
        elif _BAD_PATH(path) is not None:
            raise MalformedRequest("Invalid characters in :path")
    else:
        if protocol is not None:
            raise MalformedRequest(":protocol without CONNECT")
        if not scheme or not path:
            raise MalformedRequest("Missing :scheme or :path")
        if path[:1] != b"/" and not (path == b"*" and method == b"OPTIONS"):
            raise MalformedRequest("Invalid :path")
        if _BAD_PATH(path) is not None:
            raise MalformedRequest("Invalid characters in :path")
    if authority is not None:
        regular.insert(0, (b"host", authority))
    decoded = _methods.get(method)
    if decoded is None:
        if _METHOD_TOKEN.fullmatch(method) is None:
            raise MalformedRequest("Invalid :method")
        decoded = method.decode("ascii")
        if len(_methods) < 64:
            _methods[method] = decoded
    head = RequestHead()
    head.method = decoded
    head.target = path
    head.http_version = "2"
    head.headers = regular
    head.content_length = content_length
    head.expect_continue = expect_continue
    head.forwarded = forwarded
    head.upgrade = protocol
    return head


# -- responses --------------------------------------------------------------

# Bits for the default fields the app replaced, as for HTTP/1 (see default_fields).
_SEEN_SERVER, _SEEN_DATE = 1, 2
_K_OTHER, _K_CL, _K_DROP, _K_SERVER, _K_DATE = range(5)
# name as sent by the app -> (kind, lowercase name); only valid names are cached
_response_names: dict[bytes, tuple[int, bytes]] = {}


def _response_name(name: bytes) -> tuple[int, bytes]:
    entry = _response_names.get(name)
    if entry is None:
        if not valid_header_name(name):
            raise ResponseError(f"Invalid HTTP header name: {name!r}")
        lowered = name.lower()
        if lowered in CONNECTION_SPECIFIC:
            kind = _K_DROP
        else:
            kind = {
                b"content-length": _K_CL,
                b"server": _K_SERVER,
                b"date": _K_DATE,
            }.get(lowered, _K_OTHER)
        entry = (kind, lowered)
        if len(_response_names) < 1024:
            _response_names[name] = entry
    return entry


def default_fields(
    server: bytes | None, date: bytes | None, extra: list[tuple[bytes, bytes]]
) -> dict[int, bytes]:
    """The server's default fields, encoded, for each combination the app may replace."""
    server_field = encode_field(b"server", server) if server is not None else b""
    date_field = encode_field(b"date", date) if date is not None else b""
    other = b"".join(encode_field(name.lower(), value) for name, value in extra)
    return {
        0: server_field + date_field + other,
        _SEEN_SERVER: date_field + other,
        _SEEN_DATE: server_field + other,
        _SEEN_SERVER | _SEEN_DATE: other,
    }


def response_fields(
    status: int,
    headers: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...],
    defaults: dict[int, bytes] | None,
) -> tuple[bytes, int]:
    """Encode a response head; return the block and the declared content-length (or -1).

    ``defaults`` is from :func:`default_fields` (None for trailers and 1xx).
    """
    if status:
        field = STATUS_FIELDS.get(status)
        if field is None:
            raise ResponseError(f"Invalid HTTP status code: {status!r}")
        parts = [field]
    else:
        parts = []
    seen = 0
    content_length = -1
    names = _response_names
    for name, value in headers:
        entry = names.get(name)
        if entry is None:
            entry = _response_name(name)
        kind, lowered = entry
        if _BAD_RESPONSE_VALUE(value) is not None:
            raise ResponseError(f"Invalid HTTP header value for {name!r}")
        if kind:
            if kind == _K_CL:
                try:
                    content_length = int(value)
                except ValueError:
                    content_length = -1
                if content_length < 0:
                    raise ResponseError(f"Invalid Content-Length: {value!r}")
            elif kind == _K_DROP:
                continue
            else:
                seen |= _SEEN_SERVER if kind == _K_SERVER else _SEEN_DATE
        parts.append(encode_field(lowered, value))
    if defaults is not None:
        parts.append(defaults[seen])
    return b"".join(parts), content_length
