"""ASGI extensions: trailers, early hints, pathsend, zerocopysend and the ``tls`` scope.

Each extension is checked on the wire: HTTP/1.1 with both parser backends (raw
sockets, so framing is parsed byte by byte), HTTP/2 with prior knowledge (the
``h2`` library over a raw socket, frames tracked too) and over TLS (ALPN ``h2``
and HTTP/1.1), plus curl and httpx where a real client says more.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import ssl
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.settings
import httpx
import pytest
import trustme
from cryptography import x509

from squall.connection.sendfile import FileShorterThanCount
from tests.conftest import RawClient
from tests.integration.helpers import PROPAGATE_LOGS, Gate, parse_response, request, wait_until

pytestmark = pytest.mark.usefixtures("fast_tick")

EXTENSION_NAMES = (
    "http.response.trailers",
    "http.response.early_hint",
    "http.response.pathsend",
    "http.response.zerocopysend",
)
BIG = 5 * 1024 * 1024
LINKS = [b"</a.css>; rel=preload; as=style", b"</b.js>; rel=preload; as=script"]
# IANA TLS cipher suite ids, by OpenSSL name (the ground truth for cipher_suite)
IANA_CIPHERS = {
    "TLS_AES_128_GCM_SHA256": 0x1301,
    "TLS_AES_256_GCM_SHA384": 0x1302,
    "TLS_CHACHA20_POLY1305_SHA256": 0x1303,
    "ECDHE-ECDSA-AES128-GCM-SHA256": 0xC02B,
    "ECDHE-ECDSA-AES256-GCM-SHA384": 0xC02C,
    "ECDHE-ECDSA-CHACHA20-POLY1305": 0xCCA9,
    "ECDHE-RSA-AES128-GCM-SHA256": 0xC02F,
    "ECDHE-RSA-AES256-GCM-SHA384": 0xC030,
}

# H2 frame types
DATA, HEADERS, RST_STREAM = 0x0, 0x1, 0x3
END_STREAM = 0x1
INTERNAL_ERROR = 0x2


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, bytes]:
    """5 MB of random bytes in a file: (absolute path, content)."""
    data = os.urandom(BIG)
    path = tmp_path_factory.mktemp("ext") / "big.bin"
    path.write_bytes(data)
    return str(path), data


@pytest.fixture
def small_file(tmp_path: Path) -> tuple[str, bytes]:
    data = bytes(range(256)) * 4  # 1024 bytes, every offset recognisable
    path = tmp_path / "small.bin"
    path.write_bytes(data)
    return str(path), data


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_files(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("ext-tls")
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert(
        "client@example.com", common_name="squall-client", organization_name="Squall, Inc."
    )
    files = {
        "cert": folder / "server-cert.pem",
        "key": folder / "server-key.pem",
        "ca": folder / "ca.pem",
        "client": folder / "client.pem",
    }
    files["cert"].write_bytes(b"".join(p.bytes() for p in server.cert_chain_pems))
    server.private_key_pem.write_to_path(str(files["key"]))
    ca.cert_pem.write_to_path(str(files["ca"]))
    client.private_key_and_cert_chain_pem.write_to_path(str(files["client"]))
    out = {name: str(path) for name, path in files.items()}
    out["server_leaf"] = server.cert_chain_pems[0].bytes().decode()
    out["client_leaf"] = client.cert_chain_pems[0].bytes().decode()
    return out


def tls_options(tls_files: dict[str, str], mtls: bool = False) -> dict[str, object]:
    options: dict[str, object] = {
        "ssl_certfile": tls_files["cert"],
        "ssl_keyfile": tls_files["key"],
    }
    if mtls:
        options.update(ssl_ca_certs=tls_files["ca"], ssl_cert_reqs=2)
    return options


def client_context(
    tls_files: dict[str, str],
    alpn: list[str] | None = None,
    client_cert: bool = False,
    max_version: ssl.TLSVersion | None = None,
) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=tls_files["ca"])
    if alpn:
        context.set_alpn_protocols(alpn)
    if client_cert:
        context.load_cert_chain(tls_files["client"])
    if max_version is not None:
        context.maximum_version = max_version
    return context


@pytest.fixture
def spy_sendfile(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """What each ``os.sendfile`` call sent (the server runs in this process)."""
    sent: list[int] = []
    real = os.sendfile

    def spy(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        n = real(out_fd, in_fd, offset, count)
        sent.append(n)
        return n

    monkeypatch.setattr(os, "sendfile", spy)
    return sent


@pytest.fixture
def logged(serve, caplog):
    """``serve`` with squall's records visible to caplog."""
    caplog.set_level(logging.INFO)

    def start(app, **options):
        return serve(app, log_config=PROPAGATE_LOGS, log_level="info", **options)

    return start


def app_errors(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "squall.error" and r.levelno >= logging.ERROR]


# -- HTTP/1.1 wire reading -----------------------------------------------------------------


class TLSRawClient(RawClient):
    """RawClient over TLS (HTTP/1.1: no ALPN offered)."""

    def __init__(self, port: int, context: ssl.SSLContext, timeout: float = 5.0) -> None:
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock = context.wrap_socket(raw, server_hostname="localhost")
        self.buf = b""


@dataclass
class Wire:
    """One HTTP/1.1 response read off the wire, its framing kept."""

    status: int
    raw_head: bytes  # status line and fields, through the blank line
    headers: list[tuple[str, str]]
    body: bytes
    chunks: list[bytes] | None = None  # the chunk payloads of a chunked body
    trailer_section: bytes | None = None  # from the last chunk's "0\r\n" through the end

    def header(self, name: str) -> str | None:
        values = [v for n, v in self.headers if n == name]
        assert len(values) <= 1, f"{name} appears {len(values)} times"
        return values[0] if values else None


def _need(client: RawClient, n: int) -> None:
    while len(client.buf) < n:
        assert client._fill(), f"connection closed with {client.buf[:200]!r} buffered"


def _line(client: RawClient) -> bytes:
    while b"\r\n" not in client.buf:
        assert client._fill(), f"connection closed mid-line: {client.buf[:200]!r}"
    line, _, client.buf = client.buf.partition(b"\r\n")
    return line


def _exact(client: RawClient, n: int) -> bytes:
    _need(client, n)
    out, client.buf = client.buf[:n], client.buf[n:]
    return out


def read_head(client: RawClient) -> bytes:
    while b"\r\n\r\n" not in client.buf:
        assert client._fill(), f"connection closed before a head: {client.buf[:200]!r}"
    head, _, client.buf = client.buf.partition(b"\r\n\r\n")
    return head + b"\r\n\r\n"


def read_response(client: RawClient, head_only: bool = False) -> Wire:
    """One response (an interim one too), its body framing checked strictly."""
    raw_head = read_head(client)
    parsed = parse_response(raw_head)
    wire = Wire(parsed.status, raw_head, parsed.headers, b"")
    if head_only or parsed.status < 200 or parsed.status in (204, 304):
        return wire
    if (wire.header("transfer-encoding") or "").lower() == "chunked":
        chunks = []
        while True:
            size_line = _line(client)
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            chunks.append(_exact(client, size))
            assert _exact(client, 2) == b"\r\n", "chunk data not followed by CRLF"
        section = [b"0\r\n"]
        while True:
            line = _line(client)
            section.append(line + b"\r\n")
            if not line:
                break
        wire.chunks = chunks
        wire.body = b"".join(chunks)
        wire.trailer_section = b"".join(section)
    elif wire.header("content-length") is not None:
        wire.body = _exact(client, int(wire.header("content-length") or 0))
    else:
        wire.body = client.read_until_closed()
    return wire


def assert_reusable(client: RawClient) -> None:
    """The connection still serves a request, its response first on the wire."""
    client.send(request("GET", "/again"))
    wire = read_response(client)
    assert wire.status == 200
    assert wire.body == b"again"


async def answer_again(scope, send) -> bool:
    """The follow-up request of assert_reusable; True if it was that one."""
    if scope["path"] != "/again":
        return False
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"again"})
    return True


# -- an HTTP/2 client over a raw socket ----------------------------------------------------


@dataclass
class H2Response:
    informational: list[list[tuple[bytes, bytes]]] = field(default_factory=list)
    headers: list[tuple[bytes, bytes]] | None = None
    data: bytearray = field(default_factory=bytearray)
    trailers: list[tuple[bytes, bytes]] | None = None
    reset: int | None = None  # RST_STREAM error code
    ended: bool = False
    frames: list[tuple[int, int, int]] = field(default_factory=list)  # (type, flags, length)

    @property
    def done(self) -> bool:
        return self.ended or self.reset is not None

    def header(self, name: bytes) -> bytes | None:
        assert self.headers is not None
        values = [v for n, v in self.headers if n == name]
        assert len(values) <= 1, f"{name!r} appears {len(values)} times"
        return values[0] if values else None


class H2Client:
    """``h2`` client side over a socket: prior knowledge, or TLS with ALPN h2."""

    def __init__(self, port: int, context: ssl.SSLContext | None = None) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.scheme = b"http"
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname="localhost")
            assert sock.selected_alpn_protocol() == "h2"
            self.scheme = b"https"
        self.sock = sock
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.conn = h2.connection.H2Connection(config)
        self.conn.initiate_connection()
        self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1})
        self.conn.increment_flow_control_window(2**31 - 1 - 65535)
        self._raw = b""
        self.streams: dict[int, H2Response] = {}
        self.terminated: h2.events.ConnectionTerminated | None = None
        self._flush()

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(
        self,
        path: str = "/",
        method: str = "GET",
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> int:
        sid = self.conn.get_next_available_stream_id()
        fields = [
            (b":method", method.encode()),
            (b":scheme", self.scheme),
            (b":authority", b"localhost"),
            (b":path", path.encode()),
            *(headers or []),
        ]
        self.streams[sid] = H2Response()
        self.conn.send_headers(sid, fields, end_stream=True)
        self._flush()
        return sid

    def _track_frames(self, data: bytes) -> None:
        self._raw += data
        while len(self._raw) >= 9:
            length = int.from_bytes(self._raw[:3], "big")
            if len(self._raw) < 9 + length:
                return
            ftype, flags = self._raw[3], self._raw[4]
            sid = int.from_bytes(self._raw[5:9], "big") & 0x7FFFFFFF
            if sid in self.streams:
                self.streams[sid].frames.append((ftype, flags, length))
            self._raw = self._raw[9 + length :]

    def response(self, sid: int) -> H2Response:
        resp = self.streams[sid]
        while not resp.done:
            assert self.terminated is None, f"connection terminated: {self.terminated}"
            data = self.sock.recv(65536)
            assert data, "connection closed"
            self._track_frames(data)
            for event in self.conn.receive_data(data):
                self._handle(event)
            self._flush()
        return resp

    def _handle(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ConnectionTerminated):
            self.terminated = event
            return
        sid = getattr(event, "stream_id", None)
        resp = self.streams.get(sid) if sid else None
        if resp is None:
            return
        if isinstance(event, h2.events.InformationalResponseReceived):
            resp.informational.append(list(event.headers))
        elif isinstance(event, h2.events.ResponseReceived):
            resp.headers = list(event.headers)
        elif isinstance(event, h2.events.DataReceived):
            resp.data += event.data
            if event.flow_controlled_length:
                self.conn.acknowledge_received_data(event.flow_controlled_length, sid)
        elif isinstance(event, h2.events.TrailersReceived):
            resp.trailers = list(event.headers)
        elif isinstance(event, h2.events.StreamEnded):
            resp.ended = True
        elif isinstance(event, h2.events.StreamReset):
            resp.reset = event.error_code

    def close(self) -> None:
        self.sock.close()


def status_of(fields: list[tuple[bytes, bytes]]) -> bytes:
    return dict(fields)[b":status"]


# -- apps ----------------------------------------------------------------------------------


def start(status: int = 200, headers: list | None = None, **extra) -> dict:
    return {"type": "http.response.start", "status": status, "headers": headers or [], **extra}


def body(data: bytes = b"", more: bool = False) -> dict:
    return {"type": "http.response.body", "body": data, "more_body": more}


def trailers_app(parts: list[list[tuple[bytes, bytes]]], headers: list | None = None):
    """Streams b"hello " then b"world" (final body message), then the trailer ``parts``."""

    async def app(scope, receive, send):
        if await answer_again(scope, send):
            return
        await send(start(200, headers, trailers=True))
        await send(body(b"hello ", more=True))
        await send(body(b"world"))
        for i, part in enumerate(parts):
            more = i < len(parts) - 1
            await send({"type": "http.response.trailers", "headers": part, "more_trailers": more})

    return app


def pathsend_app(path: str, headers: list | None = None):
    async def app(scope, receive, send):
        if await answer_again(scope, send):
            return
        await send(start(200, headers or [(b"content-type", b"application/octet-stream")]))
        await send({"type": "http.response.pathsend", "path": path})

    return app


def early_hint_app(links: list[bytes]):
    async def app(scope, receive, send):
        if await answer_again(scope, send):
            return
        await send({"type": "http.response.early_hint", "links": links})
        await send(start(200, [(b"content-type", b"text/plain")]))
        await send(body(b"final"))

    return app


def zerocopy_mixed_app(path: str):
    """zerocopysend (more), zerocopysend (more), a body message (more), a final zerocopysend."""

    async def app(scope, receive, send):
        if await answer_again(scope, send):
            return
        with open(path, "rb") as f:
            await send(start(200, [(b"content-type", b"application/octet-stream")]))
            zc = "http.response.zerocopysend"
            await send({"type": zc, "file": f, "offset": 0, "count": 10, "more_body": True})
            await send({"type": zc, "file": f, "offset": 10, "count": 20, "more_body": True})
            await send(body(b"tail", more=True))
            await send({"type": zc, "file": f.fileno(), "offset": 30, "count": 5})

    return app


def mixed_expected(data: bytes) -> list[bytes]:
    return [data[0:10], data[10:30], b"tail", data[30:35]]


def scope_recorder(seen: list[dict]):
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            return
        seen.append(scope)
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": 1000})
            return
        await send(start(200, [(b"content-type", b"text/plain")]))
        await send(body(b"ok"))

    return app


# == scope["extensions"] ====================================================================


def test_http1_scope_advertises_the_extensions(serve, http_impl):
    seen: list[dict] = []
    srv = serve(scope_recorder(seen), http=http_impl)
    c = srv.client()
    c.send(request("GET", "/"))
    assert read_response(c).status == 200
    extensions = seen[0]["extensions"]
    for name in EXTENSION_NAMES:
        assert name in extensions, name
    assert "tls" not in extensions  # cleartext


def test_h2_scope_advertises_the_extensions(serve):
    seen: list[dict] = []
    srv = serve(scope_recorder(seen))
    with httpx.Client(http1=False, http2=True) as client:
        r = client.get(srv.url + "/")
    assert r.http_version == "HTTP/2"
    assert r.text == "ok"
    assert seen[0]["http_version"] == "2"
    for name in EXTENSION_NAMES:
        assert name in seen[0]["extensions"], name
    assert "tls" not in seen[0]["extensions"]


# == http.response.trailers, HTTP/1.1 =======================================================


def test_trailers_sent_when_client_accepts_them(serve, http_impl):
    app = trailers_app([[(b"x-checksum", b"abc123"), (b"x-other", b"1")]])
    srv = serve(app, http=http_impl)
    c = srv.client()
    c.send(request("GET", "/", headers=[("TE", "trailers")]))
    wire = read_response(c)
    assert wire.status == 200
    assert wire.header("transfer-encoding") == "chunked"
    assert wire.header("content-length") is None
    assert wire.chunks == [b"hello ", b"world"]
    assert wire.trailer_section == b"0\r\nx-checksum: abc123\r\nx-other: 1\r\n\r\n"
    assert_reusable(c)


def test_trailers_dropped_without_te_trailers(serve, http_impl):
    app = trailers_app([[(b"x-checksum", b"abc123")]])
    srv = serve(app, http=http_impl)
    c = srv.client()
    c.send(request("GET", "/"))
    wire = read_response(c)
    assert wire.header("transfer-encoding") == "chunked"
    assert wire.chunks == [b"hello ", b"world"]
    assert wire.trailer_section == b"0\r\n\r\n"  # the chunked body just ends
    assert_reusable(c)  # nothing of the trailers leaked before the next response


def test_more_trailers_are_collected_into_one_section(serve, http_impl):
    gate = Gate()
    sent_first = Gate()

    async def app(scope, receive, send):
        if await answer_again(scope, send):
            return
        await send(start(200, [], trailers=True))
        await send(body(b"data"))
        trailers = "http.response.trailers"
        await send({"type": trailers, "headers": [(b"x-a", b"1")], "more_trailers": True})
        sent_first.open()
        await gate.wait()
        await send({"type": trailers, "headers": [(b"x-b", b"2")], "more_trailers": True})
        await send({"type": trailers, "headers": [(b"x-c", b"3")], "more_trailers": False})

    srv = serve(app, http=http_impl)
    c = srv.client()
    c.send(request("GET", "/", headers=[("TE", "trailers")]))
    head = read_head(c)
    assert b"transfer-encoding: chunked" in head
    assert _line(c) == b"4"
    assert _exact(c, 6) == b"data\r\n"
    wait_until(lambda: sent_first.is_open, what="the first trailers message")
    # the framing stays open while more trailers are announced
    c.sock.settimeout(0.3)
    with pytest.raises(TimeoutError):
        c._fill()
    assert c.buf == b""
    c.sock.settimeout(5)
    gate.open()
    assert _exact(c, len(b"0\r\nx-a: 1\r\nx-b: 2\r\nx-c: 3\r\n\r\n")) == (
        b"0\r\nx-a: 1\r\nx-b: 2\r\nx-c: 3\r\n\r\n"
    )
    assert_reusable(c)


def test_trailers_with_content_length_are_dropped(serve, http_impl):
    app = trailers_app([[(b"x-checksum", b"abc123")]], headers=[(b"content-length", b"11")])
    srv = serve(app, http=http_impl)
    c = srv.client()
    c.send(request("GET", "/", headers=[("TE", "trailers")]))
    wire = read_response(c)
    assert wire.header("content-length") == "11"
    assert wire.header("transfer-encoding") is None
    assert wire.body == b"hello world"
    assert_reusable(c)  # the next bytes are the next response, no trailer bytes


def test_trailers_on_http10_close_delimited(serve, http_impl):
    app = trailers_app([[(b"x-checksum", b"abc123")]])
    srv = serve(app, http=http_impl)
    c = srv.client()
    c.send(request("GET", "/", version="1.0", headers=[("TE", "trailers")]))
    raw = c.read_until_closed()
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head.lower()
    assert rest == b"hello world"
    assert b"x-checksum" not in raw


def test_trailers_on_a_head_request_send_no_body(serve, http_impl):
    srv = serve(trailers_app([[(b"x-checksum", b"abc123")]]), http=http_impl)
    c = srv.client()
    c.send(request("HEAD", "/", headers=[("TE", "trailers")]))
    wire = read_response(c, head_only=True)
    assert wire.status == 200
    assert_reusable(c)  # no chunk or trailer bytes before the next response


# == http.response.trailers, HTTP/2 =========================================================


def test_h2_trailers_are_a_final_headers_frame(serve):
    app = trailers_app([[(b"x-a", b"1")], [(b"x-checksum", b"abc123")]])
    srv = serve(app)
    client = H2Client(srv.port)
    sid = client.request("/", headers=[(b"te", b"trailers")])
    resp = client.response(sid)
    assert resp.reset is None
    assert status_of(resp.headers or []) == b"200"
    assert bytes(resp.data) == b"hello world"
    assert resp.trailers == [(b"x-a", b"1"), (b"x-checksum", b"abc123")]
    kinds = [(t, f & END_STREAM) for t, f, _ in resp.frames if t in (DATA, HEADERS)]
    assert kinds[0] == (HEADERS, 0)
    assert kinds[-1] == (HEADERS, END_STREAM)  # trailers end the stream
    assert all(t == DATA and not es for t, es in kinds[1:-1])  # the DATA came before
    assert sum(n for t, _, n in resp.frames if t == DATA) == len(b"hello world")
    # the connection goes on
    sid2 = client.request("/again")
    assert bytes(client.response(sid2).data) == b"again"
    client.close()


def test_h2_trailers_follow_a_declared_content_length(serve):
    app = trailers_app([[(b"x-checksum", b"abc123")]], headers=[(b"content-length", b"11")])
    srv = serve(app)
    client = H2Client(srv.port)
    resp = client.response(client.request("/"))
    assert resp.header(b"content-length") == b"11"
    assert bytes(resp.data) == b"hello world"
    assert resp.trailers == [(b"x-checksum", b"abc123")]
    client.close()


# == http.response.early_hint ===============================================================


def test_early_hint_http11_exact_103_head(serve, http_impl):
    srv = serve(early_hint_app(LINKS), http=http_impl)
    c = srv.client()
    c.send(request("GET", "/"))
    assert read_head(c) == (
        b"HTTP/1.1 103 Early Hints\r\n"
        b"link: </a.css>; rel=preload; as=style\r\n"
        b"link: </b.js>; rel=preload; as=script\r\n"
        b"\r\n"
    )
    final = read_response(c)
    assert final.status == 200
    assert final.body == b"final"
    assert "link" not in dict(final.headers)
    assert_reusable(c)


def test_early_hint_not_sent_to_http10(serve, http_impl):
    srv = serve(early_hint_app(LINKS), http=http_impl)
    c = srv.client()
    c.send(request("GET", "/", version="1.0"))
    raw = c.read_until_closed()
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"103" not in raw.split(b"\r\n", 1)[0]
    assert b"Early Hints" not in raw
    assert raw.endswith(b"\r\n\r\nfinal")


def test_early_hint_seen_by_curl(serve):
    srv = serve(early_hint_app(LINKS))
    out = subprocess.run(
        ["curl", "-s", "-D", "-", "-o", "/dev/null", srv.url + "/"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    text = out.stdout.replace(b"\r\n", b"\n")
    interim, _, final = text.partition(b"\n\n")
    assert interim.splitlines() == [
        b"HTTP/1.1 103 Early Hints",
        b"link: </a.css>; rel=preload; as=style",
        b"link: </b.js>; rel=preload; as=script",
    ]
    assert final.startswith(b"HTTP/1.1 200 OK\n")


def test_h2_early_hint_is_an_informational_headers_frame(serve):
    srv = serve(early_hint_app(LINKS))
    client = H2Client(srv.port)
    resp = client.response(client.request("/"))
    assert len(resp.informational) == 1
    hint = resp.informational[0]
    assert status_of(hint) == b"103"
    assert [v for n, v in hint if n == b"link"] == LINKS
    assert status_of(resp.headers or []) == b"200"
    assert bytes(resp.data) == b"final"
    first = resp.frames[0]
    assert first[0] == HEADERS
    assert not first[1] & END_STREAM  # interim: the stream stays open
    client.close()


def test_early_hint_with_crlf_in_a_link_is_refused(serve, http_impl):
    srv = serve(early_hint_app([b"</a.css>; rel=preload\r\nx-injected: 1"]), http=http_impl)
    c = srv.client()
    c.send(request("GET", "/"))
    raw = c.read_until_closed()
    assert raw.startswith(b"HTTP/1.1 500 ")
    assert b"x-injected" not in raw
    assert b"103" not in raw


def test_h2_early_hint_with_crlf_in_a_link_is_refused(serve):
    srv = serve(early_hint_app([b"</a.css>; rel=preload\r\nx-injected: 1"]))
    client = H2Client(srv.port)
    resp = client.response(client.request("/"))
    assert resp.informational == []
    assert status_of(resp.headers or []) == b"500"
    assert b"x-injected" not in bytes(resp.data)
    client.close()


# == http.response.pathsend =================================================================


def test_pathsend_large_file_plain_tcp_uses_sendfile(serve, http_impl, big_file, spy_sendfile):
    path, data = big_file
    srv = serve(pathsend_app(path), http=http_impl)
    c = srv.client()
    c.send(request("GET", "/big"))
    wire = read_response(c)
    assert wire.status == 200
    assert wire.header("content-length") == str(BIG)
    assert wire.header("transfer-encoding") is None
    assert wire.header("content-type") == "application/octet-stream"
    assert wire.body == data
    # (the server thread records a call after its bytes may already have arrived)
    wait_until(lambda: any(n > 0 for n in spy_sendfile), what="a zero-copy sendfile call")
    assert sum(spy_sendfile) <= BIG
    assert_reusable(c)


def test_pathsend_keeps_the_apps_content_length(serve, small_file):
    path, data = small_file
    srv = serve(pathsend_app(path, [(b"Content-Length", str(len(data)).encode())]))
    c = srv.client()
    c.send(request("GET", "/"))
    wire = read_response(c)
    assert wire.header("content-length") == str(len(data))  # once
    assert wire.body == data


def test_pathsend_over_tls_falls_back_to_reads(serve, big_file, tls_files, spy_sendfile):
    path, data = big_file
    srv = serve(pathsend_app(path), **tls_options(tls_files))
    c = TLSRawClient(srv.port, client_context(tls_files))
    c.send(request("GET", "/big"))
    wire = read_response(c)
    assert wire.header("content-length") == str(BIG)
    assert wire.body == data
    assert spy_sendfile == []  # no sendfile under TLS
    assert_reusable(c)


def test_pathsend_to_head_request_sends_no_body(serve, http_impl, small_file):
    path, data = small_file
    srv = serve(pathsend_app(path), http=http_impl)
    c = srv.client()
    c.send(request("HEAD", "/"))
    wire = read_response(c, head_only=True)
    assert wire.status == 200
    assert wire.header("content-length") == str(len(data))
    # the next bytes on the wire are the next response: no body was sent
    assert_reusable(c)


def test_pathsend_large_file_then_a_pipelined_request(serve, http_impl, big_file):
    path, data = big_file
    srv = serve(pathsend_app(path), http=http_impl)
    c = srv.client()
    c.send(request("GET", "/big") + request("GET", "/again"))
    wire = read_response(c)
    assert wire.header("content-length") == str(BIG)
    assert wire.body == data
    again = read_response(c)  # right after the file's last byte
    assert again.body == b"again"


class SmallWindowClient(RawClient):
    """A client with a tiny receive buffer: the server's socket fills up (EAGAIN)."""

    def __init__(self, port: int, rcvbuf: int = 8192) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(5)
        sock.connect(("127.0.0.1", port))
        self.sock = sock
        self.buf = b""


def test_zerocopysend_large_chunks_to_a_small_window_client(
    serve, http_impl, big_file, spy_sendfile
):
    """Big chunks, the socket full most of the time: sendfile and buffered writes alternate."""
    path, data = big_file
    pieces = [(0, 2_000_000), (2_000_000, 1_500_000), (3_500_000, BIG - 3_500_000)]

    async def app(scope, receive, send):
        if await answer_again(scope, send):
            return
        with open(path, "rb") as f:
            await send(start(200))
            for offset, count in pieces:
                zc = {"type": "http.response.zerocopysend", "file": f, "offset": offset}
                await send({**zc, "count": count, "more_body": True})
            await send(body(b""))

    srv = serve(app, http=http_impl)
    c = SmallWindowClient(srv.port)
    c.send(request("GET", "/"))
    wire = read_response(c)
    assert wire.header("transfer-encoding") == "chunked"
    assert [len(x) for x in wire.chunks or []] == [count for _, count in pieces]
    assert wire.body == data
    assert wire.trailer_section == b"0\r\n\r\n"
    wait_until(lambda: any(n > 0 for n in spy_sendfile), what="a sendfile call")
    assert_reusable(c)


def test_pathsend_of_a_missing_file_is_a_500(serve, http_impl, tmp_path):
    srv = serve(pathsend_app(str(tmp_path / "nope")), http=http_impl)
    c = srv.client()
    c.send(request("GET", "/"))
    wire = read_response(c)
    assert wire.status == 500


def test_h2_pathsend_large_file(serve, big_file):
    path, data = big_file
    srv = serve(pathsend_app(path))
    client = H2Client(srv.port)
    resp = client.response(client.request("/big"))
    assert resp.reset is None
    assert resp.header(b"content-length") == str(BIG).encode()
    assert bytes(resp.data) == data
    client.close()


def test_h2_pathsend_with_httpx(serve, small_file):
    path, data = small_file
    srv = serve(pathsend_app(path))
    with httpx.Client(http1=False, http2=True) as client:
        r = client.get(srv.url + "/")
    assert r.http_version == "HTTP/2"
    assert r.headers["content-length"] == str(len(data))
    assert r.content == data


def test_h2_pathsend_to_head_request(serve, small_file):
    path, data = small_file
    srv = serve(pathsend_app(path))
    client = H2Client(srv.port)
    resp = client.response(client.request("/", method="HEAD"))
    assert resp.reset is None
    assert resp.header(b"content-length") == str(len(data)).encode()
    assert bytes(resp.data) == b""
    assert all(n == 0 for t, _, n in resp.frames if t == DATA)
    headers = [f for t, f, _ in resp.frames if t == HEADERS]
    assert headers and headers[0] & END_STREAM
    resp2 = client.response(client.request("/again"))
    assert bytes(resp2.data) == b"again"
    client.close()


# == http.response.zerocopysend =============================================================


def test_zerocopysend_offset_and_count(serve, http_impl, small_file, spy_sendfile):
    path, data = small_file

    async def app(scope, receive, send):
        if await answer_again(scope, send):
            return
        with open(path, "rb") as f:
            await send(start(200))
            await send(
                {"type": "http.response.zerocopysend", "file": f, "offset": 100, "count": 200}
            )

    srv = serve(app, http=http_impl)
    c = srv.client()
    c.send(request("GET", "/"))
    wire = read_response(c)
    assert wire.header("content-length") == "200"
    assert wire.body == data[100:300]
    wait_until(lambda: sum(spy_sendfile) == 200, what="sendfile to send the 200 bytes")
    assert_reusable(c)


def test_zerocopysend_from_the_files_position(serve, http_impl, small_file):
    """No offset: from the file's current position; no count: to the end."""
    path, data = small_file

    async def app(scope, receive, send):
        if await answer_again(scope, send):
            return
        fd = os.open(path, os.O_RDONLY)
        try:
            os.lseek(fd, 50, os.SEEK_SET)
            await send(start(200))
            await send({"type": "http.response.zerocopysend", "file": fd})
        finally:
            os.close(fd)

    srv = serve(app, http=http_impl)
    c = srv.client()
    c.send(request("GET", "/"))
    wire = read_response(c)
    assert wire.header("content-length") == str(len(data) - 50)
    assert wire.body == data[50:]
    assert_reusable(c)


def test_zerocopysend_chunked_mixed_with_body_messages(serve, http_impl, small_file):
    path, data = small_file
    srv = serve(zerocopy_mixed_app(path), http=http_impl)
    c = srv.client()
    c.send(request("GET", "/"))
    wire = read_response(c)
    assert wire.header("content-length") is None
    assert wire.header("transfer-encoding") == "chunked"
    assert wire.chunks == mixed_expected(data)
    assert wire.trailer_section == b"0\r\n\r\n"
    assert_reusable(c)


def test_zerocopysend_over_tls(serve, small_file, tls_files, spy_sendfile):
    path, data = small_file
    srv = serve(zerocopy_mixed_app(path), **tls_options(tls_files))
    c = TLSRawClient(srv.port, client_context(tls_files))
    c.send(request("GET", "/"))
    wire = read_response(c)
    assert wire.chunks == mixed_expected(data)
    assert wire.trailer_section == b"0\r\n\r\n"
    assert spy_sendfile == []
    assert_reusable(c)


def file_then_trailers_app(path: str, kind: str):
    """trailers: True, the whole body from a file (no content-length given), then trailers."""

    async def app(scope, receive, send):
        if await answer_again(scope, send):
            return
        with open(path, "rb") as f:
            await send(start(200, trailers=True))
            if kind == "pathsend":
                await send({"type": "http.response.pathsend", "path": path})
            else:
                await send({"type": "http.response.zerocopysend", "file": f, "count": 64})
            await send({"type": "http.response.trailers", "headers": [(b"x-n", b"64")]})

    return app


@pytest.mark.parametrize("kind", ["pathsend", "zerocopysend"])
def test_file_body_with_trailers_is_chunked(serve, http_impl, small_file, kind):
    path, data = small_file
    srv = serve(file_then_trailers_app(path, kind), http=http_impl)
    c = srv.client()
    c.send(request("GET", "/", headers=[("TE", "trailers")]))
    wire = read_response(c)
    assert wire.body == (data if kind == "pathsend" else data[:64])
    assert wire.header("transfer-encoding") == "chunked"
    assert wire.trailer_section == b"0\r\nx-n: 64\r\n\r\n"


def test_file_body_with_trailers_not_accepted_stays_in_sync(serve, http_impl, small_file):
    """Without TE: trailers the file body is complete and the connection goes on."""
    path, data = small_file
    srv = serve(file_then_trailers_app(path, "zerocopysend"), http=http_impl)
    c = srv.client()
    c.send(request("GET", "/"))
    wire = read_response(c)
    assert wire.body == data[:64]
    assert b"x-n" not in wire.raw_head
    assert_reusable(c)


def test_h2_zerocopysend_with_trailers(serve, small_file):
    path, data = small_file
    srv = serve(file_then_trailers_app(path, "zerocopysend"))
    client = H2Client(srv.port)
    resp = client.response(client.request("/", headers=[(b"te", b"trailers")]))
    assert bytes(resp.data) == data[:64]
    assert resp.trailers == [(b"x-n", b"64")]
    assert resp.frames[-1][0] == HEADERS
    assert resp.frames[-1][1] & END_STREAM
    client.close()


# -- a failure at the trailers must not leave the response open


def bad_trailer_value_app():
    async def app(scope, receive, send):
        await send(start(200, trailers=True))
        await send(body(b"hello"))
        bad = [(b"x-a", b"1\r\nx-injected: 1")]
        await send({"type": "http.response.trailers", "headers": bad})

    return app


def short_body_with_trailers_app():
    async def app(scope, receive, send):
        await send(start(200, [(b"content-length", b"20")], trailers=True))
        await send(body(b"hello"))
        await send({"type": "http.response.trailers", "headers": [(b"x-a", b"1")]})

    return app


BROKEN_TRAILER_APPS = {
    "bad-value": bad_trailer_value_app,
    "short-body": short_body_with_trailers_app,
}


@pytest.mark.parametrize("case", list(BROKEN_TRAILER_APPS))
def test_failing_trailers_close_the_connection(logged, caplog, http_impl, case):
    srv = logged(BROKEN_TRAILER_APPS[case](), http=http_impl)
    c = srv.client()
    try:
        c.send(request("GET", "/", headers=[("TE", "trailers")]))
        wait_until(lambda: app_errors(caplog), what="the invalid response record")
        assert "Invalid response from ASGI application" in app_errors(caplog)[0].getMessage()
        closed = c.is_closed(timeout=1.0)
        assert b"x-injected" not in c.buf
        assert closed, f"connection left open after {c.buf[-60:]!r}"
    finally:
        c.close()


@pytest.mark.parametrize("case", list(BROKEN_TRAILER_APPS))
def test_h2_failing_trailers_reset_the_stream(logged, caplog, case):
    srv = logged(BROKEN_TRAILER_APPS[case]())
    client = H2Client(srv.port)
    try:
        sid = client.request("/")
        wait_until(lambda: app_errors(caplog), what="the invalid response record")
        client.sock.settimeout(1.0)
        with contextlib.suppress(TimeoutError):
            client.response(sid)
        resp = client.streams[sid]
        assert resp.trailers is None
        assert resp.reset == INTERNAL_ERROR, f"stream left open: {resp}"
    finally:
        client.close()


def count_past_eof_app(path: str, size: int):
    async def app(scope, receive, send):
        if await answer_again(scope, send):
            return
        with open(path, "rb") as f:
            await send(start(200))
            await send(
                {"type": "http.response.zerocopysend", "file": f, "offset": 0, "count": size + 100}
            )

    return app


def assert_file_shorter_logged(caplog) -> None:
    def logged() -> list[logging.LogRecord]:
        return [
            r
            for r in app_errors(caplog)
            if r.exc_info and isinstance(r.exc_info[1], FileShorterThanCount)
        ]

    wait_until(logged, what="the FileShorterThanCount error record")
    assert logged()[0].getMessage().startswith("Exception in ASGI application")


def test_zerocopysend_count_past_eof_closes_and_logs(logged, caplog, http_impl, small_file):
    path, data = small_file
    srv = logged(count_past_eof_app(path, len(data)), http=http_impl)
    c = srv.client()
    c.send(request("GET", "/"))
    head = parse_response(read_head(c))
    assert head.status == 200
    assert head.header("content-length") == str(len(data) + 100)  # as the app declared
    assert c.read_until_closed() == data  # what the file had, then the connection closes
    assert_file_shorter_logged(caplog)


def test_zerocopysend_count_past_eof_over_tls(logged, caplog, small_file, tls_files):
    path, data = small_file
    srv = logged(count_past_eof_app(path, len(data)), **tls_options(tls_files))
    c = TLSRawClient(srv.port, client_context(tls_files))
    c.send(request("GET", "/"))
    head = parse_response(read_head(c))
    assert head.header("content-length") == str(len(data) + 100)
    assert c.read_until_closed() == data
    assert_file_shorter_logged(caplog)


def test_h2_zerocopysend_chunked_mixed(serve, small_file):
    path, data = small_file
    srv = serve(zerocopy_mixed_app(path))
    client = H2Client(srv.port)
    resp = client.response(client.request("/"))
    assert resp.reset is None
    assert resp.header(b"content-length") is None
    assert bytes(resp.data) == b"".join(mixed_expected(data))
    client.close()


def test_h2_zerocopysend_count_past_eof_resets_the_stream(logged, caplog, small_file):
    path, data = small_file
    srv = logged(count_past_eof_app(path, len(data)))
    client = H2Client(srv.port)
    resp = client.response(client.request("/"))
    assert resp.reset == INTERNAL_ERROR
    assert resp.header(b"content-length") == str(len(data) + 100).encode()
    assert bytes(resp.data) == data
    assert_file_shorter_logged(caplog)
    # only the stream was reset: the connection still serves
    resp2 = client.response(client.request("/again"))
    assert bytes(resp2.data) == b"again"
    client.close()


def test_h2_over_tls_zerocopysend_and_pathsend(serve, big_file, small_file, tls_files):
    big_path, big_data = big_file
    small_path, small_data = small_file

    async def app(scope, receive, send):
        if scope["path"] == "/big":
            await pathsend_app(big_path)(scope, receive, send)
        else:
            await zerocopy_mixed_app(small_path)(scope, receive, send)

    srv = serve(app, **tls_options(tls_files))
    client = H2Client(srv.port, client_context(tls_files, alpn=["h2"]))
    one = client.request("/big")
    two = client.request("/mixed")  # concurrently, on the same connection
    resp_two = client.response(two)
    resp_one = client.response(one)
    assert bytes(resp_two.data) == b"".join(mixed_expected(small_data))
    assert resp_one.header(b"content-length") == str(BIG).encode()
    assert bytes(resp_one.data) == big_data
    client.close()


# == the tls scope extension ================================================================


def check_tls_common(tls: dict, tls_files: dict[str, str], sock: ssl.SSLSocket) -> None:
    assert tls["server_cert"] == tls_files["server_leaf"]
    x509.load_pem_x509_certificate(tls["server_cert"].encode())
    assert tls["client_cert_error"] is None
    expected_version = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}[sock.version() or ""]
    assert tls["tls_version"] == expected_version
    assert isinstance(tls["cipher_suite"], int)
    name = (sock.cipher() or ("",))[0]
    assert name in IANA_CIPHERS, f"unexpected cipher {name}"
    assert tls["cipher_suite"] == IANA_CIPHERS[name]


def check_client_cert(tls: dict, tls_files: dict[str, str]) -> None:
    chain = tls["client_cert_chain"]
    assert isinstance(chain, list)
    if sys.version_info < (3, 13):
        assert len(chain) == 1
    leaf = x509.load_pem_x509_certificate(chain[0].encode())
    issued = x509.load_pem_x509_certificate(tls_files["client_leaf"].encode())
    assert leaf == issued
    name = tls["client_cert_name"]
    assert "CN=squall-client" in name
    assert "O=Squall\\, Inc." in name  # RFC 4514 escaping
    assert name == issued.subject.rfc4514_string()


@pytest.mark.parametrize("max_version", [None, ssl.TLSVersion.TLSv1_2], ids=["tls13", "tls12"])
def test_tls_extension_with_client_certificate(serve, http_impl, tls_files, max_version):
    seen: list[dict] = []
    srv = serve(scope_recorder(seen), http=http_impl, **tls_options(tls_files, mtls=True))
    context = client_context(tls_files, client_cert=True, max_version=max_version)
    c = TLSRawClient(srv.port, context)
    c.send(request("GET", "/"))
    assert read_response(c).status == 200
    assert isinstance(c.sock, ssl.SSLSocket)
    assert c.sock.version() == ("TLSv1.2" if max_version else "TLSv1.3")
    scope = seen[0]
    assert scope["scheme"] == "https"
    tls = scope["extensions"]["tls"]
    for name in EXTENSION_NAMES:
        assert name in scope["extensions"], name
    check_tls_common(tls, tls_files, c.sock)
    check_client_cert(tls, tls_files)


def test_tls_extension_without_client_certificate(serve, tls_files):
    seen: list[dict] = []
    srv = serve(scope_recorder(seen), **tls_options(tls_files))
    c = TLSRawClient(srv.port, client_context(tls_files))
    c.send(request("GET", "/"))
    assert read_response(c).status == 200
    tls = seen[0]["extensions"]["tls"]
    assert isinstance(c.sock, ssl.SSLSocket)
    check_tls_common(tls, tls_files, c.sock)
    assert tls["client_cert_chain"] == []
    assert tls["client_cert_name"] is None


def test_tls_extension_on_h2_over_alpn(serve, tls_files):
    seen: list[dict] = []
    srv = serve(scope_recorder(seen), **tls_options(tls_files, mtls=True))
    context = client_context(tls_files, alpn=["h2"], client_cert=True)
    client = H2Client(srv.port, context)
    resp = client.response(client.request("/"))
    assert bytes(resp.data) == b"ok"
    scope = seen[0]
    assert scope["http_version"] == "2"
    for name in EXTENSION_NAMES:
        assert name in scope["extensions"], name
    assert isinstance(client.sock, ssl.SSLSocket)
    check_tls_common(scope["extensions"]["tls"], tls_files, client.sock)
    check_client_cert(scope["extensions"]["tls"], tls_files)
    client.close()


def test_tls_extension_in_websocket_scope(serve, tls_files):
    from websockets.exceptions import ConnectionClosedOK
    from websockets.sync.client import connect

    seen: list[dict] = []
    srv = serve(scope_recorder(seen), **tls_options(tls_files, mtls=True))
    context = client_context(tls_files, client_cert=True)
    with (
        connect(
            f"wss://localhost:{srv.port}/ws", ssl=context, open_timeout=5, close_timeout=2
        ) as ws,
        pytest.raises(ConnectionClosedOK),
    ):
        ws.recv(timeout=5)
    scope = seen[0]
    assert scope["type"] == "websocket"
    tls = scope["extensions"]["tls"]
    assert tls["server_cert"] == tls_files["server_leaf"]
    assert tls["tls_version"] in (0x0303, 0x0304)
    assert isinstance(tls["cipher_suite"], int)
    check_client_cert(tls, tls_files)


def test_no_tls_extension_in_cleartext_websocket_scope(serve):
    from websockets.exceptions import ConnectionClosedOK
    from websockets.sync.client import connect

    seen: list[dict] = []
    srv = serve(scope_recorder(seen))
    with (
        connect(f"ws://127.0.0.1:{srv.port}/ws", open_timeout=5, close_timeout=2) as ws,
        pytest.raises(ConnectionClosedOK),
    ):
        ws.recv(timeout=5)
    assert seen[0]["type"] == "websocket"
    assert "tls" not in seen[0].get("extensions", {})
