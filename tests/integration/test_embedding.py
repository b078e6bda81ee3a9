"""Embedding Squall as tools embed Uvicorn: a task in a loop, a thread, sockets, a log config."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time

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


def test_run_in_a_thread_and_stop_from_another():
    server = squall.Server(squall.Config(hello, port=0, lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.005)
    port = server.servers[0].sockets[0].getsockname()[1]
    assert httpx.get(f"http://127.0.0.1:{port}/").text == "embedded"
    server.should_exit = True
    thread.join(10)
    assert not thread.is_alive()


def test_custom_log_config_dict(tmp_path):
    log_file = tmp_path / "access.log"
    log_config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(name)s|%(message)s"}},
        "handlers": {
            "file": {"class": "logging.FileHandler", "filename": str(log_file)},
        },
        "loggers": {
            "squall.access": {"handlers": ["file"], "level": "INFO", "propagate": False},
            "squall.error": {"handlers": ["file"], "level": "INFO", "propagate": False},
        },
    }
    log_config["handlers"]["file"]["formatter"] = "plain"

    async def main() -> str:
        config = squall.Config(hello, port=0, lifespan="off", log_config=log_config)
        server = squall.Server(config)
        task = asyncio.create_task(server.serve())
        await _wait_started(server)
        port = server.servers[0].sockets[0].getsockname()[1]
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://127.0.0.1:{port}/x")).text
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        return text

    try:
        assert asyncio.run(main()) == "embedded"
        lines = log_file.read_text().splitlines()
        assert any(line.startswith("squall.error|Started server process") for line in lines)
        assert any(
            line.startswith("squall.access|") and '"GET /x HTTP/1.1" 200' in line for line in lines
        )
    finally:
        for name in ("squall.access", "squall.error"):  # leave logging as the suite set it
            logger = logging.getLogger(name)
            for handler in list(logger.handlers):
                handler.close()
                logger.removeHandler(handler)
            logger.propagate = True
