"""Request smuggling: every vector is followed by a pipelined canary, on both parsers.

Each vector is sent in one write together with ``CANARY``. The outcome is one of:

* ``refused(...)``: a 4xx/501/505 answer with ``connection: close``, then the
  connection closes; the canary is never answered, and the app saw only the
  requests listed (normally none).
* ``parsed(...)``: exactly the strict RFC 9112/9110 parse. The app saw exactly the
  listed requests (method, decoded path, body bytes), each got its echo, and the
  canary was answered as the next request. A final ``GET /end`` with
  ``connection: close`` then shows that nothing else was queued on the connection.
* ``served_then_closed(...)``: only for a request asking for an upgrade the server
  does not make while carrying a body. The strict parse of that request is
  answered with ``connection: close`` and the canary is not read as a request.
  RFC 9112 9.6 lets a server close at any point. Squall closes on purpose,
  because llhttp leaves such a body unparsed (src/squall/protocols/http1.py:300-305,
  HeadBuilder.finish).

Content-Length rule applied (RFC 9110 8.6): ``1*DIGIT`` after trimming OWS, so
leading zeros (``007``) are valid and mean 7. Anything else is refused: signs,
hex, ``_``, inner spaces, lists, empty values and non-ASCII digits. A duplicated
field is refused even when its values are equal, which is the "MAY reject" branch.
Both parsers share this rule in ``HeadBuilder.finish``. The h11 backend also
checks it beforehand in ``framing_conflict``.

One server per parser serves the whole module. Each vector runs on a fresh
connection, and the app records requests under the client's port.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import HTTP_IMPLS, RawClient, RunningServer
from tests.integration.helpers import PROPAGATE_LOGS, parse_response, request, wait_until

pytestmark = pytest.mark.usefixtures("fast_tick")  # servers stop quickly

Req = tuple[str, str, bytes]  # (method, decoded path, body bytes) as the app saw them

CANARY = b"GET /canary HTTP/1.1\r\nHost: x\r\n\r\n"
END = b"GET /end HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
CANARY_REQ: Req = ("GET", "/canary", b"")
END_REQ: Req = ("GET", "/end", b"")
SMUGGLED_REQ: Req = ("GET", "/smuggled", b"")


# -- outcomes --------------------------------------------------------------------------


@dataclass(frozen=True)
class Refused:
    statuses: tuple[int, ...]
    seen: tuple[Req, ...] = ()  # answered (in order) before the refusal


@dataclass(frozen=True)
class Parsed:
    seen: tuple[Req, ...]
    close: bool = False  # served_then_closed: answered with connection: close, canary unread


def refused(*statuses: int, seen: tuple[Req, ...] = ()) -> Refused:
    return Refused(statuses, seen)


def parsed(*seen: Req) -> Parsed:
    return Parsed(seen)


def served_then_closed(*seen: Req) -> Parsed:
    return Parsed(seen, close=True)


R400 = refused(400)


# -- request builders ------------------------------------------------------------------


def req(headers: bytes = b"", body: bytes = b"", *, line: bytes = b"POST / HTTP/1.1") -> bytes:
    """A request with ``Host: x``; ``headers`` are raw lines, each ending in CRLF."""
    return line + b"\r\nHost: x\r\n" + headers + b"\r\n" + body


def cl(body: bytes, extra: bytes = b"", *, line: bytes = b"POST / HTTP/1.1") -> bytes:
    """A Content-Length request (``extra`` lines go after Content-Length)."""
    return req(b"Content-Length: %d\r\n" % len(body) + extra, body, line=line)


def te(value: bytes, body: bytes, *, line: bytes = b"POST / HTTP/1.1") -> bytes:
    """A request with one raw ``Transfer-Encoding`` line (``value`` as given)."""
    return req(b"Transfer-Encoding" + value + b"\r\n", body, line=line)


def chunked(body: bytes, extra: bytes = b"", *, line: bytes = b"POST / HTTP/1.1") -> bytes:
    return req(b"Transfer-Encoding: chunked\r\n" + extra, body, line=line)


def get(line: bytes, headers: bytes = b"Host: x\r\n") -> bytes:
    return line + b"\r\n" + headers + b"\r\n"


HELLO = b"5\r\nhello\r\n0\r\n\r\n"  # "hello", chunked
ZERO_SMUGGLE = b"0\r\n\r\n" + SMUGGLED  # the body's end, then a request
# a chunk whose data is a whole request: a parser that ignores TE reads it as one
TE_CL_BODY = b"%x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED)
P_HELLO: Req = ("POST", "/", b"hello")
P_EMPTY: Req = ("POST", "/", b"")
WS_UPGRADE = (
    b"Connection: Upgrade\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


# -- the vectors: (id, raw bytes, outcome, strict interpretation) ------------------------

VECTORS: list[tuple[str, bytes, Refused | Parsed, str]] = [
    # CL.TE: both framings present; a front end trusting CL would forward the smuggle
    ("cl_te.plain",
     req(b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n" % len(ZERO_SMUGGLE), ZERO_SMUGGLE),
     R400, "CL with TE: reject, or let TE win and close (RFC 9112 6.3 #3); Squall rejects"),
    ("cl_te.te_first",
     req(b"Transfer-Encoding: chunked\r\nContent-Length: %d\r\n" % len(ZERO_SMUGGLE), ZERO_SMUGGLE),
     R400, "order does not matter: CL with TE is the same ambiguity (RFC 9112 6.3 #3)"),
    ("cl_te.te_upper", req(b"Content-Length: 5\r\nTRANSFER-ENCODING: CHUNKED\r\n", b"0\r\n\r\nG"),
     R400,
     "field names and codings are case-insensitive: TE is present with CL (RFC 9110 5.1, 9112 7)"),
    ("cl_te.te_tab_value",
     req(b"Content-Length: 5\r\nTransfer-Encoding:\tchunked\r\n", b"0\r\n\r\nG"),
     R400, "HTAB is OWS: this is TE chunked together with CL (RFC 9112 5.1, 6.3)"),
    ("cl_te.te_trailing_ws",
     req(b"Content-Length: 5\r\nTransfer-Encoding: chunked \t\r\n", b"0\r\n\r\nG"),
     R400, "trailing OWS is not part of the value: TE chunked together with CL"),
    ("cl_te.te_space_before_colon",
     req(b"Content-Length: 5\r\nTransfer-Encoding : chunked\r\n", b"0\r\n\r\nG"),
     R400, "whitespace between field name and colon: MUST reject with 400 (RFC 9112 5.1)"),
    ("cl_te.te_obs_fold",
     req(b"Content-Length: 5\r\nTransfer-Encoding:\r\n chunked\r\n", b"0\r\n\r\nG"),
     R400, "obs-fold: reject with 400 or unfold (RFC 9112 5.2); unfolded it is CL with TE"),
    ("cl_te.te_folded_into_other",
     req(b"Content-Length: 5\r\nX-A: b\r\n Transfer-Encoding: chunked\r\n", b"0\r\n\r\nG"),
     R400,
     "a line starting with SP is obs-fold of X-A, never a TE field (RFC 9112 5.2); Squall rejects"),
    ("cl_te.te_vtab",
     req(b"Content-Length: 5\r\nTransfer-Encoding: \x0bchunked\r\n", b"0\r\n\r\nG"),
     R400, "VT is not OWS and not a field-vchar: invalid field value, 400 (RFC 9110 5.5)"),
    ("cl_te.te_xchunked",
     req(b"Content-Length: 5\r\nTransfer-Encoding: xchunked\r\n", b"0\r\n\r\nG"),
     R400, "any TE together with CL is ambiguous framing (RFC 9112 6.3 #3)"),
    ("cl_te.te_identity", req(b"Content-Length: 5\r\nTransfer-Encoding: identity\r\n", b"hello"),
     R400, "TE overrides CL even for an unknown coding; with both, reject (RFC 9112 6.1, 6.3)"),
    ("cl_te.te_nul_in_name",
     req(b"Content-Length: 5\r\nTransfer-Encoding\x00: chunked\r\n", b"0\r\n\r\nG"),
     R400, "NUL is not a tchar: invalid field name, 400 (RFC 9110 5.1)"),
    ("cl_te.underscore_name_is_other_field",
     req(b"Content-Length: 5\r\nTransfer_Encoding: chunked\r\n", b"0\r\n\r\n"),
     parsed(("POST", "/", b"0\r\n\r\n")),
     "Transfer_Encoding is a different (valid) field name: CL frames 5 bytes"),
    ("cl_te.http10", cl(b"0\r\n\r\nG", b"Transfer-Encoding: chunked\r\n", line=b"POST / HTTP/1.0"),
     R400, "TE in HTTP/1.0 means faulty framing (RFC 9112 6.1); with CL too, reject"),
    # TE.CL: a back end trusting CL would read the chunk data as the next request
    ("te_cl.plain", req(b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n", TE_CL_BODY), R400,
     "CL with TE: reject (RFC 9112 6.3 #3); never frame by CL"),
    ("te_cl.cl_upper", req(b"Transfer-Encoding: chunked\r\nCONTENT-LENGTH: 4\r\n", TE_CL_BODY),
     R400, "field names are case-insensitive: CL is present with TE"),
    ("te_cl.cl_zero", req(b"Transfer-Encoding: chunked\r\nContent-Length: 0\r\n", TE_CL_BODY), R400,
     "a zero CL is still a CL with TE (RFC 9112 6.3 #3)"),
    ("te_cl.cl_space_before_colon",
     req(b"Transfer-Encoding: chunked\r\nContent-Length : 4\r\n", TE_CL_BODY),
     R400, "whitespace before the colon: MUST reject with 400 (RFC 9112 5.1)"),
    ("te_cl.cl_obs_fold",
     req(b"Transfer-Encoding: chunked\r\nContent-Length:\r\n 4\r\n", TE_CL_BODY),
     R400, "obs-fold: reject with 400 or unfold (RFC 9112 5.2); unfolded it is CL+TE"),
    ("te_cl.te_only_smuggle_after_last_chunk", chunked(ZERO_SMUGGLE), parsed(P_EMPTY, SMUGGLED_REQ),
     "after the last chunk the next bytes are simply the next pipelined request"),
    ("te_cl.cl_only_chunk_like_body", req(b"Content-Length: %d\r\n" % len(TE_CL_BODY), TE_CL_BODY),
     parsed(("POST", "/", TE_CL_BODY)),
     "without TE the CL frames everything: the chunk-looking request is body data"),
    # TE.TE: obfuscated Transfer-Encoding alone; either chunked exactly or a refusal
    ("te_te.value_upper", te(b": CHUNKED", HELLO), parsed(P_HELLO),
     "transfer codings are case-insensitive (RFC 9112 7): chunked"),
    ("te_te.name_mixed_case", req(b"tRANSFER-eNCODING: chunked\r\n", HELLO), parsed(P_HELLO),
     "field names are case-insensitive (RFC 9110 5.1): chunked"),
    ("te_te.no_space", te(b":chunked", HELLO), parsed(P_HELLO),
     "OWS after the colon is optional (RFC 9112 5.1): chunked"),
    ("te_te.tab_after_colon", te(b":\tchunked", HELLO), parsed(P_HELLO),
     "HTAB is OWS (RFC 9112 5.1): chunked"),
    ("te_te.trailing_space", te(b": chunked  ", HELLO), parsed(P_HELLO),
     "trailing OWS (SP) is not part of the value (RFC 9112 5.1): chunked"),
    ("te_te.trailing_tab", te(b": chunked\t", HELLO), parsed(P_HELLO),
     "trailing OWS (HTAB) is not part of the value (RFC 9112 5.1): chunked"),
    ("te_te.space_before_colon", te(b" : chunked", HELLO), R400,
     "whitespace between name and colon: MUST reject with 400 (RFC 9112 5.1)"),
    ("te_te.tab_before_colon", te(b"\t: chunked", HELLO), R400,
     "whitespace between name and colon: MUST reject with 400 (RFC 9112 5.1)"),
    ("te_te.chunked_identity", te(b": chunked, identity", HELLO), R400,
     "chunked not final in a request: MUST respond 400 and close (RFC 9112 6.3 #4)"),
    ("te_te.identity_chunked", te(b": identity, chunked", HELLO), refused(501),
     "identity is no longer a transfer coding: unknown coding, SHOULD 501 (RFC 9112 6.1)"),
    ("te_te.gzip_chunked", te(b": gzip, chunked", HELLO), refused(501),
     "a coding the server does not decode: SHOULD 501 (RFC 9112 6.1)"),
    ("te_te.leading_comma", te(b": ,chunked", HELLO), R400,
     "empty list elements are ignored (RFC 9110 5.6.1): chunked; refusing is the safe deviation"),
    ("te_te.trailing_comma", te(b": chunked,", HELLO), R400,
     "empty list elements are ignored (RFC 9110 5.6.1): chunked; refusing is the safe deviation"),
    ("te_te.repeated_lines",
     req(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", HELLO),
     R400,
     "the lines combine to 'chunked, chunked': chunked applied twice is invalid (RFC 9112 6.1, 7)"),
    ("te_te.gzip_then_chunked_lines",
     req(b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", HELLO),
     refused(501),
     "combined 'gzip, chunked': a coding the server does not decode, SHOULD 501 (RFC 9112 6.1)"),
    ("te_te.chunked_then_identity_lines",
     req(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n", HELLO),
     R400, "combined 'chunked, identity': chunked not final, MUST 400 (RFC 9112 6.3 #4)"),
    ("te_te.empty_then_chunked_lines",
     req(b"Transfer-Encoding:\r\nTransfer-Encoding: chunked\r\n", HELLO),
     R400, "an empty Transfer-Encoding is not a valid coding list (1#transfer-coding); reject"),
    ("te_te.obs_fold", te(b":\r\n chunked", HELLO), R400,
     "obs-fold: reject with 400 or unfold to chunked (RFC 9112 5.2); Squall rejects"),
    ("te_te.obs_fold_second_coding", te(b": chunked\r\n\t, identity", HELLO), R400,
     "unfolded: 'chunked , identity', chunked not final; either way 400 (RFC 9112 5.2, 6.3)"),
    ("te_te.xchunked", te(b": xchunked", HELLO), refused(501),
     "an unknown coding: SHOULD 501 (RFC 9112 6.1), never a body-less request"),
    ("te_te.chunked_suffix", te(b": chunkedx", HELLO), refused(501),
     "an unknown coding: SHOULD 501 (RFC 9112 6.1)"),
    ("te_te.parameter", te(b": chunked;q=1", HELLO), refused(400, 501),
     "chunked takes no parameters and q is only for TE (RFC 9112 7, 10.1): not plain chunked"),
    ("te_te.quoted", te(b': "chunked"', HELLO), refused(400, 501),
     "a transfer-coding is a token; a quoted-string is not 'chunked' (RFC 9112 7)"),
    ("te_te.nbsp_suffix", te(b": chunked\xa0", HELLO), refused(400, 501),
     "NBSP is obs-text, not OWS: the coding is 'chunked\\xa0', unknown"),
    ("te_te.vtab_suffix", te(b": chunked\x0b", HELLO), R400,
     "VT is not allowed in a field value (RFC 9110 5.5): 400"),
    ("te_te.nul_suffix", te(b": chunked\x00", HELLO), R400,
     "NUL in a field value: MUST reject or replace (RFC 9110 5.5); Squall rejects"),
    ("te_te.http10", chunked(HELLO, line=b"POST / HTTP/1.0"), R400,
     "TE in an HTTP/1.0 request: faulty framing, close (RFC 9112 6.1); Squall rejects"),
    # Content-Length values
    ("cl.plus", req(b"Content-Length: +5\r\n", b"hello"), R400,
     "CL = 1*DIGIT (RFC 9110 8.6): '+' is invalid, 400"),
    ("cl.minus", req(b"Content-Length: -1\r\n", b"hello"), R400,
     "CL = 1*DIGIT: negative is invalid, 400"),
    ("cl.minus_zero", req(b"Content-Length: -0\r\n", b"hello"), R400,
     "CL = 1*DIGIT: '-0' is invalid, 400"),
    ("cl.hex", req(b"Content-Length: 0x5\r\n", b"hello"), R400,
     "CL = 1*DIGIT: hex is invalid, 400"),
    ("cl.underscore", req(b"Content-Length: 1_0\r\n", b"helloworld"), R400,
     "CL = 1*DIGIT: '1_0' is invalid (Python's int() would take it), 400"),
    ("cl.inner_space", req(b"Content-Length: 5 5\r\n", b"hello"), R400,
     "CL = 1*DIGIT: '5 5' is invalid, 400"),
    ("cl.inner_tab", req(b"Content-Length: 5\t5\r\n", b"hello"), R400,
     "CL = 1*DIGIT: '5\\t5' is invalid, 400"),
    ("cl.list_same", req(b"Content-Length: 5,5\r\n", b"hello"), R400,
     "a list of equal values: MAY reject or collapse (RFC 9110 8.6); Squall rejects"),
    ("cl.list_differ", req(b"Content-Length: 5,6\r\n", b"hello!"), R400,
     "differing values: MUST treat as unrecoverable, 400 (RFC 9112 6.3 #5)"),
    ("cl.duplicate_same", req(b"Content-Length: 5\r\nContent-Length: 5\r\n", b"hello"), R400,
     "repeated equal field lines: MAY reject or collapse (RFC 9110 8.6); Squall rejects"),
    ("cl.duplicate_differ", req(b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!"), R400,
     "repeated differing values: unrecoverable framing, 400 (RFC 9112 6.3 #5)"),
    ("cl.empty", req(b"Content-Length:\r\n", b"hello"), R400,
     "CL = 1*DIGIT: an empty value is invalid, 400"),
    ("cl.float", req(b"Content-Length: 5.0\r\n", b"hello"), R400,
     "CL = 1*DIGIT: '5.0' is invalid, 400"),
    ("cl.exponent", req(b"Content-Length: 5e0\r\n", b"hello"), R400,
     "CL = 1*DIGIT: '5e0' is invalid, 400"),
    ("cl.non_ascii_digit", req("Content-Length: \u0665\r\n".encode(), b"hello"), R400,
     "DIGIT is ASCII 0-9 only (RFC 5234): ARABIC-INDIC FIVE is invalid, 400"),
    ("cl.nul_suffix", req(b"Content-Length: 5\x00\r\n", b"hello"), R400,
     "NUL in a field value: 400 (RFC 9110 5.5)"),
    ("cl.leading_zeros", req(b"Content-Length: 007\r\n", b"hello!!"),
     parsed(("POST", "/", b"hello!!")), "1*DIGIT allows leading zeros: '007' is 7 (RFC 9110 8.6)"),
    ("cl.all_zeros", req(b"Content-Length: 000\r\n"), parsed(P_EMPTY),
     "1*DIGIT: '000' is 0, no body"),
    ("cl.ows_around", req(b"Content-Length: \t 5 \t\r\n", b"hello"), parsed(P_HELLO),
     "OWS around a field value is not part of it (RFC 9112 5.1): 5"),
    ("cl.huge", req(b"Content-Length: 99999999999999999999\r\n", b"hello"), refused(400, 413),
     "a length beyond any integer the server keeps: unrecoverable, 400 (or 413)"),
    ("cl.space_before_colon", req(b"Content-Length : 5\r\n", b"hello"), R400,
     "whitespace between name and colon: MUST reject with 400 (RFC 9112 5.1)"),
    # line endings and the request line
    ("line.bare_lf_everywhere", b"POST / HTTP/1.1\nHost: x\nContent-Length: 5\n\nhello", R400,
     "a bare LF MAY be taken as a line end (RFC 9112 2.2); Squall rejects it, safe either way"),
    ("line.bare_lf_ends_head", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\nhello", R400,
     "a bare LF ending the head: MAY be a line end (RFC 9112 2.2); Squall rejects"),
    ("line.bare_lf_request_line", b"GET / HTTP/1.1\nHost: x\r\n\r\n", R400,
     "a bare LF after the request line: Squall rejects (RFC 9112 2.2 MAY)"),
    ("line.bare_cr_ends_field", b"GET / HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n", R400,
     "a bare CR: MUST be invalid or replaced with SP (RFC 9112 2.2)"),
    ("line.cr_then_x", b"GET / HTTP/1.1\r\nHost: x\r\n\rX-A: b\r\n\r\n", R400,
     "'\\r\\n\\rX': a bare CR where the head should end, invalid (RFC 9112 2.2)"),
    ("line.bare_cr_request_line", b"GET /\r HTTP/1.1\r\nHost: x\r\n\r\n", R400,
     "a bare CR in the request line: invalid (RFC 9112 2.2)"),
    ("line.cr_cr_lf", b"GET / HTTP/1.1\r\r\nHost: x\r\n\r\n", R400,
     "CR CR LF: the first CR is bare, invalid (RFC 9112 2.2)"),
    ("line.leading_empty_line", b"\r\n" + get(b"GET /after-crlf HTTP/1.1"),
     parsed(("GET", "/after-crlf", b"")),
     "SHOULD ignore an empty line (CRLF) before the request line (RFC 9112 2.2)"),
    ("line.ws_before_first_field", b"GET / HTTP/1.1\r\n X-A: b\r\nHost: x\r\n\r\n", R400,
     "whitespace before the first field: MUST reject or skip that line (RFC 9112 2.2)"),
    ("line.double_space", get(b"GET  / HTTP/1.1"), R400,
     "method SP target SP version (RFC 9112 3); MAY split on any whitespace, Squall rejects"),
    ("line.tab_separator", get(b"GET\t/ HTTP/1.1"), R400,
     "HTAB is not SP in the request line (RFC 9112 3)"),
    ("line.trailing_space", get(b"GET / HTTP/1.1 "), R400,
     "nothing may follow HTTP-version on the request line"),
    # header names and values
    ("hdr.nul_in_name", get(b"GET / HTTP/1.1", b"Host: x\r\nX-\x00A: b\r\n"), R400,
     "field-name = token: NUL invalid, 400"),
    ("hdr.ctl_in_name", get(b"GET / HTTP/1.1", b"Host: x\r\nX-\x01A: b\r\n"), R400,
     "field-name = token: 0x01 invalid, 400"),
    ("hdr.del_in_name", get(b"GET / HTTP/1.1", b"Host: x\r\nX-A\x7f: b\r\n"), R400,
     "field-name = token: DEL invalid, 400"),
    ("hdr.utf8_in_name", get(b"GET / HTTP/1.1", "Host: x\r\nX-Café: b\r\n".encode()), R400,
     "field-name = token: non-ASCII is invalid, 400"),
    ("hdr.high_byte_in_name", get(b"GET / HTTP/1.1", b"Host: x\r\nX-\xff: b\r\n"), R400,
     "field-name = token: 0xFF invalid, 400"),
    ("hdr.space_in_name", get(b"GET / HTTP/1.1", b"Host: x\r\nX A: b\r\n"), R400,
     "field-name = token: SP invalid, 400"),
    ("hdr.space_before_colon", get(b"GET / HTTP/1.1", b"Host: x\r\nX-A : b\r\n"), R400,
     "whitespace between name and colon: MUST reject with 400 (RFC 9112 5.1)"),
    ("hdr.empty_name", get(b"GET / HTTP/1.1", b"Host: x\r\n: b\r\n"), R400,
     "field-name = 1*tchar: empty is invalid, 400"),
    ("hdr.no_colon", get(b"GET / HTTP/1.1", b"Host: x\r\nX-A b\r\n"), R400,
     "a field line without a colon is invalid, 400"),
    ("hdr.nul_in_value", get(b"GET / HTTP/1.1", b"Host: x\r\nX-A: a\x00b\r\n"), R400,
     "NUL in a value: MUST reject or replace with SP (RFC 9110 5.5); Squall rejects"),
    ("hdr.ctl_in_value", get(b"GET / HTTP/1.1", b"Host: x\r\nX-A: a\x01b\r\n"), R400,
     "CTL is not a field-vchar (RFC 9110 5.5): 400"),
    ("hdr.esc_in_value", get(b"GET / HTTP/1.1", b"Host: x\r\nX-A: \x1b[31mred\r\n"), R400,
     "ESC is not a field-vchar: 400"),
    ("hdr.del_in_value", get(b"GET / HTTP/1.1", b"Host: x\r\nX-A: a\x7fb\r\n"), R400,
     "DEL is not a field-vchar: 400"),
    ("hdr.obs_text_in_value", cl(b"hello", "X-A: café \xff\r\n".encode("latin-1")), parsed(P_HELLO),
     "obs-text (0x80-0xFF) is allowed in a field value (RFC 9110 5.5): a normal request"),
    ("hdr.tab_in_value", cl(b"hello", b"X-A: a\tb\r\n"), parsed(P_HELLO),
     "HTAB is allowed inside a value (RFC 9110 5.5)"),
    ("hdr.colon_in_value", cl(b"hello", b"X-A:b: c\r\n"), parsed(P_HELLO),
     "the first colon ends the name; 'b: c' is a valid value"),
    # chunk sizes
    ("chunk.hex_prefix", chunked(b"0x5\r\nhello\r\n0\r\n\r\n"), R400,
     "chunk-size = 1*HEXDIG: '0x5' invalid, 400"),
    ("chunk.negative", chunked(b"-1\r\nhello\r\n0\r\n\r\n"), R400,
     "chunk-size = 1*HEXDIG: '-1' invalid, 400"),
    ("chunk.plus", chunked(b"+5\r\nhello\r\n0\r\n\r\n"), R400,
     "chunk-size = 1*HEXDIG: '+5' invalid, 400"),
    ("chunk.inner_space", chunked(b"1 0\r\n" + b"x" * 16 + b"\r\n0\r\n\r\n"), R400,
     "chunk-size = 1*HEXDIG: '1 0' invalid, 400"),
    ("chunk.trailing_space", chunked(b"5 \r\nhello\r\n0\r\n\r\n"), R400,
     "BWS is only allowed before ';' (RFC 9112 7.1.1): '5 ' alone is invalid"),
    ("chunk.empty_size", chunked(b"\r\nhello\r\n0\r\n\r\n"), R400,
     "chunk-size = 1*HEXDIG: empty invalid, 400"),
    ("chunk.huge", chunked(b"10000000000000000\r\nhello\r\n0\r\n\r\n"), R400,
     "2**64 overflows any length the server can frame: unrecoverable, 400"),
    ("chunk.leading_zeros", chunked(b"0005\r\nhello\r\n0\r\n\r\n"), parsed(P_HELLO),
     "1*HEXDIG allows leading zeros: 5"),
    ("chunk.upper_hex", chunked(b"A\r\nhelloworld\r\n0\r\n\r\n"),
     parsed(("POST", "/", b"helloworld")), "HEXDIG is case-insensitive: A = 10"),
    ("chunk.size_too_small", chunked(b"5\r\nhelloworld\r\n0\r\n\r\n"), R400,
     "after 5 data bytes CRLF must follow (RFC 9112 7.1); 'wo' is invalid"),
    ("chunk.missing_last_chunk", chunked(b"5\r\nhello\r\n"), R400,
     "no last-chunk: the canary's request line is read as a chunk-size, invalid, 400"),
    ("chunk.bare_lf_lines", chunked(b"5\nhello\n0\n\n"), R400,
     "chunk lines end in CRLF (RFC 9112 7.1): bare LF invalid"),
    # chunk extensions
    ("ext.name_value", chunked(b"5;foo=bar\r\nhello\r\n0\r\n\r\n"), parsed(P_HELLO),
     "chunk-ext name=token is valid, ignored"),
    ("ext.bare_name", chunked(b"5;foo\r\nhello\r\n0;bar\r\n\r\n"), parsed(P_HELLO),
     "a chunk-ext without value is valid"),
    ("ext.bws_before_semicolon", chunked(b"5 ;foo=bar\r\nhello\r\n0\r\n\r\n"), parsed(P_HELLO),
     "chunk-ext = *(BWS ';' BWS name [ BWS '=' BWS val ]) (RFC 9112 7.1.1): valid"),
    ("ext.bws_after_semicolon", chunked(b"5; foo=bar\r\nhello\r\n0\r\n\r\n"), parsed(P_HELLO),
     "BWS after ';' is allowed in chunk-ext (RFC 9112 7.1.1): valid"),
    ("ext.bws_around_equals", chunked(b"5;foo = bar\r\nhello\r\n0\r\n\r\n"), parsed(P_HELLO),
     "BWS around '=' is allowed in chunk-ext (RFC 9112 7.1.1): valid"),
    ("ext.trailing_ws", chunked(b"5;foo=bar \r\nhello\r\n0\r\n\r\n"), R400,
     "the grammar has no whitespace after chunk-ext-val: invalid chunk line"),
    ("ext.quoted_escapes", chunked(b'5;a="b\\"c\\\\d; e"\r\nhello\r\n0\r\n\r\n'), parsed(P_HELLO),
     "a quoted-string with quoted-pairs is a valid chunk-ext-val (RFC 9110 5.6.4)"),
    ("ext.lf_inside", chunked(b"5;a=b\nc\r\nhello\r\n0\r\n\r\n"), R400,
     "a bare LF in a chunk-ext is invalid"),
    ("ext.cr_inside", chunked(b"5;a=b\rc\r\nhello\r\n0\r\n\r\n"), R400,
     "a bare CR in a chunk-ext is invalid"),
    ("ext.crlf_in_quotes", chunked(b'5;a="b\r\nc"\r\nhello\r\n0\r\n\r\n'), R400,
     "qdtext excludes CR and LF: the chunk line ends inside the quotes, invalid"),
    ("ext.unterminated_quote", chunked(b'5;a="b\r\nhello\r\n0\r\n\r\n'), R400,
     "an unterminated quoted-string is invalid"),
    ("ext.nul", chunked(b"5;a=b\x00\r\nhello\r\n0\r\n\r\n"), R400,
     "NUL is not a tchar or qdtext: invalid chunk-ext"),
    ("ext.bad_name", chunked(b"5;a@b=c\r\nhello\r\n0\r\n\r\n"), R400,
     "'@' is not a tchar: invalid chunk-ext-name"),
    ("ext.empty_name", chunked(b"5;\r\nhello\r\n0\r\n\r\n"), R400,
     "';' must be followed by a chunk-ext-name"),
    ("ext.oversized", chunked(b"5;a=" + b"b" * 8000 + b"\r\nhello\r\n0\r\n\r\n"), R400,
     "RFC 9112 7.1.1: a server ought to limit chunk-ext length; an 8 kB extension is refused"),
    # trailers
    ("trailer.plain", chunked(b"5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"), parsed(P_HELLO),
     "a trailer field is valid and does not change framing (RFC 9112 7.1.2)"),
    ("trailer.content_length", chunked(b"5\r\nhello\r\n0\r\nContent-Length: 50\r\n\r\n"), R400,
     "CL is not allowed in trailers (RFC 9110 6.5.1); Squall refuses rather than ignore"),
    ("trailer.transfer_encoding", chunked(b"5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n"),
     R400, "TE is not allowed in trailers (RFC 9110 6.5.1); Squall refuses"),
    ("trailer.host", chunked(b"5\r\nhello\r\n0\r\nHost: evil\r\n\r\n"), R400,
     "Host is not allowed in trailers (RFC 9110 6.5.1, 7.2); Squall refuses"),
    ("trailer.obs_fold", chunked(b"5\r\nhello\r\n0\r\nX-T: 1\r\n folded\r\n\r\n"), R400,
     "obs-fold in trailers: reject or unfold (RFC 9112 5.2); Squall rejects"),
    ("trailer.bare_lf", chunked(b"5\r\nhello\r\n0\r\nX-T: 1\n\r\n"), R400,
     "trailer lines end in CRLF: bare LF invalid"),
    ("trailer.space_before_colon", chunked(b"5\r\nhello\r\n0\r\nX-T : 1\r\n\r\n"), R400,
     "whitespace before the colon: MUST reject (RFC 9112 5.1)"),
    ("trailer.request_line", chunked(b"0\r\n" + SMUGGLED), R400,
     "'GET /smuggled HTTP/1.1' is not a field line: the trailer section is invalid"),
    # HTTP versions
    ("version.http12", get(b"GET / HTTP/1.2"), refused(400, 505),
     "RFC 9110 2.5 SHOULD treat 1.2 as 1.1; refusing (400/505) does not smuggle"),
    ("version.http20", get(b"GET / HTTP/2.0"), refused(505),
     "major version 2 on the HTTP/1 path: 505 (RFC 9110 15.6.6)"),
    ("version.http30", get(b"GET / HTTP/3.0"), refused(400, 505),
     "major version 3: 505 (RFC 9110 15.6.6); llhttp knows no 3.x and answers 400"),
    ("version.no_minor", get(b"GET / HTTP/1"), R400,
     "HTTP-version = HTTP-name '/' DIGIT '.' DIGIT: invalid"),
    ("version.lowercase", get(b"GET / http/1.1"), R400,
     "HTTP-name is case-sensitive 'HTTP' (RFC 9112 2.3): invalid"),
    ("version.leading_zero", get(b"GET / HTTP/01.1"), R400, "one DIGIT per part: '01.1' invalid"),
    ("version.two_digit_minor", get(b"GET / HTTP/1.10"), R400,
     "one DIGIT per part: '1.10' invalid"),
    ("version.space", get(b"GET / HTTP/ 1.1"), R400, "no whitespace inside HTTP-version"),
    # request targets
    ("target.absolute_form", get(b"GET http://evil/x?q=1 HTTP/1.1", b"Host: good\r\n"),
     parsed(("GET", "/x", b"")),
     "absolute-form: path from the target (RFC 9112 3.2.2); see test_absolute_form_* for Host"),
    ("target.absolute_form_no_path", get(b"GET http://evil HTTP/1.1", b"Host: good\r\n"),
     parsed(("GET", "/", b"")), "absolute-form with an empty path means '/' (RFC 9110 4.2.3)"),
    ("target.absolute_form_no_host", get(b"GET http://evil/x HTTP/1.1", b""), R400,
     "an HTTP/1.1 request without Host: MUST 400, absolute-form or not (RFC 9112 3.2)"),
    ("target.asterisk_options", get(b"OPTIONS * HTTP/1.1"), parsed(("OPTIONS", "*", b"")),
     "asterisk-form is valid for OPTIONS (RFC 9112 3.2.4)"),
    ("target.asterisk_get", get(b"GET * HTTP/1.1"), R400,
     "asterisk-form is only for OPTIONS (RFC 9112 3.2.4): an invalid request-line, 400"),
    ("target.asterisk_post_body", cl(b"hello", line=b"POST * HTTP/1.1"), R400,
     "asterisk-form is only for OPTIONS (RFC 9112 3.2.4): 400"),
    ("target.authority_form_get", get(b"GET evil:80 HTTP/1.1"), R400,
     "authority-form is only for CONNECT (RFC 9112 3.2.3)"),
    ("target.no_slash", get(b"GET x HTTP/1.1"), R400,
     "not origin-, absolute-, authority- or asterisk-form: 400"),
    ("target.nul", get(b"GET /a\x00b HTTP/1.1"), R400, "NUL is not a URI character: 400"),
    ("target.space", get(b"GET /a b HTTP/1.1"), R400, "SP splits the request line: 4 parts, 400"),
    ("target.del", get(b"GET /a\x7fb HTTP/1.1"), R400, "DEL is not a URI character: 400"),
    ("target.utf8_path", get("GET /café HTTP/1.1".encode()), R400,
     "raw non-ASCII is not a URI character: 400"),
    ("target.high_byte_query", get(b"GET /q?a=\xff HTTP/1.1"), R400,
     "raw 0xFF is not a URI character: 400"),
    # Expect: 100-continue with a body sent at once
    ("expect.continue_body_pipelined", cl(b"hello", b"Expect: 100-continue\r\n"), parsed(P_HELLO),
     "a client may send the body without waiting (RFC 9110 10.1.1): same framing"),
    ("expect.continue_chunked_pipelined", chunked(HELLO, b"Expect: 100-continue\r\n"),
     parsed(P_HELLO), "a client may send the body without waiting: chunked as usual"),
    ("expect.continue_body_is_request", cl(SMUGGLED, b"Expect: 100-continue\r\n"),
     parsed(("POST", "/", SMUGGLED)), "CL frames the body: the request-looking bytes are data"),
    ("expect.continue_http10",
     cl(b"hello", b"Connection: keep-alive\r\nExpect: 100-continue\r\n", line=b"POST / HTTP/1.0"),
     parsed(P_HELLO),
     "HTTP/1.0: MUST ignore 100-continue (RFC 9110 10.1.1); keep-alive keeps the connection"),
    ("expect.unknown", cl(b"hello", b"Expect: 200-ok\r\n"), refused(417),
     "an unsupported expectation: MAY 417 (RFC 9110 10.1.1)"),
    # GET and HEAD with bodies
    ("body.get_with_cl", cl(b"hello", line=b"GET / HTTP/1.1"), parsed(("GET", "/", b"hello")),
     "a GET body is framed like any other (RFC 9110 9.3.1, 9112 6.3 #6)"),
    ("body.head_with_cl", cl(b"hello", line=b"HEAD / HTTP/1.1"), parsed(("HEAD", "/", b"hello")),
     "a HEAD request body is framed like any other (RFC 9110 9.3.2)"),
    ("body.get_with_chunked", chunked(HELLO, line=b"GET / HTTP/1.1"),
     parsed(("GET", "/", b"hello")), "a chunked GET body: framed, then the next request"),
    ("body.get_cl_body_is_request", cl(SMUGGLED, line=b"GET / HTTP/1.1"),
     parsed(("GET", "/", SMUGGLED)),
     "CL frames the GET body: the request-looking bytes are data, not a request"),
    ("body.get_cl_zero_then_request",
     req(b"Content-Length: 0\r\n", SMUGGLED, line=b"GET / HTTP/1.1"),
     parsed(("GET", "/", b""), SMUGGLED_REQ), "CL 0: no body, the next bytes are the next request"),
    ("body.options_with_cl", cl(b"hello", line=b"OPTIONS / HTTP/1.1"),
     parsed(("OPTIONS", "/", b"hello")), "an OPTIONS body is framed by CL (RFC 9110 9.3.7)"),
    # bodies on requests asking for an upgrade
    ("upgrade.no_connection_token", cl(b"hello", b"Upgrade: foo\r\n"), parsed(P_HELLO),
     "Upgrade without 'Connection: upgrade' asks for nothing (RFC 9110 7.8): a normal request"),
    ("upgrade.unknown_protocol_no_body",
     get(b"GET / HTTP/1.1", b"Host: x\r\nConnection: Upgrade\r\nUpgrade: foo\r\n"),
     parsed(("GET", "/", b"")),
     "the server MAY ignore Upgrade (RFC 9110 7.8): a normal request, connection stays"),
    ("upgrade.unknown_protocol_cl_body", cl(b"hello", b"Connection: Upgrade\r\nUpgrade: foo\r\n"),
     served_then_closed(P_HELLO),
     "Upgrade ignored: the 5-byte body belongs to the request; Squall then closes"),
    ("upgrade.unknown_protocol_chunked_body",
     chunked(HELLO, b"Connection: Upgrade\r\nUpgrade: foo\r\n"),
     served_then_closed(P_HELLO),
     "Upgrade ignored: the chunked body belongs to the request; Squall then closes"),
    ("upgrade.websocket_denied_with_body", cl(b"hello", WS_UPGRADE, line=b"GET /ws HTTP/1.1"),
     refused(403),
     "the app denies the handshake: 403 and close (ASGI websocket.close before accept)"),
    # Host
    ("host.missing", get(b"GET / HTTP/1.1", b""), R400,
     "HTTP/1.1 without Host: MUST 400 (RFC 9112 3.2)"),
    ("host.duplicate", get(b"GET / HTTP/1.1", b"Host: x\r\nHost: evil\r\n"), R400,
     "more than one Host line: MUST 400 (RFC 9112 3.2)"),
    ("host.duplicate_same", get(b"GET / HTTP/1.1", b"Host: x\r\nHost: x\r\n"), R400,
     "more than one Host line, even equal: MUST 400"),
    ("host.space_before_colon", get(b"GET / HTTP/1.1", b"Host : x\r\n"), R400,
     "whitespace before the colon: MUST 400 (RFC 9112 5.1)"),
    ("host.folded", get(b"GET / HTTP/1.1", b"Host: x\r\n evil\r\n"), R400,
     "obs-fold in Host: reject (RFC 9112 5.2)"),
    ("host.ows", get(b"GET /ows HTTP/1.1", b"Host: \t x \t\r\n"), parsed(("GET", "/ows", b"")),
     "OWS around the value is not part of it"),
    ("host.empty", get(b"GET /empty-host HTTP/1.1", b"Host:\r\n"),
     parsed(("GET", "/empty-host", b"")),
     "an empty Host is valid when the authority is undefined (RFC 9112 3.2)"),
    ("host.inner_space", get(b"GET / HTTP/1.1", b"Host: x evil\r\n"), R400,
     "Host = uri-host [':' port]: 'x evil' is invalid, MUST 400 (RFC 9112 3.2)"),
    ("host.comma_list", get(b"GET / HTTP/1.1", b"Host: x, evil\r\n"), R400,
     "Host is a single value: 'x, evil' is invalid, MUST 400 (RFC 9112 3.2)"),
    ("host.userinfo", get(b"GET / HTTP/1.1", b"Host: user@evil\r\n"), R400,
     "Host has no userinfo (RFC 9110 7.2): invalid, MUST 400 (RFC 9112 3.2)"),
]  # fmt: skip

# CVE-2025-43859 (h11 < 0.16): the two bytes after chunk data were not checked to be CRLF
CVE_2025_43859: list[tuple[str, bytes, Refused | Parsed, str]] = [
    ("no_crlf_then_last_chunk", chunked(b"5\r\nhello0\r\n\r\n"), R400,
     "chunk-data is followed by CRLF (RFC 9112 7.1): '0\\r' is not CRLF"),
    ("two_other_bytes", chunked(b"5\r\nhelloXX0\r\n\r\n"), R400,
     "'XX' after the data is not CRLF: invalid"),
    ("two_other_bytes_then_request", chunked(b"5\r\nhelloXX0\r\n\r\n" + SMUGGLED), R400,
     "'XX' is not CRLF: invalid, and the request after it is never run"),
    ("lf_only", chunked(b"5\r\nhello\n0\r\n\r\n"), R400,
     "a bare LF after the data is not CRLF: invalid"),
    ("cr_only", chunked(b"5\r\nhello\r0\r\n\r\n"), R400,
     "a bare CR after the data is not CRLF: invalid"),
    ("smuggle_in_last_chunk_gap", chunked(b"5\r\nhello\r\n0\r\nXX" + SMUGGLED), R400,
     "after the last chunk: CRLF or a trailer line; 'XXGET ...' is an invalid trailer line"),
]  # fmt: skip

# Where a backend differs from the strict outcome: (backend, vector id) -> reason.
# Empty: both backends give the strict answer to every vector.
XFAIL: dict[tuple[str, str], str] = {}


def _params(vectors: list[tuple[str, bytes, Refused | Parsed, str]]) -> list[Any]:
    params = []
    for impl in HTTP_IMPLS:
        for vid, raw, outcome, rfc in vectors:
            reason = XFAIL.get((impl, vid))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            params.append(pytest.param(impl, raw, outcome, rfc, id=f"{impl}-{vid}", marks=marks))
    return params


# -- the app and the servers -----------------------------------------------------------


class Recorder:
    """Records (method, path, body) per client port once the body is complete, echoes it."""

    def __init__(self) -> None:
        self.seen: dict[int, list[Req]] = defaultdict(list)
        self.scopes: dict[int, list[dict[str, Any]]] = defaultdict(list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close"})  # deny: the server answers 403
            return
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client (or the parser) gave up: nothing was seen
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        port = scope["client"][1]
        self.seen[port].append((scope["method"], scope["path"], body))
        self.scopes[port].append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send(
            {"type": "http.response.body", "body": echo(scope["method"], scope["path"], body)}
        )


def echo(method: str, path: str, body: bytes) -> bytes:
    return f"{method} {path} {len(body)}:".encode() + body


class Servers:
    """One in-thread server per parser backend, started on first use."""

    def __init__(self) -> None:
        self.app = Recorder()
        self.running: dict[str, RunningServer] = {}

    def __getitem__(self, impl: str) -> RunningServer:
        srv = self.running.get(impl)
        if srv is None:
            srv = self.running[impl] = RunningServer(self.app, http=impl).start()
        return srv

    def stop(self) -> None:
        for srv in self.running.values():
            srv.stop()


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    import squall.server.serve

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(squall.server.serve, "TICK", 0.01)  # as the fast_tick fixture: quick stops
        started = Servers()
        try:
            yield started
        finally:
            started.stop()


# -- checking one vector ---------------------------------------------------------------


def next_final(client: RawClient, method: str = "GET") -> bytes:
    """The next final response (1xx interim responses skipped); HEAD has no body."""
    while True:
        raw = client.head_only() if method == "HEAD" else client.response()
        if not re.match(rb"HTTP/1\.1 1\d\d ", raw):
            return raw


def check_echo(raw: bytes, expected: Req) -> None:
    method, path, body = expected
    assert raw, f"no response for {expected!r}: the connection closed"
    resp = parse_response(raw)
    assert resp.status == 200, raw
    if method == "HEAD":
        assert resp.body == b"", raw
    else:
        assert resp.body == echo(method, path, body), raw


def run_vector(servers: Servers, impl: str, raw: bytes, outcome: Refused | Parsed) -> None:
    srv = servers[impl]
    client = srv.client()
    try:
        port = client.sock.getsockname()[1]
        client.send(raw + CANARY)
        if isinstance(outcome, Refused):
            check_refused(client, outcome)
            assert servers.app.seen.get(port, []) == list(outcome.seen)
        elif outcome.close:
            for i, expected in enumerate(outcome.seen):
                answer = next_final(client, expected[0])
                check_echo(answer, expected)
                if i == len(outcome.seen) - 1:
                    assert parse_response(answer).header("connection") == "close"
            assert client.read_until_closed() == b"", "the canary was answered"
            assert servers.app.seen.get(port, []) == list(outcome.seen)
        else:
            for expected in outcome.seen:
                check_echo(next_final(client, expected[0]), expected)
            check_echo(next_final(client), CANARY_REQ)
            # nothing else is queued: the next answer is the one to /end, then the close
            client.send(END)
            rest = client.read_until_closed()
            check_echo(rest, END_REQ)
            assert parse_response(rest).header("connection") == "close"
            assert servers.app.seen.get(port, []) == [*outcome.seen, CANARY_REQ, END_REQ]
    finally:
        client.close()


def check_refused(client: RawClient, outcome: Refused) -> None:
    """The requests before the refusal are answered, then the refusal, then the close."""
    for expected in outcome.seen:
        check_echo(next_final(client, expected[0]), expected)
    raw = next_final(client)
    assert raw, "the connection closed without an answer"
    refusal = parse_response(raw)
    assert refusal.status in outcome.statuses, raw
    assert refusal.header("connection") == "close", raw
    assert refusal.complete, raw
    # nothing follows (the canary is not answered) and the server closes (5 s timeout)
    assert client.read_until_closed() == b""


@pytest.mark.parametrize(("impl", "raw", "outcome", "rfc"), _params(VECTORS))
def test_smuggling_vector(servers: Servers, impl: str, raw: bytes, outcome: Any, rfc: str) -> None:
    check_vector(servers, impl, raw, outcome, rfc)


@pytest.mark.parametrize(("impl", "raw", "outcome", "rfc"), _params(CVE_2025_43859))
def test_cve_2025_43859_chunk_data_without_crlf(
    servers: Servers, impl: str, raw: bytes, outcome: Any, rfc: str
) -> None:
    check_vector(servers, impl, raw, outcome, rfc)


def check_vector(servers: Servers, impl: str, raw: bytes, outcome: Any, rfc: str) -> None:
    try:
        run_vector(servers, impl, raw, outcome)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nstrict reading: {rfc}\nsent: {raw!r}") from None


def test_vector_table_is_well_formed() -> None:
    ids = [v[0] for v in VECTORS + CVE_2025_43859]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 80
    for _, raw, outcome, rfc in VECTORS + CVE_2025_43859:
        assert isinstance(raw, bytes)
        assert isinstance(outcome, (Refused, Parsed))
        assert rfc
        assert "\n" not in rfc
        if isinstance(outcome, Refused):
            assert all(400 <= s < 500 or s in (501, 505) for s in outcome.statuses)
    for impl, vid in XFAIL:
        assert impl in HTTP_IMPLS
        assert vid in ids


# -- absolute-form: what the scope gets ------------------------------------------------


def scopes_for(servers: Servers, impl: str, raw: bytes) -> list[dict[str, Any]]:
    client = servers[impl].client()
    try:
        port = client.sock.getsockname()[1]
        client.send(raw)
        assert parse_response(client.read_until_closed()).status == 200
        return servers.app.scopes[port]
    finally:
        client.close()


ABSOLUTE = (
    b"GET http://evil.example/x?q=1 HTTP/1.1\r\nHost: good.example\r\nConnection: close\r\n\r\n"
)


@pytest.mark.parametrize("impl", HTTP_IMPLS)
def test_absolute_form_target_scope_path(servers: Servers, impl: str) -> None:
    """The path and query come from the absolute-form target; the authority is not a path."""
    (scope,) = scopes_for(servers, impl, ABSOLUTE)
    assert scope["path"] == "/x"
    assert scope["raw_path"] == b"/x"
    assert scope["query_string"] == b"q=1"


@pytest.mark.parametrize("impl", HTTP_IMPLS)
def test_absolute_form_target_authority_replaces_host(servers: Servers, impl: str) -> None:
    (scope,) = scopes_for(servers, impl, ABSOLUTE)
    hosts = [value for name, value in scope["headers"] if name == b"host"]
    assert hosts == [b"evil.example"]


# -- CVE-2020-7695: CR/LF/NUL from the app never reach the wire ---------------------------

INJECTED = [
    ("value_bare_lf", b"x-a", b"a\nx-injected: yes"),
    ("value_bare_cr", b"x-a", b"a\rx-injected: yes"),
    ("value_crlf_crlf", b"x-a", b"a\r\n\r\nx-injected: yes"),
    ("value_nul", b"x-a", b"a\x00x-injected: yes"),
    ("name_bare_lf", b"x-a\nx-injected", b"yes"),
    ("name_bare_cr", b"x-a\rx-injected", b"yes"),
    ("name_nul", b"x-a\x00x-injected", b"yes"),
]


@pytest.mark.parametrize("more_body", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize(("name", "value"), [c[1:] for c in INJECTED], ids=[c[0] for c in INJECTED])
def test_cve_2020_7695_response_header_injection(serve, http_impl, name, value, more_body):
    """A bad header name or value becomes a 500, whether or not the body streams."""

    async def app(scope, receive, send):
        headers = [(b"x-fine", b"1"), (name, value)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"part", "more_body": more_body})
        if more_body:
            await send({"type": "http.response.body", "body": b""})

    srv = serve(app, http=http_impl)
    c = srv.client()
    c.send(request("GET", "/") + CANARY)
    raw = c.read_until_closed()
    assert b"x-injected" not in raw
    assert b"x-fine" not in raw  # nothing of the bad head was sent
    assert b"\x00" not in raw
    resp = parse_response(raw)
    assert resp.status == 500
    assert resp.header("connection") == "close"
    assert raw.count(b"HTTP/1.1 ") == 1  # and the canary was not answered


def test_cve_2020_7695_early_hint_injection(serve, http_impl):
    """A 103's Link values are checked like response headers: a 500, no 103 on the wire."""

    async def app(scope, receive, send):
        link = b"</a.css>; rel=preload\r\nx-injected: yes"
        await send({"type": "http.response.early_hint", "links": [link]})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x"})

    srv = serve(app, http=http_impl)
    c = srv.client()
    c.send(request("GET", "/"))
    raw = c.read_until_closed()
    assert b"x-injected" not in raw
    assert not raw.startswith(b"HTTP/1.1 103")
    resp = parse_response(raw)
    assert resp.status == 500
    assert resp.header("connection") == "close"


def test_cve_2020_7695_trailer_injection(serve, http_impl):
    """A bad trailer comes after the head: the response is cut short, the bytes never sent."""

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [], "trailers": True})
        await send({"type": "http.response.body", "body": b"data"})
        await send(
            {"type": "http.response.trailers", "headers": [(b"x-t", b"1\r\nx-injected: yes")]}
        )

    srv = serve(app, http=http_impl)
    c = srv.client()
    c.send(request("GET", "/", headers=[("TE", "trailers")]) + CANARY)
    raw = c.read_until_closed()
    assert b"x-injected" not in raw
    resp = parse_response(raw)
    assert resp.status == 200
    assert resp.header("transfer-encoding") == "chunked"
    assert not resp.complete  # no last chunk: the client sees a broken response
    assert raw.count(b"HTTP/1.1 ") == 1


# -- CVE-2020-7694: request bytes never reach the logs raw --------------------------------


def control_characters(text: str) -> list[str]:
    """C0 controls (HTAB included) and DEL. C1 (U+0080-U+009F) is left out: those come only
    from obs-text decoded as latin-1, and a known gap of escape_for_log tracked elsewhere."""
    return [ch for ch in text if unicodedata.category(ch) == "Cc" and ord(ch) < 0x80]


RAW_CONTROLS = {
    "path_esc": b"GET /\x1b[31mred HTTP/1.1\r\nHost: x\r\n\r\n",
    "path_bel_nul": b"GET /a\x07\x00b HTTP/1.1\r\nHost: x\r\n\r\n",
    "query_esc": b"GET /q?a=\x1b[2J HTTP/1.1\r\nHost: x\r\n\r\n",
    "query_del": b"GET /q?a=\x7f HTTP/1.1\r\nHost: x\r\n\r\n",
    "method_esc": b"G\x1bET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "version_esc": b"GET / HTTP/1.1\x1b[0m\r\nHost: x\r\n\r\n",
    "user_agent_esc": b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: \x1b[31mfake\x07\r\n\r\n",
    "referer_lf": b"GET / HTTP/1.1\r\nHost: x\r\nReferer: a\nINFO: fake line\r\n\r\n",
    "header_name_esc": b"GET / HTTP/1.1\r\nHost: x\r\nX-\x1b[2J: 1\r\n\r\n",
}
ACCESS_FORMAT = '%(h)s "%(r)s" %(s)s "%(f)s" "%(a)s" %({x-note}i)s'


@pytest.mark.parametrize("raw", list(RAW_CONTROLS.values()), ids=list(RAW_CONTROLS))
def test_cve_2020_7694_raw_control_bytes_refused_and_never_logged(serve, http_impl, caplog, raw):
    """Raw control bytes in the request line or a header: a 400, and no log line carries them."""
    caplog.set_level(logging.INFO)
    srv = serve(
        Recorder(),
        http=http_impl,
        log_config=PROPAGATE_LOGS,
        log_level="info",
        access_log_format=ACCESS_FORMAT,
    )
    c = srv.client()
    c.send(raw)
    resp = parse_response(c.read_until_closed())
    assert resp.status == 400  # the refusal is logged before it is written
    squall_records = [r for r in caplog.records if r.name.startswith("squall")]
    assert squall_records, "the refusal is logged"
    for record in squall_records:
        texts = [record.getMessage(), str(record.__dict__.get("access_line", ""))]
        for text in texts:
            assert control_characters(text) == [], (record.name, text)
    assert [r for r in squall_records if r.name == "squall.access"] == []  # no app call


def test_cve_2020_7694_header_atoms_escaped(serve, http_impl, caplog):
    """Legal but unsafe bytes (HTAB in headers, encoded controls in the path) are escaped."""
    caplog.set_level(logging.INFO)
    srv = serve(
        Recorder(),
        http=http_impl,
        log_config=PROPAGATE_LOGS,
        log_level="info",
        access_log_format=ACCESS_FORMAT,
    )
    c = srv.client()
    c.send(
        b"GET /p%1b[31m%0d%0aINFO:%20fake%07?q=%1b%0a HTTP/1.1\r\nHost: x\r\n"
        b"User-Agent: agent\tfake\r\nReferer: ref\t\tx\r\nX-Note: \tnote\tend\r\n\r\n"
    )
    assert parse_response(c.response()).status == 200
    # the access line is written after the response: wait for it
    wait_until(lambda: any(r.name == "squall.access" for r in caplog.records), what="access line")
    (record,) = [r for r in caplog.records if r.name == "squall.access"]
    line = record.__dict__["access_line"]
    message = record.getMessage()
    for text in (line, message):
        assert control_characters(text) == [], text
    assert '"agent\\x09fake"' in line
    assert '"ref\\x09\\x09x"' in line
    assert line.endswith("note\\x09end")
    assert "fake" in message  # the request stays recognisable
