"""``--workers N``: a real supervisor, real workers, real signals, real sockets.

Every test starts ``python -m squall`` in its own session and kills the whole
process group afterwards. The app answers with its pid, so a test sees which
worker served; it also records every process that imported it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.squall_proc import (
    Proc,
    RequestLoop,
    get,
    get_pid,
    listening_sockets,
    pid_exists,
    pids_serving,
    process_trees,
    wait_until,
    write_app,
)

pytestmark = pytest.mark.timeout(30)

Start = Callable[..., Proc]


@pytest.fixture
def squall(tmp_path: Path) -> Iterator[Start]:
    yield from process_trees(tmp_path)


@pytest.fixture
def app(tmp_path: Path) -> str:
    return write_app(tmp_path)


def start_workers(squall: Start, app: str, n: int = 2, *args: str, **kw) -> tuple[Proc, int]:
    proc = squall(app, "--workers", str(n), "--port", "0", "--no-access-log", *args, **kw)
    port = proc.port()
    proc.ready_workers(n)
    return proc, port


def imports(tmp_path: Path) -> list[int]:
    path = tmp_path / "imports"
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def replacement(proc: Proc, old: int, timeout: float = 10.0) -> tuple[str, int]:
    """Wait for "Worker [old] <reason>; started worker [new]"; (reason, new)."""
    pattern = rf"Worker \[{old}\] ([^;\n]+); started worker \[(\d+)\]"
    proc.wait_for(pattern, timeout)
    reason, new = re.search(pattern, proc.output).groups()  # type: ignore[union-attr]
    return reason, int(new)


def slow_request(port: int, tmp_path: Path) -> tuple[threading.Thread, list[object], int]:
    """Start GET /slow in a thread; (thread, result list, pid of the worker serving it)."""
    result: list[object] = []

    def run() -> None:
        try:
            result.append(get(("127.0.0.1", port), "/slow", timeout=20))
        except OSError as exc:
            result.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    marker = wait_until(lambda: list(tmp_path.glob("slow-*")), 5, "the /slow request")[0]
    return thread, result, int(marker.read_text())


# -- starting and serving


def test_two_workers_serve_and_the_supervisor_never_imports_the_app(
    squall: Start, app: str, tmp_path: Path
) -> None:
    proc, port = start_workers(squall, app, 2)
    ready = set(proc.ready_workers(2))
    (parent,) = proc.findall(r"Started parent process \[(\d+)\]")
    assert int(parent) == proc.pid
    assert "starting 2 worker(s)" in proc.output
    assert len(ready) == 2
    assert proc.pid not in ready
    assert wait_until(lambda: proc.children() == ready, 5, "two worker children")

    # one listening socket, bound by the supervisor, shared by the workers
    shared = listening_sockets(proc.pid, port)
    assert len(shared) == 1
    assert all(listening_sockets(pid, port) == shared for pid in ready)

    assert pids_serving(("127.0.0.1", port), 2) == ready
    imported = imports(tmp_path)
    assert proc.pid not in imported
    assert sorted(imported) == sorted(ready)
    assert len(proc.findall(r"Started server process \[(\d+)\]")) == 2


def test_web_concurrency_starts_that_many_workers(squall: Start, app: str) -> None:
    proc = squall(app, "--port", "0", "--no-access-log", env={"WEB_CONCURRENCY": "2"})
    port = proc.port()
    ready = set(proc.ready_workers(2))
    assert "starting 2 worker(s)" in proc.output
    assert pids_serving(("127.0.0.1", port), 2) == ready
    assert proc.children() == ready


def test_reuse_port_each_worker_binds_its_own_socket(squall: Start, app: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = squall(app, "--workers", "2", "--reuse-port", "--port", str(port), "--no-access-log")
    ready = set(proc.ready_workers(2))
    # the supervisor holds the port without listening: each worker listens on its own socket
    assert len(proc.findall(rf"running on http://127\.0\.0\.1:{port} ")) == 2
    assert listening_sockets(proc.pid, port) == set()
    first, second = (listening_sockets(pid, port) for pid in ready)
    assert len(first) == len(second) == 1
    assert first != second
    assert pids_serving(("127.0.0.1", port), 2) == ready


# -- health


def test_killed_worker_is_replaced_while_requests_keep_succeeding(squall: Start, app: str) -> None:
    proc, port = start_workers(squall, app, 2)
    first = proc.ready_workers(2)
    victim, survivor = first
    served = [get_pid(("127.0.0.1", port)) for _ in range(5)]
    os.kill(victim, signal.SIGKILL)
    kill_index = len(served)
    new = None
    # a fresh connection per request, no retries: after the kill every
    # connection is accepted by a live worker
    end = time.monotonic() + 10
    while new is None or new not in served[kill_index:]:
        served.append(get_pid(("127.0.0.1", port)))
        if new is None and "started worker" in proc.output:
            reason, new = replacement(proc, victim)
            assert reason == "was killed by signal 9"
        assert time.monotonic() < end, f"no replacement served: {proc.output}"
    assert new is not None and new not in first
    assert new in served, "the replacement never served"
    assert victim not in served[kill_index:]
    assert survivor in served[kill_index:]
    assert not pid_exists(victim)
    assert proc.children() == {survivor, new}


def test_hung_worker_is_killed_and_replaced_and_the_other_keeps_serving(
    squall: Start, app: str, tmp_path: Path
) -> None:
    proc, port = start_workers(squall, app, 2, "--timeout-worker-healthcheck", "1")
    first = set(proc.ready_workers(2))
    hung_result: list[object] = []

    def hang() -> None:
        try:
            hung_result.append(get(("127.0.0.1", port), "/hang", timeout=20))
        except OSError as exc:
            hung_result.append(exc)

    thread = threading.Thread(target=hang, daemon=True)
    thread.start()
    marker = wait_until(lambda: list(tmp_path.glob("hang-*")), 5, "the /hang request")[0]
    hung = int(marker.read_text())
    (other,) = first - {hung}

    served = []
    end = time.monotonic() + 10
    while "sent no heartbeat" not in proc.output:
        served.append(get_pid(("127.0.0.1", port)))
        assert time.monotonic() < end, "the hung worker was never killed"
    assert hung not in served, "a hung worker cannot serve"
    assert other in served
    assert f"Worker [{hung}] sent no heartbeat for 1.0 s; killing it" in proc.output

    reason, new = replacement(proc, hung)
    assert reason == "was killed by signal 9"
    thread.join(10)
    assert hung_result and not isinstance(hung_result[0], tuple), hung_result
    assert pids_serving(("127.0.0.1", port), 2) == {other, new}
    assert not pid_exists(hung)
    assert proc.children() == {other, new}


def try_pid(port: int) -> int | None:
    try:
        return get_pid(("127.0.0.1", port))
    except OSError:
        return None


def test_max_requests_with_jitter_replaces_workers(squall: Start, app: str) -> None:
    proc, port = start_workers(
        squall, app, 2, "--limit-max-requests", "5", "--limit-max-requests-jitter", "3"
    )
    first = set(proc.ready_workers(2))
    served: list[int | None] = []
    exit_pattern = r"Worker \[(\d+)\] exited \(request limit or app exit\); started worker"

    def replaced() -> bool:
        exited = {int(p) for p in proc.findall(exit_pattern)}
        return first <= exited and len({p for p in served if p} - first) >= 2

    end = time.monotonic() + 15
    while len(served) < 20 or not replaced():
        served.append(try_pid(port))
        assert time.monotonic() < end, f"workers not replaced: {served}"
    new = {p for p in served if p} - first
    assert len(new) >= 2
    limits = [int(n) for n in proc.findall(r"Maximum request limit of (\d+) exceeded")]
    assert limits and all(5 <= n <= 8 for n in limits), limits
    for pid in first:  # each served at least its limit (the limit is checked every 0.1 s)
        assert served.count(pid) >= 5
    assert proc.proc.poll() is None


def test_max_requests_replacements_fail_no_request(squall: Start, app: str) -> None:
    proc, port = start_workers(squall, app, 2, "--limit-max-requests", "5")
    pattern = r"exited \(request limit or app exit\)"
    failures = 0
    end = time.monotonic() + 15
    # twenty replacements: the race is lost on about half of them
    while len(proc.findall(pattern)) < 20 and not failures:
        failures += try_pid(port) is None
        assert time.monotonic() < end, "workers not replaced"
    assert failures == 0


# -- signals


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_exits_zero_and_every_worker_is_gone(
    squall: Start, app: str, sig: signal.Signals
) -> None:
    proc, port = start_workers(squall, app, 2)
    workers = proc.ready_workers(2)
    assert get_pid(("127.0.0.1", port)) in workers
    proc.signal(sig)
    assert proc.wait() == 0
    assert f"Received {sig.name}; stopping the workers" in proc.output
    for pid in workers:
        assert f"Worker [{pid}] stopped" in proc.output
        assert not pid_exists(pid)
    assert not proc.group_alive()
    assert "Stopping parent process" in proc.output


def test_in_flight_request_finishes_during_sigterm(squall: Start, app: str, tmp_path: Path) -> None:
    proc, port = start_workers(squall, app, 2)
    thread, result, busy = slow_request(port, tmp_path)
    proc.signal(signal.SIGTERM)
    proc.wait_for(r"Waiting for connections to close")
    proc.wait_for(r"Worker \[\d+\] stopped")  # the idle worker leaves at once
    assert proc.proc.poll() is None, "the supervisor left before the busy worker"
    assert pid_exists(busy)
    (tmp_path / "release").touch()
    thread.join(10)
    assert result == [(200, str(busy).encode())]
    assert proc.wait() == 0
    assert not proc.group_alive()


def test_new_connections_are_refused_while_the_workers_drain(
    squall: Start, app: str, tmp_path: Path
) -> None:
    proc, port = start_workers(squall, app, 2)
    thread, result, busy = slow_request(port, tmp_path)
    proc.signal(signal.SIGTERM)
    proc.wait_for(r"Worker \[\d+\] stopped")  # the idle one is gone; the busy one drains
    proc.wait_for(r"Waiting for connections to close")  # (its listeners are closed by then)
    assert proc.proc.poll() is None
    # nobody listens any more: refused at once, not left hanging in a backlog
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    (tmp_path / "release").touch()
    thread.join(10)
    assert result == [(200, str(busy).encode())]
    assert proc.wait() == 0


def test_second_sigint_forces_the_workers_to_stop(squall: Start, app: str, tmp_path: Path) -> None:
    proc, port = start_workers(squall, app, 2)
    thread, result, busy = slow_request(port, tmp_path)  # never released
    proc.signal(signal.SIGINT)
    proc.wait_for(r"Waiting for connections to close")
    proc.signal(signal.SIGINT)
    proc.wait(10)
    assert "Forcing the workers to stop" in proc.output
    thread.join(10)
    assert result and not isinstance(result[0], tuple), result
    assert not pid_exists(busy)
    assert not proc.group_alive()


def test_in_flight_request_survives_sighup(squall: Start, app: str, tmp_path: Path) -> None:
    proc, port = start_workers(squall, app, 2)
    old = set(proc.ready_workers(2))
    thread, result, busy = slow_request(port, tmp_path)
    proc.signal(signal.SIGHUP)
    proc.wait_for(r"Rolling restart: worker \[\d+\] replaces", 15, 2)
    (idle,) = old - {busy}
    proc.wait_for(rf"Worker \[{idle}\] stopped")
    new = set(proc.ready_workers(4)[2:])
    proc.wait_for(r"Waiting for connections to close")  # the busy one stopped listening
    assert pids_serving(("127.0.0.1", port), 2) == new
    assert pid_exists(busy)
    assert f"Worker [{busy}] stopped" not in proc.output
    (tmp_path / "release").touch()
    thread.join(10)
    assert result == [(200, str(busy).encode())]
    proc.wait_for(rf"Worker \[{busy}\] stopped")
    assert proc.children() == new


def test_ctrl_c_is_graceful_when_a_worker_saw_the_sigint_first(
    squall: Start, app: str, tmp_path: Path
) -> None:
    proc, port = start_workers(squall, app, 2, "--lifespan", "on")
    thread, result, busy = slow_request(port, tmp_path)
    # the terminal's SIGINT reaches the busy worker before the supervisor reacts
    os.kill(busy, signal.SIGINT)
    proc.wait_for(r"Waiting for connections to close")
    proc.signal(signal.SIGINT)
    proc.wait_for(r"Received SIGINT; stopping the workers")
    proc.wait_for(r"Worker \[\d+\] stopped")
    (tmp_path / "release").touch()
    thread.join(10)
    assert proc.wait() == 0
    assert result == [(200, str(busy).encode())]
    assert len(proc.findall(r"Application shutdown complete")) == 2


def test_sighup_rolling_restart_replaces_every_worker_one_at_a_time(
    squall: Start, app: str
) -> None:
    proc, port = start_workers(squall, app, 2)
    old = proc.ready_workers(2)
    with RequestLoop(("127.0.0.1", port)) as loop:
        wait_until(lambda: set(loop.pids) == set(old), 10, "both workers serving")
        before = len(loop.pids)
        proc.signal(signal.SIGHUP)
        replaced = proc.wait_for(r"Rolling restart: worker \[\d+\] replaces \[(\d+)\]", 15, 2)
        for pid in old:
            proc.wait_for(rf"Worker \[{pid}\] stopped")
        new = set(proc.ready_workers(4)[2:])
        wait_until(lambda: new <= set(loop.pids[before:]), 10, "both new workers serving")
    assert "Received SIGHUP; restarting the workers one by one" in proc.output
    assert sorted(int(p) for p in replaced) == sorted(old)
    assert not new & set(old)
    assert proc.children() == new
    assert len(loop.pids) - before > 20, "too few requests served during the restart"
    assert len(loop.failures) <= 2, loop.failures  # see the next test
    # one at a time: the second new worker starts only after the first replaced an old one
    out = proc.output
    first_replaced = out.index("Rolling restart: worker")
    second_new = sorted(new, key=lambda p: out.index(f"Started server process [{p}]"))[1]
    assert out.index(f"Started server process [{second_new}]") > first_replaced
    assert proc.proc.poll() is None


def test_sighup_rolling_restart_under_load_fails_no_request(squall: Start, app: str) -> None:
    proc, port = start_workers(squall, app, 2)
    with RequestLoop(("127.0.0.1", port)) as loop:
        wait_until(lambda: len(set(loop.pids)) == 2, 10, "both workers serving")
        # up to twelve restarts: the race is lost on about two in three
        for n in range(1, 13):
            proc.signal(signal.SIGHUP)
            proc.wait_for(r"Rolling restart: worker", 15, 2 * n)
            proc.wait_for(r"Worker \[\d+\] stopped", 15, 2 * n)
            if loop.failures:
                break
    assert loop.failures == []


def test_sighup_with_a_broken_new_worker_keeps_the_old_ones(
    squall: Start, app: str, tmp_path: Path
) -> None:
    proc, port = start_workers(squall, app, 2)
    old = set(proc.ready_workers(2))
    (tmp_path / "fail-import").touch()
    proc.signal(signal.SIGHUP)
    proc.wait_for(r"Rolling restart stopped: the new worker \[\d+\] failed to start")
    (tmp_path / "fail-import").unlink()
    assert proc.proc.poll() is None
    assert pids_serving(("127.0.0.1", port), 2) == old
    assert proc.children() == old
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0


def test_sigttin_adds_and_sigttou_removes_a_worker(squall: Start, app: str) -> None:
    proc, port = start_workers(squall, app, 2)
    first = proc.ready_workers(2)
    proc.signal(signal.SIGTTIN)
    third = proc.ready_workers(3)[2]
    assert "Received SIGTTIN; 3 worker(s)" in proc.output
    three = {*first, third}
    assert wait_until(lambda: proc.children() == three, 5, "three workers")
    assert pids_serving(("127.0.0.1", port), 3) == three

    proc.signal(signal.SIGTTOU)
    proc.wait_for(r"Received SIGTTOU; 2 worker\(s\)")
    (stopped,) = proc.wait_for(r"Stopping worker \[(\d+)\] \(fewer workers\)")
    assert int(stopped) == third  # the newest goes
    proc.wait_for(rf"Worker \[{third}\] stopped")
    assert wait_until(lambda: proc.children() == set(first), 5, "two workers")
    assert {get_pid(("127.0.0.1", port)) for _ in range(20)} <= set(first)
    assert pids_serving(("127.0.0.1", port), 2) == set(first)


def test_sigusr1_reopens_log_files_in_supervisor_and_workers(
    squall: Start, app: str, tmp_path: Path
) -> None:
    log = tmp_path / "squall.log"
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"file": {"format": "%(process)d %(name)s %(message)s"}},
        "handlers": {
            "file": {"class": "logging.FileHandler", "filename": str(log), "formatter": "file"},
            "console": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"},
        },
        "loggers": {
            "squall": {"handlers": ["file", "console"], "level": "INFO", "propagate": False},
            "squall.access": {"handlers": ["file"], "level": "INFO", "propagate": False},
        },
    }
    (tmp_path / "log.json").write_text(json.dumps(config))
    proc = squall(app, "--workers", "2", "--port", "0", "--log-config", "log.json")
    port = proc.port()
    workers = set(proc.ready_workers(2))
    assert pids_serving(("127.0.0.1", port), 2) == workers
    assert f"{proc.pid} squall.error Started parent process" in log.read_text()

    rotated = tmp_path / "squall.log.1"
    log.rename(rotated)
    proc.signal(signal.SIGUSR1)
    wait_until(log.exists, 5, "the supervisor to reopen its log file")

    def access_pids() -> set[int]:
        text = log.read_text()
        return {int(m) for m in re.findall(r"(?m)^(\d+) squall\.access .*GET / HTTP", text)}

    def both_reopened() -> bool:
        get_pid(("127.0.0.1", port))
        return access_pids() == workers

    wait_until(both_reopened, 10, "both workers to log into the new file")
    # the rotated file got the old lines and is left alone
    assert "Started parent process" in rotated.read_text()
    assert "Started parent process" not in log.read_text()
    assert proc.proc.poll() is None


# -- startup failures


def test_import_error_stops_the_server_with_status_3(
    squall: Start, app: str, tmp_path: Path
) -> None:
    (tmp_path / "fail-import").touch()
    proc = squall(app, "--workers", "2", "--port", "0")
    assert proc.wait() == 3
    assert "failed to start (exit status 3); stopping the server" in proc.output
    assert "a broken deploy" in proc.output
    attempts = imports(tmp_path)
    assert 1 <= len(attempts) <= 2, f"restart loop: {len(attempts)} imports"
    assert proc.pid not in attempts
    assert "Started server process" not in proc.output
    assert not proc.group_alive()


def test_lifespan_failure_stops_the_server_with_status_3(squall: Start, app: str) -> None:
    proc = squall(
        app, "--workers", "2", "--port", "0", "--lifespan", "on", env={"FAIL_LIFESPAN": "1"}
    )
    assert proc.wait() == 3
    assert "no database" in proc.output
    assert "failed to start (exit status 3); stopping the server" in proc.output
    started = proc.findall(r"Started server process \[(\d+)\]")
    assert 1 <= len(started) <= 2, f"restart loop: {len(started)} workers started"
    assert "is ready" not in proc.output
    assert not proc.group_alive()


def test_killed_supervisor_takes_its_workers_with_it(squall: Start, app: str) -> None:
    proc, port = start_workers(squall, app, 2)
    workers = proc.ready_workers(2)
    assert get_pid(("127.0.0.1", port)) in workers
    proc.signal(signal.SIGKILL)
    proc.wait()
    # the workers notice that their heartbeat pipe has no reader any more
    wait_until(lambda: not any(pid_exists(p) for p in workers), 10, "orphaned workers to exit")
