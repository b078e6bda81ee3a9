"""h2spec "HPACK: Header Compression for HTTP/2" (RFC 7541): decoding errors.

Each case appends (or prepends) one bad representation to a valid request
header block; RFC 9113 4.3 makes any decoding error a connection error
COMPRESSION_ERROR.
"""

from __future__ import annotations

from tests.compliance.h2spec.h2client import COMPRESSION_ERROR, H2Conn, headers


def _bad_block(h2: H2Conn, representation: bytes, *, prefix: bytes = b"") -> None:
    h2.send(headers(1, prefix + h2.request() + representation))
    h2.expect_goaway(COMPRESSION_ERROR)


# -- 2.3.3. Index Address Space --------------------------------------------------------------


def test_hpack_2_3_3_1_indexed_header_field_with_invalid_index(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST treat this as a decoding error." (indexed field, index 70)."""
    _bad_block(h2, b"\xc6")


def test_hpack_2_3_3_2_literal_header_field_with_invalid_index(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST treat this as a decoding error." (literal, name index 70)."""
    _bad_block(h2, b"\x7f\x07\x00")


# -- 4.2. Maximum Table Size -------------------------------------------------------------------


def test_hpack_4_2_1_dynamic_table_size_update_at_the_end_of_header_block(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST treat this as a decoding error."."""
    _bad_block(h2, b"\x21")  # size update (to 1) after the fields


# -- 5.2. String Literal Representation ----------------------------------------------------------


def test_hpack_5_2_1_huffman_string_with_padding_longer_than_7_bits(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST treat this as a decoding error."."""
    _bad_block(h2, b"\x00\x85\xf2\xb2\x4a\x84\xff\x84\x49\x50\x9f\xff")


def test_hpack_5_2_2_huffman_string_padded_by_zero(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST treat this as a decoding error."."""
    _bad_block(h2, b"\x00\x85\xf2\xb2\x4a\x84\xff\x83\x49\x50\x90")


def test_hpack_5_2_3_huffman_string_containing_the_eos_symbol(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST treat this as a decoding error."."""
    _bad_block(h2, b"\x00\x85\xf2\xb2\x4a\x87\xff\xff\xff\xfd\x25\x42\x7f")


# -- 6.1. Indexed Header Field Representation ------------------------------------------------------


def test_hpack_6_1_1_indexed_header_field_with_index_0(h2: H2Conn) -> None:
    """h2spec: "The endpoint MUST treat this as a decoding error."."""
    _bad_block(h2, b"\x80")


# -- 6.3. Dynamic Table Size Update ---------------------------------------------------------


def test_hpack_6_3_1_table_size_update_larger_than_settings_header_table_size(
    h2: H2Conn,
) -> None:
    """h2spec: "The endpoint MUST treat this as a decoding error." (4097 > 4096)."""
    _bad_block(h2, b"", prefix=b"\x3f\xe2\x1f")  # 31 + 98 + (31 << 7) = 4097
