"""Graceful shutdown under load loses nothing (HTTP/1.1, HTTP/2 and WebSocket at once).

Hundreds of requests are in flight, held by a gate, when shutdown starts. Every
one must then complete with its full response, told clean: HTTP/1.1 answers
carry ``connection: close``, HTTP/2 gets GOAWAY naming the last stream it will
serve, WebSockets get close 1012. None is cut, none is dropped.
"""

from __future__ import annotations

import contextlib
import socket
import threading

import pytest

from tests.conftest import RawClient
from tests.integration.helpers import Gate, parse_response, read_ws_close, wait_until, ws_request
from tests.integration.http2_client import (
    DATA,
    END_STREAM,
    GOAWAY,
    HEADERS,
    WINDOW_UPDATE,
    FrameClient,
)

BODY = b"x" * 10000


def make_app(gate: Gate, started: list[str]):  # type: ignore[no-untyped-def]
    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            started.append("ws")
            while (await receive())["type"] != "websocket.disconnect":
                pass
            return
        if scope["type"] != "http":
            return
        started.append(scope["http_version"])
        await gate.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": BODY[:5000], "more_body": True})
        await send({"type": "http.response.body", "body": BODY[5000:]})

    return app


@pytest.mark.timeout(60)
def test_graceful_shutdown_under_load_loses_nothing(serve, fast_tick):
    gate = Gate()
    started: list[str] = []
    srv = serve(make_app(gate, started), timeout_graceful_shutdown=30, ws_ping_interval=None)
    port = srv.port
    h1_count, h2_conns, h2_streams, ws_count = 200, 4, 25, 20

    h1 = []
    for n in range(h1_count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        sock.sendall(f"GET /{n} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        h1.append(sock)
    h2_clients = [FrameClient(port, timeout=20) for _ in range(h2_conns)]
    h2_ids = [list(range(1, 2 * h2_streams, 2)) for _ in h2_clients]
    for client, ids in zip(h2_clients, h2_ids, strict=True):
        for stream_id in ids:
            client.get(stream_id, f"/s{stream_id}")
    wss = []
    for _ in range(ws_count):
        client = RawClient(port, timeout=20)
        client.send(ws_request("/ws"))
        wss.append(client)
    total = h1_count + h2_conns * h2_streams
    wait_until(lambda: len(started) == total + ws_count, 20, "every request in flight")

    stopper = threading.Thread(target=srv.stop)
    stopper.start()
    wait_until(lambda: srv.server.state.shutting_down, 5, "shutdown to begin")
    # HTTP/2 clients hear GOAWAY naming their last stream before anything is released
    for client, ids in zip(h2_clients, h2_ids, strict=True):
        (goaway,) = [f for f in client.until(lambda f: f.type == GOAWAY) if f.type == GOAWAY]
        assert goaway.goaway == (max(ids), 0)
    gate.open()

    lost = []
    for n, sock in enumerate(h1):
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        resp = parse_response(data)
        if resp.status != 200 or resp.body != BODY or resp.header("connection") != "close":
            lost.append(f"h1 /{n}: {resp.status} {len(resp.body)}")
        sock.close()
    for client, ids in zip(h2_clients, h2_ids, strict=True):
        bodies = dict.fromkeys(ids, b"")
        status: dict[int, bytes] = {}
        ended: set[int] = set()
        while (frame := client.read_frame()) is not None:
            if frame.type == HEADERS and frame.headers:
                status[frame.stream_id] = dict(frame.headers).get(b":status", b"")
            elif frame.type == DATA:
                bodies[frame.stream_id] += frame.payload
                if frame.payload:  # give the window back (the server may have closed)
                    increment = len(frame.payload).to_bytes(4, "big")
                    with contextlib.suppress(OSError):
                        client.send(WINDOW_UPDATE, 0, 0, increment)
                        if not frame.flags & END_STREAM:
                            client.send(WINDOW_UPDATE, 0, frame.stream_id, increment)
            if frame.type in (DATA, HEADERS) and frame.flags & END_STREAM:
                ended.add(frame.stream_id)
        for stream_id in ids:
            if status.get(stream_id) != b"200" or bodies[stream_id] != BODY:
                lost.append(f"h2 {stream_id}: {status.get(stream_id)} {len(bodies[stream_id])}")
        assert ended == set(ids)  # and then the server closed the connection
    for client in wss:
        assert client.head_only().startswith(b"HTTP/1.1 101")
        code, _ = read_ws_close(client)
        if code != 1012:
            lost.append(f"ws: close {code}")
        client.close()
    stopper.join(30)
    assert lost == []
    assert not stopper.is_alive()
