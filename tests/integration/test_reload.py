"""``squall --reload`` as a user runs it: a real reloader process, files edited under it.

Every test starts ``python -m squall app:app --reload`` in its own session (process
group) with ``cwd=tmp_path``, so the default watch directory is ``tmp_path``; the
group is killed at the end whatever happens. Waits poll the log or HTTP with a
deadline; a change that must *not* reload is followed by one that must, and the
test then checks that exactly one reload happened, naming the second file.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, RawClient

pytestmark = pytest.mark.timeout(30)

# The version string changes length at every edit: Python's bytecode cache
# trusts (mtime in whole seconds, size), so two same-size edits within one
# second would load a stale .pyc whatever the reloader does.
APP = """
import asyncio
import os
import time

VERSION = {version!r}


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":
        print("slow request started", flush=True)
        await asyncio.sleep(0.5)
    elif scope["path"] == "/hang":
        print("hanging request started", flush=True)
        await asyncio.sleep(60)
    elif scope["path"] == "/block":
        print("blocking request started", flush=True)
        time.sleep(60)  # the event loop is stuck: SIGTERM cannot be obeyed
    body = f"{{VERSION}} {{os.getpid()}}".encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({{"type": "http.response.start", "status": 200, "headers": headers}})
    await send({{"type": "http.response.body", "body": body}})
"""

RELOADING = re.compile(r"(\w+) detected changes in (.*)\. Reloading\.\.\.")
WORKER_STARTED = r"Started server process \[(\d+)\]"
EXIT_3 = r"Worker \[(\d+)\] exited with status 3; waiting for changes before reloading"


def write_app(directory: Path, version: str) -> None:
    (directory / "app.py").write_text(APP.format(version=version))


class Reloader:
    """``python -m squall <args>`` in a new session, its output collected line by line."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        full_env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT / "src"))
        for name in list(full_env):
            if name.startswith("SQUALL_") or name == "WEB_CONCURRENCY":
                del full_env[name]
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, *args],
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

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def count(self, pattern: str | re.Pattern[str]) -> int:
        return len(re.findall(pattern, self.output))

    def wait_for(
        self, pattern: str | re.Pattern[str], count: int = 1, timeout: float = 10.0
    ) -> list[re.Match[str]]:
        """Until ``pattern`` has matched ``count`` times in the log; the matches."""
        deadline = time.monotonic() + timeout
        while True:
            found = list(re.finditer(pattern, self.output))
            if len(found) >= count:
                return found
            if self.proc.poll() is not None:
                self._reader.join(2)
                found = list(re.finditer(pattern, self.output))
                if len(found) >= count:
                    return found
                raise AssertionError(
                    f"exited ({self.proc.returncode}) before {pattern!r} x{count}:\n{self.output}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} x{count} not seen in time:\n{self.output}")
            time.sleep(0.01)

    def port(self) -> int:
        return int(self.wait_for(r"running on http://127\.0\.0\.1:(\d+)")[0].group(1))

    def worker_pids(self) -> list[int]:
        return [int(m.group(1)) for m in re.finditer(WORKER_STARTED, self.output)]

    def reloads(self) -> list[tuple[str, str]]:
        """(watcher name, files shown) of each "Reloading..." line."""
        return [(m.group(1), m.group(2)) for m in RELOADING.finditer(self.output)]

    def serving(self, port: int, prefix: str, timeout: float = 10.0) -> tuple[str, int]:
        """``wait_body``, then the log up to that worker's start line has been read."""
        version, pid = wait_body(port, prefix, timeout)
        self.wait_for(rf"Started server process \[{pid}\]")
        return version, pid

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self._reader.join(2)
        return code

    def kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Reloader]]:
    """``start(*options, env=...)``: ``squall app:app --reload`` in ``tmp_path``."""
    started: list[Reloader] = []

    def run(*options: str, env: dict[str, str] | None = None) -> Reloader:
        args = ["-m", "squall", "app:app", "--reload", "--port", "0", "--reload-delay", "0.1"]
        reloader = Reloader([*args, *options], cwd=tmp_path, env=env)
        started.append(reloader)
        return reloader

    yield run
    for reloader in started:
        reloader.kill_group()


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    write_app(tmp_path, "one")
    return tmp_path


def get(port: int, path: str = "/") -> str:
    return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5).text


def wait_body(port: int, prefix: str, timeout: float) -> tuple[str, int]:
    """GET / until the body starts with ``prefix`` (retrying through a restart)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            body = get(port)
        except httpx.TransportError as exc:  # the old worker closed the connection
            last = exc
        else:
            version, _, pid = body.partition(" ")
            if version == prefix:
                return version, int(pid)
            last = body
        time.sleep(0.02)
    raise AssertionError(f"never served {prefix!r}; last: {last!r}")


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


# -- the basic cycle ------------------------------------------------------------------------


def test_edit_reloads_new_code_in_a_new_worker(start, app_dir: Path) -> None:
    r = start()
    port = r.port()
    watched = r.wait_for(r"Will watch for changes in these directories: \[(.*)\]")[0].group(1)
    assert watched == repr(str(app_dir.resolve()))
    pid = int(r.wait_for(r"Started reloader process \[(\d+)\] using WatchFiles")[0].group(1))
    assert pid == r.proc.pid
    _, first = r.serving(port, "one")
    assert first != r.proc.pid
    assert r.worker_pids() == [first]

    write_app(app_dir, "second")
    _, second = r.serving(port, "second")
    assert second not in (first, r.proc.pid)
    assert r.reloads() == [("WatchFiles", "'app.py'")]
    assert f"Finished server process [{first}]" in r.output  # stopped gracefully
    assert "did not stop in time" not in r.output
    assert pid_gone(first)
    assert children(r.proc.pid) == [second]

    write_app(app_dir, "third!")
    _, third = r.serving(port, "third!")
    assert third not in (first, second)
    assert len(r.reloads()) == 2
    assert r.stop() == 0


def test_polling_fallback_without_watchfiles(start, app_dir: Path, tmp_path_factory) -> None:
    shadow = tmp_path_factory.mktemp("no_watchfiles")
    (shadow / "watchfiles.py").write_text("raise ImportError('not installed')\n")
    r = start(env={"PYTHONPATH": f"{shadow}{os.pathsep}{ROOT / 'src'}"})
    port = r.port()
    r.wait_for(rf"Started reloader process \[{r.proc.pid}\] using polling")
    _, first = r.serving(port, "one")
    write_app(app_dir, "second")
    _, second = r.serving(port, "second")
    assert second != first
    assert r.reloads() == [("polling", "'app.py'")]
    assert r.stop() == 0


# -- what is watched ------------------------------------------------------------------------


def test_non_matching_file_does_not_reload(start, app_dir: Path) -> None:
    r = start()
    port = r.port()
    _, first = r.serving(port, "one")
    (app_dir / "notes.txt").write_text("not code\n")
    (app_dir / ".hidden.py").write_text("x = 1\n")  # excluded by default (".*")
    # the sentinel: a change that does reload, after the ones that must not
    write_app(app_dir, "second")
    _, second = r.serving(port, "second")
    assert r.reloads() == [("WatchFiles", "'app.py'")]
    assert r.worker_pids() == [first, second]


def test_reload_include_adds_a_pattern(start, app_dir: Path) -> None:
    r = start("--reload-include", "*.txt")
    port = r.port()
    _, first = r.serving(port, "one")
    (app_dir / "notes.txt").write_text("now watched\n")
    r.wait_for(RELOADING)
    r.wait_for(WORKER_STARTED, count=2)
    _, second = r.serving(port, "one")
    assert second != first
    assert r.reloads() == [("WatchFiles", "'notes.txt'")]


def test_reload_exclude_a_subdirectory(start, app_dir: Path) -> None:
    (app_dir / "vendor").mkdir()
    (app_dir / "vendor" / "lib.py").write_text("x = 1\n")
    (app_dir / "lib.py").write_text("x = 1\n")
    r = start("--reload-exclude", "vendor")
    port = r.port()
    r.serving(port, "one")
    (app_dir / "vendor" / "lib.py").write_text("x = 22\n")
    (app_dir / "vendor" / "new.py").write_text("y = 1\n")
    (app_dir / "lib.py").write_text("x = 333\n")  # the sentinel, outside vendor/
    r.wait_for(WORKER_STARTED, count=2)
    r.serving(port, "one")
    assert r.reloads() == [("WatchFiles", "'lib.py'")]
    assert "vendor" not in r.output


def test_reload_dir_limits_the_watch_to_a_subdirectory(start, app_dir: Path) -> None:
    sub = app_dir / "sub"
    sub.mkdir()
    (sub / "helper.py").write_text("WORD = 'alpha'\n")
    (app_dir / "app.py").write_text(
        APP.format(version="one").replace(
            "VERSION = 'one'", "from sub.helper import WORD as VERSION"
        )
    )
    r = start("--reload-dir", "sub")
    port = r.port()
    watched = r.wait_for(r"Will watch for changes in these directories: \[(.*)\]")[0].group(1)
    assert watched == repr(str(sub.resolve()))
    _, first = r.serving(port, "alpha")
    write_app(app_dir, "outside")  # not under --reload-dir: no reload
    (sub / "helper.py").write_text("WORD = 'bravo!'\n")  # the sentinel
    r.wait_for(WORKER_STARTED, count=2)
    # the new worker imports everything afresh, so app.py's edit shows too
    _, second = r.serving(port, "outside")
    assert second != first
    assert r.reloads() == [("WatchFiles", "'sub/helper.py'")]


def test_reload_dir_that_does_not_exist_is_a_startup_error(start, app_dir: Path) -> None:
    r = start("--reload-dir", "nope")
    assert r.proc.wait(10) == 3
    r._reader.join(2)
    assert "--reload-dir:" in r.output
    assert "is not a directory" in r.output
    assert "Started server process" not in r.output


# -- a broken app ---------------------------------------------------------------------------


def test_syntax_error_waits_for_a_fix(start, app_dir: Path) -> None:
    r = start()
    port = r.port()
    _, first = r.serving(port, "one")

    (app_dir / "app.py").write_text("def app(:\n    pass\n")
    failed = int(r.wait_for(EXIT_3)[0].group(1))
    assert failed != first
    assert "Error loading ASGI app 'app:app'" in r.output
    assert "SyntaxError" in r.output
    assert r.proc.poll() is None  # the reloader keeps running
    assert pid_gone(failed)  # ... and reaped the failed worker
    assert children(r.proc.pid) == []

    write_app(app_dir, "fixed")
    _, fixed = r.serving(port, "fixed")
    assert fixed not in (first, failed)
    # the failure was reported once, by the worker and by the reloader
    assert r.count(EXIT_3) == 1
    assert r.count(r"Error loading ASGI app 'app:app'") == 1
    assert len(r.reloads()) == 2
    assert r.stop() == 0


def test_app_broken_at_start_waits_for_a_fix(start, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("raise RuntimeError('boom at import')\n")
    r = start()
    r.wait_for(EXIT_3)
    assert "boom at import" in r.output
    assert r.proc.poll() is None
    write_app(tmp_path, "fixed")
    _, pid = r.serving(r.port(), "fixed")
    assert r.count(EXIT_3) == 1
    assert children(r.proc.pid) == [pid]


# -- restarts with connections open ---------------------------------------------------------


def test_reload_with_an_idle_keep_alive_connection(start, app_dir: Path) -> None:
    r = start("--timeout-graceful-shutdown", "2")
    port = r.port()
    client = RawClient(port)
    try:
        client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        first_response = client.response()
        assert first_response.startswith(b"HTTP/1.1 200")
        first = int(first_response.rsplit(b" ", 1)[1])

        began = time.monotonic()
        write_app(app_dir, "second")
        _, second = r.serving(port, "second")
        elapsed = time.monotonic() - began
        assert second != first
        # the idle connection did not hold the restart for the graceful timeout ...
        assert elapsed < 2.0, elapsed
        assert "did not stop in time" not in r.output
        assert f"Finished server process [{first}]" in r.output
        # ... the old worker closed it
        assert client.is_closed(timeout=5)
    finally:
        client.close()


def test_reload_lets_an_in_flight_request_finish(start, app_dir: Path) -> None:
    r = start("--timeout-graceful-shutdown", "2")
    port = r.port()
    _, first = r.serving(port, "one")
    client = RawClient(port)
    try:
        client.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        r.wait_for("slow request started")
        write_app(app_dir, "second")
        r.wait_for(RELOADING)
        response = client.response()
        # the old code answered the request it had started, in full
        assert response.startswith(b"HTTP/1.1 200"), response
        assert response.endswith(f"\r\n\r\none {first}".encode()), response
        # the worker was asked to stop while the request was still running
        r.wait_for(r'"GET /slow HTTP/1\.1" 200')
        log = r.output
        assert log.index("Reloading...") < log.index('"GET /slow HTTP/1.1" 200')
        assert client.is_closed(timeout=5)
    finally:
        client.close()
    _, second = r.serving(port, "second")
    assert second != first
    assert "did not stop in time" not in r.output
    assert "Cancel" not in r.output  # nothing was cut off by the graceful timeout


def test_reload_cancels_a_hung_request_after_the_graceful_timeout(start, app_dir: Path) -> None:
    r = start("--timeout-graceful-shutdown", "1")
    port = r.port()
    _, first = r.serving(port, "one")
    client = RawClient(port)
    try:
        client.send(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
        r.wait_for("hanging request started")
        began = time.monotonic()
        write_app(app_dir, "second")
        _, second = r.serving(port, "second")
        elapsed = time.monotonic() - began
        assert second != first
        assert 0.9 < elapsed < 3.0, elapsed  # the 1 s graceful timeout, then the new worker
        assert "Cancel 1 running task(s), timeout graceful shutdown exceeded" in r.output
        assert "did not stop in time" not in r.output  # the worker stopped itself
        assert client.is_closed(timeout=5)
    finally:
        client.close()


@pytest.mark.parametrize(
    ("options", "bound"),
    [(["--timeout-graceful-shutdown", "1"], 2.0), ([], 6.0)],
    ids=["1s", "unset"],
)
def test_reload_kills_a_worker_that_does_not_stop(
    start, app_dir: Path, options: list[str], bound: float
) -> None:
    """Graceful timeout (5 s when unset) plus one second, then SIGKILL."""
    r = start(*options)
    port = r.port()
    _, first = r.serving(port, "one")
    client = RawClient(port)
    try:
        client.send(b"GET /block HTTP/1.1\r\nHost: x\r\n\r\n")
        r.wait_for("blocking request started")
        began = time.monotonic()
        write_app(app_dir, "second")
        _, second = r.serving(port, "second")
        elapsed = time.monotonic() - began
    finally:
        client.close()
    assert second != first
    assert f"Worker [{first}] did not stop in time; killing it" in r.output
    assert bound - 0.1 < elapsed < bound + 2.0, elapsed
    assert pid_gone(first)
    assert children(r.proc.pid) == [second]


# -- the launcher's own imports ---------------------------------------------------------------

LAUNCHER = """
import os

from helper import WORD


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = f"{WORD} {os.getpid()}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    import squall

    squall.run("main:app", reload=True, port=0, reload_delay=0.1)
"""


def test_run_from_main_reloads_modules_the_launcher_imported(tmp_path: Path) -> None:
    """``python main.py`` calling ``squall.run("main:app", reload=True)``, as with Uvicorn."""
    (tmp_path / "helper.py").write_text("WORD = 'alpha'\n")
    (tmp_path / "main.py").write_text(LAUNCHER)
    r = Reloader(["main.py"], cwd=tmp_path)
    try:
        port = r.port()
        assert get(port).split()[0] == "alpha"
        (tmp_path / "helper.py").write_text("WORD = 'bravo-changed'\n")
        r.wait_for(r"detected changes in 'helper\.py'\. Reloading")
        r.wait_for(r"running on http://", count=2)  # the new worker serves
        word, pid = get(port).split()
        assert int(pid) == r.worker_pids()[-1]
        assert word == "bravo-changed"
    finally:
        r.kill_group()


# -- stopping -------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_reloader_and_worker(start, app_dir: Path, sig: int) -> None:
    r = start()
    port = r.port()
    _, worker = r.serving(port, "one")
    assert r.stop(sig) == 0
    assert f"Finished server process [{worker}]" in r.output
    assert f"Stopping reloader process [{r.proc.pid}]" in r.output
    assert pid_gone(worker)
    # nothing at all is left in the reloader's process group
    with pytest.raises(ProcessLookupError):
        os.killpg(r.proc.pid, 0)


def test_sigterm_while_waiting_for_a_fix(start, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("def app(:\n")
    r = start()
    r.wait_for(EXIT_3)
    assert r.stop(signal.SIGTERM) == 0
    with pytest.raises(ProcessLookupError):
        os.killpg(r.proc.pid, 0)


# -- misuse ---------------------------------------------------------------------------------


def test_app_object_with_reload_exits_3_with_one_line(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import squall

        async def app(scope, receive, send):
            pass

        squall.run(app, reload=True, port=0)
        """
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
        start_new_session=True,
    )
    assert out.returncode == 3
    lines = (out.stdout + out.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("ERROR:")
    assert "--reload" in lines[0]
    assert "import string" in lines[0]


def test_reload_with_workers_warns_and_runs_one_worker(start, app_dir: Path) -> None:
    r = start("--workers", "2")
    port = r.port()
    assert r.count(r"WARNING: .*--reload and --workers: reloading runs a single worker") == 1
    _, worker = r.serving(port, "one")
    assert r.worker_pids() == [worker]
    assert children(r.proc.pid) == [worker]
    # a reload still replaces the one worker by one worker
    write_app(app_dir, "second")
    _, second = r.serving(port, "second")
    assert children(r.proc.pid) == [second]
    assert len(r.worker_pids()) == 2
