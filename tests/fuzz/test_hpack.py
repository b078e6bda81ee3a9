"""Property tests for Squall's HPACK decoder (and its stateless encoder).

* Any bytes, block after block on one decoder: ``decode`` raises nothing but
  HPACKError or HeaderListTooLarge, and the dynamic table stays within its size.
* Header lists encoded by the ``hpack`` package (Huffman or not, indexed,
  never-indexed, table size updates), block after block sharing the dynamic
  table, decode to the same lists; a list over the limit raises
  HeaderListTooLarge and leaves the table in step for the next block.
* What Squall's own encoder writes, the ``hpack`` package reads back.
"""

from __future__ import annotations

import hpack
from hypothesis import given
from hypothesis import strategies as st

from squall.protocols.http2.hpack import (
    ENTRY_OVERHEAD,
    Decoder,
    HeaderListTooLarge,
    HPACKError,
    encode_field,
)
from tests.fuzz._split import mutated

names = st.one_of(
    st.sampled_from(
        [b":method", b":path", b":authority", b"user-agent", b"accept", b"cookie", b"x-trace"]
    ),
    st.binary(min_size=1, max_size=20),
)
values = st.one_of(st.sampled_from([b"", b"GET", b"/", b"gzip, deflate"]), st.binary(max_size=60))
header_lists = st.lists(st.tuples(names, values, st.booleans()), max_size=12)


def list_size(headers: list[tuple[bytes, bytes]]) -> int:
    return sum(len(n) + len(v) + ENTRY_OVERHEAD for n, v in headers)


def check_table(decoder: Decoder) -> None:
    entries = decoder._entries
    assert decoder._size == list_size(list(entries))
    assert decoder._size <= decoder.max_size <= decoder.settings_size


@st.composite
def encoded_blocks(draw: st.DrawFn) -> list[bytes]:
    """A few blocks from one hpack.Encoder, its table resized now and then."""
    encoder = hpack.Encoder()
    blocks = []
    for headers in draw(st.lists(header_lists, min_size=1, max_size=4)):
        if draw(st.integers(0, 3)) == 0:
            encoder.header_table_size = draw(st.integers(0, 4096))
        blocks.append(encoder.encode(headers, huffman=draw(st.booleans())))
    return blocks


@given(
    blocks=st.lists(
        st.one_of(st.binary(max_size=200), mutated(encoded_blocks().map(b"".join))), max_size=4
    )
)
def test_any_bytes_raise_only_hpack_errors(blocks: list[bytes]) -> None:
    decoder = Decoder()
    for block in blocks:
        try:
            headers = decoder.decode(block, 1024)
        except (HPACKError, HeaderListTooLarge):
            pass
        else:
            assert list_size(headers) <= 1024
            assert all(isinstance(n, bytes) and isinstance(v, bytes) for n, v in headers)
        check_table(decoder)


@given(lists=st.lists(header_lists, min_size=1, max_size=6), data=st.data())
def test_encoder_blocks_decode_to_the_same_lists(
    lists: list[list[tuple[bytes, bytes, bool]]], data: st.DataObject
) -> None:
    encoder = hpack.Encoder()
    decoder = Decoder()
    for headers in lists:
        if data.draw(st.integers(0, 3)) == 0:
            encoder.header_table_size = data.draw(st.integers(0, 4096))
        block = encoder.encode(headers, huffman=data.draw(st.booleans()))
        expected = [(n, v) for n, v, _ in headers]
        limit = data.draw(st.sampled_from([1 << 20, list_size(expected), 0, 100]))
        if list_size(expected) > limit:
            try:
                decoder.decode(block, limit)
            except HeaderListTooLarge as exc:
                assert exc.args[0] == list_size(expected)
            else:
                raise AssertionError("no HeaderListTooLarge")
        else:
            assert decoder.decode(block, limit) == expected
        check_table(decoder)


@given(headers=st.lists(st.tuples(names.map(bytes.lower), values), max_size=12))
def test_squall_encoder_is_read_back_by_hpack(headers: list[tuple[bytes, bytes]]) -> None:
    block = b"".join(encode_field(n, v) for n, v in headers)
    assert hpack.Decoder().decode(block, raw=True) == headers
    assert Decoder().decode(block, 1 << 20) == headers
