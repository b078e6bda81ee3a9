"""Property tests for the two HTTP/1.1 parser backends (httptools and h11).

* Any bytes, in any split: ``feed`` raises nothing but ParseError (with a
  status the owner can answer), and the calls it made are well ordered.
* Valid requests, generated and serialized here, pipelined and split anywhere:
  both backends make exactly the calls the requests describe, the same as fed
  whole (a differential test of httptools against h11).
* Valid requests with a few bytes changed: the atheris ``h1`` check (the same
  calls and status whole and in pieces; the same calls, refused or not, on both
  backends, apart from the divergences that harness lists as accepted or open).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from squall.protocols.http1.base import HTTP1
from squall.protocols.http1.head import ParseError
from tests.fuzz._harness import targets
from tests.fuzz._split import mutated, splits
from tests.unit._h1 import BACKENDS, Recorder

STATUSES = {400, 414, 417, 431, 501, 505}
TOKEN = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# header names with a meaning for framing or the connection: generated on purpose only
SPECIAL = {
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "expect",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-connection",
    "http2-settings",
}
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH", "PROPFIND"]
PCHAR = "abcXYZ019-._~!$&'()*+,;=:@%"
OWS = [b"", b" ", b"  ", b"\t", b" \t "]


@dataclass
class Request:
    method: str
    target: bytes
    version: str
    headers: list[tuple[bytes, bytes, bytes]]  # (name as sent, value, OWS around it)
    body: bytes = b""
    chunks: list[tuple[bytes, bytes]] | None = None  # (data, extension) when chunked
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)
    last_chunk_ext: bytes = b""
    leading_crlf: bytes = b""  # empty lines before the request line (RFC 9112 2.2)

    def serialize(self) -> bytes:
        out = [
            self.leading_crlf,
            b"%s %s HTTP/%s\r\n" % (self.method.encode(), self.target, self.version.encode()),
        ]
        for name, value, ows in self.headers:
            out.append(name + b":" + ows + value + ows.replace(b"\t", b" ") + b"\r\n")
        out.append(b"\r\n")
        if self.chunks is None:
            out.append(self.body)
        else:
            for data, ext in self.chunks:
                out.append(b"%x%s\r\n%s\r\n" % (len(data), ext, data))
            out.append(b"0" + self.last_chunk_ext + b"\r\n")
            out.extend(name + b": " + value + b"\r\n" for name, value in self.trailers)
            out.append(b"\r\n")
        return b"".join(out)

    def _header(self, name: bytes) -> bytes | None:
        for sent, value, _ in self.headers:
            if sent.lower() == name:
                return value
        return None

    @property
    def keep_alive(self) -> bool:
        conn = self._header(b"connection")
        tokens = [t.strip().lower() for t in conn.split(b",")] if conn is not None else []
        if self.method == "CONNECT" or (
            self.upgrade is not None and (self.body or self.chunks is not None)
        ):
            return False
        if self.version == "1.1":
            return b"close" not in tokens
        return b"keep-alive" in tokens and b"close" not in tokens

    @property
    def upgrade(self) -> bytes | None:
        conn = self._header(b"connection") or b""
        up = self._header(b"upgrade")
        if up is None or b"upgrade" not in [t.strip().lower() for t in conn.split(b",")]:
            return None
        return up.lower()

    def expected_calls(self) -> list[tuple[Any, ...]]:
        headers = [(name.lower(), value) for name, value, _ in self.headers]
        calls: list[tuple[Any, ...]] = [
            ("request", self.method, self.target, self.version, headers)
        ]
        if self.body:
            calls.append(("body", self.body))
        calls.append(("end",))
        return calls

    def expected_head(self) -> tuple[Any, ...]:
        cl = self._header(b"content-length")
        expect = self._header(b"expect")
        return (
            self.keep_alive,
            self.chunks is not None,
            int(cl) if cl is not None else 0,
            expect is not None and self.version == "1.1",
            self.upgrade,
        )


def head_summary(rec: Recorder) -> list[tuple[Any, ...]]:
    return [
        (h.keep_alive, h.chunked, h.content_length, h.expect_continue, h.upgrade) for h in rec.heads
    ]


# -- generators --------------------------------------------------------------

header_names = st.text(TOKEN, min_size=1, max_size=16).filter(lambda n: n.lower() not in SPECIAL)
# a field value: visible ASCII, obs-text, and inner spaces and tabs
_VCHAR = st.sampled_from([bytes([b]) for b in [*range(0x21, 0x7F), *range(0x80, 0x100)]])
header_values = st.one_of(
    st.just(b""),
    st.lists(st.one_of(_VCHAR, st.sampled_from([b" ", b"\t"])), min_size=1, max_size=24)
    .map(b"".join)
    .map(lambda v: v.strip(b" \t")),
)
chunk_ext = st.one_of(
    st.just(b""),
    st.builds(
        lambda name, value: b";" + name.encode() + value,
        st.text(TOKEN, min_size=1, max_size=6),
        st.one_of(
            st.just(b""),
            st.text(TOKEN, min_size=1, max_size=6).map(lambda v: b"=" + v.encode()),
            st.binary(max_size=6)
            .map(lambda v: bytes(c for c in v if 0x20 <= c < 0x7F and c not in b'"\\'))
            .map(lambda v: b'="' + v + b'"'),
        ),
    ),
)


def _random_case(draw: st.DrawFn, name: str) -> bytes:
    flips = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    return "".join(c.upper() if f else c.lower() for c, f in zip(name, flips, strict=True)).encode()


@st.composite
def requests(draw: st.DrawFn, last: bool = False) -> Request:
    """One valid request; ``last`` allows one that ends the connection."""
    version = draw(st.sampled_from(["1.1", "1.1", "1.1", "1.0"]))
    method = draw(st.sampled_from(METHODS + (["CONNECT"] if last and version == "1.1" else [])))
    if method == "CONNECT":
        target = b"example.org:443"
    elif method == "OPTIONS" and draw(st.booleans()):
        target = b"*"
    else:
        path = draw(st.lists(st.text(PCHAR, max_size=8), min_size=1, max_size=4))
        target = ("/" + "/".join(path)).encode().replace(b"%", b"%25")
        if draw(st.booleans()):
            target += b"?" + draw(st.text(PCHAR + "/?", max_size=12)).encode().replace(b"%", b"%25")
        if draw(st.integers(0, 9)) == 0:
            target = b"http://example.org" + target
    regular = draw(
        st.lists(st.tuples(header_names, header_values, st.sampled_from(OWS)), max_size=6)
    )
    headers = [(_random_case(draw, n), v, ows) for n, v, ows in regular]

    def add(name: str, value: bytes) -> None:
        pos = draw(st.integers(0, len(headers)))
        headers.insert(pos, (_random_case(draw, name), value, draw(st.sampled_from(OWS))))

    if version == "1.1" or draw(st.booleans()):
        add("host", draw(st.sampled_from([b"example.org", b"localhost:8000", b"[::1]", b""])))
    conn_values = [b"keep-alive"] if version == "1.0" else []
    if last and draw(st.booleans()):
        conn_values.append(b"close")
    body = b""
    chunks = None
    trailers: list[tuple[bytes, bytes]] = []
    last_ext = b""
    framing = draw(
        st.sampled_from(["none", "length", "chunked"] if version == "1.1" else ["none", "length"])
    )
    if method == "CONNECT":
        framing = "none"
    if framing == "length":
        body = draw(st.binary(max_size=300))
        zeros = b"0" * draw(st.integers(0, 2))
        add("content-length", zeros + b"%d" % len(body))
    elif framing == "chunked":
        chunks = draw(
            st.lists(st.tuples(st.binary(min_size=1, max_size=80), chunk_ext), max_size=4)
        )
        body = b"".join(data for data, _ in chunks)
        last_ext = draw(chunk_ext)
        # in lowercase: h11 lowercases the value, llhttp keeps it (an accepted difference,
        # tests/unit/test_http1_parsing.py::test_transfer_encoding_value_delivered)
        add("transfer-encoding", b"chunked")
        trailers = draw(
            st.lists(
                st.tuples(header_names.map(str.encode), header_values),
                max_size=2,
            )
        )
    if version == "1.1" and draw(st.integers(0, 4)) == 0:
        add("expect", b"100-continue")
    if version == "1.1" and draw(st.integers(0, 4)) == 0 and method != "CONNECT":
        # an upgrade the server does not make: with a body, the connection ends after it
        conn_values.append(b"Upgrade")
        add("upgrade", draw(st.sampled_from([b"websocket", b"h2c", b"foo/2"])))
    if conn_values and (draw(st.booleans()) or b"close" in conn_values or version == "1.0"):
        add("connection", b", ".join(conn_values))
    leading = draw(st.sampled_from([b"", b"", b"", b"\r\n"]))
    return Request(method, target, version, headers, body, chunks, trailers, last_ext, leading)


@st.composite
def pipelines(draw: st.DrawFn) -> list[Request]:
    """Requests sent back to back; only the last may end the connection."""
    reqs = draw(st.lists(requests(), min_size=0, max_size=2))
    reqs.append(draw(requests(last=True)))
    out = []
    for req in reqs:
        out.append(req)
        if not req.keep_alive:
            break
    return out


def serialize(reqs: list[Request]) -> bytes:
    return b"".join(r.serialize() for r in reqs)


valid_bytes = pipelines().map(serialize)


# -- helpers -----------------------------------------------------------------


def run(backend: type[HTTP1], chunks: list[bytes]) -> tuple[Recorder, int | None]:
    """Feed ``chunks``; return the calls and the ParseError status (None if none)."""
    rec = Recorder()
    proto = backend(rec)
    try:
        for chunk in chunks:
            proto.feed(chunk)
    except ParseError as exc:
        assert exc.status in STATUSES, exc.status
        assert isinstance(exc.reason, str)
        return rec, exc.status
    proto.feed_eof()
    return rec, None


def check_order(rec: Recorder) -> None:
    """on_request, then on_body any number of times, then on_request_end; repeated."""
    in_request = False
    for call in rec.calls:
        if call[0] == "request":
            assert not in_request, rec.calls
            in_request = True
        else:
            assert in_request, rec.calls
            if call[0] == "end":
                in_request = False
            else:
                assert isinstance(call[1], bytes)


# -- properties --------------------------------------------------------------

noise = st.one_of(st.binary(max_size=600), mutated(valid_bytes, max_edits=6))


@given(data=noise, backend=st.sampled_from(BACKENDS), how=st.data())
def test_any_bytes_raise_only_parse_error(
    data: bytes, backend: type[HTTP1], how: st.DataObject
) -> None:
    chunks = how.draw(splits(data))
    rec, _ = run(backend, chunks)
    check_order(rec)


@given(reqs=pipelines(), how=st.data())
def test_valid_requests_same_calls_on_both_backends_in_any_split(
    reqs: list[Request], how: st.DataObject
) -> None:
    data = serialize(reqs)
    expected = [call for req in reqs for call in req.expected_calls()]
    heads = [req.expected_head() for req in reqs]
    chunks = how.draw(splits(data))
    for backend in BACKENDS:
        for pieces in ([data], chunks):
            rec, status = run(backend, pieces)
            where = (backend.backend, len(pieces), data)
            assert status is None, where
            assert rec.merged() == expected, where
            assert head_summary(rec) == heads, where


@given(data=st.one_of(mutated(valid_bytes, max_edits=4), st.binary(max_size=200)))
def test_mutated_requests_same_outcome_on_both_backends(data: bytes) -> None:
    targets.h1(data)
