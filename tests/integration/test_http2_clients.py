"""HTTP/2 with real third-party clients over real sockets: httpx, curl, h2load.

Each reaches HTTP/2 its own way: ALPN ``h2`` over TLS, the cleartext
prior-knowledge preface, the HTTP/1.1 ``Upgrade: h2c`` request (with and
without a body). test_http2_negotiation.py has the same by hand, and
``http2=False``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import ssl
import subprocess

import httpx
import pytest

from tests.integration.helpers import PROPAGATE_LOGS, wait_until
from tests.integration.http2_client import (
    H2Client,
    digest,
    https,
    one,
    recording_app,
    tls_context,
    write_certs,
)

pytestmark = pytest.mark.usefixtures("fast_tick")  # in-thread servers stop quickly

needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
needs_h2load = pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load not installed")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return write_certs(tmp_path_factory.mktemp("h2tls"))


# -- httpx -----------------------------------------------------------------------------


def test_httpx_alpn_h2_over_tls(serve, certs):
    scopes: list[dict] = []
    srv = serve(recording_app(scopes), ssl_certfile=certs["server"])
    with httpx.Client(http2=True, verify=ssl.create_default_context(cafile=certs["ca"])) as c:
        first = c.get(https(srv) + "/one")
        second = c.post(https(srv) + "/hash", content=b"abc" * 1000)
    assert first.http_version == "HTTP/2"
    assert first.status_code == 200
    assert first.text == "2 https GET /one"
    assert second.http_version == "HTTP/2"
    assert second.text == digest(b"abc" * 1000)
    scope = scopes[0]
    assert scope["type"] == "http"
    assert scope["http_version"] == "2"
    assert scope["scheme"] == "https"
    assert scope["server"] == ("127.0.0.1", srv.port)
    assert scope["client"][0] == "127.0.0.1"
    assert scopes[1]["client"] == scope["client"]  # one connection for both requests


class LoopBarrier:
    """Holds each request until ``n`` are in flight at once (on the server's loop)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.count = 0
        self.event: asyncio.Event | None = None

    async def wait(self) -> None:
        if self.event is None:
            self.event = asyncio.Event()
        self.count += 1
        if self.count >= self.n:
            self.event.set()
        await asyncio.wait_for(self.event.wait(), 10)


def test_httpx_many_concurrent_streams_on_one_tls_connection(serve, certs):
    n = 30
    scopes: list[dict] = []
    barrier = LoopBarrier(n)
    inner = recording_app(scopes)

    async def app(scope, receive, send):
        if scope["path"] == "/hash":
            await barrier.wait()  # deadlocks unless all n streams run at the same time
        await inner(scope, receive, send)

    srv = serve(app, ssl_certfile=certs["server"])
    # Up to 29 KB each, ~430 KB in all: within the 1 MiB connection window. (httpcore
    # can stall a concurrent upload that has to wait for a WINDOW_UPDATE: its
    # _wait_for_outgoing_flow blocks on a network read even when another stream's read
    # already delivered the update. Squall's side of that is tested with h2 itself.)
    bodies = [bytes([i]) * (i * 1001) for i in range(n)]

    async def main() -> tuple[httpx.Response, list[httpx.Response]]:
        context = ssl.create_default_context(cafile=certs["ca"])
        async with httpx.AsyncClient(http2=True, verify=context, timeout=20) as client:
            warm = await client.get(https(srv) + "/warm")
            answers = await asyncio.gather(
                *(client.post(https(srv) + "/hash", content=body) for body in bodies)
            )
            return warm, answers

    warm, answers = asyncio.run(main())
    assert warm.http_version == "HTTP/2"
    for body, answer in zip(bodies, answers, strict=True):
        assert answer.status_code == 200
        assert answer.http_version == "HTTP/2"
        assert answer.text == digest(body)
    assert barrier.count == n
    assert len(scopes) == n + 1
    assert {s["http_version"] for s in scopes} == {"2"}
    assert len({s["client"] for s in scopes}) == 1  # all multiplexed on one connection


def test_httpx_prior_knowledge_on_cleartext(serve):
    scopes: list[dict] = []
    srv = serve(recording_app(scopes))
    with httpx.Client(http1=False, http2=True) as client:
        answers = [client.get(f"{srv.url}/pk/{i}") for i in range(3)]
        upload = client.put(srv.url + "/hash", content=b"\x00\xff" * 50_000)
    for i, answer in enumerate(answers):
        assert answer.http_version == "HTTP/2"
        assert answer.text == f"2 http GET /pk/{i}"
    assert upload.text == digest(b"\x00\xff" * 50_000)
    assert [s["http_version"] for s in scopes] == ["2"] * 4
    assert {s["scheme"] for s in scopes} == {"http"}
    assert len({s["client"] for s in scopes}) == 1


# -- curl --------------------------------------------------------------------------------


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "-sS", "--max-time", "10", *args],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )


@needs_curl
def test_curl_http2_prior_knowledge(serve):
    scopes: list[dict] = []
    srv = serve(recording_app(scopes))
    out = curl("--http2-prior-knowledge", "-w", "\n%{http_version}", srv.url + "/pk")
    assert out.stdout == "2 http GET /pk\n2"
    assert scopes[0]["http_version"] == "2"


@needs_curl
def test_curl_h2c_upgrade_without_body(serve):
    scopes: list[dict] = []
    srv = serve(recording_app(scopes))
    out = curl("-v", "--http2", "-w", "\n%{http_version}", srv.url + "/up")
    assert out.stdout == "2 http GET /up\n2"
    assert "> Upgrade: h2c" in out.stderr
    assert "< HTTP/1.1 101 Switching Protocols" in out.stderr
    assert "< upgrade: h2c" in out.stderr
    assert "< HTTP/2 200" in out.stderr
    assert len(scopes) == 1
    assert scopes[0]["http_version"] == "2"
    assert scopes[0]["method"] == "GET"


@needs_curl
@pytest.mark.parametrize("size", [9, 60_000])  # sent with the head, before the 101 arrives
def test_curl_h2c_upgrade_with_body(serve, tmp_path, size):
    scopes: list[dict] = []
    srv = serve(recording_app(scopes))
    data = bytes((i * 31 + 7) % 256 for i in range(size))
    path = tmp_path / "body.bin"
    path.write_bytes(data)
    out = curl(
        "-v", "--http2", "--data-binary", f"@{path}", "-w", "\n%{http_version}", srv.url + "/hash"
    )
    assert out.stdout == f"{digest(data)}\n2"  # the app saw every byte, exactly
    assert "< HTTP/1.1 101 Switching Protocols" in out.stderr
    assert "< HTTP/2 200" in out.stderr
    assert len(scopes) == 1
    assert scopes[0]["http_version"] == "2"
    assert scopes[0]["method"] == "POST"


@needs_curl
def test_curl_h2c_upgrade_with_expect_100_continue(serve, tmp_path):
    scopes: list[dict] = []
    srv = serve(recording_app(scopes))
    data = bytes(range(256)) * 400
    path = tmp_path / "body.bin"
    path.write_bytes(data)
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "--max-time",
            "2",
            "--http2",
            "-H",
            "Expect: 100-continue",
            "--data-binary",
            f"@{path}",
            srv.url + "/hash",
        ],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    # HTTP/2 or declining the upgrade would both do; hanging until curl gives up does not
    assert out.returncode == 0, out.stderr
    assert out.stdout == digest(data)
    assert len(scopes) == 1


@needs_curl
def test_curl_h2c_upgrade_with_a_body_still_uploading(serve, tmp_path):
    scopes: list[dict] = []
    # the stuck connection would hold a graceful shutdown for ever
    srv = serve(recording_app(scopes), timeout_graceful_shutdown=0.5)
    data = bytes((i * 31 + 7) % 256 for i in range(100_000))
    path = tmp_path / "body.bin"
    path.write_bytes(data)
    # --limit-rate: the upload takes ~0.5 s, so the 101 always comes while it is under way
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "--max-time",
            "2",
            "--limit-rate",
            "200K",
            "--http2",
            "--data-binary",
            f"@{path}",
            srv.url + "/hash",
        ],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == digest(data)
    assert scopes[0]["method"] == "POST"


@needs_curl
def test_curl_h2c_upgrade_with_form_data(serve):
    seen: list[bytes] = []

    async def app(scope, receive, send):
        message = await receive()
        seen.append(message["body"])
        headers = dict(scope["headers"])
        out = b"%s %s" % (headers[b"content-type"], message["body"])
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": out})

    srv = serve(app)
    out = curl("-v", "--http2", "-d", "a=1&b=two", "-w", "\n%{http_code} %{http_version}", srv.url)
    assert out.stdout == "application/x-www-form-urlencoded a=1&b=two\n201 2"
    assert "< HTTP/1.1 101 Switching Protocols" in out.stderr
    assert seen == [b"a=1&b=two"]


@needs_curl
def test_curl_alpn_h2_over_tls(serve, certs):
    scopes: list[dict] = []
    srv = serve(recording_app(scopes), ssl_certfile=certs["server"])
    out = curl(
        "-v", "--http2", "--cacert", certs["ca"], "-w", "\n%{http_version}", https(srv) + "/tls"
    )
    assert out.stdout == "2 https GET /tls\n2"
    assert re.search(r"ALPN.*server accepted( to use)? h2", out.stderr), out.stderr
    assert scopes[0]["scheme"] == "https"
    assert scopes[0]["http_version"] == "2"


# -- h2load -------------------------------------------------------------------------------


@needs_h2load
@pytest.mark.parametrize("tls", [False, True], ids=["cleartext", "tls"])
def test_h2load_short_run(serve, certs, tls):
    count = [0]

    async def app(scope, receive, send):
        count[0] += 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"hello, h2load"})

    srv = serve(app, ssl_certfile=certs["server"]) if tls else serve(app)
    url = (https(srv) if tls else srv.url) + "/"
    out = subprocess.run(
        ["h2load", "-n", "2000", "-c", "4", "-m", "10", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"Application protocol: {'h2' if tls else 'h2c'}\n" in out.stdout, out.stdout
    assert "2000 succeeded, 0 failed, 0 errored, 0 timeout" in out.stdout, out.stdout
    assert "status codes: 2000 2xx, 0 3xx, 0 4xx, 0 5xx" in out.stdout, out.stdout
    assert count[0] == 2000


@needs_curl
def test_http2_off_curl_h2c_stays_http11(serve):
    srv = serve(recording_app([]), http2=False)
    out = curl("-v", "--http2", "-w", "\n%{http_version}", srv.url + "/x")
    assert out.stdout == "1.1 http GET /x\n1.1"
    assert "101 Switching Protocols" not in out.stderr


# -- access log ----------------------------------------------------------------------------


def test_access_log_shows_http2(serve, caplog, certs):
    caplog.set_level(logging.INFO)

    async def app(scope, receive, send):
        status = 404 if scope["path"] == "/missing" else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"x"})

    srv = serve(app, log_config=PROPAGATE_LOGS, log_level="info")
    client = H2Client(srv.port)
    port = client.sock.getsockname()[1]
    assert client.get("/path?q=1").status == 200
    assert client.get("/missing", method="POST").status == 404
    client.close()

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "squall.access"]

    wait_until(lambda: len(lines()) >= 2, what="two access log lines")
    assert lines() == [
        f'127.0.0.1:{port} - "GET /path?q=1 HTTP/2" 200',
        f'127.0.0.1:{port} - "POST /missing HTTP/2" 404',
    ]


def test_access_log_shows_http2_over_tls(serve, caplog, certs):
    caplog.set_level(logging.INFO)
    srv = serve(
        recording_app([]), ssl_certfile=certs["server"], log_config=PROPAGATE_LOGS, log_level="info"
    )
    client = H2Client(srv.port, context=tls_context(certs["ca"]))
    answer = client.get("/secure", scheme="https")
    assert answer.status == 200
    assert bytes(answer.data) == b"2 https GET /secure"
    assert one(answer.headers, b"content-length") == b"19"
    wait_until(
        lambda: any(r.name == "squall.access" for r in caplog.records), what="an access line"
    )
    lines = [r.getMessage() for r in caplog.records if r.name == "squall.access"]
    assert len(lines) == 1
    assert lines[0].endswith('"GET /secure HTTP/2" 200')
