"""Interleaved throughput comparison of Squall against other ASGI servers.

For each scenario, every round starts each server fresh (pinned to CPU 0), waits for
its port, checks one response, warms up, then measures with wrk (pinned to CPU 1).
The server order rotates each round because the first slot of a round measures
lower. Reported: median req/s over rounds, median p99 latency, and the median of
the per-round ratios to uvicorn. See bench/README.md.

usage: .venv/bin/python bench/run.py --rounds 3 --duration 5
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import importlib.metadata
import importlib.util
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
SERVER_CPU = "0"
CLIENT_CPU = "1"
POST_BODY = b"x" * 65536  # must match bench/post.lua


@dataclass(frozen=True)
class Scenario:
    app: str
    path: str = "/"
    method: str = "GET"
    body: bytes | None = None
    expected: bytes | None = None  # exact response body, when it is fixed
    lua: str | None = None
    websocket: bool = False  # measured with bench/wsload.py instead of wrk
    http2: bool = False  # measured with h2load -c16 -m10 (cleartext prior knowledge)
    baseline: str = "uvicorn"  # the server ratios are given against
    servers: tuple[str, ...] | None = None  # only these servers (None: all)


SCENARIOS: dict[str, Scenario] = {
    "plaintext": Scenario("bench.apps:plaintext", expected=b"Hello, world!"),
    "json": Scenario("bench.apps:json"),
    "post": Scenario(
        "bench.apps:echo",
        method="POST",
        body=POST_BODY,
        expected=POST_BODY,
        lua=str(BENCH / "post.lua"),
    ),
    "stream": Scenario("bench.apps:stream", expected=b"x" * 16384),
    "fastapi": Scenario("bench.fastapi_app:app", path="/items/42"),
    "websocket": Scenario("bench.apps:ws_echo", websocket=True),
    "pipeline": Scenario(
        "bench.apps:plaintext", expected=b"Hello, world!", lua=str(BENCH / "pipeline.lua")
    ),
    "http2": Scenario(
        "bench.apps:plaintext",
        expected=b"Hello, world!",
        http2=True,
        baseline="hypercorn",
        servers=("squall", "hypercorn", "granian"),
    ),
}

SERVERS: dict[str, str] = {
    "squall": "squall {app} --port {port} --no-access-log --log-level warning",
    "uvicorn": "uvicorn {app} --port {port} --no-access-log --log-level warning",
    "granian": "granian --interface asgi --loop uvloop --workers 1 --host 127.0.0.1"
    " --port {port} --log-level warning {app}",
    "hypercorn": "hypercorn {app} --bind 127.0.0.1:{port} --worker-class uvloop"
    " --log-level warning",
}


@dataclass
class Result:
    rps: float | None = None
    p99_ms: float | None = None
    problems: list[str] = field(default_factory=list)


def executable(name: str) -> str | None:
    """The server's script next to this interpreter (the venv), else on PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name)


def available(name: str) -> bool:
    return importlib.util.find_spec(name) is not None and executable(name) is not None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def check_response(port: int, scenario: Scenario) -> str | None:
    """Make one request; return a description of what is wrong, if anything."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(scenario.method, scenario.path, body=scenario.body)
        response = conn.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as exc:
        return f"check request failed: {exc!r}"
    finally:
        conn.close()
    if not 200 <= response.status < 300:
        return f"check request got status {response.status}"
    if scenario.expected is not None and body != scenario.expected:
        return f"check request got a wrong body ({len(body)} bytes)"
    return None


def wrk(port: int, scenario: Scenario, seconds: int) -> str:
    if scenario.websocket:  # 32 connections echoing small messages
        cmd = ["taskset", "-c", CLIENT_CPU, sys.executable, str(BENCH / "wsload.py"), str(port)]
        cmd += ["32", str(seconds)]
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=seconds + 60, check=False
        )
        return done.stdout + done.stderr
    if scenario.http2:
        cmd = ["taskset", "-c", CLIENT_CPU, "h2load", "-D", str(seconds), "-c16", "-m10"]
        cmd.append(f"http://127.0.0.1:{port}{scenario.path}")
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=seconds + 60, check=False
        )
        return done.stdout + done.stderr
    cmd = ["taskset", "-c", CLIENT_CPU, "wrk", "-t1", "-c64", f"-d{seconds}s", "--latency"]
    if scenario.lua:
        cmd += ["-s", scenario.lua]
    cmd.append(f"http://127.0.0.1:{port}{scenario.path}")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    return done.stdout + done.stderr


UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def parse_h2load(out: str, result: Result) -> None:
    rps = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out)
    result.rps = float(rps.group(1)) if rps else None
    if result.rps is None:
        result.problems.append(f"no h2load result: {' '.join(out.split())[:200]}")
    failed = re.search(r"(\d+) failed, (\d+) errored", out)
    if failed and (int(failed.group(1)) or int(failed.group(2))):
        result.problems.append(f"{failed.group(1)} failed, {failed.group(2)} errored requests")
    codes = re.search(r"status codes: \d+ 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if codes and any(int(n) for n in codes.groups()):
        result.problems.append(f"non-2xx responses: {codes.group(0)}")


def parse_wrk(out: str, result: Result) -> None:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out) or re.search(r"RPS:\s*([\d.]+)", out)
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.MULTILINE)
    result.rps = float(rps.group(1)) if rps else None
    result.p99_ms = float(p99.group(1)) * UNITS_MS[p99.group(2)] if p99 else None
    if result.rps is None:
        result.problems.append(f"no wrk result: {' '.join(out.split())[:200]}")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        result.problems.append(f"{non2xx.group(1)} non-2xx/3xx responses")
    sock_errors = re.search(r"Socket errors: (.*)", out)
    if sock_errors:
        result.problems.append(f"socket errors: {sock_errors.group(1).strip()}")


def measure(server: str, scenario: str, log: Path, duration: int, warmup: int) -> Result:
    """Start the server fresh, check it, warm it up, measure it, stop it."""
    result = Result()
    sc = SCENARIOS[scenario]
    port = free_port()
    args = shlex.split(SERVERS[server].format(app=sc.app, port=port))
    args[0] = executable(args[0]) or args[0]
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))
    with log.open("a") as log_file:
        log_file.write(f"=== {datetime.datetime.now().isoformat()} {shlex.join(args)}\n")
        log_file.flush()
        start = log.stat().st_size
        proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU, *args],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            if wait_port(port, proc):
                problem = None if sc.websocket else check_response(port, sc)
                if problem:
                    result.problems.append(problem)
                if warmup > 0:
                    wrk(port, sc, warmup)
                out = wrk(port, sc, duration)
                (parse_h2load if sc.http2 else parse_wrk)(out, result)
            else:
                result.problems.append(f"port {port} never opened")
        finally:
            code = stop(proc)
    if code is None:
        result.problems.append("server ignored SIGINT for 10s and was killed")
    elif code != 0:
        result.problems.append(f"server exit code {code}")
    logged = log.read_bytes()[start:].decode(errors="replace").strip()
    if logged:
        lines = logged.count("\n") + 1
        result.problems.append(f"server logged {lines} line(s), see {os.path.relpath(log, ROOT)}")
    return result


def stop(proc: subprocess.Popen[bytes]) -> int | None:
    """SIGINT the server's process group; SIGKILL it (and return None) after 10s."""
    if proc.poll() is not None:
        return proc.returncode
    os.killpg(proc.pid, signal.SIGINT)
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return None


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def run_scenario(scenario: str, servers: list[str], args: argparse.Namespace) -> list[str]:
    """All rounds of one scenario; returns its Markdown table rows."""
    sc = SCENARIOS[scenario]
    if sc.servers is not None:
        servers = [s for s in servers if s in sc.servers]
    results: dict[str, list[Result]] = {s: [] for s in servers}
    ratios: dict[str, list[float]] = {s: [] for s in servers}
    for rnd in range(args.rounds):
        k = rnd % len(servers)
        this: dict[str, Result] = {}
        for server in servers[k:] + servers[:k]:
            log = BENCH / "results" / f"{scenario}-{server}.log"
            res = measure(server, scenario, log, args.duration, args.warmup)
            this[server] = res
            results[server].append(res)
            note = f"  !! {'; '.join(res.problems)}" if res.problems else ""
            print(
                f"  {scenario} round {rnd + 1} {server:8s} {fmt(res.rps, '10.0f')} req/s"
                f"  p99 {fmt(res.p99_ms, '.2f')} ms{note}",
                flush=True,
            )
        base = this.get(sc.baseline)
        for server, res in this.items():
            if base and base.rps and res.rps:
                ratios[server].append(res.rps / base.rps)
    rows = []
    for server in servers:
        runs = results[server]
        rps = median([r.rps for r in runs if r.rps is not None])
        p99 = median([r.p99_ms for r in runs if r.p99_ms is not None])
        ratio = median(ratios[server])
        problems = sorted({p for r in runs for p in r.problems})
        rounds = ", ".join(fmt(r.rps, ".0f") for r in runs)
        notes = "; ".join(problems).replace("|", "/") or "ok"
        rows.append(
            f"| {scenario} | {server} | {fmt(rps, '.0f')} | {fmt(p99, '.2f')} "
            f"| {fmt(ratio, '.2f')} vs {sc.baseline} | {rounds} | {notes} |"
        )
    return rows


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of warm-up load")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "latest.md")
    args = parser.parse_args()
    scenarios = [s for s in args.scenarios.split(",") if s]
    servers = [s for s in args.servers.split(",") if s]
    for name in scenarios:
        if name not in SCENARIOS:
            parser.error(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
    for name in servers:
        if name not in SERVERS:
            parser.error(f"unknown server {name!r}; choose from {', '.join(SERVERS)}")
    missing = [s for s in servers if not available(s)]
    for name in missing:
        print(f"skipping {name}: not installed", file=sys.stderr)
    servers = [s for s in servers if s not in missing]
    if not servers:
        parser.error("no server to run")
    if "http2" in scenarios and shutil.which("h2load") is None:
        parser.error("h2load is not installed (Debian: nghttp2-client)")
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed")
    if (os.cpu_count() or 1) < 2:
        print("warning: fewer than 2 CPUs; server and client will share one", file=sys.stderr)

    (BENCH / "results").mkdir(exist_ok=True)
    for scenario in scenarios:
        for server in servers:
            (BENCH / "results" / f"{scenario}-{server}.log").unlink(missing_ok=True)

    command = shlex.join([Path(sys.executable).name, *sys.argv])
    versions = ", ".join(f"{s} {version(s)}" for s in servers)
    header = [
        "# Squall benchmark",
        "",
        f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- python: {platform.python_version()} ({platform.python_implementation()})",
        f"- cpu: {cpu_model()} ({os.cpu_count()} CPUs; server on CPU {SERVER_CPU},"
        f" wrk -t1 -c64 on CPU {CLIENT_CPU})",
        f"- servers: {versions}",
        f"- load average at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())}"
        " (other work on the machine skews results)",
        f"- command: `{command}`",
        f"- {args.rounds} interleaved rounds of {args.duration}s (after {args.warmup}s"
        " warm-up); req/s and p99 are medians over rounds; ratio is the median of"
        " per-round ratios to the baseline (uvicorn; hypercorn for http2, which uvicorn"
        " does not serve); http2 is measured with h2load -c16 -m10 on cleartext",
        "",
        "| scenario | server | median req/s | p99 ms | ratio | rounds req/s | notes |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    rows: list[str] = []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for scenario in scenarios:
        print(f"{scenario}:", flush=True)
        rows += run_scenario(scenario, servers, args)
        report = "\n".join([*header, *rows]) + "\n"
        args.out.write_text(report)  # after each scenario, so progress can be followed
    print()
    print(report, end="")
    return 1 if any(not row.endswith("| ok |") for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
