"""Squall: a fast, strict ASGI server that speaks Uvicorn's command line."""

from __future__ import annotations

__version__ = "0.1.0"

from squall.config import Config
from squall.main import run
from squall.server import Server

__all__ = ["Config", "Server", "__version__", "run"]
