"""Interleaved comparison of Squall against other ASGI servers: one command, a table and a chart.

For each scenario, every round starts each server fresh (one process or one worker,
pinned to CPU 0), waits for its port, checks one response, warms up, then measures
with the load generator pinned to CPU 1. The server order rotates each round
because the first slot of a round measures lower. Reported: median req/s over
rounds, median p99 latency, and the median of the per-round ratios to Uvicorn
(Hypercorn for http2); for ``idle``, the server's resident memory per idle
connection. Writes a Markdown report and a PNG chart. See bench/README.md.

usage: .venv/bin/python bench/run.py [--rounds 3] [--duration 5] [--python current,3.12]
"""

from __future__ import annotations

import argparse
import base64
import datetime
import glob
import hashlib
import http.client
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
SERVER_CPU = "0"
CLIENT_CPU = "1"
POST_BODY = b"x" * 65536  # must match bench/post.lua
HELLO = b"Hello, world!"
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@dataclass(frozen=True)
class Scenario:
    app: str
    path: str = "/"
    method: str = "GET"
    body: bytes | None = None
    expected: bytes | None = None  # exact response body, when it is fixed
    lua: str | None = None
    # how it is loaded: "http" (wrk -t1 -c64), "websocket" (bench/wsload.py, 32
    # connections), "http2" (h2load -c16 -m10, cleartext prior knowledge) or "idle"
    # (bench/idleload.py: N idle keep-alive connections and one active client)
    kind: str = "http"
    latency: bool = True  # False: the load generator's latency figures are meaningless
    baseline: str = "uvicorn"  # the server ratios are given against
    modules: tuple[str, ...] = ()  # must import in the servers' interpreter


SCENARIOS: dict[str, Scenario] = {
    "plaintext": Scenario("bench.apps:plaintext", expected=HELLO),
    "json": Scenario("bench.apps:json"),
    "post": Scenario(
        "bench.apps:echo",
        method="POST",
        body=POST_BODY,
        expected=POST_BODY,
        lua=str(BENCH / "post.lua"),
    ),
    "stream": Scenario("bench.apps:stream", expected=b"x" * 16384),
    "fastapi": Scenario("bench.fastapi_app:app", path="/items/42", modules=("fastapi",)),
    "websocket": Scenario("bench.apps:ws_echo", kind="websocket"),
    # wrk records one latency per 16-request batch but computes its percentiles
    # as if per request, so its p99 here is 0: not reported
    "pipeline": Scenario(
        "bench.apps:plaintext", expected=HELLO, lua=str(BENCH / "pipeline.lua"), latency=False
    ),
    "http2": Scenario("bench.apps:plaintext", expected=HELLO, kind="http2", baseline="hypercorn"),
    "idle": Scenario("bench.apps:plaintext", expected=HELLO, kind="idle"),
}


@dataclass(frozen=True)
class Option:
    """Arguments that depend on the version of an optional distribution."""

    dist: str
    minimum: tuple[int, ...]
    enough: str  # arguments when ``dist`` is installed at ``minimum`` or newer
    otherwise: str  # arguments when it is not

    def args(self, versions: dict[str, str | None]) -> str:
        have = versions.get(self.dist)
        numbers = tuple(int(n) for n in re.findall(r"\d+", have or "")[:3])
        return self.enough if have and numbers >= self.minimum else self.otherwise


@dataclass(frozen=True)
class Server:
    command: str  # run as `python -m COMMAND` on the servers' interpreter; {app}, {port}
    modules: tuple[str, ...]  # must import there, else the server is skipped
    dists: tuple[str, ...]  # whose versions the report gives
    http2: str | None = None  # extra arguments to serve cleartext HTTP/2; None: it cannot
    # extra arguments for "idle": keep-alive longer than the run, a big backlog, room for
    # {limit} (--idle-connections + 1024) connections
    idle: str = ""
    options: tuple[Option, ...] = ()
    stop: signal.Signals = signal.SIGINT  # sent to the main process to stop the server
    compiled: bool = False  # runs Squall's mypyc build (scripts/compile) on PYTHONPATH


SERVERS: dict[str, Server] = {
    "squall": Server(
        "squall {app} --port {port} --no-access-log --log-level warning",
        modules=("squall",),
        dists=("squall",),
        http2="",
        idle="--timeout-keep-alive 600 --backlog 16384",
    ),
    # the same source with its hot modules compiled by mypyc (setup.py, scripts/compile),
    # built for the servers' interpreter into .build/compiled-pyX.Y on first use
    "squall-compiled": Server(
        "squall {app} --port {port} --no-access-log --log-level warning",
        modules=("squall", "mypyc"),
        dists=("squall", "mypy"),
        http2="",
        idle="--timeout-keep-alive 600 --backlog 16384",
        compiled=True,
    ),
    "uvicorn": Server(
        "uvicorn {app} --port {port} --loop uvloop --http httptools --no-access-log"
        " --log-level warning",
        modules=("uvicorn", "uvloop", "httptools"),
        dists=("uvicorn", "httptools", "uvloop"),
        idle="--timeout-keep-alive 600 --backlog 16384",
    ),
    "granian": Server(
        "granian --interface asgi --loop uvloop --workers 1 --host 127.0.0.1 --port {port}"
        " --log-level warning {app}",
        modules=("granian", "uvloop"),
        dists=("granian",),
        http2="",
        # backpressure (concurrent connections per worker) defaults to the backlog;
        # 60 s is the longest header-read timeout, which also bounds idle keep-alive
        idle="--backlog 16384 --backpressure {limit} --http1-header-read-timeout 60000",
    ),
    "hypercorn": Server(
        "hypercorn {app} --bind 127.0.0.1:{port} --worker-class uvloop --log-level warning",
        modules=("hypercorn", "uvloop"),
        dists=("hypercorn",),
        http2="",
        idle="--keep-alive 600 --backlog 16384",
    ),
    # Gunicorn's own asyncio worker (gunicorn/workers/gasgi.py); its access log is off
    # unless --access-logfile is given. Its C parser (gunicorn[fast]) needs gunicorn_h1c
    # 0.6.14 or newer: 0.6.10 drops connections on the 64 KiB POST, and the default
    # (auto) would pick it, so the pure-Python parser is asked for explicitly then.
    # SIGTERM is Gunicorn's graceful stop (SIGINT makes the arbiter send SIGQUIT).
    "gunicorn": Server(
        "gunicorn {app} --worker-class asgi --workers 1 --bind 127.0.0.1:{port}"
        " --asgi-loop uvloop --log-level warning --no-control-socket",
        modules=("gunicorn.workers.gasgi", "uvloop"),
        dists=("gunicorn", "gunicorn_h1c"),
        http2="--http-protocols h2,h1 --http2-cleartext prior-knowledge",
        idle="--keep-alive 600 --backlog 16384 --worker-connections {limit}",
        options=(Option("gunicorn_h1c", (0, 6, 14), "--http-parser fast", "--http-parser python"),),
        stop=signal.SIGTERM,
    ),
    # Gunicorn's arbiter with Uvicorn's (deprecated, still shipped) worker class,
    # which picks uvloop and httptools when they are installed. Stopped with SIGTERM:
    # it ignores the SIGQUIT that the arbiter sends on SIGINT (killed after 30 s)
    "gunicorn-uvicorn": Server(
        "gunicorn {app} --worker-class uvicorn.workers.UvicornWorker --workers 1"
        " --bind 127.0.0.1:{port} --log-level warning --no-control-socket",
        modules=("gunicorn", "uvicorn.workers", "uvloop", "httptools"),
        dists=("gunicorn", "uvicorn"),
        idle="--keep-alive 600 --backlog 16384",
        stop=signal.SIGTERM,
    ),
}

# Run by the servers' interpreter: which modules import, and distribution versions.
PROBE = """
import importlib, importlib.metadata, json, platform, sys, warnings
warnings.simplefilter("ignore")
sep = sys.argv.index("--")
imports = {}
for name in sys.argv[1:sep]:
    try:
        importlib.import_module(name)
        imports[name] = None
    except Exception as exc:
        imports[name] = f"{type(exc).__name__}: {exc}"
versions = {}
for name in sys.argv[sep + 1:]:
    try:
        versions[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        versions[name] = None
print(json.dumps({"version": platform.python_version(),
                  "implementation": platform.python_implementation(),
                  "imports": imports, "versions": versions}))
"""


@dataclass(frozen=True)
class Target:
    """The interpreter the servers run on, and what is installed there."""

    python: str
    version: str
    implementation: str
    tag: str  # added to the output file names: "" for the runner's own interpreter
    imports: dict[str, str | None]  # module -> None if it imports, else why not
    versions: dict[str, str | None]

    def missing(self, modules: tuple[str, ...]) -> str | None:
        errors = []
        for module in modules:
            error = self.imports.get(module)
            if error and error.startswith("ModuleNotFoundError"):
                errors.append(module)
            elif error:
                errors.append(f"{module} ({error})")
        return "cannot import " + ", ".join(errors) if errors else None


@dataclass
class Result:
    rps: float | None = None
    p99_ms: float | None = None
    kib_per_conn: float | None = None
    problems: list[str] = field(default_factory=list)


def rel(path: Path | str) -> str:
    """``path`` relative to the repository root when it is inside it."""
    relative = os.path.relpath(path, ROOT)
    return str(path) if relative.startswith("..") else relative


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
    """Make one HTTP/1.1 request; return a description of what is wrong, if anything."""
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


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} of {size} bytes")
        data += chunk
    return data


def check_websocket(port: int, scenario: Scenario) -> str | None:
    """Open a WebSocket, send one text message and expect it echoed."""
    key = base64.b64encode(os.urandom(16))
    accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
    payload = b"squall bench check"
    mask = os.urandom(4)
    frame = bytes([0x81, 0x80 | len(payload)]) + mask
    frame += bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(
                b"GET /ws HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                + b"Sec-WebSocket-Key: "
                + key
                + b"\r\n\r\n"
            )
            head = b""
            while b"\r\n\r\n" not in head:
                head += recv_exactly(sock, 1)
            status = head.split(b"\r\n", 1)[0]
            if not status.startswith(b"HTTP/1.1 101"):
                return f"websocket check got {status.decode(errors='replace')!r}"
            if b"sec-websocket-accept: " + accept.lower() not in head.lower():
                return "websocket check got a wrong Sec-WebSocket-Accept"
            sock.sendall(frame)
            echo = recv_exactly(sock, 2 + len(payload))
    except OSError as exc:
        return f"websocket check failed: {exc!r}"
    if echo != bytes([0x81, len(payload)]) + payload:
        return f"websocket check got a wrong echo {echo[:40]!r}"
    return None


def check_http2(port: int, scenario: Scenario) -> str | None:
    """Make one request over cleartext HTTP/2 with prior knowledge (as h2load does)."""
    import h2.config
    import h2.connection
    import h2.events
    import h2.exceptions

    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    request = [(":method", "GET"), (":path", scenario.path), (":scheme", "http")]
    conn.send_headers(1, [*request, (":authority", f"127.0.0.1:{port}")], end_stream=True)
    status, body = b"", b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(conn.data_to_send())
            done = False
            while not done:
                data = sock.recv(65536)
                if not data:
                    return "http2 check: connection closed before the response ended"
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.ResponseReceived):
                        status = dict(event.headers or []).get(b":status", b"")
                    elif isinstance(event, h2.events.DataReceived):
                        body += event.data or b""
                        conn.acknowledge_received_data(
                            event.flow_controlled_length or 0, event.stream_id or 1
                        )
                    elif isinstance(event, h2.events.StreamEnded):
                        done = True
                    elif isinstance(event, h2.events.StreamReset | h2.events.ConnectionTerminated):
                        return f"http2 check: {event!r}"
                sock.sendall(conn.data_to_send())
    except (OSError, h2.exceptions.H2Error) as exc:
        return f"http2 check failed: {exc!r}"
    if not status.startswith(b"2"):
        return f"http2 check got status {status.decode(errors='replace') or 'none'}"
    if scenario.expected is not None and body != scenario.expected:
        return f"http2 check got a wrong body ({len(body)} bytes)"
    return None


def load(port: int, pid: int, scenario: Scenario, seconds: int, idle_connections: int) -> str:
    """Run the load generator pinned to the client CPU; return what it printed."""
    pin = ["taskset", "-c", CLIENT_CPU]
    url = f"http://127.0.0.1:{port}{scenario.path}"
    timeout = seconds + 60
    if scenario.kind == "websocket":  # 32 connections echoing small messages
        cmd = [*pin, sys.executable, str(BENCH / "wsload.py"), str(port), "32", str(seconds)]
    elif scenario.kind == "idle":
        cmd = [*pin, sys.executable, str(BENCH / "idleload.py"), str(port), str(pid)]
        cmd += [str(idle_connections), str(seconds)]
        timeout += 120 + idle_connections // 50
    elif scenario.kind == "http2":
        with tempfile.NamedTemporaryFile("r", prefix="h2load-", suffix=".tsv") as log:
            cmd = [*pin, "h2load", "-D", str(seconds), "-c16", "-m10", f"--log-file={log.name}"]
            done = subprocess.run(
                [*cmd, url], capture_output=True, text=True, timeout=timeout, check=False
            )
            times = sorted(int(line.split("\t")[2]) for line in log if line.count("\t") >= 2)
        out = done.stdout + done.stderr
        if times:  # h2load prints no percentiles; its per-request log has the durations
            out += f"\nP99_MS: {times[int(len(times) * 0.99)] / 1000:.3f}\n"
        return out
    else:
        cmd = [*pin, "wrk", "-t1", "-c64", f"-d{seconds}s", "--latency"]
        cmd += ["-s", scenario.lua] if scenario.lua else []
        cmd.append(url)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    return done.stdout + done.stderr


UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def keyed(out: str) -> dict[str, float]:
    """The ``KEY: number`` lines that bench/wsload.py and bench/idleload.py print."""
    return {k: float(v) for k, v in re.findall(r"^([A-Z0-9_]+): ([\d.]+)\s*$", out, re.M)}


def parse(out: str, scenario: Scenario, result: Result) -> None:
    values = keyed(out)
    result.p99_ms = values.get("P99_MS")
    if scenario.kind == "http2":
        rps = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out)
        result.rps = float(rps.group(1)) if rps else None
        failed = re.search(r"(\d+) failed, (\d+) errored", out)
        if failed and (int(failed.group(1)) or int(failed.group(2))):
            result.problems.append(f"{failed.group(1)} failed, {failed.group(2)} errored requests")
        codes = re.search(r"status codes: \d+ 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
        if codes and any(int(n) for n in codes.groups()):
            result.problems.append(f"non-2xx responses: {codes.group(0)}")
    elif scenario.kind in ("websocket", "idle"):
        result.rps = values.get("RPS")
        result.kib_per_conn = values.get("KIB_PER_CONN")
        if values.get("OPEN_FAILED"):
            result.problems.append(f"{values['OPEN_FAILED']:.0f} idle connections failed to open")
        if values.get("CLOSED"):
            result.problems.append(f"server closed {values['CLOSED']:.0f} idle connections")
    else:
        rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
        p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.MULTILINE)
        result.rps = float(rps.group(1)) if rps else None
        result.p99_ms = float(p99.group(1)) * UNITS_MS[p99.group(2)] if p99 else None
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        if non2xx:
            result.problems.append(f"{non2xx.group(1)} non-2xx/3xx responses")
        sock_errors = re.search(r"Socket errors: (.*)", out)
        if sock_errors:
            result.problems.append(f"socket errors: {sock_errors.group(1).strip()}")
    if not scenario.latency:
        result.p99_ms = None
    if result.rps is None:
        lines = [line.strip() for line in out.splitlines() if line.strip()]
        result.problems.append(f"no load result: {(lines or ['no output'])[-1][:200]}")


def server_args(
    name: str, scenario: Scenario, target: Target, port: int, idle_connections: int
) -> list[str]:
    server = SERVERS[name]
    args = [target.python, "-m", *shlex.split(server.command.format(app=scenario.app, port=port))]
    for option in server.options:
        args += shlex.split(option.args(target.versions))
    if scenario.kind == "http2" and server.http2:
        args += shlex.split(server.http2)
    if scenario.kind == "idle":
        args += shlex.split(server.idle.format(limit=idle_connections + 1024))
    return args


def measure(
    server: str, scenario: str, target: Target, log: Path, args: argparse.Namespace
) -> Result:
    """Start the server fresh, check it, warm it up, measure it, stop it."""
    result = Result()
    sc = SCENARIOS[scenario]
    port = free_port()
    cmd = server_args(server, sc, target, port, args.idle_connections)
    path = str(ROOT)
    if SERVERS[server].compiled:
        path = f"{compiled_dir(target)}{os.pathsep}{path}"
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=path)
    check = {"websocket": check_websocket, "http2": check_http2}.get(sc.kind, check_response)
    with log.open("a") as log_file:
        log_file.write(f"=== {datetime.datetime.now().isoformat()} {shlex.join(cmd)}\n")
        log_file.flush()
        start = log.stat().st_size
        proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU, *cmd],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            if wait_port(port, proc):
                problem = check(port, sc)
                if problem:
                    result.problems.append(problem)
                if args.warmup > 0 and sc.kind != "idle":
                    load(port, proc.pid, sc, args.warmup, args.idle_connections)
                out = load(port, proc.pid, sc, args.duration, args.idle_connections)
                parse(out, sc, result)
            else:
                result.problems.append(f"port {port} never opened")
        finally:
            code, leftovers = stop(proc, SERVERS[server].stop)
    if code is None:
        name = SERVERS[server].stop.name
        result.problems.append(f"server ignored {name} for 10s and was killed")
    elif leftovers:
        result.problems.append("server exited but left processes behind (killed)")
    elif code != 0:
        result.problems.append(f"server exit code {code}")
    logged = log.read_bytes()[start:].decode(errors="replace").strip()
    if logged:
        lines = logged.count("\n") + 1
        result.problems.append(f"server logged {lines} line(s), see {rel(log)}")
    return result


def stop(proc: subprocess.Popen[bytes], how: signal.Signals) -> tuple[int | None, bool]:
    """Signal the server's main process, as `kill PID` would (its workers are its
    business); SIGKILL its process group after 10s. Returns the exit code (None when
    it had to be killed) and whether processes of its group outlived it."""
    code = proc.poll()
    if code is None:
        os.kill(proc.pid, how)
        try:
            code = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = None
    deadline = time.monotonic() + (2 if code is not None else 0)
    while True:
        try:
            os.killpg(proc.pid, 0)  # anything left in the group?
        except ProcessLookupError:
            return code, False
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return code, code is not None


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def run_scenario(
    scenario: str, servers: list[str], target: Target, args: argparse.Namespace
) -> list[str]:
    """All rounds of one scenario; returns its Markdown table rows."""
    sc = SCENARIOS[scenario]
    idle = sc.kind == "idle"
    results: dict[str, list[Result]] = {s: [] for s in servers}
    ratios: dict[str, list[float]] = {s: [] for s in servers}
    for rnd in range(args.rounds):
        k = rnd % len(servers)
        this: dict[str, Result] = {}
        for server in servers[k:] + servers[:k]:
            log = RESULTS / f"{scenario}-{server}{target.tag}.log"
            res = measure(server, scenario, target, log, args)
            this[server] = res
            results[server].append(res)
            note = f"  !! {'; '.join(res.problems)}" if res.problems else ""
            memory = f"  {fmt(res.kib_per_conn, '.2f')} KiB/conn" if idle else ""
            print(
                f"  {scenario} round {rnd + 1} {server:16s} {fmt(res.rps, '10.0f')} req/s"
                f"  p99 {fmt(res.p99_ms, '.2f')} ms{memory}{note}",
                flush=True,
            )
        base = this.get(sc.baseline)
        for server, res in this.items():
            if idle and base and base.kib_per_conn and res.kib_per_conn is not None:
                ratios[server].append(res.kib_per_conn / base.kib_per_conn)
            elif not idle and base and base.rps and res.rps:
                ratios[server].append(res.rps / base.rps)
    rows = []
    for server in servers:
        runs = results[server]
        rps = median([r.rps for r in runs if r.rps is not None])
        p99 = median([r.p99_ms for r in runs if r.p99_ms is not None])
        kib = median([r.kib_per_conn for r in runs if r.kib_per_conn is not None])
        ratio = f"{fmt(median(ratios[server]), '.2f')} vs {sc.baseline}"
        if idle:
            ratio += " (KiB/conn)"
            rounds = ", ".join(fmt(r.kib_per_conn, ".2f") for r in runs) + " KiB/conn"
        else:
            rounds = ", ".join(fmt(r.rps, ".0f") for r in runs)
        problems = sorted({p for r in runs for p in r.problems})
        notes = "; ".join(problems).replace("|", "/") or "ok"
        rows.append(
            f"| {scenario} | {server} | {fmt(rps, '.0f')} | {fmt(p99, '.2f')} "
            f"| {fmt(kib, '.2f') if idle else ''} | {ratio} | {rounds} | {notes} |"
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


def find_python(version: str) -> str | None:
    """An interpreter of ``version`` (e.g. 3.12): pyenv's newest, else pythonX.Y on PATH."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    found = glob.glob(str(pyenv / "versions" / f"{version}.*" / "bin" / f"python{version}"))
    found.sort(key=lambda p: [int(n) for n in re.findall(r"\d+", Path(p).parent.parent.name)])
    candidates = [*reversed(found), shutil.which(f"python{version}")]
    for candidate in candidates:
        if candidate is None:
            continue
        got = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if got.returncode == 0 and got.stdout.strip() == version:
            return candidate
    return None


def bench_venv(version: str) -> str:
    """bench/.venv-X.Y/bin/python, created with `pip install -e '.[bench]'` on first use."""
    venv = BENCH / f".venv-{version}"
    python = venv / "bin" / "python"
    marker = venv / ".bench-installed"
    if marker.exists():
        return str(python)
    if not python.exists():
        base = find_python(version)
        if base is None:
            sys.exit(f"no Python {version} found (looked in pyenv and for python{version} on PATH)")
        print(f"creating {rel(venv)} from {base}", flush=True)
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
    print(f"installing squall with the bench extra into {rel(venv)}", flush=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-e", ".[bench]"], cwd=ROOT, check=True
    )
    marker.write_text("pip install -e '.[bench]' done\n")
    return str(python)


def resolve_python(spec: str) -> str:
    if spec in ("", "current"):
        return sys.executable
    if re.fullmatch(r"\d+\.\d+", spec):
        return bench_venv(spec)
    if os.sep in spec or Path(spec).exists():
        return str(Path(spec).absolute())  # not resolved: a venv's python is a symlink
    found = shutil.which(spec)
    if found is None:
        sys.exit(f"--python {spec}: not found")
    return found


def probe(python: str) -> Target:
    modules = sorted(
        {m for s in SERVERS.values() for m in s.modules}
        | {m for sc in SCENARIOS.values() for m in sc.modules}
    )
    dists = sorted({d for s in SERVERS.values() for d in (*s.dists, *(o.dist for o in s.options))})
    done = subprocess.run(
        [python, "-c", PROBE, *modules, "--", *dists],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"{python} failed to start: {done.stderr.strip()}")
    info = json.loads(done.stdout)
    same = Path(python) == Path(sys.executable)
    tag = "" if same else "-py" + ".".join(info["version"].split(".")[:2])
    return Target(
        python, info["version"], info["implementation"], tag, info["imports"], info["versions"]
    )


def compiled_dir(target: Target) -> Path:
    return ROOT / ".build" / f"compiled-py{'.'.join(target.version.split('.')[:2])}"


def compile_squall(target: Target) -> str | None:
    """Build Squall's mypyc modules for ``target``; why not, if that failed."""
    dest = compiled_dir(target)
    print(f"compiling Squall's hot modules with mypyc into {rel(dest)}", flush=True)
    done = subprocess.run(
        [str(ROOT / "scripts" / "compile"), str(dest)],
        cwd=ROOT,
        env=dict(os.environ, SQUALL_PYTHON=target.python),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return f"scripts/compile failed: {(done.stderr.strip() or 'no output')[-300:]}"
    return None


def tagged(path: Path, tag: str) -> Path:
    return path.with_name(f"{path.stem}{tag}{path.suffix}")


def raise_fd_limit(need: int) -> str | None:
    """Raise the soft RLIMIT_NOFILE (inherited by servers and clients) to ``need``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return None
    if hard != resource.RLIM_INFINITY and hard < need:
        return (
            f"idle needs {need} file descriptors per process but the hard limit is {hard}:"
            f" use --idle-connections {max(0, hard - 1024)} or raise it (ulimit -Hn)"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    return None


def run_target(
    target: Target, scenarios: list[str], servers: list[str], args: argparse.Namespace
) -> int:
    """The whole suite on one interpreter: report, chart; returns the exit code."""
    print(f"servers on Python {target.version} ({target.implementation}): {target.python}")
    skipped = []
    usable = []
    for name in servers:
        why = target.missing(SERVERS[name].modules)
        if not why and SERVERS[name].compiled:
            why = compile_squall(target)
        if why:
            skipped.append(f"{name} ({why})")
        else:
            usable.append(name)
    plan: dict[str, list[str]] = {}
    for scenario in scenarios:
        sc = SCENARIOS[scenario]
        why = target.missing(sc.modules)
        if why:
            skipped.append(f"scenario {scenario} ({why})")
            continue
        if sc.kind == "http2":
            cannot = [s for s in usable if SERVERS[s].http2 is None]
            if cannot:
                skipped.append(f"{', '.join(cannot)} in http2 (no cleartext HTTP/2)")
            plan[scenario] = [s for s in usable if s not in cannot]
        else:
            plan[scenario] = list(usable)
        if not plan[scenario]:
            skipped.append(f"scenario {scenario} (no server can run it)")
            del plan[scenario]
    for line in skipped:
        print(f"skipping {line}", file=sys.stderr)
    if not plan:
        print("nothing to run", file=sys.stderr)
        return 1

    def described(name: str) -> str:
        server = SERVERS[name]
        parts = [f"{d} {target.versions[d]}" for d in server.dists if target.versions.get(d)]
        parts += [o.args(target.versions) for o in server.options]
        if len(parts) < 2:
            return parts[0] if parts else name
        return f"{name}: {parts[0]} ({', '.join(parts[1:])})"

    out = tagged(args.out, target.tag)
    chart = tagged(args.chart, target.tag)
    for scenario, names in plan.items():
        for server in names:
            (RESULTS / f"{scenario}-{server}{target.tag}.log").unlink(missing_ok=True)
    used = list(dict.fromkeys(s for names in plan.values() for s in names))
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    header = [
        "# Squall benchmark",
        "",
        f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- servers' python: {target.version} ({target.implementation}), `{rel(target.python)}`",
        f"- load generators' python: {platform.python_version()} (wsload.py, idleload.py)",
        f"- cpu: {cpu_model()} ({os.cpu_count()} CPUs; servers on CPU {SERVER_CPU},"
        f" load generators on CPU {CLIENT_CPU})",
        f"- servers: {'; '.join(described(s) for s in used)}",
        f"- skipped: {'; '.join(skipped) or 'nothing'}",
        f"- load average at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())}"
        " (other work on the machine skews results)",
        f"- command: `{command}`",
        f"- {args.rounds} interleaved rounds of {args.duration}s (after {args.warmup}s"
        " warm-up); req/s and p99 are medians over rounds; ratio is the median of"
        " per-round ratios to the baseline (uvicorn; hypercorn for http2, which uvicorn"
        " does not serve). Load: wrk -t1 -c64; websocket: 32 connections echoing 32 bytes;"
        " http2: h2load -c16 -m10, cleartext; pipeline: 16 requests per write (wrk's p99"
        " is meaningless there)",
    ]
    if "idle" in plan:
        header.append(
            f"- idle: {args.idle_connections} idle keep-alive connections; KiB/conn is the"
            " growth of the server's resident memory (all its processes) per connection;"
            " req/s and p99 are those of one active sequential client meanwhile; its ratio"
            " compares KiB/conn (lower is better)"
        )
    header += [
        "",
        "| scenario | server | median req/s | p99 ms | KiB/conn | ratio | rounds | notes |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    rows: list[str] = []
    out.parent.mkdir(parents=True, exist_ok=True)
    report = ""
    for scenario, names in plan.items():
        print(f"{scenario}:", flush=True)
        rows += run_scenario(scenario, names, target, args)
        report = "\n".join([*header, *rows]) + "\n"
        out.write_text(report)  # after each scenario, so progress can be followed
    print()
    print(report, end="")
    print(f"\nwrote {rel(out)}")
    charted = subprocess.run(
        [
            sys.executable,
            str(BENCH / "chart.py"),
            str(out),
            str(chart),
            str(chart.with_suffix(".svg")),
        ],
        check=False,
    )
    if charted.returncode != 0:
        print("warning: no chart (pip install -e '.[bench]' brings matplotlib)", file=sys.stderr)
    return 1 if any(not row.endswith("| ok |") for row in rows) else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of warm-up load")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument(
        "--python",
        default="current",
        help="comma-separated interpreters for the servers: 'current' (this one), a path,"
        " or a version such as 3.12 (bench/.venv-3.12, created on first use)",
    )
    parser.add_argument("--idle-connections", type=int, default=10000)
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.md")
    parser.add_argument("--chart", type=Path, default=RESULTS / "chart.png")
    args = parser.parse_args()
    scenarios = [s for s in args.scenarios.split(",") if s]
    servers = [s for s in args.servers.split(",") if s]
    for name in scenarios:
        if name not in SCENARIOS:
            parser.error(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
    for name in servers:
        if name not in SERVERS:
            parser.error(f"unknown server {name!r}; choose from {', '.join(SERVERS)}")
    kinds = {SCENARIOS[s].kind for s in scenarios}
    if "http2" in kinds and shutil.which("h2load") is None:
        parser.error("h2load is not installed (Debian: nghttp2-client)")
    if "http" in kinds and shutil.which("wrk") is None:
        parser.error("wrk is not installed (Debian: wrk)")
    if shutil.which("taskset") is None:
        parser.error("taskset is not installed (Debian: util-linux)")
    if "idle" in kinds:
        problem = raise_fd_limit(args.idle_connections + 1024)
        if problem:
            parser.error(problem)
    if (os.cpu_count() or 1) < 2:
        print("warning: fewer than 2 CPUs; server and client will share one", file=sys.stderr)
    RESULTS.mkdir(exist_ok=True)
    targets = [probe(resolve_python(spec)) for spec in args.python.split(",")]
    code = 0
    for target in targets:
        code = max(code, run_target(target, scenarios, servers, args))
    return code


if __name__ == "__main__":
    sys.exit(main())
