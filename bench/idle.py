"""Idle keep-alive connections: server memory per connection, and an active client meanwhile.

Each server is started fresh (pinned to CPU 0, keep-alive timeout raised so
nothing is closed during the run), N connections each make one request and
then stay idle, and the growth of the server's resident memory is divided by
N. Meanwhile one active client makes sequential requests; its median and p99
latency are reported. Servers take turns, the order rotating each round.

usage: python bench/idle.py [--connections 10000] [--rounds 2] [--servers squall,uvicorn]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVERS = {
    "squall": "squall bench.apps:plaintext --port {port} --no-access-log --log-level warning "
    "--timeout-keep-alive 600 --backlog 16384",
    "uvicorn": "uvicorn bench.apps:plaintext --port {port} --no-access-log --log-level warning "
    "--timeout-keep-alive 600 --backlog 16384",
}
# (Granian serves from a child process, so the started pid's memory says nothing: not listed.)
REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


async def one_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(REQUEST)
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    await reader.readexactly(length)


async def measure(port: int, pid: int, count: int) -> tuple[float, float, float]:
    base = rss_kib(pid)
    conns = []
    for start in range(0, count, 500):  # open in batches to stay under the backlog
        batch = await asyncio.gather(
            *(asyncio.open_connection("127.0.0.1", port) for _ in range(min(500, count - start)))
        )
        await asyncio.gather(*(one_request(r, w) for r, w in batch))
        conns.extend(batch)
    await asyncio.sleep(1)  # let the server settle (memory is read after, not timed)
    grown = rss_kib(pid) - base
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    latencies = []
    for _ in range(500):
        begin = time.perf_counter()
        await one_request(reader, writer)
        latencies.append((time.perf_counter() - begin) * 1000)
    for _, w in [*conns, (reader, writer)]:
        w.close()
    latencies.sort()
    return grown / count, statistics.median(latencies), latencies[int(len(latencies) * 0.99)]


def run_one(name: str, count: int) -> tuple[float, float, float] | None:
    port = free_port()
    args = shlex.split(SERVERS[name].format(port=port))
    exe = Path(sys.executable).parent / args[0]
    args[0] = str(exe) if exe.exists() else args[0]
    proc = subprocess.Popen(
        ["taskset", "-c", "0", *args],
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if not wait_port(port, proc):
            return None
        return asyncio.run(measure(port, proc.pid, count))
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--servers", default="squall,uvicorn")
    opts = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = opts.connections + 1024  # per process; the servers inherit it
    if hard != resource.RLIM_INFINITY and hard < want:
        sys.exit(f"need {want} file descriptors, the hard limit is {hard}: use fewer --connections")
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    names = [n for n in opts.servers.split(",") if n]
    results: dict[str, list[tuple[float, float, float]]] = {n: [] for n in names}
    for r in range(opts.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            got = run_one(name, opts.connections)
            if got is None:
                print(f"{name}: did not start", file=sys.stderr)
                continue
            results[name].append(got)
            print(
                f"  round {r + 1} {name}: {got[0]:.1f} KiB/conn, "
                f"active p50 {got[1]:.2f} ms p99 {got[2]:.2f} ms"
            )
    print(
        f"\n| server | KiB per idle connection | active p50 ms | active p99 ms |  "
        f"({opts.connections} connections, median of {opts.rounds} rounds)"
    )
    print("|---|---:|---:|---:|")
    for name, rows in results.items():
        if rows:
            kib, p50, p99 = (statistics.median(col) for col in zip(*rows, strict=True))
            print(f"| {name} | {kib:.1f} | {p50:.2f} | {p99:.2f} |")


if __name__ == "__main__":
    main()
