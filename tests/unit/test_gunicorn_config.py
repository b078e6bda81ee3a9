"""The Gunicorn worker's pure parts: settings to Config, responses to access atoms."""

from __future__ import annotations

import ssl
from datetime import timedelta
from typing import Any

import pytest

pytest.importorskip("gunicorn")

from gunicorn.config import Config as GunicornConfig
from gunicorn.glogging import Logger, SafeAtoms

from squall.asgi.scope import ConnInfo
from squall.config.options import Config
from squall.gunicorn import MAX_HEADERS, UNLIMITED, access_record, config_options


def gunicorn_config(**settings: Any) -> Any:
    cfg = GunicornConfig()
    for name, value in settings.items():
        cfg.set(name, value)
    return cfg


def test_defaults_follow_gunicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCRIPT_NAME", raising=False)
    options = config_options(gunicorn_config())
    config = Config("app:app", **options)
    assert config.timeout_keep_alive == 2
    assert config.timeout_graceful_shutdown == 30
    assert config.backlog == 2048
    assert (config.limit_request_line, config.limit_request_fields) == (4094, 100)
    assert config.limit_request_field_size == 8190
    assert config.limit_request_header_size == 65536
    assert config.limit_connections is None  # worker_connections left at its default
    assert config.limit_concurrency is None
    assert config.proxy_protocol is False
    assert config.http2 is False  # gunicorn's http_protocols default: h1
    assert config.access_log is False and config.log_config is None
    assert config.proxy_headers is True
    assert config.root_path == ""
    assert config.lifespan == "auto"
    assert config.ssl_certfile is None


def test_explicit_settings() -> None:
    cfg = gunicorn_config(
        keepalive=7,
        graceful_timeout=4,
        worker_connections=50,
        forwarded_allow_ips="10.0.0.0/8,*",
        loglevel="WARNING",
        limit_request_line=100,
        limit_request_fields=5,
        limit_request_field_size=100000,
        backlog=64,
    )
    config = Config("app:app", **config_options(cfg))
    assert config.timeout_keep_alive == 7
    assert config.timeout_graceful_shutdown == 4
    assert config.limit_connections == 50
    assert config.trusted_proxies == ["10.0.0.0/8", "*"]
    assert config.log_level == "warning"
    assert (config.limit_request_line, config.limit_request_fields) == (100, 5)
    assert config.limit_request_field_size == 100000
    assert config.limit_request_header_size == 100000  # a field may fill the section
    assert config.backlog == 64


def test_proxy_protocol_trusts_proxy_allow_ips_too() -> None:
    cfg = gunicorn_config(proxy_protocol="v1", proxy_allow_ips="10.9.9.9,127.0.0.1")
    config = Config("app:app", **config_options(cfg))
    assert config.proxy_protocol is True
    assert config.trusted_proxies == ["127.0.0.1", "::1", "10.9.9.9"]


def test_zero_means_unlimited() -> None:
    cfg = gunicorn_config(limit_request_line=0, limit_request_fields=0, limit_request_field_size=0)
    options = config_options(cfg)
    assert options["limit_request_line"] == UNLIMITED
    assert options["limit_request_fields"] == MAX_HEADERS
    assert options["limit_request_field_size"] == UNLIMITED
    assert options["limit_request_header_size"] == UNLIMITED


def test_root_path_from_script_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCRIPT_NAME", "/api/")
    assert Config("app:app", **config_options(gunicorn_config())).root_path == "/api"


def test_tls_settings(tmp_path: Any) -> None:
    cfg = gunicorn_config(
        certfile="c.pem", keyfile="k.pem", ca_certs="ca.pem", cert_reqs=2, ciphers="ECDHE"
    )
    options = config_options(cfg)
    assert options["ssl_certfile"] == "c.pem"
    assert options["ssl_keyfile"] == "k.pem"
    assert options["ssl_ca_certs"] == "ca.pem"
    assert options["ssl_cert_reqs"] == ssl.CERT_REQUIRED
    assert options["ssl_ciphers"] == "ECDHE"
    assert "ssl_version" not in options  # deprecated and ignored by gunicorn itself


def test_http2_when_listed() -> None:
    cfg = gunicorn_config()
    if "http_protocols" not in cfg.settings:
        pytest.skip("gunicorn < 24 has no http_protocols")
    cfg.set("http_protocols", "h2,h1")
    assert config_options(cfg)["http2"] is True


SCOPE: dict[str, Any] = {
    "type": "http",
    "http_version": "1.1",
    "method": "POST",
    "scheme": "http",
    "root_path": "/api",
    "path": "/api/a b",
    "raw_path": b"/api/a%20b",
    "query_string": b"x=1&y=\x1b",
    "server": ("127.0.0.1", 8000),
    "client": ("203.0.113.7", 1),  # rewritten by proxy headers: not %(h)s
    "headers": [
        (b"host", b"example.org"),
        (b"x-test", b"one"),
        (b"x-test", b"two"),
        (b"user-agent", b"ua/1"),
        (b"referer", b"http://r/"),
        (b"authorization", b"Basic dXNlcjpwYXNz"),
        (b"content-type", b"text/plain"),
    ],
}


def atoms(sent: int | None = 12, status: int = 201) -> dict[str, Any]:
    info = ConnInfo(("10.0.0.1", 5555), ("127.0.0.1", 8000), "http", True)
    resp, req, environ = access_record(
        SCOPE, status, [(b"Content-Type", b"text/plain")], info, sent
    )
    logger = Logger(gunicorn_config())
    return dict(SafeAtoms(logger.atoms(resp, req, environ, timedelta(seconds=1, microseconds=5))))


def test_access_atoms() -> None:
    a = atoms()
    assert a["h"] == "10.0.0.1"
    assert a["r"] == "POST /a%20b?x=1&y=\\x1b HTTP/1.1"
    assert (a["m"], a["U"], a["q"], a["H"]) == ("POST", "/a b", "x=1&y=\\x1b", "HTTP/1.1")
    assert (a["s"], a["b"], a["B"]) == ("201", "12", 12)
    assert (a["a"], a["f"], a["u"]) == ("ua/1", "http://r/", "user")
    assert (a["D"], a["L"], a["T"]) == (1000005, "1.000005", 1)
    assert a["{x-test}i"] == "two"  # the last one, as gunicorn's own atoms
    assert a["{content-type}o"] == "text/plain"
    assert a["{http_x_test}e"] == "one,two"
    assert a["{content_type}e"] == "text/plain"
    assert a["{script_name}e"] == "/api"


def test_access_line_in_gunicorn_format() -> None:
    fmt = '%(h)s "%(r)s" %(s)s %(b)s %({x-test}i)s %({missing}i)s'
    line = fmt % SafeAtoms(atoms(sent=None, status=599))
    assert line == '10.0.0.1 "POST /a%20b?x=1&y=\\x1b HTTP/1.1" 599 - two -'
