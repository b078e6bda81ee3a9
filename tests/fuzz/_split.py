"""Cutting bytes into the pieces a socket might deliver them in."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import strategies as st


def cut(data: bytes, points: list[int]) -> list[bytes]:
    """``data`` cut at ``points`` (any order, repeats and ends allowed)."""
    bounds = [0, *sorted(set(points)), len(data)]
    return [data[a:b] for a, b in pairwise(bounds) if b > a]


def splits(data: bytes) -> st.SearchStrategy[list[bytes]]:
    """Ways to deliver ``data``: whole, at arbitrary cut points, or in equal steps."""
    n = len(data)
    if n < 2:
        return st.just([data] if data else [])
    points = st.lists(st.integers(1, n - 1), max_size=min(n - 1, 32)).map(lambda ps: cut(data, ps))
    steps = st.integers(1, min(n, 64)).map(lambda s: [data[i : i + s] for i in range(0, n, s)])
    return st.one_of(points, steps, st.just([data[i : i + 1] for i in range(n)]))


# bytes that parsers treat specially, for mutations of valid input
_INTERESTING = (
    b"\r",
    b"\n",
    b"\r\n",
    b"\r\n\r\n",
    b" ",
    b"\t",
    b":",
    b";",
    b",",
    b'"',
    b"\\",
    b"\x00",
    b"\x7f",
    b"\xff",
    b"0",
    b"f",
    b"-",
    b"chunked",
    b"Content-Length: 5\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Host: x\r\n",
    b"Connection: close\r\n",
)


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes], max_edits: int = 4) -> bytes:
    """A valid input from ``base`` with a few random edits: the shape fuzzers find bugs in."""
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(1, max_edits))):
        pos = draw(st.integers(0, len(data)))
        kind = draw(st.integers(0, 4))
        if kind == 0:  # insert something interesting
            data[pos:pos] = draw(st.sampled_from(_INTERESTING))
        elif kind == 1:  # insert random bytes
            data[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        elif kind == 2:  # delete a short range
            del data[pos : pos + draw(st.integers(1, 8))]
        elif kind == 3 and pos < len(data):  # flip one byte
            data[pos] = draw(st.integers(0, 255))
        else:  # duplicate a short range
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 16))]
    return bytes(data)
