"""HTTP/2 connection lifecycle: graceful shutdown and the idle keep-alive timeout.

``h2``'s client stops at a GOAWAY, so these tests read raw frames
(:class:`~tests.integration.http2_client.FrameClient`) to see what follows it.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.integration.helpers import Gate, wait_until
from tests.integration.http2_client import (
    DATA,
    END_STREAM,
    GOAWAY,
    HEADERS,
    NO_ERROR,
    RST_STREAM,
    FrameClient,
    status_of,
    tls_context,
    write_certs,
)

pytestmark = pytest.mark.usefixtures("fast_tick")  # in-thread servers stop quickly


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return write_certs(tmp_path_factory.mktemp("h2tls"))


def ends(stream_id: int):
    """Matches the frame that ends ``stream_id`` (END_STREAM or RST_STREAM)."""

    def predicate(frame) -> bool:
        if frame.stream_id != stream_id:
            return False
        return frame.type == RST_STREAM or (
            frame.type in (DATA, HEADERS) and bool(frame.flags & END_STREAM)
        )

    return predicate


def response_of(frames, stream_id: int) -> tuple[int, bytes, bool]:
    """(status, body, ended with END_STREAM) of one stream's frames."""
    mine = [f for f in frames if f.stream_id == stream_id]
    heads = [f for f in mine if f.type == HEADERS]
    assert len(heads) == 1, mine
    body = b"".join(f.payload for f in mine if f.type == DATA)
    ended = bool(mine[-1].flags & END_STREAM) and mine[-1].type in (DATA, HEADERS)
    assert not [f for f in mine if f.type == RST_STREAM], mine
    return status_of(heads[0].headers), body, ended


def test_graceful_shutdown_finishes_the_stream_in_flight(serve):
    gate = Gate()
    entered = threading.Event()
    paths: list[str] = []
    payload = b"finished " * 2000  # 18 KB: more than one DATA frame

    async def app(scope, receive, send):
        paths.append(scope["path"])
        if scope["path"] == "/wait":
            entered.set()
            await gate.wait()
            headers = [(b"content-length", b"%d" % len(payload))]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": payload[:5000], "more_body": True})
            await send({"type": "http.response.body", "body": payload[5000:]})
        else:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"quick"})

    srv = serve(app)
    client = FrameClient(srv.port)
    client.get(1, "/quick")
    first = client.until(ends(1))
    assert response_of(first, 1) == (200, b"quick", True)
    client.get(3, "/wait")
    wait_until(entered.is_set, what="the app of stream 3")

    srv.server.should_exit = True
    frames = client.until(lambda f: f.type == GOAWAY)
    assert frames[-1].goaway == (3, NO_ERROR)  # stream 3 will still be served
    assert [f for f in frames if f.stream_id == 3] == []

    client.get(5, "/new")  # after the GOAWAY: a new stream is not served
    gate.open()
    rest = client.until_closed()  # the response, then the server closes
    assert response_of(rest, 3) == (200, payload, True)
    assert [f for f in rest if f.stream_id == 5] == []
    assert not [f for f in rest if f.type == GOAWAY]  # one GOAWAY is enough
    assert paths == ["/quick", "/wait"]
    srv.thread.join(5)
    assert not srv.thread.is_alive()


def test_graceful_shutdown_of_an_idle_connection(serve):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x"})

    srv = serve(app)
    client = FrameClient(srv.port)
    client.get(1)
    client.until(ends(1))
    srv.server.should_exit = True
    frames = client.until(lambda f: f.type == GOAWAY)
    assert frames[-1].goaway == (1, NO_ERROR)
    assert client.until_closed() == []
    srv.thread.join(5)
    assert not srv.thread.is_alive()


def test_idle_connection_gets_goaway_after_its_streams(serve):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x"})

    srv = serve(app, timeout_keep_alive=1)
    client = FrameClient(srv.port)
    client.get(1)
    assert response_of(client.until(ends(1)), 1) == (200, b"x", True)
    client.get(3)
    assert response_of(client.until(ends(3)), 3) == (200, b"x", True)
    # a blocking read with the socket timeout (5 s): the GOAWAY comes after ~1 s
    frames = client.until(lambda f: f.type == GOAWAY)
    assert frames[-1].goaway == (3, NO_ERROR)
    assert client.until_closed() == []
    assert client.closed
    wait_until(lambda: not srv.server.state.connections, what="no open connections")


@pytest.mark.parametrize(
    "tls",
    [
        pytest.param(True, id="alpn"),
        pytest.param(False, id="prior-knowledge"),
    ],
)
def test_idle_connection_without_a_stream_gets_goaway(serve, certs, tls):
    async def app(scope, receive, send):  # never called
        raise AssertionError("no request was sent")

    options = {"ssl_certfile": certs["server"]} if tls else {}
    srv = serve(app, timeout_keep_alive=1, **options)
    context = tls_context(certs["ca"]) if tls else None
    client = FrameClient(srv.port, timeout=3, context=context)  # preface and SETTINGS only
    frames = client.until(lambda f: f.type == GOAWAY)  # after ~1 s, or a 3 s socket timeout
    assert frames[-1].goaway == (0, NO_ERROR)
    assert client.until_closed() == []
    assert client.closed


@pytest.mark.parametrize("tls", [False, True], ids=["prior-knowledge", "alpn"])
def test_stream_in_flight_is_not_cut_by_the_keep_alive_timeout(serve, certs, tls):
    gate = Gate()
    entered = threading.Event()

    async def app(scope, receive, send):
        entered.set()
        await gate.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"late"})

    options = {"ssl_certfile": certs["server"]} if tls else {}
    srv = serve(app, timeout_keep_alive=0.2, **options)
    connected = time.monotonic()  # the server's deadline is at most 0.2 s after this
    client = FrameClient(srv.port, context=tls_context(certs["ca"]) if tls else None)
    client.get(1)
    wait_until(entered.is_set, what="the app")
    # the keep-alive deadline passes while the stream runs (the timeout is what is tested)
    wait_until(lambda: time.monotonic() > connected + 0.4, what="the keep-alive deadline")
    gate.open()
    frames = client.until(ends(1))
    assert response_of(frames, 1) == (200, b"late", True)
    assert not [f for f in frames if f.type == GOAWAY]
    # ... and only then does the idle timeout apply
    frames = client.until(lambda f: f.type == GOAWAY)
    assert frames[-1].goaway == (1, NO_ERROR)
    assert client.until_closed() == []
