"""The Gunicorn workers under a real ``gunicorn`` arbiter (a subprocess per test).

Each test starts ``gunicorn -k squall.gunicorn.SquallWorker -b 127.0.0.1:0``
in its own session with the app module in a temporary directory, reads the
port from the "Listening at" line, waits until every worker logged that it is
serving, and kills the process group when done.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import trustme

GUNICORN = str(Path(sys.executable).with_name("gunicorn"))

APP = """
import asyncio, os, time

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if os.environ.get("FAIL_LIFESPAN"):
                    await send({"type": "lifespan.startup.failed", "message": "no"})
                    return
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/block":
        time.sleep(10)  # blocks the worker's event loop
    if path == "/slow":
        print("SLOW-START", flush=True)
        await asyncio.sleep(1.5)
    if path == "/client":
        body = f"{scope['client'][0]} {scope['scheme']}"
    else:
        body = str(os.getpid())
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body.encode()})
"""

pytestmark = pytest.mark.skipif(not os.path.exists(GUNICORN), reason="gunicorn not installed")


class Gunicorn:
    """One ``gunicorn`` arbiter and its workers, output captured line by line."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        full_env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(cwd))
        full_env["XDG_RUNTIME_DIR"] = str(cwd)  # gunicorn >= 24's control socket goes here
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [GUNICORN, "-b", "127.0.0.1:0", *args],
            cwd=cwd,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.port = 0

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def count(self, pattern: str) -> int:
        return len(re.findall(pattern, self.output))

    def wait_for(self, predicate: Callable[[], object], what: str, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}:\n{self.output}")
            if self.proc.poll() is not None and not predicate():
                self._reader.join(2)
                if predicate():
                    return
                raise AssertionError(f"gunicorn exited ({self.proc.returncode}):\n{self.output}")
            time.sleep(0.01)

    def wait_ready(self, workers: int = 1) -> Gunicorn:
        self.wait_for(lambda: re.search(r"Listening at: http\S*:(\d+)", self.output), "listening")
        m = re.search(r"Listening at: https?://127\.0\.0\.1:(\d+)", self.output)
        assert m is not None
        self.port = int(m.group(1))
        self.wait_for(lambda: self.count("Squall running on") >= workers, "workers")
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_exit(self, timeout: float = 15) -> int:
        try:
            code = self.proc.wait(timeout)
        finally:
            self._reader.join(2)
        return code

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        self._reader.join(2)


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "gapp.py").write_text(APP)
    (tmp_path / "broken.py").write_text("import squall_no_such_module_here\n")
    return tmp_path


@pytest.fixture
def gunicorn(app_dir: Path) -> Iterator[Callable[..., Gunicorn]]:
    started: list[Gunicorn] = []

    def start(*args: str, env: dict[str, str] | None = None, app: str = "gapp:app") -> Gunicorn:
        worker = "squall.gunicorn.SquallWorker"
        proc = Gunicorn(["-k", worker, *args, app], cwd=app_dir, env=env)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()


def get(url: str, **kwargs: object) -> httpx.Response:
    """One request on a fresh connection."""
    return httpx.get(url, timeout=10, trust_env=False, **kwargs)  # type: ignore[arg-type]


@pytest.mark.timeout(30)
def test_two_workers_serve(gunicorn: Callable[..., Gunicorn]) -> None:
    srv = gunicorn("-w", "2").wait_ready(workers=2)
    booted = set(re.findall(r"Booting worker with pid: (\d+)", srv.output))
    assert len(booted) == 2
    responses: list[httpx.Response] = []

    def one() -> None:
        responses.append(get(srv.url + "/"))

    deadline = time.monotonic() + 10
    while {r.text for r in responses} != booted and time.monotonic() < deadline:
        threads = [threading.Thread(target=one) for _ in range(8)]  # concurrent connections
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert {r.text for r in responses} == booted
    assert all(r.status_code == 200 for r in responses)
    assert "loop uvloop, http httptools" in srv.output


@pytest.mark.timeout(30)
def test_h11_worker_serves(app_dir: Path) -> None:
    srv = Gunicorn(["-k", "squall.gunicorn.SquallH11Worker", "gapp:app"], cwd=app_dir)
    try:
        srv.wait_ready()
        r = get(srv.url + "/")
        assert r.status_code == 200
        assert r.text.isdigit()
        assert "loop asyncio, http h11" in srv.output
    finally:
        srv.kill()


@pytest.mark.timeout(30)
def test_max_requests_replaces_the_worker(gunicorn: Callable[..., Gunicorn]) -> None:
    srv = gunicorn("--max-requests", "3").wait_ready()
    pids: list[str] = []
    deadline = time.monotonic() + 20
    while len(set(pids)) < 3 and time.monotonic() < deadline:  # two replacements
        r = get(srv.url + "/")  # a fresh connection each time; none may fail
        assert r.status_code == 200
        pids.append(r.text)
    assert len(set(pids)) >= 3, pids
    # the limit is checked on the server's tick: at least 3 requests per worker
    assert all(pids.count(pid) >= 3 for pid in set(pids[:-1])), pids
    assert srv.count("Maximum request limit of 3 exceeded") >= 2
    assert srv.proc.poll() is None


@pytest.mark.timeout(30)
def test_timeout_kills_a_blocked_worker(gunicorn: Callable[..., Gunicorn]) -> None:
    srv = gunicorn("-w", "2", "--timeout", "2").wait_ready(workers=2)
    blocked: list[object] = []

    def block() -> None:
        try:
            blocked.append(get(srv.url + "/block").status_code)
        except httpx.HTTPError as exc:
            blocked.append(exc)

    thread = threading.Thread(target=block, daemon=True)
    thread.start()
    srv.wait_for(lambda: "WORKER TIMEOUT" in srv.output, "the arbiter's timeout", timeout=10)
    srv.wait_for(lambda: srv.count("Booting worker with pid") >= 3, "a replacement")
    for _ in range(4):
        assert get(srv.url + "/").status_code == 200
    thread.join(5)
    # SIGABRT raised SystemExit in the app: a 500 if the response could still go out
    assert blocked and (blocked[0] == 500 or isinstance(blocked[0], httpx.HTTPError))


@pytest.mark.timeout(30)
def test_keep_alive_closes_idle_connection(gunicorn: Callable[..., Gunicorn]) -> None:
    srv = gunicorn("--keep-alive", "1").wait_ready()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(4096)
        assert data.startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        sock.settimeout(5)
        while sock.recv(4096):
            pass
        waited = time.monotonic() - started
    assert 0.5 < waited < 3, waited


@pytest.mark.timeout(30)
def test_sigterm_lets_the_request_in_flight_finish(gunicorn: Callable[..., Gunicorn]) -> None:
    srv = gunicorn("--graceful-timeout", "10").wait_ready()
    result: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: result.append(get(srv.url + "/slow")))
    thread.start()
    srv.wait_for(lambda: "SLOW-START" in srv.output, "the slow request")
    srv.proc.send_signal(signal.SIGTERM)
    thread.join(10)
    assert result and result[0].status_code == 200
    assert srv.wait_exit() == 0
    assert "Application shutdown complete" in srv.output


@pytest.mark.timeout(30)
def test_sigquit_stops_quickly(gunicorn: Callable[..., Gunicorn]) -> None:
    srv = gunicorn("--graceful-timeout", "10").wait_ready()
    result: list[object] = []

    def slow() -> None:
        try:
            result.append(get(srv.url + "/slow").status_code)
        except httpx.HTTPError as exc:
            result.append(exc)

    thread = threading.Thread(target=slow)
    thread.start()
    srv.wait_for(lambda: "SLOW-START" in srv.output, "the slow request")
    started = time.monotonic()
    srv.proc.send_signal(signal.SIGQUIT)
    assert srv.wait_exit() == 0
    assert time.monotonic() - started < 1.2  # the 1.5 s request was not waited for
    thread.join(5)
    assert result and result[0] != 200
    assert "Application shutdown complete" not in srv.output  # quick: no lifespan shutdown


@pytest.mark.timeout(30)
def test_sigusr1_reopens_the_access_log(gunicorn: Callable[..., Gunicorn], tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    srv = gunicorn("--access-logfile", str(log)).wait_ready()
    assert get(srv.url + "/before").status_code == 200
    srv.wait_for(lambda: log.exists() and "/before" in log.read_text(), "the first line")
    log.rename(tmp_path / "access.log.1")
    srv.proc.send_signal(signal.SIGUSR1)  # the arbiter reopens its files and signals the workers

    def logged_after() -> bool:
        assert get(srv.url + "/after").status_code == 200
        return log.exists() and "/after" in log.read_text()

    srv.wait_for(logged_after, "a line in the reopened file")
    assert "/before" not in log.read_text()


@pytest.mark.timeout(30)
def test_gunicorn_access_log_format(gunicorn: Callable[..., Gunicorn]) -> None:
    fmt = '%(h)s "%(r)s" %(s)s %(b)s %({x-test}i)s'
    srv = gunicorn("--access-logfile", "-", "--access-logformat", fmt).wait_ready()
    r = get(srv.url + "/log?a=1", headers={"x-test": "hello"})
    assert r.status_code == 200
    get(srv.url + "/other")
    size = len(r.content)
    line = f'127.0.0.1 "GET /log?a=1 HTTP/1.1" 200 {size} hello'
    srv.wait_for(lambda: f'"GET /other HTTP/1.1" 200 {size} -\n' in srv.output, "access lines")
    assert line + "\n" in srv.lines
    assert f'127.0.0.1 "GET /other HTTP/1.1" 200 {size} -\n' in srv.lines


@pytest.mark.timeout(30)
def test_no_access_log_unless_configured(gunicorn: Callable[..., Gunicorn]) -> None:
    srv = gunicorn().wait_ready()
    assert get(srv.url + "/quiet").status_code == 200
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.wait_exit() == 0
    assert "/quiet" not in srv.output


@pytest.mark.timeout(30)
def test_tls(gunicorn: Callable[..., Gunicorn], tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    srv = gunicorn(
        "--certfile", str(tmp_path / "cert.pem"), "--keyfile", str(tmp_path / "key.pem")
    ).wait_ready()
    assert "Squall running on https://" in srv.output
    context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    r = get(f"https://127.0.0.1:{srv.port}/client", verify=context)
    assert r.status_code == 200
    assert r.text == "127.0.0.1 https"


@pytest.mark.timeout(30)
def test_forwarded_allow_ips(gunicorn: Callable[..., Gunicorn]) -> None:
    srv = gunicorn("--forwarded-allow-ips", "*").wait_ready()
    r = get(srv.url + "/client", headers={"x-forwarded-for": "203.0.113.7"})
    assert r.text == "203.0.113.7 http"


@pytest.mark.timeout(30)
def test_forwarded_for_ignored_from_untrusted_peer(gunicorn: Callable[..., Gunicorn]) -> None:
    srv = gunicorn("--forwarded-allow-ips", "10.1.2.3").wait_ready()
    r = get(srv.url + "/client", headers={"x-forwarded-for": "203.0.113.7"})
    assert r.text == "127.0.0.1 http"


@pytest.mark.timeout(30)
def test_proxy_protocol(gunicorn: Callable[..., Gunicorn]) -> None:
    srv = gunicorn("--proxy-protocol", "v1", "--proxy-allow-from", "127.0.0.1").wait_ready()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        sock.sendall(
            b"PROXY TCP4 198.51.100.1 127.0.0.1 5555 80\r\n"
            b"GET /client HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200")
    assert data.endswith(b"198.51.100.1 http")


@pytest.mark.timeout(30)
def test_worker_connections_stops_accepting(gunicorn: Callable[..., Gunicorn]) -> None:
    srv = gunicorn("--worker-connections", "1", "--keep-alive", "10").wait_ready()
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    first = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    first.sendall(request)
    assert first.recv(4096).startswith(b"HTTP/1.1 200")  # an idle keep-alive connection stays
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as second:
        second.sendall(request)
        second.settimeout(0.3)
        with pytest.raises(TimeoutError):
            second.recv(4096)  # waits in the backlog while the first is open
        first.close()
        second.settimeout(5)
        assert second.recv(4096).startswith(b"HTTP/1.1 200")


@pytest.mark.timeout(30)
def test_import_error_stops_gunicorn(gunicorn: Callable[..., Gunicorn]) -> None:
    srv = gunicorn("-w", "2", app="broken:app")
    code = srv.wait_exit(timeout=20)
    assert code != 0
    assert srv.count("Booting worker with pid") <= 2  # no restart loop
    assert "squall_no_such_module_here" in srv.output


@pytest.mark.timeout(30)
def test_lifespan_failure_is_a_boot_error(gunicorn: Callable[..., Gunicorn]) -> None:
    # one worker: when two fail at once, gunicorn 27's halt() itself raises (exit 1)
    srv = gunicorn(env={"FAIL_LIFESPAN": "1"})
    assert srv.wait_exit(timeout=20) == 3, srv.output  # WORKER_BOOT_ERROR: the arbiter halts
    assert srv.count("Booting worker with pid") == 1
    assert "Worker failed to boot" in srv.output
