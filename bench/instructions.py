"""Instructions per request on the in-process plaintext path, under callgrind.

A real :class:`Connection` is fed keep-alive GET requests by a fake transport
on a real event loop (no sockets, no kernel), and a plaintext app answers each.
Two runs of different lengths are measured with ``valgrind --tool=callgrind``;
their difference divided by the difference in requests is the cost of one
request, with start-up cancelled out.

    .venv/bin/python bench/instructions.py                 # the build on sys.path
    PYTHONPATH=.build/compiled .venv/bin/python bench/instructions.py
    .venv/bin/python bench/instructions.py --scenario pipeline

``--run N`` (used by the measurement itself) serves N requests and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
from typing import Any

REQUEST = b"GET / HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"


async def plaintext(scope: Any, receive: Any, send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
        }
    )
    await send({"type": "http.response.body", "body": b"Hello, world!"})


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = 0
        self.closed = False

    def write(self, data: Any) -> None:
        self.written += len(data)

    def writelines(self, data: Any) -> None:
        for chunk in data:
            self.write(chunk)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )


def serve(count: int, scenario: str) -> None:
    from squall.config.options import Config
    from squall.loading import http_backend

    try:
        from squall.server.serve.state import ServerState

        from squall.connection.transport import Connection
    except ImportError:  # the layout before the connection package
        from squall.connection.state import ServerState  # type: ignore[no-redef]
        from squall.connection.transport import Connection  # type: ignore[no-redef]

    config = Config(plaintext, access_log=False, lifespan="off", http="httptools")
    import uvloop

    loop = uvloop.new_event_loop()  # as Squall runs by default
    state = ServerState(config, plaintext, loop, http_backend(config))
    conn = Connection(state)
    transport = FakeTransport()
    conn.connection_made(transport)
    batch = 16 if scenario == "pipeline" else 1

    async def drive() -> None:
        data = REQUEST * batch
        for _ in range(count // batch):
            conn.data_received(data)
            for _ in range(3 * batch):  # the app's task, then the flushes
                await asyncio.sleep(0)

    loop.run_until_complete(drive())
    assert transport.written > 0
    loop.close()


def measure(scenario: str, small: int, large: int) -> float:
    counts = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (small, large):
            out = os.path.join(tmp, f"cg.{n}")
            subprocess.run(
                [
                    "valgrind",
                    "--tool=callgrind",
                    f"--callgrind-out-file={out}",
                    sys.executable,
                    __file__,
                    "--run",
                    str(n),
                    "--scenario",
                    scenario,
                ],
                check=True,
                capture_output=True,
            )
            with open(out) as f:
                text = f.read()
            match = re.search(r"^summary:\s+(\d+)", text, re.M) or re.search(
                r"^totals:\s+(\d+)", text, re.M
            )
            assert match is not None
            counts.append(int(match.group(1)))
    return (counts[1] - counts[0]) / (large - small)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=int, help="serve N requests and exit")
    parser.add_argument("--scenario", choices=["plaintext", "pipeline"], default="plaintext")
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--large", type=int, default=6000)
    args = parser.parse_args()
    if args.run:
        serve(args.run, args.scenario)
        return
    per_request = measure(args.scenario, args.small, args.large)
    import squall

    root = os.path.dirname(squall.__file__)
    compiled = any(f.endswith(".so") for _, _, files in os.walk(root) for f in files)
    build = "compiled" if compiled else "pure"
    print(f"{args.scenario} ({build}): {per_request / 1000:.1f}k instructions per request")


if __name__ == "__main__":
    main()
