"""Gunicorn worker classes: ``gunicorn -k squall.gunicorn.SquallWorker app:app``.

Gunicorn binds, forks and supervises; each worker process runs one Squall
:class:`~squall.server.serve.Server` on the listening sockets it inherited.

Rules:

* Settings are mapped onto a :class:`~squall.config.options.Config` once, in the
  worker (:func:`config_options`; the README's "Gunicorn" section has the
  table). Gunicorn's ``0`` ("unlimited") request limits become 1 MiB;
  ``worker_connections`` applies (as ``limit_connections``) only when set.
* Shutdown: stop accepting, wait ``SETTLE`` so that just-accepted
  connections read their request, then Squall's graceful shutdown. With
  ``max_requests`` the limit is checked on the server's tick, so a worker may
  serve a few more requests than the limit before it stops.
* Health: the server's heartbeat (twice a second, and during a graceful
  shutdown for at most ``graceful_timeout``) calls ``notify()``. A worker
  whose parent changed shuts down gracefully.
* Signals: TERM stops gracefully; INT and QUIT stop quickly (in-flight
  requests are cancelled, lifespan shutdown is skipped); USR1 reopens the log
  files; WINCH is ignored; ABRT (Gunicorn's timeout) exits at once with 1.
* Exit status: 0 after a shutdown (also when ``max_requests`` is reached, so
  the arbiter starts a replacement); 3 (``WORKER_BOOT_ERROR``, which makes the
  arbiter stop) when the server never started - a bad setting, TLS files,
  lifespan startup failure - unless a signal stopped it while starting.
  Gunicorn itself imports the app; its failures end Gunicorn's way (3, or 4
  when the module loads but the app name does not resolve): the arbiter stops.
* Logs: ``squall.*`` records go to Gunicorn's error log handlers (unless a
  Gunicorn log config already gave the ``squall`` logger handlers). Squall's
  access logger is off; when Gunicorn's access log is enabled, every response
  becomes one ``self.log.access()`` record, so ``access_log_format`` and its
  atoms work. ``%(h)s`` is the peer (as Gunicorn: proxy headers do not change
  it); ``%(b)s`` counts the response body bytes (``-`` for a WebSocket
  session, logged when it ends).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import http
import logging
import os
import signal
import socket
import sys
from collections.abc import Generator, Iterable
from types import FrameType
from typing import TYPE_CHECKING, Any, ClassVar

from gunicorn.arbiter import Arbiter
from gunicorn.workers.base import Worker

from squall.config.fields import LOG_LEVEL_CHOICES, ConfigError
from squall.config.options import Config
from squall.connection.state import escape_for_log
from squall.server.serve import Server

if TYPE_CHECKING:
    from squall.asgi.http import HTTPCycle
    from squall.asgi.scope import ConnInfo
    from squall.asgi.types import Scope
    from squall.asgi.websocket import WebSocketSession
    from squall.connection.state import ServerState

UNLIMITED = 1 << 20  # what Gunicorn's 0 ("no limit") becomes, in bytes
MAX_HEADERS = 32768  # Gunicorn's ceiling for limit_request_fields (and its 0)
HEADER_SECTION = 65536  # Squall's default cap on the whole header section
BEAT = 0.5  # seconds between notify() calls while draining
SETTLE = 0.1  # seconds between no longer accepting and closing idle connections


def config_options(cfg: Any) -> dict[str, Any]:
    """Squall Config keyword arguments for a Gunicorn ``Config`` (no app, loop or parser)."""
    line = cfg.limit_request_line
    fields = cfg.limit_request_fields
    field_size = cfg.limit_request_field_size or UNLIMITED
    level = str(cfg.loglevel or "info").lower()
    protocols = getattr(cfg, "http_protocols", None) or ["h1"]
    options: dict[str, Any] = {
        "log_config": None,
        "log_level": level if level in LOG_LEVEL_CHOICES else "info",
        "access_log": False,  # the worker's access hook replaces it
        "backlog": cfg.backlog,  # asyncio listens again on the inherited sockets
        "timeout_keep_alive": cfg.keepalive,
        "timeout_graceful_shutdown": cfg.graceful_timeout,
        "proxy_headers": True,
        "forwarded_allow_ips": list(cfg.forwarded_allow_ips),
        "root_path": getattr(cfg, "root_path", "") or os.environ.get("SCRIPT_NAME", ""),
        "limit_request_line": line if line > 0 else UNLIMITED,
        "limit_request_fields": fields if 0 < fields <= MAX_HEADERS else MAX_HEADERS,
        "limit_request_field_size": field_size,
        "limit_request_header_size": max(HEADER_SECTION, field_size),
        "http2": "h2" in protocols,
        "lifespan": getattr(cfg, "asgi_lifespan", "auto"),
    }
    connections = cfg.settings["worker_connections"]
    if connections.value != connections.default:  # gthread's meaning: stop accepting beyond
        options["limit_connections"] = connections.value
    if getattr(cfg, "proxy_protocol", "off") not in ("off", False, None):
        # Squall detects v1 and v2 and has one trust list for PROXY and X-Forwarded-*
        options["proxy_protocol"] = True
        trusted = options["forwarded_allow_ips"]
        trusted += [ip for ip in cfg.proxy_allow_ips if ip not in trusted]
    if cfg.is_ssl:
        options.update(
            ssl_certfile=cfg.certfile,
            ssl_keyfile=cfg.keyfile,
            ssl_ca_certs=cfg.ca_certs,
            ssl_cert_reqs=int(cfg.cert_reqs),
            ssl_ciphers=cfg.ciphers,
        )
    return options


class SquallWorker(Worker):  # type: ignore[misc]  # gunicorn has no type hints
    """Runs Squall with uvloop and httptools where they are installed."""

    # Config options applied over the mapped settings (subclasses may add their own)
    squall_options: ClassVar[dict[str, Any]] = {"loop": "auto", "http": "auto"}

    server: Server | None = None

    # -- gunicorn's entry points

    def init_signals(self) -> None:
        for sig in self.SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, self.handle_exit)
        signal.signal(signal.SIGINT, self.handle_quit)
        signal.signal(signal.SIGQUIT, self.handle_quit)
        signal.signal(signal.SIGUSR1, self.handle_usr1)
        signal.signal(signal.SIGWINCH, self.handle_winch)
        signal.signal(signal.SIGABRT, self.handle_abort)  # gunicorn's: exit(1) at once
        signal.siginterrupt(signal.SIGTERM, False)
        signal.siginterrupt(signal.SIGUSR1, False)

    def run(self) -> None:
        self._route_logs()
        try:
            options = {**config_options(self.cfg), **self.squall_options}
            config = Config(self.wsgi, **options)
        except ConfigError as exc:
            self.log.error("squall: %s", exc)
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
        server = WorkerServer(config, self)
        if self.cfg.max_requests > 0:
            server.request_limit = self.max_requests  # gunicorn added the jitter
        self.server = server
        if not self.alive:  # a signal came while booting
            server.should_exit = True
        server.run([getattr(s, "sock", s) for s in self.sockets])
        if not server.started and self.alive:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)

    # -- signals (the handlers only set flags; the server's tick acts on them)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._stop(force=False)

    def handle_quit(self, sig: int, frame: FrameType | None) -> None:
        self._stop(force=True)
        self.cfg.worker_int(self)

    def handle_usr1(self, sig: int, frame: FrameType | None) -> None:
        state = self.server.state if self.server is not None else None
        if state is None:
            self.log.reopen_files()
        else:  # not in the middle of a log write
            state.loop.call_soon_threadsafe(self.log.reopen_files)

    def _stop(self, force: bool) -> None:
        self.alive = False
        if self.server is not None:
            self.server.should_exit = True
            self.server.force_exit = self.server.force_exit or force

    # -- called by the server

    def heartbeat(self) -> None:
        self.notify()
        if os.getppid() != self.ppid and self.alive:
            self.log.info("Parent changed, shutting down: %s", self)
            self._stop(force=False)

    def prepare(self, state: ServerState) -> None:
        """Before listening: send each response to Gunicorn's access log if it is on."""
        if not self._access_log_enabled():
            return
        state.set_access_hook(self.log_access)

    def log_access(
        self, cycle: HTTPCycle | WebSocketSession, info: ConnInfo, duration: float
    ) -> None:
        """Squall's access hook: one ``self.log.access()`` record."""
        try:
            sent = getattr(cycle, "sent", None)  # HTTP only
            headers = getattr(cycle, "headers", ())
            resp, req, environ = access_record(cycle.scope, cycle.status, headers, info, sent)
            elapsed = datetime.timedelta(seconds=max(duration, 0.0))
            self.log.access(resp, req, environ, elapsed)
        except Exception:
            self.log.exception("squall: could not write the access log record")

    # -- helpers

    def _route_logs(self) -> None:
        squall = logging.getLogger("squall")
        error_log = getattr(self.log, "error_log", None)
        if error_log is not None and not squall.handlers:
            squall.handlers = list(error_log.handlers)
            squall.propagate = False

    def _access_log_enabled(self) -> bool:
        enabled = getattr(self.log, "access_log_enabled", None)  # gunicorn >= 24
        if isinstance(enabled, bool):
            return enabled
        cfg = self.cfg
        return bool(
            cfg.accesslog
            or cfg.logconfig
            or cfg.logconfig_dict
            or getattr(cfg, "logconfig_json", None)
            or (cfg.syslog and not cfg.disable_redirect_access_to_syslog)
        )


class SquallH11Worker(SquallWorker):
    """The pure-Python variant: asyncio's loop and the h11 parser."""

    squall_options: ClassVar[dict[str, Any]] = {"loop": "asyncio", "http": "h11"}


class WorkerServer(Server):
    """A Server that leaves signals to its worker and reports to it."""

    def __init__(self, config: Config, worker: SquallWorker) -> None:
        super().__init__(config)
        self.worker = worker
        self.heartbeat = worker.heartbeat

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the worker's init_signals() installed the handlers

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        assert self.state is not None
        self.worker.prepare(self.state)
        await super().startup(sockets)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        beating = asyncio.ensure_future(self._beat(self.config.timeout_graceful_shutdown or 0.0))
        try:
            if not self.force_exit:
                # Stop accepting first (the arbiter's socket stays open for the other
                # workers), then let connections accepted a moment ago read the request
                # their client already sent: the shutdown closes connections with none.
                for srv in self.servers:
                    srv.close()
                await asyncio.sleep(SETTLE)
            await super().shutdown(sockets)
        finally:
            beating.cancel()

    async def _beat(self, limit: float) -> None:
        """Keep the arbiter from killing a worker that is draining, within the grace time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while loop.time() < deadline:
            self.worker.notify()
            await asyncio.sleep(BEAT)


class AccessResponse:
    """The response attributes Gunicorn's access log reads."""

    __slots__ = ("headers", "response_length", "sent", "status", "status_code")

    def __init__(self, status: int, headers: list[tuple[str, str]], sent: int | None) -> None:
        try:
            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        self.status = f"{status} {phrase}".rstrip()
        self.status_code = status
        self.headers = headers
        self.sent = sent
        self.response_length = sent


class AccessRequest:
    """The request attributes Gunicorn's access log reads (header names in capitals)."""

    __slots__ = ("headers", "method", "path", "query", "uri", "version")

    def __init__(
        self,
        method: str,
        uri: str,
        path: str,
        query: str,
        version: str,
        headers: list[tuple[str, str]],
    ) -> None:
        self.method = method
        self.uri = uri
        self.path = path
        self.query = query
        self.version = version
        self.headers = headers


def access_record(
    scope: Scope,
    status: int,
    response_headers: Iterable[tuple[bytes, bytes]],
    info: ConnInfo,
    sent: int | None,
) -> tuple[AccessResponse, AccessRequest, dict[str, Any]]:
    """The (resp, req, environ) triple for ``gunicorn.glogging.Logger.access``."""
    root = scope.get("root_path", "")
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
    path: str = scope["path"]
    if root:  # what the client sent, without the mount point Squall prefixed
        raw_path = raw_path.removeprefix(root.encode("utf-8"))
        path = path.removeprefix(root)
    query = escape_for_log(scope.get("query_string", b"").decode("latin-1"))
    uri = escape_for_log(raw_path.decode("latin-1")) + (f"?{query}" if query else "")
    method = scope.get("method", "GET")
    version = scope.get("http_version", "1.1")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "RAW_URI": uri,
        "PATH_INFO": escape_for_log(path),
        "QUERY_STRING": query,
        "SCRIPT_NAME": root,
        "SERVER_PROTOCOL": f"HTTP/{version}",
        "wsgi.url_scheme": scope.get("scheme", "http"),
    }
    if info.client is not None:
        environ["REMOTE_ADDR"] = info.client[0]
        environ["REMOTE_PORT"] = str(info.client[1])
    server = scope.get("server")
    if server:
        environ["SERVER_NAME"] = str(server[0])
        environ["SERVER_PORT"] = "" if server[1] is None else str(server[1])
    headers: list[tuple[str, str]] = []
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").upper()
        value = escape_for_log(raw_value.decode("latin-1"))
        headers.append((name, value))
        key = name.replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    out_headers = [
        (bytes(n).decode("latin-1"), escape_for_log(bytes(v).decode("latin-1")))
        for n, v in response_headers
    ]
    request = AccessRequest(method, uri, path, query, version, headers)
    return AccessResponse(status, out_headers, sent), request, environ


__all__ = ["SquallH11Worker", "SquallWorker", "access_record", "config_options"]
