"""``--workers N``: a supervisor that binds once and keeps N workers healthy.

The supervisor binds the listening sockets, never imports the app, and forks
workers that share them (with ``--reuse-port`` each worker binds its own).
It runs a plain loop on ``select`` over the workers' heartbeat pipes and a
signal wakeup socket; no event loop.

* **Health.** A worker that exits is replaced (logged with the old and new
  pid). A worker that sends no heartbeat for ``--timeout-worker-healthcheck``
  seconds is killed and replaced. A worker that exits with status 3 before it
  was ever ready (an import error, a lifespan failure) stops the whole server
  with status 3 instead of restarting in a loop.
* **Signals.** SIGINT/SIGTERM: every worker stops gracefully, then the
  supervisor exits (a second SIGINT kills them). SIGHUP: rolling restart, one
  worker at a time: a new one starts, and only when it is ready is an old one
  told to stop; if the new one fails, the old ones stay and the reason is
  logged. SIGTTIN/SIGTTOU: one worker more or less. SIGUSR1: log files are
  reopened, here and in every worker.
* A worker that leaves after ``--limit-max-requests`` (plus jitter) exits
  with status 0 and is replaced like any other.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import socket
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from squall.config.addresses import parse_bind
from squall.loading import STARTUP_FAILURE
from squall.observe.logs import reopen_log_files
from squall.observe.metrics import combine, counters_only, http_answer, render
from squall.server.sockets import bind_all, describe, unix_paths
from squall.supervisors.process import SUPERVISOR_SIGNALS, Worker, spawn

if TYPE_CHECKING:
    from squall.config.options import Config

logger = logging.getLogger("squall.error")

POLL = 0.5  # seconds between health checks when nothing happens
STARTUP_DEADLINE = 60.0  # a rolling-restart replacement must be ready within this


class Supervisor:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.target = config.workers or 1
        self.workers: dict[int, Worker] = {}
        self.sockets: list[socket.socket] = []
        self.exit_code = 0
        self.stopping = False
        self.force = False
        self.restart_queue: deque[Worker] = deque()  # old workers to replace (SIGHUP)
        self._signals: deque[int] = deque()
        self._wake_r, self._wake_w = socket.socketpair()
        self.restarts = 0  # workers replaced after dying or hanging
        self.retired: list[dict[str, Any]] = []  # counters of exited workers
        self.metrics_socket: socket.socket | None = None
        self.reuse_port = False

    # -- running

    def run(self) -> int:
        config = self.config
        try:
            # with --reuse-port, TCP sockets are bound without listening: they hold the
            # addresses (and a port 0 choice) while each worker listens on its own
            self.sockets = bind_all(config, reuse_port=config.reuse_port, listen=False)
        except OSError as exc:
            logger.error("%s", exc)
            return STARTUP_FAILURE
        listening = [s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) for s in self.sockets]
        if config.reuse_port and any(listening):
            logger.warning("--reuse-port: not for Unix, fd or systemd sockets; they are shared")
        self.reuse_port = config.reuse_port and not any(listening)
        for sock, is_listening in zip(self.sockets, listening, strict=True):
            if not is_listening and not self.reuse_port:
                sock.listen(config.backlog)
            scheme = "https" if config.ssl_certfile else "http"
            logger.info("Squall supervisor listening on %s", describe(sock, config, scheme))
        if config.metrics:
            _, host, port = parse_bind(config.metrics)
            try:
                self.metrics_socket = socket.create_server((str(host), port))
            except OSError as exc:
                logger.error("--metrics: %s", exc)
                return STARTUP_FAILURE
            logger.info("Metrics on http://%s:%d/metrics", host, port)
        logger.info("Started parent process [%d]; starting %d worker(s)", os.getpid(), self.target)
        self._install_signals()
        try:
            for _ in range(self.target):
                self._spawn()
            while self.workers:
                self._step()
        finally:
            self._restore_signals()
            for sock in self.sockets:
                sock.close()
            if self.metrics_socket is not None:
                self.metrics_socket.close()
            for path in unix_paths(config):
                with contextlib.suppress(OSError):
                    os.unlink(path)
        logger.info("Stopping parent process [%d]", os.getpid())
        return self.exit_code

    def _spawn(self, replaces: Worker | None = None) -> Worker:
        worker = spawn(self.config, self.sockets, self.reuse_port)
        worker.replaces = replaces
        self.workers[worker.pid] = worker
        return worker

    def _step(self) -> None:
        fds = [self._wake_r.fileno(), *(w.fd for w in self.workers.values() if w.fd >= 0)]
        if self.metrics_socket is not None:
            fds.append(self.metrics_socket.fileno())
        try:
            readable, _, _ = select.select(fds, [], [], POLL)
        except InterruptedError:
            readable = []
        for fd in readable:
            if fd == self._wake_r.fileno():
                with contextlib.suppress(OSError):
                    self._wake_r.recv(4096)
            elif self.metrics_socket is not None and fd == self.metrics_socket.fileno():
                self._answer_metrics(self.metrics_socket)
            else:
                self._read_heartbeat(fd)
        while self._signals:
            self._on_signal(self._signals.popleft())
        self._reap()
        if not self.stopping:
            self._check_health()
            self._continue_restart()
            self._adjust_count()

    def _answer_metrics(self, listener: socket.socket) -> None:
        """One scrape: the sum over live workers and the counters of exited ones."""
        try:
            client, _ = listener.accept()
        except OSError:
            return
        with client:
            client.settimeout(1.0)
            data = b""
            with contextlib.suppress(OSError):
                while b"\r\n\r\n" not in data and len(data) < 8192:
                    chunk = client.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            snapshots = [w.metrics for w in self.workers.values() if w.metrics is not None]
            total = combine([*self.retired, *snapshots])
            with contextlib.suppress(OSError):
                client.sendall(http_answer(render(total, self.restarts)))

    def _read_heartbeat(self, fd: int) -> None:
        worker = next((w for w in self.workers.values() if w.fd == fd), None)
        if worker is None:
            return
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the worker has gone; reaped below
            os.close(fd)
            worker.fd = -1
            return
        worker.last_seen = time.monotonic()
        lines = (worker.buffer + data).split(b"\n")
        worker.buffer = lines.pop()
        for line in lines:
            if line[:1] == b"M":
                with contextlib.suppress(ValueError):
                    worker.metrics = json.loads(line[1:])
        if b"R" in data and not worker.ready:
            worker.ready = True
            logger.info("Worker [%d] is ready", worker.pid)
            old = worker.replaces
            if old is not None and old.pid in self.workers:
                logger.info("Rolling restart: worker [%d] replaces [%d]", worker.pid, old.pid)
                self._stop(old)
                worker.replaces = None

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            if worker.fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(worker.fd)
            code = os.waitstatus_to_exitcode(status)
            if worker.metrics is not None:
                self.retired = [combine([*self.retired, counters_only(worker.metrics)])]
            self._worker_exited(worker, code)

    def _worker_exited(self, worker: Worker, code: int) -> None:
        if worker.stopping or self.stopping:
            logger.info("Worker [%d] stopped", worker.pid)
            return
        if code == STARTUP_FAILURE and not worker.ready:
            if worker.replaces is not None:
                logger.error(
                    "Rolling restart stopped: the new worker [%d] failed to start "
                    "(exit status %d); keeping worker [%d]",
                    worker.pid,
                    code,
                    worker.replaces.pid,
                )
                self.restart_queue.clear()
                return
            logger.error(
                "Worker [%d] failed to start (exit status %d); stopping the server",
                worker.pid,
                code,
            )
            self.exit_code = STARTUP_FAILURE
            self._stop_all()
            return
        if code == 0:
            reason = "exited (request limit or app exit)"
        elif code < 0:
            reason = f"was killed by signal {-code}"
        else:
            reason = f"died with exit status {code}"
        new = self._spawn(worker.replaces)
        if code != 0:
            self.restarts += 1
        logger.warning("Worker [%d] %s; started worker [%d]", worker.pid, reason, new.pid)

    def _check_health(self) -> None:
        timeout = self.config.timeout_worker_healthcheck
        now = time.monotonic()
        for worker in list(self.workers.values()):
            if worker.ready and not worker.stopping and now - worker.last_seen > timeout:
                logger.error(
                    "Worker [%d] sent no heartbeat for %.1f s; killing it", worker.pid, timeout
                )
                worker.last_seen = now  # once; it is reaped and replaced
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGKILL)

    def _continue_restart(self) -> None:
        """SIGHUP: one replacement at a time; the old worker stops when it is ready."""
        pending = [w for w in self.workers.values() if w.replaces is not None]
        now = time.monotonic()
        for new in pending:
            if not new.ready and now - new.started > STARTUP_DEADLINE:
                old = new.replaces
                logger.error(
                    "Rolling restart stopped: worker [%d] was not ready within %d s; "
                    "keeping worker [%d]",
                    new.pid,
                    STARTUP_DEADLINE,
                    old.pid if old else 0,
                )
                new.replaces = None
                self._stop(new)
                self.restart_queue.clear()
            return
        while self.restart_queue:
            old = self.restart_queue.popleft()
            if old.pid in self.workers and not old.stopping:
                self._spawn(replaces=old)
                return

    def _adjust_count(self) -> None:
        active = [w for w in self.workers.values() if not w.stopping and w.replaces is None]
        replacing = sum(1 for w in self.workers.values() if w.replaces is not None)
        if replacing:
            return
        if len(active) < self.target:
            for _ in range(self.target - len(active)):
                worker = self._spawn()
                logger.info("Started worker [%d]", worker.pid)
        elif len(active) > self.target:
            for worker in sorted(active, key=lambda w: w.started)[self.target :]:
                logger.info("Stopping worker [%d] (fewer workers)", worker.pid)
                self._stop(worker)

    def _stop(self, worker: Worker) -> None:
        worker.stopping = True
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signal.SIGTERM)

    def _stop_all(self, sig: int = signal.SIGTERM) -> None:
        self.stopping = True
        self.restart_queue.clear()
        # our copy of each listening socket would keep it open while the workers
        # drain: new clients would wait in the backlog, then be reset
        for sock in self.sockets:
            sock.close()
        for worker in self.workers.values():
            worker.stopping = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, sig)

    # -- signals

    def _install_signals(self) -> None:
        self._wake_w.setblocking(False)
        signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        for sig in SUPERVISOR_SIGNALS:
            signal.signal(sig, self._queue_signal)

    def _restore_signals(self) -> None:
        signal.set_wakeup_fd(-1)
        for sig in SUPERVISOR_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)

    def _queue_signal(self, sig: int, frame: object) -> None:
        self._signals.append(sig)

    def _on_signal(self, sig: int) -> None:
        if sig == signal.SIGCHLD:
            return  # reaped in every step
        if sig in (signal.SIGINT, signal.SIGTERM):
            if self.stopping and sig == signal.SIGINT:
                logger.warning("Forcing the workers to stop")
                self._stop_all(signal.SIGKILL)
            else:
                # SIGTERM, not the SIGINT: a worker in the terminal's process group got
                # that already, and a second SIGINT would force it
                logger.info("Received %s; stopping the workers", signal.Signals(sig).name)
                self._stop_all(signal.SIGTERM)
        elif self.stopping:
            return
        elif sig == signal.SIGHUP:
            logger.info("Received SIGHUP; restarting the workers one by one")
            self.restart_queue = deque(
                w for w in self.workers.values() if not w.stopping and w.replaces is None
            )
        elif sig == signal.SIGTTIN:
            self.target += 1
            logger.info("Received SIGTTIN; %d worker(s)", self.target)
        elif sig == signal.SIGTTOU:
            if self.target > 1:
                self.target -= 1
            logger.info("Received SIGTTOU; %d worker(s)", self.target)
        elif sig == signal.SIGUSR1:
            reopen_log_files()
            for worker in self.workers.values():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGUSR1)
