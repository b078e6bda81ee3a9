"""TLS: certificates from trustme, real clients (httpx, curl, ssl sockets)."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from tests.conftest import RawClient

pytestmark = pytest.mark.usefixtures("fast_tick")


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = f"{scope['scheme']} {scope['path']}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def certs(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("tls")
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("client@example.com")
    paths = {
        "server": folder / "server.pem",
        "ca": folder / "ca.pem",
        "client": folder / "client.pem",
    }
    server.private_key_and_cert_chain_pem.write_to_path(str(paths["server"]))
    ca.cert_pem.write_to_path(str(paths["ca"]))
    client.private_key_and_cert_chain_pem.write_to_path(str(paths["client"]))
    return {name: str(path) for name, path in paths.items()}


def https(srv) -> str:
    return srv.url.replace("http://", "https://")


def test_https_with_httpx(serve, certs, http_impl):
    srv = serve(app, http=http_impl, ssl_certfile=certs["server"])
    r = httpx.get(https(srv) + "/x", verify=certs["ca"])
    assert r.status_code == 200
    assert r.text == "https /x"


def test_https_with_curl(serve, certs):
    srv = serve(app, ssl_certfile=certs["server"])
    out = subprocess.run(
        ["curl", "-s", "--cacert", certs["ca"], https(srv) + "/curl"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.stdout == "https /curl"


def test_tls_1_1_client_is_refused(serve, certs):
    srv = serve(app, ssl_certfile=certs["server"])
    context = ssl.create_default_context(cafile=certs["ca"])
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    with (
        socket.create_connection(("127.0.0.1", srv.port), timeout=5) as raw,
        pytest.raises(ssl.SSLError),
    ):
        context.wrap_socket(raw, server_hostname="127.0.0.1")
    assert httpx.get(https(srv), verify=certs["ca"]).status_code == 200  # still serving


def test_mtls_requires_a_client_certificate(serve, certs):
    srv = serve(app, ssl_certfile=certs["server"], ssl_cert_reqs=2, ssl_ca_certs=certs["ca"])
    with pytest.raises(httpx.HTTPError):
        httpx.get(https(srv), verify=certs["ca"])
    context = ssl.create_default_context(cafile=certs["ca"])
    context.load_cert_chain(certs["client"])
    r = httpx.get(https(srv) + "/m", verify=context)
    assert r.text == "https /m"


def test_handshake_timeout_closes_a_silent_connection(serve, certs):
    srv = serve(app, ssl_certfile=certs["server"], timeout_tls_handshake=0.3)
    client = RawClient(srv.port)
    assert client.is_closed(timeout=5)  # never sent a ClientHello


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "squall", "examples.hello:app", "--port", "0", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_wrong_key_password_is_one_line_and_exit_3(ca: trustme.CA, tmp_path: Path):
    cert = ca.issue_cert("127.0.0.1")
    key = serialization.load_pem_private_key(cert.private_key_pem.bytes(), password=None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"right"),
    )
    (tmp_path / "key.pem").write_bytes(encrypted)
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    root = Path(__file__).resolve().parents[2]
    out = _run(
        "--ssl-certfile",
        str(tmp_path / "cert.pem"),
        "--ssl-keyfile",
        str(tmp_path / "key.pem"),
        "--ssl-keyfile-password",
        "wrong",
        cwd=root,
    )
    assert out.returncode == 3
    errors = [line for line in out.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1
    assert "--ssl-keyfile-password" in errors[0]
    assert "Traceback" not in out.stderr


def test_missing_certificate_is_one_line_and_exit_3(tmp_path: Path):
    root = Path(__file__).resolve().parents[2]
    out = _run("--ssl-certfile", str(tmp_path / "nope.pem"), cwd=root)
    assert out.returncode == 3
    assert "--ssl-certfile: " in out.stderr
    assert "does not exist" in out.stderr
