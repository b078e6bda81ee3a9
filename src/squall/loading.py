"""Turning a Config into running parts: the app, the loop, the HTTP parser.

Everything that does I/O or imports user code lives here, apart from the
pure validation in ``config.py``. Failures raise :class:`LoadError`, whose
message is one line for the user; the caller exits with status 3.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import os
import ssl
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from squall.asgi.types import ASGI2App, ASGIApp, Receive, Scope, Send
    from squall.config.options import Config
    from squall.protocols.http1.base import HTTP1

logger = logging.getLogger("squall.error")
asgi_logger = logging.getLogger("squall.asgi")

STARTUP_FAILURE = 3


class LoadError(Exception):
    """The app or a backend could not be loaded; the message is one line."""


class ImportFromStringError(LoadError):
    pass


def import_from_string(import_str: Any) -> Any:
    """Resolve ``"package.module:attr.attr"``."""
    if not isinstance(import_str, str):
        return import_str
    module_str, _, attrs_str = import_str.partition(":")
    if not module_str or not attrs_str:
        raise ImportFromStringError(
            f'Import string "{import_str}" must be in format "<module>:<attribute>".'
        )
    try:
        module = importlib.import_module(module_str)
    except ModuleNotFoundError as exc:
        if exc.name != module_str and not module_str.startswith(f"{exc.name}."):
            raise
        raise ImportFromStringError(f'Could not import module "{module_str}".') from None
    instance: Any = module
    try:
        for attr in attrs_str.split("."):
            instance = getattr(instance, attr)
    except AttributeError:
        names = sorted(n for n in dir(instance) if not n.startswith("_"))
        hint = f" It has: {', '.join(names[:20])}" if names else ""
        raise ImportFromStringError(
            f'Attribute "{attrs_str}" not found in module "{module_str}".{hint}'
        ) from None
    return instance


def load_app(config: Config) -> ASGIApp:
    """Import, call the factory, detect the interface, add the TRACE logger."""
    if config.app_dir is not None:
        sys.path.insert(0, os.path.abspath(config.app_dir))
    try:
        app = import_from_string(config.app)
    except ImportFromStringError:
        raise
    except Exception as exc:
        logger.error("Error loading ASGI app.", exc_info=exc)
        raise LoadError(f"Error loading ASGI app {config.app!r}: {exc}") from exc
    if app is None:
        raise LoadError("No ASGI app given.")
    if config.factory:
        try:
            app = app()
        except TypeError as exc:
            raise LoadError(f"Error loading ASGI app factory: {exc}") from exc
    interface = config.interface
    if interface == "auto":
        interface = "asgi3" if is_asgi3(app) else "asgi2"
    if interface == "asgi2":
        app = ASGI2Middleware(app)
    if asgi_logger.isEnabledFor(5) or logging.getLogger("squall.error").isEnabledFor(5):
        from squall.middleware.message_logger import MessageLoggerMiddleware

        app = MessageLoggerMiddleware(app)
    return app  # type: ignore[no-any-return]


def is_asgi3(app: Any) -> bool:
    if inspect.isclass(app):
        return hasattr(app, "__await__")
    if inspect.isfunction(app) or inspect.ismethod(app):
        return inspect.iscoroutinefunction(app)
    call = getattr(app, "__call__", None)  # noqa: B004
    return inspect.iscoroutinefunction(call)


class ASGI2Middleware:
    """Runs a two-step ASGI 2 app as ASGI 3."""

    def __init__(self, app: ASGI2App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope.setdefault("asgi", {})["version"] = "2.0"
        instance = self.app(scope)
        await instance(receive, send)


def http_backend(config: Config) -> type[HTTP1]:
    choice = config.http
    if choice in ("auto", "httptools"):
        try:
            from squall.protocols.http1.backend_httptools import HttptoolsHTTP1
        except ImportError:
            if choice == "httptools":
                raise LoadError("--http httptools: httptools is not installed") from None
        else:
            return HttptoolsHTTP1
    from squall.protocols.http1.backend_h11 import H11HTTP1

    return H11HTTP1


def loop_factory(config: Config) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """None means: use asyncio's default loop (or policy)."""
    choice = config.loop
    if choice in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise LoadError("--loop uvloop: the uvloop package is not installed") from None
        else:
            return uvloop.new_event_loop
    if choice == "none":
        return None
    return asyncio.SelectorEventLoop if sys.platform == "win32" else asyncio.new_event_loop


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    module = type(loop).__module__.split(".")[0]
    return "uvloop" if module == "uvloop" else "asyncio"


def load_env_file(path: str) -> None:
    if not os.path.isfile(path):
        raise LoadError(f"--env-file: {path!r} does not exist")
    logger.info("Loading environment from '%s'", path)
    try:
        from dotenv import load_dotenv
    except ImportError:
        _load_env_plain(path)
    else:
        load_dotenv(dotenv_path=path)


def _load_env_plain(path: str) -> None:
    with open(path) as fh:
        for raw in fh:
            line = raw.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            key, _, value = line.removeprefix("export ").partition("=")
            value = value.strip().strip("'\"")
            os.environ.setdefault(key.strip(), value)


def ssl_context(config: Config) -> ssl.SSLContext | None:
    """The server's SSLContext from the ``ssl_*`` options (None without a certificate)."""
    if not config.ssl_certfile:
        return None
    for flag, path in (
        ("--ssl-certfile", config.ssl_certfile),
        ("--ssl-keyfile", config.ssl_keyfile),
        ("--ssl-ca-certs", config.ssl_ca_certs),
    ):
        if path and not os.path.isfile(path):
            raise LoadError(f"{flag}: {path!r} does not exist")
    try:
        context = ssl.SSLContext(config.ssl_version)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(
            config.ssl_certfile, config.ssl_keyfile, config.ssl_keyfile_password
        )
        context.verify_mode = ssl.VerifyMode(config.ssl_cert_reqs)
        if config.ssl_ca_certs:
            context.load_verify_locations(config.ssl_ca_certs)
        if config.ssl_ciphers:
            context.set_ciphers(config.ssl_ciphers)
        context.set_alpn_protocols(["h2", "http/1.1"] if config.http2 else ["http/1.1"])
    except ssl.SSLError as exc:
        raise LoadError(
            f"TLS: cannot load the certificate or key ({exc.reason or exc}); "
            "check --ssl-certfile, --ssl-keyfile and --ssl-keyfile-password"
        ) from None
    except (OSError, ValueError) as exc:
        raise LoadError(f"TLS: {exc}") from None
    return context
