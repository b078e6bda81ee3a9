"""Creating listening sockets: TCP host and port, Unix paths, inherited fds."""

from __future__ import annotations

import contextlib
import os
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from squall.config import Config


def bind_unix(path: str, backlog: int) -> socket.socket:
    """A Unix socket at ``path``; a stale socket file is replaced, mode 0666 if new."""
    existed = os.path.exists(path)
    if existed:
        in_use = False
        with socket.socket(socket.AF_UNIX) as probe, contextlib.suppress(OSError):
            probe.connect(path)
            in_use = True
        if in_use:
            raise OSError(f"{path} is in use by another server")
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        if not existed:
            os.chmod(path, 0o666)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def from_fd(fd: int) -> socket.socket:
    """An inherited listening socket; its family is detected from the fd."""
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)
    return sock


def describe(sock: socket.socket, config: Config, scheme: str = "http") -> str:
    if sock.family == socket.AF_UNIX:
        return f"unix socket {sock.getsockname()}"
    host, port = sock.getsockname()[:2]
    if sock.family == socket.AF_INET6:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"
