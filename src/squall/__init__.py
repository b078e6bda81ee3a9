"""Squall: a fast, strict ASGI server that speaks Uvicorn's command line."""

from __future__ import annotations

from squall._version import __version__
from squall.config import Config
from squall.runner import run
from squall.server import Server

__all__ = ["Config", "Server", "__version__", "run"]
