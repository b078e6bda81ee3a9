"""``--reload``: restart the worker when the code changes (development).

The reloader binds the sockets once, never imports the app, and forks one
worker at a time (see ``process.py``), so every restart imports the app
afresh. Changes are seen with ``watchfiles`` when it is installed, else by
polling modification times every ``--reload-delay`` seconds.

* What is watched: ``--reload-dir`` (default: the current directory), files
  matching ``--reload-include`` (default ``*.py``) and not
  ``--reload-exclude`` (default ``.*``, ``.py[cod]``, ``.sw.*``, ``~*``);
  a default pattern named in the other list is dropped, as Uvicorn does.
* A restart stops the worker gracefully, even with connections open, within
  ``--timeout-graceful-shutdown`` (5 s when that is unset), then kills it.
* A worker that fails (a syntax error, an import error) is reported once by
  the worker itself; the reloader keeps running and starts a new worker at
  the next change.
* SIGINT/SIGTERM stop the worker and the reloader.
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from squall.loading import STARTUP_FAILURE
from squall.server.sockets import bind_all, unix_paths
from squall.supervisors.process import SUPERVISOR_SIGNALS, Worker, spawn

if TYPE_CHECKING:
    from collections.abc import Iterator

    from squall.config.options import Config

logger = logging.getLogger("squall.error")

DEFAULT_INCLUDES = ["*.py"]
DEFAULT_EXCLUDES = [".*", ".py[cod]", ".sw.*", "~*"]
RELOAD_GRACE = 5.0  # graceful stop on reload when --timeout-graceful-shutdown is unset


class FileFilter:
    """Which changed paths count: include and exclude globs, excluded directories."""

    def __init__(self, config: Config) -> None:
        includes = list(config.reload_includes)
        excludes = list(config.reload_excludes)
        self.includes = [p for p in DEFAULT_INCLUDES if p not in excludes] + includes
        self.excludes = [p for p in DEFAULT_EXCLUDES if p not in includes] + excludes
        # a file the user names exactly (e.g. ".env") wins over the default excludes
        self.exact = {p for p in includes if not any(c in p for c in "*?[")}
        self.excluded_dirs = [Path(p).resolve() for p in self.excludes if Path(p).is_dir()]
        # a plain name ("node_modules") excludes a directory of that name anywhere
        self.excluded_names = {
            p for p in excludes if "/" not in p and not any(c in p for c in "*?[")
        }

    @staticmethod
    def _matches(candidate: Path, pattern: str) -> bool:
        """A glob against the file name, or (with a "/") against the path's last parts."""
        if "/" not in pattern:
            return fnmatch.fnmatch(candidate.name, pattern)
        return candidate.match(pattern)

    def __call__(self, path: str) -> bool:
        candidate = Path(path)
        if candidate.name in self.exact:
            return True
        if not any(self._matches(candidate, pattern) for pattern in self.includes):
            return False
        if any(self._matches(candidate, pattern) for pattern in self.excludes):
            return False
        if self.excluded_names and any(p in self.excluded_names for p in candidate.parts[:-1]):
            return False
        resolved = candidate.resolve()
        return not any(d == resolved or d in resolved.parents for d in self.excluded_dirs)


class _PollWatcher:
    """Modification times, polled; the fallback without watchfiles."""

    name = "polling"

    def __init__(self, dirs: list[Path], accept: FileFilter) -> None:
        self.dirs = dirs
        self.accept = accept
        self.mtimes = self._scan()

    def _scan(self) -> dict[str, float]:
        found: dict[str, float] = {}
        for root in self.dirs:
            for path in root.rglob("*"):
                text = str(path)
                if self.accept(text):
                    with contextlib.suppress(OSError):
                        found[text] = path.stat().st_mtime
        return found

    def wait(self, delay: float, stop: threading.Event) -> list[str]:
        stop.wait(delay)
        current = self._scan()
        changed = [p for p, m in current.items() if self.mtimes.get(p) != m]
        changed += [p for p in self.mtimes if p not in current]
        self.mtimes = current
        return changed


class _WatchFilesWatcher:
    name = "WatchFiles"

    def __init__(self, dirs: list[Path], accept: FileFilter, delay: float, stop: Any) -> None:
        import watchfiles

        self.accept = accept
        self._changes: Iterator[set[tuple[Any, str]]] = watchfiles.watch(
            *dirs,
            watch_filter=None,
            stop_event=stop,
            yield_on_timeout=True,
            rust_timeout=max(50, int(delay * 1000)),
            debounce=max(50, int(delay * 1000)),
            raise_interrupt=False,
            ignore_permission_denied=True,
        )

    def wait(self, delay: float, stop: threading.Event) -> list[str]:
        try:
            changes = next(self._changes)
        except StopIteration:
            return []
        return sorted({path for _, path in changes if self.accept(path)})


class Reloader:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.dirs = [Path(d).resolve() for d in (config.reload_dirs or [os.getcwd()])]
        self.accept = FileFilter(config)
        self.stop = threading.Event()
        self.sockets: list[socket.socket] = []
        self.worker: Worker | None = None
        self.waiting_for_fix = False

    def run(self) -> int:
        config = self.config
        for directory in self.dirs:
            if not directory.is_dir():
                logger.error("--reload-dir: %s is not a directory", directory)
                return STARTUP_FAILURE
        try:
            self.sockets = bind_all(config)
        except OSError as exc:
            logger.error("%s", exc)
            return STARTUP_FAILURE
        watcher: _PollWatcher | _WatchFilesWatcher
        try:
            watcher = _WatchFilesWatcher(self.dirs, self.accept, config.reload_delay, self.stop)
        except ImportError:
            watcher = _PollWatcher(self.dirs, self.accept)
        logger.info("Will watch for changes in these directories: %s", [str(d) for d in self.dirs])
        logger.info("Started reloader process [%d] using %s", os.getpid(), watcher.name)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in SUPERVISOR_SIGNALS[:2]}
        try:
            self.worker = spawn(config, self.sockets, fresh=self.dirs)
            while not self.stop.is_set():
                changed = watcher.wait(config.reload_delay, self.stop)
                self._drain_and_reap()
                if changed and not self.stop.is_set():
                    shown = ", ".join(repr(os.path.relpath(p)) for p in changed[:5])
                    logger.warning("%s detected changes in %s. Reloading...", watcher.name, shown)
                    self._restart()
        finally:
            if self.worker is not None:
                self._stop_worker(self.worker)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for sock in self.sockets:
                sock.close()
            for path in unix_paths(config):
                with contextlib.suppress(OSError):
                    os.unlink(path)
        logger.info("Stopping reloader process [%d]", os.getpid())
        return 0

    def _on_signal(self, sig: int, frame: object) -> None:
        self.stop.set()

    def _drain_and_reap(self) -> None:
        worker = self.worker
        if worker is None:
            return
        with contextlib.suppress(OSError):
            while os.read(worker.fd, 4096):
                pass
        pid, status = os.waitpid(worker.pid, os.WNOHANG)
        if pid:
            self.worker = None
            with contextlib.suppress(OSError):
                os.close(worker.fd)
            code = os.waitstatus_to_exitcode(status)
            logger.error(
                "Worker [%d] exited with status %d; waiting for changes before reloading",
                worker.pid,
                code,
            )

    def _restart(self) -> None:
        if self.worker is not None:
            self._stop_worker(self.worker)
        self.worker = spawn(self.config, self.sockets, fresh=self.dirs)

    def _stop_worker(self, worker: Worker) -> None:
        self.worker = None
        timeout = self.config.timeout_graceful_shutdown
        deadline = time.monotonic() + (RELOAD_GRACE if timeout is None else timeout) + 1
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signal.SIGTERM)
        while True:
            pid, _ = os.waitpid(worker.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                logger.warning("Worker [%d] did not stop in time; killing it", worker.pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGKILL)
                os.waitpid(worker.pid, 0)
                break
            time.sleep(0.02)
        with contextlib.suppress(OSError):
            os.close(worker.fd)
