"""Out of file descriptors: accept backs off (no spin, one log line) and recovers."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest

APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
"""
SQUALL = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "squall")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def served(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


@pytest.mark.timeout(40)
@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_accept_backs_off_when_descriptors_run_out(tmp_path: Path, loop: str) -> None:
    (tmp_path / "fdapp.py").write_text(APP)
    port = free_port()
    cmd = f"ulimit -n 64; exec {SQUALL} fdapp:app --port {port} --loop {loop} --no-access-log"
    proc = subprocess.Popen(
        ["bash", "-c", cmd], cwd=tmp_path, stderr=subprocess.PIPE, start_new_session=True
    )
    clients: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 15
        while not served(port):
            assert time.monotonic() < deadline, "the server never answered"
            time.sleep(0.05)
        for _ in range(120):  # more than the process may hold: the rest wait in the backlog
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=2))
        before = cpu_ticks(proc.pid)
        started = time.monotonic()
        time.sleep(1.5)  # measuring CPU use over a span is the point here
        used = cpu_ticks(proc.pid) - before
        assert used <= 0.2 * (time.monotonic() - started) * 100  # well under 20% of a CPU
        for sock in clients:
            sock.close()
        clients.clear()
        deadline = time.monotonic() + 15
        while not served(port):
            assert time.monotonic() < deadline, "not serving again after descriptors freed"
            time.sleep(0.1)
    finally:
        for sock in clients:
            sock.close()
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    log = err.decode()
    failures = [line for line in log.splitlines() if "Too many open files" in line]
    assert len(failures) <= 4, log  # at most a line per episode, not a flood
    assert "Traceback" not in log, log
