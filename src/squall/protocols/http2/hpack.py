"""HPACK (RFC 7541) for a server: a full decoder and a stateless encoder.

The decoder keeps the peer's dynamic table and reads every representation.
Huffman-coded strings are decoded by the ``hpack`` package's table-driven
decoder (a dependency of ``h2``), with a small cache, since clients repeat the
same few literals.

The encoder never inserts into the dynamic table: every field is indexed
from the static table or sent as a literal without indexing. That costs a few
bytes per response but makes encoding a pure function of the headers, so
pieces (status, default headers) can be precomputed and the peer's table size
setting never matters.

Errors raise :class:`HPACKError`; the caller answers COMPRESSION_ERROR.
"""

from __future__ import annotations

from collections import deque

from hpack.exceptions import HPACKDecodingError
from hpack.huffman_table import decode_huffman
from hpack.table import HeaderTable

STATIC_TABLE: tuple[tuple[bytes, bytes], ...] = HeaderTable.STATIC_TABLE
_STATIC_LEN = len(STATIC_TABLE)  # 61
ENTRY_OVERHEAD = 32


class HPACKError(Exception):
    """A header block that cannot be decoded."""


class HeaderListTooLarge(Exception):
    """The decoded header list is larger than the limit (the table stays in sync)."""


def _integer(data: bytes, pos: int, prefix_mask: int) -> tuple[int, int]:
    """Decode an integer whose prefix is in ``data[pos]``; return (value, next pos)."""
    value = data[pos] & prefix_mask
    pos += 1
    if value < prefix_mask:
        return value, pos
    shift = 0
    end = len(data)
    while True:
        if pos >= end:
            raise HPACKError("Truncated integer")
        byte = data[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 28:  # nothing legitimate needs more than 2**28
            raise HPACKError("Integer too large")


_huffman_cache: dict[bytes, bytes] = {}


def _string(data: bytes, pos: int) -> tuple[bytes, int]:
    if pos >= len(data):
        raise HPACKError("Truncated string")
    huffman = data[pos] & 0x80
    length, pos = _integer(data, pos, 0x7F)
    end = pos + length
    if end > len(data):
        raise HPACKError("Truncated string")
    raw = data[pos:end]
    if not huffman:
        return raw, end
    text = _huffman_cache.get(raw)
    if text is None:
        try:
            text = decode_huffman(raw)
        except HPACKDecodingError as exc:
            raise HPACKError(f"Invalid Huffman string: {exc}") from None
        if len(raw) <= 128:
            if len(_huffman_cache) >= 1024:
                _huffman_cache.clear()
            _huffman_cache[raw] = text
    return text, end


class Decoder:
    """The peer's encoder state; ``decode`` one header block at a time."""

    __slots__ = ("_entries", "_size", "max_size", "settings_size")

    def __init__(self, settings_size: int = 4096) -> None:
        self._entries: deque[tuple[bytes, bytes]] = deque()
        self._size = 0
        self.settings_size = settings_size  # our SETTINGS_HEADER_TABLE_SIZE
        self.max_size = settings_size  # as last set by the peer

    def _get(self, index: int) -> tuple[bytes, bytes]:
        if index <= 0:
            raise HPACKError("Index 0 is not used")
        if index <= _STATIC_LEN:
            return STATIC_TABLE[index - 1]
        index -= _STATIC_LEN + 1
        if index >= len(self._entries):
            raise HPACKError("Index beyond the dynamic table")
        return self._entries[index]

    def _insert(self, name: bytes, value: bytes) -> None:
        size = len(name) + len(value) + ENTRY_OVERHEAD
        entries = self._entries
        if size > self.max_size:
            entries.clear()
            self._size = 0
            return
        self._size += size
        while self._size > self.max_size:
            old_name, old_value = entries.pop()
            self._size -= len(old_name) + len(old_value) + ENTRY_OVERHEAD
        entries.appendleft((name, value))

    def _resize(self, size: int) -> None:
        if size > self.settings_size:
            raise HPACKError("Table size update above SETTINGS_HEADER_TABLE_SIZE")
        self.max_size = size
        entries = self._entries
        while self._size > size:
            old_name, old_value = entries.pop()
            self._size -= len(old_name) + len(old_value) + ENTRY_OVERHEAD

    def decode(self, data: bytes, max_list_size: int) -> list[tuple[bytes, bytes]]:
        """Decode a whole header block.

        Raises HPACKError for a bad block, and HeaderListTooLarge (after
        decoding all of it, so the table stays right) when the fields add up
        to more than ``max_list_size`` as RFC 9113 counts them.
        """
        headers: list[tuple[bytes, bytes]] = []
        pos = 0
        end = len(data)
        list_size = 0
        fields_seen = False
        while pos < end:
            byte = data[pos]
            if byte & 0x80:  # indexed field
                index, pos = _integer(data, pos, 0x7F)
                name, value = self._get(index)
            elif byte & 0x40:  # literal with incremental indexing
                index, pos = _integer(data, pos, 0x3F)
                if index:
                    name = self._get(index)[0]
                else:
                    name, pos = _string(data, pos)
                value, pos = _string(data, pos)
                self._insert(name, value)
            elif byte & 0x20:  # dynamic table size update
                if fields_seen:
                    raise HPACKError("Table size update after a field")
                size, pos = _integer(data, pos, 0x1F)
                self._resize(size)
                continue
            else:  # literal without indexing (0000) or never indexed (0001)
                index, pos = _integer(data, pos, 0x0F)
                if index:
                    name = self._get(index)[0]
                else:
                    name, pos = _string(data, pos)
                value, pos = _string(data, pos)
            fields_seen = True
            list_size += len(name) + len(value) + ENTRY_OVERHEAD
            if list_size <= max_list_size:
                headers.append((name, value))
        if list_size > max_list_size:
            raise HeaderListTooLarge(list_size)
        return headers


# -- encoding ---------------------------------------------------------------


def encode_integer(value: int, prefix_bits: int, flags: int = 0) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((flags | value,))
    out = bytearray((flags | limit,))
    value -= limit
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_string(value: bytes) -> bytes:
    return encode_integer(len(value), 7) + value


# name -> static index of its first entry, for literal fields with an indexed name
_STATIC_NAMES: dict[bytes, int] = {}
for _i, (_name, _) in enumerate(STATIC_TABLE, 1):
    _STATIC_NAMES.setdefault(_name, _i)
_STATIC_FIELDS = {entry: i for i, entry in enumerate(STATIC_TABLE, 1)}

_literal_names: dict[bytes, bytes] = {}


def encode_field(name: bytes, value: bytes) -> bytes:
    """One field (``name`` already lowercase), indexed if it is in the static table."""
    index = _STATIC_FIELDS.get((name, value))
    if index is not None:
        return bytes((0x80 | index,))
    prefix = _literal_names.get(name)
    if prefix is None:
        static = _STATIC_NAMES.get(name)
        prefix = encode_integer(static, 4) if static else b"\x00" + encode_string(name)
        if len(_literal_names) < 1024:
            _literal_names[name] = prefix
    return prefix + encode_integer(len(value), 7) + value


def _status_field(code: int) -> bytes:
    return encode_field(b":status", b"%d" % code)


STATUS_FIELDS = {code: _status_field(code) for code in range(100, 600)}
