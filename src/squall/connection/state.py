"""What every connection of one server shares: config, app, counters, defaults.

Access log rule: connections call :meth:`ServerState.log_access` once per
response, only while ``access_log`` is true. It writes to the ``squall.access``
logger, or calls the hook an embedder (the Gunicorn worker) installed with
:meth:`ServerState.set_access_hook` instead.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable
from email.utils import formatdate
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias
from urllib.parse import quote

from squall.asgi.scope import ConnInfo
from squall.middleware.proxy_headers import TrustedHosts
from squall.observe.accesslog import AccessAtoms, access_fields, client_label, escape_for_log
from squall.observe.health import health_app
from squall.observe.metrics import Metrics
from squall.protocols.http1.base import default_block
from squall.protocols.http1.head import Limits
from squall.protocols.http2 import H2Limits
from squall.protocols.http2.fields import default_fields

if TYPE_CHECKING:
    from squall.asgi.http import HTTPCycle
    from squall.asgi.types import ASGIApp, Receive, Scope, Send
    from squall.asgi.websocket import WebSocketSession
    from squall.config.options import Config
    from squall.protocols.http1.base import HTTP1
    from squall.protocols.http1.head import H1Events
    from squall.protocols.proxy import ProxyInfo

access_logger = logging.getLogger("squall.access")
logger = logging.getLogger("squall.error")

# (the cycle or WebSocket session, its connection, its duration in seconds)
AccessHook: TypeAlias = Callable[["HTTPCycle | WebSocketSession", ConnInfo, float], None]


class Served(Protocol):
    """What the server's bookkeeping needs of a connection (the shell)."""

    @property
    def closing(self) -> bool: ...
    def unpark(self) -> None: ...
    def shutdown(self) -> None: ...
    def abort(self) -> None: ...
    def gauge(self) -> tuple[str, int]: ...


class ServerState:
    """Shared by all connections of one :class:`~squall.server.serve.Server`."""

    def __init__(
        self,
        config: Config,
        app: ASGIApp,
        loop: asyncio.AbstractEventLoop,
        http_backend: type[HTTP1],
    ) -> None:
        self.config = config
        self.app = app
        self.loop = loop
        self.connections: set[Served] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.total_requests = 0
        self.shutting_down = False
        self.state: dict[str, Any] = {}
        self.root_path = config.root_path
        self.trusted_hosts = TrustedHosts(config.trusted_proxies)
        self.proxy_headers = config.proxy_headers
        self.limit_concurrency = config.limit_concurrency
        self.limit_request_body = config.limit_request_body
        self.max_requests_per_connection = config.max_requests_per_connection
        # any of the optional admission rules (squall.connection.admit)
        self.request_checks = bool(config.health_path) or (
            config.limit_concurrency is not None or config.limit_request_body is not None
        )
        self.limit_connections = config.limit_connections  # or lower: see descriptor_cap
        self.limit_name = "--limit-connections"
        # set by the Server when --limit-connections is given: stop/start accepting
        self.pause_accepting: Callable[[], None] | None = None
        self.resume_accepting: Callable[[], None] | None = None
        self._accepting = True
        self._parked: deque[Served] = deque()  # accepted over the limit, not yet served
        self.websockets = config.ws != "none"
        self.access_log = config.access_log and access_logger.hasHandlers()
        self.access_hook: AccessHook | None = None  # replaces the logger when set
        self.access_format = config.access_log_format  # Gunicorn atoms, or None
        self.metrics = Metrics() if config.metrics else None
        self.health_path = config.health_path.encode() if config.health_path else None
        self.health = health_app(self)
        # start times are taken only when something reads them
        self.timed = self.access_log or self.metrics is not None
        self.json_logs = config.log_format == "json"
        self.limits = Limits(
            request_line=config.limit_request_line,
            fields=config.limit_request_fields,
            field_size=config.limit_request_field_size,
            header_size=config.limit_request_header_size,
        )
        self._http_backend = http_backend
        extra = b"".join(
            b"%s: %s\r\n" % (n.encode("latin-1"), v.encode("latin-1"))
            for n, v in config.headers
            if n not in ("server", "date")
        )
        server_value = next((v for n, v in config.headers if n == "server"), None)
        if server_value is not None:
            server_line = b"server: %s\r\n" % server_value.encode("latin-1")
        else:
            server_line = b"server: squall\r\n" if config.server_header else b""
        self._server_line = server_line
        self._extra_lines = extra
        self.default_headers: dict[int, bytes] = {}
        # the same defaults for HTTP/2, HPACK-encoded
        self.http2 = config.http2
        self.h2_limits = H2Limits(
            max_concurrent_streams=config.h2_max_concurrent_streams,
            max_header_list_size=config.h2_max_header_list_size,
            initial_window=config.h2_initial_window_size,
            max_continuation=config.h2_max_continuation_frames,
            header_fields=config.limit_request_fields,
            connect_protocol=self.websockets,
        )
        if server_value is not None:
            self._h2_server: bytes | None = server_value.encode("latin-1")
        else:
            self._h2_server = b"squall" if config.server_header else None
        self._h2_extra = [
            (n.encode("latin-1"), v.encode("latin-1"))
            for n, v in config.headers
            if n not in ("server", "date")
        ]
        self.h2_defaults: dict[int, bytes] = {}
        self._tls_server_cert: str | None = None
        self._cipher_ids: dict[str, int] = {}
        self.update_date()

    # -- per second

    def update_date(self) -> None:
        """Refresh the ``date`` default header; the main loop calls this every second."""
        date = b""
        value = None
        if self.config.date_header:
            value = formatdate(time.time(), usegmt=True).encode()
            date = b"date: " + value + b"\r\n"
        # updated in place: connections hold a reference to this dict
        self.default_headers.update(default_block(self._server_line, date, self._extra_lines))
        self.h2_defaults.update(default_fields(self._h2_server, value, self._h2_extra))

    # -- per connection

    def make_http1(self, events: H1Events) -> HTTP1:
        if self._http_backend.backend == "h11":
            return self._http_backend(  # type: ignore[call-arg]
                events, self.limits, self.config.h11_max_incomplete_event_size or 0
            )
        return self._http_backend(events, self.limits)

    def conn_info(
        self, transport: asyncio.BaseTransport, proxied: ProxyInfo | None = None
    ) -> ConnInfo:
        sock = transport.get_extra_info("socket")
        scheme = "https" if transport.get_extra_info("sslcontext") else "http"
        client: tuple[str, int] | None = None
        server: tuple[str, int | None] | None = None
        if sock is not None and sock.family == socket.AF_UNIX:
            name = transport.get_extra_info("sockname")
            server = (name if isinstance(name, str) else "", None)
        else:
            peer = transport.get_extra_info("peername")
            if peer:
                client = (str(peer[0]), int(peer[1]))
            name = transport.get_extra_info("sockname")
            if name:
                server = (str(name[0]), int(name[1]))
        if proxied is not None:  # a PROXY protocol header from a trusted peer
            if proxied.client is not None:
                client = proxied.client
            if proxied.server is not None:
                server = proxied.server
        if not self.proxy_headers:
            trusted = False
        elif client is None:
            trusted = self.trusted_hosts.always
        else:
            trusted = client[0] in self.trusted_hosts
        if scheme == "http":
            return ConnInfo(client, server, scheme, trusted)
        ssl_object = transport.get_extra_info("ssl_object")
        alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        return ConnInfo(client, server, scheme, trusted, alpn, self._tls_info(ssl_object))

    def _tls_info(self, ssl_object: ssl.SSLObject | None) -> dict[str, Any] | None:
        """The ASGI ``tls`` extension for a TLS connection."""
        if ssl_object is None:
            return None
        if self._tls_server_cert is None:
            self._tls_server_cert = _first_pem(self.config.ssl_certfile)
            self._cipher_ids = {
                c["name"]: c["id"] & 0xFFFF for c in ssl_object.context.get_ciphers()
            }
        chain: list[str] = []
        name = None
        der = ssl_object.getpeercert(binary_form=True)
        if der:
            chain.append(ssl.DER_cert_to_PEM_cert(der))
            name = _rfc4514(ssl_object.getpeercert() or {})
        cipher = ssl_object.cipher()
        return {
            "server_cert": self._tls_server_cert or None,
            "client_cert_chain": chain,
            "client_cert_name": name,
            "client_cert_error": None,
            "tls_version": _TLS_VERSIONS.get(ssl_object.version() or ""),
            "cipher_suite": self._cipher_ids.get(cipher[0]) if cipher else None,
        }

    def connection_opened(self, conn: Served) -> bool:
        """--limit-connections: at the limit, stop accepting (the backlog holds the rest).

        False: ``conn`` is over the limit (a loop may accept several at once) and
        is parked, not read, until a connection closes."""
        limit = self.limit_connections
        if limit is None:
            return True
        if len(self.connections) >= limit:
            self._parked.append(conn)
            return False
        if self._accepting and len(self.connections) + 1 >= limit:
            self._accepting = False
            logger.warning(
                "Reached %s: %d connections; not accepting for now", self.limit_name, limit
            )
            if self.pause_accepting is not None:
                self.pause_accepting()
        return True

    def close_parked(self) -> None:
        """Shutdown: connections still waiting for a slot are closed unserved."""
        while self._parked:
            self._parked.popleft().shutdown()

    def connection_closed(self, conn: Served) -> None:
        limit = self.limit_connections
        if limit is None:
            return
        if conn in self._parked:
            self._parked.remove(conn)
            return
        while self._parked:
            parked = self._parked.popleft()
            if not parked.closing:
                parked.unpark()
                return
        if not self._accepting and len(self.connections) < limit:
            self._accepting = True
            if self.resume_accepting is not None:
                self.resume_accepting()

    def gauges(self) -> list[tuple[str, int]]:
        """For the metrics: each open connection's protocol and its WebSocket sessions."""
        return [conn.gauge() for conn in self.connections]

    # -- per request

    def over_capacity(self) -> bool:
        limit = self.config.limit_concurrency
        return limit is not None and (len(self.connections) > limit or len(self.tasks) >= limit)

    def refusal(self, status: int, message: str) -> ASGIApp:
        body = message.encode()

        async def refuse(scope: Scope, receive: Receive, send: Send) -> None:
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"connection", b"close"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})

        return refuse

    def response_done(
        self, cycle: HTTPCycle | WebSocketSession, info: ConnInfo, protocol: str
    ) -> None:
        """A response (or WebSocket session) ended: metrics, then the access log."""
        metrics = self.metrics
        if metrics is not None:
            duration = time.perf_counter() - cycle.start_time if cycle.start_time else 0.0
            metrics.observe(protocol, cycle.status, duration, getattr(cycle, "sent", 0))
        if self.access_log:
            self.log_access(cycle, info, 0.0)

    def set_access_hook(self, hook: AccessHook) -> None:
        """Send every response to ``hook`` instead of the ``squall.access`` logger."""
        self.access_hook = hook
        self.access_log = True
        self.timed = True

    def log_access(self, cycle: HTTPCycle | WebSocketSession, info: ConnInfo, now: float) -> None:
        # start_time is from perf_counter (the loop's clock has millisecond steps)
        duration = time.perf_counter() - cycle.start_time if cycle.start_time else 0.0
        if self.access_hook is not None:
            self.access_hook(cycle, info, duration)
            return
        scope = cycle.scope
        extra: dict[str, Any] = {"duration": duration}
        if self.access_format is not None:
            extra["access_line"] = self.access_format % AccessAtoms(cycle, info, duration)
        if self.json_logs:
            extra["access"] = access_fields(cycle, info, duration)
        path = quote(scope["path"])
        query = scope["query_string"]
        if query:
            path = path + "?" + escape_for_log(query.decode("latin-1"))
        access_logger.info(
            '%s - "%s %s HTTP/%s" %d',
            client_label(scope, info),
            scope.get("method", "GET"),
            path,
            scope["http_version"],
            cycle.status,
            extra=extra,
        )


_TLS_VERSIONS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
_RDN_KEYS = {
    "commonName": "CN",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
}


def _first_pem(path: str | None) -> str:
    """The first certificate of a PEM file ("" if there is none)."""
    if not path:
        return ""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            text = f.read()
    except OSError:
        return ""
    end_marker = "-----END CERTIFICATE-----"
    start = text.find("-----BEGIN CERTIFICATE-----")
    end = text.find(end_marker, start)
    if start < 0 or end < 0:
        return ""
    return text[start : end + len(end_marker)] + "\n"


def _escape_rdn(value: str) -> str:
    escaped = "".join("\\" + ch if ch in ',+"\\<>;' else ch for ch in value)
    if escaped[:1] in ("#", " "):
        escaped = "\\" + escaped
    if escaped.endswith(" "):
        escaped = escaped[:-1] + "\\ "
    return escaped


def _rfc4514(cert: Any) -> str | None:
    """A certificate's subject as an RFC 4514 string (most specific RDN first)."""
    subject = cert.get("subject")
    if not subject:
        return None
    rdns = []
    for rdn in reversed(subject):
        rdns.append(
            "+".join(f"{_RDN_KEYS.get(key, key)}={_escape_rdn(value)}" for key, value in rdn)
        )
    return ",".join(rdns)


__all__ = ["AccessHook", "ServerState", "escape_for_log"]
