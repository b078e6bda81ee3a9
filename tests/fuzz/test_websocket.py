"""Property tests for WebSocket framing (with and without permessage-deflate).

* Any bytes, in any split, with or without compression and with any
  ``max_size``: ``feed`` never raises; the events and the replies queued are
  the same as fed whole; a close ends the event list, and nothing is read after.
* Masked frames built here (text and binary, whole or fragmented, compressed
  with zlib or not, pings and pongs between fragments, a close at the end), in
  any split: exactly the messages, pongs and close sent come out, and each ping
  is answered with a pong.
"""

from __future__ import annotations

import zlib
from itertools import pairwise
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from squall.protocols.websocket.framing import (
    BYTES,
    CLOSED,
    PONG,
    TEXT,
    DeflateParams,
    WebSocketProtocol,
)
from tests.fuzz._split import mutated, splits

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


def head(opcode: int, length: int, fin: bool = True, rsv1: bool = False) -> bytes:
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    if length < 126:
        return bytes((first, length))
    if length < 65536:
        return bytes((first, 126)) + length.to_bytes(2, "big")
    return bytes((first, 127)) + length.to_bytes(8, "big")


def masked(opcode: int, payload: bytes, mask: bytes, fin: bool = True, rsv1: bool = False) -> bytes:
    """A client frame: the header with the mask bit, the key, the masked payload."""
    h = bytearray(head(opcode, len(payload), fin, rsv1))
    h[1] |= 0x80
    key = (mask * (len(payload) // 4 + 1))[: len(payload)]
    return bytes(h) + mask + bytes(a ^ b for a, b in zip(payload, key, strict=True))


def unmasked_frame(opcode: int, payload: bytes) -> bytes:
    """A server frame, as the protocol queues its replies."""
    return head(opcode, len(payload)) + payload


def run(
    chunks: list[bytes], deflate: DeflateParams | None, max_size: int | None
) -> tuple[list[tuple[int, Any]], bytes]:
    proto = WebSocketProtocol(deflate, max_size)
    events: list[tuple[int, Any]] = []
    sent = []
    for chunk in chunks:
        events += proto.feed(chunk)
        sent.append(proto.data_to_send())
    if events and events[-1][0] == CLOSED:  # nothing is read after the close
        assert proto.wants_close
        assert proto.feed(masked(OP_PING, b"x", b"abcd")) == []
        assert proto.data_to_send() == b""
    return events, b"".join(sent)


deflate_params = st.one_of(
    st.none(),
    st.builds(
        DeflateParams,
        st.booleans(),
        st.booleans(),
        st.integers(8, 15),
        st.integers(9, 15),
    ),
)

# -- properties: any bytes ------------------------------------------------------


@st.composite
def random_frames(draw: st.DrawFn) -> bytes:
    """Frames with random header bits, mostly masked, some compressed payloads."""
    out = []
    for _ in range(draw(st.integers(0, 6))):
        opcode = draw(st.integers(0, 15))
        payload = draw(
            st.one_of(
                st.binary(max_size=40),
                st.text(max_size=20).map(str.encode),
                st.binary(max_size=40).map(
                    lambda b: zlib.compress(b, wbits=-15)[:-4] if b else b"\x00"
                ),
            )
        )
        frame = bytearray(
            masked(opcode, payload, draw(st.binary(min_size=4, max_size=4)), draw(st.booleans()))
        )
        frame[0] |= draw(st.sampled_from([0, 0, 0x40, 0x20, 0x10]))
        if draw(st.integers(0, 9)) == 0:
            frame[1] &= 0x7F  # unmasked
        out.append(bytes(frame))
    return b"".join(out)


noise = st.one_of(st.binary(max_size=300), random_frames(), mutated(random_frames()))


@given(
    data=noise,
    deflate=deflate_params,
    max_size=st.one_of(st.none(), st.integers(0, 100)),
    how=st.data(),
)
def test_any_bytes_never_raise(
    data: bytes, deflate: DeflateParams | None, max_size: int | None, how: st.DataObject
) -> None:
    chunks = how.draw(splits(data))
    events, sent = run(chunks, deflate, max_size)
    assert run([data], deflate, max_size) == (events, sent)
    closes = [i for i, (kind, _) in enumerate(events) if kind == CLOSED]
    assert closes in ([], [len(events) - 1])
    for kind, value in events:
        assert kind in (TEXT, BYTES, PONG, CLOSED)
        if kind == TEXT:
            assert isinstance(value, str)
        elif kind == CLOSED:
            code, reason = value
            assert isinstance(code, int) and isinstance(reason, str)
        else:
            assert isinstance(value, bytes)
        if max_size is not None and kind in (TEXT, BYTES):
            size = len(value.encode()) if kind == TEXT else len(value)
            assert size <= max_size


# -- properties: valid frames ------------------------------------------------

payloads = st.one_of(
    st.binary(max_size=300),
    # large enough for the 16-bit and 64-bit length forms, cheap to draw
    st.tuples(st.binary(min_size=1, max_size=8), st.integers(126, 70_000)).map(
        lambda t: (t[0] * (t[1] // len(t[0]) + 1))[: t[1]]
    ),
)
texts = st.one_of(st.text(max_size=100), st.text(min_size=1, max_size=4).map(lambda t: t * 50))
control_payloads = st.binary(max_size=125)
masks = st.binary(min_size=4, max_size=4)
close_codes = st.sampled_from([1000, 1001, 1002, 1003, 1007, 1008, 1011, 1014, 3000, 4999])


@st.composite
def conversations(
    draw: st.DrawFn,
) -> tuple[DeflateParams | None, bytes, list[tuple[int, Any]], bytes]:
    """Client frames, the events they must give and the replies they must draw."""
    deflate = draw(deflate_params)
    compressor = None
    out: list[bytes] = []
    events: list[tuple[int, Any]] = []
    replies: list[bytes] = []

    def control() -> None:
        """Maybe a ping or a pong: allowed anywhere, even between fragments."""
        kind = draw(st.integers(0, 4))
        if kind == 0:
            payload = draw(control_payloads)
            out.append(masked(OP_PING, payload, draw(masks)))
            replies.append(unmasked_frame(OP_PONG, payload))
        elif kind == 1:
            payload = draw(control_payloads)
            out.append(masked(OP_PONG, payload, draw(masks)))
            events.append((PONG, payload))

    for _ in range(draw(st.integers(0, 5))):
        control()
        if draw(st.booleans()):
            text = draw(texts)
            opcode, raw, event = OP_TEXT, text.encode(), (TEXT, text)
        else:
            raw = draw(payloads)
            opcode, event = OP_BINARY, (BYTES, raw)
        compress = deflate is not None and draw(st.booleans())
        wire = raw
        if compress:
            assert deflate is not None
            if compressor is None or deflate.remote_no_context:
                bits = min(15, max(9, deflate.remote_bits))
                compressor = zlib.compressobj(
                    draw(st.integers(0, 9)), zlib.DEFLATED, -bits, draw(st.integers(1, 9))
                )
            wire = compressor.compress(raw) + compressor.flush(zlib.Z_SYNC_FLUSH)
            assert wire.endswith(b"\x00\x00\xff\xff")
            wire = wire[:-4]
        cuts = sorted(draw(st.lists(st.integers(0, len(wire)), max_size=3)))
        fragments = [wire[a:b] for a, b in pairwise([0, *cuts, len(wire)])]
        for i, fragment in enumerate(fragments):
            if i:
                control()
            out.append(
                masked(
                    OP_CONT if i else opcode,
                    fragment,
                    draw(masks),
                    fin=i == len(fragments) - 1,
                    rsv1=compress and not i,
                )
            )
        events.append(event)
    control()
    if draw(st.booleans()):
        if draw(st.booleans()):
            payload = b""
            events.append((CLOSED, (1005, "")))
        else:
            code = draw(close_codes)
            reason = draw(st.text(max_size=20).filter(lambda r: len(r.encode()) <= 123))
            payload = code.to_bytes(2, "big") + reason.encode()
            events.append((CLOSED, (code, reason)))
        out.append(masked(OP_CLOSE, payload, draw(masks)))
        replies.append(unmasked_frame(OP_CLOSE, payload))
    return deflate, b"".join(out), events, b"".join(replies)


@given(conv=conversations(), how=st.data())
def test_valid_frames_give_the_messages_in_any_split(
    conv: tuple[DeflateParams | None, bytes, list[tuple[int, Any]], bytes], how: st.DataObject
) -> None:
    deflate, data, expected, replies = conv
    chunks = how.draw(splits(data))
    for pieces in ([data], chunks):
        events, sent = run(pieces, deflate, None)
        assert events == expected
        assert sent == replies
