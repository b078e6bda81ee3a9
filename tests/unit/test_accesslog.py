"""Access-log atoms (Gunicorn syntax) and JSON log lines."""

from __future__ import annotations

import json
import logging
import os
from types import SimpleNamespace

from squall.asgi.scope import ConnInfo
from squall.observe.accesslog import AccessAtoms, access_fields
from squall.observe.logs import LOGGING_CONFIG, AccessFormatter, JSONFormatter, json_logging_config

INFO = ConnInfo(("203.0.113.5", 4321), ("127.0.0.1", 8000), "http", trusted=False)


def cycle(**scope_extra: object) -> SimpleNamespace:
    scope = {
        "method": "POST",
        "path": "/a b",
        "query_string": b"x=1&y=\x1b[31m",
        "http_version": "1.1",
        "headers": [(b"user-agent", b"curl/8"), (b"referer", b"http://r/"), (b"x-id", b"7")],
        **scope_extra,
    }
    return SimpleNamespace(
        scope=scope, status=201, sent=1234, headers=[(b"content-type", b"text/plain")]
    )


def test_atoms() -> None:
    atoms = AccessAtoms(cycle(), INFO, 0.0123456)
    fmt = (
        '%(h)s %(l)s %(u)s "%(r)s" %(s)s %(b)s %(B)s "%(f)s" "%(a)s" %(m)s %(U)s %(q)s %(H)s '
        "%(T)s %(M)s %(D)s %(L)s %({x-id}i)s %({content-type}o)s %({missing}i)s %(p)s"
    )
    line = fmt % atoms  # the server applies the user's format the same way
    assert line == (
        '203.0.113.5 - - "POST /a%20b?x=1&y=\\x1b[31m HTTP/1.1" 201 1234 1234 "http://r/" '
        '"curl/8" POST /a%20b x=1&y=\\x1b[31m HTTP/1.1 0 12 12345 0.012346 7 text/plain - '
        f"<{os.getpid()}>"
    )
    assert "[" in atoms["t"] and atoms["t"].endswith("]")


def test_empty_body_is_a_dash_for_b() -> None:
    c = cycle()
    c.sent = 0
    atoms = AccessAtoms(c, INFO, 0.0)
    assert (atoms["b"], atoms["B"]) == ("-", "0")


def test_access_formatter_uses_the_custom_line() -> None:
    record = logging.LogRecord("squall.access", logging.INFO, "", 0, "ignored %s", ("x",), None)
    record.__dict__["access_line"] = "custom line"
    assert AccessFormatter("%(levelprefix)s %(message)s").format(record) == "custom line"


def test_json_records() -> None:
    formatter = JSONFormatter()
    record = logging.LogRecord("squall.error", logging.WARNING, "", 0, "hello %s", ("you",), None)
    data = json.loads(formatter.format(record))
    assert data["level"] == "WARNING"
    assert data["logger"] == "squall.error"
    assert data["message"] == "hello you"
    access = logging.LogRecord("squall.access", logging.INFO, "", 0, "line", (), None)
    access.__dict__["access"] = access_fields(cycle(), INFO, 0.5)
    data = json.loads(formatter.format(access))
    assert data["status"] == 201
    assert data["method"] == "POST"
    assert data["query"] == "x=1&y=\\x1b[31m"
    assert data["duration_ms"] == 500.0
    assert data["bytes"] == 1234
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        failing = logging.LogRecord(
            "squall.error", logging.ERROR, "", 0, "failed", (), sys.exc_info()
        )
    data = json.loads(formatter.format(failing))
    assert "ValueError: boom" in data["exception"]


def test_json_config_replaces_every_formatter() -> None:
    config = json_logging_config(LOGGING_CONFIG)
    assert set(config["formatters"]) == set(LOGGING_CONFIG["formatters"])
    assert all(
        f == {"()": "squall.observe.logs.JSONFormatter"} for f in config["formatters"].values()
    )
    assert LOGGING_CONFIG["formatters"]["default"]["()"] == "squall.observe.logs.DefaultFormatter"
