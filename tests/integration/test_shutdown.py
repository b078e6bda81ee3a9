"""Graceful shutdown of a real ``python -m squall`` process."""

from __future__ import annotations

import signal
import socket
import threading
import time

import pytest

from tests.integration.helpers import parse_response, request

pytestmark = pytest.mark.usefixtures("fast_tick")  # in-thread servers stop quickly

APP = "tests.apps.subprocess_app:app"


def refused(port: int) -> bool:
    """True once the listening socket is gone."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=1)
    except (ConnectionRefusedError, ConnectionResetError):
        # (a reset: the listener closed while this connection waited in its backlog)
        return True
    sock.close()
    return False


def wait_refused(port: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not refused(port):
        assert time.monotonic() < deadline, "new connections are still accepted"
        time.sleep(0.005)


class InFlight:
    """One request on its own socket, read to the end in a thread."""

    def __init__(self, port: int, path: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(request("GET", path))
        self.data = b""
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                self.data += chunk
        except OSError as exc:
            self.error = exc
        finally:
            self.sock.close()

    def result(self, timeout: float = 10.0) -> bytes:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the connection was not closed"
        return self.data


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_graceful_shutdown_finishes_request_in_flight(squall_process, tmp_path, http_impl, sig):
    release = tmp_path / "release"
    proc = squall_process(
        APP, "--port", "0", "--http", http_impl, env={"SQUALL_TEST_RELEASE": str(release)}
    )
    port = proc.wait_started()
    idle = socket.create_connection(("127.0.0.1", port), timeout=10)  # an idle keep-alive
    slow = InFlight(port, "/slow")
    proc.wait_for("SLOW-STARTED")
    proc.proc.send_signal(sig)
    proc.wait_for("Shutting down")
    wait_refused(port)  # no new connections once shutdown has begun
    idle.settimeout(5)
    assert idle.recv(1) == b""  # idle connections are closed at once
    idle.close()
    assert proc.proc.poll() is None  # still waiting for the request in flight
    release.touch()
    raw = slow.result()
    resp = parse_response(raw)
    assert resp.status == 200
    assert resp.body == b"slow done"
    assert resp.complete
    assert resp.header("connection") == "close"
    assert proc.proc.wait(10) == 0
    out = proc.output
    assert "LIFESPAN lifespan.shutdown" in out
    assert out.index("Shutting down") < out.index("LIFESPAN lifespan.shutdown")
    assert "Finished server process" in out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_idle_server(squall_process, http_impl, sig):
    proc = squall_process(APP, "--port", "0", "--http", http_impl)
    port = proc.wait_started()
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    c.sendall(request("GET", "/hi"))
    assert b"hello /hi" in c.recv(65536)
    assert proc.stop(sig) == 0
    c.settimeout(5)
    assert c.recv(1) == b""
    c.close()
    assert refused(port)
    assert "Finished server process" in proc.output


def test_timeout_graceful_shutdown_bounds_stuck_request(squall_process, http_impl):
    proc = squall_process(
        APP, "--port", "0", "--http", http_impl, "--timeout-graceful-shutdown", "0.5"
    )
    port = proc.wait_started()
    stuck = InFlight(port, "/forever")
    proc.wait_for("FOREVER-STARTED")
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.proc.wait(10) == 0
    stuck.result()  # the connection is closed, whatever was (not) sent on it
    assert b"200 OK" not in stuck.data
    out = proc.output
    assert "timeout graceful shutdown exceeded" in out
    assert "Finished server process" in out


def test_shutdown_in_thread_server_with_request_in_flight(serve, http_impl):
    """The in-process form: should_exit with a response still being produced."""
    from tests.integration.helpers import Gate

    gate = Gate()
    entered = threading.Event()

    async def app(scope, receive, send):
        entered.set()
        await gate.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"finished"})

    srv = serve(app, http=http_impl)
    c = srv.client()
    c.send(request())
    assert entered.wait(5)
    srv.server.should_exit = True
    port = srv.port
    wait_refused(port)
    gate.open()
    raw = c.read_until_closed()
    resp = parse_response(raw)
    assert resp.body == b"finished"
    assert resp.header("connection") == "close"
    srv.thread.join(10)
    assert not srv.thread.is_alive()
    assert srv.error is None


def test_limit_max_requests_stops_server(serve, http_impl):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"counted"})

    srv = serve(app, http=http_impl, limit_max_requests=2)
    c = srv.client()
    c.send(request() + request())
    assert parse_response(c.response()).body == b"counted"
    assert parse_response(c.response()).body == b"counted"
    srv.thread.join(10)
    assert not srv.thread.is_alive()
    assert srv.server.state.total_requests == 2
    assert c.is_closed()
