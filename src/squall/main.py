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
    server = Server(config)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    if not server.started:
        sys.exit(STARTUP_FAILURE)
