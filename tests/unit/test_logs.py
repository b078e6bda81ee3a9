"""Log formatting, the TRACE level, configure_logging and escaping for logs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from squall.connection.state import escape_for_log
from squall.observe.logs import (
    LOG_LEVELS,
    LOGGING_CONFIG,
    TRACE_LOG_LEVEL,
    AccessFormatter,
    DefaultFormatter,
    configure_logging,
)

NAMES = ("squall", "squall.error", "squall.access", "squall.asgi")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging changes global loggers: put them back afterwards."""
    saved = {}
    for name in NAMES:
        logger = logging.getLogger(name)
        saved[name] = (logger.level, list(logger.handlers), logger.propagate, logger.disabled)
    yield
    for name, (level, handlers, propagate, disabled) in saved.items():
        logger = logging.getLogger(name)
        for handler in logger.handlers:
            if handler not in handlers:
                handler.close()
        logger.setLevel(level)
        logger.handlers = handlers
        logger.propagate = propagate
        logger.disabled = disabled


def make_record(
    msg: str, args: Any = (), level: int = logging.INFO, name: str = "squall.error", **extra: Any
) -> logging.LogRecord:
    record = logging.LogRecord(name, level, __file__, 1, msg, args, None)
    record.__dict__.update(extra)
    return record


# -- escape_for_log ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("plain /path?q=1", "plain /path?q=1"),
        ("a\nb", "a\\x0ab"),
        ("a\r\nb", "a\\x0d\\x0ab"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("nul\x00", "nul\\x00"),
        ("del\x7f", "del\\x7f"),
        ("tab\t", "tab\\x09"),
        ("café ü", "café ü"),
    ],
)
def test_escape_for_log(text: str, escaped: str) -> None:
    assert escape_for_log(text) == escaped


def test_escape_for_log_leaves_no_control_chars() -> None:
    text = "".join(chr(i) for i in range(256))
    out = escape_for_log(text)
    assert not any(ord(c) < 32 or ord(c) == 127 for c in out)


# -- TRACE level -----------------------------------------------------------------------------


def test_trace_level_registered() -> None:
    assert TRACE_LOG_LEVEL == 5
    assert logging.getLevelName(5) == "TRACE"
    assert LOG_LEVELS["trace"] == 5
    assert LOG_LEVELS["info"] == logging.INFO


# -- DefaultFormatter ------------------------------------------------------------------------


def test_default_formatter_levelprefix_no_colors() -> None:
    formatter = DefaultFormatter("%(levelprefix)s %(message)s", use_colors=False)
    assert formatter.format(make_record("hello %s", ("world",))) == "INFO:     hello world"
    warning = make_record("careful", level=logging.WARNING)
    assert formatter.format(warning) == "WARNING:  careful"
    trace = make_record("deep", level=TRACE_LOG_LEVEL)
    assert formatter.format(trace) == "TRACE:    deep"


def test_default_formatter_colors() -> None:
    formatter = DefaultFormatter("%(levelprefix)s %(message)s", use_colors=True)
    out = formatter.format(make_record("hi", level=logging.ERROR))
    assert out.startswith("\x1b[")
    assert "ERROR:" in out
    assert out.endswith(" hi")


def test_default_formatter_color_message() -> None:
    record = make_record("plain %s", ("x",), color_message="\x1b[1mbold\x1b[0m %s")
    plain = DefaultFormatter("%(message)s", use_colors=False).format(record)
    assert plain == "plain x"
    colored = DefaultFormatter("%(message)s", use_colors=True).format(
        make_record("plain %s", ("x",), color_message="\x1b[1mbold\x1b[0m %s")
    )
    assert colored == "\x1b[1mbold\x1b[0m x"


def test_default_formatter_does_not_mutate_record() -> None:
    record = make_record("m")
    DefaultFormatter("%(levelprefix)s %(message)s", use_colors=True).format(record)
    assert "levelprefix" not in record.__dict__


def test_default_formatter_use_colors_none_follows_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdout", io.StringIO())
    assert DefaultFormatter("%(message)s").use_colors is False


# -- AccessFormatter ---------------------------------------------------------------------------

ACCESS_FMT = LOGGING_CONFIG["formatters"]["access"]["fmt"]


def access_record(status: int = 200, duration: float = 0.0123) -> logging.LogRecord:
    return make_record(
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/path?q=1", "1.1", status),
        name="squall.access",
        duration=duration,
    )


def test_access_formatter_fields() -> None:
    formatter = AccessFormatter(ACCESS_FMT, use_colors=False)
    out = formatter.format(access_record())
    assert out == 'INFO:     127.0.0.1:5000 - "GET /path?q=1 HTTP/1.1" 200 OK 12.3ms'


@pytest.mark.parametrize(
    ("status", "text"),
    [
        (404, "404 Not Found"),
        (500, "500 Internal Server Error"),
        (599, "599"),
        (418, "418 I'm a Teapot"),
    ],
)
def test_access_formatter_status_phrase(status: int, text: str) -> None:
    formatter = AccessFormatter("%(status_code)s", use_colors=False)
    assert formatter.format(access_record(status)) == text


def test_access_formatter_individual_fields() -> None:
    formatter = AccessFormatter(
        "%(client_addr)s|%(request_line)s|%(status_code)s|%(duration_ms)s", use_colors=False
    )
    assert formatter.format(access_record(201, 1.5)) == (
        "127.0.0.1:5000|GET /path?q=1 HTTP/1.1|201 Created|1500.0ms"
    )


def test_access_formatter_colors_status() -> None:
    formatter = AccessFormatter("%(status_code)s", use_colors=True)
    out = formatter.format(access_record(500))
    assert out.startswith("\x1b[31m")
    assert "500 Internal Server Error" in out


def test_access_formatter_plain_message_passthrough() -> None:
    formatter = AccessFormatter("%(message)s", use_colors=False)
    assert formatter.format(make_record("no args here")) == "no args here"


def test_access_formatter_does_not_mutate_record() -> None:
    record = access_record()
    AccessFormatter(ACCESS_FMT, use_colors=False).format(record)
    assert "request_line" not in record.__dict__


# -- configure_logging ---------------------------------------------------------------------------


@pytest.mark.usefixtures("restore_logging")
def test_configure_default_config() -> None:
    configure_logging(LOGGING_CONFIG, None, True, None)
    access = logging.getLogger("squall.access")
    assert access.handlers
    assert isinstance(access.handlers[0].formatter, AccessFormatter)
    assert access.propagate is False
    assert logging.getLogger("squall").level == logging.INFO


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize(
    ("level", "value"), [("trace", 5), ("debug", 10), ("warning", 30), (40, 40)]
)
def test_configure_log_level(level: str | int, value: int) -> None:
    configure_logging(LOGGING_CONFIG, level, True, None)
    for name in NAMES:
        assert logging.getLogger(name).level == value


@pytest.mark.usefixtures("restore_logging")
def test_configure_no_access_log() -> None:
    configure_logging(LOGGING_CONFIG, None, False, None)
    access = logging.getLogger("squall.access")
    assert access.handlers == []
    assert access.propagate is False
    assert not access.hasHandlers()


@pytest.mark.usefixtures("restore_logging")
def test_configure_use_colors_does_not_mutate_default_config() -> None:
    before = json.dumps(LOGGING_CONFIG, sort_keys=True, default=str)
    configure_logging(LOGGING_CONFIG, None, True, True)
    assert json.dumps(LOGGING_CONFIG, sort_keys=True, default=str) == before
    handler = logging.getLogger("squall").handlers[0]
    assert isinstance(handler.formatter, DefaultFormatter)
    assert handler.formatter.use_colors is True


@pytest.mark.usefixtures("restore_logging")
def test_configure_none_config_only_sets_level() -> None:
    handlers = list(logging.getLogger("squall").handlers)
    configure_logging(None, "error", True, None)
    assert logging.getLogger("squall").handlers == handlers
    assert logging.getLogger("squall.error").level == logging.ERROR


@pytest.mark.usefixtures("restore_logging")
def test_configure_json_file(tmp_path: Path) -> None:
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {"squall.error": {"level": "WARNING"}},
    }
    path = tmp_path / "log.json"
    path.write_text(json.dumps(config))
    configure_logging(str(path), None, True, None)
    assert logging.getLogger("squall.error").level == logging.WARNING


@pytest.mark.usefixtures("restore_logging")
def test_configure_yaml_file(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    path = tmp_path / "log.yaml"
    path.write_text(
        "version: 1\ndisable_existing_loggers: false\n"
        "loggers:\n  squall.error:\n    level: CRITICAL\n"
    )
    configure_logging(str(path), None, True, None)
    assert logging.getLogger("squall.error").level == logging.CRITICAL
