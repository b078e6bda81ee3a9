"""Disconnects and back-pressure in both directions, seen from the app and the client."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import threading

import pytest

from tests.integration.helpers import (
    Gate,
    connections,
    parse_response,
    request,
    reset_close,
    wait_until,
)

pytestmark = pytest.mark.usefixtures("fast_tick")  # in-thread servers stop quickly

# -- http.disconnect ---------------------------------------------------------------


def receive_until_disconnect(messages: list, done: threading.Event):
    async def app(scope, receive, send):
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] == "http.disconnect":
                break
        done.set()

    return app


def _wait_for_body(messages: list) -> None:
    wait_until(
        lambda: any(m["type"] == "http.request" and not m["more_body"] for m in messages),
        what="the app to receive the whole body",
    )


def test_disconnect_while_waiting_on_receive(serve, http_impl):
    messages: list = []
    done = threading.Event()
    srv = serve(
        receive_until_disconnect(messages, done), http=http_impl, timeout_graceful_shutdown=0.5
    )
    c = srv.client()
    c.send(request("POST", "/", body=b"abc"))
    _wait_for_body(messages)
    c.close()  # an ordinary close: FIN
    assert done.wait(5)
    assert messages[-1] == {"type": "http.disconnect"}


def test_disconnect_by_reset_while_waiting_on_receive(serve, http_impl):
    messages: list = []
    done = threading.Event()
    srv = serve(receive_until_disconnect(messages, done), http=http_impl)
    c = srv.client()
    c.send(request("POST", "/", body=b"abc"))
    _wait_for_body(messages)
    reset_close(c.sock)
    assert done.wait(5)
    assert messages == [
        {"type": "http.request", "body": b"abc", "more_body": False},
        {"type": "http.disconnect"},
    ]
    wait_until(lambda: not connections(srv), what="the connection to be dropped")


def test_disconnect_while_waiting_for_rest_of_body(serve, http_impl):
    messages: list = []
    done = threading.Event()
    srv = serve(
        receive_until_disconnect(messages, done), http=http_impl, timeout_graceful_shutdown=0.5
    )
    c = srv.client()
    c.send(request("POST", "/", headers=[("Content-Length", "100")]) + b"only part")
    wait_until(lambda: messages, what="the first body message")
    c.close()
    assert done.wait(5)
    assert messages[-1] == {"type": "http.disconnect"}
    assert b"".join(m.get("body", b"") for m in messages) == b"only part"


@pytest.mark.parametrize("close", ["fin", "rst"])
def test_disconnect_while_streaming(serve, http_impl, close):
    observed = threading.Event()
    progress = {"chunks": 0, "after_disconnect": 0}

    async def app(scope, receive, send):
        disconnected = asyncio.Event()

        async def watch():
            while (await receive())["type"] != "http.disconnect":
                pass
            disconnected.set()

        watcher = asyncio.ensure_future(watch())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while not disconnected.is_set():
            await send({"type": "http.response.body", "body": b"x" * 1024, "more_body": True})
            progress["chunks"] += 1
            await asyncio.sleep(0.001)
        # send() after the client has gone is ignored, not an error
        await send({"type": "http.response.body", "body": b"late", "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        progress["after_disconnect"] += 1
        await watcher
        observed.set()

    srv = serve(app, http=http_impl, timeout_graceful_shutdown=0.5)
    c = srv.client()
    c.send(request())
    while len(c.buf) < 8192:
        assert c._fill()
    assert c.buf.startswith(b"HTTP/1.1 200 ")
    if close == "fin":
        c.close()
    else:
        reset_close(c.sock)
    assert observed.wait(5)
    assert progress["after_disconnect"] == 1
    assert progress["chunks"] >= 8


# -- read back-pressure ---------------------------------------------------------------

UPLOAD = 64 * 1024 * 1024


def test_read_back_pressure(serve, http_impl):
    """An app that does not read its body makes the server stop reading the socket."""
    gate = Gate()
    first_read: list[int] = []
    result: dict = {}

    async def app(scope, receive, send):
        await gate.wait()
        digest = hashlib.sha256()
        total = 0
        while True:
            message = await receive()
            if not first_read:
                first_read.append(len(message["body"]))
            digest.update(message["body"])
            total += len(message["body"])
            if not message["more_body"]:
                break
        result.update(total=total, digest=digest.hexdigest())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"%d" % total})

    srv = serve(app, http=http_impl, timeout_graceful_shutdown=1)
    block = bytes(range(256)) * 256  # 64 KiB
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    sent = {"bytes": 0, "done": False}

    def upload():
        sock.sendall(request("PUT", "/", headers=[("Content-Length", str(UPLOAD))]))
        for _ in range(UPLOAD // len(block)):
            sock.sendall(block)
            sent["bytes"] += len(block)
        sent["done"] = True

    uploader = threading.Thread(target=upload, daemon=True)
    uploader.start()
    try:
        # the server pauses reading once the unread body passes its high-water mark
        wait_until(
            lambda: any(not conn.transport.is_reading() for conn in connections(srv)),
            what="the server to pause reading",
        )
        # the uploader is stuck: kernel buffers hold far less than the whole body
        assert not sent["done"]
        assert sent["bytes"] < UPLOAD // 2
        gate.open()
        uploader.join(20)
        assert sent["done"]
        resp = b""
        while b"\r\n\r\n" not in resp or not resp.endswith(b"%d" % UPLOAD):
            data = sock.recv(65536)
            assert data, resp
            resp += data
    finally:
        gate.open()
        sock.close()
    assert parse_response(resp).body == b"%d" % UPLOAD
    # what the server had buffered before the app started reading is bounded
    assert first_read[0] <= 1024 * 1024
    assert result["total"] == UPLOAD
    assert result["digest"] == hashlib.sha256(block * (UPLOAD // len(block))).hexdigest()


# -- write back-pressure ---------------------------------------------------------------

DOWNLOAD = 64 * 1024 * 1024
PIECE = 64 * 1024


def _piece(i: int) -> bytes:
    return (b"%08d" % i) * (PIECE // 8)


def test_write_back_pressure(serve, http_impl):
    """send() blocks while the client does not read, and resumes when it does."""
    progress = {"sent": 0, "finished": False}

    async def app(scope, receive, send):
        if scope["path"] == "/ping":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"pong"})
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"%d" % DOWNLOAD)],
            }
        )
        for i in range(DOWNLOAD // PIECE):
            await send({"type": "http.response.body", "body": _piece(i), "more_body": True})
            progress["sent"] += PIECE
        await send({"type": "http.response.body", "body": b""})
        progress["finished"] = True

    srv = serve(app, http=http_impl, timeout_graceful_shutdown=1)
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    try:
        sock.sendall(request())
        # nobody reads: the server's transport fills and pauses the app
        wait_until(
            lambda: any(conn.write_paused for conn in connections(srv)),
            what="the server to pause writing",
        )
        assert progress["sent"] < DOWNLOAD // 4
        # a full exchange on another connection lets the server's loop run on;
        # the app must still be stuck
        other = srv.client()
        other.send(request("GET", "/ping"))
        assert parse_response(other.response()).body == b"pong"
        other.close()
        assert not progress["finished"]
        assert progress["sent"] < DOWNLOAD // 4
        # now read everything and check every byte
        received = 0
        head = b""
        while b"\r\n\r\n" not in head:
            data = sock.recv(65536)
            assert data
            head += data
        head, _, pending = head.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        expected = hashlib.sha256()
        for i in range(DOWNLOAD // PIECE):
            expected.update(_piece(i))
        digest = hashlib.sha256(pending)
        received = len(pending)
        while received < DOWNLOAD:
            data = sock.recv(1024 * 1024)
            assert data, f"connection closed after {received} bytes"
            digest.update(data)
            received += len(data)
    finally:
        sock.close()
    assert received == DOWNLOAD
    assert digest.hexdigest() == expected.hexdigest()
    wait_until(lambda: progress["finished"], what="the app to finish")
    assert progress["sent"] == DOWNLOAD


def test_disconnect_while_send_is_blocked(serve, http_impl):
    """An app stuck in send() on a full connection is released when the client goes."""
    state = {"sent": 0, "returned": False}
    released = threading.Event()

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(DOWNLOAD // PIECE):
            await send({"type": "http.response.body", "body": _piece(i), "more_body": True})
            state["sent"] += PIECE
        await send({"type": "http.response.body", "body": b""})
        state["returned"] = True
        messages = [await receive(), await receive()]
        state["messages"] = [m["type"] for m in messages]
        released.set()

    srv = serve(app, http=http_impl, timeout_graceful_shutdown=1)
    c = srv.client()
    c.send(request())
    wait_until(
        lambda: any(conn.write_paused for conn in connections(srv)),
        what="the server to pause writing",
    )
    assert state["sent"] < DOWNLOAD // 4
    reset_close(c.sock)
    assert released.wait(5)
    assert state["returned"]
    assert state["messages"] == ["http.request", "http.disconnect"]
    wait_until(lambda: not connections(srv), what="the connection to be dropped")
