"""Embedding Squall the way tools embed Uvicorn: a task in a running loop, pre-bound sockets."""

from __future__ import annotations

import asyncio
import socket

import httpx

import squall


async def hello(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"embedded"})


async def _wait_started(server: squall.Server) -> None:
    for _ in range(1000):
        if server.started:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("server did not start")


def test_serve_as_a_task_in_a_running_loop_and_stop_with_should_exit():
    async def main() -> tuple[str, bool]:
        config = squall.Config(hello, port=0, lifespan="off", log_level="warning")
        server = squall.Server(config)
        task = asyncio.create_task(server.serve())
        await _wait_started(server)
        port = server.servers[0].sockets[0].getsockname()[1]
        async with httpx.AsyncClient() as client:
            body = (await client.get(f"http://127.0.0.1:{port}/")).text
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        return body, task.done()

    body, done = asyncio.run(main())
    assert body == "embedded"
    assert done


def test_serve_pre_bound_socket():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]

    async def main() -> str:
        server = squall.Server(squall.Config(hello, lifespan="off", log_level="warning"))
        task = asyncio.create_task(server.serve(sockets=[sock]))
        await _wait_started(server)
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://127.0.0.1:{port}/")).text
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        return text

    assert asyncio.run(main()) == "embedded"
