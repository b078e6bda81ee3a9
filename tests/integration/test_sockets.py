"""Listening sockets, for real: --bind, --uds/--uds-perms, --fd, systemd, dual stack.

Each test starts ``python -m squall`` (in its own session, killed afterwards)
and talks to it over real TCP (IPv4 and IPv6) and Unix sockets. The app
answers with its pid.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.squall_proc import (
    Proc,
    get,
    get_pid,
    pids_serving,
    process_trees,
    write_app,
)

pytestmark = pytest.mark.timeout(30)

Start = Callable[..., Proc]


def _has_ipv6() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not _has_ipv6(), reason="no IPv6 loopback here")


@pytest.fixture
def squall(tmp_path: Path) -> Iterator[Start]:
    yield from process_trees(tmp_path)


@pytest.fixture
def app(tmp_path: Path) -> str:
    return write_app(tmp_path)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory for Unix socket paths (tmp_path can exceed the 108-byte limit)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="sq-") as name:
        yield Path(name)


def workers_args(workers: int) -> list[str]:
    return ["--workers", str(workers)] if workers > 1 else []


def serving_pids(proc: Proc, workers: int) -> set[int]:
    """The pids expected to answer: the workers, or the single server process."""
    if workers > 1:
        return set(proc.ready_workers(workers))
    proc.wait_for(r"running on")
    return {proc.pid}


def stop(proc: Proc, sig: int = signal.SIGINT) -> int:
    proc.signal(sig)
    return proc.wait()


# -- --bind


@needs_ipv6
@pytest.mark.parametrize("workers", [1, 2])
def test_bind_ipv4_and_ipv6(squall: Start, app: str, workers: int) -> None:
    proc = squall(app, "--bind", "127.0.0.1:0", "--bind", "[::1]:0", *workers_args(workers))
    pids = serving_pids(proc, workers)
    (port4,) = set(proc.wait_for(r"on http://127\.0\.0\.1:(\d+)"))
    (port6,) = set(proc.wait_for(r"on http://\[::1\]:(\d+)"))
    assert pids_serving(("127.0.0.1", int(port4)), workers) == pids
    assert pids_serving(("::1", int(port6)), workers) == pids
    # each address only where it was asked for
    if port4 != port6:
        with pytest.raises(OSError):
            get(("::1", int(port4)))
    assert stop(proc) == 0


@pytest.mark.parametrize("workers", [1, 2])
def test_bind_tcp_and_unix(squall: Start, app: str, short_dir: Path, workers: int) -> None:
    path = short_dir / "both.sock"
    proc = squall(app, "--bind", "127.0.0.1:0", "--bind", f"unix:{path}", *workers_args(workers))
    pids = serving_pids(proc, workers)
    port = proc.port()
    proc.wait_for(rf"unix socket {path}")
    assert pids_serving(("127.0.0.1", port), workers) == pids
    assert pids_serving(str(path), workers) == pids
    assert stop(proc, signal.SIGTERM) == 0
    assert not path.exists()


@needs_ipv6
def test_readme_bind_ipv4_and_ipv6_wildcards_on_one_port(squall: Start, app: str) -> None:
    with socket.socket(socket.AF_INET6) as probe:  # a port free in both families
        probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        probe.bind(("::", 0))
        port = probe.getsockname()[1]
    proc = squall(app, "--bind", f"0.0.0.0:{port}", "--bind", f"[::]:{port}")
    proc.wait_for(r"running on http://\[::\]")
    assert get_pid(("127.0.0.1", port)) == proc.pid
    assert get_pid(("::1", port)) == proc.pid
    assert stop(proc) == 0


# -- --uds


def test_uds_perms_660(squall: Start, app: str, short_dir: Path) -> None:
    path = short_dir / "perm.sock"
    proc = squall(app, "--uds", str(path), "--uds-perms", "660")
    proc.wait_for(r"running on unix socket")
    mode = path.stat().st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o660
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(path))) as client:
        response = client.get("http://squall/")
    assert response.status_code == 200
    assert int(response.text) == proc.pid
    assert stop(proc) == 0
    assert not path.exists()


def test_workers_with_uds_serve_from_two_pids_and_remove_the_file(
    squall: Start, app: str, short_dir: Path
) -> None:
    path = short_dir / "workers.sock"
    proc = squall(app, "--uds", str(path), "--uds-perms", "600", "--workers", "2")
    workers = set(proc.ready_workers(2))
    assert f"supervisor listening on unix socket {path}" in proc.output
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert pids_serving(str(path), 2) == workers
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(path))) as client:
        assert int(client.get("http://squall/").text) in workers
    # a worker that dies does not take the file with it
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    new = proc.ready_workers(3)[2]
    assert f"Worker [{victim}] was killed by signal 9; started worker [{new}]" in proc.output
    assert path.exists()
    assert pids_serving(str(path), 2) == workers - {victim} | {new}
    assert stop(proc, signal.SIGTERM) == 0
    assert not path.exists()


def test_stale_socket_file_is_replaced_and_a_live_one_refused(
    squall: Start, app: str, short_dir: Path
) -> None:
    path = short_dir / "stale.sock"
    with socket.socket(socket.AF_UNIX) as old:
        old.bind(str(path))  # a file left behind by a server that died
    assert path.exists()
    first = squall(app, "--uds", str(path))
    first.wait_for(r"running on unix socket")
    assert get_pid(str(path)) == first.pid

    second = squall(app, "--uds", str(path))
    assert second.wait() == 3
    assert "is in use by another server" in second.output
    assert get_pid(str(path)) == first.pid  # the first server is untouched
    assert stop(first) == 0


def test_restart_over_a_crashed_servers_socket_file_keeps_its_permissions(
    squall: Start, app: str, short_dir: Path
) -> None:
    path = short_dir / "crash.sock"
    first = squall(app, "--uds", str(path))
    first.wait_for(r"running on unix socket")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666
    first.signal(signal.SIGKILL)
    first.wait()
    assert path.exists()  # stale: nobody listens
    second = squall(app, "--uds", str(path))
    second.wait_for(r"running on unix socket")
    assert get_pid(str(path)) == second.pid
    assert stat.S_IMODE(path.stat().st_mode) == 0o666


# -- --fd and fd://N


@pytest.mark.parametrize("form", ["--fd", "fd://"])
def test_inherited_tcp_socket(squall: Start, app: str, form: str) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    fd = sock.fileno()
    args = ["--fd", str(fd)] if form == "--fd" else ["--bind", f"fd://{fd}"]
    try:
        proc = squall(app, *args, pass_fds=[fd])
        proc.wait_for(rf"running on http://127\.0\.0\.1:{port} ")
        assert get_pid(("127.0.0.1", port)) == proc.pid
        assert stop(proc) == 0
    finally:
        sock.close()


def test_inherited_unix_socket(squall: Start, app: str, short_dir: Path) -> None:
    path = short_dir / "inherited.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(16)
    fd = sock.fileno()
    try:
        proc = squall(app, "--fd", str(fd), pass_fds=[fd])
        proc.wait_for(rf"running on unix socket {path}")
        assert get_pid(str(path)) == proc.pid
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(path))) as client:
            assert client.get("http://squall/").status_code == 200
        assert stop(proc) == 0
        # the file belongs to whoever bound it: Squall leaves it
        assert path.exists()
    finally:
        sock.close()


def test_workers_share_an_inherited_socket(squall: Start, app: str) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    try:
        proc = squall(app, "--fd", str(sock.fileno()), "--workers", "2", pass_fds=[sock.fileno()])
        workers = set(proc.ready_workers(2))
        assert pids_serving(("127.0.0.1", port), 2) == workers
        assert stop(proc, signal.SIGTERM) == 0
    finally:
        sock.close()


# -- systemd socket activation

# Sets LISTEN_PID to its own pid, moves the socket to fd 3, then execs Squall
# (same pid), as systemd does.
ACTIVATE = (
    "import os, sys\n"
    "fd = int(sys.argv[1])\n"
    "if fd != 3:\n"
    "    os.dup2(fd, 3)\n"
    "    os.close(fd)\n"
    "os.environ['LISTEN_PID'] = str(os.getpid())\n"
    "os.environ['LISTEN_FDS'] = '1'\n"
    "os.execv(sys.executable, [sys.executable, '-m', 'squall', *sys.argv[2:]])\n"
)


@pytest.mark.parametrize("workers", [1, 2])
def test_systemd_socket_activation(squall: Start, app: str, workers: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    try:
        proc = squall(
            app,
            "--port",
            "0",
            *workers_args(workers),
            argv=[sys.executable, "-c", ACTIVATE, str(sock.fileno())],
            pass_fds=[sock.fileno()],
        )
        pids = serving_pids(proc, workers)
        # the activated socket is used instead of --port 0
        assert set(proc.findall(r"on http://127\.0\.0\.1:(\d+)")) == {str(port)}
        assert pids_serving(("127.0.0.1", port), workers) == pids
        assert stop(proc, signal.SIGTERM) == 0
    finally:
        sock.close()


def test_systemd_variables_for_another_process_are_ignored(squall: Start, app: str) -> None:
    proc = squall(app, "--port", "0", env={"LISTEN_PID": "1", "LISTEN_FDS": "1"})
    port = proc.port()
    assert get_pid(("127.0.0.1", port)) == proc.pid
    assert stop(proc) == 0


# -- --reuse-port: each worker binds its own socket

REUSE_PORT_BINDS_IN_WORKERS = (
    "with --reuse-port the supervisor binds nothing (src/squall/supervisors/workers.py:71) "
    "and every worker runs bind_all itself (src/squall/supervisors/process.py:115, "
    "src/squall/server.py:163-164), so "
)


def test_reuse_port_with_port_0_puts_every_worker_on_one_port(squall: Start, app: str) -> None:
    proc = squall(app, "--workers", "2", "--reuse-port", "--port", "0", "--no-access-log")
    workers = set(proc.ready_workers(2))
    ports = set(proc.findall(r"running on http://127\.0\.0\.1:(\d+)"))
    assert len(ports) == 1, f"workers listen on {sorted(ports)}"
    assert pids_serving(("127.0.0.1", int(ports.pop())), 2) == workers


def test_reuse_port_still_serves_on_systemd_sockets(squall: Start, app: str) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    try:
        proc = squall(
            app,
            "--workers",
            "2",
            "--reuse-port",
            "--port",
            "0",
            argv=[sys.executable, "-c", ACTIVATE, str(sock.fileno())],
            pass_fds=[sock.fileno()],
        )
        workers = set(proc.ready_workers(2))
        assert set(proc.findall(r"running on http://127\.0\.0\.1:(\d+)")) == {str(port)}
        assert pids_serving(("127.0.0.1", port), 2) == workers
    finally:
        sock.close()


def test_reuse_port_with_uds_serves_from_every_worker(
    squall: Start, app: str, short_dir: Path
) -> None:
    path = short_dir / "reuse.sock"
    proc = squall(app, "--workers", "2", "--reuse-port", "--uds", str(path))
    workers = set(proc.ready_workers(2))
    assert pids_serving(str(path), 2) == workers
    assert stop(proc, signal.SIGTERM) == 0
    assert not path.exists()


# -- dual stack


@needs_ipv6
@pytest.mark.parametrize("workers", [1, 2])
def test_wildcard_ipv6_host_is_dual_stack(squall: Start, app: str, workers: int) -> None:
    proc = squall(app, "--host", "::", "--port", "0", *workers_args(workers))
    pids = serving_pids(proc, workers)
    (port,) = {int(p) for p in proc.findall(r"on http://\[::\]:(\d+)")}
    assert pids_serving(("127.0.0.1", port), workers) == pids
    assert pids_serving(("::1", port), workers) == pids
    assert stop(proc, signal.SIGTERM) == 0
