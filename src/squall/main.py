"""``squall.run()``: the programmatic entry point."""

from __future__ import annotations

import sys
from typing import Any

from squall.config import Config
from squall.loading import STARTUP_FAILURE
from squall.server import Server


def run(app: Any, **kwargs: Any) -> None:
    """Serve ``app`` (an ASGI app or an import string) until stopped.

    Keyword arguments are :class:`~squall.config.Config` fields, named as in
    Uvicorn's ``run()``. Blocks; exits with status 3 if the server never started.
    """
    config = Config(app, **kwargs)
    if (config.workers or 1) > 1:
        sys.exit(_supervise(config))
    server = Server(config)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def _supervise(config: Config) -> int:
    from squall.logs import configure_logging
    from squall.supervisors.workers import Supervisor

    try:
        configure_logging(config.log_config, config.log_level, config.access_log, config.use_colors)
    except Exception as exc:
        print(f"squall: error: --log-config: {exc}", file=sys.stderr)
        return STARTUP_FAILURE
    return Supervisor(config).run()
