"""Autobahn TestSuite cases 1.* to 10.* (kosoku) against a server running ``ws_echo``.

Every case must end OK, NON-STRICT or INFORMATIONAL, for the message exchange and
for the closing handshake. The compression cases (12.*, 13.*) are slow and run
separately: ``scripts/autobahn-compression``.

Environment:

* ``SQUALL_AUTOBAHN_SERVER_CMD``: the server command (default: ``DEFAULT_SERVER_CMD``,
  Squall); ``{port}`` is replaced by a free port, a leading ``python`` by this
  interpreter. E.g. ``python -m uvicorn tests.apps.ws_echo:app --port {port}
  --log-level warning`` to check the harness against Uvicorn.
* ``SQUALL_AUTOBAHN_EXCLUDE``: comma-separated case ids/globs to leave out (default:
  none; Uvicorn's websockets backend needs ``7.1.5``).

The tests are skipped while Squall rejects ``--ws websockets`` (exit status 2).
"""

from __future__ import annotations

import functools
import os
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.compliance.autobahn import (
    CORE_GROUPS,
    DEFAULT_SERVER_CMD,
    SERVER_CMD_ENV,
    ServerExitedError,
    ServerProcess,
    run_outcomes,
    split_cases,
    summarize,
)

SERVER_CMD = os.environ.get(SERVER_CMD_ENV) or DEFAULT_SERVER_CMD
EXCLUDE = split_cases(os.environ.get("SQUALL_AUTOBAHN_EXCLUDE", ""))
#: Per case group; the slowest group (6.*) takes about 8 s against Uvicorn.
GROUP_TIMEOUT = 240


def _runs_squall(cmd: str) -> bool:
    argv = shlex.split(cmd)
    return Path(argv[0]).name == "squall" or "squall" in argv[1:3]


@functools.cache
def squall_rejects_websockets() -> bool:
    """True while ``python -m squall --ws websockets`` exits with status 2 (unsupported)."""
    if not _runs_squall(SERVER_CMD):
        return False
    app = "tests.apps.ws_echo:app"
    probe = ServerProcess(
        [sys.executable, "-m", "squall", app, "--port", "{port}", "--ws", "websockets"]
    )
    try:
        probe.start()
    except ServerExitedError as exc:
        return exc.returncode == 2
    probe.stop()
    return False


# A condition string: evaluated only when the tests are about to run, not at collection.
pytestmark = pytest.mark.skipif(
    "squall_rejects_websockets()", reason="WebSocket support not merged yet"
)


@pytest.fixture(scope="module", autouse=True)
def _isolate_kosoku_shims() -> Iterator[None]:
    """kosoku puts a ``pkg_resources`` shim and its case packages on ``sys.path``;
    take them off again so the rest of the test session imports the real ones."""
    path = list(sys.path)
    modules = set(sys.modules)
    yield
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        if name.split(".")[0] in ("pkg_resources", "autobahn", "autobahntestsuite"):
            del sys.modules[name]


@pytest.fixture(scope="module")
def ws_server() -> Iterator[ServerProcess]:
    with ServerProcess(SERVER_CMD) as server:
        yield server


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


@pytest.mark.timeout(GROUP_TIMEOUT)
@pytest.mark.parametrize("group", CORE_GROUPS)
def test_autobahn_cases(ws_server: ServerProcess, group: str) -> None:
    assert ws_server.alive(), f"the server had exited:\n{_tail(ws_server.output)}"
    outcomes = run_outcomes(
        ws_server.url, [f"{group}.*"], exclude=EXCLUDE or None, timeout=GROUP_TIMEOUT - 20
    )
    summary = summarize(outcomes)
    print(f"{group}.*: {summary.format()}")
    assert summary.total > 0
    if not summary.ok:
        message = f"Autobahn {group}.*: {summary.format()}"
        if ws_server.output.strip():
            message += f"\n--- server output (tail) ---\n{_tail(ws_server.output)}"
        pytest.fail(message, pytrace=False)
