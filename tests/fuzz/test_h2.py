"""Property tests for the HTTP/2 protocol object.

* Any bytes after the preface (random bytes, random frames, mutated valid
  connections), in any split: ``feed`` never raises; the events, the bytes
  queued to send and ``closed`` are the same as fed whole; a connection error
  leaves GOAWAY as the last frame queued, and nothing is read after it.
* Valid connections (preface, SETTINGS, requests with header blocks from
  ``hpack.Encoder`` split over CONTINUATION, padded and prioritized frames,
  DATA, trailers, WINDOW_UPDATE, PING, PRIORITY, RST_STREAM, unknown frame
  types), in any split: exactly the requests, body data and resets that were
  sent come out, and no GOAWAY or RST_STREAM is queued.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import hpack
from hypothesis import given
from hypothesis import strategies as st

from squall.protocols.http2 import (
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEADERS,
    PADDED,
    PING,
    PREFACE,
    PRIORITY,
    PRIORITY_FLAG,
    RST_STREAM,
    SETTINGS,
    WINDOW_UPDATE,
    H2Limits,
    H2Protocol,
)
from tests.fuzz._harness import targets
from tests.fuzz._split import mutated, splits

ACK = 0x1


def frame(ftype: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    size = len(payload)
    return struct.pack(">HBBBL", size >> 8, size & 0xFF, ftype, flags, stream_id) + payload


def settings_frame(pairs: list[tuple[int, int]]) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HL", k, v) for k, v in pairs))


def read_frames(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """(type, flags, stream id, payload) of each whole frame in ``data``."""
    out = []
    pos = 0
    while pos < len(data):
        hi, lo, ftype, flags, stream_id = struct.unpack_from(">HBBBL", data, pos)
        length = (hi << 8) | lo
        out.append((ftype, flags, stream_id, data[pos + 9 : pos + 9 + length]))
        pos += 9 + length
    assert pos == len(data)
    return out


Recorder = targets.H2Recorder


def run(chunks: list[bytes]) -> tuple[list[tuple[Any, ...]], bytes, bool]:
    rec = Recorder()
    proto = H2Protocol(rec, H2Limits())
    out = [proto.data_to_send()]
    for chunk in chunks:
        proto.feed(chunk)
        out.append(proto.data_to_send())
    sent = b"".join(out)
    if proto.closed:  # nothing is read after a connection error
        calls = list(rec.calls)
        proto.feed(PREFACE + settings_frame([]) + frame(PING, 0, 0, b"12345678"))
        assert rec.calls == calls
        assert proto.data_to_send() == b""
    return rec.calls, sent, proto.closed


# -- generators --------------------------------------------------------------

TOKEN_LOWER = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
FORBIDDEN = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "content-length",
}
field_names = st.one_of(
    st.sampled_from(["cookie", "cookie", "host", "user-agent", "accept", "x-forwarded-for"]),
    st.text(TOKEN_LOWER, min_size=1, max_size=12).filter(lambda n: n not in FORBIDDEN),
).map(str.encode)
field_values = st.binary(max_size=30).map(
    lambda v: bytes(c for c in v if c not in b"\x00\r\n").strip(b" \t")
)
# a valid SETTINGS parameter from the client
settings_pairs = st.lists(
    st.one_of(
        st.tuples(st.just(1), st.integers(0, 1 << 16)),  # HEADER_TABLE_SIZE
        st.tuples(st.just(2), st.integers(0, 1)),  # ENABLE_PUSH
        st.tuples(st.just(3), st.integers(0, 1000)),  # MAX_CONCURRENT_STREAMS
        st.tuples(st.just(4), st.integers(0, (1 << 31) - 1 - 100_000)),  # INITIAL_WINDOW_SIZE
        st.tuples(st.just(5), st.integers(16384, (1 << 24) - 1)),  # MAX_FRAME_SIZE
        st.tuples(st.just(6), st.integers(0, 1 << 20)),  # MAX_HEADER_LIST_SIZE
        st.tuples(st.just(0x2A), st.integers(0, (1 << 32) - 1)),  # unknown: ignored
    ),
    max_size=4,
)


@dataclass
class Stream:
    stream_id: int
    # frames to send, each unit contiguous; a header block is encoded as it is sent,
    # so that the encoder's dynamic table goes in step with the server's
    units: list[bytes | Callable[[], bytes]] = field(default_factory=list)
    # the call each unit makes (None: none)
    expected: list[tuple[Any, ...] | None] = field(default_factory=list)


def padding(draw: st.DrawFn, payload: bytes) -> tuple[int, bytes]:
    if draw(st.integers(0, 3)):
        return 0, payload
    pad = draw(st.integers(0, 20))
    return PADDED, bytes((pad,)) + payload + b"\x00" * pad


def header_block_frames(
    draw: st.DrawFn, stream_id: int, block: bytes, end_stream: bool, prior: int
) -> bytes:
    """HEADERS (maybe padded, maybe with priority) and CONTINUATION frames for ``block``."""
    cuts = sorted(draw(st.lists(st.integers(0, len(block)), max_size=3)))
    pieces = [block[a:b] for a, b in pairwise([0, *cuts, len(block)])]
    flags = END_STREAM if end_stream else 0
    first = pieces[0]
    if draw(st.booleans()):
        flags |= PRIORITY_FLAG
        dependency = draw(st.sampled_from([0, prior]))
        exclusive = draw(st.sampled_from([0, 0x80000000]))
        first = struct.pack(">LB", dependency | exclusive, draw(st.integers(0, 255))) + first
    pad_flag, first = padding(draw, first)
    flags |= pad_flag
    if len(pieces) == 1:
        return frame(HEADERS, flags | END_HEADERS, stream_id, first)
    out = [frame(HEADERS, flags, stream_id, first)]
    for i, piece in enumerate(pieces[1:], 2):
        out.append(frame(CONTINUATION, END_HEADERS if i == len(pieces) else 0, stream_id, piece))
    return b"".join(out)


@st.composite
def request_stream(draw: st.DrawFn, stream_id: int, prior: int, encoder: hpack.Encoder) -> Stream:
    """One stream's frames and the calls each unit should make."""
    stream = Stream(stream_id)
    method = draw(st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"BREW"]))
    path = b"/" + draw(st.text("abc/?=&%-._~", max_size=16)).encode()
    authority = draw(st.one_of(st.none(), st.sampled_from([b"example.org", b"[::1]:8443"])))
    pseudo = [(b":method", method), (b":scheme", draw(st.sampled_from([b"https", b"http"])))]
    pseudo.append((b":path", path))
    if authority is not None:
        pseudo.append((b":authority", authority))
    pseudo = draw(st.permutations(pseudo))
    regular = draw(st.lists(st.tuples(field_names, field_values), max_size=6))
    body = draw(st.lists(st.binary(max_size=200), max_size=4))
    total = sum(map(len, body))
    if draw(st.booleans()):
        regular.insert(draw(st.integers(0, len(regular))), (b"content-length", b"%d" % total))
    end = draw(
        st.sampled_from(["data", "trailers", "open", "reset"] + (["headers"] if not total else []))
    )
    # the head as request_head makes it
    cookies = [v for n, v in regular if n == b"cookie"]
    fields = [
        (n, v)
        for n, v in regular
        if n != b"cookie" and not (n == b"host" and authority is not None)
    ]
    if cookies:
        fields.append((b"cookie", b"; ".join(cookies)))
    if authority is not None:
        fields.insert(0, (b"host", authority))
    cl = next((int(v) for n, v in regular if n == b"content-length"), -1)
    sensitive = [(n, v, draw(st.integers(0, 4)) == 0) for n, v in pseudo + regular]
    block = encoder.encode(sensitive, huffman=draw(st.booleans()))
    end_on_headers = end == "headers"
    stream.units.append(header_block_frames(draw, stream_id, block, end_on_headers, prior))
    stream.expected.append(
        ("request", stream_id, method.decode(), path, fields, cl, end_on_headers)
    )
    if end_on_headers:
        return stream
    for i, chunk in enumerate(body):
        last = end == "data" and i == len(body) - 1
        pad_flag, payload = padding(draw, chunk)
        stream.units.append(frame(DATA, pad_flag | (END_STREAM if last else 0), stream_id, payload))
        stream.expected.append(("data", stream_id, chunk, last))
        if draw(st.integers(0, 3)) == 0:  # the client gives the server room to answer
            increment = draw(st.integers(1, 1000))
            stream.units.append(frame(WINDOW_UPDATE, 0, stream_id, increment.to_bytes(4, "big")))
            stream.expected.append(None)
    if end == "data" and not body:
        stream.units.append(frame(DATA, END_STREAM, stream_id, b""))
        stream.expected.append(("data", stream_id, b"", True))
    elif end == "trailers":
        trailers = draw(st.lists(st.tuples(field_names, field_values), min_size=1, max_size=3))
        huffman = draw(st.booleans())
        stream.units.append(
            lambda: header_block_frames(
                draw, stream_id, encoder.encode(trailers, huffman=huffman), True, prior
            )
        )
        stream.expected.append(("data", stream_id, b"", True))
    elif end == "reset":
        code = draw(st.sampled_from([0, 1, 2, 5, 8, 0x1234]))
        stream.units.append(frame(RST_STREAM, 0, stream_id, code.to_bytes(4, "big")))
        stream.expected.append(("reset", stream_id))
    return stream


@st.composite
def connection_unit(draw: st.DrawFn) -> bytes:
    """A frame on the connection that makes no call on the owner."""
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return frame(PING, 0, 0, draw(st.binary(min_size=8, max_size=8)))
    if kind == 1:
        return frame(PING, ACK, 0, draw(st.binary(min_size=8, max_size=8)))
    if kind == 2:
        return frame(WINDOW_UPDATE, 0, 0, draw(st.integers(1, 10_000)).to_bytes(4, "big"))
    if kind == 3:
        return frame(SETTINGS, ACK, 0, b"")
    if kind == 4:
        stream_id = draw(st.integers(1, 99))
        dependency = draw(st.integers(0, 99).filter(lambda d: d != stream_id))
        return frame(PRIORITY, 0, stream_id, struct.pack(">LB", dependency, 16))
    # an extension frame type: ignored
    return frame(
        draw(st.integers(0x0A, 0xFF)),
        draw(st.integers(0, 255)),
        draw(st.integers(0, 9)),
        draw(st.binary(max_size=16)),
    )


@st.composite
def connections(draw: st.DrawFn) -> tuple[bytes, list[tuple[Any, ...]]]:
    """A valid client connection and the calls it must make, in order."""
    encoder = hpack.Encoder()
    if draw(st.booleans()):
        encoder.header_table_size = draw(st.integers(0, 4096))
    out = [PREFACE, settings_frame(draw(settings_pairs))]
    expected: list[tuple[Any, ...]] = []
    ids: list[tuple[int, int]] = []  # (stream id, the one opened before it)
    stream_id = 0
    for _ in range(draw(st.integers(0, 4))):
        prior = stream_id
        stream_id += 2 * draw(st.integers(1, 3)) - (0 if stream_id else 1)
        ids.append((stream_id, prior))
    streams: list[Stream] = []
    extra = draw(st.lists(connection_unit(), max_size=6))
    while True:
        ready = [s for s in streams if s.units]
        can_open = len(streams) < len(ids)
        choices = len(ready) + can_open + bool(extra)
        if not choices:
            break
        pick = draw(st.integers(0, choices - 1))
        if pick < len(ready):
            stream = ready[pick]
            unit = stream.units.pop(0)
            out.append(unit if isinstance(unit, bytes) else unit())
            call = stream.expected.pop(0)
            if call is not None:
                expected.append(call)
        elif can_open and pick == len(ready):
            # header blocks are encoded in the order sent: each stream is drawn as it opens
            stream = draw(request_stream(*ids[len(streams)], encoder))
            streams.append(stream)
            unit = stream.units.pop(0)
            assert isinstance(unit, bytes)
            out.append(unit)
            expected.append(stream.expected.pop(0))
        else:
            out.append(extra.pop(0))
    return b"".join(out), expected


# -- properties --------------------------------------------------------------

GET_BLOCK = hpack.Encoder().encode([(b":method", b"GET"), (b":path", b"/"), (b":scheme", b"http")])
random_frames = st.lists(
    st.builds(
        frame,
        st.integers(0, 10),
        st.integers(0, 255),
        st.sampled_from([0, 1, 2, 3, 5, 7, 0x7FFFFFFF, 0x80000001]),
        st.one_of(st.binary(max_size=40), st.just(GET_BLOCK)),
    ),
    max_size=12,
).map(lambda frames: PREFACE + settings_frame([]) + b"".join(frames))
noise = st.one_of(
    st.binary(max_size=300).map(lambda b: PREFACE + b),
    st.binary(max_size=40),
    random_frames,
    mutated(connections().map(lambda c: c[0]), max_edits=3),
)


@given(data=noise, how=st.data())
def test_any_bytes_never_raise(data: bytes, how: st.DataObject) -> None:
    chunks = how.draw(splits(data))
    calls, sent, closed = run(chunks)
    assert run([data]) == (calls, sent, closed)
    frames = read_frames(sent)
    if closed:
        assert frames[-1][0] == GOAWAY
    assert sum(f[0] == GOAWAY for f in frames) == closed


@given(conn=connections(), how=st.data())
def test_valid_connections_same_events_in_any_split(
    conn: tuple[bytes, list[tuple[Any, ...]]], how: st.DataObject
) -> None:
    data, expected = conn
    chunks = how.draw(splits(data))
    whole = run([data])
    calls, sent, closed = whole
    assert not closed, read_frames(sent)
    assert calls == expected
    assert not [f for f in read_frames(sent) if f[0] in (GOAWAY, RST_STREAM)]
    assert run(chunks) == whole
