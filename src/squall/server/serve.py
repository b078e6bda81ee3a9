"""The Server: bind, accept, watch the clock, and shut down gracefully.

Lifecycle: ``serve()`` loads the app, runs lifespan startup, starts
listening, then ticks every 0.1 s (date header, notify callback, request
limit, ``should_exit``) until told to stop. Shutdown stops listening, closes
idle connections, lets in-flight responses finish within
``timeout_graceful_shutdown``, then cancels what is left and runs lifespan
shutdown. A second SIGINT (``force_exit``) skips the waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
import random
import signal
import socket
import ssl
import sys
import threading
from collections.abc import Callable, Generator
from types import FrameType
from typing import Any

from squall._version import __version__
from squall.asgi.lifespan import Lifespan
from squall.config.addresses import parse_bind
from squall.config.options import Config
from squall.connection.state import ServerState
from squall.connection.transport import Connection
from squall.loading import (
    STARTUP_FAILURE,
    LoadError,
    http_backend,
    load_app,
    load_env_file,
    loop_factory,
    loop_name,
    ssl_context,
)
from squall.observe.logs import configure_logging
from squall.observe.metrics import MetricsProtocol, http_answer, render
from squall.server.listen import AcceptLoop
from squall.server.sockets import bind_all, describe, descriptor_cap, unix_paths

logger = logging.getLogger("squall.error")

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)
TICK = 0.1


class Server:
    """One server process. Attribute names follow Uvicorn's ``Server``."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.started = False
        self.should_exit = False
        self.force_exit = False
        self.servers: list[asyncio.AbstractServer] = []
        self.state: ServerState | None = None
        self.lifespan: Lifespan | None = None
        self.last_notified = 0.0
        self._captured: list[int] = []
        self._ssl: ssl.SSLContext | None = None
        # called once when serving, then every second (a worker's health signal)
        self.heartbeat: Callable[[], None] | None = None
        self._own_sockets = False
        self._listen: list[socket.socket] = []  # the bound sockets, with --limit-connections
        self.request_limit = config.limit_max_requests
        if self.request_limit is not None and config.limit_max_requests_jitter:
            self.request_limit += random.randint(0, config.limit_max_requests_jitter)

    # -- entry points

    def run(self, sockets: list[socket.socket] | None = None) -> None:
        factory = loop_factory(self.config)
        if factory is None:
            asyncio.run(self.serve(sockets))
            return
        loop = factory()
        try:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self.serve(sockets))
        finally:
            with contextlib.suppress(Exception):
                _cancel_all(loop)
                loop.run_until_complete(loop.shutdown_asyncgens())
            asyncio.set_event_loop(None)
            loop.close()

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        with self.capture_signals():
            await self._serve(sockets)

    async def _serve(self, sockets: list[socket.socket] | None) -> None:
        config = self.config
        try:
            configure_logging(
                config.log_config,
                config.log_level,
                config.access_log,
                config.use_colors,
                config.log_format,
            )
        except ImportError:
            print(
                "squall: error: --log-config: YAML files need PyYAML (pip install pyyaml)",
                file=sys.stderr,
            )
            raise SystemExit(STARTUP_FAILURE) from None
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            print(f"squall: error: --log-config: {exc}", file=sys.stderr)
            raise SystemExit(STARTUP_FAILURE) from None
        loop = asyncio.get_running_loop()
        try:
            if config.env_file:
                load_env_file(config.env_file)
            app = load_app(config)
            backend = http_backend(config)
            self._ssl = ssl_context(config)
        except LoadError as exc:
            logger.error("%s", exc)
            raise SystemExit(STARTUP_FAILURE) from None
        self.state = ServerState(config, app, loop, backend)
        logger.info("Started server process [%d]", os.getpid())
        await self.startup(sockets)
        if self.should_exit:
            return
        await self.main_loop()
        await self.shutdown()
        logger.info("Finished server process [%d]", os.getpid())

    # -- phases

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        config = self.config
        state = self.state
        assert state is not None
        self.lifespan = Lifespan(state.app, config.lifespan, state.state)
        # Unlike Uvicorn, a signal during a hanging startup is obeyed.
        starting = asyncio.ensure_future(self.lifespan.startup())
        while not starting.done():
            await asyncio.wait([starting], timeout=TICK)
            if self.should_exit and not starting.done():
                logger.warning("Interrupted during application startup.")
                starting.cancel()
                self.lifespan.cancel()
                return
        starting.result()
        if self.lifespan.should_exit:
            self.should_exit = True
            return
        loop = state.loop

        def factory() -> Connection:
            return Connection(state)

        try:
            self._own_sockets = not sockets
            listen: list[socket.socket] = list(sockets or ()) or bind_all(
                config, reuse_port=config.reuse_port
            )
            cap = descriptor_cap()
            if cap is not None and (
                state.limit_connections is None or cap[0] < state.limit_connections
            ):
                # hold new connections in the backlog rather than fail accept() with EMFILE
                # (uvloop would accept and drop them; asyncio would retry in a burst)
                state.limit_connections = cap[0]
                state.limit_name = f"the descriptor limit (ulimit -n {cap[1]})"
            limited = state.limit_connections is not None
            own_accept = config.proxy_protocol or "uvloop" not in type(loop).__module__
            if own_accept:
                for sock in listen:
                    self.servers.append(
                        AcceptLoop(  # type: ignore[arg-type]
                            state,
                            sock,
                            factory,
                            self._ssl,
                            config.timeout_tls_handshake,
                            config.proxy_protocol,
                        )
                    )
            else:
                for sock in listen:
                    # with --limit-connections, servers get a copy: closing one to stop
                    # accepting leaves the socket (and its backlog) open
                    self.servers.append(
                        await loop.create_server(
                            factory,
                            sock=sock.dup() if limited else sock,
                            **self._server_options(),
                        )
                    )
            if limited:
                self._listen = listen
                state.pause_accepting = self._pause_accepting
                state.resume_accepting = self._schedule_resume
        except OSError as exc:
            logger.error("%s", exc)
            await self.lifespan.shutdown()
            raise SystemExit(STARTUP_FAILURE) from None
        logger.info(
            "Squall %s (%s %s): loop %s, http %s",
            __version__,
            platform.python_implementation(),
            platform.python_version(),
            loop_name(loop),
            http_backend(config).backend,
        )
        for srv in self.servers:
            for sock in getattr(srv, "sockets", ()):
                scheme = "https" if self._ssl is not None else "http"
                logger.info(
                    "Squall running on %s (Press CTRL+C to quit)", describe(sock, config, scheme)
                )
        if config.metrics and self.heartbeat is None:  # a worker leaves it to its supervisor
            await self._serve_metrics(config.metrics)
        self.started = True
        if self.heartbeat is not None:
            self.heartbeat()  # the first one says: ready

    async def _serve_metrics(self, address: str) -> None:
        state = self.state
        assert state is not None
        _, host, port = parse_bind(address)

        def answer() -> bytes:
            assert state is not None and state.metrics is not None
            return http_answer(render(state.metrics.snapshot(state.gauges())))

        try:
            self.servers.append(
                await state.loop.create_server(
                    lambda: MetricsProtocol(answer), host=str(host), port=port
                )
            )
        except OSError as exc:
            logger.error("--metrics: %s", exc)
            raise SystemExit(STARTUP_FAILURE) from None
        logger.info("Metrics on http://%s:%d/metrics", host, port)

    def _pause_accepting(self) -> None:
        for srv in self.servers:
            srv.close()

    def _schedule_resume(self) -> None:
        assert self.state is not None
        self.state.loop.create_task(self._resume_accepting())

    async def _resume_accepting(self) -> None:
        state = self.state
        if state is None or state.shutting_down:
            return

        def factory() -> Connection:
            assert state is not None
            return Connection(state)

        if self.config.proxy_protocol or "uvloop" not in type(state.loop).__module__:
            self.servers = [
                AcceptLoop(  # type: ignore[misc]
                    state,
                    sock,
                    factory,
                    self._ssl,
                    self.config.timeout_tls_handshake,
                    self.config.proxy_protocol,
                )
                for sock in self._listen
            ]
            return
        self.servers = [
            await state.loop.create_server(factory, sock=sock.dup(), **self._server_options())
            for sock in self._listen
        ]

    def _server_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"backlog": self.config.backlog}
        if self._ssl is not None:
            options["ssl"] = self._ssl
            options["ssl_handshake_timeout"] = self.config.timeout_tls_handshake
        return options

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            await asyncio.sleep(TICK)

    async def on_tick(self, counter: int) -> bool:
        """One tick of the clock; True means: stop now."""
        state = self.state
        assert state is not None
        if counter % 5 == 0 and self.heartbeat is not None:
            self.heartbeat()  # twice a second
        if counter % 10 == 0:
            state.update_date()
            callback = self.config.callback_notify
            if callback is not None:
                now = state.loop.time()
                if now - self.last_notified > self.config.timeout_notify:
                    self.last_notified = now
                    await callback()
        if self.should_exit:
            return True
        limit = self.request_limit
        if limit is not None and state.total_requests >= limit:
            logger.warning("Maximum request limit of %d exceeded. Terminating process.", limit)
            return True
        return False

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        logger.info("Shutting down")
        state = self.state
        assert state is not None
        for srv in self.servers:
            srv.close()
        for sock in sockets or ():
            sock.close()
        # the servers listen on copies (to pause and resume accepting): close the
        # originals too, or the kernel keeps queueing connections nobody will take
        for sock in self._listen:
            sock.close()
        state.shutting_down = True
        state.close_parked()
        for conn in list(state.connections):
            conn.shutdown()
        timeout = self.config.timeout_graceful_shutdown
        deadline = None if timeout is None else state.loop.time() + timeout
        if not await self._wait_until_idle(state, deadline):
            logger.error(
                "Cancel %d running task(s), timeout graceful shutdown exceeded",
                len(state.tasks),
            )
        for task in list(state.tasks):
            task.cancel()
        for conn in list(state.connections):
            conn.abort()
        if self.force_exit:
            return
        for srv in self.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(srv.wait_closed(), 1)
        if self.lifespan is not None:
            await self.lifespan.shutdown()
        if self._own_sockets:  # bound here, so removed here
            for path in unix_paths(self.config):
                with contextlib.suppress(OSError):
                    os.unlink(path)

    async def _wait_until_idle(self, state: ServerState, deadline: float | None) -> bool:
        """Wait for connections, then tasks, to finish; False if the deadline passed."""
        loop = state.loop
        for pending, message in (
            (state.connections, "Waiting for connections to close. (CTRL+C to force quit)"),
            (state.tasks, "Waiting for background tasks to complete. (CTRL+C to force quit)"),
        ):
            if pending and not self.force_exit:
                logger.info(message)
            while pending and not self.force_exit:
                if deadline is not None and loop.time() >= deadline:
                    return False
                await asyncio.sleep(TICK)
        return True

    # -- signals

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """Install SIGINT/SIGTERM handlers, in the main thread only."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._captured.append(sig)
        if self.should_exit and sig == signal.SIGINT and self._captured[0] == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
