"""The command line as a user runs it: a real `python -m squall` process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT

HELLO = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = (scope["path"] + " " + __import__("os").environ.get("GREETING", "-")).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
"""


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "hello.py").write_text(HELLO)
    return tmp_path


def run_squall(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "squall", *args],
        check=False,
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_version() -> None:
    out = run_squall("--version")
    assert out.returncode == 0
    assert out.stdout.startswith("Running squall ")
    assert " with CPython " in out.stdout or " with PyPy " in out.stdout


def test_example_app_serves_and_banner_names_loop_and_parser(squall_process) -> None:
    proc = squall_process("examples.hello:app", "--port", "0", "--http", "h11", "--loop", "asyncio")
    port = proc.wait_started()
    assert httpx.get(f"http://127.0.0.1:{port}/").text == "Hello, world!"
    assert "loop asyncio, http h11" in proc.output
    assert "Application startup complete." in proc.output
    assert proc.stop(signal.SIGINT) == 0
    assert "Shutting down" in proc.output
    assert "Finished server process" in proc.output


def test_sigterm_exits_zero(squall_process) -> None:
    proc = squall_process("examples.hello:app", "--port", "0")
    proc.wait_started()
    assert proc.stop(signal.SIGTERM) == 0


def test_missing_module_exits_3_naming_it(app_dir: Path) -> None:
    out = run_squall("nosuchmodule:app", "--port", "0", cwd=app_dir)
    assert out.returncode == 3
    assert 'Could not import module "nosuchmodule"' in out.stderr
    assert "Traceback" not in out.stderr


def test_attribute_typo_lists_what_the_module_has(app_dir: Path) -> None:
    out = run_squall("hello:ap", "--port", "0", cwd=app_dir)
    assert out.returncode == 3
    assert 'Attribute "ap" not found in module "hello"' in out.stderr
    assert "It has: app" in out.stderr


def test_bad_option_value_is_one_line(app_dir: Path) -> None:
    out = run_squall("hello:app", "--port", "70000", cwd=app_dir)
    assert out.returncode == 2
    assert out.stderr.strip() == "squall: error: --port: must be between 0 and 65535, got 70000"


def test_env_var_sets_option(squall_process, app_dir: Path) -> None:
    proc = squall_process(
        "hello:app", cwd=app_dir, env={"SQUALL_PORT": "0", "SQUALL_ROOT_PATH": "/api"}
    )
    port = proc.wait_started()
    assert httpx.get(f"http://127.0.0.1:{port}/x").text == "/api/x -"


def test_env_file_is_loaded(squall_process, app_dir: Path) -> None:
    (app_dir / ".env").write_text("GREETING=hello-from-env\n")
    proc = squall_process("hello:app", "--port", "0", "--env-file", ".env", cwd=app_dir)
    port = proc.wait_started()
    assert httpx.get(f"http://127.0.0.1:{port}/").text == "/ hello-from-env"


def test_app_dir_option(squall_process, app_dir: Path) -> None:
    proc = squall_process("hello:app", "--port", "0", "--app-dir", str(app_dir))
    port = proc.wait_started()
    assert httpx.get(f"http://127.0.0.1:{port}/a").text == "/a -"


def test_unix_socket(squall_process, app_dir: Path) -> None:
    path = app_dir / "squall.sock"
    proc = squall_process("hello:app", "--uds", str(path), cwd=app_dir)
    proc.wait_for("running on unix socket")
    assert (path.stat().st_mode & 0o777) == 0o666
    transport = httpx.HTTPTransport(uds=str(path))
    with httpx.Client(transport=transport) as client:
        assert client.get("http://squall/u").text == "/u -"
    assert proc.stop(signal.SIGINT) == 0
    assert not path.exists()


def test_inherited_fd(app_dir: Path) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "squall", "hello:app", "--fd", str(sock.fileno())],
        cwd=app_dir,
        pass_fds=[sock.fileno()],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "running on" in line:
                break
        assert httpx.get(f"http://127.0.0.1:{port}/fd").text == "/fd -"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0
        sock.close()


def test_json_log_config(squall_process, app_dir: Path) -> None:
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "CUSTOM %(levelname)s %(message)s"}},
        "handlers": {
            "out": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "squall": {"handlers": ["out"], "level": "INFO", "propagate": False},
            "squall.access": {"handlers": ["out"], "level": "INFO", "propagate": False},
        },
    }
    (app_dir / "log.json").write_text(json.dumps(config))
    proc = squall_process("hello:app", "--port", "0", "--log-config", "log.json", cwd=app_dir)
    port = proc.wait_started()
    httpx.get(f"http://127.0.0.1:{port}/logged")
    proc.wait_for(r'CUSTOM INFO .*"GET /logged HTTP/1.1" 200')
    assert "CUSTOM INFO Application startup complete." in proc.output


def test_hanging_startup_obeys_sigint(app_dir: Path) -> None:
    (app_dir / "hang.py").write_text(
        textwrap.dedent("""
        import asyncio
        async def app(scope, receive, send):
            if scope["type"] == "lifespan":
                await receive()
                print("STARTING", flush=True)
                await asyncio.sleep(3600)
    """)
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "squall", "hang:app", "--port", "0", "--lifespan", "on"],
        cwd=app_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "STARTING" in line:
            break
    proc.send_signal(signal.SIGINT)
    assert proc.wait(15) == 3
    assert "Interrupted during application startup." in proc.stdout.read()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{bad", "--log-config: Expecting property name"),
        ('{"version": 1, "handlers": {"x": {"class": "nope.Handler"}}}', "--log-config: Unable"),
    ],
)
def test_bad_log_config_is_one_line_and_exit_3(app_dir: Path, content: str, expected: str) -> None:
    (app_dir / "log.json").write_text(content)
    out = run_squall("hello:app", "--port", "0", "--log-config", "log.json", cwd=app_dir)
    assert out.returncode == 3
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"squall: error: {expected}")
