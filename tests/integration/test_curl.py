"""A real third-party client: curl."""

from __future__ import annotations

import hashlib
import shutil
import subprocess

import pytest

pytestmark = [
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed"),
    pytest.mark.usefixtures("fast_tick"),  # in-thread servers stop quickly
]


async def echo(scope, receive, send):
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    headers = dict(scope["headers"])
    if scope["path"] == "/hash":
        out = b"%d %s" % (len(body), hashlib.sha256(body).hexdigest().encode())
    else:
        out = b"%s %s HTTP/%s type=%s body=%s" % (
            scope["method"].encode(),
            scope["path"].encode(),
            scope["http_version"].encode(),
            headers.get(b"content-type", b"-"),
            body,
        )
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-echo", b"yes")]})
    await send({"type": "http.response.body", "body": out})


def curl(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["curl", "-sS", "--max-time", "10", *args],
        input=stdin,
        capture_output=True,
        check=True,
        timeout=20,
    )


def test_curl_get(serve, http_impl):
    srv = serve(echo, http=http_impl)
    assert curl(srv.url + "/hello").stdout == b"GET /hello HTTP/1.1 type=- body="


def test_curl_post_data(serve, http_impl):
    srv = serve(echo, http=http_impl)
    out = curl("-d", "a=1&b=two", srv.url + "/form").stdout
    assert out == b"POST /form HTTP/1.1 type=application/x-www-form-urlencoded body=a=1&b=two"


def test_curl_http10(serve, http_impl):
    srv = serve(echo, http=http_impl)
    assert curl("--http1.0", srv.url + "/old").stdout == b"GET /old HTTP/1.0 type=- body="


def test_curl_head_and_headers(serve, http_impl):
    srv = serve(echo, http=http_impl)
    out = curl("-I", srv.url + "/").stdout.decode()
    lines = out.split("\r\n")
    assert lines[0] == "HTTP/1.1 200 OK"
    assert "server: squall" in lines
    assert "x-echo: yes" in lines
    assert lines[-2:] == ["", ""]  # the head, and no body after it
    assert not any(line.startswith("transfer-encoding") for line in lines)


def test_curl_large_upload_with_expect_continue(serve, http_impl, tmp_path):
    srv = serve(echo, http=http_impl)
    data = bytes(i % 253 for i in range(3 * 1024 * 1024))
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    result = curl("-v", "--data-binary", f"@{path}", srv.url + "/hash")
    assert result.stdout == b"%d %s" % (len(data), hashlib.sha256(data).hexdigest().encode())
    assert b"Expect: 100-continue" in result.stderr
    assert b"HTTP/1.1 100 Continue" in result.stderr


def test_curl_chunked_upload(serve, http_impl):
    srv = serve(echo, http=http_impl)
    result = curl(
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        "@-",
        srv.url + "/hash",
        stdin=b"streamed from stdin",
    )
    body = b"streamed from stdin"
    assert result.stdout == b"%d %s" % (len(body), hashlib.sha256(body).hexdigest().encode())


def test_curl_reuses_connection(serve, http_impl):
    srv = serve(echo, http=http_impl)
    result = curl("-v", srv.url + "/a", srv.url + "/b")
    assert result.stdout == b"GET /a HTTP/1.1 type=- body=GET /b HTTP/1.1 type=- body="
    assert b"Re-using existing connection" in result.stderr
