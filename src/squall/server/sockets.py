"""Creating listening sockets: TCP, Unix paths, inherited fds, systemd sockets.

:func:`bind_all` turns the configuration into listening sockets, in this
order of precedence: systemd socket activation (``LISTEN_FDS`` for this
process), ``--bind`` addresses (``HOST:PORT``, ``[V6]:PORT``, ``unix:PATH``,
``fd://N``, repeatable), ``--uds``, ``--fd``, then ``--host``/``--port``.
A wildcard IPv6 host (``::``) is dual-stack, the same with one process or
many, since the sockets are bound once, before any worker starts.
"""

from __future__ import annotations

import contextlib
import os
import socket
from typing import TYPE_CHECKING

from squall.config.addresses import parse_bind

if TYPE_CHECKING:
    from squall.config.options import Config

SD_LISTEN_FDS_START = 3


def bind_unix(path: str, backlog: int, mode: int | None = None) -> socket.socket:
    """A Unix socket at ``path``; a stale socket file is replaced.

    ``mode`` sets the file's permissions (default 0666)."""
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
        os.chmod(path, 0o666 if mode is None else mode)  # a fresh file, stale one or not
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def bind_tcp(
    host: str,
    port: int,
    backlog: int,
    reuse_port: bool = False,
    dual_stack: bool = True,
    listen: bool = True,
) -> list[socket.socket]:
    """Listening sockets for every address ``host`` resolves to (as asyncio does)."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    seen = set()
    chosen = 0  # with port 0, the port the first socket got: the others take it too
    try:
        for family, kind, proto, _, resolved in infos:
            if (family, resolved) in seen:
                continue
            seen.add((family, resolved))
            address = (resolved[0], chosen, *resolved[2:]) if chosen else resolved
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                # "::" alone serves IPv4 too; with several addresses each keeps its own
                wildcard = host in ("::", "") and len(infos) == 1
                v6only = 0 if wildcard and dual_stack else 1
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
            sock.bind(address)
            if listen:  # (a bound socket that does not listen only holds the port)
                sock.listen(backlog)
            sock.setblocking(False)
            if port == 0 and not chosen:
                chosen = sock.getsockname()[1]
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def from_fd(fd: int) -> socket.socket:
    """An inherited listening socket; its family is detected from the fd."""
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)
    return sock


def systemd_sockets() -> list[socket.socket]:
    """Sockets passed by systemd socket activation to this process (then forgotten)."""
    try:
        if int(os.environ.get("LISTEN_PID", "0")) != os.getpid():
            return []
        count = int(os.environ.get("LISTEN_FDS", "0"))
    except ValueError:
        return []
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    return [from_fd(fd) for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count)]


def bind_all(config: Config, reuse_port: bool = False, listen: bool = True) -> list[socket.socket]:
    """The listening sockets the configuration asks for.

    ``listen=False`` (with ``reuse_port``) binds TCP sockets without listening:
    they hold the addresses (and a chosen port) for workers that bind their own.
    """
    activated = systemd_sockets()
    if activated:
        return activated
    mode = int(config.uds_perms, 8) if config.uds_perms else None
    sockets: list[socket.socket] = []
    try:
        if config.bind:
            dual_stack = len(config.bind) == 1  # "::" next to "0.0.0.0" stays IPv6-only
            for value in config.bind:
                kind, where, port = parse_bind(value)
                if kind == "unix":
                    sockets.append(bind_unix(str(where), config.backlog, mode))
                elif kind == "fd":
                    sockets.append(from_fd(int(where)))
                else:
                    sockets += bind_tcp(
                        str(where), port, config.backlog, reuse_port, dual_stack, listen
                    )
        elif config.uds:
            sockets.append(bind_unix(config.uds, config.backlog, mode))
        elif config.fd is not None:
            sockets.append(from_fd(config.fd))
        else:
            sockets += bind_tcp(config.host, config.port, config.backlog, reuse_port, listen=listen)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def unix_paths(config: Config) -> list[str]:
    """The Unix socket files this configuration creates (removed at exit)."""
    if config.bind:
        return [v[5:] for v in config.bind if v.startswith("unix:")]
    return [config.uds] if config.uds else []


def describe(sock: socket.socket, config: Config, scheme: str = "http") -> str:
    if sock.family == socket.AF_UNIX:
        return f"unix socket {sock.getsockname()}"
    host, port = sock.getsockname()[:2]
    if sock.family == socket.AF_INET6:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def rebind_reuse_port(reserved: list[socket.socket], backlog: int) -> list[socket.socket]:
    """A worker's own listening sockets on the addresses its supervisor holds."""
    sockets = []
    for held in reserved:
        sock = socket.socket(held.family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if held.family == socket.AF_INET6:
            v6only = held.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
        sock.bind(held.getsockname())
        sock.listen(backlog)
        sock.setblocking(False)
        sockets.append(sock)
    return sockets


def descriptor_cap() -> tuple[int, int] | None:
    """(connections, ulimit): how many connections this process may hold before
    ``accept()`` would fail for want of descriptors, keeping a reserve for the app.

    The reserve is a sixteenth of ``ulimit -n`` (at least 16, at most 4096);
    descriptors already open (listeners, logs, pipes) are counted. None when
    the limit is unknown or unlimited.
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return None
    try:
        used = len(os.listdir("/proc/self/fd"))
    except OSError:  # pragma: no cover - no procfs
        used = 16
    reserve = min(max(16, soft // 16), 4096)
    return max(1, soft - used - reserve), soft
