"""What every connection of one server shares: config, app, counters, defaults."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from email.utils import formatdate
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from squall.asgi.scope import ConnInfo
from squall.middleware.proxy_headers import TrustedHosts
from squall.protocols.http1 import Limits, default_block

if TYPE_CHECKING:
    from squall.asgi.http import HTTPCycle
    from squall.asgi.types import ASGIApp, Receive, Scope, Send
    from squall.asgi.websocket import WebSocketSession
    from squall.config import Config
    from squall.protocols.http1 import HTTP1, H1Events
    from squall.transport import Connection

access_logger = logging.getLogger("squall.access")

_CTRL = {i: f"\\x{i:02x}" for i in [*range(32), 127]}


def escape_for_log(text: str) -> str:
    """Make request-derived text safe for terminals and log files (CVE-2020-7694)."""
    return text.translate(_CTRL)


class ServerState:
    """Shared by all connections of one :class:`~squall.server.Server`."""

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
        self.connections: set[Connection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.total_requests = 0
        self.shutting_down = False
        self.state: dict[str, Any] = {}
        self.root_path = config.root_path
        self.trusted_hosts = TrustedHosts(config.trusted_proxies)
        self.proxy_headers = config.proxy_headers
        self.limit_concurrency = config.limit_concurrency
        self.websockets = config.ws != "none"
        self.access_log = config.access_log and access_logger.hasHandlers()
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
        self.update_date()

    # -- per second

    def update_date(self) -> None:
        """Refresh the ``date`` default header; the main loop calls this every second."""
        date = b""
        if self.config.date_header:
            date = b"date: " + formatdate(time.time(), usegmt=True).encode() + b"\r\n"
        # updated in place: connections hold a reference to this dict
        self.default_headers.update(default_block(self._server_line, date, self._extra_lines))

    # -- per connection

    def make_http1(self, events: H1Events) -> HTTP1:
        if self._http_backend.backend == "h11":
            return self._http_backend(  # type: ignore[call-arg]
                events, self.limits, self.config.h11_max_incomplete_event_size or 0
            )
        return self._http_backend(events, self.limits)

    def conn_info(self, transport: asyncio.BaseTransport) -> ConnInfo:
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
        if not self.proxy_headers:
            trusted = False
        elif client is None:
            trusted = self.trusted_hosts.always
        else:
            trusted = client[0] in self.trusted_hosts
        return ConnInfo(client, server, scheme, trusted)

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

    def log_access(self, cycle: HTTPCycle | WebSocketSession, info: ConnInfo, now: float) -> None:
        scope = cycle.scope
        path = quote(scope["path"])
        query = scope["query_string"]
        if query:
            path = path + "?" + escape_for_log(query.decode("latin-1"))
        access_logger.info(
            '%s - "%s %s HTTP/%s" %d',
            info.client_label,
            scope.get("method", "GET"),
            path,
            scope["http_version"],
            cycle.status,
            extra={"duration": now - cycle.start_time if cycle.start_time else 0.0},
        )
