"""--metrics (Prometheus text), --health-path, --access-log-format and --log-format json.

Metrics are scraped from the real listener and parsed here; with ``--workers``
a real ``squall`` supervisor sums its workers' heartbeat snapshots. Access
lines are taken from the ``squall.access`` logger (in-thread servers) or from
a real process's output (JSON logs, which reconfigure logging).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import httpx
import pytest
import websockets.sync.client

from squall.observe.logs import LOGGING_CONFIG, AccessFormatter
from tests.integration.helpers import PROPAGATE_LOGS, Gate, parse_response, request, wait_until

pytestmark = [pytest.mark.usefixtures("fast_tick"), pytest.mark.timeout(30)]

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- Prometheus text ------------------------------------------------------------------

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text: str) -> Samples:
    """``name{labels} value`` lines into {(name, labels): value}; ``#`` lines skipped."""
    samples: Samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        name, raw_labels, value = m.groups()
        labels = frozenset(_LABEL.findall(raw_labels or ""))
        if raw_labels:
            assert ",".join(f'{k}="{v}"' for k, v in _LABEL.findall(raw_labels)) == raw_labels
        key = (name, labels)
        assert key not in samples, f"duplicate sample {line!r}"
        samples[key] = float(value)
    return samples


def sample(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape(port: int) -> Samples:
    r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse_prometheus(r.text)


def requests_by(samples: Samples) -> dict[tuple[str, str], float]:
    out = {}
    for (name, labels), value in samples.items():
        if name == "squall_requests_total":
            d = dict(labels)
            out[d["protocol"], d["status"]] = value
    return out


def check_histogram(samples: Samples) -> list[tuple[float, float]]:
    """The duration histogram's (le, cumulative count), checked for consistency."""
    buckets = []
    for (name, labels), value in samples.items():
        if name == "squall_request_duration_seconds_bucket":
            buckets.append((float(dict(labels)["le"]), value))
    buckets.sort()
    assert buckets[-1][0] == float("inf")
    counts = [count for _, count in buckets]
    assert counts == sorted(counts), f"buckets are not cumulative: {buckets}"
    assert buckets[-1][1] == sample(samples, "squall_request_duration_seconds_count")
    return buckets


def poll_scrape(
    port: int, predicate: Callable[[Samples], bool], what: str, timeout: float = 8.0
) -> Samples:
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(port)
        if predicate(samples):
            return samples
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {samples}")
        time.sleep(0.02)


# -- the app ---------------------------------------------------------------------------


class App:
    """200 ``hello``; ``/missing`` 404 ``nf``; ``/boom`` raises; ``/slow`` takes 60 ms;
    ``/gated`` waits for :attr:`gate`; WebSocket: echo. Counts its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.gate = Gate()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    return
                await send({"type": "websocket.send", "text": message.get("text") or "?"})
        if scope["type"] != "http":
            return
        self.calls += 1
        path = scope["path"]
        if path == "/boom":
            raise RuntimeError("boom")
        if path == "/slow":
            await asyncio.sleep(0.06)
        if path == "/gated":
            await self.gate.wait()
        status, body = (404, b"nf") if path == "/missing" else (200, b"hello")
        if path == "/empty":
            status, body = 204, b""
        headers = [(b"content-type", b"text/plain")] if body else []
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


# -- metrics, one process --------------------------------------------------------------


def test_metrics_counts_histogram_and_bytes(serve):
    mport = free_port()
    srv = serve(App(), metrics=f"127.0.0.1:{mport}")
    empty = scrape(mport)
    assert requests_by(empty) == {}
    assert sample(empty, "squall_request_duration_seconds_count") == 0
    with httpx.Client(base_url=srv.url) as h1:
        for _ in range(3):
            assert h1.get("/").status_code == 200
        assert h1.get("/slow").status_code == 200
        assert h1.get("/missing").status_code == 404
        assert h1.get("/boom").status_code == 500
    with httpx.Client(base_url=srv.url, http1=False, http2=True) as h2c:
        for _ in range(2):
            r = h2c.get("/")
            assert (r.http_version, r.status_code) == ("HTTP/2", 200)
        assert h2c.get("/missing").status_code == 404
    with websockets.sync.client.connect(f"ws://127.0.0.1:{srv.port}/ws") as ws:
        ws.send("hi")
        assert ws.recv(timeout=5) == "hi"
    samples = poll_scrape(
        mport,
        lambda s: sample(s, "squall_request_duration_seconds_count") >= 10,
        "ten observed responses",
    )
    assert requests_by(samples) == {
        ("http/1.1", "2xx"): 4,
        ("http/1.1", "4xx"): 1,
        ("http/1.1", "5xx"): 1,
        ("h2", "2xx"): 2,
        ("h2", "4xx"): 1,
        ("websocket", "1xx"): 1,
    }
    buckets = dict(check_histogram(samples))
    assert buckets[float("inf")] == 10
    assert buckets[0.05] <= 9  # /slow took more than 50 ms
    assert sample(samples, "squall_request_duration_seconds_sum") >= 0.06
    assert sample(samples, "squall_received_bytes_total") > 0
    # the app's bodies: 6 x "hello" and 2 x "nf"
    assert sample(samples, "squall_sent_body_bytes_total") == 6 * 5 + 2 * 2
    assert ("squall_worker_restarts_total", frozenset()) not in samples  # no supervisor


def test_metrics_open_connections_gauge(serve):
    mport = free_port()
    srv = serve(App(), metrics=f"127.0.0.1:{mport}")

    def gauges(s: Samples) -> dict[str, float]:
        out = {
            p: sample(s, "squall_open_connections", protocol=p)
            for p in ("http/1.1", "h2", "websocket")
        }
        out["websockets"] = sample(s, "squall_open_websockets")
        return out

    idle = {"http/1.1": 0, "h2": 0, "websocket": 0, "websockets": 0}
    assert gauges(scrape(mport)) == idle
    with (
        httpx.Client(base_url=srv.url) as h1,
        httpx.Client(base_url=srv.url, http1=False, http2=True) as h2c,
    ):
        assert h1.get("/").status_code == 200  # the keep-alive connection stays open
        assert h2c.get("/").status_code == 200
        with websockets.sync.client.connect(f"ws://127.0.0.1:{srv.port}/ws") as ws:
            ws.send("x")
            assert ws.recv(timeout=5) == "x"
            want = {"http/1.1": 1, "h2": 1, "websocket": 1, "websockets": 1}
            poll_scrape(mport, lambda s: gauges(s) == want, "one open connection of each")
        want = {"http/1.1": 1, "h2": 1, "websocket": 0, "websockets": 0}
        poll_scrape(mport, lambda s: gauges(s) == want, "the WebSocket closed")
    poll_scrape(mport, lambda s: gauges(s) == idle, "all connections closed")


# -- metrics with --workers (a real supervisor) ----------------------------------------

PID_APP = """
import os


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = str(os.getpid()).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
"""


class Proc:
    """``python -m squall ...`` in its own session; stdout and stderr kept apart."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "squall", *args],
            cwd=ROOT,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: Any, lines: list[str]) -> None:
        for line in stream:
            lines.append(line)

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 15.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            found = re.findall(pattern, "".join(self.err) + "".join(self.out))
            if len(found) >= count:
                return found
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"{pattern!r} x{count} not seen (exit {self.proc.poll()}):\n"
                    + "".join(self.err + self.out)
                )
            time.sleep(0.01)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(10)
        finally:
            for reader in self._readers:
                reader.join(2)

    def kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)


@pytest.fixture
def squall_proc() -> Iterator[Callable[..., Proc]]:
    procs: list[Proc] = []

    def start(*args: str) -> Proc:
        proc = Proc(list(args))
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill_group()


def fetch_pid(port: int) -> int:
    r = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
    assert r.status_code == 200
    return int(r.text)


def test_metrics_summed_over_workers_and_kept_across_a_restart(squall_proc, tmp_path):
    (tmp_path / "pidapp.py").write_text(PID_APP)
    mport = free_port()
    proc = squall_proc(
        "pidapp:app",
        "--app-dir",
        str(tmp_path),
        "--workers",
        "2",
        "--port",
        "0",
        "--metrics",
        f"127.0.0.1:{mport}",
        "--lifespan",
        "off",
        "--no-access-log",
    )
    port = int(proc.wait_for(r"supervisor listening on http://127\.0\.0\.1:(\d+)")[0])
    ready = proc.wait_for(r"Worker \[(\d+)\] is ready", count=2)
    workers = {int(pid) for pid in ready}
    assert len(workers) == 2

    # fresh connections from a few threads at once, until both workers answered
    served: list[int] = []
    deadline = time.monotonic() + 10
    while set(served) != workers or len(served) < 20:
        assert time.monotonic() < deadline, f"requests did not reach both workers: {served}"
        batch: list[int] = []

        def one(batch: list[int] = batch) -> None:
            batch.append(fetch_pid(port))

        threads = [threading.Thread(target=one) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        served += batch
    n = len(served)

    def total(s: Samples) -> float:
        return sample(s, "squall_requests_total", protocol="http/1.1", status="2xx")

    samples = poll_scrape(mport, lambda s: total(s) == n, f"{n} requests in the sum")
    assert sample(samples, "squall_worker_restarts_total") == 0
    assert check_histogram(samples)[-1][1] == n
    assert sample(samples, "squall_received_bytes_total") > 0

    victim = served[0]
    os.kill(victim, signal.SIGKILL)
    seen_totals = []

    def restarted(s: Samples) -> bool:
        seen_totals.append(total(s))
        return sample(s, "squall_worker_restarts_total") == 1

    samples = poll_scrape(mport, restarted, "the restart to be counted")
    assert min(seen_totals) == n, f"the counter went backwards: {seen_totals}"
    assert total(samples) == n  # the dead worker's requests are still in the sum
    proc.wait_for(r"Worker \[(\d+)\] is ready", count=3)

    for _ in range(5):
        assert fetch_pid(port) != victim
    samples = poll_scrape(mport, lambda s: total(s) == n + 5, f"{n + 5} requests in the sum")
    assert sample(samples, "squall_worker_restarts_total") == 1
    assert proc.stop() == 0


# -- --health-path ---------------------------------------------------------------------


def test_health_path_answered_by_the_server(serve):
    app = App()
    srv = serve(app, health_path="/healthz")
    with httpx.Client(base_url=srv.url) as h1:
        r = h1.get("/healthz")
        head = h1.head("/healthz")
        other = h1.get("/healthz/deeper")
    assert r.status_code == 200
    assert r.text == "ok\n"
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.headers["cache-control"] == "no-store"
    assert (head.status_code, head.content) == (200, b"")
    with httpx.Client(base_url=srv.url, http1=False, http2=True) as h2c:
        r2 = h2c.get("/healthz")
    assert r2.http_version == "HTTP/2"
    assert (r2.status_code, r2.text) == (200, "ok\n")
    assert other.text == "hello"  # only the exact path is the server's
    assert app.calls == 1


def test_health_path_503_during_graceful_shutdown(serve):
    """A connection opened before the shutdown gets its health answer: 503, then close."""
    app = App()
    srv = serve(app, health_path="/healthz", timeout_graceful_shutdown=10)
    slow = srv.client()
    probe = srv.client()  # open, no request sent yet
    try:
        slow.send(request("GET", "/gated"))
        wait_until(lambda: app.calls == 1, what="the slow request to start")
        srv.server.should_exit = True
        state = srv.server.state
        wait_until(lambda: state.shutting_down, what="the graceful shutdown to begin")
        assert srv.thread.is_alive()  # the in-flight request keeps the server up
        probe.send(request("GET", "/healthz"))
        resp = parse_response(probe.response())
        assert resp.status == 503
        assert resp.body == b"shutting down\n"
        assert resp.header("connection") == "close"
        assert probe.is_closed()
    finally:
        app.gate.open()
    answer = parse_response(slow.response())
    assert (answer.status, answer.body) == (200, b"hello")
    assert app.calls == 1  # the health checks never reached the app
    srv.thread.join(5)
    assert not srv.thread.is_alive()


# -- access log ------------------------------------------------------------------------

FORMAT = '%(h)s "%(r)s" %(s)s %(b)s %({x-test}i)s %({content-type}o)s'


def access_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Each squall.access record as Squall's own access formatter writes it."""
    formatter = AccessFormatter(fmt=LOGGING_CONFIG["formatters"]["access"]["fmt"])
    lines = []
    for record in caplog.records:
        if record.name == "squall.access":
            line = formatter.format(record)
            assert line == record.__dict__["access_line"]
            lines.append(line)
    return lines


@pytest.fixture
def logged(serve: Any, caplog: pytest.LogCaptureFixture) -> Callable[..., Any]:
    caplog.set_level(logging.INFO)

    def start(app: Any, **options: Any) -> Any:
        return serve(app, log_config=PROPAGATE_LOGS, log_level="info", **options)

    return start


def test_access_log_format_line(logged, caplog):
    srv = logged(App(), access_log_format=FORMAT)
    c = srv.client()
    c.send(request("GET", "/path?a=1&b=%20", headers=[("X-Test", "hello there")]))
    assert parse_response(c.response()).status == 200
    c.send(request("POST", "/empty", body=b"abc"))
    assert parse_response(c.response()).status == 204
    with httpx.Client(base_url=srv.url, http1=False, http2=True) as h2c:
        assert h2c.get("/missing", headers={"x-test": "2"}).status_code == 404
    wait_until(lambda: len(access_lines(caplog)) == 3, what="three access lines")
    assert access_lines(caplog) == [
        '127.0.0.1 "GET /path?a=1&b=%20 HTTP/1.1" 200 5 hello there text/plain',
        '127.0.0.1 "POST /empty HTTP/1.1" 204 - - -',
        '127.0.0.1 "GET /missing HTTP/2" 404 2 2 text/plain',
    ]


def h2_get(port: int, path: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    """One HTTP/2 request with a :path the h2 library would refuse to send; its status."""
    config = h2.config.H2Configuration(
        client_side=True, validate_outbound_headers=False, normalize_outbound_headers=False
    )
    conn = h2.connection.H2Connection(config)
    conn.initiate_connection()
    fields = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"a")]
    conn.send_headers(1, [*fields, (b":path", path), *headers], end_stream=True)
    status = 0
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(conn.data_to_send())
        while True:
            data = sock.recv(65536)
            assert data, "connection closed before the response ended"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status = int(dict(event.headers)[b":status"])
                elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                    return status
            sock.sendall(conn.data_to_send())


def control_characters(text: str) -> list[str]:
    return [ch for ch in text if unicodedata.category(ch) == "Cc"]


def test_access_log_escapes_control_characters(logged, caplog):
    """HTTP/1.1 parsers refuse raw control bytes in the target, HTTP/2 in :path (RFC 9113
    8.3.1); header values may still carry them, and the log escapes them."""
    srv = logged(App(), access_log_format=FORMAT)
    status = h2_get(srv.port, b"/p?a=red", [(b"x-test", b"t\tab\x1b[31m\x07\x7f!")])
    assert status == 200
    wait_until(lambda: len(access_lines(caplog)) == 1, what="the access line")
    (line,) = access_lines(caplog)
    assert line == ('127.0.0.1 "GET /p?a=red HTTP/2" 200 5 t\\x09ab\\x1b[31m\\x07\\x7f! text/plain')
    assert control_characters(line) == []
    # the default (Uvicorn) line escapes the same way
    record = next(r for r in caplog.records if r.name == "squall.access")
    assert control_characters(record.getMessage()) == []


def test_access_log_escapes_c1_control_characters(logged, caplog):
    srv = logged(App(), access_log_format=FORMAT)
    assert h2_get(srv.port, b"/p?a=\x9b31mred", []) == 200
    wait_until(lambda: len(access_lines(caplog)) == 1, what="the access line")
    (line,) = access_lines(caplog)
    assert control_characters(line) == []


# -- --log-format json (a real process: it configures logging itself) -------------------

ERROR_APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/boom":
        raise RuntimeError("kaboom")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})
"""


def json_lines(lines: list[str]) -> list[dict[str, Any]]:
    records = []
    for line in lines:
        if line.strip():
            record = json.loads(line)
            assert isinstance(record, dict)
            records.append(record)
    return records


def test_json_logs(squall_proc, tmp_path):
    (tmp_path / "errapp.py").write_text(ERROR_APP)
    proc = squall_proc(
        "errapp:app", "--app-dir", str(tmp_path), "--port", "0", "--log-format", "json"
    )
    port = int(proc.wait_for(r"running on http://127\.0\.0\.1:(\d+)")[0])
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        ok = client.get("/ok/%1b?x=1&y=%0a")
        assert ok.status_code == 200
        boom = client.get("/boom")
        assert boom.status_code == 500
    wait_until(lambda: len(json_lines(proc.out)) >= 2, 10, "two access records")
    wait_until(lambda: any("exception" in r for r in json_lines(proc.err)), 10, "the error record")
    assert proc.stop() == 0
    access = json_lines(proc.out)
    errors = json_lines(proc.err)
    for record in access + errors:
        assert {"time", "level", "logger", "message"} <= record.keys()
    assert [r["logger"] for r in access] == ["squall.access", "squall.access"]
    first, second = access
    client_host, _, local_port = first["client"].rpartition(":")
    assert client_host == "127.0.0.1"
    assert int(local_port) > 0
    assert first["level"] == "INFO"
    assert (first["method"], first["path"], first["query"]) == ("GET", "/ok/\\x1b", "x=1&y=%0a")
    assert (first["status"], first["bytes"], first["http_version"]) == (200, 5, "1.1")
    assert isinstance(first["duration_ms"], float)
    assert first["duration_ms"] >= 0
    assert (second["path"], second["query"], second["status"]) == ("/boom", "", 500)
    assert second["client"] == first["client"]  # same keep-alive connection
    (failure,) = [r for r in errors if "exception" in r]
    assert failure["logger"] == "squall.error"
    assert failure["level"] == "ERROR"
    assert failure["message"].startswith("Exception in ASGI application")
    assert failure["exception"].startswith("Traceback (most recent call last):")
    assert failure["exception"].rstrip().endswith("RuntimeError: kaboom")
    started = [r["message"] for r in errors if r["logger"] == "squall.error"]
    assert any(m.startswith("Started server process") for m in started)


def test_help_lists_access_log_format():
    out = subprocess.run(
        [sys.executable, "-m", "squall", "--help"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert out.returncode == 0, out.stderr[-500:]
    assert "--access-log-format" in out.stdout
    assert "%(h)s" in out.stdout
