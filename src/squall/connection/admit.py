"""The one admission path: a parsed request head, from any protocol, becomes a
started ASGI cycle or session, or a refusal.

Every handler (HTTP/1.1 requests and upgrades, HTTP/2 streams and extended
CONNECT) calls these functions; none builds a scope or picks an app itself.

HTTP requests (:func:`admit_http`), in this order:

1. the scope; a target that cannot be one (e.g. a bad ``:path`` on HTTP/2,
   which no parser checked) is refused with 400;
2. proxy headers, when the peer is a trusted proxy;
3. the health path (``--health-path``) is answered by the server;
4. over ``--limit-concurrency``: 503;
5. a declared body over ``--limit-request-body``: 413.

WebSocket handshakes (:func:`admit_websocket`): the handshake checks of RFC
6455 (or RFC 8441 on HTTP/2), the scope, proxy headers; a refusal carries the
status and headers to answer.

Apps run in their own task (:func:`start`), tracked in the server's task set
until they return, whatever task factory the loop has.
"""

from __future__ import annotations

import logging
from time import perf_counter
from typing import TYPE_CHECKING

from squall.asgi.scope import http_scope, websocket_scope
from squall.asgi.websocket import WebSocketSession
from squall.middleware.proxy_headers import apply_proxy_headers
from squall.protocols.http1.head import ParseError
from squall.protocols.websocket.handshake import HandshakeError, check_handshake

if TYPE_CHECKING:
    import asyncio

    from squall.asgi.http import HTTPCycle
    from squall.asgi.scope import ConnInfo
    from squall.asgi.types import ASGIApp, Scope
    from squall.asgi.websocket import WebSocketSink
    from squall.connection.state import ServerState
    from squall.protocols.http1.head import RequestHead
    from squall.protocols.websocket.handshake import Handshake

logger = logging.getLogger("squall.error")


def admit_http(server: ServerState, info: ConnInfo, head: RequestHead) -> tuple[Scope, ASGIApp]:
    """The scope of an HTTP request and the app that answers it.

    A refusal is an app too (it answers with ``connection: close``); the caller
    learns of it from ``head.keep_alive``, which is then false.
    """
    try:
        scope = http_scope(head, info, server.root_path, server.state)
    except ParseError as exc:
        logger.info("%s - %s: %d", info.client_label, exc.reason, exc.status)
        head.keep_alive = False
        head.target = b"/"
        return http_scope(head, info, server.root_path, server.state), server.refusal(
            exc.status, exc.reason
        )
    if info.trusted and head.forwarded:
        apply_proxy_headers(scope, server.trusted_hosts)
    if not server.request_checks:
        return scope, server.app
    if server.health_path is not None and head.target == server.health_path:
        return scope, server.health
    if server.limit_concurrency is not None and server.over_capacity():
        logger.warning("Exceeded concurrency limit.")
        head.keep_alive = False
        return scope, server.refusal(503, "Service Unavailable")
    limit = server.limit_request_body
    if limit is not None and head.content_length > limit:
        logger.info("%s - Request body too large: 413", info.client_label)
        head.keep_alive = False
        return scope, server.refusal(413, "Request Entity Too Large")
    return scope, server.app


def admit_websocket(
    server: ServerState, info: ConnInfo, head: RequestHead, http2: bool = False
) -> tuple[Scope, Handshake]:
    """The scope and handshake of a WebSocket request; raises
    :class:`~squall.protocols.websocket.handshake.HandshakeError` with the answer."""
    deflate = server.config.ws_per_message_deflate
    handshake = check_handshake(head.method, head.headers, deflate, http2=http2)
    try:
        scope = websocket_scope(head, info, server.root_path, server.state, handshake.subprotocols)
    except ParseError as bad:
        logger.info("%s - %s: %d", info.client_label, bad.reason, bad.status)
        raise HandshakeError(bad.status, bad.reason, []) from None
    if http2:
        scope["http_version"] = "2"
    if info.trusted and head.forwarded:
        apply_proxy_headers(scope, server.trusted_hosts)
    return scope, handshake


def websocket_session(
    server: ServerState, scope: Scope, sink: WebSocketSink, handshake: Handshake
) -> WebSocketSession:
    config = server.config
    return WebSocketSession(
        scope,
        sink,
        handshake,
        max_size=config.ws_max_size,
        max_queue=config.ws_max_queue,
        ping_interval=config.ws_ping_interval,
        ping_timeout=config.ws_ping_timeout,
    )


def start(server: ServerState, cycle: HTTPCycle, app: ASGIApp) -> asyncio.Task[None]:
    """Run an app's cycle in a task of its own (its own contextvars copy), which the
    server tracks until it is done.

    The cycle removes its task from the set when it ends (:meth:`HTTPCycle.run
    <squall.asgi.http.HTTPCycle.run>`); a task that an eager task factory ran
    to its end inside ``create_task`` is never added.
    """
    if server.timed:
        cycle.start_time = perf_counter()
    tasks = server.tasks
    task = cycle.task = server.loop.create_task(cycle.run(app, tasks))
    if not task.done():
        tasks.add(task)
    return task


def start_session(server: ServerState, session: WebSocketSession) -> asyncio.Task[None]:
    """Run a WebSocket session in a task the server tracks until it is done."""
    if server.timed:
        session.start_time = perf_counter()
    task = server.loop.create_task(session.run(server.app))
    if not task.done():
        server.tasks.add(task)
        task.add_done_callback(server.tasks.discard)
    return task
