"""The TOML config file: keys, types, precedence, errors, --check/--print-config."""

from __future__ import annotations

from pathlib import Path

import pytest

from squall.cli import main, parse, parse_command
from squall.config import file as configfile
from squall.config.fields import ConfigError
from squall.config.file import tomllib
from squall.config.options import Config


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_every_kind_of_value(tmp_path: Path) -> None:
    path = write(
        tmp_path / "squall.toml",
        'app = "main:app"\nport = 9001\nlimit-concurrency = 10\ntimeout_keep_alive = 2\n'
        'proxy-headers = false\nheaders = ["x-a: 1", "x-b: 2"]\nreload-dir = "src"\n'
        "ws-ping-interval = 1.5\n",
    )
    values = configfile.load(path)
    assert values == {
        "app": "main:app",
        "port": 9001,
        "limit_concurrency": 10,
        "timeout_keep_alive": 2.0,
        "proxy_headers": False,
        "headers": ["x-a: 1", "x-b: 2"],
        "reload_dirs": ["src"],
        "ws_ping_interval": 1.5,
    }
    config = Config(values.pop("app"), **values)
    assert config.port == 9001
    assert config.headers == [("x-a", "1"), ("x-b", "2")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "limt-concurrency = 3",
            "unknown option 'limt-concurrency' (did you mean 'limit-concurrency'?)",
        ),
        (
            "limt_concurrency = 3",
            "unknown option 'limt_concurrency' (did you mean 'limit_concurrency'?)",
        ),
        ('port = "x"', "port: expected an integer, got 'x'"),
        ("port = true", "port: expected an integer, got True"),
        ("proxy-headers = 1", "proxy-headers: expected true or false, got 1"),
        ("headers = [1]", "headers: expected a string or a list of strings, got [1]"),
        ("app = 3", "app: expected a string like 'main:app'"),
        ("nonsense_key_xyz = 3", "unknown option 'nonsense_key_xyz'"),
    ],
)
def test_bad_keys_and_values_are_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "squall.toml", text + "\n")
    with pytest.raises(ConfigError) as info:
        configfile.load(path)
    assert str(info.value) == f"{path}: {message}"


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not valid TOML"):
        configfile.load(write(tmp_path / "bad.toml", "port = \n"))
    with pytest.raises(ConfigError, match="does not exist"):
        configfile.load(tmp_path / "missing.toml")


def test_pyproject_table_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n[tool.squall]\nport = 9100\n')
    monkeypatch.chdir(tmp_path)
    _, kwargs = parse(["main:app"])
    assert kwargs["port"] == 9100


def test_pyproject_without_table_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n')
    monkeypatch.chdir(tmp_path)
    _, kwargs = parse(["main:app"])
    assert "port" not in kwargs


def test_precedence_cli_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "s.toml", 'app = "file:app"\nport = 1\nbacklog = 7\nroot-path = "/f"\n')
    monkeypatch.setenv("SQUALL_PORT", "2")
    monkeypatch.setenv("SQUALL_BACKLOG", "8")
    app, kwargs = parse(["--config", str(path), "--port", "3"])
    assert app == "file:app"
    assert kwargs["port"] == 3  # command line beats environment
    assert kwargs["backlog"] == 8  # environment beats file
    assert kwargs["root_path"] == "/f"  # file beats default


def test_check_and_print_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "s.toml", 'app = "main:app"\nport = 9002\n')
    assert parse_command(["--config", str(path), "--check-config"])[2] == "check"
    main(["--config", str(path), "--check-config"])
    assert capsys.readouterr().out == "squall: configuration OK\n"
    main(["--config", str(path), "--print-config"])
    printed = tomllib.loads(capsys.readouterr().out)
    assert printed["app"] == "main:app"
    assert printed["port"] == 9002
    assert printed["limit-request-line"] == 8192
    # what it prints reads back as the same configuration
    again = write(tmp_path / "again.toml", configfile.dump({"port": 9002, "http2": False}))
    assert configfile.load(again) == {"port": 9002, "http2": False}


def test_print_config_reads_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(
        tmp_path / "s.toml", 'app = "main:app"\nheaders = ["x-a: 1"]\nbind = ["[::1]:1"]\n'
    )
    main(["--config", str(path), "--print-config"])
    printed = write(tmp_path / "printed.toml", capsys.readouterr().out)
    values = configfile.load(printed)
    config = Config(values.pop("app"), **values)
    assert config.headers == [("x-a", "1")]
    assert config.bind == ["[::1]:1"]


def test_an_option_turned_off_prints_and_reads_back_as_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["main:app", "--ws-ping-interval", "none", "--print-config"])
    out = capsys.readouterr().out
    assert 'ws-ping-interval = "none"' in out
    assert "ws-ping-timeout = 20.0" in out
    assert "limit-concurrency" not in out  # None is its default: nothing to say
    printed = write(tmp_path / "printed.toml", out)
    app, kwargs = parse(["--config", str(printed)])
    assert kwargs["ws_ping_interval"] is None  # not the default of 20
    assert Config(app, **kwargs).ws_ping_interval is None


def test_check_config_reports_a_bad_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "s.toml", 'app = "main:app"\nport = 70000\n')
    with pytest.raises(SystemExit) as info:
        main(["--config", str(path), "--check-config"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err == "squall: error: --port: must be between 0 and 65535, got 70000\n"
