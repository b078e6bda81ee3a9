"""Squall's configuration: one frozen dataclass.

Every option is declared once, as a field with an :func:`option` record in its
metadata. The command line (``cli.py``), the ``SQUALL_*`` environment variables
and the option table in docs/options.md are all generated from these fields.

Validation happens here, with no I/O: a bad value raises :class:`ConfigError`
naming the option. Loading the app, building an SSL context and choosing
backends happen later, in ``loading.py``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from squall.config.addresses import parse_bind
from squall.config.fields import (
    HTTP_CHOICES,
    INTERFACE_CHOICES,
    LIFESPAN_CHOICES,
    LOG_LEVEL_CHOICES,
    LOOP_CHOICES,
    WS_CHOICES,
    ConfigError,
    Option,
    check_choice,
    check_min,
    check_type,
    flag_name,
    option,
    parse_header,
)
from squall.observe.logs import LOGGING_CONFIG


@dataclass(frozen=True)
class Config:
    """All of Squall's settings. Keyword names match Uvicorn's ``Config``."""

    app: Any = None

    # -- socket binding
    host: str = option("127.0.0.1", "Bind socket to this host.", "socket")
    port: int = option(8000, "Bind socket to this port. 0 picks a free port.", "socket")
    uds: str | None = option(None, "Bind to a Unix domain socket.", "socket", metavar="PATH")
    fd: int | None = option(None, "Bind to a socket from this file descriptor.", "socket")
    bind: list[str] = option(
        [],
        "Listen on HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N (repeatable; "
        "replaces --host/--port/--uds/--fd).",
        "socket",
        multiple=True,
        metavar="ADDRESS",
    )
    uds_perms: str | None = option(
        None, "Permissions of the --uds socket file, in octal (e.g. 660).", "socket", metavar="MODE"
    )
    reuse_port: bool = option(
        False,
        "With --workers, each worker binds its own socket with SO_REUSEPORT "
        "(the kernel balances connections) instead of sharing one.",
        "socket",
        negatable=False,
    )
    backlog: int = option(2048, "Maximum number of connections to hold in backlog.", "socket")

    # -- implementation
    loop: str = option("auto", "Event loop implementation.", "impl", choices=LOOP_CHOICES)
    http: str = option("auto", "HTTP/1.1 parser implementation.", "impl", choices=HTTP_CHOICES)
    ws: str = option("auto", "WebSocket implementation.", "impl", choices=WS_CHOICES)
    http2: bool = option(
        True,
        "Serve HTTP/2: ALPN h2 over TLS; prior knowledge and Upgrade: h2c on cleartext.",
        "impl",
    )
    interface: str = option(
        "auto",
        "Select ASGI3 or ASGI2 as the application interface.",
        "app",
        choices=INTERFACE_CHOICES,
    )
    lifespan: str = option("auto", "Lifespan implementation.", "app", choices=LIFESPAN_CHOICES)
    factory: bool = option(
        False,
        "Treat APP as an application factory, i.e. a () -> <ASGI app> callable.",
        "app",
        negatable=False,
    )
    app_dir: str | None = option(
        None,
        "Look for APP in the specified directory by adding it to the PYTHONPATH "
        "(the command line's default is the current directory).",
        "app",
        metavar="DIR",
    )
    env_file: str | None = option(None, "Environment configuration file.", "app", metavar="PATH")

    # -- processes
    workers: int | None = option(
        None,
        "Number of worker processes. Defaults to $WEB_CONCURRENCY or 1.",
        "process",
        env="WEB_CONCURRENCY",
    )
    reload: bool = option(
        False,
        "Enable auto-reload: restart the worker when files change (watchfiles, else polling).",
        "process",
        negatable=False,
    )

    # -- logging
    log_config: Any = option(
        LOGGING_CONFIG,
        "Logging configuration file (.json, .yaml or .ini).",
        "logging",
        metavar="PATH",
    )
    log_level: str | int | None = option(
        None,
        "Log level. [default: info]",
        "logging",
        choices=LOG_LEVEL_CHOICES,
    )
    access_log: bool = option(True, "Enable or disable the access log.", "logging")
    access_log_format: str | None = option(
        None,
        "Access-log line in Gunicorn's atoms, e.g. '%(h)s \"%(r)s\" %(s)s %(b)s %(D)s' "
        "(see docs/logging-metrics.md). Default: Uvicorn's line.",
        "logging",
        metavar="FORMAT",
    )
    log_format: str = option(
        "text",
        "Log output: text lines, or JSON lines (one object per record, access and error logs).",
        "logging",
        choices=("text", "json"),
    )
    use_colors: bool | None = option(None, "Enable or disable colorized logging.", "logging")

    # -- HTTP behaviour
    root_path: str = option(
        "",
        "Set the ASGI 'root_path' for applications submounted below a given URL path.",
        "http",
        metavar="PATH",
    )
    proxy_headers: bool = option(
        True,
        "Use X-Forwarded-Proto and X-Forwarded-For to set the scheme and client address "
        "when the peer is in --forwarded-allow-ips.",
        "http",
    )
    forwarded_allow_ips: str | list[str] | None = option(
        None,
        "Comma-separated IPs, CIDR networks or '*' to trust with proxy headers. "
        "Defaults to $FORWARDED_ALLOW_IPS or '127.0.0.1,::1'.",
        "http",
        metavar="IPS",
        env="FORWARDED_ALLOW_IPS",
    )
    server_header: bool = option(True, "Send a 'server: squall' header.", "http")
    date_header: bool = option(True, "Send a 'date' header.", "http")
    headers: list[Any] = option(
        [],
        "Extra default response header, as NAME:VALUE (repeatable).",
        "http",
        multiple=True,
        flag="header",
        metavar="NAME:VALUE",
    )

    # -- limits and timeouts
    limit_concurrency: int | None = option(
        None,
        "Maximum number of concurrent connections or tasks before answering 503.",
        "limits",
    )
    limit_max_requests: int | None = option(
        None,
        "Maximum number of requests to serve before exiting.",
        "limits",
    )
    limit_request_line: int = option(
        8192,
        "Longest request line in bytes; longer gets 414.",
        "limits",
    )
    limit_request_fields: int = option(
        100,
        "Most header fields in a request; more gets 431.",
        "limits",
    )
    limit_request_field_size: int = option(
        16384,
        "Largest single header field (name and value) in bytes; larger gets 431.",
        "limits",
    )
    limit_request_header_size: int = option(
        65536,
        "Largest header section in bytes; larger gets 431.",
        "limits",
    )
    h2_max_concurrent_streams: int = option(
        100,
        "HTTP/2: most streams a client may have open at once (more are refused).",
        "limits",
    )
    h2_max_header_list_size: int = option(
        65536,
        "HTTP/2: largest decoded header list in bytes (RFC 9113 counting); larger gets 431.",
        "limits",
    )
    h2_initial_window_size: int = option(
        1048576,
        "HTTP/2: flow-control window, per stream and per connection, for request bodies.",
        "limits",
    )
    h2_max_continuation_frames: int = option(
        32,
        "HTTP/2: most CONTINUATION frames in one header block (more is ENHANCE_YOUR_CALM).",
        "limits",
    )
    metrics: str | None = option(
        None,
        "Serve Prometheus metrics on this HOST:PORT (its own listener; with --workers, "
        "the supervisor serves the sum). Default: off.",
        "http",
        metavar="ADDRESS",
    )
    health_path: str | None = option(
        None,
        "Answer this path (e.g. /healthz) in the server itself, not the app: 200, "
        "or 503 during a graceful shutdown.",
        "http",
        metavar="PATH",
    )
    proxy_protocol: bool = option(
        False,
        "Read a HAProxy PROXY protocol header (v1 or v2) at the start of each connection "
        "from peers in --forwarded-allow-ips; its addresses replace the socket's.",
        "http",
        negatable=False,
    )
    limit_request_body: int | None = option(
        None,
        "Largest request body in bytes; larger gets 413 before the app reads past it "
        "(also for chunked and HTTP/2 bodies). Default: no limit.",
        "limits",
    )
    limit_connections: int | None = option(
        None,
        "Most open connections; beyond it the server stops accepting until one closes "
        "(new connections wait in the listen backlog).",
        "limits",
    )
    max_requests_per_connection: int | None = option(
        None,
        "Close a keep-alive connection after this many requests (HTTP/2: GOAWAY).",
        "limits",
    )
    timeout_request_header: float = option(
        30,
        "A request head must be complete within this many seconds of its first byte "
        "(the slowloris defence; idle connections get --timeout-keep-alive).",
        "limits",
    )
    timeout_request_body: float = option(
        60,
        "A request body that stalls this many seconds while the app reads it gets 408 "
        "(HTTP/2: on its stream; the connection lives on).",
        "limits",
    )
    timeout_write: float = option(
        60,
        "Drop a connection whose client has not read for this many seconds "
        "(HTTP/2: reset a stream given no flow-control window for as long).",
        "limits",
    )
    timeout_keep_alive: float = option(
        5,
        "Close a connection that sends no request for this many seconds "
        "(also before its first request).",
        "limits",
    )
    timeout_graceful_shutdown: float | None = option(
        None,
        "Maximum number of seconds to wait for in-flight requests on shutdown.",
        "limits",
    )
    h11_max_incomplete_event_size: int | None = option(
        None,
        "For the h11 parser: the largest request head it buffers "
        "(default: --limit-request-header-size).",
        "limits",
    )

    # -- TLS
    ssl_keyfile: str | None = option(None, "SSL key file.", "tls", metavar="PATH")
    ssl_certfile: str | None = option(None, "SSL certificate file.", "tls", metavar="PATH")
    ssl_keyfile_password: str | None = option(None, "SSL keyfile password.", "tls")
    ssl_version: int = option(
        17, "SSL version to use (see stdlib ssl module's); TLS 1.2 is the minimum.", "tls"
    )
    ssl_cert_reqs: int = option(
        0, "Whether a client certificate is required (0 none, 1 optional, 2 required).", "tls"
    )
    ssl_ca_certs: str | None = option(
        None, "CA certificates file, to verify client certificates.", "tls", metavar="PATH"
    )
    ssl_ciphers: str | None = option(None, "Ciphers to use (OpenSSL syntax).", "tls")
    timeout_tls_handshake: float = option(
        10, "Close a connection whose TLS handshake takes longer than this.", "tls"
    )

    reload_dirs: list[str] = option(
        [],
        "Directories to watch for --reload (repeatable).",
        "process",
        multiple=True,
        flag="reload_dir",
    )
    reload_includes: list[str] = option(
        [],
        "Glob of files to watch for --reload.",
        "process",
        multiple=True,
        flag="reload_include",
    )
    reload_excludes: list[str] = option(
        [],
        "Glob of files to ignore for --reload.",
        "process",
        multiple=True,
        flag="reload_exclude",
    )
    reload_delay: float = option(0.25, "Delay between checks for --reload.", "process")
    timeout_worker_healthcheck: float = option(
        5,
        "Seconds without a heartbeat after which a worker is killed and replaced.",
        "process",
    )
    limit_max_requests_jitter: int = option(
        0, "Random extra requests (0 to this) added to --limit-max-requests per worker.", "process"
    )
    ws_max_size: int = option(
        16777216, "WebSocket max message size in bytes (counted after decompression).", "websocket"
    )
    ws_max_queue: int = option(
        32, "Incoming WebSocket messages queued before reading pauses.", "websocket"
    )
    ws_ping_interval: float | None = option(
        20.0, "Seconds between keepalive pings; none to disable.", "websocket"
    )
    ws_ping_timeout: float | None = option(
        20.0, "Seconds to wait for a pong before closing with 1011.", "websocket"
    )
    ws_per_message_deflate: bool = option(
        True,
        "WebSocket per-message-deflate compression (true or false).",
        "websocket",
        bool_value=True,
    )

    # -- programmatic only
    callback_notify: Callable[[], Any] | None = option(None, "", cli=False)
    timeout_notify: float = option(30, "", cli=False)

    def __post_init__(self) -> None:
        _validate(self)

    # -- derived values
    @property
    def trusted_proxies(self) -> list[str]:
        raw = self.forwarded_allow_ips
        if isinstance(raw, str):
            raw = raw.split(",")
        return [part.strip() for part in raw or () if part.strip()]

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)


def options() -> list[tuple[dataclasses.Field[Any], Option]]:
    """The user-visible fields, in declaration order."""
    out = []
    for f in dataclasses.fields(Config):
        meta = f.metadata.get("squall")
        if meta is not None:
            out.append((f, meta))
    return out


def _set(cfg: Config, name: str, value: Any) -> None:
    object.__setattr__(cfg, name, value)


def _validate(cfg: Config) -> None:
    # legacy environment defaults, as Uvicorn reads them inside Config
    if cfg.workers is None and os.environ.get("WEB_CONCURRENCY"):
        try:
            _set(cfg, "workers", int(os.environ["WEB_CONCURRENCY"]))
        except ValueError:
            raise ConfigError("WEB_CONCURRENCY: must be an integer") from None
    if cfg.forwarded_allow_ips is None:
        _set(cfg, "forwarded_allow_ips", os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1"))

    for f, meta in options():
        value = getattr(cfg, f.name)
        check_type(f, value)
        default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
        if meta.unavailable and value not in (None, False, default):
            raise ConfigError(f"{flag_name(f, meta)} {meta.unavailable}")
        if meta.choices and isinstance(value, str):
            check_choice(f.name, value.lower() if f.name == "log_level" else value, meta.choices)
    if isinstance(cfg.log_level, str):
        _set(cfg, "log_level", cfg.log_level.lower())
    if not 0 <= cfg.port <= 65535:
        raise ConfigError(f"--port: must be between 0 and 65535, got {cfg.port}")
    if cfg.ws == "wsproto":
        raise ConfigError(
            "--ws wsproto: Squall's WebSocket support is built on websockets; use --ws auto"
        )
    check_min("workers", cfg.workers, 1)
    check_min("limit_max_requests_jitter", cfg.limit_max_requests_jitter, 0)
    check_min("reload_delay", cfg.reload_delay, 0)
    check_min("timeout_worker_healthcheck", cfg.timeout_worker_healthcheck, 1)
    if cfg.uds_perms is not None:
        try:
            mode = int(cfg.uds_perms, 8)
        except ValueError:
            mode = -1
        if not 0 <= mode <= 0o777:
            raise ConfigError(
                f"--uds-perms: expected an octal mode like 660, got {cfg.uds_perms!r}"
            )
    if cfg.metrics is not None:
        try:
            kind, _, _ = parse_bind(cfg.metrics)
        except ValueError as exc:
            raise ConfigError(f"--metrics: {exc}") from None
        if kind != "tcp":
            raise ConfigError(f"--metrics: expected HOST:PORT, got {cfg.metrics!r}")
    if cfg.health_path is not None and not cfg.health_path.startswith("/"):
        raise ConfigError(f"--health-path: must start with '/', got {cfg.health_path!r}")
    for value in cfg.bind:
        try:
            parse_bind(value)
        except ValueError as exc:
            raise ConfigError(f"--bind: {exc}") from None
    for name in (
        "backlog",
        "limit_request_line",
        "limit_request_fields",
        "limit_request_field_size",
        "limit_request_header_size",
    ):
        check_min(name, getattr(cfg, name), 1)
    for name in (
        "limit_concurrency",
        "limit_max_requests",
        "h11_max_incomplete_event_size",
        "limit_connections",
        "max_requests_per_connection",
    ):
        check_min(name, getattr(cfg, name), 1)
    for name in ("h2_max_concurrent_streams", "h2_max_header_list_size"):
        check_min(name, getattr(cfg, name), 1)
    check_min("h2_max_continuation_frames", cfg.h2_max_continuation_frames, 0)
    check_min("limit_request_body", cfg.limit_request_body, 0)
    if not 65535 <= cfg.h2_initial_window_size <= 2**31 - 1:
        raise ConfigError(
            "--h2-initial-window-size: must be between 65535 and 2147483647, "
            f"got {cfg.h2_initial_window_size}"
        )
    if cfg.ssl_keyfile and not cfg.ssl_certfile:
        raise ConfigError("--ssl-keyfile: needs --ssl-certfile too")
    if cfg.ssl_cert_reqs not in (0, 1, 2):
        raise ConfigError(f"--ssl-cert-reqs: must be 0, 1 or 2, got {cfg.ssl_cert_reqs}")
    for name in (
        "timeout_keep_alive",
        "timeout_graceful_shutdown",
        "timeout_tls_handshake",
        "timeout_request_header",
        "timeout_request_body",
        "timeout_write",
    ):
        check_min(name, getattr(cfg, name), 0)
    _set(cfg, "headers", [parse_header(h) for h in cfg.headers])
    if cfg.root_path and not cfg.root_path.startswith("/"):
        raise ConfigError(f"--root-path: must start with '/', got {cfg.root_path!r}")
    if cfg.root_path.endswith("/"):
        _set(cfg, "root_path", cfg.root_path.rstrip("/"))
