"""``squall.run()``: the programmatic entry point."""

from __future__ import annotations

import logging
import sys
from typing import Any

from squall.config.options import Config
from squall.loading import STARTUP_FAILURE
from squall.server.serve import Server

logger = logging.getLogger("squall.error")


def run(app: Any, **kwargs: Any) -> None:
    """Serve ``app`` (an ASGI app or an import string) until stopped.

    Keyword arguments are :class:`~squall.config.options.Config` fields, named as in
    Uvicorn's ``run()``. Blocks; exits with status 3 if the server never started.
    """
    config = Config(app, **kwargs)
    if config.reload or (config.workers or 1) > 1:
        sys.exit(_supervise(config))
    server = Server(config)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def _supervise(config: Config) -> int:
    from squall.observe.logs import configure_logging
    from squall.supervisors.workers import Supervisor

    try:
        configure_logging(
            config.log_config,
            config.log_level,
            config.access_log,
            config.use_colors,
            config.log_format,
        )
    except Exception as exc:
        print(f"squall: error: --log-config: {exc}", file=sys.stderr)
        return STARTUP_FAILURE
    if config.reload:
        from squall.supervisors.reload import Reloader

        if not isinstance(config.app, str):
            logger.error("--reload: pass the application as an import string (module:attribute)")
            return STARTUP_FAILURE
        if (config.workers or 1) > 1:
            logger.warning("--reload and --workers: reloading runs a single worker")
        return Reloader(config).run()
    return Supervisor(config).run()
