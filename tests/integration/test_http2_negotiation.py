"""How a connection reaches HTTP/2, by hand: h2c Upgrade, ALPN, and ``http2=False``.

The ``h2`` library's client state machine speaks HTTP/2 after an ``Upgrade: h2c``
request sent over a raw socket; ``http2=False`` must turn off ALPN ``h2``, the
prior-knowledge preface and the upgrade.
"""

from __future__ import annotations

import array
import fcntl
import socket
import ssl
import termios

import h2.config
import h2.connection
import h2.events
import httpx
import pytest

from tests.integration.helpers import connections, parse_response, request, wait_until
from tests.integration.http2_client import (
    digest,
    https,
    recording_app,
    status_of,
    tls_context,
    write_certs,
)

pytestmark = pytest.mark.usefixtures("fast_tick")  # in-thread servers stop quickly


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return write_certs(tmp_path_factory.mktemp("h2tls"))


# -- h2c Upgrade by hand -------------------------------------------------------------------


def h2c_request(body: bytes) -> tuple[h2.connection.H2Connection, bytes]:
    """An h2 client set up for an upgrade, and the head of its ``POST /hash`` request."""
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding=None)
    )
    settings = conn.initiate_upgrade_connection()  # stream 1 is the upgrade request
    head = request(
        "POST",
        "/hash",
        headers=[
            ("Connection", "Upgrade, HTTP2-Settings"),
            ("Upgrade", "h2c"),
            ("HTTP2-Settings", settings.decode()),
            ("Content-Length", str(len(body))),
        ],
    )
    return conn, head


def read_h2c_answer(sock: socket.socket, conn: h2.connection.H2Connection) -> tuple[list, bytes]:
    """The 101, then stream 1's answer over HTTP/2: (its header fields, its body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before the 101: {data!r}"
        data += chunk
    status_head, _, rest = data.partition(b"\r\n\r\n")
    lines = status_head.decode().lower().split("\r\n")
    assert lines[0] == "http/1.1 101 switching protocols"
    assert "upgrade: h2c" in lines
    events = conn.receive_data(rest)
    response: list = []
    answer = bytearray()
    ended = False
    while not ended:
        for event in events:
            if isinstance(event, h2.events.ResponseReceived):
                assert event.stream_id == 1
                response = list(event.headers)
            elif isinstance(event, h2.events.DataReceived):
                assert event.stream_id == 1
                answer += event.data
                conn.acknowledge_received_data(event.flow_controlled_length, 1)
            elif isinstance(event, h2.events.StreamEnded):
                ended = event.stream_id == 1
            elif isinstance(event, h2.events.ConnectionTerminated | h2.events.StreamReset):
                pytest.fail(f"unexpected {event}")
        sock.sendall(conn.data_to_send())
        if not ended:
            chunk = sock.recv(65536)
            assert chunk, "closed before the answer on stream 1"
            events = conn.receive_data(chunk)
    return response, bytes(answer)


def test_h2c_upgrade_with_body_and_preface_in_one_write(serve):
    scopes: list[dict] = []
    srv = serve(recording_app(scopes))
    body = bytes(range(256)) * 400  # 100 KB
    conn, head = h2c_request(body)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        sock.sendall(head + body + conn.data_to_send())  # the preface does not wait for the 101
        response, answer = read_h2c_answer(sock, conn)
        # the connection goes on as HTTP/2: a second stream
        conn.send_headers(
            3,
            [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"x"), (b":path", b"/2")],
            end_stream=True,
        )
        sock.sendall(conn.data_to_send())
        second = bytearray()
        while not second.endswith(b"/2"):
            chunk = sock.recv(65536)
            assert chunk, "closed before the answer on stream 3"
            for event in conn.receive_data(chunk):
                if isinstance(event, h2.events.DataReceived) and event.stream_id == 3:
                    second += event.data
    assert status_of(response) == 200
    assert answer == digest(body).encode()
    assert bytes(second) == b"2 http GET /2"
    assert scopes[0]["http_version"] == "2"
    assert scopes[0]["method"] == "POST"


def unread_bytes(sock) -> int:
    """Bytes waiting in a socket's receive queue (FIONREAD)."""
    count = array.array("i", [0])
    fcntl.ioctl(sock.fileno(), termios.FIONREAD, count)
    return count[0]


def test_h2c_upgrade_with_a_body_in_two_parts(serve):
    """More than 64 KiB of body read before the rest comes: the app must read it (the
    socket is paused above 64 KiB buffered) or the upgrade never completes."""
    scopes: list[dict] = []
    # were the connection stuck, it would hold a graceful shutdown for ever
    srv = serve(recording_app(scopes), timeout_graceful_shutdown=0.5)
    body = bytes(range(256)) * 400  # 100 KB
    conn, head = h2c_request(body)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=2) as sock:
        sock.sendall(head + body[:80_000])
        wait_until(lambda: len(connections(srv)) == 1, what="the connection")
        server_sock = connections(srv)[0].transport.get_extra_info("socket")
        wait_until(lambda: unread_bytes(server_sock) == 0, what="the server to read part 1")
        sock.sendall(body[80_000:] + conn.data_to_send())  # the rest, then the preface
        response, answer = read_h2c_answer(sock, conn)
    assert status_of(response) == 200
    assert answer == digest(body).encode()
    assert scopes[0]["http_version"] == "2"


# -- http2=False ----------------------------------------------------------------------------


def test_http2_off_alpn_offers_only_http11(serve, certs):
    scopes: list[dict] = []
    srv = serve(recording_app(scopes), ssl_certfile=certs["server"], http2=False)
    with httpx.Client(http2=True, verify=ssl.create_default_context(cafile=certs["ca"])) as c:
        answer = c.get(https(srv) + "/fallback")
    assert answer.http_version == "HTTP/1.1"
    assert answer.text == "1.1 https GET /fallback"
    for offer, chosen in ((["h2", "http/1.1"], "http/1.1"), (["h2"], None)):
        context = tls_context(certs["ca"], offer)
        with (
            socket.create_connection(("127.0.0.1", srv.port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
        ):
            assert sock.selected_alpn_protocol() == chosen


def test_http2_on_alpn_prefers_h2(serve, certs):
    srv = serve(recording_app([]), ssl_certfile=certs["server"])
    for offer, chosen in ((["http/1.1", "h2"], "h2"), (["http/1.1"], "http/1.1")):
        context = tls_context(certs["ca"], offer)
        with (
            socket.create_connection(("127.0.0.1", srv.port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
        ):
            assert sock.selected_alpn_protocol() == chosen


@pytest.mark.parametrize(
    ("http_impl_name", "status"), [("httptools", 400), ("h11", 501)], ids=["httptools", "h11"]
)
def test_http2_off_prior_knowledge_is_not_served(serve, http_impl_name, status):
    scopes: list[dict] = []
    srv = serve(recording_app(scopes), http=http_impl_name, http2=False)
    client = srv.client()
    client.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
    raw = client.read_until_closed()  # and the server closes
    assert raw.startswith(b"HTTP/1.1 "), raw  # no HTTP/2 SETTINGS frame
    answer = parse_response(raw)
    assert answer.status == status
    assert answer.header("connection") == "close"
    assert scopes == []


def test_http2_off_h2c_upgrade_is_answered_as_http11(serve):
    scopes: list[dict] = []
    srv = serve(recording_app(scopes), http2=False)
    client = srv.client()
    client.send(
        request(
            "GET",
            "/plain",
            headers=[
                ("Connection", "Upgrade, HTTP2-Settings"),
                ("Upgrade", "h2c"),
                ("HTTP2-Settings", "AAMAAABkAAQCAAAAAAIAAAAA"),
            ],
        )
    )
    answer = parse_response(client.response())
    assert answer.status == 200
    assert answer.body == b"1.1 http GET /plain"
    assert scopes[0]["http_version"] == "1.1"


def test_h2c_upgrade_is_ignored_over_tls(serve, certs):
    """``h2c`` is the cleartext token: over TLS the request is answered as HTTP/1.1."""
    scopes: list[dict] = []
    srv = serve(recording_app(scopes), ssl_certfile=certs["server"])
    context = tls_context(certs["ca"], ["http/1.1"])
    with (
        socket.create_connection(("127.0.0.1", srv.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
    ):
        sock.sendall(
            request(
                "GET",
                "/tls-h2c",
                headers=[
                    ("Connection", "Upgrade, HTTP2-Settings"),
                    ("Upgrade", "h2c"),
                    ("HTTP2-Settings", "AAMAAABkAAQCAAAAAAIAAAAA"),
                ],
            )
        )
        data = b""
        while b"GET /tls-h2c" not in data:
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 ")
    assert scopes[0]["http_version"] == "1.1"
