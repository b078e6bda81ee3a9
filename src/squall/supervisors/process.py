"""One worker process, started by fork from a supervisor that never imports the app.

The child runs a :class:`~squall.server.serve.Server` on the supervisor's sockets
(or, with ``--reuse-port``, on its own) and writes lines to a pipe: ``R`` once
it serves (ready), then ``.`` twice a second from its main loop (alive), each
followed by ``M`` and its metrics snapshot as JSON when ``--metrics`` is on. The
supervisor reads the pipe to judge the worker's health; end of file means
the worker has gone.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from squall.config.options import Config

logger = logging.getLogger("squall.error")

# signals the supervisor handles; a worker puts them back to their defaults
SUPERVISOR_SIGNALS = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGUSR1,
    signal.SIGCHLD,
)


class Worker:
    """The supervisor's view of one worker process."""

    __slots__ = (
        "buffer",
        "fd",
        "last_seen",
        "metrics",
        "pid",
        "ready",
        "replaces",
        "started",
        "stopping",
    )

    def __init__(self, pid: int, fd: int) -> None:
        self.pid = pid
        self.fd = fd  # read end of the heartbeat pipe
        self.started = time.monotonic()
        self.last_seen = self.started
        self.ready = False
        self.stopping = False  # asked to stop: its exit is expected
        self.replaces: Worker | None = None  # rolling restart: the worker it takes over from
        self.buffer = b""  # a heartbeat line not yet complete
        self.metrics: dict[str, object] | None = None  # its last metrics snapshot


def spawn(
    config: Config,
    sockets: list[socket.socket],
    reuse_port: bool = False,
    fresh: list[Path] | None = None,
) -> Worker:
    """Fork a worker; in the child, serve and exit with the server's status.

    ``fresh`` (reload): modules loaded from these directories before the fork
    (say, by a script that called ``squall.run(..., reload=True)``) are
    forgotten in the child, so the app's code is imported as it is now."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        return Worker(pid, read_fd)
    # -- the child
    os.close(read_fd)
    if fresh:
        _forget_modules(fresh)
    code = 1
    try:
        code = _serve(config, sockets, write_fd, reuse_port)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        logger.exception("Worker failed")
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _forget_modules(dirs: list[Path]) -> None:
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if not path or name == "__main__" or name.startswith("squall"):
            continue
        resolved = Path(path).resolve()
        if any(d in resolved.parents for d in dirs):
            del sys.modules[name]


def _serve(config: Config, sockets: list[socket.socket], write_fd: int, reuse_port: bool) -> int:
    from squall.loading import STARTUP_FAILURE
    from squall.observe.logs import reopen_log_files
    from squall.server.serve import Server
    from squall.server.sockets import rebind_reuse_port

    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGUSR1, lambda sig, frame: reopen_log_files())
    for sig in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU):  # the supervisor's business
        signal.signal(sig, signal.SIG_IGN)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    server = Server(config)
    ready: list[bool] = []

    def heartbeat() -> None:
        message = b".\n" if ready else b"R\n"
        state = server.state
        if config.metrics and state is not None and state.metrics is not None:
            snapshot = json.dumps(state.metrics.snapshot(state.gauges()), separators=(",", ":"))
            message += b"M" + snapshot.encode() + b"\n"
        try:
            os.write(write_fd, message)
        except OSError:  # the supervisor has gone: stop serving
            server.should_exit = True
        ready.append(True)

    server.heartbeat = heartbeat
    if reuse_port:  # listen on our own sockets, bound to the addresses held
        own = rebind_reuse_port(sockets, config.backlog)
        for held in sockets:
            held.close()
        sockets = own
    server.run(sockets=sockets)
    return 0 if server.started else STARTUP_FAILURE
