"""Config: defaults that match Uvicorn, validation with one-line ConfigErrors."""

from __future__ import annotations

import dataclasses
import os

import pytest

from squall.config.fields import (
    HTTP_CHOICES,
    INTERFACE_CHOICES,
    LIFESPAN_CHOICES,
    LOOP_CHOICES,
    ConfigError,
    env_name,
    flag_name,
)
from squall.config.options import Config, options
from squall.observe.logs import LOGGING_CONFIG


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SQUALL_") or name in ("WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS"):
            monkeypatch.delenv(name)


def config_error(**kwargs: object) -> str:
    with pytest.raises(ConfigError) as info:
        Config("app:app", **kwargs)
    message = str(info.value)
    assert "\n" not in message, "ConfigError must be one line"
    return message


# -- defaults -------------------------------------------------------------------------------

UVICORN_DEFAULTS = {
    "host": "127.0.0.1",
    "port": 8000,
    "uds": None,
    "fd": None,
    "loop": "auto",
    "http": "auto",
    "ws": "auto",
    "lifespan": "auto",
    "env_file": None,
    "log_level": None,
    "access_log": True,
    "use_colors": None,
    "interface": "auto",
    "reload": False,
    "workers": None,
    "proxy_headers": True,
    "server_header": True,
    "date_header": True,
    "root_path": "",
    "limit_concurrency": None,
    "limit_max_requests": None,
    "backlog": 2048,
    "timeout_keep_alive": 5,
    "timeout_notify": 30,
    "timeout_graceful_shutdown": None,
    "callback_notify": None,
    "ssl_keyfile": None,
    "ssl_certfile": None,
    "factory": False,
    "h11_max_incomplete_event_size": None,
}


@pytest.mark.parametrize(("name", "value"), UVICORN_DEFAULTS.items())
def test_defaults_match_uvicorn(name: str, value: object) -> None:
    assert getattr(Config("app:app"), name) == value


def test_default_headers_empty_and_not_shared() -> None:
    one, two = Config("a:a"), Config("b:b")
    assert one.headers == []
    assert one.headers is not two.headers


def test_default_log_config_is_squalls() -> None:
    cfg = Config("app:app")
    assert cfg.log_config == LOGGING_CONFIG
    assert set(cfg.log_config["loggers"]) >= {"squall", "squall.error", "squall.access"}


def test_default_limits() -> None:
    cfg = Config("app:app")
    assert cfg.limit_request_line == 8192
    assert cfg.limit_request_fields == 100
    assert cfg.limit_request_field_size == 16384
    assert cfg.limit_request_header_size == 65536


def test_default_forwarded_allow_ips() -> None:
    cfg = Config("app:app")
    assert cfg.forwarded_allow_ips == "127.0.0.1,::1"
    assert cfg.trusted_proxies == ["127.0.0.1", "::1"]


def test_app_is_kept_as_given() -> None:
    async def app(scope: object, receive: object, send: object) -> None:
        pass

    assert Config(app).app is app
    assert Config("pkg.mod:app").app == "pkg.mod:app"


def test_config_is_frozen() -> None:
    cfg = Config("app:app")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.port = 1  # type: ignore[misc]


def test_replace_validates() -> None:
    cfg = Config("app:app")
    assert cfg.replace(port=9000).port == 9000
    assert cfg.port == 8000
    with pytest.raises(ConfigError, match="--port"):
        cfg.replace(port=-1)


# -- bad values name their flag -------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"port": -1}, "--port"),
        ({"port": 65536}, "--port"),
        ({"backlog": 0}, "--backlog"),
        ({"limit_request_line": 0}, "--limit-request-line"),
        ({"limit_request_fields": 0}, "--limit-request-fields"),
        ({"limit_request_field_size": 0}, "--limit-request-field-size"),
        ({"limit_request_header_size": -5}, "--limit-request-header-size"),
        ({"limit_concurrency": 0}, "--limit-concurrency"),
        ({"limit_max_requests": 0}, "--limit-max-requests"),
        ({"h11_max_incomplete_event_size": 0}, "--h11-max-incomplete-event-size"),
        ({"timeout_keep_alive": -1}, "--timeout-keep-alive"),
        ({"timeout_graceful_shutdown": -0.5}, "--timeout-graceful-shutdown"),
        ({"root_path": "api"}, "--root-path"),
    ],
)
def test_bad_value_names_flag(kwargs: dict[str, object], flag: str) -> None:
    message = config_error(**kwargs)
    assert message.startswith(flag), message


@pytest.mark.parametrize("port", [0, 1, 8000, 65535])
def test_port_range_accepted(port: int) -> None:
    assert Config("app:app", port=port).port == port


def test_zero_timeouts_accepted() -> None:
    cfg = Config("app:app", timeout_keep_alive=0, timeout_graceful_shutdown=0)
    assert cfg.timeout_keep_alive == 0
    assert cfg.timeout_graceful_shutdown == 0


def test_port_error_shows_value() -> None:
    assert "70000" in config_error(port=70000)


def test_wrongly_typed_port_is_config_error() -> None:
    assert config_error(port="8000").startswith("--port")


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"port": True}, "--port"),
        ({"port": 80.5}, "--port"),
        ({"backlog": "10"}, "--backlog"),
        ({"access_log": "no"}, "--access-log"),
        ({"proxy_headers": 0}, "--proxy-headers"),
        ({"timeout_keep_alive": "5"}, "--timeout-keep-alive"),
        ({"limit_concurrency": "10"}, "--limit-concurrency"),
    ],
)
def test_wrongly_typed_values_are_config_errors(kwargs: dict[str, object], flag: str) -> None:
    assert config_error(**kwargs).startswith(flag)


def test_int_accepted_for_float_option() -> None:
    assert Config("app:app", timeout_keep_alive=2).timeout_keep_alive == 2
    assert Config("app:app", timeout_keep_alive=0.25).timeout_keep_alive == 0.25


@pytest.mark.parametrize(
    ("name", "choices"),
    [
        ("loop", LOOP_CHOICES),
        ("http", HTTP_CHOICES),
        ("interface", INTERFACE_CHOICES),
        ("lifespan", LIFESPAN_CHOICES),
    ],
)
def test_choices_validated(name: str, choices: tuple[str, ...]) -> None:
    message = config_error(**{name: "bogus"})
    assert message.startswith("--" + name)
    assert "'bogus'" in message
    for choice in choices:
        assert choice in message
        assert getattr(Config("app:app", **{name: choice}), name) == choice


def test_ws_choice_validated() -> None:
    assert config_error(ws="wsproto-nope").startswith("--ws")


def test_log_level_choices_and_case() -> None:
    assert Config("app:app", log_level="DEBUG").log_level == "debug"
    assert Config("app:app", log_level="trace").log_level == "trace"
    assert Config("app:app", log_level=10).log_level == 10
    assert config_error(log_level="verbose").startswith("--log-level")


def test_root_path_trailing_slash_stripped() -> None:
    assert Config("app:app", root_path="/api/").root_path == "/api"
    assert Config("app:app", root_path="/api").root_path == "/api"
    assert Config("app:app", root_path="").root_path == ""


# -- options not available yet ---------------------------------------------------------------


def test_unavailable_options_at_defaults_are_fine() -> None:
    cfg = Config("app:app", reload=False, ssl_keyfile=None, workers=1)
    assert cfg.workers == 1


# -- headers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "parsed"),
    [
        ("X-Name:value", ("x-name", "value")),
        ("X-Name: value", ("x-name", "value")),
        ("X-Name:  a: b ", ("x-name", "a: b")),
        ("Server:custom", ("server", "custom")),
        ("x-empty:", ("x-empty", "")),
        (("X-Tuple", "v"), ("x-tuple", "v")),
        (["X-List", "v"], ("x-list", "v")),
        (("X-Int", 5), ("x-int", "5")),
    ],
)
def test_headers_parsed(given: object, parsed: tuple[str, str]) -> None:
    assert Config("app:app", headers=[given]).headers == [parsed]


def test_headers_order_kept() -> None:
    cfg = Config("app:app", headers=["A:1", ("B", "2"), "A:3"])
    assert cfg.headers == [("a", "1"), ("b", "2"), ("a", "3")]


@pytest.mark.parametrize(
    "bad",
    ["novalue", "bad name:v", ":v", "x:a\r\nb", "x:a\x00b", ("x",), ("a", "b", "c"), 5],
)
def test_bad_headers_raise(bad: object) -> None:
    assert config_error(headers=[bad]).startswith("--header")


# -- legacy environment defaults ------------------------------------------------------------------


def test_web_concurrency_sets_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "1")
    assert Config("app:app").workers == 1


def test_web_concurrency_above_one_sets_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "4")
    assert Config("app:app").workers == 4


def test_workers_below_one_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    assert config_error(workers=0).startswith("--workers: must be at least 1")


def test_web_concurrency_not_an_integer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "many")
    assert "WEB_CONCURRENCY" in config_error()


def test_explicit_workers_beats_web_concurrency(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "4")
    assert Config("app:app", workers=1).workers == 1


def test_empty_web_concurrency_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "")
    assert Config("app:app").workers is None


def test_forwarded_allow_ips_env_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.1, 192.168.0.0/16")
    cfg = Config("app:app")
    assert cfg.forwarded_allow_ips == "10.0.0.1, 192.168.0.0/16"
    assert cfg.trusted_proxies == ["10.0.0.1", "192.168.0.0/16"]


def test_explicit_forwarded_allow_ips_beats_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.1")
    assert Config("app:app", forwarded_allow_ips="*").trusted_proxies == ["*"]


def test_forwarded_allow_ips_as_list() -> None:
    cfg = Config("app:app", forwarded_allow_ips=["1.1.1.1", " ", "2.2.2.0/24 "])
    assert cfg.trusted_proxies == ["1.1.1.1", "2.2.2.0/24"]


# -- option metadata --------------------------------------------------------------------------


def test_option_metadata_names() -> None:
    names = {f.name: (flag_name(f, meta), env_name(f)) for f, meta in options()}
    assert names["limit_concurrency"] == ("--limit-concurrency", "SQUALL_LIMIT_CONCURRENCY")
    assert names["headers"] == ("--header", "SQUALL_HEADERS")
    assert names["port"] == ("--port", "SQUALL_PORT")
    assert "app" not in names


def test_every_field_except_app_is_an_option() -> None:
    fields = {f.name for f in dataclasses.fields(Config)}
    assert fields - {f.name for f, _ in options()} == {"app"}


def test_latin1_header_value_accepted() -> None:
    assert Config("app:app", headers=["X-Cafe: café"]).headers == [("x-cafe", "café")]


def test_header_value_not_latin1_is_config_error() -> None:
    assert config_error(headers=["X-Euro: €"]).startswith("--header")


def test_ssl_keyfile_without_certfile_is_config_error() -> None:
    assert config_error(ssl_keyfile="key.pem") == "--ssl-keyfile: needs --ssl-certfile too"


def test_ssl_cert_reqs_range() -> None:
    assert config_error(ssl_certfile="c.pem", ssl_cert_reqs=3).startswith("--ssl-cert-reqs")
