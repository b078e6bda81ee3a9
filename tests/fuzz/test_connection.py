"""Property tests for the whole connection: a real Connection, a fake transport, real apps.

The harness is ``fuzz/conn_harness.py``, shared with the atheris targets
``conn_h1`` and ``conn_h2``; see it for what counts as a finding (an exception
anywhere on the connection, an error log, a hung task or read, a write after
close, output that a client cannot read).

* HTTP/1.1: pipelined requests to every app (bodies by length or chunked,
  ``Expect: 100-continue``, ``TE: trailers``, HTTP/1.0, proxy headers), maybe
  followed by a WebSocket upgrade and frames or an ``Upgrade: h2c`` and HTTP/2
  frames; valid or with a few bytes changed; cut anywhere; on both parser
  backends, over cleartext or TLS; with deadlines passing, the client not
  reading for a while, and EOF, a lost or a reset connection at the end.
* HTTP/2: a client connection (requests, extended CONNECT with good and bad
  ``:path``, DATA over content-length and over ``--limit-request-body``,
  trailers, CONTINUATION, RST_STREAM, WINDOW_UPDATE, SETTINGS changed
  mid-stream, PING, PRIORITY, GOAWAY, unknown frames), valid or mutated, by
  prior knowledge or ALPN h2, the same ways.
* The oracle itself flags what it should.

The findings still open (``conn_harness.OPEN``, which these properties step
over) are strict xfails, with their exact input, in ``test_regressions.py``.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable
from itertools import pairwise

import hpack
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz._harness import conn, corpus
from tests.fuzz._split import cut, mutated, splits

PREFACE: bytes = conn.PREFACE
frame: Callable[[int, int, int, bytes], bytes] = corpus.frame
masked: Callable[..., bytes] = corpus.masked
WS_KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
ROUTES = ["/", "/echo", "/stream", "/trailers", "/early", "/empty", "/fail", "/fail0"]
paths = st.tuples(st.sampled_from(ROUTES), st.sampled_from(["", "?q=1", "/x"])).map(
    lambda p: "".join(p).encode()
)


# -- delivery -----------------------------------------------------------------


@st.composite
def plans(draw: st.DrawFn, /, data: bytes, **options: object) -> object:
    """How ``data`` arrives: the cuts, the clock moving on, a client that stops reading,
    and how the connection ends."""
    chunks = draw(splits(data))
    n = len(chunks)
    gaps: dict[int, float] = {}
    if n and draw(st.integers(0, 3)) == 0:
        gaps = draw(
            st.dictionaries(
                st.integers(0, n - 1), st.sampled_from(conn.GAPS), min_size=1, max_size=2
            )
        )
    stall = None
    if n > 1 and draw(st.integers(0, 4)) == 0:
        first = draw(st.integers(0, n - 1))
        stall = (first, draw(st.integers(first + 1, n + 1)))
    return conn.Plan(
        chunks,
        gaps=gaps,
        stall=stall,
        end=draw(st.sampled_from(["eof", "lost", "reset"])),
        tight=draw(st.booleans()),
        **options,
    )


# -- HTTP/1.1 -------------------------------------------------------------------


@st.composite
def h1_request(draw: st.DrawFn) -> bytes:
    version = draw(st.sampled_from([b"1.1", b"1.1", b"1.1", b"1.0"]))
    method = draw(st.sampled_from([b"GET", b"GET", b"HEAD", b"POST", b"PUT", b"OPTIONS"]))
    lines = [method + b" " + draw(paths) + b" HTTP/" + version]
    if version == b"1.1" or draw(st.booleans()):
        lines.append(b"Host: example.org")
    framing = draw(st.sampled_from(["none", "length", "chunked"][: 3 if version == b"1.1" else 2]))
    body = draw(st.binary(max_size=400)) if framing != "none" else b""
    tail = body
    if framing == "length":
        lines.append(b"Content-Length: %d" % len(body))
    elif framing == "chunked":
        lines.append(b"Transfer-Encoding: chunked")
        pieces = cut(body, draw(st.lists(st.integers(1, max(1, len(body))), max_size=3)))
        tail = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n"
        tail += b"X-Sum: 1\r\n\r\n" if draw(st.booleans()) else b"\r\n"
    if version == b"1.1" and draw(st.integers(0, 4)) == 0:
        lines.append(b"Expect: 100-continue")
    if version == b"1.1" and draw(st.booleans()):
        lines.append(b"TE: trailers")
    if draw(st.integers(0, 5)) == 0:
        lines.append(b"X-Forwarded-For: 192.0.2.7, 10.1.1.1")
        lines.append(b"X-Forwarded-Proto: " + draw(st.sampled_from([b"https", b"ws", b"x y"])))
    connection = draw(st.sampled_from([None, None, b"close", b"keep-alive"]))
    if connection is not None:
        lines.append(b"Connection: " + connection)
    return b"\r\n".join(lines) + b"\r\n\r\n" + tail


ws_frames = st.lists(
    st.one_of(
        st.text(max_size=20).map(lambda t: masked(1, t.encode())),
        st.binary(max_size=40).map(lambda b: masked(2, b)),
        st.binary(max_size=10).map(lambda b: masked(9, b)),
        st.binary(max_size=10).map(lambda b: masked(10, b)),
        st.just(masked(1, b"close")),
        st.tuples(st.text("abc", max_size=6), st.text("xyz", max_size=6)).map(
            lambda p: masked(1, p[0].encode(), fin=False) + masked(0, p[1].encode())
        ),
        st.sampled_from([1000, 1001, 3000, 4999, 1005, 999, 2000]).map(
            lambda code: masked(8, code.to_bytes(2, "big") + b"bye")
        ),
        st.binary(min_size=1, max_size=12),  # not a frame
    ),
    max_size=5,
).map(b"".join)


@st.composite
def websocket_upgrade(draw: st.DrawFn) -> bytes:
    path = draw(st.sampled_from([b"/ws", b"/ws", b"/deny", b"/close", b"/echo"]))
    key = draw(st.sampled_from([WS_KEY, WS_KEY, WS_KEY, b"c2hvcnQ=", b""]))
    version = draw(st.sampled_from([b"13", b"13", b"8"]))
    lines = [
        b"GET " + path + b" HTTP/1.1",
        b"Host: example.org",
        b"Connection: Upgrade",
        b"Upgrade: websocket",
        b"Sec-WebSocket-Key: " + key,
        b"Sec-WebSocket-Version: " + version,
    ]
    if draw(st.booleans()):
        lines.append(b"Sec-WebSocket-Protocol: chat, superchat")
    if draw(st.booleans()):
        lines.append(b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits")
    return b"\r\n".join(lines) + b"\r\n\r\n" + draw(ws_frames)


# -- HTTP/2 ---------------------------------------------------------------------

HEADERS, CONTINUATION, DATA = 1, 9, 0
END_STREAM, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x4, 0x8, 0x20

client_settings = st.lists(
    st.one_of(
        st.tuples(st.just(1), st.sampled_from([0, 100, 4096, 65536])),  # HEADER_TABLE_SIZE
        st.tuples(st.just(2), st.sampled_from([0, 1])),  # ENABLE_PUSH
        st.tuples(st.just(3), st.sampled_from([0, 1, 100])),  # MAX_CONCURRENT_STREAMS
        # INITIAL_WINDOW_SIZE: 0 holds every response back until a WINDOW_UPDATE
        st.tuples(st.just(4), st.sampled_from([0, 1, 100, 65535, 2**31 - 1])),
        st.tuples(st.just(5), st.sampled_from([16384, 20000, 2**24 - 1])),  # MAX_FRAME_SIZE
        st.tuples(st.just(6), st.sampled_from([0, 100, 65536])),  # MAX_HEADER_LIST_SIZE
        st.tuples(st.just(8), st.sampled_from([0, 1])),  # ENABLE_CONNECT_PROTOCOL
        st.tuples(st.just(0x2A), st.integers(0, 2**32 - 1)),  # unknown: ignored
    ),
    max_size=3,
)
# values that are a connection error
bad_settings = st.sampled_from([[(2, 2)], [(4, 2**31)], [(5, 100)], [(5, 2**24)]])


def settings_frame(pairs: list[tuple[int, int]]) -> bytes:
    return frame(4, 0, 0, b"".join(struct.pack(">HL", k, v) for k, v in pairs))


def header_frames(draw: st.DrawFn, stream_id: int, block: bytes, flags: int) -> bytes:
    """HEADERS, maybe padded or with a priority, then CONTINUATION frames for ``block``."""
    cuts = sorted(draw(st.lists(st.integers(0, len(block)), max_size=3)))
    pieces = [block[a:b] for a, b in pairwise([0, *cuts, len(block)])]
    first = pieces[0]
    if draw(st.integers(0, 4)) == 0:
        flags |= PRIORITY_FLAG
        first = (
            struct.pack(">LB", draw(st.sampled_from([0, max(0, stream_id - 2), stream_id])), 16)
            + first
        )
    if draw(st.integers(0, 4)) == 0:
        pad = draw(st.integers(0, 10))
        flags |= PADDED
        first = bytes((pad,)) + first + bytes(pad)
    if len(pieces) == 1:
        return frame(HEADERS, flags | END_HEADERS, stream_id, first)
    out = [frame(HEADERS, flags, stream_id, first)]
    for i, piece in enumerate(pieces[1:], 2):
        out.append(frame(CONTINUATION, END_HEADERS if i == len(pieces) else 0, stream_id, piece))
    return b"".join(out)


CONNECT_PATHS = [b"/ws", b"/ws", b"/deny", b"/close", b"", b"*", b"ws", b"/a b", b"//x", b"/%zz"]
ACTIONS = [
    "request",
    "request",
    "request",
    "connect",
    "data",
    "data",
    "data",
    "trailers",
    "reset",
    "window",
    "settings",
    "control",
]


@st.composite
def h2_frames(draw: st.DrawFn, first_stream: int = 1) -> bytes:
    """A client's frames after the preface: header blocks encoded in the order sent."""
    encoder = hpack.Encoder()
    out = [settings_frame(draw(client_settings))]
    open_streams: list[tuple[int, bool]] = []  # (stream id, a WebSocket)
    next_id = first_stream
    for _ in range(draw(st.integers(1, 10))):
        action = draw(st.sampled_from(ACTIONS))
        if action == "request":
            method = draw(st.sampled_from([b"GET", b"GET", b"HEAD", b"POST", b"PUT"]))
            fields = [(b":method", method), (b":scheme", b"https"), (b":path", draw(paths))]
            fields.append((b":authority", b"example.org"))
            if draw(st.booleans()):
                fields.append((b"te", b"trailers"))
            if draw(st.integers(0, 3)) == 0:
                fields.append((b"content-length", b"%d" % draw(st.integers(0, 400))))
            end = draw(st.booleans())
            block = encoder.encode(fields, huffman=draw(st.booleans()))
            out.append(header_frames(draw, next_id, block, END_STREAM if end else 0))
            if not end:
                open_streams.append((next_id, False))
            next_id += 2
        elif action == "connect":
            fields = [
                (b":method", b"CONNECT"),
                (b":protocol", draw(st.sampled_from([b"websocket", b"websocket", b"h2c"]))),
                (b":scheme", b"https"),
                (b":path", draw(st.sampled_from(CONNECT_PATHS))),
                (b":authority", b"example.org"),
                (b"sec-websocket-version", draw(st.sampled_from([b"13", b"13", b"8"]))),
            ]
            if draw(st.integers(0, 5)) == 0:
                del fields[draw(st.integers(0, len(fields) - 1))]
            out.append(header_frames(draw, next_id, encoder.encode(fields), 0))
            open_streams.append((next_id, True))
            next_id += 2
        elif action in ("data", "trailers", "reset") and open_streams:
            stream_id, websocket = draw(st.sampled_from(open_streams))
            end = action != "data" or draw(st.booleans())
            if end:
                open_streams.remove((stream_id, websocket))
            if action == "data":
                if websocket:
                    payload = draw(ws_frames)
                else:
                    payload = draw(
                        st.one_of(
                            st.binary(max_size=100),
                            st.integers(250, 400).map(lambda n: b"x" * n),  # over the limit
                        )
                    )
                out.append(frame(DATA, END_STREAM if end else 0, stream_id, payload))
                if draw(st.integers(0, 20)) == 0:  # over the stream's window (tight: 65535)
                    out += [frame(DATA, 0, stream_id, bytes(16384))] * 5
            elif action == "trailers":
                block = encoder.encode([(b"x-sum", b"1")])
                out.append(header_frames(draw, stream_id, block, END_STREAM))
            else:
                code = draw(st.sampled_from([0, 1, 8, 0x1234]))
                out.append(frame(3, 0, stream_id, code.to_bytes(4, "big")))
        elif action == "window":
            stream_id = draw(st.sampled_from([0, *(s for s, _ in open_streams)]))
            increment = draw(st.sampled_from([1, 100, 65535, 2**31 - 1, 0]))
            out.append(frame(8, 0, stream_id, increment.to_bytes(4, "big")))
        elif action == "settings":
            bad = draw(st.integers(0, 9)) == 0
            out.append(settings_frame(draw(bad_settings if bad else client_settings)))
        else:
            out.append(
                draw(
                    st.sampled_from(
                        [
                            frame(6, 0, 0, b"pingping"),
                            frame(6, 1, 0, b"pongpong"),
                            frame(4, 1, 0, b""),
                            frame(2, 0, next_id, struct.pack(">LB", 0, 16)),
                            frame(7, 0, 0, struct.pack(">LL", 0, 0)),
                            frame(0xFA, 0xFF, 0, b"extension"),
                            frame(8, 0, next_id + 2, b"\x00\x00\x00\x01"),  # an idle stream
                        ]
                    )
                )
            )
    return b"".join(out)


@st.composite
def h2c_upgrade(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from([b"GET", b"POST"]))
    lines = [method + b" " + draw(paths) + b" HTTP/1.1", b"Host: example.org"]
    body = b""
    if method == b"POST":
        body = draw(st.binary(max_size=100))
        lines.append(b"Content-Length: %d" % len(body))
        if draw(st.booleans()):
            lines.append(b"Expect: 100-continue")
    payload = b"".join(struct.pack(">HL", k, v) for k, v in draw(client_settings))
    value = draw(st.sampled_from([base64.urlsafe_b64encode(payload).rstrip(b"="), b"!!", b"AAMA"]))
    lines += [
        b"Connection: Upgrade, HTTP2-Settings",
        b"Upgrade: h2c",
        b"HTTP2-Settings: " + value,
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body + PREFACE + draw(h2_frames(first_stream=3))


# (an upgrade behind a request still running is refused, or served as HTTP/1.1: most
# upgrades come first)
h1_requests = st.lists(h1_request(), min_size=1, max_size=3).map(b"".join)
h1_upgrades = st.one_of(websocket_upgrade(), h2c_upgrade())
h1_valid = st.one_of(
    h1_requests,
    h1_upgrades,
    st.tuples(h1_requests, h1_upgrades).map(b"".join),
)
h1_streams = st.one_of(h1_valid, mutated(h1_valid, max_edits=3))
h2_valid = h2_frames().map(lambda frames: PREFACE + frames)
h2_streams = st.one_of(h2_valid, mutated(h2_valid, max_edits=3))


# -- properties -------------------------------------------------------------------


@given(
    data=h1_streams,
    http=st.sampled_from(["httptools", "h11"]),
    alpn=st.sampled_from([None, None, "http/1.1"]),
    how=st.data(),
)
def test_http1_connection(data: bytes, http: str, alpn: str | None, how: st.DataObject) -> None:
    conn.verify(how.draw(plans(data, http=http, alpn=alpn)), allow_open=True)


@given(data=h2_streams, alpn=st.sampled_from([None, "h2"]), how=st.data())
def test_http2_connection(data: bytes, alpn: str | None, how: st.DataObject) -> None:
    conn.verify(how.draw(plans(data, alpn=alpn)), allow_open=True)


# -- the oracle flags what it should ----------------------------------------------

OK_HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n"


def _get(encoder: hpack.Encoder) -> bytes:
    fields = [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/")]
    return encoder.encode([*fields, (b":authority", b"a")])


def test_h1_reader_flags_a_body_on_head() -> None:
    head = conn.Seen("http", "HEAD", "1.1", "/")
    assert conn.check_h1(OK_HEAD, b"", [head], None) == []
    problems = conn.check_h1(OK_HEAD + b"abc", b"", [head], None)
    assert problems and "not a status line" in problems[0]


def test_h1_reader_flags_a_short_body_followed_by_more() -> None:
    get = conn.Seen("http", "GET", "1.1", "/")
    assert conn.check_h1(OK_HEAD + b"ab", b"", [get], "close") == []  # cut short: the end
    assert conn.check_h1(OK_HEAD + b"abc" + OK_HEAD + b"abc", b"", [get, get], None) == []
    assert conn.check_h1(OK_HEAD + b"ab" + OK_HEAD + b"abc", b"", [get, get], None)


def test_h1_reader_flags_close_without_closing() -> None:
    get = conn.Seen("http", "GET", "1.1", "/")
    out = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    assert conn.check_h1(out, b"", [get], "close") == []
    assert conn.check_h1(out, b"", [get], None) == [
        "at byte 0 (response 1, to GET): 'connection: close' but the server never closed"
    ]
    head = conn.Seen("http", "HEAD", "1.0", "/")  # whole at its head: the app may still run
    assert conn.check_h1(out, b"", [head], None) == []


def test_ws_reader_flags_bad_frames() -> None:
    assert conn.check_ws(b"\x81\x02hi\x88\x02\x03\xe8", False) == []
    assert conn.check_ws(b"\x88\x00\x81\x00", False)  # after the close
    assert conn.check_ws(b"\x89\x7e\x00\x7e" + bytes(126), False)  # long control frame
    assert conn.check_ws(b"\xc1\x00", False)  # RSV1 without deflate
    assert conn.check_ws(b"\x81\x82abcd", False)  # masked, and cut short


def test_h2_reader_flags_bad_frames() -> None:
    client = PREFACE + frame(4, 0, 0, b"") + frame(1, 0x5, 1, _get(hpack.Encoder()))
    head = hpack.Encoder().encode([(b":status", b"200"), (b"content-length", b"2")])
    good = frame(4, 0, 0, b"") + frame(1, 0x4, 1, head) + frame(0, 0x1, 1, b"ok")
    assert conn.check_h2(good, client, None) == []
    assert conn.check_h2(good + frame(0, 0, 1, b"x"), client, None)  # after END_STREAM
    assert conn.check_h2(good + frame(0, 0, 3, b""), client, None)  # a stream never opened
    assert conn.check_h2(frame(1, 0x4, 1, head), client, None)  # no SETTINGS first
    error = frame(7, 0, 0, struct.pack(">LL", 1, 1))
    assert conn.check_h2(good + error, client, "close") == []
    assert conn.check_h2(good + error, client, None)  # an error, and the connection stays
    assert conn.check_h2(good + error + frame(6, 1, 0, bytes(8)), client, "close")
    # a bad PRIORITY frame is a stream error on a stream that stays idle: RST_STREAM is due
    priority = client + frame(2, 0, 5, bytes(10))
    assert conn.check_h2(good + frame(3, 0, 5, b"\x00\x00\x00\x06"), priority, None) == []
    assert conn.check_h2(good + frame(3, 0, 7, b"\x00\x00\x00\x06"), priority, None)


def test_h2c_reader_takes_the_upgrade_requests_method() -> None:
    # stream 1 is the GET that asked for h2c, not the HEAD before it (cut in single bytes,
    # so that the HEAD is answered before the upgrade request comes)
    data = (
        b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /stream HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: \r\n\r\n" + PREFACE + frame(4, 0, 0, b"")
    )
    outcome = conn.run(conn.Plan([data[i : i + 1] for i in range(len(data))]))
    assert b"upgrade: h2c" in outcome.written
    assert conn.check(outcome) == []
