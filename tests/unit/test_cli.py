"""The command line generated from Config: flags, SQUALL_* environment, errors."""

from __future__ import annotations

import os
import platform
from typing import Any

import pytest

import squall
from squall import cli
from squall.config.fields import env_name, flag_name
from squall.config.options import Config, options


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SQUALL_") or name in ("WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS"):
            monkeypatch.delenv(name)


@pytest.fixture
def no_run(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, dict[str, Any]]]:
    """Replace squall.runner.run so main() never starts a server."""
    calls: list[tuple[Any, dict[str, Any]]] = []

    def fake_run(app: Any, **kwargs: Any) -> None:
        calls.append((app, kwargs))

    monkeypatch.setattr("squall.runner.run", fake_run)
    return calls


def option_strings() -> set[str]:
    parser = cli.build_parser()
    return {s for action in parser._actions for s in action.option_strings}


# -- flags ---------------------------------------------------------------------------------


def test_every_cli_option_has_a_flag() -> None:
    flags = option_strings()
    for f, meta in options():
        if meta.cli:
            assert flag_name(f, meta) in flags, f.name


def test_programmatic_only_options_have_no_flag() -> None:
    flags = option_strings()
    assert "--callback-notify" not in flags
    assert "--timeout-notify" not in flags


@pytest.mark.parametrize(
    "flag",
    [
        "--host",
        "--port",
        "--uds",
        "--fd",
        "--backlog",
        "--loop",
        "--http",
        "--ws",
        "--lifespan",
        "--interface",
        "--factory",
        "--app-dir",
        "--env-file",
        "--workers",
        "--reload",
        "--log-config",
        "--log-level",
        "--access-log",
        "--no-access-log",
        "--use-colors",
        "--no-use-colors",
        "--proxy-headers",
        "--no-proxy-headers",
        "--forwarded-allow-ips",
        "--server-header",
        "--no-server-header",
        "--date-header",
        "--no-date-header",
        "--header",
        "--root-path",
        "--limit-concurrency",
        "--limit-max-requests",
        "--timeout-keep-alive",
        "--timeout-graceful-shutdown",
        "--h11-max-incomplete-event-size",
        "--ssl-keyfile",
        "--ssl-certfile",
        "--version",
    ],
)
def test_uvicorn_flag_exists(flag: str) -> None:
    assert flag in option_strings()


def test_parse_minimal() -> None:
    app, kwargs = cli.parse(["main:app"])
    assert app == "main:app"
    assert kwargs == {"app_dir": ""}


def test_parse_typed_values() -> None:
    app, kwargs = cli.parse(
        [
            "main:app",
            "--host",
            "0.0.0.0",
            "--port",
            "9000",
            "--timeout-keep-alive",
            "2.5",
            "--limit-concurrency",
            "10",
            "--loop",
            "asyncio",
            "--http",
            "h11",
            "--log-level",
            "WARNING",
            "--root-path",
            "/api",
            "--app-dir",
            "src",
        ]
    )
    assert kwargs == {
        "host": "0.0.0.0",
        "port": 9000,
        "timeout_keep_alive": 2.5,
        "limit_concurrency": 10,
        "loop": "asyncio",
        "http": "h11",
        "log_level": "warning",
        "root_path": "/api",
        "app_dir": "src",
    }
    assert Config(app, **kwargs).port == 9000


@pytest.mark.parametrize(
    ("argv", "name", "value"),
    [
        (["--no-access-log"], "access_log", False),
        (["--access-log"], "access_log", True),
        (["--no-proxy-headers"], "proxy_headers", False),
        (["--no-server-header"], "server_header", False),
        (["--no-date-header"], "date_header", False),
        (["--use-colors"], "use_colors", True),
        (["--no-use-colors"], "use_colors", False),
        (["--factory"], "factory", True),
    ],
)
def test_boolean_flags(argv: list[str], name: str, value: bool) -> None:
    _, kwargs = cli.parse(["main:app", *argv])
    assert kwargs[name] is value


def test_unset_booleans_are_left_to_config() -> None:
    _, kwargs = cli.parse(["main:app"])
    assert "access_log" not in kwargs
    assert "factory" not in kwargs


def test_header_repeatable() -> None:
    _, kwargs = cli.parse(["main:app", "--header", "X-A:1", "--header", "X-B: two words"])
    assert kwargs["headers"] == ["X-A:1", "X-B: two words"]
    assert Config("main:app", **kwargs).headers == [("x-a", "1"), ("x-b", "two words")]


def test_choice_flag_rejects_bad_value(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.parse(["main:app", "--loop", "nope"])
    assert info.value.code == 2
    assert "--loop" in capsys.readouterr().err


def test_app_argument_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.parse([])
    assert info.value.code == 2
    assert "APP" in capsys.readouterr().err


# -- environment ---------------------------------------------------------------------------


def test_env_names_follow_fields() -> None:
    names = {f.name: env_name(f) for f, _ in options()}
    assert names["port"] == "SQUALL_PORT"
    assert names["timeout_keep_alive"] == "SQUALL_TIMEOUT_KEEP_ALIVE"


def test_squall_port_env_used_without_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQUALL_PORT", "9001")
    _, kwargs = cli.parse(["main:app"])
    assert kwargs["port"] == 9001


def test_flag_beats_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQUALL_PORT", "9001")
    _, kwargs = cli.parse(["main:app", "--port", "9002"])
    assert kwargs["port"] == 9002


def test_negative_flag_beats_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQUALL_ACCESS_LOG", "true")
    _, kwargs = cli.parse(["main:app", "--no-access-log"])
    assert kwargs["access_log"] is False


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("1", True),
        ("true", True),
        ("YES", True),
        ("on", True),
        ("0", False),
        ("False", False),
        ("no", False),
        ("off", False),
    ],
)
def test_boolean_env(monkeypatch: pytest.MonkeyPatch, raw: str, value: bool) -> None:
    monkeypatch.setenv("SQUALL_ACCESS_LOG", raw)
    _, kwargs = cli.parse(["main:app"])
    assert kwargs["access_log"] is value


def test_env_typed_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQUALL_TIMEOUT_KEEP_ALIVE", "1.5")
    monkeypatch.setenv("SQUALL_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("SQUALL_HOST", "::")
    _, kwargs = cli.parse(["main:app"])
    assert kwargs["timeout_keep_alive"] == 1.5
    assert kwargs["log_level"] == "debug"
    assert kwargs["host"] == "::"


def test_bad_env_values_are_config_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQUALL_PORT", "eighty")
    with pytest.raises(cli.ConfigError, match="SQUALL_PORT"):
        cli.parse(["main:app"])
    monkeypatch.setenv("SQUALL_PORT", "80")
    monkeypatch.setenv("SQUALL_ACCESS_LOG", "maybe")
    with pytest.raises(cli.ConfigError, match="SQUALL_ACCESS_LOG"):
        cli.parse(["main:app"])


def test_squall_app_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQUALL_APP", "env_mod:app")
    assert cli.parse([])[0] == "env_mod:app"
    assert cli.parse(["arg_mod:app"])[0] == "arg_mod:app"


def test_header_env_split_on_whitespace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQUALL_HEADERS", "X-A:1 X-B:2")
    _, kwargs = cli.parse(["main:app"])
    assert kwargs["headers"] == ["X-A:1", "X-B:2"]


def test_env_for_programmatic_option_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQUALL_TIMEOUT_NOTIFY", "1")
    _, kwargs = cli.parse(["main:app"])
    assert "timeout_notify" not in kwargs


# -- --version and main() ----------------------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.parse(["--version"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out == (
        f"Running squall {squall.__version__} with {platform.python_implementation()} "
        f"{platform.python_version()} on {platform.system()}\n"
    )


def test_main_version_needs_no_app(capsys: pytest.CaptureFixture[str], no_run: list[Any]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("Running squall ")
    assert no_run == []


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["main:app", "--port", "70000"], "--port"),
        (["main:app", "--backlog", "0"], "--backlog"),
        (["main:app", "--workers", "0"], "--workers"),
        (["main:app", "--header", "nocolon"], "--header"),
        (["main:app", "--root-path", "api"], "--root-path"),
        (["main:app", "--ssl-keyfile", "k.pem"], "--ssl-keyfile"),
    ],
)
def test_main_bad_value_prints_one_line_and_exits_2(
    capsys: pytest.CaptureFixture[str], no_run: list[Any], argv: list[str], flag: str
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"squall: error: {flag}")
    assert captured.out == ""
    assert no_run == []


def test_main_bad_env_prints_one_line(
    capsys: pytest.CaptureFixture[str], no_run: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SQUALL_PORT", "x")
    with pytest.raises(SystemExit) as info:
        cli.main(["main:app"])
    assert info.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("squall: error: SQUALL_PORT")


def test_main_argparse_type_error_exits_2(
    capsys: pytest.CaptureFixture[str], no_run: list[Any]
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["main:app", "--port", "abc"])
    assert info.value.code == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("squall: error:")
    assert "--port" in last


def test_main_valid_args_run(no_run: list[Any]) -> None:
    cli.main(["main:app", "--port", "0", "--no-access-log"])
    assert no_run == [("main:app", {"port": 0, "access_log": False, "app_dir": ""})]


def test_reference_markdown_lists_every_flag() -> None:
    table = cli.reference_markdown()
    for f, meta in options():
        if meta.cli:
            assert f"`{flag_name(f, meta)}" in table
            assert env_name(f) in table
    assert "--access-log / --no-access-log" in table


@pytest.mark.parametrize("raw", ["none", "None", "NONE"])
def test_none_turns_off_an_optional_number(raw: str) -> None:
    _, kwargs = cli.parse(["main:app", "--ws-ping-interval", raw, "--limit-concurrency", raw])
    assert kwargs["ws_ping_interval"] is None
    assert kwargs["limit_concurrency"] is None
    assert Config("main:app", **kwargs).ws_ping_interval is None


def test_none_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQUALL_WS_PING_TIMEOUT", "none")
    assert cli.parse(["main:app"])[1]["ws_ping_timeout"] is None


def test_none_is_refused_for_a_number_that_cannot_be_none(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        cli.parse(["main:app", "--timeout-keep-alive", "none"])
    assert "--timeout-keep-alive: invalid float value: 'none'" in capsys.readouterr().err
