"""Logging: the default dictConfig, formatters, and the TRACE level.

Loggers: ``squall.error`` (server events, to stderr), ``squall.access`` (one
line per response, to stdout) and ``squall.asgi`` (ASGI messages at TRACE).
The record fields match Uvicorn's, so log configs written for Uvicorn work
with the logger names changed.
"""

from __future__ import annotations

import configparser
import http
import json
import logging
import logging.config
import os
import sys
import time
from copy import copy
from typing import Any, Literal

TRACE_LOG_LEVEL = 5
logging.addLevelName(TRACE_LOG_LEVEL, "TRACE")

LOG_LEVELS = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": TRACE_LOG_LEVEL,
}

LOGGING_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "default": {
            "()": "squall.observe.logs.DefaultFormatter",
            "fmt": "%(levelprefix)s %(message)s",
            "use_colors": None,
        },
        "access": {
            "()": "squall.observe.logs.AccessFormatter",
            "fmt": '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s '
            "%(duration_ms)s",
        },
    },
    "handlers": {
        "default": {
            "formatter": "default",
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
        },
        "access": {
            "formatter": "access",
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
        },
    },
    "loggers": {
        "squall": {"handlers": ["default"], "level": "INFO", "propagate": False},
        "squall.error": {"level": "INFO"},
        "squall.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
    },
}

_LEVEL_COLORS = {
    TRACE_LOG_LEVEL: "\x1b[34m",
    logging.DEBUG: "\x1b[36m",
    logging.INFO: "\x1b[32m",
    logging.WARNING: "\x1b[33m",
    logging.ERROR: "\x1b[31m",
    logging.CRITICAL: "\x1b[91m",
}
_RESET = "\x1b[0m"


class DefaultFormatter(logging.Formatter):
    """Adds ``%(levelprefix)s``: the level name and a colon, padded to 9."""

    def __init__(
        self,
        fmt: str | None = None,
        datefmt: str | None = None,
        style: Literal["%", "{", "$"] = "%",
        use_colors: bool | None = None,
    ) -> None:
        self.use_colors = sys.stdout.isatty() if use_colors is None else use_colors
        super().__init__(fmt=fmt, datefmt=datefmt, style=style)

    def color(self, text: str, level: int) -> str:
        if not self.use_colors:
            return text
        return f"{_LEVEL_COLORS.get(level, '')}{text}{_RESET}"

    def formatMessage(self, record: logging.LogRecord) -> str:
        record = copy(record)
        prefix = (record.levelname + ":").ljust(9)
        record.__dict__["levelprefix"] = self.color(prefix, record.levelno)
        if self.use_colors and "color_message" in record.__dict__:
            record.msg = record.__dict__["color_message"]
            record.message = record.getMessage()
        return super().formatMessage(record)


class AccessFormatter(DefaultFormatter):
    """Adds ``client_addr``, ``request_line``, ``status_code`` and ``duration_ms``."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = record.__dict__.get("access_line")
        if line is not None:  # --access-log-format: the line is complete
            return str(line)
        record = copy(record)
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            client, method, path, version, status = args
            try:
                phrase = http.HTTPStatus(int(status)).phrase  # type: ignore[call-overload]
            except ValueError:
                phrase = ""
            status_text = f"{status} {phrase}".rstrip()
            if self.use_colors:
                status_text = self.color(status_text, _status_level(int(status)))  # type: ignore[call-overload]
            extra = record.__dict__
            extra["client_addr"] = client
            extra["request_line"] = f"{method} {path} HTTP/{version}"
            extra["status_code"] = status_text
            extra["duration_ms"] = f"{extra.get('duration', 0.0) * 1000:.1f}ms"
        return super().formatMessage(record)


class JSONFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, and for access
    records the request's fields (client, method, path, status, duration...)."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S")
            + f".{int(record.msecs):03d}"
            + time.strftime("%z"),
            "level": record.levelname,
            "logger": record.name,
        }
        access = record.__dict__.get("access")
        if access is not None:
            data.update(access)
            data["message"] = record.__dict__.get("access_line") or record.getMessage()
        else:
            data["message"] = record.getMessage()
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def json_logging_config(base: dict[str, Any]) -> dict[str, Any]:
    """``base`` with every formatter replaced by :class:`JSONFormatter`."""
    config: dict[str, Any] = json.loads(json.dumps(base, default=str))
    for name in config.get("formatters", {}):
        config["formatters"][name] = {"()": "squall.observe.logs.JSONFormatter"}
    return config


def _status_level(status: int) -> int:
    if status >= 500:
        return logging.ERROR
    if status >= 400:
        return logging.WARNING
    return logging.INFO


def configure_logging(
    log_config: Any,
    log_level: str | int | None,
    access_log: bool,
    use_colors: bool | None,
    log_format: str = "text",
) -> None:
    """Apply the log config, then the level and access-log switches."""
    if log_format == "json" and isinstance(log_config, dict):
        log_config = json_logging_config(log_config)
    if log_config is not None:
        if isinstance(log_config, dict):
            if use_colors is not None:
                log_config = json.loads(json.dumps(log_config, default=str))
                for name in ("default", "access"):
                    log_config.get("formatters", {}).get(name, {})["use_colors"] = use_colors
            logging.config.dictConfig(log_config)
        elif isinstance(log_config, configparser.RawConfigParser) or hasattr(
            log_config, "readline"
        ):
            logging.config.fileConfig(log_config, disable_existing_loggers=False)
        else:
            path = os.fspath(log_config)
            if path.endswith(".json"):
                with open(path) as fh:
                    logging.config.dictConfig(json.load(fh))
            elif path.endswith((".yaml", ".yml")):
                import yaml

                with open(path) as fh:
                    logging.config.dictConfig(yaml.safe_load(fh))
            else:
                logging.config.fileConfig(path, disable_existing_loggers=False)
    if log_level is not None:
        level = LOG_LEVELS[log_level] if isinstance(log_level, str) else log_level
        for name in ("squall.error", "squall.access", "squall.asgi"):
            logging.getLogger(name).setLevel(level)
        logging.getLogger("squall").setLevel(level)
    if not access_log:
        access = logging.getLogger("squall.access")
        access.handlers = []
        access.propagate = False


def reopen_log_files() -> None:
    """SIGUSR1: reopen every file handler's file (after logrotate moved it)."""
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for item in loggers:
        for handler in getattr(item, "handlers", ()):
            if isinstance(handler, logging.FileHandler):
                handler.acquire()
                try:
                    handler.close()
                    handler.stream = handler._open()
                finally:
                    handler.release()
