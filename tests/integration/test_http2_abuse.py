"""HTTP/2 abuse: each attack from a raw-socket attacker, while a well-behaved client is served.

The attacker speaks HTTP/2 by hand (frames from ``hyperframe``, header blocks from
``hpack.Encoder``) over cleartext prior knowledge. For every attack the test checks
that the server answers with GOAWAY and the code its guard names (see the module
docstring of ``squall.protocols.http2.guard``), that the attacker's connection is then
closed, and that a second client, ``httpx`` over HTTP/2 on its own connection, gets
its requests answered before, during and after the attack.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable

import hpack
import httpx
import pytest
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from tests.integration.helpers import Gate, connections, wait_until

pytestmark = pytest.mark.usefixtures("fast_tick")  # in-thread servers stop quickly

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# error codes (RFC 9113 7)
NO_ERROR, PROTOCOL_ERROR, FRAME_SIZE_ERROR, REFUSED_STREAM = 0x0, 0x1, 0x6, 0x7
CANCEL, ENHANCE_YOUR_CALM = 0x8, 0xB
# the guards' numbers, as squall.protocols.http2 sets them (guard.py and H2Limits)
CHEAP_BURST = 1000
CONTROL_QUEUE_LIMIT = 1000
RESET_MIN_STREAMS = 200
MAX_CONTINUATION = 32
MAX_HEADER_LIST = 65536
SETTINGS_MAX_CONCURRENT_STREAMS = 0x3
SETTINGS_INITIAL_WINDOW_SIZE = 0x4


# -- the attacker ------------------------------------------------------------------------


_attackers: list[Attacker] = []


@pytest.fixture(autouse=True)
def _close_attackers(serve):
    """Attackers are closed before the servers stop (which would wait for them)."""
    yield
    while _attackers:
        _attackers.pop().close()


class Attacker:
    """A raw HTTP/2 client: the preface and a SETTINGS frame, then whatever the test sends."""

    def __init__(
        self,
        port: int,
        settings: dict[int, int] | None = None,
        rcvbuf: int | None = None,
        timeout: float = 5.0,
    ) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(timeout)
        sock.connect(("127.0.0.1", port))
        self.sock = sock
        _attackers.append(self)
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.buf = b""
        self.received: list[Frame] = []
        self.send(PREFACE, SettingsFrame(0, settings=settings or {}))

    def block(self, path: str = "/", method: str = "GET", extra: Iterable = ()) -> bytes:
        """A request header block from the connection's encoder (its table stays in sync)."""
        fields = [(":method", method), (":scheme", "http"), (":path", path)]
        return self.encoder.encode([*fields, (":authority", "attacker"), *extra])

    def send(self, *parts: bytes | Frame) -> None:
        data = b"".join(p if isinstance(p, bytes) else p.serialize() for p in parts)
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server gave up first: what it sent before is still readable

    def _fill(self) -> bool:
        try:
            data = self.sock.recv(1 << 20)
        except ConnectionResetError:
            data = b""
        self.buf += data
        return bool(data)

    def frame(self) -> Frame | None:
        """The next frame from the server; None at EOF."""
        while len(self.buf) < 9:
            if not self._fill():
                assert not self.buf, f"truncated frame header {self.buf!r}"
                return None
        frame, length = Frame.parse_frame_header(memoryview(self.buf[:9]))
        while len(self.buf) < 9 + length:
            assert self._fill(), "the connection ended inside a frame"
        frame.parse_body(memoryview(self.buf[9 : 9 + length]))
        self.buf = self.buf[9 + length :]
        self.received.append(frame)
        return frame

    def until(self, predicate: Callable[[Frame], object], what: str) -> Frame:
        """Frames up to the first that matches; fails at EOF (or on the socket timeout)."""
        while True:
            frame = self.frame()
            assert frame is not None, f"connection closed before {what}; got {self.summary()}"
            if predicate(frame):
                return frame

    def until_closed(self) -> list[Frame]:
        """Every frame up to EOF; a server that never closes fails on the socket timeout."""
        start = len(self.received)
        while self.frame() is not None:
            pass
        return self.received[start:]

    def goaway_then_closed(self, code: int) -> GoAwayFrame:
        """Read to EOF: the server must have sent GOAWAY with ``code``, then closed."""
        self.until_closed()
        goaways = [f for f in self.received if isinstance(f, GoAwayFrame)]
        assert goaways, f"closed without GOAWAY; got {self.summary()}"
        goaway = goaways[-1]
        assert goaway.error_code == code, (
            f"GOAWAY code {goaway.error_code} ({goaway.additional_data!r}), expected {code}"
        )
        return goaway

    def settings(self) -> dict[int, int]:
        frame = self.until(
            lambda f: isinstance(f, SettingsFrame) and "ACK" not in f.flags, "server SETTINGS"
        )
        assert isinstance(frame, SettingsFrame)
        return dict(frame.settings)

    def response(self, stream_id: int) -> tuple[int, bytes]:
        """(status, body) of the response on ``stream_id`` (other frames are skipped)."""
        status = 0
        body = b""
        while True:
            frame = self.until(
                lambda f: f.stream_id == stream_id or isinstance(f, GoAwayFrame),
                f"the response on stream {stream_id}",
            )
            assert not isinstance(frame, GoAwayFrame), f"GOAWAY instead of a response: {frame}"
            assert not isinstance(frame, RstStreamFrame), f"stream {stream_id} reset: {frame}"
            if isinstance(frame, HeadersFrame):
                fields = dict(self.decoder.decode(frame.data, raw=True))
                status = int(fields[b":status"])
            elif isinstance(frame, DataFrame):
                body += frame.data
            if "END_STREAM" in frame.flags:
                return status, body

    def summary(self) -> str:
        names = [type(f).__name__ for f in self.received[-8:]]
        return f"{len(self.received)} frames, last {names}"

    def close(self) -> None:
        self.sock.close()


def rst_codes(frames: Iterable[Frame]) -> list[int]:
    return [f.error_code for f in frames if isinstance(f, RstStreamFrame)]


# -- the well-behaved client and the app -------------------------------------------------


class GoodClient:
    """httpx over HTTP/2 (prior knowledge) on its own connection, kept across the checks."""

    def __init__(self, srv) -> None:
        self.client = httpx.Client(http1=False, http2=True, base_url=srv.url, timeout=5)

    def check(self, when: str) -> None:
        start = time.monotonic()
        try:
            response = self.client.get("/ok")
        except httpx.HTTPError as exc:
            elapsed = time.monotonic() - start
            raise AssertionError(
                f"the good client failed {when} ({elapsed:.2f}s): {exc!r}"
            ) from exc
        elapsed = time.monotonic() - start
        assert response.http_version == "HTTP/2", response.http_version
        assert (response.status_code, response.text) == (200, "ok /ok"), (
            f"the good client got {response.status_code} {response.text!r} {when} ({elapsed:.2f}s)"
        )

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def good():
    clients: list[GoodClient] = []

    def start(srv) -> GoodClient:
        client = GoodClient(srv)
        clients.append(client)
        client.check("before the attack")
        return client

    yield start
    for client in clients:
        client.close()


def make_app(calls: list[str], gate: Gate | None = None, stop: threading.Event | None = None):
    """Records each path it is called for. /block waits for ``gate``; /big streams up to
    8 MiB until ``stop`` is set; /body reads the request body first; anything else: 200."""

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        path = scope["path"]
        calls.append(path)
        if path == "/block" and gate is not None:
            await gate.wait()
        elif path == "/body":
            while (await receive()).get("more_body"):
                pass
        elif path == "/big":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            chunk = b"x" * 65536
            for _ in range(128):
                if stop is not None and stop.is_set():
                    break
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        body = b"ok " + path.encode()
        headers = [(b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


# -- Rapid Reset (CVE-2023-44487) --------------------------------------------------------


def test_rapid_reset(serve, good):
    calls: list[str] = []
    srv = serve(make_app(calls))
    client = good(srv)
    attacker = Attacker(srv.port)
    attack = []
    for i in range(1000):
        sid = 2 * i + 1
        attack.append(HeadersFrame(sid, attacker.block("/reset"), flags=["END_HEADERS"]))
        attack.append(RstStreamFrame(sid, error_code=CANCEL))
    attacker.send(*attack)  # HEADERS and RST_STREAM side by side, in one write
    client.check("during a Rapid Reset attack")

    goaway = attacker.goaway_then_closed(ENHANCE_YOUR_CALM)
    assert goaway.additional_data == b"Too many streams reset"
    # judged once RESET_MIN_STREAMS streams were opened, and well before the 1000th
    assert 2 * RESET_MIN_STREAMS - 1 <= goaway.last_stream_id < 2 * 1000 - 1
    # streams reset in the read that opened them are never started
    started = calls.count("/reset")
    opened = (goaway.last_stream_id + 1) // 2
    assert started < 10, f"the app ran for {started} of the {opened} streams opened"
    client.check("after a Rapid Reset attack")


def test_rapid_reset_at_half_the_streams_hits_the_absolute_cap(serve, good):
    """A reset for every completed request keeps the ratio at one half; the absolute cap
    (2 * max_concurrent_streams + 200 resets) still ends it."""
    calls: list[str] = []
    srv = serve(make_app(calls))
    client = good(srv)
    attacker = Attacker(srv.port)
    limit = 2 * 100 + RESET_MIN_STREAMS
    sid = 1
    goaway = None
    for _ in range(20):  # rounds of 50 (request, reset) pairs; the cap is crossed in round 9
        batch = []
        normal = []
        for _ in range(50):
            batch.append(
                HeadersFrame(sid, attacker.block("/ok"), flags=["END_HEADERS", "END_STREAM"])
            )
            normal.append(sid)
            batch.append(HeadersFrame(sid + 2, attacker.block("/reset"), flags=["END_HEADERS"]))
            batch.append(RstStreamFrame(sid + 2, error_code=CANCEL))
            sid += 4
        attacker.send(*batch)
        finished = 0
        while finished < len(normal):
            frame = attacker.until(
                lambda f: "END_STREAM" in f.flags or isinstance(f, GoAwayFrame), "responses"
            )
            if isinstance(frame, GoAwayFrame):
                goaway = frame
                break
            finished += 1
        if goaway is not None:
            break
    assert goaway is not None, "the server never gave up"
    assert goaway.error_code == ENHANCE_YOUR_CALM
    assert goaway.additional_data == b"Too many streams reset"
    resets = (goaway.last_stream_id + 1) // 4  # every second stream was reset
    assert resets == limit + 1, f"GOAWAY after {resets} resets, expected {limit + 1}"
    attacker.until_closed()
    client.check("after a slow Rapid Reset attack")


# -- MadeYouReset (CVE-2025-8671) --------------------------------------------------------


def _window_update_zero(attacker: Attacker, sid: int) -> list[Frame]:
    # an open stream (no END_STREAM), then a stream error: WINDOW_UPDATE of 0
    update = WindowUpdateFrame(sid, window_increment=0)
    return [HeadersFrame(sid, attacker.block("/made"), flags=["END_HEADERS"]), update]


def _uppercase_name(attacker: Attacker, sid: int) -> list[Frame]:
    # a malformed request (RFC 9113 8.2.1): an uppercase field name
    block = attacker.block("/made", extra=[("X-Evil", "1")])
    return [HeadersFrame(sid, block, flags=["END_HEADERS", "END_STREAM"])]


@pytest.mark.parametrize(
    "provoke", [_window_update_zero, _uppercase_name], ids=["window-update-0", "uppercase-name"]
)
def test_made_you_reset(serve, good, provoke):
    calls: list[str] = []
    srv = serve(make_app(calls))
    client = good(srv)
    attacker = Attacker(srv.port)
    attack = []
    for i in range(1000):
        attack += provoke(attacker, 2 * i + 1)
    attacker.send(*attack)
    client.check("during a MadeYouReset attack")

    goaway = attacker.goaway_then_closed(ENHANCE_YOUR_CALM)
    assert goaway.additional_data == b"Too many streams reset"
    assert 2 * RESET_MIN_STREAMS - 1 <= goaway.last_stream_id < 2 * 1000 - 1
    resets = rst_codes(attacker.received)
    assert len(resets) >= RESET_MIN_STREAMS - 1
    assert set(resets) == {PROTOCOL_ERROR}, set(resets)
    assert calls.count("/made") < 10
    client.check("after a MadeYouReset attack")


# -- CONTINUATION flood ------------------------------------------------------------------


def _split(block: bytes, parts: int) -> list[bytes]:
    n = len(block)
    assert n >= parts
    return [block[i * n // parts : (i + 1) * n // parts] for i in range(parts)]


def _header_block_frames(sid: int, pieces: list[bytes], end: bool = True) -> list[Frame]:
    frames: list[Frame] = [HeadersFrame(sid, pieces[0], flags=["END_STREAM"])]
    for i, piece in enumerate(pieces[1:], 2):
        last = end and i == len(pieces)
        frames.append(ContinuationFrame(sid, piece, flags=["END_HEADERS"] if last else []))
    return frames


def test_header_block_with_the_most_continuation_frames_is_served(serve):
    """The limit is a limit: 32 CONTINUATION frames are still one valid request."""
    calls: list[str] = []
    srv = serve(make_app(calls))
    attacker = Attacker(srv.port)
    block = attacker.block("/ok", extra=[("x-filler", "f" * 200)])
    attacker.send(*_header_block_frames(1, _split(block, MAX_CONTINUATION + 1)))
    assert attacker.response(1) == (200, b"ok /ok")


@pytest.mark.parametrize("piece", [b"", b"\x00"], ids=["empty", "one-byte"])
def test_continuation_flood(serve, good, piece):
    srv = serve(make_app([]))
    client = good(srv)
    attacker = Attacker(srv.port)
    frames: list[Frame] = [HeadersFrame(1, attacker.block("/flood"), flags=["END_STREAM"])]
    frames += [ContinuationFrame(1, piece) for _ in range(2000)]  # never END_HEADERS
    attacker.send(*frames)
    client.check("during a CONTINUATION flood")
    goaway = attacker.goaway_then_closed(ENHANCE_YOUR_CALM)
    assert goaway.additional_data == b"Too many CONTINUATION frames"
    client.check("after a CONTINUATION flood")


def test_continuation_limit_is_configurable(serve):
    srv = serve(make_app([]), h2_max_continuation_frames=4)
    attacker = Attacker(srv.port)
    block = attacker.block("/ok", extra=[("x-filler", "f" * 50)])
    attacker.send(*_header_block_frames(1, _split(block, 5)))  # 4 CONTINUATION frames
    assert attacker.response(1) == (200, b"ok /ok")
    block = attacker.block("/ok", extra=[("x-filler", "g" * 50)])  # not in the table yet
    attacker.send(*_header_block_frames(3, _split(block, 6)))  # 5
    goaway = attacker.goaway_then_closed(ENHANCE_YOUR_CALM)
    assert goaway.additional_data == b"Too many CONTINUATION frames"


def _hpack_int(value: int, prefix: int) -> bytes:
    limit = (1 << prefix) - 1
    if value < limit:
        return bytes([value])
    out = [limit]
    value -= limit
    while value >= 128:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes([*out, value])


def _block_of_size(size: int) -> bytes:
    """A valid GET header block of exactly ``size`` bytes: one long literal field
    (without indexing, no Huffman), so its decoded size is about ``size`` too."""
    head = b"\x82\x86\x84"  # :method GET, :scheme http, :path / (static table)
    name = b"x-fill"
    for length in range(size - 20, size):
        field = b"\x00" + _hpack_int(len(name), 7) + name + _hpack_int(length, 7)
        if len(head) + len(field) + length == size:
            return head + field + b"a" * length
    raise AssertionError(f"no block of {size} bytes")


def test_header_block_byte_cap(serve, good):
    """Few but large CONTINUATION frames: a header block is capped at
    2 * max_header_list_size + 16384 bytes, before it is decoded."""
    calls: list[str] = []
    srv = serve(make_app(calls))
    client = good(srv)
    attacker = Attacker(srv.port)
    cap = 2 * MAX_HEADER_LIST + 16384
    frames = _header_block_frames(1, _split(_block_of_size(cap), cap // 16384))
    assert len(frames) - 1 < MAX_CONTINUATION  # not the frame count limit
    attacker.send(*frames)
    # at the cap: decoded (so the HPACK state stays in sync), and too large: 431
    status, _ = attacker.response(1)
    assert status == 431
    # one byte more: the block is never decoded, the connection ends
    attacker.send(*_header_block_frames(3, _split(_block_of_size(cap + 1), cap // 16384 + 1)))
    goaway = attacker.goaway_then_closed(ENHANCE_YOUR_CALM)
    assert goaway.additional_data == b"Header block too large"
    assert goaway.last_stream_id == 1
    assert calls == ["/ok"]  # only the good client's request reached the app
    client.check("after an oversized header block")


# -- HPACK bomb --------------------------------------------------------------------------

# with its name and 32 bytes of overhead a ~4 KB table entry, leaving room in the 4096-byte
# table for this connection's :path and :authority entries (so nothing is evicted)
BOMB_VALUE = "b" * 3900


def _bomb_block(attacker: Attacker, references: int) -> bytes:
    """A request whose x-bomb field refers to the dynamic table entry ``references`` times."""
    block = attacker.block("/bomb", extra=[("x-bomb", BOMB_VALUE)] * references)
    assert len(block) < 100 + references, f"not a compressed reference: {len(block)} bytes"
    return block


def _prime_table(attacker: Attacker) -> None:
    """A first, normal request puts x-bomb into the dynamic table."""
    block = attacker.block("/bomb", extra=[("x-bomb", BOMB_VALUE)])
    attacker.send(HeadersFrame(1, block, flags=["END_HEADERS", "END_STREAM"]))
    assert attacker.response(1) == (200, b"ok /bomb")


def test_hpack_bomb(serve, good):
    calls: list[str] = []
    srv = serve(make_app(calls))
    client = good(srv)
    attacker = Attacker(srv.port)
    _prime_table(attacker)
    references = 100  # ~400 KB decoded: more than 4x the 64 KiB limit
    assert references * (6 + len(BOMB_VALUE) + 32) > 4 * MAX_HEADER_LIST
    block = _bomb_block(attacker, references)
    for sid in range(3, 3 + 2 * 50, 2):  # and again, and again
        attacker.send(HeadersFrame(sid, block, flags=["END_HEADERS", "END_STREAM"]))
    goaway = attacker.goaway_then_closed(ENHANCE_YOUR_CALM)
    assert goaway.additional_data == b"Header list far too large"
    assert goaway.last_stream_id == 1, "the first bomb ends the connection, unprocessed"
    assert calls.count("/bomb") == 1
    client.check("after an HPACK bomb")


def test_header_list_just_above_the_limit_gets_431(serve, good):
    calls: list[str] = []
    srv = serve(make_app(calls))
    client = good(srv)
    attacker = Attacker(srv.port)
    _prime_table(attacker)
    references = 17  # ~69 KB decoded: above the limit, below 4x
    size = references * (6 + len(BOMB_VALUE) + 32)
    assert MAX_HEADER_LIST < size < 4 * MAX_HEADER_LIST
    attacker.send(
        HeadersFrame(3, _bomb_block(attacker, references), flags=["END_HEADERS", "END_STREAM"])
    )
    status, body = attacker.response(3)
    assert status == 431
    assert b"Request Header Fields Too Large" in body
    # the connection (and its HPACK state) is still good
    attacker.send(HeadersFrame(5, attacker.block("/after"), flags=["END_HEADERS", "END_STREAM"]))
    assert attacker.response(5) == (200, b"ok /after")
    assert calls.count("/bomb") == 1  # the 431 never reached the app
    assert not [f for f in attacker.received if isinstance(f, GoAwayFrame)]
    client.check("next to a 431")


# -- cheap-frame floods --------------------------------------------------------------------


def _settings_flood(attacker: Attacker, n: int) -> list[Frame]:
    return [SettingsFrame(0) for _ in range(n)]


def _ping_flood(attacker: Attacker, n: int) -> list[Frame]:
    return [PingFrame(0, opaque_data=i.to_bytes(8, "big")) for i in range(n)]


def _priority_flood(attacker: Attacker, n: int) -> list[Frame]:
    return [PriorityFrame(1 + 2 * (i % 50), depends_on=0, stream_weight=15) for i in range(n)]


def _empty_data_flood(attacker: Attacker, n: int) -> list[Frame]:
    opened = HeadersFrame(1, attacker.block("/body", method="POST"), flags=["END_HEADERS"])
    return [opened, *(DataFrame(1, b"") for _ in range(n))]


FLOODS = [_settings_flood, _ping_flood, _priority_flood, _empty_data_flood]


@pytest.mark.parametrize("flood", FLOODS, ids=["settings", "ping", "priority", "empty-data"])
def test_cheap_frame_flood(serve, good, flood):
    srv = serve(make_app([]))
    client = good(srv)
    attacker = Attacker(srv.port)
    attacker.send(*flood(attacker, 3000))
    client.check("during a flood")
    goaway = attacker.goaway_then_closed(ENHANCE_YOUR_CALM)
    assert goaway.additional_data == b"Flood of control or empty frames"
    # the flood was cut at the bucket's size (plus what it refilled meanwhile)
    answers = [f for f in attacker.received if isinstance(f, PingFrame | SettingsFrame)]
    assert len(answers) < CHEAP_BURST + 100
    client.check("after a flood")


def test_ping_burst_within_the_budget_is_answered(serve):
    srv = serve(make_app([]))
    attacker = Attacker(srv.port)
    attacker.send(*_ping_flood(attacker, 900))
    attacker.send(HeadersFrame(1, attacker.block("/after"), flags=["END_HEADERS", "END_STREAM"]))
    assert attacker.response(1) == (200, b"ok /after")
    acks = [f for f in attacker.received if isinstance(f, PingFrame) and "ACK" in f.flags]
    assert len(acks) == 900
    assert not [f for f in attacker.received if isinstance(f, GoAwayFrame)]


# -- the outbound control frame queue ------------------------------------------------------


def _stall_and_queue_control_frames(srv) -> tuple[Attacker, object]:
    """An attacker that does not read: a large response fills the socket buffers, then
    frames that each queue a control frame (RST_STREAM for a malformed PRIORITY, PING ACK)
    pile up behind it. Returns the attacker and the server's side of its connection."""
    window = 2**31 - 1
    attacker = Attacker(srv.port, settings={SETTINGS_INITIAL_WINDOW_SIZE: window}, rcvbuf=4096)
    attacker.send(
        WindowUpdateFrame(0, window_increment=window - 65535),
        HeadersFrame(1, attacker.block("/big"), flags=["END_HEADERS", "END_STREAM"]),
    )

    def server_side():
        mine = attacker.sock.getsockname()
        found = [c for c in connections(srv) if c.transport.get_extra_info("peername") == mine]
        return found[0] if found else None

    wait_until(
        lambda: (c := server_side()) is not None and c.transport.get_write_buffer_size() > 0,
        what="the server's output to back up",
    )
    conn = server_side()
    # 300 stream errors (below the reset limit) and 800 PINGs (below the cheap-frame
    # budget): 1100 control frames, more than the queue takes
    bad_priority = b"".join(
        b"\x00\x00\x04\x02\x00" + (1001 + 2 * i).to_bytes(4, "big") + b"\x00\x00\x00\x00"
        for i in range(300)
    )
    attacker.send(bad_priority, *_ping_flood(attacker, 800))
    wait_until(lambda: conn.handler.proto.closed, what="the server to give up")
    return attacker, conn


def test_control_frame_queue_is_bounded(serve, good):
    stop = threading.Event()
    srv = serve(make_app([], stop=stop))
    client = good(srv)
    attacker, conn = _stall_and_queue_control_frames(srv)
    assert conn.handler.proto.control_queued == CONTROL_QUEUE_LIMIT + 1
    client.check("while an attacker does not read")
    stop.set()
    # once the attacker reads, it finds the GOAWAY behind everything queued, then EOF
    goaway = attacker.goaway_then_closed(ENHANCE_YOUR_CALM)
    assert goaway.additional_data == b"Too many control frames queued"
    assert rst_codes(attacker.received).count(FRAME_SIZE_ERROR) == 300
    acks = [f for f in attacker.received if isinstance(f, PingFrame)]
    assert len(acks) < 800, "the PINGs after the limit were not answered"
    wait_until(lambda: conn not in connections(srv), what="the connection to be released")
    client.check("after the attacker was dropped")


class StillConnected(AssertionError):
    pass


def test_control_frame_queue_attacker_is_dropped_without_reading(serve, good):
    stop = threading.Event()
    srv = serve(make_app([], stop=stop), timeout_keep_alive=1)
    client = good(srv)
    _attacker, conn = _stall_and_queue_control_frames(srv)  # closed by _close_attackers
    stop.set()
    client.check("while an attacker does not read")
    try:
        wait_until(lambda: conn not in connections(srv), timeout=4)
    except AssertionError:
        raise StillConnected(
            "the server still holds a connection it gave up on, 4 s later, "
            f"with {conn.transport.get_write_buffer_size()} bytes waiting for a peer that "
            "does not read"
        ) from None


# -- the stream limit ----------------------------------------------------------------------


def test_concurrent_stream_limit(serve, good):
    calls: list[str] = []
    gate = Gate()
    srv = serve(make_app(calls, gate), h2_max_concurrent_streams=5)
    client = good(srv)
    attacker = Attacker(srv.port)
    assert attacker.settings()[SETTINGS_MAX_CONCURRENT_STREAMS] == 5
    for sid in (1, 3, 5, 7, 9, 11):
        attacker.send(
            HeadersFrame(sid, attacker.block("/block"), flags=["END_HEADERS", "END_STREAM"])
        )
    refused = attacker.until(lambda f: isinstance(f, RstStreamFrame), "RST_STREAM")
    assert (refused.stream_id, refused.error_code) == (11, REFUSED_STREAM)
    wait_until(lambda: calls.count("/block") == 5, what="five apps to start")
    client.check("while five streams are held open")

    gate.open()
    for sid in (1, 3, 5, 7, 9):
        assert attacker.response(sid) == (200, b"ok /block")
    attacker.send(HeadersFrame(13, attacker.block("/block"), flags=["END_HEADERS", "END_STREAM"]))
    assert attacker.response(13) == (200, b"ok /block")
    assert calls.count("/block") == 6  # the refused stream never ran
    assert not [f for f in attacker.received if isinstance(f, GoAwayFrame)]


def test_reset_streams_count_until_their_apps_return(serve, good):
    """Resetting streams whose apps keep running does not free room for new ones."""
    calls: list[str] = []
    gate = Gate()
    srv = serve(make_app(calls, gate), h2_max_concurrent_streams=5)
    client = good(srv)
    attacker = Attacker(srv.port)
    for sid in (1, 3, 5, 7, 9):
        attacker.send(
            HeadersFrame(sid, attacker.block("/block"), flags=["END_HEADERS", "END_STREAM"])
        )
    wait_until(lambda: calls.count("/block") == 5, what="five apps to start")
    attacker.send(*(RstStreamFrame(sid, error_code=CANCEL) for sid in (1, 3, 5, 7, 9)))
    attacker.send(HeadersFrame(11, attacker.block("/block"), flags=["END_HEADERS", "END_STREAM"]))
    refused = attacker.until(lambda f: isinstance(f, RstStreamFrame), "RST_STREAM")
    assert (refused.stream_id, refused.error_code) == (11, REFUSED_STREAM)
    client.check("while five reset streams still run")

    gate.open()
    wait_until(lambda: not [c for c in connections(srv) if getattr(c.handler, "running", 0)])
    attacker.send(HeadersFrame(13, attacker.block("/block"), flags=["END_HEADERS", "END_STREAM"]))
    assert attacker.response(13) == (200, b"ok /block")
