"""The access log: one line per response, safe against injected control characters."""

from __future__ import annotations

import logging
import re

import httpx
import pytest

from tests.integration.helpers import PROPAGATE_LOGS, parse_response, request

pytestmark = pytest.mark.usefixtures("fast_tick")  # in-thread servers stop quickly

APP = "tests.apps.subprocess_app:app"
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


async def app(scope, receive, send):
    status = 404 if scope["path"] == "/missing" else 200
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b"x"})


def access_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "squall.access"]


@pytest.fixture
def logged(serve, caplog):
    caplog.set_level(logging.INFO)

    def start(app, **options):
        return serve(app, log_config=PROPAGATE_LOGS, log_level="info", **options)

    return start


def test_access_log_line_per_request(logged, caplog, http_impl):
    srv = logged(app, http=http_impl)
    c = srv.client()
    port = c.sock.getsockname()[1]
    c.send(request("GET", "/path?q") + request("POST", "/missing", body=b"abc"))
    assert parse_response(c.response()).status == 200
    assert parse_response(c.response()).status == 404
    c.send(request("GET", "/old", version="1.0"))
    c.read_until_closed()
    lines = [r.getMessage() for r in access_records(caplog)]
    assert lines == [
        f'127.0.0.1:{port} - "GET /path?q HTTP/1.1" 200',
        f'127.0.0.1:{port} - "POST /missing HTTP/1.1" 404',
        f'127.0.0.1:{port} - "GET /old HTTP/1.0" 200',
    ]
    assert all(r.levelno == logging.INFO for r in access_records(caplog))


def test_access_log_names_the_forwarded_client_behind_a_trusted_proxy(logged, caplog, http_impl):
    srv = logged(app, http=http_impl)  # 127.0.0.1 is trusted by default
    c = srv.client()
    port = c.sock.getsockname()[1]
    c.send(request("GET", "/a", headers=[("X-Forwarded-For", "203.0.113.7")]))
    assert parse_response(c.response()).status == 200
    c.send(request("GET", "/b"))  # no header on the same connection: the peer again
    assert parse_response(c.response()).status == 200
    lines = [r.getMessage() for r in access_records(caplog)]
    assert lines == [
        '203.0.113.7:0 - "GET /a HTTP/1.1" 200',
        f'127.0.0.1:{port} - "GET /b HTTP/1.1" 200',
    ]


def test_access_log_keeps_the_peer_when_the_proxy_is_not_trusted(logged, caplog, http_impl):
    srv = logged(app, http=http_impl, forwarded_allow_ips="10.0.0.1")
    c = srv.client()
    port = c.sock.getsockname()[1]
    c.send(request("GET", "/a", headers=[("X-Forwarded-For", "203.0.113.7")]))
    assert parse_response(c.response()).status == 200
    lines = [r.getMessage() for r in access_records(caplog)]
    assert lines == [f'127.0.0.1:{port} - "GET /a HTTP/1.1" 200']


def test_access_log_for_server_made_500(logged, caplog, http_impl):
    async def broken(scope, receive, send):
        raise RuntimeError("nope")

    srv = logged(broken, http=http_impl)
    r = httpx.get(srv.url + "/err?x=1")
    assert r.status_code == 500
    lines = [r.getMessage() for r in access_records(caplog)]
    assert len(lines) == 1
    assert re.fullmatch(r'127\.0\.0\.1:\d+ - "GET /err\?x=1 HTTP/1\.1" 500', lines[0])


def test_no_access_log(logged, caplog, http_impl):
    srv = logged(app, http=http_impl, access_log=False)
    with httpx.Client(base_url=srv.url) as client:
        for _ in range(3):
            assert client.get("/").status_code == 200
    assert access_records(caplog) == []
    assert srv.server.state.total_requests == 3


INJECTION = "/%1b[31mred%1b[0m%0d%0aINFO:%20%20%20%20fake%20line%07%00%7f?q=%1b[2J&r=%0d%0a"


def test_cve_2020_7694_log_injection(logged, caplog, http_impl):
    srv = logged(app, http=http_impl)
    c = srv.client()
    c.send(request("GET", INJECTION))
    assert parse_response(c.response()).status == 200
    records = access_records(caplog)
    assert len(records) == 1
    line = records[0].getMessage()
    assert "\x1b" not in line
    assert not CONTROL.search(line)
    assert "\n" not in line
    assert "\r" not in line
    assert line.endswith('HTTP/1.1" 200')
    # the request is still recognisable in the log
    assert "red" in line
    assert "fake" in line
    # and the formatter used on the console adds nothing unsafe either
    for record in caplog.records:
        assert "\x1b" not in record.getMessage()


def test_cve_2020_7694_log_injection_in_process_output(squall_process, http_impl):
    proc = squall_process(APP, "--port", "0", "--http", http_impl, "--no-use-colors")
    port = proc.wait_started()
    r = httpx.get(f"http://127.0.0.1:{port}{INJECTION}")
    assert r.status_code == 200
    proc.wait_for(r"fake")
    assert proc.stop() == 0
    out = proc.output
    assert "\x1b" not in out
    assert not CONTROL.search(out)
    access = [line for line in out.splitlines() if "fake" in line]
    assert len(access) == 1
    assert re.search(r'INFO: +127\.0\.0\.1:\d+ - "GET /\S+ HTTP/1\.1" 200 OK', access[0])


def test_access_log_in_process_output(squall_process, http_impl):
    proc = squall_process(APP, "--port", "0", "--http", http_impl)
    port = proc.wait_started()
    with httpx.Client() as client:
        for path in ("/a?b=1", "/c"):
            r = client.get(f"http://127.0.0.1:{port}{path}")
            assert r.text == f"hello {path.split('?')[0]}"
    proc.wait_for(r'"GET /c HTTP/1\.1"')
    assert proc.stop() == 0
    lines = [line for line in proc.output.splitlines() if '"GET ' in line]
    assert len(lines) == 2
    assert re.fullmatch(r'INFO: +127\.0\.0\.1:\d+ - "GET /a\?b=1 HTTP/1\.1" 200 OK \S+', lines[0])
    assert re.fullmatch(r'INFO: +127\.0\.0\.1:\d+ - "GET /c HTTP/1\.1" 200 OK \S+', lines[1])


def test_no_access_log_in_process_output(squall_process, http_impl):
    proc = squall_process(APP, "--port", "0", "--http", http_impl, "--no-access-log")
    port = proc.wait_started()
    r = httpx.get(f"http://127.0.0.1:{port}/quiet")
    assert r.text == "hello /quiet"
    assert proc.stop() == 0
    assert "Finished server process" in proc.output
    assert "/quiet" not in proc.output
    assert '"GET' not in proc.output
