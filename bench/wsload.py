"""WebSocket echo load: C connections, each sending a 32-byte text message and
waiting for its echo, for S seconds. Prints ``RPS: <messages per second>`` and
``P99_MS: <99th percentile round trip in ms>``.

usage: python bench/wsload.py PORT CONNECTIONS SECONDS
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys
import time

PAYLOAD = b"x" * 32
MASK = b"\x11\x22\x33\x44"
FRAME = (
    bytes([0x81, 0x80 | len(PAYLOAD)])
    + MASK
    + bytes(b ^ MASK[i % 4] for i, b in enumerate(PAYLOAD))
)
ECHO_SIZE = 2 + len(PAYLOAD)


async def client(port: int, deadline: float, counts: list[int], rtts: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16))
    writer.write(
        b"GET /ws HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise SystemExit(f"handshake refused: {head[:40]!r}")
    sent = 0
    clock = time.perf_counter
    now = clock()
    while now < deadline:
        writer.write(FRAME)
        await reader.readexactly(ECHO_SIZE)
        then, now = now, clock()
        rtts.append(now - then)
        sent += 1
    counts.append(sent)
    writer.close()


async def main(port: int, connections: int, seconds: float) -> None:
    counts: list[int] = []
    rtts: list[float] = []
    deadline = time.perf_counter() + seconds
    await asyncio.gather(*(client(port, deadline, counts, rtts) for _ in range(connections)))
    print(f"RPS: {sum(counts) / seconds:.0f}")
    if rtts:
        rtts.sort()
        print(f"P99_MS: {rtts[int(len(rtts) * 0.99)] * 1000:.3f}")


if __name__ == "__main__":
    import uvloop

    uvloop.run(main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))
