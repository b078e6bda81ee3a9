"""The connection's named deadlines, driven by an injected clock: no waiting on the wall
clock. A real :class:`Connection` with its real HTTP/1 handler, on a fake loop that
only records the timer it is asked for; the test moves the clock and fires the timer.
"""

from __future__ import annotations

from typing import Any

import pytest

from squall.config import Config
from squall.connection.state import ServerState
from squall.connection.transport import Connection
from squall.loading import http_backend


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Handle:
    def __init__(self, when: float, callback: Any, args: tuple[Any, ...]) -> None:
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeTask:
    def __init__(self, coro: Any) -> None:
        coro.close()  # the app never runs here: only the deadlines are under test

    def done(self) -> bool:
        return False

    def add_done_callback(self, callback: Any) -> None:
        pass


class FakeLoop:
    """Records timers and soon-callbacks; runs nothing by itself."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.timers: list[Handle] = []
        self.soon: list[tuple[Any, tuple[Any, ...]]] = []

    def time(self) -> float:
        return self.clock.now

    def call_at(self, when: float, callback: Any, *args: Any) -> Handle:
        handle = Handle(when, callback, args)
        self.timers.append(handle)
        return handle

    def call_later(self, delay: float, callback: Any, *args: Any) -> Handle:
        return self.call_at(self.clock.now + delay, callback, *args)

    def call_soon(self, callback: Any, *args: Any) -> Handle:
        self.soon.append((callback, args))
        return Handle(self.clock.now, callback, args)

    def create_task(self, coro: Any) -> FakeTask:
        return FakeTask(coro)

    def pending(self) -> list[Handle]:
        return [t for t in self.timers if not t.cancelled]

    def fire(self) -> None:
        """The loop reaches the connection's timer (on time, or late)."""
        (timer,) = self.pending()
        self.timers.remove(timer)
        timer.callback(*timer.args)

    def run_soon(self) -> None:
        while self.soon:
            callback, args = self.soon.pop(0)
            callback(*args)


class FakeTransport:
    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False
        self.aborted = False
        self.paused = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.written += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name, default)


async def never_called(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("no app runs in these tests")


@pytest.fixture(params=["httptools", "h11"])
def opened(request: pytest.FixtureRequest) -> tuple[Connection, FakeLoop, Clock, FakeTransport]:
    clock = Clock()
    loop = FakeLoop(clock)
    config = Config(
        never_called,
        http=request.param,
        lifespan="off",
        access_log=False,
        timeout_keep_alive=5,
        timeout_request_header=3,
        timeout_request_body=2,
        timeout_write=4,
    )
    state = ServerState(config, never_called, loop, http_backend(config))  # type: ignore[arg-type]
    conn = Connection(state, clock=clock)
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, loop, clock, transport


def test_keep_alive_closes_an_idle_connection_at_its_deadline(opened: Any) -> None:
    _, loop, clock, transport = opened
    assert [t.when for t in loop.pending()] == [5.0]
    clock.now = 4.9  # a timer that fires early changes nothing
    loop.fire()
    assert not transport.closed and [t.when for t in loop.pending()] == [5.0]
    clock.now = 5.0
    loop.fire()
    assert transport.closed and not transport.written


def test_a_begun_head_gets_408_at_the_header_deadline(opened: Any) -> None:
    conn, loop, clock, transport = opened
    clock.now = 1.0
    conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n")
    assert sorted(t.when for t in loop.pending()) == [4.0]  # sooner than keep-alive: moved
    clock.now = 4.0
    loop.fire()
    assert transport.written.startswith(b"HTTP/1.1 408 ")
    assert b"connection: close" in transport.written and transport.closed


def test_a_body_that_stops_gets_408_and_each_chunk_moves_the_deadline(opened: Any) -> None:
    conn, loop, clock, transport = opened
    conn.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n012")
    assert min(t.when for t in loop.pending()) == 2.0
    clock.now = 1.5
    conn.data_received(b"345")  # the body goes on: now due at 3.5
    clock.now = 2.0
    loop.fire()
    assert not transport.closed
    clock.now = 3.5
    loop.fire()
    assert transport.written.startswith(b"HTTP/1.1 408 ") and transport.closed


def test_a_body_the_app_does_not_read_is_not_timed(opened: Any) -> None:
    conn, loop, clock, transport = opened
    conn.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 999999\r\n\r\n")
    conn.data_received(b"x" * 70000)  # more than the cycle holds: reading pauses
    assert transport.paused
    clock.now = 2.0
    loop.fire()
    assert not transport.closed and not transport.written
    assert min(t.when for t in loop.pending()) == 4.0


def test_a_peer_that_does_not_read_is_cut_off_at_the_write_deadline(opened: Any) -> None:
    conn, loop, clock, transport = opened
    clock.now = 1.0
    conn.pause_writing()
    assert sorted(t.when for t in loop.pending()) == [5.0]  # write deadline 5.0, keep-alive 5.0
    clock.now = 5.0
    loop.fire()
    assert transport.aborted


def test_resumed_writing_cancels_the_write_deadline(opened: Any) -> None:
    conn, loop, clock, transport = opened
    conn.pause_writing()  # due at 4.0, sooner than keep-alive
    conn.resume_writing()
    clock.now = 4.0
    loop.fire()  # only the keep-alive deadline is left: re-armed for 5.0
    assert not transport.closed and [t.when for t in loop.pending()] == [5.0]


def test_shutdown_gives_a_fresh_connection_its_grace_then_closes(opened: Any) -> None:
    conn, loop, clock, transport = opened
    conn.shutdown()
    assert min(t.when for t in loop.pending()) == 0.5
    clock.now = 0.5
    loop.fire()
    assert transport.closed and not transport.written
