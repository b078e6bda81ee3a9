"""Bugs the fuzzers found, reproduced and fixed: each test keeps its fix in place.

A new finding is added here as a strict xfail until src/ is fixed.
"""

from __future__ import annotations

import pytest

from squall.asgi.scope import ConnInfo, http_scope
from squall.protocols.http1.backend_h11 import H11HTTP1
from squall.protocols.http1.backend_httptools import HttptoolsHTTP1
from squall.protocols.http1.base import HTTP1
from squall.protocols.http1.head import _HOST_VALUE, ParseError
from tests.unit._h1 import Recorder

GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def status(backend: type[HTTP1], chunks: list[bytes]) -> int | None:
    proto = backend(Recorder())
    try:
        for chunk in chunks:
            proto.feed(chunk)
    except ParseError as exc:
        return exc.status
    return None


# The status for a method llhttp does not know is chosen on the whole request
# line, wherever the reads split it and whatever came before it.
UNKNOWN_METHOD = {
    # the request line split across two reads: the tail alone does not match
    "split-read": ([b"BR", b"EW / HTTP/1.1\r\nHost: x\r\n\r\n"], 501),
    # a CR that llhttp skips before the request line: the regex does not
    "leading-cr": ([b"\r*GET / HTTP/1.1\r\nHost: x\r\n\r\n"], 501),
    # garbage pipelined after a valid request: the regex matches the first request
    "pipelined-garbage": ([GET + b"\x01\x02garbage\r\n\r\n"], 400),
}


@pytest.mark.parametrize(("chunks", "expected"), UNKNOWN_METHOD.values(), ids=UNKNOWN_METHOD.keys())
def test_httptools_status_for_a_bad_method_does_not_depend_on_the_read(
    chunks: list[bytes], expected: int
) -> None:
    assert status(H11HTTP1, chunks) == expected  # h11 answers the same for any split
    assert status(H11HTTP1, [b"".join(chunks)]) == expected
    assert status(HttptoolsHTTP1, [b"".join(chunks)]) == expected
    assert status(HttptoolsHTTP1, chunks) == expected


@pytest.mark.parametrize(
    "line",
    [
        b"GET x",
        b"GET x/y",
        b"GET ?q",
        b"GET :http://a/",
        b"CONNECT example.org:44#",
        b"CONNECT a|b:443",
        b'GET http://"example.org/',
        b"GET http://ex<a>mple.org/",
    ],
)
def test_h11_refuses_a_target_in_none_of_the_four_forms(line: bytes) -> None:
    data = line + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    assert status(HttptoolsHTTP1, [data]) == 400
    assert status(H11HTTP1, [data]) == 400


@pytest.mark.parametrize("ext", [b';a=1"b"', b';ext=1"q=;x y"'])
def test_httptools_refuses_a_malformed_chunk_extension(ext: bytes) -> None:
    data = (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5"
        + ext
        + b"\r\nhello\r\n0\r\n\r\n"
    )
    assert status(H11HTTP1, [data]) == 400
    assert status(HttptoolsHTTP1, [data]) == 400


def test_connection_trailer_same_on_both_backends() -> None:
    data = (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\nConnection: close\r\n\r\n"
        b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    outcomes = []
    for backend in (HttptoolsHTTP1, H11HTTP1):
        rec = Recorder()
        try:
            backend(rec).feed(data)
        except ParseError as exc:
            outcomes.append((rec.merged(), exc.status))
        else:
            outcomes.append((rec.merged(), None))
    assert outcomes[0] == outcomes[1]


# The ASGI scope of an absolute-form request (src/squall/asgi/scope.py), reached
# with targets from the fuzzers that both parsers accept.


def scope_host(target: bytes) -> bytes:
    """The host header the app sees for ``GET target`` with ``Host: good``."""
    rec = Recorder()
    HttptoolsHTTP1(rec).feed(b"GET " + target + b" HTTP/1.1\r\nHost: good\r\n\r\n")
    scope = http_scope(rec.heads[0], ConnInfo(None, None, "http", False), "", {})
    return dict(scope["headers"])[b"host"]


@pytest.mark.parametrize("target", [b"http://[zz]/", b"http://[::1/", b"http://a[b]/"])
def test_bad_ip_literal_in_absolute_form_is_a_parse_error(target: bytes) -> None:
    with pytest.raises(ParseError) as info:
        scope_host(target)
    assert info.value.status == 400


@pytest.mark.parametrize("target", [b"http://a:b:c/", b"http://a:80:80/"])
def test_absolute_form_authority_obeys_the_host_rules(target: bytes) -> None:
    try:
        host = scope_host(target)
    except ParseError as exc:
        assert exc.status == 400
    else:
        assert _HOST_VALUE(host) is not None, host
