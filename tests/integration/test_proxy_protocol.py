"""--proxy-protocol with real sockets: v1 and v2, HTTP/1.1, HTTP/2, TLS, trust."""

from __future__ import annotations

import json
import socket
import ssl
import struct
import subprocess

import pytest

from squall.protocols.proxy import V2_SIGNATURE
from tests.integration.helpers import parse_response


async def addresses(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    body = json.dumps(
        {
            "client": scope["client"],
            "server": scope["server"],
            "scheme": scope["scheme"],
            "version": scope["http_version"],
        }
    ).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


REQUEST = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"


def exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:  # closed with our bytes unread
            pass
    return b"".join(chunks)


def body_of(raw: bytes) -> dict[str, object]:
    resp = parse_response(raw)
    assert resp.status == 200
    return json.loads(resp.body)  # type: ignore[no-any-return]


def test_v1_header_sets_client_and_server(serve, http_impl):
    srv = serve(addresses, http=http_impl, proxy_protocol=True)
    raw = exchange(srv.port, b"PROXY TCP4 203.0.113.9 198.51.100.1 40000 443\r\n" + REQUEST)
    got = body_of(raw)
    assert got["client"] == ["203.0.113.9", 40000]
    assert got["server"] == ["198.51.100.1", 443]


def test_v2_header_sent_in_pieces(serve):
    srv = serve(addresses, proxy_protocol=True)
    body = socket.inet_pton(socket.AF_INET6, "2001:db8::5") * 2 + struct.pack(">HH", 5, 6)
    header = V2_SIGNATURE + b"\x21\x21" + struct.pack(">H", len(body)) + body
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        sock.sendall(header[:10])
        sock.sendall(header[10:] + REQUEST[:5])
        sock.sendall(REQUEST[5:])
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    assert body_of(raw)["client"] == ["2001:db8::5", 5]


def test_v2_local_keeps_the_socket_addresses(serve):
    srv = serve(addresses, proxy_protocol=True)
    raw = exchange(srv.port, V2_SIGNATURE + b"\x20\x00\x00\x00" + REQUEST)
    assert body_of(raw)["client"][0] == "127.0.0.1"  # type: ignore[index]


def test_trusted_peer_without_header_is_closed(serve):
    srv = serve(addresses, proxy_protocol=True)
    assert exchange(srv.port, REQUEST) == b""


def test_untrusted_peer_is_served_and_its_header_not_believed(serve):
    srv = serve(addresses, proxy_protocol=True, forwarded_allow_ips="10.9.9.9")
    assert body_of(exchange(srv.port, REQUEST))["client"][0] == "127.0.0.1"  # type: ignore[index]
    raw = exchange(srv.port, b"PROXY TCP4 203.0.113.9 198.51.100.1 1 2\r\n" + REQUEST)
    assert parse_response(raw).status == 400  # the header is just a bad request line


def test_http2_after_the_header(serve):
    srv = serve(addresses, proxy_protocol=True)
    out = subprocess.run(
        ["curl", "-s", "--haproxy-protocol", "--http2-prior-knowledge", f"{srv.url}/"],
        capture_output=True,
        timeout=10,
        check=True,
    )
    got = json.loads(out.stdout)
    assert got["version"] == "2"


def test_tls_starts_after_the_header(serve, tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    pem = tmp_path / "server.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(pem))
    srv = serve(addresses, proxy_protocol=True, ssl_certfile=str(pem))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    context.set_alpn_protocols(["http/1.1"])
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as raw_sock:
        raw_sock.sendall(b"PROXY TCP4 203.0.113.4 198.51.100.1 4444 443\r\n")
        with context.wrap_socket(raw_sock, server_hostname="127.0.0.1") as tls:
            tls.sendall(REQUEST)
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
    got = body_of(data)
    assert got["client"] == ["203.0.113.4", 4444]
    assert got["scheme"] == "https"
