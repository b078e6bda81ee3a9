"""Coverage-guided fuzz targets (atheris/libFuzzer) for Squall's sans-I/O protocols.

Usage::

    python fuzz/atheris_targets.py TARGET [libFuzzer options] [CORPUS_DIR ...]
    python fuzz/atheris_targets.py h2 .fuzz-work/h2 fuzz/corpus/h2 -max_total_time=60

Targets (seed corpora in ``fuzz/corpus/<target>/``):

* ``h1``: one request stream to both HTTP/1.1 backends, whole and cut in
  pieces: only ParseError, calls well ordered, the same calls and refusal
  either way and on both backends; the status of a refusal is not compared (see ``_h1_run``).
* ``h2``: a client connection (the preface is added unless the input starts
  with ``PRI``): ``feed`` never raises, the same events whole and in pieces.
* ``hpack``: one header block, decoded twice on one decoder: only HPACKError or
  HeaderListTooLarge; a decoded list re-encoded by ``hpack`` decodes the same.
* ``ws``: client frames, without and with permessage-deflate: ``feed`` never
  raises, the same events whole and in pieces.
* ``proxy``: the first bytes of a connection: only ProxyProtocolError; an
  accepted header is the same without what follows it, and needs all its bytes.
* ``conn_h1``: a client byte stream (HTTP/1.1 requests, upgrades to WebSocket
  or h2c and what follows them) served by a real Connection with each parser
  backend, real apps and a fake transport (``fuzz/conn_harness.py``): no
  exception, error log, hung task or read, write after close, and the output is
  a well-formed response stream.
* ``conn_h2``: the same for an HTTP/2 client (the preface is added unless the
  input starts with ``PRI``), by prior knowledge or over (fake) TLS with ALPN h2.

The two ``conn_`` targets step over the findings listed open in
``conn_harness.OPEN``; each run's timing and ending (EOF, lost, reset) and the
limits in force are drawn from the input's CRC (``conn_harness.fuzz_plan``),
so a crash input replays as it ran.

atheris is imported only when this file is run; the tests run each target on
the seed corpus without it (``tests/fuzz/test_corpus.py``). A failed check
raises AssertionError, which libFuzzer reports as a crash with its input.
"""

from __future__ import annotations

import importlib.util
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

# modules the fuzzer instruments for coverage feedback
INSTRUMENTED = ("squall", "h11", "hpack")


def _pieces(data: bytes) -> list[bytes]:
    """``data`` in pieces of a size drawn from the data itself (stable for one input)."""
    step = 1 + zlib.crc32(data) % 17
    return [data[i : i + step] for i in range(0, len(data), step)]


# -- HTTP/1.1 -----------------------------------------------------------------


class _H1Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def on_request(self, head: Any) -> None:
        headers = [
            (n, v.lower() if n == b"transfer-encoding" else v)  # h11 lowercases it: accepted
            for n, v in head.headers
        ]
        self.calls.append(("request", head.method, head.target, head.http_version, headers))

    def on_body(self, data: bytes) -> None:
        if data:
            if self.calls and self.calls[-1][0] == "body":
                self.calls[-1] = ("body", self.calls[-1][1] + bytes(data))
            else:
                self.calls.append(("body", bytes(data)))

    def on_request_end(self) -> None:
        self.calls.append(("end",))


def _h1_run(backend: Any, chunks: list[bytes]) -> tuple[list[tuple[Any, ...]], int | None, bool]:
    """The calls, whether a ParseError was raised, and whether a request is unfinished.

    Which status a refusal carries is not compared: a request with two faults
    may be refused for either, by llhttp even depending on where a read ends
    (it reports a field when the read ends, or when the next one starts), and
    httptools picks 400 or 501 for an unknown method by where the read began
    (an open bug, tests/fuzz/test_regressions.py).
    """
    from squall.protocols.http1.head import ParseError

    rec = _H1Recorder()
    proto = backend(rec)
    status = None
    try:
        for chunk in chunks:
            proto.feed(chunk)
    except ParseError as exc:
        assert exc.status in (400, 414, 417, 431, 501, 505), exc.status
        status = exc.status
    in_request = False
    for call in rec.calls:
        assert (call[0] == "request") != in_request, rec.calls
        in_request = call[0] != "end"
    pending = status is None and (proto.in_head or bool(rec.calls and rec.calls[-1][0] != "end"))
    return rec.calls, status is not None, pending


def h1(data: bytes) -> None:
    from squall.protocols.http1.backend_h11 import H11HTTP1
    from squall.protocols.http1.backend_httptools import HttptoolsHTTP1

    results = []
    for backend in (HttptoolsHTTP1, H11HTTP1):
        whole = _h1_run(backend, [data])
        assert _h1_run(backend, _pieces(data)) == whole, backend.backend
        results.append(whole)
    (a, refused_a, pending_a), (b, refused_b, pending_b) = results
    if (a, refused_a) == (b, refused_b):
        return
    # one refused what the other still waits for the rest of: llhttp refuses a bad
    # head field at once, h11 once the head is whole
    if (not refused_a and pending_a) or (not refused_b and pending_b):
        return
    raise AssertionError(f"httptools refused={refused_a} {a!r} != h11 refused={refused_b} {b!r}")


# -- HTTP/2 and HPACK ---------------------------------------------------------


class H2Recorder:
    """Records the calls an H2Protocol makes (also used by tests/fuzz/test_h2.py)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def on_request(self, stream_id: int, head: Any, end_stream: bool) -> None:
        self.calls.append(
            (
                "request",
                stream_id,
                head.method,
                head.target,
                list(head.headers),
                head.content_length,
                end_stream,
            )
        )

    def on_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        self.calls.append(("data", stream_id, bytes(data), end_stream))

    def on_stream_reset(self, stream_id: int) -> None:
        self.calls.append(("reset", stream_id))

    def on_stream_writable(self, stream_id: int) -> None:
        self.calls.append(("writable", stream_id))

    def on_refused_header_block(self, stream_id: int, status: int) -> None:
        self.calls.append(("refused", stream_id, status))

    def on_goaway(self) -> None:
        self.calls.append(("goaway",))


def _h2_run(chunks: list[bytes]) -> tuple[list[tuple[Any, ...]], bytes, bool]:
    from squall.protocols.http2 import H2Limits, H2Protocol

    rec = H2Recorder()
    proto = H2Protocol(rec, H2Limits())
    out = [proto.data_to_send()]
    for chunk in chunks:
        proto.feed(chunk)
        out.append(proto.data_to_send())
    return rec.calls, b"".join(out), proto.closed


def h2(data: bytes) -> None:
    from squall.protocols.http2 import GOAWAY, PREFACE

    if not data.startswith(b"PRI"):
        data = PREFACE + data
    whole = _h2_run([data])
    assert _h2_run(_pieces(data)) == whole
    _, sent, closed = whole
    if closed:  # the last frame queued is the GOAWAY
        pos = last = 0
        while pos < len(sent):
            last = pos
            pos += 9 + int.from_bytes(sent[pos : pos + 3], "big")
        assert sent[last + 3] == GOAWAY


def hpack(data: bytes) -> None:
    import hpack as reference

    from squall.protocols.http2.hpack import ENTRY_OVERHEAD, Decoder, HeaderListTooLarge, HPACKError

    decoder = Decoder()
    for _ in range(2):  # the second pass sees the table the first one left
        try:
            headers = decoder.decode(data, 1 << 16)
        except (HPACKError, HeaderListTooLarge):
            headers = None
        size = sum(len(n) + len(v) + ENTRY_OVERHEAD for n, v in decoder._entries)
        assert decoder._size == size <= decoder.max_size
        if headers is not None:
            block = reference.Encoder().encode(headers)
            assert Decoder().decode(block, 1 << 16) == headers


# -- WebSocket and PROXY protocol ---------------------------------------------


def _ws_run(chunks: list[bytes], deflate: Any) -> tuple[list[Any], bytes]:
    from squall.protocols.websocket.framing import WebSocketProtocol

    proto = WebSocketProtocol(deflate, 1 << 16)
    events: list[Any] = []
    out = []
    for chunk in chunks:
        events += proto.feed(chunk)
        out.append(proto.data_to_send())
    return events, b"".join(out)


def ws(data: bytes) -> None:
    from squall.protocols.websocket.framing import CLOSED, DeflateParams

    for deflate in (None, DeflateParams(False, False, 15, 15), DeflateParams(True, True, 9, 9)):
        whole = _ws_run([data], deflate)
        assert _ws_run(_pieces(data), deflate) == whole
        kinds = [kind for kind, _ in whole[0]]
        assert CLOSED not in kinds[:-1]


def proxy(data: bytes) -> None:
    from squall.protocols.proxy import ProxyProtocolError, parse

    try:
        result = parse(data)
    except ProxyProtocolError:
        return
    if result is None:
        return
    used = result[1]
    assert 0 < used <= len(data)
    again = parse(data[:used])
    assert again is not None
    assert (again[0].client, again[0].server, again[1]) == (
        result[0].client,
        result[0].server,
        used,
    )
    for cut in range(used):
        assert parse(data[:cut]) is None


# -- the whole connection ---------------------------------------------------------

CONN_HARNESS = "_squall_fuzz_conn_harness"  # the name tests/fuzz/_harness.py loads it under


def conn_harness() -> ModuleType:
    """``fuzz/conn_harness.py``, loaded once (and shared with the tests)."""
    module = sys.modules.get(CONN_HARNESS)
    if module is None:
        spec = importlib.util.spec_from_file_location(
            CONN_HARNESS, Path(__file__).with_name("conn_harness.py")
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[CONN_HARNESS] = module
        spec.loader.exec_module(module)
    return module


def conn_h1(data: bytes) -> None:
    harness = conn_harness()
    chunks = _pieces(data)
    for http in ("httptools", "h11"):
        harness.verify(harness.fuzz_plan(data, chunks, http=http), allow_open=True)


def conn_h2(data: bytes) -> None:
    from squall.protocols.http2 import PREFACE

    harness = conn_harness()
    if not data.startswith(b"PRI"):
        data = PREFACE + data
    alpn = "h2" if zlib.crc32(data) & 0x100 else None
    harness.verify(harness.fuzz_plan(data, _pieces(data), alpn=alpn), allow_open=True)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "h1": h1,
    "h2": h2,
    "hpack": hpack,
    "ws": ws,
    "proxy": proxy,
    "conn_h1": conn_h1,
    "conn_h2": conn_h2,
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(TARGETS)}}} [libFuzzer options]")
    target = TARGETS[sys.argv[1]]
    import atheris

    with atheris.instrument_imports(include=list(INSTRUMENTED)):
        import hpack as _hpack  # noqa: F401

        import squall.protocols.http1.backend_h11
        import squall.protocols.http1.backend_httptools
        import squall.protocols.http2.hpack
        import squall.protocols.http2.inbound  # with frames, flow and guard
        import squall.protocols.proxy
        import squall.protocols.websocket.framing

        if sys.argv[1].startswith("conn_"):
            import squall.config
            import squall.connection.state
            import squall.connection.transport  # with every handler, asgi and the protocols
            import squall.loading  # noqa: F401
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
