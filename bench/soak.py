"""Soak run: a million requests across HTTP/1.1, HTTP/2 and WebSocket, memory sampled.

Starts one Squall process (bench.apps:mixed) and drives it in rounds, each
round a share of the total: HTTP/1.1 with wrk, HTTP/2 with h2load, WebSocket
echo with bench/wsload.py. After every round it samples the server's resident
memory (VmRSS) and open file descriptors. It passes when the memory after the
last round is within 5% of the memory after the first tenth of the requests,
and the descriptors are back to the baseline once the clients are gone.

usage: .venv/bin/python bench/soak.py [--requests 1000000] [--rounds 10]
Minutes, not part of the test suite; needs wrk and h2load.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"port {port} never opened")


def rss_kib(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", text)
    return int(match.group(1)) if match else 0


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def run(cmd: list[str]) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return done.stdout + done.stderr


def h1(port: int, count: int) -> int:
    # wrk runs for a time, not a count: estimate from its rate in 2 s slices
    served = 0
    while served < count:
        out = run(["wrk", "-t1", "-c32", "-d2s", f"http://127.0.0.1:{port}/"])
        match = re.search(r"(\d+) requests in", out)
        if not match or "Non-2xx" in out or "Socket errors" in out:
            raise SystemExit(f"wrk failed: {out}")
        served += int(match.group(1))
    return served


def h2(port: int, count: int) -> int:
    out = run(["h2load", "-n", str(count), "-c16", "-m10", f"http://127.0.0.1:{port}/"])
    match = re.search(r"(\d+) succeeded, (\d+) failed, (\d+) errored", out)
    if not match or int(match.group(2)) or int(match.group(3)):
        raise SystemExit(f"h2load failed: {out}")
    return int(match.group(1))


def ws(port: int, seconds: int) -> int:
    out = run([sys.executable, str(ROOT / "bench" / "wsload.py"), str(port), "16", str(seconds)])
    match = re.search(r"messages:\s*(\d+)", out) or re.search(r"RPS:\s*([\d.]+)", out)
    if not match:
        raise SystemExit(f"wsload failed: {out}")
    value = float(match.group(1))
    return int(value if "messages" in match.group(0) else value * seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    port = free_port()
    squall = str(Path(sys.executable).parent / "squall")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [
            squall,
            "bench.apps:mixed",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    try:
        wait_port(port)
        time.sleep(0.5)
        base_fds = fds(proc.pid)
        per_round = args.requests // args.rounds
        samples = []
        total = 0
        for rnd in range(1, args.rounds + 1):
            started = time.monotonic()
            total += h1(port, per_round * 5 // 10)
            total += h2(port, per_round * 4 // 10)
            total += ws(port, 1)
            samples.append((total, rss_kib(proc.pid), fds(proc.pid)))
            print(
                f"round {rnd}: {total} requests, RSS {samples[-1][1]} KiB, "
                f"{samples[-1][2]} fds ({time.monotonic() - started:.1f} s)",
                flush=True,
            )
        time.sleep(1.0)
        end_fds = fds(proc.pid)
        first, last = samples[0][1], samples[-1][1]
        growth = (last - first) / first * 100
        print(
            f"memory after round 1: {first} KiB, after {total} requests: {last} KiB "
            f"({growth:+.1f}%); fds at start {base_fds}, at end {end_fds}"
        )
        ok = growth <= 5.0 and end_fds <= base_fds
        print("PASS" if ok else "FAIL")
        return 0 if ok else 1
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=20)


if __name__ == "__main__":
    sys.exit(main())
