"""Autobahn TestSuite conformance runs, driven by ``kosoku`` (PyPI), against a server.

kosoku is a native (Rust) fuzzing client that runs the Autobahn TestSuite's own case
files; its Python API is ``await kosoku.run_fuzzingclient(url, cases, exclude_cases,
concurrency)``, which returns one ``CaseResult`` per case, or raises
``kosoku.FailureError`` (carrying *all* the results in ``.results``) when any case
did not pass.

Library::

    run_cases("ws://127.0.0.1:8000", ["1.*", "2.*"])  # {"1.1.1": "OK", ...}
    summarize(results).format()

CLI (starts the server on a free 127.0.0.1 port, waits for it, runs, stops it)::

    python -m tests.compliance.autobahn \\
        --server-cmd "python -m uvicorn tests.apps.ws_echo:app --port {port}" \\
        --cases "1.*,2.*" [--report out.json] [--kosoku-reports DIR]

The server command is split like a shell line; ``{port}`` is replaced by the chosen
port and a leading ``python`` (or ``{python}`` anywhere) by this interpreter. The exit
status is 0 when every case passed, 1 when some did not, 2 on a usage or startup error.

Case groups: Autobahn has no 8.* and no 11.*; kosoku rejects a pattern that matches
no case (``ValueError: no cases match pattern``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

#: Cases that run in the normal test suite (fast: ~300 cases, well under a minute).
CORE_GROUPS = ("1", "2", "3", "4", "5", "6", "7", "9", "10")
CORE_CASES = tuple(f"{group}.*" for group in CORE_GROUPS)
#: permessage-deflate cases: slow (1000 messages per case), run by scripts/autobahn-compression.
COMPRESSION_CASES = ("12.*", "13.*")

#: Verdicts that count as conformant, for the message exchange and for the closing handshake.
PASSING = frozenset({"OK", "NON-STRICT", "INFORMATIONAL"})
PASSING_CLOSE = frozenset({"OK", "INFORMATIONAL"})

SERVER_CMD_ENV = "SQUALL_AUTOBAHN_SERVER_CMD"
DEFAULT_SERVER_CMD = (
    "python -m squall tests.apps.ws_echo:app --port {port} --log-level warning"
    " --ws-max-size 16777216"
)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class CaseOutcome:
    """The parts of a kosoku ``CaseResult`` worth keeping and printing."""

    case_id: str
    behavior: str
    behavior_close: str
    passed: bool
    duration_ms: int
    result: str = ""
    result_close: str = ""
    remote_close_code: int | None = None
    remote_close_reason: str | None = None

    @property
    def verdict(self) -> str:
        """``behavior``, or ``FAILED`` when only the closing handshake failed."""
        if self.behavior in PASSING and not self.passed:
            return "FAILED"
        return self.behavior

    def describe(self) -> str:
        text = f"{self.case_id}: behavior={self.behavior} close={self.behavior_close}"
        if self.remote_close_code is not None:
            text += f" (remote close {self.remote_close_code}"
            text += f" {self.remote_close_reason!r})" if self.remote_close_reason else ")"
        reason = self.result if self.behavior not in PASSING else self.result_close
        return f"{text}: {reason}" if reason else text

    @classmethod
    def from_kosoku(cls, result: Any) -> CaseOutcome:
        return cls(
            case_id=result.case_id,
            behavior=result.behavior.value,
            behavior_close=result.behavior_close.value,
            passed=bool(result.passed),
            duration_ms=int(result.duration),
            result=result.result or "",
            result_close=result.result_close or "",
            remote_close_code=result.remote_close_code,
            remote_close_reason=result.remote_close_reason,
        )


@dataclass
class Summary:
    total: int
    counts: dict[str, int]
    failures: list[str]
    details: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.total > 0 and not self.failures

    def format(self) -> str:
        counts = ", ".join(f"{name} {n}" for name, n in sorted(self.counts.items()))
        lines = [f"{self.total} cases: {counts or 'none'}"]
        if self.failures:
            lines.append(f"{len(self.failures)} not passing:")
            lines.extend(f"  {self.details.get(case, case)}" for case in self.failures)
        return "\n".join(lines)


def case_sort_key(case_id: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else -1 for part in case_id.split("."))


def summarize(results: Mapping[str, str] | Iterable[CaseOutcome]) -> Summary:
    """Counts per verdict and the cases that did not pass.

    Takes ``run_cases``' mapping (case id -> verdict) or ``CaseOutcome`` objects
    (whose failures then carry the close code and kosoku's explanation).
    """
    if isinstance(results, Mapping):
        verdicts = dict(results)
        details: dict[str, str] = {}
    else:
        outcomes = list(results)
        verdicts = {o.case_id: o.verdict for o in outcomes}
        details = {o.case_id: o.describe() for o in outcomes if o.verdict not in PASSING}
    failures = sorted((c for c, v in verdicts.items() if v not in PASSING), key=case_sort_key)
    return Summary(len(verdicts), dict(Counter(verdicts.values())), failures, details)


# --------------------------------------------------------------------------- running kosoku


def split_cases(spec: str | Sequence[str]) -> list[str]:
    """``"1.*, 2.*"`` or ``["1.*", "2.*,3.*"]`` -> ``["1.*", "2.*", "3.*"]``."""
    items = [spec] if isinstance(spec, str) else list(spec)
    return [case.strip() for item in items for case in item.split(",") if case.strip()]


async def run_kosoku(
    url: str,
    cases: Sequence[str],
    exclude: Sequence[str] | None = None,
    concurrency: int = 1,
) -> list[Any]:
    """kosoku's raw ``CaseResult`` list, whether or not every case passed."""
    import kosoku  # imported here so that collecting the tests works without it

    try:
        return list(await kosoku.run_fuzzingclient(url, list(cases), exclude, concurrency))
    except kosoku.FailureError as failure:
        return list(failure.results)


def run_case_results(
    url: str,
    cases: Sequence[str],
    exclude: Sequence[str] | None = None,
    concurrency: int = 1,
    timeout: float | None = None,
) -> list[Any]:
    """Synchronous ``run_kosoku`` with an overall time limit (``TimeoutError``)."""
    coro = run_kosoku(url, split_cases(cases), exclude, concurrency)
    return asyncio.run(asyncio.wait_for(coro, timeout))


def run_outcomes(
    url: str,
    cases: Sequence[str],
    exclude: Sequence[str] | None = None,
    concurrency: int = 1,
    timeout: float | None = None,
) -> list[CaseOutcome]:
    results = run_case_results(url, cases, exclude, concurrency, timeout)
    return [CaseOutcome.from_kosoku(r) for r in results]


def run_cases(url: str, cases: list[str]) -> dict[str, str]:
    """Runs the cases (ids or ``*`` globs) against ``url``: case id -> verdict.

    The verdict is Autobahn's ``behavior`` (OK, NON-STRICT, INFORMATIONAL, FAILED,
    UNIMPLEMENTED, ERROR...), downgraded to FAILED when the message exchange passed
    but the closing handshake did not (kosoku's ``passed`` is the reference).
    """
    return {o.case_id: o.verdict for o in run_outcomes(url, cases)}


# --------------------------------------------------------------------------- the server


class ServerExitedError(RuntimeError):
    def __init__(self, returncode: int | None, output: str, message: str) -> None:
        super().__init__(f"{message}\n--- server output ---\n{output}")
        self.returncode = returncode
        self.output = output


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def server_argv(cmd: str | Sequence[str], port: int) -> list[str]:
    parts = shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
    argv = [p.replace("{port}", str(port)).replace("{python}", sys.executable) for p in parts]
    if argv and argv[0] in ("python", "python3"):
        argv[0] = sys.executable
    return argv


class ServerProcess:
    """A server command run as a subprocess on a free 127.0.0.1 port.

    ``start()`` returns once the port accepts TCP connections (polled), and raises
    ``ServerExitedError`` if the process exits first or is not listening in time.
    """

    def __init__(
        self,
        cmd: str | Sequence[str],
        *,
        cwd: Path | str = ROOT,
        env: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.cmd = cmd
        self.cwd = cwd
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.host = host
        self.port = port or free_port(host)
        self.startup_timeout = startup_timeout
        self.argv = server_argv(cmd, self.port)
        self.proc: subprocess.Popen[str] | None = None
        self._lines: list[str] = []
        self._reader: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def output(self) -> str:
        return "".join(self._lines)

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.append(line)

    def _listening(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0):
                return True
        except OSError:
            return False

    def start(self) -> ServerProcess:
        self.proc = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",  # never let odd bytes stop the reader (and block the server)
            start_new_session=True,  # its own process group: signalled as a whole in stop()
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + self.startup_timeout
        while not self._listening():
            try:
                # Doubles as the polling interval: returns at once if the server exits.
                self.proc.wait(timeout=0.02)
            except subprocess.TimeoutExpired:
                if time.monotonic() > deadline:
                    self.stop()
                    raise ServerExitedError(
                        None, self.output, f"server not listening on {self.port} in time"
                    ) from None
                continue
            self._join_reader()
            raise ServerExitedError(
                self.proc.returncode,
                self.output,
                f"server exited with status {self.proc.returncode} before listening: "
                + shlex.join(self.argv),
            )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _signal(self, sig: int) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGINT (graceful shutdown), then SIGKILL after ``grace`` seconds."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self._signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait()
        self._join_reader()
        return self.proc.returncode

    def _join_reader(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=5)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running_server(cmd: str | Sequence[str], **options: Any) -> Iterator[ServerProcess]:
    with ServerProcess(cmd, **options) as server:
        yield server


# --------------------------------------------------------------------------- CLI


def _report(outcomes: list[CaseOutcome], summary: Summary, meta: dict[str, Any]) -> dict[str, Any]:
    return {
        **meta,
        "summary": {
            "total": summary.total,
            "counts": summary.counts,
            "failures": summary.failures,
            "ok": summary.ok,
        },
        "results": {o.case_id: {**asdict(o), "verdict": o.verdict} for o in outcomes},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.compliance.autobahn",
        description="Run Autobahn TestSuite cases (with kosoku) against a WebSocket server.",
    )
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--server-cmd",
        default=os.environ.get(SERVER_CMD_ENV, DEFAULT_SERVER_CMD),
        help="command starting the server; {port} is replaced by a free port, a leading"
        f" 'python' by this interpreter (default: ${SERVER_CMD_ENV} or %(default)r)",
    )
    target.add_argument("--url", help="test an already running server instead (ws://host:port)")
    parser.add_argument(
        "--cases",
        default=",".join(CORE_CASES),
        help="comma-separated case ids or globs (default: %(default)s)",
    )
    parser.add_argument("--exclude", default="", help="comma-separated case ids or globs")
    parser.add_argument("--concurrency", type=int, default=1, help="cases run in parallel")
    parser.add_argument("--timeout", type=float, default=None, help="overall time limit in seconds")
    parser.add_argument("--report", type=Path, help="write a JSON report here")
    parser.add_argument(
        "--kosoku-reports",
        type=Path,
        help="also write kosoku's Autobahn-style per-case JSON/HTML reports (with wire logs)",
    )
    parser.add_argument("--cwd", type=Path, default=ROOT, help="server working directory")
    args = parser.parse_args(argv)

    cases = split_cases(args.cases)
    exclude = split_cases(args.exclude) or None
    started = time.monotonic()
    server: ServerProcess | None = None
    try:
        if args.url:
            url = args.url
        else:
            server = ServerProcess(args.server_cmd, cwd=args.cwd).start()
            url = server.url
            print(f"server: {shlex.join(server.argv)}", file=sys.stderr)
        print(f"running {','.join(cases)} against {url}", file=sys.stderr)
        results = run_case_results(url, cases, exclude, args.concurrency, args.timeout)
    except ServerExitedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # kosoku: "no cases match pattern: 8.*"
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except asyncio.TimeoutError:
        print(f"error: not finished within {args.timeout} s", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            crashed = not server.alive()
            status = server.stop()
            if crashed:
                print(f"warning: the server had exited (status {status})", file=sys.stderr)
            lines = server.output.rstrip().splitlines()
            if lines:
                shown = "\n".join(lines[-40:])
                print(f"--- server output ({len(lines)} lines, last 40) ---", file=sys.stderr)
                print(shown, file=sys.stderr)
    elapsed = time.monotonic() - started

    outcomes = [CaseOutcome.from_kosoku(r) for r in results]
    summary = summarize(outcomes)
    print(summary.format())
    print(f"duration: {elapsed:.1f} s")
    if args.report:
        meta = {
            "url": url,
            "server_cmd": None if args.url else args.server_cmd,
            "cases": cases,
            "exclude": exclude or [],
            "duration_s": round(elapsed, 2),
        }
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(_report(outcomes, summary, meta), indent=2) + "\n")
    if args.kosoku_reports:
        from kosoku._report import write_reports  # kosoku's own (private) report writer

        write_reports(results, str(args.kosoku_reports))
    return 0 if summary.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
