"""Squall behind a real nginx: HTTP/1.1 proxying, forwarding headers, WebSockets, PROXY protocol.

Each test writes a minimal ``nginx.conf`` into its ``tmp_path`` and runs
``nginx -c ... -p tmp_path -e stderr`` in the foreground (one process, no
master), in front of an in-thread Squall. nginx talks HTTP/1.1 to Squall
over a keep-alive upstream; the ``stream`` module (a TCP proxy) sends the
PROXY protocol header. The module is skipped when nginx is not installed;
the stream tests are skipped when nginx has no stream module.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
import websockets.sync.client

from tests.integration.helpers import Gate, parse_response

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
if not os.access(NGINX, os.X_OK):
    pytest.skip("nginx is not installed", allow_module_level=True)

# Debian builds the stream module as a dynamic module (package libnginx-mod-stream)
STREAM_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")
needs_stream = pytest.mark.skipif(
    not STREAM_MODULE.exists(), reason="nginx stream module (libnginx-mod-stream) not installed"
)

pytestmark = [pytest.mark.usefixtures("fast_tick"), pytest.mark.timeout(30)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"nginx exited ({proc.returncode}):\n{log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"nginx not listening on {port}:\n{log.read_text()}") from exc
            time.sleep(0.01)


CONF = """\
{load_module}
daemon off;
master_process off;
worker_processes 1;
pid tmp/nginx.pid;
error_log stderr warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
{http}
}}
{stream}
"""


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Any]:
    """``nginx(http=..., stream=..., ports=[...])`` runs nginx until the test ends."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(http: str = "", stream: str = "", ports: tuple[int, ...] = ()) -> Path:
        (tmp_path / "tmp").mkdir(exist_ok=True)
        conf = tmp_path / "nginx.conf"
        conf.write_text(
            CONF.format(
                load_module=f"load_module {STREAM_MODULE};" if stream else "",
                http=http,
                stream=f"stream {{\n{stream}\n}}" if stream else "",
            )
        )
        log = tmp_path / "nginx.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [NGINX, "-c", str(conf), "-p", f"{tmp_path}/", "-e", "stderr"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        procs.append(proc)
        for port in ports:
            wait_for_port(port, proc, log)
        return log

    yield start
    for proc in procs:
        proc.kill()
        proc.wait(5)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("nginx-tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    paths = {"cert": folder / "cert.pem", "key": folder / "key.pem", "ca": folder / "ca.pem"}
    cert.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    cert.private_key_pem.write_to_path(str(paths["key"]))
    ca.cert_pem.write_to_path(str(paths["ca"]))
    return {name: str(path) for name, path in paths.items()}


# -- the app behind nginx --------------------------------------------------------------


class Recorder:
    """An app that answers with what it saw (JSON), and keeps each scope it saw.

    ``.../chunks``: the body in several ``more_body`` messages (chunked on the wire);
    ``.../stream``: one chunk, then waits for ``gate`` before the last one;
    WebSocket: sends its scope as the first message, then echoes until closed.
    """

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.gate = Gate()
        self.ws_closed: list[int] = []

    @staticmethod
    def describe(scope: dict[str, Any], body: bytes = b"") -> dict[str, Any]:
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            key = name.decode("latin-1")
            text = value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        return {
            "client": list(scope["client"]) if scope.get("client") else None,
            "server": list(scope["server"]) if scope.get("server") else None,
            "scheme": scope["scheme"],
            "http_version": scope["http_version"],
            "path": scope["path"],
            "raw_path": scope["raw_path"].decode("latin-1"),
            "root_path": scope["root_path"],
            "query": scope["query_string"].decode("latin-1"),
            "headers": headers,
            "body_length": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
        }

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await self.websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        info = self.describe(scope, body)
        self.seen.append(info)
        path = scope["path"]
        if path.endswith("/chunks"):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for i in range(64):
                await send(
                    {"type": "http.response.body", "body": b"%04d" % i * 4096, "more_body": True}
                )
            await send({"type": "http.response.body", "body": b"end"})
            return
        if path.endswith("/stream"):
            headers = [(b"x-accel-buffering", b"no"), (b"content-type", b"text/plain")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b"first\n", "more_body": True})
            await self.gate.wait()
            await send({"type": "http.response.body", "body": b"second\n"})
            return
        data = json.dumps(info).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": data})

    async def websocket(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        message = await receive()
        assert message["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": json.dumps(self.describe(scope))})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                self.ws_closed.append(message["code"])
                return
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": message["text"]})
            else:
                await send({"type": "websocket.send", "bytes": message["bytes"]})


FORWARDING = """
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header X-Forwarded-Port $server_port;"""

HTTP_CONF = """
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}
    upstream squall {{
        server 127.0.0.1:{squall};
        keepalive 4;
    }}
    server {{
        listen 127.0.0.1:{port};
        listen 127.0.0.1:{tls_port} ssl http2;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        client_max_body_size 10m;
        proxy_http_version 1.1;
        location / {{
            proxy_pass http://squall;
            proxy_set_header Connection "";{fwd}
        }}
        location /unbuffered/ {{
            proxy_pass http://squall;
            proxy_request_buffering off;
            proxy_set_header Connection "";{fwd}
        }}
        location /api/ {{
            proxy_pass http://squall/;
            proxy_set_header Connection "";{fwd}
            proxy_set_header X-Forwarded-Prefix /api;
        }}
        location /rfc7239/ {{
            proxy_pass http://squall/;
            proxy_set_header Connection "";
            proxy_set_header Forwarded "for=$remote_addr;proto=$scheme;host=$host";
        }}
        location /ws {{
            proxy_pass http://squall;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;{fwd}
        }}
    }}
"""


@dataclass
class Proxied:
    app: Recorder
    srv: Any  # the in-thread Squall (tests.conftest.RunningServer)
    port: int  # nginx, plain HTTP
    tls_port: int  # nginx, HTTPS (HTTP/1.1 and HTTP/2 by ALPN)
    ca: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.tls_port}"

    def client(self, local_address: str | None = None, http2: bool = False) -> httpx.Client:
        transport = httpx.HTTPTransport(
            local_address=local_address,
            verify=ssl.create_default_context(cafile=self.ca),
            http2=http2,
            retries=0,
        )
        return httpx.Client(transport=transport, timeout=10)


@pytest.fixture
def proxied(serve: Any, nginx: Any, certs: dict[str, str]) -> Any:
    """``proxied(**squall_options)``: Squall (a :class:`Recorder`) behind nginx."""

    def start(**options: Any) -> Proxied:
        app = Recorder()
        srv = serve(app, **options)
        port, tls_port = free_port(), free_port()
        conf = HTTP_CONF.format(
            squall=srv.port,
            port=port,
            tls_port=tls_port,
            cert=certs["cert"],
            key=certs["key"],
            fwd=FORWARDING,
        )
        nginx(http=conf, ports=(port, tls_port))
        return Proxied(app, srv, port, tls_port, certs["ca"])

    return start


# -- HTTP/1.1 proxying -----------------------------------------------------------------


def test_request_bodies_over_a_keepalive_upstream(proxied):
    p = proxied(forwarded_allow_ips="192.0.2.1")  # scope client: nginx's own socket
    payload = os.urandom(300_000)
    with p.client() as client:
        first = client.get(p.url + "/a?x=1")
        posted = client.post(p.url + "/upload", content=payload)
        third = client.get(p.url + "/b")
    assert [r.status_code for r in (first, posted, third)] == [200, 200, 200]
    got = posted.json()
    assert got["body_length"] == len(payload)
    assert got["body_sha256"] == hashlib.sha256(payload).hexdigest()
    # nginx buffers the body and sends it with a Content-Length
    assert got["headers"]["content-length"] == str(len(payload))
    assert "transfer-encoding" not in got["headers"]
    assert first.json()["query"] == "x=1"
    assert all(s["http_version"] == "1.1" for s in p.app.seen)
    # keepalive upstream: nginx sent all three requests on one connection to Squall,
    # so Squall kept it open between them (its peer, nginx's socket, never changed)
    peers = {tuple(s["client"]) for s in p.app.seen}
    assert len(peers) == 1
    assert all("connection" not in s["headers"] for s in p.app.seen)
    state = p.srv.server.state
    assert len(state.connections) == 1  # the one nginx keeps for the next request
    assert state.total_requests == 3


def test_streamed_request_body_is_chunked_to_squall(proxied):
    """With ``proxy_request_buffering off`` nginx forwards a chunked body as it comes."""
    p = proxied()
    parts = [os.urandom(10_000) for _ in range(20)]

    def body() -> Iterator[bytes]:
        yield from parts

    with p.client() as client:
        r = client.post(p.url + "/unbuffered/up", content=body())
    assert r.status_code == 200
    got = r.json()
    assert got["headers"].get("transfer-encoding") == "chunked"
    assert "content-length" not in got["headers"]
    assert got["body_length"] == 200_000
    assert got["body_sha256"] == hashlib.sha256(b"".join(parts)).hexdigest()


def test_chunked_response_through_nginx(proxied):
    p = proxied()
    expected = b"".join(b"%04d" % i * 4096 for i in range(64)) + b"end"
    with p.client() as client:
        r = client.get(p.url + "/big/chunks")
    assert r.status_code == 200
    assert r.content == expected
    # on the wire from nginx: chunked again (it never knew the length)
    with socket.create_connection(("127.0.0.1", p.port), timeout=10) as sock:
        sock.sendall(b"GET /big/chunks HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    resp = parse_response(raw)
    assert resp.status == 200
    assert resp.header("transfer-encoding") == "chunked"
    assert resp.header("content-length") is None
    assert resp.complete
    assert resp.body == expected


def test_streaming_response_is_not_held_back(proxied):
    """A chunk the app sends reaches the client through nginx while the app still runs.

    (The app also sends ``X-Accel-Buffering: no``, as apps behind nginx do.)
    """
    p = proxied()
    with (
        p.client() as client,
        client.stream("GET", p.url + "/live/stream", timeout=5) as r,
    ):
        chunks = r.iter_raw()
        first = next(chunks)
        still_waiting = not p.app.gate.is_open
        p.app.gate.open()
        rest = b"".join(chunks)
    assert r.status_code == 200
    assert first == b"first\n"
    assert still_waiting  # the first chunk came while the app was blocked
    assert rest == b"second\n"


# -- forwarding headers ----------------------------------------------------------------


def test_forwarded_headers_from_a_trusted_nginx(proxied):
    p = proxied(forwarded_allow_ips="127.0.0.1")
    spoof = {"X-Forwarded-For": "203.0.113.7", "Host": "app.example"}
    # from 127.0.0.1 (a trusted address itself): nginx appends it to the spoofed list,
    # and the right-most untrusted hop is the one the client wrote
    with p.client(http2=True) as client:
        r = client.get(p.https_url + "/who", headers={"X-Forwarded-For": "203.0.113.7"})
    assert r.http_version == "HTTP/2"
    got = r.json()
    assert got["headers"]["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
    assert got["client"] == ["203.0.113.7", 0]
    assert got["scheme"] == "https"
    assert got["headers"]["host"] == "127.0.0.1"  # nginx's $host has no port
    assert got["server"] == ["127.0.0.1", p.tls_port]  # the port is X-Forwarded-Port
    # from 127.0.0.2 (not trusted): the spoofed hop is left of an untrusted one
    with p.client(local_address="127.0.0.2") as client:
        spoofed = client.get(p.https_url + "/who", headers=spoof).json()
        plain = client.get(p.url + "/who?q=1").json()
        prefixed = client.get(p.url + "/api/items/7?x=1").json()
        rfc7239 = client.get(p.https_url + "/rfc7239/r", headers=spoof).json()
    assert spoofed["headers"]["x-forwarded-for"] == "203.0.113.7, 127.0.0.2"
    assert spoofed["client"] == ["127.0.0.2", 0]
    assert spoofed["scheme"] == "https"
    assert spoofed["headers"]["host"] == "app.example"  # X-Forwarded-Host replaced nginx's
    assert spoofed["server"] == ["app.example", p.tls_port]  # X-Forwarded-Port
    assert plain["client"] == ["127.0.0.2", 0]
    assert plain["scheme"] == "http"
    assert plain["headers"]["host"] == "127.0.0.1"
    assert plain["server"] == ["127.0.0.1", p.port]
    assert plain["root_path"] == ""
    assert (plain["path"], plain["query"]) == ("/who", "q=1")
    # X-Forwarded-Prefix: nginx stripped /api/, Squall puts it back as the root_path
    assert prefixed["root_path"] == "/api"
    assert prefixed["path"] == "/api/items/7"
    assert prefixed["raw_path"] == "/api/items/7"
    assert prefixed["query"] == "x=1"
    assert prefixed["client"] == ["127.0.0.2", 0]
    # RFC 7239 Forwarded set by nginx
    assert rfc7239["headers"]["forwarded"] == "for=127.0.0.2;proto=https;host=app.example"
    assert rfc7239["client"] == ["127.0.0.2", 0]
    assert rfc7239["scheme"] == "https"
    assert rfc7239["headers"]["host"] == "app.example"
    assert rfc7239["path"] == "/r"


@pytest.mark.parametrize(
    "options",
    [
        {"forwarded_allow_ips": "192.0.2.1"},
        {"forwarded_allow_ips": "127.0.0.1", "proxy_headers": False},
    ],
    ids=["nginx-not-allowed", "proxy-headers-off"],
)
def test_forwarded_headers_ignored_unless_nginx_is_trusted(proxied, options):
    p = proxied(**options)
    with p.client(local_address="127.0.0.2") as client:
        r = client.get(p.https_url + "/api/items?x=1", headers={"Host": "app.example"})
    got = r.json()
    assert got["headers"]["x-forwarded-for"] == "127.0.0.2"
    assert got["headers"]["x-forwarded-proto"] == "https"
    assert got["headers"]["x-forwarded-prefix"] == "/api"
    # the scope is the connection's own: nginx's socket, plain HTTP, nginx's Host
    assert got["client"][0] == "127.0.0.1"
    assert got["client"][1] > 0
    assert got["scheme"] == "http"
    assert got["headers"]["host"] == "squall"
    assert got["server"] == ["127.0.0.1", p.srv.port]
    assert got["root_path"] == ""
    assert got["path"] == "/items"


# -- WebSocket ---------------------------------------------------------------------------


def test_websocket_through_nginx(proxied):
    p = proxied(forwarded_allow_ips="127.0.0.1")
    sock = socket.socket()
    sock.settimeout(10)
    sock.bind(("127.0.0.2", 0))
    sock.connect(("127.0.0.1", p.port))
    big = os.urandom(200_000)
    with websockets.sync.client.connect(
        f"ws://127.0.0.1:{p.port}/ws/chat?room=1", sock=sock, open_timeout=10, max_size=None
    ) as ws:
        scope = json.loads(ws.recv(timeout=10))
        ws.send("hello")
        assert ws.recv(timeout=10) == "hello"
        ws.send(big)
        assert ws.recv(timeout=10) == big
        for i in range(20):
            ws.send(f"m{i}")
        assert [ws.recv(timeout=10) for _ in range(20)] == [f"m{i}" for i in range(20)]
    assert ws.close_code == 1000
    assert scope["client"] == ["127.0.0.2", 0]  # from X-Forwarded-For
    assert scope["scheme"] == "ws"
    assert scope["path"] == "/ws/chat"
    assert scope["query"] == "room=1"
    assert scope["headers"]["upgrade"] == "websocket"
    deadline = time.monotonic() + 5
    while not p.app.ws_closed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert p.app.ws_closed == [1000]


# -- PROXY protocol from nginx's stream module ----------------------------------------


async def addresses(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = json.dumps(
        {
            "client": scope["client"],
            "server": scope["server"],
            "http_version": scope["http_version"],
        }
    ).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def stream_conf(listen: int, squall: int) -> str:
    return f"""
    server {{
        listen 127.0.0.1:{listen};
        proxy_pass 127.0.0.1:{squall};
        proxy_protocol on;
    }}"""


@needs_stream
def test_proxy_protocol_from_nginx_stream(serve, nginx, http_impl):
    srv = serve(addresses, http=http_impl, proxy_protocol=True, forwarded_allow_ips="127.0.0.1")
    port = free_port()
    nginx(stream=stream_conf(port, srv.port), ports=(port,))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        local_port = sock.getsockname()[1]
        buf = b""
        answers = []
        for _ in range(2):  # keep-alive: both requests on the proxied connection
            sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            while b"}" not in buf:
                chunk = sock.recv(65536)
                assert chunk, buf
                buf += chunk
            raw, buf = buf, b""
            resp = parse_response(raw)
            assert resp.status == 200
            answers.append(json.loads(resp.body))
    for got in answers:
        assert got["client"] == ["127.0.0.1", local_port]
        assert got["server"] == ["127.0.0.1", port]
        assert got["http_version"] == "1.1"


@needs_stream
def test_http2_prior_knowledge_through_nginx_stream(serve, nginx):
    srv = serve(addresses, proxy_protocol=True, forwarded_allow_ips="127.0.0.1")
    port = free_port()
    nginx(stream=stream_conf(port, srv.port), ports=(port,))
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "--max-time",
            "10",
            "--http2-prior-knowledge",
            "-w",
            "\n%{http_version} %{local_port}",
            f"http://127.0.0.1:{port}/h2",
        ],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    ).stdout
    body, _, trailer = out.rpartition("\n")
    version, local_port = trailer.split()
    got = json.loads(body)
    assert version == "2"
    assert got["http_version"] == "2"
    assert got["client"] == ["127.0.0.1", int(local_port)]
    assert got["server"] == ["127.0.0.1", port]


@needs_stream
def test_proxy_protocol_header_from_untrusted_nginx_is_not_believed(serve, nginx):
    srv = serve(addresses, proxy_protocol=True, forwarded_allow_ips="192.0.2.1")
    port = free_port()
    nginx(stream=stream_conf(port, srv.port), ports=(port,))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    # the "PROXY TCP4 ..." line is read as a request line, not as addresses
    assert parse_response(raw).status == 400
