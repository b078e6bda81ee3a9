"""Idle keep-alive load: N connections that each make one request and then stay idle.

Reads the resident memory (VmRSS) of the server process and all its descendants
before the connections are opened and one second after, and prints the growth
divided by N. Then one active client makes sequential requests on a connection
of its own for S seconds while the N connections are still open; its request
rate and 99th percentile latency are printed. Finally it counts the idle
connections the server has closed meanwhile (there should be none).

Output, one ``KEY: value`` per line: ``KIB_PER_CONN``, ``RPS``, ``P99_MS``,
``P50_MS``, ``OPEN_FAILED``, ``CLOSED``, ``RECONNECTS`` (of the active client, when
the server closed its connection). Run by bench/run.py (scenario
``idle``), pinned to the client CPU; the server's keep-alive timeout must be
longer than the run.

usage: python bench/idleload.py PORT SERVER_PID CONNECTIONS SECONDS
"""

from __future__ import annotations

import asyncio
import resource
import sys
import time
from pathlib import Path

REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
BATCH = 500  # connections opened at once, to stay under the listen backlog


def tree_rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` and all its descendants (e.g. Gunicorn's or Granian's worker)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, []))
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


async def one_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(REQUEST)
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    await reader.readexactly(length)


async def open_one(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await one_request(reader, writer)
    return reader, writer


async def main(port: int, pid: int, count: int, seconds: float) -> None:
    base = tree_rss_kib(pid)
    conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    failed = 0
    for start in range(0, count, BATCH):
        batch = await asyncio.gather(
            *(open_one(port) for _ in range(min(BATCH, count - start))), return_exceptions=True
        )
        for item in batch:
            if isinstance(item, BaseException):
                failed += 1
            else:
                conns.append(item)
    await asyncio.sleep(1)  # let the server settle (memory is read after, not timed)
    grown = tree_rss_kib(pid) - base
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    latencies = []
    reconnects = 0
    clock = time.perf_counter
    begin = clock()
    deadline = begin + seconds
    while begin < deadline:
        try:
            await one_request(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            # e.g. Hypercorn closes a connection after 1000 requests: reconnect, as a
            # browser would (and time it)
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await one_request(reader, writer)
            reconnects += 1
        end = clock()
        latencies.append(end - begin)
        begin = end
    await asyncio.sleep(0.1)  # let any close by the server arrive
    closed = sum(1 for r, _ in conns if r.at_eof() or r.exception() is not None)
    for _, w in [*conns, (reader, writer)]:
        w.close()
    latencies.sort()
    print(f"KIB_PER_CONN: {grown / max(1, len(conns)):.2f}")
    print(f"RPS: {len(latencies) / seconds:.0f}")
    print(f"P50_MS: {latencies[len(latencies) // 2] * 1000:.3f}")
    print(f"P99_MS: {latencies[int(len(latencies) * 0.99)] * 1000:.3f}")
    print(f"OPEN_FAILED: {failed}")
    print(f"CLOSED: {closed}")
    print(f"RECONNECTS: {reconnects}")


if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < hard:  # bench/run.py raised it already
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    args = sys.argv[1:]
    if len(args) != 4:
        sys.exit(__doc__)
    asyncio.run(main(int(args[0]), int(args[1]), int(args[2]), float(args[3])))
