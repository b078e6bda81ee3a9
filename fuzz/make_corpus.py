"""Write the seed corpus in fuzz/corpus/<target>/: small valid and tricky inputs.

Run from anywhere: ``python fuzz/make_corpus.py``. The files are committed;
rerun this after changing the seeds below.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import zlib
from pathlib import Path

import hpack

CORPUS = Path(__file__).resolve().parent / "corpus"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def h1_seeds() -> dict[str, bytes]:
    host = b"Host: example.org\r\n"
    return {
        "get": b"GET / HTTP/1.1\r\n" + host + b"\r\n",
        "post-length": b"POST /form?a=1 HTTP/1.1\r\n" + host + b"Content-Length: 5\r\n\r\nhello",
        "chunked-trailers": b"POST /up HTTP/1.1\r\n"
        + host
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + b'5;ext=1;q="x y"\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n',
        "pipelined": b"GET /a HTTP/1.1\r\n"
        + host
        + b"\r\nHEAD /b HTTP/1.1\r\n"
        + host
        + b"\r\nGET /c HTTP/1.1\r\n"
        + host
        + b"Connection: close\r\n\r\n",
        "http10-keep-alive": b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        + b"GET / HTTP/1.0\r\n\r\n",
        "upgrade-with-body": b"POST /ws HTTP/1.1\r\n"
        + host
        + b"Connection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 3\r\n\r\nabc",
        "connect": b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n",
        "expect-continue": b"PUT /x HTTP/1.1\r\n"
        + host
        + b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
        "leading-crlf-absolute": b"\r\nGET http://example.org/p HTTP/1.1\r\n" + host + b"\r\n",
        "obs-text-ows": b"GET / HTTP/1.1\r\n" + host + b"X-A: \t caf\xc3\xa9 \t\r\n\r\n",
        # refused: request smuggling shapes, bad framing, limits
        "cl-and-te": b"POST / HTTP/1.1\r\n"
        + host
        + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "double-cl": b"POST / HTTP/1.1\r\n"
        + host
        + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "obs-fold": b"GET / HTTP/1.1\r\n" + host + b"X-A: a\r\n b\r\n\r\n",
        "bare-lf": b"GET / HTTP/1.1\n" + host + b"\n",
        "chunk-size-overflow": b"POST / HTTP/1.1\r\n"
        + host
        + b"Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n",
        "te-gzip-chunked": b"POST / HTTP/1.1\r\n"
        + host
        + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        "unknown-method": b"BREW /pot HTTP/1.1\r\n" + host + b"\r\n",
        "http2-version": b"GET / HTTP/2.0\r\n" + host + b"\r\n",
    }


def frame(ftype: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return (
        struct.pack(">L", len(payload))[1:]
        + bytes((ftype, flags))
        + struct.pack(">L", stream_id)
        + payload
    )


def h2_seeds() -> dict[str, bytes]:
    get = [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/"), (b":authority", b"a")]
    post = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/up")]
    post.append((b"content-length", b"5"))
    settings = frame(4, 0, 0, struct.pack(">HLHL", 3, 100, 4, 65535))
    start = PREFACE + settings + frame(4, 1, 0, b"")
    block = hpack.Encoder().encode(get)
    post_block = hpack.Encoder().encode(post)
    enc = hpack.Encoder()  # one connection, one encoder: blocks in the order sent
    post_trailers_get = [
        enc.encode(post),
        enc.encode([(b"x-sum", b"1")]),
        enc.encode([*get, (b"cookie", b"a=1"), (b"cookie", b"b=2")]),
    ]
    return {
        "get": start + frame(1, 0x5, 1, block),
        "post-continuation-data": start
        + frame(1, 0x0, 1, post_block[:3])
        + frame(9, 0x4, 1, post_block[3:])
        + frame(0, 0x0, 1, b"hel")
        + frame(0, 0x1, 1, b"lo"),
        "padded-priority": start
        + frame(1, 0x5 | 0x8 | 0x20, 1, b"\x02" + b"\x00\x00\x00\x00\x10" + block + b"\x00\x00")
        + frame(2, 0, 3, b"\x00\x00\x00\x01\x10"),
        "trailers-cookies": start
        + frame(1, 0x4, 1, post_trailers_get[0])
        + frame(0, 0x8, 1, b"\x01hello\x00")
        + frame(1, 0x5, 1, post_trailers_get[1])
        + frame(1, 0x5, 3, post_trailers_get[2]),
        "control": start
        + frame(6, 0, 0, b"12345678")
        + frame(8, 0, 0, b"\x00\x00\x10\x00")
        + frame(1, 0x4, 1, block)
        + frame(8, 0, 1, b"\x00\x00\x00\x10")
        + frame(3, 0, 1, b"\x00\x00\x00\x08")
        + frame(7, 0, 0, b"\x00\x00\x00\x01\x00\x00\x00\x00"),
        "table-size-update": start + frame(1, 0x5, 1, b"\x20" + block),
        "extension-frame": start + frame(0xFA, 0xFF, 5, b"ignored"),
        # connection errors
        "data-idle-stream": start + frame(0, 0, 7, b"x"),
        "bad-preface": b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n",
        "headers-stream-0": start + frame(1, 0x5, 0, block),
        "bad-hpack-index": start + frame(1, 0x5, 1, b"\xff\x80\x80\x80\x80\x08"),
        "window-overflow": start + frame(8, 0, 0, b"\x7f\xff\xff\xff"),
    }


def hpack_seeds() -> dict[str, bytes]:
    headers = [(b":method", b"GET"), (b":path", b"/index.html"), (b"user-agent", b"squall-fuzz")]
    enc = hpack.Encoder()
    first = enc.encode(headers)
    enc.header_table_size = 256
    return {
        "static-and-literal": hpack.Encoder().encode(headers, huffman=False),
        "huffman": hpack.Encoder().encode(headers, huffman=True),
        "dynamic-reuse": first + enc.encode(headers),
        "never-indexed": hpack.Encoder().encode([(b"authorization", b"secret", True)]),
        "size-update": b"\x3f\xe1\x1f" + b"\x82",  # size 4096, then :method GET
        # errors
        "index-zero": b"\x80",
        "index-beyond": b"\xbf\x10",
        "truncated-integer": b"\x7f\xff",
        "integer-overflow": b"\xff\xff\xff\xff\xff\xff\x01",
        "huffman-bad-padding": b"\x00\x81\x00\x81\x00",
        "size-update-after-field": b"\x82\x20",
    }


def masked(opcode: int, payload: bytes, fin: bool = True, rsv1: bool = False) -> bytes:
    mask = hashlib.sha1(payload).digest()[:4]
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    if n < 126:
        head = bytes((first, 0x80 | n))
    elif n < 65536:
        head = bytes((first, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((first, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def ws_seeds() -> dict[str, bytes]:
    c = zlib.compressobj(wbits=-15)
    packed = (c.compress(b"hello hello hello") + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
    return {
        "text": masked(1, "héllo".encode()),
        "binary-16bit-length": masked(2, bytes(range(256)) * 2),
        "fragmented-with-ping": masked(1, b"frag", fin=False)
        + masked(9, b"ping")
        + masked(0, b"ment", fin=False)
        + masked(0, b"ed"),
        "pong-close": masked(10, b"p") + masked(8, b"\x03\xe8bye"),
        "compressed": masked(1, packed, rsv1=True)
        + masked(2, packed[:3], fin=False, rsv1=True)
        + masked(0, packed[3:]),
        # errors
        "unmasked": b"\x81\x02hi",
        "bad-utf8": masked(1, b"\xff\xfe"),
        "reserved-opcode": masked(3, b"x"),
        "close-one-byte": masked(8, b"\x03"),
        "long-control": masked(9, b"x" * 126),
        "continuation-first": masked(0, b"x"),
    }


def proxy_seeds() -> dict[str, bytes]:
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    inet = bytes([192, 0, 2, 1, 198, 51, 100, 2]) + struct.pack(">HH", 56324, 443)
    inet6 = bytes(15) + b"\x01" + bytes(15) + b"\x02" + struct.pack(">HH", 1, 2)
    tlv = b"\x04\x00\x03abc"
    return {
        "v1-tcp4": b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET / HTTP/1.1\r\n",
        "v1-tcp6": b"PROXY TCP6 2001:db8::1 ::1 1 65535\r\n",
        "v1-unknown": b"PROXY UNKNOWN\r\n",
        "v2-inet": sig + b"\x21\x11" + struct.pack(">H", len(inet)) + inet,
        "v2-inet6-tlv": sig + b"\x21\x21" + struct.pack(">H", len(inet6) + len(tlv)) + inet6 + tlv,
        "v2-local": sig + b"\x20\x00\x00\x00",
        "v2-unix": sig + b"\x21\x31" + struct.pack(">H", 216) + bytes(216),
        # errors
        "v1-port-leading-zero": b"PROXY TCP4 1.2.3.4 5.6.7.8 080 443\r\n",
        "v1-too-long": b"PROXY UNKNOWN " + b"x" * 120 + b"\r\n",
        "v2-bad-version": sig + b"\x11\x11\x00\x0c" + inet,
        "v2-short-inet": sig + b"\x21\x11\x00\x04" + inet[:4],
    }


# -- the whole connection (fuzz/conn_harness.py: the app is chosen by the path)

WS_KEY = b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"


def _websocket_upgrade(path: bytes, extra: bytes = b"") -> bytes:
    return (
        b"GET " + path + b" HTTP/1.1\r\nHost: example.org\r\n"
        b"Connection: Upgrade\r\nUpgrade: websocket\r\n" + WS_KEY + extra + b"\r\n"
    )


def _h2c_upgrade(request: bytes, settings: bytes, body: bytes = b"") -> bytes:
    value = base64.urlsafe_b64encode(settings).rstrip(b"=")
    return (
        request.replace(
            b"\r\n\r\n",
            b"\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
            b"HTTP2-Settings: " + value + b"\r\n\r\n",
            1,
        )
        + body
    )


def conn_h1_seeds() -> dict[str, bytes]:
    host = b"Host: example.org\r\n"
    get_block = hpack.Encoder().encode(
        [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/stream"), (b":authority", b"a")]
    )
    h2_after = PREFACE + frame(4, 0, 0, b"") + frame(1, 0x5, 3, get_block)
    h2_after += frame(6, 0, 0, b"12345678") + frame(8, 0, 1, b"\x00\x00\x10\x00")
    settings = struct.pack(">HLHL", 3, 100, 4, 65535)
    c = zlib.compressobj(wbits=-15)
    packed = (c.compress(b"hello hello hello") + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
    seeds = dict(h1_seeds())
    seeds.update(
        {
            "routes-pipelined": b"GET /stream HTTP/1.1\r\n"
            + host
            + b"\r\nGET /trailers HTTP/1.1\r\n"
            + host
            + b"TE: trailers\r\n\r\nGET /early HTTP/1.1\r\n"
            + host
            + b"\r\nHEAD /empty HTTP/1.1\r\n"
            + host
            + b"\r\nPOST /echo HTTP/1.1\r\n"
            + host
            + b"Content-Length: 3\r\n\r\nabc",
            "stream-chunked-trailers": b"POST /stream HTTP/1.1\r\n"
            + host
            + b"Transfer-Encoding: chunked\r\nTE: trailers\r\n\r\n"
            + b"3\r\nabc\r\n4\r\ndefg\r\n0\r\nX-Sum: 7\r\n\r\n",
            "trailers-undrained-body": b"POST /trailers HTTP/1.1\r\n"
            + host
            + b"TE: trailers\r\nContent-Length: 10\r\n\r\n0123456789GET / HTTP/1.1\r\n"
            + host
            + b"\r\n",
            "fail-after-start": b"GET /fail HTTP/1.1\r\n" + host + b"\r\nGET / HTTP/1.1\r\n\r\n",
            "fail-before-body": b"POST /fail0 HTTP/1.1\r\n" + host + b"Content-Length: 1\r\n\r\nx",
            "http10-close-delimited": b"GET /stream HTTP/1.0\r\n\r\n",
            "body-over-limit": b"POST /echo HTTP/1.1\r\n"
            + host
            + b"Transfer-Encoding: chunked\r\n\r\n"
            + (b"c8\r\n" + b"x" * 200 + b"\r\n") * 2
            + b"0\r\n\r\n",
            "proxy-headers": b"GET / HTTP/1.1\r\n"
            + host
            + b"X-Forwarded-For: 192.0.2.1, 10.0.0.1\r\nX-Forwarded-Proto: https\r\n"
            + b"Forwarded: for=192.0.2.60;proto=http;by=203.0.113.43\r\n\r\n",
            "prior-knowledge": PREFACE + frame(4, 0, 0, b"") + frame(1, 0x5, 1, get_block),
            "websocket-echo": _websocket_upgrade(b"/ws", b"Sec-WebSocket-Protocol: chat, x\r\n")
            + masked(1, "héllo".encode())
            + masked(2, bytes(range(200)))
            + masked(1, b"frag", fin=False)
            + masked(9, b"ping")
            + masked(0, b"ment")
            + masked(1, b"close")
            + masked(8, b"\x03\xe8bye"),
            "websocket-deflate": _websocket_upgrade(
                b"/ws", b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
            )
            + masked(1, packed, rsv1=True)
            + masked(8, b"\x03\xe8"),
            "websocket-deny": _websocket_upgrade(b"/deny") + masked(1, b"early"),
            "websocket-close": _websocket_upgrade(b"/close"),
            "websocket-bad-key": _websocket_upgrade(b"/ws").replace(b"dGhl", b"!!!!"),
            "websocket-bad-frame": _websocket_upgrade(b"/ws") + b"\x81\x02hi",
            "h2c-upgrade": _h2c_upgrade(b"GET /stream HTTP/1.1\r\n" + host + b"\r\n", settings)
            + h2_after,
            "h2c-body-continue": _h2c_upgrade(
                b"POST /echo HTTP/1.1\r\n"
                + host
                + b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\n",
                settings,
                b"hello",
            )
            + h2_after,
            "h2c-bad-settings": _h2c_upgrade(
                b"GET / HTTP/1.1\r\n" + host + b"\r\n", b"\x00\x04\x80\x00\x00\x00"
            )
            + h2_after,
        }
    )
    return seeds


def conn_h2_seeds() -> dict[str, bytes]:
    start = PREFACE + frame(4, 0, 0, struct.pack(">HL", 4, 65535)) + frame(4, 1, 0, b"")

    def request(
        enc: hpack.Encoder, method: bytes, path: bytes, *extra: tuple[bytes, bytes]
    ) -> bytes:
        fields = [(b":method", method), (b":scheme", b"https"), (b":path", path)]
        return enc.encode([*fields, (b":authority", b"example.org"), *extra])

    def connect(enc: hpack.Encoder, path: bytes) -> bytes:
        fields = [(b":method", b"CONNECT"), (b":protocol", b"websocket"), (b":scheme", b"https")]
        fields += [(b":path", path), (b":authority", b"example.org")]
        return enc.encode([*fields, (b"sec-websocket-version", b"13")])

    seeds = dict(h2_seeds())
    enc = hpack.Encoder()
    routes = [
        request(enc, b"GET", b"/stream"),
        request(enc, b"GET", b"/trailers", (b"te", b"trailers")),
        request(enc, b"GET", b"/early"),
        request(enc, b"HEAD", b"/empty"),
        request(enc, b"GET", b"/fail"),
        request(enc, b"GET", b"/fail0"),
        request(enc, b"HEAD", b"/echo"),
    ]
    seeds["routes"] = start + b"".join(
        frame(1, 0x5, 2 * i + 1, block) for i, block in enumerate(routes)
    )
    enc = hpack.Encoder()
    seeds["websocket"] = (
        start
        + frame(1, 0x4, 1, connect(enc, b"/ws"))
        + frame(0, 0, 1, masked(1, b"hello") + masked(9, b"ping"))
        + frame(0, 0, 1, masked(1, b"frag", fin=False))
        + frame(0, 0, 1, masked(0, b"ment"))
        + frame(0, 0x1, 1, masked(8, b"\x03\xe8bye"))
    )
    enc = hpack.Encoder()
    bad = [b"", b"*", b"ws", b"/a b", b"//x", b"/%zz", b"/deny", b"/close"]
    seeds["websocket-paths"] = start + b"".join(
        frame(1, 0x4, 2 * i + 1, connect(enc, path)) for i, path in enumerate(bad)
    )
    enc = hpack.Encoder()
    seeds["reset-mid-body"] = (
        start
        + frame(1, 0x4, 1, request(enc, b"POST", b"/stream"))
        + frame(0, 0, 1, b"abc")
        + frame(3, 0, 1, b"\x00\x00\x00\x08")
        + frame(0, 0, 1, b"late")
        + frame(1, 0x5, 3, request(enc, b"GET", b"/"))
    )
    enc = hpack.Encoder()
    seeds["window-zero"] = (
        PREFACE
        + frame(4, 0, 0, struct.pack(">HL", 4, 0))
        + frame(1, 0x5, 1, request(enc, b"GET", b"/stream"))
        + frame(8, 0, 1, b"\x00\x00\x00\x03")
        + frame(4, 0, 0, struct.pack(">HL", 4, 100000))
        + frame(8, 0, 0, b"\x00\x01\x00\x00")
    )
    enc = hpack.Encoder()
    seeds["settings-mid-stream"] = (
        start
        + frame(1, 0x4, 1, request(enc, b"POST", b"/echo", (b"content-length", b"8")))
        + frame(0, 0, 1, b"abcd")
        + frame(4, 0, 0, struct.pack(">HLHLHL", 1, 0, 5, 20000, 4, 1 << 20))
        + frame(1, 0x5, 3, request(enc, b"GET", b"/trailers"))
        + frame(0, 0x1, 1, b"efgh")
    )
    enc = hpack.Encoder()
    seeds["data-over-length"] = (
        start
        + frame(1, 0x4, 1, request(enc, b"POST", b"/echo", (b"content-length", b"3")))
        + frame(0, 0x1, 1, b"too long")
    )
    enc = hpack.Encoder()
    seeds["data-over-limit"] = (
        start
        + frame(1, 0x4, 1, request(enc, b"POST", b"/stream"))
        + frame(0, 0, 1, b"x" * 200)
        + frame(0, 0x1, 1, b"y" * 200)
    )
    enc = hpack.Encoder()
    block = request(enc, b"GET", b"/", (b"x-a", b"1" * 40))
    seeds["continuation-many"] = (
        start
        + frame(1, 0x1, 1, block[:5])
        + b"".join(frame(9, 0, 1, block[i : i + 10]) for i in range(5, len(block) - 10, 10))
        + frame(9, 0x4, 1, block[len(block) - 10 :])
    )
    enc = hpack.Encoder()
    seeds["goaway-from-client"] = (
        start
        + frame(1, 0x4, 1, request(enc, b"POST", b"/stream"))
        + frame(7, 0, 0, b"\x00\x00\x00\x00\x00\x00\x00\x00")
        + frame(0, 0x1, 1, b"after goaway")
    )
    return seeds


SEEDS = {
    "h1": h1_seeds,
    "h2": h2_seeds,
    "hpack": hpack_seeds,
    "ws": ws_seeds,
    "proxy": proxy_seeds,
    "conn_h1": conn_h1_seeds,
    "conn_h2": conn_h2_seeds,
}


def main() -> None:
    for target, seeds in SEEDS.items():
        folder = CORPUS / target
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in seeds().items():
            (folder / name).write_bytes(data)


if __name__ == "__main__":
    main()
